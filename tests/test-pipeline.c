/* SPDX-License-Identifier: BSD-3-Clause */
/* Pipelined syncs (lwf_sink.sync_send / sync_reap, lw_follow.c): the
 * filter's producer code in-process, a writer flushing after every
 * write (an fsync-heavy workload), and a sink that completes its syncs
 * late and in bursts, as lbd's group commit does.
 *
 * 1. The ring never releases a record the sink has not made durable:
 *    released seq <= durable seq, checked at every call into the sink.
 *    Syncs do pipeline (several outstanding at once), the filter stays
 *    normal, and at the end the mirror equals the device, all released.
 * 2. The sink fails with syncs outstanding (lbd killed, the connection
 *    cut): still released <= durable; a new follower continued from the
 *    durable seq (records after it come again) converges to the device.
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
#define SENT_MAX (LWF_MAX_INFLIGHT + 1)

static int dev_fd, img_fd;
static struct lwc *cons;
static volatile int stop, writing;
static volatile int fail_at;            /* fail the Nth reap (0: never) */

/* The sink's syncs: sent, not yet durable (a FIFO of their seqs). */
static uint64_t sent[SENT_MAX];
static unsigned sent_head, sent_n;
static uint64_t durable;                /* the newest durable seq */
static unsigned reaps, max_outstanding, violations, waits;

static int
dev_op (void *ctx, const void *buf, uint32_t count, uint64_t offset,
        uint32_t flags, int *err)
{
  if (buf == NULL)
    return 0;                           /* a flush */
  return pwrite (dev_fd, buf, count, offset) == (ssize_t) count ? 0 : -1;
}

/* The invariant, at every call into the sink. */
static void
check_released (void)
{
  if (lwc_released_seq (cons) > durable)
    violations++;
}

static int
sink_record (void *o, const struct lwc_rec *r)
{
  check_released ();
  if (r->type == LW_REC_WRITE)
    return pwrite (img_fd, r->data, r->length, r->offset) == r->length ? 0 : -1;
  return 0;
}

static int
sink_copy (void *o, uint64_t off, uint64_t len, bool scan)
{
  return fh_copy (dev_fd, img_fd, off, len);
}

/* Complete every sync sent so far (a commit covering them all). */
static void
sink_commit_all (void)
{
  while (sent_n > 0) {
    durable = sent[sent_head];
    sent_head = (sent_head + 1) % SENT_MAX;
    sent_n--;
  }
}

static int
sink_sync (void *o, const struct lwf_mark *m)
{
  check_released ();
  if (sent_n > 0)
    violations++;                       /* lw_follow drains first */
  durable = m->seq;
  return 0;
}

static unsigned completed;              /* not yet reaped */

static int
sink_sync_send (void *o, const struct lwf_mark *m)
{
  check_released ();
  if (sent_n == SENT_MAX - 1)
    violations++;                       /* more than LWF_MAX_INFLIGHT */
  sent[(sent_head + sent_n) % SENT_MAX] = m->seq;
  sent_n++;
  if (sent_n > max_outstanding)
    max_outstanding = sent_n;
  return 0;
}

/* Completes nothing for three calls in four unless it must wait, then
 * everything at once: a group commit.
 */
static int
sink_sync_reap (void *o, int timeout_ms)
{
  unsigned n, before = sent_n;

  check_released ();
  reaps++;
  if (fail_at && reaps >= (unsigned) fail_at)
    return -1;                          /* the connection is gone */
  if (timeout_ms < 0)
    waits++;
  if (timeout_ms >= 0 && reaps % 4 != 0)
    return 0;
  sink_commit_all ();
  completed += before;
  n = completed;
  completed = 0;
  return n;
}

static void
sink_phase (void *o, enum lwf_phase p, const struct lwf_mark *m)
{
  sink_sync (o, m);
}

static bool
sink_stop (void *o)
{
  check_released ();
  return stop;
}

struct run {
  struct lwc *c;
  enum lwf_start start;
  uint64_t seq, gen;
  int result;
};

static void *
follower (void *arg)
{
  struct run *run = arg;
  struct lwf_sink sink = {
    .record = sink_record, .copy = sink_copy, .sync = sink_sync,
    .sync_send = sink_sync_send, .sync_reap = sink_sync_reap,
    .phase = sink_phase, .stop = sink_stop,
  };
  struct lwf_options o;
  struct lwf_mark at = { .seq = run->seq, .gen = run->gen };

  lwf_default_options (run->c, &o);
  run->result = lwf_run (run->c, &sink, &o, run->start, &at);
  return NULL;
}

/* N writes, each followed by a flush, as a database commits. */
static void
write_flush (int n, unsigned salt)
{
  char buf[BLOCK];
  int i, err;

  for (i = 0; i < n; i++) {
    uint64_t block = (i * 37u + salt) % (DEV_SIZE / BLOCK);
    memset (buf, 'a' + (i + salt) % 26, sizeof buf);
    capture_write (NULL, dev_op, LW_REC_WRITE, buf, BLOCK, block * BLOCK, 0,
                   &err);
    capture_flush (NULL, dev_op, 0, &err);
    if (i % 16 == 0)
      usleep (200);                     /* let the follower interleave */
  }
}

static bool
mirror_equal (void)
{
  char *a = mmap (NULL, DEV_SIZE, PROT_READ, MAP_SHARED, dev_fd, 0);
  char *b = mmap (NULL, DEV_SIZE, PROT_READ, MAP_SHARED, img_fd, 0);
  bool same = memcmp (a, b, DEV_SIZE) == 0;

  munmap (a, DEV_SIZE);
  munmap (b, DEV_SIZE);
  return same;
}

static bool
wait_settled (struct lwc *c)
{
  int i;

  for (i = 0; i < 1000 && !fh_settled (c); i++)
    usleep (10000);
  return fh_settled (c);
}

int
main (void)
{
  char dir[] = "/tmp/lw-test-pipeline-XXXXXX";
  char err[256];
  struct run run = { .result = -9, .start = LWF_FULL_SCAN };
  uint64_t degrades0;
  pthread_t t;

  tap_ok (fh_channel_up (dir, 6, 1 << 20, BLOCK, DEV_SIZE, &dev_fd,
                         &img_fd) == 0, "channel up");
  run.c = cons = lwc_attach (dir, 6, 0, err, sizeof err);
  tap_ok (run.c != NULL, "consumer attached");

  /* Scenario 1: a first scan, then live under write + flush. */
  pthread_create (&t, NULL, follower, &run);
  tap_ok (wait_settled (run.c), "first contact settles");
  degrades0 = atomic_load (&channel_hdr->n_degrade);
  write_flush (3000, 1);
  tap_ok (wait_settled (run.c), "live writes settle (all released)");
  tap_ok (mirror_equal (), "mirror equals device");
  tap_ok (violations == 0, "released seq never above the durable seq, "
          "syncs never beyond the window (%u violations)", violations);
  tap_ok (max_outstanding > 1, "syncs were pipelined (%u outstanding at "
          "most)", max_outstanding);
  tap_ok (atomic_load (&channel_hdr->n_degrade) == degrades0,
          "the filter stayed normal");
  stop = 1;
  pthread_join (t, NULL);
  tap_ok (run.result == LWF_END_STOPPED && sent_n == 0,
          "follower stopped cleanly, every sync completed (%d, %u left)",
          run.result, sent_n);

  /* Scenario 2: the sink fails with syncs outstanding. */
  stop = 0;
  reaps = 0;
  fail_at = 60;
  run.start = LWF_CONTINUE;
  run.seq = durable;
  run.gen = 0;
  lwc_gen_get (run.c, NULL, &run.gen);
  run.result = -9;
  pthread_create (&t, NULL, follower, &run);
  write_flush (2000, 7);
  pthread_join (t, NULL);
  tap_ok (run.result == LWF_END_SINK_FAILED, "the follower fails with the sink (%d)",
          run.result);
  tap_ok (violations == 0 && lwc_released_seq (run.c) <= durable,
          "released %" PRIu64 " <= durable %" PRIu64 " at the failure",
          lwc_released_seq (run.c), durable);
  tap_ok (atomic_load (&channel_hdr->head_seq) > durable,
          "records past the durable seq were waiting (head %" PRIu64 ")",
          atomic_load (&channel_hdr->head_seq));
  /* As lb does before the next session: the outstanding syncs are gone
   * with the connection; the image says DURABLE.
   */
  sent_n = 0;
  completed = 0;
  fail_at = 0;
  lwc_rewind (run.c);
  run.seq = durable;
  lwc_gen_get (run.c, NULL, &run.gen);
  run.result = -9;
  pthread_create (&t, NULL, follower, &run);
  tap_ok (wait_settled (run.c), "continued from the durable seq: settles");
  tap_ok (mirror_equal (), "mirror equals device");
  tap_ok (violations == 0, "released never above durable (%u violations)",
          violations);
  stop = 1;
  pthread_join (t, NULL);
  tap_ok (run.result == LWF_END_STOPPED, "follower stopped cleanly (%d)", run.result);

  fh_channel_down (run.c, dir, 6);
  return tap_done ();
}
