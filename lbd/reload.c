/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: loading lbd.conf, at start and on SIGHUP.  See reload.h.
 *
 * How a reload stays safe while connections are served.
 *
 * Other threads reach clients in two ways: bound to one (a session or
 * an export connection that found its client, connset.h), or by a
 * lookup in the running tables (the handshake's name lookup; an NBD
 * negotiation with tls=off asking about exports before it has chosen
 * one).  Lookups run under running_lock held for reading and never do
 * network I/O under it (running.h); the lookup that finds a client
 * binds the connection to it before letting go of the lock (connset.c,
 * connset_lookup; negotiate.c for tls=off).  A bound connection uses
 * its client's line freely.
 *
 * The commit then goes in three steps, the main thread all along (it
 * alone writes the tables; it does not accept meanwhile):
 *
 *   1. under running_lock for writing: every client whose line changed,
 *      and every removed one, is hidden (lookups do not find it); the
 *      new tables go in (new clients and listeners visible, untouched
 *      ones as they were).  Held only to swap pointers and set flags.
 *   2. without the lock: the connections of hidden clients, of removed
 *      listen addresses and of removed or changed export addresses are
 *      asked to end (sessions say goodbye to lb first, connset.h), and
 *      waited for.  Since step 1, no lookup can find a hidden client, so
 *      no connection can bind to it any more; every connection that
 *      found it before is bound to it, so connset_stop by client reaches
 *      them all, handshakes in flight included.  When the waits return,
 *      no thread uses a hidden client: nothing is bound to it, and
 *      lookups do not return it.
 *   3. under running_lock for writing: changed clients take their new
 *      line (key included) and are shown again; changed export
 *      addresses take their new tls=.  Then removed clients, listeners
 *      and export listeners are freed.
 *
 * So a client object outlives its config line until its last
 * connection has ended, and one image never has two client objects (a
 * client is matched to the running one by its image, file=), so two
 * sessions never write one image.  Untouched clients are never hidden
 * and their connections never asked to end: a session or a restore
 * goes on across any number of reloads.  A new key is used from step 3
 * on; between steps 1 and 3 a changed client's lb is refused as an
 * unknown name (it retries), and the old key, once step 1 is done,
 * authenticates nothing new.
 *
 * Before any of that, reload_prepare read the file and every key file
 * and bound every address the running configuration lacks: what can
 * fail, fails there, and rejects the whole file.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "export.h"
#include "lb_config.h"
#include "lb_err.h"
#include "lb_index.h"
#include "lb_log.h"
#include "listener.h"
#include "metrics.h"
#include "reload.h"
#include "running.h"
#include "session.h"

/* One client line of the new configuration. */
struct reload_entry {
  struct client_line line;      /* empty once a client has taken it */
  struct client *cl;            /* the running client of its image, or a
                                   new one (RELOAD_APPLY), or NULL */
  bool is_new;
  char changes[64];             /* what differs from CL's line; "": none */
};

struct reload_plan {
  struct lb_config cfg;
  struct reload_entry *e;       /* cfg.nclients */
  /* The listen addresses and export addresses, in the config's order:
   * running ones kept, or new ones (bound).
   */
  struct listener **listeners;
  bool *listener_new;
  size_t nlisteners;
  struct export_listener **exports;
  bool *export_new;
  struct lb_export_conf *export_conf;   /* the lines, for changed tls= */
  size_t nexports;
};

void
reload_discard (struct reload_plan *p)
{
  size_t i;

  if (p == NULL)
    return;
  for (i = 0; p->e && i < p->cfg.nclients; i++) {
    client_line_free (&p->e[i].line);
    if (p->e[i].is_new)
      client_free (p->e[i].cl);
  }
  for (i = 0; i < p->nlisteners; i++)
    if (p->listener_new[i])
      listener_free (p->listeners[i]);
  for (i = 0; i < p->nexports; i++)
    if (p->export_new[i])
      export_listener_free (p->exports[i]);
  free (p->e);
  free (p->listeners);
  free (p->listener_new);
  free (p->exports);
  free (p->export_new);
  free (p->export_conf);
  lb_config_free (&p->cfg);
  free (p);
}

/* The running client whose image is FILE, through IX (by file), or NULL. */
static struct client *
reload_running_client (const struct lb_index *ix, const char *file)
{
  uint64_t h = lb_index_hash (LB_INDEX_HASH_START, file, strlen (file));
  size_t pos = 0, e;

  while (lb_index_next (ix, h, &pos, &e))
    if (strcmp (running.clients[e]->conf->file, file) == 0)
      return running.clients[e];
  return NULL;
}

/* Match every line of P to the running client of its image. */
static int
reload_match (struct reload_plan *p, char *err, size_t errlen)
{
  struct lb_index ix = LB_INDEX_EMPTY;
  size_t i;

  for (i = 0; i < running.nclients; i++) {
    const char *f = running.clients[i]->conf->file;
    if (lb_index_add (&ix, lb_index_hash (LB_INDEX_HASH_START, f,
                                          strlen (f)), i) == -1) {
      lb_index_free (&ix);
      lb_errf (err, errlen, "out of memory");
      return -1;
    }
  }
  for (i = 0; i < p->cfg.nclients; i++) {
    struct reload_entry *en = &p->e[i];
    en->cl = reload_running_client (&ix, en->line.conf.file);
    if (en->cl)
      client_line_changes (en->cl, &en->line, en->changes,
                           sizeof en->changes);
  }
  lb_index_free (&ix);
  return 0;
}

/* The running listener on ADDR, or NULL. */
static struct listener *
reload_running_listener (const struct lb_listen *addr)
{
  size_t i;

  for (i = 0; i < running.nlisteners; i++)
    if (lb_listen_equal (&running.listeners[i]->addr, addr))
      return running.listeners[i];
  return NULL;
}

static struct export_listener *
reload_running_export (const struct lb_listen *addr)
{
  size_t i;

  for (i = 0; i < running.nexports; i++)
    if (lb_listen_equal (&running.exports[i]->conf->listen, addr))
      return running.exports[i];
  return NULL;
}

/* P's listen addresses: the running ones it keeps, and new ones, bound
 * if MODE says so (else left NULL).  The config allows few distinct
 * addresses per file in practice; a pass over them per line is cheap.
 */
static int
reload_listeners (struct reload_plan *p, enum reload_mode mode,
                  char *err, size_t errlen)
{
  const struct lb_config *cfg = &p->cfg;
  struct lb_listen *seen;
  size_t i, j, n = 0;

  p->listeners = calloc (cfg->nclients, sizeof *p->listeners);
  p->listener_new = calloc (cfg->nclients, sizeof *p->listener_new);
  seen = calloc (cfg->nclients, sizeof *seen);
  p->exports = calloc (cfg->nexports + 1, sizeof *p->exports);
  p->export_new = calloc (cfg->nexports + 1, sizeof *p->export_new);
  p->export_conf = calloc (cfg->nexports + 1, sizeof *p->export_conf);
  if (!p->listeners || !p->listener_new || !seen || !p->exports
      || !p->export_new || !p->export_conf) {
    free (seen);
    lb_errf (err, errlen, "out of memory");
    return -1;
  }
  for (i = 0; i < cfg->nclients; i++) {
    const struct lb_client_conf *cc = &cfg->clients[i];
    for (j = 0; j < n && !lb_listen_equal (&seen[j], &cc->listen); j++)
      ;
    if (j < n)
      continue;
    seen[n] = cc->listen;
    p->listeners[n] = reload_running_listener (&cc->listen);
    if (p->listeners[n] == NULL && mode == RELOAD_APPLY) {
      p->listeners[n] = listener_new (&cc->listen, cfg->path, cc->line,
                                      err, errlen);
      if (p->listeners[n] == NULL) {
        free (seen);
        return -1;
      }
      p->listener_new[n] = true;
    }
    p->nlisteners = ++n;
  }
  free (seen);
  for (i = 0; i < cfg->nexports; i++) {
    const struct lb_export_conf *ec = &cfg->exports[i];
    p->export_conf[i] = *ec;
    p->exports[i] = reload_running_export (&ec->listen);
    if (p->exports[i] == NULL && mode == RELOAD_APPLY) {
      p->exports[i] = export_listener_new (ec, cfg->path, err, errlen);
      if (p->exports[i] == NULL)
        return -1;
      p->export_new[i] = true;
    }
    p->nexports = i + 1;
  }
  return 0;
}

struct reload_plan *
reload_prepare (const char *config, bool allow_open_key,
                enum reload_mode mode, enum reload_refusal *why,
                char *err, size_t errlen)
{
  struct reload_plan *p = calloc (1, sizeof *p);
  size_t i;

  *why = RELOAD_CANNOT_BIND;
  if (p == NULL) {
    lb_errf (err, errlen, "out of memory");
    return NULL;
  }
  *why = RELOAD_BAD_CONFIG;
  if (lb_config_load (config, &p->cfg, err, errlen) == -1)
    goto refused;
  if (p->cfg.nclients == 0) {
    lb_errf (err, errlen, "%s: no client lines", config);
    goto refused;
  }
  p->e = calloc (p->cfg.nclients, sizeof *p->e);
  if (p->e == NULL) {
    lb_errf (err, errlen, "out of memory");
    goto refused;
  }
  for (i = 0; i < p->cfg.nclients; i++)
    if (client_line_load (&p->e[i].line, &p->cfg.clients[i], p->cfg.path,
                          allow_open_key, err, errlen) == -1)
      goto refused;
  *why = RELOAD_CANNOT_BIND;
  if (reload_match (p, err, errlen) == -1
      || reload_listeners (p, mode, err, errlen) == -1)
    goto refused;
  if (mode == RELOAD_APPLY)
    for (i = 0; i < p->cfg.nclients; i++) {
      struct reload_entry *en = &p->e[i];
      if (en->cl)
        continue;
      en->cl = client_new (&en->line, p->cfg.nexports > 0);
      if (en->cl == NULL) {
        lb_errf (err, errlen, "out of memory");
        goto refused;
      }
      en->is_new = true;
    }
  return p;

 refused:
  reload_discard (p);
  return NULL;
}

/* The first client line of P named NAME, or NULL. */
static const struct client_line *
reload_plan_line (const struct reload_plan *p, const char *name)
{
  size_t i;

  for (i = 0; i < p->cfg.nclients; i++)
    if (strcmp (p->e[i].line.conf.name, name) == 0)
      return &p->e[i].line;
  return NULL;
}

const struct lb_key *
reload_plan_key (const struct reload_plan *p, const char *name)
{
  const struct client_line *ln = reload_plan_line (p, name);
  return ln ? &ln->key : NULL;
}

const char *
reload_plan_file (const struct reload_plan *p, const char *name)
{
  const struct client_line *ln = reload_plan_line (p, name);
  return ln ? ln->conf.file : NULL;
}

const char *
reload_plan_metrics (const struct reload_plan *p, int *line)
{
  *line = p->cfg.server.metrics_line;
  return p->cfg.server.metrics;
}

bool
reload_plan_exports (const struct reload_plan *p)
{
  return p->cfg.nexports > 0;
}

/* Log the lines of the commit P, for the operator (and the tests). */
static void
reload_log_clients (const struct reload_plan *p, bool first)
{
  size_t i, j;

  for (i = 0; i < p->cfg.nclients; i++) {
    const struct reload_entry *en = &p->e[i];
    const struct lb_client_conf *cc = &p->cfg.clients[i];
    if (!first && en->is_new)
      lb_info ("client %s: added (image %s, listen %s)", cc->name, cc->file,
               cc->listen.text);
    else if (!first && en->changes[0])
      lb_info ("client %s: changed (%s); its connections restart",
               cc->name, en->changes);
    for (j = 0; j < i && p->cfg.nexports; j++)
      if (strcmp (p->cfg.clients[j].name, cc->name) == 0) {
        lb_warn ("%s:%d: client %s has the name of the client on line %d: "
                 "only that one is exported", p->cfg.path, cc->line,
                 cc->name, p->cfg.clients[j].line);
        break;
      }
  }
}

/* Build the new tables from P into NEW, and each listener's client list
 * into LISTS and COUNTS (in P's listener order).  Before the lock: only
 * allocations.
 */
static int
reload_tables (struct reload_plan *p, struct running *new,
               struct client ***lists, size_t *counts)
{
  size_t i, j;

  new->nclients = p->cfg.nclients;
  new->clients = calloc (new->nclients, sizeof *new->clients);
  new->nlisteners = p->nlisteners;
  new->listeners = p->listeners;
  new->nexports = p->nexports;
  new->exports = p->exports;
  if (new->clients == NULL)
    return -1;
  for (i = 0; i < p->cfg.nclients; i++)
    new->clients[i] = p->e[i].cl;
  for (j = 0; j < p->nlisteners; j++) {
    lists[j] = calloc (p->cfg.nclients, sizeof *lists[j]);
    if (lists[j] == NULL)
      return -1;
    for (i = 0; i < p->cfg.nclients; i++)
      if (lb_listen_equal (&p->cfg.clients[i].listen,
                           &p->listeners[j]->addr))
        lists[j][counts[j]++] = p->e[i].cl;
  }
  return 0;
}

void
reload_commit (struct reload_plan *p)
{
  bool first = running.nclients == 0 && running.nlisteners == 0;
  bool exports = p->cfg.nexports > 0;
  struct running new = { 0 }, old = running;
  struct client ***lists;
  bool *client_kept, *listener_kept, *export_kept, *export_changed;
  size_t *counts, i, j, nchanged = 0, nremoved = 0, nadded = 0;

  lists = calloc (p->nlisteners + 1, sizeof *lists);
  counts = calloc (p->nlisteners + 1, sizeof *counts);
  client_kept = calloc (old.nclients + 1, sizeof *client_kept);
  listener_kept = calloc (old.nlisteners + 1, sizeof *listener_kept);
  export_kept = calloc (old.nexports + 1, sizeof *export_kept);
  export_changed = calloc (p->nexports + 1, sizeof *export_changed);
  if (!lists || !counts || !client_kept || !listener_kept || !export_kept
      || !export_changed || reload_tables (p, &new, lists, counts) == -1) {
    /* No memory for a few pointers: keep what runs. */
    lb_err ("%s: not reloaded: out of memory", p->cfg.path);
    for (j = 0; lists && j < p->nlisteners; j++)
      free (lists[j]);
    free (lists);
    free (counts);
    free (new.clients);
    free (client_kept);
    free (listener_kept);
    free (export_kept);
    free (export_changed);
    reload_discard (p);
    return;
  }
  for (i = 0; i < old.nclients; i++)
    for (j = 0; j < p->cfg.nclients && !client_kept[i]; j++)
      client_kept[i] = p->e[j].cl == old.clients[i];
  for (i = 0; i < old.nlisteners; i++)
    for (j = 0; j < p->nlisteners && !listener_kept[i]; j++)
      listener_kept[i] = p->listeners[j] == old.listeners[i];
  for (i = 0; i < old.nexports; i++)
    for (j = 0; j < p->nexports && !export_kept[i]; j++)
      export_kept[i] = p->exports[j] == old.exports[i];
  for (j = 0; j < p->nexports; j++)
    export_changed[j] = !p->export_new[j]
                        && p->exports[j]->conf->tls != p->export_conf[j].tls;

  reload_log_clients (p, first);

  /* Step 1: hide what changes or goes; the new tables in. */
  pthread_rwlock_wrlock (&running_lock);
  for (i = 0; i < p->cfg.nclients; i++)
    if (p->e[i].changes[0])
      p->e[i].cl->hidden = true;
  for (i = 0; i < old.nclients; i++)
    if (!client_kept[i])
      old.clients[i]->hidden = true;
  for (j = 0; j < p->nlisteners; j++) {
    struct client **prev = p->listeners[j]->clients;
    p->listeners[j]->clients = lists[j];
    p->listeners[j]->nclients = counts[j];
    lists[j] = prev;            /* the old list, freed below */
  }
  running = new;
  pthread_rwlock_unlock (&running_lock);

  /* Step 2: end the connections of what changed or went; wait. */
  for (i = 0; i < old.nclients; i++)
    if (!client_kept[i]) {
      lb_info ("client %s: removed; its connections end",
               old.clients[i]->conf->name);
      session_end (NULL, old.clients[i], CONNSET_STOP_RELOAD);
      export_end (NULL, old.clients[i], CONNSET_STOP_RELOAD);
      nremoved++;
    }
  for (i = 0; i < p->cfg.nclients; i++)
    if (p->e[i].changes[0]) {
      session_end (NULL, p->e[i].cl, CONNSET_STOP_RELOAD);
      export_end (NULL, p->e[i].cl, CONNSET_STOP_RELOAD);
    }
  for (i = 0; i < old.nlisteners; i++)
    if (!listener_kept[i]) {
      lb_info ("no longer listening on %s", old.listeners[i]->addr.text);
      session_end (old.listeners[i], NULL, CONNSET_STOP_RELOAD);
    }
  for (i = 0; i < old.nexports; i++)
    if (!export_kept[i]) {
      lb_info ("no longer exporting on %s",
               old.exports[i]->conf->listen.text);
      export_end (old.exports[i], NULL, CONNSET_STOP_RELOAD);
    }
  for (j = 0; j < p->nexports; j++)
    if (export_changed[j]) {
      lb_info ("export %s: changed (tls); its connections restart",
               p->exports[j]->conf->listen.text);
      export_end (p->exports[j], NULL, CONNSET_STOP_RELOAD);
    }
  for (i = 0; i < old.nclients; i++)
    if (!client_kept[i]) {
      session_wait (NULL, old.clients[i]);
      export_wait (NULL, old.clients[i]);
    }
  for (i = 0; i < p->cfg.nclients; i++)
    if (p->e[i].changes[0]) {
      session_wait (NULL, p->e[i].cl);
      export_wait (NULL, p->e[i].cl);
    }
  for (i = 0; i < old.nlisteners; i++)
    if (!listener_kept[i])
      session_wait (old.listeners[i], NULL);
  for (i = 0; i < old.nexports; i++)
    if (!export_kept[i])
      export_wait (old.exports[i], NULL);
  for (j = 0; j < p->nexports; j++)
    if (export_changed[j])
      export_wait (p->exports[j], NULL);

  /* Step 3: changed lines in, shown again. */
  pthread_rwlock_wrlock (&running_lock);
  for (i = 0; i < p->cfg.nclients; i++) {
    struct reload_entry *en = &p->e[i];
    if (en->changes[0]) {
      client_update (en->cl, &en->line);
      en->cl->hidden = false;
      nchanged++;
    }
    else if (!en->is_new)
      en->cl->line.conf.line = p->cfg.clients[i].line;
    nadded += en->is_new;
  }
  for (j = 0; j < p->nexports; j++) {
    if (export_changed[j])
      p->exports[j]->own.tls = p->export_conf[j].tls;
    p->exports[j]->own.line = p->export_conf[j].line;
  }
  pthread_rwlock_unlock (&running_lock);
  for (i = 0; i < p->cfg.nclients; i++)
    snapset_enable (&p->e[i].cl->snaps, exports);

  for (j = 0; j < p->nexports; j++)
    if (p->export_new[j])
      lb_info ("exporting the images on %s (%s)",
               p->exports[j]->conf->listen.text,
               p->exports[j]->conf->tls ? "NBD, TLS with each client's key"
                                        : "NBD, no TLS");
  for (j = 0; j < p->nlisteners; j++)
    if (p->listener_new[j])
      lb_info ("listening on %s for %zu client%s",
               p->listeners[j]->addr.text, p->listeners[j]->nclients,
               p->listeners[j]->nclients == 1 ? "" : "s");
  if (!first)
    lb_info ("reloaded %s: %zu client%s (%zu added, %zu changed, %zu "
             "removed), %zu listen address%s, %zu export address%s",
             p->cfg.path, p->cfg.nclients, p->cfg.nclients == 1 ? "" : "s",
             nadded, nchanged, nremoved, p->nlisteners,
             p->nlisteners == 1 ? "" : "es", p->nexports,
             p->nexports == 1 ? "" : "es");

  /* Free what went, and what the plan no longer owns. */
  for (i = 0; i < old.nclients; i++)
    if (!client_kept[i])
      client_free (old.clients[i]);
  for (i = 0; i < old.nlisteners; i++)
    if (!listener_kept[i])
      listener_free (old.listeners[i]);
  for (i = 0; i < old.nexports; i++)
    if (!export_kept[i])
      export_listener_free (old.exports[i]);
  for (j = 0; j < p->nlisteners; j++)
    free (lists[j]);
  free (lists);
  free (counts);
  free (old.clients);
  free (old.listeners);
  free (old.exports);
  free (client_kept);
  free (listener_kept);
  free (export_kept);
  free (export_changed);
  /* The tables now own the plan's objects. */
  for (i = 0; i < p->cfg.nclients; i++) {
    client_line_free (&p->e[i].line);
    p->e[i].is_new = false;
  }
  p->nlisteners = p->nexports = 0;
  p->listeners = NULL;
  p->exports = NULL;
  reload_discard (p);
}

void
reload_shutdown (void)
{
  size_t i;

  /* Nothing new from now on, then every connection ends. */
  for (i = 0; i < running.nlisteners; i++) {
    close (running.listeners[i]->fd);
    running.listeners[i]->fd = -1;
  }
  for (i = 0; i < running.nexports; i++) {
    close (running.exports[i]->fd);
    running.exports[i]->fd = -1;
  }
  export_shutdown_all ();
  session_shutdown_all ();
  /* The last word on every client, before they go. */
  metrics_close ();
  pthread_rwlock_wrlock (&running_lock);
  for (i = 0; i < running.nclients; i++)
    client_free (running.clients[i]);
  for (i = 0; i < running.nlisteners; i++)
    listener_free (running.listeners[i]);
  for (i = 0; i < running.nexports; i++)
    export_listener_free (running.exports[i]);
  free (running.clients);
  free (running.listeners);
  free (running.exports);
  memset (&running, 0, sizeof running);
  pthread_rwlock_unlock (&running_lock);
}
