/* livebackup: monotonic milliseconds, for timeouts and rates. */

#ifndef LIVEBACKUP_LB_TIME_H
#define LIVEBACKUP_LB_TIME_H

#include <stdint.h>
#include <time.h>

static inline uint64_t
lb_now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
