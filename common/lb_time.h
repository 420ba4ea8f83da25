/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: clocks and how times are written.
 *
 * lb_now_ms for timeouts and rates (monotonic).  For people and
 * programs, wall-clock times are written one of two ways: local time
 * for text ("2026-12-01 18:53:48"), ISO 8601 in UTC for JSON
 * ("2026-12-01T18:53:48Z"); durations as "2 h 5 min", "40 s".
 */

#ifndef LIVEBACKUP_LB_TIME_H
#define LIVEBACKUP_LB_TIME_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

static inline uint64_t
lb_now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The monotonic clock in nanoseconds, for measuring rates. */
static inline uint64_t
lb_now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Room for any of the strings below, NUL included. */
#define LB_TIME_LEN 32

/* T (seconds since the epoch) in local time, "YYYY-MM-DD HH:MM:SS";
 * "never" for 0.  Returns BUF.
 */
extern const char *lb_time_local (uint64_t t, char buf[LB_TIME_LEN]);

/* T in UTC, ISO 8601: "YYYY-MM-DDTHH:MM:SSZ"; "" for 0.  Returns BUF. */
extern const char *lb_time_iso (uint64_t t, char buf[LB_TIME_LEN]);

/* SECONDS as a person reads a duration, the two largest units:
 * "0 s", "59 s", "1 min 5 s", "3 h 20 min", "2 d 4 h".  Returns BUF.
 */
extern const char *lb_duration (uint64_t seconds, char buf[LB_TIME_LEN]);

/* Parse the N bytes at V (not NUL-terminated) as a duration: a number of
 * seconds, or of minutes, hours, days or weeks with a suffix m, h, d or
 * w ("90", "30m", "24h", "7d", "2w"), into *SECONDS.  0, or -1.
 */
extern int lb_duration_parse (const char *v, size_t n, uint64_t *seconds);

#endif /* LIVEBACKUP_LB_TIME_H */
