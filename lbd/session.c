/* lbd: one authenticated connection serving one client.  See session.h. */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <zstd.h>

#include "image.h"
#include "lb_array.h"
#include "lb_log.h"
#include "lb_time.h"
#include "lb_wire.h"
#include "session.h"

struct session {
  struct listener *l;
  struct client *cl;
  struct lb_conn *conn;
  int fd;
  char peer[64];
  _Atomic bool replaced;
  struct image im;
  bool have_image;
  uint64_t epoch;               /* from HELLO */
  uint64_t replay_until;        /* records up to this seq may be replays */
  bool replaying;               /* a replay runs: the image is mixed */
  uint8_t *buf;                 /* message bodies */
  size_t cap;
  uint8_t *data;                /* decompressed payloads, hash scratch */
  size_t data_cap;
  uint8_t *hashes;              /* LBP_MAX_HASHES * LBP_HASH_SIZE */
  ZSTD_DCtx *dctx;
  struct session *next;
};

/* Every live session, for shutdown. */
static pthread_mutex_t session_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t session_gone = PTHREAD_COND_INITIALIZER;
static struct session *session_list;
static unsigned session_count;
static bool session_stopping;
static _Atomic unsigned session_nhandshaking;
/* Set by session_lookup in this thread's handshake: the name was unknown. */
static __thread bool session_unknown_name;

unsigned
session_handshaking (void)
{
  return atomic_load (&session_nhandshaking);
}

/* Map the identity the peer presented to a client on this address.  On
 * an address with a single client, that client's key is accepted under
 * any identity, so that the seed's command line (no --name) works.
 */
static int
session_lookup (void *opaque, const char *identity, struct lb_key *key,
                bool *encrypt, void **client)
{
  struct listener *l = opaque;
  struct client *found = NULL;
  size_t i;

  for (i = 0; i < l->nclients; i++)
    if (strcmp (l->clients[i]->conf->name, identity) == 0)
      found = l->clients[i];
  if (found == NULL && l->nclients == 1)
    found = l->clients[0];
  if (found == NULL) {
    /* An unknown name fails exactly as a wrong key does, so that a peer
     * without a key cannot learn which names exist.
     */
    gnutls_rnd (GNUTLS_RND_RANDOM, key->psk, sizeof key->psk);
    *encrypt = true;
    *client = NULL;
    session_unknown_name = true;
    return 0;
  }
  *key = found->key;
  *encrypt = found->conf->encrypt;
  *client = found;
  return 0;
}

/* Make S the only session writing its client's image. */
static void
session_take_over (struct session *s)
{
  struct client *cl = s->cl;

  pthread_mutex_lock (&cl->lock);
  while (cl->owner) {
    struct session *old = cl->owner;
    if (!atomic_exchange (&old->replaced, true)) {
      lb_info ("client %s: replacing the connection from %s by the one "
               "from %s", cl->conf->name, old->peer, s->peer);
      cl->replaced++;
    }
    shutdown (old->fd, SHUT_RDWR);
    pthread_cond_wait (&cl->cond, &cl->lock);
  }
  cl->owner = s;
  cl->connected = true;
  cl->connects++;
  snprintf (cl->peer, sizeof cl->peer, "%s", s->peer);
  pthread_mutex_unlock (&cl->lock);
}

static void
session_let_go (struct session *s)
{
  struct client *cl = s->cl;

  pthread_mutex_lock (&cl->lock);
  if (cl->owner == s) {
    cl->owner = NULL;
    cl->connected = false;
  }
  pthread_cond_broadcast (&cl->cond);
  pthread_mutex_unlock (&cl->lock);
}

static void
session_publish (struct session *s, uint64_t bytes)
{
  struct client *cl = s->cl;
  uint64_t now = lb_now_ms ();

  pthread_mutex_lock (&cl->lock);
  cl->bytes_in += bytes;
  cl->phase = s->im.st.phase;
  cl->consistent = s->im.st.consistent;
  cl->last_consistent = s->im.st.last_consistent;
  cl->epoch = s->im.st.epoch;
  cl->seq = s->im.st.seq;
  if (now - cl->rate_time_ms >= 1000) {
    if (cl->rate_time_ms)
      cl->rate = (cl->bytes_in - cl->rate_bytes) * 1000
                 / (now - cl->rate_time_ms);
    cl->rate_bytes = cl->bytes_in;
    cl->rate_time_ms = now;
  }
  pthread_mutex_unlock (&cl->lock);
}

/* Store ST durably.  When the image stops being consistent, its last
 * consistent state is kept for restores first (a snapshot, before
 * anything changes it); when it becomes consistent again, that snapshot
 * is let go once the state is durable.  (Both are no-ops when the
 * snapshots already agree.)
 */
static int
session_commit (struct session *s, const struct image_state *st)
{
  if (!st->consistent) {
    snapset_set_consistent (s->im.snaps, false, s->im.fd);
    /* A scan or catch-up: it ends consistent by itself. */
    s->replay_until = 0;
    s->replaying = false;
  }
  if (image_commit (&s->im, st) == -1)
    return -1;
  if (st->consistent && !s->replaying)
    snapset_set_consistent (s->im.snaps, true, s->im.fd);
  return 0;
}

/* Replays.  lbd applies records before they are durable; a session that
 * ends before its sync point leaves the image holding records beyond
 * the seq its state file names, and the next session (same epoch) gets
 * them again from there.  While those are applied a second time the
 * image holds older versions of some blocks beside newer ones: not one
 * moment.  The state file does not say so (it names what is durable),
 * but restores must not read that: the image counts as inconsistent for
 * them from the first such record until the newest one applied before
 * (SEQ is the record about to be applied, or just applied).
 */
static void
session_replay_begin (struct session *s, uint64_t seq)
{
  if (s->replay_until == 0 || seq > s->replay_until || s->replaying)
    return;
  s->replaying = true;
  lb_info ("client %s: records up to seq %" PRIu64 " come again (the image "
           "already holds them); restores read the state from before until "
           "they are through", s->cl->conf->name, s->replay_until);
  snapset_set_consistent (s->im.snaps, false, s->im.fd);
}

static void
session_replay_end (struct session *s, uint64_t seq)
{
  struct client *cl = s->cl;

  if (cl->applied_epoch != s->epoch || seq > cl->applied_seq) {
    pthread_mutex_lock (&cl->lock);     /* for status */
    cl->applied_epoch = s->epoch;
    cl->applied_seq = seq;
    pthread_mutex_unlock (&cl->lock);
  }
  if (s->replay_until == 0 || seq < s->replay_until)
    return;
  s->replay_until = 0;
  if (s->replaying) {
    s->replaying = false;
    lb_info ("client %s: the records that came again are through (seq %"
             PRIu64 ")", cl->conf->name, seq);
    if (s->im.st.consistent)
      snapset_set_consistent (s->im.snaps, true, s->im.fd);
  }
}

/* The image is about to stop being consistent: say so durably first, so
 * that the state file never claims a mixed image is consistent.
 */
static int
session_mark_inconsistent (struct session *s)
{
  struct image_state st = s->im.st;

  if (!st.consistent)
    return 0;
  st.consistent = false;
  st.phase = LBP_PHASE_CATCHING_UP;
  return session_commit (s, &st);
}

/* Apply a WRITE or BLOCK.  Returns 0, -1 (I/O, errno) or -2 (protocol). */
static int
session_apply_data (struct session *s, const struct lbp_msg *m,
                    const char **why)
{
  const void *data = m->payload;

  if (!image_range_ok (&s->im, m->offset, m->length)) {
    *why = "write outside the image";
    return -2;
  }
  switch (m->enc) {
  case LBP_ENC_ZERO:
    return image_zero (&s->im, m->offset, m->length);
  case LBP_ENC_ZSTD: {
    size_t r;
    if (s->dctx == NULL && (s->dctx = ZSTD_createDCtx ()) == NULL)
      return -1;
    if (lb_array_grow (&s->data, &s->data_cap, m->length, 1) == -1)
      return -1;
    r = ZSTD_decompressDCtx (s->dctx, s->data, m->length, m->payload,
                             m->payload_len);
    if (ZSTD_isError (r) || r != m->length) {
      *why = "bad compressed payload";
      return -2;
    }
    data = s->data;
    break;
  }
  default:
    break;
  }
  return image_write (&s->im, m->offset, data, m->length);
}

static int
session_hashes (struct session *s, const struct lbp_msg *m, const char **why)
{
  struct lbp_msg r = { .type = LBP_HASHES, .id = m->id,
                       .offset = m->offset, .hash_block = m->hash_block };
  uint32_t count = 0;

  if (m->offset > s->im.size) {
    *why = "hash request outside the image";
    return -2;
  }
  if (s->hashes == NULL
      && (s->hashes = malloc (LBP_MAX_HASHES * LBP_HASH_SIZE)) == NULL)
    return -1;
  if (lb_array_grow (&s->data, &s->data_cap, m->hash_block, 1) == -1)
    return -1;
  if (image_hash (&s->im, m->offset, m->length, m->hash_block, s->data,
                  s->hashes, &count) == -1)
    return -1;
  r.count = count;
  return lbw_send (s->conn, &r, s->hashes, (size_t) count * LBP_HASH_SIZE)
         == -1 ? -3 : 0;
}

/* The message loop.  Returns when the peer leaves or breaks a rule. */
static void
session_serve (struct session *s)
{
  const char *name = s->cl->conf->name;
  struct lbp_msg m;
  const char *why = NULL;
  char err[256];
  int r;

  if (image_open (&s->im, s->cl->conf->file, err, sizeof err) == -1) {
    lb_err ("client %s: %s", name, err);
    lbw_send_error (s->conn, LBP_ERR_IO, "server cannot open the image");
    return;
  }
  s->have_image = true;
  /* Every change to the image now preserves the snapshots restores read. */
  s->im.snaps = &s->cl->snaps;

  r = lbw_recv (s->conn, &m, &s->buf, &s->cap, 30000, &why);
  if (r != 1 || m.type != LBP_HELLO) {
    lb_warn ("client %s (%s): no HELLO: %s", name, s->peer,
             r == 1 ? "unexpected message" : why ? why : "closed");
    lbw_send_error (s->conn, LBP_ERR_PROTOCOL, "expected HELLO");
    return;
  }
  if (m.version != LBP_VERSION) {
    lb_warn ("client %s (%s): protocol version %" PRIu32 " not supported",
             name, s->peer, m.version);
    lbw_send_error (s->conn, LBP_ERR_VERSION, "protocol version not supported");
    return;
  }
  if (m.dev_size != s->im.size && session_mark_inconsistent (s) == -1) {
    lb_err ("client %s: %s: %s", name, s->im.state_path, strerror (errno));
    lbw_send_error (s->conn, LBP_ERR_IO, "server cannot update the image state");
    return;
  }
  if (image_resize (&s->im, m.dev_size) == -1) {
    lb_err ("client %s: %s: resize: %s", name, s->im.path, strerror (errno));
    lbw_send_error (s->conn, LBP_ERR_IO, "server cannot resize the image");
    return;
  }
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
    };
    if (!s->im.st.consistent && w.phase == LBP_PHASE_LIVE)
      w.phase = LBP_PHASE_CATCHING_UP;
    if (lbw_send (s->conn, &w, NULL, 0) == -1)
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

  for (;;) {
    r = lbw_recv (s->conn, &m, &s->buf, &s->cap, -1, &why);
    if (r == 0 || (r == -1 && atomic_load (&s->replaced)))
      break;
    if (r == -1) {
      lb_warn ("client %s (%s): connection lost: %s", name, s->peer, why);
      break;
    }
    if (r == -2)
      goto protocol;
    switch (m.type) {
    case LBP_WRITE:
    case LBP_BLOCK:
      if (m.type == LBP_BLOCK && session_mark_inconsistent (s) == -1)
        goto io;
      if (m.type == LBP_WRITE)
        session_replay_begin (s, m.seq);
      r = session_apply_data (s, &m, &why);
      if (r == 0 && m.type == LBP_WRITE)
        session_replay_end (s, m.seq);
      break;
    case LBP_ZERO:
      if (!image_range_ok (&s->im, m.offset, m.length)) {
        why = "zero outside the image";
        goto protocol;
      }
      session_replay_begin (s, m.seq);
      r = image_zero (&s->im, m.offset, m.length);
      if (r == 0)
        session_replay_end (s, m.seq);
      break;
    case LBP_SYNC: {
      struct image_state st = s->im.st;
      st.epoch = s->epoch;
      st.seq = m.seq;
      st.gen = m.gen;
      st.swept = m.swept;
      st.phase = m.phase;
      st.consistent = m.phase == LBP_PHASE_LIVE;
      if (st.consistent)
        st.last_consistent = time (NULL);
      if (session_commit (s, &st) == -1)
        goto io;
      lb_debug ("client %s: durable up to seq %" PRIu64 ", gen %" PRIu64
                " (%s)", name, m.seq, m.gen, lbp_phase_name (m.phase));
      struct lbp_msg a = { .type = LBP_SYNCED, .id = m.id, .seq = m.seq };
      r = lbw_send (s->conn, &a, NULL, 0) == -1 ? -3 : 0;
      break;
    }
    case LBP_HASH_REQ:
      r = session_hashes (s, &m, &why);
      break;
    case LBP_BYE:
      lb_info ("client %s (%s): said goodbye", name, s->peer);
      return;
    default:
      why = "message not allowed from a client";
      goto protocol;
    }
    if (r == -1)
      goto io;
    if (r == -2)
      goto protocol;
    if (r == -3)
      break;
    session_publish (s, m.payload_len);
  }
  if (atomic_load (&s->replaced))
    lb_info ("client %s (%s): replaced by a newer connection", name, s->peer);
  else
    lb_info ("client %s (%s): disconnected", name, s->peer);
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

static void
session_free (struct session *s)
{
  struct session **pp;

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
  pthread_mutex_lock (&session_lock);
  for (pp = &session_list; *pp; pp = &(*pp)->next)
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  session_count--;
  pthread_cond_broadcast (&session_gone);
  pthread_mutex_unlock (&session_lock);
  free (s);
}

static void *
session_main (void *arg)
{
  struct session *s = arg;
  char err[256], identity[256] = "", safe[80];
  void *client = NULL;

  atomic_fetch_add (&session_nhandshaking, 1);
  session_unknown_name = false;
  s->conn = lb_conn_server (s->fd, session_lookup, s->l, LBD_HANDSHAKE_MS,
                            &client, identity, sizeof identity,
                            err, sizeof err);
  atomic_fetch_sub (&session_nhandshaking, 1);
  if (s->conn != NULL && client == NULL) {
    /* Cannot happen: a random key cannot match.  Refuse all the same. */
    lb_conn_close (s->conn);
    s->conn = NULL;
    s->fd = -1;
    snprintf (err, sizeof err, "unknown client name");
  }
  if (s->conn == NULL) {
    lb_log_safe (safe, sizeof safe, identity, strlen (identity));
    /* One line per refused connection, but a peer decides how many
     * connections: bounded.
     */
    static struct lb_log_limit limit =
      LB_LOG_LIMIT_INIT (20, "refused connections");
    if (lb_log_allow (&limit))
      lb_warn ("%s: %s: handshake failed%s%s%s: %s", s->l->addr.text,
               s->peer, safe[0] ? " (identity '" : "", safe,
               safe[0] ? "')" : "",
               session_unknown_name ? "unknown client name" : err);
    if (client) {
      struct client *cl = client;
      pthread_mutex_lock (&cl->lock);
      cl->refused++;
      pthread_mutex_unlock (&cl->lock);
    }
    session_free (s);           /* closes FD: still ours on failure */
    return NULL;
  }
  s->cl = client;
  lb_info ("client %s (%s): authenticated (%s)", s->cl->conf->name, s->peer,
           lb_conn_encrypted (s->conn) ? "TLS" : "plain");
  session_take_over (s);
  session_serve (s);
  session_let_go (s);
  session_free (s);
  return NULL;
}

int
session_start (struct listener *l, int fd, const char *peer)
{
  struct session *s = calloc (1, sizeof *s);
  pthread_attr_t attr;
  pthread_t t;
  int e;

  if (s == NULL) {
    close (fd);
    return -1;
  }
  s->l = l;
  s->fd = fd;
  snprintf (s->peer, sizeof s->peer, "%s", peer);
  pthread_mutex_lock (&session_lock);
  if (session_stopping) {
    pthread_mutex_unlock (&session_lock);
    close (fd);
    free (s);
    return -1;
  }
  s->next = session_list;
  session_list = s;
  session_count++;
  pthread_mutex_unlock (&session_lock);

  pthread_attr_init (&attr);
  pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
  e = pthread_create (&t, &attr, session_main, s);
  pthread_attr_destroy (&attr);
  if (e != 0) {
    lb_err ("cannot start a session thread: %s", strerror (e));
    session_free (s);
    return -1;
  }
  return 0;
}

void
session_shutdown_all (void)
{
  struct session *s;

  pthread_mutex_lock (&session_lock);
  session_stopping = true;
  for (s = session_list; s; s = s->next) {
    atomic_store (&s->replaced, true);
    if (s->fd >= 0)
      shutdown (s->fd, SHUT_RDWR);
  }
  while (session_count > 0)
    pthread_cond_wait (&session_gone, &session_lock);
  pthread_mutex_unlock (&session_lock);
}
