/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: how times are written.  See lb_time.h. */

#include <config.h>

#include <string.h>

#include <stdlib.h>

#include <errno.h>

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "lb_time.h"

/* T in UTC as ISO 8601 ("" for 0), or in local time for people
 * ("never" for 0).
 */
static const char *
lb_time_format (uint64_t t, bool utc, char buf[LB_TIME_LEN])
{
  time_t tt = (time_t) t;
  struct tm tm;
  size_t n = 0;

  if (t != 0 && utc && gmtime_r (&tt, &tm) != NULL)
    n = strftime (buf, LB_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm);
  else if (t != 0 && !utc && localtime_r (&tt, &tm) != NULL)
    n = strftime (buf, LB_TIME_LEN, "%Y-%m-%d %H:%M:%S", &tm);
  if (n == 0)
    snprintf (buf, LB_TIME_LEN, "%s", utc ? "" : "never");
  return buf;
}

const char *
lb_time_local (uint64_t t, char buf[LB_TIME_LEN])
{
  return lb_time_format (t, false, buf);
}

const char *
lb_time_iso (uint64_t t, char buf[LB_TIME_LEN])
{
  return lb_time_format (t, true, buf);
}

const char *
lb_duration (uint64_t s, char buf[LB_TIME_LEN])
{
  static const struct { const char *name; uint64_t secs; } unit[] = {
    { "d", 86400 }, { "h", 3600 }, { "min", 60 }, { "s", 1 },
  };
  size_t i;

  for (i = 0; i + 1 < sizeof unit / sizeof unit[0]; i++)
    if (s >= unit[i].secs) {
      uint64_t rest = s % unit[i].secs / unit[i + 1].secs;
      if (rest)
        snprintf (buf, LB_TIME_LEN, "%llu %s %llu %s",
                  (unsigned long long) (s / unit[i].secs), unit[i].name,
                  (unsigned long long) rest, unit[i + 1].name);
      else
        snprintf (buf, LB_TIME_LEN, "%llu %s",
                  (unsigned long long) (s / unit[i].secs), unit[i].name);
      return buf;
    }
  snprintf (buf, LB_TIME_LEN, "%llu s", (unsigned long long) s);
  return buf;
}

int
lb_duration_parse (const char *v, size_t n, uint64_t *seconds)
{
  static const struct { char suffix; uint64_t unit; } units[] = {
    { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
    { 'w', 7 * 86400 },
  };
  char buf[24], *end;
  unsigned long long x;
  uint64_t unit = 1;
  size_t i;

  if (n == 0 || n >= sizeof buf || v[0] < '0' || v[0] > '9')
    return -1;
  memcpy (buf, v, n);
  buf[n] = '\0';
  errno = 0;
  x = strtoull (buf, &end, 10);
  if (errno != 0)
    return -1;
  if (*end != '\0') {
    for (i = 0; i < sizeof units / sizeof *units; i++)
      if (*end == units[i].suffix)
        unit = units[i].unit;
    if (end[1] != '\0' || (unit == 1 && *end != 's'))
      return -1;
  }
  if (x > UINT64_MAX / unit)
    return -1;
  *seconds = x * unit;
  return 0;
}
