/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: the running configuration — the clients, the listen addresses
 * and the export addresses in force, and the lock that lets other
 * threads look clients up while a reload (reload.c) changes them.
 *
 * The tables are changed only by the main thread, under RUNNING_LOCK
 * held for writing, and only for as long as pointers are swapped and
 * flags set: no I/O, no waiting.  Every other thread reads them, and
 * the line of any client it is not bound to (connset.h), only under
 * RUNNING_LOCK held for reading, never does network I/O while it holds
 * it, and never takes it twice (it prefers writers, so that a reload
 * does not wait behind a stream of lookups).  The main thread reads them freely (it alone writes them):
 * the poll loop, the control socket and status.
 */

#ifndef LBD_RUNNING_H
#define LBD_RUNNING_H

#include <pthread.h>
#include <stddef.h>

#include "client.h"
#include "listener.h"

struct running {
  struct client **clients;              /* in the config's order */
  size_t nclients;
  struct listener **listeners;
  size_t nlisteners;
  struct export_listener **exports;
  size_t nexports;
};

extern pthread_rwlock_t running_lock;
extern struct running running;

/* Lookups: the caller holds RUNNING_LOCK (for reading is enough), or is
 * the main thread.  A hidden client (client.h) is never an answer, but
 * it still holds its name: a lookup that would have found it finds
 * nothing, rather than another client of the same name.
 */

/* The client whose image is exported as NAME (LEN bytes): the first
 * client line with that name.
 */
extern struct client *running_by_name (const char *name, size_t len);

/* The default export (the empty name): the only client line's. */
extern struct client *running_only_client (void);

/* The client that IDENTITY names on listener L: the one of that name;
 * on an address with a single client line, that one whatever the name
 * (so that the seed's command line, without --name, works).
 */
extern struct client *running_on_listener (const struct listener *l,
                                           const char *identity);

#endif /* LBD_RUNNING_H */
