/* SPDX-License-Identifier: BSD-3-Clause */
/* Stress test of the capture protocol: the filter's own capture code
 * (capture.c, channel.c, service.c) driven by writer threads against a
 * memory device, and the real consumer protocol (lw_follow) mirroring it
 * through a deliberately slow, erratic sink, with a ring small enough
 * that the filter degrades and recovers thousands of times.  After the
 * writers stop and the channel converges, the mirror must equal the
 * device byte for byte.
 *
 *   test-stress [SECONDS] [MIN_CYCLES] [state]    (defaults 20 and 300)
 *
 * With "state" the capture is persistent (livewatch-state=): a state
 * file with the fewest slots (16) of small regions, so that every write
 * may wait for an activation or an eviction while the consumer's copy
 * generations wait for their records (tests/stress-state.sh).
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

#include <nbdkit-filter.h>

#include "actlog.h"
#include "capture.h"
#include "channel.h"
#include "persist.h"
#include "service.h"
#include "lw_consumer.h"
#include "mirror.h"
#include "tap.h"

#define DEV_SIZE  (4u << 20)
#define BLOCK     4096u
#define NWRITERS  4
#define BURST_PERIOD_US 6000
#define BURST_US        1500

static int dev_fd, img_fd;
static _Atomic bool writers_stop;
static volatile sig_atomic_t mirror_stop;
static _Atomic uint64_t n_ops;

static int
mem_pwrite (void *ctx, const void *buf, uint32_t count, uint64_t offset,
            uint32_t flags, int *err)
{
  static _Atomic unsigned n;

  if (pwrite (dev_fd, buf, count, offset) != (ssize_t) count) {
    *err = errno;
    return -1;
  }
  /* Now and then a slow return: another writer's overlapping write may
   * then land and try to record itself before this one is recorded
   * (the range locks must keep their records in the device's order).
   */
  if (atomic_fetch_add (&n, 1) % 64 == 0)
    usleep (100);
  return 0;
}

static int
mem_zero (void *ctx, const void *buf, uint32_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  static const char zero[65536];
  while (count) {
    uint32_t n = count < sizeof zero ? count : sizeof zero;
    if (pwrite (dev_fd, zero, n, offset) != (ssize_t) n) {
      *err = errno;
      return -1;
    }
    count -= n;
    offset += n;
  }
  return 0;
}

static int
mem_flush (void *ctx, const void *buf, uint32_t count, uint64_t offset,
           uint32_t flags, int *err)
{
  return 0;
}

static void *
writer (void *arg)
{
  unsigned seed = (unsigned) (uintptr_t) arg * 7919 + 1;
  char *buf = malloc (256 << 10);
  uint64_t id = (uint64_t) (uintptr_t) arg << 48;

  while (!atomic_load (&writers_stop)) {
    /* Unaligned offsets and lengths, overlapping across threads. */
    uint32_t len = 1 + rand_r (&seed) % (rand_r (&seed) % 32 ? 16384 : 262144);
    uint64_t off = rand_r (&seed) % (DEV_SIZE - len);
    uint32_t kind = rand_r (&seed) % 16;
    int err = 0;

    if (kind < 12) {
      for (uint32_t i = 0; i < len; i += 8) {
        uint64_t v = id++;
        memcpy (buf + i, &v, len - i < 8 ? len - i : 8);
      }
      capture_write (NULL, mem_pwrite, LW_REC_WRITE, buf, len, off,
                     kind == 0 ? NBDKIT_FLAG_FUA : 0, &err);
    }
    else if (kind < 15)
      capture_write (NULL, mem_zero, LW_REC_ZERO, NULL, len, off, 0, &err);
    else
      capture_flush (NULL, mem_flush, 0, &err);
    atomic_fetch_add (&n_ops, 1);
    /* Bursts and pauses, as real disks see, in step across the writers:
     * each burst overruns the ring, each pause lets the mirror catch up
     * and resume.  Period BURST_PERIOD_US, writing in its first part.
     */
    {
      struct timespec ts;
      uint64_t us;
      clock_gettime (CLOCK_MONOTONIC, &ts);
      us = (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
      if (us % BURST_PERIOD_US >= BURST_US)
        usleep (BURST_PERIOD_US - us % BURST_PERIOD_US);
    }
  }
  free (buf);
  return NULL;
}

struct consumer_arg {
  struct mirror m;
  int result;
};

static void *
consumer (void *arg)
{
  struct consumer_arg *a = arg;
  char err[256];
  struct lwc *c = NULL;

  while (c == NULL) {
    c = lwc_attach (getenv ("LW_STRESS_DIR"), 3, 0, err, sizeof err);
    if (c == NULL)
      usleep (1000);
  }
  a->result = mirror_follow (&a->m, c);
  mirror_free (&a->m);
  lwc_detach (c);
  return NULL;
}

static bool
converged (void)
{
  const struct lw_header *h = channel_hdr;
  uint64_t w;
  const _Atomic uint64_t *d =
    (const _Atomic uint64_t *) ((const char *) h + h->dirty_off);
  const _Atomic uint64_t *p =
    (const _Atomic uint64_t *) ((const char *) h + h->pending_off);

  if (atomic_load (&h->mode) != LW_MODE_NORMAL
      || atomic_load (&h->head_seq) != atomic_load (&h->tail_seq))
    return false;
  for (w = 0; w < (h->nblocks + 63) / 64; w++)
    if (atomic_load (&d[w]) || atomic_load (&p[w]))
      return false;
  return true;
}

int
main (int argc, char **argv)
{
  char dir[] = "/tmp/lw-test-stress-XXXXXX";
  struct channel_config cfg = {
    .unit = 3, .queue = 64 << 10, .block = BLOCK,
  };
#ifdef __SANITIZE_ADDRESS__
  /* The sanitizers slow the writers down: a shorter, smaller run. */
  int seconds = argc > 1 ? atoi (argv[1]) : 10;
  uint64_t min_cycles = argc > 2 ? strtoull (argv[2], NULL, 10) : 200;
#else
  /* Thousands of cycles on an idle machine; the bar is lower because
   * make check runs tests in parallel on a shared machine.
   */
  int seconds = argc > 1 ? atoi (argv[1]) : 20;
  uint64_t min_cycles = argc > 2 ? strtoull (argv[2], NULL, 10) : 300;
#endif
  pthread_t w[NWRITERS], cons;
  bool persistent = false;
  struct consumer_arg ca = { .result = -2 };
  char *a, *b;
  time_t start;
  uint64_t cycles;
  int i, waited;

  if (mkdtemp (dir) == NULL)
    return 1;
  setenv ("LW_STRESS_DIR", dir, 1);
  cfg.dir = dir;
  dev_fd = memfd_create ("device", 0);
  img_fd = memfd_create ("image", 0);
  if (dev_fd < 0 || img_fd < 0 || ftruncate (dev_fd, DEV_SIZE) == -1)
    return 1;
  if (argc > 3 && strcmp (argv[3], "state") == 0) {
    static char state_path[512];
    struct persist_config pc = { .path = state_path, .nslots = 16,
                                 .region_size = 16 * BLOCK };
    struct channel_origin o;
    snprintf (state_path, sizeof state_path, "%s/state", dir);
    tap_ok (channel_create (&cfg) == 0 && channel_size (DEV_SIZE) == 0
            && persist_open (&pc, &o) == 0
            && (channel_ready (&o), service_start () == 0)
            && actlog_start () == 0,
            "channel up: 64K ring, 4K blocks, a state file with 16 slots "
            "of 64K");
    persistent = true;
  }
  else
    tap_ok (channel_create (&cfg) == 0 && channel_size (DEV_SIZE) == 0
            && (channel_ready (NULL), service_start () == 0),
            "channel up: 64K ring, 4K blocks");

  ca.m.dev_fd = dev_fd;
  ca.m.img_fd = img_fd;
  ca.m.stop = &mirror_stop;
  ca.m.quiet = getenv ("LW_STRESS_VERBOSE") == NULL;
  ca.m.delay_us = 20;           /* slower than the writers */
  pthread_create (&cons, NULL, consumer, &ca);
  for (i = 0; i < NWRITERS; i++)
    pthread_create (&w[i], NULL, writer, (void *) (uintptr_t) (i + 1));

  start = time (NULL);
  while (time (NULL) - start < seconds
         && atomic_load (&channel_hdr->n_resume) < min_cycles * 3)
    usleep (100000);
  atomic_store (&writers_stop, true);
  for (i = 0; i < NWRITERS; i++)
    pthread_join (w[i], NULL);

  for (waited = 0; waited < 3000 && !converged (); waited++)
    usleep (10000);
  tap_ok (converged (), "channel converged %d ms after the writers stopped",
          waited * 10);
  mirror_stop = 1;
  pthread_join (cons, NULL);
  tap_ok (ca.result == LWF_END_STOPPED, "consumer ended cleanly (%d)", ca.result);

  cycles = atomic_load (&channel_hdr->n_resume);
  printf ("# %llu operations, %llu degrade and %llu resume cycles, "
          "%llu records, %llu bytes queued; mirror copied %llu bytes\n",
          (unsigned long long) atomic_load (&n_ops),
          (unsigned long long) atomic_load (&channel_hdr->n_degrade),
          (unsigned long long) cycles,
          (unsigned long long) atomic_load (&channel_hdr->n_records),
          (unsigned long long) atomic_load (&channel_hdr->n_bytes_queued),
          (unsigned long long) ca.m.n_copied);
  tap_ok (cycles >= min_cycles, "at least %llu degrade/catch-up cycles",
          (unsigned long long) min_cycles);

  a = mmap (NULL, DEV_SIZE, PROT_READ, MAP_SHARED, dev_fd, 0);
  b = mmap (NULL, DEV_SIZE, PROT_READ, MAP_SHARED, img_fd, 0);
  {
    size_t off = 0;
    while (off < DEV_SIZE && a[off] == b[off])
      off++;
    tap_ok (off == DEV_SIZE, "mirror equals device (first difference at %zu)",
            off);
    if (off < DEV_SIZE) {
      size_t end = off;
      while (end < DEV_SIZE && a[end] != b[end])
        end++;
      printf ("# differs over [%zu, %zu) (block %zu); mirror: %llu scans, "
              "%llu catch-ups, %llu lives, %llu records\n", off, end,
              off / BLOCK, (unsigned long long) ca.m.n_scans,
              (unsigned long long) ca.m.n_catchups,
              (unsigned long long) ca.m.n_lives,
              (unsigned long long) ca.m.n_records);
    }
  }

  service_stop ();
  persist_close ();
  channel_close ();
  {
    char path[512];
    lw_shm_path (path, sizeof path, dir, 3);
    unlink (path);
    if (persistent) {
      snprintf (path, sizeof path, "%s/state", dir);
      unlink (path);
    }
    rmdir (dir);
  }
  return tap_done ();
}
