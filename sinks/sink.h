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
