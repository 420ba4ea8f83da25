/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: a stream of frames as lbd or lb would receive it. */

#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lb_proto.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  while (size >= LBP_HDR_SIZE) {
    uint16_t type;
    uint32_t len;
    struct lbp_msg m;

    if (lbp_check_header (data, &type, &len) != NULL)
      return 0;
    data += LBP_HDR_SIZE;
    size -= LBP_HDR_SIZE;
    if (len > size)
      return 0;
    if (lbp_decode (type, data, len, &m) == NULL) {
      /* Touch what a receiver would use. */
      if (m.payload_len)
        (void) *(volatile const uint8_t *) (m.payload + m.payload_len - 1);
      if (m.type == LBP_HASHES && m.count)
        (void) *(volatile const uint8_t *)
          (m.payload + (size_t) m.count * LBP_HASH_SIZE - 1);
    }
    data += len;
    size -= len;
  }
  return 0;
}
