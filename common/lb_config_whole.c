/* livebackup: lbd.conf's whole-file checks.  See lb_config_whole.h. */

#include <config.h>

#include <assert.h>
#include <stdlib.h>
#include <string.h>

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

/* Record L, not used before, as used first on LINE; NULL when out of
 * memory.
 */
static struct lb_config_whole_addr *
lb_config_whole_add (struct lb_config_whole *wh, const struct lb_listen *l,
                     int line)
{
  if (lb_array_grow (&wh->addrs, &wh->acap, wh->naddrs + 1,
                     sizeof *wh->addrs) == -1)
    return NULL;
  wh->addrs[wh->naddrs] = (struct lb_config_whole_addr) {
    .listen = *l, .line = line,
  };
  return &wh->addrs[wh->naddrs++];
}

/* Distinct addresses are few however many clients share them, so a
 * pass over them is cheap.
 */
int
lb_config_whole_listen (struct lb_config_whole *wh, struct lb_config_lex *lex,
                        const struct lb_listen *l,
                        enum lb_config_whole_user user, int line,
                        const struct lb_config_word *w)
{
  struct lb_config_whole_addr *a = NULL;
  char shown[LB_CONFIG_SHOWN];
  size_t i;

  lb_config_lex_show (w->p, w->n, shown);
  for (i = 0; i < wh->naddrs; i++) {
    const struct lb_config_whole_addr *b = &wh->addrs[i];
    if (lb_listen_equal (l, &b->listen)) {
      if (b->export_line)
        return LB_CONFIG_FAIL (lex, w->line, "%s: already the address of "
                               "the export on line %d", shown,
                               b->export_line);
      if (user == LB_CONFIG_WHOLE_EXPORT)
        return LB_CONFIG_FAIL (lex, w->line, "%s: already the address of "
                               "the client on line %d; an export needs an "
                               "address of its own", shown, b->client_line);
      a = &wh->addrs[i];
      break;
    }
    if (lb_listen_overlap (l, &b->listen))
      return LB_CONFIG_FAIL (lex, w->line, "%s: overlaps listen=%s of the "
                             "%s on line %d (the two cannot both be "
                             "bound%s)", shown, b->listen.text,
                             b->export_line ? "export" : "client", b->line,
                             b->export_line
                             || user == LB_CONFIG_WHOLE_EXPORT
                             ? "" : "; give both the same address");
  }
  if (a == NULL) {
    a = lb_config_whole_add (wh, l, line);
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
  lb_index_free (&wh->images);
  lb_index_free (&wh->names);
  *wh = (struct lb_config_whole) LB_CONFIG_WHOLE_EMPTY;
}
