/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: one authenticated connection serving one client.  See session.h. */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <zstd.h>

#include "bind.h"
#include "connset.h"
#include "group.h"
#include "image.h"
#include "lb_array.h"
#include "lb_log.h"
#include "lb_rate.h"
#include "lb_time.h"
#include "lb_wire.h"
#include "metrics.h"
#include "running.h"
#include "session.h"
#include "session_impl.h"

/* How long a session that said goodbye waits for lb to close. */
#define SESSION_DRAIN_MS 2000


/* Map the identity the peer presented to a client on listener L
 * (running_on_listener); running_lock is held (connset_lookup).
 */
static void *
session_find (void *listener, const char *identity, struct lb_key *key,
              bool *encrypt)
{
  struct client *found = running_on_listener (listener, identity);

  if (found == NULL)
    return NULL;
  *key = found->line.key;
  *encrypt = found->conf->encrypt;
  return found;
}

static void
session_full (void *listener)
{
  struct listener *l = listener;

  lb_warn ("%s: too many connections in handshake; refusing new ones",
           l->addr.text);
}

static void
session_refused (void *client)
{
  struct client *cl = client;

  pthread_mutex_lock (&cl->lock);
  cl->refused++;
  pthread_mutex_unlock (&cl->lock);
  metrics_changed ();
}

static void session_main (struct connset_conn *c, void *arg);
static void session_free (void *arg);

static const struct connset_ops session_ops = {
  .thread = "a session thread",
  .log_prefix = "",
  .handshake = "handshake",
  .max_handshaking = LBD_MAX_HANDSHAKING,
  .goodbye = true,
  .lookup_lock = &running_lock,
  .full = session_full,
  .find = session_find,
  .refused = session_refused,
  .serve = session_main,
  .release = session_free,
};

/* Every live session. */
static struct connset session_set =
  CONNSET_INIT (&session_ops, "refused connections");

/* Make S the only session writing its client's image. */
static void
session_take_over (struct session *s)
{
  struct client *cl = s->cl;

  pthread_mutex_lock (&cl->lock);
  while (cl->owner) {
    struct session *old = cl->owner;
    /* OLD is inside session_main until it lets go: its C is alive.
     * Said before OLD is stopped, so that this line comes before OLD's
     * "replaced"; once, since every replacement holds CL->lock.
     */
    if (!connset_conn_stopping (old->c)) {
      lb_info ("client %s: replacing the connection from %s by the one "
               "from %s", cl->conf->name, old->peer, s->peer);
      cl->replaced++;
    }
    connset_conn_stop (old->c, CONNSET_STOP_REPLACED);
    pthread_cond_wait (&cl->cond, &cl->lock);
  }
  cl->owner = s;
  cl->connected = true;
  cl->connects++;
  cl->since = cl->phase_since = (uint64_t) time (NULL);
  cl->backlog_known = false;
  snprintf (cl->peer, sizeof cl->peer, "%s", s->peer);
  pthread_mutex_unlock (&cl->lock);
  metrics_changed ();
}

static void
session_let_go (struct session *s)
{
  struct client *cl = s->cl;

  pthread_mutex_lock (&cl->lock);
  if (cl->owner == s) {
    cl->owner = NULL;
    cl->connected = false;
    cl->since = cl->phase_since = (uint64_t) time (NULL);
  }
  pthread_cond_broadcast (&cl->cond);
  pthread_mutex_unlock (&cl->lock);
  metrics_changed ();
}

static void
session_publish (struct session *s, uint64_t bytes)
{
  struct client *cl = s->cl;
  uint64_t now = lb_now_ms ();
  int64_t backlog = lbp_backlog_decode (s->backlog);
  bool changed;

  pthread_mutex_lock (&cl->lock);
  changed = cl->phase != s->im.st.phase
            || cl->consistent != s->im.st.consistent;
  if (cl->phase != s->im.st.phase)
    cl->phase_since = (uint64_t) time (NULL);
  cl->bytes_in += bytes;
  cl->phase = s->im.st.phase;
  cl->consistent = s->im.st.consistent;
  cl->last_consistent = s->im.st.last_consistent;
  cl->epoch = s->im.st.epoch;
  cl->seq = s->im.st.seq;
  cl->size = s->im.size;
  cl->scanned = s->scanned;
  cl->backlog_known = backlog >= 0;
  cl->backlog = backlog >= 0 ? (uint64_t) backlog : 0;
  cl->backlog_swept = s->backlog_swept;
  if (now - cl->rate_time_ms >= 1000) {
    if (cl->rate_time_ms)
      cl->rate = (cl->bytes_in - cl->rate_bytes) * 1000
                 / (now - cl->rate_time_ms);
    cl->rate_bytes = cl->bytes_in;
    cl->rate_time_ms = now;
  }
  pthread_mutex_unlock (&cl->lock);
  if (changed)
    metrics_changed ();
}


/* What waiting for lb's next message came to. */
enum session_await {
  SESSION_AWAIT_READY,          /* something to read (or the stream ended) */
  SESSION_AWAIT_ASKED,          /* lbd ends the session (session_end) */
  SESSION_AWAIT_TIMEOUT,        /* nothing within the time given */
};

/* Wait up to TIMEOUT_MS (-1: no bound) for lb's next message, or for
 * the session to be asked to end: then it stops at this boundary, with
 * no message half read.
 */
static enum session_await
session_await (struct session *s, int timeout_ms)
{
  struct pollfd p[2] = {
    { .fd = lb_conn_fd (s->conn), .events = POLLIN },
    { .fd = connset_conn_wake_fd (s->c), .events = POLLIN },
  };
  int r;

  for (;;) {
    if (connset_conn_stopping (s->c))
      return SESSION_AWAIT_ASKED;
    if (lb_conn_pending (s->conn))
      return SESSION_AWAIT_READY;
    r = poll (p, 2, timeout_ms);
    if (r == 0)
      return SESSION_AWAIT_TIMEOUT;
    if (r == -1 && errno != EINTR)
      return SESSION_AWAIT_READY;       /* the receive will say why */
    if (connset_conn_stopping (s->c))
      return SESSION_AWAIT_ASKED;
    if (r > 0 && p[0].revents)
      return SESSION_AWAIT_READY;
  }
}

/* Read no faster than the client line's max-rate=: after a message of
 * BYTES, wait until the link it is allowed would have carried it, in
 * slices of at most 50 ms so that a stop request is seen.  TCP carries
 * the wait back to lb, which falls behind; its filter degrades rather
 * than let a disk write wait.
 */
static void
session_pace (struct session *s, uint64_t bytes)
{
  uint64_t ns = lb_rate_take (&s->rate, bytes, lb_now_ns ());

  while (ns > 0 && !connset_conn_stopping (s->c)) {
    uint64_t n = ns < 50000000 ? ns : 50000000;
    struct timespec ts = { .tv_sec = 0, .tv_nsec = (long) n };
    nanosleep (&ts, NULL);
    ns -= n;
  }
}

/* lbd ends the session: make the image durable and its state file say
 * where the image stands.  In live mode (the state says consistent and
 * no replay runs) the image holds every record applied so far, in
 * order: it stands at the newest one, and the state says so, so that
 * lb continues from there.  During a replay it holds older versions of
 * some blocks beside newer ones: the state says inconsistent.
 * Otherwise it is already true and only the data is synced.
 */
static int
session_settle (struct session *s)
{
  struct image_state st = s->im.st;
  struct client *cl = s->cl;

  if (s->replaying) {
    st.consistent = false;
    st.phase = LBP_PHASE_CATCHING_UP;
  }
  else if (st.consistent && st.epoch == s->epoch
           && cl->applied_epoch == s->epoch && cl->applied_seq > st.seq) {
    st.seq = cl->applied_seq;
    st.last_consistent = time (NULL);
  }
  return apply_commit (s, &st);
}

/* lbd ends the session (session_end): the image settled if it was
 * opened for lb (WELCOMED), lb told why, then drained.
 */
static void
session_goodbye (struct session *s, bool welcomed)
{
  const char *name = s->cl->conf->name;
  bool shutdown = connset_conn_stopping (s->c) == CONNSET_STOP_SHUTDOWN;
  const char *why = shutdown ? "lbd is shutting down"
                             : "lbd's configuration of this client changed";

  if (welcomed && session_settle (s) == -1)
    lb_err ("client %s: %s: %s", name, s->im.path, strerror (errno));
  lbw_send_error (s->conn, LBP_ERR_SHUTDOWN,
                  shutdown ? "server shutting down"
                           : "server reloaded its configuration, which "
                             "changed or removed this client");
  if (welcomed)
    lb_info ("client %s (%s): %s: said goodbye; image durable at seq %"
             PRIu64 " (%s)", name, s->peer, why, s->im.st.seq,
             s->im.st.consistent ? "consistent" : "inconsistent");
  else
    lb_info ("client %s (%s): %s: said goodbye", name, s->peer, why);
  lb_conn_drain (s->conn, SESSION_DRAIN_MS);
}

/* The session's first message, HELLO, into *M; before the session takes
 * the client over, so that a HELLO lbd refuses (another version, another
 * partition: bind.h) leaves the client's running session alone.
 * Returns 0, or -1 once refused or ended (logged, lb told).
 */
static int
session_hello (struct session *s, struct lbp_msg *m)
{
  const char *name = s->cl->conf->name;
  enum session_await aw = session_await (s, 30000);
  enum lbw_recv_outcome r;
  enum bind_verdict v;
  const char *why = NULL;
  struct image view;

  if (aw == SESSION_AWAIT_ASKED) {
    session_goodbye (s, false);
    return -1;
  }
  r = aw == SESSION_AWAIT_TIMEOUT ? LBW_RECV_BROKEN
      : lbw_recv (s->conn, m, &s->buf, &s->cap, 30000, &why);
  if (r != LBW_RECV_MSG || m->type != LBP_HELLO) {
    lb_warn ("client %s (%s): no HELLO: %s", name, s->peer,
             aw == SESSION_AWAIT_TIMEOUT ? "timed out waiting for the peer"
             : r == LBW_RECV_MSG ? "unexpected message"
             : why ? why : "closed");
    lbw_send_error (s->conn, LBP_ERR_PROTOCOL, "expected HELLO");
    return -1;
  }
  if (m->version != LBP_VERSION) {
    char text[128];
    snprintf (text, sizeof text, "protocol version %" PRIu32 " not supported:"
              " this lbd speaks version %d only (upgrade lb and lbd "
              "together)", m->version, LBP_VERSION);
    lb_warn ("client %s (%s): %s", name, s->peer, text);
    lbw_send_error (s->conn, LBP_ERR_VERSION, text);
    return -1;
  }
  /* A first look, read-only; session_bind decides once the image is
   * this session's.  An image that cannot be read is left to it.
   */
  if (image_peek (&view, s->cl->conf->file) == 0) {
    v = bind_check (&view, m->partition, m->dev_size);
    if (v == BIND_OTHER || v == BIND_SMALLER)
      bind_refuse (s->conn, &view, v, name, s->peer, m);
    image_close (&view);
    if (v == BIND_OTHER || v == BIND_SMALLER)
      return -1;
  }
  return 0;
}

/* Is HELLO M's partition the one the image is bound to (bind.h)?
 * Binds a new image to it.  Returns 0 to go on, or -1 once refused
 * (logged, and told to lb), the image and its state untouched.
 */
static int
session_bind (struct session *s, const struct lbp_msg *m)
{
  const char *name = s->cl->conf->name;
  enum bind_verdict v = bind_check (&s->im, m->partition, m->dev_size);
  const uint64_t was = s->im.st.partition;
  struct image_state st;

  switch (v) {
  case BIND_SAME:
    return 0;
  case BIND_FIRST:
  case BIND_REBIND:
    st = bind_state (&s->im, v, m->partition);
    if (apply_commit (s, &st) == -1) {
      lb_err ("client %s: %s: %s", name, s->im.state_path, strerror (errno));
      lbw_send_error (s->conn, LBP_ERR_IO,
                      "server cannot update the image state");
      return -1;
    }
    if (v == BIND_FIRST)
      lb_info ("client %s (%s): image %s bound to partition %016" PRIx64,
               name, s->peer, s->im.path, m->partition);
    else
      lb_warn ("client %s (%s): image %s rebound, as the operator allowed "
               "(lbd --rebind): partition %016" PRIx64 " (%" PRIu64
               " bytes) replaces %016" PRIx64 " (%" PRIu64 " bytes); a "
               "full scan follows", name, s->peer, s->im.path,
               m->partition, m->dev_size, was, s->im.size);
    return 0;
  case BIND_OTHER:
  case BIND_SMALLER:
    break;
  }
  bind_refuse (s->conn, &s->im, v, name, s->peer, m);
  return -1;
}

/* How the message loop ended, when it was not lb's doing. */
static void
session_log_end (struct session *s)
{
  const char *name = s->cl->conf->name;

  switch (connset_conn_stopping (s->c)) {
  case CONNSET_RUNNING:
    lb_info ("client %s (%s): disconnected", name, s->peer);
    break;
  case CONNSET_STOP_REPLACED:
    lb_info ("client %s (%s): replaced by a newer connection", name,
             s->peer);
    break;
  default:
    /* Asked to end, and cut short (connset_wait's grace ran out). */
    lb_info ("client %s (%s): ended by lbd", name, s->peer);
    break;
  }
}

/* The message loop.  Returns when the peer leaves or breaks a rule, or
 * when lbd ends the session.
 */
static void
session_serve (struct session *s, const struct lbp_msg *hello)
{
  const char *name = s->cl->conf->name;
  struct lbp_msg m = *hello;
  const char *why = NULL;
  char err[256];
  enum session_step step;
  enum session_await aw;
  enum lbw_recv_outcome r;

  if (image_open (&s->im, s->cl->conf->file, err, sizeof err) == -1) {
    lb_err ("client %s: %s", name, err);
    lbw_send_error (s->conn, LBP_ERR_IO, "server cannot open the image");
    return;
  }
  s->have_image = true;
  /* The region hashes kept from the last session hold only if the file
   * is as it left it; the seed kept with them keys this session.
   */
  if (scancache_begin (&s->cl->scan, s->im.fd, s->im.size, s->seed) == -1) {
    lb_err ("client %s (%s): no random seed for the hash key", name, s->peer);
    lbw_send_error (s->conn, LBP_ERR_IO, "server cannot key its hashes");
    return;
  }
  /* Every change to the image now preserves the snapshots restores read,
   * and forgets the region hashes it makes untrue.
   */
  s->im.snaps = &s->cl->snaps;
  s->im.hist = &s->cl->hist;
  s->im.sc = &s->cl->scan;

  if (session_bind (s, &m) == -1)
    return;
  if (m.dev_size != s->im.size && apply_mark_inconsistent (s) == -1) {
    lb_err ("client %s: %s: %s", name, s->im.state_path, strerror (errno));
    lbw_send_error (s->conn, LBP_ERR_IO, "server cannot update the image state");
    return;
  }
  if (image_resize (&s->im, m.dev_size) == -1) {
    lb_err ("client %s: %s: resize: %s", name, s->im.path, strerror (errno));
    lbw_send_error (s->conn, LBP_ERR_IO, "server cannot resize the image");
    return;
  }
  /* Bound and sized: the operator's permission, if any, is used up. */
  bind_done (&s->im);
  s->epoch = m.epoch;
  if (s->cl->applied_epoch == m.epoch && s->im.st.epoch == m.epoch
      && s->cl->applied_seq > s->im.st.seq)
    s->replay_until = s->cl->applied_seq;
  {
    struct lbp_msg w = {
      .type = LBP_WELCOME, .version = LBP_VERSION, .phase = s->im.st.phase,
      .epoch = s->im.st.epoch, .seq = s->im.st.seq,
      .image_size = s->im.size, .last_consistent = s->im.st.last_consistent,
      .gen = s->im.st.gen, .swept = s->im.st.swept,
      .verify_every = s->cl->conf->verify_every,
      .verified = s->im.st.verified,
    };
    char kerr[200] = "";
    if (!s->im.st.consistent && w.phase == LBP_PHASE_LIVE)
      w.phase = LBP_PHASE_CATCHING_UP;
    /* The session's hash key (lb_hash.h): the seed (scancache_begin),
     * and the key the peer proved it holds.
     */
    if (lb_hash_key_derive (&s->hkey, &s->cl->line.key, s->seed, kerr,
                            sizeof kerr) == -1) {
      lb_err ("client %s (%s): %s", name, s->peer, kerr);
      lbw_send_error (s->conn, LBP_ERR_IO, "server cannot key its hashes");
      return;
    }
    scancache_keyed (&s->cl->scan, &s->hkey);
    if (lbw_send (s->conn, &w, s->seed, sizeof s->seed) == -1)
      return;
  }
  {
    char g[24];
    lb_info ("client %s (%s): session started, image %s, epoch %016" PRIx64
             " seq %" PRIu64 " gen %s %s", name, s->peer, s->im.path,
             s->im.st.epoch, s->im.st.seq, lbp_gen_name (s->im.st.gen, g),
             s->im.st.consistent ? "consistent" : "inconsistent");
  }
  session_publish (s, 0);
  s->rate.rate = s->cl->conf->max_rate;

  for (;;) {
    aw = session_await (s, group_wait (&s->grp));
    if (aw == SESSION_AWAIT_ASKED) {
      if (apply_group_commit (s) == SESSION_STEP_IO)
        goto io;
      session_goodbye (s, true);
      return;
    }
    if (aw == SESSION_AWAIT_TIMEOUT) {
      step = apply_group_commit (s);
      if (step == SESSION_STEP_IO)
        goto io;
      if (step == SESSION_STEP_LOST)
        break;
      continue;
    }
    r = lbw_recv (s->conn, &m, &s->buf, &s->cap, -1, &why);
    s->grp.input_ms = lb_now_ms ();
    /* Gone: what the group asked for is in the image; make it durable
     * (its answers cannot reach lb any more).
     */
    if (r == LBW_RECV_END || r == LBW_RECV_BROKEN)
      if (apply_group_commit (s) == SESSION_STEP_IO)
        goto io;
    if (r == LBW_RECV_END
        || (r == LBW_RECV_BROKEN && connset_conn_stopping (s->c)))
      break;
    if (r == LBW_RECV_BROKEN) {
      lb_warn ("client %s (%s): connection lost: %s", name, s->peer, why);
      break;
    }
    if (r == LBW_RECV_BAD)
      goto protocol;
    /* Answers go in request order, and a block copy makes the image
     * inconsistent: the group is committed before either.
     */
    if ((m.type == LBP_BLOCK || m.type == LBP_HASH_REQ || m.type == LBP_BYE
         || m.type == LBP_MARK)
        && (step = apply_group_commit (s)) != SESSION_STEP_DONE) {
      if (step == SESSION_STEP_IO)
        goto io;
      break;
    }
    /* A point due on the schedule is of the moment before this record. */
    if ((m.type == LBP_WRITE || m.type == LBP_ZERO)
        && apply_point_due (s) == -1)
      goto io;
    switch (m.type) {
    case LBP_WRITE:
    case LBP_BLOCK:
      if (m.type == LBP_BLOCK && apply_mark_inconsistent (s) == -1)
        goto io;
      if (m.type == LBP_WRITE)
        apply_replay_begin (s, m.seq);
      step = apply_data (s, &m, &why);
      if (step == SESSION_STEP_DONE && m.type == LBP_WRITE)
        apply_replay_end (s, m.seq);
      break;
    case LBP_ZERO:
      if (!image_range_ok (&s->im, m.offset, m.length)) {
        why = "zero outside the image";
        goto protocol;
      }
      apply_replay_begin (s, m.seq);
      step = apply_io (image_zero (&s->im, m.offset, m.length));
      if (step == SESSION_STEP_DONE)
        apply_replay_end (s, m.seq);
      break;
    case LBP_SYNC:
      step = apply_sync (s, &m);
      break;
    case LBP_HASH_REQ:
      step = apply_hashes (s, &m, &why);
      if (step == SESSION_STEP_DONE && m.offset + m.length > s->scanned)
        s->scanned = m.offset + m.length < s->im.size
                     ? m.offset + m.length : s->im.size;
      break;
    case LBP_MARK:
      step = apply_mark (s, &m);
      break;
    case LBP_VERIFIED:
      apply_verified (s, &m);
      step = SESSION_STEP_DONE;
      break;
    case LBP_BYE:
      lb_info ("client %s (%s): said goodbye", name, s->peer);
      return;
    default:
      why = "message not allowed from a client";
      goto protocol;
    }
    if (step == SESSION_STEP_IO)
      goto io;
    if (step == SESSION_STEP_PROTOCOL)
      goto protocol;
    if (step == SESSION_STEP_LOST)
      break;
    if (group_wait (&s->grp) == 0) {
      step = apply_group_commit (s);
      if (step == SESSION_STEP_IO)
        goto io;
      if (step == SESSION_STEP_LOST)
        break;
    }
    session_pace (s, LBP_HDR_SIZE + lbp_fixed_size (m.type) + m.payload_len);
    session_publish (s, m.payload_len);
  }
  session_log_end (s);
  return;

 protocol:
  lb_warn ("client %s (%s): protocol error: %s; closing", name, s->peer, why);
  lbw_send_error (s->conn, LBP_ERR_PROTOCOL, why);
  return;
 io:
  lb_err ("client %s: %s: %s; closing the connection", name, s->im.path,
          strerror (errno));
  lbw_send_error (s->conn, LBP_ERR_IO, "server I/O error");
}

/* The set's ops->release: the socket (or the connection holding it),
 * the image, the buffers.
 */
static void
session_free (void *arg)
{
  struct session *s = arg;

  if (s->conn)
    lb_conn_close (s->conn);
  else if (s->fd >= 0)
    close (s->fd);
  if (s->have_image)
    image_close (&s->im);
  ZSTD_freeDCtx (s->dctx);
  free (s->buf);
  free (s->data);
  free (s->hashes);
  lb_hash_key_wipe (&s->hkey);
  free (s);
}

/* The set's ops->serve: handshake, then the session. */
static void
session_main (struct connset_conn *c, void *arg)
{
  struct session *s = arg;
  char err[256], identity[256] = "";
  void *client = NULL;
  struct lbp_msg hello;

  s->c = c;
  s->conn = lb_conn_server (s->fd, connset_lookup, c, LBD_HANDSHAKE_MS,
                            &client, identity, sizeof identity,
                            err, sizeof err);
  connset_handshake_done (c);
  if (connset_refused (c, s->conn, client, identity, err))
    return;                     /* session_free closes FD or CONN */
  s->cl = client;
  lb_info ("client %s (%s): authenticated (%s)", s->cl->conf->name, s->peer,
           lb_conn_encrypted (s->conn) ? "TLS" : "plain");
  if (session_hello (s, &hello) == -1)
    return;
  session_take_over (s);
  session_serve (s, &hello);
  /* Still the owner: the image as this session leaves it. */
  if (s->im.sc) {
    if (s->cl->scan.hits > 0)
      lb_info ("client %s (%s): scan: %" PRIu64 " region hashes kept from "
               "before, %" PRIu64 " read from the image", s->cl->conf->name,
               s->peer, s->cl->scan.hits, s->cl->scan.misses);
    scancache_seal (s->im.sc, s->im.fd);
  }
  session_let_go (s);
}

void
session_start (struct listener *l, int fd, const char *peer)
{
  struct session *s = calloc (1, sizeof *s);

  if (s == NULL) {
    close (fd);
    return;
  }
  s->l = l;
  s->fd = fd;
  snprintf (s->peer, sizeof s->peer, "%s", peer);
  connset_start (&session_set, fd, l, l->addr.text, peer, s);
}

void
session_end (const struct listener *l, const struct client *cl,
             enum connset_why why)
{
  connset_stop (&session_set, l, cl, why);
}

void
session_wait (const struct listener *l, const struct client *cl)
{
  connset_wait (&session_set, l, cl);
}

void
session_shutdown_all (void)
{
  connset_shutdown (&session_set);
}
