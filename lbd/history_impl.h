/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: what history.c (the list, taking, writing, reading) and retain.c
 * (the schedule, retention, pruning) share of an image's history.
 * Private to them; history.h is the interface.  LOCK (history.h) as
 * each says.
 */

#ifndef LBD_HISTORY_IMPL_H
#define LBD_HISTORY_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "history.h"

/* Blocks of OVERLAY_BLOCK bytes in PT's image. */
extern uint64_t hist_nblocks (const struct hist_point *pt);

/* Where PT is in H's list, or -1.  LOCK held. */
extern ssize_t hist_index (const struct history *h,
                           const struct hist_point *pt);

/* Delete PT's data file and free it: it is off the list, unused. */
extern void hist_point_delete (struct history *h, struct hist_point *pt);

/* Store the list durably (points_store).  0, or -1 with errno.  LOCK
 * held for writing.
 */
extern int hist_store (struct history *h);

/* Take the point at I off the list (not stored yet).  LOCK held for
 * writing.
 */
extern void hist_unlist (struct history *h, size_t i);

/* The listed point named ID (IDLEN bytes), or labelled so (the newest
 * of that label), or NULL.  LOCK held.
 */
extern struct hist_point *hist_find (struct history *h, const char *id,
                                     size_t idlen);

/* Wake the pruning thread (starting it the first time). */
extern void hist_wake (struct history *h);

#endif /* LBD_HISTORY_IMPL_H */
