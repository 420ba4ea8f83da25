/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: the persistent map P in memory.  See almap.h. */

#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "almap.h"
#include "channel.h"

/* Run BODY with W, MASK set to each bitmap word covering blocks [B0, B1)
 * and the bits of that range in it.
 */
#define ALMAP_FOR_WORDS(b0, b1, w, mask, body) do {                       \
    uint64_t b_ = (b0);                                                   \
    while (b_ < (b1)) {                                                   \
      uint64_t n_ = 64 - (b_ & 63);                                       \
      if (n_ > (b1) - b_) n_ = (b1) - b_;                                 \
      uint64_t w = b_ >> 6;                                               \
      uint64_t mask = (n_ == 64 ? UINT64_MAX                              \
                       : ((UINT64_C(1) << n_) - 1)) << (b_ & 63);         \
      body;                                                               \
      b_ += n_;                                                           \
    }                                                                     \
  } while (0)

int
almap_init (struct almap *m, const struct stateformat_layout *l,
            uint64_t *map, bool rewrite_all)
{
  const uint64_t nwords = (l->nblocks + 63) / 64;

  memset (m, 0, sizeof *m);
  m->l = l;
  m->map = map;
  m->rewrite_all = rewrite_all;
  m->left_seq = calloc (l->nregions, sizeof *m->left_seq);
  m->left_need = calloc (l->nregions, sizeof *m->left_need);
  m->active = malloc ((nwords ? nwords : 1) * sizeof *m->active);
  m->noclear = malloc ((nwords ? nwords : 1) * sizeof *m->noclear);
  m->page_changed = calloc (l->map_pages ? l->map_pages : 1, 1);
  return m->left_seq && m->left_need && m->active && m->noclear
         && m->page_changed ? 0 : -1;
}

void
almap_free (struct almap *m)
{
  free (m->map);
  free (m->left_seq);
  free (m->left_need);
  free (m->active);
  free (m->noclear);
  free (m->page_changed);
  memset (m, 0, sizeof *m);
}

static void
almap_region_blocks (const struct almap *m, uint64_t r, uint64_t *b0,
                     uint64_t *b1)
{
  *b0 = r * m->l->blocks_per_region;
  *b1 = *b0 + m->l->blocks_per_region;
  if (*b1 > m->l->nblocks)
    *b1 = m->l->nblocks;
}

/* Dirty or pending, read in that order. */
static uint64_t
almap_bits (uint64_t w)
{
  uint64_t d = atomic_load (lw_bitmap_word (channel_dirty, w * 64));
  return d | atomic_load (lw_bitmap_word (channel_pending, w * 64));
}

static void
almap_set (struct almap *m, uint64_t w, uint64_t v)
{
  if (m->map[w] != v) {
    m->map[w] = v;
    m->page_changed[w / SF_PAGE_WORDS] = 1;
  }
}

void
almap_leave (struct almap *m, uint64_t r, uint64_t last_seq, uint64_t need,
             bool all)
{
  uint64_t b0, b1;

  almap_region_blocks (m, r, &b0, &b1);
  ALMAP_FOR_WORDS (b0, b1, w, mask,
    almap_set (m, w, m->map[w] | (all ? mask : almap_bits (w) & mask)));
  /* A region that comes back keeps it (actlog), so this only grows. */
  if (last_seq > m->left_seq[r])
    m->left_seq[r] = last_seq;
  if (need > m->left_need[r])
    m->left_need[r] = need;
}

bool
almap_checkpoint (struct almap *m, const uint64_t *table, uint32_t n,
                  uint64_t floor, uint64_t flush_done)
{
  const uint64_t nwords = (m->l->nblocks + 63) / 64;
  uint64_t s, r, w, b0, b1;
  bool want = false;

  memset (m->active, 0, nwords * sizeof *m->active);
  memset (m->noclear, 0, nwords * sizeof *m->noclear);
  for (s = 0; s < n; s++)
    if (table[s] != SF_NONE) {
      almap_region_blocks (m, table[s], &b0, &b1);
      ALMAP_FOR_WORDS (b0, b1, w2, mask, m->active[w2] |= mask);
    }
  for (r = 0; r < m->l->nregions; r++) {
    /* Left with records no durable floor covers yet: P all ones there,
     * kept until a record says no mirror below their last seq continues.
     */
    if (m->left_seq[r] > floor) {
      almap_region_blocks (m, r, &b0, &b1);
      ALMAP_FOR_WORDS (b0, b1, w2, mask, m->active[w2] |= mask);
    }
    /* Writes not yet flushed: the mirror may hold what the device would
     * lose in a power cut.
     */
    else if ((m->left_need[r] > 1 ? m->left_need[r] : 1) > flush_done) {
      almap_region_blocks (m, r, &b0, &b1);
      ALMAP_FOR_WORDS (b0, b1, w2, mask, m->noclear[w2] |= mask);
    }
  }
  for (w = 0; w < nwords; w++) {
    const uint64_t bits = almap_bits (w), keep = m->active[w];
    const uint64_t wait = m->noclear[w] & ~keep;
    uint64_t v = (bits & ~keep & ~wait) | (m->map[w] & keep)
                 | ((m->map[w] | bits) & wait);
    if (m->map[w] & wait & ~bits)
      want = true;
    almap_set (m, w, v);
  }
  return want;
}

bool
almap_region_clean (const struct almap *m, uint64_t r)
{
  uint64_t b0, b1;
  bool clean = true;

  almap_region_blocks (m, r, &b0, &b1);
  ALMAP_FOR_WORDS (b0, b1, w, mask,
                   clean = clean && (almap_bits (w) & mask) == 0);
  return clean;
}

size_t
almap_changed_pages (struct almap *m, uint64_t *pages, bool all_due)
{
  const bool all = all_due && m->rewrite_all;
  size_t np = 0;
  uint64_t p;

  for (p = 0; p < m->l->map_pages; p++)
    if (m->page_changed[p] || all) {
      m->page_changed[p] = 0;
      pages[np++] = p;
    }
  if (all)
    m->rewrite_all = false;
  return np;
}
