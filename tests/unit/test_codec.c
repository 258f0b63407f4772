/*
 * test_codec.c -- the binary item encoding (engine/item_codec.c): random
 * trees round-trip; the layout is pinned by golden bytes; truncated,
 * extended, bit-flipped and random inputs never crash (run under ASan),
 * fail with TRB_ECORRUPT (or TRB_EVERSION for a newer header), and any
 * input the decoder accepts re-encodes to exactly the same bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/value.h"
#include "testutil.h"

static uint64_t rng;

static uint64_t rnd(uint64_t n) { return n ? trb_test_rand(&rng) % n : 0; }

static void rand_bytes(char *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (char)rnd(256);
}

static trb_av *rand_number(void) {
  char t[64];
  size_t off = 0;
  if (rnd(2)) t[off++] = '-';
  int digits = 1 + (int)rnd(38);
  for (int i = 0; i < digits; i++) t[off++] = (char)('0' + rnd(10));
  off += (size_t)snprintf(t + off, sizeof t - off, "e%d", (int)rnd(150) - 100);
  trb_dec d;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_dec_parse(t, off, &d, &st), TRB_OK);
  return trb_av_new_n(&d);
}

static trb_av *rand_bytes_av(trb_type t) {
  char buf[64];
  size_t n = rnd(4) == 0 ? 0 : rnd(sizeof buf);
  rand_bytes(buf, n);
  return t == TRB_T_S ? trb_av_new_s(buf, n) : trb_av_new_b(buf, n);
}

static trb_av *rand_tree(int depth) {
  int kinds = depth >= TRB_MAX_DEPTH ? 5 : 10;
  trb_type t = (trb_type)(1 + rnd((uint64_t)kinds));
  if (depth >= TRB_MAX_DEPTH && t > TRB_T_NULL) t = TRB_T_S;
  /* keep trees small: containers get rarer with depth */
  if ((t == TRB_T_M || t == TRB_T_L) && rnd((uint64_t)depth + 2) > 1) t = TRB_T_N;
  trb_av *v = NULL;
  switch (t) {
    case TRB_T_S:
    case TRB_T_B: v = rand_bytes_av(t); break;
    case TRB_T_N: v = rand_number(); break;
    case TRB_T_BOOL: v = trb_av_new_bool((int)rnd(2)); break;
    case TRB_T_NULL: v = trb_av_new_null(); break;
    case TRB_T_M: {
      v = trb_av_new_m();
      size_t n = rnd(8);
      for (size_t i = 0; i < n; i++) {
        char name[16];
        size_t nlen = 1 + rnd(sizeof name - 1);
        rand_bytes(name, nlen);
        trb_av *c = rand_tree(depth + 1);
        assert_int_equal(trb_av_m_set(v, name, nlen, c), TRB_OK);
      }
      break;
    }
    case TRB_T_L: {
      v = trb_av_new_l();
      size_t n = rnd(8);
      for (size_t i = 0; i < n; i++) assert_int_equal(trb_av_l_append(v, rand_tree(depth + 1)), TRB_OK);
      break;
    }
    default: {
      v = trb_av_new_set(t);
      size_t n = 1 + rnd(6);
      for (size_t i = 0; i < n; i++) {
        trb_av *e = t == TRB_T_NS ? rand_number() : rand_bytes_av(t == TRB_T_SS ? TRB_T_S : TRB_T_B);
        assert_int_equal(trb_av_l_append(v, e), TRB_OK);
      }
      break;
    }
  }
  assert_non_null(v);
  return v;
}

static trb_av *rand_item(void) {
  trb_av *m = trb_av_new_m();
  size_t n = 1 + rnd(12);
  for (size_t i = 0; i < n; i++) {
    char name[24];
    int len = snprintf(name, sizeof name, "attr%zu", i);
    assert_int_equal(trb_av_m_set(m, name, (size_t)len, rand_tree(1)), TRB_OK);
  }
  return m;
}

static void encode(const trb_av *v, trb_buf *b) {
  trb_buf_init(b, 0);
  assert_int_equal(trb_av_encode(v, b), TRB_OK);
}

/* Decodes p; if accepted, the value must re-encode to exactly p. */
static trb_err check_decode(const unsigned char *p, size_t len) {
  trb_av *v = NULL;
  trb_err rc = trb_av_decode(p, len, &v);
  if (rc == TRB_OK) {
    trb_buf b;
    encode(v, &b);
    assert_int_equal(b.len, len);
    assert_memory_equal(b.p, p, len);
    trb_buf_fini(&b);
    trb_av_destroy(v);
  } else {
    assert_true(rc == TRB_ECORRUPT || rc == TRB_EVERSION);
  }
  return rc;
}

/* ---- round trips ---- */

static void test_roundtrip_random(void **state) {
  (void)state;
  rng = trb_test_seed();
  for (int iter = 0; iter < 2000; iter++) {
    trb_av *v = iter % 2 ? rand_item() : rand_tree(0);
    trb_buf b;
    encode(v, &b);
    trb_av *w = NULL;
    assert_int_equal(trb_av_decode(b.p, b.len, &w), TRB_OK);
    assert_true(trb_av_equal(v, w));
    /* same entry order, so the same bytes again */
    trb_buf b2;
    encode(w, &b2);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.p, b2.p, b.len);
    /* a copy encodes identically too */
    trb_av *c = trb_av_copy(w);
    trb_buf b3;
    encode(c, &b3);
    assert_memory_equal(b.p, b3.p, b.len);
    trb_buf_fini(&b);
    trb_buf_fini(&b2);
    trb_buf_fini(&b3);
    trb_av_destroy(v);
    trb_av_destroy(w);
    trb_av_destroy(c);
  }
}

static void test_roundtrip_large(void **state) {
  (void)state;
  /* many attributes, a long string, a big set: lengths need multi-byte varints */
  trb_av *m = trb_av_new_m();
  for (int i = 0; i < 1000; i++) {
    char name[16];
    int n = snprintf(name, sizeof name, "a%d", i);
    assert_int_equal(trb_av_m_set(m, name, (size_t)n, trb_av_new_bool(i & 1)), TRB_OK);
  }
  char *big = malloc(300000);
  memset(big, 'x', 300000);
  assert_int_equal(trb_av_m_set(m, "big", 3, trb_av_new_s(big, 300000)), TRB_OK);
  trb_av *ns = trb_av_new_set(TRB_T_NS);
  for (int i = 0; i < 5000; i++) {
    trb_dec d;
    trb_dec_from_i64(i * 37 - 90000, &d);
    assert_int_equal(trb_av_l_append(ns, trb_av_new_n(&d)), TRB_OK);
  }
  assert_int_equal(trb_av_m_set(m, "ns", 2, ns), TRB_OK);
  trb_buf b;
  encode(m, &b);
  trb_av *w = NULL;
  assert_int_equal(trb_av_decode(b.p, b.len, &w), TRB_OK);
  assert_true(trb_av_equal(m, w));
  assert_int_equal(w->u.m.n, 1002);
  assert_string_equal(w->u.m.e[999].name, "a999");
  /* the decoded tree grows like any other */
  assert_int_equal(trb_av_m_set(w, "new", 3, trb_av_new_null()), TRB_OK);
  assert_int_equal(trb_av_l_append(trb_av_m_get(w, "ns", 2), trb_av_new_n(&(trb_dec){0})), TRB_OK);
  trb_buf_fini(&b);
  trb_av_destroy(m);
  trb_av_destroy(w);
  free(big);
}

static void test_golden_bytes(void **state) {
  (void)state;
  trb_av *m = trb_av_new_m();
  assert_int_equal(trb_av_m_set(m, "a", 1, trb_av_new_s("hi", 2)), TRB_OK);
  trb_av *l = trb_av_new_l();
  assert_int_equal(trb_av_l_append(l, trb_av_new_bool(1)), TRB_OK);
  assert_int_equal(trb_av_l_append(l, trb_av_new_null()), TRB_OK);
  assert_int_equal(trb_av_l_append(l, trb_av_new_b("\xff", 1)), TRB_OK);
  assert_int_equal(trb_av_m_set(m, "b", 1, l), TRB_OK);
  trb_av *ss = trb_av_new_set(TRB_T_SS);
  assert_int_equal(trb_av_l_append(ss, trb_av_new_s("", 0)), TRB_OK);
  assert_int_equal(trb_av_m_set(m, "c", 1, ss), TRB_OK);
  static const unsigned char want[] = {
      0xA1,                                      /* header: magic A, version 1 */
      0x06, 0x03,                                /* M, 3 entries */
      0x01, 'a', 0x01, 0x02, 'h', 'i',           /* "a": S "hi" */
      0x01, 'b', 0x07, 0x03,                     /* "b": L of 3 */
      0x04, 0x01, 0x05, 0x03, 0x01, 0xff,        /* BOOL true, NULL, B ff */
      0x01, 'c', 0x08, 0x01, 0x00,               /* "c": SS [""] */
  };
  trb_buf b;
  encode(m, &b);
  assert_int_equal(b.len, sizeof want);
  assert_memory_equal(b.p, want, sizeof want);
  /* appends after what the buffer holds */
  trb_av *t = trb_av_new_bool(0);
  assert_int_equal(trb_av_encode(t, &b), TRB_OK);
  assert_int_equal(b.len, sizeof want + 3);
  assert_memory_equal(b.p + sizeof want, "\xA1\x04\x00", 3);
  trb_buf_fini(&b);
  trb_av_destroy(t);
  trb_av_destroy(m);
}

/* ---- malformed input ---- */

static void expect_corrupt(const void *p, size_t len) {
  trb_av *v = (trb_av *)0x1;
  assert_int_equal(trb_av_decode(p, len, &v), TRB_ECORRUPT);
  assert_ptr_equal(v, (trb_av *)0x1);
}

static void test_hand_made_bad_inputs(void **state) {
  (void)state;
  trb_av *v = NULL;
  expect_corrupt("", 0);
  expect_corrupt("\xA1", 1);                   /* header only */
  expect_corrupt("\x00\x05", 2);               /* bad magic */
  expect_corrupt("\x05", 1);                   /* a bare tag, no header */
  assert_int_equal(trb_av_decode("\xA2\x05", 2, &v), TRB_EVERSION);
  assert_int_equal(trb_av_decode("\xA1\x05", 2, &v), TRB_OK); /* NULL */
  trb_av_destroy(v);
  expect_corrupt("\xA1\x05\x05", 3);           /* trailing byte */
  expect_corrupt("\xA1\x00", 2);               /* unknown tags */
  expect_corrupt("\xA1\x0b", 2);
  expect_corrupt("\xA1\xff", 2);
  expect_corrupt("\xA1\x04\x02", 3);           /* BOOL 2 */
  expect_corrupt("\xA1\x01\x05" "abcd", 7);    /* S longer than the input */
  expect_corrupt("\xA1\x01\x81\x00", 4);       /* overlong varint (1 as 2 bytes) */
  /* a huge count with nothing behind it is refused before allocating */
  expect_corrupt("\xA1\x07\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 11);
  expect_corrupt("\xA1\x06\x80\x80\x80\x80\x10", 7);
  expect_corrupt("\xA1\x08\x05\x00\x00\x00", 6);
  /* varint beyond 64 bits */
  expect_corrupt("\xA1\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12);
  /* map entry with a name running past the end */
  expect_corrupt("\xA1\x06\x01\x09" "ab" "\x05", 7);
  /* a set element of the wrong shape: NS with a bad number byte */
  expect_corrupt("\xA1\x09\x01\xff", 4);
}

static void test_depth_limit(void **state) {
  (void)state;
  /* item M (depth 0) + 32 nested L: accepted; one more: refused */
  unsigned char buf[128];
  for (int extra = 32; extra <= 33; extra++) {
    size_t off = 0;
    buf[off++] = 0xA1;
    buf[off++] = TRB_T_M;
    buf[off++] = 1;
    buf[off++] = 1;
    buf[off++] = 'k';
    for (int i = 0; i < extra; i++) {
      buf[off++] = TRB_T_L;
      buf[off++] = i == extra - 1 ? 0 : 1;
    }
    trb_av *v = NULL;
    trb_err rc = trb_av_decode(buf, off, &v);
    if (extra == 32) {
      assert_int_equal(rc, TRB_OK);
      assert_int_equal(check_decode(buf, off), TRB_OK); /* re-encodes to the same bytes */
      trb_status st;
      trb_status_init(&st);
      assert_int_equal(trb_item_validate(v, &st), TRB_OK);
      trb_av_destroy(v);
    } else {
      assert_int_equal(rc, TRB_ECORRUPT);
    }
  }
  /* the encoder refuses what the decoder would refuse */
  trb_av *v = trb_av_new_l();
  for (int i = 0; i < 33; i++) {
    trb_av *l = trb_av_new_l();
    assert_int_equal(trb_av_l_append(l, v), TRB_OK);
    v = l;
  }
  trb_buf b;
  trb_buf_init(&b, 0);
  assert_int_equal(trb_buf_append(&b, "xy", 2), TRB_OK);
  assert_int_equal(trb_av_encode(v, &b), TRB_EINVAL);
  assert_int_equal(b.len, 2); /* nothing half-written */
  trb_buf_fini(&b);
  trb_av_destroy(v);
}

static void test_truncation_and_extension(void **state) {
  (void)state;
  rng = trb_test_seed() ^ 0x5eed;
  for (int iter = 0; iter < 200; iter++) {
    trb_av *v = rand_item();
    trb_buf b;
    encode(v, &b);
    /* every proper prefix is corrupt: the encoding is self-delimiting */
    for (size_t n = 0; n < b.len; n++) {
      unsigned char *copy = malloc(n ? n : 1); /* exact size: ASan sees overreads */
      memcpy(copy, b.p, n);
      expect_corrupt(copy, n);
      free(copy);
    }
    /* so is every extension */
    assert_int_equal(trb_buf_put_u8(&b, (uint8_t)rnd(256)), TRB_OK);
    expect_corrupt(b.p, b.len);
    trb_buf_fini(&b);
    trb_av_destroy(v);
  }
}

static void test_mutations(void **state) {
  (void)state;
  rng = trb_test_seed() ^ 0xf11b;
  size_t total = 0, corrupt = 0, accepted = 0;
  for (int iter = 0; iter < 300; iter++) {
    trb_av *v = rand_item();
    trb_buf b;
    encode(v, &b);
    unsigned char *m = malloc(b.len);
    for (int k = 0; k < 20; k++) {
      memcpy(m, b.p, b.len);
      int flips = 1 + (int)rnd(3);
      for (int f = 0; f < flips; f++) {
        /* favour the structural front of the encoding half of the time */
        size_t pos = rnd(2) ? rnd(b.len < 16 ? b.len : 16) : rnd(b.len);
        if (rnd(3) == 0)
          m[pos] = (unsigned char)rnd(256);
        else
          m[pos] ^= (unsigned char)(1u << rnd(8));
      }
      trb_err rc = check_decode(m, b.len);
      total++;
      if (rc == TRB_ECORRUPT) corrupt++;
      if (rc == TRB_OK) accepted++;
    }
    free(m);
    trb_buf_fini(&b);
    trb_av_destroy(v);
  }
  fprintf(stderr, "# mutations: %zu total, %zu corrupt, %zu accepted\n", total, corrupt, accepted);
  assert_int_equal(total, 6000);
  /* Flips in string or name bytes are legitimately still valid; most
   * structural damage must be caught. */
  assert_true(corrupt > total / 3);
}

static void test_random_garbage(void **state) {
  (void)state;
  rng = trb_test_seed() ^ 0x6a7ba6e;
  unsigned char buf[64];
  size_t accepted = 0;
  for (int iter = 0; iter < 20000; iter++) {
    size_t n = rnd(sizeof buf);
    for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)rnd(256);
    if (n && rnd(2)) buf[0] = 0xA1; /* get past the header half of the time */
    unsigned char *copy = malloc(n ? n : 1);
    memcpy(copy, buf, n);
    if (check_decode(copy, n) == TRB_OK) accepted++;
    free(copy);
  }
  fprintf(stderr, "# garbage: %zu of 20000 accepted\n", accepted);
  assert_true(accepted < 20000 / 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_random),
      cmocka_unit_test(test_roundtrip_large),
      cmocka_unit_test(test_golden_bytes),
      cmocka_unit_test(test_hand_made_bad_inputs),
      cmocka_unit_test(test_depth_limit),
      cmocka_unit_test(test_truncation_and_extension),
      cmocka_unit_test(test_mutations),
      cmocka_unit_test(test_random_garbage),
  };
  return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
