/* SPDX-License-Identifier: BSD-3-Clause */
/* The setting of the in-process tests of lw_follow.  See
 * follow-harness.h.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/mman.h>

#include <nbdkit-filter.h>

#include "channel.h"
#include "service.h"
#include "follow-harness.h"

int
fh_channel_up (char *dir, unsigned unit, uint64_t queue, uint32_t block,
               uint64_t dev_size, int *dev_fd, int *img_fd)
{
  struct channel_config cfg = { .unit = unit, .queue = queue,
                                .block = block };

  if (mkdtemp (dir) == NULL)
    return -1;
  cfg.dir = dir;
  *dev_fd = memfd_create ("dev", 0);
  *img_fd = memfd_create ("img", 0);
  if (*dev_fd == -1 || *img_fd == -1
      || ftruncate (*dev_fd, dev_size) == -1
      || ftruncate (*img_fd, dev_size) == -1)
    return -1;
  if (channel_create (&cfg) != 0 || channel_size (dev_size) != 0)
    return -1;
  channel_ready (NULL);
  return service_start () == 0 ? 0 : -1;
}

int
fh_copy (int from, int to, uint64_t off, uint64_t len)
{
  char *buf = malloc (len);
  int r = 0;

  if (buf == NULL || pread (from, buf, len, off) != (ssize_t) len
      || pwrite (to, buf, len, off) != (ssize_t) len)
    r = -1;
  free (buf);
  return r;
}

bool
fh_settled (struct lwc *c)
{
  uint64_t d, p;

  lwc_count_bits (c, &d, &p);
  return lwc_mode (c) == LW_MODE_NORMAL && d == 0 && p == 0
         && atomic_load (&channel_hdr->head_seq)
            == atomic_load (&channel_hdr->tail_seq);
}

void
fh_channel_down (struct lwc *c, const char *dir, unsigned unit)
{
  char path[512];

  lwc_detach (c);
  service_stop ();
  channel_close ();
  lw_shm_path (path, sizeof path, dir, unit);
  unlink (path);
  rmdir (dir);
}
