/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: a persistent copy-on-write overlay, one restore point's saved
 * blocks on a filesystem without reflinks (history.h says how points
 * use them).
 *
 * An overlay is an append-only log file, IMAGE.point-ID.cow:
 *
 *   header (64 bytes): "LBCOW\0\0\1", u32 block size, u32 0, u64 the
 *     image's size when the point was taken, u64 the point's time,
 *     zero padding, u32 crc32 of the first 60 bytes (at 60)
 *   records, each: u32 magic "LBCR", u32 flags (1: the block was all
 *     zeroes, no data follows), u64 block number, u32 data bytes (0 or
 *     the block size), u32 crc32 of the data, u32 0, u32 crc32 of the
 *     first 28 bytes; then the data
 *
 * all little-endian.  A record says "this block of the point reads
 * so".  Appends are made durable (fdatasync) before the caller changes
 * the image, so after a crash the log holds every block it must; a
 * record torn by the crash (bad crc, short) ends the log there and is
 * cut off when the overlay is opened (nothing after it had been made
 * durable, so nothing after it was relied on).  A block is recorded at
 * most once (the first record wins if a crash left two).  The index of
 * blocks is kept in memory, rebuilt by reading the record headers.
 *
 * No locking here: history.c serialises writers and readers.
 */

#ifndef LBD_OVERLAY_H
#define LBD_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lb_index.h"

#define OVERLAY_BLOCK 4096
#define OVERLAY_HEADER 64
#define OVERLAY_RECORD 32

struct overlay_entry {
  uint64_t block;
  uint64_t off;                 /* of the data in the file; 0: zeroes */
};

struct overlay {
  char *path;
  int fd;
  uint64_t size;                /* the image's size when taken */
  uint64_t end;                 /* where the next record goes */
  struct overlay_entry *e;      /* in the order recorded */
  size_t n, cap;
  struct lb_index ix;           /* block -> element of E */
};

/* Create PATH (it must not exist) for a point of an image of SIZE bytes
 * taken at TIME, durably (file and folder synced).  0, or -1 with ERR.
 */
extern int overlay_create (struct overlay *o, const char *path,
                           uint64_t size, int64_t time, char *err,
                           size_t errlen);

/* Open PATH, read its records and cut off a torn end.  0, or -1 with
 * ERR.
 */
extern int overlay_open (struct overlay *o, const char *path, char *err,
                         size_t errlen);

extern void overlay_close (struct overlay *o);

/* The entry for block B, or NULL. */
extern const struct overlay_entry *overlay_find (const struct overlay *o,
                                                 uint64_t b);

/* Append the blocks B[0..N) whose contents are DATA[i * OVERLAY_BLOCK]
 * (all-zero blocks are recorded without data), then fdatasync, then
 * index them.  Blocks already held are skipped.  0, or -1 with errno
 * (the index then holds none of them; the file may hold some, which is
 * harmless: they are true).
 */
extern int overlay_append (struct overlay *o, const uint64_t *b,
                           const uint8_t *data, size_t n);

/* Read the saved block E into BUF (OVERLAY_BLOCK bytes).  0, or -1. */
extern int overlay_read (const struct overlay *o,
                         const struct overlay_entry *e, uint8_t *buf);

/* Bytes the file takes on disk. */
extern uint64_t overlay_bytes (const struct overlay *o);

#endif
