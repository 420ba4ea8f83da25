/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: whole-length file I/O.
 *
 * pread(2) and pwrite(2) may move fewer bytes than asked (signals, large
 * requests, the end of a file).  These loop until every byte is moved
 * (EINTR is retried) and say what happens at the end of the file, which
 * callers used to decide each in their own way.  For sockets with
 * deadlines, see lb_sock.h.
 */

#ifndef LIVEBACKUP_LB_IO_H
#define LIVEBACKUP_LB_IO_H

#include <stddef.h>
#include <stdint.h>

/* What a read finds past the end of the file. */
enum lb_io_eof {
  LB_EOF_FAIL,  /* an error: errno ENODATA (a device read short) */
  LB_EOF_ZERO,  /* reads as zeroes (a sparse image shorter than asked) */
};

/* Read exactly LEN bytes at OFF of FD into BUF.  0, or -1 with errno
 * (pread's, or ENODATA at the end of the file under LB_EOF_FAIL; BUF's
 * content is then unspecified).
 */
extern int lb_pread_all (int fd, void *buf, size_t len, uint64_t off,
                         enum lb_io_eof eof);

/* Write exactly LEN bytes of BUF at OFF of FD.  0, or -1 with errno
 * (pwrite's; a pwrite that writes nothing is ENOSPC).
 */
extern int lb_pwrite_all (int fd, const void *buf, size_t len,
                          uint64_t off);

#endif /* LIVEBACKUP_LB_IO_H */
