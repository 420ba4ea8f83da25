/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: lbd's configuration file.
 *
 * The parser's parts: the lexer (lb_config_lex.c), the statements and
 * their keys (lb_config_stmt.c: how to add a key is said there), the
 * whole-file checks (lb_config_whole.c), listen addresses (lb_listen.c)
 * and paths (lb_path.c); lb_config.c reads the file and drives them.
 *
 * The grammar, from the seed (see also lbd.conf(5)):
 *
 *   client file=client1/wd0e key=client1/key listen=10.0.0.17/15440 type=simple
 *   export listen=127.0.0.1/15441 tls=off
 *
 * Lexical rules:
 *   - A statement is a keyword followed by KEY=VALUE words separated by
 *     spaces or tabs.  There is no quoting: a value cannot hold blanks
 *     or '#'.  Keywords and keys are case-sensitive.
 *   - '#' starts a comment that runs to the end of the physical line,
 *     wherever it stands (a value cannot contain '#').
 *   - A backslash that is the last character of a physical line (a CR
 *     before the newline is allowed) continues the statement on the next
 *     line; the backslash and newline count as a blank, so a word never
 *     spans two lines.  A backslash inside a comment is part of the
 *     comment and continues nothing; a word ending in a backslash that only
 *     blanks or a comment follow is an error that says so.
 *   - Blank lines and comment-only lines are ignored; so is a CR before a
 *     newline.  A NUL or other control byte (except tab) is an error.
 *
 * Statements:
 *   KEY=VALUE ...
 *     Server-wide settings: a line that starts with a KEY=VALUE word
 *     rather than a keyword.  Each key may be given once in the file.
 *       metrics=PATH    the Prometheus metrics file (lbd/metrics.h)
 *   client file=PATH key=PATH listen=ADDR/PORT [type=simple]
 *          [name=NAME] [encrypt=yes|no] [max-rate=BYTES]
 *          [history=KIND:N,...]
 *     file, key and listen are required; type defaults to simple, the
 *     only type; name defaults to the file= value as written, and may
 *     not exceed LB_CONFIG_NAME_MAX bytes either way; encrypt defaults
 *     to yes; max-rate (bytes a second lbd reads from the client, as
 *     lb_rate_parse takes it) to 0, no limit; history= (lb_history.h)
 *     keeps restore points, none by default.
 *   export listen=ADDR/PORT [tls=psk|off]
 *     For restores.  tls=off is allowed only on a loopback address.
 *
 * Relative paths in file=, key= and metrics= are made absolute against the config
 * file's folder.  ADDR is an IPv4 literal, an IPv6 literal with or
 * without brackets (::1/15440, [::1]/15440; fe80::1%eth0 names a zone),
 * or '*' for every address; PORT is 1..65535.  No name is ever looked up
 * in the DNS.
 *
 * Whole-file rules: two clients may not name the same image (compared
 * after resolving symbolic links where the path, or its folder, exists);
 * two clients on one listen address may not have the same name; an
 * address may not serve both clients and an export, nor two exports; and
 * a wildcard address may not share its port with a specific one (the
 * second bind would fail).
 *
 * Errors read "FILE:LINE: MESSAGE", where FILE is the path as the caller
 * gave it.  LINE is the physical line of the word at fault (so within a
 * continued statement it points at the bad key itself); an error about
 * the statement as a whole (a missing key) names the line where the
 * statement starts; an error that involves two statements names the
 * later one and mentions the earlier one's line in the message.  Where a
 * key is at fault the message starts with KEY=VALUE, e.g.
 *   /etc/lbd.conf:7: listen=10.0.0.300/15440: bad address
 * Bytes of the input that are not printable ASCII are shown as \xNN (a
 * backslash as two), and long values are cut short with "...", so a
 * message is always one sane line.
 */

#ifndef LIVEBACKUP_LB_CONFIG_H
#define LIVEBACKUP_LB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "lb_history.h"         /* struct lb_history */
#include "lb_listen.h"          /* struct lb_listen, lb_listen_equal */

/* The largest config file accepted: room for some ten thousand client
 * lines.  Every whole-file check is a look-up by hash, so the time a
 * file takes grows with its size alone (a file this large takes about
 * a tenth of a second, most of it resolving image paths); the bound
 * keeps what a mistaken file costs in memory small.
 */
#define LB_CONFIG_MAX_SIZE (1024 * 1024)
/* The longest client name, given or defaulted from file=.  The name is
 * the TLS PSK identity and plain mode's hello: a bound lets the protocol
 * size its frames (TLS would take up to 65535 bytes; GnuTLS 3.7 takes
 * 300 in a test).  A name is an identifier, so this is a policy, kept
 * generous.
 */
#define LB_CONFIG_NAME_MAX 255

struct lb_client_conf {
  char *name;           /* PSK identity: name=, or the file= value as written */
  char *file;           /* the image, absolute */
  char *key_path;       /* the key file, absolute */
  bool encrypt;         /* false: plain mode (encrypt=no) */
  uint64_t max_rate;    /* max-rate=, bytes/s; 0: no limit */
  uint64_t verify_every; /* verify=, seconds between verify passes; 0:
                          * none scheduled */
  struct lb_history history;    /* history=; all zero: no restore points */
  struct lb_listen listen;
  int line;             /* where the statement starts */
};

struct lb_export_conf {
  struct lb_listen listen;
  bool tls;             /* false: tls=off (loopback only) */
  int line;
};

/* The server-wide settings. */
struct lb_server_conf {
  char *metrics;        /* metrics=, absolute; NULL: none */
  int metrics_line;     /* where it is given, for messages */
};

struct lb_config {
  char *path;           /* as given, for messages */
  char *dir;            /* folder relative paths were resolved against */
  struct lb_server_conf server;
  struct lb_client_conf *clients;
  size_t nclients;
  struct lb_export_conf *exports;
  size_t nexports;
};

/* Read and parse the config file PATH.  Relative paths resolve against
 * PATH's folder, made absolute and free of symbolic links.  Returns 0
 * with CFG filled (free it with lb_config_free), or -1 with CFG empty
 * and the first error in ERR: "PATH: why" if the file cannot be read or
 * is larger than LB_CONFIG_MAX_SIZE, else "PATH:LINE: why".
 */
extern int lb_config_load (const char *path, struct lb_config *cfg,
                           char *err, size_t errlen);

/* Parse LEN bytes of TEXT (any bytes; no NUL terminator needed) as if
 * read from PATH_FOR_MESSAGES, resolving relative paths against DIR
 * (which should be absolute).  Same results as lb_config_load.  It
 * allocates only in proportion to LEN plus DIR's length, and looks at
 * the file system only to resolve symbolic links in image paths.
 */
extern int lb_config_parse (const char *text, size_t len,
                            const char *path_for_messages, const char *dir,
                            struct lb_config *cfg, char *err, size_t errlen);

/* Free what CFG holds and leave it empty.  Safe on an empty CFG. */
extern void lb_config_free (struct lb_config *cfg);

#endif /* LIVEBACKUP_LB_CONFIG_H */
