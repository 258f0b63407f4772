/*
 * test_idempotency.c -- the client request token table (api/idempotency.c)
 * with an injected clock: remember and replay, mismatch, expiry 10 minutes
 * after completion, a failed first attempt forgotten, "in progress" (also
 * under threads racing on one token), the cap, and the canonical digest.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/idempotency.h"
#include "testutil.h"

#define MIN_US (60LL * 1000000LL)

typedef struct fake_clock {
  _Atomic int64_t now_us;
} fake_clock;

static int64_t fake_now(void *ctx) { return atomic_load(&((fake_clock *)ctx)->now_us); }
static void advance(fake_clock *fc, int64_t us) { atomic_fetch_add(&fc->now_us, us); }

typedef struct fixture {
  fake_clock clock;
  trb_idem *t;
} fixture;

static fixture *fx_make(size_t max) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  atomic_store(&f->clock.now_us, 1000000); /* not 0: nothing special about the origin */
  trb_idem_opts o = {.max_tokens = max, .clock = fake_now, .clock_ctx = &f->clock};
  f->t = trb_idem_create(&o);
  assert_non_null(f->t);
  return f;
}

static int setup(void **state) {
  *state = fx_make(0);
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  trb_idem_destroy(f->t);
  free(f);
  return 0;
}

/* A digest that differs per seed byte. */
static void dig(uint8_t d[TRB_IDEM_DIGEST_LEN], int seed) {
  memset(d, 0, TRB_IDEM_DIGEST_LEN);
  d[0] = (uint8_t)seed;
  d[31] = (uint8_t)(seed >> 8);
}

static trb_idem_verdict begin(trb_idem *t, const char *token, int seed, char **result) {
  uint8_t d[TRB_IDEM_DIGEST_LEN];
  dig(d, seed);
  trb_idem_verdict v = (trb_idem_verdict)-1;
  assert_int_equal(trb_idem_begin(t, token, d, &v, result), TRB_OK);
  return v;
}

static void test_remember_and_replay(void **state) {
  fixture *f = *state;
  char *res = (char *)"garbage";
  assert_int_equal(begin(f->t, "tok-1", 1, &res), TRB_IDEM_FIRST);
  assert_null(res);
  trb_idem_commit(f->t, "tok-1", strdup("first answer"));
  for (int i = 0; i < 3; i++) {
    assert_int_equal(begin(f->t, "tok-1", 1, &res), TRB_IDEM_REPLAY);
    assert_non_null(res);
    assert_string_equal(res, "first answer");
    free(res);
    advance(&f->clock, MIN_US);
  }
  /* A replay does not extend the window and result may be omitted. */
  assert_int_equal(begin(f->t, "tok-1", 1, NULL), TRB_IDEM_REPLAY);
  /* Another token is another request. */
  assert_int_equal(begin(f->t, "tok-2", 1, NULL), TRB_IDEM_FIRST);
  trb_idem_commit(f->t, "tok-2", NULL); /* no stored result */
  assert_int_equal(begin(f->t, "tok-2", 1, &res), TRB_IDEM_REPLAY);
  assert_null(res);
  assert_int_equal(trb_idem_count(f->t), 2);
}

static void test_mismatch(void **state) {
  fixture *f = *state;
  assert_int_equal(begin(f->t, "tok", 1, NULL), TRB_IDEM_FIRST);
  trb_idem_commit(f->t, "tok", strdup("r"));
  char *res = (char *)"garbage";
  assert_int_equal(begin(f->t, "tok", 2, &res), TRB_IDEM_MISMATCH);
  assert_null(res);
  /* The mismatch changed nothing: the original still replays. */
  assert_int_equal(begin(f->t, "tok", 1, &res), TRB_IDEM_REPLAY);
  assert_string_equal(res, "r");
  free(res);
  /* Tokens are case-sensitive, exact strings. */
  assert_int_equal(begin(f->t, "TOK", 2, NULL), TRB_IDEM_FIRST);
  trb_idem_abort(f->t, "TOK");
}

static void test_expiry_after_ten_minutes(void **state) {
  fixture *f = *state;
  assert_int_equal(begin(f->t, "tok", 1, NULL), TRB_IDEM_FIRST);
  /* The window starts at completion, not at the first begin. */
  advance(&f->clock, 5 * MIN_US);
  trb_idem_commit(f->t, "tok", strdup("r"));
  advance(&f->clock, 10 * MIN_US - 1);
  assert_int_equal(begin(f->t, "tok", 1, NULL), TRB_IDEM_REPLAY);
  assert_int_equal(begin(f->t, "tok", 2, NULL), TRB_IDEM_MISMATCH);
  advance(&f->clock, 1); /* exactly 10 minutes after completion: forgotten */
  assert_int_equal(begin(f->t, "tok", 2, NULL), TRB_IDEM_FIRST);
  assert_int_equal(trb_idem_count(f->t), 1);
  trb_idem_commit(f->t, "tok", NULL);
  assert_int_equal(begin(f->t, "tok", 2, NULL), TRB_IDEM_REPLAY);
  assert_int_equal(begin(f->t, "tok", 1, NULL), TRB_IDEM_MISMATCH);
  /* Expired tokens are dropped by any begin, not only by their own. */
  advance(&f->clock, 11 * MIN_US);
  assert_int_equal(trb_idem_count(f->t), 1);
  assert_int_equal(begin(f->t, "other", 1, NULL), TRB_IDEM_FIRST);
  assert_int_equal(trb_idem_count(f->t), 1);
  trb_idem_abort(f->t, "other");
  assert_int_equal(trb_idem_count(f->t), 0);
}

static void test_failed_first_attempt_not_remembered(void **state) {
  fixture *f = *state;
  assert_int_equal(begin(f->t, "tok", 1, NULL), TRB_IDEM_FIRST);
  trb_idem_abort(f->t, "tok"); /* e.g. TransactionCanceledException */
  assert_int_equal(trb_idem_count(f->t), 0);
  /* The retry runs again, with the same or with other parameters. */
  assert_int_equal(begin(f->t, "tok", 1, NULL), TRB_IDEM_FIRST);
  trb_idem_abort(f->t, "tok");
  assert_int_equal(begin(f->t, "tok", 2, NULL), TRB_IDEM_FIRST);
  trb_idem_commit(f->t, "tok", strdup("ok"));
  assert_int_equal(begin(f->t, "tok", 2, NULL), TRB_IDEM_REPLAY);
  /* abort and commit of a token that is not in progress change nothing. */
  trb_idem_abort(f->t, "tok");
  trb_idem_commit(f->t, "tok", strdup("leak?")); /* freed, not stored */
  trb_idem_abort(f->t, "never-seen");
  trb_idem_commit(f->t, "never-seen", NULL);
  char *res = NULL;
  assert_int_equal(begin(f->t, "tok", 2, &res), TRB_IDEM_REPLAY);
  assert_string_equal(res, "ok");
  free(res);
  assert_int_equal(trb_idem_count(f->t), 1);
}

static void test_in_progress(void **state) {
  fixture *f = *state;
  assert_int_equal(begin(f->t, "tok", 1, NULL), TRB_IDEM_FIRST);
  char *res = (char *)"garbage";
  assert_int_equal(begin(f->t, "tok", 1, &res), TRB_IDEM_IN_PROGRESS);
  assert_null(res);
  /* Other parameters under a running token: a mismatch wins. */
  assert_int_equal(begin(f->t, "tok", 2, NULL), TRB_IDEM_MISMATCH);
  /* In progress never expires, however long it takes. */
  advance(&f->clock, 60 * MIN_US);
  assert_int_equal(begin(f->t, "tok", 1, NULL), TRB_IDEM_IN_PROGRESS);
  trb_idem_commit(f->t, "tok", strdup("done"));
  assert_int_equal(begin(f->t, "tok", 1, NULL), TRB_IDEM_REPLAY);
}

/* ---- racing threads: exactly one runs ---- */

#define RACERS 16
#define ROUNDS 200

typedef struct race {
  trb_idem *t;
  pthread_barrier_t *bar;
  atomic_int *firsts, *replays, *busy;
  int round;
} race;

static void *racer(void *arg) {
  race *r = arg;
  char tok[32];
  snprintf(tok, sizeof tok, "race-%d", r->round);
  uint8_t d[TRB_IDEM_DIGEST_LEN];
  dig(d, 7);
  pthread_barrier_wait(r->bar);
  trb_idem_verdict v;
  if (trb_idem_begin(r->t, tok, d, &v, NULL)) return NULL;
  if (v == TRB_IDEM_FIRST) {
    atomic_fetch_add(r->firsts, 1);
    trb_idem_commit(r->t, tok, NULL);
  } else if (v == TRB_IDEM_REPLAY) {
    atomic_fetch_add(r->replays, 1);
  } else if (v == TRB_IDEM_IN_PROGRESS) {
    atomic_fetch_add(r->busy, 1);
  }
  return NULL;
}

static void test_in_progress_threads(void **state) {
  fixture *f = *state;
  for (int round = 0; round < ROUNDS; round++) {
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, RACERS);
    atomic_int firsts = 0, replays = 0, busy = 0;
    pthread_t th[RACERS];
    race r[RACERS];
    for (int i = 0; i < RACERS; i++) {
      r[i] = (race){f->t, &bar, &firsts, &replays, &busy, round};
      assert_int_equal(pthread_create(&th[i], NULL, racer, &r[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    assert_int_equal(atomic_load(&firsts), 1);
    assert_int_equal(atomic_load(&firsts) + atomic_load(&replays) + atomic_load(&busy), RACERS);
  }
  assert_int_equal(trb_idem_count(f->t), ROUNDS);
}

/* ---- the cap ---- */

static void test_cap(void **state) {
  (void)state;
  fixture *f = fx_make(3);
  /* Full of done tokens, none expired: the oldest done one goes. */
  const char *toks[] = {"a", "b", "c"};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(begin(f->t, toks[i], 1, NULL), TRB_IDEM_FIRST);
    trb_idem_commit(f->t, toks[i], strdup(toks[i]));
    advance(&f->clock, MIN_US);
  }
  assert_int_equal(trb_idem_count(f->t), 3);
  assert_int_equal(begin(f->t, "d", 1, NULL), TRB_IDEM_FIRST);
  assert_int_equal(trb_idem_count(f->t), 3);
  assert_int_equal(begin(f->t, "b", 1, NULL), TRB_IDEM_REPLAY);
  assert_int_equal(begin(f->t, "c", 1, NULL), TRB_IDEM_REPLAY);
  assert_int_equal(begin(f->t, "d", 1, NULL), TRB_IDEM_IN_PROGRESS);
  /* "a" was forgotten early: it runs again, and pushes out "b". */
  assert_int_equal(begin(f->t, "a", 1, NULL), TRB_IDEM_FIRST);
  assert_int_equal(begin(f->t, "c", 1, NULL), TRB_IDEM_REPLAY);
  assert_int_equal(begin(f->t, "b", 2, NULL), TRB_IDEM_FIRST); /* evicts "c" */
  /* Now all three are in progress: nothing may go, begin refuses. */
  uint8_t d[TRB_IDEM_DIGEST_LEN];
  dig(d, 1);
  trb_idem_verdict v;
  assert_int_equal(trb_idem_begin(f->t, "e", d, &v, NULL), TRB_ELIMIT);
  assert_int_equal(trb_idem_count(f->t), 3);
  /* Known tokens are still answered at the cap. */
  assert_int_equal(begin(f->t, "a", 1, NULL), TRB_IDEM_IN_PROGRESS);
  trb_idem_commit(f->t, "a", NULL);
  trb_idem_commit(f->t, "b", NULL);
  trb_idem_commit(f->t, "d", NULL);
  /* Expired ones go first: after 10 minutes all three are expired and a
   * new token leaves only itself. */
  advance(&f->clock, 10 * MIN_US);
  assert_int_equal(begin(f->t, "e", 1, NULL), TRB_IDEM_FIRST);
  assert_int_equal(trb_idem_count(f->t), 1);
  /* Only the expired ones go when some are still live. */
  trb_idem_commit(f->t, "e", NULL);
  advance(&f->clock, 5 * MIN_US);
  assert_int_equal(begin(f->t, "f", 1, NULL), TRB_IDEM_FIRST);
  trb_idem_commit(f->t, "f", NULL);
  advance(&f->clock, 5 * MIN_US); /* "e" expired, "f" not */
  assert_int_equal(begin(f->t, "g", 1, NULL), TRB_IDEM_FIRST);
  assert_int_equal(trb_idem_count(f->t), 2);
  assert_int_equal(begin(f->t, "f", 1, NULL), TRB_IDEM_REPLAY);
  /* Destroy with a token in progress ("g") frees it. */
  trb_idem_destroy(f->t);
  free(f);
}

static void test_cap_many(void **state) {
  (void)state;
  /* A bigger table: at the cap the count never grows and the newest
   * tokens are the ones kept. */
  fixture *f = fx_make(1000);
  char tok[40];
  for (int i = 0; i < 5000; i++) {
    snprintf(tok, sizeof tok, "%036d", i); /* 36 characters, DynamoDB's longest */
    assert_int_equal(begin(f->t, tok, i, NULL), TRB_IDEM_FIRST);
    trb_idem_commit(f->t, tok, strdup(tok));
    advance(&f->clock, 1);
    assert_true(trb_idem_count(f->t) <= 1000);
  }
  assert_int_equal(trb_idem_count(f->t), 1000);
  for (int i = 4000; i < 5000; i++) {
    snprintf(tok, sizeof tok, "%036d", i);
    assert_int_equal(begin(f->t, tok, i, NULL), TRB_IDEM_REPLAY);
  }
  snprintf(tok, sizeof tok, "%036d", 3999);
  assert_int_equal(begin(f->t, tok, 3999, NULL), TRB_IDEM_FIRST);
  trb_idem_abort(f->t, tok);
  trb_idem_destroy(f->t);
  free(f);
}

static void test_bad_arguments(void **state) {
  fixture *f = *state;
  uint8_t d[TRB_IDEM_DIGEST_LEN];
  dig(d, 1);
  trb_idem_verdict v;
  assert_int_equal(trb_idem_begin(f->t, "", d, &v, NULL), TRB_EINVAL);
  assert_int_equal(trb_idem_begin(f->t, NULL, d, &v, NULL), TRB_EINVAL);
  assert_int_equal(trb_idem_count(f->t), 0);
  trb_idem_destroy(NULL);
  /* Defaults: a table with no options works on the real clock. */
  trb_idem *t = trb_idem_create(NULL);
  assert_non_null(t);
  assert_int_equal(trb_idem_begin(t, "x", d, &v, NULL), TRB_OK);
  assert_int_equal(v, TRB_IDEM_FIRST);
  trb_idem_commit(t, "x", NULL);
  assert_int_equal(trb_idem_begin(t, "x", d, &v, NULL), TRB_OK);
  assert_int_equal(v, TRB_IDEM_REPLAY);
  trb_idem_destroy(t);
}

/* ---- the digest ---- */

static void digest_of(const char *text, uint8_t out[TRB_IDEM_DIGEST_LEN]) {
  static const char *const excl[] = {"ClientRequestToken", "ReturnConsumedCapacity",
                                     "ReturnItemCollectionMetrics", NULL};
  json_error_t je;
  json_t *j = json_loads(text, 0, &je);
  assert_non_null(j);
  char *before = json_dumps(j, JSON_SORT_KEYS);
  assert_int_equal(trb_idem_digest(j, excl, out), TRB_OK);
  char *after = json_dumps(j, JSON_SORT_KEYS);
  assert_string_equal(before, after); /* the request is not changed */
  free(before);
  free(after);
  json_decref(j);
}

static void test_digest(void **state) {
  (void)state;
  uint8_t a[32], b[32], c[32], d[32], e[32];
  digest_of("{\"TransactItems\":[{\"Put\":{\"TableName\":\"t\",\"Item\":{\"k\":{\"S\":\"1\"},"
            "\"v\":{\"N\":\"2\"}}}}],\"ClientRequestToken\":\"x\"}",
            a);
  /* Other member order, another token, capacity asked: the same. */
  digest_of("{\"ReturnConsumedCapacity\":\"TOTAL\",\"ClientRequestToken\":\"y\","
            "\"ReturnItemCollectionMetrics\":\"SIZE\",\"TransactItems\":[{\"Put\":{\"Item\":"
            "{\"v\":{\"N\":\"2\"},\"k\":{\"S\":\"1\"}},\"TableName\":\"t\"}}]}",
            b);
  assert_memory_equal(a, b, 32);
  /* Whitespace and escapes do not matter either. */
  digest_of("{ \"TransactItems\" : [ {\"Put\":{\"TableName\":\"\\u0074\",\"Item\":{\"k\":"
            "{\"S\":\"1\"},\"v\":{\"N\":\"2\"}}}} ] }",
            c);
  assert_memory_equal(a, c, 32);
  /* A different value does. */
  digest_of("{\"TransactItems\":[{\"Put\":{\"TableName\":\"t\",\"Item\":{\"k\":{\"S\":\"1\"},"
            "\"v\":{\"N\":\"3\"}}}}]}",
            d);
  assert_memory_not_equal(a, d, 32);
  /* So does array order (the actions are a list) and any other member. */
  digest_of("{\"TransactItems\":[{\"Put\":{\"TableName\":\"t\",\"Item\":{\"k\":{\"S\":\"1\"},"
            "\"v\":{\"N\":\"2\"}}}}],\"ReturnValues\":\"NONE\"}",
            e);
  assert_memory_not_equal(a, e, 32);
  json_t *arr = json_array();
  assert_int_equal(trb_idem_digest(arr, NULL, a), TRB_EINVAL);
  json_decref(arr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_remember_and_replay, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mismatch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expiry_after_ten_minutes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_first_attempt_not_remembered, setup, teardown),
      cmocka_unit_test_setup_teardown(test_in_progress, setup, teardown),
      cmocka_unit_test_setup_teardown(test_in_progress_threads, setup, teardown),
      cmocka_unit_test(test_cap),
      cmocka_unit_test(test_cap_many),
      cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
      cmocka_unit_test(test_digest),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
