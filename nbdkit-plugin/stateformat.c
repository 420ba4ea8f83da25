/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: the state file's format, pure.  See stateformat.h. */

#include <config.h>

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "lb_bytes.h"
#include "lb_err.h"
#include "stateformat.h"

/* Superblock fields (offsets); the rest of its 4 KiB is zero. */
enum {
  SB_MAGIC = 0, SB_VERSION = 8, SB_CRC = 12, SB_GEN = 16, SB_EPOCH = 24,
  SB_DEV_SIZE = 32, SB_BLOCK = 40, SB_NSLOTS = 44, SB_REGION = 48,
  SB_JLEN = 56, SB_CTX = 60, SB_MAP_PAGES = 64, SB_JOFF = 72, SB_MOFF = 80,
  SB_FILE_SIZE = 88, SB_CREATED = 96, SB_UPD = 104, SB_USED = 108,
};

/* Record fields. */
enum {
  REC_MAGIC = 0, REC_CRC = 4, REC_EPOCH = 8, REC_TX = 16, REC_GEN = 24,
  REC_ACKED = 32, REC_FLOOR = 40, REC_LAST = 48, REC_FLAGS = 56,
  REC_NUPD = 60, REC_NCTX = 62, REC_CTX_FIRST = 64, REC_CTX = 72,
  REC_UPD = REC_CTX + 8 * SF_REC_CTX, REC_UPD_SIZE = 12,
  REC_END = REC_UPD + REC_UPD_SIZE * SF_REC_UPD,
};
static_assert (REC_END <= SF_REC_SIZE, "a record fits in one sector");

enum { REC_FLAG_CLEAN = 1 };

/* Page fields. */
enum { PG_MAGIC = 0, PG_CRC = 4, PG_EPOCH = 8, PG_INDEX = 16 };
static_assert (PG_INDEX + 8 == SF_PAGE_HDR, "page header");

/* crc32 of LEN bytes at P, counting the 4 bytes at CRC_OFF as zero. */
static uint32_t
stateformat_crc (const uint8_t *p, size_t len, size_t crc_off)
{
  static const uint8_t zero[4];
  uLong c = crc32 (0L, Z_NULL, 0);

  c = crc32 (c, p, crc_off);
  c = crc32 (c, zero, 4);
  c = crc32 (c, p + crc_off + 4, len - crc_off - 4);
  return (uint32_t) c;
}

int
stateformat_layout (const struct stateformat_geom *g,
                     struct stateformat_layout *l, char *err, size_t errlen)
{
  uint64_t bitmap_pages;

  if (g->block_size < 512 || !lb_is_pow2 (g->block_size)
      || !lb_is_pow2 (g->region_size) || g->region_size < g->block_size
      || g->region_size > SF_MAX_REGION) {
    lb_errf (err, errlen, "the region size must be a power of 2 from the "
             "block size (%" PRIu32 ") to 1G", g->block_size);
    return -1;
  }
  if (g->nslots < SF_MIN_SLOTS || g->nslots > SF_MAX_SLOTS) {
    lb_errf (err, errlen, "the number of activity-log slots must be from "
             "%u to %u", SF_MIN_SLOTS, SF_MAX_SLOTS);
    return -1;
  }
  if (g->dev_size == 0 || g->dev_size > (UINT64_C(1) << 62)) {
    lb_errf (err, errlen, "device size %" PRIu64 " out of range",
             g->dev_size);
    return -1;
  }
  memset (l, 0, sizeof *l);
  l->g = *g;
  l->nblocks = (g->dev_size + g->block_size - 1) / g->block_size;
  l->nregions = (g->dev_size + g->region_size - 1) / g->region_size;
  l->blocks_per_region = g->region_size / g->block_size;
  l->ctx_per_rec = g->nslots < SF_REC_CTX ? g->nslots : SF_REC_CTX;
  l->journal_len = (g->nslots + l->ctx_per_rec - 1) / l->ctx_per_rec + 1;
  if (l->journal_len < 4)
    l->journal_len = 4;
  bitmap_pages = (l->nblocks + SF_PAGE_BITS - 1) / SF_PAGE_BITS;
  l->map_pages = bitmap_pages;
  l->map_words = bitmap_pages * SF_PAGE_WORDS;
  l->journal_off = 2 * SF_SB_SIZE;
  l->map_off = l->journal_off
               + ((uint64_t) l->journal_len * SF_REC_SIZE + SF_PAGE_SIZE - 1)
                 / SF_PAGE_SIZE * SF_PAGE_SIZE;
  l->file_size = l->map_off + l->map_pages * SF_PAGE_SIZE;
  return 0;
}

/* --- records --------------------------------------------------------- */

uint32_t
stateformat_ctx_first (const struct stateformat_layout *l, uint64_t tx)
{
  return (uint32_t) ((tx % l->g.nslots) * l->ctx_per_rec % l->g.nslots);
}

void
stateformat_rec_encode (const struct stateformat_rec *r,
                        uint8_t out[SF_REC_SIZE])
{
  uint32_t i;

  assert (r->nctx <= SF_REC_CTX && r->nupd <= SF_REC_UPD);
  assert (r->dyn.gen_acked <= r->dyn.gen);
  memset (out, 0, SF_REC_SIZE);
  lb_put_le32 (out + REC_MAGIC, SF_REC_MAGIC);
  lb_put_le64 (out + REC_EPOCH, r->epoch);
  lb_put_le64 (out + REC_TX, r->tx);
  lb_put_le64 (out + REC_GEN, r->dyn.gen);
  lb_put_le64 (out + REC_ACKED, r->dyn.gen_acked);
  lb_put_le64 (out + REC_FLOOR, r->dyn.floor_seq);
  lb_put_le64 (out + REC_LAST, r->dyn.last_seq);
  lb_put_le32 (out + REC_FLAGS, r->dyn.clean ? REC_FLAG_CLEAN : 0);
  lb_put_le16 (out + REC_NUPD, r->nupd);
  lb_put_le16 (out + REC_NCTX, r->nctx);
  lb_put_le32 (out + REC_CTX_FIRST, r->ctx_first);
  for (i = 0; i < r->nctx; i++)
    lb_put_le64 (out + REC_CTX + 8 * i, r->ctx[i]);
  for (i = 0; i < r->nupd; i++) {
    lb_put_le32 (out + REC_UPD + REC_UPD_SIZE * i, r->upd[i].slot);
    lb_put_le64 (out + REC_UPD + REC_UPD_SIZE * i + 4, r->upd[i].region);
  }
  lb_put_le32 (out + REC_CRC, stateformat_crc (out, SF_REC_SIZE, REC_CRC));
}

static bool
stateformat_region_ok (const struct stateformat_layout *l, uint64_t region)
{
  return region == SF_NONE || region < l->nregions;
}

enum stateformat_check
stateformat_rec_decode (const struct stateformat_layout *l,
                      const uint8_t in[SF_REC_SIZE], struct stateformat_rec *r,
                      const char **why)
{
  uint32_t i, flags;

  *why = NULL;
  if (lb_is_zero (in, SF_REC_SIZE))
    return SF_EMPTY;
  if (lb_get_le32 (in + REC_MAGIC) != SF_REC_MAGIC)
    *why = "bad magic";
  else if (lb_get_le32 (in + REC_CRC) != stateformat_crc (in, SF_REC_SIZE,
                                                        REC_CRC))
    *why = "bad checksum";
  if (*why)
    return SF_BAD;
  memset (r, 0, sizeof *r);
  r->epoch = lb_get_le64 (in + REC_EPOCH);
  r->tx = lb_get_le64 (in + REC_TX);
  r->dyn.gen = lb_get_le64 (in + REC_GEN);
  r->dyn.gen_acked = lb_get_le64 (in + REC_ACKED);
  r->dyn.floor_seq = lb_get_le64 (in + REC_FLOOR);
  r->dyn.last_seq = lb_get_le64 (in + REC_LAST);
  flags = lb_get_le32 (in + REC_FLAGS);
  r->dyn.clean = flags & REC_FLAG_CLEAN;
  r->nupd = lb_get_le16 (in + REC_NUPD);
  r->nctx = lb_get_le16 (in + REC_NCTX);
  r->ctx_first = lb_get_le32 (in + REC_CTX_FIRST);
  if ((flags & ~REC_FLAG_CLEAN) != 0)
    *why = "unknown flags";
  else if (r->nupd > SF_REC_UPD || r->nctx != l->ctx_per_rec
           || r->ctx_first != stateformat_ctx_first (l, r->tx))
    *why = "counts do not match the layout";
  else if (r->dyn.gen_acked > r->dyn.gen
           || r->dyn.floor_seq > r->dyn.last_seq)
    *why = "inconsistent dynamic state";
  if (*why)
    return SF_BAD;
  for (i = 0; i < r->nctx; i++) {
    r->ctx[i] = lb_get_le64 (in + REC_CTX + 8 * i);
    if (!stateformat_region_ok (l, r->ctx[i]))
      *why = "context names a region past the device";
  }
  for (i = 0; i < r->nupd; i++) {
    r->upd[i].slot = lb_get_le32 (in + REC_UPD + REC_UPD_SIZE * i);
    r->upd[i].region = lb_get_le64 (in + REC_UPD + REC_UPD_SIZE * i + 4);
    if (r->upd[i].slot >= l->g.nslots
        || !stateformat_region_ok (l, r->upd[i].region))
      *why = "update out of range";
  }
  if (r->dyn.clean && r->nupd > 0)
    *why = "a clean record with updates";
  for (i = 0; r->dyn.clean && i < r->nctx; i++)
    if (r->ctx[i] != SF_NONE)
      *why = "a clean record with an active region";
  return *why ? SF_BAD : SF_OK;
}

/* --- map pages ------------------------------------------------------- */

void
stateformat_page_encode (uint64_t epoch, uint64_t index,
                         const uint64_t *words, uint8_t out[SF_PAGE_SIZE])
{
  uint32_t i;

  lb_put_le32 (out + PG_MAGIC, SF_PAGE_MAGIC);
  lb_put_le64 (out + PG_EPOCH, epoch);
  lb_put_le64 (out + PG_INDEX, index);
  for (i = 0; i < SF_PAGE_WORDS; i++)
    lb_put_le64 (out + SF_PAGE_HDR + 8 * i, words[i]);
  lb_put_le32 (out + PG_CRC, stateformat_crc (out, SF_PAGE_SIZE, PG_CRC));
}

enum stateformat_check
stateformat_page_decode (uint64_t epoch, uint64_t index,
                       const uint8_t in[SF_PAGE_SIZE], uint64_t *words,
                       const char **why)
{
  uint32_t i;

  *why = NULL;
  if (lb_get_le32 (in + PG_MAGIC) != SF_PAGE_MAGIC)
    *why = "bad magic";
  else if (lb_get_le32 (in + PG_CRC) != stateformat_crc (in, SF_PAGE_SIZE,
                                                       PG_CRC))
    *why = "bad checksum";
  else if (lb_get_le64 (in + PG_EPOCH) != epoch)
    *why = "from another epoch";
  else if (lb_get_le64 (in + PG_INDEX) != index)
    *why = "holds another page";
  if (*why)
    return SF_BAD;
  for (i = 0; i < SF_PAGE_WORDS; i++)
    words[i] = lb_get_le64 (in + SF_PAGE_HDR + 8 * i);
  return SF_OK;
}

/* --- replay ---------------------------------------------------------- */

static int
stateformat_cmp_u64 (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
  return x < y ? -1 : x > y;
}

/* Does a region other than SF_NONE appear twice in SLOTS[0..N)?  Returns
 * 1 (*REGION is one such), 0, or -1 (out of memory).
 */
static int
stateformat_twice (const uint64_t *slots, uint32_t n, uint64_t *region)
{
  uint64_t *s = malloc (sizeof *s * n);
  int twice = 0;
  uint32_t i;

  if (s == NULL)
    return -1;
  memcpy (s, slots, sizeof *s * n);
  qsort (s, n, sizeof *s, stateformat_cmp_u64);
  for (i = 1; i < n && !twice; i++)
    if (s[i] == s[i - 1] && s[i] != SF_NONE) {
      twice = 1;
      *region = s[i];
    }
  free (s);
  return twice;
}

/* Is B no less than A in every field that only grows? */
static bool
stateformat_dyn_grows (const struct stateformat_dyn *a,
                     const struct stateformat_dyn *b)
{
  return b->gen >= a->gen && b->gen_acked >= a->gen_acked
         && b->floor_seq >= a->floor_seq && b->last_seq >= a->last_seq;
}

int
stateformat_replay (const struct stateformat_layout *l, uint64_t epoch,
                  const uint8_t *journal, uint64_t *slots,
                  struct stateformat_dyn *dyn, uint64_t *next_tx,
                  char *why, size_t whylen)
{
  const uint32_t J = l->journal_len, N = l->g.nslots;
  struct stateformat_rec *recs = malloc (sizeof *recs * J);
  bool *valid = calloc (J, sizeof *valid);
  uint64_t newest = 0, first, t, k;
  bool any = false;
  uint32_t i, u;
  int r = -1;

  if (recs == NULL || valid == NULL) {
    lb_errf (why, whylen, "out of memory");
    goto out;
  }
  for (i = 0; i < J; i++) {
    const char *bad;
    enum stateformat_check c = stateformat_rec_decode (l, journal
                                                   + (size_t) i * SF_REC_SIZE,
                                                   &recs[i], &bad);
    if (c == SF_BAD) {
      lb_errf (why, whylen, "journal record %" PRIu32 ": %s", i, bad);
      goto out;
    }
    if (c == SF_EMPTY)
      continue;
    if (recs[i].epoch != epoch) {
      lb_errf (why, whylen, "journal record %" PRIu32 " is from another "
               "epoch", i);
      goto out;
    }
    if (recs[i].tx % J != i) {
      lb_errf (why, whylen, "journal record %" PRIu32 " (tx %" PRIu64
               ") is out of place", i, recs[i].tx);
      goto out;
    }
    valid[i] = true;
    if (!any || recs[i].tx > newest)
      newest = recs[i].tx;
    any = true;
  }
  if (!any) {
    lb_errf (why, whylen, "the journal is empty");
    goto out;
  }
  /* Once the journal has wrapped, no record is ever empty again. */
  first = newest >= J - 1 ? newest - (J - 1) : 0;
  for (t = first; t <= newest; t++) {
    i = t % J;
    if (!valid[i] || recs[i].tx != t) {
      lb_errf (why, whylen, "journal: record tx %" PRIu64 " is missing "
               "(newest %" PRIu64 ")", t, newest);
      goto out;
    }
    if (t > first && !stateformat_dyn_grows (&recs[(t - 1) % J].dyn,
                                           &recs[i].dyn)) {
      lb_errf (why, whylen, "journal: record tx %" PRIu64 " goes back",
               t);
      goto out;
    }
  }

  for (u = 0; u < N; u++)
    slots[u] = SF_NONE;
  for (t = first; t <= newest; t++) {
    const struct stateformat_rec *rec = &recs[t % J];
    if (rec->dyn.clean)
      for (u = 0; u < N; u++)
        slots[u] = SF_NONE;
    for (k = 0; k < rec->nctx; k++)
      slots[(rec->ctx_first + k) % N] = rec->ctx[k];
    for (k = 0; k < rec->nupd; k++)
      slots[rec->upd[k].slot] = rec->upd[k].region;
  }
  /* A region is in one slot at most. */
  switch (stateformat_twice (slots, N, &k)) {
  case 1:
    lb_errf (why, whylen, "journal: region %" PRIu64 " is in two slots", k);
    goto out;
  case -1:
    lb_errf (why, whylen, "out of memory");
    goto out;
  }
  *dyn = recs[newest % J].dyn;
  *next_tx = newest + 1;
  r = 0;
 out:
  free (recs);
  free (valid);
  return r;
}

/* --- superblocks ------------------------------------------------------ */

void
stateformat_sb_encode (const struct stateformat_layout *l, uint64_t epoch,
                       uint64_t sb_gen, uint64_t created,
                       uint8_t out[SF_SB_SIZE])
{
  memset (out, 0, SF_SB_SIZE);
  lb_put_le64 (out + SB_MAGIC, SF_MAGIC);
  lb_put_le32 (out + SB_VERSION, SF_VERSION);
  lb_put_le64 (out + SB_GEN, sb_gen);
  lb_put_le64 (out + SB_EPOCH, epoch);
  lb_put_le64 (out + SB_DEV_SIZE, l->g.dev_size);
  lb_put_le32 (out + SB_BLOCK, l->g.block_size);
  lb_put_le32 (out + SB_NSLOTS, l->g.nslots);
  lb_put_le64 (out + SB_REGION, l->g.region_size);
  lb_put_le32 (out + SB_JLEN, l->journal_len);
  lb_put_le32 (out + SB_CTX, l->ctx_per_rec);
  lb_put_le64 (out + SB_MAP_PAGES, l->map_pages);
  lb_put_le64 (out + SB_JOFF, l->journal_off);
  lb_put_le64 (out + SB_MOFF, l->map_off);
  lb_put_le64 (out + SB_FILE_SIZE, l->file_size);
  lb_put_le64 (out + SB_CREATED, created);
  lb_put_le32 (out + SB_UPD, SF_REC_UPD);
  lb_put_le32 (out + SB_CRC, stateformat_crc (out, SF_SB_SIZE, SB_CRC));
}

enum stateformat_check
stateformat_sb_decode (const uint8_t in[SF_SB_SIZE], struct stateformat_sb *sb,
                       const char **why)
{
  *why = NULL;
  if (lb_get_le64 (in + SB_MAGIC) != SF_MAGIC)
    *why = "bad magic";
  else if (lb_get_le32 (in + SB_CRC) != stateformat_crc (in, SF_SB_SIZE,
                                                       SB_CRC))
    *why = "bad checksum";
  else if (lb_get_le32 (in + SB_VERSION) != SF_VERSION)
    *why = "unknown version";
  else if (!lb_is_zero (in + SB_USED, SF_SB_SIZE - SB_USED))
    *why = "unknown fields";
  if (*why)
    return SF_BAD;
  sb->gen = lb_get_le64 (in + SB_GEN);
  sb->epoch = lb_get_le64 (in + SB_EPOCH);
  sb->g.dev_size = lb_get_le64 (in + SB_DEV_SIZE);
  sb->g.block_size = lb_get_le32 (in + SB_BLOCK);
  sb->g.nslots = lb_get_le32 (in + SB_NSLOTS);
  sb->g.region_size = lb_get_le64 (in + SB_REGION);
  sb->journal_len = lb_get_le32 (in + SB_JLEN);
  sb->ctx_per_rec = lb_get_le32 (in + SB_CTX);
  sb->map_pages = lb_get_le64 (in + SB_MAP_PAGES);
  sb->journal_off = lb_get_le64 (in + SB_JOFF);
  sb->map_off = lb_get_le64 (in + SB_MOFF);
  sb->file_size = lb_get_le64 (in + SB_FILE_SIZE);
  sb->created = lb_get_le64 (in + SB_CREATED);
  sb->upd_per_rec = lb_get_le32 (in + SB_UPD);
  return SF_OK;
}

