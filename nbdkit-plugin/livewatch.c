/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch: an nbdkit filter that hands every write, in order, to a
 * consumer through shared memory, and falls back to a dirty bitmap when
 * the consumer is absent or behind.  It must sit nearest the plugin:
 * filters below it would change what reaches the device unseen.
 *
 * This file adapts nbdkit's callbacks; the ordering rules are in
 * capture.c, the shared memory in channel.c, the consumer's requests in
 * service.c.  Reads pass straight through and take no lock.
 */

#include <config.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>

#include <nbdkit-filter.h>

#include "lb_bytes.h"
#include "actlog.h"
#include "capture.h"
#include "channel.h"
#include "persist.h"
#include "served.h"
#include "service.h"
#include "statefile.h"

static struct channel_config livewatch_cfg = {
  .dir = NULL, .unit = UINT_MAX,
  .queue = LW_DEFAULT_QUEUE, .block = LW_DEFAULT_BLOCK,
};
static char *livewatch_dir;
static struct persist_config livewatch_state = {
  .path = NULL, .nslots = 1024, .region_size = 0,
};
static char *livewatch_state_path;

static void
livewatch_unload (void)
{
  free (livewatch_dir);
  free (livewatch_state_path);
  served_unload ();
}

static int
livewatch_config (nbdkit_next_config *next, nbdkit_backend *nxdata,
                  const char *key, const char *value)
{
  int64_t r;

  if (strcmp (key, "livewatch-unit") == 0) {
    unsigned u;
    if (nbdkit_parse_unsigned ("livewatch-unit", value, &u) == -1)
      return -1;
    if (u > LW_MAX_UNIT) {
      nbdkit_error ("livewatch-unit=%s: must be at most %u", value,
                    LW_MAX_UNIT);
      return -1;
    }
    livewatch_cfg.unit = u;
    return 0;
  }
  if (strcmp (key, "livewatch-queue") == 0) {
    r = nbdkit_parse_size (value);
    if (r == -1)
      return -1;
    if (r < LW_MIN_QUEUE || (uint64_t) r > LW_MAX_QUEUE) {
      nbdkit_error ("livewatch-queue=%s: must be between 64K and 4G", value);
      return -1;
    }
    livewatch_cfg.queue = r;
    return 0;
  }
  if (strcmp (key, "livewatch-block") == 0) {
    r = nbdkit_parse_size (value);
    if (r == -1)
      return -1;
    if (r < LW_MIN_BLOCK || r > LW_MAX_BLOCK || !lb_is_pow2 (r)) {
      nbdkit_error ("livewatch-block=%s: must be a power of 2 "
                    "between 512 and 16M", value);
      return -1;
    }
    livewatch_cfg.block = r;
    return 0;
  }
  if (strcmp (key, "livewatch-state") == 0) {
    free (livewatch_state_path);
    livewatch_state_path = nbdkit_absolute_path (value);
    if (livewatch_state_path == NULL)
      return -1;
    return 0;
  }
  if (strcmp (key, "livewatch-al-regions") == 0) {
    unsigned n;
    if (nbdkit_parse_unsigned ("livewatch-al-regions", value, &n) == -1)
      return -1;
    if (n < SF_MIN_SLOTS || n > SF_MAX_SLOTS) {
      nbdkit_error ("livewatch-al-regions=%s: must be from %u to %u", value,
                    SF_MIN_SLOTS, SF_MAX_SLOTS);
      return -1;
    }
    livewatch_state.nslots = n;
    return 0;
  }
  if (strcmp (key, "livewatch-al-region") == 0) {
    r = nbdkit_parse_size (value);
    if (r == -1)
      return -1;
    if (r < LW_MIN_BLOCK || (uint64_t) r > SF_MAX_REGION || !lb_is_pow2 (r)) {
      nbdkit_error ("livewatch-al-region=%s: must be a power of 2 "
                    "between 512 and 1G", value);
      return -1;
    }
    livewatch_state.region_size = r;
    return 0;
  }
  if (strcmp (key, "livewatch-dir") == 0) {
    free (livewatch_dir);
    /* nbdkit may chdir ("/") when it daemonizes. */
    livewatch_dir = nbdkit_absolute_path (value);
    if (livewatch_dir == NULL)
      return -1;
    return 0;
  }
  /* The plugin's: which file it serves, for the consumer (served.h). */
  if (served_config (key, value) == -1)
    return -1;
  return next (nxdata, key, value);
}

static int
livewatch_config_complete (nbdkit_next_config_complete *next,
                           nbdkit_backend *nxdata)
{
  if (livewatch_cfg.unit == UINT_MAX) {
    nbdkit_error ("livewatch: the livewatch-unit=N parameter is required");
    return -1;
  }
  livewatch_cfg.dir = livewatch_dir ? livewatch_dir : LW_DEFAULT_DIR;
  livewatch_state.path = livewatch_state_path;
  if (livewatch_state.region_size == 0)
    livewatch_state.region_size = livewatch_cfg.block > (4u << 20)
                                  ? livewatch_cfg.block : 4u << 20;
  if (livewatch_state.region_size < livewatch_cfg.block) {
    nbdkit_error ("livewatch-al-region=%" PRIu64 ": must be at least "
                  "livewatch-block (%" PRIu32 ")",
                  livewatch_state.region_size, livewatch_cfg.block);
    return -1;
  }
  return next (nxdata);
}

#define livewatch_config_help \
  "livewatch-unit=<N>         (required) Channel number: DIR/livewatch-N.\n" \
  "livewatch-queue=<SIZE>     Bytes of queued writes (default 16M).\n" \
  "livewatch-block=<SIZE>     Bytes per dirty-bitmap bit (default 64K).\n" \
  "livewatch-dir=<DIR>        Folder of the channel (default /dev/shm).\n" \
  "livewatch-state=<FILE>     Keep the capture across restarts and crashes\n" \
  "                           (stable storage, not tmpfs): no full scan.\n" \
  "livewatch-al-regions=<N>   Activity-log slots (default 1024).\n" \
  "livewatch-al-region=<SIZE> Bytes per activity-log region (default 4M)."

/* The last callback whose errors reach the user's terminal: check here
 * that the channel can be made, so that a bad folder or a busy unit
 * stops nbdkit at once.  The file itself is made after the fork, when
 * nbdkit runs as its final user (-u), who must own it.
 */
static void
livewatch_state_warn (const char *msg)
{
  nbdkit_error ("livewatch: warning: %s", msg);
}

static int
livewatch_get_ready (int thread_model)
{
  char err[512];

  if (livewatch_state.path
      && statefile_preflight (livewatch_state.path, livewatch_state_warn,
                              err, sizeof err) == -1) {
    nbdkit_error ("livewatch-state=%s", err);
    return -1;
  }
  /* The journal thread flushes the device from a context of its own,
   * beside the clients' requests: nbdkit serializes only the latter.
   */
  if (livewatch_state.path && thread_model != NBDKIT_THREAD_MODEL_PARALLEL) {
    nbdkit_error ("livewatch-state= needs a plugin that takes requests in "
                  "parallel (the file plugin does)");
    return -1;
  }
  served_get_ready ();
  return channel_preflight (&livewatch_cfg);
}

/* With a state file: a context of our own into the plugin, from
 * after_fork to cleanup, for the journal thread's flushes of the device
 * (nbdkit-filter(3): background contexts).
 */
static nbdkit_next *livewatch_bg;

static int
livewatch_bg_flush (void)
{
  int err = 0;
  return livewatch_bg->flush (livewatch_bg, 0, &err);
}

static int
livewatch_bg_open (nbdkit_backend *backend)
{
  livewatch_bg = nbdkit_next_context_open (backend, 0, "", 0);
  if (livewatch_bg == NULL || livewatch_bg->prepare (livewatch_bg) == -1) {
    nbdkit_error ("livewatch: cannot open the plugin for the state file's "
                  "flushes");
    if (livewatch_bg)
      nbdkit_next_context_close (livewatch_bg);
    livewatch_bg = NULL;
    return -1;
  }
  switch (livewatch_bg->can_flush (livewatch_bg)) {
  case -1:
    return -1;
  case 0:
    /* Nothing to flush: a write is durable once it completes. */
    livewatch_state.flush_device = NULL;
    break;
  default:
    livewatch_state.flush_device = livewatch_bg_flush;
  }
  return 0;
}

static void
livewatch_bg_close (void)
{
  if (livewatch_bg) {
    livewatch_bg->finalize (livewatch_bg);
    nbdkit_next_context_close (livewatch_bg);
    livewatch_bg = NULL;
  }
}

/* After the fork: learn the export size through a private context (no
 * client need be connected), create and size the channel, load the state
 * file (if any) into it, publish it, start the threads.
 */
static int
livewatch_after_fork (nbdkit_backend *backend)
{
  nbdkit_next *next;
  int64_t size;

  next = nbdkit_next_context_open (backend, 1, "", 1);
  if (next == NULL) {
    nbdkit_error ("livewatch: cannot open the plugin to learn its size");
    return -1;
  }
  if (next->prepare (next) == -1) {
    nbdkit_next_context_close (next);
    return -1;
  }
  size = next->get_size (next);
  next->finalize (next);
  nbdkit_next_context_close (next);
  if (size == -1)
    return -1;
  if (channel_create (&livewatch_cfg) == -1 || channel_size (size) == -1)
    return -1;
  served_publish (channel_hdr, size);
  if (livewatch_state.path) {
    struct channel_origin o;
    if (livewatch_bg_open (backend) == -1
        || persist_open (&livewatch_state, &o) == -1)
      return -1;
    channel_ready (&o);
  }
  else
    channel_ready (NULL);
  if (service_start () == -1)
    return -1;
  return actlog_start ();
}

/* nbdkit calls this once every connection is gone (no write in flight);
 * a killed nbdkit does not, and the state file then says "unclean".
 */
static void
livewatch_cleanup (nbdkit_backend *backend)
{
  (void) backend;
  service_stop ();
  persist_close ();
  livewatch_bg_close ();
  channel_close ();
}

/* Per connection: whether trims can be made into zeroes (see
 * livewatch_trim), and a check that the export did not change size.
 */
struct livewatch_handle {
  bool zero_native;
};

static void *
livewatch_open (nbdkit_next_open *next, nbdkit_context *nxdata,
                int readonly, const char *exportname, int is_tls)
{
  struct livewatch_handle *h;

  if (next (nxdata, readonly, exportname) == -1)
    return NULL;
  h = calloc (1, sizeof *h);
  if (h == NULL)
    nbdkit_error ("calloc: %m");
  return h;
}

static void
livewatch_close (void *handle)
{
  free (handle);
}

static int
livewatch_prepare (nbdkit_next *next, void *handle, int readonly)
{
  struct livewatch_handle *h = handle;
  int64_t size = next->get_size (next);

  if (size == -1)
    return -1;
  if ((uint64_t) size != channel_hdr->dev_size) {
    nbdkit_error ("livewatch: export size changed from %" PRIu64
                  " to %" PRIi64 " bytes since nbdkit started; restart "
                  "nbdkit to follow it", channel_hdr->dev_size, size);
    return -1;
  }
  h->zero_native = !readonly && next->can_zero (next) == NBDKIT_ZERO_NATIVE;
  return 0;
}

static int
livewatch_op_pwrite (void *ctx, const void *buf, uint32_t count,
                     uint64_t offset, uint32_t flags, int *err)
{
  nbdkit_next *next = ctx;
  return next->pwrite (next, buf, count, offset, flags, err);
}

static int
livewatch_op_zero (void *ctx, const void *buf, uint32_t count,
                   uint64_t offset, uint32_t flags, int *err)
{
  nbdkit_next *next = ctx;
  return next->zero (next, count, offset, flags, err);
}

static int
livewatch_op_trim (void *ctx, const void *buf, uint32_t count,
                   uint64_t offset, uint32_t flags, int *err)
{
  nbdkit_next *next = ctx;
  return next->trim (next, count, offset, flags, err);
}

static int
livewatch_pwrite (nbdkit_next *next, void *handle, const void *buf,
                  uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  return capture_write (next, livewatch_op_pwrite, LW_REC_WRITE,
                                 buf, count, offset, flags, err);
}

static int
livewatch_zero (nbdkit_next *next, void *handle, uint32_t count,
                uint64_t offset, uint32_t flags, int *err)
{
  return capture_write (next, livewatch_op_zero, LW_REC_ZERO,
                                 NULL, count, offset, flags, err);
}

/* A trim leaves the region reading whatever the device then reads.  So
 * that the backup can read the same, a trim is carried out as a zero
 * that may punch holes when the plugin zeroes natively (as the file
 * plugin does: same cost, defined result).  Otherwise it passes as a
 * trim, and the TRIM record tells the consumer to copy the region from
 * the device (see doc/capture.md).
 */
static int
livewatch_trim (nbdkit_next *next, void *handle, uint32_t count,
                uint64_t offset, uint32_t flags, int *err)
{
  struct livewatch_handle *h = handle;

  if (h->zero_native)
    return capture_write (next, livewatch_op_zero, LW_REC_ZERO,
                                   NULL, count, offset,
                                   (flags & NBDKIT_FLAG_FUA)
                                   | NBDKIT_FLAG_MAY_TRIM, err);
  return capture_write (next, livewatch_op_trim, LW_REC_TRIM,
                                 NULL, count, offset, flags, err);
}

static int
livewatch_op_flush (void *ctx, const void *buf, uint32_t count,
                    uint64_t offset, uint32_t flags, int *err)
{
  nbdkit_next *next = ctx;
  return next->flush (next, flags, err);
}

static int
livewatch_flush (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  return capture_flush (next, livewatch_op_flush, flags, err);
}

static struct nbdkit_filter filter = {
  .name              = "livewatch",
  .longname          = "nbdkit livewatch filter (livebackup capture)",
  .unload            = livewatch_unload,
  .config            = livewatch_config,
  .config_complete   = livewatch_config_complete,
  .config_help       = livewatch_config_help,
  .get_ready         = livewatch_get_ready,
  .after_fork        = livewatch_after_fork,
  .cleanup           = livewatch_cleanup,
  .open              = livewatch_open,
  .close             = livewatch_close,
  .prepare           = livewatch_prepare,
  .pwrite            = livewatch_pwrite,
  .zero              = livewatch_zero,
  .trim              = livewatch_trim,
  .flush             = livewatch_flush,
};

NBDKIT_REGISTER_FILTER (filter)
