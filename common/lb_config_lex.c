/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: lbd.conf's lexer.  See lb_config_lex.h, and lb_config.h
 * for the rules.
 */

#include <config.h>

#include <stdio.h>
#include <string.h>

#include "lb_config_lex.h"

void
lb_config_lex_init (struct lb_config_lex *lex, const char *text, size_t len,
                    const char *path, char *err, size_t errlen)
{
  *lex = (struct lb_config_lex) {
    .text = text, .len = len, .line = 1,
    .path = path, .err = err, .errlen = errlen,
  };
}

bool
lb_config_lex_done (const struct lb_config_lex *lex)
{
  return lex->pos >= lex->len;
}

const char *
lb_config_lex_show (const char *s, size_t n, char out[LB_CONFIG_SHOWN])
{
  const size_t limit = 100, outlen = LB_CONFIG_SHOWN;
  size_t i, o = 0;

  for (i = 0; i < n; i++) {
    unsigned char c = s[i];
    if (o >= limit || o + 8 > outlen) {
      memcpy (out + o, "...", 4);
      return out;
    }
    if (c >= 0x20 && c < 0x7f && c != '\\')
      out[o++] = c;
    else if (c == '\\') {
      out[o++] = '\\';
      out[o++] = '\\';
    }
    else
      o += snprintf (out + o, outlen - o, "\\x%02x", c);
  }
  out[o] = '\0';
  return out;
}

bool
lb_config_lex_is (const char *s, size_t n, const char *lit)
{
  return strlen (lit) == n && memcmp (s, lit, n) == 0;
}

/* Is the byte at POS a CR that ends its line (before LF, or at the end
 * of the text)?  Such a CR is a blank, so files with CRLF ends work.
 */
static bool
lb_config_lex_eol_cr (const struct lb_config_lex *lex, size_t pos)
{
  return lex->text[pos] == '\r'
    && (pos + 1 == lex->len || lex->text[pos + 1] == '\n');
}

/* If a continuation backslash stands at POS, its length with the line
 * end it joins (backslash, optional CR, LF; or backslash at the end of
 * the text, optionally with a CR); else 0.
 */
static size_t
lb_config_lex_continuation (const struct lb_config_lex *lex, size_t pos)
{
  if (lex->text[pos] != '\\')
    return 0;
  if (pos + 1 == lex->len)
    return 1;
  if (lex->text[pos + 1] == '\n')
    return 2;
  if (lb_config_lex_eol_cr (lex, pos + 1))
    return pos + 2 == lex->len ? 2 : 3;
  return 0;
}

/* Does a word end before POS (a blank, a line end, a comment or a
 * continuation stands there)?
 */
static bool
lb_config_lex_word_ends (const struct lb_config_lex *lex, size_t pos)
{
  const char d = lex->text[pos];

  return d == ' ' || d == '\t' || d == '\n' || d == '#'
    || lb_config_lex_eol_cr (lex, pos)
    || lb_config_lex_continuation (lex, pos);
}

/* Refuse control bytes: the file is text, and a NUL or an escape in a
 * path would only ever be a mistake (or an attack on a terminal).
 * Returns 0, or -1 with the error made.
 */
static int
lb_config_lex_check_byte (struct lb_config_lex *lex, size_t pos)
{
  unsigned char c = lex->text[pos];

  if ((c >= 0x20 && c != 0x7f) || c == '\t' || c == '\n'
      || lb_config_lex_eol_cr (lex, pos))
    return 0;
  if (c == 0)
    return LB_CONFIG_FAIL (lex, lex->line, "NUL byte: is this a text file?");
  return LB_CONFIG_FAIL (lex, lex->line, "control character \\x%02x", c);
}

/* W ends in a backslash: "file=x \" with a blank after the backslash
 * looks like a continuation but is not one.  Say so, rather than report
 * the next line as a statement of its own.  Returns 0, or -1 with the
 * error made.
 */
static int
lb_config_lex_check_backslash (struct lb_config_lex *lex,
                               const struct lb_config_word *w)
{
  char shown[LB_CONFIG_SHOWN];
  size_t k;

  for (k = lex->pos; k < lex->len; k++)
    if (lex->text[k] != ' ' && lex->text[k] != '\t'
        && !lb_config_lex_eol_cr (lex, k))
      break;
  if (k < lex->len && lex->text[k] != '\n' && lex->text[k] != '#')
    return 0;
  return LB_CONFIG_FAIL (lex, w->line, "%s: a backslash continues a line "
                         "only as its last character, but blanks or a "
                         "comment follow it",
                         lb_config_lex_show (w->p, w->n, shown));
}

enum lb_config_lex_token
lb_config_lex_next (struct lb_config_lex *lex, struct lb_config_word *w)
{
  while (lex->pos < lex->len) {
    const char c = lex->text[lex->pos];
    size_t start, cont;

    if (c == ' ' || c == '\t' || lb_config_lex_eol_cr (lex, lex->pos)) {
      lex->pos++;
      continue;
    }
    if (c == '\n') {
      lex->pos++;
      lex->line++;
      return LB_CONFIG_LEX_END;
    }
    if (c == '#') {
      /* To the end of the physical line; its LF ends the statement. */
      for (; lex->pos < lex->len && lex->text[lex->pos] != '\n'; lex->pos++)
        if (lb_config_lex_check_byte (lex, lex->pos) == -1)
          return LB_CONFIG_LEX_ERROR;
      continue;
    }
    cont = lb_config_lex_continuation (lex, lex->pos);
    if (cont) {
      if (lex->text[lex->pos + cont - 1] == '\n')
        lex->line++;
      lex->pos += cont;
      continue;
    }

    start = lex->pos;
    for (; lex->pos < lex->len && !lb_config_lex_word_ends (lex, lex->pos);
         lex->pos++)
      if (lb_config_lex_check_byte (lex, lex->pos) == -1)
        return LB_CONFIG_LEX_ERROR;
    w->p = lex->text + start;
    w->n = lex->pos - start;
    w->line = lex->line;
    if (w->p[w->n - 1] == '\\'
        && lb_config_lex_check_backslash (lex, w) == -1)
      return LB_CONFIG_LEX_ERROR;
    return LB_CONFIG_LEX_WORD;
  }
  return LB_CONFIG_LEX_END;
}
