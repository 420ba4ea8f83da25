/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: what lb's messages do to a session's image: records and blocks
 * applied, hashes answered, syncs made durable (alone, or in a group),
 * and the image state that says how far it is.  See session_impl.h.
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zstd.h>

#include "history.h"
#include "lb_array.h"
#include "lb_log.h"
#include "lb_time.h"
#include "lb_wire.h"
#include "lw_shm.h"
#include "session_impl.h"

/* Store ST durably.  When the image stops being consistent, its last
 * consistent state is kept for restores first (a snapshot, before
 * anything changes it); when it becomes consistent again, that snapshot
 * is let go once the state is durable.  (Both are no-ops when the
 * snapshots already agree.)
 */
int
apply_commit (struct session *s, const struct image_state *st)
{
  bool was = s->im.st.consistent && !s->replaying;
  uint64_t at = s->im.st.last_consistent;

  if (!st->consistent) {
    snapset_set_consistent (s->im.snaps, false, s->im.fd);
    /* A scan or catch-up: it ends consistent by itself. */
    s->replay_until = 0;
    s->replaying = false;
  }
  if (image_commit (&s->im, st) == -1)
    return -1;
  /* Durable, and not changed yet by the copies to come: the schedule
   * may want this moment if the catch-up lasts.
   */
  if (was && !st->consistent)
    history_hold (s->im.hist, s->im.fd, at);
  if (st->consistent && !s->replaying) {
    snapset_set_consistent (s->im.snaps, true, s->im.fd);
    /* One consistent, durable moment: a restore point if one is due. */
    history_tick (s->im.hist, s->im.fd);
  }
  return 0;
}

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
void
apply_replay_begin (struct session *s, uint64_t seq)
{
  if (s->replay_until == 0 || seq > s->replay_until || s->replaying)
    return;
  s->replaying = true;
  lb_info ("client %s: records up to seq %" PRIu64 " come again (the image "
           "already holds them); restores read the state from before until "
           "they are through", s->cl->conf->name, s->replay_until);
  snapset_set_consistent (s->im.snaps, false, s->im.fd);
}

void
apply_replay_end (struct session *s, uint64_t seq)
{
  struct client *cl = s->cl;

  if (cl->applied_epoch != s->epoch || seq > cl->applied_seq) {
    pthread_mutex_lock (&cl->lock);     /* for status */
    cl->applied_epoch = s->epoch;
    cl->applied_seq = seq;
    pthread_mutex_unlock (&cl->lock);
  }
  if (s->replay_until == 0 || seq < s->replay_until)
    return;
  s->replay_until = 0;
  if (s->replaying) {
    s->replaying = false;
    lb_info ("client %s: the records that came again are through (seq %"
             PRIu64 ")", cl->conf->name, seq);
    if (s->im.st.consistent)
      snapset_set_consistent (s->im.snaps, true, s->im.fd);
  }
}

/* The image is about to stop being consistent: say so durably first, so
 * that the state file never claims a mixed image is consistent.
 */
int
apply_mark_inconsistent (struct session *s)
{
  struct image_state st = s->im.st;

  if (!st.consistent)
    return 0;
  st.consistent = false;
  st.phase = LBP_PHASE_CATCHING_UP;
  return apply_commit (s, &st);
}


/* The step after an image call that returned R (0 or -1, errno). */
enum session_step
apply_io (int r)
{
  return r == -1 ? SESSION_STEP_IO : SESSION_STEP_DONE;
}

/* The step after sending an answer that returned R (0 or -1). */
static enum session_step
apply_sent (int r)
{
  return r == -1 ? SESSION_STEP_LOST : SESSION_STEP_DONE;
}

/* Apply a WRITE or BLOCK. */
enum session_step
apply_data (struct session *s, const struct lbp_msg *m,
                    const char **why)
{
  const void *data = m->payload;

  if (!image_range_ok (&s->im, m->offset, m->length)) {
    *why = "write outside the image";
    return SESSION_STEP_PROTOCOL;
  }
  switch (m->enc) {
  case LBP_ENC_ZERO:
    return apply_io (image_zero (&s->im, m->offset, m->length));
  case LBP_ENC_ZSTD: {
    size_t r;
    if (s->dctx == NULL && (s->dctx = ZSTD_createDCtx ()) == NULL)
      return SESSION_STEP_IO;
    if (lb_array_grow (&s->data, &s->data_cap, m->length, 1) == -1)
      return SESSION_STEP_IO;
    r = ZSTD_decompressDCtx (s->dctx, s->data, m->length, m->payload,
                             m->payload_len);
    if (ZSTD_isError (r) || r != m->length) {
      *why = "bad compressed payload";
      return SESSION_STEP_PROTOCOL;
    }
    data = s->data;
    break;
  }
  default:
    break;
  }
  return apply_io (image_write (&s->im, m->offset, data, m->length));
}

enum session_step
apply_hashes (struct session *s, const struct lbp_msg *m, const char **why)
{
  struct lbp_msg r = { .type = LBP_HASHES, .id = m->id,
                       .offset = m->offset, .hash_block = m->hash_block };
  uint32_t count = 0;
  const bool scanning = s->im.st.phase == LBP_PHASE_SCANNING;
  uint64_t len = m->length;

  if (m->offset > s->im.size) {
    *why = "hash request outside the image";
    return SESSION_STEP_PROTOCOL;
  }
  if (s->hashes == NULL
      && (s->hashes = malloc (LBP_MAX_HASHES * LBP_HASH_SIZE)) == NULL)
    return SESSION_STEP_IO;
  /* The last block is clipped to the image; its short file's end reads
   * as zeroes (image_read).
   */
  if (len > s->im.size - m->offset)
    len = s->im.size - m->offset;
  count = (len + m->hash_block - 1) / m->hash_block;
  /* A scan's region request may be answered from the hashes kept
   * (scancache.h), and what a scan read is kept; anything else reads
   * the image.  lb --verify above all: it runs in live mode only, and lb
   * sends its phase change (a SYNC, committed here) before anything of
   * a scan, so a verify's requests never find the state scanning.
   */
  if (!(scanning && scancache_lookup (s->im.sc, m->offset, len,
                                      m->hash_block, s->hashes))) {
    if (lb_hash_range (&s->hkey, s->im.fd, m->offset, len, m->hash_block,
                       LB_EOF_ZERO, s->hashes) == -1)
      return SESSION_STEP_IO;
    if (scanning)
      scancache_store (s->im.sc, m->offset, len, m->hash_block, s->hashes);
  }
  r.count = count;
  return apply_sent (lbw_send (s->conn, &r, s->hashes,
                                 (size_t) count * LBP_HASH_SIZE));
}

/* Commit the group (group.h), then answer each of its SYNCs, in order,
 * with the seq made durable.  Records after its newest SYNC may be in
 * the image already: the state file names only what the commit covered,
 * as without groups (see "Replays" above).
 */
enum session_step
apply_group_commit (struct session *s)
{
  unsigned i, n = s->grp.n;

  if (n == 0)
    return SESSION_STEP_DONE;
  s->grp.n = 0;
  if (apply_commit (s, &s->grp.st) == -1)
    return SESSION_STEP_IO;
  lb_debug ("client %s: durable up to seq %" PRIu64 ", gen %" PRIu64
            " (%s; %u SYNC%s in one commit)", s->cl->conf->name,
            s->grp.st.seq, s->grp.st.gen, lbp_phase_name (s->grp.st.phase),
            n, n == 1 ? "" : "s");
  for (i = 0; i < n; i++) {
    struct lbp_msg a = { .type = LBP_SYNCED, .id = s->grp.id[i],
                         .seq = s->grp.st.seq };
    if (lbw_send (s->conn, &a, NULL, 0) == -1)
      return SESSION_STEP_LOST;
  }
  return SESSION_STEP_DONE;
}

enum session_step
apply_sync (struct session *s, const struct lbp_msg *m)
{
  const char *name = s->cl->conf->name;
  bool join = group_joins (&s->im.st, s->epoch, m);
  struct image_state st = join && s->grp.n > 0 ? s->grp.st : s->im.st;
  enum session_step step;

  s->backlog = m->backlog;
  s->backlog_swept = m->swept;
  if (m->phase == LBP_PHASE_SCANNING && m->swept > s->scanned)
    s->scanned = m->swept;
  st.epoch = s->epoch;
  st.seq = m->seq;
  st.gen = m->gen;
  st.swept = m->swept;
  st.phase = m->phase;
  st.consistent = m->phase == LBP_PHASE_LIVE;
  if (st.consistent)
    st.last_consistent = time (NULL);
  if (join) {
    group_add (&s->grp, &st, m->id);
    return SESSION_STEP_DONE;
  }
  step = apply_group_commit (s);
  if (step != SESSION_STEP_DONE)
    return step;
  if (apply_commit (s, &st) == -1)
    return SESSION_STEP_IO;
  lb_debug ("client %s: durable up to seq %" PRIu64 ", gen %" PRIu64
            " (%s)", name, m->seq, m->gen, lbp_phase_name (m->phase));
  struct lbp_msg a = { .type = LBP_SYNCED, .id = m->id, .seq = m->seq };
  return apply_sent (lbw_send (s->conn, &a, NULL, 0));
}

/* The reply to a MARK (lbp_mark_result), with TEXT. */
static enum session_step
apply_marked (struct session *s, const struct lbp_msg *m, uint32_t result,
              const char *text)
{
  struct lbp_msg a = { .type = LBP_MARKED, .id = m->id, .seq = m->seq,
                       .code = result };

  return apply_sent (lbw_send (s->conn, &a, text, strlen (text)));
}

enum session_step
apply_mark (struct session *s, const struct lbp_msg *m)
{
  const char *name = s->cl->conf->name;
  char label[LW_MARK_LABEL_MAX], id[POINTS_ID_LEN], err[512];
  struct image_state st = s->im.st;

  /* lbp_decode checked the label: letters, digits, ".-_", < 64 bytes. */
  memcpy (label, m->payload, m->payload_len);
  label[m->payload_len] = '\0';
  if (st.epoch == s->epoch && st.seq >= m->seq) {
    lb_info ("client %s: mark '%s' (seq %" PRIu64 ") came again: the image "
             "is durable past it", name, label, m->seq);
    return apply_marked (s, m, LBP_MARK_PAST, "the image is durable past "
                         "this mark already (it came again after a lost "
                         "connection): its point, if any, is listed");
  }
  /* Only a live image, in order, holds the mark's moment: every record
   * before it and none after.
   */
  if (st.epoch != s->epoch || !st.consistent || st.phase != LBP_PHASE_LIVE
      || s->replaying) {
    lb_warn ("client %s: mark '%s' (seq %" PRIu64 ") refused: the image "
             "is not consistent there (%s)", name, label, m->seq,
             s->replaying ? "records come again after a lost connection"
             : lbp_phase_name (st.phase));
    return apply_marked (s, m, LBP_MARK_NOT_LIVE, "the image was not "
                         "consistent at the mark (a scan, catch-up or "
                         "replay ran): no point taken");
  }
  /* Durable at the mark first: the point names a moment the state file
   * vouches for (an overlay reads the image's blocks it does not hold).
   */
  st.seq = m->seq;
  st.last_consistent = time (NULL);
  if (apply_commit (s, &st) == -1)
    return SESSION_STEP_IO;
  if (history_take (s->im.hist, s->im.fd, points_clock (), "mark", label, id,
                    err, sizeof err) == -1) {
    lb_err ("client %s: mark '%s': cannot take a restore point: %s", name,
            label, err);
    return apply_marked (s, m, LBP_MARK_FAILED, err);
  }
  return apply_marked (s, m, LBP_MARK_TAKEN, id);
}

void
apply_verified (struct session *s, const struct lbp_msg *m)
{
  uint64_t now = (uint64_t) time (NULL);

  if (m->mismatched)
    lb_warn ("client %s: verify pass %" PRIu64 " done: %" PRIu64 " blocks "
             "compared, %" PRIu64 " differed, %" PRIu64 " repaired",
             s->cl->conf->name, m->pass, m->compared, m->mismatched,
             m->repaired);
  else
    lb_info ("client %s: verify pass %" PRIu64 " done: %" PRIu64 " blocks "
             "compared, all matched", s->cl->conf->name, m->pass,
             m->compared);
  /* Kept now (the state file as it stands, that field new: nothing
   * else moves), and in a group under way, which commits its own copy.
   */
  s->grp.st.verified = now;
  {
    struct image_state st = s->im.st;
    st.verified = now;
    if (image_commit (&s->im, &st) == -1)
      lb_warn ("client %s: %s: cannot record the verify pass: %s",
               s->cl->conf->name, s->im.state_path, strerror (errno));
  }
  pthread_mutex_lock (&s->cl->lock);     /* for status */
  s->cl->verified = now;
  s->cl->verify_mismatched = m->mismatched;
  pthread_mutex_unlock (&s->cl->lock);
}

int
apply_point_due (struct session *s)
{
  struct image_state st = s->im.st;

  uint64_t now = lb_now_ms ();

  if (!st.consistent || st.phase != LBP_PHASE_LIVE || s->replaying
      || st.epoch != s->epoch || !history_due (s->im.hist))
    return 0;
  /* A point that cannot be taken (history_tick logs why) is tried again
   * at most every 10 s, not before every record.
   */
  if (s->point_tried_ms && now - s->point_tried_ms < 10000)
    return 0;
  /* The group first (its answers go in order), else the image as it
   * stands: durable, then the point (apply_commit's tick takes it).
   */
  if (s->grp.n > 0) {
    if (apply_group_commit (s) == SESSION_STEP_IO)
      return -1;
  }
  else {
    st.last_consistent = time (NULL);
    if (apply_commit (s, &st) == -1)
      return -1;
  }
  s->point_tried_ms = history_due (s->im.hist) ? now : 0;
  return 0;
}
