/* SPDX-License-Identifier: BSD-3-Clause */
/* Test consumer: mirror a livewatch unit into a local image file.
 *
 * The sink behind lw_follow that plays lb and lbd in one process: it
 * applies records to IMAGE, copies dirty blocks from DEVICE, and keeps
 * "epoch seq" in a state file beside the image, written after every
 * fdatasync, so that a restarted mirror continues where the durable
 * image stands instead of rescanning.
 */

#ifndef LB_TESTS_MIRROR_H
#define LB_TESTS_MIRROR_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "lw_consumer.h"
#include "lw_follow.h"

struct mirror {
  int dev_fd;                   /* the device nbdkit serves */
  int img_fd;                   /* the mirror */
  const char *state_path;       /* NULL: none (always full scan) */
  unsigned delay_us;            /* per record: play a slow consumer */
  volatile sig_atomic_t *stop;
  bool quiet;

  /* Filled in while following. */
  uint64_t epoch;
  enum lwf_phase phase;
  uint64_t n_scans, n_catchups, n_lives, n_records, n_copied;
  void *buf;
  size_t buf_len;
};

/* Follow C into the image until *STOP or the channel goes away.
 * Returns how lwf_run ended.
 */
extern enum lwf_end mirror_follow (struct mirror *m, struct lwc *c);

/* Free what following allocated. */
extern void mirror_free (struct mirror *m);

#endif
