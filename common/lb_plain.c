/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: plain mode's handshake, a mutual challenge-response on
 * the raw socket, both sides.  The bytes are in lb_conn.h.
 */

#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "lb_conn_impl.h"
#include "lb_err.h"
#include "lb_sock.h"

#define LB_PLAIN_NONCE 32
#define LB_PLAIN_MAC 32

static const char lb_plain_kdf_label[] = "livebackup plain-mode key v1";
static const char lb_plain_client_label[] = "livebackup plain v1 client";
static const char lb_plain_server_label[] = "livebackup plain v1 server";

static bool
lb_plain_equal (const uint8_t *a, const uint8_t *b, size_t n)
{
  /* Constant time: how many bytes match must not show in the timing. */
  volatile uint8_t d = 0;
  size_t i;

  for (i = 0; i < n; i++)
    d |= a[i] ^ b[i];
  return d == 0;
}

/* The MAC of one side: HMAC (K, LABEL | cnonce | snonce | idlen | id)
 * where K = HMAC (psk, kdf label).
 */
static int
lb_plain_mac (const struct lb_key *key, const char *label,
              const uint8_t *cnonce, const uint8_t *snonce,
              const char *identity, uint8_t *out)
{
  uint8_t k[32];
  uint8_t idlen = strlen (identity);
  gnutls_hmac_hd_t h;
  int r;

  r = gnutls_hmac_fast (GNUTLS_MAC_SHA256, key->psk, sizeof key->psk,
                        lb_plain_kdf_label, strlen (lb_plain_kdf_label), k);
  if (r < 0)
    return -1;
  r = gnutls_hmac_init (&h, GNUTLS_MAC_SHA256, k, sizeof k);
  gnutls_memset (k, 0, sizeof k);
  if (r < 0)
    return -1;
  if (gnutls_hmac (h, label, strlen (label)) < 0
      || gnutls_hmac (h, cnonce, LB_PLAIN_NONCE) < 0
      || gnutls_hmac (h, snonce, LB_PLAIN_NONCE) < 0
      || gnutls_hmac (h, &idlen, 1) < 0
      || gnutls_hmac (h, identity, idlen) < 0) {
    gnutls_hmac_deinit (h, NULL);
    return -1;
  }
  gnutls_hmac_deinit (h, out);
  return 0;
}

/* Describe a failed read or write (errno says why) for ERR. */
static void
lb_plain_ioerr (const char *who, const char *step, int timeout_ms,
                char *err, size_t errlen)
{
  int e = errno;

  if (e == ETIMEDOUT)
    lb_errf (err, errlen, "%shandshake timed out after %d ms (waiting for "
             "%s)", who, timeout_ms, step);
  else if (e == ECONNRESET || e == EPIPE)
    lb_errf (err, errlen, "%sthe peer closed the connection during the "
             "handshake (at %s)", who, step);
  else
    lb_errf (err, errlen, "%shandshake failed at %s: %s", who, step,
             strerror (e));
  errno = e == EPIPE ? ECONNRESET : e;
}

/* Read a refusal's reason (after the 0x01) and make it printable. */
static void
lb_plain_reason (struct lb_conn *c, char *reason, size_t size)
{
  uint8_t len;
  char buf[256];
  size_t i;

  snprintf (reason, size, "(no reason given)");
  if (lb_sock_read_full (c->fd, &len, 1, c->deadline) == -1
      || lb_sock_read_full (c->fd, buf, len, c->deadline) == -1)
    return;
  for (i = 0; i < len; i++)
    if (buf[i] < 0x20 || buf[i] > 0x7e)
      buf[i] = '?';
  buf[len] = '\0';
  snprintf (reason, size, "%s", buf);
}

/* The client reads the server's answer or verdict (STEP): 0x00 go on,
 * 0x01 refused with a reason; any other byte is reported between BAD
 * and BAD_END.  0 to go on, or -1 with ERR and errno.
 */
static int
lb_plain_status (struct lb_conn *c, const char *step, const char *bad,
                 const char *bad_end, int timeout_ms, char *err,
                 size_t errlen)
{
  char reason[256];
  uint8_t status;

  if (lb_sock_read_full (c->fd, &status, 1, c->deadline) == -1) {
    lb_plain_ioerr ("", step, timeout_ms, err, errlen);
    return -1;
  }
  if (status == 0)
    return 0;
  if (status == 1) {
    lb_plain_reason (c, reason, sizeof reason);
    lb_errf (err, errlen, "server refused: %s", reason);
    errno = EACCES;
    return -1;
  }
  lb_errf (err, errlen, "%s0x%02x%s", bad, status, bad_end);
  errno = EPROTO;
  return -1;
}

static int
lb_plain_refuse (struct lb_conn *c, const char *reason)
{
  uint8_t msg[2 + 255];
  size_t n = strlen (reason);

  if (n > 255)
    n = 255;
  msg[0] = 1;
  msg[1] = n;
  memcpy (msg + 2, reason, n);
  return lb_sock_write_full (c->fd, msg, 2 + n, c->deadline);
}

int
lb_plain_client (struct lb_conn *c, const char *identity,
                 const struct lb_key *key, int timeout_ms, char *err,
                 size_t errlen)
{
  size_t idlen = strlen (identity);
  uint8_t hello[LB_PLAIN_MAGIC_LEN + 1 + LB_CONN_IDENTITY_MAX
                + LB_PLAIN_NONCE];
  uint8_t cnonce[LB_PLAIN_NONCE], snonce[LB_PLAIN_NONCE];
  uint8_t mac[LB_PLAIN_MAC], want[LB_PLAIN_MAC], status;

  if (gnutls_rnd (GNUTLS_RND_RANDOM, cnonce, sizeof cnonce) < 0) {
    lb_errf (err, errlen, "no random numbers");
    errno = EIO;
    return -1;
  }
  memcpy (hello, LB_PLAIN_MAGIC, LB_PLAIN_MAGIC_LEN);
  hello[LB_PLAIN_MAGIC_LEN] = idlen;
  memcpy (hello + LB_PLAIN_MAGIC_LEN + 1, identity, idlen);
  memcpy (hello + LB_PLAIN_MAGIC_LEN + 1 + idlen, cnonce, sizeof cnonce);
  if (lb_sock_write_full (c->fd, hello, LB_PLAIN_MAGIC_LEN + 1 + idlen
                          + sizeof cnonce, c->deadline) == -1) {
    lb_plain_ioerr ("", "sending hello", timeout_ms, err, errlen);
    return -1;
  }

  /* 0x15 here would be a TLS alert: a server that speaks only TLS. */
  if (lb_plain_status (c, "the server's answer", "unexpected answer from "
                       "the server (first byte ", "): not an lbd in plain "
                       "mode?", timeout_ms, err, errlen) == -1)
    return -1;
  if (lb_sock_read_full (c->fd, snonce, sizeof snonce, c->deadline) == -1) {
    lb_plain_ioerr ("", "the server's nonce", timeout_ms, err, errlen);
    return -1;
  }

  if (lb_plain_mac (key, lb_plain_client_label, cnonce, snonce, identity,
                    mac) == -1
      || lb_plain_mac (key, lb_plain_server_label, cnonce, snonce, identity,
                       want) == -1) {
    lb_errf (err, errlen, "HMAC failed");
    errno = EIO;
    return -1;
  }
  if (lb_sock_write_full (c->fd, mac, sizeof mac, c->deadline) == -1) {
    lb_plain_ioerr ("", "sending our proof", timeout_ms, err, errlen);
    return -1;
  }

  if (lb_plain_status (c, "the server's verdict", "unexpected verdict from "
                       "the server (", ")", timeout_ms, err, errlen) == -1)
    return -1;
  if (lb_sock_read_full (c->fd, mac, sizeof mac, c->deadline) == -1) {
    lb_plain_ioerr ("", "the server's proof", timeout_ms, err, errlen);
    return -1;
  }
  if (!lb_plain_equal (mac, want, sizeof mac)) {
    status = 1;
    lb_sock_write_full (c->fd, &status, 1, c->deadline);
    lb_errf (err, errlen, "the server's proof of the key is wrong (wrong "
             "key, or not our server)");
    errno = EACCES;
    return -1;
  }
  status = 0;
  if (lb_sock_write_full (c->fd, &status, 1, c->deadline) == -1) {
    lb_plain_ioerr ("", "confirming", timeout_ms, err, errlen);
    return -1;
  }
  snprintf (c->desc, sizeof c->desc, "plain (authenticated, not encrypted)");
  return 0;
}

/* The server's side after the hello: lookup, nonce, both proofs.  KEY
 * is the caller's, wiped by it.
 */
static int
lb_plain_prove (struct lb_conn *c, const uint8_t *cnonce,
                struct lb_key *key, const char *who, int timeout_ms,
                char *err, size_t errlen)
{
  uint8_t snonce[1 + LB_PLAIN_NONCE], mac[LB_PLAIN_MAC];
  uint8_t want[1 + LB_PLAIN_MAC], status;
  bool encrypt = false;

  if (c->lookup (c->opaque, c->identity, key, &encrypt, &c->client) == -1) {
    c->client = NULL;
    lb_plain_refuse (c, "unknown client name");
    lb_errf (err, errlen, "unknown client name '%s'", c->identity);
    errno = EACCES;
    return -1;
  }
  if (encrypt) {
    lb_plain_refuse (c, "mode mismatch: this client must use TLS");
    lb_errf (err, errlen, "%smode mismatch: it connected in plain mode but "
             "its line requires TLS", who);
    errno = EACCES;
    return -1;
  }

  snonce[0] = 0;
  if (gnutls_rnd (GNUTLS_RND_RANDOM, snonce + 1, LB_PLAIN_NONCE) < 0) {
    lb_errf (err, errlen, "no random numbers");
    errno = EIO;
    return -1;
  }
  if (lb_sock_write_full (c->fd, snonce, sizeof snonce, c->deadline) == -1
      || lb_sock_read_full (c->fd, mac, sizeof mac, c->deadline) == -1) {
    lb_plain_ioerr (who, "the client's proof", timeout_ms, err, errlen);
    return -1;
  }
  if (lb_plain_mac (key, lb_plain_client_label, cnonce, snonce + 1,
                    c->identity, want + 1) == -1) {
    lb_errf (err, errlen, "HMAC failed");
    errno = EIO;
    return -1;
  }
  if (!lb_plain_equal (mac, want + 1, sizeof mac)) {
    lb_plain_refuse (c, "wrong key");
    lb_errf (err, errlen, "%swrong key (its proof did not verify)", who);
    errno = EACCES;
    return -1;
  }
  want[0] = 0;
  if (lb_plain_mac (key, lb_plain_server_label, cnonce, snonce + 1,
                    c->identity, want + 1) == -1) {
    lb_errf (err, errlen, "HMAC failed");
    errno = EIO;
    return -1;
  }
  gnutls_memset (key, 0, sizeof *key);
  if (lb_sock_write_full (c->fd, want, sizeof want, c->deadline) == -1
      || lb_sock_read_full (c->fd, &status, 1, c->deadline) == -1) {
    lb_plain_ioerr (who, "the client's confirmation", timeout_ms, err,
                    errlen);
    return -1;
  }
  if (status != 0) {
    lb_errf (err, errlen, "%sit rejected our proof of the key (wrong key?)",
             who);
    errno = EACCES;
    return -1;
  }
  return 0;
}

int
lb_plain_server (struct lb_conn *c, int timeout_ms, char *err,
                 size_t errlen)
{
  uint8_t magic[LB_PLAIN_MAGIC_LEN], idlen, cnonce[LB_PLAIN_NONCE];
  char who[LB_CONN_IDENTITY_MAX + 16];
  struct lb_key key;
  int r;

  if (lb_sock_read_full (c->fd, magic, sizeof magic, c->deadline) == -1) {
    lb_plain_ioerr ("", "the hello", timeout_ms, err, errlen);
    return -1;
  }
  if (memcmp (magic, LB_PLAIN_MAGIC, sizeof magic) != 0) {
    lb_errf (err, errlen, "garbage from peer (starts with 'L' but is not "
             "plain mode's hello)");
    errno = EPROTO;
    return -1;
  }
  if (lb_sock_read_full (c->fd, &idlen, 1, c->deadline) == -1) {
    lb_plain_ioerr ("", "the hello", timeout_ms, err, errlen);
    return -1;
  }
  if (idlen == 0) {
    lb_plain_refuse (c, "invalid client name");
    lb_errf (err, errlen, "invalid client name from peer (empty)");
    errno = EPROTO;
    return -1;
  }
  if (lb_sock_read_full (c->fd, c->identity, idlen, c->deadline) == -1
      || lb_sock_read_full (c->fd, cnonce, sizeof cnonce,
                            c->deadline) == -1) {
    lb_plain_ioerr ("", "the hello", timeout_ms, err, errlen);
    c->identity[0] = '\0';
    return -1;
  }
  if (!lb_conn_identity_bytes_ok ((uint8_t *) c->identity, idlen)) {
    c->identity[0] = '\0';
    lb_plain_refuse (c, "invalid client name");
    lb_errf (err, errlen, "invalid client name from peer (not 1..255 "
             "printable characters)");
    errno = EPROTO;
    return -1;
  }
  c->identity[idlen] = '\0';
  snprintf (who, sizeof who, "client '%s': ", c->identity);

  r = lb_plain_prove (c, cnonce, &key, who, timeout_ms, err, errlen);
  gnutls_memset (&key, 0, sizeof key);
  if (r == 0)
    snprintf (c->desc, sizeof c->desc,
              "plain (authenticated, not encrypted)");
  return r;
}
