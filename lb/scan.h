/* SPDX-License-Identifier: BSD-3-Clause */
/* lb: the sink's scan (doc/hashing.md, "Two levels").
 *
 * A scan's copy of a device range does not send the range: it asks lbd
 * for hashes and sends only what differs.  Up to LB_SCAN_WINDOW hash
 * requests are in flight (struct lb_sink's scan window, sink.h); each
 * region is asked first for one hash (in a sweep, where most regions
 * are expected the same) or at once by blocks of --hash-block (after a
 * reply that differed, and in a catch-up's comparisons), and a region
 * whose one hash differs is asked again by blocks at the window's tail,
 * so that replies still come in the order of the requests.  lb hashes
 * its own copy of each region meanwhile, every other one on the
 * hasher's thread (hasher.h).
 */

#ifndef LB_SCAN_H
#define LB_SCAN_H

#include <stdint.h>

struct lb_sink;

/* Compare [OFF, OFF+LEN) of the device with the image, region by
 * region, sending what differs as BLOCKs; the last requests may still
 * be in flight on return (lb_scan_drain finishes them).  0, or -1 if
 * the session failed.
 */
extern int lb_scan_regions (struct lb_sink *s, uint64_t off, uint64_t len);

/* Finish every request in the window, both levels: before a SYNC, so
 * that what it declares swept was compared.  0, or -1 if the session
 * failed.
 */
extern int lb_scan_drain (struct lb_sink *s);

#endif
