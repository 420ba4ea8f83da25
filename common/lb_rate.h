/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: a byte rate limit (lb --max-rate, lbd.conf max-rate=).
 *
 * Pacing, not a bucket of credit: each lb_rate_take moves the time the
 * link is next free on by N / rate seconds and says how long to wait
 * for it, so that over any stretch the bytes taken stay within rate ×
 * time, plus one message and a burst of LB_RATE_BURST_MS.  The caller
 * waits however suits it (lb sleeps before a send; lbd reads slowly,
 * which TCP carries back to lb), and nothing waits on a disk write: lb
 * falls behind and the filter degrades instead.
 */

#ifndef LIVEBACKUP_LB_RATE_H
#define LIVEBACKUP_LB_RATE_H

#include <stddef.h>
#include <stdint.h>

#define LB_RATE_BURST_MS 100

struct lb_rate {
  uint64_t rate;                /* bytes per second; 0: no limit */
  uint64_t due_ns;              /* lb_now_ns () at which the link is free */
};

/* Parse a rate, N bytes per second with an optional suffix K, M or G
 * (powers of 1024, either case) and an optional "/s": "2M", "500k/s",
 * "1048576".  0 means no limit.  S is LEN bytes (not NUL-terminated).
 * Returns 0, or -1 if S is not such a number or overflows.
 */
extern int lb_rate_parse (const char *s, size_t len, uint64_t *out);

/* Take N bytes at NOW_NS: how many nanoseconds to wait before sending
 * (or after receiving) them; 0 with no limit or when the link is free.
 */
extern uint64_t lb_rate_take (struct lb_rate *r, uint64_t n, uint64_t now_ns);

#endif /* LIVEBACKUP_LB_RATE_H */
