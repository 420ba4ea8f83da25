/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: the transport's connection object, and what every mode
 * shares: which handshake runs, send, receive, close.  The contract is
 * lb_conn.h's; the modes are in lb_plain.c and lb_tls.c.
 */

#include <config.h>

#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <poll.h>
#include <unistd.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>

#include "lb_conn_impl.h"
#include "lb_err.h"
#include "lb_sock.h"

bool
lb_conn_identity_bytes_ok (const uint8_t *p, size_t n)
{
  size_t i;

  if (n == 0 || n > LB_CONN_IDENTITY_MAX)
    return false;
  for (i = 0; i < n; i++)
    if (p[i] < 0x21 || p[i] > 0x7e)
      return false;
  return true;
}

bool
lb_conn_identity_ok (const char *name)
{
  return name != NULL
    && lb_conn_identity_bytes_ok ((const uint8_t *) name,
                                  strnlen (name, LB_CONN_IDENTITY_MAX + 1));
}

void
lb_conn_ioerr (struct lb_conn *c, bool send, int e, const char *fmt, ...)
{
  char *buf = send ? c->send_err : c->recv_err;
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (buf, sizeof c->recv_err, fmt, ap);
  va_end (ap);
  atomic_store (&c->last_err, buf);
  errno = e;
}

void
lb_conn_senderr (struct lb_conn *c, int e, int timeout_ms)
{
  if (e == ETIMEDOUT)
    lb_conn_ioerr (c, true, e, "send timed out after %d ms", timeout_ms);
  else
    lb_conn_ioerr (c, true, e, "send: %s", strerror (e));
}

static struct lb_conn *
lb_conn_new (int fd, char *err, size_t errlen)
{
  struct lb_conn *c = calloc (1, sizeof *c);

  if (c == NULL) {
    lb_errf (err, errlen, "out of memory");
    errno = ENOMEM;
    return NULL;
  }
  c->fd = fd;
  c->mode = LB_CONN_RAW;
  snprintf (c->desc, sizeof c->desc, "raw (not authenticated, not "
            "encrypted)");
  atomic_init (&c->last_err, "no error");
  return c;
}

/* Free C without closing its fd (the caller's after a failure). */
static void
lb_conn_free (struct lb_conn *c)
{
  int e = errno;

  if (c == NULL)
    return;
  lb_tls_free (c);
  /* The stage held plaintext. */
  gnutls_memset (c, 0, sizeof *c);
  free (c);
  errno = e;
}

/* ---- handshakes --------------------------------------------------------- */

struct lb_conn *
lb_conn_client (int fd, const char *identity, const struct lb_key *key,
                bool encrypt, int timeout_ms, char *err, size_t errlen)
{
  struct lb_conn *c;
  int r;

  if (!lb_conn_identity_ok (identity)) {
    lb_errf (err, errlen, "invalid client name (1..%d printable characters, "
             "no spaces)", LB_CONN_IDENTITY_MAX);
    errno = EINVAL;
    return NULL;
  }
  c = lb_conn_new (fd, err, errlen);
  if (c == NULL)
    return NULL;
  c->deadline = lb_sock_deadline (timeout_ms);
  if (encrypt)
    r = lb_tls_client (c, identity, key, timeout_ms, err, errlen);
  else
    r = lb_plain_client (c, identity, key, timeout_ms, err, errlen);
  if (r == -1) {
    lb_conn_free (c);
    return NULL;
  }
  c->mode = encrypt ? LB_CONN_TLS : LB_CONN_PLAIN;
  c->deadline = 0;
  return c;
}

/* Look at the peer's first bytes without taking them, within C's
 * deadline: how many (> 0), or -1 with ERR and errno.
 */
static ssize_t
lb_conn_peek (struct lb_conn *c, uint8_t *first, size_t size,
              int timeout_ms, char *err, size_t errlen)
{
  ssize_t n;

  for (;;) {
    n = recv (c->fd, first, size, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0)
      return n;
    if (n == 0) {
      lb_errf (err, errlen, "the peer closed the connection without a "
               "word");
      errno = ECONNRESET;
      return -1;
    }
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      lb_errf (err, errlen, "receiving: %s", strerror (errno));
      return -1;
    }
    if (lb_sock_wait (c->fd, POLLIN, c->deadline) == -1) {
      if (errno == ETIMEDOUT)
        lb_errf (err, errlen, "handshake timed out after %d ms (the peer "
                 "sent nothing)", timeout_ms);
      else
        lb_errf (err, errlen, "poll: %s", strerror (errno));
      return -1;
    }
  }
}

/* The server's handshake on the raw connection C, in the mode the first
 * byte tells.  0, or -1 with ERR and errno; the reports as lb_conn_server
 * says, on both.
 */
static int
lb_conn_server_handshake (struct lb_conn *c, lb_conn_lookup lookup,
                          void *opaque, int timeout_ms, void **client,
                          char *identity, size_t idlen, char *err,
                          size_t errlen)
{
  uint8_t first[8];
  char hex[3 * sizeof first + 1];
  size_t pos = 0;
  ssize_t n, i;
  int r;

  assert (c->mode == LB_CONN_RAW);
  c->lookup = lookup;
  c->opaque = opaque;
  c->deadline = lb_sock_deadline (timeout_ms);

  n = lb_conn_peek (c, first, sizeof first, timeout_ms, err, errlen);
  if (n == -1)
    r = -1;
  else if (first[0] == 0x16)            /* a TLS handshake record */
    r = lb_tls_server (c, timeout_ms, err, errlen);
  else if (first[0] == (uint8_t) LB_PLAIN_MAGIC[0])
    r = lb_plain_server (c, timeout_ms, err, errlen);
  else {
    /* Hex, so nothing the peer sends reaches a log as it is. */
    for (i = 0; i < n; i++)
      pos += snprintf (hex + pos, sizeof hex - pos, "%s%02x", i ? " " : "",
                       first[i]);
    lb_errf (err, errlen, "garbage from peer (first bytes %s): neither TLS "
             "nor plain mode", hex);
    errno = EPROTO;
    r = -1;
  }
  if (identity && idlen)
    snprintf (identity, idlen, "%s", c->identity);
  /* Also on failure, so that the caller can count refusals per client. */
  if (client)
    *client = c->client;
  c->deadline = 0;
  if (r == 0)
    c->mode = first[0] == 0x16 ? LB_CONN_TLS : LB_CONN_PLAIN;
  return r;
}

struct lb_conn *
lb_conn_server (int fd, lb_conn_lookup lookup, void *opaque, int timeout_ms,
                void **client, char *identity, size_t idlen, char *err,
                size_t errlen)
{
  struct lb_conn *c;

  if (identity && idlen)
    identity[0] = '\0';
  if (client)
    *client = NULL;
  c = lb_conn_new (fd, err, errlen);
  if (c == NULL)
    return NULL;
  if (lb_conn_server_handshake (c, lookup, opaque, timeout_ms, client,
                                identity, idlen, err, errlen) == -1) {
    lb_conn_free (c);
    return NULL;
  }
  return c;
}

struct lb_conn *
lb_conn_raw (int fd)
{
  return lb_conn_new (fd, NULL, 0);
}

int
lb_conn_server_starttls (struct lb_conn *c, lb_conn_lookup lookup,
                         void *opaque, int timeout_ms, void **client,
                         char *identity, size_t idlen, char *err,
                         size_t errlen)
{
  int e;

  assert (c->mode == LB_CONN_RAW);
  if (lb_conn_server_handshake (c, lookup, opaque, timeout_ms, client,
                                identity, idlen, err, errlen) == 0)
    return 0;
  /* Half a handshake went by: nothing can follow on this stream. */
  e = errno;
  lb_tls_free (c);
  c->mode = LB_CONN_FAILED;
  errno = e;
  return -1;
}

/* ---- data --------------------------------------------------------------- */

int
lb_conn_sendv (struct lb_conn *c, const struct iovec *iov, int iovcnt,
               int timeout_ms)
{
  assert (c->mode != LB_CONN_FAILED);
  if (c->mode == LB_CONN_TLS)
    return lb_tls_io_sendv (c, iov, iovcnt, timeout_ms);
  if (lb_sock_writev_full (c->fd, iov, iovcnt,
                           lb_sock_deadline (timeout_ms)) == -1) {
    lb_conn_senderr (c, errno, timeout_ms);
    return -1;
  }
  return 0;
}

int
lb_conn_send (struct lb_conn *c, const void *buf, size_t len, int timeout_ms)
{
  struct iovec v = { .iov_base = (void *) buf, .iov_len = len };

  return lb_conn_sendv (c, &v, 1, timeout_ms);
}

ssize_t
lb_conn_recv (struct lb_conn *c, void *buf, size_t len)
{
  ssize_t r;

  assert (c->mode != LB_CONN_FAILED);
  if (len == 0)
    return LB_CONN_END;
  if (c->mode == LB_CONN_TLS)
    return lb_tls_io_recv (c, buf, len);
  for (;;) {
    r = recv (c->fd, buf, len, c->pull_dontwait ? MSG_DONTWAIT : 0);
    if (r >= 0)
      return r;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return LB_CONN_AGAIN;
    lb_conn_ioerr (c, false, errno, "receive: %s", strerror (errno));
    return LB_CONN_ERROR;
  }
}

int
lb_conn_recv_all (struct lb_conn *c, void *buf, size_t len, int timeout_ms)
{
  int64_t deadline = lb_sock_deadline (timeout_ms);
  uint8_t *p = buf;
  ssize_t r;

  /* Never block inside recv: wait in poll, which knows the deadline. */
  c->pull_dontwait = true;
  while (len > 0) {
    r = lb_conn_recv (c, p, len);
    if (r > 0) {
      p += r;
      len -= r;
      continue;
    }
    if (r == LB_CONN_END) {
      lb_conn_ioerr (c, false, ECONNRESET, "the peer ended the stream "
                     "in the middle of a message");
      break;
    }
    if (r == LB_CONN_ERROR)
      break;
    assert (r == LB_CONN_AGAIN);
    if (lb_sock_wait (c->fd, POLLIN, deadline) == -1) {
      if (errno == ETIMEDOUT)
        lb_conn_ioerr (c, false, ETIMEDOUT, "receive timed out after %d ms",
                       timeout_ms);
      else
        lb_conn_ioerr (c, false, errno, "poll: %s", strerror (errno));
      break;
    }
  }
  c->pull_dontwait = false;
  return len == 0 ? 0 : -1;
}

void
lb_conn_drain (struct lb_conn *c, int timeout_ms)
{
  int64_t deadline = lb_sock_deadline (timeout_ms);
  uint8_t buf[4096];
  ssize_t r;

  c->pull_dontwait = true;
  for (;;) {
    r = lb_conn_recv (c, buf, sizeof buf);
    if (r > 0)
      continue;
    if (r != LB_CONN_AGAIN || lb_sock_wait (c->fd, POLLIN, deadline) == -1)
      break;
  }
  c->pull_dontwait = false;
  explicit_bzero (buf, sizeof buf);
}

bool
lb_conn_pending (struct lb_conn *c)
{
  return c->mode == LB_CONN_TLS && lb_tls_io_pending (c);
}

int
lb_conn_fd (const struct lb_conn *c)
{
  return c->fd;
}

bool
lb_conn_encrypted (const struct lb_conn *c)
{
  return c->mode == LB_CONN_TLS;
}

const char *
lb_conn_describe (const struct lb_conn *c)
{
  return c->desc;
}

const char *
lb_conn_error (const struct lb_conn *c)
{
  return atomic_load (&((struct lb_conn *) c)->last_err);
}

void
lb_conn_close (struct lb_conn *c)
{
  if (c == NULL)
    return;
  if (c->mode == LB_CONN_TLS)
    lb_tls_bye (c);
  close (c->fd);
  lb_conn_free (c);
}
