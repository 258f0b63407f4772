/*
 * test_value.c -- attribute value trees (engine/value.c): constructors and
 * ownership, maps, lists and sets, DynamoDB equality, scalar order, sizes
 * (spec 2.3) and validation (spec 2.1, 2.5, 2.3 limit).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/value.h"
#include "testutil.h"

/* ---- helpers ---- */

static trb_av *S(const char *s) { return trb_av_new_s(s, strlen(s)); }

static trb_av *N(const char *s) {
  trb_dec d;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_dec_parse(s, strlen(s), &d, &st), TRB_OK);
  return trb_av_new_n(&d);
}

static trb_av *B(const void *p, size_t n) { return trb_av_new_b(p, n); }

static void mset(trb_av *m, const char *name, trb_av *v) {
  assert_non_null(v);
  assert_int_equal(trb_av_m_set(m, name, strlen(name), v), TRB_OK);
}

static void lpush(trb_av *l, trb_av *v) {
  assert_non_null(v);
  assert_int_equal(trb_av_l_append(l, v), TRB_OK);
}

static trb_av *set_of(trb_type t, const char *const *elems, size_t n) {
  trb_av *s = trb_av_new_set(t);
  assert_non_null(s);
  for (size_t i = 0; i < n; i++) {
    trb_av *e = t == TRB_T_SS ? S(elems[i]) : t == TRB_T_NS ? N(elems[i])
                                                            : B(elems[i], strlen(elems[i]));
    lpush(s, e);
  }
  return s;
}

/* v wrapped `levels` times in M{"a": ...} (odd levels) / L[...] (even). */
static trb_av *nest(trb_av *v, int levels) {
  for (int i = 0; i < levels; i++) {
    trb_av *c;
    if (i % 2 == 0) {
      c = trb_av_new_m();
      mset(c, "a", v);
    } else {
      c = trb_av_new_l();
      lpush(c, v);
    }
    v = c;
  }
  return v;
}

static void expect_invalid(trb_err rc, const trb_status *st, const char *msg) {
  assert_int_equal(rc, TRB_EINVAL);
  assert_string_equal(trb_status_msg(st), msg);
}

/* ---- constructors, maps, lists ---- */

static void test_constructors(void **state) {
  (void)state;
  trb_av *s = trb_av_new_s("a\0b", 3);
  assert_int_equal(s->type, TRB_T_S);
  assert_int_equal(s->u.s.len, 3);
  assert_memory_equal(s->u.s.p, "a\0b", 3);
  assert_int_equal(s->u.s.p[3], '\0');
  trb_av *e = trb_av_new_s(NULL, 0);
  assert_int_equal(e->u.s.len, 0);
  assert_string_equal(e->u.s.p, "");
  trb_av *b = B("\xff\x00", 2);
  assert_int_equal(b->type, TRB_T_B);
  trb_av *t = trb_av_new_bool(7);
  assert_int_equal(t->u.b, 1);
  trb_av *nl = trb_av_new_null();
  assert_int_equal(nl->type, TRB_T_NULL);
  assert_null(trb_av_new_set(TRB_T_S));
  assert_null(trb_av_new_set(TRB_T_L));
  trb_av_destroy(s);
  trb_av_destroy(e);
  trb_av_destroy(b);
  trb_av_destroy(t);
  trb_av_destroy(nl);
  trb_av_destroy(NULL);
  assert_string_equal(trb_type_name(TRB_T_S), "S");
  assert_string_equal(trb_type_name(TRB_T_BOOL), "BOOL");
  assert_string_equal(trb_type_name(TRB_T_NULL), "NULL");
  assert_string_equal(trb_type_name(TRB_T_BS), "BS");
  assert_string_equal(trb_type_name(TRB_T_NS), "NS");
}

static void test_map_ops(void **state) {
  (void)state;
  trb_av *m = trb_av_new_m();
  for (int i = 0; i < 50; i++) {
    char name[32];
    snprintf(name, sizeof name, "k%d", i);
    mset(m, name, N(name + 1));
  }
  assert_int_equal(m->u.m.n, 50);
  /* insertion order is kept */
  assert_string_equal(m->u.m.e[0].name, "k0");
  assert_string_equal(m->u.m.e[49].name, "k49");
  trb_av *v = trb_av_m_get(m, "k7", 2);
  assert_non_null(v);
  trb_av *seven = N("7");
  assert_true(trb_av_equal(v, seven));
  trb_av_destroy(seven);
  /* replace keeps position and count */
  mset(m, "k7", S("seven"));
  assert_int_equal(m->u.m.n, 50);
  assert_string_equal(m->u.m.e[7].name, "k7");
  assert_int_equal(trb_av_m_get(m, "k7", 2)->type, TRB_T_S);
  /* names are length-counted, not NUL-terminated */
  assert_null(trb_av_m_get(m, "k7x", 2 + 1));
  assert_int_equal(trb_av_m_set(m, "a\0b", 3, S("nul")), TRB_OK);
  assert_non_null(trb_av_m_get(m, "a\0b", 3));
  assert_null(trb_av_m_get(m, "a", 1));
  /* remove */
  assert_int_equal(trb_av_m_remove(m, "k0", 2), 1);
  assert_int_equal(trb_av_m_remove(m, "k0", 2), 0);
  assert_string_equal(m->u.m.e[0].name, "k1");
  assert_int_equal(m->u.m.n, 50);
  /* wrong container type */
  trb_av *l = trb_av_new_l();
  trb_av *x = S("x");
  assert_int_equal(trb_av_m_set(l, "a", 1, x), TRB_EINVAL);
  assert_null(trb_av_m_get(l, "a", 1));
  trb_av_destroy(x); /* still ours after a failed insert */
  trb_av_destroy(l);
  trb_av_destroy(m);
}

static void test_list_and_set_ops(void **state) {
  (void)state;
  trb_av *l = trb_av_new_l();
  lpush(l, S("a"));
  lpush(l, N("1"));
  lpush(l, trb_av_new_null());
  assert_int_equal(l->u.l.n, 3);
  trb_av *ss = trb_av_new_set(TRB_T_SS);
  trb_av *n = N("1");
  assert_int_equal(trb_av_l_append(ss, n), TRB_EINVAL); /* element type */
  trb_av_destroy(n);
  lpush(ss, S("x"));
  trb_av *ns = trb_av_new_set(TRB_T_NS);
  trb_av *s = S("1");
  assert_int_equal(trb_av_l_append(ns, s), TRB_EINVAL);
  trb_av_destroy(s);
  trb_av *bs = trb_av_new_set(TRB_T_BS);
  s = S("1");
  assert_int_equal(trb_av_l_append(bs, s), TRB_EINVAL);
  trb_av_destroy(s);
  lpush(bs, B("1", 1));
  /* duplicates are accepted here (validation reports them) */
  lpush(ss, S("x"));
  assert_int_equal(ss->u.l.n, 2);
  trb_av *m = trb_av_new_m();
  s = S("z");
  assert_int_equal(trb_av_l_append(m, s), TRB_EINVAL);
  trb_av_destroy(s);
  trb_av_destroy(m);
  trb_av_destroy(l);
  trb_av_destroy(ss);
  trb_av_destroy(ns);
  trb_av_destroy(bs);
}

static trb_av *sample_tree(void) {
  static const char *const ss[] = {"x", "y"};
  static const char *const ns[] = {"1", "-2.5"};
  static const char *const bs[] = {"\x01", "\x02"};
  trb_av *m = trb_av_new_m();
  mset(m, "s", S("str"));
  mset(m, "n", N("1e3"));
  mset(m, "b", B("\0\1", 2));
  mset(m, "t", trb_av_new_bool(1));
  mset(m, "z", trb_av_new_null());
  trb_av *inner = trb_av_new_m();
  mset(inner, "deep", nest(S("leaf"), 5));
  mset(m, "m", inner);
  trb_av *l = trb_av_new_l();
  lpush(l, S("a"));
  lpush(l, set_of(TRB_T_SS, ss, 2));
  mset(m, "l", l);
  mset(m, "ss", set_of(TRB_T_SS, ss, 2));
  mset(m, "ns", set_of(TRB_T_NS, ns, 2));
  mset(m, "bs", set_of(TRB_T_BS, bs, 2));
  return m;
}

static void test_copy(void **state) {
  (void)state;
  trb_av *m = sample_tree();
  trb_av *c = trb_av_copy(m);
  assert_non_null(c);
  assert_true(trb_av_equal(m, c));
  /* the copy is independent and still grows (its arrays start inline) */
  for (int i = 0; i < 40; i++) {
    char name[32];
    snprintf(name, sizeof name, "extra%d", i);
    mset(c, name, trb_av_new_bool(i & 1));
  }
  lpush(trb_av_m_get(c, "l", 1), S("more"));
  lpush(trb_av_m_get(c, "l", 1), S("more2"));
  assert_false(trb_av_equal(m, c));
  assert_int_equal(trb_av_m_get(m, "l", 1)->u.l.n, 2);
  assert_int_equal(trb_av_m_remove(c, "s", 1), 1);
  assert_non_null(trb_av_m_get(m, "s", 1));
  trb_av_destroy(m);
  trb_av_destroy(c);
}

/* ---- equality and order ---- */

static void test_equal_numbers_by_value(void **state) {
  (void)state;
  trb_av *a = N("1000"), *b = N("1e3"), *c = N("1000.000"), *d = N("1001");
  assert_true(trb_av_equal(a, b));
  assert_true(trb_av_equal(a, c));
  assert_false(trb_av_equal(a, d));
  trb_av *z1 = N("0"), *z2 = N("-0.000");
  assert_true(trb_av_equal(z1, z2));
  trb_av *s = S("1000");
  assert_false(trb_av_equal(a, s)); /* different types */
  trb_av_destroy(a);
  trb_av_destroy(b);
  trb_av_destroy(c);
  trb_av_destroy(d);
  trb_av_destroy(z1);
  trb_av_destroy(z2);
  trb_av_destroy(s);
}

static void test_equal_maps_any_order(void **state) {
  (void)state;
  for (int size = 2; size <= 40; size += 19) { /* small (quadratic) and sorted paths */
    trb_av *a = trb_av_new_m(), *b = trb_av_new_m();
    for (int i = 0; i < size; i++) {
      char name[32];
      snprintf(name, sizeof name, "n%d", i);
      mset(a, name, N(name + 1));
      snprintf(name, sizeof name, "n%d", size - 1 - i);
      mset(b, name, N(name + 1));
    }
    assert_true(trb_av_equal(a, b));
    assert_true(trb_av_equal(b, a));
    /* one value differs */
    mset(b, "n1", N("999"));
    assert_false(trb_av_equal(a, b));
    mset(b, "n1", N("1.0"));
    assert_true(trb_av_equal(a, b));
    /* same count, one name differs */
    assert_int_equal(trb_av_m_remove(b, "n0", 2), 1);
    mset(b, "other", N("0"));
    assert_false(trb_av_equal(a, b));
    /* different count */
    assert_int_equal(trb_av_m_remove(b, "other", 5), 1);
    assert_false(trb_av_equal(a, b));
    trb_av_destroy(a);
    trb_av_destroy(b);
  }
}

static void test_equal_sets_any_order(void **state) {
  (void)state;
  static const char *const s1[] = {"a", "b", "c"};
  static const char *const s2[] = {"c", "a", "b"};
  static const char *const s3[] = {"c", "a", "d"};
  static const char *const n1[] = {"1", "2.50", "-3"};
  static const char *const n2[] = {"-3e0", "2.5", "0.1e1"};
  trb_av *a = set_of(TRB_T_SS, s1, 3), *b = set_of(TRB_T_SS, s2, 3), *c = set_of(TRB_T_SS, s3, 3);
  assert_true(trb_av_equal(a, b));
  assert_false(trb_av_equal(a, c));
  trb_av *x = set_of(TRB_T_NS, n1, 3), *y = set_of(TRB_T_NS, n2, 3);
  assert_true(trb_av_equal(x, y));
  trb_av *bs1 = set_of(TRB_T_BS, s1, 3), *bs2 = set_of(TRB_T_BS, s2, 3);
  assert_true(trb_av_equal(bs1, bs2));
  assert_false(trb_av_equal(a, bs1)); /* SS vs BS */
  /* large sets take the sorting path */
  trb_av *big1 = trb_av_new_set(TRB_T_NS), *big2 = trb_av_new_set(TRB_T_NS);
  for (int i = 0; i < 100; i++) {
    char t[32];
    snprintf(t, sizeof t, "%d", i);
    lpush(big1, N(t));
    snprintf(t, sizeof t, "%de0", 99 - i);
    lpush(big2, N(t));
  }
  assert_true(trb_av_equal(big1, big2));
  trb_av_destroy(big2->u.l.v[0]);
  big2->u.l.v[0] = N("1000");
  assert_false(trb_av_equal(big1, big2));
  /* lists are ordered */
  trb_av *l1 = trb_av_new_l(), *l2 = trb_av_new_l();
  lpush(l1, S("a"));
  lpush(l1, S("b"));
  lpush(l2, S("b"));
  lpush(l2, S("a"));
  assert_false(trb_av_equal(l1, l2));
  trb_av *v[] = {a, b, c, x, y, bs1, bs2, big1, big2, l1, l2};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) trb_av_destroy(v[i]);
}

static void test_equal_scalars(void **state) {
  (void)state;
  trb_av *t = trb_av_new_bool(1), *f = trb_av_new_bool(0), *t2 = trb_av_new_bool(1);
  trb_av *n1 = trb_av_new_null(), *n2 = trb_av_new_null();
  assert_true(trb_av_equal(t, t2));
  assert_false(trb_av_equal(t, f));
  assert_true(trb_av_equal(n1, n2));
  assert_false(trb_av_equal(t, n1));
  trb_av *s1 = trb_av_new_s("a\0b", 3), *s2 = trb_av_new_s("a\0c", 3), *b1 = B("a\0b", 3);
  assert_false(trb_av_equal(s1, s2));
  assert_false(trb_av_equal(s1, b1));
  trb_av *e1 = S(""), *e2 = S("");
  assert_true(trb_av_equal(e1, e2));
  trb_av *v[] = {t, f, t2, n1, n2, s1, s2, b1, e1, e2};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) trb_av_destroy(v[i]);
}

static void test_cmp_scalar(void **state) {
  (void)state;
  trb_av *a = S("a"), *A = S("A"), *z = S("z"), *inv = S("\xc2\xbf"), *ab = S("ab");
  assert_true(trb_av_cmp_scalar(a, A) > 0);  /* 0x61 > 0x41 */
  assert_true(trb_av_cmp_scalar(inv, z) > 0); /* unsigned bytes */
  assert_true(trb_av_cmp_scalar(a, ab) < 0); /* prefix first */
  assert_int_equal(trb_av_cmp_scalar(ab, ab), 0);
  trb_av *b1 = B("\x80", 1), *b2 = B("\x7f\xff", 2);
  assert_true(trb_av_cmp_scalar(b1, b2) > 0);
  trb_av *m1 = N("-1"), *half = N("0.5"), *ten = N("10"), *ten2 = N("1e1");
  assert_true(trb_av_cmp_scalar(m1, half) < 0);
  assert_true(trb_av_cmp_scalar(ten, half) > 0);
  assert_int_equal(trb_av_cmp_scalar(ten, ten2), 0);
  /* across types: by type tag */
  assert_true(trb_av_cmp_scalar(a, ten) < 0); /* S=1 < N=2 */
  assert_true(trb_av_cmp_scalar(b1, ten) > 0);
  trb_av *v[] = {a, A, z, inv, ab, b1, b2, m1, half, ten, ten2};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) trb_av_destroy(v[i]);
}

/* ---- sizes ---- */

static void test_size_guide_example(void **state) {
  (void)state;
  trb_av *item = trb_av_new_m();
  mset(item, "shirt-color", S("R"));
  mset(item, "shirt-size", S("M"));
  assert_int_equal(trb_item_size(item), 23);
  trb_av_destroy(item);
}

static void test_size_rules(void **state) {
  (void)state;
  trb_av *v;
  /* numbers (spec 2.3, dynalite): zero 1; else 1 + ceil(d/2) + (d odd or
   * e odd ? 0 : 1) + (negative ? 1 : 0), d significant digits, e the
   * exponent of the first digit (12 -> d 2, e 1; 1.5 -> d 2, e 0) */
  const struct {
    const char *n;
    size_t size;
  } nums[] = {
      {"0", 1},   {"1", 2},     {"12", 2},   {"12345", 4}, {"-1", 3},   {"10", 2},
      {"1.5", 3}, {"100", 2},   {"-12", 3},  {"0.01", 2},  {"123", 3},  {"1234", 3},
      {"0.12", 2}, {"0.012", 3}, {"-1.5", 4},
  };
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
    v = N(nums[i].n);
    assert_int_equal(trb_av_size(v), nums[i].size);
    trb_av_destroy(v);
  }
  v = S("hello");
  assert_int_equal(trb_av_size(v), 5);
  trb_av_destroy(v);
  v = S("\xc2\xbf"); /* UTF-8 bytes, not characters */
  assert_int_equal(trb_av_size(v), 2);
  trb_av_destroy(v);
  v = B("\0\0\0", 3);
  assert_int_equal(trb_av_size(v), 3);
  trb_av_destroy(v);
  v = trb_av_new_bool(0);
  assert_int_equal(trb_av_size(v), 1);
  trb_av_destroy(v);
  v = trb_av_new_null();
  assert_int_equal(trb_av_size(v), 1);
  trb_av_destroy(v);
  /* empty containers: 3 bytes */
  v = trb_av_new_m();
  assert_int_equal(trb_av_size(v), 3);
  trb_av_destroy(v);
  v = trb_av_new_l();
  assert_int_equal(trb_av_size(v), 3);
  trb_av_destroy(v);
  /* M: 3 + per entry (1 + name + value) */
  v = trb_av_new_m();
  mset(v, "ab", S("xyz"));  /* 1 + 2 + 3 */
  mset(v, "c", N("12345")); /* 1 + 1 + 4 */
  assert_int_equal(trb_av_size(v), 3 + 6 + 6);
  /* nested: L [ M(above), NULL ] = 3 + (1 + 15) + (1 + 1) */
  trb_av *l = trb_av_new_l();
  lpush(l, v);
  lpush(l, trb_av_new_null());
  assert_int_equal(trb_av_size(l), 3 + 16 + 2);
  /* item: names + values, no item-level overhead */
  trb_av *item = trb_av_new_m();
  mset(item, "list", l); /* 4 + 21 */
  mset(item, "k", S("")); /* 1 + 0 */
  assert_int_equal(trb_item_size(item), 25 + 1);
  trb_av_destroy(item);
  /* sets: sum of elements */
  static const char *const ss[] = {"ab", "c"};
  static const char *const ns[] = {"1", "12"};
  v = set_of(TRB_T_SS, ss, 2);
  assert_int_equal(trb_av_size(v), 3);
  trb_av_destroy(v);
  v = set_of(TRB_T_NS, ns, 2);
  assert_int_equal(trb_av_size(v), 2 + 2);
  trb_av_destroy(v);
  v = set_of(TRB_T_BS, ss, 2);
  assert_int_equal(trb_av_size(v), 3);
  trb_av_destroy(v);
}

/* ---- validation ---- */

static void test_validate_empty_sets(void **state) {
  (void)state;
  trb_status st;
  trb_status_init(&st);
  trb_av *v = trb_av_new_set(TRB_T_SS);
  expect_invalid(trb_av_validate(v, &st), &st,
                 "One or more parameter values were invalid: An string set  may not be empty");
  trb_av_destroy(v);
  v = trb_av_new_set(TRB_T_NS);
  expect_invalid(trb_av_validate(v, &st), &st,
                 "One or more parameter values were invalid: An number set  may not be empty");
  trb_av_destroy(v);
  v = trb_av_new_set(TRB_T_BS);
  expect_invalid(trb_av_validate(v, &st), &st,
                 "One or more parameter values were invalid: A binary set may not be empty");
  trb_av_destroy(v);
  /* inside a list inside an item */
  trb_av *item = trb_av_new_m();
  trb_av *l = trb_av_new_l();
  lpush(l, S(""));
  lpush(l, trb_av_new_set(TRB_T_NS));
  mset(item, "x", l);
  expect_invalid(trb_item_validate(item, &st), &st,
                 "One or more parameter values were invalid: An number set  may not be empty");
  trb_av_destroy(item);
  /* empty strings and binaries are fine in sets, lists and maps */
  static const char *const e[] = {""};
  v = set_of(TRB_T_SS, e, 1);
  assert_int_equal(trb_av_validate(v, &st), TRB_OK);
  trb_av_destroy(v);
  v = set_of(TRB_T_BS, e, 1);
  assert_int_equal(trb_av_validate(v, &st), TRB_OK);
  trb_av_destroy(v);
}

static void test_validate_duplicates(void **state) {
  (void)state;
  trb_status st;
  trb_status_init(&st);
  static const char *const ss[] = {"a", "b", "a"};
  trb_av *v = set_of(TRB_T_SS, ss, 3);
  expect_invalid(trb_av_validate(v, &st), &st,
                 "One or more parameter values were invalid: Input collection [a, b, a] contains "
                 "duplicates.");
  trb_av_destroy(v);
  /* numbers equal by value; listed in canonical form */
  static const char *const ns[] = {"1", "1.0"};
  v = set_of(TRB_T_NS, ns, 2);
  expect_invalid(trb_av_validate(v, &st), &st,
                 "One or more parameter values were invalid: Input collection [1, 1] contains "
                 "duplicates.");
  trb_av_destroy(v);
  static const char *const ns2[] = {"1e2", "2", "100.00"};
  v = set_of(TRB_T_NS, ns2, 3);
  expect_invalid(trb_av_validate(v, &st), &st,
                 "One or more parameter values were invalid: Input collection [100, 2, 100] "
                 "contains duplicates.");
  trb_av_destroy(v);
  /* binaries listed in base64 */
  static const char *const bs[] = {"A", "A"};
  v = set_of(TRB_T_BS, bs, 2);
  expect_invalid(trb_av_validate(v, &st), &st,
                 "One or more parameter values were invalid: Input collection [QQ==, QQ==] "
                 "contains duplicates.");
  trb_av_destroy(v);
  /* distinct values pass, including "1" vs "10" and "a" vs "A" */
  static const char *const ok[] = {"1", "10", "0.1"};
  v = set_of(TRB_T_NS, ok, 3);
  assert_int_equal(trb_av_validate(v, &st), TRB_OK);
  trb_av_destroy(v);
  static const char *const ok2[] = {"a", "A", "a "};
  v = set_of(TRB_T_SS, ok2, 3);
  assert_int_equal(trb_av_validate(v, &st), TRB_OK);
  trb_av_destroy(v);
  /* large sets (sorting path): a duplicate at the far ends */
  v = trb_av_new_set(TRB_T_NS);
  for (int i = 0; i < 500; i++) {
    char t[32];
    snprintf(t, sizeof t, "%d", i);
    lpush(v, N(t));
  }
  assert_int_equal(trb_av_validate(v, &st), TRB_OK);
  lpush(v, N("0.0e5"));
  assert_int_equal(trb_av_validate(v, &st), TRB_EINVAL);
  /* the long element list is cut, the message still ends properly */
  const char *msg = trb_status_msg(&st);
  assert_true(strncmp(msg, "One or more parameter values were invalid: Input collection [0, 1, 2,",
                      69) == 0);
  assert_non_null(strstr(msg, "...] contains duplicates."));
  assert_true(strlen(msg) < TRB_STATUS_MSG_MAX - 1);
  trb_av_destroy(v);
}

static void test_validate_depth(void **state) {
  (void)state;
  trb_status st;
  trb_status_init(&st);
  const char *too_deep =
      "Nesting Levels have exceeded supported limits: Attributes in the item have nested levels "
      "beyond supported limit";
  trb_av *v = nest(S("x"), 32);
  assert_int_equal(trb_av_validate(v, &st), TRB_OK);
  trb_av *item = trb_av_new_m();
  mset(item, "attr", v);
  assert_int_equal(trb_item_validate(item, &st), TRB_OK);
  trb_av_destroy(item);
  v = nest(S("x"), 33);
  expect_invalid(trb_av_validate(v, &st), &st, too_deep);
  item = trb_av_new_m();
  mset(item, "attr", v);
  expect_invalid(trb_item_validate(item, &st), &st, too_deep);
  trb_av_destroy(item);
  /* an empty container at level 33 counts too; scalars and sets do not add levels */
  v = nest(trb_av_new_l(), 32);
  expect_invalid(trb_av_validate(v, &st), &st, too_deep);
  trb_av_destroy(v);
  static const char *const ss[] = {"a"};
  v = nest(set_of(TRB_T_SS, ss, 1), 32);
  assert_int_equal(trb_av_validate(v, &st), TRB_OK);
  trb_av_destroy(v);
}

static void test_validate_names(void **state) {
  (void)state;
  trb_status st;
  trb_status_init(&st);
  trb_av *item = trb_av_new_m();
  mset(item, "", S("x"));
  expect_invalid(trb_item_validate(item, &st), &st,
                 "One or more parameter values were invalid: An AttributeValue may not contain an "
                 "empty attribute name");
  trb_av_destroy(item);
  /* nested map names too */
  trb_av *m = trb_av_new_m();
  mset(m, "", S("x"));
  assert_int_equal(trb_av_validate(m, &st), TRB_EINVAL);
  trb_av_destroy(m);
  char *name = malloc(65536);
  memset(name, 'n', 65536);
  item = trb_av_new_m();
  assert_int_equal(trb_av_m_set(item, name, 65535, S("x")), TRB_OK);
  assert_int_equal(trb_item_validate(item, &st), TRB_OK);
  assert_int_equal(trb_av_m_set(item, name, 65536, S("y")), TRB_OK);
  assert_int_equal(trb_item_validate(item, &st), TRB_EINVAL);
  assert_non_null(strstr(trb_status_msg(&st), "65535"));
  trb_av_destroy(item);
  free(name);
}

static void test_validate_item_size_limit(void **state) {
  (void)state;
  trb_status st;
  trb_status_init(&st);
  size_t big = TRB_MAX_ITEM_SIZE;
  char *s = calloc(1, big);
  memset(s, 'v', big);
  /* name "k" (1) + "id" (2) + S"1" (1) + value: exactly 409,600 bytes */
  trb_av *item = trb_av_new_m();
  mset(item, "id", S("1"));
  assert_int_equal(trb_av_m_set(item, "k", 1, trb_av_new_s(s, big - 4)), TRB_OK);
  assert_int_equal(trb_item_size(item), TRB_MAX_ITEM_SIZE);
  assert_int_equal(trb_item_validate(item, &st), TRB_OK);
  assert_int_equal(trb_av_m_set(item, "k", 1, trb_av_new_s(s, big - 3)), TRB_OK);
  assert_int_equal(trb_item_size(item), TRB_MAX_ITEM_SIZE + 1);
  expect_invalid(trb_item_validate(item, &st), &st, "Item size has exceeded the maximum allowed size");
  trb_av_destroy(item);
  /* not a map */
  trb_av *x = S("x");
  assert_int_equal(trb_item_validate(x, &st), TRB_EINVAL);
  trb_av_destroy(x);
  free(s);
}

static void test_validate_ok_tree(void **state) {
  (void)state;
  trb_status st;
  trb_status_init(&st);
  trb_av *m = sample_tree();
  assert_int_equal(trb_item_validate(m, &st), TRB_OK);
  assert_int_equal(trb_av_validate(m, &st), TRB_OK);
  trb_av_destroy(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_constructors),
      cmocka_unit_test(test_map_ops),
      cmocka_unit_test(test_list_and_set_ops),
      cmocka_unit_test(test_copy),
      cmocka_unit_test(test_equal_numbers_by_value),
      cmocka_unit_test(test_equal_maps_any_order),
      cmocka_unit_test(test_equal_sets_any_order),
      cmocka_unit_test(test_equal_scalars),
      cmocka_unit_test(test_cmp_scalar),
      cmocka_unit_test(test_size_guide_example),
      cmocka_unit_test(test_size_rules),
      cmocka_unit_test(test_validate_empty_sets),
      cmocka_unit_test(test_validate_duplicates),
      cmocka_unit_test(test_validate_depth),
      cmocka_unit_test(test_validate_names),
      cmocka_unit_test(test_validate_item_size_limit),
      cmocka_unit_test(test_validate_ok_tree),
  };
  return cmocka_run_group_tests_name("value", tests, NULL, NULL);
}
