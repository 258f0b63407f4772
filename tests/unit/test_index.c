/*
 * test_index.c -- secondary indexes in the engine: the definition format,
 * projections and entry keys, index key checks, and a random model test in
 * which every index always equals the projection of the table's items,
 * through close/open, a replay from the WAL alone (store removed), and an
 * index added later (backfill) and dropped.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "testutil.h"

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

static trb_keyschema KS(const char *pk, trb_type pt, const char *sk, trb_type stype) {
  trb_keyschema ks;
  memset(&ks, 0, sizeof ks);
  strcpy(ks.pk_name, pk);
  ks.pk_type = pt;
  if (sk) {
    ks.has_sk = 1;
    strcpy(ks.sk_name, sk);
    ks.sk_type = stype;
  }
  return ks;
}

static trb_indexdef IX(const char *name, int local, trb_keyschema ks, trb_proj p, char **inc,
                       size_t ninc) {
  trb_indexdef d;
  memset(&d, 0, sizeof d);
  strcpy(d.name, name);
  d.local = local;
  d.ks = ks;
  d.proj = p;
  d.include = inc;
  d.ninclude = ninc;
  return d;
}

static const trb_keyschema *table_ks(void) {
  static trb_keyschema ks;
  ks = KS("c", TRB_T_S, "o", TRB_T_N);
  return &ks;
}

/* The table's indexes in the tests: an LSI (KEYS_ONLY), a GSI (INCLUDE t),
 * a GSI without a sort key (ALL). */
static trb_indexset *std_set(void) {
  trb_indexset *s = trb_indexset_new();
  static char *inc[] = {"t"};
  trb_indexdef a = IX("byDay", 1, KS("c", TRB_T_S, "d", TRB_T_S), TRB_PROJ_KEYS_ONLY, NULL, 0);
  trb_indexdef b = IX("byStatus", 0, KS("s", TRB_T_S, "d", TRB_T_S), TRB_PROJ_INCLUDE, inc, 1);
  trb_indexdef c = IX("byTotal", 0, KS("t", TRB_T_N, NULL, 0), TRB_PROJ_ALL, NULL, 0);
  assert_int_equal(trb_indexset_add(s, &a), TRB_OK);
  assert_int_equal(trb_indexset_add(s, &b), TRB_OK);
  assert_int_equal(trb_indexset_add(s, &c), TRB_OK);
  return s;
}

static void test_tabledef_round_trip(void **state) {
  (void)state;
  trb_tabledef d;
  memset(&d, 0, sizeof d);
  strcpy(d.name, "shop");
  d.ks = *table_ks();
  d.table_id = 7;
  d.ix = std_set();
  d.ix->d[1].cf_id = (1ull << 63) | 99;
  trb_buf b;
  trb_buf_init(&b, 0);
  assert_int_equal(trb_tabledef_encode(&d, &b), TRB_OK);
  trb_tabledef e;
  assert_int_equal(trb_tabledef_decode(b.p, b.len, &e, NULL), TRB_OK);
  assert_non_null(e.ix);
  assert_int_equal(e.ix->n, 3);
  for (size_t i = 0; i < 3; i++) {
    const trb_indexdef *x = &d.ix->d[i], *y = &e.ix->d[i];
    assert_string_equal(x->name, y->name);
    assert_int_equal(x->local, y->local);
    assert_int_equal(x->proj, y->proj);
    assert_int_equal(x->cf_id, y->cf_id);
    assert_memory_equal(&x->ks, &y->ks, sizeof x->ks);
    assert_int_equal(x->ninclude, y->ninclude);
    for (size_t j = 0; j < x->ninclude; j++) assert_string_equal(x->include[j], y->include[j]);
  }
  /* copies share the set */
  trb_tabledef c;
  trb_tabledef_copy(&c, &e);
  assert_ptr_equal(c.ix, e.ix);
  trb_tabledef_fini(&c);
  trb_tabledef_fini(&e);
  trb_tabledef_fini(&d);
  /* a malformed index list is refused */
  trb_buf_reset(&b);
  const char *bad = "T\x01{\"name\":\"x\",\"id\":\"1\",\"created_us\":0,\"pk\":{\"name\":\"a\",\"type\":\"S\"},"
                    "\"ix\":[{\"name\":\"i\"}]}";
  assert_int_equal(trb_tabledef_decode(bad, strlen(bad), &e, NULL), TRB_ECORRUPT);
  trb_buf_fini(&b);
}

static void test_project_cover_check(void **state) {
  (void)state;
  trb_indexset *s = std_set();
  trb_av *it = J("{\"c\":{\"S\":\"a\"},\"o\":{\"N\":\"1\"},\"d\":{\"S\":\"x\"},\"s\":{\"S\":\"open\"},"
                 "\"t\":{\"N\":\"5\"},\"z\":{\"BOOL\":true}}");
  const char *want[] = {
      "{\"c\":{\"S\":\"a\"},\"o\":{\"N\":\"1\"},\"d\":{\"S\":\"x\"}}",
      "{\"c\":{\"S\":\"a\"},\"o\":{\"N\":\"1\"},\"d\":{\"S\":\"x\"},\"s\":{\"S\":\"open\"},\"t\":{\"N\":\"5\"}}",
      NULL};
  for (size_t i = 0; i < 3; i++) {
    assert_true(trb_index_covers(&s->d[i], it));
    trb_av *p = trb_index_project(&s->d[i], table_ks(), it);
    trb_av *w = want[i] ? J(want[i]) : trb_av_copy(it);
    assert_true(trb_av_equal(p, w));
    trb_av_destroy(p);
    trb_av_destroy(w);
  }
  trb_av *lk = trb_index_last_key(&s->d[1], table_ks(), it);
  trb_av *wl = J("{\"s\":{\"S\":\"open\"},\"d\":{\"S\":\"x\"},\"c\":{\"S\":\"a\"},\"o\":{\"N\":\"1\"}}");
  assert_true(trb_av_equal(lk, wl));
  assert_int_equal(trb_index_check_start_key(&s->d[1], table_ks(), lk, NULL), TRB_OK);
  assert_int_equal(trb_index_check_start_key(&s->d[0], table_ks(), lk, NULL), TRB_EINVAL);
  trb_av_destroy(lk);
  trb_av_destroy(wl);
  /* sparse: missing, wrong type and empty keys have no entry */
  trb_av *sp = J("{\"c\":{\"S\":\"a\"},\"o\":{\"N\":\"1\"},\"s\":{\"S\":\"\"},\"t\":{\"S\":\"5\"}}");
  for (size_t i = 0; i < 3; i++) assert_false(trb_index_covers(&s->d[i], sp));
  trb_status st;
  trb_status_init(&st);
  trb_av *wt = J("{\"c\":{\"S\":\"a\"},\"o\":{\"N\":\"1\"},\"t\":{\"S\":\"5\"}}");
  assert_int_equal(trb_index_check_item(s, wt, &st), TRB_EINVAL);
  assert_string_equal(trb_status_msg(&st),
                      "One or more parameter values were invalid: Type mismatch for Index Key t "
                      "Expected: N Actual: S IndexName: byTotal");
  trb_av *em = J("{\"c\":{\"S\":\"a\"},\"o\":{\"N\":\"1\"},\"d\":{\"S\":\"\"}}");
  assert_int_equal(trb_index_check_item(s, em, &st), TRB_EINVAL);
  assert_non_null(strstr(trb_status_msg(&st), "IndexName: byDay, IndexKey: d"));
  assert_int_equal(trb_index_check_item(s, it, NULL), TRB_OK);
  trb_av_destroy(em);
  trb_av_destroy(wt);
  trb_av_destroy(sp);
  trb_av_destroy(it);
  trb_indexset_unref(s);
}

/* Entry keys sort by index partition, then index sort key (numerically),
 * then table key: checked on random pairs within one partition. */
static void test_entry_key_order(void **state) {
  (void)state;
  uint64_t rs = trb_test_seed();
  trb_keyschema tks = KS("c", TRB_T_S, "o", TRB_T_N);
  trb_indexdef ix = IX("byN", 0, KS("p", TRB_T_S, "n", TRB_T_N), TRB_PROJ_KEYS_ONLY, NULL, 0);
  for (int k = 0; k < 2000; k++) {
    char ja[256], jb[256];
    long na = (long)(trb_test_rand(&rs) % 21) - 10, nb = (long)(trb_test_rand(&rs) % 21) - 10;
    unsigned ca = (unsigned)(trb_test_rand(&rs) % 4), cb = (unsigned)(trb_test_rand(&rs) % 4);
    snprintf(ja, sizeof ja, "{\"p\":{\"S\":\"x\"},\"n\":{\"N\":\"%ld.5\"},\"c\":{\"S\":\"c%u\"},\"o\":{\"N\":\"1\"}}", na, ca);
    snprintf(jb, sizeof jb, "{\"p\":{\"S\":\"x\"},\"n\":{\"N\":\"%ld.5\"},\"c\":{\"S\":\"c%u\"},\"o\":{\"N\":\"1\"}}", nb, cb);
    trb_av *a = J(ja), *b = J(jb);
    trb_buf ka, kb;
    trb_buf_init(&ka, 0);
    trb_buf_init(&kb, 0);
    assert_int_equal(trb_index_entry_key(&ix, &tks, a, &ka), TRB_OK);
    assert_int_equal(trb_index_entry_key(&ix, &tks, b, &kb), TRB_OK);
    size_t m = ka.len < kb.len ? ka.len : kb.len;
    int c = memcmp(ka.p, kb.p, m);
    if (!c) c = ka.len < kb.len ? -1 : ka.len > kb.len;
    int want = na != nb ? (na < nb ? -1 : 1) : ca != cb ? (ca < cb ? -1 : 1) : 0;
    assert_int_equal(c < 0 ? -1 : c > 0, want);
    trb_buf_fini(&ka);
    trb_buf_fini(&kb);
    trb_av_destroy(a);
    trb_av_destroy(b);
  }
}

/* ---- the engine ---- */

typedef struct fx {
  char *dir;
  trb_engine *e;
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  f->dir = trb_test_mkdtemp("index");
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

/* Every entry of index `name` by Scan (checking paging), as a list. */
static trb_av **scan_index(trb_engine *e, const char *name, size_t *n) {
  trb_av **all = NULL;
  *n = 0;
  trb_av *esk = NULL;
  for (;;) {
    trb_scan_req s;
    memset(&s, 0, sizeof s);
    s.table = "shop";
    s.index = name;
    s.limit = 7;
    s.exclusive_start_key = esk;
    trb_page p;
    trb_status st;
    trb_status_init(&st);
    trb_err rc = trb_scan(e, &s, &p, &st);
    if (rc) fprintf(stderr, "scan %s: %s\n", name, trb_status_msg(&st));
    assert_int_equal(rc, TRB_OK);
    all = realloc(all, (*n + p.n + 1) * sizeof *all);
    for (size_t i = 0; i < p.n; i++) {
      all[(*n)++] = p.items[i];
      p.items[i] = NULL;
    }
    p.n = 0;
    trb_av_destroy(esk);
    esk = p.last_key;
    p.last_key = NULL;
    trb_page_fini(&p);
    if (!esk) break;
  }
  return all;
}

static void free_list(trb_av **l, size_t n) {
  for (size_t i = 0; i < n; i++) trb_av_destroy(l[i]);
  free(l);
}

/* The index holds exactly the projections of the table's covered items,
 * and its counter says how many. */
static void check_index(trb_engine *e, size_t pos) {
  trb_table_info info;
  assert_int_equal(trb_table_describe(e, "shop", &info, NULL), TRB_OK);
  const trb_indexdef *ix = &info.def.ix->d[pos];
  trb_scan_req s;
  memset(&s, 0, sizeof s);
  s.table = "shop";
  s.max_bytes = 64 << 20;
  trb_page tp;
  assert_int_equal(trb_scan(e, &s, &tp, NULL), TRB_OK);
  size_t n;
  trb_av **got = scan_index(e, ix->name, &n);
  size_t want = 0;
  for (size_t i = 0; i < tp.n; i++) {
    if (!trb_index_covers(ix, tp.items[i])) continue;
    want++;
    trb_av *p = trb_index_project(ix, &info.def.ks, tp.items[i]);
    int found = 0;
    for (size_t j = 0; j < n && !found; j++) found = trb_av_equal(p, got[j]);
    if (!found) {
      char *t = trb_item_to_json_text(p);
      fprintf(stderr, "index %s misses %s\n", ix->name, t);
      free(t);
    }
    assert_true(found);
    trb_av_destroy(p);
  }
  assert_int_equal(n, want);
  assert_int_equal(info.ix_count[pos], want);
  free_list(got, n);
  trb_page_fini(&tp);
  trb_table_info_fini(&info);
}

static void check_all(trb_engine *e) {
  trb_table_info info;
  assert_int_equal(trb_table_describe(e, "shop", &info, NULL), TRB_OK);
  size_t n = info.def.ix ? info.def.ix->n : 0;
  trb_table_info_fini(&info);
  for (size_t i = 0; i < n; i++) check_index(e, i);
}

static void workload(trb_engine *e, uint64_t *rs, int steps) {
  static const char *statuses[] = {"open", "paid", "lost"};
  for (int k = 0; k < steps; k++) {
    char json[512];
    unsigned c = (unsigned)(trb_test_rand(rs) % 6), o = (unsigned)(trb_test_rand(rs) % 8);
    unsigned r = (unsigned)(trb_test_rand(rs) % 10);
    trb_status st;
    trb_status_init(&st);
    if (r < 6) {
      int n = snprintf(json, sizeof json, "{\"c\":{\"S\":\"c%u\"},\"o\":{\"N\":\"%u\"}", c, o);
      if (trb_test_rand(rs) % 4) n += snprintf(json + n, sizeof json - (size_t)n, ",\"d\":{\"S\":\"d%u\"}", (unsigned)(trb_test_rand(rs) % 5));
      if (trb_test_rand(rs) % 3) n += snprintf(json + n, sizeof json - (size_t)n, ",\"s\":{\"S\":\"%s\"}", statuses[trb_test_rand(rs) % 3]);
      if (trb_test_rand(rs) % 2) n += snprintf(json + n, sizeof json - (size_t)n, ",\"t\":{\"N\":\"%u\"}", (unsigned)(trb_test_rand(rs) % 4));
      if (trb_test_rand(rs) % 2) n += snprintf(json + n, sizeof json - (size_t)n, ",\"x\":{\"S\":\"pad\"}");
      snprintf(json + n, sizeof json - (size_t)n, "}");
      trb_av *it = J(json);
      assert_int_equal(trb_put_item(e, "shop", it, NULL, TRB_RV_NONE, NULL, &st), TRB_OK);
      trb_av_destroy(it);
    } else {
      snprintf(json, sizeof json, "{\"c\":{\"S\":\"c%u\"},\"o\":{\"N\":\"%u\"}}", c, o);
      trb_av *key = J(json);
      assert_int_equal(trb_delete_item(e, "shop", key, NULL, TRB_RV_NONE, NULL, &st), TRB_OK);
      trb_av_destroy(key);
    }
  }
}

static void test_engine_model(void **state) {
  fx *f = *state;
  uint64_t rs = trb_test_seed();
  trb_indexset *s = std_set();
  trb_keyschema ks = *table_ks();
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_table_create_ix(f->e, "shop", &ks, s, NULL, NULL, &st), TRB_OK);
  trb_indexset_unref(s);
  /* a wrong index key type never reaches the WAL */
  uint64_t before = trb_wal_last_lsn(trb_engine_wal(f->e));
  trb_av *bad = J("{\"c\":{\"S\":\"a\"},\"o\":{\"N\":\"1\"},\"t\":{\"S\":\"x\"}}");
  assert_int_equal(trb_put_item(f->e, "shop", bad, NULL, TRB_RV_NONE, NULL, &st), TRB_EINVAL);
  trb_av_destroy(bad);
  assert_int_equal(trb_wal_last_lsn(trb_engine_wal(f->e)), before);
  workload(f->e, &rs, 300);
  check_all(f->e);
  /* Query the LSI backward with a sort-key range, paging by 2. */
  trb_av *pk = V("{\"S\":\"c1\"}"), *lo = V("{\"S\":\"d1\"}"), *hi = V("{\"S\":\"d3\"}");
  trb_query_req q;
  memset(&q, 0, sizeof q);
  q.table = "shop";
  q.index = "byDay";
  q.pk = pk;
  q.sk_op = TRB_SK_BETWEEN;
  q.sk1 = lo;
  q.sk2 = hi;
  q.backward = 1;
  q.limit = 2;
  trb_av *esk = NULL;
  char prev[64] = "\x7f";
  size_t seen = 0;
  for (;;) {
    q.exclusive_start_key = esk;
    trb_page p;
    assert_int_equal(trb_query(f->e, &q, &p, NULL), TRB_OK);
    for (size_t i = 0; i < p.n; i++) {
      const trb_av *d = trb_av_m_get(p.items[i], "d", 1);
      assert_non_null(d);
      assert_true(strcmp(d->u.s.p, "d1") >= 0 && strcmp(d->u.s.p, "d3") <= 0);
      assert_true(strcmp(d->u.s.p, prev) <= 0);
      snprintf(prev, sizeof prev, "%s", d->u.s.p);
      seen++;
    }
    trb_av_destroy(esk);
    esk = p.last_key;
    p.last_key = NULL;
    trb_page_fini(&p);
    if (!esk) break;
  }
  /* as many as the table has: c1's items with d in [d1, d3] */
  size_t want = 0;
  {
    trb_scan_req sr;
    memset(&sr, 0, sizeof sr);
    sr.table = "shop";
    sr.max_bytes = 64 << 20;
    trb_page tp;
    assert_int_equal(trb_scan(f->e, &sr, &tp, NULL), TRB_OK);
    for (size_t i = 0; i < tp.n; i++) {
      const trb_av *c = trb_av_m_get(tp.items[i], "c", 1), *d = trb_av_m_get(tp.items[i], "d", 1);
      if (!strcmp(c->u.s.p, "c1") && d && strcmp(d->u.s.p, "d1") >= 0 && strcmp(d->u.s.p, "d3") <= 0)
        want++;
    }
    trb_page_fini(&tp);
  }
  assert_int_equal(seen, want);
  trb_av_destroy(pk);
  trb_av_destroy(lo);
  trb_av_destroy(hi);
  /* close and open */
  trb_engine_close(f->e);
  f->e = trb_test_engine_open(f->dir);
  check_all(f->e);
  workload(f->e, &rs, 100);
  /* replay from the WAL alone rebuilds table and indexes */
  trb_engine_close(f->e);
  char store[4096];
  snprintf(store, sizeof store, "%s/store", f->dir);
  trb_test_rmrf(store);
  f->e = trb_test_engine_open(f->dir);
  check_all(f->e);
}

/* Writers at once on the same few keys: commit groups then hold several
 * changes, some of one item (the store takes a group's changes in key
 * order, keeping the order of one key's), and every index must still hold
 * exactly the table's items. */
typedef struct wl_arg {
  trb_engine *e;
  uint64_t seed;
} wl_arg;

static void *workload_main(void *p) {
  wl_arg *a = p;
  workload(a->e, &a->seed, 150);
  return NULL;
}

static void test_engine_model_concurrent(void **state) {
  fx *f = *state;
  trb_indexset *s = std_set();
  trb_keyschema ks = *table_ks();
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_table_create_ix(f->e, "shop", &ks, s, NULL, NULL, &st), TRB_OK);
  trb_indexset_unref(s);
  uint64_t seed = trb_test_seed();
  enum { W = 8 };
  pthread_t th[W];
  wl_arg a[W];
  for (int i = 0; i < W; i++) {
    a[i].e = f->e;
    a[i].seed = seed + (uint64_t)i * 7919;
    assert_int_equal(pthread_create(&th[i], NULL, workload_main, &a[i]), 0);
  }
  for (int i = 0; i < W; i++) pthread_join(th[i], NULL);
  check_all(f->e);
  trb_engine_close(f->e);
  f->e = trb_test_engine_open(f->dir);
  check_all(f->e);
}

static void test_add_and_drop(void **state) {
  fx *f = *state;
  uint64_t rs = trb_test_seed();
  trb_keyschema ks = *table_ks();
  assert_int_equal(trb_table_create(f->e, "shop", &ks, NULL, NULL, NULL), TRB_OK);
  workload(f->e, &rs, 200);
  trb_indexset *s = std_set();
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_table_update_ix(f->e, "shop", NULL, s, NULL, NULL, &st), TRB_OK);
  check_all(f->e);
  workload(f->e, &rs, 100);
  check_all(f->e);
  /* drop the middle one: the others keep their entries and counters */
  trb_table_info info;
  assert_int_equal(trb_table_describe(f->e, "shop", &info, NULL), TRB_OK);
  trb_indexset *less = trb_indexset_dup(info.def.ix);
  uint64_t kept_cf = info.def.ix->d[2].cf_id;
  trb_indexset_remove(less, 1);
  /* a change computed from a definition that is no longer current is refused */
  trb_table_info stale;
  assert_int_equal(trb_table_describe(f->e, "shop", &stale, NULL), TRB_OK);
  json_t *ext = json_pack("{s:b}", "x", 1);
  assert_int_equal(trb_table_update(f->e, "shop", ext, NULL, NULL), TRB_OK);
  json_decref(ext);
  assert_int_equal(trb_table_update_ix(f->e, "shop", &stale.def, less, NULL, NULL, &st), TRB_EINUSE);
  trb_table_info_fini(&stale);
  assert_int_equal(trb_table_update_ix(f->e, "shop", &info.def, less, NULL, NULL, &st), TRB_EINUSE);
  trb_table_info_fini(&info);
  assert_int_equal(trb_table_describe(f->e, "shop", &info, NULL), TRB_OK);
  assert_int_equal(trb_table_update_ix(f->e, "shop", &info.def, less, NULL, NULL, &st), TRB_OK);
  trb_table_info_fini(&info);
  trb_indexset_unref(less);
  assert_int_equal(trb_table_describe(f->e, "shop", &info, NULL), TRB_OK);
  assert_int_equal(info.def.ix->n, 2);
  assert_int_equal(info.def.ix->d[1].cf_id, kept_cf);
  trb_table_info_fini(&info);
  check_all(f->e);
  trb_scan_req sr;
  memset(&sr, 0, sizeof sr);
  sr.table = "shop";
  sr.index = "byStatus";
  trb_page p;
  assert_int_equal(trb_scan(f->e, &sr, &p, &st), TRB_EINVAL);
  /* the backfill is replayed at its place in the log */
  trb_engine_close(f->e);
  char store[4096];
  snprintf(store, sizeof store, "%s/store", f->dir);
  trb_test_rmrf(store);
  f->e = trb_test_engine_open(f->dir);
  check_all(f->e);
  trb_indexset_unref(s);
}

/* The item collection of a partition (ReturnItemCollectionMetrics): its
 * items and their LSI entries, and nothing of another partition. */
static void test_item_collection_bytes(void **state) {
  fx *f = *state;
  trb_indexset *s = std_set();
  trb_keyschema ks = *table_ks();
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_table_create_ix(f->e, "shop", &ks, s, NULL, NULL, &st), TRB_OK);
  trb_indexset_unref(s);
  trb_av *c1 = V("{\"S\":\"c1\"}"), *c2 = V("{\"S\":\"c2\"}");
  uint64_t b0 = 1, b1, b2, other;
  assert_int_equal(trb_item_collection_bytes(f->e, "shop", c1, &b0, &st), TRB_OK);
  assert_int_equal(b0, 0);
  trb_av *it = J("{\"c\":{\"S\":\"c1\"},\"o\":{\"N\":\"1\"},\"pad\":{\"S\":\"xxxxxxxxxxxxxxxxxxxx\"}}");
  assert_int_equal(trb_put_item(f->e, "shop", it, NULL, TRB_RV_NONE, NULL, &st), TRB_OK);
  trb_av_destroy(it);
  assert_int_equal(trb_item_collection_bytes(f->e, "shop", c1, &b1, &st), TRB_OK);
  assert_true(b1 > 20); /* at least the pad */
  /* with the LSI's key (d) the item has an LSI entry too: more bytes */
  it = J("{\"c\":{\"S\":\"c1\"},\"o\":{\"N\":\"1\"},\"pad\":{\"S\":\"xxxxxxxxxxxxxxxxxxxx\"},"
         "\"d\":{\"S\":\"2026-12-03\"}}");
  assert_int_equal(trb_put_item(f->e, "shop", it, NULL, TRB_RV_NONE, NULL, &st), TRB_OK);
  trb_av_destroy(it);
  assert_int_equal(trb_item_collection_bytes(f->e, "shop", c1, &b2, &st), TRB_OK);
  assert_true(b2 > b1 + 10);
  /* another partition is not counted in c1's, and has its own */
  it = J("{\"c\":{\"S\":\"c2\"},\"o\":{\"N\":\"1\"}}");
  assert_int_equal(trb_put_item(f->e, "shop", it, NULL, TRB_RV_NONE, NULL, &st), TRB_OK);
  trb_av_destroy(it);
  assert_int_equal(trb_item_collection_bytes(f->e, "shop", c1, &b1, &st), TRB_OK);
  assert_int_equal(b1, b2);
  assert_int_equal(trb_item_collection_bytes(f->e, "shop", c2, &other, &st), TRB_OK);
  assert_true(other > 0 && other < b2);
  assert_int_equal(trb_item_collection_bytes(f->e, "nosuch", c1, &other, &st), TRB_ENOTFOUND);
  trb_av_destroy(c1);
  trb_av_destroy(c2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tabledef_round_trip),
      cmocka_unit_test(test_project_cover_check),
      cmocka_unit_test(test_entry_key_order),
      cmocka_unit_test_setup_teardown(test_engine_model, setup, teardown),
      cmocka_unit_test_setup_teardown(test_engine_model_concurrent, setup, teardown),
      cmocka_unit_test_setup_teardown(test_add_and_drop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_item_collection_bytes, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
