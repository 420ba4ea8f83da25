/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: lbd.conf's lexer — words, comments, continuations, line
 * numbers, and messages that name them.
 *
 * Internal to the config parser (lb_config*.c); the lexical rules
 * themselves are stated in lb_config.h.  The lexer never copies: a word
 * is a pointer into the text and a length.
 */

#ifndef LIVEBACKUP_LB_CONFIG_LEX_H
#define LIVEBACKUP_LB_CONFIG_LEX_H

#include <stdbool.h>
#include <stddef.h>

#include "lb_err.h"

/* A word of the text: not NUL-terminated, never empty. */
struct lb_config_word {
  const char *p;
  size_t n;
  int line;                     /* the physical line it stands on */
};

struct lb_config_lex {
  const char *text;
  size_t len, pos;
  int line;                     /* physical line at pos */
  const char *path;             /* the file's name, for messages */
  char *err;                    /* where the first error goes */
  size_t errlen;
};

/* Start reading the LEN bytes of TEXT; errors are "PATH:LINE: ..." in
 * ERR (ERRLEN bytes; ERR may be NULL).
 */
extern void lb_config_lex_init (struct lb_config_lex *lex, const char *text,
                                size_t len, const char *path, char *err,
                                size_t errlen);

/* Has the whole text been read? */
extern bool lb_config_lex_done (const struct lb_config_lex *lex);

enum lb_config_lex_token {
  LB_CONFIG_LEX_WORD,           /* *W is the next word of the statement */
  LB_CONFIG_LEX_END,            /* the statement ends here: an unescaped
                                   line end, or the end of the text */
  LB_CONFIG_LEX_ERROR,          /* a lexical error, in the lexer's ERR */
};

/* Read the next word of the current statement into W. */
extern enum lb_config_lex_token lb_config_lex_next (struct lb_config_lex *lex,
                                                    struct lb_config_word *w);

/* Fail with "PATH:LINE: FMT..." in the lexer's ERR, cut short to fit;
 * the value is -1, so that "return LB_CONFIG_FAIL (...);" fails.  FMT
 * must be a string literal.  Every error of the config parser is made
 * this way, so every one names the file and line.  (A macro, so that
 * lb_errf formats the whole line at once and checks FMT's arguments.)
 */
#define LB_CONFIG_FAIL(lex, line, fmt, ...)                             \
  ({                                                                    \
    lb_errf ((lex)->err, (lex)->errlen, "%s:%d: " fmt, (lex)->path,     \
             (line), ##__VA_ARGS__);                                    \
    -1;                                                                 \
  })

/* Room for lb_config_lex_show's output. */
#define LB_CONFIG_SHOWN 128

/* Show N bytes at S in OUT (LB_CONFIG_SHOWN bytes) for a message:
 * printable ASCII as is, a backslash as two, other bytes as \xNN, cut
 * short with "..." past 100 bytes, so a message stays one short line
 * whatever the input holds.  Returns OUT.
 */
extern const char *lb_config_lex_show (const char *s, size_t n,
                                       char out[LB_CONFIG_SHOWN]);

/* Are the N bytes at S exactly the string LIT? */
extern bool lb_config_lex_is (const char *s, size_t n, const char *lit);

#endif /* LIVEBACKUP_LB_CONFIG_LEX_H */
