/* SPDX-License-Identifier: BSD-3-Clause */
/* The two nbdkit server functions the filter's sources call, for unit
 * tests that link those sources without a server.
 */

#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <nbdkit-filter.h>

void
nbdkit_error (const char *fs, ...)
{
  va_list ap;
  va_start (ap, fs);
  fprintf (stderr, "nbdkit error: ");
  vfprintf (stderr, fs, ap);
  fprintf (stderr, "\n");
  va_end (ap);
}

void
nbdkit_debug (const char *fs, ...)
{
  va_list ap;

  /* Quiet unless asked: the stress test degrades often. */
  if (getenv ("LW_STUB_DEBUG") == NULL)
    return;
  va_start (ap, fs);
  fprintf (stderr, "nbdkit debug: ");
  vfprintf (stderr, fs, ap);
  fprintf (stderr, "\n");
  va_end (ap);
}
