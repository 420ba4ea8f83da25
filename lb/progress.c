/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: where the data path stands.  See progress.h. */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "lb_log.h"
#include "lb_time.h"
#include "progress.h"

/* The progress line: at most this often, and only for a pass that has
 * run this long (a pass of a few blocks is over before anyone reads it).
 */
#define LB_PROGRESS_DRAW_MS  250
#define LB_PROGRESS_SHOW_MS  200

static const char lb_progress_tty_layout[] =
  "{doing}: {percent}, {pass_done_bytes} of {pass_total_bytes} {done_word}"
  "{pass_rate?, {pass_rate}}{eta_seconds?, {eta_seconds} left}";

/* The terminal's state, under the log's lock (lb_log_locked). */
static struct {
  bool on;                      /* lb_progress_tty was called */
  bool drawn;                   /* a progress line is on the terminal */
  char line[512];               /* the next one to draw ("": clear) */
} lb_progress_term;

void
lb_progress_beat (struct lb_progress *p)
{
  atomic_store_explicit (&p->beat_ms, lb_now_ms (), memory_order_relaxed);
}

/* Before a log line, and before a new progress line: the old one goes. */
static void
lb_progress_erase (void)
{
  if (lb_progress_term.drawn)
    fputs ("\r\033[K", stderr);
  lb_progress_term.drawn = false;
}

/* Draw lb_progress_term.line (lb_log_locked). */
static void
lb_progress_draw (void *arg)
{
  (void) arg;
  lb_progress_erase ();
  if (lb_progress_term.line[0]) {
    fputs (lb_progress_term.line, stderr);
    lb_progress_term.drawn = true;
  }
  fflush (stderr);
}

void
lb_progress_tty (void)
{
  lb_progress_term.on = true;
  lb_log_set_eraser (lb_progress_erase);
}

void
lb_progress_clear (void)
{
  if (!lb_progress_term.on)
    return;
  lb_progress_term.line[0] = '\0';
  lb_log_locked (lb_progress_draw, NULL);
}

/* The progress line of P, cut to the terminal's width (a line that
 * wraps cannot be drawn over).
 */
static void
lb_progress_redraw (const struct lb_progress *p)
{
  struct lb_status *d = lb_status_new ();
  struct winsize ws;
  char *buf = NULL;
  size_t len = 0, width = sizeof lb_progress_term.line - 1;
  FILE *mem;

  lb_progress_fields (p, d, lb_progress_tty_layout);
  mem = open_memstream (&buf, &len);
  if (mem && lb_status_render (d, LB_STATUS_TEXT, mem) == 0
      && fclose (mem) == 0) {
    if (ioctl (STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1
        && (size_t) ws.ws_col - 1 < width)
      width = ws.ws_col - 1;
    snprintf (lb_progress_term.line, width + 1, "%s", buf);
    lb_log_locked (lb_progress_draw, NULL);
  }
  else if (mem)
    fclose (mem);
  free (buf);
  lb_status_free (d);
}

void
lb_progress_session (struct lb_progress *p, enum lwf_start start,
                     const char *why, uint64_t swept, uint64_t dev_size)
{
  switch (start) {
  case LWF_CONTINUE:
    p->scan_why = NULL;
    atomic_store (&p->to_compare, 0);
    break;
  case LWF_RESUME_SCAN:
    p->scan_why = "resuming a scan that was cut";
    atomic_store (&p->to_compare, swept < dev_size ? dev_size - swept : 0);
    break;
  case LWF_FULL_SCAN:
    p->scan_why = why;
    atomic_store (&p->to_compare, dev_size);
    break;
  }
}

void
lb_progress_phase (struct lb_progress *p, enum lwf_phase from,
                   enum lwf_phase to, bool first)
{
  const char *why = NULL;

  if (to == LWF_SCANNING)
    why = p->scan_why;
  else if (to == LWF_CATCHING_UP && from == LWF_SCANNING)
    why = "copying the blocks written while the scan ran";
  else if (to == LWF_CATCHING_UP && first && from == LWF_CATCHING_UP)
    why = "finishing a catch-up that was cut";
  else if (to == LWF_CATCHING_UP && first)
    why = "copying the blocks marked while lb was away or behind";
  else if (to == LWF_CATCHING_UP)
    why = "writes came faster than the link: the filter's queue "
          "overflowed";
  if (to != LWF_SCANNING)
    atomic_store (&p->to_compare, 0);
  atomic_store (&p->why, why);
  atomic_store (&p->phase_since, (uint64_t) time (NULL));
  atomic_store (&p->running, false);
}

void
lb_progress_idle (struct lb_progress *p)
{
  atomic_store (&p->why, NULL);
  atomic_store (&p->phase_since, (uint64_t) time (NULL));
  atomic_store (&p->running, false);
  lb_progress_clear ();
}

void
lb_progress_step (struct lb_progress *p, const struct lwf_progress *lp)
{
  uint64_t now = lb_now_ms ();
  bool fresh = !atomic_load (&p->running)
               || atomic_load (&p->phase) != lp->phase
               || atomic_load (&p->pass) != lp->pass
               || lp->done < p->sample_done;

  lb_progress_beat (p);
  if (fresh) {
    /* A new pass: its own sample, the last pass's rate to begin with
     * (the link and the disks are the same).
     */
    p->sample_ms = now;
    p->sample_done = lp->done;
    p->drawn_ms = now - LB_PROGRESS_DRAW_MS + LB_PROGRESS_SHOW_MS;
    atomic_store (&p->phase, lp->phase);
    atomic_store (&p->pass, lp->pass);
  }
  else if (now - p->sample_ms >= 1000) {
    uint64_t rate = atomic_load (&p->rate);
    uint64_t inst = (lp->done - p->sample_done) * 1000 / (now - p->sample_ms);
    atomic_store (&p->rate, rate ? (3 * rate + inst) / 4 : inst);
    p->sample_ms = now;
    p->sample_done = lp->done;
  }
  atomic_store (&p->done, lp->done);
  atomic_store (&p->total, lp->total);
  if (lp->phase == LWF_SCANNING)
    atomic_store (&p->to_compare, lp->total - lp->done);
  atomic_store (&p->running, !lp->end);

  if (!lb_progress_term.on)
    return;
  if (lp->end)
    lb_progress_clear ();
  else if (now - p->drawn_ms >= LB_PROGRESS_DRAW_MS) {
    p->drawn_ms = now;
    lb_progress_redraw (p);
  }
}

void
lb_progress_fields (const struct lb_progress *p, struct lb_status *obj,
                    const char *layout)
{
  struct lb_status *g;
  uint64_t done, total, rate;
  bool scan;

  if (!atomic_load (&p->running))
    return;
  done = atomic_load (&p->done);
  total = atomic_load (&p->total);
  rate = atomic_load (&p->rate);
  scan = atomic_load (&p->phase) == LWF_SCANNING;
  g = lb_status_object (obj, NULL);
  if (scan)
    lb_status_text_only (lb_status_str (g, "doing", "scanning"));
  else
    lb_status_text_only (lb_status_strf (g, "doing",
                                         "catching up (pass %u)",
                                         (unsigned) atomic_load (&p->pass)));
  lb_status_text_only (lb_status_str (g, "done_word",
                                      scan ? "compared" : "copied"));
  if (!scan)
    lb_status_uint (g, "pass", atomic_load (&p->pass));
  lb_status_percent (g, "percent", done, total);
  lb_status_size (g, "pass_done_bytes", done);
  lb_status_size (g, "pass_total_bytes", total);
  lb_status_rate (g, "pass_rate", rate);
  if (rate > 0 && done < total)
    lb_status_seconds (g, "eta_seconds", (total - done + rate - 1) / rate);
  if (layout)
    lb_status_layout (g, layout);
}
