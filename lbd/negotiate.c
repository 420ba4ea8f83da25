/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: restores over NBD — the fixed newstyle negotiation, from the
 * greeting to NBD_OPT_GO: STARTTLS, LIST, INFO/GO, structured replies
 * and the base:allocation context.  See export.h for what is offered,
 * lbd/nbd.h for the protocol's constants.
 */

#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <unistd.h>

#include "lb_array.h"
#include "lb_bytes.h"
#include "lb_log.h"
#include "lb_time.h"
#include "nbd.h"
#include "running.h"
#include "xconn.h"

/* One option reply: header, then the pieces A and B (either may be
 * empty).
 */
static int
negotiate_reply2 (struct xconn *x, uint32_t opt, uint32_t type,
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
  return export_sendv (x, v, 3);
}

static int
negotiate_reply (struct xconn *x, uint32_t opt, uint32_t type)
{
  return negotiate_reply2 (x, opt, type, NULL, 0, NULL, 0);
}

static int
negotiate_reply_err (struct xconn *x, uint32_t opt, uint32_t type,
             const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));

static int
negotiate_reply_err (struct xconn *x, uint32_t opt, uint32_t type,
             const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  return negotiate_reply2 (x, opt, type, msg, strlen (msg), NULL, 0);
}

/* The export NAME (LEN bytes) as this connection may see it, or NULL.
 * The empty name is the default export: the identity's own with TLS,
 * the only client's without.  The connection is bound to the client
 * (the TLS identity's since the handshake; with tls=off, the one found
 * here, until another is), which keeps its line from changing while
 * the connection uses it (reload.c).
 */
static struct client *
negotiate_find_client (struct xconn *x, const uint8_t *name, size_t len)
{
  struct client *cl;
  const char *n;

  if (x->el->conf->tls) {
    n = x->idc->conf->name;
    if (len == 0 || (len == strlen (n) && memcmp (n, name, len) == 0))
      return x->idc;
    return NULL;
  }
  pthread_rwlock_rdlock (&running_lock);
  cl = len == 0 ? running_only_client ()
                : running_by_name ((const char *) name, len);
  if (cl)
    connset_set_client (x->c, cl);
  pthread_rwlock_unlock (&running_lock);
  return cl;
}

/* The export NAME (LEN bytes) as negotiate_find_client finds it, or
 * NAME@POINT, a restore point of that client (history.h): then *PLEN is
 * POINT's length (it ends NAME), else 0.  A client whose whole name
 * has an '@' in it is found first.
 */
static struct client *
negotiate_find (struct xconn *x, const uint8_t *name, size_t len,
                size_t *plen)
{
  struct client *cl = negotiate_find_client (x, name, len);
  const uint8_t *at;

  *plen = 0;
  if (cl || len == 0 || (at = memrchr (name, '@', len)) == NULL
      || at == name || at + 1 == name + len
      || name + len - (at + 1) > X_POINT_MAX)
    return cl;
  cl = negotiate_find_client (x, name, at - name);
  if (cl)
    *plen = name + len - (at + 1);
  return cl;
}

/* CL's export name, with "@POINT" (PLEN bytes at POINT) if PLEN. */
static void
negotiate_name (char *out, size_t outlen, const struct client *cl,
                const uint8_t *point, size_t plen)
{
  snprintf (out, outlen, "%s%s%.*s", cl->conf->name, plen ? "@" : "",
            (int) plen, (const char *) point);
}

/* The description of restore point E of CL. */
static void
negotiate_point_desc (char *out, size_t outlen, const struct client *cl,
                      const struct points_entry *e)
{
  char when[LB_TIME_LEN];

  snprintf (out, outlen, "livebackup restore point of %s: the image as it "
            "was at %s (taken by %s%s%s)", cl->conf->name,
            lb_time_iso ((uint64_t) e->time, when), e->how,
            e->label[0] ? ", label " : "", e->label);
}

/* CL's restore point named by the PLEN bytes at POINT: its *SIZE and
 * description; false if there is no such point.
 */
static bool
negotiate_describe_point (struct client *cl, const uint8_t *point,
                          size_t plen, uint64_t *size, char *out, size_t len)
{
  char why[256];
  struct hist_point *pt = history_open (&cl->hist, (const char *) point, plen,
                                        why, sizeof why);

  if (pt == NULL) {
    snprintf (out, len, "%s", why);
    return false;
  }
  *size = pt->e.size;
  negotiate_point_desc (out, len, cl, &pt->e);
  history_release (pt);
  return true;
}

/* A peer-chosen name, safe to log and to echo. */
static void
negotiate_safe (char *out, size_t outlen, const uint8_t *name, size_t len)
{
  lb_log_safe (out, outlen, (const char *) name, len > 64 ? 64 : len);
}

/* The human description of what CL's export serves now, for
 * NBD_INFO_DESCRIPTION, and its *SIZE; false if it serves nothing.
 */
static bool
negotiate_describe (struct client *cl, uint64_t *size, char *out, size_t len)
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
negotiate_refusal (struct client *cl)
{
  if (access (cl->conf->file, F_OK) == -1)
    return "no image yet (the client never connected)";
  return "the image is inconsistent (a scan or catch-up is running, or was "
         "interrupted) and lbd holds no consistent state of it";
}

static uint16_t
negotiate_tflags (void)
{
  return NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_FLUSH;
}

/* Where the negotiation goes after an option. */
enum negotiate_next {
  NEGOTIATE_OPTION,                /* read the next option */
  NEGOTIATE_TRANSMIT,              /* NBD_OPT_GO succeeded */
  NEGOTIATE_CLOSE,                 /* the connection is lost */
};

/* After sending a reply that SENT (0 or -1): the next option, or close. */
static enum negotiate_next
negotiate_after_reply (int sent)
{
  return sent == -1 ? NEGOTIATE_CLOSE : NEGOTIATE_OPTION;
}

/* NBD_OPT_INFO and NBD_OPT_GO. */
static enum negotiate_next
negotiate_info_go (struct xconn *x, uint32_t opt, uint32_t len)
{
  const uint8_t *d = x->opt;
  uint32_t namelen;
  uint16_t nreq, i;
  bool want_name = false, want_desc = false;
  struct client *cl;
  char safe[80], why[512], desc[300], full[sizeof x->meta_export];
  uint8_t info[12];
  uint64_t size = 0;
  size_t plen;
  const uint8_t *point;

  if (len < 6 || (namelen = lb_get_be32 (d)) > len - 6
      || len != 4 + namelen + 2 + 2 * (uint32_t) (nreq = lb_get_be16 (d + 4 + namelen)))
    return negotiate_after_reply (negotiate_reply_err (x, opt, NBD_REP_ERR_INVALID,
                                       "malformed %s request",
                                       opt == NBD_OPT_GO ? "NBD_OPT_GO"
                                                         : "NBD_OPT_INFO"));
  for (i = 0; i < nreq; i++) {
    uint16_t r = lb_get_be16 (d + 4 + namelen + 2 + 2 * i);
    if (r == NBD_INFO_NAME) want_name = true;
    if (r == NBD_INFO_DESCRIPTION) want_desc = true;
  }
  negotiate_safe (safe, sizeof safe, d + 4, namelen);
  cl = negotiate_find (x, d + 4, namelen, &plen);
  point = d + 4 + namelen - plen;
  if (cl == NULL) {
    if (!x->warned_unknown)
      lb_warn ("export %s: %s asked for an export it may not see: '%s'",
               x->el->conf->listen.text, x->peer, safe);
    x->warned_unknown = true;
    return negotiate_after_reply (negotiate_reply_err (x, opt, NBD_REP_ERR_UNKNOWN,
                                       "no export named '%s'", safe));
  }
  negotiate_name (full, sizeof full, cl, point, plen);
  if (plen && opt == NBD_OPT_GO) {
    if (transmit_open_point (x, cl, point, plen, why, sizeof why) == -1)
      return negotiate_after_reply (negotiate_reply_err (x, opt,
                                    NBD_REP_ERR_UNKNOWN, "export %s: %s",
                                    cl->conf->name, why));
    size = x->size;
    negotiate_point_desc (desc, sizeof desc, cl, &x->pt->e);
  }
  else if (plen) {
    if (!negotiate_describe_point (cl, point, plen, &size, desc, sizeof desc))
      return negotiate_after_reply (negotiate_reply_err (x, opt,
                                    NBD_REP_ERR_UNKNOWN, "export %s: %s",
                                    cl->conf->name, desc));
  }
  else if (opt == NBD_OPT_GO) {
    if (transmit_open (x, cl, why, sizeof why) == -1)
      return negotiate_after_reply (negotiate_reply_err (x, opt, NBD_REP_ERR_POLICY,
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
  else if (!negotiate_describe (cl, &size, desc, sizeof desc))
    return negotiate_after_reply (negotiate_reply_err (x, opt, NBD_REP_ERR_POLICY,
                                       "export %s: %s", cl->conf->name,
                                       negotiate_refusal (cl)));

  lb_put_be16 (info, NBD_INFO_EXPORT);
  lb_put_be64 (info + 2, size);
  lb_put_be16 (info + 10, negotiate_tflags ());
  if (negotiate_reply2 (x, opt, NBD_REP_INFO, info, 12, NULL, 0) == -1)
    return NEGOTIATE_CLOSE;
  if (want_name) {
    lb_put_be16 (info, NBD_INFO_NAME);
    if (negotiate_reply2 (x, opt, NBD_REP_INFO, info, 2, full,
                  strlen (full)) == -1)
      return NEGOTIATE_CLOSE;
  }
  if (want_desc) {
    lb_put_be16 (info, NBD_INFO_DESCRIPTION);
    if (negotiate_reply2 (x, opt, NBD_REP_INFO, info, 2, desc, strlen (desc)) == -1)
      return NEGOTIATE_CLOSE;
  }
  {
    uint8_t bs[14];
    lb_put_be16 (bs, NBD_INFO_BLOCK_SIZE);
    lb_put_be32 (bs + 2, 1);
    lb_put_be32 (bs + 6, 4096);
    lb_put_be32 (bs + 10, LBD_EXPORT_MAX_REQUEST);
    if (negotiate_reply2 (x, opt, NBD_REP_INFO, bs, 14, NULL, 0) == -1)
      return NEGOTIATE_CLOSE;
  }
  if (negotiate_reply (x, opt, NBD_REP_ACK) == -1)
    return NEGOTIATE_CLOSE;
  if (opt != NBD_OPT_GO)
    return NEGOTIATE_OPTION;
  /* Contexts chosen for another export do not apply to this one. */
  if (x->meta && strcmp (x->meta_export, full) != 0
      && !(x->meta_export[0] == '\0' && namelen == 0))
    x->meta = false;
  return NEGOTIATE_TRANSMIT;
}

/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT.  0, or -1. */
static int
negotiate_meta (struct xconn *x, uint32_t opt, uint32_t len)
{
  const uint8_t *d = x->opt;
  uint32_t namelen, nq, pos, i, ql;
  struct client *cl;
  char safe[80];
  bool set = opt == NBD_OPT_SET_META_CONTEXT, found = false;
  uint8_t id[4];
  size_t plen;

  if (!x->structured)
    return negotiate_reply_err (x, opt, NBD_REP_ERR_INVALID,
                        "structured replies must be negotiated first");
  if (len < 8 || (namelen = lb_get_be32 (d)) > len - 8)
    return negotiate_reply_err (x, opt, NBD_REP_ERR_INVALID, "malformed request");
  pos = 4 + namelen;
  nq = lb_get_be32 (d + pos);
  pos += 4;
  /* Check the whole request before answering anything. */
  for (i = 0; i < nq; i++) {
    if (len - pos < 4 || (ql = lb_get_be32 (d + pos)) > len - pos - 4)
      return negotiate_reply_err (x, opt, NBD_REP_ERR_INVALID, "malformed request");
    pos += 4 + ql;
  }
  if (pos != len)
    return negotiate_reply_err (x, opt, NBD_REP_ERR_INVALID, "malformed request");
  cl = negotiate_find (x, d + 4, namelen, &plen);
  if (cl == NULL) {
    negotiate_safe (safe, sizeof safe, d + 4, namelen);
    return negotiate_reply_err (x, opt, NBD_REP_ERR_UNKNOWN, "no export named '%s'",
                        safe);
  }
  lb_put_be32 (id, set ? X_BASE_ALLOCATION : 0);
  if (nq == 0 && !set) {
    if (negotiate_reply2 (x, opt, NBD_REP_META_CONTEXT, id, 4, "base:allocation",
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
      if (negotiate_reply2 (x, opt, NBD_REP_META_CONTEXT, id, 4, "base:allocation",
                    15) == -1)
        return -1;
    }
  }
  if (set) {
    x->meta = found;
    if (namelen)
      negotiate_name (x->meta_export, sizeof x->meta_export, cl,
                      d + 4 + namelen - plen, plen);
    else
      x->meta_export[0] = '\0';
  }
  return negotiate_reply (x, opt, NBD_REP_ACK);
}

/* Does CL's export serve something now, and is it the one its name
 * opens (the first client line of that name)?  running_lock held.
 */
static bool
negotiate_listed (struct client *cl)
{
  uint64_t size;
  char desc[300];

  return running_by_name (cl->conf->name, strlen (cl->conf->name)) == cl
         && negotiate_describe (cl, &size, desc, sizeof desc);
}

/* One export to list: NAME's length, then NAME and its description. */
struct negotiate_item {
  size_t namelen;
  char *text;
};

static void
negotiate_add (struct negotiate_item **items, size_t *n, size_t *cap,
               const char *name, const char *desc)
{
  char *t;

  if (lb_array_grow (items, cap, *n + 1, sizeof **items) == -1
      || asprintf (&t, "%s%s", name, desc) == -1)
    return;
  (*items)[*n].namelen = strlen (name);
  (*items)[(*n)++].text = t;
}

/* CL's restore points, NAME@POINT each, with their descriptions. */
static void
negotiate_add_points (struct negotiate_item **items, size_t *n, size_t *cap,
                      struct client *cl)
{
  struct hist_info *info;
  size_t k, np;
  char name[LB_CONFIG_NAME_MAX + 1 + POINTS_ID_LEN + 1], desc[300];

  if (history_list (&cl->hist, &info, &np) == -1)
    return;
  for (k = 0; k < np; k++) {
    if (info[k].doomed)
      continue;
    snprintf (name, sizeof name, "%s@%s", cl->conf->name, info[k].e.id);
    negotiate_point_desc (desc, sizeof desc, cl, &info[k].e);
    negotiate_add (items, n, cap, name, desc);
  }
  free (info);
}

/* NBD_OPT_LIST: only what this connection may open now (an export that
 * serves nothing would only make clients that open every listed export,
 * nbdinfo --list, fail).  With TLS that is the identity's own; with
 * tls=off every client's, gathered under running_lock and sent after
 * (running.h: no network I/O under it).  Each client's restore points
 * follow it, as NAME@POINT with their time in the description.  0, or
 * -1.
 */
static int
negotiate_list (struct xconn *x, uint32_t opt)
{
  struct negotiate_item *items = NULL;
  size_t n = 0, cap = 0, i;
  int r = 0;

  pthread_rwlock_rdlock (&running_lock);
  for (i = 0; i < running.nclients; i++) {
    struct client *cl = running.clients[i];
    if (x->el->conf->tls && cl != x->idc)
      continue;
    if (negotiate_listed (cl))
      negotiate_add (&items, &n, &cap, cl->conf->name, "");
    if (running_by_name (cl->conf->name, strlen (cl->conf->name)) == cl)
      negotiate_add_points (&items, &n, &cap, cl);
  }
  pthread_rwlock_unlock (&running_lock);
  for (i = 0; i < n; i++) {
    uint8_t nl[4];
    lb_put_be32 (nl, items[i].namelen);
    if (r == 0)
      r = negotiate_reply2 (x, opt, NBD_REP_SERVER, nl, 4, items[i].text,
                            strlen (items[i].text));
    free (items[i].text);
  }
  free (items);
  return r == 0 ? negotiate_reply (x, opt, NBD_REP_ACK) : -1;
}

static int
negotiate_starttls (struct xconn *x)
{
  char err[256], identity[256] = "";
  void *client = NULL;
  int r;

  r = lb_conn_server_starttls (x->conn, connset_lookup, x->c, export_left (x),
                               &client, identity, sizeof identity, err,
                               sizeof err);
  if (connset_refused (x->c, r == 0 ? x->conn : NULL, client, identity, err))
    return -1;                  /* export_free closes the connection */
  x->idc = client;
  lb_debug ("export %s: %s: TLS as client %s (%s)", x->el->conf->listen.text,
            x->peer, x->idc->conf->name, lb_conn_describe (x->conn));
  return 0;
}

int
negotiate_run (struct xconn *x)
{
  uint8_t h[18], o[16];
  uint32_t cflags, opt, len;
  const char *addr = x->el->conf->listen.text;
  char safe[80];
  enum negotiate_next next;
  int n, r;

  lb_put_be64 (h, NBD_MAGIC);
  lb_put_be64 (h + 8, NBD_IHAVEOPT);
  lb_put_be16 (h + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
  if (export_send (x, h, sizeof h) == -1 || export_recv (x, o, 4) == -1)
    goto io;
  cflags = lb_get_be32 (o);
  if (cflags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
    lb_warn ("export %s: %s: unknown client flags 0x%" PRIx32 "; closing",
             addr, x->peer, cflags);
    return -1;
  }
  x->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;

  for (n = 0; n < X_OPT_COUNT; n++) {
    if (export_recv (x, o, 16) == -1)
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
    if (export_recv (x, x->opt, len) == -1)
      goto io;

    if (x->el->conf->tls && !lb_conn_encrypted (x->conn)) {
      /* FORCEDTLS: nothing but STARTTLS and ABORT before TLS. */
      switch (opt) {
      case NBD_OPT_STARTTLS:
        if (len != 0) {
          r = negotiate_reply_err (x, opt, NBD_REP_ERR_INVALID, "STARTTLS takes no "
                           "data");
          break;
        }
        if (negotiate_reply (x, opt, NBD_REP_ACK) == -1)
          goto io;
        if (negotiate_starttls (x) == -1)
          return -1;
        /* Nothing negotiated before TLS carries over. */
        x->structured = x->meta = false;
        r = 0;
        break;
      case NBD_OPT_ABORT:
        negotiate_reply (x, opt, NBD_REP_ACK);
        return -1;
      case NBD_OPT_EXPORT_NAME:
        lb_warn ("export %s: %s: NBD_OPT_EXPORT_NAME without TLS, which this "
                 "address requires; closing", addr, x->peer);
        return -1;
      default:
        r = negotiate_reply_err (x, opt, NBD_REP_ERR_TLS_REQD, "TLS is required: "
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
        ? negotiate_reply_err (x, opt, NBD_REP_ERR_INVALID, "TLS is already on")
        : negotiate_reply_err (x, opt, NBD_REP_ERR_POLICY, "TLS is off on this "
                       "address (tls=off)");
      break;
    case NBD_OPT_ABORT:
      negotiate_reply (x, opt, NBD_REP_ACK);
      return -1;
    case NBD_OPT_LIST:
      r = len != 0 ? negotiate_reply_err (x, opt, NBD_REP_ERR_INVALID,
                                          "LIST takes no data")
                   : negotiate_list (x, opt);
      break;
    case NBD_OPT_STRUCTURED_REPLY:
      if (len != 0) {
        r = negotiate_reply_err (x, opt, NBD_REP_ERR_INVALID, "STRUCTURED_REPLY takes "
                         "no data");
        break;
      }
      x->structured = true;
      r = negotiate_reply (x, opt, NBD_REP_ACK);
      break;
    case NBD_OPT_LIST_META_CONTEXT:
    case NBD_OPT_SET_META_CONTEXT:
      r = negotiate_meta (x, opt, len);
      break;
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
      next = negotiate_info_go (x, opt, len);
      if (next == NEGOTIATE_TRANSMIT)
        return 0;
      r = next == NEGOTIATE_CLOSE ? -1 : 0;
      break;
    case NBD_OPT_EXPORT_NAME: {
      size_t plen;
      struct client *cl = negotiate_find (x, x->opt, len, &plen);
      char why[512];
      uint8_t rep[10 + 124];
      negotiate_safe (safe, sizeof safe, x->opt, len);
      if (cl == NULL) {
        lb_warn ("export %s: %s asked for an export it may not see: '%s'; "
                 "closing", addr, x->peer, safe);
        return -1;
      }
      if ((plen ? transmit_open_point (x, cl, x->opt + len - plen, plen, why,
                                       sizeof why)
                : transmit_open (x, cl, why, sizeof why)) == -1)
        return -1;
      memset (rep, 0, sizeof rep);
      lb_put_be64 (rep, x->size);
      lb_put_be16 (rep + 8, negotiate_tflags ());
      if (export_send (x, rep, x->no_zeroes ? 10 : sizeof rep) == -1)
        goto io;
      return 0;
    }
    default:
      r = negotiate_reply_err (x, opt, NBD_REP_ERR_UNSUP, "option %" PRIu32
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
