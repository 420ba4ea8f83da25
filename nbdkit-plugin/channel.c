/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: the producer side of the shared-memory channel.
 * See channel.h for the contract and doc/capture.md for the protocol.
 */

#include <config.h>

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <nbdkit-filter.h>

#include "channel.h"
#include "lw_futex.h"

struct lw_header *channel_hdr;
void *channel_dirty, *channel_pending, *channel_hint;

static int channel_fd = -1;
static char *channel_path;
static struct channel_config channel_cfg;
static void *channel_map;          /* whole file once sized */
static size_t channel_map_len;
static uint8_t *channel_ring;      /* ring region */

static uint64_t
channel_round_up (uint64_t v, uint64_t to)
{
  return (v + to - 1) / to * to;
}

/* Take (or test for) an OFD write lock on one byte of the channel file. */
static int
channel_lock_byte (int fd, int byte)
{
  struct flock fl = {
    .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1,
  };
  return fcntl (fd, F_OFD_SETLK, &fl);
}

int
channel_preflight (const struct channel_config *cfg)
{
  char path[4096];
  struct stat st;
  int fd;

  if (lw_shm_path (path, sizeof path, cfg->dir, cfg->unit)
      >= (int) sizeof path) {
    nbdkit_error ("livewatch-dir is too long");
    return -1;
  }
  errno = 0;
  if (stat (cfg->dir, &st) == -1 || !S_ISDIR (st.st_mode)) {
    nbdkit_error ("%s: cannot create channel: livewatch-dir=%s: %s", path,
                  cfg->dir, errno ? strerror (errno) : "not a folder");
    return -1;
  }
  fd = open (path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    int r = channel_lock_byte (fd, LW_LOCK_FILTER);
    close (fd);
    if (r == -1 && (errno == EAGAIN || errno == EACCES)) {
      nbdkit_error ("%s: livewatch-unit=%u is in use by another nbdkit",
                    path, cfg->unit);
      return -1;
    }
  }
  return 0;
}

int
channel_create (const struct channel_config *cfg)
{
  char path[4096];
  int fd;

  channel_cfg = *cfg;
  if (lw_shm_path (path, sizeof path, cfg->dir, cfg->unit)
      >= (int) sizeof path) {
    nbdkit_error ("livewatch-dir is too long");
    return -1;
  }

  /* A file left by an earlier filter: replace it if no filter holds it.
   * We unlink rather than reuse it so that a consumer still mapping the
   * old one sees a different inode and knows continuity was lost.
   */
  fd = open (path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    if (channel_lock_byte (fd, LW_LOCK_FILTER) == -1) {
      int e = errno;
      close (fd);
      if (e == EAGAIN || e == EACCES) {
        nbdkit_error ("%s: livewatch-unit=%u is in use by another nbdkit",
                      path, cfg->unit);
        return -1;
      }
      nbdkit_error ("%s: lock: %s", path, strerror (e));
      return -1;
    }
    close (fd);               /* drops our lock again */
    if (unlink (path) == -1 && errno != ENOENT) {
      nbdkit_error ("%s: cannot remove stale channel: %m", path);
      return -1;
    }
  }
  else if (errno != ENOENT) {
    nbdkit_error ("%s: %m", path);
    return -1;
  }

  fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd == -1) {
    nbdkit_error ("%s: cannot create channel: %m", path);
    return -1;
  }
  /* The file holds the disk's data: never wider than 0600, whatever the
   * umask says.
   */
  if (fchmod (fd, 0600) == -1 || channel_lock_byte (fd, LW_LOCK_FILTER) == -1
      || ftruncate (fd, LW_HEADER_SIZE) == -1) {
    nbdkit_error ("%s: %m", path);
    goto err;
  }
  channel_hdr = mmap (NULL, LW_HEADER_SIZE, PROT_READ | PROT_WRITE,
                      MAP_SHARED, fd, 0);
  if (channel_hdr == MAP_FAILED) {
    channel_hdr = NULL;
    nbdkit_error ("%s: mmap: %m", path);
    goto err;
  }
  channel_hdr->magic = LW_MAGIC;
  channel_hdr->layout_version = LW_LAYOUT_VERSION;
  channel_hdr->header_size = LW_HEADER_SIZE;
  channel_hdr->unit = cfg->unit;
  channel_hdr->filter_pid = getpid ();
  atomic_store (&channel_hdr->state, LW_STATE_INIT);

  channel_path = strdup (path);
  if (channel_path == NULL) {
    nbdkit_error ("strdup: %m");
    goto err;
  }
  channel_fd = fd;
  return 0;

 err:
  unlink (path);
  close (fd);
  return -1;
}

int
channel_size (uint64_t dev_size)
{
  struct lw_header *h = channel_hdr;
  const uint64_t page = 4096;
  uint64_t nblocks, bitmap_bytes, ring_size, file_size;
  uint64_t epoch;
  int r;

  assert (h != NULL && channel_fd >= 0);
  nblocks = (dev_size + channel_cfg.block - 1) / channel_cfg.block;
  bitmap_bytes = channel_round_up ((nblocks + 63) / 64 * 8, page);
  if (bitmap_bytes == 0)
    bitmap_bytes = page;
  ring_size = channel_round_up (channel_cfg.queue, page);
  file_size = LW_HEADER_SIZE + ring_size + 3 * bitmap_bytes;

  if (ftruncate (channel_fd, file_size) == -1) {
    nbdkit_error ("%s: cannot size channel to %" PRIu64 " bytes: %m",
                  channel_path, file_size);
    goto abandon;
  }
  /* Every page now, not at its first write: a full tmpfs would otherwise
   * kill nbdkit with SIGBUS in the middle of a client's write, and each
   * first touch of a ring page is a page fault on the write path
   * (3.6 % of nbdkit's CPU samples during bench/mirror-bench.sh's
   * burst; bench/RESULTS.md, "#6 met").
   */
  r = posix_fallocate (channel_fd, 0, file_size);
  if (r != 0) {
    nbdkit_error ("%s: cannot reserve %" PRIu64 " bytes for the channel "
                  "(livewatch-queue= and the bitmaps): %s", channel_path,
                  file_size, strerror (r));
    goto abandon;
  }
  channel_map = mmap (NULL, file_size, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_POPULATE, channel_fd, 0);
  if (channel_map == MAP_FAILED) {
    channel_map = NULL;
    nbdkit_error ("%s: mmap: %m", channel_path);
    goto abandon;
  }
  channel_map_len = file_size;
  munmap (h, LW_HEADER_SIZE);
  h = channel_hdr = channel_map;

  if (getrandom (&epoch, sizeof epoch, 0) != sizeof epoch) {
    nbdkit_error ("getrandom: %m");
    goto abandon;
  }
  h->epoch = epoch | 1;       /* never 0: 0 means "no epoch" to consumers */
  h->dev_size = dev_size;
  h->block_size = channel_cfg.block;
  h->nblocks = nblocks;
  h->ring_off = LW_HEADER_SIZE;
  h->ring_size = ring_size;
  h->dirty_off = LW_HEADER_SIZE + ring_size;
  h->bitmap_bytes = bitmap_bytes;
  h->pending_off = h->dirty_off + bitmap_bytes;
  h->hint_off = h->pending_off + bitmap_bytes;
  h->file_size = file_size;
  h->start_time = time (NULL);
  channel_ring = (uint8_t *) channel_map + h->ring_off;
  channel_dirty = (uint8_t *) channel_map + h->dirty_off;
  channel_pending = (uint8_t *) channel_map + h->pending_off;
  channel_hint = (uint8_t *) channel_map + h->hint_off;
  assert (lw_header_check (h, file_size) == NULL);

  /* No consumer has seen anything yet: start degraded.  With no state
   * file every block of the device is unknown to the backup and the
   * consumer's first job is a full scan; with one, the dirty bitmap says
   * what the backup may lack (persist.c).  The consumer asks for normal
   * mode once it has caught up.
   */
  atomic_store (&h->mode, LW_MODE_DEGRADED);
  atomic_store (&h->mode_since, (uint64_t) time (NULL));
  return 0;

 abandon:
  /* Never ready, and ours (we hold its lock): no consumer may wait on
   * it, and a full folder gets its space back.
   */
  if (unlink (channel_path) == -1)
    nbdkit_debug ("%s: unlink: %m", channel_path);
  return -1;
}

void
channel_ready (const struct channel_origin *o)
{
  struct lw_header *h = channel_hdr;

  assert (h != NULL && channel_map != NULL
          && atomic_load (&h->state) == LW_STATE_INIT);
  if (o) {
    assert (o->kind != LW_START_VOLATILE && o->epoch != 0
            && o->start_floor <= o->start_seq && o->gen_acked <= o->gen);
    h->epoch = o->epoch;
    h->start_kind = o->kind;
    h->region_size = o->region_size;
    h->start_seq = o->start_seq;
    h->start_floor = o->start_floor;
    h->recovered_regions = o->recovered_regions;
    h->start_dirty = o->start_dirty;
    h->start_hinted = o->start_hinted;
    snprintf (h->start_reason, sizeof h->start_reason, "%s",
              o->reason ? o->reason : "");
    atomic_store (&h->head_seq, o->start_seq);
    atomic_store (&h->tail_seq, o->start_seq);
    atomic_store (&h->gen, o->gen);
    atomic_store (&h->gen_acked, o->gen_acked);
    atomic_store (&h->flags, LW_FLAG_PERSISTENT);
  }
  assert (lw_header_check (h, h->file_size) == NULL);
  atomic_store (&h->state, LW_STATE_READY);
  nbdkit_debug ("livewatch: %s ready: size %" PRIu64 ", %" PRIu64
                " blocks of %u, ring %" PRIu64 ", epoch %016" PRIx64
                ", first seq %" PRIu64, channel_path, h->dev_size,
                h->nblocks, h->block_size, h->ring_size, h->epoch,
                atomic_load (&h->head_seq) + 1);
}

void
channel_close (void)
{
  if (channel_hdr) {
    atomic_store (&channel_hdr->state, LW_STATE_GONE);
    channel_wake_consumer ();
  }
  if (channel_map)
    munmap (channel_map, channel_map_len);
  else if (channel_hdr)
    munmap (channel_hdr, LW_HEADER_SIZE);
  channel_map = NULL;
  channel_hdr = NULL;
  channel_dirty = channel_pending = channel_hint = NULL;
  if (channel_fd >= 0)
    close (channel_fd);
  channel_fd = -1;
  free (channel_path);
  channel_path = NULL;
}

void
channel_wake_consumer (void)
{
  struct lw_header *h = channel_hdr;

  atomic_fetch_add (&h->wake_futex, 1);
  /* Pairs with the consumer's store of consumer_sleeping followed by
   * its re-check of head_pos: either it sees our head, or we see it
   * sleeping (both sequentially consistent).
   */
  if (atomic_exchange (&h->consumer_sleeping, 0))
    lw_futex_wake (&h->wake_futex);
}

bool
channel_append (uint32_t type, uint64_t offset, uint32_t length,
                const void *data)
{
  struct lw_header *h = channel_hdr;
  const uint64_t ring_size = h->ring_size;
  const uint64_t size = lw_rec_size (type, length);
  uint64_t head = atomic_load_explicit (&h->head_pos, memory_order_relaxed);
  uint64_t tail = atomic_load_explicit (&h->tail_pos, memory_order_acquire);
  uint64_t idx, to_end, pad = 0, used;
  struct lw_rec *r;

  assert (atomic_load (&h->mode) == LW_MODE_NORMAL);
  /* The consumer owns tail_pos; never trust it past what we published. */
  if (tail > head || head - tail > ring_size)
    return false;
  used = head - tail;
  idx = head % ring_size;
  to_end = ring_size - idx;
  if (size > to_end)
    pad = to_end;
  if (size > ring_size || pad + size > ring_size - used)
    return false;

  if (pad) {
    r = (struct lw_rec *) (channel_ring + idx);
    *r = (struct lw_rec) { .type = LW_REC_PAD, .size = (uint32_t) pad };
    head += pad;
    idx = 0;
  }
  r = (struct lw_rec *) (channel_ring + idx);
  *r = (struct lw_rec) {
    .type = type, .size = (uint32_t) size,
    .seq = atomic_load_explicit (&h->head_seq, memory_order_relaxed) + 1,
    .offset = offset, .length = length,
  };
  if (type == LW_REC_WRITE || type == LW_REC_MARK)
    memcpy (r + 1, data, length);

  atomic_store_explicit (&h->head_seq, r->seq, memory_order_release);
  atomic_store (&h->head_pos, head + size);   /* publishes the record */
  atomic_fetch_add_explicit (&h->n_records, 1, memory_order_relaxed);
  if (type == LW_REC_WRITE)
    atomic_fetch_add_explicit (&h->n_bytes_queued, length,
                               memory_order_relaxed);
  return true;
}

int
channel_unreleased (void (*fn) (void *opaque, uint64_t offset,
                                uint64_t length),
                    void *opaque)
{
  const struct lw_header *h = channel_hdr;
  const uint64_t ring_size = h->ring_size;
  uint64_t pos = atomic_load (&h->tail_pos);
  const uint64_t head = atomic_load (&h->head_pos);

  /* The consumer owns tail_pos: trust nothing it says. */
  if (pos > head || head - pos > ring_size || pos % LW_REC_ALIGN != 0)
    return -1;
  while (pos < head) {
    const struct lw_rec *r =
      (const struct lw_rec *) (channel_ring + pos % ring_size);
    if (r->size < sizeof *r || r->size % LW_REC_ALIGN != 0
        || r->size > head - pos || r->size > ring_size - pos % ring_size)
      return -1;
    if (r->type != LW_REC_PAD && r->type != LW_REC_FLUSH
        && r->type != LW_REC_MARK)
      fn (opaque, r->offset, r->length);
    pos += r->size;
  }
  return 0;
}

void
channel_mark (uint64_t offset, uint64_t length)
{
  struct lw_header *h = channel_hdr;
  void *dirty = channel_dirty;
  uint64_t first, last;

  if (length == 0 || offset >= h->dev_size)
    return;
  if (length > h->dev_size - offset)
    length = h->dev_size - offset;
  first = offset / h->block_size;
  last = (offset + length - 1) / h->block_size;
  lw_bitmap_mark (dirty, first, last);
  atomic_fetch_add_explicit (&h->n_bits_set, 1, memory_order_relaxed);
}

void
channel_degrade (const char *why)
{
  struct lw_header *h = channel_hdr;

  if (atomic_load (&h->mode) == LW_MODE_DEGRADED)
    return;
  atomic_store (&h->mode, LW_MODE_DEGRADED);
  atomic_fetch_add (&h->n_degrade, 1);
  atomic_store (&h->mode_since, (uint64_t) time (NULL));
  nbdkit_debug ("livewatch: unit %u degraded: %s", h->unit, why);
  channel_wake_consumer ();
}

bool
channel_resume (void)
{
  struct lw_header *h = channel_hdr;
  uint64_t head = atomic_load (&h->head_pos);
  uint64_t tail = atomic_load (&h->tail_pos);

  if (atomic_load (&h->mode) == LW_MODE_NORMAL)
    return true;
  /* Hysteresis: degraded means the ring filled; going back with the ring
   * still mostly full would degrade again at the next burst.
   */
  if (tail > head || head - tail > h->ring_size / 2)
    return false;
  atomic_store (&h->mode, LW_MODE_NORMAL);
  atomic_fetch_add (&h->n_resume, 1);
  atomic_store (&h->mode_since, (uint64_t) time (NULL));
  nbdkit_debug ("livewatch: unit %u back to normal", h->unit);
  return true;
}

bool
channel_consumer_alive (void)
{
  struct flock fl = {
    .l_type = F_WRLCK, .l_whence = SEEK_SET,
    .l_start = LW_LOCK_CONSUMER, .l_len = 1,
  };
  if (fcntl (channel_fd, F_OFD_GETLK, &fl) == -1)
    return true;              /* cannot tell: assume alive, ring bounds us */
  return fl.l_type != F_UNLCK;
}
