/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: whole-length file I/O.  See lb_io.h. */

#include <config.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "lb_io.h"

int
lb_pread_all (int fd, void *buf, size_t len, uint64_t off,
              enum lb_io_eof eof)
{
  char *p = buf;

  while (len > 0) {
    ssize_t r = pread (fd, p, len, off);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (r == 0) {
      if (eof == LB_EOF_FAIL) {
        errno = ENODATA;
        return -1;
      }
      memset (p, 0, len);
      return 0;
    }
    p += r;
    off += r;
    len -= r;
  }
  return 0;
}

int
lb_pwrite_all (int fd, const void *buf, size_t len, uint64_t off)
{
  const char *p = buf;

  while (len > 0) {
    ssize_t r = pwrite (fd, p, len, off);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (r == 0) {
      errno = ENOSPC;
      return -1;
    }
    p += r;
    off += r;
    len -= r;
  }
  return 0;
}
