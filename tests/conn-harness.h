/* SPDX-License-Identifier: BSD-3-Clause */
/* The harness of the transport's unit tests (tests/test-conn.c,
 * tests/test-conn-raw.c): loopback sockets, a server thread that takes
 * one connection in any of the ways lbd does, clients, and the
 * throughput report.  No assertions here: tests/tap.h counts per file.
 */

#ifndef LB_TESTS_CONN_HARNESS_H
#define LB_TESTS_CONN_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lb_conn.h"
#include "lb_time.h"

#define T_TIMEOUT 5000          /* ms, for handshakes that should work */
/* ms a bounded wait may overrun its bound on a busy machine; a wait
 * that ignored the bound would run into GnuTLS's or TCP's own limits,
 * tens of seconds, or forever.
 */
#define SLACK 2000

/* lb_now_ms, signed: tests subtract times. */
static inline int64_t
now_ms (void)
{
  return (int64_t) lb_now_ms ();
}

/* Two keys that differ in their last bit (harness_setup). */
extern struct lb_key key_a, key_b;

/* Set the keys and listen (listen_any): the listening fd, or a TAP
 * "Bail out!" and exit.
 */
extern int harness_setup (int *port);

/* Listen on 127.0.0.1, a port the kernel chooses (*PORT): the fd, or -1. */
extern int listen_any (int *port);
/* A connected socket to 127.0.0.1:PORT, or -1. */
extern int connect_to (int port);

/* A server thread: accepts one connection on LFD and shakes hands as if
 * configured with one client line (NAME, KEY, ENCRYPT); then AFTER runs
 * on the connection, which is closed when it returns.  HOW says which
 * handshake: lb_conn_server's; none (raw mode); or raw mode, one
 * exchange in clear ("STARTTLS" / "ACK", as NBD's option and its
 * reply), then lb_conn_server_starttls.
 */
enum srv_how { SRV_HANDSHAKE, SRV_RAW, SRV_STARTTLS };

struct srv {
  int lfd;
  enum srv_how how;
  const char *name;
  struct lb_key key;
  bool encrypt;
  int timeout_ms;
  void (*after) (struct srv *s, struct lb_conn *c);
  size_t nbytes;                /* for AFTER */

  pthread_t th;
  bool ok;
  int e;
  int64_t ms;                   /* handshake time */
  void *client;
  char err[256], identity[300], desc[128];
  bool data_ok;
  size_t got;
  bool raw_ok;                  /* SRV_STARTTLS: the exchange in clear */
  atomic_bool release;          /* for after_hold */
};

/* Start S's thread on LFD for a client line NAME, K, ENCRYPT (S's other
 * fields as the caller set them: how, after, nbytes, timeout_ms).
 */
extern void srv_start (struct srv *s, int lfd, const char *name,
                       const struct lb_key *k, bool encrypt);

/* Clients: connect and shake hands (cli); connect in raw mode
 * (cli_raw); connect, ask for STARTTLS in clear, then shake hands
 * (cli_starttls).  NULL with ERR on failure.
 */
extern struct lb_conn *cli (int port, const char *name,
                            const struct lb_key *k, bool encrypt,
                            int timeout_ms, char *err, size_t errlen);
extern struct lb_conn *cli_raw (int port, char *err, size_t errlen);
extern struct lb_conn *cli_starttls (int port, const char *name,
                                     const struct lb_key *k, bool encrypt,
                                     char *err, size_t errlen, int *fdp);

/* The byte at I of a stream seeded SEED. */
extern uint8_t pattern (size_t i, unsigned seed);

/* Send MIB MiB (sendv of a small header and 1 MiB if VEC) and print the
 * rate and the CPU time it cost, as TAP comments.
 */
extern void bench (int lfd, int port, bool encrypt, bool vec, size_t mib);

#endif /* LB_TESTS_CONN_HARNESS_H */
