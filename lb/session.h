/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: one session with lbd on an attached channel.
 *
 * Connects, authenticates (lb_conn.h), says HELLO, decides from lbd's
 * WELCOME whether the image can continue where it stands or must be
 * scanned (lwf_decide), then follows the channel through the sink until
 * the connection breaks, the channel goes away, lbd ends the session
 * or lb is told to stop.  Stopping, lb finishes the message in flight,
 * says BYE and reads until lbd closes, so that lbd sees a goodbye,
 * never a message cut short.
 */

#ifndef LB_SESSION_H
#define LB_SESSION_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "lb.h"
#include "lb_key.h"
#include "lw_consumer.h"
#include "progress.h"
#include "sink.h"

/* What the session shows lb's status: written by the session, read by
 * the status thread.  SINK's counters are atomics, and the struct it
 * points to outlives every session (only its buffers come and go);
 * PROGRESS outlives them too (a cut scan is still to be finished).
 */
struct lb_session_pub {
  _Atomic bool connected;
  _Atomic uint64_t since;       /* when the last connection was made */
  struct lb_sink *_Atomic sink; /* NULL while not connected */
  struct lb_progress progress;  /* the data path's heartbeat and pass */
};

/* How a session ended. */
enum lb_session_end {
  LB_SESSION_FAILED,            /* no session, or it broke: retry later */
  LB_SESSION_SERVER_ENDED,      /* lbd ended it on purpose (shutting down,
                                   reloaded): retry later */
  LB_SESSION_STOPPED,           /* stopped on *QUIT, after a goodbye */
  LB_SESSION_CHANNEL_GONE,      /* the filter went away: reattach */
  LB_SESSION_REFUSED,           /* lbd refused this partition (another
                                   one's image, or smaller): a permanent
                                   misconfiguration, logged */
};

/* One session with O's server on channel C, reading DEV_FD for scans
 * and copies, with SINK's struct for its state (it need not be
 * initialised), publishing to PUB, connecting with *KEY.  Stops soon
 * after *QUIT is set.  While it runs, a set *HUP is cleared and O's key
 * file read again into *KEY (lb_session_reload_key), for the next
 * connection.
 */
extern enum lb_session_end lb_session_run (const struct lb_opts *o,
                                           struct lwc *c,
                                           struct lb_key *key,
                                           int dev_fd, struct lb_sink *sink,
                                           struct lb_session_pub *pub,
                                           volatile sig_atomic_t *quit,
                                           volatile sig_atomic_t *hup);

/* SIGHUP: read O's key file again into *KEY.  A file that cannot be
 * loaded is logged, and *KEY stays as it was.
 */
extern void lb_session_reload_key (const struct lb_opts *o,
                                   struct lb_key *key);

#endif /* LB_SESSION_H */
