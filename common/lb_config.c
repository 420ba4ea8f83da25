/* SPDX-License-Identifier: BSD-3-Clause */
/* livebackup: lbd's configuration file: reading it, and the parse as a
 * whole.  See lb_config.h for the grammar and the contract; the parts
 * are named there.
 *
 * The parser reads the text once, word by word, and never copies a line:
 * a statement's values are pointers into the text until the statement
 * ends and is checked.  So nothing it allocates is larger than the input
 * (plus the folder's name), whatever the input holds.
 */

#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "lb_config.h"
#include "lb_config_stmt.h"
#include "lb_err.h"

void
lb_config_free (struct lb_config *cfg)
{
  size_t i;

  for (i = 0; i < cfg->nclients; i++)
    lb_config_stmt_free_client (&cfg->clients[i]);
  free (cfg->clients);
  free (cfg->exports);
  free (cfg->server.metrics);
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
    .dir = dir, .cfg = cfg, .whole = LB_CONFIG_WHOLE_EMPTY,
  };
  const char *path = path_for_messages ? path_for_messages : "(config)";
  int r = 0;

  assert (dir != NULL);
  memset (cfg, 0, sizeof *cfg);
  if (len > LB_CONFIG_MAX_SIZE) {
    lb_errf (err, errlen, "%s: larger than %d bytes", path,
             LB_CONFIG_MAX_SIZE);
    return -1;
  }
  lb_config_lex_init (&p.lex, text, len, path, err, errlen);
  cfg->path = strdup (path);
  cfg->dir = strdup (dir);
  if (cfg->path == NULL || cfg->dir == NULL)
    r = LB_CONFIG_FAIL (&p.lex, p.lex.line, "out of memory");
  while (r == 0 && !lb_config_lex_done (&p.lex))
    r = lb_config_stmt_read (&p);

  lb_config_whole_free (&p.whole);
  if (r == -1) {
    lb_config_free (cfg);
    return -1;
  }
  return 0;
}

/* Read all of FD (the config file PATH) into *BUF, *LEN: 0, or -1 with
 * the error made.
 */
static int
lb_config_read (int fd, const char *path, char **buf, size_t *len,
                char *err, size_t errlen)
{
  size_t cap = 0;

  *buf = NULL;
  *len = 0;
  /* Read to the end, not st_size bytes: a pipe or /dev/stdin has none. */
  for (;;) {
    ssize_t n;
    if (*len == cap) {
      size_t ncap = cap ? cap * 2 : 65536;
      char *nb;
      if (cap > LB_CONFIG_MAX_SIZE) {
        lb_errf (err, errlen, "%s: larger than %d bytes", path,
                 LB_CONFIG_MAX_SIZE);
        return -1;
      }
      nb = realloc (*buf, ncap);
      if (nb == NULL)
        goto sys_fail;
      *buf = nb;
      cap = ncap;
    }
    n = read (fd, *buf + *len, cap - *len);
    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1)
      goto sys_fail;
    if (n == 0)
      return 0;
    *len += n;
  }

 sys_fail:
  lb_errf (err, errlen, "%s: %s", path, strerror (errno));
  return -1;
}

/* The folder of PATH as named, made absolute and free of links: lbd may
 * chdir later, and a link to the config file itself does not move the
 * folder its paths are relative to.  NULL with errno on failure.
 */
static char *
lb_config_folder (const char *path)
{
  char *folder = strdup (path), *slash, *dir;
  int e;

  if (folder == NULL)
    return NULL;
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
  errno = e;
  return dir;
}

int
lb_config_load (const char *path, struct lb_config *cfg, char *err,
                size_t errlen)
{
  char *buf = NULL, *dir;
  size_t len = 0;
  struct stat st;
  int fd, r;

  memset (cfg, 0, sizeof *cfg);
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd == -1 || fstat (fd, &st) == -1)
    goto sys_fail;
  if (S_ISDIR (st.st_mode)) {
    errno = EISDIR;
    goto sys_fail;
  }
  r = lb_config_read (fd, path, &buf, &len, err, errlen);
  close (fd);
  fd = -1;
  if (r == -1) {
    free (buf);
    return -1;
  }
  dir = lb_config_folder (path);
  if (dir == NULL)
    goto sys_fail;
  r = lb_config_parse (buf, len, path, dir, cfg, err, errlen);
  free (dir);
  free (buf);
  return r;

 sys_fail:
  lb_errf (err, errlen, "%s: %s", path, strerror (errno));
  free (buf);
  if (fd >= 0)
    close (fd);
  return -1;
}
