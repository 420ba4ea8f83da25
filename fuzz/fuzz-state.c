/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: the state file's decoding (nbdkit-plugin/stateformat.c)
 * as the next start reads it: a superblock, a journal replayed, a map
 * page.  The first bytes choose a small geometry; the rest is the file.
 * What a successful replay hands on must be sound.
 */

#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stateformat.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct stateformat_geom g;
  struct stateformat_layout l;
  struct stateformat_sb sb;
  struct stateformat_dyn dyn;
  uint64_t slots[64], next_tx, words[SF_PAGE_WORDS];
  uint8_t journal[64 * SF_REC_SIZE], page[SF_PAGE_SIZE];
  const char *why;
  char err[256];
  uint32_t i, j;

  if (size < 4)
    return 0;
  g = (struct stateformat_geom) {
    .dev_size = (uint64_t) (1 + data[0]) << 20,
    .block_size = 4096u << (data[1] % 5),
    .region_size = (uint64_t) 65536 << (data[2] % 7),
    .nslots = 16 + data[3] % 48,
  };
  data += 4;
  size -= 4;
  if (stateformat_layout (&g, &l, err, sizeof err) == -1)
    return 0;
  if (l.journal_len * SF_REC_SIZE > sizeof journal)
    __builtin_trap ();
  if (size >= SF_SB_SIZE && stateformat_sb_decode (data, &sb, &why) == SF_OK
      && why != NULL)
    __builtin_trap ();
  memset (journal, 0, sizeof journal);
  memcpy (journal, data, size < sizeof journal ? size : sizeof journal);
  if (stateformat_replay (&l, 0x1234, journal, slots, &dyn, &next_tx, err,
                          sizeof err) == 0) {
    for (i = 0; i < g.nslots; i++) {
      if (slots[i] != SF_NONE && slots[i] >= l.nregions)
        __builtin_trap ();
      for (j = i + 1; j < g.nslots; j++)
        if (slots[i] != SF_NONE && slots[i] == slots[j])
          __builtin_trap ();
    }
    if (dyn.gen_acked > dyn.gen || dyn.floor_seq > dyn.last_seq
        || next_tx == 0)
      __builtin_trap ();
  }
  memset (page, 0, sizeof page);
  memcpy (page, data, size < sizeof page ? size : sizeof page);
  stateformat_page_decode (0x1234, 0, page, words, &why);
  return 0;
}
