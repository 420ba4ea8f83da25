/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: marks (lb --mark LABEL UNIT), from the request to lbd's point.
 *
 * A mark names one moment of the unit's stream: right after every write
 * the filter completed before it, so that `fsfreeze -f; lb --mark L 1;
 * fsfreeze -u` yields a restore point of exactly the frozen filesystem.
 * Its way through lb:
 *
 *   1. the control thread (control.c) asks here (lb_mark_ask) and waits
 *      at most LB_MARK_PLACE_MS for the follower to place it;
 *   2. the follower, while the image is live (lw_follow.h mark_take),
 *      takes the request and asks the filter for a MARK record
 *      (lwc_mark), which the filter appends under its write lock, in
 *      normal mode only (degraded, writes have no order: refused);
 *      lb_mark_placed records the outcome, which answers step 1;
 *   3. the MARK record reaches the sink in order like any record, and
 *      goes to lbd as MARK (sink.c, lb_mark_sent);
 *   4. lbd takes a restore point labelled so if its image is live and
 *      consistent there, and answers MARKED (lb_mark_done).
 *
 * Step 1 returns as soon as the mark is placed: the moment is fixed
 * then, and writes may go on.  What became of it afterwards (steps 3
 * and 4) is kept for lb --status and lb --mark --wait.  A mark whose
 * request was not placed in time is refused, never placed later: it
 * would name another moment.  The last LB_MARK_KEEP marks are kept.
 */

#ifndef LB_MARK_H
#define LB_MARK_H

#include <stdbool.h>
#include <stdint.h>

#include "lb_status.h"
#include "lw_shm.h"

#define LB_MARK_PLACE_MS 2000
#define LB_MARK_KEEP     8

enum lb_mark_state {
  LB_MARK_ASKED,                /* waiting for the follower */
  LB_MARK_PLACING,              /* the follower asks the filter */
  LB_MARK_PLACED,               /* in the stream, at SEQ */
  LB_MARK_SENT,                 /* sent to lbd, no answer yet */
  LB_MARK_TAKEN,                /* lbd took point NOTE */
  LB_MARK_REFUSED,              /* not placed (NOTE: why) */
  LB_MARK_FAILED,               /* placed, but no point (NOTE: why) */
  LB_MARK_UNKNOWN,              /* lbd had it before this lb heard its
                                 * answer (a lost connection): see
                                 * lbd --points */
};

extern const char *lb_mark_state_name (enum lb_mark_state st);

/* A final state: nothing more will happen to the mark. */
extern bool lb_mark_final (enum lb_mark_state st);

struct lb_mark {
  char label[LW_MARK_LABEL_MAX];
  uint64_t seq;                 /* from LB_MARK_PLACED on */
  enum lb_mark_state state;
  char note[256];
  uint64_t asked;               /* seconds since 1970 */
};

/* The control thread: ask for a mark labelled LABEL (lw_mark_label_ok)
 * and wait until it is placed or refused, then copy it into *OUT.  A
 * live follower takes it at its next look at the ring; WAKE (WAKE_ARG),
 * if not NULL, is called once the request is posted, to cut its idle
 * wait short (else it comes within lwf_options.idle_ms, 100 ms).
 */
extern void lb_mark_ask (const char *label, void (*wake) (void *),
                         void *wake_arg, struct lb_mark *out);

/* The newest kept mark labelled LABEL (NULL: the newest of all), into
 * *OUT; false if none.
 */
extern bool lb_mark_find (const char *label, struct lb_mark *out);

/* The follower (lwf_sink.mark_take, mark_placed). */
extern bool lb_mark_take (char label[LW_MARK_LABEL_MAX]);
extern void lb_mark_placed (int result, uint64_t seq);

/* The sink: the MARK record at SEQ labelled LABEL goes to lbd now (a
 * mark of an earlier lb, still in the ring, is kept from here on).
 */
extern void lb_mark_sent (uint64_t seq, const char *label);

/* The sink: lbd's MARKED for SEQ (RESULT an lbp_mark_result, TEXT its
 * text, LEN bytes).
 */
extern void lb_mark_done (uint64_t seq, uint32_t result, const char *text,
                          size_t len);

/* M's fields into status object OBJ. */
extern void lb_mark_status (struct lb_status *obj, const struct lb_mark *m);

#endif /* LB_MARK_H */
