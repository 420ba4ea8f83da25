/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: clients — one per client line of the configuration.
 *
 * A client is what lbd keeps for one image: its line (name, key, listen
 * address, mode), the key its key file held when last read, the
 * image's status and its snapshots for restores.  lbd.conf can change
 * under a running lbd (SIGHUP, reload.c), so a client owns a copy of
 * its line rather than pointing into a parsed configuration, and one
 * client object stays with one image (its file=) for as long as the
 * configuration names that image: a reload that changes the rest of
 * the line updates the object in place (client_update), keeping its
 * status, counters and snapshots, once no connection uses it.
 *
 * Who may touch what (reload.c explains why this is enough):
 *   - the line (CONF, KEY) and HIDDEN: written by the main thread under
 *     running_lock for writing (running.h); read by lookups under it
 *     for reading, by the main thread at any time, and by a connection
 *     bound to the client (connset.h) at any time: a reload ends those
 *     before it changes the line;
 *   - the status fields: under LOCK;
 *   - SNAPS, HIST: their own locks (snapshot.h, history.h).
 */

#ifndef LBD_CLIENT_H
#define LBD_CLIENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lb_config.h"
#include "lb_key.h"
#include "history.h"
#include "scancache.h"
#include "snapshot.h"

struct session;

/* A client line as lbd serves it: a copy of the parsed line (strings
 * owned) and the key read from its key file.
 */
struct client_line {
  struct lb_client_conf conf;
  struct lb_key key;
};

struct client {
  const struct lb_client_conf *conf;    /* &LINE.conf */
  struct client_line line;
  /* Lookups do not find it: a reload is ending its connections to
   * change its line (reload.c).
   */
  bool hidden;

  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct session *owner;        /* session holding the image, or NULL */
  /* The image's snapshots for restores (snapshot.h), with its own lock;
   * lives as long as the client.
   */
  struct snapset snaps;
  /* Its restore points (history.h), with their own lock; as long as the
   * client.
   */
  struct history hist;
  /* The image's region hashes kept for scans (scancache.h), used only by
   * OWNER; as long as the client.
   */
  struct scancache scan;

  /* Status, under LOCK (clientstat.h reads it). */
  bool connected;
  char peer[64];
  uint64_t since;               /* the last session began or ended; 0:
                                   none since lbd started */
  uint32_t phase;
  uint64_t phase_since;         /* PHASE, or being disconnected, began */
  bool consistent;
  uint64_t last_consistent;
  uint64_t epoch, seq;
  uint64_t size;                /* the image's */
  uint64_t scanned;             /* scanning: bytes [0, scanned) compared,
                                   as far as lb's hash requests got */
  bool backlog_known;           /* lb's backlog at its last sync (SYNC) */
  uint64_t backlog, backlog_swept;
  uint64_t bytes_in;            /* payload bytes received, all sessions */
  uint64_t connects, replaced, refused;
  /* The newest record applied to the image since lbd started (written
   * by the session owning the image, under LOCK): a later session in the
   * same epoch that starts from an older durable seq gets records up to
   * this one again (session.c, replays).
   */
  uint64_t applied_epoch, applied_seq;
  /* The last verify pass lb reported (VERIFIED), or the state file's;
   * its mismatched blocks (0 when not known).
   */
  uint64_t verified, verify_mismatched;
  unsigned exports;             /* export connections open */
  uint64_t exports_served;      /* export connections opened, ever */
  uint64_t exports_refused;     /* ... refused (handshake or no state) */
  uint64_t rate;                /* bytes/s over the last few seconds */
  uint64_t rate_bytes;
  uint64_t rate_time_ms;
};

/* Copy the line CC of the config file CONFIG into LN and read its key
 * file.  0, or -1 with LN empty and ERR "CONFIG:LINE: key=why" (or "out
 * of memory").
 */
extern int client_line_load (struct client_line *ln,
                             const struct lb_client_conf *cc,
                             const char *config, bool allow_open_key,
                             char *err, size_t errlen);

/* Free LN's strings and wipe its key; LN is then empty.  Safe on an
 * empty one.
 */
extern void client_line_free (struct client_line *ln);

/* What differs between CL's line and LN (the same image): "" if
 * nothing that matters, else a list for the log, such as "key, listen".
 * The line number does not matter.  Into OUT (LEN bytes).
 */
extern const char *client_line_changes (const struct client *cl,
                                        const struct client_line *ln,
                                        char *out, size_t len);

/* A new client for LN (whose contents it takes; LN is left empty): its
 * image's state file read for status, overlays an earlier lbd left
 * beside the image deleted, snapshots kept if EXPORTS (exports are
 * configured).  NULL: out of memory (LN is then untouched).
 */
extern struct client *client_new (struct client_line *ln, bool exports);

/* CL takes LN's contents as its line (LN is left empty, CL's old line
 * freed).  No connection may use CL: see above.
 */
extern void client_update (struct client *cl, struct client_line *ln);

/* Free CL: no connection uses it any more, and no lookup can find it. */
extern void client_free (struct client *cl);

#endif /* LBD_CLIENT_H */
