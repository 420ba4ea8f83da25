/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: the running configuration.  See running.h. */

#include <config.h>

#include <string.h>

#include "running.h"

/* Writers first: a reload must not wait behind a stream of handshakes'
 * lookups (no reader ever takes it twice, which this kind forbids).
 */
pthread_rwlock_t running_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
struct running running;

/* CL, unless it is hidden. */
static struct client *
running_visible (struct client *cl)
{
  return cl && !cl->hidden ? cl : NULL;
}

struct client *
running_by_name (const char *name, size_t len)
{
  size_t i;

  for (i = 0; i < running.nclients; i++) {
    const char *n = running.clients[i]->conf->name;
    if (strlen (n) == len && memcmp (n, name, len) == 0)
      return running_visible (running.clients[i]);
  }
  return NULL;
}

struct client *
running_only_client (void)
{
  return running.nclients == 1 ? running_visible (running.clients[0]) : NULL;
}

struct client *
running_on_listener (const struct listener *l, const char *identity)
{
  size_t i;

  for (i = 0; i < l->nclients; i++)
    if (strcmp (l->clients[i]->conf->name, identity) == 0)
      return running_visible (l->clients[i]);
  if (l->nclients == 1)
    return running_visible (l->clients[0]);
  return NULL;
}
