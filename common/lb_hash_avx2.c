/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: XXH3 compiled for AVX2 (lb_hash.h).
 *
 * Debian's libxxhash is built for SSE2 only; with AVX2, XXH3 hashes
 * about twice as fast, which is what lets a scan keep up with reading
 * the page cache (doc/hashing.md).  Everything in this file is compiled
 * for AVX2 (GCC's target pragma), and lb_hash.c calls it only where
 * lb_hash_avx2_usable says the CPU has it.  Elsewhere (clang, other
 * architectures) it says no, and the library's code runs.
 */

#include <config.h>

#include <string.h>

#include "lb_hash.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("avx2")
#define XXH_INLINE_ALL
#include <xxhash.h>

int
lb_hash_avx2_usable (void)
{
  __builtin_cpu_init ();
  return __builtin_cpu_supports ("avx2");
}

void
lb_hash_avx2_reset (void *state, const void *secret, size_t n)
{
  XXH3_128bits_reset_withSecret (state, secret, n);
}

void
lb_hash_avx2_update (void *state, const void *p, size_t n)
{
  XXH3_128bits_update (state, p, n);
}

void
lb_hash_avx2_digest (const void *state, uint8_t out[LB_HASH_SIZE])
{
  XXH128_canonical_t c;

  XXH128_canonicalFromHash (&c, XXH3_128bits_digest (state));
  memcpy (out, c.digest, LB_HASH_SIZE);
}
#else
int
lb_hash_avx2_usable (void)
{
  return 0;
}

void
lb_hash_avx2_reset (void *state, const void *secret, size_t n)
{
  (void) state; (void) secret; (void) n;
}

void
lb_hash_avx2_update (void *state, const void *p, size_t n)
{
  (void) state; (void) p; (void) n;
}

void
lb_hash_avx2_digest (const void *state, uint8_t out[LB_HASH_SIZE])
{
  (void) state;
  memset (out, 0, LB_HASH_SIZE);
}
#endif
