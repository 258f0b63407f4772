/*
 * test_expr_update.c -- UpdateExpression semantics (engine/expr_update.c):
 * SET (copies read before writing, + and - with exact 38-digit decimals and
 * overflow, if_not_exists, list_append, nested paths, list indexes past the
 * end appending in element order), REMOVE (attributes, nested members, list
 * elements by original position, several at once), ADD (numbers, sets by
 * value), DELETE (set difference, emptied sets removed), invalid document
 * paths, key checks, targets and UPDATED_OLD/UPDATED_NEW picks.
 */
#include "expr_testutil.h"

#define KEY "{\"p\":{\"S\":\"k\"}}"
#define E_MISSING "The provided expression refers to an attribute that does not exist in the item"
#define E_TYPE "An operand in the update expression has an incorrect data type"
#define E_PATH "The document path provided in the update expression is invalid for update"

/* Applies expr to item (NULL: absent, starts from KEY) and compares with want. */
static void upd(const char *names, const char *vals, const char *expr, const char *item,
                const char *want) {
  xenv x;
  xenv_init(&x, names, vals);
  trb_expr *e = xparse(&x, TRB_EXPR_UPDATE, expr);
  trb_av *key = xj(KEY), *it = xj(item), *before = it ? trb_av_copy(it) : NULL, *out = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_expr_update(e, key, it, &out, &st);
  if (rc) fprintf(stderr, "%s: %s\n", expr, trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  assert_item(out, want);
  if (out) assert_int_equal(trb_item_validate(out, NULL), TRB_OK);
  if (it) assert_true(trb_av_equal(it, before)); /* the old item is untouched */
  trb_av_destroy(out);
  trb_av_destroy(before);
  trb_av_destroy(it);
  trb_av_destroy(key);
  trb_expr_destroy(e);
  xenv_fini(&x);
}

static void upd_err(const char *names, const char *vals, const char *expr, const char *item,
                    const char *msg) {
  xenv x;
  xenv_init(&x, names, vals);
  trb_expr *e = xparse(&x, TRB_EXPR_UPDATE, expr);
  trb_av *key = xj(KEY), *it = xj(item), *out = NULL;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_expr_update(e, key, it, &out, &st), TRB_EINVAL);
  assert_null(out);
  assert_string_equal(trb_status_msg(&st), msg);
  trb_av_destroy(it);
  trb_av_destroy(key);
  trb_expr_destroy(e);
  xenv_fini(&x);
}

/* ---- SET ---- */

#define HELLO "{\"p\":{\"S\":\"k\"},\"a\":{\"S\":\"hello\"}}"
#define V4 "{\":v\":{\"N\":\"4\"}}"

static void test_set_basic(void **state) {
  (void)state;
  upd(NULL, V4, "SET b = :v", HELLO, "{\"p\":{\"S\":\"k\"},\"a\":{\"S\":\"hello\"},\"b\":{\"N\":\"4\"}}");
  upd(NULL, V4, "SET a = :v", HELLO, "{\"p\":{\"S\":\"k\"},\"a\":{\"N\":\"4\"}}");
  upd(NULL, V4, "SET x = :v, y = :v", NULL, "{\"p\":{\"S\":\"k\"},\"x\":{\"N\":\"4\"},\"y\":{\"N\":\"4\"}}");
  upd(NULL, NULL, "SET b = a", HELLO, "{\"p\":{\"S\":\"k\"},\"a\":{\"S\":\"hello\"},\"b\":{\"S\":\"hello\"}}");
  upd(NULL, NULL, "SET a = a", HELLO, HELLO);
  upd(NULL, NULL, "SET b = p", NULL, "{\"p\":{\"S\":\"k\"},\"b\":{\"S\":\"k\"}}"); /* the key exists */
  upd("{\"#one\":\"c\",\"#two\":\"a\"}", NULL, "SET #one = #two", HELLO,
      "{\"p\":{\"S\":\"k\"},\"a\":{\"S\":\"hello\"},\"c\":{\"S\":\"hello\"}}");
  /* values are read before anything is written */
  upd(NULL, NULL, "REMOVE a SET b = a", HELLO, "{\"p\":{\"S\":\"k\"},\"b\":{\"S\":\"hello\"}}");
  upd(NULL, NULL, "SET c = a REMOVE a", HELLO, "{\"p\":{\"S\":\"k\"},\"c\":{\"S\":\"hello\"}}");
  upd(NULL, NULL, "SET a = b, b = a",
      "{\"p\":{\"S\":\"k\"},\"a\":{\"N\":\"1\"},\"b\":{\"N\":\"2\"}}",
      "{\"p\":{\"S\":\"k\"},\"a\":{\"N\":\"2\"},\"b\":{\"N\":\"1\"}}");
  upd_err(NULL, NULL, "SET c = z", HELLO, E_MISSING);
  upd_err(NULL, V4, "SET x = :v, y = x", HELLO, E_MISSING);
  upd_err(NULL, NULL, "SET z = z", HELLO, E_MISSING);
  upd_err(NULL, NULL, "SET z = a.b", HELLO, E_MISSING);
  /* empty lists, maps, strings and binaries may be stored */
  upd(NULL, "{\":l\":{\"L\":[]},\":m\":{\"M\":{}},\":s\":{\"S\":\"\"},\":b\":{\"B\":\"\"}}",
      "SET d = :l, e = :m, f = :s, g = :b", NULL,
      "{\"p\":{\"S\":\"k\"},\"d\":{\"L\":[]},\"e\":{\"M\":{}},\"f\":{\"S\":\"\"},\"g\":{\"B\":\"\"}}");
}

#define NUMS "{\":n\":{\"N\":\"3\"},\":s\":{\"S\":\"x\"},\":big\":{\"N\":\"1\"},\":tenth\":{\"N\":\"0.1\"}," \
             "\":fifth\":{\"N\":\"0.2\"},\":e50\":{\"N\":\"1e50\"}}"
#define A2 "{\"p\":{\"S\":\"k\"},\"a\":{\"N\":\"2\"},\"s\":{\"S\":\"str\"}}"

static void test_set_arithmetic(void **state) {
  (void)state;
  upd(NULL, NUMS, "SET a = a + :n", A2, "{\"p\":{\"S\":\"k\"},\"a\":{\"N\":\"5\"},\"s\":{\"S\":\"str\"}}");
  upd(NULL, NUMS, "SET a = :n + a", A2, "{\"p\":{\"S\":\"k\"},\"a\":{\"N\":\"5\"},\"s\":{\"S\":\"str\"}}");
  upd(NULL, NUMS, "SET b = a - :n", A2,
      "{\"p\":{\"S\":\"k\"},\"a\":{\"N\":\"2\"},\"s\":{\"S\":\"str\"},\"b\":{\"N\":\"-1\"}}");
  upd(NULL, NUMS, "SET b = a + a", A2,
      "{\"p\":{\"S\":\"k\"},\"a\":{\"N\":\"2\"},\"s\":{\"S\":\"str\"},\"b\":{\"N\":\"4\"}}");
  upd(NULL, NUMS, "SET b = :tenth + :fifth", NULL, "{\"p\":{\"S\":\"k\"},\"b\":{\"N\":\"0.3\"}}");
  upd(NULL, NUMS, "SET b = (:tenth - :fifth)", NULL, "{\"p\":{\"S\":\"k\"},\"b\":{\"N\":\"-0.1\"}}");
  upd(NULL, NUMS, "SET b = (:n) - :n", NULL, "{\"p\":{\"S\":\"k\"},\"b\":{\"N\":\"0\"}}");
  upd_err(NULL, NUMS, "SET a = q + :n", A2, E_MISSING);
  upd_err(NULL, NUMS, "SET a = :n - q", A2, E_MISSING);
  upd_err(NULL, NUMS, "SET a = s + :n", A2, E_TYPE);
  upd_err(NULL, NUMS, "SET a = :n - s", A2, E_TYPE);

  /* 38 significant digits are exact; one more is DynamoDB's overflow */
  const char *nines = "{\"p\":{\"S\":\"k\"},\"a\":{\"N\":\"99999999999999999999999999999999999998\"},"
                      "\"b\":{\"N\":\"12345678901234567890123456789012345678\"}}";
  upd(NULL, NUMS, "SET a = a + :big, b = b - :big", nines,
      "{\"p\":{\"S\":\"k\"},\"a\":{\"N\":\"99999999999999999999999999999999999999\"},"
      "\"b\":{\"N\":\"12345678901234567890123456789012345677\"}}");
  trb_dec x, y, z;
  trb_status want;
  trb_status_init(&want);
  /* ...998 + 3 = 100...001 needs 39 digits (while ...999 + 1 = 1e38 is fine) */
  assert_int_equal(trb_dec_parse("99999999999999999999999999999999999998", 38, &x, NULL), TRB_OK);
  assert_int_equal(trb_dec_parse("3", 1, &y, NULL), TRB_OK);
  assert_int_equal(trb_dec_add(&x, &y, &z, &want), TRB_EINVAL);
  assert_non_null(strstr(trb_status_msg(&want), "Number overflow"));
  upd_err(NULL, NUMS, "SET a = a + :n", nines, trb_status_msg(&want));
  upd(NULL, "{\":one\":{\"N\":\"1\"}}", "SET a = :one + a", "{\"a\":{\"N\":\"99999999999999999999999999999999999999\"}}",
      "{\"a\":{\"N\":\"100000000000000000000000000000000000000\"}}");
  /* 1e50 + 1 needs 51 digits: also "overflow" */
  trb_status_init(&want);
  assert_int_equal(trb_dec_parse("1", 1, &y, NULL), TRB_OK);
  assert_int_equal(trb_dec_parse("1e50", 4, &x, NULL), TRB_OK);
  assert_int_equal(trb_dec_add(&x, &y, &z, &want), TRB_EINVAL);
  upd_err(NULL, NUMS, "SET a = :e50 + :big", NULL, trb_status_msg(&want));
}

static void test_if_not_exists_and_list_append(void **state) {
  (void)state;
  const char *vals = "{\":v\":{\"N\":\"2\"},\":one\":{\"N\":\"1\"},"
                     "\":l\":{\"L\":[{\"S\":\"x\"}]},\":l2\":{\"L\":[{\"N\":\"1\"},{\"N\":\"2\"}]}}";
  upd(NULL, vals, "SET a = if_not_exists(a, :v)", NULL, "{\"p\":{\"S\":\"k\"},\"a\":{\"N\":\"2\"}}");
  upd(NULL, vals, "SET a = if_not_exists(a, :v)", "{\"p\":{\"S\":\"k\"},\"a\":{\"N\":\"7\"}}",
      "{\"p\":{\"S\":\"k\"},\"a\":{\"N\":\"7\"}}");
  upd(NULL, vals, "SET b = if_not_exists(a, :v)", "{\"p\":{\"S\":\"k\"},\"a\":{\"N\":\"7\"}}",
      "{\"p\":{\"S\":\"k\"},\"a\":{\"N\":\"7\"},\"b\":{\"N\":\"7\"}}");
  upd(NULL, vals, "SET c = if_not_exists(c, :v) + :one", NULL, "{\"p\":{\"S\":\"k\"},\"c\":{\"N\":\"3\"}}");
  upd(NULL, vals, "SET c = if_not_exists(c, :v) + :one", "{\"p\":{\"S\":\"k\"},\"c\":{\"N\":\"3\"}}",
      "{\"p\":{\"S\":\"k\"},\"c\":{\"N\":\"4\"}}");
  upd(NULL, vals, "SET a.b = if_not_exists(a.b, :v)", "{\"p\":{\"S\":\"k\"},\"a\":{\"M\":{}}}",
      "{\"p\":{\"S\":\"k\"},\"a\":{\"M\":{\"b\":{\"N\":\"2\"}}}}");

  const char *item = "{\"p\":{\"S\":\"k\"},\"a\":{\"L\":[{\"S\":\"hi\"},{\"N\":\"2\"}]},\"s\":{\"S\":\"x\"}}";
  upd(NULL, vals, "SET a = list_append(a, :l)", item,
      "{\"p\":{\"S\":\"k\"},\"a\":{\"L\":[{\"S\":\"hi\"},{\"N\":\"2\"},{\"S\":\"x\"}]},\"s\":{\"S\":\"x\"}}");
  upd(NULL, vals, "SET a = list_append(:l, a)", item,
      "{\"p\":{\"S\":\"k\"},\"a\":{\"L\":[{\"S\":\"x\"},{\"S\":\"hi\"},{\"N\":\"2\"}]},\"s\":{\"S\":\"x\"}}");
  upd(NULL, vals, "SET b = list_append(a, a)", item,
      "{\"p\":{\"S\":\"k\"},\"a\":{\"L\":[{\"S\":\"hi\"},{\"N\":\"2\"}]},\"s\":{\"S\":\"x\"},"
      "\"b\":{\"L\":[{\"S\":\"hi\"},{\"N\":\"2\"},{\"S\":\"hi\"},{\"N\":\"2\"}]}}");
  upd(NULL, vals, "SET b = list_append(:l, :l2)", NULL,
      "{\"p\":{\"S\":\"k\"},\"b\":{\"L\":[{\"S\":\"x\"},{\"N\":\"1\"},{\"N\":\"2\"}]}}");
  upd(NULL, vals, "SET z = list_append(if_not_exists(z, :l2), :l)", NULL,
      "{\"p\":{\"S\":\"k\"},\"z\":{\"L\":[{\"N\":\"1\"},{\"N\":\"2\"},{\"S\":\"x\"}]}}");
  upd_err(NULL, vals, "SET a = list_append(q, :l)", item, E_MISSING);
  upd_err(NULL, vals, "SET a = list_append(:l, s)", item, E_TYPE);
  upd_err(NULL, vals, "SET a = list_append(a, :l) + :v", item, E_TYPE);
}

#define NEST "{\"p\":{\"S\":\"k\"},\"a\":{\"M\":{\"b\":{\"N\":\"3\"},\"c\":{\"N\":\"4\"}}},\"d\":{\"N\":\"5\"}," \
             "\"s\":{\"S\":\"hello\"},\"l\":{\"L\":[{\"S\":\"hi\"}]}}"

static void test_set_nested_and_bad_paths(void **state) {
  (void)state;
  upd(NULL, V4, "SET a.c = :v", NEST,
      "{\"p\":{\"S\":\"k\"},\"a\":{\"M\":{\"b\":{\"N\":\"3\"},\"c\":{\"N\":\"4\"}}},\"d\":{\"N\":\"5\"},"
      "\"s\":{\"S\":\"hello\"},\"l\":{\"L\":[{\"S\":\"hi\"}]}}");
  upd(NULL, V4, "SET a.e = :v, a.b = d", NEST,
      "{\"p\":{\"S\":\"k\"},\"a\":{\"M\":{\"b\":{\"N\":\"5\"},\"c\":{\"N\":\"4\"},\"e\":{\"N\":\"4\"}}},"
      "\"d\":{\"N\":\"5\"},\"s\":{\"S\":\"hello\"},\"l\":{\"L\":[{\"S\":\"hi\"}]}}");
  upd(NULL, V4, "SET l[0].x = :v", "{\"l\":{\"L\":[{\"M\":{}}]}}",
      "{\"l\":{\"L\":[{\"M\":{\"x\":{\"N\":\"4\"}}}]}}");
  const char *deep = "{\"a\":{\"M\":{\"b\":{\"N\":\"3\"},\"c\":{\"L\":[{\"S\":\"hi\"},{\"M\":{\"x\":{\"M\":{"
                     "\"y\":{\"L\":[{\"N\":\"3\"},{\"N\":\"5\"},{\"N\":\"7\"}]}}}}}]}}}}";
  upd("{\"#name\":\"x\"}", "{\":v\":{\"N\":\"9\"}}", "SET a.c[1].#name.y[1] = :v", deep,
      "{\"a\":{\"M\":{\"b\":{\"N\":\"3\"},\"c\":{\"L\":[{\"S\":\"hi\"},{\"M\":{\"x\":{\"M\":{"
      "\"y\":{\"L\":[{\"N\":\"3\"},{\"N\":\"9\"},{\"N\":\"7\"}]}}}}}]}}}}");
  upd(NULL, NULL, "SET a.z = a.c[1].x.y[2]", deep,
      "{\"a\":{\"M\":{\"b\":{\"N\":\"3\"},\"z\":{\"N\":\"7\"},\"c\":{\"L\":[{\"S\":\"hi\"},{\"M\":{\"x\":"
      "{\"M\":{\"y\":{\"L\":[{\"N\":\"3\"},{\"N\":\"5\"},{\"N\":\"7\"}]}}}}}]}}}}");
  /* a path into a missing or non-container attribute cannot be written */
  upd_err(NULL, V4, "SET s.c = :v", NEST, E_PATH);
  upd_err(NULL, V4, "SET l.c = :v", NEST, E_PATH);
  upd_err(NULL, V4, "SET q.c = :v", NEST, E_PATH);
  upd_err(NULL, V4, "SET a.q.c = :v", NEST, E_PATH);
  upd_err(NULL, V4, "SET s[0] = :v", NEST, E_PATH);
  upd_err(NULL, V4, "SET a[0] = :v", NEST, E_PATH);
  upd_err(NULL, V4, "SET q[0] = :v", NEST, E_PATH);
  upd_err(NULL, V4, "SET l[3].x = :v", NEST, E_PATH);
  upd_err(NULL, V4, "SET c.c = :v", NULL, E_PATH);
  upd_err(NULL, V4, "SET b[0] = :v", NULL, E_PATH);
  upd_err(NULL, V4, "ADD q.x :v", NEST, E_PATH);
  upd_err(NULL, "{\":s\":{\"SS\":[\"a\"]}}", "DELETE q.x :s", NEST, E_PATH);
  /* the first failing action stops the update: nothing is returned */
  upd_err(NULL, V4, "SET ok = :v, q.c = :v", NEST, E_PATH);
}

#define L3 "{\"a\":{\"L\":[{\"S\":\"one\"},{\"S\":\"two\"},{\"S\":\"three\"}]}}"

static void test_set_list_elements(void **state) {
  (void)state;
  const char *vals = "{\":v\":{\"S\":\"hello\"},\":1\":{\"S\":\"a1\"},\":2\":{\"S\":\"a2\"},"
                     "\":3\":{\"S\":\"a3\"},\":4\":{\"S\":\"a4\"}}";
  upd(NULL, vals, "SET a[1] = :v", L3, "{\"a\":{\"L\":[{\"S\":\"one\"},{\"S\":\"hello\"},{\"S\":\"three\"}]}}");
  upd(NULL, vals, "SET a[3] = :v", L3,
      "{\"a\":{\"L\":[{\"S\":\"one\"},{\"S\":\"two\"},{\"S\":\"three\"},{\"S\":\"hello\"}]}}");
  upd(NULL, vals, "SET a[7] = :v", L3,
      "{\"a\":{\"L\":[{\"S\":\"one\"},{\"S\":\"two\"},{\"S\":\"three\"},{\"S\":\"hello\"}]}}");
  /* several appends go in element-number order, not text order */
  upd(NULL, vals, "SET a[84] = :1, a[37] = :2, a[17] = :3, a[50] = :4", L3,
      "{\"a\":{\"L\":[{\"S\":\"one\"},{\"S\":\"two\"},{\"S\":\"three\"},{\"S\":\"a3\"},{\"S\":\"a2\"},"
      "{\"S\":\"a4\"},{\"S\":\"a1\"}]}}");
  upd(NULL, vals, "SET a[5] = :1, a[0] = :2, a[3] = :3", L3,
      "{\"a\":{\"L\":[{\"S\":\"a2\"},{\"S\":\"two\"},{\"S\":\"three\"},{\"S\":\"a3\"},{\"S\":\"a1\"}]}}");
  upd(NULL, vals, "SET a[0] = a[2], a[2] = a[0]", L3,
      "{\"a\":{\"L\":[{\"S\":\"three\"},{\"S\":\"two\"},{\"S\":\"one\"}]}}");
  upd(NULL, vals, "SET e[0] = :1", "{\"e\":{\"L\":[]}}", "{\"e\":{\"L\":[{\"S\":\"a1\"}]}}");
}

/* ---- REMOVE ---- */

#define L6 "{\"a\":{\"L\":[{\"N\":\"2\"},{\"N\":\"3\"},{\"N\":\"4\"},{\"N\":\"5\"},{\"N\":\"6\"},{\"N\":\"7\"}]}}"

static void test_remove(void **state) {
  (void)state;
  upd(NULL, NULL, "REMOVE a", HELLO, "{\"p\":{\"S\":\"k\"}}");
  upd(NULL, NULL, "REMOVE zz, a", HELLO, "{\"p\":{\"S\":\"k\"}}");
  /* on an absent item, only taking away leaves it absent (DynamoDB creates
   * no key-only item); anything that sets or adds creates it */
  upd(NULL, NULL, "REMOVE zz", NULL, NULL);
  upd(NULL, NULL, "REMOVE zz, yy.a[2]", NULL, NULL);
  upd(NULL, "{\":s\":{\"SS\":[\"a\"]}}", "DELETE zz :s REMOVE yy", NULL, NULL);
  upd(NULL, "{\":s\":{\"SS\":[\"a\"]}}", "REMOVE zz ADD s :s", NULL,
      "{\"p\":{\"S\":\"k\"},\"s\":{\"SS\":[\"a\"]}}");
  upd(NULL, V4, "REMOVE zz SET x = :v", NULL, "{\"p\":{\"S\":\"k\"},\"x\":{\"N\":\"4\"}}");
  const char *item = "{\"a\":{\"M\":{\"b\":{\"N\":\"3\"},\"c\":{\"L\":[{\"S\":\"hi\"},{\"M\":{\"x\":{\"M\":{\"y\":"
                     "{\"L\":[{\"N\":\"3\"},{\"N\":\"5\"},{\"N\":\"7\"}]}}},\"q\":{\"N\":\"2\"}}}]}}}}";
  upd(NULL, NULL, "REMOVE a.c[1].x.y[1], a.c[1].q", item,
      "{\"a\":{\"M\":{\"b\":{\"N\":\"3\"},\"c\":{\"L\":[{\"S\":\"hi\"},{\"M\":{\"x\":{\"M\":{\"y\":"
      "{\"L\":[{\"N\":\"3\"},{\"N\":\"7\"}]}}}}}]}}}}");
  upd(NULL, NULL, "REMOVE a.b", "{\"a\":{\"M\":{\"b\":{\"N\":\"1\"}}}}", "{\"a\":{\"M\":{}}}");
  upd(NULL, NULL, "REMOVE a[0]", "{\"a\":{\"L\":[{\"N\":\"1\"}]}}", "{\"a\":{\"L\":[]}}");
  upd(NULL, NULL, "REMOVE a[17]", L6, L6);
  /* several list removals name original positions */
  const char *without13 = "{\"a\":{\"L\":[{\"N\":\"2\"},{\"N\":\"4\"},{\"N\":\"6\"},{\"N\":\"7\"}]}}";
  upd(NULL, NULL, "REMOVE a[1], a[3]", L6, without13);
  upd(NULL, NULL, "REMOVE a[3], a[1]", L6, without13);
  upd(NULL, NULL, "REMOVE a[0], a[1], a[2], a[5]", L6, "{\"a\":{\"L\":[{\"N\":\"5\"},{\"N\":\"6\"}]}}");
  upd(NULL, NULL, "REMOVE a[5], a[4], a[3], a[2], a[1], a[0]", L6, "{\"a\":{\"L\":[]}}");
  /* REMOVE a[1] SET a[3] = v: a[3] is the original fourth element */
  const char *v17 = "{\":v\":{\"N\":\"17\"}}";
  const char *want = "{\"a\":{\"L\":[{\"N\":\"2\"},{\"N\":\"4\"},{\"N\":\"17\"},{\"N\":\"6\"},{\"N\":\"7\"}]}}";
  upd(NULL, v17, "REMOVE a[1] SET a[3] = :v", L6, want);
  upd(NULL, v17, "SET a[3] = :v REMOVE a[1]", L6, want);
  upd(NULL, v17, "REMOVE a[1] SET a[9] = :v", L6,
      "{\"a\":{\"L\":[{\"N\":\"2\"},{\"N\":\"4\"},{\"N\":\"5\"},{\"N\":\"6\"},{\"N\":\"7\"},{\"N\":\"17\"}]}}");
  upd(NULL, v17, "SET a[1] = a[0] REMOVE a[0]", L6,
      "{\"a\":{\"L\":[{\"N\":\"2\"},{\"N\":\"4\"},{\"N\":\"5\"},{\"N\":\"6\"},{\"N\":\"7\"}]}}");
  /* removals in a list and in a list inside it */
  upd(NULL, NULL, "REMOVE a[0], a[2][1]",
      "{\"a\":{\"L\":[{\"L\":[{\"N\":\"1\"},{\"N\":\"2\"}]},{\"L\":[{\"N\":\"3\"}]},{\"L\":[{\"N\":\"5\"},"
      "{\"N\":\"6\"}]}]}}",
      "{\"a\":{\"L\":[{\"L\":[{\"N\":\"3\"}]},{\"L\":[{\"N\":\"5\"}]}]}}");
  /* bad paths */
  upd_err(NULL, NULL, "REMOVE a.c", HELLO, E_PATH);
  upd_err(NULL, NULL, "REMOVE c.c", HELLO, E_PATH);
  upd_err(NULL, NULL, "REMOVE a[0]", HELLO, E_PATH);
  upd_err(NULL, NULL, "REMOVE b[0]", HELLO, E_PATH);
  /* ... except that AWS ignores them when the item does not exist */
  upd(NULL, NULL, "REMOVE x.y", NULL, NULL); /* absent: stays absent */
  upd(NULL, NULL, "REMOVE x[0], y.z[2]", NULL, NULL);
}

/* ---- ADD ---- */

static void test_add(void **state) {
  (void)state;
  const char *vals = "{\":n\":{\"N\":\"4\"},\":neg\":{\"N\":\"-0.5\"},\":pig\":{\"SS\":[\"pig\"]},"
                     "\":more\":{\"SS\":[\"coati\",\"beaver\",\"badger\"]},"
                     "\":ns\":{\"NS\":[\"1.0\",\"3\"]},\":bs\":{\"BS\":[\"AQ==\",\"Ag==\"]}}";
  upd(NULL, vals, "ADD a :n", "{\"a\":{\"N\":\"3\"},\"b\":{\"S\":\"hi\"}}",
      "{\"a\":{\"N\":\"7\"},\"b\":{\"S\":\"hi\"}}");
  upd(NULL, vals, "ADD a :neg", "{\"a\":{\"N\":\"3\"}}", "{\"a\":{\"N\":\"2.5\"}}");
  upd(NULL, vals, "ADD c :n", "{\"a\":{\"N\":\"3\"}}", "{\"a\":{\"N\":\"3\"},\"c\":{\"N\":\"4\"}}");
  upd(NULL, vals, "ADD c :n", NULL, "{\"p\":{\"S\":\"k\"},\"c\":{\"N\":\"4\"}}");
  upd(NULL, vals, "ADD m.x :n, m.y :n", "{\"m\":{\"M\":{\"x\":{\"N\":\"1\"}}}}",
      "{\"m\":{\"M\":{\"x\":{\"N\":\"5\"},\"y\":{\"N\":\"4\"}}}}");
  upd(NULL, vals, "ADD l[0] :n, l[4] :n", "{\"l\":{\"L\":[{\"N\":\"1\"}]}}",
      "{\"l\":{\"L\":[{\"N\":\"5\"},{\"N\":\"4\"}]}}");
  upd_err(NULL, vals, "ADD b :n", "{\"b\":{\"S\":\"hi\"}}", E_TYPE);
  upd_err(NULL, vals, "ADD b :n", "{\"b\":{\"NS\":[\"1\"]}}", E_TYPE);
  /* sets: union, numbers by value, no duplicates */
  upd(NULL, vals, "ADD a :pig", "{\"a\":{\"SS\":[\"dog\",\"cat\",\"mouse\"]}}",
      "{\"a\":{\"SS\":[\"dog\",\"cat\",\"mouse\",\"pig\"]}}");
  upd(NULL, vals, "ADD a :more", "{\"a\":{\"SS\":[\"beaver\",\"lynx\",\"coati\"]}}",
      "{\"a\":{\"SS\":[\"beaver\",\"lynx\",\"coati\",\"badger\"]}}");
  upd(NULL, vals, "ADD a :ns", "{\"a\":{\"NS\":[\"1\",\"2\"]}}", "{\"a\":{\"NS\":[\"1\",\"2\",\"3\"]}}");
  upd(NULL, vals, "ADD a :bs", "{\"a\":{\"BS\":[\"Ag==\"]}}", "{\"a\":{\"BS\":[\"Ag==\",\"AQ==\"]}}");
  upd(NULL, vals, "ADD b :pig", "{\"a\":{\"S\":\"hello\"}}",
      "{\"a\":{\"S\":\"hello\"},\"b\":{\"SS\":[\"pig\"]}}");
  upd(NULL, vals, "ADD b :pig", NULL, "{\"p\":{\"S\":\"k\"},\"b\":{\"SS\":[\"pig\"]}}");
  upd_err(NULL, vals, "ADD a :ns", "{\"a\":{\"SS\":[\"x\"]}}", E_TYPE);
  upd_err(NULL, vals, "ADD a :pig", "{\"a\":{\"N\":\"1\"}}", E_TYPE);
  upd_err(NULL, vals, "ADD a :pig", "{\"a\":{\"L\":[]}}", E_TYPE);
  /* the number of an ADD overflows like + does */
  trb_dec x, y, z;
  trb_status want;
  trb_status_init(&want);
  assert_int_equal(trb_dec_parse("9e125", 5, &x, NULL), TRB_OK);
  assert_int_equal(trb_dec_parse("9e125", 5, &y, NULL), TRB_OK);
  assert_int_equal(trb_dec_add(&x, &y, &z, &want), TRB_EINVAL);
  upd_err(NULL, "{\":n\":{\"N\":\"9e125\"}}", "ADD a :n", "{\"a\":{\"N\":\"9e125\"}}",
          trb_status_msg(&want));
}

/* ---- DELETE ---- */

static void test_delete(void **state) {
  (void)state;
  const char *vals = "{\":cm\":{\"SS\":[\"cat\",\"mouse\"]},\":pig\":{\"SS\":[\"pig\"]},"
                     "\":dog\":{\"SS\":[\"dog\"]},\":two\":{\"NS\":[\"2.0\",\"9\"]},"
                     "\":b\":{\"BS\":[\"AQ==\"]},\":x\":{\"SS\":[\"x\"]}}";
  const char *animals = "{\"a\":{\"SS\":[\"dog\",\"cat\",\"mouse\"]},\"b\":{\"S\":\"hi\"}}";
  upd(NULL, vals, "DELETE a :cm", animals, "{\"a\":{\"SS\":[\"dog\"]},\"b\":{\"S\":\"hi\"}}");
  upd(NULL, vals, "DELETE a :pig", animals, animals);
  upd(NULL, vals, "DELETE a :cm, c :dog", animals, "{\"a\":{\"SS\":[\"dog\"]},\"b\":{\"S\":\"hi\"}}");
  /* an emptied set is removed */
  upd(NULL, vals, "DELETE a :dog", "{\"a\":{\"SS\":[\"dog\"]},\"b\":{\"S\":\"hi\"}}",
      "{\"b\":{\"S\":\"hi\"}}");
  upd(NULL, vals, "DELETE a :dog", "{\"b\":{\"S\":\"hi\"}}", "{\"b\":{\"S\":\"hi\"}}");
  upd(NULL, vals, "DELETE a :dog", NULL, NULL); /* absent: stays absent */
  upd(NULL, vals, "DELETE n :two", "{\"n\":{\"NS\":[\"1\",\"2\",\"3\"]}}", "{\"n\":{\"NS\":[\"1\",\"3\"]}}");
  upd(NULL, vals, "DELETE bs :b", "{\"bs\":{\"BS\":[\"AQ==\",\"AA==\"]}}", "{\"bs\":{\"BS\":[\"AA==\"]}}");
  upd(NULL, vals, "DELETE m.s :x", "{\"m\":{\"M\":{\"s\":{\"SS\":[\"x\"]}}}}", "{\"m\":{\"M\":{}}}");
  /* a set in a list that becomes empty is removed from the list */
  upd(NULL, vals, "DELETE l[0] :x", "{\"l\":{\"L\":[{\"SS\":[\"x\"]},{\"SS\":[\"y\"]}]}}",
      "{\"l\":{\"L\":[{\"SS\":[\"y\"]}]}}");
  upd_err(NULL, vals, "DELETE a :two", animals, E_TYPE);
  upd_err(NULL, vals, "DELETE b :dog", animals, E_TYPE);
}

static void test_all_clauses(void **state) {
  (void)state;
  upd(NULL,
      "{\":v\":{\"N\":\"10\"},\":w\":{\"S\":\"dog\"},\":s\":{\"SS\":[\"x\"]},\":one\":{\"N\":\"1\"}}",
      "DELETE tags :s ADD cnt :one REMOVE prev, a.b SET a.c = :v, name2 = :w",
      "{\"p\":{\"S\":\"k\"},\"tags\":{\"SS\":[\"x\",\"y\"]},\"cnt\":{\"N\":\"41\"},\"prev\":{\"N\":\"0\"},"
      "\"a\":{\"M\":{\"b\":{\"N\":\"1\"}}}}",
      "{\"p\":{\"S\":\"k\"},\"tags\":{\"SS\":[\"y\"]},\"cnt\":{\"N\":\"42\"},\"a\":{\"M\":{\"c\":{\"N\":"
      "\"10\"}}},\"name2\":{\"S\":\"dog\"}}");
}

/* ---- keys, targets, picks ---- */

static void check_keys(const char *expr, const char *msg) {
  xenv x;
  xenv_init(&x, NULL, "{\":v\":{\"N\":\"1\"}}");
  trb_expr *e = xparse(&x, TRB_EXPR_UPDATE, expr);
  trb_keyschema ks;
  memset(&ks, 0, sizeof ks);
  strcpy(ks.pk_name, "p");
  ks.pk_type = TRB_T_S;
  ks.has_sk = 1;
  strcpy(ks.sk_name, "c");
  ks.sk_type = TRB_T_N;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_expr_update_check_keys(e, &ks, &st);
  if (msg) {
    assert_int_equal(rc, TRB_EINVAL);
    assert_string_equal(trb_status_msg(&st), msg);
  } else {
    assert_int_equal(rc, TRB_OK);
  }
  trb_expr_destroy(e);
  xenv_fini(&x);
}

static void test_check_keys(void **state) {
  (void)state;
  const char *pkm = "One or more parameter values were invalid: Cannot update attribute p. This "
                    "attribute is part of the key";
  const char *skm = "One or more parameter values were invalid: Cannot update attribute c. This "
                    "attribute is part of the key";
  check_keys("SET p = :v", pkm);
  check_keys("SET a = :v, c = :v", skm);
  check_keys("REMOVE c", skm);
  check_keys("ADD p :v", pkm);
  check_keys("SET p.x = :v",
             "Key attributes must be scalars; list random access '[]' and map lookup '.' are not "
             "allowed: Key: p");
  check_keys("REMOVE c[0]",
             "Key attributes must be scalars; list random access '[]' and map lookup '.' are not "
             "allowed: Key: c");
  check_keys("SET a = p, b = c", NULL);
  check_keys("SET pp = :v, cc = :v REMOVE p2", NULL);
}

static void test_targets(void **state) {
  (void)state;
  xenv x;
  xenv_init(&x, "{\"#e\":\"e\"}", "{\":v\":{\"N\":\"1\"}}");
  trb_expr *e = xparse(&x, TRB_EXPR_UPDATE, "SET a.b = :v, c = q REMOVE d[1], a.x ADD #e :v, c2 :v");
  const char *const *names;
  size_t n = trb_expr_update_targets(e, &names);
  assert_int_equal(n, 5);
  assert_string_equal(names[0], "a");
  assert_string_equal(names[1], "c");
  assert_string_equal(names[2], "d");
  assert_string_equal(names[3], "e");
  assert_string_equal(names[4], "c2");
  trb_expr_destroy(e);
  xenv_fini(&x);
}

static void test_pick(void **state) {
  (void)state;
  xenv x;
  xenv_init(&x, NULL, "{\":v\":{\"S\":\"v\"},\":w\":{\"S\":\"w\"},\":n\":{\"N\":\"1\"}}");
  trb_expr *e = xparse(&x, TRB_EXPR_UPDATE, "SET a.b = :v, c = :w, l[1] = :v REMOVE d ADD e :n");
  trb_av *old = xj("{\"p\":{\"S\":\"k\"},\"a\":{\"M\":{\"b\":{\"N\":\"1\"},\"z\":{\"N\":\"2\"}}},"
                   "\"d\":{\"S\":\"x\"},\"f\":{\"S\":\"y\"},\"l\":{\"L\":[{\"N\":\"0\"},{\"N\":\"1\"},{\"N\":\"2\"}]}}");
  trb_av *key = xj(KEY), *neu = NULL, *out = NULL;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_expr_update_pick(e, old, &out, &st), TRB_OK);
  assert_item(out, "{\"a\":{\"M\":{\"b\":{\"N\":\"1\"}}},\"d\":{\"S\":\"x\"},\"l\":{\"L\":[{\"N\":\"1\"}]}}");
  trb_av_destroy(out);
  assert_int_equal(trb_expr_update_fn(e, key, old, &neu, &st), TRB_OK);
  assert_int_equal(trb_expr_update_pick(e, neu, &out, &st), TRB_OK);
  assert_item(out, "{\"a\":{\"M\":{\"b\":{\"S\":\"v\"}}},\"c\":{\"S\":\"w\"},\"e\":{\"N\":\"1\"},"
                   "\"l\":{\"L\":[{\"S\":\"v\"}]}}");
  trb_av_destroy(out);
  /* nothing touched, or no item: NULL */
  trb_av_destroy(old);
  old = xj("{\"p\":{\"S\":\"k\"}}");
  assert_int_equal(trb_expr_update_pick(e, old, &out, &st), TRB_OK);
  assert_null(out);
  assert_int_equal(trb_expr_update_pick(e, NULL, &out, &st), TRB_OK);
  assert_null(out);
  trb_av_destroy(neu);
  trb_av_destroy(old);
  trb_av_destroy(key);
  trb_expr_destroy(e);
  xenv_fini(&x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_set_basic),
      cmocka_unit_test(test_set_arithmetic),
      cmocka_unit_test(test_if_not_exists_and_list_append),
      cmocka_unit_test(test_set_nested_and_bad_paths),
      cmocka_unit_test(test_set_list_elements),
      cmocka_unit_test(test_remove),
      cmocka_unit_test(test_add),
      cmocka_unit_test(test_delete),
      cmocka_unit_test(test_all_clauses),
      cmocka_unit_test(test_check_keys),
      cmocka_unit_test(test_targets),
      cmocka_unit_test(test_pick),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
