/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: sessions, lb's replication connections.
 *
 * A client (client.h) is one config line: its image, its key, its
 * status.  A session is one authenticated connection serving a client,
 * run by its own thread, so that one client's slowness never stalls
 * another.  A newer session for a client replaces the older one: it
 * shuts the old connection down and waits for the old thread to let go
 * of the image, so two sessions never write one image at once.  When
 * lbd itself ends a session (a reload, SIGTERM), the session says
 * goodbye instead (session_end).
 */

#ifndef LBD_SESSION_H
#define LBD_SESSION_H

#include "client.h"
#include "connset.h"
#include "listener.h"

/* Serve one accepted connection FD from PEER on listener L: handshake
 * (bounded by LBD_HANDSHAKE_MS), then the session, in a thread of its
 * own (connset.h); returns at once.  Refused at once (logged, FD
 * closed) while LBD_MAX_HANDSHAKING sessions are in their handshake.
 */
extern void session_start (struct listener *l, int fd, const char *peer);

/* Ask the sessions on listener L (NULL: on any) serving client CL
 * (NULL: any, and those still in their handshake) to end for WHY; the
 * others run on.  A session past its handshake ends at its next
 * message boundary: it makes the image durable and its state file say
 * where the image stands (never consistent when it is not), tells lb
 * why (an ERROR of code LBP_ERR_SHUTDOWN, which lb takes as "retry
 * later"), and goes.  Does not wait.
 */
extern void session_end (const struct listener *l, const struct client *cl,
                         enum connset_why why);

/* Wait until the sessions session_end asked to end are gone (those
 * still there after CONNSET_GRACE_MS are cut short).
 */
extern void session_wait (const struct listener *l, const struct client *cl);

/* SIGTERM: refuse new sessions, end every one as session_end does, and
 * wait for them.
 */
extern void session_shutdown_all (void);

#define LBD_HANDSHAKE_MS     10000
/* Per kind of connection (sessions, exports): at most this many in
 * their handshake at once.
 */
#define LBD_MAX_HANDSHAKING  64

#endif
