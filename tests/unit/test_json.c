/*
 * test_json.c -- DynamoDB JSON <-> trb_av (engine/item_json.c): round trips
 * of every type, canonical output, and each error with DynamoDB's text
 * (spec 2.1, 2.2 and the captured serialization texts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/value.h"
#include "testutil.h"

static trb_av *item_ok(const char *text) {
  trb_status st;
  trb_status_init(&st);
  trb_av *v = NULL;
  trb_err rc = trb_item_from_json_text(text, strlen(text), &v, &st);
  if (rc) fprintf(stderr, "unexpected error for %s: %s\n", text, trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  assert_non_null(v);
  return v;
}

static trb_av *av_ok(const char *text) {
  trb_status st;
  trb_status_init(&st);
  trb_av *v = NULL;
  trb_err rc = trb_av_from_json_text(text, strlen(text), &v, &st);
  if (rc) fprintf(stderr, "unexpected error for %s: %s\n", text, trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return v;
}

/* Wrong JSON shapes are SerializationException on AWS (TRB_ESERIAL); the
 * rest are ValidationException (TRB_EINVAL). */
static trb_err want_code(const char *msg) {
  static const char *serial[] = {"can not be converted to a Blob", "found where not expected",
                                 "_VALUE cannot be converted to", "Expected list or null",
                                 "Expected map or null", "Expected null", "Malformed JSON"};
  for (size_t i = 0; i < sizeof serial / sizeof *serial; i++)
    if (strstr(msg, serial[i])) return TRB_ESERIAL;
  return TRB_EINVAL;
}

static void av_err(const char *text, const char *msg) {
  trb_status st;
  trb_status_init(&st);
  trb_av *v = (trb_av *)0x1;
  trb_err rc = trb_av_from_json_text(text, strlen(text), &v, &st);
  if (rc != want_code(msg) || strcmp(trb_status_msg(&st), msg) != 0)
    fprintf(stderr, "input %s\n  got %d '%s'\n  want '%s'\n", text, rc, trb_status_msg(&st), msg);
  assert_int_equal(rc, want_code(msg));
  assert_string_equal(trb_status_msg(&st), msg);
  assert_ptr_equal(v, (trb_av *)0x1); /* untouched on failure */
}

static void item_err(const char *text, const char *msg) {
  trb_status st;
  trb_status_init(&st);
  trb_av *v = NULL;
  trb_err rc = trb_item_from_json_text(text, strlen(text), &v, &st);
  if (rc != want_code(msg) || strcmp(trb_status_msg(&st), msg) != 0)
    fprintf(stderr, "input %s\n  got %d '%s'\n  want '%s'\n", text, rc, trb_status_msg(&st), msg);
  assert_int_equal(rc, want_code(msg));
  assert_string_equal(trb_status_msg(&st), msg);
  assert_null(v);
}

/* Parses text as an item, prints it, compares with want, and checks that
 * the printed text parses back to an equal value. */
static void roundtrip(const char *text, const char *want) {
  trb_av *v = item_ok(text);
  char *out = trb_item_to_json_text(v);
  assert_non_null(out);
  assert_string_equal(out, want);
  trb_av *w = item_ok(out);
  assert_true(trb_av_equal(v, w));
  char *out2 = trb_item_to_json_text(w);
  assert_string_equal(out, out2);
  free(out);
  free(out2);
  trb_av_destroy(v);
  trb_av_destroy(w);
}

/* ---- round trips ---- */

static void test_roundtrip_all_types(void **state) {
  (void)state;
  roundtrip("{\"s\":{\"S\":\"hello\"},\"n\":{\"N\":\"-17.50\"},\"b\":{\"B\":\"AAEC/w==\"},"
            "\"t\":{\"BOOL\":true},\"f\":{\"BOOL\":false},\"z\":{\"NULL\":true},"
            "\"ss\":{\"SS\":[\"b\",\"a\",\"\"]},\"ns\":{\"NS\":[\"1e3\",\"0.5\",\"-0\"]},"
            "\"bs\":{\"BS\":[\"QQ==\",\"QUI=\",\"QUJD\",\"\"]},"
            "\"m\":{\"M\":{\"l\":{\"L\":[{\"S\":\"x\"},{\"M\":{}},{\"L\":[]},{\"NS\":[\"2\"]},"
            "{\"M\":{\"deep\":{\"B\":\"\"}}}]}}},\"e\":{\"S\":\"\"}}",
            "{\"s\":{\"S\":\"hello\"},\"n\":{\"N\":\"-17.5\"},\"b\":{\"B\":\"AAEC/w==\"},"
            "\"t\":{\"BOOL\":true},\"f\":{\"BOOL\":false},\"z\":{\"NULL\":true},"
            "\"ss\":{\"SS\":[\"b\",\"a\",\"\"]},\"ns\":{\"NS\":[\"1000\",\"0.5\",\"0\"]},"
            "\"bs\":{\"BS\":[\"QQ==\",\"QUI=\",\"QUJD\",\"\"]},"
            "\"m\":{\"M\":{\"l\":{\"L\":[{\"S\":\"x\"},{\"M\":{}},{\"L\":[]},{\"NS\":[\"2\"]},"
            "{\"M\":{\"deep\":{\"B\":\"\"}}}]}}},\"e\":{\"S\":\"\"}}");
  /* empty item */
  roundtrip("{}", "{}");
  /* key order is the input order, not sorted */
  roundtrip("{\"zz\":{\"N\":\"1\"},\"aa\":{\"N\":\"2\"},\"mm\":{\"M\":{\"y\":{\"NULL\":true},"
            "\"x\":{\"NULL\":true}}}}",
            "{\"zz\":{\"N\":\"1\"},\"aa\":{\"N\":\"2\"},\"mm\":{\"M\":{\"y\":{\"NULL\":true},"
            "\"x\":{\"NULL\":true}}}}");
  /* numbers print without exponent */
  roundtrip("{\"a\":{\"N\":\"1e20\"},\"b\":{\"N\":\"-1E-3\"},\"c\":{\"N\":\"+0001.2300\"},"
            "\"d\":{\"N\":\".5\"}}",
            "{\"a\":{\"N\":\"100000000000000000000\"},\"b\":{\"N\":\"-0.001\"},"
            "\"c\":{\"N\":\"1.23\"},\"d\":{\"N\":\"0.5\"}}");
  /* UTF-8 and NUL inside strings and names survive */
  roundtrip("{\"caf\\u00e9\":{\"S\":\"a\\u0000b\\u00bf\"},\"k\":{\"SS\":[\"\\u20ac\"]}}",
            "{\"caf\xc3\xa9\":{\"S\":\"a\\u0000b\xc2\xbf\"},\"k\":{\"SS\":[\"\xe2\x82\xac\"]}}");
}

static void test_binary_decoding(void **state) {
  (void)state;
  const struct {
    const char *b64;
    const char *bytes;
    size_t len;
  } cases[] = {
      {"", "", 0},         {"QQ==", "A", 1},           {"QUI=", "AB", 2},
      {"QUJD", "ABC", 3},  {"AAEC/w==", "\0\1\2\xff", 4}, {"+/+/", "\xfb\xff\xbf", 3},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char text[64];
    snprintf(text, sizeof text, "{\"B\":\"%s\"}", cases[i].b64);
    trb_av *v = av_ok(text);
    assert_int_equal(v->type, TRB_T_B);
    assert_int_equal(v->u.s.len, cases[i].len);
    assert_memory_equal(v->u.s.p, cases[i].bytes, cases[i].len);
    json_t *j = trb_av_to_json(v);
    assert_string_equal(json_string_value(json_object_get(j, "B")), cases[i].b64);
    json_decref(j);
    trb_av_destroy(v);
  }
  /* a large binary (heap buffer path) */
  size_t n = 3000;
  unsigned char *raw = malloc(n);
  for (size_t i = 0; i < n; i++) raw[i] = (unsigned char)(i * 7);
  trb_av *b = trb_av_new_b(raw, n);
  json_t *j = trb_av_to_json(b);
  trb_av *back = NULL;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_av_from_json(j, &back, &st), TRB_OK);
  assert_true(trb_av_equal(b, back));
  json_decref(j);
  trb_av_destroy(b);
  trb_av_destroy(back);
  free(raw);
}

static void test_values_and_nulls(void **state) {
  (void)state;
  trb_av *v = av_ok("{\"S\":\"x\",\"Unknown\":5}"); /* unknown members ignored */
  assert_int_equal(v->type, TRB_T_S);
  trb_av_destroy(v);
  v = av_ok("{\"S\":null,\"N\":\"5\"}"); /* a null member counts as absent */
  assert_int_equal(v->type, TRB_T_N);
  trb_av_destroy(v);
  v = av_ok("{\"BOOL\":false}");
  assert_int_equal(v->type, TRB_T_BOOL);
  assert_int_equal(v->u.b, 0);
  trb_av_destroy(v);
  /* json_t entry points */
  json_t *j = json_pack("{s:{s:s}}", "a", "S", "b");
  trb_av *item = NULL;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_item_from_json(j, &item, &st), TRB_OK);
  assert_int_equal(item->u.m.n, 1);
  json_t *back = trb_item_to_json(item);
  assert_true(json_equal(j, back));
  json_decref(back);
  json_decref(j);
  trb_av_destroy(item);
}

/* ---- errors ---- */

static void test_errors_shape(void **state) {
  (void)state;
  const char *empty =
      "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes";
  av_err("{}", empty);
  av_err("{\"S\":null}", empty);
  av_err("{\"s\":\"lowercase\"}", empty);
  av_err("null", empty);
  av_err("{\"S\":\"a\",\"N\":\"1\"}",
         "Supplied AttributeValue has more than one datatypes set, must contain exactly one of "
         "the supported datatypes");
  av_err("{\"N\":5}", "NUMBER_VALUE cannot be converted to String");
  av_err("{\"N\":1.5}", "NUMBER_VALUE cannot be converted to String");
  av_err("{\"S\":5}", "NUMBER_VALUE cannot be converted to String");
  av_err("{\"S\":true}", "TRUE_VALUE cannot be converted to String");
  av_err("{\"S\":{}}", "Start of structure or map found where not expected.");
  av_err("{\"S\":[]}", "Start of list found where not expected");
  av_err("{\"B\":false}", "FALSE_VALUE cannot be converted to Blob");
  av_err("{\"BOOL\":\"true\"}", "STRING_VALUE cannot be converted to Boolean");
  av_err("{\"NULL\":1}", "NUMBER_VALUE cannot be converted to Boolean");
  av_err("{\"M\":[]}", "Start of list found where not expected");
  av_err("{\"M\":\"x\"}", "Expected map or null");
  av_err("{\"L\":{}}", "Start of structure or map found where not expected.");
  av_err("{\"L\":7}", "Expected list or null");
  av_err("{\"SS\":\"a\"}", "Expected list or null");
  av_err("{\"SS\":[1]}", "NUMBER_VALUE cannot be converted to String");
  av_err("{\"NS\":[true]}", "TRUE_VALUE cannot be converted to String");
  av_err("{\"BS\":[{}]}", "Start of structure or map found where not expected.");
  av_err("{\"L\":[\"x\"]}", "Expected null");
  av_err("{\"L\":[[]]}", "Start of list found where not expected");
  av_err("{\"L\":[{}]}", empty);
  av_err("\"x\"", "Expected null");
  /* nested errors surface from deep inside */
  av_err("{\"M\":{\"a\":{\"L\":[{\"N\":\"1\"},{\"NULL\":false}]}}}",
         "One or more parameter values were invalid: Null attribute value types must have the "
         "value of true");
}

static void test_errors_values(void **state) {
  (void)state;
  av_err("{\"NULL\":false}",
         "One or more parameter values were invalid: Null attribute value types must have the "
         "value of true");
  av_err("{\"N\":\"abc\"}", "The parameter cannot be converted to a numeric value: abc");
  av_err("{\"N\":\" 1\"}", "The parameter cannot be converted to a numeric value:  1");
  av_err("{\"N\":\"NaN\"}", "The parameter cannot be converted to a numeric value: NaN");
  av_err("{\"N\":\"1e126\"}",
         "Number overflow. Attempting to store a number with magnitude larger than supported "
         "range");
  av_err("{\"N\":\"1e-131\"}",
         "Number underflow. Attempting to store a number with magnitude smaller than supported "
         "range");
  av_err("{\"N\":\"123456789012345678901234567890123456789\"}",
         "Attempting to store more than 38 significant digits in a Number");
  av_err("{\"NS\":[\"1\",\"x\"]}", "The parameter cannot be converted to a numeric value: x");
  av_err("{\"SS\":[]}", "One or more parameter values were invalid: An string set  may not be empty");
  av_err("{\"NS\":[]}", "One or more parameter values were invalid: An number set  may not be empty");
  av_err("{\"BS\":[]}", "One or more parameter values were invalid: A binary set may not be empty");
  av_err("{\"SS\":[\"a\",\"b\",\"a\"]}",
         "One or more parameter values were invalid: Input collection [a, b, a] contains "
         "duplicates.");
  av_err("{\"NS\":[\"1\",\"1.0\"]}",
         "One or more parameter values were invalid: Input collection [1, 1] contains "
         "duplicates.");
  av_err("{\"BS\":[\"QQ==\",\"QQ==\"]}",
         "One or more parameter values were invalid: Input collection [QQ==, QQ==] contains "
         "duplicates.");
  av_err("{\"M\":{\"\":{\"S\":\"x\"}}}",
         "One or more parameter values were invalid: An AttributeValue may not contain an empty "
         "attribute name");
}

static void test_errors_base64(void **state) {
  (void)state;
  av_err("{\"B\":\"abc\"}",
         "'abc' can not be converted to a Blob: Base64 encoded length is expected a multiple of "
         "4 bytes but found: 3");
  av_err("{\"B\":\"ab$=\"}", "'ab$=' can not be converted to a Blob: Invalid Base64 character: '$'");
  av_err("{\"B\":\"ab c\"}", "'ab c' can not be converted to a Blob: Invalid Base64 character: ' '");
  av_err("{\"B\":\"a=bc\"}", "'a=bc' can not be converted to a Blob: Invalid Base64 character: '='");
  av_err("{\"B\":\"ab\\u00e9\"}",
         "'ab\xc3\xa9' can not be converted to a Blob: Invalid Base64 character: '\xc3\xa9'");
  /* non-zero bits under the padding, too much padding */
  av_err("{\"B\":\"QR==\"}",
         "'QR==' can not be converted to a Blob: Invalid last non-pad Base64 character dectected");
  av_err("{\"B\":\"QUJ=\"}",
         "'QUJ=' can not be converted to a Blob: Invalid last non-pad Base64 character dectected");
  av_err("{\"B\":\"A===\"}",
         "'A===' can not be converted to a Blob: Invalid last non-pad Base64 character dectected");
  av_err("{\"BS\":[\"QQ==\",\"Q\"]}",
         "'Q' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 "
         "bytes but found: 1");
  /* a long bad value is cut in the message */
  char text[400];
  char val[301];
  memset(val, 'A', 300);
  val[299] = '!';
  val[300] = 0;
  snprintf(text, sizeof text, "{\"B\":\"%s\"}", val);
  trb_status st;
  trb_status_init(&st);
  trb_av *v = NULL;
  assert_int_equal(trb_av_from_json_text(text, strlen(text), &v, &st), TRB_ESERIAL);
  assert_non_null(strstr(trb_status_msg(&st), "...' can not be converted to a Blob: Invalid Base64 character: '!'"));
}

static void test_errors_depth(void **state) {
  (void)state;
  char buf[2048];
  const char *too_deep =
      "Nesting Levels have exceeded supported limits: Attributes in the item have nested levels "
      "beyond supported limit";
  for (int levels = 31; levels <= 34; levels++) {
    size_t off = 0;
    for (int i = 0; i < levels; i++)
      off += (size_t)snprintf(buf + off, sizeof buf - off, i % 2 ? "{\"L\":[" : "{\"M\":{\"k\":");
    off += (size_t)snprintf(buf + off, sizeof buf - off, "{\"S\":\"x\"}");
    for (int i = levels - 1; i >= 0; i--)
      off += (size_t)snprintf(buf + off, sizeof buf - off, i % 2 ? "]}" : "}}");
    if (levels <= 32) {
      trb_av *v = av_ok(buf);
      trb_status st;
      trb_status_init(&st);
      assert_int_equal(trb_av_validate(v, &st), TRB_OK);
      trb_av_destroy(v);
      /* as an item attribute, the same depth is fine */
      char item[2100];
      snprintf(item, sizeof item, "{\"attr\":%s}", buf);
      trb_av *it = item_ok(item);
      assert_int_equal(trb_item_validate(it, &st), TRB_OK);
      trb_av_destroy(it);
    } else {
      av_err(buf, too_deep);
      char item[2100];
      snprintf(item, sizeof item, "{\"attr\":%s}", buf);
      item_err(item, too_deep);
    }
  }
}

static void test_errors_item(void **state) {
  (void)state;
  item_err("[1]", "Start of list found where not expected");
  item_err("5", "Expected map or null");
  item_err("\"x\"", "Expected map or null");
  item_err("{\"a\":{\"S\":5}}", "NUMBER_VALUE cannot be converted to String");
  item_err("{\"a\":\"plain\"}", "Expected null");
  item_err("{\"a\":{}}",
           "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes");
  item_err("{\"\":{\"S\":\"x\"}}",
           "One or more parameter values were invalid: An AttributeValue may not contain an "
           "empty attribute name");
  item_err("{\"ok\":{\"S\":\"x\"},\"bad\":{\"SS\":[]}}",
           "One or more parameter values were invalid: An string set  may not be empty");
  /* attribute names up to 65535 bytes */
  size_t n = 65536;
  char *text = malloc(n + 64);
  char *name = malloc(n + 1);
  memset(name, 'a', n);
  name[n] = 0;
  snprintf(text, n + 64, "{\"%.*s\":{\"NULL\":true}}", 65535, name);
  trb_av *v = item_ok(text);
  assert_int_equal(v->u.m.e[0].name_len, 65535);
  trb_av_destroy(v);
  snprintf(text, n + 64, "{\"%s\":{\"NULL\":true}}", name);
  trb_status st;
  trb_status_init(&st);
  v = NULL;
  assert_int_equal(trb_item_from_json_text(text, strlen(text), &v, &st), TRB_EINVAL);
  assert_non_null(strstr(trb_status_msg(&st), "65535"));
  assert_null(v);
  free(text);
  free(name);
}

static void test_errors_malformed_text(void **state) {
  (void)state;
  trb_status st;
  trb_status_init(&st);
  trb_av *v = NULL;
  const char *t1 = "{\"a\": {\"S\": \"x\"}";
  assert_int_equal(trb_item_from_json_text(t1, strlen(t1), &v, &st), TRB_ESERIAL);
  assert_non_null(strstr(trb_status_msg(&st), "Malformed JSON at line 1, column"));
  assert_null(v);
  const char *t2 = "{\n  \"a\": {\"S\": \"x\"},\n  \"b\": {\"N\": 1,}\n}";
  assert_int_equal(trb_item_from_json_text(t2, strlen(t2), &v, &st), TRB_ESERIAL);
  assert_non_null(strstr(trb_status_msg(&st), "Malformed JSON at line 3, column"));
  const char *t3 = "";
  assert_int_equal(trb_av_from_json_text(t3, 0, &v, &st), TRB_ESERIAL);
  assert_non_null(strstr(trb_status_msg(&st), "Malformed JSON"));
  const char *t4 = "{\"S\":\"x\"} trailing";
  assert_int_equal(trb_av_from_json_text(t4, strlen(t4), &v, &st), TRB_ESERIAL);
  assert_non_null(strstr(trb_status_msg(&st), "Malformed JSON at line 1, column"));
  /* the length bounds the text: no NUL needed */
  const char *t5 = "{\"S\":\"x\"}GARBAGE";
  assert_int_equal(trb_av_from_json_text(t5, 9, &v, &st), TRB_OK);
  assert_int_equal(v->type, TRB_T_S);
  trb_av_destroy(v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_all_types),
      cmocka_unit_test(test_binary_decoding),
      cmocka_unit_test(test_values_and_nulls),
      cmocka_unit_test(test_errors_shape),
      cmocka_unit_test(test_errors_values),
      cmocka_unit_test(test_errors_base64),
      cmocka_unit_test(test_errors_depth),
      cmocka_unit_test(test_errors_item),
      cmocka_unit_test(test_errors_malformed_text),
  };
  return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
