/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: persistent copy-on-write overlays.  See overlay.h. */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#include <zlib.h>

#include "lb_array.h"
#include "lb_bytes.h"
#include "lb_err.h"
#include "lb_io.h"
#include "lb_log.h"
#include "overlay.h"
#include "points.h"

static const uint8_t overlay_magic[8] = { 'L', 'B', 'C', 'O', 'W', 0, 0, 1 };
#define OVERLAY_RMAGIC 0x5243424cu      /* "LBCR" */
#define OVERLAY_ZERO 1u

static uint32_t
overlay_crc (const void *p, size_t n)
{
  return (uint32_t) crc32 (crc32 (0, Z_NULL, 0), p, n);
}

static uint64_t
overlay_hash (uint64_t b)
{
  return lb_index_hash (LB_INDEX_HASH_START, &b, sizeof b);
}

const struct overlay_entry *
overlay_find (const struct overlay *o, uint64_t b)
{
  size_t pos = 0, e;
  uint64_t h = overlay_hash (b);

  while (lb_index_next (&o->ix, h, &pos, &e))
    if (o->e[e].block == b)
      return &o->e[e];
  return NULL;
}

/* Index block B at OFF (0: zeroes); a block already held is kept. */
static int
overlay_index (struct overlay *o, uint64_t b, uint64_t off)
{
  if (overlay_find (o, b))
    return 0;
  if (lb_array_grow (&o->e, &o->cap, o->n + 1, sizeof *o->e) == -1
      || lb_index_add (&o->ix, overlay_hash (b), o->n) == -1)
    return -1;
  o->e[o->n++] = (struct overlay_entry) { .block = b, .off = off };
  return 0;
}

static void
overlay_init (struct overlay *o)
{
  memset (o, 0, sizeof *o);
  o->fd = -1;
  o->ix = (struct lb_index) LB_INDEX_EMPTY;
}

int
overlay_create (struct overlay *o, const char *path, uint64_t size,
                int64_t time, char *err, size_t errlen)
{
  uint8_t h[OVERLAY_HEADER] = { 0 };
  overlay_init (o);
  o->path = strdup (path);
  if (o->path == NULL) {
    lb_errf (err, errlen, "out of memory");
    return -1;
  }
  memcpy (h, overlay_magic, 8);
  lb_put_le32 (h + 8, OVERLAY_BLOCK);
  lb_put_le64 (h + 16, size);
  lb_put_le64 (h + 24, (uint64_t) time);
  lb_put_le32 (h + 60, overlay_crc (h, 60));
  o->fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                0600);
  if (o->fd == -1 || lb_pwrite_all (o->fd, h, sizeof h, 0) == -1
      || fsync (o->fd) == -1) {
    lb_errf (err, errlen, "%s: %s", path, strerror (errno));
    if (o->fd >= 0)
      unlink (path);
    overlay_close (o);
    return -1;
  }
  points_sync_dir (path);
  o->size = size;
  o->end = OVERLAY_HEADER;
  return 0;
}

int
overlay_open (struct overlay *o, const char *path, char *err, size_t errlen)
{
  uint8_t h[OVERLAY_HEADER], r[OVERLAY_RECORD];
  uint8_t *data = NULL;
  struct stat sb;
  uint64_t pos;

  overlay_init (o);
  o->path = strdup (path);
  if (o->path == NULL) {
    lb_errf (err, errlen, "out of memory");
    return -1;
  }
  o->fd = open (path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (o->fd == -1 || fstat (o->fd, &sb) == -1) {
    lb_errf (err, errlen, "%s: %s", path, strerror (errno));
    goto fail;
  }
  if (lb_pread_all (o->fd, h, sizeof h, 0, LB_EOF_ZERO) == -1
      || memcmp (h, overlay_magic, 8) != 0
      || lb_get_le32 (h + 8) != OVERLAY_BLOCK
      || lb_get_le32 (h + 60) != overlay_crc (h, 60)) {
    lb_errf (err, errlen, "%s: not a livebackup overlay (bad header)", path);
    goto fail;
  }
  o->size = lb_get_le64 (h + 16);
  data = malloc (OVERLAY_BLOCK);
  if (data == NULL) {
    lb_errf (err, errlen, "out of memory");
    goto fail;
  }
  for (pos = OVERLAY_HEADER; pos + OVERLAY_RECORD <= (uint64_t) sb.st_size;) {
    uint32_t flags, len;
    uint64_t b;

    if (lb_pread_all (o->fd, r, sizeof r, pos, LB_EOF_ZERO) == -1)
      break;
    flags = lb_get_le32 (r + 4);
    b = lb_get_le64 (r + 8);
    len = lb_get_le32 (r + 16);
    if (lb_get_le32 (r) != OVERLAY_RMAGIC
        || lb_get_le32 (r + 28) != overlay_crc (r, 28)
        || (flags & ~OVERLAY_ZERO)
        || len != ((flags & OVERLAY_ZERO) ? 0 : OVERLAY_BLOCK)
        || pos + OVERLAY_RECORD + len > (uint64_t) sb.st_size)
      break;
    if (len && (lb_pread_all (o->fd, data, len, pos + OVERLAY_RECORD,
                              LB_EOF_ZERO) == -1
                || overlay_crc (data, len) != lb_get_le32 (r + 20)))
      break;
    if (overlay_index (o, b, len ? pos + OVERLAY_RECORD : 0) == -1) {
      lb_errf (err, errlen, "out of memory");
      goto fail;
    }
    pos += OVERLAY_RECORD + len;
  }
  free (data);
  data = NULL;
  if (pos < (uint64_t) sb.st_size) {
    lb_warn ("%s: %llu bytes at the end were not a whole record (written "
             "when lbd stopped); cut off", path,
             (unsigned long long) (sb.st_size - pos));
    if (ftruncate (o->fd, pos) == -1 || fdatasync (o->fd) == -1) {
      lb_errf (err, errlen, "%s: %s", path, strerror (errno));
      goto fail;
    }
  }
  o->end = pos;
  return 0;

 fail:
  free (data);
  overlay_close (o);
  return -1;
}

void
overlay_close (struct overlay *o)
{
  if (o->fd >= 0)
    close (o->fd);
  free (o->path);
  free (o->e);
  lb_index_free (&o->ix);
  overlay_init (o);
}

int
overlay_append (struct overlay *o, const uint64_t *b, const uint8_t *data,
                size_t n)
{
  uint8_t r[OVERLAY_RECORD];
  uint64_t pos = o->end, *offs;
  size_t i, k = 0;
  int e;

  offs = malloc (n * sizeof *offs + 1);
  if (offs == NULL)
    return -1;
  for (i = 0; i < n; i++) {
    const uint8_t *d = data + i * OVERLAY_BLOCK;
    bool zero = lb_is_zero (d, OVERLAY_BLOCK);
    uint32_t len = zero ? 0 : OVERLAY_BLOCK;

    offs[i] = UINT64_MAX;
    if (overlay_find (o, b[i]))
      continue;
    memset (r, 0, sizeof r);
    lb_put_le32 (r, OVERLAY_RMAGIC);
    lb_put_le32 (r + 4, zero ? OVERLAY_ZERO : 0);
    lb_put_le64 (r + 8, b[i]);
    lb_put_le32 (r + 16, len);
    lb_put_le32 (r + 20, len ? overlay_crc (d, len) : 0);
    lb_put_le32 (r + 28, overlay_crc (r, 28));
    if (lb_pwrite_all (o->fd, r, sizeof r, pos) == -1
        || (len && lb_pwrite_all (o->fd, d, len, pos + OVERLAY_RECORD) == -1))
      goto fail;
    offs[i] = len ? pos + OVERLAY_RECORD : 0;
    pos += OVERLAY_RECORD + len;
    k++;
  }
  /* Durable before the caller changes the image (overlay.h). */
  if (k > 0 && fdatasync (o->fd) == -1)
    goto fail;
  o->end = pos;
  for (i = 0; i < n; i++)
    if (offs[i] != UINT64_MAX && overlay_index (o, b[i], offs[i]) == -1)
      goto fail;
  free (offs);
  return 0;

 fail:
  e = errno;
  /* Whatever was indexed is durable and true; the rest is cut off. */
  free (offs);
  errno = e;
  return -1;
}

int
overlay_read (const struct overlay *o, const struct overlay_entry *e,
              uint8_t *buf)
{
  if (e->off == 0) {
    memset (buf, 0, OVERLAY_BLOCK);
    return 0;
  }
  return lb_pread_all (o->fd, buf, OVERLAY_BLOCK, e->off, LB_EOF_FAIL);
}

uint64_t
overlay_bytes (const struct overlay *o)
{
  struct stat sb;

  return fstat (o->fd, &sb) == 0 ? (uint64_t) sb.st_blocks * 512 : 0;
}
