/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: group commit of one session's live SYNCs.
 *
 * lb does not wait for a SYNC's answer before it sends what follows
 * (lb/sink.c), so SYNCs queue up while a commit runs.  A live SYNC that
 * continues a live image (its state differs from the durable one only
 * in seq and time: group_joins) joins the session's group instead of
 * being committed at once; the session commits the group — one
 * fdatasync, one state file, the newest SYNC's state — when group_wait
 * says it is due: its oldest waited GROUP_MS, or lb sent nothing for
 * GROUP_IDLE_MS (the writer paused, or lb waits for the answer: an lb
 * that does not pipeline loses only that), or it holds GROUP_MAX; and
 * before anything that must come after it (another kind of SYNC, a
 * BLOCK, a HASH_REQ's answer, the end).  Then each SYNC is answered, in
 * order, with the seq made durable (lbd/session.c).  Waiting is cheap:
 * the writer does not wait for lbd (the filter answers its FLUSH
 * itself), so a later answer costs only ring space, while every commit
 * costs three fsyncs (doc/protocol.md, section 5).
 */

#ifndef LBD_GROUP_H
#define LBD_GROUP_H

#include <stdbool.h>
#include <stdint.h>

#include "image.h"
#include "lb_proto.h"

#define GROUP_MS      50
#define GROUP_IDLE_MS 5
#define GROUP_MAX     256

struct group {
  struct image_state st;        /* what the newest SYNC asks for */
  uint64_t id[GROUP_MAX];       /* the SYNCs' ids, in order */
  unsigned n;
  uint64_t since_ms;            /* when the oldest came */
  uint64_t input_ms;            /* when the session's last message came */
};

/* May SYNC M of a session of EPOCH join, the image durable at DURABLE? */
extern bool group_joins (const struct image_state *durable, uint64_t epoch,
                         const struct lbp_msg *m);

/* Add the SYNC of id ID asking for ST. */
extern void group_add (struct group *g, const struct image_state *st,
                       uint64_t id);

/* How long G may still wait for more SYNCs, in ms: 0 if it is due, -1
 * if it is empty.
 */
extern int group_wait (const struct group *g);

#endif
