/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: what a session is, for the files that serve it (session.c: the
 * conversation with lb; apply.c: what its messages do to the image).
 * Private to lbd's session code; session.h is the interface.
 */

#ifndef LBD_SESSION_IMPL_H
#define LBD_SESSION_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include <zstd.h>

#include "connset.h"
#include "group.h"
#include "image.h"
#include "lb_hash.h"
#include "lb_proto.h"
#include "lb_rate.h"
#include "session.h"

struct session {
  struct listener *l;
  struct connset_conn *c;       /* in session_set */
  struct client *cl;
  struct lb_conn *conn;
  int fd;                       /* until CONN has it */
  char peer[64];
  struct image im;
  bool have_image;
  uint64_t epoch;               /* from HELLO */
  uint64_t replay_until;        /* records up to this seq may be replays */
  bool replaying;               /* a replay runs: the image is mixed */
  uint8_t *buf;                 /* message bodies */
  size_t cap;
  uint8_t *data;                /* decompressed payloads, hash scratch */
  size_t data_cap;
  uint8_t *hashes;              /* LBP_MAX_HASHES * LBP_HASH_SIZE */
  struct lb_hash_key hkey;      /* the session's, from WELCOME's seed */
  uint8_t seed[LBP_HASH_SEED_SIZE];
  ZSTD_DCtx *dctx;
  /* For status (session_publish): how far this session's scan has
   * compared, and lb's backlog at its last SYNC (lbp_backlog_encode).
   */
  uint64_t scanned;
  uint32_t backlog;
  uint64_t backlog_swept;
  struct group grp;             /* live SYNCs applied, not yet durable */
  struct lb_rate rate;          /* the client line's max-rate= */
  uint64_t point_tried_ms;      /* apply_point_due's last try */
};

/* How one message from lb was handled. */
enum session_step {
  SESSION_STEP_DONE,            /* applied, and answered if it asks */
  SESSION_STEP_IO,              /* the image failed (errno) */
  SESSION_STEP_PROTOCOL,        /* the peer broke a rule (*WHY) */
  SESSION_STEP_LOST,            /* the answer could not be sent */
};

/* Store ST durably.  When the image stops being consistent, its last
 * consistent state is kept for restores first (a snapshot, before
 * anything changes it); when it becomes consistent again, that snapshot
 * is let go once the state is durable.  (Both are no-ops when the
 * snapshots already agree.)
 */
extern int apply_commit (struct session *s, const struct image_state *st);

/* Replays.  lbd applies records before they are durable; a session that
 * ends before its sync point leaves the image holding records beyond
 * the seq its state file names, and the next session (same epoch) gets
 * them again from there.  While those are applied a second time the
 * image holds older versions of some blocks beside newer ones: not one
 * moment.  The state file does not say so (it names what is durable),
 * but restores must not read that: the image counts as inconsistent for
 * them from the first such record until the newest one applied before
 * (SEQ is the record about to be applied, or just applied).
 */
extern void apply_replay_begin (struct session *s, uint64_t seq);
extern void apply_replay_end (struct session *s, uint64_t seq);

/* The image is about to stop being consistent: say so durably first, so
 * that the state file never claims a mixed image is consistent.
 */
extern int apply_mark_inconsistent (struct session *s);

/* The step after an image call that returned R (0 or -1, errno). */
extern enum session_step apply_io (int r);

/* Apply a WRITE or BLOCK. */
extern enum session_step apply_data (struct session *s,
                                     const struct lbp_msg *m,
                                     const char **why);

/* Answer a HASH_REQ with the hashes of the image's blocks it names. */
extern enum session_step apply_hashes (struct session *s,
                                       const struct lbp_msg *m,
                                       const char **why);

/* Commit the group (group.h), then answer each of its SYNCs, in order,
 * with the seq made durable.  Records after its newest SYNC may be in
 * the image already: the state file names only what the commit covered,
 * as without groups (see "Replays" above).
 */
extern enum session_step apply_group_commit (struct session *s);

/* A SYNC: into the group if it only moves a live image's seq, else
 * committed (after the group) and answered at once.
 */
extern enum session_step apply_sync (struct session *s,
                                     const struct lbp_msg *m);

/* A MARK (lb --mark): once every record before it is applied, and the
 * image live and consistent there, make that durable and take a
 * restore point labelled with it; answer MARKED either way.
 */
extern enum session_step apply_mark (struct session *s,
                                     const struct lbp_msg *m);

/* Before a record is applied to a live, consistent image: if the
 * schedule has a point due (history_due), make the image durable as it
 * stands and take it there, so that the point is of the moment before
 * this record (a quiet image's point is then of the end of the quiet,
 * not of the next write).  0, or -1 (the image failed: errno).
 */
extern int apply_point_due (struct session *s);

/* VERIFIED: lb finished a verify pass (its counts in M).  Logged, and
 * its time kept in the image's state (written with the next commit),
 * for lbd --status and the next WELCOME's schedule.
 */
extern void apply_verified (struct session *s, const struct lbp_msg *m);

#endif /* LBD_SESSION_IMPL_H */
