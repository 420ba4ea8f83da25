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

/* Receive one message into M, its body kept in *BUF (grown as needed,
 * never beyond LBP_MAX_BODY).  TIMEOUT_MS < 0 waits forever.
 * Returns 1, 0 at an orderly end, -1 on a connection error or timeout,
 * -2 on a protocol violation; *WHY says which (static text).
 */
extern int lbw_recv (struct lb_conn *c, struct lbp_msg *m, uint8_t **buf,
                     size_t *cap, int timeout_ms, const char **why);

#endif
