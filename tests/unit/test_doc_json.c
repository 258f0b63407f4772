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

/* One byte JSON escapes (or a UTF-8 sequence, or DEL) at every position of
 * plain strings of 0..40 bytes, so that both the 8-bytes-at-a-time path
 * and the byte path meet it: the output is byte for byte jansson's. */
static void test_escape_positions(void **state) {
  (void)state;
  const char *specials[] = {"\x01", "\x1f", "\"", "\\", "\n", "\t", "\x7f", "\xc3\xa9",
                            "\xe2\x82\xac", "\xf0\x9f\x98\x80", " ", "!", "#", "[", "]",
                            "\x19", "\x21", "\x5b", "\x5d", "\x60", "\x10"};
  for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++) {
    for (size_t len = 0; len <= 40; len++) {
      for (size_t at = 0; at <= len; at++) {
        char s[64];
        size_t n = 0;
        for (size_t i = 0; i < at; i++) s[n++] = (char)('a' + i % 26);
        size_t sl = strlen(specials[k]);
        if (len) memcpy(s + n, specials[k], sl), n += sl;
        for (size_t i = at; i < len; i++) s[n++] = (char)('A' + i % 26);
        trb_buf b;
        trb_buf_init(&b, 0);
        assert_int_equal(trb_json_str_append(s, n, &b), TRB_OK);
        json_t *j = json_stringn(s, n);
        assert_non_null(j);
        char *want = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
        assert_non_null(want);
        if (b.len != strlen(want) || memcmp(b.p, want, b.len))
          fail_msg("special %zu at %zu of %zu: got %.*s want %s", k, at, len, (int)b.len,
                   (const char *)b.p, want);
        free(want);
        json_decref(j);
        trb_buf_fini(&b);
      }
    }
  }
  /* a NUL byte in a string (S values may hold one) */
  trb_buf b;
  trb_buf_init(&b, 0);
  assert_int_equal(trb_json_str_append("abcdefgh\0ijklmnop", 17, &b), TRB_OK);
  assert_int_equal(b.len, 24);
  assert_memory_equal(b.p, "\"abcdefgh\\u0000ijklmnop\"", 24);
  trb_buf_fini(&b);
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

/* A random value: every type, nested, strings of any ASCII byte and some
 * UTF-8. */
static trb_av *rand_av(uint64_t *r, int depth) {
  static const char *const strs[] = {"", "a", "\x01\x1f\"\\/\t\n\r\b\f\x7f", "\xc3\xbc\xe2\x82\xac",
                                     "\xf0\x9f\x98\x80", "x y"};
  int t = (int)(trb_test_rand(r) % (depth > 3 ? 5 : 10));
  char buf[40];
  trb_dec d;
  switch (t) {
  case 0: {
    size_t n = trb_test_rand(r) % 12;
    for (size_t i = 0; i < n; i++) buf[i] = (char)(1 + trb_test_rand(r) % 127);
    const char *pick = strs[trb_test_rand(r) % 6];
    return trb_test_rand(r) % 2 ? trb_av_new_s(buf, n) : trb_av_new_s(pick, strlen(pick));
  }
  case 1:
    snprintf(buf, sizeof buf, "%s%llu.%llue%d", trb_test_rand(r) % 2 ? "-" : "",
             (unsigned long long)(trb_test_rand(r) % 100000), (unsigned long long)(trb_test_rand(r) % 1000),
             (int)(trb_test_rand(r) % 20) - 10);
    assert_int_equal(trb_dec_parse(buf, strlen(buf), &d, NULL), TRB_OK);
    return trb_av_new_n(&d);
  case 2: {
    size_t n = trb_test_rand(r) % 7;
    for (size_t i = 0; i < n; i++) buf[i] = (char)trb_test_rand(r);
    return trb_av_new_b(buf, n);
  }
  case 3: return trb_av_new_bool((int)(trb_test_rand(r) % 2));
  case 4: return trb_av_new_null();
  case 5:
  case 6: {
    trb_av *m = t == 5 ? trb_av_new_m() : trb_av_new_l();
    size_t n = trb_test_rand(r) % 4;
    for (size_t i = 0; i < n; i++) {
      trb_av *c = rand_av(r, depth + 1);
      if (t == 5) {
        snprintf(buf, sizeof buf, "k%zu\t\"%d", i, (int)(trb_test_rand(r) % 3));
        if (trb_av_m_set(m, buf, strlen(buf), c)) trb_av_destroy(c);
      } else {
        assert_int_equal(trb_av_l_append(m, c), TRB_OK);
      }
    }
    return m;
  }
  default: {
    trb_type st = t == 7 ? TRB_T_SS : t == 8 ? TRB_T_NS : TRB_T_BS;
    trb_av *set = trb_av_new_set(st);
    size_t n = 1 + trb_test_rand(r) % 3;
    for (size_t i = 0; i < n; i++) {
      snprintf(buf, sizeof buf, "%zu", i);
      trb_av *e = st == TRB_T_SS ? trb_av_new_s(buf, strlen(buf))
                  : st == TRB_T_BS ? trb_av_new_b(buf, strlen(buf))
                                   : (trb_dec_parse(buf, strlen(buf), &d, NULL), trb_av_new_n(&d));
      assert_int_equal(trb_av_l_append(set, e), TRB_OK);
    }
    return set;
  }
  }
}

/* The typed form is byte for byte what jansson writes. */
static void test_typed_matches_jansson(void **state) {
  (void)state;
  uint64_t r = trb_test_seed();
  for (int round = 0; round < 3000; round++) {
    trb_av *item = trb_av_new_m();
    size_t n = trb_test_rand(&r) % 6;
    for (size_t i = 0; i < n; i++) {
      char name[16];
      snprintf(name, sizeof name, "a%zu", i);
      assert_int_equal(trb_av_m_set(item, name, strlen(name), rand_av(&r, 0)), TRB_OK);
    }
    json_t *j = trb_item_to_json(item);
    char *want = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    trb_buf b;
    trb_buf_init(&b, 0);
    assert_int_equal(trb_ddb_json_item(item, &b), TRB_OK);
    if (b.len != strlen(want) || memcmp(b.p, want, b.len))
      fail_msg("differs:\n  ours    %.*s\n  jansson %s", (int)b.len, (const char *)b.p, want);
    trb_buf_fini(&b);
    free(want);
    json_decref(j);
    trb_av_destroy(item);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_types),
      cmocka_unit_test(test_random_strings),
      cmocka_unit_test(test_escape_positions),
      cmocka_unit_test(test_base64),
      cmocka_unit_test(test_typed_matches_jansson),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
