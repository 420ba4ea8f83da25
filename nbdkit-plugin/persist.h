/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: a capture that outlives nbdkit (livewatch-state=).
 *
 * The start and the clean stop of a persistent capture, between the
 * state file (statefile.h), the activity log (actlog.h) and the channel
 * (channel.h).  doc/capture.md, "The state file", gives the argument.
 *
 * Start (after channel_size, before channel_ready): load the file.
 *   Fresh (new, or reset with its reason): a new epoch, as without a
 *   state file.  Clean: the stored epoch continues, dirty := P.
 *   Unclean: dirty := P and every block of every active region, those
 *   also with a compare hint; the active regions stay active and P stays
 *   as it is on disk until checkpoints clear them, so the recovered set
 *   survives another crash before any consumer came.  Records are
 *   numbered from the stored last seq + LW_SEQ_GAP.
 * Clean stop (after the service thread, no write in flight):
 *   P := dirty | pending | every block of a record still unreleased in
 *   the ring, written whole, then a record with clean = 1.
 * A killed nbdkit runs no stop: that is the unclean path.
 */

#ifndef LIVEWATCH_PERSIST_H
#define LIVEWATCH_PERSIST_H

#include <stdint.h>

#include "channel.h"

struct persist_config {
  const char *path;             /* absolute */
  uint32_t nslots;              /* livewatch-al-regions */
  uint64_t region_size;         /* livewatch-al-region */
  /* The plugin's flush, from a context of the filter's own (NULL if the
   * plugin cannot flush: its writes are durable when they complete).
   */
  int (*flush_device) (void);
};

/* Load PATH into the sized channel and fill *O for channel_ready.
 * Returns 0, or -1 after nbdkit_error (nbdkit must not start).
 */
extern int persist_open (const struct persist_config *cfg,
                         struct channel_origin *o);

/* The clean stop: after service_stop.  Stops the journal thread too. */
extern void persist_close (void);

#endif /* LIVEWATCH_PERSIST_H */
