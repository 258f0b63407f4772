/*
 * test_wal_faults.c -- fault injection at the syscall seam (util/sysio.h)
 * for the WAL: pwrite failing with EIO or ENOSPC, a short pwrite, fdatasync
 * failing, fallocate failing at rollover, rename failing at rollover, and
 * the interval flusher's fdatasync failing. For each, at many random
 * points: the failing call returns an error, the WAL stays failed
 * (TRB_EFAILED), and after a reopen the log holds exactly the batches whose
 * commit returned OK -- a prefix, nothing more, nothing less.
 * TRB_WAL_FAULT_ITERS sets the number of random points per fault (default 10).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "capture/wal.h"
#include "testutil.h"
#include "util/clock.h"
#include "util/sysio.h"

/* ---- deterministic records: a pure function of (lsn, generation) ---- */
typedef struct wtg_buf {
  char table[32];
  unsigned char keys[64];
  unsigned char old_img[400];
  unsigned char new_img[400];
} wtg_buf;

static inline uint64_t wtg_next(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static inline void wtg_fill(unsigned char *p, size_t n, uint64_t *s) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)wtg_next(s);
}

/* Fills r (pointers into b) with record (lsn, gen). shrink != 0 makes the
 * images shorter than the size the LSN alone would give. */
static inline void wtg_rec_ex(uint64_t lsn, uint32_t gen, int shrink, wtg_buf *b,
                              trb_wal_rec *r) {
  uint64_t ss = lsn * 0x9E3779B97F4A7C15ULL + 7;   /* sizes */
  uint64_t cs = ss ^ ((uint64_t)gen * 0xD1B54A32D192ED03ULL) ^ 0x5555; /* contents */
  wtg_next(&ss);
  wtg_next(&cs);
  memset(r, 0, sizeof *r);
  r->kind = (uint8_t)(1 + lsn % 7);
  r->table_id = lsn / 16 + gen;
  r->txn_id = lsn % 4 == 0 ? lsn * 3 + gen : 0;
  snprintf(b->table, sizeof b->table, "tbl%c-%03u", (char)('a' + lsn % 5), gen % 1000);
  r->table = b->table;
  r->table_len = strlen(b->table);
  r->keys_len = 1 + wtg_next(&ss) % 60;
  wtg_fill(b->keys, r->keys_len, &cs);
  r->keys = b->keys;
  int om = (int)((lsn / 7) % 3), nm = (int)((lsn / 21) % 3);
  size_t ol = 1 + wtg_next(&ss) % 399, nl = 1 + wtg_next(&ss) % 399;
  if (shrink) {
    ol = ol / 4 + 1;
    nl = nl / 4 + 1;
  }
  if (om == 1) r->old_img = b->old_img; /* present and empty */
  if (om == 2) {
    wtg_fill(b->old_img, ol, &cs);
    r->old_img = b->old_img;
    r->old_len = ol;
  }
  if (nm == 1) r->new_img = b->new_img;
  if (nm == 2) {
    wtg_fill(b->new_img, nl, &cs);
    r->new_img = b->new_img;
    r->new_len = nl;
  }
}

/* Generations >= 100 have the shrunken images. */
static inline void wtg_rec(uint64_t lsn, uint32_t gen, wtg_buf *b, trb_wal_rec *r) {
  wtg_rec_ex(lsn, gen, gen >= 100, b, r);
}

/* On-disk bytes of r (see the record layout in capture/wal.c). */
static inline uint64_t wtg_disk_size(const trb_wal_rec *r) {
  uint64_t n = 64 + r->table_len + r->keys_len + r->old_len + r->new_len;
  return (n + 7) & ~(uint64_t)7;
}

/* 1 when got equals record (lsn, gen). */
static inline int wtg_equal(const trb_wal_rec *got, uint64_t lsn, uint32_t gen) {
  wtg_buf b;
  trb_wal_rec e;
  wtg_rec(lsn, gen, &b, &e);
  if (got->lsn != lsn || got->kind != e.kind || got->flags != 0 ||
      got->table_id != e.table_id || got->txn_id != e.txn_id)
    return 0;
  if (got->table_len != e.table_len || memcmp(got->table, e.table, e.table_len)) return 0;
  if (got->keys_len != e.keys_len || memcmp(got->keys, e.keys, e.keys_len)) return 0;
  if ((got->old_img == NULL) != (e.old_img == NULL) || got->old_len != e.old_len) return 0;
  if (e.old_len && memcmp(got->old_img, e.old_img, e.old_len)) return 0;
  if ((got->new_img == NULL) != (e.new_img == NULL) || got->new_len != e.new_len) return 0;
  if (e.new_len && memcmp(got->new_img, e.new_img, e.new_len)) return 0;
  return 1;
}


#define MIB ((uint64_t)1 << 20)
#define MAXL 400000

enum fault_kind {
  F_PWRITE_EIO,
  F_PWRITE_ENOSPC,
  F_PWRITE_SHORT,
  F_FDATASYNC_EIO,
  F_FALLOCATE_ENOSPC,
  F_RENAME_EIO,
};

static const char *fault_names[] = {"pwrite EIO",         "pwrite ENOSPC", "short pwrite",
                                    "fdatasync EIO",      "fallocate ENOSPC",
                                    "rename EIO"};

/* Fault state, shared with the WAL's aux thread: atomics. */
static int g_kind;
static int g_armed;     /* calls fail once armed and the countdown ran out */
static int g_countdown; /* calls of the faulted kind still allowed after arming */
static int g_short_done;
static int g_hits;      /* injected failures */

static int should_fail(void) {
  if (!__atomic_load_n(&g_armed, __ATOMIC_ACQUIRE)) return 0;
  if (__atomic_sub_fetch(&g_countdown, 1, __ATOMIC_ACQ_REL) >= 0) return 0;
  __atomic_add_fetch(&g_hits, 1, __ATOMIC_RELAXED);
  return 1;
}

static ssize_t h_pwrite(int fd, const void *b, size_t n, off_t off) {
  if (should_fail()) {
    if (g_kind == F_PWRITE_SHORT && !__atomic_exchange_n(&g_short_done, 1, __ATOMIC_ACQ_REL) &&
        n > 1)
      return pwrite(fd, b, n / 2, off); /* half; the rest then fails */
    errno = g_kind == F_PWRITE_ENOSPC ? ENOSPC : EIO;
    return -1;
  }
  return pwrite(fd, b, n, off);
}

static uint64_t g_good_syncs; /* fdatasyncs that succeeded */

static int h_fdatasync(int fd) {
  if (should_fail()) {
    errno = EIO;
    return -1;
  }
  int rc = fdatasync(fd);
  if (rc == 0) __atomic_add_fetch(&g_good_syncs, 1, __ATOMIC_ACQ_REL);
  return rc;
}

static int h_fallocate(int fd, int mode, off_t off, off_t len) {
  if (should_fail()) {
    errno = ENOSPC;
    return -1;
  }
  return fallocate(fd, mode, off, len);
}

static int h_rename(const char *a, const char *b) {
  if (should_fail()) {
    errno = EIO;
    return -1;
  }
  return rename(a, b);
}

/* Installs the hook before the WAL (and its aux thread) exists. */
static void install(int kind) {
  trb_sysio_reset();
  __atomic_store_n(&g_kind, kind, __ATOMIC_RELEASE);
  __atomic_store_n(&g_armed, 0, __ATOMIC_RELEASE);
  __atomic_store_n(&g_short_done, 0, __ATOMIC_RELEASE);
  __atomic_store_n(&g_hits, 0, __ATOMIC_RELEASE);
  switch (kind) {
    case F_PWRITE_EIO:
    case F_PWRITE_ENOSPC:
    case F_PWRITE_SHORT: trb_sys.pwrite = h_pwrite; break;
    case F_FDATASYNC_EIO: trb_sys.fdatasync = h_fdatasync; break;
    case F_FALLOCATE_ENOSPC: trb_sys.fallocate = h_fallocate; break;
    case F_RENAME_EIO: trb_sys.rename = h_rename; break;
  }
}

static void arm(int countdown) {
  __atomic_store_n(&g_countdown, countdown, __ATOMIC_RELEASE);
  __atomic_store_n(&g_armed, 1, __ATOMIC_RELEASE);
}

static int iters(void) {
  const char *e = getenv("TRB_WAL_FAULT_ITERS");
  int n = e ? atoi(e) : 10;
  return n > 0 ? n : 10;
}

static trb_wal *open_wal(const char *dir, trb_wal_sync_mode mode, uint32_t ival) {
  trb_wal_opts o = {.dir = dir, .segment_size = MIB, .sync_mode = mode, .sync_interval_ms = ival};
  trb_wal *w = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_wal_open(&o, &w, &st);
  if (rc) print_error("open %s: %s: %s\n", dir, trb_err_name(rc), trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return w;
}

static trb_wal_rec g_recs[64];
static wtg_buf g_bufs[64];

/* Fills g_recs with n records from last+1 of generation gen. */
static void make_batch(trb_wal *w, size_t n, uint32_t gen) {
  uint64_t first = trb_wal_last_lsn(w) + 1;
  for (size_t i = 0; i < n; i++) wtg_rec(first + i, gen, &g_bufs[i], &g_recs[i]);
}

/* After reopen: exactly LSNs 1..last, each (lsn, gens[lsn]). */
static void check_log(trb_wal *w, const uint32_t *gens, uint64_t last) {
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_wal_last_lsn(w), last);
  trb_wal_reader *r = NULL;
  assert_int_equal(trb_wal_reader_open(w, 0, &r, &st), TRB_OK);
  uint64_t want = 1;
  trb_wal_rec rec;
  trb_err rc;
  while ((rc = trb_wal_reader_next(r, &rec, 0, &st)) == TRB_OK) {
    if (rec.lsn != want || !wtg_equal(&rec, rec.lsn, gens[rec.lsn]))
      print_error("LSN %llu (wanted %llu) is not what was acknowledged\n",
                  (unsigned long long)rec.lsn, (unsigned long long)want);
    assert_int_equal(rec.lsn, want);
    assert_true(wtg_equal(&rec, rec.lsn, gens[rec.lsn]));
    want++;
  }
  if (rc != TRB_ETIMEDOUT) print_error("reader: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_ETIMEDOUT);
  assert_int_equal(want - 1, last);
  trb_wal_reader_close(r);
}

static void verify_ok(const char *dir, uint64_t last) {
  trb_wal_verify_result vr;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_wal_verify(dir, &vr, &st), TRB_OK);
  if (!vr.ok)
    print_error("verify: %s offset %llu: %s\n", vr.bad_segment,
                (unsigned long long)vr.bad_offset, vr.reason);
  assert_true(vr.ok);
  assert_int_equal(vr.last_lsn, last);
}

/*
 * One run: batches until the fault (armed at a random batch, after a
 * random number of good calls) makes append or commit fail; then the WAL is
 * failed; then, with the seam reset, a reopen holds exactly what was
 * acknowledged, and appends continue after it.
 */
static void fault_run(int kind, uint64_t *seed, int run) {
  char *dir = trb_test_mkdtemp("walf");
  assert_non_null(dir);
  uint32_t *gens = calloc(MAXL, sizeof *gens);
  assert_non_null(gens);
  trb_status st;
  trb_status_init(&st);
  install(kind);
  trb_wal *w = open_wal(dir, TRB_WAL_SYNC_ALWAYS, 0);
  /* pwrite and fdatasync happen every batch; fallocate and rename only
   * around rollovers (about every 130 batches here) */
  int per_batch = kind <= F_FDATASYNC_EIO;
  int arm_at = (int)(trb_test_rand(seed) % (per_batch ? 300 : 200));
  int countdown = (int)(trb_test_rand(seed) % (per_batch ? 3 : 2));
  uint64_t acked = 0;
  trb_err frc = TRB_OK;
  const char *where = "";
  int b;
  for (b = 0; b < 5000; b++) {
    if (b == arm_at) arm(countdown);
    size_t n = 1 + trb_test_rand(seed) % 64;
    uint32_t gen = 1 + (uint32_t)b % 50;
    make_batch(w, n, gen);
    frc = trb_wal_append(w, g_recs, n, &st);
    if (frc) {
      where = "append";
      break;
    }
    for (size_t i = 0; i < n; i++) gens[g_recs[i].lsn] = gen;
    frc = trb_wal_commit(w, &st);
    if (frc) {
      where = "commit";
      break;
    }
    acked = trb_wal_last_lsn(w);
    trb_wal_publish(w, acked);
  }
  print_message("%s run %d: armed at batch %d (+%d calls), failed at batch %d in %s: %s; "
                "acknowledged up to LSN %llu\n",
                fault_names[kind], run, arm_at, countdown, b, where, trb_err_name(frc),
                (unsigned long long)acked);
  assert_true(frc != TRB_OK);       /* the fault surfaced */
  assert_true(frc != TRB_EFAILED);  /* as itself, the first time */
  assert_true(__atomic_load_n(&g_hits, __ATOMIC_ACQUIRE) > 0);
  assert_int_not_equal(trb_wal_failed(w), TRB_OK);
  /* sticky */
  make_batch(w, 3, 77);
  assert_int_equal(trb_wal_append(w, g_recs, 3, &st), TRB_EFAILED);
  assert_non_null(strstr(st.msg, "reopen"));
  assert_int_equal(trb_wal_commit(w, &st), TRB_EFAILED);
  assert_int_equal(trb_wal_append(w, g_recs, 3, &st), TRB_EFAILED);
  trb_wal_close(w);

  __atomic_store_n(&g_armed, 0, __ATOMIC_RELEASE);
  trb_sysio_reset();
  w = open_wal(dir, TRB_WAL_SYNC_ALWAYS, 0);
  check_log(w, gens, acked);
  /* appends continue right after the acknowledged prefix */
  for (int k = 0; k < 5; k++) {
    size_t n = 1 + trb_test_rand(seed) % 64;
    make_batch(w, n, 200 + (uint32_t)k);
    assert_int_equal(trb_wal_append(w, g_recs, n, &st), TRB_OK);
    for (size_t i = 0; i < n; i++) gens[g_recs[i].lsn] = 200 + (uint32_t)k;
    assert_int_equal(trb_wal_commit(w, &st), TRB_OK);
  }
  uint64_t last = trb_wal_last_lsn(w);
  trb_wal_close(w);
  w = open_wal(dir, TRB_WAL_SYNC_ALWAYS, 0);
  check_log(w, gens, last);
  trb_wal_close(w);
  verify_ok(dir, last);
  trb_test_rmrf(dir);
  free(dir);
  free(gens);
}

static void fault_loop(int kind) {
  uint64_t seed = trb_test_seed() ^ ((uint64_t)kind * 0x9E3779B97F4A7C15ULL);
  int n = iters();
  for (int i = 0; i < n; i++) fault_run(kind, &seed, i);
}

static void test_pwrite_eio(void **state) { (void)state; fault_loop(F_PWRITE_EIO); }
static void test_pwrite_enospc(void **state) { (void)state; fault_loop(F_PWRITE_ENOSPC); }
static void test_pwrite_short(void **state) { (void)state; fault_loop(F_PWRITE_SHORT); }
static void test_fdatasync_eio(void **state) { (void)state; fault_loop(F_FDATASYNC_EIO); }
static void test_fallocate_enospc(void **state) { (void)state; fault_loop(F_FALLOCATE_ENOSPC); }
static void test_rename_eio(void **state) { (void)state; fault_loop(F_RENAME_EIO); }

/*
 * The interval flusher's fdatasync fails in the background: the writer's
 * next call reports TRB_EFAILED, and a reopen holds a prefix of what was
 * appended (acknowledgement without a sync is what this mode trades away).
 */
static void test_interval_flusher_fails(void **state) {
  (void)state;
  uint64_t seed = trb_test_seed() ^ 0xABCDEF;
  for (int run = 0; run < 3; run++) {
    char *dir = trb_test_mkdtemp("walf");
    assert_non_null(dir);
    uint32_t *gens = calloc(MAXL, sizeof *gens);
    assert_non_null(gens);
    trb_status st;
    trb_status_init(&st);
    install(F_FDATASYNC_EIO);
    trb_wal *w = open_wal(dir, TRB_WAL_SYNC_INTERVAL, 5);
    uint64_t appended = 0, durable = 0, sync_mark = 0;
    int armed = 0;
    trb_err rc = TRB_OK;
    int64_t dl = trb_mono_ns() + 10000 * 1000000LL; /* safety net */
    int b;
    for (b = 0; trb_mono_ns() < dl; b++) {
      /* After batch 20, note what was appended; two more successful syncs
       * later (serialised, so the second began after the note) it is
       * durable. Then the fault. */
      if (b == 20) {
        durable = appended;
        sync_mark = __atomic_load_n(&g_good_syncs, __ATOMIC_ACQUIRE);
      }
      if (b > 20 && !armed && __atomic_load_n(&g_good_syncs, __ATOMIC_ACQUIRE) >= sync_mark + 2) {
        arm(0);
        armed = 1;
      }
      size_t n = 1 + trb_test_rand(&seed) % 8;
      make_batch(w, n, 1 + (uint32_t)b % 50);
      rc = trb_wal_append(w, g_recs, n, &st);
      if (rc) break;
      for (size_t i = 0; i < n; i++) gens[g_recs[i].lsn] = 1 + (uint32_t)b % 50;
      appended = trb_wal_last_lsn(w);
      rc = trb_wal_commit(w, &st);
      if (rc) break;
      trb_wal_publish(w, appended);
    }
    assert_true(rc == TRB_EFAILED || rc == TRB_EIO);
    assert_int_equal(trb_wal_failed(w), TRB_EIO);
    trb_wal_close(w);
    __atomic_store_n(&g_armed, 0, __ATOMIC_RELEASE);
    trb_sysio_reset();
    w = open_wal(dir, TRB_WAL_SYNC_ALWAYS, 0);
    uint64_t last = trb_wal_last_lsn(w);
    print_message("interval run %d: durable %llu, appended up to %llu, %llu after reopen\n",
                  run, (unsigned long long)durable, (unsigned long long)appended,
                  (unsigned long long)last);
    assert_true(armed);
    assert_true(last <= appended);
    assert_true(last >= durable); /* what a sync covered survived the failure */
    check_log(w, gens, last);
    trb_wal_close(w);
    verify_ok(dir, last);
    trb_test_rmrf(dir);
    free(dir);
    free(gens);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pwrite_eio),
      cmocka_unit_test(test_pwrite_enospc),
      cmocka_unit_test(test_pwrite_short),
      cmocka_unit_test(test_fdatasync_eio),
      cmocka_unit_test(test_fallocate_enospc),
      cmocka_unit_test(test_rename_eio),
      cmocka_unit_test(test_interval_flusher_fails),
  };
  trb_test_seed();
  return cmocka_run_group_tests_name("wal_faults", tests, NULL, NULL);
}
