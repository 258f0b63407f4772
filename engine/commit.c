/*
 * commit.c -- the commit thread: group commit of every waiting write.
 *
 * One thread takes every request waiting in the queue (up to max_group
 * writes), and for each write in order: finds the item as it is at that point
 * (the store, or an earlier write of the same group), evaluates the
 * condition, computes the new image, and decides the change (INSERT,
 * MODIFY, REMOVE or none: a write that leaves the item as it was appends no
 * record). Then it appends all change records to the WAL, makes them durable
 * with one commit (one fdatasync under the default policy), publishes them to
 * WAL readers, applies them to the store in one batch carrying the last LSN,
 * and answers every writer. More writers make bigger groups, not more syncs.
 *
 * The commit delay (opts.commit_delay_us, default 0 = off; PostgreSQL's
 * commit_delay, with commit_siblings as "the last group held at least two
 * requests"): the thread waits up to the delay until half as many requests
 * again as the last group held are queued (never more than the biggest group
 * lately, so a steady set of writers is not waited past) before it takes the
 * next group. Fewer, bigger fdatasyncs: on a virtual disk with every CPU
 * busy about one in a hundred takes 3-10 ms and holds back every waiting
 * writer, which is what PutItem's p99 is made of. Measured with 300 us
 * (bench_http's PutItem load, 32 connections): p99 5.4-8.8 -> 2.9-3.9 ms at
 * the same rate on a lightly loaded host, but 7-8 -> 10-12 ms when the host
 * was slower; bench_put with 64 in-process writers lost ~20% (the commit
 * thread is their bottleneck and waiting idles it). A lone writer never
 * waits; enqueue wakes the thread as soon as enough are queued.
 *
 * Table creation and deletion travel the same queue, alone in their group,
 * holding the catalog lock exclusively.
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "engine/engine_int.h"
#include "util/clock.h"
#include "util/log.h"

/* An item image: encoded bytes (NULL = absent) and the decoded tree
 * (decoded lazily; NULL until needed). */
typedef struct img {
  const unsigned char *enc;
  size_t len;
  trb_av *av;
  int present;
} img;

typedef struct ov_ent {
  int used;
  uint64_t h, tid;
  const unsigned char *sk;
  size_t skl;
  img im;
} ov_ent;

typedef struct change {
  int kind;                 /* trb_wal_kind */
  trb_table *t;
  trb_write *w;             /* NULL for TXN_COMMIT */
  const unsigned char *keys;
  size_t keys_len;
  const unsigned char *skey;
  size_t skey_len;
  img old, nw;
  uint64_t txn_id;
  int64_t dsize, dcount;    /* counter changes, applied after the store commit */
} change;

typedef struct group {
  ov_ent *ov;
  size_t ovcap;
  change *ch;
  size_t nch, capch;
  trb_wal_rec *recs;
  size_t caprecs;
  void **frees;             /* malloc'ed blobs to free at the end */
  size_t nfree, capfree;
  trb_av **trees;           /* owned trees to destroy at the end */
  size_t ntree, captree;
  trb_store_batch *batch;
  trb_buf scratch;          /* index entry keys */
  size_t *ord;              /* the changes in store key order (see store_order) */
  size_t capord;
} group;

static int grow(void **p, size_t *cap, size_t need, size_t elt);

/* The order in which a group's changes go into the store batch: by table,
 * then store key, then group order (so that two changes of one key keep
 * theirs, and the later wins). RocksDB inserts a batch into the memtable's
 * skip list in batch order, starting each search where the last one ended:
 * keys in order cost a short step each instead of a walk from the top. */
static int ord_cmp(const void *a, const void *b, void *ctx) {
  const change *ch = ctx;
  size_t i = *(const size_t *)a, j = *(const size_t *)b;
  const change *x = &ch[i], *y = &ch[j];
  uint64_t tx = x->t ? x->t->def.table_id : 0, ty = y->t ? y->t->def.table_id : 0;
  if (tx != ty) return tx < ty ? -1 : 1;
  size_t n = x->skey_len < y->skey_len ? x->skey_len : y->skey_len;
  int c = n ? memcmp(x->skey, y->skey, n) : 0;
  if (c) return c;
  if (x->skey_len != y->skey_len) return x->skey_len < y->skey_len ? -1 : 1;
  return i < j ? -1 : i > j;
}

/* g->ord = 0..nch-1 in store order; identity when memory is short. */
static void store_order(group *g) {
  if (grow((void **)&g->ord, &g->capord, g->nch, sizeof *g->ord)) {
    g->capord = 0;
    free(g->ord);
    g->ord = NULL;
    return;
  }
  for (size_t i = 0; i < g->nch; i++) g->ord[i] = i;
  qsort_r(g->ord, g->nch, sizeof *g->ord, ord_cmp, g->ch);
}

static int grow(void **p, size_t *cap, size_t need, size_t elt) {
  if (need <= *cap) return 0;
  size_t nc = *cap ? *cap : 16;
  while (nc < need) nc *= 2;
  void *np = realloc(*p, nc * elt);
  if (!np) return -1;
  *p = np;
  *cap = nc;
  return 0;
}

static int own_blob(group *g, void *p) {
  if (grow((void **)&g->frees, &g->capfree, g->nfree + 1, sizeof *g->frees)) return -1;
  g->frees[g->nfree++] = p;
  return 0;
}

static int own_tree(group *g, trb_av *v) {
  if (grow((void **)&g->trees, &g->captree, g->ntree + 1, sizeof *g->trees)) return -1;
  g->trees[g->ntree++] = v;
  return 0;
}

static void group_reset(group *g) {
  for (size_t i = 0; i < g->nfree; i++) free(g->frees[i]);
  for (size_t i = 0; i < g->ntree; i++) trb_av_destroy(g->trees[i]);
  g->nfree = g->ntree = 0;
  g->nch = 0;
  if (g->ov) memset(g->ov, 0, g->ovcap * sizeof *g->ov);
  trb_store_batch_clear(g->batch);
}

static void group_fini(group *g) {
  group_reset(g);
  free(g->ov);
  free(g->ch);
  free(g->ord);
  free(g->recs);
  free(g->frees);
  free(g->trees);
  trb_store_batch_destroy(g->batch);
  trb_buf_fini(&g->scratch);
}

static uint64_t ov_hash(uint64_t tid, const unsigned char *sk, size_t skl) {
  return XXH3_64bits_withSeed(sk, skl, tid);
}

static ov_ent *ov_find(group *g, uint64_t tid, const unsigned char *sk, size_t skl, int *found) {
  uint64_t h = ov_hash(tid, sk, skl);
  size_t mask = g->ovcap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    ov_ent *e = &g->ov[i];
    if (!e->used) {
      *found = 0;
      e->h = h;
      return e;
    }
    if (e->h == h && e->tid == tid && e->skl == skl && !memcmp(e->sk, sk, skl)) {
      *found = 1;
      return e;
    }
  }
}

/* Decodes im->av if needed. */
static trb_err img_tree(group *g, img *im) {
  if (!im->present || im->av) return TRB_OK;
  trb_err rc = trb_av_decode(im->enc, im->len, &im->av);
  if (rc) return rc;
  if (own_tree(g, im->av)) return TRB_ENOMEM;
  return TRB_OK;
}

/* The item as it is now in commit order. */
static trb_err current(trb_engine *e, group *g, trb_table *t, const trb_buf *sk, img *out,
                       trb_status *st) {
  int found;
  ov_ent *oe = ov_find(g, t->def.table_id, sk->p, sk->len, &found);
  if (found) {
    *out = oe->im;
    return TRB_OK;
  }
  char *v = NULL;
  size_t vl = 0;
  trb_err rc = trb_store_get_for_write(e->store, t->cf, sk->p, sk->len, &v, &vl, st);
  if (rc) return rc;
  memset(out, 0, sizeof *out);
  if (v) {
    if (own_blob(g, v)) {
      free(v);
      return TRB_ENOMEM;
    }
    out->enc = (unsigned char *)v;
    out->len = vl;
    out->present = 1;
  }
  oe->used = 1;
  oe->tid = t->def.table_id;
  oe->sk = sk->p;
  oe->skl = sk->len;
  oe->im = *out;
  return TRB_OK;
}

static void ov_set(group *g, trb_table *t, const trb_buf *sk, const img *im) {
  int found;
  ov_ent *oe = ov_find(g, t->def.table_id, sk->p, sk->len, &found);
  oe->used = 1;
  oe->tid = t->def.table_id;
  oe->sk = sk->p;
  oe->skl = sk->len;
  oe->im = *im;
}

/* 1 when the two images hold equal items. Equal items encode to the same
 * length (the encoding of each value does not depend on order), so a length
 * difference settles it; equal bytes settle it; otherwise compare trees. */
static trb_err same_item(group *g, img *a, img *b, int *same) {
  if (a->present != b->present) {
    *same = 0;
    return TRB_OK;
  }
  if (!a->present) {
    *same = 1;
    return TRB_OK;
  }
  if (a->len != b->len) {
    *same = 0;
    return TRB_OK;
  }
  if (!memcmp(a->enc, b->enc, a->len)) {
    *same = 1;
    return TRB_OK;
  }
  trb_err rc = img_tree(g, a);
  if (!rc) rc = img_tree(g, b);
  if (!rc) *same = trb_av_equal(a->av, b->av);
  return rc;
}

static trb_table *resolve(trb_engine *e, trb_write *w) {
  trb_table *t = trb__table_find(e, w->table);
  if (!t || t->def.table_id != w->priv.table_id) return NULL;
  return t;
}

/* Evaluates one write against the current state; stages its change (if
 * any) in g->ch. Returns the write's rc. */
static trb_err eval_write(trb_engine *e, group *g, trb_write *w, uint64_t txn_id) {
  trb_status *st = &w->st;
  w->evaluated = 1;
  trb_table *t = resolve(e, w);
  if (!t)
    return trb_status_set(st, TRB_ENOTFOUND, "Requested resource not found: Table: %s not found",
                          w->table);
  img cur, nw;
  trb_err rc = current(e, g, t, &w->priv.skey, &cur, st);
  if (rc) return rc;
  if (w->cond) {
    if ((rc = img_tree(g, &cur))) goto corrupt;
    int pass = 0;
    if ((rc = w->cond(w->cond_ctx, cur.present ? cur.av : NULL, &pass, st))) return rc;
    if (!pass) {
      if (w->old_on_cond_fail && cur.present) w->old_item = trb_av_copy(cur.av);
      return trb_status_set(st, TRB_ECONDFAIL, "The conditional request failed");
    }
  }
  memset(&nw, 0, sizeof nw);
  switch (w->kind) {
    case TRB_W_PUT:
      nw.enc = w->priv.enc.p;
      nw.len = w->priv.enc.len;
      nw.av = (trb_av *)w->item; /* borrowed: the caller waits for us */
      nw.present = 1;
      break;
    case TRB_W_DELETE:
      break;
    case TRB_W_CHECK:
      nw = cur;
      break;
    case TRB_W_UPDATE: {
      if ((rc = img_tree(g, &cur))) goto corrupt;
      trb_av *nav = NULL;
      if ((rc = w->update(w->update_ctx, w->key, cur.present ? cur.av : NULL, &nav, st)))
        return rc;
      if (!nav) break;
      if (own_tree(g, nav)) {
        trb_av_destroy(nav);
        return TRB_ENOMEM;
      }
      if ((rc = trb_item_validate(nav, st))) {
        if (trb_item_size(nav) > TRB_MAX_ITEM_SIZE) /* DynamoDB's words for an update */
          trb_status_set(st, rc, "Item size to update has exceeded the maximum allowed size");
        return rc;
      }
      if ((rc = trb_key_check_item(&t->def.ks, nav, st))) return rc;
      if ((rc = trb_index_check_item(t->def.ix, nav, st))) return rc;
      trb_buf tmp;
      trb_buf_init(&tmp, 0);
      if ((rc = trb_key_encode(&t->def.ks, nav, &tmp)) || tmp.len != w->priv.skey.len ||
          memcmp(tmp.p, w->priv.skey.p, tmp.len)) {
        trb_buf_fini(&tmp);
        return trb_status_set(st, TRB_EINVAL,
                              "One or more parameter values were invalid: an update may not "
                              "change the key attributes");
      }
      trb_buf_reset(&tmp);
      if ((rc = trb_av_encode(nav, &tmp))) {
        trb_buf_fini(&tmp);
        return rc;
      }
      size_t l;
      unsigned char *enc = trb_buf_steal(&tmp, &l);
      if (own_blob(g, enc)) {
        free(enc);
        return TRB_ENOMEM;
      }
      nw.enc = enc;
      nw.len = l;
      nw.av = nav;
      nw.present = 1;
      break;
    }
  }
  int same = 0;
  if ((rc = same_item(g, &cur, &nw, &same))) goto corrupt;
  if (w->want_old && cur.present) {
    if ((rc = img_tree(g, &cur))) goto corrupt;
    w->old_item = trb_av_copy(cur.av);
  }
  if (w->want_new && nw.present) {
    if ((rc = img_tree(g, &nw))) goto corrupt;
    w->new_item = trb_av_copy(nw.av);
  }
  if (same) return TRB_OK; /* no record for a write that changed nothing */
  if (grow((void **)&g->ch, &g->capch, g->nch + 1, sizeof *g->ch)) return TRB_ENOMEM;
  change *c = &g->ch[g->nch++];
  memset(c, 0, sizeof *c);
  c->kind = !cur.present ? TRB_WAL_INSERT : nw.present ? TRB_WAL_MODIFY : TRB_WAL_REMOVE;
  c->t = t;
  c->w = w;
  c->keys = w->priv.keys.p;
  c->keys_len = w->priv.keys.len;
  c->skey = w->priv.skey.p;
  c->skey_len = w->priv.skey.len;
  c->old = cur;
  c->nw = nw;
  c->txn_id = txn_id;
  return TRB_OK;
corrupt:
  if (rc == TRB_ENOMEM) return trb_status_set(st, rc, "out of memory");
  return trb_status_set(st, TRB_ECORRUPT, "stored item could not be decoded (%s)",
                        trb_err_name(rc));
}

/* A semaphore per request: the answer touches no lock the writers
 * queueing the next group need. Waking dozens of threads costs a few
 * microseconds each, so the commit thread wakes only the first writer of a
 * group and each woken writer wakes two more (a binary tree, see
 * trb__submit): the commit thread goes back to work after one wake-up. */
static void answer(trb_engine *e, trb_req *r) {
  (void)e;
  if (r->done_cb) { /* asynchronous: nobody waits on the semaphore */
    void (*cb)(void *) = r->done_cb;
    void *ctx = r->done_ctx;
    free(r);
    cb(ctx);
    return;
  }
  r->wake[0] = r->wake[1] = NULL;
  sem_post(&r->done);
}

static void answer_group(trb_req **reqs, size_t n) {
  /* synchronous requests to the front (they wake each other), the
   * asynchronous ones' callbacks after */
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (!reqs[i]->done_cb) {
      trb_req *t = reqs[k];
      reqs[k++] = reqs[i];
      reqs[i] = t;
    }
  for (size_t i = 0; i < k; i++) {
    reqs[i]->wake[0] = 2 * i + 1 < k ? reqs[2 * i + 1] : NULL;
    reqs[i]->wake[1] = 2 * i + 2 < k ? reqs[2 * i + 2] : NULL;
  }
  if (k) sem_post(&reqs[0]->done);
  for (size_t i = k; i < n; i++) answer(NULL, reqs[i]);
}

/* what: "the WAL" or "the store"; st: its failure. */
static void set_failed(trb_engine *e, trb_err rc, const char *what, const trb_status *st) {
  pthread_mutex_lock(&e->qmu);
  if (!e->failed) {
    e->failed = rc;
    snprintf(e->failed_msg, sizeof e->failed_msg, "%s: %.300s", what, trb_status_msg(st));
  }
  pthread_mutex_unlock(&e->qmu);
}

static void add_stat(uint64_t *v, int64_t d) {
  if (d >= 0) {
    __atomic_add_fetch(v, (uint64_t)d, __ATOMIC_RELAXED);
  } else {
    uint64_t cur = __atomic_load_n(v, __ATOMIC_RELAXED);
    uint64_t sub = (uint64_t)(-d);
    __atomic_store_n(v, cur >= sub ? cur - sub : 0, __ATOMIC_RELAXED);
  }
}

/* Forgets the index counter changes staged for a batch that did not
 * commit. */
static void clear_pending(group *g) {
  for (size_t i = 0; i < g->nch; i++) {
    trb_table *t = g->ch[i].t;
    memset(t->ix_pend_count, 0, sizeof t->ix_pend_count);
    memset(t->ix_pend_bytes, 0, sizeof t->ix_pend_bytes);
  }
}

/* Appends, syncs, publishes and applies the staged changes. */
static trb_err commit_changes(trb_engine *e, group *g, trb_status *st) {
  if (!g->nch) return TRB_OK;
  if (grow((void **)&g->recs, &g->caprecs, g->nch, sizeof *g->recs))
    return trb_status_set(st, TRB_ENOMEM, "out of memory");
  for (size_t i = 0; i < g->nch; i++) {
    change *c = &g->ch[i];
    trb_wal_rec *r = &g->recs[i];
    memset(r, 0, sizeof *r);
    r->kind = (uint8_t)c->kind;
    r->table_id = c->t->def.table_id;
    r->txn_id = c->txn_id;
    if (c->kind == TRB_WAL_REMOVE && c->w && c->w->ttl) r->flags = TRB_WAL_F_TTL;
    r->table = c->t->def.name;
    r->table_len = strlen(c->t->def.name);
    if (c->kind != TRB_WAL_TXN_COMMIT) {
      r->keys = c->keys;
      r->keys_len = c->keys_len;
      if (c->old.present) {
        r->old_img = c->old.enc;
        r->old_len = c->old.len;
      }
      if (c->nw.present) {
        r->new_img = c->nw.enc;
        r->new_len = c->nw.len;
      }
    }
  }
  trb_err rc = trb_wal_append(e->wal, g->recs, g->nch, st);
  if (!rc) rc = trb_wal_commit(e->wal, st);
  if (rc) {
    set_failed(e, rc, "the WAL", st);
    trb_log_error("engine",
                  "WAL write failed: %s; writes are refused until tributary is restarted "
                  "(check the disk holding %s)",
                  trb_status_msg(st), e->data_dir);
    return rc;
  }
  uint64_t last = g->recs[g->nch - 1].lsn;
  trb_wal_publish(e->wal, last);
  /* Counters as they will be once this batch is in the store: written in
   * the same batch, and published in memory only after it committed. */
  store_order(g);
  for (size_t oi = 0; oi < g->nch; oi++) {
    size_t i = g->ord ? g->ord[oi] : oi;
    change *c = &g->ch[i];
    if (c->kind == TRB_WAL_TXN_COMMIT) continue;
    c->w->lsn = g->recs[i].lsn;
    if (c->nw.present)
      trb_store_batch_put(g->batch, c->t->cf, c->skey, c->skey_len, c->nw.enc, c->nw.len);
    else
      trb_store_batch_del(g->batch, c->t->cf, c->skey, c->skey_len);
    if (c->t->def.ix) {
      /* Index entries in the same batch as the item: an index never shows
       * a state the table did not have. */
      trb_err irc = img_tree(g, &c->old);
      if (!irc) irc = img_tree(g, &c->nw);
      if (!irc)
        irc = trb__index_stage(g->batch, c->t, c->old.present ? c->old.av : NULL,
                               c->nw.present ? c->nw.av : NULL, c->t->ix_pend_count,
                               c->t->ix_pend_bytes, c->w->ix_kb, &g->scratch);
      if (irc) {
        rc = trb_status_set(st, irc, "cannot stage the index entries (%s)", trb_err_name(irc));
        goto store_failed;
      }
    }
    int64_t dsize = 0;
    if (c->old.present && !img_tree(g, &c->old)) dsize -= (int64_t)trb_item_size(c->old.av);
    if (c->nw.present && !img_tree(g, &c->nw)) dsize += (int64_t)trb_item_size(c->nw.av);
    c->dsize = dsize;
    c->dcount = c->kind == TRB_WAL_INSERT ? 1 : c->kind == TRB_WAL_REMOVE ? -1 : 0;
  }
  for (size_t i = 0; i < g->nch; i++) {
    trb_table *t = g->ch[i].t;
    int seen = 0;
    for (size_t j = 0; j < i && !seen; j++) seen = g->ch[j].t == t;
    if (seen) continue;
    int64_t dc = 0, ds = 0;
    for (size_t j = i; j < g->nch; j++)
      if (g->ch[j].t == t) {
        dc += g->ch[j].dcount;
        ds += g->ch[j].dsize;
      }
    trb_table next = *t;
    next.item_count = (int64_t)t->item_count + dc > 0 ? (uint64_t)((int64_t)t->item_count + dc) : 0;
    next.size_bytes = (int64_t)t->size_bytes + ds > 0 ? (uint64_t)((int64_t)t->size_bytes + ds) : 0;
    unsigned char k[10], v[16];
    trb__stats_key(t->def.table_id, k);
    trb__stats_val(&next, v);
    trb_store_batch_meta_put(g->batch, k, sizeof k, v, sizeof v);
    for (size_t x = 0; t->def.ix && x < t->def.ix->n; x++) {
      if (!t->ix_pend_count[x] && !t->ix_pend_bytes[x]) continue;
      int64_t ic = (int64_t)t->ix_count[x] + t->ix_pend_count[x];
      int64_t ib = (int64_t)t->ix_bytes[x] + t->ix_pend_bytes[x];
      trb__stats_key(t->def.ix->d[x].cf_id, k);
      trb__counts_val(ic > 0 ? (uint64_t)ic : 0, ib > 0 ? (uint64_t)ib : 0, v);
      trb_store_batch_meta_put(g->batch, k, sizeof k, v, sizeof v);
    }
  }
  rc = trb_store_batch_commit(e->store, g->batch, last, st);
store_failed:
  if (rc) {
    clear_pending(g);
    set_failed(e, rc, "the store", st);
    trb_log_error("engine", "store write failed after the WAL commit: %s; the writes are in "
                  "the WAL and their outcome is reported as unknown; restart tributary to "
                  "replay the WAL into the store", trb_status_msg(st));
    trb_status_set(st, rc, "the write reached the WAL but not the store (%s); its outcome is "
                   "unknown until tributary is restarted", trb_err_name(rc));
    return rc;
  }
  for (size_t i = 0; i < g->nch; i++) {
    change *c = &g->ch[i];
    if (c->kind == TRB_WAL_TXN_COMMIT) continue;
    add_stat(&c->t->size_bytes, c->dsize);
    add_stat(&c->t->item_count, c->dcount);
    for (size_t x = 0; c->t->def.ix && x < c->t->def.ix->n; x++) {
      add_stat(&c->t->ix_count[x], c->t->ix_pend_count[x]);
      add_stat(&c->t->ix_bytes[x], c->t->ix_pend_bytes[x]);
      c->t->ix_pend_count[x] = c->t->ix_pend_bytes[x] = 0;
    }
  }
  __atomic_add_fetch(&e->n_records, g->nch, __ATOMIC_RELAXED);
  return TRB_OK;
}

static void process_writes(trb_engine *e, group *g, trb_req **reqs, size_t nreq) {
  trb_status gst;
  trb_status_init(&gst);
  size_t nw = 0;
  for (size_t i = 0; i < nreq; i++) nw += reqs[i]->n;
  size_t need = 16;
  while (need < nw * 2 + 2) need *= 2;
  if (need > g->ovcap) {
    ov_ent *n = realloc(g->ov, need * sizeof *n);
    if (!n) {
      for (size_t i = 0; i < nreq; i++) {
        reqs[i]->rc = trb_status_set(reqs[i]->st, TRB_ENOMEM, "out of memory");
        for (size_t j = 0; j < reqs[i]->n; j++)
          if (reqs[i]->w[j].priv.queued)
            reqs[i]->w[j].rc = trb_status_set(&reqs[i]->w[j].st, TRB_ENOMEM, "out of memory");
      }
      return;
    }
    g->ov = n;
    g->ovcap = need;
  }
  memset(g->ov, 0, g->ovcap * sizeof *g->ov);

  pthread_rwlock_rdlock(&e->cat_lock);
  uint64_t next_lsn = trb_wal_last_lsn(e->wal) + 1;
  for (size_t i = 0; i < nreq; i++) {
    trb_req *r = reqs[i];
    size_t start = g->nch;
    if (!r->atomic) {
      for (size_t j = 0; j < r->n; j++) {
        trb_write *w = &r->w[j];
        if (!w->priv.queued) continue;
        size_t before = g->nch;
        w->rc = eval_write(e, g, w, 0);
        if (w->rc) {
          g->nch = before;
        } else if (g->nch > before) {
          ov_set(g, g->ch[before].t, &w->priv.skey, &g->ch[before].nw);
        }
      }
      r->rc = TRB_OK;
    } else {
      uint64_t txn_id = next_lsn + (start);
      trb_err first = TRB_OK;
      size_t first_i = 0;
      for (size_t j = 0; j < r->n; j++) {
        trb_write *w = &r->w[j];
        w->rc = eval_write(e, g, w, txn_id);
        if (w->rc && !first) {
          first = w->rc;
          first_i = j;
        }
      }
      if (first) {
        g->nch = start; /* none of them */
        r->rc = first;
        if (r->st) *r->st = r->w[first_i].st;
      } else {
        if (g->nch > start && grow((void **)&g->ch, &g->capch, g->nch + 1, sizeof *g->ch)) {
          /* No room for the commit mark: the transaction cannot be logged. */
          g->nch = start;
          r->rc = trb_status_set(r->st, TRB_ENOMEM, "out of memory");
          for (size_t j = 0; j < r->n; j++)
            r->w[j].rc = trb_status_set(&r->w[j].st, TRB_ENOMEM, "out of memory");
          continue;
        }
        for (size_t k = start; k < g->nch; k++)
          ov_set(g, g->ch[k].t, &g->ch[k].w->priv.skey, &g->ch[k].nw);
        if (g->nch > start) {
          change *c = &g->ch[g->nch++];
          memset(c, 0, sizeof *c);
          c->kind = TRB_WAL_TXN_COMMIT;
          c->t = g->ch[start].t;
          c->txn_id = txn_id;
        }
        r->rc = TRB_OK;
      }
    }
  }
  trb_err rc = commit_changes(e, g, &gst);
  pthread_rwlock_unlock(&e->cat_lock);
  if (rc) {
    /* Nothing of this group is acknowledged: its decisions may rest on
     * changes that did not become durable. */
    for (size_t i = 0; i < nreq; i++) {
      trb_req *r = reqs[i];
      r->rc = rc;
      if (r->st) *r->st = gst;
      for (size_t j = 0; j < r->n; j++) {
        if (!r->w[j].priv.queued) continue;
        r->w[j].rc = rc;
        r->w[j].st = gst;
        r->w[j].lsn = 0;
      }
    }
  }
  __atomic_add_fetch(&e->n_groups, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&e->n_writes, nw, __ATOMIC_RELAXED);
}

/*
 * def gets its own copy of the index set want, in which each new index (cf_id
 * 0) has a column family id that no table or index can have: the high bit,
 * the LSN of the record that creates it, and its position. An index that
 * keeps its name and key schema from cur keeps its family.
 */
static trb_err own_indexes(trb_tabledef *def, const trb_indexset *cur, const trb_indexset *want,
                           uint64_t lsn, trb_status *st) {
  trb_indexset_unref(def->ix);
  def->ix = NULL;
  if (!want || !want->n) return TRB_OK;
  if (lsn >= (1ull << 57))
    return trb_status_set(st, TRB_ELIMIT, "LSNs past 2^57 cannot name index column families");
  trb_indexset *s = trb_indexset_dup(want);
  if (!s) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  int64_t now = trb_now_us();
  for (size_t i = 0; i < s->n; i++) {
    trb_indexdef *d = &s->d[i];
    int ci = trb_indexset_find(cur, d->name);
    if (d->cf_id && ci >= 0 && cur->d[ci].cf_id == d->cf_id) continue;
    d->cf_id = (1ull << 63) | (lsn << 5) | i;
    d->created_us = now;
  }
  def->ix = s;
  return TRB_OK;
}

/*
 * A table record that starts a stream (its settings carry a StreamLabel the
 * table did not have) also records where: "StreamStartLsn" (this record's
 * LSN, decimal) and "StreamStartUs" (commit time, microseconds) in the
 * settings. The stream index reads them from the catalog when retention
 * has removed this record from the WAL, so a stream, its shards and their
 * ids stay the same (transform/streams.c).
 */
static void mark_stream_start(trb_tabledef *def, const json_t *prev_ext, uint64_t lsn) {
  const char *label = def->ext ? json_string_value(json_object_get(def->ext, "StreamLabel")) : NULL;
  const char *prev = prev_ext ? json_string_value(json_object_get(prev_ext, "StreamLabel")) : NULL;
  if (!label) return;
  if (prev && !strcmp(prev, label)) {
    /* the same stream: keep where it started */
    json_t *l = json_object_get(prev_ext, "StreamStartLsn"), *u = json_object_get(prev_ext, "StreamStartUs");
    if (l) json_object_set(def->ext, "StreamStartLsn", l);
    if (u) json_object_set(def->ext, "StreamStartUs", u);
    return;
  }
  char b[24];
  snprintf(b, sizeof b, "%llu", (unsigned long long)lsn);
  json_object_set_new(def->ext, "StreamStartLsn", json_string(b));
  json_object_set_new(def->ext, "StreamStartUs", json_integer((json_int_t)trb_now_us()));
}

static trb_err process_table_op(trb_engine *e, trb_req *r) {
  trb_status *st = r->st;
  trb_err rc = TRB_OK;
  trb_buf enc;
  trb_buf_init(&enc, 0);
  pthread_rwlock_wrlock(&e->cat_lock);
  trb_table *t = trb__table_find(e, r->name);
  trb_wal_rec rec;
  memset(&rec, 0, sizeof rec);
  rec.table = r->name;
  rec.table_len = strlen(r->name);
  uint64_t lsn = trb_wal_last_lsn(e->wal) + 1;
  trb_tabledef def;
  memset(&def, 0, sizeof def);
  if (r->kind == TRB_REQ_TABLE_CREATE) {
    if (t) {
      rc = trb_status_set(st, TRB_EEXISTS, "Table already exists: %s", r->name);
      goto done;
    }
    snprintf(def.name, sizeof def.name, "%s", r->name);
    def.ks = *r->ks;
    def.table_id = lsn;
    def.created_us = trb_now_us();
    def.ext = r->ext ? json_deep_copy(r->ext) : NULL; /* ours: immutable from here */
    mark_stream_start(&def, NULL, lsn);
    if (r->set_ix && (rc = own_indexes(&def, NULL, r->ix, lsn, st))) goto done;
    rec.kind = TRB_WAL_TABLE_CREATE;
    rec.table_id = lsn;
  } else {
    if (!t) {
      rc = trb_status_set(st, TRB_ENOTFOUND, "Requested resource not found: Table: %s not found",
                          r->name);
      goto done;
    }
    rec.table_id = t->def.table_id;
    if (r->kind == TRB_REQ_TABLE_UPDATE && r->base &&
        (r->base->table_id != t->def.table_id || r->base->ix != t->def.ix ||
         r->base->ext != t->def.ext)) {
      rc = trb_status_set(st, TRB_EINUSE,
                          "Attempt to change a resource which is still in use: Table is being "
                          "updated: %s",
                          r->name);
      goto done;
    }
    if (r->kind == TRB_REQ_TABLE_DELETE) {
      trb__table_info(t, r->info);
      rec.kind = TRB_WAL_TABLE_DELETE;
    } else {
      trb_tabledef_copy(&def, &t->def);
      json_decref(def.ext);
      def.ext = r->ext ? json_deep_copy(r->ext) : NULL;
      mark_stream_start(&def, t->def.ext, lsn);
      if (r->set_ix && (rc = own_indexes(&def, t->def.ix, r->ix, lsn, st))) goto done;
      rec.kind = TRB_WAL_TABLE_UPDATE;
    }
  }
  if (rec.kind != TRB_WAL_TABLE_DELETE) {
    if ((rc = trb_tabledef_encode(&def, &enc))) goto done;
    rec.new_img = enc.p;
    rec.new_len = enc.len;
  }
  if ((rc = trb_wal_append(e->wal, &rec, 1, st)) || (rc = trb_wal_commit(e->wal, st))) {
    set_failed(e, rc, "the WAL", st);
    trb_log_error("engine", "WAL write failed: %s; writes are refused until tributary is "
                  "restarted", trb_status_msg(st));
    goto done;
  }
  trb_wal_publish(e->wal, rec.lsn);
  if (rec.kind == TRB_WAL_TABLE_CREATE) {
    rc = trb__apply_table_create(e, &def, rec.lsn, st);
  } else if (rec.kind == TRB_WAL_TABLE_UPDATE) {
    rc = trb__apply_table_update(e, &def, rec.lsn, st);
  } else {
    rc = trb__apply_table_delete(e, r->name, rec.lsn, st);
  }
  if (rc) set_failed(e, rc, "the store", st);
  if (!rc && rec.kind != TRB_WAL_TABLE_DELETE && r->info)
    trb__table_info(trb__table_find(e, def.name), r->info);
done:
  pthread_rwlock_unlock(&e->cat_lock);
  trb_tabledef_fini(&def);
  trb_buf_fini(&enc);
  return rc;
}

void *trb__commit_main(void *arg) {
  trb_engine *e = arg;
  pthread_setname_np(pthread_self(), "trb-commit");
  group g;
  memset(&g, 0, sizeof g);
  g.batch = trb_store_batch_create();
  trb_buf_init(&g.scratch, 0);
  trb_req **reqs = NULL;
  size_t capreqs = 0;
  size_t last_writes = 0; /* requests in the last write group */
  size_t peak = 0;        /* the most of them lately, x16, decaying by 1/64 a group */
  for (;;) {
    pthread_mutex_lock(&e->qmu);
    if (e->opts.commit_delay_us && last_writes >= 2 && !e->stopping) {
      /* The commit delay (see the top of the file). */
      size_t want = last_writes + last_writes / 2;
      if (want > peak / 16) want = peak / 16;
      struct timespec dl = trb_deadline_us(e->opts.commit_delay_us);
      e->qwant = want;
      while (e->qlen < want && !e->stopping &&
             pthread_cond_timedwait(&e->qcv, &e->qmu, &dl) == 0) {
      }
      e->qwant = 0;
    }
    while (!e->qhead && !e->stopping) pthread_cond_wait(&e->qcv, &e->qmu);
    if (!e->qhead) {
      pthread_mutex_unlock(&e->qmu);
      break;
    }
    trb_err failed = e->failed;
    char why[sizeof e->failed_msg];
    if (failed) snprintf(why, sizeof why, "%s", e->failed_msg);
    size_t nreq = 0, nw = 0;
    if (e->qhead->kind != TRB_REQ_WRITE) {
      if (!grow((void **)&reqs, &capreqs, 1, sizeof *reqs)) {
        reqs[nreq++] = e->qhead;
        e->qhead = e->qhead->next;
        e->qlen--;
      }
    } else {
      while (e->qhead && e->qhead->kind == TRB_REQ_WRITE &&
             (nreq == 0 || nw + e->qhead->n <= e->opts.max_group)) {
        if (grow((void **)&reqs, &capreqs, nreq + 1, sizeof *reqs)) break;
        reqs[nreq++] = e->qhead;
        nw += e->qhead->n;
        e->qhead = e->qhead->next;
        e->qlen--;
      }
    }
    if (!e->qhead) e->qtail = NULL;
    pthread_mutex_unlock(&e->qmu);
    if (!nreq) continue;
    last_writes = reqs[0]->kind == TRB_REQ_WRITE ? nreq : 0;
    peak -= peak / 64;
    if (last_writes * 16 > peak) peak = last_writes * 16;

    if (failed) {
      /* what failed, and what to do: a full disk is the common case */
      int full = strstr(why, "No space left") != NULL;
      for (size_t i = 0; i < nreq; i++) {
        trb_req *r = reqs[i];
        r->rc = trb_status_set(r->st, TRB_EFAILED,
                               "writes are refused since an earlier failure of %s; %srestart "
                               "tributary",
                               why[0] ? why : trb_err_name(failed),
                               full ? "the disk is full: free space on it, then " : "");
        for (size_t j = 0; j < r->n; j++)
          if (r->w[j].priv.queued) {
            r->w[j].rc = r->rc;
            trb_status_set(&r->w[j].st, r->rc, "%s", trb_status_msg(r->st));
          }
        answer(e, r);
      }
      continue;
    }
    if (reqs[0]->kind == TRB_REQ_FLUSH) {
      /* No write runs meanwhile: every family ends at the same LSN. */
      reqs[0]->flushed_lsn = trb_store_applied_lsn(e->store);
      reqs[0]->rc = trb_store_flush(e->store, reqs[0]->st);
      answer(e, reqs[0]);
      continue;
    }
    if (reqs[0]->kind != TRB_REQ_WRITE) {
      reqs[0]->rc = process_table_op(e, reqs[0]);
      answer(e, reqs[0]);
      continue;
    }
    process_writes(e, &g, reqs, nreq);
    answer_group(reqs, nreq);
    group_reset(&g);
  }
  free(reqs);
  group_fini(&g);
  return NULL;
}

/* Appends r to the queue, or refuses it when the engine is closing. The
 * commit thread sleeps on an empty queue, or during its delay until qwant
 * requests are queued: only those two events wake it. */
static trb_err enqueue(trb_engine *e, trb_req *r) {
  r->next = NULL;
  pthread_mutex_lock(&e->qmu);
  if (e->stopping) {
    pthread_mutex_unlock(&e->qmu);
    return trb_status_set(r->st, TRB_ECLOSED, "the engine is closing");
  }
  int was_empty = e->qhead == NULL;
  if (e->qtail) e->qtail->next = r;
  else e->qhead = r;
  e->qtail = r;
  e->qlen++;
  if (was_empty || (e->qwant && e->qlen == e->qwant)) pthread_cond_signal(&e->qcv);
  pthread_mutex_unlock(&e->qmu);
  return TRB_OK;
}

trb_err trb__submit_async(trb_engine *e, trb_req *r) { return enqueue(e, r); }

trb_err trb__submit(trb_engine *e, trb_req *r) {
  sem_init(&r->done, 0, 0);
  trb_err rc = enqueue(e, r);
  if (rc) {
    sem_destroy(&r->done);
    return rc;
  }
  while (sem_wait(&r->done) < 0) {
  }
  /* Pass the answer on (see answer_group); those requests are still
   * waiting, so their memory is alive. */
  trb_req *w0 = r->wake[0], *w1 = r->wake[1];
  if (w0) sem_post(&w0->done);
  if (w1) sem_post(&w1->done);
  sem_destroy(&r->done);
  return r->rc;
}
