/*
 * test_ttl.c -- Time to Live (engine/ttl.h): which items have expired,
 * a sweep deletes exactly those of tables with TTL on, across pages, with
 * REMOVE records marked TRB_WAL_F_TTL; a restart keeps them marked; the
 * sweeper thread does it by itself.
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "capture/wal.h"
#include "engine/engine.h"
#include "engine/ttl.h"
#include "testutil.h"
#include "util/clock.h"

#define NOW 1800000000LL

static trb_av *J(const char *text) {
  trb_av *v = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_item_from_json_text(text, strlen(text), &v, &st);
  if (rc) fprintf(stderr, "bad test item %s: %s\n", text, trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return v;
}

static int expired_json(const char *item, int64_t now) {
  trb_av *v = J(item);
  int r = trb_ttl_expired(v, "exp", now);
  trb_av_destroy(v);
  return r;
}

static void test_expired_rules(void **state) {
  (void)state;
  char b[256];
#define AT(val) (snprintf(b, sizeof b, "{\"id\":{\"S\":\"a\"},\"exp\":{\"N\":\"%s\"}}", val), b)
  assert_true(expired_json(AT("1800000000"), NOW));     /* exactly now */
  assert_true(expired_json(AT("1799999999"), NOW));
  assert_false(expired_json(AT("1800000001"), NOW));    /* the future */
  assert_true(expired_json(AT("1799999999.5"), NOW));   /* fractions */
  assert_false(expired_json(AT("1800000000.001"), NOW));
  assert_true(expired_json(AT("1.8e9"), NOW));          /* any spelling of the number */
  snprintf(b, sizeof b, "{\"id\":{\"S\":\"a\"},\"exp\":{\"N\":\"%lld\"}}",
           NOW - TRB_TTL_MAX_AGE_S);
  assert_true(expired_json(b, NOW)); /* five years old: still */
  snprintf(b, sizeof b, "{\"id\":{\"S\":\"a\"},\"exp\":{\"N\":\"%lld\"}}",
           NOW - TRB_TTL_MAX_AGE_S - 1);
  assert_false(expired_json(b, NOW)); /* older: never */
  assert_false(expired_json(AT("-5"), NOW));
  assert_false(expired_json(AT("0"), NOW));
  /* only a Number counts */
  assert_false(expired_json("{\"id\":{\"S\":\"a\"},\"exp\":{\"S\":\"1\"}}", NOW));
  assert_false(expired_json("{\"id\":{\"S\":\"a\"},\"exp\":{\"NS\":[\"1\"]}}", NOW));
  assert_false(expired_json("{\"id\":{\"S\":\"a\"},\"exp\":{\"L\":[{\"N\":\"1\"}]}}", NOW));
  assert_false(expired_json("{\"id\":{\"S\":\"a\"},\"Exp\":{\"N\":\"1\"}}", NOW)); /* case */
  assert_false(expired_json("{\"id\":{\"S\":\"a\"}}", NOW));
  assert_false(trb_ttl_expired(NULL, "exp", NOW));
#undef AT
}

typedef struct fx {
  char *dir;
  trb_engine *e;
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  f->dir = trb_test_mkdtemp("ttl");
  f->e = trb_test_engine_open(f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  trb_engine_close(f->e);
  trb_test_rmrf(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static void create(trb_engine *e, const char *name, const char *ttl_attr) {
  trb_keyschema ks;
  memset(&ks, 0, sizeof ks);
  strcpy(ks.pk_name, "id");
  ks.pk_type = TRB_T_S;
  json_t *ext = json_object();
  if (ttl_attr)
    json_object_set_new(ext, "TimeToLive",
                        json_pack("{s:s,s:b}", "AttributeName", ttl_attr, "Enabled", 1));
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_table_create(e, name, &ks, ext, NULL, &st);
  if (rc) fprintf(stderr, "create: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  json_decref(ext);
}

static void put(trb_engine *e, const char *table, const char *json) {
  trb_av *it = J(json);
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_put_item(e, table, it, NULL, TRB_RV_NONE, NULL, &st);
  if (rc) fprintf(stderr, "put: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  trb_av_destroy(it);
}

static int exists(trb_engine *e, const char *table, const char *id) {
  char k[128];
  snprintf(k, sizeof k, "{\"id\":{\"S\":\"%s\"}}", id);
  trb_av *key = J(k), *item = NULL;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_get_item(e, table, key, &item, &st), TRB_OK);
  int r = item != NULL;
  trb_av_destroy(item);
  trb_av_destroy(key);
  return r;
}

/* REMOVE records after lsn: how many, and how many carry the TTL flag. */
static void removes_after(trb_engine *e, uint64_t lsn, int *n, int *ttl) {
  *n = *ttl = 0;
  trb_wal_reader *r = NULL;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_wal_reader_open(trb_engine_wal(e), lsn + 1, &r, &st), TRB_OK);
  trb_wal_rec rec;
  while (trb_wal_reader_next(r, &rec, 0, &st) == TRB_OK) {
    if (rec.kind != TRB_WAL_REMOVE) {
      assert_int_equal(rec.flags, 0);
      continue;
    }
    (*n)++;
    if (rec.flags & TRB_WAL_F_TTL) (*ttl)++;
  }
  trb_wal_reader_close(r);
}

/* A sweep over more than one page deletes exactly the expired items of the
 * TTL table, marked; the table without TTL keeps its "expired" items. */
static void test_sweep(void **state) {
  fx *f = *state;
  create(f->e, "a_plain", NULL); /* same attribute name, but TTL off */
  create(f->e, "ttl_t", "exp");
  const int n = 3 * TRB_TTL_PAGE + 7;
  char b[256];
  int want = 0;
  for (int i = 0; i < n; i++) {
    switch (i % 4) {
      case 0: /* expired */
        snprintf(b, sizeof b, "{\"id\":{\"S\":\"i%05d\"},\"exp\":{\"N\":\"%lld\"}}", i,
                 NOW - 10 - i);
        want++;
        break;
      case 1: /* the future */
        snprintf(b, sizeof b, "{\"id\":{\"S\":\"i%05d\"},\"exp\":{\"N\":\"%lld\"}}", i,
                 NOW + 10 + i);
        break;
      case 2: /* not a number */
        snprintf(b, sizeof b, "{\"id\":{\"S\":\"i%05d\"},\"exp\":{\"S\":\"%lld\"}}", i, NOW - 10);
        break;
      default: /* no attribute */
        snprintf(b, sizeof b, "{\"id\":{\"S\":\"i%05d\"},\"x\":{\"N\":\"1\"}}", i);
    }
    put(f->e, "ttl_t", b);
  }
  put(f->e, "a_plain", "{\"id\":{\"S\":\"p\"},\"exp\":{\"N\":\"1\"}}");
  uint64_t before = trb_wal_last_lsn(trb_engine_wal(f->e));
  trb_ttl_stats acc = {0};
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_ttl_sweep(f->e, NOW, 0, NULL, &acc, &st), TRB_OK);
  assert_int_equal(acc.deleted, (uint64_t)want);
  assert_int_equal(acc.scanned, (uint64_t)n); /* the TTL table only */
  assert_int_equal(acc.sweeps, 1);
  assert_true(acc.last_sweep_us > 0);
  for (int i = 0; i < n; i++) {
    snprintf(b, sizeof b, "i%05d", i);
    assert_int_equal(exists(f->e, "ttl_t", b), i % 4 != 0);
  }
  assert_true(exists(f->e, "a_plain", "p"));
  int removes, ttl;
  removes_after(f->e, before, &removes, &ttl);
  assert_int_equal(removes, want);
  assert_int_equal(ttl, want);

  /* again: nothing left to do; a later "now" reaches the future items */
  memset(&acc, 0, sizeof acc);
  assert_int_equal(trb_ttl_sweep(f->e, NOW, 0, NULL, &acc, &st), TRB_OK);
  assert_int_equal(acc.deleted, 0);
  before = trb_wal_last_lsn(trb_engine_wal(f->e));
  assert_int_equal(trb_ttl_sweep(f->e, NOW + 20, 0, NULL, &acc, &st), TRB_OK);
  assert_int_equal(acc.deleted, 3); /* i00001 (NOW+11), i00005 (NOW+15), i00009 (NOW+19) */
  assert_false(exists(f->e, "ttl_t", "i00001"));
  assert_true(exists(f->e, "ttl_t", "i00013"));

  /* a client's delete is not marked; a restart keeps the marks */
  trb_av *key = J("{\"id\":{\"S\":\"i00002\"}}");
  assert_int_equal(trb_delete_item(f->e, "ttl_t", key, NULL, TRB_RV_NONE, NULL, &st), TRB_OK);
  trb_av_destroy(key);
  trb_engine_close(f->e);
  f->e = trb_test_engine_open(f->dir);
  removes_after(f->e, before, &removes, &ttl);
  assert_int_equal(removes, 4);
  assert_int_equal(ttl, 3);
}

/* A stop asked for ends a paced sweep early, and it does not count. */
static void test_stop_and_pace(void **state) {
  fx *f = *state;
  create(f->e, "ttl_t", "exp");
  char b[128];
  for (int i = 0; i < 2 * TRB_TTL_PAGE; i++) {
    snprintf(b, sizeof b, "{\"id\":{\"S\":\"k%05d\"},\"exp\":{\"N\":\"5\"}}", i);
    put(f->e, "ttl_t", b);
  }
  /* 1,000 items at 4,000/s take at least 0.25 s (the second page waits) */
  trb_ttl_stats acc = {0};
  trb_status st;
  trb_status_init(&st);
  int64_t t0 = trb_mono_ns();
  assert_int_equal(trb_ttl_sweep(f->e, 100, 4000, NULL, &acc, &st), TRB_OK);
  assert_true(trb_mono_ns() - t0 >= 240000000LL);
  assert_int_equal(acc.deleted, 2 * TRB_TTL_PAGE);
  int stop = 1;
  memset(&acc, 0, sizeof acc);
  assert_int_equal(trb_ttl_sweep(f->e, 100, 0, &stop, &acc, &st), TRB_OK);
  assert_int_equal(acc.sweeps, 0);
  assert_int_equal(acc.scanned, 0);
}

/* The thread sweeps by itself, with the real clock. */
static void test_thread(void **state) {
  fx *f = *state;
  create(f->e, "ttl_t", "exp");
  char b[128];
  snprintf(b, sizeof b, "{\"id\":{\"S\":\"old\"},\"exp\":{\"N\":\"%lld\"}}",
           (long long)(trb_now_us() / 1000000 - 60));
  put(f->e, "ttl_t", b);
  snprintf(b, sizeof b, "{\"id\":{\"S\":\"new\"},\"exp\":{\"N\":\"%lld\"}}",
           (long long)(trb_now_us() / 1000000 + 3600));
  put(f->e, "ttl_t", b);
  trb_ttl_opts o = {.engine = f->e, .interval_ms = 50, .scan_rate = 0};
  trb_ttl *t = NULL;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_ttl_start(&o, &t, &st), TRB_OK);
  trb_ttl_stats s;
  for (int i = 0; i < 200; i++) {
    trb_ttl_get_stats(t, &s);
    if (s.deleted && s.sweeps) break;
    usleep(25000);
  }
  trb_ttl_get_stats(t, &s);
  trb_ttl_stop(t);
  trb_ttl_stop(NULL);
  assert_int_equal(s.deleted, 1);
  assert_true(s.sweeps >= 1);
  assert_false(exists(f->e, "ttl_t", "old"));
  assert_true(exists(f->e, "ttl_t", "new"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_expired_rules),
      cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_and_pace, setup, teardown),
      cmocka_unit_test_setup_teardown(test_thread, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
