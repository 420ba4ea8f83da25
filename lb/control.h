/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: the control socket, where lb answers lb --status.
 *
 * The running lb listens on its control socket (lb_ctl.h; by default
 * DIR/livewatch-UNIT.lb.ctl, beside the channel) from its own thread,
 * so that a status reader never waits on the data path nor the data
 * path on a reader.  Each answer is one status document (lb_status.h):
 * the channel's fields, read as an observer, then lb's own from the
 * session.  lb --status asks there; when no lb answers, it reads the
 * channel itself and shows the same channel fields.
 */

#ifndef LB_CONTROL_H
#define LB_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "lb.h"
#include "session.h"

/* The default control socket of O's unit, into OUT (LB_CTL_PATH_MAX
 * bytes).  0, or -1 with ERR: the path is too long for a socket.
 */
extern int lb_control_default (const struct lb_opts *o, char *out,
                               char *err, size_t errlen);

/* How lb_control_start went. */
enum lb_control_start {
  LB_CONTROL_STARTED,
  LB_CONTROL_TAKEN,             /* another lb answers there: the unit is
                                   followed already, or soon will be */
  LB_CONTROL_FAILED,            /* no socket: lb goes on without status */
};

/* Listen on O->control and answer from PUB and the channel, in a
 * thread of its own: as soon as lb has started, so that an lb waiting
 * for its channel says so.  Call before other threads start.  Unless
 * started, ERR says why.
 */
extern enum lb_control_start lb_control_start (const struct lb_opts *o,
                                               struct lb_session_pub *pub,
                                               char *err, size_t errlen);

/* Why lb has no channel (lwc_attach's message), shown as "waiting for
 * the filter's channel"; NULL once it is attached.
 */
extern void lb_control_waiting (const char *why);

/* This lb is now the unit's consumer: any other lb that took the socket
 * meanwhile has found the unit taken and left, so take the socket back
 * if it did.  Returns at once (the status thread does it).
 */
extern void lb_control_claim (void);

/* Stop answering: end the thread, remove the socket.  Fine if never
 * started.
 */
extern void lb_control_stop (void);

/* lb --status: print O's unit's state (JSON if JSON) on standard
 * output, asking the lb at O->control ("": none can listen there).
 * Returns the exit code, for Nagios-style checks: 0 live and current;
 * 1 behind (connecting, scanning, catching up, waiting for the
 * filter); 2 not running, or not responding (no answer, or its data
 * path stuck for LB_PROGRESS_STALE_SECONDS).
 */
extern int lb_control_status (const struct lb_opts *o, bool json);

/* lb --verify: ask O's lb for a verify pass (lb/verify.h), wait for
 * it, and print its result (JSON if JSON) on standard output.  Returns
 * the exit code: 0 everything compared matched; 1 mismatches were found
 * (and repaired, the result says so per range); 2 no verify (no lb
 * answers, the unit is not live, the pass was cut short, or the unit
 * stayed behind for LB_VERIFY_STALL_SECONDS), with a message on
 * standard error.
 */
#define LB_VERIFY_STALL_SECONDS 60
extern int lb_control_verify_command (const struct lb_opts *o, bool json);

/* lb --mark's exit status (and the verdict of the running lb's answer
 * to "mark LABEL" and "mark-status LABEL" on its control socket).
 */
enum lb_control_mark_verdict {
  LB_CONTROL_MARK_OK = 0,       /* placed (with --wait: its point taken) */
  LB_CONTROL_MARK_NO = 1,       /* refused, or no point (it says why) */
  /* 2 is LB_CONTROL_DOWN: no lb answers */
  LB_CONTROL_MARK_PENDING = 3,  /* placed; lbd has not answered yet */
};

/* lb --mark LABEL UNIT: ask the running lb for a mark (mark.h), print
 * what became of it (JSON if JSON); with WAIT_S > 0, wait up to WAIT_S
 * seconds for lbd's point.  Returns the exit status: an
 * lb_control_mark_verdict, or LB_CONTROL_DOWN.
 */
extern int lb_control_mark (const struct lb_opts *o, const char *label,
                            int wait_s, bool json);

#endif /* LB_CONTROL_H */
