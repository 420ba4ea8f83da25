/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: the region hashes of a client's image.  See scancache.h. */

#include <config.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
  sc->region = 0;
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
      lb_debug ("scan hashes: %zu kept forgotten: %s", sc->n,
                !sc->sealed ? "the last session did not end cleanly"
                : size != sc->size ? "another size"
                : "the file changed since the last session");
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
  if (!sc->keyed
      || memcmp (sc->key_check, key->secret, sizeof sc->key_check) != 0) {
    scancache_free (sc);
    memcpy (sc->key_check, key->secret, sizeof sc->key_check);
    sc->keyed = true;
  }
}

void
scancache_forget (struct scancache *sc, uint64_t off, uint64_t len)
{
  uint64_t first, last;

  if (sc == NULL || sc->valid == NULL || len == 0)
    return;
  first = off / sc->region;
  last = (off + len - 1) / sc->region;
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
 * table (REGION: its length; 0 takes LEN)?  Its index into *I.
 */
static bool
scancache_region (const struct scancache *sc, uint32_t region, uint64_t off,
                  uint64_t len, uint32_t hash_block, size_t *i)
{
  if (region == 0)
    region = len;
  if (len == 0 || len != hash_block || len != region || off % region != 0
      || off > sc->size || len > sc->size - off)
    return false;
  *i = off / region;
  return true;
}

bool
scancache_lookup (struct scancache *sc, uint64_t off, uint64_t len,
                  uint32_t hash_block, uint8_t out[LBP_HASH_SIZE])
{
  size_t i;

  if (sc->region == 0
      || !scancache_region (sc, sc->region, off, len, hash_block, &i)
      || i >= sc->n || !sc->valid[i]) {
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
  size_t i;

  if (!sc->keyed || !scancache_region (sc, sc->region, off, len, hash_block,
                                       &i))
    return;
  if (sc->region == 0) {
    /* The first region stored sets the table's region length. */
    size_t n = sc->size / len;
    sc->hash = malloc (n * LBP_HASH_SIZE);
    sc->valid = calloc (n ? n : 1, 1);
    if (sc->hash == NULL || sc->valid == NULL) {
      scancache_free (sc);
      return;
    }
    sc->n = n;
    sc->region = len;
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
