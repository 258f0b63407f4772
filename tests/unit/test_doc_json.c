/*
 * test_doc_json.c -- items as plain JSON (transform/doc_json.c): every
 * type, exact numbers, escapes, and a random round trip through jansson
 * (the text must always be valid JSON with the same strings).
 */
#include "testutil.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "transform/doc_json.h"

static char *doc(const char *ddb_json) {
  trb_av *item = NULL;
  trb_status st;
  trb_status_init(&st);
  if (trb_item_from_json_text(ddb_json, strlen(ddb_json), &item, &st))
    fail_msg("bad test item: %s", trb_status_msg(&st));
  trb_buf b;
  trb_buf_init(&b, 0);
  assert_int_equal(trb_doc_json(item, &b), TRB_OK);
  trb_buf_append(&b, "", 1);
  trb_av_destroy(item);
  return (char *)b.p;
}

static void expect(const char *in, const char *want) {
  char *got = doc(in);
  assert_string_equal(got, want);
  free(got);
}

static void test_types(void **state) {
  (void)state;
  expect("{\"s\":{\"S\":\"x\"}}", "{\"s\":\"x\"}");
  expect("{\"n\":{\"N\":\"12345678901234567890123456789012345678\"}}",
         "{\"n\":12345678901234567890123456789012345678}");
  expect("{\"n\":{\"N\":\"-1.50E2\"}}", "{\"n\":-150}");
  expect("{\"n\":{\"N\":\"1E-130\"}}",
         "{\"n\":0.0000000000000000000000000000000000000000000000000000000000000000000000000000000"
         "000000000000000000000000000000000000000000000000001}");
  expect("{\"b\":{\"B\":\"AAEC\"}}", "{\"b\":\"AAEC\"}");
  expect("{\"t\":{\"BOOL\":true},\"f\":{\"BOOL\":false},\"z\":{\"NULL\":true}}",
         "{\"t\":true,\"f\":false,\"z\":null}");
  expect("{\"m\":{\"M\":{\"a\":{\"L\":[{\"N\":\"1\"},{\"S\":\"2\"},{\"M\":{}}]}}}}",
         "{\"m\":{\"a\":[1,\"2\",{}]}}");
  expect("{\"ss\":{\"SS\":[\"a\",\"b\"]},\"ns\":{\"NS\":[\"1\",\"2.5\"]},\"bs\":{\"BS\":[\"AA==\"]}}",
         "{\"ss\":[\"a\",\"b\"],\"ns\":[1,2.5],\"bs\":[\"AA==\"]}");
  expect("{\"e\":{\"S\":\"q\\\"b\\\\ t\\tn\\nc\\u0001 \\u00fc\"}}",
         "{\"e\":\"q\\\"b\\\\ t\\tn\\nc\\u0001 \xc3\xbc\"}");
  expect("{\"k\\\"ey\":{\"S\":\"\"}}", "{\"k\\\"ey\":\"\"}");
}

/* Random strings of any bytes below 0x80 (valid UTF-8): jansson reads the
 * output back to the same string. */
static void test_random_strings(void **state) {
  (void)state;
  uint64_t r = trb_test_seed();
  for (int round = 0; round < 2000; round++) {
    char s[64];
    size_t n = trb_test_rand(&r) % sizeof s;
    for (size_t i = 0; i < n; i++) s[i] = (char)(1 + trb_test_rand(&r) % 127);
    trb_av *item = trb_av_new_m();
    assert_int_equal(trb_av_m_set(item, "v", 1, trb_av_new_s(s, n)), TRB_OK);
    trb_buf b;
    trb_buf_init(&b, 0);
    assert_int_equal(trb_doc_json(item, &b), TRB_OK);
    json_error_t je;
    json_t *j = json_loadb((const char *)b.p, b.len, 0, &je);
    if (!j) fail_msg("not JSON: %.*s (%s)", (int)b.len, (const char *)b.p, je.text);
    json_t *v = json_object_get(j, "v");
    assert_int_equal(json_string_length(v), n);
    assert_memory_equal(json_string_value(v), s, n);
    json_decref(j);
    trb_buf_fini(&b);
    trb_av_destroy(item);
  }
}

static void test_base64(void **state) {
  (void)state;
  static const char *const want[] = {"", "AA==", "AAE=", "AAEC", "AAECAw=="};
  unsigned char in[4] = {0, 1, 2, 3};
  for (size_t n = 0; n <= 4; n++) {
    trb_buf b;
    trb_buf_init(&b, 0);
    assert_int_equal(trb_base64_append(in, n, &b), TRB_OK);
    assert_int_equal(b.len, strlen(want[n]));
    assert_memory_equal(b.p ? (const char *)b.p : "", want[n], b.len);
    trb_buf_fini(&b);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_types),
      cmocka_unit_test(test_random_strings),
      cmocka_unit_test(test_base64),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
