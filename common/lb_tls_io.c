/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: the transport's TLS records on the socket: GnuTLS's pull
 * and push functions with a read-ahead and a write-combining buffer,
 * and sending and receiving data once the handshake (lb_tls.c) is done.
 * The contract is lb_conn.h's; lb_conn_impl.h has the state.
 */

#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>

#include "lb_conn_impl.h"
#include "lb_err.h"
#include "lb_sock.h"

/* The read-ahead and write-combining buffers: a stream of records then
 * costs about one syscall per this many bytes instead of two recvs and
 * one send per 16 KiB record (strace, 512 MiB: 105k syscalls -> 7.6k).
 * The CPU time hardly changed on the 2-core test machine, where AES-GCM
 * dominates (~1.1 s/GiB for both ends, against ~0.3 s/GiB in plain
 * mode); fewer wakeups still matter to a server with many clients.
 */
#define LB_TLS_IOBUF (256 * 1024)

/* The connection this thread is sending on, if inside lb_tls_io_sendv:
 * its pushes gather in wbuf.  Thread-local, so that a push from another
 * thread (GnuTLS does not push while receiving, but if it ever did) goes
 * straight out instead of racing on wbuf.
 */
static __thread struct lb_conn *lb_tls_io_batching;

/* ---- GnuTLS transport: our own pull and push on the fd ------------------ */

static ssize_t
lb_tls_io_pull (gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
  struct lb_conn *c = ptr;
  struct lb_tls *t = &c->tls;
  ssize_t r;

  if (t->rpos == t->rlen) {
    do
      r = recv (c->fd, t->rbuf, LB_TLS_IOBUF,
                c->pull_dontwait ? MSG_DONTWAIT : 0);
    while (r == -1 && errno == EINTR && !c->pull_dontwait);
    if (r <= 0) {
      if (r == -1)
        gnutls_transport_set_errno (t->session, errno);
      return r;
    }
    t->rpos = 0;
    t->rlen = r;
  }
  if (len > t->rlen - t->rpos)
    len = t->rlen - t->rpos;
  memcpy (buf, t->rbuf + t->rpos, len);
  t->rpos += len;
  return len;
}

/* Write out the gathered records, within the send's bound.  0, or -1
 * with errno (also kept for the caller: GnuTLS reports only "push
 * error").
 */
static int
lb_tls_io_flush (struct lb_conn *c)
{
  struct lb_tls *t = &c->tls;

  if (lb_sock_write_full (c->fd, t->wbuf, t->wlen, t->send_deadline) == -1) {
    t->push_errno = errno;
    return -1;
  }
  t->wlen = 0;
  return 0;
}

static ssize_t
lb_tls_io_push (gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
  struct lb_conn *c = ptr;
  struct lb_tls *t = &c->tls;
  struct msghdr msg = {
    .msg_iov = (struct iovec *) iov, .msg_iovlen = iovcnt,
  };
  size_t total = 0;
  ssize_t r;
  int i;

  /* Inside a send of ours, gather: the caller flushes at its end. */
  if (lb_tls_io_batching == c) {
    for (i = 0; i < iovcnt; i++)
      total += iov[i].iov_len;
    if (total <= LB_TLS_IOBUF) {
      if (t->wlen + total > LB_TLS_IOBUF && lb_tls_io_flush (c) == -1) {
        gnutls_transport_set_errno (t->session, errno);
        return -1;
      }
      for (i = 0; i < iovcnt; i++) {
        memcpy (t->wbuf + t->wlen, iov[i].iov_base, iov[i].iov_len);
        t->wlen += iov[i].iov_len;
      }
      return total;
    }
    if (lb_tls_io_flush (c) == -1) {
      gnutls_transport_set_errno (t->session, errno);
      return -1;
    }
  }

  do
    r = sendmsg (c->fd, &msg,
                 MSG_NOSIGNAL | (t->push_dontwait ? MSG_DONTWAIT : 0));
  while (r == -1 && errno == EINTR && !t->push_dontwait);
  if (r == -1) {
    t->push_errno = errno;
    gnutls_transport_set_errno (t->session, errno);
  }
  return r;
}

/* GnuTLS calls this when it wants to wait for data itself; never let it
 * wait past our deadline.
 */
static int
lb_tls_io_pull_timeout (gnutls_transport_ptr_t ptr, unsigned ms)
{
  struct lb_conn *c = ptr;
  struct pollfd p = { .fd = c->fd, .events = POLLIN };
  int left = lb_sock_left (c->deadline);
  int wait = ms == GNUTLS_INDEFINITE_TIMEOUT ? -1
    : ms > INT32_MAX ? INT32_MAX : (int) ms;
  int r;

  if (c->tls.rpos < c->tls.rlen)
    return 1;
  if (left >= 0 && (wait < 0 || left < wait))
    wait = left;
  r = poll (&p, 1, wait);
  if (r == -1)
    gnutls_transport_set_errno (c->tls.session, errno);
  return r;
}

int
lb_tls_io_install (struct lb_conn *c, char *err, size_t errlen)
{
  struct lb_tls *t = &c->tls;

  t->rbuf = malloc (LB_TLS_IOBUF);
  t->wbuf = malloc (LB_TLS_IOBUF);
  if (t->rbuf == NULL || t->wbuf == NULL) {
    lb_errf (err, errlen, "out of memory");
    errno = ENOMEM;
    return -1;
  }
  gnutls_transport_set_ptr (t->session, c);
  gnutls_transport_set_pull_function (t->session, lb_tls_io_pull);
  gnutls_transport_set_pull_timeout_function (t->session,
                                              lb_tls_io_pull_timeout);
  gnutls_transport_set_vec_push_function (t->session, lb_tls_io_push);
  return 0;
}

/* ---- data --------------------------------------------------------------- */

/* Send LEN bytes as TLS records straight from BUF. */
static int
lb_tls_io_send (struct lb_conn *c, const uint8_t *buf, size_t len,
             int timeout_ms)
{
  struct lb_tls *t = &c->tls;
  ssize_t r;

  while (len > 0) {
    r = gnutls_record_send (t->session, buf, len);
    if (r > 0) {
      buf += r;
      len -= r;
      continue;
    }
    if (r == GNUTLS_E_AGAIN) {
      /* Non-blocking fd: wait, then repeat the same call, as GnuTLS
       * requires.
       */
      if (lb_sock_wait (c->fd, POLLOUT, t->send_deadline) == 0)
        continue;
      lb_conn_senderr (c, errno, timeout_ms);
      return -1;
    }
    if (r == GNUTLS_E_INTERRUPTED)
      continue;
    if (r == GNUTLS_E_PUSH_ERROR && t->push_errno == ETIMEDOUT)
      lb_conn_senderr (c, ETIMEDOUT, timeout_ms);
    else
      lb_conn_ioerr (c, true, r == GNUTLS_E_PUSH_ERROR ? ECONNRESET : EPROTO,
                     "TLS send: %s", gnutls_strerror ((int) r));
    return -1;
  }
  return 0;
}

/* Records as full as possible.  Pieces are gathered in the stage until
 * it holds a full record; whole records' worth of a piece goes straight
 * from the caller's buffer, sparing a copy of the payload.
 */
static int
lb_tls_io_records (struct lb_conn *c, const struct iovec *iov, int iovcnt,
                int timeout_ms)
{
  struct lb_tls *t = &c->tls;
  size_t fill = 0, n, k, rec;
  const uint8_t *p;
  int i;

  rec = gnutls_record_get_max_size (t->session);
  if (rec == 0 || rec > sizeof t->stage)
    rec = sizeof t->stage;
  for (i = 0; i < iovcnt; i++) {
    p = iov[i].iov_base;
    n = iov[i].iov_len;
    while (n > 0) {
      if (fill == 0 && n >= rec) {
        k = n - n % rec;
        if (lb_tls_io_send (c, p, k, timeout_ms) == -1)
          return -1;
      }
      else {
        k = rec - fill < n ? rec - fill : n;
        memcpy (t->stage + fill, p, k);
        fill += k;
        if (fill == rec) {
          if (lb_tls_io_send (c, t->stage, fill, timeout_ms) == -1)
            return -1;
          fill = 0;
        }
      }
      p += k;
      n -= k;
    }
  }
  if (fill && lb_tls_io_send (c, t->stage, fill, timeout_ms) == -1)
    return -1;
  return 0;
}

/* The records of one call gather in wbuf (see lb_tls_io_push) and go out
 * in a few large writes.
 */
int
lb_tls_io_sendv (struct lb_conn *c, const struct iovec *iov, int iovcnt,
              int timeout_ms)
{
  struct lb_tls *t = &c->tls;
  int r;

  t->send_deadline = lb_sock_deadline (timeout_ms);
  t->push_errno = 0;
  lb_tls_io_batching = c;
  r = lb_tls_io_records (c, iov, iovcnt, timeout_ms);
  lb_tls_io_batching = NULL;
  if (r == 0 && lb_tls_io_flush (c) == -1) {
    lb_conn_senderr (c, errno, timeout_ms);
    r = -1;
  }
  t->wlen = 0;
  t->send_deadline = 0;
  return r;
}

ssize_t
lb_tls_io_recv (struct lb_conn *c, void *buf, size_t len)
{
  struct lb_tls *t = &c->tls;
  ssize_t r;

  for (;;) {
    r = gnutls_record_recv (t->session, buf, len);
    if (r >= 0)
      return r;
    if (r == GNUTLS_E_AGAIN) {
      /* GnuTLS also says AGAIN after a post-handshake message (a session
       * ticket from a server that is not ours), whatever the fd's mode:
       * go on while our read-ahead holds bytes, or the fd blocks.
       */
      if (t->rpos < t->rlen)
        continue;
      if (!c->pull_dontwait && !(fcntl (c->fd, F_GETFL) & O_NONBLOCK))
        continue;
      return LB_CONN_AGAIN;
    }
    if (r == GNUTLS_E_INTERRUPTED)
      continue;
    if (r == GNUTLS_E_PREMATURE_TERMINATION) {
      lb_conn_ioerr (c, false, ECONNRESET, "the peer closed the connection "
                     "without TLS close_notify");
      return LB_CONN_ERROR;
    }
    if (r == GNUTLS_E_FATAL_ALERT_RECEIVED) {
      lb_conn_ioerr (c, false, ECONNRESET, "the peer sent TLS alert '%s'",
                     gnutls_alert_get_name (gnutls_alert_get (t->session)));
      return LB_CONN_ERROR;
    }
    if (!gnutls_error_is_fatal ((int) r))
      continue;
    lb_conn_ioerr (c, false, r == GNUTLS_E_PULL_ERROR ? ECONNRESET : EPROTO,
                   "TLS receive: %s", gnutls_strerror ((int) r));
    return LB_CONN_ERROR;
  }
}

bool
lb_tls_io_pending (struct lb_conn *c)
{
  return gnutls_record_check_pending (c->tls.session) > 0
    || c->tls.rpos < c->tls.rlen;
}

