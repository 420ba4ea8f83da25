/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: the state file (livewatch-state=FILE), its I/O.
 *
 * Opening (with an OFD lock: one nbdkit per file), loading and
 * recovering it, resetting it, appending journal records and writing
 * map pages, each made durable (fdatasync) before it returns.  The
 * format and THE INVARIANT are in stateformat.h; who writes what and
 * when is actlog.c's and persist.c's.  No threads, no nbdkit calls.
 */

#ifndef LIVEWATCH_STATEFILE_H
#define LIVEWATCH_STATEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stateformat.h"

enum statefile_outcome {
  SF_FRESH,                     /* new or reset: a new epoch */
  SF_CLEAN,                     /* continues after a clean stop */
  SF_UNCLEAN,                   /* continues after an unclean stop */
};

struct statefile;

/* What a load found, for the caller to start from. */
struct statefile_load {
  enum statefile_outcome outcome;
  char reason[128];             /* SF_FRESH: why (for the log) */
  uint64_t epoch;
  struct stateformat_dyn dyn;
  uint64_t *slots;              /* N entries; malloc'd, caller frees */
  uint64_t *map;                /* L.map_words words; malloc'd; bad pages
                                 * all ones */
  uint8_t *bad_page;            /* per map page: it failed its checks */
  uint64_t bad_pages;
};

/* Called for each thing worth a line in the log (a bad superblock copy,
 * a bad map page, the reason for a reset).
 */
typedef void (*statefile_log_fn) (const char *msg);

/* Check early (get_ready) that PATH can be opened or created and that no
 * other process holds it; LOG a warning if it sits on tmpfs (lost at
 * every reboot).  Returns 0, or -1 with ERR.
 */
extern int statefile_preflight (const char *path, statefile_log_fn log,
                                char *err, size_t errlen);

/* Open or create PATH for geometry G, take its lock, load it; a file
 * that is new, of another geometry, or unusable is reset in place with
 * a new epoch (and its first record) and reported SF_FRESH with the
 * reason.  Returns 0 with *SFP and LD filled, or -1 with ERR (cannot
 * open, lock or write: nbdkit must not start).
 */
extern int statefile_open (const char *path, const struct stateformat_geom *g,
                           statefile_log_fn log, struct statefile **sfp,
                           struct statefile_load *ld,
                           char *err, size_t errlen);

extern const struct stateformat_layout *statefile_layout (
  const struct statefile *sf);
extern uint64_t statefile_epoch (const struct statefile *sf);

/* Append the next record (tx = the next tx): dynamic state D, updates
 * U[0..NU) (NU <= SF_REC_UPD), and the context taken from TABLE_AFTER
 * (the slot table as it stands once this record counts).  Written and
 * fdatasynced before returning.  Returns 0, or -1 with ERR.
 */
extern int statefile_append (struct statefile *sf,
                             const struct stateformat_dyn *d,
                             const struct stateformat_update *u, size_t nu,
                             const uint64_t *table_after,
                             char *err, size_t errlen);

/* Write map pages PAGES[0..N) from MAP (L.map_words words) and
 * fdatasync.  Returns 0, or -1 with ERR.
 */
extern int statefile_write_pages (struct statefile *sf, const uint64_t *map,
                                  const uint64_t *pages, size_t n,
                                  char *err, size_t errlen);

/* Make the file unusable (empty it), durably: the next start resets it.
 * For when it can no longer be kept right.  Returns 0 or -1.
 */
extern int statefile_invalidate (struct statefile *sf);

/* Close (drops the lock).  NULL is fine. */
extern void statefile_close (struct statefile *sf);
extern void statefile_load_free (struct statefile_load *ld);

#endif /* LIVEWATCH_STATEFILE_H */
