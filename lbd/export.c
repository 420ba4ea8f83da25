/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: restores over NBD — the connections.  See export.h; the
 * negotiation is in negotiate.c, the transmission in transmit.c.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include "lb_log.h"
#include "lb_time.h"
#include "running.h"
#include "xconn.h"

/* Milliseconds left in the negotiation (at least 1; -1 after it). */
int
export_left (const struct xconn *x)
{
  int64_t left;

  if (x->deadline == 0)
    return -1;
  left = x->deadline - (int64_t) lb_now_ms ();
  return left < 1 ? 1 : left > INT32_MAX ? INT32_MAX : (int) left;
}

/* Receive exactly LEN bytes; within the negotiation's deadline while it
 * runs.  0, or -1 (errno; ECONNRESET at the end of the stream).
 */
int
export_recv (struct xconn *x, void *buf, size_t len)
{
  return lb_conn_recv_all (x->conn, buf, len, export_left (x));
}

int
export_sendv (struct xconn *x, struct iovec *iov, int n)
{
  return lb_conn_sendv (x->conn, iov, n, export_left (x));
}

int
export_send (struct xconn *x, const void *buf, size_t len)
{
  return lb_conn_send (x->conn, buf, len, export_left (x));
}

/* Count a refusal of CL's export (a failed TLS handshake under its
 * name, or nothing to serve), for status; also the set's ops->refused.
 */
void
export_refused (void *client)
{
  struct client *cl = client;

  pthread_mutex_lock (&cl->lock);
  cl->exports_refused++;
  pthread_mutex_unlock (&cl->lock);
}

/* The TLS handshake after NBD_OPT_STARTTLS: identity = a client's name,
 * key = its key (connset_lookup gives unknown names a random key);
 * running_lock is held (connset_lookup).
 */
static void *
export_find_identity (void *listener, const char *identity, struct lb_key *key,
                 bool *encrypt)
{
  struct client *cl = running_by_name (identity, strlen (identity));

  (void) listener;
  if (cl == NULL)
    return NULL;
  *key = cl->line.key;
  *encrypt = true;
  return cl;
}

static void
export_full (void *listener)
{
  struct export_listener *el = listener;

  lb_warn ("export %s: too many connections (%d at most, %d in "
           "negotiation); refusing new ones", el->conf->listen.text,
           LBD_EXPORT_MAX_CONNS, LBD_MAX_HANDSHAKING);
}

static void export_main (struct connset_conn *c, void *arg);
static void export_free (void *arg);

static const struct connset_ops export_ops = {
  .thread = "an export thread",
  .log_prefix = "export ",
  .handshake = "TLS handshake",
  .max_conns = LBD_EXPORT_MAX_CONNS,
  .max_handshaking = LBD_MAX_HANDSHAKING,
  .lookup_lock = &running_lock,
  .full = export_full,
  .find = export_find_identity,
  .refused = export_refused,
  .serve = export_main,
  .release = export_free,
};

/* Every export connection; "in its handshake" is in its negotiation. */
static struct connset export_set =
  CONNSET_INIT (&export_ops, "refused export connections");

/* The set's ops->release. */
static void
export_free (void *arg)
{
  struct xconn *x = arg;

  if (x->conn)
    lb_conn_close (x->conn);
  else if (x->fd >= 0)
    close (x->fd);
  if (x->snap)
    snapshot_release (x->snap);
  if (x->pt)
    history_release (x->pt);
  if (x->cl) {
    pthread_mutex_lock (&x->cl->lock);
    x->cl->exports--;
    pthread_mutex_unlock (&x->cl->lock);
  }
  if (x->ifd >= 0)
    close (x->ifd);
  free (x->buf);
  free (x->opt);
  free (x);
}

/* The set's ops->serve: the negotiation, then the transmission. */
static void
export_main (struct connset_conn *c, void *arg)
{
  struct xconn *x = arg;
  int r;

  x->c = c;
  x->deadline = (int64_t) lb_now_ms () + LBD_HANDSHAKE_MS;
  x->opt = malloc (X_OPT_MAX + 1);
  x->conn = lb_conn_raw (x->fd);
  r = x->opt && x->conn ? negotiate_run (x) : -1;
  x->deadline = 0;
  connset_handshake_done (c);
  if (r == 0)
    transmit_run (x);
}

void
export_start (struct export_listener *el, int fd, const char *peer)
{
  struct xconn *x = calloc (1, sizeof *x);

  if (x == NULL) {
    close (fd);
    return;
  }
  x->el = el;
  x->fd = fd;
  x->ifd = -1;
  snprintf (x->peer, sizeof x->peer, "%s", peer);
  connset_start (&export_set, fd, el, el->conf->listen.text, peer, x);
}

void
export_end (const struct export_listener *el, const struct client *cl,
            enum connset_why why)
{
  connset_stop (&export_set, el, cl, why);
}

void
export_wait (const struct export_listener *el, const struct client *cl)
{
  connset_wait (&export_set, el, cl);
}

void
export_shutdown_all (void)
{
  connset_shutdown (&export_set);
}
