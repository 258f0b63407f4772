/*
 * test_expr_eval.c -- evaluation of conditions and filters
 * (engine/expr_eval.c): precedence of OR / AND / NOT and parentheses, every
 * comparator and function on the type combinations that matter, missing
 * attributes and missing items, nested paths; key conditions against key
 * schemas (every accepted shape and every error); projections of nested
 * paths; and concurrent evaluation of one parsed expression.
 */
#include <pthread.h>

#include "expr_testutil.h"

#define T "{\":t\":{\"BOOL\":true}}"
#define ITEM_TF "{\"a\":{\"BOOL\":true},\"b\":{\"BOOL\":false},\"c\":{\"BOOL\":false}}"

/* ---- precedence ---- */

static void test_precedence(void **state) {
  (void)state;
  /* a OR b AND c = a OR (b AND c): true; (a OR b) AND c would be false */
  assert_true(cond(NULL, T, "a = :t OR b = :t AND c = :t", ITEM_TF));
  assert_false(cond(NULL, T, "(a = :t OR b = :t) AND c = :t", ITEM_TF));
  /* b AND c OR a = (b AND c) OR a */
  assert_true(cond(NULL, T, "b = :t AND c = :t OR a = :t", ITEM_TF));
  assert_false(cond(NULL, T, "b = :t AND (c = :t OR a = :t)", ITEM_TF));
  /* NOT binds tighter than AND: (NOT a) AND b */
  assert_false(cond(NULL, T, "NOT a = :t AND b = :t", ITEM_TF));
  assert_true(cond(NULL, T, "NOT b = :t AND a = :t", ITEM_TF));
  assert_true(cond(NULL, T, "NOT (b = :t AND a = :t)", ITEM_TF));
  assert_false(cond(NULL, T, "NOT (a = :t OR b = :t)", ITEM_TF));
  assert_true(cond(NULL, T, "NOT NOT a = :t", ITEM_TF));
  /* NOT a OR a is always true; several ORs and ANDs chain left to right */
  assert_true(cond(NULL, T, "NOT a = :t OR a = :t", ITEM_TF));
  assert_true(cond(NULL, T, "b = :t OR c = :t OR a = :t", ITEM_TF));
  assert_false(cond(NULL, T, "a = :t AND a = :t AND b = :t", ITEM_TF));
  assert_true(cond(NULL, T, "(a) = :t", ITEM_TF));
  assert_true(cond(NULL, T, "((b = :t) OR (c = :t)) OR ((a = :t) AND (a = :t))", ITEM_TF));
}

/* ---- comparisons ---- */

#define NV "{\":n9\":{\"N\":\"9\"},\":n10\":{\"N\":\"1e1\"},\":s\":{\"S\":\"a\"},\":S\":{\"S\":\"A\"}," \
           "\":b1\":{\"B\":\"AQ==\"},\":b2\":{\"B\":\"/w==\"},\":ns\":{\"S\":\"10\"}}"
#define IT "{\"n\":{\"N\":\"10\"},\"s\":{\"S\":\"a\"},\"b\":{\"B\":\"gA==\"},\"inv\":{\"S\":\"\xc2\xbf\"}}"

static void test_compare_scalars(void **state) {
  (void)state;
  /* N is numeric: 10 > 9 (textually "10" < "9"), 1e1 = 10 */
  assert_true(cond(NULL, NV, "n > :n9", IT));
  assert_true(cond(NULL, NV, "n >= :n9", IT));
  assert_false(cond(NULL, NV, "n < :n9", IT));
  assert_false(cond(NULL, NV, "n <= :n9", IT));
  assert_true(cond(NULL, NV, "n = :n10", IT));
  assert_true(cond(NULL, NV, "n <= :n10", IT));
  assert_true(cond(NULL, NV, "n >= :n10", IT));
  assert_false(cond(NULL, NV, "n <> :n10", IT));
  assert_true(cond(NULL, NV, ":n9 < n", IT));
  /* S by UTF-8 bytes: "a" > "A", "\xc2\xbf" > "z" */
  assert_true(cond(NULL, NV, "s > :S", IT));
  assert_true(cond(NULL, NV, "s = :s", IT));
  assert_true(cond(NULL, "{\":z\":{\"S\":\"z\"}}", "inv > :z", IT));
  /* B unsigned bytes: 0x80 > 0x01, 0x80 < 0xff */
  assert_true(cond(NULL, NV, "b > :b1", IT));
  assert_true(cond(NULL, NV, "b < :b2", IT));
  /* type mismatch: false, and <> true */
  assert_false(cond(NULL, NV, "n = :ns", IT));
  assert_false(cond(NULL, NV, "n < :ns", IT));
  assert_false(cond(NULL, NV, "n >= :ns", IT));
  assert_true(cond(NULL, NV, "n <> :ns", IT));
  assert_false(cond(NULL, NV, "s > :b1", IT));
  /* missing attribute: false, and <> true; two missing attributes too */
  assert_false(cond(NULL, NV, "q = :s", IT));
  assert_false(cond(NULL, NV, "q < :s", IT));
  assert_false(cond(NULL, NV, ":s > q", IT));
  assert_true(cond(NULL, NV, "q <> :s", IT));
  assert_false(cond(NULL, NULL, "q = z", IT));
  assert_false(cond(NULL, NULL, "q <= z", IT));
  assert_true(cond(NULL, NULL, "q <> z", IT));
  /* item that does not exist */
  assert_false(cond(NULL, NV, "n = :n10", NULL));
  assert_true(cond(NULL, NV, "n <> :n10", NULL));
  /* ordering of non-scalar attributes: false */
  assert_false(cond(NULL, NV, "l < :n9", "{\"l\":{\"L\":[{\"N\":\"1\"}]}}"));
  assert_false(cond(NULL, NV, "l > :n9", "{\"l\":{\"NS\":[\"1\"]}}"));
}

static void test_equality_of_documents_and_sets(void **state) {
  (void)state;
  const char *vals =
      "{\":ss\":{\"SS\":[\"y\",\"x\"]},\":ns\":{\"NS\":[\"1.0\",\"20\"]},"
      "\":l\":{\"L\":[{\"N\":\"1\"},{\"S\":\"a\"}]},\":l2\":{\"L\":[{\"S\":\"a\"},{\"N\":\"1\"}]},"
      "\":m\":{\"M\":{\"q\":{\"N\":\"2\"},\"p\":{\"L\":[]}}},\":t\":{\"BOOL\":true},"
      "\":f\":{\"BOOL\":false},\":z\":{\"NULL\":true}}";
  const char *item =
      "{\"ss\":{\"SS\":[\"x\",\"y\"]},\"ns\":{\"NS\":[\"2e1\",\"1\"]},"
      "\"l\":{\"L\":[{\"N\":\"1.00\"},{\"S\":\"a\"}]},\"m\":{\"M\":{\"p\":{\"L\":[]},\"q\":{\"N\":"
      "\"2\"}}},\"t\":{\"BOOL\":true},\"z\":{\"NULL\":true}}";
  assert_true(cond(NULL, vals, "ss = :ss", item));      /* order-insensitive */
  assert_true(cond(NULL, vals, "ns = :ns", item));      /* numbers by value */
  assert_true(cond(NULL, vals, "l = :l", item));        /* deep, numbers by value */
  assert_false(cond(NULL, vals, "l = :l2", item));      /* lists are ordered */
  assert_true(cond(NULL, vals, "l <> :l2", item));
  assert_true(cond(NULL, vals, "m = :m", item));        /* maps regardless of order */
  assert_true(cond(NULL, vals, "t = :t", item));
  assert_false(cond(NULL, vals, "t = :f", item));
  assert_true(cond(NULL, vals, "t <> :f", item));
  assert_true(cond(NULL, vals, "z = :z", item));
  assert_false(cond(NULL, vals, "t = :z", item));
  assert_true(cond(NULL, vals, "ss = ss2 OR ss <> ss2", item)); /* missing ss2 */
  assert_true(cond(NULL, vals, "ns IN (:ss, :ns)", item));
  assert_true(cond(NULL, vals, "m IN (:m)", item));
}

static void test_between_and_in(void **state) {
  (void)state;
  const char *vals = "{\":a\":{\"N\":\"1\"},\":b\":{\"N\":\"10\"},\":c\":{\"N\":\"5\"},"
                     "\":x\":{\"S\":\"b\"},\":y\":{\"S\":\"d\"},\":s5\":{\"S\":\"5\"}}";
  const char *item = "{\"n\":{\"N\":\"5\"},\"s\":{\"S\":\"c\"},\"lo\":{\"N\":\"1\"},"
                     "\"hi\":{\"N\":\"5\"},\"bad\":{\"S\":\"a\"}}";
  assert_true(cond(NULL, vals, "n BETWEEN :a AND :b", item));
  assert_true(cond(NULL, vals, "n BETWEEN :c AND :c", item));   /* inclusive */
  assert_true(cond(NULL, vals, "n BETWEEN :a AND :c", item));
  assert_false(cond(NULL, vals, "n BETWEEN :a AND lo", item));
  assert_true(cond(NULL, vals, "n BETWEEN lo AND hi", item));   /* bounds from the item */
  assert_false(cond(NULL, vals, "n BETWEEN hi AND lo", item));  /* empty range: false */
  assert_false(cond(NULL, vals, "n BETWEEN lo AND bad", item)); /* mixed bounds: false */
  assert_true(cond(NULL, vals, "s BETWEEN :x AND :y", item));
  assert_false(cond(NULL, vals, "s BETWEEN :a AND :b", item));  /* type mismatch */
  assert_false(cond(NULL, vals, "q BETWEEN :a AND :b", item));  /* missing */
  assert_true(cond(NULL, vals, "NOT q BETWEEN :a AND :b", item));
  assert_true(cond(NULL, vals, ":c BETWEEN lo AND n", item));
  assert_true(cond(NULL, vals, "n IN (:a, :c)", item));
  assert_true(cond(NULL, vals, "n IN (:c)", item));
  assert_false(cond(NULL, vals, "n IN (:a, :b, :s5)", item));   /* "5" is not 5 */
  assert_false(cond(NULL, vals, "q IN (:a, :c)", item));
  assert_true(cond(NULL, vals, "n IN (lo, hi)", item));
  assert_false(cond(NULL, vals, "n IN (q, lo)", item));
  assert_true(cond(NULL, vals, ":c IN (hi)", item));
}

/* ---- functions ---- */

static void test_exists_and_type(void **state) {
  (void)state;
  const char *item =
      "{\"pk\":{\"S\":\"k\"},\"a\":{\"M\":{\"b\":{\"L\":[{\"N\":\"1\"},{\"M\":{\"c\":{\"NULL\":"
      "true}}}]}}},\"s\":{\"S\":\"x\"},\"n\":{\"N\":\"1\"},\"bin\":{\"B\":\"AA==\"},"
      "\"t\":{\"BOOL\":false},\"z\":{\"NULL\":true},\"ss\":{\"SS\":[\"a\"]},\"ns\":{\"NS\":["
      "\"1\"]},\"bs\":{\"BS\":[\"AA==\"]},\"l\":{\"L\":[]},\"m\":{\"M\":{}}}";
  assert_true(cond(NULL, NULL, "attribute_exists(pk)", item));
  assert_false(cond(NULL, NULL, "attribute_not_exists(pk)", item));
  assert_true(cond(NULL, NULL, "attribute_not_exists(pk)", NULL)); /* no item */
  assert_false(cond(NULL, NULL, "attribute_exists(pk)", NULL));
  assert_true(cond(NULL, NULL, "attribute_exists(a.b[1].c)", item));
  assert_false(cond(NULL, NULL, "attribute_exists(a.b[2])", item));
  assert_false(cond(NULL, NULL, "attribute_exists(a.b.c)", item));   /* L indexed as M */
  assert_false(cond(NULL, NULL, "attribute_exists(a[0])", item));    /* M indexed as L */
  assert_false(cond(NULL, NULL, "attribute_exists(s.x)", item));     /* scalar as M */
  assert_true(cond(NULL, NULL, "attribute_not_exists(a.b[1].d)", item));
  assert_true(cond("{\"#dot\":\"a.b\"}", NULL, "attribute_not_exists(#dot)", item));
  static const char *const types[][2] = {{"s", "S"},   {"n", "N"},   {"bin", "B"}, {"t", "BOOL"},
                                         {"z", "NULL"}, {"ss", "SS"}, {"ns", "NS"}, {"bs", "BS"},
                                         {"l", "L"},   {"m", "M"},   {"a", "M"}};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    char vals[64], expr[64];
    snprintf(vals, sizeof vals, "{\":t\":{\"S\":\"%s\"}}", types[i][1]);
    snprintf(expr, sizeof expr, "attribute_type(%s, :t)", types[i][0]);
    assert_true(cond(NULL, vals, expr, item));
    snprintf(vals, sizeof vals, "{\":t\":{\"S\":\"%s\"}}", i ? types[i - 1][1] : "L");
    if (i != 10) assert_false(cond(NULL, vals, expr, item));
  }
  assert_false(cond(NULL, "{\":t\":{\"S\":\"S\"}}", "attribute_type(q, :t)", item));
  assert_true(cond(NULL, "{\":t\":{\"S\":\"NULL\"}}", "attribute_type(a.b[1].c, :t)", item));
}

static void test_begins_with(void **state) {
  (void)state;
  const char *vals = "{\":p\":{\"S\":\"ab\"},\":e\":{\"S\":\"\"},\":bp\":{\"B\":\"AQI=\"},"
                     "\":long\":{\"S\":\"abcdef\"}}";
  const char *item = "{\"s\":{\"S\":\"abc\"},\"b\":{\"B\":\"AQID\"},\"n\":{\"N\":\"12\"},"
                     "\"ss\":{\"SS\":[\"ab\"]},\"l\":{\"L\":[{\"S\":\"ab\"}]}}";
  assert_true(cond(NULL, vals, "begins_with(s, :p)", item));
  assert_true(cond(NULL, vals, "begins_with(s, :e)", item));
  assert_false(cond(NULL, vals, "begins_with(s, :long)", item));
  assert_true(cond(NULL, vals, "begins_with(b, :bp)", item));
  assert_false(cond(NULL, vals, "begins_with(s, :bp)", item));  /* S vs B */
  assert_false(cond(NULL, vals, "begins_with(b, :p)", item));
  assert_false(cond(NULL, vals, "begins_with(n, :p)", item));   /* N attribute */
  assert_false(cond(NULL, vals, "begins_with(ss, :p)", item));
  assert_false(cond(NULL, vals, "begins_with(l, :p)", item));
  assert_false(cond(NULL, vals, "begins_with(q, :p)", item));   /* missing */
  assert_true(cond(NULL, vals, "begins_with(:long, :p)", item)); /* two literals */
}

static void test_contains(void **state) {
  (void)state;
  const char *vals = "{\":sub\":{\"S\":\"bc\"},\":no\":{\"S\":\"zz\"},\":e\":{\"S\":\"\"},"
                     "\":bsub\":{\"B\":\"AgM=\"},\":one\":{\"N\":\"1.0\"},\":two\":{\"N\":\"2\"},"
                     "\":a\":{\"S\":\"a\"},\":m\":{\"M\":{\"k\":{\"N\":\"1\"}}},"
                     "\":ba\":{\"B\":\"AA==\"},\":sset\":{\"SS\":[\"a\"]}}";
  const char *item =
      "{\"s\":{\"S\":\"abcd\"},\"b\":{\"B\":\"AQIDBA==\"},\"ss\":{\"SS\":[\"a\",\"b\"]},"
      "\"ns\":{\"NS\":[\"1\",\"3\"]},\"bs\":{\"BS\":[\"AA==\"]},"
      "\"l\":{\"L\":[{\"S\":\"a\"},{\"M\":{\"k\":{\"N\":\"1e0\"}}},{\"N\":\"1\"}]},"
      "\"n\":{\"N\":\"123\"},\"m\":{\"M\":{\"a\":{\"S\":\"a\"}}}}";
  assert_true(cond(NULL, vals, "contains(s, :sub)", item));
  assert_false(cond(NULL, vals, "contains(s, :no)", item));
  assert_true(cond(NULL, vals, "contains(s, :e)", item));
  assert_true(cond(NULL, vals, "contains(b, :bsub)", item));
  assert_false(cond(NULL, vals, "contains(s, :bsub)", item));
  assert_true(cond(NULL, vals, "contains(ss, :a)", item));
  assert_false(cond(NULL, vals, "contains(ss, :sub)", item));   /* membership, not substring */
  assert_true(cond(NULL, vals, "contains(ns, :one)", item));    /* 1.0 = 1 */
  assert_false(cond(NULL, vals, "contains(ns, :two)", item));
  assert_false(cond(NULL, vals, "contains(ns, :a)", item));     /* wrong element type */
  assert_true(cond(NULL, vals, "contains(bs, :ba)", item));
  assert_true(cond(NULL, vals, "contains(l, :a)", item));
  assert_true(cond(NULL, vals, "contains(l, :m)", item));       /* deep equality */
  assert_true(cond(NULL, vals, "contains(l, :one)", item));
  assert_false(cond(NULL, vals, "contains(l, :two)", item));
  assert_false(cond(NULL, vals, "contains(l, :sset)", item));
  assert_false(cond(NULL, vals, "contains(n, :one)", item));    /* N: false */
  assert_false(cond(NULL, vals, "contains(m, :a)", item));      /* M: false */
  assert_false(cond(NULL, vals, "contains(q, :a)", item));      /* missing */
  assert_true(cond(NULL, vals, "contains(l, s) OR contains(ss, l[0])", item));
}

static void test_size(void **state) {
  (void)state;
  const char *vals = "{\":0\":{\"N\":\"0\"},\":2\":{\"N\":\"2\"},\":3\":{\"N\":\"3\"},"
                     "\":5\":{\"N\":\"5\"},\":s\":{\"S\":\"abc\"},\":l\":{\"L\":[]}}";
  const char *item =
      "{\"s\":{\"S\":\"h\xc3\xa9llo\"},\"e\":{\"S\":\"\"},\"b\":{\"B\":\"AQID\"},"
      "\"ss\":{\"SS\":[\"a\",\"b\"]},\"ns\":{\"NS\":[\"1\",\"2\",\"3\"]},\"bs\":{\"BS\":[\"AA==\","
      "\"AQ==\"]},\"l\":{\"L\":[{\"N\":\"1\"},{\"L\":[]}]},\"m\":{\"M\":{\"a\":{\"N\":\"1\"},"
      "\"b\":{\"N\":\"2\"},\"c\":{\"N\":\"3\"}}},\"n\":{\"N\":\"7\"},\"t\":{\"BOOL\":true},"
      "\"z\":{\"NULL\":true}}";
  assert_true(cond(NULL, vals, "size(s) = :5", item)); /* characters, not bytes (6) */
  assert_true(cond(NULL, vals, "size(e) = :0", item));
  assert_true(cond(NULL, vals, "size(b) = :3", item));
  assert_true(cond(NULL, vals, "size(ss) = :2", item));
  assert_true(cond(NULL, vals, "size(ns) = :3", item));
  assert_true(cond(NULL, vals, "size(bs) = :2", item));
  assert_true(cond(NULL, vals, "size(l) = :2", item));
  assert_true(cond(NULL, vals, "size(l[1]) = :0", item));
  assert_true(cond(NULL, vals, "size(m) = :3", item));
  assert_true(cond(NULL, vals, "size(m) BETWEEN :2 AND :5", item));
  assert_true(cond(NULL, vals, "size(ns) IN (:0, :3)", item));
  assert_true(cond(NULL, vals, "size(m) = size(ns)", item));
  assert_true(cond(NULL, vals, "size(:s) = :3", item));
  assert_true(cond(NULL, vals, "size(:l) < size(ss)", item));
  /* missing: comparisons false, <> true */
  assert_false(cond(NULL, vals, "size(q) = :0", item));
  assert_false(cond(NULL, vals, "size(q) < :5", item));
  assert_true(cond(NULL, vals, "size(q) <> :0", item));
  assert_false(cond(NULL, vals, "size(m) = :0", NULL));
  /* N, BOOL and NULL attributes have no size: the comparison is false, as
   * for a missing attribute (DynamoDB answers ConditionalCheckFailed, not a
   * ValidationException), and true under <> */
  static const char *const nosize[] = {"n", "t", "z"};
  for (int i = 0; i < 3; i++) {
    char expr[64];
    snprintf(expr, sizeof expr, "size(%s) = :2", nosize[i]);
    assert_false(cond(NULL, vals, expr, item));
    snprintf(expr, sizeof expr, "size(%s) >= :0", nosize[i]);
    assert_false(cond(NULL, vals, expr, item));
    snprintf(expr, sizeof expr, "size(%s) <> :2", nosize[i]);
    assert_true(cond(NULL, vals, expr, item));
    snprintf(expr, sizeof expr, "size(%s) > :0 OR size(s) > :0", nosize[i]);
    assert_true(cond(NULL, vals, expr, item));
  }
  /* evaluation is lazy: the left side of OR decides first */
  assert_true(cond(NULL, vals, "size(s) > :0 OR size(n) > :0", item));
}

static void test_nested_paths(void **state) {
  (void)state;
  const char *item =
      "{\"a\":{\"M\":{\"b\":{\"L\":[{\"N\":\"1\"},{\"M\":{\"c\":{\"S\":\"deep\"}}}]}}},"
      "\"a.b\":{\"S\":\"dotted\"}}";
  const char *vals = "{\":d\":{\"S\":\"deep\"},\":dot\":{\"S\":\"dotted\"},\":1\":{\"N\":\"1\"}}";
  assert_true(cond(NULL, vals, "a.b[1].c = :d", item));
  assert_true(cond(NULL, vals, "a.b[0] = :1", item));
  assert_false(cond(NULL, vals, "a.b[2].c = :d", item));
  assert_true(cond("{\"#ab\":\"a.b\"}", vals, "#ab = :dot", item));
  assert_true(cond("{\"#a\":\"a\",\"#b\":\"b\"}", vals, "#a.#b[1].c = :d", item));
  assert_true(cond("{\"#c\":\"c\"}", vals, "a.b[1].#c = :d", item));
  assert_false(cond(NULL, vals, "a.b[1].c.x = :d", item));
}

static void test_cond_fn_and_refers_to(void **state) {
  (void)state;
  xenv x;
  xenv_init(&x, "{\"#s\":\"status\"}", "{\":v\":{\"S\":\"on\"}}");
  trb_expr *e = xparse(&x, TRB_EXPR_FILTER, "#s = :v AND size(m.n[2]) > size(q) OR k IN (:v)");
  trb_av *item = xj("{\"status\":{\"S\":\"on\"}}");
  int pass = 0;
  assert_int_equal(trb_expr_cond_fn(e, item, &pass, NULL), TRB_OK);
  assert_false(pass); /* size(m.n[2]) missing, k missing */
  trb_av_destroy(item);
  item = xj("{\"k\":{\"S\":\"on\"}}");
  assert_int_equal(trb_expr_cond_fn(e, item, &pass, NULL), TRB_OK);
  assert_true(pass);
  trb_av_destroy(item);
  assert_true(trb_expr_refers_to(e, "status"));
  assert_true(trb_expr_refers_to(e, "m"));
  assert_true(trb_expr_refers_to(e, "q"));
  assert_true(trb_expr_refers_to(e, "k"));
  assert_false(trb_expr_refers_to(e, "n"));
  assert_false(trb_expr_refers_to(e, "#s"));
  /* other kinds are not conditions */
  trb_expr *p = xparse(&x, TRB_EXPR_PROJECTION, "a");
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_expr_eval(p, NULL, &pass, &st), TRB_EINVAL);
  trb_expr_destroy(p);
  trb_expr_destroy(e);
  xenv_fini(&x);
}

/* ---- key conditions ---- */

static trb_keyschema schema(const char *pk, trb_type pt, const char *sk, trb_type st) {
  trb_keyschema ks;
  memset(&ks, 0, sizeof ks);
  strcpy(ks.pk_name, pk);
  ks.pk_type = pt;
  if (sk) {
    ks.has_sk = 1;
    strcpy(ks.sk_name, sk);
    ks.sk_type = st;
  }
  return ks;
}

#define KV "{\":p\":{\"S\":\"P\"},\":s\":{\"N\":\"5\"},\":t\":{\"N\":\"9\"},\":pre\":{\"S\":\"ab\"}," \
           "\":n\":{\"N\":\"1\"},\":bin\":{\"B\":\"AQ==\"}}"

static void keycond_ok(const char *names, const char *expr, const trb_keyschema *ks,
                       trb_sk_op want_op, const char *v1, const char *v2) {
  xenv x;
  xenv_init(&x, names, KV);
  trb_expr *e = xparse(&x, TRB_EXPR_KEYCOND, expr);
  const trb_av *pk, *s1, *s2;
  trb_sk_op op;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_expr_keycond(e, ks, &pk, &op, &s1, &s2, &st);
  if (rc) fprintf(stderr, "%s: %s\n", expr, trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  assert_true(pk == trb_av_m_get(x.vals, ":p", 2));
  assert_int_equal(op, want_op);
  if (v1) assert_true(s1 == trb_av_m_get(x.vals, v1, strlen(v1)));
  else assert_null(s1);
  if (v2) assert_true(s2 == trb_av_m_get(x.vals, v2, strlen(v2)));
  else assert_null(s2);
  /* a key condition is also a condition over items */
  trb_av *item = xj("{\"pk\":{\"S\":\"P\"},\"sk\":{\"N\":\"5\"}}");
  int pass;
  assert_int_equal(trb_expr_eval(e, item, &pass, NULL), TRB_OK);
  trb_av_destroy(item);
  trb_expr_destroy(e);
  xenv_fini(&x);
}

static void keycond_err(const char *expr, const trb_keyschema *ks, const char *msg) {
  xenv x;
  xenv_init(&x, NULL, KV);
  trb_expr *e = xparse(&x, TRB_EXPR_KEYCOND, expr);
  const trb_av *pk, *s1, *s2;
  trb_sk_op op;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_expr_keycond(e, ks, &pk, &op, &s1, &s2, &st), TRB_EINVAL);
  assert_string_equal(trb_status_msg(&st), msg);
  trb_expr_destroy(e);
  xenv_fini(&x);
}

static void test_keycond_shapes(void **state) {
  (void)state;
  trb_keyschema ks = schema("pk", TRB_T_S, "sk", TRB_T_N);
  trb_keyschema kss = schema("pk", TRB_T_S, "sk", TRB_T_S);
  trb_keyschema hash = schema("pk", TRB_T_S, NULL, 0);
  keycond_ok(NULL, "pk = :p", &ks, TRB_SK_NONE, NULL, NULL);
  keycond_ok(NULL, "pk = :p", &hash, TRB_SK_NONE, NULL, NULL);
  keycond_ok(NULL, ":p = pk", &hash, TRB_SK_NONE, NULL, NULL);
  keycond_ok(NULL, "pk = :p AND sk = :s", &ks, TRB_SK_EQ, ":s", NULL);
  keycond_ok(NULL, "sk < :s AND pk = :p", &ks, TRB_SK_LT, ":s", NULL);
  keycond_ok(NULL, "pk = :p AND sk <= :s", &ks, TRB_SK_LE, ":s", NULL);
  keycond_ok(NULL, "pk = :p AND sk > :s", &ks, TRB_SK_GT, ":s", NULL);
  keycond_ok(NULL, "pk = :p AND sk >= :s", &ks, TRB_SK_GE, ":s", NULL);
  keycond_ok(NULL, "pk = :p AND :s < sk", &ks, TRB_SK_GT, ":s", NULL); /* reversed */
  keycond_ok(NULL, "pk = :p AND :s >= sk", &ks, TRB_SK_LE, ":s", NULL);
  keycond_ok(NULL, "pk = :p AND sk BETWEEN :s AND :t", &ks, TRB_SK_BETWEEN, ":s", ":t");
  keycond_ok(NULL, "pk = :p AND begins_with(sk, :pre)", &kss, TRB_SK_BEGINS_WITH, ":pre", NULL);
  keycond_ok(NULL, "(pk = :p) AND (sk = :s)", &ks, TRB_SK_EQ, ":s", NULL);
  keycond_ok(NULL, "(pk = :p AND sk = :s)", &ks, TRB_SK_EQ, ":s", NULL);
  keycond_ok("{\"#p\":\"pk\",\"#s\":\"sk\"}", "#p = :p and #s > :s", &ks, TRB_SK_GT, ":s", NULL);
}

static void test_keycond_errors(void **state) {
  (void)state;
  trb_keyschema ks = schema("pk", TRB_T_S, "sk", TRB_T_N);
  trb_keyschema kss = schema("pk", TRB_T_S, "sk", TRB_T_S);
  trb_keyschema hash = schema("pk", TRB_T_S, NULL, 0);
  keycond_err("pk = :p OR sk = :s", &ks, "Invalid operator used in KeyConditionExpression: OR");
  keycond_err("NOT pk = :p", &ks, "Invalid operator used in KeyConditionExpression: NOT");
  keycond_err("pk IN (:p)", &ks, "Invalid operator used in KeyConditionExpression: IN");
  keycond_err("pk = :p AND sk <> :s", &ks, "Invalid operator used in KeyConditionExpression: <>");
  keycond_err("pk = :p AND attribute_exists(sk)", &ks,
              "Invalid operator used in KeyConditionExpression: attribute_exists");
  keycond_err("pk = :p AND contains(sk, :s)", &ks,
              "Invalid operator used in KeyConditionExpression: contains");
  keycond_err("pk = :p AND size(sk) > :s", &ks,
              "KeyConditionExpressions cannot contain nested operations");
  keycond_err("pk = :p AND sk.x = :s", &ks,
              "KeyConditionExpressions cannot have conditions on nested attributes");
  keycond_err("pk = :p AND sk = pk", &ks,
              "Invalid condition in KeyConditionExpression: Multiple attribute names used in one "
              "condition");
  keycond_err("pk = :p AND :s = :s", &ks,
              "Invalid condition in KeyConditionExpression: No key attribute specified");
  keycond_err("pk = :p AND :s BETWEEN sk AND :t", &ks,
              "Invalid condition in KeyConditionExpression: BETWEEN operator must have the key "
              "attribute as its first operand");
  keycond_err("pk = :p AND begins_with(:pre, sk)", &kss,
              "Invalid condition in KeyConditionExpression: begins_with operator must have the "
              "key attribute as its first operand");
  keycond_err("pk = :p AND pk = :p", &ks,
              "KeyConditionExpressions must only contain one condition per key");
  keycond_err("pk = :p AND sk > :s AND sk < :t", &ks,
              "KeyConditionExpressions must only contain one condition per key");
  keycond_err("pk = :p AND sk > :s AND x = :t", &ks, "Conditions can be of length 1 or 2 only");
  keycond_err("sk = :s", &ks, "Query condition missed key schema element: pk");
  keycond_err("x = :p", &hash, "Query condition missed key schema element: pk");
  keycond_err("pk = :p AND x = :s", &ks, "Query condition missed key schema element: sk");
  keycond_err("pk = :p AND sk = :s", &hash, "Query key condition not supported");
  keycond_err("pk > :p", &ks, "Query key condition not supported");
  keycond_err("begins_with(pk, :p)", &ks, "Query key condition not supported");
  keycond_err("pk BETWEEN :p AND :p AND sk = :s", &ks, "Query key condition not supported");
  keycond_err("pk = :s", &ks,
              "One or more parameter values were invalid: Condition parameter type does not "
              "match schema type");
  keycond_err("pk = :p AND sk = :pre", &ks,
              "One or more parameter values were invalid: Condition parameter type does not "
              "match schema type");
  keycond_err("pk = :p AND sk BETWEEN :pre AND :pre", &ks,
              "One or more parameter values were invalid: Condition parameter type does not "
              "match schema type");
  perr(TRB_EXPR_KEYCOND, NULL, KV, "pk = :p AND begins_with(sk, :n)",
       "Invalid KeyConditionExpression: Incorrect operand type for operator or function; "
       "operator or function: begins_with, operand type: N");
  keycond_err("pk = :p AND begins_with(sk, :pre)", &ks,
              "One or more parameter values were invalid: Condition parameter type does not "
              "match schema type");
}

/* ---- projections ---- */

static void project(const char *names, const char *expr, const char *item, const char *want) {
  xenv x;
  xenv_init(&x, names, NULL);
  trb_expr *e = xparse(&x, TRB_EXPR_PROJECTION, expr);
  trb_av *it = xj(item), *out = NULL;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_expr_project(e, it, &out, &st), TRB_OK);
  assert_item(out, want);
  trb_av_destroy(out);
  trb_av_destroy(it);
  trb_expr_destroy(e);
  xenv_fini(&x);
}

#define PI "{\"p\":{\"S\":\"k\"},\"a\":{\"M\":{\"b\":{\"L\":[{\"N\":\"2\"},{\"N\":\"4\"}," \
           "{\"M\":{\"x\":{\"S\":\"hi\"},\"y\":{\"S\":\"yo\"}}}]},\"c\":{\"N\":\"5\"}}}," \
           "\"b\":{\"S\":\"hello\"},\"a.b\":{\"S\":\"dot\"}}"

static void test_projection(void **state) {
  (void)state;
  project(NULL, "a.b", PI,
          "{\"a\":{\"M\":{\"b\":{\"L\":[{\"N\":\"2\"},{\"N\":\"4\"},{\"M\":{\"x\":{\"S\":\"hi\"},"
          "\"y\":{\"S\":\"yo\"}}}]}}}}");
  project(NULL, "a.b[0]", PI, "{\"a\":{\"M\":{\"b\":{\"L\":[{\"N\":\"2\"}]}}}}");
  project(NULL, "a.b[2].y", PI, "{\"a\":{\"M\":{\"b\":{\"L\":[{\"M\":{\"y\":{\"S\":\"yo\"}}}]}}}}");
  project(NULL, "a.b[0], a.b[1]", PI, "{\"a\":{\"M\":{\"b\":{\"L\":[{\"N\":\"2\"},{\"N\":\"4\"}]}}}}");
  /* list elements come out in index order, holes squashed */
  project(NULL, "a.b[2].x, a.b[0]", PI,
          "{\"a\":{\"M\":{\"b\":{\"L\":[{\"N\":\"2\"},{\"M\":{\"x\":{\"S\":\"hi\"}}}]}}}}");
  project(NULL, "a.b[0], a.c", PI, "{\"a\":{\"M\":{\"b\":{\"L\":[{\"N\":\"2\"}]},\"c\":{\"N\":\"5\"}}}}");
  project(NULL, "a.c, b", PI, "{\"a\":{\"M\":{\"c\":{\"N\":\"5\"}}},\"b\":{\"S\":\"hello\"}}");
  project(NULL, "a.x, a.b[0], x, a.b[3].x", PI, "{\"a\":{\"M\":{\"b\":{\"L\":[{\"N\":\"2\"}]}}}}");
  project("{\"#d\":\"a.b\"}", "#d", PI, "{\"a.b\":{\"S\":\"dot\"}}");
  project("{\"#a\":\"a\",\"#c\":\"c\"}", "#a.#c", PI, "{\"a\":{\"M\":{\"c\":{\"N\":\"5\"}}}}");
  project(NULL, "p, b", PI, "{\"p\":{\"S\":\"k\"},\"b\":{\"S\":\"hello\"}}");
  /* nothing matches: an empty item */
  project(NULL, "x", PI, "{}");
  project(NULL, "a.b.x", PI, "{}");
  project(NULL, "a[0]", PI, "{}");
  project(NULL, "a.b[0][0]", PI, "{}");
  project(NULL, "b.c", PI, "{}");
  project(NULL, "x", NULL, "{}");
}

/* ---- concurrency ---- */

typedef struct tharg {
  const trb_expr *e;
  const trb_av *item;
  int ok;
} tharg;

static void *eval_thread(void *p) {
  tharg *a = p;
  a->ok = 1;
  for (int i = 0; i < 20000; i++) {
    int pass = 0;
    if (trb_expr_eval(a->e, a->item, &pass, NULL) || !pass) a->ok = 0;
  }
  return NULL;
}

static void test_concurrent_eval(void **state) {
  (void)state;
  xenv x;
  xenv_init(&x, NULL, "{\":v\":{\"N\":\"3\"},\":s\":{\"S\":\"b\"}}");
  trb_expr *e = xparse(&x, TRB_EXPR_CONDITION, "size(l) = :v AND contains(l, :s) AND NOT q = :v");
  trb_av *item = xj("{\"l\":{\"L\":[{\"S\":\"a\"},{\"S\":\"b\"},{\"S\":\"c\"}]}}");
  pthread_t th[4];
  tharg args[4];
  for (int i = 0; i < 4; i++) {
    args[i].e = e;
    args[i].item = item;
    assert_int_equal(pthread_create(&th[i], NULL, eval_thread, &args[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_true(args[i].ok);
  }
  trb_av_destroy(item);
  trb_expr_destroy(e);
  xenv_fini(&x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_precedence),
      cmocka_unit_test(test_compare_scalars),
      cmocka_unit_test(test_equality_of_documents_and_sets),
      cmocka_unit_test(test_between_and_in),
      cmocka_unit_test(test_exists_and_type),
      cmocka_unit_test(test_begins_with),
      cmocka_unit_test(test_contains),
      cmocka_unit_test(test_size),
      cmocka_unit_test(test_nested_paths),
      cmocka_unit_test(test_cond_fn_and_refers_to),
      cmocka_unit_test(test_keycond_shapes),
      cmocka_unit_test(test_keycond_errors),
      cmocka_unit_test(test_projection),
      cmocka_unit_test(test_concurrent_eval),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
