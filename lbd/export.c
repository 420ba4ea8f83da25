/* lbd: restores over NBD.  See export.h. */

#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "connset.h"
#include "export.h"
#include "lb_conn.h"
#include "lb_log.h"
#include "lb_bytes.h"
#include "lb_time.h"
#include "nbd.h"
#include "snapshot.h"

/* The longest option we read (a name is at most 4096 bytes in NBD). */
#define X_OPT_MAX 65536
/* Options per connection: enough for nbdinfo --list, and a bound. */
#define X_OPT_COUNT 256
/* Extents per BLOCK_STATUS reply. */
#define X_EXTENTS 1024
/* The context id of base:allocation. */
#define X_BASE_ALLOCATION 1

struct xconn {
  struct export_listener *el;
  struct connset_conn *c;       /* in x_set */
  int fd;                       /* conn's once it is set; kept for the
                                   set's shutdown */
  struct lb_conn *conn;         /* raw; upgraded in place by STARTTLS */
  char peer[64];
  int64_t deadline;             /* of the negotiation, ms, monotonic */
  struct client *idc;           /* the TLS identity's client */
  bool no_zeroes;
  bool structured;
  bool meta;                    /* base:allocation selected */
  char meta_export[LB_CONFIG_NAME_MAX + 1];
  uint8_t *opt;                 /* option data, X_OPT_MAX + 1 */

  /* Transmission. */
  struct client *cl;
  struct snapshot *snap;
  int ifd;                      /* the image, read-only */
  uint64_t size;
  time_t since;                 /* 0: the live image; else its last
                                   consistent state, of then */
  uint8_t *buf;                 /* SNAP_READ_PIECE */
  uint64_t bytes_out;
  bool warned_write;
  bool warned_tls, warned_unknown;    /* log such refusals once */
};

static struct client *x_clients;
static size_t x_nclients;

void
export_setup (struct client *clients, size_t nclients)
{
  x_clients = clients;
  x_nclients = nclients;
}

/* Milliseconds left in the negotiation (at least 1; -1 after it). */
static int
x_left (const struct xconn *x)
{
  int64_t left;

  if (x->deadline == 0)
    return -1;
  left = x->deadline - (int64_t) lb_now_ms ();
  return left < 1 ? 1 : left > INT32_MAX ? INT32_MAX : (int) left;
}

/* The first client named NAME (LEN bytes), or NULL. */
static struct client *
x_by_name (const char *name, size_t len)
{
  size_t i;

  for (i = 0; i < x_nclients; i++) {
    const char *n = x_clients[i].conf->name;
    if (strlen (n) == len && memcmp (n, name, len) == 0)
      return &x_clients[i];
  }
  return NULL;
}

/* ---- I/O: one lb_conn, raw before STARTTLS, TLS after ----------------- */

/* Receive exactly LEN bytes; within the negotiation's deadline while it
 * runs.  0, or -1 (errno; ECONNRESET at the end of the stream).
 */
static int
x_recv (struct xconn *x, void *buf, size_t len)
{
  return lb_conn_recv_all (x->conn, buf, len, x_left (x));
}

static int
x_sendv (struct xconn *x, struct iovec *iov, int n)
{
  return lb_conn_sendv (x->conn, iov, n, x_left (x));
}

static int
x_send (struct xconn *x, const void *buf, size_t len)
{
  return lb_conn_send (x->conn, buf, len, x_left (x));
}

/* ---- negotiation ------------------------------------------------------ */

/* One option reply: header, then the pieces A and B (either may be
 * empty).
 */
static int
x_reply2 (struct xconn *x, uint32_t opt, uint32_t type,
          const void *a, size_t alen, const void *b, size_t blen)
{
  uint8_t h[20];
  struct iovec v[3] = {
    { h, sizeof h }, { (void *) a, alen }, { (void *) b, blen },
  };

  lb_put_be64 (h, NBD_REP_MAGIC);
  lb_put_be32 (h + 8, opt);
  lb_put_be32 (h + 12, type);
  lb_put_be32 (h + 16, alen + blen);
  return x_sendv (x, v, 3);
}

static int
x_reply (struct xconn *x, uint32_t opt, uint32_t type)
{
  return x_reply2 (x, opt, type, NULL, 0, NULL, 0);
}

static int
x_reply_err (struct xconn *x, uint32_t opt, uint32_t type,
             const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));

static int
x_reply_err (struct xconn *x, uint32_t opt, uint32_t type,
             const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  return x_reply2 (x, opt, type, msg, strlen (msg), NULL, 0);
}

/* The export NAME (LEN bytes) as this connection may see it, or NULL.
 * The empty name is the default export: the identity's own with TLS,
 * the only client's without.
 */
static struct client *
x_find (struct xconn *x, const uint8_t *name, size_t len)
{
  const char *n;

  if (x->el->conf->tls) {
    n = x->idc->conf->name;
    if (len == 0 || (len == strlen (n) && memcmp (n, name, len) == 0))
      return x->idc;
    return NULL;
  }
  if (len == 0)
    return x_nclients == 1 ? &x_clients[0] : NULL;
  return x_by_name ((const char *) name, len);
}

static bool
x_visible (struct xconn *x, struct client *cl)
{
  return !x->el->conf->tls || cl == x->idc;
}

/* A peer-chosen name, safe to log and to echo. */
static void
x_safe (char *out, size_t outlen, const uint8_t *name, size_t len)
{
  lb_log_safe (out, outlen, (const char *) name, len > 64 ? 64 : len);
}

/* The human description of what CL's export serves now, for
 * NBD_INFO_DESCRIPTION, and its *SIZE; false if it serves nothing.
 */
static bool
x_describe (struct client *cl, uint64_t *size, char *out, size_t len)
{
  char when[LB_TIME_LEN];
  time_t since = 0;
  int fd = open (cl->conf->file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  enum snap_serves what = snapset_would_serve (&cl->snaps, fd, size, &since);

  if (fd >= 0)
    close (fd);
  else if (what == SNAP_SERVES_LIVE)
    what = SNAP_SERVES_NOTHING;         /* no image to freeze */
  switch (what) {
  case SNAP_SERVES_NOTHING:
    return false;
  case SNAP_SERVES_LIVE:
    snprintf (out, len, "livebackup image of %s: the live image, frozen "
              "when opened", cl->conf->name);
    break;
  case SNAP_SERVES_LAST_CONSISTENT:
    snprintf (out, len, "livebackup image of %s: its last consistent state, "
              "of %s (a scan or catch-up is running)", cl->conf->name,
              lb_time_local (since, when));
    break;
  }
  return true;
}

static const char *
x_refusal (struct client *cl)
{
  if (access (cl->conf->file, F_OK) == -1)
    return "no image yet (the client never connected)";
  return "the image is inconsistent (a scan or catch-up is running, or was "
         "interrupted) and lbd holds no consistent state of it";
}

/* Count a refusal of CL's export (a failed TLS handshake under its
 * name, or nothing to serve), for status; also the set's ops->refused.
 */
static void
x_refused (void *client)
{
  struct client *cl = client;

  pthread_mutex_lock (&cl->lock);
  cl->exports_refused++;
  pthread_mutex_unlock (&cl->lock);
}

/* Open CL's export for the transmission phase: the image and the
 * snapshot to read.  0, or -1 with why in WHY.
 */
static int
x_open (struct xconn *x, struct client *cl, char *why, size_t whylen)
{
  char when[LB_TIME_LEN];

  x->ifd = open (cl->conf->file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (x->ifd == -1) {
    if (errno == ENOENT)
      snprintf (why, whylen, "no image yet (the client never connected)");
    else
      snprintf (why, whylen, "cannot open the image: %s", strerror (errno));
    goto refused;
  }
  x->snap = snapset_open (&cl->snaps, x->ifd, &x->since, why, whylen);
  if (x->snap == NULL) {
    close (x->ifd);
    x->ifd = -1;
    goto refused;
  }
  x->cl = cl;
  connset_set_client (x->c, cl);
  x->size = x->snap->size;
  x->buf = malloc (SNAP_READ_PIECE);
  if (x->buf == NULL) {
    snapshot_release (x->snap);
    x->snap = NULL;
    close (x->ifd);
    x->ifd = -1;
    x->cl = NULL;
    snprintf (why, whylen, "out of memory");
    goto refused;
  }
  pthread_mutex_lock (&cl->lock);
  cl->exports++;
  cl->exports_served++;
  pthread_mutex_unlock (&cl->lock);
  if (x->since)
    lb_info ("export %s to %s: serving its last consistent state, of %s "
             "(snapshot %u, %" PRIu64 " bytes)", cl->conf->name, x->peer,
             lb_time_local (x->since, when), x->snap->id, x->size);
  else
    lb_info ("export %s to %s: serving the live image frozen now "
             "(snapshot %u, %" PRIu64 " bytes)", cl->conf->name, x->peer,
             x->snap->id, x->size);
  return 0;

 refused:
  lb_warn ("export %s to %s: refused: %s", cl->conf->name, x->peer, why);
  x_refused (cl);
  return -1;
}

static uint16_t
x_tflags (void)
{
  return NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH;
}

/* Where the negotiation goes after an option. */
enum x_next {
  X_NEXT_OPTION,                /* read the next option */
  X_NEXT_TRANSMIT,              /* NBD_OPT_GO succeeded */
  X_NEXT_CLOSE,                 /* the connection is lost */
};

/* After sending a reply that SENT (0 or -1): the next option, or close. */
static enum x_next
x_after_reply (int sent)
{
  return sent == -1 ? X_NEXT_CLOSE : X_NEXT_OPTION;
}

/* NBD_OPT_INFO and NBD_OPT_GO. */
static enum x_next
x_info_go (struct xconn *x, uint32_t opt, uint32_t len)
{
  const uint8_t *d = x->opt;
  uint32_t namelen;
  uint16_t nreq, i;
  bool want_name = false, want_desc = false;
  struct client *cl;
  char safe[80], why[512], desc[300];
  uint8_t info[12];
  uint64_t size = 0;

  if (len < 6 || (namelen = lb_get_be32 (d)) > len - 6
      || len != 4 + namelen + 2 + 2 * (uint32_t) (nreq = lb_get_be16 (d + 4 + namelen)))
    return x_after_reply (x_reply_err (x, opt, NBD_REP_ERR_INVALID,
                                       "malformed %s request",
                                       opt == NBD_OPT_GO ? "NBD_OPT_GO"
                                                         : "NBD_OPT_INFO"));
  for (i = 0; i < nreq; i++) {
    uint16_t r = lb_get_be16 (d + 4 + namelen + 2 + 2 * i);
    if (r == NBD_INFO_NAME) want_name = true;
    if (r == NBD_INFO_DESCRIPTION) want_desc = true;
  }
  x_safe (safe, sizeof safe, d + 4, namelen);
  cl = x_find (x, d + 4, namelen);
  if (cl == NULL) {
    if (!x->warned_unknown)
      lb_warn ("export %s: %s asked for an export it may not see: '%s'",
               x->el->conf->listen.text, x->peer, safe);
    x->warned_unknown = true;
    return x_after_reply (x_reply_err (x, opt, NBD_REP_ERR_UNKNOWN,
                                       "no export named '%s'", safe));
  }
  if (opt == NBD_OPT_GO) {
    if (x_open (x, cl, why, sizeof why) == -1)
      return x_after_reply (x_reply_err (x, opt, NBD_REP_ERR_POLICY,
                                         "export %s: %s", cl->conf->name,
                                         why));
    size = x->size;
    if (x->since) {
      char when[LB_TIME_LEN];
      snprintf (desc, sizeof desc, "livebackup image of %s: its last "
                "consistent state, of %s", cl->conf->name,
                lb_time_local (x->since, when));
    }
    else
      snprintf (desc, sizeof desc, "livebackup image of %s: the live image, "
                "frozen when opened", cl->conf->name);
  }
  else if (!x_describe (cl, &size, desc, sizeof desc))
    return x_after_reply (x_reply_err (x, opt, NBD_REP_ERR_POLICY,
                                       "export %s: %s", cl->conf->name,
                                       x_refusal (cl)));

  lb_put_be16 (info, NBD_INFO_EXPORT);
  lb_put_be64 (info + 2, size);
  lb_put_be16 (info + 10, x_tflags ());
  if (x_reply2 (x, opt, NBD_REP_INFO, info, 12, NULL, 0) == -1)
    return X_NEXT_CLOSE;
  if (want_name) {
    lb_put_be16 (info, NBD_INFO_NAME);
    if (x_reply2 (x, opt, NBD_REP_INFO, info, 2, cl->conf->name,
                  strlen (cl->conf->name)) == -1)
      return X_NEXT_CLOSE;
  }
  if (want_desc) {
    lb_put_be16 (info, NBD_INFO_DESCRIPTION);
    if (x_reply2 (x, opt, NBD_REP_INFO, info, 2, desc, strlen (desc)) == -1)
      return X_NEXT_CLOSE;
  }
  {
    uint8_t bs[14];
    lb_put_be16 (bs, NBD_INFO_BLOCK_SIZE);
    lb_put_be32 (bs + 2, 1);
    lb_put_be32 (bs + 6, 4096);
    lb_put_be32 (bs + 10, LBD_EXPORT_MAX_REQUEST);
    if (x_reply2 (x, opt, NBD_REP_INFO, bs, 14, NULL, 0) == -1)
      return X_NEXT_CLOSE;
  }
  if (x_reply (x, opt, NBD_REP_ACK) == -1)
    return X_NEXT_CLOSE;
  if (opt != NBD_OPT_GO)
    return X_NEXT_OPTION;
  /* Contexts chosen for another export do not apply to this one. */
  if (x->meta && strcmp (x->meta_export, cl->conf->name) != 0
      && !(x->meta_export[0] == '\0' && namelen == 0))
    x->meta = false;
  return X_NEXT_TRANSMIT;
}

/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT.  0, or -1. */
static int
x_meta (struct xconn *x, uint32_t opt, uint32_t len)
{
  const uint8_t *d = x->opt;
  uint32_t namelen, nq, pos, i, ql;
  struct client *cl;
  char safe[80];
  bool set = opt == NBD_OPT_SET_META_CONTEXT, found = false;
  uint8_t id[4];

  if (!x->structured)
    return x_reply_err (x, opt, NBD_REP_ERR_INVALID,
                        "structured replies must be negotiated first");
  if (len < 8 || (namelen = lb_get_be32 (d)) > len - 8)
    return x_reply_err (x, opt, NBD_REP_ERR_INVALID, "malformed request");
  pos = 4 + namelen;
  nq = lb_get_be32 (d + pos);
  pos += 4;
  /* Check the whole request before answering anything. */
  for (i = 0; i < nq; i++) {
    if (len - pos < 4 || (ql = lb_get_be32 (d + pos)) > len - pos - 4)
      return x_reply_err (x, opt, NBD_REP_ERR_INVALID, "malformed request");
    pos += 4 + ql;
  }
  if (pos != len)
    return x_reply_err (x, opt, NBD_REP_ERR_INVALID, "malformed request");
  cl = x_find (x, d + 4, namelen);
  if (cl == NULL) {
    x_safe (safe, sizeof safe, d + 4, namelen);
    return x_reply_err (x, opt, NBD_REP_ERR_UNKNOWN, "no export named '%s'",
                        safe);
  }
  lb_put_be32 (id, set ? X_BASE_ALLOCATION : 0);
  if (nq == 0 && !set) {
    if (x_reply2 (x, opt, NBD_REP_META_CONTEXT, id, 4, "base:allocation",
                  15) == -1)
      return -1;
  }
  for (pos = 8 + namelen, i = 0; i < nq; i++) {
    ql = lb_get_be32 (d + pos);
    const char *q = (const char *) d + pos + 4;
    pos += 4 + ql;
    if ((ql == 15 && memcmp (q, "base:allocation", 15) == 0)
        || (!set && ql == 5 && memcmp (q, "base:", 5) == 0)) {
      if (found)
        continue;
      found = true;
      if (x_reply2 (x, opt, NBD_REP_META_CONTEXT, id, 4, "base:allocation",
                    15) == -1)
        return -1;
    }
  }
  if (set) {
    x->meta = found;
    snprintf (x->meta_export, sizeof x->meta_export, "%s",
              namelen ? cl->conf->name : "");
  }
  return x_reply (x, opt, NBD_REP_ACK);
}

/* The TLS handshake after NBD_OPT_STARTTLS: identity = a client's name,
 * key = its key (connset_lookup gives unknown names a random key).
 */
static void *
x_find_identity (void *listener, const char *identity, struct lb_key *key,
                 bool *encrypt)
{
  struct client *cl = x_by_name (identity, strlen (identity));

  (void) listener;
  if (cl == NULL)
    return NULL;
  *key = cl->key;
  *encrypt = true;
  return cl;
}

static int
x_starttls (struct xconn *x)
{
  char err[256], identity[256] = "";
  void *client = NULL;
  int r;

  r = lb_conn_server_starttls (x->conn, connset_lookup, x->c, x_left (x),
                               &client, identity, sizeof identity, err,
                               sizeof err);
  if (connset_refused (x->c, r == 0 ? x->conn : NULL, client, identity, err))
    return -1;                  /* x_free closes the connection */
  x->idc = client;
  lb_debug ("export %s: %s: TLS as client %s (%s)", x->el->conf->listen.text,
            x->peer, x->idc->conf->name, lb_conn_describe (x->conn));
  return 0;
}

/* The option haggling.  0: transmission, -1: close. */
static int
x_negotiate (struct xconn *x)
{
  uint8_t h[18], o[16];
  uint32_t cflags, opt, len;
  const char *addr = x->el->conf->listen.text;
  char safe[80];
  enum x_next next;
  int n, r;
  size_t i;

  lb_put_be64 (h, NBD_MAGIC);
  lb_put_be64 (h + 8, NBD_IHAVEOPT);
  lb_put_be16 (h + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
  if (x_send (x, h, sizeof h) == -1 || x_recv (x, o, 4) == -1)
    goto io;
  cflags = lb_get_be32 (o);
  if (cflags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
    lb_warn ("export %s: %s: unknown client flags 0x%" PRIx32 "; closing",
             addr, x->peer, cflags);
    return -1;
  }
  x->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;

  for (n = 0; n < X_OPT_COUNT; n++) {
    if (x_recv (x, o, 16) == -1)
      goto io;
    opt = lb_get_be32 (o + 8);
    len = lb_get_be32 (o + 12);
    if (lb_get_be64 (o) != NBD_IHAVEOPT) {
      lb_warn ("export %s: %s: not an NBD option (bad magic); closing", addr,
               x->peer);
      return -1;
    }
    if (len > X_OPT_MAX) {
      lb_warn ("export %s: %s: option %" PRIu32 " of %" PRIu32 " bytes, more "
               "than %d; closing", addr, x->peer, opt, len, X_OPT_MAX);
      return -1;
    }
    if (x_recv (x, x->opt, len) == -1)
      goto io;

    if (x->el->conf->tls && !lb_conn_encrypted (x->conn)) {
      /* FORCEDTLS: nothing but STARTTLS and ABORT before TLS. */
      switch (opt) {
      case NBD_OPT_STARTTLS:
        if (len != 0) {
          r = x_reply_err (x, opt, NBD_REP_ERR_INVALID, "STARTTLS takes no "
                           "data");
          break;
        }
        if (x_reply (x, opt, NBD_REP_ACK) == -1)
          goto io;
        if (x_starttls (x) == -1)
          return -1;
        /* Nothing negotiated before TLS carries over. */
        x->structured = x->meta = false;
        r = 0;
        break;
      case NBD_OPT_ABORT:
        x_reply (x, opt, NBD_REP_ACK);
        return -1;
      case NBD_OPT_EXPORT_NAME:
        lb_warn ("export %s: %s: NBD_OPT_EXPORT_NAME without TLS, which this "
                 "address requires; closing", addr, x->peer);
        return -1;
      default:
        r = x_reply_err (x, opt, NBD_REP_ERR_TLS_REQD, "TLS is required: "
                         "connect with TLS and your client's pre-shared key "
                         "(see lbd --psk-line)");
        if ((opt == NBD_OPT_GO || opt == NBD_OPT_INFO || opt == NBD_OPT_LIST)
            && !x->warned_tls) {
          x->warned_tls = true;
          lb_warn ("export %s: %s: asked without TLS, which this address "
                   "requires; refused", addr, x->peer);
        }
        break;
      }
      if (r == -1)
        goto io;
      continue;
    }

    switch (opt) {
    case NBD_OPT_STARTTLS:
      r = lb_conn_encrypted (x->conn)
        ? x_reply_err (x, opt, NBD_REP_ERR_INVALID, "TLS is already on")
        : x_reply_err (x, opt, NBD_REP_ERR_POLICY, "TLS is off on this "
                       "address (tls=off)");
      break;
    case NBD_OPT_ABORT:
      x_reply (x, opt, NBD_REP_ACK);
      return -1;
    case NBD_OPT_LIST:
      if (len != 0) {
        r = x_reply_err (x, opt, NBD_REP_ERR_INVALID, "LIST takes no data");
        break;
      }
      r = 0;
      for (i = 0; i < x_nclients && r == 0; i++) {
        struct client *cl = &x_clients[i];
        uint8_t nl[4];
        uint64_t size;
        char desc[300];
        /* Only what this connection may open now: an export that serves
         * nothing would only make clients that open every listed export
         * (nbdinfo --list) fail.
         */
        if (!x_visible (x, cl)
            || x_by_name (cl->conf->name, strlen (cl->conf->name)) != cl
            || !x_describe (cl, &size, desc, sizeof desc))
          continue;
        lb_put_be32 (nl, strlen (cl->conf->name));
        r = x_reply2 (x, opt, NBD_REP_SERVER, nl, 4, cl->conf->name,
                      strlen (cl->conf->name));
      }
      if (r == 0)
        r = x_reply (x, opt, NBD_REP_ACK);
      break;
    case NBD_OPT_STRUCTURED_REPLY:
      if (len != 0) {
        r = x_reply_err (x, opt, NBD_REP_ERR_INVALID, "STRUCTURED_REPLY takes "
                         "no data");
        break;
      }
      x->structured = true;
      r = x_reply (x, opt, NBD_REP_ACK);
      break;
    case NBD_OPT_LIST_META_CONTEXT:
    case NBD_OPT_SET_META_CONTEXT:
      r = x_meta (x, opt, len);
      break;
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
      next = x_info_go (x, opt, len);
      if (next == X_NEXT_TRANSMIT)
        return 0;
      r = next == X_NEXT_CLOSE ? -1 : 0;
      break;
    case NBD_OPT_EXPORT_NAME: {
      struct client *cl = x_find (x, x->opt, len);
      char why[512];
      uint8_t rep[10 + 124];
      x_safe (safe, sizeof safe, x->opt, len);
      if (cl == NULL) {
        lb_warn ("export %s: %s asked for an export it may not see: '%s'; "
                 "closing", addr, x->peer, safe);
        return -1;
      }
      if (x_open (x, cl, why, sizeof why) == -1)
        return -1;
      memset (rep, 0, sizeof rep);
      lb_put_be64 (rep, x->size);
      lb_put_be16 (rep + 8, x_tflags ());
      if (x_send (x, rep, x->no_zeroes ? 10 : sizeof rep) == -1)
        goto io;
      return 0;
    }
    default:
      r = x_reply_err (x, opt, NBD_REP_ERR_UNSUP, "option %" PRIu32
                       " not supported", opt);
      break;
    }
    if (r == -1)
      goto io;
  }
  lb_warn ("export %s: %s: more than %d options; closing", addr, x->peer,
           X_OPT_COUNT);
  return -1;

 io:
  if (errno == ETIMEDOUT)
    lb_warn ("export %s: %s: negotiation not finished within %d ms; closing",
             addr, x->peer, LBD_HANDSHAKE_MS);
  else
    lb_debug ("export %s: %s: gone during the negotiation (%s)", addr,
              x->peer, lb_conn_error (x->conn));
  return -1;
}

/* ---- transmission ----------------------------------------------------- */

static int
x_simple (struct xconn *x, uint64_t cookie, uint32_t error)
{
  uint8_t r[16];

  lb_put_be32 (r, NBD_SIMPLE_REPLY_MAGIC);
  lb_put_be32 (r + 4, error);
  lb_put_be64 (r + 8, cookie);
  return x_send (x, r, sizeof r);
}

static void
x_chunk_header (uint8_t *h, uint16_t flags, uint16_t type, uint64_t cookie,
                uint32_t len)
{
  lb_put_be32 (h, NBD_STRUCTURED_REPLY_MAGIC);
  lb_put_be16 (h + 4, flags);
  lb_put_be16 (h + 6, type);
  lb_put_be64 (h + 8, cookie);
  lb_put_be32 (h + 16, len);
}

/* An error reply to a command (structured, with a message, when it can). */
static int
x_error (struct xconn *x, uint64_t cookie, uint32_t error, const char *msg)
{
  uint8_t h[20 + 6];
  size_t ml = strlen (msg);
  struct iovec v[2] = { { h, sizeof h }, { (void *) msg, ml } };

  if (!x->structured)
    return x_simple (x, cookie, error);
  x_chunk_header (h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, cookie,
                  6 + ml);
  lb_put_be32 (h + 20, error);
  lb_put_be16 (h + 24, ml);
  return x_sendv (x, v, 2);
}

static uint32_t
x_errno (int e)
{
  switch (e) {
  case ENOMEM: return NBD_ENOMEM;
  case EINVAL: case ERANGE: return NBD_EINVAL;
  default: return NBD_EIO;
  }
}

/* Serve a READ; -1 ends the connection. */
static int
x_read (struct xconn *x, uint64_t cookie, uint64_t off, uint32_t len)
{
  bool first = true;

  while (len > 0) {
    uint32_t n = len < SNAP_READ_PIECE ? len : SNAP_READ_PIECE;
    bool last = n == len;
    uint8_t h[20 + 12];
    struct iovec v[2] = { { h, 0 }, { x->buf, 0 } };

    if (snapshot_read (x->snap, x->ifd, x->buf, off, n) == -1) {
      int e = errno;
      lb_warn ("export %s to %s: read of %" PRIu32 " bytes at %" PRIu64
               " failed: %s", x->cl->conf->name, x->peer, n, off,
               strerror (e));
      if (x->structured || first)
        return x_error (x, cookie, x_errno (e), e == EIO
                        ? "the snapshot could not be kept (see lbd's log)"
                        : "read error on the server");
      /* A simple reply's data has started: nothing else can say it. */
      return -1;
    }
    if (!x->structured) {
      if (first && x_simple (x, cookie, 0) == -1)
        return -1;
      if (x_send (x, x->buf, n) == -1)
        return -1;
    }
    else {
      bool zero = true;
      size_t i;
      for (i = 0; i < n && zero; i += 4096) {
        static const uint8_t z[4096];
        size_t k = n - i < sizeof z ? n - i : sizeof z;
        zero = memcmp (x->buf + i, z, k) == 0;
      }
      if (zero) {
        x_chunk_header (h, last ? NBD_REPLY_FLAG_DONE : 0,
                        NBD_REPLY_TYPE_OFFSET_HOLE, cookie, 12);
        lb_put_be64 (h + 20, off);
        lb_put_be32 (h + 28, n);
        v[0].iov_len = 32;
        if (x_sendv (x, v, 1) == -1)
          return -1;
      }
      else {
        x_chunk_header (h, last ? NBD_REPLY_FLAG_DONE : 0,
                        NBD_REPLY_TYPE_OFFSET_DATA, cookie, 8 + n);
        lb_put_be64 (h + 20, off);
        v[0].iov_len = 28;
        v[1].iov_len = n;
        if (x_sendv (x, v, 2) == -1)
          return -1;
      }
    }
    x->bytes_out += n;
    first = false;
    off += n;
    len -= n;
  }
  return 0;
}

static int
x_block_status (struct xconn *x, uint64_t cookie, uint16_t flags,
                uint64_t off, uint32_t len)
{
  uint8_t d[20 + 4 + 8 * X_EXTENTS];
  unsigned n = 0, max = (flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : X_EXTENTS;
  uint32_t lastf = 0;
  uint64_t pos = off, end = off + len;

  while (pos < end) {
    uint64_t elen;
    bool hole;
    uint32_t f;

    if (snapshot_extent (x->snap, x->ifd, pos, end - pos, &elen, &hole)
        == -1)
      return x_error (x, cookie, x_errno (errno), "block status failed");
    f = hole ? NBD_STATE_HOLE | NBD_STATE_ZERO : 0;
    if (n > 0 && f == lastf)
      lb_put_be32 (d + 24 + 8 * (n - 1),
             lb_get_be32 (d + 24 + 8 * (n - 1)) + (uint32_t) elen);
    else {
      if (n == max)
        break;
      lb_put_be32 (d + 24 + 8 * n, elen);
      lb_put_be32 (d + 24 + 8 * n + 4, f);
      n++;
      lastf = f;
    }
    pos += elen;
  }
  x_chunk_header (d, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, cookie,
                  4 + 8 * n);
  lb_put_be32 (d + 20, X_BASE_ALLOCATION);
  return x_send (x, d, 24 + 8 * n);
}

/* Read and drop LEN bytes of a payload we refuse. */
static int
x_discard (struct xconn *x, uint32_t len)
{
  while (len > 0) {
    uint32_t n = len < SNAP_READ_PIECE ? len : SNAP_READ_PIECE;
    if (x_recv (x, x->buf, n) == -1)
      return -1;
    len -= n;
  }
  return 0;
}

static void
x_refuse_write (struct xconn *x, const char *what)
{
  if (x->warned_write)
    return;
  x->warned_write = true;
  lb_warn ("export %s to %s: %s refused: the export is read-only",
           x->cl->conf->name, x->peer, what);
}

static void
x_transmit (struct xconn *x)
{
  const char *name = x->cl->conf->name;
  uint8_t h[28];
  int r;

  for (;;) {
    uint16_t flags, type;
    uint64_t cookie, off;
    uint32_t len;
    bool in_range;

    if (x_recv (x, h, sizeof h) == -1) {
      lb_info ("export %s to %s: disconnected (%" PRIu64 " bytes read)",
               name, x->peer, x->bytes_out);
      return;
    }
    flags = lb_get_be16 (h + 4);
    type = lb_get_be16 (h + 6);
    cookie = lb_get_be64 (h + 8);
    off = lb_get_be64 (h + 16);
    len = lb_get_be32 (h + 24);
    if (lb_get_be32 (h) != NBD_REQUEST_MAGIC) {
      lb_warn ("export %s to %s: protocol error: bad request magic; closing",
               name, x->peer);
      return;
    }
    in_range = off <= x->size && len <= x->size - off;
    if (flags & ~(NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_REQ_ONE)) {
      if (type == NBD_CMD_WRITE && (len > LBD_EXPORT_MAX_REQUEST
                                    || x_discard (x, len) == -1))
        return;
      r = x_error (x, cookie, NBD_EINVAL, "unsupported command flags");
    }
    else switch (type) {
    case NBD_CMD_READ:
      if (len == 0 || len > LBD_EXPORT_MAX_REQUEST || !in_range)
        r = x_error (x, cookie, NBD_EINVAL, len > LBD_EXPORT_MAX_REQUEST
                     ? "read larger than the maximum block size"
                     : "read outside the export");
      else
        r = x_read (x, cookie, off, len);
      break;
    case NBD_CMD_WRITE:
      if (len > LBD_EXPORT_MAX_REQUEST) {
        lb_warn ("export %s to %s: write of %" PRIu32 " bytes, more than "
                 "the maximum; closing", name, x->peer, len);
        return;
      }
      if (x_discard (x, len) == -1)
        return;
      x_refuse_write (x, "write");
      r = x_error (x, cookie, NBD_EPERM, "read-only export");
      break;
    case NBD_CMD_TRIM:
    case NBD_CMD_WRITE_ZEROES:
      x_refuse_write (x, type == NBD_CMD_TRIM ? "trim" : "write zeroes");
      r = x_error (x, cookie, NBD_EPERM, "read-only export");
      break;
    case NBD_CMD_FLUSH:
      r = x_simple (x, cookie, 0);
      break;
    case NBD_CMD_DISC:
      lb_info ("export %s to %s: closed by the client (%" PRIu64 " bytes "
               "read)", name, x->peer, x->bytes_out);
      return;
    case NBD_CMD_BLOCK_STATUS:
      if (!x->structured || !x->meta)
        r = x_error (x, cookie, NBD_EINVAL, "no metadata context selected");
      else if (len == 0 || !in_range)
        r = x_error (x, cookie, NBD_EINVAL, "block status outside the "
                     "export");
      else
        r = x_block_status (x, cookie, flags, off, len);
      break;
    default:
      r = x_error (x, cookie, NBD_EINVAL, "unsupported command");
      break;
    }
    if (r == -1) {
      lb_info ("export %s to %s: connection lost (%" PRIu64 " bytes read)",
               name, x->peer, x->bytes_out);
      return;
    }
  }
}

/* ---- threads ---------------------------------------------------------- */

static void
x_full (void *listener)
{
  struct export_listener *el = listener;

  lb_warn ("export %s: too many connections (%d at most, %d in "
           "negotiation); refusing new ones", el->conf->listen.text,
           LBD_EXPORT_MAX_CONNS, LBD_MAX_HANDSHAKING);
}

static void x_main (struct connset_conn *c, void *arg);
static void x_free (void *arg);

static const struct connset_ops x_ops = {
  .thread = "an export thread",
  .log_prefix = "export ",
  .handshake = "TLS handshake",
  .max_conns = LBD_EXPORT_MAX_CONNS,
  .max_handshaking = LBD_MAX_HANDSHAKING,
  .full = x_full,
  .find = x_find_identity,
  .refused = x_refused,
  .serve = x_main,
  .release = x_free,
};

/* Every export connection; "in its handshake" is in its negotiation. */
static struct connset x_set =
  CONNSET_INIT (&x_ops, "refused export connections");

/* The set's ops->release. */
static void
x_free (void *arg)
{
  struct xconn *x = arg;

  if (x->conn)
    lb_conn_close (x->conn);
  else if (x->fd >= 0)
    close (x->fd);
  if (x->snap)
    snapshot_release (x->snap);
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
x_main (struct connset_conn *c, void *arg)
{
  struct xconn *x = arg;
  int r;

  x->c = c;
  x->deadline = (int64_t) lb_now_ms () + LBD_HANDSHAKE_MS;
  x->opt = malloc (X_OPT_MAX + 1);
  x->conn = lb_conn_raw (x->fd);
  r = x->opt && x->conn ? x_negotiate (x) : -1;
  x->deadline = 0;
  connset_handshake_done (c);
  if (r == 0)
    x_transmit (x);
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
  connset_start (&x_set, fd, el, el->conf->listen.text, peer, x);
}

void
export_stop (const struct export_listener *el, const struct client *cl)
{
  connset_stop (&x_set, el, cl);
  connset_wait (&x_set, el, cl);
}

void
export_shutdown_all (void)
{
  connset_shutdown (&x_set);
}
