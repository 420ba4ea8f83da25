/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: logging.  See lb_log.h. */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "lb_err.h"
#include "lb_log.h"
#include "lb_time.h"

/* The longest line sent to syslog; longer ones are cut. */
#define LB_LOG_LINE_MAX 2048

bool lb_log_verbose;
static const char *lb_log_prog = "livebackup";
static enum lb_log_dest lb_log_dest = LB_LOG_STDERR;
/* One lock, so that lines from threads never interleave, and for the
 * syslog socket's state below.
 */
static pthread_mutex_t lb_log_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*lb_log_eraser) (void);
static int lb_log_fd = -1;                 /* the syslog socket */
static uint64_t lb_log_tried_ms;           /* last connect attempt */
static unsigned lb_log_dropped;            /* lines syslog did not take */

/* The syslog socket's path. */
static const char *
lb_log_socket_path (void)
{
  const char *p = getenv (LB_LOG_SOCKET_ENV);

  return p && *p ? p : "/dev/log";
}

/* Connect the syslog socket (the lock held, or before threads).  0, or
 * -1 with errno.
 */
static int
lb_log_connect (void)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  const char *path = lb_log_socket_path ();
  int fd, e;

  lb_log_tried_ms = lb_now_ms ();
  if (strlen (path) >= sizeof sun.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy (sun.sun_path, path);
  fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return -1;
  if (connect (fd, (struct sockaddr *) &sun, sizeof sun) == -1) {
    e = errno;
    close (fd);
    errno = e;
    return -1;
  }
  lb_log_fd = fd;
  return 0;
}

int
lb_log_init (const char *progname, enum lb_log_dest dest, char *err,
             size_t errlen)
{
  int r = 0;

  pthread_mutex_lock (&lb_log_lock);
  lb_log_prog = progname;
  lb_log_dest = dest;
  if (dest == LB_LOG_SYSLOG && lb_log_fd == -1 && lb_log_connect () == -1) {
    lb_errf (err, errlen, "no syslog at %s (%s): messages are lost until "
             "one listens there", lb_log_socket_path (), strerror (errno));
    r = -1;
  }
  pthread_mutex_unlock (&lb_log_lock);
  return r;
}

bool
lb_log_parse_dest (const char *s, enum lb_log_dest *dest)
{
  if (strcmp (s, "stderr") == 0)
    *dest = LB_LOG_STDERR;
  else if (strcmp (s, "syslog") == 0)
    *dest = LB_LOG_SYSLOG;
  else
    return false;
  return true;
}

/* Send one datagram of LEN bytes to syslog (the lock held): a dropped
 * socket is connected again, at most once a second.
 */
static void
lb_log_send (const char *line, size_t len)
{
  if (lb_log_fd == -1 && (lb_now_ms () - lb_log_tried_ms < 1000
                          || lb_log_connect () == -1)) {
    lb_log_dropped++;
    return;
  }
  if (send (lb_log_fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
    return;
  if (errno == EAGAIN || errno == ENOBUFS) {
    /* A syslog that does not keep up loses lines, never stalls us. */
    lb_log_dropped++;
    return;
  }
  /* The syslog daemon restarted (a new socket at the path): once more. */
  close (lb_log_fd);
  lb_log_fd = -1;
  if (lb_log_connect () == -1
      || send (lb_log_fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL) == -1)
    lb_log_dropped++;
}

/* Format and send one syslog line (the lock held). */
static void
lb_log_syslog (int priority, const char *fmt, va_list ap)
{
  char line[LB_LOG_LINE_MAX], when[32];
  time_t now = time (NULL);
  struct tm tm;
  int n, m;

  localtime_r (&now, &tm);
  strftime (when, sizeof when, "%b %e %H:%M:%S", &tm);
  if (lb_log_dropped) {
    n = snprintf (line, sizeof line, "<%d>%s %s[%d]: %u lines were not "
                  "logged (the syslog socket was full or absent)",
                  LOG_DAEMON | LOG_WARNING, when, lb_log_prog, (int) getpid (),
                  lb_log_dropped);
    lb_log_dropped = 0;
    lb_log_send (line, n);
  }
  n = snprintf (line, sizeof line, "<%d>%s %s[%d]: ",
                LOG_DAEMON | (priority & LOG_PRIMASK), when, lb_log_prog,
                (int) getpid ());
  m = vsnprintf (line + n, sizeof line - n, fmt, ap);
  if (m < 0)
    m = 0;
  if ((size_t) m >= sizeof line - n)
    m = sizeof line - n - 1;
  lb_log_send (line, n + m);
}

void
lb_log (int priority, const char *fmt, ...)
{
  va_list ap;

  if (priority == LOG_DEBUG && !lb_log_verbose)
    return;
  va_start (ap, fmt);
  pthread_mutex_lock (&lb_log_lock);
  if (lb_log_dest == LB_LOG_SYSLOG)
    lb_log_syslog (priority, fmt, ap);
  else {
    struct timespec ts;
    struct tm tm;
    char when[32];

    clock_gettime (CLOCK_REALTIME, &ts);
    localtime_r (&ts.tv_sec, &tm);
    strftime (when, sizeof when, "%H:%M:%S", &tm);
    if (lb_log_eraser)
      lb_log_eraser ();
    fprintf (stderr, "%s.%03ld %s: ", when, ts.tv_nsec / 1000000,
             lb_log_prog);
    vfprintf (stderr, fmt, ap);
    fputc ('\n', stderr);
  }
  pthread_mutex_unlock (&lb_log_lock);
  va_end (ap);
}

void
lb_log_locked (void (*fn) (void *), void *arg)
{
  pthread_mutex_lock (&lb_log_lock);
  fn (arg);
  pthread_mutex_unlock (&lb_log_lock);
}

void
lb_log_set_eraser (void (*erase) (void))
{
  pthread_mutex_lock (&lb_log_lock);
  lb_log_eraser = erase;
  pthread_mutex_unlock (&lb_log_lock);
}

void
lb_log_safe (char *out, size_t outlen, const char *text, size_t len)
{
  size_t i, o = 0;

  if (outlen == 0)
    return;
  for (i = 0; i < len && o + 1 < outlen; i++) {
    unsigned char ch = text[i];
    out[o++] = ch >= 0x20 && ch < 0x7f ? ch : '?';
  }
  out[o] = '\0';
}

bool
lb_log_allow (struct lb_log_limit *l)
{
  uint64_t now = lb_now_ms ();
  unsigned suppressed = 0;
  bool ok;

  pthread_mutex_lock (&l->lock);
  if (l->window_ms == 0 || now - l->window_ms >= 10000) {
    suppressed = l->suppressed;
    l->window_ms = now;
    l->count = 0;
    l->suppressed = 0;
  }
  ok = l->count < l->max;
  if (ok)
    l->count++;
  else
    l->suppressed++;
  pthread_mutex_unlock (&l->lock);
  if (suppressed)
    lb_warn ("%u more %s not logged (at most %u per 10 s)", suppressed,
             l->what, l->max);
  return ok;
}
