/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: status documents.  See lb_status.h. */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "lb_status.h"
#include "lb_time.h"

enum lb_status_kind {
  LB_STATUS_STR,
  LB_STATUS_UINT,
  LB_STATUS_INT,
  LB_STATUS_BOOL,
  LB_STATUS_BYTES,
  LB_STATUS_TIME,
  LB_STATUS_SIZE,
  LB_STATUS_RATE,
  LB_STATUS_SECONDS,
  LB_STATUS_PERCENT,            /* v.u in tenths of a percent */
  LB_STATUS_OBJECT,
  LB_STATUS_ARRAY,
};

struct lb_status {
  enum lb_status_kind kind;
  char *key;                    /* NULL: an array element, or a group */
  union {
    char *s;
    uint64_t u;                 /* numbers, times; bool 0 or 1; for
                                   INT, the int64_t's two's complement */
  } v;
  bool text_only;
  bool broken;                  /* root: a builder failed (errno saved) */
  int broken_errno;
  uint64_t now;                 /* root: times are told against it */
  const char *layout;           /* objects: the text form, or NULL */
  struct lb_status *parent, *first, *last, *next;
};

static bool
lb_status_is_container (const struct lb_status *n)
{
  return n->kind == LB_STATUS_OBJECT || n->kind == LB_STATUS_ARRAY;
}

/* Remember on the root that the document is incomplete. */
static void
lb_status_break (struct lb_status *n, int e)
{
  while (n->parent)
    n = n->parent;
  if (!n->broken) {
    n->broken = true;
    n->broken_errno = e;
  }
}

struct lb_status *
lb_status_new (void)
{
  struct lb_status *d = calloc (1, sizeof *d);

  if (d) {
    d->kind = LB_STATUS_OBJECT;
    d->now = (uint64_t) time (NULL);
  }
  return d;
}

void
lb_status_set_now (struct lb_status *doc, uint64_t now)
{
  if (doc)
    doc->now = now;
}

/* The root of N's document. */
static const struct lb_status *
lb_status_root (const struct lb_status *n)
{
  while (n->parent)
    n = n->parent;
  return n;
}

/* Free N and the siblings after it (a root has none), children first. */
void
lb_status_free (struct lb_status *n)
{
  while (n) {
    struct lb_status *next = n->next;
    lb_status_free (n->first);
    if (n->kind == LB_STATUS_STR)
      free (n->v.s);
    free (n->key);
    free (n);
    n = next;
  }
}

/* A new node of KIND at the end of OBJ's children, or NULL (OBJ is
 * NULL, not a container, or memory ran out: the document is broken).
 */
static struct lb_status *
lb_status_add (struct lb_status *obj, const char *key,
               enum lb_status_kind kind)
{
  struct lb_status *n;

  if (obj == NULL)
    return NULL;
  if (!lb_status_is_container (obj)
      || (obj->kind == LB_STATUS_OBJECT && key == NULL
          && kind != LB_STATUS_OBJECT)) {
    lb_status_break (obj, EINVAL);
    return NULL;
  }
  n = calloc (1, sizeof *n);
  if (n == NULL
      || (obj->kind == LB_STATUS_OBJECT && key
          && (n->key = strdup (key)) == NULL)) {
    free (n);
    lb_status_break (obj, ENOMEM);
    return NULL;
  }
  n->kind = kind;
  n->parent = obj;
  if (obj->last)
    obj->last->next = n;
  else
    obj->first = n;
  obj->last = n;
  return n;
}

/* A string field owning S (already allocated, or NULL: out of memory). */
static struct lb_status *
lb_status_add_str (struct lb_status *obj, const char *key, char *s)
{
  struct lb_status *n;

  if (s == NULL) {
    if (obj)
      lb_status_break (obj, ENOMEM);
    return NULL;
  }
  n = lb_status_add (obj, key, LB_STATUS_STR);
  if (n == NULL) {
    free (s);
    return NULL;
  }
  n->v.s = s;
  return n;
}

struct lb_status *
lb_status_str (struct lb_status *obj, const char *key, const char *value)
{
  return lb_status_add_str (obj, key, strdup (value ? value : ""));
}

struct lb_status *
lb_status_strf (struct lb_status *obj, const char *key, const char *fmt, ...)
{
  va_list ap;
  char *s;
  int r;

  va_start (ap, fmt);
  r = vasprintf (&s, fmt, ap);
  va_end (ap);
  return lb_status_add_str (obj, key, r == -1 ? NULL : s);
}

/* A number (or bool) field of KIND holding U. */
static struct lb_status *
lb_status_add_u (struct lb_status *obj, const char *key,
                 enum lb_status_kind kind, uint64_t u)
{
  struct lb_status *n = lb_status_add (obj, key, kind);

  if (n)
    n->v.u = u;
  return n;
}

struct lb_status *
lb_status_uint (struct lb_status *obj, const char *key, uint64_t value)
{
  return lb_status_add_u (obj, key, LB_STATUS_UINT, value);
}

struct lb_status *
lb_status_bytes (struct lb_status *obj, const char *key, uint64_t bytes)
{
  return lb_status_add_u (obj, key, LB_STATUS_BYTES, bytes);
}

struct lb_status *
lb_status_time (struct lb_status *obj, const char *key, uint64_t t)
{
  return lb_status_add_u (obj, key, LB_STATUS_TIME, t);
}

struct lb_status *
lb_status_size (struct lb_status *obj, const char *key, uint64_t bytes)
{
  return lb_status_add_u (obj, key, LB_STATUS_SIZE, bytes);
}

struct lb_status *
lb_status_rate (struct lb_status *obj, const char *key, uint64_t bytes_per_s)
{
  return lb_status_add_u (obj, key, LB_STATUS_RATE, bytes_per_s);
}

struct lb_status *
lb_status_seconds (struct lb_status *obj, const char *key, uint64_t seconds)
{
  return lb_status_add_u (obj, key, LB_STATUS_SECONDS, seconds);
}

struct lb_status *
lb_status_percent (struct lb_status *obj, const char *key, uint64_t done,
                   uint64_t total)
{
  /* Rounded down, so that 100% means done (and 0% nothing done only
   * when nothing is).
   */
  uint64_t tenths = total == 0 || done >= total ? 1000
    : (uint64_t) ((unsigned __int128) done * 1000 / total);

  return lb_status_add_u (obj, key, LB_STATUS_PERCENT, tenths);
}

struct lb_status *
lb_status_int (struct lb_status *obj, const char *key, int64_t value)
{
  return lb_status_add_u (obj, key, LB_STATUS_INT, (uint64_t) value);
}

struct lb_status *
lb_status_bool (struct lb_status *obj, const char *key, bool value)
{
  return lb_status_add_u (obj, key, LB_STATUS_BOOL, value);
}

struct lb_status *
lb_status_object (struct lb_status *obj, const char *key)
{
  return lb_status_add (obj, key, LB_STATUS_OBJECT);
}

struct lb_status *
lb_status_array (struct lb_status *obj, const char *key)
{
  return lb_status_add (obj, key, LB_STATUS_ARRAY);
}

struct lb_status *
lb_status_text_only (struct lb_status *field)
{
  if (field)
    field->text_only = true;
  return field;
}

void
lb_status_layout (struct lb_status *obj, const char *layout)
{
  if (obj && obj->kind == LB_STATUS_OBJECT)
    obj->layout = layout;
  else if (obj)
    lb_status_break (obj, EINVAL);
}

/* --- text ------------------------------------------------------------ */

/* Room for any field's text but a string's: a time and its age, a
 * 20-digit number.
 */
#define LB_STATUS_VALUE_LEN (2 * LB_TIME_LEN + 16)

/* BYTES as people read a size, into BUF: "512 bytes", "6.6 GiB", "212
 * MiB" (binary units, rounded down, one decimal below 100).
 */
static void
lb_status_human (uint64_t bytes, char buf[LB_STATUS_VALUE_LEN])
{
  static const char unit[][4] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  unsigned k = 0;
  uint64_t tenths;

  if (bytes < 1024) {
    snprintf (buf, LB_STATUS_VALUE_LEN, "%" PRIu64 " bytes", bytes);
    return;
  }
  while (k + 1 < sizeof unit / sizeof unit[0] && bytes >> (10 * (k + 1))
         >= 1024)
    k++;
  tenths = (uint64_t) ((unsigned __int128) bytes * 10 >> (10 * (k + 1)));
  if (tenths < 1000)
    snprintf (buf, LB_STATUS_VALUE_LEN, "%" PRIu64 ".%" PRIu64 " %s",
              tenths / 10, tenths % 10, unit[k]);
  else
    snprintf (buf, LB_STATUS_VALUE_LEN, "%" PRIu64 " %s", tenths / 10,
              unit[k]);
}

/* Time T of the document whose time is NOW: local time and how long
 * ago (or "in" how long, for a clock that went back), "never" for 0.
 */
static void
lb_status_when (uint64_t t, uint64_t now, char buf[LB_STATUS_VALUE_LEN])
{
  char local[LB_TIME_LEN], age[LB_TIME_LEN];

  lb_time_local (t, local);
  if (t == 0)
    snprintf (buf, LB_STATUS_VALUE_LEN, "%s", local);
  else if (t <= now)
    snprintf (buf, LB_STATUS_VALUE_LEN, "%s (%s ago)", local,
              lb_duration (now - t, age));
  else
    snprintf (buf, LB_STATUS_VALUE_LEN, "%s (in %s)", local,
              lb_duration (t - now, age));
}

/* Field F as text; BUF holds it unless it is a string. */
static const char *
lb_status_text_of (const struct lb_status *f, char buf[LB_STATUS_VALUE_LEN])
{
  switch (f->kind) {
  case LB_STATUS_STR:
    return f->v.s;
  case LB_STATUS_UINT:
  case LB_STATUS_BYTES:
    snprintf (buf, LB_STATUS_VALUE_LEN, "%" PRIu64, f->v.u);
    return buf;
  case LB_STATUS_INT:
    snprintf (buf, LB_STATUS_VALUE_LEN, "%" PRId64, (int64_t) f->v.u);
    return buf;
  case LB_STATUS_BOOL:
    return f->v.u ? "1" : "0";
  case LB_STATUS_TIME:
    lb_status_when (f->v.u, lb_status_root (f)->now, buf);
    return buf;
  case LB_STATUS_SIZE:
    lb_status_human (f->v.u, buf);
    return buf;
  case LB_STATUS_RATE:
    lb_status_human (f->v.u, buf);
    /* "bytes" and the binary units alike take "/s". */
    strcat (buf, "/s");
    return buf;
  case LB_STATUS_SECONDS:
    return lb_duration (f->v.u, buf);
  case LB_STATUS_PERCENT:
    snprintf (buf, LB_STATUS_VALUE_LEN, "%" PRIu64 ".%" PRIu64 "%%",
              f->v.u / 10, f->v.u % 10);
    return buf;
  case LB_STATUS_OBJECT:
  case LB_STATUS_ARRAY:
    break;
  }
  return "";
}

/* Is F set, for {KEY?...}?  A missing field is not. */
static bool
lb_status_is_set (const struct lb_status *f)
{
  if (f == NULL)
    return false;
  switch (f->kind) {
  case LB_STATUS_STR:
    return f->v.s[0] != '\0';
  case LB_STATUS_INT:
  case LB_STATUS_BOOL:
  case LB_STATUS_UINT:
  case LB_STATUS_BYTES:
  case LB_STATUS_TIME:
  case LB_STATUS_SIZE:
  case LB_STATUS_RATE:
  case LB_STATUS_SECONDS:
  case LB_STATUS_PERCENT:
    return f->v.u != 0;
  case LB_STATUS_OBJECT:
  case LB_STATUS_ARRAY:
    return f->first != NULL;
  }
  return false;
}

/* OBJ's field named by the LEN bytes at KEY, or NULL. */
static const struct lb_status *
lb_status_find (const struct lb_status *obj, const char *key, size_t len)
{
  const struct lb_status *n;

  for (n = obj->first; n; n = n->next)
    if (n->key && strncmp (n->key, key, len) == 0 && n->key[len] == '\0')
      return n;
  return NULL;
}

/* Write OBJ's layout from *PP up to the first character of STOPS at this
 * level of braces (or its end), if EMIT (else only step over it), and
 * leave *PP there.
 */
static void
lb_status_layout_run (FILE *fp, const struct lb_status *obj, const char **pp,
                      const char *stops, bool emit)
{
  const char *p = *pp;
  char buf[LB_STATUS_VALUE_LEN];

  while (*p != '\0' && strchr (stops, *p) == NULL) {
    const struct lb_status *f;
    size_t n;
    bool set;

    if (*p != '{') {
      if (emit)
        fputc (*p, fp);
      p++;
      continue;
    }
    p++;
    n = strcspn (p, "}?=");
    f = lb_status_find (obj, p, n);
    p += n;
    if (*p == '}') {
      if (emit && f)
        fputs (lb_status_text_of (f, buf), fp);
      p++;
      continue;
    }
    if (*p == '=') {
      const char *text;
      p++;
      n = strcspn (p, "?}");
      text = f ? lb_status_text_of (f, buf) : NULL;
      set = text && strncmp (text, p, n) == 0 && text[n] == '\0';
      p += n;
    }
    else
      set = lb_status_is_set (f);
    if (*p == '?') {
      p++;
      lb_status_layout_run (fp, obj, &p, "|}", emit && set);
      if (*p == '|') {
        p++;
        lb_status_layout_run (fp, obj, &p, "}", emit && !set);
      }
    }
    if (*p == '}')
      p++;
  }
  *pp = p;
}

/* OBJ (an object or array DEPTH levels down) as text. */
static void
lb_status_text (FILE *fp, const struct lb_status *obj, unsigned depth)
{
  const struct lb_status *n;
  char buf[LB_STATUS_VALUE_LEN];

  if (obj->layout) {
    const char *p = obj->layout;
    lb_status_layout_run (fp, obj, &p, "", true);
  }
  for (n = obj->first; n; n = n->next) {
    if (lb_status_is_container (n))
      lb_status_text (fp, n, depth + 1);
    else if (obj->layout == NULL) {
      const char *key = n->key ? n->key : obj->key;
      fprintf (fp, "%*s%s: %s\n", (int) depth * 2, "", key ? key : "",
               lb_status_text_of (n, buf));
    }
  }
}

/* --- JSON ------------------------------------------------------------ */

/* S inside a JSON string, escaped. */
static void
lb_status_json_chars (FILE *fp, const char *s)
{
  for (; *s; s++) {
    unsigned char ch = *s;
    if (ch == '"' || ch == '\\')
      fprintf (fp, "\\%c", ch);
    else if (ch < 0x20)
      fprintf (fp, "\\u%04x", ch);
    else
      fputc (ch, fp);
  }
}

/* S as a JSON string, quotes included. */
static void
lb_status_json_str (FILE *fp, const char *s)
{
  fputc ('"', fp);
  lb_status_json_chars (fp, s);
  fputc ('"', fp);
}

static void lb_status_json_value (FILE *fp, const struct lb_status *n);

/* After time field N of an object: its KEY_iso member. */
static void
lb_status_json_iso (FILE *fp, const struct lb_status *n)
{
  char iso[LB_TIME_LEN];

  fputc (',', fp);
  fputc ('"', fp);
  lb_status_json_chars (fp, n->key);
  fputs ("_iso\":", fp);
  if (n->v.u == 0)
    fputs ("null", fp);
  else
    lb_status_json_str (fp, lb_time_iso (n->v.u, iso));
}

/* The members of OBJ (a group's inline), after FIRST ones; returns
 * whether none has been written yet.
 */
static bool
lb_status_json_members (FILE *fp, const struct lb_status *obj, bool first)
{
  const struct lb_status *n;

  for (n = obj->first; n; n = n->next) {
    if (n->text_only)
      continue;
    if (obj->kind == LB_STATUS_OBJECT && n->key == NULL) {
      first = lb_status_json_members (fp, n, first);
      continue;
    }
    if (!first)
      fputc (',', fp);
    first = false;
    if (obj->kind == LB_STATUS_OBJECT) {
      lb_status_json_str (fp, n->key);
      fputc (':', fp);
    }
    lb_status_json_value (fp, n);
    if (obj->kind == LB_STATUS_OBJECT && n->kind == LB_STATUS_TIME)
      lb_status_json_iso (fp, n);
  }
  return first;
}

static void
lb_status_json_value (FILE *fp, const struct lb_status *n)
{
  switch (n->kind) {
  case LB_STATUS_STR:
    lb_status_json_str (fp, n->v.s);
    break;
  case LB_STATUS_UINT:
  case LB_STATUS_BYTES:
  case LB_STATUS_TIME:
  case LB_STATUS_SIZE:
  case LB_STATUS_RATE:
  case LB_STATUS_SECONDS:
    fprintf (fp, "%" PRIu64, n->v.u);
    break;
  case LB_STATUS_PERCENT:
    fprintf (fp, "%" PRIu64 ".%" PRIu64, n->v.u / 10, n->v.u % 10);
    break;
  case LB_STATUS_INT:
    fprintf (fp, "%" PRId64, (int64_t) n->v.u);
    break;
  case LB_STATUS_BOOL:
    fputs (n->v.u ? "true" : "false", fp);
    break;
  case LB_STATUS_OBJECT:
    fputc ('{', fp);
    lb_status_json_members (fp, n, true);
    fputc ('}', fp);
    break;
  case LB_STATUS_ARRAY:
    fputc ('[', fp);
    lb_status_json_members (fp, n, true);
    fputc (']', fp);
    break;
  }
}

int
lb_status_render (const struct lb_status *doc, enum lb_status_format format,
                  FILE *fp)
{
  if (doc == NULL || doc->broken) {
    errno = doc ? doc->broken_errno : ENOMEM;
    return -1;
  }
  if (format == LB_STATUS_JSON) {
    lb_status_json_value (fp, doc);
    fputc ('\n', fp);
  }
  else
    lb_status_text (fp, doc, 0);
  if (fflush (fp) == EOF || ferror (fp))
    return -1;
  return 0;
}
