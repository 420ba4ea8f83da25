/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: dropping root, for lb and lbd (--user=NAME). */

#ifndef LIVEBACKUP_LB_PRIV_H
#define LIVEBACKUP_LB_PRIV_H

#include <stddef.h>

/* Become USER: supplementary groups cleared, then gid, then uid; fails
 * if root could be regained afterwards.  Returns 0, or -1 with a message
 * naming the option in ERR.
 */
extern int lb_drop_privileges (const char *user, char *err, size_t errlen);

#endif
