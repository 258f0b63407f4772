/* test_keyenc.c -- engine/keyenc.c: ordenc order for S/B/N, store-key
 * layout and partition prefixes, decode round trips and corruption, and
 * DynamoDB's key validation messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "engine/keyenc.h"
#include "tests/unit/testutil.h"

static uint64_t rng;
static int rnd(int lo, int hi) { return lo + (int)(trb_test_rand(&rng) % (uint64_t)(hi - lo + 1)); }
static int sgn(int v) { return v < 0 ? -1 : v > 0 ? 1 : 0; }

static int buf_cmp(const unsigned char *a, size_t al, const unsigned char *b, size_t bl) {
  size_t n = al < bl ? al : bl;
  int c = n ? memcmp(a, b, n) : 0;
  if (c) return sgn(c);
  return al < bl ? -1 : al > bl ? 1 : 0;
}

/* Reference: unsigned bytewise, shorter prefix first (written here, not
 * taken from value.c). */
static int ref_bytes_cmp(const unsigned char *a, size_t al, const unsigned char *b, size_t bl) {
  for (size_t i = 0; i < al && i < bl; i++)
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  return al < bl ? -1 : al > bl ? 1 : 0;
}

static trb_av *num(const char *s) {
  trb_dec d;
  assert_int_equal(trb_dec_parse(s, strlen(s), &d, NULL), TRB_OK);
  trb_av *v = trb_av_new_n(&d);
  assert_non_null(v);
  return v;
}
static trb_av *str(const char *s) { return trb_av_new_s(s, strlen(s)); }

static void put(trb_av *m, const char *name, trb_av *v) {
  assert_non_null(v);
  assert_int_equal(trb_av_m_set(m, name, strlen(name), v), TRB_OK);
}

static trb_keyschema schema(const char *pk, trb_type pt, const char *sk, trb_type st) {
  trb_keyschema ks;
  memset(&ks, 0, sizeof ks);
  snprintf(ks.pk_name, sizeof ks.pk_name, "%s", pk);
  ks.pk_type = pt;
  if (sk) {
    ks.has_sk = 1;
    snprintf(ks.sk_name, sizeof ks.sk_name, "%s", sk);
    ks.sk_type = st;
  }
  return ks;
}

/* Random bytes from an alphabet rich in 0x00, 0xFF and near-terminator
 * values, so escapes, prefixes and embedded NULs all occur. */
static size_t rand_bytes(unsigned char *p, size_t max) {
  static const unsigned char alpha[] = {0x00, 0x00, 0x01, 0x02, 0xFE, 0xFF, 'a', 'b'};
  size_t n = (size_t)rnd(0, (int)max);
  for (size_t i = 0; i < n; i++) p[i] = alpha[rnd(0, (int)sizeof alpha - 1)];
  return n;
}

static void random_num_text(char *out, size_t cap) {
  char digs[40];
  int nd = rnd(1, rnd(0, 1) ? 3 : 38);
  for (int i = 0; i < nd; i++) digs[i] = (char)('0' + rnd(0, 9));
  int e = rnd(0, 3) ? rnd(-5, 5) : rnd(-130, 88);
  snprintf(out, cap, "%s%.*se%d", rnd(0, 1) ? "-" : "", nd, digs, e);
}

static void test_ordenc_bytes_random(void **state) {
  (void)state;
  rng = trb_test_seed();
  trb_buf ea, eb;
  trb_buf_init(&ea, 0);
  trb_buf_init(&eb, 0);
  for (int it = 0; it < 20000; it++) {
    unsigned char a[10], b[10];
    size_t al = rand_bytes(a, sizeof a), bl = rand_bytes(b, sizeof b);
    if (rnd(0, 3) == 0) { /* b = a's prefix or extension */
      memcpy(b, a, al);
      bl = al;
      if (rnd(0, 1) && bl > 0) bl = (size_t)rnd(0, (int)bl);
      else
        while (bl < sizeof b && rnd(0, 1)) b[bl++] = (unsigned char)(rnd(0, 1) ? 0 : 0xFF);
    }
    int is_b = rnd(0, 1);
    trb_av *va = is_b ? trb_av_new_b(a, al) : trb_av_new_s((const char *)a, al);
    trb_av *vb = is_b ? trb_av_new_b(b, bl) : trb_av_new_s((const char *)b, bl);
    assert_non_null(va);
    assert_non_null(vb);
    trb_buf_reset(&ea);
    trb_buf_reset(&eb);
    assert_int_equal(trb_key_encode_value(va, &ea), TRB_OK);
    assert_int_equal(trb_key_encode_value(vb, &eb), TRB_OK);
    int want = ref_bytes_cmp(a, al, b, bl);
    assert_int_equal(buf_cmp(ea.p, ea.len, eb.p, eb.len), want);
    assert_int_equal(sgn(trb_av_cmp_scalar(va, vb)), want);
    trb_av_destroy(va);
    trb_av_destroy(vb);
  }
  trb_buf_fini(&ea);
  trb_buf_fini(&eb);
}

static void test_ordenc_bytes_layout(void **state) {
  (void)state;
  trb_buf b;
  trb_buf_init(&b, 0);
  trb_av *v = trb_av_new_s("a\0b", 3);
  assert_int_equal(trb_key_encode_value(v, &b), TRB_OK);
  static const unsigned char want[] = {'a', 0x00, 0xFF, 'b', 0x00, 0x00};
  assert_int_equal(b.len, sizeof want);
  assert_memory_equal(b.p, want, sizeof want);
  trb_av_destroy(v);
  trb_buf_reset(&b);
  v = trb_av_new_b("", 0);
  assert_int_equal(trb_key_encode_value(v, &b), TRB_OK);
  assert_int_equal(b.len, 2);
  assert_true(b.p[0] == 0 && b.p[1] == 0);
  trb_av_destroy(v);
  /* Non-key types are refused and leave the buffer alone. */
  trb_buf_reset(&b);
  v = trb_av_new_bool(1);
  assert_int_equal(trb_key_encode_value(v, &b), TRB_EINVAL);
  assert_int_equal(b.len, 0);
  trb_av_destroy(v);
  v = trb_av_new_m();
  assert_int_equal(trb_key_encode_value(v, &b), TRB_EINVAL);
  trb_av_destroy(v);
  trb_buf_fini(&b);
}

static void test_ordenc_num_random(void **state) {
  (void)state;
  rng = trb_test_seed() ^ 0x5555;
  trb_buf ea, eb;
  trb_buf_init(&ea, 0);
  trb_buf_init(&eb, 0);
  for (int it = 0; it < 20000; it++) {
    char ta[64], tb[64];
    random_num_text(ta, sizeof ta);
    if (rnd(0, 4) == 0) snprintf(tb, sizeof tb, "%s", ta);
    else random_num_text(tb, sizeof tb);
    trb_av *va = num(ta), *vb = num(tb);
    trb_buf_reset(&ea);
    trb_buf_reset(&eb);
    assert_int_equal(trb_key_encode_value(va, &ea), TRB_OK);
    assert_int_equal(trb_key_encode_value(vb, &eb), TRB_OK);
    int want = trb_dec_cmp(&va->u.n, &vb->u.n);
    if (buf_cmp(ea.p, ea.len, eb.p, eb.len) != want) fprintf(stderr, "%s vs %s\n", ta, tb);
    assert_int_equal(buf_cmp(ea.p, ea.len, eb.p, eb.len), want);
    trb_av_destroy(va);
    trb_av_destroy(vb);
  }
  trb_buf_fini(&ea);
  trb_buf_fini(&eb);
}

/* ---------------------------------------------------------- store keys */

typedef struct {
  unsigned char *p;
  size_t len;
  trb_av *sk;
} enc_key;

static int enc_key_cmp(const void *x, const void *y) {
  const enc_key *a = x, *b = y;
  return buf_cmp(a->p, a->len, b->p, b->len);
}

static trb_av *rand_scalar(trb_type t) {
  if (t == TRB_T_N) {
    char text[64];
    random_num_text(text, sizeof text);
    return num(text);
  }
  unsigned char p[12];
  size_t n = rand_bytes(p, sizeof p);
  if (n == 0) p[n++] = 'x';
  return t == TRB_T_S ? trb_av_new_s((const char *)p, n) : trb_av_new_b(p, n);
}

static void test_partition_order(void **state) {
  (void)state;
  rng = trb_test_seed() ^ 0x777;
  static const trb_type types[] = {TRB_T_S, TRB_T_N, TRB_T_B};
  for (int ti = 0; ti < 3; ti++)
    for (int tj = 0; tj < 3; tj++) {
      trb_keyschema ks = schema("pk", types[ti], "sk", types[tj]);
      trb_av *pk = rand_scalar(types[ti]);
      trb_buf pre;
      trb_buf_init(&pre, 0);
      assert_int_equal(trb_key_encode_partition(pk, &pre), TRB_OK);
      /* First 4 bytes: big-endian top half of XXH3 over ordenc(pk). */
      uint32_t h = trb_key_hash(pk);
      assert_int_equal(pre.p[0], h >> 24);
      assert_int_equal(pre.p[3], h & 0xFF);
      assert_int_equal(h, (uint32_t)(XXH3_64bits(pre.p + 4, pre.len - 4) >> 32));
      enum { N = 200 };
      enc_key keys[N];
      for (int i = 0; i < N; i++) {
        trb_av *item = trb_av_new_m();
        assert_non_null(item);
        put(item, "pk", trb_av_copy(pk));
        keys[i].sk = rand_scalar(types[tj]);
        put(item, "sk", trb_av_copy(keys[i].sk));
        put(item, "other", str("zzz"));
        trb_buf b;
        trb_buf_init(&b, 0);
        assert_int_equal(trb_key_encode(&ks, item, &b), TRB_OK);
        assert_true(b.len > pre.len);
        assert_memory_equal(b.p, pre.p, pre.len);
        keys[i].p = trb_buf_steal(&b, &keys[i].len);
        /* Round trip. */
        trb_av *back = NULL;
        assert_int_equal(trb_key_decode(&ks, keys[i].p, keys[i].len, &back), TRB_OK);
        trb_av *want = trb_key_from_item(&ks, item);
        assert_non_null(want);
        assert_true(trb_av_equal(back, want));
        assert_int_equal(back->u.m.n, 2);
        trb_av_destroy(back);
        trb_av_destroy(want);
        trb_av_destroy(item);
      }
      qsort(keys, N, sizeof keys[0], enc_key_cmp);
      for (int i = 0; i + 1 < N; i++) {
        int c = trb_av_cmp_scalar(keys[i].sk, keys[i + 1].sk);
        assert_true(c <= 0);
        /* Equal store keys iff equal sort keys. */
        assert_int_equal(c == 0, enc_key_cmp(&keys[i], &keys[i + 1]) == 0);
      }
      for (int i = 0; i < N; i++) {
        free(keys[i].p);
        trb_av_destroy(keys[i].sk);
      }
      trb_buf_fini(&pre);
      trb_av_destroy(pk);
    }
}

static void test_roundtrip_all_types(void **state) {
  (void)state;
  rng = trb_test_seed() ^ 0x999;
  static const trb_type types[] = {TRB_T_S, TRB_T_N, TRB_T_B};
  for (int ti = 0; ti < 3; ti++)
    for (int tj = -1; tj < 3; tj++)
      for (int it = 0; it < 100; it++) {
        trb_keyschema ks =
            schema("partition key", types[ti], tj < 0 ? NULL : "s", tj < 0 ? TRB_T_S : types[tj]);
        trb_av *key = trb_av_new_m();
        put(key, "partition key", rand_scalar(types[ti]));
        if (tj >= 0) put(key, "s", rand_scalar(types[tj]));
        assert_int_equal(trb_key_check_key(&ks, key, NULL), TRB_OK);
        trb_buf b;
        trb_buf_init(&b, 0);
        assert_int_equal(trb_buf_append(&b, "junk", 4), TRB_OK); /* appends */
        assert_int_equal(trb_key_encode(&ks, key, &b), TRB_OK);
        assert_memory_equal(b.p, "junk", 4);
        trb_av *back = NULL;
        assert_int_equal(trb_key_decode(&ks, b.p + 4, b.len - 4, &back), TRB_OK);
        assert_true(trb_av_equal(back, key));
        trb_av_destroy(back);
        /* Every truncation and any trailing byte is corruption. */
        for (size_t n = 0; n < b.len - 4; n++) {
          back = (trb_av *)1;
          assert_int_equal(trb_key_decode(&ks, b.p + 4, n, &back), TRB_ECORRUPT);
          assert_null(back);
        }
        assert_int_equal(trb_buf_put_u8(&b, 0), TRB_OK);
        assert_int_equal(trb_key_decode(&ks, b.p + 4, b.len - 4, &back), TRB_ECORRUPT);
        b.len--;
        /* A wrong hash is corruption. */
        b.p[4 + rnd(0, 3)] ^= (unsigned char)(1u << rnd(0, 7));
        assert_int_equal(trb_key_decode(&ks, b.p + 4, b.len - 4, &back), TRB_ECORRUPT);
        trb_buf_fini(&b);
        trb_av_destroy(key);
      }
}

static void test_decode_garbage(void **state) {
  (void)state;
  rng = trb_test_seed() ^ 0x31337;
  trb_keyschema ks = schema("p", TRB_T_S, "s", TRB_T_B);
  /* Bad escape after a NUL. */
  trb_av *pk = str("a");
  trb_buf b;
  trb_buf_init(&b, 0);
  assert_int_equal(trb_key_encode_partition(pk, &b), TRB_OK);
  static const unsigned char bad_sk[] = {'x', 0x00, 0x01, 0x00, 0x00};
  trb_buf_append(&b, bad_sk, sizeof bad_sk);
  trb_av *out = NULL;
  assert_int_equal(trb_key_decode(&ks, b.p, b.len, &out), TRB_ECORRUPT);
  assert_null(out);
  /* Random bytes never crash and mostly fail; whatever decodes re-encodes
   * to the same bytes. */
  int accepted = 0;
  for (int it = 0; it < 20000; it++) {
    unsigned char p[24];
    size_t n = rand_bytes(p, sizeof p);
    if (n >= 4 && rnd(0, 1)) { /* sometimes give it a plausible hash */
      size_t e = 4;
      while (e + 1 < n && !(p[e] == 0 && p[e + 1] == 0)) e++;
      uint32_t h = (uint32_t)(XXH3_64bits(p + 4, e + 2 <= n ? e + 2 - 4 : n - 4) >> 32);
      p[0] = (unsigned char)(h >> 24);
      p[1] = (unsigned char)(h >> 16);
      p[2] = (unsigned char)(h >> 8);
      p[3] = (unsigned char)h;
    }
    trb_err rc = trb_key_decode(&ks, p, n, &out);
    if (rc == TRB_OK) {
      trb_buf re;
      trb_buf_init(&re, 0);
      assert_int_equal(trb_key_encode(&ks, out, &re), TRB_OK);
      assert_int_equal(re.len, n);
      assert_memory_equal(re.p, p, n);
      trb_buf_fini(&re);
      trb_av_destroy(out);
      accepted++;
    } else {
      assert_int_equal(rc, TRB_ECORRUPT);
      assert_null(out);
    }
  }
  fprintf(stderr, "# %d random store keys decoded\n", accepted);
  assert_true(accepted > 0);
  trb_buf_fini(&b);
  trb_av_destroy(pk);
}

/* ----------------------------------------------------------- validation */

static void expect_item_err(const trb_keyschema *ks, trb_av *item, const char *msg) {
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_key_check_item(ks, item, &st), TRB_EINVAL);
  assert_string_equal(st.msg, msg);
}

static void expect_key_err(const trb_keyschema *ks, trb_av *key, const char *msg) {
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_key_check_key(ks, key, &st), TRB_EINVAL);
  assert_string_equal(st.msg, msg);
}

static trb_av *sized_s(size_t n) {
  char *p = malloc(n);
  assert_non_null(p);
  memset(p, 'k', n);
  trb_av *v = trb_av_new_s(p, n);
  free(p);
  return v;
}

static void test_check_item(void **state) {
  (void)state;
  trb_keyschema ks = schema("id", TRB_T_S, "ts", TRB_T_N);
  trb_av *item = trb_av_new_m();
  put(item, "other", str("x"));
  expect_item_err(&ks, item, "One or more parameter values were invalid: Missing the key id in the item");
  put(item, "id", num("5"));
  expect_item_err(&ks, item,
                  "One or more parameter values were invalid: Type mismatch for key id expected: S actual: N");
  put(item, "id", str(""));
  expect_item_err(&ks, item,
                  "One or more parameter values are not valid. The AttributeValue for a key attribute "
                  "cannot contain an empty string value. Key: id");
  put(item, "id", sized_s(2049));
  expect_item_err(&ks, item,
                  "One or more parameter values were invalid: Size of hashkey has exceeded the "
                  "maximum size limit of2048 bytes");
  put(item, "id", sized_s(2048));
  expect_item_err(&ks, item, "One or more parameter values were invalid: Missing the key ts in the item");
  put(item, "ts", str("1"));
  expect_item_err(&ks, item,
                  "One or more parameter values were invalid: Type mismatch for key ts expected: N actual: S");
  put(item, "ts", num("-1e125"));
  assert_int_equal(trb_key_check_item(&ks, item, NULL), TRB_OK);
  /* Extra attributes are fine in an item; the key view keeps only keys. */
  trb_av *key = trb_key_from_item(&ks, item);
  assert_non_null(key);
  assert_int_equal(key->u.m.n, 2);
  assert_int_equal(trb_key_check_key(&ks, key, NULL), TRB_OK);
  trb_av_destroy(key);
  /* Sort key sizes: 1024 fine, 1025 rejected, empty rejected. */
  trb_keyschema ks2 = schema("id", TRB_T_S, "r", TRB_T_B);
  trb_av_m_remove(item, "ts", 2);
  trb_av *b = trb_av_new_b("", 0);
  put(item, "r", b);
  expect_item_err(&ks2, item,
                  "One or more parameter values are not valid. The AttributeValue for a key attribute "
                  "cannot contain an empty string value. Key: r");
  char big[1025];
  memset(big, 7, sizeof big);
  put(item, "r", trb_av_new_b(big, 1025));
  expect_item_err(&ks2, item,
                  "One or more parameter values were invalid: Aggregated size of all range keys has "
                  "exceeded the size limit of 1024 bytes");
  put(item, "r", trb_av_new_b(big, 1024));
  assert_int_equal(trb_key_check_item(&ks2, item, NULL), TRB_OK);
  /* A 1025-byte partition key is fine (its limit is 2048). */
  put(item, "id", sized_s(1025));
  assert_int_equal(trb_key_check_item(&ks2, item, NULL), TRB_OK);
  /* Binary empty pk. */
  trb_keyschema ks3 = schema("r", TRB_T_B, NULL, TRB_T_S);
  put(item, "r", trb_av_new_b("", 0));
  expect_item_err(&ks3, item,
                  "One or more parameter values are not valid. The AttributeValue for a key attribute "
                  "cannot contain an empty string value. Key: r");
  /* Not a map. */
  trb_av *s = str("x");
  assert_int_equal(trb_key_check_item(&ks3, s, NULL), TRB_EINVAL);
  trb_av_destroy(s);
  trb_av_destroy(item);
}

static void test_check_key(void **state) {
  (void)state;
  static const char *MISMATCH = "The provided key element does not match the schema";
  trb_keyschema ks = schema("id", TRB_T_S, "ts", TRB_T_N);
  trb_keyschema hash_only = schema("id", TRB_T_S, NULL, TRB_T_S);
  trb_av *key = trb_av_new_m();
  expect_key_err(&ks, key, MISMATCH); /* empty */
  put(key, "id", str("a"));
  expect_key_err(&ks, key, MISMATCH); /* missing sk */
  assert_int_equal(trb_key_check_key(&hash_only, key, NULL), TRB_OK);
  put(key, "ts", num("3"));
  assert_int_equal(trb_key_check_key(&ks, key, NULL), TRB_OK);
  expect_key_err(&hash_only, key, MISMATCH); /* extra attribute */
  put(key, "ts", str("3"));
  expect_key_err(&ks, key, MISMATCH); /* wrong sk type */
  put(key, "ts", num("3"));
  put(key, "id", trb_av_new_b("a", 1));
  expect_key_err(&ks, key, MISMATCH); /* wrong pk type */
  put(key, "id", str("a"));
  put(key, "x", str("a"));
  expect_key_err(&ks, key, MISMATCH); /* extra attribute */
  trb_av_m_remove(key, "x", 1);
  trb_av_m_remove(key, "ts", 2);
  put(key, "other", num("3"));
  expect_key_err(&ks, key, MISMATCH); /* right count, wrong name */
  trb_av_m_remove(key, "other", 5);
  put(key, "ts", num("3"));
  put(key, "id", str(""));
  expect_key_err(&ks, key,
                 "One or more parameter values are not valid. The AttributeValue for a key attribute "
                 "cannot contain an empty string value. Key: id");
  put(key, "id", sized_s(2049));
  expect_key_err(&ks, key,
                 "One or more parameter values were invalid: Size of hashkey has exceeded the "
                 "maximum size limit of2048 bytes");
  trb_keyschema ks2 = schema("id", TRB_T_S, "ts", TRB_T_S);
  put(key, "id", str("a"));
  put(key, "ts", sized_s(1025));
  expect_key_err(&ks2, key,
                 "One or more parameter values were invalid: Aggregated size of all range keys has "
                 "exceeded the size limit of 1024 bytes");
  put(key, "ts", sized_s(1024));
  assert_int_equal(trb_key_check_key(&ks2, key, NULL), TRB_OK);
  trb_av_destroy(key);
}

static void test_encode_refuses_missing(void **state) {
  (void)state;
  trb_keyschema ks = schema("id", TRB_T_S, "ts", TRB_T_N);
  trb_av *item = trb_av_new_m();
  put(item, "id", str("a"));
  trb_buf b;
  trb_buf_init(&b, 0);
  trb_buf_append(&b, "xy", 2);
  assert_int_equal(trb_key_encode(&ks, item, &b), TRB_EINVAL); /* no sk */
  assert_int_equal(b.len, 2);
  put(item, "ts", str("1"));
  assert_int_equal(trb_key_encode(&ks, item, &b), TRB_EINVAL); /* wrong type */
  assert_int_equal(b.len, 2);
  trb_av_destroy(item);
  item = trb_av_new_m();
  put(item, "id", str("a"));
  assert_null(trb_key_from_item(&ks, item)); /* missing sk */
  trb_buf_fini(&b);
  trb_av_destroy(item);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ordenc_bytes_random), cmocka_unit_test(test_ordenc_bytes_layout),
      cmocka_unit_test(test_ordenc_num_random),   cmocka_unit_test(test_partition_order),
      cmocka_unit_test(test_roundtrip_all_types), cmocka_unit_test(test_decode_garbage),
      cmocka_unit_test(test_check_item),          cmocka_unit_test(test_check_key),
      cmocka_unit_test(test_encode_refuses_missing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
