/* Unit tests of the transport (common/lb_conn.c and the files beside
 * it): handshakes in both modes over TCP loopback, every way they must
 * fail, data both ways, raw mode and its upgrade in place (STARTTLS),
 * bounded sends and receives, and a throughput report.  SIGPIPE is left at its default on purpose:
 * a send that raised it would kill the test.
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
#include <stdatomic.h>
#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "lb_conn.h"
#include "tap.h"

#define T_TIMEOUT 5000          /* ms, for handshakes that should work */
/* ms a bounded wait may overrun its bound on a busy machine; a wait
 * that ignored the bound would run into GnuTLS's or TCP's own limits,
 * tens of seconds, or forever.
 */
#define SLACK 2000

static struct lb_key key_a, key_b;

static int64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU seconds used by the whole process (every thread) so far. */
static double
cpu_s (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
    + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int
listen_any (int *port)
{
  struct sockaddr_in a = { .sin_family = AF_INET };
  socklen_t len = sizeof a;
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;

  if (fd == -1)
    return -1;
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (bind (fd, (struct sockaddr *) &a, sizeof a) == -1
      || listen (fd, 64) == -1
      || getsockname (fd, (struct sockaddr *) &a, &len) == -1) {
    close (fd);
    return -1;
  }
  *port = ntohs (a.sin_port);
  return fd;
}

static int
connect_to (int port)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons (port) };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (fd == -1)
    return -1;
  if (connect (fd, (struct sockaddr *) &a, sizeof a) == -1) {
    close (fd);
    return -1;
  }
  return fd;
}

/* A server thread: accepts one connection on LFD and shakes hands as if
 * configured with one client line (NAME, KEY, ENCRYPT); then AFTER runs
 * on the connection, which is closed when it returns.  HOW says which
 * handshake: lb_conn_server's; none (raw mode); or raw mode, one
 * exchange in clear ("STARTTLS" / "ACK", as NBD's option and its
 * reply), then lb_conn_server_starttls.
 */
enum srv_how { SRV_HANDSHAKE, SRV_RAW, SRV_STARTTLS };

struct srv {
  int lfd;
  enum srv_how how;
  const char *name;
  struct lb_key key;
  bool encrypt;
  int timeout_ms;
  void (*after) (struct srv *s, struct lb_conn *c);
  size_t nbytes;                /* for AFTER */

  pthread_t th;
  bool ok;
  int e;
  int64_t ms;                   /* handshake time */
  void *client;
  char err[256], identity[300], desc[128];
  bool data_ok;
  size_t got;
  bool raw_ok;                  /* SRV_STARTTLS: the exchange in clear */
  atomic_bool release;          /* for after_hold */
};

static int
srv_lookup (void *opaque, const char *identity, struct lb_key *key,
            bool *encrypt, void **client)
{
  struct srv *s = opaque;

  if (strcmp (identity, s->name) != 0)
    return -1;
  *key = s->key;
  *encrypt = s->encrypt;
  *client = s;
  return 0;
}

/* SRV_STARTTLS: the request and its answer in clear, before the
 * upgrade.  0, or -1 (S->err says why).
 */
static int
srv_in_clear (struct srv *s, struct lb_conn *c)
{
  char req[8];

  s->raw_ok = lb_conn_recv_all (c, req, sizeof req, T_TIMEOUT) == 0
    && memcmp (req, "STARTTLS", sizeof req) == 0
    && lb_conn_send (c, "ACK", 3, T_TIMEOUT) == 0;
  if (!s->raw_ok)
    snprintf (s->err, sizeof s->err, "in clear: %s", lb_conn_error (c));
  return s->raw_ok ? 0 : -1;
}

static void *
srv_thread (void *arg)
{
  struct srv *s = arg;
  struct lb_conn *c = NULL;
  int64_t t0;
  int fd = accept (s->lfd, NULL, NULL), r = 0;

  if (fd == -1) {
    snprintf (s->err, sizeof s->err, "accept: %s", strerror (errno));
    return NULL;
  }
  if (s->how != SRV_HANDSHAKE) {
    /* Raw mode owns FD from here on. */
    c = lb_conn_raw (fd);
    if (c == NULL) {
      snprintf (s->err, sizeof s->err, "lb_conn_raw: %s", strerror (errno));
      close (fd);
      return NULL;
    }
    if (s->how == SRV_STARTTLS && srv_in_clear (s, c) == -1) {
      lb_conn_close (c);
      return NULL;
    }
  }
  t0 = now_ms ();
  if (s->how == SRV_HANDSHAKE) {
    c = lb_conn_server (fd, srv_lookup, s, s->timeout_ms, &s->client,
                        s->identity, sizeof s->identity, s->err,
                        sizeof s->err);
    r = c ? 0 : -1;
  }
  else if (s->how == SRV_STARTTLS)
    r = lb_conn_server_starttls (c, srv_lookup, s, s->timeout_ms,
                                 &s->client, s->identity,
                                 sizeof s->identity, s->err, sizeof s->err);
  s->ms = now_ms () - t0;
  s->e = errno;
  if (r == -1) {
    /* A failed upgrade leaves C, which owns FD, for closing. */
    if (c)
      lb_conn_close (c);
    else
      close (fd);
    return NULL;
  }
  s->ok = true;
  snprintf (s->desc, sizeof s->desc, "%s", lb_conn_describe (c));
  if (s->after)
    s->after (s, c);
  lb_conn_close (c);
  return NULL;
}

static void
srv_start (struct srv *s, int lfd, const char *name, const struct lb_key *k,
           bool encrypt)
{
  s->lfd = lfd;
  s->name = name;
  s->key = *k;
  s->encrypt = encrypt;
  if (s->timeout_ms == 0)
    s->timeout_ms = T_TIMEOUT;
  pthread_create (&s->th, NULL, srv_thread, s);
}

/* Connect and shake hands as a client; NULL with ERR on failure. */
static struct lb_conn *
cli (int port, const char *name, const struct lb_key *k, bool encrypt,
     int timeout_ms, char *err, size_t errlen)
{
  struct lb_conn *c;
  int fd = connect_to (port);

  if (fd == -1) {
    snprintf (err, errlen, "connect: %s", strerror (errno));
    return NULL;
  }
  c = lb_conn_client (fd, name, k, encrypt, timeout_ms, err, errlen);
  if (c == NULL)
    close (fd);
  return c;
}

/* Connect in raw mode; NULL with ERR on failure. */
static struct lb_conn *
cli_raw (int port, char *err, size_t errlen)
{
  struct lb_conn *c;
  int fd = connect_to (port);

  if (fd == -1) {
    snprintf (err, errlen, "connect: %s", strerror (errno));
    return NULL;
  }
  c = lb_conn_raw (fd);
  if (c == NULL) {
    snprintf (err, errlen, "lb_conn_raw: %s", strerror (errno));
    close (fd);
  }
  return c;
}

/* Connect, ask for STARTTLS in clear as an NBD client would, then shake
 * hands; NULL with ERR on failure.  *FD (if not NULL) gets the socket,
 * left open on failure for the caller to watch (and close).
 */
static struct lb_conn *
cli_starttls (int port, const char *name, const struct lb_key *k,
              bool encrypt, char *err, size_t errlen, int *fdp)
{
  struct lb_conn *c;
  char ack[3];
  int fd = connect_to (port);

  if (fd == -1) {
    snprintf (err, errlen, "connect: %s", strerror (errno));
    return NULL;
  }
  if (send (fd, "STARTTLS", 8, MSG_NOSIGNAL) != 8
      || recv (fd, ack, sizeof ack, MSG_WAITALL) != sizeof ack
      || memcmp (ack, "ACK", 3) != 0) {
    snprintf (err, errlen, "no ACK in clear");
    close (fd);
    return NULL;
  }
  c = lb_conn_client (fd, name, k, encrypt, T_TIMEOUT, err, errlen);
  if (fdp)
    *fdp = fd;
  else if (c == NULL)
    close (fd);
  return c;
}

static uint8_t
pattern (size_t i, unsigned seed)
{
  return (uint8_t) ((i * 2654435761u) >> 13) ^ seed;
}

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

/* ---- throughput (reported, not asserted) ------------------------------ */

static void
after_sink (struct srv *s, struct lb_conn *c)
{
  uint8_t *buf = malloc (1 << 20);
  ssize_t r;

  while ((r = lb_conn_recv (c, buf, 1 << 20)) > 0)
    s->got += r;
  s->data_ok = r == 0;
  free (buf);
}

static void
bench (int lfd, int port, bool encrypt, bool vec, size_t mib)
{
  struct srv s = { .after = after_sink };
  size_t chunk = 1 << 20, i;
  uint8_t *buf = malloc (chunk), hdr[32] = { 0 };
  struct iovec v[2] = {
    { .iov_base = hdr, .iov_len = sizeof hdr },
    { .iov_base = buf, .iov_len = chunk },
  };
  struct lb_conn *c;
  char err[256];
  double t0, t, cpu0, cpu;
  int r = 0;

  memset (buf, 0xa5, chunk);
  srv_start (&s, lfd, "c1", &key_a, encrypt);
  c = cli (port, "c1", &key_a, encrypt, T_TIMEOUT, err, sizeof err);
  if (c == NULL) {
    printf ("# bench: %s\n", err);
    pthread_join (s.th, NULL);
    free (buf);
    return;
  }
  t0 = now_s ();
  cpu0 = cpu_s ();
  for (i = 0; i < mib && r == 0; i++)
    r = vec ? lb_conn_sendv (c, v, 2, -1)
      : lb_conn_send (c, buf, chunk, -1);
  lb_conn_close (c);
  pthread_join (s.th, NULL);
  t = now_s () - t0;
  cpu = cpu_s () - cpu0;
  /* CPU time says more than wall time on a shared machine. */
  printf ("# throughput %-5s %-22s %zu MiB in %.2f s: %5.0f MB/s; "
          "CPU %.2f s/GiB (both ends)%s\n",
          encrypt ? "TLS" : "plain",
          vec ? "(sendv 32 B + 1 MiB)" : "(send 1 MiB)", mib, t,
          s.got / t / 1e6, cpu * 1024 / mib,
          s.data_ok && s.got == mib * (chunk + (vec ? sizeof hdr : 0))
          ? "" : " (INCOMPLETE)");
  if (encrypt && !vec)
    printf ("#   negotiated: %s\n", s.desc);
  free (buf);
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
  int lfd, port, i;

  for (i = 0; i < 32; i++) {
    key_a.psk[i] = i * 7 + 1;
    key_b.psk[i] = i * 7 + 1;
  }
  key_b.psk[31] ^= 1;

  lfd = listen_any (&port);
  if (lfd == -1) {
    printf ("Bail out! cannot listen on 127.0.0.1: %s\n", strerror (errno));
    return 1;
  }

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
  test_raw (lfd, port);
  test_bounds (lfd, port, SRV_RAW, false);
  test_bounds (lfd, port, SRV_HANDSHAKE, false);
  test_bounds (lfd, port, SRV_HANDSHAKE, true);
  test_starttls (lfd, port);

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
