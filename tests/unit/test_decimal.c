/* test_decimal.c -- engine/decimal.c: parsing, format, comparison, add/sub,
 * size, ordered and compact encodings (with randomized reference checks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/decimal.h"
#include "tests/unit/testutil.h"

static const char *MSG_CONV = "The parameter cannot be converted to a numeric value: ";
static const char *MSG_OVER =
    "Number overflow. Attempting to store a number with magnitude larger than supported range";
static const char *MSG_UNDER =
    "Number underflow. Attempting to store a number with magnitude smaller than supported range";
static const char *MSG_DIGITS = "Attempting to store more than 38 significant digits in a Number";

static trb_dec P(const char *s) {
  trb_dec d;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_dec_parse(s, strlen(s), &d, &st);
  if (rc != TRB_OK) fprintf(stderr, "parse failed for '%s': %s\n", s, trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return d;
}

static void expect_fmt(const char *in, const char *out) {
  trb_dec d = P(in);
  char buf[TRB_DEC_STR_MAX];
  size_t n = trb_dec_format(&d, buf, sizeof buf);
  if (strcmp(buf, out) != 0) fprintf(stderr, "'%s' formatted as '%s', want '%s'\n", in, buf, out);
  assert_string_equal(buf, out);
  assert_int_equal(n, strlen(out));
}

static void expect_err(const char *in, const char *msg_prefix) {
  trb_dec d = {77, 5, 1};
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_dec_parse(in, strlen(in), &d, &st);
  if (rc == TRB_OK) fprintf(stderr, "'%s' unexpectedly accepted\n", in);
  assert_int_equal(rc, TRB_EINVAL);
  assert_int_equal(st.code, TRB_EINVAL);
  if (strncmp(st.msg, msg_prefix, strlen(msg_prefix)) != 0)
    fprintf(stderr, "'%s': message '%s', want prefix '%s'\n", in, st.msg, msg_prefix);
  assert_true(strncmp(st.msg, msg_prefix, strlen(msg_prefix)) == 0);
  /* The output is untouched on error. */
  assert_true(d.coef == 77 && d.exp == 5 && d.neg == 1);
}

static void test_parse_accepted(void **state) {
  (void)state;
  static const char *cases[][2] = {
      {"3", "3"},
      {"-7.1234", "-7.1234"},
      {"-17e5", "-1700000"},
      {"-17.4E37", "-174000000000000000000000000000000000000"},
      {"+3", "3"},
      {".123", "0.123"},
      {"-.5", "-0.5"},
      {"0001.23", "1.23"},
      {"1e+5", "100000"},
      {"1E-5", "0.00001"},
      {"0e1000", "0"},
      {"0e-99999999999999999999", "0"},
      {"-0", "0"},
      {"+0.000", "0"},
      {"00000", "0"},
      {"0.", "0"},
      {"5.", "5"},
      {"0.50", "0.5"},
      {"-0.50", "-0.5"},
      {"1000", "1000"},
      {"1e3", "1000"},
      {"10e2", "1000"},
      {"0.001e6", "1000"},
      {"1e-3", "0.001"},
      {"123.456e1", "1234.56"},
      {"123.456e-1", "12.3456"},
      {"123.456e3", "123456"},
      {"123.456e-3", "0.123456"},
      {"1.00000000000000007629769841092E+50",
       "100000000000000007629769841092000000000000000000000"},
      {"100000000000000000000000000000000000000000", "100000000000000000000000000000000000000000"},
      {"12345678901234567890123456789012345678", "12345678901234567890123456789012345678"},
      {"1234567890123456789012345678901234567800000", "1234567890123456789012345678901234567800000"},
      {"0.0000000000123456789012345678901234567800000", "0.00000000001234567890123456789012345678"},
      {"9223372036854775807", "9223372036854775807"},
      {"1e0000000000000000000000000000000000000000000000000000000005", "100000"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_fmt(cases[i][0], cases[i][1]);
  /* Canonical fields. */
  trb_dec d = P("1000");
  assert_true(d.coef == 1 && d.exp == 3 && d.neg == 0);
  d = P("-0.0");
  assert_true(d.coef == 0 && d.exp == 0 && d.neg == 0);
  d = P("0e1000");
  assert_true(d.coef == 0 && d.exp == 0 && d.neg == 0);
  d = P("-12.50");
  assert_true(d.coef == 125 && d.exp == -1 && d.neg == 1);
  /* Length is honoured: the parser never reads past len. */
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_dec_parse("12345", 2, &d, &st), TRB_OK);
  assert_true(d.coef == 12 && d.exp == 0);
}

static void test_parse_rejected(void **state) {
  (void)state;
  static const char *bad[] = {
      "",      ".",     "e5",    "1e",    "1e+",   "1e-",   " 1",    "1 ",    "1 2",
      "NaN",   "nan",   "Infinity", "-Infinity", "inf", "0x10", "0X1F", "1.2.3", "--1",
      "+-1",   "-+1",   "++1",   "+",     "-",     "1e5e5", "1e5.5", "1ee5",  "abc",
      "1,000", "1_000", "e",     "E",     ".e1",   "-.",    "+.",    "1e--5", "\t1",
      "1\n",   "1f",    "1d",    "٣",     "1e5 ",  "..1",   "1..",   "1e+-5", "0b101",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_err(bad[i], MSG_CONV);
  /* The message echoes the input. */
  trb_dec d;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_dec_parse("12a", 3, &d, &st), TRB_EINVAL);
  assert_string_equal(st.msg, "The parameter cannot be converted to a numeric value: 12a");
  /* An embedded NUL inside len is not a digit. */
  trb_status_init(&st);
  assert_int_equal(trb_dec_parse("1\0002", 3, &d, &st), TRB_EINVAL);
  /* NULL status is allowed. */
  assert_int_equal(trb_dec_parse("x", 1, &d, NULL), TRB_EINVAL);
}

static void test_precision(void **state) {
  (void)state;
  expect_fmt("12345678901234567890123456789012345678", "12345678901234567890123456789012345678");
  expect_fmt("-9.9999999999999999999999999999999999999",
             "-9.9999999999999999999999999999999999999");
  expect_err("123456789012345678901234567890123456789", MSG_DIGITS);
  expect_err("1.00000000000000000000000000000000000001", MSG_DIGITS);
  expect_err("-0.000100000000000000000000000000000000000001", MSG_DIGITS);
  /* Leading and trailing zeros are not significant. */
  expect_fmt("0000000000000000000000000000000000000000000001", "1");
  expect_fmt("1.0000000000000000000000000000000000000000000000000", "1");
  expect_fmt("1.0000000000000000000000000000000000001000000000000",
             "1.0000000000000000000000000000000000001");
  expect_fmt("100000000000000000000000000000000000000000", "100000000000000000000000000000000000000000");
  trb_dec d = P("100000000000000000000000000000000000000000");
  assert_int_equal(trb_dec_digits(&d), 1);
  d = P("1.0000000000000000000000000000000000001");
  assert_int_equal(trb_dec_digits(&d), 38);
  d = P("0");
  assert_int_equal(trb_dec_digits(&d), 0);
}

static void test_range(void **state) {
  (void)state;
  char buf[TRB_DEC_STR_MAX];
  trb_dec d = P("1E-130");
  assert_true(d.coef == 1 && d.exp == -130);
  expect_err("1E-131", MSG_UNDER);
  expect_err("-1E-131", MSG_UNDER);
  expect_err("0.99999E-130", MSG_UNDER);
  d = P("9.9999999999999999999999999999999999999E+125");
  assert_int_equal(trb_dec_digits(&d), 38);
  expect_err("1E+126", MSG_OVER);
  expect_err("-1E+126", MSG_OVER);
  expect_err("10E+125", MSG_OVER);
  d = P("0.1E+126");
  assert_int_equal(trb_dec_cmp(&d, &(trb_dec){1, 125, 0}), 0);
  d = P("1.2345678901234567890123456789012345678E-93");
  assert_int_equal(d.exp, -130);
  d = P("1.2345678901234567890123456789012345678E-130");
  assert_int_equal(d.exp, -167);
  /* Very long exponents saturate into clean errors. */
  expect_err("1e99999999999", MSG_OVER);
  expect_err("1e-99999999999", MSG_UNDER);
  expect_err("1e999999999999999999999999999999999999999999999999999", MSG_OVER);
  expect_err("1e-999999999999999999999999999999999999999999999999999", MSG_UNDER);
  expect_err("-1e9223372036854775808", MSG_OVER);
  /* Digit positions and exponents cancel: a long run of leading zeros after
   * the point plus a large exponent. */
  expect_fmt("0.00000000000000000000000000000000000000000000000000001e60", "10000000");
  /* Worst-case formatted lengths fit TRB_DEC_STR_MAX. */
  d = P("-1.2345678901234567890123456789012345678E-130");
  size_t n = trb_dec_format(&d, buf, sizeof buf);
  assert_int_equal(n, 1 + 2 + 129 + 38);
  assert_true(n < TRB_DEC_STR_MAX);
  assert_int_equal(strlen(buf), n);
  d = P("-9.9999999999999999999999999999999999999E+125");
  n = trb_dec_format(&d, buf, sizeof buf);
  assert_int_equal(n, 1 + 126);
  assert_true(n < TRB_DEC_STR_MAX);
  d = P("-1E+125");
  n = trb_dec_format(&d, buf, sizeof buf);
  assert_int_equal(n, 127);
  assert_true(buf[0] == '-' && buf[1] == '1' && buf[126] == '0' && buf[127] == 0);
  d = P("1e-130");
  n = trb_dec_format(&d, buf, sizeof buf);
  assert_int_equal(n, 2 + 129 + 1);
  assert_true(strncmp(buf, "0.000", 5) == 0 && buf[131] == '1');
}

static void test_format(void **state) {
  (void)state;
  char buf[TRB_DEC_STR_MAX];
  /* 1e100 -> "1" followed by 100 zeros. */
  trb_dec d = P("1e100");
  size_t n = trb_dec_format(&d, buf, sizeof buf);
  assert_int_equal(n, 101);
  assert_int_equal(buf[0], '1');
  for (int i = 1; i <= 100; i++) assert_int_equal(buf[i], '0');
  /* snprintf-like truncation. */
  d = P("-123.45");
  n = trb_dec_format(&d, buf, 4);
  assert_int_equal(n, 7);
  assert_string_equal(buf, "-12");
  n = trb_dec_format(&d, NULL, 0);
  assert_int_equal(n, 7);
  n = trb_dec_format(&d, buf, 8);
  assert_string_equal(buf, "-123.45");
  /* from_i64 */
  trb_dec_from_i64(0, &d);
  assert_true(d.coef == 0 && d.exp == 0 && d.neg == 0);
  trb_dec_from_i64(-1200, &d);
  assert_true(d.coef == 12 && d.exp == 2 && d.neg == 1);
  trb_dec_from_i64(INT64_MIN, &d);
  trb_dec_format(&d, buf, sizeof buf);
  assert_string_equal(buf, "-9223372036854775808");
  trb_dec_from_i64(INT64_MAX, &d);
  trb_dec_format(&d, buf, sizeof buf);
  assert_string_equal(buf, "9223372036854775807");
  /* Format then parse is the identity. */
  static const char *in[] = {"1.5e-100", "-3e90", "42", "-0.007", "123456789.987654321"};
  for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
    trb_dec a = P(in[i]);
    trb_dec_format(&a, buf, sizeof buf);
    trb_dec b = P(buf);
    assert_true(a.coef == b.coef && a.exp == b.exp && a.neg == b.neg);
  }
}

static void test_cmp_fixed(void **state) {
  (void)state;
  static const char *asc[] = {
      "-9.9999999999999999999999999999999999999E+125", "-1e100", "-1000", "-999.99", "-1.23",
      "-1.2", "-1", "-0.5", "-1e-130", "0", "1e-130", "1.2e-130", "0.5", "1", "1.2",
      "1.23", "1.3", "9", "10", "999.99", "1000", "1e100", "9.9999999999999999999999999999999999999E+125",
  };
  size_t n = sizeof asc / sizeof asc[0];
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      trb_dec a = P(asc[i]), b = P(asc[j]);
      int want = i < j ? -1 : i > j ? 1 : 0;
      assert_int_equal(trb_dec_cmp(&a, &b), want);
    }
  trb_dec a = P("1000"), b = P("1e3"), c = P("-0"), z = P("0");
  assert_int_equal(trb_dec_cmp(&a, &b), 0);
  assert_int_equal(trb_dec_cmp(&c, &z), 0);
  assert_true(trb_dec_is_zero(&c));
}

/* ---------------------------------------------------------------------------
 * Independent reference: a number as a sign and a fixed array of decimal
 * digits indexed by position (exponent). Comparison and addition here are
 * schoolbook on digit arrays, sharing nothing with decimal.c.
 */
#define REF_OFF 200
#define REF_N 401
typedef struct {
  int neg;
  signed char d[REF_N]; /* d[p + REF_OFF] = digit at 10^p */
} ref_t;

typedef struct {
  char text[128];
  ref_t ref;
} gen_t;

static uint64_t rng;

static int rnd(int lo, int hi) { return lo + (int)(trb_test_rand(&rng) % (uint64_t)(hi - lo + 1)); }

/* Random number with nd significant digits (first and last nonzero), adj,
 * written in a random but valid spelling. */
static void gen_from_digits(gen_t *g, int neg, const char *digs, int nd, int adj) {
  memset(&g->ref, 0, sizeof g->ref);
  g->ref.neg = neg;
  for (int i = 0; i < nd; i++) g->ref.d[adj - i + REF_OFF] = (signed char)(digs[i] - '0');
  /* Spelling: d.ddd e adj, or shifted mantissa with compensating exponent. */
  int shift = rnd(0, 3) == 0 ? rnd(-5, 5) : 0;
  char m[80];
  int k = 0;
  if (shift <= 0) {
    m[k++] = '0';
    m[k++] = '.';
    for (int i = 0; i < -shift; i++) m[k++] = '0';
    for (int i = 0; i < nd; i++) m[k++] = digs[i];
    /* 0.[z zeros]d1d2... = d1.d2... * 10^-(z+1), z = -shift */
    snprintf(g->text, sizeof g->text, "%s%.*se%d", neg ? "-" : (rnd(0, 4) == 0 ? "+" : ""), k, m,
             adj + 1 - shift);
  } else {
    for (int i = 0; i < nd || i <= shift; i++) {
      m[k++] = i < nd ? digs[i] : '0';
      if (i == shift) m[k++] = '.';
    }
    snprintf(g->text, sizeof g->text, "%s%.*sE%+d", neg ? "-" : "", k, m, adj - shift);
  }
}

static void gen_random(gen_t *g, int adj_lo, int adj_hi) {
  char digs[40];
  int nd = rnd(0, 2) == 0 ? rnd(1, 3) : rnd(1, 38);
  for (int i = 0; i < nd; i++) digs[i] = (char)('0' + rnd(0, 9));
  digs[0] = (char)('1' + rnd(0, 8));
  digs[nd - 1] = (char)('1' + rnd(0, 8));
  gen_from_digits(g, rnd(0, 1), digs, nd, rnd(adj_lo, adj_hi));
}

/* b close to a: same digits with a random edit (prefix, extension, bump). */
static void gen_near(gen_t *b, const gen_t *a) {
  char digs[40];
  int nd = 0, hi = -1000;
  for (int p = REF_N - 1; p >= 0; p--)
    if (a->ref.d[p]) {
      hi = p - REF_OFF;
      break;
    }
  int lo = hi;
  for (int p = hi; p >= -REF_OFF; p--)
    if (a->ref.d[p + REF_OFF]) lo = p;
  for (int p = hi; p >= lo; p--) digs[nd++] = (char)('0' + a->ref.d[p + REF_OFF]);
  switch (rnd(0, 3)) {
  case 0: /* prefix */
    nd = rnd(1, nd);
    while (digs[nd - 1] == '0') nd--;
    break;
  case 1: /* extension */
    while (nd < 38 && rnd(0, 2)) digs[nd++] = (char)('0' + rnd(0, 9));
    digs[nd - 1] = (char)('1' + rnd(0, 8));
    break;
  case 2: { /* change one digit */
    int i = rnd(0, nd - 1);
    digs[i] = (char)('0' + rnd(i == 0 ? 1 : 0, 9));
    digs[nd - 1] = digs[nd - 1] == '0' ? '1' : digs[nd - 1];
    break;
  }
  default:
    break;
  }
  gen_from_digits(b, rnd(0, 4) == 0 ? !a->ref.neg : a->ref.neg, digs, nd, hi);
}

static int ref_is_zero(const ref_t *r) {
  for (int i = 0; i < REF_N; i++)
    if (r->d[i]) return 0;
  return 1;
}

static int ref_magcmp(const ref_t *a, const ref_t *b) {
  for (int i = REF_N - 1; i >= 0; i--)
    if (a->d[i] != b->d[i]) return a->d[i] < b->d[i] ? -1 : 1;
  return 0;
}

static int ref_cmp(const ref_t *a, const ref_t *b) {
  int za = ref_is_zero(a), zb = ref_is_zero(b);
  int sa = za ? 0 : a->neg ? -1 : 1, sb = zb ? 0 : b->neg ? -1 : 1;
  if (sa != sb) return sa < sb ? -1 : 1;
  return sa >= 0 ? ref_magcmp(a, b) : -ref_magcmp(a, b);
}

static void ref_add(const ref_t *a, const ref_t *b, ref_t *r) {
  memset(r, 0, sizeof *r);
  if (a->neg == b->neg) {
    int carry = 0;
    for (int i = 0; i < REF_N; i++) {
      int s = a->d[i] + b->d[i] + carry;
      r->d[i] = (signed char)(s % 10);
      carry = s / 10;
    }
    r->neg = a->neg;
    return;
  }
  const ref_t *x = a, *y = b;
  if (ref_magcmp(a, b) < 0) {
    x = b;
    y = a;
  }
  int borrow = 0;
  for (int i = 0; i < REF_N; i++) {
    int s = x->d[i] - y->d[i] - borrow;
    borrow = s < 0;
    r->d[i] = (signed char)(s + (borrow ? 10 : 0));
  }
  r->neg = x->neg;
}

static void parse_gen(const gen_t *g, trb_dec *d) {
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_dec_parse(g->text, strlen(g->text), d, &st);
  if (rc) fprintf(stderr, "generated '%s' rejected: %s\n", g->text, st.msg);
  assert_int_equal(rc, TRB_OK);
}

static int sgn(int v) { return v < 0 ? -1 : v > 0 ? 1 : 0; }

static int enc_cmp(const trb_buf *a, const trb_buf *b) {
  size_t n = a->len < b->len ? a->len : b->len;
  int c = memcmp(a->p, b->p, n);
  if (c) return sgn(c);
  return a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
}

static void gen_pair(gen_t *a, gen_t *b) {
  switch (rnd(0, 3)) {
  case 0:
    gen_random(a, -130, 125);
    gen_random(b, -130, 125);
    break;
  case 1:
    gen_random(a, -130, 125);
    gen_near(b, a);
    break;
  case 2: {
    int e = rnd(-130, 125);
    gen_random(a, e, e);
    gen_random(b, e, e > 124 ? 125 : e + 1);
    break;
  }
  default:
    gen_random(a, -5, 5);
    gen_random(b, -5, 5);
    break;
  }
}

static void test_cmp_random(void **state) {
  (void)state;
  rng = trb_test_seed();
  for (int it = 0; it < 20000; it++) {
    gen_t a, b;
    gen_pair(&a, &b);
    trb_dec da, db;
    parse_gen(&a, &da);
    parse_gen(&b, &db);
    int want = ref_cmp(&a.ref, &b.ref);
    int got = trb_dec_cmp(&da, &db);
    if (got != want) fprintf(stderr, "cmp('%s','%s') = %d want %d\n", a.text, b.text, got, want);
    assert_int_equal(got, want);
    assert_int_equal(trb_dec_cmp(&db, &da), -want);
    assert_int_equal(trb_dec_cmp(&da, &da), 0);
  }
}

static void check_roundtrip(const trb_dec *d, const trb_buf *enc, int compact) {
  trb_rd r;
  trb_dec back = {5, 5, 1};
  trb_rd_init(&r, enc->p, enc->len);
  int bad = compact ? trb_dec_decode(&r, &back) : trb_dec_decode_ordered(&r, &back);
  assert_int_equal(bad, 0);
  assert_int_equal(r.off, enc->len);
  assert_true(back.coef == d->coef && back.exp == d->exp && back.neg == d->neg);
  /* Every truncation fails cleanly. */
  for (size_t n = 0; n < enc->len; n++) {
    trb_rd_init(&r, enc->p, n);
    bad = compact ? trb_dec_decode(&r, &back) : trb_dec_decode_ordered(&r, &back);
    assert_int_not_equal(bad, 0);
  }
}

static void test_ordered_random(void **state) {
  (void)state;
  rng = trb_test_seed() ^ 0x9e3779b97f4a7c15ULL;
  trb_buf ea, eb;
  trb_buf_init(&ea, 0);
  trb_buf_init(&eb, 0);
  for (int it = 0; it < 20000; it++) {
    gen_t a, b;
    gen_pair(&a, &b);
    trb_dec da, db;
    parse_gen(&a, &da);
    parse_gen(&b, &db);
    trb_buf_reset(&ea);
    trb_buf_reset(&eb);
    assert_int_equal(trb_dec_encode_ordered(&da, &ea), TRB_OK);
    assert_int_equal(trb_dec_encode_ordered(&db, &eb), TRB_OK);
    assert_true(ea.len <= 21 && eb.len <= 21);
    int want = trb_dec_cmp(&da, &db);
    int got = enc_cmp(&ea, &eb);
    if (got != want) fprintf(stderr, "enc order '%s' vs '%s': %d want %d\n", a.text, b.text, got, want);
    assert_int_equal(got, want);
    /* Self-delimiting: neither encoding is a proper prefix of the other. */
    if (want != 0) {
      size_t n = ea.len < eb.len ? ea.len : eb.len;
      assert_int_not_equal(memcmp(ea.p, eb.p, n), 0);
    }
    if (it % 8 == 0) check_roundtrip(&da, &ea, 0);
    trb_buf_reset(&ea);
    assert_int_equal(trb_dec_encode(&da, &ea), TRB_OK);
    check_roundtrip(&da, &ea, 1);
  }
  trb_buf_fini(&ea);
  trb_buf_fini(&eb);
}

static void test_ordered_fixed(void **state) {
  (void)state;
  static const char *asc[] = {"-1e125", "-1.23", "-1.2", "-1.1", "-1", "-0.99", "-1e-130", "0",
                              "1e-130", "0.99", "1", "1.01", "1.1", "1.2", "1.23", "1.3",
                              "12", "99", "100", "1e125"};
  size_t n = sizeof asc / sizeof asc[0];
  trb_buf e[sizeof asc / sizeof asc[0]];
  for (size_t i = 0; i < n; i++) {
    trb_buf_init(&e[i], 0);
    trb_dec d = P(asc[i]);
    assert_int_equal(trb_dec_encode_ordered(&d, &e[i]), TRB_OK);
  }
  for (size_t i = 0; i + 1 < n; i++) assert_int_equal(enc_cmp(&e[i], &e[i + 1]), -1);
  /* Documented layout. */
  assert_int_equal(e[7].len, 1);
  assert_int_equal(e[7].p[0], 0x02);
  trb_dec d = P("1.23"); /* class 3, adj 0 -> 130, pairs 12 30 -> 25, 60 */
  trb_buf b;
  trb_buf_init(&b, 0);
  trb_dec_encode_ordered(&d, &b);
  unsigned char want[] = {0x03, 130, 25, 60};
  assert_int_equal(b.len, sizeof want);
  assert_memory_equal(b.p, want, sizeof want);
  trb_buf_reset(&b);
  d = P("-1.23");
  trb_dec_encode_ordered(&d, &b);
  unsigned char wantn[] = {0x01, 255 - 130, 255 - 25, 255 - 60};
  assert_memory_equal(b.p, wantn, sizeof wantn);
  /* The decoder stops at the terminator and leaves the rest. */
  trb_buf_append(&b, "xyz", 3);
  trb_rd r;
  trb_rd_init(&r, b.p, b.len);
  trb_dec back;
  assert_int_equal(trb_dec_decode_ordered(&r, &back), 0);
  assert_int_equal(r.off, 4);
  assert_true(back.coef == 123 && back.exp == -2 && back.neg == 1);
  trb_buf_fini(&b);
  for (size_t i = 0; i < n; i++) trb_buf_fini(&e[i]);
}

static int decode_bytes(const unsigned char *p, size_t n, trb_dec *out) {
  trb_rd r;
  trb_rd_init(&r, p, n);
  return trb_dec_decode(&r, out);
}

static void test_decode_rejects(void **state) {
  (void)state;
  trb_dec d;
  static const unsigned char bad_class[] = {0x00};
  static const unsigned char bad_class2[] = {0x04, 130, 2};
  static const unsigned char big_pair[] = {0x03, 130, 201};
  static const unsigned char big_pair2[] = {0x03, 130, 200};
  static const unsigned char lead_zero[] = {0x03, 130, 2 * 5};         /* "05" */
  static const unsigned char zero_last[] = {0x03, 130, 2 * 12 + 1, 0}; /* "1200" */
  static const unsigned char no_term[] = {0x03, 130, 25, 25};
  static const unsigned char neg_big[] = {0x01, 1, 255 - 201};
  assert_int_not_equal(decode_bytes(bad_class, sizeof bad_class, &d), 0);
  assert_int_not_equal(decode_bytes(bad_class2, sizeof bad_class2, &d), 0);
  assert_int_not_equal(decode_bytes(big_pair, sizeof big_pair, &d), 0);
  assert_int_not_equal(decode_bytes(big_pair2, sizeof big_pair2, &d), 0);
  assert_int_not_equal(decode_bytes(lead_zero, sizeof lead_zero, &d), 0);
  assert_int_not_equal(decode_bytes(zero_last, sizeof zero_last, &d), 0);
  assert_int_not_equal(decode_bytes(no_term, sizeof no_term, &d), 0);
  assert_int_not_equal(decode_bytes(neg_big, sizeof neg_big, &d), 0);
  assert_int_not_equal(decode_bytes(NULL, 0, &d), 0);
  /* 20 pairs = 40 digits is too many. */
  unsigned char many[2 + 20];
  many[0] = 0x03;
  many[1] = 130;
  for (int i = 0; i < 20; i++) many[2 + i] = 2 * 11 + 1;
  many[21] = 2 * 11;
  assert_int_not_equal(decode_bytes(many, sizeof many, &d), 0);
  /* 19 pairs = 38 digits is fine. */
  unsigned char max[2 + 19];
  max[0] = 0x03;
  max[1] = 255;
  for (int i = 0; i < 19; i++) max[2 + i] = 2 * 99 + 1;
  max[20] = 2 * 99;
  assert_int_equal(decode_bytes(max, sizeof max, &d), 0);
  char buf[TRB_DEC_STR_MAX];
  trb_dec_format(&d, buf, sizeof buf);
  trb_dec want = P("9.9999999999999999999999999999999999999E+125");
  assert_true(d.coef == want.coef && d.exp == want.exp);
  /* Random bytes: never crash; anything accepted re-encodes to the same
   * bytes (a canonical value has exactly one encoding). */
  rng = trb_test_seed() ^ 0x1234567ULL;
  trb_buf b;
  trb_buf_init(&b, 0);
  int accepted = 0;
  for (int it = 0; it < 50000; it++) {
    unsigned char p[24];
    size_t n = (size_t)rnd(0, 23);
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)rnd(0, 255);
    if (n > 0 && rnd(0, 1)) p[0] = (unsigned char)rnd(1, 3);
    for (size_t i = 2; i < n && rnd(0, 1); i++) p[i] = (unsigned char)(p[0] == 1 ? 255 - rnd(0, 199) : rnd(0, 199));
    trb_rd r;
    trb_rd_init(&r, p, n);
    if (trb_dec_decode(&r, &d) == 0) {
      accepted++;
      trb_buf_reset(&b);
      trb_dec_encode(&d, &b);
      assert_int_equal(b.len, r.off);
      assert_memory_equal(b.p, p, b.len);
      assert_true(d.coef == 0 || (d.coef % 10 != 0 && trb_dec_digits(&d) <= 38));
      int adj = d.exp + trb_dec_digits(&d) - 1;
      assert_true(d.coef == 0 || (adj >= -130 && adj <= 125));
    } else {
      assert_int_not_equal(r.err, 0);
    }
  }
  assert_true(accepted > 0);
  trb_buf_fini(&b);
}

/* ------------------------------------------------------------- add / sub */

static void expect_add(const char *a, const char *b, const char *sum, const char *diff) {
  trb_dec da = P(a), db = P(b), r;
  trb_status st;
  char buf[TRB_DEC_STR_MAX];
  trb_status_init(&st);
  assert_int_equal(trb_dec_add(&da, &db, &r, &st), TRB_OK);
  trb_dec_format(&r, buf, sizeof buf);
  if (strcmp(buf, sum)) fprintf(stderr, "%s + %s = %s, want %s\n", a, b, buf, sum);
  assert_string_equal(buf, sum);
  assert_int_equal(trb_dec_sub(&da, &db, &r, &st), TRB_OK);
  trb_dec_format(&r, buf, sizeof buf);
  if (strcmp(buf, diff)) fprintf(stderr, "%s - %s = %s, want %s\n", a, b, buf, diff);
  assert_string_equal(buf, diff);
}

static void expect_add_err(const char *a, const char *b, int sub, const char *msg) {
  trb_dec da = P(a), db = P(b), r = {9, 9, 0};
  trb_status st;
  trb_status_init(&st);
  trb_err rc = sub ? trb_dec_sub(&da, &db, &r, &st) : trb_dec_add(&da, &db, &r, &st);
  assert_int_equal(rc, TRB_EINVAL);
  assert_string_equal(st.msg, msg);
  assert_true(r.coef == 9 && r.exp == 9);
}

static void test_addsub_fixed(void **state) {
  (void)state;
  expect_add("1", "2", "3", "-1");
  expect_add("0.1", "0.2", "0.3", "-0.1");
  expect_add("5", "5", "10", "0");
  expect_add("-5", "5", "0", "-10");
  expect_add("0", "0", "0", "0");
  expect_add("0", "-7", "-7", "7");
  expect_add("-7", "0", "-7", "-7");
  char big[128], small[160];
  memset(big, '0', sizeof big);
  big[0] = '2';
  big[101] = 0; /* "2" and 100 zeros */
  expect_add("1e100", "1e100", big, "0");
  expect_add("99999999999999999999999999999999999999", "1",
             "100000000000000000000000000000000000000", "99999999999999999999999999999999999998");
  expect_add("1e37", "1", "10000000000000000000000000000000000001", "9999999999999999999999999999999999999");
  expect_add("5e37", "5e37", "100000000000000000000000000000000000000", "0");
  expect_add("1.5", "-0.5", "1", "2");
  memset(small, '0', sizeof small);
  small[1] = '.';
  small[131] = '2';
  small[132] = 0; /* "0." 129 zeros "2" */
  expect_add("1e-130", "1e-130", small, "0");
  /* Precision loss is reported as overflow (AWS's text). */
  expect_add_err("1e50", "1", 0, MSG_OVER);
  expect_add_err("1e50", "1", 1, MSG_OVER);
  expect_add_err("99999999999999999999999999999999999999", "0.1", 0, MSG_OVER);
  expect_add_err("12345678901234567890123456789012345678", "1e-100", 0, MSG_OVER);
  expect_add_err("1e125", "1e-130", 0, MSG_OVER);
  /* Range overflow / underflow. */
  expect_add_err("9.9999999999999999999999999999999999999E+125", "1e88", 0, MSG_OVER);
  expect_add_err("-9.9999999999999999999999999999999999999E+125", "1e88", 1, MSG_OVER);
  expect_add_err("1.2e-130", "1.1e-130", 1, MSG_UNDER);
  /* Long operands near the edge that still fit exactly. */
  expect_add_err("99999999999999999999999999999999999999e1", "-99999999999999999999999999999999999999", 0,
                 MSG_OVER);
  expect_add_err("19999999999999999999999999999999999999e1", "-99999999999999999999999999999999999991", 1,
                 MSG_OVER);
  trb_dec a = P("19999999999999999999999999999999999999e1"), b = P("-99999999999999999999999999999999999991"), r;
  assert_int_equal(trb_dec_add(&a, &b, &r, NULL), TRB_OK);
  trb_dec want = P("99999999999999999999999999999999999999");
  assert_true(r.coef == want.coef && r.exp == want.exp && r.neg == want.neg);
}

static int ref_to_dec_expect(const ref_t *r, trb_dec *out, const char **err) {
  int hi = -1, lo = -1;
  for (int i = REF_N - 1; i >= 0; i--)
    if (r->d[i]) {
      hi = i;
      break;
    }
  if (hi < 0) {
    *out = (trb_dec){0, 0, 0};
    return 0;
  }
  for (int i = 0; i < REF_N; i++)
    if (r->d[i]) {
      lo = i;
      break;
    }
  int nsig = hi - lo + 1, adj = hi - REF_OFF;
  if (nsig > 38 || adj > 125) {
    *err = MSG_OVER;
    return 1;
  }
  if (adj < -130) {
    *err = MSG_UNDER;
    return 1;
  }
  char text[64];
  int k = 0;
  if (r->neg) text[k++] = '-';
  for (int i = hi; i >= lo; i--) text[k++] = (char)('0' + r->d[i]);
  snprintf(text + k, sizeof text - (size_t)k, "e%d", lo - REF_OFF);
  *out = P(text);
  return 0;
}

static void test_addsub_random(void **state) {
  (void)state;
  rng = trb_test_seed() ^ 0xabcdef;
  int ok = 0, errs = 0;
  for (int it = 0; it < 20000; it++) {
    gen_t a, b;
    int mode = rnd(0, 3);
    if (mode == 0) {
      gen_pair(&a, &b);
    } else if (mode == 1) {
      gen_random(&a, -130, 125);
      gen_near(&b, &a);
    } else {
      int e = rnd(-130, 125);
      int lo = e - 40 < -130 ? -130 : e - 40, hi = e + 40 > 125 ? 125 : e + 40;
      gen_random(&a, e, e);
      gen_random(&b, lo, hi);
    }
    trb_dec da, db, r;
    parse_gen(&a, &da);
    parse_gen(&b, &db);
    for (int sub = 0; sub < 2; sub++) {
      ref_t rb = b.ref, rr;
      if (sub) rb.neg = !rb.neg;
      ref_add(&a.ref, &rb, &rr);
      trb_dec want;
      const char *werr = NULL;
      int wbad = ref_to_dec_expect(&rr, &want, &werr);
      trb_status st;
      trb_status_init(&st);
      trb_err rc = sub ? trb_dec_sub(&da, &db, &r, &st) : trb_dec_add(&da, &db, &r, &st);
      if ((rc != TRB_OK) != wbad)
        fprintf(stderr, "%s %c %s: rc %d (%s), want %s\n", a.text, sub ? '-' : '+', b.text, rc,
                st.msg, wbad ? werr : "ok");
      assert_int_equal(rc != TRB_OK, wbad);
      if (wbad) {
        errs++;
        assert_string_equal(st.msg, werr);
      } else {
        ok++;
        if (!(r.coef == want.coef && r.exp == want.exp && r.neg == want.neg))
          fprintf(stderr, "%s %c %s: wrong result\n", a.text, sub ? '-' : '+', b.text);
        assert_true(r.coef == want.coef && r.exp == want.exp && r.neg == want.neg);
      }
    }
  }
  /* Both outcomes were exercised. */
  assert_true(ok > 1000);
  assert_true(errs > 100);
}

static void test_aliasing(void **state) {
  (void)state;
  trb_dec a = P("1.5"), b = P("2.25");
  assert_int_equal(trb_dec_add(&a, &b, &a, NULL), TRB_OK);
  assert_int_equal(trb_dec_cmp(&a, &(trb_dec){375, -2, 0}), 0);
  assert_int_equal(trb_dec_sub(&a, &a, &a, NULL), TRB_OK);
  assert_true(a.coef == 0 && a.exp == 0 && a.neg == 0);
  b = P("-3");
  assert_int_equal(trb_dec_sub(&a, &b, &b, NULL), TRB_OK);
  assert_true(b.coef == 3 && b.neg == 0);
}

static void test_size(void **state) {
  (void)state;
  static const struct {
    const char *n;
    size_t sz;
  } cases[] = {
      {"0", 1},      {"-0", 1},     {"1", 2},     {"-1", 3},     {"10", 2},  {"12", 2},
      {"1.2", 3},    {"123", 3},    {"1234", 3},  {"12.34", 3},  {"-12.34", 4}, {"1.234", 4},
      {"0.1", 2},    {"0.12", 2},   {"0.012", 3}, {"1000", 2},   {"1e3", 2},
      {"12345678901234567890123456789012345678", 20},
      {"1.2345678901234567890123456789012345678", 21},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    trb_dec d = P(cases[i].n);
    if (trb_dec_size(&d) != cases[i].sz)
      fprintf(stderr, "size(%s) = %zu want %zu\n", cases[i].n, trb_dec_size(&d), cases[i].sz);
    assert_int_equal(trb_dec_size(&d), cases[i].sz);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_accepted), cmocka_unit_test(test_parse_rejected),
      cmocka_unit_test(test_precision),      cmocka_unit_test(test_range),
      cmocka_unit_test(test_format),         cmocka_unit_test(test_cmp_fixed),
      cmocka_unit_test(test_cmp_random),     cmocka_unit_test(test_ordered_fixed),
      cmocka_unit_test(test_ordered_random), cmocka_unit_test(test_decode_rejects),
      cmocka_unit_test(test_addsub_fixed),   cmocka_unit_test(test_addsub_random),
      cmocka_unit_test(test_aliasing),       cmocka_unit_test(test_size),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
