/*
 * test_item_cache.c -- the store's item cache (engine/item_cache.h): hits
 * give the bytes filled, a fill whose ticket predates a write (or that
 * arrives during one) is refused, writes and table drops remove entries, the
 * byte budget holds under eviction; and through the engine, under
 * concurrent writers and readers, a read never returns a version older than
 * one acknowledged before it began, nor older than one the same reader saw
 * before; a deleted or dropped-and-recreated item never comes back.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/item_cache.h"
#include "testutil.h"

static void expect_hit(trb_item_cache *c, uint64_t id, const char *k, const char *want) {
  char *v = NULL;
  size_t vl = 0;
  uint64_t t;
  assert_int_equal(trb_item_cache_get(c, id, k, strlen(k), &v, &vl, &t), 1);
  assert_int_equal(vl, strlen(want));
  assert_memory_equal(v, want, vl);
  free(v);
}

static uint64_t expect_miss(trb_item_cache *c, uint64_t id, const char *k) {
  char *v = NULL;
  size_t vl = 0;
  uint64_t t = 0;
  assert_int_equal(trb_item_cache_get(c, id, k, strlen(k), &v, &vl, &t), 0);
  assert_null(v);
  return t;
}

static void fill(trb_item_cache *c, uint64_t id, const char *k, const char *v, uint64_t t) {
  trb_item_cache_fill(c, id, k, strlen(k), v, strlen(v), t);
}

static void test_basics(void **state) {
  (void)state;
  assert_null(trb_item_cache_create(0));
  trb_item_cache *c = trb_item_cache_create(1 << 20);
  assert_non_null(c);
  uint64_t t = expect_miss(c, 1, "a");
  fill(c, 1, "a", "one", t);
  expect_hit(c, 1, "a", "one");
  expect_miss(c, 2, "a"); /* another table */
  /* a second fill with a current ticket does not replace the entry */
  fill(c, 1, "a", "other", t);
  expect_hit(c, 1, "a", "one");
  /* a write drops the entry; a fill from before it is refused */
  t = expect_miss(c, 1, "b");
  trb_item_cache_write_begin(c, 1, "a", 1);
  trb_item_cache_write_end(c, 1, "a", 1);
  expect_miss(c, 1, "a");
  trb_item_cache_write_begin(c, 1, "b", 1);
  trb_item_cache_write_end(c, 1, "b", 1);
  fill(c, 1, "b", "stale", t);
  expect_miss(c, 1, "b");
  /* during a write (begun, not ended) no fill of that shard is taken, even
   * with a ticket taken after the begin */
  trb_item_cache_write_begin(c, 1, "b", 1);
  t = expect_miss(c, 1, "b");
  fill(c, 1, "b", "during", t);
  expect_miss(c, 1, "b");
  trb_item_cache_write_end(c, 1, "b", 1);
  t = expect_miss(c, 1, "b");
  fill(c, 1, "b", "after", t);
  expect_hit(c, 1, "b", "after");
  /* a write of "any key" empties everything */
  trb_item_cache_write_begin(c, 0, NULL, 0);
  trb_item_cache_write_end(c, 0, NULL, 0);
  expect_miss(c, 1, "b");
  /* forgetting a table drops its entries only, and refuses fills in flight */
  t = expect_miss(c, 1, "x");
  fill(c, 1, "x", "1x", t);
  t = expect_miss(c, 2, "x");
  fill(c, 2, "x", "2x", t);
  uint64_t t3 = expect_miss(c, 3, "y");
  trb_item_cache_forget_table(c, 1);
  expect_miss(c, 1, "x");
  expect_hit(c, 2, "x", "2x");
  fill(c, 3, "y", "late", t3);
  expect_miss(c, 3, "y");
  trb_item_cache_stats s;
  trb_item_cache_get_stats(c, &s);
  assert_int_equal(s.entries, 1);
  assert_int_equal(s.hits, 4);
  trb_item_cache_destroy(c);
}

/* Many entries through a small budget: the budget holds, entries are
 * evicted, and the most recently used survive. */
static void test_budget(void **state) {
  (void)state;
  size_t max = 64 * 4096; /* 4 KiB per shard: about 23 entries of 172 bytes */
  trb_item_cache *c = trb_item_cache_create(max);
  char val[100];
  memset(val, 'v', sizeof val - 1);
  val[sizeof val - 1] = 0;
  char k[32];
  for (int i = 0; i < 20000; i++) {
    snprintf(k, sizeof k, "key-%d", i);
    uint64_t t = expect_miss(c, 7, k);
    fill(c, 7, k, val, t);
    trb_item_cache_stats s;
    trb_item_cache_get_stats(c, &s);
    assert_true(s.bytes <= max);
    if (i % 1000 == 0) expect_hit(c, 7, k, val); /* what was just filled is there */
  }
  trb_item_cache_stats s;
  trb_item_cache_get_stats(c, &s);
  assert_true(s.evictions > 15000);
  assert_true(s.entries > 64 && s.entries < 20000);
  /* an entry larger than an eighth of a shard's budget is never taken */
  char *big = malloc(600);
  memset(big, 'b', 599);
  big[599] = 0;
  uint64_t t = expect_miss(c, 7, "big");
  fill(c, 7, "big", big, t);
  expect_miss(c, 7, "big");
  free(big);
  trb_item_cache_destroy(c);
}

/* ---- through the engine ---- */

#define NKEYS 64
#define NREADERS 3

typedef struct race {
  trb_engine *e;
  atomic_llong acked[NKEYS]; /* highest version acknowledged per key */
  atomic_int stop;
  atomic_llong reads;
  int stale;                 /* a violation was seen */
  char what[200];
} race;

static trb_av *item_of(int key, long long ver) {
  char json[128];
  snprintf(json, sizeof json, "{\"pk\":{\"S\":\"k%d\"},\"v\":{\"N\":\"%lld\"}}", key, ver);
  trb_av *it = NULL;
  assert_int_equal(trb_item_from_json_text(json, strlen(json), &it, NULL), TRB_OK);
  return it;
}

static trb_av *key_of(int key) {
  char json[64];
  snprintf(json, sizeof json, "{\"pk\":{\"S\":\"k%d\"}}", key);
  trb_av *k = NULL;
  assert_int_equal(trb_item_from_json_text(json, strlen(json), &k, NULL), TRB_OK);
  return k;
}

/* The version in an item (-1 when absent). */
static long long version(const trb_av *it) {
  if (!it) return -1;
  const trb_av *v = trb_av_m_get(it, "v", 1);
  assert_non_null(v);
  char *t = trb_item_to_json_text(it);
  const char *p = strstr(t, "\"v\":{\"N\":\"");
  long long n = p ? atoll(p + 10) : -2;
  free(t);
  return n;
}

static void *writer_main(void *arg) {
  race *r = arg;
  for (long long ver = 1; !atomic_load(&r->stop); ver++) {
    int k = (int)(ver % NKEYS);
    trb_av *it = item_of(k, ver);
    assert_int_equal(trb_put_item(r->e, "tab", it, NULL, TRB_RV_NONE, NULL, NULL), TRB_OK);
    trb_av_destroy(it);
    atomic_store(&r->acked[k], ver);
  }
  return NULL;
}

static void *reader_main(void *arg) {
  race *r = arg;
  long long seen[NKEYS];
  for (int i = 0; i < NKEYS; i++) seen[i] = -1;
  uint64_t rs = (uint64_t)(uintptr_t)&seen | 1;
  trb_av *keys[NKEYS];
  for (int i = 0; i < NKEYS; i++) keys[i] = key_of(i);
  while (!atomic_load(&r->stop)) {
    int k = (int)(trb_test_rand(&rs) % NKEYS);
    long long before = atomic_load(&r->acked[k]);
    trb_av *it = NULL;
    assert_int_equal(trb_get_item(r->e, "tab", keys[k], &it, NULL), TRB_OK);
    long long got = version(it);
    trb_av_destroy(it);
    if ((got < before || got < seen[k]) && !r->stale) {
      r->stale = 1;
      snprintf(r->what, sizeof r->what, "key k%d: read version %lld after %lld was acknowledged "
               "and %lld seen", k, got, before, seen[k]);
    }
    if (got > seen[k]) seen[k] = got;
    atomic_fetch_add(&r->reads, 1);
  }
  for (int i = 0; i < NKEYS; i++) trb_av_destroy(keys[i]);
  return NULL;
}

static trb_engine *open_engine(const char *dir, size_t cache) {
  trb_engine_opts o;
  trb_engine_opts_default(&o);
  o.data_dir = dir;
  o.item_cache_bytes = cache;
  trb_engine *e = NULL;
  assert_int_equal(trb_engine_open(&o, &e, NULL), TRB_OK);
  return e;
}

static void mk_table(trb_engine *e) {
  trb_keyschema ks;
  memset(&ks, 0, sizeof ks);
  strcpy(ks.pk_name, "pk");
  ks.pk_type = TRB_T_S;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_table_create(e, "tab", &ks, NULL, NULL, &st);
  if (rc) fail_msg("create table: %s", trb_status_msg(&st));
}

static void test_engine_race(void **state) {
  (void)state;
  char *dir = trb_test_mkdtemp("icache");
  race *r = calloc(1, sizeof *r);
  /* a small cache (1 KiB a shard) */
  r->e = open_engine(dir, 64 * 1024);
  mk_table(r->e);
  for (int i = 0; i < NKEYS; i++) atomic_store(&r->acked[i], -1);
  pthread_t w, rd[NREADERS];
  pthread_create(&w, NULL, writer_main, r);
  for (int i = 0; i < NREADERS; i++) pthread_create(&rd[i], NULL, reader_main, r);
  for (int i = 0; i < 30 && !r->stale; i++) usleep(100 * 1000);
  atomic_store(&r->stop, 1);
  pthread_join(w, NULL);
  for (int i = 0; i < NREADERS; i++) pthread_join(rd[i], NULL);
  if (r->stale) fail_msg("%s", r->what);
  /* the readers went through the cache, not around it */
  trb_engine_stats es;
  trb_engine_get_stats(r->e, &es);
  assert_true(atomic_load(&r->reads) > 1000);
  assert_true(es.cache.hits > 100);
  assert_true(es.cache.bytes <= es.cache.max_bytes);
  /* delete: gone, and stays gone */
  trb_av *k0 = key_of(0), *it = NULL;
  assert_int_equal(trb_get_item(r->e, "tab", k0, &it, NULL), TRB_OK); /* fills */
  assert_non_null(it);
  trb_av_destroy(it);
  assert_int_equal(trb_delete_item(r->e, "tab", k0, NULL, TRB_RV_NONE, NULL, NULL), TRB_OK);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(trb_get_item(r->e, "tab", k0, &it, NULL), TRB_OK);
    assert_null(it);
  }
  /* a dropped and recreated table has none of the old items */
  trb_av *k1 = key_of(1);
  assert_int_equal(trb_get_item(r->e, "tab", k1, &it, NULL), TRB_OK);
  assert_non_null(it);
  trb_av_destroy(it);
  assert_int_equal(trb_table_delete(r->e, "tab", NULL, NULL), TRB_OK);
  mk_table(r->e);
  assert_int_equal(trb_get_item(r->e, "tab", k1, &it, NULL), TRB_OK);
  assert_null(it);
  trb_av_destroy(k0);
  trb_av_destroy(k1);
  trb_engine_close(r->e);
  free(r);
  trb_test_rmrf(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basics),
      cmocka_unit_test(test_budget),
      cmocka_unit_test(test_engine_race),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
