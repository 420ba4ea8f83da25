/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: the sink's scan, in two levels.  See scan.h and doc/hashing.md. */

#include <config.h>

#include <assert.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "lb_hash.h"
#include "lb_proto.h"
#include "scan.h"
#include "sink.h"
#include "sink_int.h"

/* Hash [off, off+len) of the device with the session's key, in blocks
 * of HASH_BLOCK, into OUT (lb_hash_range).
 */
static int
lb_scan_hash (struct lb_sink *s, uint64_t off, uint64_t len,
              uint32_t hash_block, uint8_t *out)
{
  return lb_sink_read_done (s, lb_hash_range (&s->hkey, s->dev_fd, off, len,
                                              hash_block, LB_EOF_FAIL, out),
                            off, len);
}

/* Ask lbd for the hashes of [off, off+len) in blocks of HASH_BLOCK, at
 * the window's tail, as a request of KIND; a region's one hash
 * (LB_SCAN_TOP) is computed here meanwhile, while lbd computes its.
 */
static int
lb_scan_ask (struct lb_sink *s, uint64_t off, uint64_t len,
                  uint32_t hash_block, enum lb_scan_kind kind)
{
  struct lb_scan_req *q;
  struct lbp_msg m = { .type = LBP_HASH_REQ, .offset = off, .length = len,
                       .hash_block = hash_block };

  assert (s->scan_n < LB_SCAN_WINDOW);
  q = &s->scan[(s->scan_head + s->scan_n) % LB_SCAN_WINDOW];
  m.id = ++s->next_id;
  *q = (struct lb_scan_req) { .id = m.id, .off = off, .len = len,
                              .hash_block = hash_block, .kind = kind };
  s->scan_n++;
  lb_sink_expect (s, LBP_HASHES, m.id, NULL, 0, false);
  if (lb_sink_send (s, &m, NULL, 0) == -1)
    return -1;
  if (kind != LB_SCAN_TOP)
    return 0;
  /* The hasher's core if it is idle (hasher.h), this one otherwise. */
  q->job = (struct lb_hasher_job) { .key = &s->hkey, .fd = s->dev_fd,
                                    .off = off, .len = len,
                                    .hash_block = hash_block,
                                    .out = q->mine };
  q->pending = lb_hasher_give (&s->hasher, &q->job);
  return q->pending ? 0 : lb_scan_hash (s, off, len, hash_block, q->mine);
}

/* Compare [q->off, q->off+q->len) block by block with lbd's hashes
 * THEIRS: read into the buffer once, hashed from it, and each run of
 * differing blocks sent from it.  Sets *DIFFERS if any block did.
 */
static int
lb_scan_blocks (struct lb_sink *s, const struct lb_scan_req *q,
                     const uint8_t *theirs, uint32_t count, bool *differs)
{
  uint32_t hb = q->hash_block, b, e;

  if (lb_sink_read_device (s, s->buf, q->off, q->len) == -1)
    return -1;
  for (b = 0; b < count; b++) {
    uint64_t boff = (uint64_t) b * hb;
    lb_hash_buf (&s->hkey, s->buf + boff, q->len - boff < hb ? q->len - boff
                                                            : hb,
                 s->hashes + (size_t) b * LBP_HASH_SIZE);
  }
  *differs = false;
  for (b = 0; b < count; b = e) {
    uint64_t boff = (uint64_t) b * hb, end;
    bool same = memcmp (s->hashes + (size_t) b * LBP_HASH_SIZE,
                        theirs + (size_t) b * LBP_HASH_SIZE,
                        LBP_HASH_SIZE) == 0;
    for (e = b + 1; e < count; e++)
      if ((memcmp (s->hashes + (size_t) e * LBP_HASH_SIZE,
                   theirs + (size_t) e * LBP_HASH_SIZE, LBP_HASH_SIZE) == 0)
          != same)
        break;
    end = (uint64_t) e * hb < q->len ? (uint64_t) e * hb : q->len;
    if (same)
      atomic_fetch_add (&s->bytes_same, end - boff);
    else {
      *differs = true;
      if (lb_sink_send_block (s, q->off + boff, s->buf + boff,
                              end - boff) == -1)
        return -1;
    }
  }
  return 0;
}

/* Finish the oldest scan request: its hashes from lbd against ours.  A
 * region whose one hash differs is asked again block by block, at the
 * window's tail (where its reply will come, FIFO), unless its blocks
 * are as large as itself: then it is copied.  After each reply that
 * differed, the next region asked is asked block by block at once
 * (scan_fine): where the image differs, it tends to differ in runs (a
 * first contact: everywhere), and asking twice would read those regions
 * of the device twice.
 */
static int
lb_scan_one (struct lb_sink *s)
{
  struct lb_scan_req *head = &s->scan[s->scan_head], q;
  struct lbp_msg m;
  bool differs;

  if (head->pending) {
    head->pending = false;
    lb_hasher_wait (&s->hasher, &head->job);
    if (lb_sink_read_done (s, head->job.r, head->off, head->len) == -1)
      return -1;
  }
  q = *head;

  s->scan_head = (s->scan_head + 1) % LB_SCAN_WINDOW;
  s->scan_n--;
  /* Syncs sent before this request are answered before it. */
  if (lb_sink_take_synced (s) == -1 || lb_sink_take (s, &m) == -1)
    return -1;
  if (m.id != q.id || m.offset != q.off || m.hash_block != q.hash_block
      || m.count != (q.len + q.hash_block - 1) / q.hash_block)
    return lb_sink_fail (s, "", "server's hashes do not match the request");
  if (q.kind != LB_SCAN_SECOND)
    atomic_fetch_add (&s->bytes_scanned, q.len);
  if (q.kind != LB_SCAN_TOP) {
    if (lb_scan_blocks (s, &q, m.payload, m.count, &differs) == -1)
      return -1;
    if (q.kind == LB_SCAN_BLOCKS)
      s->scan_fine = differs;
    return 0;
  }
  if (memcmp (q.mine, m.payload, LBP_HASH_SIZE) == 0) {
    atomic_fetch_add (&s->bytes_same, q.len);
    return 0;
  }
  s->scan_fine = true;
  if (s->hash_block >= q.len)
    return lb_sink_copy_blocks (s, q.off, q.len);
  return lb_scan_ask (s, q.off, q.len, s->hash_block, LB_SCAN_SECOND);
}

int
lb_scan_drain (struct lb_sink *s)
{
  while (s->scan_n > 0)
    if (lb_scan_one (s) == -1)
      return -1;
  return 0;
}

int
lb_scan_regions (struct lb_sink *s, uint64_t off, uint64_t len)
{
  while (len > 0) {
    uint64_t n = len < LB_SCAN_REGION ? len : LB_SCAN_REGION;

    /* A region's reply may take its slot again for the second level. */
    while (s->scan_n == LB_SCAN_WINDOW)
      if (lb_scan_one (s) == -1)
        return -1;
    /* Two levels in a sweep, where most regions are expected the same;
     * a catch-up compares blocks the capture marked as likely changed.
     */
    bool fine = s->scan_fine;

    s->scan_fine = false;               /* for this one region */
    if (s->phase == LBP_PHASE_SCANNING && !fine && s->hash_block < n) {
      if (lb_scan_ask (s, off, n, LB_SCAN_REGION, LB_SCAN_TOP) == -1)
        return -1;
    }
    else if (lb_scan_ask (s, off, n, s->hash_block, LB_SCAN_BLOCKS) == -1)
      return -1;
    off += n; len -= n;
  }
  return 0;
}
