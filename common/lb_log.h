/* livebackup: logging for lb and lbd.
 *
 * Foreground programs log to stderr with a timestamp; --daemon switches
 * to syslog.  One line per event; callers never pass text that a peer
 * controls without bounding it (lb_log_safe).
 */

#ifndef LIVEBACKUP_LB_LOG_H
#define LIVEBACKUP_LB_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

extern void lb_log_init (const char *progname, bool use_syslog);
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
#include <pthread.h>
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
