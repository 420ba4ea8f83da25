/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: growable arrays.
 *
 *   struct run *runs = NULL;  size_t nruns = 0, cap = 0;
 *   if (lb_array_grow (&runs, &cap, nruns + 1, sizeof *runs) == -1) ...
 *   runs[nruns++] = r;
 */

#ifndef LIVEBACKUP_LB_ARRAY_H
#define LIVEBACKUP_LB_ARRAY_H

#include <stddef.h>

/* Make *ARRAYP (a pointer to any element pointer, with room for *CAP
 * elements of ELEM bytes) hold at least NEED elements: the capacity at
 * least doubles, starting at 8, and is never less than NEED.  Returns
 * 0, or -1 (errno ENOMEM; the product of count and size would overflow,
 * or realloc failed) with *ARRAYP and *CAP unchanged.  Elements past the
 * old capacity are not initialised.
 */
extern int lb_array_grow (void *arrayp, size_t *cap, size_t need,
                          size_t elem);

#endif /* LIVEBACKUP_LB_ARRAY_H */
