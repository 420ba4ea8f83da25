/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: clients.  See client.h. */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>

#include "client.h"
#include "image.h"
#include "lb_err.h"

int
client_line_load (struct client_line *ln, const struct lb_client_conf *cc,
                  const char *config, bool allow_open_key, char *err,
                  size_t errlen)
{
  char kerr[512];

  memset (ln, 0, sizeof *ln);
  ln->conf = *cc;
  ln->conf.name = strdup (cc->name);
  ln->conf.file = strdup (cc->file);
  ln->conf.key_path = strdup (cc->key_path);
  if (!ln->conf.name || !ln->conf.file || !ln->conf.key_path) {
    client_line_free (ln);
    lb_errf (err, errlen, "out of memory");
    return -1;
  }
  if (lb_key_load (cc->key_path, allow_open_key, &ln->key, kerr,
                   sizeof kerr) == -1) {
    client_line_free (ln);
    lb_errf (err, errlen, "%s:%d: key=%s", config, cc->line, kerr);
    return -1;
  }
  return 0;
}

void
client_line_free (struct client_line *ln)
{
  free (ln->conf.name);
  free (ln->conf.file);
  free (ln->conf.key_path);
  lb_key_wipe (&ln->key);
  memset (ln, 0, sizeof *ln);
}

/* Append ", WHAT" (or WHAT first) to OUT. */
static void
client_note (char *out, size_t len, const char *what)
{
  size_t n = strlen (out);

  snprintf (out + n, len - n, "%s%s", n ? ", " : "", what);
}

const char *
client_line_changes (const struct client *cl, const struct client_line *ln,
                     char *out, size_t len)
{
  const struct lb_client_conf *a = &cl->line.conf, *b = &ln->conf;

  out[0] = '\0';
  if (strcmp (a->name, b->name) != 0)
    client_note (out, len, "name");
  if (strcmp (a->key_path, b->key_path) != 0)
    client_note (out, len, "key file");
  /* Constant time is not needed (both are ours), but it costs nothing. */
  if (gnutls_memcmp (cl->line.key.psk, ln->key.psk, sizeof ln->key.psk) != 0)
    client_note (out, len, "key");
  if (!lb_listen_equal (&a->listen, &b->listen))
    client_note (out, len, "listen");
  if (a->encrypt != b->encrypt)
    client_note (out, len, "encrypt");
  if (a->max_rate != b->max_rate)
    client_note (out, len, "max-rate");
  if (memcmp (&a->history, &b->history, sizeof a->history) != 0)
    client_note (out, len, "history");
  if (a->verify_every != b->verify_every)
    client_note (out, len, "verify");
  return out;
}

struct client *
client_new (struct client_line *ln, bool exports)
{
  struct client *cl = calloc (1, sizeof *cl);
  struct image_state st;
  char *sp;

  if (cl == NULL)
    return NULL;
  /* The state file, for status until a session opens the image. */
  if (asprintf (&sp, "%s.state", ln->conf.file) == -1) {
    free (cl);
    return NULL;
  }
  if (image_state_load (sp, &st) == 0) {
    cl->phase = st.phase;
    cl->consistent = st.consistent;
    cl->last_consistent = st.last_consistent;
    cl->verified = st.verified;
    cl->epoch = st.epoch;
    cl->seq = st.seq;
    cl->size = st.size;
  }
  cl->phase_since = (uint64_t) time (NULL);
  free (sp);
  /* Snapshots live only as long as the lbd that took them. */
  snapset_remove_stale (ln->conf.file);
  if (snapset_init (&cl->snaps, ln->conf.file, cl->consistent, exports)
      == -1) {
    free (cl);
    return NULL;
  }
  /* Restore points outlive lbd: loaded from beside the image. */
  if (history_init (&cl->hist, ln->conf.file, &ln->conf.history) == -1) {
    snapset_destroy (&cl->snaps);
    free (cl);
    return NULL;
  }
  pthread_mutex_init (&cl->lock, NULL);
  pthread_cond_init (&cl->cond, NULL);
  cl->line = *ln;
  cl->conf = &cl->line.conf;
  memset (ln, 0, sizeof *ln);
  return cl;
}

void
client_update (struct client *cl, struct client_line *ln)
{
  client_line_free (&cl->line);
  cl->line = *ln;
  memset (ln, 0, sizeof *ln);
  history_set_policy (&cl->hist, &cl->line.conf.history);
}

void
client_free (struct client *cl)
{
  if (cl == NULL)
    return;
  history_destroy (&cl->hist);
  snapset_destroy (&cl->snaps);
  scancache_destroy (&cl->scan);
  client_line_free (&cl->line);
  pthread_mutex_destroy (&cl->lock);
  pthread_cond_destroy (&cl->cond);
  free (cl);
}
