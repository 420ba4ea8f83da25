/* SPDX-License-Identifier: BSD-3-Clause */
/* Deterministic tests of the consumer's protocol (lw_follow.c) at its
 * delicate moments, with the filter's own producer code in-process and a
 * sink that lets the test act in the middle of a step.
 *
 * 1. The filter degrades again during the final pass.  A block the final
 *    pass copies holds a degraded write W5 (its bit now spent) newer than
 *    a record R4 appended after the resume; applying R4 after the copy
 *    would leave the mirror with W4's data for good unless the protocol
 *    marks that block again.  (Found by test-stress under load.)
 * 2. The copy generation (lw_shm.h).  Degraded writes take no seq, so an
 *    image that did not get a catch-up's block copies must be told apart
 *    by its gen: after a catch-up into one image, another image at the
 *    old gen must not continue; a sync lost in flight must neither make
 *    the image it was for rescan nor let its number be used again.
 * 3. A live image continued while the filter is normal, with dirty bits
 *    a predecessor left (it died in its finish): the copies make the
 *    image a mix of moments until the barrier, so no sync carrying them
 *    may record it as live.  (Found in review.)
 */

#include <config.h>

#include <stdio.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <nbdkit-filter.h>

#include "capture.h"
#include "channel.h"
#include "service.h"
#include "lw_consumer.h"
#include "lw_follow.h"
#include "follow-harness.h"
#include "tap.h"

#define DEV_SIZE (1u << 20)
#define BLOCK    4096u

static int dev_fd, img_fd;
static volatile int stop, phase_live, injected, seeded;
static int step;                /* which scenario is running */

static int
dev_write (void *ctx, const void *buf, uint32_t count, uint64_t offset,
           uint32_t flags, int *err)
{
  return pwrite (dev_fd, buf, count, offset) == (ssize_t) count ? 0 : -1;
}

/* A write through the filter's capture path, as nbdkit would make it. */
static void
write_block (uint64_t block, char fill)
{
  char buf[BLOCK];
  int err;

  memset (buf, fill, sizeof buf);
  capture_write (NULL, dev_write, LW_REC_WRITE, buf, BLOCK, block * BLOCK, 0,
                 &err);
}

static int
sink_record (void *o, const struct lwc_rec *r)
{
  if (r->type == LW_REC_WRITE)
    return pwrite (img_fd, r->data, r->length, r->offset) == r->length ? 0 : -1;
  return 0;
}

static int
sink_copy (void *o, uint64_t off, uint64_t len, bool scan)
{

  /* A degraded write behind the scan's sweep ... */
  if (step == 1 && scan && !seeded) {
    seeded = 1;
    write_block (10, 'z');
  }
  /* The pass after the sweep copies block 10; one more degraded write
   * behind its cursor leaves the final pass something to copy.
   */
  if (step == 1 && !scan && seeded == 1
      && atomic_load (&channel_hdr->mode) == LW_MODE_DEGRADED) {
    seeded = 2;
    write_block (5, 'y');
  }
  /* Scenario 1: at the first copy of the final pass (the filter is
   * normal again), a normal write R4 to block 200, then a degrade, then a
   * degraded write W5 to block 200 — before the pass reaches it.
   */
  if (step == 1 && !injected && !scan
      && atomic_load (&channel_hdr->mode) == LW_MODE_NORMAL
      && off / BLOCK < 200) {
    injected = 1;
    write_block (200, '4');                     /* queued: R4 */
    pthread_rwlock_wrlock (&livewatch_lock);
    channel_degrade ("test");
    pthread_rwlock_unlock (&livewatch_lock);
    write_block (200, '5');                     /* degraded: bit only */
  }
  return fh_copy (dev_fd, img_fd, off, len);
}

/* The "image's" durable state, as lbd would store it. */
static uint64_t img_seq, img_gen, n_gen_syncs;
static enum lwf_phase img_phase = LWF_LIVE;
static int copies_synced_live;
static volatile int fail_copy_sync;

static int
sink_sync (void *o, const struct lwf_mark *m)
{
  uint64_t seq = m->seq, gen = m->gen;

  /* Scenario 2: the connection dies on the way to a sync carrying block
   * copies (a new gen): the image never stores it.
   */
  if (fail_copy_sync && gen != img_gen) {
    stop = 1;
    return -1;
  }
  if (gen != img_gen)
    n_gen_syncs++;
  if (gen != img_gen && img_phase == LWF_LIVE)
    copies_synced_live++;
  img_seq = seq;
  img_gen = gen;
  return 0;
}

static void
sink_phase (void *o, enum lwf_phase p, const struct lwf_mark *m)
{
  img_phase = p;
  if (p == LWF_LIVE)
    phase_live++;
}

static bool
sink_stop (void *o)
{
  return stop;
}

/* May a mirror of EPOCH at SEQ and GEN (not scanning) continue? */
static bool
continues (struct lwc *c, uint64_t epoch, uint64_t seq, uint64_t gen,
           const char **why)
{
  struct lwf_mark m = { .seq = seq, .gen = gen };
  return lwf_decide (c, epoch, &m, false, why) == LWF_CONTINUE;
}

struct run {
  struct lwc *c;
  bool scan;
  uint64_t seq, gen;            /* where the image stands, if !scan */
  int result;
};

static void *
follower (void *arg)
{
  struct run *run = arg;
  struct lwf_sink sink = {
    .record = sink_record, .copy = sink_copy, .sync = sink_sync,
    .phase = sink_phase, .stop = sink_stop,
  };
  struct lwf_options o;

  lwf_default_options (run->c, &o);
  o.low_water = 1000000;        /* resume after the first pass */
  struct lwf_mark at = { .seq = run->seq, .gen = run->gen };
  run->result = lwf_run (run->c, &sink, &o,
                         run->scan ? LWF_FULL_SCAN : LWF_CONTINUE, &at);
  return NULL;
}

int
main (void)
{
  char dir[] = "/tmp/lw-test-follow-XXXXXX";
  char err[256], *a, *b;
  struct run run = { .result = -9, .scan = true };
  pthread_t t;
  int i;

  tap_ok (fh_channel_up (dir, 5, 64 << 10, BLOCK, DEV_SIZE, &dev_fd,
                         &img_fd) == 0, "channel up");
  run.c = lwc_attach (dir, 5, 0, err, sizeof err);
  tap_ok (run.c != NULL, "consumer attached");

  /* Scenario 1. */
  for (i = 0; i < 256; i++)
    write_block (i, 'a' + i % 26);      /* degraded: the first scan copies */
  step = 1;
  pthread_create (&t, NULL, follower, &run);
  for (i = 0; i < 500 && !(injected && fh_settled (run.c)); i++)
    usleep (10000);
  tap_ok (injected, "degraded write injected during the final pass");
  tap_ok (fh_settled (run.c), "channel settled (normal, all released, no bits)");
  a = mmap (NULL, DEV_SIZE, PROT_READ, MAP_SHARED, dev_fd, 0);
  b = mmap (NULL, DEV_SIZE, PROT_READ, MAP_SHARED, img_fd, 0);
  tap_ok (b[200 * BLOCK] == '5',
          "block 200 holds the degraded write (got '%c')", b[200 * BLOCK]);
  tap_ok (memcmp (a, b, DEV_SIZE) == 0, "mirror equals device");
  tap_ok (phase_live == 1,
          "live declared once: not at the finish the degrade spoiled (%d)",
          phase_live);
  stop = 1;
  pthread_join (t, NULL);
  tap_ok (run.result == LWF_END_STOPPED, "follower stopped cleanly");

  /* Scenario 2.  Image A stands where scenario 1 left it. */
  {
    const struct lw_header *h = lwc_header (run.c);
    uint64_t a_seq = img_seq, a_gen = img_gen, b_gen, g, acked, d, p;
    const char *why = NULL;

    lwc_gen_get (run.c, &g, &acked);
    tap_ok (a_gen > 0 && a_gen == g && g == acked,
            "the scan's copies took gens; image and unit agree (%" PRIu64
            " %" PRIu64 " %" PRIu64 ")", a_gen, g, acked);
    tap_ok (continues (run.c, h->epoch, a_seq, a_gen, &why),
            "image A may continue");
    tap_ok (!continues (run.c, h->epoch ^ 1, a_seq, a_gen, &why),
            "another epoch may not");

    /* Writes while no one follows: bits only, no seq. */
    pthread_rwlock_wrlock (&livewatch_lock);
    channel_degrade ("test");
    pthread_rwlock_unlock (&livewatch_lock);
    for (i = 40; i < 48; i++)
      write_block (i, 'q');
    tap_ok (continues (run.c, h->epoch, a_seq, a_gen, &why),
            "A may still continue: nothing was copied anywhere");

    /* Image B, a copy of A, continues and gets the catch-up. */
    step = 2;
    stop = 0;
    run = (struct run) { .c = run.c, .seq = a_seq, .gen = a_gen,
                         .result = -9 };
    n_gen_syncs = 0;
    pthread_create (&t, NULL, follower, &run);
    for (i = 0; i < 500 && !fh_settled (run.c); i++)
      usleep (10000);
    stop = 1;
    pthread_join (t, NULL);
    b_gen = img_gen;
    tap_ok (run.result == LWF_END_STOPPED && fh_settled (run.c) && n_gen_syncs > 0
            && b_gen > a_gen, "B caught up under a new gen (%" PRIu64 ")",
            b_gen);
    tap_ok (memcmp (a, b, DEV_SIZE) == 0, "B equals the device");
    tap_ok (!continues (run.c, h->epoch, a_seq, a_gen, &why)
            && strstr (why, "copied") != NULL,
            "A, which missed those copies, must scan: %s", why);
    tap_ok (continues (run.c, h->epoch, img_seq, b_gen, &why),
            "B may continue");

    /* The sync carrying the next copies is lost in flight. */
    pthread_rwlock_wrlock (&livewatch_lock);
    channel_degrade ("test");
    pthread_rwlock_unlock (&livewatch_lock);
    for (i = 60; i < 64; i++)
      write_block (i, 'r');
    stop = 0;
    fail_copy_sync = 1;
    run = (struct run) { .c = run.c, .seq = img_seq, .gen = b_gen,
                         .result = -9 };
    follower (&run);
    fail_copy_sync = 0;
    lwc_gen_get (run.c, &g, &acked);
    tap_ok (run.result == LWF_END_SINK_FAILED && g == b_gen + 1 && acked == b_gen,
            "lost sync: gen %" PRIu64 " spent, %" PRIu64 " still acked",
            g, acked);
    tap_ok (continues (run.c, h->epoch, img_seq, b_gen, &why),
            "B, which never stored it, may continue");
    tap_ok (continues (run.c, h->epoch, img_seq, b_gen + 1, &why),
            "so could B had it stored it (its bits are still pending)");
    tap_ok (!continues (run.c, h->epoch, a_seq, a_gen, &why),
            "A still may not");
    lwc_rewind (run.c);
    lwc_count_bits (run.c, &d, &p);
    tap_ok (d >= 4 && p == 0, "the lost copies are dirty again (%" PRIu64
            " blocks)", d);

    /* B continues; its copies must not reuse the lost number. */
    stop = 0;
    run = (struct run) { .c = run.c, .seq = img_seq, .gen = b_gen,
                         .result = -9 };
    pthread_create (&t, NULL, follower, &run);
    for (i = 0; i < 500 && !fh_settled (run.c); i++)
      usleep (10000);
    stop = 1;
    pthread_join (t, NULL);
    tap_ok (run.result == LWF_END_STOPPED && img_gen == b_gen + 2,
            "B caught up under gen %" PRIu64 ", not the lost one", img_gen);
    tap_ok (memcmp (a, b, DEV_SIZE) == 0, "B equals the device");

    /* Scenario 3.  B is live; the filter normal; bits left behind. */
    tap_ok (img_phase == LWF_LIVE && lwc_mode (run.c) == LW_MODE_NORMAL,
            "B is live, the filter normal");
    for (i = 100; i < 104; i++) {
      char buf[BLOCK];
      memset (buf, 's', sizeof buf);
      if (pwrite (dev_fd, buf, BLOCK, (uint64_t) i * BLOCK) != BLOCK)
        abort ();                               /* unseen by the filter */
    }
    lwc_mark_range (run.c, 100 * BLOCK, 4 * BLOCK);
    copies_synced_live = 0;
    phase_live = 0;
    stop = 0;
    run = (struct run) { .c = run.c, .seq = img_seq, .gen = img_gen,
                         .result = -9 };
    pthread_create (&t, NULL, follower, &run);
    for (i = 0; i < 500 && !(fh_settled (run.c) && phase_live); i++)
      usleep (10000);
    stop = 1;
    pthread_join (t, NULL);
    tap_ok (run.result == LWF_END_STOPPED && phase_live == 1 && img_phase == LWF_LIVE,
            "B continued, copied the blocks and is live again");
    tap_ok (copies_synced_live == 0,
            "no sync carrying copies recorded B as live (%d did)",
            copies_synced_live);
    tap_ok (memcmp (a, b, DEV_SIZE) == 0, "B equals the device");
  }

  fh_channel_down (run.c, dir, 5);
  return tap_done ();
}
