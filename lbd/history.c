/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: an image's restore points.  See history.h. */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <unistd.h>
#include <sys/stat.h>

#include "history.h"
#include "history_impl.h"
#include "lb_array.h"
#include "lb_bytes.h"
#include "lb_err.h"
#include "lb_io.h"
#include "lb_log.h"
#include "lb_time.h"


uint64_t
hist_nblocks (const struct hist_point *pt)
{
  return (pt->e.size + OVERLAY_BLOCK - 1) / OVERLAY_BLOCK;
}

/* Where PT is in the list, or -1. */
ssize_t
hist_index (const struct history *h, const struct hist_point *pt)
{
  size_t i;

  for (i = 0; i < h->n; i++)
    if (h->p[i] == pt)
      return (ssize_t) i;
  return -1;
}

static void
hist_point_close (struct hist_point *pt)
{
  if (pt->fd >= 0)
    close (pt->fd);
  pt->fd = -1;
  overlay_close (&pt->ov);
}

/* Delete PT's data file and free it: it is off the list, unused. */
void
hist_point_delete (struct history *h, struct hist_point *pt)
{
  char *path = points_path (h->image, h->mode, pt->e.id);

  hist_point_close (pt);
  if (path && unlink (path) == -1 && errno != ENOENT)
    lb_warn ("%s: cannot delete: %s", path, strerror (errno));
  free (path);
  free (pt);
}

/* The list as stored. */
int
hist_store (struct history *h)
{
  struct points_entry *e = calloc (h->n + 1, sizeof *e);
  size_t i;
  int r, er;

  if (e == NULL)
    return -1;
  for (i = 0; i < h->n; i++)
    e[i] = h->p[i]->e;
  r = points_store (h->image, h->mode, e, h->n);
  er = errno;
  free (e);
  errno = er;
  return r;
}

/* Open the data of PT (in the list or about to be). */
static int
hist_point_open (struct history *h, struct hist_point *pt, char *err,
                 size_t errlen)
{
  char *path = points_path (h->image, h->mode, pt->e.id);
  int r = 0;

  if (path == NULL) {
    lb_errf (err, errlen, "out of memory");
    return -1;
  }
  if (h->mode == POINTS_MODE_REFLINK) {
    pt->fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (pt->fd == -1) {
      lb_errf (err, errlen, "%s: %s", path, strerror (errno));
      r = -1;
    }
  }
  else
    r = overlay_open (&pt->ov, path, err, errlen);
  free (path);
  return r;
}

static struct hist_point *
hist_point_new (struct history *h, const struct points_entry *e)
{
  struct hist_point *pt = calloc (1, sizeof *pt);

  if (pt == NULL)
    return NULL;
  pt->h = h;
  pt->e = *e;
  pt->fd = -1;
  pt->ov.fd = -1;
  return pt;
}

static int
hist_append (struct history *h, struct hist_point *pt)
{
  if (lb_array_grow (&h->p, &h->cap, h->n + 1, sizeof *h->p) == -1)
    return -1;
  h->p[h->n++] = pt;
  return 0;
}

void
hist_unlist (struct history *h, size_t i)
{
  memmove (h->p + i, h->p + i + 1, (h->n - i - 1) * sizeof *h->p);
  h->n--;
}

int
history_init (struct history *h, const char *image,
              const struct lb_history *policy)
{
  pthread_rwlockattr_t a;
  struct points_entry *e = NULL;
  char err[512];
  size_t n = 0, i;
  bool dropped = false;

  memset (h, 0, sizeof *h);
  h->image = strdup (image);
  h->buf = malloc ((size_t) HISTORY_BATCH * OVERLAY_BLOCK);
  h->blocks = malloc (HISTORY_BATCH * sizeof *h->blocks);
  if (h->image == NULL || h->buf == NULL || h->blocks == NULL) {
    free (h->image);
    free (h->buf);
    free (h->blocks);
    return -1;
  }
  h->policy = *policy;
  pthread_rwlockattr_init (&a);
  pthread_rwlockattr_setkind_np (&a,
                                 PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init (&h->lock, &a);
  pthread_rwlockattr_destroy (&a);
  pthread_mutex_init (&h->mu, NULL);
  pthread_cond_init (&h->cond, NULL);

  if (points_load (image, &h->mode, &e, &n, err, sizeof err) == -1) {
    /* Keep what is there for a person to look at; take no points. */
    lb_err ("%s; its restore points are not served, and no new ones are "
            "taken", err);
    h->disabled = true;
    return 0;
  }
  for (i = 0; i < n; i++) {
    struct hist_point *pt = hist_point_new (h, &e[i]);
    if (pt == NULL || hist_append (h, pt) == -1) {
      free (pt);
      free (e);
      h->disabled = true;
      return 0;
    }
    if (hist_point_open (h, pt, err, sizeof err) == -1) {
      lb_err ("restore point %s of %s cannot be read (%s); it is dropped "
              "from the list", pt->e.id, image, err);
      hist_unlist (h, h->n - 1);
      free (pt);
      dropped = true;
    }
  }
  free (e);
  if (dropped && hist_store (h) == -1)
    lb_err ("%s.points: %s", image, strerror (errno));
  {
    struct points_entry *le = calloc (h->n + 1, sizeof *le);
    if (le) {
      for (i = 0; i < h->n; i++)
        le[i] = h->p[i]->e;
      points_remove_stale (image, h->mode, le, h->n);
      free (le);
    }
  }
  if (h->n)
    lb_info ("%s: %zu restore point%s (%s), oldest %s, newest %s", image,
             h->n, h->n == 1 ? "" : "s",
             h->mode == POINTS_MODE_REFLINK ? "reflinked copies" : "overlays",
             h->p[0]->e.id, h->p[h->n - 1]->e.id);
  return 0;
}

void
history_destroy (struct history *h)
{
  size_t i;

  if (h->image == NULL)
    return;
  pthread_mutex_lock (&h->mu);
  h->stop = true;
  pthread_cond_broadcast (&h->cond);
  pthread_mutex_unlock (&h->mu);
  if (h->thread_on)
    pthread_join (h->thread, NULL);
  for (i = 0; i < h->n; i++) {
    hist_point_close (h->p[i]);
    free (h->p[i]);
  }
  free (h->p);
  free (h->buf);
  free (h->blocks);
  free (h->image);
  pthread_rwlock_destroy (&h->lock);
  pthread_mutex_destroy (&h->mu);
  pthread_cond_destroy (&h->cond);
  memset (h, 0, sizeof *h);
}

void
history_set_policy (struct history *h, const struct lb_history *policy)
{
  pthread_rwlock_wrlock (&h->lock);
  h->policy = *policy;
  pthread_rwlock_unlock (&h->lock);
}

/* An overlay could not be written: no point reads its moment for sure
 * any more.  Off the list, durably, before the image changes.  LOCK
 * held for writing.
 */
static void
hist_fail_all (struct history *h, const char *what, int e)
{
  size_t i;

  lb_err ("%s: %s: %s; every restore point of the image is dropped (their "
          "blocks could not be saved before the image changed)", h->image,
          what, strerror (e));
  for (i = 0; i < h->n; i++) {
    struct hist_point *pt = h->p[i];
    pt->broken = true;
    if (pt->refs == 0 && !pt->busy)
      hist_point_delete (h, pt);
  }
  h->n = 0;
  if (hist_store (h) == -1)
    lb_err ("%s.points: %s", h->image, strerror (errno));
}

/* Save blocks H->blocks[0..K) (contents in H->buf) into PT. */
static void
hist_save (struct history *h, struct hist_point *pt, size_t k)
{
  uint64_t t0 = lb_now_ms ();

  if (k == 0)
    return;
  if (overlay_append (&pt->ov, h->blocks, h->buf, k) == -1) {
    hist_fail_all (h, pt->ov.path, errno);
    return;
  }
  h->saved_blocks += k;
  h->write_ms += lb_now_ms () - t0;
}

/* Does the write of BUF (NULL: zeroes; ZERO false: a truncation) to
 * [OFF, OFF+LEN) leave block B, whose old content is OLD, as it is?
 * Then it need not be saved: a catch-up or scan rewrites whole runs of
 * which most blocks are unchanged.
 */
static bool
hist_unchanged (const uint8_t *old, uint64_t b, uint64_t off, uint64_t len,
                const uint8_t *buf, bool zero)
{
  uint64_t start = b * OVERLAY_BLOCK, from, to;

  if (buf == NULL && !zero)
    return false;
  from = off > start ? off : start;
  to = off + len < start + OVERLAY_BLOCK ? off + len : start + OVERLAY_BLOCK;
  if (buf == NULL)
    return lb_is_zero (old + (from - start), to - from);
  return memcmp (old + (from - start), buf + (from - off), to - from) == 0;
}

void
history_write_begin (struct history *h, int fd, uint64_t image_size,
                     uint64_t off, uint64_t len, const void *buf, bool zero)
{
  struct hist_point *pt;
  uint64_t b, last;
  size_t k = 0;

  if (h == NULL)
    return;
  pthread_rwlock_wrlock (&h->lock);
  if (h->mode != POINTS_MODE_OVERLAY || h->n == 0 || len == 0)
    return;
  pt = h->p[h->n - 1];
  /* Only blocks the point has (it may be smaller than the image). */
  if (off / OVERLAY_BLOCK >= hist_nblocks (pt))
    return;
  last = (off + len - 1) / OVERLAY_BLOCK;
  if (last >= hist_nblocks (pt))
    last = hist_nblocks (pt) - 1;
  for (b = off / OVERLAY_BLOCK; b <= last && h->n > 0; b++) {
    uint64_t start = b * OVERLAY_BLOCK;
    uint8_t *d = h->buf + k * OVERLAY_BLOCK;

    if (overlay_find (&pt->ov, b))
      continue;
    if (start >= image_size)
      memset (d, 0, OVERLAY_BLOCK);
    else if (lb_pread_all (fd, d, OVERLAY_BLOCK, start, LB_EOF_ZERO) == -1) {
      hist_fail_all (h, "reading the image", errno);
      return;
    }
    if (hist_unchanged (d, b, off, len, buf, zero)) {
      h->unchanged_blocks++;
      continue;
    }
    h->blocks[k++] = b;
    if (k == HISTORY_BATCH) {
      hist_save (h, pt, k);
      k = 0;
    }
  }
  if (h->n > 0)
    hist_save (h, pt, k);
}

void
history_write_end (struct history *h)
{
  if (h)
    pthread_rwlock_unlock (&h->lock);
}

/* Is ID the name of a listed point?  LOCK held. */
static bool
hist_id_taken (const struct history *h, const char *id)
{
  size_t i;

  for (i = 0; i < h->n; i++)
    if (strcmp (h->p[i]->e.id, id) == 0)
      return true;
  return false;
}

int
history_take (struct history *h, int fd, int64_t now, const char *how,
              const char *label, char id[POINTS_ID_LEN], char *err,
              size_t errlen)
{
  struct points_entry e = { .time = now };
  struct hist_point *pt = NULL;
  uint64_t t0 = lb_now_ms ();
  enum points_mode mode;
  struct stat sb;
  char *path = NULL;
  int r = -1;

  points_id (now, e.id);
  snprintf (e.how, sizeof e.how, "%s", how);
  if (label)
    snprintf (e.label, sizeof e.label, "%s", label);
  if (fstat (fd, &sb) == -1) {
    lb_errf (err, errlen, "%s: %s", h->image, strerror (errno));
    return -1;
  }
  e.size = sb.st_size;
  pthread_rwlock_wrlock (&h->lock);
  if (h->disabled) {
    lb_errf (err, errlen, "the list of points could not be read at start");
    goto out;
  }
  /* A mark (or the schedule after one) may come in a minute that has a
   * point: name it to the second, and number those of one second.
   */
  if (hist_id_taken (h, e.id)) {
    char base[POINTS_ID_LEN];
    unsigned k;
    points_id_seconds (now, base);
    memcpy (e.id, base, sizeof e.id);
    for (k = 2; k < 1000 && hist_id_taken (h, e.id); k++)
      snprintf (e.id, sizeof e.id, "%s-%u", base, k);
  }
  if (hist_id_taken (h, e.id)) {
    lb_errf (err, errlen, "a point named %s exists already", e.id);
    goto out;
  }
  if ((pt = hist_point_new (h, &e)) == NULL) {
    lb_errf (err, errlen, "out of memory");
    goto out;
  }
  mode = h->mode;
  if (mode != POINTS_MODE_OVERLAY) {
    path = points_path (h->image, POINTS_MODE_REFLINK, e.id);
    if (path && points_reflink (fd, path) == 0)
      mode = POINTS_MODE_REFLINK;
    else if (mode == POINTS_MODE_NONE && path
             && (errno == EOPNOTSUPP || errno == EXDEV || errno == EINVAL
                 || errno == ENOTTY || errno == ENOSYS || errno == EPERM))
      mode = POINTS_MODE_OVERLAY;   /* no reflinks here: lbd's own COW */
    else {
      lb_errf (err, errlen, "%s: reflink: %s", path ? path : h->image,
               strerror (errno));
      goto out;
    }
    free (path);
    path = NULL;
  }
  if (mode == POINTS_MODE_REFLINK) {
    h->mode = mode;
    if (hist_point_open (h, pt, err, errlen) == -1)
      goto out;
  }
  else {
    path = points_path (h->image, POINTS_MODE_OVERLAY, e.id);
    if (path == NULL
        || overlay_create (&pt->ov, path, e.size, now, err, errlen) == -1)
      goto out;
    h->mode = mode;
  }
  if (hist_append (h, pt) == -1) {
    lb_errf (err, errlen, "out of memory");
    hist_point_delete (h, pt);
    pt = NULL;
    goto out;
  }
  if (hist_store (h) == -1) {
    lb_errf (err, errlen, "%s.points: %s", h->image, strerror (errno));
    h->n--;
    hist_point_delete (h, pt);
    pt = NULL;
    goto out;
  }
  lb_info ("%s: restore point %s%s%s taken (%s, %s, %" PRIu64 " ms)",
           h->image, e.id, label ? " labelled " : "", label ? label : "",
           how, mode == POINTS_MODE_REFLINK ? "reflinked copy" : "overlay",
           lb_now_ms () - t0);
  if (id)
    memcpy (id, e.id, POINTS_ID_LEN);
  pt = NULL;
  r = 0;
 out:
  if (pt) {
    hist_point_close (pt);
    free (pt);
  }
  free (path);
  pthread_rwlock_unlock (&h->lock);
  return r;
}

/* The listed point named ID (or labelled so).  LOCK held. */
struct hist_point *
hist_find (struct history *h, const char *id, size_t idlen)
{
  size_t i;

  for (i = h->n; i-- > 0;) {
    struct hist_point *pt = h->p[i];
    if ((strlen (pt->e.id) == idlen && memcmp (pt->e.id, id, idlen) == 0)
        || (pt->e.label[0] && strlen (pt->e.label) == idlen
            && memcmp (pt->e.label, id, idlen) == 0))
      return pt;
  }
  return NULL;
}

struct hist_point *
history_open (struct history *h, const char *id, size_t idlen, char *why,
              size_t whylen)
{
  struct hist_point *pt;

  pthread_rwlock_wrlock (&h->lock);
  pt = hist_find (h, id, idlen);
  if (pt == NULL)
    lb_errf (why, whylen, "no restore point named '%.*s'",
             (int) (idlen > 64 ? 64 : idlen), id);
  else if (pt->doomed) {
    lb_errf (why, whylen, "restore point %s is being pruned", pt->e.id);
    pt = NULL;
  }
  else
    pt->refs++;
  pthread_rwlock_unlock (&h->lock);
  return pt;
}

void
history_release (struct hist_point *pt)
{
  struct history *h;
  bool wake = false;

  if (pt == NULL)
    return;
  h = pt->h;
  pthread_rwlock_wrlock (&h->lock);
  pt->refs--;
  if (pt->refs == 0 && hist_index (h, pt) < 0 && !pt->busy)
    hist_point_delete (h, pt);          /* dropped while read (broken) */
  else
    wake = pt->refs == 0 && pt->doomed;
  pthread_rwlock_unlock (&h->lock);
  if (wake)
    hist_wake (h);
}

/* Where block B of the point at I reads from: an overlay's entry (*OV
 * set), or the image (NULL).  LOCK held.
 */
static const struct overlay_entry *
hist_source (struct history *h, size_t i, uint64_t b,
             const struct overlay **ov)
{
  for (; i < h->n; i++) {
    const struct overlay_entry *e = overlay_find (&h->p[i]->ov, b);
    if (e) {
      *ov = &h->p[i]->ov;
      return e;
    }
  }
  return NULL;
}

/* One piece of a read of an overlay point, at I.  LOCK held. */
static int
hist_read_overlay (struct history *h, size_t i, int image_fd, uint8_t *buf,
                   uint64_t off, size_t len)
{
  uint8_t block[OVERLAY_BLOCK];
  uint64_t pos = off, end = off + len;

  while (pos < end) {
    uint64_t b = pos / OVERLAY_BLOCK, in = pos % OVERLAY_BLOCK;
    uint64_t n = OVERLAY_BLOCK - in < end - pos ? OVERLAY_BLOCK - in
                                                : end - pos;
    const struct overlay *ov = NULL;
    const struct overlay_entry *e = hist_source (h, i, b, &ov);

    if (e) {
      if (overlay_read (ov, e, block) == -1)
        return -1;
      memcpy (buf + (pos - off), block + in, n);
    }
    else {
      /* The run of blocks that read from the image, in one read. */
      while (pos + n < end
             && hist_source (h, i, (pos + n) / OVERLAY_BLOCK, &ov) == NULL)
        n = end - (pos + n) < OVERLAY_BLOCK ? end - pos : n + OVERLAY_BLOCK;
      if (lb_pread_all (image_fd, buf + (pos - off), n, pos, LB_EOF_ZERO)
          == -1)
        return -1;
    }
    pos += n;
  }
  return 0;
}

int
history_read (struct hist_point *pt, int image_fd, void *buf, uint64_t off,
              size_t len)
{
  struct history *h = pt->h;
  uint8_t *p = buf;

  if (off > pt->e.size || len > pt->e.size - off) {
    errno = ERANGE;
    return -1;
  }
  while (len > 0) {
    size_t piece = len < HISTORY_READ_PIECE ? len : HISTORY_READ_PIECE;
    ssize_t i;
    int r;

    pthread_rwlock_rdlock (&h->lock);
    i = pt->broken ? -1 : hist_index (h, pt);
    if (i < 0) {
      pthread_rwlock_unlock (&h->lock);
      errno = EIO;
      return -1;
    }
    r = h->mode == POINTS_MODE_REFLINK
        ? lb_pread_all (pt->fd, p, piece, off, LB_EOF_ZERO)
        : hist_read_overlay (h, i, image_fd, p, off, piece);
    pthread_rwlock_unlock (&h->lock);
    if (r == -1)
      return -1;
    p += piece; off += piece; len -= piece;
  }
  return 0;
}

int
history_list (struct history *h, struct hist_info **out, size_t *n)
{
  size_t i;

  pthread_rwlock_rdlock (&h->lock);
  *out = calloc (h->n + 1, sizeof **out);
  *n = *out ? h->n : 0;
  for (i = 0; i < *n; i++) {
    struct hist_point *pt = h->p[i];
    struct hist_info *x = &(*out)[i];
    x->e = pt->e;
    x->reflink = h->mode == POINTS_MODE_REFLINK;
    x->bytes = x->reflink ? points_unshared_bytes (pt->fd)
                          : overlay_bytes (&pt->ov);
    x->readers = pt->refs;
    x->doomed = pt->doomed;
  }
  pthread_rwlock_unlock (&h->lock);
  return *out ? 0 : -1;
}
