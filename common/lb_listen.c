/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: listen addresses.  See lb_listen.h. */

#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>

#include "lb_index.h"
#include "lb_listen.h"

static const struct sockaddr_in *
lb_listen_v4 (const struct lb_listen *l)
{
  return (const struct sockaddr_in *) &l->addr;
}

static const struct sockaddr_in6 *
lb_listen_v6 (const struct lb_listen *l)
{
  return (const struct sockaddr_in6 *) &l->addr;
}

/* Parse the port digits S[0..N) into *PORT: 1..65535, digits only. */
static bool
lb_listen_parse_port (const char *s, size_t n, unsigned *port)
{
  unsigned long v = 0;
  size_t i;

  if (n == 0)
    return false;
  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (s[i] - '0');
    if (v > 65535)
      return false;
  }
  if (v == 0)
    return false;
  *port = v;
  return true;
}

/* Fill L with the IPv4 address A and PORT. */
static void
lb_listen_set_ipv4 (struct lb_listen *l, struct in_addr a, unsigned port)
{
  struct sockaddr_in *s4 = (struct sockaddr_in *) &l->addr;
  char shown[INET_ADDRSTRLEN];

  memset (&l->addr, 0, sizeof l->addr);
  s4->sin_family = AF_INET;
  s4->sin_addr = a;
  s4->sin_port = htons (port);
  l->family = AF_INET;
  l->addrlen = sizeof *s4;
  l->loopback = (ntohl (a.s_addr) >> 24) == 127;
  inet_ntop (AF_INET, &a, shown, sizeof shown);
  snprintf (l->text, sizeof l->text, "%s/%u", shown, port);
}

/* Parse the IPv6 literal A (NUL-terminated, writable, no brackets, an
 * optional %ZONE) with PORT into L.  Returns NULL, or why it is wrong.
 */
static const char *
lb_listen_parse_ipv6 (struct lb_listen *l, char *a, unsigned port)
{
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) &l->addr;
  char shown[INET6_ADDRSTRLEN], *zone = strchr (a, '%');
  bool numeric = false;
  uint32_t scope = 0;

  if (zone) {
    *zone++ = '\0';
    if (*zone == '\0')
      return "bad address (empty zone after %)";
    numeric = zone[strspn (zone, "0123456789")] == '\0';
    if (numeric) {
      unsigned long z;
      errno = 0;
      z = strtoul (zone, NULL, 10);
      if (errno || z == 0 || z > UINT32_MAX)
        return "bad address (bad zone number)";
      scope = z;
    }
    else if ((scope = if_nametoindex (zone)) == 0)
      return "bad address (no such network interface)";
  }
  if (inet_pton (AF_INET6, a, &s6->sin6_addr) != 1)
    return "bad address";
  if (IN6_IS_ADDR_V4MAPPED (&s6->sin6_addr) && !zone) {
    /* ::ffff:a.b.c.d is that IPv4 address: store it as one, so that both
     * spellings compare equal and bind the same way.
     */
    struct in_addr a4;
    memcpy (&a4, &s6->sin6_addr.s6_addr[12], sizeof a4);
    lb_listen_set_ipv4 (l, a4, port);
    return NULL;
  }
  s6->sin6_family = AF_INET6;
  s6->sin6_port = htons (port);
  s6->sin6_scope_id = scope;
  l->family = AF_INET6;
  l->addrlen = sizeof *s6;
  l->loopback = IN6_IS_ADDR_LOOPBACK (&s6->sin6_addr);
  inet_ntop (AF_INET6, &s6->sin6_addr, shown, sizeof shown);
  /* A zone shows as its number, or as the name of an interface that
   * exists, which is short: the text always fits.
   */
  if (numeric)
    snprintf (l->text, sizeof l->text, "%s%%%u/%u", shown,
              (unsigned) scope, port);
  else if (zone)
    snprintf (l->text, sizeof l->text, "%s%%%s/%u", shown, zone, port);
  else
    snprintf (l->text, sizeof l->text, "%s/%u", shown, port);
  return NULL;
}

const char *
lb_listen_parse (const char *v, size_t n, struct lb_listen *l)
{
  /* Room for an IPv6 literal in brackets with an interface zone. */
  char addr[INET6_ADDRSTRLEN + IF_NAMESIZE + 8];
  const char *slash = NULL;
  struct in_addr a4;
  unsigned port;
  size_t an, i;

  memset (l, 0, sizeof *l);
  /* The last slash: the address part never holds one. */
  for (i = n; i > 0; i--)
    if (v[i - 1] == '/') {
      slash = v + i - 1;
      break;
    }
  if (slash == NULL)
    return "no port (write ADDRESS/PORT)";
  if (!lb_listen_parse_port (slash + 1, v + n - slash - 1, &port))
    return "bad port (1 to 65535)";
  an = slash - v;
  if (an == 0 || an >= sizeof addr)
    return "bad address";
  memcpy (addr, v, an);
  addr[an] = '\0';

  if (strcmp (addr, "*") == 0) {
    /* Every address: one dual-stack IPv6 socket takes IPv4 as well. */
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) &l->addr;
    s6->sin6_family = AF_INET6;
    s6->sin6_addr = in6addr_any;
    s6->sin6_port = htons (port);
    l->family = AF_INET6;
    l->addrlen = sizeof *s6;
    snprintf (l->text, sizeof l->text, "*/%u", port);
    return NULL;
  }
  /* The slash before the port makes brackets needless, but people
   * write them out of habit.
   */
  if (addr[0] == '[') {
    if (an < 3 || addr[an - 1] != ']')
      return "bad address";
    addr[an - 1] = '\0';
    return lb_listen_parse_ipv6 (l, addr + 1, port);
  }
  if (strchr (addr, ':'))
    return lb_listen_parse_ipv6 (l, addr, port);
  /* inet_pton takes only the dotted quad: no 10.1, no octal, no hex. */
  if (inet_pton (AF_INET, addr, &a4) != 1)
    return "bad address";
  lb_listen_set_ipv4 (l, a4, port);
  return NULL;
}

unsigned
lb_listen_port (const struct lb_listen *l)
{
  if (l->family == AF_INET)
    return ntohs (lb_listen_v4 (l)->sin_port);
  return ntohs (lb_listen_v6 (l)->sin6_port);
}

bool
lb_listen_equal (const struct lb_listen *a, const struct lb_listen *b)
{
  if (a->family != b->family || lb_listen_port (a) != lb_listen_port (b))
    return false;
  if (a->family == AF_INET)
    return lb_listen_v4 (a)->sin_addr.s_addr
      == lb_listen_v4 (b)->sin_addr.s_addr;
  return memcmp (&lb_listen_v6 (a)->sin6_addr, &lb_listen_v6 (b)->sin6_addr,
                 sizeof (struct in6_addr)) == 0
    && lb_listen_v6 (a)->sin6_scope_id == lb_listen_v6 (b)->sin6_scope_id;
}

enum lb_listen_kind
lb_listen_kind (const struct lb_listen *l)
{
  if (l->family == AF_INET)
    return lb_listen_v4 (l)->sin_addr.s_addr == htonl (INADDR_ANY)
      ? LB_LISTEN_V4_ANY : LB_LISTEN_V4;
  return IN6_IS_ADDR_UNSPECIFIED (&lb_listen_v6 (l)->sin6_addr)
    ? LB_LISTEN_V6_ANY : LB_LISTEN_V6;
}

bool
lb_listen_overlap (const struct lb_listen *a, const struct lb_listen *b)
{
  enum lb_listen_kind ka = lb_listen_kind (a), kb = lb_listen_kind (b);

  if (lb_listen_port (a) != lb_listen_port (b) || lb_listen_equal (a, b))
    return false;
  return ka == LB_LISTEN_V6_ANY || kb == LB_LISTEN_V6_ANY
    || (ka == LB_LISTEN_V4_ANY && b->family == AF_INET)
    || (kb == LB_LISTEN_V4_ANY && a->family == AF_INET);
}

uint64_t
lb_listen_hash (uint64_t h, const struct lb_listen *l)
{
  unsigned port = lb_listen_port (l);

  h = lb_index_hash (h, &l->family, sizeof l->family);
  h = lb_index_hash (h, &port, sizeof port);
  if (l->family == AF_INET)
    return lb_index_hash (h, &lb_listen_v4 (l)->sin_addr,
                          sizeof (struct in_addr));
  h = lb_index_hash (h, &lb_listen_v6 (l)->sin6_addr,
                     sizeof (struct in6_addr));
  return lb_index_hash (h, &lb_listen_v6 (l)->sin6_scope_id,
                        sizeof (uint32_t));
}
