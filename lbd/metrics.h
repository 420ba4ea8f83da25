/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: the metrics file, for Prometheus (lbd.conf's metrics=PATH).
 *
 * A file in Prometheus's text format (version 0.0.4) that
 * node_exporter's textfile collector reads: lbd's own state and, per
 * client line, its image's state (clientstat.h).  lbd(8) lists every
 * metric.  It is replaced whole, never written in place: written to
 * PATH.tmp in the same folder, then renamed over PATH, so a reader sees
 * the old file or the new one, never part of one.  It is not fsynced:
 * it is rewritten every few seconds, and after a crash an old or empty
 * one says no more than a missing one would (lbd_up is gone either way).
 *
 * lbd's poll loop writes it, every METRICS_PERIOD_MS and soon after a
 * client's state changes; any thread may say that one did.
 */

#ifndef LBD_METRICS_H
#define LBD_METRICS_H

#include <stddef.h>

#include "session.h"

#define METRICS_PERIOD_MS 5000

/* Write PATH from now on (metrics_start the first time), for the
 * running configuration's clients (running.h: read in the main thread,
 * which alone changes them).  Returns a descriptor for the poll loop to watch for POLLIN
 * (then call metrics_run), or -1 with ERR (lbd does not start: a
 * metrics= it cannot write would fail silently otherwise).
 */
extern int metrics_open (const char *path, char *err, size_t errlen);

/* Write the file now, for the clients just installed (at start, and
 * after a reload opened a new metrics=).  An error is logged and tried
 * again later.
 */
extern void metrics_start (void);

/* The file being written, or NULL (for a reload to compare). */
extern const char *metrics_path (void);

/* A client's state changed: write the file soon.  Any thread; does
 * nothing without metrics=.
 */
extern void metrics_changed (void);

/* How long the poll loop may sleep before metrics_run is due, in ms
 * (-1: never, without metrics=).
 */
extern int metrics_timeout (void);

/* Write the file if it is due or a state changed (a failure is logged,
 * once until it works again).
 */
extern void metrics_run (void);

/* lbd stops: write the file a last time, saying so (livebackup_lbd_up
 * 0), and stop.
 */
extern void metrics_close (void);

#endif /* LBD_METRICS_H */
