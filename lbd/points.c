/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: the list of an image's restore points on disk.  See points.h. */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <inttypes.h>
#include <libgen.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <linux/fiemap.h>

#include "image.h"
#include "lb_err.h"
#include "lb_log.h"
#include "lb_time.h"
#include "points.h"

int64_t
points_clock (void)
{
  static int64_t start_real;
  static uint64_t start_ms;
  const char *e = getenv ("LIVEBACKUP_TEST_CLOCK");

  if (e == NULL || *e == '\0')
    return (int64_t) time (NULL);
  if (e[0] == '/') {
    FILE *fp = fopen (e, "r");
    long long t = 0;
    if (fp) {
      if (fscanf (fp, "%lld", &t) != 1)
        t = 0;
      fclose (fp);
    }
    return t > 0 ? (int64_t) t : (int64_t) time (NULL);
  }
  if (e[0] == 'x') {
    double speed = strtod (e + 1, NULL);
    if (start_ms == 0) {
      start_real = (int64_t) time (NULL);
      start_ms = lb_now_ms ();
    }
    if (speed > 0)
      return start_real + (int64_t) ((lb_now_ms () - start_ms) * speed
                                     / 1000);
  }
  return (int64_t) time (NULL);
}

/* T in UTC into ID, to the minute or to the SECONDS. */
static void
points_id_fmt (int64_t t, bool seconds, char id[POINTS_ID_LEN])
{
  time_t tt = (time_t) t;
  struct tm tm;

  gmtime_r (&tt, &tm);
  strftime (id, POINTS_ID_LEN, seconds ? "%Y%m%dT%H%M%SZ" : "%Y%m%dT%H%MZ",
            &tm);
}

void
points_id (int64_t t, char id[POINTS_ID_LEN])
{
  points_id_fmt (t, false, id);
}

void
points_id_seconds (int64_t t, char id[POINTS_ID_LEN])
{
  points_id_fmt (t, true, id);
}

static char *
points_list_path (const char *image, const char *suffix)
{
  char *p;

  return asprintf (&p, "%s.points%s", image, suffix) == -1 ? NULL : p;
}

int
points_load (const char *image, enum points_mode *mode,
             struct points_entry **e, size_t *n, char *err, size_t errlen)
{
  char *path = points_list_path (image, "");
  char line[512];
  FILE *fp;
  size_t cap = 0;
  int lineno = 0;

  *mode = POINTS_MODE_NONE;
  *e = NULL;
  *n = 0;
  if (path == NULL) {
    lb_errf (err, errlen, "out of memory");
    return -1;
  }
  fp = fopen (path, "r");
  if (fp == NULL) {
    int r = errno == ENOENT ? 0 : -1;
    if (r)
      lb_errf (err, errlen, "%s: %s", path, strerror (errno));
    free (path);
    return r;
  }
  while (fgets (line, sizeof line, fp)) {
    struct points_entry pe = { 0 };
    long long t;
    unsigned long long size;
    char m[16];

    lineno++;
    if (lineno == 1) {
      if (strcmp (line, "livebackup-points 1\n") != 0)
        goto bad;
      continue;
    }
    if (sscanf (line, "mode %15s", m) == 1) {
      *mode = strcmp (m, "reflink") == 0 ? POINTS_MODE_REFLINK
              : strcmp (m, "overlay") == 0 ? POINTS_MODE_OVERLAY
              : POINTS_MODE_NONE;
      continue;
    }
    if (sscanf (line, "point %23s %lld %llu %15s %63s", pe.id, &t, &size,
                pe.how, pe.label) != 5)
      goto bad;
    /* Only names lbd makes: they become file names (points_path). */
    if (strspn (pe.id, "0123456789TZ-") != strlen (pe.id))
      goto bad;
    pe.time = t;
    pe.size = size;
    if (strcmp (pe.label, "-") == 0)
      pe.label[0] = '\0';
    if (*n == cap) {
      struct points_entry *ne;
      cap = cap ? cap * 2 : 16;
      ne = realloc (*e, cap * sizeof *ne);
      if (ne == NULL) {
        lb_errf (err, errlen, "out of memory");
        goto fail;
      }
      *e = ne;
    }
    (*e)[(*n)++] = pe;
  }
  fclose (fp);
  free (path);
  return 0;

 bad:
  lb_errf (err, errlen, "%s:%d: not a line of a points list", path, lineno);
 fail:
  fclose (fp);
  free (path);
  free (*e);
  *e = NULL;
  *n = 0;
  return -1;
}

void
points_sync_dir (const char *path)
{
  char *d = strdup (path);
  int dfd;

  if (d && (dfd = open (dirname (d), O_RDONLY | O_DIRECTORY)) >= 0) {
    fsync (dfd);
    close (dfd);
  }
  free (d);
}

int
points_store (const char *image, enum points_mode mode,
              const struct points_entry *e, size_t n)
{
  char *path = points_list_path (image, "");
  char *tmp = points_list_path (image, ".tmp");
  FILE *fp = NULL;
  size_t i;
  int r = -1, er;

  if (path == NULL || tmp == NULL)
    goto out;
  fp = fopen (tmp, "w");
  if (fp == NULL)
    goto out;
  fprintf (fp, "livebackup-points 1\nmode %s\n",
           mode == POINTS_MODE_REFLINK ? "reflink" : "overlay");
  for (i = 0; i < n; i++)
    fprintf (fp, "point %s %" PRId64 " %" PRIu64 " %s %s\n", e[i].id,
             e[i].time, e[i].size, e[i].how,
             e[i].label[0] ? e[i].label : "-");
  if (fflush (fp) != 0 || fsync (fileno (fp)) != 0)
    goto out;
  if (fclose (fp) != 0) {
    fp = NULL;
    goto out;
  }
  fp = NULL;
  if (rename (tmp, path) == -1)
    goto out;
  points_sync_dir (path);
  r = 0;
 out:
  er = errno;
  if (fp)
    fclose (fp);
  free (path);
  free (tmp);
  errno = er;
  return r;
}

char *
points_path (const char *image, enum points_mode mode, const char *id)
{
  char *p;

  return asprintf (&p, "%s.point-%s%s", image, id,
                   mode == POINTS_MODE_REFLINK ? "" : ".cow") == -1 ? NULL
                                                                     : p;
}

struct points_stale {
  const char *base;             /* the image's file name */
  enum points_mode mode;
  const struct points_entry *e; /* the list */
  size_t n;
};

static void
points_stale_one (const char *path, const char *suffix, void *arg)
{
  const struct points_stale *ps = arg;
  const char *name = strrchr (path, '/') + 1;
  size_t i;

  if (strcmp (suffix, ".points.tmp") != 0 && strncmp (suffix, ".point-", 7) != 0)
    return;
  for (i = 0; i < ps->n; i++) {
    char *mine = points_path (ps->base, ps->mode, ps->e[i].id);
    bool listed = mine && strcmp (mine, name) == 0;
    free (mine);
    if (listed)
      return;
  }
  if (unlink (path) == 0)
    lb_info ("%s: deleted (a restore point's data no list names: left "
             "by a crash)", path);
}

void
points_remove_stale (const char *image, enum points_mode mode,
                     const struct points_entry *e, size_t n)
{
  char *b = strdup (image);
  struct points_stale ps = { .mode = mode, .e = e, .n = n };

  if (b == NULL)
    return;
  ps.base = basename (b);
  image_siblings (image, points_stale_one, &ps);
  free (b);
}

int
points_reflink (int fd, const char *path)
{
  char *tmp;
  int t, e;

  if (asprintf (&tmp, "%s.tmp", path) == -1)
    return -1;
  unlink (tmp);
  t = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (t == -1)
    goto fail;
  if (ioctl (t, FICLONE, fd) == -1 || fsync (t) == -1
      || rename (tmp, path) == -1)
    goto fail;
  close (t);
  points_sync_dir (path);
  free (tmp);
  return 0;
 fail:
  e = errno;
  if (t >= 0) {
    close (t);
    unlink (tmp);
  }
  free (tmp);
  errno = e;
  return -1;
}

uint64_t
points_unshared_bytes (int fd)
{
  enum { N = 256 };
  struct fiemap *fm = calloc (1, sizeof *fm + N * sizeof (struct fiemap_extent));
  uint64_t start = 0, bytes = 0;
  bool last = false;

  while (fm && !last) {
    unsigned i;
    memset (fm, 0, sizeof *fm);
    fm->fm_start = start;
    fm->fm_length = FIEMAP_MAX_OFFSET - start;
    fm->fm_extent_count = N;
    if (ioctl (fd, FS_IOC_FIEMAP, fm) == -1 || fm->fm_mapped_extents == 0)
      break;
    for (i = 0; i < fm->fm_mapped_extents; i++) {
      struct fiemap_extent *x = &fm->fm_extents[i];
      if (!(x->fe_flags & FIEMAP_EXTENT_SHARED))
        bytes += x->fe_length;
      last = x->fe_flags & FIEMAP_EXTENT_LAST;
      start = x->fe_logical + x->fe_length;
    }
  }
  free (fm);
  return bytes;
}
