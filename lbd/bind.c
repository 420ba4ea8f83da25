/* SPDX-License-Identifier: BSD-3-Clause */
/* lbd: an image's binding to the one partition it backs up.  See
 * bind.h.
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <time.h>
#include <unistd.h>

#include "bind.h"
#include "lb_err.h"
#include "lb_log.h"
#include "lb_proto.h"
#include "lb_wire.h"

#define BIND_SUFFIX ".rebind"

/* IMAGE_PATH's permission file, or NULL (out of memory). */
static char *
bind_path (const char *image_path)
{
  char *p;
  return asprintf (&p, "%s" BIND_SUFFIX, image_path) == -1 ? NULL : p;
}

static bool
bind_allowed (const struct image *im)
{
  char *p = bind_path (im->path);
  bool r = p && access (p, F_OK) == 0;
  free (p);
  return r;
}

enum bind_verdict
bind_check (const struct image *im, uint64_t partition, uint64_t dev_size)
{
  bool other = im->st.partition != 0 && im->st.partition != partition;
  bool smaller = dev_size < im->size;

  if (!other && !smaller)
    return im->st.partition == 0 ? BIND_FIRST : BIND_SAME;
  if (bind_allowed (im))
    return BIND_REBIND;
  return other ? BIND_OTHER : BIND_SMALLER;
}

struct image_state
bind_state (const struct image *im, enum bind_verdict verdict,
            uint64_t partition)
{
  struct image_state st = im->st;

  if (verdict == BIND_REBIND)
    /* Another disk's, or a cut one: nothing in it can be continued. */
    st = (struct image_state) {
      .phase = LBP_PHASE_SCANNING, .gen = LBP_GEN_NONE,
      .last_consistent = im->st.last_consistent,
    };
  st.partition = partition;
  return st;
}

void
bind_refuse (struct lb_conn *conn, const struct image *im,
             enum bind_verdict verdict, const char *name, const char *peer,
             const struct lbp_msg *m)
{
  const uint64_t partition = m->partition, dev_size = m->dev_size;
  char log[LBP_MAX_TEXT], text[LBP_MAX_TEXT];

  if (verdict == BIND_OTHER) {
    lb_errf (log, sizeof log, "partition %016" PRIx64 " (%" PRIu64 " bytes) is "
             "not the one image %s is bound to (%016" PRIx64 ", %" PRIu64
             " bytes); the image is unchanged.  Another partition uses this "
             "client's key; if it is to replace the backed-up one, run lbd "
             "--rebind CONFIG %s", partition, dev_size, im->path,
             im->st.partition, im->size, name);
    lb_errf (text, sizeof text, "the image of client %s is bound to another "
             "partition (%016" PRIx64 "; this one is %016" PRIx64 "), and "
             "is unchanged.  Does another machine or unit use this key?  "
             "To back up this partition there instead, the operator runs "
             "lbd --rebind CONFIG %s on the server", name, im->st.partition,
             partition, name);
  }
  else {
    lb_errf (log, sizeof log, "partition %016" PRIx64 " is %" PRIu64 " bytes, "
             "smaller than image %s (%" PRIu64 " bytes), which is not "
             "truncated without the operator's lbd --rebind CONFIG %s",
             partition, dev_size, im->path, im->size, name);
    lb_errf (text, sizeof text, "this partition (%" PRIu64 " bytes) is smaller "
             "than client %s's image (%" PRIu64 " bytes): the image is not "
             "truncated unless the operator runs lbd --rebind CONFIG %s on "
             "the server", dev_size, name, im->size, name);
  }
  lb_err ("client %s (%s): refused: %s", name, peer, log);
  lbw_send_error (conn, verdict == BIND_OTHER ? LBP_ERR_PARTITION
                                              : LBP_ERR_SMALLER, text);
}

void
bind_done (const struct image *im)
{
  char *p = bind_path (im->path);
  if (p)
    unlink (p);
  free (p);
}

int
bind_allow (const char *image_path, char *err, size_t errlen)
{
  char *p = bind_path (image_path);
  FILE *fp;
  int fd;

  if (p == NULL) {
    lb_errf (err, errlen, "out of memory");
    return -1;
  }
  fd = open (p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd == -1 || (fp = fdopen (fd, "w")) == NULL) {
    lb_errf (err, errlen, "%s: %s", p, strerror (errno));
    if (fd >= 0)
      close (fd);
    free (p);
    return -1;
  }
  /* The content is for a human; lbd only asks whether the file exists. */
  fprintf (fp, "lbd --rebind at %lld: the next partition to connect "
           "binds %s\n", (long long) time (NULL), image_path);
  if (fclose (fp) != 0) {
    lb_errf (err, errlen, "%s: %s", p, strerror (errno));
    free (p);
    return -1;
  }
  free (p);
  return 0;
}
