/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: the scan's hash, keyed per session.  See lb_hash.h. */

#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <xxhash.h>

#include "lb_err.h"
#include "lb_hash.h"

/* Read so much at a time: a piece stays in the cache between the read
 * and the hash (half of one core's L2 here; 64 KiB pieces measured
 * about 10 % slower, 4 MiB ones slower still: doc/hashing.md).
 */
#define LB_HASH_PIECE (256u << 10)

static const char lb_hash_info[] = "livebackup scan hash 1";

/* The streaming calls: the library's (SSE2) or lb_hash_avx2.c's. */
struct lb_hash_impl {
  const char *name;
  void (*reset) (void *state, const void *secret, size_t n);
  void (*update) (void *state, const void *p, size_t n);
  void (*digest) (const void *state, uint8_t out[LB_HASH_SIZE]);
};

static void
lb_hash_lib_reset (void *state, const void *secret, size_t n)
{
  XXH3_128bits_reset_withSecret (state, secret, n);
}

static void
lb_hash_lib_update (void *state, const void *p, size_t n)
{
  XXH3_128bits_update (state, p, n);
}

static void
lb_hash_lib_digest (const void *state, uint8_t out[LB_HASH_SIZE])
{
  XXH128_canonical_t c;

  XXH128_canonicalFromHash (&c, XXH3_128bits_digest (state));
  memcpy (out, c.digest, LB_HASH_SIZE);
}

static struct lb_hash_impl lb_hash_impl = {
  "xxh3-128", lb_hash_lib_reset, lb_hash_lib_update, lb_hash_lib_digest,
};
static pthread_once_t lb_hash_once = PTHREAD_ONCE_INIT;

static void
lb_hash_choose (void)
{
  if (lb_hash_avx2_usable ())
    lb_hash_impl = (struct lb_hash_impl) {
      "xxh3-128 avx2", lb_hash_avx2_reset, lb_hash_avx2_update,
      lb_hash_avx2_digest,
    };
}

static const struct lb_hash_impl *
lb_hash_get (void)
{
  pthread_once (&lb_hash_once, lb_hash_choose);
  return &lb_hash_impl;
}

const char *
lb_hash_name (void)
{
  return lb_hash_get ()->name;
}

int
lb_hash_key_derive (struct lb_hash_key *k, const struct lb_key *psk,
                    const uint8_t seed[LB_HASH_SEED_SIZE],
                    char *err, size_t errlen)
{
  const gnutls_datum_t key = { (unsigned char *) psk->psk, sizeof psk->psk };
  const gnutls_datum_t info = { (unsigned char *) lb_hash_info,
                                sizeof lb_hash_info - 1 };
  const gnutls_datum_t salt = { (unsigned char *) seed, LB_HASH_SEED_SIZE };
  uint8_t prk[32];
  const gnutls_datum_t prkd = { prk, sizeof prk };
  int r;

  r = gnutls_hkdf_extract (GNUTLS_MAC_SHA256, &key, &salt, prk);
  if (r == 0)
    r = gnutls_hkdf_expand (GNUTLS_MAC_SHA256, &prkd, &info, k->secret,
                            sizeof k->secret);
  gnutls_memset (prk, 0, sizeof prk);
  if (r < 0) {
    lb_errf (err, errlen, "deriving the scan hash's key: %s",
             gnutls_strerror (r));
    errno = EINVAL;
    return -1;
  }
  return 0;
}

void
lb_hash_key_wipe (struct lb_hash_key *k)
{
  gnutls_memset (k->secret, 0, sizeof k->secret);
}

void
lb_hash_buf (const struct lb_hash_key *k, const void *data, size_t len,
             uint8_t out[LB_HASH_SIZE])
{
  const struct lb_hash_impl *h = lb_hash_get ();
  XXH3_state_t *st = XXH3_createState ();

  /* Only allocation can fail; a hash of nothing then never matches. */
  if (st == NULL) {
    memset (out, 0xff, LB_HASH_SIZE);
    return;
  }
  h->reset (st, k->secret, sizeof k->secret);
  h->update (st, data, len);
  h->digest (st, out);
  XXH3_freeState (st);
}

int
lb_hash_range (const struct lb_hash_key *k, int fd, uint64_t off,
               uint64_t len, uint32_t hash_block, enum lb_io_eof eof,
               uint8_t *out)
{
  const struct lb_hash_impl *h = lb_hash_get ();
  XXH3_state_t *st = XXH3_createState ();
  uint8_t *buf = malloc (LB_HASH_PIECE);
  int r = 0, e = ENOMEM;

  if (st == NULL || buf == NULL)
    r = -1;
  while (r == 0 && len > 0) {
    uint64_t b = len < hash_block ? len : hash_block;
    h->reset (st, k->secret, sizeof k->secret);
    for (uint64_t at = 0; at < b; ) {
      size_t n = b - at < LB_HASH_PIECE ? b - at : LB_HASH_PIECE;
      if (lb_pread_all (fd, buf, n, off + at, eof) == -1) {
        e = errno;
        r = -1;
        break;
      }
      h->update (st, buf, n);
      at += n;
    }
    h->digest (st, out);
    out += LB_HASH_SIZE;
    off += b; len -= b;
  }
  free (buf);
  XXH3_freeState (st);
  if (r == -1)
    errno = e;
  return r;
}
