/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: a byte rate limit.  See lb_rate.h. */

#include <config.h>

#include "lb_rate.h"

int
lb_rate_parse (const char *s, size_t len, uint64_t *out)
{
  uint64_t v = 0, mul = 1;
  size_t i = 0;

  if (len == 0 || s[0] < '0' || s[0] > '9')
    return -1;
  for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
    if (v > (UINT64_MAX - 9) / 10)
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  if (i < len) {
    switch (s[i]) {
    case 'k': case 'K': mul = UINT64_C(1) << 10; i++; break;
    case 'm': case 'M': mul = UINT64_C(1) << 20; i++; break;
    case 'g': case 'G': mul = UINT64_C(1) << 30; i++; break;
    }
  }
  if (i + 2 == len && s[i] == '/' && s[i + 1] == 's')
    i += 2;
  if (i != len || (v != 0 && mul > UINT64_MAX / v))
    return -1;
  *out = v * mul;
  return 0;
}

uint64_t
lb_rate_take (struct lb_rate *r, uint64_t n, uint64_t now_ns)
{
  const uint64_t burst = LB_RATE_BURST_MS * UINT64_C(1000000);
  uint64_t due;

  if (r->rate == 0)
    return 0;
  /* An idle link saves up at most a burst. */
  due = r->due_ns + burst < now_ns ? now_ns - burst : r->due_ns;
  due += (uint64_t) ((double) n * 1e9 / (double) r->rate);
  r->due_ns = due;
  return due > now_ns ? due - now_ns : 0;
}
