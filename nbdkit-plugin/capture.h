/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: the capture rule for every change to the device.
 *
 * Every write holds livewatch_lock shared, so the service thread's mode
 * changes and barriers (exclusive) see no write in flight.  In normal
 * mode a write also holds a byte-range lock (rangelock.h) across the
 * plugin call and the append: overlapping writes run one after another,
 * so for every byte the ring's order is the order in which the plugin
 * changed it; writes that do not overlap run in parallel.  Each record
 * precedes the write's reply.  In degraded mode writes only set bits,
 * whose order does not matter.  Nothing is recorded for a
 * plugin call that failed without effect; a failure of unknown effect
 * marks its blocks dirty.
 *
 * Kept apart from nbdkit's types (CTX is the caller's, an nbdkit_next
 * in the filter) so that the unit tests drive this exact code.
 */

#ifndef LIVEWATCH_CAPTURE_H
#define LIVEWATCH_CAPTURE_H

#include <stdint.h>

/* One plugin call.  BUF is used by pwrite only.  Returns 0 or -1 with
 * *ERR set, as nbdkit's callbacks do.
 */
typedef int (*capture_op) (void *ctx, const void *buf, uint32_t count,
                           uint64_t offset, uint32_t flags, int *err);

/* A change of contents: TYPE is LW_REC_WRITE, ZERO or TRIM; FLAGS are
 * nbdkit's (FUA adds a flush record, FAST_ZERO refusals record nothing).
 */
extern int capture_write (void *ctx, capture_op op, uint32_t type,
                          const void *buf, uint32_t count, uint64_t offset,
                          uint32_t flags, int *err);

/* A flush: the plugin call runs unlocked; only the record takes the
 * lock.  Degraded mode records nothing (the consumer syncs after its
 * catch-up).
 */
extern int capture_flush (void *ctx, capture_op op, uint32_t flags, int *err);

#endif /* LIVEWATCH_CAPTURE_H */
