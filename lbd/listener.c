/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: the listening sockets.  See listener.h. */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "lb_err.h"
#include "lb_sock.h"
#include "listener.h"

int
listener_bind (const struct lb_listen *addr, const char *config, int line,
               char *err, size_t errlen)
{
  int one = 1, fd, e;

  fd = socket (addr->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) {
    lb_errf (err, errlen, "%s:%d: listen=%s: socket: %s", config, line,
             addr->text, strerror (errno));
    return -1;
  }
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (addr->family == AF_INET6) {
    /* "*" is the IPv6 any address serving IPv4 too (dual stack); a
     * specific IPv6 address serves only itself.
     */
    int v6only = addr->text[0] != '*';
    setsockopt (fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  }
  if (bind (fd, (const struct sockaddr *) &addr->addr, addr->addrlen) == -1
      || listen (fd, 128) == -1) {
    e = errno;
    lb_errf (err, errlen, "%s:%d: listen=%s: %s", config, line, addr->text,
             strerror (e));
    close (fd);
    return -1;
  }
  fcntl (fd, F_SETFL, O_NONBLOCK);
  return fd;
}

static void
listener_peer_name (const struct sockaddr_storage *ss, char *peer,
                    size_t len)
{
  char host[INET6_ADDRSTRLEN];

  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *) ss;
    inet_ntop (AF_INET6, &s6->sin6_addr, host, sizeof host);
    snprintf (peer, len, "[%s]:%u", host, ntohs (s6->sin6_port));
  }
  else {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *) ss;
    inet_ntop (AF_INET, &s4->sin_addr, host, sizeof host);
    snprintf (peer, len, "%s:%u", host, ntohs (s4->sin_port));
  }
}

int
listener_accept (int lfd, char *peer, size_t len)
{
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  int fd = accept4 (lfd, (struct sockaddr *) &ss, &sl, SOCK_CLOEXEC);

  if (fd == -1)
    return -1;
  listener_peer_name (&ss, peer, len);
  lb_sock_set_keepalive (fd);
  return fd;
}

struct listener *
listener_new (const struct lb_listen *addr, const char *config, int line,
              char *err, size_t errlen)
{
  struct listener *l = calloc (1, sizeof *l);

  if (l == NULL) {
    lb_errf (err, errlen, "out of memory");
    return NULL;
  }
  l->addr = *addr;
  l->fd = listener_bind (addr, config, line, err, errlen);
  if (l->fd == -1) {
    free (l);
    return NULL;
  }
  return l;
}

void
listener_free (struct listener *l)
{
  if (l == NULL)
    return;
  if (l->fd >= 0)
    close (l->fd);
  free (l->clients);
  free (l);
}

struct export_listener *
export_listener_new (const struct lb_export_conf *ec, const char *config,
                     char *err, size_t errlen)
{
  struct export_listener *el = calloc (1, sizeof *el);

  if (el == NULL) {
    lb_errf (err, errlen, "out of memory");
    return NULL;
  }
  el->own = *ec;
  el->conf = &el->own;
  el->fd = listener_bind (&ec->listen, config, ec->line, err, errlen);
  if (el->fd == -1) {
    free (el);
    return NULL;
  }
  return el;
}

void
export_listener_free (struct export_listener *el)
{
  if (el == NULL)
    return;
  if (el->fd >= 0)
    close (el->fd);
  free (el);
}
