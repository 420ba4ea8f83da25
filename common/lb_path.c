/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: paths named in a config file.  See lb_path.h. */

#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lb_path.h"

char *
lb_path_abs (const char *dir, const char *v, size_t n)
{
  size_t dn = strlen (dir);
  char *s;

  if (n > 0 && v[0] == '/')
    return strndup (v, n);
  while (dn > 1 && dir[dn - 1] == '/')
    dn--;
  s = malloc (dn + 1 + n + 1);
  if (s == NULL)
    return NULL;
  memcpy (s, dir, dn);
  s[dn] = '/';
  memcpy (s + dn + 1, v, n);
  s[dn + 1 + n] = '\0';
  return s;
}

/* PATH (absolute) with ".", ".." and repeated slashes removed by text
 * alone: the last resort when nothing of it exists.
 */
static char *
lb_path_lexical (const char *path)
{
  size_t n = strlen (path), o = 0;
  const char *s = path, *e;
  char *out = malloc (n + 2);

  if (out == NULL)
    return NULL;
  while (*s) {
    while (*s == '/')
      s++;
    if (*s == '\0')
      break;
    e = strchr (s, '/');
    if (e == NULL)
      e = s + strlen (s);
    if (e - s == 1 && s[0] == '.')
      ;
    else if (e - s == 2 && s[0] == '.' && s[1] == '.') {
      while (o > 0 && out[o - 1] != '/')
        o--;
      if (o > 0)
        o--;
    }
    else {
      out[o++] = '/';
      memcpy (out + o, s, e - s);
      o += e - s;
    }
    s = e;
  }
  if (o == 0)
    out[o++] = '/';
  out[o] = '\0';
  return out;
}

char *
lb_path_canon (const char *path)
{
  const char *slash = strrchr (path, '/'), *base;
  char *r = realpath (path, NULL), *parent, *rp;

  if (r || errno == ENOMEM)
    return r;
  base = slash ? slash + 1 : path;
  if (slash && *base && strcmp (base, ".") != 0 && strcmp (base, "..") != 0) {
    parent = slash == path ? strdup ("/") : strndup (path, slash - path);
    if (parent == NULL)
      return NULL;
    rp = realpath (parent, NULL);
    free (parent);
    if (rp) {
      size_t pn = strlen (rp), bn = strlen (base);
      r = malloc (pn + 1 + bn + 1);
      if (r) {
        memcpy (r, rp, pn);
        if (pn > 1)
          r[pn++] = '/';
        memcpy (r + pn, base, bn + 1);
      }
      free (rp);
      return r;
    }
  }
  return lb_path_lexical (path);
}
