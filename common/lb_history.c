/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: history= retention policies.  See lb_history.h. */

#include <config.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lb_err.h"
#include "lb_history.h"

static const char *const lb_history_names[LB_HISTORY_KINDS] = {
  "minutely", "hourly", "daily", "weekly", "monthly",
};

bool
lb_history_on (const struct lb_history *h)
{
  int k;

  for (k = 0; k < LB_HISTORY_KINDS; k++)
    if (h->keep[k])
      return true;
  return false;
}

const char *
lb_history_kind_name (enum lb_history_kind k)
{
  return k < LB_HISTORY_KINDS ? lb_history_names[k] : "?";
}

int
lb_history_parse (const char *v, size_t n, struct lb_history *h, char *why,
                  size_t whylen)
{
  const char *p = v, *end = v + n;

  memset (h, 0, sizeof *h);
  while (p < end) {
    const char *comma = memchr (p, ',', end - p);
    const char *item_end = comma ? comma : end;
    const char *colon = memchr (p, ':', item_end - p);
    unsigned long count = 0;
    const char *q;
    int k;

    if (colon == NULL) {
      lb_errf (why, whylen, "'%.*s' is not KIND:COUNT (e.g. hourly:24)",
               (int) (item_end - p), p);
      return -1;
    }
    for (k = 0; k < LB_HISTORY_KINDS; k++)
      if ((size_t) (colon - p) == strlen (lb_history_names[k])
          && memcmp (p, lb_history_names[k], colon - p) == 0)
        break;
    if (k == LB_HISTORY_KINDS) {
      lb_errf (why, whylen, "unknown kind '%.*s' (expected minutely, "
               "hourly, daily, weekly or monthly)", (int) (colon - p), p);
      return -1;
    }
    if (h->keep[k]) {
      lb_errf (why, whylen, "%s given twice", lb_history_names[k]);
      return -1;
    }
    for (q = colon + 1; q < item_end && *q >= '0' && *q <= '9'; q++)
      if ((count = count * 10 + (*q - '0')) > LB_HISTORY_KEEP_MAX)
        break;
    if (q == colon + 1 || q != item_end || count == 0
        || count > LB_HISTORY_KEEP_MAX) {
      lb_errf (why, whylen, "%s: the count must be a number from 1 to %d",
               lb_history_names[k], LB_HISTORY_KEEP_MAX);
      return -1;
    }
    h->keep[k] = count;
    if (comma && comma + 1 == end) {
      lb_errf (why, whylen, "a comma with nothing after it");
      return -1;
    }
    p = comma ? comma + 1 : end;
  }
  return 0;
}

void
lb_history_format (const struct lb_history *h, char *out, size_t len)
{
  size_t o = 0;
  int k;

  out[0] = '\0';
  for (k = 0; k < LB_HISTORY_KINDS && o < len; k++)
    if (h->keep[k])
      o += snprintf (out + o, len - o, "%s%s:%u", o ? "," : "",
                     lb_history_names[k], h->keep[k]);
}

int64_t
lb_history_period (enum lb_history_kind k, int64_t t)
{
  struct tm tm;
  time_t tt = (time_t) t;

  switch (k) {
  case LB_HISTORY_MINUTELY: return t / 60;
  case LB_HISTORY_HOURLY: return t / 3600;
  case LB_HISTORY_DAILY: return t / 86400;
  case LB_HISTORY_WEEKLY:
    /* 1970-01-01 was a Thursday: weeks from Monday 1969-12-29. */
    return (t / 86400 + 3) / 7;
  default:
    gmtime_r (&tt, &tm);
    return (int64_t) tm.tm_year * 12 + tm.tm_mon;
  }
}

bool
lb_history_due (const struct lb_history *h, int64_t newest, int64_t now)
{
  int k;

  for (k = 0; k < LB_HISTORY_KINDS; k++)
    if (h->keep[k])
      return newest == 0
             || lb_history_period (k, now) != lb_history_period (k, newest);
  return false;
}

void
lb_history_retain (const struct lb_history *h, const int64_t *t, size_t n,
                   bool *keep)
{
  size_t i;
  int k;

  memset (keep, 0, n * sizeof *keep);
  for (k = 0; k < LB_HISTORY_KINDS; k++) {
    unsigned kept = 0;
    int64_t last = 0;
    for (i = 0; i < n && kept < h->keep[k]; i++) {
      int64_t p = lb_history_period (k, t[i]);
      if (kept > 0 && p == last)
        continue;
      keep[i] = true;
      last = p;
      kept++;
    }
  }
}
