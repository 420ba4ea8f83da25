/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: follow a livewatch channel — the consumer's protocol.
 *
 * This is the one implementation of the sequence that keeps a mirror
 * equal to the device: apply records in order while the filter is
 * normal; when it degrades, drain the ring, copy dirty blocks in passes
 * (clear, then read), ask for normal mode, make one more pass, and take a
 * barrier: once every record up to the barrier is applied the mirror is
 * consistent again.  doc/capture.md gives the argument.  The mirror
 * itself (a local file, or lbd across the network) is behind a sink.
 */

#ifndef LIVEBACKUP_LW_FOLLOW_H
#define LIVEBACKUP_LW_FOLLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "lw_consumer.h"

enum lwf_phase {
  LWF_SCANNING,         /* full comparison: the mirror is inconsistent */
  LWF_CATCHING_UP,      /* copying dirty blocks: inconsistent */
  LWF_LIVE,             /* applying records in order: consistent */
};

extern const char *lwf_phase_name (enum lwf_phase phase);

/* Where a mirror stands, as a sink records it with each sync. */
struct lwf_mark {
  uint64_t seq;         /* the last record it holds */
  uint64_t gen;         /* its copy generation (lw_shm.h) */
  uint64_t swept;       /* in a scan: device bytes [0, swept) compared;
                         * otherwise the device's size */
};

/* How far a pass has got (lwf_sink.progress). */
struct lwf_progress {
  enum lwf_phase phase; /* LWF_SCANNING: a scan's sweep; LWF_CATCHING_UP:
                         * a pass over the marked blocks */
  unsigned pass;        /* catch-up passes since the phase began: 1, 2 ...
                         * (0 for a sweep) */
  uint64_t done;        /* device bytes covered: the sweep's position,
                         * or the bytes this pass copied */
  uint64_t total;       /* of: the device's size, or the bytes marked
                         * when the pass began (writes may add more: DONE
                         * can pass it) */
  bool end;             /* the pass is over (through, or stopped) */
};

/* What a pass was, for lwf_sink.pass_done. */
enum lwf_pass {
  LWF_PASS_SWEEP,       /* a scan's sweep over every block */
  LWF_PASS_CATCH_UP,    /* a pass over the dirty bitmap */
};

/* Pipelined syncs outstanding at most (lwf_sink.sync_send). */
#define LWF_MAX_INFLIGHT 256

/* What a sink's live work asks of lw_follow (lwf_sink.live). */
enum lwf_live {
  LWF_LIVE_IDLE,        /* nothing to do now: lw_follow may sleep */
  LWF_LIVE_BUSY,        /* more to do: call again soon, without sleeping */
  LWF_LIVE_SYNC,        /* make all the sink sent durable (a sync of
                         * where the mirror stands, waited for), then
                         * call again */
  LWF_LIVE_FAILED,      /* the sink failed */
};

struct lwf_sink {
  void *opaque;
  /* Apply one record (never PAD).  WRITE data (and a MARK's label) is
   * valid during the call only.  A TRIM means: the range now reads what the device reads, so
   * copy it from the device.
   */
  int (*record) (void *opaque, const struct lwc_rec *rec);
  /* Bring device bytes [offset, offset+length) to the mirror.  SCAN is
   * true in the first pass of a full scan, and in catch-up passes for
   * blocks with a compare hint (lwc_take_run): the mirror may compare
   * before it copies.
   */
  int (*copy) (void *opaque, uint64_t offset, uint64_t length, bool scan);
  /* Make all applied so far durable, and record M as the mirror's
   * state; records up to M->seq are then released and copied blocks
   * forgotten.  M->gen is new when this sync carries block copies.
   */
  int (*sync) (void *opaque, const struct lwf_mark *m);
  /* Optional, for a mirror far away (lb): pipelined syncs.  sync_send
   * asks for the same as sync but returns once the request is on its
   * way; the sink completes such syncs in the order sent, and sync_reap
   * says how many more completed (became durable) since its last call,
   * waiting up to TIMEOUT_MS (0: not at all) for one if none did; -1 if
   * the sink failed.  lw_follow sends only record syncs this way (M->gen
   * unchanged, no block copies), at most LWF_MAX_INFLIGHT at a time,
   * releases a sync's records only once it is reaped, and lets every
   * one complete before it calls sync or phase.
   */
  int (*sync_send) (void *opaque, const struct lwf_mark *m);
  int (*sync_reap) (void *opaque, int timeout_ms);
  /* The phase changed.  M: where the mirror stands (for LWF_LIVE, its
   * seq is the barrier's), for a sink that records the phase at once.
   */
  void (*phase) (void *opaque, enum lwf_phase phase,
                 const struct lwf_mark *m);
  /* Polled between steps: return true to stop following. */
  bool (*stop) (void *opaque);
  /* Optional: a catch-up started (ON) or stopped waiting for a burst of
   * writes to end (lwf_options.defer_ms), for status displays.
   */
  void (*deferring) (void *opaque, bool on);
  /* Optional: after each step of a sweep or of a pass that copies
   * something, and once more with P->end at its end, for progress
   * displays.  Called often: keep it cheap.
   */
  void (*progress) (void *opaque, const struct lwf_progress *p);
  /* Optional: a pass of KIND over BLOCKS blocks is done (synced), for
   * logs of what it cost.  Passes that found nothing are not told.
   */
  void (*pass_done) (void *opaque, enum lwf_pass kind, uint64_t blocks);
  /* Optional: work of the sink's own that must sit in the stream of
   * records at a known place (lb's online verify, lb/verify.h).  Called
   * only in live mode, between steps, once every record read so far
   * (lwc_read_seq) has been handed to RECORD and no sync is owed; the
   * sink may read the device and ask the filter for a barrier then.
   */
  enum lwf_live (*live) (void *opaque);
  /* Optional: marks (lb --mark).  While the mirror is live, lw_follow
   * asks mark_take, before each look at the ring, whether a mark is
   * asked for (its label into LABEL); if so it asks the filter for it
   * at once (lwc_mark) and tells mark_placed the result: LW_RES_OK with
   * the mark's seq, LW_RES_REFUSED (the filter is degraded), or -1 (no
   * answer, errno).  Not live, it does not ask: a mark placed then
   * would follow block copies, not one moment.  The MARK record then
   * reaches record () in order, like any other.
   */
  bool (*mark_take) (void *opaque, char label[LW_MARK_LABEL_MAX]);
  void (*mark_placed) (void *opaque, int result, uint64_t seq);
};

struct lwf_options {
  uint64_t batch_bytes;     /* sync at least this often (bytes applied) */
  uint64_t scan_batch_bytes; /* the same in a scan's first pass, where a
                             * sink may pipeline comparisons */
  uint64_t copy_batch_bytes; /* the same in catch-up passes (copies take
                             * no ring space: sync less often) */
  uint64_t low_water;       /* ask for normal mode below this many dirty
                             * blocks in a pass (hysteresis) */
  /* Copy after the burst (doc/architecture.md): before each catch-up pass, unless
   * the filter counted no write during the previous pass of this
   * catch-up or counts none in 20 ms, wait while it counts at least
   * burst_writes writes per quiet_ms, up to defer_ms (0: never wait).  A writer that never pauses
   * then gets one pass per defer_ms, not a consumer competing with it
   * for the CPU and the disk the whole time.
   */
  int defer_ms;
  int quiet_ms;
  uint64_t burst_writes;
  int idle_ms;              /* sleep when idle, at most */
  int request_ms;           /* how long to wait for the filter's answer */
};

/* Defaults for OPTS given the channel's geometry. */
extern void lwf_default_options (const struct lwc *c, struct lwf_options *o);

/* How a session starts, given where the mirror stands. */
enum lwf_start {
  LWF_CONTINUE,         /* from its seq: nothing was missed */
  LWF_RESUME_SCAN,      /* its scan was cut: sweep on from its swept */
  LWF_FULL_SCAN,        /* its state is unknown or stale: compare all */
};

/* Decide how a mirror of EPOCH standing at M (SCANNING: its last
 * recorded phase was LWF_SCANNING) can go on with this channel: same
 * epoch, its seq accepted by lwc_seq_continues (a capture continued from
 * a state file accepts the seqs of its previous instance), its gen by
 * lwc_gen_continues.  For LWF_FULL_SCAN, *WHY is a static reason for the
 * log (lw_shm.h's start_reason says more when the filter started a new
 * capture).
 */
extern enum lwf_start lwf_decide (struct lwc *c, uint64_t epoch,
                                  const struct lwf_mark *m, bool scanning,
                                  const char **why);

/* Follow the channel until SINK->stop or until continuity is lost,
 * starting as lwf_decide said for the mirror at M (M unused for a full
 * scan).  Continuing, records up to M->seq are already durable in the
 * mirror and are released unapplied.
 * Returns how it ended (enum lwf_end).
 */
enum lwf_end {
  LWF_END_STOPPED,      /* the sink's stop said so */
  LWF_END_CHANNEL_GONE, /* the channel went away, or a request it must
                         * carry out failed: reattach and decide again */
  LWF_END_SINK_FAILED,  /* a sink callback failed (errno as it left it) */
};
extern enum lwf_end lwf_run (struct lwc *c, const struct lwf_sink *sink,
                    const struct lwf_options *opts, enum lwf_start start,
                    const struct lwf_mark *m);

#endif /* LIVEBACKUP_LW_FOLLOW_H */
