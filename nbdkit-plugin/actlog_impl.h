/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: the activity log's state, shared by its two halves:
 * actlog.c (the write path: activation, read-ahead, leave, the life
 * cycle) and actlog_journal.c (the journal thread: records,
 * checkpoints, the flusher).  Private to them; actlog.h is the
 * interface, and states THE INVARIANT both keep.
 */

#ifndef LIVEWATCH_ACTLOG_IMPL_H
#define LIVEWATCH_ACTLOG_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "actlog.h"
#include "almap.h"
#include "statefile.h"
#include "stateformat.h"

#define ACTLOG_IDLE_MS       5000
#define ACTLOG_CHECKPOINT_MS 2000
#define ACTLOG_AHEAD         32u   /* regions activated ahead of a
                                    * sequential writer */
#define ACTLOG_STREAM        4u    /* writes in a row, each where the one
                                    * before ended, and a region's worth of
                                    * bytes, make a sequential stream */

enum actlog_state {
  ACTLOG_OK,                    /* the state file is kept */
  ACTLOG_LOST,                  /* it failed and was emptied: writes go
                                 * on unguarded, the next start scans */
  ACTLOG_BROKEN,                /* it failed and could not be emptied:
                                 * writes fail (EIO) */
};

struct actlog_slot {
  uint64_t cur;                 /* region, durably (SF_NONE: free) */
  uint64_t next;                /* region once the queued update counts */
  bool queued;                  /* waits in the queue for a record */
  _Atomic uint32_t inflight;    /* writes between enter and leave */
  _Atomic uint64_t last_seq;    /* seq of the last record of a write to cur */
  _Atomic uint64_t dur_need;    /* flush ticket that makes its writes
                                 * durable on the device */
  uint64_t last_use;            /* ms: LRU order and idleness */
  uint64_t seq_end;             /* end offset of the last write in cur */
  uint32_t seq_run;             /* how many writes in a row ended there,
                                 * each starting where one had ended */
  uint64_t seq_bytes;           /* and how many bytes they wrote */
};

struct actlog_run {
  struct statefile *sf;
  struct stateformat_layout l;
  struct actlog_slot *slots;
  _Atomic uint32_t *region_slot; /* slot + 1 of each region, 0: none;
                                 * stable while a write holds it */
  uint64_t *table;              /* the durable slot table (journal thread) */
  struct almap m;               /* P (journal thread) */
  uint32_t *queue;              /* slots with an update, oldest first */
  size_t nqueue;
  uint32_t *freel;              /* free slots */
  size_t nfree;
  uint64_t persist_req, persist_done;
  _Atomic uint32_t waiters;     /* writers waiting for a slot or record */
  bool stopping, running;
  pthread_t thread, flusher;
  bool flusher_running;
  bool flush_wanted;            /* a checkpoint waits for a flush */
  uint64_t *pages;              /* scratch: list of pages to write */
  struct stateformat_dyn dyn;   /* of the last record */
  _Atomic uint64_t journal_last; /* dyn.last_seq, durable */
  uint64_t start_seq;
  uint32_t ahead;               /* regions read ahead: ACTLOG_AHEAD, at
                                 * most a quarter of the slots */
  _Atomic int state;            /* enum actlog_state */
  int (*flush_device) (void);
  /* Flushes of the device: tickets taken when one starts, and the
   * highest ticket of one that completed.  A write that completed while
   * flush_started was K is durable once flush_done > K.
   */
  _Atomic uint64_t flush_started, flush_done;
};
extern struct actlog_run actlog_al;

/* actlog_lock guards actlog_al but its atomics and what the comments
 * give to the journal thread alone.
 */
extern pthread_mutex_t actlog_lock;
extern pthread_cond_t actlog_done, actlog_work, actlog_flushcv;

/* -D livewatch.al_checkpoint_ms=N (actlog.c) */
extern int livewatch_debug_al_checkpoint_ms;

/* actlog.c: the write path's helpers the journal thread uses. */
extern uint64_t actlog_idle_ms (void);
extern bool actlog_stable (const struct actlog_slot *s);
extern bool actlog_durable (const struct actlog_slot *s);
extern bool actlog_flush (void);

/* actlog_journal.c: the journal thread, the flusher, and what the clean
 * stop shares with them.
 */
extern struct stateformat_dyn actlog_dyn (uint64_t released);
extern void actlog_fail (const char *err);
extern void *actlog_main (void *arg);
extern void *actlog_flusher (void *arg);

#endif /* LIVEWATCH_ACTLOG_IMPL_H */
