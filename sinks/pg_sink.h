/*
 * pg_sink.h -- the PostgreSQL (Aurora-like) sink: per source table a
 * replica table (upserts and deletes: it mirrors the source) and/or a
 * history table (one appended row per change), exactly once: every batch
 * commits in one PostgreSQL transaction with the sink's checkpoint rows,
 * and the checkpoint is read back from there at start. Tables whose
 * changes are not all in the WAL any more (a sink added late, a table
 * added to the config, a stream enabled after the table had items) are
 * first copied from a consistent snapshot, resumably. Layouts and recipes
 * in pg_sink.c.
 */
#ifndef TRB_PG_SINK_H
#define TRB_PG_SINK_H

#include "engine/keyenc.h"
#include "sinks/sink.h"

/* What the sink needs to know of the tables, and their snapshots, given by
 * whoever runs it (cli/cmd_serve.c, over the engine): sinks never read the
 * store themselves (ARCHITECTURE.md). */
typedef struct trb_pg_source {
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
  /* engine.h's trb_snapshot_open / _next / _close. */
  trb_err (*snap_open)(void *ctx, const char *table, const void *after, size_t after_len,
                       void **snap, uint64_t *lsn, trb_status *st);
  trb_err (*snap_next)(void *snap, trb_av **item, const void **key, size_t *key_len,
                       trb_status *st);
  void (*snap_close)(void *snap);
} trb_pg_source;

#define TRB_PG_REPLICA 1
#define TRB_PG_HISTORY 2

typedef struct trb_pg_sink_opts {
  const char *conninfo;        /* libpq connection string */
  const char *sink_name;       /* key of the checkpoint rows */
  const char *schema;          /* destination schema by default ("public") */
  const char *control_schema;  /* checkpoints, tables, dead_letters ("tributary") */
  int mode;                    /* TRB_PG_REPLICA and/or TRB_PG_HISTORY, by default */
  int json_typed;              /* item columns in DynamoDB's typed form */
  int stop_on_error;           /* a rejected change stops the sink (else: dead letter) */
  int all_tables;              /* every table with a stream, not only the listed ones */
  const char *tables_json;     /* postgres.tables, as the config keeps it (JSON text) */
  const trb_pg_source *source; /* borrowed; NULL: no snapshots (a late joiner is an error) */
} trb_pg_sink_opts;

/* Checks the options and creates the sink (PostgreSQL is first contacted
 * when the processor opens it). *out caller-owned (ops->destroy). */
trb_err trb_pg_sink_create(const trb_pg_sink_opts *o, trb_sink **out, trb_status *st);

typedef struct trb_pg_sink_stats {
  uint64_t rows_applied;       /* replica rows written (after collapsing) */
  uint64_t history_rows;
  uint64_t dead_letters;
  uint64_t reconnects;
  uint64_t snapshot_items;     /* copied by snapshots in this process */
  int connected;
} trb_pg_sink_stats;
/* For /metrics: safe from any thread. s must be a PostgreSQL sink. */
void trb_pg_sink_get_stats(trb_sink *s, trb_pg_sink_stats *out);

#endif
