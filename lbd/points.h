/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: the list of an image's restore points on disk, how a point's
 * data file is named and made, and the clock points are taken by.
 *
 * IMAGE.points, beside the image, replaced atomically (write IMAGE.points.tmp,
 * fsync, rename, fsync the folder):
 *
 *   livebackup-points 1
 *   mode overlay|reflink
 *   point ID TIME SIZE HOW LABEL      (one line per point, oldest first)
 *
 * ID is the point's time in UTC as YYYYMMDDTHHMMZ (its export is
 * NAME@ID), TIME seconds since 1970, SIZE the image's size then, HOW
 * how it was taken ("schedule", or "mark": lb --mark), LABEL "-" for
 * none.  A point's data is
 * IMAGE.point-ID: a reflinked copy of the image (mode reflink), or
 * IMAGE.point-ID.cow, its overlay (overlay.h).  A point is in the list
 * only once its data file is durable, and leaves the list before that
 * file is deleted; files of the right names that the list does not
 * name are leftovers of a crash, deleted when lbd starts.
 */

#ifndef LBD_POINTS_H
#define LBD_POINTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POINTS_ID_LEN 24
#define POINTS_LABEL_MAX 64

enum points_mode {
  POINTS_MODE_NONE,             /* no point yet: decided by the first */
  POINTS_MODE_OVERLAY,
  POINTS_MODE_REFLINK,
};

struct points_entry {
  char id[POINTS_ID_LEN];
  int64_t time;
  uint64_t size;
  char how[16];
  char label[POINTS_LABEL_MAX];
};

/* The time points are taken by: time (NULL), unless the environment
 * variable LIVEBACKUP_TEST_CLOCK (for tests only) says otherwise:
 * "/PATH" reads the time from the file PATH (decimal seconds since
 * 1970) at each call, "xN" runs the clock N times faster from the
 * first call on.
 */
extern int64_t points_clock (void);

/* T as an ID, YYYYMMDDTHHMMZ (UTC); with the seconds, YYYYMMDDTHHMMSSZ,
 * for a mark taken in a minute that has a point already (history_take
 * numbers those of one second: YYYYMMDDTHHMMSSZ-2, -3, ...).
 */
extern void points_id (int64_t t, char id[POINTS_ID_LEN]);
extern void points_id_seconds (int64_t t, char id[POINTS_ID_LEN]);

/* IMAGE's list into *E (N entries, malloc'd; oldest first) and *MODE.
 * No file: 0 and none.  0, or -1 with ERR.
 */
extern int points_load (const char *image, enum points_mode *mode,
                        struct points_entry **e, size_t *n, char *err,
                        size_t errlen);

/* Store the list durably (see above).  0, or -1 with errno. */
extern int points_store (const char *image, enum points_mode mode,
                         const struct points_entry *e, size_t n);

/* The data file of point ID of IMAGE in MODE (malloc'd), or NULL. */
extern char *points_path (const char *image, enum points_mode mode,
                          const char *id);

/* Delete files beside IMAGE named as point data (or the list's tmp)
 * that none of the N entries names.
 */
extern void points_remove_stale (const char *image, enum points_mode mode,
                                 const struct points_entry *e, size_t n);

/* fsync the folder that holds PATH (so that a new name in it lasts). */
extern void points_sync_dir (const char *path);

/* A reflinked copy of the image open as FD at PATH, durable.  0; or -1
 * with errno (EOPNOTSUPP, EXDEV, EINVAL, ENOTTY: no reflinks here).
 */
extern int points_reflink (int fd, const char *path);

/* Bytes of the reflinked copy FD that it does not share (FIEMAP). */
extern uint64_t points_unshared_bytes (int fd);

#endif
