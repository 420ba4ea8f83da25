/* Unit tests of lbd's config parser (lb_config) and of key files
 * (lb_key): every grammar feature, every kind of error with its exact
 * FILE:LINE, and a short random mutation run for robustness (the real
 * fuzzing is libFuzzer's job).  Then the parser's parts on their own:
 * lb_listen (which lbd uses without the config), lb_index, lb_path and
 * the lexer, and the time a large file takes.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "lb_config.h"
#include "lb_config_lex.h"
#include "lb_index.h"
#include "lb_key.h"
#include "lb_listen.h"
#include "lb_path.h"
#include "tap.h"

#define CONF "/etc/lbd.conf"
#define DIR "/nonexistent-lb"

static char tmpdir[] = "/tmp/lb-test-config-XXXXXX";

/* Parse TEXT as CONF, relative paths against DIR. */
static int
parse (const char *text, struct lb_config *cfg, char *err, size_t errlen)
{
  return lb_config_parse (text, strlen (text), CONF, DIR, cfg, err, errlen);
}

/* TEXT must fail with exactly WANT, and leave the config empty. */
static void
expect_error (const char *what, const char *text, const char *want)
{
  struct lb_config cfg;
  char err[512] = "";
  int r = parse (text, &cfg, err, sizeof err);

  tap_ok (r == -1 && strcmp (err, want) == 0 && cfg.nclients == 0
          && cfg.clients == NULL && cfg.exports == NULL && cfg.path == NULL,
          "%s: %s", what, r == -1 ? err : "accepted");
  if (r == -1 && strcmp (err, want) != 0)
    printf ("#   wanted: %s\n", want);
  if (r == 0)
    lb_config_free (&cfg);
}

/* TEXT must parse; the caller checks and frees CFG. */
static bool
expect_ok (const char *what, const char *text, struct lb_config *cfg)
{
  char err[512] = "";
  int r = parse (text, cfg, err, sizeof err);

  tap_ok (r == 0, "%s parses%s%s", what, r ? ": " : "", r ? err : "");
  return r == 0;
}

static unsigned
port_of (const struct lb_listen *l)
{
  if (l->family == AF_INET)
    return ntohs (((const struct sockaddr_in *) &l->addr)->sin_port);
  return ntohs (((const struct sockaddr_in6 *) &l->addr)->sin6_port);
}

static void
test_grammar (void)
{
  struct lb_config cfg;
  const struct lb_client_conf *c;
  const struct lb_export_conf *e;
  const struct sockaddr_in *s4;
  const struct sockaddr_in6 *s6;
  char text[1024];

  /* The seed's own line. */
  if (expect_ok ("the seed's line",
                 "client file=client1/wd0e key=client1/key "
                 "listen=10.0.0.17/15440 type=simple\n", &cfg)) {
    c = &cfg.clients[0];
    s4 = (const struct sockaddr_in *) &c->listen.addr;
    tap_ok (cfg.nclients == 1 && cfg.nexports == 0
            && strcmp (cfg.path, CONF) == 0 && strcmp (cfg.dir, DIR) == 0,
            "one client, path and dir kept");
    tap_ok (strcmp (c->file, DIR "/client1/wd0e") == 0
            && strcmp (c->key_path, DIR "/client1/key") == 0,
            "relative paths made absolute against the folder (%s, %s)",
            c->file, c->key_path);
    tap_ok (strcmp (c->name, "client1/wd0e") == 0,
            "name defaults to the file= value as written");
    tap_ok (c->encrypt && c->line == 1, "encrypt defaults to yes; line 1");
    tap_ok (c->listen.family == AF_INET && s4->sin_family == AF_INET
            && c->listen.addrlen == sizeof (struct sockaddr_in)
            && s4->sin_addr.s_addr == htonl (0x0a000011)
            && port_of (&c->listen) == 15440 && !c->listen.loopback
            && strcmp (c->listen.text, "10.0.0.17/15440") == 0,
            "listen=10.0.0.17/15440 ready for bind (%s)", c->listen.text);
    lb_config_free (&cfg);
    tap_ok (cfg.clients == NULL && cfg.nclients == 0 && cfg.path == NULL,
            "lb_config_free empties the config");
    lb_config_free (&cfg);
  }

  /* Comments, blanks, continuations, CRLF, tabs, no final newline. */
  if (expect_ok ("comments and continuations",
                 "# lbd.conf\n"                                   /* 1 */
                 "\n"                                             /* 2 */
                 "   \t  \n"                                      /* 3 */
                 "client file=/srv/a key=a.key \\\n"              /* 4 */
                 "\tlisten=10.0.0.1/1 # a comment \\ not a continuation\n"
                 "# between\n"                                    /* 6 */
                 "client\tfile=b key=/k/b \\\r\n"                 /* 7 */
                 "  listen=10.0.0.1/1 name=bee encrypt=no\r\n"    /* 8 */
                 "\\\n"                                           /* 9 */
                 "export listen=127.0.0.1/65535 tls=off#c\n"      /* 10 */
                 "export listen=[::1]/015441", &cfg)) {           /* 11 */
    tap_ok (cfg.nclients == 2 && cfg.nexports == 2, "two clients, two "
            "exports");
    if (cfg.nclients == 2 && cfg.nexports == 2) {
      c = cfg.clients;
      tap_ok (c[0].line == 4 && strcmp (c[0].file, "/srv/a") == 0
              && strcmp (c[0].key_path, DIR "/a.key") == 0
              && strcmp (c[0].name, "/srv/a") == 0 && c[0].encrypt,
              "continued client: line 4, absolute file kept");
      tap_ok (c[1].line == 7 && strcmp (c[1].file, DIR "/b") == 0
              && strcmp (c[1].key_path, "/k/b") == 0
              && strcmp (c[1].name, "bee") == 0 && !c[1].encrypt,
              "CRLF continued client: line 7, name=bee, encrypt=no");
      tap_ok (lb_listen_equal (&c[0].listen, &c[1].listen),
              "two clients share one listen address");
      e = cfg.exports;
      tap_ok (e[0].line == 10 && !e[0].tls && e[0].listen.loopback
              && strcmp (e[0].listen.text, "127.0.0.1/65535") == 0,
              "export after a lone backslash line: line 10, tls=off, '#' "
              "right after a value");
      tap_ok (e[1].line == 11 && e[1].tls && e[1].listen.loopback
              && e[1].listen.family == AF_INET6
              && strcmp (e[1].listen.text, "::1/15441") == 0,
              "last line without newline: [::1]/015441, tls defaults to psk");
    }
    lb_config_free (&cfg);
  }

  if (expect_ok ("empty text", "", &cfg)) {
    tap_ok (cfg.nclients == 0 && cfg.nexports == 0, "nothing in it");
    lb_config_free (&cfg);
  }
  if (expect_ok ("comments only, backslash at the end",
                 "# nothing\n\n  # more\n\\", &cfg))
    lb_config_free (&cfg);

  /* Address forms. */
  if (expect_ok ("IPv6, wildcard and mapped addresses",
                 "client file=a key=k listen=::1/1 type=simple\n"
                 "client file=b key=k listen=*/2\n"
                 "client file=c key=k listen=fe80::1/3\n"
                 "client file=d key=k listen=[2001:DB8::10]/4\n"
                 "client file=e key=k listen=::ffff:10.1.2.3/5\n"
                 "client file=f key=k listen=fe80::2%1/6\n"
                 "client file=g key=k listen=fe80::3%lo/7\n"
                 "client file=h key=k listen=127.9.9.9/8\n"
                 "client file=i key=k listen=0.0.0.0/9\n", &cfg)
      && cfg.nclients == 9) {
    c = cfg.clients;
    s6 = (const struct sockaddr_in6 *) &c[0].listen.addr;
    tap_ok (c[0].listen.family == AF_INET6 && s6->sin6_family == AF_INET6
            && c[0].listen.addrlen == sizeof (struct sockaddr_in6)
            && IN6_IS_ADDR_LOOPBACK (&s6->sin6_addr) && c[0].listen.loopback
            && port_of (&c[0].listen) == 1,
            "::1/1 is IPv6 loopback (%s)", c[0].listen.text);
    s6 = (const struct sockaddr_in6 *) &c[1].listen.addr;
    tap_ok (c[1].listen.family == AF_INET6
            && IN6_IS_ADDR_UNSPECIFIED (&s6->sin6_addr)
            && !c[1].listen.loopback
            && strcmp (c[1].listen.text, "*/2") == 0,
            "* is the IPv6 (dual-stack) wildcard (%s)", c[1].listen.text);
    tap_ok (c[2].listen.family == AF_INET6 && !c[2].listen.loopback
            && strcmp (c[2].listen.text, "fe80::1/3") == 0,
            "fe80::1/3 without brackets (%s)", c[2].listen.text);
    tap_ok (strcmp (c[3].listen.text, "2001:db8::10/4") == 0,
            "bracketed IPv6 shown canonical (%s)", c[3].listen.text);
    s4 = (const struct sockaddr_in *) &c[4].listen.addr;
    tap_ok (c[4].listen.family == AF_INET
            && s4->sin_addr.s_addr == htonl (0x0a010203)
            && strcmp (c[4].listen.text, "10.1.2.3/5") == 0,
            "IPv4-mapped address stored as IPv4 (%s)", c[4].listen.text);
    s6 = (const struct sockaddr_in6 *) &c[5].listen.addr;
    tap_ok (s6->sin6_scope_id == 1
            && strcmp (c[5].listen.text, "fe80::2%1/6") == 0,
            "numeric zone (%s)", c[5].listen.text);
    s6 = (const struct sockaddr_in6 *) &c[6].listen.addr;
    tap_ok (s6->sin6_scope_id != 0
            && strcmp (c[6].listen.text, "fe80::3%lo/7") == 0,
            "interface zone (%s)", c[6].listen.text);
    tap_ok (c[7].listen.loopback, "127.9.9.9 is loopback");
    tap_ok (!c[8].listen.loopback
            && strcmp (c[8].listen.text, "0.0.0.0/9") == 0,
            "0.0.0.0 is the IPv4 wildcard, not loopback");
    lb_config_free (&cfg);
  }
  else
    lb_config_free (&cfg);

  /* lb_listen_equal. */
  if (expect_ok ("addresses to compare",
                 "export listen=[::1]/7\n"
                 "client file=a key=k listen=::ffff:10.0.0.1/7\n"
                 "client file=b key=k listen=10.0.0.1/7\n"
                 "client file=c key=k listen=10.0.0.1/8\n"
                 "client file=d key=k listen=10.0.0.2/8\n"
                 "export listen=::1/9\n"
                 "export listen=fe80::1%1/9\n"
                 "export listen=fe80::1/9\n", &cfg)
      && cfg.nclients == 4 && cfg.nexports == 4) {
    c = cfg.clients;
    e = cfg.exports;
    tap_ok (lb_listen_equal (&c[0].listen, &c[1].listen),
            "::ffff:10.0.0.1/7 equals 10.0.0.1/7");
    tap_ok (!lb_listen_equal (&c[1].listen, &c[2].listen),
            "another port differs");
    tap_ok (!lb_listen_equal (&c[2].listen, &c[3].listen),
            "another address differs");
    tap_ok (!lb_listen_equal (&e[0].listen, &e[1].listen)
            && !lb_listen_equal (&e[2].listen, &e[3].listen),
            "another port, another zone differ");
    tap_ok (lb_listen_equal (&e[0].listen, &e[0].listen)
            && !lb_listen_equal (&e[0].listen, &c[0].listen),
            "equal to itself, not to another family");
    lb_config_free (&cfg);
  }
  else
    lb_config_free (&cfg);

  /* Names: same name on different addresses is fine. */
  if (expect_ok ("one name on two addresses",
                 "client file=a key=k listen=10.0.0.1/1 name=x\n"
                 "client file=b key=k listen=10.0.0.1/2 name=x\n", &cfg))
    lb_config_free (&cfg);

  /* A wildcard and a specific address on different ports, and the IPv4
   * wildcard beside an IPv6 address on one port, can all be bound.
   */
  if (expect_ok ("wildcards that do not overlap",
                 "client file=a key=k listen=*/1\n"
                 "client file=b key=k listen=10.0.0.1/2\n"
                 "client file=c key=k listen=0.0.0.0/3\n"
                 "export listen=::1/3\n", &cfg))
    lb_config_free (&cfg);

  /* A long continued statement. */
  snprintf (text, sizeof text, "client \\\n file=a \\\n key=k \\\n"
            " \\\n listen=1.2.3.4/5 \\\n");
  if (expect_ok ("a statement over six lines", text, &cfg)) {
    tap_ok (cfg.nclients == 1 && cfg.clients[0].line == 1, "its line is 1");
    lb_config_free (&cfg);
  }
}

static void
test_errors (void)
{
  char big[PATH_MAX + 64];
  char text[PATH_MAX + 256];
  static const char nul[] = "client file=a\0 key=k listen=1.2.3.4/5\n";
  struct lb_config cfg;
  char err[256];

  expect_error ("unknown keyword",
                "# c\nclinet file=a key=k listen=1.2.3.4/5\n",
                CONF ":2: clinet: unknown keyword (expected client or "
                "export)");
  expect_error ("a forgotten continuation backslash",
                "client file=a key=k\nlisten=1.2.3.4/5\n",
                CONF ":1: client without listen= (required)");
  expect_error ("a key at the start of a statement",
                "listen=1.2.3.4/5\n",
                CONF ":1: listen=1.2.3.4/5: unknown keyword (expected "
                "client or export); does the line before lack a "
                "continuation backslash?");
  expect_error ("keywords are case-sensitive", "Client file=a\n",
                CONF ":1: Client: unknown keyword (expected client or "
                "export)");
  expect_error ("unknown key",
                "client file=a key=k listen=1.2.3.4/5 fiel=b\n",
                CONF ":1: fiel=b: unknown key for client (expected file, "
                "key, listen, type, name or encrypt)");
  expect_error ("a client key on an export",
                "export listen=127.0.0.1/5 \\\n  file=x\n",
                CONF ":2: file=x: unknown key for export (expected listen "
                "or tls)");
  expect_error ("an export key on a client",
                "client file=a key=k listen=1.2.3.4/5 tls=off\n",
                CONF ":1: tls=off: unknown key for client (expected file, "
                "key, listen, type, name or encrypt)");
  expect_error ("duplicate key",
                "client file=a key=k file=b listen=1.2.3.4/5\n",
                CONF ":1: file=b: duplicate key (file= is already given on "
                "line 1)");
  expect_error ("duplicate key two lines down",
                "\nclient file=a key=k listen=1.2.3.4/5 \\\n"
                "  name=x \\\n"
                "  listen=1.2.3.4/6\n",
                CONF ":4: listen=1.2.3.4/6: duplicate key (listen= is "
                "already given on line 2)");
  expect_error ("missing file=", "\n\nclient key=k \\\n listen=1.2.3.4/5\n",
                CONF ":3: client without file= (required)");
  expect_error ("missing key=", "client file=a listen=1.2.3.4/5\n",
                CONF ":1: client without key= (required)");
  expect_error ("missing listen= on an export", "export tls=psk\n",
                CONF ":1: export without listen= (required)");
  expect_error ("a keyword alone", "client\n",
                CONF ":1: client without file= (required)");
  expect_error ("key without =", "client file key=k listen=1.2.3.4/5\n",
                CONF ":1: file: no value (write file=VALUE)");
  expect_error ("empty value", "client file= key=k listen=1.2.3.4/5\n",
                CONF ":1: file=: empty value");
  expect_error ("bad port 0", "client file=a key=k listen=1.2.3.4/0\n",
                CONF ":1: listen=1.2.3.4/0: bad port (1 to 65535)");
  expect_error ("bad port 65536",
                "client file=a key=k listen=1.2.3.4/65536\n",
                CONF ":1: listen=1.2.3.4/65536: bad port (1 to 65535)");
  expect_error ("bad port, huge",
                "client file=a key=k listen=1.2.3.4/99999999999999999999\n",
                CONF ":1: listen=1.2.3.4/99999999999999999999: bad port "
                "(1 to 65535)");
  expect_error ("bad port, not a number",
                "client file=a key=k listen=1.2.3.4/http\n",
                CONF ":1: listen=1.2.3.4/http: bad port (1 to 65535)");
  expect_error ("bad port, signed", "export listen=::1/+5\n",
                CONF ":1: listen=::1/+5: bad port (1 to 65535)");
  expect_error ("empty port", "export listen=::1/\n",
                CONF ":1: listen=::1/: bad port (1 to 65535)");
  expect_error ("no port", "export listen=127.0.0.1\n",
                CONF ":1: listen=127.0.0.1: no port (write ADDRESS/PORT)");
  expect_error ("bad address (the design's example)",
                "# 1\n#2\n#3\n#4\n#5\n#6\n"
                "client file=a key=k listen=10.0.0.300/15440\n",
                CONF ":7: listen=10.0.0.300/15440: bad address");
  expect_error ("short IPv4 form", "export listen=10.1/5\n",
                CONF ":1: listen=10.1/5: bad address");
  expect_error ("host names are not looked up",
                "export listen=localhost/5\n",
                CONF ":1: listen=localhost/5: bad address");
  expect_error ("empty address", "export listen=/5\n",
                CONF ":1: listen=/5: bad address");
  expect_error ("IPv4 in brackets", "export listen=[127.0.0.1]/5\n",
                CONF ":1: listen=[127.0.0.1]/5: bad address");
  expect_error ("unclosed bracket", "export listen=[::1/5\n",
                CONF ":1: listen=[::1/5: bad address");
  expect_error ("bad IPv6", "export listen=::1::2/5\n",
                CONF ":1: listen=::1::2/5: bad address");
  expect_error ("empty zone", "export listen=fe80::1%/5\n",
                CONF ":1: listen=fe80::1%/5: bad address (empty zone after "
                "%)");
  expect_error ("zone 0", "export listen=[fe80::1%0]/5\n",
                CONF ":1: listen=[fe80::1%0]/5: bad address (bad zone "
                "number)");
  expect_error ("unknown interface",
                "export listen=fe80::1%nosuchif0/5\n",
                CONF ":1: listen=fe80::1%nosuchif0/5: bad address (no such "
                "network interface)");
  expect_error ("long address",
                "export listen=1111:2222:3333:4444:5555:6666:7777:8888:"
                "9999:aaaa:bbbb:cccc/5\n",
                CONF ":1: listen=1111:2222:3333:4444:5555:6666:7777:8888:"
                "9999:aaaa:bbbb:cccc/5: bad address");
  expect_error ("bad yes/no",
                "client file=a key=k listen=1.2.3.4/5 encrypt=maybe\n",
                CONF ":1: encrypt=maybe: expected yes or no");
  expect_error ("yes/no is case-sensitive",
                "client file=a key=k listen=1.2.3.4/5 encrypt=YES\n",
                CONF ":1: encrypt=YES: expected yes or no");
  expect_error ("unknown type",
                "client file=a key=k listen=1.2.3.4/5 type=fancy\n",
                CONF ":1: type=fancy: unknown type (the only type is "
                "simple)");
  expect_error ("bad tls value", "export listen=127.0.0.1/5 tls=yes\n",
                CONF ":1: tls=yes: expected psk or off");
  expect_error ("tls=off off loopback",
                "export listen=10.0.0.1/5 \\\n tls=off\n",
                CONF ":2: tls=off: allowed only on a loopback address "
                "(127.0.0.0/8 or ::1), not listen=10.0.0.1/5");
  expect_error ("tls=off on the wildcard", "export tls=off listen=*/5\n",
                CONF ":1: tls=off: allowed only on a loopback address "
                "(127.0.0.0/8 or ::1), not listen=*/5");

  /* Two clients, one image. */
  expect_error ("same image twice",
                "client file=img key=k listen=1.2.3.4/5\n"
                "client file=img key=k2 listen=1.2.3.4/6 name=other\n",
                CONF ":2: file=img: the same image (" DIR "/img) as the "
                "client on line 1");
  expect_error ("same image, spelled another way",
                "client file=d/img key=k listen=1.2.3.4/5\n\n"
                "client file=./d/../d//img key=k listen=1.2.3.4/6\n",
                CONF ":3: file=./d/../d//img: the same image (" DIR
                "/d/img) as the client on line 1");
  expect_error ("same image, absolute and relative",
                "client file=" DIR "/img key=k listen=1.2.3.4/5\n"
                "client key=k listen=1.2.3.4/6 \\\n file=img\n",
                CONF ":3: file=img: the same image (" DIR "/img) as the "
                "client on line 1");

  /* Two clients, one name, one address. */
  expect_error ("same name on one address",
                "client file=a key=k listen=1.2.3.4/5 name=n\n"
                "client file=b key=k listen=1.2.3.4/5 \\\n  name=n\n",
                CONF ":3: name=n: the client on line 1 at "
                "listen=1.2.3.4/5 has this name too");
  expect_error ("a default name taken by another client's name=",
                "client file=a key=k listen=1.2.3.4/5 name=b\n"
                "client file=b key=k listen=::ffff:1.2.3.4/5\n",
                CONF ":2: name b (the default: the file= value) is the name "
                "of the client on line 1 at listen=1.2.3.4/5 too; give "
                "this one a name=");

  /* Clients and exports on one address. */
  expect_error ("an export on a client's address",
                "client file=a key=k listen=127.0.0.1/5\n"
                "export listen=127.0.0.1/5\n",
                CONF ":2: listen=127.0.0.1/5: already the address of the "
                "client on line 1; an export needs an address of its own");
  expect_error ("a client on an export's address",
                "export listen=[::1]/5\n"
                "client file=a key=k listen=::1/5\n",
                CONF ":2: listen=::1/5: already the address of the export on "
                "line 1");
  expect_error ("two exports on one address",
                "export listen=::1/5\nexport listen=::1/5 tls=off\n",
                CONF ":2: listen=::1/5: already the address of the export on "
                "line 1");
  expect_error ("a wildcard overlapping a client",
                "client file=a key=k listen=*/5\n"
                "client file=b key=k listen=10.0.0.1/5\n",
                CONF ":2: listen=10.0.0.1/5: overlaps listen=*/5 of the "
                "client on line 1 (the two cannot both be bound; give both "
                "the same address)");
  expect_error ("the IPv4 wildcard overlapping an export",
                "export listen=127.0.0.1/5\n"
                "client file=b key=k listen=0.0.0.0/5\n",
                CONF ":2: listen=0.0.0.0/5: overlaps listen=127.0.0.1/5 of "
                "the export on line 1 (the two cannot both be bound)");

  /* Lexical errors. */
  expect_error ("backslash followed by a blank",
                "client file=a key=k listen=1.2.3.4/5 \\ \n name=x\n",
                CONF ":1: \\\\: a backslash continues a line only as its "
                "last character, but blanks or a comment follow it");
  expect_error ("backslash ending a word, then a comment",
                "client file=a\\ # what\n",
                CONF ":1: file=a\\\\: a backslash continues a line only as "
                "its last character, but blanks or a comment follow it");
  expect_error ("control character",
                "client file=a key=k \\\n listen=1.2.3.4/5\x1b[2J\n",
                CONF ":2: control character \\x1b");
  expect_error ("control character in a comment", "\n\n# bell\a\n",
                CONF ":3: control character \\x07");
  expect_error ("a lone CR", "client file=a\rkey=k\n",
                CONF ":1: control character \\x0d");
  tap_ok (lb_config_parse (nul, sizeof nul - 1, CONF, DIR, &cfg, err,
                           sizeof err) == -1
          && strcmp (err, CONF ":1: NUL byte: is this a text file?") == 0,
          "NUL byte: %s", err);

  memset (big, 'p', sizeof big);
  big[PATH_MAX] = '\0';
  snprintf (text, sizeof text, "client file=%s key=k listen=1.2.3.4/5\n",
            big);
  tap_ok (parse (text, &cfg, err, sizeof err) == -1
          && strncmp (err, CONF ":1: file=pppp", 18) == 0
          && strstr (err, "...: path too long") != NULL,
          "path too long, shown cut short: %.40s...", err);
  big[LB_CONFIG_NAME_MAX + 1] = '\0';
  snprintf (text, sizeof text,
            "client file=a key=k listen=1.2.3.4/5 name=%s\n", big);
  tap_ok (parse (text, &cfg, err, sizeof err) == -1
          && strncmp (err, CONF ":1: name=pppp", 18) == 0
          && strstr (err, "...: longer than 255 bytes") != NULL,
          "name of 256 bytes refused");
  snprintf (text, sizeof text,
            "client key=k listen=1.2.3.4/5 \\\n file=%s\n", big);
  tap_ok (parse (text, &cfg, err, sizeof err) == -1
          && strncmp (err, CONF ":2: file=pppp", 18) == 0
          && strstr (err, "...: longer than 255 bytes, too long to be the "
                     "client's name as well; give it a name=") != NULL,
          "file= of 256 bytes refused as the default name");
  snprintf (text, sizeof text,
            "client key=k listen=1.2.3.4/5 name=n file=%s\n", big);
  tap_ok (parse (text, &cfg, err, sizeof err) == 0,
          "file= of 256 bytes accepted with a name=");
  lb_config_free (&cfg);
  big[LB_CONFIG_NAME_MAX] = '\0';
  snprintf (text, sizeof text,
            "client file=a key=k listen=1.2.3.4/5 name=%s\n", big);
  tap_ok (parse (text, &cfg, err, sizeof err) == 0,
          "name of 255 bytes accepted");
  lb_config_free (&cfg);
  snprintf (text, sizeof text, "client file=%s key=k listen=1.2.3.4/5\n",
            big);
  tap_ok (parse (text, &cfg, err, sizeof err) == 0 && cfg.nclients == 1
          && strlen (cfg.clients[0].name) == LB_CONFIG_NAME_MAX,
          "file= of 255 bytes accepted as the name");
  lb_config_free (&cfg);

  /* Unprintable bytes in a message are escaped. */
  expect_error ("escaped bytes",
                "client f\xc3\xa9le=x\n",
                CONF ":1: f\\xc3\\xa9le=x: unknown key for client (expected "
                "file, key, listen, type, name or encrypt)");

  /* A tiny error buffer still gets a terminated prefix. */
  memset (err, 'x', sizeof err);
  tap_ok (parse ("bogus\n", &cfg, err, 8) == -1 && strlen (err) == 7
          && strncmp (err, CONF, 7) == 0, "a short ERR is cut, not overrun");
}

/* A line far longer than any buffer, and a text past the size limit. */
static void
test_limits (void)
{
  const size_t n = 300000;
  char *text = malloc (LB_CONFIG_MAX_SIZE + 2);
  struct lb_config cfg;
  char err[256];

  if (text == NULL)
    abort ();
  memcpy (text, "client ", 7);
  memset (text + 7, 'a', n);
  tap_ok (lb_config_parse (text, n + 7, CONF, DIR, &cfg, err, sizeof err)
          == -1 && strncmp (err, CONF ":1: aaaa", 13) == 0
          && strstr (err, "...: unknown key for client") != NULL
          && strlen (err) < 200,
          "a 300 kB word, no newline: short message (%zu bytes)",
          strlen (err));
  memset (text, '\n', LB_CONFIG_MAX_SIZE + 1);
  tap_ok (lb_config_parse (text, LB_CONFIG_MAX_SIZE, CONF, DIR, &cfg, err,
                           sizeof err) == 0 && cfg.nclients == 0,
          "a text of exactly the limit is read");
  lb_config_free (&cfg);
  tap_ok (lb_config_parse (text, LB_CONFIG_MAX_SIZE + 1, CONF, DIR, &cfg,
                           err, sizeof err) == -1
          && strcmp (err, CONF ": larger than 1048576 bytes") == 0,
          "one byte more is refused: %s", err);
  free (text);
}

/* Many clients: the look-ups by hash still find the one duplicate. */
static void
test_many (void)
{
  const int n = 3000;
  size_t cap = 100 * (n + 1), len = 0;
  char *text = malloc (cap), err[256];
  struct lb_config cfg;
  int i;

  if (text == NULL)
    abort ();
  for (i = 0; i < n; i++)
    len += snprintf (text + len, cap - len, "client file=img%d key=k "
                     "listen=10.0.%d.1/%d%s\n", i, i % 3, 15440 + i % 5,
                     i % 2 ? " name=x" : "");
  tap_ok (lb_config_parse (text, len, CONF, DIR, &cfg, err, sizeof err) == -1
          && strstr (err, ":32: name=x: the client on line 2 at "
                     "listen=10.0.1.1/15441 has this name too") != NULL,
          "a name repeated on one address among many: %s", err);
  len = 0;
  for (i = 0; i < n; i++)
    len += snprintf (text + len, cap - len, "client file=img%d key=k "
                     "listen=10.0.%d.1/%d\n", i, i % 3, 15440 + i % 5);
  tap_ok (lb_config_parse (text, len, CONF, DIR, &cfg, err, sizeof err) == 0
          && cfg.nclients == (size_t) n
          && strcmp (cfg.clients[n - 1].name, "img2999") == 0,
          "%d clients on 15 addresses", n);
  lb_config_free (&cfg);
  len += snprintf (text + len, cap - len, "client key=k listen=::1/1 "
                   "file=" DIR "/x/../img1234\n");
  snprintf (err, sizeof err, "x");
  tap_ok (lb_config_parse (text, len, CONF, DIR, &cfg, err, sizeof err) == -1
          && strcmp (err, CONF ":3001: file=" DIR "/x/../img1234: the same "
                     "image (" DIR "/img1234) as the client on line 1235")
          == 0, "an image repeated after %d: %s", n, err);
  free (text);
}

/* Random mutations of a good config: the parser must neither crash nor
 * leak (ASan and valgrind watch), and every failure must carry the
 * FILE:LINE prefix.  A smoke test only; libFuzzer does the real work.
 */
static void
test_mutations (void)
{
  static const char base[] =
    "# seed\nclient file=client1/wd0e key=client1/key \\\n"
    "  listen=10.0.0.17/15440 type=simple name=c1 encrypt=no\n"
    "client file=b key=k listen=[::1]/15441\n"
    "export listen=127.0.0.1/15442 tls=off\n";
  static const char alphabet[] = " \t\n\r\\#=/:[]*%.0123456789abcfxyz\0\x80";
  char buf[sizeof base + 16], err[256];
  struct lb_config cfg;
  unsigned seed = 12345, i, j, accepted = 0, prefixed = 0;
  const unsigned rounds = 20000;

  for (i = 0; i < rounds; i++) {
    size_t len = sizeof base - 1;
    memcpy (buf, base, len);
    for (j = 0; j < 1 + (i % 4) && len > 0; j++) {
      size_t at;
      seed = seed * 1103515245 + 12345;
      at = (seed >> 8) % len;
      seed = seed * 1103515245 + 12345;
      switch ((seed >> 16) % 3) {
      case 0:                   /* replace a byte */
        buf[at] = alphabet[(seed >> 4) % (sizeof alphabet - 1)];
        break;
      case 1:                   /* delete a byte */
        memmove (buf + at, buf + at + 1, len - at - 1);
        len--;
        break;
      default:                  /* cut the text short */
        len = at;
        break;
      }
    }
    if (lb_config_parse (buf, len, CONF, DIR, &cfg, err, sizeof err) == 0) {
      accepted++;
      lb_config_free (&cfg);
    }
    else if (strncmp (err, CONF ":", strlen (CONF ":")) == 0
             && strchr (err, '\n') == NULL)
      prefixed++;
  }
  tap_ok (accepted + prefixed == rounds,
          "%u mutations: %u accepted, %u refused with FILE:LINE", rounds,
          accepted, prefixed);
}

/* Write LEN bytes of DATA (LEN -1: a string) to tmpdir/NAME with MODE;
 * return the path.
 */
static char *
write_file (const char *name, const void *data, size_t len, mode_t mode)
{
  static char path[4][PATH_MAX];
  static int which;
  char *p = path[which++ % 4];
  int fd;

  if (len == (size_t) -1)
    len = strlen (data);
  snprintf (p, PATH_MAX, "%s/%s", tmpdir, name);
  unlink (p);
  fd = open (p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd == -1 || write (fd, data, len) != (ssize_t) len
      || fchmod (fd, mode) == -1 || close (fd) == -1) {
    perror (p);
    exit (1);
  }
  return p;
}

static void
test_load (void)
{
  static const char conf[] =
    "client file=client1/wd0e key=client1/key listen=10.0.0.17/15440 "
    "type=simple\n"
    "client file=sub/../client1/wd0e key=k listen=10.0.0.17/15441\n";
  struct lb_config cfg;
  char err[512], want[2 * PATH_MAX + 256], real[PATH_MAX], cwd[PATH_MAX];
  char *path;

  if (realpath (tmpdir, real) == NULL || getcwd (cwd, sizeof cwd) == NULL)
    abort ();
  mkdir (strcat (strcpy (want, tmpdir), "/client1"), 0700);
  mkdir (strcat (strcpy (want, tmpdir), "/sub"), 0700);
  write_file ("client1/wd0e", "", 0, 0600);

  /* The first line alone. */
  path = write_file ("lbd.conf", conf, strchr (conf, '\n') + 1 - conf, 0644);
  tap_ok (lb_config_load (path, &cfg, err, sizeof err) == 0,
          "load a config file%s%s", cfg.path ? "" : ": ",
          cfg.path ? "" : err);
  if (cfg.nclients == 1) {
    snprintf (want, sizeof want, "%s/client1/wd0e", real);
    tap_ok (strcmp (cfg.dir, real) == 0 && strcmp (cfg.path, path) == 0
            && strcmp (cfg.clients[0].file, want) == 0,
            "paths relative to the file's folder (%s)", cfg.clients[0].file);
  }
  lb_config_free (&cfg);

  /* The image exists: the check resolves ".." for real. */
  path = write_file ("lbd.conf", conf, sizeof conf - 1, 0644);
  snprintf (want, sizeof want, "%s:2: file=sub/../client1/wd0e: the same "
            "image (%s/client1/wd0e) as the client on line 1", path, real);
  tap_ok (lb_config_load (path, &cfg, err, sizeof err) == -1
          && strcmp (err, want) == 0, "same existing image: %s", err);

  /* Through a symbolic link to the folder, the image not yet there. */
  snprintf (want, sizeof want, "%s/link", tmpdir);
  symlink ("client1", want);
  path = write_file ("lbd.conf",
                     "client file=client1/new key=k listen=1.2.3.4/5\n"
                     "client file=link/new key=k listen=1.2.3.4/6\n", -1,
                     0644);
  snprintf (want, sizeof want, "%s:2: file=link/new: the same image "
            "(%s/client1/new) as the client on line 1", path, real);
  tap_ok (lb_config_load (path, &cfg, err, sizeof err) == -1
          && strcmp (err, want) == 0, "same new image through a link: %s",
          err);

  /* A relative config path: messages name it as given, dir is absolute. */
  if (chdir (tmpdir) == 0) {
    write_file ("lbd.conf", "\n\nexport listen=1.2.3.4/5 tls=off\n", -1,
                0644);
    tap_ok (lb_config_load ("lbd.conf", &cfg, err, sizeof err) == -1
            && strcmp (err, "lbd.conf:3: tls=off: allowed only on a "
                       "loopback address (127.0.0.0/8 or ::1), not "
                       "listen=1.2.3.4/5") == 0,
            "a relative config path in messages: %s", err);
    write_file ("lbd.conf", "client file=x key=y listen=1.2.3.4/5", -1,
                0644);
    snprintf (want, sizeof want, "%s/x", real);
    tap_ok (lb_config_load ("lbd.conf", &cfg, err, sizeof err) == 0
            && strcmp (cfg.dir, real) == 0
            && strcmp (cfg.clients[0].file, want) == 0,
            "a relative config path gives an absolute folder (%s)",
            cfg.dir ? cfg.dir : err);
    lb_config_free (&cfg);
    if (chdir (cwd) != 0)
      abort ();
  }

  snprintf (want, sizeof want, "%s/absent.conf", tmpdir);
  tap_ok (lb_config_load (want, &cfg, err, sizeof err) == -1
          && strstr (err, "/absent.conf: No such file or directory") != NULL
          && cfg.clients == NULL, "missing config file: %s", err);
  tap_ok (lb_config_load (tmpdir, &cfg, err, sizeof err) == -1
          && strstr (err, ": Is a directory") != NULL,
          "a folder as config: %s", err);
}

static void
test_keys (void)
{
  static unsigned char big[LB_KEY_FILE_MAX + 1];
  struct lb_key key;
  unsigned char digest[32];
  char err[512], want[512], hex[65], *path;
  size_t i;

  path = write_file ("abc.key", "abc", 3, 0600);
  tap_ok (lb_key_load (path, false, &key, err, sizeof err) == 0,
          "load a 0600 key file");
  lb_key_hex (&key, hex);
  tap_ok (strcmp (hex, "ba7816bf8f01cfea414140de5dae2223"
                  "b00361a396177a9cb410ff61f20015ad") == 0,
          "PSK is SHA-256(\"abc\") (FIPS 180-2 vector): %s", hex);
  path = write_file ("text.key", "livebackup test key\n", 20, 0400);
  tap_ok (lb_key_load (path, false, &key, err, sizeof err) == 0,
          "load a 0400 key file");
  lb_key_hex (&key, hex);
  tap_ok (strcmp (hex, "9e2e37a2e025ed353594aaab216fd6a6"
                  "7fbaad84d9b6f7f4ae5b28d1ab05bf57") == 0,
          "PSK is what sha256sum gives for the file: %s", hex);
  lb_key_wipe (&key);
  for (i = 0; i < sizeof key.psk && key.psk[i] == 0; i++)
    ;
  tap_ok (i == sizeof key.psk, "lb_key_wipe zeroes the key");

  /* Bigger than the read buffer, binary, up to the limit. */
  for (i = 0; i < sizeof big; i++)
    big[i] = (i * 7919) >> 3;
  path = write_file ("big.key", big, LB_KEY_FILE_MAX, 0600);
  gnutls_hash_fast (GNUTLS_DIG_SHA256, big, LB_KEY_FILE_MAX, digest);
  tap_ok (lb_key_load (path, false, &key, err, sizeof err) == 0
          && memcmp (key.psk, digest, 32) == 0,
          "a 1 MiB binary key hashes as a whole");
  path = write_file ("huge.key", big, LB_KEY_FILE_MAX + 1, 0600);
  memset (&key, 0xff, sizeof key);
  snprintf (want, sizeof want, "%s: is larger than 1 MiB: is it really a "
            "key file?", path);
  tap_ok (lb_key_load (path, false, &key, err, sizeof err) == -1
          && strcmp (err, want) == 0 && key.psk[0] == 0 && key.psk[31] == 0,
          "one byte more is refused, key wiped: %s", err);

  path = write_file ("empty.key", "", 0, 0600);
  snprintf (want, sizeof want, "%s: is empty", path);
  tap_ok (lb_key_load (path, false, &key, err, sizeof err) == -1
          && strcmp (err, want) == 0, "empty key file refused: %s", err);

  path = write_file ("open.key", "abc", 3, 0644);
  snprintf (want, sizeof want, "%s: permissions 0644 are too open; chmod "
            "600 it, or pass --allow-open-key", path);
  tap_ok (lb_key_load (path, false, &key, err, sizeof err) == -1
          && strcmp (err, want) == 0, "0644 refused: %s", err);
  tap_ok (lb_key_load (path, true, &key, err, sizeof err) == 0
          && key.psk[0] == 0xba, "0644 allowed when asked");
  path = write_file ("group.key", "abc", 3, 0640);
  tap_ok (lb_key_load (path, false, &key, err, sizeof err) == -1
          && strstr (err, "permissions 0640 are too open") != NULL,
          "0640 (group can read) refused");
  path = write_file ("ow.key", "abc", 3, 0602);
  tap_ok (lb_key_load (path, false, &key, err, sizeof err) == -1
          && strstr (err, "permissions 0602 are too open") != NULL,
          "0602 (others can write) refused");
  path = write_file ("empty-open.key", "", 0, 0644);
  snprintf (want, sizeof want, "%s: is empty", path);
  tap_ok (lb_key_load (path, true, &key, err, sizeof err) == -1
          && strcmp (err, want) == 0, "empty refused even with the flag");

  snprintf (want, sizeof want, "%s/absent.key", tmpdir);
  tap_ok (lb_key_load (want, false, &key, err, sizeof err) == -1
          && strncmp (err, want, strlen (want)) == 0
          && strcmp (err + strlen (want), ": No such file or directory") == 0,
          "missing key file: %s", err);
  snprintf (want, sizeof want, "%s: not a regular file", tmpdir);
  tap_ok (lb_key_load (tmpdir, true, &key, err, sizeof err) == -1
          && strcmp (err, want) == 0, "a folder refused: %s", err);
  snprintf (want, sizeof want, "%s/fifo.key", tmpdir);
  if (mkfifo (want, 0600) == 0) {
    tap_ok (lb_key_load (want, false, &key, err, sizeof err) == -1
            && strstr (err, ": not a regular file") != NULL,
            "a FIFO refused without waiting for a writer");
    unlink (want);
  }
}

/* --- the parts of the parser on their own --------------------------- */

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

/* The whole-file checks are look-ups, not passes over the statements
 * before: a file near the size limit of clients on distinct addresses
 * (the worst case for a pairwise check, once 2-3 s) takes about as long
 * as the same clients on one address.  The two are timed in turns, the
 * best of three each, so the load of the machine counts alike for both.
 */
static double
time_parse (const char *text, size_t len, size_t *nclients)
{
  struct lb_config cfg;
  struct timespec t0, t1;
  char err[256];

  clock_gettime (CLOCK_MONOTONIC, &t0);
  if (lb_config_parse (text, len, CONF, DIR, &cfg, err, sizeof err) == -1)
    printf ("# %s\n", err);
  clock_gettime (CLOCK_MONOTONIC, &t1);
  *nclients = cfg.nclients;
  lb_config_free (&cfg);
  return (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
}

static void
test_speed (void)
{
  const size_t cap = LB_CONFIG_MAX_SIZE;
  char *many = malloc (cap), *one = malloc (cap);
  size_t nmany = 0, none = 0, cmany = 0, cone = 0;
  double tmany = 1e9, tone = 1e9, t;
  int i, rep;

  if (many == NULL || one == NULL)
    abort ();
  for (i = 0; nmany + 80 < cap; i++) {
    nmany += snprintf (many + nmany, cap - nmany, "client file=%d key=k "
                       "listen=10.%d.%d.%d/%d\n", i, i >> 16 & 255,
                       i >> 8 & 255, i & 255, 1 + i % 60000);
    none += snprintf (one + none, cap - none, "client file=%d key=k "
                      "listen=10.0.0.1/15440\n", i);
  }
  for (rep = 0; rep < 3; rep++) {
    t = time_parse (many, nmany, &cmany);
    tmany = t < tmany ? t : tmany;
    t = time_parse (one, none, &cone);
    tone = t < tone ? t : tone;
  }
  tap_ok (cmany == (size_t) i && cone == (size_t) i && tmany < 3 * tone,
          "%d clients (%zu bytes) on as many addresses: %.3f s; on one: "
          "%.3f s", i, nmany, tmany, tone);
  free (many);
  free (one);
}

int
main (void)
{
  char cmd[PATH_MAX + 32];

  if (mkdtemp (tmpdir) == NULL) {
    perror ("mkdtemp");
    return 1;
  }
  test_grammar ();
  test_errors ();
  test_limits ();
  test_many ();
  test_mutations ();
  test_load ();
  test_keys ();
  test_listen ();
  test_index ();
  test_path ();
  test_lex ();
  test_speed ();

  snprintf (cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system (cmd) != 0)
    printf ("# could not remove %s\n", tmpdir);
  return tap_done ();
}
