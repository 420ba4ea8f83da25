/* lbd: the livebackup server.
 *
 *   lbd [OPTIONS] CONFIG
 *
 * Reads CONFIG (lbd.conf(5)), loads every client's key, binds every
 * listen address (clients' and exports'), then serves: one poll loop in
 * the main thread accepts connections (and status requests on a local
 * control socket, control.c); each connection gets its own thread, kept
 * in a connection set (connset.c): session.c's for lb's, export.c's for
 * restores over NBD.  Signal handlers only set a flag and write to a
 * pipe the loop polls.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <gnutls/gnutls.h>

#include "control.h"
#include "export.h"
#include "image.h"
#include "lb_config.h"
#include "lb_conn.h"
#include "lb_key.h"
#include "lb_log.h"
#include "lb_priv.h"
#include "lb_proto.h"
#include "session.h"
#include "snapshot.h"

static volatile sig_atomic_t lbd_quit;
static int lbd_sigpipe[2] = { -1, -1 };

static struct lb_config lbd_cfg;
static struct client *lbd_clients;
static struct listener *lbd_listeners;
static size_t lbd_nlisteners;
static struct export_listener *lbd_exports;

static void
lbd_on_signal (int sig)
{
  int e = errno;
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
"\n"
"The livebackup server: keeps one image per client line of CONFIG.\n"
"\n"
"  -n, --check            check CONFIG and the key files, print\n"
"                         \"configuration OK\" or the first error, exit\n"
"      --psk-line         print client NAME's line for a PSK file\n"
"                         (NAME:HEXKEY, as nbdcopy's tls-psk-file= and\n"
"                         qemu read it) for restores, and exit\n"
"  -d, --daemon           detach and log to syslog (default: foreground,\n"
"                         log to stderr)\n"
"  -u, --user=NAME        drop to user NAME after binding the ports\n"
"  -s, --status           ask the running lbd for every client's state\n"
"  -j, --json             with --status: print JSON\n"
"  -c, --control=PATH     the status socket (default: derived from CONFIG's\n"
"                         absolute path, in /run or /tmp)\n"
"      --allow-open-key   accept key files that group or others can read\n"
"  -v, --verbose          log more\n"
"  -h, --help             this help\n"
"  -V, --version          print the version\n");
}

static int
lbd_load (const char *config, bool allow_open_key, char *err, size_t errlen)
{
  size_t i, j;

  if (lb_config_load (config, &lbd_cfg, err, errlen) == -1)
    return -1;
  if (lbd_cfg.nclients == 0) {
    snprintf (err, errlen, "%s: no client lines", config);
    return -1;
  }
  lbd_clients = calloc (lbd_cfg.nclients, sizeof *lbd_clients);
  lbd_listeners = calloc (lbd_cfg.nclients, sizeof *lbd_listeners);
  if (!lbd_clients || !lbd_listeners) {
    snprintf (err, errlen, "out of memory");
    return -1;
  }
  for (i = 0; i < lbd_cfg.nclients; i++) {
    struct client *cl = &lbd_clients[i];
    const struct lb_client_conf *cc = &lbd_cfg.clients[i];
    char kerr[512];
    struct listener *l = NULL;

    cl->conf = cc;
    pthread_mutex_init (&cl->lock, NULL);
    pthread_cond_init (&cl->cond, NULL);
    if (lb_key_load (cc->key_path, allow_open_key, &cl->key, kerr,
                     sizeof kerr) == -1) {
      snprintf (err, errlen, "%s:%d: key=%s", lbd_cfg.path, cc->line, kerr);
      return -1;
    }
    {
      struct image_state st;
      char sp[4096];
      snprintf (sp, sizeof sp, "%s.state", cc->file);
      if (image_state_load (sp, &st) == 0) {
        cl->phase = st.phase;
        cl->consistent = st.consistent;
        cl->last_consistent = st.last_consistent;
        cl->epoch = st.epoch;
        cl->seq = st.seq;
      }
      /* Snapshots are kept only where someone may read them. */
      if (snapset_init (&cl->snaps, cc->file, cl->consistent,
                        lbd_cfg.nexports > 0) == -1) {
        snprintf (err, errlen, "out of memory");
        return -1;
      }
    }
    for (j = 0; j < lbd_nlisteners; j++)
      if (lb_listen_equal (&lbd_listeners[j].addr, &cc->listen))
        l = &lbd_listeners[j];
    if (l == NULL) {
      l = &lbd_listeners[lbd_nlisteners++];
      l->addr = cc->listen;
      l->fd = -1;
      l->clients = calloc (lbd_cfg.nclients, sizeof *l->clients);
      if (l->clients == NULL) {
        snprintf (err, errlen, "out of memory");
        return -1;
      }
    }
    l->clients[l->nclients++] = cl;
  }
  if (lbd_cfg.nexports) {
    lbd_exports = calloc (lbd_cfg.nexports, sizeof *lbd_exports);
    if (lbd_exports == NULL) {
      snprintf (err, errlen, "out of memory");
      return -1;
    }
    for (i = 0; i < lbd_cfg.nexports; i++) {
      lbd_exports[i].conf = &lbd_cfg.exports[i];
      lbd_exports[i].fd = -1;
    }
  }
  return 0;
}

/* A listening socket on ADDR (of the statement on LINE), or -1. */
static int
lbd_bind_one (const struct lb_listen *addr, int line, char *err,
              size_t errlen)
{
  int one = 1, fd;

  fd = socket (addr->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) {
    snprintf (err, errlen, "listen=%s: socket: %s", addr->text,
              strerror (errno));
    return -1;
  }
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (addr->family == AF_INET6) {
    /* "*" is the IPv6 any address serving IPv4 too (dual stack); a
     * specific IPv6 address serves only itself.
     */
    int v6only = addr->text[0] != '*';
    setsockopt (fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  }
  if (bind (fd, (struct sockaddr *) &addr->addr, addr->addrlen) == -1
      || listen (fd, 128) == -1) {
    snprintf (err, errlen, "%s:%d: listen=%s: %s", lbd_cfg.path, line,
              addr->text, strerror (errno));
    close (fd);
    return -1;
  }
  fcntl (fd, F_SETFL, O_NONBLOCK);
  return fd;
}

static int
lbd_bind (char *err, size_t errlen)
{
  size_t i;

  for (i = 0; i < lbd_nlisteners; i++) {
    struct listener *l = &lbd_listeners[i];
    l->fd = lbd_bind_one (&l->addr, l->clients[0]->conf->line, err, errlen);
    if (l->fd == -1)
      return -1;
  }
  for (i = 0; i < lbd_cfg.nexports; i++) {
    struct export_listener *e = &lbd_exports[i];
    e->fd = lbd_bind_one (&e->conf->listen, e->conf->line, err, errlen);
    if (e->fd == -1)
      return -1;
  }
  return 0;
}

/* lbd --psk-line CONFIG NAME: the line of a PSK file (psktool's format,
 * which libnbd's tls-psk-file=, nbdkit's --tls-psk= and qemu's
 * tls-creds-psk read) that opens NAME's export.
 */
static int
lbd_psk_line (const char *config, const char *name, bool allow_open_key)
{
  char err[1024], hex[65];
  size_t i;

  lb_log_init ("lbd", LB_LOG_STDERR, NULL, 0);
  if (lbd_load (config, allow_open_key, err, sizeof err) == -1) {
    fprintf (stderr, "lbd: %s\n", err);
    return 1;
  }
  for (i = 0; i < lbd_cfg.nclients; i++)
    if (strcmp (lbd_cfg.clients[i].name, name) == 0)
      break;
  if (i == lbd_cfg.nclients) {
    fprintf (stderr, "lbd: %s: no client named '%s'\n", config, name);
    return 1;
  }
  if (!lb_conn_identity_ok (name) || strchr (name, ':')) {
    fprintf (stderr, "lbd: %s: the name '%s' cannot be a PSK identity in a "
             "PSK file (1 to %d printable characters, no spaces, no ':'); "
             "give the client a name=\n", config, name,
             LB_CONN_IDENTITY_MAX);
    return 1;
  }
  if (lbd_cfg.nexports == 0)
    fprintf (stderr, "lbd: warning: %s has no export line: lbd serves no "
             "restores\n", config);
  lb_key_hex (&lbd_clients[i].key, hex);
  printf ("%s:%s\n", name, hex);
  gnutls_memset (hex, 0, sizeof hex);
  for (i = 0; i < lbd_cfg.nclients; i++)
    lb_key_wipe (&lbd_clients[i].key);
  return fflush (stdout) == 0 ? 0 : 1;
}

static void
lbd_peer_name (const struct sockaddr_storage *ss, char *peer, size_t len)
{
  char host[INET6_ADDRSTRLEN];

  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *) ss;
    inet_ntop (AF_INET6, &s6->sin6_addr, host, sizeof host);
    snprintf (peer, len, "[%s]:%u", host, ntohs (s6->sin6_port));
  }
  else {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *) ss;
    inet_ntop (AF_INET, &s4->sin_addr, host, sizeof host);
    snprintf (peer, len, "%s:%u", host, ntohs (s4->sin_port));
  }
}

/* Accept a connection on the listening socket LFD: the socket, with
 * keepalive on, and the peer's address in PEER; -1 if none was waiting.
 */
static int
lbd_accept (int lfd, char *peer, size_t len)
{
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  int fd = accept4 (lfd, (struct sockaddr *) &ss, &sl, SOCK_CLOEXEC);

  if (fd == -1)
    return -1;
  lbd_peer_name (&ss, peer, len);
  lb_sock_set_keepalive (fd);
  return fd;
}

int
main (int argc, char **argv)
{
  static const struct option opts[] = {
    { "check", no_argument, NULL, 'n' },
    { "daemon", no_argument, NULL, 'd' },
    { "user", required_argument, NULL, 'u' },
    { "status", no_argument, NULL, 's' },
    { "json", no_argument, NULL, 'j' },
    { "control", required_argument, NULL, 'c' },
    { "allow-open-key", no_argument, NULL, 'K' },
    { "psk-line", no_argument, NULL, 'P' },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  bool check = false, daemonize = false, status = false, json = false;
  bool allow_open_key = false, psk_line = false;
  const char *user = NULL, *control = NULL, *config;
  char control_buf[4096], err[1024], peer[80];
  struct sigaction sa = { .sa_handler = lbd_on_signal };
  struct pollfd *pfd;
  int c, cfd, fd;
  size_t i;

  while ((c = getopt_long (argc, argv, "ndu:sjc:vhV", opts, NULL)) != -1) {
    switch (c) {
    case 'n': check = true; break;
    case 'd': daemonize = true; break;
    case 'u': user = optarg; break;
    case 's': status = true; break;
    case 'j': json = true; break;
    case 'c': control = optarg; break;
    case 'K': allow_open_key = true; break;
    case 'P': psk_line = true; break;
    case 'v': lb_log_verbose = true; break;
    case 'h': lbd_usage (stdout); return 0;
    case 'V': printf ("lbd %s\n", PACKAGE_VERSION); return 0;
    default: lbd_usage (stderr); return 2;
    }
  }
  if (argc - optind != (psk_line ? 2 : 1)) {
    lbd_usage (stderr);
    return 2;
  }
  config = argv[optind];
  if (psk_line)
    return lbd_psk_line (config, argv[optind + 1], allow_open_key);
  if (control == NULL) {
    control_default_path (config, control_buf, sizeof control_buf);
    control = control_buf;
  }
  if (status)
    return control_ask (control, json);

  lb_log_init ("lbd", LB_LOG_STDERR, NULL, 0);
  if (lbd_load (config, allow_open_key, err, sizeof err) == -1) {
    fprintf (stderr, "lbd: %s\n", err);
    return 1;
  }
  if (check) {
    printf ("configuration OK\n");
    return 0;
  }

  signal (SIGPIPE, SIG_IGN);
  if (pipe2 (lbd_sigpipe, O_CLOEXEC | O_NONBLOCK) == -1) {
    perror ("lbd: pipe");
    return 1;
  }
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGHUP, &sa, NULL);

  if (lbd_bind (err, sizeof err) == -1
      || (cfd = control_open (control, lbd_clients, lbd_cfg.nclients,
                              lbd_cfg.nexports > 0, err, sizeof err)) == -1) {
    fprintf (stderr, "lbd: %s\n", err);
    return 1;
  }
  if (user && lb_drop_privileges (user, err, sizeof err) == -1) {
    fprintf (stderr, "lbd: %s\n", err);
    return 1;
  }
  if (daemonize) {
    if (daemon (0, 0) == -1) {
      perror ("lbd: daemon");
      return 1;
    }
    lb_log_init ("lbd", LB_LOG_SYSLOG, NULL, 0);
  }
  export_setup (lbd_clients, lbd_cfg.nclients);
  for (i = 0; i < lbd_cfg.nclients; i++) {
    size_t j;
    snapset_remove_stale (lbd_cfg.clients[i].file);
    for (j = 0; j < i && lbd_cfg.nexports; j++)
      if (strcmp (lbd_cfg.clients[j].name, lbd_cfg.clients[i].name) == 0) {
        lb_warn ("%s:%d: client %s has the name of the client on line %d: "
                 "only that one is exported", lbd_cfg.path,
                 lbd_cfg.clients[i].line, lbd_cfg.clients[i].name,
                 lbd_cfg.clients[j].line);
        break;
      }
  }
  for (i = 0; i < lbd_cfg.nexports; i++)
    lb_info ("exporting the images on %s (%s)", lbd_exports[i].conf->listen.text,
             lbd_exports[i].conf->tls ? "NBD, TLS with each client's key"
                                      : "NBD, no TLS");
  for (i = 0; i < lbd_nlisteners; i++)
    lb_info ("listening on %s for %zu client%s", lbd_listeners[i].addr.text,
             lbd_listeners[i].nclients,
             lbd_listeners[i].nclients == 1 ? "" : "s");

  pfd = calloc (lbd_nlisteners + lbd_cfg.nexports + 2, sizeof *pfd);
  if (pfd == NULL) {
    lb_err ("out of memory");
    return 1;
  }
  while (!lbd_quit) {
    size_t n = 0;

    pfd[n++] = (struct pollfd) { .fd = lbd_sigpipe[0], .events = POLLIN };
    pfd[n++] = (struct pollfd) { .fd = cfd, .events = POLLIN };
    for (i = 0; i < lbd_nlisteners; i++)
      pfd[n++] = (struct pollfd) { .fd = lbd_listeners[i].fd,
                                   .events = POLLIN };
    for (i = 0; i < lbd_cfg.nexports; i++)
      pfd[n++] = (struct pollfd) { .fd = lbd_exports[i].fd,
                                   .events = POLLIN };
    if (poll (pfd, n, -1) == -1) {
      if (errno == EINTR)
        continue;
      lb_err ("poll: %s", strerror (errno));
      break;
    }
    if (pfd[1].revents & POLLIN)
      control_serve ();
    /* Each connection is a thread of its own (connset.h). */
    for (i = 0; i < lbd_nlisteners; i++)
      if ((pfd[2 + i].revents & POLLIN)
          && (fd = lbd_accept (lbd_listeners[i].fd, peer, sizeof peer)) >= 0)
        session_start (&lbd_listeners[i], fd, peer);
    for (i = 0; i < lbd_cfg.nexports; i++)
      if ((pfd[2 + lbd_nlisteners + i].revents & POLLIN)
          && (fd = lbd_accept (lbd_exports[i].fd, peer, sizeof peer)) >= 0)
        export_start (&lbd_exports[i], fd, peer);
  }

  lb_info ("shutting down (signal %d)", (int) lbd_quit);
  for (i = 0; i < lbd_nlisteners; i++)
    close (lbd_listeners[i].fd);
  for (i = 0; i < lbd_cfg.nexports; i++)
    close (lbd_exports[i].fd);
  export_shutdown_all ();
  session_shutdown_all ();
  /* Snapshots do not outlive lbd: their overlays go now. */
  for (i = 0; i < lbd_cfg.nclients; i++)
    snapset_destroy (&lbd_clients[i].snaps);
  control_close ();
  for (i = 0; i < lbd_cfg.nclients; i++)
    lb_key_wipe (&lbd_clients[i].key);
  for (i = 0; i < lbd_nlisteners; i++)
    free (lbd_listeners[i].clients);
  free (lbd_listeners);
  free (lbd_exports);
  free (lbd_clients);
  free (pfd);
  lb_config_free (&lbd_cfg);
  return 0;
}
