/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the livewatch channel: the filter's producer code
 * (channel.c, service.c, capture.c) against the consumer library, in one
 * process, without nbdkit.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <pthread.h>
#include <time.h>
#include <sys/stat.h>

#include <nbdkit-filter.h>

#include "capture.h"
#include "channel.h"
#include "service.h"
#include "lw_consumer.h"
#include "tap.h"

static char dir[] = "/tmp/lw-test-ring-XXXXXX";
static const unsigned unit = 7;

static int
fake_write (void *ctx, const void *buf, uint32_t count, uint64_t offset,
            uint32_t flags, int *err)
{
  int *fail = ctx;
  if (fail && *fail) {
    *err = *fail;
    return -1;
  }
  return 0;
}

static void
test_ring (void)
{
  char err[256], buf[5000];
  struct lwc *c;
  struct lwc_rec rec;
  const struct lw_header *h;
  int i, n, ok;
  uint64_t ring;

  c = lwc_attach (dir, unit, 0, err, sizeof err);
  tap_ok (c != NULL, "consumer attaches (%s)", c ? "ok" : err);
  if (!c) return;
  h = lwc_header (c);
  ring = h->ring_size;
  tap_ok (h->dev_size == 1 << 20 && h->block_size == 4096 && h->nblocks == 256,
          "geometry published");
  tap_ok (lwc_mode (c) == LW_MODE_DEGRADED, "a new channel starts degraded");
  tap_ok (lwc_request (c, LW_REQ_RESUME, 2000, NULL) == LW_RES_OK,
          "resume request carried out by the service thread");
  tap_ok (lwc_mode (c) == LW_MODE_NORMAL, "mode is normal after resume");

  /* Fill with distinct writes, read them back in order, then wrap. */
  ok = 1;
  for (i = 0; i < 300; i++) {
    memset (buf, i & 0xff, sizeof buf);
    pthread_rwlock_wrlock (&livewatch_lock);
    if (!channel_append (LW_REC_WRITE, (uint64_t) i * 512, 1000 + i, buf))
      ok = 0;
    pthread_rwlock_unlock (&livewatch_lock);
    n = lwc_next (c, &rec);
    if (n != 1 || rec.type != LW_REC_WRITE || rec.seq != (uint64_t) i + 1
        || rec.offset != (uint64_t) i * 512 || rec.length != 1000u + i
        || ((const unsigned char *) rec.data)[rec.length - 1] != (i & 0xff))
      ok = 0;
    lwc_release (c, &rec);
  }
  tap_ok (ok, "300 records through a %llu-byte ring, in order, wrapping",
          (unsigned long long) ring);
  tap_ok (lwc_next (c, &rec) == 0, "nothing more to read");

  /* No room: append refuses, data unreleased stays intact. */
  n = 0;
  pthread_rwlock_wrlock (&livewatch_lock);
  while (channel_append (LW_REC_WRITE, 0, 4096, buf))
    n++;
  pthread_rwlock_unlock (&livewatch_lock);
  tap_ok (n > 0 && (uint64_t) n * 4096 <= ring,
          "a full ring refuses appends (%d fitted)", n);
  tap_ok (lwc_request (c, LW_REQ_DEGRADE, 2000, NULL) == LW_RES_OK
          && lwc_mode (c) == LW_MODE_DEGRADED, "degrade on request");
  tap_ok (lwc_request (c, LW_REQ_RESUME, 2000, NULL) == LW_RES_REFUSED,
          "resume refused while the ring is more than half full");
  /* Read ahead of the release, rewind, read again. */
  for (i = 0; i < n && lwc_next (c, &rec) == 1; i++)
    ;
  tap_ok (i == n, "read ahead through all %d queued records", n);
  lwc_rewind (c);
  tap_ok (lwc_next (c, &rec) == 1 && rec.seq == 301,
          "rewind returns to the oldest unreleased record");
  while (lwc_next (c, &rec) == 1)
    ;
  lwc_release (c, &rec);
  tap_ok (lwc_request (c, LW_REQ_RESUME, 2000, NULL) == LW_RES_OK,
          "resume accepted once released");

  /* Capture of a FUA write queues the write and a flush. */
  pthread_rwlock_wrlock (&livewatch_lock);
  pthread_rwlock_unlock (&livewatch_lock);
  {
    int e = 0;
    capture_write (NULL, fake_write, LW_REC_WRITE, buf, 512, 4096,
                   NBDKIT_FLAG_FUA, &e);
    tap_ok (lwc_next (c, &rec) == 1 && rec.type == LW_REC_WRITE
            && lwc_next (c, &rec) == 1 && rec.type == LW_REC_FLUSH,
            "FUA write is queued as write then flush");
    lwc_release (c, &rec);
  }
  /* Marks: appended after every record before them, with their label;
   * refused while degraded (writes have no order then), and the filter
   * checks the label itself.
   */
  {
    uint64_t seq = 0, before = atomic_load (&h->head_seq);
    struct lw_header *wh = (struct lw_header *) h;

    tap_ok (lwc_mark (c, "nightly-1", 2000, &seq) == LW_RES_OK
            && seq == before + 1, "a mark is appended in normal mode, "
            "next in seq (%llu)", (unsigned long long) seq);
    tap_ok (lwc_next (c, &rec) == 1 && rec.type == LW_REC_MARK
            && rec.seq == seq && rec.offset == 0 && rec.length == 9
            && memcmp (rec.data, "nightly-1", 9) == 0,
            "the MARK record carries its label");
    lwc_release (c, &rec);
    errno = 0;
    tap_ok (lwc_mark (c, "9lives", 2000, &seq) == -1 && errno == EINVAL,
            "a bad label is refused before it reaches the filter");
    strcpy (wh->req_label, "a/b");
    tap_ok (lwc_request (c, LW_REQ_MARK, 2000, NULL) == LW_RES_INVALID
            && atomic_load (&h->head_seq) == seq,
            "the filter refuses a bad label itself, appending nothing");
    tap_ok (lwc_request (c, LW_REQ_DEGRADE, 2000, NULL) == LW_RES_OK
            && lwc_mark (c, "late", 2000, &seq) == LW_RES_REFUSED
            && atomic_load (&h->head_seq) == before + 1,
            "a mark is refused while the filter is degraded");
    tap_ok (lwc_request (c, LW_REQ_RESUME, 2000, NULL) == LW_RES_OK,
            "normal again");
  }

  /* A failed write degrades and marks; a refused fast zero does nothing. */
  {
    int fail = EIO, e = 0;
    uint64_t d, p, seq = atomic_load (&h->head_seq);
    fail = ENOTSUP;
    capture_write (&fail, fake_write, LW_REC_ZERO, NULL, 4096, 8192,
                   NBDKIT_FLAG_FAST_ZERO, &e);
    lwc_count_bits (c, &d, &p);
    tap_ok (atomic_load (&h->head_seq) == seq && d == 0
            && lwc_mode (c) == LW_MODE_NORMAL,
            "refused fast zero records nothing");
    fail = EIO;
    capture_write (&fail, fake_write, LW_REC_WRITE, buf, 4096, 8192, 0, &e);
    lwc_count_bits (c, &d, &p);
    tap_ok (lwc_mode (c) == LW_MODE_DEGRADED && d == 1
            && atomic_load (&h->head_seq) == seq,
            "failed write degrades and marks its block");
  }
  lwc_detach (c);
}

/* Normal mode's range locks: a plugin call that stays inside until the
 * test lets it go, against a "device" in memory.
 */
static pthread_mutex_t par_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t par_cond = PTHREAD_COND_INITIALIZER;
static int par_inside, par_release;
static char par_dev[2 * 4096];

static int
par_quick (void *ctx, const void *buf, uint32_t count, uint64_t offset,
           uint32_t flags, int *err)
{
  memcpy (par_dev + offset, buf, count);
  return 0;
}

static int
par_slow (void *ctx, const void *buf, uint32_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  struct timespec until;

  memcpy (par_dev + offset, buf, count);
  clock_gettime (CLOCK_REALTIME, &until);
  until.tv_sec += 10;           /* never hang the suite */
  pthread_mutex_lock (&par_lock);
  par_inside = 1;
  pthread_cond_broadcast (&par_cond);
  while (!par_release
         && pthread_cond_timedwait (&par_cond, &par_lock, &until) == 0)
    ;
  pthread_mutex_unlock (&par_lock);
  return 0;
}

struct par_writer {
  pthread_t t;
  capture_op op;
  uint64_t offset;
  char fill;
  int done;
};

static void *
par_write (void *arg)
{
  struct par_writer *w = arg;
  char buf[4096];
  int e = 0;

  memset (buf, w->fill, sizeof buf);
  capture_write (NULL, w->op, LW_REC_WRITE, buf, sizeof buf, w->offset, 0,
                 &e);
  pthread_mutex_lock (&par_lock);
  w->done = 1;
  pthread_cond_broadcast (&par_cond);
  pthread_mutex_unlock (&par_lock);
  return NULL;
}

/* Wait up to MS for *FLAG; returns it. */
static int
par_wait (int *flag, int ms)
{
  struct timespec until;
  int r;

  clock_gettime (CLOCK_REALTIME, &until);
  until.tv_nsec += (long) ms * 1000000;
  until.tv_sec += until.tv_nsec / 1000000000;
  until.tv_nsec %= 1000000000;
  pthread_mutex_lock (&par_lock);
  while (!*flag
         && pthread_cond_timedwait (&par_cond, &par_lock, &until) == 0)
    ;
  r = *flag;
  pthread_mutex_unlock (&par_lock);
  return r;
}

static void
test_parallel (void)
{
  struct par_writer a = { .op = par_slow, .offset = 0, .fill = 'A' };
  struct par_writer b = { .op = par_quick, .offset = 0, .fill = 'B' };
  struct par_writer c2 = { .op = par_quick, .offset = 4096, .fill = 'C' };
  struct lwc_rec rec;
  char err[256];
  struct lwc *c;
  uint64_t a_seq = 0, b_seq = 0, c_seq = 0;

  c = lwc_attach (dir, unit, 0, err, sizeof err);
  tap_ok (c != NULL, "consumer attaches again (%s)", c ? "ok" : err);
  if (!c) return;
  while (lwc_next (c, &rec) == 1)
    lwc_release (c, &rec);
  tap_ok (lwc_request (c, LW_REQ_RESUME, 2000, NULL) == LW_RES_OK
          && lwc_mode (c) == LW_MODE_NORMAL, "normal mode for the range locks");

  pthread_create (&a.t, NULL, par_write, &a);
  tap_ok (par_wait (&par_inside, 5000), "write A is inside the plugin");
  pthread_create (&c2.t, NULL, par_write, &c2);
  tap_ok (par_wait (&c2.done, 5000) && !a.done,
          "a write elsewhere (C) completes while A is still inside: "
          "normal mode runs them in parallel");
  pthread_create (&b.t, NULL, par_write, &b);
  tap_ok (!par_wait (&b.done, 200),
          "a write overlapping A (B) waits for A");
  pthread_mutex_lock (&par_lock);
  par_release = 1;
  pthread_cond_broadcast (&par_cond);
  pthread_mutex_unlock (&par_lock);
  pthread_join (a.t, NULL);
  pthread_join (b.t, NULL);
  pthread_join (c2.t, NULL);

  while (lwc_next (c, &rec) == 1) {
    if (rec.type == LW_REC_WRITE && rec.offset == 0)
      *(((const char *) rec.data)[0] == 'A' ? &a_seq : &b_seq) = rec.seq;
    if (rec.type == LW_REC_WRITE && rec.offset == 4096)
      c_seq = rec.seq;
    lwc_release (c, &rec);
  }
  tap_ok (c_seq && a_seq && b_seq && c_seq < a_seq && a_seq < b_seq,
          "records in the order each byte changed: C %lu, A %lu, B %lu",
          (unsigned long) c_seq, (unsigned long) a_seq,
          (unsigned long) b_seq);
  tap_ok (par_dev[0] == 'B', "the device holds B, the last record's data");
  lwc_detach (c);
}

static void
test_bitmap (void)
{
  char err[256];
  struct lwc *c = lwc_attach (dir, unit, 0, err, sizeof err);
  uint64_t b, n, d, p, off, len;
  bool cmp;
  int runs = 0;

  tap_ok (c != NULL, "reattach (%s)", c ? "ok" : err);
  if (!c) return;
  /* Clear what earlier tests left. */
  while (lwc_take_run (c, 64, &b, &n, &cmp))
    lwc_done_run (c, b, n);

  pthread_rwlock_rdlock (&livewatch_lock);
  channel_mark (0, 1);                  /* block 0 */
  channel_mark (4096 * 10, 4096 * 70);  /* blocks 10..79, across a word */
  channel_mark (4096 * 255, 100000);    /* last block, clipped */
  pthread_rwlock_unlock (&livewatch_lock);
  lwc_count_bits (c, &d, &p);
  tap_ok (d == 72 && p == 0, "marks set 72 bits (got %llu)",
          (unsigned long long) d);

  tap_ok (lwc_take_run (c, 64, &b, &n, &cmp) && b == 0 && n == 1, "run at block 0");
  /* Contiguous dirty blocks are one run, across bitmap words. */
  tap_ok (lwc_take_run (c, 60, &b, &n, &cmp) && b == 10 && n == 60,
          "run 10..69 goes on across the word's end, up to max");
  tap_ok (lwc_take_run (c, 8, &b, &n, &cmp) && b == 70 && n == 8,
          "run limited to max");
  tap_ok (lwc_take_run (c, 64, &b, &n, &cmp) && b == 78 && n == 2,
          "run stops at the first clean block (78..79)");
  lwc_count_bits (c, &d, &p);
  tap_ok (d == 1 && p == 71, "taken bits move to pending");
  lwc_done_run (c, 0, 1);
  lwc_count_bits (c, &d, &p);
  tap_ok (p == 70, "done clears pending");

  /* A consumer that dies with bits pending hands them back as dirty. */
  lwc_detach (c);
  c = lwc_attach (dir, unit, 0, err, sizeof err);
  lwc_count_bits (c, &d, &p);
  tap_ok (c && d == 71 && p == 0,
          "pending bits of a dead consumer come back dirty");
  while (lwc_take_run (c, 64, &b, &n, &cmp)) {
    runs++;
    lwc_run_bytes (c, b, n, &off, &len);
    if (b == 255)
      tap_ok (off == 255 * 4096 && len == 4096, "last run clipped to device");
  }
  tap_ok (runs == 3, "pass over the rest takes 3 runs (got %d)", runs);

  /* Compare hints cut runs, and go with the pending bits. */
  while (lwc_take_run (c, 64, &b, &n, &cmp))
    lwc_done_run (c, b, n);
  pthread_rwlock_rdlock (&livewatch_lock);
  channel_mark (4096 * 128, 4096 * 16);         /* blocks 128..143 */
  pthread_rwlock_unlock (&livewatch_lock);
  lw_bitmap_mark (channel_hint, 132, 135);
  tap_ok (lwc_count_hints (c) == 4, "4 hints");
  tap_ok (lwc_take_run (c, 64, &b, &n, &cmp) && b == 128 && n == 4 && !cmp,
          "a run stops where the hints start (128+4, copy)");
  tap_ok (lwc_take_run (c, 64, &b, &n, &cmp) && b == 132 && n == 4 && cmp,
          "the hinted run (132+4, compare)");
  lwc_done_run (c, 132, 4);
  tap_ok (lwc_count_hints (c) == 0, "done clears the hints");
  tap_ok (lwc_take_run (c, 64, &b, &n, &cmp) && b == 136 && n == 8 && !cmp,
          "then the rest (136+8, copy)");
  lwc_done_run (c, 128, 4);
  lwc_done_run (c, 136, 8);
  lwc_detach (c);
}

static void
test_attach_rules (void)
{
  char err[256], path[512];
  struct lwc *c1, *c2, *o;

  c1 = lwc_attach (dir, unit, 0, err, sizeof err);
  c2 = lwc_attach (dir, unit, 0, err, sizeof err);
  tap_ok (c1 && c2 == NULL && errno == EBUSY && strstr (err, "another"),
          "a second consumer is refused: %s", err);
  o = lwc_attach (dir, unit, LWC_OBSERVE, err, sizeof err);
  tap_ok (o != NULL && lwc_consumer_attached (o),
          "an observer attaches beside the consumer and sees it");
  lwc_detach (c1);
  tap_ok (o && !lwc_consumer_attached (o), "observer sees the consumer gone");
  lwc_detach (o);

  c1 = lwc_attach (dir, unit + 1, 0, err, sizeof err);
  tap_ok (c1 == NULL && errno == ENOENT && strstr (err, "livewatch-8"),
          "a missing unit names its file: %s", err);

  lw_shm_path (path, sizeof path, dir, unit);
  chmod (path, 0620);
  c1 = lwc_attach (dir, unit, 0, err, sizeof err);
  tap_ok (c1 == NULL && errno == EPERM, "group-writable channel refused: %s",
          err);
  chmod (path, 0600);
}

static void
test_header_check (void)
{
  const struct lw_header *h = channel_hdr;
  struct lw_header copy;

  tap_ok (lw_header_check (h, h->file_size) == NULL, "live header is valid");
  copy = *h; copy.magic ^= 1;
  tap_ok (lw_header_check (&copy, h->file_size) != NULL, "bad magic caught");
  copy = *h; copy.block_size = 4097;
  tap_ok (lw_header_check (&copy, h->file_size) != NULL,
          "odd block size caught");
  copy = *h; copy.dev_size *= 4;
  tap_ok (lw_header_check (&copy, h->file_size) != NULL,
          "size/block count mismatch caught");
  copy = *h; copy.pending_off += 4096;
  tap_ok (lw_header_check (&copy, h->file_size) != NULL,
          "bitmap past the file's end caught");
  tap_ok (lw_header_check (h, h->file_size - 1) != NULL,
          "truncated file caught");
  copy = *h; copy.hint_off = copy.pending_off;
  tap_ok (lw_header_check (&copy, h->file_size) != NULL,
          "hints over the pending map caught");
  copy = *h; copy.start_kind = LW_START_CLEAN;
  tap_ok (lw_header_check (&copy, h->file_size) != NULL,
          "a continued capture without a region size caught");
  copy = *h; copy.start_reason[LW_REASON_LEN - 1] = 'x';
  memset (copy.start_reason, 'x', LW_REASON_LEN);
  tap_ok (lw_header_check (&copy, h->file_size) != NULL,
          "an unterminated start reason caught");
}

static void
test_consumer_death (void)
{
  char err[256];
  struct lwc *c = lwc_attach (dir, unit, 0, err, sizeof err);
  int i;

  while (lwc_request (c, LW_REQ_RESUME, 2000, NULL) != LW_RES_OK) {
    struct lwc_rec rec;
    while (lwc_next (c, &rec) == 1)
      lwc_release (c, &rec);
  }
  tap_ok (lwc_mode (c) == LW_MODE_NORMAL, "normal with a consumer");
  lwc_detach (c);
  for (i = 0; i < 100 && atomic_load (&channel_hdr->mode) == LW_MODE_NORMAL;
       i++)
    usleep (20000);
  tap_ok (atomic_load (&channel_hdr->mode) == LW_MODE_DEGRADED
          && atomic_load (&channel_hdr->n_consumer_lost) >= 1,
          "filter degrades within %d ms of losing its consumer", i * 20);
}

int
main (void)
{
  struct channel_config cfg = {
    .unit = unit, .queue = 64 << 10, .block = 4096,
  };
  char err[256];
  struct lwc *c;

  if (mkdtemp (dir) == NULL) {
    perror ("mkdtemp");
    return 1;
  }
  cfg.dir = dir;
  tap_ok (channel_create (&cfg) == 0, "channel created");
  c = lwc_attach (dir, unit, 0, err, sizeof err);
  tap_ok (c == NULL && errno == EAGAIN, "not attachable before sizing");
  tap_ok (channel_size (1 << 20) == 0, "channel sized");
  channel_ready (NULL);
  tap_ok (service_start () == 0, "service thread started");
  {
    struct channel_config again = cfg;
    tap_ok (channel_create (&again) == -1,
            "a second filter on the same unit is refused");
  }

  test_ring ();
  test_parallel ();
  test_bitmap ();
  test_attach_rules ();
  test_header_check ();
  test_consumer_death ();

  service_stop ();
  channel_close ();
  c = lwc_attach (dir, unit, 0, err, sizeof err);
  tap_ok (c == NULL && errno == ENOENT, "closed channel is not attachable: %s",
          err);
  {
    char path[512];
    lw_shm_path (path, sizeof path, dir, unit);
    unlink (path);
    rmdir (dir);
  }
  return tap_done ();
}
