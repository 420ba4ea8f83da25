/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: a second core for a scan's region hashes.  See hasher.h. */

#include <config.h>

#include <errno.h>
#include <signal.h>
#include <string.h>

#include "lb_io.h"
#include "hasher.h"

static void *
lb_hasher_thread (void *arg)
{
  struct lb_hasher *h = arg;

  pthread_mutex_lock (&h->lock);
  for (;;) {
    struct lb_hasher_job *j;
    int r, e;

    while (!h->stopping && (h->job == NULL || h->job->done))
      pthread_cond_wait (&h->cond, &h->lock);
    if (h->stopping)
      break;
    j = h->job;
    pthread_mutex_unlock (&h->lock);
    r = lb_hash_range (j->key, j->fd, j->off, j->len, j->hash_block,
                       LB_EOF_FAIL, j->out);
    e = errno;
    pthread_mutex_lock (&h->lock);
    j->r = r;
    j->err = e;
    j->done = true;
    h->job = NULL;
    pthread_cond_broadcast (&h->cond);
  }
  pthread_mutex_unlock (&h->lock);
  return NULL;
}

int
lb_hasher_start (struct lb_hasher *h)
{
  sigset_t all, old;
  int e;

  memset (h, 0, sizeof *h);
  pthread_mutex_init (&h->lock, NULL);
  pthread_cond_init (&h->cond, NULL);
  /* Signals are the main thread's (lb.c). */
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  e = pthread_create (&h->thread, NULL, lb_hasher_thread, h);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  h->running = e == 0;
  if (!h->running) {
    pthread_mutex_destroy (&h->lock);
    pthread_cond_destroy (&h->cond);
    return -1;
  }
  return 0;
}

void
lb_hasher_stop (struct lb_hasher *h)
{
  if (!h->running)
    return;
  /* A job given but not yet taken is dropped; one being hashed is
   * finished first: after the join the thread touches nothing.
   */
  pthread_mutex_lock (&h->lock);
  h->stopping = true;
  pthread_cond_broadcast (&h->cond);
  pthread_mutex_unlock (&h->lock);
  pthread_join (h->thread, NULL);
  h->running = false;
  pthread_mutex_destroy (&h->lock);
  pthread_cond_destroy (&h->cond);
}

bool
lb_hasher_give (struct lb_hasher *h, struct lb_hasher_job *j)
{
  bool taken = false;

  if (!h->running)
    return false;
  pthread_mutex_lock (&h->lock);
  if (h->job == NULL) {
    j->done = false;
    h->job = j;
    taken = true;
    pthread_cond_broadcast (&h->cond);
  }
  pthread_mutex_unlock (&h->lock);
  return taken;
}

void
lb_hasher_wait (struct lb_hasher *h, struct lb_hasher_job *j)
{
  pthread_mutex_lock (&h->lock);
  while (!j->done)
    pthread_cond_wait (&h->cond, &h->lock);
  pthread_mutex_unlock (&h->lock);
  if (j->r == -1)
    errno = j->err;
}
