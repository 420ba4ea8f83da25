/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: restore points on the control socket (control.h): lbd --points,
 * lbd --drop-point, and the history part of lbd --status.
 *
 * Requests (lb_ctl.h's ARGS): "points NAME" answers the document of
 * client NAME's points; "drop NAME POINT" prunes one and answers what
 * came of it, with the verdict 0 (dropped, or dropped once its readers
 * leave) or 1 (no such client or point, or it failed).  Both run in the
 * main thread, as every control request does: a drop that merges a
 * large overlay holds the poll loop for as long (history.h).
 */

#ifndef LBD_HISTCTL_H
#define LBD_HISTCTL_H

#include <stdbool.h>

#include "client.h"
#include "lb_status.h"

/* Answer the request ARGS ("points ..." or "drop ...") into DOC; its
 * verdict.  false if ARGS is no such request (then DOC is untouched).
 */
extern bool histctl_request (struct lb_status *doc, const char *args,
                             int *verdict);

/* CL's points summed up (count, oldest, newest, bytes, policy) as the
 * object "history" of PARENT; nothing for a client without history=
 * and without points.
 */
extern void histctl_status (struct lb_status *parent, struct client *cl);

#endif
