/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: the control socket.  See control.h. */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clientstat.h"
#include "control.h"
#include "histctl.h"
#include "lb_ctl.h"
#include "lb_proto.h"
#include "lb_status.h"
#include "lb_time.h"
#include "running.h"
#include "snapshot.h"

/* How lbd --status reads, in text: a client, its export, a snapshot. */
static const char control_client_layout[] =
  "client {name}: {connected?connected from {peer} since {since}"
  "|not connected{since? since {since}}}\n"
  "  image {image} ({image_size}): {consistent?consistent|inconsistent}, "
  "last consistent {last_consistent}\n"
  "  phase {phase} since {phase_since}, epoch {epoch} seq {seq}; "
  "{out_of_sync_known?{out_of_sync_bytes} out of sync"
  "|out of sync: not known (not connected)}\n"
  "  received {bytes_received} bytes, {rate}; {connects} "
  "connections, {replaced} replaced, {refused} refused\n"
  "{verify_every?  verify: every {verify_every}, last {verified}"
  "{verify_mismatched? ({verify_mismatched} blocks differed, repaired)}\n}";
static const char control_scan_layout[] =
  "  scan: {scan_percent} compared, {to_compare_bytes} still to compare\n";
static const char control_export_layout[] =
  "  export: "
  "{serves=live?serves the live image, frozen when a connection opens it}"
  "{serves=last-consistent?serves its last consistent state, of {since}}"
  "{serves=none?serves nothing: no consistent state (the image is "
  "inconsistent and lbd kept none)}\n"
  "  export connections: {open} open, {served} served, {refused} refused\n";
static const char control_snapshot_layout[] =
  "  snapshot {id}{last_consistent? (last consistent state)}: taken "
  "{taken}, {readers} reader{readers=1?|s}, {blocks_saved} blocks saved "
  "({bytes_saved} bytes){broken?, broken: {why}}\n";

static struct lb_ctl control_ctl = { .fd = -1 };

void
control_default_path (const char *config, char *out, size_t len)
{
  char real[4096];
  uint32_t h = 2166136261u;
  const char *p;

  if (realpath (config, real) == NULL)
    snprintf (real, sizeof real, "%s", config);
  for (p = real; *p; p++)
    h = (h ^ (unsigned char) *p) * 16777619u;
  if (access ("/run", W_OK) == 0)
    snprintf (out, len, "/run/lbd-%08" PRIx32 ".sock", h);
  else
    snprintf (out, len, "/tmp/lbd-%u-%08" PRIx32 ".sock",
              (unsigned) getuid (), h);
}

int
control_open (const char *path, char *err, size_t errlen)
{
  if (lb_ctl_listen (&control_ctl, path, err, errlen) == -1)
    return -1;
  return control_ctl.fd;
}

/* What CL's export would serve, with the counts OPEN, SERVED and
 * REFUSED taken under CL's lock, and its snapshots; into X.
 */
static void
control_export (struct lb_status *x, struct client *cl, unsigned open,
                uint64_t served, uint64_t refused)
{
  struct snapset *ss = &cl->snaps;
  struct lb_status *snaps;
  struct snapshot *s;
  const char *serves;
  time_t since = 0;

  pthread_rwlock_rdlock (&ss->lock);
  if (ss->consistent)
    serves = "live";
  else if (ss->lastc && !ss->lastc->broken) {
    serves = "last-consistent";
    since = ss->lastc_time;
  }
  else
    serves = "none";
  lb_status_str (x, "serves", serves);
  lb_status_time (x, "since", (uint64_t) since);
  lb_status_uint (x, "open", open);
  lb_status_uint (x, "served", served);
  lb_status_uint (x, "refused", refused);
  lb_status_layout (x, control_export_layout);
  snaps = lb_status_array (x, "snapshots");
  for (s = ss->list; s; s = s->next) {
    struct lb_status *o = lb_status_object (snaps, NULL);
    unsigned readers = s->refs - (s == ss->lastc);

    lb_status_uint (o, "id", s->id);
    lb_status_uint (o, "readers", readers);
    lb_status_time (o, "taken", (uint64_t) s->taken);
    lb_status_bytes (o, "size", s->size);
    lb_status_uint (o, "blocks_saved", s->nsaved);
    lb_status_bytes (o, "bytes_saved", s->bytes);
    lb_status_bool (o, "last_consistent", s == ss->lastc);
    lb_status_bool (o, "broken", s->broken);
    lb_status_text_only (lb_status_str (o, "why", s->broken ? s->why : ""));
    lb_status_layout (o, control_snapshot_layout);
  }
  pthread_rwlock_unlock (&ss->lock);
}

/* CL's state into O. */
static void
control_client (struct lb_status *o, struct client *cl, uint64_t now)
{
  struct clientstat st;

  clientstat_get (cl, now, &st);
  lb_status_str (o, "name", st.name);
  lb_status_str (o, "image", st.image);
  lb_status_size (o, "image_size", st.size);
  lb_status_bool (o, "connected", st.connected);
  lb_status_str (o, "peer", st.peer);
  lb_status_time (o, "since", st.since);
  lb_status_str (o, "phase", st.phase_name);
  lb_status_time (o, "phase_since", st.phase_since);
  lb_status_bool (o, "consistent", st.consistent);
  lb_status_time (o, "last_consistent", st.last_consistent);
  lb_status_strf (o, "epoch", "%016" PRIx64, st.epoch);
  lb_status_uint (o, "seq", st.seq);
  lb_status_uint (o, "applied_seq", st.applied_seq);
  lb_status_bool (o, "out_of_sync_known", st.out_of_sync_known);
  if (st.out_of_sync_known)
    lb_status_size (o, "out_of_sync_bytes", st.out_of_sync);
  lb_status_bytes (o, "bytes_received", st.bytes_received);
  lb_status_rate (o, "rate", st.rate);
  lb_status_uint (o, "connects", st.connects);
  lb_status_uint (o, "replaced", st.replaced);
  lb_status_uint (o, "refused", st.refused);
  lb_status_seconds (o, "verify_every", st.verify_every);
  lb_status_time (o, "verified", st.verified);
  lb_status_uint (o, "verify_mismatched", st.verify_mismatched);
  lb_status_layout (o, control_client_layout);
  if (st.scanning) {
    struct lb_status *g = lb_status_object (o, NULL);
    lb_status_percent (g, "scan_percent", st.scanned, st.size);
    lb_status_size (g, "scanned_bytes", st.scanned);
    lb_status_size (g, "to_compare_bytes", st.size - st.scanned);
    lb_status_layout (g, control_scan_layout);
  }
  if (running.nexports > 0)
    control_export (lb_status_object (o, "export"), cl, st.exports,
                    st.exports_served, st.exports_refused);
  histctl_status (o, cl);
}

/* Every client's state (lb_ctl_build_fn); the verdict is 0: lbd
 * answered.
 */
static int
control_build (struct lb_status *d, void *arg)
{
  struct lb_status *clients = lb_status_array (d, "clients");
  uint64_t now = (uint64_t) time (NULL);
  size_t i;

  (void) arg;
  lb_status_set_now (d, now);
  for (i = 0; i < running.nclients; i++)
    control_client (lb_status_object (clients, NULL), running.clients[i],
                    now);
  return 0;
}

/* The status, or what ARGS asks for (histctl.h). */
static int
control_build_args (struct lb_status *d, const char *args, void *arg)
{
  int verdict = 0;

  if (*args && histctl_request (d, args, &verdict))
    return verdict;
  return control_build (d, arg);
}

void
control_serve (void)
{
  lb_ctl_serve_args (&control_ctl, control_build_args, NULL);
}

void
control_close (void)
{
  lb_ctl_close (&control_ctl);
}

int
control_ask (const char *path, bool json)
{
  return control_ask_args (path, json, NULL);
}

int
control_ask_args (const char *path, bool json, const char *args)
{
  char err[640];
  int verdict = -1;

  switch (lb_ctl_ask_args (path, json ? LB_STATUS_JSON : LB_STATUS_TEXT,
                           args, LB_CTL_ASK_MS, stdout, &verdict, err,
                           sizeof err)) {
  case LB_CTL_ANSWERED:
    if (fflush (stdout) != 0)
      return 1;
    return verdict == 0 ? 0 : 1;
  case LB_CTL_UNREACHED:
    fprintf (stderr, "lbd: %s (is lbd running with this config?)\n", err);
    return 1;
  case LB_CTL_SILENT:
    fprintf (stderr, "lbd: %s\n", err);
    return 1;
  }
  return 1;
}
