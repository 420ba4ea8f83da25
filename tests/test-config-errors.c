/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of lbd's config parser: every kind of error, each with its
 * exact FILE:LINE and message.  The grammar that parses is
 * test-config.c's.
 */

#include <config.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config-harness.h"

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
                CONF ":1: listen=1.2.3.4/5: unknown key for server-wide "
                "settings (expected metrics); does the line before lack a "
                "continuation backslash?");
  expect_error ("keywords are case-sensitive", "Client file=a\n",
                CONF ":1: Client: unknown keyword (expected client or "
                "export)");
  expect_error ("unknown key",
                "client file=a key=k listen=1.2.3.4/5 fiel=b\n",
                CONF ":1: fiel=b: unknown key for client (expected file, "
                "key, listen, type, name, encrypt, max-rate, history or verify)");
  expect_error ("a client key on an export",
                "export listen=127.0.0.1/5 \\\n  file=x\n",
                CONF ":2: file=x: unknown key for export (expected listen "
                "or tls)");
  expect_error ("an export key on a client",
                "client file=a key=k listen=1.2.3.4/5 tls=off\n",
                CONF ":1: tls=off: unknown key for client (expected file, "
                "key, listen, type, name, encrypt, max-rate, history or verify)");
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
  expect_error ("history: unknown kind",
                "client file=a key=k listen=1.2.3.4/5 history=yearly:3\n",
                CONF ":1: history=yearly:3: unknown kind 'yearly' (expected "
                "minutely, hourly, daily, weekly or monthly)");
  expect_error ("history: no count",
                "client file=a key=k \\\n listen=1.2.3.4/5 history=daily\n",
                CONF ":2: history=daily: 'daily' is not KIND:COUNT (e.g. "
                "hourly:24)");
  expect_error ("history: zero",
                "client file=a key=k listen=1.2.3.4/5 history=daily:0\n",
                CONF ":1: history=daily:0: daily: the count must be a "
                "number from 1 to 100000");
  expect_error ("history: twice",
                "client file=a key=k listen=1.2.3.4/5 "
                "history=daily:1,daily:2\n",
                CONF ":1: history=daily:1,daily:2: daily given twice");
  expect_error ("history: trailing comma",
                "client file=a key=k listen=1.2.3.4/5 history=daily:1,\n",
                CONF ":1: history=daily:1,: a comma with nothing after it");
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
                "file, key, listen, type, name, encrypt, max-rate, history or verify)");

  /* A tiny error buffer still gets a terminated prefix. */
  memset (err, 'x', sizeof err);
  tap_ok (parse ("bogus\n", &cfg, err, 8) == -1 && strlen (err) == 7
          && strncmp (err, CONF, 7) == 0, "a short ERR is cut, not overrun");
}

/* Server-wide settings (KEY=VALUE lines without a keyword). */
static void
test_settings_errors (void)
{
  expect_error ("a setting given twice",
                "metrics=a.prom\nclient file=a key=k listen=1.2.3.4/5\n"
                "metrics=b.prom\n",
                CONF ":3: metrics=b.prom: duplicate key (metrics= is already "
                "given on line 1)");
  expect_error ("a setting twice on one line",
                "metrics=a.prom metrics=b.prom\n",
                CONF ":1: metrics=b.prom: duplicate key (metrics= is already "
                "given on line 1)");
  expect_error ("an unknown setting",
                "client file=a key=k listen=1.2.3.4/5\nmetric=a.prom\n",
                CONF ":2: metric=a.prom: unknown key for server-wide "
                "settings (expected metrics)");
  expect_error ("a statement's key after a setting",
                "metrics=a.prom tls=off\n",
                CONF ":1: tls=off: unknown key for server-wide settings "
                "(expected metrics)");
  expect_error ("an empty metrics=", "metrics=\n",
                CONF ":1: metrics=: empty value");
  expect_error ("metrics= naming a folder", "metrics=/var/lib/node/\n",
                CONF ":1: metrics=/var/lib/node/: names a folder; give a "
                "file's name");
  expect_error ("a setting after a keyword is the statement's key",
                "client metrics=a.prom\n",
                CONF ":1: metrics=a.prom: unknown key for client (expected "
                "file, key, listen, type, name, encrypt, max-rate, history or verify)");
}

int
main (void)
{
  test_errors ();
  test_settings_errors ();
  return tap_done ();
}
