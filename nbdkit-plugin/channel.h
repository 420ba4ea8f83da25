/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: the producer side of the shared-memory channel.
 *
 * Contract: channel_preflight runs in get_ready (errors reach the
 * terminal); channel_create and channel_size once in after_fork, when
 * the export size is known; then, once the capture's origin is known
 * (persist.c, with a state file), channel_ready.  "Lock held" below
 * means: livewatch_lock held exclusively (the service thread), or held
 * shared together with capture.c's append lock
 * (writers); either way one producer at a time, and capture.c's range
 * locks make the order of records for each byte the order in which the
 * plugin changed it.
 */

#ifndef LIVEWATCH_CHANNEL_H
#define LIVEWATCH_CHANNEL_H

#include <stdbool.h>
#include <stdint.h>

#include "lw_shm.h"

struct channel_config {
  const char *dir;        /* absolute folder for the channel file */
  unsigned unit;
  uint64_t queue;         /* ring bytes */
  uint32_t block;         /* bitmap granularity */
};

/* The one channel of this nbdkit process, and its bitmaps (once sized). */
extern struct lw_header *channel_hdr;
extern void *channel_dirty, *channel_pending, *channel_hint;

/* Where the capture this channel carries comes from (lw_shm.h). */
struct channel_origin {
  enum lw_start kind;           /* not LW_START_VOLATILE */
  const char *reason;           /* for start_reason */
  uint64_t epoch;
  uint64_t start_seq, start_floor;
  uint64_t gen, gen_acked;
  uint32_t region_size;
  uint64_t recovered_regions, start_dirty, start_hinted;
};

/* Early checks for get_ready, where errors still reach the terminal:
 * DIR is a folder we can write, and no live filter holds the unit.
 */
extern int channel_preflight (const struct channel_config *cfg);

/* Create DIR/livewatch-UNIT (0600), take the filter lock on it, write a
 * header in LW_STATE_INIT.  Called in after_fork, once nbdkit runs as the
 * user it will serve as (-u), so that the file is that user's.  Replaces a stale file left by a dead filter;
 * refuses one whose filter is alive.  Returns 0 or -1 after nbdkit_error.
 */
extern int channel_create (const struct channel_config *cfg);

/* Size the bitmaps for DEV_SIZE bytes and map everything (a new random
 * epoch, seq 0, degraded); still LW_STATE_INIT.
 */
extern int channel_size (uint64_t dev_size);

/* Publish where the capture comes from (O; NULL: no state file, the new
 * epoch stands) and go READY: consumers may attach.  The bitmaps must
 * hold what O says before.
 */
extern void channel_ready (const struct channel_origin *o);

/* Mark the file GONE and unmap (clean shutdown only; a SIGKILLed filter
 * leaves the file behind, which the next start replaces).
 */
extern void channel_close (void);

/* Append one record.  Returns true if queued (its seq is head_seq);
 * false if the ring has no room (the caller then degrades).  DATA is
 * used only for WRITE.  Lock held.  Only in normal mode.
 */
extern bool channel_append (uint32_t type, uint64_t offset, uint32_t length,
                            const void *data);

/* Set the dirty bits covering [offset, offset+length).  Lock held (any
 * mode); safe against the consumer clearing bits concurrently.
 */
extern void channel_mark (uint64_t offset, uint64_t length);

/* Switch to degraded mode (no-op if already there).  Lock held. */
extern void channel_degrade (const char *why);

/* Switch to normal mode if at least half the ring is free.  Lock held.
 * Returns true if now normal.
 */
extern bool channel_resume (void);

/* Call FN for the range of every record in the ring the consumer has
 * not released (tail_pos to head_pos), for a clean stop; FLUSH records
 * have none.  No write may be in flight.  Returns 0, or -1 if the ring
 * does not parse (then the caller must assume every block).
 */
extern int channel_unreleased (void (*fn) (void *opaque, uint64_t offset,
                                           uint64_t length),
                               void *opaque);

/* Wake a sleeping consumer if it asked to be woken. */
extern void channel_wake_consumer (void);

/* True if a consumer holds its lock on the channel file. */
extern bool channel_consumer_alive (void);

#endif /* LIVEWATCH_CHANNEL_H */
