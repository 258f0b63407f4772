/*
 * ops.c -- the item operations of the C API: validation and queueing of
 * writes, the single-item wrappers, the simple conditions and updates, and
 * the reads (GetItem, Query, Scan) that go straight to the store.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_int.h"

/* ---- writes ---- */

static trb_err prepare(trb_engine *e, trb_write *w) {
  trb_status *st = &w->st;
  trb_err rc;
  trb_table *t = trb__table_find(e, w->table ? w->table : "");
  if (!t)
    return trb_status_set(st, TRB_ENOTFOUND, "Requested resource not found: Table: %s not found",
                          w->table ? w->table : "");
  w->priv.table_id = t->def.table_id;
  w->priv.ks = t->def.ks;
  const trb_keyschema *ks = &w->priv.ks;
  switch (w->kind) {
    case TRB_W_PUT: {
      if (!w->item || w->item->type != TRB_T_M)
        return trb_status_set(st, TRB_EINVAL, "An item must be a map of attributes");
      if ((rc = trb_item_validate(w->item, st))) return rc;
      if ((rc = trb_key_check_item(ks, w->item, st))) return rc;
      if ((rc = trb_index_check_item(t->def.ix, w->item, st))) return rc;
      trb_av *key = trb_key_from_item(ks, w->item);
      if (!key) return trb_status_set(st, TRB_ENOMEM, "out of memory");
      rc = trb_av_encode(key, &w->priv.keys);
      trb_av_destroy(key);
      if (!rc) rc = trb_key_encode(ks, w->item, &w->priv.skey);
      if (!rc) rc = trb_av_encode(w->item, &w->priv.enc);
      if (rc) return trb_status_set(st, rc, "cannot encode the item");
      break;
    }
    case TRB_W_DELETE:
    case TRB_W_UPDATE:
    case TRB_W_CHECK:
      if (!w->key || w->key->type != TRB_T_M)
        return trb_status_set(st, TRB_EINVAL, "The provided key element does not match the schema");
      if ((rc = trb_av_validate(w->key, st))) return rc;
      if ((rc = trb_key_check_key(ks, w->key, st))) return rc;
      if (w->kind == TRB_W_UPDATE && !w->update)
        return trb_status_set(st, TRB_EINVAL, "an update needs an update function");
      if (w->kind == TRB_W_CHECK && !w->cond)
        return trb_status_set(st, TRB_EINVAL,
                              "A ConditionCheck needs a condition");
      rc = trb_av_encode(w->key, &w->priv.keys);
      if (!rc) rc = trb_key_encode(ks, w->key, &w->priv.skey);
      if (rc) return trb_status_set(st, rc, "cannot encode the key");
      break;
    default:
      return trb_status_set(st, TRB_EINVAL, "unknown write kind %d", (int)w->kind);
  }
  return TRB_OK;
}

trb_err trb_engine_write(trb_engine *e, trb_write *w, size_t n, unsigned flags,
                         trb_status *st) {
  int atomic = (flags & TRB_WRITE_ATOMIC) != 0;
  int all_valid = atomic || (flags & TRB_WRITE_ALL_VALID);
  size_t nq = 0;
  trb_err first = TRB_OK;
  size_t first_i = 0;
  pthread_rwlock_rdlock(&e->cat_lock);
  for (size_t i = 0; i < n; i++) {
    trb_status_init(&w[i].st);
    w[i].old_item = w[i].new_item = NULL;
    w[i].lsn = 0;
    memset(w[i].ix_kb, 0, sizeof w[i].ix_kb);
    w[i].evaluated = 0;
    w[i].priv.queued = 0;
    /* Fresh buffers for every call: the struct may be reused (after
     * trb_write_fini) or hold garbage from the caller. */
    trb_buf_init(&w[i].priv.skey, 0);
    trb_buf_init(&w[i].priv.keys, 0);
    trb_buf_init(&w[i].priv.enc, 0);
    w[i].rc = prepare(e, &w[i]);
    if (w[i].rc) {
      if (!first) {
        first = w[i].rc;
        first_i = i;
      }
    } else {
      w[i].priv.queued = 1;
      nq++;
    }
  }
  pthread_rwlock_unlock(&e->cat_lock);
  if (all_valid && !first) {
    /* One item at most once per transaction or batch, as DynamoDB requires. */
    for (size_t i = 0; i < n && !first; i++)
      for (size_t j = i + 1; j < n; j++)
        if (w[i].priv.table_id == w[j].priv.table_id &&
            w[i].priv.skey.len == w[j].priv.skey.len &&
            !memcmp(w[i].priv.skey.p, w[j].priv.skey.p, w[i].priv.skey.len)) {
          first = trb_status_set(&w[j].st, TRB_EINVAL, "%s",
                                 atomic ? "Transaction request cannot include multiple "
                                          "operations on one item"
                                        : "Provided list of item keys contains duplicates");
          w[j].rc = first;
          first_i = j;
          break;
        }
  }
  if (all_valid && first) {
    if (st) *st = w[first_i].st;
    for (size_t i = 0; i < n; i++) w[i].priv.queued = 0;
    return first;
  }
  if (!nq) {
    if (n == 1 && st) *st = w[0].st;
    return n == 1 ? w[0].rc : TRB_OK;
  }
  trb_status gst;
  trb_status_init(&gst);
  trb_req r = {.kind = TRB_REQ_WRITE, .w = w, .n = n, .atomic = atomic, .st = &gst};
  trb_err rc = trb__submit(e, &r);
  if (rc == TRB_ECLOSED) {
    for (size_t i = 0; i < n; i++)
      if (w[i].priv.queued) {
        w[i].rc = rc;
        w[i].st = gst;
      }
  }
  if (st) *st = gst;
  if (n == 1 && !atomic) {
    if (st) *st = w[0].st;
    return w[0].rc;
  }
  return rc;
}

int trb_engine_write_async(trb_engine *e, trb_write *w, void (*done)(void *ctx), void *ctx) {
  trb_status_init(&w->st);
  w->old_item = w->new_item = NULL;
  w->lsn = 0;
  memset(w->ix_kb, 0, sizeof w->ix_kb);
  w->evaluated = 0;
  w->priv.queued = 0;
  trb_buf_init(&w->priv.skey, 0);
  trb_buf_init(&w->priv.keys, 0);
  trb_buf_init(&w->priv.enc, 0);
  pthread_rwlock_rdlock(&e->cat_lock);
  w->rc = prepare(e, w);
  pthread_rwlock_unlock(&e->cat_lock);
  if (w->rc) return 0; /* refused before the WAL */
  trb_req *r = calloc(1, sizeof *r);
  if (!r) {
    w->rc = trb_status_set(&w->st, TRB_ENOMEM, "out of memory");
    return 0;
  }
  w->priv.queued = 1;
  r->kind = TRB_REQ_WRITE;
  r->w = w;
  r->n = 1;
  r->st = &r->gst;
  r->done_cb = done;
  r->done_ctx = ctx;
  trb_status_init(&r->gst);
  if (trb__submit_async(e, r)) {
    w->rc = trb_status_set(&w->st, TRB_ECLOSED, "the engine is closing");
    free(r);
    return 0;
  }
  return 1;
}

void trb_write_fini(trb_write *w) {
  if (!w) return;
  trb_av_destroy(w->old_item);
  trb_av_destroy(w->new_item);
  w->old_item = w->new_item = NULL;
  trb_buf_fini(&w->priv.skey);
  trb_buf_fini(&w->priv.keys);
  trb_buf_fini(&w->priv.enc);
}

/* ---- simple conditions and updates ---- */

trb_err trb_cond_eval(void *ctx, const trb_av *item, int *pass, trb_status *st) {
  (void)st;
  const trb_cond *c = ctx;
  *pass = 1;
  for (size_t i = 0; i < c->n && *pass; i++) {
    const trb_cond_clause *cl = &c->clauses[i];
    const trb_av *v = item ? trb_av_m_get(item, cl->attr, strlen(cl->attr)) : NULL;
    switch (cl->op) {
      case TRB_COND_EXISTS: *pass = v != NULL; break;
      case TRB_COND_NOT_EXISTS: *pass = v == NULL; break;
      case TRB_COND_EQ: *pass = v && cl->value && trb_av_equal(v, cl->value); break;
      case TRB_COND_NE: *pass = !(v && cl->value && trb_av_equal(v, cl->value)); break;
      default: *pass = 0; break;
    }
  }
  return TRB_OK;
}

trb_err trb_update_apply(void *ctx, const trb_av *key, const trb_av *item, trb_av **new_item,
                         trb_status *st) {
  const trb_update *u = ctx;
  trb_av *n = item ? trb_av_copy(item) : trb_av_copy(key);
  if (!n) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  for (size_t i = 0; i < u->n; i++) {
    const trb_update_action *a = &u->acts[i];
    size_t al = strlen(a->attr);
    if (trb_av_m_get(key, a->attr, al)) {
      trb_av_destroy(n);
      return trb_status_set(st, TRB_EINVAL,
                            "One or more parameter values were invalid: Cannot update attribute "
                            "%s. This attribute is part of the key",
                            a->attr);
    }
    if (a->remove) {
      trb_av_m_remove(n, a->attr, al);
    } else {
      trb_av *v = a->value ? trb_av_copy(a->value) : NULL;
      if (!v || trb_av_m_set(n, a->attr, al, v)) {
        trb_av_destroy(v);
        trb_av_destroy(n);
        return trb_status_set(st, TRB_ENOMEM, "out of memory");
      }
    }
  }
  *new_item = n;
  return TRB_OK;
}

/* ---- single-item wrappers ---- */

static trb_err rv_check(trb_retval rv, int allow_updated_new, trb_status *st) {
  if (rv == TRB_RV_NONE || rv == TRB_RV_ALL_OLD) return TRB_OK;
  if (allow_updated_new) return TRB_OK;
  return trb_status_set(st, TRB_EINVAL, "Return values set to invalid value");
}

static trb_err single(trb_engine *e, trb_write *w, trb_retval rv, trb_av **attrs,
                      trb_status *st) {
  if (attrs) *attrs = NULL;
  w->want_old = rv == TRB_RV_ALL_OLD || rv == TRB_RV_UPDATED_OLD;
  w->want_new = rv == TRB_RV_ALL_NEW || rv == TRB_RV_UPDATED_NEW;
  trb_err rc = trb_engine_write(e, w, 1, 0, st);
  if (!rc && attrs) {
    if (w->want_old) {
      *attrs = w->old_item;
      w->old_item = NULL;
    } else if (w->want_new) {
      *attrs = w->new_item;
      w->new_item = NULL;
    }
  }
  trb_write_fini(w);
  return rc;
}

trb_err trb_put_item(trb_engine *e, const char *table, const trb_av *item,
                     const trb_cond *cond, trb_retval rv, trb_av **attrs, trb_status *st) {
  trb_err rc = rv_check(rv, 0, st);
  if (rc) return rc;
  trb_write w = {.kind = TRB_W_PUT, .table = table, .item = item};
  if (cond) {
    w.cond = trb_cond_eval;
    w.cond_ctx = (void *)cond;
  }
  return single(e, &w, rv, attrs, st);
}

trb_err trb_delete_item(trb_engine *e, const char *table, const trb_av *key,
                        const trb_cond *cond, trb_retval rv, trb_av **attrs, trb_status *st) {
  trb_err rc = rv_check(rv, 0, st);
  if (rc) return rc;
  trb_write w = {.kind = TRB_W_DELETE, .table = table, .key = key};
  if (cond) {
    w.cond = trb_cond_eval;
    w.cond_ctx = (void *)cond;
  }
  return single(e, &w, rv, attrs, st);
}

trb_err trb_update_item(trb_engine *e, const char *table, const trb_av *key,
                        const trb_update *upd, const trb_cond *cond, trb_retval rv,
                        trb_av **attrs, trb_status *st) {
  trb_update none = {NULL, 0};
  trb_write w = {.kind = TRB_W_UPDATE, .table = table, .key = key,
                 .update = trb_update_apply, .update_ctx = (void *)(upd ? upd : &none)};
  if (cond) {
    w.cond = trb_cond_eval;
    w.cond_ctx = (void *)cond;
  }
  trb_av *all = NULL;
  trb_err rc = single(e, &w, rv, attrs ? &all : NULL, st);
  if (rc || !attrs) return rc;
  if ((rv == TRB_RV_UPDATED_OLD || rv == TRB_RV_UPDATED_NEW) && all && upd) {
    /* Only the attributes the update names. */
    trb_av *sel = trb_av_new_m();
    for (size_t i = 0; sel && i < upd->n; i++) {
      const char *a = upd->acts[i].attr;
      trb_av *v = trb_av_m_get(all, a, strlen(a));
      if (v && !trb_av_m_get(sel, a, strlen(a))) {
        trb_av *c = trb_av_copy(v);
        if (!c || trb_av_m_set(sel, a, strlen(a), c)) trb_av_destroy(c);
      }
    }
    trb_av_destroy(all);
    all = sel;
    if (all && all->u.m.n == 0) {
      trb_av_destroy(all);
      all = NULL;
    }
  }
  *attrs = all;
  return rc;
}

/* ---- reads ---- */

trb_err trb_get_item(trb_engine *e, const char *table, const trb_av *key, trb_av **item,
                     trb_status *st) {
  *item = NULL;
  trb_buf sk;
  trb_buf_init(&sk, 0);
  char *v = NULL;
  size_t vl = 0;
  trb_err rc;
  pthread_rwlock_rdlock(&e->cat_lock);
  trb_table *t = trb__table_get(e, table, st);
  if (!t) {
    rc = TRB_ENOTFOUND;
    goto done;
  }
  if (!key || key->type != TRB_T_M) {
    rc = trb_status_set(st, TRB_EINVAL, "The provided key element does not match the schema");
    goto done;
  }
  if ((rc = trb_av_validate(key, st)) || (rc = trb_key_check_key(&t->def.ks, key, st)))
    goto done;
  if ((rc = trb_key_encode(&t->def.ks, key, &sk))) goto done;
  if ((rc = trb_store_get(e->store, t->cf, sk.p, sk.len, &v, &vl, st))) goto done;
  if (v && (rc = trb_av_decode(v, vl, item)))
    trb_status_set(st, TRB_ECORRUPT, "stored item could not be decoded");
done:
  pthread_rwlock_unlock(&e->cat_lock);
  free(v);
  trb_buf_fini(&sk);
  return rc;
}

static trb_err page_push(trb_page *p, trb_av *v) {
  if (p->n == p->cap) {
    size_t nc = p->cap ? p->cap * 2 : 16;
    trb_av **ni = realloc(p->items, nc * sizeof *ni);
    if (!ni) return TRB_ENOMEM;
    p->items = ni;
    p->cap = nc;
  }
  p->items[p->n++] = v;
  return TRB_OK;
}

void trb_page_fini(trb_page *p) {
  if (!p) return;
  for (size_t i = 0; i < p->n; i++) trb_av_destroy(p->items[i]);
  free(p->items);
  trb_av_destroy(p->last_key);
  memset(p, 0, sizeof *p);
}

/* Where an item's sort key stands against the key condition: -1 before the
 * range (in ascending order), 0 inside, 1 after. */
static int sk_where(const trb_query_req *q, const trb_av *sk) {
  int c1 = q->sk1 ? trb_av_cmp_scalar(sk, q->sk1) : 0;
  switch (q->sk_op) {
    case TRB_SK_NONE: return 0;
    case TRB_SK_EQ: return c1 < 0 ? -1 : c1 > 0 ? 1 : 0;
    case TRB_SK_LT: return c1 < 0 ? 0 : 1;
    case TRB_SK_LE: return c1 <= 0 ? 0 : 1;
    case TRB_SK_GT: return c1 > 0 ? 0 : -1;
    case TRB_SK_GE: return c1 >= 0 ? 0 : -1;
    case TRB_SK_BETWEEN: {
      if (c1 < 0) return -1;
      return trb_av_cmp_scalar(sk, q->sk2) > 0 ? 1 : 0;
    }
    case TRB_SK_BEGINS_WITH: {
      size_t pl = q->sk1->u.s.len;
      if (sk->u.s.len >= pl && !memcmp(sk->u.s.p, q->sk1->u.s.p, pl)) return 0;
      return c1 < 0 ? -1 : 1;
    }
  }
  return 0;
}

static trb_err check_operand(const trb_keyschema *ks, const trb_av *v, const char *what,
                             trb_status *st) {
  if (!v)
    return trb_status_set(st, TRB_EINVAL, "Invalid KeyConditionExpression: missing %s operand",
                          what);
  if (v->type != ks->sk_type)
    return trb_status_set(st, TRB_EINVAL,
                          "One or more parameter values were invalid: Condition parameter type "
                          "does not match schema type");
  return TRB_OK;
}

/* Shared loop of Query and Scan over an iterator already positioned. */
typedef struct walk {
  trb_store_iter *it;
  int backward;
  size_t limit, max_bytes;
  const trb_query_req *q;    /* NULL for scan */
  const trb_keyschema *ks;   /* of what is read: the table or the index */
  const trb_indexdef *ix;    /* index reads */
  const trb_table *t;
  trb_engine *e;
  int fetch_table;
} walk;

/* The table's item behind an index entry (NULL when it is gone since). */
static trb_err fetch_item(walk *wk, const trb_av *entry, trb_av **out, trb_status *st) {
  *out = NULL;
  trb_buf k;
  trb_buf_init(&k, 0);
  char *v = NULL;
  size_t vl = 0;
  trb_err rc = trb_key_encode(&wk->t->def.ks, entry, &k);
  if (!rc) rc = trb_store_get(wk->e->store, wk->t->cf, k.p, k.len, &v, &vl, st);
  if (!rc && v && trb_av_decode(v, vl, out))
    rc = trb_status_set(st, TRB_ECORRUPT, "stored item could not be decoded");
  free(v);
  trb_buf_fini(&k);
  return rc;
}

static trb_err walk_run(walk *wk, trb_page *out, trb_status *st) {
  size_t bytes = 0;
  trb_err rc = TRB_OK;
  trb_av *last = NULL;
  int stopped_early = 0;
  while (trb_store_iter_valid(wk->it)) {
    size_t vl;
    const char *v = trb_store_iter_val(wk->it, &vl);
    trb_av *item = NULL;
    if ((rc = trb_av_decode(v, vl, &item))) {
      trb_status_set(st, TRB_ECORRUPT, "stored item could not be decoded");
      break;
    }
    if (wk->q && wk->q->sk_op != TRB_SK_NONE) {
      const trb_av *sk = trb_av_m_get(item, wk->ks->sk_name, strlen(wk->ks->sk_name));
      int where = sk ? sk_where(wk->q, sk) : 1;
      if (where != 0) {
        trb_av_destroy(item);
        /* Past the range in the direction of travel: done. Before it: skip. */
        if ((where > 0 && !wk->backward) || (where < 0 && wk->backward)) break;
        if (wk->backward) trb_store_iter_prev(wk->it);
        else trb_store_iter_next(wk->it);
        continue;
      }
    }
    bytes += trb_item_size(item);
    out->scanned++;
    trb_av_destroy(last);
    last = wk->ix ? trb_index_last_key(wk->ix, &wk->t->def.ks, item)
                  : trb_key_from_item(wk->ks, item);
    if (wk->fetch_table) {
      trb_av *full = NULL;
      rc = fetch_item(wk, item, &full, st);
      trb_av_destroy(item);
      item = full;
      if (rc) break;
      if (!item) { /* deleted after the iterator's snapshot */
        if (wk->backward) trb_store_iter_prev(wk->it);
        else trb_store_iter_next(wk->it);
        continue;
      }
    }
    if ((rc = page_push(out, item))) {
      trb_av_destroy(item);
      trb_status_set(st, rc, "out of memory");
      break;
    }
    if (wk->backward) trb_store_iter_prev(wk->it);
    else trb_store_iter_next(wk->it);
    if ((wk->limit && out->scanned >= wk->limit) || bytes >= wk->max_bytes) {
      stopped_early = 1;
      break;
    }
  }
  if (!rc) rc = trb_store_iter_status(wk->it, st);
  if (!rc && stopped_early) {
    out->last_key = last;
    last = NULL;
  }
  trb_av_destroy(last);
  return rc;
}

/* The smallest byte string greater than every string with prefix p:
 * strip trailing 0xFF bytes, increment the last. Empty when none exists. */
static void prefix_succ(trb_buf *b) {
  while (b->len && b->p[b->len - 1] == 0xFF) b->len--;
  if (b->len) b->p[b->len - 1]++;
}

/* What a read goes over: the table, or one of its indexes. */
static trb_err resolve_source(trb_table *t, const char *index, const trb_keyschema **ks,
                              const trb_indexdef **ix, trb_store_cf **cf, trb_status *st) {
  *ks = &t->def.ks;
  *ix = NULL;
  *cf = t->cf;
  if (!index) return TRB_OK;
  int i = trb_indexset_find(t->def.ix, index);
  if (i < 0 || !t->ix_cf[i])
    return trb_status_set(st, TRB_EINVAL,
                          "The table does not have the specified index: %s", index);
  *ix = &t->def.ix->d[i];
  *ks = &(*ix)->ks;
  *cf = t->ix_cf[i];
  return TRB_OK;
}

/* The entry key to seek for an exclusive start key. */
static trb_err start_key(const trb_table *t, const trb_keyschema *ks, const trb_indexdef *ix,
                         const trb_av *esk, trb_buf *seek, trb_status *st) {
  trb_err rc;
  if (ix) {
    if ((rc = trb_index_check_start_key(ix, &t->def.ks, esk, st))) return rc;
    return trb_index_entry_key(ix, &t->def.ks, esk, seek);
  }
  if ((rc = trb_key_check_key(ks, esk, st))) {
    if (rc == TRB_EINVAL && st) { /* DynamoDB says which key it is */
      char msg[sizeof st->msg];
      snprintf(msg, sizeof msg, "%s", st->msg);
      trb_status_set(st, rc, "The provided starting key is invalid: %s", msg);
    }
    return rc;
  }
  return trb_key_encode(ks, esk, seek);
}

trb_err trb_query(trb_engine *e, const trb_query_req *q, trb_page *out, trb_status *st) {
  memset(out, 0, sizeof *out);
  trb_buf lo, hi, seek;
  trb_buf_init(&lo, 0);
  trb_buf_init(&hi, 0);
  trb_buf_init(&seek, 0);
  trb_store_iter *it = NULL;
  trb_av *keytmp = NULL;
  trb_err rc = TRB_OK;
  pthread_rwlock_rdlock(&e->cat_lock);
  trb_table *t = trb__table_get(e, q->table, st);
  if (!t) {
    rc = TRB_ENOTFOUND;
    goto done;
  }
  const trb_keyschema *ks;
  const trb_indexdef *ix;
  trb_store_cf *cf;
  if ((rc = resolve_source(t, q->index, &ks, &ix, &cf, st))) goto done;
  if (!q->pk || q->pk->type != ks->pk_type) {
    rc = trb_status_set(st, TRB_EINVAL,
                        "One or more parameter values were invalid: Condition parameter type "
                        "does not match schema type");
    goto done;
  }
  if ((q->pk->type == TRB_T_S || q->pk->type == TRB_T_B) &&
      (q->pk->u.s.len == 0 || q->pk->u.s.len > TRB_MAX_PK_SIZE)) {
    rc = q->pk->u.s.len == 0
             ? trb_status_set(st, TRB_EINVAL,
                              "One or more parameter values are not valid. The AttributeValue "
                              "for a key attribute cannot contain an empty string value. Key: %s",
                              ks->pk_name)
             : trb_status_set(st, TRB_EINVAL,
                              "One or more parameter values were invalid: Size of hashkey has "
                              "exceeded the maximum size limit of2048 bytes");
    goto done;
  }
  if (q->sk_op != TRB_SK_NONE) {
    if (!ks->has_sk) {
      rc = trb_status_set(st, TRB_EINVAL,
                          "Query condition missed key schema element: the table has no sort key");
      goto done;
    }
    if ((rc = check_operand(ks, q->sk1, "first", st))) goto done;
    if (q->sk_op == TRB_SK_BETWEEN) {
      if ((rc = check_operand(ks, q->sk2, "second", st))) goto done;
      if (trb_av_cmp_scalar(q->sk1, q->sk2) > 0) {
        rc = trb_status_set(st, TRB_EINVAL,
                            "Invalid KeyConditionExpression: The BETWEEN operator requires "
                            "upper bound to be greater than or equal to lower bound");
        goto done;
      }
    }
    if (q->sk_op == TRB_SK_BEGINS_WITH && ks->sk_type == TRB_T_N) {
      rc = trb_status_set(st, TRB_EINVAL,
                          "Invalid KeyConditionExpression: Incorrect operand type for operator "
                          "or function; operator or function: begins_with, operand type: N");
      goto done;
    }
  }
  /* The partition's key range. */
  if ((rc = trb_key_encode_partition(q->pk, &lo))) {
    trb_status_set(st, rc, "cannot encode the partition key");
    goto done;
  }
  if ((rc = trb_buf_append(&hi, lo.p, lo.len))) goto done;
  prefix_succ(&hi);
  if ((rc = trb_store_iter_create(e->store, cf, lo.p, lo.len, hi.len ? hi.p : NULL, hi.len,
                                  &it, st)))
    goto done;
  /* Where to start: after ExclusiveStartKey, or at the near end of the
   * sort-key range. */
  if (q->exclusive_start_key) {
    if ((rc = start_key(t, ks, ix, q->exclusive_start_key, &seek, st))) goto done;
    const trb_av *epk = trb_av_m_get(q->exclusive_start_key, ks->pk_name, strlen(ks->pk_name));
    if (!epk || !trb_av_equal(epk, q->pk)) {
      rc = trb_status_set(st, TRB_EINVAL,
                          "The provided starting key is invalid: The provided key element "
                          "does not match the partition of the query");
      goto done;
    }
    /* start_key checked the sort key's presence and type */
    const trb_av *esk_sk =
        ks->has_sk ? trb_av_m_get(q->exclusive_start_key, ks->sk_name, strlen(ks->sk_name)) : NULL;
    if (esk_sk && sk_where(q, esk_sk) != 0) {
      rc = trb_status_set(st, TRB_EINVAL,
                          "The provided starting key does not match the range key predicate");
      goto done;
    }
    if (q->backward) trb_store_iter_seek_prev(it, seek.p, seek.len);
    else trb_store_iter_seek(it, seek.p, seek.len);
    if (trb_store_iter_valid(it)) {
      size_t kl;
      const char *k = trb_store_iter_key(it, &kl);
      if (kl == seek.len && !memcmp(k, seek.p, kl)) {
        if (q->backward) trb_store_iter_prev(it);
        else trb_store_iter_next(it);
      }
    }
  } else {
    const trb_av *start = NULL;
    if (!q->backward && (q->sk_op == TRB_SK_EQ || q->sk_op == TRB_SK_GT ||
                         q->sk_op == TRB_SK_GE || q->sk_op == TRB_SK_BETWEEN ||
                         q->sk_op == TRB_SK_BEGINS_WITH))
      start = q->sk1;
    if (q->backward && (q->sk_op == TRB_SK_EQ || q->sk_op == TRB_SK_LT ||
                        q->sk_op == TRB_SK_LE))
      start = q->sk1;
    if (q->backward && q->sk_op == TRB_SK_BETWEEN) start = q->sk2;
    if (start) {
      keytmp = trb_av_new_m();
      trb_av *pkc = trb_av_copy(q->pk), *skc = trb_av_copy(start);
      if (!keytmp || !pkc || !skc ||
          trb_av_m_set(keytmp, ks->pk_name, strlen(ks->pk_name), pkc) ||
          trb_av_m_set(keytmp, ks->sk_name, strlen(ks->sk_name), skc)) {
        trb_av_destroy(pkc);
        trb_av_destroy(skc);
        rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
        goto done;
      }
      if ((rc = trb_key_encode(ks, keytmp, &seek))) goto done;
      /* Index entries carry the table key after the index key: seek past
       * every entry with this sort key when reading backward (the walk
       * checks each item's sort key either way). */
      if (ix && q->backward) prefix_succ(&seek);
      if (q->backward && seek.len) trb_store_iter_seek_prev(it, seek.p, seek.len);
      else if (q->backward) trb_store_iter_last(it);
      else trb_store_iter_seek(it, seek.p, seek.len);
    } else if (q->backward) {
      trb_store_iter_last(it);
    } else {
      trb_store_iter_first(it);
    }
  }
  walk wk = {.it = it, .backward = q->backward, .limit = q->limit,
             .max_bytes = q->max_bytes ? q->max_bytes : TRB_PAGE_MAX_BYTES, .q = q, .ks = ks,
             .ix = ix, .t = t, .e = e, .fetch_table = ix && q->fetch_table};
  rc = walk_run(&wk, out, st);
done:
  pthread_rwlock_unlock(&e->cat_lock);
  trb_store_iter_destroy(it);
  trb_av_destroy(keytmp);
  trb_buf_fini(&lo);
  trb_buf_fini(&hi);
  trb_buf_fini(&seek);
  if (rc) trb_page_fini(out);
  return rc;
}

trb_err trb_scan(trb_engine *e, const trb_scan_req *s, trb_page *out, trb_status *st) {
  memset(out, 0, sizeof *out);
  trb_store_iter *it = NULL;
  trb_buf seek;
  trb_buf_init(&seek, 0);
  trb_err rc = TRB_OK;
  uint32_t total = s->total_segments ? s->total_segments : 1;
  if (s->segment >= total)
    return trb_status_set(st, TRB_EINVAL,
                          "The Segment parameter is zero-based and must be less than parameter "
                          "TotalSegments: Segment: %u is not less than TotalSegments: %u",
                          s->segment, total);
  /* Segment i covers partition hashes [i*2^32/T, (i+1)*2^32/T): store keys
   * start with the hash, big-endian, so that is one contiguous key range. */
  uint64_t hlo = ((uint64_t)s->segment << 32) / total;
  uint64_t hhi = ((uint64_t)(s->segment + 1) << 32) / total;
  unsigned char lo[4], hi[4];
  for (int i = 0; i < 4; i++) {
    lo[i] = (unsigned char)(hlo >> (24 - 8 * i));
    hi[i] = (unsigned char)(hhi >> (24 - 8 * i));
  }
  pthread_rwlock_rdlock(&e->cat_lock);
  trb_table *t = trb__table_get(e, s->table, st);
  if (!t) {
    rc = TRB_ENOTFOUND;
    goto done;
  }
  const trb_keyschema *ks;
  const trb_indexdef *ix;
  trb_store_cf *cf;
  if ((rc = resolve_source(t, s->index, &ks, &ix, &cf, st))) goto done;
  if ((rc = trb_store_iter_create(e->store, cf, lo, 4, hhi >> 32 ? NULL : hi, 4, &it, st)))
    goto done;
  if (s->exclusive_start_key) {
    if ((rc = start_key(t, ks, ix, s->exclusive_start_key, &seek, st))) goto done;
    uint64_t h = ((uint64_t)seek.p[0] << 24) | ((uint64_t)seek.p[1] << 16) |
                 ((uint64_t)seek.p[2] << 8) | seek.p[3];
    if (h < hlo || h >= hhi) {
      rc = trb_status_set(st, TRB_EINVAL,
                          "The provided starting key is invalid: it does not belong to Segment %u",
                          s->segment);
      goto done;
    }
    trb_store_iter_seek(it, seek.p, seek.len);
    if (trb_store_iter_valid(it)) {
      size_t kl;
      const char *k = trb_store_iter_key(it, &kl);
      if (kl == seek.len && !memcmp(k, seek.p, kl)) trb_store_iter_next(it);
    }
  } else {
    trb_store_iter_first(it);
  }
  walk wk = {.it = it, .limit = s->limit,
             .max_bytes = s->max_bytes ? s->max_bytes : TRB_PAGE_MAX_BYTES, .ks = ks, .ix = ix,
             .t = t, .e = e, .fetch_table = ix && s->fetch_table};
  rc = walk_run(&wk, out, st);
done:
  pthread_rwlock_unlock(&e->cat_lock);
  trb_store_iter_destroy(it);
  trb_buf_fini(&seek);
  if (rc) trb_page_fini(out);
  return rc;
}
