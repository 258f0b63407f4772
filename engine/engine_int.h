/*
 * engine_int.h -- internals shared by the engine's files: the engine struct,
 * the in-memory catalog and the commit queue. Not part of the API.
 */
#ifndef TRB_ENGINE_INT_H
#define TRB_ENGINE_INT_H

#include <pthread.h>
#include <semaphore.h>

#include "engine/engine.h"
#include "engine/store.h"

typedef struct trb_table {
  trb_tabledef def;
  trb_store_cf *cf;
  /* Written by the commit thread (and recovery) only; read under cat_lock. */
  uint64_t item_count;
  uint64_t size_bytes;
  /* Per index, in def.ix order: its column family and counters (entries,
   * bytes of projected items), kept like the table's. */
  trb_store_cf *ix_cf[TRB_INDEX_MAX];
  uint64_t ix_count[TRB_INDEX_MAX];
  uint64_t ix_bytes[TRB_INDEX_MAX];
  /* Commit thread only: index counter changes staged in the current group. */
  int64_t ix_pend_count[TRB_INDEX_MAX];
  int64_t ix_pend_bytes[TRB_INDEX_MAX];
} trb_table;

typedef enum trb_req_kind {
  TRB_REQ_WRITE = 1,
  TRB_REQ_TABLE_CREATE = 2,
  TRB_REQ_TABLE_DELETE = 3,
  TRB_REQ_TABLE_UPDATE = 4,
  TRB_REQ_FLUSH = 5,         /* make the store durable (retention) */
} trb_req_kind;

/* One caller's request, on the caller's stack while it waits. */
typedef struct trb_req {
  trb_req_kind kind;
  trb_write *w;              /* TRB_REQ_WRITE */
  size_t n;
  int atomic;
  const char *name;          /* table ops */
  const trb_keyschema *ks;
  json_t *ext;               /* table create/update: borrowed */
  const trb_indexset *ix;    /* table create/update with set_ix: borrowed */
  int set_ix;
  const trb_tabledef *base;  /* table update: the definition it was made from, or NULL */
  uint64_t flushed_lsn;      /* TRB_REQ_FLUSH: out */
  trb_table_info *info;      /* table ops: out */
  trb_err rc;
  trb_status *st;
  sem_t done;                /* posted when answered (synchronous requests) */
  /* Asynchronous requests (trb_engine_write_async): heap-allocated; the
   * commit thread calls done_cb instead of posting, then frees them. */
  void (*done_cb)(void *ctx);
  void *done_ctx;
  trb_status gst;
  struct trb_req *wake[2];   /* requests this one wakes once it is woken */
  struct trb_req *next;
} trb_req;

struct trb_engine {
  trb_engine_opts opts;
  char *data_dir;
  int lock_fd;               /* flock on <data_dir>/LOCK: one process per directory */
  trb_wal *wal;
  trb_store *store;

  /* The catalog: readers and the commit thread hold it shared; creating or
   * deleting a table holds it exclusively. */
  pthread_rwlock_t cat_lock;
  trb_table **tables;        /* sorted by name */
  size_t ntables, captables;

  /* The commit queue. */
  pthread_mutex_t qmu;
  pthread_cond_t qcv;
  trb_req *qhead, *qtail;
  size_t qlen;               /* requests in the queue */
  size_t qwant;              /* the commit thread waits for this many (its delay); 0: not */
  int stopping;
  int started;
  pthread_t committer;
  trb_err failed;            /* sticky; read without lock is a hint only */
  char failed_msg[400];      /* what failed first, under qmu (set with failed) */

  /* Counters (commit thread writes, others read: relaxed atomics). */
  uint64_t n_groups, n_writes, n_records;
};

/* Catalog, caller holds cat_lock (shared is enough for find). */
trb_table *trb__table_find(trb_engine *e, const char *name);
/* The same; NULL with DynamoDB's not-found in st (TRB_ENOTFOUND) when absent. */
trb_table *trb__table_get(trb_engine *e, const char *name, trb_status *st);
trb_err trb__table_add(trb_engine *e, const trb_tabledef *def, trb_status *st);
void trb__table_remove(trb_engine *e, const char *name);
void trb__table_info(const trb_table *t, trb_table_info *info);
/* Apply catalog records to the store and the in-memory catalog (caller
 * holds cat_lock exclusively, or is recovery). */
trb_err trb__apply_table_create(trb_engine *e, const trb_tabledef *def, uint64_t lsn,
                                trb_status *st);
trb_err trb__apply_table_delete(trb_engine *e, const char *name, uint64_t lsn, trb_status *st);
trb_err trb__apply_table_update(trb_engine *e, const trb_tabledef *def, uint64_t lsn,
                                trb_status *st);

/* Store-layout keys for catalog and stats entries (in store.h's layout). */
void trb__catalog_key(const char *name, trb_buf *b);
void trb__stats_key(uint64_t table_id, unsigned char out[10]);
void trb__stats_val(const trb_table *t, unsigned char out[16]);

/* Index maintenance (index_apply.c). Stages into b the index entries that
 * change when an item of t goes from old to nw (either NULL = absent), and
 * adds the index counter changes to dcount/dbytes (t->def.ix->n entries)
 * and, when kb is not NULL, the entry writes in 1 KB units to kb.
 * scratch is a work buffer. */
trb_err trb__index_stage(trb_store_batch *b, const trb_table *t, const trb_av *old,
                         const trb_av *nw, int64_t *dcount, int64_t *dbytes, uint32_t *kb,
                         trb_buf *scratch);
/* Opens (creating) the column families of t's indexes and loads their
 * counters from the store. */
trb_err trb__index_open(trb_engine *e, trb_table *t, trb_status *st);
/* Fills a new index's column family from the table's items (UpdateTable
 * creating a GSI), in one store batch with the catalog change. */
trb_err trb__index_backfill(trb_engine *e, trb_table *t, size_t i, trb_store_batch *b,
                            trb_status *st);
/* A stats value (store.h layout): entry count and bytes. */
void trb__counts_val(uint64_t count, uint64_t bytes, unsigned char out[16]);

/* Commit thread (commit.c). */
void *trb__commit_main(void *arg);
/* Queue a request and wait for its answer. */
trb_err trb__submit(trb_engine *e, trb_req *r);
/* Queue a heap request with done_cb set; no wait. TRB_ECLOSED (not
 * queued) when the engine is closing. */
trb_err trb__submit_async(trb_engine *e, trb_req *r);

#endif
