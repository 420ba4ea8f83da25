/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests: the scan's keyed hash (common/lb_hash.h). */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "lb_hash.h"
#include "tap.h"

int
main (void)
{
  static uint8_t data[(1u << 20) + 12345];
  uint8_t seed[LB_HASH_SEED_SIZE] = { 1 }, h1[LB_HASH_SIZE], h2[LB_HASH_SIZE];
  uint8_t out[32 * LB_HASH_SIZE];
  struct lb_key psk = { .psk = { 7 } }, psk2 = { .psk = { 8 } };
  struct lb_hash_key k, k2, k3;
  char err[200], path[] = "/tmp/test-hash-XXXXXX";
  size_t i;
  int fd, ok;

  for (i = 0; i < sizeof data; i++)
    data[i] = (uint8_t) tap_rand ();
  tap_ok (lb_hash_key_derive (&k, &psk, seed, err, sizeof err) == 0,
          "a key is derived");
  lb_hash_key_derive (&k2, &psk, seed, err, sizeof err);
  tap_ok (memcmp (k.secret, k2.secret, sizeof k.secret) == 0,
          "the same PSK and seed give the same key (lb's and lbd's)");
  seed[31] ^= 1;
  lb_hash_key_derive (&k2, &psk, seed, err, sizeof err);
  lb_hash_key_derive (&k3, &psk2, seed, err, sizeof err);
  seed[31] ^= 1;
  tap_ok (memcmp (k.secret, k2.secret, sizeof k.secret) != 0
          && memcmp (k2.secret, k3.secret, sizeof k.secret) != 0,
          "another seed, or another PSK, gives another key");
  lb_hash_buf (&k, data, 65536, h1);
  lb_hash_buf (&k2, data, 65536, h2);
  tap_ok (memcmp (h1, h2, sizeof h1) != 0,
          "the same block hashes differently under another key");
  {
    XXH128_canonical_t c;
    XXH128_canonicalFromHash (&c, XXH3_128bits_withSecret (data, 65536,
                                                           k.secret,
                                                           sizeof k.secret));
    tap_ok (memcmp (h1, c.digest, sizeof h1) == 0,
            "the hash is libxxhash's XXH3-128 with the secret (%s here)",
            lb_hash_name ());
  }

  fd = mkstemp (path);
  if (fd == -1 || write (fd, data, sizeof data) != (ssize_t) sizeof data) {
    perror (path);
    return 1;
  }
  unlink (path);
  /* 1 MiB + 12345 bytes in 64 KiB blocks: 16 whole, one short. */
  tap_ok (lb_hash_range (&k, fd, 0, sizeof data, 65536, LB_EOF_FAIL,
                         out) == 0, "a range is hashed");
  ok = 1;
  for (i = 0; i < 17; i++) {
    size_t n = sizeof data - i * 65536 < 65536 ? sizeof data - i * 65536
                                                : 65536;
    lb_hash_buf (&k, data + i * 65536, n, h1);
    ok &= memcmp (h1, out + i * LB_HASH_SIZE, LB_HASH_SIZE) == 0;
  }
  tap_ok (ok, "each block's hash is lb_hash_buf's of its bytes, the last "
          "one clipped");
  /* One region hash over pieces (lb_hash_range reads 64 KiB at a time)
   * equals the hash of the whole.
   */
  lb_hash_range (&k, fd, 4096, 1u << 20, 4u << 20, LB_EOF_FAIL, out);
  lb_hash_buf (&k, data + 4096, 1u << 20, h1);
  tap_ok (memcmp (h1, out, LB_HASH_SIZE) == 0,
          "a region read in pieces hashes as a whole");
  tap_ok (lb_hash_range (&k, fd, sizeof data - 100, 4096, 4096, LB_EOF_FAIL,
                         out) == -1,
          "past the end of the file: an error under LB_EOF_FAIL");
  {
    uint8_t tail[4096] = { 0 };
    memcpy (tail, data + sizeof data - 100, 100);
    lb_hash_buf (&k, tail, 4096, h1);
  }
  tap_ok (lb_hash_range (&k, fd, sizeof data - 100, 4096, 4096, LB_EOF_ZERO,
                         out) == 0 && memcmp (out, h1, LB_HASH_SIZE) == 0,
          "past the end under LB_EOF_ZERO: reads as zeroes");
  if (lb_hash_avx2_usable ()) {
    void *st = XXH3_createState ();
    lb_hash_avx2_reset (st, k.secret, sizeof k.secret);
    lb_hash_avx2_update (st, data, 1000);
    lb_hash_avx2_update (st, data + 1000, sizeof data - 1000);
    lb_hash_avx2_digest (st, h1);
    XXH3_freeState (st);
    {
      XXH128_canonical_t c;
      XXH128_canonicalFromHash (&c, XXH3_128bits_withSecret (data,
                                                  sizeof data, k.secret,
                                                  sizeof k.secret));
      tap_ok (memcmp (h1, c.digest, LB_HASH_SIZE) == 0,
              "the AVX2 build hashes as the library does");
    }
  }
  else
    tap_ok (1, "# SKIP no AVX2 here");
  close (fd);
  lb_hash_key_wipe (&k);
  return tap_done ();
}
