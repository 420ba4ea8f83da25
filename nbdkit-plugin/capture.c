/* livewatch filter: the capture rule.  See capture.h. */

#include <config.h>

#include <stdbool.h>
#include <stdint.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>

#include <nbdkit-filter.h>

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
 * held, normal mode.
 */
static void
capture_record (uint32_t type, uint64_t offset, uint32_t count,
                const void *buf, bool fua)
{
  if (livewatch_debug_verbose)
    nbdkit_debug ("livewatch: record type %" PRIu32 " offset %" PRIu64
                  " count %" PRIu32 "%s", type, offset, count,
                  fua ? " fua" : "");
  if (!channel_append (type, offset, count, buf)) {
    channel_degrade ("ring full");
    channel_mark (offset, count);
    return;
  }
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

int
capture_write (void *ctx, capture_op op, uint32_t type, const void *buf,
               uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  bool fua = flags & NBDKIT_FLAG_FUA;
  struct rangelock_node range;
  int r;

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
    capture_record (type, offset, count, buf, fua);
  else if (!capture_no_effect (r, *err, flags)) {
    /* Unknown contents: only the bitmap can describe that. */
    atomic_fetch_add (&channel_hdr->n_errors, 1);
    channel_degrade ("plugin write failed");
    channel_mark (offset, count);
  }
  pthread_mutex_unlock (&capture_append_lock);
  rangelock_unlock (&range);
  pthread_rwlock_unlock (&livewatch_lock);
  channel_wake_consumer ();
  return r;
}

int
capture_flush (void *ctx, capture_op op, uint32_t flags, int *err)
{
  if (op (ctx, NULL, 0, 0, flags, err) == -1)
    return -1;
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
