/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: the region hashes of a client's image.  See scancache.h. */

#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "lb_log.h"
#include "scancache.h"

void
scancache_free (struct scancache *sc)
{
  free (sc->hash);
  free (sc->valid);
  sc->hash = sc->valid = NULL;
  sc->n = 0;
}

void
scancache_destroy (struct scancache *sc)
{
  scancache_free (sc);
  gnutls_memset (sc->seed, 0, sizeof sc->seed);
  gnutls_memset (sc->key_check, 0, sizeof sc->key_check);
  sc->seeded = sc->keyed = false;
}

static bool
scancache_same_file (const struct scancache *sc, const struct stat *st)
{
  return sc->sealed && st->st_dev == sc->id.dev && st->st_ino == sc->id.ino
         && st->st_size == sc->id.size
         && st->st_mtim.tv_sec == sc->id.mtime.tv_sec
         && st->st_mtim.tv_nsec == sc->id.mtime.tv_nsec
         && st->st_ctim.tv_sec == sc->id.ctime.tv_sec
         && st->st_ctim.tv_nsec == sc->id.ctime.tv_nsec;
}

int
scancache_begin (struct scancache *sc, int fd, uint64_t size,
                 uint8_t seed[LBP_HASH_SEED_SIZE])
{
  struct stat st;
  time_t now = time (NULL);

  sc->hits = sc->misses = 0;
  if (fstat (fd, &st) == -1 || !scancache_same_file (sc, &st)
      || size != sc->size) {
    if (sc->n > 0)
      lb_debug ("scan hashes: the %zu kept are forgotten: %s", sc->n,
                size != sc->size ? "the image has another size"
                : "the image file changed since the last session");
    scancache_free (sc);
  }
  sc->sealed = false;
  if (!sc->seeded || now - sc->born >= SCANCACHE_MAX_AGE || now < sc->born) {
    scancache_free (sc);
    sc->keyed = false;
    if (gnutls_rnd (GNUTLS_RND_RANDOM, sc->seed, sizeof sc->seed) < 0) {
      sc->seeded = false;
      return -1;
    }
    sc->seeded = true;
    sc->born = now;
  }
  sc->size = size;
  memcpy (seed, sc->seed, sizeof sc->seed);
  return 0;
}

void
scancache_keyed (struct scancache *sc, const struct lb_hash_key *key)
{
  uint8_t check[32];

  /* A digest of the key, not the key: the secret is not kept here. */
  if (gnutls_hash_fast (GNUTLS_DIG_SHA256, key->secret, sizeof key->secret,
                        check) < 0) {
    scancache_free (sc);
    sc->keyed = false;
    return;
  }
  if (!sc->keyed || memcmp (sc->key_check, check, sizeof check) != 0) {
    scancache_free (sc);
    memcpy (sc->key_check, check, sizeof check);
    sc->keyed = true;
  }
}

void
scancache_forget (struct scancache *sc, uint64_t off, uint64_t len)
{
  uint64_t first, last;

  if (sc == NULL || sc->n == 0 || len == 0)
    return;
  first = off / SCANCACHE_REGION;
  last = (off + len - 1) / SCANCACHE_REGION;
  if (first >= sc->n)
    return;
  if (last >= sc->n)
    last = sc->n - 1;
  memset (sc->valid + first, 0, last - first + 1);
}

void
scancache_resized (struct scancache *sc, uint64_t size)
{
  if (sc == NULL)
    return;
  scancache_free (sc);
  sc->size = size;
}

/* Is [OFF, OFF+LEN) in blocks of HASH_BLOCK one whole region of the
 * image (SCANCACHE_REGION, aligned, inside SIZE)?  Its index into *I.
 */
static bool
scancache_region (const struct scancache *sc, uint64_t off, uint64_t len,
                  uint32_t hash_block, uint64_t *i)
{
  if (len != SCANCACHE_REGION || hash_block != SCANCACHE_REGION
      || off % SCANCACHE_REGION != 0 || off > sc->size
      || len > sc->size - off)
    return false;
  *i = off / SCANCACHE_REGION;
  return true;
}

bool
scancache_lookup (struct scancache *sc, uint64_t off, uint64_t len,
                  uint32_t hash_block, uint8_t out[LBP_HASH_SIZE])
{
  uint64_t i;

  /* Only region requests count: a scan's second level never could. */
  if (!scancache_region (sc, off, len, hash_block, &i))
    return false;
  if (sc->n == 0 || i >= sc->n || !sc->valid[i]) {
    sc->misses++;
    return false;
  }
  memcpy (out, sc->hash + i * LBP_HASH_SIZE, LBP_HASH_SIZE);
  sc->hits++;
  return true;
}

void
scancache_store (struct scancache *sc, uint64_t off, uint64_t len,
                 uint32_t hash_block, const uint8_t hash[LBP_HASH_SIZE])
{
  uint64_t i;

  if (!sc->keyed || !scancache_region (sc, off, len, hash_block, &i))
    return;
  if (sc->n == 0) {
    uint64_t n = sc->size / SCANCACHE_REGION;

    if (n == 0 || n > SIZE_MAX / LBP_HASH_SIZE)
      return;
    sc->hash = malloc (n * LBP_HASH_SIZE);
    sc->valid = calloc (n, 1);
    if (sc->hash == NULL || sc->valid == NULL) {
      scancache_free (sc);
      return;
    }
    sc->n = n;
  }
  if (i >= sc->n)
    return;
  memcpy (sc->hash + i * LBP_HASH_SIZE, hash, LBP_HASH_SIZE);
  sc->valid[i] = 1;
}

void
scancache_seal (struct scancache *sc, int fd)
{
  struct stat st;

  if (sc == NULL)
    return;
  sc->sealed = fstat (fd, &st) == 0;
  if (!sc->sealed) {
    scancache_free (sc);
    return;
  }
  sc->id.dev = st.st_dev;
  sc->id.ino = st.st_ino;
  sc->id.size = st.st_size;
  sc->id.mtime = st.st_mtim;
  sc->id.ctime = st.st_ctim;
}
