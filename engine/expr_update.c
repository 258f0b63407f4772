/*
 * expr_update.c -- applying an UpdateExpression to an item (spec 5.5), and
 * the update's key checks, targets and UPDATED_OLD/UPDATED_NEW picks.
 *
 * How an update is applied (AWS semantics, verified by Alternator's tests):
 *   1. Every SET value is computed from the item as it was before the
 *      update ("SET x = :v, y = x" fails when x did not exist; "REMOVE a
 *      SET b = a" copies the old a).
 *   2. The actions then edit a copy of the item. List indexes always name
 *      positions of the list as it was: "REMOVE a[1] SET a[3] = :v" on
 *      [2,3,4,5,6,7] gives [2,4,17,6,7]. So an action never shifts a list
 *      while others still run: list element removals and appends (SET or
 *      ADD of an index at or past the end) are queued per list and done
 *      last -- appends first, in element-number order ("SET a[84] = ..,
 *      a[17] = .." appends a[17]'s value first), then removals from the
 *      highest index down, which keeps every queued index meaningful.
 *   Paths never overlap (the parser rejects it), so the order of the
 *   actions otherwise does not matter, and no action can destroy a list
 *   another action queued work for.
 * A path whose parent is missing or of the wrong container type is "The
 * document path provided in the update expression is invalid for update";
 * SET and ADD may create the last element (a top-level attribute, a map
 * member, or an appended list element). REMOVE of a path inside a missing
 * parent is silently ignored when the whole item does not exist, as AWS does
 * (Alternator test_nested_attribute_remove_from_missing_item).
 */
#include "engine/expr_int.h"

#include <stdlib.h>
#include <string.h>

#define E_MISSING "The provided expression refers to an attribute that does not exist in the item"
#define E_TYPE "An operand in the update expression has an incorrect data type"
#define E_PATH "The document path provided in the update expression is invalid for update"

/* ---- SET values ---- */

/* Evaluates a SET value against the original item; *out caller-owned. */
static trb_err eval_value(const xnode *n, const trb_av *orig, trb_av **out, trb_status *st) {
  trb_err rc;
  trb_av *a = NULL, *b = NULL;
  const trb_av *v;
  *out = NULL;
  switch (n->kind) {
    case XN_VALUE:
      v = n->val;
      break;
    case XN_PATH:
      v = trb__xpath_get(orig, &n->path);
      if (!v) return trb_status_set(st, TRB_EINVAL, E_MISSING);
      break;
    case XN_FUNC:
      if (n->op == XF_IF_NOT_EXISTS) {
        v = trb__xpath_get(orig, &n->args[0]->path);
        if (!v) return eval_value(n->args[1], orig, out, st);
        break;
      }
      /* list_append */
      if ((rc = eval_value(n->args[0], orig, &a, st))) return rc;
      if (a->type != TRB_T_L) {
        rc = trb_status_set(st, TRB_EINVAL, E_TYPE);
        goto done;
      }
      if ((rc = eval_value(n->args[1], orig, &b, st))) goto done;
      if (b->type != TRB_T_L) {
        rc = trb_status_set(st, TRB_EINVAL, E_TYPE);
        goto done;
      }
      /* Move b's elements to the end of a (both are fresh copies). */
      for (size_t i = 0; i < b->u.l.n; i++) {
        if (trb_av_l_append(a, b->u.l.v[i])) {
          rc = trb_status_set(st, TRB_ENOMEM, NULL);
          goto done;
        }
        b->u.l.v[i] = NULL;
      }
      b->u.l.n = 0;
      *out = a;
      a = NULL;
      rc = TRB_OK;
      goto done;
    case XN_ARITH: {
      trb_dec d;
      if ((rc = eval_value(n->args[0], orig, &a, st))) return rc;
      if (a->type != TRB_T_N) {
        rc = trb_status_set(st, TRB_EINVAL, E_TYPE);
        goto done;
      }
      if ((rc = eval_value(n->args[1], orig, &b, st))) goto done;
      if (b->type != TRB_T_N) {
        rc = trb_status_set(st, TRB_EINVAL, E_TYPE);
        goto done;
      }
      rc = n->op == '+' ? trb_dec_add(&a->u.n, &b->u.n, &d, st)
                        : trb_dec_sub(&a->u.n, &b->u.n, &d, st);
      if (rc) goto done;
      a->u.n = d;
      *out = a;
      a = NULL;
      goto done;
    }
    default:
      return trb_status_set(st, TRB_EINVAL, "Invalid UpdateExpression: unsupported operand");
  }
  if (!(*out = trb_av_copy(v))) return trb_status_set(st, TRB_ENOMEM, NULL);
  return TRB_OK;
done:
  trb_av_destroy(a);
  trb_av_destroy(b);
  return rc;
}

/* ---- deferred list edits ---- */

typedef struct ledit {
  trb_av *list;        /* a list inside the new item */
  uint32_t index;      /* original position */
  trb_av *val;         /* append this (owned), or NULL: remove the element */
} ledit;

typedef struct uctx {
  ledit *ed;
  size_t n, cap;
} uctx;

static trb_err queue(uctx *u, trb_av *list, uint32_t index, trb_av *val) {
  if (u->n == u->cap) {
    size_t nc = u->cap ? u->cap * 2 : 8;
    ledit *ne = realloc(u->ed, nc * sizeof *ne);
    if (!ne) return TRB_ENOMEM;
    u->ed = ne;
    u->cap = nc;
  }
  u->ed[u->n].list = list;
  u->ed[u->n].index = index;
  u->ed[u->n].val = val;
  u->n++;
  return TRB_OK;
}

/* Appends first (by list, index ascending), then removals (by list, index
 * descending). */
static int ledit_cmp(const void *x, const void *y) {
  const ledit *a = x, *b = y;
  int ra = a->val == NULL, rb = b->val == NULL;
  if (ra != rb) return ra - rb;
  if (a->list != b->list) return (uintptr_t)a->list < (uintptr_t)b->list ? -1 : 1;
  if (a->index == b->index) return 0;
  return ra ? (a->index > b->index ? -1 : 1) : (a->index < b->index ? -1 : 1);
}

static void list_remove(trb_av *l, size_t i) {
  trb_av_destroy(l->u.l.v[i]);
  memmove(&l->u.l.v[i], &l->u.l.v[i + 1], (l->u.l.n - i - 1) * sizeof l->u.l.v[0]);
  l->u.l.n--;
}

static trb_err flush(uctx *u, trb_status *st) {
  if (u->n) qsort(u->ed, u->n, sizeof *u->ed, ledit_cmp);
  for (size_t i = 0; i < u->n; i++) {
    ledit *ed = &u->ed[i];
    if (ed->val) {
      if (trb_av_l_append(ed->list, ed->val)) return trb_status_set(st, TRB_ENOMEM, NULL);
      ed->val = NULL;
    } else if (i > 0 && !u->ed[i - 1].val && u->ed[i - 1].list == ed->list &&
               u->ed[i - 1].index == ed->index) {
      continue; /* the same element twice (DELETE emptied a set element ...) */
    } else if (ed->index < ed->list->u.l.n) {
      list_remove(ed->list, ed->index);
    }
  }
  return TRB_OK;
}

static void uctx_fini(uctx *u) {
  for (size_t i = 0; i < u->n; i++) trb_av_destroy(u->ed[i].val);
  free(u->ed);
}

/* ---- actions ---- */

/* The container holding the path's last element, or NULL. */
static trb_av *parent_of(trb_av *item, const xpath *p) {
  trb_av *cur = item;
  for (uint32_t i = 0; i + 1 < p->n && cur; i++) {
    const xpelem *el = &p->e[i];
    if (el->name)
      cur = cur->type == TRB_T_M ? trb_av_m_get(cur, el->name, el->len) : NULL;
    else
      cur = cur->type == TRB_T_L && el->index < cur->u.l.n ? cur->u.l.v[el->index] : NULL;
  }
  return cur;
}

static trb_type set_elem(trb_type t) {
  return t == TRB_T_SS ? TRB_T_S : t == TRB_T_NS ? TRB_T_N : t == TRB_T_BS ? TRB_T_B : 0;
}

static int set_has(const trb_av *s, const trb_av *e) {
  for (size_t i = 0; i < s->u.l.n; i++)
    if (trb_av_cmp_scalar(s->u.l.v[i], e) == 0) return 1;
  return 0;
}

/* Puts val (owned) at the path's last element: replace, insert or queue an
 * append. */
static trb_err put(uctx *u, trb_av *parent, const xpelem *last, trb_av *val) {
  if (last->name) return trb_av_m_set(parent, last->name, last->len, val);
  if (last->index < parent->u.l.n) {
    trb_av_destroy(parent->u.l.v[last->index]);
    parent->u.l.v[last->index] = val;
    return TRB_OK;
  }
  return queue(u, parent, last->index, val);
}

static trb_err apply(uctx *u, const xaction *a, trb_av *val, trb_av *item, int item_absent,
                     trb_status *st) {
  const xpelem *last = &a->path.e[a->path.n - 1];
  trb_av *parent = parent_of(item, &a->path);
  trb_err rc;
  if (!parent || parent->type != (last->name ? TRB_T_M : TRB_T_L)) {
    trb_av_destroy(val);
    if (a->kind == XU_REMOVE && item_absent) return TRB_OK;
    return trb_status_set(st, TRB_EINVAL, E_PATH);
  }
  trb_av *existing = last->name ? trb_av_m_get(parent, last->name, last->len)
                     : last->index < parent->u.l.n ? parent->u.l.v[last->index]
                                                   : NULL;
  const trb_av *operand = a->val ? a->val->val : NULL;
  switch (a->kind) {
    case XU_SET:
      if ((rc = put(u, parent, last, val))) {
        trb_av_destroy(val);
        return trb_status_set(st, rc, NULL);
      }
      return TRB_OK;
    case XU_REMOVE:
      if (last->name) trb_av_m_remove(parent, last->name, last->len);
      else if (existing && (rc = queue(u, parent, last->index, NULL)))
        return trb_status_set(st, rc, NULL);
      return TRB_OK;
    case XU_ADD:
      if (!existing) {
        trb_av *c = trb_av_copy(operand);
        if (!c) return trb_status_set(st, TRB_ENOMEM, NULL);
        if ((rc = put(u, parent, last, c))) {
          trb_av_destroy(c);
          return trb_status_set(st, rc, NULL);
        }
        return TRB_OK;
      }
      if (existing->type != operand->type) return trb_status_set(st, TRB_EINVAL, E_TYPE);
      if (existing->type == TRB_T_N) {
        trb_dec d;
        if ((rc = trb_dec_add(&existing->u.n, &operand->u.n, &d, st))) return rc;
        existing->u.n = d;
        return TRB_OK;
      }
      for (size_t i = 0; i < operand->u.l.n; i++) {
        if (set_has(existing, operand->u.l.v[i])) continue;
        trb_av *c = trb_av_copy(operand->u.l.v[i]);
        if (!c || trb_av_l_append(existing, c)) {
          trb_av_destroy(c);
          return trb_status_set(st, TRB_ENOMEM, NULL);
        }
      }
      return TRB_OK;
    case XU_DELETE:
      if (!existing) return TRB_OK;
      if (existing->type != operand->type || !set_elem(existing->type))
        return trb_status_set(st, TRB_EINVAL, E_TYPE);
      for (size_t i = existing->u.l.n; i-- > 0;)
        if (set_has(operand, existing->u.l.v[i])) list_remove(existing, i);
      if (existing->u.l.n == 0) {
        /* DynamoDB never stores an empty set: the attribute goes away. */
        if (last->name) trb_av_m_remove(parent, last->name, last->len);
        else if ((rc = queue(u, parent, last->index, NULL))) return trb_status_set(st, rc, NULL);
      }
      return TRB_OK;
  }
  return TRB_OK;
}

trb_err trb_expr_update(const trb_expr *e, const trb_av *key, const trb_av *item,
                        trb_av **new_item, trb_status *st) {
  trb_err rc = TRB_OK;
  trb_av **vals = NULL, *res = NULL;
  uctx u = {0};
  *new_item = NULL;
  if (!e || e->kind != TRB_EXPR_UPDATE)
    return trb_status_set(st, TRB_EINVAL, "not an UpdateExpression");
  const trb_av *orig = item ? item : key;
  if (!orig || orig->type != TRB_T_M)
    return trb_status_set(st, TRB_EINVAL, "an item must be a map of attributes");

  /* On an absent item, an update that only takes things away (REMOVE,
   * DELETE from a set) leaves it absent, as DynamoDB does: no key-only item
   * appears. Any SET or ADD creates the item. */
  if (!item && e->nacts) {
    size_t k = 0;
    while (k < e->nacts && (e->acts[k].kind == XU_REMOVE || e->acts[k].kind == XU_DELETE)) k++;
    if (k == e->nacts) return TRB_OK;
  }
  vals = calloc(e->nacts ? e->nacts : 1, sizeof *vals);
  if (!vals) goto nomem;
  for (size_t i = 0; i < e->nacts; i++)
    if (e->acts[i].kind == XU_SET && (rc = eval_value(e->acts[i].val, orig, &vals[i], st)))
      goto done;
  if (!(res = trb_av_copy(orig))) goto nomem;
  for (size_t i = 0; i < e->nacts; i++) {
    trb_av *v = vals[i];
    vals[i] = NULL;
    if ((rc = apply(&u, &e->acts[i], v, res, item == NULL, st))) goto done;
  }
  if ((rc = flush(&u, st))) goto done;
  *new_item = res;
  res = NULL;
  goto done;
nomem:
  rc = trb_status_set(st, TRB_ENOMEM, NULL);
done:
  for (size_t i = 0; vals && i < e->nacts; i++) trb_av_destroy(vals[i]);
  free(vals);
  uctx_fini(&u);
  trb_av_destroy(res);
  return rc;
}

trb_err trb_expr_update_fn(void *ctx, const trb_av *key, const trb_av *item, trb_av **new_item,
                           trb_status *st) {
  return trb_expr_update((const trb_expr *)ctx, key, item, new_item, st);
}

trb_err trb_expr_update_check_keys(const trb_expr *e, const trb_keyschema *ks, trb_status *st) {
  if (!e || e->kind != TRB_EXPR_UPDATE) return TRB_OK;
  for (size_t i = 0; i < e->nacts; i++) {
    const xpath *p = &e->acts[i].path;
    const char *keys[2] = {ks->pk_name, ks->has_sk ? ks->sk_name : NULL};
    for (int k = 0; k < 2; k++) {
      if (!keys[k] || p->e[0].len != strlen(keys[k]) ||
          memcmp(p->e[0].name, keys[k], p->e[0].len) != 0)
        continue;
      if (p->n == 1)
        return trb_status_set(st, TRB_EINVAL,
                              "One or more parameter values were invalid: Cannot update attribute "
                              "%s. This attribute is part of the key",
                              keys[k]);
      return trb_status_set(st, TRB_EINVAL,
                            "Key attributes must be scalars; list random access '[]' and map "
                            "lookup '.' are not allowed: Key: %s",
                            keys[k]);
    }
  }
  return TRB_OK;
}

size_t trb_expr_update_targets(const trb_expr *e, const char *const **names) {
  *names = e && e->kind == TRB_EXPR_UPDATE ? e->tops : NULL;
  return e && e->kind == TRB_EXPR_UPDATE ? e->ntops : 0;
}

trb_err trb_expr_update_pick(const trb_expr *e, const trb_av *item, trb_av **out,
                             trb_status *st) {
  *out = NULL;
  if (!e || e->kind != TRB_EXPR_UPDATE)
    return trb_status_set(st, TRB_EINVAL, "not an UpdateExpression");
  if (!item) return TRB_OK;
  const xpath **ps = malloc((e->nacts ? e->nacts : 1) * sizeof *ps);
  if (!ps) return trb_status_set(st, TRB_ENOMEM, NULL);
  for (size_t i = 0; i < e->nacts; i++) ps[i] = &e->acts[i].path;
  trb_av *res = NULL;
  trb_err rc = trb__expr_project_paths(ps, e->nacts, item, &res, st);
  free(ps);
  if (rc) return rc;
  if (res->u.m.n == 0) {
    trb_av_destroy(res);
    res = NULL;
  }
  *out = res;
  return TRB_OK;
}
