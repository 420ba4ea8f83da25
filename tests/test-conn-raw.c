/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the transport's raw mode and its upgrade in place
 * (lb_conn_raw, lb_conn_server_starttls: lbd's NBD export before and
 * after STARTTLS), and of the bounds on sends and receives in every
 * mode, over TCP loopback.  The rest is tests/test-conn.c's.
 */

#include <config.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "conn-harness.h"
#include "lb_conn.h"
#include "tap.h"

/* ---- raw mode and its upgrade in place ------------------------------- */

/* Take S->nbytes, check them, send them back in pieces, then expect the
 * client's orderly end.
 */
static void
after_mirror (struct srv *s, struct lb_conn *c)
{
  uint8_t *buf = malloc (s->nbytes), one;
  struct iovec v[3];
  size_t i;

  s->data_ok = lb_conn_recv_all (c, buf, s->nbytes, T_TIMEOUT) == 0;
  for (i = 0; s->data_ok && i < s->nbytes; i++)
    if (buf[i] != pattern (i, 9))
      s->data_ok = false;
  v[0].iov_base = buf;
  v[0].iov_len = 1;
  v[1].iov_base = buf + 1;
  v[1].iov_len = 0;
  v[2].iov_base = buf + 1;
  v[2].iov_len = s->nbytes - 1;
  s->data_ok = s->data_ok && lb_conn_sendv (c, v, 3, T_TIMEOUT) == 0
    && lb_conn_recv (c, &one, 1) == LB_CONN_END;
  s->got = s->nbytes;
  free (buf);
}

static void
test_raw (int lfd, int port)
{
  size_t len = (2u << 20) + 777, i;
  struct srv s = { .how = SRV_RAW, .after = after_mirror, .nbytes = len };
  uint8_t *buf = malloc (len), *back = malloc (len);
  struct lb_conn *c;
  char err[256];

  for (i = 0; i < len; i++)
    buf[i] = pattern (i, 9);
  srv_start (&s, lfd, "c1", &key_a, true);
  c = cli_raw (port, err, sizeof err);
  tap_ok (c != NULL && !lb_conn_encrypted (c) && !lb_conn_pending (c)
          && strcmp (lb_conn_describe (c), "raw (not authenticated, not "
                     "encrypted)") == 0,
          "raw: a connection at once, neither encrypted nor authenticated "
          "(%s)", c ? lb_conn_describe (c) : err);
  if (c) {
    tap_ok (lb_conn_send (c, buf, len, T_TIMEOUT) == 0
            && lb_conn_recv_all (c, back, len, T_TIMEOUT) == 0
            && memcmp (buf, back, len) == 0,
            "raw: %zu bytes there and back (send, sendv, recv_all)", len);
    lb_conn_close (c);
  }
  pthread_join (s.th, NULL);
  tap_ok (s.ok && s.data_ok, "raw: server side, then 0 at the client's "
          "close");
  free (buf);
  free (back);
}

/* Neither read nor write until the client says so (S->release). */
static void
after_hold (struct srv *s, struct lb_conn *c)
{
  int i;

  (void) c;
  for (i = 0; i < 1000 && !atomic_load (&s->release); i++)
    usleep (10 * 1000);
}

/* In every mode a receive and a send honour their bound against a peer
 * that neither writes nor reads.
 */
static void
test_bounds (int lfd, int port, enum srv_how how, bool encrypt)
{
  const char *mode = how == SRV_RAW ? "raw" : encrypt ? "TLS" : "plain";
  struct srv s = { .how = how, .after = after_hold };
  size_t big = 64u << 20;
  uint8_t *buf = calloc (1, big);
  struct lb_conn *c;
  char err[256];
  int64_t t;
  int r, e;

  srv_start (&s, lfd, "c1", &key_a, encrypt);
  c = how == SRV_RAW ? cli_raw (port, err, sizeof err)
    : cli (port, "c1", &key_a, encrypt, T_TIMEOUT, err, sizeof err);
  if (c == NULL) {
    tap_ok (0, "%s: bounds: %s", mode, err);
    atomic_store (&s.release, true);
    pthread_join (s.th, NULL);
    free (buf);
    return;
  }
  t = now_ms ();
  r = lb_conn_recv_all (c, buf, 4, 300);
  e = errno;
  t = now_ms () - t;
  tap_ok (r == -1 && e == ETIMEDOUT && t >= 290 && t < 300 + SLACK,
          "%s: recv_all gives up after %lld ms of 300 (%s)", mode,
          (long long) t, lb_conn_error (c));
  t = now_ms ();
  r = lb_conn_send (c, buf, big, 300);
  e = errno;
  t = now_ms () - t;
  tap_ok (r == -1 && e == ETIMEDOUT && t >= 290 && t < 300 + SLACK
          && strstr (lb_conn_error (c), "send timed out after 300 ms"),
          "%s: a send of 64 MiB to a peer that does not read gives up after "
          "%lld ms of 300 (%s)", mode, (long long) t, lb_conn_error (c));
  lb_conn_close (c);
  atomic_store (&s.release, true);
  pthread_join (s.th, NULL);
  free (buf);
}

/* After the upgrade: "ping" in, "pong" out. */
static void
after_pong (struct srv *s, struct lb_conn *c)
{
  char buf[4];

  s->data_ok = lb_conn_recv_all (c, buf, 4, T_TIMEOUT) == 0
    && memcmp (buf, "ping", 4) == 0
    && lb_conn_send (c, "pong", 4, T_TIMEOUT) == 0;
}

static void
test_starttls_ok (int lfd, int port, bool encrypt)
{
  const char *mode = encrypt ? "TLS" : "plain";
  struct srv s = { .how = SRV_STARTTLS, .after = after_pong };
  struct lb_conn *c;
  char err[256], buf[4];

  srv_start (&s, lfd, "client1/sdb1", &key_a, encrypt);
  c = cli_starttls (port, "client1/sdb1", &key_a, encrypt, err, sizeof err,
                    NULL);
  tap_ok (c != NULL, "STARTTLS, %s: the client's handshake after the "
          "exchange in clear succeeds (%s)", mode,
          c ? lb_conn_describe (c) : err);
  if (c) {
    tap_ok (lb_conn_send (c, "ping", 4, T_TIMEOUT) == 0
            && lb_conn_recv_all (c, buf, 4, T_TIMEOUT) == 0
            && memcmp (buf, "pong", 4) == 0,
            "STARTTLS, %s: data both ways on the upgraded connection", mode);
    lb_conn_close (c);
  }
  pthread_join (s.th, NULL);
  tap_ok (s.raw_ok && s.ok && s.data_ok, "STARTTLS, %s: the server "
          "upgraded in place (%s)", mode, s.ok ? s.desc : s.err);
  tap_ok (strcmp (s.identity, "client1/sdb1") == 0 && s.client == &s,
          "STARTTLS, %s: the server learns the identity and the lookup's "
          "client", mode);
  if (encrypt)
    tap_ok (strstr (s.desc, "TLS1.3 ") == s.desc,
            "STARTTLS, TLS: TLS 1.3 after the upgrade (%s)", s.desc);
}

/* A failed upgrade: reported as lb_conn_server reports; the connection
 * can only be closed, and closing it closes the socket.
 */
static void
test_starttls_fail (int lfd, int port, const char *what, bool srv_encrypt,
                    const char *cli_name, const struct lb_key *cli_key,
                    bool cli_encrypt, const char *srv_want)
{
  struct srv s = { .how = SRV_STARTTLS };
  struct timeval bound = { .tv_sec = T_TIMEOUT / 1000 };
  struct lb_conn *c;
  char err[256] = "", one;
  int fd = -1;
  ssize_t n;

  srv_start (&s, lfd, "c1", &key_a, srv_encrypt);
  c = cli_starttls (port, cli_name, cli_key, cli_encrypt, err, sizeof err,
                    &fd);
  pthread_join (s.th, NULL);
  tap_ok (c == NULL && s.raw_ok && !s.ok && strstr (s.err, srv_want)
          && s.e != 0,
          "STARTTLS, %s: both fail; server: %s", what,
          s.ok ? "(it succeeded)" : s.err);
  tap_ok (s.client == (strcmp (cli_name, "c1") == 0 ? &s : NULL),
          "STARTTLS, %s: the lookup's client %s", what,
          strcmp (cli_name, "c1") == 0 ? "is reported on failure"
          : "is NULL for an unknown name");
  /* The server closed its failed connection: the socket reads its end
   * (and not EAGAIN after the bound, as it would from an open one).
   */
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
  do
    n = recv (fd, &one, 1, 0);
  while (n > 0);
  tap_ok (n == 0 || (n == -1 && errno == ECONNRESET),
          "STARTTLS, %s: closing the failed connection closed its socket",
          what);
  if (c)
    lb_conn_close (c);
  else if (fd >= 0)
    close (fd);
}

/* The upgrade's bound and its answer to garbage, as lb_conn_server's. */
static void
test_starttls_raw_peer (int lfd, int port, const char *what,
                        const void *bytes, size_t n, int hold_ms,
                        const char *srv_want)
{
  struct srv s = { .how = SRV_STARTTLS, .timeout_ms = 400 };
  char ack[3];
  int fd;

  srv_start (&s, lfd, "c1", &key_a, true);
  fd = connect_to (port);
  send (fd, "STARTTLS", 8, MSG_NOSIGNAL);
  recv (fd, ack, sizeof ack, MSG_WAITALL);
  if (n)
    send (fd, bytes, n, MSG_NOSIGNAL);
  usleep (hold_ms * 1000);
  pthread_join (s.th, NULL);
  close (fd);
  tap_ok (s.raw_ok && !s.ok && strstr (s.err, srv_want) != NULL
          && s.ms < 400 + SLACK,
          "STARTTLS, %s: the server fails in %lld ms: %s", what,
          (long long) s.ms, s.ok ? "(it succeeded)" : s.err);
}

static void
test_starttls (int lfd, int port)
{
  static const char http[] = "GET / HTTP/1.0\r\n\r\n";

  test_starttls_ok (lfd, port, true);
  test_starttls_ok (lfd, port, false);
  test_starttls_fail (lfd, port, "wrong key", true, "c1", &key_b, true,
                      "wrong key");
  test_starttls_fail (lfd, port, "unknown name", true, "c2", &key_a, true,
                      "unknown client name");
  test_starttls_fail (lfd, port, "TLS client, plain line", false, "c1",
                      &key_a, true, "mode mismatch");
  test_starttls_raw_peer (lfd, port, "silence after the ACK", NULL, 0, 1500,
                          "timed out");
  test_starttls_raw_peer (lfd, port, "HTTP after the ACK", http,
                          sizeof http - 1, 200, "garbage from peer");
}

int
main (void)
{
  int lfd, port;

  lfd = harness_setup (&port);
  test_raw (lfd, port);
  test_bounds (lfd, port, SRV_RAW, false);
  test_bounds (lfd, port, SRV_HANDSHAKE, false);
  test_bounds (lfd, port, SRV_HANDSHAKE, true);
  test_starttls (lfd, port);
  close (lfd);
  return tap_done ();
}
