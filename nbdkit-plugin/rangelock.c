/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: byte-range locks.  See rangelock.h. */

#include <config.h>

#include <assert.h>
#include <stdbool.h>
#include <pthread.h>

#include "rangelock.h"

static pthread_mutex_t rangelock_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rangelock_cond = PTHREAD_COND_INITIALIZER;
/* Every range held or waiting, oldest first: the newest, and each one's
 * prev.
 */
static struct rangelock_node *rangelock_tail;

static bool
rangelock_overlap (const struct rangelock_node *a,
                   const struct rangelock_node *b)
{
  return a->start < b->end && b->start < a->end;
}

/* Is an earlier range in the way of N? */
static bool
rangelock_blocked (const struct rangelock_node *n)
{
  const struct rangelock_node *p;

  for (p = n->prev; p != NULL; p = p->prev)
    if (rangelock_overlap (p, n))
      return true;
  return false;
}

void
rangelock_lock (struct rangelock_node *n, uint64_t offset, uint64_t count)
{
  assert (count <= UINT64_MAX - offset);
  n->start = offset;
  n->end = offset + count;
  pthread_mutex_lock (&rangelock_mutex);
  n->next = NULL;
  n->prev = rangelock_tail;
  if (rangelock_tail)
    rangelock_tail->next = n;
  rangelock_tail = n;
  while (rangelock_blocked (n))
    pthread_cond_wait (&rangelock_cond, &rangelock_mutex);
  pthread_mutex_unlock (&rangelock_mutex);
}

void
rangelock_unlock (struct rangelock_node *n)
{
  pthread_mutex_lock (&rangelock_mutex);
  assert (!rangelock_blocked (n));
  if (n->prev)
    n->prev->next = n->next;
  if (n->next)
    n->next->prev = n->prev;
  else
    rangelock_tail = n->prev;
  /* Only waiters that overlapped N can have been blocked by it. */
  pthread_cond_broadcast (&rangelock_cond);
  pthread_mutex_unlock (&rangelock_mutex);
}
