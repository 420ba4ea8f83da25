/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: sending and receiving protocol messages on a connection.
 * The framing and checks are lb_proto's; this adds the I/O, shared by
 * lb and lbd.
 */

#ifndef LIVEBACKUP_LB_WIRE_H
#define LIVEBACKUP_LB_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "lb_conn.h"
#include "lb_proto.h"

/* Send M with PAYLOAD_LEN bytes of PAYLOAD after its fixed part.
 * Returns 0 or -1 (connection failed).
 */
extern int lbw_send (struct lb_conn *c, const struct lbp_msg *m,
                     const void *payload, size_t payload_len);

/* Send an ERROR message with CODE and TEXT (best effort). */
extern void lbw_send_error (struct lb_conn *c, uint32_t code,
                            const char *text);

/* What lbw_recv found. */
enum lbw_recv_outcome {
  LBW_RECV_MSG,         /* a message, in M */
  LBW_RECV_END,         /* an orderly end of the connection, between
                         * messages */
  LBW_RECV_BROKEN,      /* a connection error, a cut message, or the
                         * timeout */
  LBW_RECV_BAD,         /* a protocol violation (a bad header or body) */
};

/* Receive one message into M, its body kept in *BUF (grown as needed,
 * never beyond LBP_MAX_BODY).  TIMEOUT_MS < 0 waits forever.  *WHY says
 * what went wrong for LBW_RECV_BROKEN and LBW_RECV_BAD (static text).
 */
extern enum lbw_recv_outcome lbw_recv (struct lb_conn *c, struct lbp_msg *m, uint8_t **buf,
                     size_t *cap, int timeout_ms, const char **why);

#endif
