/*
 * snapshot.c -- a consistent copy of one table's items, read as of one
 * LSN, for sinks that join late (engine.h: trb_snapshot_open).
 *
 * One store iterator over the table's column family: RocksDB keeps the
 * state of its creation for as long as it lives, and the applied LSN read
 * through the same snapshot says which WAL records that state holds (the
 * store writes items and the applied LSN in one atomic batch). The
 * catalog lock is taken per call, not for the iterator's life, so a long
 * copy never holds back CreateTable or DeleteTable; a table deleted (or
 * deleted and created again) under a snapshot ends it with TRB_ENOTFOUND.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine_int.h"
#include "engine/keyenc.h"

struct trb_snapshot {
  trb_engine *e;
  char table[TRB_TABLE_NAME_MAX + 1];
  uint64_t table_id;
  trb_store_iter *it;
  trb_buf key;            /* the last item's store key (what *key points at) */
};

trb_err trb_snapshot_open(trb_engine *e, const char *table, const void *after, size_t after_len,
                          trb_snapshot **out, uint64_t *lsn, trb_status *st) {
  *out = NULL;
  trb_snapshot *s = calloc(1, sizeof *s);
  if (!s) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  s->e = e;
  snprintf(s->table, sizeof s->table, "%s", table);
  trb_buf_init(&s->key, 0);
  trb_err rc = TRB_OK;
  pthread_rwlock_rdlock(&e->cat_lock);
  trb_table *t = trb__table_find(e, table);
  if (!t) {
    rc = trb_status_set(st, TRB_ENOTFOUND, "Requested resource not found: Table: %s not found",
                        table);
  } else {
    s->table_id = t->def.table_id;
    rc = trb_store_iter_create(e->store, t->cf, NULL, 0, NULL, 0, &s->it, st);
  }
  pthread_rwlock_unlock(&e->cat_lock);
  if (!rc) rc = trb_store_iter_applied_lsn(s->it, lsn, st);
  if (rc) {
    trb_snapshot_close(s);
    return rc;
  }
  if (after && after_len) {
    trb_store_iter_seek(s->it, after, after_len);
    if (trb_store_iter_valid(s->it)) {
      size_t kl;
      const char *k = trb_store_iter_key(s->it, &kl);
      if (kl == after_len && !memcmp(k, after, kl)) trb_store_iter_next(s->it);
    }
  } else {
    trb_store_iter_first(s->it);
  }
  *out = s;
  return TRB_OK;
}

trb_err trb_snapshot_next(trb_snapshot *s, trb_av **item, const void **key, size_t *key_len,
                          trb_status *st) {
  *item = NULL;
  pthread_rwlock_rdlock(&s->e->cat_lock);
  trb_table *t = trb__table_find(s->e, s->table);
  int gone = !t || t->def.table_id != s->table_id;
  pthread_rwlock_unlock(&s->e->cat_lock);
  if (gone)
    return trb_status_set(st, TRB_ENOTFOUND, "table %s was deleted during its snapshot",
                          s->table);
  if (!trb_store_iter_valid(s->it)) return trb_store_iter_status(s->it, st);
  size_t kl, vl;
  const char *k = trb_store_iter_key(s->it, &kl);
  const char *v = trb_store_iter_val(s->it, &vl);
  if (trb_av_decode(v, vl, item))
    return trb_status_set(st, TRB_ECORRUPT, "table %s: a stored item could not be decoded",
                          s->table);
  trb_buf_reset(&s->key);
  if (trb_buf_append(&s->key, k, kl)) {
    trb_av_destroy(*item);
    *item = NULL;
    return trb_status_set(st, TRB_ENOMEM, "out of memory");
  }
  *key = s->key.p;
  *key_len = s->key.len;
  trb_store_iter_next(s->it);
  return TRB_OK;
}

void trb_snapshot_close(trb_snapshot *s) {
  if (!s) return;
  trb_store_iter_destroy(s->it);
  trb_buf_fini(&s->key);
  free(s);
}

int trb_table_stream_facts(trb_engine *e, const char *table, uint64_t *table_id,
                           uint64_t *stream_lsn, uint64_t *items, trb_keyschema *ks) {
  trb_table_info info;
  if (trb_table_describe(e, table, &info, NULL)) return 0;
  *table_id = info.def.table_id;
  *items = info.item_count;
  *ks = info.def.ks;
  *stream_lsn = 0;
  /* commit.c records where a stream started in the table's definition */
  json_t *ext = info.def.ext;
  json_t *ss = ext ? json_object_get(ext, "StreamSpecification") : NULL;
  const char *sl = ext ? json_string_value(json_object_get(ext, "StreamStartLsn")) : NULL;
  if (ss && json_is_true(json_object_get(ss, "StreamEnabled")) && sl)
    *stream_lsn = strtoull(sl, NULL, 10);
  trb_table_info_fini(&info);
  return 1;
}

/* ---- the size of an item collection (ReturnItemCollectionMetrics) ---- */

/* Adds the key and value bytes of every entry of cf whose key starts with
 * prefix. */
static trb_err prefix_bytes(trb_engine *e, trb_store_cf *cf, const trb_buf *prefix,
                            uint64_t *bytes, trb_status *st) {
  trb_store_iter *it = NULL;
  trb_err rc = trb_store_iter_create(e->store, cf, prefix->p, prefix->len, NULL, 0, &it, st);
  if (rc) return rc;
  for (trb_store_iter_seek(it, prefix->p, prefix->len); trb_store_iter_valid(it);
       trb_store_iter_next(it)) {
    size_t kl, vl;
    const char *k = trb_store_iter_key(it, &kl);
    if (kl < prefix->len || memcmp(k, prefix->p, prefix->len)) break;
    trb_store_iter_val(it, &vl);
    *bytes += kl + vl;
  }
  rc = trb_store_iter_status(it, st);
  trb_store_iter_destroy(it);
  return rc;
}

trb_err trb_item_collection_bytes(trb_engine *e, const char *table, const trb_av *pk,
                                  uint64_t *bytes, trb_status *st) {
  *bytes = 0;
  trb_buf prefix;
  trb_buf_init(&prefix, 0);
  if (trb_key_encode_partition(pk, &prefix)) {
    trb_buf_fini(&prefix);
    return trb_status_set(st, TRB_ENOMEM, "out of memory");
  }
  trb_store_cf *cfs[1 + TRB_INDEX_MAX];
  size_t n = 0;
  trb_err rc = TRB_OK;
  /* the column families stay while the catalog lock is held: a table
   * deleted meanwhile cannot drop them under the iterators */
  pthread_rwlock_rdlock(&e->cat_lock);
  trb_table *t = trb__table_get(e, table, st);
  if (!t) {
    rc = TRB_ENOTFOUND;
  } else {
    cfs[n++] = t->cf;
    for (size_t i = 0; t->def.ix && i < t->def.ix->n; i++)
      if (t->def.ix->d[i].local) cfs[n++] = t->ix_cf[i];
  }
  for (size_t i = 0; !rc && i < n; i++) rc = prefix_bytes(e, cfs[i], &prefix, bytes, st);
  pthread_rwlock_unlock(&e->cat_lock);
  trb_buf_fini(&prefix);
  return rc;
}
