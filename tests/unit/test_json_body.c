/*
 * test_json_body.c -- api/json_body.c: request bodies read with yajl must be
 * accepted and refused exactly as jansson's json_loadb refused them, and give
 * the same tree. A corpus of edge cases, then random mutations of real
 * request bodies, each compared with json_loadb(.., JSON_DECODE_ANY).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/json_body.h"
#include "testutil.h"

/* jansson's verdict and ours agree, and so do the trees */
static void same_as_jansson(const char *text, size_t len) {
  json_error_t je;
  json_t *want = json_loadb(text, len, JSON_DECODE_ANY, &je);
  trb_status st;
  trb_status_init(&st);
  json_t *got = trb_json_body_parse(text, len, &st);
  if (want && !got && memchr(text, 0, len)) {
    /* jansson skips a NUL byte after a number or a literal ("[false\0]");
     * RFC 8259 does not allow it anywhere, and neither do we */
    assert_int_equal(st.code, TRB_ESERIAL);
    json_decref(want);
    return;
  }
  if (!want != !got || (want && !json_equal(want, got))) {
    fprintf(stderr, "differs on %zu bytes:", len);
    for (size_t i = 0; i < len; i++) fprintf(stderr, " %02x", (unsigned char)text[i]);
    fprintf(stderr, "\n  jansson: %s\n  ours:    %s\n", want ? "accepted" : je.text,
            got ? "accepted" : trb_status_msg(&st));
  }
  assert_true(!want == !got);
  if (want) assert_true(json_equal(want, got));
  if (!got) {
    assert_int_equal(st.code, TRB_ESERIAL);
    assert_non_null(strstr(trb_status_msg(&st), "(line "));
  }
  json_decref(want);
  json_decref(got);
}

static void same(const char *text) { same_as_jansson(text, strlen(text)); }

/* refused, with msg in the message */
static void refused(const char *text, size_t len, const char *msg) {
  trb_status st;
  trb_status_init(&st);
  json_t *v = trb_json_body_parse(text, len, &st);
  if (v) fprintf(stderr, "accepted: %.*s\n", (int)len, text);
  assert_null(v);
  assert_int_equal(st.code, TRB_ESERIAL);
  if (!strstr(trb_status_msg(&st), msg))
    fprintf(stderr, "message \"%s\" lacks \"%s\"\n", trb_status_msg(&st), msg);
  assert_non_null(strstr(trb_status_msg(&st), msg));
}

static const char *corpus[] = {
    "{}", "[]", "null", "true", "false", "0", "-0", "1", "-1", "12.5", "1e3", "1E-3", "-1.5e+10",
    "0.0000001", "1e-400", "1e400", "-1e400", "9223372036854775807", "9223372036854775808",
    "-9223372036854775808", "-9223372036854775809", "123456789012345678901234567890",
    "01", "-", "1.", ".5", "+1", "1e", "0x10", "NaN", "Infinity", "\"\"", "\"a\"",
    "\"\\u0041\\n\\t\\\"\\\\\\/\\b\\f\\r\"", "\"\\u00e9\\u20ac\"", "\"\\uD83D\\uDE00\"",
    "\"\\ud83d\\ude00x\"", "\"\\uD800\"", "\"\\uDC00\"", "\"\\uD800\\u0041\"", "\"\\uD800x\"",
    "\"\\uDBFF\\uDFFF\"", "\"\\uD800\\uD800\"", "\"\\u0000\"", "\"a\\u0000b\"", "\"\\x41\"",
    "\"\\u12\"", "\"\\u12G4\"", "\"tab\there\"", "\"nl\nhere\"", "\"unterminated",
    "\"\xc3\xa9\"", "\"\xe2\x82\xac\"", "\"\xf0\x9f\x98\x80\"", "\"\xc0\x80\"", "\"\xc1\xbf\"",
    "\"\xed\xa0\x80\"", "\"\xed\xbf\xbf\"", "\"\xf4\x90\x80\x80\"", "\"\xf5\x80\x80\x80\"",
    "\"\xe0\x80\xaf\"", "\"\xf0\x80\x80\xaf\"", "\"\x80\"", "\"\xc3\"", "\"\xc3(\"", "\"\xff\"",
    "{\"a\":1}", "{\"a\":1,\"a\":2}", "{\"a\":{\"b\":[1,2,{\"c\":null}]},\"a\":[]}",
    "{\"a\":1,}", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{1:2}", "{'a':1}", "[1 2]",
    "{\"a\":1} x", "{\"a\":1}{}", "[] []", "  {\"a\" : [ 1 , 2 ] }  \n", "\t\r\n []",
    "/* c */ {}", "{} // c", "{\"a\":1 /* c */}", "# c\n{}", "", " ", "\n\n", "[", "]", "{",
    "}", "[[[[]]]]", "{\"\\u0000\":1}", "{\"\xc0\x80\":1}", "{\"\xe2\x82\xac\":\"\\u20AC\"}",
    "{\"\":\"\"}", "[true,false,null]", "[tru]", "[nul]", "[falsey]", "\xef\xbb\xbf{}",
    "{\"TableName\":\"t\",\"Item\":{\"pk\":{\"S\":\"k1\"},\"n\":{\"N\":\"1.5\"},"
    "\"l\":{\"L\":[{\"BOOL\":true},{\"NULL\":true},{\"B\":\"AAE=\"}]}}}",
};

static void test_corpus(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof corpus / sizeof *corpus; i++) same(corpus[i]);
  /* with bytes strlen would stop at */
  same_as_jansson("\"a\0b\"", 5);
  same_as_jansson("{\"a\0\":1}", 8);
  same_as_jansson("{}\0", 3);
  refused("[false\0]", 8, "(line 1, column");
  refused("{\"a\":1\0}", 8, "(line 1, column");
  same_as_jansson("\0", 1);
}

static void test_messages(void **state) {
  (void)state;
  refused("{\"a\":\"x\\u0000\"}", 15,
          "strings holding the character U+0000 (\\u0000) are not supported (line 1, column");
  refused("{\"a\":\"\\uD800\"}", 14, "surrogate not in a high-low pair (line 1, column 7)");
  refused("{\n \"a\":\"\\uDC00\\uD800\"}", 22, "(line 2, column 7)");
  refused("\"\xed\xa0\x80\"", 5, "invalid UTF-8");
  refused("9223372036854775808", 19, "too big integer");
  refused("-9223372036854775809", 20, "too big negative integer");
  refused("[1e999]", 7, "real number overflow");
  refused("   ", 3, "premature EOF (line 1, column 4)");
  refused("", 0, "premature EOF (line 1, column 1)");
  refused("{\n\f}", 4, "form feed (\\f) (line 2, column 1)");
  refused("[\"\v\"]", 4, "vertical tab");
  refused("{\"a\":1} x", 9, "(line 1, column");
  refused("{\"a\":1,}", 8, "(line 1, column");
  /* the valid pair is one character */
  trb_status st;
  trb_status_init(&st);
  json_t *v = trb_json_body_parse("\"\\uD83D\\uDE00\"", 14, &st);
  assert_non_null(v);
  assert_string_equal(json_string_value(v), "\xf0\x9f\x98\x80");
  json_decref(v);
}

static void test_duplicate_keys(void **state) {
  (void)state;
  trb_status st;
  trb_status_init(&st);
  const char *t = "{\"a\":1,\"b\":2,\"a\":{\"x\":[3]}}";
  json_t *v = trb_json_body_parse(t, strlen(t), &st);
  assert_non_null(v);
  assert_int_equal(json_object_size(v), 2);
  json_t *x = json_object_get(json_object_get(v, "a"), "x");
  assert_true(json_is_array(x));
  assert_int_equal(json_integer_value(json_array_get(x, 0)), 3);
  assert_int_equal(json_integer_value(json_object_get(v, "b")), 2);
  /* the replaced key keeps its place */
  assert_string_equal(json_object_iter_key(json_object_iter(v)), "a");
  json_decref(v);
}

static char *nested(size_t depth, int objects) {
  char *t = malloc(depth * 6 + 8);
  size_t n = 0;
  for (size_t i = 0; i < depth; i++) {
    if (objects) {
      memcpy(t + n, "{\"k\":", 5);
      n += 5;
    } else {
      t[n++] = '[';
    }
  }
  t[n++] = '1';
  for (size_t i = 0; i < depth; i++) t[n++] = objects ? '}' : ']';
  t[n] = '\0';
  return t;
}

static void test_depth(void **state) {
  (void)state;
  for (int objects = 0; objects <= 1; objects++) {
    /* jansson counts the innermost scalar as a level */
    char *ok = nested(TRB_JSON_MAX_DEPTH - 1, objects);
    trb_status st;
    trb_status_init(&st);
    json_t *v = trb_json_body_parse(ok, strlen(ok), &st);
    assert_non_null(v);
    json_decref(v);
    same(ok);
    free(ok);
    char *deep = nested(TRB_JSON_MAX_DEPTH, objects);
    refused(deep, strlen(deep), "maximum parsing depth reached");
    same(deep);
    free(deep);
  }
  /* empty containers at the limit are fine */
  char *empty = malloc(2 * TRB_JSON_MAX_DEPTH + 1);
  memset(empty, '[', TRB_JSON_MAX_DEPTH);
  memset(empty + TRB_JSON_MAX_DEPTH, ']', TRB_JSON_MAX_DEPTH);
  empty[2 * TRB_JSON_MAX_DEPTH] = '\0';
  same(empty);
  empty[TRB_JSON_MAX_DEPTH - 1] = '1';
  empty[TRB_JSON_MAX_DEPTH] = ' ';
  same(empty);
  free(empty);
  /* far deeper than the limit: refused, not a stack overflow */
  char *deep = nested(200000, 0);
  refused(deep, strlen(deep), "maximum parsing depth reached");
  free(deep);
}

static void test_long_keys_and_numbers(void **state) {
  (void)state;
  /* keys and numbers longer than the inline buffers */
  size_t n = 5000;
  char *t = malloc(n * 3 + 64);
  size_t k = 0;
  t[k++] = '{';
  for (int rep = 0; rep < 2; rep++) {
    t[k++] = '"';
    for (size_t i = 0; i < n; i++) t[k++] = (char)('a' + (i + (size_t)rep) % 26);
    t[k++] = '"';
    t[k++] = ':';
    for (size_t i = 0; i < 300; i++) t[k++] = i == 0 ? '1' : '0';
    memcpy(t + k, ".5", 2);
    k += 2;
    t[k++] = rep ? '}' : ',';
  }
  same_as_jansson(t, k);
  free(t);
}

static const char *bodies[] = {
    "{\"TableName\":\"bench\",\"Item\":{\"pk\":{\"S\":\"user#000123\"},\"sk\":{\"N\":\"42\"},"
    "\"name\":{\"S\":\"caf\xc3\xa9 \\u00e9\\uD83D\\uDE00\"},\"tags\":{\"SS\":[\"a\",\"b\"]},"
    "\"m\":{\"M\":{\"x\":{\"L\":[{\"N\":\"-1.5e3\"},{\"BOOL\":false},{\"NULL\":true}]}}}},"
    "\"ConditionExpression\":\"attribute_not_exists(pk)\",\"ReturnValues\":\"ALL_OLD\"}",
    "{\"RequestItems\":{\"t\":[{\"PutRequest\":{\"Item\":{\"pk\":{\"S\":\"1\"}}}},"
    "{\"DeleteRequest\":{\"Key\":{\"pk\":{\"S\":\"2\"}}}}]},\"ReturnConsumedCapacity\":\"TOTAL\"}",
    "[1, 2.5, -3e-2, true, false, null, \"\\\"\\\\\\/\\b\\f\\n\\r\\t\", {\"\": []}]",
};

/* a byte that is likely to matter to a JSON reader */
static char interesting(uint64_t *rs) {
  static const char pick[] = "{}[]\":,\\u0123456789eE.-+ \n\tntfa\x80\xc3\xed\xf0\xff";
  uint64_t r = trb_test_rand(rs);
  return (r & 1) ? (char)(r >> 8) : pick[(r >> 8) % (sizeof pick - 1)];
}

static void test_mutations(void **state) {
  (void)state;
  uint64_t rs = trb_test_seed();
  char buf[1024];
  for (int round = 0; round < 100000; round++) {
    const char *src = bodies[(size_t)round % (sizeof bodies / sizeof *bodies)];
    size_t len = strlen(src);
    memcpy(buf, src, len);
    int edits = 1 + (int)(trb_test_rand(&rs) % 4);
    for (int e = 0; e < edits; e++) {
      uint64_t r = trb_test_rand(&rs);
      size_t at = len ? (size_t)(r >> 8) % len : 0;
      switch (r % 4) {
      case 0: /* replace */
        if (len) buf[at] = interesting(&rs);
        break;
      case 1: /* insert */
        if (len + 1 < sizeof buf) {
          memmove(buf + at + 1, buf + at, len - at);
          buf[at] = interesting(&rs);
          len++;
        }
        break;
      case 2: /* delete */
        if (len) {
          memmove(buf + at, buf + at + 1, len - at - 1);
          len--;
        }
        break;
      default: /* cut */
        len = at;
        break;
      }
    }
    same_as_jansson(buf, len);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_corpus),
      cmocka_unit_test(test_messages),
      cmocka_unit_test(test_duplicate_keys),
      cmocka_unit_test(test_depth),
      cmocka_unit_test(test_long_keys_and_numbers),
      cmocka_unit_test(test_mutations),
  };
  return cmocka_run_group_tests_name("json_body", tests, NULL, NULL);
}
