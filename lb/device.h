/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: is DEVICE the partition the unit serves, and which partition is
 * it to lbd?
 *
 * lb reads DEVICE for scans and copies and ships what it reads as the
 * unit's partition: a DEVICE that is another file would fill the backup
 * with the wrong disk.  The filter publishes what its plugin serves
 * (lw_shm.h: served_*); lb compares DEVICE's fstat with it (for a block
 * device its st_rdev, for a regular file its st_dev and st_ino) and its
 * size (st_size, or BLKGETSIZE64) with the export's.  lbd binds each
 * image to a partition identity (doc/protocol.md, "Partition
 * identity"), which lb_device_partition_id derives.
 */

#ifndef LB_DEVICE_H
#define LB_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lw_shm.h"

enum lb_device_match {
  LB_DEVICE_SAME,               /* the very file the unit serves */
  LB_DEVICE_SIZE_ONLY,          /* the filter does not say which file it
                                   serves; the sizes agree (ERR: a
                                   warning saying so) */
  LB_DEVICE_OTHER,              /* not the partition the unit serves, or
                                   DEVICE cannot be examined (ERR) */
};

/* Compare DEVICE (open as FD) with what unit UNIT's filter serves (H,
 * a checked header).  ERR names DEVICE and both sides.
 */
extern enum lb_device_match lb_device_match (int fd, const char *device,
                                             unsigned unit,
                                             const struct lw_header *h,
                                             char *err, size_t errlen);

/* Is FD a block device that a file system of this host has mounted
 * directly (/proc/self/mountinfo: the mount's device number, or its
 * source naming the same device)?  If so, true and its mount point in
 * WHERE.
 */
extern bool lb_device_mounted (int fd, char *where, size_t wherelen);

/* The partition identity lb sends in HELLO for unit UNIT (H): never 0,
 * the same at every start as long as this host and the unit's file=
 * stay the same (doc/protocol.md).  BUF receives what it was derived
 * from, for the log.
 */
extern uint64_t lb_device_partition_id (const struct lw_header *h,
                                        unsigned unit, char *from,
                                        size_t fromlen);

#endif /* LB_DEVICE_H */
