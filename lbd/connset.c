/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: a set of connections, one detached thread each.  See connset.h. */

#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "connset.h"
#include "lb_log.h"

struct connset_conn {
  struct connset *set;
  /* The accepted socket, until the thread is about to close it (-1
   * then): shut down by connset_conn_stop.  Under the set's lock, so
   * that a stop never reaches a number the kernel has given out again.
   */
  int fd;
  void *listener;
  void *client;                 /* under the set's lock; NULL: none yet */
  const char *where;
  char peer[64];
  void *arg;
  bool handshaking;             /* under the set's lock */
  _Atomic int why;              /* enum connset_why */
  int wakefd;                   /* an eventfd (ops->goodbye), or -1 */
  /* Set by connset_lookup in this connection's handshake. */
  bool unknown_name;
  struct connset_conn *next;
};

/* Take C out of its set (the set's lock held) and free it. */
static void
connset_unlink (struct connset_conn *c)
{
  struct connset *set = c->set;
  struct connset_conn **pp;

  for (pp = &set->list; *pp != c; pp = &(*pp)->next)
    assert (*pp != NULL);
  *pp = c->next;
  assert (set->count > 0);
  set->count--;
  if (c->handshaking) {
    assert (set->handshaking > 0);
    set->handshaking--;
  }
  assert (set->handshaking <= set->count);
  if (c->wakefd >= 0)
    close (c->wakefd);
  free (c);
}

static void *
connset_thread (void *arg)
{
  struct connset_conn *c = arg;
  struct connset *set = c->set;

  set->ops->serve (c, c->arg);
  connset_handshake_done (c);
  pthread_mutex_lock (&set->lock);
  c->fd = -1;
  pthread_mutex_unlock (&set->lock);
  set->ops->release (c->arg);
  pthread_mutex_lock (&set->lock);
  connset_unlink (c);
  pthread_cond_broadcast (&set->gone);
  pthread_mutex_unlock (&set->lock);
  return NULL;
}

enum connset_start
connset_start (struct connset *set, int fd, void *listener,
               const char *where, const char *peer, void *arg)
{
  const struct connset_ops *ops = set->ops;
  struct connset_conn *c;
  pthread_attr_t attr;
  pthread_t t;
  int e;

  assert (fd >= 0);
  pthread_mutex_lock (&set->lock);
  if (set->stopping) {
    pthread_mutex_unlock (&set->lock);
    ops->release (arg);
    return CONNSET_STOPPING;
  }
  if ((ops->max_conns && set->count >= ops->max_conns)
      || set->handshaking >= ops->max_handshaking) {
    /* Bounded cost before authentication; bounded logging too. */
    time_t now = time (NULL);
    bool log = now - set->full_logged >= 10;
    if (log)
      set->full_logged = now;
    pthread_mutex_unlock (&set->lock);
    if (log)
      ops->full (listener);
    ops->release (arg);
    return CONNSET_FULL;
  }
  c = calloc (1, sizeof *c);
  if (c) {
    c->wakefd = ops->goodbye ? eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
    if (ops->goodbye && c->wakefd == -1) {
      free (c);
      c = NULL;
    }
  }
  if (c == NULL) {
    pthread_mutex_unlock (&set->lock);
    ops->release (arg);
    return CONNSET_FAILED;
  }
  c->set = set;
  c->fd = fd;
  c->listener = listener;
  c->where = where;
  snprintf (c->peer, sizeof c->peer, "%s", peer);
  c->arg = arg;
  c->handshaking = true;
  c->next = set->list;
  set->list = c;
  set->count++;
  set->handshaking++;
  pthread_mutex_unlock (&set->lock);

  pthread_attr_init (&attr);
  pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
  e = pthread_create (&t, &attr, connset_thread, c);
  pthread_attr_destroy (&attr);
  if (e != 0) {
    lb_err ("cannot start %s: %s", ops->thread, strerror (e));
    pthread_mutex_lock (&set->lock);
    connset_unlink (c);
    pthread_cond_broadcast (&set->gone);
    pthread_mutex_unlock (&set->lock);
    ops->release (arg);
    return CONNSET_FAILED;
  }
  return CONNSET_STARTED;
}

void
connset_handshake_done (struct connset_conn *c)
{
  struct connset *set = c->set;

  pthread_mutex_lock (&set->lock);
  if (c->handshaking) {
    c->handshaking = false;
    assert (set->handshaking > 0);
    set->handshaking--;
  }
  pthread_mutex_unlock (&set->lock);
}

int
connset_lookup (void *opaque, const char *identity, struct lb_key *key,
                bool *encrypt, void **client)
{
  struct connset_conn *c = opaque;
  pthread_rwlock_t *lock = c->set->ops->lookup_lock;

  /* Found and bound under one lock: a reload that hides the client
   * after this reaches C by connset_stop (connset.h).
   */
  if (lock)
    pthread_rwlock_rdlock (lock);
  *client = c->set->ops->find (c->listener, identity, key, encrypt);
  if (*client)
    connset_set_client (c, *client);
  if (lock)
    pthread_rwlock_unlock (lock);
  if (*client == NULL) {
    /* An unknown name fails exactly as a wrong key does, so that a peer
     * without a key cannot learn which names exist.
     */
    gnutls_rnd (GNUTLS_RND_RANDOM, key->psk, sizeof key->psk);
    *encrypt = true;
    c->unknown_name = true;
  }
  return 0;
}

bool
connset_refused (struct connset_conn *c, const struct lb_conn *conn,
                 void *client, const char *identity, const char *err)
{
  const struct connset_ops *ops = c->set->ops;
  char safe[80];

  if (conn != NULL && client != NULL) {
    connset_set_client (c, client);
    return false;
  }
  /* lbd cut this handshake itself (a reload, SIGTERM): not the peer's
   * doing, so neither logged nor counted.
   */
  if (connset_conn_stopping (c))
    return true;
  /* A CONN without a client cannot happen (a random key cannot match):
   * refused all the same, as an unknown name.
   */
  if (conn != NULL || c->unknown_name)
    err = "unknown client name";
  lb_log_safe (safe, sizeof safe, identity, strlen (identity));
  if (lb_log_allow (&c->set->refusals))
    lb_warn ("%s%s: %s: %s failed%s%s%s: %s", ops->log_prefix, c->where,
             c->peer, ops->handshake, safe[0] ? " (identity '" : "", safe,
             safe[0] ? "')" : "", err);
  if (client)
    ops->refused (client);
  return true;
}

void
connset_set_client (struct connset_conn *c, void *client)
{
  struct connset *set = c->set;

  assert (client != NULL);
  pthread_mutex_lock (&set->lock);
  assert (c->handshaking || c->client == NULL || c->client == client);
  c->client = client;
  pthread_mutex_unlock (&set->lock);
}

/* How connset_stop_locked ends a connection. */
enum connset_how {
  CONNSET_HOW_ASK,              /* wake it if it may say goodbye */
  CONNSET_HOW_NOW,              /* shut its socket down */
};

/* Stop C for WHY, the set's lock held.  True if it was running. */
static bool
connset_stop_locked (struct connset_conn *c, enum connset_why why,
                     enum connset_how how)
{
  int running = CONNSET_RUNNING;
  bool first;

  assert (why != CONNSET_RUNNING);
  first = atomic_compare_exchange_strong (&c->why, &running, (int) why);
  if (c->fd < 0)
    return first;               /* its thread is closing it */
  if (how == CONNSET_HOW_ASK && c->wakefd >= 0 && !c->handshaking) {
    /* A full counter (it cannot be: 2^64 - 2) is awake all the same. */
    if (eventfd_write (c->wakefd, 1) == -1 && errno != EAGAIN)
      shutdown (c->fd, SHUT_RDWR);
  }
  else
    shutdown (c->fd, SHUT_RDWR);
  return first;
}

bool
connset_conn_stop (struct connset_conn *c, enum connset_why why)
{
  struct connset *set = c->set;
  bool first;

  pthread_mutex_lock (&set->lock);
  first = connset_stop_locked (c, why, CONNSET_HOW_NOW);
  pthread_mutex_unlock (&set->lock);
  return first;
}

enum connset_why
connset_conn_stopping (const struct connset_conn *c)
{
  return (enum connset_why) atomic_load (&c->why);
}

int
connset_conn_wake_fd (const struct connset_conn *c)
{
  return c->wakefd;
}

/* Do LISTENER and CLIENT select C (connset_stop)? */
static bool
connset_selects (const struct connset_conn *c, const void *listener,
                 const void *client)
{
  return (listener == NULL || c->listener == listener)
         && (client == NULL || c->client == client);
}

unsigned
connset_stop (struct connset *set, const void *listener, const void *client,
              enum connset_why why)
{
  struct connset_conn *c;
  unsigned n = 0;

  pthread_mutex_lock (&set->lock);
  for (c = set->list; c; c = c->next)
    if (connset_selects (c, listener, client)) {
      connset_stop_locked (c, why, CONNSET_HOW_ASK);
      n++;
    }
  pthread_mutex_unlock (&set->lock);
  return n;
}

void
connset_wait (struct connset *set, const void *listener, const void *client)
{
  struct connset_conn *c;
  struct timespec deadline;
  bool late = false;

  clock_gettime (CLOCK_REALTIME, &deadline);
  deadline.tv_sec += CONNSET_GRACE_MS / 1000;
  deadline.tv_nsec += (CONNSET_GRACE_MS % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock (&set->lock);
  for (;;) {
    for (c = set->list; c; c = c->next)
      if (connset_selects (c, listener, client))
        break;
    if (c == NULL)
      break;
    if (late)
      pthread_cond_wait (&set->gone, &set->lock);
    else if (pthread_cond_timedwait (&set->gone, &set->lock, &deadline)
             == ETIMEDOUT) {
      /* A goodbye that takes this long is stuck on a peer that does
       * not read: shut down whatever is selected and still here.
       */
      late = true;
      for (c = set->list; c; c = c->next)
        if (connset_selects (c, listener, client))
          connset_stop_locked (c, CONNSET_STOP_SHUTDOWN, CONNSET_HOW_NOW);
    }
  }
  assert (listener || client || set->count == 0);
  pthread_mutex_unlock (&set->lock);
}

void
connset_shutdown (struct connset *set)
{
  pthread_mutex_lock (&set->lock);
  set->stopping = true;
  pthread_mutex_unlock (&set->lock);
  connset_stop (set, NULL, NULL, CONNSET_STOP_SHUTDOWN);
  connset_wait (set, NULL, NULL);
}
