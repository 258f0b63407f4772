/*
 * store.c -- RocksDB adapter (see store.h for the layout it owns).
 *
 * The table of column families is a small array guarded by a mutex: it
 * changes only when tables are created or dropped (by the commit thread, or
 * at open), and readers look up a handle per operation.
 */
#include "engine/store.h"

#include <inttypes.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/item_cache.h"
#include "util/buf.h"

#define META_APPLIED "M:applied_lsn"

struct trb_store_cf {
  uint64_t table_id;
  rocksdb_column_family_handle_t *h;
};

struct trb_store {
  rocksdb_t *db;
  rocksdb_options_t *opts;
  rocksdb_writeoptions_t *wopts;
  rocksdb_readoptions_t *ropts;
  rocksdb_column_family_handle_t *def;
  pthread_mutex_t mu;
  trb_store_cf **cfs;
  size_t ncf, capcf;
  uint64_t applied_lsn;
  trb_item_cache *cache;  /* NULL: none */
};

/* touched: the keys of the batch's table writes, for the item cache:
 * u64 table id, u32 key length, the key; one after another. */
struct trb_store_batch {
  rocksdb_writebatch_t *wb;
  trb_buf touched;
};

struct trb_store_iter {
  rocksdb_iterator_t *it;
  rocksdb_readoptions_t *ro;
  const rocksdb_snapshot_t *snap;
  rocksdb_t *db;
  rocksdb_column_family_handle_t *def; /* the meta family, for the applied LSN */
  char *lo, *hi;
};

static trb_err rerr(trb_status *st, const char *what, char *err) {
  trb_status_set(st, TRB_EIO, "store: %s: %s", what, err ? err : "unknown error");
  free(err);
  return TRB_EIO;
}

static void cf_name(uint64_t id, char *buf, size_t n) {
  snprintf(buf, n, "t%016" PRIx64, id);
}

static int cf_parse(const char *name, uint64_t *id) {
  if (name[0] != 't' || strlen(name) != 17) return 0;
  char *end;
  *id = strtoull(name + 1, &end, 16);
  return *end == '\0';
}

static trb_err cf_add(trb_store *s, uint64_t id, rocksdb_column_family_handle_t *h,
                      trb_store_cf **out) {
  if (s->ncf == s->capcf) {
    size_t nc = s->capcf ? s->capcf * 2 : 16;
    trb_store_cf **n = realloc(s->cfs, nc * sizeof *n);
    if (!n) return TRB_ENOMEM;
    s->cfs = n;
    s->capcf = nc;
  }
  trb_store_cf *c = malloc(sizeof *c);
  if (!c) return TRB_ENOMEM;
  c->table_id = id;
  c->h = h;
  s->cfs[s->ncf++] = c;
  if (out) *out = c;
  return TRB_OK;
}

static rocksdb_options_t *make_options(void) {
  rocksdb_options_t *o = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(o, 1);
  rocksdb_options_set_create_missing_column_families(o, 1);
  rocksdb_options_set_atomic_flush(o, 1);
  rocksdb_options_increase_parallelism(o, 2);
  rocksdb_options_set_max_open_files(o, 512);
  rocksdb_options_set_keep_log_file_num(o, 3);
  rocksdb_options_set_info_log_level(o, 2); /* WARN: keep LOG small */
  /* Bloom filters: the commit thread looks up every written key, most of
   * them new; a filter answers "absent" without reading SST blocks. The
   * filters and indexes stay with their table readers (RocksDB's default),
   * not in the block cache: there (8 MB unless one is given) the filter and
   * index of one compacted file of a million items did not fit beside the
   * data blocks, and each lookup read and checksummed them again, so after
   * the first compaction into L1 PutItem fell from 35-40k/s to 6k/s
   * (trb_store_table_readers_mem, test_store). */
  rocksdb_block_based_table_options_t *bb = rocksdb_block_based_options_create();
  rocksdb_block_based_options_set_filter_policy(bb, rocksdb_filterpolicy_create_bloom(10));
  rocksdb_block_based_options_set_cache_index_and_filter_blocks(bb, 0);
  rocksdb_options_set_block_based_table_factory(o, bb);
  rocksdb_block_based_options_destroy(bb);
  /* The same for the memtable, where a fresh key's lookup would otherwise
   * walk the whole skip list (a few microseconds at 100k entries). */
  rocksdb_options_set_memtable_prefix_bloom_size_ratio(o, 0.02);
  rocksdb_options_set_memtable_whole_key_filtering(o, 1);
  return o;
}

trb_err trb_store_open(const char *dir, trb_store **out, trb_status *st) {
  trb_err rc = TRB_OK;
  char *err = NULL;
  char **names = NULL;
  size_t nnames = 0;
  rocksdb_column_family_handle_t **handles = NULL;
  const rocksdb_options_t **cfopts = NULL;
  trb_store *s = calloc(1, sizeof *s);
  if (!s) return trb_status_set(st, TRB_ENOMEM, "store: out of memory");
  pthread_mutex_init(&s->mu, NULL);
  s->opts = make_options();
  s->wopts = rocksdb_writeoptions_create();
  rocksdb_writeoptions_disable_WAL(s->wopts, 1);
  s->ropts = rocksdb_readoptions_create();

  names = rocksdb_list_column_families(s->opts, dir, &nnames, &err);
  if (err) { /* a new directory has no CFs yet */
    free(err);
    err = NULL;
    free(names); /* RocksDB allocates the (empty) array even on error */
    names = NULL;
    nnames = 0;
  }
  const char *defname = "default";
  size_t n = nnames ? nnames : 1;
  handles = calloc(n, sizeof *handles);
  cfopts = calloc(n, sizeof *cfopts);
  if (!handles || !cfopts) {
    rc = trb_status_set(st, TRB_ENOMEM, "store: out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) cfopts[i] = s->opts;
  s->db = rocksdb_open_column_families(s->opts, dir, (int)n,
                                       nnames ? (const char *const *)names : &defname,
                                       cfopts, handles, &err);
  if (err) {
    rc = rerr(st, "open", err);
    err = NULL;
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    const char *nm = nnames ? names[i] : defname;
    uint64_t id;
    if (!strcmp(nm, "default")) {
      s->def = handles[i];
    } else if (cf_parse(nm, &id)) {
      if ((rc = cf_add(s, id, handles[i], NULL))) goto done;
    } else {
      rocksdb_column_family_handle_destroy(handles[i]);
    }
    handles[i] = NULL;
  }
  char *v = NULL;
  size_t vl = 0;
  if ((rc = trb_store_meta_get(s, META_APPLIED, strlen(META_APPLIED), &v, &vl, st))) goto done;
  if (v && vl == 8) s->applied_lsn = trb_get_u64((unsigned char *)v);
  free(v);
done:
  if (names) rocksdb_list_column_families_destroy(names, nnames);
  if (handles) {
    for (size_t i = 0; i < n; i++)
      if (handles[i]) rocksdb_column_family_handle_destroy(handles[i]);
    free(handles);
  }
  free(cfopts);
  if (rc) {
    trb_store_close(s);
    return rc;
  }
  *out = s;
  return TRB_OK;
}

trb_err trb_store_flush(trb_store *s, trb_status *st) {
  rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
  if (!fo) return trb_status_set(st, TRB_ENOMEM, "store: out of memory");
  rocksdb_flushoptions_set_wait(fo, 1);
  char *err = NULL;
  trb_err rc = TRB_OK;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->ncf && !err; i++) rocksdb_flush_cf(s->db, fo, s->cfs[i]->h, &err);
  pthread_mutex_unlock(&s->mu);
  if (!err) rocksdb_flush_cf(s->db, fo, s->def, &err);
  if (err) rc = rerr(st, "flush", err);
  rocksdb_flushoptions_destroy(fo);
  return rc;
}

uint64_t trb_store_table_readers_mem(trb_store *s) {
  uint64_t sum = 0, v;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->ncf; i++)
    if (!rocksdb_property_int_cf(s->db, s->cfs[i]->h, "rocksdb.estimate-table-readers-mem", &v))
      sum += v;
  pthread_mutex_unlock(&s->mu);
  if (!rocksdb_property_int_cf(s->db, s->def, "rocksdb.estimate-table-readers-mem", &v)) sum += v;
  return sum;
}

void trb_store_close(trb_store *s) {
  if (!s) return;
  /* No manual flush here: flushing families one by one persists the
   * default family (with the applied LSN) apart from the tables', and a crash
   * in between would lose acknowledged items. RocksDB's close flushes every
   * family with unpersisted data in one atomic flush (atomic_flush is on);
   * if that fails, the applied LSN stays behind and replay redoes the rest. */
  for (size_t i = 0; i < s->ncf; i++) {
    rocksdb_column_family_handle_destroy(s->cfs[i]->h);
    free(s->cfs[i]);
  }
  free(s->cfs);
  if (s->def) rocksdb_column_family_handle_destroy(s->def);
  if (s->db) rocksdb_close(s->db);
  if (s->opts) rocksdb_options_destroy(s->opts);
  if (s->wopts) rocksdb_writeoptions_destroy(s->wopts);
  if (s->ropts) rocksdb_readoptions_destroy(s->ropts);
  trb_item_cache_destroy(s->cache);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

/* atomic: sinks ask (trb_engine_applied_lsn) while the commit thread writes */
uint64_t trb_store_applied_lsn(const trb_store *s) {
  return __atomic_load_n(&s->applied_lsn, __ATOMIC_ACQUIRE);
}

trb_store_cf *trb_store_cf_get(trb_store *s, uint64_t table_id) {
  trb_store_cf *r = NULL;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->ncf; i++)
    if (s->cfs[i]->table_id == table_id) {
      r = s->cfs[i];
      break;
    }
  pthread_mutex_unlock(&s->mu);
  return r;
}

trb_err trb_store_cf_create(trb_store *s, uint64_t table_id, trb_store_cf **out,
                            trb_status *st) {
  trb_store_cf *c = trb_store_cf_get(s, table_id);
  if (c) {
    if (out) *out = c;
    return TRB_OK;
  }
  char name[32], *err = NULL;
  cf_name(table_id, name, sizeof name);
  rocksdb_column_family_handle_t *h = rocksdb_create_column_family(s->db, s->opts, name, &err);
  if (err) return rerr(st, "create column family", err);
  pthread_mutex_lock(&s->mu);
  trb_err rc = cf_add(s, table_id, h, out);
  pthread_mutex_unlock(&s->mu);
  if (rc) {
    rocksdb_column_family_handle_destroy(h);
    return trb_status_set(st, rc, "store: out of memory");
  }
  return TRB_OK;
}

trb_err trb_store_cf_drop(trb_store *s, uint64_t table_id, trb_status *st) {
  trb_store_cf *c = NULL;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->ncf; i++)
    if (s->cfs[i]->table_id == table_id) {
      c = s->cfs[i];
      s->cfs[i] = s->cfs[--s->ncf];
      break;
    }
  pthread_mutex_unlock(&s->mu);
  if (!c) return TRB_OK;
  if (s->cache) trb_item_cache_forget_table(s->cache, table_id);
  char *err = NULL;
  rocksdb_drop_column_family(s->db, c->h, &err);
  rocksdb_column_family_handle_destroy(c->h);
  free(c);
  if (err) return rerr(st, "drop column family", err);
  return TRB_OK;
}

void trb_store_cf_each(trb_store *s, void (*fn)(void *ctx, uint64_t table_id), void *ctx) {
  pthread_mutex_lock(&s->mu);
  size_t n = s->ncf;
  uint64_t *ids = malloc((n ? n : 1) * sizeof *ids);
  if (ids)
    for (size_t i = 0; i < n; i++) ids[i] = s->cfs[i]->table_id;
  pthread_mutex_unlock(&s->mu);
  if (!ids) return;
  for (size_t i = 0; i < n; i++) fn(ctx, ids[i]);
  free(ids);
}

static trb_err get_cf(trb_store *s, rocksdb_column_family_handle_t *h, const void *key,
                      size_t klen, char **val, size_t *vlen, trb_status *st) {
  char *err = NULL;
  size_t n = 0;
  char *v = rocksdb_get_cf(s->db, s->ropts, h, key, klen, &n, &err);
  if (err) return rerr(st, "get", err);
  *val = v;
  *vlen = v ? n : 0;
  return TRB_OK;
}

/* Only tables' items are cached: index families (ids with the high bit
 * set, store.h) are read through iterators, so their writes are not
 * noted either (touch). */
static int cached_cf(const trb_store_cf *cf) { return !(cf->table_id >> 63); }

static trb_err get_cached(trb_store *s, trb_store_cf *cf, const void *key, size_t klen,
                          char **val, size_t *vlen, int fill, trb_status *st) {
  if (!s->cache || !cached_cf(cf)) return get_cf(s, cf->h, key, klen, val, vlen, st);
  uint64_t ticket;
  int hit = trb_item_cache_get(s->cache, cf->table_id, key, klen, val, vlen, &ticket);
  if (hit > 0) return TRB_OK;
  if (hit < 0) return trb_status_set(st, TRB_ENOMEM, "store: out of memory");
  trb_err rc = get_cf(s, cf->h, key, klen, val, vlen, st);
  if (fill && !rc && *val)
    trb_item_cache_fill(s->cache, cf->table_id, key, klen, *val, *vlen, ticket);
  return rc;
}

trb_err trb_store_get(trb_store *s, trb_store_cf *cf, const void *key, size_t klen,
                      char **val, size_t *vlen, trb_status *st) {
  return get_cached(s, cf, key, klen, val, vlen, 1, st);
}

trb_err trb_store_get_for_write(trb_store *s, trb_store_cf *cf, const void *key, size_t klen,
                                char **val, size_t *vlen, trb_status *st) {
  return get_cached(s, cf, key, klen, val, vlen, 0, st);
}

void trb_store_set_item_cache(trb_store *s, size_t max_bytes) {
  trb_item_cache_destroy(s->cache);
  s->cache = trb_item_cache_create(max_bytes);
}

void trb_store_item_cache_stats(trb_store *s, trb_item_cache_stats *out) {
  trb_item_cache_get_stats(s->cache, out);
}

trb_err trb_store_meta_get(trb_store *s, const void *key, size_t klen, char **val,
                           size_t *vlen, trb_status *st) {
  return get_cf(s, s->def, key, klen, val, vlen, st);
}

trb_store_batch *trb_store_batch_create(void) {
  trb_store_batch *b = malloc(sizeof *b);
  if (!b) return NULL;
  b->wb = rocksdb_writebatch_create();
  trb_buf_init(&b->touched, 0);
  return b;
}

void trb_store_batch_destroy(trb_store_batch *b) {
  if (!b) return;
  rocksdb_writebatch_destroy(b->wb);
  trb_buf_fini(&b->touched);
  free(b);
}

void trb_store_batch_clear(trb_store_batch *b) {
  rocksdb_writebatch_clear(b->wb);
  trb_buf_reset(&b->touched);
}

/* Notes the key for the item cache. A note that cannot be taken (out of
 * memory) marks the list incomplete (len SIZE_MAX): the commit then treats
 * the batch as a write of every key. */
static void touch(trb_store_batch *b, trb_store_cf *cf, const void *k, size_t kl) {
  if (b->touched.len == SIZE_MAX || !cached_cf(cf)) return;
  unsigned char h[12];
  trb_put_u64(h, cf->table_id);
  trb_put_u32(h + 8, (uint32_t)kl);
  if (kl > UINT32_MAX || trb_buf_append(&b->touched, h, 12) ||
      trb_buf_append(&b->touched, k, kl))
    b->touched.len = SIZE_MAX;
}

void trb_store_batch_put(trb_store_batch *b, trb_store_cf *cf, const void *k, size_t kl,
                         const void *v, size_t vl) {
  rocksdb_writebatch_put_cf(b->wb, cf->h, k, kl, v, vl);
  touch(b, cf, k, kl);
}

void trb_store_batch_del(trb_store_batch *b, trb_store_cf *cf, const void *k, size_t kl) {
  rocksdb_writebatch_delete_cf(b->wb, cf->h, k, kl);
  touch(b, cf, k, kl);
}

/* Meta writes go to the default family, which the commit function passes. */
void trb_store_batch_meta_put(trb_store_batch *b, const void *k, size_t kl, const void *v,
                              size_t vl) {
  rocksdb_writebatch_put(b->wb, k, kl, v, vl);
}

void trb_store_batch_meta_del(trb_store_batch *b, const void *k, size_t kl) {
  rocksdb_writebatch_delete(b->wb, k, kl);
}

static void each_touched(trb_store *s, trb_store_batch *b,
                         void (*fn)(trb_item_cache *, uint64_t, const void *, size_t)) {
  if (b->touched.len == SIZE_MAX) { /* the list is incomplete: any key */
    fn(s->cache, 0, NULL, 0);
    return;
  }
  const unsigned char *p = b->touched.p, *end = p + b->touched.len;
  while (p + 12 <= end) {
    uint64_t id = trb_get_u64(p);
    uint32_t kl = trb_get_u32(p + 8);
    fn(s->cache, id, p + 12, kl);
    p += 12 + kl;
  }
}

trb_err trb_store_batch_commit(trb_store *s, trb_store_batch *b, uint64_t applied_lsn,
                               trb_status *st) {
  unsigned char v[8];
  trb_put_u64(v, applied_lsn);
  rocksdb_writebatch_put(b->wb, META_APPLIED, strlen(META_APPLIED), (const char *)v, 8);
  char *err = NULL;
  if (s->cache) each_touched(s, b, trb_item_cache_write_begin);
  rocksdb_write(s->db, s->wopts, b->wb, &err);
  if (s->cache) each_touched(s, b, trb_item_cache_write_end);
  if (err) return rerr(st, "write", err);
  __atomic_store_n(&s->applied_lsn, applied_lsn, __ATOMIC_RELEASE);
  return TRB_OK;
}

trb_err trb_store_iter_create(trb_store *s, trb_store_cf *cf, const void *lo, size_t lol,
                              const void *hi, size_t hil, trb_store_iter **out,
                              trb_status *st) {
  trb_store_iter *it = calloc(1, sizeof *it);
  if (!it) return trb_status_set(st, TRB_ENOMEM, "store: out of memory");
  it->db = s->db;
  it->def = s->def;
  it->ro = rocksdb_readoptions_create();
  it->snap = rocksdb_create_snapshot(s->db);
  rocksdb_readoptions_set_snapshot(it->ro, it->snap);
  if (lo && lol) {
    it->lo = malloc(lol);
    if (!it->lo) goto oom;
    memcpy(it->lo, lo, lol);
    rocksdb_readoptions_set_iterate_lower_bound(it->ro, it->lo, lol);
  }
  if (hi) {
    it->hi = malloc(hil ? hil : 1);
    if (!it->hi) goto oom;
    memcpy(it->hi, hi, hil);
    rocksdb_readoptions_set_iterate_upper_bound(it->ro, it->hi, hil);
  }
  it->it = rocksdb_create_iterator_cf(s->db, it->ro, cf ? cf->h : s->def);
  *out = it;
  return TRB_OK;
oom:
  trb_store_iter_destroy(it);
  return trb_status_set(st, TRB_ENOMEM, "store: out of memory");
}

void trb_store_iter_destroy(trb_store_iter *it) {
  if (!it) return;
  if (it->it) rocksdb_iter_destroy(it->it);
  if (it->snap) rocksdb_release_snapshot(it->db, it->snap);
  rocksdb_readoptions_destroy(it->ro);
  free(it->lo);
  free(it->hi);
  free(it);
}

trb_err trb_store_iter_applied_lsn(trb_store_iter *it, uint64_t *lsn, trb_status *st) {
  char *err = NULL;
  size_t n = 0;
  char *v = rocksdb_get_cf(it->db, it->ro, it->def, META_APPLIED, strlen(META_APPLIED), &n, &err);
  if (err) return rerr(st, "read at a snapshot", err);
  *lsn = v && n == 8 ? trb_get_u64((unsigned char *)v) : 0;
  rocksdb_free(v);
  return TRB_OK;
}

void trb_store_iter_first(trb_store_iter *it) { rocksdb_iter_seek_to_first(it->it); }
void trb_store_iter_last(trb_store_iter *it) { rocksdb_iter_seek_to_last(it->it); }
void trb_store_iter_seek(trb_store_iter *it, const void *k, size_t kl) {
  rocksdb_iter_seek(it->it, k, kl);
}
void trb_store_iter_seek_prev(trb_store_iter *it, const void *k, size_t kl) {
  rocksdb_iter_seek_for_prev(it->it, k, kl);
}
int trb_store_iter_valid(trb_store_iter *it) { return rocksdb_iter_valid(it->it); }
void trb_store_iter_next(trb_store_iter *it) { rocksdb_iter_next(it->it); }
void trb_store_iter_prev(trb_store_iter *it) { rocksdb_iter_prev(it->it); }
const char *trb_store_iter_key(trb_store_iter *it, size_t *len) {
  return rocksdb_iter_key(it->it, len);
}
const char *trb_store_iter_val(trb_store_iter *it, size_t *len) {
  return rocksdb_iter_value(it->it, len);
}
trb_err trb_store_iter_status(trb_store_iter *it, trb_status *st) {
  char *err = NULL;
  rocksdb_iter_get_error(it->it, &err);
  if (err) return rerr(st, "iterate", err);
  return TRB_OK;
}
