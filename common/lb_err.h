/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: how an error message is carried.
 *
 * The one convention: a function that can fail in more than one way
 * takes (char *err, size_t errlen) last, and on failure writes one line
 * there — no newline, naming what is at fault (a file and line, an
 * option, a peer) — with lb_errf.  The caller adds only its own context
 * ("lb: ", a client's name) and logs or prints it.  Pure checkers that
 * need no formatting (lbp_check_header, lw_header_check) return a
 * static reason instead, or NULL when all is well.
 */

#ifndef LIVEBACKUP_LB_ERR_H
#define LIVEBACKUP_LB_ERR_H

#include <stddef.h>

/* printf into ERR (ERRLEN bytes, cut short if need be, always
 * terminated).  ERR may be NULL, or ERRLEN 0: nothing is written.
 * errno is left as it was, so "lb_errf (...); return -1;" keeps it.
 */
extern void lb_errf (char *err, size_t errlen, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

#endif /* LIVEBACKUP_LB_ERR_H */
