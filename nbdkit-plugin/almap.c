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
  m->active = malloc ((nwords ? nwords : 1) * sizeof *m->active);
  m->page_changed = calloc (l->map_pages ? l->map_pages : 1, 1);
  return m->left_seq && m->active && m->page_changed ? 0 : -1;
}

void
almap_free (struct almap *m)
{
  free (m->map);
  free (m->left_seq);
  free (m->active);
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
almap_leave (struct almap *m, uint64_t r, uint64_t last_seq, bool all)
{
  uint64_t b0, b1;

  almap_region_blocks (m, r, &b0, &b1);
  ALMAP_FOR_WORDS (b0, b1, w, mask,
    almap_set (m, w, m->map[w] | (all ? mask : almap_bits (w) & mask)));
  /* A region that comes back keeps it (actlog), so this only grows. */
  if (last_seq > m->left_seq[r])
    m->left_seq[r] = last_seq;
}

bool
almap_checkpoint (struct almap *m, const uint64_t *table, uint32_t n,
                  uint64_t floor, bool flushed, bool would)
{
  const uint64_t nwords = (m->l->nblocks + 63) / 64;
  uint64_t s, r, w, b0, b1;

  memset (m->active, 0, nwords * sizeof *m->active);
  for (s = 0; s < n; s++)
    if (table[s] != SF_NONE) {
      almap_region_blocks (m, table[s], &b0, &b1);
      ALMAP_FOR_WORDS (b0, b1, w2, mask, m->active[w2] |= mask);
    }
  /* Left with records no durable floor covers yet: P all ones there,
   * kept until a record says no mirror below their last seq continues.
   */
  for (r = 0; r < m->l->nregions; r++)
    if (m->left_seq[r] > floor) {
      almap_region_blocks (m, r, &b0, &b1);
      ALMAP_FOR_WORDS (b0, b1, w2, mask, m->active[w2] |= mask);
    }
  for (w = 0; w < nwords; w++) {
    uint64_t v = (almap_bits (w) & ~m->active[w])
                 | (m->map[w] & m->active[w]);
    if (would) {
      if (m->map[w] & ~v)
        return true;
      continue;
    }
    almap_set (m, w, flushed ? v : m->map[w] | v);
  }
  return false;
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
