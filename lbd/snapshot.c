/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: copy-on-write snapshots of an image.  See snapshot.h. */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <inttypes.h>
#include <libgen.h>
#include <unistd.h>
#include <sys/stat.h>

#include "image.h"
#include "lb_bytes.h"
#include "lb_io.h"
#include "lb_log.h"
#include "snapshot.h"

/* The granule of sparseness in overlays. */
#define SNAP_PAGE 4096

static bool
snap_bit (const struct snapshot *s, uint64_t b)
{
  return (s->saved[b >> 6] >> (b & 63)) & 1;
}

static void
snap_set_bit (struct snapshot *s, uint64_t b)
{
  s->saved[b >> 6] |= UINT64_C (1) << (b & 63);
}

/* Is [OFF, OFF+LEN) of FD a hole (no data)?  false when unsure. */
static bool
snap_is_hole (int fd, uint64_t off, uint64_t len)
{
  off_t d = lseek (fd, off, SEEK_DATA);

  if (d == -1)
    return errno == ENXIO;
  return (uint64_t) d >= off + len;
}

int
snapset_init (struct snapset *ss, const char *image, bool consistent,
              bool enabled)
{
  pthread_rwlockattr_t a;

  memset (ss, 0, sizeof *ss);
  ss->image = strdup (image);
  if (ss->image == NULL)
    return -1;
  pthread_rwlockattr_init (&a);
  /* The writer is replication: readers must not starve it. */
  pthread_rwlockattr_setkind_np (&a,
                                 PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init (&ss->lock, &a);
  pthread_rwlockattr_destroy (&a);
  ss->consistent = consistent;
  ss->enabled = enabled;
  ss->next_id = 1;
  return 0;
}

static void
snap_free (struct snapshot *s)
{
  if (s->fd >= 0)
    close (s->fd);
  if (s->path && unlink (s->path) == -1 && errno != ENOENT)
    lb_warn ("%s: cannot delete: %s", s->path, strerror (errno));
  free (s->path);
  free (s->saved);
  free (s);
}

void
snapset_destroy (struct snapset *ss)
{
  struct snapshot *s, *n;

  for (s = ss->list; s; s = n) {
    n = s->next;
    snap_free (s);
  }
  ss->list = ss->lastc = NULL;
  free (ss->buf);
  free (ss->image);
  ss->buf = NULL;
  ss->image = NULL;
  pthread_rwlock_destroy (&ss->lock);
}

static void
snapset_stale_one (const char *path, const char *suffix, void *arg)
{
  (void) arg;
  if (strncmp (suffix, ".snap-", 6) != 0 || suffix[6] == '\0'
      || strspn (suffix + 6, "0123456789") != strlen (suffix + 6))
    return;
  if (unlink (path) == 0)
    lb_info ("%s: deleted an overlay left by an earlier lbd", path);
}

void
snapset_remove_stale (const char *image)
{
  image_siblings (image, snapset_stale_one, NULL);
}

/* Take a new snapshot of the image open as FD.  Lock held for writing. */
static struct snapshot *
snap_create (struct snapset *ss, int fd, char *why, size_t whylen)
{
  struct snapshot *s;
  struct stat sb;
  int tries;

  if (fstat (fd, &sb) == -1) {
    snprintf (why, whylen, "%s: %s", ss->image, strerror (errno));
    return NULL;
  }
  s = calloc (1, sizeof *s);
  if (s == NULL)
    goto nomem;
  s->fd = -1;
  s->set = ss;
  s->size = sb.st_size;
  s->nblocks = (s->size + SNAP_BLOCK - 1) >> SNAP_SHIFT;
  s->saved = calloc ((s->nblocks + 63) / 64 + 1, sizeof *s->saved);
  if (s->saved == NULL)
    goto nomem;
  if (ss->buf == NULL && (ss->buf = malloc (SNAP_BLOCK)) == NULL)
    goto nomem;
  for (tries = 0; tries < 1000; tries++) {
    s->id = ss->next_id++;
    free (s->path);
    if (asprintf (&s->path, "%s.snap-%u", ss->image, s->id) == -1) {
      s->path = NULL;
      goto nomem;
    }
    s->fd = open (s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                  0600);
    if (s->fd >= 0 || errno != EEXIST)
      break;
  }
  if (s->fd == -1) {
    snprintf (why, whylen, "%s: %s", s->path, strerror (errno));
    free (s->path);
    s->path = NULL;
    snap_free (s);
    return NULL;
  }
  s->taken = time (NULL);
  s->gen = ss->gen;
  s->next = ss->list;
  ss->list = s;
  lb_debug ("%s: snapshot %u taken (%" PRIu64 " bytes)", ss->image, s->id,
            s->size);
  return s;

 nomem:
  snprintf (why, whylen, "out of memory");
  if (s)
    snap_free (s);
  return NULL;
}

/* A snapshot of the image as it is now: the newest one if the image has
 * not changed since it was taken, else a new one.  Lock held for writing.
 */
static struct snapshot *
snap_current (struct snapset *ss, int fd, char *why, size_t whylen)
{
  struct snapshot *s = ss->list;

  if (s && !s->broken && s->gen == ss->gen)
    return s;
  return snap_create (ss, fd, why, whylen);
}

/* Drop one reference.  Lock held for writing. */
static void
snap_unref (struct snapshot *s)
{
  struct snapset *ss = s->set;
  struct snapshot **pp;

  if (--s->refs > 0)
    return;
  for (pp = &ss->list; *pp; pp = &(*pp)->next)
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  lb_debug ("%s: snapshot %u dropped (%" PRIu64 " blocks saved)", ss->image,
            s->id, s->nsaved);
  snap_free (s);
}

static void
snap_break (struct snapshot *s, const char *what, int e)
{
  if (s->broken)
    return;
  s->broken = true;
  snprintf (s->why, sizeof s->why, "%s: %s", what, strerror (e));
  lb_err ("%s: snapshot %u cannot be kept (%s); its readers get I/O errors "
          "from now on", s->set->image, s->id, s->why);
}

/* Save the old content of block B into every snapshot that lacks it. */
static void
snap_preserve_block (struct snapset *ss, int fd, uint64_t image_size,
                     uint64_t b)
{
  struct snapshot *s;
  uint64_t start = b << SNAP_SHIFT, n = 0;
  bool need = false, hole;

  for (s = ss->list; s; s = s->next)
    if (!s->broken && b < s->nblocks && !snap_bit (s, b))
      need = true;
  if (!need)
    return;
  if (start < image_size)
    n = image_size - start < SNAP_BLOCK ? image_size - start : SNAP_BLOCK;
  hole = n == 0 || snap_is_hole (fd, start, n);
  if (!hole) {
    if (lb_pread_all (fd, ss->buf, n, start, LB_EOF_ZERO) == -1) {
      int e = errno;
      for (s = ss->list; s; s = s->next)
        if (!s->broken && b < s->nblocks && !snap_bit (s, b))
          snap_break (s, "reading the image", e);
      return;
    }
    hole = lb_is_zero (ss->buf, n);
  }
  for (s = ss->list; s; s = s->next) {
    uint64_t m, p, q, written = 0;

    if (s->broken || b >= s->nblocks || snap_bit (s, b))
      continue;
    m = s->size - start < n ? s->size - start : n;
    /* Only the pages that hold data: the overlay stays as sparse as the
     * image was (a page never written reads as zeroes, since a block is
     * saved once).
     */
    for (p = 0; !hole && p < m; p = q) {
      while (p < m && lb_is_zero (ss->buf + p, m - p < SNAP_PAGE
                                                  ? m - p : SNAP_PAGE))
        p += SNAP_PAGE;
      if (p >= m)
        break;
      q = p;
      while (q < m && !lb_is_zero (ss->buf + q, m - q < SNAP_PAGE
                                                   ? m - q : SNAP_PAGE))
        q += SNAP_PAGE;
      if (q > m)
        q = m;
      if (lb_pwrite_all (s->fd, ss->buf + p, q - p, start + p) == -1)
        break;
      written += q - p;
    }
    if (p < m && !hole) {
      snap_break (s, s->path, errno);
      continue;
    }
    snap_set_bit (s, b);
    s->nsaved++;
    s->bytes += written;
    ss->cow_blocks++;
    ss->cow_bytes += written;
  }
}

void
snapset_write_begin (struct snapset *ss, int fd, uint64_t image_size,
                     uint64_t off, uint64_t len)
{
  uint64_t b, last;

  if (ss == NULL)
    return;
  pthread_rwlock_wrlock (&ss->lock);
  if (ss->list == NULL || len == 0)
    return;
  last = (off + len - 1) >> SNAP_SHIFT;
  for (b = off >> SNAP_SHIFT; b <= last; b++)
    snap_preserve_block (ss, fd, image_size, b);
}

void
snapset_write_end (struct snapset *ss)
{
  if (ss == NULL)
    return;
  ss->gen++;
  pthread_rwlock_unlock (&ss->lock);
}

void
snapset_enable (struct snapset *ss, bool enabled)
{
  pthread_rwlock_wrlock (&ss->lock);
  if (ss->enabled && !enabled && ss->lastc) {
    struct snapshot *s = ss->lastc;
    ss->lastc = NULL;
    snap_unref (s);
  }
  ss->enabled = enabled;
  pthread_rwlock_unlock (&ss->lock);
}

void
snapset_set_consistent (struct snapset *ss, bool consistent, int fd)
{
  char why[256];

  if (ss == NULL)
    return;
  pthread_rwlock_wrlock (&ss->lock);
  if (ss->enabled && ss->consistent && !consistent) {
    struct snapshot *s = snap_current (ss, fd, why, sizeof why);
    if (s) {
      s->refs++;
      ss->lastc = s;
      ss->lastc_time = time (NULL);
      lb_info ("%s: the image stops being consistent; snapshot %u keeps its "
               "last consistent state for restores", ss->image, s->id);
    }
    else
      lb_err ("%s: cannot keep the last consistent state (%s); exports of "
              "this image are refused until it is consistent again",
              ss->image, why);
  }
  else if (!ss->consistent && consistent && ss->lastc) {
    struct snapshot *s = ss->lastc;
    ss->lastc = NULL;
    lb_info ("%s: the image is consistent again; snapshot %u (its last "
             "consistent state) is dropped %s", ss->image, s->id,
             s->refs > 1 ? "when its readers leave" : "now");
    snap_unref (s);
  }
  ss->consistent = consistent;
  pthread_rwlock_unlock (&ss->lock);
}

struct snapshot *
snapset_open (struct snapset *ss, int fd, time_t *since, char *why,
              size_t whylen)
{
  struct snapshot *s = NULL;

  *since = 0;
  pthread_rwlock_wrlock (&ss->lock);
  if (ss->users >= SNAP_MAX_USERS)
    snprintf (why, whylen, "too many export connections to this image "
              "(at most %d at once)", SNAP_MAX_USERS);
  else if (ss->consistent)
    s = snap_current (ss, fd, why, whylen);
  else if (ss->lastc && !ss->lastc->broken) {
    s = ss->lastc;
    *since = ss->lastc_time;
  }
  else if (ss->lastc)
    snprintf (why, whylen, "the image is inconsistent (a scan or catch-up "
              "is running) and its last consistent state was lost (%s)",
              ss->lastc->why);
  else
    snprintf (why, whylen, "the image is inconsistent (a scan or catch-up "
              "is running, or was interrupted) and lbd holds no consistent "
              "state of it (it was not consistent when lbd started, nor "
              "since)");
  if (s) {
    s->refs++;
    ss->users++;
  }
  pthread_rwlock_unlock (&ss->lock);
  return s;
}

void
snapshot_release (struct snapshot *s)
{
  struct snapset *ss;

  if (s == NULL)
    return;
  ss = s->set;
  pthread_rwlock_wrlock (&ss->lock);
  ss->users--;
  snap_unref (s);
  pthread_rwlock_unlock (&ss->lock);
}

enum snap_serves
snapset_would_serve (struct snapset *ss, int fd, uint64_t *size,
                     time_t *since)
{
  enum snap_serves r = SNAP_SERVES_NOTHING;

  pthread_rwlock_rdlock (&ss->lock);
  if (ss->consistent) {
    struct stat sb;
    r = SNAP_SERVES_LIVE;
    *since = 0;
    *size = 0;
    if (fd >= 0) {
      if (fstat (fd, &sb) == 0)
        *size = sb.st_size;
      else
        r = SNAP_SERVES_NOTHING;
    }
  }
  else if (ss->lastc && !ss->lastc->broken) {
    r = SNAP_SERVES_LAST_CONSISTENT;
    *size = ss->lastc->size;
    *since = ss->lastc_time;
  }
  pthread_rwlock_unlock (&ss->lock);
  return r;
}

int
snapshot_read (struct snapshot *s, int image_fd, void *buf, uint64_t off,
               size_t len)
{
  struct snapset *ss = s->set;
  uint8_t *p = buf;

  if (off > s->size || len > s->size - off) {
    errno = ERANGE;
    return -1;
  }
  while (len > 0) {
    size_t piece = len < SNAP_READ_PIECE ? len : SNAP_READ_PIECE;
    size_t done = 0;

    pthread_rwlock_rdlock (&ss->lock);
    if (s->broken) {
      pthread_rwlock_unlock (&ss->lock);
      errno = EIO;
      return -1;
    }
    while (done < piece) {
      uint64_t pos = off + done, b = pos >> SNAP_SHIFT;
      bool saved = snap_bit (s, b);
      uint64_t end = pos;
      size_t n;

      /* The run of blocks read from the same file. */
      do {
        end = ((end >> SNAP_SHIFT) + 1) << SNAP_SHIFT;
      } while (end < off + piece && snap_bit (s, end >> SNAP_SHIFT) == saved);
      if (end > off + piece)
        end = off + piece;
      n = end - pos;
      if (lb_pread_all (saved ? s->fd : image_fd, p + done, n, pos,
                        LB_EOF_ZERO) == -1) {
        int e = errno;
        pthread_rwlock_unlock (&ss->lock);
        errno = e;
        return -1;
      }
      done += n;
    }
    pthread_rwlock_unlock (&ss->lock);
    p += piece; off += piece; len -= piece;
  }
  return 0;
}

int
snapshot_extent (struct snapshot *s, int image_fd, uint64_t off,
                 uint64_t len, uint64_t *elen, bool *hole)
{
  struct snapset *ss = s->set;
  uint64_t end, limit;
  bool saved;
  off_t d, h;
  int fd;

  if (len == 0 || off >= s->size || len > s->size - off) {
    errno = ERANGE;
    return -1;
  }
  limit = off + len;
  /* Bound the bitmap walk (and the time under the lock). */
  if (limit - off > (UINT64_C (1) << 32))
    limit = off + (UINT64_C (1) << 32);
  pthread_rwlock_rdlock (&ss->lock);
  if (s->broken) {
    pthread_rwlock_unlock (&ss->lock);
    errno = EIO;
    return -1;
  }
  saved = snap_bit (s, off >> SNAP_SHIFT);
  end = off;
  do {
    end = ((end >> SNAP_SHIFT) + 1) << SNAP_SHIFT;
  } while (end < limit && snap_bit (s, end >> SNAP_SHIFT) == saved);
  if (end > limit)
    end = limit;
  fd = saved ? s->fd : image_fd;
  d = lseek (fd, off, SEEK_DATA);
  if (d == -1) {
    /* ENXIO: no data from OFF on.  Anything else: say data. */
    *hole = errno == ENXIO;
    *elen = end - off;
  }
  else if ((uint64_t) d > off) {
    *hole = true;
    *elen = ((uint64_t) d < end ? (uint64_t) d : end) - off;
  }
  else {
    h = lseek (fd, off, SEEK_HOLE);
    *hole = false;
    *elen = (h == -1 || (uint64_t) h >= end ? end : (uint64_t) h) - off;
    if (*elen == 0)
      *elen = end - off;
  }
  pthread_rwlock_unlock (&ss->lock);
  return 0;
}
