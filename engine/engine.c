/*
 * engine.c -- opening, recovery and the table catalog.
 *
 * Data directory layout:
 *   <data_dir>/wal/     the WAL segments (capture/wal.c)
 *   <data_dir>/store/   RocksDB (engine/store.c)
 *
 * Recovery (trb_engine_open): open the store and read its catalog and
 * applied LSN; open the WAL (which truncates a torn tail and refuses
 * corruption); replay every WAL record past the applied LSN into the store;
 * then start the commit thread. Records of a transaction are applied only
 * once its TXN_COMMIT record is read.
 */
#include "engine/engine_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/sysio.h"

#define CAT_PREFIX "T:"

void trb_engine_opts_default(trb_engine_opts *o) {
  memset(o, 0, sizeof *o);
  o->data_dir = "./tributary-data";
  o->sync_mode = TRB_WAL_SYNC_ALWAYS;
  o->sync_interval_ms = 10;
  o->segment_size = 64ull << 20;
  o->max_group = 1024;
  o->commit_delay_us = 0;
  o->item_cache_bytes = 64ull << 20;
}

/* ---- catalog ---- */

static size_t table_pos(trb_engine *e, const char *name, int *found) {
  size_t lo = 0, hi = e->ntables;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(e->tables[mid]->def.name, name);
    if (c == 0) {
      *found = 1;
      return mid;
    }
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  *found = 0;
  return lo;
}

trb_table *trb__table_find(trb_engine *e, const char *name) {
  int found;
  size_t i = table_pos(e, name, &found);
  return found ? e->tables[i] : NULL;
}

trb_table *trb__table_get(trb_engine *e, const char *name, trb_status *st) {
  trb_table *t = trb__table_find(e, name ? name : "");
  if (!t)
    trb_status_set(st, TRB_ENOTFOUND, "Requested resource not found: Table: %s not found",
                   name ? name : "");
  return t;
}

trb_err trb__table_add(trb_engine *e, const trb_tabledef *def, trb_status *st) {
  int found;
  size_t i = table_pos(e, def->name, &found);
  if (found) return trb_status_set(st, TRB_EEXISTS, "Table already exists: %s", def->name);
  if (e->ntables == e->captables) {
    size_t nc = e->captables ? e->captables * 2 : 16;
    trb_table **nt = realloc(e->tables, nc * sizeof *nt);
    if (!nt) return trb_status_set(st, TRB_ENOMEM, "out of memory");
    e->tables = nt;
    e->captables = nc;
  }
  trb_table *t = calloc(1, sizeof *t);
  if (!t) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  trb_err rc = trb_store_cf_create(e->store, def->table_id, &t->cf, st);
  if (rc) {
    free(t);
    return rc;
  }
  trb_tabledef_copy(&t->def, def);
  if ((rc = trb__index_open(e, t, st))) {
    trb_tabledef_fini(&t->def);
    free(t);
    return rc;
  }
  memmove(e->tables + i + 1, e->tables + i, (e->ntables - i) * sizeof *e->tables);
  e->tables[i] = t;
  e->ntables++;
  return TRB_OK;
}

void trb__table_remove(trb_engine *e, const char *name) {
  int found;
  size_t i = table_pos(e, name, &found);
  if (!found) return;
  trb_tabledef_fini(&e->tables[i]->def);
  free(e->tables[i]);
  memmove(e->tables + i, e->tables + i + 1, (e->ntables - i - 1) * sizeof *e->tables);
  e->ntables--;
}

void trb__table_info(const trb_table *t, trb_table_info *info) {
  if (!info) return;
  trb_tabledef_copy(&info->def, &t->def);
  /* The commit thread updates these while readers hold the catalog shared. */
  info->item_count = __atomic_load_n(&t->item_count, __ATOMIC_RELAXED);
  info->size_bytes = __atomic_load_n(&t->size_bytes, __ATOMIC_RELAXED);
  for (size_t i = 0; t->def.ix && i < t->def.ix->n; i++) {
    info->ix_count[i] = __atomic_load_n(&t->ix_count[i], __ATOMIC_RELAXED);
    info->ix_bytes[i] = __atomic_load_n(&t->ix_bytes[i], __ATOMIC_RELAXED);
  }
}

void trb__catalog_key(const char *name, trb_buf *b) {
  trb_buf_reset(b);
  trb_buf_append(b, CAT_PREFIX, 2);
  trb_buf_append(b, name, strlen(name));
}

void trb__stats_key(uint64_t table_id, unsigned char out[10]) {
  out[0] = 'S';
  out[1] = ':';
  for (int i = 0; i < 8; i++) out[2 + i] = (unsigned char)(table_id >> (56 - 8 * i));
}

void trb__stats_val(const trb_table *t, unsigned char out[16]) {
  trb_put_u64(out, t->item_count);
  trb_put_u64(out + 8, t->size_bytes);
}

static trb_err load_catalog(trb_engine *e, trb_status *st) {
  trb_store_iter *it = NULL;
  trb_err rc = trb_store_iter_create(e->store, NULL, CAT_PREFIX, 2, "T;", 2, &it, st);
  if (rc) return rc;
  for (trb_store_iter_first(it); trb_store_iter_valid(it); trb_store_iter_next(it)) {
    size_t vl;
    const char *v = trb_store_iter_val(it, &vl);
    trb_tabledef def;
    if ((rc = trb_tabledef_decode(v, vl, &def, st))) goto done;
    rc = trb__table_add(e, &def, st);
    trb_tabledef_fini(&def);
    if (rc) goto done;
    trb_table *t = trb__table_find(e, def.name);
    unsigned char sk[10];
    trb__stats_key(def.table_id, sk);
    char *sv = NULL;
    size_t svl = 0;
    if ((rc = trb_store_meta_get(e->store, sk, sizeof sk, &sv, &svl, st))) goto done;
    if (sv && svl == 16) {
      t->item_count = trb_get_u64((unsigned char *)sv);
      t->size_bytes = trb_get_u64((unsigned char *)sv + 8);
    }
    free(sv);
  }
  rc = trb_store_iter_status(it, st);
done:
  trb_store_iter_destroy(it);
  return rc;
}

/* Column families without a catalog entry are left over from a crash
 * between creating a family and committing the catalog batch (or between
 * the catalog batch of a delete and the drop): drop them. Replay recreates
 * what the WAL says exists. */
struct orphan_ctx {
  trb_engine *e;
  uint64_t *ids;
  size_t n;
};
static void orphan_cb(void *ctx, uint64_t id) {
  struct orphan_ctx *o = ctx;
  for (size_t i = 0; i < o->e->ntables; i++) {
    const trb_tabledef *d = &o->e->tables[i]->def;
    if (d->table_id == id) return;
    for (size_t j = 0; d->ix && j < d->ix->n; j++)
      if (d->ix->d[j].cf_id == id) return;
  }
  uint64_t *n = realloc(o->ids, (o->n + 1) * sizeof *n);
  if (!n) return;
  o->ids = n;
  o->ids[o->n++] = id;
}
static void drop_orphans(trb_engine *e) {
  struct orphan_ctx o = {e, NULL, 0};
  trb_store_cf_each(e->store, orphan_cb, &o);
  for (size_t i = 0; i < o.n; i++) {
    trb_log_info("engine", "column family %llu has no table in the store's catalog (the "
                 "store had not flushed since it was made, or it was being dropped): dropped; "
                 "the WAL replay below makes again whatever tables the WAL holds",
                 (unsigned long long)o.ids[i]);
    trb_store_cf_drop(e->store, o.ids[i], NULL);
  }
  free(o.ids);
}

/* Opening the store writes (a new manifest, options and log file), and
 * RocksDB as Debian builds it stops the process on an assertion when such a
 * write fails for want of space: refuse to open first, saying so. */
#define TRB_OPEN_MIN_FREE (16u << 20)
static trb_err check_free_space(const char *dir, trb_status *st) {
  uint64_t avail;
  if (trb_sys_free_bytes(dir, &avail) != 0) return TRB_OK; /* the open itself will say */
  if (avail >= TRB_OPEN_MIN_FREE) return TRB_OK;
  return trb_status_set(st, TRB_EIO,
                        "the disk holding %s has %llu KiB free; opening the data directory "
                        "needs at least %u MiB: free some space (nothing in the data directory "
                        "is lost) and start again",
                        dir, (unsigned long long)(avail >> 10), TRB_OPEN_MIN_FREE >> 20);
}

/* ---- replay ---- */

static trb_table *table_by_id(trb_engine *e, uint64_t id) {
  for (size_t i = 0; i < e->ntables; i++)
    if (e->tables[i]->def.table_id == id) return e->tables[i];
  return NULL;
}

/* Applies one item record to batch b and the table's counters. */
static trb_err replay_item(trb_engine *e, trb_store_batch *b, const trb_wal_rec *r,
                           trb_buf *skey, trb_status *st) {
  trb_table *t = table_by_id(e, r->table_id);
  if (!t) return TRB_OK; /* table deleted later in the log: nothing to keep */
  trb_av *keys = NULL, *oldv = NULL, *newv = NULL;
  trb_err rc = trb_av_decode(r->keys, r->keys_len, &keys);
  if (!rc && r->old_img) rc = trb_av_decode(r->old_img, r->old_len, &oldv);
  if (!rc && r->new_img) rc = trb_av_decode(r->new_img, r->new_len, &newv);
  if (rc) {
    trb_status_set(st, TRB_ECORRUPT, "replay: undecodable item in WAL record LSN %llu",
                   (unsigned long long)r->lsn);
    goto done;
  }
  trb_buf_reset(skey);
  if ((rc = trb_key_encode(&t->def.ks, keys, skey))) goto done;
  if (newv) {
    trb_store_batch_put(b, t->cf, skey->p, skey->len, r->new_img, r->new_len);
  } else {
    trb_store_batch_del(b, t->cf, skey->p, skey->len);
  }
  if (!oldv && newv) t->item_count++;
  if (oldv && !newv && t->item_count) t->item_count--;
  t->size_bytes += (newv ? trb_item_size(newv) : 0);
  size_t os = oldv ? trb_item_size(oldv) : 0;
  t->size_bytes = t->size_bytes >= os ? t->size_bytes - os : 0;
  unsigned char k[10], v[16];
  trb__stats_key(t->def.table_id, k);
  trb__stats_val(t, v);
  trb_store_batch_meta_put(b, k, sizeof k, v, sizeof v);
  if (t->def.ix) {
    int64_t dc[TRB_INDEX_MAX] = {0}, ds[TRB_INDEX_MAX] = {0};
    if ((rc = trb__index_stage(b, t, oldv, newv, dc, ds, NULL, skey))) {
      trb_status_set(st, rc, "replay: cannot stage index entries of LSN %llu",
                     (unsigned long long)r->lsn);
      goto done;
    }
    for (size_t i = 0; i < t->def.ix->n; i++) {
      if (!dc[i] && !ds[i]) continue;
      int64_t c = (int64_t)t->ix_count[i] + dc[i], by = (int64_t)t->ix_bytes[i] + ds[i];
      t->ix_count[i] = c > 0 ? (uint64_t)c : 0;
      t->ix_bytes[i] = by > 0 ? (uint64_t)by : 0;
      trb__stats_key(t->def.ix->d[i].cf_id, k);
      trb__counts_val(t->ix_count[i], t->ix_bytes[i], v);
      trb_store_batch_meta_put(b, k, sizeof k, v, sizeof v);
    }
  }
done:
  trb_av_destroy(keys);
  trb_av_destroy(oldv);
  trb_av_destroy(newv);
  return rc;
}

/* Table create/delete take effect in the store immediately (column
 * families are not part of write batches), so flush pending item writes
 * first to keep LSN order. */
static trb_err replay_flush(trb_engine *e, trb_store_batch *b, uint64_t lsn, int *pending,
                            trb_status *st) {
  if (!*pending) return TRB_OK;
  trb_err rc = trb_store_batch_commit(e->store, b, lsn, st);
  trb_store_batch_clear(b);
  *pending = 0;
  return rc;
}

trb_err trb__apply_table_create(trb_engine *e, const trb_tabledef *def, uint64_t lsn,
                                trb_status *st) {
  trb_err rc = trb__table_add(e, def, st);
  if (rc) return rc;
  trb_buf k, v;
  trb_buf_init(&k, 0);
  trb_buf_init(&v, 0);
  trb__catalog_key(def->name, &k);
  rc = trb_tabledef_encode(def, &v);
  trb_store_batch *b = trb_store_batch_create();
  if (!rc && !b) rc = TRB_ENOMEM;
  if (!rc) {
    unsigned char sk[10], sv[16] = {0};
    trb__stats_key(def->table_id, sk);
    trb_store_batch_meta_put(b, k.p, k.len, v.p, v.len);
    trb_store_batch_meta_put(b, sk, sizeof sk, sv, sizeof sv);
    rc = trb_store_batch_commit(e->store, b, lsn, st);
  }
  trb_store_batch_destroy(b);
  trb_buf_fini(&k);
  trb_buf_fini(&v);
  return rc;
}

trb_err trb__apply_table_delete(trb_engine *e, const char *name, uint64_t lsn,
                                trb_status *st) {
  trb_table *t = trb__table_find(e, name);
  if (!t) return TRB_OK;
  uint64_t id = t->def.table_id;
  uint64_t ixids[TRB_INDEX_MAX];
  size_t nix = t->def.ix ? t->def.ix->n : 0;
  for (size_t i = 0; i < nix; i++) ixids[i] = t->def.ix->d[i].cf_id;
  trb_buf k;
  trb_buf_init(&k, 0);
  trb__catalog_key(name, &k);
  trb_store_batch *b = trb_store_batch_create();
  trb_err rc = b ? TRB_OK : TRB_ENOMEM;
  if (!rc) {
    unsigned char sk[10];
    trb__stats_key(id, sk);
    trb_store_batch_meta_del(b, k.p, k.len);
    trb_store_batch_meta_del(b, sk, sizeof sk);
    for (size_t i = 0; i < nix; i++) {
      trb__stats_key(ixids[i], sk);
      trb_store_batch_meta_del(b, sk, sizeof sk);
    }
    rc = trb_store_batch_commit(e->store, b, lsn, st);
  }
  trb_store_batch_destroy(b);
  trb_buf_fini(&k);
  if (rc) return rc;
  trb__table_remove(e, name);
  /* A crash between the batch and the drops leaves families without a
   * catalog entry, which the next open drops. */
  for (size_t i = 0; i < nix && !rc; i++) rc = trb_store_cf_drop(e->store, ixids[i], st);
  if (!rc) rc = trb_store_cf_drop(e->store, id, st);
  return rc;
}

static int has_cf(const trb_indexset *s, uint64_t cf_id) {
  for (size_t i = 0; s && i < s->n; i++)
    if (s->d[i].cf_id == cf_id) return 1;
  return 0;
}

/*
 * A new definition replaces the table's. Indexes in the new set and not in
 * the old (by column family id) get their family and are backfilled from
 * the table's items in the same store batch as the catalog entry; indexes
 * gone from the set have their families dropped after it. Replay runs this
 * at the record's place in the log, when the store holds exactly the items
 * as of that LSN, so a backfill there builds what it built the first time.
 */
trb_err trb__apply_table_update(trb_engine *e, const trb_tabledef *def, uint64_t lsn,
                                trb_status *st) {
  trb_table *t = trb__table_find(e, def->name);
  if (!t || t->def.table_id != def->table_id) return TRB_OK; /* gone since */
  trb_buf k, v;
  trb_buf_init(&k, 0);
  trb_buf_init(&v, 0);
  trb__catalog_key(def->name, &k);
  trb_err rc = trb_tabledef_encode(def, &v);
  trb_store_batch *b = trb_store_batch_create();
  if (!rc && !b) rc = TRB_ENOMEM;
  /* The table with its new definition, its index families and counters
   * carried over by column family id. */
  trb_table next = *t;
  const trb_indexset *ox = t->def.ix, *nx = def->ix;
  uint64_t dropped[TRB_INDEX_MAX];
  size_t ndropped = 0;
  for (size_t i = 0; ox && i < ox->n; i++)
    if (!has_cf(nx, ox->d[i].cf_id)) dropped[ndropped++] = ox->d[i].cf_id;
  memset(next.ix_cf, 0, sizeof next.ix_cf);
  memset(next.ix_count, 0, sizeof next.ix_count);
  memset(next.ix_bytes, 0, sizeof next.ix_bytes);
  next.def = *def; /* borrowed for the backfill; t->def is replaced below */
  for (size_t i = 0; !rc && nx && i < nx->n; i++) {
    int old_i = -1;
    for (size_t j = 0; ox && j < ox->n; j++)
      if (ox->d[j].cf_id == nx->d[i].cf_id) old_i = (int)j;
    if (old_i >= 0) {
      next.ix_cf[i] = t->ix_cf[old_i];
      next.ix_count[i] = t->ix_count[old_i];
      next.ix_bytes[i] = t->ix_bytes[old_i];
      continue;
    }
    if ((rc = trb_store_cf_create(e->store, nx->d[i].cf_id, &next.ix_cf[i], st))) break;
    trb_log_info("engine", "building index %s of table %s from its %llu items", nx->d[i].name,
                 def->name, (unsigned long long)t->item_count);
    rc = trb__index_backfill(e, &next, i, b, st);
  }
  if (!rc) {
    trb_store_batch_meta_put(b, k.p, k.len, v.p, v.len);
    for (size_t i = 0; i < ndropped; i++) {
      unsigned char sk[10];
      trb__stats_key(dropped[i], sk);
      trb_store_batch_meta_del(b, sk, sizeof sk);
    }
    rc = trb_store_batch_commit(e->store, b, lsn, st);
  } else if (rc == TRB_ENOMEM) {
    trb_status_set(st, rc, "out of memory");
  }
  trb_store_batch_destroy(b);
  trb_buf_fini(&k);
  trb_buf_fini(&v);
  if (rc) return rc;
  trb_tabledef_fini(&t->def);
  memcpy(t->ix_cf, next.ix_cf, sizeof t->ix_cf);
  memcpy(t->ix_count, next.ix_count, sizeof t->ix_count);
  memcpy(t->ix_bytes, next.ix_bytes, sizeof t->ix_bytes);
  trb_tabledef_copy(&t->def, def);
  for (size_t i = 0; i < ndropped && !rc; i++) rc = trb_store_cf_drop(e->store, dropped[i], st);
  return rc;
}

static trb_err replay(trb_engine *e, trb_status *st) {
  uint64_t from = trb_store_applied_lsn(e->store) + 1;
  uint64_t last = trb_wal_last_lsn(e->wal);
  if (last + 1 < from) {
    return trb_status_set(st, TRB_ECORRUPT,
                          "the store has applied LSN %llu but the WAL ends at LSN %llu: the "
                          "WAL lost acknowledged records; restore the data directory from a "
                          "backup",
                          (unsigned long long)(from - 1), (unsigned long long)last);
  }
  if (from > last) return TRB_OK;
  trb_log_info("engine", "replaying WAL records %llu..%llu into the store",
               (unsigned long long)from, (unsigned long long)last);
  trb_wal_reader *rd = NULL;
  trb_err rc = trb_wal_reader_open(e->wal, from, &rd, st);
  if (rc) return rc;
  trb_store_batch *b = trb_store_batch_create();
  trb_buf skey;
  trb_buf_init(&skey, 0);
  /* Records of an open transaction wait here until its TXN_COMMIT. */
  trb_wal_rec *txn = NULL;
  unsigned char **txn_bufs = NULL;
  size_t ntxn = 0;
  int pending = 0;
  uint64_t applied = from - 1;
  for (;;) {
    trb_wal_rec r;
    rc = trb_wal_reader_next(rd, &r, 0, st);
    if (rc == TRB_ETIMEDOUT) {
      rc = TRB_OK;
      break;
    }
    if (rc) break;
    if (r.lsn > last) break;
    if (r.txn_id && r.kind != TRB_WAL_TXN_COMMIT) {
      /* copy: reader buffers are reused */
      trb_wal_rec *nt = realloc(txn, (ntxn + 1) * sizeof *nt);
      unsigned char **nb = realloc(txn_bufs, (ntxn + 1) * sizeof *nb);
      if (nt) txn = nt;
      if (nb) txn_bufs = nb;
      size_t tot = r.table_len + r.keys_len + r.old_len + r.new_len;
      unsigned char *buf = malloc(tot ? tot : 1);
      if (!nt || !nb || !buf) {
        free(buf);
        rc = trb_status_set(st, TRB_ENOMEM, "out of memory during replay");
        break;
      }
      size_t off = 0;
      trb_wal_rec c = r;
#define CP(f, l)                                     \
  if (r.f) {                                         \
    memcpy(buf + off, r.f, r.l);                     \
    c.f = (void *)(buf + off);                       \
    off += r.l;                                      \
  }
      CP(table, table_len);
      CP(keys, keys_len);
      CP(old_img, old_len);
      CP(new_img, new_len);
#undef CP
      txn[ntxn] = c;
      txn_bufs[ntxn] = buf;
      ntxn++;
      continue;
    }
    switch (r.kind) {
      case TRB_WAL_INSERT:
      case TRB_WAL_MODIFY:
      case TRB_WAL_REMOVE:
        rc = replay_item(e, b, &r, &skey, st);
        pending = 1;
        break;
      case TRB_WAL_TXN_COMMIT:
        for (size_t i = 0; i < ntxn && !rc; i++)
          if (txn[i].txn_id == r.txn_id) rc = replay_item(e, b, &txn[i], &skey, st);
        for (size_t i = 0; i < ntxn; i++) free(txn_bufs[i]);
        ntxn = 0;
        pending = 1;
        break;
      case TRB_WAL_TABLE_CREATE: {
        trb_tabledef def;
        if (!(rc = replay_flush(e, b, applied, &pending, st)) &&
            !(rc = trb_tabledef_decode(r.new_img, r.new_len, &def, st))) {
          if (trb__table_find(e, def.name)) /* created before the crash, applied */
            rc = TRB_OK;
          else
            rc = trb__apply_table_create(e, &def, r.lsn, st);
          trb_tabledef_fini(&def);
        }
        break;
      }
      case TRB_WAL_TABLE_UPDATE: {
        trb_tabledef def;
        if (!(rc = replay_flush(e, b, applied, &pending, st)) &&
            !(rc = trb_tabledef_decode(r.new_img, r.new_len, &def, st))) {
          rc = trb__apply_table_update(e, &def, r.lsn, st);
          trb_tabledef_fini(&def);
        }
        break;
      }
      case TRB_WAL_TABLE_DELETE: {
        char name[TRB_TABLE_NAME_MAX + 1];
        size_t n = r.table_len < sizeof name - 1 ? r.table_len : sizeof name - 1;
        memcpy(name, r.table, n);
        name[n] = 0;
        if (!(rc = replay_flush(e, b, applied, &pending, st)))
          rc = trb__apply_table_delete(e, name, r.lsn, st);
        break;
      }
      default:
        break; /* kinds this version does not know: newer records are refused by the
                  WAL's version check, so nothing to apply */
    }
    if (rc) break;
    applied = r.lsn;
    if (pending && (applied & 1023) == 0) rc = replay_flush(e, b, applied, &pending, st);
    if (rc) break;
  }
  if (!rc && ntxn)
    trb_log_warn("engine", "ignoring %zu records of a transaction without its commit record "
                 "at the end of the WAL", ntxn);
  for (size_t i = 0; i < ntxn; i++) free(txn_bufs[i]);
  free(txn);
  free(txn_bufs);
  if (!rc && applied > trb_store_applied_lsn(e->store)) {
    pending = 1;
    rc = replay_flush(e, b, applied, &pending, st);
  }
  trb_buf_fini(&skey);
  trb_store_batch_destroy(b);
  trb_wal_reader_close(rd);
  return rc;
}

/* ---- open / close ---- */

static trb_err mkdir_p(const char *path, trb_status *st) {
  char *p = strdup(path);
  if (!p) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  for (char *s = p + 1; *s; s++) {
    if (*s == '/') {
      *s = 0;
      mkdir(p, 0755);
      *s = '/';
    }
  }
  int r = mkdir(p, 0755);
  int err = errno;
  free(p);
  if (r < 0 && err != EEXIST)
    return trb_status_set(st, TRB_EIO, "cannot create directory %s: %s", path, strerror(err));
  return TRB_OK;
}

static trb_err lock_dir(trb_engine *e, trb_status *st) {
  char *p = NULL;
  if (asprintf(&p, "%s/LOCK", e->data_dir) < 0)
    return trb_status_set(st, TRB_ENOMEM, "out of memory");
  e->lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  int err = errno;
  free(p);
  if (e->lock_fd < 0)
    return trb_status_set(st, TRB_EIO, "cannot open %s/LOCK: %s", e->data_dir, strerror(err));
  if (flock(e->lock_fd, LOCK_EX | LOCK_NB) < 0)
    return trb_status_set(st, TRB_EINUSE,
                          "data directory %s is in use by another tributary process; stop it "
                          "or use another --data-dir",
                          e->data_dir);
  return TRB_OK;
}

trb_err trb_engine_open(const trb_engine_opts *o, trb_engine **out, trb_status *st) {
  trb_engine_opts def;
  if (!o) {
    trb_engine_opts_default(&def);
    o = &def;
  }
  trb_engine *e = calloc(1, sizeof *e);
  if (!e) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  e->opts = *o;
  e->lock_fd = -1;
  if (!e->opts.max_group) e->opts.max_group = 1024;
  e->data_dir = strdup(o->data_dir);
  e->opts.data_dir = e->data_dir;
  pthread_rwlockattr_t ra;
  pthread_rwlockattr_init(&ra);
  pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&e->cat_lock, &ra);
  pthread_rwlockattr_destroy(&ra);
  pthread_mutex_init(&e->qmu, NULL);
  trb_cond_init_mono(&e->qcv); /* the commit delay's timed wait */

  char *waldir = NULL, *storedir = NULL;
  trb_err rc = TRB_OK;
  if (!e->data_dir || asprintf(&waldir, "%s/wal", o->data_dir) < 0 ||
      asprintf(&storedir, "%s/store", o->data_dir) < 0) {
    rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
    goto done;
  }
  if ((rc = mkdir_p(o->data_dir, st))) goto done;
  if ((rc = lock_dir(e, st))) goto done;
  if ((rc = check_free_space(o->data_dir, st))) goto done;
  if ((rc = trb_store_open(storedir, &e->store, st))) goto done;
  trb_store_set_item_cache(e->store, o->item_cache_bytes);
  if ((rc = load_catalog(e, st))) goto done;
  drop_orphans(e);
  trb_wal_opts wo = {.dir = waldir,
                     .segment_size = o->segment_size,
                     .sync_mode = o->sync_mode,
                     .sync_interval_ms = o->sync_interval_ms};
  if ((rc = trb_wal_open(&wo, &e->wal, st))) goto done;
  if ((rc = replay(e, st))) goto done;
  if (pthread_create(&e->committer, NULL, trb__commit_main, e)) {
    rc = trb_status_set(st, TRB_EINTERNAL, "cannot start the commit thread");
    goto done;
  }
  e->started = 1;
done:
  free(waldir);
  free(storedir);
  if (rc) {
    trb_engine_close(e);
    return rc;
  }
  *out = e;
  return TRB_OK;
}

void trb_engine_close(trb_engine *e) {
  if (!e) return;
  if (e->started) {
    pthread_mutex_lock(&e->qmu);
    e->stopping = 1;
    pthread_cond_broadcast(&e->qcv);
    pthread_mutex_unlock(&e->qmu);
    pthread_join(e->committer, NULL);
  }
  trb_wal_close(e->wal);
  trb_store_close(e->store);
  for (size_t i = 0; i < e->ntables; i++) {
    trb_tabledef_fini(&e->tables[i]->def);
    free(e->tables[i]);
  }
  free(e->tables);
  pthread_rwlock_destroy(&e->cat_lock);
  pthread_mutex_destroy(&e->qmu);
  pthread_cond_destroy(&e->qcv);
  if (e->lock_fd >= 0) close(e->lock_fd);
  free(e->data_dir);
  free(e);
}

trb_wal *trb_engine_wal(trb_engine *e) { return e->wal; }

trb_err trb_engine_failed(trb_engine *e) {
  pthread_mutex_lock(&e->qmu);
  trb_err f = e->failed;
  pthread_mutex_unlock(&e->qmu);
  return f;
}

void trb_engine_get_stats(trb_engine *e, trb_engine_stats *out) {
  out->groups = __atomic_load_n(&e->n_groups, __ATOMIC_RELAXED);
  out->writes = __atomic_load_n(&e->n_writes, __ATOMIC_RELAXED);
  out->records = __atomic_load_n(&e->n_records, __ATOMIC_RELAXED);
  trb_wal_get_stats(e->wal, &out->wal);
  trb_store_item_cache_stats(e->store, &out->cache);
}

/* ---- table operations ---- */

void trb_table_info_fini(trb_table_info *info) {
  if (info) trb_tabledef_fini(&info->def);
}

trb_err trb_table_create(trb_engine *e, const char *name, const trb_keyschema *ks,
                         json_t *ext, trb_table_info *info, trb_status *st) {
  return trb_table_create_ix(e, name, ks, NULL, ext, info, st);
}

/* Engine-level checks of an index set (the API checks DynamoDB's rules
 * with DynamoDB's texts first). */
static trb_err check_indexes(const trb_keyschema *ks, const trb_indexset *ix, trb_status *st) {
  for (size_t i = 0; ix && i < ix->n; i++) {
    const trb_indexdef *d = &ix->d[i];
    trb_err rc = trb_tabledef_check_name(d->name, st);
    if (!rc) rc = trb_tabledef_check_keyschema(&d->ks, st);
    if (rc) return rc;
    for (size_t j = 0; j < i; j++)
      if (!strcmp(ix->d[j].name, d->name))
        return trb_status_set(st, TRB_EINVAL,
                              "One or more parameter values were invalid: Duplicate index name: "
                              "%s",
                              d->name);
    if (d->local && (!ks->has_sk || !d->ks.has_sk || strcmp(d->ks.pk_name, ks->pk_name) ||
                     d->ks.pk_type != ks->pk_type))
      return trb_status_set(st, TRB_EINVAL,
                            "One or more parameter values were invalid: Index %s: a local "
                            "secondary index has the table's partition key and a sort key",
                            d->name);
  }
  return TRB_OK;
}

trb_err trb_table_create_ix(trb_engine *e, const char *name, const trb_keyschema *ks,
                            const trb_indexset *ix, json_t *ext, trb_table_info *info,
                            trb_status *st) {
  trb_err rc;
  if ((rc = check_indexes(ks, ix, st))) return rc;
  if ((rc = trb_tabledef_check_name(name, st))) return rc;
  if ((rc = trb_tabledef_check_keyschema(ks, st))) return rc;
  if (ext && !json_is_object(ext))
    return trb_status_set(st, TRB_EINVAL, "table settings must be a JSON object");
  if (info) memset(info, 0, sizeof *info);
  trb_req r = {.kind = TRB_REQ_TABLE_CREATE, .name = name, .ks = ks, .ext = ext,
               .ix = ix, .set_ix = 1, .info = info, .st = st};
  return trb__submit(e, &r);
}

trb_err trb_table_update(trb_engine *e, const char *name, json_t *ext, trb_table_info *info,
                         trb_status *st) {
  if (ext && !json_is_object(ext))
    return trb_status_set(st, TRB_EINVAL, "table settings must be a JSON object");
  if (info) memset(info, 0, sizeof *info);
  trb_req r = {.kind = TRB_REQ_TABLE_UPDATE, .name = name, .ext = ext, .info = info, .st = st};
  return trb__submit(e, &r);
}

trb_err trb_table_update_ix(trb_engine *e, const char *name, const trb_tabledef *base,
                            const trb_indexset *ix, json_t *ext, trb_table_info *info,
                            trb_status *st) {
  if (ext && !json_is_object(ext))
    return trb_status_set(st, TRB_EINVAL, "table settings must be a JSON object");
  trb_table_info cur;
  trb_err rc = trb_table_describe(e, name, &cur, st);
  if (rc) return rc;
  rc = check_indexes(&cur.def.ks, ix, st);
  trb_table_info_fini(&cur);
  if (rc) return rc;
  if (info) memset(info, 0, sizeof *info);
  trb_req r = {.kind = TRB_REQ_TABLE_UPDATE, .name = name, .ext = ext, .ix = ix, .set_ix = 1,
               .base = base, .info = info, .st = st};
  return trb__submit(e, &r);
}

uint64_t trb_engine_applied_lsn(trb_engine *e) { return trb_store_applied_lsn(e->store); }

trb_err trb_engine_flush(trb_engine *e, uint64_t *lsn, trb_status *st) {
  trb_req r = {.kind = TRB_REQ_FLUSH, .st = st};
  trb_err rc = trb__submit(e, &r);
  if (!rc && lsn) *lsn = r.flushed_lsn;
  return rc;
}

trb_err trb_table_delete(trb_engine *e, const char *name, trb_table_info *info,
                         trb_status *st) {
  if (info) memset(info, 0, sizeof *info);
  trb_req r = {.kind = TRB_REQ_TABLE_DELETE, .name = name, .info = info, .st = st};
  return trb__submit(e, &r);
}

trb_err trb_table_describe(trb_engine *e, const char *name, trb_table_info *info,
                           trb_status *st) {
  if (info) memset(info, 0, sizeof *info);
  pthread_rwlock_rdlock(&e->cat_lock);
  trb_table *t = trb__table_find(e, name);
  if (t) trb__table_info(t, info);
  pthread_rwlock_unlock(&e->cat_lock);
  if (!t)
    return trb_status_set(st, TRB_ENOTFOUND, "Requested resource not found: Table: %s not found",
                          name);
  return TRB_OK;
}

trb_err trb_table_list(trb_engine *e, const char *exclusive_start, size_t limit,
                       char ***names, size_t *n, char **last, trb_status *st) {
  *names = NULL;
  *n = 0;
  if (last) *last = NULL;
  pthread_rwlock_rdlock(&e->cat_lock);
  size_t start = 0;
  if (exclusive_start) {
    int found;
    start = table_pos(e, exclusive_start, &found);
    if (found) start++;
  }
  size_t cnt = e->ntables - start;
  if (limit && cnt > limit) cnt = limit;
  char **v = calloc(cnt ? cnt : 1, sizeof *v);
  trb_err rc = v ? TRB_OK : TRB_ENOMEM;
  for (size_t i = 0; !rc && i < cnt; i++)
    if (!(v[i] = strdup(e->tables[start + i]->def.name))) rc = TRB_ENOMEM;
  if (!rc && last && start + cnt < e->ntables && cnt)
    if (!(*last = strdup(v[cnt - 1]))) rc = TRB_ENOMEM;
  pthread_rwlock_unlock(&e->cat_lock);
  if (rc) {
    trb_table_list_free(v, cnt);
    return trb_status_set(st, rc, "out of memory");
  }
  *names = v;
  *n = cnt;
  return TRB_OK;
}

void trb_table_list_free(char **names, size_t n) {
  if (!names) return;
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
}
