/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: a connected socket, below any lb_conn.
 *
 * Deadlines, waiting for a socket with one, whole-length reads and
 * writes bounded by one, and the TCP options of lb's and lbd's
 * connections.  The transport (lb_conn.h) is built on these; lbd's NBD
 * code goes through lb_conn, even before STARTTLS (lb_conn_raw).
 *
 * A deadline is a point in time, monotonic milliseconds as lb_now_ms
 * (lb_time.h) gives; 0 means none.  A timeout is a number of
 * milliseconds from now; a negative one means none.  Functions that wait
 * take a deadline, so that several steps can share one bound.
 *
 * Nothing here raises SIGPIPE (sends use MSG_NOSIGNAL), and nothing
 * depends on the socket's O_NONBLOCK flag: without a deadline a call
 * blocks in the kernel (or in poll on a non-blocking socket), with one it
 * waits only in poll, which knows the deadline.
 */

#ifndef LIVEBACKUP_LB_SOCK_H
#define LIVEBACKUP_LB_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* The deadline TIMEOUT_MS from now; 0 (none) if TIMEOUT_MS < 0. */
extern int64_t lb_sock_deadline (int timeout_ms);

/* Milliseconds left before DEADLINE, as poll takes them: -1 if there is
 * no deadline, 0 if it has passed.
 */
extern int lb_sock_left (int64_t deadline);

/* Wait until FD is ready for EVENTS (POLLIN, POLLOUT) or DEADLINE
 * passes.  POLLERR and POLLHUP count as ready: the next recv or send
 * says what happened.  0, or -1 with errno (ETIMEDOUT when the deadline
 * passed first).
 */
extern int lb_sock_wait (int fd, short events, int64_t deadline);

/* Read exactly N bytes before DEADLINE.  0, or -1 with errno:
 * ECONNRESET at the end of the stream (even an orderly one: the bytes
 * were owed), ETIMEDOUT, or recv's.
 */
extern int lb_sock_read_full (int fd, void *buf, size_t n,
                              int64_t deadline);

/* Write the IOVCNT pieces whole, in order, before DEADLINE; the
 * caller's array is not changed (empty pieces are allowed).  0, or -1
 * with errno (ETIMEDOUT, or sendmsg's: EPIPE, ECONNRESET...).  After a
 * failure an unknown part was sent.
 */
extern int lb_sock_writev_full (int fd, const struct iovec *iov, int iovcnt,
                                int64_t deadline);

/* lb_sock_writev_full of one piece. */
extern int lb_sock_write_full (int fd, const void *buf, size_t n,
                               int64_t deadline);

/* TCP keepalive so that a dead peer is noticed within about 30 s even on
 * an idle connection (10 s idle, then 4 probes 5 s apart), and
 * TCP_USER_TIMEOUT 30 s so that unacknowledged sends fail as soon; and
 * TCP_NODELAY, since every small request waits for its reply.
 * 0, or -1 with errno.
 */
extern int lb_sock_set_keepalive (int fd);

#endif /* LIVEBACKUP_LB_SOCK_H */
