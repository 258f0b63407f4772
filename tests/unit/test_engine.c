/*
 * test_engine.c -- the engine through its C API: tables, CRUD, conditions,
 * no-change writes, query order and paging, scan segments, recovery.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/engine_int.h" /* the commit queue's length, for test_commit_delay */
#include "util/clock.h"
#include "util/sysio.h"
#include "testutil.h"

typedef struct fx {
  char *dir;
  trb_engine *e;
} fx;

static trb_engine *open_engine_delay(const char *dir, uint32_t commit_delay_us) {
  trb_engine_opts o;
  trb_engine_opts_default(&o);
  o.data_dir = dir;
  o.segment_size = 1 << 20;
  o.commit_delay_us = commit_delay_us;
  trb_engine *e = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_engine_open(&o, &e, &st);
  if (rc) fprintf(stderr, "open: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return e;
}

static trb_engine *open_engine(const char *dir) { return open_engine_delay(dir, 0); }

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  f->dir = trb_test_mkdtemp("engine");
  f->e = open_engine(f->dir);
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

static void reopen(fx *f) {
  trb_engine_close(f->e);
  f->e = open_engine(f->dir);
}

static trb_av *J(const char *json) {
  trb_av *v = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_item_from_json_text(json, strlen(json), &v, &st);
  if (rc) fprintf(stderr, "bad test JSON %s: %s\n", json, trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return v;
}

static trb_av *V(const char *json) {
  trb_av *v = NULL;
  assert_int_equal(trb_av_from_json_text(json, strlen(json), &v, NULL), TRB_OK);
  return v;
}

static void mk_table(trb_engine *e, const char *name, const char *pk, trb_type pt,
                     const char *sk, trb_type stype) {
  trb_keyschema ks;
  memset(&ks, 0, sizeof ks);
  strcpy(ks.pk_name, pk);
  ks.pk_type = pt;
  if (sk) {
    ks.has_sk = 1;
    strcpy(ks.sk_name, sk);
    ks.sk_type = stype;
  }
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_table_create(e, name, &ks, NULL, NULL, &st);
  if (rc) fprintf(stderr, "create: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
}

static void put(trb_engine *e, const char *t, const char *json) {
  trb_av *it = J(json);
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_put_item(e, t, it, NULL, TRB_RV_NONE, NULL, &st);
  if (rc) fprintf(stderr, "put %s: %s\n", json, trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  trb_av_destroy(it);
}

/* The item as compact JSON, or NULL when absent. Caller frees. */
static char *get(trb_engine *e, const char *t, const char *keyjson) {
  trb_av *k = J(keyjson), *it = NULL;
  assert_int_equal(trb_get_item(e, t, k, &it, NULL), TRB_OK);
  trb_av_destroy(k);
  char *s = it ? trb_item_to_json_text(it) : NULL;
  trb_av_destroy(it);
  return s;
}

static int item_eq(trb_engine *e, const char *t, const char *keyjson, const char *expect) {
  trb_av *k = J(keyjson), *it = NULL;
  assert_int_equal(trb_get_item(e, t, k, &it, NULL), TRB_OK);
  trb_av_destroy(k);
  if (!expect) {
    int r = it == NULL;
    trb_av_destroy(it);
    return r;
  }
  trb_av *x = J(expect);
  int r = it && trb_av_equal(it, x);
  trb_av_destroy(x);
  trb_av_destroy(it);
  return r;
}

static uint64_t last_lsn(trb_engine *e) { return trb_wal_last_lsn(trb_engine_wal(e)); }

static void test_tables(void **state) {
  fx *f = *state;
  mk_table(f->e, "beta", "id", TRB_T_S, NULL, 0);
  mk_table(f->e, "alpha", "pk", TRB_T_N, "sk", TRB_T_B);
  trb_keyschema ks;
  memset(&ks, 0, sizeof ks);
  strcpy(ks.pk_name, "id");
  ks.pk_type = TRB_T_S;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_table_create(f->e, "beta", &ks, NULL, NULL, &st), TRB_EEXISTS);
  assert_int_equal(trb_table_create(f->e, "ab", &ks, NULL, NULL, &st), TRB_EINVAL);
  assert_int_equal(trb_table_create(f->e, "bad name!", &ks, NULL, NULL, &st), TRB_EINVAL);
  char **names;
  size_t n;
  char *last;
  assert_int_equal(trb_table_list(f->e, NULL, 0, &names, &n, &last, &st), TRB_OK);
  assert_int_equal(n, 2);
  assert_string_equal(names[0], "alpha");
  assert_string_equal(names[1], "beta");
  assert_null(last);
  trb_table_list_free(names, n);
  assert_int_equal(trb_table_list(f->e, NULL, 1, &names, &n, &last, &st), TRB_OK);
  assert_int_equal(n, 1);
  assert_string_equal(last, "alpha");
  trb_table_list_free(names, n);
  assert_int_equal(trb_table_list(f->e, last, 1, &names, &n, NULL, &st), TRB_OK);
  assert_string_equal(names[0], "beta");
  trb_table_list_free(names, n);
  free(last);

  put(f->e, "beta", "{\"id\":{\"S\":\"x\"},\"v\":{\"N\":\"1\"}}");
  trb_table_info info;
  assert_int_equal(trb_table_describe(f->e, "alpha", &info, &st), TRB_OK);
  assert_int_equal(info.def.ks.pk_type, TRB_T_N);
  assert_true(info.def.ks.has_sk);
  assert_string_equal(info.def.ks.sk_name, "sk");
  assert_int_equal(trb_table_describe(f->e, "beta", &info, &st), TRB_OK);
  assert_int_equal(info.item_count, 1);
  /* The catalog is durable: it survives a restart, with its counts. */
  reopen(f);
  assert_int_equal(trb_table_describe(f->e, "beta", &info, &st), TRB_OK);
  assert_int_equal(info.item_count, 1);
  assert_true(info.size_bytes > 0);
  assert_int_equal(trb_table_delete(f->e, "beta", NULL, &st), TRB_OK);
  assert_int_equal(trb_table_describe(f->e, "beta", &info, &st), TRB_ENOTFOUND);
  assert_int_equal(trb_table_delete(f->e, "beta", NULL, &st), TRB_ENOTFOUND);
  /* Recreated with another key schema: old items are gone. */
  mk_table(f->e, "beta", "other", TRB_T_N, NULL, 0);
  reopen(f);
  assert_int_equal(trb_table_describe(f->e, "beta", &info, &st), TRB_OK);
  assert_string_equal(info.def.ks.pk_name, "other");
  assert_int_equal(info.item_count, 0);
  assert_int_equal(trb_table_describe(f->e, "alpha", &info, &st), TRB_OK);
}

static void test_crud(void **state) {
  fx *f = *state;
  mk_table(f->e, "tt1", "id", TRB_T_S, NULL, 0);
  put(f->e, "tt1", "{\"id\":{\"S\":\"a\"},\"n\":{\"N\":\"1e3\"},\"l\":{\"L\":[{\"S\":\"x\"}]}}");
  assert_true(item_eq(f->e, "tt1", "{\"id\":{\"S\":\"a\"}}",
                      "{\"id\":{\"S\":\"a\"},\"n\":{\"N\":\"1000\"},\"l\":{\"L\":[{\"S\":\"x\"}]}}"));
  char *s = get(f->e, "tt1", "{\"id\":{\"S\":\"a\"}}");
  assert_non_null(strstr(s, "\"1000\""));
  free(s);
  assert_null(get(f->e, "tt1", "{\"id\":{\"S\":\"zz\"}}"));

  /* ReturnValues ALL_OLD on replace. */
  trb_av *it = J("{\"id\":{\"S\":\"a\"},\"n\":{\"N\":\"2\"}}"), *old = NULL;
  assert_int_equal(trb_put_item(f->e, "tt1", it, NULL, TRB_RV_ALL_OLD, &old, NULL), TRB_OK);
  assert_non_null(old);
  trb_av *n = trb_av_m_get(old, "n", 1);
  assert_non_null(n);
  assert_int_equal(n->type, TRB_T_N);
  trb_av_destroy(old);
  trb_av_destroy(it);
  trb_av *empty = J("{}");
  assert_int_equal(trb_put_item(f->e, "tt1", empty, NULL, TRB_RV_UPDATED_NEW, NULL, NULL),
                   TRB_EINVAL);
  trb_av_destroy(empty);

  /* Update: set and remove, all return-value kinds. */
  trb_av *key = J("{\"id\":{\"S\":\"a\"}}");
  trb_av *val = V("{\"S\":\"new\"}");
  trb_update_action acts[] = {{0, "s", val}, {1, "n", NULL}};
  trb_update upd = {acts, 2};
  trb_av *out = NULL;
  assert_int_equal(trb_update_item(f->e, "tt1", key, &upd, NULL, TRB_RV_UPDATED_OLD, &out, NULL),
                   TRB_OK);
  assert_non_null(out);
  assert_non_null(trb_av_m_get(out, "n", 1));
  assert_null(trb_av_m_get(out, "s", 1));
  trb_av_destroy(out);
  assert_true(item_eq(f->e, "tt1", "{\"id\":{\"S\":\"a\"}}",
                      "{\"id\":{\"S\":\"a\"},\"s\":{\"S\":\"new\"}}"));
  assert_int_equal(trb_update_item(f->e, "tt1", key, &upd, NULL, TRB_RV_ALL_NEW, &out, NULL),
                   TRB_OK);
  assert_non_null(trb_av_m_get(out, "id", 2));
  trb_av_destroy(out);
  /* Upsert creates the item from the key. */
  trb_av *key2 = J("{\"id\":{\"S\":\"b\"}}");
  assert_int_equal(trb_update_item(f->e, "tt1", key2, &upd, NULL, TRB_RV_UPDATED_NEW, &out, NULL),
                   TRB_OK);
  assert_true(item_eq(f->e, "tt1", "{\"id\":{\"S\":\"b\"}}",
                      "{\"id\":{\"S\":\"b\"},\"s\":{\"S\":\"new\"}}"));
  trb_av_destroy(out);
  /* A key attribute cannot be updated. */
  trb_update_action bad[] = {{0, "id", val}};
  trb_update bupd = {bad, 1};
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_update_item(f->e, "tt1", key2, &bupd, NULL, TRB_RV_NONE, NULL, &st),
                   TRB_EINVAL);
  assert_non_null(strstr(st.msg, "part of the key"));

  /* Delete with ALL_OLD; a missing item is not an error. */
  assert_int_equal(trb_delete_item(f->e, "tt1", key, NULL, TRB_RV_ALL_OLD, &out, NULL), TRB_OK);
  assert_non_null(out);
  trb_av_destroy(out);
  assert_int_equal(trb_delete_item(f->e, "tt1", key, NULL, TRB_RV_ALL_OLD, &out, NULL), TRB_OK);
  assert_null(out);
  assert_null(get(f->e, "tt1", "{\"id\":{\"S\":\"a\"}}"));
  trb_av_destroy(key);
  trb_av_destroy(key2);
  trb_av_destroy(val);
}

static void test_bad_input_never_reaches_wal(void **state) {
  fx *f = *state;
  mk_table(f->e, "tt1", "id", TRB_T_S, "r", TRB_T_N);
  uint64_t before = last_lsn(f->e);
  const char *bad_items[] = {
      "{\"r\":{\"N\":\"1\"}}",                                  /* missing pk */
      "{\"id\":{\"S\":\"a\"}}",                                 /* missing sk */
      "{\"id\":{\"N\":\"1\"},\"r\":{\"N\":\"1\"}}",             /* wrong pk type */
      "{\"id\":{\"S\":\"\"},\"r\":{\"N\":\"1\"}}",              /* empty key */
  };
  for (size_t i = 0; i < sizeof bad_items / sizeof *bad_items; i++) {
    trb_av *it = J(bad_items[i]);
    trb_status st;
    trb_status_init(&st);
    assert_int_equal(trb_put_item(f->e, "tt1", it, NULL, TRB_RV_NONE, NULL, &st), TRB_EINVAL);
    assert_true(st.msg[0] != 0);
    trb_av_destroy(it);
  }
  /* Item too large: 400 KB limit. */
  size_t big = 410000;
  char *json = malloc(big + 100);
  int off = sprintf(json, "{\"id\":{\"S\":\"a\"},\"r\":{\"N\":\"1\"},\"x\":{\"S\":\"");
  memset(json + off, 'x', big);
  strcpy(json + off + big, "\"}}");
  trb_av *it = J(json);
  free(json);
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_put_item(f->e, "tt1", it, NULL, TRB_RV_NONE, NULL, &st), TRB_EINVAL);
  assert_non_null(strstr(st.msg, "Item size"));
  trb_av_destroy(it);
  /* Unknown table. */
  it = J("{\"id\":{\"S\":\"a\"},\"r\":{\"N\":\"1\"}}");
  assert_int_equal(trb_put_item(f->e, "nope", it, NULL, TRB_RV_NONE, NULL, &st), TRB_ENOTFOUND);
  trb_av_destroy(it);
  /* Key with an extra attribute. */
  trb_av *k = J("{\"id\":{\"S\":\"a\"},\"r\":{\"N\":\"1\"},\"x\":{\"S\":\"a\"}}");
  assert_int_equal(trb_delete_item(f->e, "tt1", k, NULL, TRB_RV_NONE, NULL, &st), TRB_EINVAL);
  assert_non_null(strstr(st.msg, "does not match the schema"));
  trb_av *out = NULL;
  assert_int_equal(trb_get_item(f->e, "tt1", k, &out, &st), TRB_EINVAL);
  trb_av_destroy(k);
  assert_int_equal(last_lsn(f->e), before);
}

static void test_conditions(void **state) {
  fx *f = *state;
  mk_table(f->e, "tt1", "id", TRB_T_S, NULL, 0);
  trb_cond_clause nx[] = {{TRB_COND_NOT_EXISTS, "id", NULL}};
  trb_cond insert_only = {nx, 1};
  trb_av *it = J("{\"id\":{\"S\":\"a\"},\"v\":{\"N\":\"1\"}}");
  assert_int_equal(trb_put_item(f->e, "tt1", it, &insert_only, TRB_RV_NONE, NULL, NULL), TRB_OK);
  uint64_t lsn = last_lsn(f->e);
  trb_av *it2 = J("{\"id\":{\"S\":\"a\"},\"v\":{\"N\":\"2\"}}");
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_put_item(f->e, "tt1", it2, &insert_only, TRB_RV_NONE, NULL, &st),
                   TRB_ECONDFAIL);
  assert_string_equal(st.msg, "The conditional request failed");
  assert_int_equal(last_lsn(f->e), lsn);
  assert_true(item_eq(f->e, "tt1", "{\"id\":{\"S\":\"a\"}}",
                      "{\"id\":{\"S\":\"a\"},\"v\":{\"N\":\"1\"}}"));
  /* Equality compares numbers by value. */
  trb_av *one = V("{\"N\":\"1.0\"}"), *two = V("{\"N\":\"2\"}");
  trb_cond_clause eq1[] = {{TRB_COND_EQ, "v", one}};
  trb_cond c1 = {eq1, 1};
  trb_cond_clause eq2[] = {{TRB_COND_EQ, "v", two}};
  trb_cond c2 = {eq2, 1};
  trb_av *key = J("{\"id\":{\"S\":\"a\"}}");
  assert_int_equal(trb_delete_item(f->e, "tt1", key, &c2, TRB_RV_NONE, NULL, NULL), TRB_ECONDFAIL);
  assert_int_equal(last_lsn(f->e), lsn);
  assert_int_equal(trb_put_item(f->e, "tt1", it2, &c1, TRB_RV_NONE, NULL, NULL), TRB_OK);
  /* exists / not-equal / AND */
  trb_cond_clause ex[] = {{TRB_COND_EXISTS, "v", NULL}, {TRB_COND_NE, "v", one}};
  trb_cond c3 = {ex, 2};
  trb_av *val = V("{\"S\":\"s\"}");
  trb_update_action acts[] = {{0, "w", val}};
  trb_update upd = {acts, 1};
  assert_int_equal(trb_update_item(f->e, "tt1", key, &upd, &c3, TRB_RV_NONE, NULL, NULL), TRB_OK);
  trb_cond_clause ex2[] = {{TRB_COND_EXISTS, "nothere", NULL}};
  trb_cond c4 = {ex2, 1};
  lsn = last_lsn(f->e);
  assert_int_equal(trb_update_item(f->e, "tt1", key, &upd, &c4, TRB_RV_NONE, NULL, NULL),
                   TRB_ECONDFAIL);
  /* An update condition on a missing item sees no item. */
  trb_av *key9 = J("{\"id\":{\"S\":\"nine\"}}");
  assert_int_equal(trb_update_item(f->e, "tt1", key9, &upd, &c3, TRB_RV_NONE, NULL, NULL),
                   TRB_ECONDFAIL);
  assert_null(get(f->e, "tt1", "{\"id\":{\"S\":\"nine\"}}"));
  assert_int_equal(last_lsn(f->e), lsn);
  /* ReturnValuesOnConditionCheckFailure. */
  trb_write w = {.kind = TRB_W_DELETE, .table = "tt1", .key = key, .cond = trb_cond_eval,
                 .cond_ctx = &c4, .old_on_cond_fail = 1};
  assert_int_equal(trb_engine_write(f->e, &w, 1, 0, NULL), TRB_ECONDFAIL);
  assert_non_null(w.old_item);
  trb_write_fini(&w);
  trb_av_destroy(key9);
  trb_av_destroy(val);
  trb_av_destroy(key);
  trb_av_destroy(one);
  trb_av_destroy(two);
  trb_av_destroy(it);
  trb_av_destroy(it2);
}

static void test_no_change_no_record(void **state) {
  fx *f = *state;
  mk_table(f->e, "tt1", "id", TRB_T_S, NULL, 0);
  put(f->e, "tt1", "{\"id\":{\"S\":\"a\"},\"n\":{\"N\":\"100\"},\"m\":{\"M\":{\"x\":{\"S\":\"1\"},\"y\":{\"NS\":[\"1\",\"2\"]}}}}");
  uint64_t lsn = last_lsn(f->e);
  /* Same item, attributes in another order, numbers spelled differently. */
  put(f->e, "tt1", "{\"m\":{\"M\":{\"y\":{\"NS\":[\"2\",\"1.0\"]},\"x\":{\"S\":\"1\"}}},\"n\":{\"N\":\"1e2\"},\"id\":{\"S\":\"a\"}}");
  assert_int_equal(last_lsn(f->e), lsn);
  /* Deleting a missing item, updating nothing. */
  trb_av *k = J("{\"id\":{\"S\":\"missing\"}}");
  assert_int_equal(trb_delete_item(f->e, "tt1", k, NULL, TRB_RV_NONE, NULL, NULL), TRB_OK);
  trb_av_destroy(k);
  k = J("{\"id\":{\"S\":\"a\"}}");
  trb_update upd = {NULL, 0};
  assert_int_equal(trb_update_item(f->e, "tt1", k, &upd, NULL, TRB_RV_NONE, NULL, NULL), TRB_OK);
  trb_av_destroy(k);
  assert_int_equal(last_lsn(f->e), lsn);
  /* A real change appends exactly one record. */
  put(f->e, "tt1", "{\"id\":{\"S\":\"a\"}}");
  assert_int_equal(last_lsn(f->e), lsn + 1);
}

/* Records in the WAL carry kind, old and new images. */
static void test_wal_records(void **state) {
  fx *f = *state;
  mk_table(f->e, "tt1", "id", TRB_T_S, NULL, 0);
  uint64_t start = last_lsn(f->e) + 1;
  put(f->e, "tt1", "{\"id\":{\"S\":\"a\"},\"v\":{\"N\":\"1\"}}");
  put(f->e, "tt1", "{\"id\":{\"S\":\"a\"},\"v\":{\"N\":\"2\"}}");
  trb_av *k = J("{\"id\":{\"S\":\"a\"}}");
  assert_int_equal(trb_delete_item(f->e, "tt1", k, NULL, TRB_RV_NONE, NULL, NULL), TRB_OK);
  trb_av_destroy(k);
  trb_wal_reader *r;
  assert_int_equal(trb_wal_reader_open(trb_engine_wal(f->e), start, &r, NULL), TRB_OK);
  int kinds[] = {TRB_WAL_INSERT, TRB_WAL_MODIFY, TRB_WAL_REMOVE};
  for (int i = 0; i < 3; i++) {
    trb_wal_rec rec;
    assert_int_equal(trb_wal_reader_next(r, &rec, 1000, NULL), TRB_OK);
    assert_int_equal(rec.lsn, start + (uint64_t)i);
    assert_int_equal(rec.kind, kinds[i]);
    assert_int_equal(rec.table_len, 3);
    assert_memory_equal(rec.table, "tt1", 3);
    assert_int_equal(rec.old_img != NULL, i > 0);
    assert_int_equal(rec.new_img != NULL, i < 2);
    trb_av *keys;
    assert_int_equal(trb_av_decode(rec.keys, rec.keys_len, &keys), TRB_OK);
    assert_non_null(trb_av_m_get(keys, "id", 2));
    trb_av_destroy(keys);
    if (i == 1) {
      trb_av *o, *n;
      assert_int_equal(trb_av_decode(rec.old_img, rec.old_len, &o), TRB_OK);
      assert_int_equal(trb_av_decode(rec.new_img, rec.new_len, &n), TRB_OK);
      trb_dec one, two;
      trb_dec_from_i64(1, &one);
      trb_dec_from_i64(2, &two);
      assert_int_equal(trb_dec_cmp(&trb_av_m_get(o, "v", 1)->u.n, &one), 0);
      assert_int_equal(trb_dec_cmp(&trb_av_m_get(n, "v", 1)->u.n, &two), 0);
      trb_av_destroy(o);
      trb_av_destroy(n);
    }
  }
  trb_wal_reader_close(r);
}

static void query_all(trb_engine *e, trb_query_req *q, trb_av ***items, size_t *n,
                      size_t *pages) {
  *items = NULL;
  *n = 0;
  *pages = 0;
  trb_av *start = NULL;
  for (;;) {
    trb_page p;
    q->exclusive_start_key = start;
    trb_status st;
    trb_status_init(&st);
    trb_err rc = trb_query(e, q, &p, &st);
    if (rc) fprintf(stderr, "query: %s\n", trb_status_msg(&st));
    assert_int_equal(rc, TRB_OK);
    (*pages)++;
    *items = realloc(*items, (*n + p.n + 1) * sizeof **items);
    for (size_t i = 0; i < p.n; i++) {
      (*items)[(*n)++] = p.items[i];
      p.items[i] = NULL;
    }
    p.n = 0;
    trb_av_destroy(start);
    start = p.last_key;
    p.last_key = NULL;
    trb_page_fini(&p);
    if (!start) break;
  }
}

static long sk_of(const trb_av *it) {
  const trb_av *v = trb_av_m_get(it, "r", 1);
  char buf[TRB_DEC_STR_MAX];
  trb_dec_format(&v->u.n, buf, sizeof buf);
  return strtol(buf, NULL, 10);
}

static void free_items(trb_av **items, size_t n) {
  for (size_t i = 0; i < n; i++) trb_av_destroy(items[i]);
  free(items);
}

static void test_query(void **state) {
  fx *f = *state;
  mk_table(f->e, "qqq", "p", TRB_T_S, "r", TRB_T_N);
  /* Partition "a" has sort keys -50..49 (inserted shuffled); others are noise. */
  uint64_t seed = trb_test_seed();
  int order[100];
  for (int i = 0; i < 100; i++) order[i] = i - 50;
  for (int i = 99; i > 0; i--) {
    int j = (int)(trb_test_rand(&seed) % (uint64_t)(i + 1));
    int t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  char buf[256];
  for (int i = 0; i < 100; i++) {
    snprintf(buf, sizeof buf, "{\"p\":{\"S\":\"a\"},\"r\":{\"N\":\"%d\"}}", order[i]);
    put(f->e, "qqq", buf);
    snprintf(buf, sizeof buf, "{\"p\":{\"S\":\"b%d\"},\"r\":{\"N\":\"%d\"}}", i, order[i]);
    put(f->e, "qqq", buf);
  }
  trb_av *pk = V("{\"S\":\"a\"}");
  trb_query_req q = {.table = "qqq", .pk = pk};
  trb_av **items;
  size_t n, pages;
  query_all(f->e, &q, &items, &n, &pages);
  assert_int_equal(n, 100);
  for (size_t i = 0; i < n; i++) assert_int_equal(sk_of(items[i]), (long)i - 50);
  free_items(items, n);
  /* Backward with paging by 7: every item once, in reverse order. */
  q.backward = 1;
  q.limit = 7;
  query_all(f->e, &q, &items, &n, &pages);
  assert_int_equal(n, 100);
  assert_int_equal(pages, 15); /* 14 full pages + the last with 2 items */
  for (size_t i = 0; i < n; i++) assert_int_equal(sk_of(items[i]), 49 - (long)i);
  free_items(items, n);
  /* Each comparison, both directions. */
  struct { trb_sk_op op; const char *a, *b; long lo, hi; } cases[] = {
      {TRB_SK_EQ, "{\"N\":\"3\"}", NULL, 3, 3},
      {TRB_SK_LT, "{\"N\":\"-10\"}", NULL, -50, -11},
      {TRB_SK_LE, "{\"N\":\"-10\"}", NULL, -50, -10},
      {TRB_SK_GT, "{\"N\":\"40\"}", NULL, 41, 49},
      {TRB_SK_GE, "{\"N\":\"4e1\"}", NULL, 40, 49},
      {TRB_SK_BETWEEN, "{\"N\":\"-2\"}", "{\"N\":\"2.5\"}", -2, 2},
      {TRB_SK_GT, "{\"N\":\"100\"}", NULL, 1, 0},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    for (int back = 0; back < 2; back++) {
      trb_av *a = V(cases[c].a), *b = cases[c].b ? V(cases[c].b) : NULL;
      trb_query_req q2 = {.table = "qqq", .pk = pk, .sk_op = cases[c].op, .sk1 = a, .sk2 = b,
                          .backward = back, .limit = 3};
      query_all(f->e, &q2, &items, &n, &pages);
      long expect_n = cases[c].hi - cases[c].lo + 1;
      assert_int_equal((long)n, expect_n < 0 ? 0 : expect_n);
      for (size_t i = 0; i < n; i++)
        assert_int_equal(sk_of(items[i]), back ? cases[c].hi - (long)i : cases[c].lo + (long)i);
      free_items(items, n);
      trb_av_destroy(a);
      trb_av_destroy(b);
    }
  }
  /* begins_with on N is refused; begins_with on S works. */
  trb_av *a = V("{\"N\":\"1\"}");
  trb_query_req q3 = {.table = "qqq", .pk = pk, .sk_op = TRB_SK_BEGINS_WITH, .sk1 = a};
  trb_page p;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_query(f->e, &q3, &p, &st), TRB_EINVAL);
  trb_av_destroy(a);
  mk_table(f->e, "qqs", "p", TRB_T_S, "s", TRB_T_S);
  const char *sks[] = {"ab", "a", "abc", "abd", "b", "aa", "ab\xc3\xa9", "ac"};
  for (size_t i = 0; i < sizeof sks / sizeof *sks; i++) {
    snprintf(buf, sizeof buf, "{\"p\":{\"S\":\"x\"},\"s\":{\"S\":\"%s\"}}", sks[i]);
    put(f->e, "qqs", buf);
  }
  trb_av *pre = V("{\"S\":\"ab\"}");
  trb_av *px = V("{\"S\":\"x\"}");
  trb_query_req q4 = {.table = "qqs", .pk = px, .sk_op = TRB_SK_BEGINS_WITH, .sk1 = pre};
  query_all(f->e, &q4, &items, &n, &pages);
  assert_int_equal(n, 4); /* ab, abc, abd, abé */
  const char *expect[] = {"ab", "abc", "abd", "ab\xc3\xa9"};
  for (size_t i = 0; i < n; i++) {
    const trb_av *s = trb_av_m_get(items[i], "s", 1);
    assert_int_equal(s->u.s.len, strlen(expect[i]));
    assert_memory_equal(s->u.s.p, expect[i], s->u.s.len);
  }
  free_items(items, n);
  /* 1 MB page rule: items of ~100 KB, pages stop after crossing 1 MB. */
  mk_table(f->e, "big", "p", TRB_T_S, "r", TRB_T_N);
  char *json = malloc(120000);
  for (int i = 0; i < 25; i++) {
    int off = sprintf(json, "{\"p\":{\"S\":\"a\"},\"r\":{\"N\":\"%d\"},\"x\":{\"S\":\"", i);
    memset(json + off, 'y', 100000);
    strcpy(json + off + 100000, "\"}}");
    put(f->e, "big", json);
  }
  free(json);
  trb_query_req q5 = {.table = "big", .pk = pk};
  assert_int_equal(trb_query(f->e, &q5, &p, &st), TRB_OK);
  assert_int_equal(p.n, 11); /* 11 x ~100 KB crosses 1 MiB */
  assert_non_null(p.last_key);
  trb_page_fini(&p);
  query_all(f->e, &q5, &items, &n, &pages);
  assert_int_equal(n, 25);
  assert_int_equal(pages, 3);
  free_items(items, n);
  trb_av_destroy(pre);
  trb_av_destroy(px);
  trb_av_destroy(pk);
}

static void test_scan_segments(void **state) {
  fx *f = *state;
  mk_table(f->e, "sss", "id", TRB_T_N, NULL, 0);
  char buf[128];
  const int N = 500;
  for (int i = 0; i < N; i++) {
    snprintf(buf, sizeof buf, "{\"id\":{\"N\":\"%d\"}}", i);
    put(f->e, "sss", buf);
  }
  uint32_t totals[] = {1, 3, 7, 64};
  for (size_t t = 0; t < sizeof totals / sizeof *totals; t++) {
    int *seen = calloc((size_t)N, sizeof *seen);
    for (uint32_t seg = 0; seg < totals[t]; seg++) {
      trb_av *start = NULL;
      for (;;) {
        trb_scan_req s = {.table = "sss", .segment = seg, .total_segments = totals[t],
                          .limit = 13, .exclusive_start_key = start};
        trb_page p;
        assert_int_equal(trb_scan(f->e, &s, &p, NULL), TRB_OK);
        for (size_t i = 0; i < p.n; i++) {
          char nb[TRB_DEC_STR_MAX];
          trb_dec_format(&trb_av_m_get(p.items[i], "id", 2)->u.n, nb, sizeof nb);
          seen[atoi(nb)]++;
        }
        trb_av_destroy(start);
        start = p.last_key;
        p.last_key = NULL;
        trb_page_fini(&p);
        if (!start) break;
      }
    }
    for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
    free(seen);
  }
  trb_scan_req bad = {.table = "sss", .segment = 3, .total_segments = 3};
  trb_page p;
  assert_int_equal(trb_scan(f->e, &bad, &p, NULL), TRB_EINVAL);
}

/* Many threads write at once: group commit carries several writes per
 * fsync, and every write is there after a restart. */
typedef struct wr_arg {
  trb_engine *e;
  int id, n;
} wr_arg;

static void *writer(void *p) {
  wr_arg *a = p;
  char buf[128];
  for (int i = 0; i < a->n; i++) {
    snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"w%d-%d\"},\"v\":{\"N\":\"%d\"}}", a->id, i, i);
    trb_av *it = NULL;
    trb_item_from_json_text(buf, strlen(buf), &it, NULL);
    if (trb_put_item(a->e, "ccc", it, NULL, TRB_RV_NONE, NULL, NULL)) abort();
    trb_av_destroy(it);
  }
  return NULL;
}

static void test_concurrent_and_recovery(void **state) {
  fx *f = *state;
  mk_table(f->e, "ccc", "id", TRB_T_S, NULL, 0);
  enum { T = 16, N = 100 };
  pthread_t th[T];
  wr_arg args[T];
  for (int i = 0; i < T; i++) {
    args[i] = (wr_arg){f->e, i, N};
    pthread_create(&th[i], NULL, writer, &args[i]);
  }
  for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
  trb_engine_stats s;
  trb_engine_get_stats(f->e, &s);
  assert_true(s.writes >= T * N);
  assert_true(s.groups < s.writes); /* some groups held more than one write */
  reopen(f);
  trb_table_info info;
  assert_int_equal(trb_table_describe(f->e, "ccc", &info, NULL), TRB_OK);
  assert_int_equal(info.item_count, T * N);
  char buf[128];
  for (int t = 0; t < T; t++)
    for (int i = 0; i < N; i += 17) {
      snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"w%d-%d\"}}", t, i);
      char *g = get(f->e, "ccc", buf);
      assert_non_null(g);
      free(g);
    }
}

/* The commit delay: after a group of two or more, the commit thread waits
 * (here up to 30 s) for as many writes as that group held before taking the
 * next; a lone writer never waits; close is not held up by the wait. The same
 * steps with the delay off give the control: the lone write commits alone.
 * The fdatasync seam holds the first group so that the next holds two. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_armed, gate_entered;
static int gated_fdatasync(int fd) {
  pthread_mutex_lock(&gate_mu);
  if (gate_armed) {
    gate_entered = 1;
    pthread_cond_broadcast(&gate_cv);
    while (gate_armed) pthread_cond_wait(&gate_cv, &gate_mu);
  }
  pthread_mutex_unlock(&gate_mu);
  return fdatasync(fd);
}

typedef struct dput {
  trb_engine *e;
  const char *id;
  pthread_t th;
  int done;
} dput;
static void *dput_main(void *p) {
  dput *d = p;
  char buf[64];
  snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"%s\"}}", d->id);
  put(d->e, "dly", buf);
  __atomic_store_n(&d->done, 1, __ATOMIC_RELEASE);
  return NULL;
}
static void dput_start(dput *d, trb_engine *e, const char *id) {
  *d = (dput){.e = e, .id = id};
  assert_int_equal(pthread_create(&d->th, NULL, dput_main, d), 0);
}
static size_t queued(trb_engine *e) {
  pthread_mutex_lock(&e->qmu);
  size_t n = e->qlen;
  pthread_mutex_unlock(&e->qmu);
  return n;
}
/* Until n requests are queued, or d (if given) has finished. */
static void wait_queued(trb_engine *e, size_t n, const dput *d) {
  while (queued(e) < n && !(d && __atomic_load_n(&d->done, __ATOMIC_ACQUIRE))) usleep(1000);
}

static void commit_delay_case(uint32_t delay_us) {
  char *dir = trb_test_mkdtemp("engine-delay");
  trb_engine *e = open_engine_delay(dir, delay_us);
  mk_table(e, "dly", "id", TRB_T_S, NULL, 0);
  int64_t t0 = trb_now_us();
  for (int i = 0; i < 3; i++) put(e, "dly", "{\"id\":{\"S\":\"lone\"},\"n\":{\"N\":\"1\"}}");
  put(e, "dly", "{\"id\":{\"S\":\"lone\"}}");
  assert_true(trb_now_us() - t0 < 15000000); /* a lone writer does not wait */

  /* a1 alone in a group, held in its fdatasync while b1 and c1 queue */
  trb_sys.fdatasync = gated_fdatasync;
  gate_armed = 1;
  gate_entered = 0;
  dput a1, b1, c1, a2;
  dput_start(&a1, e, "a1");
  pthread_mutex_lock(&gate_mu);
  while (!gate_entered) pthread_cond_wait(&gate_cv, &gate_mu);
  pthread_mutex_unlock(&gate_mu);
  dput_start(&b1, e, "b1");
  dput_start(&c1, e, "c1");
  wait_queued(e, 2, NULL);
  pthread_mutex_lock(&gate_mu);
  gate_armed = 0;
  pthread_cond_broadcast(&gate_cv);
  pthread_mutex_unlock(&gate_mu);
  pthread_join(a1.th, NULL);
  pthread_join(b1.th, NULL);
  pthread_join(c1.th, NULL); /* b1 and c1 were one group of two */
  trb_engine_stats s0, s1;
  trb_engine_get_stats(e, &s0);

  /* a2 alone: with the delay it waits for a second write, d2 */
  dput_start(&a2, e, "a2");
  int64_t t1 = trb_now_us();
  if (delay_us) {
    wait_queued(e, 1, &a2);
    usleep(50000);
    assert_false(__atomic_load_n(&a2.done, __ATOMIC_ACQUIRE));
  } else {
    pthread_join(a2.th, NULL);
  }
  put(e, "dly", "{\"id\":{\"S\":\"d2\"}}");
  if (delay_us) pthread_join(a2.th, NULL);
  assert_true(trb_now_us() - t1 < 15000000); /* d2's arrival ended the wait */
  trb_engine_get_stats(e, &s1);
  assert_int_equal(s1.groups - s0.groups, delay_us ? 1 : 2);
  assert_int_equal(s1.writes - s0.writes, 2);
  trb_sysio_reset();

  /* the commit thread waits again (its last group held two); close ends it */
  int64_t t2 = trb_now_us();
  trb_engine_close(e);
  assert_true(trb_now_us() - t2 < 15000000);
  e = open_engine(dir);
  const char *ids[] = {"a1", "b1", "c1", "a2", "d2"};
  char buf[64];
  for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
    snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"%s\"}}", ids[i]);
    char *g = get(e, "dly", buf);
    assert_non_null(g);
    free(g);
  }
  trb_engine_close(e);
  trb_test_rmrf(dir);
  free(dir);
}

static void test_commit_delay(void **state) {
  (void)state;
  commit_delay_case(30 * 1000 * 1000);
  commit_delay_case(0);
}

/* The store lags the WAL (as after a crash before RocksDB flushed): remove
 * the store entirely and recovery rebuilds everything from the WAL. */
static void test_replay_rebuilds_store(void **state) {
  fx *f = *state;
  mk_table(f->e, "rrr", "id", TRB_T_S, NULL, 0);
  mk_table(f->e, "gone", "id", TRB_T_S, NULL, 0);
  put(f->e, "gone", "{\"id\":{\"S\":\"x\"}}");
  char buf[128];
  for (int i = 0; i < 300; i++) {
    snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"k%d\"},\"v\":{\"N\":\"%d\"}}", i % 100, i);
    put(f->e, "rrr", buf);
  }
  trb_av *k = J("{\"id\":{\"S\":\"k5\"}}");
  assert_int_equal(trb_delete_item(f->e, "rrr", k, NULL, TRB_RV_NONE, NULL, NULL), TRB_OK);
  trb_av_destroy(k);
  assert_int_equal(trb_table_delete(f->e, "gone", NULL, NULL), TRB_OK);
  trb_engine_close(f->e);
  char *store = NULL;
  assert_true(asprintf(&store, "%s/store", f->dir) > 0);
  trb_test_rmrf(store);
  free(store);
  f->e = open_engine(f->dir);
  trb_table_info info;
  assert_int_equal(trb_table_describe(f->e, "rrr", &info, NULL), TRB_OK);
  assert_int_equal(info.item_count, 99);
  assert_int_equal(trb_table_describe(f->e, "gone", &info, NULL), TRB_ENOTFOUND);
  assert_true(item_eq(f->e, "rrr", "{\"id\":{\"S\":\"k7\"}}",
                      "{\"id\":{\"S\":\"k7\"},\"v\":{\"N\":\"207\"}}"));
  assert_true(item_eq(f->e, "rrr", "{\"id\":{\"S\":\"k5\"}}", NULL));
}

static void test_transaction_atomic(void **state) {
  fx *f = *state;
  mk_table(f->e, "ttt", "id", TRB_T_S, NULL, 0);
  put(f->e, "ttt", "{\"id\":{\"S\":\"exists\"}}");
  trb_av *a = J("{\"id\":{\"S\":\"a\"}}"), *b = J("{\"id\":{\"S\":\"b\"}}");
  trb_av *kx = J("{\"id\":{\"S\":\"exists\"}}");
  trb_cond_clause nx[] = {{TRB_COND_NOT_EXISTS, "id", NULL}};
  trb_cond c = {nx, 1};
  uint64_t lsn = last_lsn(f->e);
  trb_write w[3] = {
      {.kind = TRB_W_PUT, .table = "ttt", .item = a},
      {.kind = TRB_W_PUT, .table = "ttt", .item = b},
      {.kind = TRB_W_CHECK, .table = "ttt", .key = kx, .cond = trb_cond_eval, .cond_ctx = &c},
  };
  assert_int_equal(trb_engine_write(f->e, w, 3, TRB_WRITE_ATOMIC, NULL), TRB_ECONDFAIL);
  assert_int_equal(w[0].rc, TRB_OK);
  assert_int_equal(w[2].rc, TRB_ECONDFAIL);
  for (int i = 0; i < 3; i++) trb_write_fini(&w[i]);
  assert_int_equal(last_lsn(f->e), lsn);
  assert_null(get(f->e, "ttt", "{\"id\":{\"S\":\"a\"}}"));
  /* Now without the failing check: both apply, consecutive LSNs + commit. */
  assert_int_equal(trb_engine_write(f->e, w, 2, TRB_WRITE_ATOMIC, NULL), TRB_OK);
  assert_int_equal(w[0].lsn, lsn + 1);
  assert_int_equal(w[1].lsn, lsn + 2);
  assert_int_equal(last_lsn(f->e), lsn + 3);
  for (int i = 0; i < 2; i++) trb_write_fini(&w[i]);
  reopen(f);
  char *g = get(f->e, "ttt", "{\"id\":{\"S\":\"b\"}}");
  assert_non_null(g);
  free(g);
  /* One item twice in a transaction is refused. */
  trb_write w2[2] = {{.kind = TRB_W_PUT, .table = "ttt", .item = a},
                     {.kind = TRB_W_PUT, .table = "ttt", .item = a}};
  assert_int_equal(trb_engine_write(f->e, w2, 2, TRB_WRITE_ATOMIC, NULL), TRB_EINVAL);
  for (int i = 0; i < 2; i++) trb_write_fini(&w2[i]);
  trb_av_destroy(a);
  trb_av_destroy(b);
  trb_av_destroy(kx);
}

/* Table settings (ext) are stored, updated through the WAL, and survive a
 * restart and a full replay. */
static void test_table_ext(void **state) {
  fx *f = *state;
  trb_keyschema ks;
  memset(&ks, 0, sizeof ks);
  strcpy(ks.pk_name, "id");
  ks.pk_type = TRB_T_S;
  json_t *ext = json_pack("{s:s,s:i}", "BillingMode", "PROVISIONED", "rcu", 5);
  trb_table_info info;
  assert_int_equal(trb_table_create(f->e, "ext", &ks, ext, &info, NULL), TRB_OK);
  json_decref(ext);
  assert_string_equal(json_string_value(json_object_get(info.def.ext, "BillingMode")),
                      "PROVISIONED");
  trb_table_info_fini(&info);
  uint64_t lsn = last_lsn(f->e);
  json_t *ext2 = json_pack("{s:s}", "BillingMode", "PAY_PER_REQUEST");
  assert_int_equal(trb_table_update(f->e, "ext", ext2, NULL, NULL), TRB_OK);
  json_decref(ext2);
  assert_int_equal(last_lsn(f->e), lsn + 1);
  assert_int_equal(trb_table_update(f->e, "nope", NULL, NULL, NULL), TRB_ENOTFOUND);
  reopen(f);
  assert_int_equal(trb_table_describe(f->e, "ext", &info, NULL), TRB_OK);
  assert_string_equal(json_string_value(json_object_get(info.def.ext, "BillingMode")),
                      "PAY_PER_REQUEST");
  assert_null(json_object_get(info.def.ext, "rcu"));
  trb_table_info_fini(&info);
  /* Rebuild the store from the WAL alone: same settings. */
  trb_engine_close(f->e);
  char *store = NULL;
  assert_true(asprintf(&store, "%s/store", f->dir) > 0);
  trb_test_rmrf(store);
  free(store);
  f->e = open_engine(f->dir);
  assert_int_equal(trb_table_describe(f->e, "ext", &info, NULL), TRB_OK);
  assert_string_equal(json_string_value(json_object_get(info.def.ext, "BillingMode")),
                      "PAY_PER_REQUEST");
  trb_table_info_fini(&info);
}

static void test_data_dir_locked(void **state) {
  fx *f = *state;
  trb_engine_opts o;
  trb_engine_opts_default(&o);
  o.data_dir = f->dir;
  trb_engine *e2 = NULL;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_engine_open(&o, &e2, &st), TRB_EINUSE);
  assert_non_null(strstr(st.msg, "in use"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_tables, setup, teardown),
      cmocka_unit_test_setup_teardown(test_crud, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_input_never_reaches_wal, setup, teardown),
      cmocka_unit_test_setup_teardown(test_conditions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_change_no_record, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wal_records, setup, teardown),
      cmocka_unit_test_setup_teardown(test_query, setup, teardown),
      cmocka_unit_test_setup_teardown(test_scan_segments, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_and_recovery, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replay_rebuilds_store, setup, teardown),
      cmocka_unit_test_setup_teardown(test_transaction_atomic, setup, teardown),
      cmocka_unit_test_setup_teardown(test_table_ext, setup, teardown),
      cmocka_unit_test_setup_teardown(test_data_dir_locked, setup, teardown),
      cmocka_unit_test(test_commit_delay),
  };
  return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
