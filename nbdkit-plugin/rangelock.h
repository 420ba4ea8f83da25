/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: byte-range locks for writes in flight.
 *
 * In normal mode writes run in parallel; two whose byte ranges overlap
 * must not, so that for every byte the ring holds the records of the
 * writes that changed it in the order they changed it.  Writes that do
 * not overlap commute, and their records may come in any order.
 *
 * First come, first served among overlapping ranges: a range waits for
 * every overlapping range that asked before it (held or still waiting),
 * so a steady stream of writes to one area cannot starve another write
 * to it.  The caller provides the node (on its stack); it stays linked
 * from rangelock_lock to rangelock_unlock.
 */

#ifndef LIVEWATCH_RANGELOCK_H
#define LIVEWATCH_RANGELOCK_H

#include <stdint.h>

struct rangelock_node {
  uint64_t start, end;                /* [start, end) */
  struct rangelock_node *prev, *next; /* in order of arrival */
};

/* Wait until no earlier range overlapping [OFFSET, OFFSET+COUNT) is
 * held or waiting, then hold it.  A COUNT of 0 overlaps nothing.
 */
extern void rangelock_lock (struct rangelock_node *n, uint64_t offset,
                            uint64_t count);
extern void rangelock_unlock (struct rangelock_node *n);

#endif /* LIVEWATCH_RANGELOCK_H */
