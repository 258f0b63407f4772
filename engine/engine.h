/*
 * engine.h -- tributary's C API: tables and items with DynamoDB's data model,
 * every acknowledged write durable in the WAL before the call returns.
 *
 * Threads: any number of threads may call any function concurrently. Writes
 * are queued to one commit thread that evaluates conditions in order (a write
 * sees the writes ahead of it), appends the group to the WAL, makes it
 * durable with one fdatasync, applies it to the store in one batch, and then
 * answers every writer of the group (ARCHITECTURE.md "Threads").
 * Reads go to the store directly and see every acknowledged write.
 *
 * Values are borrowed for the duration of a call unless a prototype says the
 * caller receives ownership (`**out` results: the caller destroys them).
 */
#ifndef TRB_ENGINE_H
#define TRB_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "capture/wal.h"
#include "engine/item_cache.h"
#include "engine/keyenc.h"
#include "engine/tabledef.h"
#include "engine/value.h"
#include "util/trb_err.h"

typedef struct trb_engine trb_engine;

typedef struct trb_engine_opts {
  const char *data_dir;           /* holds wal/ and store/; created if missing */
  trb_wal_sync_mode sync_mode;    /* default TRB_WAL_SYNC_ALWAYS */
  uint32_t sync_interval_ms;      /* default 10 */
  uint64_t segment_size;          /* WAL segment bytes, default 64 MiB */
  size_t max_group;               /* most writes per commit group, default 1024 */
  uint32_t commit_delay_us;       /* when the last group held >= 2 requests, wait up to this
                                     long for 1.5x as many to queue before the next group (fewer,
                                     bigger syncs under load); default 0 = never (see
                                     commit.c for what it measured) */
  size_t item_cache_bytes;        /* the store's item cache (engine/item_cache.h),
                                     default 64 MiB; 0 = none */
} trb_engine_opts;

void trb_engine_opts_default(trb_engine_opts *o);
/* Opens the data directory, recovers the WAL (torn tail truncated,
 * corruption refused with its location), replays it into the store past the
 * store's applied LSN, and starts the commit thread. *out caller-owned. */
trb_err trb_engine_open(const trb_engine_opts *o, trb_engine **out, trb_status *st);
/* Answers queued writes, stops the commit thread, syncs, closes. NULL ok. */
void trb_engine_close(trb_engine *e);
/* The WAL, for readers (the stream processor, `wal dump`). Borrowed. */
trb_wal *trb_engine_wal(trb_engine *e);
/* TRB_OK, or the sticky error that stopped writes (a failed WAL write or
 * fsync: the engine must be reopened). */
trb_err trb_engine_failed(trb_engine *e);

/* ---- tables ---- */
typedef struct trb_table_info {
  trb_tabledef def;
  uint64_t item_count;   /* exact, maintained with every write */
  uint64_t size_bytes;   /* sum of DynamoDB item sizes */
  uint64_t ix_count[TRB_INDEX_MAX]; /* per index (def.ix order): entries */
  uint64_t ix_bytes[TRB_INDEX_MAX]; /* per index: sizes of the projected items */
} trb_table_info;

/* Releases what an info holds (its definition's ext). */
void trb_table_info_fini(trb_table_info *info);

/* TRB_EEXISTS ("Table already exists: NAME"), TRB_EINVAL for a bad name or
 * key schema. ext (may be NULL) is stored with the definition (a new
 * reference is taken). info (may be NULL) must be released with
 * trb_table_info_fini. */
trb_err trb_table_create(trb_engine *e, const char *name, const trb_keyschema *ks,
                         json_t *ext, trb_table_info *info, trb_status *st);
/* As trb_table_create, with secondary indexes (ix may be NULL; borrowed:
 * the engine keeps its own copy, with column family ids assigned). */
trb_err trb_table_create_ix(trb_engine *e, const char *name, const trb_keyschema *ks,
                            const trb_indexset *ix, json_t *ext, trb_table_info *info,
                            trb_status *st);
/* Replaces the table's index set and ext in one TABLE_UPDATE record.
 * Indexes of ix whose cf_id is 0 are new: they are built from the table's
 * items (in the commit thread, so no write is missed) before the call
 * returns; indexes of the table missing from ix are dropped. Borrowed.
 * base (may be NULL) is the definition the change was computed from (as
 * trb_table_describe gave it): if the table changed since, nothing is done
 * and the answer is TRB_EINUSE, so two concurrent updates cannot undo each
 * other's index changes. */
trb_err trb_table_update_ix(trb_engine *e, const char *name, const trb_tabledef *base,
                            const trb_indexset *ix, json_t *ext, trb_table_info *info,
                            trb_status *st);
/* Replaces the table's ext (a TABLE_UPDATE record in the WAL). */
trb_err trb_table_update(trb_engine *e, const char *name, json_t *ext, trb_table_info *info,
                         trb_status *st);
/* TRB_ENOTFOUND ("Requested resource not found: Table: NAME not found").
 * info must be released with trb_table_info_fini. */
trb_err trb_table_describe(trb_engine *e, const char *name, trb_table_info *info,
                           trb_status *st);
/* Deletes the table and all its items. info (may be NULL) gets the table as
 * it was. */
trb_err trb_table_delete(trb_engine *e, const char *name, trb_table_info *info,
                         trb_status *st);
/* Table names in ascending order, starting after exclusive_start (NULL = from
 * the beginning), at most limit (0 = all). *names is a malloc'ed array of
 * malloc'ed strings (free with trb_table_list_free); *last is the last name
 * returned when more remain, else NULL (caller frees). */
trb_err trb_table_list(trb_engine *e, const char *exclusive_start, size_t limit,
                       char ***names, size_t *n, char **last, trb_status *st);
void trb_table_list_free(char **names, size_t n);

/* ---- writes ---- */

/*
 * A condition evaluated by the commit thread against the item as it is at
 * that point of the commit order (NULL when absent). Sets *pass. An error
 * (e.g. a type error in an expression) fails the write with that error.
 */
typedef trb_err (*trb_cond_fn)(void *ctx, const trb_av *item, int *pass, trb_status *st);
/*
 * An update evaluated by the commit thread: given the key and the current
 * item (NULL when absent), produce the new item (caller of the callback, i.e.
 * the engine, owns *new_item; NULL deletes the item). The new item must keep
 * the key attributes unchanged; the engine checks and fails the write
 * otherwise.
 */
typedef trb_err (*trb_update_fn)(void *ctx, const trb_av *key, const trb_av *item,
                                 trb_av **new_item, trb_status *st);

typedef enum trb_write_kind {
  TRB_W_PUT = 1,     /* item replaces whatever has its key */
  TRB_W_DELETE = 2,  /* key */
  TRB_W_UPDATE = 3,  /* key + update callback (upsert) */
  TRB_W_CHECK = 4,   /* key + condition only (transactions) */
} trb_write_kind;

typedef struct trb_write {
  /* in */
  trb_write_kind kind;
  const char *table;
  const trb_av *item;            /* PUT */
  const trb_av *key;             /* DELETE, UPDATE, CHECK */
  trb_cond_fn cond;              /* optional */
  void *cond_ctx;
  trb_update_fn update;          /* UPDATE */
  void *update_ctx;
  int want_old;                  /* return the item as it was (if any) */
  int want_new;                  /* return the item as it is after (if any) */
  int old_on_cond_fail;          /* on TRB_ECONDFAIL, return the current item in old */
  int ttl;                       /* DELETE made by Time to Live (engine/ttl.h): its
                                    REMOVE record carries TRB_WAL_F_TTL */
  /* out: valid after trb_engine_write returns */
  trb_err rc;                    /* this write's result */
  trb_status st;                 /* this write's message */
  trb_av *old_item;              /* caller-owned when set */
  trb_av *new_item;              /* caller-owned when set */
  uint64_t lsn;                  /* LSN of its change record; 0 when nothing changed */
  uint32_t ix_kb[TRB_INDEX_MAX]; /* per index of the table (its def.ix order): entry
                                    writes in 1 KB units, each delete or put rounded up
                                    on its own (what DynamoDB charges an index) */
  int evaluated;                 /* 1 when the commit thread evaluated it */
  /* private to the engine */
  struct {
    trb_buf skey;                /* store key */
    trb_buf keys;                /* encoded key attributes (for the WAL) */
    trb_buf enc;                 /* encoded new item (PUT) */
    uint64_t table_id;           /* table as validated */
    trb_keyschema ks;            /* copy: the table may go away */
    int queued;                  /* passed validation, sent to the committer */
  } priv;
} trb_write;

/* Flags of trb_engine_write. */
#define TRB_WRITE_ATOMIC 1u   /* all or none (a transaction) */
#define TRB_WRITE_ALL_VALID 2u /* if any write fails validation (or two writes
                                  address one item), queue none: BatchWriteItem */

/*
 * Commits n writes. Without TRB_WRITE_ATOMIC each write succeeds or fails on
 * its own (w[i].rc); the return value is TRB_OK unless the whole call failed
 * (the engine is failed or closing, or TRB_WRITE_ALL_VALID rejected it). With
 * TRB_WRITE_ATOMIC all or none are applied: their records get consecutive
 * LSNs and one transaction id, a TXN_COMMIT record ends them, and if any
 * write fails none is applied (the call returns that write's rc; every
 * w[i].rc says TRB_OK or why it failed, and w[i].evaluated says whether the
 * commit thread got to evaluate it or it was refused by validation first).
 * Validation of keys and items happens before anything is queued; a write
 * rejected there never reaches the WAL.
 */
trb_err trb_engine_write(trb_engine *e, trb_write *w, size_t n, unsigned flags,
                         trb_status *st);
/*
 * One write (not a transaction) without waiting: returns 1 when it was
 * queued, and then done(ctx) is called once it is answered (w->rc, w->st,
 * the returned images are set) -- on the commit thread, so done must be
 * quick (wake whoever waits) and w must stay alive until then. Returns 0
 * when it was answered at once (refused by validation: w->rc says why);
 * done is not called then. The HTTP API uses it so a worker thread does
 * not wait out a group commit.
 */
int trb_engine_write_async(trb_engine *e, trb_write *w, void (*done)(void *ctx), void *ctx);

/* Frees the outputs of a write (old_item, new_item) and its private buffers. */
void trb_write_fini(trb_write *w);

/* ---- simple conditions and updates (the expression language of the HTTP
 * API plugs into the same callbacks) ---- */
typedef enum trb_cond_op {
  TRB_COND_EXISTS = 1,      /* attribute_exists(attr) */
  TRB_COND_NOT_EXISTS = 2,  /* attribute_not_exists(attr) */
  TRB_COND_EQ = 3,          /* attr = value (false when absent) */
  TRB_COND_NE = 4,          /* attr <> value (true when absent) */
} trb_cond_op;
typedef struct trb_cond_clause {
  trb_cond_op op;
  const char *attr;          /* top-level attribute name */
  const trb_av *value;       /* for EQ / NE */
} trb_cond_clause;
typedef struct trb_cond {     /* all clauses must hold (AND) */
  const trb_cond_clause *clauses;
  size_t n;
} trb_cond;
/* A trb_cond_fn over a `const trb_cond *` ctx. */
trb_err trb_cond_eval(void *ctx, const trb_av *item, int *pass, trb_status *st);

typedef struct trb_update_action {
  int remove;                /* 1: REMOVE attr; 0: SET attr = value */
  const char *attr;          /* top-level attribute name */
  const trb_av *value;       /* for SET */
} trb_update_action;
typedef struct trb_update {
  const trb_update_action *acts;
  size_t n;
} trb_update;
/* A trb_update_fn over a `const trb_update *` ctx. */
trb_err trb_update_apply(void *ctx, const trb_av *key, const trb_av *item,
                         trb_av **new_item, trb_status *st);

/* ---- single-item operations ---- */
typedef enum trb_retval {
  TRB_RV_NONE = 0,
  TRB_RV_ALL_OLD,
  TRB_RV_UPDATED_OLD,
  TRB_RV_ALL_NEW,
  TRB_RV_UPDATED_NEW,
} trb_retval;

/* PutItem. cond may be NULL. With rv ALL_OLD, *attrs gets the replaced item
 * (NULL if none). TRB_ECONDFAIL when the condition fails (nothing written). */
trb_err trb_put_item(trb_engine *e, const char *table, const trb_av *item,
                     const trb_cond *cond, trb_retval rv, trb_av **attrs, trb_status *st);
/* GetItem, strongly consistent. *item NULL when absent. */
trb_err trb_get_item(trb_engine *e, const char *table, const trb_av *key, trb_av **item,
                     trb_status *st);
/* DeleteItem. Deleting a missing item is not an error. */
trb_err trb_delete_item(trb_engine *e, const char *table, const trb_av *key,
                        const trb_cond *cond, trb_retval rv, trb_av **attrs, trb_status *st);
/* UpdateItem with SET/REMOVE of top-level attributes; all ReturnValues.
 * UPDATED_* return the attributes the update names. */
trb_err trb_update_item(trb_engine *e, const char *table, const trb_av *key,
                        const trb_update *upd, const trb_cond *cond, trb_retval rv,
                        trb_av **attrs, trb_status *st);

/* ---- reads over many items ---- */
typedef enum trb_sk_op {
  TRB_SK_NONE = 0, TRB_SK_EQ, TRB_SK_LT, TRB_SK_LE, TRB_SK_GT, TRB_SK_GE,
  TRB_SK_BETWEEN, TRB_SK_BEGINS_WITH,
} trb_sk_op;

#define TRB_PAGE_MAX_BYTES (1024 * 1024) /* DynamoDB's 1 MB page */

typedef struct trb_query_req {
  const char *table;
  const char *index;             /* NULL: the table; else a secondary index's name (pk and
                                    sk are then the index's keys) */
  int fetch_table;               /* index reads: return the table's whole items, not the
                                    projections (Select ALL_ATTRIBUTES on an LSI) */
  const trb_av *pk;              /* partition key value */
  trb_sk_op sk_op;
  const trb_av *sk1, *sk2;       /* operands (sk2 for BETWEEN) */
  int backward;                  /* ScanIndexForward = false */
  size_t limit;                  /* items evaluated; 0 = no limit */
  const trb_av *exclusive_start_key; /* a LastEvaluatedKey, or NULL */
  size_t max_bytes;              /* 0 = TRB_PAGE_MAX_BYTES */
} trb_query_req;

typedef struct trb_scan_req {
  const char *table;
  const char *index;             /* as in trb_query_req */
  int fetch_table;
  size_t limit;
  const trb_av *exclusive_start_key;
  uint32_t segment, total_segments; /* total 0 or 1 = the whole table */
  size_t max_bytes;
} trb_scan_req;

/* A page of results: items in order (caller-owned, free with trb_page_fini),
 * last_key set when reading stopped early (more may remain): the table's
 * key attributes, and for an index read the index's too. */
typedef struct trb_page {
  trb_av **items;
  size_t n, cap;
  trb_av *last_key;
  size_t scanned;                /* items evaluated */
} trb_page;

trb_err trb_query(trb_engine *e, const trb_query_req *q, trb_page *out, trb_status *st);
trb_err trb_scan(trb_engine *e, const trb_scan_req *s, trb_page *out, trb_status *st);
void trb_page_fini(trb_page *p);

/* ---- snapshots: one table's items as of one LSN (late-joining sinks) ---- */
typedef struct trb_snapshot trb_snapshot;
/* Opens a consistent read of table's items: exactly the state after the
 * WAL records up to *lsn. Items come in store-key order, starting after
 * the store key `after` (after_len bytes; NULL/0 = from the first), so a
 * copy that stopped can go on from the last key it took, in a new
 * snapshot. *out caller-owned (trb_snapshot_close). TRB_ENOTFOUND when
 * there is no such table. */
trb_err trb_snapshot_open(trb_engine *e, const char *table, const void *after, size_t after_len,
                          trb_snapshot **out, uint64_t *lsn, trb_status *st);
/* The next item (*item caller-owned) and its store key (*key borrowed
 * until the next call); *item NULL at the end. TRB_ENOTFOUND when the table
 * was deleted meanwhile. */
trb_err trb_snapshot_next(trb_snapshot *s, trb_av **item, const void **key, size_t *key_len,
                          trb_status *st);
void trb_snapshot_close(trb_snapshot *s); /* NULL ok */
/* What a late-joining sink needs to know of a table before it copies it:
 * 1 and the table's id (the LSN of its creation), the LSN its current
 * stream started at (0 = no stream on), its item count and key schema;
 * 0 when there is no such table. */
int trb_table_stream_facts(trb_engine *e, const char *table, uint64_t *table_id,
                           uint64_t *stream_lsn, uint64_t *items, trb_keyschema *ks);

/* The bytes (store keys and values) of the item collection of partition
 * key value pk: the table's items with that partition key and their local
 * secondary index entries, as ReturnItemCollectionMetrics estimates it.
 * pk borrowed. TRB_ENOTFOUND when there is no such table. */
trb_err trb_item_collection_bytes(trb_engine *e, const char *table, const trb_av *pk,
                                  uint64_t *bytes, trb_status *st);

/* The LSN the store has applied (readers see the state after it). Any
 * thread. */
uint64_t trb_engine_applied_lsn(trb_engine *e);

/* Makes the store durable up to the LSN it has applied, which *lsn gets:
 * the WAL before it is no longer needed for recovery (retention may remove
 * it). Writes wait while it runs (a flush of the memtables). */
trb_err trb_engine_flush(trb_engine *e, uint64_t *lsn, trb_status *st);

/* ---- statistics, for metrics and benchmarks ---- */
typedef struct trb_engine_stats {
  uint64_t groups;        /* commit groups */
  uint64_t writes;        /* writes answered */
  uint64_t records;       /* change records appended */
  trb_wal_stats wal;
  trb_item_cache_stats cache; /* the store's item cache; all 0 without one */
} trb_engine_stats;
void trb_engine_get_stats(trb_engine *e, trb_engine_stats *out);

#endif
