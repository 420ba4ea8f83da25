/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: a second core for a scan's region hashes.
 *
 * A scan hashes each 4 MiB region of the device while lbd hashes its
 * image's (lb/sink.h).  Where lbd answers from the hashes it kept
 * (lbd/scancache.h), or runs on another machine, lb's reading and
 * hashing is the whole scan, on one core.  The hasher is one thread
 * that takes a region's hash off the sink: the sink hands it a region
 * when it is idle (lb_hasher_give) and hashes the next one itself, so
 * that the two alternate; a region is waited for (lb_hasher_wait) when
 * its answer from lbd is compared.  One job at a time, no queue: if the
 * thread is busy, the caller hashes.
 */

#ifndef LB_HASHER_H
#define LB_HASHER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lb_hash.h"

/* One region to hash: lb_hash_range's arguments, and its outcome. */
struct lb_hasher_job {
  const struct lb_hash_key *key;
  int fd;
  uint64_t off, len;
  uint32_t hash_block;
  uint8_t *out;
  int r, err;                   /* lb_hash_range's result and errno */
  bool done;
};

struct lb_hasher {
  bool running, stopping;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;          /* a job given, or one done */
  struct lb_hasher_job *job;    /* given, not yet done; NULL: idle */
};

/* Start the thread.  0, or -1 (then lb_hasher_give always says no). */
extern int lb_hasher_start (struct lb_hasher *h);

/* Stop it, after the job it is hashing, if any (its caller's memory
 * must stay until then).
 */
extern void lb_hasher_stop (struct lb_hasher *h);

/* Hand J to the thread if it is idle: true; false: hash it yourself. */
extern bool lb_hasher_give (struct lb_hasher *h, struct lb_hasher_job *j);

/* Wait until J, given, is done. */
extern void lb_hasher_wait (struct lb_hasher *h, struct lb_hasher_job *j);

#endif /* LB_HASHER_H */
