/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: the control socket.  See control.h. */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "lb_ctl.h"
#include "lb_err.h"
#include "lb_log.h"
#include "lb_proto.h"
#include "lb_status.h"
#include "lb_time.h"
#include "lw_consumer.h"
#include "verify.h"
#include "mark.h"

/* lb --status in text: the channel's line, what lb is doing, then
 * (when it answers) its fields as "KEY: VALUE" lines.
 */
static const char lb_control_layout[] =
  "unit {unit}: {filter?filter {mode}, queue {queue_used}/{queue_size} "
  "bytes, {out_of_sync_bytes} bytes out of sync, seq {head_seq} (released "
  "{released_seq})|no filter ({error})}\n"
  "lb: {lb_running?{responding?running"
  "{waiting?, waiting for the filter's channel ({waiting})}"
  "{stale_for?, not responding: its data path has not moved for {stale_for} "
  "(stuck reading DEVICE, or on the network?)}"
  "|not responding ({silence})}|not running}\n"
  "{capture?  capture: {capture}{capture_note?: {capture_note}}\n}";
static const char lb_control_progress_layout[] =
  "  progress: {percent}, {pass_done_bytes} of {pass_total_bytes} "
  "{done_word}{pass_rate?, {pass_rate}}{eta_seconds?, {eta_seconds} left}\n";

/* The one control socket of this lb.  RATE and what it is computed
 * from belong to the control thread; WAITING to whoever holds LOCK.
 */
static struct {
  const struct lb_opts *o;
  struct lb_session_pub *pub;
  struct lb_ctl ctl;
  int wake[2];                  /* lb_control_stop to the thread */
  pthread_t thread;
  bool started;
  uint64_t rate;                /* bytes_sent per second, last second */
  uint64_t rate_bytes, rate_ms;
  pthread_mutex_t lock;
  char waiting[512];            /* why there is no channel; "": attached */
} lb_control = { .ctl = { .fd = -1 }, .wake = { -1, -1 },
                 .lock = PTHREAD_MUTEX_INITIALIZER };

int
lb_control_default (const struct lb_opts *o, char *out, char *err,
                    size_t errlen)
{
  char path[4096];

  lw_shm_path (path, sizeof path - 8, o->dir ? o->dir : LW_DEFAULT_DIR,
               o->unit);
  strcat (path, ".lb.ctl");
  return lb_ctl_path (path, out, err, errlen);
}

static const char *
lb_control_capture (uint32_t kind)
{
  switch (kind) {
  case LW_START_VOLATILE:
    return "new at nbdkit's start (no livewatch-state= file)";
  case LW_START_FRESH:
    return "new (a new capture epoch)";
  case LW_START_CLEAN:
    return "continued after a clean stop of nbdkit";
  case LW_START_RECOVERED:
    return "continued after an unclean stop of nbdkit (the regions being "
           "written then are compared)";
  }
  return "?";
}

/* The fields of channel C, or (C NULL) why it could not be opened,
 * ERR; and the layout of the text.  TO_COMPARE: bytes a scan has yet
 * to compare, out of sync too though the filter marks none of them.
 */
static void
lb_control_channel (struct lb_status *d, unsigned unit, struct lwc *c,
                    const char *err, uint64_t to_compare)
{
  lb_status_uint (d, "unit", unit);
  lb_status_bool (d, "filter", c != NULL);
  if (c) {
    const struct lw_header *h = lwc_header (c);
    uint64_t dirty, pending, out;

    lwc_count_bits (c, &dirty, &pending);
    out = (dirty + pending) * h->block_size + to_compare;
    lb_status_str (d, "mode", lwc_mode (c) == LW_MODE_NORMAL ? "normal"
                                                             : "degraded");
    lb_status_bytes (d, "queue_used", atomic_load (&h->head_pos)
                                      - atomic_load (&h->tail_pos));
    lb_status_bytes (d, "queue_size", h->ring_size);
    lb_status_bytes (d, "out_of_sync_bytes",
                     out < h->dev_size ? out : h->dev_size);
    lb_status_uint (d, "head_seq", atomic_load (&h->head_seq));
    lb_status_uint (d, "released_seq", atomic_load (&h->tail_seq));
    lb_status_strf (d, "epoch", "%016" PRIx64, h->epoch);
    lb_status_uint (d, "gen", atomic_load (&h->gen_acked));
    /* How this filter instance began: what a scan or a catch-up that
     * follows a restart of nbdkit is owed to.
     */
    lb_status_str (d, "capture", lb_control_capture (h->start_kind));
    if (h->start_reason[0])
      lb_status_strf (d, "capture_note", "%.*s", LW_REASON_LEN,
                      h->start_reason);
  }
  else
    lb_status_text_only (lb_status_str (d, "error", err));
  lb_status_layout (d, lb_control_layout);
}

/* What lb --status exits with, and says in "state". */
enum lb_control_verdict {
  LB_CONTROL_CURRENT = 0,       /* live and current */
  LB_CONTROL_BEHIND = 1,        /* connecting, scanning, catching up, or
                                   waiting for the filter */
  LB_CONTROL_DOWN = 2,          /* not running, or not responding */
};

/* lb's own fields, into group G, and its verdict.  The counters belong
 * to the current connection and read 0 while there is none.
 */
static enum lb_control_verdict
lb_control_fields (struct lb_status *g, bool waiting, bool stale,
                   uint64_t updated)
{
  const struct lb_opts *o = lb_control.o;
  struct lb_session_pub *pub = lb_control.pub;
  const struct lb_progress *p = &pub->progress;
  struct lb_sink *s = atomic_load (&pub->sink);
  bool up = atomic_load (&pub->connected) && s;
  uint32_t phase = up ? atomic_load (&s->pub_phase) : 0;
  const char *why = atomic_load (&p->why);

  lb_status_uint (g, "pid", (uint64_t) getpid ());
  lb_status_strf (g, "server", "%s/%s", o->host, o->port);
  lb_status_bool (g, "connected", atomic_load (&pub->connected));
  lb_status_time (g, "since", atomic_load (&pub->since));
  lb_status_str (g, "phase", up ? lbp_phase_name (phase) : "connecting");
  lb_status_time (g, "phase_since", atomic_load (&p->phase_since));
  if (why)
    lb_status_str (g, "why", why);
  lb_progress_fields (p, g, lb_control_progress_layout);
  lb_status_size (g, "to_compare_bytes", atomic_load (&p->to_compare));
  lb_status_bool (g, "deferring", up && atomic_load (&s->pub_deferring));
  lb_status_bytes (g, "bytes_sent", s ? atomic_load (&s->bytes_sent) : 0);
  lb_status_rate (g, "rate", lb_control.rate);
  lb_status_bytes (g, "bytes_scanned",
                   s ? atomic_load (&s->bytes_scanned) : 0);
  lb_status_bytes (g, "bytes_same", s ? atomic_load (&s->bytes_same) : 0);
  lb_status_time (g, "last_consistent",
                  s ? atomic_load (&s->last_consistent) : 0);
  lb_verify_status (g);
  lb_status_time (g, "updated", updated);
  lb_status_bool (g, "stale", stale);
  if (stale)
    return LB_CONTROL_DOWN;
  if (!waiting && up && phase == LBP_PHASE_LIVE)
    return LB_CONTROL_CURRENT;
  return LB_CONTROL_BEHIND;
}

static const char *
lb_control_state (enum lb_control_verdict v, bool waiting, bool stale)
{
  if (stale)
    return "stale";
  if (waiting)
    return "waiting";
  return v == LB_CONTROL_CURRENT ? "live" : "behind";
}

/* A mark, as lb --mark and lb --status show it. */
static const char lb_control_mark_layout[] =
  "mark '{label}': {state}{seq? at seq {seq}}{point?: restore point {point}}"
  "{note?: {note}}\n";

/* The newest mark, for lb --status. */
static void
lb_control_last_mark (struct lb_status *d)
{
  static const char layout[] =
    "  last mark: '{label}' {state}{seq? at seq {seq}}, asked {asked}"
    "{point?: restore point {point}}{note?: {note}}\n";
  struct lb_mark m;

  if (lb_mark_find (NULL, &m)) {
    struct lb_status *o = lb_status_object (d, "mark");
    lb_mark_status (o, &m);
    lb_status_layout (o, layout);
  }
}

/* The answer of the running lb (lb_ctl_build_fn). */
static int
lb_control_build (struct lb_status *d, void *arg)
{
  const struct lb_opts *o = lb_control.o;
  const struct lb_progress *p = &lb_control.pub->progress;
  char err[512], waiting[sizeof lb_control.waiting];
  struct lwc *c = lwc_attach (o->dir, o->unit, LWC_OBSERVE, err, sizeof err);
  uint64_t age = lb_now_ms () - atomic_load (&p->beat_ms);
  bool stale = age > LB_PROGRESS_STALE_SECONDS * 1000;
  enum lb_control_verdict v;

  (void) arg;
  pthread_mutex_lock (&lb_control.lock);
  memcpy (waiting, lb_control.waiting, sizeof waiting);
  pthread_mutex_unlock (&lb_control.lock);
  lb_control_channel (d, o->unit, c, err, atomic_load (&p->to_compare));
  lwc_detach (c);
  lb_status_bool (d, "lb_running", true);
  lb_status_bool (d, "responding", true);
  lb_status_str (d, "waiting", waiting);
  if (stale)
    lb_status_text_only (lb_status_seconds (d, "stale_for", age / 1000));
  v = lb_control_fields (lb_status_object (d, NULL), waiting[0] != '\0',
                         stale, (uint64_t) time (NULL) - age / 1000);
  /* Beside the layout's fields, JSON's one word for the verdict. */
  lb_status_str (d, "state", lb_control_state (v, waiting[0], stale));
  lb_control_last_mark (d);
  return v;
}

/* A verify request (ARGS after "verify": " start" or " PASS"), for
 * lb --verify (lb_ctl_build_args_fn).
 */
/* Is the unit live now?  If not, *WHY says what it is instead. */
static bool
lb_control_live (const char **why)
{
  struct lb_session_pub *pub = lb_control.pub;
  struct lb_sink *s = atomic_load (&pub->sink);
  bool up = atomic_load (&pub->connected) && s;
  uint32_t phase = up ? atomic_load (&s->pub_phase) : 0;

  *why = up ? lbp_phase_name (phase) : "not connected to lbd";
  return up && phase == LBP_PHASE_LIVE;
}

static int
lb_control_verify (struct lb_status *d, const char *args)
{
  const char *not_live;
  bool live = lb_control_live (&not_live);
  unsigned long long pass;
  int v, n = 0;

  lb_status_uint (d, "unit", lb_control.o->unit);
  if (strcmp (args, " start") == 0)
    v = lb_verify_request (d, live, not_live);
  else if (sscanf (args, " %llu%n", &pass, &n) == 1 && args[n] == '\0')
    v = lb_verify_report (d, pass);
  else {
    lb_status_str (d, "state", "unknown");
    lb_status_str (d, "why", "not a verify request");
    lb_status_layout (d, "{why}\n");
    return LB_VERIFY_FAILED;
  }
  lb_status_bool (d, "live", live);
  /* lb --verify gives up on a pass whose unit stays behind. */
  return v == LB_VERIFY_RUNNING && !live ? LB_VERIFY_STALLED : v;
}

/* Wake the follower: a mark is asked for (lb_mark_ask). */
static void
lb_control_nudge (void *arg)
{
  const struct lb_opts *o = arg;
  char err[512];
  struct lwc *c = lwc_attach (o->dir, o->unit, LWC_OBSERVE, err, sizeof err);

  if (c)
    lwc_nudge (c);
  lwc_detach (c);
}

/* The verdict of a mark's document (lb --mark's exit status). */
static int
lb_control_mark_verdict (const struct lb_mark *m)
{
  switch (m->state) {
  case LB_MARK_PLACED: case LB_MARK_SENT: return LB_CONTROL_MARK_PENDING;
  case LB_MARK_TAKEN: return LB_CONTROL_MARK_OK;
  default: return LB_CONTROL_MARK_NO;
  }
}

/* Every request on the control socket: a status, a verify's ("verify
 * start", "verify PASS"), or a mark's ("mark LABEL": place a mark;
 * "mark-status LABEL": what became of it).
 */
static int
lb_control_build_args (struct lb_status *d, const char *args, void *arg)
{
  struct lb_mark m;

  if (strncmp (args, "verify", 6) == 0)
    return lb_control_verify (d, args + 6);
  if (strncmp (args, "mark ", 5) == 0) {
    const char *label = args + 5;
    if (!lw_mark_label_ok (label, strlen (label))) {
      lb_status_str (d, "label", "?");
      lb_status_str (d, "state", "refused");
      lb_status_str (d, "note", "not a label");
      lb_status_layout (d, lb_control_mark_layout);
      return LB_CONTROL_MARK_NO;
    }
    const char *not_live;
    /* Not live: say so now (the file system may be frozen meanwhile). */
    if (!lb_control_live (&not_live)) {
      lb_status_str (d, "label", label);
      lb_status_str (d, "state", "refused");
      lb_status_strf (d, "note", "the image is not live (%s): a mark now "
                      "would not name one moment; try again once lb "
                      "--status says live", not_live);
      lb_status_layout (d, lb_control_mark_layout);
      lb_warn ("mark '%s' refused: not live (%s)", label, not_live);
      return LB_CONTROL_MARK_NO;
    }
    lb_mark_ask (label, lb_control_nudge, (void *) lb_control.o, &m);
    lb_mark_status (d, &m);
    lb_status_layout (d, lb_control_mark_layout);
    /* Placed is what lb --mark waits for (the moment is fixed). */
    return m.state == LB_MARK_PLACED ? LB_CONTROL_MARK_OK
                                     : lb_control_mark_verdict (&m);
  }
  if (strncmp (args, "mark-status ", 12) == 0) {
    if (!lb_mark_find (args + 12, &m)) {
      lb_status_str (d, "label", args + 12);
      lb_status_str (d, "state", "unknown");
      lb_status_str (d, "note", "no such mark is kept");
      lb_status_layout (d, lb_control_mark_layout);
      return LB_CONTROL_MARK_NO;
    }
    lb_mark_status (d, &m);
    lb_status_layout (d, lb_control_mark_layout);
    return lb_control_mark_verdict (&m);
  }
  return lb_control_build (d, arg);
}

void
lb_control_waiting (const char *why)
{
  pthread_mutex_lock (&lb_control.lock);
  snprintf (lb_control.waiting, sizeof lb_control.waiting, "%s",
            why ? why : "");
  pthread_mutex_unlock (&lb_control.lock);
}

/* Once a second at most: the rate of the last interval. */
static void
lb_control_sample (void)
{
  struct lb_sink *s = atomic_load (&lb_control.pub->sink);
  uint64_t now = lb_now_ms (), bytes = s ? atomic_load (&s->bytes_sent) : 0;

  if (now - lb_control.rate_ms < 1000)
    return;
  /* A new connection starts its count at 0. */
  lb_control.rate = bytes >= lb_control.rate_bytes
                    ? (bytes - lb_control.rate_bytes) * 1000
                      / (now - lb_control.rate_ms)
                    : 0;
  lb_control.rate_bytes = bytes;
  lb_control.rate_ms = now;
}

/* In the control thread (lb_control_claim): listen again unless the
 * socket at the path is still this lb's.
 */
static void
lb_control_reclaim (void)
{
  struct lb_ctl fresh;
  char err[512];

  if (lb_ctl_holds (&lb_control.ctl))
    return;
  /* Another lb took the path while this one waited for the channel,
   * then found the unit taken and left: the path is this lb's again.
   */
  if (lb_ctl_listen (&fresh, lb_control.o->control, err, sizeof err) == -1) {
    lb_warn ("no status: %s", err);
    return;
  }
  close (lb_control.ctl.fd);
  lb_control.ctl = fresh;
}

static void *
lb_control_thread (void *arg)
{
  (void) arg;
  for (;;) {
    struct pollfd pfd[2] = {
      { .fd = lb_control.wake[0], .events = POLLIN },
      { .fd = lb_control.ctl.fd, .events = POLLIN },
    };

    char cmd = 'q';

    lb_control_sample ();
    if (poll (pfd, 2, 1000) == -1 && errno != EINTR)
      break;
    if (pfd[0].revents && (read (lb_control.wake[0], &cmd, 1) != 1
                           || cmd == 'q'))
      break;
    if (cmd == 'c') {
      lb_control_reclaim ();
      continue;
    }
    if (pfd[1].revents & POLLIN)
      lb_ctl_serve_args (&lb_control.ctl, lb_control_build_args, NULL);
  }
  return NULL;
}

enum lb_control_start
lb_control_start (const struct lb_opts *o, struct lb_session_pub *pub,
                  char *err, size_t errlen)
{
  sigset_t all, old;
  int e;

  if (lb_ctl_in_use (o->control)) {
    lb_errf (err, errlen, "%s: another lb answers there (does one follow "
             "unit %u already?)", o->control, o->unit);
    return LB_CONTROL_TAKEN;
  }
  lb_control.o = o;
  lb_control.pub = pub;
  if (lb_ctl_listen (&lb_control.ctl, o->control, err, errlen) == -1)
    return LB_CONTROL_FAILED;
  if (pipe2 (lb_control.wake, O_CLOEXEC) == -1) {
    lb_errf (err, errlen, "pipe: %s", strerror (errno));
    lb_ctl_close (&lb_control.ctl);
    return LB_CONTROL_FAILED;
  }
  lb_control.rate_ms = lb_now_ms ();
  /* Signals go to the main thread, whose waits they should cut short. */
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  e = pthread_create (&lb_control.thread, NULL, lb_control_thread, NULL);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (e != 0) {
    lb_errf (err, errlen, "thread: %s", strerror (e));
    close (lb_control.wake[0]);
    close (lb_control.wake[1]);
    lb_ctl_close (&lb_control.ctl);
    return LB_CONTROL_FAILED;
  }
  lb_control.started = true;
  return LB_CONTROL_STARTED;
}

void
lb_control_claim (void)
{
  if (lb_control.started && write (lb_control.wake[1], "c", 1) != 1)
    lb_warn ("no status: cannot wake the status thread: %s",
             strerror (errno));
}

void
lb_control_stop (void)
{
  if (!lb_control.started)
    return;
  if (write (lb_control.wake[1], "q", 1) == 1)
    pthread_join (lb_control.thread, NULL);
  close (lb_control.wake[0]);
  close (lb_control.wake[1]);
  lb_ctl_close (&lb_control.ctl);
  lb_control.started = false;
}

int
lb_control_status (const struct lb_opts *o, bool json)
{
  enum lb_status_format format = json ? LB_STATUS_JSON : LB_STATUS_TEXT;
  char err[512], why[640] = "";
  struct lwc *c;
  enum lb_ctl_answer a;
  struct lb_status *d;
  int e = ENOENT, verdict = -1;

  if (o->control[0] != '\0') {
    a = lb_ctl_ask (o->control, format, LB_CTL_ASK_MS, stdout, &verdict,
                    why, sizeof why);
    e = errno;
    if (a == LB_CTL_ANSWERED)
      /* An lb that gives no verdict is not known to be current. */
      return verdict >= 0 ? verdict : LB_CONTROL_BEHIND;
  }
  else
    a = LB_CTL_UNREACHED;       /* lb.c said why */
  /* No answer: the channel speaks for itself.  Say why on standard
   * error where it is not what "not running" or "not responding" mean.
   */
  if (a == LB_CTL_UNREACHED && e != ENOENT && e != ECONNREFUSED)
    fprintf (stderr, "lb: %s\n", why);
  c = lwc_attach (o->dir, o->unit, LWC_OBSERVE, err, sizeof err);
  d = lb_status_new ();
  lb_control_channel (d, o->unit, c, err, 0);
  lwc_detach (c);
  lb_status_bool (d, "lb_running", a == LB_CTL_SILENT);
  lb_status_bool (d, "responding", false);
  lb_status_text_only (lb_status_str (d, "silence", why));
  lb_status_str (d, "state", a == LB_CTL_SILENT ? "not-responding"
                                                : "not-running");
  if (lb_status_render (d, format, stdout) == -1)
    fprintf (stderr, "lb: --status: %s\n", strerror (errno));
  lb_status_free (d);
  return LB_CONTROL_DOWN;
}

/* Ask O's lb for ARGS into OUT (FORMAT), its verdict into *VERDICT;
 * false, with a message on standard error, if no lb answered.
 */
static bool
lb_control_ask_verify (const struct lb_opts *o, const char *args,
                       enum lb_status_format format, FILE *out, int *verdict)
{
  char why[640];

  if (lb_ctl_ask_args (o->control, format, args, LB_CTL_ASK_MS, out, verdict,
                       why, sizeof why) == LB_CTL_ANSWERED)
    return true;
  fprintf (stderr, "lb: --verify: unit %u: no lb answers for it (%s)\n",
           o->unit, why);
  return false;
}

int
lb_control_verify_command (const struct lb_opts *o, bool json)
{
  char args[64], *buf = NULL;
  unsigned long long pass = 0;
  uint64_t stalled = 0;
  size_t len = 0;
  int verdict = -1;
  FILE *mem;
  bool asked;

  if (o->control[0] == '\0')
    return LB_VERIFY_FAILED;    /* lb.c said why */
  if ((mem = open_memstream (&buf, &len)) == NULL) {
    fprintf (stderr, "lb: --verify: %s\n", strerror (errno));
    return LB_VERIFY_FAILED;
  }
  asked = lb_control_ask_verify (o, "verify start", LB_STATUS_TEXT, mem,
                                 &verdict);
  fclose (mem);
  if (asked && ((verdict != LB_VERIFY_RUNNING
                 && verdict != LB_VERIFY_STALLED)
                || sscanf (buf, "pass %llu", &pass) != 1))
    fprintf (stderr, "lb: --verify: unit %u: %s", o->unit, buf);
  free (buf);
  if (pass == 0)
    return LB_VERIFY_FAILED;
  snprintf (args, sizeof args, "verify %llu", pass);
  /* The pass runs in lb's data path: look again until it is over. */
  for (;;) {
    FILE *null = fopen ("/dev/null", "w");
    if (null == NULL) {
      fprintf (stderr, "lb: --verify: /dev/null: %s\n", strerror (errno));
      return LB_VERIFY_FAILED;
    }
    asked = lb_control_ask_verify (o, args, LB_STATUS_TEXT, null, &verdict);
    fclose (null);
    if (!asked)
      return LB_VERIFY_FAILED;
    if (verdict == LB_VERIFY_STALLED) {
      if (stalled == 0)
        stalled = lb_now_ms ();
      else if (lb_now_ms () - stalled > LB_VERIFY_STALL_SECONDS * 1000) {
        fprintf (stderr, "lb: --verify: unit %u has not been live for %d s: "
                 "giving up (pass %llu goes on in lb once it is live)\n",
                 o->unit, LB_VERIFY_STALL_SECONDS, pass);
        return LB_VERIFY_FAILED;
      }
    }
    else if (verdict == LB_VERIFY_RUNNING)
      stalled = 0;
    else
      break;
    poll (NULL, 0, 200);
  }
  if (!lb_control_ask_verify (o, args, json ? LB_STATUS_JSON : LB_STATUS_TEXT,
                              stdout, &verdict))
    return LB_VERIFY_FAILED;
  if (verdict == LB_VERIFY_FAILED)
    fprintf (stderr, "lb: --verify: unit %u: pass %llu did not finish (the "
             "result above says why)\n", o->unit, pass);
  return verdict >= LB_VERIFY_MATCHED && verdict <= LB_VERIFY_FAILED
         ? verdict : LB_VERIFY_FAILED;
}

/* Ask the lb at O->control with ARGS into a buffer: the answer's text
 * in *OUT (malloc'd), its verdict as the result, or -1 (WHY says why).
 */
static int
lb_control_ask_mark (const struct lb_opts *o, enum lb_status_format format,
                     const char *args, char **out, char *why, size_t whylen)
{
  size_t len = 0;
  FILE *fp = open_memstream (out, &len);
  int verdict = -1;
  enum lb_ctl_answer a;

  if (fp == NULL) {
    lb_errf (why, whylen, "%s", strerror (errno));
    return -1;
  }
  /* Placing waits for the follower for up to LB_MARK_PLACE_MS. */
  a = lb_ctl_ask_args (o->control, format, args,
                       LB_CTL_ASK_MS + LB_MARK_PLACE_MS, fp, &verdict, why,
                       whylen);
  fclose (fp);
  if (a != LB_CTL_ANSWERED) {
    free (*out);
    *out = NULL;
    return -1;
  }
  return verdict;
}

int
lb_control_mark (const struct lb_opts *o, const char *label, int wait_s,
                 bool json)
{
  enum lb_status_format format = json ? LB_STATUS_JSON : LB_STATUS_TEXT;
  char args[LB_CTL_ARGS_MAX], why[640], *text = NULL;
  uint64_t until = lb_now_ms () + (uint64_t) wait_s * 1000;
  int v;

  snprintf (args, sizeof args, "mark %s", label);
  v = lb_control_ask_mark (o, format, args, &text, why, sizeof why);
  if (v == -1) {
    fprintf (stderr, "lb: unit %u: no lb answers: %s\n", o->unit, why);
    return LB_CONTROL_DOWN;
  }
  /* --wait: until lbd has said what became of it. */
  snprintf (args, sizeof args, "mark-status %s", label);
  while (wait_s > 0 && (v == LB_CONTROL_MARK_OK
                        || v == LB_CONTROL_MARK_PENDING)) {
    free (text);
    text = NULL;
    v = lb_control_ask_mark (o, format, args, &text, why, sizeof why);
    if (v == -1) {
      fprintf (stderr, "lb: unit %u: mark '%s' placed, but lb stopped "
               "answering: %s\n", o->unit, label, why);
      return LB_CONTROL_DOWN;
    }
    if (v != LB_CONTROL_MARK_PENDING)
      break;
    if (lb_now_ms () >= until) {
      fprintf (stderr, "lb: mark '%s' placed; lbd has not taken its point "
               "within %d s (it does when the stream reaches the mark: see "
               "lb --status)\n", label, wait_s);
      break;
    }
    poll (NULL, 0, 100);
  }
  fputs (text, stdout);
  free (text);
  return v == LB_CONTROL_MARK_PENDING ? LB_CONTROL_MARK_NO : v;
}
