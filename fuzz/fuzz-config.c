/* libFuzzer target: lbd's config parser on arbitrary text. */

#include <config.h>

#include <stddef.h>
#include <stdint.h>

#include "lb_config.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct lb_config cfg;
  char err[512];

  if (lb_config_parse ((const char *) data, size, "fuzz.conf", "/nonexistent",
                       &cfg, err, sizeof err) == 0)
    lb_config_free (&cfg);
  return 0;
}
