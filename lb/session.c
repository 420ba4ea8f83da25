/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: one session with lbd.  See session.h. */

#include <config.h>

#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>

#include "device.h"
#include "lb_conn.h"
#include "lb_sock.h"
#include "lb_log.h"
#include "lb_proto.h"
#include "lb_wire.h"
#include "lw_follow.h"
#include "session.h"
#include "verify.h"

/* After BYE, how long lb waits for lbd to close. */
#define LB_SESSION_BYE_MS 5000

void
lb_session_reload_key (const struct lb_opts *o, struct lb_key *key)
{
  struct lb_key k;
  char err[1024];
  bool same;

  if (lb_key_load (o->keyfile, o->allow_open_key, &k, err, sizeof err)
      == -1) {
    lb_err ("SIGHUP: %s; the key read before stays", err);
    return;
  }
  same = gnutls_memcmp (k.psk, key->psk, sizeof k.psk) == 0;
  *key = k;
  lb_key_wipe (&k);
  lb_info ("SIGHUP: key file %s read again: %s", o->keyfile,
           same ? "the same key" : "a new key, used from the next "
           "connection on");
}

/* While a session runs, its stop callback (lwf_sink.stop) is this one,
 * which reads the key file again on SIGHUP (lb runs one session at a
 * time, in its main thread).
 */
static struct {
  const struct lb_opts *o;
  struct lb_key *key;
  volatile sig_atomic_t *hup;
  bool (*stop) (void *opaque);
} lb_session_hup;

static bool
lb_session_stop (void *opaque)
{
  if (*lb_session_hup.hup) {
    *lb_session_hup.hup = 0;
    lb_session_reload_key (lb_session_hup.o, lb_session_hup.key);
  }
  return lb_session_hup.stop (opaque);
}

/* Stopping on a signal: BYE, then read until lbd closes, so that lbd
 * reads the BYE rather than a reset (lb_conn_drain).
 */
static void
lb_session_bye (struct lb_sink *sink)
{
  struct lbp_msg bye = { .type = LBP_BYE };

  if (lbw_send (sink->conn, &bye, NULL, 0) == 0)
    lb_conn_drain (sink->conn, LB_SESSION_BYE_MS);
}

/* A TCP connection to O's server (each address in turn, 10 s each),
 * blocking, with keepalive; or -1 with ERR.
 */
static int
lb_session_connect (const struct lb_opts *o, char *err, size_t errlen)
{
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                            .ai_flags = AI_ADDRCONFIG };
  struct addrinfo *res, *ai;
  int fd = -1, e;

  e = getaddrinfo (o->host, o->port, &hints, &res);
  if (e != 0) {
    snprintf (err, errlen, "%s port %s: %s", o->host, o->port,
              gai_strerror (e));
    return -1;
  }
  for (ai = res; ai; ai = ai->ai_next) {
    struct pollfd pfd;
    int soerr = 0;
    socklen_t sl = sizeof soerr;

    fd = socket (ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                 ai->ai_protocol);
    if (fd == -1)
      continue;
    if (connect (fd, ai->ai_addr, ai->ai_addrlen) == 0)
      break;
    if (errno == EINPROGRESS) {
      pfd.fd = fd;
      pfd.events = POLLOUT;
      if (poll (&pfd, 1, 10000) == 1
          && getsockopt (fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0
          && soerr == 0)
        break;
      errno = soerr ? soerr : ETIMEDOUT;
    }
    e = errno;
    close (fd);
    fd = -1;
    errno = e;
  }
  if (fd == -1)
    snprintf (err, errlen, "%s port %s: %s", o->host, o->port,
              strerror (errno));
  freeaddrinfo (res);
  if (fd >= 0) {
    fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) & ~O_NONBLOCK);
    lb_sock_set_keepalive (fd);
  }
  return fd;
}

/* Log lwf_decide's choice START for the image at M. */
static void
lb_session_log_start (struct lwc *c, enum lwf_start start,
                      const struct lbp_msg *m, const char *why)
{
  const struct lw_header *h = lwc_header (c);

  if (start == LWF_CONTINUE)
    lb_info ("continuing from seq %" PRIu64 " (no scan needed)", m->seq);
  else if (start == LWF_RESUME_SCAN)
    lb_info ("resuming the cut scan at byte %" PRIu64 " of %" PRIu64
             ", from seq %" PRIu64, m->swept, h->dev_size, m->seq);
  else {
    uint64_t gen, acked;
    char g[24];
    lwc_gen_get (c, &gen, &acked);
    lb_info ("full scan: %s (image: epoch %016" PRIx64 " seq %" PRIu64
             " gen %s; unit: epoch %016" PRIx64 " released seq %" PRIu64
             " gen %" PRIu64 "/%" PRIu64 ", started %s%s%s)", why,
             m->epoch, m->seq, lbp_gen_name (m->gen, g), h->epoch,
             lwc_released_seq (c), acked, gen, lw_start_name (h->start_kind),
             h->start_reason[0] ? ": " : "", h->start_reason);
  }
}

enum lb_session_end
lb_session_run (const struct lb_opts *o, struct lwc *c, struct lb_key *key,
                int dev_fd, struct lb_sink *sink,
                struct lb_session_pub *pub, volatile sig_atomic_t *quit,
                volatile sig_atomic_t *hup)
{
  bool server_ended;
  const struct lw_header *h = lwc_header (c);
  struct lwf_options fo;
  struct lwf_sink ops;
  struct lwf_mark at;
  enum lwf_start start;
  struct lbp_msg m;
  const char *why = NULL;
  char err[512];
  enum lbw_recv_outcome got = LBW_RECV_BROKEN;
  enum lwf_end end;
  char from[LW_SERVED_PATH_LEN + 400];
  uint64_t partition;
  int fd;

  lb_progress_beat (&pub->progress);
  fd = lb_session_connect (o, err, sizeof err);
  lb_progress_beat (&pub->progress);
  if (fd == -1) {
    lb_warn ("cannot connect to %s", err);
    return LB_SESSION_FAILED;
  }
  memset (sink, 0, sizeof *sink);
  sink->dev_fd = dev_fd;
  sink->dev_size = h->dev_size;
  sink->hash_block = o->hash_block;
  sink->compress = o->compress;
  sink->max_rate = o->max_rate;
  sink->quit = quit;
  sink->c = c;
  sink->progress = &pub->progress;
  sink->conn = lb_conn_client (fd, o->name, key, o->encrypt, 15000,
                               err, sizeof err);
  if (sink->conn == NULL) {
    lb_warn ("%s/%s: %s", o->host, o->port, err);
    close (fd);
    return LB_SESSION_FAILED;
  }
  if (lb_sink_init (sink) == -1) {
    lb_err ("out of memory");
    lb_conn_close (sink->conn);
    return LB_SESSION_FAILED;
  }

  partition = lb_device_partition_id (h, o->unit, from, sizeof from);
  m = (struct lbp_msg) { .type = LBP_HELLO, .version = LBP_VERSION,
                         .epoch = h->epoch, .dev_size = h->dev_size,
                         .hash_block = o->hash_block,
                         .partition = partition };
  if (lbw_send (sink->conn, &m, NULL, 0) == -1
      || (got = lbw_recv (sink->conn, &m, &sink->rbuf, &sink->rcap, 30000,
                          &why)) != LBW_RECV_MSG
      || m.type != LBP_WELCOME) {
    char text[LBP_MAX_TEXT + 1] = "";
    bool error = got == LBW_RECV_MSG && m.type == LBP_ERROR;
    bool refused = error && (m.code == LBP_ERR_PARTITION
                             || m.code == LBP_ERR_SMALLER);
    server_ended = error && m.code == LBP_ERR_SHUTDOWN;
    if (error)
      lb_log_safe (text, sizeof text, (const char *) m.payload,
                   m.payload_len);
    if (refused)
      lb_err ("%s/%s refused this partition (identity %016" PRIx64 " from %s"
              ", %" PRIu64 " bytes): %s", o->host, o->port, partition, from,
              h->dev_size, text);
    else
      lb_log (server_ended ? LOG_INFO : LOG_WARNING, "%s/%s: no welcome: %s",
              o->host, o->port,
              text[0] ? text : why ? why : "unexpected message");
    lb_sink_free (sink);
    lb_conn_close (sink->conn);
    return refused ? LB_SESSION_REFUSED
           : server_ended ? LB_SESSION_SERVER_ENDED : LB_SESSION_FAILED;
  }
  /* The session's hash key, from WELCOME's seed (lb_hash.h). */
  if (lb_hash_key_derive (&sink->hkey, key, m.payload, err,
                          sizeof err) == -1) {
    lb_err ("%s/%s: %s", o->host, o->port, err);
    lb_sink_free (sink);
    lb_conn_close (sink->conn);
    return LB_SESSION_FAILED;
  }
  lb_info ("connected to %s/%s (%s); image: epoch %016" PRIx64 " seq %"
           PRIu64 ", %s", o->host, o->port,
           lb_conn_encrypted (sink->conn) ? "TLS" : "plain", m.epoch, m.seq,
           lbp_phase_name (m.phase));
  lb_debug ("partition identity %016" PRIx64 " (from %s)", partition, from);
  atomic_store (&pub->connected, true);
  atomic_store (&pub->since, (uint64_t) time (NULL));
  atomic_store (&pub->sink, sink);

  /* Continuity: can the image continue from where it stands? */
  at = (struct lwf_mark) { .seq = m.seq, .gen = m.gen, .swept = m.swept };
  start = lwf_decide (c, m.epoch, &at, m.phase == LBP_PHASE_SCANNING, &why);
  lb_session_log_start (c, start, &m, why);
  lb_progress_session (&pub->progress, start, why, m.swept, h->dev_size);
  sink->phase = m.phase;
  /* What status shows until lw_follow says otherwise: a continued image
   * goes on in its phase, the others are about to be scanned.
   */
  atomic_store (&sink->pub_phase, start == LWF_CONTINUE ? m.phase
                                                        : LBP_PHASE_SCANNING);
  lwc_rewind (c);
  lwf_default_options (c, &fo);
  fo.defer_ms = o->defer * 1000;
  lb_sink_ops (sink, &ops);
  lb_session_hup.o = o;
  lb_session_hup.key = key;
  lb_session_hup.hup = hup;
  lb_session_hup.stop = ops.stop;
  ops.stop = lb_session_stop;
  ops.live = lb_verify_live;
  lb_verify_attach (sink, c);
  lb_verify_schedule (m.verify_every, m.verified);
  end = lwf_run (c, &ops, &fo, start, &at);
  lb_verify_detach (sink->failed ? sink->why
                    : end == LWF_END_CHANNEL_GONE ? "the filter's channel "
                      "went away" : "lb stopped");
  server_ended = sink->failed && sink->error_code == LBP_ERR_SHUTDOWN;
  if (server_ended)
    lb_info ("connection to %s/%s ended by the server: %s", o->host,
             o->port, sink->why);
  else if (sink->failed)
    lb_warn ("connection to %s/%s ended: %s", o->host, o->port, sink->why);
  else if (end == LWF_END_STOPPED)
    lb_session_bye (sink);
  atomic_store (&pub->connected, false);
  atomic_store (&pub->sink, NULL);
  lb_progress_idle (&pub->progress);
  lb_conn_close (sink->conn);
  lb_sink_free (sink);
  if (server_ended)
    return LB_SESSION_SERVER_ENDED;
  if (sink->failed || end == LWF_END_SINK_FAILED)
    return LB_SESSION_FAILED;
  return end == LWF_END_CHANNEL_GONE ? LB_SESSION_CHANNEL_GONE
                                     : LB_SESSION_STOPPED;
}
