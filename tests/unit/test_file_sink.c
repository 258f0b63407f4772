/*
 * test_file_sink.c -- the audit file sink: layout, checkpoint format,
 * rotation, and exactly-once delivery when a delivery fails (or the process
 * dies) at every syscall of the recipe: each fault is injected at the
 * syscall seam, the sink is abandoned as a crash would leave it, a new sink
 * opens the same directory and the batch is delivered again. The files must
 * then hold every record once, in order, with no partial line.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/value.h"
#include "sinks/file_sink.h"
#include "testutil.h"
#include "util/sysio.h"

/* ---- building records ---- */

typedef struct recs {
  trb_wal_rec wal[64];
  trb_buf keys[64];
  trb_buf text[64];
  trb_stream_info si;
  trb_sink_rec r[64];
  size_t n;
} recs;

static void mk_recs(recs *x, const char *table, uint64_t first_lsn, size_t n) {
  memset(x, 0, sizeof *x);
  snprintf(x->si.table, sizeof x->si.table, "%s", table);
  snprintf(x->si.label, sizeof x->si.label, "2026-01-01T00:00:00.000");
  x->si.view = TRB_VIEW_KEYS_ONLY;
  strcpy(x->si.ks.pk_name, "id");
  x->si.ks.pk_type = TRB_T_S;
  for (size_t i = 0; i < n; i++) {
    char json[64];
    snprintf(json, sizeof json, "{\"id\":{\"S\":\"k%zu\"}}", (size_t)(first_lsn + i));
    trb_av *k = NULL;
    assert_int_equal(trb_item_from_json_text(json, strlen(json), &k, NULL), TRB_OK);
    trb_buf_init(&x->keys[i], 0);
    assert_int_equal(trb_av_encode(k, &x->keys[i]), TRB_OK);
    trb_av_destroy(k);
    trb_wal_rec *w = &x->wal[i];
    w->lsn = first_lsn + i;
    w->commit_us = 1796000000000000ll;
    w->kind = TRB_WAL_INSERT;
    w->table_id = 1;
    w->table = table;
    w->table_len = strlen(table);
    w->keys = x->keys[i].p;
    w->keys_len = x->keys[i].len;
    w->new_img = x->keys[i].p;
    w->new_len = x->keys[i].len;
    trb_stream_rec_opts ro = {.view = TRB_VIEW_KEYS_ONLY, .region = "us-east-1"};
    trb_buf_init(&x->text[i], 0);
    assert_int_equal(trb_stream_record_text(w, &ro, &x->text[i], NULL), TRB_OK);
    x->r[i].record = (const char *)x->text[i].p;
    x->r[i].record_len = x->text[i].len;
    x->r[i].wal = w;
    x->r[i].stream = &x->si;
    x->r[i].shard_id = "shardId-00000000000000000001-00000000";
  }
  x->n = n;
}

static void free_recs(recs *x) {
  for (size_t i = 0; i < x->n; i++) {
    trb_buf_fini(&x->text[i]);
    trb_buf_fini(&x->keys[i]);
  }
}

/* ---- reading what the files hold ---- */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sequence numbers (as LSNs) in the table's files, in file order;
 * fails the test on a partial or unparsable line. */
static size_t read_lsns(const char *dir, const char *table, uint64_t *out, size_t cap) {
  char d[4096];
  snprintf(d, sizeof d, "%s/%s", dir, table);
  DIR *dh = opendir(d);
  if (!dh) return 0;
  char *names[256];
  size_t nn = 0;
  struct dirent *de;
  while ((de = readdir(dh)))
    if (strstr(de->d_name, ".jsonl")) names[nn++] = strdup(de->d_name);
  closedir(dh);
  qsort(names, nn, sizeof *names, cmp_str);
  size_t n = 0;
  for (size_t i = 0; i < nn; i++) {
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", d, names[i]);
    size_t len;
    char *data = trb_test_read_file(p, &len);
    assert_non_null(data);
    if (len) assert_int_equal(data[len - 1], '\n');
    char *save = NULL;
    for (char *ln = strtok_r(data, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
      json_t *j = json_loads(ln, 0, NULL);
      assert_non_null(j);
      const char *sn = json_string_value(json_object_get(json_object_get(j, "dynamodb"), "SequenceNumber"));
      assert_non_null(sn);
      uint64_t lsn;
      assert_int_equal(trb_seqno_parse(sn, &lsn, NULL), TRB_OK);
      assert_true(n < cap);
      out[n++] = lsn;
      json_decref(j);
    }
    free(data);
    free(names[i]);
  }
  return n;
}

static trb_sink *open_sink(const char *dir, uint64_t rotate, uint64_t *ckpt) {
  trb_file_sink_opts o = {.dir = dir, .rotate_bytes = rotate};
  trb_sink *s = NULL;
  assert_int_equal(trb_file_sink_create(&o, &s, NULL), TRB_OK);
  trb_status st;
  trb_status_init(&st);
  trb_err rc = s->ops->open(s, ckpt, &st);
  if (rc) fprintf(stderr, "open: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return s;
}

static void test_layout_and_checkpoint(void **state) {
  (void)state;
  char *dir = trb_test_mkdtemp("fsink");
  uint64_t ck = 99;
  trb_sink *s = open_sink(dir, 0, &ck);
  assert_int_equal(ck, 0);
  recs a;
  mk_recs(&a, "orders", 10, 5);
  assert_int_equal(s->ops->deliver(s, a.r, a.n, 20, NULL), TRB_OK);
  /* a heartbeat moves the checkpoint alone */
  assert_int_equal(s->ops->deliver(s, NULL, 0, 25, NULL), TRB_OK);
  s->ops->destroy(s);
  char p[4200];
  snprintf(p, sizeof p, "%s/checkpoint.json", dir);
  json_t *c = json_load_file(p, 0, NULL);
  assert_non_null(c);
  assert_string_equal(json_string_value(json_object_get(c, "format")), "tributary-file-sink");
  assert_int_equal(json_integer_value(json_object_get(c, "version")), 1);
  assert_string_equal(json_string_value(json_object_get(c, "lsn")), "25");
  json_t *t = json_object_get(json_object_get(c, "tables"), "orders");
  assert_string_equal(json_string_value(json_object_get(t, "file")),
                      "orders.00000000000000000010.jsonl");
  json_decref(c);
  s = open_sink(dir, 0, &ck);
  assert_int_equal(ck, 25);
  uint64_t l[64];
  assert_int_equal(read_lsns(dir, "orders", l, 64), 5);
  for (size_t i = 0; i < 5; i++) assert_int_equal(l[i], 10 + i);
  s->ops->destroy(s);
  /* another version is refused */
  const char *v2 = "{\"format\":\"tributary-file-sink\",\"version\":2,\"lsn\":\"1\",\"tables\":{}}";
  assert_int_equal(trb_sys_write_file_durable(p, v2, strlen(v2)), 0);
  trb_file_sink_opts o = {.dir = dir};
  assert_int_equal(trb_file_sink_create(&o, &s, NULL), TRB_OK);
  assert_int_equal(s->ops->open(s, &ck, NULL), TRB_EVERSION);
  s->ops->destroy(s);
  free_recs(&a);
  trb_test_rmrf(dir);
  free(dir);
}

static void test_rotation(void **state) {
  (void)state;
  char *dir = trb_test_mkdtemp("fsink");
  uint64_t ck;
  trb_sink *s = open_sink(dir, 1000, &ck);
  uint64_t lsn = 1;
  for (int b = 0; b < 8; b++) {
    recs a;
    mk_recs(&a, "t1", lsn, 4);
    assert_int_equal(s->ops->deliver(s, a.r, a.n, lsn + 3, NULL), TRB_OK);
    lsn += 4;
    free_recs(&a);
  }
  s->ops->destroy(s);
  uint64_t l[64];
  assert_int_equal(read_lsns(dir, "t1", l, 64), 32);
  for (size_t i = 0; i < 32; i++) assert_int_equal(l[i], 1 + i);
  char d[4200];
  snprintf(d, sizeof d, "%s/t1", dir);
  DIR *dh = opendir(d);
  int files = 0;
  struct dirent *de;
  while ((de = readdir(dh))) files += strstr(de->d_name, ".jsonl") != NULL;
  closedir(dh);
  assert_true(files >= 4); /* about 350 bytes a batch into 1000-byte files */
  trb_test_rmrf(dir);
  free(dir);
}

/* A batch larger than rotate_bytes (a sink catching up) is spread over
 * files of at most rotate_bytes each, every file named after its first
 * record, rather than making one file of the whole batch. */
static void test_rotation_in_batch(void **state) {
  (void)state;
  char *dir = trb_test_mkdtemp("fsink");
  uint64_t ck;
  trb_sink *s = open_sink(dir, 1000, &ck);
  recs a;
  mk_recs(&a, "t1", 1, 4);
  assert_int_equal(s->ops->deliver(s, a.r, a.n, 4, NULL), TRB_OK);
  free_recs(&a);
  mk_recs(&a, "t1", 5, 60);
  assert_int_equal(s->ops->deliver(s, a.r, a.n, 64, NULL), TRB_OK);
  free_recs(&a);
  s->ops->destroy(s);
  uint64_t l[128];
  assert_int_equal(read_lsns(dir, "t1", l, 128), 64);
  for (size_t i = 0; i < 64; i++) assert_int_equal(l[i], 1 + i);
  char d[4200];
  snprintf(d, sizeof d, "%s/t1", dir);
  DIR *dh = opendir(d);
  int files = 0;
  uint64_t total = 0;
  struct dirent *de;
  while ((de = readdir(dh))) {
    if (!strstr(de->d_name, ".jsonl")) continue;
    files++;
    char p[4600];
    snprintf(p, sizeof p, "%s/%s", d, de->d_name);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_true(sb.st_size > 0 && sb.st_size <= 1000);
    total += (uint64_t)sb.st_size;
    /* named after its first record */
    size_t len;
    char *data = trb_test_read_file(p, &len);
    json_t *j = json_loadb(data, (size_t)(strchr(data, '\n') - data), 0, NULL);
    uint64_t first;
    assert_int_equal(trb_seqno_parse(json_string_value(json_object_get(
                         json_object_get(j, "dynamodb"), "SequenceNumber")), &first, NULL),
                     TRB_OK);
    char want[64];
    snprintf(want, sizeof want, "t1.%020" PRIu64 ".jsonl", first);
    assert_string_equal(de->d_name, want);
    json_decref(j);
    free(data);
  }
  closedir(dh);
  assert_true(files >= (int)(total / 1000) + 1);
  assert_true(files >= 4);
  trb_test_rmrf(dir);
  free(dir);
}

/* ---- faults ---- */

static int fail_at, calls;
static int count(void) { return ++calls == fail_at; }
static ssize_t f_pwrite(int fd, const void *b, size_t n, off_t off) {
  if (count()) {
    /* half the bytes reach the file, then the "crash" */
    if (n > 1) pwrite(fd, b, n / 2, off);
    errno = EIO;
    return -1;
  }
  return pwrite(fd, b, n, off);
}
static int f_fdatasync(int fd) {
  if (count()) {
    errno = EIO;
    return -1;
  }
  return fdatasync(fd);
}
static int f_fsync(int fd) {
  if (count()) {
    errno = EIO;
    return -1;
  }
  return fsync(fd);
}
static int f_rename(const char *a, const char *b) {
  if (count()) {
    errno = ENOSPC;
    return -1;
  }
  return rename(a, b);
}
static int f_open(const char *p, int fl, mode_t m) {
  if (count()) {
    errno = EMFILE;
    return -1;
  }
  return open(p, fl, m);
}

static void install_faults(void) {
  trb_sys.pwrite = f_pwrite;
  trb_sys.fdatasync = f_fdatasync;
  trb_sys.fsync = f_fsync;
  trb_sys.rename = f_rename;
  trb_sys.open = f_open;
}

/* For every syscall k of a delivery that rotates (two tables, new files),
 * fail call k; then either retry in the same sink (a failed delivery) or
 * abandon it and open a new one (a crash); then deliver the same batch
 * again and check exactly once. */
static void test_fault_at_every_call(void **state) {
  (void)state;
  for (int mode = 0; mode < 2; mode++) {
    for (fail_at = 1;; fail_at++) {
      char *dir = trb_test_mkdtemp("fsink");
      uint64_t ck;
      trb_sink *s = open_sink(dir, 600, &ck);
      recs a, b1, b2;
      mk_recs(&a, "t1", 1, 3);
      assert_int_equal(s->ops->deliver(s, a.r, a.n, 3, NULL), TRB_OK);
      mk_recs(&b1, "t1", 4, 4);
      mk_recs(&b2, "t2", 8, 2);
      trb_sink_rec batch[6];
      memcpy(batch, b1.r, 4 * sizeof *batch);
      memcpy(batch + 4, b2.r, 2 * sizeof *batch);
      calls = 0;
      install_faults();
      trb_err rc = s->ops->deliver(s, batch, 6, 9, NULL);
      trb_sysio_reset();
      int done = calls < fail_at; /* no call left to fail: the recipe is covered */
      if (done) assert_int_equal(rc, TRB_OK);
      else assert_int_not_equal(rc, TRB_OK);
      int redeliver = !done;
      if (mode == 1) { /* a crash: nothing undone by this process */
        s->ops->destroy(s);
        s = open_sink(dir, 600, &ck);
        /* The checkpoint is the old one, or the new one when the fault came
         * after its rename (the directory sync): then the batch counts and
         * the processor goes on after it. */
        assert_true(ck == 3 || ck == 9);
        redeliver = ck == 3;
      }
      if (redeliver) {
        /* Batches after a restart need not be the ones before: deliver a
         * smaller one first, so anything the failed attempt left past the
         * checkpoint would show. */
        assert_int_equal(s->ops->deliver(s, batch, 2, 5, NULL), TRB_OK);
        assert_int_equal(s->ops->deliver(s, batch + 2, 4, 9, NULL), TRB_OK);
      }
      s->ops->destroy(s);
      s = open_sink(dir, 600, &ck);
      assert_int_equal(ck, 9);
      s->ops->destroy(s);
      uint64_t l[64];
      assert_int_equal(read_lsns(dir, "t1", l, 64), 7);
      for (size_t i = 0; i < 7; i++) assert_int_equal(l[i], 1 + i);
      assert_int_equal(read_lsns(dir, "t2", l, 64), 2);
      assert_int_equal(l[0], 8);
      assert_int_equal(l[1], 9);
      free_recs(&a);
      free_recs(&b1);
      free_recs(&b2);
      trb_test_rmrf(dir);
      free(dir);
      if (done) break;
    }
    assert_true(fail_at > 5); /* the delivery made several calls */
  }
}

/* A sink started again by removing its checkpoint (what the processor's
 * message advises after a gap) keeps the audit files it had: they are
 * renamed aside, never removed, and the sink writes new files. */
static void test_restart_without_checkpoint_keeps_files(void **state) {
  (void)state;
  char *dir = trb_test_mkdtemp("fsink");
  uint64_t ck;
  trb_sink *s = open_sink(dir, 0, &ck);
  recs a;
  mk_recs(&a, "orders", 10, 5);
  assert_int_equal(s->ops->deliver(s, a.r, a.n, 14, NULL), TRB_OK);
  s->ops->destroy(s);
  free_recs(&a);
  char p[4200];
  snprintf(p, sizeof p, "%s/checkpoint.json", dir);
  assert_int_equal(unlink(p), 0);
  s = open_sink(dir, 0, &ck);
  assert_int_equal(ck, 0);
  mk_recs(&a, "orders", 30, 3);
  assert_int_equal(s->ops->deliver(s, a.r, a.n, 32, NULL), TRB_OK);
  s->ops->destroy(s);
  free_recs(&a);
  /* reopened with its new checkpoint: nothing is renamed or removed again */
  s = open_sink(dir, 0, &ck);
  assert_int_equal(ck, 32);
  s->ops->destroy(s);
  char d[4200];
  snprintf(d, sizeof d, "%s/orders", dir);
  DIR *dh = opendir(d);
  assert_non_null(dh);
  int kept = 0, fresh = 0, other = 0;
  struct dirent *de;
  while ((de = readdir(dh))) {
    if (de->d_name[0] == '.') continue;
    if (!strncmp(de->d_name, "orders.00000000000000000010.jsonl.before-checkpoint-", 52)) kept++;
    else if (!strcmp(de->d_name, "orders.00000000000000000030.jsonl")) fresh++;
    else other++;
  }
  closedir(dh);
  assert_int_equal(kept, 1);
  assert_int_equal(fresh, 1);
  assert_int_equal(other, 0);
  uint64_t l[64];
  assert_int_equal(read_lsns(dir, "orders", l, 64), 8); /* 30..32 and the 5 kept */
  trb_test_rmrf(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_layout_and_checkpoint),
      cmocka_unit_test(test_rotation),
      cmocka_unit_test(test_rotation_in_batch),
      cmocka_unit_test(test_fault_at_every_call),
      cmocka_unit_test(test_restart_without_checkpoint_keeps_files),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
