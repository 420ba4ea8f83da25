/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: one client's status, as people (lbd --status, control.c) and
 * monitoring (the metrics file, metrics.c) read it.
 *
 * A copy taken under the client's lock, with what is derived from its
 * fields worked out once here: the rate (aged once data stops coming),
 * how much is out of sync, how long the image has not been consistent.
 */

#ifndef LBD_CLIENTSTAT_H
#define LBD_CLIENTSTAT_H

#include <stdbool.h>
#include <stdint.h>

#include "session.h"

struct clientstat {
  const char *name, *image;     /* the config's: live as long as CL */
  bool connected;
  char peer[64];
  uint64_t since;               /* the session began or ended; 0: none */
  uint32_t phase;               /* enum lbp_phase (when connected) */
  const char *phase_name;       /* its name, or "disconnected" */
  uint64_t phase_since;
  bool consistent;
  uint64_t last_consistent;     /* 0: never */
  uint64_t inconsistent_for;    /* seconds: 0 while consistent, else
                                   since last consistent (UINT64_MAX:
                                   never consistent) */
  uint64_t epoch, seq, applied_seq;
  uint64_t verify_every;        /* verify= (0: none) */
  uint64_t verified;            /* the last verify pass done; 0: none */
  uint64_t verify_mismatched;   /* ... its blocks that differed */
  uint64_t size;
  bool scanning;                /* connected, and a scan runs */
  uint64_t scanned;             /* scanning: bytes compared */
  bool out_of_sync_known;       /* connected, and lb said (SYNC) */
  uint64_t out_of_sync;         /* bytes lb has yet to bring over */
  uint64_t bytes_received, rate;
  uint64_t connects, replaced, refused;
  unsigned exports;
  uint64_t exports_served, exports_refused;
};

/* CL's status now (NOW: time (NULL)), into ST. */
extern void clientstat_get (struct client *cl, uint64_t now,
                            struct clientstat *st);

#endif /* LBD_CLIENTSTAT_H */
