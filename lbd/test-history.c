/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of lbd's restore points (history.c, overlay.c, points.c),
 * through the image code that drives them (image.c), against a model in
 * memory, in overlay mode (the test's folder is asked for reflinks and
 * the test says which mode it got):
 *   - random writes, zeroes and size changes with points taken and
 *     dropped at random and lbd "restarted" (the history reloaded from
 *     disk) at random: every listed point always reads exactly what the
 *     image held when it was taken;
 *   - crash leftovers: a torn record at an overlay's end is cut off, a
 *     data file no list names and a half-written list are deleted;
 *   - retention by the test clock (LIVEBACKUP_TEST_CLOCK=/FILE):
 *     minutely:3 keeps three points, pruned in the background;
 *   - space: N points over the same M changed blocks hold at most
 *     1.2 x N x M x 4 KiB;
 *   - a failed save drops every point rather than keep one that lies.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#include "history.h"
#include "image.h"
#include "lb_log.h"
#include "lb_time.h"
#include "../tests/tap.h"

#define MAXPT 8
#define MAXSIZE (2 * 1024 * 1024 + 1000)
#define OPS 800

struct model {
  char id[POINTS_ID_LEN];
  uint8_t *data;
  uint64_t size;
};

static uint8_t cur[MAXSIZE];
static uint64_t cur_size;
static struct model pts[MAXPT];
static int npts;
static char dir[] = "/tmp/test-history.XXXXXX";
static char image_path[256];
static int64_t clock_now = 1796083200;  /* 2026-12-01 00:00 UTC */

/* Does every listed point read its model, and is the list the model's? */
static bool
check_all (struct history *h, int ifd, char *what, size_t wlen)
{
  static uint8_t buf[MAXSIZE];
  struct hist_info *info;
  size_t n, i;
  bool ok = true;

  if (history_list (h, &info, &n) == -1)
    return false;
  if ((int) n != npts) {
    snprintf (what, wlen, "%zu points listed, %d in the model", n, npts);
    ok = false;
  }
  for (i = 0; ok && i < n; i++) {
    struct hist_point *pt;
    char why[256];
    if (strcmp (info[i].e.id, pts[i].id) != 0
        || info[i].e.size != pts[i].size) {
      snprintf (what, wlen, "point %zu is %s, the model's %s", i,
                info[i].e.id, pts[i].id);
      ok = false;
      break;
    }
    pt = history_open (h, pts[i].id, strlen (pts[i].id), why, sizeof why);
    if (pt == NULL || history_read (pt, ifd, buf, 0, pts[i].size) == -1
        || memcmp (buf, pts[i].data, pts[i].size) != 0) {
      snprintf (what, wlen, "point %s does not read its moment (%s)",
                pts[i].id, pt ? "differs" : why);
      ok = false;
    }
    /* An unaligned piece, too. */
    if (ok && pts[i].size > 10000
        && (history_read (pt, ifd, buf, 4097, 5000) == -1
            || memcmp (buf, pts[i].data + 4097, 5000) != 0)) {
      snprintf (what, wlen, "point %s: an unaligned read differs", pts[i].id);
      ok = false;
    }
    history_release (pt);
  }
  free (info);
  return ok;
}

static void
model_take (struct history *h, struct image *im)
{
  char err[256];

  if (npts == MAXPT)
    return;
  clock_now += 60 + tap_rand () % 7200;
  if (history_take (h, im->fd, clock_now, "schedule", NULL, NULL, err, sizeof err)
      == -1) {
    tap_ok (0, "take: %s", err);
    exit (1);
  }
  points_id (clock_now, pts[npts].id);
  pts[npts].size = cur_size;
  pts[npts].data = malloc (cur_size + 1);
  memcpy (pts[npts].data, cur, cur_size);
  npts++;
}

static void
model_drop (struct history *h, int k)
{
  char why[256];

  if (history_drop (h, pts[k].id, NULL, why, sizeof why) != HISTORY_DROPPED) {
    tap_ok (0, "drop %s: %s", pts[k].id, why);
    exit (1);
  }
  free (pts[k].data);
  memmove (pts + k, pts + k + 1, (npts - k - 1) * sizeof *pts);
  npts--;
}

static void
restart (struct history *h, struct image *im)
{
  struct lb_history pol = { { 0 } };

  history_destroy (h);
  if (history_init (h, image_path, &pol) == -1)
    exit (1);
  im->hist = h;
}

static void
test_random (void)
{
  struct history h;
  struct image im;
  struct lb_history pol = { { 0 } };
  char err[256], what[256] = "";
  static uint8_t buf[65536 * 2];
  int op, ifd, restarts = 0, takes = 0, drops = 0;
  bool ok = true;

  snprintf (image_path, sizeof image_path, "%s/img", dir);
  if (image_open (&im, image_path, err, sizeof err) == -1
      || history_init (&h, image_path, &pol) == -1) {
    tap_ok (0, "open: %s", err);
    return;
  }
  im.hist = &h;
  cur_size = MAXSIZE - 1000;
  image_resize (&im, cur_size);
  ifd = open (image_path, O_RDONLY);
  for (op = 0; op < OPS && ok; op++) {
    uint64_t r = tap_rand () % 100, off, len, i;
    if (r < 55 && cur_size > 0) {
      off = tap_rand () % cur_size;
      len = 1 + tap_rand () % (sizeof buf);
      if (len > cur_size - off)
        len = cur_size - off;
      for (i = 0; i < len; i++)
        buf[i] = tap_rand () % 5 == 0 ? 0 : (uint8_t) (op + i);
      image_write (&im, off, buf, len);
      memcpy (cur + off, buf, len);
    }
    else if (r < 65 && cur_size > 0) {
      off = tap_rand () % cur_size;
      len = 1 + tap_rand () % (sizeof buf);
      if (len > cur_size - off)
        len = cur_size - off;
      image_zero (&im, off, len);
      memset (cur + off, 0, len);
    }
    else if (r < 68) {
      uint64_t ns = (MAXSIZE - 1000) / 2 + tap_rand () % ((MAXSIZE - 1000) / 2);
      image_resize (&im, ns);
      if (ns > cur_size)
        memset (cur + cur_size, 0, ns - cur_size);
      cur_size = ns;
    }
    else if (r < 80) {
      model_take (&h, &im);
      takes++;
    }
    else if (r < 88 && npts > 0) {
      model_drop (&h, tap_rand () % npts);
      drops++;
    }
    else if (r < 91) {
      restart (&h, &im);
      restarts++;
    }
    if (op % 20 == 19 || r >= 68)
      ok = check_all (&h, ifd, what, sizeof what);
  }
  tap_ok (ok, "%d operations, %d points taken, %d dropped, %d restarts: "
          "every listed point reads its moment%s%s", op, takes, drops,
          restarts, ok ? "" : ": ", what);
  tap_ok (h.mode == POINTS_MODE_OVERLAY || h.mode == POINTS_MODE_REFLINK,
          "mode: %s", h.mode == POINTS_MODE_OVERLAY ? "overlay" : "reflink");

  /* Crash leftovers. */
  if (npts == 0)
    model_take (&h, &im);
  {
    char *cow = points_path (image_path, h.mode, pts[npts - 1].id);
    char stale[300], tmp[300];
    int fd = open (cow, O_WRONLY | O_APPEND);
    struct stat sb;
    const char junk[50] = "LBCR torn";
    bool torn_cut, gone;

    if (fd >= 0) {
      if (write (fd, junk, sizeof junk) != sizeof junk)
        abort ();
      close (fd);
    }
    snprintf (stale, sizeof stale, "%s.point-20990101T0000Z.cow",
              image_path);
    snprintf (tmp, sizeof tmp, "%s.points.tmp", image_path);
    close (open (stale, O_CREAT | O_WRONLY, 0600));
    close (open (tmp, O_CREAT | O_WRONLY, 0600));
    restart (&h, &im);
    stat (cow, &sb);
    torn_cut = h.mode == POINTS_MODE_REFLINK
               || (uint64_t) sb.st_size == h.p[h.n - 1]->ov.end;
    gone = access (stale, F_OK) == -1 && access (tmp, F_OK) == -1;
    tap_ok (torn_cut && gone, "after a crash: a torn record cut off, "
            "leftover files deleted");
    tap_ok (check_all (&h, ifd, what, sizeof what),
            "and every point still reads its moment%s", what);
    free (cow);
  }

  /* A failed save: every point goes, none lies. */
  if (h.mode == POINTS_MODE_OVERLAY) {
    struct hist_point *pt = h.p[h.n - 1];
    int fd = pt->ov.fd, k;
    memset (buf, 0x77, 4096);
    pt->ov.fd = open ("/dev/full", O_WRONLY);
    image_write (&im, 0, buf, 4096);
    memcpy (cur, buf, 4096);
    close (fd);
    for (k = 0; k < npts; k++)
      free (pts[k].data);
    npts = 0;
    tap_ok (h.n == 0 && check_all (&h, ifd, what, sizeof what),
            "a save that fails drops every point (%zu listed)", h.n);
    restart (&h, &im);
    tap_ok (h.n == 0, "and they stay dropped after a restart");
  }
  history_destroy (&h);
  image_close (&im);
  close (ifd);
}

/* Retention by the test clock, pruned in the background. */
static void
test_retention (void)
{
  struct history h;
  struct image im;
  struct lb_history pol = { { 0 } };
  char err[256], clockf[300], path[300];
  uint8_t b[4096];
  int i, k, ifd;
  size_t n = 0;
  bool ok = true;
  FILE *fp;

  snprintf (path, sizeof path, "%s/ret", dir);
  snprintf (clockf, sizeof clockf, "%s/clock", dir);
  setenv ("LIVEBACKUP_TEST_CLOCK", clockf, 1);
  pol.keep[LB_HISTORY_MINUTELY] = 3;
  if (image_open (&im, path, err, sizeof err) == -1
      || history_init (&h, path, &pol) == -1)
    return;
  im.hist = &h;
  image_resize (&im, 1 << 20);
  ifd = open (path, O_RDONLY);
  npts = 0;
  for (i = 0; i < 6; i++) {
    fp = fopen (clockf, "w");
    fprintf (fp, "%lld\n", (long long) clock_now + 60 * (i + 100));
    fclose (fp);
    memset (b, i + 1, sizeof b);
    image_write (&im, (i % 3) * 8192, b, sizeof b);
    history_tick (&h, im.fd);
    /* The same minute again: no second point. */
    history_tick (&h, im.fd);
  }
  for (k = 0; k < 500; k++) {
    pthread_rwlock_rdlock (&h.lock);
    n = h.n;
    pthread_rwlock_unlock (&h.lock);
    if (n == 3)
      break;
    usleep (10000);
  }
  tap_ok (n == 3, "minutely:3 over 6 minutes keeps 3 points (%zu)", n);
  /* The three newest read as the image was at their ticks. */
  for (i = 0; ok && n == 3 && i < 3; i++) {
    struct hist_point *pt = history_open (&h, h.p[i]->e.id,
                                          strlen (h.p[i]->e.id), err,
                                          sizeof err);
    uint8_t r[3 * 8192];
    int j;
    ok = pt && history_read (pt, ifd, r, 0, sizeof r) == 0;
    /* At tick i+3 (0-based), writes 0..i+3 were done. */
    for (j = 0; ok && j < 3; j++) {
      int last = -1, w;
      for (w = 0; w <= i + 3; w++)
        if (w % 3 == j)
          last = w;
      ok = r[j * 8192] == (last < 0 ? 0 : last + 1);
    }
    history_release (pt);
  }
  tap_ok (ok, "the points kept read their moments");

  /* A mark takes no period's place: three more minutes, each with a
   * labelled point first, keep three scheduled points and every mark.
   */
  {
    size_t marks = 0, sched = 0, j;
    for (i = 6; i < 9; i++) {
      fp = fopen (clockf, "w");
      fprintf (fp, "%lld\n", (long long) clock_now + 60 * (i + 100));
      fclose (fp);
      history_take (&h, im.fd, clock_now + 60 * (i + 100), "mark", "keep",
                    NULL, err, sizeof err);
      tap_ok (history_due (&h), "minute %d: a mark, and the "
              "schedule's point is still due", i);
      history_tick (&h, im.fd);
    }
    for (k = 0; k < 500; k++) {
      pthread_rwlock_rdlock (&h.lock);
      for (j = 0, marks = sched = 0; j < h.n; j++) {
        if (h.p[j]->doomed)
          continue;
        if (h.p[j]->e.label[0])
          marks++;
        else
          sched++;
      }
      pthread_rwlock_unlock (&h.lock);
      if (sched == 3)
        break;
      usleep (10000);
    }
    tap_ok (marks == 3 && sched == 3, "marks kept beside the policy's "
            "points: %zu marks, %zu scheduled (minutely:3)", marks, sched);
  }
  unsetenv ("LIVEBACKUP_TEST_CLOCK");
  history_destroy (&h);
  image_close (&im);
  close (ifd);
}

/* Space: N points over the same M blocks. */
static void
test_space (void)
{
  enum { N = 5, M = 200 };
  struct history h;
  struct image im;
  struct lb_history pol = { { 0 } };
  char err[256], path[300];
  uint8_t b[4096];
  struct hist_info *info;
  uint64_t held = 0, t0, worst = 0;
  size_t n, i;
  int p, m;

  snprintf (path, sizeof path, "%s/space", dir);
  if (image_open (&im, path, err, sizeof err) == -1
      || history_init (&h, path, &pol) == -1)
    return;
  im.hist = &h;
  image_resize (&im, 64 << 20);
  for (p = 0; p < N; p++) {
    t0 = lb_now_ms ();
    if (history_take (&h, im.fd, clock_now + 100000 + p * 60, "schedule",
                      NULL, NULL,
                      err, sizeof err) == -1)
      break;
    if (lb_now_ms () - t0 > worst)
      worst = lb_now_ms () - t0;
    for (m = 0; m < M; m++) {
      memset (b, p * 7 + m + 1, sizeof b);
      image_write (&im, (uint64_t) m * 3 * 4096, b, sizeof b);
    }
  }
  history_list (&h, &info, &n);
  for (i = 0; i < n; i++)
    held += info[i].bytes;
  free (info);
  tap_ok (n == N && held <= (uint64_t) (1.2 * N * M * 4096),
          "%d points over the same %d blocks hold %llu bytes (%.2f x the "
          "changed bytes); a point took at most %llu ms", N, M,
          (unsigned long long) held, held / (double) (N * M * 4096),
          (unsigned long long) worst);
  /* A catch-up rewrites whole runs, most of them unchanged: a write
   * that leaves a block as it is saves nothing.
   */
  {
    static uint8_t run[64 * 4096];
    uint64_t before = h.p[h.n - 1]->ov.end;
    history_take (&h, im.fd, clock_now + 100000 + N * 60, "schedule",
                  NULL, NULL, err,
                  sizeof err);
    before = h.p[h.n - 1]->ov.end;
    image_read (&im, 0, run, sizeof run);
    image_write (&im, 0, run, sizeof run);
    run[6 * 4096 + 7] ^= 1;        /* block 6 holds data */
    image_write (&im, 0, run, sizeof run);
    tap_ok (h.p[h.n - 1]->ov.end - before == OVERLAY_RECORD + 4096,
            "a 256 KiB rewrite changing one byte saves one block (%llu "
            "bytes)", (unsigned long long) (h.p[h.n - 1]->ov.end - before));
  }
  history_destroy (&h);
  image_close (&im);
}

int
main (void)
{
  char cmd[300];

  lb_log_init ("test-history", LB_LOG_STDERR, NULL, 0);
  if (mkdtemp (dir) == NULL) {
    perror ("mkdtemp");
    return 1;
  }
  test_random ();
  test_retention ();
  test_space ();
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system (cmd) != 0)
    printf ("# could not remove %s\n", dir);
  return tap_done ();
}
