/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: the listening sockets — one per listen address of client lines
 * (shared by every client line with that address), one per export line.
 *
 * The main thread binds them (at start and at a reload, before anything
 * else changes, so that an address that cannot be bound rejects the
 * whole new configuration), polls and accepts on them.  A connection
 * accepted on one points to it until it ends (connset.h: stopping by
 * listener), so a listener lives until its last connection is gone.
 * A listener's CLIENTS change at a reload, under running_lock for
 * writing (running.h); the session lookup reads them under it for
 * reading.
 */

#ifndef LBD_LISTENER_H
#define LBD_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

#include "client.h"
#include "lb_config.h"

struct listener {
  struct lb_listen addr;
  int fd;
  struct client **clients;      /* the clients configured on this address */
  size_t nclients;
};

struct export_listener {
  const struct lb_export_conf *conf;    /* &OWN */
  struct lb_export_conf own;
  int fd;
};

/* A listening socket on ADDR (of the statement on LINE of CONFIG), or
 * -1 with ERR "CONFIG:LINE: listen=ADDR: why".
 */
extern int listener_bind (const struct lb_listen *addr, const char *config,
                          int line, char *err, size_t errlen);

/* Accept a connection on the listening socket LFD: the socket, with
 * keepalive on, and the peer's address in PEER; -1 if none was waiting.
 */
extern int listener_accept (int lfd, char *peer, size_t len);

/* A listener for ADDR, bound (see listener_bind), with no clients yet;
 * NULL with ERR.
 */
extern struct listener *listener_new (const struct lb_listen *addr,
                                      const char *config, int line,
                                      char *err, size_t errlen);
/* Close L's socket and free it; its connections have ended. */
extern void listener_free (struct listener *l);

/* An export listener for EC, bound; NULL with ERR. */
extern struct export_listener *
export_listener_new (const struct lb_export_conf *ec, const char *config,
                     char *err, size_t errlen);
extern void export_listener_free (struct export_listener *el);

#endif /* LBD_LISTENER_H */
