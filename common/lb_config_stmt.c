/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: lbd.conf's statements.  See lb_config_stmt.h, and
 * lb_config.h for the grammar.
 *
 * A statement is read word by word.  Each KEY=VALUE is checked as it
 * comes, by its key's check function, so that its error names its own
 * line, and what it means is stored straight into the statement's
 * record (the struct lb_client_conf or lb_export_conf it becomes).
 * When the statement ends, the required keys are checked, then the
 * statement's add function applies the rules that involve several keys
 * (the default name, tls=off on loopback only) or several statements
 * (lb_config_whole.c) and keeps the record in the config.
 *
 * Server-wide settings (a line of KEY=VALUE words, no keyword) are a
 * statement too, whose record is the config's struct lb_server_conf
 * itself and whose values are kept across lines, so that a key given
 * twice anywhere is a duplicate.
 *
 * To add a key to a statement (or a setting):
 *   1. a member for its value in the record (lb_config.h), and its
 *      default in the statement's init function unless that is zero;
 *   2. a check function, unless one below fits: it parses the value
 *      into the member, or says why it cannot;
 *   3. one line in the statement's key table, e.g.
 *        { "max-rate", false, lb_config_stmt_rate,
 *          LB_CONFIG_CLIENT (max_rate) },
 * The messages that list a statement's keys are made from the table,
 * in its order; lb_config.h and lbd.conf(5) describe the keys.
 */

#include <config.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb_array.h"
#include "lb_config_stmt.h"
#include "lb_listen.h"
#include "lb_path.h"
#include "lb_rate.h"
#include "lb_time.h"

/* What a key's check made of its value. */
enum lb_config_verdict {
  LB_CONFIG_GOOD,               /* stored in the record */
  LB_CONFIG_BAD,                /* wrong: WHY says why, to follow
                                   "KEY=VALUE: " in the message */
  LB_CONFIG_NOMEM,              /* out of memory */
};

/* Check the N bytes of value at V (not NUL-terminated, never empty) and
 * store what they mean at FIELD, the key's member of the record (NULL
 * for a key that has none).  DIR is the config file's folder.  A check
 * that allocates leaves the pointer at FIELD for the statement's
 * discard function to free.
 */
typedef enum lb_config_verdict lb_config_check_fn (const char *v, size_t n,
                                                   const char *dir,
                                                   void *field, char *why,
                                                   size_t whylen);

struct lb_config_key {
  const char *name;
  bool required;
  lb_config_check_fn *check;
  size_t field;                 /* the member's offset in the record */
};

#define LB_CONFIG_NO_FIELD SIZE_MAX
#define LB_CONFIG_CLIENT(member) offsetof (struct lb_client_conf, member)
#define LB_CONFIG_EXPORT(member) offsetof (struct lb_export_conf, member)
#define LB_CONFIG_SERVER(member) offsetof (struct lb_server_conf, member)

union lb_config_record {
  struct lb_client_conf client;
  struct lb_export_conf export;
};

struct lb_config_kind;

/* A statement as it is read. */
struct lb_config_stmt {
  const struct lb_config_kind *kind;
  int line;                     /* where it starts */
  const char *first;            /* its first word */
  struct lb_config_val vals[LB_CONFIG_KEYS_MAX];  /* as kind->keys */
  union lb_config_record rec;
};

struct lb_config_kind {
  const char *keyword;          /* for the settings: what messages say */
  const struct lb_config_key *keys;
  size_t nkeys;
  /* Give ST->rec its defaults. */
  void (*init) (struct lb_config_stmt *st);
  /* Apply the rules beyond single keys, then keep ST->rec in P->cfg:
   * 0; or -1 with the error made, ST->rec still to discard.
   */
  int (*add) (struct lb_config_parser *p, struct lb_config_stmt *st);
  /* Free what the checks allocated in ST->rec. */
  void (*discard) (struct lb_config_stmt *st);
  /* True for the settings: the checks store into P->cfg->server, and
   * the values are P->settings, not ST's own.
   */
  bool settings;
};

/* --- the checks of single values ------------------------------------- */

static enum lb_config_verdict
lb_config_stmt_path (const char *v, size_t n, const char *dir, void *field,
                     char *why, size_t whylen)
{
  char **path = field;

  if (n >= PATH_MAX) {
    lb_errf (why, whylen, "path too long");
    return LB_CONFIG_BAD;
  }
  *path = lb_path_abs (dir, v, n);
  return *path ? LB_CONFIG_GOOD : LB_CONFIG_NOMEM;
}

/* A path that names a file (not a folder), to write. */
static enum lb_config_verdict
lb_config_stmt_file (const char *v, size_t n, const char *dir, void *field,
                     char *why, size_t whylen)
{
  if (v[n - 1] == '/') {
    lb_errf (why, whylen, "names a folder; give a file's name");
    return LB_CONFIG_BAD;
  }
  return lb_config_stmt_path (v, n, dir, field, why, whylen);
}

static enum lb_config_verdict
lb_config_stmt_listen (const char *v, size_t n, const char *dir, void *field,
                       char *why, size_t whylen)
{
  const char *reason = lb_listen_parse (v, n, field);

  if (reason == NULL)
    return LB_CONFIG_GOOD;
  lb_errf (why, whylen, "%s", reason);
  return LB_CONFIG_BAD;
}

static enum lb_config_verdict
lb_config_stmt_type (const char *v, size_t n, const char *dir, void *field,
                     char *why, size_t whylen)
{
  if (lb_config_lex_is (v, n, "simple"))
    return LB_CONFIG_GOOD;
  lb_errf (why, whylen, "unknown type (the only type is simple)");
  return LB_CONFIG_BAD;
}

static enum lb_config_verdict
lb_config_stmt_name (const char *v, size_t n, const char *dir, void *field,
                     char *why, size_t whylen)
{
  char **name = field;

  if (n > LB_CONFIG_NAME_MAX) {
    lb_errf (why, whylen, "longer than %d bytes", LB_CONFIG_NAME_MAX);
    return LB_CONFIG_BAD;
  }
  *name = strndup (v, n);
  return *name ? LB_CONFIG_GOOD : LB_CONFIG_NOMEM;
}

/* A value that is one of two words: true for YES, false for NO. */
static enum lb_config_verdict
lb_config_stmt_either (const char *v, size_t n, const char *yes,
                       const char *no, bool *b, char *why, size_t whylen)
{
  if (lb_config_lex_is (v, n, yes) || lb_config_lex_is (v, n, no)) {
    *b = lb_config_lex_is (v, n, yes);
    return LB_CONFIG_GOOD;
  }
  lb_errf (why, whylen, "expected %s or %s", yes, no);
  return LB_CONFIG_BAD;
}

static enum lb_config_verdict
lb_config_stmt_yes_no (const char *v, size_t n, const char *dir,
                       void *field, char *why, size_t whylen)
{
  return lb_config_stmt_either (v, n, "yes", "no", field, why, whylen);
}

static enum lb_config_verdict
lb_config_stmt_rate (const char *v, size_t n, const char *dir, void *field,
                     char *why, size_t whylen)
{
  if (lb_rate_parse (v, n, field) == 0)
    return LB_CONFIG_GOOD;
  lb_errf (why, whylen, "expected bytes a second, a number with an "
           "optional K, M or G (0: no limit)");
  return LB_CONFIG_BAD;
}

static enum lb_config_verdict
lb_config_stmt_duration (const char *v, size_t n, const char *dir,
                         void *field, char *why, size_t whylen)
{
  (void) dir;
  if (lb_duration_parse (v, n, field) == 0)
    return LB_CONFIG_GOOD;
  lb_errf (why, whylen, "expected a duration: seconds, or a number with "
           "m, h, d or w (0: none)");
  return LB_CONFIG_BAD;
}

static enum lb_config_verdict
lb_config_stmt_tls (const char *v, size_t n, const char *dir, void *field,
                    char *why, size_t whylen)
{
  return lb_config_stmt_either (v, n, "psk", "off", field, why, whylen);
}

static enum lb_config_verdict
lb_config_stmt_history (const char *v, size_t n, const char *dir,
                        void *field, char *why, size_t whylen)
{
  (void) dir;
  return lb_history_parse (v, n, field, why, whylen) == 0 ? LB_CONFIG_GOOD
                                                          : LB_CONFIG_BAD;
}

/* --- the statements and their keys ----------------------------------- */

static const struct lb_config_key lb_config_stmt_client_keys[] = {
  { "file", true, lb_config_stmt_path, LB_CONFIG_CLIENT (file) },
  { "key", true, lb_config_stmt_path, LB_CONFIG_CLIENT (key_path) },
  { "listen", true, lb_config_stmt_listen, LB_CONFIG_CLIENT (listen) },
  { "type", false, lb_config_stmt_type, LB_CONFIG_NO_FIELD },
  { "name", false, lb_config_stmt_name, LB_CONFIG_CLIENT (name) },
  { "encrypt", false, lb_config_stmt_yes_no, LB_CONFIG_CLIENT (encrypt) },
  { "max-rate", false, lb_config_stmt_rate, LB_CONFIG_CLIENT (max_rate) },
  { "history", false, lb_config_stmt_history, LB_CONFIG_CLIENT (history) },
  { "verify", false, lb_config_stmt_duration,
    LB_CONFIG_CLIENT (verify_every) },
};

static const struct lb_config_key lb_config_stmt_export_keys[] = {
  { "listen", true, lb_config_stmt_listen, LB_CONFIG_EXPORT (listen) },
  { "tls", false, lb_config_stmt_tls, LB_CONFIG_EXPORT (tls) },
};

static const struct lb_config_key lb_config_stmt_settings_keys[] = {
  { "metrics", false, lb_config_stmt_file, LB_CONFIG_SERVER (metrics) },
};

#define LB_CONFIG_NKEYS(keys) (sizeof (keys) / sizeof *(keys))
_Static_assert (LB_CONFIG_NKEYS (lb_config_stmt_client_keys)
                <= LB_CONFIG_KEYS_MAX, "too many client keys");
_Static_assert (LB_CONFIG_NKEYS (lb_config_stmt_export_keys)
                <= LB_CONFIG_KEYS_MAX, "too many export keys");
_Static_assert (LB_CONFIG_NKEYS (lb_config_stmt_settings_keys)
                <= LB_CONFIG_KEYS_MAX, "too many settings");

/* ST's value of the key NAME (which its statement has), set or not. */
static const struct lb_config_val *
lb_config_stmt_val (const struct lb_config_stmt *st, const char *name)
{
  size_t k;

  for (k = 0; k < st->kind->nkeys; k++)
    if (strcmp (st->kind->keys[k].name, name) == 0)
      return &st->vals[k];
  abort ();
}

/* Keep ST's record (ELEM bytes) as the last of the *N elements of the
 * array at *ARRAYP, with room for *CAP (as lb_array_grow).  Each
 * element stands for a statement of at least a dozen bytes of the text,
 * so no array outgrows the input.
 */
static int
lb_config_stmt_keep (struct lb_config_parser *p,
                     const struct lb_config_stmt *st, void *arrayp,
                     size_t *cap, size_t *n, size_t elem)
{
  void **array = arrayp;

  if (lb_array_grow (arrayp, cap, *n + 1, elem) == -1)
    return LB_CONFIG_FAIL (&p->lex, st->line, "out of memory");
  memcpy ((char *) *array + *n * elem, &st->rec, elem);
  (*n)++;
  return 0;
}

static void
lb_config_stmt_client_init (struct lb_config_stmt *st)
{
  st->rec.client = (struct lb_client_conf) {
    .encrypt = true, .line = st->line,
  };
}

void
lb_config_stmt_free_client (struct lb_client_conf *c)
{
  free (c->name);
  free (c->file);
  free (c->key_path);
}

static void
lb_config_stmt_client_discard (struct lb_config_stmt *st)
{
  lb_config_stmt_free_client (&st->rec.client);
}

static int
lb_config_stmt_client_add (struct lb_config_parser *p,
                           struct lb_config_stmt *st)
{
  const struct lb_config_val *fv = lb_config_stmt_val (st, "file");
  const struct lb_config_val *nv = lb_config_stmt_val (st, "name");
  struct lb_client_conf *c = &st->rec.client;
  struct lb_config *cfg = p->cfg;
  char shown[LB_CONFIG_SHOWN];

  if (lb_config_whole_listen (&p->whole, &p->lex, &c->listen,
                              LB_CONFIG_WHOLE_CLIENT, st->line,
                              &lb_config_stmt_val (st, "listen")->word) == -1)
    return -1;
  if (!nv->set) {
    if (fv->vn > LB_CONFIG_NAME_MAX)
      return LB_CONFIG_FAIL (&p->lex, fv->word.line, "%s: longer than %d "
                             "bytes, too long to be the client's name as "
                             "well; give it a name=",
                             lb_config_lex_show (fv->word.p, fv->word.n,
                                                 shown),
                             LB_CONFIG_NAME_MAX);
    c->name = strndup (fv->v, fv->vn);
    if (c->name == NULL)
      return LB_CONFIG_FAIL (&p->lex, st->line, "out of memory");
  }
  if (lb_config_whole_client (&p->whole, &p->lex, cfg, c, &fv->word,
                              nv->set ? &nv->word : NULL) == -1)
    return -1;
  return lb_config_stmt_keep (p, st, &cfg->clients, &p->clcap,
                              &cfg->nclients, sizeof *cfg->clients);
}

static void
lb_config_stmt_export_init (struct lb_config_stmt *st)
{
  st->rec.export = (struct lb_export_conf) {
    .tls = true, .line = st->line,
  };
}

static int
lb_config_stmt_export_add (struct lb_config_parser *p,
                           struct lb_config_stmt *st)
{
  struct lb_export_conf *e = &st->rec.export;
  struct lb_config *cfg = p->cfg;

  if (!e->tls && !e->listen.loopback)
    /* Without TLS the image would cross the network in clear, to anyone
     * who connects: only the local machine may be trusted with that.
     */
    return LB_CONFIG_FAIL (&p->lex, lb_config_stmt_val (st, "tls")->word.line,
                           "tls=off: allowed only on a loopback address "
                           "(127.0.0.0/8 or ::1), not listen=%s",
                           e->listen.text);
  if (lb_config_whole_listen (&p->whole, &p->lex, &e->listen,
                              LB_CONFIG_WHOLE_EXPORT, st->line,
                              &lb_config_stmt_val (st, "listen")->word) == -1)
    return -1;
  return lb_config_stmt_keep (p, st, &cfg->exports, &p->ecap,
                              &cfg->nexports, sizeof *cfg->exports);
}

static const struct lb_config_kind lb_config_stmt_kinds[] = {
  {
    "client",
    lb_config_stmt_client_keys, LB_CONFIG_NKEYS (lb_config_stmt_client_keys),
    lb_config_stmt_client_init, lb_config_stmt_client_add,
    lb_config_stmt_client_discard, false,
  },
  {
    "export",
    lb_config_stmt_export_keys, LB_CONFIG_NKEYS (lb_config_stmt_export_keys),
    lb_config_stmt_export_init, lb_config_stmt_export_add, NULL, false,
  },
};

#define LB_CONFIG_NKINDS LB_CONFIG_NKEYS (lb_config_stmt_kinds)

static void
lb_config_stmt_settings_init (struct lb_config_stmt *st)
{
  (void) st;
}

/* Each check stored its value into P->cfg->server; the lines, for
 * lbd's messages at run time, are kept here.
 */
static int
lb_config_stmt_settings_add (struct lb_config_parser *p,
                             struct lb_config_stmt *st)
{
  (void) st;
  if (p->settings[0].set)       /* metrics= */
    p->cfg->server.metrics_line = p->settings[0].word.line;
  return 0;
}

static const struct lb_config_kind lb_config_stmt_settings = {
  "server-wide settings",
  lb_config_stmt_settings_keys,
  LB_CONFIG_NKEYS (lb_config_stmt_settings_keys),
  lb_config_stmt_settings_init, lb_config_stmt_settings_add, NULL, true,
};

/* ST's values, as its kind keeps them. */
static struct lb_config_val *
lb_config_stmt_vals (struct lb_config_parser *p, struct lb_config_stmt *st)
{
  return st->kind->settings ? p->settings : st->vals;
}

/* Is the key of the KN bytes at K one of a statement's?  (Then a line
 * that starts with it was likely meant to continue the one before.)
 */
static bool
lb_config_stmt_elsewhere (const char *k, size_t kn)
{
  size_t i, j;

  for (i = 0; i < LB_CONFIG_NKINDS; i++)
    for (j = 0; j < lb_config_stmt_kinds[i].nkeys; j++)
      if (lb_config_lex_is (k, kn, lb_config_stmt_kinds[i].keys[j].name))
        return true;
  return false;
}

/* --- reading a statement --------------------------------------------- */

/* Add NAME, item I of N, to the list "A, B or C" in OUT (OUTLEN bytes,
 * starting as ""), for messages.
 */
static void
lb_config_stmt_list (char *out, size_t outlen, size_t i, size_t n,
                     const char *name)
{
  size_t o = strlen (out);

  snprintf (out + o, outlen - o, "%s%s",
            i == 0 ? "" : i + 1 < n ? ", " : " or ", name);
}

/* Read the KEY=VALUE word W into ST. */
static int
lb_config_stmt_key (struct lb_config_parser *p, struct lb_config_stmt *st,
                    const struct lb_config_word *w)
{
  const struct lb_config_kind *kind = st->kind;
  const char *eq = memchr (w->p, '=', w->n);
  const size_t kn = eq ? (size_t) (eq - w->p) : w->n;
  char shown[LB_CONFIG_SHOWN], why[128] = "", known[256] = "";
  const struct lb_config_key *key;
  struct lb_config_val *val;
  void *field;
  size_t k;

  lb_config_lex_show (w->p, w->n, shown);
  for (k = 0; k < kind->nkeys; k++)
    if (lb_config_lex_is (w->p, kn, kind->keys[k].name))
      break;
  if (k == kind->nkeys) {
    for (k = 0; k < kind->nkeys; k++)
      lb_config_stmt_list (known, sizeof known, k, kind->nkeys,
                           kind->keys[k].name);
    return LB_CONFIG_FAIL (&p->lex, w->line, "%s: unknown key for %s "
                           "(expected %s)%s", shown, kind->keyword, known,
                           kind->settings && w->p == st->first
                           && lb_config_stmt_elsewhere (w->p, kn)
                           ? "; does the line before lack a continuation "
                           "backslash?" : "");
  }
  key = &kind->keys[k];
  val = &lb_config_stmt_vals (p, st)[k];
  if (eq == NULL)
    return LB_CONFIG_FAIL (&p->lex, w->line, "%s: no value (write "
                           "%s=VALUE)", shown, key->name);
  if (eq + 1 == w->p + w->n)
    return LB_CONFIG_FAIL (&p->lex, w->line, "%s: empty value", shown);
  if (val->set)
    return LB_CONFIG_FAIL (&p->lex, w->line, "%s: duplicate key (%s= is "
                           "already given on line %d)", shown, key->name,
                           val->word.line);
  *val = (struct lb_config_val) {
    .set = true, .word = *w, .v = eq + 1, .vn = w->p + w->n - (eq + 1),
  };
  field = key->field == LB_CONFIG_NO_FIELD ? NULL
    : (kind->settings ? (char *) &p->cfg->server : (char *) &st->rec)
      + key->field;
  switch (key->check (val->v, val->vn, p->dir, field, why, sizeof why)) {
  case LB_CONFIG_GOOD:
    return 0;
  case LB_CONFIG_BAD:
    return LB_CONFIG_FAIL (&p->lex, w->line, "%s: %s", shown, why);
  case LB_CONFIG_NOMEM:
    return LB_CONFIG_FAIL (&p->lex, st->line, "out of memory");
  }
  abort ();
}

/* Read the rest of ST's words, then check that the required keys came. */
static int
lb_config_stmt_keys (struct lb_config_parser *p, struct lb_config_stmt *st)
{
  const struct lb_config_kind *kind = st->kind;
  const struct lb_config_val *vals = lb_config_stmt_vals (p, st);
  enum lb_config_lex_token t;
  struct lb_config_word w;
  size_t k;

  while ((t = lb_config_lex_next (&p->lex, &w)) == LB_CONFIG_LEX_WORD)
    if (lb_config_stmt_key (p, st, &w) == -1)
      return -1;
  if (t == LB_CONFIG_LEX_ERROR)
    return -1;
  for (k = 0; k < kind->nkeys; k++)
    if (kind->keys[k].required && !vals[k].set)
      return LB_CONFIG_FAIL (&p->lex, st->line, "%s without %s= "
                             "(required)", kind->keyword,
                             kind->keys[k].name);
  return 0;
}

int
lb_config_stmt_read (struct lb_config_parser *p)
{
  struct lb_config_stmt st;
  struct lb_config_word kw;
  enum lb_config_lex_token t = lb_config_lex_next (&p->lex, &kw);
  char shown[LB_CONFIG_SHOWN], known[256] = "";
  size_t i;
  int r;

  if (t != LB_CONFIG_LEX_WORD)
    return t == LB_CONFIG_LEX_ERROR ? -1 : 0;
  memset (&st, 0, sizeof st);
  st.line = kw.line;
  st.first = kw.p;
  if (memchr (kw.p, '=', kw.n)) {
    /* No keyword: settings, the first word already one of them. */
    st.kind = &lb_config_stmt_settings;
    st.kind->init (&st);
    r = lb_config_stmt_key (p, &st, &kw);
    if (r == 0)
      r = lb_config_stmt_keys (p, &st);
    if (r == 0)
      r = st.kind->add (p, &st);
    return r;
  }
  for (i = 0; i < LB_CONFIG_NKINDS; i++)
    if (lb_config_lex_is (kw.p, kw.n, lb_config_stmt_kinds[i].keyword))
      st.kind = &lb_config_stmt_kinds[i];
  if (st.kind == NULL) {
    for (i = 0; i < LB_CONFIG_NKINDS; i++)
      lb_config_stmt_list (known, sizeof known, i, LB_CONFIG_NKINDS,
                           lb_config_stmt_kinds[i].keyword);
    return LB_CONFIG_FAIL (&p->lex, kw.line, "%s: unknown keyword (expected "
                           "%s)", lb_config_lex_show (kw.p, kw.n, shown),
                           known);
  }
  st.kind->init (&st);
  r = lb_config_stmt_keys (p, &st);
  if (r == 0)
    r = st.kind->add (p, &st);
  if (r == -1 && st.kind->discard)
    st.kind->discard (&st);
  return r;
}
