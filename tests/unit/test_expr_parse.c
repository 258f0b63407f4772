/*
 * test_expr_parse.c -- the expression parsers (engine/expr_parse.c,
 * engine/expr_env.c): tokens and syntax errors with DynamoDB's
 * token/near texts, empty and oversize expressions, reserved words,
 * placeholders (undefined, unused across expressions, bad keys, empty
 * maps), redundant parentheses, operand distinctness, function misuse,
 * operand counts and types, BETWEEN bounds, IN and operator limits, path
 * depth, update sections and overlapping/conflicting paths, and a fuzz loop
 * of random token soup (only TRB_OK or TRB_EINVAL, never a crash).
 */
#include <time.h>

#include "expr_testutil.h"

#define C TRB_EXPR_CONDITION
#define U TRB_EXPR_UPDATE
#define P TRB_EXPR_PROJECTION
#define K TRB_EXPR_KEYCOND
#define F TRB_EXPR_FILTER

#define VALS "{\":v\":{\"N\":\"1\"},\":w\":{\"S\":\"x\"}}"
#define SYN(kind, tok, near) "Invalid " kind "Expression: Syntax error; token: \"" tok "\", near: \"" near "\""

/* ---- syntax ---- */

static void test_syntax_errors(void **state) {
  (void)state;
  perr(C, NULL, NULL, "foo", SYN("Condition", "<EOF>", "foo"));
  perr(C, NULL, VALS, "attribute_type()", SYN("Condition", ")", "()"));
  perr(U, NULL, VALS, "SET _123 = :v", SYN("Update", "_", "SET _123"));
  perr(P, NULL, NULL, "l[a]", SYN("Projection", "a", "[a]"));
  perr(U, NULL, NULL, "SET", SYN("Update", "<EOF>", "SET"));
  perr(C, NULL, VALS, "a = :v b", SYN("Condition", "b", ":v b"));
  perr(C, NULL, VALS, "a AND b = :v", SYN("Condition", "AND", "a AND b"));
  perr(C, NULL, VALS, "a == :v", SYN("Condition", "=", "== :v"));
  perr(C, NULL, VALS, "a = :v)", SYN("Condition", ")", ":v)"));
  perr(C, NULL, VALS, "(a = :v", SYN("Condition", "<EOF>", ":v"));
  perr(C, NULL, VALS, "a[-1] = :v", SYN("Condition", "-", "[-1"));
  perr(C, NULL, VALS, "a[0.4] = :v", SYN("Condition", ".", "0.4"));
  perr(C, NULL, VALS, "a IN ()", SYN("Condition", ")", "()"));
  perr(C, NULL, VALS, "a = :", SYN("Condition", ":", "= :"));
  perr(C, NULL, VALS, "a = \xc3\xa9", SYN("Condition", "\xc3\xa9", "= \xc3\xa9"));
  perr(C, NULL, VALS, "a != :v", SYN("Condition", "!", "a !="));
  /* invalid UTF-8 never reaches a message (they end up in JSON bodies) */
  perr(C, NULL, VALS, "a = \xff", SYN("Condition", "?", "= ?"));
  perr(C, NULL, VALS, "a = \xe2\x82", SYN("Condition", "?", "= ?"));
  perr(C, NULL, VALS, "a = # AND", SYN("Condition", "#", "= # AND"));
  perr(C, NULL, VALS, "a BETWEEN :v :v", SYN("Condition", ":v", ":v :v"));
  perr(C, NULL, VALS, "NOT a", SYN("Condition", "<EOF>", "a"));
  perr(C, NULL, VALS, "(a) AND b = :v", SYN("Condition", "AND", ") AND b"));
  perr(C, NULL, VALS, "(a = :v) = :v", SYN("Condition", "=", ") = :v"));
  perr(C, NULL, VALS, "a = b = :v", SYN("Condition", "=", "b = :v"));
  perr(C, NULL, VALS, "a = :v AND", SYN("Condition", "<EOF>", "AND"));
  perr(C, NULL, VALS, "a.and = :v", SYN("Condition", "and", ".and ="));
  perr(C, NULL, VALS, "a = 5", SYN("Condition", "5", "= 5"));
  perr(F, NULL, VALS, "a =", SYN("Filter", "<EOF>", "="));
  perr(K, NULL, VALS, "pk = :v sk", SYN("KeyCondition", "sk", ":v sk"));
  /* update grammar */
  perr(U, NULL, VALS, "SET a = :v + :v + :v", SYN("Update", "+", ":v + :v"));
  perr(U, NULL, VALS, "SET c = if_not_exists(c, :v+:v)", SYN("Update", "+", ":v+:v"));
  perr(U, NULL, VALS, "SET a[:v] = :v", SYN("Update", ":v", "[:v]"));
  perr(U, "{\"#x\":\"x\"}", VALS, "SET a[#x] = :v", SYN("Update", "#x", "[#x]"));
  perr(U, NULL, VALS, "SET :v = :v", SYN("Update", ":v", "SET :v ="));
  perr(U, NULL, VALS, "HELLO b = :v", SYN("Update", "HELLO", "HELLO b"));
  perr(U, NULL, VALS, "SET a = :v,", SYN("Update", "<EOF>", ","));
  perr(U, NULL, VALS, "SET a :v", SYN("Update", ":v", "a :v"));
  perr(U, NULL, VALS, "ADD a b", SYN("Update", "b", "a b"));
  perr(U, NULL, VALS, "REMOVE a b", SYN("Update", "b", "a b"));
  perr(U, NULL, VALS, "SET a = _f(b)", SYN("Update", "_", "= _f"));
  perr(U, NULL, VALS, "SET a = (((:v)))", SYN("Update", "(", "((:v"));
  perr(U, NULL, VALS, "SET set = :v", SYN("Update", "set", "SET set ="));
  /* projections */
  perr(P, NULL, NULL, "a,", SYN("Projection", "<EOF>", ","));
  perr(P, NULL, NULL, ",a", SYN("Projection", ",", ",a"));
  perr(P, NULL, NULL, "a,,b", SYN("Projection", ",", ",,b"));
  perr(P, NULL, VALS, ":v", SYN("Projection", ":v", ":v"));
  perr(P, NULL, NULL, "a b", SYN("Projection", "b", "a b"));
}

static void test_long_placeholder_token(void **state) {
  (void)state;
  char text[300];
  memcpy(text, "a = #", 5);
  memset(text + 5, 'x', 255);
  text[260] = '\0'; /* "#" + 255 bytes = 256 > 255 */
  xenv x;
  xenv_init(&x, NULL, NULL);
  trb_expr *e = NULL;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_expr_parse(C, text, x.env, &e, &st), TRB_EINVAL);
  assert_null(e);
  assert_true(strncmp(trb_status_msg(&st),
                      "Invalid ConditionExpression: Syntax error; token: \"#xxx", 54) == 0);
  /* 255 bytes is fine (the name is merely undefined) */
  text[259] = '\0';
  assert_int_equal(trb_expr_parse(C, text, x.env, &e, &st), TRB_EINVAL);
  assert_non_null(strstr(trb_status_msg(&st), "attribute name: #xxx"));
  xenv_fini(&x);
}

static void test_whitespace_and_case(void **state) {
  (void)state;
  xenv x;
  xenv_init(&x, NULL, VALS);
  const char *ok[] = {
      "a=:v",
      "  a\t=\r\n:v  ",
      "a = :v and b = :v or not c = :v",
      "a BeTwEeN :v AnD :v",
      "a in (:v, :v)",
      "a . b [ 1 ] = :v",
      "a.b[1].c[22][0].d = :v",
      "A_b_9 = :v",
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    trb_expr *e = xparse(&x, C, ok[i]);
    trb_expr_destroy(e);
  }
  trb_expr *e = xparse(&x, U, "set a = :v remove b add c :v");
  trb_expr_destroy(e);
  e = xparse(&x, U, "  sEt   a=:v  ");
  trb_expr_destroy(e);
  xenv_fini(&x);
}

static void test_empty_and_too_long(void **state) {
  (void)state;
  perr(C, NULL, NULL, "", "Invalid ConditionExpression: The expression can not be empty;");
  perr(F, NULL, NULL, " \t\n", "Invalid FilterExpression: The expression can not be empty;");
  perr(K, NULL, NULL, "", "Invalid KeyConditionExpression: The expression can not be empty;");
  perr(P, NULL, NULL, "", "Invalid ProjectionExpression: The expression can not be empty;");
  perr(U, NULL, NULL, "", "Invalid UpdateExpression: The expression can not be empty;");
  char *big = malloc(4098);
  memset(big, 'a', 4097);
  big[4097] = '\0';
  perr(P, NULL, NULL, big,
       "Invalid ProjectionExpression: Expression size has exceeded the maximum allowed size; "
       "expression size: 4097");
  big[4096] = '\0'; /* exactly 4 KB is allowed */
  xenv x;
  xenv_init(&x, NULL, NULL);
  trb_expr *e = xparse(&x, P, big);
  trb_expr_destroy(e);
  xenv_fini(&x);
  free(big);
}

/* ---- reserved words ---- */

#define RES(kind, w) "Invalid " kind "Expression: Attribute name is a reserved keyword; reserved keyword: " w

static void test_reserved_words(void **state) {
  (void)state;
  perr(C, NULL, VALS, "name = :v", RES("Condition", "name"));
  perr(C, NULL, VALS, "Status = :v", RES("Condition", "Status"));
  perr(C, NULL, VALS, "a.SiZe = :v", RES("Condition", "SiZe"));
  perr(C, NULL, VALS, "attribute_exists(zone)", RES("Condition", "zone"));
  perr(F, NULL, VALS, "a = :v AND size(data) > :v", RES("Filter", "data"));
  perr(U, NULL, VALS, "SET year = :v", RES("Update", "year"));
  perr(U, NULL, VALS, "SET a = ttl", RES("Update", "ttl"));
  perr(U, NULL, NULL, "REMOVE a, Data", RES("Update", "Data"));
  perr(P, NULL, NULL, "a, b.comment", RES("Projection", "comment"));
  perr(K, NULL, VALS, "pk = :v AND key = :v", RES("KeyCondition", "key"));
  /* the first reserved word wins */
  perr(C, NULL, VALS, "name = :v AND status = :v", RES("Condition", "name"));
  /* reserved beats an undefined placeholder in conditions (dynalite order) */
  perr(C, NULL, VALS, "name = :nope", RES("Condition", "name"));

  /* placeholders never collide; function names are not attribute names;
   * REMOVE is not on the list */
  xenv x;
  xenv_init(&x, "{\"#n\":\"name\",\"#s\":\"size\"}", "{\":v\":{\"N\":\"1\"}}");
  trb_expr *e = xparse(&x, C, "#n = :v AND size(#s) > :v AND remove = :v");
  assert_true(trb_expr_refers_to(e, "name"));
  assert_true(trb_expr_refers_to(e, "size"));
  assert_true(trb_expr_refers_to(e, "remove"));
  assert_false(trb_expr_refers_to(e, "v"));
  trb_expr_destroy(e);
  assert_int_equal(trb_expr_env_check_unused(x.env, NULL), TRB_OK);
  xenv_fini(&x);
}

/* ---- placeholders ---- */

static void test_undefined_placeholders(void **state) {
  (void)state;
  const char *nm = "An expression attribute name used in the document path is not defined; "
                   "attribute name: ";
  const char *vm = "An expression attribute value used in expression is not defined; attribute "
                   "value: ";
  char want[512];
  snprintf(want, sizeof want, "Invalid ConditionExpression: %s#x", nm);
  perr(C, NULL, VALS, "#x = :v", want);
  snprintf(want, sizeof want, "Invalid ConditionExpression: %s:x", vm);
  perr(C, NULL, NULL, "a = :x", want);
  perr(C, "{\"#a\":\"a\"}", VALS, "#a = :x", want);
  /* conditions: the first undefined placeholder in the text wins */
  perr(C, NULL, VALS, "a = :x AND #y = :v", want);
  snprintf(want, sizeof want, "Invalid ConditionExpression: %s#y", nm);
  perr(C, NULL, VALS, "#y = :x", want);
  /* updates: names are reported before values */
  snprintf(want, sizeof want, "Invalid UpdateExpression: %s#y", nm);
  perr(U, NULL, VALS, "SET a = :x, #y = :v", want);
  snprintf(want, sizeof want, "Invalid UpdateExpression: %s:x", vm);
  perr(U, NULL, VALS, "SET a = if_not_exists(b, :x)", want);
  snprintf(want, sizeof want, "Invalid ProjectionExpression: %s#p", nm);
  perr(P, NULL, NULL, "a.#p", want);
  snprintf(want, sizeof want, "Invalid KeyConditionExpression: %s:k", vm);
  perr(K, NULL, VALS, "pk = :k", want);
}

/* Values without names, and no expression; an empty attribute name; more
 * than 2 MB of names and values (spec 5.8). */
static void test_env_refusals(void **state) {
  (void)state;
  xenv x;
  trb_status st;
  trb_status_init(&st);
  xenv_init(&x, NULL, "{\":v\":{\"N\":\"1\"}}");
  assert_int_equal(trb_expr_env_check_unused(x.env, &st), TRB_EINVAL);
  assert_string_equal(trb_status_msg(&st),
                      "ExpressionAttributeValues can only be specified when using expressions");
  xenv_fini(&x);
  assert_int_equal(xenv_try(&x, "{\"#a\":\"a\",\"#e\":\"\"}", NULL, &st), TRB_EINVAL);
  assert_string_equal(trb_status_msg(&st),
                      "ExpressionAttributeNames contains invalid value: Empty attribute name for "
                      "key #e");
  xenv_fini(&x);
  /* three values of 750,000 bytes: 2.25 MB; two: 1.5 MB, accepted */
  size_t big = 750000;
  char *vals = malloc(3 * (big + 40) + 8), *o = vals;
  o += sprintf(o, "{");
  for (int i = 0; i < 3; i++) {
    o += sprintf(o, "%s\":v%d\":{\"S\":\"", i ? "," : "", i);
    memset(o, 'x', big);
    o += big;
    o += sprintf(o, "\"}");
  }
  sprintf(o, "}");
  assert_int_equal(xenv_try(&x, NULL, vals, &st), TRB_EINVAL);
  assert_non_null(strstr(trb_status_msg(&st), "the maximum is 2097152 (2 MB)"));
  xenv_fini(&x);
  char *cut = strstr(vals, ",\":v2\"");
  strcpy(cut, "}");
  assert_int_equal(xenv_try(&x, NULL, vals, &st), TRB_OK);
  xenv_fini(&x);
  free(vals);
}

static void test_unused_across_expressions(void **state) {
  (void)state;
  xenv x;
  trb_status st;
  trb_status_init(&st);
  xenv_init(&x, "{\"#a\":\"a\",\"#b\":\"b\",\"#c\":\"c\"}",
            "{\":x\":{\"N\":\"1\"},\":y\":{\"S\":\"s\"},\":z\":{\"S\":\"t\"}}");
  /* no expression at all: DynamoDB's other message */
  assert_int_equal(trb_expr_env_check_unused(x.env, &st), TRB_EINVAL);
  assert_string_equal(trb_status_msg(&st),
                      "ExpressionAttributeNames can only be specified when using expressions");
  trb_expr *c = xparse(&x, C, "#a = :x");
  assert_int_equal(trb_expr_env_check_unused(x.env, &st), TRB_EINVAL);
  assert_string_equal(trb_status_msg(&st),
                      "Value provided in ExpressionAttributeNames unused in expressions: keys: "
                      "{#b, #c}");
  trb_expr *p = xparse(&x, P, "#b, #c.d");
  assert_int_equal(trb_expr_env_check_unused(x.env, &st), TRB_EINVAL);
  assert_string_equal(trb_status_msg(&st),
                      "Value provided in ExpressionAttributeValues unused in expressions: keys: "
                      "{:y, :z}");
  trb_expr *u = xparse(&x, U, "SET q = :y ADD r :x");
  assert_int_equal(trb_expr_env_check_unused(x.env, &st), TRB_EINVAL);
  assert_string_equal(trb_status_msg(&st),
                      "Value provided in ExpressionAttributeValues unused in expressions: keys: "
                      "{:z}");
  trb_expr *f = xparse(&x, F, "q <> :z");
  trb_status_init(&st);
  assert_int_equal(trb_expr_env_check_unused(x.env, &st), TRB_OK);
  trb_expr_destroy(c);
  trb_expr_destroy(p);
  trb_expr_destroy(u);
  trb_expr_destroy(f);
  xenv_fini(&x);

  /* absent maps: nothing to report */
  xenv_init(&x, NULL, NULL);
  assert_int_equal(trb_expr_env_check_unused(x.env, &st), TRB_OK);
  xenv_fini(&x);
}

static void env_err(const char *names, const char *values, const char *msg) {
  xenv x;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(xenv_try(&x, names, values, &st), TRB_EINVAL);
  assert_null(x.env);
  assert_string_equal(trb_status_msg(&st), msg);
  trb_av_destroy(x.vals);
}

static void test_env_errors(void **state) {
  (void)state;
  env_err("{}", NULL, "ExpressionAttributeNames must not be empty");
  env_err(NULL, "{}", "ExpressionAttributeValues must not be empty");
  env_err("{\"a\":\"x\"}", NULL,
          "ExpressionAttributeNames contains invalid key: Syntax error; key: \"a\"");
  env_err("{\"#\":\"x\"}", NULL,
          "ExpressionAttributeNames contains invalid key: Syntax error; key: \"#\"");
  env_err("{\"#a-b\":\"x\"}", NULL,
          "ExpressionAttributeNames contains invalid key: Syntax error; key: \"#a-b\"");
  env_err(NULL, "{\"v\":{\"N\":\"1\"}}",
          "ExpressionAttributeValues contains invalid key: Syntax error; key: \"v\"");
  env_err(NULL, "{\":a.b\":{\"N\":\"1\"}}",
          "ExpressionAttributeValues contains invalid key: Syntax error; key: \":a.b\"");
  /* a 256-byte key is too long; 255 is fine */
  char names[400];
  strcpy(names, "{\"#");
  memset(names + 3, 'k', 255);
  strcpy(names + 258, "\":\"x\"}");
  char want[400];
  snprintf(want, sizeof want,
           "ExpressionAttributeNames contains invalid key: Syntax error; key: \"%.200s\"",
           names + 2); /* quoted text is cut at 200 bytes */
  env_err(names, NULL, want);
  strcpy(names + 257, "\":\"x\"}");
  xenv x;
  xenv_init(&x, names, NULL);
  xenv_fini(&x);

  /* values are validated like any AttributeValue */
  trb_av *vals = trb_av_new_m();
  assert_int_equal(trb_av_m_set(vals, ":s", 2, trb_av_new_set(TRB_T_SS)), TRB_OK);
  trb_expr_env *env = NULL;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_expr_env_create(NULL, NULL, 0, 0, vals, 1, &env, &st), TRB_EINVAL);
  assert_null(env);
  assert_string_equal(trb_status_msg(&st),
                      "ExpressionAttributeValues contains invalid value: One or more parameter "
                      "values were invalid: An string set  may not be empty for key :s");
  trb_av_destroy(vals);
}

/* ---- condition checks ---- */

static void test_redundant_parentheses(void **state) {
  (void)state;
  const char *m = "Invalid ConditionExpression: The expression has redundant parentheses;";
  perr(C, NULL, VALS, "((a = :v))", m);
  perr(C, NULL, VALS, "((a)) = :v", m);
  perr(C, NULL, VALS, "a = ((:v))", m);
  perr(C, NULL, VALS, "b = :v OR ((a = :v))", m);
  perr(C, NULL, VALS, "NOT ((a = :v))", m);
  perr(C, NULL, VALS, "contains(((a)), :v)", m);
  xenv x;
  xenv_init(&x, NULL, VALS);
  const char *ok[] = {"(a = :v)", "(a) = :v", "a = (:v)", "((a = :v) AND b = :v)",
                      "NOT (a = :v)", "(a = :v) OR ((b = :v) AND c = :v)", "(a) IN ((:v), :v)",
                      "(attribute_exists(a))", "contains((a), (:v))"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) trb_expr_destroy(xparse(&x, C, ok[i]));
  xenv_fini(&x);
}

#define DIST(op, first) \
  "Invalid ConditionExpression: The first operand must be distinct from the remaining operands " \
  "for this operator or function; operator: " op ", first operand: " first

static void test_operand_distinctness(void **state) {
  (void)state;
  perr(C, NULL, NULL, "a = a", DIST("=", "[a]"));
  perr(C, NULL, NULL, "a.b[1] <> a.b[1]", DIST("<>", "[a, b, [1]]"));
  perr(C, NULL, NULL, "contains(a, a)", DIST("contains", "[a]"));
  perr(C, NULL, NULL, "begins_with(x.y, x.y)", DIST("begins_with", "[x, y]"));
  perr(C, "{\"#n\":\"a\"}", NULL, "#n >= a", DIST(">=", "[a]"));
  xenv x;
  xenv_init(&x, NULL, VALS);
  trb_expr_destroy(xparse(&x, C, "a = b"));
  trb_expr_destroy(xparse(&x, C, "a[1] = a[2]"));
  trb_expr_destroy(xparse(&x, C, "a.b = a"));
  trb_expr_destroy(xparse(&x, C, ":v = :v"));
  xenv_fini(&x);
}

#define MISUSED(fn) \
  "Invalid ConditionExpression: The function is not allowed to be used this way in an " \
  "expression; function: " fn
#define BADTYPE(kind, fn, t) \
  "Invalid " kind "Expression: Incorrect operand type for operator or function; operator or " \
  "function: " fn ", operand type: " t
#define NOPS(kind, fn, n) \
  "Invalid " kind "Expression: Incorrect number of operands for operator or function; operator " \
  "or function: " fn ", number of operands: " n

static void test_functions(void **state) {
  (void)state;
  const char *vals = "{\":n\":{\"N\":\"1\"},\":s\":{\"S\":\"x\"},\":t\":{\"S\":\"X\"},"
                     "\":l\":{\"L\":[]},\":m\":{\"M\":{}},\":b\":{\"BOOL\":true},"
                     "\":z\":{\"NULL\":true},\":ss\":{\"SS\":[\"a\"]},\":ty\":{\"S\":\"SS\"}}";
  perr(C, NULL, vals, "attribute_exists(a) = :n", MISUSED("attribute_exists"));
  perr(C, NULL, vals, "a = contains(a, :s)", MISUSED("contains"));
  perr(C, NULL, vals, "size(a)", MISUSED("size"));
  perr(C, NULL, vals, "a = :n AND size(a)", MISUSED("size"));
  perr(C, NULL, vals, "NOT size(a)", MISUSED("size"));
  perr(C, NULL, vals, "begins_with(attribute_type(a, :s), :s)", MISUSED("attribute_type"));
  perr(C, NULL, vals, "a IN (:n, attribute_exists(b))", MISUSED("attribute_exists"));
  perr(C, NULL, vals, "a BETWEEN :n AND begins_with(a, :s)", MISUSED("begins_with"));
  perr(C, NULL, vals, "ATTRIBUTE_EXISTS(a)",
       "Invalid ConditionExpression: Invalid function name; function: ATTRIBUTE_EXISTS");
  perr(C, NULL, vals, "foo(a) = :n", "Invalid ConditionExpression: Invalid function name; function: foo");
  /* a function of update expressions in a condition, and the other way */
  perr(C, NULL, vals, "if_not_exists(a, :n) = :n",
       "Invalid ConditionExpression: The function is not allowed in a condition expression; "
       "function: if_not_exists");
  perr(C, NULL, vals, "list_append(a, :n) = :n",
       "Invalid ConditionExpression: The function is not allowed in a condition expression; "
       "function: list_append");
  /* unknown function beats misuse (dynalite order) */
  perr(C, NULL, vals, "attribute_exists(a) = foo(b)",
       "Invalid ConditionExpression: Invalid function name; function: foo");
  perr(C, NULL, vals, "size(a, b) > :n", NOPS("Condition", "size", "2"));
  perr(C, NULL, vals, "contains(a)", NOPS("Condition", "contains", "1"));
  perr(C, NULL, vals, "attribute_exists(a, b)", NOPS("Condition", "attribute_exists", "2"));
  perr(C, NULL, vals, "attribute_not_exists(:n)",
       "Invalid ConditionExpression: Operator or function requires a document path; operator or "
       "function: attribute_not_exists");
  perr(C, NULL, vals, "size(:n) > :n", BADTYPE("Condition", "size", "N"));
  perr(C, NULL, vals, "size(:b) > :n", BADTYPE("Condition", "size", "BOOL"));
  perr(C, NULL, vals, "size(:z) > :n", BADTYPE("Condition", "size", "NULL"));
  perr(C, NULL, vals, "size(size(a)) > :n", BADTYPE("Condition", "size", "N"));
  perr(C, NULL, vals, "begins_with(a, :n)", BADTYPE("Condition", "begins_with", "N"));
  perr(C, NULL, vals, "begins_with(a, :l)", BADTYPE("Condition", "begins_with", "L"));
  perr(C, NULL, vals, "attribute_type(a, :n)", BADTYPE("Condition", "attribute_type", "N"));
  perr(C, NULL, vals, "attribute_type(a, b)",
       BADTYPE("Condition", "attribute_type", "{NS,SS,L,BS,N,M,B,BOOL,NULL,S}"));
  perr(C, NULL, vals, "attribute_type(a, :t)",
       "Invalid ConditionExpression: Invalid attribute type name found; type: X, valid types: "
       "{B,NULL,SS,BOOL,L,BS,N,NS,S,M}");
  perr(C, NULL, vals, "a < :l", BADTYPE("Condition", "<", "L"));
  perr(C, NULL, vals, ":m >= a", BADTYPE("Condition", ">=", "M"));
  perr(C, NULL, vals, "a > :ss", BADTYPE("Condition", ">", "SS"));
  perr(C, NULL, vals, "a BETWEEN :l AND :l", BADTYPE("Condition", "BETWEEN", "L"));
  /* equality accepts every type */
  xenv x;
  xenv_init(&x, NULL, vals);
  trb_expr *e = xparse(&x, C,
                       "a = :l AND b <> :m AND c IN (:ss, :b, :z) AND size(d) > :n AND "
                       "contains(e, :n) AND attribute_type(f, :ty) AND begins_with(g, :s)");
  trb_expr_destroy(e);
  xenv_fini(&x);
}

static void test_between_bounds(void **state) {
  (void)state;
  perr(C, NULL, "{\":lo\":{\"N\":\"5\"},\":hi\":{\"N\":\"1e0\"}}", "a BETWEEN :lo AND :hi",
       "Invalid ConditionExpression: The BETWEEN operator requires upper bound to be greater "
       "than or equal to lower bound; lower bound operand: AttributeValue: {N:5}, upper bound "
       "operand: AttributeValue: {N:1}");
  perr(C, NULL, "{\":lo\":{\"N\":\"5\"},\":hi\":{\"S\":\"a\"}}", "a BETWEEN :lo AND :hi",
       "Invalid ConditionExpression: The BETWEEN operator requires same data type for lower and "
       "upper bounds; lower bound operand: AttributeValue: {N:5}, upper bound operand: "
       "AttributeValue: {S:a}");
  perr(C, NULL, "{\":lo\":{\"B\":\"AQI=\"},\":hi\":{\"B\":\"AQE=\"}}", "a BETWEEN :lo AND :hi",
       "Invalid ConditionExpression: The BETWEEN operator requires upper bound to be greater "
       "than or equal to lower bound; lower bound operand: AttributeValue: {B:AQI=}, upper bound "
       "operand: AttributeValue: {B:AQE=}");
  xenv x;
  xenv_init(&x, NULL, "{\":lo\":{\"S\":\"a\"},\":hi\":{\"S\":\"a\"}}");
  trb_expr_destroy(xparse(&x, C, "a BETWEEN :lo AND :hi")); /* equal bounds are fine */
  xenv_fini(&x);
}

static char *repeat(const char *head, const char *part, size_t n, const char *tail) {
  size_t len = strlen(head) + n * strlen(part) + strlen(tail) + 1;
  char *s = malloc(len);
  strcpy(s, head);
  for (size_t i = 0; i < n; i++) strcat(s, part);
  strcat(s, tail);
  return s;
}

static void test_limits(void **state) {
  (void)state;
  xenv x;
  xenv_init(&x, NULL, VALS);
  /* IN: 100 operands in the list at most */
  char *s = repeat("a IN (:v", ", :v", 99, ")");
  trb_expr_destroy(xparse(&x, C, s));
  free(s);
  s = repeat("a IN (:v", ", :v", 100, ")");
  xparse_err(&x, C, s,
             "Invalid ConditionExpression: The IN operator is provided with too many operands; "
             "number of operands: 101");
  free(s);
  /* 300 operators and functions per expression: 150 comparisons + 149 ANDs
   * is 299; 151 + 150 is 301 */
  s = repeat("a = :v", " AND a = :v", 149, "");
  trb_expr_destroy(xparse(&x, C, s));
  free(s);
  s = repeat("a = :v", " AND a = :v", 150, "");
  xparse_err(&x, F, s,
             "Invalid FilterExpression: The expression contains too many operators and functions; "
             "maximum: 300, found: 301");
  free(s);
  s = repeat("SET a0 = :v", ", a0 = :v", 300, "");
  /* overlap is reported before the operator count */
  xparse_err(&x, U, s,
             "Invalid UpdateExpression: Two document paths overlap with each other; must remove "
             "or rewrite one of these paths; path one: [a0], path two: [a0]");
  free(s);
  /* path depth: 32 elements at most */
  s = repeat("a", ".b", 31, " = :v");
  trb_expr_destroy(xparse(&x, C, s));
  free(s);
  s = repeat("a", "[0]", 32, " = :v");
  xparse_err(&x, C, s,
             "Invalid ConditionExpression: The document path has too many nesting levels; "
             "nesting levels: 33");
  free(s);
  s = repeat("a", ".b", 32, "");
  xparse_err(&x, P, s,
             "Invalid ProjectionExpression: The document path has too many nesting levels; "
             "nesting levels: 33");
  free(s);
  xenv_fini(&x);
}

static void test_update_operator_count(void **state) {
  (void)state;
  xenv x;
  xenv_init(&x, NULL, VALS);
  /* 100 actions each with a function and an operator: 300 */
  char *s = malloc(100 * 40 + 8), part[48];
  strcpy(s, "SET ");
  for (int i = 0; i < 100; i++) {
    snprintf(part, sizeof part, "%sa%d = if_not_exists(b%d, :v) + :v", i ? ", " : "", i, i);
    strcat(s, part);
  }
  trb_expr_destroy(xparse(&x, U, s));
  strcat(s, ", z = :v");
  xparse_err(&x, U, s,
             "Invalid UpdateExpression: The expression contains too many operators and functions; "
             "maximum: 300, found: 301");
  free(s);
  xenv_fini(&x);
}

/* ---- update checks ---- */

#define OVERLAP(kind, a, b) \
  "Invalid " kind "Expression: Two document paths overlap with each other; must remove or " \
  "rewrite one of these paths; path one: " a ", path two: " b
#define CONFLICT(kind, a, b) \
  "Invalid " kind "Expression: Two document paths conflict with each other; must remove or " \
  "rewrite one of these paths; path one: " a ", path two: " b

static void test_update_checks(void **state) {
  (void)state;
  const char *vals = "{\":n\":{\"N\":\"1\"},\":s\":{\"S\":\"x\"},\":l\":{\"L\":[]},"
                     "\":m\":{\"M\":{}},\":b\":{\"BOOL\":false},\":z\":{\"NULL\":true},"
                     "\":bin\":{\"B\":\"AA==\"},\":ss\":{\"SS\":[\"a\"]},\":ns\":{\"NS\":[\"1\"]}}";
  perr(U, NULL, vals, "SET a = :n SET b = :n",
       "Invalid UpdateExpression: The \"SET\" section can only be used once in an update "
       "expression;");
  perr(U, NULL, vals, "set a = :n REMOVE c set b = :n",
       "Invalid UpdateExpression: The \"SET\" section can only be used once in an update "
       "expression;");
  perr(U, NULL, vals, "remove a remove b",
       "Invalid UpdateExpression: The \"REMOVE\" section can only be used once in an update "
       "expression;");
  perr(U, NULL, vals, "SET a = :n REMOVE a", OVERLAP("Update", "[a]", "[a]"));
  perr(U, NULL, vals, "REMOVE a SET a = :n", OVERLAP("Update", "[a]", "[a]"));
  perr(U, "{\"#a1\":\"a\",\"#a2\":\"a\"}", vals, "SET #a1 = :n, #a2 = :n",
       OVERLAP("Update", "[a]", "[a]"));
  perr(U, NULL, vals, "SET a = :n, a.b = :n", OVERLAP("Update", "[a]", "[a, b]"));
  perr(U, NULL, vals, "SET a.b.c = :n ADD a.b :n", OVERLAP("Update", "[a, b, c]", "[a, b]"));
  perr(U, NULL, vals, "SET a[1][1] = :n, a[1] = :n", OVERLAP("Update", "[a, [1], [1]]", "[a, [1]]"));
  perr(U, NULL, vals, "SET a.b = :n, a[1] = :n", CONFLICT("Update", "[a, b]", "[a, [1]]"));
  perr(U, NULL, vals, "SET a.b.c = :n DELETE a.b[2] :ss",
       CONFLICT("Update", "[a, b, c]", "[a, b, [2]]"));
  /* overlap is reported before conflict */
  perr(U, NULL, vals, "SET a.b = :n, a[1] = :n, c = :n, c = :n", OVERLAP("Update", "[c]", "[c]"));
  perr(U, NULL, vals, "ADD a :s",
       "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: "
       "ADD, operand type: STRING");
  perr(U, NULL, vals, "ADD a :l",
       "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: "
       "ADD, operand type: LIST");
  perr(U, NULL, vals, "ADD a :bin",
       "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: "
       "ADD, operand type: BINARY");
  perr(U, NULL, vals, "DELETE a :n",
       "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: "
       "DELETE, operand type: NUMBER");
  perr(U, NULL, vals, "DELETE a :m",
       "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: "
       "DELETE, operand type: MAP");
  perr(U, NULL, vals, "DELETE a :b",
       "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: "
       "DELETE, operand type: BOOLEAN");
  perr(U, NULL, vals, "ADD a :z",
       "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: "
       "ADD, operand type: NULL");
  perr(U, NULL, vals, "SET a = f(b)", "Invalid UpdateExpression: Invalid function name; function: f");
  perr(U, NULL, vals, "SET a = LIST_APPEND(:l, :l)",
       "Invalid UpdateExpression: Invalid function name; function: LIST_APPEND");
  perr(U, NULL, vals, "SET a = size(b)",
       "Invalid UpdateExpression: The function is not allowed in an update expression; function: "
       "size");
  perr(U, NULL, vals, "SET a = contains(b, :l)",
       "Invalid UpdateExpression: The function is not allowed in an update expression; function: "
       "contains");
  perr(U, NULL, vals, "SET a = list_append(:l)", NOPS("Update", "list_append", "1"));
  perr(U, NULL, vals, "SET a = list_append(:l, :l, :l)", NOPS("Update", "list_append", "3"));
  perr(U, NULL, vals, "SET a = list_append(:l, :s)", BADTYPE("Update", "list_append", "S"));
  perr(U, NULL, vals, "SET a = list_append(list_append(:l, :l), :l)",
       "Invalid UpdateExpression: The function is not allowed to be used this way in an "
       "expression; function: list_append");
  perr(U, NULL, vals, "SET b = if_not_exists(:n, :n)",
       "Invalid UpdateExpression: Operator or function requires a document path; operator or "
       "function: if_not_exists");
  perr(U, NULL, vals, "SET b = if_not_exists(if_not_exists(a, :n), :n)",
       "Invalid UpdateExpression: Operator or function requires a document path; operator or "
       "function: if_not_exists");
  perr(U, NULL, vals, "SET a = :s + :n", BADTYPE("Update", "+", "S"));
  perr(U, NULL, vals, "SET a = :n - :l", BADTYPE("Update", "-", "L"));
  /* reserved beats everything in updates (dynalite order) */
  perr(U, NULL, vals, "SET a = f(b), name = :n", RES("Update", "name"));

  xenv x;
  xenv_init(&x, NULL, vals);
  const char *ok[] = {
      "SET a[1] = :n, a[2] = :n",
      "SET a.b = :n, a.c = :n REMOVE a.d ADD a.e :n DELETE a.f :ss",
      "SET a = (:n + :n)",
      "SET a = (:n) + :n",
      "SET a = (b) - (c)",
      "SET a = if_not_exists(b, :n) + :n",
      "SET a = list_append(if_not_exists(a, :l), :l)",
      "ADD a :n, b :ss, c :ns DELETE d :ss",
      "REMOVE a, b.c, d[3]",
      "DELETE a :ss SET b = :n ADD c :n REMOVE d",
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) trb_expr_destroy(xparse(&x, U, ok[i]));
  xenv_fini(&x);
}

static void test_projection_checks(void **state) {
  (void)state;
  perr(P, NULL, NULL, "a, a", OVERLAP("Projection", "[a]", "[a]"));
  perr(P, NULL, NULL, "a.b, a.b[2]", OVERLAP("Projection", "[a, b]", "[a, b, [2]]"));
  perr(P, NULL, NULL, "a.b.d.e, a.b", OVERLAP("Projection", "[a, b, d, e]", "[a, b]"));
  perr(P, NULL, NULL, "a[1], a[1]", OVERLAP("Projection", "[a, [1]]", "[a, [1]]"));
  perr(P, NULL, NULL, "a.b, a[1]", CONFLICT("Projection", "[a, b]", "[a, [1]]"));
  perr(P, NULL, NULL, "a.b.c, a.b[1]", CONFLICT("Projection", "[a, b, c]", "[a, b, [1]]"));
  perr(P, "{\"#d\":\"a.b\"}", NULL, "#d, a.b, a.b",
       OVERLAP("Projection", "[a, b]", "[a, b]")); /* "a.b" the name differs from a.b the path */
  xenv x;
  xenv_init(&x, "{\"#d\":\"a.b\"}", NULL);
  trb_expr *e = xparse(&x, P, "a, b, a2.b, a2.c[2], x[1], x[2], #d");
  const char *const *tops;
  size_t n = trb_expr_projection_tops(e, &tops);
  assert_int_equal(n, 5);
  assert_string_equal(tops[0], "a");
  assert_string_equal(tops[1], "b");
  assert_string_equal(tops[2], "a2");
  assert_string_equal(tops[3], "x");
  assert_string_equal(tops[4], "a.b");
  trb_expr_destroy(e);
  xenv_fini(&x);
}

/* ---- fuzz ---- */

static int utf8_valid(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    size_t n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
    if (!n) return 0;
    for (size_t k = 1; k < n; k++)
      if ((p[k] & 0xC0) != 0x80) return 0;
    p += n;
  }
  return 1;
}

static const char *const soup[] = {
    "a", "b", "c", "x", "#n", "#m", "#u", ":v", ":w", ":l", ":s", ":u", "AND", "or", "NOT",
    "BETWEEN", "IN", "SET", "remove", "ADD", "DELETE", "(", ")", "[", "]", ",", ".", "=", "<>",
    "<", "<=", ">", ">=", "+", "-", "0", "1", "17", "99999999999", "size", "contains",
    "begins_with", "attribute_exists", "attribute_not_exists", "attribute_type", "if_not_exists",
    "list_append", "name", "_", "!", "\xc3\xa9", "#", ":", "foo", "\"", "'", "\t", "\xff",
};


/* A grammar-driven generator of mostly valid expressions, so the fuzz loop
 * also reaches the evaluators; mutate() then breaks some of them. */
typedef struct sb {
  char s[2048];
  size_t n;
} sb;

static void sb_add(sb *b, const char *t) {
  size_t l = strlen(t);
  if (b->n + l + 1 < sizeof b->s) {
    memcpy(b->s + b->n, t, l);
    b->n += l;
    b->s[b->n] = '\0';
  }
}

#define PICK(arr) arr[trb_test_rand(rng) % (sizeof arr / sizeof arr[0])]

static void gen_path(sb *b, uint64_t *rng) {
  static const char *const paths[] = {"a", "b", "c", "x", "#n", "#m", "a.b", "b[0]", "b[1].c",
                                      "a[0]", "c.d.e", "b[7]", "x[0]", "#n.#n"};
  sb_add(b, PICK(paths));
}

static void gen_operand(sb *b, uint64_t *rng) {
  static const char *const vals[] = {":v", ":w", ":l", ":s"};
  switch (trb_test_rand(rng) % 4) {
    case 0: sb_add(b, PICK(vals)); break;
    case 1: sb_add(b, "size("); gen_path(b, rng); sb_add(b, ")"); break;
    default: gen_path(b, rng); break;
  }
}

static void gen_cond(sb *b, uint64_t *rng, int depth) {
  static const char *const cmps[] = {" = ", " <> ", " < ", " <= ", " > ", " >= "};
  static const char *const fns1[] = {"attribute_exists(", "attribute_not_exists("};
  static const char *const fns2[] = {"contains(", "begins_with("};
  unsigned r = (unsigned)(trb_test_rand(rng) % (depth > 3 ? 5 : 9));
  switch (r) {
    case 0: case 1:
      gen_operand(b, rng); sb_add(b, PICK(cmps)); gen_operand(b, rng); break;
    case 2:
      gen_operand(b, rng); sb_add(b, " BETWEEN "); gen_operand(b, rng); sb_add(b, " AND ");
      gen_operand(b, rng); break;
    case 3:
      gen_operand(b, rng); sb_add(b, " IN (");
      for (unsigned i = 0, n = 1 + (unsigned)(trb_test_rand(rng) % 3); i < n; i++) {
        if (i) sb_add(b, ", ");
        gen_operand(b, rng);
      }
      sb_add(b, ")");
      break;
    case 4:
      if (trb_test_rand(rng) % 2) {
        sb_add(b, PICK(fns1)); gen_path(b, rng); sb_add(b, ")");
      } else if (trb_test_rand(rng) % 2) {
        sb_add(b, PICK(fns2)); gen_path(b, rng); sb_add(b, ", "); gen_operand(b, rng); sb_add(b, ")");
      } else {
        sb_add(b, "attribute_type("); gen_path(b, rng); sb_add(b, ", :t)");
      }
      break;
    case 5: case 6:
      gen_cond(b, rng, depth + 1); sb_add(b, trb_test_rand(rng) % 2 ? " AND " : " OR ");
      gen_cond(b, rng, depth + 1); break;
    case 7: sb_add(b, "NOT "); gen_cond(b, rng, depth + 1); break;
    default: sb_add(b, "("); gen_cond(b, rng, depth + 1); sb_add(b, ")"); break;
  }
}

static void gen_set_value(sb *b, uint64_t *rng) {
  static const char *const vals[] = {":v", ":w", ":l", ":s", ":big"};
  switch (trb_test_rand(rng) % 6) {
    case 0: sb_add(b, PICK(vals)); break;
    case 1: gen_path(b, rng); break;
    case 2:
      gen_path(b, rng); sb_add(b, trb_test_rand(rng) % 2 ? " + " : " - ");
      sb_add(b, trb_test_rand(rng) % 2 ? ":v" : ":big");
      break;
    case 3: sb_add(b, "if_not_exists("); gen_path(b, rng); sb_add(b, ", :v)"); break;
    case 4: sb_add(b, "list_append("); gen_path(b, rng); sb_add(b, ", :l)"); break;
    default: sb_add(b, "list_append(:l, "); gen_path(b, rng); sb_add(b, ")"); break;
  }
}

static void gen_update(sb *b, uint64_t *rng) {
  int order[4] = {0, 1, 2, 3}, n = 1 + (int)(trb_test_rand(rng) % 4);
  for (int i = 3; i > 0; i--) {
    int j = (int)(trb_test_rand(rng) % (uint64_t)(i + 1)), t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (int c = 0; c < n; c++) {
    static const char *const kw[] = {"SET ", "REMOVE ", "ADD ", "DELETE "};
    if (c) sb_add(b, " ");
    sb_add(b, kw[order[c]]);
    for (unsigned i = 0, m = 1 + (unsigned)(trb_test_rand(rng) % 3); i < m; i++) {
      if (i) sb_add(b, ", ");
      gen_path(b, rng);
      if (order[c] == 0) { sb_add(b, " = "); gen_set_value(b, rng); }
      else if (order[c] == 2) sb_add(b, trb_test_rand(rng) % 2 ? " :v" : " :s");
      else if (order[c] == 3) sb_add(b, " :s");
    }
  }
}

/* Drops, duplicates or swaps a byte now and then. */
static void mutate(sb *b, uint64_t *rng) {
  if (b->n < 2 || trb_test_rand(rng) % 3) return;
  size_t i = trb_test_rand(rng) % b->n;
  switch (trb_test_rand(rng) % 3) {
    case 0: memmove(b->s + i, b->s + i + 1, b->n - i); b->n--; break;
    case 1: b->s[i] = "()[],.=<>:#+- a1"[trb_test_rand(rng) % 16]; break;
    default: { char t = b->s[i]; b->s[i] = b->s[b->n - 1]; b->s[b->n - 1] = t; } break;
  }
}

static void test_fuzz_token_soup(void **state) {
  (void)state;
  uint64_t rng = trb_test_seed() ^ 0x5eed5eedULL;
  xenv x;
  xenv_init(&x, "{\"#n\":\"a\",\"#m\":\"x.y\"}",
            "{\":v\":{\"N\":\"1\"},\":w\":{\"S\":\"a\"},\":l\":{\"L\":[{\"N\":\"2\"}]},"
            "\":s\":{\"SS\":[\"a\",\"b\"]},\":t\":{\"S\":\"L\"},"
            "\":big\":{\"N\":\"99999999999999999999999999999999999999\"}}");
  trb_av *items[3] = {NULL,
                      xj("{\"a\":{\"N\":\"5\"},\"b\":{\"L\":[{\"S\":\"q\"},{\"M\":{\"c\":{\"N\":"
                         "\"1\"}}}]},\"c\":{\"SS\":[\"a\"]},\"x\":{\"S\":\"abc\"}}"),
                      xj("{\"a\":{\"S\":\"a\"},\"x.y\":{\"NULL\":true},\"c\":{\"M\":{}}}")};
  trb_av *key = xj("{\"k\":{\"S\":\"key\"}}");
  trb_keyschema ks;
  memset(&ks, 0, sizeof ks);
  strcpy(ks.pk_name, "a");
  ks.pk_type = TRB_T_N;
  ks.has_sk = 1;
  strcpy(ks.sk_name, "b");
  ks.sk_type = TRB_T_S;
  const trb_expr_kind kinds[] = {C, F, K, P, U};
  size_t iters = 0, parsed = 0;
  time_t start = time(NULL);
  char text[2048];
  while (time(NULL) - start < 3 || iters < 2000) {
    trb_expr_kind k = kinds[trb_test_rand(&rng) % 5];
    if (iters % 2) {
      size_t len = 0, ntok = 1 + trb_test_rand(&rng) % 14;
      for (size_t i = 0; i < ntok; i++) {
        const char *t = soup[trb_test_rand(&rng) % (sizeof soup / sizeof soup[0])];
        size_t tl = strlen(t);
        if (len + tl + 2 >= sizeof text) break;
        memcpy(text + len, t, tl);
        len += tl;
        if (trb_test_rand(&rng) % 4) text[len++] = ' ';
      }
      text[len] = '\0';
    } else {
      sb b = {.n = 0};
      b.s[0] = '\0';
      if (k == U) {
        gen_update(&b, &rng);
      } else if (k == P) {
        for (unsigned i = 0, m = 1 + (unsigned)(trb_test_rand(&rng) % 4); i < m; i++) {
          if (i) sb_add(&b, ", ");
          gen_path(&b, &rng);
        }
      } else {
        gen_cond(&b, &rng, 0);
      }
      mutate(&b, &rng);
      snprintf(text, sizeof text, "%s", b.s);
    }
    trb_expr *e = NULL;
    trb_status st;
    trb_status_init(&st);
    trb_err rc = trb_expr_parse(k, text, x.env, &e, &st);
    if (rc != TRB_OK && rc != TRB_EINVAL) fprintf(stderr, "[%s] -> %d\n", text, (int)rc);
    assert_true(rc == TRB_OK || rc == TRB_EINVAL);
    assert_true(strlen(trb_status_msg(&st)) > 0);
    assert_true(utf8_valid(trb_status_msg(&st)));
    if (rc == TRB_OK) {
      parsed++;
      for (int i = 0; i < 3; i++) {
        trb_av *out = NULL;
        int pass;
        trb_status_init(&st);
        if (k == P) {
          rc = trb_expr_project(e, items[i], &out, &st);
        } else if (k == U) {
          rc = trb_expr_update(e, key, items[i], &out, &st);
          if (rc == TRB_OK && items[i]) assert_non_null(out);
          trb_av_destroy(out);
          out = NULL;
          if (rc == TRB_OK || rc == TRB_EINVAL) rc = trb_expr_update_pick(e, items[i], &out, &st);
        } else if (k == K) {
          const trb_av *pk, *s1, *s2;
          trb_sk_op op;
          rc = trb_expr_keycond(e, &ks, &pk, &op, &s1, &s2, &st);
          if (rc == TRB_OK) assert_non_null(pk);
        } else {
          rc = trb_expr_eval(e, items[i], &pass, &st);
        }
        trb_av_destroy(out);
        assert_true(rc == TRB_OK || rc == TRB_EINVAL);
      }
    }
    trb_expr_destroy(e);
    iters++;
  }
  fprintf(stderr, "# fuzz: %zu expressions, %zu parsed\n", iters, parsed);
  assert_true(parsed > 0);
  for (int i = 0; i < 3; i++) trb_av_destroy(items[i]);
  trb_av_destroy(key);
  xenv_fini(&x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_syntax_errors),
      cmocka_unit_test(test_long_placeholder_token),
      cmocka_unit_test(test_whitespace_and_case),
      cmocka_unit_test(test_empty_and_too_long),
      cmocka_unit_test(test_reserved_words),
      cmocka_unit_test(test_undefined_placeholders),
      cmocka_unit_test(test_env_refusals),
      cmocka_unit_test(test_unused_across_expressions),
      cmocka_unit_test(test_env_errors),
      cmocka_unit_test(test_redundant_parentheses),
      cmocka_unit_test(test_operand_distinctness),
      cmocka_unit_test(test_functions),
      cmocka_unit_test(test_between_bounds),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_update_operator_count),
      cmocka_unit_test(test_update_checks),
      cmocka_unit_test(test_projection_checks),
      cmocka_unit_test(test_fuzz_token_soup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
