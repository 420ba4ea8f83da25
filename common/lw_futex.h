/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: futex wait/wake on words in a MAP_SHARED file mapping.
 *
 * Shared (not FUTEX_PRIVATE) futexes, because the waiter and the waker are
 * different processes mapping the same file.  Used by the livewatch
 * filter and its consumer library; nothing else may sleep on the channel.
 */

#ifndef LIVEBACKUP_LW_FUTEX_H
#define LIVEBACKUP_LW_FUTEX_H

#include <stdatomic.h>
#include <stdint.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/futex.h>

/* Sleep while *WORD == EXPECTED, at most TIMEOUT_MS (-1: no limit).
 * Returns 0 when woken or the value differed, -1 with errno ETIMEDOUT or
 * EINTR otherwise.  Spurious wakeups are possible: callers re-check.
 */
static inline int
lw_futex_wait (_Atomic uint32_t *word, uint32_t expected, int timeout_ms)
{
  struct timespec ts, *tsp = NULL;
  if (timeout_ms >= 0) {
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = (long) (timeout_ms % 1000) * 1000000L;
    tsp = &ts;
  }
  long r = syscall (SYS_futex, (uint32_t *) word, FUTEX_WAIT, expected,
                    tsp, NULL, 0);
  if (r == -1 && errno == EAGAIN)
    return 0;
  return r == -1 ? -1 : 0;
}

/* Wake every waiter on WORD. */
static inline void
lw_futex_wake (_Atomic uint32_t *word)
{
  syscall (SYS_futex, (uint32_t *) word, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

#endif /* LIVEBACKUP_LW_FUTEX_H */
