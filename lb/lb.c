/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: the livebackup client.
 *
 *   lb [OPTIONS] UNIT DEVICE HOST PORT KEYFILE
 *   lb --status [--json] [--dir=DIR] [--control=PATH] UNIT
 *   lb --verify [--json] [--dir=DIR] [--control=PATH] UNIT
 *   lb --mark=LABEL [--wait[=SECONDS]] [--json] ... UNIT
 *
 * Follows livewatch unit UNIT (the nbdkit filter's channel) and ships
 * every write, in order, over one connection to lbd at HOST:PORT,
 * reading DEVICE for scans and catch-up.  Without a server it keeps
 * retrying; meanwhile the filter marks writes in its bitmap.  What
 * retrying cannot heal (a malformed argument, a key file or DEVICE that
 * cannot be read, a channel that is not to be trusted) ends lb at once
 * with exit status 2.  This file holds the options and the attach loop;
 * a session is session.c's, the status control.c's.  Signal handlers
 * only set a flag: SIGTERM and SIGINT stop cleanly, SIGHUP reads the
 * key file again.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "compress.h"
#include "control.h"
#include "device.h"
#include "lb.h"
#include "lb_bytes.h"
#include "lb_conn.h"
#include "lb_ctl.h"
#include "lb_daemon.h"
#include "lb_key.h"
#include "lb_log.h"
#include "lb_priv.h"
#include "lb_rate.h"
#include "lw_consumer.h"
#include "progress.h"
#include "session.h"
#include "sink.h"

static volatile sig_atomic_t lb_quit, lb_hup;

static void
lb_on_signal (int sig)
{
  if (sig == SIGHUP)
    lb_hup = 1;
  else
    lb_quit = sig;
}

static void
lb_usage (FILE *fp)
{
  fprintf (fp,
"usage: lb [OPTIONS] UNIT DEVICE HOST PORT KEYFILE\n"
"       lb --status [--json] [--dir=DIR] [--control=PATH] UNIT\n"
"       lb --verify [--json] [--dir=DIR] [--control=PATH] UNIT\n"
"       lb --mark=LABEL [--wait[=SECONDS]] [--json] [--dir=DIR]\n"
"          [--control=PATH] UNIT\n"
"\n"
"The livebackup client: ships every write captured by the livewatch filter\n"
"(nbdkit --filter=livewatch ... livewatch-unit=UNIT) to lbd at HOST:PORT.\n"
"DEVICE is the partition nbdkit serves (lb refuses another file: exit 2);\n"
"KEYFILE holds the shared key.\n"
"\n"
"  -r, --retry=SECONDS    reconnect interval (default: random 60-120)\n"
"      --defer=SECONDS    in a burst, wait up to SECONDS for the writes to\n"
"                         pause before copying marked blocks (default 10;\n"
"                         0: copy at once)\n"
"  -N, --name=NAME        client name, sent as the PSK identity (default:\n"
"                         this host's short name); needed where several\n"
"                         clients share one lbd listen address\n"
"      --no-encrypt       plain mode: authenticated, not encrypted (trusted\n"
"                         networks only; lbd's line must say encrypt=no)\n"
"  -z, --compress=auto|off|LEVEL  compress data with zstd: auto (the\n"
"                         default) when the link is the bottleneck, at a\n"
"                         level suited to its speed, and not data that does\n"
"                         not compress; off (or 0); or always at LEVEL 1-19\n"
"      --max-rate=BYTES   send at most BYTES a second (suffix K, M or G;\n"
"                         default 0: no limit); writes never wait for it:\n"
"                         the filter degrades instead\n"
"      --hash-block=SIZE  bytes per hash where a scanned 4 MiB region\n"
"                         differs (default 64K)\n"
"  -D, --dir=DIR          folder of the livewatch channel (default /dev/shm)\n"
"  -c, --control=PATH     the status socket (default: beside the channel,\n"
"                         DIR/livewatch-UNIT.lb.ctl)\n"
"      --allow-open-key   accept a key file that group or others can read\n"
"      --daemon           detach from the terminal (and log to syslog,\n"
"                         unless --log says otherwise)\n"
"  -d, --foreground       stay in the foreground, even with --daemon\n"
"                         (the default; on a terminal, with a progress\n"
"                         line for scans and catch-ups)\n"
"      --pidfile=PATH     write lb's pid into PATH (locked while lb runs,\n"
"                         removed at exit); refuse to start if a running\n"
"                         process holds it\n"
"      --log=stderr|syslog  where to log (default: stderr in the\n"
"                         foreground, syslog with --daemon)\n"
"  -u, --user=NAME        drop to user NAME once DEVICE and KEYFILE are\n"
"                         open (the channel must be readable and writable\n"
"                         by NAME, and KEYFILE readable for SIGHUP)\n"
"  -s, --status           print UNIT's state and exit: 0 live and current,\n"
"                         1 behind (connecting, scanning, catching up,\n"
"                         waiting for the filter), 2 not running or not\n"
"                         responding\n"
"      --verify           have the running lb compare UNIT's partition with\n"
"                         its image by hashes, in live mode, while writes go\n"
"                         on, and repair what differs; print the ranges that\n"
"                         differed and exit: 0 all matched, 1 mismatches\n"
"                         found (repaired), 2 no verify (lb not running,\n"
"                         the unit not live, the pass cut short)\n"
"      --mark=LABEL       ask the running lb for a mark: a restore point on\n"
"                         lbd (NAME@LABEL) of the moment right after every\n"
"                         write completed so far (e.g. between fsfreeze -f\n"
"                         and -u); returns once the mark is placed: 0\n"
"                         placed, 1 refused (the image is not live: it says\n"
"                         why), 2 no lb answers\n"
"      --wait[=SECONDS]   with --mark: also wait (default 60 s) for lbd's\n"
"                         point: 0 taken, 1 none (it says why)\n"
"  -j, --json             with --status, --verify or --mark: print JSON\n"
"  -v, --verbose          also log debug messages (every sync point, the\n"
"                         waits for a burst of writes to end)\n"
"  -h, --help             this help\n"
"  -V, --version          print the version\n"
"\n"
"SIGTERM stops cleanly; SIGHUP reads KEYFILE again.  Exit status: 0 a\n"
"clean stop, 1 a failure at run time, 2 a usage or permanent\n"
"configuration error.\n");
}

static int
lb_parse_size (const char *s, uint32_t *out)
{
  char *end;
  unsigned long long v = strtoull (s, &end, 10);

  if (end == s)
    return -1;
  if (*end == 'k' || *end == 'K') v <<= 10, end++;
  else if (*end == 'm' || *end == 'M') v <<= 20, end++;
  if (*end != '\0' || v < 4096 || v > (16u << 20) || !lb_is_pow2 (v))
    return -1;
  *out = v;
  return 0;
}

/* PORT as lb_session_connect gives it to getaddrinfo: a number from 1
 * to 65535, or a service name this host knows (/etc/services: local,
 * so an unknown one never heals).
 */
static bool
lb_port_ok (const char *port)
{
  char *end;
  unsigned long v;

  if (*port >= '0' && *port <= '9') {
    v = strtoul (port, &end, 10);
    return *end == '\0' && v >= 1 && v <= 65535;
  }
  return getservbyname (port, "tcp") != NULL;
}

/* HOST as getaddrinfo can ever resolve it: an address literal, or a
 * name of dot-separated labels of 1 to 63 letters, digits, '-' or '_',
 * at most 253 bytes.  Whether a well-formed name resolves is the DNS's
 * business, which may be down for a while: that stays retryable.
 */
static bool
lb_host_ok (const char *host)
{
  unsigned char buf[sizeof (struct in6_addr)];
  size_t len = strlen (host), label = 0, i;

  if (inet_pton (AF_INET, host, buf) == 1 || inet_pton (AF_INET6, host, buf) == 1)
    return true;
  if (len == 0 || len > 253 + (host[len - 1] == '.'))
    return false;
  for (i = 0; i < len; i++) {
    unsigned char ch = host[i];
    if (ch == '.') {
      if (label == 0)
        return false;
      label = 0;
    }
    else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
             || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_') {
      if (++label > 63)
        return false;
    }
    else
      return false;
  }
  return true;
}

/* Sleep up to SECONDS, waking early on a signal or when the channel goes
 * away; still moving, for status (P).
 */
static void
lb_pause (int seconds, struct lwc *c, struct lb_progress *p)
{
  int i;
  for (i = 0; i < seconds * 10 && !lb_quit && !lb_hup; i++) {
    if (c && i % 10 == 0 && !lwc_alive (c))
      return;
    lb_progress_beat (p);
    usleep (100000);
  }
}

/* Is DEVICE (DEV_FD) what channel C's filter serves?  Logs why not, and
 * returns -1: lb must not back up another disk in the unit's name.
 */
static int
lb_check_device (const struct lb_opts *o, int dev_fd, struct lwc *c)
{
  char err[2048];

  switch (lb_device_match (dev_fd, o->device, o->unit, lwc_header (c), err,
                           sizeof err)) {
  case LB_DEVICE_SAME:
    return 0;
  case LB_DEVICE_SIZE_ONLY:
    lb_warn ("warning: %s", err);
    return 0;
  case LB_DEVICE_OTHER:
    break;
  }
  lb_err ("%s; not backing it up (give the DEVICE nbdkit's file= names)",
          err);
  return -1;
}

int
main (int argc, char **argv)
{
  static const struct option opts[] = {
    { "retry", required_argument, NULL, 'r' },
    { "defer", required_argument, NULL, 'W' },
    { "name", required_argument, NULL, 'N' },
    { "no-encrypt", no_argument, NULL, 'P' },
    { "compress", required_argument, NULL, 'z' },
    { "hash-block", required_argument, NULL, 'H' },
    { "max-rate", required_argument, NULL, 'R' },
    { "dir", required_argument, NULL, 'D' },
    { "control", required_argument, NULL, 'c' },
    { "allow-open-key", no_argument, NULL, 'K' },
    LB_DAEMON_LONG_OPTIONS,
    { "user", required_argument, NULL, 'u' },
    { "status", no_argument, NULL, 's' },
    { "verify", no_argument, NULL, 'Y' },
    { "mark", required_argument, NULL, 'M' },
    { "wait", optional_argument, NULL, 'w' },
    { "json", no_argument, NULL, 'j' },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  struct lb_opts o = { .retry = -1, .defer = 10, .encrypt = true,
                       .hash_block = 64u << 10,
                       .compress = LB_COMPRESS_AUTO };
  static struct lb_session_pub pub;
  static struct lb_sink sink;
  static char control[LB_CTL_PATH_MAX];
  bool status = false, verify = false, json = false;
  const char *mark = NULL;
  int wait_s = 0;
  struct lb_daemon_opts d = { .dest = LB_LOG_STDERR };
  enum lb_exit ex = LB_EXIT_OK;
  char hostname[256], err[1024], *end;
  static char abskey[PATH_MAX];
  struct sigaction sa = { .sa_handler = lb_on_signal,
                          .sa_flags = SA_RESTART };
  struct lb_pidfile pf = LB_PIDFILE_NONE;
  struct lb_key key;
  struct lwc *c = NULL;
  int ch, dev_fd;

  while ((ch = getopt_long (argc, argv, "r:N:z:D:c:du:sjvhV", opts, NULL))
         != -1) {
    switch (ch) {
    case 'r':
      o.retry = strtol (optarg, &end, 10);
      if (*end || o.retry < 1 || o.retry > 86400) {
        fprintf (stderr, "lb: --retry=%s: seconds from 1 to 86400\n", optarg);
        return LB_EXIT_CONFIG;
      }
      break;
    case 'W':
      o.defer = strtol (optarg, &end, 10);
      if (*end || end == optarg || o.defer < 0 || o.defer > 3600) {
        fprintf (stderr, "lb: --defer=%s: seconds from 0 to 3600\n", optarg);
        return LB_EXIT_CONFIG;
      }
      break;
    case 'N': o.name = optarg; break;
    case 'P': o.encrypt = false; break;
    case 'z':
      if (lb_compress_parse (optarg, &o.compress) == -1) {
        fprintf (stderr, "lb: --compress=%s: auto, off, or a level from 0 "
                 "to 19\n", optarg);
        return LB_EXIT_CONFIG;
      }
      break;
    case 'R':
      if (lb_rate_parse (optarg, strlen (optarg), &o.max_rate) == -1) {
        fprintf (stderr, "lb: --max-rate=%s: bytes a second, a number with "
                 "an optional K, M or G\n", optarg);
        return LB_EXIT_CONFIG;
      }
      break;
    case 'H':
      if (lb_parse_size (optarg, &o.hash_block) == -1) {
        fprintf (stderr, "lb: --hash-block=%s: a power of 2 from 4K to 16M\n",
                 optarg);
        return LB_EXIT_CONFIG;
      }
      break;
    case 'D': o.dir = optarg; break;
    case 'c': o.control = optarg; break;
    case 'K': o.allow_open_key = true; break;
    case 'u': o.user = optarg; break;
    case 's': status = true; break;
    case 'Y': verify = true; break;
    case 'M':
      if (!lw_mark_label_ok (optarg, strlen (optarg))) {
        fprintf (stderr, "lb: --mark=%s: a label is 1 to %d letters, digits, "
                 "'.', '_' or '-', starting with a letter\n", optarg,
                 LW_MARK_LABEL_MAX - 1);
        return LB_EXIT_CONFIG;
      }
      mark = optarg;
      break;
    case 'w':
      wait_s = optarg ? (int) strtol (optarg, &end, 10) : 60;
      if (optarg && (*end || end == optarg || wait_s < 1 || wait_s > 86400)) {
        fprintf (stderr, "lb: --wait=%s: seconds from 1 to 86400\n", optarg);
        return LB_EXIT_CONFIG;
      }
      break;
    case 'j': json = true; break;
    case 'v': lb_log_verbose = true; break;
    case 'h': lb_usage (stdout); return LB_EXIT_OK;
    case 'V': printf ("lb %s\n", PACKAGE_VERSION); return LB_EXIT_OK;
    default:
      switch (lb_daemon_option (&d, ch, optarg, "lb")) {
      case 1: continue;
      case -1: return LB_EXIT_CONFIG;
      }
      lb_usage (stderr);
      return LB_EXIT_CONFIG;
    }
  }
  if (status + verify + (mark != NULL) > 1) {
    fprintf (stderr, "lb: --status, --verify and --mark: one at a time\n");
    return LB_EXIT_CONFIG;
  }
  status = status || verify;
  if (wait_s > 0 && !mark) {
    fprintf (stderr, "lb: --wait goes with --mark\n");
    return LB_EXIT_CONFIG;
  }
  if (mark)
    status = true;              /* the same arguments: UNIT alone */
  if (argc - optind != (status ? 1 : 5)) {
    /* One line says what is wrong; the whole help only when asked. */
    if (status)
      fprintf (stderr, "lb: --%s takes UNIT alone (%d argument%s given); "
               "lb --help says more\n", mark ? "mark" : verify ? "verify"
               : "status", argc - optind, argc - optind == 1 ? "" : "s");
    else
      fprintf (stderr, "lb: UNIT DEVICE HOST PORT KEYFILE expected (%d "
               "argument%s given); lb --help says more\n", argc - optind,
               argc - optind == 1 ? "" : "s");
    return LB_EXIT_CONFIG;
  }
  o.unit = strtoul (argv[optind], &end, 10);
  if (*end || end == argv[optind] || o.unit > LW_MAX_UNIT) {
    fprintf (stderr, "lb: UNIT=%s: a number from 0 to %u\n", argv[optind],
             LW_MAX_UNIT);
    return LB_EXIT_CONFIG;
  }

  /* --daemon moves to "/": a relative --dir must not move with it (the
   * control socket's path is made absolute likewise).
   */
  static char absdir[4096];
  if (!status && o.dir && o.dir[0] != '/') {
    if (realpath (o.dir, absdir) == NULL) {
      fprintf (stderr, "lb: --dir=%s: %s\n", o.dir, strerror (errno));
      return LB_EXIT_CONFIG;
    }
    o.dir = absdir;
  }
  if (o.control ? lb_ctl_path (o.control, control, err, sizeof err)
                : lb_control_default (&o, control, err, sizeof err)) {
    fprintf (stderr, "lb: %s%s%s\n", o.control ? "--control=" : "", err,
             o.control ? "" : "; give --control=PATH");
    /* No lb can answer there; the channel can still be read. */
    if (!status)
      return LB_EXIT_CONFIG;
    control[0] = '\0';
  }
  o.control = control;
  if (verify)
    return lb_control_verify_command (&o, json);
  if (mark)
    return control[0] ? lb_control_mark (&o, mark, wait_s, json)
                      : LB_EXIT_CONFIG;
  if (status)
    return lb_control_status (&o, json);

  o.device = argv[optind + 1];
  o.host = argv[optind + 2];
  o.port = argv[optind + 3];
  o.keyfile = argv[optind + 4];
  if (o.name == NULL) {
    if (gethostname (hostname, sizeof hostname) == -1)
      snprintf (hostname, sizeof hostname, "lb");
    hostname[strcspn (hostname, ".")] = '\0';
    o.name = hostname;
  }
  if (!lb_conn_identity_ok (o.name)) {
    fprintf (stderr, "lb: --name=%s: use at most 255 printable ASCII "
             "characters, no blanks\n", o.name);
    return LB_EXIT_CONFIG;
  }
  if (!lb_host_ok (o.host)) {
    fprintf (stderr, "lb: HOST=%s: neither an address nor a host name (an "
             "IPv6 address goes without brackets)\n", o.host);
    return LB_EXIT_CONFIG;
  }
  if (!lb_port_ok (o.port)) {
    fprintf (stderr, "lb: PORT=%s: neither a port number (1 to 65535) nor a "
             "service name of this host (/etc/services)\n", o.port);
    return LB_EXIT_CONFIG;
  }
  if (o.retry == -1) {
    unsigned r = 0;
    getrandom (&r, sizeof r, 0);
    o.retry = 60 + r % 61;
  }
  if (lb_daemon_settle (&d, "lb") == -1)
    return LB_EXIT_CONFIG;
  o.daemonize = d.daemonize;

  lb_log_init ("lb", LB_LOG_STDERR, NULL, 0);
  if (lb_key_load (o.keyfile, o.allow_open_key, &key, err, sizeof err) == -1) {
    fprintf (stderr, "lb: %s\n", err);
    return LB_EXIT_CONFIG;
  }
  /* SIGHUP reads it again, after --daemon moved to "/". */
  if (realpath (o.keyfile, abskey))
    o.keyfile = abskey;
  dev_fd = open (o.device, O_RDONLY | O_CLOEXEC);
  if (dev_fd == -1) {
    fprintf (stderr, "lb: DEVICE %s: %s\n", o.device, strerror (errno));
    return LB_EXIT_CONFIG;
  }
  if (d.pidfile && lb_pidfile_open (&pf, d.pidfile, err, sizeof err)
                   != LB_PIDFILE_OPENED) {
    fprintf (stderr, "lb: %s\n", err);
    return LB_EXIT_FAILURE;
  }
  if (o.user && lb_drop_privileges (o.user, err, sizeof err) == -1) {
    fprintf (stderr, "lb: %s\n", err);
    lb_pidfile_remove (&pf);
    return LB_EXIT_FAILURE;
  }
  /* Where another lb answers, the unit is taken (or soon will be): say
   * so while a terminal may still read it.
   */
  if (lb_ctl_in_use (o.control)) {
    fprintf (stderr, "lb: %s: another lb answers there (does one follow "
             "unit %u already?)\n", o.control, o.unit);
    lb_pidfile_remove (&pf);
    return LB_EXIT_FAILURE;
  }
  if (lb_daemon_start (&d, "lb", &pf) == -1)
    return LB_EXIT_FAILURE;
  if (!d.daemonize && d.dest == LB_LOG_STDERR && isatty (STDERR_FILENO))
    lb_progress_tty ();
  signal (SIGPIPE, SIG_IGN);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGHUP, &sa, NULL);
  lb_daemon_ready ();
  {
    char where[4096];
    if (lb_device_mounted (dev_fd, where, sizeof where))
      lb_warn ("warning: DEVICE %s is mounted at %s: writes made there "
               "bypass nbdkit and are not captured, and the backup will "
               "miss them (mount the NBD device nbdkit serves instead)",
               o.device, where);
  }

  /* Status from the start: an lb waiting for its channel says so. */
  lb_progress_idle (&pub.progress);
  lb_progress_beat (&pub.progress);
  switch (lb_control_start (&o, &pub, err, sizeof err)) {
  case LB_CONTROL_STARTED:
    break;
  case LB_CONTROL_TAKEN:
    lb_err ("%s", err);
    return 1;
  case LB_CONTROL_FAILED:
    lb_warn ("no status: %s", err);
    break;
  }

  while (!lb_quit) {
    enum lb_session_end ended;

    if (lb_hup) {
      lb_hup = 0;
      lb_session_reload_key (&o, &key);
    }
    if (c == NULL) {
      c = lwc_attach (o.dir, o.unit, 0, err, sizeof err);
      if (c == NULL) {
        static int last_errno;
        /* Another consumer may go away; a channel not to be trusted, or
         * of another layout, will not change by itself.
         */
        if (errno == EBUSY || errno == EPERM || errno == EPROTO) {
          lb_err ("%s", err);
          ex = errno == EBUSY ? LB_EXIT_FAILURE : LB_EXIT_CONFIG;
          break;
        }
        if (errno != last_errno)
          lb_info ("waiting for the filter: %s", err);
        last_errno = errno;
        lb_control_waiting (err);
        lb_pause (1, NULL, &pub.progress);
        continue;
      }
      lb_info ("attached to unit %u: %" PRIu64 " bytes, epoch %016" PRIx64,
               o.unit, lwc_header (c)->dev_size, lwc_header (c)->epoch);
      lb_control_waiting (NULL);
      /* The unit's one consumer answers for it. */
      lb_control_claim ();
      /* At every attach: a restarted nbdkit may serve another file. */
      if (lb_check_device (&o, dev_fd, c) == -1) {
        ex = LB_EXIT_CONFIG;
        break;
      }
    }
    ended = lb_session_run (&o, c, &key, dev_fd, &sink, &pub, &lb_quit,
                            &lb_hup);
    if (ended == LB_SESSION_CHANNEL_GONE || !lwc_alive (c)) {
      lb_info ("the filter's channel went away (nbdkit stopped or "
               "restarted); reattaching");
      lwc_detach (c);
      c = NULL;
      continue;
    }
    if (ended == LB_SESSION_REFUSED) {
      ex = LB_EXIT_CONFIG;
      break;
    }
    if (lb_quit)
      break;
    if (ended == LB_SESSION_FAILED || ended == LB_SESSION_SERVER_ENDED) {
      lb_info ("retrying in %d s", o.retry);
      lb_pause (o.retry, c, &pub.progress);
    }
  }
  lb_info ("exiting");
  lwc_detach (c);
  lb_key_wipe (&key);
  lb_control_stop ();
  lb_pidfile_remove (&pf);
  return ex;
}
