/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: the service thread.  See service.h. */

#include <config.h>

#include <stdbool.h>
#include <stdint.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <string.h>

#include <nbdkit-filter.h>

#include "actlog.h"
#include "channel.h"
#include "lw_futex.h"
#include "service.h"

/* Writer-preferring: under a storm of writes (readers of this lock) a
 * mode change or barrier must not starve.
 */
pthread_rwlock_t livewatch_lock =
  PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

/* How often the thread checks that the consumer is still alive. */
#define SERVICE_POLL_MS 100

static pthread_t service_thread;
static bool service_running;
static _Atomic bool service_stopping;

/* Answer request ID with RESULT. */
static void
service_ack (uint64_t id, uint32_t result)
{
  struct lw_header *h = channel_hdr;

  atomic_store (&h->ack_seq, atomic_load (&h->head_seq));
  atomic_store (&h->ack_pos, atomic_load (&h->head_pos));
  atomic_store (&h->ack_result, result);
  atomic_store (&h->ack_id, id);
}

/* LW_REQ_MARK, write lock held: every write completed so far is a
 * record already (normal mode), so the mark appended now follows all of
 * them.  Degraded, writes are bits without an order: a mark would
 * claim a moment the consumer cannot rebuild, so it is refused (as it
 * is when the ring has no room: that write would degrade).
 */
static uint32_t
service_mark (void)
{
  struct lw_header *h = channel_hdr;
  char label[LW_MARK_LABEL_MAX];
  size_t len;

  memcpy (label, h->req_label, sizeof label);
  label[sizeof label - 1] = '\0';
  len = strlen (label);
  if (!lw_mark_label_ok (label, len))
    return LW_RES_INVALID;
  if (atomic_load (&h->mode) != LW_MODE_NORMAL
      || !actlog_may_append (atomic_load (&h->head_seq) + 1)
      || !channel_append (LW_REC_MARK, 0, len, label))
    return LW_RES_REFUSED;
  nbdkit_debug ("livewatch: mark '%s' at seq %" PRIu64, label,
                atomic_load (&h->head_seq));
  return LW_RES_OK;
}

/* Carry out one request.  Write lock held: no write is between the
 * plugin and the channel, so head_seq names a quiet instant.
 */
static void
service_do (uint32_t type, uint64_t id)
{
  uint32_t result = LW_RES_OK;

  switch (type) {
  case LW_REQ_BARRIER:
    break;
  case LW_REQ_DEGRADE:
    channel_degrade ("consumer asked");
    break;
  case LW_REQ_RESUME:
    if (!channel_resume ())
      result = LW_RES_REFUSED;
    break;
  case LW_REQ_MARK:
    result = service_mark ();
    break;
  default:
    result = LW_RES_INVALID;
  }
  service_ack (id, result);
}

static void *
service_main (void *arg)
{
  struct lw_header *h = channel_hdr;

  (void) arg;
  while (!atomic_load (&service_stopping)) {
    uint32_t f = atomic_load (&h->req_futex);
    uint64_t id = atomic_load (&h->req_id);

    if (id != atomic_load (&h->ack_id)) {
      uint32_t type = atomic_load (&h->req_type);
      /* The copy generation needs no quiet instant, only the state
       * file's record of it: writes go on meanwhile.
       */
      if (type == LW_REQ_PERSIST) {
        service_ack (id, actlog_persist () == 0 ? LW_RES_OK : LW_RES_FAILED);
        channel_wake_consumer ();
        continue;
      }
      pthread_rwlock_wrlock (&livewatch_lock);
      service_do (type, id);
      pthread_rwlock_unlock (&livewatch_lock);
      channel_wake_consumer ();
      continue;
    }

    /* A consumer that died in normal mode would let the ring fill and
     * hold records nobody takes; degrade now so that its successor
     * finds the bitmap and the still-unreleased records.
     */
    if (atomic_load (&h->mode) == LW_MODE_NORMAL
        && !channel_consumer_alive ()) {
      pthread_rwlock_wrlock (&livewatch_lock);
      if (atomic_load (&h->mode) == LW_MODE_NORMAL) {
        atomic_fetch_add (&h->n_consumer_lost, 1);
        channel_degrade ("consumer gone");
      }
      pthread_rwlock_unlock (&livewatch_lock);
    }

    lw_futex_wait (&h->req_futex, f, SERVICE_POLL_MS);
  }
  return NULL;
}

int
service_start (void)
{
  int e;

  atomic_store (&service_stopping, false);
  e = pthread_create (&service_thread, NULL, service_main, NULL);
  if (e != 0) {
    nbdkit_error ("livewatch: cannot start service thread: %s", strerror (e));
    return -1;
  }
  service_running = true;
  return 0;
}

void
service_stop (void)
{
  if (!service_running)
    return;
  atomic_store (&service_stopping, true);
  atomic_fetch_add (&channel_hdr->req_futex, 1);
  lw_futex_wake (&channel_hdr->req_futex);
  pthread_join (service_thread, NULL);
  service_running = false;
}
