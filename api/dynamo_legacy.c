/*
 * dynamo_legacy.c -- DynamoDB's legacy request parameters (spec section 4:
 * "Legacy members ... still exist"), rewritten into the expression
 * parameters before a request is parsed, so one parser and one evaluator
 * serve both (see dynamo_legacy.h).
 *
 *   AttributesToGet [a, b]            ProjectionExpression "#lg0, #lg1"
 *   Expected {a: cond}                ConditionExpression
 *   QueryFilter / ScanFilter          FilterExpression
 *   KeyConditions                     KeyConditionExpression
 *     (ConditionalOperator AND | OR joins the conditions of Expected and
 *      of the filters; AND when absent)
 *   AttributeUpdates {a: {Action, Value}}  UpdateExpression
 *     PUT -> SET #a = :v;  DELETE -> REMOVE #a, or DELETE #a :v with a set;
 *     ADD -> ADD #a :v (a number or a set), or for a list
 *     SET #a = list_append(if_not_exists(#a, :empty), :v) as DynamoDB does
 *
 * A condition is {ComparisonOperator, AttributeValueList}, or in Expected
 * the older {Value} / {Exists: false} / {Exists: true, Value}:
 *   EQ NE LE LT GE GT -> #a = :v ...      NULL / NOT_NULL -> attribute_(not_)exists
 *   CONTAINS / NOT_CONTAINS -> (NOT) contains(#a, :v)
 *   BEGINS_WITH -> begins_with(#a, :v)    IN -> #a IN (:v0, ...)
 *   BETWEEN -> #a BETWEEN :v0 AND :v1
 * Names become #lgN and values :lgN in ExpressionAttributeNames/Values,
 * which a legacy request may not carry itself (DynamoDB refuses to mix the
 * two kinds, and so does this file, with DynamoDB's message).
 */
#include "api/dynamo_legacy.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/buf.h"

static const struct {
  unsigned flag;
  const char *name;
} legacy_members[] = {
    {API_LG_ATTRIBUTES_TO_GET, "AttributesToGet"}, {API_LG_EXPECTED, "Expected"},
    {API_LG_ATTRIBUTE_UPDATES, "AttributeUpdates"}, {API_LG_KEY_CONDITIONS, "KeyConditions"},
    {API_LG_QUERY_FILTER, "QueryFilter"},       {API_LG_SCAN_FILTER, "ScanFilter"},
};
#define NLEGACY (sizeof legacy_members / sizeof legacy_members[0])

static const char *const expr_members[] = {
    "ProjectionExpression", "ConditionExpression", "FilterExpression", "KeyConditionExpression",
    "UpdateExpression", "ExpressionAttributeNames", "ExpressionAttributeValues", NULL};

/* The rewrite in progress: the new names and values, and a text buffer. */
typedef struct lg {
  api_call *c;
  json_t *names, *vals;
  int nn, nv;
  trb_buf t;
  int oom;
} lg;

static void put(lg *g, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof tmp || trb_buf_append(&g->t, tmp, (size_t)n)) g->oom = 1;
}

/* attr's new #lgN placeholder into the text (and into ph_out when not NULL) */
static void put_name(lg *g, const char *attr, char *ph_out) {
  char ph[24];
  snprintf(ph, sizeof ph, "#lg%d", g->nn++);
  if (ph_out) memcpy(ph_out, ph, sizeof ph);
  if (json_object_set_new(g->names, ph, json_string(attr))) g->oom = 1;
  put(g, "%s", ph);
}

static void put_value(lg *g, json_t *v) {
  char ph[24];
  snprintf(ph, sizeof ph, ":lg%d", g->nv++);
  if (json_object_set(g->vals, ph, v)) g->oom = 1;
  put(g, "%s", ph);
}

/* The type tag of an AttributeValue ("S", "SS", ...), or "" */
static const char *av_type(json_t *v) {
  const char *k = "";
  json_t *x;
  if (json_is_object(v) && json_object_size(v) == 1) json_object_foreach(v, k, x) break;
  return k;
}

static int scalar(const char *t) { return !strcmp(t, "S") || !strcmp(t, "N") || !strcmp(t, "B"); }

static const struct {
  const char *op, *sym; /* sym: the comparator, or NULL for the functions */
  int nargs;            /* -1: one or more */
} ops[] = {
    {"EQ", "=", 1},           {"NE", "<>", 1},          {"LE", "<=", 1},
    {"LT", "<", 1},           {"GE", ">=", 1},          {"GT", ">", 1},
    {"NOT_NULL", NULL, 0},    {"NULL", NULL, 0},        {"CONTAINS", NULL, 1},
    {"NOT_CONTAINS", NULL, 1}, {"BEGINS_WITH", NULL, 1}, {"IN", NULL, -1},
    {"BETWEEN", NULL, 2},
};

/* One condition on attribute attr: into g->t. */
static int condition(lg *g, const char *attr, json_t *cj, int expected) {
  api_call *c = g->c;
  if (!json_is_object(cj)) return api_fail(c, "SerializationException", "Expected map or null");
  json_t *opj = json_object_get(cj, "ComparisonOperator");
  json_t *list = json_object_get(cj, "AttributeValueList");
  json_t *value = expected ? json_object_get(cj, "Value") : NULL;
  json_t *exists = expected ? json_object_get(cj, "Exists") : NULL;
  if (exists && !json_is_boolean(exists))
    return api_fail(c, "SerializationException", "Unexpected value type in payload");
  if (expected && !opj) { /* the older form */
    if (list)
      return api_fail(c, "ValidationException",
                      "One or more parameter values were invalid: AttributeValueList can only be "
                      "used with a ComparisonOperator for Attribute: %s", attr);
    if (exists && !json_is_true(exists)) {
      if (value)
        return api_fail(c, "ValidationException",
                        "One or more parameter values were invalid: Value cannot be used when "
                        "Exists is false for Attribute: %s", attr);
      put(g, "attribute_not_exists(");
      put_name(g, attr, NULL);
      put(g, ")");
      return 0;
    }
    if (!value)
      return api_fail(c, "ValidationException",
                      "One or more parameter values were invalid: Value must be provided when "
                      "Exists is %s for Attribute: %s", exists ? "true" : "null", attr);
    put_name(g, attr, NULL);
    put(g, " = ");
    put_value(g, value);
    return 0;
  }
  if (value || exists)
    return api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: Exists and Value cannot be used "
                    "with ComparisonOperator for Attribute: %s", attr);
  if (!json_is_string(opj))
    return api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: ComparisonOperator is required "
                    "for Attribute: %s", attr);
  if (list && !json_is_array(list))
    return api_fail(c, "SerializationException", "Unexpected value type in payload");
  const char *op = json_string_value(opj);
  size_t i = 0, n = list ? json_array_size(list) : 0;
  while (i < sizeof ops / sizeof ops[0] && strcmp(ops[i].op, op)) i++;
  if (i == sizeof ops / sizeof ops[0])
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value '%s' at 'comparisonOperator' failed to "
                    "satisfy constraint: Member must satisfy enum value set: [IN, NULL, BETWEEN, "
                    "LT, NOT_CONTAINS, EQ, GT, NOT_NULL, NE, LE, BEGINS_WITH, GE, CONTAINS]", op);
  if (ops[i].nargs >= 0 ? n != (size_t)ops[i].nargs : n < 1)
    return api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: Invalid number of argument(s) "
                    "for the %s ComparisonOperator", op);
  /* which AttributeValue types each operator takes */
  int any = !strcmp(op, "EQ") || !strcmp(op, "NE");
  int sb = !strcmp(op, "BEGINS_WITH");
  for (size_t k = 0; k < n; k++) {
    const char *t = av_type(json_array_get(list, k));
    if (!any && !(sb ? !strcmp(t, "S") || !strcmp(t, "B") : scalar(t)))
      return api_fail(c, "ValidationException",
                      "One or more parameter values were invalid: ComparisonOperator %s is not "
                      "valid for %s AttributeValue type", op, *t ? t : "an unknown");
  }
  if (ops[i].sym) {
    put_name(g, attr, NULL);
    put(g, " %s ", ops[i].sym);
    put_value(g, json_array_get(list, 0));
  } else if (!strcmp(op, "NOT_NULL") || !strcmp(op, "NULL")) {
    put(g, op[0] == 'N' && op[1] == 'O' ? "attribute_exists(" : "attribute_not_exists(");
    put_name(g, attr, NULL);
    put(g, ")");
  } else if (!strcmp(op, "IN")) {
    put_name(g, attr, NULL);
    put(g, " IN (");
    for (size_t k = 0; k < n; k++) {
      if (k) put(g, ", ");
      put_value(g, json_array_get(list, k));
    }
    put(g, ")");
  } else if (!strcmp(op, "BETWEEN")) {
    put_name(g, attr, NULL);
    put(g, " BETWEEN ");
    put_value(g, json_array_get(list, 0));
    put(g, " AND ");
    put_value(g, json_array_get(list, 1));
  } else { /* CONTAINS, NOT_CONTAINS, BEGINS_WITH */
    put(g, !strcmp(op, "NOT_CONTAINS") ? "NOT contains(" : !strcmp(op, "CONTAINS") ? "contains("
                                                                                   : "begins_with(");
    put_name(g, attr, NULL);
    put(g, ", ");
    put_value(g, json_array_get(list, 0));
    put(g, ")");
  }
  return 0;
}

/* A map of conditions (Expected, a filter, KeyConditions) joined by joiner,
 * into member. */
static int conditions(lg *g, json_t *obj, json_t *m, const char *joiner, const char *member,
                      int expected) {
  if (!json_is_object(m)) return api_fail(g->c, "SerializationException", "Expected map or null");
  if (!json_object_size(m)) return 0; /* nothing to check */
  const char *attr;
  json_t *cj;
  int first = 1;
  trb_buf_reset(&g->t);
  json_object_foreach(m, attr, cj) {
    if (!first) put(g, " %s ", joiner);
    first = 0;
    put(g, "(");
    if (condition(g, attr, cj, expected)) return -1;
    put(g, ")");
  }
  if (g->oom || trb_buf_append(&g->t, "", 1)) return api_fail(g->c, "InternalServerError", "out of memory");
  json_object_set_new(obj, member, json_string((const char *)g->t.p));
  return 0;
}

static int updates(lg *g, json_t *obj, json_t *m) {
  api_call *c = g->c;
  if (!json_is_object(m)) return api_fail(c, "SerializationException", "Expected map or null");
  enum { CL_SET, CL_REMOVE, CL_ADD, CL_DELETE };
  static const char *const clause[] = {"SET", "REMOVE", "ADD", "DELETE"};
  trb_buf part[4];
  for (int i = 0; i < 4; i++) trb_buf_init(&part[i], 0);
  const char *attr;
  json_t *u;
  int rc = 0;
  json_t *empty_list = NULL;
  json_object_foreach(m, attr, u) {
    if (!json_is_object(u)) {
      rc = api_fail(c, "SerializationException", "Expected map or null");
      break;
    }
    json_t *aj = json_object_get(u, "Action"), *v = json_object_get(u, "Value");
    const char *a = aj ? json_string_value(aj) : "PUT";
    if (!a || (strcmp(a, "PUT") && strcmp(a, "DELETE") && strcmp(a, "ADD"))) {
      rc = api_fail(c, "ValidationException",
                    "1 validation error detected: Value '%s' at 'attributeUpdates.%s.member.action'"
                    " failed to satisfy constraint: Member must satisfy enum value set: [ADD, PUT, "
                    "DELETE]", a ? a : "", attr);
      break;
    }
    if (!v && strcmp(a, "DELETE")) {
      rc = api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: Only DELETE action is allowed "
                    "when no attribute value is specified");
      break;
    }
    const char *t = v ? av_type(v) : "";
    int set = !strcmp(t, "SS") || !strcmp(t, "NS") || !strcmp(t, "BS");
    int append = !strcmp(a, "ADD") && !strcmp(t, "L"); /* ADD of a list appends to it */
    int k = !strcmp(a, "PUT") || append ? CL_SET
            : !strcmp(a, "ADD")         ? CL_ADD
            : v                         ? CL_DELETE
                                        : CL_REMOVE;
    if (k == CL_DELETE && !set) {
      rc = api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: DELETE action with value is not "
                    "supported for the type %s", *t ? t : "unknown");
      break;
    }
    if (k == CL_ADD && !set && strcmp(t, "N")) {
      rc = api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: ADD action is not supported for "
                    "the type %s", *t ? t : "unknown");
      break;
    }
    trb_buf_reset(&g->t);
    char self[24];
    put_name(g, attr, self);
    if (append) {
      if (!empty_list) empty_list = json_pack("{s:[]}", "L");
      put(g, " = list_append(if_not_exists(%s, ", self);
      put_value(g, empty_list);
      put(g, "), ");
      put_value(g, v);
      put(g, ")");
    } else if (k == CL_SET) {
      put(g, " = ");
      put_value(g, v);
    } else if (k != CL_REMOVE) {
      put(g, " ");
      put_value(g, v);
    }
    if (g->oom || (part[k].len && trb_buf_append(&part[k], ", ", 2)) ||
        trb_buf_append(&part[k], g->t.p, g->t.len)) {
      rc = api_fail(c, "InternalServerError", "out of memory");
      break;
    }
  }
  if (!rc) {
    trb_buf_reset(&g->t);
    for (int i = 0; i < 4; i++) {
      if (!part[i].len) continue;
      put(g, "%s%s ", g->t.len ? " " : "", clause[i]);
      if (trb_buf_append(&g->t, part[i].p, part[i].len)) g->oom = 1;
    }
    if (g->oom || trb_buf_append(&g->t, "", 1)) rc = api_fail(c, "InternalServerError", "out of memory");
    else if (g->t.len > 1) json_object_set_new(obj, "UpdateExpression", json_string((const char *)g->t.p));
  }
  json_decref(empty_list);
  for (int i = 0; i < 4; i++) trb_buf_fini(&part[i]);
  return rc;
}

static int attributes_to_get(lg *g, json_t *obj, json_t *a) {
  api_call *c = g->c;
  if (!json_is_array(a)) return api_fail(c, "SerializationException", "Unexpected value type in payload");
  if (!json_array_size(a))
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value '[]' at 'attributesToGet' failed to "
                    "satisfy constraint: Member must have length greater than or equal to 1");
  trb_buf_reset(&g->t);
  for (size_t i = 0; i < json_array_size(a); i++) {
    json_t *s = json_array_get(a, i);
    if (!json_is_string(s))
      return api_fail(c, "SerializationException", "Unexpected value type in payload");
    for (size_t j = 0; j < i; j++)
      if (json_equal(json_array_get(a, j), s))
        return api_fail(c, "ValidationException",
                        "One or more parameter values were invalid: Duplicate value in attribute "
                        "name: %s", json_string_value(s));
    if (i) put(g, ", ");
    put_name(g, json_string_value(s), NULL);
  }
  if (g->oom || trb_buf_append(&g->t, "", 1)) return api_fail(c, "InternalServerError", "out of memory");
  json_object_set_new(obj, "ProjectionExpression", json_string((const char *)g->t.p));
  return 0;
}

int api_legacy(api_call *c, json_t *obj, unsigned allowed) {
  unsigned have = 0;
  for (size_t i = 0; i < NLEGACY; i++)
    if (json_object_get(obj, legacy_members[i].name)) have |= legacy_members[i].flag;
  json_t *cop = json_object_get(obj, "ConditionalOperator");
  if (!have && !cop) return 0;
  for (size_t i = 0; i < NLEGACY; i++)
    if ((have & legacy_members[i].flag) && !(allowed & legacy_members[i].flag))
      return api_fail(c, "ValidationException",
                      "The parameter %s is not valid for this operation", legacy_members[i].name);
  /* DynamoDB's refusal to mix the two kinds, naming both */
  char legacy[256] = "", expr[256] = "";
  for (size_t i = 0; i < NLEGACY; i++)
    if (have & legacy_members[i].flag)
      snprintf(legacy + strlen(legacy), sizeof legacy - strlen(legacy), "%s%s",
               legacy[0] ? ", " : "", legacy_members[i].name);
  if (cop)
    snprintf(legacy + strlen(legacy), sizeof legacy - strlen(legacy), "%sConditionalOperator",
             legacy[0] ? ", " : "");
  for (int i = 0; expr_members[i]; i++)
    if (json_object_get(obj, expr_members[i]))
      snprintf(expr + strlen(expr), sizeof expr - strlen(expr), "%s%s", expr[0] ? ", " : "",
               expr_members[i]);
  if (expr[0])
    return api_fail(c, "ValidationException",
                    "Can not use both expression and non-expression parameters in the same "
                    "request: Non-expression parameters: {%s} Expression parameters: {%s}",
                    legacy, expr);
  const char *joiner = "AND";
  if (cop) {
    const char *s = json_string_value(cop);
    if (!s || (strcmp(s, "AND") && strcmp(s, "OR")))
      return api_fail(c, "ValidationException",
                      "1 validation error detected: Value '%s' at 'conditionalOperator' failed "
                      "to satisfy constraint: Member must satisfy enum value set: [AND, OR]",
                      s ? s : "");
    json_t *on = json_object_get(obj, "Expected");
    if (!on) on = json_object_get(obj, "QueryFilter");
    if (!on) on = json_object_get(obj, "ScanFilter");
    if (!on || json_object_size(on) < 2)
      return api_fail(c, "ValidationException",
                      "One or more parameter values were invalid: ConditionalOperator can only be "
                      "used when Filter or Expected has two or more elements");
    joiner = s;
  }
  lg g = {.c = c, .names = json_object(), .vals = json_object()};
  trb_buf_init(&g.t, 0);
  int rc = 0;
  json_t *m;
  if (!rc && (m = json_object_get(obj, "AttributesToGet"))) rc = attributes_to_get(&g, obj, m);
  if (!rc && (m = json_object_get(obj, "Expected")))
    rc = conditions(&g, obj, m, joiner, "ConditionExpression", 1);
  if (!rc && (m = json_object_get(obj, "KeyConditions")))
    rc = conditions(&g, obj, m, "AND", "KeyConditionExpression", 0);
  if (!rc && (m = json_object_get(obj, "QueryFilter")))
    rc = conditions(&g, obj, m, joiner, "FilterExpression", 0);
  if (!rc && (m = json_object_get(obj, "ScanFilter")))
    rc = conditions(&g, obj, m, joiner, "FilterExpression", 0);
  if (!rc && (m = json_object_get(obj, "AttributeUpdates"))) rc = updates(&g, obj, m);
  if (!rc) {
    for (size_t i = 0; i < NLEGACY; i++) json_object_del(obj, legacy_members[i].name);
    json_object_del(obj, "ConditionalOperator");
    if (json_object_size(g.names)) json_object_set(obj, "ExpressionAttributeNames", g.names);
    if (json_object_size(g.vals)) json_object_set(obj, "ExpressionAttributeValues", g.vals);
  }
  json_decref(g.names);
  json_decref(g.vals);
  trb_buf_fini(&g.t);
  return rc;
}
