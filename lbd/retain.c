/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: when an image's restore points come and go: the schedule
 * (history_tick, history_hold), the retention policy, and pruning, in
 * the history's own thread or at once (history_drop).  See history.h;
 * history.c has the list, taking, the write hooks and reading.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <inttypes.h>
#include <sched.h>

#include "history.h"
#include "history_impl.h"
#include "lb_err.h"
#include "lb_log.h"

static void *hist_pruner (void *arg);

void
hist_wake (struct history *h)
{
  pthread_mutex_lock (&h->mu);
  h->work = true;
  if (!h->thread_on && !h->stop
      && pthread_create (&h->thread, NULL, hist_pruner, h) == 0)
    h->thread_on = true;
  pthread_cond_broadcast (&h->cond);
  pthread_mutex_unlock (&h->mu);
}

/* Doom what the policy no longer keeps at NOW.  LOCK held for writing.
 * Labelled points (marks) are kept until dropped, and take no period's
 * place: the policy counts the other points only.
 */
static bool
hist_retain (struct history *h)
{
  int64_t *t = calloc (h->n + 1, sizeof *t);
  bool *keep = calloc (h->n + 1, sizeof *keep), any = false;
  struct hist_point **u = calloc (h->n + 1, sizeof *u);
  size_t i, n = 0;

  if (t && keep && u && lb_history_on (&h->policy)) {
    for (i = h->n; i-- > 0;)
      if (h->p[i]->e.label[0] == '\0') {
        u[n] = h->p[i];
        t[n++] = h->p[i]->e.time;
      }
    lb_history_retain (&h->policy, t, n, keep);
    for (i = 0; i < n; i++) {
      struct hist_point *pt = u[i];
      if (!keep[i] && !pt->doomed) {
        pt->doomed = true;
        any = true;
        lb_info ("%s: restore point %s is past the retention policy; "
                 "pruning it", h->image, pt->e.id);
      }
    }
  }
  free (t);
  free (keep);
  free (u);
  return any;
}

bool
history_due (struct history *h)
{
  int64_t now = points_clock (), newest = 0;
  bool due;
  size_t i;

  if (h == NULL)
    return false;
  pthread_rwlock_rdlock (&h->lock);
  /* The schedule's newest point: marks take no period's place. */
  for (i = h->n; i-- > 0;)
    if (h->p[i]->e.label[0] == '\0') {
      newest = h->p[i]->e.time;
      break;
    }
  due = !h->disabled && lb_history_on (&h->policy)
        && lb_history_due (&h->policy, newest, now) && now >= newest;
  pthread_rwlock_unlock (&h->lock);
  return due;
}

void
history_hold (struct history *h, int fd, uint64_t consistent_at)
{
  int64_t now, t;
  char err[512];
  bool on;

  if (h == NULL)
    return;
  now = points_clock ();
  /* The state's times are the system's; points are told by the points'
   * clock (points.h), which a test may run elsewhere.
   */
  t = consistent_at ? (int64_t) consistent_at + (now - (int64_t) time (NULL))
                    : now;
  if (t > now)
    t = now;
  pthread_rwlock_rdlock (&h->lock);
  /* Not if a point of that moment or a later one is there already. */
  on = !h->disabled && lb_history_on (&h->policy) && h->held[0] == '\0'
       && (h->n == 0 || t > h->p[h->n - 1]->e.time);
  pthread_rwlock_unlock (&h->lock);
  if (!on)
    return;
  if (history_take (h, fd, t, "catch-up", NULL, h->held, err, sizeof err)
      == -1) {
    h->held[0] = '\0';
    lb_warn ("%s: cannot keep the last consistent state for the schedule "
             "during the catch-up: %s", h->image, err);
  }
}

/* The image is consistent again: keep the point history_hold took only
 * if one fell due meanwhile (else it was not needed: drop it).
 */
static void
hist_settle (struct history *h, int64_t now)
{
  char held[POINTS_ID_LEN], why[256];
  int64_t before = 0;
  bool due;
  size_t i;

  if (h->held[0] == '\0')
    return;
  memcpy (held, h->held, sizeof held);
  h->held[0] = '\0';
  pthread_rwlock_rdlock (&h->lock);
  for (i = 0; i < h->n && strcmp (h->p[i]->e.id, held) != 0; i++)
    before = h->p[i]->e.time;
  due = i < h->n && lb_history_due (&h->policy, before, now);
  pthread_rwlock_unlock (&h->lock);
  if (due)
    lb_info ("%s: a restore point fell due while the image was not "
             "consistent: point %s, the image as it last was, kept",
             h->image, held);
  else if (history_drop (h, held, NULL, why, sizeof why) == HISTORY_DROP_FAILED)
    lb_warn ("%s: cannot drop point %s, which was not needed: %s",
             h->image, held, why);
}

void
history_tick (struct history *h, int fd)
{
  int64_t now;
  bool prune;
  char err[512];

  if (h == NULL)
    return;
  now = points_clock ();
  hist_settle (h, now);
  if (history_due (h) && history_take (h, fd, now, "schedule", NULL, NULL, err,
                               sizeof err) == -1)
    lb_err ("%s: cannot take a restore point: %s", h->image, err);
  pthread_rwlock_wrlock (&h->lock);
  prune = hist_retain (h);
  pthread_rwlock_unlock (&h->lock);
  if (prune)
    hist_wake (h);
}

/* Prune PT (busy: the caller owns it): merge, unlist, delete.  0, or -1
 * with WHY (PT stays listed; retried later).  Takes LOCK per piece.
 */
static int
hist_prune (struct history *h, struct hist_point *pt, char *why,
            size_t whylen)
{
  size_t k = 0, c;
  ssize_t i;

  pthread_rwlock_wrlock (&h->lock);
  for (;;) {
    struct hist_point *o;

    if (pt->broken)
      break;
    i = hist_index (h, pt);
    if (h->mode != POINTS_MODE_OVERLAY || i <= 0)
      break;
    o = h->p[i - 1];
    for (c = 0; k < pt->ov.n && c < HISTORY_BATCH; k++) {
      const struct overlay_entry *e = &pt->ov.e[k];
      if (e->block >= hist_nblocks (o) || overlay_find (&o->ov, e->block))
        continue;
      if (overlay_read (&pt->ov, e, h->buf + c * OVERLAY_BLOCK) == -1) {
        lb_errf (why, whylen, "%s: %s", pt->ov.path, strerror (errno));
        goto fail;
      }
      h->blocks[c++] = e->block;
    }
    if (c && overlay_append (&o->ov, h->blocks, h->buf, c) == -1) {
      lb_errf (why, whylen, "%s: %s", o->ov.path, strerror (errno));
      goto fail;
    }
    if (k >= pt->ov.n)
      break;
    /* Let replication and readers in between the pieces. */
    pthread_rwlock_unlock (&h->lock);
    sched_yield ();
    pthread_rwlock_wrlock (&h->lock);
  }
  if (!pt->broken) {
    i = hist_index (h, pt);
    hist_unlist (h, i);
    if (hist_store (h) == -1) {
      lb_errf (why, whylen, "%s.points: %s", h->image, strerror (errno));
      memmove (h->p + i + 1, h->p + i, (h->n - i) * sizeof *h->p);
      h->p[i] = pt;
      h->n++;
      goto fail;
    }
    lb_info ("%s: restore point %s pruned", h->image, pt->e.id);
  }
  pthread_rwlock_unlock (&h->lock);
  hist_point_delete (h, pt);
  return 0;
 fail:
  pt->busy = false;
  pthread_rwlock_unlock (&h->lock);
  return -1;
}

/* The next point to prune, made busy, or NULL. */
static struct hist_point *
hist_next_doomed (struct history *h)
{
  struct hist_point *pt = NULL;
  size_t i;

  pthread_rwlock_wrlock (&h->lock);
  for (i = 0; i < h->n && pt == NULL; i++)
    if (h->p[i]->doomed && h->p[i]->refs == 0 && !h->p[i]->busy) {
      pt = h->p[i];
      pt->busy = true;
    }
  pthread_rwlock_unlock (&h->lock);
  return pt;
}

static void *
hist_pruner (void *arg)
{
  struct history *h = arg;
  struct hist_point *pt;
  char why[512];

  for (;;) {
    pthread_mutex_lock (&h->mu);
    while (!h->stop && !h->work)
      pthread_cond_wait (&h->cond, &h->mu);
    h->work = false;
    if (h->stop) {
      pthread_mutex_unlock (&h->mu);
      return NULL;
    }
    pthread_mutex_unlock (&h->mu);
    while (!h->stop && (pt = hist_next_doomed (h)) != NULL)
      if (hist_prune (h, pt, why, sizeof why) == -1) {
        lb_err ("%s: cannot prune restore point %s yet: %s", h->image,
                pt->e.id, why);
        break;
      }
  }
}


enum history_dropped
history_drop (struct history *h, const char *id, char found[POINTS_ID_LEN],
              char *why, size_t whylen)
{
  struct hist_point *pt;
  enum history_dropped r = HISTORY_DROPPED;

  pthread_rwlock_wrlock (&h->lock);
  pt = hist_find (h, id, strlen (id));
  if (found)
    snprintf (found, POINTS_ID_LEN, "%s", pt ? pt->e.id : "");
  if (pt == NULL)
    r = HISTORY_DROP_UNKNOWN;
  else {
    pt->doomed = true;
    if (pt->refs > 0 || pt->busy)
      r = HISTORY_DROP_PENDING;
    else
      pt->busy = true;
  }
  pthread_rwlock_unlock (&h->lock);
  if (r == HISTORY_DROPPED && hist_prune (h, pt, why, whylen) == -1)
    r = HISTORY_DROP_FAILED;
  return r;
}
