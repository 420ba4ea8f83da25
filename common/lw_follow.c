/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: follow a livewatch channel.  See lw_follow.h. */

#include <config.h>

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <poll.h>

#include "lb_array.h"
#include "lb_time.h"
#include "lw_follow.h"

/* A sweep's step, and the largest run handed to sink->copy: 4 MiB, and
 * at least one bitmap word of blocks (64 blocks of the 64 KiB that was
 * once the default block are 4 MiB too, so a scan cut by an older lb
 * resumes at the same points).  Small blocks still travel in large
 * messages: contiguous dirty blocks are one run.
 */
#define LWF_STEP_BYTES (4u << 20)

static uint64_t
lwf_step (const struct lw_header *h)
{
  uint64_t n = LWF_STEP_BYTES / h->block_size;
  return n < 64 ? 64 : n;
}
/* Idle with pipelined syncs outstanding: look for new records this
 * often while waiting for their completions.
 */
#define LWF_REAP_MS 5

struct lwf {
  struct lwc *c;
  const struct lwf_sink *sink;
  const struct lwf_options *o;
  uint64_t skip_seq;
  struct lwf_mark m;            /* where the mirror durably stands */
  enum lwf_phase phase;         /* the phase the sink was last told */
  /* Applied but not yet synced and released. */
  bool have_last;
  struct lwc_rec last;
  uint64_t unsynced;
  /* Pipelined syncs sent but not yet durable, oldest first: the last
   * record each covers, released once it completes (lwf_reap).
   */
  struct lwc_rec inflight[LWF_MAX_INFLIGHT];
  unsigned in_head, in_n;
  /* Runs copied but not yet synced (their pending bits stay set). */
  struct { uint64_t block, count; } *runs;
  size_t nruns, runs_cap;
  /* The filter failed a request the mirror's state depends on (it is
   * gone, or its state file failed): lwf_run then says "channel gone".
   */
  bool gone;
  /* While finishing: ranges of the records applied after the final
   * pass's copies (see lwf_finish).
   */
  bool track;
  struct { uint64_t offset, length; } *touched;
  size_t ntouched, touched_cap;
  unsigned pass;                /* catch-up passes in this phase */
  /* The filter's count of writes when the previous pass began
   * (lwf_defer); valid only after the first pass of a catch-up.
   */
  bool pass_begun;
  uint64_t pass_writes;
};

const char *
lwf_phase_name (enum lwf_phase phase)
{
  switch (phase) {
  case LWF_SCANNING: return "scanning";
  case LWF_CATCHING_UP: return "catching-up";
  case LWF_LIVE: return "live";
  }
  return "?";
}

void
lwf_default_options (const struct lwc *c, struct lwf_options *o)
{
  const struct lw_header *h = lwc_header (c);

  o->batch_bytes = h->ring_size / 4;
  o->scan_batch_bytes = 256u << 20;
  /* Scattered small copies with a small ring would otherwise sync after
   * every block or two, and a steady writer would keep the unit degraded.
   */
  o->copy_batch_bytes = o->batch_bytes > (16u << 20) ? o->batch_bytes
                                                     : 16u << 20;
  /* Resume once a pass found at most a quarter ring's worth of blocks:
   * the ring filled to degrade, so we come back with room to spare.
   */
  o->low_water = h->ring_size / 4 / h->block_size;
  if (o->low_water < 8)
    o->low_water = 8;
  o->defer_ms = 0;             /* lb sets its --defer */
  o->quiet_ms = 200;            /* a burst is over after 200 ms with */
  o->burst_writes = 32;         /* fewer than 32 writes */
  o->idle_ms = 100;
  o->request_ms = 5000;
}

/* Take the pipelined syncs the sink says completed, and release the
 * records they made durable (released seq <= durable seq, always).
 * WAIT_MS as lwf_sink.sync_reap's, -1: wait for one as for any answer.
 */
static int
lwf_reap (struct lwf *f, int wait_ms)
{
  const struct lwc_rec *last = NULL;
  int n;

  if (f->in_n == 0)
    return 0;
  n = f->sink->sync_reap (f->sink->opaque, wait_ms);
  if (n == -1)
    return -1;
  assert ((unsigned) n <= f->in_n);
  if (n == 0 && wait_ms < 0) {
    errno = EPROTO;             /* it waited, and completed none */
    return -1;
  }
  for (; n > 0; n--) {
    last = &f->inflight[f->in_head];
    f->in_head = (f->in_head + 1) % LWF_MAX_INFLIGHT;
    f->in_n--;
  }
  if (last)
    lwc_release (f->c, last);
  return 0;
}

/* Wait until every pipelined sync completed. */
static int
lwf_drain (struct lwf *f)
{
  while (f->in_n > 0)
    if (lwf_reap (f, -1) == -1)
      return -1;
  return 0;
}

/* Records only, with a sink that pipelines: send the sync and go on;
 * the records are released when it completes (lwf_reap).
 */
static int
lwf_commit_send (struct lwf *f)
{
  struct lwf_mark m = f->m;

  while (f->in_n == LWF_MAX_INFLIGHT)
    if (lwf_reap (f, -1) == -1)
      return -1;
  m.seq = f->last.seq;
  if (f->sink->sync_send (f->sink->opaque, &m) == -1)
    return -1;
  f->m = m;
  f->inflight[(f->in_head + f->in_n) % LWF_MAX_INFLIGHT] = f->last;
  f->in_n++;
  f->have_last = false;
  f->unsynced = 0;
  return 0;
}

/* Make everything applied durable, then release it.  A sync that carries
 * block copies takes a new copy generation first (lw_shm.h): their bits
 * are spent only after the mirror stored that number, so another mirror
 * can tell it missed them.  Such a sync waits for the pipelined ones
 * before it (a gen is acked only once everything before it is durable).
 */
static int
lwf_commit (struct lwf *f)
{
  struct lwf_mark m = f->m;
  size_t i;

  /* Nothing applied, taken or swept since the last sync. */
  if (!f->have_last && f->nruns == 0 && f->unsynced == 0)
    return 0;
  if (f->sink->sync_send && f->have_last && f->nruns == 0)
    return lwf_commit_send (f);
  if (lwf_drain (f) == -1)
    return -1;
  if (f->nruns > 0 && lwc_gen_next (f->c, &m.gen) == -1) {
    f->gone = true;
    return -1;
  }
  if (f->have_last)
    m.seq = f->last.seq;
  if (f->sink->sync (f->sink->opaque, &m) == -1)
    return -1;
  f->m = m;
  /* The copies' pending bits are spent only once their gen is confirmed
   * (and, with a state file, recorded).
   */
  if (f->nruns > 0 && lwc_gen_ack (f->c, m.gen) == -1) {
    f->gone = true;
    return -1;
  }
  if (f->have_last)
    lwc_release (f->c, &f->last);
  for (i = 0; i < f->nruns; i++)
    lwc_done_run (f->c, f->runs[i].block, f->runs[i].count);
  f->have_last = false;
  f->nruns = 0;
  f->unsynced = 0;
  return 0;
}

/* The sink sent something of its own that must be durable before it
 * goes on (lwf_sink.live): a sync of where the mirror stands, after
 * every pipelined one.  Nothing is owed at that point (the live loop
 * committed before asking), so this names no new record.
 */
static int
lwf_sync_now (struct lwf *f)
{
  if (lwf_commit (f) == -1 || lwf_drain (f) == -1)
    return -1;
  return f->sink->sync (f->sink->opaque, &f->m);
}

static int
lwf_touch (struct lwf *f, const struct lwc_rec *rec)
{
  if (lb_array_grow (&f->touched, &f->touched_cap, f->ntouched + 1,
                     sizeof *f->touched) == -1)
    return -1;
  f->touched[f->ntouched].offset = rec->offset;
  f->touched[f->ntouched].length = rec->length;
  f->ntouched++;
  return 0;
}

/* Apply records until none is waiting, or until seq UPTO (0: no limit).
 * Returns 0, or -1 on a sink error or a corrupt ring (errno EPROTO).
 */
static int
lwf_apply (struct lwf *f, uint64_t upto)
{
  struct lwc_rec rec;
  int r = 0;

  while ((upto == 0 || lwc_read_seq (f->c) < upto)
         && (r = lwc_next (f->c, &rec)) == 1) {
    if (rec.seq > f->skip_seq) {
      if (f->sink->record (f->sink->opaque, &rec) == -1
          || lwf_reap (f, 0) == -1)
        return -1;
      f->unsynced += rec.type == LW_REC_WRITE ? rec.length : 0;
      if (f->track && rec.type != LW_REC_FLUSH && rec.type != LW_REC_MARK
          && lwf_touch (f, &rec) == -1)
        return -1;
    }
    f->last = rec;
    f->have_last = true;
    /* A mark is a sync point too: its records are released once the
     * mirror holds it.
     */
    if (rec.type == LW_REC_FLUSH || rec.type == LW_REC_MARK
        || f->unsynced >= f->o->batch_bytes)
      if (lwf_commit (f) == -1)
        return -1;
  }
  if (r == -1)
    return -1;
  return 0;
}

/* Tell the sink the phase changed (it records it at once). */
static void
lwf_set_phase (struct lwf *f, enum lwf_phase phase, const struct lwf_mark *m)
{
  /* The phase is recorded after everything sent before it is durable.
   * If that fails the sink has failed, and says so at its next call.
   */
  (void) lwf_drain (f);
  f->phase = phase;
  f->pass = 0;
  f->sink->phase (f->sink->opaque, phase, m);
}

/* Tell the sink how far the pass has got, if it wants to know. */
static void
lwf_progress (struct lwf *f, struct lwf_progress *p, uint64_t done, bool end)
{
  if (f->sink->progress == NULL)
    return;
  p->done = done;
  p->end = end;
  f->sink->progress (f->sink->opaque, p);
}

/* Remember a run taken, to clear its pending bits once synced. */
static int
lwf_add_run (struct lwf *f, uint64_t block, uint64_t count)
{
  if (lb_array_grow (&f->runs, &f->runs_cap, f->nruns + 1,
                     sizeof *f->runs) == -1)
    return -1;
  f->runs[f->nruns].block = block;
  f->runs[f->nruns].count = count;
  f->nruns++;
  return 0;
}

/* Tell the sink a pass is over (it may log what it cost). */
static void
lwf_pass_done (struct lwf *f, enum lwf_pass kind, uint64_t blocks)
{
  if (f->sink->pass_done)
    f->sink->pass_done (f->sink->opaque, kind, blocks);
}

/* One pass over the dirty bitmap.  Runs with a compare hint are compared
 * as a scan compares (SCAN true for the sink), the others copied.
 * Returns blocks taken, or -1.
 */
static int64_t
lwf_pass (struct lwf *f)
{
  uint64_t block, count, off, len, total = 0, copied = 0;
  struct lwf_progress p = { .phase = LWF_CATCHING_UP };
  bool compare;

  while (lwc_take_run (f->c, lwf_step (lwc_header (f->c)), &block, &count,
                       &compare)) {
    /* A copy makes the mirror a mix of moments until the next barrier:
     * it must not be recorded as live (a continued mirror starts live
     * and may find bits a predecessor left).
     */
    if (f->phase == LWF_LIVE)
      lwf_set_phase (f, LWF_CATCHING_UP, &f->m);
    if (total == 0 && f->sink->progress) {
      /* What is marked now, this run included (it is pending). */
      uint64_t dirty, pending;
      lwc_count_bits (f->c, &dirty, &pending);
      p.pass = ++f->pass;
      p.total = (dirty + pending) * lwc_header (f->c)->block_size;
    }
    if (lwf_add_run (f, block, count) == -1)
      return -1;
    lwc_run_bytes (f->c, block, count, &off, &len);
    if (f->sink->copy (f->sink->opaque, off, len, compare) == -1)
      return -1;
    total += count;
    copied += len;
    f->unsynced += len;
    lwf_progress (f, &p, copied, false);
    if (f->unsynced >= f->o->copy_batch_bytes && lwf_commit (f) == -1)
      return -1;
    if (f->sink->stop (f->sink->opaque))
      break;
  }
  if (lwf_commit (f) == -1)
    return -1;
  if (total > 0)
    {
      lwf_progress (f, &p, copied, true);
      lwf_pass_done (f, LWF_PASS_CATCH_UP, total);
    }
  return total;
}

/* A scan's first pass: every block from FROM on, compared by the sink
 * (SCAN true).  Blocks whose dirty bit is set are taken as a pass takes
 * them; the others are read without spending anything, so a scan moves
 * the copy generation only for bits that writes set (an image that was
 * current elsewhere stays current).  Each sync records how far the sweep
 * got, so that a cut session resumes there.  Returns blocks covered, or
 * -1.
 */
static int64_t
lwf_sweep (struct lwf *f, uint64_t from)
{
  const struct lw_header *h = lwc_header (f->c);
  const uint64_t step = lwf_step (h);
  struct lwf_progress p = { .phase = LWF_SCANNING, .total = h->dev_size };
  uint64_t block, n, w, taken, off, len;

  assert (from % step == 0);
  for (block = from; block < h->nblocks; block += n) {
    n = h->nblocks - block < step ? h->nblocks - block : step;
    /* lwc_take_range works a bitmap word at a time; a step starts on a
     * word (step is a multiple of 64).
     */
    for (taken = 0, w = 0; w < n; w += 64)
      taken += lwc_take_range (f->c, block + w, n - w < 64 ? n - w : 64);
    if (taken > 0 && lwf_add_run (f, block, n) == -1)
      return -1;
    lwc_run_bytes (f->c, block, n, &off, &len);
    if (f->sink->copy (f->sink->opaque, off, len, true) == -1)
      return -1;
    f->unsynced += len;
    f->m.swept = off + len;
    lwf_progress (f, &p, f->m.swept, false);
    if (f->unsynced >= f->o->scan_batch_bytes && lwf_commit (f) == -1)
      return -1;
    if (f->sink->stop (f->sink->opaque)) {
      lwf_progress (f, &p, f->m.swept, true);
      return 0;
    }
  }
  if (lwf_commit (f) == -1)
    return -1;
  lwf_progress (f, &p, f->m.swept, true);
  lwf_pass_done (f, LWF_PASS_SWEEP, h->nblocks - from);
  return h->nblocks - from;
}

/* Ask the filter for REQ.  Returns its result, or -2 if the filter is
 * gone (continuity lost).
 */
static int
lwf_request (struct lwf *f, enum lw_req req, uint64_t *seq)
{
  int r = lwc_request (f->c, req, f->o->request_ms, seq);
  return r == -1 ? -2 : r;
}

/* The end of every catch-up, and the repair of a consumer that died in
 * its middle: with the filter normal (every new write queued), one pass
 * over what is still dirty, then a barrier.  Once the records up to the
 * barrier are applied the mirror equals the device at that instant.
 * Returns 0, 1 (channel gone) or -1.
 */
static int
lwf_finish (struct lwf *f)
{
  uint64_t barrier;
  size_t i;
  int r;

  if (lwf_pass (f) == -1)
    return -1;
  r = lwf_request (f, LW_REQ_BARRIER, &barrier);
  if (r == -2)
    return 1;
  f->track = true;
  f->ntouched = 0;
  r = lwf_apply (f, barrier);
  f->track = false;
  if (r == -1)
    return -1;
  /* If the filter degraded again during the final pass, a block that pass
   * copied may hold a degraded write newer than a record just applied on
   * top of it, and that write's bit is spent.  Mark every block those
   * records touched: the coming catch-up copies them again from the
   * device.  (If the filter stayed normal, the records up to the barrier
   * bring every such block to its state at the barrier.)
   */
  if (lwc_mode (f->c) == LW_MODE_DEGRADED) {
    for (i = 0; i < f->ntouched; i++)
      lwc_mark_range (f->c, f->touched[i].offset, f->touched[i].length);
    /* Not consistent: the caller's loop starts the next catch-up. */
    return lwf_commit (f) == -1 ? -1 : 0;
  }
  if (lwf_commit (f) == -1)
    return -1;
  {
    struct lwf_mark live = f->m;
    live.seq = barrier;
    lwf_set_phase (f, LWF_LIVE, &live);
  }
  return 0;
}

/* Before a pass: wait while the writes go on (lwf_options.defer_ms). */
static void
lwf_defer (struct lwf *f)
{
  const struct lw_header *h = lwc_header (f->c);
  uint64_t start, prev, cur;

  if (f->o->defer_ms <= 0)
    return;
  start = lb_now_ms ();
  prev = atomic_load (&h->n_writes);
  /* No write during the whole previous pass (a sweep of the device,
   * say): no burst is going on, and the look below would only add its
   * 20 ms to every quiet catch-up.
   */
  if (f->pass_begun && prev == f->pass_writes)
    return;
  /* A first, short look: no write at all in 20 ms is no burst (and a
   * catch-up after writes long over should not wait a whole window).
   */
  poll (NULL, 0, 20);
  if (atomic_load (&h->n_writes) == prev)
    return;
  if (f->sink->deferring)
    f->sink->deferring (f->sink->opaque, true);
  for (;;) {
    poll (NULL, 0, f->o->quiet_ms);
    cur = atomic_load (&h->n_writes);
    if (cur - prev < f->o->burst_writes
        || lb_now_ms () - start >= (uint64_t) f->o->defer_ms
        || f->sink->stop (f->sink->opaque) || !lwc_alive (f->c))
      break;
    prev = cur;
  }
  if (f->sink->deferring)
    f->sink->deferring (f->sink->opaque, false);
}

/* Degraded: drain, copy in passes until the burst is over, resume,
 * finish.  SCAN: start with a sweep from block SWEEP_FROM.  Returns 0,
 * 1 (channel gone) or -1.
 */
static int
lwf_catch_up (struct lwf *f, bool scan, uint64_t sweep_from)
{
  uint64_t drained;
  int r;

  /* The phase is told first, so that restores keep the image's last
   * consistent state from before the drain (lbd's snapshot); a mark in
   * the drained records is then refused by lbd, never taken late.
   */
  lwf_set_phase (f, scan ? LWF_SCANNING : LWF_CATCHING_UP, &f->m);
  /* Degraded mode appends nothing more, so after a barrier the ring is
   * complete: apply it all before any block copy overtakes it.
   */
  r = lwf_request (f, LW_REQ_BARRIER, &drained);
  if (r == -2)
    return 1;
  if (lwf_apply (f, drained) == -1 || lwf_commit (f) == -1)
    return -1;

  f->pass_begun = false;
  for (;;) {
    int64_t n;

    lwf_defer (f);
    f->pass_begun = true;
    f->pass_writes = atomic_load (&lwc_header (f->c)->n_writes);
    n = scan ? lwf_sweep (f, sweep_from) : lwf_pass (f);
    if (n == -1)
      return -1;
    if (f->sink->stop (f->sink->opaque))
      return 0;
    if (scan) {
      /* Swept: from here on the image lacks only blocks whose bits are
       * set, so a successor may continue it (a "scanning" image it may
       * not: the sweep's progress is not recorded).
       */
      scan = false;
      f->m.swept = lwc_header (f->c)->dev_size;
      lwf_set_phase (f, LWF_CATCHING_UP, &f->m);
      continue;
    }
    if ((uint64_t) n <= f->o->low_water) {
      r = lwf_request (f, LW_REQ_RESUME, NULL);
      if (r == -2)
        return 1;
      if (r == LW_RES_OK)
        break;
    }
    if (!lwc_alive (f->c))
      return 1;
  }
  return lwf_finish (f);
}

/* Live: place the marks asked for (lwf_sink.mark_take). */
static void
lwf_marks (struct lwf *f)
{
  char label[LW_MARK_LABEL_MAX];
  uint64_t seq = 0;

  if (f->sink->mark_take == NULL || f->phase != LWF_LIVE)
    return;
  while (f->sink->mark_take (f->sink->opaque, label)) {
    int r = lwc_mark (f->c, label, f->o->request_ms, &seq);
    f->sink->mark_placed (f->sink->opaque, r, seq);
  }
}

enum lwf_start
lwf_decide (struct lwc *c, uint64_t epoch, const struct lwf_mark *m,
            bool scanning, const char **why)
{
  const struct lw_header *h = lwc_header (c);
  const uint64_t unit = (uint64_t) h->block_size * lwf_step (h);

  *why = NULL;
  if (epoch != h->epoch)
    *why = h->start_kind == LW_START_VOLATILE
           ? "the image is from another capture epoch (first contact, or "
             "nbdkit restarted)"
           : "the image is from another capture epoch (first contact, or "
             "the filter's state file was new or reset)";
  else if (!lwc_seq_continues (c, m->seq))
    *why = m->seq > atomic_load (&h->head_seq)
           ? "the image holds records this capture never made"
           : "records were released that the image does not have";
  else if (!lwc_gen_continues (c, m->gen))
    *why = "blocks were copied to another image since this one "
           "was last synced (another server, or an older copy)";
  else if (!scanning)
    return LWF_CONTINUE;
  /* A sweep records its progress with every sync, in whole sweep steps;
   * anything else was not written by one.
   */
  else if (m->swept == 0 || m->swept > h->dev_size
           || (m->swept % unit != 0 && m->swept != h->dev_size))
    *why = "a scan of the image was cut before it recorded any progress";
  else
    return LWF_RESUME_SCAN;
  return LWF_FULL_SCAN;
}

enum lwf_end
lwf_run (struct lwc *c, const struct lwf_sink *sink,
         const struct lwf_options *opts, enum lwf_start start,
         const struct lwf_mark *m)
{
  uint64_t acked;
  /* A continued mirror may be live: assume so until told otherwise. */
  struct lwf f = { .c = c, .sink = sink, .o = opts, .phase = LWF_LIVE };
  int r = 0;                    /* 0: go on; 1: channel gone; -1: failed */

  if (start == LWF_FULL_SCAN) {
    /* A scanned mirror gets every block whose bit was spent before the
     * scan from the sweep, and the others by the gens the scan takes: it
     * starts from the newest confirmed one, and the records its sweep
     * covers are those released so far.  Until the sweep is through it
     * says "scanning", which is continued only from where it got.
     */
    lwc_gen_get (c, NULL, &acked);
    f.m = (struct lwf_mark) { .seq = lwc_released_seq (c), .gen = acked };
  }
  else {
    f.m = *m;
    f.skip_seq = m->seq;
    if (start == LWF_CONTINUE)
      f.m.swept = lwc_header (c)->dev_size;
  }
  if (start != LWF_CONTINUE) {
    const struct lw_header *h = lwc_header (c);
    /* A sweep that got to the end resumes as a plain catch-up. */
    uint64_t from = start == LWF_FULL_SCAN ? 0
                    : f.m.swept >= h->dev_size ? h->nblocks
                    : f.m.swept / h->block_size;
    /* Degraded, so that writes during the sweep only set bits. */
    if (lwc_mode (c) == LW_MODE_NORMAL
        && lwf_request (&f, LW_REQ_DEGRADE, NULL) == -2) {
      r = 1;
      goto out;
    }
    r = lwf_catch_up (&f, from < h->nblocks, from);
  }
  else if (lwc_mode (c) == LW_MODE_NORMAL) {
    /* Normal already: finish as a catch-up would.  A predecessor may have
     * died in its finish (bits left, or records up to its barrier not yet
     * downstream); with nothing left this is one empty pass and a
     * barrier, and the mirror is known consistent at that barrier.  No
     * phase change before it: an image that was live stays in order
     * (records only), and one left mid catch-up already says so.
     */
    r = lwf_finish (&f);
  }

  while (r == 0 && !sink->stop (sink->opaque)) {
    if (!lwc_alive (c)) {
      r = 1;
      break;
    }
    if (lwc_mode (c) == LW_MODE_DEGRADED) {
      r = lwf_catch_up (&f, false, 0);
      continue;
    }
    lwf_marks (&f);
    if (lwf_apply (&f, 0) == -1 || lwf_commit (&f) == -1) {
      r = -1;
      break;
    }
    if (sink->live && f.phase == LWF_LIVE) {
      enum lwf_live l = sink->live (sink->opaque);
      if (l == LWF_LIVE_FAILED
          || (l == LWF_LIVE_SYNC && lwf_sync_now (&f) == -1)) {
        r = -1;
        break;
      }
      if (l != LWF_LIVE_IDLE)
        continue;
    }
    if (f.in_n == 0)
      lwc_wait (c, opts->idle_ms);
    else if (lwf_reap (&f, LWF_REAP_MS) == -1) {
      r = -1;
      break;
    }
  }
  if (r == 0 && (lwf_commit (&f) == -1 || lwf_drain (&f) == -1))
    r = -1;
  /* A request the filter did not carry out: it went away (or cannot keep
   * its state file), not the sink.
   */
  if (r == -1 && f.gone)
    r = 1;
 out:
  free (f.runs);
  free (f.touched);
  return r == 0 ? LWF_END_STOPPED
         : r == 1 ? LWF_END_CHANNEL_GONE : LWF_END_SINK_FAILED;
}
