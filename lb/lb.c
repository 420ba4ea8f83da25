/* lb: the livebackup client.
 *
 *   lb [OPTIONS] UNIT DEVICE HOST PORT KEYFILE
 *   lb --status [--json] [--dir=DIR] UNIT
 *
 * Follows livewatch unit UNIT (the nbdkit filter's channel) and ships
 * every write, in order, over one connection to lbd at HOST:PORT,
 * reading DEVICE for scans and catch-up.  Without a server it keeps
 * retrying; meanwhile the filter marks writes in its bitmap.  Signal
 * handlers only set a flag.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>


#include "lb_bytes.h"
#include "lb_conn.h"
#include "lb_json.h"
#include "lb_key.h"
#include "lb_log.h"
#include "lb_priv.h"
#include "lb_proto.h"
#include "lb_wire.h"
#include "lw_consumer.h"
#include "lw_follow.h"
#include "sink.h"

static volatile sig_atomic_t lb_quit;

static void
lb_on_signal (int sig)
{
  lb_quit = sig;
}

struct lb_opts {
  unsigned unit;
  const char *device, *host, *port, *keyfile;
  const char *dir;
  const char *name;
  const char *user;
  int retry;                    /* seconds; -1: random 60-120 */
  int defer;                    /* seconds a pass waits for a burst's end */
  bool encrypt, daemonize, allow_open_key;
  int compress;
  uint32_t hash_block;
};

/* What lb publishes for lb --status, beside the channel. */
struct lb_pub {
  const struct lb_opts *o;
  char path[4096];
  _Atomic int connected;
  _Atomic uint64_t since;
  struct lb_sink *_Atomic sink;
  uint64_t last_bytes, last_time;
  uint64_t rate;
};

static struct lb_pub lb_pub;

static void
lb_usage (FILE *fp)
{
  fprintf (fp,
"usage: lb [OPTIONS] UNIT DEVICE HOST PORT KEYFILE\n"
"       lb --status [--json] [--dir=DIR] UNIT\n"
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

static int
lb_connect (const struct lb_opts *o, char *err, size_t errlen)
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
    lb_conn_set_keepalive (fd);
  }
  return fd;
}

/* The status file: written atomically every second. */
static void
lb_publish (void)
{
  struct lb_sink *s = atomic_load (&lb_pub.sink);
  char tmp[4200];
  uint64_t now = time (NULL), bytes = s ? atomic_load (&s->bytes_sent) : 0;
  FILE *fp;

  if (now > lb_pub.last_time) {
    lb_pub.rate = bytes >= lb_pub.last_bytes
                  ? (bytes - lb_pub.last_bytes) / (now - lb_pub.last_time) : 0;
    lb_pub.last_bytes = bytes;
    lb_pub.last_time = now;
  }
  snprintf (tmp, sizeof tmp, "%s.tmp", lb_pub.path);
  fp = fopen (tmp, "w");
  if (fp == NULL)
    return;
  fprintf (fp, "pid=%ld\nserver=%s/%s\nconnected=%d\nsince=%" PRIu64 "\n"
           "phase=%s\ndeferring=%d\nbytes_sent=%" PRIu64 "\nrate=%" PRIu64 "\n"
           "bytes_scanned=%" PRIu64 "\nbytes_same=%" PRIu64 "\n"
           "last_consistent=%" PRIu64 "\nupdated=%" PRIu64 "\n",
           (long) getpid (), lb_pub.o->host, lb_pub.o->port,
           atomic_load (&lb_pub.connected), atomic_load (&lb_pub.since),
           s && atomic_load (&lb_pub.connected)
           ? lbp_phase_name (atomic_load (&s->pub_phase)) : "connecting",
           s && atomic_load (&lb_pub.connected)
           ? atomic_load (&s->pub_deferring) : 0,
           bytes, lb_pub.rate,
           s ? atomic_load (&s->bytes_scanned) : 0,
           s ? atomic_load (&s->bytes_same) : 0,
           s ? atomic_load (&s->last_consistent) : 0, now);
  fclose (fp);
  rename (tmp, lb_pub.path);
}

static void *
lb_publisher (void *arg)
{
  (void) arg;
  while (!lb_quit) {
    lb_publish ();
    sleep (1);
  }
  return NULL;
}

/* One session with lbd on an attached channel.  Returns lwf_run's
 * result, or -1 if the connection failed before it.
 */
static int
lb_session (const struct lb_opts *o, struct lwc *c, const struct lb_key *key,
            int dev_fd, struct lb_sink *sink)
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

  fd = lb_connect (o, err, sizeof err);
  if (fd == -1) {
    lb_warn ("cannot connect to %s", err);
    return -1;
  }
  memset (sink, 0, sizeof *sink);
  sink->dev_fd = dev_fd;
  sink->dev_size = h->dev_size;
  sink->hash_block = o->hash_block;
  sink->compress = o->compress;
  sink->quit = &lb_quit;
  sink->conn = lb_conn_client (fd, o->name, key, o->encrypt, 15000,
                               err, sizeof err);
  if (sink->conn == NULL) {
    lb_warn ("%s/%s: %s", o->host, o->port, err);
    close (fd);
    return -1;
  }
  if (lb_sink_init (sink) == -1) {
    lb_err ("out of memory");
    lb_conn_close (sink->conn);
    return -1;
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
    return -1;
  }
  lb_info ("connected to %s/%s (%s); image: epoch %016" PRIx64 " seq %"
           PRIu64 ", %s", o->host, o->port,
           lb_conn_encrypted (sink->conn) ? "TLS" : "plain", m.epoch, m.seq,
           lbp_phase_name (m.phase));
  atomic_store (&lb_pub.connected, 1);
  atomic_store (&lb_pub.since, (uint64_t) time (NULL));
  atomic_store (&lb_pub.sink, sink);

  /* Continuity: can the image continue from where it stands? */
  at = (struct lwf_mark) { .seq = m.seq, .gen = m.gen, .swept = m.swept };
  start = lwf_decide (c, m.epoch, &at, m.phase == LBP_PHASE_SCANNING, &why);
  if (start == LWF_CONTINUE)
    lb_info ("continuing from seq %" PRIu64 " (no scan needed)", m.seq);
  else if (start == LWF_RESUME_SCAN)
    lb_info ("resuming the cut scan at byte %" PRIu64 " of %" PRIu64
             ", from seq %" PRIu64, m.swept, h->dev_size, m.seq);
  else {
    uint64_t gen, acked;
    char g[24];
    lwc_gen_get (c, &gen, &acked);
    lb_info ("full scan: %s (image: epoch %016" PRIx64 " seq %" PRIu64
             " gen %s; unit: epoch %016" PRIx64 " released seq %" PRIu64
             " gen %" PRIu64 "/%" PRIu64 ", started %s%s%s)", why, m.epoch,
             m.seq, lbp_gen_name (m.gen, g), h->epoch, lwc_released_seq (c),
             acked, gen, lw_start_name (h->start_kind),
             h->start_reason[0] ? ": " : "", h->start_reason);
  }
  sink->phase = m.phase;
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
  atomic_store (&lb_pub.connected, 0);
  atomic_store (&lb_pub.sink, NULL);
  lb_conn_close (sink->conn);
  lb_sink_free (sink);
  return sink->failed ? -1 : r;
}

static int
lb_status (const char *dir, unsigned unit, bool json)
{
  char err[512], path[4200], line[256];
  struct lwc *c = lwc_attach (dir, unit, LWC_OBSERVE, err, sizeof err);
  const struct lw_header *h;
  uint64_t dirty = 0, pending = 0, used = 0, ring = 0, bs = 0;
  char kv[16][2][128];
  int nkv = 0, i;
  bool lb_alive = false;
  FILE *fp;

  snprintf (path, sizeof path, "%s/" LW_FILE_PREFIX "%u.lb",
            dir ? dir : LW_DEFAULT_DIR, unit);
  fp = fopen (path, "r");
  while (fp && nkv < 16 && fgets (line, sizeof line, fp)) {
    char *eq = strchr (line, '=');
    if (!eq) continue;
    *eq = '\0';
    line[strcspn (line, "\n")] = '\0';
    eq[1 + strcspn (eq + 1, "\n")] = '\0';
    snprintf (kv[nkv][0], 128, "%s", line);
    snprintf (kv[nkv][1], 128, "%s", eq + 1);
    if (strcmp (line, "pid") == 0)
      lb_alive = kill (atoi (eq + 1), 0) == 0 || errno == EPERM;
    nkv++;
  }
  if (fp)
    fclose (fp);
  if (c) {
    h = lwc_header (c);
    lwc_count_bits (c, &dirty, &pending);
    used = atomic_load (&h->head_pos) - atomic_load (&h->tail_pos);
    ring = h->ring_size;
    bs = h->block_size;
  }
  if (json) {
    printf ("{\"unit\":%u,\"filter\":%s", unit, c ? "true" : "false");
    if (c)
      printf (",\"mode\":\"%s\",\"queue_used\":%" PRIu64 ",\"queue_size\":%"
              PRIu64 ",\"out_of_sync_bytes\":%" PRIu64 ",\"head_seq\":%"
              PRIu64 ",\"released_seq\":%" PRIu64 ",\"epoch\":\"%016" PRIx64
              "\",\"gen\":%" PRIu64, lwc_mode (c) == LW_MODE_NORMAL ? "normal"
                                                             : "degraded",
              used, ring, (dirty + pending) * bs,
              atomic_load (&h->head_seq), atomic_load (&h->tail_seq),
              h->epoch, atomic_load (&h->gen_acked));
    printf (",\"lb_running\":%s", lb_alive ? "true" : "false");
    for (i = 0; i < nkv; i++) {
      bool num = strspn (kv[i][1], "0123456789") == strlen (kv[i][1])
                 && kv[i][1][0];
      printf (",");
      lb_json_str (stdout, kv[i][0]);
      if (strcmp (kv[i][0], "connected") == 0)
        printf (":%s", strcmp (kv[i][1], "1") == 0 ? "true" : "false");
      else if (num)
        printf (":%s", kv[i][1]);
      else {
        printf (":");
        lb_json_str (stdout, kv[i][1]);
      }
    }
    printf ("}\n");
  }
  else {
    printf ("unit %u: ", unit);
    if (c)
      printf ("filter %s, queue %" PRIu64 "/%" PRIu64 " bytes, %" PRIu64
              " bytes out of sync, seq %" PRIu64 " (released %" PRIu64 ")\n",
              lwc_mode (c) == LW_MODE_NORMAL ? "normal" : "degraded",
              used, ring, (dirty + pending) * bs,
              atomic_load (&h->head_seq), atomic_load (&h->tail_seq));
    else
      printf ("no filter (%s)\n", err);
    printf ("lb: %s\n", lb_alive ? "running" : "not running");
    for (i = 0; lb_alive && i < nkv; i++)
      printf ("  %s: %s\n", kv[i][0], kv[i][1]);
  }
  lwc_detach (c);
  return c ? 0 : 1;
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
  bool status = false, json = false;
  char hostname[256], err[1024], *end;
  struct sigaction sa = { .sa_handler = lb_on_signal };
  struct lb_key key;
  struct lb_sink sink;
  struct lwc *c = NULL;
  pthread_t pub;
  bool publishing = false, fatal = false;
  int ch, dev_fd;

  while ((ch = getopt_long (argc, argv, "r:N:z:D:du:sjvhV", opts, NULL)) != -1) {
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
  if (status)
    return lb_status (o.dir, o.unit, json);
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

  /* --daemon moves to "/": a relative --dir must not move with it. */
  static char absdir[4096];
  if (o.dir && o.dir[0] != '/') {
    if (realpath (o.dir, absdir) == NULL) {
      fprintf (stderr, "lb: --dir=%s: %s\n", o.dir, strerror (errno));
      return 1;
    }
    o.dir = absdir;
  }
  lb_log_init ("lb", false);
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
    lb_log_init ("lb", true);
  }
  signal (SIGPIPE, SIG_IGN);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGHUP, &sa, NULL);

  lb_pub.o = &o;
  snprintf (lb_pub.path, sizeof lb_pub.path, "%s/" LW_FILE_PREFIX "%u.lb",
            o.dir ? o.dir : LW_DEFAULT_DIR, o.unit);

  while (!lb_quit) {
    int r;

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
      /* Publish status only as the unit's one consumer. */
      if (!publishing)
        publishing = pthread_create (&pub, NULL, lb_publisher, NULL) == 0;
      {
        struct stat st;
        if (fstat (dev_fd, &st) == 0 && S_ISREG (st.st_mode)
            && (uint64_t) st.st_size != lwc_header (c)->dev_size)
          lb_warn ("DEVICE %s is %" PRIu64 " bytes but the filter serves %"
                   PRIu64 ": is it the same partition?", o.device,
                   (uint64_t) st.st_size, lwc_header (c)->dev_size);
      }
    }
    r = lb_session (&o, c, &key, dev_fd, &sink);
    if (r == 1 || !lwc_alive (c)) {
      lb_info ("the filter's channel went away (nbdkit stopped or "
               "restarted); reattaching");
      lwc_detach (c);
      c = NULL;
      continue;
    }
    if (lb_quit)
      break;
    if (r == -1) {
      lb_info ("retrying in %d s", o.retry);
      lb_pause (o.retry, c);
    }
  }
  lb_info ("exiting");
  lwc_detach (c);
  lb_key_wipe (&key);
  if (publishing) {
    lb_quit = lb_quit ? lb_quit : -1;
    pthread_join (pub, NULL);
    unlink (lb_pub.path);
  }
  return fatal ? 1 : 0;
}
