/* SPDX-License-Identifier: BSD-3-Clause */
/* The harness of the transport's unit tests.  See conn-harness.h. */

#include <config.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "conn-harness.h"

struct lb_key key_a, key_b;

int
harness_setup (int *port)
{
  int i, lfd;

  for (i = 0; i < 32; i++) {
    key_a.psk[i] = i * 7 + 1;
    key_b.psk[i] = i * 7 + 1;
  }
  key_b.psk[31] ^= 1;
  lfd = listen_any (port);
  if (lfd == -1) {
    printf ("Bail out! cannot listen on 127.0.0.1: %s\n", strerror (errno));
    exit (1);
  }
  return lfd;
}

int
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

int
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

void
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
struct lb_conn *
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
struct lb_conn *
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
struct lb_conn *
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

uint8_t
pattern (size_t i, unsigned seed)
{
  return (uint8_t) ((i * 2654435761u) >> 13) ^ seed;
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

void
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

