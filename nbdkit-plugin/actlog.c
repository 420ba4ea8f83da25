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

#include "channel.h"
#include "lb_err.h"
#include "lb_time.h"

/* nbdkit -D livewatch.al_idle_ms=N: how long a clean region stays active
 * unused (default 5 s); -D livewatch.al_checkpoint_ms=N: how often the
 * journal thread checkpoints (default 2 s).  For tests.
 */
NBDKIT_DLL_PUBLIC int livewatch_debug_al_idle_ms;
NBDKIT_DLL_PUBLIC int livewatch_debug_al_checkpoint_ms;

#include "actlog_impl.h"

bool actlog_on;
uint64_t actlog_span;
struct actlog_run actlog_al;
pthread_mutex_t actlog_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t actlog_done = PTHREAD_COND_INITIALIZER;
pthread_cond_t actlog_work = PTHREAD_COND_INITIALIZER;
pthread_cond_t actlog_flushcv = PTHREAD_COND_INITIALIZER;


uint64_t
actlog_idle_ms (void)
{
  return livewatch_debug_al_idle_ms > 0 ? livewatch_debug_al_idle_ms
                                        : ACTLOG_IDLE_MS;
}

bool
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

  if (actlog_al.nfree > 0)
    return actlog_al.freel[--actlog_al.nfree];
  for (i = 0; i < actlog_al.l.g.nslots; i++) {
    const struct actlog_slot *s = &actlog_al.slots[i];
    if (!actlog_stable (s) || atomic_load (&s->inflight) != 0
        || (idle_only && now - s->last_use < actlog_idle_ms ()))
      continue;
    if (best < 0 || s->last_use < actlog_al.slots[best].last_use)
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
  sl = &actlog_al.slots[s];
  assert (actlog_stable (sl) && atomic_load (&sl->inflight) == 0);
  assert (atomic_load (&actlog_al.region_slot[r]) == 0);
  sl->next = r;
  sl->queued = true;
  atomic_store (&actlog_al.region_slot[r], (uint32_t) s + 1);
  actlog_al.queue[actlog_al.nqueue++] = (uint32_t) s;
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
    uint32_t s = atomic_load (&actlog_al.region_slot[r]);
    if (s != 0 && actlog_stable (&actlog_al.slots[s - 1]) && actlog_al.slots[s - 1].cur == r)
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
    struct actlog_slot *sl = &actlog_al.slots[atomic_load (&actlog_al.region_slot[r]) - 1];
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
  const uint64_t n = actlog_al.l.nregions;
  struct actlog_slot *last = &actlog_al.slots[atomic_load (&actlog_al.region_slot[t->last])
                                       - 1];
  uint64_t probe, r, end, before;
  uint64_t bytes = count;
  uint32_t s, run = 0;
  bool queued = false;

  if (offset > 0) {
    before = (offset - 1) / actlog_al.l.g.region_size;
    s = atomic_load (&actlog_al.region_slot[before]);
    if (s != 0 && actlog_al.slots[s - 1].cur == before
        && actlog_al.slots[s - 1].seq_end == offset) {
      run = actlog_al.slots[s - 1].seq_run + 1;
      bytes += actlog_al.slots[s - 1].seq_bytes;
    }
  }
  last->seq_end = offset + count;
  last->seq_run = run;
  last->seq_bytes = bytes;
  if (run < ACTLOG_STREAM || bytes < actlog_al.l.g.region_size)
    return;
  probe = t->last + actlog_al.ahead / 2;
  if (probe >= n || atomic_load (&actlog_al.region_slot[probe]) != 0)
    return;
  end = t->last + actlog_al.ahead < n ? t->last + actlog_al.ahead : n - 1;
  for (r = t->last + 1; r <= end; r++)
    if (atomic_load (&actlog_al.region_slot[r]) == 0) {
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
  assert (offset < actlog_al.l.g.dev_size && count <= actlog_al.l.g.dev_size - offset);
  t->first = offset / actlog_al.l.g.region_size;
  t->last = (offset + count - 1) / actlog_al.l.g.region_size;
  assert (actlog_span == 0 || (t->last - t->first + 1) * actlog_al.l.g.region_size
          <= actlog_span + actlog_al.l.g.region_size);
  pthread_mutex_lock (&actlog_lock);
  for (;;) {
    uint64_t now = lb_now_ms ();
    st = atomic_load (&actlog_al.state);
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
    atomic_fetch_add (&actlog_al.waiters, 1);
    pthread_cond_wait (&actlog_done, &actlog_lock);
    atomic_fetch_sub (&actlog_al.waiters, 1);
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
    atomic_store (&actlog_al.slots[atomic_load (&actlog_al.region_slot[r]) - 1].last_seq,
                  seq);
}

void
actlog_leave (struct actlog_ticket *t)
{
  bool wake = false;
  uint64_t r;

  if (!t->held)
    return;
  const uint64_t need = atomic_load (&actlog_al.flush_started) + 1;

  for (r = t->first; r <= t->last; r++) {
    struct actlog_slot *sl = &actlog_al.slots[atomic_load (&actlog_al.region_slot[r]) - 1];
    uint64_t old = atomic_load (&sl->dur_need);

    /* Done on the device: a flush that starts from now on covers it. */
    while (old < need
           && !atomic_compare_exchange_weak (&sl->dur_need, &old, need))
      ;
    /* Sequentially consistent, against a waiter that counts itself and
     * then looks at the counts: one of us sees the other.
     */
    if (atomic_fetch_sub (&sl->inflight, 1) == 1
        && atomic_load (&actlog_al.waiters) > 0)
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
  return actlog_on ? atomic_fetch_add (&actlog_al.flush_started, 1) + 1 : 0;
}

void
actlog_flush_end (uint64_t ticket)
{
  uint64_t old;

  if (!actlog_on)
    return;
  old = atomic_load (&actlog_al.flush_done);
  while (old < ticket
         && !atomic_compare_exchange_weak (&actlog_al.flush_done, &old, ticket))
    ;
}

/* Are the writes the slot has seen durable on the device? */
bool
actlog_durable (const struct actlog_slot *s)
{
  return actlog_al.flush_device == NULL
         || atomic_load (&s->dur_need) <= atomic_load (&actlog_al.flush_done);
}

/* Flush the device (the flusher thread, or the clean stop).  Returns
 * true if every write completed before the call is now durable there.
 */
bool
actlog_flush (void)
{
  uint64_t t;

  if (actlog_al.flush_device == NULL)
    return true;
  t = actlog_flush_begin ();
  if (actlog_al.flush_device () == -1) {
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
  return !actlog_on || atomic_load (&actlog_al.state) != ACTLOG_OK
         || seq - atomic_load (&actlog_al.journal_last) < LW_SEQ_GAP / 2;
}

int
actlog_persist (void)
{
  uint64_t mine;
  int r;

  if (!actlog_on)
    return 0;
  pthread_mutex_lock (&actlog_lock);
  mine = ++actlog_al.persist_req;
  pthread_cond_signal (&actlog_work);
  while (actlog_al.persist_done < mine && atomic_load (&actlog_al.state) == ACTLOG_OK)
    pthread_cond_wait (&actlog_done, &actlog_lock);
  r = atomic_load (&actlog_al.state) == ACTLOG_BROKEN ? -1 : 0;
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
  memset (&actlog_al, 0, sizeof actlog_al);
  actlog_al.sf = in->sf;
  actlog_al.l = *l;
  actlog_al.slots = calloc (N, sizeof *actlog_al.slots);
  actlog_al.region_slot = calloc (l->nregions, sizeof *actlog_al.region_slot);
  actlog_al.table = malloc (N * sizeof *actlog_al.table);
  actlog_al.queue = malloc (N * sizeof *actlog_al.queue);
  actlog_al.freel = malloc (N * sizeof *actlog_al.freel);
  actlog_al.pages = malloc ((l->map_pages ? l->map_pages : 1) * sizeof *actlog_al.pages);
  if (almap_init (&actlog_al.m, &actlog_al.l, in->map, in->rewrite_map) == -1 || !actlog_al.slots
      || !actlog_al.region_slot || !actlog_al.table || !actlog_al.queue || !actlog_al.freel
      || !actlog_al.pages) {
    lb_errf (err, errlen, "out of memory for the activity log");
    return -1;
  }
  for (s = 0; s < N; s++) {
    struct actlog_slot *sl = &actlog_al.slots[s];
    sl->cur = sl->next = actlog_al.table[s] = in->slots[s];
    /* Recovered regions are idle: they leave as soon as they are clean
     * (copied or compared, and flushed).
     */
    sl->last_use = now - actlog_idle_ms ();
    sl->seq_end = UINT64_MAX;
    if (sl->cur == SF_NONE)
      actlog_al.freel[actlog_al.nfree++] = s;
    else {
      atomic_store (&actlog_al.region_slot[sl->cur], s + 1);
      /* Active when the last instance died: its writes there may still
       * be only in the device's cache.  They are safe once this
       * instance's first flush is done.
       */
      atomic_store (&sl->dur_need, 1);
    }
  }
  actlog_al.flush_device = in->flush_device;
  actlog_al.ahead = N / 4 < ACTLOG_AHEAD ? N / 4 : ACTLOG_AHEAD;
  actlog_al.dyn = in->dyn;
  actlog_al.start_seq = in->start_seq;
  /* This instance's first record: if it dies now, that is an unclean
   * stop, and the next one numbers its records above start_seq.
   */
  actlog_al.dyn.last_seq = in->start_seq;
  actlog_al.dyn.clean = false;
  if (statefile_append (actlog_al.sf, &actlog_al.dyn, NULL, 0, actlog_al.table, err,
                        errlen) == -1)
    return -1;
  atomic_store (&actlog_al.journal_last, actlog_al.dyn.last_seq);
  atomic_store (&actlog_al.state, ACTLOG_OK);
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
  actlog_al.stopping = false;
  e = pthread_create (&actlog_al.thread, NULL, actlog_main, NULL);
  if (e != 0) {
    nbdkit_error ("livewatch: cannot start the journal thread: %s",
                  strerror (e));
    return -1;
  }
  actlog_al.running = true;
  if (actlog_al.flush_device) {
    e = pthread_create (&actlog_al.flusher, NULL, actlog_flusher, NULL);
    if (e != 0) {
      nbdkit_error ("livewatch: cannot start the flusher thread: %s",
                    strerror (e));
      return -1;
    }
    actlog_al.flusher_running = true;
  }
  return 0;
}

void
actlog_stop (void)
{
  if (!actlog_al.running)
    return;
  pthread_mutex_lock (&actlog_lock);
  actlog_al.stopping = true;
  pthread_cond_signal (&actlog_work);
  pthread_cond_signal (&actlog_flushcv);
  pthread_mutex_unlock (&actlog_lock);
  pthread_join (actlog_al.thread, NULL);
  if (actlog_al.flusher_running)
    pthread_join (actlog_al.flusher, NULL);
  actlog_al.running = actlog_al.flusher_running = false;
}

int
actlog_write_clean (const uint64_t *map)
{
  struct stateformat_dyn d;
  char err[512];
  uint64_t p, s;

  if (!actlog_on || atomic_load (&actlog_al.state) != ACTLOG_OK)
    return -1;                  /* no file to keep (emptied, or broken) */
  assert (!actlog_al.running);
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
  for (p = 0; p < actlog_al.l.map_pages; p++)
    actlog_al.pages[p] = p;
  for (s = 0; s < actlog_al.l.g.nslots; s++)
    actlog_al.table[s] = SF_NONE;
  d = actlog_dyn (atomic_load (&channel_hdr->tail_seq));
  d.clean = true;
  /* Every page, durable, before the record that says nothing is active. */
  if (statefile_write_pages (actlog_al.sf, map, actlog_al.pages, actlog_al.l.map_pages, err,
                             sizeof err) == -1
      || statefile_append (actlog_al.sf, &d, NULL, 0, actlog_al.table, err,
                           sizeof err) == -1) {
    actlog_fail (err);
    return -1;
  }
  actlog_al.dyn = d;
  return 0;
}

void
actlog_free (void)
{
  assert (!actlog_al.running);
  statefile_close (actlog_al.sf);
  free (actlog_al.slots);
  free ((void *) actlog_al.region_slot);
  free (actlog_al.table);
  free (actlog_al.queue);
  free (actlog_al.freel);
  free (actlog_al.pages);
  almap_free (&actlog_al.m);
  memset (&actlog_al, 0, sizeof actlog_al);
  actlog_on = false;
  actlog_span = 0;
}
