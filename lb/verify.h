/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: the online verify (lb --verify UNIT).
 *
 * A verify pass compares the whole device with lbd's image by hashes,
 * in live mode, while writes go on, and repairs what differs.  It runs
 * in the data path, between records (lwf_sink.live), so that each of
 * its hash requests sits at a known place in the ordered stream:
 *
 *  1. First look: the device in chunks, as a scan compares (HASH_REQ at
 *     the session's hash block, the device read when HASHES come).  A
 *     hash block that differs is only a suspect: a write may have
 *     reached the device and not yet the image, or the reverse.
 *  2. Confirmation, per suspect range (at most LB_VERIFY_CONFIRM_MAX):
 *     note the channel's head seq S, read and hash the device in 4 KiB
 *     blocks, take a barrier B (every write begun before it is a record
 *     <= B), send HASH_REQ at 4 KiB once every record <= B has been
 *     sent.  A block that any record with seq > S (or any TRIM) touched
 *     before the decision is busy: tried again later, at most
 *     LB_VERIFY_TRIES times, then counted as skipped.  A block not busy
 *     that differs is a mismatch: its device content, as read, is what
 *     the image must hold at the point the decision is made, so it is
 *     sent there as a BLOCK, and a sync makes it durable.
 *
 * doc/protocol.md, "Online verify", gives the argument (why a block
 * written during the verify is never reported, and why a repair keeps
 * the image in order).  Writes never wait for it: it takes the
 * filter's barrier only for suspects.
 *
 * The control thread asks for a pass and reads its result
 * (lb_verify_request, lb_verify_report); the data path runs it.  The
 * one pass state lives here, for the life of lb.
 */

#ifndef LB_VERIFY_H
#define LB_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "lb_proto.h"
#include "lb_status.h"
#include "lw_consumer.h"
#include "lw_follow.h"

struct lb_sink;

/* A verify's hash requests in flight at most (first looks, and one
 * confirmation).
 */
#define LB_VERIFY_WINDOW      4
#define LB_VERIFY_REQS        (LB_VERIFY_WINDOW + 1)
#define LB_VERIFY_BLOCK       4096u         /* what a confirmation compares,
                                               reports and repairs */
#define LB_VERIFY_CONFIRM_MAX (1u << 20)   /* bytes per confirmation */
#define LB_VERIFY_TRIES       5            /* confirmations of a busy block */
#define LB_VERIFY_RANGES_MAX  4096         /* mismatching ranges listed */

/* The data path's side.  A session attaches its sink and channel when
 * it starts and detaches when it ends (WHY: what ended it; a pass under
 * way fails with it).
 */
extern void lb_verify_attach (struct lb_sink *s, struct lwc *c);
extern void lb_verify_detach (const char *why);
/* lbd's schedule for this session (WELCOME: lbd.conf's verify=): a
 * pass every EVERY seconds (0: none), the last one done at VERIFIED
 * (seconds since 1970; 0: never).  lb starts a pass itself once live
 * and due, and tells lbd of every pass done (VERIFIED), whoever asked
 * for it.
 */
extern void lb_verify_schedule (uint64_t every, uint64_t verified);

/* lwf_sink.live, with the sink as OPAQUE. */
extern enum lwf_live lb_verify_live (void *opaque);
/* The sink is about to send REC (in order, every record it sends). */
extern void lb_verify_record (const struct lwc_rec *rec);
/* The mirror left live mode: work in flight is done again once it is
 * live again.
 */
extern void lb_verify_left_live (void);
/* HASHES M answers a verify's request (lb_sink_verify_req): -1 if it
 * does not match that request.
 */
extern int lb_verify_answer (const struct lbp_msg *m);

/* The control thread's side.  What --verify exits with, and the
 * verdict of a report.
 */
enum lb_verify_verdict {
  LB_VERIFY_MATCHED = 0,        /* done: everything compared matched */
  LB_VERIFY_REPAIRED = 1,       /* done: mismatches found (repaired
                                   unless the report says otherwise) */
  LB_VERIFY_FAILED = 2,         /* refused, cut short, or unknown pass */
  LB_VERIFY_RUNNING = 3,        /* not done yet: ask again */
  LB_VERIFY_STALLED = 4,        /* not done, and the unit is not live now
                                   (control.c) */
};

/* Start a pass (or join the one asked for and not done).  LIVE: the
 * unit is live now (a pass is refused otherwise, with NOT_LIVE saying
 * what it is instead).  Fills DOC and returns its verdict: RUNNING with
 * the pass's number in "pass", or FAILED.
 */
extern enum lb_verify_verdict lb_verify_request (struct lb_status *doc,
                                                 bool live,
                                                 const char *not_live);
/* Pass PASS's state and result, into DOC; its verdict. */
extern enum lb_verify_verdict lb_verify_report (struct lb_status *doc,
                                                uint64_t pass);

/* While a pass runs, its number, how far it got and what it found so
 * far, as fields of G (lb --status).
 */
extern void lb_verify_status (struct lb_status *g);

#endif /* LB_VERIFY_H */
