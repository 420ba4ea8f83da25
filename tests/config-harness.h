/* SPDX-License-Identifier: BSD-3-Clause */
/* What the config parser's unit tests share (test-config.c and
 * test-config-errors.c): parse a text as if it were /etc/lbd.conf, and
 * expect it to parse or to fail with an exact message.  Each test
 * program includes it once, after tap.h's counters.
 */

#ifndef LB_TESTS_CONFIG_HARNESS_H
#define LB_TESTS_CONFIG_HARNESS_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>

#include "lb_config.h"
#include "tap.h"

#define CONF "/etc/lbd.conf"
#define DIR "/nonexistent-lb"

/* Parse TEXT as CONF, relative paths against DIR. */
static inline int
parse (const char *text, struct lb_config *cfg, char *err, size_t errlen)
{
  return lb_config_parse (text, strlen (text), CONF, DIR, cfg, err, errlen);
}

/* TEXT must fail with exactly WANT, and leave the config empty. */
static inline void
expect_error (const char *what, const char *text, const char *want)
{
  struct lb_config cfg;
  char err[512] = "";
  int r = parse (text, &cfg, err, sizeof err);

  tap_ok (r == -1 && strcmp (err, want) == 0 && cfg.nclients == 0
          && cfg.clients == NULL && cfg.exports == NULL && cfg.path == NULL,
          "%s: %s", what, r == -1 ? err : "accepted");
  if (r == -1 && strcmp (err, want) != 0)
    printf ("#   wanted: %s\n", want);
  if (r == 0)
    lb_config_free (&cfg);
}

/* TEXT must parse; the caller checks and frees CFG. */
static inline bool
expect_ok (const char *what, const char *text, struct lb_config *cfg)
{
  char err[512] = "";
  int r = parse (text, cfg, err, sizeof err);

  tap_ok (r == 0, "%s parses%s%s", what, r ? ": " : "", r ? err : "");
  return r == 0;
}

static inline unsigned
port_of (const struct lb_listen *l)
{
  if (l->family == AF_INET)
    return ntohs (((const struct sockaddr_in *) &l->addr)->sin_port);
  return ntohs (((const struct sockaddr_in6 *) &l->addr)->sin6_port);
}

#endif
