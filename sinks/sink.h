/*
 * sink.h -- the sink interface: where stream records go (files, Kafka,
 * PostgreSQL, another region).
 *
 * A sink gets batches from the processor (capture/tailer.h), never reads
 * the WAL or the store itself. Its checkpoint is one LSN, C: every stream
 * record with LSN <= C has been delivered, once. That single number is the
 * position of every shard at once (a shard's position is its last record
 * <= C), because the processor hands a sink the records of all shards in
 * LSN order. The checkpoint moves only together with what it covers
 * (ARCHITECTURE.md invariant 6): deliver() makes the batch and the new
 * checkpoint durable as one step, or neither.
 *
 * Threads: the processor calls one sink from one thread.
 */
#ifndef TRB_SINK_H
#define TRB_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "capture/wal.h"
#include "engine/keyenc.h"
#include "engine/value.h"
#include "transform/streams.h"
#include "util/trb_err.h"

typedef struct trb_sink_rec {
  const trb_wal_rec *wal;          /* the change as the WAL holds it (item kinds) */
  const trb_stream_info *stream;   /* its stream: table, label, view type, key schema */
  const char *shard_id;
  const char *record;              /* the DynamoDB Streams record as compact JSON text
                                      (trb_stream_record_text), record_len bytes, no NUL
                                      (borrowed); NULL unless the sink asked for it
                                      (wants_record) */
  size_t record_len;
} trb_sink_rec;

/* What a sink may know of the tables, and their snapshots, given by
 * whoever runs it (cli/cmd_serve.c, over the engine and the streams): sinks
 * never read the store themselves (ARCHITECTURE.md). The PostgreSQL sink
 * copies a table from a snapshot into its replica, the Kafka sink sends it
 * as snapshot reads (op "r"), when the table's changes are not all in the
 * WAL (a sink added late, a stream enabled on a table that had items). */
typedef struct trb_sink_source {
  void *ctx;
  /* The tables that exist: *names malloc'ed, each name malloc'ed. */
  trb_err (*tables)(void *ctx, char ***names, size_t *n, trb_status *st);
  /* 1 and the table's id (LSN of its creation), the LSN its stream started
   * at (0 = no stream), its item count and key schema; 0 when no such
   * table. */
  int (*describe)(void *ctx, const char *table, uint64_t *table_id, uint64_t *stream_lsn,
                  uint64_t *items, trb_keyschema *ks);
  /* The WAL's oldest LSN (what retention kept). */
  uint64_t (*wal_first_lsn)(void *ctx);
  /* Optional: the LSN the store has applied (describe and snapshots see
   * the state after it), which a sink may wait for to see what a WAL
   * record it has read did to the tables. */
  uint64_t (*applied_lsn)(void *ctx);
  /* engine.h's trb_snapshot_open / _next / _close. */
  trb_err (*snap_open)(void *ctx, const char *table, const void *after, size_t after_len,
                       void **snap, uint64_t *lsn, trb_status *st);
  trb_err (*snap_next)(void *snap, trb_av **item, const void **key, size_t *key_len,
                       trb_status *st);
  void (*snap_close)(void *snap);
  /* Optional (may be NULL): the view type and label of the table's
   * current stream, which started at stream_lsn (describe's), 1; 0 when it
   * has none, or the streams have not taken in its start yet. */
  int (*stream)(void *ctx, const char *table, uint64_t stream_lsn, trb_view *view,
                char label[32]);
  /* Optional: the shard of the stream of table table_id that a change
   * right after lsn of the item with key attributes keys (borrowed) would
   * be in, 1 with shard_id filled; 0 when unknown. */
  int (*locate)(void *ctx, uint64_t table_id, uint64_t lsn, const trb_av *keys,
                char shard_id[64]);
} trb_sink_source;

typedef struct trb_sink trb_sink;

typedef struct trb_sink_ops {
  const char *kind;                /* "file", ... (logs, metrics) */
  /* Reads the checkpoint: *checkpoint = C (0 = nothing delivered yet).
   * Undoes anything delivered past C by an earlier run that stopped before
   * its checkpoint (the processor delivers from C+1 again). */
  trb_err (*open)(trb_sink *s, uint64_t *checkpoint, trb_status *st);
  /* Delivers n records (n may be 0: a heartbeat that only moves the
   * checkpoint past records of no stream) and makes `through` the durable
   * checkpoint, atomically with them. On failure nothing of the batch
   * counts: the processor retries the same batch after the sink has undone
   * what it did (the sink's own job, e.g. truncating back). */
  trb_err (*deliver)(trb_sink *s, const trb_sink_rec *recs, size_t n, uint64_t through,
                     trb_status *st);
  void (*destroy)(trb_sink *s);
} trb_sink_ops;

/* Every sink starts with this header, the rest is its own. */
struct trb_sink {
  const trb_sink_ops *ops;
  int wants_record;                /* 1: the processor builds each change's Streams record
                                      (JSON text) for it; 0: it encodes the WAL record itself */
};

#endif
