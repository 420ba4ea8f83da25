/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: the activity log, at run time.  See actlog.h for the
 * contract and the invariant, doc/capture.md for why it holds.
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

#include "actlog.h"
#include "almap.h"
#include "channel.h"
#include "lb_err.h"
#include "lb_time.h"

/* nbdkit -D livewatch.al_idle_ms=N: how long a clean region stays active
 * unused (default 5 s); -D livewatch.al_checkpoint_ms=N: how often the
 * journal thread checkpoints (default 2 s).  For tests.
 */
NBDKIT_DLL_PUBLIC int livewatch_debug_al_idle_ms;
NBDKIT_DLL_PUBLIC int livewatch_debug_al_checkpoint_ms;

#define ACTLOG_IDLE_MS       5000
#define ACTLOG_CHECKPOINT_MS 2000
#define ACTLOG_AHEAD         32u   /* regions activated ahead of a
                                    * sequential writer */
#define ACTLOG_STREAM        4u    /* writes in a row, each where the one
                                    * before ended, and a region's worth of
                                    * bytes, make a sequential stream */

enum actlog_state {
  ACTLOG_OK,                    /* the state file is kept */
  ACTLOG_LOST,                  /* it failed and was emptied: writes go
                                 * on unguarded, the next start scans */
  ACTLOG_BROKEN,                /* it failed and could not be emptied:
                                 * writes fail (EIO) */
};

struct actlog_slot {
  uint64_t cur;                 /* region, durably (SF_NONE: free) */
  uint64_t next;                /* region once the queued update counts */
  bool queued;                  /* waits in the queue for a record */
  _Atomic uint32_t inflight;    /* writes between enter and leave */
  _Atomic uint64_t last_seq;    /* seq of the last record of a write to cur */
  _Atomic uint64_t dur_need;    /* flush ticket that makes its writes
                                 * durable on the device */
  uint64_t last_use;            /* ms: LRU order and idleness */
  uint64_t seq_end;             /* end offset of the last write in cur */
  uint32_t seq_run;             /* how many writes in a row ended there,
                                 * each starting where one had ended */
  uint64_t seq_bytes;           /* and how many bytes they wrote */
};

bool actlog_on;
uint64_t actlog_span;

/* actlog_lock guards al but its atomics and what the comments give to
 * the journal thread alone.
 */
static pthread_mutex_t actlog_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t actlog_done = PTHREAD_COND_INITIALIZER; /* a record
                                 * counts, a slot came free */
static pthread_cond_t actlog_work = PTHREAD_COND_INITIALIZER; /* for the
                                 * journal thread */
static pthread_cond_t actlog_flushcv = PTHREAD_COND_INITIALIZER; /* for
                                 * the flusher */

static struct {
  struct statefile *sf;
  struct stateformat_layout l;
  struct actlog_slot *slots;
  _Atomic uint32_t *region_slot; /* slot + 1 of each region, 0: none;
                                 * stable while a write holds it */
  uint64_t *table;              /* the durable slot table (journal thread) */
  struct almap m;               /* P (journal thread) */
  uint32_t *queue;              /* slots with an update, oldest first */
  size_t nqueue;
  uint32_t *freel;              /* free slots */
  size_t nfree;
  uint64_t persist_req, persist_done;
  _Atomic uint32_t waiters;     /* writers waiting for a slot or record */
  bool stopping, running;
  pthread_t thread, flusher;
  bool flusher_running;
  bool flush_wanted;            /* a checkpoint waits for a flush */
  uint64_t *pages;              /* scratch: list of pages to write */
  struct stateformat_dyn dyn;   /* of the last record */
  _Atomic uint64_t journal_last; /* dyn.last_seq, durable */
  uint64_t start_seq;
  uint32_t ahead;               /* regions read ahead: ACTLOG_AHEAD, at
                                 * most a quarter of the slots */
  _Atomic int state;            /* enum actlog_state */
  int (*flush_device) (void);
  /* Flushes of the device: tickets taken when one starts, and the
   * highest ticket of one that completed.  A write that completed while
   * flush_started was K is durable once flush_done > K.
   */
  _Atomic uint64_t flush_started, flush_done;
} al;

static uint64_t
actlog_idle_ms (void)
{
  return livewatch_debug_al_idle_ms > 0 ? livewatch_debug_al_idle_ms
                                        : ACTLOG_IDLE_MS;
}

static bool
actlog_stable (const struct actlog_slot *s)
{
  return !s->queued;
}

/* --- the write path ---------------------------------------------------- */

/* A slot for a new region: a free one, else the least recently used one
 * with no write in flight (IDLE_ONLY: and unused for the idle time).
 * Lock held.  Returns the slot, or -1.
 */
static int64_t
actlog_pick (bool idle_only, uint64_t now)
{
  int64_t best = -1;
  uint32_t i;

  if (al.nfree > 0)
    return al.freel[--al.nfree];
  for (i = 0; i < al.l.g.nslots; i++) {
    const struct actlog_slot *s = &al.slots[i];
    if (!actlog_stable (s) || atomic_load (&s->inflight) != 0
        || (idle_only && now - s->last_use < actlog_idle_ms ()))
      continue;
    if (best < 0 || s->last_use < al.slots[best].last_use)
      best = i;
  }
  return best;
}

/* Queue region R into a slot (evicting its region, if any, in the same
 * record).  Lock held.  Returns false if no slot can be had now.
 */
static bool
actlog_queue (uint64_t r, bool idle_only, uint64_t now)
{
  int64_t s = actlog_pick (idle_only, now);
  struct actlog_slot *sl;

  if (s < 0)
    return false;
  sl = &al.slots[s];
  assert (actlog_stable (sl) && atomic_load (&sl->inflight) == 0);
  assert (atomic_load (&al.region_slot[r]) == 0);
  sl->next = r;
  sl->queued = true;
  atomic_store (&al.region_slot[r], (uint32_t) s + 1);
  al.queue[al.nqueue++] = (uint32_t) s;
  return true;
}

/* All or nothing: if every region of T is durably active, count T in
 * flight in each and return true; else queue what is missing (if slots
 * can be had) and return false, holding nothing, so that no writer waits
 * while it holds a slot another one needs.  Lock held.
 */
static bool
actlog_acquire (const struct actlog_ticket *t, uint64_t now)
{
  bool all = true, queued = false;
  uint64_t r;

  for (r = t->first; r <= t->last; r++) {
    uint32_t s = atomic_load (&al.region_slot[r]);
    if (s != 0 && actlog_stable (&al.slots[s - 1]) && al.slots[s - 1].cur == r)
      continue;
    all = false;
    /* Activating, or leaving (then it is activated again once its
     * record counts): wait for that record.
     */
    if (s == 0) {
      if (!actlog_queue (r, false, now))
        break;
      queued = true;
    }
  }
  if (queued)
    pthread_cond_signal (&actlog_work);
  if (!all)
    return false;
  for (r = t->first; r <= t->last; r++) {
    struct actlog_slot *sl = &al.slots[atomic_load (&al.region_slot[r]) - 1];
    atomic_fetch_add (&sl->inflight, 1);
    sl->last_use = now;
  }
  return true;
}

/* ACTLOG_STREAM writes in a row, each starting where the one before
 * ended, over a region's worth of bytes, are taken for a sequential
 * stream (random writes line up so in short runs at most: fio's random
 * map fills its last holes in order): activate the regions ahead of it,
 * in the record being assembled, before it needs them (only free or idle
 * slots), once it is within half the window of the last one.  Lock
 * held.
 */
static void
actlog_read_ahead (const struct actlog_ticket *t, uint64_t offset,
                   uint64_t count, uint64_t now)
{
  const uint64_t n = al.l.nregions;
  struct actlog_slot *last = &al.slots[atomic_load (&al.region_slot[t->last])
                                       - 1];
  uint64_t probe, r, end, before;
  uint64_t bytes = count;
  uint32_t s, run = 0;
  bool queued = false;

  if (offset > 0) {
    before = (offset - 1) / al.l.g.region_size;
    s = atomic_load (&al.region_slot[before]);
    if (s != 0 && al.slots[s - 1].cur == before
        && al.slots[s - 1].seq_end == offset) {
      run = al.slots[s - 1].seq_run + 1;
      bytes += al.slots[s - 1].seq_bytes;
    }
  }
  last->seq_end = offset + count;
  last->seq_run = run;
  last->seq_bytes = bytes;
  if (run < ACTLOG_STREAM || bytes < al.l.g.region_size)
    return;
  probe = t->last + al.ahead / 2;
  if (probe >= n || atomic_load (&al.region_slot[probe]) != 0)
    return;
  end = t->last + al.ahead < n ? t->last + al.ahead : n - 1;
  for (r = t->last + 1; r <= end; r++)
    if (atomic_load (&al.region_slot[r]) == 0) {
      if (!actlog_queue (r, true, now))
        break;
      queued = true;
    }
  if (queued)
    pthread_cond_signal (&actlog_work);
}

int
actlog_enter (uint64_t offset, uint64_t count, struct actlog_ticket *t)
{
  uint64_t waited_since = 0;
  struct timespec ts;
  int st;

  t->held = false;
  if (!actlog_on || count == 0)
    return 0;
  assert (offset < al.l.g.dev_size && count <= al.l.g.dev_size - offset);
  t->first = offset / al.l.g.region_size;
  t->last = (offset + count - 1) / al.l.g.region_size;
  assert (actlog_span == 0 || (t->last - t->first + 1) * al.l.g.region_size
          <= actlog_span + al.l.g.region_size);
  pthread_mutex_lock (&actlog_lock);
  for (;;) {
    uint64_t now = lb_now_ms ();
    st = atomic_load (&al.state);
    if (st != ACTLOG_OK)
      break;
    if (actlog_acquire (t, now)) {
      t->held = true;
      actlog_read_ahead (t, offset, count, now);
      break;
    }
    if (waited_since == 0) {
      clock_gettime (CLOCK_MONOTONIC, &ts);
      waited_since = ts.tv_sec * UINT64_C(1000000) + ts.tv_nsec / 1000;
    }
    atomic_fetch_add (&al.waiters, 1);
    pthread_cond_wait (&actlog_done, &actlog_lock);
    atomic_fetch_sub (&al.waiters, 1);
  }
  pthread_mutex_unlock (&actlog_lock);
  if (waited_since) {
    clock_gettime (CLOCK_MONOTONIC, &ts);
    atomic_fetch_add_explicit (&channel_hdr->n_al_waits, 1,
                               memory_order_relaxed);
    atomic_fetch_add_explicit (&channel_hdr->al_wait_us,
                               ts.tv_sec * UINT64_C(1000000)
                               + ts.tv_nsec / 1000 - waited_since,
                               memory_order_relaxed);
  }
  if (st == ACTLOG_BROKEN) {
    errno = EIO;
    return -1;
  }
  return 0;
}

void
actlog_note_seq (const struct actlog_ticket *t, uint64_t seq)
{
  uint64_t r;

  if (!t->held)
    return;
  for (r = t->first; r <= t->last; r++)
    atomic_store (&al.slots[atomic_load (&al.region_slot[r]) - 1].last_seq,
                  seq);
}

void
actlog_leave (struct actlog_ticket *t)
{
  bool wake = false;
  uint64_t r;

  if (!t->held)
    return;
  const uint64_t need = atomic_load (&al.flush_started) + 1;

  for (r = t->first; r <= t->last; r++) {
    struct actlog_slot *sl = &al.slots[atomic_load (&al.region_slot[r]) - 1];
    uint64_t old = atomic_load (&sl->dur_need);

    /* Done on the device: a flush that starts from now on covers it. */
    while (old < need
           && !atomic_compare_exchange_weak (&sl->dur_need, &old, need))
      ;
    /* Sequentially consistent, against a waiter that counts itself and
     * then looks at the counts: one of us sees the other.
     */
    if (atomic_fetch_sub (&sl->inflight, 1) == 1
        && atomic_load (&al.waiters) > 0)
      wake = true;
  }
  t->held = false;
  if (wake) {
    pthread_mutex_lock (&actlog_lock);
    pthread_cond_broadcast (&actlog_done);
    pthread_mutex_unlock (&actlog_lock);
  }
}

uint64_t
actlog_flush_begin (void)
{
  return actlog_on ? atomic_fetch_add (&al.flush_started, 1) + 1 : 0;
}

void
actlog_flush_end (uint64_t ticket)
{
  uint64_t old;

  if (!actlog_on)
    return;
  old = atomic_load (&al.flush_done);
  while (old < ticket
         && !atomic_compare_exchange_weak (&al.flush_done, &old, ticket))
    ;
}

/* Are the writes the slot has seen durable on the device? */
static bool
actlog_durable (const struct actlog_slot *s)
{
  return al.flush_device == NULL
         || atomic_load (&s->dur_need) <= atomic_load (&al.flush_done);
}

/* Flush the device (the flusher thread, or the clean stop).  Returns
 * true if every write completed before the call is now durable there.
 */
static bool
actlog_flush (void)
{
  uint64_t t;

  if (al.flush_device == NULL)
    return true;
  t = actlog_flush_begin ();
  if (al.flush_device () == -1) {
    nbdkit_debug ("livewatch: the device's flush failed: what waits for "
                  "one stays in the activity log and the map");
    return false;
  }
  actlog_flush_end (t);
  return true;
}

bool
actlog_may_append (uint64_t seq)
{
  return !actlog_on || atomic_load (&al.state) != ACTLOG_OK
         || seq - atomic_load (&al.journal_last) < LW_SEQ_GAP / 2;
}

/* --- records ------------------------------------------------------------- */

/* The dynamic state for the next record, given the RELEASED seq read
 * before anything this record covers.  Every field only grows.  floor:
 * the released seq, except while no record of this instance was
 * released: then the stored floor stays, so that a mirror the previous
 * instance could continue still can (the recovered set is the same).
 */
static struct stateformat_dyn
actlog_dyn (uint64_t released)
{
  const struct lw_header *h = channel_hdr;
  struct stateformat_dyn d = al.dyn;
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
  if (released > al.start_seq && released > d.floor_seq)
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
static void
actlog_fail (const char *err)
{
  nbdkit_error ("livewatch: %s", err);
  if (statefile_invalidate (al.sf) == 0) {
    atomic_store (&al.state, ACTLOG_LOST);
    atomic_fetch_and (&channel_hdr->flags, ~(uint32_t) LW_FLAG_PERSISTENT);
    nbdkit_error ("livewatch: the state file was emptied: writes go on, "
                  "and the next start of nbdkit begins a new capture (a "
                  "full scan)");
  }
  else {
    atomic_store (&al.state, ACTLOG_BROKEN);
    nbdkit_error ("livewatch: the state file cannot be emptied either: "
                  "every write fails (EIO) until nbdkit is restarted");
  }
  pthread_mutex_lock (&actlog_lock);
  al.persist_done = al.persist_req;
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

  for (i = 0; i < al.l.g.nslots && n < SF_REC_UPD / 2; i++) {
    struct actlog_slot *s = &al.slots[i];
    if (!actlog_stable (s) || s->cur == SF_NONE
        || atomic_load (&s->inflight) != 0
        || atomic_load (&s->last_seq) > released
        || now - s->last_use < actlog_idle_ms ()
        || !almap_region_clean (&al.m, s->cur))
      continue;
    if (!actlog_durable (s)) {
      al.flush_wanted = true;
      continue;
    }
    s->next = SF_NONE;
    s->queued = true;
    al.queue[al.nqueue++] = i;
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
  want = al.persist_req;
  if (checkpoint)
    actlog_pick_idle (released, now);
  nb = al.nqueue < SF_REC_UPD ? al.nqueue : SF_REC_UPD;
  memcpy (batch, al.queue, nb * sizeof *batch);
  memmove (al.queue, al.queue + nb, (al.nqueue - nb) * sizeof *al.queue);
  al.nqueue -= nb;
  for (i = 0; i < nb; i++) {
    struct actlog_slot *s = &al.slots[batch[i]];
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
    al.table[upd[i].slot] = upd[i].region;
  /* What the consumer copied or applied from the device's cache may be
   * forgotten only once the device has it too: bits whose writes wait
   * for a flush are kept, and the flusher asked for one.
   */
  if (checkpoint
      && almap_checkpoint (&al.m, al.table, al.l.g.nslots, al.dyn.floor_seq,
                           al.flush_device ? atomic_load (&al.flush_done)
                                           : UINT64_MAX)) {
    pthread_mutex_lock (&actlog_lock);
    al.flush_wanted = true;
    pthread_mutex_unlock (&actlog_lock);
  }
  for (i = 0; i < nl; i++)
    almap_leave (&al.m, leaving[i], leaving_seq[i], leaving_need[i],
                 leaving_seq[i] > released || !leaving_durable[i]);
  np = almap_changed_pages (&al.m, al.pages, checkpoint);
  /* P first: a leaving region must be covered before its slot empties. */
  if (statefile_write_pages (al.sf, al.m.map, al.pages, np, err,
                             sizeof err) == -1) {
    actlog_fail (err);
    return;
  }
  if (np > 0)
    atomic_fetch_add (&channel_hdr->n_state_syncs, 1);
  d = actlog_dyn (released);
  if (nb > 0 || np > 0 || want != al.persist_done
      || !actlog_dyn_same (&d, &al.dyn)) {
    if (statefile_append (al.sf, &d, upd, nb, al.table, err,
                          sizeof err) == -1) {
      actlog_fail (err);
      return;
    }
    al.dyn = d;
    atomic_store (&al.journal_last, d.last_seq);
    atomic_fetch_add (&channel_hdr->n_state_records, 1);
    atomic_fetch_add (&channel_hdr->n_state_syncs, 1);
  }

  pthread_mutex_lock (&actlog_lock);
  for (i = 0; i < nb; i++) {
    struct actlog_slot *s = &al.slots[batch[i]];
    if (s->cur != SF_NONE)
      atomic_store (&al.region_slot[s->cur], 0);
    s->cur = s->next;
    s->queued = false;
    if (s->cur == SF_NONE)
      al.freel[al.nfree++] = batch[i];
    else {
      /* A region comes back with the seq of its last record: records
       * it had before are no more released than they were.
       */
      s->last_use = now;
      s->seq_end = UINT64_MAX;
      atomic_store (&s->last_seq, al.m.left_seq[s->cur]);
      atomic_store (&s->dur_need, 0);
    }
  }
  al.persist_done = want;
  pthread_cond_broadcast (&actlog_done);
  if (al.flush_wanted)
    pthread_cond_signal (&actlog_flushcv);
  pthread_mutex_unlock (&actlog_lock);
}

/* The flusher: flushes of the device when a checkpoint waits for one, in
 * a thread of its own so that no activation waits behind one (a flush
 * may write back much of the device's cache).
 */
static void *
actlog_flusher (void *arg)
{
  (void) arg;
  pthread_mutex_lock (&actlog_lock);
  while (!al.stopping) {
    if (al.flush_wanted && atomic_load (&al.state) == ACTLOG_OK) {
      al.flush_wanted = false;
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

static void *
actlog_main (void *arg)
{
  uint64_t next_ckpt, period;

  (void) arg;
  period = livewatch_debug_al_checkpoint_ms > 0
           ? livewatch_debug_al_checkpoint_ms : ACTLOG_CHECKPOINT_MS;
  next_ckpt = lb_now_ms () + period;
  pthread_mutex_lock (&actlog_lock);
  while (!al.stopping && atomic_load (&al.state) == ACTLOG_OK) {
    uint64_t now = lb_now_ms ();
    struct timespec ts;

    if (al.nqueue > 0 || al.persist_req != al.persist_done) {
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

int
actlog_persist (void)
{
  uint64_t mine;
  int r;

  if (!actlog_on)
    return 0;
  pthread_mutex_lock (&actlog_lock);
  mine = ++al.persist_req;
  pthread_cond_signal (&actlog_work);
  while (al.persist_done < mine && atomic_load (&al.state) == ACTLOG_OK)
    pthread_cond_wait (&actlog_done, &actlog_lock);
  r = atomic_load (&al.state) == ACTLOG_BROKEN ? -1 : 0;
  pthread_mutex_unlock (&actlog_lock);
  return r;
}

/* --- life cycle ---------------------------------------------------------- */

int
actlog_init (const struct actlog_init *in, char *err, size_t errlen)
{
  const struct stateformat_layout *l = statefile_layout (in->sf);
  const uint32_t N = l->g.nslots;
  uint64_t now = lb_now_ms ();
  uint32_t s;

  assert (!actlog_on && channel_hdr != NULL);
  memset (&al, 0, sizeof al);
  al.sf = in->sf;
  al.l = *l;
  al.slots = calloc (N, sizeof *al.slots);
  al.region_slot = calloc (l->nregions, sizeof *al.region_slot);
  al.table = malloc (N * sizeof *al.table);
  al.queue = malloc (N * sizeof *al.queue);
  al.freel = malloc (N * sizeof *al.freel);
  al.pages = malloc ((l->map_pages ? l->map_pages : 1) * sizeof *al.pages);
  if (almap_init (&al.m, &al.l, in->map, in->rewrite_map) == -1 || !al.slots
      || !al.region_slot || !al.table || !al.queue || !al.freel
      || !al.pages) {
    lb_errf (err, errlen, "out of memory for the activity log");
    return -1;
  }
  for (s = 0; s < N; s++) {
    struct actlog_slot *sl = &al.slots[s];
    sl->cur = sl->next = al.table[s] = in->slots[s];
    /* Recovered regions are idle: they leave as soon as they are clean
     * (copied or compared, and flushed).
     */
    sl->last_use = now - actlog_idle_ms ();
    sl->seq_end = UINT64_MAX;
    if (sl->cur == SF_NONE)
      al.freel[al.nfree++] = s;
    else {
      atomic_store (&al.region_slot[sl->cur], s + 1);
      /* Active when the last instance died: its writes there may still
       * be only in the device's cache.  They are safe once this
       * instance's first flush is done.
       */
      atomic_store (&sl->dur_need, 1);
    }
  }
  al.flush_device = in->flush_device;
  al.ahead = N / 4 < ACTLOG_AHEAD ? N / 4 : ACTLOG_AHEAD;
  al.dyn = in->dyn;
  al.start_seq = in->start_seq;
  /* This instance's first record: if it dies now, that is an unclean
   * stop, and the next one numbers its records above start_seq.
   */
  al.dyn.last_seq = in->start_seq;
  al.dyn.clean = false;
  if (statefile_append (al.sf, &al.dyn, NULL, 0, al.table, err,
                        errlen) == -1)
    return -1;
  atomic_store (&al.journal_last, al.dyn.last_seq);
  atomic_store (&al.state, ACTLOG_OK);
  actlog_span = (uint64_t) (N / 4) * l->g.region_size;
  actlog_on = true;
  return 0;
}

int
actlog_start (void)
{
  int e;

  if (!actlog_on)
    return 0;
  al.stopping = false;
  e = pthread_create (&al.thread, NULL, actlog_main, NULL);
  if (e != 0) {
    nbdkit_error ("livewatch: cannot start the journal thread: %s",
                  strerror (e));
    return -1;
  }
  al.running = true;
  if (al.flush_device) {
    e = pthread_create (&al.flusher, NULL, actlog_flusher, NULL);
    if (e != 0) {
      nbdkit_error ("livewatch: cannot start the flusher thread: %s",
                    strerror (e));
      return -1;
    }
    al.flusher_running = true;
  }
  return 0;
}

void
actlog_stop (void)
{
  if (!al.running)
    return;
  pthread_mutex_lock (&actlog_lock);
  al.stopping = true;
  pthread_cond_signal (&actlog_work);
  pthread_cond_signal (&actlog_flushcv);
  pthread_mutex_unlock (&actlog_lock);
  pthread_join (al.thread, NULL);
  if (al.flusher_running)
    pthread_join (al.flusher, NULL);
  al.running = al.flusher_running = false;
}

int
actlog_write_clean (const uint64_t *map)
{
  struct stateformat_dyn d;
  char err[512];
  uint64_t p, s;

  if (!actlog_on || atomic_load (&al.state) != ACTLOG_OK)
    return -1;                  /* no file to keep (emptied, or broken) */
  assert (!al.running);
  /* What the consumer has may not be on the device yet: after a power
   * cut there, the mirror would be newer than the device where this map
   * says nothing.  If the flush fails the file stays "unclean" (active
   * regions compared; nothing was cleared without a flush).
   */
  if (!actlog_flush ()) {
    nbdkit_error ("livewatch: the device's flush failed at the clean "
                  "stop: the state file is left as after a crash");
    return -1;
  }
  for (p = 0; p < al.l.map_pages; p++)
    al.pages[p] = p;
  for (s = 0; s < al.l.g.nslots; s++)
    al.table[s] = SF_NONE;
  d = actlog_dyn (atomic_load (&channel_hdr->tail_seq));
  d.clean = true;
  /* Every page, durable, before the record that says nothing is active. */
  if (statefile_write_pages (al.sf, map, al.pages, al.l.map_pages, err,
                             sizeof err) == -1
      || statefile_append (al.sf, &d, NULL, 0, al.table, err,
                           sizeof err) == -1) {
    actlog_fail (err);
    return -1;
  }
  al.dyn = d;
  return 0;
}

void
actlog_free (void)
{
  assert (!al.running);
  statefile_close (al.sf);
  free (al.slots);
  free ((void *) al.region_slot);
  free (al.table);
  free (al.queue);
  free (al.freel);
  free (al.pages);
  almap_free (&al.m);
  memset (&al, 0, sizeof al);
  actlog_on = false;
  actlog_span = 0;
}
