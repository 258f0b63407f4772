/*
 * test_engine_faults.c -- I/O faults at the syscall seam, seen through the
 * engine: a write whose WAL append or fsync fails is not acknowledged, later
 * writes are refused (sticky failure), and after reopening the state is
 * exactly the acknowledged writes -- a prefix of what was attempted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "util/sysio.h"
#include "testutil.h"

typedef enum { F_PWRITE_EIO, F_PWRITE_ENOSPC, F_PWRITE_SHORT, F_FDATASYNC_EIO,
               F_FALLOCATE_ENOSPC, F_COUNT } fault_kind;
static const char *fault_names[] = {"pwrite EIO", "pwrite ENOSPC", "short pwrite",
                                    "fdatasync EIO", "fallocate ENOSPC"};

static int countdown; /* calls until the fault fires; <0 = never */
static int fired;

static int should_fire(void) {
  if (countdown < 0) return 0;
  if (countdown-- == 0) {
    fired = 1;
    return 1;
  }
  return 0;
}
static ssize_t pwrite_eio(int fd, const void *b, size_t n, off_t o) {
  if (should_fire()) { errno = EIO; return -1; }
  return pwrite(fd, b, n, o);
}
static ssize_t pwrite_enospc(int fd, const void *b, size_t n, off_t o) {
  if (should_fire()) { errno = ENOSPC; return -1; }
  return pwrite(fd, b, n, o);
}
static int short_once;
static ssize_t pwrite_short(int fd, const void *b, size_t n, off_t o) {
  if (short_once) { short_once = 0; errno = ENOSPC; return -1; }
  if (should_fire() && n > 1) {
    short_once = 1; /* half now, the retry of the rest fails */
    return pwrite(fd, b, n / 2, o);
  }
  return pwrite(fd, b, n, o);
}
static int fdatasync_eio(int fd) {
  if (should_fire()) { errno = EIO; return -1; }
  return fdatasync(fd);
}
/* A full disk stays full: once fired, every later allocation fails too. */
static int fallocate_enospc(int fd, int mode, off_t off, off_t len) {
  if (fired || should_fire()) { errno = ENOSPC; return -1; }
  return fallocate(fd, mode, off, len);
}

static void arm(fault_kind k, int after) {
  trb_sysio_reset();
  countdown = after;
  fired = 0;
  short_once = 0;
  switch (k) {
    case F_PWRITE_EIO: trb_sys.pwrite = pwrite_eio; break;
    case F_PWRITE_ENOSPC: trb_sys.pwrite = pwrite_enospc; break;
    case F_PWRITE_SHORT: trb_sys.pwrite = pwrite_short; break;
    case F_FDATASYNC_EIO: trb_sys.fdatasync = fdatasync_eio; break;
    case F_FALLOCATE_ENOSPC: trb_sys.fallocate = fallocate_enospc; break;
    default: break;
  }
}

static trb_err try_open(const char *dir, trb_engine **e, trb_status *st) {
  trb_engine_opts o;
  trb_engine_opts_default(&o);
  o.data_dir = dir;
  o.segment_size = 1 << 20;
  *e = NULL;
  trb_status_init(st);
  return trb_engine_open(&o, e, st);
}

static trb_engine *open_engine(const char *dir) {
  trb_engine *e = NULL;
  trb_status st;
  trb_err rc = try_open(dir, &e, &st);
  if (rc) fprintf(stderr, "open: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return e;
}

/* A new engine in dir, faults off, with the table "fff" (key id N). */
static trb_engine *new_engine(const char *dir) {
  trb_sysio_reset();
  trb_engine *e = open_engine(dir);
  trb_keyschema ks;
  memset(&ks, 0, sizeof ks);
  strcpy(ks.pk_name, "id");
  ks.pk_type = TRB_T_N;
  assert_int_equal(trb_table_create(e, "fff", &ks, NULL, NULL, NULL), TRB_OK);
  return e;
}

static trb_err put_n(trb_engine *e, int i) {
  char buf[4096];
  /* ~3 KB items so a few hundred writes roll over 1 MiB segments */
  int off = snprintf(buf, sizeof buf, "{\"id\":{\"N\":\"%d\"},\"pad\":{\"S\":\"", i);
  memset(buf + off, 'p', 3000);
  strcpy(buf + off + 3000, "\"}}");
  trb_av *it = NULL;
  assert_int_equal(trb_item_from_json_text(buf, strlen(buf), &it, NULL), TRB_OK);
  trb_err rc = trb_put_item(e, "fff", it, NULL, TRB_RV_NONE, NULL, NULL);
  trb_av_destroy(it);
  return rc;
}

/* Returns 1 when the fault failed a write (a fault may also land in the
 * background preparation of the next segment, which retries it at
 * rollover: then every write succeeds, which the checks accept too). */
static int run_case(fault_kind k, int after, uint64_t *seed) {
  char *dir = trb_test_mkdtemp("faults");
  trb_engine *e = new_engine(dir);
  arm(k, after);
  /* ~3 KB per write: 400+ writes roll over one 1 MiB segment; a full disk
   * needs two rollovers to show (the next segment may be prepared before
   * the fault is armed). */
  int attempted = (k == F_FALLOCATE_ENOSPC ? 1000 : 400) + (int)(trb_test_rand(seed) % 100);
  int acked = 0, failed_at = -1;
  for (int i = 0; i < attempted; i++) {
    trb_err rc = put_n(e, i);
    if (rc == TRB_OK) {
      assert_int_equal(failed_at, -1); /* nothing succeeds after a failure */
      acked++;
    } else if (failed_at < 0) {
      failed_at = i;
      assert_true(trb_engine_failed(e) != TRB_OK);
    } else {
      assert_int_equal(rc, TRB_EFAILED); /* sticky */
    }
  }
  if (failed_at >= 0) {
    /* the refusal says what failed first, and for a full disk what to do */
    trb_av *it = NULL;
    assert_int_equal(trb_item_from_json_text("{\"id\":{\"N\":\"-1\"}}", 17, &it, NULL), TRB_OK);
    trb_status st;
    trb_status_init(&st);
    assert_int_equal(trb_put_item(e, "fff", it, NULL, TRB_RV_NONE, NULL, &st), TRB_EFAILED);
    trb_av_destroy(it);
    const char *m = trb_status_msg(&st);
    if (!strstr(m, "writes are refused since an earlier failure of the WAL: "))
      fprintf(stderr, "%s: refusal: %s\n", fault_names[k], m);
    assert_non_null(strstr(m, "writes are refused since an earlier failure of the WAL: "));
    int full = k == F_PWRITE_ENOSPC || k == F_FALLOCATE_ENOSPC || k == F_PWRITE_SHORT;
    assert_int_equal(strstr(m, "the disk is full: free space on it, then restart") != NULL, full);
  }
  trb_engine_close(e);
  trb_sysio_reset();
  e = open_engine(dir);
  trb_table_info info;
  assert_int_equal(trb_table_describe(e, "fff", &info, NULL), TRB_OK);
  if ((int)info.item_count != acked)
    fprintf(stderr, "%s after %d: %llu items, %d acknowledged\n", fault_names[k], after,
            (unsigned long long)info.item_count, acked);
  assert_int_equal((int)info.item_count, acked);
  for (int i = 0; i < acked + 2 && i < attempted; i++) {
    char kb[64];
    snprintf(kb, sizeof kb, "{\"id\":{\"N\":\"%d\"}}", i);
    trb_av *key = NULL, *it = NULL;
    assert_int_equal(trb_item_from_json_text(kb, strlen(kb), &key, NULL), TRB_OK);
    assert_int_equal(trb_get_item(e, "fff", key, &it, NULL), TRB_OK);
    assert_int_equal(it != NULL, i < acked);
    trb_av_destroy(it);
    trb_av_destroy(key);
  }
  /* The reopened engine takes writes again. */
  assert_int_equal(put_n(e, 100000), TRB_OK);
  trb_engine_close(e);
  trb_test_rmrf(dir);
  free(dir);
  return failed_at >= 0;
}

static void test_faults(void **state) {
  (void)state;
  uint64_t seed = trb_test_seed();
  int cases = 0;
  for (int k = 0; k < F_COUNT; k++) {
    int failed = 0;
    for (int rep = 0; rep < 6; rep++) {
      int after = (int)(trb_test_rand(&seed) % (k == F_FALLOCATE_ENOSPC ? 3 : 300));
      failed += run_case((fault_kind)k, after, &seed);
      cases++;
    }
    fprintf(stderr, "# %s: %d of 6 cases failed a write\n", fault_names[k], failed);
    assert_true(failed >= 3); /* the faults really hit the write path */
  }
  fprintf(stderr, "# %d fault cases\n", cases);
}

/* A disk with almost no room left: the engine does not open (RocksDB, as
 * Debian builds it, would stop the process on an assertion when a write of
 * its open fails), it says why, and once there is room again everything
 * written before is there. */
static unsigned long fake_blocks; /* free blocks of 4 KiB the fake reports */
static int statvfs_tiny(const char *path, struct statvfs *out) {
  int r = statvfs(path, out);
  if (r == 0) {
    out->f_frsize = 4096;
    out->f_bavail = fake_blocks;
  }
  return r;
}

static void test_open_disk_full(void **state) {
  (void)state;
  char *dir = trb_test_mkdtemp("engfull");
  trb_engine *e = new_engine(dir);
  assert_int_equal(put_n(e, 7), TRB_OK);
  trb_engine_close(e);
  trb_sys.statvfs = statvfs_tiny;
  fake_blocks = 100; /* 400 KiB */
  trb_status st;
  assert_int_equal(try_open(dir, &e, &st), TRB_EIO);
  assert_null(e);
  assert_non_null(strstr(trb_status_msg(&st), "has 400 KiB free; opening the data directory "
                                               "needs at least 16 MiB: free some space"));
  fake_blocks = 5000; /* 19.5 MiB: enough */
  e = open_engine(dir);
  trb_sysio_reset();
  trb_av *key = NULL, *got = NULL;
  const char *kj = "{\"id\":{\"N\":\"7\"}}";
  assert_int_equal(trb_item_from_json_text(kj, strlen(kj), &key, NULL), TRB_OK);
  assert_int_equal(trb_get_item(e, "fff", key, &got, NULL), TRB_OK);
  assert_non_null(got);
  trb_av_destroy(got);
  trb_av_destroy(key);
  trb_engine_close(e);
  trb_test_rmrf(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_faults),
                                     cmocka_unit_test(test_open_disk_full)};
  return cmocka_run_group_tests_name("engine_faults", tests, NULL, NULL);
}
