/* SPDX-License-Identifier: BSD-3-Clause */
/* lw-mirror: the tests' consumer of a livewatch unit.
 *
 *   lw-mirror [--dir=DIR] [--delay-us=N] [--state=FILE] [--max-seconds=N]
 *             UNIT DEVICE IMAGE
 *       Mirror the unit into IMAGE (reading DEVICE for copies) until
 *       SIGTERM, SIGINT or the time limit.  Reattaches when nbdkit
 *       restarts.  Prints a summary line on exit.
 *   lw-mirror --stat [--dir=DIR] UNIT
 *       Print the channel's header as key=value lines; converged=1 when
 *       the filter is normal, every record is released and no bit is set;
 *       start= how the filter started (lw_shm.h: volatile, fresh, clean,
 *       recovered) and what it found (start_reason=, recovered_regions=).
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "lw_consumer.h"
#include "mirror.h"

static volatile sig_atomic_t stop;

static void
on_signal (int sig)
{
  (void) sig;
  stop = 1;
}

static int
do_stat (const char *dir, unsigned unit)
{
  char err[512];
  struct lwc *c = lwc_attach (dir, unit, LWC_OBSERVE, err, sizeof err);
  const struct lw_header *h;
  uint64_t dirty, pending, head, tail;
  uint32_t mode;

  if (c == NULL) {
    fprintf (stderr, "lw-mirror: %s\n", err);
    return 1;
  }
  h = lwc_header (c);
  lwc_count_bits (c, &dirty, &pending);
  mode = atomic_load (&h->mode);
  head = atomic_load (&h->head_seq);
  tail = atomic_load (&h->tail_seq);
  printf ("epoch=%016" PRIx64 "\n", h->epoch);
  printf ("size=%" PRIu64 "\nblock=%" PRIu32 "\nring=%" PRIu64 "\n",
          h->dev_size, h->block_size, h->ring_size);
  printf ("mode=%s\n", mode == LW_MODE_NORMAL ? "normal" : "degraded");
  printf ("head_seq=%" PRIu64 "\ntail_seq=%" PRIu64 "\n", head, tail);
  printf ("dirty=%" PRIu64 "\npending=%" PRIu64 "\n", dirty, pending);
  printf ("writes=%" PRIu64 "\nrecords=%" PRIu64 "\nbytes_queued=%" PRIu64 "\n",
          atomic_load (&h->n_writes), atomic_load (&h->n_records),
          atomic_load (&h->n_bytes_queued));
  printf ("degrades=%" PRIu64 "\nresumes=%" PRIu64 "\nbits_set=%" PRIu64 "\n",
          atomic_load (&h->n_degrade), atomic_load (&h->n_resume),
          atomic_load (&h->n_bits_set));
  printf ("errors=%" PRIu64 "\nconsumer_lost=%" PRIu64 "\n",
          atomic_load (&h->n_errors), atomic_load (&h->n_consumer_lost));
  printf ("gen=%" PRIu64 "\ngen_acked=%" PRIu64 "\n",
          atomic_load (&h->gen), atomic_load (&h->gen_acked));
  printf ("attach_count=%" PRIu64 "\nconsumer=%d\n",
          atomic_load (&h->attach_count), lwc_consumer_attached (c));
  printf ("start=%s\nstart_reason=%s\nstart_seq=%" PRIu64 "\nstart_floor=%"
          PRIu64 "\n", lw_start_name (h->start_kind), h->start_reason,
          h->start_seq, h->start_floor);
  printf ("recovered_regions=%" PRIu64 "\nregion_size=%" PRIu32
          "\nstart_dirty=%" PRIu64 "\nstart_hinted=%" PRIu64 "\nhints=%"
          PRIu64 "\npersistent=%d\n", h->recovered_regions, h->region_size,
          h->start_dirty, h->start_hinted, lwc_count_hints (c),
          (atomic_load (&h->flags) & LW_FLAG_PERSISTENT) != 0);
  printf ("state_records=%" PRIu64 "\nstate_syncs=%" PRIu64
          "\nal_waits=%" PRIu64 "\nal_wait_us=%" PRIu64 "\n",
          atomic_load (&h->n_state_records), atomic_load (&h->n_state_syncs),
          atomic_load (&h->n_al_waits), atomic_load (&h->al_wait_us));
  printf ("served=%s\nserved_dev=%" PRIu64 "\nserved_ino=%" PRIu64
          "\nserved_rdev=%" PRIu64 "\nserved_path=%s\n",
          lw_served_name (h->served_kind), h->served_dev, h->served_ino,
          h->served_rdev, h->served_path);
  printf ("converged=%d\n", mode == LW_MODE_NORMAL && head == tail
          && dirty == 0 && pending == 0);
  lwc_detach (c);
  return 0;
}

static void
usage (FILE *fp)
{
  fprintf (fp,
           "usage: lw-mirror [--dir=DIR] [--delay-us=N] [--state=FILE]\n"
           "                 [--max-seconds=N] UNIT DEVICE IMAGE\n"
           "       lw-mirror --stat [--dir=DIR] UNIT\n");
}

int
main (int argc, char **argv)
{
  static const struct option opts[] = {
    { "dir", required_argument, NULL, 'd' },
    { "delay-us", required_argument, NULL, 'w' },
    { "state", required_argument, NULL, 's' },
    { "max-seconds", required_argument, NULL, 'm' },
    { "stat", no_argument, NULL, 'S' },
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *dir = NULL;
  struct mirror m = { .stop = &stop };
  unsigned max_seconds = 0;
  bool stat_only = false;
  unsigned unit;
  struct sigaction sa = { .sa_handler = on_signal };
  int c;
  enum lwf_end r;
  unsigned attaches = 0;

  while ((c = getopt_long (argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'd': dir = optarg; break;
    case 'w': m.delay_us = strtoul (optarg, NULL, 0); break;
    case 's': m.state_path = optarg; break;
    case 'm': max_seconds = strtoul (optarg, NULL, 0); break;
    case 'S': stat_only = true; break;
    case 'q': m.quiet = true; break;
    case 'h': usage (stdout); return 0;
    default: usage (stderr); return 2;
    }
  }
  if (optind >= argc || (!stat_only && argc - optind != 3)) {
    usage (stderr);
    return 2;
  }
  unit = strtoul (argv[optind], NULL, 10);
  if (stat_only)
    return do_stat (dir, unit);

  m.dev_fd = open (argv[optind + 1], O_RDONLY | O_CLOEXEC);
  if (m.dev_fd == -1) {
    fprintf (stderr, "lw-mirror: %s: %s\n", argv[optind + 1], strerror (errno));
    return 1;
  }
  m.img_fd = open (argv[optind + 2], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (m.img_fd == -1) {
    fprintf (stderr, "lw-mirror: %s: %s\n", argv[optind + 2], strerror (errno));
    return 1;
  }
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGALRM, &sa, NULL);
  if (max_seconds)
    alarm (max_seconds);

  while (!stop) {
    char err[512];
    struct lwc *ch = lwc_attach (dir, unit, 0, err, sizeof err);
    if (ch == NULL) {
      if (errno == EBUSY || errno == EPERM || errno == EPROTO) {
        fprintf (stderr, "lw-mirror: %s\n", err);
        return 1;
      }
      usleep (20000);           /* nbdkit not (yet) there */
      continue;
    }
    attaches++;
    r = mirror_follow (&m, ch);
    lwc_detach (ch);
    if (r == LWF_END_SINK_FAILED) {
      fprintf (stderr, "lw-mirror: giving up after an error\n");
      return 1;
    }
    if (r == LWF_END_CHANNEL_GONE)
      fprintf (stderr, "lw-mirror: channel gone; reattaching\n");
  }
  mirror_free (&m);
  fprintf (stderr, "lw-mirror: done: attaches=%u scans=%" PRIu64
           " catchups=%" PRIu64 " lives=%" PRIu64 " records=%" PRIu64
           " copied=%" PRIu64 "\n", attaches, m.n_scans, m.n_catchups,
           m.n_lives, m.n_records, m.n_copied);
  return 0;
}
