/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: loading lbd.conf — at start, on SIGHUP, and for lbd -n.
 *
 * A load is two steps.  reload_prepare reads the file and every key
 * file and binds every address the running configuration lacks,
 * changing nothing that runs: any error there rejects the whole file,
 * and lbd goes on as it was.  reload_commit then makes the prepared
 * configuration the running one (running.h): new clients start, removed
 * ones stop, changed ones restart their connections, untouched ones
 * keep theirs.  reload.c says how this is made safe for the threads
 * that serve connections meanwhile.
 */

#ifndef LBD_RELOAD_H
#define LBD_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

struct reload_plan;
struct lb_key;

enum reload_mode {
  RELOAD_CHECK,                 /* lbd -n, --psk-line: bind nothing */
  RELOAD_APPLY,                 /* bind, and make the clients to start */
};

/* Why reload_prepare refused. */
enum reload_refusal {
  RELOAD_BAD_CONFIG,            /* the file or a key file (exit status 2) */
  RELOAD_CANNOT_BIND,           /* an address, or memory (exit status 1) */
};

/* Read CONFIG and its key files against the running configuration;
 * with RELOAD_APPLY also bind the addresses it lacks and make the
 * clients it lacks.  Returns the plan, or NULL with *WHY and ERR
 * ("CONFIG:LINE: ..." for an error in the file or a key file, as lbd -n
 * prints it).  Main thread only; nothing running changes.
 */
extern struct reload_plan *reload_prepare (const char *config,
                                           bool allow_open_key,
                                           enum reload_mode mode,
                                           enum reload_refusal *why,
                                           char *err, size_t errlen);

/* The key of the first client line of P named NAME, or NULL. */
extern const struct lb_key *reload_plan_key (const struct reload_plan *p,
                                             const char *name);

/* The image (absolute) of the first client line of P named NAME, or
 * NULL.
 */
extern const char *reload_plan_file (const struct reload_plan *p,
                                     const char *name);

/* P's metrics= (and its line), or NULL. */
extern const char *reload_plan_metrics (const struct reload_plan *p,
                                        int *line);

/* Does P have export lines? */
extern bool reload_plan_exports (const struct reload_plan *p);

/* Forget P (a RELOAD_CHECK plan, or one not to be applied): close what
 * it bound, free what it made.
 */
extern void reload_discard (struct reload_plan *p);

/* Make the RELOAD_APPLY plan P the running configuration, ending (and
 * waiting for) the connections of what changed or went, and free P.
 * Logs what changed.  Main thread only.
 */
extern void reload_commit (struct reload_plan *p);

/* Exit: end every connection (lb is told the server is shutting down),
 * close every listener, write the metrics file a last time (lbd_up 0)
 * and free the running configuration.
 */
extern void reload_shutdown (void);

#endif /* LBD_RELOAD_H */
