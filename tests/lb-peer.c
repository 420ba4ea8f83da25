/* SPDX-License-Identifier: BSD-3-Clause */
/* lb-peer: a misbehaving client, for the tests of lbd's defences.
 *
 *   lb-peer MODE HOST PORT [KEYFILE NAME DEVSIZE]
 *
 * Unauthenticated modes (no key needed):
 *   garbage    send bytes that are neither TLS nor plain mode
 *   silent     connect and send nothing for 15 s
 *   flood=N    open N connections at once, hold them 5 s
 * Authenticated modes (TLS with KEYFILE as NAME, HELLO for DEVSIZE):
 *   oversized  a header announcing a body over the limit
 *   truncated  a WRITE cut short, then close
 *   badtype    an unknown message type
 *   past-end   WRITE, ZERO, BLOCK and HASH_REQ beyond the image's end
 *   server-msg a message only the server may send
 *   version=N  a HELLO of protocol version N: lbd must answer ERROR code
 *              2 (LBP_ERR_VERSION); its text is printed
 * Exit status 0 when the server reacted as it must (refused or closed),
 * 1 when it accepted what it must not.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>
#include <sys/socket.h>

#include "lb_conn.h"
#include "lb_key.h"
#include "lb_proto.h"
#include "lb_wire.h"

static int
peer_connect (const char *host, const char *port)
{
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
  int fd;

  if (getaddrinfo (host, port, &hints, &res) != 0)
    return -1;
  fd = socket (res->ai_family, SOCK_STREAM, 0);
  if (fd >= 0 && connect (fd, res->ai_addr, res->ai_addrlen) == -1) {
    close (fd);
    fd = -1;
  }
  freeaddrinfo (res);
  return fd;
}

/* Did the server close the connection (or answer ERROR) within 10 s? */
static int
peer_expect_close (struct lb_conn *c, const char *what)
{
  uint8_t *buf = NULL;
  size_t cap = 0;
  struct lbp_msg m;
  const char *why;
  enum lbw_recv_outcome r = lbw_recv (c, &m, &buf, &cap, 10000, &why);

  free (buf);
  if (r == LBW_RECV_MSG && m.type == LBP_ERROR) {
    printf ("lb-peer: %s: server answered ERROR %u and closed\n", what,
            m.code);
    return 0;
  }
  if (r == LBW_RECV_END
      || (r == LBW_RECV_BROKEN && why && !strstr (why, "timed out"))) {
    printf ("lb-peer: %s: server closed the connection\n", what);
    return 0;
  }
  printf ("lb-peer: %s: server did NOT refuse (%s)\n", what,
          r == LBW_RECV_MSG ? lbp_type_name (m.type) : why);
  return 1;
}

/* A HELLO of VERSION other than ours was answered: exit 0 if by
 * ERROR code 2 (its text printed), else 1.
 */
static void
peer_version_refused (struct lb_conn *c, uint32_t version, int got,
                      const struct lbp_msg *m)
{
  if (got == LBW_RECV_MSG && m->type == LBP_ERROR
      && m->code == LBP_ERR_VERSION) {
    printf ("lb-peer: version %u: refused: %.*s\n", version,
            (int) m->payload_len, (const char *) m->payload);
    lb_conn_close (c);
    exit (0);
  }
  printf ("lb-peer: version %u: server did NOT refuse it (%s)\n", version,
          got == LBW_RECV_MSG ? lbp_type_name (m->type) : "no answer");
  exit (1);
}

static struct lb_conn *
peer_session (const char *host, const char *port, const char *keyfile,
              const char *name, uint64_t dev_size, uint32_t version)
{
  struct lb_key key;
  char err[512];
  struct lb_conn *c;
  struct lbp_msg m = { .type = LBP_HELLO, .version = version,
                       .epoch = 1, .dev_size = dev_size,
                       .hash_block = 65536,
                       .partition = UINT64_C(0x1eb9ee7) };
  uint8_t *buf = NULL;
  size_t cap = 0;
  const char *why;
  int fd, got;

  if (lb_key_load (keyfile, true, &key, err, sizeof err) == -1) {
    fprintf (stderr, "lb-peer: %s\n", err);
    exit (2);
  }
  fd = peer_connect (host, port);
  if (fd == -1) {
    perror ("lb-peer: connect");
    exit (2);
  }
  c = lb_conn_client (fd, name, &key, true, 10000, err, sizeof err);
  if (c == NULL) {
    fprintf (stderr, "lb-peer: handshake: %s\n", err);
    exit (2);
  }
  if (lbw_send (c, &m, NULL, 0) == -1) {
    fprintf (stderr, "lb-peer: cannot send HELLO\n");
    exit (2);
  }
  got = lbw_recv (c, &m, &buf, &cap, 10000, &why);
  if (version != LBP_VERSION)
    peer_version_refused (c, version, got, &m);
  if (got != LBW_RECV_MSG || m.type != LBP_WELCOME) {
    fprintf (stderr, "lb-peer: no WELCOME\n");
    exit (2);
  }
  free (buf);
  return c;
}

int
main (int argc, char **argv)
{
  const char *mode, *host, *port;
  int fd, r = 0;

  signal (SIGPIPE, SIG_IGN);
  if (argc < 4) {
    fprintf (stderr, "usage: lb-peer MODE HOST PORT [KEYFILE NAME DEVSIZE]\n");
    return 2;
  }
  mode = argv[1];
  host = argv[2];
  port = argv[3];

  if (strcmp (mode, "garbage") == 0) {
    static const char junk[] = "GET / HTTP/1.0\r\n\r\n\x01\x02\x03";
    fd = peer_connect (host, port);
    if (fd == -1 || write (fd, junk, sizeof junk) != sizeof junk)
      return 2;
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    char b[64];
    /* The server must hang up, saying nothing useful. */
    r = poll (&pfd, 1, 10000) == 1 && read (fd, b, sizeof b) <= 0 ? 0 : 1;
    printf ("lb-peer: garbage: %s\n", r ? "server did NOT hang up"
                                        : "server hung up");
    return r;
  }
  if (strcmp (mode, "silent") == 0) {
    fd = peer_connect (host, port);
    if (fd == -1)
      return 2;
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    char b[64];
    r = poll (&pfd, 1, 15000) == 1 && read (fd, b, sizeof b) <= 0 ? 0 : 1;
    printf ("lb-peer: silent: %s\n", r ? "server kept the connection"
                                       : "server hung up");
    return r;
  }
  if (strncmp (mode, "flood=", 6) == 0) {
    int n = atoi (mode + 6), i, opened = 0;
    int *fds = calloc (n, sizeof *fds);
    for (i = 0; i < n; i++)
      if ((fds[i] = peer_connect (host, port)) >= 0)
        opened++;
    printf ("lb-peer: flood: %d of %d connections opened\n", opened, n);
    sleep (5);
    for (i = 0; i < n; i++)
      if (fds[i] >= 0)
        close (fds[i]);
    free (fds);
    return 0;
  }

  if (argc != 7) {
    fprintf (stderr, "lb-peer: %s needs KEYFILE NAME DEVSIZE\n", mode);
    return 2;
  }
  uint64_t size = strtoull (argv[6], NULL, 10);
  uint32_t version = strncmp (mode, "version=", 8) == 0
                     ? (uint32_t) strtoul (mode + 8, NULL, 10) : LBP_VERSION;
  struct lb_conn *c = peer_session (host, port, argv[4], argv[5], size,
                                    version);
  uint8_t hdr[LBP_HDR_SIZE + 64];

  if (strcmp (mode, "oversized") == 0) {
    struct lbp_msg m = { .type = LBP_WRITE, .seq = 1, .length = 4096 };
    lbp_encode (&m, 0, hdr);
    lb_put_le32 (hdr + 4, 0x7fffffff);
    lb_conn_send (c, hdr, LBP_HDR_SIZE, -1);
    r = peer_expect_close (c, "oversized");
  }
  else if (strcmp (mode, "truncated") == 0) {
    struct lbp_msg m = { .type = LBP_WRITE, .seq = 1, .offset = 0,
                         .length = 65536 };
    size_t n = lbp_encode (&m, 65536, hdr);
    lb_conn_send (c, hdr, n, -1);
    lb_conn_send (c, "partial", 7, -1);
    printf ("lb-peer: truncated: sent a cut WRITE and left\n");
  }
  else if (strcmp (mode, "badtype") == 0) {
    memset (hdr, 0, LBP_HDR_SIZE);
    hdr[0] = 0x99;
    lb_conn_send (c, hdr, LBP_HDR_SIZE, -1);
    r = peer_expect_close (c, "badtype");
  }
  else if (strcmp (mode, "server-msg") == 0) {
    struct lbp_msg m = { .type = LBP_SYNCED, .id = 1 };
    lbw_send (c, &m, NULL, 0);
    r = peer_expect_close (c, "server-msg");
  }
  else if (strcmp (mode, "past-end") == 0) {
    static uint8_t data[4096];
    struct lbp_msg w = { .type = LBP_WRITE, .seq = 1, .offset = size - 100,
                         .length = 4096, .enc = LBP_ENC_RAW };
    struct lbp_msg z = { .type = LBP_ZERO, .seq = 1, .offset = size,
                         .length = 1 };
    struct lbp_msg b = { .type = LBP_BLOCK, .offset = UINT64_MAX - 10,
                         .length = 4096, .enc = LBP_ENC_RAW };
    struct lbp_msg h = { .type = LBP_HASH_REQ, .id = 1, .offset = size + 1,
                         .length = 65536, .hash_block = 65536 };
    memset (data, 0xee, sizeof data);
    lbw_send (c, &w, data, sizeof data);
    r |= peer_expect_close (c, "write past the end");
    lb_conn_close (c);
    c = peer_session (host, port, argv[4], argv[5], size,
                      LBP_VERSION);
    lbw_send (c, &z, NULL, 0);
    r |= peer_expect_close (c, "zero past the end");
    lb_conn_close (c);
    c = peer_session (host, port, argv[4], argv[5], size,
                      LBP_VERSION);
    lbw_send (c, &b, data, sizeof data);
    r |= peer_expect_close (c, "block at a wrapping offset");
    lb_conn_close (c);
    c = peer_session (host, port, argv[4], argv[5], size,
                      LBP_VERSION);
    lbw_send (c, &h, NULL, 0);
    r |= peer_expect_close (c, "hashes past the end");
  }
  else {
    fprintf (stderr, "lb-peer: unknown mode %s\n", mode);
    r = 2;
  }
  lb_conn_close (c);
  return r;
}
