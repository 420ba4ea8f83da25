/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: the activity log, at run time.
 *
 * THE INVARIANT (stateformat.h, doc/capture.md "The state file"): at
 * every instant, for every block b where the device may differ from the
 * durable content of a mirror that can continue this capture (same
 * epoch, gen in {gen_acked, gen}, seq >= floor_seq), either b's region
 * is active in the durable journal, or P[b] is set durably.
 *
 * This module keeps it while writes run:
 *
 * - Before a write (pwrite, zero, trim) reaches the plugin, every region
 *   it touches is durably active (actlog_enter; one journal record for
 *   every writer that needed one meanwhile, and for a sequential writer
 *   the next regions ahead).  A write holds an in-flight count on its
 *   regions until it has recorded itself (ring record or dirty bits).
 * - Leaving regions (evicted when every slot is in use, or deactivated
 *   once clean and idle) get P[R] |= dirty[R] | pending[R] first, and
 *   all of R if R has records still unreleased in the ring or writes not
 *   yet made durable on the device by a flush; then the record that
 *   empties their slot.
 * - Checkpoints (every few seconds, in the journal thread, never in the
 *   write path) set P := dirty | pending outside the active regions and
 *   record floor_seq = the released seq, so P bits get cleared and the
 *   recovery set stays what was being written.  Anything is cleared only
 *   after a flush of the device that started after the writes concerned:
 *   the consumer reads the device's cache, so without it a power cut
 *   could leave the mirror newer than the device there.
 * - The consumer's copy generation is recorded on request (LW_REQ_PERSIST).
 *
 * One thread (started by actlog_start) writes the state file; writers
 * only queue what they need and wait for it.  Without livewatch-state=
 * actlog_on is false and every entry point returns at once.
 */

#ifndef LIVEWATCH_ACTLOG_H
#define LIVEWATCH_ACTLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "statefile.h"

/* True once actlog_init succeeded: the capture is persistent. */
extern bool actlog_on;

/* The largest span of bytes one write may cover (a multiple of the region
 * size); capture.c splits larger zeroes and trims.  0 when off.
 */
extern uint64_t actlog_span;

/* What the loaded state file says, for actlog_init. */
struct actlog_init {
  struct statefile *sf;         /* taken over */
  const uint64_t *slots;        /* the durable slot table (N entries) */
  uint64_t *map;                /* P as loaded (bad pages all ones);
                                 * taken over */
  bool rewrite_map;             /* some page was bad: rewrite all at the
                                 * first checkpoint */
  struct stateformat_dyn dyn;   /* as stored */
  uint64_t start_seq;           /* this instance's first record is +1 */
  /* Make every completed write durable on the device (the plugin's
   * flush); 0 or -1.  NULL: writes are durable when they complete.
   */
  int (*flush_device) (void);
};

/* Take over the loaded state and write this instance's first record
 * (clean = 0, last_seq = start_seq): after it, a crash is an unclean
 * stop of this instance.  The channel must be sized (its bitmaps and
 * seqs are read).  Before READY, before any write.  Returns 0, or -1
 * with ERR.
 */
extern int actlog_init (const struct actlog_init *in, char *err,
                        size_t errlen);

/* The journal thread (after_fork, after actlog_init), and its end. */
extern int actlog_start (void);
extern void actlog_stop (void);

/* A clean stop, after actlog_stop, with no write in flight: write every
 * map page from MAP (what may differ from the mirror: the caller's
 * dirty | pending | unreleased records), then a record with clean = 1,
 * no active region, and the final seq and gen.  Returns 0, or -1 if it
 * was not written (the state file failed earlier, or now: then it stays
 * as after a crash, or empty).
 */
extern int actlog_write_clean (const uint64_t *map);

/* Release everything (after actlog_write_clean, or instead of it to
 * leave the file as a crash would).
 */
extern void actlog_free (void);

/* The write path.  A ticket names the regions of one write. */
struct actlog_ticket {
  uint64_t first, last;         /* regions */
  bool held;                    /* in-flight counts taken */
};

/* Before the plugin call: make every region of [OFFSET, OFFSET+COUNT)
 * durably active and count the write in flight there.  May wait for a
 * journal record; never for the network.  Returns 0, or -1 (errno EIO)
 * if the state file is broken and could not even be emptied.
 */
extern int actlog_enter (uint64_t offset, uint64_t count,
                         struct actlog_ticket *t);

/* The write's ring record has SEQ (append lock held). */
extern void actlog_note_seq (const struct actlog_ticket *t, uint64_t seq);

/* The write has recorded itself (record appended or bits set). */
extern void actlog_leave (struct actlog_ticket *t);

/* Around a flush of the device by a client (capture_flush): BEGIN before
 * the plugin's flush, END with its ticket once it succeeded.  Writes
 * that completed before BEGIN are then durable on the device.
 */
extern uint64_t actlog_flush_begin (void);
extern void actlog_flush_end (uint64_t ticket);

/* May a record with SEQ be appended?  False when the journal's last seq
 * lags by LW_SEQ_GAP / 2 (the writer then degrades): so the gap the next
 * start leaves is never reached.
 */
extern bool actlog_may_append (uint64_t seq);

/* LW_REQ_PERSIST (service thread): write a record with the consumer's
 * current gen and gen_acked and wait until it is durable.  Returns 0, or
 * -1 if the state file is broken.
 */
extern int actlog_persist (void);

#endif /* LIVEWATCH_ACTLOG_H */
