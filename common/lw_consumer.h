/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: the consumer side of a livewatch channel.
 *
 * One consumer at a time attaches to a unit (lb, or the test mirror);
 * any number of observers may map it read-only for status.  The consumer
 * reads records ahead of what it has released; a record stays in the
 * ring until released, so a consumer that dies loses nothing: its
 * successor starts again at the oldest unreleased record.
 *
 * Thread safety: a struct lwc is used by one thread at a time.
 */

#ifndef LIVEBACKUP_LW_CONSUMER_H
#define LIVEBACKUP_LW_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lw_shm.h"

struct lwc;

enum lwc_flags {
  LWC_OBSERVE = 1,      /* map read-only, do not take the consumer lock */
};

/* Attach to DIR/livewatch-UNIT (DIR NULL: the default).  On failure
 * returns NULL with errno set and a message naming the file in ERR:
 *   ENOENT  no channel (nbdkit not started, or shut down);
 *   EAGAIN  nbdkit is starting (not yet sized) — try again shortly;
 *   ESRCH   a stale channel whose filter is dead;
 *   EBUSY   another consumer is attached;
 *   EPERM   the file is not trustworthy (owner, mode, not regular);
 *   EPROTO  the header fails validation.
 * A consumer's attach moves bits left pending by a dead predecessor back
 * to dirty, so that nothing that predecessor took is lost.
 */
extern struct lwc *lwc_attach (const char *dir, unsigned unit, int flags,
                               char *err, size_t errlen);
extern void lwc_detach (struct lwc *c);

/* The mapped header: fixed fields and counters (read with atomics). */
extern const struct lw_header *lwc_header (const struct lwc *c);

/* Is the channel still the one we attached to?  False once the filter
 * has shut down, died, or been replaced by a new one (new epoch).
 */
extern bool lwc_alive (struct lwc *c);

/* Does some process hold the consumer lock (for observers)? */
extern bool lwc_consumer_attached (const struct lwc *c);

/* One record, as returned by lwc_next. */
struct lwc_rec {
  uint32_t type;        /* enum lw_rec_type, never PAD */
  uint32_t length;
  uint64_t seq;
  uint64_t offset;
  const void *data;     /* WRITE: in the ring, valid until released */
  uint64_t end_pos;     /* ring position after this record */
};

/* Take the next record after the read cursor.  Returns 1 and fills REC,
 * 0 if there is none yet, -1 (errno EPROTO) if the ring is corrupt.
 */
extern int lwc_next (struct lwc *c, struct lwc_rec *rec);

/* Release every record up to and including REC: the filter may reuse
 * their space.  Call only once their effect is durable downstream.
 */
extern void lwc_release (struct lwc *c, const struct lwc_rec *rec);

/* Start over after a failed downstream session: the read cursor back to
 * the oldest unreleased record, and the blocks taken but not confirmed
 * durable (pending) back to dirty, with the pass cursor at 0.
 */
extern void lwc_rewind (struct lwc *c);

/* Seq of the last released record, and of the last one read. */
extern uint64_t lwc_released_seq (const struct lwc *c);
extern uint64_t lwc_read_seq (const struct lwc *c);

/* Does a mirror durable up to record SEQ hold every record it needs?
 * Yes if SEQ >= the released seq (and is not past the last appended);
 * or, for a capture continued from a state file while no record of this
 * instance was released yet, if SEQ lies in [start_floor, start_seq]:
 * the blocks of records the state file does not cover are dirty
 * (lw_shm.h, doc/capture.md "The state file").
 */
extern bool lwc_seq_continues (const struct lwc *c, uint64_t seq);

/* The copy generation (lw_shm.h).  lwc_gen_next takes and publishes a
 * new number (*GEN) for a sync that carries block copies; lwc_gen_ack
 * records that the mirror made GEN durable.  With a state file
 * (LW_FLAG_PERSISTENT) each also waits until the filter has recorded it
 * durably (LW_REQ_PERSIST): a number is never given twice, and the
 * pending bits of confirmed copies are cleared only once a restart
 * would know.  Both return 0, or -1 (errno ESRCH or ETIMEDOUT: the
 * filter is gone; EIO: its state file failed) — then the caller must
 * not go on as if it had succeeded.  lwc_gen_continues says whether a
 * mirror whose last such sync was IMAGE_GEN holds every block whose bit
 * was ever spent (its seq must still be checked: lwc_seq_continues).
 */
extern int lwc_gen_next (struct lwc *c, uint64_t *gen);
extern int lwc_gen_ack (struct lwc *c, uint64_t gen);
extern bool lwc_gen_continues (const struct lwc *c, uint64_t image_gen);
/* Either pointer may be NULL. */
extern void lwc_gen_get (const struct lwc *c, uint64_t *gen, uint64_t *acked);

/* Sleep until the filter publishes something (record, ack, mode change)
 * or TIMEOUT_MS passes.  Returns at once if a record is waiting.
 */
extern void lwc_wait (struct lwc *c, int timeout_ms);

/* Ask the filter's service thread for REQ and wait for its answer.
 * Returns an enum lw_req_result, with *ACK_SEQ the last seq appended at
 * the quiet instant the request was carried out; -1 (errno ETIMEDOUT or
 * ESRCH) if the filter did not answer.
 */
extern int lwc_request (struct lwc *c, enum lw_req req, int timeout_ms,
                        uint64_t *ack_seq);

/* LW_REQ_MARK: ask the filter to append a MARK record labelled LABEL
 * (lw_mark_label_ok) after every write completed so far.  As
 * lwc_request; LW_RES_OK with *SEQ the mark's seq, LW_RES_REFUSED when
 * the filter is degraded (or its ring full); -1 with EINVAL for a bad
 * label.  From the consumer's thread, as every request.
 */
extern int lwc_mark (struct lwc *c, const char *label, int timeout_ms,
                     uint64_t *seq);

/* Wake the consumer sleeping in lwc_wait on this channel now (C may be
 * an observer's attachment): for another thread that has handed it
 * work (lb --mark).  A consumer not asleep yet sleeps its timeout.
 */
extern void lwc_nudge (struct lwc *c);


extern enum lw_mode lwc_mode (const struct lwc *c);

/* Dirty bitmap.  lwc_take_run finds the next dirty run at or after the
 * pass cursor, at most MAX blocks, all with or all without a compare
 * hint, moves its bits from dirty to pending (pending first, so a crash
 * in between loses nothing), and returns true, with *COMPARE set if the
 * blocks have a hint: they may well be the same in the mirror already
 * (a region active when the filter stopped uncleanly), so compare them
 * as a scan does rather than copy them blindly.  At the end of the
 * bitmap it rewinds the cursor and returns false: one pass is done.  The
 * caller must read the run's blocks from the device only after this
 * call (the clear-then-read rule, doc/capture.md).
 */
extern bool lwc_take_run (struct lwc *c, uint64_t max,
                          uint64_t *block, uint64_t *count, bool *compare);
/* Clear pending bits, and compare hints, once those blocks are durable
 * downstream.
 */
extern void lwc_done_run (struct lwc *c, uint64_t block, uint64_t count);
/* Mark the blocks of device bytes [offset, offset+length) dirty: the
 * mirror must copy them again.
 */
extern void lwc_mark_range (struct lwc *c, uint64_t offset, uint64_t length);
/* For a scan's sweep over every block: move the dirty bits that are set
 * among blocks [block, block+count) (within one bitmap word) to pending,
 * as lwc_take_run does, and return how many were set.  Blocks without a
 * bit are read too, but spend nothing: only the bits taken here need the
 * clear-then-read rule and a lwc_done_run.
 */
extern uint64_t lwc_take_range (struct lwc *c, uint64_t block,
                                uint64_t count);
/* Count set bits in the dirty and pending maps. */
extern void lwc_count_bits (const struct lwc *c, uint64_t *dirty,
                            uint64_t *pending);
/* Count compare hints. */
extern uint64_t lwc_count_hints (const struct lwc *c);

/* Byte range of blocks [block, block+count), clipped to the device. */
extern void lwc_run_bytes (const struct lwc *c, uint64_t block,
                           uint64_t count, uint64_t *offset, uint64_t *length);

#endif /* LIVEBACKUP_LW_CONSUMER_H */
