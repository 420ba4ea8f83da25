/* SPDX-License-Identifier: BSD-3-Clause */
/* The state file's invariant, checked at every instant that matters,
 * against a model of what a crash there could leave.
 *
 * The filter's own code (capture, channel, service, actlog, persist,
 * statefile) runs in-process with a state file, a memory "device" and a
 * consumer (lw_follow) mirroring into memory.  The test wraps pwrite,
 * fsync and fdatasync (-Wl,--wrap) to know, at every instant, what of
 * the state file is durable (its content at the last sync) and which
 * writes are not yet (any subset of them may survive a power cut, and a
 * map page may be torn).  It also models the device's own durability:
 * a write is on the device only once a flush that started after it
 * completed.  At each of these instants:
 *   - a write is about to reach the device (inside the plugin call),
 *   - the state file was just made durable,
 *   - the mirror was just made durable,
 * every possible crash state of the state file is recovered (as the
 * next nbdkit would), and for every durable mirror the recovery would
 * let continue (same epoch, seq >= floor, gen in {gen, gen_acked}),
 * every block where the device may differ from it must be recovered:
 * in an active region or set in P.  The device may differ where its
 * content is not the mirror's, or where it was written since the last
 * completed flush, or where a write is in flight.
 *
 * Then the capture is crashed (threads stopped, no clean stop), the
 * device reverted as a power cut could, nbdkit "restarted" on the state
 * file as it was durable, and the consumer must continue without a full
 * scan and converge to the device; and once more after a clean stop.
 *
 * With the code broken on purpose this fails: activation without its
 * fdatasync, an eviction without its map pages, a checkpoint clearing P
 * without a flush of the device, gen_acked not recorded before pending
 * bits are cleared (doc/capture.md lists them with the failures seen).
 */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <nbdkit-filter.h>

#include "actlog.h"
#include "capture.h"
#include "channel.h"
#include "lb_io.h"
#include "lw_consumer.h"
#include "lw_follow.h"
#include "persist.h"
#include "service.h"
#include "statefile.h"
#include "tap.h"

#define DEV_SIZE (2u << 20)
#define BLOCK    4096u
#define NBLOCKS  (DEV_SIZE / BLOCK)
#define REGION   32768u
#define NSLOTS   16u
#define UNIT     4
#define NHIST    3

extern int livewatch_debug_al_idle_ms, livewatch_debug_al_checkpoint_ms;

/* tmpfs: the state file's syncs are watched, not waited for. */
static char dir[] = "/dev/shm/lw-test-crash-XXXXXX";
static char state_path[256], scratch_path[256];
static int dev_fd;
static uint8_t *dev;                    /* the device, mapped */

/* --- the model, under model_lock ---------------------------------------- */

static pthread_mutex_t model_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int state_fd = -1;
static uint8_t *durable;                /* the state file at its last sync */
static size_t durable_len;
struct pend { uint64_t off; size_t len; uint8_t *data; };
static struct pend pend[64];            /* its writes since */
static size_t npend;
static uint64_t wgen[NBLOCKS];          /* flushes started when last written */
/* The device as it was before the test is durable: flush 1 done. */
static uint64_t flush_count = 1, flush_done_k = 1;
static uint8_t dev_flushed[DEV_SIZE];   /* at the last completed flush */
static uint8_t dev_flushing[DEV_SIZE];
static uint64_t inflight_b0, inflight_b1;  /* a write about to land */
static struct mirror_state {
  bool valid;
  uint64_t epoch, seq, gen, swept;
  uint8_t img[DEV_SIZE];
} hist[NHIST];                          /* durable mirrors, newest first */
static uint64_t max_gen_stored, max_gen_epoch; /* the highest gen a mirror
                                         * stored, in that epoch */
static uint64_t checks, crash_states, fresh_states, violations;
static char first_violation[512];

/* The wrapped calls: the state file's writes are remembered until the
 * sync that makes them durable.
 */
extern ssize_t __real_pwrite (int fd, const void *buf, size_t n, off_t off);
extern int __real_fsync (int fd);
extern int __real_fdatasync (int fd);
static void model_check (const char *where);

ssize_t __wrap_pwrite (int fd, const void *buf, size_t n, off_t off);
ssize_t
__wrap_pwrite (int fd, const void *buf, size_t n, off_t off)
{
  ssize_t r = __real_pwrite (fd, buf, n, off);

  if (fd == atomic_load (&state_fd) && r > 0) {
    pthread_mutex_lock (&model_lock);
    if (npend < 64) {
      pend[npend].off = off;
      pend[npend].len = r;
      pend[npend].data = malloc (r);
      memcpy (pend[npend].data, buf, r);
      npend++;
    }
    pthread_mutex_unlock (&model_lock);
    model_check ("a state file write is not yet synced");
  }
  return r;
}

/* The file's content is now durable. */
static void
model_synced (int fd)
{
  struct stat st;
  size_t i;

  pthread_mutex_lock (&model_lock);
  if (fstat (fd, &st) == 0) {
    durable = realloc (durable, st.st_size);
    durable_len = st.st_size;
    if (pread (fd, durable, durable_len, 0) != (ssize_t) durable_len)
      abort ();
  }
  for (i = 0; i < npend; i++)
    free (pend[i].data);
  npend = 0;
  pthread_mutex_unlock (&model_lock);
  model_check ("the state file was synced");
}

int __wrap_fdatasync (int fd);
int
__wrap_fdatasync (int fd)
{
  int r = __real_fdatasync (fd);
  if (r == 0 && fd == atomic_load (&state_fd))
    model_synced (fd);
  return r;
}

int __wrap_fsync (int fd);
int
__wrap_fsync (int fd)
{
  int r = __real_fsync (fd);
  if (r == 0 && fd == atomic_load (&state_fd))
    model_synced (fd);
  return r;
}

/* The device's flush: writes before its start are durable at its end. */
static int
dev_flush (void)
{
  uint64_t k;

  pthread_mutex_lock (&model_lock);
  k = ++flush_count;
  memcpy (dev_flushing, dev, DEV_SIZE);
  pthread_mutex_unlock (&model_lock);
  pthread_mutex_lock (&model_lock);
  if (k > flush_done_k) {
    flush_done_k = k;
    memcpy (dev_flushed, dev_flushing, DEV_SIZE);
  }
  pthread_mutex_unlock (&model_lock);
  return 0;
}

static bool
dev_durable (uint64_t b)
{
  return wgen[b] < flush_done_k;
}

/* Recover the state file as content BUF: the set of blocks the next
 * start would copy or compare (*COVER), and what it says.  Returns the
 * outcome.
 */
static enum statefile_outcome
model_recover (const uint8_t *buf, size_t len, bool *cover,
               struct statefile_load *ld)
{
  const struct stateformat_geom g = {
    .dev_size = DEV_SIZE, .block_size = BLOCK, .region_size = REGION,
    .nslots = NSLOTS,
  };
  struct statefile *sf;
  char err[256];
  uint64_t b, s;
  int fd = open (scratch_path, O_RDWR | O_CREAT | O_TRUNC, 0600);

  if (fd == -1 || lb_pwrite_all (fd, buf, len, 0) == -1)
    abort ();
  close (fd);
  if (statefile_open (scratch_path, &g, NULL, &sf, ld, err, sizeof err) == -1)
    abort ();
  statefile_close (sf);
  for (b = 0; b < NBLOCKS; b++)
    cover[b] = ld->map[b / 64] >> (b % 64) & 1;
  if (ld->outcome == SF_UNCLEAN)
    for (s = 0; s < NSLOTS; s++)
      if (ld->slots[s] != SF_NONE)
        for (b = ld->slots[s] * (REGION / BLOCK);
             b < (ld->slots[s] + 1) * (REGION / BLOCK); b++)
          cover[b] = true;
  return ld->outcome;
}

/* CRASH_DEBUG=1: what the model saw at the first violation, block B. */
static void
model_dump (uint64_t b, const struct statefile_load *ld,
            const unsigned *choice)
{
  const struct lw_header *h = channel_hdr;
  uint64_t i;

  fprintf (stderr, "VIOLATION %s\n", first_violation);
  for (i = 0; i < NHIST; i++)
    fprintf (stderr, "  mirror %" PRIu64 ": valid %d seq %" PRIu64 " gen %"
             PRIu64 " swept %" PRIu64 " differs %d\n", i, hist[i].valid,
             hist[i].seq, hist[i].gen, hist[i].swept,
             memcmp (dev + b * BLOCK, hist[i].img + b * BLOCK, BLOCK) != 0);
  fprintf (stderr, "  active:");
  for (i = 0; i < NSLOTS; i++)
    if (ld->slots[i] != SF_NONE)
      fprintf (stderr, " %" PRIu64, ld->slots[i]);
  fprintf (stderr, "\n  P word %" PRIx64 "; pending writes:",
           ld->map[b / 64]);
  for (i = 0; i < npend; i++)
    fprintf (stderr, " %u@%" PRIu64 "+%zu", choice[i], pend[i].off,
             pend[i].len);
  if (h)
    fprintf (stderr, "\n  now head %" PRIu64 " tail %" PRIu64 " gen %"
             PRIu64 "/%" PRIu64 " mode %u dirty %d pending %d",
             atomic_load (&h->head_seq), atomic_load (&h->tail_seq),
             atomic_load (&h->gen_acked), atomic_load (&h->gen),
             atomic_load (&h->mode),
             (int) (atomic_load (lw_bitmap_word (channel_dirty, b))
                    >> (b & 63) & 1),
             (int) (atomic_load (lw_bitmap_word (channel_pending, b))
                    >> (b & 63) & 1));
  fprintf (stderr, "\n");
}

/* One crash state: the durable file with the pending writes chosen by
 * CHOICE (per write: 0 lost, 1 written, 2 torn: its first half only).
 * Lock held.
 */
static void
model_check_state (const char *where, const unsigned *choice,
                   bool need[NHIST][NBLOCKS])
{
  static bool cover[NBLOCKS];
  struct statefile_load ld;
  uint8_t *buf;
  size_t len = durable_len, i;
  uint64_t b;
  int m;

  for (i = 0; i < npend; i++)
    if (choice[i] && pend[i].off + pend[i].len > len)
      len = pend[i].off + pend[i].len;
  buf = calloc (1, len);
  memcpy (buf, durable, durable_len);
  for (i = 0; i < npend; i++)
    if (choice[i])
      memcpy (buf + pend[i].off, pend[i].data,
              choice[i] == 2 ? pend[i].len / 2 : pend[i].len);
  crash_states++;
  if (model_recover (buf, len, cover, &ld) == SF_FRESH) {
    /* A new epoch: a full scan, which misses nothing. */
    fresh_states++;
  }
  else if (ld.epoch == max_gen_epoch && ld.dyn.gen < max_gen_stored) {
    /* The next instance would give that number again, to copies another
     * mirror gets: two mirrors with one gen.
     */
    if (violations++ == 0)
      snprintf (first_violation, sizeof first_violation,
                "%s: a mirror stored gen %" PRIu64 " but the state file "
                "says gen %" PRIu64, where, max_gen_stored, ld.dyn.gen);
  }
  else if (ld.epoch == max_gen_epoch && ld.dyn.gen_acked > max_gen_stored) {
    if (violations++ == 0)
      snprintf (first_violation, sizeof first_violation,
                "%s: the state file says gen %" PRIu64 " was confirmed, "
                "no mirror stored it", where, ld.dyn.gen_acked);
  }
  else
    for (m = 0; m < NHIST; m++) {
      const struct mirror_state *ms = &hist[m];
      if (!ms->valid || ms->epoch != ld.epoch
          || ms->seq < ld.dyn.floor_seq
          || (ms->gen != ld.dyn.gen && ms->gen != ld.dyn.gen_acked))
        continue;
      for (b = 0; b < NBLOCKS; b++)
        if (need[m][b] && !cover[b]) {
          if (violations++ == 0)
            snprintf (first_violation, sizeof first_violation,
                      "%s: block %" PRIu64 " (region %" PRIu64 ") may differ "
                      "(%s) from mirror %d at seq %" PRIu64 " gen %" PRIu64
                      " that may continue (floor %" PRIu64 ", gen %" PRIu64
                      "/%" PRIu64 ", last %" PRIu64 "), and is not recovered",
                      where, b, b * BLOCK / REGION,
                      memcmp (dev + b * BLOCK, ms->img + b * BLOCK, BLOCK)
                      ? "content" : !dev_durable (b) ? "not flushed"
                      : "in flight", m, ms->seq, ms->gen,
                      ld.dyn.floor_seq, ld.dyn.gen_acked, ld.dyn.gen,
                      ld.dyn.last_seq);
          if (violations == 1 && getenv ("CRASH_DEBUG"))
            model_dump (b, &ld, choice);
          break;
        }
    }
  statefile_load_free (&ld);
  free (buf);
}

static void
model_check (const char *where)
{
  static bool need[NHIST][NBLOCKS];
  unsigned choice[64], combos, c, i, k;
  uint64_t b;
  int m;

  pthread_mutex_lock (&model_lock);
  if (durable == NULL) {
    pthread_mutex_unlock (&model_lock);
    return;
  }
  checks++;
  for (m = 0; m < NHIST; m++)
    for (b = 0; b < NBLOCKS; b++)
      need[m][b] = hist[m].valid
                   && b < (hist[m].swept + BLOCK - 1) / BLOCK
                   && ((b >= inflight_b0 && b < inflight_b1)
                       || !dev_durable (b)
                       || memcmp (dev + b * BLOCK, hist[m].img + b * BLOCK,
                                  BLOCK) != 0);
  /* Every combination of the pending writes, up to 3^4; beyond, some. */
  for (combos = 1, i = 0; i < npend && combos < 81; i++)
    combos *= 3;
  for (c = 0; c < combos && c < 81; c++) {
    unsigned v = c;
    for (i = 0; i < npend; i++) {
      k = i < 4 ? v % 3 : (unsigned) rand () % 3;
      v /= 3;
      /* A record is one sector: never torn. */
      choice[i] = k == 2 && pend[i].len <= 512 ? 1 : k;
    }
    model_check_state (where, choice, need);
  }
  pthread_mutex_unlock (&model_lock);
}

/* The consumer clears pending bits only once the gen that confirmed
 * their copies is durable in the state file (else a restart would let a
 * mirror without them continue): checked where it clears them.
 */
extern void __real_lwc_done_run (struct lwc *c, uint64_t block,
                                 uint64_t count);
void __wrap_lwc_done_run (struct lwc *c, uint64_t block, uint64_t count);
void
__wrap_lwc_done_run (struct lwc *c, uint64_t block, uint64_t count)
{
  static bool cover[NBLOCKS];
  const struct lw_header *h = lwc_header (c);
  struct statefile_load ld;

  pthread_mutex_lock (&model_lock);
  if (durable && atomic_load (&state_fd) >= 0
      && (atomic_load (&h->flags) & LW_FLAG_PERSISTENT)) {
    if (model_recover (durable, durable_len, cover, &ld) != SF_FRESH
        && ld.dyn.gen_acked < atomic_load (&h->gen_acked)
        && violations++ == 0)
      snprintf (first_violation, sizeof first_violation,
                "pending bits cleared with gen %" PRIu64 " confirmed but "
                "only %" PRIu64 " durable", atomic_load (&h->gen_acked),
                ld.dyn.gen_acked);
    statefile_load_free (&ld);
  }
  pthread_mutex_unlock (&model_lock);
  __real_lwc_done_run (c, block, count);
}

/* --- the consumer: a mirror in memory ------------------------------------ */

static uint8_t img[DEV_SIZE];
static _Atomic bool consumer_stop, consumer_pause;
static uint64_t cur_epoch, full_scans, continues;

static int
sink_record (void *o, const struct lwc_rec *r)
{
  if (r->type == LW_REC_WRITE)
    memcpy (img + r->offset, r->data, r->length);
  else if (r->type == LW_REC_ZERO)
    memset (img + r->offset, 0, r->length);
  return 0;
}

static int
sink_copy (void *o, uint64_t off, uint64_t len, bool scan)
{
  memcpy (img + off, dev + off, len);
  return 0;
}

static int
sink_sync (void *o, const struct lwf_mark *mk)
{
  pthread_mutex_lock (&model_lock);
  memmove (&hist[1], &hist[0], sizeof hist[0] * (NHIST - 1));
  hist[0] = (struct mirror_state) { .valid = true, .epoch = cur_epoch,
                                    .seq = mk->seq, .gen = mk->gen,
                                    .swept = mk->swept };
  memcpy (hist[0].img, img, DEV_SIZE);
  if (cur_epoch != max_gen_epoch) {
    max_gen_epoch = cur_epoch;
    max_gen_stored = 0;
  }
  if (mk->gen > max_gen_stored)
    max_gen_stored = mk->gen;
  pthread_mutex_unlock (&model_lock);
  model_check ("the mirror was synced");
  return 0;
}

static void
sink_phase (void *o, enum lwf_phase p, const struct lwf_mark *m)
{
}

static bool
sink_stop (void *o)
{
  return atomic_load (&consumer_stop);
}

static void *
consumer (void *arg)
{
  struct lwf_sink sink = {
    .record = sink_record, .copy = sink_copy, .sync = sink_sync,
    .phase = sink_phase, .stop = sink_stop,
  };
  char err[256];

  while (!atomic_load (&consumer_stop)) {
    struct lwc *c = atomic_load (&consumer_pause) ? NULL
                    : lwc_attach (dir, UNIT, 0, err, sizeof err);
    struct lwf_options o;
    struct lwf_mark at;
    enum lwf_start start;
    const char *why;

    if (c == NULL) {
      usleep (2000);
      continue;
    }
    pthread_mutex_lock (&model_lock);
    at = (struct lwf_mark) { .seq = hist[0].seq, .gen = hist[0].gen,
                             .swept = hist[0].swept };
    start = hist[0].valid
            ? lwf_decide (c, hist[0].epoch, &at, hist[0].swept < DEV_SIZE,
                          &why)
            : LWF_FULL_SCAN;
    if (start == LWF_FULL_SCAN) {
      full_scans++;
      if (hist[0].valid)
        printf ("# full scan: %s\n", why);
    }
    else
      continues++;
    cur_epoch = lwc_header (c)->epoch;
    pthread_mutex_unlock (&model_lock);
    lwf_default_options (c, &o);
    o.idle_ms = 5;
    lwc_rewind (c);
    lwf_run (c, &sink, &o, start, &at);
    lwc_detach (c);
  }
  return NULL;
}

/* --- the writer ---------------------------------------------------------- */

static int
dev_op (void *ctx, const void *buf, uint32_t count, uint64_t offset,
        uint32_t flags, int *err)
{
  uint64_t b;

  pthread_mutex_lock (&model_lock);
  inflight_b0 = offset / BLOCK;
  inflight_b1 = (offset + count + BLOCK - 1) / BLOCK;
  pthread_mutex_unlock (&model_lock);
  model_check ("a write is about to reach the device");
  /* From now on the device's content says it. */
  pthread_mutex_lock (&model_lock);
  if (buf)
    memcpy (dev + offset, buf, count);
  else
    memset (dev + offset, 0, count);
  for (b = offset / BLOCK; b < (offset + count + BLOCK - 1) / BLOCK; b++)
    wgen[b] = flush_count;
  inflight_b0 = inflight_b1 = 0;
  pthread_mutex_unlock (&model_lock);
  return 0;
}

static int
flush_op (void *ctx, const void *buf, uint32_t count, uint64_t offset,
          uint32_t flags, int *err)
{
  return dev_flush ();
}

static void
write_some (unsigned *seed, int n)
{
  static uint8_t buf[65536];
  uint64_t seq_off = 0;
  int i, e;

  for (i = 0; i < n; i++) {
    unsigned k = rand_r (seed) % 20;
    uint64_t off = (uint64_t) (rand_r (seed) % NBLOCKS) * BLOCK;
    uint32_t len = (1 + rand_r (seed) % 8) * BLOCK;
    if (k < 5) {                /* sequential runs */
      off = seq_off;
      seq_off = (seq_off + len) % DEV_SIZE;
    }
    if (off + len > DEV_SIZE)
      len = DEV_SIZE - off;
    memset (buf, 'a' + rand_r (seed) % 26, len);
    if (k == 19)
      capture_flush (NULL, flush_op, 0, &e);
    else
      capture_write (NULL, dev_op, k == 18 ? LW_REC_ZERO : LW_REC_WRITE,
                     k == 18 ? NULL : buf, len, off, 0, &e);
    if (rand_r (seed) % 50 == 0)
      usleep (20000);           /* let regions idle out */
    if (rand_r (seed) % 200 == 0) {
      pthread_rwlock_wrlock (&livewatch_lock);
      channel_degrade ("test");
      pthread_rwlock_unlock (&livewatch_lock);
    }
  }
}

/* --- nbdkit's part: start and stop --------------------------------------- */

static void
find_state_fd (void)
{
  char link[64], target[PATH_MAX];
  int fd;

  for (fd = 0; fd < 1024; fd++) {
    ssize_t n;
    snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink (link, target, sizeof target - 1);
    if (n > 0) {
      target[n] = '\0';
      if (strcmp (target, state_path) == 0) {
        atomic_store (&state_fd, fd);
        model_synced (fd);
        return;
      }
    }
  }
  abort ();
}

static bool
start_filter (void)
{
  struct channel_config cfg = { .dir = dir, .unit = UNIT,
                                .queue = 256 << 10, .block = BLOCK };
  struct persist_config pc = { .path = state_path, .nslots = NSLOTS,
                               .region_size = REGION,
                               .flush_device = dev_flush };
  struct channel_origin o;

  atomic_store (&state_fd, -1);
  if (channel_create (&cfg) == -1 || channel_size (DEV_SIZE) == -1
      || persist_open (&pc, &o) == -1)
    return false;
  channel_ready (&o);
  find_state_fd ();
  return service_start () == 0 && actlog_start () == 0;
}

/* Stop as a kill would: no clean stop; the threads first, so that
 * nothing is written after the instant taken.  Returns the durable state
 * file of that instant.
 */
static uint8_t *
crash_filter (size_t *len)
{
  uint8_t *snap;

  service_stop ();
  actlog_stop ();
  pthread_mutex_lock (&model_lock);
  snap = malloc (durable_len);
  memcpy (snap, durable, durable_len);
  *len = durable_len;
  atomic_store (&state_fd, -1);
  pthread_mutex_unlock (&model_lock);
  actlog_free ();
  channel_close ();
  return snap;
}

/* The device as a power cut could leave it: blocks written since the last
 * completed flush may have lost those writes.
 */
static uint64_t
power_cut_device (unsigned *seed)
{
  uint64_t b, n = 0;

  for (b = 0; b < NBLOCKS; b++)
    if (!dev_durable (b) && rand_r (seed) % 2) {
      memcpy (dev + b * BLOCK, dev_flushed + b * BLOCK, BLOCK);
      n++;
    }
  return n;
}

static bool
settled (void)
{
  char err[256];
  struct lwc *o = lwc_attach (dir, UNIT, LWC_OBSERVE, err, sizeof err);
  uint64_t d, p;
  bool s;

  if (o == NULL)
    return false;
  lwc_count_bits (o, &d, &p);
  s = lwc_mode (o) == LW_MODE_NORMAL && d == 0 && p == 0
      && atomic_load (&lwc_header (o)->head_seq)
         == atomic_load (&lwc_header (o)->tail_seq);
  lwc_detach (o);
  return s;
}

static bool
converge (void)
{
  int i;
  for (i = 0; i < 1000 && !settled (); i++)
    usleep (10000);
  usleep (50000);
  return settled () && memcmp (img, dev, DEV_SIZE) == 0;
}

int
main (int argc, char **argv)
{
  unsigned seed = argc > 1 ? atoi (argv[1]) : 4242;
  int rounds = argc > 2 ? atoi (argv[2]) : 3, round;
  uint64_t scans0;
  pthread_t t;

  if (mkdtemp (dir) == NULL)
    return 1;
  snprintf (state_path, sizeof state_path, "%s/state", dir);
  snprintf (scratch_path, sizeof scratch_path, "%s/scratch", dir);
  dev_fd = memfd_create ("device", 0);
  if (ftruncate (dev_fd, DEV_SIZE) == -1)
    return 1;
  dev = mmap (NULL, DEV_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, dev_fd, 0);
  livewatch_debug_al_idle_ms = 30;
  livewatch_debug_al_checkpoint_ms = 15;

  tap_ok (start_filter (), "filter up with a new state file");
  pthread_create (&t, NULL, consumer, NULL);
  write_some (&seed, 400);
  tap_ok (converge (), "first contact: the mirror converges (a full scan)");

  for (round = 1; round <= rounds; round++) {
    size_t len;
    uint8_t *snap;
    uint64_t reverted;
    int fd;

    write_some (&seed, 500);
    snap = crash_filter (&len);
    reverted = power_cut_device (&seed);
    fd = open (state_path, O_WRONLY | O_TRUNC);
    if (fd == -1 || lb_pwrite_all (fd, snap, len, 0) == -1)
      abort ();
    close (fd);
    free (snap);
    scans0 = full_scans;
    tap_ok (start_filter (), "round %d: crash and power cut (%" PRIu64
            " blocks lost their last writes): filter restarted", round,
            reverted);
    write_some (&seed, 100);
    tap_ok (converge (), "round %d: the mirror converges to the device",
            round);
    tap_ok (full_scans == scans0, "round %d: without a full scan", round);
  }

  /* Crashed again before any consumer came: the recovered set (and the
   * floor) must survive, so that the mirror still continues.
   */
  {
    size_t len;
    uint8_t *snap;
    int fd, k;

    atomic_store (&consumer_pause, true);
    write_some (&seed, 200);
    for (k = 0; k < 2; k++) {
      snap = crash_filter (&len);
      fd = open (state_path, O_WRONLY | O_TRUNC);
      if (fd == -1 || lb_pwrite_all (fd, snap, len, 0) == -1)
        abort ();
      close (fd);
      free (snap);
      if (!start_filter ())
        abort ();
      usleep (200000);          /* checkpoints, regions idle */
    }
    scans0 = full_scans;
    atomic_store (&consumer_pause, false);
    tap_ok (converge () && full_scans == scans0,
            "crashed twice with no consumer between: continues, converges");
  }

  /* A clean stop, and a start after it. */
  service_stop ();
  persist_close ();
  channel_close ();
  scans0 = full_scans;
  tap_ok (start_filter (), "clean stop and start");
  tap_ok (converge () && full_scans == scans0,
          "after the clean stop: converges without a full scan");

  atomic_store (&consumer_stop, true);
  pthread_join (t, NULL);
  printf ("# %" PRIu64 " checks, %" PRIu64 " crash states recovered (%"
          PRIu64 " fresh), %" PRIu64 " continues, %" PRIu64 " full scans\n",
          checks, crash_states, fresh_states, continues, full_scans);
  tap_ok (checks > 1000 && crash_states > checks,
          "the invariant was checked at %" PRIu64 " instants", checks);
  tap_ok (violations == 0, "no crash state misses a block (%" PRIu64
          " violations)%s%s", violations, violations ? ": " : "",
          first_violation);
  tap_ok (fresh_states == 0, "no crash state needs a full scan (%" PRIu64
          ")", fresh_states);
  service_stop ();
  persist_close ();
  channel_close ();
  {
    char p[512];
    lw_shm_path (p, sizeof p, dir, UNIT);
    unlink (p);
    unlink (state_path);
    unlink (scratch_path);
    rmdir (dir);
  }
  return tap_done ();
}
