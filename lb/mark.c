/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: marks.  See mark.h. */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lb_log.h"
#include "lb_proto.h"
#include "lb_time.h"
#include "mark.h"

/* The kept marks, oldest first (a ring of LB_MARK_KEEP), and the one
 * request waiting for the follower.  LOCK guards all; COND is broadcast
 * on every change of a mark's state.
 */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct lb_mark kept[LB_MARK_KEEP];
  unsigned head, n;
  bool asking;                  /* ASK is posted or being placed */
  struct lb_mark ask;
} lb_marks = { .lock = PTHREAD_MUTEX_INITIALIZER,
               .cond = PTHREAD_COND_INITIALIZER };

const char *
lb_mark_state_name (enum lb_mark_state st)
{
  switch (st) {
  case LB_MARK_ASKED: return "asked";
  case LB_MARK_PLACING: return "placing";
  case LB_MARK_PLACED: return "placed";
  case LB_MARK_SENT: return "sent";
  case LB_MARK_TAKEN: return "taken";
  case LB_MARK_REFUSED: return "refused";
  case LB_MARK_FAILED: return "failed";
  case LB_MARK_UNKNOWN: return "unknown";
  }
  return "?";
}

bool
lb_mark_final (enum lb_mark_state st)
{
  return st == LB_MARK_TAKEN || st == LB_MARK_REFUSED
         || st == LB_MARK_FAILED || st == LB_MARK_UNKNOWN;
}

/* Keep M as the newest mark.  LOCK held. */
static struct lb_mark *
lb_mark_keep (const struct lb_mark *m)
{
  struct lb_mark *k;

  if (lb_marks.n == LB_MARK_KEEP) {
    lb_marks.head = (lb_marks.head + 1) % LB_MARK_KEEP;
    lb_marks.n--;
  }
  k = &lb_marks.kept[(lb_marks.head + lb_marks.n) % LB_MARK_KEEP];
  *k = *m;
  lb_marks.n++;
  return k;
}

/* The newest kept mark placed at SEQ, or NULL.  LOCK held. */
static struct lb_mark *
lb_mark_at (uint64_t seq)
{
  unsigned i;

  for (i = lb_marks.n; i-- > 0;) {
    struct lb_mark *k = &lb_marks.kept[(lb_marks.head + i) % LB_MARK_KEEP];
    if (k->seq == seq && k->state != LB_MARK_REFUSED)
      return k;
  }
  return NULL;
}

void
lb_mark_ask (const char *label, void (*wake) (void *), void *wake_arg,
             struct lb_mark *out)
{
  struct timespec until;
  uint64_t ms;

  clock_gettime (CLOCK_REALTIME, &until);
  ms = (uint64_t) until.tv_nsec / 1000000 + LB_MARK_PLACE_MS;
  until.tv_sec += ms / 1000;
  until.tv_nsec = (long) (ms % 1000) * 1000000;

  pthread_mutex_lock (&lb_marks.lock);
  /* One request at a time (the control thread serves one reader). */
  while (lb_marks.asking)
    if (pthread_cond_timedwait (&lb_marks.cond, &lb_marks.lock, &until)
        == ETIMEDOUT)
      break;
  if (lb_marks.asking) {
    *out = (struct lb_mark) { .state = LB_MARK_REFUSED,
                              .asked = (uint64_t) time (NULL) };
    snprintf (out->label, sizeof out->label, "%s", label);
    snprintf (out->note, sizeof out->note, "another mark is being placed");
    pthread_mutex_unlock (&lb_marks.lock);
    return;
  }
  lb_marks.ask = (struct lb_mark) { .state = LB_MARK_ASKED,
                                    .asked = (uint64_t) time (NULL) };
  snprintf (lb_marks.ask.label, sizeof lb_marks.ask.label, "%s", label);
  lb_marks.asking = true;
  pthread_mutex_unlock (&lb_marks.lock);
  if (wake)
    wake (wake_arg);
  pthread_mutex_lock (&lb_marks.lock);
  while (lb_marks.ask.state == LB_MARK_ASKED
         || lb_marks.ask.state == LB_MARK_PLACING) {
    int e = pthread_cond_timedwait (&lb_marks.cond, &lb_marks.lock, &until);
    /* Not taken in time: refuse it here, so that the follower never
     * places it later (it would name a later moment).  Once the
     * follower is asking the filter, its answer is awaited.
     */
    if (e == ETIMEDOUT && lb_marks.ask.state == LB_MARK_ASKED) {
      lb_marks.ask.state = LB_MARK_REFUSED;
      snprintf (lb_marks.ask.note, sizeof lb_marks.ask.note,
                "not placed within %d s: the image is not live (a scan or "
                "catch-up runs, or lb is not connected)",
                LB_MARK_PLACE_MS / 1000);
      lb_mark_keep (&lb_marks.ask);
    }
  }
  *out = lb_marks.ask;
  lb_marks.asking = false;
  pthread_cond_broadcast (&lb_marks.cond);
  pthread_mutex_unlock (&lb_marks.lock);
  if (out->state == LB_MARK_REFUSED)
    lb_warn ("mark '%s' refused: %s", out->label, out->note);
  else
    lb_info ("mark '%s' placed at seq %" PRIu64, out->label, out->seq);
}

bool
lb_mark_find (const char *label, struct lb_mark *out)
{
  struct lb_mark *k = NULL;
  unsigned i;

  pthread_mutex_lock (&lb_marks.lock);
  for (i = lb_marks.n; i-- > 0 && k == NULL;) {
    struct lb_mark *m = &lb_marks.kept[(lb_marks.head + i) % LB_MARK_KEEP];
    if (label == NULL || strcmp (m->label, label) == 0)
      k = m;
  }
  if (k)
    *out = *k;
  pthread_mutex_unlock (&lb_marks.lock);
  return k != NULL;
}

bool
lb_mark_take (char label[LW_MARK_LABEL_MAX])
{
  bool r = false;

  pthread_mutex_lock (&lb_marks.lock);
  if (lb_marks.asking && lb_marks.ask.state == LB_MARK_ASKED) {
    lb_marks.ask.state = LB_MARK_PLACING;
    memcpy (label, lb_marks.ask.label, LW_MARK_LABEL_MAX);
    r = true;
  }
  pthread_mutex_unlock (&lb_marks.lock);
  return r;
}

void
lb_mark_placed (int result, uint64_t seq)
{
  struct lb_mark *a = &lb_marks.ask;

  pthread_mutex_lock (&lb_marks.lock);
  if (result == LW_RES_OK) {
    a->state = LB_MARK_PLACED;
    a->seq = seq;
  }
  else {
    a->state = LB_MARK_REFUSED;
    snprintf (a->note, sizeof a->note, "%s",
              result == LW_RES_REFUSED
              ? "the filter is degraded (writes are being marked in its "
                "bitmap, not queued in order): the mark would not name one "
                "moment; try again once lb --status says live"
              : result == LW_RES_INVALID ? "the filter refused the label"
              : "the filter did not answer");
  }
  lb_mark_keep (a);
  pthread_cond_broadcast (&lb_marks.cond);
  pthread_mutex_unlock (&lb_marks.lock);
}

void
lb_mark_sent (uint64_t seq, const char *label)
{
  struct lb_mark *k;

  pthread_mutex_lock (&lb_marks.lock);
  k = lb_mark_at (seq);
  if (k == NULL) {
    /* Placed by an lb before this one, and not yet through. */
    struct lb_mark m = { .seq = seq, .state = LB_MARK_SENT };
    snprintf (m.label, sizeof m.label, "%s", label);
    k = lb_mark_keep (&m);
  }
  k->state = LB_MARK_SENT;
  pthread_cond_broadcast (&lb_marks.cond);
  pthread_mutex_unlock (&lb_marks.lock);
}

void
lb_mark_done (uint64_t seq, uint32_t result, const char *text, size_t len)
{
  struct lb_mark *k;
  char note[256];

  lb_log_safe (note, sizeof note, text, len);
  pthread_mutex_lock (&lb_marks.lock);
  k = lb_mark_at (seq);
  if (k) {
    /* A mark that came again after a lost connection keeps what lbd
     * said the first time, if this lb heard it.
     */
    if (result != LBP_MARK_PAST || !lb_mark_final (k->state)) {
      k->state = result == LBP_MARK_TAKEN ? LB_MARK_TAKEN
                 : result == LBP_MARK_PAST ? LB_MARK_UNKNOWN
                 : LB_MARK_FAILED;
      snprintf (k->note, sizeof k->note, "%s", note);
    }
    pthread_cond_broadcast (&lb_marks.cond);
  }
  pthread_mutex_unlock (&lb_marks.lock);
  if (result == LBP_MARK_TAKEN)
    lb_info ("mark at seq %" PRIu64 ": restore point %s taken", seq, note);
  else
    lb_warn ("mark at seq %" PRIu64 ": no restore point: %s", seq, note);
}

void
lb_mark_status (struct lb_status *obj, const struct lb_mark *m)
{
  lb_status_str (obj, "label", m->label);
  lb_status_str (obj, "state", lb_mark_state_name (m->state));
  lb_status_uint (obj, "seq", m->seq);
  lb_status_time (obj, "asked", m->asked);
  if (m->state == LB_MARK_TAKEN)
    lb_status_str (obj, "point", m->note);
  else
    lb_status_str (obj, "note", m->note);
}
