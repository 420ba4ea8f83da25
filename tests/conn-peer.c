/* SPDX-License-Identifier: BSD-3-Clause */
/* A test peer for the transport, to meet standard TLS tools
 * (tests/conn-interop.sh).
 *
 * Server: conn-peer [--plain-line] PORTFILE NAME KEYHEX
 *   listens on 127.0.0.1 (port chosen by the kernel, written to
 *   PORTFILE), accepts one connection and shakes hands as lbd would with
 *   one client line (NAME, the 32-byte key in hex, TLS unless
 *   --plain-line); prints "handshake ok: ..." or "handshake failed: ..."
 *   on stderr, then echoes what it receives until the peer ends.
 * Client: conn-peer --connect=PORT [--plain] NAME KEYHEX
 *   shakes hands with 127.0.0.1:PORT, sends one line and prints what
 *   comes back within 5 s.
 * Exit status 0 if the handshake succeeded, 1 otherwise.
 */

#include <config.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "lb_conn.h"

static const char *name;
static struct lb_key key;
static bool plain_line;

static int
peer_lookup (void *opaque, const char *identity, struct lb_key *k,
             bool *encrypt, void **client)
{
  if (strcmp (identity, name) != 0)
    return -1;
  *k = key;
  *encrypt = !plain_line;
  *client = NULL;
  return 0;
}

static int
peer_hex (const char *hex, struct lb_key *k)
{
  unsigned i, b;

  if (strlen (hex) != 2 * sizeof k->psk)
    return -1;
  for (i = 0; i < sizeof k->psk; i++) {
    if (sscanf (hex + 2 * i, "%2x", &b) != 1)
      return -1;
    k->psk[i] = b;
  }
  return 0;
}

static int
peer_server (const char *portfile)
{
  struct sockaddr_in a = { .sin_family = AF_INET };
  socklen_t len = sizeof a;
  char err[256], identity[300], buf[4096], tmp[4096];
  struct lb_conn *c;
  FILE *f;
  ssize_t r;
  int lfd, fd, on = 1;

  lfd = socket (AF_INET, SOCK_STREAM, 0);
  setsockopt (lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (lfd == -1 || bind (lfd, (struct sockaddr *) &a, sizeof a) == -1
      || listen (lfd, 4) == -1
      || getsockname (lfd, (struct sockaddr *) &a, &len) == -1) {
    perror ("conn-peer: listen");
    return 1;
  }
  /* Written whole and renamed, so a reader never sees half a number. */
  snprintf (tmp, sizeof tmp, "%s.tmp", portfile);
  f = fopen (tmp, "w");
  if (f == NULL || fprintf (f, "%d\n", ntohs (a.sin_port)) < 0
      || fclose (f) != 0 || rename (tmp, portfile) == -1) {
    perror ("conn-peer: port file");
    return 1;
  }

  fd = accept (lfd, NULL, NULL);
  if (fd == -1) {
    perror ("conn-peer: accept");
    return 1;
  }
  c = lb_conn_server (fd, peer_lookup, NULL, 10000, NULL, identity,
                      sizeof identity, err, sizeof err);
  if (c == NULL) {
    fprintf (stderr, "conn-peer: handshake failed: %s\n", err);
    close (fd);
    return 1;
  }
  fprintf (stderr, "conn-peer: handshake ok: identity=%s %s\n", identity,
           lb_conn_describe (c));
  while ((r = lb_conn_recv (c, buf, sizeof buf)) > 0)
    if (lb_conn_send (c, buf, r, -1) == -1)
      break;
  if (r < 0)
    fprintf (stderr, "conn-peer: %s\n", lb_conn_error (c));
  lb_conn_close (c);
  return 0;
}

static int
peer_client (int port, bool encrypt)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons (port) };
  static const char line[] = "hello from lb_conn\n";
  char err[256], buf[sizeof line];
  struct lb_conn *c;
  int fd;

  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  fd = socket (AF_INET, SOCK_STREAM, 0);
  if (fd == -1 || connect (fd, (struct sockaddr *) &a, sizeof a) == -1) {
    perror ("conn-peer: connect");
    return 1;
  }
  c = lb_conn_client (fd, name, &key, encrypt, 10000, err, sizeof err);
  if (c == NULL) {
    fprintf (stderr, "conn-peer: handshake failed: %s\n", err);
    close (fd);
    return 1;
  }
  fprintf (stderr, "conn-peer: handshake ok: %s\n", lb_conn_describe (c));
  if (lb_conn_send (c, line, sizeof line - 1, -1) == -1
      || lb_conn_recv_all (c, buf, sizeof line - 1, 5000) == -1)
    fprintf (stderr, "conn-peer: %s\n", lb_conn_error (c));
  else
    fwrite (buf, 1, sizeof line - 1, stdout);
  lb_conn_close (c);
  return 0;
}

int
main (int argc, char **argv)
{
  int i = 1, port = 0;
  bool encrypt = true;

  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp (argv[i], "--plain-line") == 0)
      plain_line = true;
    else if (strcmp (argv[i], "--plain") == 0)
      encrypt = false;
    else if (strncmp (argv[i], "--connect=", 10) == 0)
      port = atoi (argv[i] + 10);
    else
      break;
  }
  if (argc - i != (port ? 2 : 3)
      || peer_hex (argv[argc - 1], &key) == -1) {
    fprintf (stderr, "usage: conn-peer [--plain-line] PORTFILE NAME KEYHEX\n"
             "       conn-peer --connect=PORT [--plain] NAME KEYHEX\n");
    return 2;
  }
  name = argv[argc - 2];
  return port ? peer_client (port, encrypt) : peer_server (argv[i]);
}
