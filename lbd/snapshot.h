/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: copy-on-write snapshots of an image, so that a restore always
 * reads one consistent moment.
 *
 * A snapshot freezes an image as it is when it is taken.  It is an
 * overlay file beside the image, IMAGE.snap-N (sparse, mode 0600), and a
 * bitmap in memory with one bit per SNAP_BLOCK-sized block of the image:
 * a set bit says the overlay holds that block's content as it was when
 * the snapshot was taken.  Before the image is changed (a write, a zero,
 * a truncation), the writer copies the old content of every block it
 * touches into every snapshot that does not hold that block yet, once per
 * block and snapshot; a block that is a hole in the image (or reads as
 * zeroes) is only marked, and stays a hole in the overlay.  A reader of
 * the snapshot reads saved blocks from the overlay and the others from
 * the image, which has not changed there since the snapshot was taken.
 *
 * Locking: one read-write lock per image (a snapset).  The writer (the
 * image's session) holds it for writing across "save the old blocks,
 * then change the image", and so do taking and dropping a snapshot;
 * readers hold it for reading while they read at most SNAP_READ_PIECE
 * bytes, so that a restore never stalls replication for long.  Writers
 * are preferred.
 *
 * Which snapshot an export connection reads (snapset_open):
 *   - while the image is consistent (live), one taken at that moment: a
 *     fresh one, or the newest existing one if the image has not changed
 *     since it was taken (which is the same thing, for free);
 *   - while it is not (a scan or catch-up runs), the "last consistent"
 *     snapshot, which snapset_set_consistent took just before the image
 *     stopped being consistent and keeps until it is consistent again;
 *   - none if there is no such snapshot: the image was never consistent
 *     since lbd started, or the snapshot could not be made.
 * A snapshot is dropped (its overlay deleted) when its last user leaves.
 *
 * Snapshots live in memory: a crash or restart of lbd loses them, and lbd
 * deletes leftover overlays when it starts (snapset_remove_stale).
 *
 * If an overlay cannot be written (disk full), the snapshot is marked
 * broken: replication goes on regardless, and its readers get EIO from
 * then on.
 */

#ifndef LBD_SNAPSHOT_H
#define LBD_SNAPSHOT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SNAP_SHIFT 16
#define SNAP_BLOCK (UINT64_C (1) << SNAP_SHIFT)       /* 64 KiB */
#define SNAP_READ_PIECE (1024 * 1024)

struct snapset;

struct snapshot {
  struct snapset *set;
  unsigned id;
  char *path;                   /* the overlay, IMAGE.snap-ID */
  int fd;
  uint64_t size;                /* the image's size when taken */
  uint64_t nblocks;
  uint64_t *saved;              /* bitmap: the overlay holds the block */
  uint64_t nsaved;              /* blocks saved */
  uint64_t bytes;               /* data bytes written to the overlay */
  time_t taken;
  uint64_t gen;                 /* the set's generation when taken */
  unsigned refs;                /* export connections, + 1 if lastc */
  bool broken;
  char why[160];                /* why it broke */
  struct snapshot *next;        /* newest first */
};

struct snapset {
  pthread_rwlock_t lock;
  char *image;                  /* the image's path */
  bool enabled;                 /* exports configured: keep snapshots */
  bool consistent;              /* the image holds one moment right now */
  uint64_t gen;                 /* bumped by every change to the image */
  struct snapshot *list;
  struct snapshot *lastc;       /* the last consistent state, or NULL */
  time_t lastc_time;            /* when the image stopped being consistent */
  unsigned users;               /* export connections holding a snapshot */
  unsigned next_id;
  uint8_t *buf;                 /* the writer's scratch block */
  uint64_t cow_blocks;          /* blocks saved, all snapshots, ever */
  uint64_t cow_bytes;           /* data bytes saved, ever */
};

/* At most this many export connections per image at once. */
#define SNAP_MAX_USERS 8

/* IMAGE's set; CONSISTENT from its state file; ENABLED: keep snapshots
 * at all (exports are configured).  0, or -1 (ENOMEM).
 */
extern int snapset_init (struct snapset *ss, const char *image,
                         bool consistent, bool enabled);
extern void snapset_destroy (struct snapset *ss);

/* Keep snapshots from now on (ENABLED: exports are configured), or not:
 * a reload that adds the first export line or removes the last.
 * Disabling drops the last consistent state (snapshots that export
 * connections still hold go when they let go).
 */
extern void snapset_enable (struct snapset *ss, bool enabled);

/* Delete overlays a previous lbd left beside IMAGE (IMAGE.snap-N). */
extern void snapset_remove_stale (const char *image);

/* The image (open as FD, IMAGE_SIZE bytes now) is about to change in
 * [OFF, OFF+LEN): take the lock for writing and save the old content
 * of those blocks into every snapshot that needs it.  snapset_write_end
 * after the change.  SS may be NULL (both do nothing).
 */
extern void snapset_write_begin (struct snapset *ss, int fd,
                                 uint64_t image_size, uint64_t off,
                                 uint64_t len);
extern void snapset_write_end (struct snapset *ss);

/* The image (open as FD) is about to stop being consistent (CONSISTENT
 * false: call it before the first change that breaks it), or has become
 * consistent again (true: call it after the state is committed).  The
 * first keeps the last consistent state; the second drops it.
 */
extern void snapset_set_consistent (struct snapset *ss, bool consistent,
                                    int fd);

/* For an export connection that opened the image as FD: the snapshot it
 * must read, with a reference, or NULL and why in WHY.  *SINCE is 0 for
 * a snapshot of the live image, or for the last consistent state the
 * time the image stopped being consistent.  Release it with
 * snapshot_release.
 */
extern struct snapshot *snapset_open (struct snapset *ss, int fd,
                                      time_t *since, char *why,
                                      size_t whylen);
extern void snapshot_release (struct snapshot *s);

/* What snapset_open would serve now. */
enum snap_serves {
  SNAP_SERVES_NOTHING,          /* inconsistent, and no consistent state kept */
  SNAP_SERVES_LIVE,             /* the image, *SIZE from FD if FD >= 0 */
  SNAP_SERVES_LAST_CONSISTENT,  /* *SIZE; *SINCE: when it stopped being so */
};
extern enum snap_serves snapset_would_serve (struct snapset *ss, int fd,
                                             uint64_t *size, time_t *since);

/* Read LEN bytes at OFF (inside S->size) of snapshot S, whose image is
 * open as IMAGE_FD.  0, or -1 with errno (EIO if S is broken).
 */
extern int snapshot_read (struct snapshot *s, int image_fd, void *buf,
                          uint64_t off, size_t len);

/* The extent of S starting at OFF, at most LEN (> 0) bytes long: *ELEN
 * bytes that are all a hole (*HOLE true: reads as zeroes, no storage) or
 * all data.  0, or -1 with errno.
 */
extern int snapshot_extent (struct snapshot *s, int image_fd, uint64_t off,
                            uint64_t len, uint64_t *elen, bool *hole);

#endif
