/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: lbd.conf's statements — the keywords, the keys each one
 * takes, each key's check, and reading one statement into the config.
 *
 * Internal to the config parser (lb_config*.c).  lb_config_stmt.c holds
 * the tables; to add a key to a statement, see the comment above them.
 */

#ifndef LIVEBACKUP_LB_CONFIG_STMT_H
#define LIVEBACKUP_LB_CONFIG_STMT_H

#include "lb_config.h"
#include "lb_config_lex.h"
#include "lb_config_whole.h"

/* One key's value in the statement being read. */
struct lb_config_val {
  bool set;
  struct lb_config_word word;   /* the whole KEY=VALUE */
  const char *v;                /* the value, inside word */
  size_t vn;
};

/* The most keys a statement may have. */
#define LB_CONFIG_KEYS_MAX 16

/* The state of one parse. */
struct lb_config_parser {
  struct lb_config_lex lex;
  const char *dir;              /* relative paths resolve against it */
  struct lb_config *cfg;        /* what is read so far */
  size_t clcap, ecap;           /* room in cfg->clients, cfg->exports */
  struct lb_config_whole whole;
  /* The server-wide settings given so far, on any line (each once). */
  struct lb_config_val settings[LB_CONFIG_KEYS_MAX];
};

/* Read the next statement (nothing, for a blank or comment line) and add
 * it to P->cfg.  Returns 0, or -1 with the error made through P->lex.
 */
extern int lb_config_stmt_read (struct lb_config_parser *p);

/* Free what client C holds (its strings). */
extern void lb_config_stmt_free_client (struct lb_client_conf *c);

#endif /* LIVEBACKUP_LB_CONFIG_STMT_H */
