/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: restores over NBD.
 *
 * An export line (lbd.conf(5)) makes lbd serve every client's image,
 * read-only, under the export name equal to the client's name, to
 * standard NBD clients (nbdcopy, nbdinfo, nbdfuse, qemu-img, nbd-client).
 * Each accepted connection gets its own thread: the fixed newstyle
 * negotiation (bounded by LBD_HANDSHAKE_MS), then the transmission phase.
 *
 * With tls=psk (the default) TLS is mandatory ("FORCEDTLS"): every option
 * but NBD_OPT_STARTTLS and NBD_OPT_ABORT is refused with
 * NBD_REP_ERR_TLS_REQD until the TLS handshake, which is TLS 1.3 with a
 * pre-shared key and (EC)DHE, done by the same code as lb's connections
 * (common/lb_conn.c): PSK identity = a client's name, PSK = that client's
 * key.  The connection may then list and open that client's export and
 * no other.  An unknown identity fails exactly as a wrong key does.
 * With tls=off (loopback only) every export is listed and may be opened.
 *
 * What an export serves never changes under the reader: a snapshot of
 * the image (snapshot.h), taken when the export is opened while the
 * image is consistent, or the image's last consistent state while it is
 * not; if there is none, NBD_OPT_GO is refused with NBD_REP_ERR_POLICY
 * and a message saying why.
 *
 * Commands: READ (structured replies when negotiated, with holes sent as
 * OFFSET_HOLE), BLOCK_STATUS for base:allocation (holes from SEEK_HOLE
 * and SEEK_DATA in the image and the snapshot's overlay), FLUSH (nothing
 * to do) and DISC.  WRITE, TRIM and WRITE_ZEROES are refused with EPERM
 * (the export is read-only and says so); anything else with EINVAL.
 * Every offset and length is checked against the export's size.
 */

#ifndef LBD_EXPORT_H
#define LBD_EXPORT_H

#include <stddef.h>

#include "client.h"
#include "connset.h"
#include "listener.h"
#include "session.h"          /* LBD_HANDSHAKE_MS, LBD_MAX_HANDSHAKING */

/* At most this many export connections at once (all exports), and at
 * most LBD_MAX_HANDSHAKING of them in their negotiation.
 */
#define LBD_EXPORT_MAX_CONNS 64
/* The largest READ (and WRITE payload lbd reads only to refuse it). */
#define LBD_EXPORT_MAX_REQUEST (32 * 1024 * 1024)

/* Serve the accepted connection FD from PEER on EL in a thread of its
 * own; returns at once.  Closes FD when refused at once (too many).
 */
extern void export_start (struct export_listener *el, int fd,
                          const char *peer);

/* End the export connections on EL (NULL: on any) that serve client
 * CL (NULL: any, and those that serve none yet) for WHY, at once (a
 * restore reading one ends there); the others run on.  A connection
 * serves a client from its TLS handshake (the identity's), or with
 * tls=off from the option that names it (the last one named, until
 * NBD_OPT_GO).  Does not wait.
 */
extern void export_end (const struct export_listener *el,
                        const struct client *cl, enum connset_why why);

/* Wait until the connections export_end ended are gone. */
extern void export_wait (const struct export_listener *el,
                         const struct client *cl);

/* Refuse new export connections, end every one and wait for its
 * thread.
 */
extern void export_shutdown_all (void);

#endif
