/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of lbd's kept region hashes (scancache.c), on a real file:
 *   - only whole, aligned 4 MiB regions of one hash are kept (a 64 KiB
 *     or a clipped last request neither is kept nor fixes the table's
 *     size);
 *   - a write forgets exactly the regions it touches; a resize all;
 *   - the next session keeps them only if the file is as the last one
 *     left it (a write by anyone else, a new file, another size) and the
 *     key is the same; the seed stays while the hashes do;
 *   - no seal (a session that did not end) keeps nothing.
 */

#include <config.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "scancache.h"
#include "../tests/tap.h"

#define R SCANCACHE_REGION
#define SIZE (10ull * R + 12345)        /* 10 whole regions and a tail */

static struct scancache sc;
static struct lb_hash_key key;
static uint8_t h[LBP_HASH_SIZE], out[LBP_HASH_SIZE];

/* A session on FD: begin, keyed with KEY; the seed into SEED. */
static void
session (int fd, uint64_t size, uint8_t seed[LBP_HASH_SEED_SIZE])
{
  tap_ok (scancache_begin (&sc, fd, size, seed) == 0, "a session begins");
  scancache_keyed (&sc, &key);
}

static int
kept (void)
{
  int n = 0;
  for (uint64_t i = 0; i < 10; i++)
    n += scancache_lookup (&sc, i * R, R, R, out);
  return n;
}

int
main (void)
{
  const char *dir = getenv ("TMPDIR");
  char path[4096];
  uint8_t seed[LBP_HASH_SEED_SIZE], seed2[LBP_HASH_SEED_SIZE];
  struct timespec pause = { 0, 20 * 1000 * 1000 };
  int fd;

  /* mkstemp's template: the Xs become a unique name. */
  snprintf (path, sizeof path, "%s/test-scancache.XXXXXX",
            dir && *dir ? dir : "/tmp");
  fd = mkstemp (path);

  if (fd == -1 || ftruncate (fd, SIZE) == -1) {
    perror (path);
    return 1;
  }
  memset (key.secret, 7, sizeof key.secret);
  memset (h, 0xab, sizeof h);

  session (fd, SIZE, seed);
  scancache_store (&sc, 0, 64 << 10, 64 << 10, h);
  scancache_store (&sc, 10 * R, SIZE - 10 * R, R, h);
  tap_ok (sc.n == 0, "a 64 KiB request and the clipped last region are "
          "not kept, and make no table");
  scancache_store (&sc, R / 2, R, R, h);
  scancache_store (&sc, R, R, 64 << 10, h);
  tap_ok (sc.n == 0, "nor an unaligned region, nor a region in 64 KiB "
          "blocks");
  for (uint64_t i = 0; i < 10; i++)
    scancache_store (&sc, i * R, R, R, h);
  tap_ok (sc.n == 10 && kept () == 10, "ten whole regions kept");
  tap_ok (scancache_lookup (&sc, 3 * R, R, R, out)
          && memcmp (out, h, sizeof h) == 0, "a kept hash is what was stored");
  tap_ok (!scancache_lookup (&sc, 3 * R, R, 64 << 10, out),
          "asked in other blocks: not from the table");

  scancache_forget (&sc, 2 * R + R - 1, 2);     /* regions 2 and 3 */
  tap_ok (kept () == 8 && !scancache_lookup (&sc, 2 * R, R, R, out)
          && !scancache_lookup (&sc, 3 * R, R, R, out),
          "a 2-byte write across a region boundary forgets both regions");
  scancache_forget (&sc, 10 * R, 100);          /* the tail */
  tap_ok (kept () == 8, "a write in the tail forgets nothing kept");
  scancache_seal (&sc, fd);

  /* The next session, the file untouched. */
  session (fd, SIZE, seed2);
  tap_ok (memcmp (seed, seed2, sizeof seed) == 0,
          "the seed stays with the kept hashes");
  tap_ok (kept () == 8, "an untouched file keeps its hashes");
  scancache_seal (&sc, fd);

  /* Someone else writes the file between sessions. */
  nanosleep (&pause, NULL);
  if (pwrite (fd, "x", 1, 5 * R) != 1)
    return 1;
  session (fd, SIZE, seed2);
  tap_ok (kept () == 0, "a write by another program between sessions: "
          "nothing kept");
  for (uint64_t i = 0; i < 10; i++)
    scancache_store (&sc, i * R, R, R, h);
  scancache_seal (&sc, fd);

  /* Another key. */
  memset (key.secret, 8, sizeof key.secret);
  session (fd, SIZE, seed2);
  tap_ok (kept () == 0, "another key: nothing kept");
  for (uint64_t i = 0; i < 10; i++)
    scancache_store (&sc, i * R, R, R, h);

  /* No seal: the session did not end as owner. */
  session (fd, SIZE, seed2);
  tap_ok (kept () == 0, "no seal: nothing kept");
  for (uint64_t i = 0; i < 10; i++)
    scancache_store (&sc, i * R, R, R, h);
  scancache_seal (&sc, fd);

  /* Another size, then a resize within a session. */
  session (fd, SIZE + R, seed2);
  tap_ok (kept () == 0, "another size: nothing kept");
  for (uint64_t i = 0; i < 10; i++)
    scancache_store (&sc, i * R, R, R, h);
  tap_ok (kept () == 10, "kept again");
  scancache_resized (&sc, SIZE);
  tap_ok (kept () == 0, "a resize forgets everything");

  scancache_destroy (&sc);
  close (fd);
  unlink (path);
  return tap_done ();
}
