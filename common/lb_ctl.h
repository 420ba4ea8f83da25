/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: control sockets, where a running lb or lbd answers
 * --status.
 *
 * A unix stream socket, mode 0600 (its owner only: status names
 * clients, images and servers).  The protocol is one line each way
 * round: the client sends "text" or "json", optionally followed by
 * " verdict", and a newline; the daemon answers with its status
 * document (lb_status.h) rendered that way and closes the connection.
 * Asked for its verdict, it first sends a line "verdict N" (N from 0 to
 * 255: what --status exits with, for Nagios-style checks).  A request
 * that is neither, or none within a second, gets text.  The daemon
 * gives a reader at most one second to send its request and one to
 * take each part of the answer, so that a stuck reader cannot stall it;
 * the document is built before any of it is sent, so no lock is held
 * while a reader is slow.
 */

#ifndef LIVEBACKUP_LB_CTL_H
#define LIVEBACKUP_LB_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lb_status.h"

/* The longest path a unix socket takes, NUL included (sun_path). */
#define LB_CTL_PATH_MAX 108

/* How long a client waits for a whole answer. */
#define LB_CTL_ASK_MS 5000

struct lb_ctl {
  int fd;                       /* listening, non-blocking; -1: none */
  char path[LB_CTL_PATH_MAX];   /* absolute */
  dev_t dev;                    /* PATH as bound: removed at the end */
  ino_t ino;                    /* only while it is still this socket */
};

/* PATH made absolute (a relative one is taken from the working folder,
 * which a daemon leaves when it detaches), into OUT.  0, or -1 with a
 * message in ERR: too long for a unix socket, or no working folder.
 */
extern int lb_ctl_path (const char *path, char out[LB_CTL_PATH_MAX],
                        char *err, size_t errlen);

/* Listen on PATH (lb_ctl_path), replacing whatever is there: a socket
 * left by a daemon that was killed, or another daemon's (call it only
 * once this process is the one that should answer there).  Sets the
 * umask for a moment, so call it before starting threads that create
 * files.  0, or -1 with CTL->fd -1 and a message in ERR.
 */
extern int lb_ctl_listen (struct lb_ctl *ctl, const char *path,
                          char *err, size_t errlen);

/* Fills DOC (a new, empty document) with the daemon's status and
 * returns its verdict (0 to 255).
 */
typedef int lb_ctl_build_fn (struct lb_status *doc, void *arg);

/* Answer one request waiting on CTL with the document BUILD (ARG)
 * makes; returns at once if none is waiting.  Blocks at most about two
 * seconds (see above).  A reader that leaves early raises no SIGPIPE.
 */
extern void lb_ctl_serve (struct lb_ctl *ctl, lb_ctl_build_fn *build,
                          void *arg);

/* The same, for a builder that is given the request's ARGS ("" when
 * none; at most LB_CTL_ARGS_MAX bytes, no newline).
 */
#define LB_CTL_ARGS_MAX 480
typedef int lb_ctl_build_args_fn (struct lb_status *doc, const char *args,
                                  void *arg);
extern void lb_ctl_serve_args (struct lb_ctl *ctl,
                               lb_ctl_build_args_fn *build, void *arg);

/* Stop listening, and remove the socket unless something else has
 * taken its path since.  CTL->fd -1 is fine.
 */
extern void lb_ctl_close (struct lb_ctl *ctl);

/* Is PATH still the socket CTL bound (not replaced or removed since)? */
extern bool lb_ctl_holds (const struct lb_ctl *ctl);

/* Does something listen at PATH: a daemon that takes connections, or
 * one whose queue of them is full (stopped)?  A socket left by a
 * daemon that was killed, or nothing, is not.
 */
extern bool lb_ctl_in_use (const char *path);

/* What lb_ctl_ask found. */
enum lb_ctl_answer {
  LB_CTL_ANSWERED,      /* the whole answer is written to OUT */
  LB_CTL_UNREACHED,     /* no connection; errno ENOENT or ECONNREFUSED
                           when nothing listens at PATH (none there, or
                           one left by a daemon that was killed) */
  LB_CTL_SILENT,        /* something listens but gave no whole answer
                           within TIMEOUT_MS (stopped, or stuck) */
};

/* Ask the daemon at PATH for its status in FORMAT and copy the answer
 * to OUT once it is whole.  With VERDICT, ask for the daemon's verdict
 * too and store it there (-1 if the answer had none: a daemon that does
 * not give one).  Unless answered, ERR says why, naming PATH.
 */
extern enum lb_ctl_answer lb_ctl_ask (const char *path,
                                      enum lb_status_format format,
                                      int timeout_ms, FILE *out,
                                      int *verdict,
                                      char *err, size_t errlen);

/* lb_ctl_ask with ARGS (NULL or "": none) after the format. */
extern enum lb_ctl_answer lb_ctl_ask_args (const char *path,
                                           enum lb_status_format format,
                                           const char *args, int timeout_ms,
                                           FILE *out, int *verdict,
                                           char *err, size_t errlen);

#endif /* LIVEBACKUP_LB_CTL_H */
