/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: is DEVICE the partition the unit serves?  See device.h. */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <inttypes.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <linux/fs.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "device.h"
#include "lb_bytes.h"
#include "lb_err.h"

/* DEVICE's size: a regular file's length or a block device's. */
static int
lb_device_size (int fd, const struct stat *st, uint64_t *size)
{
  if (S_ISREG (st->st_mode)) {
    *size = st->st_size;
    return 0;
  }
  return ioctl (fd, BLKGETSIZE64, size);
}

enum lb_device_match
lb_device_match (int fd, const char *device, unsigned unit,
                 const struct lw_header *h, char *err, size_t errlen)
{
  struct stat st;
  uint64_t size;
  bool blk;

  if (fstat (fd, &st) == -1) {
    lb_errf (err, errlen, "DEVICE %s: %s", device, strerror (errno));
    return LB_DEVICE_OTHER;
  }
  if (!S_ISREG (st.st_mode) && !S_ISBLK (st.st_mode)) {
    lb_errf (err, errlen, "DEVICE %s: neither a regular file nor a block "
             "device", device);
    return LB_DEVICE_OTHER;
  }
  if (lb_device_size (fd, &st, &size) == -1) {
    lb_errf (err, errlen, "DEVICE %s: size: %s", device, strerror (errno));
    return LB_DEVICE_OTHER;
  }
  blk = S_ISBLK (st.st_mode);
  if (size != h->dev_size) {
    lb_errf (err, errlen, "DEVICE %s is %" PRIu64 " bytes but unit %u "
             "serves %" PRIu64 " (%s): not the partition the unit serves",
             device, size, unit, h->dev_size,
             h->served_path[0] ? h->served_path : "a file the filter does "
             "not name");
    return LB_DEVICE_OTHER;
  }
  switch (h->served_kind) {
  case LW_SERVED_FILE:
    if (!blk && st.st_dev == h->served_dev && st.st_ino == h->served_ino)
      return LB_DEVICE_SAME;
    break;
  case LW_SERVED_BLOCK:
    if (blk && st.st_rdev == h->served_rdev)
      return LB_DEVICE_SAME;
    break;
  default:
    lb_errf (err, errlen, "unit %u's filter does not say which file it "
             "serves (not nbdkit's file plugin with one file=?): only "
             "DEVICE %s's size (%" PRIu64 " bytes) could be checked",
             unit, device, size);
    return LB_DEVICE_SIZE_ONLY;
  }
  if (h->served_kind == LW_SERVED_BLOCK && blk)
    lb_errf (err, errlen, "DEVICE %s is block device %u:%u but unit %u "
             "serves the block device %u:%u (%s): not the partition the "
             "unit serves", device, major (st.st_rdev), minor (st.st_rdev),
             unit, major (h->served_rdev), minor (h->served_rdev),
             h->served_path);
  else if (h->served_kind == LW_SERVED_BLOCK)
    lb_errf (err, errlen, "DEVICE %s is a regular file but unit %u serves "
             "the block device %u:%u (%s): not the partition the unit "
             "serves", device, unit, major (h->served_rdev),
             minor (h->served_rdev), h->served_path);
  else
    lb_errf (err, errlen, "DEVICE %s is %s (device %u:%u, inode %" PRIu64
             ") but unit %u serves the file %s (device %u:%u, inode %"
             PRIu64 "): not the partition the unit serves", device,
             blk ? "a block device" : "another file", major (st.st_dev),
             minor (st.st_dev), (uint64_t) st.st_ino, unit, h->served_path,
             major (h->served_dev), minor (h->served_dev), h->served_ino);
  return LB_DEVICE_OTHER;
}

/* Undo mountinfo's octal escapes (\040 for a blank) in place. */
static void
lb_device_unescape (char *s)
{
  char *o = s;

  while (*s) {
    if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0'
        && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
      *o++ = (char) ((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
      s += 4;
    }
    else
      *o++ = *s++;
  }
  *o = '\0';
}

bool
lb_device_mounted (int fd, char *where, size_t wherelen)
{
  struct stat st, src;
  char *line = NULL, *sep;
  size_t cap = 0;
  bool found = false;
  FILE *fp;

  if (fstat (fd, &st) == -1 || !S_ISBLK (st.st_mode))
    return false;
  fp = fopen ("/proc/self/mountinfo", "re");
  if (fp == NULL)
    return false;
  /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - TYPE SOURCE ... */
  while (!found && getline (&line, &cap, fp) != -1) {
    unsigned maj, min;
    char mnt[4096], source[4096];

    if (sscanf (line, "%*u %*u %u:%u %*s %4095s", &maj, &min, mnt) != 3
        || (sep = strstr (line, " - ")) == NULL
        || sscanf (sep, " - %*s %4095s", source) != 1)
      continue;
    lb_device_unescape (source);
    /* A file system that reports another device number (btrfs) still
     * names its source.
     */
    if (makedev (maj, min) == st.st_rdev
        || (source[0] == '/' && stat (source, &src) == 0
            && S_ISBLK (src.st_mode) && src.st_rdev == st.st_rdev)) {
      lb_device_unescape (mnt);
      snprintf (where, wherelen, "%s", mnt);
      found = true;
    }
  }
  free (line);
  fclose (fp);
  return found;
}

uint64_t
lb_device_partition_id (const struct lw_header *h, unsigned unit,
                        char *from, size_t fromlen)
{
  char host[256] = "", what[LW_SERVED_PATH_LEN + 32];
  char text[sizeof host + sizeof what + 64];
  const char *kind = "machine-id";
  uint8_t digest[32];
  uint64_t id;
  FILE *fp;

  /* This host: its machine-id(5), else its name. */
  fp = fopen ("/etc/machine-id", "re");
  if (fp) {
    if (fgets (host, sizeof host, fp) == NULL)
      host[0] = '\0';
    host[strcspn (host, "\n")] = '\0';
    fclose (fp);
  }
  if (host[0] == '\0') {
    kind = "hostname";
    if (gethostname (host, sizeof host - 1) == -1)
      snprintf (host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
  }
  /* This partition on it: the file the unit serves, else the unit. */
  if (h->served_kind != LW_SERVED_UNKNOWN)
    snprintf (what, sizeof what, "path %s", h->served_path);
  else
    snprintf (what, sizeof what, "unit %u", unit);
  /* doc/protocol.md, "Partition identity", says this text; keep both. */
  snprintf (text, sizeof text, "livebackup partition 1\n%s %s\n%s\n", kind,
            host, what);
  if (gnutls_hash_fast (GNUTLS_DIG_SHA256, text, strlen (text), digest) != 0)
    memset (digest, 0, sizeof digest);
  id = lb_get_le64 (digest);
  snprintf (from, fromlen, "%s %s, %s", kind, host, what);
  return id ? id : 1;
}
