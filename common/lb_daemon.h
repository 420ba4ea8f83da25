/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: what makes lb and lbd conventional daemons — a pid file
 * and detaching from the terminal.
 *
 * Both programs run in the foreground by default; --daemon detaches.
 * The order at start is the same in both:
 *
 *   lb_pidfile_open      (refused now, on the terminal, if another
 *                         process holds the file)
 *   ... load, bind, open what can fail at start ...
 *   lb_daemon_detach     (--daemon: the parent waits here)
 *   lb_pidfile_write     (the process's own pid, once it is the one
 *                         that stays)
 *   lb_daemon_ready      (the parent exits 0: the service is up, its
 *                         pid file written — what an init system that
 *                         follows the pid file needs)
 *   ... serve ...
 *   lb_pidfile_remove    (at a clean exit)
 *
 * A pid file is "held" while its process lives: lbd and lb hold an
 * exclusive lock (flock) on it for as long as they run, which the
 * kernel drops when the process dies however it dies, so a stale file
 * left by a killed process never blocks a new start, and a live one
 * always does.  The lock belongs to the open file, which the detached
 * child inherits.
 */

#ifndef LIVEBACKUP_LB_DAEMON_H
#define LIVEBACKUP_LB_DAEMON_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lb_log.h"

/* The exit status of lb and lbd (lb.8, lbd.8: EXIT STATUS). */
enum lb_exit {
  LB_EXIT_OK = 0,               /* a clean stop; a check that passed */
  LB_EXIT_FAILURE = 1,          /* at run time: what may heal by itself */
  LB_EXIT_CONFIG = 2,           /* usage, or a permanent configuration
                                   error: retrying cannot help */
};

/* The options both programs take for this (lb.8, lbd.8: OPTIONS):
 *   --daemon            detach (and log to syslog, unless --log says)
 *   -d, --foreground    stay in the foreground, even with --daemon (it
 *                       wins, as OpenBSD daemons' -d does)
 *   --pidfile=PATH
 *   --log=stderr|syslog (default: syslog with --daemon, else stderr)
 * LB_DAEMON_LONG_OPTIONS go into the program's getopt_long table, "d"
 * into its short options; lb_daemon_option takes what getopt returns.
 */
enum {
  LB_DAEMON_OPT_DAEMON = 0x100,
  LB_DAEMON_OPT_PIDFILE,
  LB_DAEMON_OPT_LOG,
};
#define LB_DAEMON_LONG_OPTIONS                                          \
  { "daemon", no_argument, NULL, LB_DAEMON_OPT_DAEMON },                \
  { "foreground", no_argument, NULL, 'd' },                             \
  { "pidfile", required_argument, NULL, LB_DAEMON_OPT_PIDFILE },        \
  { "log", required_argument, NULL, LB_DAEMON_OPT_LOG }

struct lb_daemon_opts {
  bool daemonize, foreground, log_given;
  enum lb_log_dest dest;
  const char *pidfile;
};

/* What getopt_long returned (CH, with ARG), if it is one of these.
 * Returns 1 if taken, 0 if CH is not one of them, -1 for a bad value
 * (said on standard error as "PROG: --log=...: ...").
 */
extern int lb_daemon_option (struct lb_daemon_opts *d, int ch,
                             const char *arg, const char *prog);

/* After the options: -d over --daemon, the default --log.  0, or -1 if
 * --daemon is to log to a standard error that is a terminal, which a
 * daemon leaves (said on standard error): a usage error.
 */
extern int lb_daemon_settle (struct lb_daemon_opts *d, const char *prog);

struct lb_pidfile {
  char *path;                   /* NULL: no pid file */
  int fd;
};
#define LB_PIDFILE_NONE { NULL, -1 }

enum lb_pidfile_open {
  LB_PIDFILE_OPENED,            /* created or taken over, and locked */
  LB_PIDFILE_HELD,              /* another live process holds it */
  LB_PIDFILE_FAILED,            /* cannot be created or locked */
};

/* Open PATH (creating it, mode 0644) and lock it for this process.  On
 * LB_PIDFILE_HELD or _FAILED, ERR says so, naming PATH (and the holder's
 * pid, when the file holds one).  A relative PATH is made absolute, so
 * that lb_pidfile_remove finds it after detaching.
 */
extern enum lb_pidfile_open lb_pidfile_open (struct lb_pidfile *pf,
                                             const char *path,
                                             char *err, size_t errlen);

/* Write this process's pid into PF's file (nothing without a pid file).
 * 0, or -1 with ERR.
 */
extern int lb_pidfile_write (struct lb_pidfile *pf, char *err,
                             size_t errlen);

/* Remove PF's file if it is still the one this process holds, and
 * unlock it.  Fine without a pid file.
 */
extern void lb_pidfile_remove (struct lb_pidfile *pf);

/* Detach: fork; the parent waits until the child calls lb_daemon_ready
 * (then exits 0) or dies first (then exits 1: the child logged why).
 * The child becomes a session leader, changes to "/", and points
 * standard input and output at /dev/null, and standard error too unless
 * KEEP_STDERR.  Returns 0 in the child, or -1 with ERR (no fork).
 */
extern int lb_daemon_detach (bool keep_stderr, char *err, size_t errlen);

/* Tell the waiting parent that the daemon is up.  Nothing if this
 * process did not detach, or said so already.
 */
extern void lb_daemon_ready (void);

/* Once all that can fail at start is done: log to syslog from now on
 * if D says so (warning on standard error if none listens), detach if
 * D says so, and write PF's pid.  0, or -1 (logged).
 */
extern int lb_daemon_start (const struct lb_daemon_opts *d,
                            const char *prog, struct lb_pidfile *pf);

#endif /* LIVEBACKUP_LB_DAEMON_H */
