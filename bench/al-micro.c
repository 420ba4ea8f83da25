/* SPDX-License-Identifier: BSD-3-Clause */
/* al-micro: the activity log's own cost per write, without I/O.
 *
 *   make bench/al-micro && bench/al-micro [WRITES] [THREADS]
 *
 * The filter's capture code (capture.c and the rest, as the unit tests
 * link it) with a plugin call that does nothing, degraded (no consumer),
 * once without a state file and once with one whose regions are all
 * active (the steady state): CPU time per capture_write, each way, in
 * THREADS threads writing 4 KiB at random.  What is left is the mutex,
 * the in-flight counts and the ticket: the cost a write pays once its
 * region is active.  Not part of make check.
 */

#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#include "actlog.h"
#include "capture.h"
#include "channel.h"
#include "persist.h"
#include "service.h"

#define DEV_SIZE (UINT64_C(1) << 30)

static uint64_t nwrites = 2000000;

static int
noop (void *ctx, const void *buf, uint32_t count, uint64_t offset,
      uint32_t flags, int *err)
{
  return 0;
}

static void *
writer (void *arg)
{
  unsigned seed = (uintptr_t) arg;
  static char buf[4096];
  uint64_t i;
  int e;

  for (i = 0; i < nwrites; i++) {
    uint64_t off = (uint64_t) (rand_r (&seed) % (DEV_SIZE / 4096)) * 4096;
    capture_write (NULL, noop, LW_REC_WRITE, buf, 4096, off, 0, &e);
  }
  return NULL;
}

static double
cpu_seconds (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec
         + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double
run (int threads)
{
  pthread_t t[64];
  double c0 = cpu_seconds ();
  int i;

  for (i = 0; i < threads; i++)
    pthread_create (&t[i], NULL, writer, (void *) (uintptr_t) (i + 1));
  for (i = 0; i < threads; i++)
    pthread_join (t[i], NULL);
  return (cpu_seconds () - c0) * 1e9 / (nwrites * threads);
}

static void
setup (const char *dir, bool state)
{
  struct channel_config cfg = { .dir = dir, .unit = 9, .queue = 1 << 20,
                                .block = 65536 };
  static char path[512];
  struct persist_config pc = { .path = path, .nslots = 1024,
                               .region_size = 4 << 20 };
  struct channel_origin o;

  snprintf (path, sizeof path, "%s/state", dir);
  if (channel_create (&cfg) == -1 || channel_size (DEV_SIZE) == -1)
    exit (1);
  if (state) {
    if (persist_open (&pc, &o) == -1)
      exit (1);
    channel_ready (&o);
  }
  else
    channel_ready (NULL);
  if (service_start () == -1 || actlog_start () == -1)
    exit (1);
}

static void
teardown (const char *dir)
{
  char p[512];
  service_stop ();
  persist_close ();
  channel_close ();
  lw_shm_path (p, sizeof p, dir, 9);
  unlink (p);
  snprintf (p, sizeof p, "%s/state", dir);
  unlink (p);
}

int
main (int argc, char **argv)
{
  char dir[] = "/tmp/al-micro-XXXXXX";
  int threads = argc > 2 ? atoi (argv[2]) : 1;
  double off, on;

  if (argc > 1)
    nwrites = strtoull (argv[1], NULL, 10);
  if (mkdtemp (dir) == NULL)
    return 1;
  setup (dir, false);
  run (threads);                        /* warm the caches */
  off = run (threads);
  teardown (dir);
  setup (dir, true);
  run (threads);                        /* every region activated */
  on = run (threads);
  printf ("%d thread(s), %" PRIu64 " writes each: %.0f ns CPU per write "
          "without a state file, %.0f ns with one (+%.0f ns); %" PRIu64
          " journal records\n", threads, nwrites, off, on, on - off,
          atomic_load (&channel_hdr->n_state_records));
  teardown (dir);
  rmdir (dir);
  return 0;
}
