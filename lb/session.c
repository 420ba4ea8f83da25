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

#include "lb_conn.h"
#include "lb_sock.h"
#include "lb_log.h"
#include "lb_proto.h"
#include "lb_wire.h"
#include "lw_follow.h"
#include "session.h"

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
             " gen %" PRIu64 "/%" PRIu64 ")", why, m->epoch, m->seq,
             lbp_gen_name (m->gen, g), h->epoch, lwc_released_seq (c), acked,
             gen);
  }
}

enum lb_session_end
lb_session_run (const struct lb_opts *o, struct lwc *c,
                const struct lb_key *key, int dev_fd, struct lb_sink *sink,
                struct lb_session_pub *pub, volatile sig_atomic_t *quit)
{
  const struct lw_header *h = lwc_header (c);
  struct lwf_options fo;
  struct lwf_sink ops;
  struct lwf_mark at;
  enum lwf_start start;
  struct lbp_msg m;
  const char *why = NULL;
  char err[512];
  int fd, r;

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

  m = (struct lbp_msg) { .type = LBP_HELLO, .version = LBP_VERSION,
                         .epoch = h->epoch, .dev_size = h->dev_size,
                         .hash_block = o->hash_block };
  if (lbw_send (sink->conn, &m, NULL, 0) == -1
      || (r = lbw_recv (sink->conn, &m, &sink->rbuf, &sink->rcap, 30000,
                        &why)) != 1
      || m.type != LBP_WELCOME) {
    char text[256] = "";
    if (m.type == LBP_ERROR)
      lb_log_safe (text, sizeof text, (const char *) m.payload,
                   m.payload_len);
    lb_warn ("%s/%s: no welcome: %s", o->host, o->port,
             text[0] ? text : why ? why : "unexpected message");
    lb_sink_free (sink);
    lb_conn_close (sink->conn);
    return LB_SESSION_FAILED;
  }
  lb_info ("connected to %s/%s (%s); image: epoch %016" PRIx64 " seq %"
           PRIu64 ", %s", o->host, o->port,
           lb_conn_encrypted (sink->conn) ? "TLS" : "plain", m.epoch, m.seq,
           lbp_phase_name (m.phase));
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
  r = lwf_run (c, &ops, &fo, start, &at);
  if (sink->failed)
    lb_warn ("connection to %s/%s ended: %s", o->host, o->port, sink->why);
  else if (r == 0) {
    struct lbp_msg bye = { .type = LBP_BYE };
    lbw_send (sink->conn, &bye, NULL, 0);
  }
  atomic_store (&pub->connected, false);
  atomic_store (&pub->sink, NULL);
  lb_progress_idle (&pub->progress);
  lb_conn_close (sink->conn);
  lb_sink_free (sink);
  if (sink->failed || r == -1)
    return LB_SESSION_FAILED;
  return r == 1 ? LB_SESSION_CHANNEL_GONE : LB_SESSION_STOPPED;
}
