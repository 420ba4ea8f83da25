/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: logging for lb and lbd.
 *
 * One line per event, to one destination chosen at start (--log):
 *   LB_LOG_STDERR  standard error, each line with the local time;
 *   LB_LOG_SYSLOG  the system log: a datagram to the local syslog socket
 *                  (facility daemon, tag PROGNAME[PID]), in the format
 *                  of syslog(3) ("<PRI>Mmm dd hh:mm:ss TAG[PID]: text").
 * Syslog is our own small client rather than syslog(3), for two reasons:
 * a message never blocks the daemon (a full socket drops it, and the
 * count of dropped ones is logged with the next that gets through), and
 * the socket is a path we can name, so that lb --log=syslog is tested
 * like the real thing: the environment variable LIVEBACKUP_SYSLOG_SOCKET
 * names another socket than /dev/log (for tests; lb(8) and lbd(8) say
 * so under ENVIRONMENT).  Where nothing listens yet, each message tries
 * again, at most once a second.
 *
 * Callers never pass text that a peer controls without bounding it
 * (lb_log_safe).  LOG_DEBUG lines are logged only with lb_log_verbose
 * (-v).
 */

#ifndef LIVEBACKUP_LB_LOG_H
#define LIVEBACKUP_LB_LOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

enum lb_log_dest {
  LB_LOG_STDERR,
  LB_LOG_SYSLOG,
};

/* The environment variable naming the syslog socket (default /dev/log). */
#define LB_LOG_SOCKET_ENV "LIVEBACKUP_SYSLOG_SOCKET"

/* Log as PROGNAME to DEST from now on.  For LB_LOG_SYSLOG the socket is
 * connected now, so that it is inherited across a fork and a chroot.
 * Returns 0, or -1 with why in ERR when DEST is LB_LOG_SYSLOG and no
 * syslog socket answers (messages are then dropped until one does):
 * worth telling the user while standard error still reaches them.
 */
extern int lb_log_init (const char *progname, enum lb_log_dest dest,
                        char *err, size_t errlen);

/* Parse a --log value ("stderr" or "syslog") into *DEST; false if it is
 * neither.
 */
extern bool lb_log_parse_dest (const char *s, enum lb_log_dest *dest);

extern void lb_log (int priority, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* Copy at most OUTLEN-1 bytes of peer-supplied TEXT into OUT, replacing
 * anything unprintable, so that a peer cannot forge log lines.
 */
extern void lb_log_safe (char *out, size_t outlen, const char *text,
                         size_t len);

#define lb_err(...)   lb_log (LOG_ERR, __VA_ARGS__)
#define lb_warn(...)  lb_log (LOG_WARNING, __VA_ARGS__)
#define lb_info(...)  lb_log (LOG_INFO, __VA_ARGS__)
#define lb_debug(...) lb_log (LOG_DEBUG, __VA_ARGS__)

extern bool lb_log_verbose;

/* Something else on the log's terminal between log lines (lb's progress
 * line, lb/progress.h): FN (ARG) runs under the log's lock, so never in
 * the middle of a log line; ERASE, if set, runs under it before every
 * log line written to standard error, to take that something away.
 */
extern void lb_log_locked (void (*fn) (void *), void *arg);
extern void lb_log_set_eraser (void (*erase) (void));

/* A rate limit for lines a peer can cause before it is authenticated
 * (one per refused connection): at most MAX lines per 10 s; then one line
 * saying how many were not logged.
 */
struct lb_log_limit {
  pthread_mutex_t lock;
  uint64_t window_ms;
  unsigned count, suppressed, max;
  const char *what;
};
#define LB_LOG_LIMIT_INIT(max, what) \
  { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, (max), (what) }
/* May one more line be logged now? */
extern bool lb_log_allow (struct lb_log_limit *l);

#endif
