/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: the persistent map P in memory (actlog's).
 *
 * P (stateformat.h) holds the blocks outside the active regions that may
 * differ from a mirror that can continue.  This module is P as it is on
 * disk, the rules that change it, and which of its pages must be written
 * before the journal record that depends on them (actlog.c writes them).
 * Block bits are read from the channel's bitmaps: dirty, then pending
 * (the consumer sets pending before it clears dirty, so a bit moving
 * between them is seen in one of them).  The journal thread only.
 */

#ifndef LIVEWATCH_ALMAP_H
#define LIVEWATCH_ALMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stateformat.h"

struct almap {
  const struct stateformat_layout *l;
  uint64_t *map;                /* P as on disk (l->map_words words) */
  uint64_t *left_seq;           /* per region: its last record's seq when
                                 * it last left the log */
  uint64_t *left_need;          /* per region: the flush of the device
                                 * (actlog's tickets) that makes the writes
                                 * it had then durable */
  uint64_t *noclear;            /* scratch: blocks P may not lose yet */
  uint64_t *active;             /* scratch: blocks whose P is kept */
  uint8_t *page_changed;        /* per page: differs from the disk */
  bool rewrite_all;             /* a page was bad at start: write all */
};

/* Allocate for layout L, taking over MAP (as loaded).  0 or -1. */
extern int almap_init (struct almap *m, const struct stateformat_layout *l,
                       uint64_t *map, bool rewrite_all);
extern void almap_free (struct almap *m);

/* Region R leaves the log with LAST_SEQ, the seq of its last record, and
 * NEED, the flush ticket that makes its writes durable on the device:
 * P[R] |= dirty[R] | pending[R], or all of R (ALL: it may have records
 * the consumer has not released, or writes not yet durable).
 */
extern void almap_leave (struct almap *m, uint64_t r, uint64_t last_seq,
                         uint64_t need, bool all);

/* A checkpoint: P := dirty | pending outside the regions active in
 * TABLE (N slots) and those that left with a seq above FLOOR (the
 * durable floor: their records may be needed until a record covers
 * them); inside them P is kept.  A region's bits are cleared only once
 * FLUSH_DONE (the last flush of the device completed) covers the writes
 * it had (its left_need; and at least ticket 1: the writes of the
 * instance before this one); until then they are only added.  Returns
 * true if some bit waits for such a flush.
 */
extern bool almap_checkpoint (struct almap *m, const uint64_t *table,
                              uint32_t n, uint64_t floor,
                              uint64_t flush_done);

/* Is region R free of dirty and pending bits? */
extern bool almap_region_clean (const struct almap *m, uint64_t r);

/* The pages that differ from the disk (or all, once, after a bad page),
 * into PAGES; they are taken to be written.  Returns how many.
 */
extern size_t almap_changed_pages (struct almap *m, uint64_t *pages,
                                   bool all_due);

#endif /* LIVEWATCH_ALMAP_H */
