/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: key files.  See lb_key.h for the contract. */

#include <config.h>

#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "lb_err.h"
#include "lb_key.h"

/* Close FD (if open), wipe KEY and fail with "PATH: WHAT" in ERR. */
static int
lb_key_fail (int fd, struct lb_key *key, char *err, size_t errlen,
             const char *path, const char *what)
{
  if (fd >= 0)
    close (fd);
  lb_key_wipe (key);
  lb_errf (err, errlen, "%s: %s", path, what);
  return -1;
}

int
lb_key_load (const char *path, bool allow_open_mode, struct lb_key *key,
             char *err, size_t errlen)
{
  /* The file's bytes pass through this buffer only, and it is wiped on
   * every way out below.
   */
  unsigned char buf[4096];
  gnutls_hash_hd_t h;
  struct stat st;
  size_t total = 0;
  char msg[160];
  int fd;

  /* O_NONBLOCK: a FIFO named by mistake must fail the check below, not
   * hang us in open() waiting for a writer.
   */
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd == -1)
    return lb_key_fail (-1, key, err, errlen, path, strerror (errno));
  /* Check the file we opened, not the name: it may change under us. */
  if (fstat (fd, &st) == -1)
    return lb_key_fail (fd, key, err, errlen, path, strerror (errno));
  if (!S_ISREG (st.st_mode))
    return lb_key_fail (fd, key, err, errlen, path, "not a regular file");
  if ((st.st_mode & 077) && !allow_open_mode) {
    snprintf (msg, sizeof msg, "permissions %04o are too open; chmod 600 it, "
              "or pass --allow-open-key", (unsigned) (st.st_mode & 07777));
    return lb_key_fail (fd, key, err, errlen, path, msg);
  }
  if (st.st_size == 0)
    return lb_key_fail (fd, key, err, errlen, path, "is empty");
  if (st.st_size > LB_KEY_FILE_MAX)
    return lb_key_fail (fd, key, err, errlen, path,
                        "is larger than 1 MiB: is it really a key file?");

  if (gnutls_hash_init (&h, GNUTLS_DIG_SHA256) < 0)
    return lb_key_fail (fd, key, err, errlen, path,
                        "GnuTLS cannot compute SHA-256");
  /* Hash what read() gives up to end of file, not st_size bytes: the
   * file may be growing or shrinking while we read.
   */
  for (;;) {
    ssize_t n = read (fd, buf, sizeof buf);
    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1) {
      int e = errno;
      gnutls_hash_deinit (h, key->psk);
      gnutls_memset (buf, 0, sizeof buf);
      return lb_key_fail (fd, key, err, errlen, path, strerror (e));
    }
    if (n == 0)
      break;
    total += n;
    if (total > LB_KEY_FILE_MAX)
      break;
    gnutls_hash (h, buf, n);
  }
  gnutls_memset (buf, 0, sizeof buf);
  gnutls_hash_deinit (h, key->psk);
  if (total == 0)
    return lb_key_fail (fd, key, err, errlen, path, "is empty");
  if (total > LB_KEY_FILE_MAX)
    return lb_key_fail (fd, key, err, errlen, path,
                        "is larger than 1 MiB: is it really a key file?");
  close (fd);
  return 0;
}

void
lb_key_wipe (struct lb_key *key)
{
  gnutls_memset (key, 0, sizeof *key);
}

void
lb_key_hex (const struct lb_key *key, char out[65])
{
  static const char digits[] = "0123456789abcdef";
  size_t i;

  for (i = 0; i < sizeof key->psk; i++) {
    out[2 * i] = digits[key->psk[i] >> 4];
    out[2 * i + 1] = digits[key->psk[i] & 0xf];
  }
  out[2 * sizeof key->psk] = '\0';
}
