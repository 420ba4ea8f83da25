/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: an image's binding to the one partition it backs up.
 *
 * Two lb's given the same key (a cloned machine, a copied unit) would
 * otherwise write two partitions into one image, each destroying the
 * other's backup.  So the first partition that says HELLO for an image
 * binds it: its identity (HELLO's partition, doc/protocol.md
 * "Partition identity") is kept in IMAGE.state (partition=), and from
 * then on another identity is refused, as is a partition smaller than
 * the image (truncating would destroy the image's end).  A state file
 * written before identities existed binds to the next identity, but a
 * smaller size is refused all the same.  A refused HELLO changes
 * nothing: not the image, not its state file.
 *
 * Only the operator lifts a refusal: lbd --rebind CONFIG NAME
 * (bind_allow) leaves IMAGE.rebind beside the image; the next HELLO is
 * then accepted whatever its identity and size, binds the image anew
 * and removes the file (bind_done).
 */

#ifndef LBD_BIND_H
#define LBD_BIND_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

struct lb_conn;
struct lbp_msg;

enum bind_verdict {
  BIND_SAME,            /* the bound partition, not smaller */
  BIND_FIRST,           /* not bound yet: bind it to this partition */
  BIND_REBIND,          /* another partition or smaller, allowed by the
                           operator: the image starts anew (a full scan) */
  BIND_OTHER,           /* another partition: refuse */
  BIND_SMALLER,         /* the bound partition, smaller: refuse */
};

/* What to do with a HELLO for PARTITION of DEV_SIZE bytes to IM. */
extern enum bind_verdict bind_check (const struct image *im,
                                     uint64_t partition, uint64_t dev_size);

/* IM's state for the HELLO bind_check allowed with VERDICT (not
 * OTHER or SMALLER): bound to PARTITION, and for BIND_REBIND reset to
 * nothing (no epoch, scanning from byte 0, inconsistent).
 */
extern struct image_state bind_state (const struct image *im,
                                      enum bind_verdict verdict,
                                      uint64_t partition);

/* Refuse HELLO M of client NAME (at PEER) on CONN, for which bind_check
 * said VERDICT (OTHER or SMALLER) of IM: log it as an error (both
 * identities and sizes, the image, the remedy), and tell lb why
 * (LBP_ERR_PARTITION or LBP_ERR_SMALLER).
 */
extern void bind_refuse (struct lb_conn *conn, const struct image *im,
                         enum bind_verdict verdict, const char *name,
                         const char *peer, const struct lbp_msg *m);

/* The operator's permission is used up (no-op without one). */
extern void bind_done (const struct image *im);

/* lbd --rebind: let the next partition to connect bind IMAGE_PATH's
 * image, whatever its identity and size.  Returns 0, or -1 with ERR.
 */
extern int bind_allow (const char *image_path, char *err, size_t errlen);

#endif /* LBD_BIND_H */
