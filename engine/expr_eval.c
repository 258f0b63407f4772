/*
 * expr_eval.c -- evaluation of conditions and filters, key conditions
 * against a key schema, and projections (spec 5.3, 5.6, 5.7).
 *
 * Condition semantics (spec 5.3, dynalite's): a missing attribute or a type
 * mismatch makes =, <, <=, >, >=, BETWEEN, IN and begins_with false and <>
 * true; ordering works on S (bytes), N (numeric) and B (bytes); equality is
 * trb_av_equal (numbers by value, sets and maps order-insensitive, lists and
 * maps deep). size() counts UTF-8 code points of an S (DynamoDB documents
 * size as the string's length in characters), bytes of a B, elements of a
 * set or L and members of an M; an N, BOOL or NULL attribute has no size,
 * and size() of it compares as a missing attribute does (DynamoDB fails the
 * condition, it does not refuse the request).
 */
#include "engine/expr_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- operands ---- */

typedef struct xval {
  const trb_av *v;   /* NULL: missing */
  trb_av tmp;        /* storage for a computed N (size) */
} xval;

static size_t utf8_chars(const char *p, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)p[i] & 0xC0) != 0x80) c++;
  return c;
}

static trb_err eval_operand(const trb_expr *e, const xnode *n, const trb_av *item, xval *out,
                            trb_status *st) {
  out->v = NULL;
  switch (n->kind) {
    case XN_PATH:
      out->v = item ? trb__xpath_get(item, &n->path) : NULL;
      return TRB_OK;
    case XN_VALUE:
      out->v = n->val;
      return TRB_OK;
    case XN_FUNC: {
      if (n->op != XF_SIZE || n->nargs != 1) break;
      xval a;
      trb_err rc = eval_operand(e, n->args[0], item, &a, st);
      if (rc || !a.v) return rc;
      size_t count;
      switch (a.v->type) {
        case TRB_T_S: count = utf8_chars(a.v->u.s.p, a.v->u.s.len); break;
        case TRB_T_B: count = a.v->u.s.len; break;
        case TRB_T_M: count = a.v->u.m.n; break;
        case TRB_T_L:
        case TRB_T_SS:
        case TRB_T_NS:
        case TRB_T_BS: count = a.v->u.l.n; break;
        default: return TRB_OK; /* no size: as if missing */
      }
      out->tmp.type = TRB_T_N;
      trb_dec_from_i64((int64_t)count, &out->tmp.u.n);
      out->v = &out->tmp;
      return TRB_OK;
    }
    default:
      break;
  }
  return trb_status_set(st, TRB_EINVAL, "Invalid %sExpression: unsupported operand",
                        trb__expr_kind_name(e->kind));
}

static int orderable(const trb_av *v) {
  return v->type == TRB_T_S || v->type == TRB_T_N || v->type == TRB_T_B;
}

/* a op b with both present; see the file comment. */
static int compare(int op, const trb_av *a, const trb_av *b) {
  if (op == XC_EQ) return a && b && trb_av_equal(a, b);
  if (op == XC_NE) return !(a && b && trb_av_equal(a, b));
  if (!a || !b || a->type != b->type || !orderable(a)) return 0;
  int c = trb_av_cmp_scalar(a, b);
  switch (op) {
    case XC_LT: return c < 0;
    case XC_LE: return c <= 0;
    case XC_GT: return c > 0;
    case XC_GE: return c >= 0;
  }
  return 0;
}

static int bytes_contain(const trb_av *hay, const trb_av *needle) {
  if (needle->u.s.len == 0) return 1;
  if (needle->u.s.len > hay->u.s.len) return 0;
  return memmem(hay->u.s.p, hay->u.s.len, needle->u.s.p, needle->u.s.len) != NULL;
}

static int contains(const trb_av *a, const trb_av *b) {
  if (!a || !b) return 0;
  switch (a->type) {
    case TRB_T_S:
    case TRB_T_B:
      return b->type == a->type && bytes_contain(a, b);
    case TRB_T_SS:
    case TRB_T_NS:
    case TRB_T_BS:
      if ((a->type == TRB_T_SS && b->type != TRB_T_S) ||
          (a->type == TRB_T_NS && b->type != TRB_T_N) ||
          (a->type == TRB_T_BS && b->type != TRB_T_B))
        return 0;
      for (size_t i = 0; i < a->u.l.n; i++)
        if (trb_av_cmp_scalar(a->u.l.v[i], b) == 0) return 1;
      return 0;
    case TRB_T_L:
      for (size_t i = 0; i < a->u.l.n; i++)
        if (trb_av_equal(a->u.l.v[i], b)) return 1;
      return 0;
    default:
      return 0;
  }
}

static int begins_with(const trb_av *a, const trb_av *b) {
  if (!a || !b || a->type != b->type || (a->type != TRB_T_S && a->type != TRB_T_B)) return 0;
  return b->u.s.len <= a->u.s.len && (b->u.s.len == 0 || memcmp(a->u.s.p, b->u.s.p, b->u.s.len) == 0);
}

static trb_err eval_cond(const trb_expr *e, const xnode *n, const trb_av *item, int *res,
                         trb_status *st) {
  trb_err rc;
  xval a, b, c;
  int r;
  *res = 0;
  switch (n->kind) {
    case XN_AND:
      if ((rc = eval_cond(e, n->args[0], item, &r, st)) || !r) return rc;
      return eval_cond(e, n->args[1], item, res, st);
    case XN_OR:
      if ((rc = eval_cond(e, n->args[0], item, &r, st))) return rc;
      if (r) {
        *res = 1;
        return TRB_OK;
      }
      return eval_cond(e, n->args[1], item, res, st);
    case XN_NOT:
      if ((rc = eval_cond(e, n->args[0], item, &r, st))) return rc;
      *res = !r;
      return TRB_OK;
    case XN_CMP:
      if ((rc = eval_operand(e, n->args[0], item, &a, st)) ||
          (rc = eval_operand(e, n->args[1], item, &b, st)))
        return rc;
      *res = compare(n->op, a.v, b.v);
      return TRB_OK;
    case XN_BETWEEN:
      if ((rc = eval_operand(e, n->args[0], item, &a, st)) ||
          (rc = eval_operand(e, n->args[1], item, &b, st)) ||
          (rc = eval_operand(e, n->args[2], item, &c, st)))
        return rc;
      *res = compare(XC_GE, a.v, b.v) && compare(XC_LE, a.v, c.v);
      return TRB_OK;
    case XN_IN:
      if ((rc = eval_operand(e, n->args[0], item, &a, st))) return rc;
      if (!a.v) return TRB_OK;
      for (uint32_t i = 1; i < n->nargs; i++) {
        if ((rc = eval_operand(e, n->args[i], item, &b, st))) return rc;
        if (b.v && trb_av_equal(a.v, b.v)) {
          *res = 1;
          return TRB_OK;
        }
      }
      return TRB_OK;
    case XN_FUNC:
      if ((rc = eval_operand(e, n->args[0], item, &a, st))) return rc;
      if (n->nargs > 1 && (rc = eval_operand(e, n->args[1], item, &b, st))) return rc;
      switch (n->op) {
        case XF_ATTR_EXISTS: *res = a.v != NULL; return TRB_OK;
        case XF_ATTR_NOT_EXISTS: *res = a.v == NULL; return TRB_OK;
        case XF_ATTR_TYPE: {
          const char *tn = a.v ? trb_type_name(a.v->type) : NULL;
          *res = tn && b.v && b.v->type == TRB_T_S && b.v->u.s.len == strlen(tn) &&
                 memcmp(b.v->u.s.p, tn, b.v->u.s.len) == 0;
          return TRB_OK;
        }
        case XF_BEGINS_WITH: *res = begins_with(a.v, b.v); return TRB_OK;
        case XF_CONTAINS: *res = contains(a.v, b.v); return TRB_OK;
        default: break;
      }
      break;
    default:
      break;
  }
  return trb_status_set(st, TRB_EINVAL, "Invalid %sExpression: not a condition",
                        trb__expr_kind_name(e->kind));
}

trb_err trb_expr_eval(const trb_expr *e, const trb_av *item, int *pass, trb_status *st) {
  *pass = 0;
  if (!e || !e->root)
    return trb_status_set(st, TRB_EINVAL, "expression is not a condition");
  return eval_cond(e, e->root, item, pass, st);
}

trb_err trb_expr_cond_fn(void *ctx, const trb_av *item, int *pass, trb_status *st) {
  return trb_expr_eval((const trb_expr *)ctx, item, pass, st);
}

int trb_expr_refers_to(const trb_expr *e, const char *name) {
  for (size_t i = 0; e && i < e->ntops; i++)
    if (strcmp(e->tops[i], name) == 0) return 1;
  return 0;
}

/* ---- key conditions ---- */

typedef struct kcond {
  const xnode *n;       /* CMP, BETWEEN or begins_with */
  const xpath *attr;
  int op;               /* trb_sk_op */
  const trb_av *v1, *v2;
} kcond;

static int path_is(const xpath *p, const char *name) {
  return p->n == 1 && p->e[0].name && p->e[0].len == strlen(name) &&
         memcmp(p->e[0].name, name, p->e[0].len) == 0;
}

/* dynalite's convertKeyCondition checks, in its order. */
static trb_err key_walk(const xnode *n, kcond *out, size_t *nout, trb_status *st) {
  trb_err rc;
  switch (n->kind) {
    case XN_OR:
      return trb_status_set(st, TRB_EINVAL, "Invalid operator used in KeyConditionExpression: OR");
    case XN_NOT:
      return trb_status_set(st, TRB_EINVAL, "Invalid operator used in KeyConditionExpression: NOT");
    case XN_IN:
      return trb_status_set(st, TRB_EINVAL, "Invalid operator used in KeyConditionExpression: IN");
    case XN_CMP:
      if (n->op == XC_NE)
        return trb_status_set(st, TRB_EINVAL,
                              "Invalid operator used in KeyConditionExpression: <>");
      break;
    case XN_FUNC:
      if (n->op == XF_SIZE)
        return trb_status_set(st, TRB_EINVAL,
                              "KeyConditionExpressions cannot contain nested operations");
      if (n->op != XF_BEGINS_WITH)
        return trb_status_set(st, TRB_EINVAL, "Invalid operator used in KeyConditionExpression: %s",
                              n->fname);
      break;
    default:
      break;
  }
  if (n->kind == XN_BETWEEN && n->args[0]->kind != XN_PATH)
    return trb_status_set(st, TRB_EINVAL,
                          "Invalid condition in KeyConditionExpression: BETWEEN operator must "
                          "have the key attribute as its first operand");
  if (n->kind == XN_FUNC && n->args[0]->kind != XN_PATH)
    return trb_status_set(st, TRB_EINVAL,
                          "Invalid condition in KeyConditionExpression: begins_with operator "
                          "must have the key attribute as its first operand");
  const xpath *attr = NULL;
  uint32_t attr_ix = 0;
  for (uint32_t i = 0; i < n->nargs; i++) {
    const xnode *a = n->args[i];
    if (a->kind == XN_PATH) {
      if (attr)
        return trb_status_set(st, TRB_EINVAL,
                              "Invalid condition in KeyConditionExpression: Multiple attribute "
                              "names used in one condition");
      if (a->path.n > 1)
        return trb_status_set(st, TRB_EINVAL,
                              "KeyConditionExpressions cannot have conditions on nested "
                              "attributes");
      attr = &a->path;
      attr_ix = i;
    } else if (a->kind != XN_VALUE) {
      if ((rc = key_walk(a, out, nout, st))) return rc;
    }
  }
  if (n->kind == XN_AND) return TRB_OK;
  if (!attr)
    return trb_status_set(st, TRB_EINVAL,
                          "Invalid condition in KeyConditionExpression: No key attribute "
                          "specified");
  for (size_t i = 0; i < *nout; i++)
    if (trb__xpath_equal(out[i].attr, attr))
      return trb_status_set(st, TRB_EINVAL,
                            "KeyConditionExpressions must only contain one condition per key");
  if (*nout >= 2)
    return trb_status_set(st, TRB_EINVAL, "Conditions can be of length 1 or 2 only");
  kcond *k = &out[(*nout)++];
  memset(k, 0, sizeof *k);
  k->n = n;
  k->attr = attr;
  if (n->kind == XN_CMP) {
    int op = n->op;
    if (attr_ix != 0) /* ":v < sk" is "sk > :v" */
      op = op == XC_LT ? XC_GT : op == XC_LE ? XC_GE : op == XC_GT ? XC_LT : op == XC_GE ? XC_LE : op;
    k->op = op == XC_EQ   ? TRB_SK_EQ
            : op == XC_LT ? TRB_SK_LT
            : op == XC_LE ? TRB_SK_LE
            : op == XC_GT ? TRB_SK_GT
                          : TRB_SK_GE;
    k->v1 = n->args[attr_ix ? 0 : 1]->val;
  } else if (n->kind == XN_BETWEEN) {
    k->op = TRB_SK_BETWEEN;
    k->v1 = n->args[1]->val;
    k->v2 = n->args[2]->val;
  } else {
    k->op = TRB_SK_BEGINS_WITH;
    k->v1 = n->args[1]->val;
  }
  return TRB_OK;
}

static trb_err key_type(const kcond *k, trb_type want, trb_status *st) {
  const trb_av *vs[2] = {k->v1, k->v2};
  for (int i = 0; i < 2; i++) {
    if (i == 1 && k->op != TRB_SK_BETWEEN) break;
    if (!vs[i] || vs[i]->type != want)
      return trb_status_set(st, TRB_EINVAL,
                            "One or more parameter values were invalid: Condition parameter type "
                            "does not match schema type");
  }
  return TRB_OK;
}

trb_err trb_expr_keycond(const trb_expr *e, const trb_keyschema *ks, const trb_av **pk,
                         trb_sk_op *op, const trb_av **sk1, const trb_av **sk2, trb_status *st) {
  kcond k[2];
  size_t n = 0;
  trb_err rc;
  *pk = *sk1 = *sk2 = NULL;
  *op = TRB_SK_NONE;
  if (!e || e->kind != TRB_EXPR_KEYCOND || !e->root)
    return trb_status_set(st, TRB_EINVAL, "not a KeyConditionExpression");
  if ((rc = key_walk(e->root, k, &n, st))) return rc;
  if (n == 0) return trb_status_set(st, TRB_EINVAL, "Conditions can be of length 1 or 2 only");

  const kcond *pkc = NULL, *skc = NULL;
  for (size_t i = 0; i < n; i++) {
    if (path_is(k[i].attr, ks->pk_name)) pkc = &k[i];
    else if (ks->has_sk && path_is(k[i].attr, ks->sk_name)) skc = &k[i];
  }
  if (!pkc)
    return trb_status_set(st, TRB_EINVAL, "Query condition missed key schema element: %s",
                          ks->pk_name);
  if (n == 2 && !ks->has_sk)
    return trb_status_set(st, TRB_EINVAL, "Query key condition not supported");
  if (n == 2 && !skc)
    return trb_status_set(st, TRB_EINVAL, "Query condition missed key schema element: %s",
                          ks->sk_name);
  if (pkc->op != TRB_SK_EQ)
    return trb_status_set(st, TRB_EINVAL, "Query key condition not supported");
  if ((rc = key_type(pkc, ks->pk_type, st))) return rc;
  if (skc) {
    /* begins_with with an N operand never gets here: the parser rejects it
     * ("Incorrect operand type ... begins_with, operand type: N"), so on an
     * N sort key any begins_with is a type mismatch. */
    if ((rc = key_type(skc, ks->sk_type, st))) return rc;
    *op = (trb_sk_op)skc->op;
    *sk1 = skc->v1;
    *sk2 = skc->v2;
  }
  *pk = pkc->v1;
  return TRB_OK;
}

/* ---- projections ---- */

/*
 * A projection is built in a temporary tree first, because list elements
 * must come out in index order with the holes squashed (projecting a[3] and
 * a[1] of a list gives [a[1], a[3]]) and trb_av has nowhere to keep the
 * original indexes.
 */
typedef struct pnode pnode;
struct pnode {
  const xpelem *key;       /* how the parent reaches this node */
  const trb_av *leaf;      /* set for a projected value */
  int is_list;             /* children are indexes */
  pnode **kids;
  size_t nkids, ckids;
};

static void pnode_free(pnode *n) {
  if (!n) return;
  for (size_t i = 0; i < n->nkids; i++) pnode_free(n->kids[i]);
  free(n->kids);
  free(n);
}

static pnode *pnode_child(pnode *n, const xpelem *el) {
  for (size_t i = 0; i < n->nkids; i++) {
    const xpelem *k = n->kids[i]->key;
    if (el->name ? k->name && k->len == el->len && memcmp(k->name, el->name, el->len) == 0
                 : !k->name && k->index == el->index)
      return n->kids[i];
  }
  if (n->nkids == n->ckids) {
    size_t nc = n->ckids ? n->ckids * 2 : 4;
    pnode **nk = realloc(n->kids, nc * sizeof *nk);
    if (!nk) return NULL;
    n->kids = nk;
    n->ckids = nc;
  }
  pnode *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->key = el;
  n->is_list = el->name == NULL;
  n->kids[n->nkids++] = c;
  return c;
}

static int kid_index_cmp(const void *x, const void *y) {
  const pnode *a = *(const pnode *const *)x, *b = *(const pnode *const *)y;
  return a->key->index < b->key->index ? -1 : a->key->index > b->key->index;
}

static trb_av *pnode_build(pnode *n) {
  if (n->leaf) return trb_av_copy(n->leaf);
  trb_av *c = n->is_list ? trb_av_new_l() : trb_av_new_m();
  if (!c) return NULL;
  if (n->is_list && n->nkids) qsort(n->kids, n->nkids, sizeof *n->kids, kid_index_cmp);
  for (size_t i = 0; i < n->nkids; i++) {
    trb_av *v = pnode_build(n->kids[i]);
    if (!v) goto fail;
    trb_err rc = n->is_list ? trb_av_l_append(c, v)
                            : trb_av_m_set(c, n->kids[i]->key->name, n->kids[i]->key->len, v);
    if (rc) {
      trb_av_destroy(v);
      goto fail;
    }
  }
  return c;
fail:
  trb_av_destroy(c);
  return NULL;
}

trb_err trb__expr_project_paths(const xpath *const *paths, size_t n, const trb_av *item,
                                trb_av **out, trb_status *st) {
  pnode *root = calloc(1, sizeof *root);
  trb_err rc = TRB_OK;
  *out = NULL;
  if (!root) return trb_status_set(st, TRB_ENOMEM, NULL);
  for (size_t i = 0; item && i < n; i++) {
    const xpath *p = paths[i];
    const trb_av *v = trb__xpath_get(item, p);
    if (!v || p->n == 0) continue;
    pnode *cur = root;
    for (uint32_t j = 0; j < p->n && cur; j++) cur = pnode_child(cur, &p->e[j]);
    if (!cur) goto nomem;
    cur->leaf = v;
  }
  /* The root is the item: always a map. */
  trb_av *res = trb_av_new_m();
  if (!res) goto nomem;
  for (size_t i = 0; i < root->nkids; i++) {
    trb_av *v = pnode_build(root->kids[i]);
    if (!v || trb_av_m_set(res, root->kids[i]->key->name, root->kids[i]->key->len, v)) {
      trb_av_destroy(v);
      trb_av_destroy(res);
      goto nomem;
    }
  }
  *out = res;
  goto done;
nomem:
  rc = trb_status_set(st, TRB_ENOMEM, NULL);
done:
  pnode_free(root);
  return rc;
}

trb_err trb_expr_project(const trb_expr *e, const trb_av *item, trb_av **out, trb_status *st) {
  *out = NULL;
  if (!e || e->kind != TRB_EXPR_PROJECTION)
    return trb_status_set(st, TRB_EINVAL, "not a ProjectionExpression");
  if (item && item->type != TRB_T_M)
    return trb_status_set(st, TRB_EINVAL, "an item must be a map of attributes");
  const xpath **ps = malloc((e->npaths ? e->npaths : 1) * sizeof *ps);
  if (!ps) return trb_status_set(st, TRB_ENOMEM, NULL);
  for (size_t i = 0; i < e->npaths; i++) ps[i] = &e->paths[i];
  trb_err rc = trb__expr_project_paths(ps, e->npaths, item, out, st);
  free(ps);
  return rc;
}

size_t trb_expr_projection_tops(const trb_expr *e, const char *const **names) {
  *names = e ? e->tops : NULL;
  return e ? e->ntops : 0;
}
