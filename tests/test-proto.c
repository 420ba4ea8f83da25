/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the wire protocol's framing and checks (lb_proto.c). */

#include <config.h>

#include <string.h>

#include "lb_proto.h"
#include "lw_shm.h"
#include "tap.h"

/* Encode M, then check and decode it back. */
static const char *
roundtrip (const struct lbp_msg *m, const uint8_t *payload, size_t plen,
           struct lbp_msg *out, uint8_t *wire)
{
  size_t n = lbp_encode (m, plen, wire);
  uint16_t type;
  uint32_t len;
  const char *why;

  if (plen)
    memcpy (wire + n, payload, plen);
  if ((why = lbp_check_header (wire, &type, &len)) != NULL)
    return why;
  if (type != m->type || len != n - LBP_HDR_SIZE + plen)
    return "header does not match";
  return lbp_decode (type, wire + LBP_HDR_SIZE, len, out);
}

int
main (void)
{
  static uint8_t wire[1 << 20], data[65536];
  struct lbp_msg m, d;
  uint16_t type;
  uint32_t len;

  memset (data, 0xab, sizeof data);
  m = (struct lbp_msg) { .type = LBP_HELLO, .version = LBP_VERSION,
                         .epoch = UINT64_C(0x0123456789abcdef),
                         .dev_size = UINT64_C(5) << 40, .hash_block = 65536 };
  m.partition = UINT64_C(0xfedcba9876543210);
  tap_ok (roundtrip (&m, NULL, 0, &d, wire) == NULL && d.magic == LBP_MAGIC
          && d.epoch == m.epoch && d.dev_size == m.dev_size
          && d.hash_block == 65536 && d.partition == m.partition
          && d.payload_len == 0,
          "HELLO round trip, 64-bit size (5 TiB), partition identity");
  tap_ok (lbp_encode (&m, 0, wire) == LBP_HDR_SIZE + LBP_HELLO_SIZE,
          "a HELLO of version 3 is 40 bytes");
  m.partition = 0;
  tap_ok (roundtrip (&m, NULL, 0, &d, wire) != NULL,
          "HELLO with partition identity 0 refused");
  /* A client of version 2: decoded, so that lbd can say which version
   * it does not speak.
   */
  m = (struct lbp_msg) { .type = LBP_HELLO, .version = 2, .hash_block = 65536,
                         .dev_size = 4096 };
  tap_ok (lbp_encode (&m, 0, wire) == LBP_HDR_SIZE + LBP_HELLO_V2_SIZE
          && roundtrip (&m, NULL, 0, &d, wire) == NULL && d.version == 2
          && d.partition == 0, "a HELLO of version 2 (32 bytes) decodes");
  lb_put_le32 (wire + 4, LBP_HELLO_SIZE);
  tap_ok (lbp_decode (LBP_HELLO, wire + LBP_HDR_SIZE, LBP_HELLO_SIZE, &d)
          != NULL, "a HELLO of version 2 with 8 more bytes refused");
  m.version = 3;
  m.partition = 7;
  lbp_encode (&m, 0, wire);
  tap_ok (lbp_decode (LBP_HELLO, wire + LBP_HDR_SIZE, LBP_HELLO_V2_SIZE, &d)
          != NULL, "a HELLO of version 3 without its partition refused");
  lb_put_le32 (wire + 4, LBP_HELLO_SIZE + 1);
  tap_ok (lbp_check_header (wire, &type, &len) != NULL,
          "a HELLO longer than 40 bytes refused from its header");

  m = (struct lbp_msg) { .type = LBP_WRITE, .seq = 42,
                         .offset = UINT64_C(3) << 40, .length = 4096,
                         .enc = LBP_ENC_RAW };
  tap_ok (roundtrip (&m, data, 4096, &d, wire) == NULL && d.seq == 42
          && d.offset == m.offset && d.length == 4096 && d.payload_len == 4096
          && d.payload[4095] == 0xab, "WRITE round trip with payload");
  tap_ok (roundtrip (&m, data, 4095, &d, wire) != NULL,
          "WRITE whose payload is short of its length is refused");
  m.enc = LBP_ENC_ZERO;
  tap_ok (roundtrip (&m, NULL, 0, &d, wire) == NULL,
          "zero-encoded BLOCK/WRITE without payload accepted");
  tap_ok (roundtrip (&m, data, 10, &d, wire) != NULL,
          "zero-encoded data with a payload refused");
  m.enc = 9;
  tap_ok (roundtrip (&m, data, 4096, &d, wire) != NULL,
          "unknown encoding refused");
  m.enc = LBP_ENC_RAW;
  m.length = 0;
  tap_ok (roundtrip (&m, NULL, 0, &d, wire) != NULL, "empty write refused");

  m = (struct lbp_msg) { .type = LBP_HASH_REQ, .id = 7, .offset = 0,
                         .length = 4096u * 65536, .hash_block = 65536 };
  tap_ok (roundtrip (&m, NULL, 0, &d, wire) == NULL && d.id == 7,
          "HASH_REQ of 4096 blocks accepted");
  m.length++;
  tap_ok (roundtrip (&m, NULL, 0, &d, wire) != NULL,
          "HASH_REQ of more than 4096 blocks refused");
  m.hash_block = 3000;
  tap_ok (roundtrip (&m, NULL, 0, &d, wire) != NULL,
          "hash block not a power of 2 refused");

  m = (struct lbp_msg) { .type = LBP_HASHES, .id = 1, .count = 2,
                         .hash_block = 65536 };
  tap_ok (roundtrip (&m, data, 2 * LBP_HASH_SIZE, &d, wire) == NULL
          && d.count == 2, "HASHES with 2 hashes of 16 bytes");
  tap_ok (roundtrip (&m, data, 2 * LBP_HASH_SIZE - 1, &d, wire) != NULL,
          "HASHES whose count does not match its payload refused");

  m = (struct lbp_msg) { .type = LBP_SYNC, .id = 3, .seq = 99,
                         .phase = LBP_PHASE_LIVE,
                         .gen = UINT64_C(0x0102030405060708),
                         .swept = UINT64_C(5) << 40 };
  tap_ok (roundtrip (&m, NULL, 0, &d, wire) == NULL
          && d.phase == LBP_PHASE_LIVE && d.seq == 99 && d.gen == m.gen
          && d.swept == m.swept, "SYNC round trip, gen and swept included");
  m.backlog = lbp_backlog_encode (UINT64_C(3) << 30);
  tap_ok (roundtrip (&m, NULL, 0, &d, wire) == NULL
          && lbp_backlog_decode (d.backlog) == INT64_C(3) << 30,
          "SYNC's backlog round trip (3 GiB)");
  tap_ok (lbp_backlog_decode (0) == -1 && lbp_backlog_encode (0) == 1
          && lbp_backlog_decode (1) == 0
          && lbp_backlog_encode (1) == 2 && lbp_backlog_encode (65536) == 2
          && lbp_backlog_encode (65537) == 3
          && lbp_backlog_encode (UINT64_MAX) == UINT32_MAX,
          "backlog: 0 is not said, 0 bytes is 1; 64 KiB units rounded up; "
          "saturates");
  m = (struct lbp_msg) { .type = LBP_WELCOME, .version = LBP_VERSION,
                         .phase = LBP_PHASE_CATCHING_UP, .epoch = 5,
                         .seq = 6, .image_size = 7, .last_consistent = 8,
                         .gen = LBP_GEN_NONE, .swept = 9,
                         .verify_every = 604800, .verified = 10 };
  tap_ok (roundtrip (&m, data, LBP_HASH_SEED_SIZE, &d, wire) == NULL
          && d.verify_every == 604800 && d.verified == 10
          && d.epoch == 5
          && d.seq == 6 && d.image_size == 7 && d.last_consistent == 8
          && d.gen == LBP_GEN_NONE && d.swept == 9
          && d.phase == LBP_PHASE_CATCHING_UP
          && d.payload_len == LBP_HASH_SEED_SIZE,
          "WELCOME round trip, gen, swept, the verify schedule and the hash "
          "seed included");
  tap_ok (roundtrip (&m, NULL, 0, &d, wire) != NULL
          && roundtrip (&m, data, LBP_HASH_SEED_SIZE - 1, &d, wire) != NULL,
          "WELCOME without its whole hash seed refused");
  tap_ok (LBP_VERSION == 4, "protocol version 4 (keyed scan hashes)");
  m = (struct lbp_msg) { .type = LBP_VERIFIED, .pass = 3, .compared = 100,
                         .mismatched = 2, .repaired = 2 };
  tap_ok (roundtrip (&m, NULL, 0, &d, wire) == NULL && d.pass == 3
          && d.compared == 100 && d.mismatched == 2 && d.repaired == 2,
          "VERIFIED round trip");
  m.repaired = 3;
  tap_ok (roundtrip (&m, NULL, 0, &d, wire) != NULL,
          "VERIFIED repairing more than differed refused");
  m.repaired = 0;
  m.mismatched = 101;
  tap_ok (roundtrip (&m, NULL, 0, &d, wire) != NULL,
          "VERIFIED with more differing than compared refused");
  m = (struct lbp_msg) { .type = LBP_SYNC, .id = 3, .seq = 99,
                         .phase = LBP_PHASE_LIVE };
  m.phase = 7;
  tap_ok (roundtrip (&m, NULL, 0, &d, wire) != NULL, "unknown phase refused");

  /* MARK and MARKED (lb --mark). */
  m = (struct lbp_msg) { .type = LBP_MARK, .id = 11, .seq = 12 };
  tap_ok (roundtrip (&m, (const uint8_t *) "nightly", 7, &d, wire) == NULL
          && d.id == 11 && d.seq == 12 && d.payload_len == 7
          && memcmp (d.payload, "nightly", 7) == 0, "MARK round trip");
  tap_ok (roundtrip (&m, (const uint8_t *) "night/ly", 8, &d, wire) != NULL,
          "MARK with a label that is not one refused");
  tap_ok (roundtrip (&m, NULL, 0, &d, wire) != NULL,
          "MARK without a label refused");
  {
    char longl[LW_MARK_LABEL_MAX];
    memset (longl, 'a', sizeof longl);
    lbp_encode (&m, sizeof longl, wire);
    tap_ok (lbp_check_header (wire, &type, &len) != NULL,
            "MARK with a label of %d bytes refused from its header",
            LW_MARK_LABEL_MAX);
  }
  m = (struct lbp_msg) { .type = LBP_MARKED, .id = 11, .seq = 12,
                         .code = LBP_MARK_TAKEN };
  tap_ok (roundtrip (&m, (const uint8_t *) "20261202T0130Z", 14, &d, wire)
          == NULL && d.code == LBP_MARK_TAKEN && d.seq == 12
          && d.payload_len == 14, "MARKED round trip, with its text");
  m.code = LBP_MARK_PAST + 1;
  tap_ok (roundtrip (&m, NULL, 0, &d, wire) != NULL,
          "MARKED with an unknown result refused");

  /* Header checks, before any body is read. */
  memset (wire, 0, 8);
  wire[0] = 200;
  tap_ok (lbp_check_header (wire, &type, &len) != NULL,
          "unknown type refused from its header");
  m = (struct lbp_msg) { .type = LBP_BLOCK, .length = 1, .enc = 0 };
  lbp_encode (&m, 1, wire);
  lb_put_le32 (wire + 4, 16 + LBP_MAX_DATA + 1);
  tap_ok (lbp_check_header (wire, &type, &len) != NULL,
          "a body over the limit is refused from its header");
  lb_put_le32 (wire + 4, 3);
  tap_ok (lbp_check_header (wire, &type, &len) != NULL,
          "a body shorter than the fixed part is refused");
  m = (struct lbp_msg) { .type = LBP_SYNCED };
  lbp_encode (&m, 0, wire);
  lb_put_le32 (wire + 4, 17);
  tap_ok (lbp_check_header (wire, &type, &len) != NULL,
          "a fixed-size message with extra bytes is refused");
  m = (struct lbp_msg) { .type = LBP_BYE };
  lbp_encode (&m, 0, wire);
  wire[2] = 1;
  tap_ok (lbp_check_header (wire, &type, &len) != NULL,
          "non-zero flags are refused");
  m = (struct lbp_msg) { .type = LBP_HELLO, .version = 1, .hash_block = 65536 };
  lbp_encode (&m, 0, wire);
  wire[LBP_HDR_SIZE] ^= 1;
  tap_ok (lbp_decode (LBP_HELLO, wire + LBP_HDR_SIZE, 32, &d) != NULL,
          "HELLO with a bad magic refused");
  return tap_done ();
}
