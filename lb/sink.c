/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: the network sink behind lw_follow.  See sink.h. */

#include <config.h>

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include "lb_bytes.h"
#include "lb_io.h"
#include "lb_log.h"
#include "lb_proto.h"
#include "lb_time.h"
#include "lb_wire.h"
#include "mark.h"
#include "scan.h"
#include "sink.h"
#include "sink_int.h"
#include "verify.h"

_Atomic uint64_t lb_sink_device_bytes;

static void
lb_sink_log_device (void)
{
  lb_info ("at exit: %" PRIu64 " bytes read from the device in all",
           atomic_load (&lb_sink_device_bytes));
}

int
lb_sink_init (struct lb_sink *s)
{
  static bool logged_at_exit;

  if (!logged_at_exit)
    logged_at_exit = atexit (lb_sink_log_device) == 0;
  s->buf = malloc (LB_CHUNK);
  s->hashes = malloc ((size_t) LBP_HASH_SIZE * (LB_CHUNK / 4096));
  if (s->buf == NULL || s->hashes == NULL
      || lb_compress_init (&s->z, s->compress, lb_conn_fd (s->conn)) == -1)
    return -1;
  s->rate.rate = s->max_rate;
  /* Without the second thread, the sink hashes every region itself. */
  lb_hasher_start (&s->hasher);
  return 0;
}

void
lb_sink_free (struct lb_sink *s)
{
  lb_hasher_stop (&s->hasher);     /* it may be hashing into s->scan */
  free (s->buf);
  free (s->rbuf);
  free (s->hashes);
  lb_compress_free (&s->z);
  lb_hash_key_wipe (&s->hkey);
}

/* Fail the session, remembering "PREFIXDETAIL" as the reason. */
int
lb_sink_fail (struct lb_sink *s, const char *prefix, const char *detail)
{
  if (!s->failed) {
    s->failed = true;
    snprintf (s->why, sizeof s->why, "%s%s", prefix, detail);
  }
  errno = EPIPE;
  return -1;
}

/* Wait NS nanoseconds for the rate limit, in slices, so that a signal
 * or a stop request is seen within 100 ms.
 */
static void
lb_sink_pace (struct lb_sink *s, uint64_t ns)
{
  while (ns > 0 && !*s->quit) {
    uint64_t n = ns < 100000000 ? ns : 100000000;
    struct timespec ts = { .tv_sec = 0, .tv_nsec = (long) n };
    nanosleep (&ts, NULL);
    ns -= n;
  }
}

int
lb_sink_send (struct lb_sink *s, const struct lbp_msg *m, const void *payload,
              size_t len)
{
  uint64_t wire = LBP_HDR_SIZE + lbp_fixed_size (m->type) + len, t0;

  if (s->failed)
    return -1;
  if (s->rate.rate != 0)
    lb_sink_pace (s, lb_rate_take (&s->rate, wire, lb_now_ns ()));
  lb_compress_sending (&s->z);
  t0 = lb_now_ns ();
  if (lbw_send (s->conn, m, payload, len) == -1)
    return lb_sink_fail (s, "", "connection lost while sending");
  /* How long the link held lb: what --compress=auto measures it by. */
  lb_compress_sent (&s->z, wire, lb_now_ns () - t0);
  atomic_fetch_add_explicit (&s->bytes_sent, wire, memory_order_relaxed);
  return 0;
}

/* Receive the reply of type TYPE; an ERROR or anything else fails. */
static int
lb_sink_reply (struct lb_sink *s, uint16_t type, struct lbp_msg *m)
{
  const char *why = NULL;
  char text[256];
  enum lbw_recv_outcome r;
  uint64_t t0;

  if (s->failed)
    return -1;
  t0 = lb_now_ns ();
  r = lbw_recv (s->conn, m, &s->rbuf, &s->rcap, 120000, &why);
  /* Waiting for an answer is waiting on the link too (and on lbd). */
  lb_compress_sent (&s->z, 0, lb_now_ns () - t0);
  if (r == LBW_RECV_MSG && m->type == type)
    return 0;
  if (r == LBW_RECV_MSG && m->type == LBP_ERROR) {
    lb_log_safe (text, sizeof text, (const char *) m->payload,
                 m->payload_len);
    s->error_code = m->code;
    /* The server ends the session on purpose (session.c says so). */
    return lb_sink_fail (s, m->code == LBP_ERR_SHUTDOWN ? ""
                                                        : "server says: ",
                         text);
  }
  if (r == LBW_RECV_MSG)
    return lb_sink_fail (s, "unexpected message from the server: ",
                         lbp_type_name (m->type));
  return lb_sink_fail (s, "", r == LBW_RECV_END ? "server closed the connection"
                                       : why ? why : "receive failed");
}

/* Expect the reply of TYPE to request ID (a SYNC's: AT and PHASE). */
void
lb_sink_expect (struct lb_sink *s, uint16_t type, uint64_t id,
                const struct lwf_mark *at, uint32_t phase, bool pipelined)
{
  struct lb_sink_expect *e;

  assert (s->ex_n < LB_EXPECT_MAX);
  e = &s->expect[(s->ex_head + s->ex_n) % LB_EXPECT_MAX];
  *e = (struct lb_sink_expect) { .type = type, .id = id, .phase = phase,
                                 .pipelined = pipelined };
  if (at)
    e->at = *at;
  s->ex_n++;
}

/* A sync is durable in lbd. */
static void
lb_sink_synced (struct lb_sink *s, const struct lb_sink_expect *e)
{
  if (e->phase == LBP_PHASE_SCANNING)
    lb_debug ("synced up to seq %" PRIu64 ", gen %" PRIu64 " (scanning, "
              "%" PRIu64 " bytes swept)", e->at.seq, e->at.gen, e->at.swept);
  else
    lb_debug ("synced up to seq %" PRIu64 ", gen %" PRIu64 " (%s)",
              e->at.seq, e->at.gen, lbp_phase_name (e->phase));
  if (e->phase == LBP_PHASE_LIVE)
    atomic_store (&s->last_consistent, (uint64_t) time (NULL));
  if (e->pipelined)
    s->synced++;
}

/* Read the oldest expected reply into M and check that it answers its
 * request; a SYNCED completes its sync (it names the seq lbd made
 * durable: at least the SYNC's).
 */
int
lb_sink_take (struct lb_sink *s, struct lbp_msg *m)
{
  struct lb_sink_expect e;

  assert (s->ex_n > 0);
  e = s->expect[s->ex_head];
  s->ex_head = (s->ex_head + 1) % LB_EXPECT_MAX;
  s->ex_n--;
  if (lb_sink_reply (s, e.type, m) == -1)
    return -1;
  if (m->id != e.id || (e.type == LBP_MARKED && m->seq != e.at.seq))
    return lb_sink_fail (s, "", e.type == LBP_SYNCED
                                ? "SYNCED answers another request"
                                : e.type == LBP_MARKED
                                ? "MARKED answers another request"
                                : "server's hashes do not match the request");
  if (e.verify && lb_verify_answer (m) == -1)
    return lb_sink_fail (s, "", "server's hashes do not match the verify's "
                                "request");
  if (e.type == LBP_MARKED)
    lb_mark_done (m->seq, m->code, (const char *) m->payload,
                  m->payload_len);
  if (e.type == LBP_SYNCED) {
    if (m->seq < e.at.seq)
      return lb_sink_fail (s, "", "SYNCED names an older seq than its SYNC");
    lb_sink_synced (s, &e);
  }
  return 0;
}

/* A reply read wherever it comes to the head (sink.h). */
static bool
lb_sink_passive (const struct lb_sink *s)
{
  const struct lb_sink_expect *e = &s->expect[s->ex_head];

  return s->ex_n > 0 && (e->type == LBP_SYNCED || e->type == LBP_MARKED
                         || e->verify);
}

/* Read every passive reply expected before a scan's oldest HASHES. */
int
lb_sink_take_synced (struct lb_sink *s)
{
  struct lbp_msg m;

  while (lb_sink_passive (s))
    if (lb_sink_take (s, &m) == -1)
      return -1;
  return 0;
}

/* Has the server sent something, within TIMEOUT_MS? */
static bool
lb_sink_readable (struct lb_sink *s, int timeout_ms)
{
  struct pollfd pfd = { .fd = lb_conn_fd (s->conn), .events = POLLIN };

  return lb_conn_pending (s->conn) || poll (&pfd, 1, timeout_ms) == 1;
}

#define LB_ZERO_PIECE 4096u    /* zero detection's granularity */

/* Send LEN bytes of DATA, all zero (ZERO) or not, as one WRITE (SEQ !=
 * 0) or BLOCK: zeroes as a length without data, the rest compressed if
 * lb_compress_payload says so.
 */
static int
lb_sink_piece (struct lb_sink *s, uint16_t type, uint64_t seq, uint64_t off,
               const uint8_t *data, uint32_t len, bool zero)
{
  struct lbp_msg m = { .type = type, .seq = seq, .offset = off,
                       .length = len, .enc = LBP_ENC_RAW };
  size_t z;

  if (zero) {
    if (type == LBP_WRITE) {
      struct lbp_msg zm = { .type = LBP_ZERO, .seq = seq, .offset = off,
                            .length = len };
      return lb_sink_send (s, &zm, NULL, 0);
    }
    m.enc = LBP_ENC_ZERO;
    return lb_sink_send (s, &m, NULL, 0);
  }
  z = lb_compress_payload (&s->z, data, len);
  if (z > 0) {
    m.enc = LBP_ENC_ZSTD;
    return lb_sink_send (s, &m, s->z.buf, z);
  }
  return lb_sink_send (s, &m, data, len);
}

/* Send DATA as WRITEs (SEQ != 0) or BLOCKs: cut where 4 KiB pieces
 * change between all zero and not, so that the zeroes in a block of
 * data travel as lengths alone (and become holes in the image).
 */
static int
lb_sink_data (struct lb_sink *s, uint16_t type, uint64_t seq, uint64_t off,
              const uint8_t *data, uint32_t len)
{
  uint32_t at = 0;

  while (at < len) {
    uint32_t n = len - at < LB_ZERO_PIECE ? len - at : LB_ZERO_PIECE;
    bool zero = lb_is_zero (data + at, n);
    uint32_t end = at + n;

    while (end < len) {
      n = len - end < LB_ZERO_PIECE ? len - end : LB_ZERO_PIECE;
      if (lb_is_zero (data + end, n) != zero)
        break;
      end += n;
    }
    if (lb_sink_piece (s, type, seq, off + at, data + at, end - at,
                       zero) == -1)
      return -1;
    at = end;
  }
  return 0;
}

/* A device read of LEN bytes at OFF ended as R (0 or -1 with errno):
 * counted, or the session failed.
 */
int
lb_sink_read_done (struct lb_sink *s, int r, uint64_t off, uint64_t len)
{
  /* The device is as large as the filter says: a short read is an error. */
  if (r == -1) {
    lb_err ("reading the device at %" PRIu64 ": %s", off,
            errno == ENODATA ? "unexpected end" : strerror (errno));
    s->failed = true;
    snprintf (s->why, sizeof s->why, "device read error");
    return -1;
  }
  atomic_fetch_add_explicit (&lb_sink_device_bytes, len,
                             memory_order_relaxed);
  return 0;
}

static int
lb_sink_pread (struct lb_sink *s, uint8_t *buf, uint64_t off, uint64_t len)
{
  return lb_sink_read_done (s, lb_pread_all (s->dev_fd, buf, len, off,
                                             LB_EOF_FAIL), off, len);
}

int
lb_sink_read_device (struct lb_sink *s, void *buf, uint64_t off,
                     uint64_t len)
{
  return lb_sink_pread (s, buf, off, len);
}

int
lb_sink_send_block (struct lb_sink *s, uint64_t off, const void *data,
                    uint32_t len)
{
  return lb_sink_data (s, LBP_BLOCK, 0, off, data, len);
}

/* Copy [off, off+len) of the device as BLOCKs. */
int
lb_sink_copy_blocks (struct lb_sink *s, uint64_t off, uint64_t len)
{
  /* Under a rate limit, messages of a tenth of a second's worth (at
   * least 64 KiB), so that the link is shared out evenly.
   */
  uint64_t chunk = s->max_rate == 0 ? LB_CHUNK : s->max_rate / 10;

  if (chunk < (64u << 10))
    chunk = 64u << 10;
  if (chunk > LB_CHUNK)
    chunk = LB_CHUNK;
  while (len > 0) {
    uint32_t n = len < chunk ? len : chunk;
    if (lb_sink_pread (s, s->buf, off, n) == -1
        || lb_sink_data (s, LBP_BLOCK, 0, off, s->buf, n) == -1)
      return -1;
    off += n; len -= n;
  }
  return 0;
}

static int
lb_sink_copy (void *opaque, uint64_t off, uint64_t len, bool scan)
{
  struct lb_sink *s = opaque;

  return scan ? lb_scan_regions (s, off, len)
              : lb_sink_copy_blocks (s, off, len);
}

uint64_t
lb_sink_verify_req (struct lb_sink *s, uint64_t off, uint32_t len,
                    uint32_t hb)
{
  struct lbp_msg m = { .type = LBP_HASH_REQ, .offset = off, .length = len,
                       .hash_block = hb, .id = ++s->next_id };

  if (s->failed)
    return 0;
  lb_sink_expect (s, LBP_HASHES, m.id, NULL, 0, false);
  s->expect[(s->ex_head + s->ex_n - 1) % LB_EXPECT_MAX].verify = true;
  return lb_sink_send (s, &m, NULL, 0) == -1 ? 0 : m.id;
}

static int
lb_sink_record (void *opaque, const struct lwc_rec *rec)
{
  struct lb_sink *s = opaque;
  uint64_t off = rec->offset, done = 0;

  lb_verify_record (rec);
  switch (rec->type) {
  case LW_REC_WRITE:
    /* Records are at most the ring's size; split to the wire's limit. */
    while (done < rec->length) {
      uint32_t n = rec->length - done < LB_CHUNK ? rec->length - done
                                                 : LB_CHUNK;
      if (lb_sink_data (s, LBP_WRITE, rec->seq, off + done,
                        (const uint8_t *) rec->data + done, n) == -1)
        return -1;
      done += n;
    }
    return 0;
  case LW_REC_ZERO: {
    struct lbp_msg z = { .type = LBP_ZERO, .seq = rec->seq, .offset = off,
                         .length = rec->length };
    return lb_sink_send (s, &z, NULL, 0);
  }
  case LW_REC_TRIM:
    /* Whatever the device now reads there. */
    return lb_sink_copy_blocks (s, off, rec->length);
  case LW_REC_FLUSH:
    return 0;                   /* lw_follow syncs right after */
  case LW_REC_MARK: {
    /* lbd decides whether its image holds the mark's moment. */
    struct lbp_msg mk = { .type = LBP_MARK, .id = ++s->next_id,
                          .seq = rec->seq };
    char label[LW_MARK_LABEL_MAX];
    memcpy (label, rec->data, rec->length);
    label[rec->length] = '\0';
    lb_mark_sent (rec->seq, label);
    lb_sink_expect (s, LBP_MARKED, mk.id, &(struct lwf_mark) {
                      .seq = rec->seq }, 0, false);
    return lb_sink_send (s, &mk, rec->data, rec->length);
  }
  }
  return lb_sink_fail (s, "", "unknown record type");
}

/* Send a SYNC of AT in PHASE, its reply expected (PIPELINED: counted
 * for sync_reap).  Hash requests still unanswered are finished first:
 * their blocks belong before it.
 */
static int
lb_sink_sync_send (struct lb_sink *s, const struct lwf_mark *at,
                   uint32_t phase, bool pipelined)
{
  struct lbp_msg m = { .type = LBP_SYNC, .seq = at->seq, .phase = phase,
                       .gen = at->gen, .swept = at->swept };

  if (lb_scan_drain (s) == -1)
    return -1;
  if (phase != LBP_PHASE_LIVE) {
    /* Not live: tell lbd what is still to come, counted afresh at a
     * phase change and at most once a second (a large device's bitmap
     * takes a while); in live mode nothing is marked.
     */
    uint64_t dirty, pending, now = lb_now_ms ();
    if (s->counted_ms == 0 || now - s->counted_ms >= 1000) {
      lwc_count_bits (s->c, &dirty, &pending);
      s->marked = (dirty + pending) * lwc_header (s->c)->block_size;
      s->counted_ms = now;
    }
    m.backlog = lbp_backlog_encode (s->marked
                                    + atomic_load (&s->progress->to_compare));
  }
  else
    m.backlog = lbp_backlog_encode (0);
  m.id = ++s->next_id;
  lb_sink_expect (s, LBP_SYNCED, m.id, at, phase, pipelined);
  return lb_sink_send (s, &m, NULL, 0);
}

/* A sync that waits: every reply still expected, its own last. */
static int
lb_sink_sync_phase (struct lb_sink *s, const struct lwf_mark *at,
                    uint32_t phase)
{
  if (lb_sink_sync_send (s, at, phase, false) == -1)
    return -1;
  return lb_sink_take_synced (s);
}

static int
lb_sink_sync (void *opaque, const struct lwf_mark *at)
{
  struct lb_sink *s = opaque;
  return lb_sink_sync_phase (s, at, s->phase);
}

static int
lb_sink_sync_pipelined (void *opaque, const struct lwf_mark *at)
{
  struct lb_sink *s = opaque;
  return lb_sink_sync_send (s, at, s->phase, true);
}

/* Take the passive replies already here, or wait up to TIMEOUT_MS
 * (-1: as for any reply, lb_sink_reply's bound) for a SYNCED (ANY: for
 * any one).
 */
static int
lb_sink_take_ready (struct lb_sink *s, int timeout_ms, bool any)
{
  struct lbp_msg m;

  while (!s->failed && lb_sink_passive (s)) {
    if (timeout_ms >= 0 && !lb_sink_readable (s, timeout_ms))
      break;
    if (lb_sink_take (s, &m) == -1)
      return -1;
    if (any || s->synced > 0)
      timeout_ms = 0;           /* one came: take only what is here */
  }
  return s->failed ? -1 : 0;
}

int
lb_sink_tell (struct lb_sink *s, const struct lbp_msg *m)
{
  return lb_sink_send (s, m, NULL, 0);
}

int
lb_sink_poll (struct lb_sink *s, int timeout_ms)
{
  return lb_sink_take_ready (s, timeout_ms, true);
}

/* lwf_sink.sync_reap: take the SYNCED replies already here, or wait up
 * to TIMEOUT_MS for one (-1: as for any reply, lb_sink_reply's bound).
 */
static int
lb_sink_reap (void *opaque, int timeout_ms)
{
  struct lb_sink *s = opaque;
  unsigned n;

  if (lb_sink_take_ready (s, timeout_ms, false) == -1)
    return -1;
  n = s->synced;
  s->synced = 0;
  return n;
}

static void
lb_sink_phase (void *opaque, enum lwf_phase phase, const struct lwf_mark *at)
{
  struct lb_sink *s = opaque;
  uint32_t p = phase == LWF_LIVE ? LBP_PHASE_LIVE
             : phase == LWF_SCANNING ? LBP_PHASE_SCANNING
             : LBP_PHASE_CATCHING_UP;

  lb_info ("%s%s", lwf_phase_name (phase),
           phase == LWF_LIVE ? " (image consistent)" : "");
  lb_progress_phase (s->progress, s->phase == LBP_PHASE_LIVE ? LWF_LIVE
                                  : s->phase == LBP_PHASE_SCANNING
                                  ? LWF_SCANNING : LWF_CATCHING_UP,
                     phase, !s->phased);
  s->phased = true;
  s->counted_ms = 0;                /* count the marked blocks afresh */
  if (phase != LWF_LIVE)
    lb_verify_left_live ();
  s->phase = p;
  atomic_store (&s->pub_phase, p);
  /* Tell lbd now: an image about to receive block copies must be marked
   * inconsistent before the first one, and a live one as soon as it is.
   */
  lb_sink_sync_phase (s, at, p);
}

static void
lb_sink_deferring (void *opaque, bool on)
{
  struct lb_sink *s = opaque;

  atomic_store (&s->pub_deferring, on);
  lb_debug ("%s", on ? "writes go on: waiting for them to pause before "
                       "copying marked blocks"
                     : "copying marked blocks");
}

static void
lb_sink_pass_done (void *opaque, enum lwf_pass kind, uint64_t blocks)
{
  (void) opaque;
  lb_info ("%s done: %" PRIu64 " blocks; %" PRIu64 " bytes read from the "
           "device so far", kind == LWF_PASS_SWEEP ? "scan sweep"
                                                   : "catch-up pass",
           blocks, atomic_load (&lb_sink_device_bytes));
}

/* Polled between steps: stop on a signal, a failure, or anything the
 * server sends unasked (an ERROR, or the end of the connection).
 */
static bool
lb_sink_stop (void *opaque)
{
  struct lb_sink *s = opaque;
  struct pollfd pfd;

  lb_progress_beat (s->progress);
  if (*s->quit || s->failed)
    return true;
  if (s->ex_n > 0)
    return false;               /* replies are expected: not unasked */
  pfd.fd = lb_conn_fd (s->conn);
  pfd.events = POLLIN;
  if (lb_conn_pending (s->conn) || poll (&pfd, 1, 0) == 1) {
    struct lbp_msg m;
    lb_sink_reply (s, LBP_BYE, &m);   /* anything here is unasked */
    if (!s->failed)
      lb_sink_fail (s, "", "unexpected message from the server");
    return true;
  }
  return false;
}

static void
lb_sink_progress (void *opaque, const struct lwf_progress *p)
{
  struct lb_sink *s = opaque;

  lb_progress_step (s->progress, p);
}

static bool
lb_sink_mark_take (void *opaque, char label[LW_MARK_LABEL_MAX])
{
  (void) opaque;
  return lb_mark_take (label);
}

static void
lb_sink_mark_placed (void *opaque, int result, uint64_t seq)
{
  (void) opaque;
  lb_mark_placed (result, seq);
}

void
lb_sink_ops (struct lb_sink *s, struct lwf_sink *ops)
{
  *ops = (struct lwf_sink) {
    .opaque = s, .record = lb_sink_record, .copy = lb_sink_copy,
    .sync = lb_sink_sync, .sync_send = lb_sink_sync_pipelined,
    .sync_reap = lb_sink_reap, .phase = lb_sink_phase, .stop = lb_sink_stop,
    .deferring = lb_sink_deferring, .progress = lb_sink_progress,
    .pass_done = lb_sink_pass_done,
    .mark_take = lb_sink_mark_take, .mark_placed = lb_sink_mark_placed,
  };
}
