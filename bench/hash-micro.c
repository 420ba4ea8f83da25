/* SPDX-License-Identifier: BSD-3-Clause */
/* hash-micro: throughput of the candidate scan hashes on this machine.
 *
 *   bench/hash-micro [MIB] [REPS] [FILE]     (built by bench/scan-bench.sh)
 *
 * Each candidate hashes MIB MiB (default 256) of random data held in
 * memory, in 64 KiB blocks (the scan's default --hash-block) and as one
 * 4 MiB region (the scan's first level), REPS times (default 5); the
 * median GB/s of each is printed.  Candidates: SHA-256 and GMAC-AES-128
 * through GnuTLS (what lb and lbd already link), XXH3-128 keyed with a
 * 192-byte secret (libxxhash, what the scan uses: common/lb_hash.h),
 * the same compiled for AVX2 (common/lb_hash_avx2.c, where the CPU has
 * it), BLAKE2b-256 keyed (libb2, only if built with it: HAVE_LIBB2),
 * and a memcpy of the same bytes for scale (what a read from page cache
 * costs at least).  With FILE (in the page cache): the seconds of
 * reading it whole in 64 KiB preads, and of lb_hash_range over it in
 * 4 MiB blocks (the scan's first level: read and hash, as lb and lbd
 * do), medians of REPS.  Not part of make check.  doc/hashing.md has
 * the numbers and the choice.
 */

#include <config.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#define XXH_INLINE_ALL
#include <xxhash.h>
#ifdef HAVE_LIBB2
#include <blake2.h>
#endif

#include <unistd.h>

#include "lb_hash.h"
#include "lb_time.h"

static uint8_t secret[192], key[32], iv[12], sink[64];

typedef void (*hash_fn) (const uint8_t *p, size_t n, uint8_t *out);

static void
h_sha256 (const uint8_t *p, size_t n, uint8_t *out)
{
  gnutls_hash_fast (GNUTLS_DIG_SHA256, p, n, out);
}

static void
h_xxh3 (const uint8_t *p, size_t n, uint8_t *out)
{
  XXH128_hash_t h = XXH3_128bits_withSecret (p, n, secret, sizeof secret);
  memcpy (out, &h, sizeof h);
}

static void
h_gmac (const uint8_t *p, size_t n, uint8_t *out)
{
  gnutls_hmac_hd_t h;

  gnutls_hmac_init (&h, GNUTLS_MAC_AES_GMAC_128, key, 16);
  gnutls_hmac_set_nonce (h, iv, sizeof iv);
  gnutls_hmac (h, p, n);
  gnutls_hmac_deinit (h, out);
}

static void
h_xxh3_avx2 (const uint8_t *p, size_t n, uint8_t *out)
{
  static XXH3_state_t st;
  lb_hash_avx2_reset (&st, secret, sizeof secret);
  lb_hash_avx2_update (&st, p, n);
  lb_hash_avx2_digest (&st, out);
}

#ifdef HAVE_LIBB2
static void
h_blake2b (const uint8_t *p, size_t n, uint8_t *out)
{
  blake2b (out, p, key, 32, n, sizeof key);
}
#endif

static void
h_memcpy (const uint8_t *p, size_t n, uint8_t *out)
{
  static uint8_t buf[4u << 20];
  memcpy (buf, p, n);
  out[0] ^= buf[n - 1];
}

static int
cmp (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static void
run (const char *name, hash_fn fn, const uint8_t *data, size_t size, int reps)
{
  static const size_t blocks[] = { 64u << 10, 4u << 20 };
  size_t i;

  printf ("%-12s", name);
  for (i = 0; i < 2; i++) {
    double gbs[32];
    int r;
    for (r = 0; r < reps; r++) {
      uint64_t t0 = lb_now_ns ();
      size_t off;
      for (off = 0; off < size; off += blocks[i])
        fn (data + off, blocks[i], sink);
      gbs[r] = (double) size / (double) (lb_now_ns () - t0);
    }
    qsort (gbs, reps, sizeof *gbs, cmp);
    printf ("  %5zu KiB blocks: %6.2f GB/s (min %.2f max %.2f)",
            blocks[i] >> 10, gbs[reps / 2], gbs[0], gbs[reps - 1]);
  }
  printf ("\n");
}

/* FILE read in 64 KiB preads, then hashed by lb_hash_range: seconds. */
static void
file_run (const char *path, int reps)
{
  static uint8_t buf[64u << 10], out[4096 * LB_HASH_SIZE];
  struct lb_hash_key k;
  double rd[32], hs[32];
  int fd = open (path, O_RDONLY), r;
  off_t size = fd == -1 ? -1 : lseek (fd, 0, SEEK_END);

  if (size <= 0 || size > (off_t) 4096 * (4 << 20)) {
    fprintf (stderr, "hash-micro: %s: cannot read it, or over 16 GiB\n", path);
    return;
  }
  memcpy (k.secret, secret, sizeof k.secret);
  for (r = 0; r < reps; r++) {
    uint64_t t0 = lb_now_ns (), off;
    for (off = 0; off < (uint64_t) size; off += sizeof buf)
      if (pread (fd, buf, sizeof buf, off) < 0)
        break;
    rd[r] = (lb_now_ns () - t0) / 1e9;
    t0 = lb_now_ns ();
    lb_hash_range (&k, fd, 0, size, 4u << 20, LB_EOF_ZERO, out);
    hs[r] = (lb_now_ns () - t0) / 1e9;
  }
  qsort (rd, reps, sizeof *rd, cmp);
  qsort (hs, reps, sizeof *hs, cmp);
  printf ("%s, %jd bytes: 64 KiB preads %.3f s (min %.3f max %.3f); "
          "lb_hash_range (%s) %.3f s (min %.3f max %.3f)\n", path,
          (intmax_t) size, rd[reps / 2], rd[0], rd[reps - 1], lb_hash_name (),
          hs[reps / 2], hs[0], hs[reps - 1]);
  close (fd);
}

int
main (int argc, char **argv)
{
  size_t mib = argc > 1 ? strtoul (argv[1], NULL, 10) : 256;
  int reps = argc > 2 ? atoi (argv[2]) : 5;
  size_t size = mib << 20;
  uint8_t *data = malloc (size);

  if (data == NULL || mib == 0 || reps < 1 || reps > 32) {
    fprintf (stderr, "usage: hash-micro [MIB] [REPS (1-32)]\n");
    return 1;
  }
  gnutls_rnd (GNUTLS_RND_NONCE, data, size);
  gnutls_rnd (GNUTLS_RND_NONCE, secret, sizeof secret);
  gnutls_rnd (GNUTLS_RND_NONCE, key, sizeof key);
  printf ("%zu MiB in memory, median of %d\n", mib, reps);
  run ("memcpy", h_memcpy, data, size, reps);
  run ("xxh3-128", h_xxh3, data, size, reps);
  if (lb_hash_avx2_usable ())
    run ("xxh3 avx2", h_xxh3_avx2, data, size, reps);
  run ("gmac-aes128", h_gmac, data, size, reps);
#ifdef HAVE_LIBB2
  run ("blake2b-256", h_blake2b, data, size, reps);
#endif
  run ("sha-256", h_sha256, data, size, reps);
  free (data);
  if (argc > 3)
    file_run (argv[3], reps);
  return 0;
}
