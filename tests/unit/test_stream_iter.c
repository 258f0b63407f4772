/*
 * test_stream_iter.c -- shard iterators (api/stream_iter.c): round trips
 * over every shard id length, the AWS shape "<arn>|1|...", tamper-proofing
 * (every one-character substitution, deletion and insertion anywhere in the
 * token is refused; another key is refused; truncations; garbage), the
 * 15-minute expiry and the future-issue limit at their exact edges, and the
 * key file: created 0600 with 32 bytes, reloaded to the same key, a wrong
 * size refused naming the file, and failures of each step of the durable
 * create injected at the syscall seam.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/stream_iter.h"
#include "testutil.h"
#include "util/sysio.h"

#define T0 1440938160000000LL /* 2015-08-30T12:36:00Z */
#define ARN "arn:aws:dynamodb:us-west-2:111122223333:table/TestTable/stream/2015-05-11T21:21:33.291"
#define SHARD "shardId-00000001414562045508-2bac9cd2"

static const char b64u_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static trb_iter_key *key_n(unsigned char base) {
  unsigned char k[TRB_ITER_KEY_LEN];
  for (int i = 0; i < TRB_ITER_KEY_LEN; i++) k[i] = (unsigned char)(base + i);
  trb_iter_key *key = trb_iter_key_from_bytes(k);
  assert_non_null(key);
  return key;
}

static trb_iter mk(const char *arn, const char *shard, uint64_t lsn, int64_t issued) {
  trb_iter it;
  memset(&it, 0, sizeof it);
  assert_true(strlen(arn) < sizeof it.stream_arn);
  assert_true(strlen(shard) < sizeof it.shard_id);
  strcpy(it.stream_arn, arn);
  strcpy(it.shard_id, shard);
  it.next_lsn = lsn;
  it.issued_us = issued;
  return it;
}

static void encode_ok(const trb_iter_key *k, const trb_iter *it, char *out) {
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_iter_encode(k, it, out, &st);
  if (rc) fail_msg("encode: %s: %s", trb_err_name(rc), trb_status_msg(&st));
  assert_true(strlen(out) <= TRB_ITER_MAX);
}

static void assert_same(const trb_iter *a, const trb_iter *b) {
  assert_string_equal(a->stream_arn, b->stream_arn);
  assert_string_equal(a->shard_id, b->shard_id);
  assert_true(a->next_lsn == b->next_lsn);
  assert_true(a->issued_us == b->issued_us);
}

static int is_zero(const trb_iter *it) {
  static const trb_iter z;
  return !memcmp(it, &z, sizeof z);
}

/* Decodes text expecting "Invalid ShardIterator" and a zeroed *out. */
static void assert_invalid_at(const trb_iter_key *k, const char *text, int64_t now,
                              const char *what, size_t pos, int c) {
  trb_status st;
  trb_status_init(&st);
  trb_iter out;
  memset(&out, 0xab, sizeof out);
  trb_err rc = trb_iter_decode(k, text, now, &out, &st);
  if (rc != TRB_EINVAL)
    fail_msg("%s at %zu (char %d): got %s, want TRB_EINVAL", what, pos, c, trb_err_name(rc));
  assert_string_equal(trb_status_msg(&st), "Invalid ShardIterator");
  assert_true(is_zero(&out));
}

static void assert_invalid(const trb_iter_key *k, const char *text, int64_t now) {
  assert_invalid_at(k, text, now, "token", 0, 0);
}

/* A shard id of n characters. */
static void shard_of_len(char *buf, size_t n) {
  for (size_t i = 0; i < n; i++) buf[i] = (char)('a' + i % 26);
  buf[n] = 0;
}

/* ---- encoding ---- */

static void test_round_trip(void **state) {
  (void)state;
  trb_iter_key *k = key_n(1);
  static const uint64_t lsns[] = {0, 1, 0x0102030405060708ULL, UINT64_MAX};
  static const int64_t times[] = {T0, 0, -1, INT64_MAX, INT64_MIN};
  char long_arn[TRB_ITER_ARN_SIZE];
  memset(long_arn, 'x', sizeof long_arn - 1);
  long_arn[sizeof long_arn - 1] = 0;
  const char *arns[] = {ARN, "a", "arn|with|bars|1|", long_arn};
  char shard[TRB_ITER_SHARD_SIZE];
  char text[TRB_ITER_MAX + 1], again[TRB_ITER_MAX + 1];
  for (size_t a = 0; a < sizeof arns / sizeof *arns; a++) {
    for (size_t n = 1; n < TRB_ITER_SHARD_SIZE; n++) {
      shard_of_len(shard, n);
      for (size_t l = 0; l < sizeof lsns / sizeof *lsns; l++) {
        for (size_t t = 0; t < sizeof times / sizeof *times; t++) {
          trb_iter it = mk(arns[a], shard, lsns[l], times[t]), out;
          encode_ok(k, &it, text);
          encode_ok(k, &it, again);
          assert_string_equal(text, again); /* deterministic */
          trb_status st;
          trb_status_init(&st);
          trb_err rc = trb_iter_decode(k, text, times[t], &out, &st);
          if (rc) fail_msg("decode %s: %s", trb_err_name(rc), trb_status_msg(&st));
          assert_same(&it, &out);
        }
      }
    }
  }
  /* The longest possible iterator still fits. */
  shard_of_len(shard, TRB_ITER_SHARD_SIZE - 1);
  trb_iter it = mk(long_arn, shard, UINT64_MAX, T0);
  encode_ok(k, &it, text);
  assert_int_equal(strlen(text), 1274);
  trb_iter_key_destroy(k);
}

static void test_shape(void **state) {
  (void)state;
  trb_iter_key *k = key_n(1);
  trb_iter it = mk(ARN, SHARD, 42, T0);
  char text[TRB_ITER_MAX + 1];
  encode_ok(k, &it, text);
  size_t alen = strlen(ARN);
  assert_memory_equal(text, ARN, alen);
  assert_memory_equal(text + alen, "|1|", 3);
  const char *blob = text + alen + 3;
  assert_true(strlen(blob) > 0);
  assert_int_equal(strspn(blob, b64u_alpha), strlen(blob));
  trb_iter_key_destroy(k);
}

static void test_encode_invalid(void **state) {
  (void)state;
  trb_iter_key *k = key_n(1);
  char text[TRB_ITER_MAX + 1];
  trb_status st;
  trb_iter it = mk(ARN, SHARD, 1, T0);

  memset(it.stream_arn, 'a', sizeof it.stream_arn); /* no NUL: longer than fits */
  trb_status_init(&st);
  text[0] = 'x';
  assert_int_equal(trb_iter_encode(k, &it, text, &st), TRB_EINVAL);
  assert_int_equal(text[0], 0);
  assert_non_null(strstr(trb_status_msg(&st), "ARN"));

  it = mk("", SHARD, 1, T0);
  assert_int_equal(trb_iter_encode(k, &it, text, NULL), TRB_EINVAL);

  it = mk(ARN, SHARD, 1, T0);
  memset(it.shard_id, 's', sizeof it.shard_id);
  trb_status_init(&st);
  assert_int_equal(trb_iter_encode(k, &it, text, &st), TRB_EINVAL);
  assert_non_null(strstr(trb_status_msg(&st), "shard"));

  it = mk(ARN, "", 1, T0);
  assert_int_equal(trb_iter_encode(k, &it, text, NULL), TRB_EINVAL);

  it = mk(ARN, SHARD, 1, T0);
  assert_int_equal(trb_iter_encode(NULL, &it, text, NULL), TRB_EINVAL);
  assert_int_equal(trb_iter_encode(k, NULL, text, NULL), TRB_EINVAL);
  assert_int_equal(trb_iter_encode(k, &it, NULL, NULL), TRB_EINVAL);
  trb_iter_key_destroy(k);
}

/* ---- tampering ---- */

/*
 * Every substitution of one byte (1..255) at every position, every deletion
 * and a few insertions at every position. Three shard id lengths so the
 * payload ends on each of the three base64 phases: with 1 or 2 bytes in the
 * last group the final character has unused low bits, and flipping only
 * those must be refused too.
 */
static void test_every_char_change_refused(void **state) {
  (void)state;
  trb_iter_key *k = key_n(1);
  static const char inserts[] = "A_-|1=+/ ";
  for (size_t n = 37; n <= 39; n++) {
    char shard[TRB_ITER_SHARD_SIZE];
    shard_of_len(shard, n);
    trb_iter it = mk(ARN, shard, 0x1122334455667788ULL, T0);
    char text[TRB_ITER_MAX + 1], t[TRB_ITER_MAX + 2];
    encode_ok(k, &it, text);
    size_t len = strlen(text);
    for (size_t pos = 0; pos < len; pos++) {
      for (int c = 1; c < 256; c++) {
        if ((unsigned char)text[pos] == c) continue;
        memcpy(t, text, len + 1);
        t[pos] = (char)c;
        assert_invalid_at(k, t, T0, "substitution", pos, c);
      }
      /* deletion */
      memcpy(t, text, pos);
      memcpy(t + pos, text + pos + 1, len - pos);
      assert_invalid_at(k, t, T0, "deletion", pos, 0);
    }
    for (size_t pos = 0; pos <= len; pos++) {
      for (const char *c = inserts; *c; c++) {
        memcpy(t, text, pos);
        t[pos] = *c;
        memcpy(t + pos + 1, text + pos, len - pos + 1);
        assert_invalid_at(k, t, T0, "insertion", pos, *c);
      }
    }
    /* The untouched token still decodes. */
    trb_iter out;
    assert_int_equal(trb_iter_decode(k, text, T0, &out, NULL), TRB_OK);
    assert_same(&it, &out);
  }
  trb_iter_key_destroy(k);
}

static void test_other_key_refused(void **state) {
  (void)state;
  trb_iter_key *k1 = key_n(1), *k2 = key_n(2);
  trb_iter it = mk(ARN, SHARD, 7, T0);
  char text[TRB_ITER_MAX + 1], text2[TRB_ITER_MAX + 1];
  encode_ok(k1, &it, text);
  encode_ok(k2, &it, text2);
  assert_string_not_equal(text, text2);
  assert_invalid(k2, text, T0);
  assert_invalid(k1, text2, T0);
  trb_iter_key_destroy(k1);
  trb_iter_key_destroy(k2);
}

/* A token whose blob is another token's: the MAC binds the ARN. */
static void test_arn_swap_refused(void **state) {
  (void)state;
  trb_iter_key *k = key_n(1);
  trb_iter it = mk(ARN, SHARD, 7, T0);
  char text[TRB_ITER_MAX + 1], forged[TRB_ITER_MAX + 64];
  encode_ok(k, &it, text);
  const char *blob = strstr(text, "|1|") + 3;
  snprintf(forged, sizeof forged, "%s|1|%s",
           "arn:aws:dynamodb:us-west-2:111122223333:table/Other/stream/x", blob);
  assert_invalid(k, forged, T0);
  /* Same length, other table: only the MAC over the ARN's bytes stops it. */
  snprintf(forged, sizeof forged, "%s|1|%s",
           "arn:aws:dynamodb:us-west-2:111122223333:table/TestTabl2/stream/2015-05-11T21:21:33.291",
           blob);
  assert_int_equal(strlen(forged), strlen(text));
  assert_invalid(k, forged, T0);
  trb_iter_key_destroy(k);
}

static void test_truncated(void **state) {
  (void)state;
  trb_iter_key *k = key_n(1);
  trb_iter it = mk(ARN, SHARD, 7, T0);
  char text[TRB_ITER_MAX + 1], t[TRB_ITER_MAX + 1];
  encode_ok(k, &it, text);
  size_t len = strlen(text);
  for (size_t n = 0; n < len; n++) {
    memcpy(t, text, n);
    t[n] = 0;
    assert_invalid_at(k, t, T0, "truncation", n, 0);
  }
  /* Dropping the ARN, keeping "|1|<blob>". */
  assert_invalid(k, text + strlen(ARN), T0);
  trb_iter_key_destroy(k);
}

static void test_garbage(void **state) {
  (void)state;
  trb_iter_key *k = key_n(1);
  static const char *const junk[] = {
      "", "|", "||", "|||", "|1|", "x|1|", "|1|AAAA", "x|1|AAAA", "garbage", "1",
      "arn:aws:dynamodb:us-west-2:1:table/T/stream/L|1|",
      "arn:aws:dynamodb:us-west-2:1:table/T/stream/L|1|!!!!",
      "arn:aws:dynamodb:us-west-2:1:table/T/stream/L|1|"
      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      "\xff\xfe\x01", " ", "\n",
  };
  for (size_t i = 0; i < sizeof junk / sizeof *junk; i++)
    assert_invalid_at(k, junk[i], T0, "junk", i, 0);

  trb_iter it = mk(ARN, SHARD, 7, T0);
  char text[TRB_ITER_MAX + 1], t[TRB_ITER_MAX + 8];
  encode_ok(k, &it, text);
  size_t alen = strlen(ARN);

  /* Another text version. */
  memcpy(t, text, strlen(text) + 1);
  t[alen + 1] = '2';
  assert_invalid(k, t, T0);
  /* Padding, a newline, standard base64 characters. */
  snprintf(t, sizeof t, "%s=", text);
  assert_invalid(k, t, T0);
  snprintf(t, sizeof t, "%s\n", text);
  assert_invalid(k, t, T0);
  snprintf(t, sizeof t, " %s", text);
  assert_invalid(k, t, T0);

  /* 3000 characters: of one letter, and a valid token padded on the left. */
  char *big = malloc(3001);
  assert_non_null(big);
  memset(big, 'A', 3000);
  big[3000] = 0;
  assert_invalid(k, big, T0);
  size_t tl = strlen(text);
  memset(big, 'a', 3000 - tl);
  memcpy(big + 3000 - tl, text, tl + 1);
  assert_invalid(k, big, T0);
  /* Exactly TRB_ITER_MAX + 1. */
  big[TRB_ITER_MAX + 1] = 0;
  assert_invalid(k, big, T0);
  free(big);

  /* Arguments. */
  trb_iter out;
  assert_invalid(k, NULL, T0);
  assert_int_equal(trb_iter_decode(NULL, text, T0, &out, NULL), TRB_EINVAL);
  assert_int_equal(trb_iter_decode(k, text, T0, NULL, NULL), TRB_EINVAL);
  trb_iter_key_destroy(k);
}

/* ---- time ---- */

static void test_expiry_edge(void **state) {
  (void)state;
  trb_iter_key *k = key_n(1);
  trb_iter it = mk(ARN, SHARD, 99, T0), out;
  char text[TRB_ITER_MAX + 1];
  encode_ok(k, &it, text);
  trb_status st;

  trb_status_init(&st);
  assert_int_equal(trb_iter_decode(k, text, T0 + TRB_ITER_TTL_US, &out, &st), TRB_OK);
  assert_same(&it, &out);

  trb_status_init(&st);
  memset(&out, 0, sizeof out);
  assert_int_equal(trb_iter_decode(k, text, T0 + TRB_ITER_TTL_US + 1, &out, &st), TRB_ETIMEDOUT);
  assert_string_equal(trb_status_msg(&st),
                      "Iterator expired. The iterator was created at time 2015-08-30T12:36:00.000Z "
                      "while right now it's 2015-08-30T12:51:00.000Z. The iterator is valid for 15 "
                      "minutes.");
  assert_same(&it, &out); /* authentic fields come back with the expiry */

  /* A day later, and with milliseconds in both times. */
  it = mk(ARN, SHARD, 99, T0 + 123456);
  encode_ok(k, &it, text);
  trb_status_init(&st);
  assert_int_equal(trb_iter_decode(k, text, T0 + 86400000000LL + 999999, &out, &st),
                   TRB_ETIMEDOUT);
  assert_string_equal(trb_status_msg(&st),
                      "Iterator expired. The iterator was created at time 2015-08-30T12:36:00.123Z "
                      "while right now it's 2015-08-31T12:36:00.999Z. The iterator is valid for 15 "
                      "minutes.");
  /* A just-issued one is fine. */
  assert_int_equal(trb_iter_decode(k, text, T0 + 123456, &out, NULL), TRB_OK);
  trb_iter_key_destroy(k);
}

static void test_future_issued(void **state) {
  (void)state;
  trb_iter_key *k = key_n(1);
  char text[TRB_ITER_MAX + 1];
  trb_iter out;

  trb_iter it = mk(ARN, SHARD, 5, T0 + TRB_ITER_FUTURE_US);
  encode_ok(k, &it, text);
  assert_int_equal(trb_iter_decode(k, text, T0, &out, NULL), TRB_OK);
  assert_same(&it, &out);

  it = mk(ARN, SHARD, 5, T0 + TRB_ITER_FUTURE_US + 1);
  encode_ok(k, &it, text);
  assert_invalid(k, text, T0);

  it = mk(ARN, SHARD, 5, T0 + 86400000000LL);
  encode_ok(k, &it, text);
  assert_invalid(k, text, T0);
  trb_iter_key_destroy(k);
}

/* Times at the ends of int64: no overflow (UBSan), sensible answers. */
static void test_extreme_times(void **state) {
  (void)state;
  trb_iter_key *k = key_n(1);
  char text[TRB_ITER_MAX + 1];
  trb_iter out;
  trb_status st;

  trb_iter it = mk(ARN, SHARD, 5, INT64_MIN);
  encode_ok(k, &it, text);
  trb_status_init(&st);
  assert_int_equal(trb_iter_decode(k, text, INT64_MAX, &out, &st), TRB_ETIMEDOUT);
  assert_non_null(strstr(trb_status_msg(&st), "-9223372036854775808us"));
  assert_non_null(strstr(trb_status_msg(&st), "9223372036854775807us"));
  assert_int_equal(trb_iter_decode(k, text, INT64_MIN, &out, NULL), TRB_OK);

  it = mk(ARN, SHARD, 5, INT64_MAX);
  encode_ok(k, &it, text);
  assert_invalid(k, text, INT64_MIN);
  assert_invalid(k, text, 0);
  assert_int_equal(trb_iter_decode(k, text, INT64_MAX, &out, NULL), TRB_OK);

  /* Before the epoch formats as a date too. */
  it = mk(ARN, SHARD, 5, -1000);
  encode_ok(k, &it, text);
  trb_status_init(&st);
  assert_int_equal(trb_iter_decode(k, text, TRB_ITER_TTL_US, &out, &st), TRB_ETIMEDOUT);
  assert_non_null(strstr(trb_status_msg(&st), "created at time 1969-12-31T23:59:59.999Z"));
  trb_iter_key_destroy(k);
}

/* ---- key file ---- */

typedef struct fx {
  char *dir;
  char path[512];
} fx;

static int fx_setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->dir = trb_test_mkdtemp("stream_iter");
  assert_non_null(f->dir);
  snprintf(f->path, sizeof f->path, "%s/iter.key", f->dir);
  *state = f;
  return 0;
}

static int fx_teardown(void **state) {
  fx *f = *state;
  trb_sysio_reset();
  chmod(f->dir, 0700);
  trb_test_rmrf(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static int exists(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0;
}

static void write_bytes(const char *path, size_t n) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  for (size_t i = 0; i < n; i++) fputc((int)i, fp);
  assert_int_equal(fclose(fp), 0);
}

static trb_iter_key *load_ok(const char *path) {
  trb_iter_key *k = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_iter_key_load(path, &k, &st);
  if (rc) fail_msg("load %s: %s: %s", path, trb_err_name(rc), trb_status_msg(&st));
  assert_non_null(k);
  return k;
}

static void test_key_created_0600(void **state) {
  fx *f = *state;
  assert_false(exists(f->path));
  trb_iter_key *k = load_ok(f->path);
  struct stat sb;
  assert_int_equal(stat(f->path, &sb), 0);
  assert_true(S_ISREG(sb.st_mode));
  assert_int_equal(sb.st_mode & 07777, 0600);
  assert_int_equal(sb.st_size, TRB_ITER_KEY_LEN);
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp", f->path);
  assert_false(exists(tmp));

  /* The file holds the key: a key from its bytes makes the same tokens. */
  size_t n = 0;
  unsigned char *bytes = (unsigned char *)trb_test_read_file(f->path, &n);
  assert_non_null(bytes);
  assert_int_equal(n, TRB_ITER_KEY_LEN);
  trb_iter_key *kb = trb_iter_key_from_bytes(bytes);
  assert_non_null(kb);
  trb_iter it = mk(ARN, SHARD, 3, T0);
  char a[TRB_ITER_MAX + 1], b[TRB_ITER_MAX + 1];
  encode_ok(k, &it, a);
  encode_ok(kb, &it, b);
  assert_string_equal(a, b);
  free(bytes);
  trb_iter_key_destroy(kb);
  trb_iter_key_destroy(k);
}

static void test_key_reload_same_tokens(void **state) {
  fx *f = *state;
  trb_iter_key *k1 = load_ok(f->path);
  size_t n0 = 0;
  char *before = trb_test_read_file(f->path, &n0);
  assert_non_null(before);
  trb_iter_key *k2 = load_ok(f->path); /* as after a restart */
  size_t n1 = 0;
  char *after = trb_test_read_file(f->path, &n1);
  assert_non_null(after);
  assert_int_equal(n0, n1);
  assert_memory_equal(before, after, n0); /* never rewritten */

  trb_iter it = mk(ARN, SHARD, 12345, T0), out;
  char a[TRB_ITER_MAX + 1], b[TRB_ITER_MAX + 1];
  encode_ok(k1, &it, a);
  encode_ok(k2, &it, b);
  assert_string_equal(a, b);
  assert_int_equal(trb_iter_decode(k2, a, T0, &out, NULL), TRB_OK);
  assert_same(&it, &out);

  /* A key created elsewhere is a different key. */
  char other[600];
  snprintf(other, sizeof other, "%s/other.key", f->dir);
  trb_iter_key *k3 = load_ok(other);
  assert_invalid(k3, a, T0);

  free(before);
  free(after);
  trb_iter_key_destroy(k1);
  trb_iter_key_destroy(k2);
  trb_iter_key_destroy(k3);
}

static void test_key_wrong_size(void **state) {
  fx *f = *state;
  static const size_t sizes[] = {0, 1, 31, 33, 64};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    write_bytes(f->path, sizes[i]);
    trb_iter_key *k = (trb_iter_key *)&k; /* must stay untouched */
    trb_iter_key *const sentinel = k;
    trb_status st;
    trb_status_init(&st);
    assert_int_equal(trb_iter_key_load(f->path, &k, &st), TRB_ECORRUPT);
    assert_ptr_equal(k, sentinel);
    assert_non_null(strstr(trb_status_msg(&st), f->path));
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_size, (off_t)sizes[i]); /* not replaced */
  }
}

static void test_key_path_is_directory(void **state) {
  fx *f = *state;
  assert_int_equal(mkdir(f->path, 0700), 0);
  trb_iter_key *k = NULL;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_iter_key_load(f->path, &k, &st), TRB_EIO);
  assert_null(k);
  assert_non_null(strstr(trb_status_msg(&st), f->path));
}

static void test_key_unwritable_directory(void **state) {
  fx *f = *state;
  trb_iter_key *k = NULL;
  trb_status st;

  /* A directory that does not exist. */
  char missing[600];
  snprintf(missing, sizeof missing, "%s/no/such/dir/iter.key", f->dir);
  trb_status_init(&st);
  assert_int_equal(trb_iter_key_load(missing, &k, &st), TRB_EIO);
  assert_null(k);
  assert_non_null(strstr(trb_status_msg(&st), missing));

  /* A read-only directory (root ignores the mode, so only as non-root). */
  if (geteuid() != 0) {
    assert_int_equal(chmod(f->dir, 0500), 0);
    trb_status_init(&st);
    assert_int_equal(trb_iter_key_load(f->path, &k, &st), TRB_EIO);
    assert_null(k);
    assert_non_null(strstr(trb_status_msg(&st), f->path));
    assert_int_equal(chmod(f->dir, 0700), 0);
  } else {
    print_message("running as root: read-only directory case covered by injection only\n");
  }
}

/* ---- faults at the syscall seam ---- */

static int fault_errno;
static int fsync_calls, fsync_fail_at;

static int open_creat_fails(const char *path, int flags, mode_t mode) {
  if (flags & O_CREAT) {
    errno = fault_errno;
    return -1;
  }
  return open(path, flags | O_CLOEXEC, mode);
}

static int open_read_fails(const char *path, int flags, mode_t mode) {
  (void)path; (void)flags; (void)mode;
  errno = fault_errno;
  return -1;
}

static ssize_t pwrite_fails(int fd, const void *buf, size_t n, off_t off) {
  (void)fd; (void)buf; (void)n; (void)off;
  errno = fault_errno;
  return -1;
}

static ssize_t pwrite_short(int fd, const void *buf, size_t n, off_t off) {
  return pwrite(fd, buf, n > 5 ? 5 : n, off);
}

static int fsync_counted(int fd) {
  if (++fsync_calls == fsync_fail_at) {
    errno = fault_errno;
    return -1;
  }
  return fsync(fd);
}

static int rename_fails(const char *from, const char *to) {
  (void)from; (void)to;
  errno = fault_errno;
  return -1;
}

/* Loads expecting TRB_EIO naming the file and mentioning strerror(e). */
static void load_fails(const fx *f, int e) {
  trb_iter_key *k = NULL;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_iter_key_load(f->path, &k, &st), TRB_EIO);
  assert_null(k);
  assert_non_null(strstr(trb_status_msg(&st), f->path));
  assert_non_null(strstr(trb_status_msg(&st), strerror(e)));
}

static void assert_no_files(const fx *f) {
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp", f->path);
  assert_false(exists(f->path));
  assert_false(exists(tmp));
}

static void test_key_create_faults(void **state) {
  fx *f = *state;

  fault_errno = EACCES; /* what an unwritable directory says */
  trb_sys.open = open_creat_fails;
  load_fails(f, EACCES);
  assert_no_files(f);
  trb_sysio_reset();

  fault_errno = EIO;
  trb_sys.open = open_read_fails;
  load_fails(f, EIO);
  trb_sysio_reset();

  fault_errno = ENOSPC;
  trb_sys.pwrite = pwrite_fails;
  load_fails(f, ENOSPC);
  assert_no_files(f);
  trb_sysio_reset();

  /* Short writes are completed, not mistaken for the whole key. */
  trb_sys.pwrite = pwrite_short;
  trb_iter_key *k = load_ok(f->path);
  trb_iter_key_destroy(k);
  trb_sysio_reset();
  struct stat sb;
  assert_int_equal(stat(f->path, &sb), 0);
  assert_int_equal(sb.st_size, TRB_ITER_KEY_LEN);
  assert_int_equal(unlink(f->path), 0);

  /* fsync of the file fails: nothing is left behind. */
  fault_errno = EIO;
  fsync_calls = 0;
  fsync_fail_at = 1;
  trb_sys.fsync = fsync_counted;
  load_fails(f, EIO);
  assert_no_files(f);
  trb_sysio_reset();

  fault_errno = EXDEV;
  trb_sys.rename = rename_fails;
  load_fails(f, EXDEV);
  assert_no_files(f);
  trb_sysio_reset();

  /* fsync of the directory fails: reported, but the file is whole, so the
   * next load reads it rather than making a new key. */
  fault_errno = EIO;
  fsync_calls = 0;
  fsync_fail_at = 2;
  trb_sys.fsync = fsync_counted;
  load_fails(f, EIO);
  trb_sysio_reset();
  assert_int_equal(stat(f->path, &sb), 0);
  assert_int_equal(sb.st_size, TRB_ITER_KEY_LEN);
  size_t n = 0;
  unsigned char *bytes = (unsigned char *)trb_test_read_file(f->path, &n);
  assert_non_null(bytes);
  trb_iter_key *kf = trb_iter_key_from_bytes(bytes);
  k = load_ok(f->path);
  trb_iter it = mk(ARN, SHARD, 1, T0);
  char a[TRB_ITER_MAX + 1], b[TRB_ITER_MAX + 1];
  encode_ok(k, &it, a);
  encode_ok(kf, &it, b);
  assert_string_equal(a, b);
  free(bytes);
  trb_iter_key_destroy(kf);
  trb_iter_key_destroy(k);
}

/* A leftover path.tmp from a crash (here world-readable) does not leak its
 * mode into the new key file. */
static void test_key_stale_tmp(void **state) {
  fx *f = *state;
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp", f->path);
  write_bytes(tmp, 7);
  assert_int_equal(chmod(tmp, 0644), 0);
  trb_iter_key *k = load_ok(f->path);
  struct stat sb;
  assert_int_equal(stat(f->path, &sb), 0);
  assert_int_equal(sb.st_mode & 07777, 0600);
  assert_int_equal(sb.st_size, TRB_ITER_KEY_LEN);
  assert_false(exists(tmp));
  trb_iter_key_destroy(k);
}

static void test_key_args(void **state) {
  (void)state;
  trb_iter_key *k = NULL;
  assert_int_equal(trb_iter_key_load(NULL, &k, NULL), TRB_EINVAL);
  assert_int_equal(trb_iter_key_load("", &k, NULL), TRB_EINVAL);
  assert_int_equal(trb_iter_key_load("/x", NULL, NULL), TRB_EINVAL);
  assert_null(trb_iter_key_from_bytes(NULL));
  trb_iter_key_destroy(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_shape),
      cmocka_unit_test(test_encode_invalid),
      cmocka_unit_test(test_every_char_change_refused),
      cmocka_unit_test(test_other_key_refused),
      cmocka_unit_test(test_arn_swap_refused),
      cmocka_unit_test(test_truncated),
      cmocka_unit_test(test_garbage),
      cmocka_unit_test(test_expiry_edge),
      cmocka_unit_test(test_future_issued),
      cmocka_unit_test(test_extreme_times),
      cmocka_unit_test_setup_teardown(test_key_created_0600, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_key_reload_same_tokens, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_key_wrong_size, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_key_path_is_directory, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_key_unwritable_directory, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_key_create_faults, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_key_stale_tmp, fx_setup, fx_teardown),
      cmocka_unit_test(test_key_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
