/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: growable arrays.  See lb_array.h. */

#include <config.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "lb_array.h"

int
lb_array_grow (void *arrayp, size_t *cap, size_t need, size_t elem)
{
  void **a = arrayp, *p;
  size_t ncap;

  if (need <= *cap)
    return 0;
  ncap = *cap < 8 ? 8 : *cap;
  while (ncap < need) {
    if (ncap > SIZE_MAX / 2) {
      ncap = need;
      break;
    }
    ncap *= 2;
  }
  if (elem != 0 && ncap > SIZE_MAX / elem) {
    errno = ENOMEM;
    return -1;
  }
  p = realloc (*a, ncap * elem);
  if (p == NULL) {
    errno = ENOMEM;
    return -1;
  }
  *a = p;
  *cap = ncap;
  return 0;
}
