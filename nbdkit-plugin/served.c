/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: which file the plugin serves.  See served.h. */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>

#include <nbdkit-filter.h>

#include "served.h"

static char *served_path;       /* absolute, from the one file= */
static unsigned served_count;   /* file= parameters seen */
static struct {
  enum lw_served kind;
  uint64_t dev, ino, rdev, size;
} served;

int
served_config (const char *key, const char *value)
{
  if (strcmp (key, "file") != 0)
    return 0;
  served_count++;
  free (served_path);
  /* As the file plugin resolves it: nbdkit may chdir ("/") later. */
  served_path = nbdkit_absolute_path (value);
  return served_path ? 0 : -1;
}

void
served_get_ready (void)
{
  struct stat st;

  served.kind = LW_SERVED_UNKNOWN;
  if (served_count != 1 || served_path == NULL)
    return;
  if (stat (served_path, &st) == -1) {
    nbdkit_debug ("livewatch: file=%s: %m: served file unknown", served_path);
    return;
  }
  served.dev = st.st_dev;
  served.ino = st.st_ino;
  if (S_ISREG (st.st_mode)) {
    served.kind = LW_SERVED_FILE;
    served.size = st.st_size;
  }
  else if (S_ISBLK (st.st_mode)) {
    int fd = open (served_path, O_RDONLY | O_CLOEXEC);
    if (fd == -1 || ioctl (fd, BLKGETSIZE64, &served.size) == -1) {
      nbdkit_debug ("livewatch: file=%s: size: %m: served file unknown",
                    served_path);
      if (fd >= 0)
        close (fd);
      return;
    }
    close (fd);
    served.kind = LW_SERVED_BLOCK;
    served.rdev = st.st_rdev;
  }
}

void
served_publish (struct lw_header *h, uint64_t dev_size)
{
  h->served_kind = LW_SERVED_UNKNOWN;
  h->served_dev = h->served_ino = h->served_rdev = 0;
  h->served_path[0] = '\0';
  if (served.kind == LW_SERVED_UNKNOWN)
    return;
  /* Not what the export is: a plugin that reads file= its own way. */
  if (served.size != dev_size) {
    nbdkit_debug ("livewatch: file=%s is %" PRIu64 " bytes, the export %"
                  PRIu64 ": served file unknown", served_path, served.size,
                  dev_size);
    return;
  }
  h->served_kind = served.kind;
  h->served_dev = served.dev;
  h->served_ino = served.ino;
  h->served_rdev = served.rdev;
  snprintf (h->served_path, sizeof h->served_path, "%s", served_path);
}

void
served_unload (void)
{
  free (served_path);
  served_path = NULL;
}
