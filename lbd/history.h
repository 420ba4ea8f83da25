/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: an image's history, its restore points (history= in lbd.conf).
 *
 * A point is the image as it was at one consistent moment (a sync
 * point in live mode, session.c), kept until the retention policy
 * (lb_history.h) lets it go, across lbd restarts.  points.h has the
 * files; two ways to keep a point's data, chosen by the first point of
 * an image and kept for all of its points:
 *
 *   reflink: where the image's filesystem shares extents (XFS, btrfs:
 *     FICLONE), the point is a reflinked copy of the image, which the
 *     filesystem copies on write by itself.  Nothing hooks the writes.
 *   overlay: elsewhere (ext4), lbd's own copy-on-write.  Only the
 *     NEWEST point has its old blocks saved: before the image changes
 *     a block that the newest point's overlay does not hold yet, its
 *     content is appended to that overlay and made durable (overlay.h),
 *     and only then is the image written.  An older point reads a block
 *     from its own overlay, else from the next newer point's, and so
 *     on, else from the image: a block missing from a point's overlay
 *     did not change while that point was the newest, so it reads as
 *     the next point does.  Space is the blocks changed since each
 *     point (at OVERLAY_BLOCK granularity), not multiplied by the
 *     number of points; taking a point creates an empty overlay.  A
 *     block that a write leaves as it was (a catch-up or a scan rewrites
 *     whole runs of dirty blocks, most of them unchanged) is not saved.
 *
 * Pruning a point (retention, or lbd --drop-point) never rewrites the
 * image: in overlay mode its blocks are first copied into its older
 * neighbour's overlay where that lacks them (the neighbour read them
 * through it), durably; then the point leaves the list (durably); then
 * its file is deleted.  A crash between those steps leaves either the
 * point listed with its file, or a file no list names (deleted at the
 * next start); blocks copied twice are true twice.  Pruning runs in a
 * thread of the history's own, in pieces, so replication waits for it
 * at most one piece at a time.  A point with readers (export
 * connections) is pruned once they leave.
 *
 * If an overlay cannot be written (disk full, I/O error), no point of
 * the chain can be trusted to read its moment any more: they are all
 * dropped from the list before the image write goes on, logged, and
 * their readers get EIO.  Replication never waits for history.
 *
 * Locking: LOCK (read-write, writers preferred) guards the list and
 * the overlays.  The image's writer holds it for writing across "save
 * old blocks, change the image" (history_write_begin/end), as do
 * taking, and each piece of pruning; readers hold it for reading per
 * piece of at most HISTORY_READ_PIECE bytes.  Lock order: the
 * snapshots' lock (snapshot.h) before this one.
 */

#ifndef LBD_HISTORY_H
#define LBD_HISTORY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lb_history.h"
#include "overlay.h"
#include "points.h"

#define HISTORY_READ_PIECE (1024 * 1024)
/* Blocks saved or merged per durable append (and per piece of pruning). */
#define HISTORY_BATCH 256

struct history;

struct hist_point {
  struct history *h;
  struct points_entry e;
  int fd;                       /* reflink: the copy, read-only */
  struct overlay ov;            /* overlay mode */
  unsigned refs;                /* export connections */
  bool doomed;                  /* to be pruned (once refs is 0) */
  bool busy;                    /* being pruned (the pruner owns it) */
  bool broken;                  /* dropped after a failed save: EIO */
};

struct history {
  pthread_rwlock_t lock;
  char *image;
  struct lb_history policy;
  enum points_mode mode;
  bool disabled;                /* the list could not be read: hands off */
  /* The point history_hold took at the start of a catch-up ("": none),
   * settled by the next history_tick.  The writer's (session) only.
   */
  char held[POINTS_ID_LEN];
  struct hist_point **p;        /* listed points, oldest first */
  size_t n, cap;
  uint8_t *buf;                 /* the writer's scratch: HISTORY_BATCH blocks */
  uint64_t *blocks;
  uint64_t saved_blocks;        /* blocks saved into overlays, ever */
  uint64_t unchanged_blocks;    /* ... found unchanged by a write: not saved */
  uint64_t write_ms;            /* time spent saving them */

  /* The pruning thread. */
  pthread_mutex_t mu;
  pthread_cond_t cond;
  pthread_t thread;
  bool thread_on, stop, work;
};

/* One point as status and lists show it. */
struct hist_info {
  struct points_entry e;
  uint64_t bytes;               /* held on disk for it */
  bool reflink;
  unsigned readers;
  bool doomed;
};

/* IMAGE's history with POLICY: its list loaded, every listed point's
 * file opened (a point that cannot be is dropped from the list, said),
 * leftovers deleted.  0, or -1 (ENOMEM).
 */
extern int history_init (struct history *h, const char *image,
                         const struct lb_history *policy);
extern void history_destroy (struct history *h);
extern void history_set_policy (struct history *h,
                                const struct lb_history *policy);

/* The image (open as FD, IMAGE_SIZE bytes) is about to change in [OFF,
 * OFF+LEN) to BUF (LEN bytes), or to zeroes (BUF NULL, ZERO), or to
 * nothing (a truncation: BUF NULL, !ZERO): take LOCK for writing and
 * save the old blocks that change into the newest point's overlay
 * (blocks the change leaves as they are need no saving).
 * history_write_end after the change.  H may be NULL.
 */
extern void history_write_begin (struct history *h, int fd,
                                 uint64_t image_size, uint64_t off,
                                 uint64_t len, const void *buf, bool zero);
extern void history_write_end (struct history *h);

/* Is a point of the schedule due now (the policy's period changed since
 * its newest point)?  H may be NULL (false).  Cheap: the session asks
 * before each record it applies to a live image, so that a quiet
 * image's point is of the moment before the period's first write.
 */
extern bool history_due (struct history *h);

/* The image, open as FD, is consistent and durable now: take a point
 * if the policy says one is due, and let go of those it no longer
 * keeps.  H may be NULL.
 */
extern void history_tick (struct history *h, int fd);

/* The image, open as FD and durable, was consistent up to now (its last
 * consistent moment CONSISTENT_AT, seconds since 1970; 0: now) and is
 * about to stop being so: a scan or a catch-up begins.  With a policy,
 * keep that moment as a point (how "catch-up", of that time), in case
 * a point falls due before the image is consistent again; the next
 * history_tick drops it if none did.  So a long catch-up still leaves
 * the schedule's point, of the last moment the image really was.  H
 * may be NULL.
 */
extern void history_hold (struct history *h, int fd, uint64_t consistent_at);

/* Take a point of the image open as FD now, whatever the schedule
 * (HOW says why: "schedule", "mark"), labelled LABEL (NULL: none; a
 * labelled point is kept until dropped, whatever the policy).  Its ID
 * into ID unless NULL.  0, or -1 with ERR.
 */
extern int history_take (struct history *h, int fd, int64_t now,
                         const char *how, const char *label,
                         char id[POINTS_ID_LEN], char *err, size_t errlen);

/* The point named ID (its ID or its label), with a reference for a
 * reader, or NULL with why in WHY.
 */
extern struct hist_point *history_open (struct history *h, const char *id,
                                        size_t idlen, char *why,
                                        size_t whylen);
extern void history_release (struct hist_point *pt);

/* Read LEN bytes at OFF (inside the point's size) of PT, whose image is
 * open as IMAGE_FD.  0, or -1 with errno (EIO: the point was lost).
 */
extern int history_read (struct hist_point *pt, int image_fd, void *buf,
                         uint64_t off, size_t len);

/* The listed points, oldest first, into *OUT (malloc'd; *N of them). */
extern int history_list (struct history *h, struct hist_info **out,
                         size_t *n);

/* What history_drop did. */
enum history_dropped {
  HISTORY_DROPPED,              /* gone (off the list, file deleted) */
  HISTORY_DROP_PENDING,         /* readers hold it: goes when they leave */
  HISTORY_DROP_UNKNOWN,         /* no such point */
  HISTORY_DROP_FAILED,          /* WHY says why */
};

/* Prune point ID (as history_open names it: an ID or a label) now; the
 * ID of the point found into FOUND unless it is NULL ("" if none).
 */
extern enum history_dropped history_drop (struct history *h, const char *id,
                                          char found[POINTS_ID_LEN],
                                          char *why, size_t whylen);

#endif
