/* SPDX-License-Identifier: BSD-3-Clause */
/* The setting of the in-process tests of lw_follow (test-follow,
 * test-pipeline): a channel served by the filter's own code (capture,
 * channel, service) in this process, a device and an image in memory.
 */

#ifndef LIVEBACKUP_FOLLOW_HARNESS_H
#define LIVEBACKUP_FOLLOW_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "lw_consumer.h"

/* Make DIR (a mkdtemp template), the device and image (*DEV_FD,
 * *IMG_FD: memfds of DEV_SIZE bytes), and channel UNIT there with a
 * ring of QUEUE bytes and blocks of BLOCK; start the filter's service.
 * Returns 0, or -1 (the test says which step).
 */
extern int fh_channel_up (char *dir, unsigned unit, uint64_t queue,
                          uint32_t block, uint64_t dev_size,
                          int *dev_fd, int *img_fd);

/* Copy [OFF, OFF+LEN) from FROM to TO (a sink's block copy). */
extern int fh_copy (int from, int to, uint64_t off, uint64_t len);

/* Normal, no bit set, every record released. */
extern bool fh_settled (struct lwc *c);

/* Detach C, stop the service, remove the channel and DIR. */
extern void fh_channel_down (struct lwc *c, const char *dir, unsigned unit);

#endif
