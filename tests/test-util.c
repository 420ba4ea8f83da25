/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the utility layer in common/: lb_bytes.h, lb_array,
 * lb_io, lb_time, lb_err, lb_rate.  Each helper replaced copies that had begun
 * to disagree, so each promise in its header is checked here.
 */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lb_array.h"
#include "lb_bytes.h"
#include "lb_err.h"
#include "lb_io.h"
#include "lb_rate.h"
#include "lb_time.h"
#include "tap.h"

static void
test_bytes (void)
{
  uint8_t b[8];
  static uint8_t big[1 << 20];

  lb_put_le16 (b, 0x1234);
  tap_ok (b[0] == 0x34 && b[1] == 0x12 && lb_get_le16 (b) == 0x1234,
          "le16 round trip, low byte first");
  lb_put_le32 (b, 0x89abcdef);
  tap_ok (b[0] == 0xef && b[3] == 0x89 && lb_get_le32 (b) == 0x89abcdef,
          "le32 round trip, no sign extension");
  lb_put_le64 (b, UINT64_C (0x0102030405060708));
  tap_ok (b[0] == 8 && b[7] == 1
          && lb_get_le64 (b) == UINT64_C (0x0102030405060708),
          "le64 round trip");
  lb_put_be16 (b, 0x1234);
  tap_ok (b[0] == 0x12 && b[1] == 0x34 && lb_get_be16 (b) == 0x1234,
          "be16 round trip, high byte first");
  lb_put_be32 (b, 0xfedcba98);
  tap_ok (b[0] == 0xfe && b[3] == 0x98 && lb_get_be32 (b) == 0xfedcba98,
          "be32 round trip, no sign extension");
  lb_put_be64 (b, UINT64_C (0x8877665544332211));
  tap_ok (b[0] == 0x88 && b[7] == 0x11
          && lb_get_be64 (b) == UINT64_C (0x8877665544332211),
          "be64 round trip");

  tap_ok (lb_is_zero (big, 0) && lb_is_zero (big, 1)
          && lb_is_zero (big, sizeof big), "zero buffers are zero");
  big[sizeof big - 1] = 1;
  tap_ok (!lb_is_zero (big, sizeof big) && lb_is_zero (big, sizeof big - 1),
          "a last byte set is seen, and not past the length");
  big[sizeof big - 1] = 0;
  big[0] = 0x80;
  tap_ok (!lb_is_zero (big, sizeof big) && !lb_is_zero (big, 1),
          "a first byte set is seen");
  big[0] = 0;
  big[4097] = 2;
  tap_ok (!lb_is_zero (big, sizeof big) && lb_is_zero (big, 4097),
          "a byte in the middle is seen");
  big[4097] = 0;

  tap_ok (!lb_is_pow2 (0) && lb_is_pow2 (1) && lb_is_pow2 (4096)
          && !lb_is_pow2 (4097) && !lb_is_pow2 (6)
          && lb_is_pow2 (UINT64_C (1) << 63)
          && !lb_is_pow2 (UINT64_MAX), "powers of two");
}

static void
test_array (void)
{
  uint64_t *a = NULL;
  size_t cap = 0, i;
  int ok = 1, r;

  tap_ok (lb_array_grow (&a, &cap, 0, sizeof *a) == 0 && a == NULL
          && cap == 0, "growing to nothing allocates nothing");
  for (i = 0; i < 10000; i++) {
    if (lb_array_grow (&a, &cap, i + 1, sizeof *a) == -1 || cap < i + 1) {
      ok = 0;
      break;
    }
    a[i] = i * 3;
  }
  for (i = 0; ok && i < 10000; i++)
    ok = a[i] == i * 3;
  tap_ok (ok, "10000 appends keep every element");
  tap_ok (cap >= 10000 && cap < 2 * 16384, "capacity doubles (%zu)", cap);
  r = lb_array_grow (&a, &cap, 50000, sizeof *a);
  tap_ok (r == 0 && cap >= 50000 && a[9999] == 9999 * 3,
          "a jump past double takes the need");
  {
    size_t oldcap = cap;
    uint64_t *olda = a;
    errno = 0;
    r = lb_array_grow (&a, &cap, SIZE_MAX / 4, sizeof *a);
    tap_ok (r == -1 && errno == ENOMEM && a == olda && cap == oldcap,
            "an overflowing size fails with ENOMEM, array unchanged");
  }
  free (a);
}

static void
test_io (void)
{
  char path[] = "/tmp/test-util.XXXXXX";
  int fd = mkstemp (path);
  static uint8_t buf[3 << 20], back[3 << 20];
  size_t i;

  tap_ok (fd >= 0, "temp file");
  if (fd < 0)
    return;
  unlink (path);
  for (i = 0; i < sizeof buf; i++)
    buf[i] = i * 7 + 1;
  tap_ok (lb_pwrite_all (fd, buf, sizeof buf, 4096) == 0,
          "pwrite_all of 3 MiB at an offset");
  tap_ok (lb_pread_all (fd, back, sizeof back, 4096, LB_EOF_FAIL) == 0
          && memcmp (buf, back, sizeof buf) == 0,
          "pread_all reads it back");
  tap_ok (lb_pread_all (fd, back, 4096, 0, LB_EOF_FAIL) == 0
          && lb_is_zero (back, 4096), "the hole before it reads as zeroes");
  memset (back, 0xff, 8192);
  errno = 0;
  tap_ok (lb_pread_all (fd, back, 8192, 4096 + sizeof buf - 4096,
                        LB_EOF_FAIL) == -1 && errno == ENODATA,
          "LB_EOF_FAIL: a read across the end fails with ENODATA");
  memset (back, 0xff, 8192);
  tap_ok (lb_pread_all (fd, back, 8192, 4096 + sizeof buf - 4096,
                        LB_EOF_ZERO) == 0
          && memcmp (back, buf + sizeof buf - 4096, 4096) == 0
          && lb_is_zero (back + 4096, 4096),
          "LB_EOF_ZERO: the data, then zeroes past the end");
  tap_ok (lb_pread_all (fd, back, 100, UINT64_C (1) << 40, LB_EOF_ZERO) == 0
          && lb_is_zero (back, 100), "LB_EOF_ZERO: wholly past the end");
  close (fd);
  errno = 0;
  tap_ok (lb_pread_all (fd, back, 1, 0, LB_EOF_ZERO) == -1 && errno == EBADF
          && lb_pwrite_all (fd, buf, 1, 0) == -1 && errno == EBADF,
          "errors from the system call come back with errno");
}

static void
test_rate (void)
{
  struct lb_rate r = { .rate = 2u << 20 };
  const uint64_t s = UINT64_C(1000000000);
  uint64_t v = 7, t, w, total = 0;

#define RATE(str) lb_rate_parse (str, strlen (str), &v)
  tap_ok (RATE ("2M") == 0 && v == 2u << 20, "2M is 2 MiB/s");
  tap_ok (RATE ("500k/s") == 0 && v == 500u << 10, "500k/s");
  tap_ok (RATE ("1G") == 0 && v == UINT64_C(1) << 30, "1G");
  tap_ok (RATE ("1048576") == 0 && v == 1048576, "a plain number");
  tap_ok (RATE ("0") == 0 && v == 0, "0: no limit");
  tap_ok (RATE ("") == -1 && RATE ("M") == -1 && RATE ("2X") == -1
          && RATE ("2M/") == -1 && RATE ("-1") == -1 && RATE ("2 M") == -1,
          "not a rate: refused");
  tap_ok (RATE ("99999999999999999999") == -1 && RATE ("17179869184G") == -1,
          "an overflow is refused");
  tap_ok (lb_rate_parse ("2M trailing", 2, &v) == 0 && v == 2u << 20,
          "only LEN bytes are read");
#undef RATE
  /* 16 MiB at 2 MiB/s, each MiB waited for: 8 s in all, less the burst
   * of LB_RATE_BURST_MS a fresh (idle) limit allows.
   */
  for (t = 10 * s, w = 0; total < (16u << 20); total += 1u << 20) {
    w = lb_rate_take (&r, 1u << 20, t);
    t += w;
  }
  tap_ok (t - 10 * s >= 7900 * (s / 1000) - s / 1000
          && t - 10 * s <= 7900 * (s / 1000) + s / 1000,
          "16 MiB at 2 MiB/s take 8 s less the 0.1 s burst of waits (%.3f s)",
          (double) (t - 10 * s) / s);
  /* After a long pause, a burst of 100 ms is allowed, no more. */
  t += 60 * s;
  w = lb_rate_take (&r, 100u << 10, t);
  tap_ok (w == 0, "after a pause, 100 KiB go at once (within the burst)");
  w = lb_rate_take (&r, 2u << 20, t);
  tap_ok (w > s / 2 && w <= s, "then 2 MiB more wait about 0.9 s (%.3f)",
          (double) w / s);
  r.rate = 0;
  tap_ok (lb_rate_take (&r, UINT64_MAX, t) == 0, "no limit: no wait");
}

static void
test_time (void)
{
  char b[LB_TIME_LEN];

  tap_ok (strcmp (lb_time_iso (1796146478, b), "2026-12-01T17:34:38Z") == 0,
          "ISO 8601 in UTC: %s", b);
  tap_ok (strcmp (lb_time_iso (0, b), "") == 0, "ISO of 0 is empty");
  tap_ok (strcmp (lb_time_local (0, b), "never") == 0, "local of 0: never");
  setenv ("TZ", "UTC", 1);
  tzset ();
  tap_ok (strcmp (lb_time_local (1796146478, b), "2026-12-01 17:34:38") == 0,
          "local time: %s", b);
  {
    uint64_t d = 1;
    tap_ok (lb_duration_parse ("90", 2, &d) == 0 && d == 90
            && lb_duration_parse ("30m", 3, &d) == 0 && d == 1800
            && lb_duration_parse ("24h", 3, &d) == 0 && d == 86400
            && lb_duration_parse ("7d", 2, &d) == 0 && d == 7 * 86400
            && lb_duration_parse ("2w", 2, &d) == 0 && d == 14 * 86400
            && lb_duration_parse ("5s", 2, &d) == 0 && d == 5
            && lb_duration_parse ("0", 1, &d) == 0 && d == 0,
            "durations: seconds, and m h d w s suffixes");
    tap_ok (lb_duration_parse ("", 0, &d) == -1
            && lb_duration_parse ("h", 1, &d) == -1
            && lb_duration_parse ("7x", 2, &d) == -1
            && lb_duration_parse ("7dd", 3, &d) == -1
            && lb_duration_parse ("-1", 2, &d) == -1
            && lb_duration_parse ("99999999999999999999", 20, &d) == -1
            && lb_duration_parse ("9999999999999999w", 17, &d) == -1,
            "bad durations refused (empty, no number, unknown suffix, "
            "sign, overflow)");
  }
  tap_ok (strcmp (lb_duration (0, b), "0 s") == 0, "0 s");
  tap_ok (strcmp (lb_duration (59, b), "59 s") == 0, "59 s");
  tap_ok (strcmp (lb_duration (65, b), "1 min 5 s") == 0, "%s", b);
  tap_ok (strcmp (lb_duration (120, b), "2 min") == 0, "%s", b);
  tap_ok (strcmp (lb_duration (3 * 3600 + 20 * 60 + 7, b), "3 h 20 min") == 0,
          "%s", b);
  tap_ok (strcmp (lb_duration (2 * 86400 + 4 * 3600, b), "2 d 4 h") == 0,
          "%s", b);
  tap_ok (strlen (lb_duration (UINT64_MAX, b)) < LB_TIME_LEN,
          "the longest duration fits: %s", b);
}

static void
test_err (void)
{
  char e[16];

  errno = EPIPE;
  lb_errf (e, sizeof e, "%s:%d: %s", "lbd.conf", 7, "a long message");
  tap_ok (strcmp (e, "lbd.conf:7: a l") == 0 && errno == EPIPE,
          "lb_errf cuts short, terminates, keeps errno");
  lb_errf (NULL, 0, "nothing %d", 1);
  lb_errf (e, 0, "nothing %d", 2);
  tap_ok (strcmp (e, "lbd.conf:7: a l") == 0, "NULL or 0 bytes: untouched");
}

int
main (void)
{
  test_bytes ();
  test_array ();
  test_io ();
  test_time ();
  test_rate ();
  test_err ();
  return tap_done ();
}
