/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests for lbd/connset.c: the caps, the lookup that hides unknown
 * names and binds known ones under the lookup lock, the refusal log,
 * stopping by client and by listener with a reason, goodbyes (woken,
 * not shut down, then shut down once the grace is over), and shutdown.
 * Connections are socketpairs; a test connection's thread reads one
 * command byte as its "handshake", then reads until the socket is shut
 * down (or, in the goodbye set, until it is woken).
 */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "connset.h"
#include "lb_log.h"
#include "lb_time.h"
#include "../tests/tap.h"

struct tconn {
  int fd;                       /* the set's end */
  int peer;                     /* the test's end */
  struct connset_conn *c;
  _Atomic bool handshaken, released, saw_stop;
  _Atomic bool woken;           /* goodbye set: the wake fd fired */
  _Atomic bool ignore_wake;     /* ... and it does not end by itself */
  _Atomic bool hold;            /* stay in serve after the socket ends */
  /* Results of the 'l' command. */
  void *unknown_client, *known_client;
  bool unknown_encrypt, known_encrypt;
  struct lb_key unknown_key, unknown_key2;
  bool refused_unknown, refused_nullclient;
};

/* Stand-ins for two clients and two listeners. */
static int client_a, client_b;
static int listener_1, listener_2;
static const struct lb_key key_a = { .psk = { 0xaa } };
/* The lookup lock, and whether t_find found it held. */
static pthread_rwlock_t t_lock = PTHREAD_RWLOCK_INITIALIZER;
static _Atomic bool t_lock_held = true;

static void *
t_find (void *listener, const char *identity, struct lb_key *key,
        bool *encrypt)
{
  (void) listener;
  /* Held for reading (by us): no writer can get it. */
  if (pthread_rwlock_trywrlock (&t_lock) == 0) {
    t_lock_held = false;
    pthread_rwlock_unlock (&t_lock);
  }
  if (strcmp (identity, "alice") != 0)
    return NULL;
  *key = key_a;
  *encrypt = false;
  return &client_a;
}

/* A non-NULL connection pointer for connset_refused; never used. */
#define T_CONN ((const struct lb_conn *) &client_b)

static void
t_serve (struct connset_conn *c, void *arg)
{
  struct tconn *t = arg;
  char b;

  t->c = c;
  if (read (t->fd, &b, 1) == 1) {
    switch (b) {
    case 'a':                   /* authenticated as client A */
      connset_refused (c, T_CONN, &client_a, "alice", "");
      break;
    case 'b':
      connset_refused (c, T_CONN, &client_b, "bob", "");
      break;
    case 'l': {                 /* the lookup, then a refusal */
      struct lb_key k;
      connset_lookup (c, "alice", &k, &t->known_encrypt, &t->known_client);
      t->known_encrypt |= memcmp (&k, &key_a, sizeof k) != 0;
      connset_lookup (c, "mallory", &t->unknown_key, &t->unknown_encrypt,
                      &t->unknown_client);
      connset_lookup (c, "mallory", &t->unknown_key2, &t->unknown_encrypt,
                      &t->unknown_client);
      t->refused_unknown = connset_refused (c, NULL, NULL, "mallory",
                                            "wrong key");
      break;
    }
    case 'n':                   /* TLS up without a client: refused */
      t->refused_nullclient = connset_refused (c, T_CONN, NULL, "x", "ok");
      break;
    case 'x':                   /* a handshake lbd cuts: fails after */
      while (!connset_conn_stopping (c))
        usleep (1000);
      connset_refused (c, NULL, &client_a, "alice", "cut short");
      break;
    case 'w':                   /* a wrong key for a known name */
      connset_refused (c, NULL, &client_a, "alice\n", "client 'alice': "
                       "wrong key");
      break;
    }
  }
  connset_handshake_done (c);
  t->handshaken = true;
  while (read (t->fd, &b, 1) > 0)
    ;
  t->saw_stop = connset_conn_stopping (c);
  while (atomic_load (&t->hold))
    usleep (1000);
}

static void
t_release (void *arg)
{
  struct tconn *t = arg;

  close (t->fd);
  close (t->peer);
  t->released = true;
}

static _Atomic unsigned fulls, refusals_a;
static void *full_listener;

static void
t_full (void *listener)
{
  full_listener = listener;
  fulls++;
}

static void
t_refused (void *client)
{
  if (client == &client_a)
    refusals_a++;
}

static const struct connset_ops t_ops = {
  .thread = "a test thread",
  .log_prefix = "test ",
  .handshake = "TLS handshake",
  .max_conns = 4,
  .max_handshaking = 2,
  .lookup_lock = &t_lock,
  .full = t_full,
  .find = t_find,
  .refused = t_refused,
  .serve = t_serve,
  .release = t_release,
};

static struct connset set = CONNSET_INIT (&t_ops, "refused test connections");

/* The goodbye set's serve: handshake 'a' (client A), then wait for the
 * socket or the wake fd; woken, it ends by itself, unless told to
 * ignore that (then only the shutdown ends it).
 */
static void
t_serve_goodbye (struct connset_conn *c, void *arg)
{
  struct tconn *t = arg;
  struct pollfd p[2] = { { .fd = t->fd, .events = POLLIN },
                         { .fd = connset_conn_wake_fd (c), .events = POLLIN } };
  char b;

  t->c = c;
  if (read (t->fd, &b, 1) == 1)
    connset_refused (c, T_CONN, &client_a, "alice", "");
  connset_handshake_done (c);
  t->handshaken = true;
  for (;;) {
    if (poll (p, 2, -1) == -1)
      break;
    if (p[1].revents && !t->woken) {
      t->woken = true;
      if (!t->ignore_wake)
        break;
      p[1].fd = -1;
    }
    if (p[0].revents && read (t->fd, &b, 1) <= 0)
      break;
  }
  t->saw_stop = connset_conn_stopping (c) == CONNSET_STOP_RELOAD;
}

static const struct connset_ops t_goodbye_ops = {
  .thread = "a test thread",
  .log_prefix = "goodbye ",
  .handshake = "handshake",
  .max_handshaking = 4,
  .goodbye = true,
  .full = t_full,
  .find = t_find,
  .refused = t_refused,
  .serve = t_serve_goodbye,
  .release = t_release,
};

static struct connset goodbye_set =
  CONNSET_INIT (&t_goodbye_ops, "refused goodbye connections");

#define NCONN 8
static struct tconn conns[NCONN];

static bool
t_wait (_Atomic bool *flag)
{
  int i;

  for (i = 0; i < 5000 && !atomic_load (flag); i++)
    usleep (1000);
  return atomic_load (flag);
}

static enum connset_start
t_start_in (struct connset *s, int i, void *listener)
{
  struct tconn *t = &conns[i];
  int sv[2];
  enum connset_start r;

  memset (t, 0, sizeof *t);
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
    abort ();
  t->fd = sv[0];
  t->peer = sv[1];
  r = connset_start (s, t->fd, listener, listener == &listener_1 ? "L1"
                     : "L2", "peer", t);
  /* Not started: released at once (both ends closed). */
  if (r != CONNSET_STARTED && !t->released)
    abort ();
  return r;
}

static enum connset_start
t_start (int i, void *listener)
{
  return t_start_in (&set, i, listener);
}

static void
t_say (int i, char b)
{
  if (write (conns[i].peer, &b, 1) != 1)
    abort ();
}

/* What was logged (stderr) between t_capture_begin and _end. */
static char logged[8192];

static void
t_capture_begin (FILE **tmp, int *saved)
{
  fflush (stderr);
  *tmp = tmpfile ();
  *saved = dup (2);
  dup2 (fileno (*tmp), 2);
}

static void
t_capture_end (FILE *tmp, int saved)
{
  size_t n;

  fflush (stderr);
  dup2 (saved, 2);
  close (saved);
  rewind (tmp);
  n = fread (logged, 1, sizeof logged - 1, tmp);
  logged[n] = '\0';
  fclose (tmp);
}

static unsigned
t_count (const char *what)
{
  unsigned n = 0;
  const char *p;

  for (p = logged; (p = strstr (p, what)) != NULL; p++)
    n++;
  return n;
}

int
main (void)
{
  static const struct lb_key zero;
  FILE *tmp;
  int saved, i;

  lb_log_init ("test-connset", LB_LOG_STDERR, NULL, 0);

  /* The cap on handshakes, then on connections. */
  tap_ok (t_start (0, &listener_1) == CONNSET_STARTED, "first connection");
  tap_ok (t_start (1, &listener_1) == CONNSET_STARTED, "second connection");
  tap_ok (t_start (2, &listener_1) == CONNSET_FULL,
          "a third one in its handshake is refused (max_handshaking 2)");
  tap_ok (fulls == 1 && full_listener == &listener_1,
          "ops->full is told, with the listener");
  t_say (0, 'a');
  tap_ok (t_wait (&conns[0].handshaken), "a handshake ends");
  tap_ok (t_start (2, &listener_2) == CONNSET_STARTED,
          "then a third starts");
  t_say (1, 'b');
  t_say (2, 'a');
  tap_ok (t_wait (&conns[1].handshaken) && t_wait (&conns[2].handshaken),
          "their handshakes end");
  tap_ok (t_start (3, &listener_2) == CONNSET_STARTED, "a fourth starts");
  tap_ok (t_start (4, &listener_2) == CONNSET_FULL,
          "a fifth is refused (max_conns 4)");
  tap_ok (fulls == 1, "... and ops->full is not told again within 10 s");

  /* The lookup: a known name, an unknown one; the refusal log. */
  t_capture_begin (&tmp, &saved);
  t_say (3, 'l');
  t_wait (&conns[3].handshaken);
  t_capture_end (tmp, saved);
  tap_ok (conns[3].known_client == &client_a && !conns[3].known_encrypt,
          "a known name gets its client and mode");
  tap_ok (t_lock_held, "the lookup runs under ops->lookup_lock");
  tap_ok (conns[3].unknown_client == NULL && conns[3].unknown_encrypt,
          "an unknown name gets no client, and TLS");
  tap_ok (memcmp (&conns[3].unknown_key, &zero, sizeof zero) != 0
          && memcmp (&conns[3].unknown_key, &conns[3].unknown_key2,
                     sizeof zero) != 0,
          "... and a random key, another each time");
  tap_ok (conns[3].refused_unknown
          && strstr (logged, "test L2: peer: TLS handshake failed (identity "
                     "'mallory'): unknown client name\n"),
          "its refusal says 'unknown client name', not the handshake's "
          "error");
  printf ("# %s", logged);

  /* Stopping one client's connections, then one listener's.  The
   * lookup that found client A bound its connection to A: a reload that
   * hides A reaches it too.
   */
  tap_ok (connset_stop (&set, NULL, &client_a, CONNSET_STOP_RELOAD) == 3,
          "stop client A: its two connections, and the one whose lookup "
          "found A");
  connset_wait (&set, NULL, &client_a);
  tap_ok (conns[0].released && conns[2].released && conns[3].released
          && conns[0].saw_stop,
          "client A's connections are gone, and saw they were stopped");
  tap_ok (!conns[1].released, "the other runs on");
  tap_ok (t_start (4, &listener_2) == CONNSET_STARTED,
          "a connection on listener 2, in its handshake");
  tap_ok (connset_stop (&set, &listener_2, NULL, CONNSET_STOP_RELOAD) == 1,
          "stop listener 2: the one on it");
  connset_wait (&set, &listener_2, NULL);
  tap_ok (conns[4].released && !conns[1].released,
          "it is gone; listener 1's runs on");

  /* Stopping one connection (held in serve, so that it stays alive). */
  conns[1].hold = true;
  tap_ok (connset_conn_stop (conns[1].c, CONNSET_STOP_REPLACED),
          "stopping a connection: first");
  tap_ok (t_wait (&conns[1].saw_stop), "it sees it is stopping");
  tap_ok (!connset_conn_stop (conns[1].c, CONNSET_STOP_SHUTDOWN),
          "stopping it again: not first");
  tap_ok (connset_conn_stopping (conns[1].c) == CONNSET_STOP_REPLACED,
          "the first reason is the one it sees");
  conns[1].hold = false;
  tap_ok (t_wait (&conns[1].released), "and it ends");

  /* Refusals: a connection without a client; a wrong key; the limit. */
  t_capture_begin (&tmp, &saved);
  tap_ok (t_start (5, &listener_1) == CONNSET_STARTED, "a connection");
  t_say (5, 'n');
  t_wait (&conns[5].handshaken);
  tap_ok (t_start (6, &listener_1) == CONNSET_STARTED, "another");
  t_say (6, 'w');
  t_wait (&conns[6].handshaken);
  connset_stop (&set, NULL, NULL, CONNSET_STOP_TEST);
  connset_wait (&set, NULL, NULL);
  for (i = 0; i < 25; i++) {
    t_start (7, &listener_1);
    t_say (7, 'w');
    shutdown (conns[7].peer, SHUT_WR);
    t_wait (&conns[7].released);
  }
  t_capture_end (tmp, saved);
  tap_ok (conns[5].refused_nullclient
          && strstr (logged, "(identity 'x'): unknown client name"),
          "authenticated without a client: refused as an unknown name");
  tap_ok (strstr (logged, "test L1: peer: TLS handshake failed (identity "
                  "'alice?'): client 'alice': wrong key\n") != NULL,
          "a refusal names the peer's identity, made safe to log");
  tap_ok (refusals_a == 26, "refusals of a known client are counted, "
          "logged or not (%u)", (unsigned) refusals_a);
  /* 28 refusals within 10 s, one of them logged above. */
  tap_ok (t_count ("TLS handshake failed") == 19,
          "at most 20 refusals per 10 s are logged (%u here, 1 above)",
          t_count ("TLS handshake failed"));

  /* A handshake lbd cuts itself is not a refusal: neither logged nor
   * counted.
   */
  t_capture_begin (&tmp, &saved);
  tap_ok (t_start (5, &listener_1) == CONNSET_STARTED, "a connection");
  t_say (5, 'x');
  connset_stop (&set, NULL, NULL, CONNSET_STOP_RELOAD);
  connset_wait (&set, NULL, NULL);
  t_capture_end (tmp, saved);
  tap_ok (t_count ("TLS handshake failed") == 0 && refusals_a == 26,
          "a handshake cut by a stop is not logged or counted as refused");

  /* Goodbyes: past its handshake a connection is woken, not shut down;
   * one that does not end is shut down once the grace is over.
   */
  tap_ok (t_start_in (&goodbye_set, 0, &listener_1) == CONNSET_STARTED
          && t_start_in (&goodbye_set, 1, &listener_1) == CONNSET_STARTED
          && t_start_in (&goodbye_set, 2, &listener_2) == CONNSET_STARTED,
          "three connections in a set that says goodbye");
  t_say (0, 'a');
  t_say (1, 'a');
  tap_ok (t_wait (&conns[0].handshaken) && t_wait (&conns[1].handshaken),
          "two finish their handshake");
  conns[1].ignore_wake = true;
  tap_ok (connset_stop (&goodbye_set, NULL, &client_a, CONNSET_STOP_RELOAD)
          == 2, "stop client A: both");
  tap_ok (t_wait (&conns[0].released) && conns[0].woken && conns[0].saw_stop,
          "woken, one ends by itself, seeing why");
  tap_ok (t_wait (&conns[1].woken) && !conns[1].released,
          "the other is woken and stays");
  {
    uint64_t t0 = lb_now_ms (), waited;
    connset_wait (&goodbye_set, NULL, &client_a);
    waited = lb_now_ms () - t0;
    tap_ok (conns[1].released && waited >= CONNSET_GRACE_MS - 1000,
            "connset_wait shuts it down after the grace (%" PRIu64 " ms)",
            waited);
  }
  tap_ok (!conns[2].released, "the one still in its handshake runs on");
  tap_ok (connset_stop (&goodbye_set, &listener_2, NULL, CONNSET_STOP_RELOAD)
          == 1, "stopping it in its handshake ...");
  connset_wait (&goodbye_set, &listener_2, NULL);
  tap_ok (conns[2].released, "... shuts it down at once");

  /* Shutdown. */
  tap_ok (t_start (0, &listener_1) == CONNSET_STARTED
          && t_start (1, &listener_2) == CONNSET_STARTED, "two more");
  connset_shutdown (&set);
  tap_ok (conns[0].released && conns[1].released && set.count == 0
          && set.handshaking == 0, "shutdown ends every connection");
  tap_ok (t_start (2, &listener_1) == CONNSET_STOPPING && conns[2].released,
          "after shutdown, connections are refused (and released)");
  return tap_done ();
}
