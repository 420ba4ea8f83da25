/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: how an error message is carried.  See lb_err.h. */

#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "lb_err.h"

void
lb_errf (char *err, size_t errlen, const char *fmt, ...)
{
  int e = errno;
  va_list ap;

  if (err != NULL && errlen > 0) {
    va_start (ap, fmt);
    vsnprintf (err, errlen, fmt, ap);
    va_end (ap);
  }
  errno = e;
}
