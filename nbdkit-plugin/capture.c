/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: the capture rule.  See capture.h. */

#include <config.h>

#include <stdbool.h>
#include <stdint.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>

#include <nbdkit-filter.h>

#include "actlog.h"
#include "capture.h"
#include "channel.h"
#include "rangelock.h"
#include "service.h"

/* nbdkit -D livewatch.verbose=1 logs every record. */
NBDKIT_DLL_PUBLIC int livewatch_debug_verbose;

static bool
capture_degraded (void)
{
  return atomic_load_explicit (&channel_hdr->mode, memory_order_acquire)
         == LW_MODE_DEGRADED;
}

/* Serializes the ring's producer side among writers: appends, and the
 * degrades a writer causes (ring full, failed write).  Held with
 * livewatch_lock held shared; the service thread changes the mode only
 * with livewatch_lock held exclusively, when no writer is inside.
 */
static pthread_mutex_t capture_append_lock = PTHREAD_MUTEX_INITIALIZER;

/* Queue one completed change, or fall back to the bitmap.  Append lock
 * held, normal mode.  T: the write's activity-log regions, which learn
 * the record's seq (a region with records the consumer has not released
 * may not leave the log without all its blocks in the map).
 */
static void
capture_record (uint32_t type, uint64_t offset, uint32_t count,
                const void *buf, bool fua, const struct actlog_ticket *t)
{
  if (livewatch_debug_verbose)
    nbdkit_debug ("livewatch: record type %" PRIu32 " offset %" PRIu64
                  " count %" PRIu32 "%s", type, offset, count,
                  fua ? " fua" : "");
  if (!actlog_may_append (atomic_load (&channel_hdr->head_seq) + 1)) {
    channel_degrade ("the state file's journal lags");
    channel_mark (offset, count);
    return;
  }
  if (!channel_append (type, offset, count, buf)) {
    channel_degrade ("ring full");
    channel_mark (offset, count);
    return;
  }
  actlog_note_seq (t, atomic_load (&channel_hdr->head_seq));
  /* The write is queued but its flush is not: degrading is enough,
   * since the consumer syncs once it has caught up.
   */
  if (fua && !channel_append (LW_REC_FLUSH, 0, 0, NULL))
    channel_degrade ("ring full");
}

static bool
capture_no_effect (int r, int err, uint32_t flags)
{
  return r == -1 && err == ENOTSUP && (flags & NBDKIT_FLAG_FAST_ZERO);
}

/* One change within the activity log's span. */
static int
capture_write_one (void *ctx, capture_op op, uint32_t type, const void *buf,
                   uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  bool fua = flags & NBDKIT_FLAG_FUA;
  struct rangelock_node range;
  struct actlog_ticket t;
  int r;

  /* With a state file: the regions durably active before the plugin
   * changes anything (stateformat.h, THE INVARIANT), without any lock
   * writes to active regions need.
   */
  if (actlog_enter (offset, count, &t) == -1) {
    *err = EIO;
    return -1;
  }
  atomic_fetch_add_explicit (&channel_hdr->n_writes, 1, memory_order_relaxed);
  pthread_rwlock_rdlock (&livewatch_lock);
  /* Only the service thread returns to normal mode, and it needs the
   * lock exclusively: degraded stays degraded while we hold it.
   */
  if (capture_degraded ()) {
    r = op (ctx, buf, count, offset, flags, err);
    /* Marked after the plugin completed, so that a consumer that clears
     * the bit and then reads the device sees this write.
     */
    if (!capture_no_effect (r, *err, flags))
      channel_mark (offset, count);
    pthread_rwlock_unlock (&livewatch_lock);
    actlog_leave (&t);
    return r;
  }

  /* Normal: overlapping writes one after another, each recorded before
   * the next one starts; the others in parallel.
   */
  rangelock_lock (&range, offset, count);
  r = op (ctx, buf, count, offset, flags, err);
  pthread_mutex_lock (&capture_append_lock);
  if (capture_degraded ()) {
    /* Another writer degraded meanwhile (ring full): bits from now on. */
    if (!capture_no_effect (r, *err, flags))
      channel_mark (offset, count);
  }
  else if (r == 0)
    capture_record (type, offset, count, buf, fua, &t);
  else if (!capture_no_effect (r, *err, flags)) {
    /* Unknown contents: only the bitmap can describe that. */
    atomic_fetch_add (&channel_hdr->n_errors, 1);
    channel_degrade ("plugin write failed");
    channel_mark (offset, count);
  }
  pthread_mutex_unlock (&capture_append_lock);
  actlog_leave (&t);
  rangelock_unlock (&range);
  pthread_rwlock_unlock (&livewatch_lock);
  channel_wake_consumer ();
  return r;
}

int
capture_write (void *ctx, capture_op op, uint32_t type, const void *buf,
               uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  const uint64_t span = actlog_span;
  uint64_t n;
  int r;

  /* A zero or trim of up to 4 GiB could need more activity-log slots
   * than there are: carry it out in region-aligned pieces, each recorded
   * before the next starts (and before the reply).  Nothing guarantees
   * a client that a request is atomic.
   */
  while (span != 0 && count > span - offset % span) {
    n = span - offset % span;
    r = capture_write_one (ctx, op, type, buf, n, offset, flags, err);
    if (r == -1)
      return r;
    offset += n;
    count -= n;
    if (buf)
      buf = (const char *) buf + n;
  }
  return capture_write_one (ctx, op, type, buf, count, offset, flags, err);
}

int
capture_flush (void *ctx, capture_op op, uint32_t flags, int *err)
{
  /* Writes done before the plugin's flush starts are durable after it:
   * the activity log may then let their regions go.
   */
  uint64_t ticket = actlog_flush_begin ();

  if (op (ctx, NULL, 0, 0, flags, err) == -1)
    return -1;
  actlog_flush_end (ticket);
  if (capture_degraded ())
    return 0;
  /* Every write answered before this flush was issued is in the ring
   * already: records are appended before the reply.
   */
  pthread_rwlock_rdlock (&livewatch_lock);
  pthread_mutex_lock (&capture_append_lock);
  if (!capture_degraded () && !channel_append (LW_REC_FLUSH, 0, 0, NULL))
    channel_degrade ("ring full");
  pthread_mutex_unlock (&capture_append_lock);
  pthread_rwlock_unlock (&livewatch_lock);
  channel_wake_consumer ();
  return 0;
}
