/* lb: the livebackup client.
 *
 *   lb [OPTIONS] UNIT DEVICE HOST PORT KEYFILE
 *   lb --status [--json] [--dir=DIR] [--control=PATH] UNIT
 *
 * Follows livewatch unit UNIT (the nbdkit filter's channel) and ships
 * every write, in order, over one connection to lbd at HOST:PORT,
 * reading DEVICE for scans and catch-up.  Without a server it keeps
 * retrying; meanwhile the filter marks writes in its bitmap.  This file
 * holds the options and the attach loop; a session is session.c's, the
 * status control.c's.  Signal handlers only set a flag.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "control.h"
#include "lb.h"
#include "lb_bytes.h"
#include "lb_conn.h"
#include "lb_ctl.h"
#include "lb_key.h"
#include "lb_log.h"
#include "lb_priv.h"
#include "lw_consumer.h"
#include "session.h"
#include "sink.h"

static volatile sig_atomic_t lb_quit;

static void
lb_on_signal (int sig)
{
  lb_quit = sig;
}

static void
lb_usage (FILE *fp)
{
  fprintf (fp,
"usage: lb [OPTIONS] UNIT DEVICE HOST PORT KEYFILE\n"
"       lb --status [--json] [--dir=DIR] [--control=PATH] UNIT\n"
"\n"
"The livebackup client: ships every write captured by the livewatch filter\n"
"(nbdkit --filter=livewatch ... livewatch-unit=UNIT) to lbd at HOST:PORT.\n"
"DEVICE is the partition nbdkit serves; KEYFILE holds the shared key.\n"
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
"  -z, --compress=LEVEL   compress data with zstd at LEVEL (default: off)\n"
"      --hash-block=SIZE  bytes per hash when scanning (default 64K)\n"
"  -D, --dir=DIR          folder of the livewatch channel (default /dev/shm)\n"
"  -c, --control=PATH     the status socket (default: beside the channel,\n"
"                         DIR/livewatch-UNIT.lb.ctl)\n"
"      --allow-open-key   accept a key file that group or others can read\n"
"  -d, --daemon           detach and log to syslog (default: foreground,\n"
"                         log to stderr)\n"
"  -u, --user=NAME        drop to user NAME once DEVICE and KEYFILE are\n"
"                         open (the channel must be readable by NAME)\n"
"  -s, --status           print UNIT's state and exit\n"
"  -j, --json             with --status: print JSON\n"
"  -v, --verbose          log more\n"
"  -h, --help             this help\n"
"  -V, --version          print the version\n");
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

/* Sleep up to SECONDS, waking early on a signal or when the channel goes
 * away.
 */
static void
lb_pause (int seconds, struct lwc *c)
{
  int i;
  for (i = 0; i < seconds * 10 && !lb_quit; i++) {
    if (c && i % 10 == 0 && !lwc_alive (c))
      return;
    usleep (100000);
  }
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
    { "dir", required_argument, NULL, 'D' },
    { "control", required_argument, NULL, 'c' },
    { "allow-open-key", no_argument, NULL, 'K' },
    { "daemon", no_argument, NULL, 'd' },
    { "user", required_argument, NULL, 'u' },
    { "status", no_argument, NULL, 's' },
    { "json", no_argument, NULL, 'j' },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  struct lb_opts o = { .retry = -1, .defer = 10, .encrypt = true,
                       .hash_block = 64u << 10 };
  static struct lb_session_pub pub;
  static struct lb_sink sink;
  static char control[LB_CTL_PATH_MAX];
  bool status = false, json = false, answering = false, fatal = false;
  char hostname[256], err[1024], *end;
  struct sigaction sa = { .sa_handler = lb_on_signal };
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
        return 2;
      }
      break;
    case 'W':
      o.defer = strtol (optarg, &end, 10);
      if (*end || end == optarg || o.defer < 0 || o.defer > 3600) {
        fprintf (stderr, "lb: --defer=%s: seconds from 0 to 3600\n", optarg);
        return 2;
      }
      break;
    case 'N': o.name = optarg; break;
    case 'P': o.encrypt = false; break;
    case 'z':
      o.compress = strtol (optarg, &end, 10);
      if (*end || o.compress < 0 || o.compress > 19) {
        fprintf (stderr, "lb: --compress=%s: a level from 0 to 19\n", optarg);
        return 2;
      }
      break;
    case 'H':
      if (lb_parse_size (optarg, &o.hash_block) == -1) {
        fprintf (stderr, "lb: --hash-block=%s: a power of 2 from 4K to 16M\n",
                 optarg);
        return 2;
      }
      break;
    case 'D': o.dir = optarg; break;
    case 'c': o.control = optarg; break;
    case 'K': o.allow_open_key = true; break;
    case 'd': o.daemonize = true; break;
    case 'u': o.user = optarg; break;
    case 's': status = true; break;
    case 'j': json = true; break;
    case 'v': lb_log_verbose = true; break;
    case 'h': lb_usage (stdout); return 0;
    case 'V': printf ("lb %s\n", PACKAGE_VERSION); return 0;
    default: lb_usage (stderr); return 2;
    }
  }
  if (argc - optind != (status ? 1 : 5)) {
    lb_usage (stderr);
    return 2;
  }
  o.unit = strtoul (argv[optind], &end, 10);
  if (*end || end == argv[optind] || o.unit > LW_MAX_UNIT) {
    fprintf (stderr, "lb: UNIT=%s: a number from 0 to %u\n", argv[optind],
             LW_MAX_UNIT);
    return 2;
  }

  /* --daemon moves to "/": a relative --dir must not move with it (the
   * control socket's path is made absolute likewise).
   */
  static char absdir[4096];
  if (!status && o.dir && o.dir[0] != '/') {
    if (realpath (o.dir, absdir) == NULL) {
      fprintf (stderr, "lb: --dir=%s: %s\n", o.dir, strerror (errno));
      return 1;
    }
    o.dir = absdir;
  }
  if (o.control ? lb_ctl_path (o.control, control, err, sizeof err)
                : lb_control_default (&o, control, err, sizeof err)) {
    fprintf (stderr, "lb: %s%s%s\n", o.control ? "--control=" : "", err,
             o.control ? "" : "; give --control=PATH");
    /* No lb can answer there; the channel can still be read. */
    if (!status)
      return 2;
    control[0] = '\0';
  }
  o.control = control;
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
    return 2;
  }
  if (o.retry == -1) {
    unsigned r = 0;
    getrandom (&r, sizeof r, 0);
    o.retry = 60 + r % 61;
  }

  lb_log_init ("lb", LB_LOG_STDERR, NULL, 0);
  if (lb_key_load (o.keyfile, o.allow_open_key, &key, err, sizeof err) == -1) {
    fprintf (stderr, "lb: %s\n", err);
    return 1;
  }
  dev_fd = open (o.device, O_RDONLY | O_CLOEXEC);
  if (dev_fd == -1) {
    fprintf (stderr, "lb: DEVICE %s: %s\n", o.device, strerror (errno));
    return 1;
  }
  if (o.user && lb_drop_privileges (o.user, err, sizeof err) == -1) {
    fprintf (stderr, "lb: %s\n", err);
    return 1;
  }
  if (o.daemonize) {
    if (daemon (0, 0) == -1) {
      perror ("lb: daemon");
      return 1;
    }
    lb_log_init ("lb", LB_LOG_SYSLOG, NULL, 0);
  }
  signal (SIGPIPE, SIG_IGN);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGHUP, &sa, NULL);

  while (!lb_quit) {
    enum lb_session_end ended;

    if (c == NULL) {
      c = lwc_attach (o.dir, o.unit, 0, err, sizeof err);
      if (c == NULL) {
        static int last_errno;
        if (errno == EBUSY || errno == EPERM || errno == EPROTO) {
          lb_err ("%s", err);
          fatal = true;
          break;
        }
        if (errno != last_errno)
          lb_info ("waiting for the filter: %s", err);
        last_errno = errno;
        lb_pause (1, NULL);
        continue;
      }
      lb_info ("attached to unit %u: %" PRIu64 " bytes, epoch %016" PRIx64,
               o.unit, lwc_header (c)->dev_size, lwc_header (c)->epoch);
      /* Answer for the unit only as its one consumer: a socket already
       * there is then a dead lb's.
       */
      if (!answering) {
        answering = lb_control_start (&o, &pub, err, sizeof err) == 0;
        if (!answering)
          lb_warn ("no status: %s", err);
      }
      {
        struct stat st;
        if (fstat (dev_fd, &st) == 0 && S_ISREG (st.st_mode)
            && (uint64_t) st.st_size != lwc_header (c)->dev_size)
          lb_warn ("DEVICE %s is %" PRIu64 " bytes but the filter serves %"
                   PRIu64 ": is it the same partition?", o.device,
                   (uint64_t) st.st_size, lwc_header (c)->dev_size);
      }
    }
    ended = lb_session_run (&o, c, &key, dev_fd, &sink, &pub, &lb_quit);
    if (ended == LB_SESSION_CHANNEL_GONE || !lwc_alive (c)) {
      lb_info ("the filter's channel went away (nbdkit stopped or "
               "restarted); reattaching");
      lwc_detach (c);
      c = NULL;
      continue;
    }
    if (lb_quit)
      break;
    if (ended == LB_SESSION_FAILED) {
      lb_info ("retrying in %d s", o.retry);
      lb_pause (o.retry, c);
    }
  }
  lb_info ("exiting");
  lwc_detach (c);
  lb_key_wipe (&key);
  lb_control_stop ();
  return fatal ? 1 : 0;
}
