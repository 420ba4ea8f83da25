/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: paths named in a config file.
 *
 * A path in lbd.conf is relative to the config file's folder, and two
 * spellings of one image must be seen to be one (lb_config_whole.c).
 */

#ifndef LIVEBACKUP_LB_PATH_H
#define LIVEBACKUP_LB_PATH_H

#include <stddef.h>

/* The N bytes at V (not NUL-terminated) as a path made absolute against
 * DIR (absolute; trailing slashes are dropped): V itself if it starts
 * with '/', else "DIR/V", by text alone.  Returns a new string, or NULL
 * with errno ENOMEM.
 */
extern char *lb_path_abs (const char *dir, const char *v, size_t n);

/* The absolute PATH in a form where two names of one file compare
 * equal: realpath where the file exists; else its folder's realpath and
 * its own name (lbd creates missing images, so the file may well not
 * exist yet); else the path with ".", ".." and repeated slashes removed
 * by text alone.  Returns a new string, or NULL with errno ENOMEM.
 */
extern char *lb_path_canon (const char *path);

#endif /* LIVEBACKUP_LB_PATH_H */
