/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: one client's status.  See clientstat.h. */

#include <config.h>

#include <string.h>

#include "clientstat.h"
#include "lb_proto.h"
#include "lb_time.h"

/* How much is out of sync, from what lb said at its last SYNC (its
 * backlog, with the sweep's position then) and, in a scan, how far its
 * hash requests have got since: a scan compares ahead of its syncs.
 * Not known before this session's first SYNC (lb sends one as soon as
 * it has decided how to start), nor without a session.
 */
static void
clientstat_out_of_sync (const struct client *cl, struct clientstat *st)
{
  uint64_t left = st->size > cl->scanned ? st->size - cl->scanned : 0;
  uint64_t since = cl->scanned > cl->backlog_swept
                   ? cl->scanned - cl->backlog_swept : 0;
  uint64_t said = cl->backlog > since ? cl->backlog - since : 0;

  st->out_of_sync_known = st->connected && cl->backlog_known;
  if (!st->out_of_sync_known)
    st->out_of_sync = 0;
  else if (!st->scanning)
    st->out_of_sync = cl->backlog;
  else
    st->out_of_sync = said > left ? said : left;
}

void
clientstat_get (struct client *cl, uint64_t now, struct clientstat *st)
{
  uint64_t ms;

  memset (st, 0, sizeof *st);
  st->name = cl->conf->name;
  st->image = cl->conf->file;
  pthread_mutex_lock (&cl->lock);
  /* The rate is sampled as data arrives; after it stops, age it here. */
  ms = lb_now_ms ();
  if (cl->rate_time_ms && ms - cl->rate_time_ms >= 2000) {
    cl->rate = (cl->bytes_in - cl->rate_bytes) * 1000
               / (ms - cl->rate_time_ms);
    cl->rate_bytes = cl->bytes_in;
    cl->rate_time_ms = ms;
  }
  st->connected = cl->connected;
  if (cl->connected)
    memcpy (st->peer, cl->peer, sizeof st->peer);
  st->since = cl->since;
  st->phase = cl->phase;
  st->phase_name = cl->connected ? lbp_phase_name (cl->phase)
                                 : "disconnected";
  st->phase_since = cl->phase_since;
  st->consistent = cl->consistent;
  st->last_consistent = cl->last_consistent;
  st->inconsistent_for = cl->consistent ? 0
    : cl->last_consistent == 0 ? UINT64_MAX
    : now > cl->last_consistent ? now - cl->last_consistent : 0;
  st->epoch = cl->epoch;
  st->seq = cl->seq;
  st->verify_every = cl->conf->verify_every;
  st->verified = cl->verified;
  st->verify_mismatched = cl->verify_mismatched;
  st->applied_seq = cl->applied_epoch == cl->epoch
                    && cl->applied_seq > cl->seq ? cl->applied_seq : cl->seq;
  st->size = cl->size;
  st->scanning = cl->connected && cl->phase == LBP_PHASE_SCANNING;
  st->scanned = st->scanning ? cl->scanned : 0;
  clientstat_out_of_sync (cl, st);
  st->bytes_received = cl->bytes_in;
  st->rate = cl->rate;
  st->connects = cl->connects;
  st->replaced = cl->replaced;
  st->refused = cl->refused;
  st->exports = cl->exports;
  st->exports_served = cl->exports_served;
  st->exports_refused = cl->exports_refused;
  pthread_mutex_unlock (&cl->lock);
}
