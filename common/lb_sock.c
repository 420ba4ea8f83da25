/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: a connected socket, below any lb_conn.  See lb_sock.h. */

#include <config.h>

#include <stdint.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "lb_sock.h"
#include "lb_time.h"

/* Pieces handed to one sendmsg: a copy of at most this many sits on the
 * stack (see lb_sock_writev_full).
 */
#define LB_SOCK_IOV 64

int64_t
lb_sock_deadline (int timeout_ms)
{
  /* +1: a deadline of 0 means none. */
  return timeout_ms < 0 ? 0 : (int64_t) lb_now_ms () + timeout_ms + 1;
}

int
lb_sock_left (int64_t deadline)
{
  int64_t left;

  if (deadline == 0)
    return -1;
  left = deadline - (int64_t) lb_now_ms ();
  if (left <= 0)
    return 0;
  return left > INT32_MAX ? INT32_MAX : (int) left;
}

int
lb_sock_wait (int fd, short events, int64_t deadline)
{
  struct pollfd p = { .fd = fd, .events = events };
  int r;

  for (;;) {
    r = poll (&p, 1, lb_sock_left (deadline));
    if (r > 0)
      return 0;
    if (r == 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    if (errno != EINTR)
      return -1;
  }
}

int
lb_sock_read_full (int fd, void *buf, size_t n, int64_t deadline)
{
  uint8_t *p = buf;
  ssize_t r;

  while (n > 0) {
    r = recv (fd, p, n, MSG_DONTWAIT);
    if (r > 0) {
      p += r;
      n -= r;
      continue;
    }
    if (r == 0) {
      errno = ECONNRESET;
      return -1;
    }
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return -1;
    if (lb_sock_wait (fd, POLLIN, deadline) == -1)
      return -1;
  }
  return 0;
}

int
lb_sock_writev_full (int fd, const struct iovec *iov, int iovcnt,
                     int64_t deadline)
{
  /* With a deadline, never block inside sendmsg: wait in poll. */
  const int flags = MSG_NOSIGNAL | (deadline ? MSG_DONTWAIT : 0);
  struct iovec v[LB_SOCK_IOV];
  struct msghdr msg = { .msg_iov = v };
  int next = 0, n, i;
  ssize_t r;

  while (next < iovcnt) {
    /* A copy of the next pieces, the empty ones left out: sendmsg
     * consumes them partly, and the caller's array must stay as it is.
     */
    for (n = 0; next < iovcnt && n < LB_SOCK_IOV; next++)
      if (iov[next].iov_len)
        v[n++] = iov[next];
    i = 0;
    while (i < n) {
      msg.msg_iov = v + i;
      msg.msg_iovlen = n - i;
      r = sendmsg (fd, &msg, flags);
      if (r == -1) {
        if (errno == EINTR)
          continue;
        if ((errno != EAGAIN && errno != EWOULDBLOCK)
            || lb_sock_wait (fd, POLLOUT, deadline) == -1)
          return -1;
        continue;
      }
      while (i < n && (size_t) r >= v[i].iov_len) {
        r -= v[i].iov_len;
        i++;
      }
      if (i < n) {
        v[i].iov_base = (uint8_t *) v[i].iov_base + r;
        v[i].iov_len -= r;
      }
    }
  }
  return 0;
}

int
lb_sock_write_full (int fd, const void *buf, size_t n, int64_t deadline)
{
  struct iovec v = { .iov_base = (void *) buf, .iov_len = n };

  return lb_sock_writev_full (fd, &v, 1, deadline);
}

int
lb_sock_set_keepalive (int fd)
{
  int on = 1, idle = 10, intvl = 5, cnt = 4;
  unsigned user_timeout = 30000;

  if (setsockopt (fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) == -1
      || setsockopt (fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) == -1
      || setsockopt (fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
                     sizeof intvl) == -1
      || setsockopt (fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) == -1
      || setsockopt (fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout,
                     sizeof user_timeout) == -1
      /* Small requests (SYNC, HASH_REQ) follow large messages and wait
       * for a reply: Nagle would hold each one for a delayed ACK.
       */
      || setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == -1)
    return -1;
  return 0;
}
