/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: the consumer's validation of a channel header, then
 * the geometry it derives from an accepted one.
 */

#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lw_shm.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static struct lw_header h;
  uint64_t file_size;

  if (size < sizeof h + 8)
    return 0;
  memcpy (&h, data, sizeof h);
  memcpy (&file_size, data + sizeof h, 8);
  if (lw_header_check (&h, file_size) == NULL) {
    /* What a consumer then relies on: every bitmap inside the file and
     * apart from the others, the start fields sane.
     */
    if (h.hint_off + h.bitmap_bytes > file_size
        || h.pending_off + h.bitmap_bytes > h.hint_off
        || h.dirty_off + h.bitmap_bytes > h.pending_off
        || h.ring_off + h.ring_size > h.dirty_off
        || (h.nblocks + 63) / 64 * 8 > h.bitmap_bytes
        || h.start_floor > h.start_seq
        || memchr (h.start_reason, '\0', sizeof h.start_reason) == NULL
        || strlen (lw_start_name (h.start_kind)) < 5
        || memchr (h.served_path, '\0', sizeof h.served_path) == NULL
        || strlen (lw_served_name (h.served_kind)) < 4)
      __builtin_trap ();
  }
  return 0;
}
