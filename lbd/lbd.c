/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: the livebackup server.
 *
 *   lbd [OPTIONS] CONFIG
 *
 * Reads CONFIG (lbd.conf(5)) and every client's key, binds every listen
 * address (clients' and exports'), then serves: one poll loop in the
 * main thread accepts connections (and status requests on a local
 * control socket, control.c); each connection gets its own thread, kept
 * in a connection set (connset.c): session.c's for lb's, export.c's for
 * restores over NBD.  As OpenBSD's daemons do: signal handlers only set
 * a flag and write to a pipe the loop polls; SIGHUP reloads CONFIG
 * (reload.c), SIGTERM and SIGINT stop cleanly, -n checks CONFIG, -d
 * keeps lbd in the foreground.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "bind.h"
#include "control.h"
#include "lb_ctl.h"
#include "export.h"
#include "lb_conn.h"
#include "lb_daemon.h"
#include "lb_key.h"
#include "lb_log.h"
#include "lb_priv.h"
#include "listener.h"
#include "metrics.h"
#include "reload.h"
#include "running.h"
#include "session.h"

static volatile sig_atomic_t lbd_quit, lbd_hup;
static int lbd_sigpipe[2] = { -1, -1 };

static void
lbd_on_signal (int sig)
{
  int e = errno;
  if (sig == SIGHUP)
    lbd_hup = 1;
  else
    lbd_quit = sig;
  /* The flag is what counts; the byte only wakes the poll loop, and a
   * full pipe means it is awake already.
   */
  ssize_t r = write (lbd_sigpipe[1], "", 1);
  (void) r;
  errno = e;
}

static void
lbd_usage (FILE *fp)
{
  fprintf (fp,
"usage: lbd [OPTIONS] CONFIG\n"
"       lbd --status [--json] [--control=PATH] CONFIG\n"
"       lbd -n CONFIG\n"
"       lbd --psk-line CONFIG NAME\n"
"       lbd --rebind CONFIG NAME\n"
"       lbd --points [--json] [--control=PATH] CONFIG NAME\n"
"       lbd --drop-point [--control=PATH] CONFIG NAME POINT\n"
"\n"
"The livebackup server: keeps one image per client line of CONFIG.\n"
"SIGHUP reloads CONFIG; SIGTERM stops cleanly.\n"
"\n"
"  -n, --check            check CONFIG and the key files, print\n"
"                         \"configuration OK\" or the first error, exit\n"
"      --psk-line         print client NAME's line for a PSK file\n"
"                         (NAME:HEXKEY, as nbdcopy's tls-psk-file= and\n"
"                         qemu read it) for restores, and exit\n"
"      --rebind           let the next partition to connect as client NAME\n"
"                         bind its image, whatever its identity and size\n"
"                         (lbd refuses another partition, or a smaller one,\n"
"                         until then), and exit\n"
"      --daemon           detach from the terminal (and log to syslog,\n"
"                         unless --log says otherwise)\n"
"  -d, --foreground       stay in the foreground, even with --daemon\n"
"                         (the default)\n"
"      --pidfile=PATH     write lbd's pid into PATH (locked while lbd runs,\n"
"                         removed at exit); refuse to start if a running\n"
"                         process holds it\n"
"      --log=stderr|syslog  where to log (default: stderr in the\n"
"                         foreground, syslog with --daemon)\n"
"  -u, --user=NAME        drop to user NAME after binding the ports\n"
"  -s, --status           ask the running lbd for every client's state\n"
"  -j, --json             with --status or --points: print JSON\n"
"      --points           ask the running lbd for client NAME's restore\n"
"                         points (time, label, bytes held, how taken)\n"
"      --drop-point       ask the running lbd to remove client NAME's\n"
"                         restore point POINT (its time or label)\n"
"  -c, --control=PATH     the status socket (default: derived from CONFIG's\n"
"                         absolute path, in /run or /tmp)\n"
"      --allow-open-key   accept key files that group or others can read\n"
"  -v, --verbose          also log debug messages (every sync point,\n"
"                         snapshots, export TLS details)\n"
"  -h, --help             this help\n"
"  -V, --version          print the version\n");
}

/* lbd --psk-line CONFIG NAME: the line of a PSK file (psktool's format,
 * which libnbd's tls-psk-file=, nbdkit's --tls-psk= and qemu's
 * tls-creds-psk read) that opens NAME's export.
 */
/* CONFIG read for a command that changes nothing running (-n,
 * --psk-line, --rebind); or NULL, the error printed and *STATUS set.
 */
static struct reload_plan *
lbd_read_config (const char *config, bool allow_open_key, int *status)
{
  enum reload_refusal why;
  struct reload_plan *p;
  char err[1024];

  p = reload_prepare (config, allow_open_key, RELOAD_CHECK, &why, err,
                      sizeof err);
  if (p == NULL) {
    fprintf (stderr, "lbd: %s\n", err);
    *status = why == RELOAD_BAD_CONFIG ? LB_EXIT_CONFIG : LB_EXIT_FAILURE;
  }
  return p;
}

static int
lbd_psk_line (const char *config, const char *name, bool allow_open_key)
{
  struct reload_plan *p;
  const struct lb_key *key;
  char hex[65];
  int r = LB_EXIT_OK;

  if ((p = lbd_read_config (config, allow_open_key, &r)) == NULL)
    return r;
  key = reload_plan_key (p, name);
  if (key == NULL) {
    fprintf (stderr, "lbd: %s: no client named '%s'\n", config, name);
    r = LB_EXIT_CONFIG;
  }
  else if (!lb_conn_identity_ok (name) || strchr (name, ':')) {
    fprintf (stderr, "lbd: %s: the name '%s' cannot be a PSK identity in a "
             "PSK file (1 to %d printable characters, no spaces, no ':'); "
             "give the client a name=\n", config, name,
             LB_CONN_IDENTITY_MAX);
    r = LB_EXIT_CONFIG;
  }
  else {
    if (!reload_plan_exports (p))
      fprintf (stderr, "lbd: warning: %s has no export line: lbd serves no "
               "restores\n", config);
    lb_key_hex (key, hex);
    printf ("%s:%s\n", name, hex);
    gnutls_memset (hex, 0, sizeof hex);
    if (fflush (stdout) != 0)
      r = LB_EXIT_FAILURE;
  }
  reload_discard (p);
  return r;
}

/* lbd --rebind CONFIG NAME: the next partition to connect as NAME
 * binds its image, whatever its identity and size (bind.h).  Works
 * whether lbd runs or not: a running lbd looks at each HELLO.
 */
static int
lbd_rebind (const char *config, const char *name, bool allow_open_key)
{
  struct reload_plan *p;
  const char *file;
  char err[1024];
  int r = LB_EXIT_OK;

  if ((p = lbd_read_config (config, allow_open_key, &r)) == NULL)
    return r;
  file = reload_plan_file (p, name);
  if (file == NULL) {
    fprintf (stderr, "lbd: %s: no client named '%s'\n", config, name);
    r = LB_EXIT_CONFIG;
  }
  else if (bind_allow (file, err, sizeof err) == -1) {
    fprintf (stderr, "lbd: %s\n", err);
    r = LB_EXIT_FAILURE;
  }
  else
    printf ("client %s: the next partition to connect binds image %s, "
            "whatever its identity and size; a full scan then replaces "
            "what the image holds\n", name, file);
  reload_discard (p);
  if (fflush (stdout) != 0)
    r = LB_EXIT_FAILURE;
  return r;
}

/* lbd -n CONFIG. */
static int
lbd_check (const char *config, bool allow_open_key)
{
  struct reload_plan *p;
  int r = LB_EXIT_OK;

  if ((p = lbd_read_config (config, allow_open_key, &r)) == NULL)
    return r;
  reload_discard (p);
  printf ("configuration OK\n");
  return fflush (stdout) == 0 ? LB_EXIT_OK : LB_EXIT_FAILURE;
}

/* SIGHUP: CONFIG again, or the running configuration stays. */
/* Reload CONFIG (SIGHUP).  The metrics file follows a changed metrics=
 * line; returns its poll descriptor (MFD, a new one, or -1).
 */
static int
lbd_reload (const char *config, bool allow_open_key, int mfd)
{
  enum reload_refusal why;
  struct reload_plan *p;
  const char *mpath;
  char err[1024], *want = NULL;
  int mline;

  lb_info ("reloading %s (signal %d)", config, SIGHUP);
  p = reload_prepare (config, allow_open_key, RELOAD_APPLY, &why, err,
                      sizeof err);
  if (p == NULL) {
    lb_err ("%s; not reloaded: the running configuration stays", err);
    return mfd;
  }
  mpath = reload_plan_metrics (p, &mline);
  if (mpath && (want = strdup (mpath)) == NULL)
    lb_err ("out of memory: metrics=%s not followed", mpath);
  reload_commit (p);
  if ((want == NULL) != (metrics_path () == NULL)
      || (want && strcmp (want, metrics_path ()) != 0)) {
    metrics_close ();
    mfd = -1;
    if (want && (mfd = metrics_open (want, err, sizeof err)) == -1)
      lb_err ("%s:%d: metrics=%s: %s; no metrics until it can be written",
              config, mline, want, err);
    metrics_start ();
  }
  free (want);
  metrics_changed ();
  return mfd;
}

/* The poll loop, until SIGTERM or SIGINT.  The tables are the running
 * configuration's (running.h), which only this thread changes.
 */
static void
lbd_serve (int cfd, int mfd, const char *config, bool allow_open_key)
{
  struct pollfd *pfd = NULL;
  size_t cap = 0, n, i;
  char peer[80];
  int fd;

  while (!lbd_quit) {
    if (lbd_hup) {
      lbd_hup = 0;
      mfd = lbd_reload (config, allow_open_key, mfd);
      continue;
    }
    n = 3 + running.nlisteners + running.nexports;
    if (n > cap) {
      struct pollfd *p = realloc (pfd, n * sizeof *pfd);
      if (p == NULL) {
        lb_err ("out of memory; waiting a second");
        sleep (1);
        continue;
      }
      pfd = p;
      cap = n;
    }
    n = 0;
    pfd[n++] = (struct pollfd) { .fd = lbd_sigpipe[0], .events = POLLIN };
    pfd[n++] = (struct pollfd) { .fd = cfd, .events = POLLIN };
    for (i = 0; i < running.nlisteners; i++)
      pfd[n++] = (struct pollfd) { .fd = running.listeners[i]->fd,
                                   .events = POLLIN };
    for (i = 0; i < running.nexports; i++)
      pfd[n++] = (struct pollfd) { .fd = running.exports[i]->fd,
                                   .events = POLLIN };
    /* Last, and -1 (ignored by poll) without metrics=. */
    pfd[n++] = (struct pollfd) { .fd = mfd, .events = POLLIN };
    if (poll (pfd, n, metrics_timeout ()) == -1) {
      if (errno == EINTR)
        continue;
      lb_err ("poll: %s", strerror (errno));
      break;
    }
    metrics_run ();
    if (pfd[0].revents & POLLIN) {
      char drain[64];
      while (read (lbd_sigpipe[0], drain, sizeof drain) > 0)
        ;
    }
    if (pfd[1].revents & POLLIN)
      control_serve ();
    /* Each connection is a thread of its own (connset.h). */
    for (i = 0; i < running.nlisteners; i++)
      if ((pfd[2 + i].revents & POLLIN)
          && (fd = listener_accept (running.listeners[i]->fd, peer,
                                    sizeof peer)) >= 0)
        session_start (running.listeners[i], fd, peer);
    for (i = 0; i < running.nexports; i++)
      if ((pfd[2 + running.nlisteners + i].revents & POLLIN)
          && (fd = listener_accept (running.exports[i]->fd, peer,
                                    sizeof peer)) >= 0)
        export_start (running.exports[i], fd, peer);
  }
  free (pfd);
}

int
main (int argc, char **argv)
{
  static const struct option opts[] = {
    { "check", no_argument, NULL, 'n' },
    LB_DAEMON_LONG_OPTIONS,
    { "user", required_argument, NULL, 'u' },
    { "status", no_argument, NULL, 's' },
    { "json", no_argument, NULL, 'j' },
    { "control", required_argument, NULL, 'c' },
    { "allow-open-key", no_argument, NULL, 'K' },
    { "psk-line", no_argument, NULL, 'P' },
    { "rebind", no_argument, NULL, 'B' },
    { "points", no_argument, NULL, 'L' },
    { "drop-point", no_argument, NULL, 'D' },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  bool check = false, status = false, json = false, allow_open_key = false;
  bool psk_line = false, rebind = false, points = false, drop = false;
  struct lb_daemon_opts d = { .dest = LB_LOG_STDERR };
  const char *user = NULL, *control = NULL, *config;
  char control_buf[4096], err[1024];
  struct sigaction sa = { .sa_handler = lbd_on_signal,
                          .sa_flags = SA_RESTART };
  struct lb_pidfile pf = LB_PIDFILE_NONE;
  struct reload_plan *plan;
  enum reload_refusal why;
  int c, cfd, mfd = -1;

  while ((c = getopt_long (argc, argv, "ndu:sjc:vhV", opts, NULL)) != -1) {
    switch (lb_daemon_option (&d, c, optarg, "lbd")) {
    case 1: continue;
    case -1: return LB_EXIT_CONFIG;
    }
    switch (c) {
    case 'n': check = true; break;
    case 'u': user = optarg; break;
    case 's': status = true; break;
    case 'j': json = true; break;
    case 'c': control = optarg; break;
    case 'K': allow_open_key = true; break;
    case 'P': psk_line = true; break;
    case 'B': rebind = true; break;
    case 'L': points = true; break;
    case 'D': drop = true; break;
    case 'v': lb_log_verbose = true; break;
    case 'h': lbd_usage (stdout); return LB_EXIT_OK;
    case 'V': printf ("lbd %s\n", PACKAGE_VERSION); return LB_EXIT_OK;
    default: lbd_usage (stderr); return LB_EXIT_CONFIG;
    }
  }
  if (psk_line + rebind + points + drop > 1) {
    lbd_usage (stderr);
    return LB_EXIT_CONFIG;
  }
  if (argc - optind != (drop ? 3 : psk_line || rebind || points ? 2 : 1)) {
    lbd_usage (stderr);
    return LB_EXIT_CONFIG;
  }
  config = argv[optind];
  lb_log_init ("lbd", LB_LOG_STDERR, NULL, 0);
  if (psk_line)
    return lbd_psk_line (config, argv[optind + 1], allow_open_key);
  if (rebind)
    return lbd_rebind (config, argv[optind + 1], allow_open_key);
  if (check)
    return lbd_check (config, allow_open_key);
  if (control == NULL) {
    control_default_path (config, control_buf, sizeof control_buf);
    control = control_buf;
  }
  if (status)
    return control_ask (control, json);
  if (points || drop) {
    char args[LB_CTL_ARGS_MAX + 1];
    const char *name = argv[optind + 1], *pt = drop ? argv[optind + 2] : "";
    if (strlen (name) + strlen (pt) + 8 > LB_CTL_ARGS_MAX
        || strpbrk (name, " \n") || strpbrk (pt, " \n")) {
      fprintf (stderr, "lbd: %s: not a client's name\n", name);
      return LB_EXIT_CONFIG;
    }
    snprintf (args, sizeof args, "%s %s%s%s", drop ? "drop" : "points", name,
              drop ? " " : "", pt);
    return control_ask_args (control, json, args);
  }

  if (lb_daemon_settle (&d, "lbd") == -1)
    return LB_EXIT_CONFIG;
  if (d.pidfile && lb_pidfile_open (&pf, d.pidfile, err, sizeof err)
                   != LB_PIDFILE_OPENED) {
    fprintf (stderr, "lbd: %s\n", err);
    return LB_EXIT_FAILURE;
  }
  plan = reload_prepare (config, allow_open_key, RELOAD_APPLY, &why, err,
                         sizeof err);
  if (plan == NULL) {
    fprintf (stderr, "lbd: %s\n", err);
    lb_pidfile_remove (&pf);
    return why == RELOAD_BAD_CONFIG ? LB_EXIT_CONFIG : LB_EXIT_FAILURE;
  }

  signal (SIGPIPE, SIG_IGN);
  if (pipe2 (lbd_sigpipe, O_CLOEXEC | O_NONBLOCK) == -1) {
    perror ("lbd: pipe");
    return LB_EXIT_FAILURE;
  }
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGHUP, &sa, NULL);

  if ((cfd = control_open (control, err, sizeof err)) == -1
      || (user && lb_drop_privileges (user, err, sizeof err) == -1)) {
    fprintf (stderr, "lbd: %s\n", err);
    reload_discard (plan);
    if (cfd >= 0)
      control_close ();
    lb_pidfile_remove (&pf);
    return LB_EXIT_FAILURE;
  }
  /* Written as the user lbd stays, so that a first write proves the
   * later ones can be made.
   */
  {
    int mline;
    const char *mpath = reload_plan_metrics (plan, &mline);
    if (mpath && (mfd = metrics_open (mpath, err, sizeof err)) == -1) {
      fprintf (stderr, "lbd: %s:%d: metrics=%s: %s\n", config, mline, mpath,
               err);
      reload_discard (plan);
      control_close ();
      lb_pidfile_remove (&pf);
      return LB_EXIT_FAILURE;
    }
  }
  if (lb_daemon_start (&d, "lbd", &pf) == -1)
    return LB_EXIT_FAILURE;
  reload_commit (plan);
  metrics_start ();
  lb_daemon_ready ();

  lbd_serve (cfd, mfd, config, allow_open_key);

  lb_info ("shutting down (signal %d)", (int) lbd_quit);
  /* Every session makes its image durable and says goodbye first. */
  reload_shutdown ();
  control_close ();
  lb_pidfile_remove (&pf);
  close (lbd_sigpipe[0]);
  close (lbd_sigpipe[1]);
  return LB_EXIT_OK;
}
