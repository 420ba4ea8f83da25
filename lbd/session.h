/* lbd: clients and their sessions.
 *
 * A client is one config line: its image, its key, its status.  A session
 * is one authenticated connection serving a client, run by its own thread,
 * so that one client's slowness never stalls another.  A newer session
 * for a client replaces the older one: it shuts the old connection down
 * and waits for the old thread to let go of the image, so two sessions
 * never write one image at once.
 */

#ifndef LBD_SESSION_H
#define LBD_SESSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lb_config.h"
#include "lb_key.h"
#include "snapshot.h"

struct session;

struct client {
  const struct lb_client_conf *conf;
  struct lb_key key;

  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct session *owner;        /* session holding the image, or NULL */
  /* The image's snapshots for restores (snapshot.h), with its own lock;
   * lives as long as lbd.
   */
  struct snapset snaps;

  /* Status, under LOCK (clientstat.h reads it). */
  bool connected;
  char peer[64];
  uint64_t since;               /* the last session began or ended; 0:
                                   none since lbd started */
  uint32_t phase;
  uint64_t phase_since;         /* PHASE, or being disconnected, began */
  bool consistent;
  uint64_t last_consistent;
  uint64_t epoch, seq;
  uint64_t size;                /* the image's */
  uint64_t scanned;             /* scanning: bytes [0, scanned) compared,
                                   as far as lb's hash requests got */
  bool backlog_known;           /* lb's backlog at its last sync (SYNC) */
  uint64_t backlog, backlog_swept;
  uint64_t bytes_in;            /* payload bytes received, all sessions */
  uint64_t connects, replaced, refused;
  /* The newest record applied to the image since lbd started (written
   * by the session owning the image, under LOCK): a later session in the
   * same epoch that starts from an older durable seq gets records up to
   * this one again (session.c, replays).
   */
  uint64_t applied_epoch, applied_seq;
  unsigned exports;             /* export connections open */
  uint64_t exports_served;      /* export connections opened, ever */
  uint64_t exports_refused;     /* ... refused (handshake or no state) */
  uint64_t rate;                /* bytes/s over the last few seconds */
  uint64_t rate_bytes;
  uint64_t rate_time_ms;
};

struct listener {
  struct lb_listen addr;
  int fd;
  struct client **clients;      /* the clients configured on this address */
  size_t nclients;
};

/* Serve one accepted connection FD from PEER on listener L: handshake
 * (bounded by LBD_HANDSHAKE_MS), then the session, in a thread of its
 * own (connset.h); returns at once.  Refused at once (logged, FD
 * closed) while LBD_MAX_HANDSHAKING sessions are in their handshake.
 */
extern void session_start (struct listener *l, int fd, const char *peer);

/* End the sessions on listener L (NULL: on any) serving client CL
 * (NULL: any, and those still in their handshake) and wait for them;
 * the others run on.  For a reload that drops or changes one client or
 * one listen address.
 */
extern void session_stop (const struct listener *l, const struct client *cl);

/* Refuse new sessions, ask every session to end, and wait for them. */
extern void session_shutdown_all (void);

#define LBD_HANDSHAKE_MS     10000
/* Per kind of connection (sessions, exports): at most this many in
 * their handshake at once.
 */
#define LBD_MAX_HANDSHAKING  64

#endif
