/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: compression of data payloads for the wire (lb --compress).
 *
 * Every WRITE and BLOCK payload that is not all zeroes (those travel as
 * a length alone, sink.c) passes through lb_compress_payload, which
 * says whether to send it zstd-compressed (LBP_ENC_ZSTD) or raw.
 *
 *   --compress=N (1 to 19): every piece of at least 4 KiB at level N,
 *     kept only if it saves at least a sixteenth.
 *   --compress=0 (off): never.
 *   --compress=auto (the default): a probe and a rule.
 *
 * The probe: the first 16 KiB of a piece compressed at level 1; if that
 * does not save a tenth (random, encrypted or already compressed data)
 * the piece goes raw, having cost a few microseconds.  After 8 such
 * pieces in a row, so do the next 64 KiB of payload without a probe;
 * each probe that fails again doubles that, up to 1 MiB, and one that
 * pays ends it (random data costs one probe a megabyte; text that
 * follows it is found within a megabyte).  The probe also
 * measures level 1's speed and ratio on the data at hand.
 *
 * The rule (doc/lb.8, "COMPRESSION"): lb sends at most at
 *     raw:      L              (the link's speed, wire bytes per second)
 *     level k:  min (C_k, L / r_k)   (C_k: level k's speed in input
 *                               bytes per second, r_k its ratio)
 * input bytes per second, since the kernel sends while lb compresses.
 * Auto takes the strongest level of 1, 3, 6, 9 whose figure is within
 * 10 % of the best, raw if raw is best: fewer bytes when the link is
 * the bottleneck, and no CPU when it is not (a link faster than level 1
 * compresses gets raw data).  L is measured from lb's own sends: over
 * each window of at least 250 ms with 1 MiB sent, if the socket's send
 * queue (SIOCOUTQ: sent by lb, not yet acknowledged) still held 64 KiB
 * when lb came to send again, or lb waited on the connection (blocked
 * sending, or for lbd's answer to a SYNC) a quarter of the time, the
 * link was the bottleneck and L is what left the queue (waiting for
 * answers also counts lbd's fdatasyncs: a slow server disk may pass
 * for a slow link; the rule then still asks compression to be faster
 * than what went through);
 * otherwise the link is faster than it was asked to be, also when lb
 * spent the window compressing (the estimate grows by a quarter per
 * window, and doubles when lb spent half of it compressing, so that a
 * link that became faster is found, and lb stops compressing for a
 * link that is no bottleneck).  Before any such window L
 * is unknown and pieces go raw.  C_k and r_k are running averages of
 * what each level did, estimated from level 1's until a level is used.
 */

#ifndef LB_COMPRESS_H
#define LB_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#define LB_COMPRESS_AUTO   (-1)
#define LB_COMPRESS_OFF    0
#define LB_COMPRESS_LEVELS 4          /* auto's ladder: 1, 3, 6, 9 */

struct lb_compress {
  int mode;                     /* LB_COMPRESS_AUTO, _OFF or a level */
  int fd;                       /* the connection's socket; -1: none */
  void *cctx;
  uint8_t *buf;                 /* the last compressed payload */
  size_t cap;
  /* Auto. */
  int rung;                     /* ladder index in use; -1: raw */
  double link;                  /* L, wire bytes/s; 0: not known */
  double speed[LB_COMPRESS_LEVELS], ratio[LB_COMPRESS_LEVELS];
  uint64_t win_start_ns, win_bytes, win_blocked_ns, win_comp_ns;
  uint64_t win_queued;          /* FD's send queue when the window began */
  unsigned failed_run;          /* probes in a row that did not pay
                                 * (counted up to where the backoff
                                 * stops doubling) */
  uint64_t skip_left;           /* payload bytes still to send unprobed */
  uint64_t probes, skipped, unprobed; /* for the log at the session's end */
  uint64_t in_bytes, out_bytes;
};

/* Parse --compress's value: "auto", "off", or a level 0 to 19.
 * Returns 0 and sets *MODE, or -1.
 */
extern int lb_compress_parse (const char *s, int *mode);
/* The mode as written in logs and --status: "auto", "off", "3". */
extern const char *lb_compress_name (int mode, char buf[8]);

/* FD: the connection's socket, whose send queue says whether the link
 * is behind (-1: not known, only blocked sends say so).
 */
extern int lb_compress_init (struct lb_compress *z, int mode, int fd);
extern void lb_compress_free (struct lb_compress *z);

/* Compress DATA (LEN bytes) for the wire if that pays, as above:
 * returns the compressed length (the payload is z->buf), or 0 to send
 * DATA raw.
 */
extern size_t lb_compress_payload (struct lb_compress *z, const void *data,
                                   size_t len);

/* Tell auto that a message is about to be sent (it may look at the
 * send queue), then what the send cost: WIRE bytes in NS nanoseconds
 * of the call (blocked on the link, or encrypting); and, with WIRE 0,
 * how long lb waited for an answer.
 */
extern void lb_compress_sending (struct lb_compress *z);
extern void lb_compress_sent (struct lb_compress *z, uint64_t wire,
                              uint64_t ns);

/* The level auto uses now (0: raw); the fixed level otherwise. */
extern int lb_compress_level (const struct lb_compress *z);

#endif /* LB_COMPRESS_H */
