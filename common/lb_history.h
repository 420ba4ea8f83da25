/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: a history= retention policy (lbd.conf's client lines) and
 * the calendar it works in.
 *
 *   history=hourly:24,daily:14,weekly:8,monthly:12
 *
 * The form and meaning of sanoid's and restic forget's --keep-*: for
 * each kind given, keep the newest point of each of the last N periods
 * of that kind that hold a point (so hourly:24 keeps one point in each
 * of the 24 most recent hours that have one).  A point is kept if any
 * kind keeps it.  minutely:N exists for tests and for very busy images.
 * Periods are calendar periods in UTC: minutes, hours, days, ISO weeks
 * (Monday to Sunday), months.
 *
 * The schedule follows from the finest kind given: a point is due when
 * the time is in another period of that kind than the newest point's.
 */

#ifndef LIVEBACKUP_LB_HISTORY_H
#define LIVEBACKUP_LB_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lb_history_kind {
  LB_HISTORY_MINUTELY,
  LB_HISTORY_HOURLY,
  LB_HISTORY_DAILY,
  LB_HISTORY_WEEKLY,
  LB_HISTORY_MONTHLY,
  LB_HISTORY_KINDS
};

/* The most points of one kind a policy may keep. */
#define LB_HISTORY_KEEP_MAX 100000

struct lb_history {
  unsigned keep[LB_HISTORY_KINDS];      /* 0: kind not given */
};

/* Is any kind given (is history on)? */
extern bool lb_history_on (const struct lb_history *h);

/* "hourly" etc. */
extern const char *lb_history_kind_name (enum lb_history_kind k);

/* Parse the N bytes at V ("KIND:COUNT,..."), not NUL-terminated, into
 * H.  0, or -1 with why in WHY (to follow "history=VALUE: ").
 */
extern int lb_history_parse (const char *v, size_t n, struct lb_history *h,
                             char *why, size_t whylen);

/* The policy as it would be written, into OUT ("" when off). */
extern void lb_history_format (const struct lb_history *h, char *out,
                               size_t len);

/* Which period of kind K holds T (seconds since 1970, UTC). */
extern int64_t lb_history_period (enum lb_history_kind k, int64_t t);

/* Is a point due at NOW, the newest one being of NEWEST (0: none)? */
extern bool lb_history_due (const struct lb_history *h, int64_t newest,
                            int64_t now);

/* Which of the N points of times T[0..N) (newest first) the policy keeps:
 * KEEP[i] set for those, cleared for the others.
 */
extern void lb_history_retain (const struct lb_history *h, const int64_t *t,
                               size_t n, bool *keep);

#endif /* LIVEBACKUP_LB_HISTORY_H */
