/*
 * test_retention.c -- WAL trimming and the retention rules: whole segments
 * only, never the current one, never past what the store has made durable,
 * a sink's checkpoint, or the stream retention; a reader inside a removed
 * segment finishes it; a sink past the lag cap is marked broken and stops
 * holding the WAL; the engine reopens on a trimmed WAL with every item.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/retention.h"
#include "capture/tailer.h"
#include "engine/engine.h"
#include "testutil.h"
#include "util/clock.h"

static trb_engine *open_engine(const char *dir) {
  trb_engine_opts o;
  trb_engine_opts_default(&o);
  o.data_dir = dir;
  o.segment_size = 1 << 20;
  trb_engine *e = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_engine_open(&o, &e, &st);
  if (rc) fprintf(stderr, "open: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return e;
}

/* n items of about 3 KB (random bytes: the WAL does not shrink them). */
static void fill(trb_engine *e, const char *table, int from, int n, uint64_t *rs) {
  for (int i = from; i < from + n; i++) {
    char pad[3001];
    for (int k = 0; k < 3000; k++) pad[k] = (char)('a' + trb_test_rand(rs) % 26);
    pad[3000] = 0;
    char *json = malloc(3200);
    snprintf(json, 3200, "{\"pk\":{\"S\":\"k%06d\"},\"pad\":{\"S\":\"%s\"}}", i, pad);
    trb_av *it = NULL;
    assert_int_equal(trb_item_from_json_text(json, strlen(json), &it, NULL), TRB_OK);
    assert_int_equal(trb_put_item(e, table, it, NULL, TRB_RV_NONE, NULL, NULL), TRB_OK);
    trb_av_destroy(it);
    free(json);
  }
}

static void mk_table(trb_engine *e, const char *name) {
  trb_keyschema ks;
  memset(&ks, 0, sizeof ks);
  strcpy(ks.pk_name, "pk");
  ks.pk_type = TRB_T_S;
  assert_int_equal(trb_table_create(e, name, &ks, NULL, NULL, NULL), TRB_OK);
}

static size_t nsegs(trb_engine *e) {
  trb_wal_seg_info *v;
  size_t n;
  assert_int_equal(trb_wal_segments(trb_engine_wal(e), &v, &n, NULL), TRB_OK);
  free(v);
  return n;
}

static void test_trim_segments(void **state) {
  (void)state;
  uint64_t rs = trb_test_seed();
  char *dir = trb_test_mkdtemp("ret");
  trb_engine *e = open_engine(dir);
  trb_wal *w = trb_engine_wal(e);
  mk_table(e, "tab");
  trb_wal_reader *early = NULL;
  assert_int_equal(trb_wal_reader_open(w, 1, &early, NULL), TRB_OK);
  trb_wal_rec r;
  assert_int_equal(trb_wal_reader_next(early, &r, 0, NULL), TRB_OK); /* inside segment 1 */
  fill(e, "tab", 0, 1500, &rs);
  trb_wal_seg_info *seg;
  size_t n;
  assert_int_equal(trb_wal_segments(w, &seg, &n, NULL), TRB_OK);
  assert_true(n >= 4);
  assert_true(seg[n - 1].current);
  /* keep_from inside segment 2: only segment 1 goes */
  size_t removed = 0;
  assert_int_equal(trb_wal_trim(w, seg[1].first_lsn + 1, &removed, NULL), TRB_OK);
  assert_int_equal(removed, 1);
  assert_int_equal(trb_wal_first_lsn(w), seg[1].first_lsn);
  trb_wal_reader *rd = NULL;
  assert_int_equal(trb_wal_reader_open(w, seg[0].first_lsn, &rd, NULL), TRB_ENOTFOUND);
  /* a reader inside the removed segment reads on into the next ones */
  uint64_t last = r.lsn, cnt = 0;
  while (trb_wal_reader_next(early, &r, 0, NULL) == TRB_OK) {
    assert_int_equal(r.lsn, last + 1);
    last = r.lsn;
    cnt++;
  }
  assert_int_equal(last, trb_wal_last_lsn(w));
  assert_true(cnt > 1400);
  trb_wal_reader_close(early);
  /* everything: the current segment stays */
  assert_int_equal(trb_wal_trim(w, UINT64_MAX, &removed, NULL), TRB_OK);
  assert_int_equal(removed, n - 2);
  assert_int_equal(nsegs(e), 1);
  free(seg);
  trb_engine_close(e);
  /* reopen on the trimmed WAL: every item is there (close made the store
   * durable; retention makes sure of that itself, see below) */
  e = open_engine(dir);
  trb_scan_req sr;
  memset(&sr, 0, sizeof sr);
  sr.table = "tab";
  sr.max_bytes = 64 << 20;
  trb_page p;
  assert_int_equal(trb_scan(e, &sr, &p, NULL), TRB_OK);
  assert_int_equal(p.n, 1500);
  trb_page_fini(&p);
  trb_engine_close(e);
  trb_test_rmrf(dir);
  free(dir);
}

/* ---- retention rules, with a sink whose checkpoint the test sets ---- */

typedef struct fake_sink {
  trb_sink base;
  uint64_t *ckpt;       /* what open returns */
  int fail;             /* deliver fails */
} fake_sink;

static trb_err fk_open(trb_sink *s, uint64_t *c, trb_status *st) {
  (void)st;
  *c = *((fake_sink *)s)->ckpt;
  return TRB_OK;
}
static trb_err fk_deliver(trb_sink *s, const trb_sink_rec *r, size_t n, uint64_t through,
                          trb_status *st) {
  (void)r;
  (void)n;
  fake_sink *f = (fake_sink *)s;
  if (f->fail) return trb_status_set(st, TRB_EIO, "the fake sink is down");
  *f->ckpt = through;
  return TRB_OK;
}
static void fk_destroy(trb_sink *s) { free(s); }
static const trb_sink_ops fk_ops = {.kind = "fake", .open = fk_open, .deliver = fk_deliver,
                                    .destroy = fk_destroy};

static trb_err flush_cb(void *ctx, uint64_t *lsn, trb_status *st) {
  return trb_engine_flush(ctx, lsn, st);
}

static void test_rules(void **state) {
  (void)state;
  uint64_t rs = trb_test_seed();
  char *dir = trb_test_mkdtemp("ret");
  trb_engine *e = open_engine(dir);
  trb_wal *w = trb_engine_wal(e);
  mk_table(e, "tab");
  fill(e, "tab", 0, 1200, &rs);
  size_t before = nsegs(e);
  assert_true(before >= 4);
  trb_streams_opts so;
  trb_streams_opts_default(&so);
  so.wal = w;
  trb_streams *streams = NULL;
  assert_int_equal(trb_streams_start(&so, &streams, NULL), TRB_OK);
  /* a failing sink at checkpoint 0 */
  uint64_t ck = 0;
  fake_sink *fs = calloc(1, sizeof *fs);
  fs->base.ops = &fk_ops;
  fs->ckpt = &ck;
  fs->fail = 1;
  trb_tailer *t = NULL;
  trb_tailer_opts to = {.wal = w, .streams = streams, .heartbeat_ms = 50};
  assert_int_equal(trb_tailer_start(&to, &fs->base, &t, NULL), TRB_OK);
  /* 1. inside the stream retention: nothing goes */
  trb_retention_opts ro = {.wal = w, .streams = streams, .sinks = &t, .nsinks = 1,
                           .flush = flush_cb, .flush_ctx = e, .retention_us = 3600ll * 1000000,
                           .interval_ms = 3600 * 1000};
  trb_retention *r = NULL;
  assert_int_equal(trb_retention_start(&ro, &r, NULL), TRB_OK);
  assert_int_equal(trb_retention_run(r, NULL), TRB_OK);
  assert_int_equal(nsegs(e), before);
  trb_retention_stop(r);
  /* 2. past retention, but the sink has delivered nothing: nothing goes */
  usleep(20 * 1000);
  fill(e, "tab", 2000, 10, &rs);
  ro.retention_us = 1000; /* 1 ms */
  assert_int_equal(trb_retention_start(&ro, &r, NULL), TRB_OK);
  assert_int_equal(trb_retention_run(r, NULL), TRB_OK);
  assert_int_equal(nsegs(e), before);
  trb_retention_stats rst;
  trb_retention_get_stats(r, &rst);
  assert_int_equal(rst.held_by_sinks, 1);
  trb_retention_stop(r);
  /* 3. the sink recovers and catches up (heartbeats move its checkpoint
   * past records of no stream): the old segments go */
  fs->fail = 0;
  uint64_t want = trb_wal_last_lsn(w);
  for (int i = 0; i < 200; i++) {
    trb_tailer_stats ts;
    trb_tailer_get_stats(t, &ts);
    if (ts.checkpoint >= want) break;
    usleep(20 * 1000);
  }
  assert_int_equal(ck, want);
  assert_int_equal(trb_retention_start(&ro, &r, NULL), TRB_OK);
  assert_int_equal(trb_retention_run(r, NULL), TRB_OK);
  assert_int_equal(nsegs(e), 1);
  trb_retention_get_stats(r, &rst);
  assert_int_equal(rst.segments_removed, before - 1);
  assert_int_equal(rst.first_lsn, trb_wal_first_lsn(w));
  trb_retention_stop(r);
  /* 4. the sink fails again and falls past the lag cap while the stream
   * retention window (an hour) keeps its records anyway: breaking it would
   * free nothing, so it is not broken, and the stats say what holds */
  fs->fail = 1;
  fill(e, "tab", 3000, 1200, &rs);
  ro.max_lag_bytes = 2 << 20;
  ro.retention_us = 3600ll * 1000000;
  size_t nwin = nsegs(e);
  assert_true(nwin > 1);
  assert_int_equal(trb_retention_start(&ro, &r, NULL), TRB_OK);
  assert_int_equal(trb_retention_run(r, NULL), TRB_OK);
  trb_tailer_stats ts0;
  trb_tailer_get_stats(t, &ts0);
  assert_int_equal(ts0.broken, 0);
  trb_retention_get_stats(r, &rst);
  assert_int_equal(rst.lagging_in_window, 1);
  assert_int_equal(rst.held_by_time, 1);
  assert_int_equal(rst.sinks_broken, 0);
  assert_int_equal(nsegs(e), nwin);
  trb_retention_stop(r);
  /* 5. the same past the window: now the sink is what holds the WAL, so it
   * is broken and the WAL goes on without it */
  ro.retention_us = 1000;
  assert_int_equal(trb_retention_start(&ro, &r, NULL), TRB_OK);
  assert_int_equal(trb_retention_run(r, NULL), TRB_OK);
  trb_tailer_stats ts;
  trb_tailer_get_stats(t, &ts);
  assert_int_equal(ts.broken, 1);
  trb_retention_get_stats(r, &rst);
  assert_int_equal(rst.sinks_broken, 1);
  usleep(20 * 1000);
  assert_int_equal(trb_retention_run(r, NULL), TRB_OK);
  assert_int_equal(nsegs(e), 1);
  trb_retention_stop(r);
  /* 6. the disk under retention.min_disk_free (a floor above what any
   * disk here has): the oldest segments go although the stream retention
   * window (an hour again) wants them */
  fill(e, "tab", 6000, 1200, &rs);
  assert_true(nsegs(e) > 2);
  ro.retention_us = 3600ll * 1000000;
  ro.dir = dir;
  ro.min_free_bytes = UINT64_MAX / 2;
  assert_int_equal(trb_retention_start(&ro, &r, NULL), TRB_OK);
  assert_int_equal(trb_retention_run(r, NULL), TRB_OK);
  assert_int_equal(nsegs(e), 1);
  trb_retention_get_stats(r, &rst);
  assert_int_equal(rst.disk_trims, 1);
  assert_true(rst.disk_free > 0);
  trb_retention_stop(r);
  /* with a floor the disk is over, the window holds them again */
  fill(e, "tab", 9000, 1200, &rs);
  size_t before6 = nsegs(e);
  ro.min_free_bytes = 1;
  assert_int_equal(trb_retention_start(&ro, &r, NULL), TRB_OK);
  assert_int_equal(trb_retention_run(r, NULL), TRB_OK);
  assert_int_equal(nsegs(e), before6);
  trb_retention_get_stats(r, &rst);
  assert_int_equal(rst.disk_trims, 0);
  trb_retention_stop(r);
  trb_tailer_stop(t);
  trb_streams_stop(streams);
  trb_engine_close(e);
  /* every item is still there */
  e = open_engine(dir);
  trb_scan_req sr;
  memset(&sr, 0, sizeof sr);
  sr.table = "tab";
  sr.max_bytes = 64 << 20;
  trb_page p;
  assert_int_equal(trb_scan(e, &sr, &p, NULL), TRB_OK);
  assert_int_equal(p.n, 4810);
  trb_page_fini(&p);
  trb_engine_close(e);
  trb_test_rmrf(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_trim_segments),
      cmocka_unit_test(test_rules),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
