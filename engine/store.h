/*
 * store.h -- the RocksDB adapter: table state as a materialised view of the
 * WAL.
 *
 * Layout inside RocksDB (this file's module owns it):
 *   column family "default":
 *     "M:applied_lsn"          -> u64 LE: highest WAL LSN applied
 *     "T:" + table name        -> table definition (engine/tabledef.c format)
 *     "S:" + u64 BE table_id   -> table stats: u64 LE item count, u64 LE bytes
 *     "S:" + u64 BE index cf id -> index stats: u64 LE entry count, u64 LE bytes
 *   column family "t<16 hex digits of table_id>", one per table:
 *     store key (engine/keyenc.h) -> binary item encoding (engine/item_codec.c)
 *   column family "t<16 hex digits of an index cf id>", one per secondary
 *   index (ids have the high bit set; layout of entries in engine/index.h)
 *
 * RocksDB's own WAL is disabled and atomic flush is on: a batch written with
 * trb_store_batch_commit() carries its applied LSN in the same batch, so
 * whatever survives a crash is a consistent state at some LSN, and recovery
 * replays our WAL past it (ARCHITECTURE.md invariant 3).
 */
#ifndef TRB_STORE_H
#define TRB_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "util/trb_err.h"

typedef struct trb_store trb_store;
typedef struct trb_store_batch trb_store_batch;
typedef struct trb_store_iter trb_store_iter;
typedef struct trb_store_cf trb_store_cf; /* a table's column family */

/* Opens (creating) the RocksDB directory `dir` with every column family it
 * has. *out caller-owned. */
trb_err trb_store_open(const char *dir, trb_store **out, trb_status *st);
/* Flushes memtables (so the next open replays little) and closes. NULL ok. */
void trb_store_close(trb_store *s);
uint64_t trb_store_applied_lsn(const trb_store *s);

/* Flushes every column family's memtable to disk, the tables' and
 * indexes' first and the default family (with the applied LSN) last. Not
 * atomic across families: the caller must keep writes out meanwhile (the
 * engine runs it in the commit thread), so that when it returns every
 * family holds exactly the state at trb_store_applied_lsn, durably. */
trb_err trb_store_flush(trb_store *s, trb_status *st);

/* Bytes the SST files' table readers hold (RocksDB's
 * estimate-table-readers-mem over every family): their indexes and bloom
 * filters, which stay there, out of the block cache. */
uint64_t trb_store_table_readers_mem(trb_store *s);

/* Column families by table id. get returns a borrowed handle or NULL. */
trb_store_cf *trb_store_cf_get(trb_store *s, uint64_t table_id);
/* Creates the table's column family (or returns the existing one). */
trb_err trb_store_cf_create(trb_store *s, uint64_t table_id, trb_store_cf **out,
                            trb_status *st);
/* Drops and forgets it. The handle is invalid after. */
trb_err trb_store_cf_drop(trb_store *s, uint64_t table_id, trb_status *st);
/* Calls fn for each table column family present (for orphan cleanup). */
void trb_store_cf_each(trb_store *s, void (*fn)(void *ctx, uint64_t table_id), void *ctx);

/* Point reads. *val is malloc'ed (caller frees) or NULL when absent. */
trb_err trb_store_get(trb_store *s, trb_store_cf *cf, const void *key, size_t klen,
                      char **val, size_t *vlen, trb_status *st);
/* As trb_store_get, for a key about to be written (the commit thread's old
 * images): a cached item answers, but a miss does not fill the cache (the
 * write would drop the entry at once). */
trb_err trb_store_get_for_write(trb_store *s, trb_store_cf *cf, const void *key, size_t klen,
                                char **val, size_t *vlen, trb_status *st);
trb_err trb_store_meta_get(trb_store *s, const void *key, size_t klen, char **val,
                           size_t *vlen, trb_status *st);

/* trb_store_get answers from an item cache of max_bytes (engine/item_cache.h;
 * 0: none, the default), kept exact by every batch commit. Call before the
 * store is shared between threads. */
struct trb_item_cache_stats;
void trb_store_set_item_cache(trb_store *s, size_t max_bytes);
void trb_store_item_cache_stats(trb_store *s, struct trb_item_cache_stats *out);

/* Write batches: caller-owned; commit writes atomically with the applied LSN. */
trb_store_batch *trb_store_batch_create(void);
void trb_store_batch_destroy(trb_store_batch *b);
void trb_store_batch_clear(trb_store_batch *b);
void trb_store_batch_put(trb_store_batch *b, trb_store_cf *cf, const void *k, size_t kl,
                         const void *v, size_t vl);
void trb_store_batch_del(trb_store_batch *b, trb_store_cf *cf, const void *k, size_t kl);
void trb_store_batch_meta_put(trb_store_batch *b, const void *k, size_t kl, const void *v,
                              size_t vl);
void trb_store_batch_meta_del(trb_store_batch *b, const void *k, size_t kl);
trb_err trb_store_batch_commit(trb_store *s, trb_store_batch *b, uint64_t applied_lsn,
                               trb_status *st);

/* Iterators over one column family (cf NULL = the default/meta family),
 * bounded to [lo, hi) (hi NULL = unbounded). Each iterator reads a
 * consistent snapshot taken at creation. Caller-owned. */
trb_err trb_store_iter_create(trb_store *s, trb_store_cf *cf, const void *lo, size_t lol,
                              const void *hi, size_t hil, trb_store_iter **out,
                              trb_status *st);
void trb_store_iter_destroy(trb_store_iter *it);
/* The applied LSN as of the iterator's snapshot: its keys are the state
 * after exactly the WAL records up to *lsn. */
trb_err trb_store_iter_applied_lsn(trb_store_iter *it, uint64_t *lsn, trb_status *st);
void trb_store_iter_first(trb_store_iter *it);
void trb_store_iter_last(trb_store_iter *it);
/* Positions at the first key >= k (seek) or the last key <= k (seek_prev). */
void trb_store_iter_seek(trb_store_iter *it, const void *k, size_t kl);
void trb_store_iter_seek_prev(trb_store_iter *it, const void *k, size_t kl);
int trb_store_iter_valid(trb_store_iter *it);
void trb_store_iter_next(trb_store_iter *it);
void trb_store_iter_prev(trb_store_iter *it);
/* Borrowed views valid until the iterator moves. */
const char *trb_store_iter_key(trb_store_iter *it, size_t *len);
const char *trb_store_iter_val(trb_store_iter *it, size_t *len);
/* TRB_OK or the error that stopped the iteration. */
trb_err trb_store_iter_status(trb_store_iter *it, trb_status *st);

#endif
