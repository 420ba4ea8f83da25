/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of lbd's config parser (lb_config) and of key files
 * (lb_key): every grammar feature, every kind of error with its exact
 * FILE:LINE, and a short random mutation run for robustness (the real
 * fuzzing is libFuzzer's job), and the time a large file takes.  The
 * parser's parts on their own are in test-config-parts.c.
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
#include "lb_key.h"
#include "lb_listen.h"
#include "config-harness.h"


static char tmpdir[] = "/tmp/lb-test-config-XXXXXX";

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
          /* an excerpt of the word and the list of the client's keys */
          && strlen (err) < 260,
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

/* Server-wide settings: KEY=VALUE lines without a keyword
 * (test-config-errors.c has their errors).
 */
static void
test_settings (void)
{
  struct lb_config cfg;

  if (expect_ok ("a metrics= line",
                 "# settings first\nmetrics=stats/lbd.prom  # for node_exporter\n"
                 "client file=a key=k listen=1.2.3.4/5\n", &cfg)) {
    tap_ok (cfg.server.metrics
            && strcmp (cfg.server.metrics, DIR "/stats/lbd.prom") == 0
            && cfg.server.metrics_line == 2 && cfg.nclients == 1,
            "metrics= relative to the config's folder, its line kept (%s)",
            cfg.server.metrics ? cfg.server.metrics : "none");
    lb_config_free (&cfg);
    tap_ok (cfg.server.metrics == NULL, "lb_config_free frees it");
  }
  if (expect_ok ("an absolute metrics=, continued onto a comment",
                 "client file=a key=k listen=1.2.3.4/5\n"
                 "metrics=/var/lib/node/lbd.prom \\\n  # nothing more\n",
                 &cfg)) {
    tap_ok (strcmp (cfg.server.metrics, "/var/lib/node/lbd.prom") == 0,
            "an absolute path is kept");
    lb_config_free (&cfg);
  }
  if (expect_ok ("no settings", "client file=a key=k listen=1.2.3.4/5\n",
                 &cfg)) {
    tap_ok (cfg.server.metrics == NULL, "no metrics= is NULL");
    lb_config_free (&cfg);
  }
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
    "export listen=127.0.0.1/15442 tls=off\n"
    "metrics=m.prom\n";
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

/* history= (lb_history.h): parsed into the client's policy; its
 * calendar and its retention.
 */
static void
test_history (void)
{
  struct lb_config cfg;
  struct lb_history h;
  char why[128], text[128];
  int64_t t[6];
  bool keep[6];
  int i;

  if (expect_ok ("history=", "client file=a key=k listen=1.2.3.4/5 "
                 "history=hourly:24,daily:14,weekly:8,monthly:12\n"
                 "client file=b key=k listen=1.2.3.4/5\n", &cfg)) {
    const struct lb_history *c = &cfg.clients[0].history;
    tap_ok (c->keep[LB_HISTORY_HOURLY] == 24
            && c->keep[LB_HISTORY_DAILY] == 14
            && c->keep[LB_HISTORY_WEEKLY] == 8
            && c->keep[LB_HISTORY_MONTHLY] == 12
            && c->keep[LB_HISTORY_MINUTELY] == 0 && lb_history_on (c),
            "history= parsed into the policy");
    tap_ok (!lb_history_on (&cfg.clients[1].history),
            "no history= means no restore points");
    lb_history_format (c, text, sizeof text);
    tap_ok (strcmp (text, "hourly:24,daily:14,weekly:8,monthly:12") == 0,
            "the policy written back: %s", text);
    lb_config_free (&cfg);
  }
  tap_ok (lb_history_parse ("minutely:3", 10, &h, why, sizeof why) == 0
          && h.keep[LB_HISTORY_MINUTELY] == 3, "minutely:3");
  /* 2026-12-07 is a Monday; 2026-12-06 a Sunday. */
  tap_ok (lb_history_period (LB_HISTORY_WEEKLY, 1796601600) /* Mon 00:00 */
          == lb_history_period (LB_HISTORY_WEEKLY, 1797206399) /* Sun */
          && lb_history_period (LB_HISTORY_WEEKLY, 1796601599)
             != lb_history_period (LB_HISTORY_WEEKLY, 1796601600),
          "ISO weeks run Monday to Sunday");
  tap_ok (lb_history_period (LB_HISTORY_MONTHLY, 1796083200) /* 12-01 */
          != lb_history_period (LB_HISTORY_MONTHLY, 1796083199),
          "months turn at midnight UTC on the first");
  tap_ok (lb_history_due (&h, 0, 1000) && !lb_history_due (&h, 60, 119)
          && lb_history_due (&h, 119, 120), "due once per minute");
  /* Newest first: two in minute 10, one each in 9, 8, 7, 6. */
  for (i = 0; i < 6; i++)
    t[i] = 600 + 30 - (i == 0 ? 0 : 30 + (i - 1) * 60);
  t[1] = 605;
  lb_history_retain (&h, t, 6, keep);
  tap_ok (keep[0] && !keep[1] && keep[2] && keep[3] && !keep[4] && !keep[5],
          "minutely:3 keeps the newest of each of the 3 newest minutes");
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
  test_settings ();
  test_limits ();
  test_many ();
  test_mutations ();
  test_load ();
  test_keys ();
  test_speed ();
  test_history ();

  snprintf (cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system (cmd) != 0)
    printf ("# could not remove %s\n", tmpdir);
  return tap_done ();
}
