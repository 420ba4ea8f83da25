/* lb: the control socket.  See control.h. */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "lb_ctl.h"
#include "lb_err.h"
#include "lb_proto.h"
#include "lb_status.h"
#include "lb_time.h"
#include "lw_consumer.h"

/* lb --status in text: the channel's line, whether lb runs, then (when
 * it does) its fields as "KEY: VALUE" lines.
 */
static const char lb_control_layout[] =
  "unit {unit}: {filter?filter {mode}, queue {queue_used}/{queue_size} "
  "bytes, {out_of_sync_bytes} bytes out of sync, seq {head_seq} (released "
  "{released_seq})|no filter ({error})}\n"
  "lb: {lb_running?running|not running}\n";

/* The one control socket of this lb.  RATE and what it is computed
 * from belong to the control thread.
 */
static struct {
  const struct lb_opts *o;
  struct lb_session_pub *pub;
  struct lb_ctl ctl;
  int wake[2];                  /* lb_control_stop to the thread */
  pthread_t thread;
  bool started;
  uint64_t rate;                /* bytes_sent per second, last second */
  uint64_t rate_bytes, rate_ms;
} lb_control = { .ctl = { .fd = -1 }, .wake = { -1, -1 } };

int
lb_control_default (const struct lb_opts *o, char *out, char *err,
                    size_t errlen)
{
  char path[4096];

  lw_shm_path (path, sizeof path - 8, o->dir ? o->dir : LW_DEFAULT_DIR,
               o->unit);
  strcat (path, ".lb.ctl");
  return lb_ctl_path (path, out, err, errlen);
}

/* The fields of channel C, or (C NULL) why it could not be opened,
 * ERR; and the layout of the text.
 */
static void
lb_control_channel (struct lb_status *d, unsigned unit, struct lwc *c,
                    const char *err)
{
  lb_status_uint (d, "unit", unit);
  lb_status_bool (d, "filter", c != NULL);
  if (c) {
    const struct lw_header *h = lwc_header (c);
    uint64_t dirty, pending;

    lwc_count_bits (c, &dirty, &pending);
    lb_status_str (d, "mode", lwc_mode (c) == LW_MODE_NORMAL ? "normal"
                                                             : "degraded");
    lb_status_bytes (d, "queue_used", atomic_load (&h->head_pos)
                                      - atomic_load (&h->tail_pos));
    lb_status_bytes (d, "queue_size", h->ring_size);
    lb_status_bytes (d, "out_of_sync_bytes",
                     (dirty + pending) * h->block_size);
    lb_status_uint (d, "head_seq", atomic_load (&h->head_seq));
    lb_status_uint (d, "released_seq", atomic_load (&h->tail_seq));
    lb_status_strf (d, "epoch", "%016" PRIx64, h->epoch);
    lb_status_uint (d, "gen", atomic_load (&h->gen_acked));
  }
  else
    lb_status_text_only (lb_status_str (d, "error", err));
  lb_status_layout (d, lb_control_layout);
}

/* lb's own fields, into group G.  The counters belong to the current
 * connection and read 0 while there is none.
 */
static void
lb_control_fields (struct lb_status *g)
{
  const struct lb_opts *o = lb_control.o;
  struct lb_session_pub *pub = lb_control.pub;
  struct lb_sink *s = atomic_load (&pub->sink);
  bool up = atomic_load (&pub->connected) && s;

  lb_status_uint (g, "pid", (uint64_t) getpid ());
  lb_status_strf (g, "server", "%s/%s", o->host, o->port);
  lb_status_bool (g, "connected", atomic_load (&pub->connected));
  lb_status_time (g, "since", atomic_load (&pub->since));
  lb_status_str (g, "phase", up ? lbp_phase_name (atomic_load (&s->pub_phase))
                                : "connecting");
  lb_status_bool (g, "deferring", up && atomic_load (&s->pub_deferring));
  lb_status_bytes (g, "bytes_sent", s ? atomic_load (&s->bytes_sent) : 0);
  lb_status_uint (g, "rate", lb_control.rate);
  lb_status_bytes (g, "bytes_scanned",
                   s ? atomic_load (&s->bytes_scanned) : 0);
  lb_status_bytes (g, "bytes_same", s ? atomic_load (&s->bytes_same) : 0);
  lb_status_time (g, "last_consistent",
                  s ? atomic_load (&s->last_consistent) : 0);
  lb_status_time (g, "updated", (uint64_t) time (NULL));
}

/* The answer of the running lb (lb_ctl_build_fn). */
static int
lb_control_build (struct lb_status *d, void *arg)
{
  const struct lb_opts *o = lb_control.o;
  char err[512];
  struct lwc *c = lwc_attach (o->dir, o->unit, LWC_OBSERVE, err, sizeof err);

  (void) arg;
  lb_control_channel (d, o->unit, c, err);
  lwc_detach (c);
  lb_status_bool (d, "lb_running", true);
  lb_control_fields (lb_status_object (d, NULL));
  return 0;
}

/* Once a second at most: the rate of the last interval. */
static void
lb_control_sample (void)
{
  struct lb_sink *s = atomic_load (&lb_control.pub->sink);
  uint64_t now = lb_now_ms (), bytes = s ? atomic_load (&s->bytes_sent) : 0;

  if (now - lb_control.rate_ms < 1000)
    return;
  /* A new connection starts its count at 0. */
  lb_control.rate = bytes >= lb_control.rate_bytes
                    ? (bytes - lb_control.rate_bytes) * 1000
                      / (now - lb_control.rate_ms)
                    : 0;
  lb_control.rate_bytes = bytes;
  lb_control.rate_ms = now;
}

static void *
lb_control_thread (void *arg)
{
  (void) arg;
  for (;;) {
    struct pollfd pfd[2] = {
      { .fd = lb_control.wake[0], .events = POLLIN },
      { .fd = lb_control.ctl.fd, .events = POLLIN },
    };

    lb_control_sample ();
    if (poll (pfd, 2, 1000) == -1 && errno != EINTR)
      break;
    if (pfd[0].revents)
      break;
    if (pfd[1].revents & POLLIN)
      lb_ctl_serve (&lb_control.ctl, lb_control_build, NULL);
  }
  return NULL;
}

int
lb_control_start (const struct lb_opts *o, struct lb_session_pub *pub,
                  char *err, size_t errlen)
{
  sigset_t all, old;
  int e;

  lb_control.o = o;
  lb_control.pub = pub;
  if (lb_ctl_listen (&lb_control.ctl, o->control, err, errlen) == -1)
    return -1;
  if (pipe2 (lb_control.wake, O_CLOEXEC) == -1) {
    lb_errf (err, errlen, "pipe: %s", strerror (errno));
    lb_ctl_close (&lb_control.ctl);
    return -1;
  }
  lb_control.rate_ms = lb_now_ms ();
  /* Signals go to the main thread, whose waits they should cut short. */
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  e = pthread_create (&lb_control.thread, NULL, lb_control_thread, NULL);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (e != 0) {
    lb_errf (err, errlen, "thread: %s", strerror (e));
    close (lb_control.wake[0]);
    close (lb_control.wake[1]);
    lb_ctl_close (&lb_control.ctl);
    return -1;
  }
  lb_control.started = true;
  return 0;
}

void
lb_control_stop (void)
{
  if (!lb_control.started)
    return;
  if (write (lb_control.wake[1], "", 1) == 1)
    pthread_join (lb_control.thread, NULL);
  close (lb_control.wake[0]);
  close (lb_control.wake[1]);
  lb_ctl_close (&lb_control.ctl);
  lb_control.started = false;
}

int
lb_control_status (const struct lb_opts *o, bool json)
{
  enum lb_status_format format = json ? LB_STATUS_JSON : LB_STATUS_TEXT;
  char err[512], why[640];
  struct lwc *c = lwc_attach (o->dir, o->unit, LWC_OBSERVE, err, sizeof err);
  enum lb_ctl_answer a;
  struct lb_status *d;
  int e;

  if (o->control[0] == '\0') {
    a = LB_CTL_UNREACHED;       /* lb.c said why */
    e = ENOENT;
  }
  else {
    a = lb_ctl_ask (o->control, format, LB_CTL_ASK_MS, stdout, NULL, why,
                    sizeof why);
    e = errno;
  }
  if (a != LB_CTL_ANSWERED) {
    /* No lb: the channel speaks for itself.  Say why unless nothing
     * listens there, which is what "not running" means.
     */
    if (a == LB_CTL_SILENT || (e != ENOENT && e != ECONNREFUSED))
      fprintf (stderr, "lb: %s\n", why);
    d = lb_status_new ();
    lb_control_channel (d, o->unit, c, err);
    lb_status_bool (d, "lb_running", a == LB_CTL_SILENT);
    if (lb_status_render (d, format, stdout) == -1)
      fprintf (stderr, "lb: --status: %s\n", strerror (errno));
    lb_status_free (d);
  }
  e = c ? 0 : 1;
  lwc_detach (c);
  return e;
}
