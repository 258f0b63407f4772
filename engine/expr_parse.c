/*
 * expr_parse.c -- recursive-descent parsers for the five expression kinds
 * (spec 5.1-5.8), over the token array of expr_env.c, building the AST of
 * expr_int.h in the expression's arena.
 *
 * Grammar (conditions, filters and key conditions; lowest precedence
 * first, as spec 5.3 and dynalite's grammar):
 *   or      := and { OR and }
 *   and     := not { AND not }
 *   not     := NOT not | cmp
 *   cmp     := lhs [ comparator operand
 *                  | BETWEEN operand AND operand
 *                  | IN ( operand { , operand } ) ]
 *   lhs     := ( or ) | operand-without-parens
 *   operand := ( operand ) | name ( operand { , operand } ) | :value | path
 *   path    := (name | #name) { . (name | #name) | [ digits ] }
 * "( or )" at the start of a comparison covers both a parenthesized
 * condition and a parenthesized left operand; which one it was is decided
 * by what follows, and a node of the wrong sort where a condition is needed
 * is a syntax error at the token after it (DynamoDB reports "a AND b = :v"
 * at token "AND"). Update expressions (5.5):
 *   update  := clause { clause }        -- SET / REMOVE / ADD / DELETE once each
 *   clause  := SET set { , set } | REMOVE path { , path }
 *            | ADD path :value { , ... } | DELETE path :value { , ... }
 *   set     := path = value
 *   value   := ( sum ) [ (+|-) uoperand ] | sum
 *   sum     := uoperand [ (+|-) uoperand ]
 *   uoperand:= ( uoperand-without-parens ) | name ( uoperand {, uoperand} ) | :value | path
 * Projections (5.7): path { , path }.
 *
 * Errors. A syntax error stops the parse and is reported as
 *   Invalid <Kind>Expression: Syntax error; token: "<tok>", near: "<near>"
 * where <tok> is the offending token ("<EOF>" at the end) and <near> is the
 * source text from the start of the token before it to the end of the token
 * after it, which reproduces every AWS message we have seen
 * (token ")" near "()" for "attribute_type()", token "_" near "SET _123",
 * token "<EOF>" near "foo" for "foo", token "a" near "[a]" for "l[a]").
 * Semantic errors (reserved words, undefined placeholders, wrong operand
 * types, overlapping paths, ...) do not stop the parse: the first error of
 * each class goes into a slot, and the reported one is the first filled slot
 * in the kind's priority order, mirroring dynalite's checkErrors() ordering
 * (which captured AWS's).
 */
#include "engine/expr_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- error slots ---- */

enum {
  S_PARENS, S_UNKNOWN_FN, S_MISUSED_FN, S_RESERVED, S_DEPTH, S_SECTION, S_ATTR, S_ATTR_NAME,
  S_ATTR_VAL, S_OVERLAP, S_CONFLICT, S_OPERAND, S_DISTINCT, S_FUNCTION, S_IN_LIMIT, S_OPS,
  S_NSLOTS
};

static const signed char cond_order[] = {S_PARENS, S_UNKNOWN_FN, S_MISUSED_FN, S_RESERVED,
                                         S_DEPTH,  S_ATTR,       S_OPERAND,    S_DISTINCT,
                                         S_FUNCTION, S_IN_LIMIT, S_OPS,        -1};
static const signed char update_order[] = {S_RESERVED, S_UNKNOWN_FN, S_SECTION,  S_DEPTH,
                                           S_ATTR_NAME, S_ATTR_VAL,  S_OVERLAP,  S_CONFLICT,
                                           S_OPERAND,  S_FUNCTION,   S_OPS,      -1};
static const signed char proj_order[] = {S_RESERVED, S_DEPTH,    S_ATTR_NAME,
                                         S_OVERLAP,  S_CONFLICT, -1};

typedef struct xp {
  const char *text;
  size_t len;
  xtok *tk;
  size_t ntk, pos;
  trb_expr_kind kind;
  trb_expr_env *env;
  trb_expr *e;
  int failed;              /* syntax error at tk[err_tok] */
  size_t err_tok;
  int oom;
  char *slot[S_NSLOTS];
  unsigned ops;
  int sections[4];
  /* growing arrays, copied into the arena at the end */
  const char **tops;
  size_t ntops, ctops;
  xaction *acts;
  size_t nacts, cacts;
  xpath *paths;
  size_t npaths, cpaths;
} xp;

static void slot_set(xp *p, int s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void slot_set(xp *p, int s, const char *fmt, ...) {
  if (p->slot[s] || p->oom) return;
  char *m = malloc(TRB_STATUS_MSG_MAX);
  if (!m) {
    p->oom = 1;
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m, TRB_STATUS_MSG_MAX, fmt, ap);
  va_end(ap);
  p->slot[s] = m;
}

/* Records a syntax error at token i (the first one wins); returns NULL. */
static void *syn(xp *p, size_t i) {
  if (!p->failed) {
    p->failed = 1;
    p->err_tok = i;
  }
  return NULL;
}

static void *oom(xp *p) {
  p->oom = 1;
  return NULL;
}

static void *alloc(xp *p, size_t n) {
  void *v = trb__xa_alloc(&p->e->arena, n);
  if (!v) p->oom = 1;
  return v;
}

static const xtok *cur(const xp *p) { return &p->tk[p->pos]; }

static void quote_tok(const xp *p, const xtok *t, char *buf, size_t cap) {
  trb__expr_quote(p->text + t->off, t->len, buf, cap);
}

/* ---- keywords and small predicates ---- */

static int tok_is(const xp *p, size_t i, const char *kw) {
  const xtok *t = &p->tk[i];
  return t->t == TK_NAME && strlen(kw) == t->len && strncasecmp(p->text + t->off, kw, t->len) == 0;
}

static const char *const update_kws[4] = {"SET", "REMOVE", "ADD", "DELETE"};

static int update_kw(const xp *p, size_t i) {
  for (int k = 0; k < 4; k++)
    if (tok_is(p, i, update_kws[k])) return k;
  return -1;
}

/* Keywords of the kind's grammar cannot be names (dynalite's !ReservedWord). */
static int grammar_kw(const xp *p, size_t i) {
  if (p->kind == TRB_EXPR_UPDATE) return update_kw(p, i) >= 0;
  if (p->kind == TRB_EXPR_PROJECTION) return 0;
  return tok_is(p, i, "AND") || tok_is(p, i, "OR") || tok_is(p, i, "NOT") ||
         tok_is(p, i, "BETWEEN") || tok_is(p, i, "IN");
}

static int is_cond_node(const xnode *n) {
  return n->kind == XN_CMP || n->kind == XN_BETWEEN || n->kind == XN_IN || n->kind == XN_AND ||
         n->kind == XN_OR || n->kind == XN_NOT;
}

/* The type of a literal operand, or 0. */
static int imm_type(const xnode *n) {
  return n->kind == XN_VALUE && n->val ? (int)n->val->type : 0;
}

/* The type an operand is known to have before evaluation (literal, size()). */
static int static_type(const xnode *n) {
  if (n->kind == XN_FUNC && n->op == XF_SIZE) return TRB_T_N;
  return imm_type(n);
}

static const char *cmp_str(int op) {
  switch (op) {
    case XC_EQ: return "=";
    case XC_NE: return "<>";
    case XC_LT: return "<";
    case XC_LE: return "<=";
    case XC_GT: return ">";
    case XC_GE: return ">=";
  }
  return "?";
}

/* Short text of a literal for the BETWEEN messages: {N:5}, {S:abc}, {B:<base64>}. */
static void av_short(const trb_av *v, char *buf, size_t cap) {
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char q[XP_MSG_USER_MAX + 1];
  if (v->type == TRB_T_N) {
    char d[TRB_DEC_STR_MAX];
    trb_dec_format(&v->u.n, d, sizeof d);
    snprintf(buf, cap, "{N:%.120s}", d);
  } else if (v->type == TRB_T_S) {
    trb__expr_quote(v->u.s.p, v->u.s.len, q, sizeof q);
    snprintf(buf, cap, "{S:%s}", q);
  } else if (v->type == TRB_T_B) {
    const unsigned char *s = (const unsigned char *)v->u.s.p;
    size_t n = v->u.s.len > 120 ? 120 : v->u.s.len, k = 0;
    for (size_t i = 0; i < n; i += 3) {
      unsigned x = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
                   (i + 2 < n ? s[i + 2] : 0);
      q[k++] = b64[(x >> 18) & 63];
      q[k++] = b64[(x >> 12) & 63];
      q[k++] = i + 1 < n ? b64[(x >> 6) & 63] : '=';
      q[k++] = i + 2 < n ? b64[x & 63] : '=';
    }
    q[k] = '\0';
    snprintf(buf, cap, "{B:%s}", q);
  } else {
    snprintf(buf, cap, "{%s}", trb_type_name(v->type));
  }
}

/* ---- growing arrays ---- */

typedef struct pvec {
  xnode **v;
  size_t n, cap;
} pvec;

static int pv_push(xp *p, pvec *v, xnode *x) {
  if (v->n == v->cap) {
    size_t nc = v->cap ? v->cap * 2 : 4;
    xnode **nv = realloc(v->v, nc * sizeof *nv);
    if (!nv) {
      p->oom = 1;
      return -1;
    }
    v->v = nv;
    v->cap = nc;
  }
  v->v[v->n++] = x;
  return 0;
}

/* Moves the vector into the arena (frees the heap copy either way). */
static xnode **pv_finish(xp *p, pvec *v) {
  xnode **a = v->n ? alloc(p, v->n * sizeof *a) : NULL;
  if (a) memcpy(a, v->v, v->n * sizeof *a);
  free(v->v);
  v->v = NULL;
  return a;
}

static xnode *mk(xp *p, xnode_kind k, int op) {
  xnode *n = alloc(p, sizeof *n);
  if (!n) return NULL;
  n->kind = k;
  n->op = op;
  return n;
}

static xnode *mk2(xp *p, xnode_kind k, int op, xnode *a, xnode *b) {
  xnode *n = mk(p, k, op);
  xnode **args = alloc(p, 2 * sizeof *args);
  if (!n || !args) return NULL;
  args[0] = a;
  args[1] = b;
  n->args = args;
  n->nargs = 2;
  n->end_tok = (uint32_t)p->pos;
  return n;
}

static void add_top(xp *p, const char *name) {
  for (size_t i = 0; i < p->ntops; i++)
    if (strcmp(p->tops[i], name) == 0) return;
  if (p->ntops == p->ctops) {
    size_t nc = p->ctops ? p->ctops * 2 : 8;
    const char **nt = realloc(p->tops, nc * sizeof *nt);
    if (!nt) {
      p->oom = 1;
      return;
    }
    p->tops = nt;
    p->ctops = nc;
  }
  p->tops[p->ntops++] = name;
}

/* ---- paths ---- */

static int attr_slot(const xp *p, int is_name) {
  if (p->kind == TRB_EXPR_UPDATE || p->kind == TRB_EXPR_PROJECTION)
    return is_name ? S_ATTR_NAME : S_ATTR_VAL;
  return S_ATTR;
}

/* One name element at the current token (NAME or HASH); -1 on syntax error. */
static int path_name(xp *p, xpelem *el) {
  const xtok *t = cur(p);
  char q[XP_MSG_USER_MAX + 1];
  if (t->t == TK_NAME && !grammar_kw(p, p->pos)) {
    if (trb__expr_reserved(p->text + t->off, t->len)) {
      quote_tok(p, t, q, sizeof q);
      slot_set(p, S_RESERVED, "Attribute name is a reserved keyword; reserved keyword: %s", q);
    }
    el->name = trb__xa_strdup(&p->e->arena, p->text + t->off, t->len);
    el->len = t->len;
  } else if (t->t == TK_HASH) {
    long i = trb__env_name(p->env, p->text + t->off, t->len);
    if (i < 0) {
      quote_tok(p, t, q, sizeof q);
      slot_set(p, attr_slot(p, 1),
               "An expression attribute name used in the document path is not defined; "
               "attribute name: %s",
               q);
      el->name = trb__xa_strdup(&p->e->arena, "", 0);
      el->len = 0;
    } else {
      el->len = p->env->nval_len[i];
      el->name = trb__xa_strdup(&p->e->arena, p->env->nval[i], el->len);
    }
  } else {
    syn(p, p->pos);
    return -1;
  }
  if (!el->name) {
    p->oom = 1;
    return -1;
  }
  p->pos++;
  return 0;
}

static int parse_path(xp *p, xpath *out, int top) {
  xpelem *el = NULL;
  size_t n = 0, cap = 0;
  int rc = -1;
  for (;;) {
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 4;
      xpelem *ne = realloc(el, nc * sizeof *ne);
      if (!ne) {
        p->oom = 1;
        goto done;
      }
      el = ne;
      cap = nc;
    }
    memset(&el[n], 0, sizeof el[n]);
    if (n == 0) {
      if (path_name(p, &el[n])) goto done;
    } else if (cur(p)->t == TK_DOT) {
      p->pos++;
      if (path_name(p, &el[n])) goto done;
    } else if (cur(p)->t == TK_LB) {
      p->pos++;
      const xtok *t = cur(p);
      if (t->t != TK_NUM) {
        syn(p, p->pos);
        goto done;
      }
      uint64_t v = 0;
      for (uint32_t i = 0; i < t->len; i++) {
        v = v * 10 + (uint64_t)(p->text[t->off + i] - '0');
        if (v > UINT32_MAX) v = UINT32_MAX;
      }
      el[n].index = (uint32_t)v;
      p->pos++;
      if (cur(p)->t != TK_RB) {
        syn(p, p->pos);
        goto done;
      }
      p->pos++;
    } else {
      break;
    }
    n++;
  }
  if (n > XP_MAX_DEPTH)
    slot_set(p, S_DEPTH, "The document path has too many nesting levels; nesting levels: %zu", n);
  out->e = alloc(p, n * sizeof *out->e);
  if (!out->e) goto done;
  memcpy(out->e, el, n * sizeof *el);
  out->n = (uint32_t)n;
  if (top && el[0].len) add_top(p, el[0].name);
  rc = 0;
done:
  free(el);
  return rc;
}

/* Overlap and conflict of two paths of one expression (spec 5.2). */
static void check_overlap(xp *p, const xpath *a, const xpath *b) {
  char s1[240], s2[240];
  uint32_t n = a->n < b->n ? a->n : b->n;
  for (uint32_t i = 0; i < n; i++) {
    const xpelem *x = &a->e[i], *y = &b->e[i];
    if (!x->name != !y->name) {
      trb__xpath_str(a, s1, sizeof s1);
      trb__xpath_str(b, s2, sizeof s2);
      slot_set(p, S_CONFLICT,
               "Two document paths conflict with each other; must remove or rewrite one of "
               "these paths; path one: %s, path two: %s",
               s1, s2);
      return;
    }
    if (x->name ? x->len != y->len || memcmp(x->name, y->name, x->len) != 0
                : x->index != y->index)
      return;
  }
  trb__xpath_str(a, s1, sizeof s1);
  trb__xpath_str(b, s2, sizeof s2);
  slot_set(p, S_OVERLAP,
           "Two document paths overlap with each other; must remove or rewrite one of these "
           "paths; path one: %s, path two: %s",
           s1, s2);
}

/* ---- operands ---- */

static xnode *parse_operand(xp *p);
static xnode *parse_uoperand(xp *p);

static const struct {
  const char *name;
  xfn fn;
  unsigned nargs;
  int update;      /* 1: UpdateExpression function, 0: condition function */
} functions[] = {
    {"attribute_exists", XF_ATTR_EXISTS, 1, 0},
    {"attribute_not_exists", XF_ATTR_NOT_EXISTS, 1, 0},
    {"attribute_type", XF_ATTR_TYPE, 2, 0},
    {"begins_with", XF_BEGINS_WITH, 2, 0},
    {"contains", XF_CONTAINS, 2, 0},
    {"size", XF_SIZE, 1, 0},
    {"if_not_exists", XF_IF_NOT_EXISTS, 2, 1},
    {"list_append", XF_LIST_APPEND, 2, 1},
};

static void misused(xp *p, const xnode *arg) {
  if (arg->kind == XN_FUNC && arg->op != XF_SIZE)
    slot_set(p, S_MISUSED_FN,
             "The function is not allowed to be used this way in an expression; function: %s",
             arg->fname);
}

static void distinct(xp *p, const char *op, const xnode *a, const xnode *b) {
  if (a->kind != XN_PATH || b->kind != XN_PATH || !trb__xpath_equal(&a->path, &b->path)) return;
  char s[240];
  trb__xpath_str(&a->path, s, sizeof s);
  slot_set(p, S_DISTINCT,
           "The first operand must be distinct from the remaining operands for this operator or "
           "function; operator: %s, first operand: %s",
           op, s);
}

static void bad_operand_type(xp *p, const char *op, const char *type) {
  slot_set(p, S_FUNCTION,
           "Incorrect operand type for operator or function; operator or function: %s, operand "
           "type: %s",
           op, type);
}

/* An unknown function's error: a function of the other kind of expression
 * (size in an update, if_not_exists in a condition) is named as such. */
static void unknown_fn(xp *p, const xnode *n, int upd) {
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++)
    if (functions[i].update != upd && strcmp(functions[i].name, n->fname) == 0) {
      slot_set(p, S_UNKNOWN_FN, "The function is not allowed in %s expression; function: %s",
               upd ? "an update" : "a condition", n->fname);
      return;
    }
  slot_set(p, S_UNKNOWN_FN, "Invalid function name; function: %s", n->fname);
}

static void check_func_cond(xp *p, xnode *n) {
  if (n->op == XF_UNKNOWN) {
    unknown_fn(p, n, 0);
    return;
  }
  for (uint32_t i = 0; i < n->nargs; i++) misused(p, n->args[i]);
  unsigned want = 0;
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++)
    if (functions[i].fn == (xfn)n->op) want = functions[i].nargs;
  if (n->nargs != want) {
    slot_set(p, S_OPERAND,
             "Incorrect number of operands for operator or function; operator or function: %s, "
             "number of operands: %u",
             n->fname, (unsigned)n->nargs);
    return;
  }
  if (n->nargs == 2) distinct(p, n->fname, n->args[0], n->args[1]);
  int t;
  switch (n->op) {
    case XF_ATTR_EXISTS:
    case XF_ATTR_NOT_EXISTS:
      if (n->args[0]->kind != XN_PATH)
        slot_set(p, S_FUNCTION,
                 "Operator or function requires a document path; operator or function: %s",
                 n->fname);
      break;
    case XF_BEGINS_WITH:
      for (uint32_t i = 0; i < 2; i++) {
        t = static_type(n->args[i]);
        if (t && t != TRB_T_S && t != TRB_T_B) bad_operand_type(p, n->fname, trb_type_name(t));
      }
      break;
    case XF_ATTR_TYPE:
      t = static_type(n->args[1]);
      if (t != TRB_T_S) {
        bad_operand_type(p, n->fname, t ? trb_type_name(t) : "{NS,SS,L,BS,N,M,B,BOOL,NULL,S}");
      } else {
        const trb_av *v = n->args[1]->val;
        static const char *const names[] = {"S", "N", "B", "NULL", "SS",
                                            "BOOL", "L", "BS", "NS", "M"};
        int ok = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
          if (v->u.s.len == strlen(names[i]) && memcmp(v->u.s.p, names[i], v->u.s.len) == 0)
            ok = 1;
        if (!ok) {
          char q[XP_MSG_USER_MAX + 1];
          trb__expr_quote(v->u.s.p, v->u.s.len, q, sizeof q);
          slot_set(p, S_FUNCTION,
                   "Invalid attribute type name found; type: %s, valid types: "
                   "{B,NULL,SS,BOOL,L,BS,N,NS,S,M}",
                   q);
        }
      }
      break;
    case XF_SIZE:
      t = static_type(n->args[0]);
      if (t == TRB_T_N || t == TRB_T_BOOL || t == TRB_T_NULL)
        bad_operand_type(p, n->fname, trb_type_name(t));
      break;
    default:
      break;
  }
}

static void check_func_update(xp *p, xnode *n) {
  if (n->op == XF_UNKNOWN) {
    unknown_fn(p, n, 1);
    return;
  }
  if (n->nargs != 2) {
    slot_set(p, S_FUNCTION,
             "Incorrect number of operands for operator or function; operator or function: %s, "
             "number of operands: %u",
             n->fname, (unsigned)n->nargs);
    return;
  }
  if (n->op == XF_IF_NOT_EXISTS) {
    if (n->args[0]->kind != XN_PATH)
      slot_set(p, S_FUNCTION,
               "Operator or function requires a document path; operator or function: %s",
               n->fname);
    return;
  }
  for (uint32_t i = 0; i < 2; i++) {
    const xnode *a = n->args[i];
    int t = imm_type(a);
    if (a->kind == XN_FUNC && a->op == XF_LIST_APPEND)
      slot_set(p, S_FUNCTION,
               "The function is not allowed to be used this way in an expression; function: %s",
               a->fname);
    else if (t && t != TRB_T_L)
      bad_operand_type(p, n->fname, trb_type_name(t));
  }
}

/* name ( args ): the current token is the name, the next one '('. */
static xnode *parse_func(xp *p) {
  const xtok *t = cur(p);
  xnode *n = mk(p, XN_FUNC, XF_UNKNOWN);
  pvec args = {0};
  if (!n) return NULL;
  n->fname = trb__xa_strdup(&p->e->arena, p->text + t->off, t->len);
  if (!n->fname) return oom(p);
  int upd = p->kind == TRB_EXPR_UPDATE;
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++)
    if (functions[i].update == upd && strcmp(functions[i].name, n->fname) == 0)
      n->op = functions[i].fn;
  p->pos += 2;
  for (;;) {
    xnode *a = upd ? parse_uoperand(p) : parse_operand(p);
    if (!a || pv_push(p, &args, a)) goto fail;
    if (cur(p)->t == TK_COMMA) {
      p->pos++;
      continue;
    }
    if (cur(p)->t != TK_RP) {
      syn(p, p->pos);
      goto fail;
    }
    p->pos++;
    break;
  }
  n->nargs = (uint32_t)args.n;
  n->args = pv_finish(p, &args);
  if (!n->args) return NULL;
  n->end_tok = (uint32_t)p->pos;
  p->ops++;
  if (upd) check_func_update(p, n);
  else check_func_cond(p, n);
  return n;
fail:
  free(args.v);
  return NULL;
}

/* An operand without surrounding parentheses. */
static xnode *parse_operand_np(xp *p) {
  const xtok *t = cur(p);
  xnode *n;
  if (t->t == TK_NAME) {
    if (grammar_kw(p, p->pos)) return syn(p, p->pos);
    if (p->tk[p->pos + 1].t == TK_LP) return parse_func(p);
  }
  if (t->t == TK_NAME || t->t == TK_HASH) {
    if (!(n = mk(p, XN_PATH, 0))) return NULL;
    if (parse_path(p, &n->path, p->kind != TRB_EXPR_UPDATE)) return NULL;
    n->end_tok = (uint32_t)p->pos;
    return n;
  }
  if (t->t == TK_COLON) {
    if (!(n = mk(p, XN_VALUE, 0))) return NULL;
    n->val = trb__env_value(p->env, p->text + t->off, t->len);
    if (!n->val) {
      char q[XP_MSG_USER_MAX + 1];
      quote_tok(p, t, q, sizeof q);
      slot_set(p, attr_slot(p, 0),
               "An expression attribute value used in expression is not defined; attribute "
               "value: %s",
               q);
    }
    p->pos++;
    n->end_tok = (uint32_t)p->pos;
    return n;
  }
  return syn(p, p->pos);
}

/* Condition operand: any number of parentheses (two or more are "redundant"). */
static xnode *parse_operand(xp *p) {
  if (cur(p)->t != TK_LP) return parse_operand_np(p);
  p->pos++;
  xnode *x = parse_operand(p);
  if (!x) return NULL;
  if (cur(p)->t != TK_RP) return syn(p, p->pos);
  p->pos++;
  if (x->paren) slot_set(p, S_PARENS, "The expression has redundant parentheses;");
  x->paren = 1;
  x->end_tok = (uint32_t)p->pos;
  return x;
}

/* Update operand: at most one level of parentheses. */
static xnode *parse_uoperand(xp *p) {
  if (cur(p)->t != TK_LP) return parse_operand_np(p);
  p->pos++;
  xnode *x = parse_operand_np(p);
  if (!x) return NULL;
  if (cur(p)->t != TK_RP) return syn(p, p->pos);
  p->pos++;
  x->paren = 1;
  x->end_tok = (uint32_t)p->pos;
  return x;
}

/* ---- conditions ---- */

static xnode *parse_or(xp *p);

/* A node used where a condition is required. */
static int need_cond(xp *p, const xnode *n) {
  if (n->kind == XN_PATH || n->kind == XN_VALUE || n->kind == XN_ARITH) {
    syn(p, n->end_tok);
    return -1;
  }
  if (n->kind == XN_FUNC && n->op == XF_SIZE)
    slot_set(p, S_MISUSED_FN,
             "The function is not allowed to be used this way in an expression; function: %s",
             n->fname);
  return 0;
}

static void check_order_types(xp *p, const char *op, xnode *const *args, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    int t = imm_type(args[i]);
    if (t && t != TRB_T_S && t != TRB_T_N && t != TRB_T_B) bad_operand_type(p, op, trb_type_name(t));
  }
}

static void check_between(xp *p, xnode *n) {
  const xnode *lo = n->args[1], *hi = n->args[2];
  int t1 = imm_type(lo), t2 = imm_type(hi);
  char a[300], b[300];
  if (t1 && t2) {
    av_short(lo->val, a, sizeof a);
    av_short(hi->val, b, sizeof b);
    if (t1 != t2) {
      slot_set(p, S_FUNCTION,
               "The BETWEEN operator requires same data type for lower and upper bounds; lower "
               "bound operand: AttributeValue: %s, upper bound operand: AttributeValue: %s",
               a, b);
      return;
    }
    if ((t1 == TRB_T_S || t1 == TRB_T_N || t1 == TRB_T_B) &&
        trb_av_cmp_scalar(lo->val, hi->val) > 0) {
      slot_set(p, S_FUNCTION,
               "The BETWEEN operator requires upper bound to be greater than or equal to lower "
               "bound; lower bound operand: AttributeValue: %s, upper bound operand: "
               "AttributeValue: %s",
               a, b);
      return;
    }
  }
  check_order_types(p, "BETWEEN", n->args, 3);
}

static xnode *parse_cmp(xp *p) {
  xnode *lhs, *n;
  if (cur(p)->t == TK_LP) {
    p->pos++;
    lhs = parse_or(p);
    if (!lhs) return NULL;
    if (cur(p)->t != TK_RP) return syn(p, p->pos);
    p->pos++;
    if (lhs->paren) slot_set(p, S_PARENS, "The expression has redundant parentheses;");
    lhs->paren = 1;
    lhs->end_tok = (uint32_t)p->pos;
  } else {
    lhs = parse_operand_np(p);
    if (!lhs) return NULL;
  }
  const xtok *t = cur(p);
  int op = 0;
  switch (t->t) {
    case TK_EQ: op = XC_EQ; break;
    case TK_NE: op = XC_NE; break;
    case TK_LT: op = XC_LT; break;
    case TK_LE: op = XC_LE; break;
    case TK_GT: op = XC_GT; break;
    case TK_GE: op = XC_GE; break;
    default: break;
  }
  int between = !op && tok_is(p, p->pos, "BETWEEN"), in = !op && tok_is(p, p->pos, "IN");
  if (!op && !between && !in) return lhs;
  if (is_cond_node(lhs)) return syn(p, p->pos);
  p->pos++;
  if (op) {
    xnode *rhs = parse_operand(p);
    if (!rhs || !(n = mk2(p, XN_CMP, op, lhs, rhs))) return NULL;
    misused(p, lhs);
    misused(p, rhs);
    distinct(p, cmp_str(op), lhs, rhs);
    if (op != XC_EQ && op != XC_NE) check_order_types(p, cmp_str(op), n->args, 2);
  } else if (between) {
    xnode *lo = parse_operand(p);
    if (!lo) return NULL;
    if (!tok_is(p, p->pos, "AND")) return syn(p, p->pos);
    p->pos++;
    xnode *hi = parse_operand(p);
    if (!hi || !(n = mk(p, XN_BETWEEN, 0))) return NULL;
    xnode **args = alloc(p, 3 * sizeof *args);
    if (!args) return NULL;
    args[0] = lhs;
    args[1] = lo;
    args[2] = hi;
    n->args = args;
    n->nargs = 3;
    for (int i = 0; i < 3; i++) misused(p, args[i]);
    check_between(p, n);
  } else {
    pvec list = {0};
    if (cur(p)->t != TK_LP) return syn(p, p->pos);
    p->pos++;
    if (pv_push(p, &list, lhs)) return NULL;
    for (;;) {
      xnode *a = parse_operand(p);
      if (!a || pv_push(p, &list, a)) goto in_fail;
      if (cur(p)->t == TK_COMMA) {
        p->pos++;
        continue;
      }
      if (cur(p)->t != TK_RP) {
        syn(p, p->pos);
        goto in_fail;
      }
      p->pos++;
      break;
    }
    if (!(n = mk(p, XN_IN, 0))) goto in_fail;
    for (size_t i = 0; i < list.n; i++) misused(p, list.v[i]);
    if (list.n - 1 > XP_MAX_IN)
      slot_set(p, S_IN_LIMIT,
               "The IN operator is provided with too many operands; number of operands: %zu",
               list.n - 1);
    n->nargs = (uint32_t)list.n;
    n->args = pv_finish(p, &list);
    if (!n->args) return NULL;
    goto built;
  in_fail:
    free(list.v);
    return NULL;
  }
built:
  n->end_tok = (uint32_t)p->pos;
  p->ops++;
  return n;
}

static xnode *parse_not(xp *p) {
  if (!tok_is(p, p->pos, "NOT")) return parse_cmp(p);
  p->pos++;
  xnode *x = parse_not(p);
  if (!x || need_cond(p, x)) return NULL;
  xnode *n = mk(p, XN_NOT, 0);
  xnode **args = alloc(p, sizeof *args);
  if (!n || !args) return NULL;
  args[0] = x;
  n->args = args;
  n->nargs = 1;
  n->end_tok = (uint32_t)p->pos;
  p->ops++;
  return n;
}

static xnode *parse_and(xp *p) {
  xnode *l = parse_not(p);
  while (l && tok_is(p, p->pos, "AND")) {
    if (need_cond(p, l)) return NULL;
    p->pos++;
    xnode *r = parse_not(p);
    if (!r || need_cond(p, r)) return NULL;
    l = mk2(p, XN_AND, 0, l, r);
    p->ops++;
  }
  return l;
}

static xnode *parse_or(xp *p) {
  xnode *l = parse_and(p);
  while (l && tok_is(p, p->pos, "OR")) {
    if (need_cond(p, l)) return NULL;
    p->pos++;
    xnode *r = parse_and(p);
    if (!r || need_cond(p, r)) return NULL;
    l = mk2(p, XN_OR, 0, l, r);
    p->ops++;
  }
  return l;
}

static void parse_condition(xp *p) {
  xnode *root = parse_or(p);
  if (!root) return;
  if (cur(p)->t != TK_EOF) {
    syn(p, p->pos);
    return;
  }
  if (need_cond(p, root)) return;
  p->e->root = root;
}

/* ---- updates ---- */

static xnode *mk_arith(xp *p, xnode *a) {
  int op = cur(p)->t == TK_PLUS ? '+' : '-';
  p->pos++;
  xnode *b = parse_uoperand(p);
  if (!b) return NULL;
  xnode *n = mk2(p, XN_ARITH, op, a, b);
  if (!n) return NULL;
  p->ops++;
  const char *name = op == '+' ? "+" : "-";
  for (int i = 0; i < 2; i++) {
    int t = imm_type(n->args[i]);
    if (t && t != TRB_T_N) bad_operand_type(p, name, trb_type_name(t));
  }
  return n;
}

static xnode *parse_sum(xp *p) {
  xnode *a = parse_uoperand(p);
  if (!a) return NULL;
  if (cur(p)->t == TK_PLUS || cur(p)->t == TK_MINUS) return mk_arith(p, a);
  return a;
}

static xnode *parse_set_value(xp *p) {
  if (cur(p)->t != TK_LP) return parse_sum(p);
  /* "( sum )" or "( operand ) + operand" */
  p->pos++;
  xnode *v = parse_sum(p);
  if (!v) return NULL;
  if (cur(p)->t != TK_RP) return syn(p, p->pos);
  p->pos++;
  v->paren = 1;
  v->end_tok = (uint32_t)p->pos;
  if (v->kind != XN_ARITH && (cur(p)->t == TK_PLUS || cur(p)->t == TK_MINUS)) return mk_arith(p, v);
  return v;
}

static int push_action(xp *p, const xaction *a) {
  for (size_t i = 0; i < p->nacts; i++) check_overlap(p, &p->acts[i].path, &a->path);
  if (p->nacts == p->cacts) {
    size_t nc = p->cacts ? p->cacts * 2 : 8;
    xaction *na = realloc(p->acts, nc * sizeof *na);
    if (!na) {
      p->oom = 1;
      return -1;
    }
    p->acts = na;
    p->cacts = nc;
  }
  p->acts[p->nacts++] = *a;
  return 0;
}

static const char *upper_type_name(int t) {
  switch (t) {
    case TRB_T_S: return "STRING";
    case TRB_T_N: return "NUMBER";
    case TRB_T_B: return "BINARY";
    case TRB_T_NULL: return "NULL";
    case TRB_T_BOOL: return "BOOLEAN";
    case TRB_T_L: return "LIST";
    case TRB_T_M: return "MAP";
    default: return NULL;
  }
}

static void parse_update(xp *p) {
  while (cur(p)->t != TK_EOF) {
    int which = update_kw(p, p->pos);
    if (which < 0) {
      syn(p, p->pos);
      return;
    }
    if (p->sections[which])
      slot_set(p, S_SECTION, "The \"%s\" section can only be used once in an update expression;",
               update_kws[which]);
    p->sections[which] = 1;
    p->pos++;
    for (;;) {
      xaction a;
      memset(&a, 0, sizeof a);
      a.kind = (xu_kind)which;
      if (parse_path(p, &a.path, 1)) return;
      if (a.kind == XU_SET) {
        if (cur(p)->t != TK_EQ) {
          syn(p, p->pos);
          return;
        }
        p->pos++;
        if (!(a.val = parse_set_value(p))) return;
      } else if (a.kind == XU_ADD || a.kind == XU_DELETE) {
        if (cur(p)->t != TK_COLON) {
          syn(p, p->pos);
          return;
        }
        if (!(a.val = parse_operand_np(p))) return;
        int t = imm_type(a.val);
        const char *tn = upper_type_name(t);
        if (tn && !(a.kind == XU_ADD && t == TRB_T_N))
          slot_set(p, S_OPERAND,
                   "Incorrect operand type for operator or function; operator: %s, operand type: "
                   "%s",
                   update_kws[which], tn);
      }
      p->ops++;
      if (push_action(p, &a)) return;
      if (cur(p)->t != TK_COMMA) break;
      p->pos++;
    }
  }
}

/* ---- projections ---- */

static void parse_projection(xp *p) {
  for (;;) {
    xpath path;
    if (parse_path(p, &path, 1)) return;
    for (size_t i = 0; i < p->npaths; i++) check_overlap(p, &p->paths[i], &path);
    if (p->npaths == p->cpaths) {
      size_t nc = p->cpaths ? p->cpaths * 2 : 8;
      xpath *np = realloc(p->paths, nc * sizeof *np);
      if (!np) {
        p->oom = 1;
        return;
      }
      p->paths = np;
      p->cpaths = nc;
    }
    p->paths[p->npaths++] = path;
    if (cur(p)->t != TK_COMMA) break;
    p->pos++;
  }
  if (cur(p)->t != TK_EOF) syn(p, p->pos);
}

/* ---- entry point ---- */

static trb_err syntax_error(const xp *p, trb_status *st) {
  const xtok *bad = &p->tk[p->err_tok];
  char tok[XP_MSG_USER_MAX + 1], near[XP_MSG_USER_MAX + 1];
  if (bad->t == TK_EOF) snprintf(tok, sizeof tok, "<EOF>");
  else quote_tok(p, bad, tok, sizeof tok);
  size_t start = p->err_tok > 0 ? p->tk[p->err_tok - 1].off : bad->off, end;
  if (bad->t == TK_EOF)
    end = p->err_tok > 0 ? p->tk[p->err_tok - 1].off + p->tk[p->err_tok - 1].len : bad->off;
  else if (p->tk[p->err_tok + 1].t != TK_EOF)
    end = p->tk[p->err_tok + 1].off + p->tk[p->err_tok + 1].len;
  else
    end = bad->off + bad->len;
  trb__expr_quote(p->text + start, end - start, near, sizeof near);
  trb_status_set(st, TRB_EINVAL, "Invalid %sExpression: Syntax error; token: \"%s\", near: \"%s\"",
                 trb__expr_kind_name(p->kind), tok, near);
  return TRB_EINVAL;
}

trb_err trb_expr_parse(trb_expr_kind kind, const char *text, trb_expr_env *env, trb_expr **out,
                       trb_status *st) {
  trb_err rc = TRB_OK;
  xp *p = NULL;
  trb_expr *e = NULL;
  *out = NULL;
  if (kind < TRB_EXPR_CONDITION || kind > TRB_EXPR_UPDATE || !text)
    return trb_status_set(st, TRB_EINVAL, "invalid expression kind or text");
  const char *kn = trb__expr_kind_name(kind);
  if (env) env->parsed = 1;
  size_t len = strlen(text), i = 0;
  while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n')) i++;
  if (i == len)
    return trb_status_set(st, TRB_EINVAL, "Invalid %sExpression: The expression can not be empty;",
                          kn);
  if (len > XP_MAX_TEXT)
    return trb_status_set(st, TRB_EINVAL,
                          "Invalid %sExpression: Expression size has exceeded the maximum allowed "
                          "size; expression size: %zu",
                          kn, len);

  p = calloc(1, sizeof *p);
  e = calloc(1, sizeof *e);
  if (!p || !e) goto nomem;
  e->kind = kind;
  p->text = text;
  p->len = len;
  p->kind = kind;
  p->env = env;
  p->e = e;
  if (trb__expr_lex(text, len, &p->tk, &p->ntk)) goto nomem;

  if (kind == TRB_EXPR_UPDATE) parse_update(p);
  else if (kind == TRB_EXPR_PROJECTION) parse_projection(p);
  else parse_condition(p);
  if (p->oom) goto nomem;
  if (p->failed) {
    rc = syntax_error(p, st);
    goto done;
  }
  if (p->ops > XP_MAX_OPS)
    slot_set(p, S_OPS,
             "The expression contains too many operators and functions; maximum: %d, found: %u",
             XP_MAX_OPS, p->ops);
  const signed char *order = kind == TRB_EXPR_UPDATE       ? update_order
                             : kind == TRB_EXPR_PROJECTION ? proj_order
                                                           : cond_order;
  for (; *order >= 0; order++) {
    if (p->slot[*order]) {
      rc = trb_status_set(st, TRB_EINVAL, "Invalid %sExpression: %s", kn, p->slot[*order]);
      goto done;
    }
  }
  if (p->oom) goto nomem;

  /* Move the growing arrays into the arena. */
  if (p->ntops) {
    e->tops = trb__xa_alloc(&e->arena, p->ntops * sizeof *e->tops);
    if (!e->tops) goto nomem;
    memcpy(e->tops, p->tops, p->ntops * sizeof *e->tops);
    e->ntops = p->ntops;
  }
  if (p->nacts) {
    e->acts = trb__xa_alloc(&e->arena, p->nacts * sizeof *e->acts);
    if (!e->acts) goto nomem;
    memcpy(e->acts, p->acts, p->nacts * sizeof *e->acts);
    e->nacts = p->nacts;
  }
  if (p->npaths) {
    e->paths = trb__xa_alloc(&e->arena, p->npaths * sizeof *e->paths);
    if (!e->paths) goto nomem;
    memcpy(e->paths, p->paths, p->npaths * sizeof *e->paths);
    e->npaths = p->npaths;
  }
  *out = e;
  e = NULL;
  goto done;
nomem:
  rc = trb_status_set(st, TRB_ENOMEM, NULL);
done:
  if (rc == TRB_EINVAL && st) trb__expr_utf8_fix(st->msg);
  if (p) {
    for (int s = 0; s < S_NSLOTS; s++) free(p->slot[s]);
    free(p->tk);
    free(p->tops);
    free(p->acts);
    free(p->paths);
    free(p);
  }
  trb_expr_destroy(e);
  return rc;
}

void trb_expr_destroy(trb_expr *e) {
  if (!e) return;
  trb__xa_free(&e->arena);
  free(e);
}
