/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: lbd.conf's whole-file checks — the rules that involve two
 * statements: two clients may not name one image; two clients on one
 * address may not have one name; an address may not serve both clients
 * and an export, nor two exports; addresses that cannot both be bound
 * (a wildcard and another address on its port) may not both be used.
 *
 * Internal to the config parser (lb_config*.c).  The statements come
 * one at a time, in the file's order, and each is checked against all
 * those before it, so the first error is the one nearest the start of
 * the file, as for every other error.  Every check is a look-up in an
 * index (lb_index.h), not a pass over the earlier statements: a file of
 * LB_CONFIG_MAX_SIZE bytes is checked in time linear in its size.
 */

#ifndef LIVEBACKUP_LB_CONFIG_WHOLE_H
#define LIVEBACKUP_LB_CONFIG_WHOLE_H

#include <stddef.h>

#include "lb_config.h"
#include "lb_config_lex.h"
#include "lb_index.h"

struct lb_config_whole_addr;
struct lb_config_whole_port;

/* What the checks remember of the statements so far.  Start from
 * LB_CONFIG_WHOLE_EMPTY; free with lb_config_whole_free.
 */
struct lb_config_whole {
  struct lb_config_whole_addr *addrs;   /* distinct addresses, in order of
                                           first use */
  size_t naddrs, acap;
  struct lb_index addr_index;           /* addrs by lb_listen_hash */
  struct lb_config_whole_port *ports;   /* per port: the addresses that a
                                           wildcard would overlap */
  size_t nports, pcap;
  struct lb_index port_index;           /* ports by number */
  char **canon;                         /* per client: its image's path,
                                           links resolved */
  size_t ncanon, ccap;
  struct lb_index images;               /* clients by canon */
  struct lb_index names;                /* clients by listen and name */
};

#define LB_CONFIG_WHOLE_EMPTY { .addrs = NULL }

/* Who uses an address. */
enum lb_config_whole_user {
  LB_CONFIG_WHOLE_CLIENT,
  LB_CONFIG_WHOLE_EXPORT,
};

/* May a statement of USER's kind on LINE use the listen address L (read
 * from the word W)?  If so, record that it does and return 0; else fail
 * through LEX (at W's line) and return -1.
 */
extern int lb_config_whole_listen (struct lb_config_whole *wh,
                                   struct lb_config_lex *lex,
                                   const struct lb_listen *l,
                                   enum lb_config_whole_user user, int line,
                                   const struct lb_config_word *w);

/* May client C (complete, about to become CFG->clients[CFG->nclients];
 * its file= word FILE_W, its name= word NAME_W, or NULL where the name
 * is the default) join the clients of CFG?  If so, record it under that
 * number and return 0; else fail through LEX and return -1.
 */
extern int lb_config_whole_client (struct lb_config_whole *wh,
                                   struct lb_config_lex *lex,
                                   const struct lb_config *cfg,
                                   const struct lb_client_conf *c,
                                   const struct lb_config_word *file_w,
                                   const struct lb_config_word *name_w);

/* Free what WH holds. */
extern void lb_config_whole_free (struct lb_config_whole *wh);

#endif /* LIVEBACKUP_LB_CONFIG_WHOLE_H */
