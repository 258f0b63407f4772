/*
 * expr_testutil.h -- helpers shared by test_expr_parse.c, test_expr_eval.c
 * and test_expr_update.c (header-only, static: each test binary is built
 * from its own .c plus testutil.c). Items and values are written as
 * DynamoDB JSON text so the tests read like requests.
 */
#ifndef TRB_EXPR_TESTUTIL_H
#define TRB_EXPR_TESTUTIL_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/expr.h"
#include "testutil.h"

/* An item (M) from DynamoDB JSON text; NULL text gives NULL. */
static inline trb_av *xj(const char *json) {
  trb_av *v = NULL;
  trb_status st;
  if (!json) return NULL;
  trb_status_init(&st);
  if (trb_item_from_json_text(json, strlen(json), &v, &st) != TRB_OK) {
    fprintf(stderr, "bad test JSON %s: %s\n", json, trb_status_msg(&st));
    fail();
  }
  return v;
}

/* A request's environment: names as a JSON object {"#a":"x"}, values as a
 * DynamoDB JSON object {":v":{"N":"1"}}; NULL means absent. */
typedef struct xenv {
  trb_expr_env *env;
  trb_av *vals;
} xenv;

static inline trb_err xenv_try(xenv *x, const char *names, const char *values, trb_status *st) {
  const char *keys[512] = {0}, *vals[512] = {0};
  size_t n = 0;
  json_t *j = NULL;
  memset(x, 0, sizeof *x);
  if (names) {
    json_error_t err;
    j = json_loads(names, 0, &err);
    assert_non_null(j);
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
      assert_true(n < 512);
      keys[n] = k;
      vals[n] = json_string_value(v);
      n++;
    }
  }
  x->vals = xj(values);
  trb_err rc = trb_expr_env_create(keys, vals, n, names != NULL, x->vals, values != NULL, &x->env, st);
  json_decref(j);
  return rc;
}

static inline void xenv_init(xenv *x, const char *names, const char *values) {
  trb_status st;
  trb_status_init(&st);
  trb_err rc = xenv_try(x, names, values, &st);
  if (rc) fprintf(stderr, "env: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
}

static inline void xenv_fini(xenv *x) {
  trb_expr_env_destroy(x->env);
  trb_av_destroy(x->vals);
  memset(x, 0, sizeof *x);
}

static inline trb_expr *xparse(xenv *x, trb_expr_kind k, const char *text) {
  trb_expr *e = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_expr_parse(k, text, x->env, &e, &st);
  if (rc) fprintf(stderr, "parse of [%s]: %s\n", text, trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  assert_non_null(e);
  return e;
}

/* Parsing fails with TRB_EINVAL and exactly msg. */
static inline void xparse_err(xenv *x, trb_expr_kind k, const char *text, const char *msg) {
  trb_expr *e = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_expr_parse(k, text, x->env, &e, &st);
  if (rc != TRB_EINVAL) fprintf(stderr, "parse of [%s] gave rc %d\n", text, (int)rc);
  assert_int_equal(rc, TRB_EINVAL);
  assert_null(e);
  assert_string_equal(trb_status_msg(&st), msg);
}

/* One-shot: parse with names/values as above and check the error. */
static inline void perr(trb_expr_kind k, const char *names, const char *values, const char *text,
                        const char *msg) {
  xenv x;
  xenv_init(&x, names, values);
  xparse_err(&x, k, text, msg);
  xenv_fini(&x);
}

/* Evaluates e against item JSON (NULL: the item does not exist). */
static inline int xeval(const trb_expr *e, const char *item) {
  trb_av *it = xj(item);
  int pass = -1;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_expr_eval(e, it, &pass, &st);
  if (rc) fprintf(stderr, "eval: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  assert_true(pass == 0 || pass == 1);
  trb_av_destroy(it);
  return pass;
}

/* One-shot condition: values JSON, expression, item JSON -> pass. */
static inline int cond(const char *names, const char *values, const char *text, const char *item) {
  xenv x;
  xenv_init(&x, names, values);
  trb_expr *e = xparse(&x, TRB_EXPR_CONDITION, text);
  int pass = xeval(e, item);
  trb_expr_destroy(e);
  xenv_fini(&x);
  return pass;
}

/* v equals the item written as JSON (NULL: v must be NULL). */
static inline void assert_item(const trb_av *v, const char *json) {
  if (!json) {
    assert_null(v);
    return;
  }
  trb_av *want = xj(json);
  assert_non_null(v);
  if (!trb_av_equal(v, want)) {
    char *got = trb_item_to_json_text(v);
    fprintf(stderr, "got  %s\nwant %s\n", got, json);
    free(got);
  }
  assert_true(trb_av_equal(v, want));
  trb_av_destroy(want);
}

#endif
