/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: a capture that outlives nbdkit.  See persist.h. */

#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nbdkit-filter.h>

#include "actlog.h"
#include "persist.h"

/* Room for what the start found, published in start_reason. */
static char persist_reason[LW_REASON_LEN];
static unsigned persist_problems;

static void
persist_log (const char *msg)
{
  /* Worth seeing without -v: a reset costs a full scan, a bad page a
   * compare.
   */
  nbdkit_error ("livewatch: %s", msg);
  persist_problems++;
}

/* Set bits [B0, B1) in the channel bitmap MAP (no consumer yet). */
static void
persist_mark (void *map, uint64_t b0, uint64_t b1)
{
  if (b1 > b0)
    lw_bitmap_mark (map, b0, b1 - 1);
}

static uint64_t
persist_count (void *map, uint64_t nblocks)
{
  uint64_t w, n = 0;

  for (w = 0; w < (nblocks + 63) / 64; w++)
    n += __builtin_popcountll (atomic_load (lw_bitmap_word (map, w * 64)));
  return n;
}

int
persist_open (const struct persist_config *cfg, struct channel_origin *o)
{
  const struct lw_header *h = channel_hdr;
  const struct stateformat_geom g = {
    .dev_size = h->dev_size, .block_size = h->block_size,
    .region_size = cfg->region_size, .nslots = cfg->nslots,
  };
  const struct stateformat_layout *l;
  struct statefile_load ld;
  struct statefile *sf;
  struct actlog_init in;
  char err[512];
  uint64_t w, s, hinted = 0;

  persist_problems = 0;
  if (statefile_open (cfg->path, &g, persist_log, &sf, &ld, err,
                      sizeof err) == -1) {
    nbdkit_error ("livewatch-state=%s: %s", cfg->path, err);
    return -1;
  }
  l = statefile_layout (sf);
  *o = (struct channel_origin) {
    .epoch = ld.epoch, .region_size = (uint32_t) cfg->region_size,
    .reason = persist_reason,
  };
  if (ld.outcome == SF_FRESH) {
    o->kind = LW_START_FRESH;
    snprintf (persist_reason, sizeof persist_reason, "%s", ld.reason);
  }
  else {
    o->kind = ld.outcome == SF_CLEAN ? LW_START_CLEAN : LW_START_RECOVERED;
    /* Above any seq the previous instance can have appended: the stored
     * one lags by less than the gap (actlog_may_append).
     */
    o->start_seq = ld.dyn.last_seq + LW_SEQ_GAP;
    o->start_floor = ld.dyn.floor_seq;
    o->gen = ld.dyn.gen;
    o->gen_acked = ld.dyn.gen_acked;
    /* Not yet visible to anyone (the channel is not READY). */
    for (w = 0; w < (l->nblocks + 63) / 64; w++)
      atomic_store (lw_bitmap_word (channel_dirty, w * 64), ld.map[w]);
    for (s = 0; s < g.nslots; s++)
      if (ld.slots[s] != SF_NONE) {
        uint64_t b0 = ld.slots[s] * l->blocks_per_region;
        uint64_t b1 = b0 + l->blocks_per_region;
        if (b1 > l->nblocks)
          b1 = l->nblocks;
        persist_mark (channel_dirty, b0, b1);
        persist_mark (channel_hint, b0, b1);
        o->recovered_regions++;
      }
    /* A bad map page says nothing: all its blocks were set; compare them
     * rather than copy them blindly.
     */
    for (w = 0; w < l->map_pages; w++)
      if (ld.bad_page[w]) {
        uint64_t b1 = (w + 1) * SF_PAGE_BITS;
        persist_mark (channel_hint, w * SF_PAGE_BITS,
                      b1 < l->nblocks ? b1 : l->nblocks);
      }
    o->start_dirty = persist_count (channel_dirty, l->nblocks);
    hinted = persist_count (channel_hint, l->nblocks);
    o->start_hinted = hinted;
    if (ld.outcome == SF_CLEAN)
      snprintf (persist_reason, sizeof persist_reason,
                "clean stop: %" PRIu64 " blocks to copy, %" PRIu64 " of them "
                "to compare (%" PRIu64 " bad map pages)", o->start_dirty,
                hinted, ld.bad_pages);
    else
      snprintf (persist_reason, sizeof persist_reason,
                "unclean stop: %" PRIu64 " active regions; %" PRIu64
                " blocks to compare, %" PRIu64 " more to copy (%" PRIu64
                " bad map pages)", o->recovered_regions, hinted,
                o->start_dirty - hinted, ld.bad_pages);
  }
  if (persist_problems && ld.outcome != SF_FRESH) {
    size_t n = strlen (persist_reason);
    snprintf (persist_reason + n, sizeof persist_reason - n,
              "; %u problem%s in the state file, see nbdkit's log",
              persist_problems, persist_problems > 1 ? "s" : "");
  }
  nbdkit_debug ("livewatch: state %s: epoch %016" PRIx64 ", %s; first seq %"
                PRIu64, cfg->path, ld.epoch, persist_reason,
                o->start_seq + 1);

  in = (struct actlog_init) {
    .sf = sf, .slots = ld.slots, .map = ld.map,
    .rewrite_map = ld.bad_pages > 0, .dyn = ld.dyn,
    .start_seq = o->start_seq, .flush_device = cfg->flush_device,
  };
  ld.map = NULL;                /* taken over */
  if (actlog_init (&in, err, sizeof err) == -1) {
    nbdkit_error ("livewatch-state=%s: %s", cfg->path, err);
    statefile_load_free (&ld);
    actlog_free ();
    return -1;
  }
  statefile_load_free (&ld);
  return 0;
}

/* channel_unreleased's callback: the blocks of one record into MAP. */
struct persist_final {
  uint64_t *map;
  uint32_t block_size;
  uint64_t dev_size;
};

static void
persist_add_record (void *opaque, uint64_t offset, uint64_t length)
{
  struct persist_final *f = opaque;
  uint64_t b, last;

  if (length == 0 || offset >= f->dev_size)
    return;
  if (length > f->dev_size - offset)
    length = f->dev_size - offset;
  last = (offset + length - 1) / f->block_size;
  for (b = offset / f->block_size; b <= last; b++)
    f->map[b / 64] |= UINT64_C(1) << (b % 64);
}

void
persist_close (void)
{
  const struct lw_header *h = channel_hdr;
  struct persist_final f;
  uint64_t words, w;

  if (!actlog_on)
    return;
  actlog_stop ();
  words = (h->nblocks + SF_PAGE_BITS - 1) / SF_PAGE_BITS * SF_PAGE_WORDS;
  f = (struct persist_final) {
    .map = calloc (words ? words : 1, sizeof *f.map),
    .block_size = h->block_size, .dev_size = h->dev_size,
  };
  if (f.map == NULL) {
    nbdkit_error ("livewatch: out of memory at the clean stop: the state "
                  "file is left as after a crash");
    actlog_free ();
    return;
  }
  for (w = 0; w < (h->nblocks + 63) / 64; w++) {
    uint64_t d = atomic_load (lw_bitmap_word (channel_dirty, w * 64));
    f.map[w] = d | atomic_load (lw_bitmap_word (channel_pending, w * 64));
  }
  /* Records the consumer has not made durable downstream. */
  if (channel_unreleased (persist_add_record, &f) == -1) {
    nbdkit_error ("livewatch: the ring does not parse at the clean stop: "
                  "the state file is left as after a crash");
    free (f.map);
    actlog_free ();
    return;
  }
  if (actlog_write_clean (f.map) == 0)
    nbdkit_debug ("livewatch: state file marked clean");
  free (f.map);
  actlog_free ();
}
