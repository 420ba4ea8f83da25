/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: which file the plugin serves, for the consumer's
 * check that its DEVICE is that very file (lw_shm.h: served_*).
 *
 * A filter sees its plugin's parameters only as they pass through its
 * .config callback.  nbdkit's file plugin names what it serves with
 * file= (the bare FILENAME of its command line is that parameter under
 * nbdkit's magic key), so one file= naming a regular file or a block
 * device whose size is the export's is taken for what the plugin
 * serves.  Anything else (no file=, several, a path stat(2) refuses,
 * another kind of file, another size: another plugin, e.g. partitioning)
 * is published as unknown, and the consumer can check only sizes.
 *
 * Contract: served_config for every parameter the filter passes on to
 * the plugin; served_get_ready once, in get_ready (before nbdkit drops
 * privileges: a block device is opened read-only there, for its size);
 * served_publish once the export size is known, before the channel is
 * READY.
 */

#ifndef LIVEWATCH_SERVED_H
#define LIVEWATCH_SERVED_H

#include <stdint.h>

#include "lw_shm.h"

/* Record KEY=VALUE if it is file=.  Returns 0, or -1 after nbdkit_error
 * (out of memory).
 */
extern int served_config (const char *key, const char *value);

/* stat the recorded file (a failure only makes it unknown). */
extern void served_get_ready (void);

/* Fill H's served_* fields for an export of DEV_SIZE bytes. */
extern void served_publish (struct lw_header *h, uint64_t dev_size);

/* Free what served_config kept. */
extern void served_unload (void);

#endif /* LIVEWATCH_SERVED_H */
