/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: lbd.conf's whole-file checks.  See lb_config_whole.h. */

#include <config.h>

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lb_array.h"
#include "lb_config_whole.h"
#include "lb_listen.h"
#include "lb_path.h"

/* A distinct listen address, and what uses it.  An address serves
 * either clients or one export: a second use of an export's address,
 * and an export on a client's, are refused.
 */
struct lb_config_whole_addr {
  struct lb_listen listen;
  int line;                     /* the first statement that uses it */
  int client_line, export_line; /* the first client, the export; or 0 */
};

/* The addresses on one port that a new address there might overlap
 * (lb_listen_overlap), each as its number in addrs + 1, or 0 for none.
 * The addresses used so far never overlap each other, so on one port
 * there is at most one wildcard of each family, and a new address
 * overlaps, of those before it: every one (if it is the IPv6 wildcard),
 * the IPv4 ones and the IPv6 wildcard (if it is the IPv4 wildcard), or
 * just the wildcards.  The first of those is the one to name.
 */
struct lb_config_whole_port {
  unsigned port;
  size_t first;                 /* the first address of any kind */
  size_t first_v4;              /* the first IPv4 address */
  size_t v4_any;                /* 0.0.0.0 */
  size_t v6_any;                /* an IPv6 wildcard */
};

/* The smaller of two address numbers, where 0 (none) is the largest. */
static size_t
lb_config_whole_first (size_t a, size_t b)
{
  if (a == 0 || (b != 0 && b < a))
    return b;
  return a;
}

/* The first address on PT that a new address of kind K would overlap,
 * as its number + 1, or 0 for none.
 */
static size_t
lb_config_whole_overlapped (const struct lb_config_whole_port *pt,
                            enum lb_listen_kind k)
{
  switch (k) {
  case LB_LISTEN_V6_ANY:
    return pt->first;
  case LB_LISTEN_V4_ANY:
    return lb_config_whole_first (pt->first_v4, pt->v6_any);
  case LB_LISTEN_V4:
    return lb_config_whole_first (pt->v4_any, pt->v6_any);
  case LB_LISTEN_V6:
    return pt->v6_any;
  }
  abort ();
}

static uint64_t
lb_config_whole_port_hash (unsigned port)
{
  return lb_index_hash (LB_INDEX_HASH_START, &port, sizeof port);
}

/* PORT's record in WH->ports, or NULL if no address uses PORT yet. */
static struct lb_config_whole_port *
lb_config_whole_port_find (const struct lb_config_whole *wh, unsigned port)
{
  size_t pos = 0, e;

  while (lb_index_next (&wh->port_index, lb_config_whole_port_hash (port),
                        &pos, &e))
    if (wh->ports[e].port == port)
      return &wh->ports[e];
  return NULL;
}

/* PORT's record in WH->ports, made if need be; NULL when out of memory. */
static struct lb_config_whole_port *
lb_config_whole_port_get (struct lb_config_whole *wh, unsigned port)
{
  struct lb_config_whole_port *pt = lb_config_whole_port_find (wh, port);

  if (pt)
    return pt;
  if (lb_array_grow (&wh->ports, &wh->pcap, wh->nports + 1,
                     sizeof *wh->ports) == -1
      || lb_index_add (&wh->port_index, lb_config_whole_port_hash (port),
                       wh->nports) == -1)
    return NULL;
  pt = &wh->ports[wh->nports++];
  *pt = (struct lb_config_whole_port) { .port = port };
  return pt;
}

/* The earlier use of an address equal to L, or NULL. */
static struct lb_config_whole_addr *
lb_config_whole_find (struct lb_config_whole *wh, const struct lb_listen *l,
                      uint64_t hash)
{
  size_t pos = 0, e;

  while (lb_index_next (&wh->addr_index, hash, &pos, &e))
    if (lb_listen_equal (l, &wh->addrs[e].listen))
      return &wh->addrs[e];
  return NULL;
}

/* Record L, not used before, as used first on LINE; NULL when out of
 * memory.
 */
static struct lb_config_whole_addr *
lb_config_whole_add (struct lb_config_whole *wh, const struct lb_listen *l,
                     uint64_t hash, int line)
{
  const enum lb_listen_kind k = lb_listen_kind (l);
  struct lb_config_whole_port *pt;
  size_t n;

  pt = lb_config_whole_port_get (wh, lb_listen_port (l));
  if (pt == NULL
      || lb_array_grow (&wh->addrs, &wh->acap, wh->naddrs + 1,
                        sizeof *wh->addrs) == -1
      || lb_index_add (&wh->addr_index, hash, wh->naddrs) == -1)
    return NULL;
  n = ++wh->naddrs;
  if (pt->first == 0)
    pt->first = n;
  if (l->family == AF_INET && pt->first_v4 == 0)
    pt->first_v4 = n;
  if (k == LB_LISTEN_V4_ANY && pt->v4_any == 0)
    pt->v4_any = n;
  if (k == LB_LISTEN_V6_ANY && pt->v6_any == 0)
    pt->v6_any = n;
  wh->addrs[n - 1] = (struct lb_config_whole_addr) {
    .listen = *l, .line = line,
  };
  return &wh->addrs[n - 1];
}

int
lb_config_whole_listen (struct lb_config_whole *wh, struct lb_config_lex *lex,
                        const struct lb_listen *l,
                        enum lb_config_whole_user user, int line,
                        const struct lb_config_word *w)
{
  const uint64_t hash = lb_listen_hash (LB_INDEX_HASH_START, l);
  struct lb_config_whole_addr *a = lb_config_whole_find (wh, l, hash);
  char shown[LB_CONFIG_SHOWN];

  lb_config_lex_show (w->p, w->n, shown);
  if (a && a->export_line)
    return LB_CONFIG_FAIL (lex, w->line, "%s: already the address of the "
                           "export on line %d", shown, a->export_line);
  if (a && user == LB_CONFIG_WHOLE_EXPORT)
    return LB_CONFIG_FAIL (lex, w->line, "%s: already the address of the "
                           "client on line %d; an export needs an address "
                           "of its own", shown, a->client_line);
  if (a == NULL) {
    /* An address equal to an earlier one overlaps nothing (the earlier
     * one would have), so only a new one needs this.
     */
    const struct lb_config_whole_port *pt
      = lb_config_whole_port_find (wh, lb_listen_port (l));
    const struct lb_config_whole_addr *b;
    size_t o = pt ? lb_config_whole_overlapped (pt, lb_listen_kind (l)) : 0;

    if (o) {
      b = &wh->addrs[o - 1];
      assert (lb_listen_overlap (l, &b->listen));
      return LB_CONFIG_FAIL (lex, w->line, "%s: overlaps listen=%s of the "
                             "%s on line %d (the two cannot both be "
                             "bound%s)", shown, b->listen.text,
                             b->export_line ? "export" : "client", b->line,
                             b->export_line
                             || user == LB_CONFIG_WHOLE_EXPORT
                             ? "" : "; give both the same address");
    }
    a = lb_config_whole_add (wh, l, hash, line);
    if (a == NULL)
      return LB_CONFIG_FAIL (lex, line, "out of memory");
  }
  if (user == LB_CONFIG_WHOLE_EXPORT)
    a->export_line = line;
  else if (a->client_line == 0)
    a->client_line = line;
  return 0;
}

int
lb_config_whole_client (struct lb_config_whole *wh, struct lb_config_lex *lex,
                        const struct lb_config *cfg,
                        const struct lb_client_conf *c,
                        const struct lb_config_word *file_w,
                        const struct lb_config_word *name_w)
{
  const struct lb_client_conf *other;
  char shown[LB_CONFIG_SHOWN], shown2[LB_CONFIG_SHOWN];
  uint64_t image_hash, name_hash;
  char *canon = lb_path_canon (c->file);
  size_t pos, e;

  assert (wh->ncanon == cfg->nclients);
  if (canon == NULL)
    return LB_CONFIG_FAIL (lex, c->line, "out of memory");

  image_hash = lb_index_hash (LB_INDEX_HASH_START, canon, strlen (canon));
  pos = 0;
  while (lb_index_next (&wh->images, image_hash, &pos, &e))
    if (strcmp (wh->canon[e], canon) == 0) {
      LB_CONFIG_FAIL (lex, file_w->line, "%s: the same image (%s) as the "
                      "client on line %d",
                      lb_config_lex_show (file_w->p, file_w->n, shown),
                      lb_config_lex_show (canon, strlen (canon), shown2),
                      cfg->clients[e].line);
      goto fail;
    }

  name_hash = lb_index_hash (lb_listen_hash (LB_INDEX_HASH_START,
                                             &c->listen),
                             c->name, strlen (c->name));
  pos = 0;
  while (lb_index_next (&wh->names, name_hash, &pos, &e)) {
    other = &cfg->clients[e];
    if (!lb_listen_equal (&c->listen, &other->listen)
        || strcmp (other->name, c->name) != 0)
      continue;
    /* lbd tells clients on one address apart by name alone. */
    if (name_w)
      LB_CONFIG_FAIL (lex, name_w->line, "%s: the client on line %d at "
                      "listen=%s has this name too",
                      lb_config_lex_show (name_w->p, name_w->n, shown),
                      other->line, c->listen.text);
    else
      LB_CONFIG_FAIL (lex, c->line, "name %s (the default: the file= "
                      "value) is the name of the client on line %d at "
                      "listen=%s too; give this one a name=",
                      lb_config_lex_show (c->name, strlen (c->name), shown),
                      other->line, c->listen.text);
    goto fail;
  }

  if (lb_array_grow (&wh->canon, &wh->ccap, wh->ncanon + 1,
                     sizeof *wh->canon) == -1
      || lb_index_add (&wh->images, image_hash, cfg->nclients) == -1
      || lb_index_add (&wh->names, name_hash, cfg->nclients) == -1) {
    LB_CONFIG_FAIL (lex, c->line, "out of memory");
    goto fail;
  }
  wh->canon[wh->ncanon++] = canon;
  return 0;

 fail:
  free (canon);
  return -1;
}

void
lb_config_whole_free (struct lb_config_whole *wh)
{
  size_t i;

  for (i = 0; i < wh->ncanon; i++)
    free (wh->canon[i]);
  free (wh->canon);
  free (wh->addrs);
  free (wh->ports);
  lb_index_free (&wh->addr_index);
  lb_index_free (&wh->port_index);
  lb_index_free (&wh->images);
  lb_index_free (&wh->names);
  *wh = (struct lb_config_whole) LB_CONFIG_WHOLE_EMPTY;
}
