/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: one client's backup image and its state file.
 *
 * The image is a plain raw file of the client's partition size (sparse
 * where never written).  Beside it, IMAGE.state records where the image
 * stands: the capture epoch, the last record seq and the copy generation
 * made durable (lw_shm.h says why both are needed), the
 * phase (live = consistent, in order; scanning or catching-up =
 * inconsistent), when it was last consistent, and the partition it is
 * bound to (bind.h).  The state file is
 * replaced atomically (write, fsync, rename, fsync folder), and only after
 * the image itself was synced, so it never claims more than the image
 * holds.
 *
 * Every offset/length is checked against the image's size here: no
 * caller can write outside the image.
 */

#ifndef LBD_IMAGE_H
#define LBD_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct image_state {
  uint64_t epoch;           /* 0: never synced */
  uint64_t seq;
  uint64_t gen;             /* copy generation; LBP_GEN_NONE: unknown */
  uint64_t swept;           /* scanning: bytes [0, swept) compared */
  uint32_t phase;           /* enum lbp_phase */
  bool consistent;
  uint64_t last_consistent; /* seconds since 1970, 0: never */
  uint64_t size;
  uint64_t verified;        /* the last verify pass lb reported done
                             * (VERIFIED), seconds since 1970; 0: none */
  uint64_t partition;       /* bound partition identity (bind.h); 0: none
                             * yet (a new image, or a state file written
                             * before identities) */
};

struct snapset;
struct history;
struct scancache;

struct image {
  char *path;
  char *state_path;
  int fd;
  uint64_t size;
  struct image_state st;
  /* If set, the snapshots every change must preserve (snapshot.h):
   * image_write, image_zero and image_resize save the blocks they are
   * about to change into them first, under the set's lock.
   */
  struct snapset *snaps;
  /* If set, the restore points (history.h), hooked the same way: their
   * old blocks are saved (and durable) before the image changes.
   */
  struct history *hist;
  /* If set, the region hashes kept for scans (scancache.h): every
   * change forgets the regions it touches, before it is made.
   */
  struct scancache *sc;
};

/* Open (creating, empty and sparse, if missing) PATH and read its state.
 * Returns 0, or -1 with a message naming the file in ERR.
 */
extern int image_open (struct image *im, const char *path,
                       char *err, size_t errlen);
extern void image_close (struct image *im);

/* Fill IM's path, size (0 for no file) and state from PATH and its
 * state file, without opening or creating the image (IM->fd stays -1;
 * image_close frees it).  Returns 0, or -1 with errno.
 */
extern int image_peek (struct image *im, const char *path);

/* Follow the partition's size (sparse growth, or truncation). */
extern int image_resize (struct image *im, uint64_t size);

/* Range-checked I/O.  Return 0, or -1 with errno (ERANGE: outside). */
extern int image_write (struct image *im, uint64_t off, const void *buf,
                        uint64_t len);
extern int image_zero (struct image *im, uint64_t off, uint64_t len);
extern int image_read (struct image *im, uint64_t off, void *buf,
                       uint64_t len);
extern bool image_range_ok (const struct image *im, uint64_t off,
                            uint64_t len);

/* fdatasync the image, then store ST durably. */
extern int image_commit (struct image *im, const struct image_state *st);

/* Read a state file without opening the image (for --status). */
extern int image_state_load (const char *state_path, struct image_state *st);

/* Call FN for each file beside IMAGE (in its folder) whose name is
 * IMAGE's own followed by something: with the file's PATH and that
 * SUFFIX (never empty).  For the cleanups at start of what a crash left
 * beside an image (snapshot overlays, restore points).
 */
extern void image_siblings (const char *image,
                            void (*fn) (const char *path,
                                        const char *suffix, void *arg),
                            void *arg);

#endif
