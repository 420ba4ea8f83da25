/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: the livewatch shared-memory channel.
 *
 * This header is the one definition of the channel between the nbdkit
 * filter (the producer) and its consumer (lb, or the test mirror).  Both
 * sides include it; nothing else describes the layout.  doc/capture.md
 * explains the protocol and why it is race-free.
 *
 * The channel is one file, DIR/livewatch-UNIT (DIR defaults to /dev/shm),
 * mode 0600, mapped MAP_SHARED by both sides:
 *
 *   [ header (LW_HEADER_SIZE) ][ ring (ring_size) ][ dirty bitmap ]
 *   [ pending bitmap ][ compare-hint bitmap ]
 *
 * Every region starts on a page boundary so that each can be mapped alone.
 *
 * Ownership of fields (who may store to them):
 *   P = producer (filter) only, C = consumer only, PC = both, atomically.
 * Fields marked "fixed" are written once before LW_STATE_READY is stored
 * and never change afterwards.
 *
 * Liveness is carried by open-file-description locks (F_OFD_SETLK) on
 * the channel file, which the kernel drops when a process dies, however
 * it dies:
 *   byte LW_LOCK_FILTER   — held (write lock) by the filter for its life;
 *   byte LW_LOCK_CONSUMER — held (write lock) by the one attached consumer.
 */

#ifndef LIVEBACKUP_LW_SHM_H
#define LIVEBACKUP_LW_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>
#include <assert.h>
#include <string.h>

#include "lb_bytes.h"

#define LW_MAGIC          UINT64_C(0x314843544157564c)   /* "LVWATCH1" LE */
#define LW_LAYOUT_VERSION 5           /* 2: copy generation; 3: persistent
                                       * capture (state file), compare hints;
                                       * 4: the served file (served_*);
                                       * 5: marks (LW_REC_MARK, LW_REQ_MARK) */
#define LW_HEADER_SIZE    4096
#define LW_REC_ALIGN      32           /* every record starts 32-aligned */
#define LW_DEFAULT_DIR    "/dev/shm"
#define LW_FILE_PREFIX    "livewatch-"
#define LW_DEFAULT_QUEUE  (16u << 20)  /* ring bytes */
#define LW_DEFAULT_BLOCK  (4u << 10)   /* bitmap granularity: a 4 KiB
                                        * write costs 4 KiB at catch-up
                                        * (doc/capture.md, "Block size") */
#define LW_MIN_QUEUE      (64u << 10)
#define LW_MAX_QUEUE      (UINT64_C(1) << 32)
#define LW_MIN_BLOCK      512u
#define LW_MAX_BLOCK      (16u << 20)
#define LW_MAX_UNIT       999999u

/* A filter that continues a stored capture (livewatch-state=) numbers
 * its records from the stored last seq + LW_SEQ_GAP, so that no seq of
 * the instance before it is ever reused (doc/capture.md, "The seq
 * gap"): the stored value may lag the true last seq, by far less.
 */
#define LW_SEQ_GAP        (UINT64_C(1) << 32)
#define LW_REASON_LEN     128          /* start_reason, NUL included */
#define LW_SERVED_PATH_LEN 1024        /* served_path, NUL included */
#define LW_MARK_LABEL_MAX 64           /* req_label, NUL included */

#define LW_LOCK_FILTER    0
#define LW_LOCK_CONSUMER  1

/* Header state. */
enum lw_state {
  LW_STATE_INIT  = 0,   /* file exists, not yet sized: do not attach */
  LW_STATE_READY = 1,   /* all fixed fields valid, channel in use */
  LW_STATE_GONE  = 2,   /* filter shut down cleanly; reattach later */
};

/* Producer mode. */
enum lw_mode {
  LW_MODE_NORMAL   = 0, /* every completed write is queued in the ring */
  LW_MODE_DEGRADED = 1, /* writes only set bits in the dirty bitmap */
};

/* Requests from the consumer, carried out by the filter's service thread
 * while it holds the write lock, so that no write is between the plugin
 * and the channel at that moment.
 */
enum lw_req {
  LW_REQ_NONE    = 0,
  LW_REQ_BARRIER = 1,   /* just report head_seq at a quiet instant */
  LW_REQ_DEGRADE = 2,   /* switch to degraded (e.g. before a full scan) */
  LW_REQ_RESUME  = 3,   /* switch back to normal, if the ring has room */
  LW_REQ_PERSIST = 4,   /* make gen and gen_acked durable in the state
                         * file (only with LW_FLAG_PERSISTENT; carried
                         * out without the write lock) */
  LW_REQ_MARK    = 5,   /* in normal mode, append a MARK record labelled
                         * req_label: it follows every write completed
                         * before it (ack_seq is its seq); refused when
                         * degraded or when the ring is full */
};

enum lw_req_result {
  LW_RES_OK      = 0,
  LW_RES_REFUSED = 1,   /* resume refused: ring not empty enough */
  LW_RES_INVALID = 2,   /* unknown request */
  LW_RES_FAILED  = 3,   /* persist: the state file cannot be written */
};

/* A mark's label: 1 to LW_MARK_LABEL_MAX - 1 bytes of letters, digits,
 * '.', '_' and '-', starting with a letter (so that it never reads as a
 * restore point's time, lbd/points.h).  Shared by the filter (which
 * checks what the consumer asks for), lb and lbd.
 */
static inline bool
lw_mark_label_ok (const char *label, size_t len)
{
  size_t i;

  if (len == 0 || len >= LW_MARK_LABEL_MAX
      || !((label[0] >= 'a' && label[0] <= 'z')
           || (label[0] >= 'A' && label[0] <= 'Z')))
    return false;
  for (i = 0; i < len; i++) {
    char ch = label[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
          || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
      return false;
  }
  return true;
}

/* How the filter started (header field start_kind), for the consumer's
 * log and status.
 */
enum lw_start {
  LW_START_VOLATILE  = 0, /* no state file: a new epoch at every start */
  LW_START_FRESH     = 1, /* state file new or reset (start_reason says
                           * why): a new epoch */
  LW_START_CLEAN     = 2, /* continues the stored epoch after a clean
                           * stop: the stored map is dirty */
  LW_START_RECOVERED = 3, /* continues it after an unclean stop: also
                           * every block of the regions that were active,
                           * with a compare hint */
};

static inline const char *
lw_start_name (uint32_t kind)
{
  switch (kind) {
  case LW_START_VOLATILE: return "volatile";
  case LW_START_FRESH: return "fresh";
  case LW_START_CLEAN: return "clean";
  case LW_START_RECOVERED: return "recovered";
  }
  return "?";
}

/* What the filter serves (header field served_kind), so that the
 * consumer can check that its DEVICE is that very file.  The filter
 * knows the plugin's file only from its file= parameter (nbdkit-plugin/
 * served.h says when it trusts it).
 */
enum lw_served {
  LW_SERVED_UNKNOWN = 0,  /* not one file= the filter could stat: the
                           * consumer can check DEVICE's size only */
  LW_SERVED_FILE    = 1,  /* a regular file: served_dev and served_ino */
  LW_SERVED_BLOCK   = 2,  /* a block device: served_rdev */
};

static inline const char *
lw_served_name (uint32_t kind)
{
  switch (kind) {
  case LW_SERVED_UNKNOWN: return "unknown";
  case LW_SERVED_FILE: return "file";
  case LW_SERVED_BLOCK: return "block";
  }
  return "?";
}

/* Header flags (field flags). */
enum lw_flags {
  LW_FLAG_PERSISTENT = 1, /* a state file holds the capture: the consumer
                           * must LW_REQ_PERSIST its copy generation */
};

/* Record types. */
enum lw_rec_type {
  LW_REC_PAD   = 0,     /* filler to the end of the ring; skip it */
  LW_REC_WRITE = 1,     /* offset, length, then length bytes of data */
  LW_REC_ZERO  = 2,     /* offset, length now read as zeroes */
  LW_REC_TRIM  = 3,     /* offset, length discarded: contents = device's */
  LW_REC_FLUSH = 4,     /* everything before is durable on the device */
  LW_REC_MARK  = 5,     /* a point asked for (lb --mark): offset 0, length
                         * the label's bytes, then the label (no NUL);
                         * every write completed before it is before it */
};

/* One record in the ring.  A record never wraps: when the space left
 * before the ring's end is too small, the producer fills it with a PAD
 * record (space left is always a multiple of LW_REC_ALIGN, so a PAD
 * header always fits).
 */
struct lw_rec {
  uint32_t type;        /* enum lw_rec_type */
  uint32_t size;        /* bytes of this record, header included, aligned */
  uint64_t seq;         /* 1, 2, 3 ... per epoch; PAD records carry 0 */
  uint64_t offset;      /* device byte offset */
  uint32_t length;      /* device bytes covered */
  uint32_t flags;       /* reserved, 0 */
};
static_assert (sizeof (struct lw_rec) == LW_REC_ALIGN, "record header size");

/* Size of a record of type TYPE covering LENGTH bytes. */
static inline uint64_t
lw_rec_size (uint32_t type, uint32_t length)
{
  uint64_t data = type == LW_REC_WRITE || type == LW_REC_MARK ? length : 0;
  return (sizeof (struct lw_rec) + data + LW_REC_ALIGN - 1)
         & ~(uint64_t) (LW_REC_ALIGN - 1);
}

#define LW_CACHELINE 64

struct lw_header {
  /* --- fixed --- */
  uint64_t magic;               /* LW_MAGIC */
  uint32_t layout_version;      /* LW_LAYOUT_VERSION */
  uint32_t header_size;         /* LW_HEADER_SIZE */
  uint64_t epoch;               /* random, new at every filter start */
  uint64_t dev_size;            /* bytes of the export */
  uint32_t block_size;          /* bytes per bitmap bit, power of 2 */
  uint32_t unit;
  uint64_t nblocks;             /* ceil (dev_size / block_size) */
  uint64_t ring_off, ring_size; /* ring region, ring_size % LW_REC_ALIGN == 0 */
  uint64_t dirty_off, pending_off, bitmap_bytes; /* two bitmaps */
  uint64_t file_size;
  int64_t  filter_pid;
  uint64_t start_time;          /* filter start, seconds since the epoch */
  uint64_t hint_off;            /* compare-hint bitmap, bitmap_bytes long */
  /* How this instance started (enum lw_start).  A continued capture
   * (CLEAN, RECOVERED) keeps the stored epoch; its first record is
   * start_seq + 1 and the channel starts with head_seq = tail_seq =
   * start_seq.  Until a record of this instance is released (tail_seq ==
   * start_seq), a mirror at any seq in [start_floor, start_seq] may
   * continue: it holds every record the state file does not cover
   * (lw_consumer.h: lwc_seq_continues).
   */
  uint32_t start_kind;
  uint32_t region_size;         /* activity-log region bytes (0: no state) */
  uint64_t start_seq;
  uint64_t start_floor;
  uint64_t recovered_regions;   /* RECOVERED: regions that were active */
  uint64_t start_dirty;         /* blocks dirty at start (stored map, plus
                                 * every block of those regions) */
  uint64_t start_hinted;        /* of which to compare (compare hints) */
  char start_reason[LW_REASON_LEN]; /* FRESH: why; else what was found */
  /* What the plugin serves (enum lw_served), as stat(2) gave it when
   * nbdkit started; the path absolute as file= named it (truncated to
   * LW_SERVED_PATH_LEN - 1 bytes), "" when unknown.
   */
  uint32_t served_kind;
  uint32_t served_reserved;     /* 0 */
  uint64_t served_dev;          /* st_dev, FILE and BLOCK */
  uint64_t served_ino;          /* st_ino, FILE and BLOCK */
  uint64_t served_rdev;         /* st_rdev, BLOCK only */
  char served_path[LW_SERVED_PATH_LEN];

  /* --- P: published position of the ring --- */
  _Alignas (LW_CACHELINE) _Atomic uint32_t state;   /* enum lw_state */
  _Atomic uint32_t mode;        /* enum lw_mode */
  _Atomic uint64_t head_pos;    /* byte position after the last record */
  _Atomic uint64_t head_seq;    /* seq of the last record appended */
  _Atomic uint32_t wake_futex;  /* bumped after every publish, mode change
                                 * and ack: the consumer sleeps on it */
  _Atomic uint32_t consumer_sleeping; /* C sets before sleeping, P wakes */

  /* --- P: counters, for status display and tests.  On their own cache
   * line: every write bumps one, and the line above is what writers read
   * and the consumer polls. --- */
  _Alignas (LW_CACHELINE) _Atomic uint64_t n_writes; /* pwrite/zero/trim */
  _Atomic uint64_t n_records;       /* records appended */
  _Atomic uint64_t n_bytes_queued;  /* data bytes appended */
  _Atomic uint64_t n_degrade;       /* transitions to degraded */
  _Atomic uint64_t n_resume;        /* transitions back to normal */
  _Atomic uint64_t n_bits_set;      /* writes that set bits (not queued) */
  _Atomic uint64_t n_errors;        /* failed plugin writes (marked dirty) */
  _Atomic uint64_t n_consumer_lost; /* consumer found dead by the filter */
  _Atomic uint64_t mode_since;      /* time of last mode change, seconds */
  _Atomic uint32_t flags;           /* enum lw_flags; PERSISTENT is cleared
                                     * if the state file fails */
  _Atomic uint64_t n_state_records; /* journal records written */
  _Atomic uint64_t n_state_syncs;   /* fdatasyncs of the state file */
  _Atomic uint64_t n_al_waits;      /* writes that waited for the journal */
  _Atomic uint64_t al_wait_us;      /* and how long, in all */

  /* --- C: released position (records before it may be overwritten) --- */
  _Alignas (LW_CACHELINE) _Atomic uint64_t tail_pos;
  _Atomic uint64_t tail_seq;    /* seq of the last released record */
  _Atomic uint64_t attach_count; /* bumped by every consumer that attaches */
  _Atomic int64_t  consumer_pid;
  /* The copy generation.  Degraded writes carry no seq, so records alone
   * cannot tell whether a mirror has every block whose dirty bit was
   * spent.  Before each sync that makes block copies durable, the
   * consumer takes gen + 1 (never reused within an epoch) and sends it
   * with the sync; once the mirror confirms it, gen_acked = that number,
   * and only then are the copies' pending bits cleared.  A mirror whose
   * last such sync was gen_acked, or gen (confirmed by the mirror but not
   * yet here), has every spent block; any other has missed some
   * (lw_consumer.h: lwc_gen_continues).  0 in a new channel.
   */
  _Atomic uint64_t gen;
  _Atomic uint64_t gen_acked;

  /* --- request channel: C writes req_*, P writes ack_* --- */
  _Alignas (LW_CACHELINE) _Atomic uint32_t req_futex; /* bumped by C; the filter sleeps on it */
  _Atomic uint32_t req_type;    /* enum lw_req */
  _Atomic uint64_t req_id;      /* C: id of the posted request */
  _Atomic uint64_t ack_id;      /* P: id of the last request carried out */
  _Atomic uint32_t ack_result;  /* P: enum lw_req_result */
  _Atomic uint64_t ack_seq;     /* P: head_seq at the quiet instant */
  _Atomic uint64_t ack_pos;     /* P: head_pos at the quiet instant */
  /* C: LW_REQ_MARK's label, NUL-terminated, written before req_id. */
  char req_label[LW_MARK_LABEL_MAX];
};
static_assert (sizeof (struct lw_header) <= LW_HEADER_SIZE, "header fits");

/* Name of a unit's channel file in DIR; returns snprintf's result. */
#include <stdio.h>
static inline int
lw_shm_path (char *buf, size_t len, const char *dir, unsigned unit)
{
  return snprintf (buf, len, "%s/" LW_FILE_PREFIX "%u", dir, unit);
}

/* Bitmap helpers shared by both sides.  Bits are in 64-bit words; the
 * producer sets with fetch_or, the consumer moves bits with fetch_and, so
 * neither can lose the other's update.
 */
static inline _Atomic uint64_t *
lw_bitmap_word (void *base, uint64_t block)
{
  return (_Atomic uint64_t *) base + (block >> 6);
}

static inline uint64_t
lw_bit (uint64_t block)
{
  return UINT64_C(1) << (block & 63);
}

/* Set the bits of blocks FIRST..LAST (inclusive), whole words at a time
 * where the range allows.  Shared by the filter (marking writes) and the
 * consumer (marking blocks it must copy again).
 */
static inline void
lw_bitmap_mark (void *base, uint64_t first, uint64_t last)
{
  assert (first <= last);
  uint64_t b, n, mask, bit0;

  for (b = first; b <= last; b += n) {
    bit0 = b & 63;
    n = last - b + 1;
    if (bit0 == 0 && n >= 64) {
      mask = UINT64_MAX;
      n = 64;
    }
    else {
      if (n > 64 - bit0)
        n = 64 - bit0;
      mask = (n == 64 ? UINT64_MAX : ((UINT64_C(1) << n) - 1)) << bit0;
    }
    /* Sequentially consistent: a consumer that clears this bit and then
     * reads the device must see the write that completed before this.
     */
    atomic_fetch_or (lw_bitmap_word (base, b), mask);
  }
}

/* Validate the fixed part of a header against a file of FILE_SIZE bytes.
 * Returns NULL if sound, else a static description of the first fault.
 * Used by the consumer before trusting any offset, and by the fuzzer.
 */
static inline const char *
lw_header_check (const struct lw_header *h, uint64_t file_size)
{
  if (h->magic != LW_MAGIC) return "bad magic";
  if (h->layout_version != LW_LAYOUT_VERSION) return "unsupported layout version";
  if (h->header_size != LW_HEADER_SIZE) return "bad header size";
  /* Bound every field before any sum, so that no sum can wrap. */
  if (h->dev_size > (UINT64_C(1) << 62) || file_size > (UINT64_C(1) << 62)
      || h->dirty_off > file_size || h->pending_off > file_size
      || h->hint_off > file_size || h->bitmap_bytes > file_size)
    return "offsets or sizes out of range";
  if (h->block_size < LW_MIN_BLOCK || h->block_size > LW_MAX_BLOCK
      || !lb_is_pow2 (h->block_size))
    return "bad block size";
  if (h->nblocks != (h->dev_size + h->block_size - 1) / h->block_size)
    return "block count does not match device size";
  if (h->ring_off != LW_HEADER_SIZE) return "bad ring offset";
  if (h->ring_size < LW_MIN_QUEUE || h->ring_size > LW_MAX_QUEUE
      || h->ring_size % LW_REC_ALIGN != 0)
    return "bad ring size";
  if (h->bitmap_bytes < (h->nblocks + 63) / 64 * 8
      || h->bitmap_bytes > (UINT64_C(1) << 40))
    return "bitmap too small";
  if (h->dirty_off < h->ring_off + h->ring_size
      || h->pending_off < h->dirty_off + h->bitmap_bytes
      || h->hint_off < h->pending_off + h->bitmap_bytes
      || h->dirty_off % 4096 != 0 || h->pending_off % 4096 != 0
      || h->hint_off % 4096 != 0)
    return "bad bitmap offsets";
  if (h->file_size != file_size
      || h->hint_off + h->bitmap_bytes > file_size)
    return "file size does not match header";
  if (h->start_kind > LW_START_RECOVERED)
    return "bad start kind";
  if ((h->start_kind == LW_START_VOLATILE) != (h->region_size == 0)
      || (h->region_size != 0
          && (!lb_is_pow2 (h->region_size) || h->region_size < h->block_size)))
    return "bad region size";
  if (h->start_floor > h->start_seq)
    return "start floor above start seq";
  if (memchr (h->start_reason, '\0', sizeof h->start_reason) == NULL)
    return "start reason not terminated";
  if (h->served_kind > LW_SERVED_BLOCK)
    return "bad served kind";
  if (memchr (h->served_path, '\0', sizeof h->served_path) == NULL)
    return "served path not terminated";
  return NULL;
}

#endif /* LIVEBACKUP_LW_SHM_H */
