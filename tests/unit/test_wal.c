/*
 * test_wal.c -- the WAL (capture/wal.c, capture/wal_reader.c): round trips
 * of every record kind and image shape, LSN and commit-time order, reopen,
 * segment rollover, torn tails (and that nothing stale comes back), bad
 * records in the middle, unknown versions, reader tailing, close, and the
 * interval sync mode. Fault injection is in test_wal_faults.c.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "capture/wal.h"
#include "capture/wal_int.h" /* only to see whether a reader is blocked */
#include "testutil.h"
#include "util/clock.h"
#include "util/crc32c.h"
#include "util/sysio.h"

/* ---- deterministic records: a pure function of (lsn, generation) ----
 * Sizes depend only on the LSN (a rewrite of the same LSN with another
 * generation has exactly the same on-disk size), contents on both. Every
 * kind and absent / empty / non-empty old and new images appear. */
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


/* ---- helpers ---- */

#define MIB ((uint64_t)1 << 20)
#define SEG1 "wal-0000000000000001.seg"
#define MAXL 200000

static int setup_dir(void **state) {
  char *d = trb_test_mkdtemp("wal");
  if (!d) return -1;
  *state = d;
  return 0;
}

static int teardown_dir(void **state) {
  trb_sysio_reset();
  trb_test_rmrf(*state);
  free(*state);
  return 0;
}

static trb_err open_rc(const char *dir, uint64_t seg, trb_wal_sync_mode mode, uint32_t ival,
                       int readonly, trb_wal **w, trb_status *st) {
  trb_wal_opts o = {.dir = dir, .segment_size = seg, .sync_mode = mode,
                    .sync_interval_ms = ival, .readonly = readonly};
  trb_status_init(st);
  return trb_wal_open(&o, w, st);
}

static trb_wal *open_ok(const char *dir, uint64_t seg) {
  trb_wal *w = NULL;
  trb_status st;
  trb_err rc = open_rc(dir, seg, TRB_WAL_SYNC_ALWAYS, 0, 0, &w, &st);
  if (rc) print_error("open: %s: %s\n", trb_err_name(rc), trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  assert_non_null(w);
  return w;
}

/* Appends n records (last+1 ...) of generation gen as one batch, commits and
 * publishes; remembers the generation of each LSN in gens. */
static void put_batch(trb_wal *w, size_t n, uint32_t gen, uint32_t *gens) {
  static trb_wal_rec recs[256];
  static wtg_buf bufs[256];
  trb_status st;
  trb_status_init(&st);
  assert_true(n > 0 && n <= 256);
  uint64_t first = trb_wal_last_lsn(w) + 1;
  for (size_t i = 0; i < n; i++) wtg_rec(first + i, gen, &bufs[i], &recs[i]);
  trb_err rc = trb_wal_append(w, recs, n, &st);
  if (rc) print_error("append: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(recs[i].lsn, first + i);
    assert_true(recs[i].commit_us == recs[0].commit_us);
    if (gens) gens[first + i] = gen;
  }
  assert_int_equal(trb_wal_last_lsn(w), first + n - 1);
  rc = trb_wal_commit(w, &st);
  if (rc) print_error("commit: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  trb_wal_publish(w, first + n - 1);
}

static unsigned seen_kinds, seen_old, seen_new;

static void note_shapes(const trb_wal_rec *r) {
  seen_kinds |= 1u << r->kind;
  seen_old |= 1u << (!r->old_img ? 0 : r->old_len ? 2 : 1);
  seen_new |= 1u << (!r->new_img ? 0 : r->new_len ? 2 : 1);
}

/* Reads from `from` to the published end: every record must be (lsn,
 * gens[lsn]), LSNs consecutive from first to last, commit times never
 * going back. */
static void read_all(trb_wal *w, uint64_t from, const uint32_t *gens, uint64_t first,
                     uint64_t last) {
  trb_wal_reader *r = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_wal_reader_open(w, from, &r, &st);
  if (rc) print_error("reader_open: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  uint64_t want = first;
  int64_t prev_us = 0;
  trb_wal_rec rec;
  while ((rc = trb_wal_reader_next(r, &rec, 0, &st)) == TRB_OK) {
    if (rec.lsn != want || !wtg_equal(&rec, rec.lsn, gens[rec.lsn]))
      print_error("record at LSN %llu (wanted %llu) differs\n", (unsigned long long)rec.lsn,
                  (unsigned long long)want);
    assert_int_equal(rec.lsn, want);
    assert_true(wtg_equal(&rec, rec.lsn, gens[rec.lsn]));
    assert_true(rec.commit_us >= prev_us);
    prev_us = rec.commit_us;
    note_shapes(&rec);
    want++;
  }
  if (rc != TRB_ETIMEDOUT) print_error("reader_next: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_ETIMEDOUT);
  assert_int_equal(want - 1, last);
  trb_wal_reader_close(r);
}

static char *seg_file(const char *dir, uint64_t first) {
  char *p = NULL;
  assert_true(asprintf(&p, "%s/wal-%016llx.seg", dir, (unsigned long long)first) > 0);
  return p;
}

static void patch_file(const char *path, uint64_t off, const void *b, size_t n) {
  int fd = open(path, O_WRONLY);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, b, n, (off_t)off), (ssize_t)n);
  close(fd);
}

static void flip_byte(const char *path, uint64_t off) {
  unsigned char c;
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
  c ^= 0x5a;
  assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
  close(fd);
}

static uint64_t file_size(const char *path) {
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  return (uint64_t)sb.st_size;
}

static int file_exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

/* Offset of LSN lsn in segment `first` when every record there is of a
 * non-shrunk generation (sizes depend only on the LSN). */
static uint64_t rec_off(uint64_t first, uint64_t lsn) {
  uint64_t off = 64;
  wtg_buf b;
  trb_wal_rec r;
  for (uint64_t l = first; l < lsn; l++) {
    wtg_rec(l, 1, &b, &r);
    off += wtg_disk_size(&r);
  }
  return off;
}

static uint64_t rec_size(uint64_t lsn) {
  wtg_buf b;
  trb_wal_rec r;
  wtg_rec(lsn, 1, &b, &r);
  return wtg_disk_size(&r);
}

static void read_file_or_fail(const char *path, char **buf, size_t *len) {
  *buf = trb_test_read_file(path, len);
  assert_non_null(*buf);
}

/* ---- round trip ---- */

static void test_roundtrip(void **state) {
  const char *dir = *state;
  uint64_t seed = trb_test_seed();
  uint32_t *gens = calloc(MAXL, sizeof *gens);
  assert_non_null(gens);
  seen_kinds = seen_old = seen_new = 0;

  trb_wal *w = open_ok(dir, 0); /* default segment size */
  assert_int_equal(trb_wal_last_lsn(w), 0);
  assert_int_equal(trb_wal_first_lsn(w), 0);
  assert_int_equal(trb_wal_failed(w), TRB_OK);
  uint64_t total = 0;
  for (int b = 0; b < 60; b++) {
    size_t n = 1 + trb_test_rand(&seed) % 64;
    put_batch(w, n, 1, gens);
    total += n;
  }
  assert_int_equal(trb_wal_last_lsn(w), total);
  assert_int_equal(trb_wal_first_lsn(w), 1);
  trb_wal_stats s;
  trb_wal_get_stats(w, &s);
  assert_int_equal(s.records, total);
  assert_int_equal(s.appends, 60);
  assert_true(s.syncs >= 60);
  assert_true(s.bytes > total * 64);
  assert_int_equal(s.segments, 1);
  read_all(w, 0, gens, 1, total);
  read_all(w, 1, gens, 1, total);
  /* every kind and every image shape went through */
  for (int k = 1; k <= 7; k++) assert_true(seen_kinds & (1u << k));
  assert_int_equal(seen_old, 7);
  assert_int_equal(seen_new, 7);
  assert_string_equal(trb_wal_kind_name(TRB_WAL_MODIFY), "MODIFY");
  assert_string_equal(trb_wal_kind_name(TRB_WAL_TXN_COMMIT), "TXN_COMMIT");
  assert_string_equal(trb_wal_kind_name(99), "?");
  trb_wal_close(w);

  /* reopen: the LSNs continue */
  w = open_ok(dir, 0);
  assert_int_equal(trb_wal_last_lsn(w), total);
  assert_int_equal(trb_wal_first_lsn(w), 1);
  read_all(w, 0, gens, 1, total);
  for (int b = 0; b < 10; b++) {
    size_t n = 1 + trb_test_rand(&seed) % 64;
    put_batch(w, n, 2, gens);
    total += n;
  }
  read_all(w, 0, gens, 1, total);
  trb_wal_close(w);

  w = open_ok(dir, 0);
  assert_int_equal(trb_wal_last_lsn(w), total);
  read_all(w, 0, gens, 1, total);
  trb_wal_close(w);

  trb_wal_verify_result vr;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_wal_verify(dir, &vr, &st), TRB_OK);
  assert_true(vr.ok);
  assert_false(vr.torn_tail);
  assert_int_equal(vr.records, total);
  assert_int_equal(vr.segments, 1);
  assert_int_equal(vr.first_lsn, 1);
  assert_int_equal(vr.last_lsn, total);
  free(gens);
}

/* Appended but unpublished records are invisible; timeouts time out. */
static void test_publish_visibility(void **state) {
  const char *dir = *state;
  trb_wal *w = open_ok(dir, MIB);
  trb_wal_reader *r = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_wal_rec rec, recs[3];
  wtg_buf bufs[3];
  assert_int_equal(trb_wal_reader_open(w, 0, &r, &st), TRB_OK);
  assert_int_equal(trb_wal_reader_next(r, &rec, 0, &st), TRB_ETIMEDOUT);
  for (int i = 0; i < 3; i++) wtg_rec((uint64_t)i + 1, 1, &bufs[i], &recs[i]);
  assert_int_equal(trb_wal_append(w, recs, 3, &st), TRB_OK);
  assert_int_equal(trb_wal_commit(w, &st), TRB_OK);
  assert_int_equal(trb_wal_reader_next(r, &rec, 0, &st), TRB_ETIMEDOUT);
  int64_t t0 = trb_mono_ns();
  assert_int_equal(trb_wal_reader_next(r, &rec, 30, &st), TRB_ETIMEDOUT);
  assert_true(trb_mono_ns() - t0 >= 29 * 1000000LL);
  trb_wal_publish(w, 2);
  assert_int_equal(trb_wal_reader_next(r, &rec, 0, &st), TRB_OK);
  assert_int_equal(rec.lsn, 1);
  assert_true(wtg_equal(&rec, 1, 1));
  assert_int_equal(trb_wal_reader_next(r, &rec, 0, &st), TRB_OK);
  assert_int_equal(rec.lsn, 2);
  assert_int_equal(trb_wal_reader_next(r, &rec, 0, &st), TRB_ETIMEDOUT);
  trb_wal_publish(w, 100); /* clamped to the last appended LSN */
  assert_int_equal(trb_wal_reader_next(r, &rec, 0, &st), TRB_OK);
  assert_int_equal(rec.lsn, 3);
  assert_int_equal(trb_wal_reader_next(r, &rec, 0, &st), TRB_ETIMEDOUT);
  trb_wal_reader_close(r);
  trb_wal_close(w);
}

/* Argument errors do not fail the WAL; oversized records are refused. */
static void test_limits(void **state) {
  const char *dir = *state;
  trb_wal *w = open_ok(dir, MIB);
  trb_status st;
  trb_status_init(&st);
  unsigned char small[16] = {0};
  trb_wal_rec r = {.kind = TRB_WAL_INSERT, .table = "t", .table_len = 1, .keys = small,
                   .keys_len = 1, .new_img = small, .new_len = (size_t)17 << 20};
  assert_int_equal(trb_wal_append(w, &r, 1, &st), TRB_ELIMIT);
  r.new_len = (size_t)(MIB + MIB / 2); /* under 16 MiB but more than a segment holds */
  assert_int_equal(trb_wal_append(w, &r, 1, &st), TRB_ELIMIT);
  r.new_len = 4;
  r.kind = 99;
  assert_int_equal(trb_wal_append(w, &r, 1, &st), TRB_EINVAL);
  r.kind = TRB_WAL_INSERT;
  r.old_img = NULL;
  r.old_len = 3;
  assert_int_equal(trb_wal_append(w, &r, 1, &st), TRB_EINVAL);
  assert_int_equal(trb_wal_failed(w), TRB_OK);
  assert_int_equal(trb_wal_last_lsn(w), 0);
  uint32_t gens[8] = {0};
  put_batch(w, 5, 1, gens);
  read_all(w, 0, gens, 1, 5);
  trb_wal_close(w);
}

/* One writer per directory; a read-only handle may look alongside. */
static void test_single_writer(void **state) {
  const char *dir = *state;
  uint32_t gens[16] = {0};
  trb_wal *w = open_ok(dir, MIB), *w2 = NULL, *ro = NULL;
  trb_status st;
  put_batch(w, 4, 1, gens);
  assert_int_equal(open_rc(dir, MIB, TRB_WAL_SYNC_ALWAYS, 0, 0, &w2, &st), TRB_EINUSE);
  assert_null(w2);
  assert_int_equal(open_rc(dir, MIB, TRB_WAL_SYNC_ALWAYS, 0, 1, &ro, &st), TRB_OK);
  assert_int_equal(trb_wal_last_lsn(ro), 4);
  read_all(ro, 0, gens, 1, 4);
  trb_wal_rec rec;
  wtg_buf b;
  wtg_rec(5, 1, &b, &rec);
  assert_int_equal(trb_wal_append(ro, &rec, 1, &st), TRB_EINVAL);
  trb_wal_close(ro);
  trb_wal_close(w);
  /* a missing directory read-only is not created; for writing it is,
   * parents included */
  char *missing = NULL, *nested = NULL;
  assert_true(asprintf(&missing, "%s/nope", dir) > 0);
  assert_int_equal(open_rc(missing, MIB, TRB_WAL_SYNC_ALWAYS, 0, 1, &ro, &st), TRB_ENOTFOUND);
  assert_false(file_exists(missing));
  assert_true(asprintf(&nested, "%s/a/b/wal", dir) > 0);
  w = open_ok(nested, MIB);
  put_batch(w, 2, 1, gens);
  trb_wal_close(w);
  w = open_ok(nested, MIB);
  assert_int_equal(trb_wal_last_lsn(w), 2);
  trb_wal_close(w);
  free(missing);
  free(nested);
}

/* ---- segments ---- */

static void test_rollover(void **state) {
  const char *dir = *state;
  uint64_t seed = trb_test_seed() ^ 0x77;
  uint32_t *gens = calloc(MAXL, sizeof *gens);
  assert_non_null(gens);
  trb_wal *w = open_ok(dir, MIB);
  uint64_t total = 0;
  while (total < 20000) {
    size_t n = 1 + trb_test_rand(&seed) % 64;
    put_batch(w, n, 1, gens);
    total += n;
  }
  trb_wal_stats s;
  trb_wal_get_stats(w, &s);
  assert_true(s.segments >= 4);
  read_all(w, 0, gens, 1, total);

  /* the segment files and their first LSNs */
  uint64_t firsts[64];
  size_t nf = 0;
  for (uint64_t l = 1; l <= total; l++) {
    char *p = seg_file(dir, l);
    if (file_exists(p)) {
      assert_true(nf < 64);
      firsts[nf++] = l;
      assert_int_equal(file_size(p), MIB);
    }
    free(p);
  }
  assert_int_equal(nf, s.segments);
  assert_int_equal(firsts[0], 1);

  /* readers that start in the middle, at segment starts and just before */
  for (size_t k = 1; k < nf; k++) {
    read_all(w, firsts[k], gens, firsts[k], total);
    read_all(w, firsts[k] - 1, gens, firsts[k] - 1, total);
  }
  for (int i = 0; i < 5; i++) {
    uint64_t from = 1 + trb_test_rand(&seed) % total;
    read_all(w, from, gens, from, total);
  }
  trb_wal_close(w);

  w = open_ok(dir, MIB);
  assert_int_equal(trb_wal_last_lsn(w), total);
  read_all(w, 0, gens, 1, total);
  for (int b = 0; b < 50; b++) {
    put_batch(w, 64, 3, gens);
    total += 64;
  }
  read_all(w, 0, gens, 1, total);
  trb_wal_get_stats(w, &s);
  trb_wal_close(w);

  trb_wal_verify_result vr;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_wal_verify(dir, &vr, &st), TRB_OK);
  assert_true(vr.ok);
  assert_int_equal(vr.records, total);
  assert_int_equal(vr.segments, s.segments);

  /* a bad record in the first segment, with later segments: corruption */
  char *p1 = seg_file(dir, 1);
  uint64_t off = rec_off(1, 100);
  flip_byte(p1, off + 70);
  assert_int_equal(open_rc(dir, MIB, TRB_WAL_SYNC_ALWAYS, 0, 0, &w, &st), TRB_ECORRUPT);
  assert_non_null(strstr(st.msg, SEG1));
  char want[64];
  snprintf(want, sizeof want, "offset %llu:", (unsigned long long)off);
  assert_non_null(strstr(st.msg, want));
  assert_non_null(strstr(st.msg, "expected LSN 100"));
  assert_int_equal(trb_wal_verify(dir, &vr, &st), TRB_OK);
  assert_false(vr.ok);
  assert_false(vr.torn_tail);
  assert_string_equal(vr.bad_segment, SEG1);
  assert_int_equal(vr.bad_offset, off);
  assert_int_equal(vr.bad_lsn, 100);
  assert_int_equal(vr.records, 99);

  /* dropping the first segment (as retention will) leaves a good log that
   * starts later; older LSNs are then not found */
  assert_int_equal(unlink(p1), 0);
  free(p1);
  w = open_ok(dir, MIB);
  assert_int_equal(trb_wal_first_lsn(w), firsts[1]);
  assert_int_equal(trb_wal_last_lsn(w), total);
  trb_wal_reader *r = NULL;
  assert_int_equal(trb_wal_reader_open(w, 1, &r, &st), TRB_ENOTFOUND);
  assert_null(r);
  snprintf(want, sizeof want, "%llu", (unsigned long long)firsts[1]);
  assert_non_null(strstr(st.msg, want));
  read_all(w, 0, gens, firsts[1], total);
  read_all(w, firsts[1], gens, firsts[1], total);
  trb_wal_close(w);
  free(gens);
}

/* A last segment with a bad header and no records is an unfinished
 * rollover and is removed; a bad header before the last is corruption. */
static void test_torn_rollover(void **state) {
  const char *dir = *state;
  uint32_t gens[64] = {0};
  trb_status st;
  trb_wal *w = open_ok(dir, MIB);
  put_batch(w, 20, 1, gens);
  trb_wal_close(w);

  char *fake = seg_file(dir, 21);
  int fd = open(fake, O_WRONLY | O_CREAT, 0644);
  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, (off_t)MIB), 0);
  close(fd);
  w = open_ok(dir, MIB);
  assert_false(file_exists(fake));
  assert_int_equal(trb_wal_last_lsn(w), 20);
  put_batch(w, 10, 1, gens);
  read_all(w, 0, gens, 1, 30);
  trb_wal_close(w);

  /* header garbage with records behind it is not a torn rollover */
  w = open_ok(dir, MIB);
  for (int b = 0; b < 100; b++) put_batch(w, 64, 1, NULL); /* roll over */
  trb_wal_stats s;
  trb_wal_get_stats(w, &s);
  assert_true(s.segments >= 2);
  trb_wal_close(w);
  char *p1 = seg_file(dir, 1);
  unsigned char zeros[64] = {0};
  patch_file(p1, 0, zeros, sizeof zeros);
  assert_int_equal(open_rc(dir, MIB, TRB_WAL_SYNC_ALWAYS, 0, 0, &w, &st), TRB_ECORRUPT);
  assert_non_null(strstr(st.msg, SEG1));
  free(p1);
  free(fake);
}

/* A bad last record in a segment that another named segment follows is
 * corruption even when the next segment has no records yet: a segment is
 * named only after the one before it was synced. */
static void test_bad_record_before_named_segment(void **state) {
  const char *dir = *state;
  trb_status st;
  trb_wal *w = open_ok(dir, MIB);
  while (1) {
    trb_wal_stats s;
    trb_wal_get_stats(w, &s);
    if (s.segments >= 2) break;
    put_batch(w, 64, 1, NULL);
  }
  trb_wal_close(w);
  uint64_t f2 = 0;
  for (uint64_t l = 2; l < 100000 && !f2; l++) {
    char *p = seg_file(dir, l);
    if (file_exists(p)) f2 = l;
    free(p);
  }
  assert_true(f2 > 1);
  /* segment 2 keeps its header, loses its records */
  char *p2 = seg_file(dir, f2), *p1 = seg_file(dir, 1);
  unsigned char *z = calloc(1, MIB - 64);
  assert_non_null(z);
  patch_file(p2, 64, z, MIB - 64);
  free(z);
  flip_byte(p1, rec_off(1, f2 - 1) + 70);
  assert_int_equal(open_rc(dir, MIB, TRB_WAL_SYNC_ALWAYS, 0, 0, &w, &st), TRB_ECORRUPT);
  char want[96];
  snprintf(want, sizeof want, "segment %s offset %llu: ", SEG1,
           (unsigned long long)rec_off(1, f2 - 1));
  if (!strstr(st.msg, want)) print_error("message: %s\n", st.msg);
  assert_non_null(strstr(st.msg, want));
  trb_wal_verify_result vr;
  assert_int_equal(trb_wal_verify(dir, &vr, &st), TRB_OK);
  assert_false(vr.ok);
  assert_false(vr.torn_tail);
  assert_int_equal(vr.bad_lsn, f2 - 1);
  free(p1);
  free(p2);
}

/* Two bad-header segments: the first one is not the last -> corruption. */
static void test_bad_header_not_last(void **state) {
  const char *dir = *state;
  uint32_t gens[64] = {0};
  trb_status st;
  trb_wal *w = open_ok(dir, MIB);
  put_batch(w, 20, 1, gens);
  trb_wal_close(w);
  uint64_t firsts[2] = {21, 300};
  for (int i = 0; i < 2; i++) {
    char *p = seg_file(dir, firsts[i]);
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)MIB), 0);
    close(fd);
    free(p);
  }
  assert_int_equal(open_rc(dir, MIB, TRB_WAL_SYNC_ALWAYS, 0, 0, &w, &st), TRB_ECORRUPT);
  assert_non_null(strstr(st.msg, "wal-0000000000000015.seg"));
}

/* ---- torn tails ---- */

enum { TORN_TRUNCATE, TORN_GARBAGE, TORN_FLIP_LAST, TORN_FLIP_IN_LAST_BATCH, TORN_ZERO_HDR };

/*
 * Four committed batches of 10 and a last batch of 10 (LSNs 41..50, whose
 * durable_lsn is 40), then damage, reopen, and appends over the cut.
 */
static void torn_case(const char *dir, int mode) {
  uint32_t gens[256] = {0};
  trb_status st;
  trb_wal *w = open_ok(dir, MIB);
  for (int b = 0; b < 5; b++) put_batch(w, 10, 1, gens);
  trb_wal_close(w);
  char *p1 = seg_file(dir, 1);
  uint64_t expect = 0;
  unsigned char junk[100];
  uint64_t js = 99;
  switch (mode) {
    case TORN_TRUNCATE: {
      int fd = open(p1, O_WRONLY);
      assert_true(fd >= 0);
      assert_int_equal(ftruncate(fd, (off_t)(rec_off(1, 48) + 30)), 0);
      close(fd);
      expect = 47;
      break;
    }
    case TORN_GARBAGE:
      wtg_fill(junk, sizeof junk, &js);
      patch_file(p1, rec_off(1, 51), junk, sizeof junk);
      expect = 50;
      break;
    case TORN_FLIP_LAST:
      flip_byte(p1, rec_off(1, 50) + 80);
      expect = 49;
      break;
    case TORN_FLIP_IN_LAST_BATCH: /* 45..50 follow, never known durable */
      flip_byte(p1, rec_off(1, 44) + 66);
      expect = 43;
      break;
    case TORN_ZERO_HDR: { /* the header page never made it, the rest did */
      unsigned char z[64] = {0};
      patch_file(p1, rec_off(1, 46), z, sizeof z);
      expect = 45;
      break;
    }
  }
  /* verify calls it a torn tail; a read-only open stops there and changes
   * nothing */
  trb_wal_verify_result vr;
  trb_status_init(&st);
  assert_int_equal(trb_wal_verify(dir, &vr, &st), TRB_OK);
  assert_false(vr.ok);
  assert_true(vr.torn_tail);
  assert_int_equal(vr.bad_lsn, expect + 1);
  assert_int_equal(vr.records, expect);
  assert_string_equal(vr.bad_segment, SEG1);
  char *before = NULL, *after = NULL;
  size_t blen = 0, alen = 0;
  read_file_or_fail(p1, &before, &blen);
  trb_wal *ro = NULL;
  assert_int_equal(open_rc(dir, MIB, TRB_WAL_SYNC_ALWAYS, 0, 1, &ro, &st), TRB_OK);
  assert_int_equal(trb_wal_last_lsn(ro), expect);
  read_all(ro, 0, gens, 1, expect);
  trb_wal_close(ro);
  read_file_or_fail(p1, &after, &alen);
  assert_int_equal(alen, blen);
  assert_memory_equal(before, after, blen);
  free(before);
  free(after);

  /* a writable open cuts the tail */
  w = open_ok(dir, MIB);
  assert_int_equal(trb_wal_last_lsn(w), expect);
  assert_int_equal(file_size(p1), MIB);
  read_all(w, 0, gens, 1, expect);
  /* One record of generation 2 has exactly the size of the old record at
   * that LSN, so the old next record would line up right after it, with
   * the right LSN and a good CRC, had the cut not cleared it. */
  put_batch(w, 1, 2, gens);
  assert_int_equal(rec_size(expect + 1), rec_off(1, expect + 2) - rec_off(1, expect + 1));
  trb_wal_close(w);
  w = open_ok(dir, MIB);
  assert_int_equal(trb_wal_last_lsn(w), expect + 1);
  read_all(w, 0, gens, 1, expect + 1);
  /* shorter records over the old region */
  put_batch(w, 3, 150, gens);
  trb_wal_close(w);
  w = open_ok(dir, MIB);
  assert_int_equal(trb_wal_last_lsn(w), expect + 4);
  read_all(w, 0, gens, 1, expect + 4);
  put_batch(w, 10, 3, gens);
  trb_wal_close(w);
  w = open_ok(dir, MIB);
  assert_int_equal(trb_wal_last_lsn(w), expect + 14);
  read_all(w, 0, gens, 1, expect + 14);
  trb_wal_close(w);
  assert_int_equal(trb_wal_verify(dir, &vr, &st), TRB_OK);
  assert_true(vr.ok);
  assert_int_equal(vr.records, expect + 14);
  free(p1);
}

static void test_torn_truncate(void **state) { torn_case(*state, TORN_TRUNCATE); }
static void test_torn_garbage(void **state) { torn_case(*state, TORN_GARBAGE); }
static void test_torn_flip_last(void **state) { torn_case(*state, TORN_FLIP_LAST); }
static void test_torn_flip_in_last_batch(void **state) {
  torn_case(*state, TORN_FLIP_IN_LAST_BATCH);
}
static void test_torn_zero_header(void **state) { torn_case(*state, TORN_ZERO_HDR); }

/* ---- corruption in the middle ---- */

static void corrupt_case(const char *dir, int zero_header) {
  uint32_t gens[256] = {0};
  trb_status st;
  trb_wal *w = open_ok(dir, MIB);
  for (int b = 0; b < 10; b++) put_batch(w, 10, 1, gens);
  trb_wal_close(w);
  char *p1 = seg_file(dir, 1);
  uint64_t off = rec_off(1, 15);
  if (zero_header) {
    unsigned char z[64] = {0};
    patch_file(p1, off, z, sizeof z);
  } else {
    flip_byte(p1, off + 64 + 3);
  }
  char *before = NULL, *after = NULL;
  size_t blen = 0, alen = 0;
  read_file_or_fail(p1, &before, &blen);
  for (int ro = 0; ro <= 1; ro++) {
    assert_int_equal(open_rc(dir, MIB, TRB_WAL_SYNC_ALWAYS, 0, ro, &w, &st), TRB_ECORRUPT);
    assert_null(w);
    char want[96];
    snprintf(want, sizeof want, "segment %s offset %llu: ", SEG1, (unsigned long long)off);
    if (!strstr(st.msg, want)) print_error("message: %s\n", st.msg);
    assert_non_null(strstr(st.msg, want));
    assert_non_null(strstr(st.msg, "(expected LSN 15)"));
    if (!zero_header) assert_non_null(strstr(st.msg, "CRC mismatch"));
  }
  read_file_or_fail(p1, &after, &alen); /* nothing changed */
  assert_int_equal(alen, blen);
  assert_memory_equal(before, after, blen);
  free(before);
  free(after);
  trb_wal_verify_result vr;
  assert_int_equal(trb_wal_verify(dir, &vr, &st), TRB_OK);
  assert_false(vr.ok);
  assert_false(vr.torn_tail);
  assert_int_equal(vr.segments, 1);
  assert_int_equal(vr.records, 14);
  assert_string_equal(vr.bad_segment, SEG1);
  assert_int_equal(vr.bad_offset, off);
  assert_int_equal(vr.bad_lsn, 15);
  assert_true(vr.reason[0] != '\0');
  free(p1);
}

static void test_corrupt_middle(void **state) { corrupt_case(*state, 0); }
static void test_corrupt_zeroed_header(void **state) { corrupt_case(*state, 1); }

static void test_unknown_version(void **state) {
  const char *dir = *state;
  uint32_t gens[64] = {0};
  trb_status st;
  trb_wal *w = open_ok(dir, MIB);
  put_batch(w, 5, 1, gens);
  trb_wal_close(w);
  char *p1 = seg_file(dir, 1);
  unsigned char hdr[64];
  int fd = open(p1, O_RDWR);
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, hdr, 64, 0), 64);
  assert_memory_equal(hdr, "TRBWALSG", 8);
  hdr[8] = 2; /* version 2, with a CRC that matches */
  uint32_t crc = trb_crc32c(0, hdr, 60);
  for (int i = 0; i < 4; i++) hdr[60 + i] = (unsigned char)(crc >> (8 * i));
  assert_int_equal(pwrite(fd, hdr, 64, 0), 64);
  close(fd);
  for (int ro = 0; ro <= 1; ro++) {
    assert_int_equal(open_rc(dir, MIB, TRB_WAL_SYNC_ALWAYS, 0, ro, &w, &st), TRB_EVERSION);
    assert_non_null(strstr(st.msg, "version 2"));
    assert_non_null(strstr(st.msg, SEG1));
  }
  trb_wal_verify_result vr;
  assert_int_equal(trb_wal_verify(dir, &vr, &st), TRB_EVERSION);
  free(p1);
}

/* ---- readers and threads ---- */

typedef struct tail_ctx {
  trb_wal *w;
  uint64_t from, target;
  const uint32_t *gens;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t got;
  int err;
  char errmsg[700];
} tail_ctx;

static void tail_ctx_init(tail_ctx *c, trb_wal *w, uint64_t from, uint64_t target,
                          const uint32_t *gens) {
  memset(c, 0, sizeof *c);
  c->w = w;
  c->from = from;
  c->target = target;
  c->gens = gens;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, &ca);
  pthread_condattr_destroy(&ca);
}

static void tail_ctx_fini(tail_ctx *c) {
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
}

/* Reads (blocking, no timeout) until target; checks order and contents. */
static void *tail_main(void *arg) {
  tail_ctx *c = arg;
  trb_wal_reader *r = NULL;
  trb_status st;
  trb_status_init(&st);
  if (trb_wal_reader_open(c->w, c->from, &r, &st) != TRB_OK) {
    c->err = 1;
    snprintf(c->errmsg, sizeof c->errmsg, "open: %s", st.msg);
    return NULL;
  }
  uint64_t want = c->from ? c->from : 1;
  while (want <= c->target) {
    trb_wal_rec rec;
    trb_err rc = trb_wal_reader_next(r, &rec, -1, &st);
    if (rc != TRB_OK || rec.lsn != want || !wtg_equal(&rec, rec.lsn, c->gens[rec.lsn])) {
      pthread_mutex_lock(&c->mu);
      c->err = 1;
      snprintf(c->errmsg, sizeof c->errmsg, "at LSN %llu: %s (got %llu)",
               (unsigned long long)want, rc ? st.msg : "wrong record",
               (unsigned long long)rec.lsn);
      pthread_cond_broadcast(&c->cv);
      pthread_mutex_unlock(&c->mu);
      break;
    }
    pthread_mutex_lock(&c->mu);
    c->got = rec.lsn;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    want++;
  }
  trb_wal_reader_close(r);
  return NULL;
}

/* A reader blocked in trb_wal_reader_next wakes on each publish, promptly:
 * the writer waits for the reader to see each batch before the next. */
static void test_reader_tailing(void **state) {
  const char *dir = *state;
  uint32_t *gens = calloc(MAXL, sizeof *gens);
  assert_non_null(gens);
  trb_wal *w = open_ok(dir, MIB);
  const int batches = 300;
  uint64_t target = 0;
  for (int i = 0; i < batches; i++) target += 1 + i % 4;
  tail_ctx c;
  tail_ctx_init(&c, w, 0, target, gens);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, tail_main, &c), 0);
  int64_t max_ns = 0, sum_ns = 0;
  for (int i = 0; i < batches; i++) {
    put_batch(w, 1 + i % 4, 1, gens);
    uint64_t last = trb_wal_last_lsn(w);
    int64_t t0 = trb_mono_ns();
    struct timespec dl = trb_deadline_ms(10000); /* safety net only */
    pthread_mutex_lock(&c.mu);
    while (c.got < last && !c.err)
      if (pthread_cond_timedwait(&c.cv, &c.mu, &dl) == ETIMEDOUT) break;
    uint64_t got = c.got;
    pthread_mutex_unlock(&c.mu);
    if (c.err) print_error("reader: %s\n", c.errmsg);
    assert_false(c.err);
    assert_int_equal(got, last);
    int64_t d = trb_mono_ns() - t0;
    sum_ns += d;
    if (d > max_ns) max_ns = d;
  }
  pthread_join(th, NULL);
  assert_false(c.err);
  assert_int_equal(c.got, target);
  print_message("tailing: %d wakeups, mean %.3f ms, max %.3f ms\n", batches,
                sum_ns / 1e6 / batches, max_ns / 1e6);
  assert_true(sum_ns / batches < 20 * 1000000LL); /* no sleep loop */
  assert_true(max_ns < 2000 * 1000000LL);
  tail_ctx_fini(&c);
  trb_wal_close(w);
  free(gens);
}

/* Several readers follow a writer that keeps rolling over segments. */
static void test_concurrent_readers(void **state) {
  const char *dir = *state;
  uint64_t seed = trb_test_seed() ^ 0x1234;
  uint32_t *gens = calloc(MAXL, sizeof *gens);
  assert_non_null(gens);
  trb_wal *w = open_ok(dir, MIB);
  const uint64_t target = 20000;
  /* gens are filled before the readers look: the writer below appends
   * exactly these generations */
  for (uint64_t l = 1; l <= target + 64; l++) gens[l] = 1;
  tail_ctx c[4];
  pthread_t th[4];
  uint64_t froms[4] = {0, 1, 1000, 7777};
  for (int i = 0; i < 4; i++) {
    tail_ctx_init(&c[i], w, froms[i], target, gens);
    assert_int_equal(pthread_create(&th[i], NULL, tail_main, &c[i]), 0);
  }
  while (trb_wal_last_lsn(w) < target) {
    uint64_t left = target - trb_wal_last_lsn(w);
    size_t n = 1 + trb_test_rand(&seed) % 64;
    if (n > left) n = (size_t)left;
    put_batch(w, n, 1, NULL);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    if (c[i].err) print_error("reader %d: %s\n", i, c[i].errmsg);
    assert_false(c[i].err);
    assert_int_equal(c[i].got, target);
    tail_ctx_fini(&c[i]);
  }
  trb_wal_stats s;
  trb_wal_get_stats(w, &s);
  assert_true(s.segments >= 4);
  trb_wal_close(w);
  free(gens);
}

static int active_readers(trb_wal *w) {
  pthread_mutex_lock(&w->mu);
  int n = w->active_readers;
  pthread_mutex_unlock(&w->mu);
  return n;
}

typedef struct closed_ctx {
  trb_wal_reader *r;
  trb_err rc;
  uint64_t lsn;
} closed_ctx;

static void *closed_main(void *arg) {
  closed_ctx *c = arg;
  trb_wal_rec rec;
  trb_status st;
  trb_status_init(&st);
  c->rc = trb_wal_reader_next(c->r, &rec, -1, &st);
  c->lsn = rec.lsn;
  return NULL;
}

/* Close wakes a blocked reader with TRB_ECLOSED. */
static void test_close_wakes_reader(void **state) {
  const char *dir = *state;
  uint32_t gens[16] = {0};
  trb_wal *w = open_ok(dir, MIB);
  put_batch(w, 3, 1, gens);
  trb_status st;
  closed_ctx c = {.rc = TRB_OK};
  assert_int_equal(trb_wal_reader_open(w, 4, &c.r, &st), TRB_OK);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, closed_main, &c), 0);
  /* wait (test only) until the reader is inside trb_wal_reader_next */
  int64_t dl = trb_mono_ns() + 5000 * 1000000LL;
  while (active_readers(w) == 0 && trb_mono_ns() < dl) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  assert_int_equal(active_readers(w), 1);
  trb_wal_close(w);
  pthread_join(th, NULL);
  assert_int_equal(c.rc, TRB_ECLOSED);
  trb_wal_reader_close(c.r); /* after the WAL: allowed */
}

/* ---- interval sync ---- */

static pthread_mutex_t sync_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sync_cv;
static uint64_t sync_count;

static int counting_fdatasync(int fd) {
  int rc = fdatasync(fd);
  pthread_mutex_lock(&sync_mu);
  sync_count++;
  pthread_cond_broadcast(&sync_cv);
  pthread_mutex_unlock(&sync_mu);
  return rc;
}

static uint64_t syncs_now(void) {
  pthread_mutex_lock(&sync_mu);
  uint64_t n = sync_count;
  pthread_mutex_unlock(&sync_mu);
  return n;
}

static void test_interval_sync(void **state) {
  const char *dir = *state;
  uint32_t *gens = calloc(MAXL, sizeof *gens);
  assert_non_null(gens);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&sync_cv, &ca);
  pthread_condattr_destroy(&ca);
  trb_sys.fdatasync = counting_fdatasync;

  trb_wal *w = NULL;
  trb_status st;
  const uint32_t ival = 40;
  int64_t t_open = trb_mono_ns();
  assert_int_equal(open_rc(dir, MIB, TRB_WAL_SYNC_INTERVAL, ival, 0, &w, &st), TRB_OK);
  uint64_t c0 = syncs_now();
  put_batch(w, 8, 1, gens);
  if (trb_mono_ns() - t_open < (int64_t)ival * 1000000 / 2)
    assert_int_equal(syncs_now(), c0); /* commit left it to the flusher */
  /* the background flusher syncs within about one interval */
  struct timespec dl = trb_deadline_ms(5000);
  pthread_mutex_lock(&sync_mu);
  while (sync_count == c0)
    if (pthread_cond_timedwait(&sync_cv, &sync_mu, &dl) == ETIMEDOUT) break;
  uint64_t c1 = sync_count;
  pthread_mutex_unlock(&sync_mu);
  assert_true(c1 > c0);

  /* a burst of commits costs about one sync per interval, not one each */
  trb_wal_stats s0, s1;
  trb_wal_get_stats(w, &s0);
  int64_t t0 = trb_mono_ns();
  for (int b = 0; b < 300; b++) put_batch(w, 4, 1, gens);
  int64_t ms = (trb_mono_ns() - t0) / 1000000;
  trb_wal_get_stats(w, &s1);
  print_message("interval: 300 commits in %lld ms, %llu syncs\n", (long long)ms,
                (unsigned long long)(s1.syncs - s0.syncs));
  assert_true(s1.syncs - s0.syncs <= (uint64_t)(ms / ival) + 3);
  trb_wal_close(w);
  trb_sysio_reset();

  w = open_ok(dir, MIB);
  assert_int_equal(trb_wal_last_lsn(w), 8 + 300 * 4);
  read_all(w, 0, gens, 1, 8 + 300 * 4);
  trb_wal_close(w);
  pthread_cond_destroy(&sync_cv);
  free(gens);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_roundtrip, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_publish_visibility, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_limits, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_single_writer, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_rollover, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_torn_rollover, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_bad_header_not_last, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_bad_record_before_named_segment, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(test_torn_truncate, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_torn_garbage, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_torn_flip_last, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_torn_flip_in_last_batch, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_torn_zero_header, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_corrupt_middle, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_corrupt_zeroed_header, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_unknown_version, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_reader_tailing, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_concurrent_readers, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_close_wakes_reader, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_interval_sync, setup_dir, teardown_dir),
  };
  trb_test_seed();
  return cmocka_run_group_tests_name("wal", tests, NULL, NULL);
}
