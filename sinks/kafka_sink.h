/*
 * kafka_sink.h -- the Kafka sink: a topic per table, one message per
 * change, the item's key as the message key, the partition from the key's
 * hash (so one item's changes stay in one partition, in order, across shard
 * rollovers), headers naming the change, and a tombstone after each REMOVE
 * for compacted topics.
 *
 * Exactly once (the default): a transactional producer; every batch and the
 * sink's checkpoint (a message on the offsets topic, keyed by the
 * transactional id) commit in one Kafka transaction, and the checkpoint is
 * read back from there at start (after init_transactions has aborted
 * whatever a crashed run left open). A read_committed consumer sees every
 * change once. At least once (exactly_once off): an idempotent producer,
 * the checkpoint in a local file written after Kafka acknowledged the batch;
 * a crash between the two delivers the batch again.
 *
 * Avro framing: with a schema registry (schema_registry, see
 * sinks/schema_registry.h) keys and values are in Confluent's wire format,
 * with the ids the registry gave the key and value schemas under
 * "<topic>-key" and "<topic>-value" (TopicNameStrategy), registered at the
 * topic's first message and then cached; nothing goes to the schemas topic.
 * A registration that fails fails the delivery (TRB_EIO: the processor
 * retries it). Without a registry: single-object encoding, the schemas on
 * the schemas topic. The JSON format ignores the registry.
 */
#ifndef TRB_KAFKA_SINK_H
#define TRB_KAFKA_SINK_H

#include "sinks/sink.h"

typedef enum trb_kafka_format {
  TRB_KAFKA_AVRO = 0,       /* the envelope of schemas/tributary-envelope.avsc */
  TRB_KAFKA_JSON = 1,       /* the DynamoDB Streams record, as GetRecords returns it */
} trb_kafka_format;

/* The processor's largest batch for the Kafka sink (trb_tailer_opts
 * max_batch, set by serve): each batch is one transaction, and a commit
 * costs a flush and round trips, so a sink that is behind catches up in
 * larger ones (bench_kafka: +5-10% at 200 B, +12-17% at 1 KiB against
 * 1,000). At a steady rate the batches are what is there, a few hundred
 * at 20,000 writes/s, so latency does not change. */
#define TRB_KAFKA_SINK_BATCH 5000

typedef struct trb_kafka_sink_opts {
  const char *brokers;          /* bootstrap.servers */
  const char *topic_template;   /* "{region}.{table}" */
  const char *region;
  int exactly_once;             /* 1: transactions (default) */
  const char *transactional_id; /* exactly once: the producer's (and checkpoint's) id */
  const char *offsets_topic;    /* exactly once: where checkpoints go */
  const char *schemas_topic;    /* Avro without a registry: where the schemas go (by
                                   fingerprint) */
  const char *schema_registry;  /* Avro: a schema registry's base URL; NULL or "" = none
                                   (single-object framing) */
  const char *checkpoint_path;  /* at least once: the local checkpoint file */
  int tombstones;               /* a null-valued message after each REMOVE */
  trb_kafka_format format;
  const char *compression;      /* none | gzip | snappy | lz4 | zstd */
  int timeout_ms;               /* a transaction's commit; default 30000 */
  const char *tables_json;      /* kafka.tables: per table {"columns": {path: Avro type}}, the
                                   typed projection (Avro only; transform/avro_projection.h) */
  int stop_on_error;            /* a value that does not fit its column stops the sink; else
                                   the change goes with columns null, a tributary.error
                                   header, and a copy to the dead-letter topic */
  const char *dead_letter_topic; /* template, default "{region}.{table}.errors" */
  const trb_sink_source *source; /* borrowed; NULL: no snapshots (a table whose changes are
                                    not all in the WAL only gets what the WAL holds) */
} trb_kafka_sink_opts;

typedef struct trb_kafka_sink_stats {
  uint64_t snapshot_items;     /* snapshot reads Kafka took, in this process */
  uint64_t projection_errors;  /* changes whose projection failed (sent with columns null and
                                  to the dead-letter topic), counted when Kafka took them */
} trb_kafka_sink_stats;
/* For /metrics, from any thread. s must be a Kafka sink. */
void trb_kafka_sink_get_stats(trb_sink *s, trb_kafka_sink_stats *out);

/* Checks the options and creates the sink (the processor opens it: that
 * is where Kafka is first contacted). *out caller-owned (ops->destroy). */
trb_err trb_kafka_sink_create(const trb_kafka_sink_opts *o, trb_sink **out, trb_status *st);

#endif
