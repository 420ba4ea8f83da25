/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of lbd's copy-on-write snapshots (snapshot.c), through the
 * image code that drives them (image.c), against a model in memory:
 *   - random writes, zeroes (holes), truncations and extensions of an
 *     image whose size is not a multiple of the block, with snapshots
 *     taken and dropped at random: every snapshot always reads what the
 *     image held when it was taken, and whatever block status calls a
 *     hole reads as zeroes;
 *   - the last consistent state kept across "inconsistent" and let go
 *     when consistent again, shared with readers;
 *   - an unchanged image shares its newest snapshot;
 *   - concurrent readers of a snapshot see it unchanged while a writer
 *     thread rewrites the image;
 *   - overlays are deleted when dropped, and leftovers at start.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/stat.h>

#include "image.h"
#include "lb_log.h"
#include "snapshot.h"
#include "../tests/tap.h"

#define MAXSNAP 6
#define MAXSIZE (3 * 1024 * 1024)
#define OPS 1500

struct model {
  struct snapshot *s;
  uint8_t *data;
  uint64_t size;
};

static uint8_t cur[MAXSIZE];
static uint64_t cur_size;
static struct model snaps[MAXSNAP];
static char dir[] = "/tmp/test-snapshot.XXXXXX";

/* Does snapshot M read its model, and do its holes read as zeroes? */
static int
check_snap (struct model *m, int ifd)
{
  static uint8_t buf[MAXSIZE];
  uint64_t off = 0;

  if (m->s->size != m->size)
    return 0;
  if (snapshot_read (m->s, ifd, buf, 0, m->size) == -1)
    return 0;
  if (memcmp (buf, m->data, m->size) != 0)
    return 0;
  while (off < m->size) {
    uint64_t len;
    bool hole;
    size_t i;
    if (snapshot_extent (m->s, ifd, off, m->size - off, &len, &hole) == -1
        || len == 0 || len > m->size - off)
      return 0;
    if (hole)
      for (i = 0; i < len; i++)
        if (m->data[off + i])
          return 0;
    off += len;
  }
  return 1;
}

static int
count_overlays (const char *image)
{
  char path[4200];
  int n = 0, i;

  for (i = 0; i < 2000; i++) {
    snprintf (path, sizeof path, "%s.snap-%d", image, i);
    if (access (path, F_OK) == 0)
      n++;
  }
  return n;
}

struct stress {
  struct snapshot *s;
  int ifd;
  const uint8_t *want;
  uint64_t size;
  volatile int stop;
  int bad;
  int reads;
};

static void *
reader (void *arg)
{
  struct stress *st = arg;
  uint8_t *buf = malloc (st->size);

  while (!st->stop) {
    uint64_t off = tap_rand () % st->size, len = 1 + tap_rand () % (st->size - off);
    if (snapshot_read (st->s, st->ifd, buf, off, len) == -1
        || memcmp (buf, st->want + off, len) != 0)
      st->bad++;
    st->reads++;
  }
  free (buf);
  return NULL;
}

int
main (void)
{
  struct snapset ss;
  struct image im;
  char image[4200], err[256], why[256];
  uint8_t *wbuf = malloc (MAXSIZE);
  int ifd, i, bad = 0, checks = 0, op;
  time_t since;

  lb_log_init ("test-snapshot", LB_LOG_STDERR, NULL, 0);
  if (mkdtemp (dir) == NULL) {
    perror ("mkdtemp");
    return 1;
  }
  snprintf (image, sizeof image, "%s/img", dir);

  /* Leftovers from an earlier lbd go at start; other names stay. */
  {
    char p[4300];
    snprintf (p, sizeof p, "%s.snap-12", image);
    close (open (p, O_CREAT | O_WRONLY, 0600));
    snprintf (p, sizeof p, "%s.snap-x", image);
    close (open (p, O_CREAT | O_WRONLY, 0600));
    snapset_remove_stale (image);
    tap_ok (access (p, F_OK) == 0 && count_overlays (image) == 0,
            "stale overlays deleted, other files kept");
    unlink (p);
  }

  tap_ok (image_open (&im, image, err, sizeof err) == 0, "image opened: %s",
          err);
  tap_ok (snapset_init (&ss, image, true, true) == 0, "snapset made");
  im.snaps = &ss;
  cur_size = 1000000;           /* not a multiple of the block */
  tap_ok (image_resize (&im, cur_size) == 0, "image sized");
  ifd = open (image, O_RDONLY);

  /* An unchanged image shares its snapshot; a change makes a new one. */
  {
    struct snapshot *a = snapset_open (&ss, ifd, &since, why, sizeof why);
    struct snapshot *b = snapset_open (&ss, ifd, &since, why, sizeof why);
    struct snapshot *c;
    tap_ok (a && a == b && since == 0, "an unchanged image shares its newest "
            "snapshot");
    memset (wbuf, 7, 100);
    image_write (&im, 5, wbuf, 100);
    memset (cur + 5, 7, 100);
    c = snapset_open (&ss, ifd, &since, why, sizeof why);
    tap_ok (c && c != a, "after a change, a new snapshot");
    snapshot_release (a);
    snapshot_release (b);
    snapshot_release (c);
    tap_ok (count_overlays (image) == 0, "released snapshots leave no "
            "overlay");
  }

  /* The model run. */
  for (op = 0; op < OPS; op++) {
    uint64_t r = tap_rand () % 100, off, len;
    int k;

    if (r < 40 && cur_size > 0) {                       /* write */
      off = tap_rand () % cur_size;
      len = 1 + tap_rand () % (cur_size - off < 300000 ? cur_size - off : 300000);
      for (i = 0; i < (int) len; i++)
        wbuf[i] = (tap_rand () % 4 == 0) ? 0 : (uint8_t) tap_rand ();
      if (tap_rand () % 3 == 0)
        memset (wbuf, 0, len);          /* zeroes written as data */
      if (image_write (&im, off, wbuf, len) == -1)
        bad++;
      memcpy (cur + off, wbuf, len);
    }
    else if (r < 55 && cur_size > 0) {                  /* zero (hole) */
      off = tap_rand () % cur_size;
      len = 1 + tap_rand () % (cur_size - off);
      if (image_zero (&im, off, len) == -1)
        bad++;
      memset (cur + off, 0, len);
    }
    else if (r < 62) {                                  /* resize */
      uint64_t n = tap_rand () % MAXSIZE;
      if (image_resize (&im, n) == -1)
        bad++;
      if (n > cur_size)
        memset (cur + cur_size, 0, n - cur_size);
      cur_size = n;
    }
    else if (r < 80) {                                  /* snapshot */
      for (k = 0; k < MAXSNAP && snaps[k].s; k++)
        ;
      if (k < MAXSNAP) {
        snaps[k].s = snapset_open (&ss, ifd, &since, why, sizeof why);
        if (snaps[k].s == NULL) {
          bad++;
          continue;
        }
        snaps[k].size = cur_size;
        snaps[k].data = malloc (cur_size + 1);
        memcpy (snaps[k].data, cur, cur_size);
      }
    }
    else if (r < 92) {                                  /* drop one */
      k = tap_rand () % MAXSNAP;
      if (snaps[k].s) {
        snapshot_release (snaps[k].s);
        free (snaps[k].data);
        snaps[k].s = NULL;
      }
    }
    else {                                              /* check all */
      for (k = 0; k < MAXSNAP; k++)
        if (snaps[k].s) {
          checks++;
          if (!check_snap (&snaps[k], ifd)) {
            bad++;
            printf ("# snapshot %d wrong after op %d\n", k, op);
          }
        }
    }
  }
  for (i = 0; i < MAXSNAP; i++)
    if (snaps[i].s) {
      checks++;
      if (!check_snap (&snaps[i], ifd))
        bad++;
      snapshot_release (snaps[i].s);
      free (snaps[i].data);
      snaps[i].s = NULL;
    }
  tap_ok (bad == 0, "%d random changes: every snapshot reads the moment "
          "it was taken, holes read as zeroes (%d checks, %d bad)", OPS, checks,
          bad);
  tap_ok (count_overlays (image) == 0 && ss.list == NULL, "all dropped, no "
          "overlay left");

  /* The last consistent state. */
  {
    struct model m = { .size = cur_size };
    struct snapshot *r1, *r2, *r3;
    m.data = malloc (cur_size + 1);
    memcpy (m.data, cur, cur_size);
    snapset_set_consistent (&ss, false, im.fd);
    tap_ok (ss.lastc != NULL && count_overlays (image) == 1,
            "inconsistent: the last consistent state is kept");
    memset (wbuf, 0x5a, 200000);
    image_write (&im, 1000, wbuf, 200000);
    image_resize (&im, cur_size / 2);
    r1 = snapset_open (&ss, ifd, &since, why, sizeof why);
    r2 = snapset_open (&ss, ifd, &since, why, sizeof why);
    m.s = r1;
    tap_ok (r1 && r1 == r2 && r1 == ss.lastc && since != 0,
            "readers share it while inconsistent");
    tap_ok (r1 && check_snap (&m, ifd), "it reads the state before the "
            "changes");
    snapset_set_consistent (&ss, true, im.fd);
    tap_ok (ss.lastc == NULL && ss.list == r1 && check_snap (&m, ifd),
            "consistent again: let go, but kept while read");
    r3 = snapset_open (&ss, ifd, &since, why, sizeof why);
    tap_ok (r3 && r3 != r1 && since == 0 && r3->size == cur_size / 2,
            "new readers get the live image again");
    snapshot_release (r1);
    snapshot_release (r2);
    tap_ok (count_overlays (image) == 1, "the last reader drops it");
    snapshot_release (r3);
    cur_size /= 2;
    pread (ifd, cur, cur_size, 0);
    free (m.data);

    /* Never consistent: nothing to serve. */
    snapset_set_consistent (&ss, false, im.fd);
    snapset_set_consistent (&ss, true, im.fd);
    ss.consistent = false;      /* as lbd starting on an inconsistent image */
    tap_ok (snapset_open (&ss, ifd, &since, why, sizeof why) == NULL
            && strstr (why, "no consistent state"),
            "no consistent state: refused (%s)", why);
    ss.consistent = true;
  }

  /* Concurrent readers while the image is rewritten. */
  {
    struct stress st = { .ifd = ifd, .size = 2 * 1024 * 1024 };
    pthread_t t[3];
    uint8_t *want = malloc (st.size);
    time_t end;
    int writes = 0;
    image_resize (&im, st.size);
    for (i = 0; i < (int) st.size; i++)
      want[i] = tap_rand ();
    image_write (&im, 0, want, st.size);
    st.want = want;
    st.s = snapset_open (&ss, ifd, &since, why, sizeof why);
    for (i = 0; i < 3; i++)
      pthread_create (&t[i], NULL, reader, &st);
    end = time (NULL) + 2;
    while (time (NULL) < end) {
      uint64_t off = tap_rand () % st.size, len = 1 + tap_rand () % 200000;
      if (len > st.size - off)
        len = st.size - off;
      memset (wbuf, writes, len);
      if (writes % 5 == 0)
        image_zero (&im, off, len);
      else
        image_write (&im, off, wbuf, len);
      writes++;
    }
    st.stop = 1;
    for (i = 0; i < 3; i++)
      pthread_join (t[i], NULL);
    tap_ok (st.bad == 0 && st.reads > 0, "3 readers, %d reads during %d "
            "writes: the snapshot never changed", st.reads, writes);
    snapshot_release (st.s);
    free (want);
  }

  close (ifd);
  snapset_destroy (&ss);
  image_close (&im);
  {
    char p[4300];
    snprintf (p, sizeof p, "%s.state", image);
    unlink (p);
  }
  unlink (image);
  rmdir (dir);
  free (wbuf);
  return tap_done ();
}
