/* livebackup: the transport (TLS 1.3 PSK or authenticated plain TCP).
 * See lb_conn.h for the contract and the plain mode's wire format.
 */

#include <config.h>

#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "lb_conn.h"
#include "lb_time.h"

#define LB_CONN_NONCE 32
#define LB_CONN_MAC 32
/* TLS 1.3 never carries more plaintext than this in one record. */
#define LB_CONN_RECORD 16384
/* TLS read-ahead and write-combining buffers: a stream of records then
 * costs about one syscall per this many bytes instead of two recvs and
 * one send per 16 KiB record (strace, 512 MiB: 105k syscalls -> 7.6k).
 * The CPU time hardly changed on the 2-core test machine, where AES-GCM
 * dominates (~1.1 s/GiB for both ends, against ~0.3 s/GiB in plain
 * mode); fewer wakeups still matter to a server with many clients.
 */
#define LB_CONN_IOBUF (256 * 1024)

static const char lb_conn_magic[8] = "LBPLAIN1";
static const char lb_conn_kdf_label[] = "livebackup plain-mode key v1";
static const char lb_conn_client_label[] = "livebackup plain v1 client";
static const char lb_conn_server_label[] = "livebackup plain v1 server";

/* The connection this thread is sending on, if inside lb_conn_sendv:
 * its pushes gather in wbuf.  Thread-local, so that a push from another
 * thread (GnuTLS does not push while receiving, but if it ever did) goes
 * straight out instead of racing on wbuf.
 */
static __thread struct lb_conn *lb_conn_batching;

struct lb_conn {
  int fd;
  bool tls;
  gnutls_session_t session;
  gnutls_psk_client_credentials_t ccred;
  gnutls_psk_server_credentials_t scred;

  /* Our pull and push functions use MSG_DONTWAIT while these are set, so
   * a handshake or a bounded receive never blocks outside our poll.  One
   * flag per direction, each touched only by the thread doing that
   * direction.
   */
  bool pull_dontwait, push_dontwait;
  int64_t deadline;             /* ms, monotonic; 0 = none */

  /* TLS: bytes read ahead from the socket, not yet taken by GnuTLS
   * (receiving thread only).
   */
  uint8_t *rbuf;
  size_t rpos, rlen;
  /* TLS: records gathered while the sending thread is inside a send of
   * ours (see lb_conn_batching), written out when full and at its end.
   */
  uint8_t *wbuf;
  size_t wlen;

  /* Client handshake: what lb_conn_client_cb hands GnuTLS. */
  const char *cidentity;
  const struct lb_key *ckey;

  /* Server handshake, filled by the PSK callback. */
  lb_conn_lookup lookup;
  void *opaque;
  void *client;
  char identity[LB_CONN_IDENTITY_MAX + 1];
  bool refused;                 /* the callback refused: alert chosen */
  bool key_given;               /* the callback gave a key */
  gnutls_alert_description_t refusal_alert;
  char refusal[LB_CONN_IDENTITY_MAX + 200];

  char desc[128];
  char recv_err[200], send_err[200];
  _Atomic (const char *) last_err;

  /* lb_conn_sendv gathers small pieces into one record here. */
  uint8_t stage[LB_CONN_RECORD];
};

static int64_t
lb_conn_now_ms (void)
{
  return (int64_t) lb_now_ms ();
}

/* Milliseconds left before DEADLINE for poll: -1 if none, 0 if passed. */
static int
lb_conn_left (int64_t deadline)
{
  int64_t left;

  if (deadline == 0)
    return -1;
  left = deadline - lb_conn_now_ms ();
  if (left <= 0)
    return 0;
  return left > INT32_MAX ? INT32_MAX : (int) left;
}

static int64_t
lb_conn_deadline (int timeout_ms)
{
  /* +1: a deadline of 0 means none. */
  return timeout_ms < 0 ? 0 : lb_conn_now_ms () + timeout_ms + 1;
}

/* Wait until FD is ready for EVENTS or the deadline passes.  1 ready,
 * 0 timed out (errno ETIMEDOUT), -1 error.  POLLERR/POLLHUP count as
 * ready: the next recv or send reports what happened.
 */
static int
lb_conn_wait (int fd, short events, int64_t deadline)
{
  struct pollfd p = { .fd = fd, .events = events };
  int r;

  for (;;) {
    r = poll (&p, 1, lb_conn_left (deadline));
    if (r > 0)
      return 1;
    if (r == 0) {
      errno = ETIMEDOUT;
      return 0;
    }
    if (errno != EINTR)
      return -1;
  }
}

static bool
lb_conn_equal (const uint8_t *a, const uint8_t *b, size_t n)
{
  /* Constant time: how many bytes match must not show in the timing. */
  volatile uint8_t d = 0;
  size_t i;

  for (i = 0; i < n; i++)
    d |= a[i] ^ b[i];
  return d == 0;
}

bool
lb_conn_identity_ok (const char *name)
{
  size_t i;

  if (name == NULL || name[0] == '\0')
    return false;
  for (i = 0; name[i]; i++)
    if (i >= LB_CONN_IDENTITY_MAX || name[i] < 0x21 || name[i] > 0x7e)
      return false;
  return true;
}

/* The same check on bytes from the peer, which may hold NULs. */
static bool
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

static void lb_conn_seterr (char *err, size_t errlen, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

static void
lb_conn_seterr (char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;

  if (err == NULL || errlen == 0)
    return;
  va_start (ap, fmt);
  vsnprintf (err, errlen, fmt, ap);
  va_end (ap);
}

/* Record why a send (SEND) or receive failed, for lb_conn_error. */
static void lb_conn_ioerr (struct lb_conn *c, bool send, int e,
                           const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));

static void
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

static struct lb_conn *
lb_conn_new (int fd, bool tls)
{
  struct lb_conn *c = calloc (1, sizeof *c);

  if (c == NULL)
    return NULL;
  c->fd = fd;
  c->tls = tls;
  atomic_init (&c->last_err, "no error");
  return c;
}

/* Free C without closing its fd (the caller's after a failure). */
static void
lb_conn_free (struct lb_conn *c)
{
  if (c == NULL)
    return;
  if (c->session)
    gnutls_deinit (c->session);
  /* The credentials hold no key: it went through the callbacks. */
  if (c->ccred)
    gnutls_psk_free_client_credentials (c->ccred);
  if (c->scred)
    gnutls_psk_free_server_credentials (c->scred);
  free (c->rbuf);
  free (c->wbuf);
  gnutls_memset (c, 0, sizeof *c);
  free (c);
}

/* ---- GnuTLS transport: our own pull and push on the fd ------------------ */

static ssize_t
lb_conn_pull (gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
  struct lb_conn *c = ptr;
  ssize_t r;

  if (c->rpos == c->rlen) {
    do
      r = recv (c->fd, c->rbuf, LB_CONN_IOBUF,
                c->pull_dontwait ? MSG_DONTWAIT : 0);
    while (r == -1 && errno == EINTR && !c->pull_dontwait);
    if (r <= 0) {
      if (r == -1)
        gnutls_transport_set_errno (c->session, errno);
      return r;
    }
    c->rpos = 0;
    c->rlen = r;
  }
  if (len > c->rlen - c->rpos)
    len = c->rlen - c->rpos;
  memcpy (buf, c->rbuf + c->rpos, len);
  c->rpos += len;
  return len;
}

/* Write out the gathered records, waiting for room as needed.  0, or
 * -1 with errno.
 */
static int
lb_conn_flush (struct lb_conn *c)
{
  size_t done = 0;
  ssize_t r;

  while (done < c->wlen) {
    r = send (c->fd, c->wbuf + done, c->wlen - done,
              MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r > 0) {
      done += r;
      continue;
    }
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
      return -1;
    if (lb_conn_wait (c->fd, POLLOUT, 0) == -1)
      return -1;
  }
  c->wlen = 0;
  return 0;
}

static ssize_t
lb_conn_push (gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
  struct lb_conn *c = ptr;
  struct msghdr msg = {
    .msg_iov = (struct iovec *) iov, .msg_iovlen = iovcnt,
  };
  size_t total = 0;
  ssize_t r;
  int i;

  /* Inside a send of ours, gather: the caller flushes at its end. */
  if (lb_conn_batching == c) {
    for (i = 0; i < iovcnt; i++)
      total += iov[i].iov_len;
    if (total <= LB_CONN_IOBUF) {
      if (c->wlen + total > LB_CONN_IOBUF && lb_conn_flush (c) == -1) {
        gnutls_transport_set_errno (c->session, errno);
        return -1;
      }
      for (i = 0; i < iovcnt; i++) {
        memcpy (c->wbuf + c->wlen, iov[i].iov_base, iov[i].iov_len);
        c->wlen += iov[i].iov_len;
      }
      return total;
    }
    if (lb_conn_flush (c) == -1) {
      gnutls_transport_set_errno (c->session, errno);
      return -1;
    }
  }

  do
    r = sendmsg (c->fd, &msg,
                 MSG_NOSIGNAL | (c->push_dontwait ? MSG_DONTWAIT : 0));
  while (r == -1 && errno == EINTR && !c->push_dontwait);
  if (r == -1)
    gnutls_transport_set_errno (c->session, errno);
  return r;
}

/* GnuTLS calls this when it wants to wait for data itself; never let it
 * wait past our deadline.
 */
static int
lb_conn_pull_timeout (gnutls_transport_ptr_t ptr, unsigned ms)
{
  struct lb_conn *c = ptr;
  struct pollfd p = { .fd = c->fd, .events = POLLIN };
  int left = lb_conn_left (c->deadline);
  int wait = ms == GNUTLS_INDEFINITE_TIMEOUT ? -1
    : ms > INT32_MAX ? INT32_MAX : (int) ms;
  int r;

  if (c->rpos < c->rlen)
    return 1;
  if (left >= 0 && (wait < 0 || left < wait))
    wait = left;
  r = poll (&p, 1, wait);
  if (r == -1)
    gnutls_transport_set_errno (c->session, errno);
  return r;
}

static int
lb_conn_tls_setup (struct lb_conn *c, unsigned flags, char *err,
                   size_t errlen)
{
  const char *where;
  int r;

  c->rbuf = malloc (LB_CONN_IOBUF);
  c->wbuf = malloc (LB_CONN_IOBUF);
  if (c->rbuf == NULL || c->wbuf == NULL) {
    lb_conn_seterr (err, errlen, "out of memory");
    errno = ENOMEM;
    return -1;
  }
  r = gnutls_init (&c->session, flags | GNUTLS_NO_TICKETS
                   | GNUTLS_NO_SIGNAL);
  if (r < 0) {
    c->session = NULL;
    lb_conn_seterr (err, errlen, "TLS setup failed: %s",
                    gnutls_strerror (r));
    errno = ENOMEM;
    return -1;
  }
  r = gnutls_priority_set_direct (c->session, LB_CONN_PRIORITY, &where);
  if (r < 0) {
    lb_conn_seterr (err, errlen, "TLS priority string rejected at '%s': %s",
                    where, gnutls_strerror (r));
    errno = EINVAL;
    return -1;
  }
  gnutls_session_set_ptr (c->session, c);
  gnutls_transport_set_ptr (c->session, c);
  gnutls_transport_set_pull_function (c->session, lb_conn_pull);
  gnutls_transport_set_pull_timeout_function (c->session,
                                              lb_conn_pull_timeout);
  gnutls_transport_set_vec_push_function (c->session, lb_conn_push);
  return 0;
}

/* Run the handshake to its end within C's deadline.  GNUTLS error
 * codes; GNUTLS_E_TIMEDOUT when the deadline passed.
 */
static int
lb_conn_tls_handshake (struct lb_conn *c)
{
  int r, w;

  c->pull_dontwait = c->push_dontwait = true;
  for (;;) {
    r = gnutls_handshake (c->session);
    if (r == 0)
      break;
    if (lb_conn_left (c->deadline) == 0) {
      r = GNUTLS_E_TIMEDOUT;
      break;
    }
    if (r == GNUTLS_E_AGAIN) {
      /* Bytes in our read-ahead are invisible to poll. */
      if (c->rpos < c->rlen)
        continue;
      w = lb_conn_wait (c->fd, gnutls_record_get_direction (c->session)
                        ? POLLOUT : POLLIN, c->deadline);
      if (w == 0) {
        r = GNUTLS_E_TIMEDOUT;
        break;
      }
      if (w < 0) {
        r = GNUTLS_E_PULL_ERROR;
        break;
      }
      continue;
    }
    /* Warning alerts and interrupts: go on, still under the deadline. */
    if (gnutls_error_is_fatal (r))
      break;
  }
  c->pull_dontwait = c->push_dontwait = false;
  return r;
}

/* Best effort, never blocking: tell the peer why we give up. */
static void
lb_conn_tls_alert (struct lb_conn *c, gnutls_alert_description_t alert)
{
  c->push_dontwait = true;
  gnutls_alert_send (c->session, GNUTLS_AL_FATAL, alert);
  c->push_dontwait = false;
}

/* After a handshake succeeded: is it what we asked for?  GnuTLS would
 * not negotiate anything else with our priorities; this check keeps it
 * so if the priorities or GnuTLS's defaults ever change.
 */
static const char *
lb_conn_tls_check (struct lb_conn *c)
{
  gnutls_kx_algorithm_t kx = gnutls_kx_get (c->session);
  const char *group = gnutls_group_get_name (gnutls_group_get (c->session));

  if (gnutls_protocol_get_version (c->session) != GNUTLS_TLS1_3)
    return "not TLS 1.3";
  if (gnutls_auth_get_type (c->session) != GNUTLS_CRD_PSK)
    return "not authenticated by the pre-shared key";
  if (kx != GNUTLS_KX_ECDHE_PSK && kx != GNUTLS_KX_DHE_PSK)
    return "no ephemeral key exchange (psk_ke without DHE)";
  snprintf (c->desc, sizeof c->desc, "TLS1.3 %s %s %s",
            gnutls_kx_get_name (kx), group ? group : "?",
            gnutls_cipher_get_name (gnutls_cipher_get (c->session)));
  return NULL;
}

/* Why a client's handshake failed, as a hint to the user. */
static void
lb_conn_tls_client_err (struct lb_conn *c, int r, const char *identity,
                        int timeout_ms, char *err, size_t errlen)
{
  gnutls_alert_description_t a;

  if (r == GNUTLS_E_TIMEDOUT) {
    lb_conn_seterr (err, errlen, "TLS handshake timed out after %d ms",
                    timeout_ms);
    errno = ETIMEDOUT;
    return;
  }
  if (r == GNUTLS_E_FATAL_ALERT_RECEIVED) {
    a = gnutls_alert_get (c->session);
    errno = EACCES;
    switch (a) {
    case GNUTLS_A_UNKNOWN_PSK_IDENTITY:
      lb_conn_seterr (err, errlen,
                      "server refused: unknown client name '%s'", identity);
      return;
    case GNUTLS_A_ACCESS_DENIED:
      lb_conn_seterr (err, errlen, "server refused: mode mismatch: "
                      "the server expects plain mode for this client");
      return;
    case GNUTLS_A_DECRYPT_ERROR:
      /* Only probably: a server may answer an unknown name so too, that
       * a peer without a key cannot tell which names exist (lbd does).
       */
    case GNUTLS_A_BAD_RECORD_MAC:
    case GNUTLS_A_ILLEGAL_PARAMETER:
      lb_conn_seterr (err, errlen, "TLS handshake failed: "
                      "server sent alert '%s' (wrong key?)",
                      gnutls_alert_get_name (a));
      return;
    default:
      lb_conn_seterr (err, errlen, "TLS handshake failed: "
                      "server sent alert '%s'", gnutls_alert_get_name (a));
      errno = EPROTO;
      return;
    }
  }
  if (r == GNUTLS_E_PREMATURE_TERMINATION || r == GNUTLS_E_PULL_ERROR
      || r == GNUTLS_E_PUSH_ERROR) {
    lb_conn_seterr (err, errlen, "TLS handshake failed: the server closed "
                    "the connection (%s)", gnutls_strerror (r));
    errno = ECONNRESET;
    return;
  }
  lb_conn_seterr (err, errlen, "TLS handshake failed: %s%s",
                  gnutls_strerror (r),
                  r == GNUTLS_E_DECRYPTION_FAILED ? " (wrong key?)" : "");
  errno = r == GNUTLS_E_DECRYPTION_FAILED ? EACCES : EPROTO;
}

/* ---- plain mode: handshake I/O on the raw fd ------------------------- */

int
lb_conn_read_full (int fd, void *buf, size_t n, int64_t deadline)
{
  uint8_t *p = buf;
  ssize_t r;
  int w;

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
    w = lb_conn_wait (fd, POLLIN, deadline);
    if (w <= 0)
      return -1;
  }
  return 0;
}

static int
lb_conn_write_full (int fd, const void *buf, size_t n, int64_t deadline)
{
  const uint8_t *p = buf;
  ssize_t r;
  int w;

  while (n > 0) {
    r = send (fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r > 0) {
      p += r;
      n -= r;
      continue;
    }
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
      return -1;
    w = lb_conn_wait (fd, POLLOUT, deadline);
    if (w <= 0)
      return -1;
  }
  return 0;
}

/* The MAC of one side: HMAC (K, LABEL | cnonce | snonce | idlen | id)
 * where K = HMAC (psk, kdf label).
 */
static int
lb_conn_plain_mac (const struct lb_key *key, const char *label,
                   const uint8_t *cnonce, const uint8_t *snonce,
                   const char *identity, uint8_t *out)
{
  uint8_t k[32];
  uint8_t idlen = strlen (identity);
  gnutls_hmac_hd_t h;
  int r;

  r = gnutls_hmac_fast (GNUTLS_MAC_SHA256, key->psk, sizeof key->psk,
                        lb_conn_kdf_label, strlen (lb_conn_kdf_label), k);
  if (r < 0)
    return -1;
  r = gnutls_hmac_init (&h, GNUTLS_MAC_SHA256, k, sizeof k);
  gnutls_memset (k, 0, sizeof k);
  if (r < 0)
    return -1;
  if (gnutls_hmac (h, label, strlen (label)) < 0
      || gnutls_hmac (h, cnonce, LB_CONN_NONCE) < 0
      || gnutls_hmac (h, snonce, LB_CONN_NONCE) < 0
      || gnutls_hmac (h, &idlen, 1) < 0
      || gnutls_hmac (h, identity, idlen) < 0) {
    gnutls_hmac_deinit (h, NULL);
    return -1;
  }
  gnutls_hmac_deinit (h, out);
  return 0;
}

/* Describe a failed plain-mode read or write for ERR. */
static void
lb_conn_plain_ioerr (const char *who, const char *step, int timeout_ms,
                     char *err, size_t errlen)
{
  int e = errno;

  if (e == ETIMEDOUT)
    lb_conn_seterr (err, errlen, "%shandshake timed out after %d ms "
                    "(waiting for %s)", who, timeout_ms, step);
  else if (e == ECONNRESET || e == EPIPE)
    lb_conn_seterr (err, errlen, "%sthe peer closed the connection during "
                    "the handshake (at %s)", who, step);
  else
    lb_conn_seterr (err, errlen, "%shandshake failed at %s: %s", who, step,
                    strerror (e));
  errno = e == EPIPE ? ECONNRESET : e;
}

/* Read a refusal's reason (after the 0x01) and make it printable. */
static void
lb_conn_plain_reason (int fd, int64_t deadline, char *reason, size_t size)
{
  uint8_t len;
  char buf[256];
  size_t i;

  snprintf (reason, size, "(no reason given)");
  if (lb_conn_read_full (fd, &len, 1, deadline) == -1
      || lb_conn_read_full (fd, buf, len, deadline) == -1)
    return;
  for (i = 0; i < len; i++)
    if (buf[i] < 0x20 || buf[i] > 0x7e)
      buf[i] = '?';
  buf[len] = '\0';
  snprintf (reason, size, "%s", buf);
}

static int
lb_conn_plain_refuse (int fd, int64_t deadline, const char *reason)
{
  uint8_t msg[2 + 255];
  size_t n = strlen (reason);

  if (n > 255)
    n = 255;
  msg[0] = 1;
  msg[1] = n;
  memcpy (msg + 2, reason, n);
  return lb_conn_write_full (fd, msg, 2 + n, deadline);
}

static struct lb_conn *
lb_conn_plain_client (int fd, const char *identity, const struct lb_key *key,
                      int timeout_ms, char *err, size_t errlen)
{
  int64_t deadline = lb_conn_deadline (timeout_ms);
  size_t idlen = strlen (identity);
  uint8_t hello[sizeof lb_conn_magic + 1 + LB_CONN_IDENTITY_MAX
                + LB_CONN_NONCE];
  uint8_t cnonce[LB_CONN_NONCE], snonce[LB_CONN_NONCE];
  uint8_t mac[LB_CONN_MAC], want[LB_CONN_MAC], status;
  char reason[256];
  struct lb_conn *c;

  if (gnutls_rnd (GNUTLS_RND_RANDOM, cnonce, sizeof cnonce) < 0) {
    lb_conn_seterr (err, errlen, "no random numbers");
    errno = EIO;
    return NULL;
  }
  memcpy (hello, lb_conn_magic, sizeof lb_conn_magic);
  hello[sizeof lb_conn_magic] = idlen;
  memcpy (hello + sizeof lb_conn_magic + 1, identity, idlen);
  memcpy (hello + sizeof lb_conn_magic + 1 + idlen, cnonce, sizeof cnonce);
  if (lb_conn_write_full (fd, hello, sizeof lb_conn_magic + 1 + idlen
                          + sizeof cnonce, deadline) == -1) {
    lb_conn_plain_ioerr ("", "sending hello", timeout_ms, err, errlen);
    return NULL;
  }

  if (lb_conn_read_full (fd, &status, 1, deadline) == -1) {
    lb_conn_plain_ioerr ("", "the server's answer", timeout_ms, err, errlen);
    return NULL;
  }
  if (status == 1) {
    lb_conn_plain_reason (fd, deadline, reason, sizeof reason);
    lb_conn_seterr (err, errlen, "server refused: %s", reason);
    errno = EACCES;
    return NULL;
  }
  if (status != 0) {
    /* 0x15 is a TLS alert: a server that speaks only TLS. */
    lb_conn_seterr (err, errlen, "unexpected answer from the server (first "
                    "byte 0x%02x): not an lbd in plain mode?", status);
    errno = EPROTO;
    return NULL;
  }
  if (lb_conn_read_full (fd, snonce, sizeof snonce, deadline) == -1) {
    lb_conn_plain_ioerr ("", "the server's nonce", timeout_ms, err, errlen);
    return NULL;
  }

  if (lb_conn_plain_mac (key, lb_conn_client_label, cnonce, snonce,
                         identity, mac) == -1
      || lb_conn_plain_mac (key, lb_conn_server_label, cnonce, snonce,
                            identity, want) == -1) {
    lb_conn_seterr (err, errlen, "HMAC failed");
    errno = EIO;
    return NULL;
  }
  if (lb_conn_write_full (fd, mac, sizeof mac, deadline) == -1) {
    lb_conn_plain_ioerr ("", "sending our proof", timeout_ms, err, errlen);
    return NULL;
  }

  if (lb_conn_read_full (fd, &status, 1, deadline) == -1) {
    lb_conn_plain_ioerr ("", "the server's verdict", timeout_ms, err,
                         errlen);
    return NULL;
  }
  if (status == 1) {
    lb_conn_plain_reason (fd, deadline, reason, sizeof reason);
    lb_conn_seterr (err, errlen, "server refused: %s", reason);
    errno = EACCES;
    return NULL;
  }
  if (status != 0) {
    lb_conn_seterr (err, errlen, "unexpected verdict from the server "
                    "(0x%02x)", status);
    errno = EPROTO;
    return NULL;
  }
  if (lb_conn_read_full (fd, mac, sizeof mac, deadline) == -1) {
    lb_conn_plain_ioerr ("", "the server's proof", timeout_ms, err, errlen);
    return NULL;
  }
  if (!lb_conn_equal (mac, want, sizeof mac)) {
    status = 1;
    lb_conn_write_full (fd, &status, 1, deadline);
    lb_conn_seterr (err, errlen, "the server's proof of the key is wrong "
                    "(wrong key, or not our server)");
    errno = EACCES;
    return NULL;
  }
  status = 0;
  if (lb_conn_write_full (fd, &status, 1, deadline) == -1) {
    lb_conn_plain_ioerr ("", "confirming", timeout_ms, err, errlen);
    return NULL;
  }

  c = lb_conn_new (fd, false);
  if (c == NULL) {
    lb_conn_seterr (err, errlen, "out of memory");
    errno = ENOMEM;
    return NULL;
  }
  snprintf (c->desc, sizeof c->desc, "plain (authenticated, not encrypted)");
  return c;
}

static struct lb_conn *
lb_conn_plain_server (struct lb_conn *c, int timeout_ms, char *err,
                      size_t errlen)
{
  int fd = c->fd;
  uint8_t magic[sizeof lb_conn_magic], idlen, status;
  uint8_t cnonce[LB_CONN_NONCE], snonce[1 + LB_CONN_NONCE];
  uint8_t mac[LB_CONN_MAC], want[1 + LB_CONN_MAC];
  struct lb_key key;
  bool encrypt = false;
  char who[LB_CONN_IDENTITY_MAX + 16];

  if (lb_conn_read_full (fd, magic, sizeof magic, c->deadline) == -1) {
    lb_conn_plain_ioerr ("", "the hello", timeout_ms, err, errlen);
    return NULL;
  }
  if (memcmp (magic, lb_conn_magic, sizeof magic) != 0) {
    lb_conn_seterr (err, errlen, "garbage from peer (starts with 'L' but "
                    "is not plain mode's hello)");
    errno = EPROTO;
    return NULL;
  }
  if (lb_conn_read_full (fd, &idlen, 1, c->deadline) == -1) {
    lb_conn_plain_ioerr ("", "the hello", timeout_ms, err, errlen);
    return NULL;
  }
  if (idlen == 0) {
    lb_conn_plain_refuse (fd, c->deadline, "invalid client name");
    lb_conn_seterr (err, errlen, "invalid client name from peer (empty)");
    errno = EPROTO;
    return NULL;
  }
  if (lb_conn_read_full (fd, c->identity, idlen, c->deadline) == -1
      || lb_conn_read_full (fd, cnonce, sizeof cnonce, c->deadline) == -1) {
    lb_conn_plain_ioerr ("", "the hello", timeout_ms, err, errlen);
    c->identity[0] = '\0';
    return NULL;
  }
  if (!lb_conn_identity_bytes_ok ((uint8_t *) c->identity, idlen)) {
    c->identity[0] = '\0';
    lb_conn_plain_refuse (fd, c->deadline, "invalid client name");
    lb_conn_seterr (err, errlen, "invalid client name from peer (not 1..255 "
                    "printable characters)");
    errno = EPROTO;
    return NULL;
  }
  c->identity[idlen] = '\0';
  snprintf (who, sizeof who, "client '%s': ", c->identity);

  if (c->lookup (c->opaque, c->identity, &key, &encrypt, &c->client) == -1) {
    gnutls_memset (&key, 0, sizeof key);
    c->client = NULL;
    lb_conn_plain_refuse (fd, c->deadline, "unknown client name");
    lb_conn_seterr (err, errlen, "unknown client name '%s'", c->identity);
    errno = EACCES;
    return NULL;
  }
  if (encrypt) {
    gnutls_memset (&key, 0, sizeof key);
    lb_conn_plain_refuse (fd, c->deadline,
                          "mode mismatch: this client must use TLS");
    lb_conn_seterr (err, errlen, "%smode mismatch: it connected in plain "
                    "mode but its line requires TLS", who);
    errno = EACCES;
    return NULL;
  }

  snonce[0] = 0;
  if (gnutls_rnd (GNUTLS_RND_RANDOM, snonce + 1, LB_CONN_NONCE) < 0) {
    gnutls_memset (&key, 0, sizeof key);
    lb_conn_seterr (err, errlen, "no random numbers");
    errno = EIO;
    return NULL;
  }
  if (lb_conn_write_full (fd, snonce, sizeof snonce, c->deadline) == -1
      || lb_conn_read_full (fd, mac, sizeof mac, c->deadline) == -1) {
    gnutls_memset (&key, 0, sizeof key);
    lb_conn_plain_ioerr (who, "the client's proof", timeout_ms, err, errlen);
    return NULL;
  }
  if (lb_conn_plain_mac (&key, lb_conn_client_label, cnonce, snonce + 1,
                         c->identity, want + 1) == -1) {
    gnutls_memset (&key, 0, sizeof key);
    lb_conn_seterr (err, errlen, "HMAC failed");
    errno = EIO;
    return NULL;
  }
  if (!lb_conn_equal (mac, want + 1, sizeof mac)) {
    gnutls_memset (&key, 0, sizeof key);
    lb_conn_plain_refuse (fd, c->deadline, "wrong key");
    lb_conn_seterr (err, errlen, "%swrong key (its proof did not verify)",
                    who);
    errno = EACCES;
    return NULL;
  }
  want[0] = 0;
  if (lb_conn_plain_mac (&key, lb_conn_server_label, cnonce, snonce + 1,
                         c->identity, want + 1) == -1) {
    gnutls_memset (&key, 0, sizeof key);
    lb_conn_seterr (err, errlen, "HMAC failed");
    errno = EIO;
    return NULL;
  }
  gnutls_memset (&key, 0, sizeof key);
  if (lb_conn_write_full (fd, want, sizeof want, c->deadline) == -1
      || lb_conn_read_full (fd, &status, 1, c->deadline) == -1) {
    lb_conn_plain_ioerr (who, "the client's confirmation", timeout_ms, err,
                         errlen);
    return NULL;
  }
  if (status != 0) {
    lb_conn_seterr (err, errlen, "%sit rejected our proof of the key "
                    "(wrong key?)", who);
    errno = EACCES;
    return NULL;
  }
  snprintf (c->desc, sizeof c->desc, "plain (authenticated, not encrypted)");
  return c;
}

/* ---- handshakes --------------------------------------------------------- */

/* GnuTLS asks the client for its identity and key (both gnutls_malloc'd,
 * GnuTLS frees them).
 */
static int
lb_conn_client_cb (gnutls_session_t session, gnutls_datum_t *username,
                   gnutls_datum_t *key)
{
  struct lb_conn *c = gnutls_session_get_ptr (session);
  size_t n;

  if (c->ckey == NULL)
    return -1;
  n = strlen (c->cidentity);
  username->data = gnutls_malloc (n + 1);
  key->data = gnutls_malloc (sizeof c->ckey->psk);
  if (username->data == NULL || key->data == NULL) {
    gnutls_free (username->data);
    gnutls_free (key->data);
    username->data = key->data = NULL;
    return -1;
  }
  memcpy (username->data, c->cidentity, n + 1);
  username->size = n;
  memcpy (key->data, c->ckey->psk, sizeof c->ckey->psk);
  key->size = sizeof c->ckey->psk;
  return 0;
}

struct lb_conn *
lb_conn_client (int fd, const char *identity, const struct lb_key *key,
                bool encrypt, int timeout_ms, char *err, size_t errlen)
{
  struct lb_conn *c;
  const char *why;
  int r;

  if (!lb_conn_identity_ok (identity)) {
    lb_conn_seterr (err, errlen, "invalid client name (1..%d printable "
                    "characters, no spaces)", LB_CONN_IDENTITY_MAX);
    errno = EINVAL;
    return NULL;
  }
  if (!encrypt)
    return lb_conn_plain_client (fd, identity, key, timeout_ms, err,
                                 errlen);

  c = lb_conn_new (fd, true);
  if (c == NULL) {
    lb_conn_seterr (err, errlen, "out of memory");
    errno = ENOMEM;
    return NULL;
  }
  c->deadline = lb_conn_deadline (timeout_ms);
  if (lb_conn_tls_setup (c, GNUTLS_CLIENT, err, errlen) == -1)
    goto fail;
  r = gnutls_psk_allocate_client_credentials (&c->ccred);
  if (r < 0) {
    c->ccred = NULL;
    lb_conn_seterr (err, errlen, "TLS setup failed: %s", gnutls_strerror (r));
    errno = ENOMEM;
    goto fail;
  }
  /* Not gnutls_psk_set_client_credentials: GnuTLS 3.7 frees the key
   * kept there without wiping it.  A key handed over by the callback is
   * wiped after use.
   */
  c->cidentity = identity;
  c->ckey = key;
  gnutls_psk_set_client_credentials_function2 (c->ccred, lb_conn_client_cb);
  r = gnutls_credentials_set (c->session, GNUTLS_CRD_PSK, c->ccred);
  if (r < 0) {
    lb_conn_seterr (err, errlen, "TLS setup failed: %s", gnutls_strerror (r));
    errno = ENOMEM;
    goto fail;
  }

  r = lb_conn_tls_handshake (c);
  c->cidentity = NULL;
  c->ckey = NULL;
  if (r < 0) {
    lb_conn_tls_client_err (c, r, identity, timeout_ms, err, errlen);
    goto fail;
  }
  why = lb_conn_tls_check (c);
  if (why) {
    lb_conn_tls_alert (c, GNUTLS_A_INSUFFICIENT_SECURITY);
    lb_conn_seterr (err, errlen, "TLS handshake refused: %s", why);
    errno = EPROTO;
    goto fail;
  }
  c->deadline = 0;
  return c;

 fail:
  r = errno;
  lb_conn_free (c);
  errno = r;
  return NULL;
}

/* GnuTLS asks the server for the key of the identity the client offers.
 * Returning -1 aborts the handshake (GNUTLS_E_SRP_PWD_ERROR, whatever
 * the name says); we keep why and choose the alert.
 */
static int
lb_conn_psk_cb (gnutls_session_t session, const gnutls_datum_t *username,
                gnutls_datum_t *key)
{
  struct lb_conn *c = gnutls_session_get_ptr (session);
  struct lb_key k;
  bool encrypt = true;

  c->identity[0] = '\0';
  c->client = NULL;
  c->key_given = false;
  if (!lb_conn_identity_bytes_ok (username->data, username->size)) {
    c->refused = true;
    c->refusal_alert = GNUTLS_A_UNKNOWN_PSK_IDENTITY;
    snprintf (c->refusal, sizeof c->refusal, "invalid client name from "
              "peer (not 1..255 printable characters)");
    return -1;
  }
  memcpy (c->identity, username->data, username->size);
  c->identity[username->size] = '\0';

  if (c->lookup (c->opaque, c->identity, &k, &encrypt, &c->client) == -1) {
    gnutls_memset (&k, 0, sizeof k);
    c->client = NULL;
    c->refused = true;
    c->refusal_alert = GNUTLS_A_UNKNOWN_PSK_IDENTITY;
    snprintf (c->refusal, sizeof c->refusal, "unknown client name '%s'",
              c->identity);
    return -1;
  }
  if (!encrypt) {
    gnutls_memset (&k, 0, sizeof k);
    c->refused = true;
    c->refusal_alert = GNUTLS_A_ACCESS_DENIED;
    snprintf (c->refusal, sizeof c->refusal, "client '%s': mode mismatch: "
              "it connected with TLS but its line says encrypt=no",
              c->identity);
    return -1;
  }
  /* GnuTLS wipes and frees it after use. */
  key->data = gnutls_malloc (sizeof k.psk);
  if (key->data == NULL) {
    gnutls_memset (&k, 0, sizeof k);
    return -1;
  }
  memcpy (key->data, k.psk, sizeof k.psk);
  key->size = sizeof k.psk;
  gnutls_memset (&k, 0, sizeof k);
  c->refused = false;
  c->key_given = true;
  return 0;
}

static struct lb_conn *
lb_conn_tls_server (struct lb_conn *c, int timeout_ms, char *err,
                    size_t errlen)
{
  const char *why;
  char who[LB_CONN_IDENTITY_MAX + 16];
  int r;

  if (lb_conn_tls_setup (c, GNUTLS_SERVER, err, errlen) == -1)
    return NULL;
  r = gnutls_psk_allocate_server_credentials (&c->scred);
  if (r < 0) {
    c->scred = NULL;
    lb_conn_seterr (err, errlen, "TLS setup failed: %s", gnutls_strerror (r));
    errno = ENOMEM;
    return NULL;
  }
  gnutls_psk_set_server_credentials_function2 (c->scred, lb_conn_psk_cb);
  r = gnutls_credentials_set (c->session, GNUTLS_CRD_PSK, c->scred);
  if (r < 0) {
    lb_conn_seterr (err, errlen, "TLS setup failed: %s", gnutls_strerror (r));
    errno = ENOMEM;
    return NULL;
  }

  r = lb_conn_tls_handshake (c);
  who[0] = '\0';
  if (c->identity[0])
    snprintf (who, sizeof who, "client '%s': ", c->identity);
  if (r < 0) {
    if (c->refused) {
      lb_conn_tls_alert (c, c->refusal_alert);
      lb_conn_seterr (err, errlen, "%s", c->refusal);
      errno = EACCES;
    }
    else if (r == GNUTLS_E_TIMEDOUT) {
      lb_conn_seterr (err, errlen, "%sTLS handshake timed out after %d ms",
                      who, timeout_ms);
      errno = ETIMEDOUT;
    }
    else if (r == GNUTLS_E_PREMATURE_TERMINATION || r == GNUTLS_E_PULL_ERROR
             || r == GNUTLS_E_PUSH_ERROR) {
      lb_conn_seterr (err, errlen, "%sTLS handshake failed: the peer closed "
                      "the connection (%s)", who, gnutls_strerror (r));
      errno = ECONNRESET;
    }
    else if (c->key_given && (r == GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER
                              || r == GNUTLS_E_DECRYPTION_FAILED)) {
      /* We had the client's key and its PSK binder did not verify
       * (GnuTLS 3.7 says "illegal parameter").  RFC 8446's alert for
       * that is decrypt_error.
       */
      lb_conn_tls_alert (c, GNUTLS_A_DECRYPT_ERROR);
      lb_conn_seterr (err, errlen, "%swrong key (its TLS PSK binder did not "
                      "verify)", who);
      errno = EACCES;
    }
    else {
      if (r != GNUTLS_E_FATAL_ALERT_RECEIVED)
        lb_conn_tls_alert (c, gnutls_error_to_alert (r, NULL));
      lb_conn_seterr (err, errlen, "%sTLS handshake failed: %s%s%s%s", who,
                      gnutls_strerror (r),
                      r == GNUTLS_E_FATAL_ALERT_RECEIVED ? " " : "",
                      r == GNUTLS_E_FATAL_ALERT_RECEIVED
                      ? gnutls_alert_get_name (gnutls_alert_get (c->session))
                      : "",
                      /* What GnuTLS says when the client offers no PSK
                       * mode we take, e.g. psk_ke alone.
                       */
                      r == GNUTLS_E_INSUFFICIENT_CREDENTIALS
                      || r == GNUTLS_E_NO_CIPHER_SUITES
                      ? " (the client offered no PSK with (EC)DHE)" : "");
      errno = EPROTO;
    }
    return NULL;
  }
  why = lb_conn_tls_check (c);
  if (why) {
    lb_conn_tls_alert (c, GNUTLS_A_INSUFFICIENT_SECURITY);
    lb_conn_seterr (err, errlen, "%sTLS handshake refused: %s", who, why);
    errno = EPROTO;
    return NULL;
  }
  return c;
}

struct lb_conn *
lb_conn_server (int fd, lb_conn_lookup lookup, void *opaque, int timeout_ms,
                void **client, char *identity, size_t idlen, char *err,
                size_t errlen)
{
  struct lb_conn *c, *ok;
  uint8_t first[8];
  char hex[3 * sizeof first + 1];
  size_t pos = 0;
  ssize_t n;
  int e, w, i;

  if (identity && idlen)
    identity[0] = '\0';
  if (client)
    *client = NULL;
  c = lb_conn_new (fd, false);
  if (c == NULL) {
    lb_conn_seterr (err, errlen, "out of memory");
    errno = ENOMEM;
    return NULL;
  }
  c->lookup = lookup;
  c->opaque = opaque;
  c->deadline = lb_conn_deadline (timeout_ms);

  /* Which mode: the first byte tells, without consuming it. */
  for (;;) {
    n = recv (fd, first, sizeof first, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0)
      break;
    if (n == 0) {
      lb_conn_seterr (err, errlen, "the peer closed the connection without "
                      "a word");
      errno = ECONNRESET;
      goto fail;
    }
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      lb_conn_seterr (err, errlen, "receiving: %s", strerror (errno));
      goto fail;
    }
    w = lb_conn_wait (fd, POLLIN, c->deadline);
    if (w <= 0) {
      if (w == 0)
        lb_conn_seterr (err, errlen, "handshake timed out after %d ms (the "
                        "peer sent nothing)", timeout_ms);
      else
        lb_conn_seterr (err, errlen, "poll: %s", strerror (errno));
      goto fail;
    }
  }

  if (first[0] == 0x16) {
    c->tls = true;
    ok = lb_conn_tls_server (c, timeout_ms, err, errlen);
  }
  else if (first[0] == (uint8_t) lb_conn_magic[0])
    ok = lb_conn_plain_server (c, timeout_ms, err, errlen);
  else {
    /* Hex, so nothing the peer sends reaches a log as it is. */
    for (i = 0; i < n; i++)
      pos += snprintf (hex + pos, sizeof hex - pos, "%s%02x", i ? " " : "",
                       first[i]);
    lb_conn_seterr (err, errlen, "garbage from peer (first bytes %s): "
                    "neither TLS nor plain mode", hex);
    errno = EPROTO;
    goto fail;
  }
  if (identity && idlen)
    snprintf (identity, idlen, "%s", c->identity);
  /* Also on failure, so that the caller can count refusals per client. */
  if (client)
    *client = c->client;
  if (ok == NULL)
    goto fail;
  c->deadline = 0;
  return c;

 fail:
  e = errno;
  lb_conn_free (c);
  errno = e;
  return NULL;
}

/* ---- data --------------------------------------------------------------- */

/* Send LEN bytes as TLS records straight from BUF. */
static int
lb_conn_tls_send (struct lb_conn *c, const uint8_t *buf, size_t len)
{
  ssize_t r;

  while (len > 0) {
    r = gnutls_record_send (c->session, buf, len);
    if (r > 0) {
      buf += r;
      len -= r;
      continue;
    }
    if (r == GNUTLS_E_AGAIN) {
      /* Non-blocking fd: wait, then repeat the same call, as GnuTLS
       * requires.
       */
      if (lb_conn_wait (c->fd, POLLOUT, 0) == -1) {
        lb_conn_ioerr (c, true, errno, "poll: %s", strerror (errno));
        return -1;
      }
      continue;
    }
    if (r == GNUTLS_E_INTERRUPTED)
      continue;
    lb_conn_ioerr (c, true, r == GNUTLS_E_PUSH_ERROR ? ECONNRESET : EPROTO,
                   "TLS send: %s", gnutls_strerror ((int) r));
    return -1;
  }
  return 0;
}

static int lb_conn_tls_sendv (struct lb_conn *c, const struct iovec *iov,
                              int iovcnt);

int
lb_conn_sendv (struct lb_conn *c, const struct iovec *iov, int iovcnt)
{
  int i;

  if (!c->tls) {
    struct iovec v[64];
    struct msghdr msg = { .msg_iov = v };
    ssize_t r;
    int next = 0;

    /* Copy up to 64 pieces at a time: sendmsg consumes them partially
     * and we must not change the caller's array.
     */
    while (next < iovcnt) {
      for (msg.msg_iovlen = 0; next < iovcnt && msg.msg_iovlen < 64; next++)
        if (iov[next].iov_len)
          v[msg.msg_iovlen++] = iov[next];
      i = 0;
      while (i < (int) msg.msg_iovlen) {
        msg.msg_iov = v + i;
        msg.msg_iovlen -= i;
        r = sendmsg (c->fd, &msg, MSG_NOSIGNAL);
        msg.msg_iovlen += i;
        if (r == -1 && errno == EINTR)
          continue;
        if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          if (lb_conn_wait (c->fd, POLLOUT, 0) == -1) {
            lb_conn_ioerr (c, true, errno, "poll: %s", strerror (errno));
            return -1;
          }
          continue;
        }
        if (r == -1) {
          lb_conn_ioerr (c, true, errno, "send: %s", strerror (errno));
          return -1;
        }
        while (r > 0 && i < (int) msg.msg_iovlen) {
          if ((size_t) r >= v[i].iov_len) {
            r -= v[i].iov_len;
            i++;
          }
          else {
            v[i].iov_base = (uint8_t *) v[i].iov_base + r;
            v[i].iov_len -= r;
            r = 0;
          }
        }
      }
      msg.msg_iov = v;
    }
    return 0;
  }
  return lb_conn_tls_sendv (c, iov, iovcnt);
}

/* TLS: records as full as possible.  Pieces are gathered in the stage
 * until it holds a full record; whole records' worth of a piece goes
 * straight from the caller's buffer, sparing a copy of the payload.
 */
static int
lb_conn_tls_records (struct lb_conn *c, const struct iovec *iov, int iovcnt)
{
  size_t fill = 0, n, k, rec;
  const uint8_t *p;
  int i;

  rec = gnutls_record_get_max_size (c->session);
  if (rec == 0 || rec > sizeof c->stage)
    rec = sizeof c->stage;
  for (i = 0; i < iovcnt; i++) {
    p = iov[i].iov_base;
    n = iov[i].iov_len;
    while (n > 0) {
      if (fill == 0 && n >= rec) {
        k = n - n % rec;
        if (lb_conn_tls_send (c, p, k) == -1)
          return -1;
      }
      else {
        k = rec - fill < n ? rec - fill : n;
        memcpy (c->stage + fill, p, k);
        fill += k;
        if (fill == rec) {
          if (lb_conn_tls_send (c, c->stage, fill) == -1)
            return -1;
          fill = 0;
        }
      }
      p += k;
      n -= k;
    }
  }
  if (fill && lb_conn_tls_send (c, c->stage, fill) == -1)
    return -1;
  return 0;
}

/* The records of one call gather in wbuf (see lb_conn_push) and go out
 * in a few large writes.
 */
static int
lb_conn_tls_sendv (struct lb_conn *c, const struct iovec *iov, int iovcnt)
{
  int r;

  lb_conn_batching = c;
  r = lb_conn_tls_records (c, iov, iovcnt);
  lb_conn_batching = NULL;
  if (r == -1) {
    c->wlen = 0;
    return -1;
  }
  if (lb_conn_flush (c) == -1) {
    c->wlen = 0;
    lb_conn_ioerr (c, true, errno, "send: %s", strerror (errno));
    return -1;
  }
  return 0;
}

int
lb_conn_send (struct lb_conn *c, const void *buf, size_t len)
{
  struct iovec v = { .iov_base = (void *) buf, .iov_len = len };

  return lb_conn_sendv (c, &v, 1);
}

ssize_t
lb_conn_recv (struct lb_conn *c, void *buf, size_t len)
{
  ssize_t r;

  if (len == 0)
    return 0;
  if (!c->tls) {
    for (;;) {
      r = recv (c->fd, buf, len, c->pull_dontwait ? MSG_DONTWAIT : 0);
      if (r >= 0)
        return r;
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return -2;
      lb_conn_ioerr (c, false, errno, "receive: %s", strerror (errno));
      return -1;
    }
  }
  for (;;) {
    r = gnutls_record_recv (c->session, buf, len);
    if (r >= 0)
      return r;
    if (r == GNUTLS_E_AGAIN) {
      /* GnuTLS also says AGAIN after a post-handshake message (a session
       * ticket from a server that is not ours), whatever the fd's mode:
       * go on while our read-ahead holds bytes, or the fd blocks.
       */
      if (c->rpos < c->rlen)
        continue;
      if (!c->pull_dontwait && !(fcntl (c->fd, F_GETFL) & O_NONBLOCK))
        continue;
      return -2;
    }
    if (r == GNUTLS_E_INTERRUPTED)
      continue;
    if (r == GNUTLS_E_PREMATURE_TERMINATION) {
      lb_conn_ioerr (c, false, ECONNRESET, "the peer closed the connection "
                     "without TLS close_notify");
      return -1;
    }
    if (r == GNUTLS_E_FATAL_ALERT_RECEIVED) {
      lb_conn_ioerr (c, false, ECONNRESET, "the peer sent TLS alert '%s'",
                     gnutls_alert_get_name (gnutls_alert_get (c->session)));
      return -1;
    }
    if (!gnutls_error_is_fatal ((int) r))
      continue;
    lb_conn_ioerr (c, false, r == GNUTLS_E_PULL_ERROR ? ECONNRESET : EPROTO,
                   "TLS receive: %s", gnutls_strerror ((int) r));
    return -1;
  }
}

int
lb_conn_recv_all (struct lb_conn *c, void *buf, size_t len, int timeout_ms)
{
  int64_t deadline = lb_conn_deadline (timeout_ms);
  uint8_t *p = buf;
  ssize_t r;
  int w;

  /* Never block inside recv: wait in poll, which knows the deadline. */
  c->pull_dontwait = true;
  while (len > 0) {
    r = lb_conn_recv (c, p, len);
    if (r > 0) {
      p += r;
      len -= r;
      continue;
    }
    if (r == 0) {
      lb_conn_ioerr (c, false, ECONNRESET, "the peer ended the stream "
                     "in the middle of a message");
      break;
    }
    if (r == -1)
      break;
    w = lb_conn_wait (c->fd, POLLIN, deadline);
    if (w == 0) {
      lb_conn_ioerr (c, false, ETIMEDOUT, "receive timed out after %d ms",
                     timeout_ms);
      break;
    }
    if (w < 0) {
      lb_conn_ioerr (c, false, errno, "poll: %s", strerror (errno));
      break;
    }
  }
  c->pull_dontwait = false;
  return len == 0 ? 0 : -1;
}

bool
lb_conn_pending (struct lb_conn *c)
{
  return c->tls && (gnutls_record_check_pending (c->session) > 0
                    || c->rpos < c->rlen);
}

int
lb_conn_fd (const struct lb_conn *c)
{
  return c->fd;
}

bool
lb_conn_encrypted (const struct lb_conn *c)
{
  return c->tls;
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
  if (c->tls && c->session) {
    /* close_notify lets the peer tell an orderly end from a cut; but a
     * peer that does not read must not hold us here.
     */
    c->push_dontwait = true;
    gnutls_bye (c->session, GNUTLS_SHUT_WR);
  }
  close (c->fd);
  lb_conn_free (c);
}

int
lb_conn_set_keepalive (int fd)
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
