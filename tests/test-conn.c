/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the transport (common/lb_conn.c and the files beside
 * it): handshakes in both modes over TCP loopback, every way they must
 * fail, data both ways, and a throughput report.  Raw mode, STARTTLS
 * and bounded sends are tests/test-conn-raw.c's.  SIGPIPE is left at
 * its default on purpose: a send that raised it would kill the test.
 *
 * LB_CONN_BENCH_MIB (default 1024, 64 under AddressSanitizer) sets the
 * size of the throughput runs; 0 skips them.
 */

#include <config.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "conn-harness.h"
#include "lb_conn.h"
#include "tap.h"

/* ---- handshakes that work ------------------------------------------ */

static void
test_ok (int lfd, int port, bool encrypt)
{
  const char *mode = encrypt ? "TLS" : "plain";
  struct srv s = { 0 };
  struct lb_conn *c;
  char err[256];

  srv_start (&s, lfd, "client1/sdb1", &key_a, encrypt);
  c = cli (port, "client1/sdb1", &key_a, encrypt, T_TIMEOUT, err, sizeof err);
  tap_ok (c != NULL, "%s: client handshake succeeds (%s)", mode,
          c ? lb_conn_describe (c) : err);
  if (c) {
    tap_ok (lb_conn_encrypted (c) == encrypt, "%s: lb_conn_encrypted", mode);
    tap_ok (lb_conn_send (c, "ping", 4, -1) == 0, "%s: send", mode);
    lb_conn_close (c);
  }
  pthread_join (s.th, NULL);
  tap_ok (s.ok, "%s: server handshake succeeds (%s)", mode,
          s.ok ? s.desc : s.err);
  tap_ok (strcmp (s.identity, "client1/sdb1") == 0 && s.client == &s,
          "%s: server learns the identity and the lookup's client", mode);
  if (encrypt)
    tap_ok (strstr (s.desc, "TLS1.3 ") == s.desc
            && (strstr (s.desc, " ECDHE-PSK ") || strstr (s.desc, " DHE-PSK ")),
            "TLS: TLS 1.3 with an ephemeral key exchange (%s)", s.desc);
}

/* The server reads 4 bytes and checks them, then the client's close. */
static void
after_ping (struct srv *s, struct lb_conn *c)
{
  char buf[8];
  s->data_ok = lb_conn_recv_all (c, buf, 4, T_TIMEOUT) == 0
    && memcmp (buf, "ping", 4) == 0
    && lb_conn_recv (c, buf, 1) == LB_CONN_END;
}

static void
test_ping (int lfd, int port, bool encrypt)
{
  const char *mode = encrypt ? "TLS" : "plain";
  struct srv s = { .after = after_ping };
  struct lb_conn *c;
  char err[256];

  srv_start (&s, lfd, "c1", &key_a, encrypt);
  c = cli (port, "c1", &key_a, encrypt, T_TIMEOUT, err, sizeof err);
  if (c) {
    lb_conn_send (c, "ping", 4, -1);
    lb_conn_close (c);
  }
  pthread_join (s.th, NULL);
  tap_ok (c && s.data_ok, "%s: server receives the data, then 0 at the "
          "client's orderly close", mode);
}

/* Many pieces of all sizes, some empty, in one sendv: the server gets
 * their concatenation.
 */
#define PIECES 200

static size_t
piece_len (int i)
{
  return i % 7 == 3 ? 0 : (size_t) (i * 977) % 40000;
}

static void
after_pieces (struct srv *s, struct lb_conn *c)
{
  uint8_t *buf = malloc (s->nbytes);
  size_t i;

  s->data_ok = lb_conn_recv_all (c, buf, s->nbytes, T_TIMEOUT) == 0;
  for (i = 0; s->data_ok && i < s->nbytes; i++)
    if (buf[i] != pattern (i, 3))
      s->data_ok = false;
  free (buf);
}

static void
test_pieces (int lfd, int port, bool encrypt)
{
  const char *mode = encrypt ? "TLS" : "plain";
  struct iovec v[PIECES];
  struct srv s = { .after = after_pieces };
  struct lb_conn *c;
  size_t total = 0, i;
  uint8_t *buf;
  char err[256];
  int r = -1, k;

  for (k = 0; k < PIECES; k++)
    total += piece_len (k);
  buf = malloc (total);
  for (i = 0; i < total; i++)
    buf[i] = pattern (i, 3);
  for (k = 0, i = 0; k < PIECES; i += piece_len (k), k++) {
    v[k].iov_base = buf + i;
    v[k].iov_len = piece_len (k);
  }
  s.nbytes = total;
  srv_start (&s, lfd, "c1", &key_a, encrypt);
  c = cli (port, "c1", &key_a, encrypt, T_TIMEOUT, err, sizeof err);
  if (c) {
    r = lb_conn_sendv (c, v, PIECES, -1);
    lb_conn_close (c);
  }
  pthread_join (s.th, NULL);
  tap_ok (r == 0 && s.data_ok, "%s: sendv of %d pieces (%zu bytes, some "
          "empty) arrives as their concatenation", mode, PIECES, total);
  free (buf);
}

/* ---- handshakes that must fail ------------------------------------- */

/* Run a client against a server thread configured differently; both
 * must fail, each err containing its expected word.
 */
static void
expect_fail (int lfd, int port, const char *what,
             const char *srv_name, const struct lb_key *srv_key,
             bool srv_encrypt,
             const char *cli_name, const struct lb_key *cli_key,
             bool cli_encrypt, const char *cli_want, const char *srv_want)
{
  struct srv s = { 0 };
  struct lb_conn *c;
  char err[256] = "";

  srv_start (&s, lfd, srv_name, srv_key, srv_encrypt);
  c = cli (port, cli_name, cli_key, cli_encrypt, T_TIMEOUT, err, sizeof err);
  if (c)
    lb_conn_close (c);
  pthread_join (s.th, NULL);
  tap_ok (c == NULL && strstr (err, cli_want) != NULL,
          "%s: client fails: %s", what, c ? "(it succeeded)" : err);
  tap_ok (!s.ok && strstr (s.err, srv_want) != NULL,
          "%s: server fails: %s", what, s.ok ? "(it succeeded)" : s.err);
  /* The server's caller counts refusals per client. */
  tap_ok (s.client == (strcmp (srv_name, cli_name) == 0 ? &s : NULL),
          "%s: the lookup's client %s", what,
          strcmp (srv_name, cli_name) == 0 ? "is reported on failure"
          : "is NULL for an unknown name");
}

/* A raw peer that sends BYTES (maybe none) and then waits HOLD_MS or
 * closes at once, against a server with a 400 ms bound.
 */
static void
raw_to_server (int lfd, int port, const char *what, const void *bytes,
               size_t n, int hold_ms, const char *srv_want)
{
  struct srv s = { .timeout_ms = 400 };
  int fd;

  srv_start (&s, lfd, "c1", &key_a, true);
  fd = connect_to (port);
  if (n)
    send (fd, bytes, n, MSG_NOSIGNAL);
  if (hold_ms == 0)
    close (fd);
  usleep (hold_ms * 1000);
  pthread_join (s.th, NULL);
  if (hold_ms)
    close (fd);
  tap_ok (!s.ok && strstr (s.err, srv_want) != NULL && s.ms < 400 + SLACK,
          "%s: server fails in %lld ms: %s", what, (long long) s.ms,
          s.ok ? "(it succeeded)" : s.err);
}

/* A raw server that accepts, sends BYTES, waits HOLD_MS and closes,
 * against a client with a 400 ms bound.
 */
struct raw {
  int lfd;
  const void *bytes;
  size_t n;
  int hold_ms;
  pthread_t th;
};

static void *
raw_thread (void *arg)
{
  struct raw *r = arg;
  char sink[4096];
  int fd = accept (r->lfd, NULL, NULL);

  if (fd == -1)
    return NULL;
  if (r->n)
    send (fd, r->bytes, r->n, MSG_NOSIGNAL);
  usleep (r->hold_ms * 1000);
  while (recv (fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
    ;
  close (fd);
  return NULL;
}

static void
raw_to_client (int lfd, int port, bool encrypt, const char *what,
               const void *bytes, size_t n, int hold_ms, const char *want)
{
  struct raw r = { .lfd = lfd, .bytes = bytes, .n = n, .hold_ms = hold_ms };
  struct lb_conn *c;
  char err[256] = "";
  int64_t t0;

  pthread_create (&r.th, NULL, raw_thread, &r);
  t0 = now_ms ();
  c = cli (port, "c1", &key_a, encrypt, 400, err, sizeof err);
  t0 = now_ms () - t0;
  if (c)
    lb_conn_close (c);
  pthread_join (r.th, NULL);
  tap_ok (c == NULL && strstr (err, want) != NULL && t0 < 400 + SLACK,
          "%s client, %s: fails in %lld ms: %s", encrypt ? "TLS" : "plain",
          what, (long long) t0, c ? "(it succeeded)" : err);
}

static void
test_failures (int lfd, int port)
{
  static const char http[] = "GET / HTTP/1.0\r\n\r\n";
  /* A record promising a huge handshake message: GnuTLS waits for it. */
  static const uint8_t tls_promise[] = {
    0x16, 0x03, 0x01, 0x00, 0x20, 'n', 'o', 't', ' ', 'a', ' ', 'h', 'e',
    'l', 'l', 'o', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0,
  };
  /* A ClientHello cut short inside a complete record. */
  static const uint8_t tls_junk[] = {
    0x16, 0x03, 0x01, 0x00, 0x20, 0x01, 0x00, 0x00, 0x1c, 0x03, 0x03,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff,
  };
  static const uint8_t tls_partial[] = { 0x16, 0x03, 0x01, 0x02 };
  static const char plain_noid[] = "LBPLAIN1\0";
  static const char plain_partial[] = "LBPLAIN1\x05" "ab";
  static const char plain_bad_id[] = "LBPLAIN1\x03" "a b"
    "0123456789012345678901234567890!";
  static const char not_magic[] = "LBPLAINX\x02" "c1";
  static const uint8_t big_id_tls_junk[] = { 0x16, 0x03, 0x03, 0xff, 0xff };

  expect_fail (lfd, port, "TLS, wrong key", "c1", &key_a, true,
               "c1", &key_b, true, "wrong key", "wrong key");
  expect_fail (lfd, port, "TLS, unknown name", "c1", &key_a, true,
               "c2", &key_a, true, "unknown client name", "unknown client");
  expect_fail (lfd, port, "plain, wrong key", "c1", &key_a, false,
               "c1", &key_b, false, "wrong key", "wrong key");
  expect_fail (lfd, port, "plain, unknown name", "c1", &key_a, false,
               "c2", &key_a, false, "unknown client name", "unknown client");
  expect_fail (lfd, port, "TLS client, plain client line", "c1", &key_a,
               false, "c1", &key_a, true, "mode mismatch", "mode mismatch");
  expect_fail (lfd, port, "plain client, TLS client line", "c1", &key_a,
               true, "c1", &key_a, false, "mode mismatch", "mode mismatch");
  expect_fail (lfd, port, "plain client, TLS line, wrong key too", "c1",
               &key_a, true, "c1", &key_b, false, "mode mismatch",
               "mode mismatch");

  raw_to_server (lfd, port, "silent peer", NULL, 0, 2000, "timed out");
  raw_to_server (lfd, port, "partial TLS record then silence", tls_partial,
                 sizeof tls_partial, 2000, "timed out");
  raw_to_server (lfd, port, "partial plain hello then silence",
                 plain_partial, sizeof plain_partial - 1, 2000, "timed out");
  raw_to_server (lfd, port, "peer closes at once", NULL, 0, 0, "closed");
  raw_to_server (lfd, port, "HTTP request", http, sizeof http - 1, 200,
                 "garbage from peer (first bytes 47 45 54 20");
  raw_to_server (lfd, port, "TLS record promising more, then silence",
                 tls_promise, sizeof tls_promise, 2000, "timed out");
  raw_to_server (lfd, port, "truncated ClientHello", tls_junk,
                 sizeof tls_junk, 200, "TLS handshake failed");
  raw_to_server (lfd, port, "oversized TLS record header",
                 big_id_tls_junk, sizeof big_id_tls_junk, 200,
                 "TLS handshake failed");
  raw_to_server (lfd, port, "partial plain hello then close",
                 plain_partial, sizeof plain_partial - 1, 0, "closed");
  raw_to_server (lfd, port, "plain hello with empty name", plain_noid,
                 sizeof plain_noid - 1, 200, "invalid client name");
  raw_to_server (lfd, port, "plain hello with a space in the name",
                 plain_bad_id, sizeof plain_bad_id - 1, 200,
                 "invalid client name");
  raw_to_server (lfd, port, "wrong plain magic", not_magic,
                 sizeof not_magic - 1, 200, "garbage");

  raw_to_client (lfd, port, true, "silent server", NULL, 0, 1500,
                 "timed out");
  raw_to_client (lfd, port, false, "silent server", NULL, 0, 1500,
                 "timed out");
  raw_to_client (lfd, port, true, "server closes at once", NULL, 0, 0,
                 "closed");
  raw_to_client (lfd, port, false, "server closes at once", NULL, 0, 0,
                 "closed");
  raw_to_client (lfd, port, true, "server talks HTTP", http,
                 sizeof http - 1, 200, "TLS handshake failed");
  raw_to_client (lfd, port, false, "server talks HTTP", http,
                 sizeof http - 1, 200, "unexpected answer");
  raw_to_client (lfd, port, false, "refusal with binary reason",
                 "\x01\x05\x01\x02\x1b[m", 7, 200, "server refused: ???[m");

  {
    char err[256] = "";
    struct lb_conn *c;
    c = lb_conn_client (-1, "has space", &key_a, true, 100, err, sizeof err);
    tap_ok (c == NULL && errno == EINVAL && strstr (err, "invalid"),
            "client refuses an invalid identity: %s", err);
  }
}

/* ---- data ------------------------------------------------------------ */

#define HDR 16

/* Echo exactly S->nbytes, send 3 MiB more in one call, then close. */
static void
after_echo (struct srv *s, struct lb_conn *c)
{
  static uint8_t buf[65536];
  size_t big = 3u << 20, i;
  uint8_t *p;
  ssize_t r;

  while (s->got < s->nbytes) {
    r = lb_conn_recv (c, buf, sizeof buf);
    if (r <= 0)
      return;
    if (lb_conn_send (c, buf, r, -1) == -1)
      return;
    s->got += r;
  }
  p = malloc (big);
  for (i = 0; i < big; i++)
    p[i] = pattern (i, 0x5a);
  s->data_ok = lb_conn_send (c, p, big, -1) == 0;
  free (p);
}

struct sender {
  struct lb_conn *c;
  const uint8_t *hdr, *payload;
  size_t len;
  int result;
};

static void *
sender_thread (void *arg)
{
  struct sender *sd = arg;
  struct iovec v[2] = {
    { .iov_base = (void *) sd->hdr, .iov_len = HDR },
    { .iov_base = (void *) sd->payload, .iov_len = sd->len },
  };
  sd->result = lb_conn_sendv (sd->c, v, 2, -1);
  return NULL;
}

static void
test_data (int lfd, int port, bool encrypt)
{
  const char *mode = encrypt ? "TLS" : "plain";
  size_t len = (5u << 20) + 12345, total = HDR + len, big = 3u << 20, i;
  struct srv s = { .after = after_echo, .nbytes = total };
  struct sender sd = { 0 };
  uint8_t hdr[HDR], *payload = malloc (len), *back = malloc (total);
  uint8_t *big_back = malloc (big), one;
  struct lb_conn *c;
  pthread_t th;
  char err[256];
  bool same = true;

  for (i = 0; i < HDR; i++)
    hdr[i] = 0xe0 + i;
  for (i = 0; i < len; i++)
    payload[i] = pattern (i, 0);
  srv_start (&s, lfd, "c1", &key_a, encrypt);
  c = cli (port, "c1", &key_a, encrypt, T_TIMEOUT, err, sizeof err);
  if (c == NULL) {
    tap_ok (0, "%s: data: handshake: %s", mode, err);
    pthread_join (s.th, NULL);
    goto out;
  }
  /* Send in one thread while receiving the echo in this one: the same
   * connection used by two threads, as lb does.
   */
  sd.c = c;
  sd.hdr = hdr;
  sd.payload = payload;
  sd.len = len;
  pthread_create (&th, NULL, sender_thread, &sd);
  tap_ok (lb_conn_recv_all (c, back, total, 20000) == 0,
          "%s: %zu bytes echoed back", mode, total);
  pthread_join (th, NULL);
  tap_ok (sd.result == 0, "%s: sendv of header + %zu-byte payload", mode,
          len);
  tap_ok (memcmp (back, hdr, HDR) == 0
          && memcmp (back + HDR, payload, len) == 0,
          "%s: echoed bytes identical", mode);
  tap_ok (lb_conn_recv_all (c, big_back, big, 20000) == 0,
          "%s: 3 MiB sent by the server in one call received", mode);
  for (i = 0; i < big; i++)
    if (big_back[i] != pattern (i, 0x5a))
      same = false;
  tap_ok (same, "%s: and identical", mode);
  tap_ok (lb_conn_recv (c, &one, 1) == LB_CONN_END,
          "%s: recv returns 0 at the server's orderly close", mode);
  lb_conn_close (c);
  pthread_join (s.th, NULL);
  tap_ok (s.data_ok && s.got == total, "%s: server side of the data test",
          mode);
 out:
  free (payload);
  free (back);
  free (big_back);
}

/* Non-blocking use, pending data and bounded receives. */
static void
after_trickle (struct srv *s, struct lb_conn *c)
{
  char go;
  /* Wait for the client's go, then two sends (two TLS records). */
  if (lb_conn_recv_all (c, &go, 1, T_TIMEOUT) == -1)
    return;
  lb_conn_send (c, "hello", 5, -1);
  lb_conn_send (c, "world", 5, -1);
  /* Then hold the connection open, silent, until the client closes. */
  s->data_ok = lb_conn_recv_all (c, &go, 1, T_TIMEOUT) == -1;
}

static void
test_nonblocking (int lfd, int port, bool encrypt)
{
  const char *mode = encrypt ? "TLS" : "plain";
  struct srv s = { .after = after_trickle };
  struct lb_conn *c;
  char err[256], buf[16];
  struct pollfd p;
  int64_t t0;
  ssize_t r;
  int n = 0;

  srv_start (&s, lfd, "c1", &key_a, encrypt);
  c = cli (port, "c1", &key_a, encrypt, T_TIMEOUT, err, sizeof err);
  if (c == NULL) {
    tap_ok (0, "%s: handshake: %s", mode, err);
    pthread_join (s.th, NULL);
    return;
  }
  fcntl (lb_conn_fd (c), F_SETFL,
         fcntl (lb_conn_fd (c), F_GETFL) | O_NONBLOCK);
  tap_ok (lb_conn_recv (c, buf, sizeof buf) == LB_CONN_AGAIN,
          "%s: recv on a non-blocking fd with nothing there returns "
          "LB_CONN_AGAIN",
          mode);
  tap_ok (!lb_conn_pending (c), "%s: nothing pending", mode);
  lb_conn_send (c, "g", 1, -1);
  /* Wait for both records to arrive, then take one byte. */
  usleep (200 * 1000);
  p.fd = lb_conn_fd (c);
  p.events = POLLIN;
  poll (&p, 1, T_TIMEOUT);
  r = lb_conn_recv (c, buf, 1);
  tap_ok (r == 1 && buf[0] == 'h', "%s: recv of 1 byte", mode);
  if (encrypt)
    tap_ok (lb_conn_pending (c), "TLS: the rest of the record is pending "
            "(poll would not see it)");
  /* Drain the rest without blocking. */
  while (n < 9) {
    r = lb_conn_recv (c, buf + 1 + n, 9 - n);
    if (r > 0)
      n += r;
    else if (r == LB_CONN_AGAIN)
      poll (&p, 1, T_TIMEOUT);
    else
      break;
  }
  tap_ok (n == 9 && memcmp (buf, "helloworld", 10) == 0,
          "%s: the rest arrives", mode);
  t0 = now_ms ();
  tap_ok (lb_conn_recv_all (c, buf, 4, 300) == -1 && errno == ETIMEDOUT
          && now_ms () - t0 >= 290 && now_ms () - t0 < 300 + SLACK,
          "%s: recv_all times out after %lld ms on a silent peer (%s)",
          mode, (long long) (now_ms () - t0), lb_conn_error (c));
  lb_conn_close (c);
  pthread_join (s.th, NULL);
  tap_ok (s.data_ok, "%s: server side saw the client close", mode);
}

/* A TLS stream cut without close_notify is an error, not an EOF. */
static void
after_cut (struct srv *s, struct lb_conn *c)
{
  lb_conn_send (c, "x", 1, -1);
  shutdown (lb_conn_fd (c), SHUT_RDWR);
}

static void
test_truncation (int lfd, int port)
{
  struct srv s = { .after = after_cut };
  struct lb_conn *c;
  char err[256], buf[4];

  srv_start (&s, lfd, "c1", &key_a, true);
  c = cli (port, "c1", &key_a, true, T_TIMEOUT, err, sizeof err);
  pthread_join (s.th, NULL);
  if (c == NULL) {
    tap_ok (0, "TLS: truncation: %s", err);
    return;
  }
  tap_ok (lb_conn_recv_all (c, buf, 1, T_TIMEOUT) == 0 && buf[0] == 'x'
          && lb_conn_recv (c, buf, 1) == LB_CONN_ERROR
          && errno == ECONNRESET,
          "TLS: a cut without close_notify is an error: %s",
          lb_conn_error (c));
  {
    int i, r = 0;
    /* The first sends may still be buffered; the peer's RST ends that. */
    for (i = 0; i < 100 && r == 0; i++) {
      r = lb_conn_send (c, "yyyy", 4, -1);
      usleep (10 * 1000);
    }
    tap_ok (r == -1, "TLS: send to a peer that is gone fails (no SIGPIPE): "
            "%s", lb_conn_error (c));
  }
  lb_conn_close (c);
}

/* Several handshakes and transfers at once, in both modes. */
#define PAIRS 8

static void
after_sum (struct srv *s, struct lb_conn *c)
{
  uint8_t buf[4096];
  size_t i;
  ssize_t r;

  s->data_ok = true;
  while ((r = lb_conn_recv (c, buf, sizeof buf)) > 0) {
    for (i = 0; i < (size_t) r; i++)
      if (buf[i] != pattern (s->got + i, 7))
        s->data_ok = false;
    s->got += r;
  }
  if (r < 0)
    s->data_ok = false;
}

struct pair {
  int port;
  bool encrypt;
  bool ok;
};

static void *
pair_client (void *arg)
{
  struct pair *p = arg;
  uint8_t *buf = malloc (1 << 20);
  struct lb_conn *c;
  char err[256];
  size_t i;

  for (i = 0; i < 1 << 20; i++)
    buf[i] = pattern (i, 7);
  c = cli (p->port, "c1", &key_a, p->encrypt, T_TIMEOUT, err, sizeof err);
  if (c) {
    p->ok = lb_conn_send (c, buf, 1 << 20, -1) == 0;
    lb_conn_close (c);
  }
  free (buf);
  return NULL;
}

static void
test_parallel (void)
{
  struct srv s[PAIRS];
  struct pair p[PAIRS];
  pthread_t th[PAIRS];
  int lfd[PAIRS], port, i, good = 0;

  memset (s, 0, sizeof s);
  for (i = 0; i < PAIRS; i++) {
    lfd[i] = listen_any (&port);
    s[i].after = after_sum;
    srv_start (&s[i], lfd[i], "c1", &key_a, i % 2);
    p[i].port = port;
    p[i].encrypt = i % 2;
    p[i].ok = false;
  }
  for (i = 0; i < PAIRS; i++)
    pthread_create (&th[i], NULL, pair_client, &p[i]);
  for (i = 0; i < PAIRS; i++) {
    pthread_join (th[i], NULL);
    pthread_join (s[i].th, NULL);
    close (lfd[i]);
    if (p[i].ok && s[i].ok && s[i].data_ok && s[i].got == 1 << 20)
      good++;
  }
  tap_ok (good == PAIRS, "%d connections at once (TLS and plain), each "
          "1 MiB intact: %d good", PAIRS, good);
}

int
main (void)
{
  const char *env = getenv ("LB_CONN_BENCH_MIB");
#ifdef __SANITIZE_ADDRESS__
  size_t mib = env ? strtoul (env, NULL, 10) : 64;    /* ASan is slow */
#else
  size_t mib = env ? strtoul (env, NULL, 10) : 1024;
#endif
  int lfd, port;

  lfd = harness_setup (&port);

  tap_ok (lb_conn_identity_ok ("client1/wd0e") && !lb_conn_identity_ok ("")
          && !lb_conn_identity_ok ("a b") && !lb_conn_identity_ok ("\xc3\xa9")
          && lb_conn_identity_ok (
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
          && !lb_conn_identity_ok (
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
          "identity rules: 1..255 printable, no spaces");

  test_ok (lfd, port, true);
  test_ok (lfd, port, false);
  test_ping (lfd, port, true);
  test_ping (lfd, port, false);
  test_pieces (lfd, port, true);
  test_pieces (lfd, port, false);
  test_failures (lfd, port);
  test_data (lfd, port, true);
  test_data (lfd, port, false);
  test_nonblocking (lfd, port, true);
  test_nonblocking (lfd, port, false);
  test_truncation (lfd, port);
  test_parallel ();

  {
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    tap_ok (lb_sock_set_keepalive (fd) == 0, "keepalive options accepted");
    close (fd);
  }

  if (mib) {
    bench (lfd, port, false, false, mib);
    bench (lfd, port, true, false, mib);
    bench (lfd, port, true, true, mib);
  }
  close (lfd);
  return tap_done ();
}
