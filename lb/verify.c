/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: the online verify.  See verify.h. */

#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#include "lb_array.h"
#include "lb_hash.h"
#include "lb_log.h"
#include "lb_time.h"
#include "sink.h"
#include "verify.h"

#define LBV_FINE (LB_VERIFY_CONFIRM_MAX / LB_VERIFY_BLOCK)  /* blocks */


enum lbv_state {
  LBV_NONE,                     /* no pass yet */
  LBV_RUNNING,
  LBV_DONE,
  LBV_FAILED,
};

/* A range of the device to confirm, and how often it was tried. */
struct lbv_range {
  uint64_t off, len;
  unsigned tries;
};

/* A first look in flight: a chunk's hashes asked of lbd. */
struct lbv_look {
  uint64_t id, off;
  uint32_t len, hb, count;
  bool answered;
  uint8_t *hashes;              /* lbd's, once answered */
};

/* The confirmation in flight (verify.h, step 2). */
enum lbv_step {
  LBV_IDLE,                     /* none */
  LBV_SEND,                     /* read; its HASH_REQ waits for the
                                   records up to the barrier */
  LBV_WAIT,                     /* asked: waiting for HASHES */
  LBV_ANSWERED,                 /* to be decided */
};

struct lbv_confirm {
  enum lbv_step step;
  struct lbv_range r;
  uint64_t seq;                 /* S: the head seq before the read */
  uint64_t barrier;             /* B */
  uint64_t id;
  uint8_t *data;                /* the device as read */
  uint8_t dev[LBV_FINE][LBP_HASH_SIZE], img[LBV_FINE][LBP_HASH_SIZE];
  uint64_t busy[LBV_FINE / 64]; /* a record touched the block since S */
};

/* A mismatching range, as reported. */
struct lbv_mismatch {
  uint64_t off, len;
  bool repaired;                /* a sync covering its BLOCK returned */
};

/* Ranges to confirm, oldest first. */
struct lbv_queue {
  struct lbv_range *r;
  size_t head, n, cap;
};

static struct {
  pthread_mutex_t lock;
  /* Under LOCK: what the control thread asks and reads. */
  uint64_t requested;           /* the newest pass asked for */
  uint64_t id;                  /* the pass below; 0: none yet */
  enum lbv_state state;
  char why[320];                /* FAILED: why */
  uint64_t dev_size, looked;    /* device bytes given a first look */
  uint64_t suspect, matched, mismatched, repaired, busy;  /* blocks */
  uint64_t started, ended;
  uint64_t every, verified;     /* lbd's schedule (lb_verify_schedule) */
  bool tell;                    /* a pass is done: VERIFIED owed to lbd */
  struct lbv_mismatch *ranges;
  size_t nranges, ranges_cap;
  uint64_t ranges_omitted;

  /* The data path's own. */
  struct lb_sink *s;
  struct lwc *c;
  uint8_t *buf;                 /* a first look's device read */
  uint64_t next_off;            /* the next first look */
  struct lbv_look look[LB_VERIFY_WINDOW];
  unsigned lhead, ln;
  struct lbv_queue sus, retry;
  struct lbv_confirm cf;
  uint64_t unsynced;            /* repaired blocks no sync covers yet */
  size_t unsynced_from;         /* ranges from here not yet durable */
  bool sync_asked;              /* a sync was asked for them */
} lbv = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The hash both ends compute for a verify: what lbd's HASHES hold
 * (lb_proto.h).  One place, so that a change of the session's hash
 * changes the verify with it.
 */
static void
lb_verify_hash (const void *data, size_t len, uint8_t out[LBP_HASH_SIZE])
{
  lb_hash_buf (&lbv.s->hkey, data, len, out);
}

/* Blocks of LB_VERIFY_BLOCK that [OFF, OFF+LEN) touches. */
static uint64_t
lbv_blocks (uint64_t off, uint64_t len)
{
  return len == 0 ? 0 : (off + len - 1) / LB_VERIFY_BLOCK
                        - off / LB_VERIFY_BLOCK + 1;
}

/* Queue [OFF, OFF+LEN) tried TRIES times, merged with the range before
 * it where they meet.
 */
static int
lbv_queue_add (struct lbv_queue *q, uint64_t off, uint64_t len,
               unsigned tries)
{
  struct lbv_range *last = q->n > q->head ? &q->r[q->n - 1] : NULL;

  if (last && last->off + last->len == off && last->tries == tries
      && last->len + len <= LB_VERIFY_CONFIRM_MAX) {
    last->len += len;
    return 0;
  }
  if (lb_array_grow (&q->r, &q->cap, q->n + 1, sizeof *q->r) == -1)
    return -1;
  q->r[q->n++] = (struct lbv_range) { .off = off, .len = len,
                                      .tries = tries };
  return 0;
}

static bool
lbv_queue_empty (const struct lbv_queue *q)
{
  return q->head == q->n;
}

static struct lbv_range
lbv_queue_pop (struct lbv_queue *q)
{
  struct lbv_range r = q->r[q->head++];

  if (q->head == q->n)
    q->head = q->n = 0;
  return r;
}

/* End the pass (under LOCK): DONE, or FAILED with WHY. */
static void
lbv_end (const char *why)
{
  lbv.state = why ? LBV_FAILED : LBV_DONE;
  snprintf (lbv.why, sizeof lbv.why, "%s", why ? why : "");
  lbv.ended = (uint64_t) time (NULL);
  lbv.tell = why == NULL;
  if (why)
    lb_warn ("verify pass %" PRIu64 " failed: %s", lbv.id, why);
  else
    lb_info ("verify pass %" PRIu64 " done: %" PRIu64 " blocks of %u bytes "
             "compared, %" PRIu64 " differed (%" PRIu64 " repaired), %"
             PRIu64 " skipped as busy", lbv.id, lbv.matched + lbv.mismatched,
             LB_VERIFY_BLOCK, lbv.mismatched, lbv.repaired, lbv.busy);
}

/* Forget the work in flight (its replies, if they come, are ignored). */
static void
lbv_reset_flight (void)
{
  lbv.ln = 0;
  lbv.cf.step = LBV_IDLE;
  lbv.sus.head = lbv.sus.n = 0;
  lbv.retry.head = lbv.retry.n = 0;
  lbv.unsynced = 0;
  lbv.sync_asked = false;
}

void
lb_verify_attach (struct lb_sink *s, struct lwc *c)
{
  unsigned i;

  if (lbv.buf == NULL) {
    lbv.buf = malloc (LB_CHUNK);
    lbv.cf.data = malloc (LB_VERIFY_CONFIRM_MAX);
    for (i = 0; i < LB_VERIFY_WINDOW; i++)
      lbv.look[i].hashes = malloc ((LB_CHUNK / 4096) * LBP_HASH_SIZE);
  }
  lbv_reset_flight ();
  lbv.s = s;
  lbv.c = c;
}

/* Pass REQUESTED's counters, from nothing (under LOCK). */
static void
lbv_counts_reset (void)
{
  lbv.id = lbv.requested;
  lbv.why[0] = '\0';
  lbv.looked = lbv.suspect = lbv.matched = lbv.mismatched = 0;
  lbv.repaired = lbv.busy = 0;
  lbv.nranges = lbv.ranges_omitted = 0;
  lbv.unsynced_from = 0;
  lbv.started = (uint64_t) time (NULL);
  lbv.ended = 0;
}

/* Begin pass REQUESTED (under LOCK). */
static void
lbv_begin (void)
{
  lbv_counts_reset ();
  lbv.state = LBV_RUNNING;
  lbv.dev_size = lwc_header (lbv.c)->dev_size;
  lbv.next_off = 0;
  lbv_reset_flight ();
  lb_info ("verify pass %" PRIu64 ": comparing %" PRIu64 " bytes with the "
           "image", lbv.id, lbv.dev_size);
  if (lbv.buf == NULL || lbv.cf.data == NULL
      || lbv.look[LB_VERIFY_WINDOW - 1].hashes == NULL)
    lbv_end ("out of memory");
}

void
lb_verify_detach (const char *why)
{
  char text[sizeof lbv.why];

  pthread_mutex_lock (&lbv.lock);
  if (lbv.state == LBV_RUNNING || lbv.requested > lbv.id) {
    snprintf (text, sizeof text, "the session with lbd ended (%s) before "
              "the verify was through", why);
    if (lbv.state != LBV_RUNNING)
      lbv_counts_reset ();
    lbv_end (text);
  }
  pthread_mutex_unlock (&lbv.lock);
  lbv_reset_flight ();
  lbv.s = NULL;
  lbv.c = NULL;
}

void
lb_verify_record (const struct lwc_rec *rec)
{
  struct lbv_confirm *cf = &lbv.cf;
  uint64_t lo, hi, b;

  if (cf->step == LBV_IDLE || rec->type == LW_REC_FLUSH
      || rec->type == LW_REC_MARK)
    return;
  /* A record at or before S is in the device as read; a TRIM's copy is
   * whatever the device reads when it is sent, so it counts whenever.
   */
  if (rec->seq <= cf->seq && rec->type != LW_REC_TRIM)
    return;
  lo = rec->offset > cf->r.off ? rec->offset : cf->r.off;
  hi = rec->offset + rec->length < cf->r.off + cf->r.len
       ? rec->offset + rec->length : cf->r.off + cf->r.len;
  for (b = lo; b < hi; b = (b / LB_VERIFY_BLOCK + 1) * LB_VERIFY_BLOCK) {
    uint64_t i = (b - cf->r.off) / LB_VERIFY_BLOCK;
    cf->busy[i / 64] |= UINT64_C(1) << (i % 64);
  }
}

void
lb_verify_left_live (void)
{
  struct lbv_confirm *cf = &lbv.cf;

  if (lbv.ln > 0)
    lbv.next_off = lbv.look[lbv.lhead].off;
  lbv.ln = 0;
  if (cf->step != LBV_IDLE)
    lbv_queue_add (&lbv.sus, cf->r.off, cf->r.len, cf->r.tries);
  cf->step = LBV_IDLE;
  /* The phase change's sync (waited for) covers the repairs sent. */
  if (lbv.unsynced > 0)
    lbv.sync_asked = true;
}

int
lb_verify_answer (const struct lbp_msg *m)
{
  struct lbv_confirm *cf = &lbv.cf;
  unsigned i;

  if (cf->step == LBV_WAIT && m->id == cf->id) {
    if (m->offset != cf->r.off || m->hash_block != LB_VERIFY_BLOCK
        || m->count != lbv_blocks (0, cf->r.len))
      return -1;
    memcpy (cf->img, m->payload, (size_t) m->count * LBP_HASH_SIZE);
    cf->step = LBV_ANSWERED;
    return 0;
  }
  for (i = 0; i < lbv.ln; i++) {
    struct lbv_look *l = &lbv.look[(lbv.lhead + i) % LB_VERIFY_WINDOW];
    if (l->id != m->id)
      continue;
    if (m->offset != l->off || m->hash_block != l->hb || m->count != l->count)
      return -1;
    memcpy (l->hashes, m->payload, (size_t) m->count * LBP_HASH_SIZE);
    l->answered = true;
    return 0;
  }
  return 0;                     /* work forgotten (lbv_reset_flight) */
}

/* Ask for the next first look. */
static int
lbv_look_send (void)
{
  struct lbv_look *l = &lbv.look[(lbv.lhead + lbv.ln) % LB_VERIFY_WINDOW];
  uint64_t left = lbv.dev_size - lbv.next_off;

  l->off = lbv.next_off;
  l->len = left < LB_CHUNK ? left : LB_CHUNK;
  l->hb = lbv.s->hash_block;
  l->count = (l->len + l->hb - 1) / l->hb;
  l->answered = false;
  l->id = lb_sink_verify_req (lbv.s, l->off, l->len, l->hb);
  if (l->id == 0)
    return -1;
  lbv.next_off += l->len;
  lbv.ln++;
  return 0;
}

/* The oldest first look is answered: read the device, compare, and
 * queue what differs for confirmation.
 */
static int
lbv_look_done (void)
{
  struct lbv_look *l = &lbv.look[lbv.lhead];
  uint64_t matched = 0, suspect = 0;
  uint32_t b;

  if (lb_sink_read_device (lbv.s, lbv.buf, l->off, l->len) == -1)
    return -1;
  for (b = 0; b < l->count; b++) {
    uint8_t h[LBP_HASH_SIZE];
    uint64_t boff = (uint64_t) b * l->hb;
    uint64_t blen = l->len - boff < l->hb ? l->len - boff : l->hb;

    lb_verify_hash (lbv.buf + boff, blen, h);
    if (memcmp (h, l->hashes + (size_t) b * LBP_HASH_SIZE,
                LBP_HASH_SIZE) == 0) {
      matched += lbv_blocks (l->off + boff, blen);
      continue;
    }
    suspect += lbv_blocks (l->off + boff, blen);
    /* In pieces a confirmation takes whole (hash blocks up to 16 MiB). */
    for (uint64_t at = 0; at < blen; at += LB_VERIFY_CONFIRM_MAX)
      if (lbv_queue_add (&lbv.sus, l->off + boff + at,
                         blen - at < LB_VERIFY_CONFIRM_MAX
                         ? blen - at : LB_VERIFY_CONFIRM_MAX, 0) == -1)
        return -1;
  }
  pthread_mutex_lock (&lbv.lock);
  lbv.looked += l->len;
  lbv.matched += matched;
  lbv.suspect += suspect;
  pthread_mutex_unlock (&lbv.lock);
  lbv.lhead = (lbv.lhead + 1) % LB_VERIFY_WINDOW;
  lbv.ln--;
  return 0;
}

/* Start confirming the next suspect: S, the device read, the barrier.
 * 0; 1 if the filter did not answer (the pass fails); -1 if the
 * session failed.
 */
static int
lbv_confirm_start (void)
{
  struct lbv_confirm *cf = &lbv.cf;
  uint64_t i, n;

  cf->r = lbv_queue_pop (&lbv.sus);
  n = lbv_blocks (0, cf->r.len);
  memset (cf->busy, 0, sizeof cf->busy);
  /* Every record up to S was appended after its write reached the
   * device, so the read below sees it (or something newer, which a
   * record after S brings: busy).
   */
  cf->seq = atomic_load (&lwc_header (lbv.c)->head_seq);
  cf->step = LBV_SEND;
  if (lb_sink_read_device (lbv.s, cf->data, cf->r.off, cf->r.len) == -1)
    return -1;
  for (i = 0; i < n; i++) {
    uint64_t len = cf->r.len - i * LB_VERIFY_BLOCK;
    lb_verify_hash (cf->data + i * LB_VERIFY_BLOCK,
                    len < LB_VERIFY_BLOCK ? len : LB_VERIFY_BLOCK, cf->dev[i]);
  }
  /* No write is in flight at the barrier: every write that could have
   * changed the device while it was read is a record up to B.
   */
  if (lwc_request (lbv.c, LW_REQ_BARRIER, 5000, &cf->barrier) == -1) {
    cf->step = LBV_IDLE;
    return 1;
  }
  return 0;
}

/* Record the mismatch [OFF, OFF+LEN) and send the device's content
 * there as BLOCKs.
 */
static int
lbv_repair (uint64_t off, uint64_t len)
{
  struct lbv_confirm *cf = &lbv.cf;
  struct lbv_mismatch *last;

  lb_warn ("verify pass %" PRIu64 ": the image differs from the device at "
           "offset %" PRIu64 ", %" PRIu64 " bytes; repairing", lbv.id, off,
           len);
  if (lb_sink_send_block (lbv.s, off, cf->data + (off - cf->r.off), len)
      == -1)
    return -1;
  pthread_mutex_lock (&lbv.lock);
  last = lbv.nranges > lbv.unsynced_from ? &lbv.ranges[lbv.nranges - 1]
                                         : NULL;
  lbv.mismatched += lbv_blocks (off, len);
  if (last && last->off + last->len == off)
    last->len += len;
  else if (lbv.nranges < LB_VERIFY_RANGES_MAX
           && lb_array_grow (&lbv.ranges, &lbv.ranges_cap, lbv.nranges + 1,
                             sizeof *lbv.ranges) == 0)
    lbv.ranges[lbv.nranges++] = (struct lbv_mismatch) { off, len, false };
  else
    lbv.ranges_omitted++;
  pthread_mutex_unlock (&lbv.lock);
  lbv.unsynced += lbv_blocks (off, len);
  return 0;
}

/* Decide the answered confirmation, block by block.  Returns 1 if it
 * sent repairs, 0 if not, -1 if the session failed.
 */
static int
lbv_confirm_done (void)
{
  struct lbv_confirm *cf = &lbv.cf;
  uint64_t n = lbv_blocks (0, cf->r.len), i, run = 0, run_len = 0;
  uint64_t matched = 0, busy = 0;
  bool sent = false;

  cf->step = LBV_IDLE;
  for (i = 0; i <= n; i++) {
    uint64_t off = cf->r.off + i * LB_VERIFY_BLOCK;
    uint64_t len = i < n && cf->r.len - i * LB_VERIFY_BLOCK < LB_VERIFY_BLOCK
                   ? cf->r.len - i * LB_VERIFY_BLOCK : LB_VERIFY_BLOCK;
    bool differs = false;

    if (i < n) {
      bool is_busy = cf->busy[i / 64] & (UINT64_C(1) << (i % 64));
      if (memcmp (cf->dev[i], cf->img[i], LBP_HASH_SIZE) == 0)
        matched++;
      else if (is_busy) {
        /* Written since S: the two sides may hold different moments. */
        if (cf->r.tries + 1 >= LB_VERIFY_TRIES)
          busy++;
        else if (lbv_queue_add (&lbv.retry, off, len, cf->r.tries + 1) == -1)
          return -1;
      }
      else
        differs = true;
    }
    if (differs) {
      if (run_len == 0)
        run = off;
      run_len += len;
      continue;
    }
    if (run_len > 0) {
      if (lbv_repair (run, run_len) == -1)
        return -1;
      sent = true;
      run_len = 0;
    }
  }
  pthread_mutex_lock (&lbv.lock);
  lbv.matched += matched;
  lbv.busy += busy;
  pthread_mutex_unlock (&lbv.lock);
  return sent;
}

/* The sync asked for (LWF_LIVE_SYNC, or a phase change's) returned:
 * the repairs sent before it are durable.
 */
static void
lbv_synced (void)
{
  size_t i;

  pthread_mutex_lock (&lbv.lock);
  lbv.repaired += lbv.unsynced;
  for (i = lbv.unsynced_from; i < lbv.nranges; i++)
    lbv.ranges[i].repaired = true;
  lbv.unsynced_from = lbv.nranges;
  pthread_mutex_unlock (&lbv.lock);
  lbv.unsynced = 0;
  lbv.sync_asked = false;
}

/* Fail the pass with WHY. */
static enum lwf_live
lbv_fail (const char *why)
{
  pthread_mutex_lock (&lbv.lock);
  lbv_end (why);
  pthread_mutex_unlock (&lbv.lock);
  lbv_reset_flight ();
  return LWF_LIVE_IDLE;
}

void
lb_verify_schedule (uint64_t every, uint64_t verified)
{
  char b[LB_TIME_LEN];

  pthread_mutex_lock (&lbv.lock);
  lbv.every = every;
  lbv.verified = verified;
  pthread_mutex_unlock (&lbv.lock);
  if (every)
    lb_info ("lbd asks for a verify pass every %s%s", lb_duration (every, b),
             verified ? "" : " (none done yet)");
}

/* The VERIFIED owed for the pass just done, into *M (under LOCK). */
static void
lbv_told (struct lbp_msg *m)
{
  *m = (struct lbp_msg) {
    .type = LBP_VERIFIED, .pass = lbv.id,
    .compared = lbv.matched + lbv.mismatched, .mismatched = lbv.mismatched,
    .repaired = lbv.repaired,
  };
  lbv.tell = false;
  lbv.verified = lbv.ended;
}

enum lwf_live
lb_verify_live (void *opaque)
{
  struct lb_sink *s = opaque;
  struct lbv_confirm *cf = &lbv.cf;
  bool ran, worked = false, tell;
  uint64_t now = (uint64_t) time (NULL);
  struct lbp_msg told;
  int r;

  if (s->failed)
    return LWF_LIVE_FAILED;
  if (s != lbv.s)
    return LWF_LIVE_IDLE;
  pthread_mutex_lock (&lbv.lock);
  tell = lbv.tell;
  if (tell)
    lbv_told (&told);
  pthread_mutex_unlock (&lbv.lock);
  if (tell && lb_sink_tell (s, &told) == -1)
    return LWF_LIVE_FAILED;
  pthread_mutex_lock (&lbv.lock);
  /* lbd's schedule: due once EVERY has passed since the last pass done
   * (lbd keeps that time: a restarted lb does not start over).
   */
  if (lbv.every && lbv.state != LBV_RUNNING
      && lbv.requested <= lbv.id
      && (lbv.verified == 0 || now >= lbv.verified + lbv.every)) {
    lbv.requested = lbv.id + 1;
    lb_info ("verify pass %" PRIu64 ": due (lbd's verify= schedule)",
             lbv.requested);
  }
  if (lbv.requested > lbv.id && lbv.state != LBV_RUNNING)
    lbv_begin ();
  ran = lbv.state == LBV_RUNNING;
  pthread_mutex_unlock (&lbv.lock);
  if (!ran)
    return LWF_LIVE_IDLE;
  if (lbv.sync_asked)
    lbv_synced ();
  if (lb_sink_poll (s, 0) == -1)
    return LWF_LIVE_FAILED;

  /* One device read at most per call: records wait meanwhile. */
  if (lbv.ln > 0 && lbv.look[lbv.lhead].answered) {
    if (lbv_look_done () == -1)
      return LWF_LIVE_FAILED;
    worked = true;
  }
  else if (cf->step == LBV_IDLE && !lbv_queue_empty (&lbv.sus)) {
    r = lbv_confirm_start ();
    if (r == -1)
      return LWF_LIVE_FAILED;
    if (r == 1)
      return lbv_fail ("the filter did not answer a barrier (nbdkit gone?)");
    worked = true;
  }
  else if (cf->step == LBV_ANSWERED) {
    r = lbv_confirm_done ();
    if (r == -1)
      return LWF_LIVE_FAILED;
    if (r == 1) {
      lbv.sync_asked = true;
      return LWF_LIVE_SYNC;
    }
    worked = true;
  }
  /* Every record up to B has been handed to the sink: lbd hashes an
   * image at B or later.
   */
  if (cf->step == LBV_SEND && lwc_read_seq (lbv.c) >= cf->barrier) {
    cf->id = lb_sink_verify_req (s, cf->r.off, cf->r.len, LB_VERIFY_BLOCK);
    if (cf->id == 0)
      return LWF_LIVE_FAILED;
    cf->step = LBV_WAIT;
  }
  /* Confirmations first: they hold a buffer each. */
  while (lbv.ln < LB_VERIFY_WINDOW && lbv.next_off < lbv.dev_size
         && lbv_queue_empty (&lbv.sus))
    if (lbv_look_send () == -1)
      return LWF_LIVE_FAILED;
  if (lbv.ln == 0 && cf->step == LBV_IDLE && lbv_queue_empty (&lbv.sus)
      && lbv.next_off >= lbv.dev_size) {
    if (!lbv_queue_empty (&lbv.retry)) {
      /* Busy blocks, tried again once everything else was. */
      struct lbv_queue q = lbv.sus;
      lbv.sus = lbv.retry;
      lbv.retry = q;
      return LWF_LIVE_BUSY;
    }
    if (lbv.unsynced > 0) {
      lbv.sync_asked = true;
      return LWF_LIVE_SYNC;
    }
    pthread_mutex_lock (&lbv.lock);
    lbv_end (NULL);
    pthread_mutex_unlock (&lbv.lock);
    return LWF_LIVE_IDLE;
  }
  /* Waiting for lbd: briefly, then records again. */
  if (!worked && cf->step != LBV_SEND && lb_sink_poll (s, 5) == -1)
    return LWF_LIVE_FAILED;
  return LWF_LIVE_BUSY;
}

/* The pass's fields (under LOCK), into DOC. */
static void
lbv_fields (struct lb_status *d)
{
  static const char *const names[] = {
    [LBV_NONE] = "none", [LBV_RUNNING] = "running", [LBV_DONE] = "done",
    [LBV_FAILED] = "failed",
  };
  struct lb_status *a;
  size_t i;

  lb_status_uint (d, "pass", lbv.id);
  lb_status_str (d, "state", names[lbv.state]);
  if (lbv.why[0])
    lb_status_str (d, "why", lbv.why);
  lb_status_bytes (d, "device_bytes", lbv.dev_size);
  lb_status_bytes (d, "looked_bytes", lbv.looked);
  lb_status_percent (d, "percent", lbv.looked, lbv.dev_size);
  lb_status_uint (d, "block_size", LB_VERIFY_BLOCK);
  lb_status_uint (d, "compared_blocks", lbv.matched + lbv.mismatched);
  lb_status_uint (d, "matched_blocks", lbv.matched);
  lb_status_uint (d, "mismatched_blocks", lbv.mismatched);
  lb_status_uint (d, "repaired_blocks", lbv.repaired);
  lb_status_uint (d, "busy_blocks", lbv.busy);
  lb_status_uint (d, "suspect_blocks", lbv.suspect);
  lb_status_time (d, "started", lbv.started);
  lb_status_time (d, "ended", lbv.ended);
  a = lb_status_array (d, "ranges");
  for (i = 0; i < lbv.nranges; i++) {
    struct lb_status *o = lb_status_object (a, NULL);
    lb_status_uint (o, "offset", lbv.ranges[i].off);
    lb_status_uint (o, "length", lbv.ranges[i].len);
    lb_status_bool (o, "repaired", lbv.ranges[i].repaired);
    lb_status_layout (o, "  differed: offset {offset}, {length} bytes"
                         "{repaired?, repaired| (not repaired)}\n");
  }
  lb_status_uint (d, "ranges_omitted", lbv.ranges_omitted);
  lb_status_layout (d,
    "verify pass {pass}: {state}{why?: {why}}\n"
    "  compared {compared_blocks} blocks of {block_size} bytes ({percent} "
    "of the device looked at): {mismatched_blocks} differed, "
    "{repaired_blocks} repaired, {busy_blocks} skipped as busy (written "
    "during every try)\n"
    "{ranges_omitted?  ({ranges_omitted} more ranges not listed)\n}");
}

enum lb_verify_verdict
lb_verify_request (struct lb_status *doc, bool live, const char *not_live)
{
  enum lb_verify_verdict v = LB_VERIFY_RUNNING;

  pthread_mutex_lock (&lbv.lock);
  if (lbv.state == LBV_RUNNING || lbv.requested > lbv.id)
    ;                           /* join the pass under way */
  else if (!live) {
    lb_status_str (doc, "state", "refused");
    lb_status_strf (doc, "why", "the unit is not live (%s): a verify "
                    "compares in live mode only; try again once lb --status "
                    "says live", not_live);
    lb_status_layout (doc, "verify refused: {why}\n");
    v = LB_VERIFY_FAILED;
  }
  else
    lbv.requested = lbv.id + 1;
  if (v == LB_VERIFY_RUNNING) {
    lb_status_uint (doc, "pass", lbv.requested > lbv.id ? lbv.requested
                                                        : lbv.id);
    lb_status_str (doc, "state", lbv.state == LBV_RUNNING ? "running"
                                                          : "waiting");
    lb_status_layout (doc, "pass {pass}\n");
  }
  pthread_mutex_unlock (&lbv.lock);
  return v;
}

enum lb_verify_verdict
lb_verify_report (struct lb_status *doc, uint64_t pass)
{
  enum lb_verify_verdict v;

  pthread_mutex_lock (&lbv.lock);
  if (pass != 0 && pass == lbv.requested && pass > lbv.id) {
    lb_status_uint (doc, "pass", pass);
    lb_status_str (doc, "state", "waiting");
    lb_status_layout (doc, "verify pass {pass}: {state}\n");
    v = LB_VERIFY_RUNNING;
  }
  else if (pass == 0 || pass != lbv.id) {
    lb_status_uint (doc, "pass", pass);
    lb_status_str (doc, "state", "unknown");
    lb_status_str (doc, "why", "this lb knows no such verify pass (was it "
                   "restarted?)");
    lb_status_layout (doc, "verify pass {pass}: {why}\n");
    v = LB_VERIFY_FAILED;
  }
  else {
    lbv_fields (doc);
    v = lbv.state == LBV_RUNNING ? LB_VERIFY_RUNNING
        : lbv.state == LBV_FAILED ? LB_VERIFY_FAILED
        : lbv.mismatched > 0 ? LB_VERIFY_REPAIRED : LB_VERIFY_MATCHED;
  }
  pthread_mutex_unlock (&lbv.lock);
  return v;
}

void
lb_verify_status (struct lb_status *g)
{
  pthread_mutex_lock (&lbv.lock);
  if (lbv.state == LBV_RUNNING) {
    lb_status_uint (g, "verify_pass", lbv.id);
    lb_status_percent (g, "verify_percent", lbv.looked, lbv.dev_size);
    lb_status_uint (g, "verify_mismatched_blocks", lbv.mismatched);
  }
  pthread_mutex_unlock (&lbv.lock);
}
