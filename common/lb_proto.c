/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: the lb <-> lbd wire protocol.  See lb_proto.h. */

#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lb_proto.h"
#include "lw_shm.h"          /* the mark label's rule */

int
lbp_fixed_size (uint16_t type)
{
  switch (type) {
  case LBP_HELLO:    return LBP_HELLO_V2_SIZE;
  case LBP_WRITE:    return 24;
  case LBP_ZERO:     return 24;
  case LBP_BLOCK:    return 16;
  case LBP_SYNC:     return 40;
  case LBP_HASH_REQ: return 24;
  case LBP_BYE:      return 0;
  case LBP_MARK:     return 16;
  case LBP_VERIFIED: return 32;
  case LBP_WELCOME:  return 72;
  case LBP_SYNCED:   return 16;
  case LBP_HASHES:   return 24;
  case LBP_ERROR:    return 8;
  case LBP_MARKED:   return 24;
  }
  return -1;
}

/* The largest body TYPE may carry. */
static uint32_t
lbp_max_body (uint16_t type)
{
  int fixed = lbp_fixed_size (type);

  switch (type) {
  case LBP_WRITE:
  case LBP_BLOCK:
    return fixed + LBP_MAX_DATA;
  case LBP_HASHES:
    return fixed + LBP_MAX_HASHES * LBP_HASH_SIZE;
  case LBP_ERROR:
  case LBP_MARKED:
    return fixed + LBP_MAX_TEXT;
  case LBP_MARK:
    return fixed + LW_MARK_LABEL_MAX - 1;
  case LBP_HELLO:
    return LBP_HELLO_SIZE;
  case LBP_WELCOME:
    return fixed + LBP_HASH_SEED_SIZE;
  default:
    return fixed;
  }
}

const char *
lbp_check_header (const uint8_t hdr[LBP_HDR_SIZE], uint16_t *type,
                  uint32_t *body_len)
{
  uint16_t t = hdr[0] | hdr[1] << 8;
  uint16_t flags = hdr[2] | hdr[3] << 8;
  uint32_t len = lb_get_le32 (hdr + 4);
  int fixed = lbp_fixed_size (t);

  if (fixed < 0)
    return "unknown message type";
  if (flags != 0)
    return "unknown message flags";
  if (len < (uint32_t) fixed || len > lbp_max_body (t))
    return "message length out of range";
  *type = t;
  *body_len = len;
  return NULL;
}

const char *
lbp_decode (uint16_t type, const uint8_t *b, uint32_t len, struct lbp_msg *m)
{
  int fixed = lbp_fixed_size (type);

  memset (m, 0, sizeof *m);
  m->type = type;
  if (fixed < 0 || len < (uint32_t) fixed || len > lbp_max_body (type))
    return "message length out of range";
  m->payload = b + fixed;
  m->payload_len = len - fixed;

  switch (type) {
  case LBP_HELLO:
    m->magic = lb_get_le32 (b);
    m->version = lb_get_le32 (b + 4);
    m->epoch = lb_get_le64 (b + 8);
    m->dev_size = lb_get_le64 (b + 16);
    m->hash_block = lb_get_le32 (b + 24);
    if (m->magic != LBP_MAGIC)
      return "bad magic in HELLO";
    /* Older versions end before the partition; the server refuses them
     * by their version.
     */
    if (m->version >= 3) {
      if (len != LBP_HELLO_SIZE)
        return "HELLO without its partition identity";
      m->partition = lb_get_le64 (b + LBP_HELLO_V2_SIZE);
      if (m->partition == 0)
        return "HELLO with partition identity 0";
    }
    else if (len != LBP_HELLO_V2_SIZE)
      return "message length out of range";
    m->payload_len = 0;
    if (m->hash_block < 4096 || m->hash_block > (16u << 20)
        || !lb_is_pow2 (m->hash_block))
      return "bad hash block size";
    break;
  case LBP_WRITE:
  case LBP_BLOCK:
    if (type == LBP_WRITE) {
      m->seq = lb_get_le64 (b);
      b += 8;
    }
    m->offset = lb_get_le64 (b);
    m->length = lb_get_le32 (b + 8);
    m->enc = lb_get_le32 (b + 12);
    if (m->length == 0 || m->length > LBP_MAX_DATA)
      return "data length out of range";
    switch (m->enc) {
    case LBP_ENC_RAW:
      if (m->payload_len != m->length)
        return "payload length does not match";
      break;
    case LBP_ENC_ZERO:
      if (m->payload_len != 0)
        return "zero block with a payload";
      break;
    case LBP_ENC_ZSTD:
      if (m->payload_len == 0)
        return "empty compressed payload";
      break;
    default:
      return "unknown encoding";
    }
    break;
  case LBP_ZERO:
    m->seq = lb_get_le64 (b);
    m->offset = lb_get_le64 (b + 8);
    m->length = lb_get_le64 (b + 16);
    break;
  case LBP_SYNC:
    m->id = lb_get_le64 (b);
    m->seq = lb_get_le64 (b + 8);
    m->phase = lb_get_le32 (b + 16);
    m->backlog = lb_get_le32 (b + 20);
    m->gen = lb_get_le64 (b + 24);
    m->swept = lb_get_le64 (b + 32);
    if (m->phase > LBP_PHASE_LIVE)
      return "unknown phase";
    break;
  case LBP_HASH_REQ:
    m->id = lb_get_le64 (b);
    m->offset = lb_get_le64 (b + 8);
    m->length = lb_get_le32 (b + 16);
    m->hash_block = lb_get_le32 (b + 20);
    if (m->hash_block < 4096 || m->hash_block > (16u << 20)
        || !lb_is_pow2 (m->hash_block))
      return "bad hash block size";
    if (m->length == 0
        || m->length > (uint64_t) m->hash_block * LBP_MAX_HASHES)
      return "hash request too large";
    break;
  case LBP_BYE:
    break;
  case LBP_WELCOME:
    m->version = lb_get_le32 (b);
    m->phase = lb_get_le32 (b + 4);
    m->epoch = lb_get_le64 (b + 8);
    m->seq = lb_get_le64 (b + 16);
    m->image_size = lb_get_le64 (b + 24);
    m->last_consistent = lb_get_le64 (b + 32);
    m->gen = lb_get_le64 (b + 40);
    m->swept = lb_get_le64 (b + 48);
    if (m->phase > LBP_PHASE_LIVE)
      return "unknown phase";
    m->verify_every = lb_get_le64 (b + 56);
    m->verified = lb_get_le64 (b + 64);
    if (m->payload_len != LBP_HASH_SEED_SIZE)
      return "WELCOME without its hash seed";
    break;
  case LBP_SYNCED:
    m->id = lb_get_le64 (b);
    m->seq = lb_get_le64 (b + 8);
    break;
  case LBP_HASHES:
    m->id = lb_get_le64 (b);
    m->offset = lb_get_le64 (b + 8);
    m->count = lb_get_le32 (b + 16);
    m->hash_block = lb_get_le32 (b + 20);
    if (m->count > LBP_MAX_HASHES
        || m->payload_len != (size_t) m->count * LBP_HASH_SIZE)
      return "hash count does not match";
    break;
  case LBP_ERROR:
    m->code = lb_get_le32 (b);
    break;
  case LBP_VERIFIED:
    m->pass = lb_get_le64 (b);
    m->compared = lb_get_le64 (b + 8);
    m->mismatched = lb_get_le64 (b + 16);
    m->repaired = lb_get_le64 (b + 24);
    if (m->mismatched > m->compared || m->repaired > m->mismatched)
      return "VERIFIED counts do not add up";
    break;
  case LBP_MARK:
    m->id = lb_get_le64 (b);
    m->seq = lb_get_le64 (b + 8);
    if (!lw_mark_label_ok ((const char *) m->payload, m->payload_len))
      return "bad mark label";
    break;
  case LBP_MARKED:
    m->id = lb_get_le64 (b);
    m->seq = lb_get_le64 (b + 8);
    m->code = lb_get_le32 (b + 16);
    if (m->code > LBP_MARK_PAST)
      return "unknown mark result";
    break;
  }
  return NULL;
}

size_t
lbp_encode (const struct lbp_msg *m, size_t payload_len, uint8_t *out)
{
  int fixed = m->type == LBP_HELLO && m->version >= 3 ? LBP_HELLO_SIZE
              : lbp_fixed_size (m->type);
  uint8_t *b = out + LBP_HDR_SIZE;

  memset (out, 0, LBP_HDR_SIZE + (fixed > 0 ? fixed : 0));
  out[0] = m->type & 0xff;
  out[1] = m->type >> 8;
  lb_put_le32 (out + 4, (uint32_t) (fixed + payload_len));

  switch (m->type) {
  case LBP_HELLO:
    lb_put_le32 (b, LBP_MAGIC);
    lb_put_le32 (b + 4, m->version);
    lb_put_le64 (b + 8, m->epoch);
    lb_put_le64 (b + 16, m->dev_size);
    lb_put_le32 (b + 24, m->hash_block);
    if (m->version >= 3)
      lb_put_le64 (b + LBP_HELLO_V2_SIZE, m->partition);
    break;
  case LBP_WRITE:
    lb_put_le64 (b, m->seq);
    b += 8;
    /* fall through */
  case LBP_BLOCK:
    lb_put_le64 (b, m->offset);
    lb_put_le32 (b + 8, (uint32_t) m->length);
    lb_put_le32 (b + 12, m->enc);
    break;
  case LBP_ZERO:
    lb_put_le64 (b, m->seq);
    lb_put_le64 (b + 8, m->offset);
    lb_put_le64 (b + 16, m->length);
    break;
  case LBP_SYNC:
    lb_put_le64 (b, m->id);
    lb_put_le64 (b + 8, m->seq);
    lb_put_le32 (b + 16, m->phase);
    lb_put_le32 (b + 20, m->backlog);
    lb_put_le64 (b + 24, m->gen);
    lb_put_le64 (b + 32, m->swept);
    break;
  case LBP_HASH_REQ:
    lb_put_le64 (b, m->id);
    lb_put_le64 (b + 8, m->offset);
    lb_put_le32 (b + 16, (uint32_t) m->length);
    lb_put_le32 (b + 20, m->hash_block);
    break;
  case LBP_WELCOME:
    lb_put_le32 (b, m->version);
    lb_put_le32 (b + 4, m->phase);
    lb_put_le64 (b + 8, m->epoch);
    lb_put_le64 (b + 16, m->seq);
    lb_put_le64 (b + 24, m->image_size);
    lb_put_le64 (b + 32, m->last_consistent);
    lb_put_le64 (b + 40, m->gen);
    lb_put_le64 (b + 48, m->swept);
    lb_put_le64 (b + 56, m->verify_every);
    lb_put_le64 (b + 64, m->verified);
    break;
  case LBP_VERIFIED:
    lb_put_le64 (b, m->pass);
    lb_put_le64 (b + 8, m->compared);
    lb_put_le64 (b + 16, m->mismatched);
    lb_put_le64 (b + 24, m->repaired);
    break;
  case LBP_SYNCED:
    lb_put_le64 (b, m->id);
    lb_put_le64 (b + 8, m->seq);
    break;
  case LBP_HASHES:
    lb_put_le64 (b, m->id);
    lb_put_le64 (b + 8, m->offset);
    lb_put_le32 (b + 16, m->count);
    lb_put_le32 (b + 20, m->hash_block);
    break;
  case LBP_ERROR:
    lb_put_le32 (b, m->code);
    break;
  case LBP_MARK:
    lb_put_le64 (b, m->id);
    lb_put_le64 (b + 8, m->seq);
    break;
  case LBP_MARKED:
    lb_put_le64 (b, m->id);
    lb_put_le64 (b + 8, m->seq);
    lb_put_le32 (b + 16, m->code);
    break;
  }
  return LBP_HDR_SIZE + fixed;
}

const char *
lbp_type_name (uint16_t type)
{
  switch (type) {
  case LBP_HELLO: return "HELLO";
  case LBP_WRITE: return "WRITE";
  case LBP_ZERO: return "ZERO";
  case LBP_BLOCK: return "BLOCK";
  case LBP_SYNC: return "SYNC";
  case LBP_HASH_REQ: return "HASH_REQ";
  case LBP_BYE: return "BYE";
  case LBP_WELCOME: return "WELCOME";
  case LBP_SYNCED: return "SYNCED";
  case LBP_HASHES: return "HASHES";
  case LBP_ERROR: return "ERROR";
  case LBP_MARK: return "MARK";
  case LBP_VERIFIED: return "VERIFIED";
  case LBP_MARKED: return "MARKED";
  }
  return "unknown";
}

const char *
lbp_gen_name (uint64_t gen, char buf[24])
{
  if (gen == LBP_GEN_NONE)
    return "none";
  snprintf (buf, 24, "%" PRIu64, gen);
  return buf;
}

const char *
lbp_phase_name (uint32_t phase)
{
  switch (phase) {
  case LBP_PHASE_SCANNING: return "scanning";
  case LBP_PHASE_CATCHING_UP: return "catching-up";
  case LBP_PHASE_LIVE: return "live";
  }
  return "unknown";
}
