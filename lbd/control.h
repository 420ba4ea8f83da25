/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: the control socket, where lbd answers lbd --status.
 *
 * lbd's poll loop listens on it beside the client and export listeners;
 * each request gets one status document (lb_status.h) of every client
 * line, in CONFIG's order: its session, its image, and with export
 * lines what its export serves and its snapshots.  lb_ctl.h has the
 * protocol and the time limits that keep a slow reader from stalling
 * the loop.
 */

#ifndef LBD_CONTROL_H
#define LBD_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "client.h"

/* The default control socket of CONFIG, into OUT (LEN bytes): one per
 * config file, found again by lbd --status from the same argument.
 */
extern void control_default_path (const char *config, char *out,
                                  size_t len);

/* Listen on PATH for the status of the running configuration's clients
 * (running.h; with their exports if it has export lines).  Returns the
 * socket to poll for POLLIN, or -1 with ERR.
 */
extern int control_open (const char *path, char *err, size_t errlen);

/* Answer one request waiting on the socket (main thread: the running
 * configuration is read without its lock).
 */
extern void control_serve (void);

/* Stop listening and remove the socket (if it is still ours). */
extern void control_close (void);

/* lbd --status: ask the lbd at PATH and print its answer.  Returns the
 * exit code: 0 answered, 1 no lbd answered (said on standard error).
 */
extern int control_ask (const char *path, bool json);

/* The same for another document than the status: ARGS (histctl.h);
 * exit code 1 also when lbd's verdict on the request is not 0.
 */
extern int control_ask_args (const char *path, bool json, const char *args);

#endif /* LBD_CONTROL_H */
