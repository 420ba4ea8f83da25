/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: where the data path stands — the heartbeat, what it does and
 * why, and how far the current scan or catch-up pass has got.
 *
 * The data path (the main thread, through the sink's callbacks) writes
 * it; the status thread (control.c) reads it; on a terminal the data
 * path also draws it as one progress line on standard error, which
 * log lines first clear (lb_log.h), so that the two never mix.  The
 * numbers are the ones lw_follow hands the sink (struct lwf_progress):
 * a sweep's position, or the bytes a pass copied of those marked when
 * it began; the rate is theirs, per second, smoothed.
 *
 * One struct lb_progress lives as long as lb (lb_session_pub holds
 * it): a scan cut with its connection is still to be finished, and the
 * status says so between sessions.
 */

#ifndef LB_PROGRESS_H
#define LB_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "lb_status.h"
#include "lw_follow.h"

/* The data path is stale, and lb not responding, once it has not moved
 * for this long.  It moves at least every lwf_options.idle_ms when
 * idle and after every step; the longest single step that is not a
 * fault is a 4 MiB message (LB_CHUNK) on a slow link, or a connection
 * attempt (10 s per address).
 */
#define LB_PROGRESS_STALE_SECONDS 30

struct lb_progress {
  /* Written by the data path, read by the status thread. */
  _Atomic uint64_t beat_ms;         /* when it last moved (lb_now_ms) */
  _Atomic uint64_t phase_since;     /* when its phase began (time (NULL)) */
  const char *_Atomic why;          /* why that phase runs, or NULL */
  _Atomic bool running;             /* a pass runs: the fields below hold */
  _Atomic uint32_t phase;           /* the pass's enum lwf_phase */
  _Atomic uint32_t pass;
  _Atomic uint64_t done, total;     /* device bytes (struct lwf_progress) */
  _Atomic uint64_t rate;            /* DONE's growth per second; 0: not
                                       known yet */
  _Atomic uint64_t to_compare;      /* device bytes a scan has not yet
                                       compared (0: no scan to finish) */

  /* The data path's own. */
  const char *scan_why;             /* why the coming scan runs */
  uint64_t sample_ms, sample_done;  /* the rate's last sample */
  uint64_t drawn_ms;                /* the progress line's last drawing */
};

/* Draw the progress line on standard error (lb.c: when it is a
 * terminal and lb does not detach).  Call once, before other threads
 * start.
 */
extern void lb_progress_tty (void);

/* The data path moved. */
extern void lb_progress_beat (struct lb_progress *p);

/* A session decided how it starts (lwf_decide): START for an image
 * whose scan, if any, swept SWEPT of DEV_SIZE bytes; WHY, lwf_decide's
 * reason for a full scan (static).
 */
extern void lb_progress_session (struct lb_progress *p, enum lwf_start start,
                                 const char *why, uint64_t swept,
                                 uint64_t dev_size);

/* The phase changed from FROM to TO (FIRST: the session's first change;
 * the image's recorded phase was FROM).  Records when, and why.
 */
extern void lb_progress_phase (struct lb_progress *p, enum lwf_phase from,
                               enum lwf_phase to, bool first);

/* No session runs now (it ended, or none began): connecting, since now. */
extern void lb_progress_idle (struct lb_progress *p);

/* A pass moved on (the sink's progress callback). */
extern void lb_progress_step (struct lb_progress *p,
                              const struct lwf_progress *lp);

/* Clear the progress line, if one is drawn (a session ends). */
extern void lb_progress_clear (void);

/* P's pass, if one runs, into OBJ as a group of fields (percent,
 * pass_done_bytes, pass_total_bytes, pass_rate, eta_seconds) with the
 * text LAYOUT (kept: a literal), which may name {doing} (what the pass
 * does, text only) and {done_word} ("compared" or "copied").
 * Nothing if no pass runs.
 */
extern void lb_progress_fields (const struct lb_progress *p,
                                struct lb_status *obj, const char *layout);

#endif /* LB_PROGRESS_H */
