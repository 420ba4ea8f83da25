/* SPDX-License-Identifier: BSD-3-Clause */
/* livewatch filter: the state file, its I/O.  See statefile.h for the
 * contract, stateformat.h for the layout and the invariant.
 */

#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "lb_bytes.h"
#include "lb_err.h"
#include "lb_io.h"
#include "lw_shm.h"
#include "statefile.h"

struct statefile {
  int fd;
  char *path;
  struct stateformat_layout l;
  uint64_t epoch;
  uint64_t sb_gen;              /* the highest valid one seen */
  uint64_t next_tx;
  uint8_t page[SF_PAGE_SIZE];   /* scratch for one page or record */
};

/* --- the file -------------------------------------------------------- */

static void statefile_say (statefile_log_fn log, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

static void
statefile_say (statefile_log_fn log, const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  if (log == NULL)
    return;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  log (msg);
}

/* An OFD write lock on byte 0, held for the file's life: one nbdkit per
 * state file.
 */
static int
statefile_lock (int fd)
{
  struct flock fl = {
    .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1,
  };
  return fcntl (fd, F_OFD_SETLK, &fl);
}

/* The folder holding PATH, durably: after creating a file in it. */
static int
statefile_sync_dir (const char *path)
{
  char *copy = strdup (path);
  int fd, r = -1;

  if (copy == NULL)
    return -1;
  fd = open (dirname (copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    r = fsync (fd);
    close (fd);
  }
  free (copy);
  return r;
}

int
statefile_preflight (const char *path, statefile_log_fn log, char *err,
                     size_t errlen)
{
  char *copy = strdup (path);
  const char *dir;
  struct statfs fs;
  struct stat st;
  int fd, r = -1;

  if (copy == NULL) {
    lb_errf (err, errlen, "out of memory");
    return -1;
  }
  dir = dirname (copy);
  fd = open (path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    int e = statefile_lock (fd) == -1 ? errno : 0;
    close (fd);
    if (e == EAGAIN || e == EACCES) {
      lb_errf (err, errlen, "%s: in use by another nbdkit", path);
      goto out;
    }
  }
  else if (errno != ENOENT) {
    lb_errf (err, errlen, "%s: %s", path, strerror (errno));
    goto out;
  }
  else if (stat (dir, &st) == -1 || !S_ISDIR (st.st_mode)
           || access (dir, W_OK) == -1) {
    lb_errf (err, errlen, "%s: cannot create it in %s: %s", path, dir,
             errno ? strerror (errno) : "not a folder");
    goto out;
  }
  if (statfs (dir, &fs) == 0
      && (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC))
    statefile_say (log, "%s is on tmpfs: it does not survive a reboot; put "
                   "it on stable storage", path);
  r = 0;
 out:
  free (copy);
  return r;
}

/* Write record TX (no sync). */
static int
statefile_put_record (struct statefile *sf, uint64_t tx,
                      const struct stateformat_dyn *d,
                      const struct stateformat_update *u, size_t nu,
                      const uint64_t *table_after)
{
  const struct stateformat_layout *l = &sf->l;
  struct stateformat_rec r = {
    .epoch = sf->epoch, .tx = tx, .dyn = *d,
    .ctx_first = stateformat_ctx_first (l, tx), .nctx = l->ctx_per_rec,
    .nupd = (uint32_t) nu,
  };
  uint32_t k;

  assert (nu <= SF_REC_UPD);
  for (k = 0; k < r.nctx; k++)
    r.ctx[k] = table_after[(r.ctx_first + k) % l->g.nslots];
  if (nu > 0)
    memcpy (r.upd, u, sizeof *u * nu);
  stateformat_rec_encode (&r, sf->page);
  return lb_pwrite_all (sf->fd, sf->page, SF_REC_SIZE,
                        l->journal_off + (tx % l->journal_len) * SF_REC_SIZE);
}

/* Write map page P from MAP (no sync). */
static int
statefile_put_page (struct statefile *sf, const uint64_t *map, uint64_t p)
{
  assert (p < sf->l.map_pages);
  stateformat_page_encode (sf->epoch, p, map + p * SF_PAGE_WORDS, sf->page);
  return lb_pwrite_all (sf->fd, sf->page, SF_PAGE_SIZE,
                        sf->l.map_off + p * SF_PAGE_SIZE);
}

/* Start over in place: a new epoch, an empty map and slot table, and a
 * first record.  Nothing depends on the old content any more (no write
 * reached the device yet), and a crash in the middle leaves a file that
 * fails its checks (every structure carries the new epoch), so the next
 * start resets again.  LD gets the fresh state.
 */
static int
statefile_reset (struct statefile *sf, struct statefile_load *ld,
                 char *err, size_t errlen)
{
  const struct stateformat_layout *l = &sf->l;
  static const uint8_t zero[SF_PAGE_SIZE];
  struct stateformat_dyn d = { 0 };
  uint64_t epoch, p, off;
  uint8_t sb[SF_SB_SIZE];

  if (getrandom (&epoch, sizeof epoch, 0) != sizeof epoch) {
    lb_errf (err, errlen, "getrandom: %s", strerror (errno));
    return -1;
  }
  sf->epoch = epoch | 1;        /* never 0: 0 is "no epoch" to consumers */
  sf->sb_gen++;
  memset (ld->map, 0, l->map_words * sizeof *ld->map);
  memset (ld->bad_page, 0, l->map_pages);
  for (p = 0; p < l->g.nslots; p++)
    ld->slots[p] = SF_NONE;
  if (ftruncate (sf->fd, 0) == -1 || ftruncate (sf->fd, l->file_size) == -1)
    goto io;
  /* Every block written, so that later writes allocate nothing. */
  for (off = l->journal_off; off < l->map_off; off += SF_PAGE_SIZE)
    if (lb_pwrite_all (sf->fd, zero, SF_PAGE_SIZE, off) == -1)
      goto io;
  for (p = 0; p < l->map_pages; p++)
    if (statefile_put_page (sf, ld->map, p) == -1)
      goto io;
  stateformat_sb_encode (l, sf->epoch, sf->sb_gen, (uint64_t) time (NULL), sb);
  if (lb_pwrite_all (sf->fd, sb, SF_SB_SIZE, 0) == -1
      || lb_pwrite_all (sf->fd, sb, SF_SB_SIZE, SF_SB_SIZE) == -1
      || statefile_put_record (sf, 0, &d, NULL, 0, ld->slots) == -1
      || fsync (sf->fd) == -1)
    goto io;
  sf->next_tx = 1;
  ld->outcome = SF_FRESH;
  ld->epoch = sf->epoch;
  ld->dyn = d;
  ld->bad_pages = 0;
  return 0;
 io:
  lb_errf (err, errlen, "%s: cannot initialise: %s", sf->path,
           strerror (errno));
  return -1;
}

/* Read the superblocks.  Returns 0 with the chosen one in *SB (and a bad
 * copy repaired), 1 with a reason in WHY if neither is usable, -1 on an
 * I/O error.
 */
static int
statefile_read_sb (struct statefile *sf, statefile_log_fn log,
                   struct stateformat_sb *sb, char *why, size_t whylen)
{
  uint8_t buf[2][SF_SB_SIZE];
  struct stateformat_sb s[2];
  const char *bad[2];
  bool ok[2];
  int i, pick;

  if (lb_pread_all (sf->fd, buf, sizeof buf, 0, LB_EOF_ZERO) == -1)
    return -1;
  for (i = 0; i < 2; i++) {
    ok[i] = stateformat_sb_decode (buf[i], &s[i], &bad[i]) == SF_OK;
    if (ok[i] && s[i].gen > sf->sb_gen)
      sf->sb_gen = s[i].gen;
  }
  if (!ok[0] && !ok[1]) {
    lb_errf (why, whylen, "neither superblock copy is valid (A: %s; B: %s)",
             bad[0], bad[1]);
    return 1;
  }
  pick = !ok[0] || (ok[1] && s[1].gen > s[0].gen);
  *sb = s[pick];
  if (!ok[!pick] || memcmp (buf[0], buf[1], SF_SB_SIZE) != 0) {
    statefile_say (log, "%s: superblock copy %c is invalid (%s): using copy "
                   "%c and rewriting %c", sf->path, pick ? 'A' : 'B',
                   ok[!pick] ? "older" : bad[!pick], pick ? 'B' : 'A',
                   pick ? 'A' : 'B');
    if (lb_pwrite_all (sf->fd, buf[pick], SF_SB_SIZE,
                       (uint64_t) !pick * SF_SB_SIZE) == -1
        || fdatasync (sf->fd) == -1)
      return -1;
  }
  return 0;
}

/* Load an existing file.  Returns 0 (LD filled), 1 (unusable: reset it,
 * for the reason in WHY), or -1 (an I/O error).
 */
static int
statefile_load (struct statefile *sf, statefile_log_fn log,
                struct statefile_load *ld, char *why, size_t whylen)
{
  const struct stateformat_layout *l = &sf->l;
  const struct stateformat_geom *g = &l->g;
  struct stateformat_sb sb;
  struct stat st;
  uint8_t *journal;
  uint64_t p;
  int r;

  r = statefile_read_sb (sf, log, &sb, why, whylen);
  if (r != 0)
    return r;
  if (sb.g.dev_size != g->dev_size)
    lb_errf (why, whylen, "the device size changed from %" PRIu64 " to %"
             PRIu64 " bytes", sb.g.dev_size, g->dev_size);
  else if (sb.g.block_size != g->block_size)
    lb_errf (why, whylen, "livewatch-block changed from %" PRIu32 " to %"
             PRIu32, sb.g.block_size, g->block_size);
  else if (sb.g.region_size != g->region_size)
    lb_errf (why, whylen, "livewatch-al-region changed from %" PRIu64
             " to %" PRIu64, sb.g.region_size, g->region_size);
  else if (sb.g.nslots != g->nslots)
    lb_errf (why, whylen, "livewatch-al-regions changed from %" PRIu32
             " to %" PRIu32, sb.g.nslots, g->nslots);
  else if (sb.journal_len != l->journal_len
           || sb.ctx_per_rec != l->ctx_per_rec
           || sb.upd_per_rec != SF_REC_UPD || sb.map_pages != l->map_pages
           || sb.journal_off != l->journal_off || sb.map_off != l->map_off
           || sb.file_size != l->file_size)
    lb_errf (why, whylen, "the superblock's layout does not match its "
             "geometry");
  else
    why[0] = '\0';
  if (why[0])
    return 1;
  sf->epoch = sb.epoch;
  if (fstat (sf->fd, &st) == -1)
    return -1;
  if ((uint64_t) st.st_size < l->file_size) {
    lb_errf (why, whylen, "the state file is truncated (%" PRIu64 " of %"
             PRIu64 " bytes)", (uint64_t) st.st_size, l->file_size);
    return 1;
  }

  journal = malloc ((size_t) l->journal_len * SF_REC_SIZE);
  if (journal == NULL)
    return -1;
  if (lb_pread_all (sf->fd, journal, (size_t) l->journal_len * SF_REC_SIZE,
                    l->journal_off, LB_EOF_FAIL) == -1) {
    free (journal);
    return -1;
  }
  r = stateformat_replay (l, sf->epoch, journal, ld->slots, &ld->dyn,
                        &sf->next_tx, why, whylen) == -1;
  free (journal);
  if (r)
    return 1;
  if (ld->dyn.last_seq > UINT64_MAX - 4 * LW_SEQ_GAP) {
    lb_errf (why, whylen, "sequence numbers are used up");
    return 1;
  }

  for (p = 0; p < l->map_pages; p++) {
    const char *bad;
    if (lb_pread_all (sf->fd, sf->page, SF_PAGE_SIZE,
                      l->map_off + p * SF_PAGE_SIZE, LB_EOF_FAIL) == -1)
      return -1;
    if (stateformat_page_decode (sf->epoch, p, sf->page,
                               ld->map + p * SF_PAGE_WORDS, &bad) == SF_BAD) {
      /* Torn by a power loss in a checkpoint, or corrupted: its blocks
       * may be any, so they are all compared.
       */
      uint64_t first = p * SF_PAGE_BITS, n = SF_PAGE_BITS, w;
      if (first + n > l->nblocks)
        n = l->nblocks - first;
      statefile_say (log, "%s: map page %" PRIu64 " is invalid (%s): its %"
                     PRIu64 " blocks will be compared", sf->path, p, bad, n);
      for (w = 0; w < SF_PAGE_WORDS; w++)
        ld->map[p * SF_PAGE_WORDS + w] =
          w * 64 >= n ? 0 : n - w * 64 >= 64 ? UINT64_MAX
          : (UINT64_C(1) << (n - w * 64)) - 1;
      ld->bad_page[p] = 1;
      ld->bad_pages++;
    }
  }
  ld->outcome = ld->dyn.clean ? SF_CLEAN : SF_UNCLEAN;
  ld->epoch = sf->epoch;
  return 0;
}

int
statefile_open (const char *path, const struct stateformat_geom *g,
                statefile_log_fn log, struct statefile **sfp,
                struct statefile_load *ld, char *err, size_t errlen)
{
  struct statefile *sf = calloc (1, sizeof *sf);
  bool created = false;
  struct stat st;
  int r;

  memset (ld, 0, sizeof *ld);
  if (sf == NULL || (sf->path = strdup (path)) == NULL) {
    free (sf);
    lb_errf (err, errlen, "out of memory");
    return -1;
  }
  sf->fd = -1;
  if (stateformat_layout (g, &sf->l, err, errlen) == -1)
    goto fail;
  ld->slots = malloc (sizeof *ld->slots * g->nslots);
  ld->map = calloc (sf->l.map_words ? sf->l.map_words : 1, sizeof *ld->map);
  ld->bad_page = calloc (sf->l.map_pages ? sf->l.map_pages : 1, 1);
  if (ld->slots == NULL || ld->map == NULL || ld->bad_page == NULL) {
    lb_errf (err, errlen, "out of memory");
    goto fail;
  }
  sf->fd = open (path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (sf->fd == -1 && errno == ENOENT) {
    sf->fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                   0600);
    created = true;
  }
  if (sf->fd == -1) {
    lb_errf (err, errlen, "%s: %s", path, strerror (errno));
    goto fail;
  }
  if (statefile_lock (sf->fd) == -1) {
    lb_errf (err, errlen, "%s: %s", path, errno == EAGAIN || errno == EACCES
             ? "in use by another nbdkit" : strerror (errno));
    goto fail;
  }
  if (fstat (sf->fd, &st) == -1 || !S_ISREG (st.st_mode)) {
    lb_errf (err, errlen, "%s: not a regular file", path);
    goto fail;
  }
  if (created)
    snprintf (ld->reason, sizeof ld->reason, "a new state file");
  else if (st.st_size == 0)
    snprintf (ld->reason, sizeof ld->reason, "the state file is empty");
  else {
    r = statefile_load (sf, log, ld, ld->reason, sizeof ld->reason);
    if (r == -1) {
      lb_errf (err, errlen, "%s: %s", path, strerror (errno));
      goto fail;
    }
    if (r == 1)
      statefile_say (log, "%s: cannot continue the stored capture: %s; "
                     "starting a new one (a full scan)", path, ld->reason);
  }
  if (ld->reason[0]) {
    if (statefile_reset (sf, ld, err, errlen) == -1)
      goto fail;
    if (created && statefile_sync_dir (path) == -1) {
      lb_errf (err, errlen, "%s: fsync of its folder: %s", path,
               strerror (errno));
      goto fail;
    }
  }
  *sfp = sf;
  return 0;
 fail:
  statefile_close (sf);
  statefile_load_free (ld);
  return -1;
}

const struct stateformat_layout *
statefile_layout (const struct statefile *sf)
{
  return &sf->l;
}

uint64_t
statefile_epoch (const struct statefile *sf)
{
  return sf->epoch;
}

int
statefile_append (struct statefile *sf, const struct stateformat_dyn *d,
                  const struct stateformat_update *u, size_t nu,
                  const uint64_t *table_after, char *err, size_t errlen)
{
  /* Written whole (one sector), then durable before anything that
   * depends on it may happen.
   */
  if (statefile_put_record (sf, sf->next_tx, d, u, nu, table_after) == -1
      || fdatasync (sf->fd) == -1) {
    lb_errf (err, errlen, "%s: journal: %s", sf->path, strerror (errno));
    return -1;
  }
  sf->next_tx++;
  return 0;
}

int
statefile_write_pages (struct statefile *sf, const uint64_t *map,
                       const uint64_t *pages, size_t n, char *err,
                       size_t errlen)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (statefile_put_page (sf, map, pages[i]) == -1)
      goto io;
  if (n > 0 && fdatasync (sf->fd) == -1)
    goto io;
  return 0;
 io:
  lb_errf (err, errlen, "%s: map: %s", sf->path, strerror (errno));
  return -1;
}

int
statefile_invalidate (struct statefile *sf)
{
  /* An empty file starts a new capture: the next start resets it. */
  return ftruncate (sf->fd, 0) == -1 || fsync (sf->fd) == -1 ? -1 : 0;
}

void
statefile_close (struct statefile *sf)
{
  if (sf == NULL)
    return;
  if (sf->fd >= 0)
    close (sf->fd);
  free (sf->path);
  free (sf);
}

void
statefile_load_free (struct statefile_load *ld)
{
  free (ld->slots);
  free (ld->map);
  free (ld->bad_page);
  ld->slots = NULL;
  ld->map = NULL;
  ld->bad_page = NULL;
}
