/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: what the client's files share: its options.
 *
 * lb.c parses them and runs the attach loop; session.c runs one session
 * with lbd (sink.c turns the channel into messages); control.c answers
 * lb --status on the control socket.
 */

#ifndef LB_LB_H
#define LB_LB_H

#include <stdbool.h>
#include <stdint.h>

struct lb_opts {
  unsigned unit;
  const char *device, *host, *port, *keyfile;
  const char *dir;              /* the channel's folder; NULL: default */
  const char *control;          /* the control socket, absolute */
  const char *name;
  const char *user;
  int retry;                    /* seconds; -1: random 60-120 */
  int defer;                    /* seconds a pass waits for a burst's end */
  bool encrypt, daemonize, allow_open_key;
  int compress;                 /* compress.h: LB_COMPRESS_AUTO, ... */
  uint64_t max_rate;            /* bytes a second; 0: no limit */
  uint32_t hash_block;
};

#endif /* LB_LB_H */
