/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: the state file's format (livewatch-state=FILE).
 *
 * What a restart of nbdkit needs to continue its capture instead of
 * starting a new epoch: the epoch, the activity log (which regions of
 * the device may have writes that no mirror has), a persistent map P of
 * blocks that may differ from the mirror outside those regions, and the
 * consumer's copy generation.  doc/capture.md ("The state file") argues
 * why a write cannot be missed whatever the order of crashes; this
 * module is only the format and its I/O, with no threads and no nbdkit
 * calls: pure encoding, decoding and replay, so that tests/test-state
 * (and fuzz/fuzz-state) drive it alone; statefile.h does the I/O.
 *
 * THE INVARIANT the file keeps (with actlog.c, which writes it): at
 * every instant, for every block b where the device may differ from the
 * durable content of a mirror that can continue this capture (same
 * epoch, gen in {gen_acked, gen}, seq >= floor_seq), either b's region
 * is active in the durable journal, or P[b] is set durably.
 *
 * Layout (all integers little-endian, every structure checksummed with
 * zlib's crc32, computed with its own crc field zero):
 *
 *   [ superblock A  4 KiB ][ superblock B  4 KiB ]
 *   [ journal: J records of 512 bytes, padded to 4 KiB ]
 *   [ map: map_pages pages of 4 KiB ]
 *
 * Superblock (both copies identical; the valid one with the highest sb_gen
 * is used): magic, version, sb_gen, epoch, the geometry (device size,
 * block size, region size, slots, J, map pages), creation time.
 * Rewritten only by a reset (new file, geometry changed, unusable
 * content), which starts a new epoch.
 *
 * Journal record (one sector: written whole or not at all by the
 * device, and fdatasynced before anything depends on it), at index
 * tx % J: magic, crc, epoch, tx; the dynamic state (gen, gen_acked,
 * floor_seq, last_seq, flags: clean); up to SF_REC_UPD slot updates
 * (slot -> region or none); the "context", the slot table after this
 * record for slots [(tx * C) % N, + C) (C = min (SF_REC_CTX, N)), so
 * that any J - 1 consecutive records name every slot.
 *
 * Map page: magic, crc, epoch, page index, then SF_PAGE_WORDS 64-bit
 * words of P (block b is bit b % 64 of word b / 64, counted from the
 * first block of the page).  A page that fails its checks counts as all
 * ones: its blocks are compared, never skipped.
 */

#ifndef LIVEWATCH_STATEFORMAT_H
#define LIVEWATCH_STATEFORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SF_MAGIC        UINT64_C(0x314554415453574c)  /* "LWSTATE1" LE */
#define SF_REC_MAGIC    UINT32_C(0x314a574c)          /* "LWJ1" LE */
#define SF_PAGE_MAGIC   UINT32_C(0x314d574c)          /* "LWM1" LE */
#define SF_VERSION      1
#define SF_SB_SIZE      4096u
#define SF_REC_SIZE     512u
#define SF_PAGE_SIZE    4096u
#define SF_PAGE_HDR     24u
#define SF_PAGE_WORDS   ((SF_PAGE_SIZE - SF_PAGE_HDR) / 8)   /* 509 */
#define SF_PAGE_BITS    (SF_PAGE_WORDS * 64u)                /* 32576 */
#define SF_REC_CTX      20u     /* context entries per record */
#define SF_REC_UPD      23u     /* slot updates per record */
#define SF_NONE         UINT64_MAX   /* a slot that holds no region */
#define SF_MIN_SLOTS    16u
#define SF_MAX_SLOTS    65536u
#define SF_MAX_REGION   (UINT64_C(1) << 30)

/* What the user chose, and the device. */
struct stateformat_geom {
  uint64_t dev_size;
  uint32_t block_size;          /* livewatch-block */
  uint64_t region_size;         /* power of 2, >= block_size */
  uint32_t nslots;              /* activity-log slots N */
};

/* Everything derived from a geometry. */
struct stateformat_layout {
  struct stateformat_geom g;
  uint64_t nblocks, nregions;
  uint64_t blocks_per_region;
  uint32_t journal_len;         /* J = ceil (N / C) + 1, at least 4 */
  uint32_t ctx_per_rec;         /* C */
  uint64_t journal_off, map_off, map_pages, file_size;
  uint64_t map_words;           /* map_pages * SF_PAGE_WORDS */
};

/* The dynamic state every record carries. */
struct stateformat_dyn {
  uint64_t gen, gen_acked;      /* the consumer's copy generation */
  uint64_t floor_seq;           /* mirrors below it cannot continue */
  uint64_t last_seq;            /* the last seq appended when written */
  bool clean;                   /* a clean stop: no region is active */
};

struct stateformat_update {
  uint32_t slot;
  uint64_t region;              /* SF_NONE: the slot is emptied */
};

/* One journal record, decoded. */
struct stateformat_rec {
  uint64_t epoch, tx;
  struct stateformat_dyn dyn;
  uint32_t ctx_first, nctx;
  uint64_t ctx[SF_REC_CTX];     /* region of slot ctx_first + i (mod N) */
  uint32_t nupd;
  struct stateformat_update upd[SF_REC_UPD];
};

/* Named outcomes. */
enum stateformat_check {
  SF_OK,
  SF_EMPTY,                     /* never written (all zero) */
  SF_BAD,                       /* fails a check: corruption or a tear */
};


/* Returns 0 and fills L, or -1 with a reason in ERR (limits). */
extern int stateformat_layout (const struct stateformat_geom *g,
                                struct stateformat_layout *l,
                                char *err, size_t errlen);

/* Records, pure.  DECODE checks magic, crc, counts and ranges against L
 * (not the epoch or tx, which the replay checks).
 */
extern void stateformat_rec_encode (const struct stateformat_rec *r,
                                  uint8_t out[SF_REC_SIZE]);
extern enum stateformat_check stateformat_rec_decode (
  const struct stateformat_layout *l, const uint8_t in[SF_REC_SIZE],
  struct stateformat_rec *r, const char **why);

/* Map pages, pure.  WORDS: SF_PAGE_WORDS words of the page's bits. */
extern void stateformat_page_encode (uint64_t epoch, uint64_t index,
                                   const uint64_t *words,
                                   uint8_t out[SF_PAGE_SIZE]);
extern enum stateformat_check stateformat_page_decode (
  uint64_t epoch, uint64_t index, const uint8_t in[SF_PAGE_SIZE],
  uint64_t *words, const char **why);

/* Replay a whole journal (L->journal_len records in JOURNAL) of EPOCH:
 * every record valid or never written, the valid ones one contiguous
 * run of tx ending at the newest, complete once the journal has wrapped;
 * replayed oldest first (a clean record empties every slot, then its
 * context, then its updates).  Fills SLOTS (N entries: region or
 * SF_NONE), the newest *DYN and *NEXT_TX.  Returns 0, or -1 with a
 * reason in WHY (corruption: the caller resets).
 */
extern int stateformat_replay (const struct stateformat_layout *l,
                               uint64_t epoch, const uint8_t *journal,
                               uint64_t *slots, struct stateformat_dyn *dyn,
                               uint64_t *next_tx, char *why, size_t whylen);

/* Record TX's context starts at this slot. */
extern uint32_t stateformat_ctx_first (const struct stateformat_layout *l,
                                       uint64_t tx);

/* A superblock, decoded. */
struct stateformat_sb {
  uint64_t gen, epoch, created;
  struct stateformat_geom g;
  uint32_t journal_len, ctx_per_rec, upd_per_rec;
  uint64_t map_pages, journal_off, map_off, file_size;
};

extern void stateformat_sb_encode (const struct stateformat_layout *l,
                                   uint64_t epoch, uint64_t sb_gen,
                                   uint64_t created, uint8_t out[SF_SB_SIZE]);
/* Checks magic, crc and version; the geometry is the caller's to compare. */
extern enum stateformat_check stateformat_sb_decode (
  const uint8_t in[SF_SB_SIZE], struct stateformat_sb *sb, const char **why);

#endif /* LIVEWATCH_STATEFORMAT_H */
