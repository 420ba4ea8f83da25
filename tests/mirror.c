/* SPDX-License-Identifier: BSD-3-Clause */
/* Test consumer: mirror a livewatch unit into a local file.  See mirror.h. */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>

#include "lb_io.h"
#include "mirror.h"

static void
mirror_log (struct mirror *m, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

#include <stdarg.h>
static void
mirror_log (struct mirror *m, const char *fmt, ...)
{
  va_list ap;
  if (m->quiet)
    return;
  va_start (ap, fmt);
  fprintf (stderr, "lw-mirror: ");
  vfprintf (stderr, fmt, ap);
  fprintf (stderr, "\n");
  va_end (ap);
}

static int
mirror_copy (void *opaque, uint64_t offset, uint64_t length, bool scan)
{
  struct mirror *m = opaque;

  while (length > 0) {
    size_t n = length < m->buf_len ? length : m->buf_len;
    if (lb_pread_all (m->dev_fd, m->buf, n, offset, LB_EOF_FAIL) == -1
        || lb_pwrite_all (m->img_fd, m->buf, n, offset) == -1) {
      mirror_log (m, "copy at %" PRIu64 ": %s", offset, strerror (errno));
      return -1;
    }
    m->n_copied += n;
    offset += n;
    length -= n;
  }
  return 0;
}

static int
mirror_record (void *opaque, const struct lwc_rec *rec)
{
  struct mirror *m = opaque;

  if (m->delay_us)
    usleep (m->delay_us);
  m->n_records++;
  switch (rec->type) {
  case LW_REC_WRITE:
    if (lb_pwrite_all (m->img_fd, rec->data, rec->length, rec->offset)
        == -1) {
      mirror_log (m, "write: %s", strerror (errno));
      return -1;
    }
    return 0;
  case LW_REC_ZERO:
    if (rec->length == 0
        || fallocate (m->img_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      rec->offset, rec->length) == 0)
      return 0;
    /* No hole punching here: write the zeroes. */
    memset (m->buf, 0, m->buf_len);
    for (uint64_t done = 0; done < rec->length; ) {
      size_t n = rec->length - done < m->buf_len ? rec->length - done
                                                 : m->buf_len;
      if (lb_pwrite_all (m->img_fd, m->buf, n, rec->offset + done) == -1)
        return -1;
      done += n;
    }
    return 0;
  case LW_REC_TRIM:
    return mirror_copy (m, rec->offset, rec->length, false);
  case LW_REC_FLUSH:
    return 0;                   /* lw_follow syncs right after */
  }
  errno = EPROTO;
  return -1;
}

static int
mirror_save_state (struct mirror *m, const struct lwf_mark *at)
{
  char tmp[4096];
  FILE *fp;

  if (m->state_path == NULL)
    return 0;
  snprintf (tmp, sizeof tmp, "%s.tmp", m->state_path);
  fp = fopen (tmp, "w");
  if (fp == NULL)
    return -1;
  fprintf (fp, "%016" PRIx64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %s\n",
           m->epoch, at->seq, at->gen, at->swept, lwf_phase_name (m->phase));
  if (fflush (fp) != 0 || fdatasync (fileno (fp)) != 0) {
    fclose (fp);
    return -1;
  }
  fclose (fp);
  return rename (tmp, m->state_path);
}

static int
mirror_sync (void *opaque, const struct lwf_mark *at)
{
  struct mirror *m = opaque;

  if (fdatasync (m->img_fd) == -1 || mirror_save_state (m, at) == -1) {
    mirror_log (m, "sync: %s", strerror (errno));
    return -1;
  }
  return 0;
}

static void
mirror_phase (void *opaque, enum lwf_phase phase, const struct lwf_mark *at)
{
  uint64_t seq = at->seq;
  struct mirror *m = opaque;

  m->phase = phase;
  switch (phase) {
  case LWF_SCANNING: m->n_scans++; break;
  case LWF_CATCHING_UP: m->n_catchups++; break;
  case LWF_LIVE: m->n_lives++; break;
  }
  { struct timespec ts; clock_gettime (CLOCK_MONOTONIC, &ts);
  mirror_log (m, "%ld.%06ld %s (seq %" PRIu64 ")", (long) ts.tv_sec, ts.tv_nsec / 1000, lwf_phase_name (phase), seq); }
}

static bool
mirror_stop (void *opaque)
{
  struct mirror *m = opaque;
  return *m->stop;
}

/* Where does the durable image stand?  Returns true with its *EPOCH,
 * *SEQ and *GEN if there is a state file.
 */
static bool
mirror_load_state (struct mirror *m, uint64_t *epoch, struct lwf_mark *at,
                   enum lwf_phase *phase_out)
{
  FILE *fp;
  char phase[32];
  bool ok = false;

  if (m->state_path == NULL || (fp = fopen (m->state_path, "r")) == NULL)
    return false;
  if (fscanf (fp, "%" SCNx64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %31s",
              epoch, &at->seq, &at->gen, &at->swept, phase) == 5) {
    ok = true;
    *phase_out = strcmp (phase, lwf_phase_name (LWF_LIVE)) == 0 ? LWF_LIVE
               : strcmp (phase, lwf_phase_name (LWF_CATCHING_UP)) == 0
               ? LWF_CATCHING_UP : LWF_SCANNING;
  }
  fclose (fp);
  return ok;
}

enum lwf_end
mirror_follow (struct mirror *m, struct lwc *c)
{
  const struct lw_header *h = lwc_header (c);
  struct lwf_sink sink = {
    .opaque = m, .record = mirror_record, .copy = mirror_copy,
    .sync = mirror_sync, .phase = mirror_phase, .stop = mirror_stop,
  };
  struct lwf_options o;
  uint64_t epoch = 0;
  struct lwf_mark at = { 0 };
  enum lwf_start start = LWF_FULL_SCAN;
  const char *why;
  enum lwf_phase phase = LWF_SCANNING;

  if (m->buf == NULL) {
    m->buf_len = 4 << 20;
    m->buf = malloc (m->buf_len);
    if (m->buf == NULL)
      return -1;
  }
  if (ftruncate (m->img_fd, h->dev_size) == -1) {
    mirror_log (m, "image: %s", strerror (errno));
    return -1;
  }
  if (!mirror_load_state (m, &epoch, &at, &phase))
    mirror_log (m, "full scan: no state for the image");
  else if ((start = lwf_decide (c, epoch, &at, phase == LWF_SCANNING, &why))
           == LWF_FULL_SCAN)
    mirror_log (m, "full scan: %s", why);
  else if (start == LWF_RESUME_SCAN)
    mirror_log (m, "resuming the scan at byte %" PRIu64, at.swept);
  else
    mirror_log (m, "continuing from seq %" PRIu64 " gen %" PRIu64, at.seq,
                at.gen);
  m->epoch = h->epoch;
  /* The phase its state records, until lw_follow changes it. */
  if (start != LWF_FULL_SCAN)
    m->phase = phase;
  lwf_default_options (c, &o);
  return lwf_run (c, &sink, &o, start, &at);
}

void
mirror_free (struct mirror *m)
{
  free (m->buf);
  m->buf = NULL;
}
