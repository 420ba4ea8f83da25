/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: the sink's own primitives, shared by its files (sink.c, scan.c)
 * and by nothing else: every message to lbd and every reply expected
 * goes through these, so the FIFO of expected replies (sink.h) stays in
 * the order of the requests.
 */

#ifndef LB_SINK_INT_H
#define LB_SINK_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lb_proto.h"
#include "lw_follow.h"

struct lb_sink;

/* Fail the session, remembering "PREFIXDETAIL" as the reason (the
 * first reason is kept).  Returns -1, errno EPIPE.
 */
extern int lb_sink_fail (struct lb_sink *s, const char *prefix,
                         const char *detail);
/* Send M with PAYLOAD, under the rate limit, measured for
 * --compress=auto.  0, or -1 if the session failed.
 */
extern int lb_sink_send (struct lb_sink *s, const struct lbp_msg *m,
                         const void *payload, size_t len);
/* Expect the reply of TYPE to request ID (a SYNC's: AT and PHASE) after
 * every reply already expected.
 */
extern void lb_sink_expect (struct lb_sink *s, uint16_t type, uint64_t id,
                            const struct lwf_mark *at, uint32_t phase,
                            bool pipelined);
/* Read the oldest expected reply into M and check that it answers its
 * request.  0, or -1 if the session failed.
 */
extern int lb_sink_take (struct lb_sink *s, struct lbp_msg *m);
/* Read every passive reply (SYNCED, MARKED, a verify's HASHES) expected
 * before the oldest one a caller waits for.  0, or -1.
 */
extern int lb_sink_take_synced (struct lb_sink *s);
/* A device read of LEN bytes at OFF ended as R (0, or -1 with errno):
 * counted in lb_sink_device_bytes (0), or the session failed (-1).
 */
extern int lb_sink_read_done (struct lb_sink *s, int r, uint64_t off,
                              uint64_t len);
/* Copy [OFF, OFF+LEN) of the device as BLOCKs, in messages sized for the
 * rate limit.  0, or -1.
 */
extern int lb_sink_copy_blocks (struct lb_sink *s, uint64_t off,
                                uint64_t len);

#endif
