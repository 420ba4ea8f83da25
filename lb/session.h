/* lb: one session with lbd on an attached channel.
 *
 * Connects, authenticates (lb_conn.h), says HELLO, decides from lbd's
 * WELCOME whether the image can continue where it stands or must be
 * scanned (lwf_decide), then follows the channel through the sink until
 * the connection breaks, the channel goes away or lb is told to stop.
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
  LB_SESSION_STOPPED,           /* stopped on *QUIT, after a goodbye */
  LB_SESSION_CHANNEL_GONE,      /* the filter went away: reattach */
};

/* One session with O's server on channel C, reading DEV_FD for scans
 * and copies, with SINK's struct for its state (it need not be
 * initialised), publishing to PUB.  Stops soon after *QUIT is set.
 */
extern enum lb_session_end lb_session_run (const struct lb_opts *o,
                                           struct lwc *c,
                                           const struct lb_key *key,
                                           int dev_fd, struct lb_sink *sink,
                                           struct lb_session_pub *pub,
                                           volatile sig_atomic_t *quit);

#endif /* LB_SESSION_H */
