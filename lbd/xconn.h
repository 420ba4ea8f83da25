/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: one export connection, shared by the files that serve it.
 *
 * export.c accepts the connection and runs its thread (the connection
 * set, connset.h), negotiate.c carries out the fixed newstyle
 * negotiation up to NBD_OPT_GO, transmit.c the transmission phase.
 * They speak through one lb_conn (common/lb_conn.h): raw until
 * NBD_OPT_STARTTLS upgrades it in place.  export.h says what is served
 * and how; this header is private to those three files.
 */

#ifndef LBD_XCONN_H
#define LBD_XCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "connset.h"
#include "export.h"
#include "history.h"
#include "lb_conn.h"
#include "snapshot.h"

/* The longest option we read (a name is at most 4096 bytes in NBD). */
#define X_OPT_MAX 65536
/* Options per connection: enough for nbdinfo --list, and a bound. */
#define X_OPT_COUNT 256
/* Extents per BLOCK_STATUS reply. */
#define X_EXTENTS 1024
/* The longest POINT in an export name NAME@POINT. */
#define X_POINT_MAX (POINTS_LABEL_MAX - 1)
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
  char meta_export[LB_CONFIG_NAME_MAX + 1 + X_POINT_MAX + 1];
  uint8_t *opt;                 /* option data, X_OPT_MAX + 1 */

  /* Transmission. */
  struct client *cl;
  struct snapshot *snap;        /* the live export's, or NULL */
  struct hist_point *pt;        /* NAME@POINT's restore point, or NULL */
  int ifd;                      /* the image, read-only */
  uint64_t size;
  time_t since;                 /* 0: the live image; else its last
                                   consistent state, of then */
  uint8_t *buf;                 /* SNAP_READ_PIECE */
  uint64_t bytes_out;
  bool warned_write;
  bool warned_tls, warned_unknown;    /* log such refusals once */
};

/* Milliseconds left in the negotiation (at least 1; -1 after it). */
extern int export_left (const struct xconn *x);

/* Receive exactly LEN bytes; send LEN bytes, or IOV's N pieces; within
 * the negotiation's deadline while it runs.  0, or -1 (errno;
 * ECONNRESET at the end of the stream).
 */
extern int export_recv (struct xconn *x, void *buf, size_t len);
extern int export_send (struct xconn *x, const void *buf, size_t len);
extern int export_sendv (struct xconn *x, struct iovec *iov, int n);

/* Count a refusal of CL's export, for status. */
extern void export_refused (void *client);

/* negotiate.c: the option haggling.  0: go on to the transmission
 * (X->cl, X->snap and X->ifd are set), -1: close.
 */
extern int negotiate_run (struct xconn *x);

/* transmit.c: open CL's export for the transmission phase, the image
 * and the snapshot to read; 0, or -1 with why in WHY (the refusal is
 * logged and counted).  Then serve commands until the client leaves.
 */
extern int transmit_open (struct xconn *x, struct client *cl, char *why,
                          size_t whylen);
/* The same for CL's restore point named by the PLEN bytes at POINT. */
extern int transmit_open_point (struct xconn *x, struct client *cl,
                                const uint8_t *point, size_t plen,
                                char *why, size_t whylen);
extern void transmit_run (struct xconn *x);

#endif /* LBD_XCONN_H */
