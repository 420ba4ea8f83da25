/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the state file (nbdkit-plugin/stateformat.c and
 * statefile.c), without nbdkit: the record and page checks, the replay
 * of the journal (context slices, wrap, gaps, tears), and the file's
 * recovery from every way it can be torn or corrupted: each one is
 * detected and reported, the capture continues where the file still
 * proves enough, and starts over (a full scan) where it does not.
 */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "lb_io.h"
#include "statefile.h"
#include "tap.h"

static char dir[] = "/tmp/lw-test-state-XXXXXX";
static char path[256];
static char logged[4096];

static void
collect (const char *msg)
{
  size_t n = strlen (logged);
  snprintf (logged + n, sizeof logged - n, "%s\n", msg);
}

static const struct stateformat_geom geom = {
  .dev_size = 64u << 20, .block_size = 65536, .region_size = 4u << 20,
  .nslots = 100,
};

static void
test_layout (void)
{
  struct stateformat_layout l;
  struct stateformat_geom g = geom;
  char err[256];

  tap_ok (stateformat_layout (&g, &l, err, sizeof err) == 0
          && l.nblocks == 1024 && l.nregions == 16 && l.blocks_per_region == 64
          && l.ctx_per_rec == SF_REC_CTX && l.journal_len == 6
          && l.map_pages == 1 && l.file_size == l.map_off + SF_PAGE_SIZE,
          "layout of 64M / 64K blocks / 4M regions / 100 slots: J=%u",
          l.journal_len);
  g.nslots = 65536;
  g.dev_size = UINT64_C(2) << 40;
  tap_ok (stateformat_layout (&g, &l, err, sizeof err) == 0
          && l.journal_len == 3278 && l.map_pages == 1031,
          "2T with 65536 slots: J=%u, %" PRIu64 " map pages", l.journal_len,
          l.map_pages);
  g = geom;
  g.region_size = 32768;
  tap_ok (stateformat_layout (&g, &l, err, sizeof err) == -1
          && strstr (err, "region"), "region below the block refused: %s",
          err);
  g = geom;
  g.nslots = 8;
  tap_ok (stateformat_layout (&g, &l, err, sizeof err) == -1,
          "too few slots refused: %s", err);
}

/* Every single-byte change of a record or page is caught. */
static void
test_checksums (void)
{
  struct stateformat_layout l;
  struct stateformat_rec r = { .epoch = 77, .tx = 5, .nctx = SF_REC_CTX,
                               .nupd = 2 };
  struct stateformat_rec back;
  uint8_t buf[SF_PAGE_SIZE], copy[SF_PAGE_SIZE];
  uint64_t words[SF_PAGE_WORDS], w2[SF_PAGE_WORDS];
  const char *why;
  unsigned i;
  int missed = 0;

  stateformat_layout (&geom, &l, NULL, 0);
  r.dyn = (struct stateformat_dyn) { .gen = 9, .gen_acked = 8,
                                     .floor_seq = 100, .last_seq = 200 };
  r.ctx_first = stateformat_ctx_first (&l, r.tx);
  for (i = 0; i < SF_REC_CTX; i++)
    r.ctx[i] = i % 3 ? SF_NONE : (uint64_t) i % 16;
  r.upd[0] = (struct stateformat_update) { .slot = 3, .region = 7 };
  r.upd[1] = (struct stateformat_update) { .slot = 4, .region = SF_NONE };
  stateformat_rec_encode (&r, buf);
  tap_ok (stateformat_rec_decode (&l, buf, &back, &why) == SF_OK
          && back.tx == 5 && back.dyn.gen == 9 && back.nupd == 2
          && back.upd[0].region == 7 && back.ctx[3] == 3,
          "record round trip");
  for (i = 0; i < (int) SF_REC_SIZE; i++) {
    memcpy (copy, buf, SF_REC_SIZE);
    copy[i] ^= 0x10;
    if (stateformat_rec_decode (&l, copy, &back, &why) != SF_BAD)
      missed++;
  }
  tap_ok (missed == 0, "every one of 512 flipped record bytes is caught");
  memset (copy, 0, SF_REC_SIZE);
  tap_ok (stateformat_rec_decode (&l, copy, &back, &why) == SF_EMPTY,
          "an all-zero record is one never written");

  for (i = 0; i < (int) SF_PAGE_WORDS; i++)
    words[i] = (uint64_t) i * 0x9e3779b97f4a7c15u;
  stateformat_page_encode (77, 0, words, buf);
  tap_ok (stateformat_page_decode (77, 0, buf, w2, &why) == SF_OK
          && memcmp (words, w2, sizeof words) == 0, "page round trip");
  for (missed = 0, i = 0; i < (int) SF_PAGE_SIZE; i++) {
    memcpy (copy, buf, SF_PAGE_SIZE);
    copy[i] ^= 0x01;
    if (stateformat_page_decode (77, 0, copy, w2, &why) != SF_BAD)
      missed++;
  }
  tap_ok (missed == 0, "every one of 4096 flipped page bytes is caught");
  tap_ok (stateformat_page_decode (78, 0, buf, w2, &why) == SF_BAD
          && stateformat_page_decode (77, 1, buf, w2, &why) == SF_BAD,
          "a page of another epoch or index is caught");
}

/* Replay against a model: a slot table changed at random, one record
 * per change set, the journal wrapping many times.  After every record,
 * replaying the journal gives the table; with the newest record torn
 * (its old content left), the table before it.
 */
static void
test_replay_model (void)
{
  struct stateformat_geom g = geom;
  struct stateformat_layout l;
  uint64_t table[100], before[100], got[100];
  uint8_t *journal, old[SF_REC_SIZE];
  struct stateformat_dyn dyn, d = { 0 };
  uint64_t tx, next_tx, used[16] = { 0 };
  unsigned seed = 12345;
  int bad = 0, bad_torn = 0;
  char why[256];
  uint32_t s;

  g.nslots = 100;               /* more slots than regions: many free */
  stateformat_layout (&g, &l, NULL, 0);
  journal = calloc (l.journal_len, SF_REC_SIZE);
  for (s = 0; s < 100; s++)
    table[s] = SF_NONE;
  for (tx = 0; tx < 2000; tx++) {
    struct stateformat_rec r = { .epoch = 5, .tx = tx, .nctx = l.ctx_per_rec,
                                 .ctx_first = stateformat_ctx_first (&l, tx) };
    uint32_t k, n = rand_r (&seed) % 6;
    memcpy (before, table, sizeof table);
    for (k = 0; k < n; k++) {
      uint32_t slot = rand_r (&seed) % 100;
      uint64_t region = rand_r (&seed) % 17;
      if (region == 16 || used[region]) {
        region = SF_NONE;
      }
      if (table[slot] != SF_NONE)
        used[table[slot]] = 0;
      if (region != SF_NONE)
        used[region] = 1;
      table[slot] = region;
      r.upd[r.nupd++] = (struct stateformat_update) { slot, region };
    }
    d.last_seq += rand_r (&seed) % 3;
    r.dyn = d;
    for (k = 0; k < r.nctx; k++)
      r.ctx[k] = table[(r.ctx_first + k) % 100];
    memcpy (old, journal + (tx % l.journal_len) * SF_REC_SIZE, SF_REC_SIZE);
    stateformat_rec_encode (&r, journal + (tx % l.journal_len) * SF_REC_SIZE);
    if (stateformat_replay (&l, 5, journal, got, &dyn, &next_tx, why,
                            sizeof why) == -1
        || memcmp (got, table, sizeof table) != 0 || next_tx != tx + 1)
      bad++;
    /* The newest write torn: the old sector stays. */
    if (tx > 0) {
      uint8_t keep[SF_REC_SIZE];
      memcpy (keep, journal + (tx % l.journal_len) * SF_REC_SIZE,
              SF_REC_SIZE);
      memcpy (journal + (tx % l.journal_len) * SF_REC_SIZE, old,
              SF_REC_SIZE);
      if (stateformat_replay (&l, 5, journal, got, &dyn, &next_tx, why,
                              sizeof why) == -1
          || memcmp (got, before, sizeof before) != 0 || next_tx != tx)
        bad_torn++;
      memcpy (journal + (tx % l.journal_len) * SF_REC_SIZE, keep,
              SF_REC_SIZE);
    }
  }
  tap_ok (bad == 0, "2000 records, J=%u: the replay gives the table after "
          "each (%d wrong)", l.journal_len, bad);
  tap_ok (bad_torn == 0, "with the newest record not written: the table "
          "before it (%d wrong)", bad_torn);

  /* Corruptions the replay must refuse. */
  {
    uint8_t *j2 = malloc (l.journal_len * SF_REC_SIZE);
    memcpy (j2, journal, l.journal_len * SF_REC_SIZE);
    memset (j2 + 2 * SF_REC_SIZE, 0, SF_REC_SIZE);
    tap_ok (stateformat_replay (&l, 5, j2, got, &dyn, &next_tx, why,
                                sizeof why) == -1 && strstr (why, "missing"),
            "a wrapped journal with a record gone: %s", why);
    memcpy (j2, journal, l.journal_len * SF_REC_SIZE);
    tap_ok (stateformat_replay (&l, 6, j2, got, &dyn, &next_tx, why,
                                sizeof why) == -1 && strstr (why, "epoch"),
            "records of another epoch: %s", why);
    memcpy (j2 + 3 * SF_REC_SIZE, j2 + 1 * SF_REC_SIZE, SF_REC_SIZE);
    tap_ok (stateformat_replay (&l, 5, j2, got, &dyn, &next_tx, why,
                                sizeof why) == -1,
            "a record copied to another index: %s", why);
    memset (j2, 0, l.journal_len * SF_REC_SIZE);
    tap_ok (stateformat_replay (&l, 5, j2, got, &dyn, &next_tx, why,
                                sizeof why) == -1 && strstr (why, "empty"),
            "an empty journal: %s", why);
    free (j2);
  }
  free (journal);
}

/* --- the file ----------------------------------------------------------- */

static int
open_state (struct statefile **sf, struct statefile_load *ld)
{
  char err[256];
  logged[0] = '\0';
  return statefile_open (path, &geom, collect, sf, ld, err, sizeof err);
}

/* Flip one byte of the file at OFF. */
static void
flip (uint64_t off)
{
  int fd = open (path, O_RDWR);
  uint8_t b;
  if (pread (fd, &b, 1, off) != 1)
    abort ();
  b ^= 0x40;
  if (pwrite (fd, &b, 1, off) != 1)
    abort ();
  close (fd);
}

static void
test_file (void)
{
  struct statefile *sf, *sf2;
  struct statefile_load ld, ld2;
  struct stateformat_layout l;
  struct stateformat_dyn d = { .gen = 3, .gen_acked = 2, .floor_seq = 10,
                               .last_seq = 50 };
  struct stateformat_update u = { .slot = 7, .region = 9 };
  uint64_t table[100], epoch, pages[1] = { 0 };
  char err[256];
  int i;

  stateformat_layout (&geom, &l, NULL, 0);
  tap_ok (open_state (&sf, &ld) == 0 && ld.outcome == SF_FRESH
          && strstr (ld.reason, "new"), "a new file starts fresh: %s",
          ld.reason);
  epoch = ld.epoch;
  tap_ok (open_state (&sf2, &ld2) == -1, "a second opener is refused");
  for (i = 0; i < 100; i++)
    table[i] = SF_NONE;
  table[7] = 9;
  ld.map[3] = 0xf0;             /* blocks 196..199 */
  tap_ok (statefile_append (sf, &d, &u, 1, table, err, sizeof err) == 0
          && statefile_write_pages (sf, ld.map, pages, 1, err,
                                    sizeof err) == 0, "record and page");
  statefile_close (sf);
  statefile_load_free (&ld);

  tap_ok (open_state (&sf, &ld) == 0 && ld.outcome == SF_UNCLEAN
          && ld.epoch == epoch && ld.slots[7] == 9 && ld.dyn.gen == 3
          && ld.dyn.floor_seq == 10 && ld.map[3] == 0xf0 && !logged[0],
          "reopened: unclean, same epoch, slot 7 holds region 9, map kept");
  statefile_close (sf);
  statefile_load_free (&ld);

  /* One superblock copy damaged: the other one serves, and is copied. */
  flip (40);
  tap_ok (open_state (&sf, &ld) == 0 && ld.outcome == SF_UNCLEAN
          && ld.epoch == epoch && strstr (logged, "superblock copy A"),
          "superblock A flipped: continues on B (%.60s)", logged);
  statefile_close (sf);
  statefile_load_free (&ld);
  tap_ok (open_state (&sf, &ld) == 0 && ld.outcome == SF_UNCLEAN
          && !logged[0], "...and A was repaired");
  statefile_close (sf);
  statefile_load_free (&ld);

  /* A map page damaged: all its blocks count as changed. */
  flip (l.map_off + 100);
  tap_ok (open_state (&sf, &ld) == 0 && ld.outcome == SF_UNCLEAN
          && ld.bad_pages == 1 && ld.map[0] == UINT64_MAX
          && ld.map[15] == UINT64_MAX && ld.map[16] == 0
          && strstr (logged, "map page 0 is invalid"),
          "map page flipped: continues, its 1024 blocks all set (%.70s)",
          logged);
  statefile_close (sf);
  statefile_load_free (&ld);

  /* A journal record damaged: the capture cannot continue. */
  flip (l.journal_off + 1 * SF_REC_SIZE + 60);
  tap_ok (open_state (&sf, &ld) == 0 && ld.outcome == SF_FRESH
          && ld.epoch != epoch && strstr (ld.reason, "journal record 1")
          && strstr (logged, "full scan"),
          "journal record flipped: reset, new epoch: %s", ld.reason);
  epoch = ld.epoch;
  statefile_close (sf);
  statefile_load_free (&ld);

  /* Both superblocks. */
  flip (40);
  flip (SF_SB_SIZE + 40);
  tap_ok (open_state (&sf, &ld) == 0 && ld.outcome == SF_FRESH
          && strstr (ld.reason, "neither superblock"),
          "both superblocks flipped: reset: %s", ld.reason);
  statefile_close (sf);
  statefile_load_free (&ld);

  /* Truncated. */
  tap_ok (truncate (path, l.map_off + 100) == 0 && open_state (&sf, &ld) == 0
          && ld.outcome == SF_FRESH && strstr (ld.reason, "truncated"),
          "truncated: reset: %s", ld.reason);
  statefile_close (sf);
  statefile_load_free (&ld);
  tap_ok (truncate (path, 0) == 0 && open_state (&sf, &ld) == 0
          && ld.outcome == SF_FRESH && strstr (ld.reason, "empty"),
          "emptied: reset: %s", ld.reason);
  statefile_close (sf);
  statefile_load_free (&ld);

  /* Another geometry. */
  {
    struct stateformat_geom g = geom;
    g.dev_size *= 2;
    logged[0] = '\0';
    tap_ok (statefile_open (path, &g, collect, &sf, &ld, err,
                            sizeof err) == 0
            && ld.outcome == SF_FRESH && strstr (ld.reason, "device size"),
            "the device grew: reset: %s", ld.reason);
    statefile_close (sf);
    statefile_load_free (&ld);
  }
  tap_ok (statefile_preflight ("/nonexistent/dir/state", NULL, err,
                               sizeof err) == -1, "preflight: no folder: %s",
          err);
  logged[0] = '\0';
  tap_ok (statefile_preflight ("/dev/shm/lw-test-state-x", collect, err,
                               sizeof err) == 0 && strstr (logged, "tmpfs"),
          "preflight warns about tmpfs");
}

/* A clean record empties every slot, whatever came before. */
static void
test_clean_record (void)
{
  struct statefile *sf;
  struct statefile_load ld;
  struct stateformat_dyn d = { .last_seq = 9, .clean = true };
  uint64_t table[100];
  char err[256];
  int i;

  unlink (path);
  open_state (&sf, &ld);
  for (i = 0; i < 100; i++)
    table[i] = SF_NONE;
  table[1] = 4;
  d.clean = false;
  statefile_append (sf, &d, &(struct stateformat_update) { 1, 4 }, 1, table,
                    err, sizeof err);
  table[1] = SF_NONE;
  d.clean = true;
  statefile_append (sf, &d, NULL, 0, table, err, sizeof err);
  statefile_close (sf);
  statefile_load_free (&ld);
  tap_ok (open_state (&sf, &ld) == 0 && ld.outcome == SF_CLEAN
          && ld.slots[1] == SF_NONE && ld.dyn.last_seq == 9,
          "after a clean record: clean, no active slot");
  statefile_close (sf);
  statefile_load_free (&ld);
}

int
main (void)
{
  if (mkdtemp (dir) == NULL)
    return 1;
  snprintf (path, sizeof path, "%s/state", dir);
  test_layout ();
  test_checksums ();
  test_replay_model ();
  test_file ();
  test_clean_record ();
  unlink (path);
  rmdir (dir);
  return tap_done ();
}
