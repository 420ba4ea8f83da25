/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: the transport's TLS mode (TLS 1.3 with an external PSK,
 * through GnuTLS): the session's setup and end, both handshakes and
 * their alerts, the PSK callbacks.  The records once it is up are
 * lb_tls_io.c's.  The contract is lb_conn.h's; lb_conn_impl.h has the
 * state.
 */

#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <poll.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "lb_conn_impl.h"
#include "lb_err.h"
#include "lb_sock.h"

/* ---- handshakes --------------------------------------------------------- */

/* Run the handshake to its end within C's deadline.  GNUTLS error
 * codes; GNUTLS_E_TIMEDOUT when the deadline passed.
 */
static int
lb_tls_handshake (struct lb_conn *c)
{
  struct lb_tls *t = &c->tls;
  int r;

  c->pull_dontwait = t->push_dontwait = true;
  for (;;) {
    r = gnutls_handshake (t->session);
    if (r == 0)
      break;
    if (lb_sock_left (c->deadline) == 0) {
      r = GNUTLS_E_TIMEDOUT;
      break;
    }
    if (r == GNUTLS_E_AGAIN) {
      /* Bytes in our read-ahead are invisible to poll. */
      if (t->rpos < t->rlen)
        continue;
      if (lb_sock_wait (c->fd, gnutls_record_get_direction (t->session)
                        ? POLLOUT : POLLIN, c->deadline) == -1) {
        r = errno == ETIMEDOUT ? GNUTLS_E_TIMEDOUT : GNUTLS_E_PULL_ERROR;
        break;
      }
      continue;
    }
    /* Warning alerts and interrupts: go on, still under the deadline. */
    if (gnutls_error_is_fatal (r))
      break;
  }
  c->pull_dontwait = t->push_dontwait = false;
  return r;
}

/* Best effort, never blocking: tell the peer why we give up. */
static void
lb_tls_alert (struct lb_conn *c, gnutls_alert_description_t alert)
{
  c->tls.push_dontwait = true;
  gnutls_alert_send (c->tls.session, GNUTLS_AL_FATAL, alert);
  c->tls.push_dontwait = false;
}

/* After a handshake succeeded: is it what we asked for?  GnuTLS would
 * not negotiate anything else with our priorities; this check keeps it
 * so if the priorities or GnuTLS's defaults ever change.  NULL if so
 * (C->desc then names what was negotiated), else why not.
 */
static const char *
lb_tls_check (struct lb_conn *c)
{
  gnutls_session_t s = c->tls.session;
  gnutls_kx_algorithm_t kx = gnutls_kx_get (s);
  const char *group = gnutls_group_get_name (gnutls_group_get (s));

  if (gnutls_protocol_get_version (s) != GNUTLS_TLS1_3)
    return "not TLS 1.3";
  if (gnutls_auth_get_type (s) != GNUTLS_CRD_PSK)
    return "not authenticated by the pre-shared key";
  if (kx != GNUTLS_KX_ECDHE_PSK && kx != GNUTLS_KX_DHE_PSK)
    return "no ephemeral key exchange (psk_ke without DHE)";
  snprintf (c->desc, sizeof c->desc, "TLS1.3 %s %s %s",
            gnutls_kx_get_name (kx), group ? group : "?",
            gnutls_cipher_get_name (gnutls_cipher_get (s)));
  return NULL;
}

/* The end of both handshakes: a peer that negotiated anything but what
 * we allow gets insufficient_security.  0, or -1 with ERR and errno.
 */
static int
lb_tls_verify (struct lb_conn *c, const char *who, char *err,
               size_t errlen)
{
  const char *why = lb_tls_check (c);

  if (why == NULL)
    return 0;
  lb_tls_alert (c, GNUTLS_A_INSUFFICIENT_SECURITY);
  lb_errf (err, errlen, "%sTLS handshake refused: %s", who, why);
  errno = EPROTO;
  return -1;
}

/* Why a client's handshake failed, as a hint to the user. */
static void
lb_tls_client_err (struct lb_conn *c, int r, const char *identity,
                   int timeout_ms, char *err, size_t errlen)
{
  gnutls_alert_description_t a;

  if (r == GNUTLS_E_TIMEDOUT) {
    lb_errf (err, errlen, "TLS handshake timed out after %d ms", timeout_ms);
    errno = ETIMEDOUT;
    return;
  }
  if (r == GNUTLS_E_FATAL_ALERT_RECEIVED) {
    a = gnutls_alert_get (c->tls.session);
    errno = EACCES;
    switch (a) {
    case GNUTLS_A_UNKNOWN_PSK_IDENTITY:
      lb_errf (err, errlen, "server refused: unknown client name '%s'",
               identity);
      return;
    case GNUTLS_A_ACCESS_DENIED:
      lb_errf (err, errlen, "server refused: mode mismatch: the server "
               "expects plain mode for this client");
      return;
    case GNUTLS_A_DECRYPT_ERROR:
      /* Only probably: a server may answer an unknown name so too, that
       * a peer without a key cannot tell which names exist (lbd does).
       */
    case GNUTLS_A_BAD_RECORD_MAC:
    case GNUTLS_A_ILLEGAL_PARAMETER:
      lb_errf (err, errlen, "TLS handshake failed: server sent alert '%s' "
               "(wrong key?)", gnutls_alert_get_name (a));
      return;
    default:
      lb_errf (err, errlen, "TLS handshake failed: server sent alert '%s'",
               gnutls_alert_get_name (a));
      errno = EPROTO;
      return;
    }
  }
  if (r == GNUTLS_E_PREMATURE_TERMINATION || r == GNUTLS_E_PULL_ERROR
      || r == GNUTLS_E_PUSH_ERROR) {
    lb_errf (err, errlen, "TLS handshake failed: the server closed the "
             "connection (%s)", gnutls_strerror (r));
    errno = ECONNRESET;
    return;
  }
  lb_errf (err, errlen, "TLS handshake failed: %s%s", gnutls_strerror (r),
           r == GNUTLS_E_DECRYPTION_FAILED ? " (wrong key?)" : "");
  errno = r == GNUTLS_E_DECRYPTION_FAILED ? EACCES : EPROTO;
}

/* GnuTLS asks the client for its identity and key (both gnutls_malloc'd,
 * GnuTLS frees them).
 */
static int
lb_tls_client_cb (gnutls_session_t session, gnutls_datum_t *username,
                  gnutls_datum_t *key)
{
  struct lb_conn *c = gnutls_session_get_ptr (session);
  struct lb_tls *t = &c->tls;
  size_t n;

  if (t->ckey == NULL)
    return -1;
  n = strlen (t->cidentity);
  username->data = gnutls_malloc (n + 1);
  key->data = gnutls_malloc (sizeof t->ckey->psk);
  if (username->data == NULL || key->data == NULL) {
    gnutls_free (username->data);
    gnutls_free (key->data);
    username->data = key->data = NULL;
    return -1;
  }
  memcpy (username->data, t->cidentity, n + 1);
  username->size = n;
  memcpy (key->data, t->ckey->psk, sizeof t->ckey->psk);
  key->size = sizeof t->ckey->psk;
  return 0;
}

/* GnuTLS asks the server for the key of the identity the client offers.
 * Returning -1 aborts the handshake (GNUTLS_E_SRP_PWD_ERROR, whatever
 * the name says); we keep why and choose the alert.
 */
static int
lb_tls_psk_cb (gnutls_session_t session, const gnutls_datum_t *username,
               gnutls_datum_t *key)
{
  struct lb_conn *c = gnutls_session_get_ptr (session);
  struct lb_tls *t = &c->tls;
  struct lb_key k;
  bool encrypt = true;

  c->identity[0] = '\0';
  c->client = NULL;
  t->key_given = false;
  if (!lb_conn_identity_bytes_ok (username->data, username->size)) {
    t->refused = true;
    t->refusal_alert = GNUTLS_A_UNKNOWN_PSK_IDENTITY;
    snprintf (t->refusal, sizeof t->refusal, "invalid client name from "
              "peer (not 1..255 printable characters)");
    return -1;
  }
  memcpy (c->identity, username->data, username->size);
  c->identity[username->size] = '\0';

  if (c->lookup (c->opaque, c->identity, &k, &encrypt, &c->client) == -1) {
    gnutls_memset (&k, 0, sizeof k);
    c->client = NULL;
    t->refused = true;
    t->refusal_alert = GNUTLS_A_UNKNOWN_PSK_IDENTITY;
    snprintf (t->refusal, sizeof t->refusal, "unknown client name '%s'",
              c->identity);
    return -1;
  }
  if (!encrypt) {
    gnutls_memset (&k, 0, sizeof k);
    t->refused = true;
    t->refusal_alert = GNUTLS_A_ACCESS_DENIED;
    snprintf (t->refusal, sizeof t->refusal, "client '%s': mode mismatch: "
              "it connected with TLS but its line says encrypt=no",
              c->identity);
    return -1;
  }
  /* GnuTLS wipes and frees it after use. */
  key->data = gnutls_malloc (sizeof k.psk);
  if (key->data == NULL) {
    gnutls_memset (&k, 0, sizeof k);
    return -1;
  }
  memcpy (key->data, k.psk, sizeof k.psk);
  key->size = sizeof k.psk;
  gnutls_memset (&k, 0, sizeof k);
  t->refused = false;
  t->key_given = true;
  return 0;
}

/* The session for C in the role SERVER or not, with our priorities,
 * our transport (lb_tls_io.c) and PSK credentials, which hold no key: it
 * goes through the callbacks.  0, or -1 with ERR and errno.
 */
static int
lb_tls_setup (struct lb_conn *c, bool server, char *err, size_t errlen)
{
  struct lb_tls *t = &c->tls;
  const char *where;
  int r;

  r = gnutls_init (&t->session, (server ? GNUTLS_SERVER : GNUTLS_CLIENT)
                   | GNUTLS_NO_TICKETS | GNUTLS_NO_SIGNAL);
  if (r < 0) {
    t->session = NULL;
    goto fail;
  }
  r = gnutls_priority_set_direct (t->session, LB_CONN_PRIORITY, &where);
  if (r < 0) {
    lb_errf (err, errlen, "TLS priority string rejected at '%s': %s",
             where, gnutls_strerror (r));
    errno = EINVAL;
    return -1;
  }
  gnutls_session_set_ptr (t->session, c);
  if (lb_tls_io_install (c, err, errlen) == -1)
    return -1;
  if (server) {
    r = gnutls_psk_allocate_server_credentials (&t->scred);
    if (r < 0) {
      t->scred = NULL;
      goto fail;
    }
    gnutls_psk_set_server_credentials_function2 (t->scred, lb_tls_psk_cb);
    r = gnutls_credentials_set (t->session, GNUTLS_CRD_PSK, t->scred);
  }
  else {
    r = gnutls_psk_allocate_client_credentials (&t->ccred);
    if (r < 0) {
      t->ccred = NULL;
      goto fail;
    }
    /* Not gnutls_psk_set_client_credentials: GnuTLS 3.7 frees the key
     * kept there without wiping it.  A key handed over by the callback
     * is wiped after use.
     */
    gnutls_psk_set_client_credentials_function2 (t->ccred,
                                                 lb_tls_client_cb);
    r = gnutls_credentials_set (t->session, GNUTLS_CRD_PSK, t->ccred);
  }
  if (r == 0)
    return 0;
 fail:
  lb_errf (err, errlen, "TLS setup failed: %s", gnutls_strerror (r));
  errno = ENOMEM;
  return -1;
}

int
lb_tls_client (struct lb_conn *c, const char *identity,
               const struct lb_key *key, int timeout_ms, char *err,
               size_t errlen)
{
  struct lb_tls *t = &c->tls;
  int r;

  if (lb_tls_setup (c, false, err, errlen) == -1)
    return -1;
  t->cidentity = identity;
  t->ckey = key;
  r = lb_tls_handshake (c);
  t->cidentity = NULL;
  t->ckey = NULL;
  if (r < 0) {
    lb_tls_client_err (c, r, identity, timeout_ms, err, errlen);
    return -1;
  }
  return lb_tls_verify (c, "", err, errlen);
}

/* Why a server's handshake failed (R), with the alert the client gets. */
static void
lb_tls_server_err (struct lb_conn *c, int r, const char *who,
                   int timeout_ms, char *err, size_t errlen)
{
  struct lb_tls *t = &c->tls;

  if (t->refused) {
    lb_tls_alert (c, t->refusal_alert);
    lb_errf (err, errlen, "%s", t->refusal);
    errno = EACCES;
  }
  else if (r == GNUTLS_E_TIMEDOUT) {
    lb_errf (err, errlen, "%sTLS handshake timed out after %d ms", who,
             timeout_ms);
    errno = ETIMEDOUT;
  }
  else if (r == GNUTLS_E_PREMATURE_TERMINATION || r == GNUTLS_E_PULL_ERROR
           || r == GNUTLS_E_PUSH_ERROR) {
    lb_errf (err, errlen, "%sTLS handshake failed: the peer closed the "
             "connection (%s)", who, gnutls_strerror (r));
    errno = ECONNRESET;
  }
  else if (t->key_given && (r == GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER
                            || r == GNUTLS_E_DECRYPTION_FAILED)) {
    /* We had the client's key and its PSK binder did not verify
     * (GnuTLS 3.7 says "illegal parameter").  RFC 8446's alert for that
     * is decrypt_error.
     */
    lb_tls_alert (c, GNUTLS_A_DECRYPT_ERROR);
    lb_errf (err, errlen, "%swrong key (its TLS PSK binder did not "
             "verify)", who);
    errno = EACCES;
  }
  else {
    if (r != GNUTLS_E_FATAL_ALERT_RECEIVED)
      lb_tls_alert (c, gnutls_error_to_alert (r, NULL));
    lb_errf (err, errlen, "%sTLS handshake failed: %s%s%s%s", who,
             gnutls_strerror (r),
             r == GNUTLS_E_FATAL_ALERT_RECEIVED ? " " : "",
             r == GNUTLS_E_FATAL_ALERT_RECEIVED
             ? gnutls_alert_get_name (gnutls_alert_get (t->session)) : "",
             /* What GnuTLS says when the client offers no PSK mode we
              * take, e.g. psk_ke alone.
              */
             r == GNUTLS_E_INSUFFICIENT_CREDENTIALS
             || r == GNUTLS_E_NO_CIPHER_SUITES
             ? " (the client offered no PSK with (EC)DHE)" : "");
    errno = EPROTO;
  }
}

int
lb_tls_server (struct lb_conn *c, int timeout_ms, char *err, size_t errlen)
{
  char who[LB_CONN_IDENTITY_MAX + 16];
  int r;

  if (lb_tls_setup (c, true, err, errlen) == -1)
    return -1;
  r = lb_tls_handshake (c);
  who[0] = '\0';
  if (c->identity[0])
    snprintf (who, sizeof who, "client '%s': ", c->identity);
  if (r < 0) {
    lb_tls_server_err (c, r, who, timeout_ms, err, errlen);
    return -1;
  }
  return lb_tls_verify (c, who, err, errlen);
}

void
lb_tls_bye (struct lb_conn *c)
{
  /* close_notify lets the peer tell an orderly end from a cut; but a
   * peer that does not read must not hold us here.
   */
  c->tls.push_dontwait = true;
  gnutls_bye (c->tls.session, GNUTLS_SHUT_WR);
}

void
lb_tls_free (struct lb_conn *c)
{
  struct lb_tls *t = &c->tls;

  if (t->session)
    gnutls_deinit (t->session);
  /* The credentials hold no key: it went through the callbacks. */
  if (t->ccred)
    gnutls_psk_free_client_credentials (t->ccred);
  if (t->scred)
    gnutls_psk_free_server_credentials (t->scred);
  free (t->rbuf);
  free (t->wbuf);
  t->session = NULL;
  t->ccred = NULL;
  t->scred = NULL;
  t->rbuf = t->wbuf = NULL;
  t->rpos = t->rlen = t->wlen = 0;
}
