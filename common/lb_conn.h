/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: the transport.  An authenticated byte stream over one
 * connected TCP socket, in one of two modes, TLS or plain (below); or,
 * for a protocol that starts in clear, a raw one (lb_conn_raw) that the
 * server upgrades in place (lb_conn_server_starttls).  The same calls
 * send and receive in every mode.
 *
 * TLS (the default): TLS 1.3 with an external pre-shared key through
 * GnuTLS.  PSK identity = the client's name; PSK = the 32 bytes of its
 * struct lb_key.  Only psk_dhe_ke is offered and accepted (priority
 * LB_CONN_PRIORITY has ECDHE-PSK and DHE-PSK but not PSK), so every
 * session has an ephemeral (EC)DH share: forward secrecy.  A peer that
 * offers only psk_ke (pure PSK) finds no common key exchange and fails.
 * Both ends prove the key by the handshake itself: the client by its
 * binder, the server by its Finished.  A standard client interoperates:
 *   gnutls-cli --pskusername=NAME --pskkey=HEX-OF-PSK \
 *     --priority=NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:+DHE-PSK \
 *     -p PORT HOST
 * The server refuses with standard alerts, which the client reports:
 *   unknown_psk_identity   no client of that name;
 *   access_denied          the client line says plain mode (encrypt=no);
 *   decrypt_error          the client's PSK binder did not verify: wrong
 *                          key (or, if the lookup hides unknown names
 *                          behind a random key, an unknown name).
 * Records are full (16 KiB); a read-ahead and a write-combining buffer
 * (256 KiB each, per TLS connection) let a stream of records cost about
 * a syscall per 256 KiB rather than three per record.
 *
 * Plain (for trusted networks): no encryption and no integrity after
 * the handshake, which is a mutual challenge–response, both sides
 * contributing a fresh 32-byte nonce.  K = HMAC-SHA256 (psk,
 * "livebackup plain-mode key v1") keeps plain mode's MACs apart from any
 * use TLS makes of the PSK.  The client proves first, so a server
 * (which anyone can reach) gives nothing to a peer without the key but
 * a refusal; then the server proves, then the client confirms.  As in
 * TLS 1.3, where the client's binder comes first, a false server learns
 * the client's MAC: worth nothing against a key file with real entropy,
 * an offline guessing target against a guessable one.
 *
 *   C->S  hello    "LBPLAIN1" | idlen:u8 (1..255) | identity | cnonce[32]
 *   S->C  answer   0x00 | snonce[32]                 (go on)
 *                  0x01 | len:u8 | reason            (refused, closes)
 *   C->S  proof    HMAC (K, "livebackup plain v1 client" | cnonce |
 *                        snonce | idlen | identity)
 *   S->C  verdict  0x00 | HMAC (K, "livebackup plain v1 server" | same)
 *                  0x01 | len:u8 | reason            ("wrong key", closes)
 *   C->S  confirm  0x00 (server's proof verified) | 0x01 (it did not)
 *
 * then raw TCP.  Reasons are printable ASCII; the client shows them
 * after "server refused: ".
 *
 * The server takes both modes on one socket: it peeks at the first byte,
 * 0x16 (a TLS handshake record) or 'L' (the plain magic); anything else
 * is refused as garbage.  Whether a client must use TLS or plain mode
 * is the server's configuration (the lookup's *ENCRYPT); a mismatch
 * fails on both ends with "mode mismatch".  Refusals for an unknown
 * name or a mode mismatch come before any proof of the key: they tell
 * a peer without the key only whether a name is configured, and for
 * which mode (names are no secret: TLS sends them in clear).
 *
 * Untrusted peers: every length from the peer is checked, nothing is
 * allocated by a size the peer chose, identities are 1..255 printable
 * ASCII bytes (anything else is refused before the lookup, so they are
 * safe to log), and the whole handshake is bounded by TIMEOUT_MS.
 * Nothing raises SIGPIPE (sends use MSG_NOSIGNAL).
 *
 * Ownership: lb_conn_client/lb_conn_server take over FD only when they
 * succeed (lb_conn_close closes it); on failure the caller still owns
 * and closes it.  Keys are used only during the handshake: the
 * client's KEY may be wiped as soon as lb_conn_client returns, the
 * lookup's copy is wiped by us, and no copy outlives the handshake
 * (GnuTLS 3.7 frees the key of PSK client credentials without wiping
 * it, so keys reach GnuTLS through callbacks, whose copies it wipes).
 * The functions do not change FD's flags: after the handshake a
 * blocking FD gives blocking sends and receives; a caller who sets
 * O_NONBLOCK gets LB_CONN_AGAIN from lb_conn_recv when nothing is ready.
 *
 * Threads: connections are independent (many may run in parallel; the
 * GnuTLS global state initialises itself).  One connection may be used
 * by two threads at once, one only sending and one only receiving
 * (GnuTLS supports that split; a TLS 1.3 KeyUpdate the receiver is asked
 * for is deferred to the next send).  lb_conn_close must be called when
 * neither is inside a call.
 *
 * Files: lb_conn.c (this object, the dispatch by mode), lb_plain.c,
 * lb_tls.c and lb_tls_io.c (the modes), lb_sock.c (the socket below,
 * lb_sock.h); lb_conn_impl.h says which does what.
 */

#ifndef LIVEBACKUP_LB_CONN_H
#define LIVEBACKUP_LB_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "lb_key.h"
#include "lb_sock.h"

/* Our TLS priorities: TLS 1.3 only, PSK with (EC)DHE only (no +PSK).
 * Ciphers: GnuTLS 3.7 binds an external PSK to SHA-256, so only the
 * SHA-256 suites can be used (TLS_AES_256_GCM_SHA384 never is, whatever
 * the order); AES-128-GCM first, and the server's order wins, because
 * with AES-NI it runs several times faster than ChaCha20-Poly1305.
 */
#define LB_CONN_PRIORITY \
  "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:+DHE-PSK" \
  ":-CIPHER-ALL:+AES-128-GCM:+CHACHA20-POLY1305:%SERVER_PRECEDENCE"

#define LB_CONN_IDENTITY_MAX 255

struct lb_conn;

/* Is NAME acceptable as an identity: 1..255 bytes of printable ASCII
 * without spaces (0x21..0x7e)?
 */
extern bool lb_conn_identity_ok (const char *name);

/* Client: handshake on the connected socket FD as IDENTITY with KEY, in
 * TLS (ENCRYPT) or plain mode, within TIMEOUT_MS in total (-1: no
 * bound).  Returns NULL, errno set and a one-line reason in ERR, e.g.
 *   "TLS handshake failed: server sent alert 'Decrypt error' (wrong key?)"
 *   "server refused: mode mismatch: this client must use TLS"
 *   "TLS handshake timed out after 10000 ms"
 * errno: EACCES refused or failed authentication; ETIMEDOUT; ECONNRESET
 * the server closed; EPROTO the server spoke something else; EINVAL a
 * bad IDENTITY; ENOMEM.
 */
extern struct lb_conn *lb_conn_client (int fd, const char *identity,
                                       const struct lb_key *key,
                                       bool encrypt, int timeout_ms,
                                       char *err, size_t errlen);

/* The server's view of its configuration: map IDENTITY (already checked
 * by lb_conn_identity_ok) to the client's KEY, whether it must use TLS
 * (*ENCRYPT), and an opaque *CLIENT pointer handed back on success.
 * Return 0, or -1 if there is no such client.  Called from inside the
 * handshake, possibly in several server threads at once.
 */
typedef int (*lb_conn_lookup) (void *opaque, const char *identity,
                               struct lb_key *key, bool *encrypt,
                               void **client);

/* Server: handshake on the accepted socket FD within TIMEOUT_MS.
 * *CLIENT (if not NULL) gets the lookup's pointer, on success, and on
 * failure too once the lookup has named a client (NULL otherwise).  IDENTITY
 * (if not NULL) gets the name the peer presented as soon as it is
 * known, also on failure, so the caller can log it ("" if none).
 * Returns NULL, errno set and a one-line reason in ERR, naming the
 * client where known: "client 'c1': mode mismatch: ...",
 * "unknown client name 'x'", "garbage from peer (first bytes 47 45 54):
 * neither TLS nor plain mode", "handshake timed out after 10000 ms".
 */
extern struct lb_conn *lb_conn_server (int fd, lb_conn_lookup lookup,
                                       void *opaque, int timeout_ms,
                                       void **client,
                                       char *identity, size_t idlen,
                                       char *err, size_t errlen);

/* Raw: a connection over the connected socket FD as it is, neither
 * authenticated nor encrypted, for a protocol that negotiates in clear
 * and may then upgrade (NBD: the options before STARTTLS, or all of
 * them where TLS is off).  Takes over FD; NULL (errno ENOMEM) leaves it
 * to the caller.  lb_conn_describe says "raw (not authenticated, not
 * encrypted)".
 */
extern struct lb_conn *lb_conn_raw (int fd);

/* Server: upgrade the raw connection C in place, by the handshake that
 * lb_conn_server runs (the mode the peer's first byte tells, as the
 * lookup allows), within TIMEOUT_MS, with the same reports in *CLIENT,
 * IDENTITY and ERR.  For STARTTLS, whose lookup requires TLS of every
 * name.  Raw mode reads nothing ahead: the handshake starts at the first
 * byte the caller has not received.  0, or -1 with errno as
 * lb_conn_server's; then C can only be closed (lb_conn_close).
 */
extern int lb_conn_server_starttls (struct lb_conn *c, lb_conn_lookup lookup,
                                    void *opaque, int timeout_ms,
                                    void **client,
                                    char *identity, size_t idlen,
                                    char *err, size_t errlen);

/* Send all LEN bytes within TIMEOUT_MS (-1: no bound); 0, or -1 (errno
 * set, ETIMEDOUT among them; lb_conn_error says why).  After a failure
 * an unknown part went out: the stream is good only for closing.  On a
 * non-blocking FD it waits for room with poll.  TLS data goes in
 * full-size records.
 */
extern int lb_conn_send (struct lb_conn *c, const void *buf, size_t len,
                         int timeout_ms);

/* Send the IOVCNT pieces as one stream, as lb_conn_send would their
 * concatenation.  For a small header before a large payload: in TLS the
 * header and the payload's start share a record (one copy of at most a
 * record), the rest goes straight from the caller's buffer; in plain
 * and raw mode the pieces go to sendmsg as they are.
 */
extern int lb_conn_sendv (struct lb_conn *c, const struct iovec *iov,
                          int iovcnt, int timeout_ms);

/* What lb_conn_recv returns besides a count of bytes (> 0).  A count,
 * as recv(2) and gnutls_record_recv return, with the outcomes that carry
 * none as named values of the same type: every caller needs the count,
 * and none needs another variable for it.
 */
enum lb_conn_recv_outcome {
  LB_CONN_END = 0,      /* orderly end: TLS close_notify, or TCP FIN in
                           plain and raw mode */
  LB_CONN_ERROR = -1,   /* errno set, lb_conn_error says why; a TLS
                           stream cut without close_notify is one
                           (ECONNRESET) */
  LB_CONN_AGAIN = -2,   /* nothing ready on a non-blocking FD */
};

/* Receive up to LEN bytes: a count (> 0) or an lb_conn_recv_outcome
 * (LB_CONN_END too when LEN is 0).
 */
extern ssize_t lb_conn_recv (struct lb_conn *c, void *buf, size_t len);

/* Receive exactly LEN bytes within TIMEOUT_MS (-1: no bound), whatever
 * the FD's blocking mode.  0, or -1 with errno: ETIMEDOUT, ECONNRESET
 * (end of stream before LEN bytes, including an orderly one), or as
 * lb_conn_recv.
 */
extern int lb_conn_recv_all (struct lb_conn *c, void *buf, size_t len,
                             int timeout_ms);

/* Read and drop whatever the peer still sends until it ends the stream
 * (or fails), for at most TIMEOUT_MS: the side that says goodbye first
 * does this before closing, since closing with unread data resets the
 * connection and the peer could lose the goodbye unread.
 */
extern void lb_conn_drain (struct lb_conn *c, int timeout_ms);

/* Are bytes already received, waiting in GnuTLS's buffer (decrypted)
 * or in our read-ahead (not yet)?  A poll loop must call lb_conn_recv
 * before sleeping if so: poll on the FD does not see them.
 * (LB_CONN_AGAIN from lb_conn_recv means the read-ahead is empty: poll
 * is then right.)  Always false in plain and raw mode.
 */
extern bool lb_conn_pending (struct lb_conn *c);

extern int lb_conn_fd (const struct lb_conn *c);
extern bool lb_conn_encrypted (const struct lb_conn *c);

/* What was negotiated, for logs: "TLS1.3 ECDHE-PSK SECP256R1 AES-128-GCM",
 * "plain (authenticated, not encrypted)", or raw mode's.
 */
extern const char *lb_conn_describe (const struct lb_conn *c);

/* The reason for the last -1 from a send or receive. */
extern const char *lb_conn_error (const struct lb_conn *c);

/* Say goodbye (TLS close_notify, without waiting on a stuck peer),
 * close FD, free everything (GnuTLS wipes the session's secrets; we wipe
 * our buffers of plaintext).  NULL is allowed.
 */
extern void lb_conn_close (struct lb_conn *c);

#endif /* LIVEBACKUP_LB_CONN_H */
