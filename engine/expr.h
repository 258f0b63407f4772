/*
 * expr.h -- DynamoDB's expression language: one parser and evaluator for
 * ConditionExpression, FilterExpression, KeyConditionExpression,
 * ProjectionExpression and UpdateExpression (spec section 5).
 *
 * A request's expressions share one environment (trb_expr_env) holding its
 * ExpressionAttributeNames and ExpressionAttributeValues; parsing records
 * which placeholders each expression used, so that after parsing every
 * expression of the request trb_expr_env_check_unused() can report unused
 * ones as DynamoDB does. Every error is TRB_EINVAL with DynamoDB's message
 * (e.g. "Invalid ConditionExpression: Attribute name is a reserved keyword;
 * reserved keyword: name").
 *
 * Parsed expressions are immutable and may be evaluated from any thread
 * (the engine's commit thread evaluates conditions and updates). They borrow
 * the environment's values: destroy expressions before their environment.
 */
#ifndef TRB_EXPR_H
#define TRB_EXPR_H

#include <stddef.h>

#include "engine/engine.h"
#include "engine/keyenc.h"
#include "engine/value.h"
#include "util/trb_err.h"

typedef enum trb_expr_kind {
  TRB_EXPR_CONDITION = 1,   /* ConditionExpression ("Invalid ConditionExpression: ...") */
  TRB_EXPR_FILTER,          /* FilterExpression */
  TRB_EXPR_KEYCOND,         /* KeyConditionExpression */
  TRB_EXPR_PROJECTION,      /* ProjectionExpression */
  TRB_EXPR_UPDATE,          /* UpdateExpression */
} trb_expr_kind;

typedef struct trb_expr_env trb_expr_env;
typedef struct trb_expr trb_expr;

/*
 * names: n pairs ("#n" -> attribute name), copied. values: an M of
 * (":v" -> AttributeValue), borrowed (must outlive the env and its
 * expressions), or NULL. An empty (present but zero-entry) map is an error
 * ("ExpressionAttributeNames must not be empty" / "ExpressionAttributeValues
 * must not be empty"): pass names_present / values_present so the env can
 * tell absent from empty. Placeholder keys are checked (#[0-9A-Za-z_]+,
 * :[0-9A-Za-z_]+, at most 255 bytes). *out caller-owned.
 */
trb_err trb_expr_env_create(const char *const *name_keys, const char *const *name_vals,
                            size_t nnames, int names_present, const trb_av *values,
                            int values_present, trb_expr_env **out, trb_status *st);
void trb_expr_env_destroy(trb_expr_env *env);
/* Names and values together (keys, names, value sizes) at most this many
 * bytes (spec 5.8); trb_expr_env_create refuses more, and an empty
 * attribute name. */
#define TRB_EXPR_ENV_MAX (2 * 1024 * 1024)
/* After every expression of a request was parsed: "Value provided in
 * ExpressionAttributeNames unused in expressions: keys: {#a, #b}" (names
 * first, then values); with no expression parsed at all, "...can only be
 * specified when using expressions". */
trb_err trb_expr_env_check_unused(const trb_expr_env *env, trb_status *st);

/* Parses text (at most 4 KB) as the given kind. *out caller-owned. */
trb_err trb_expr_parse(trb_expr_kind kind, const char *text, trb_expr_env *env, trb_expr **out,
                       trb_status *st);
void trb_expr_destroy(trb_expr *e);

/* ---- conditions and filters ---- */
/* Evaluates against item (NULL = the item does not exist: every attribute is
 * missing). size() of an attribute without a size (N, BOOL, NULL) compares
 * as a missing attribute. */
trb_err trb_expr_eval(const trb_expr *e, const trb_av *item, int *pass, trb_status *st);
/* A trb_cond_fn (engine.h) over a `const trb_expr *` ctx. */
trb_err trb_expr_cond_fn(void *ctx, const trb_av *item, int *pass, trb_status *st);
/* The top-level attribute names a condition/filter refers to (for "Filter
 * Expression can only contain non-primary key attributes" checks). Returns 1
 * when `name` is one of them. */
int trb_expr_refers_to(const trb_expr *e, const char *name);

/* ---- updates ---- */
/*
 * Checks an update against the table's key schema, at request time:
 * "One or more parameter values were invalid: Cannot update attribute <k>.
 * This attribute is part of the key" (and the nested-path variant).
 */
trb_err trb_expr_update_check_keys(const trb_expr *e, const trb_keyschema *ks, trb_status *st);
/* Applies the update to item (NULL = absent: the result starts from key),
 * producing a new item (caller-owned); on an absent item an update of only
 * REMOVE and DELETE actions produces none (*new_item NULL: the item stays
 * absent, as in DynamoDB). Errors with DynamoDB's texts, e.g.
 * "The provided expression refers to an attribute that does not exist in
 * the item", "An operand in the update expression has an incorrect data
 * type", "The document path provided in the update expression is invalid for
 * update", number overflow. */
trb_err trb_expr_update(const trb_expr *e, const trb_av *key, const trb_av *item,
                        trb_av **new_item, trb_status *st);
/* A trb_update_fn (engine.h) over a `const trb_expr *` ctx. */
trb_err trb_expr_update_fn(void *ctx, const trb_av *key, const trb_av *item, trb_av **new_item,
                           trb_status *st);
/* The top-level attribute names the update's actions target, in order of
 * first appearance, without duplicates (for ReturnValues UPDATED_OLD /
 * UPDATED_NEW). Borrowed; valid while e lives. */
size_t trb_expr_update_targets(const trb_expr *e, const char *const **names);
/* UPDATED_OLD / UPDATED_NEW: from a whole item, the parts the update's
 * paths touched (nested paths keep their enclosing structure, as a
 * projection of the target paths would). NULL *out when nothing remains. */
trb_err trb_expr_update_pick(const trb_expr *e, const trb_av *item, trb_av **out, trb_status *st);

/* ---- projections ---- */
/* Returns a new item with only the projected paths (nested structure kept,
 * missing paths omitted). Caller-owned. */
trb_err trb_expr_project(const trb_expr *e, const trb_av *item, trb_av **out, trb_status *st);
/* The top-level attribute names a projection names (for index projection
 * checks). Borrowed. */
size_t trb_expr_projection_tops(const trb_expr *e, const char *const **names);

/* ---- key conditions ---- */
/*
 * Matches a KeyConditionExpression against a key schema (a table's or an
 * index's): the partition key equality and the optional sort-key condition.
 * Errors per spec 5.6 ("Query condition missed key schema element: <pk>",
 * "Query key condition not supported", "Invalid operator used in
 * KeyConditionExpression: OR", "KeyConditionExpressions must only contain
 * one condition per key", type mismatches: "One or more parameter values
 * were invalid: Condition parameter type does not match schema type").
 * The returned values are borrowed from the env.
 */
trb_err trb_expr_keycond(const trb_expr *e, const trb_keyschema *ks, const trb_av **pk,
                         trb_sk_op *op, const trb_av **sk1, const trb_av **sk2, trb_status *st);

#endif
