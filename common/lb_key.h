/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: key files.
 *
 * A key file holds any bytes; lb and lbd must hold identical copies.
 * The TLS pre-shared key (and the plain mode's challenge–response key)
 * is the SHA-256 of the whole file, so the file's content never needs a
 * format and its length never shows in the handshake.
 *
 * A key file is a local secret: one that group or others may read or
 * write is refused, as ssh refuses such a private key, unless the caller
 * was told to allow it.
 */

#ifndef LIVEBACKUP_LB_KEY_H
#define LIVEBACKUP_LB_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LB_KEY_PSK_SIZE 32
/* The largest key file we read: a key needs far less, and a bound keeps
 * a wrong path (a disk image, /dev/zero's cousins) from costing much.
 */
#define LB_KEY_FILE_MAX (1024 * 1024)

struct lb_key {
  uint8_t psk[LB_KEY_PSK_SIZE];
};

/* Load the key file PATH into KEY.  Returns 0, or -1 with KEY wiped and
 * a message naming PATH in ERR ("PATH: ..."):
 *   the file cannot be opened or read (errno's text);
 *   it is not a regular file;
 *   its mode lets group or others read or write it, unless
 *   ALLOW_OPEN_MODE ("permissions 0644 are too open; chmod 600 it, or
 *   pass --allow-open-key");
 *   it is empty, or larger than LB_KEY_FILE_MAX.
 * The file's bytes never stay in memory: they are hashed as they are
 * read through one buffer, which is wiped before returning.
 */
extern int lb_key_load (const char *path, bool allow_open_mode,
                        struct lb_key *key, char *err, size_t errlen);

/* Overwrite KEY with zeros in a way the compiler keeps. */
extern void lb_key_wipe (struct lb_key *key);

/* KEY's PSK as 64 lowercase hex digits and a NUL: the form PSK files and
 * gnutls-cli --pskkey take.
 */
extern void lb_key_hex (const struct lb_key *key, char out[65]);

#endif /* LIVEBACKUP_LB_KEY_H */
