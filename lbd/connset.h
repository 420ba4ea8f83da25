/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: a set of connections, one detached thread each.
 *
 * lbd serves two kinds of connection: lb's replication sessions
 * (session.c) and restores over NBD (export.c).  Each kind is one
 * connset: the set knows every connection it started, so that SIGTERM
 * and a reload that drops or changes one client or one listen address
 * (reload.c) can end them and wait for their threads; it bounds how
 * many may be in their handshake at once (bounded cost before
 * authentication); it answers the TLS/plain handshake's name lookup so
 * that an unknown name fails exactly as a wrong key does; and it logs
 * refused handshakes, rate-limited, since a peer decides how many there
 * are.
 *
 * Life of a connection:
 *
 *   connset_start ──► refused (caps, shutdown): ops->full (rate-limited),
 *        │                               ops->release (arg); no thread
 *        └──────────► thread: ops->serve (c, arg)
 *                               connset_lookup   (from lb_conn_server)
 *                               connset_refused  (after it)
 *                               connset_handshake_done
 *                               ... serving ...
 *                     connset forgets the socket (no more shutdowns)
 *                     ops->release (arg)          closes it, frees ARG
 *                     out of the set; connset_wait wakes
 *
 * A connection belongs to the listener it was accepted on from the
 * start, and to a client (struct client, client.h) once one is known:
 * from the lookup that found it (connset_lookup), or connset_set_client.
 * connset_stop and connset_wait select by either, so that stopping one
 * client's or one listener's connections while the others run is one
 * call each.  The lookup binds the connection to the client it found
 * under ops->lookup_lock, the lock that whoever changes what ops->find
 * answers (reload.c) holds for writing: so once such a change has
 * hidden a client, connset_stop by that client reaches every
 * connection that ever found it, its handshakes in flight included.
 *
 * Stopping.  A connection is asked to end for a reason (enum
 * connset_why).  Where ops->goodbye is set (sessions, which tell lb
 * why before they go), a connection past its handshake is only woken
 * (connset_conn_wake_fd) and ends by itself at the next message
 * boundary; any other is shut down at once (its socket's next or
 * current read or write fails).  connset_wait shuts down the ones that
 * have not ended within CONNSET_GRACE_MS.
 *
 * Locking: one mutex per set, never held while calling ops.  Callers
 * may hold their own locks (a client's) when calling connset_conn_stop,
 * so the set never takes a caller's lock under its own; the order is
 * ops->lookup_lock, then the set's.
 */

#ifndef LBD_CONNSET_H
#define LBD_CONNSET_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "lb_key.h"
#include "lb_log.h"

struct lb_conn;

/* One connection of a set; private to connset.c. */
struct connset_conn;

/* Map IDENTITY (a name lb_conn_server has checked) presented on
 * LISTENER to a client: fill *KEY and *ENCRYPT (whether it must use
 * TLS) and return the client, or return NULL for a name LISTENER does
 * not serve.  Called from handshakes in several threads at once, with
 * ops->lookup_lock held for reading.
 */
typedef void *(*connset_find) (void *listener, const char *identity,
                               struct lb_key *key, bool *encrypt);

/* What one kind of connection does; constant. */
struct connset_ops {
  /* For "cannot start a session thread": "a session thread". */
  const char *thread;
  /* Refused handshakes are logged as
   *   PREFIX WHERE ": " PEER ": " HANDSHAKE " failed (identity 'x'): why"
   * e.g. "export 127.0.0.1/10809: 127.0.0.1:4711: TLS handshake failed".
   */
  const char *log_prefix;
  const char *handshake;
  unsigned max_conns;           /* open at once; 0: no bound */
  unsigned max_handshaking;     /* of those, still in their handshake */
  /* Stopped past their handshake, connections are woken rather than
   * shut down, to say goodbye (see Stopping above).
   */
  bool goodbye;
  /* Held for reading across FIND and the binding of its answer (see
   * above); NULL: none needed.
   */
  pthread_rwlock_t *lookup_lock;
  /* Log that a connection on LISTENER was refused for the caps; called
   * at most once per 10 s per set, since a peer decides how often.
   */
  void (*full) (void *listener);
  connset_find find;
  /* Count a refused handshake of CLIENT (one FIND named), for status. */
  void (*refused) (void *client);
  /* The thread's work: handshake, then serve; returns when done.  ARG
   * is connset_start's.  Runs in the connection's own thread.
   */
  void (*serve) (struct connset_conn *c, void *arg);
  /* Close the connection's socket and free ARG; the set no longer
   * touches the socket.  Runs in the connection's thread after SERVE,
   * or in connset_start's caller if no thread started.
   */
  void (*release) (void *arg);
};

struct connset {
  const struct connset_ops *ops;
  /* The rest is connset.c's, under LOCK. */
  pthread_mutex_t lock;
  pthread_cond_t gone;          /* a connection left the set */
  struct connset_conn *list;
  unsigned count;               /* connections in LIST */
  unsigned handshaking;         /* of those, not past connset_handshake_done */
  bool stopping;                /* connset_shutdown: no new connections */
  time_t full_logged;           /* ops->full, last called */
  struct lb_log_limit refusals; /* connset_refused's lines */
};

/* Why a connection is asked to end; connset_conn_stopping says. */
enum connset_why {
  CONNSET_RUNNING = 0,          /* it is not */
  CONNSET_STOP_REPLACED,        /* a newer connection takes its place */
  CONNSET_STOP_RELOAD,          /* its client or address changed or went */
  CONNSET_STOP_SHUTDOWN,        /* lbd is stopping */
  CONNSET_STOP_TEST,            /* for lbd/test-connset.c */
};

/* How long connset_wait lets connections woken to say goodbye take
 * before it shuts them down.
 */
#define CONNSET_GRACE_MS 5000

/* A set for OPS; REFUSALS names its refused handshakes in the line
 * that counts those not logged ("refused connections").
 */
#define CONNSET_INIT(ops, refusals)                                     \
  { (ops), PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL,   \
    0, 0, false, 0, LB_LOG_LIMIT_INIT (20, (refusals)) }

enum connset_start {
  CONNSET_STARTED,              /* the thread runs */
  CONNSET_FULL,                 /* at max_conns or max_handshaking */
  CONNSET_STOPPING,             /* connset_shutdown has begun */
  CONNSET_FAILED,               /* no memory, or no thread (logged) */
};

/* Start a thread serving the accepted socket FD on LISTENER (WHERE is
 * its address as logs write it, PEER the peer's; WHERE must outlive the
 * connection), with ARG for the set's ops.  The connection counts as in
 * its handshake until connset_handshake_done.  FD and ARG are the
 * set's whatever the outcome: on any but CONNSET_STARTED, ops->release
 * (ARG) has run before the return (and ops->full, for CONNSET_FULL, if
 * due).
 */
extern enum connset_start connset_start (struct connset *set, int fd,
                                         void *listener, const char *where,
                                         const char *peer, void *arg);

/* C's handshake is over (either way): it no longer counts against
 * max_handshaking.  Idempotent; the set calls it after ops->serve too.
 */
extern void connset_handshake_done (struct connset_conn *c);

/* An lb_conn_lookup (common/lb_conn.h): pass C as its OPAQUE.  Answers
 * with the set's ops->find, under ops->lookup_lock, and binds C to the
 * client found (connset_set_client) before the lock is let go; for a
 * name it does not know, a random key (so the handshake fails exactly
 * as with a wrong key, and a peer without a key cannot learn which
 * names exist), TLS, and no client, and C remembers that the name was
 * unknown, for connset_refused.
 */
extern int connset_lookup (void *c, const char *identity, struct lb_key *key,
                           bool *encrypt, void **client);

/* After lb_conn_server (..., connset_lookup, C, ..., &CLIENT, IDENTITY,
 * ..., ERR, ...) returned CONN: is this a refusal?  If not (CONN and
 * CLIENT set), C now belongs to CLIENT and false is returned.  If so,
 * it is logged (rate-limited per set), with the peer's IDENTITY and
 * ERR, or "unknown client name" where the lookup did not know the name,
 * counted (ops->refused) if CLIENT is known, and true is returned; a
 * CONN that authenticated without a client (cannot happen: a random
 * key cannot match) is refused too, and left to the caller to close
 * with the rest.
 */
extern bool connset_refused (struct connset_conn *c,
                             const struct lb_conn *conn, void *client,
                             const char *identity, const char *err);

/* C serves CLIENT from now on (for connset_stop and connset_wait).  A
 * connection serves at most one client once its handshake is over:
 * CLIENT is the one it has, or the first.  Before that (an NBD
 * negotiation that asks about one export, then another), it may be
 * bound to another: the caller no longer uses the one before.  A
 * caller that found CLIENT under a lock a reload takes binds it before
 * letting go of that lock (see above).
 */
extern void connset_set_client (struct connset_conn *c, void *client);

/* Ask C to end for WHY (not CONNSET_RUNNING) now, whatever the set's
 * ops->goodbye: mark it and shut its socket down, so that its thread's
 * next (or current) read or write fails.  Returns true if C was not
 * stopping before.  Does not wait.  C must be alive: the caller knows
 * its thread is still inside ops->serve.
 */
extern bool connset_conn_stop (struct connset_conn *c, enum connset_why why);

/* Why C has been asked to end (the first reason given), or
 * CONNSET_RUNNING (false) if it has not.
 */
extern enum connset_why connset_conn_stopping (const struct connset_conn *c);

/* A descriptor that becomes readable once C is asked to end, to poll
 * beside the socket while waiting for the peer: for sets with
 * ops->goodbye, whose connections past their handshake are only woken.
 * -1 in other sets.
 */
extern int connset_conn_wake_fd (const struct connset_conn *c);

/* Ask every connection of SET on LISTENER (NULL: on any) that serves
 * CLIENT (NULL: whether it serves one or not) to end for WHY: woken
 * where ops->goodbye says so, else shut down.  A connection whose
 * handshake has not yet looked its peer's name up serves no client:
 * only LISTENER (or NULL, NULL) selects it.  Returns how many were
 * asked; does not wait.
 */
extern unsigned connset_stop (struct connset *set, const void *listener,
                              const void *client, enum connset_why why);

/* Wait until SET holds no connection that LISTENER and CLIENT select
 * (as connset_stop does): their ops->release has returned.  Those that
 * still run after CONNSET_GRACE_MS are shut down.
 */
extern void connset_wait (struct connset *set, const void *listener,
                          const void *client);

/* SIGTERM: refuse new connections from now on, stop every one
 * (CONNSET_STOP_SHUTDOWN) and wait for every thread.
 */
extern void connset_shutdown (struct connset *set);

#endif
