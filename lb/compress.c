/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: compression of data payloads for the wire.  See compress.h. */

#include <config.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/ioctl.h>
#include <linux/sockios.h>

#include <zstd.h>

#include "lb_log.h"
#include "lb_time.h"
#include "compress.h"

#define LB_COMPRESS_MIN    4096u       /* smaller pieces go raw */
#define LB_COMPRESS_SAMPLE (16u << 10) /* auto's probe */
/* After LB_COMPRESS_FAILS probes in a row that did not pay, auto sends
 * LB_COMPRESS_BACKOFF payload bytes raw without a probe, doubling per
 * failed probe up to the cap: random data (a burst of encrypted or
 * compressed writes) then costs one probe a megabyte instead of one a
 * piece, which on two cores was most of lb's CPU during
 * bench/mirror-bench.sh's burst.  Not after the first failure: a few
 * .gz files among text files (bench/diet-bench.sh's ext4 copy) would
 * hide the text after each of them (0.45 x the payload on the wire
 * with a backoff at the first failure, 0.40 x with this count, 0.39 x
 * with no backoff).
 */
#define LB_COMPRESS_FAILS 8
#define LB_COMPRESS_BACKOFF (64u << 10)
#define LB_COMPRESS_DOUBLINGS 4                 /* to 1 MiB */
#define LB_COMPRESS_WINDOW_NS (250 * UINT64_C(1000000))
#define LB_COMPRESS_WINDOW_BYTES (1u << 20)
#define LB_COMPRESS_BEHIND (64u << 10)    /* a send queue this long when
                                           * lb sends again: the link
                                           * is behind lb */

/* Auto's ladder, and until a level is used, its speed and ratio as
 * fractions of level 1's (zstd 1.5 on text, this machine class: level 3
 * about 0.6 x level 1's speed, level 6 a quarter, level 9 a sixth).
 */
static const int lb_compress_ladder[LB_COMPRESS_LEVELS] = { 1, 3, 6, 9 };
static const double lb_compress_speed_f[LB_COMPRESS_LEVELS] =
  { 1, 0.6, 0.25, 0.15 };
static const double lb_compress_ratio_f[LB_COMPRESS_LEVELS] =
  { 1, 0.95, 0.9, 0.88 };

int
lb_compress_parse (const char *s, int *mode)
{
  char *end;
  long v;

  if (strcmp (s, "auto") == 0) {
    *mode = LB_COMPRESS_AUTO;
    return 0;
  }
  if (strcmp (s, "off") == 0) {
    *mode = LB_COMPRESS_OFF;
    return 0;
  }
  v = strtol (s, &end, 10);
  if (end == s || *end != '\0' || v < 0 || v > 19)
    return -1;
  *mode = v;
  return 0;
}

const char *
lb_compress_name (int mode, char buf[8])
{
  if (mode == LB_COMPRESS_AUTO)
    return "auto";
  if (mode == LB_COMPRESS_OFF)
    return "off";
  snprintf (buf, 8, "%d", mode);
  return buf;
}

/* Bytes in FD's send queue not yet acknowledged by the peer; 0 if not
 * known.
 */
static uint64_t
lb_compress_queued (int fd)
{
  int n = 0;

  if (fd < 0 || ioctl (fd, SIOCOUTQ, &n) == -1 || n < 0)
    return 0;
  return n;
}

int
lb_compress_init (struct lb_compress *z, int mode, int fd)
{
  memset (z, 0, sizeof *z);
  z->mode = mode;
  z->fd = fd;
  z->rung = -1;
  if (mode == LB_COMPRESS_OFF)
    return 0;
  z->cctx = ZSTD_createCCtx ();
  return z->cctx == NULL ? -1 : 0;
}

void
lb_compress_free (struct lb_compress *z)
{
  if (z->in_bytes > 0)
    lb_info ("compression: %" PRIu64 " bytes sent as %" PRIu64 " (%.0f %%)"
             "; %" PRIu64 " of %" PRIu64 " probed pieces did not compress"
             ", %" PRIu64 " pieces sent raw without a probe after those",
             z->in_bytes, z->out_bytes, 100.0 * z->out_bytes / z->in_bytes,
             z->skipped, z->probes, z->unprobed);
  ZSTD_freeCCtx (z->cctx);
  free (z->buf);
  z->cctx = NULL;
  z->buf = NULL;
}

/* A running average: mostly the past, a third of the newest. */
static void
lb_compress_avg (double *v, double sample)
{
  *v = *v == 0 ? sample : *v * 2 / 3 + sample / 3;
}

/* Compress LEN bytes of DATA at LEVEL into z->buf; its length, or 0.
 * *NS: how long it took.
 */
static size_t
lb_compress_run (struct lb_compress *z, const void *data, size_t len,
                 int level, uint64_t *ns)
{
  size_t need = ZSTD_compressBound (len), r;
  uint64_t t0;

  if (need > z->cap) {
    void *p = realloc (z->buf, need);
    if (p == NULL)
      return 0;
    z->buf = p;
    z->cap = need;
  }
  t0 = lb_now_ns ();
  r = ZSTD_compressCCtx (z->cctx, z->buf, z->cap, data, len, level);
  *ns = lb_now_ns () - t0 + 1;
  z->win_comp_ns += *ns;
  return ZSTD_isError (r) ? 0 : r;
}

static double
lb_compress_est_speed (const struct lb_compress *z, int k)
{
  return z->speed[k] != 0 ? z->speed[k]
                          : z->speed[0] * lb_compress_speed_f[k];
}

static double
lb_compress_est_ratio (const struct lb_compress *z, int k)
{
  return z->ratio[k] != 0 ? z->ratio[k]
                          : z->ratio[0] * lb_compress_ratio_f[k];
}

/* The rule of compress.h: the strongest rung whose throughput is above
 * raw's and within 10 % of the best.
 */
static void
lb_compress_choose (struct lb_compress *z)
{
  double t[LB_COMPRESS_LEVELS], best = z->link;
  int k, was = z->rung;

  z->rung = -1;
  if (z->link == 0 || z->speed[0] == 0)
    return;
  for (k = 0; k < LB_COMPRESS_LEVELS; k++) {
    double r = lb_compress_est_ratio (z, k), c = lb_compress_est_speed (z, k);
    t[k] = r > 0 && z->link / r < c ? z->link / r : c;
    if (t[k] > best)
      best = t[k];
  }
  for (k = 0; k < LB_COMPRESS_LEVELS; k++)
    if (t[k] > z->link && t[k] >= best * 0.9)
      z->rung = k;
  if (z->rung != was)
    lb_debug ("compression: link about %.1f MB/s, level 1 about %.0f MB/s "
              "at %.2f: %s%d", z->link / 1e6, z->speed[0] / 1e6, z->ratio[0],
              z->rung < 0 ? "raw" : "level ",
              z->rung < 0 ? 0 : lb_compress_ladder[z->rung]);
}

size_t
lb_compress_payload (struct lb_compress *z, const void *data, size_t len)
{
  size_t n, out;
  uint64_t ns;
  int level;

  if (z->mode == LB_COMPRESS_OFF || len < LB_COMPRESS_MIN)
    return 0;
  if (z->mode != LB_COMPRESS_AUTO) {
    out = lb_compress_run (z, data, len, z->mode, &ns);
    level = z->mode;
    goto keep;
  }
  /* Raw: one probe a window keeps level 1's figures current. */
  if (z->rung < 0 && z->probes > 0 && z->win_bytes > 0)
    return 0;
  if (z->skip_left > 0) {
    z->skip_left = z->skip_left > len ? z->skip_left - len : 0;
    z->unprobed++;
    return 0;
  }
  n = len < LB_COMPRESS_SAMPLE ? len : LB_COMPRESS_SAMPLE;
  out = lb_compress_run (z, data, n, 1, &ns);
  z->probes++;
  if (out == 0)
    return 0;
  lb_compress_avg (&z->speed[0], n * 1e9 / ns);
  lb_compress_avg (&z->ratio[0], (double) out / n);
  if (out > n - n / 10) {
    z->skipped++;
    if (z->failed_run < LB_COMPRESS_FAILS + LB_COMPRESS_DOUBLINGS)
      z->failed_run++;
    if (z->failed_run >= LB_COMPRESS_FAILS)
      z->skip_left = (uint64_t) LB_COMPRESS_BACKOFF
                     << (z->failed_run - LB_COMPRESS_FAILS);
    return 0;
  }
  z->failed_run = 0;
  if (z->rung < 0)
    return 0;
  level = lb_compress_ladder[z->rung];
  if (n != len || level != 1) {
    out = lb_compress_run (z, data, len, level, &ns);
    if (out == 0)
      return 0;
    lb_compress_avg (&z->speed[z->rung], len * 1e9 / ns);
    lb_compress_avg (&z->ratio[z->rung], (double) out / len);
  }
 keep:
  if (out == 0 || out >= len - len / 16)
    return 0;
  z->in_bytes += len;
  z->out_bytes += out;
  return out;
}

void
lb_compress_sending (struct lb_compress *z)
{
  uint64_t now, span, queued, drained;

  if (z->mode != LB_COMPRESS_AUTO)
    return;
  now = lb_now_ns ();
  if (z->win_start_ns == 0) {
    z->win_start_ns = now;
    z->win_queued = lb_compress_queued (z->fd);
    return;
  }
  span = now - z->win_start_ns;
  if (span < LB_COMPRESS_WINDOW_NS)
    return;
  /* Sampled before a send, after lb did its work since the last one:
   * on a link that keeps up it is about empty.
   */
  queued = lb_compress_queued (z->fd);
  if (z->win_bytes >= LB_COMPRESS_WINDOW_BYTES) {
    /* What left the send queue for the peer in this window. */
    drained = z->win_bytes + z->win_queued > queued
              ? z->win_bytes + z->win_queued - queued : 0;
    if (queued >= LB_COMPRESS_BEHIND || z->win_blocked_ns * 4 >= span)
      z->link = drained * 1e9 / span;   /* the link was the bottleneck */
    else if (z->link != 0) {
      /* The link took all it was given: it may be faster than thought.
       * Also while lb was busy compressing: an estimate left low by a
       * moment the link was behind (lbd short of CPU during a burst,
       * say) would otherwise hold lb at a slow level on a fast link
       * for good, compressing too slowly to find out (seen: 40 MB/s at
       * level 9 on a veth that carries 1 GB/s, bench/mirror-bench.sh).
       */
      double rate = drained * 1e9 / span;
      /* Busy compressing, raw's figure is what must catch up: double
       * (a link that is slow after all shows it in the next window).
       */
      double grown = z->link * (z->win_comp_ns * 2 >= span ? 2 : 1.25);
      z->link = grown > rate ? grown : rate;
    }
    lb_compress_choose (z);
  }
  z->win_start_ns = now;
  z->win_queued = queued;
  z->win_bytes = 0;
  z->win_blocked_ns = 0;
  z->win_comp_ns = 0;
}

void
lb_compress_sent (struct lb_compress *z, uint64_t wire, uint64_t ns)
{
  z->win_bytes += wire;
  z->win_blocked_ns += ns;
}

int
lb_compress_level (const struct lb_compress *z)
{
  if (z->mode != LB_COMPRESS_AUTO)
    return z->mode;
  return z->rung < 0 ? 0 : lb_compress_ladder[z->rung];
}
