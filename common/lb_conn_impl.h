/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: the transport's insides, shared by its files and by no
 * one else.
 *
 *   lb_conn.c   the connection object; the handshakes' dispatch by mode;
 *               send, receive, close for every mode
 *   lb_plain.c  plain mode's challenge-response handshake, both sides
 *   lb_tls.c    GnuTLS: the session, handshakes, alerts, PSK callbacks
 *   lb_tls_io.c TLS records on the socket: the pull and push functions,
 *               the read-ahead and write-combining buffers, data
 *   lb_sock.c   the socket below them (public: lb_sock.h)
 *
 * The contract is lb_conn.h's.
 */

#ifndef LIVEBACKUP_LB_CONN_IMPL_H
#define LIVEBACKUP_LB_CONN_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <gnutls/gnutls.h>

#include "lb_conn.h"

/* TLS 1.3 never carries more plaintext than this in one record. */
#define LB_TLS_RECORD 16384

/* Plain mode's hello starts so; its first byte tells it from TLS. */
#define LB_PLAIN_MAGIC "LBPLAIN1"
#define LB_PLAIN_MAGIC_LEN 8

enum lb_conn_mode {
  LB_CONN_RAW,          /* bytes as they are, nobody authenticated */
  LB_CONN_PLAIN,        /* authenticated by plain mode, not encrypted */
  LB_CONN_TLS,          /* TLS 1.3 PSK */
  LB_CONN_FAILED,       /* a handshake on it failed: only closing is left */
};

/* TLS mode's state, touched only by lb_tls.c and lb_tls_io.c. */
struct lb_tls {
  gnutls_session_t session;
  gnutls_psk_client_credentials_t ccred;
  gnutls_psk_server_credentials_t scred;

  /* The push function uses MSG_DONTWAIT while this is set (handshakes,
   * alerts, the goodbye), so that they never block outside our poll.
   * The sending thread's only.
   */
  bool push_dontwait;
  /* The bound of the send in progress (0 none), and the errno of the
   * push that failed, which GnuTLS reports only as "push error".  The
   * sending thread's.
   */
  int64_t send_deadline;
  int push_errno;

  /* Bytes read ahead from the socket, not yet taken by GnuTLS
   * (receiving thread only).
   */
  uint8_t *rbuf;
  size_t rpos, rlen;
  /* Records gathered while the sending thread is inside a send of ours
   * (see lb_tls_io_batching in lb_tls_io.c), written out when full and
   * at its end.  Both buffers are allocated by lb_tls_io_install, freed
   * by lb_tls_free.
   */
  uint8_t *wbuf;
  size_t wlen;

  /* Client handshake: what the credentials callback hands GnuTLS. */
  const char *cidentity;
  const struct lb_key *ckey;

  /* Server handshake, filled by the PSK callback. */
  bool refused;                 /* the callback refused: alert chosen */
  bool key_given;               /* the callback gave a key */
  gnutls_alert_description_t refusal_alert;
  char refusal[LB_CONN_IDENTITY_MAX + 200];

  /* lb_tls_io_sendv gathers small pieces into one record here. */
  uint8_t stage[LB_TLS_RECORD];
};

struct lb_conn {
  int fd;
  enum lb_conn_mode mode;

  /* Receives use MSG_DONTWAIT while this is set, so that a handshake or
   * a bounded receive never blocks outside our poll (the receiving
   * thread's only).
   */
  bool pull_dontwait;
  int64_t deadline;             /* of the handshake; 0 = none */

  /* Server handshake (both modes): the caller's lookup, and what it and
   * the peer said.
   */
  lb_conn_lookup lookup;
  void *opaque;
  void *client;
  char identity[LB_CONN_IDENTITY_MAX + 1];

  char desc[128];
  char recv_err[200], send_err[200];
  _Atomic (const char *) last_err;

  struct lb_tls tls;
};

/* lb_conn.c */

/* lb_conn_identity_ok for N bytes from the peer, which may hold NULs. */
extern bool lb_conn_identity_bytes_ok (const uint8_t *p, size_t n);

/* Record why a send (SEND) or a receive failed, for lb_conn_error, and
 * set errno to E.
 */
extern void lb_conn_ioerr (struct lb_conn *c, bool send, int e,
                           const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));
/* The same for a send that failed with E, bounded by TIMEOUT_MS. */
extern void lb_conn_senderr (struct lb_conn *c, int e, int timeout_ms);

/* The handshakes below work on C, in mode LB_CONN_RAW on entry, with
 * C->deadline set.  On success they set C->desc, and the caller sets the
 * mode; on failure they leave ERR and errno set, and the caller frees
 * C or marks it failed.
 */

/* lb_plain.c */
extern int lb_plain_client (struct lb_conn *c, const char *identity,
                            const struct lb_key *key, int timeout_ms,
                            char *err, size_t errlen);
/* The hello's first byte is still unread; C->lookup is set. */
extern int lb_plain_server (struct lb_conn *c, int timeout_ms,
                            char *err, size_t errlen);

/* lb_tls.c */
extern int lb_tls_client (struct lb_conn *c, const char *identity,
                          const struct lb_key *key, int timeout_ms,
                          char *err, size_t errlen);
extern int lb_tls_server (struct lb_conn *c, int timeout_ms,
                          char *err, size_t errlen);
/* Send close_notify without waiting on a peer that does not read. */
extern void lb_tls_bye (struct lb_conn *c);
/* Free the TLS state (GnuTLS wipes the session's secrets; the buffers
 * of plaintext are wiped with the connection).  Safe on a connection
 * that never had any.
 */
extern void lb_tls_free (struct lb_conn *c);

/* lb_tls_io.c */

/* Give C's new session our pull and push functions and their buffers.
 * 0, or -1 with ERR and errno (ENOMEM).
 */
extern int lb_tls_io_install (struct lb_conn *c, char *err, size_t errlen);
/* The data calls of lb_conn.h, in TLS mode. */
extern int lb_tls_io_sendv (struct lb_conn *c, const struct iovec *iov,
                            int iovcnt, int timeout_ms);
extern ssize_t lb_tls_io_recv (struct lb_conn *c, void *buf, size_t len);
extern bool lb_tls_io_pending (struct lb_conn *c);

#endif /* LIVEBACKUP_LB_CONN_IMPL_H */
