/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: the metrics file.  See metrics.h; lbd(8) lists the metrics. */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "clientstat.h"
#include "lb_err.h"
#include "lb_log.h"
#include "lb_time.h"
#include "metrics.h"
#include "running.h"

/* After a state change, write at most this soon after the last time:
 * a burst of changes (clients connecting at once) is one write.
 */
#define METRICS_GAP_MS 200

static struct {
  char *path, *tmp;             /* NULL: no metrics= */
  int wake[2];                  /* metrics_changed to the poll loop */
  uint64_t start;               /* lbd's start, time (NULL) */
  uint64_t due_ms;              /* the next write, lb_now_ms */
  uint64_t written_ms;          /* the last one */
  bool failing;                 /* the last write failed (logged) */
} metrics = { .wake = { -1, -1 } };

/* One metric family's lines: its name, type and help. */
struct metrics_family {
  const char *name, *type, *help;
};

static void
metrics_head (FILE *fp, const struct metrics_family *f)
{
  fprintf (fp, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
           f->type);
}

/* S as a label value: backslash, double quote and newline escaped. */
static void
metrics_label (FILE *fp, const char *s)
{
  for (; *s; s++) {
    if (*s == '\\' || *s == '"')
      fprintf (fp, "\\%c", *s);
    else if (*s == '\n')
      fputs ("\\n", fp);
    else
      fputc (*s, fp);
  }
}

/* The start of F's sample for client ST: name and labels, up to the
 * closing brace (EXTRA: more labels, already written as text).
 */
static void
metrics_sample (FILE *fp, const struct metrics_family *f,
                const struct clientstat *st, const char *extra)
{
  fprintf (fp, "%s{client=\"", f->name);
  metrics_label (fp, st->name);
  fputs ("\",image=\"", fp);
  metrics_label (fp, st->image);
  fprintf (fp, "\"%s} ", extra);
}

/* lbd's own families, in the order metrics_print writes their values. */
static const struct metrics_family metrics_lbd[] = {
  { "livebackup_lbd_up", "gauge",
    "1 while lbd runs; 0 once it has stopped cleanly." },
  { "livebackup_lbd_start_time_seconds", "gauge",
    "When lbd started, in seconds since 1970." },
  { "livebackup_lbd_metrics_time_seconds", "gauge",
    "When lbd wrote this file, in seconds since 1970 (every 5 s while it "
    "runs)." },
  { "livebackup_lbd_clients", "gauge",
    "Client lines in lbd's configuration." },
};

/* The per-client families, in the order written. */
enum metrics_client {
  METRICS_CONNECTED,
  METRICS_PHASE,
  METRICS_CONSISTENT,
  METRICS_OUT_OF_SYNC,
  METRICS_INCONSISTENT,
  METRICS_LAST_CONSISTENT,
  METRICS_SIZE,
  METRICS_RECEIVED,
  METRICS_CONNECTIONS,
  METRICS_REPLACED,
  METRICS_REFUSED,
  METRICS_EXPORTS,
  METRICS_NCLIENT,
};

static const struct metrics_family metrics_client[METRICS_NCLIENT] = {
  [METRICS_CONNECTED] = { "livebackup_client_connected", "gauge",
    "1 while lb has a session with lbd for this image, else 0." },
  [METRICS_PHASE] = { "livebackup_client_phase", "gauge",
    "1 for the image's phase (scanning, catching-up, live, or "
    "disconnected), 0 for the others." },
  [METRICS_CONSISTENT] = { "livebackup_client_consistent", "gauge",
    "1 if the image is the partition as it was at one moment, 0 while a "
    "scan or catch-up is unfinished." },
  [METRICS_OUT_OF_SYNC] = { "livebackup_client_out_of_sync_bytes", "gauge",
    "Bytes lb still has to bring to the image (marked blocks, and in a "
    "scan those not yet compared); NaN when not known (not connected)." },
  [METRICS_INCONSISTENT] = { "livebackup_client_inconsistent_seconds",
    "gauge",
    "Seconds since the image was last consistent: 0 while it is, +Inf if "
    "it never was." },
  [METRICS_LAST_CONSISTENT] = {
    "livebackup_client_last_consistent_timestamp_seconds", "gauge",
    "When the image was last made durable in a consistent state, in "
    "seconds since 1970; 0 for never." },
  [METRICS_SIZE] = { "livebackup_client_image_size_bytes", "gauge",
    "The image's size: the client's partition's." },
  [METRICS_RECEIVED] = { "livebackup_client_received_bytes_total", "counter",
    "Payload bytes received from the client since lbd started." },
  [METRICS_CONNECTIONS] = { "livebackup_client_connections_total", "counter",
    "Sessions started for the client since lbd started." },
  [METRICS_REPLACED] = { "livebackup_client_replaced_total", "counter",
    "Sessions ended because a newer one for the client replaced them." },
  [METRICS_REFUSED] = { "livebackup_client_refused_total", "counter",
    "Handshakes under the client's line that failed (wrong key, mode "
    "mismatch, timeout)." },
  [METRICS_EXPORTS] = { "livebackup_client_export_connections", "gauge",
    "Export (restore) connections reading the image now." },
};

/* Client ST's value of family F (not METRICS_PHASE) as text, in BUF. */
static const char *
metrics_number (enum metrics_client f, const struct clientstat *st,
                char buf[24])
{
  uint64_t v = 0;

  switch (f) {
  case METRICS_CONNECTED: v = st->connected; break;
  case METRICS_CONSISTENT: v = st->consistent; break;
  case METRICS_OUT_OF_SYNC:
    if (!st->out_of_sync_known)
      return "NaN";
    v = st->out_of_sync;
    break;
  case METRICS_INCONSISTENT:
    if (st->inconsistent_for == UINT64_MAX)
      return "+Inf";
    v = st->inconsistent_for;
    break;
  case METRICS_LAST_CONSISTENT: v = st->last_consistent; break;
  case METRICS_SIZE: v = st->size; break;
  case METRICS_RECEIVED: v = st->bytes_received; break;
  case METRICS_CONNECTIONS: v = st->connects; break;
  case METRICS_REPLACED: v = st->replaced; break;
  case METRICS_REFUSED: v = st->refused; break;
  case METRICS_EXPORTS: v = st->exports; break;
  case METRICS_PHASE:
  case METRICS_NCLIENT:
    break;
  }
  snprintf (buf, 24, "%" PRIu64, v);
  return buf;
}

/* Client ST's samples of family F. */
static void
metrics_value (FILE *fp, enum metrics_client f, const struct clientstat *st)
{
  static const char *const phases[] = {
    "scanning", "catching-up", "live", "disconnected",
  };
  char buf[24];
  size_t i;

  if (f != METRICS_PHASE) {
    metrics_sample (fp, &metrics_client[f], st, "");
    fprintf (fp, "%s\n", metrics_number (f, st, buf));
    return;
  }
  /* A state set: one sample per phase, 1 for the image's. */
  for (i = 0; i < sizeof phases / sizeof phases[0]; i++) {
    char extra[32];
    snprintf (extra, sizeof extra, ",phase=\"%s\"", phases[i]);
    metrics_sample (fp, &metrics_client[f], st, extra);
    fprintf (fp, "%d\n", strcmp (st->phase_name, phases[i]) == 0);
  }
}

/* The whole file, for UP, into FP.  The clients are read first, each
 * under its lock once, so that every family shows the same moment.
 */
static int
metrics_print (FILE *fp, bool up)
{
  uint64_t now = (uint64_t) time (NULL);
  /* The main thread's tables: only the main thread changes them. */
  const size_t nclients = running.nclients;
  struct clientstat *st = calloc (nclients ? nclients : 1, sizeof *st);
  size_t i;
  int f;

  if (st == NULL)
    return -1;
  for (i = 0; i < nclients; i++)
    clientstat_get (running.clients[i], now, &st[i]);
  {
    const uint64_t v[] = { up, metrics.start, now, nclients };
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
      metrics_head (fp, &metrics_lbd[i]);
      fprintf (fp, "%s %" PRIu64 "\n", metrics_lbd[i].name, v[i]);
    }
  }
  for (f = 0; f < METRICS_NCLIENT; f++) {
    metrics_head (fp, &metrics_client[f]);
    for (i = 0; i < nclients; i++)
      metrics_value (fp, f, &st[i]);
  }
  free (st);
  return 0;
}

/* Replace the file.  0, or -1 with ERR. */
static int
metrics_write (bool up, char *err, size_t errlen)
{
  int fd = open (metrics.tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC
                 | O_NOFOLLOW, 0644);
  FILE *fp = fd == -1 ? NULL : fdopen (fd, "w");
  int r;

  if (fp == NULL) {
    lb_errf (err, errlen, "%s: %s", metrics.tmp, strerror (errno));
    if (fd != -1)
      close (fd);
    return -1;
  }
  /* The umask may have taken more than asked: node_exporter reads it. */
  fchmod (fd, 0644);
  r = metrics_print (fp, up);
  if (fclose (fp) != 0 || r == -1) {
    lb_errf (err, errlen, "%s: %s", metrics.tmp, strerror (errno));
    unlink (metrics.tmp);
    return -1;
  }
  if (rename (metrics.tmp, metrics.path) == -1) {
    lb_errf (err, errlen, "%s: %s", metrics.path, strerror (errno));
    unlink (metrics.tmp);
    return -1;
  }
  metrics.written_ms = lb_now_ms ();
  metrics.due_ms = metrics.written_ms + METRICS_PERIOD_MS;
  return 0;
}

/* Let go of what metrics_open took. */
static void
metrics_free (void)
{
  if (metrics.wake[0] != -1) {
    close (metrics.wake[0]);
    close (metrics.wake[1]);
  }
  metrics.wake[0] = metrics.wake[1] = -1;
  free (metrics.path);
  free (metrics.tmp);
  metrics.path = metrics.tmp = NULL;
}

int
metrics_open (const char *path, char *err, size_t errlen)
{
  if (metrics.start == 0)
    metrics.start = (uint64_t) time (NULL);
  metrics.path = strdup (path);
  if (metrics.path == NULL
      || asprintf (&metrics.tmp, "%s.tmp", path) == -1) {
    lb_errf (err, errlen, "out of memory");
    metrics.tmp = NULL;
    metrics_free ();
    return -1;
  }
  if (pipe2 (metrics.wake, O_CLOEXEC | O_NONBLOCK) == -1) {
    lb_errf (err, errlen, "pipe: %s", strerror (errno));
    metrics_free ();
    return -1;
  }
  /* Prove the file can be written where it goes (and as whom lbd runs)
   * now, while the error can still stop lbd; metrics_start writes it.
   */
  {
    int fd = open (metrics.tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC
                   | O_NOFOLLOW, 0644);
    if (fd == -1) {
      lb_errf (err, errlen, "%s: %s", metrics.tmp, strerror (errno));
      metrics_free ();
      return -1;
    }
    close (fd);
    unlink (metrics.tmp);
  }
  return metrics.wake[0];
}

void
metrics_start (void)
{
  char err[512];

  if (metrics.path && metrics_write (true, err, sizeof err) == -1) {
    lb_err ("metrics: %s (trying again every %d s)", err,
            METRICS_PERIOD_MS / 1000);
    metrics.failing = true;
    metrics.due_ms = lb_now_ms () + METRICS_PERIOD_MS;
  }
}

const char *
metrics_path (void)
{
  return metrics.path;
}

void
metrics_changed (void)
{
  if (metrics.wake[1] != -1) {
    /* A full pipe is a write already asked for. */
    ssize_t r = write (metrics.wake[1], "", 1);
    (void) r;
  }
}

int
metrics_timeout (void)
{
  uint64_t now = lb_now_ms ();

  if (metrics.path == NULL)
    return -1;
  return metrics.due_ms > now ? (int) (metrics.due_ms - now) : 0;
}

void
metrics_run (void)
{
  char buf[64], err[512];
  uint64_t now = lb_now_ms ();

  if (metrics.path == NULL)
    return;
  if (read (metrics.wake[0], buf, sizeof buf) > 0) {
    while (read (metrics.wake[0], buf, sizeof buf) > 0)
      ;
    /* Soon, but not sooner than METRICS_GAP_MS after the last one. */
    if (metrics.due_ms > metrics.written_ms + METRICS_GAP_MS)
      metrics.due_ms = metrics.written_ms + METRICS_GAP_MS;
  }
  if (now < metrics.due_ms)
    return;
  if (metrics_write (true, err, sizeof err) == 0) {
    if (metrics.failing)
      lb_info ("metrics: %s written again", metrics.path);
    metrics.failing = false;
    return;
  }
  if (!metrics.failing)
    lb_err ("metrics: %s (trying again every %d s)", err,
            METRICS_PERIOD_MS / 1000);
  metrics.failing = true;
  metrics.due_ms = now + METRICS_PERIOD_MS;
}

void
metrics_close (void)
{
  char err[512];

  if (metrics.path && metrics_write (false, err, sizeof err) == -1)
    lb_warn ("metrics: %s", err);
  metrics_free ();
}
