/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: lbd's config parser on arbitrary text, and the
 * listen-address parser on its own (lbd uses it without the config):
 * an address it accepts must read back from its own text as an equal
 * address with the same hash.
 */

#include <config.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb_config.h"
#include "lb_index.h"
#include "lb_listen.h"

static void
fuzz_listen (const char *data, size_t size)
{
  struct lb_listen l, back;

  if (lb_listen_parse (data, size, &l) != NULL)
    return;
  if (memchr (l.text, '\0', sizeof l.text) == NULL
      || lb_listen_parse (l.text, strlen (l.text), &back) != NULL
      || !lb_listen_equal (&l, &back) || strcmp (l.text, back.text) != 0
      || lb_listen_hash (LB_INDEX_HASH_START, &l)
         != lb_listen_hash (LB_INDEX_HASH_START, &back))
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct lb_config cfg;
  char err[512];

  if (lb_config_parse ((const char *) data, size, "fuzz.conf", "/nonexistent",
                       &cfg, err, sizeof err) == 0)
    lb_config_free (&cfg);
  if (size < 128)
    fuzz_listen ((const char *) data, size);
  return 0;
}
