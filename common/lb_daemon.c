/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: pid files and detaching.  See lb_daemon.h. */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "lb_daemon.h"
#include "lb_err.h"
#include "lb_log.h"

/* How often lb_pidfile_open tries again when the file it locked was
 * replaced meanwhile (its holder removed it as it exited).
 */
#define LB_PIDFILE_TRIES 5

/* The write end of the pipe the detached parent waits on; -1: none. */
static int lb_daemon_ready_fd = -1;

/* The pid written in FD's file, or 0. */
static long
lb_pidfile_read (int fd)
{
  char buf[32];
  ssize_t n = pread (fd, buf, sizeof buf - 1, 0);
  char *end;
  long pid;

  if (n <= 0)
    return 0;
  buf[n] = '\0';
  pid = strtol (buf, &end, 10);
  return end != buf && pid > 0 ? pid : 0;
}

/* Is FD still the file at PATH? */
static bool
lb_pidfile_same (int fd, const char *path)
{
  struct stat a, b;

  return fstat (fd, &a) == 0 && stat (path, &b) == 0
         && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

enum lb_pidfile_open
lb_pidfile_open (struct lb_pidfile *pf, const char *path, char *err,
                 size_t errlen)
{
  char cwd[PATH_MAX];
  int tries, fd;

  pf->fd = -1;
  if (path[0] == '/')
    pf->path = strdup (path);
  else if (getcwd (cwd, sizeof cwd) == NULL
           || asprintf (&pf->path, "%s/%s", cwd, path) == -1)
    pf->path = NULL;
  if (pf->path == NULL) {
    lb_errf (err, errlen, "--pidfile=%s: %s", path, strerror (errno));
    return LB_PIDFILE_FAILED;
  }
  for (tries = 0; tries < LB_PIDFILE_TRIES; tries++) {
    fd = open (pf->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd == -1)
      break;
    if (flock (fd, LOCK_EX | LOCK_NB) == -1) {
      long pid = lb_pidfile_read (fd);
      int e = errno;
      close (fd);
      free (pf->path);
      pf->path = NULL;
      if (e != EWOULDBLOCK) {
        lb_errf (err, errlen, "--pidfile=%s: cannot lock it: %s", path,
                 strerror (e));
        return LB_PIDFILE_FAILED;
      }
      if (pid)
        lb_errf (err, errlen, "--pidfile=%s: held by running process %ld",
                 path, pid);
      else
        lb_errf (err, errlen, "--pidfile=%s: held by a running process",
                 path);
      return LB_PIDFILE_HELD;
    }
    /* Locked; but a holder that exited meanwhile may have removed the
     * file we opened, and another start created a new one: lock that.
     */
    if (lb_pidfile_same (fd, pf->path)) {
      fchmod (fd, 0644);
      pf->fd = fd;
      return LB_PIDFILE_OPENED;
    }
    close (fd);
  }
  lb_errf (err, errlen, "--pidfile=%s: %s", path,
           tries == LB_PIDFILE_TRIES ? "replaced again and again while "
           "being locked" : strerror (errno));
  free (pf->path);
  pf->path = NULL;
  return LB_PIDFILE_FAILED;
}

int
lb_pidfile_write (struct lb_pidfile *pf, char *err, size_t errlen)
{
  char buf[32];
  int n;

  if (pf->path == NULL)
    return 0;
  n = snprintf (buf, sizeof buf, "%ld\n", (long) getpid ());
  if (ftruncate (pf->fd, 0) == -1 || pwrite (pf->fd, buf, n, 0) != n) {
    lb_errf (err, errlen, "%s: %s", pf->path, strerror (errno));
    return -1;
  }
  return 0;
}

void
lb_pidfile_remove (struct lb_pidfile *pf)
{
  if (pf->path == NULL)
    return;
  /* Still locked by us: no one else can have taken the path's file. */
  if (lb_pidfile_same (pf->fd, pf->path))
    unlink (pf->path);
  close (pf->fd);
  pf->fd = -1;
  free (pf->path);
  pf->path = NULL;
}

int
lb_daemon_detach (bool keep_stderr, char *err, size_t errlen)
{
  int p[2], null;
  pid_t pid;
  char c;

  if (pipe2 (p, O_CLOEXEC) == -1) {
    lb_errf (err, errlen, "cannot detach: pipe: %s", strerror (errno));
    return -1;
  }
  pid = fork ();
  if (pid == -1) {
    lb_errf (err, errlen, "cannot detach: fork: %s", strerror (errno));
    close (p[0]);
    close (p[1]);
    return -1;
  }
  if (pid > 0) {
    /* The parent: the shell's (or init's) child.  It leaves without
     * running anything of the program's: the child owns all that now.
     */
    ssize_t n;
    close (p[1]);
    do
      n = read (p[0], &c, 1);
    while (n == -1 && errno == EINTR);
    _exit (n == 1 ? 0 : 1);
  }
  close (p[0]);
  lb_daemon_ready_fd = p[1];
  setsid ();
  if (chdir ("/") == -1) {
    lb_errf (err, errlen, "cannot detach: chdir /: %s", strerror (errno));
    return -1;
  }
  null = open ("/dev/null", O_RDWR);
  if (null == -1) {
    lb_errf (err, errlen, "cannot detach: /dev/null: %s", strerror (errno));
    return -1;
  }
  dup2 (null, 0);
  dup2 (null, 1);
  if (!keep_stderr)
    dup2 (null, 2);
  if (null > 2)
    close (null);
  return 0;
}

void
lb_daemon_ready (void)
{
  ssize_t r;

  if (lb_daemon_ready_fd == -1)
    return;
  r = write (lb_daemon_ready_fd, "", 1);
  (void) r;
  close (lb_daemon_ready_fd);
  lb_daemon_ready_fd = -1;
}

int
lb_daemon_option (struct lb_daemon_opts *d, int ch, const char *arg,
                  const char *prog)
{
  switch (ch) {
  case LB_DAEMON_OPT_DAEMON: d->daemonize = true; return 1;
  case 'd': d->foreground = true; return 1;
  case LB_DAEMON_OPT_PIDFILE: d->pidfile = arg; return 1;
  case LB_DAEMON_OPT_LOG:
    if (!lb_log_parse_dest (arg, &d->dest)) {
      fprintf (stderr, "%s: --log=%s: stderr or syslog\n", prog, arg);
      return -1;
    }
    d->log_given = true;
    return 1;
  }
  return 0;
}

int
lb_daemon_settle (struct lb_daemon_opts *d, const char *prog)
{
  if (d->foreground)
    d->daemonize = false;
  if (!d->log_given)
    d->dest = d->daemonize ? LB_LOG_SYSLOG : LB_LOG_STDERR;
  if (d->daemonize && d->dest == LB_LOG_STDERR && isatty (2)) {
    fprintf (stderr, "%s: --daemon --log=stderr: standard error is a "
             "terminal, which a daemon leaves; redirect it, or log to "
             "syslog\n", prog);
    return -1;
  }
  return 0;
}

int
lb_daemon_start (const struct lb_daemon_opts *d, const char *prog,
                 struct lb_pidfile *pf)
{
  char err[1024];

  if (d->dest == LB_LOG_SYSLOG
      && lb_log_init (prog, LB_LOG_SYSLOG, err, sizeof err) == -1)
    fprintf (stderr, "%s: warning: %s\n", prog, err);
  if ((d->daemonize
       && lb_daemon_detach (d->dest == LB_LOG_STDERR, err, sizeof err) == -1)
      || lb_pidfile_write (pf, err, sizeof err) == -1) {
    lb_err ("%s", err);
    return -1;
  }
  return 0;
}
