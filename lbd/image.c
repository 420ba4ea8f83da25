/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: one client's backup image and its state file.  See image.h. */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/stat.h>
#include <linux/falloc.h>

#include "image.h"
#include "lb_io.h"
#include "lb_log.h"
#include "lb_proto.h"
#include "history.h"
#include "scancache.h"
#include "snapshot.h"

int
image_state_load (const char *state_path, struct image_state *st)
{
  FILE *fp = fopen (state_path, "r");
  char line[256];

  memset (st, 0, sizeof *st);
  st->phase = LBP_PHASE_SCANNING;
  st->gen = LBP_GEN_NONE;       /* a state file without one matches none */
  if (fp == NULL)
    return errno == ENOENT ? 0 : -1;
  while (fgets (line, sizeof line, fp)) {
    uint64_t v;
    char key[32];
    if (sscanf (line, "epoch=%" SCNx64, &v) == 1)
      st->epoch = v;
    else if (sscanf (line, "partition=%" SCNx64, &v) == 1)
      st->partition = v;
    else if (sscanf (line, "%31[a-z_]=%" SCNu64, key, &v) == 2) {
      if (strcmp (key, "seq") == 0) st->seq = v;
      else if (strcmp (key, "gen") == 0) st->gen = v;
      else if (strcmp (key, "swept") == 0) st->swept = v;
      else if (strcmp (key, "consistent") == 0) st->consistent = v != 0;
      else if (strcmp (key, "last_consistent") == 0) st->last_consistent = v;
      else if (strcmp (key, "size") == 0) st->size = v;
      else if (strcmp (key, "verified") == 0) st->verified = v;
    }
    else if (strncmp (line, "phase=", 6) == 0) {
      if (strncmp (line + 6, "live", 4) == 0) st->phase = LBP_PHASE_LIVE;
      else if (strncmp (line + 6, "catching-up", 11) == 0)
        st->phase = LBP_PHASE_CATCHING_UP;
      else st->phase = LBP_PHASE_SCANNING;
    }
  }
  fclose (fp);
  /* A live phase without a consistent flag cannot be trusted. */
  if (!st->consistent)
    st->phase = st->phase == LBP_PHASE_LIVE ? LBP_PHASE_CATCHING_UP
                                            : st->phase;
  return 0;
}

/* IM empty, but for its paths; -1 if out of memory (IM closed). */
static int
image_names (struct image *im, const char *path)
{
  memset (im, 0, sizeof *im);
  im->fd = -1;
  im->path = strdup (path);
  if (im->path == NULL
      || asprintf (&im->state_path, "%s.state", path) == -1) {
    free (im->path);
    im->path = im->state_path = NULL;
    return -1;
  }
  return 0;
}

int
image_open (struct image *im, const char *path, char *err, size_t errlen)
{
  struct stat sb;

  if (image_names (im, path) == -1) {
    snprintf (err, errlen, "out of memory");
    return -1;
  }
  im->fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (im->fd == -1 || fstat (im->fd, &sb) == -1) {
    snprintf (err, errlen, "%s: %s", path, strerror (errno));
    image_close (im);
    return -1;
  }
  if (!S_ISREG (sb.st_mode)) {
    snprintf (err, errlen, "%s: not a regular file", path);
    image_close (im);
    return -1;
  }
  im->size = sb.st_size;
  if (image_state_load (im->state_path, &im->st) == -1) {
    snprintf (err, errlen, "%s: %s", im->state_path, strerror (errno));
    image_close (im);
    return -1;
  }
  return 0;
}

int
image_peek (struct image *im, const char *path)
{
  struct stat sb;
  int e;

  if (image_names (im, path) == -1) {
    errno = ENOMEM;
    return -1;
  }
  if (stat (path, &sb) == 0)
    im->size = sb.st_size;
  else if (errno != ENOENT)
    goto err;
  if (image_state_load (im->state_path, &im->st) == -1)
    goto err;
  return 0;
 err:
  e = errno;
  image_close (im);
  errno = e;
  return -1;
}

void
image_close (struct image *im)
{
  if (im->fd >= 0)
    close (im->fd);
  im->fd = -1;
  free (im->path);
  free (im->state_path);
  im->path = im->state_path = NULL;
}

int
image_resize (struct image *im, uint64_t size)
{
  int r;

  if (size == im->size)
    return 0;
  /* A truncation changes what lies past the new end. */
  scancache_resized (im->sc, size);
  snapset_write_begin (im->snaps, im->fd, im->size, size,
                       size < im->size ? im->size - size : 0);
  history_write_begin (im->hist, im->fd, im->size, size,
                       size < im->size ? im->size - size : 0, NULL, false);
  r = ftruncate (im->fd, size);
  history_write_end (im->hist);
  snapset_write_end (im->snaps);
  if (r == -1)
    return -1;
  lb_info ("%s: image size changed from %" PRIu64 " to %" PRIu64 " bytes",
           im->path, im->size, size);
  im->size = size;
  return 0;
}

bool
image_range_ok (const struct image *im, uint64_t off, uint64_t len)
{
  return off <= im->size && len <= im->size - off;
}

int
image_write (struct image *im, uint64_t off, const void *buf, uint64_t len)
{
  int r, e;

  if (!image_range_ok (im, off, len)) {
    errno = ERANGE;
    return -1;
  }
  scancache_forget (im->sc, off, len);
  snapset_write_begin (im->snaps, im->fd, im->size, off, len);
  history_write_begin (im->hist, im->fd, im->size, off, len, buf, false);
  r = lb_pwrite_all (im->fd, buf, len, off);
  e = errno;
  history_write_end (im->hist);
  snapset_write_end (im->snaps);
  errno = e;
  return r;
}

int
image_read (struct image *im, uint64_t off, void *buf, uint64_t len)
{
  if (!image_range_ok (im, off, len)) {
    errno = ERANGE;
    return -1;
  }
  /* The image file may be shorter than its size says (a sparse file
   * extended by ftruncate is not, but a copy put back may be): its end
   * reads as zeroes, as the device's would after a zero.
   */
  return lb_pread_all (im->fd, buf, len, off, LB_EOF_ZERO);
}

int
image_zero (struct image *im, uint64_t off, uint64_t len)
{
  static const char zeroes[65536];
  int e;

  if (!image_range_ok (im, off, len)) {
    errno = ERANGE;
    return -1;
  }
  if (len == 0)
    return 0;
  scancache_forget (im->sc, off, len);
  snapset_write_begin (im->snaps, im->fd, im->size, off, len);
  history_write_begin (im->hist, im->fd, im->size, off, len, NULL, true);
  /* A hole reads as zeroes and keeps the image sparse. */
  if (fallocate (im->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                 off, len) == 0)
    len = 0;
  while (len > 0) {
    uint64_t n = len < sizeof zeroes ? len : sizeof zeroes;
    if (lb_pwrite_all (im->fd, zeroes, n, off) == -1)
      break;
    off += n; len -= n;
  }
  e = errno;
  history_write_end (im->hist);
  snapset_write_end (im->snaps);
  errno = e;
  return len == 0 ? 0 : -1;
}

int
image_commit (struct image *im, const struct image_state *st)
{
  char *tmp = NULL, *dir = NULL;
  FILE *fp;
  int dfd, r = -1;

  if (fdatasync (im->fd) == -1)
    return -1;
  if (asprintf (&tmp, "%s.tmp", im->state_path) == -1)
    return -1;
  fp = fopen (tmp, "w");
  if (fp == NULL)
    goto out;
  fprintf (fp, "epoch=%016" PRIx64 "\nseq=%" PRIu64 "\ngen=%" PRIu64
           "\nphase=%s\nswept=%" PRIu64 "\nconsistent=%d\nlast_consistent=%"
           PRIu64 "\nsize=%" PRIu64 "\n",
           st->epoch, st->seq, st->gen, lbp_phase_name (st->phase),
           st->swept, st->consistent, st->last_consistent, im->size);
  if (st->verified)
    fprintf (fp, "verified=%" PRIu64 "\n", st->verified);
  /* Absent until a partition binds the image (bind.h). */
  if (st->partition)
    fprintf (fp, "partition=%016" PRIx64 "\n", st->partition);
  if (fflush (fp) != 0 || fsync (fileno (fp)) != 0) {
    fclose (fp);
    goto out;
  }
  if (fclose (fp) != 0 || rename (tmp, im->state_path) == -1)
    goto out;
  /* The rename itself must survive a crash. */
  dir = strdup (im->state_path);
  if (dir && (dfd = open (dirname (dir), O_RDONLY | O_DIRECTORY)) >= 0) {
    fsync (dfd);
    close (dfd);
  }
  im->st = *st;
  im->st.size = im->size;
  r = 0;
 out:
  free (tmp);
  free (dir);
  return r;
}

void
image_siblings (const char *image,
                void (*fn) (const char *path, const char *suffix, void *arg),
                void *arg)
{
  char *d = strdup (image), *b = strdup (image);
  const char *dir, *base;
  size_t blen;
  DIR *dp;
  struct dirent *de;

  if (d == NULL || b == NULL)
    goto out;
  dir = dirname (d);
  base = basename (b);
  blen = strlen (base);
  dp = opendir (dir);
  if (dp == NULL)
    goto out;
  while ((de = readdir (dp)) != NULL) {
    char path[4096];

    if (strncmp (de->d_name, base, blen) != 0 || de->d_name[blen] == '\0'
        || (size_t) snprintf (path, sizeof path, "%s/%s", dir, de->d_name)
           >= sizeof path)
      continue;
    fn (path, de->d_name + blen, arg);
  }
  closedir (dp);
 out:
  free (d);
  free (b);
}
