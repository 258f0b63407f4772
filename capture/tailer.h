/*
 * tailer.h -- the processor's delivery side: one thread per sink reads the
 * WAL from just after the sink's checkpoint as it grows, turns the records
 * of tables with a stream into stream records (transform/), and hands them
 * to the sink in LSN-ordered batches (sinks/sink.h).
 *
 * Each sink has its own WAL reader, so the WAL itself is the queue between
 * the commit thread and every sink: a slow or failing sink holds back only
 * itself, and memory does not grow with its lag (the disk does, which
 * retention watches).
 *
 * Batches: as many records as are available, up to max_batch, delivered
 * as soon as the WAL has nothing more right now (so latency stays low at
 * low rates and batches grow with the rate). Heartbeats: when a sink has
 * only skipped records (tables without streams, catalog records) its
 * checkpoint still moves, every heartbeat_ms, so an idle stream never pins
 * the WAL. A failed delivery is retried with backoff (100 ms doubling to
 * 5 s), the same batch, never skipped.
 */
#ifndef TRB_TAILER_H
#define TRB_TAILER_H

#include <stdint.h>

#include "capture/wal.h"
#include "sinks/sink.h"
#include "transform/streams.h"

typedef struct trb_tailer trb_tailer;

typedef struct trb_tailer_opts {
  trb_wal *wal;             /* borrowed */
  trb_streams *streams;     /* borrowed: where each record goes */
  const char *region;       /* awsRegion of the records */
  size_t max_batch;         /* default 1000 */
  int heartbeat_ms;         /* default 1000 */
  unsigned priority_boost;  /* nice levels above the caller's threads (util/thread.h) */
} trb_tailer_opts;

/* Starts the sink's thread, which opens the sink (reading its checkpoint;
 * retried with backoff while it fails, except for errors that cannot pass:
 * TRB_EFAILED, TRB_ECONFIG, TRB_EVERSION, TRB_ECORRUPT mark it broken).
 * Takes ownership of sink (destroyed by trb_tailer_stop, or here on
 * failure). *out caller-owned. A deliver() that returns TRB_EFAILED marks
 * the sink broken too (a fenced or unauthorized Kafka producer). */
trb_err trb_tailer_start(const trb_tailer_opts *o, trb_sink *sink, trb_tailer **out,
                         trb_status *st);
/* Delivers what is pending (one attempt), stops the thread, destroys the
 * sink. NULL ok. */
void trb_tailer_stop(trb_tailer *t);

typedef struct trb_tailer_stats {
  const char *kind;         /* the sink's kind */
  uint64_t checkpoint;      /* durable checkpoint LSN */
  uint64_t read_lsn;        /* last LSN read from the WAL */
  uint64_t records;         /* records delivered by this process */
  uint64_t batches;
  uint64_t failures;        /* failed deliveries (each retried) */
  int failing;              /* the last delivery failed */
  int broken;               /* stopped for good (see the log) */
  int opened;               /* the sink is open (its checkpoint is known) */
  int64_t delivering_since_us; /* when the delivery in progress began (trb_now_us); 0: none */
} trb_tailer_stats;
void trb_tailer_get_stats(trb_tailer *t, trb_tailer_stats *out);
/* Marks the sink broken (retention's lag cap): it stops delivering and no
 * longer holds the WAL; its checkpoint file stays as it was. */
void trb_tailer_break(trb_tailer *t);

#endif
