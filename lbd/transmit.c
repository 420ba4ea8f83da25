/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: restores over NBD — the transmission phase: READ (structured
 * replies with holes when negotiated), BLOCK_STATUS, FLUSH and DISC;
 * writes refused.  See export.h.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <unistd.h>

#include "lb_bytes.h"
#include "lb_log.h"
#include "lb_time.h"
#include "nbd.h"
#include "xconn.h"

/* Open CL's export for the transmission phase: the image and the
 * snapshot to read.  0, or -1 with why in WHY.
 */
int
transmit_open (struct xconn *x, struct client *cl, char *why, size_t whylen)
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
  export_refused (cl);
  return -1;
}

int
transmit_open_point (struct xconn *x, struct client *cl, const uint8_t *point,
                     size_t plen, char *why, size_t whylen)
{
  x->ifd = open (cl->conf->file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (x->ifd == -1) {
    snprintf (why, whylen, "cannot open the image: %s", strerror (errno));
    goto refused;
  }
  x->pt = history_open (&cl->hist, (const char *) point, plen, why, whylen);
  x->buf = x->pt ? malloc (SNAP_READ_PIECE) : NULL;
  if (x->buf == NULL) {
    if (x->pt)
      snprintf (why, whylen, "out of memory");
    history_release (x->pt);
    x->pt = NULL;
    close (x->ifd);
    x->ifd = -1;
    goto refused;
  }
  x->cl = cl;
  connset_set_client (x->c, cl);
  x->size = x->pt->e.size;
  pthread_mutex_lock (&cl->lock);
  cl->exports++;
  cl->exports_served++;
  pthread_mutex_unlock (&cl->lock);
  lb_info ("export %s to %s: serving restore point %s (%" PRIu64 " bytes)",
           cl->conf->name, x->peer, x->pt->e.id, x->size);
  return 0;

 refused:
  lb_warn ("export %s@%.*s to %s: refused: %s", cl->conf->name,
           (int) (plen > X_POINT_MAX ? X_POINT_MAX : plen), point, x->peer,
           why);
  export_refused (cl);
  return -1;
}

static int
transmit_simple (struct xconn *x, uint64_t cookie, uint32_t error)
{
  uint8_t r[16];

  lb_put_be32 (r, NBD_SIMPLE_REPLY_MAGIC);
  lb_put_be32 (r + 4, error);
  lb_put_be64 (r + 8, cookie);
  return export_send (x, r, sizeof r);
}

static void
transmit_chunk_header (uint8_t *h, uint16_t flags, uint16_t type, uint64_t cookie,
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
transmit_error (struct xconn *x, uint64_t cookie, uint32_t error, const char *msg)
{
  uint8_t h[20 + 6];
  size_t ml = strlen (msg);
  struct iovec v[2] = { { h, sizeof h }, { (void *) msg, ml } };

  if (!x->structured)
    return transmit_simple (x, cookie, error);
  transmit_chunk_header (h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, cookie,
                  6 + ml);
  lb_put_be32 (h + 20, error);
  lb_put_be16 (h + 24, ml);
  return export_sendv (x, v, 2);
}

static uint32_t
transmit_errno (int e)
{
  switch (e) {
  case ENOMEM: return NBD_ENOMEM;
  case EINVAL: case ERANGE: return NBD_EINVAL;
  default: return NBD_EIO;
  }
}

/* Serve a READ; -1 ends the connection. */
static int
transmit_read (struct xconn *x, uint64_t cookie, uint64_t off, uint32_t len)
{
  bool first = true;

  while (len > 0) {
    uint32_t n = len < SNAP_READ_PIECE ? len : SNAP_READ_PIECE;
    bool last = n == len;
    uint8_t h[20 + 12];
    struct iovec v[2] = { { h, 0 }, { x->buf, 0 } };

    if ((x->pt ? history_read (x->pt, x->ifd, x->buf, off, n)
               : snapshot_read (x->snap, x->ifd, x->buf, off, n)) == -1) {
      int e = errno;
      lb_warn ("export %s to %s: read of %" PRIu32 " bytes at %" PRIu64
               " failed: %s", x->cl->conf->name, x->peer, n, off,
               strerror (e));
      if (x->structured || first)
        return transmit_error (x, cookie, transmit_errno (e), e == EIO
                        ? "the snapshot could not be kept (see lbd's log)"
                        : "read error on the server");
      /* A simple reply's data has started: nothing else can say it. */
      return -1;
    }
    if (!x->structured) {
      if (first && transmit_simple (x, cookie, 0) == -1)
        return -1;
      if (export_send (x, x->buf, n) == -1)
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
        transmit_chunk_header (h, last ? NBD_REPLY_FLAG_DONE : 0,
                        NBD_REPLY_TYPE_OFFSET_HOLE, cookie, 12);
        lb_put_be64 (h + 20, off);
        lb_put_be32 (h + 28, n);
        v[0].iov_len = 32;
        if (export_sendv (x, v, 1) == -1)
          return -1;
      }
      else {
        transmit_chunk_header (h, last ? NBD_REPLY_FLAG_DONE : 0,
                        NBD_REPLY_TYPE_OFFSET_DATA, cookie, 8 + n);
        lb_put_be64 (h + 20, off);
        v[0].iov_len = 28;
        v[1].iov_len = n;
        if (export_sendv (x, v, 2) == -1)
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
transmit_block_status (struct xconn *x, uint64_t cookie, uint16_t flags,
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

    if (x->pt) {
      /* A restore point says all data: reads find its zeroes. */
      elen = end - pos;
      hole = false;
    }
    else if (snapshot_extent (x->snap, x->ifd, pos, end - pos, &elen, &hole)
             == -1)
      return transmit_error (x, cookie, transmit_errno (errno), "block status failed");
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
  transmit_chunk_header (d, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, cookie,
                  4 + 8 * n);
  lb_put_be32 (d + 20, X_BASE_ALLOCATION);
  return export_send (x, d, 24 + 8 * n);
}

/* Read and drop LEN bytes of a payload we refuse. */
static int
transmit_discard (struct xconn *x, uint32_t len)
{
  while (len > 0) {
    uint32_t n = len < SNAP_READ_PIECE ? len : SNAP_READ_PIECE;
    if (export_recv (x, x->buf, n) == -1)
      return -1;
    len -= n;
  }
  return 0;
}

static void
transmit_refuse_write (struct xconn *x, const char *what)
{
  if (x->warned_write)
    return;
  x->warned_write = true;
  lb_warn ("export %s to %s: %s refused: the export is read-only",
           x->cl->conf->name, x->peer, what);
}

/* The connection failed (HOW: "disconnected", "connection lost"): say
 * so, or that lbd ended it (a reload, SIGTERM: connset.h).
 */
static void
transmit_log_end (struct xconn *x, const char *how)
{
  enum connset_why why = connset_conn_stopping (x->c);

  if (why == CONNSET_STOP_SHUTDOWN || why == CONNSET_STOP_RELOAD)
    lb_info ("export %s to %s: ended by lbd (%s; %" PRIu64 " bytes read)",
             x->cl->conf->name, x->peer,
             why == CONNSET_STOP_SHUTDOWN ? "shutting down"
             : "its configuration changed", x->bytes_out);
  else
    lb_info ("export %s to %s: %s (%" PRIu64 " bytes read)",
             x->cl->conf->name, x->peer, how, x->bytes_out);
}

void
transmit_run (struct xconn *x)
{
  const char *name = x->cl->conf->name;
  uint8_t h[28];
  int r;

  for (;;) {
    uint16_t flags, type;
    uint64_t cookie, off;
    uint32_t len;
    bool in_range;

    if (export_recv (x, h, sizeof h) == -1) {
      transmit_log_end (x, "disconnected");
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
                                    || transmit_discard (x, len) == -1))
        return;
      r = transmit_error (x, cookie, NBD_EINVAL, "unsupported command flags");
    }
    else switch (type) {
    case NBD_CMD_READ:
      if (len == 0 || len > LBD_EXPORT_MAX_REQUEST || !in_range)
        r = transmit_error (x, cookie, NBD_EINVAL, len > LBD_EXPORT_MAX_REQUEST
                     ? "read larger than the maximum block size"
                     : "read outside the export");
      else
        r = transmit_read (x, cookie, off, len);
      break;
    case NBD_CMD_WRITE:
      if (len > LBD_EXPORT_MAX_REQUEST) {
        lb_warn ("export %s to %s: write of %" PRIu32 " bytes, more than "
                 "the maximum; closing", name, x->peer, len);
        return;
      }
      if (transmit_discard (x, len) == -1)
        return;
      transmit_refuse_write (x, "write");
      r = transmit_error (x, cookie, NBD_EPERM, "read-only export");
      break;
    case NBD_CMD_TRIM:
    case NBD_CMD_WRITE_ZEROES:
      transmit_refuse_write (x, type == NBD_CMD_TRIM ? "trim" : "write zeroes");
      r = transmit_error (x, cookie, NBD_EPERM, "read-only export");
      break;
    case NBD_CMD_FLUSH:
      r = transmit_simple (x, cookie, 0);
      break;
    case NBD_CMD_DISC:
      lb_info ("export %s to %s: closed by the client (%" PRIu64 " bytes "
               "read)", name, x->peer, x->bytes_out);
      return;
    case NBD_CMD_BLOCK_STATUS:
      if (!x->structured || !x->meta)
        r = transmit_error (x, cookie, NBD_EINVAL, "no metadata context selected");
      else if (len == 0 || !in_range)
        r = transmit_error (x, cookie, NBD_EINVAL, "block status outside the "
                     "export");
      else
        r = transmit_block_status (x, cookie, flags, off, len);
      break;
    default:
      r = transmit_error (x, cookie, NBD_EINVAL, "unsupported command");
      break;
    }
    if (r == -1) {
      transmit_log_end (x, "connection lost");
      return;
    }
  }
}
