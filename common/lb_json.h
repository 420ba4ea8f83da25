/* livebackup: writing JSON strings for --status --json. */

#ifndef LIVEBACKUP_LB_JSON_H
#define LIVEBACKUP_LB_JSON_H

#include <stdio.h>

/* Print S as a JSON string, quotes included, escaping what must be. */
static inline void
lb_json_str (FILE *fp, const char *s)
{
  fputc ('"', fp);
  for (; *s; s++) {
    unsigned char ch = *s;
    if (ch == '"' || ch == '\\')
      fprintf (fp, "\\%c", ch);
    else if (ch < 0x20)
      fprintf (fp, "\\u%04x", ch);
    else
      fputc (ch, fp);
  }
  fputc ('"', fp);
}

#endif
