/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: restore points on the control socket.  See histctl.h. */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "histctl.h"
#include "running.h"

static const char histctl_point_layout[] =
  "{id}  {time}  {how}{label?  label {label}}  {bytes} held{doomed?  "
  "(being pruned)}{readers?  {readers} reader{readers=1?|s}}\n";
static const char histctl_head_layout[] =
  "client {name}: {count} restore point{count=1?|s} ({mode}), "
  "{bytes} held{policy?; history={policy}|; no history= (points of lb --mark "
  "only)}\n";
static const char histctl_status_layout[] =
  "  history: {count} point{count=1?|s}{count?, oldest {oldest}, newest "
  "{newest}, {bytes} held}{policy?; history={policy}}\n";
static const char histctl_drop_layout[] =
  "{result=dropped?restore point {point}{id? ({id})} of {name} dropped}"
  "{result=pending?restore point {point}{id? ({id})} of {name} is dropped "
  "when its readers leave}"
  "{result=unknown?{why}}{result=failed?cannot drop {point} of {name}: "
  "{why}}\n";

/* The first word of *P (advanced past it and the blanks after). */
static char *
histctl_word (const char **p, char *out, size_t len)
{
  size_t n = strcspn (*p, " ");

  snprintf (out, len, "%.*s", (int) (n < len ? n : len - 1), *p);
  *p += n;
  *p += strspn (*p, " ");
  return out;
}

/* CL's points into *INFO (*N), their bytes into *BYTES and its policy
 * into POL.  0, or -1.
 */
static int
histctl_list (struct client *cl, struct hist_info **info, size_t *n,
              uint64_t *bytes, char pol[128])
{
  size_t i;

  *bytes = 0;
  if (history_list (&cl->hist, info, n) == -1)
    return -1;
  for (i = 0; i < *n; i++)
    *bytes += (*info)[i].bytes;
  lb_history_format (&cl->conf->history, pol, 128);
  return 0;
}

static void
histctl_points (struct lb_status *doc, struct client *cl)
{
  struct hist_info *info;
  struct lb_status *arr;
  uint64_t bytes;
  char pol[128];
  size_t n, i;

  if (histctl_list (cl, &info, &n, &bytes, pol) == -1)
    return;
  lb_status_str (doc, "name", cl->conf->name);
  lb_status_uint (doc, "count", n);
  lb_status_str (doc, "mode", n == 0 ? "none"
                 : info[0].reflink ? "reflinked copies" : "overlays");
  lb_status_size (doc, "bytes", bytes);
  lb_status_str (doc, "policy", pol);
  lb_status_layout (doc, histctl_head_layout);
  arr = lb_status_array (doc, "points");
  for (i = 0; i < n; i++) {
    struct lb_status *o = lb_status_object (arr, NULL);
    lb_status_str (o, "id", info[i].e.id);
    lb_status_time (o, "time", (uint64_t) info[i].e.time);
    lb_status_str (o, "how", info[i].e.how);
    lb_status_str (o, "label", info[i].e.label);
    lb_status_size (o, "bytes", info[i].bytes);
    lb_status_size (o, "size", info[i].e.size);
    lb_status_str (o, "storage", info[i].reflink ? "reflink" : "overlay");
    lb_status_uint (o, "readers", info[i].readers);
    lb_status_bool (o, "doomed", info[i].doomed);
    lb_status_layout (o, histctl_point_layout);
  }
  free (info);
}

static int
histctl_drop (struct lb_status *doc, struct client *cl, const char *point)
{
  char why[512] = "", found[POINTS_ID_LEN];
  enum history_dropped r = history_drop (&cl->hist, point, found, why,
                                         sizeof why);
  static const char *const names[] = {
    [HISTORY_DROPPED] = "dropped", [HISTORY_DROP_PENDING] = "pending",
    [HISTORY_DROP_UNKNOWN] = "unknown", [HISTORY_DROP_FAILED] = "failed",
  };

  if (r == HISTORY_DROP_UNKNOWN)
    snprintf (why, sizeof why, "client %s has no restore point named '%s' "
              "(lbd --points lists them)", cl->conf->name, point);
  lb_status_str (doc, "name", cl->conf->name);
  lb_status_str (doc, "point", point);
  /* A label names the point by its ID too: which one went. */
  if (found[0] && strcmp (found, point) != 0)
    lb_status_str (doc, "id", found);
  lb_status_str (doc, "result", names[r]);
  lb_status_str (doc, "why", why);
  lb_status_layout (doc, histctl_drop_layout);
  return r == HISTORY_DROPPED || r == HISTORY_DROP_PENDING ? 0 : 1;
}

bool
histctl_request (struct lb_status *doc, const char *args, int *verdict)
{
  char what[16], name[LB_CONFIG_NAME_MAX + 1], point[POINTS_LABEL_MAX];
  struct client *cl;

  histctl_word (&args, what, sizeof what);
  if (strcmp (what, "points") != 0 && strcmp (what, "drop") != 0)
    return false;
  histctl_word (&args, name, sizeof name);
  histctl_word (&args, point, sizeof point);
  /* The main thread: the running tables without their lock (control.h). */
  cl = running_by_name (name, strlen (name));
  *verdict = 1;
  if (cl == NULL) {
    lb_status_str (doc, "name", name);
    lb_status_strf (doc, "why", "no client named '%s' in the running "
                    "configuration", name);
    lb_status_layout (doc, "{why}\n");
  }
  else if (strcmp (what, "points") == 0) {
    histctl_points (doc, cl);
    *verdict = 0;
  }
  else
    *verdict = histctl_drop (doc, cl, point);
  return true;
}

void
histctl_status (struct lb_status *parent, struct client *cl)
{
  struct hist_info *info;
  struct lb_status *o;
  uint64_t bytes;
  char pol[128];
  size_t n;

  if (histctl_list (cl, &info, &n, &bytes, pol) == -1)
    return;
  if (n == 0 && pol[0] == '\0') {
    /* No history: nothing to say (and the status reads as before). */
    free (info);
    return;
  }
  o = lb_status_object (parent, "history");
  lb_status_uint (o, "count", n);
  lb_status_str (o, "oldest", n ? info[0].e.id : "");
  lb_status_str (o, "newest", n ? info[n - 1].e.id : "");
  lb_status_size (o, "bytes", bytes);
  lb_status_str (o, "policy", pol);
  lb_status_layout (o, histctl_status_layout);
  free (info);
}
