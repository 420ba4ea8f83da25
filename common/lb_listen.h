/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: listen addresses, "ADDR/PORT" as lbd.conf writes them.
 *
 * ADDR is an IPv4 literal (dotted quad only), an IPv6 literal with or
 * without brackets (::1/15440, [::1]/15440; fe80::1%eth0 or fe80::1%2
 * names a zone), or '*' for every address; PORT is 1..65535, digits
 * only.  No name is ever looked up in the DNS.  The config parser
 * (lb_config_stmt.c) uses this for listen=; lbd uses the results
 * without the config (comparing addresses, binding).
 */

#ifndef LIVEBACKUP_LB_LISTEN_H
#define LIVEBACKUP_LB_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A listen address, ready for socket() and bind().
 * '*' gives AF_INET6 and in6addr_any: the caller should clear
 * IPV6_V6ONLY to take IPv4 connections too, and may fall back to
 * AF_INET/INADDR_ANY where the host has no IPv6.  An IPv4-mapped IPv6
 * address (::ffff:10.0.0.1) is stored as the IPv4 address it maps.
 */
struct lb_listen {
  char text[80];        /* canonical form for messages: "10.0.0.17/15440",
                           "::1/15440", or '*', '/' and the port */
  int family;           /* AF_INET or AF_INET6 */
  struct sockaddr_storage addr;
  socklen_t addrlen;
  bool loopback;        /* 127.0.0.0/8 or ::1 */
};

/* Parse the N bytes at V ("ADDR/PORT", not NUL-terminated) into *L.
 * Returns NULL, or why V is wrong as a static string ("bad address",
 * "bad port (1 to 65535)", ...) for the caller to put after the word
 * at fault; *L is then unspecified.  Looks at the system only to turn
 * a zone's interface name into its index.
 */
extern const char *lb_listen_parse (const char *v, size_t n,
                                    struct lb_listen *l);

/* The port, in host order. */
extern unsigned lb_listen_port (const struct lb_listen *l);

/* Same family, address (and IPv6 zone) and port. */
extern bool lb_listen_equal (const struct lb_listen *a,
                             const struct lb_listen *b);

/* Would binding both A and B (not equal) fail?  A wildcard takes its
 * port on every address of its family, and the IPv6 wildcard, being
 * dual-stack, on every IPv4 address too.  False for equal addresses
 * (those share one socket).
 */
extern bool lb_listen_overlap (const struct lb_listen *a,
                               const struct lb_listen *b);

/* What a wildcard is: these decide lb_listen_overlap, and let an index
 * of addresses find the ones an address overlaps without a pass over
 * them all (lb_config_whole.c).
 */
enum lb_listen_kind {
  LB_LISTEN_V4,         /* one IPv4 address */
  LB_LISTEN_V4_ANY,     /* 0.0.0.0: every IPv4 address */
  LB_LISTEN_V6,         /* one IPv6 address */
  LB_LISTEN_V6_ANY,     /* '*', ::, or :: with a zone: every address */
};
extern enum lb_listen_kind lb_listen_kind (const struct lb_listen *l);

/* Continue the lb_index_hash H over what lb_listen_equal compares, so
 * that equal addresses hash alike.
 */
extern uint64_t lb_listen_hash (uint64_t h, const struct lb_listen *l);

#endif /* LIVEBACKUP_LB_LISTEN_H */
