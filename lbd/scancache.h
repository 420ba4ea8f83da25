/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: the region hashes of a client's image, kept between sessions.
 *
 * A scan compares the device and the image region by region (one hash
 * of each 4 MiB region first, lb/sink.h).  Both sides read everything,
 * so on one machine a scan costs two reads of the partition.  lbd
 * keeps the hashes it computed for regions, and answers a scan's
 * region request from them while nothing changed the region since, so
 * that a scan after a client's reboot reads the image only where it
 * changed.
 *
 * What keeps an entry true (doc/hashing.md, "Region hashes kept"):
 *   - every change lbd makes to the image goes through image.c, which
 *     forgets the regions it touches (scancache_forget) before it
 *     writes, and everything on a resize;
 *   - between sessions nobody else may change the file: when a session
 *     ends, scancache_seal records the file's identity and times
 *     (device, inode, size, mtime, ctime); the next session's
 *     scancache_begin compares them and forgets everything on any
 *     difference (an operator's copy put back, a restore into it);
 *   - the hashes are keyed (lb_hash.h): the seed is kept with them and
 *     handed to each session's WELCOME for as long as they are kept
 *     (SCANCACHE_MAX_AGE at most, then a new seed and none kept), and
 *     a session whose derived key differs (another PSK) forgets them;
 *   - only a session in the scanning phase is answered from them
 *     (apply.c): lb --verify, which exists to read the image, never is.
 * A change made to the file by another program while a session runs
 * is not seen here (it is not by lbd either); lb --verify finds it.
 *
 * Used only by the session that owns the client's image (client.h:
 * owner), so it has no lock of its own.  Memory: 16 bytes and one flag
 * per region, 4 MiB per TiB.
 */

#ifndef LBD_SCANCACHE_H
#define LBD_SCANCACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <sys/types.h>

#include "lb_hash.h"
#include "lb_proto.h"

#define SCANCACHE_MAX_AGE (24 * 3600)   /* seconds a seed is kept */
/* The one region length kept: a scan's first level (LB_SCAN_REGION in
 * lb/sink.h).  Fixed here, not taken from requests, so that the table
 * is always 16 bytes a region, 4 MiB per TiB.
 */
#define SCANCACHE_REGION (4u << 20)

struct scancache {
  bool seeded;
  uint8_t seed[LBP_HASH_SEED_SIZE];
  time_t born;                  /* when SEED was drawn */
  uint8_t key_check[32];        /* SHA-256 of the key derived from it */
  bool keyed;
  uint64_t size;                /* the image size the table covers */
  size_t n;                     /* whole regions in SIZE; 0: no table */
  uint8_t *hash;                /* N x LBP_HASH_SIZE */
  uint8_t *valid;               /* N flags */
  bool sealed;                  /* ID holds the file as a session left it */
  struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
  } id;
  /* This session's requests answered from the table, and the rest. */
  uint64_t hits, misses;
};

/* Forget everything and free the table (the seed and size stay). */
extern void scancache_free (struct scancache *sc);
/* The same, and wipe the seed and key check (the client goes). */
extern void scancache_destroy (struct scancache *sc);

/* A session opened the image FD (SIZE bytes): forget everything unless
 * the file is as the last session left it; a seed for WELCOME into
 * SEED (a new one when none is kept or it is too old).  0, or -1 if no
 * random seed could be drawn.
 */
extern int scancache_begin (struct scancache *sc, int fd, uint64_t size,
                            uint8_t seed[LBP_HASH_SEED_SIZE]);

/* The session derived KEY from the seed: forget everything if it is not
 * the key the table was made with.
 */
extern void scancache_keyed (struct scancache *sc,
                             const struct lb_hash_key *key);

/* [OFF, OFF+LEN) of the image is about to change; SC may be NULL.  A
 * size change forgets everything (scancache_resized).
 */
extern void scancache_forget (struct scancache *sc, uint64_t off,
                              uint64_t len);
extern void scancache_resized (struct scancache *sc, uint64_t size);

/* The hash of region [OFF, OFF+LEN) in blocks of HASH_BLOCK, if kept:
 * true and OUT set.  Only whole, aligned regions of SCANCACHE_REGION
 * bytes, one hash each.
 */
extern bool scancache_lookup (struct scancache *sc, uint64_t off,
                              uint64_t len, uint32_t hash_block,
                              uint8_t out[LBP_HASH_SIZE]);

/* Keep HASH, just computed from the image, of such a region. */
extern void scancache_store (struct scancache *sc, uint64_t off,
                             uint64_t len, uint32_t hash_block,
                             const uint8_t hash[LBP_HASH_SIZE]);

/* The session ends with the image FD as it leaves it (after its last
 * write): record its identity for the next scancache_begin.
 */
extern void scancache_seal (struct scancache *sc, int fd);

#endif /* LBD_SCANCACHE_H */
