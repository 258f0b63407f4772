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
  const trb_sink_source *source; /* borrowed; NULL: no snapshots (a late joiner is an error) */
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
