/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: the scan's hash, keyed per session.
 *
 * A scan compares the device with the image by hashes (lb/scan.c asks,
 * lbd/apply.c answers; doc/hashing.md says why this hash and what the
 * numbers were).  The hash is XXH3-128 with a 192-byte secret that
 * nobody outside the session knows: it is derived from the client's
 * pre-shared key and a seed lbd picks at random for each session and
 * sends in WELCOME.  Someone who controls the data on the partition and
 * knows the image, but not the key, cannot choose a block that hashes
 * like the image's and so be skipped by the scan.
 *
 * lb_hash_range is the one call that hashes part of a file: lb's scan
 * and lbd's answers use it, and so can anything else that compares a
 * device with an image over a session (lb --verify).
 */

#ifndef LIVEBACKUP_LB_HASH_H
#define LIVEBACKUP_LB_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "lb_io.h"
#include "lb_key.h"

#define LB_HASH_SIZE        16    /* XXH3-128, canonical (big-endian) */
#define LB_HASH_SEED_SIZE   32    /* WELCOME's payload */
#define LB_HASH_SECRET_SIZE 192   /* XXH3's default secret size */

struct lb_hash_key {
  uint8_t secret[LB_HASH_SECRET_SIZE];
};

/* The session's key: HKDF-SHA-256 with PSK as the input key, SEED as
 * the salt and "livebackup scan hash 1" as the info, 192 bytes.  0, or
 * -1 with ERR.
 */
extern int lb_hash_key_derive (struct lb_hash_key *k, const struct lb_key *psk,
                               const uint8_t seed[LB_HASH_SEED_SIZE],
                               char *err, size_t errlen);
extern void lb_hash_key_wipe (struct lb_hash_key *k);

/* LEN bytes of DATA hashed with K into OUT. */
extern void lb_hash_buf (const struct lb_hash_key *k, const void *data,
                         size_t len, uint8_t out[LB_HASH_SIZE]);

/* Hash [OFF, OFF+LEN) of FD in blocks of HASH_BLOCK bytes (the last one
 * clipped to LEN) with K: ceil (LEN / HASH_BLOCK) hashes of
 * LB_HASH_SIZE bytes into OUT, each equal to lb_hash_buf of that
 * block's bytes.  Past the end of FD's file: EOF (lb_io.h).  Reads in
 * pieces that stay in the cache, with no buffer of the caller's.
 * 0, or -1 with errno (lb_pread_all's, or ENOMEM).
 */
extern int lb_hash_range (const struct lb_hash_key *k, int fd, uint64_t off,
                          uint64_t len, uint32_t hash_block,
                          enum lb_io_eof eof, uint8_t *out);

/* Which implementation lb_hash_range runs ("xxh3-128 avx2" or
 * "xxh3-128"), for logs and the bench.
 */
extern const char *lb_hash_name (void);

/* lb_hash_avx2.c: the same XXH3 compiled for AVX2, where the compiler
 * can and the CPU has it.  The streaming calls of xxhash.h on a state
 * from XXH3_createState.
 */
extern int lb_hash_avx2_usable (void);
extern void lb_hash_avx2_reset (void *state, const void *secret, size_t n);
extern void lb_hash_avx2_update (void *state, const void *p, size_t n);
extern void lb_hash_avx2_digest (const void *state, uint8_t out[LB_HASH_SIZE]);

#endif /* LIVEBACKUP_LB_HASH_H */
