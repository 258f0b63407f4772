/*
 * index_apply.c -- keeping index entries in step with the table: the
 * changes of one item write (used by the commit thread and by replay, so
 * both derive entries from the same old and new images), opening an
 * index's column family, and backfilling a new index.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_int.h"

void trb__counts_val(uint64_t count, uint64_t bytes, unsigned char out[16]) {
  trb_put_u64(out, count);
  trb_put_u64(out + 8, bytes);
}

/* Entry key (in k) and projected image of item in index i, or *present 0
 * when the index does not cover the item. *proj caller-owned. */
static trb_err entry(const trb_table *t, const trb_indexdef *ix, const trb_av *item, trb_buf *k,
                     trb_av **proj, int *present) {
  *present = 0;
  *proj = NULL;
  if (!item || !trb_index_covers(ix, item)) return TRB_OK;
  trb_buf_reset(k);
  trb_err rc = trb_index_entry_key(ix, &t->def.ks, item, k);
  if (rc) return rc;
  if (!(*proj = trb_index_project(ix, &t->def.ks, item))) return TRB_ENOMEM;
  *present = 1;
  return TRB_OK;
}

static uint32_t kb_units(size_t bytes) {
  size_t u = (bytes + 1023) / 1024;
  return u ? (uint32_t)u : 1;
}

trb_err trb__index_stage(trb_store_batch *b, const trb_table *t, const trb_av *old,
                         const trb_av *nw, int64_t *dcount, int64_t *dbytes, uint32_t *kb,
                         trb_buf *scratch) {
  const trb_indexset *s = t->def.ix;
  if (!s) return TRB_OK;
  trb_buf ok, enc;
  trb_buf_init(&ok, 0);
  trb_buf_init(&enc, 0);
  trb_err rc = TRB_OK;
  for (size_t i = 0; i < s->n && !rc; i++) {
    const trb_indexdef *ix = &s->d[i];
    trb_store_cf *cf = t->ix_cf[i];
    if (!cf) continue;
    trb_av *op = NULL, *np = NULL;
    int ho, hn;
    if ((rc = entry(t, ix, old, &ok, &op, &ho))) goto next;
    if ((rc = entry(t, ix, nw, scratch, &np, &hn))) goto next;
    if (ho && hn && ok.len == scratch->len && !memcmp(ok.p, scratch->p, ok.len) &&
        trb_av_equal(op, np))
      goto next; /* the entry is as it was */
    if (ho && (!hn || ok.len != scratch->len || memcmp(ok.p, scratch->p, ok.len))) {
      trb_store_batch_del(b, cf, ok.p, ok.len);
      if (kb) kb[i] += kb_units(trb_item_size(op));
    }
    if (hn) {
      if (kb) kb[i] += kb_units(trb_item_size(np));
      trb_buf_reset(&enc);
      if ((rc = trb_av_encode(np, &enc))) goto next;
      trb_store_batch_put(b, cf, scratch->p, scratch->len, enc.p, enc.len);
    }
    dcount[i] += (int64_t)hn - (int64_t)ho;
    dbytes[i] += (hn ? (int64_t)trb_item_size(np) : 0) - (ho ? (int64_t)trb_item_size(op) : 0);
  next:
    trb_av_destroy(op);
    trb_av_destroy(np);
  }
  trb_buf_fini(&ok);
  trb_buf_fini(&enc);
  return rc;
}

trb_err trb__index_open(trb_engine *e, trb_table *t, trb_status *st) {
  const trb_indexset *s = t->def.ix;
  for (size_t i = 0; s && i < s->n; i++) {
    trb_err rc = trb_store_cf_create(e->store, s->d[i].cf_id, &t->ix_cf[i], st);
    if (rc) return rc;
    unsigned char sk[10];
    trb__stats_key(s->d[i].cf_id, sk);
    char *sv = NULL;
    size_t svl = 0;
    if ((rc = trb_store_meta_get(e->store, sk, sizeof sk, &sv, &svl, st))) return rc;
    t->ix_count[i] = t->ix_bytes[i] = 0;
    if (sv && svl == 16) {
      t->ix_count[i] = trb_get_u64((unsigned char *)sv);
      t->ix_bytes[i] = trb_get_u64((unsigned char *)sv + 8);
    }
    free(sv);
  }
  return TRB_OK;
}

trb_err trb__index_backfill(trb_engine *e, trb_table *t, size_t i, trb_store_batch *b,
                            trb_status *st) {
  const trb_indexdef *ix = &t->def.ix->d[i];
  trb_store_iter *it = NULL;
  trb_err rc = trb_store_iter_create(e->store, t->cf, NULL, 0, NULL, 0, &it, st);
  if (rc) return rc;
  trb_buf k, enc;
  trb_buf_init(&k, 0);
  trb_buf_init(&enc, 0);
  uint64_t count = 0, bytes = 0;
  for (trb_store_iter_first(it); trb_store_iter_valid(it) && !rc; trb_store_iter_next(it)) {
    size_t vl;
    const char *v = trb_store_iter_val(it, &vl);
    trb_av *item = NULL, *proj = NULL;
    int has;
    if ((rc = trb_av_decode(v, vl, &item))) {
      trb_status_set(st, TRB_ECORRUPT, "backfill of index %s: stored item could not be decoded",
                     ix->name);
      break;
    }
    if (!(rc = entry(t, ix, item, &k, &proj, &has)) && has) {
      trb_buf_reset(&enc);
      if (!(rc = trb_av_encode(proj, &enc))) {
        trb_store_batch_put(b, t->ix_cf[i], k.p, k.len, enc.p, enc.len);
        count++;
        bytes += trb_item_size(proj);
      }
    }
    trb_av_destroy(item);
    trb_av_destroy(proj);
  }
  if (!rc) rc = trb_store_iter_status(it, st);
  else if (rc == TRB_ENOMEM) trb_status_set(st, rc, "out of memory");
  trb_store_iter_destroy(it);
  trb_buf_fini(&k);
  trb_buf_fini(&enc);
  if (rc) return rc;
  t->ix_count[i] = count;
  t->ix_bytes[i] = bytes;
  unsigned char sk[10], sv[16];
  trb__stats_key(ix->cf_id, sk);
  trb__counts_val(count, bytes, sv);
  trb_store_batch_meta_put(b, sk, sizeof sk, sv, sizeof sv);
  return TRB_OK;
}
