/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: the consumer side of a livewatch channel.
 * See lw_consumer.h for the contract and doc/capture.md for the protocol.
 */

#include <config.h>

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "lw_consumer.h"
#include "lw_futex.h"
#include "lb_time.h"

struct lwc {
  int fd;
  int flags;
  char path[4096];
  dev_t dev;
  ino_t ino;
  void *map;
  size_t map_len;
  struct lw_header *h;
  const uint8_t *ring;
  void *dirty, *pending, *hint;
  uint64_t epoch;
  uint64_t read_pos, read_seq;  /* read cursor (ahead of the tail) */
  uint64_t pass_block;          /* lwc_take_run's cursor */
  uint32_t seen_futex;          /* wake_futex at our last wait */
};

/* Is byte BYTE of the file write-locked by some other open file? */
static bool
lwc_byte_locked (int fd, int byte)
{
  struct flock fl = {
    .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1,
  };
  if (fcntl (fd, F_OFD_GETLK, &fl) == -1)
    return false;
  return fl.l_type != F_UNLCK;
}

/* Fail with errno E and the message "PATH: PREFIXWHAT" in ERR. */
static struct lwc *
lwc_fail (struct lwc *c, int e, char *err, size_t errlen, const char *prefix,
          const char *what)
{
  if (err && errlen)
    snprintf (err, errlen, "%s: %s%s", c->path, prefix, what);
  if (c->map)
    munmap (c->map, c->map_len);
  if (c->fd >= 0)
    close (c->fd);
  free (c);
  errno = e;
  return NULL;
}

/* Blocks taken (pending) whose copy was never confirmed durable go back
 * to the dirty map, to be copied again.
 */
static void
lwc_pending_to_dirty (struct lwc *c)
{
  uint64_t w, nwords = (c->h->nblocks + 63) / 64;

  for (w = 0; w < nwords; w++) {
    _Atomic uint64_t *p = (_Atomic uint64_t *) c->pending + w;
    uint64_t bits = atomic_load (p);
    if (bits) {
      atomic_fetch_or ((_Atomic uint64_t *) c->dirty + w, bits);
      atomic_fetch_and (p, ~bits);
    }
  }
}

struct lwc *
lwc_attach (const char *dir, unsigned unit, int flags, char *err,
            size_t errlen)
{
  struct lwc *c = calloc (1, sizeof *c);
  const bool observe = flags & LWC_OBSERVE;
  struct lw_header *h;
  struct stat st;
  const char *why;

  if (c == NULL) {
    if (err && errlen)
      snprintf (err, errlen, "out of memory");
    return NULL;
  }
  c->fd = -1;
  c->flags = flags;
  if (lw_shm_path (c->path, sizeof c->path, dir ? dir : LW_DEFAULT_DIR, unit)
      >= (int) sizeof c->path)
    return lwc_fail (c, ENAMETOOLONG, err, errlen, "", "path too long");

  c->fd = open (c->path, (observe ? O_RDONLY : O_RDWR) | O_NOFOLLOW
                | O_CLOEXEC);
  if (c->fd == -1) {
    int e = errno;
    return lwc_fail (c, e, err, errlen,
                     e == ENOENT ? "no channel: " : "",
                     e == ENOENT ? "is nbdkit running with the livewatch "
                     "filter and this livewatch-unit?" : strerror (e));
  }

  /* The file carries the disk's data and steers what we write: trust it
   * only if it is a regular file that no one else can write, owned by us
   * or by root.  Root trusts the owner nbdkit dropped to (nbdkit -u),
   * since root can read it anyway and every field is validated.
   */
  if (fstat (c->fd, &st) == -1)
    return lwc_fail (c, errno, err, errlen, "", strerror (errno));
  if (!S_ISREG (st.st_mode))
    return lwc_fail (c, EPERM, err, errlen, "", "not a regular file");
  if (st.st_mode & 022)
    return lwc_fail (c, EPERM, err, errlen, "",
                     "writable by group or others; refusing it");
  if (st.st_uid != geteuid () && st.st_uid != 0 && geteuid () != 0)
    return lwc_fail (c, EPERM, err, errlen, "",
                     "owned by another user; refusing it");
  c->dev = st.st_dev;
  c->ino = st.st_ino;
  if ((uint64_t) st.st_size < LW_HEADER_SIZE)
    return lwc_fail (c, EAGAIN, err, errlen, "", "nbdkit is starting");

  h = mmap (NULL, LW_HEADER_SIZE, PROT_READ, MAP_SHARED, c->fd, 0);
  if (h == MAP_FAILED)
    return lwc_fail (c, errno, err, errlen, "mmap: ", strerror (errno));
  if (atomic_load (&h->state) != LW_STATE_READY) {
    uint32_t s = atomic_load (&h->state);
    munmap (h, LW_HEADER_SIZE);
    if (s == LW_STATE_INIT)
      return lwc_fail (c, EAGAIN, err, errlen, "", "nbdkit is starting");
    return lwc_fail (c, ENOENT, err, errlen, "",
                     "the filter has shut down");
  }
  why = lw_header_check (h, st.st_size);
  munmap (h, LW_HEADER_SIZE);
  if (why)
    return lwc_fail (c, EPROTO, err, errlen, "invalid header: ", why);
  if (!lwc_byte_locked (c->fd, LW_LOCK_FILTER))
    return lwc_fail (c, ESRCH, err, errlen, "",
                     "stale channel: its nbdkit is not running");

  if (!observe) {
    struct flock fl = {
      .l_type = F_WRLCK, .l_whence = SEEK_SET,
      .l_start = LW_LOCK_CONSUMER, .l_len = 1,
    };
    if (fcntl (c->fd, F_OFD_SETLK, &fl) == -1)
      return lwc_fail (c, EBUSY, err, errlen, "",
                       "another consumer is attached to this unit");
  }

  c->map_len = st.st_size;
  c->map = mmap (NULL, c->map_len,
                 observe ? PROT_READ : PROT_READ | PROT_WRITE,
                 MAP_SHARED, c->fd, 0);
  if (c->map == MAP_FAILED) {
    c->map = NULL;
    return lwc_fail (c, errno, err, errlen, "mmap: ", strerror (errno));
  }
  h = c->h = c->map;
  /* Validate again on the mapping we will use: the file could have been
   * replaced and resized between the two looks.
   */
  why = lw_header_check (h, c->map_len);
  if (why)
    return lwc_fail (c, EPROTO, err, errlen, "invalid header: ", why);
  c->epoch = h->epoch;
  c->ring = (const uint8_t *) c->map + h->ring_off;
  c->dirty = (uint8_t *) c->map + h->dirty_off;
  c->pending = (uint8_t *) c->map + h->pending_off;
  c->hint = (uint8_t *) c->map + h->hint_off;
  c->read_pos = atomic_load (&h->tail_pos);
  c->read_seq = atomic_load (&h->tail_seq);

  if (!observe) {
    atomic_store (&h->consumer_pid, getpid ());
    atomic_fetch_add (&h->attach_count, 1);
    /* Bits a dead predecessor took but never saw made durable. */
    lwc_pending_to_dirty (c);
  }
  return c;
}

void
lwc_detach (struct lwc *c)
{
  if (c == NULL)
    return;
  if (!(c->flags & LWC_OBSERVE) && lwc_alive (c))
    atomic_store (&c->h->consumer_pid, 0);
  munmap (c->map, c->map_len);
  close (c->fd);                /* drops the consumer lock */
  free (c);
}

const struct lw_header *
lwc_header (const struct lwc *c)
{
  return c->h;
}

bool
lwc_alive (struct lwc *c)
{
  struct stat st;

  if (atomic_load (&c->h->state) != LW_STATE_READY)
    return false;
  if (!lwc_byte_locked (c->fd, LW_LOCK_FILTER))
    return false;
  /* A new filter on the same unit unlinks the old file first. */
  if (stat (c->path, &st) == -1 || st.st_dev != c->dev || st.st_ino != c->ino)
    return false;
  return true;
}

bool
lwc_consumer_attached (const struct lwc *c)
{
  return lwc_byte_locked (c->fd, LW_LOCK_CONSUMER);
}

enum lw_mode
lwc_mode (const struct lwc *c)
{
  return atomic_load (&c->h->mode);
}

int
lwc_next (struct lwc *c, struct lwc_rec *rec)
{
  const struct lw_header *h = c->h;
  const uint64_t ring_size = h->ring_size;

  for (;;) {
    uint64_t head = atomic_load_explicit (&c->h->head_pos,
                                          memory_order_acquire);
    uint64_t idx, to_end;
    const struct lw_rec *r;

    if (c->read_pos == head)
      return 0;
    idx = c->read_pos % ring_size;
    to_end = ring_size - idx;
    r = (const struct lw_rec *) (c->ring + idx);
    /* Everything below comes from shared memory: check it all before
     * using any of it as a size or an offset.
     */
    if (head < c->read_pos || head - c->read_pos > ring_size
        || r->size < sizeof *r || r->size % LW_REC_ALIGN != 0
        || r->size > to_end || r->size > head - c->read_pos)
      goto corrupt;
    if (r->type == LW_REC_PAD) {
      c->read_pos += r->size;
      continue;
    }
    if (r->type > LW_REC_MARK || r->size != lw_rec_size (r->type, r->length)
        || r->seq != c->read_seq + 1
        || (r->type == LW_REC_MARK
            && (r->offset != 0
                || !lw_mark_label_ok ((const char *) (r + 1), r->length)))
        || (r->type != LW_REC_FLUSH && r->type != LW_REC_MARK
            && (r->offset > h->dev_size || r->length > h->dev_size - r->offset)))
      goto corrupt;
    rec->type = r->type;
    rec->length = r->length;
    rec->seq = r->seq;
    rec->offset = r->offset;
    rec->data = r->type == LW_REC_WRITE || r->type == LW_REC_MARK
                ? (const void *) (r + 1) : NULL;
    c->read_pos += r->size;
    c->read_seq = r->seq;
    rec->end_pos = c->read_pos;
    return 1;
  }
 corrupt:
  errno = EPROTO;
  return -1;
}

void
lwc_release (struct lwc *c, const struct lwc_rec *rec)
{
  assert (!(c->flags & LWC_OBSERVE));
  assert (rec->end_pos <= c->read_pos);
  /* Sequentially consistent: the filter's checkpoint reads tail_seq and
   * then the bitmaps, and must see every bit we set before this release
   * (lw_follow marks blocks before it releases the records that need
   * them marked).
   */
  atomic_store (&c->h->tail_seq, rec->seq);
  /* Release: all our reads of the record happen before the filter may
   * overwrite it.
   */
  atomic_store_explicit (&c->h->tail_pos, rec->end_pos, memory_order_release);
}

void
lwc_rewind (struct lwc *c)
{
  c->read_pos = atomic_load (&c->h->tail_pos);
  c->read_seq = atomic_load (&c->h->tail_seq);
  /* The session that copied our pending blocks failed before they were
   * durable: copy them again, from a fresh pass.
   */
  lwc_pending_to_dirty (c);
  c->pass_block = 0;
}

uint64_t
lwc_released_seq (const struct lwc *c)
{
  return atomic_load (&c->h->tail_seq);
}

bool
lwc_seq_continues (const struct lwc *c, uint64_t seq)
{
  const struct lw_header *h = c->h;
  uint64_t released = atomic_load (&h->tail_seq);

  if (seq > atomic_load (&h->head_seq))
    return false;               /* records this capture never made */
  if (seq >= released)
    return true;
  /* A continued capture: no record of this instance released yet, and
   * the image no older than the floor the state file kept.
   */
  return h->start_kind != LW_START_VOLATILE && released == h->start_seq
         && seq >= h->start_floor;
}

/* With a state file, wait until the filter has recorded gen and
 * gen_acked durably.
 */
#define LWC_PERSIST_MS 60000

static int
lwc_gen_persist (struct lwc *c)
{
  int r;

  if (!(atomic_load (&c->h->flags) & LW_FLAG_PERSISTENT))
    return 0;
  r = lwc_request (c, LW_REQ_PERSIST, LWC_PERSIST_MS, NULL);
  if (r == -1)
    return -1;
  if (r != LW_RES_OK) {
    errno = EIO;
    return -1;
  }
  return 0;
}

int
lwc_gen_next (struct lwc *c, uint64_t *gen)
{
  /* Published (and with a state file recorded) before the sync goes out:
   * if we or the filter die before the mirror's answer, the number is
   * still spent, and no other mirror can get it.
   */
  uint64_t g = atomic_load (&c->h->gen) + 1;

  assert (!(c->flags & LWC_OBSERVE));
  atomic_store (&c->h->gen, g);
  *gen = g;
  return lwc_gen_persist (c);
}

int
lwc_gen_ack (struct lwc *c, uint64_t gen)
{
  assert (!(c->flags & LWC_OBSERVE));
  assert (gen <= atomic_load (&c->h->gen));
  atomic_store (&c->h->gen_acked, gen);
  /* Only once this is durable may the copies' pending bits be cleared:
   * a restart must not let a mirror at the old gen continue without
   * them.
   */
  return lwc_gen_persist (c);
}

bool
lwc_gen_continues (const struct lwc *c, uint64_t image_gen)
{
  /* gen_acked: no bit was spent since that mirror's last copies were
   * confirmed.  gen: that mirror confirmed the newest copies, whose bits
   * are still pending (they go back to dirty and are copied again).
   */
  return image_gen == atomic_load (&c->h->gen_acked)
         || image_gen == atomic_load (&c->h->gen);
}

void
lwc_gen_get (const struct lwc *c, uint64_t *gen, uint64_t *acked)
{
  if (gen)
    *gen = atomic_load (&c->h->gen);
  if (acked)
    *acked = atomic_load (&c->h->gen_acked);
}

uint64_t
lwc_read_seq (const struct lwc *c)
{
  return c->read_seq;
}

/* Sleep on wake_futex, having read its value as F before checking for
 * whatever we wait for.
 */
static void
lwc_sleep (struct lwc *c, uint32_t f, int timeout_ms)
{
  atomic_store (&c->h->consumer_sleeping, 1);
  lw_futex_wait (&c->h->wake_futex, f, timeout_ms);
}

void
lwc_wait (struct lwc *c, int timeout_ms)
{
  uint32_t f = atomic_load (&c->h->wake_futex);

  /* Anything published since our last wait (a mode change, say) may be
   * what the caller has not seen yet: return and let it look.
   */
  if (f != c->seen_futex) {
    c->seen_futex = f;
    return;
  }
  if (c->read_pos != atomic_load (&c->h->head_pos))
    return;
  /* Sequentially consistent store then load, against the filter's
   * store of head_pos then exchange of consumer_sleeping: one of us sees
   * the other.
   */
  atomic_store (&c->h->consumer_sleeping, 1);
  if (c->read_pos != atomic_load (&c->h->head_pos))
    return;
  lw_futex_wait (&c->h->wake_futex, f, timeout_ms);
}

void
lwc_nudge (struct lwc *c)
{
  /* A wake needs no store, so an observer's read-only mapping will do;
   * the consumer wakes, finds nothing published, and looks around.
   */
  lw_futex_wake (&c->h->wake_futex);
}

/* Post REQ (with LABEL for LW_REQ_MARK) and wait for its answer. */
static int lwc_ask (struct lwc *c, enum lw_req req, const char *label,
                    int timeout_ms, uint64_t *ack_seq);

int
lwc_request (struct lwc *c, enum lw_req req, int timeout_ms,
             uint64_t *ack_seq)
{
  return lwc_ask (c, req, NULL, timeout_ms, ack_seq);
}

int
lwc_mark (struct lwc *c, const char *label, int timeout_ms, uint64_t *seq)
{
  if (!lw_mark_label_ok (label, strlen (label))) {
    errno = EINVAL;
    return -1;
  }
  return lwc_ask (c, LW_REQ_MARK, label, timeout_ms, seq);
}

static int
lwc_ask (struct lwc *c, enum lw_req req, const char *label,
                  int timeout_ms, uint64_t *ack_seq)
{
  struct lw_header *h = c->h;
  uint64_t id = atomic_load (&h->req_id) + 1;
  uint64_t deadline = lb_now_ms () + timeout_ms;

  assert (!(c->flags & LWC_OBSERVE));
  if (label) {
    memset (h->req_label, 0, sizeof h->req_label);
    memcpy (h->req_label, label, strlen (label));
  }
  atomic_store (&h->req_type, req);
  atomic_store (&h->req_id, id);
  atomic_fetch_add (&h->req_futex, 1);
  lw_futex_wake (&h->req_futex);

  for (;;) {
    uint32_t f = atomic_load (&h->wake_futex);
    uint64_t now;

    if (atomic_load (&h->ack_id) == id) {
      if (ack_seq)
        *ack_seq = atomic_load (&h->ack_seq);
      return atomic_load (&h->ack_result);
    }
    if (!lwc_alive (c)) {
      errno = ESRCH;
      return -1;
    }
    now = lb_now_ms ();
    if (now >= deadline) {
      errno = ETIMEDOUT;
      return -1;
    }
    lwc_sleep (c, f, deadline - now < 100 ? (int) (deadline - now) : 100);
  }
}

/* Move the set bits MASK of the word holding block B from dirty to
 * pending: pending first, then clear dirty, so that a crash between
 * leaves both set, which costs a copy, never a loss.  A write landing
 * after the clear sets the bit again and is seen by the next pass.
 */
static void
lwc_take_bits (struct lwc *c, uint64_t b, uint64_t mask)
{
  atomic_fetch_or (lw_bitmap_word (c->pending, b), mask);
  atomic_fetch_and (lw_bitmap_word (c->dirty, b), ~mask);
}

/* Of the blocks from B to the end of B's word, how many are dirty in a
 * row from B with the hint COMPARE (at most MAX); 0 if B is not dirty
 * or its hint differs.
 */
static uint64_t
lwc_run_in_word (struct lwc *c, uint64_t b, uint64_t max, bool compare)
{
  uint64_t word = atomic_load (lw_bitmap_word (c->dirty, b)) >> (b & 63);
  uint64_t hints = atomic_load (lw_bitmap_word (c->hint, b)) >> (b & 63);
  uint64_t n;

  if ((word & 1) == 0 || (bool) (hints & 1) != compare)
    return 0;
  /* Shifting brought zeroes in at the top, so ~word is 0 only for a
   * full word.
   */
  n = ~word == 0 ? 64 : (uint64_t) __builtin_ctzll (~word);
  /* Cut where the hint changes: a run is compared or copied whole. */
  if (compare)
    hints = ~hints;
  if (hints != 0 && (uint64_t) __builtin_ctzll (hints) < n)
    n = __builtin_ctzll (hints);
  return n < max ? n : max;
}

bool
lwc_take_run (struct lwc *c, uint64_t max, uint64_t *block, uint64_t *count,
              bool *compare)
{
  const uint64_t nblocks = c->h->nblocks;
  uint64_t b = c->pass_block;

  assert (!(c->flags & LWC_OBSERVE) && max > 0);
  while (b < nblocks) {
    _Atomic uint64_t *dw = lw_bitmap_word (c->dirty, b);
    uint64_t word = atomic_load (dw) >> (b & 63);
    uint64_t n, total;

    if (word == 0) {
      b = (b | 63) + 1;         /* next word */
      continue;
    }
    b += __builtin_ctzll (word);
    *compare = atomic_load (lw_bitmap_word (c->hint, b)) >> (b & 63) & 1;
    n = lwc_run_in_word (c, b, max, *compare);
    if (n == 0)
      continue;                 /* taken or cleared under us: look again */
    /* Take it, and go on into the next words while the run reaches a
     * word's end (small blocks: a run of contiguous dirty blocks travels
     * as one copy, up to MAX).
     */
    for (total = 0; n > 0; ) {
      uint64_t at = b + total;
      lwc_take_bits (c, at, (n == 64 ? UINT64_MAX : (UINT64_C(1) << n) - 1)
                            << (at & 63));
      total += n;
      if (((at + n) & 63) != 0 || at + n >= nblocks || total == max)
        break;
      n = lwc_run_in_word (c, at + n, max - total, *compare);
    }
    *block = b;
    *count = total;
    c->pass_block = b + total;
    return true;
  }
  c->pass_block = 0;
  return false;
}

void
lwc_done_run (struct lwc *c, uint64_t block, uint64_t count)
{
  while (count > 0) {
    uint64_t bit0 = block & 63;
    uint64_t n = count < 64 - bit0 ? count : 64 - bit0;
    uint64_t mask = (n == 64 ? UINT64_MAX : (UINT64_C(1) << n) - 1) << bit0;
    atomic_fetch_and (lw_bitmap_word (c->pending, block), ~mask);
    /* A hint only saves bytes: losing one costs a copy, nothing else. */
    if (atomic_load (lw_bitmap_word (c->hint, block)) & mask)
      atomic_fetch_and (lw_bitmap_word (c->hint, block), ~mask);
    block += n;
    count -= n;
  }
}

void
lwc_mark_range (struct lwc *c, uint64_t offset, uint64_t length)
{
  const struct lw_header *h = c->h;

  assert (!(c->flags & LWC_OBSERVE));
  if (length == 0 || offset >= h->dev_size)
    return;
  if (length > h->dev_size - offset)
    length = h->dev_size - offset;
  lw_bitmap_mark (c->dirty, offset / h->block_size,
                  (offset + length - 1) / h->block_size);
}

uint64_t
lwc_take_range (struct lwc *c, uint64_t block, uint64_t count)
{
  _Atomic uint64_t *dw = lw_bitmap_word (c->dirty, block);
  uint64_t range, bits;

  assert (!(c->flags & LWC_OBSERVE));
  assert (count > 0 && (block & 63) + count <= 64
          && block + count <= c->h->nblocks);
  range = (count == 64 ? UINT64_MAX : (UINT64_C(1) << count) - 1)
          << (block & 63);
  bits = atomic_load (dw) & range;
  if (bits == 0)
    return 0;
  lwc_take_bits (c, block, bits);
  return __builtin_popcountll (bits);
}

void
lwc_count_bits (const struct lwc *c, uint64_t *dirty, uint64_t *pending)
{
  uint64_t w, nwords = (c->h->nblocks + 63) / 64, d = 0, p = 0;

  for (w = 0; w < nwords; w++) {
    d += __builtin_popcountll (atomic_load ((_Atomic uint64_t *) c->dirty + w));
    p += __builtin_popcountll (atomic_load ((_Atomic uint64_t *) c->pending + w));
  }
  if (dirty)
    *dirty = d;
  if (pending)
    *pending = p;
}

uint64_t
lwc_count_hints (const struct lwc *c)
{
  uint64_t w, nwords = (c->h->nblocks + 63) / 64, n = 0;

  for (w = 0; w < nwords; w++)
    n += __builtin_popcountll (atomic_load ((_Atomic uint64_t *) c->hint + w));
  return n;
}

void
lwc_run_bytes (const struct lwc *c, uint64_t block, uint64_t count,
               uint64_t *offset, uint64_t *length)
{
  const uint64_t bs = c->h->block_size;
  uint64_t off = block * bs, end = (block + count) * bs;

  if (end > c->h->dev_size)
    end = c->h->dev_size;
  *offset = off;
  *length = end > off ? end - off : 0;
}
