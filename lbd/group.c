/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: group commit of one session's live SYNCs.  See group.h. */

#include <config.h>

#include "group.h"
#include "lb_time.h"

bool
group_joins (const struct image_state *durable, uint64_t epoch,
             const struct lbp_msg *m)
{
  return m->phase == LBP_PHASE_LIVE && durable->consistent
         && durable->phase == LBP_PHASE_LIVE && durable->epoch == epoch
         && m->gen == durable->gen && m->swept == durable->swept;
}

void
group_add (struct group *g, const struct image_state *st, uint64_t id)
{
  if (g->n == 0)
    g->since_ms = lb_now_ms ();
  g->st = *st;
  g->id[g->n++] = id;
}

int
group_wait (const struct group *g)
{
  uint64_t now = lb_now_ms (), waited, idle;

  if (g->n == 0)
    return -1;
  waited = now - g->since_ms;
  idle = now - g->input_ms;
  if (g->n >= GROUP_MAX || waited >= GROUP_MS || idle >= GROUP_IDLE_MS)
    return 0;
  return GROUP_MS - waited < GROUP_IDLE_MS - idle ? GROUP_MS - waited
                                                  : GROUP_IDLE_MS - idle;
}
