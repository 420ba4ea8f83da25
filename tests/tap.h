/* SPDX-License-Identifier: BSD-3-Clause */
/* Minimal TAP output for the C unit tests (Automake's TAP driver reads it). */

#ifndef LB_TESTS_TAP_H
#define LB_TESTS_TAP_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_n, tap_failed;

#define tap_ok(cond, ...) do {                                  \
    int tap_c_ = !!(cond);                                      \
    printf ("%s %d - ", tap_c_ ? "ok" : "not ok", ++tap_n);     \
    printf (__VA_ARGS__);                                       \
    printf ("\n");                                              \
    if (!tap_c_) {                                              \
      tap_failed++;                                             \
      printf ("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                           \
    fflush (stdout);                                            \
  } while (0)

/* A fixed pseudo-random sequence (xorshift64), the same in every run,
 * so that a failing randomized test fails again the same way.
 */
static uint64_t tap_rng = 88172645463325252ull;
static inline uint64_t
tap_rand (void)
{
  tap_rng ^= tap_rng << 13; tap_rng ^= tap_rng >> 7; tap_rng ^= tap_rng << 17;
  return tap_rng;
}

static inline int
tap_done (void)
{
  printf ("1..%d\n", tap_n);
  return tap_failed ? 1 : 0;
}

#endif
