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

/* Listen on O->control and answer from PUB and the channel, in a
 * thread of its own.  Call once this lb is the unit's consumer (so any
 * socket already there is a dead lb's), before other threads start.
 * 0, or -1 with ERR (lb goes on without a status).
 */
extern int lb_control_start (const struct lb_opts *o,
                             struct lb_session_pub *pub,
                             char *err, size_t errlen);

/* Stop answering: end the thread, remove the socket.  Fine if never
 * started.
 */
extern void lb_control_stop (void);

/* lb --status: print O's unit's state (JSON if JSON) on standard
 * output, asking the lb at O->control ("": none can listen there).
 * Returns the exit code: 0 if the channel could be opened, 1 if not.
 */
extern int lb_control_status (const struct lb_opts *o, bool json);

#endif /* LB_CONTROL_H */
