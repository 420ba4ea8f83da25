/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the config parser's parts on their own: lb_listen
 * (which lbd uses without the config), lb_index, lb_path and the lexer.
 * The parser as a whole is test-config.c's.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "lb_config_lex.h"
#include "lb_index.h"
#include "lb_listen.h"
#include "lb_path.h"
#include "tap.h"

#define DIR "/nonexistent-lb"


/* lb_listen alone, as lbd uses it: parse, equality, overlap, the hash. */
static void
test_listen (void)
{
  static const struct { const char *a, *b; bool equal, overlap; } pairs[] = {
    { "10.0.0.1/7", "::ffff:10.0.0.1/7", true, false },
    { "[::1]/7", "::1/7", true, false },
    { "*/7", "::/7", true, false },
    { "*/7", "[::]/7", true, false },
    { "fe80::1%1/7", "[fe80::1%1]/7", true, false },
    { "10.0.0.1/7", "10.0.0.1/8", false, false },
    { "10.0.0.1/7", "10.0.0.2/7", false, false },
    { "fe80::1%1/7", "fe80::1%2/7", false, false },
    { "::1/7", "127.0.0.1/7", false, false },
    { "*/7", "10.0.0.1/7", false, true },
    { "*/7", "::1/7", false, true },
    { "*/7", "0.0.0.0/7", false, true },
    { "::%1/7", "*/7", false, true },
    { "0.0.0.0/7", "10.0.0.1/7", false, true },
    { "0.0.0.0/7", "::1/7", false, false },
    { "0.0.0.0/7", "10.0.0.1/8", false, false },
    { "*/7", "10.0.0.1/8", false, false },
  };
  static const struct { const char *v, *why; } bad[] = {
    { "10.0.0.1", "no port (write ADDRESS/PORT)" },
    { "10.0.0.1/0", "bad port (1 to 65535)" },
    { "10.0.0.1/65536", "bad port (1 to 65535)" },
    { "10.0.0.1/ 5", "bad port (1 to 65535)" },
    { "/5", "bad address" },
    { "10.1/5", "bad address" },
    { "localhost/5", "bad address" },
    { "[10.0.0.1]/5", "bad address" },
    { "[]/5", "bad address" },
    { "fe80::1%/5", "bad address (empty zone after %)" },
    { "fe80::1%4294967296/5", "bad address (bad zone number)" },
    { "fe80::1%nosuchif0/5", "bad address (no such network interface)" },
  };
  struct lb_listen a, b, back;
  const char *why;
  size_t i;
  bool all = true;

  why = lb_listen_parse ("10.0.0.17/15440 ignored", 15, &a);
  tap_ok (why == NULL && a.family == AF_INET && lb_listen_port (&a) == 15440
          && strcmp (a.text, "10.0.0.17/15440") == 0 && !a.loopback
          && lb_listen_kind (&a) == LB_LISTEN_V4,
          "lb_listen_parse reads N bytes, no NUL needed (%s)", a.text);
  why = lb_listen_parse ("*/1", 3, &a);
  tap_ok (why == NULL && a.family == AF_INET6 && lb_listen_port (&a) == 1
          && lb_listen_kind (&a) == LB_LISTEN_V6_ANY
          && strcmp (a.text, "*/1") == 0, "'*' is the IPv6 wildcard");
  why = lb_listen_parse ("0.0.0.0/2", 9, &a);
  tap_ok (why == NULL && lb_listen_kind (&a) == LB_LISTEN_V4_ANY,
          "0.0.0.0 is the IPv4 wildcard");
  why = lb_listen_parse ("[::1]/3", 7, &a);
  tap_ok (why == NULL && a.loopback && lb_listen_kind (&a) == LB_LISTEN_V6
          && strcmp (a.text, "::1/3") == 0, "[::1] is IPv6 loopback");

  for (i = 0; i < sizeof bad / sizeof *bad; i++) {
    why = lb_listen_parse (bad[i].v, strlen (bad[i].v), &a);
    if (why == NULL || strcmp (why, bad[i].why) != 0) {
      all = false;
      printf ("# %s: %s\n", bad[i].v, why ? why : "accepted");
    }
  }
  tap_ok (all, "%zu bad addresses, each with its reason",
          sizeof bad / sizeof *bad);

  all = true;
  for (i = 0; i < sizeof pairs / sizeof *pairs; i++) {
    bool ok;
    if (lb_listen_parse (pairs[i].a, strlen (pairs[i].a), &a)
        || lb_listen_parse (pairs[i].b, strlen (pairs[i].b), &b)) {
      printf ("# %s or %s refused\n", pairs[i].a, pairs[i].b);
      all = false;
      continue;
    }
    ok = lb_listen_equal (&a, &b) == pairs[i].equal
      && lb_listen_parse (a.text, strlen (a.text), &back) == NULL
      && lb_listen_equal (&a, &back) && strcmp (a.text, back.text) == 0
      && lb_listen_equal (&b, &a) == pairs[i].equal
      && lb_listen_overlap (&a, &b) == pairs[i].overlap
      && lb_listen_overlap (&b, &a) == pairs[i].overlap
      && (!pairs[i].equal
          || lb_listen_hash (1, &a) == lb_listen_hash (1, &b));
    if (!ok) {
      printf ("# %s ~ %s: equal %d, overlap %d\n", pairs[i].a, pairs[i].b,
              lb_listen_equal (&a, &b), lb_listen_overlap (&a, &b));
      all = false;
    }
  }
  tap_ok (all, "%zu pairs: equality and overlap both ways, equal ones hash "
          "alike, each one's text reads back as itself",
          sizeof pairs / sizeof *pairs);
}

/* lb_index alone: every element filed under a hash comes back, and only
 * those, through growth and collisions.
 */
static void
test_index (void)
{
  struct lb_index ix = LB_INDEX_EMPTY;
  const size_t n = 5000;
  size_t i, pos, e, found, wrong = 0, missing = 0;

  pos = 0;
  tap_ok (!lb_index_next (&ix, 42, &pos, &e), "an empty index finds nothing");
  /* Element I under hash I / 3: three elements share each hash, and
   * hashes I and I + 2^k share probe sequences.
   */
  for (i = 0; i < n; i++)
    if (lb_index_add (&ix, i / 3, i) == -1)
      abort ();
  for (i = 0; i < n / 3; i++) {
    found = 0;
    pos = 0;
    while (lb_index_next (&ix, i, &pos, &e)) {
      if (e / 3 != i)
        wrong++;
      found++;
    }
    if (found != 3)
      missing++;
  }
  tap_ok (wrong == 0 && missing == 0, "%zu elements under %zu hashes: each "
          "hash gives its three, no others", n, n / 3);
  pos = 0;
  tap_ok (!lb_index_next (&ix, n, &pos, &e), "a hash never filed finds "
          "nothing");
  tap_ok (lb_index_hash (LB_INDEX_HASH_START, "a", 1)
          == UINT64_C (0xaf63dc4c8601ec8c)
          && lb_index_hash (LB_INDEX_HASH_START, "", 0) == LB_INDEX_HASH_START,
          "lb_index_hash is FNV-1a 64 (the published vector for \"a\")");
  lb_index_free (&ix);
  pos = 0;
  tap_ok (ix.slot == NULL && ix.n == 0 && !lb_index_next (&ix, 0, &pos, &e),
          "lb_index_free leaves it empty");
}

/* lb_path alone. */
static void
test_path (void)
{
  static const struct { const char *dir, *v, *want; } abs[] = {
    { "/etc/lbd", "img", "/etc/lbd/img" },
    { "/etc/lbd//", "a/b", "/etc/lbd/a/b" },
    { "/etc/lbd", "/srv/img", "/srv/img" },
  };
  char *s;
  size_t i;
  bool all = true;

  for (i = 0; i < sizeof abs / sizeof *abs; i++) {
    s = lb_path_abs (abs[i].dir, abs[i].v, strlen (abs[i].v));
    if (s == NULL || strcmp (s, abs[i].want) != 0) {
      printf ("# %s + %s: %s\n", abs[i].dir, abs[i].v, s ? s : "NULL");
      all = false;
    }
    free (s);
  }
  s = lb_path_abs ("/d", "img and more", 3);
  tap_ok (all && s && strcmp (s, "/d/img") == 0,
          "lb_path_abs: relative against the folder, absolute kept, N "
          "bytes only");
  free (s);
  s = lb_path_canon (DIR "/x/.././/y/./z/");
  tap_ok (s && strcmp (s, DIR "/y/z") == 0,
          "lb_path_canon of a path that does not exist tidies the text "
          "(%s)", s);
  free (s);
  s = lb_path_canon ("/nonexistent-lb/../..");
  tap_ok (s && strcmp (s, "/") == 0, "\"..\" stops at the root (%s)", s);
  free (s);
  s = lb_path_canon ("/tmp/nonexistent-lb-file");
  tap_ok (s && strncmp (s, "/", 1) == 0
          && strcmp (s + strlen (s) - 20, "/nonexistent-lb-file") == 0,
          "a missing file in a folder that exists: the folder resolved, "
          "the name kept (%s)", s);
  free (s);
}

/* The lexer alone: words, lines, statement ends. */
static void
test_lex (void)
{
  static const char text[] =
    "a b=c # note \\\n"                   /* 1 */
    "\td \\\n"                             /* 2 */
    "  e\r\n"                              /* 3 */
    "\n"                                   /* 4 */
    "f\\\n";                               /* 5 */
  static const char want[] = "a:1 b=c:1 | d:2 e:3 | | f:5 .";
  struct lb_config_lex lex;
  struct lb_config_word w;
  enum lb_config_lex_token t;
  char got[256] = "", err[64], shown[LB_CONFIG_SHOWN];
  size_t o = 0;
  int r;

  lb_config_lex_init (&lex, text, sizeof text - 1, "t.conf", err, sizeof err);
  do {
    t = lb_config_lex_next (&lex, &w);
    if (t == LB_CONFIG_LEX_WORD)
      o += snprintf (got + o, sizeof got - o, "%.*s:%d ", (int) w.n, w.p,
                     w.line);
    else if (t == LB_CONFIG_LEX_END)
      o += snprintf (got + o, sizeof got - o, "%s",
                     lb_config_lex_done (&lex) ? "." : "| ");
  } while (t != LB_CONFIG_LEX_ERROR && !(t == LB_CONFIG_LEX_END
                                         && lb_config_lex_done (&lex))
           && o < sizeof got - 32);
  tap_ok (strcmp (got, want) == 0, "words, lines and ends: %s", got);

  lb_config_lex_init (&lex, "a\n\nb\x01", 5, "t.conf", err, sizeof err);
  t = lb_config_lex_next (&lex, &w);
  t = lb_config_lex_next (&lex, &w);
  t = lb_config_lex_next (&lex, &w);
  t = lb_config_lex_next (&lex, &w);
  tap_ok (t == LB_CONFIG_LEX_ERROR
          && strcmp (err, "t.conf:3: control character \\x01") == 0,
          "a control byte is an error on its line: %s", err);

  r = LB_CONFIG_FAIL (&lex, 12, "%s=%d", "x", 5);
  tap_ok (r == -1 && strcmp (err, "t.conf:12: x=5") == 0,
          "LB_CONFIG_FAIL: -1, \"PATH:LINE: \" and the message");
  lex.errlen = 8;
  memset (err, 'x', sizeof err);
  LB_CONFIG_FAIL (&lex, 12, "long message");
  tap_ok (strcmp (err, "t.conf:") == 0, "cut short to ERRLEN, terminated");
  lex.err = NULL;
  tap_ok (LB_CONFIG_FAIL (&lex, 1, "nowhere") == -1, "ERR may be NULL");

  tap_ok (strcmp (lb_config_lex_show ("a\\b\x1b\xff", 5, shown),
                  "a\\\\b\\x1b\\xff") == 0,
          "lb_config_lex_show escapes: %s", shown);
  memset (got, 'q', 200);
  lb_config_lex_show (got, 200, shown);
  tap_ok (strlen (shown) == 103 && strcmp (shown + 100, "...") == 0,
          "and cuts 200 bytes to 100 and \"...\"");
  tap_ok (lb_config_lex_is ("client", 6, "client")
          && !lb_config_lex_is ("clients", 7, "client")
          && !lb_config_lex_is ("clien", 5, "client"),
          "lb_config_lex_is compares whole words");
}

int
main (void)
{
  test_listen ();
  test_index ();
  test_path ();
  test_lex ();
  return tap_done ();
}
