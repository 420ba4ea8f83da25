/* livebackup: logging.  See lb_log.h. */

#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

#include "lb_log.h"
#include "lb_time.h"

bool lb_log_verbose;
static const char *lb_log_prog = "livebackup";
static bool lb_log_syslog;
static pthread_mutex_t lb_log_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*lb_log_eraser) (void);

void
lb_log_init (const char *progname, bool use_syslog)
{
  lb_log_prog = progname;
  lb_log_syslog = use_syslog;
  if (use_syslog)
    openlog (progname, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
lb_log (int priority, const char *fmt, ...)
{
  va_list ap;

  if (priority == LOG_DEBUG && !lb_log_verbose)
    return;
  va_start (ap, fmt);
  if (lb_log_syslog)
    vsyslog (priority, fmt, ap);
  else {
    struct timespec ts;
    struct tm tm;
    char when[32];

    clock_gettime (CLOCK_REALTIME, &ts);
    localtime_r (&ts.tv_sec, &tm);
    strftime (when, sizeof when, "%H:%M:%S", &tm);
    /* One lock so that lines from threads never interleave. */
    pthread_mutex_lock (&lb_log_lock);
    if (lb_log_eraser)
      lb_log_eraser ();
    fprintf (stderr, "%s.%03ld %s: ", when, ts.tv_nsec / 1000000,
             lb_log_prog);
    vfprintf (stderr, fmt, ap);
    fputc ('\n', stderr);
    pthread_mutex_unlock (&lb_log_lock);
  }
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
