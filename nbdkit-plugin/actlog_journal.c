/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: the activity log's journal thread: the records
 * that make activations durable, the checkpoints that let idle regions
 * leave and clear P, and the flusher.  See actlog_impl.h; doc/capture.md
 * ("The state file") for why the order of each step keeps THE INVARIANT.
 */

#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nbdkit-filter.h>

#include "actlog_impl.h"
#include "channel.h"
#include "lb_err.h"
#include "lb_time.h"

/* --- records ------------------------------------------------------------- */

/* The dynamic state for the next record, given the RELEASED seq read
 * before anything this record covers.  Every field only grows.  floor:
 * the released seq, except while no record of this instance was
 * released: then the stored floor stays, so that a mirror the previous
 * instance could continue still can (the recovered set is the same).
 */
struct stateformat_dyn
actlog_dyn (uint64_t released)
{
  const struct lw_header *h = channel_hdr;
  struct stateformat_dyn d = actlog_al.dyn;
  uint64_t v;

  v = atomic_load (&h->gen);
  if (v > d.gen)
    d.gen = v;
  v = atomic_load (&h->gen_acked);
  if (v > d.gen)
    v = d.gen;
  if (v > d.gen_acked)
    d.gen_acked = v;
  v = atomic_load (&h->head_seq);
  if (v > d.last_seq)
    d.last_seq = v;
  if (released > actlog_al.start_seq && released > d.floor_seq)
    d.floor_seq = released < d.last_seq ? released : d.last_seq;
  d.clean = false;
  return d;
}

static bool
actlog_dyn_same (const struct stateformat_dyn *a,
                 const struct stateformat_dyn *b)
{
  return a->gen == b->gen && a->gen_acked == b->gen_acked
         && a->floor_seq == b->floor_seq && a->last_seq == b->last_seq
         && a->clean == b->clean;
}

/* The state file failed: empty it if possible (the next start then
 * begins a new capture), else make every write fail.  Either way the
 * file no longer claims anything that is not so.
 */
void
actlog_fail (const char *err)
{
  nbdkit_error ("livewatch: %s", err);
  if (statefile_invalidate (actlog_al.sf) == 0) {
    atomic_store (&actlog_al.state, ACTLOG_LOST);
    atomic_fetch_and (&channel_hdr->flags, ~(uint32_t) LW_FLAG_PERSISTENT);
    nbdkit_error ("livewatch: the state file was emptied: writes go on, "
                  "and the next start of nbdkit begins a new capture (a "
                  "full scan)");
  }
  else {
    atomic_store (&actlog_al.state, ACTLOG_BROKEN);
    nbdkit_error ("livewatch: the state file cannot be emptied either: "
                  "every write fails (EIO) until nbdkit is restarted");
  }
  pthread_mutex_lock (&actlog_lock);
  actlog_al.persist_done = actlog_al.persist_req;
  pthread_cond_broadcast (&actlog_done);
  pthread_mutex_unlock (&actlog_lock);
}

/* Regions idle and clean (no write in flight, every record released,
 * every write durable on the device, no bit) leave the log at a
 * checkpoint.  One waiting only for a flush of the device asks the
 * flusher for one.  Lock held.
 */
static void
actlog_pick_idle (uint64_t released, uint64_t now)
{
  uint32_t i, n = 0;

  for (i = 0; i < actlog_al.l.g.nslots && n < SF_REC_UPD / 2; i++) {
    struct actlog_slot *s = &actlog_al.slots[i];
    if (!actlog_stable (s) || s->cur == SF_NONE
        || atomic_load (&s->inflight) != 0
        || atomic_load (&s->last_seq) > released
        || now - s->last_use < actlog_idle_ms ()
        || !almap_region_clean (&actlog_al.m, s->cur))
      continue;
    if (!actlog_durable (s)) {
      actlog_al.flush_wanted = true;
      continue;
    }
    s->next = SF_NONE;
    s->queued = true;
    actlog_al.queue[actlog_al.nqueue++] = i;
    n++;
  }
}

/* Write one record: the updates waiting (at most SF_REC_UPD), with the
 * map pages they need first; at a CHECKPOINT also idle regions out and P
 * recomputed.  The journal thread only.
 */
static void
actlog_commit (bool checkpoint)
{
  struct stateformat_update upd[SF_REC_UPD];
  uint64_t leaving[SF_REC_UPD], leaving_seq[SF_REC_UPD];
  uint64_t leaving_need[SF_REC_UPD];
  bool leaving_durable[SF_REC_UPD];
  uint32_t batch[SF_REC_UPD];
  size_t nb, nl = 0, np, i;
  struct stateformat_dyn d;
  uint64_t released, want, now;
  char err[512];

  /* Read first: everything this record covers happened after. */
  released = atomic_load (&channel_hdr->tail_seq);
  now = lb_now_ms ();
  pthread_mutex_lock (&actlog_lock);
  want = actlog_al.persist_req;
  if (checkpoint)
    actlog_pick_idle (released, now);
  nb = actlog_al.nqueue < SF_REC_UPD ? actlog_al.nqueue : SF_REC_UPD;
  memcpy (batch, actlog_al.queue, nb * sizeof *batch);
  memmove (actlog_al.queue, actlog_al.queue + nb, (actlog_al.nqueue - nb) * sizeof *actlog_al.queue);
  actlog_al.nqueue -= nb;
  for (i = 0; i < nb; i++) {
    struct actlog_slot *s = &actlog_al.slots[batch[i]];
    upd[i] = (struct stateformat_update) { .slot = batch[i],
                                           .region = s->next };
    if (s->cur != SF_NONE) {
      /* No write is in flight in it (picked with none, and new ones
       * wait): its last seq is final.
       */
      assert (atomic_load (&s->inflight) == 0);
      leaving[nl] = s->cur;
      leaving_durable[nl] = actlog_durable (s);
      leaving_need[nl] = atomic_load (&s->dur_need);
      leaving_seq[nl++] = atomic_load (&s->last_seq);
    }
  }
  pthread_mutex_unlock (&actlog_lock);

  for (i = 0; i < nb; i++)
    actlog_al.table[upd[i].slot] = upd[i].region;
  /* What the consumer copied or applied from the device's cache may be
   * forgotten only once the device has it too: bits whose writes wait
   * for a flush are kept, and the flusher asked for one.
   */
  if (checkpoint
      && almap_checkpoint (&actlog_al.m, actlog_al.table, actlog_al.l.g.nslots, actlog_al.dyn.floor_seq,
                           actlog_al.flush_device ? atomic_load (&actlog_al.flush_done)
                                           : UINT64_MAX)) {
    pthread_mutex_lock (&actlog_lock);
    actlog_al.flush_wanted = true;
    pthread_mutex_unlock (&actlog_lock);
  }
  for (i = 0; i < nl; i++)
    almap_leave (&actlog_al.m, leaving[i], leaving_seq[i], leaving_need[i],
                 leaving_seq[i] > released || !leaving_durable[i]);
  np = almap_changed_pages (&actlog_al.m, actlog_al.pages, checkpoint);
  /* P first: a leaving region must be covered before its slot empties. */
  if (statefile_write_pages (actlog_al.sf, actlog_al.m.map, actlog_al.pages, np, err,
                             sizeof err) == -1) {
    actlog_fail (err);
    return;
  }
  if (np > 0)
    atomic_fetch_add (&channel_hdr->n_state_syncs, 1);
  d = actlog_dyn (released);
  if (nb > 0 || np > 0 || want != actlog_al.persist_done
      || !actlog_dyn_same (&d, &actlog_al.dyn)) {
    if (statefile_append (actlog_al.sf, &d, upd, nb, actlog_al.table, err,
                          sizeof err) == -1) {
      actlog_fail (err);
      return;
    }
    actlog_al.dyn = d;
    atomic_store (&actlog_al.journal_last, d.last_seq);
    atomic_fetch_add (&channel_hdr->n_state_records, 1);
    atomic_fetch_add (&channel_hdr->n_state_syncs, 1);
  }

  pthread_mutex_lock (&actlog_lock);
  for (i = 0; i < nb; i++) {
    struct actlog_slot *s = &actlog_al.slots[batch[i]];
    if (s->cur != SF_NONE)
      atomic_store (&actlog_al.region_slot[s->cur], 0);
    s->cur = s->next;
    s->queued = false;
    if (s->cur == SF_NONE)
      actlog_al.freel[actlog_al.nfree++] = batch[i];
    else {
      /* A region comes back with the seq of its last record: records
       * it had before are no more released than they were.
       */
      s->last_use = now;
      s->seq_end = UINT64_MAX;
      atomic_store (&s->last_seq, actlog_al.m.left_seq[s->cur]);
      atomic_store (&s->dur_need, 0);
    }
  }
  actlog_al.persist_done = want;
  pthread_cond_broadcast (&actlog_done);
  if (actlog_al.flush_wanted)
    pthread_cond_signal (&actlog_flushcv);
  pthread_mutex_unlock (&actlog_lock);
}

/* The flusher: flushes of the device when a checkpoint waits for one, in
 * a thread of its own so that no activation waits behind one (a flush
 * may write back much of the device's cache).
 */
void *
actlog_flusher (void *arg)
{
  (void) arg;
  pthread_mutex_lock (&actlog_lock);
  while (!actlog_al.stopping) {
    if (actlog_al.flush_wanted && atomic_load (&actlog_al.state) == ACTLOG_OK) {
      actlog_al.flush_wanted = false;
      pthread_mutex_unlock (&actlog_lock);
      actlog_flush ();
      pthread_mutex_lock (&actlog_lock);
      continue;
    }
    pthread_cond_wait (&actlog_flushcv, &actlog_lock);
  }
  pthread_mutex_unlock (&actlog_lock);
  return NULL;
}

void *
actlog_main (void *arg)
{
  uint64_t next_ckpt, period;

  (void) arg;
  period = livewatch_debug_al_checkpoint_ms > 0
           ? livewatch_debug_al_checkpoint_ms : ACTLOG_CHECKPOINT_MS;
  next_ckpt = lb_now_ms () + period;
  pthread_mutex_lock (&actlog_lock);
  while (!actlog_al.stopping && atomic_load (&actlog_al.state) == ACTLOG_OK) {
    uint64_t now = lb_now_ms ();
    struct timespec ts;

    if (actlog_al.nqueue > 0 || actlog_al.persist_req != actlog_al.persist_done) {
      pthread_mutex_unlock (&actlog_lock);
      actlog_commit (false);
      pthread_mutex_lock (&actlog_lock);
      continue;
    }
    if (now >= next_ckpt) {
      pthread_mutex_unlock (&actlog_lock);
      actlog_commit (true);
      pthread_mutex_lock (&actlog_lock);
      next_ckpt = lb_now_ms () + period;
      continue;
    }
    clock_gettime (CLOCK_REALTIME, &ts);
    ts.tv_sec += (next_ckpt - now) / 1000;
    ts.tv_nsec += (long) ((next_ckpt - now) % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait (&actlog_work, &actlog_lock, &ts);
  }
  pthread_mutex_unlock (&actlog_lock);
  return NULL;
}
