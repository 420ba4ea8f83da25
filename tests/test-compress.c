/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of lb --compress=auto's rule (lb/compress.c), in real time
 * (its windows are 250 ms of the monotonic clock):
 *   - a link that is the bottleneck (every send blocked) with text:
 *     auto compresses, and keeps compressing while the link stays slow;
 *   - the same estimate, then windows in which the link takes all that
 *     lb gives it while lb spends most of each window compressing: auto
 *     must find the link faster and go back to raw.  (Before the fix, a
 *     busy compressor learnt nothing about the link, and a low estimate
 *     left by a moment the link was behind held lb at level 9 on a fast
 *     link: 40 MB/s on a 1 GB/s veth in bench/mirror-bench.sh.)
 *   - random data is never compressed, whatever the link; after 8
 *     failed probes in a row the next pieces go unprobed (a burst of
 *     random writes costs a probe a megabyte), until text follows; a
 *     few random pieces among text do not hide the text after them.
 */

#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compress.h"
#include "lb_time.h"
#include "tap.h"

#define PIECE (64u << 10)
#define MS (1000000ull)

static uint8_t text[PIECE], noise[PIECE];

static void
sleep_ms (unsigned ms)
{
  struct timespec t = { ms / 1000, (ms % 1000) * 1000000l };
  while (nanosleep (&t, &t) == -1)
    ;
}

/* Words from a small vocabulary: compresses to about a third. */
static void
make_text (void)
{
  static const char *const w[] = {
    "block ", "image ", "write ", "the ", "of ", "partition ", "lbd ",
    "ring ", "sync ", "catch-up ", "scan ", "hash ", "\n", "record ",
  };
  size_t at = 0;

  while (at < PIECE) {
    const char *s = w[tap_rand () % (sizeof w / sizeof w[0])];
    size_t n = strlen (s);
    if (n > PIECE - at)
      n = PIECE - at;
    memcpy (text + at, s, n);
    at += n;
  }
  for (at = 0; at < PIECE; at++)
    noise[at] = tap_rand ();
}

/* One window of auto: lb sent WIRE bytes, blocked on the link for
 * BLOCKED_MS of it, compressing for COMP_MS.
 */
static void
window (struct lb_compress *z, uint64_t wire, unsigned blocked_ms,
        unsigned comp_ms)
{
  lb_compress_sent (z, wire, blocked_ms * MS);
  z->win_comp_ns += comp_ms * MS;
  sleep_ms (260);
  lb_compress_sending (z);
}

int
main (void)
{
  struct lb_compress z;
  int i, n;

  make_text ();
  tap_ok (lb_compress_init (&z, LB_COMPRESS_AUTO, -1) == 0, "auto set up");
  for (i = 0; i < 4; i++)
    lb_compress_payload (&z, text, PIECE);
  tap_ok (lb_compress_level (&z) == 0,
          "before the link was seen to be the bottleneck: raw");

  /* A slow link: 2 MiB in a window, every send blocked: about 8 MB/s. */
  lb_compress_sending (&z);
  window (&z, 2u << 20, 260, 0);
  tap_ok (lb_compress_level (&z) > 0,
          "the link is the bottleneck: text is compressed (level %d, link "
          "%.1f MB/s)", lb_compress_level (&z), z.link / 1e6);
  tap_ok (lb_compress_payload (&z, text, PIECE) > 0
          && lb_compress_payload (&z, text, PIECE) < PIECE / 2,
          "a text piece goes compressed, to less than half");
  for (i = 0; i < 3; i++)
    window (&z, 2u << 20, 260, 0);
  tap_ok (lb_compress_level (&z) > 0,
          "while the link stays the bottleneck, auto keeps compressing");
  tap_ok (z.link < 20e6, "and its estimate stays what went through "
          "(%.1f MB/s)", z.link / 1e6);

  /* Now the link keeps up: the send queue is empty whenever lb sends,
   * nothing blocks, and lb spends 200 ms of each 260 ms window
   * compressing (16 MiB a window: what a slow level gets through).
   */
  for (n = 1; n <= 40; n++) {
    window (&z, 16u << 20, 0, 200);
    if (lb_compress_level (&z) == 0)
      break;
  }
  tap_ok (lb_compress_level (&z) == 0,
          "a link that keeps up while lb is busy compressing: back to raw "
          "after %d windows (link estimate %.0f MB/s)", n, z.link / 1e6);
  tap_ok (lb_compress_payload (&z, text, PIECE) == 0,
          "and text then goes raw");

  /* Random data: the probe skips it even on a slow link. */
  for (i = 0; i < 3; i++)
    window (&z, 2u << 20, 260, 0);
  tap_ok (lb_compress_level (&z) > 0, "slow again: compressing again");
  tap_ok (lb_compress_payload (&z, noise, PIECE) == 0,
          "random data goes raw on a slow link too");

  /* A few incompressible pieces among text (.gz files among text
   * files): each is probed, and the text right after them is found.
   */
  {
    uint64_t p0, u0;
    unsigned k, sent_raw = 0;

    tap_ok (lb_compress_payload (&z, text, PIECE) > 0, "text");
    p0 = z.probes, u0 = z.unprobed;
    for (k = 0; k < 7; k++)
      sent_raw += lb_compress_payload (&z, noise + k * 4096, 4096) == 0;
    tap_ok (sent_raw == 7 && z.probes - p0 == 7 && z.unprobed == u0,
            "7 random pieces in a row: raw, each probed (%" PRIu64 ")",
            z.probes - p0);
    tap_ok (lb_compress_payload (&z, text, 4096) > 0,
            "and the text piece right after them is compressed");
  }

  /* A burst of random 4 KiB writes: after 8 failed probes, pieces go
   * raw unprobed, for longer each time, so the probes are few.
   */
  {
    uint64_t p0 = z.probes, sent_raw = 0;
    unsigned k, found = 0;

    for (k = 0; k < 2048; k++)       /* 8 MiB */
      sent_raw += lb_compress_payload (&z, noise + (k % 16) * 4096, 4096)
                  == 0;
    tap_ok (sent_raw == 2048, "8 MiB of random 4 KiB pieces: all raw");
    tap_ok (z.probes - p0 <= 24, "with %" PRIu64 " probes, not one a piece",
            z.probes - p0);
    tap_ok (z.unprobed >= 2048 - 24, "the others sent unprobed (%" PRIu64
            ")", z.unprobed);
    /* Text after it is found within the cap (1 MiB) and a piece. */
    for (k = 0; k < 258 && !found; k++)
      found = lb_compress_payload (&z, text + (k % 16) * 4096, 4096) > 0;
    tap_ok (found, "text after the burst is compressed again within "
            "%u pieces of 4 KiB", k);
    tap_ok (lb_compress_payload (&z, text, 4096) > 0
            && lb_compress_payload (&z, text + 4096, 4096) > 0,
            "and every piece after that one is probed and compressed");
    /* And the count starts again: 7 failures do not start a backoff. */
    p0 = z.probes;
    for (k = 0; k < 7; k++)
      lb_compress_payload (&z, noise + k * 4096, 4096);
    tap_ok (z.probes - p0 == 7
            && lb_compress_payload (&z, text, 4096) > 0,
            "after text, 7 random pieces are each probed again, and the "
            "text after them compressed");
  }
  lb_compress_free (&z);
  return tap_done ();
}
