/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: the lb <-> lbd wire protocol.
 *
 * The one definition of the messages both programs exchange after the
 * transport's handshake (lb_conn.h: TLS 1.3 PSK, or plain mode with a
 * challenge-response).  doc/protocol.md describes it for humans; this
 * header and lb_proto.c are what both sides compile.
 *
 * Framing: every message is a 8-byte header, then BODY_LEN bytes:
 *
 *   u16 type | u16 flags (0) | u32 body_len     (little-endian)
 *
 * The body is the type's fixed part (little-endian integers, sizes in
 * lbp_fixed_size) followed, for a few types, by a payload.  The receiver
 * checks body_len against the type's limits before reading the body, so a
 * peer can never make it allocate or read more than LBP_MAX_BODY.
 */

#ifndef LIVEBACKUP_LB_PROTO_H
#define LIVEBACKUP_LB_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lb_bytes.h"   /* lb_put_le32 and friends: the wire is little-endian */

#define LBP_VERSION       4   /* 2: SYNC and WELCOME carry gen and swept;
                               * 3: HELLO carries the partition identity;
                               * 4: keyed XXH3-128 scan hashes, WELCOME
                               * carries their seed and the verify
                               * schedule; MARK, MARKED, VERIFIED */
#define LBP_MAGIC         UINT32_C(0x3150424c)  /* "LBP1" */
#define LBP_HDR_SIZE      8
#define LBP_MAX_DATA      (64u << 20)           /* one write or block */
#define LBP_HASH_SIZE     16                    /* XXH3-128 (lb_hash.h) */
#define LBP_HASH_SEED_SIZE 32                   /* WELCOME's payload */
#define LBP_MAX_HASHES    4096                  /* per HASHES reply */
#define LBP_MAX_TEXT      1024                  /* ERROR message */
#define LBP_MAX_BODY      (LBP_MAX_DATA + 64)

enum lbp_type {
  /* lb -> lbd */
  LBP_HELLO    = 1,  /* u32 magic, u32 version, u64 epoch, u64 dev_size,
                      * u32 hash_block, u32 reserved; from version 3:
                      * u64 partition (never 0) */
  LBP_WRITE    = 2,  /* u64 seq, u64 offset, u32 length, u32 enc; payload */
  LBP_ZERO     = 3,  /* u64 seq, u64 offset, u64 length */
  LBP_BLOCK    = 4,  /* u64 offset, u32 length, u32 enc; payload */
  LBP_SYNC     = 5,  /* u64 id, u64 seq, u32 phase, u32 backlog, u64 gen,
                      * u64 swept */
  LBP_HASH_REQ = 6,  /* u64 id, u64 offset, u32 length, u32 hash_block */
  LBP_BYE      = 7,  /* empty */
  LBP_MARK     = 8,  /* u64 id, u64 seq; payload: the label (1 to
                      * LW_MARK_LABEL_MAX - 1 bytes, lw_mark_label_ok) */
  LBP_VERIFIED = 9,  /* u64 pass, u64 compared, u64 mismatched, u64
                      * repaired (blocks of 4 KiB); no answer */
  /* lbd -> lb */
  LBP_WELCOME  = 64, /* u32 version, u32 phase, u64 epoch, u64 seq,
                      * u64 image_size, u64 last_consistent, u64 gen,
                      * u64 swept, u64 verify_every, u64 verified;
                      * LBP_HASH_SEED_SIZE bytes: the seed of the
                      * session's hash key (lb_hash.h) */
  LBP_SYNCED   = 65, /* u64 id, u64 seq */
  LBP_HASHES   = 66, /* u64 id, u64 offset, u32 count, u32 hash_block;
                      * count * LBP_HASH_SIZE bytes, each the keyed hash
                      * of one hash_block of the image (the last one
                      * clipped to the request and the image) */
  LBP_ERROR    = 67, /* u32 code, u32 reserved; text (not NUL-terminated) */
  LBP_MARKED   = 68, /* u64 id, u64 seq, u32 result, u32 reserved; text:
                      * the point's name, or why none was taken */
};

/* What lbd did with a MARK (MARKED's result). */
enum lbp_mark_result {
  LBP_MARK_TAKEN    = 0,  /* a restore point of that moment exists now */
  LBP_MARK_NOT_LIVE = 1,  /* the image was not consistent there (a scan,
                           * a catch-up, a replay): no point */
  LBP_MARK_FAILED   = 2,  /* the point could not be taken (text: why) */
  LBP_MARK_PAST     = 3,  /* the image is durable past it already: the
                           * mark came again after a lost connection,
                           * and its point, if any, was taken then */
};

/* An image's gen names the last SYNC that made block copies durable in
 * it (the consumer's copy generation, lw_shm.h).  An image whose state
 * predates gens, or lost it, reports LBP_GEN_NONE, which matches nothing.
 */
#define LBP_GEN_NONE      UINT64_MAX

/* SYNC's backlog: how much lb still has to bring to the image (bytes
 * marked on the client, and in a scan those not yet compared), for
 * lbd's status: 0 if not said (lb before this field), else 1 + the
 * bytes in 64 KiB units rounded up, at most UINT32_MAX (256 TiB).
 */
#define LBP_BACKLOG_UNIT  (64u << 10)
static inline uint32_t
lbp_backlog_encode (uint64_t bytes)
{
  uint64_t units = bytes / LBP_BACKLOG_UNIT + (bytes % LBP_BACKLOG_UNIT != 0);
  return units >= UINT32_MAX - 1 ? UINT32_MAX : (uint32_t) units + 1;
}
/* The bytes BACKLOG says (a multiple of the unit), or -1: not said. */
static inline int64_t
lbp_backlog_decode (uint32_t backlog)
{
  return backlog == 0 ? -1 : (int64_t) (backlog - 1) * LBP_BACKLOG_UNIT;
}

/* How a WRITE or BLOCK payload is encoded. */
enum lbp_enc {
  LBP_ENC_RAW  = 0,  /* payload = length bytes */
  LBP_ENC_ZERO = 1,  /* no payload: length bytes of zeroes */
  LBP_ENC_ZSTD = 2,  /* payload = zstd frame of length bytes */
};

/* The image's phase, as lb reports it in SYNC and lbd stores it. */
enum lbp_phase {
  LBP_PHASE_SCANNING   = 0,
  LBP_PHASE_CATCHING_UP = 1,
  LBP_PHASE_LIVE       = 2,   /* consistent once synced */
};

enum lbp_error {
  LBP_ERR_PROTOCOL = 1,   /* malformed or unexpected message */
  LBP_ERR_VERSION  = 2,
  LBP_ERR_RANGE    = 3,   /* offset/length outside the image */
  LBP_ERR_IO       = 4,   /* the server could not read or write its image */
  LBP_ERR_REPLACED = 5,   /* a newer connection for this client took over */
  LBP_ERR_SHUTDOWN = 6,
  /* Refusals of a HELLO that only the operator can lift (lbd --rebind):
   * lb stops (exit status 2) instead of retrying.
   */
  LBP_ERR_PARTITION = 7,  /* the image is bound to another partition */
  LBP_ERR_SMALLER  = 8,   /* the partition is smaller than the image */
};

/* HELLO's body: LBP_HELLO_V2_SIZE bytes in versions 1 and 2 (so that a
 * server can tell an old client which version it speaks), then the
 * partition identity.
 */
#define LBP_HELLO_V2_SIZE 32
#define LBP_HELLO_SIZE    40

/* A decoded message.  Fields are those of its type; PAYLOAD points into
 * the receive buffer.
 */
struct lbp_msg {
  uint16_t type;
  uint32_t magic, version, hash_block, phase, enc, count, code, backlog;
  uint64_t epoch, dev_size, seq, offset, length, id;
  uint64_t image_size, last_consistent, gen, swept;
  uint64_t partition;           /* HELLO, version 3 on */
  uint64_t verify_every, verified; /* WELCOME: the verify schedule */
  uint64_t pass, compared, mismatched, repaired; /* VERIFIED */
  const uint8_t *payload;
  size_t payload_len;
};

/* Size of TYPE's fixed part; -1 if TYPE is unknown. */
extern int lbp_fixed_size (uint16_t type);

/* Check a received header: a known type and a body length within that
 * type's limits.  Returns NULL or a static reason.
 */
extern const char *lbp_check_header (const uint8_t hdr[LBP_HDR_SIZE],
                                     uint16_t *type, uint32_t *body_len);

/* Decode BODY (BODY_LEN bytes, header already checked) into M, checking
 * every field's own limits (an encoded length against the payload, a
 * hash count against the body).  Returns NULL or a static reason.
 */
extern const char *lbp_decode (uint16_t type, const uint8_t *body,
                               uint32_t body_len, struct lbp_msg *m);

/* Encode M's header and fixed part into OUT (at least LBP_HDR_SIZE + 56
 * bytes; a HELLO of version 3 or later with its partition), for a
 * payload of PAYLOAD_LEN bytes sent after it.  Returns the bytes
 * written.
 */
extern size_t lbp_encode (const struct lbp_msg *m, size_t payload_len,
                          uint8_t *out);

extern const char *lbp_type_name (uint16_t type);
/* GEN for a log line: its number in BUF, or "none". */
extern const char *lbp_gen_name (uint64_t gen, char buf[24]);
extern const char *lbp_phase_name (uint32_t phase);

#endif /* LIVEBACKUP_LB_PROTO_H */
