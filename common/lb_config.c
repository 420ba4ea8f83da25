/* livebackup: lbd's configuration file.  See lb_config.h for the
 * grammar and the contract.
 *
 * The parser reads the text once, word by word, and never copies a line:
 * a statement's values are pointers into the text until the statement
 * ends and is checked.  So nothing it allocates is larger than the input
 * (plus the folder's name), whatever the input holds.
 */

#include <config.h>

#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>
#include <sys/stat.h>

#include "lb_array.h"
#include "lb_config.h"
#include "lb_index.h"
#include "lb_path.h"

enum lb_config_key {
  LBK_FILE, LBK_KEY, LBK_LISTEN, LBK_TYPE, LBK_NAME, LBK_ENCRYPT, LBK_TLS,
  LBK_COUNT
};

static const char *const lb_config_key_names[LBK_COUNT] = {
  "file", "key", "listen", "type", "name", "encrypt", "tls",
};

#define LBK_BIT(k) (1u << (k))

/* What each keyword takes. */
struct lb_config_kind {
  const char *keyword;
  unsigned allowed, required;
  const char *known;            /* the allowed keys, for messages */
};

enum { LB_KIND_CLIENT, LB_KIND_EXPORT };

static const struct lb_config_kind lb_config_kinds[] = {
  [LB_KIND_CLIENT] = {
    "client",
    LBK_BIT (LBK_FILE) | LBK_BIT (LBK_KEY) | LBK_BIT (LBK_LISTEN)
    | LBK_BIT (LBK_TYPE) | LBK_BIT (LBK_NAME) | LBK_BIT (LBK_ENCRYPT),
    LBK_BIT (LBK_FILE) | LBK_BIT (LBK_KEY) | LBK_BIT (LBK_LISTEN),
    "file, key, listen, type, name or encrypt",
  },
  [LB_KIND_EXPORT] = {
    "export",
    LBK_BIT (LBK_LISTEN) | LBK_BIT (LBK_TLS),
    LBK_BIT (LBK_LISTEN),
    "listen or tls",
  },
};

/* A word of the text: not NUL-terminated. */
struct lb_config_word {
  const char *p;
  size_t n;
  int line;
};

/* One key's value in the statement being read. */
struct lb_config_val {
  bool set;
  struct lb_config_word word;   /* the whole KEY=VALUE */
  const char *v;                /* the value, inside word */
  size_t vn;
};

/* A distinct listen address, and what uses it. */
struct lb_config_addr {
  struct lb_listen listen;
  int line;                     /* the first statement that uses it */
  int client_line, export_line; /* the first client, the export; or 0 */
};

struct lb_config_parser {
  const char *text;
  size_t len, pos;
  int line;                     /* physical line at pos */
  const char *path, *dir;
  struct lb_config *cfg;
  char **canon;                 /* per client: image path, links resolved */
  size_t clcap, ccap, ecap;     /* room in cfg->clients, canon, exports */
  struct lb_index images;        /* clients by canon */
  struct lb_index names;          /* clients by listen and name */
  struct lb_config_addr *addrs;         /* in order of first use */
  size_t naddrs, acap;
  char *err;
  size_t errlen;
};

/* Show N bytes at S in OUT for a message: printable ASCII as is, other
 * bytes as \xNN, cut short with "..." so the message stays one short
 * line whatever the input holds.
 */
static const char *
lb_config_show (const char *s, size_t n, char *out, size_t outlen)
{
  const size_t limit = 100;
  size_t i, o = 0;

  assert (outlen >= 8);
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

/* Fail with "PATH:LINE: FMT..." in the caller's buffer. */
static int lb_config_fail (struct lb_config_parser *p, int line,
                           const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

static int
lb_config_fail (struct lb_config_parser *p, int line, const char *fmt, ...)
{
  va_list ap;
  int n;

  if (p->err == NULL || p->errlen == 0)
    return -1;
  n = snprintf (p->err, p->errlen, "%s:%d: ", p->path, line);
  if (n >= 0 && (size_t) n < p->errlen) {
    va_start (ap, fmt);
    vsnprintf (p->err + n, p->errlen - n, fmt, ap);
    va_end (ap);
  }
  return -1;
}

/* Is the byte at POS a CR that ends its line (before LF, or at the end
 * of the text)?  Such a CR is a blank, so files with CRLF ends work.
 */
static bool
lb_config_eol_cr (const struct lb_config_parser *p, size_t pos)
{
  return p->text[pos] == '\r'
    && (pos + 1 == p->len || p->text[pos + 1] == '\n');
}

/* If a continuation backslash stands at POS, its length with the line
 * end it joins (backslash, optional CR, LF; or backslash at the end of
 * the text, optionally with a CR); else 0.
 */
static size_t
lb_config_continuation (const struct lb_config_parser *p, size_t pos)
{
  if (p->text[pos] != '\\')
    return 0;
  if (pos + 1 == p->len)
    return 1;
  if (p->text[pos + 1] == '\n')
    return 2;
  if (lb_config_eol_cr (p, pos + 1))
    return pos + 2 == p->len ? 2 : 3;
  return 0;
}

/* Refuse control bytes: the file is text, and a NUL or an escape in a
 * path would only ever be a mistake (or an attack on a terminal).
 */
static int
lb_config_check_byte (struct lb_config_parser *p, size_t pos)
{
  unsigned char c = p->text[pos];

  if ((c >= 0x20 && c != 0x7f) || c == '\t' || c == '\n'
      || lb_config_eol_cr (p, pos))
    return 0;
  if (c == 0)
    return lb_config_fail (p, p->line, "NUL byte: is this a text file?");
  return lb_config_fail (p, p->line, "control character \\x%02x", c);
}

/* Read the next word of the statement into W.  Returns 1, or 0 at the
 * end of the statement (an unescaped line end, or the end of the text),
 * or -1 on error.
 */
static int
lb_config_next_word (struct lb_config_parser *p, struct lb_config_word *w)
{
  while (p->pos < p->len) {
    const char c = p->text[p->pos];
    size_t start, k, cont;

    if (c == ' ' || c == '\t' || lb_config_eol_cr (p, p->pos)) {
      p->pos++;
      continue;
    }
    if (c == '\n') {
      p->pos++;
      p->line++;
      return 0;
    }
    if (c == '#') {
      /* To the end of the physical line; its LF ends the statement. */
      for (; p->pos < p->len && p->text[p->pos] != '\n'; p->pos++)
        if (lb_config_check_byte (p, p->pos) == -1)
          return -1;
      continue;
    }
    cont = lb_config_continuation (p, p->pos);
    if (cont) {
      if (p->text[p->pos + cont - 1] == '\n')
        p->line++;
      p->pos += cont;
      continue;
    }

    start = p->pos;
    for (; p->pos < p->len; p->pos++) {
      const char d = p->text[p->pos];
      if (d == ' ' || d == '\t' || d == '\n' || d == '#'
          || lb_config_eol_cr (p, p->pos)
          || lb_config_continuation (p, p->pos))
        break;
      if (lb_config_check_byte (p, p->pos) == -1)
        return -1;
    }
    w->p = p->text + start;
    w->n = p->pos - start;
    w->line = p->line;

    /* "file=x \" with a blank after the backslash looks like a
     * continuation but is not one: say so rather than report the next
     * line as a statement of its own.
     */
    if (w->p[w->n - 1] == '\\') {
      for (k = p->pos; k < p->len; k++)
        if (p->text[k] != ' ' && p->text[k] != '\t'
            && !lb_config_eol_cr (p, k))
          break;
      if (k == p->len || p->text[k] == '\n' || p->text[k] == '#') {
        char shown[128];
        return lb_config_fail (p, w->line, "%s: a backslash continues a "
                               "line only as its last character, but blanks "
                               "or a comment follow it",
                               lb_config_show (w->p, w->n, shown,
                                               sizeof shown));
      }
    }
    return 1;
  }
  return 0;
}

static bool
lb_config_word_is (const char *s, size_t n, const char *lit)
{
  return strlen (lit) == n && memcmp (s, lit, n) == 0;
}

/* Check listen address L, from the word in VAL, against the addresses
 * of every earlier statement, and record that a client (or, if
 * IS_EXPORT, an export) on line LINE uses it.  Distinct addresses are
 * few however many clients share them, so a pass over them is cheap.
 */
static int
lb_config_use_listen (struct lb_config_parser *p, const struct lb_listen *l,
                      bool is_export, int line,
                      const struct lb_config_val *val)
{
  struct lb_config_addr *a = NULL;
  char shown[128];
  size_t i;

  lb_config_show (val->word.p, val->word.n, shown, sizeof shown);
  for (i = 0; i < p->naddrs; i++) {
    struct lb_config_addr *b = &p->addrs[i];
    if (lb_listen_equal (l, &b->listen)) {
      if (b->export_line)
        return lb_config_fail (p, val->word.line, "%s: already the address "
                               "of the export on line %d", shown,
                               b->export_line);
      if (is_export)
        return lb_config_fail (p, val->word.line, "%s: already the address "
                               "of the client on line %d; an export needs an "
                               "address of its own", shown, b->client_line);
      a = b;
      break;
    }
    if (lb_listen_overlap (l, &b->listen))
      return lb_config_fail (p, val->word.line, "%s: overlaps listen=%s of "
                             "the %s on line %d (the two cannot both be "
                             "bound%s)", shown, b->listen.text,
                             b->export_line ? "export" : "client", b->line,
                             b->export_line || is_export
                             ? "" : "; give both the same address");
  }
  if (a == NULL) {
    if (lb_array_grow (&p->addrs, &p->acap, p->naddrs + 1,
                       sizeof *p->addrs) == -1)
      return lb_config_fail (p, line, "out of memory");
    a = &p->addrs[p->naddrs++];
    memset (a, 0, sizeof *a);
    a->listen = *l;
    a->line = line;
  }
  if (is_export)
    a->export_line = line;
  else if (a->client_line == 0)
    a->client_line = line;
  return 0;
}

static int
lb_config_add_client (struct lb_config_parser *p, int line,
                      const struct lb_config_val *vals,
                      const struct lb_listen *l)
{
  struct lb_config *cfg = p->cfg;
  const struct lb_config_val *fv = &vals[LBK_FILE], *nv = &vals[LBK_NAME];
  struct lb_client_conf c = { .encrypt = true, .listen = *l, .line = line };
  char shown[128], shown2[128];
  uint64_t image_hash, name_hash;
  char *canon = NULL;
  size_t i, pos;

  if (lb_config_use_listen (p, l, false, line, &vals[LBK_LISTEN]) == -1)
    return -1;
  if (!nv->set && fv->vn > LB_CONFIG_NAME_MAX)
    return lb_config_fail (p, fv->word.line, "%s: longer than %d bytes, too "
                           "long to be the client's name as well; give it a "
                           "name=",
                           lb_config_show (fv->word.p, fv->word.n, shown,
                                           sizeof shown),
                           LB_CONFIG_NAME_MAX);
  if (vals[LBK_ENCRYPT].set)
    c.encrypt = vals[LBK_ENCRYPT].v[0] == 'y';
  c.file = lb_path_abs (p->dir, fv->v, fv->vn);
  c.key_path = lb_path_abs (p->dir, vals[LBK_KEY].v, vals[LBK_KEY].vn);
  c.name = nv->set ? strndup (nv->v, nv->vn) : strndup (fv->v, fv->vn);
  if (c.file)
    canon = lb_path_canon (c.file);
  if (!c.file || !c.key_path || !c.name || !canon)
    goto oom;

  image_hash = lb_index_hash (LB_INDEX_HASH_START, canon, strlen (canon));
  pos = 0;
  while (lb_index_next (&p->images, image_hash, &pos, &i))
    if (strcmp (p->canon[i], canon) == 0) {
      lb_config_fail (p, fv->word.line, "%s: the same image (%s) as the "
                      "client on line %d",
                      lb_config_show (fv->word.p, fv->word.n, shown,
                                      sizeof shown),
                      lb_config_show (canon, strlen (canon), shown2,
                                      sizeof shown2),
                      cfg->clients[i].line);
      goto fail;
    }
  name_hash = lb_index_hash (lb_listen_hash (LB_INDEX_HASH_START, l),
                             c.name, strlen (c.name));
  pos = 0;
  while (lb_index_next (&p->names, name_hash, &pos, &i))
    if (lb_listen_equal (l, &cfg->clients[i].listen)
        && strcmp (cfg->clients[i].name, c.name) == 0) {
      /* lbd tells clients on one address apart by name alone. */
      if (nv->set)
        lb_config_fail (p, nv->word.line, "%s: the client on line %d at "
                        "listen=%s has this name too",
                        lb_config_show (nv->word.p, nv->word.n, shown,
                                        sizeof shown),
                        cfg->clients[i].line, l->text);
      else
        lb_config_fail (p, line, "name %s (the default: the file= value) "
                        "is the name of the client on line %d at "
                        "listen=%s too; give this one a name=",
                        lb_config_show (c.name, strlen (c.name), shown,
                                        sizeof shown),
                        cfg->clients[i].line, l->text);
      goto fail;
    }

  /* Each element stands for a statement of at least a dozen bytes of
   * the text, so the arrays never outgrow the input.
   */
  if (lb_array_grow (&cfg->clients, &p->clcap, cfg->nclients + 1,
                     sizeof *cfg->clients) == -1
      || lb_array_grow (&p->canon, &p->ccap, cfg->nclients + 1,
                        sizeof *p->canon) == -1)
    goto oom;
  if (lb_index_add (&p->images, image_hash, cfg->nclients) == -1
      || lb_index_add (&p->names, name_hash, cfg->nclients) == -1)
    goto oom;
  p->canon[cfg->nclients] = canon;
  cfg->clients[cfg->nclients++] = c;
  return 0;

 oom:
  lb_config_fail (p, line, "out of memory");
 fail:
  free (c.file);
  free (c.key_path);
  free (c.name);
  free (canon);
  return -1;
}

static int
lb_config_add_export (struct lb_config_parser *p, int line,
                      const struct lb_config_val *vals,
                      const struct lb_listen *l)
{
  struct lb_config *cfg = p->cfg;
  struct lb_export_conf e = { .listen = *l, .tls = true, .line = line };

  if (vals[LBK_TLS].set)
    e.tls = vals[LBK_TLS].v[0] == 'p';
  if (!e.tls && !l->loopback)
    /* Without TLS the image would cross the network in clear, to anyone
     * who connects: only the local machine may be trusted with that.
     */
    return lb_config_fail (p, vals[LBK_TLS].word.line, "tls=off: allowed "
                           "only on a loopback address (127.0.0.0/8 or ::1), "
                           "not listen=%s", l->text);
  if (lb_config_use_listen (p, l, true, line, &vals[LBK_LISTEN]) == -1)
    return -1;
  if (lb_array_grow (&cfg->exports, &p->ecap, cfg->nexports + 1,
                     sizeof *cfg->exports) == -1)
    return lb_config_fail (p, line, "out of memory");
  cfg->exports[cfg->nexports++] = e;
  return 0;
}

/* Check one KEY=VALUE of a statement as it comes, so that its error
 * names its own line.  L receives a listen= value.
 */
static int
lb_config_value (struct lb_config_parser *p, enum lb_config_key k,
                 const struct lb_config_val *val, struct lb_listen *l)
{
  const char *v = val->v, *why;
  size_t n = val->vn;
  char shown[128];

  lb_config_show (val->word.p, val->word.n, shown, sizeof shown);
  switch (k) {
  case LBK_FILE:
  case LBK_KEY:
    if (n >= PATH_MAX)
      return lb_config_fail (p, val->word.line, "%s: path too long", shown);
    return 0;
  case LBK_LISTEN:
    why = lb_listen_parse (v, n, l);
    if (why)
      return lb_config_fail (p, val->word.line, "%s: %s", shown, why);
    return 0;
  case LBK_TYPE:
    if (!lb_config_word_is (v, n, "simple"))
      return lb_config_fail (p, val->word.line, "%s: unknown type (the only "
                             "type is simple)", shown);
    return 0;
  case LBK_NAME:
    if (n > LB_CONFIG_NAME_MAX)
      return lb_config_fail (p, val->word.line, "%s: longer than %d bytes",
                             shown, LB_CONFIG_NAME_MAX);
    return 0;
  case LBK_ENCRYPT:
    if (!lb_config_word_is (v, n, "yes") && !lb_config_word_is (v, n, "no"))
      return lb_config_fail (p, val->word.line, "%s: expected yes or no",
                             shown);
    return 0;
  case LBK_TLS:
    if (!lb_config_word_is (v, n, "psk") && !lb_config_word_is (v, n, "off"))
      return lb_config_fail (p, val->word.line, "%s: expected psk or off",
                             shown);
    return 0;
  case LBK_COUNT:
    break;
  }
  abort ();
}

/* Read one statement (possibly empty) and add it to the config. */
static int
lb_config_statement (struct lb_config_parser *p)
{
  struct lb_config_val vals[LBK_COUNT];
  struct lb_config_word kw, w;
  const struct lb_config_kind *kind = NULL;
  struct lb_listen l;
  char shown[128];
  size_t i;
  int r, kind_i = -1;

  r = lb_config_next_word (p, &kw);
  if (r <= 0)
    return r;
  for (i = 0; i < sizeof lb_config_kinds / sizeof *lb_config_kinds; i++)
    if (lb_config_word_is (kw.p, kw.n, lb_config_kinds[i].keyword))
      kind_i = i;
  if (kind_i < 0) {
    lb_config_show (kw.p, kw.n, shown, sizeof shown);
    return lb_config_fail (p, kw.line, "%s: unknown keyword (expected client "
                           "or export)%s", shown,
                           memchr (kw.p, '=', kw.n)
                           ? "; does the line before lack a continuation "
                           "backslash?" : "");
  }
  kind = &lb_config_kinds[kind_i];

  memset (vals, 0, sizeof vals);
  while ((r = lb_config_next_word (p, &w)) == 1) {
    const char *eq = memchr (w.p, '=', w.n);
    size_t kn = eq ? (size_t) (eq - w.p) : w.n;
    int k = -1;

    lb_config_show (w.p, w.n, shown, sizeof shown);
    for (i = 0; i < LBK_COUNT; i++)
      if (lb_config_word_is (w.p, kn, lb_config_key_names[i]))
        k = i;
    if (k < 0 || !(kind->allowed & LBK_BIT (k)))
      return lb_config_fail (p, w.line, "%s: unknown key for %s (expected "
                             "%s)", shown, kind->keyword, kind->known);
    if (eq == NULL)
      return lb_config_fail (p, w.line, "%s: no value (write %s=VALUE)",
                             shown, lb_config_key_names[k]);
    if (eq + 1 == w.p + w.n)
      return lb_config_fail (p, w.line, "%s: empty value", shown);
    if (vals[k].set)
      return lb_config_fail (p, w.line, "%s: duplicate key (%s= is already "
                             "given on line %d)", shown,
                             lb_config_key_names[k], vals[k].word.line);
    vals[k].set = true;
    vals[k].word = w;
    vals[k].v = eq + 1;
    vals[k].vn = w.p + w.n - (eq + 1);
    if (lb_config_value (p, k, &vals[k], &l) == -1)
      return -1;
  }
  if (r == -1)
    return -1;

  for (i = 0; i < LBK_COUNT; i++)
    if ((kind->required & LBK_BIT (i)) && !vals[i].set)
      return lb_config_fail (p, kw.line, "%s without %s= (required)",
                             kind->keyword, lb_config_key_names[i]);

  if (kind_i == LB_KIND_CLIENT)
    return lb_config_add_client (p, kw.line, vals, &l);
  return lb_config_add_export (p, kw.line, vals, &l);
}

void
lb_config_free (struct lb_config *cfg)
{
  size_t i;

  for (i = 0; i < cfg->nclients; i++) {
    free (cfg->clients[i].name);
    free (cfg->clients[i].file);
    free (cfg->clients[i].key_path);
  }
  free (cfg->clients);
  free (cfg->exports);
  free (cfg->path);
  free (cfg->dir);
  memset (cfg, 0, sizeof *cfg);
}

int
lb_config_parse (const char *text, size_t len, const char *path_for_messages,
                 const char *dir, struct lb_config *cfg, char *err,
                 size_t errlen)
{
  struct lb_config_parser p = {
    .text = text, .len = len, .line = 1,
    .path = path_for_messages ? path_for_messages : "(config)",
    .dir = dir, .cfg = cfg, .err = err, .errlen = errlen,
  };
  size_t i;
  int r = 0;

  assert (dir != NULL);
  memset (cfg, 0, sizeof *cfg);
  if (len > LB_CONFIG_MAX_SIZE) {
    if (err && errlen)
      snprintf (err, errlen, "%s: larger than %d bytes", p.path,
                LB_CONFIG_MAX_SIZE);
    return -1;
  }
  cfg->path = strdup (p.path);
  cfg->dir = strdup (dir);
  if (cfg->path == NULL || cfg->dir == NULL)
    r = lb_config_fail (&p, p.line, "out of memory");
  while (r == 0 && p.pos < p.len)
    r = lb_config_statement (&p);

  for (i = 0; i < cfg->nclients; i++)
    free (p.canon[i]);
  free (p.canon);
  lb_index_free (&p.images);
  lb_index_free (&p.names);
  free (p.addrs);
  if (r == -1) {
    lb_config_free (cfg);
    return -1;
  }
  return 0;
}

int
lb_config_load (const char *path, struct lb_config *cfg, char *err,
                size_t errlen)
{
  char *buf = NULL, *folder, *slash, *dir;
  size_t cap = 0, len = 0;
  struct stat st;
  int fd, r, e;

  memset (cfg, 0, sizeof *cfg);
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd == -1 || fstat (fd, &st) == -1)
    goto sys_fail;
  if (S_ISDIR (st.st_mode)) {
    errno = EISDIR;
    goto sys_fail;
  }
  /* Read to the end, not st_size bytes: a pipe or /dev/stdin has none. */
  for (;;) {
    ssize_t n;
    if (len == cap) {
      size_t ncap = cap ? cap * 2 : 65536;
      char *nb;
      if (cap > LB_CONFIG_MAX_SIZE) {
        if (err && errlen)
          snprintf (err, errlen, "%s: larger than %d bytes", path,
                    LB_CONFIG_MAX_SIZE);
        free (buf);
        close (fd);
        return -1;
      }
      nb = realloc (buf, ncap);
      if (nb == NULL)
        goto sys_fail;
      buf = nb;
      cap = ncap;
    }
    n = read (fd, buf + len, cap - len);
    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1)
      goto sys_fail;
    if (n == 0)
      break;
    len += n;
  }
  close (fd);
  fd = -1;

  /* The folder as named, made absolute and free of links: lbd may chdir
   * later, and a link to the config file itself does not move the
   * folder its paths are relative to.
   */
  folder = strdup (path);
  if (folder == NULL)
    goto sys_fail;
  slash = strrchr (folder, '/');
  if (slash == NULL)
    strcpy (folder, ".");
  else if (slash == folder)
    folder[1] = '\0';
  else
    *slash = '\0';
  dir = realpath (folder, NULL);
  e = errno;
  free (folder);
  if (dir == NULL) {
    errno = e;
    goto sys_fail;
  }
  r = lb_config_parse (buf, len, path, dir, cfg, err, errlen);
  free (dir);
  free (buf);
  return r;

 sys_fail:
  e = errno;
  if (err && errlen)
    snprintf (err, errlen, "%s: %s", path, strerror (e));
  free (buf);
  if (fd >= 0)
    close (fd);
  return -1;
}
