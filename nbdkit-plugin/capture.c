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
#include "service.h"

/* nbdkit -D livewatch.verbose=1 logs every record. */
NBDKIT_DLL_PUBLIC int livewatch_debug_verbose;

static bool
capture_degraded (void)
{
  return atomic_load_explicit (&channel_hdr->mode, memory_order_acquire)
         == LW_MODE_DEGRADED;
}

/* Queue one completed change, or fall back to the bitmap.  Exclusive
 * lock held, normal mode.
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
  int r;

  atomic_fetch_add_explicit (&channel_hdr->n_writes, 1, memory_order_relaxed);
  if (capture_degraded ()) {
    pthread_rwlock_rdlock (&livewatch_lock);
    /* Mode changes take the lock exclusively: stable while we hold it. */
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
    pthread_rwlock_unlock (&livewatch_lock);
  }

  pthread_rwlock_wrlock (&livewatch_lock);
  r = op (ctx, buf, count, offset, flags, err);
  if (capture_degraded ()) {
    /* Another writer degraded while we waited for the lock. */
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
  pthread_rwlock_wrlock (&livewatch_lock);
  if (!capture_degraded () && !channel_append (LW_REC_FLUSH, 0, 0, NULL))
    channel_degrade ("ring full");
  pthread_rwlock_unlock (&livewatch_lock);
  channel_wake_consumer ();
  return 0;
}
