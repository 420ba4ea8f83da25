/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: the network sink behind lw_follow.
 *
 * Turns what the consumer protocol hands over (records, block copies,
 * syncs, phase changes) into messages to lbd on one connection.  Replies
 * come back in request order (lbd serves one connection sequentially), so
 * no reader thread is needed: the sink keeps a FIFO of the replies it
 * expects (what each answers) and reads one when it needs it, or, for
 * pipelined syncs, when the connection has one to read between two
 * records (lwf_sink.sync_reap).  Scans are pipelined: up to
 * LB_SCAN_WINDOW hash requests are in flight while lb hashes its own
 * copy of each, every other one on the hasher's thread (hasher.h);
 * record syncs too, up to LWF_MAX_INFLIGHT.
 *
 * A scan's sweep compares in two levels (scan.h, scan.c).  A sync
 * drains the scan's window, both levels, before it is sent: swept never
 * covers a region still being compared.  The hashes are keyed per
 * session (hkey, common/lb_hash.h): to hash a device range as the scan
 * does, call lb_hash_range (&sink->hkey, sink->dev_fd, ...).
 */

#ifndef LB_SINK_H
#define LB_SINK_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "lb_conn.h"
#include "lb_hash.h"
#include "lb_proto.h"
#include "lb_rate.h"
#include "lw_consumer.h"
#include "lw_follow.h"
#include "progress.h"
#include "compress.h"
#include "hasher.h"
#include "verify.h"

#define LB_SCAN_WINDOW 16
/* Replies in flight at most: hashes (a scan's or a verify's),
 * pipelined syncs, and one sync that waits; a mark's MARKED before each
 * pipelined sync (a MARK record is a sync point of its own).
 */
#define LB_EXPECT_MAX  (LB_SCAN_WINDOW + LB_VERIFY_REQS \
                        + 2 * LWF_MAX_INFLIGHT + 1)
#define LB_CHUNK       (4u << 20)   /* largest BLOCK sent */
#define LB_SCAN_REGION LB_CHUNK     /* a scan's first level: one hash */

/* What a scan's hash request asks. */
enum lb_scan_kind {
  LB_SCAN_TOP,                      /* a region's one hash */
  LB_SCAN_SECOND,                   /* its blocks', after TOP differed */
  LB_SCAN_BLOCKS,                   /* the blocks' at once */
};

/* A scan's hash request in flight. */
struct lb_scan_req {
  uint64_t id, off, len;
  uint32_t hash_block;
  enum lb_scan_kind kind;
  uint8_t mine[LBP_HASH_SIZE];      /* TOP: the device's */
  bool pending;                     /* MINE still being hashed by JOB */
  struct lb_hasher_job job;
};

/* A reply the sink waits for: what it answers. */
struct lb_sink_expect {
  uint16_t type;                    /* LBP_SYNCED, LBP_HASHES, LBP_MARKED */
  bool pipelined;                   /* a sync_send's: counted in synced */
  bool verify;                      /* HASHES for lb_verify_answer */
  uint64_t id;
  struct lwf_mark at;               /* a SYNC's; a MARK's seq */
  uint32_t phase;
};

struct lb_sink {
  struct lb_conn *conn;
  int dev_fd;
  uint64_t dev_size;
  uint32_t hash_block;
  int compress;                     /* lb --compress (compress.h) */
  uint64_t max_rate;                /* lb --max-rate, bytes/s; 0: none */
  volatile sig_atomic_t *quit;
  const struct lwc *c;              /* for the count of marked blocks */
  struct lb_progress *progress;     /* where the data path stands */

  /* State. */
  bool failed;
  char why[256];
  uint32_t error_code;              /* of the server's ERROR; 0: none */
  uint32_t phase;
  bool phased;                      /* a phase change came this session */
  uint64_t marked, counted_ms;      /* bytes marked, when last counted */
  uint64_t next_id;
  struct lb_hash_key hkey;          /* the session's (WELCOME's seed) */
  struct lb_scan_req scan[LB_SCAN_WINDOW];
  bool scan_fine;                   /* a reply differed: the next region
                                     * asked, block by block */
  unsigned scan_head, scan_n;
  /* The replies expected, in the order of their requests.  A pipelined
   * sync is never sent behind a scan's hash request still unanswered,
   * so while one is outstanding the oldest expected reply is a SYNCED,
   * a MARKED, or a verify's HASHES, which the sink hands to
   * lb_verify_answer whenever it reads one (lb/verify.h): all are
   * "passive" replies, read wherever they come to the head.
   */
  struct lb_sink_expect expect[LB_EXPECT_MAX];
  unsigned ex_head, ex_n;
  unsigned synced;                  /* pipelined syncs done, not reaped */

  /* Buffers. */
  uint8_t *buf, *rbuf, *hashes;
  size_t rcap;
  struct lb_compress z;
  struct lb_rate rate;
  struct lb_hasher hasher;          /* takes every other region's hash */

  /* Counters, read by the status thread. */
  _Atomic uint64_t bytes_sent, bytes_scanned, bytes_same;
  _Atomic uint32_t pub_phase;
  _Atomic int pub_deferring;    /* waiting for a burst to end */
  _Atomic uint64_t last_consistent;
};

/* Bytes read from DEVICE by this process, every session counted: logged
 * at the end of each scan or catch-up pass and at exit (tests check it
 * against /proc/PID/io).
 */
extern _Atomic uint64_t lb_sink_device_bytes;

extern int lb_sink_init (struct lb_sink *s);
extern void lb_sink_free (struct lb_sink *s);
/* Bind the sink's callbacks to S. */
extern void lb_sink_ops (struct lb_sink *s, struct lwf_sink *ops);

/* For the online verify (lb/verify.c), in the data path: */
/* Read LEN bytes of the device at OFF into BUF (counted in
 * lb_sink_device_bytes); -1 fails the session.
 */
extern int lb_sink_read_device (struct lb_sink *s, void *buf, uint64_t off,
                                uint64_t len);
/* Send DATA as BLOCKs at OFF, in the stream's current place. */
extern int lb_sink_send_block (struct lb_sink *s, uint64_t off,
                               const void *data, uint32_t len);
/* Send a HASH_REQ for [OFF, OFF+LEN) at hash block HB whose HASHES the
 * sink hands to lb_verify_answer when it reads them.  Returns its id,
 * or 0 if the session failed.
 */
extern uint64_t lb_sink_verify_req (struct lb_sink *s, uint64_t off,
                                    uint32_t len, uint32_t hb);
/* Read the passive replies (SYNCED, MARKED, a verify's HASHES) that
 * have come, waiting up to TIMEOUT_MS for the first one; -1 if the
 * session failed.
 */
extern int lb_sink_poll (struct lb_sink *s, int timeout_ms);

/* Send M, a message lbd does not answer (VERIFIED).  0, or -1 if the
 * session failed.
 */
extern int lb_sink_tell (struct lb_sink *s, const struct lbp_msg *m);

#endif
