/*
 * cmd_serve.c -- `tributary serve`: the DynamoDB-compatible HTTP server
 * over the embedded engine. Stops cleanly on SIGTERM/SIGINT: the HTTP
 * server finishes the requests in flight (their writes are answered), then
 * the engine syncs and closes its WAL.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/dynamo.h"
#include "api/http.h"
#include "api/stream_iter.h"
#include "capture/retention.h"
#include "engine/ttl.h"
#include "capture/tailer.h"
#include "sinks/file_sink.h"
#include "sinks/kafka_mock.h"
#include "sinks/kafka_sink.h"
#include "sinks/pg_sink.h"
#include <openssl/sha.h>
#include "transform/streams.h"
#include "cli/cli.h"
#include "util/clock.h"
#include "util/log.h"

static const char *serve_help =
    "usage: tributary serve [--listen HOST:PORT] [--threads N] [--data-dir DIR]\n"
    "                       [--config FILE]\n"
    "\n"
    "Serves the DynamoDB API and the DynamoDB Streams API over HTTP on HOST:PORT\n"
    "(default 127.0.0.1:8000, as DynamoDB Local; port 0 picks a free port). Point any\n"
    "AWS SDK or the AWS CLI at it:\n"
    "  aws dynamodb list-tables --endpoint-url http://127.0.0.1:8000\n"
    "With api.access_key_id and api.secret_access_key in the config file every\n"
    "request's SigV4 signature is verified; without them any signature is accepted\n"
    "and the server refuses to listen on anything but loopback.\n"
    "--data-dir and --config are the global options (see `tributary --help`).\n"
    "Stops on SIGTERM or SIGINT after answering the requests in flight.\n";

static int is_loopback(const char *listen) {
  return !strncmp(listen, "127.", 4) || !strncmp(listen, "localhost:", 10) ||
         !strncmp(listen, "[::1]:", 6);
}

/* Everything `serve` runs, started in order and stopped in reverse. */
typedef struct serve_ctx {
  trb_engine *e;
  trb_iter_key *ikey;
  trb_streams *streams;
  trb_tailer *tailers[4];
  size_t ntailers;
  trb_retention *ret;
  trb_ttl *ttl;
  trb_kafka_mock *kmock;
  trb_sink *pg;             /* the PostgreSQL sink (owned by its tailer), for metrics */
  trb_sink *kafka;          /* the Kafka sink, likewise */
  trb_sink_source src;      /* the tables and their snapshots, for the sinks */
  trb_api *api;
  trb_http_server *srv;
} serve_ctx;

static trb_err flush_engine(void *ctx, uint64_t *lsn, trb_status *st) {
  return trb_engine_flush(ctx, lsn, st);
}

/* GET /metrics: Prometheus text format. */
/* The per-sink metric families, in the order /metrics prints them. */
enum { SINK_CKPT, SINK_LAG, SINK_DELIVERED, SINK_FAILURES, SINK_FAILING, SINK_BROKEN,
       SINK_DELIVERY_S, SINK_NFAM };
static const struct {
  const char *name, *type, *help;
} sink_fam[SINK_NFAM] = {
    [SINK_CKPT] = {"tributary_sink_checkpoint_lsn", "gauge", "The sink's durable checkpoint."},
    [SINK_LAG] = {"tributary_sink_lag_records", "gauge",
                  "WAL records past the sink's checkpoint (the newest LSN minus the checkpoint)."},
    [SINK_DELIVERED] = {"tributary_sink_delivered_total", "counter", "Records the sink delivered."},
    [SINK_FAILURES] = {"tributary_sink_failures_total", "counter",
                       "Failed delivery attempts (each retried)."},
    [SINK_FAILING] = {"tributary_sink_failing", "gauge",
                      "1 while the sink's deliveries fail and are retried."},
    [SINK_BROKEN] = {"tributary_sink_broken", "gauge",
                     "1 when the sink was stopped: it fell behind retention.max_sink_lag, or it "
                     "cannot start (the log says why)."},
    [SINK_DELIVERY_S] = {"tributary_sink_delivery_seconds", "gauge",
                         "How long the delivery in progress has been running, 0 when none: a "
                         "sink waiting on a destination it cannot reach (Kafka retries inside "
                         "one delivery) shows here."},
};

/* Family m's value for one sink (ts; last: the newest LSN), and the end of
 * its line. */
static void sink_value(FILE *f, int m, const trb_tailer_stats *ts, uint64_t last, int64_t now_us) {
  unsigned long long v = 0;
  switch (m) {
    case SINK_CKPT: v = ts->checkpoint; break;
    case SINK_LAG: v = last > ts->checkpoint ? last - ts->checkpoint : 0; break;
    case SINK_DELIVERED: v = ts->records; break;
    case SINK_FAILURES: v = ts->failures; break;
    case SINK_FAILING: v = (unsigned long long)ts->failing; break;
    case SINK_BROKEN: v = (unsigned long long)ts->broken; break;
    case SINK_DELIVERY_S: {
      int64_t since = ts->delivering_since_us;
      fprintf(f, "%.3f\n", since && now_us > since ? (double)(now_us - since) / 1e6 : 0.0);
      return;
    }
  }
  fprintf(f, "%llu\n", v);
}

static char *serve_metrics(void *ctx) {
  serve_ctx *sv = ctx;
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  trb_engine_stats es;
  trb_engine_get_stats(sv->e, &es);
#define M(name, type, help, fmt, ...) \
  fprintf(f, "# HELP " name " " help "\n# TYPE " name " " type "\n" name fmt "\n", __VA_ARGS__)
  M("tributary_commit_groups_total", "counter", "Commit groups (one WAL sync each under wal.sync always).",
    " %llu", (unsigned long long)es.groups);
  M("tributary_writes_total", "counter", "Writes answered.", " %llu", (unsigned long long)es.writes);
  M("tributary_wal_records_total", "counter", "Records appended to the WAL.", " %llu",
    (unsigned long long)es.wal.records);
  M("tributary_wal_bytes_total", "counter", "Bytes appended to the WAL.", " %llu",
    (unsigned long long)es.wal.bytes);
  M("tributary_wal_syncs_total", "counter", "fdatasync calls on the WAL.", " %llu",
    (unsigned long long)es.wal.syncs);
  M("tributary_wal_segments", "gauge", "WAL segment files on disk.", " %llu",
    (unsigned long long)es.wal.segments);
  M("tributary_wal_last_lsn", "gauge", "Newest LSN in the WAL.", " %llu",
    (unsigned long long)trb_wal_last_lsn(trb_engine_wal(sv->e)));
  M("tributary_wal_first_lsn", "gauge", "Oldest LSN still in the WAL (retention).", " %llu",
    (unsigned long long)trb_wal_first_lsn(trb_engine_wal(sv->e)));
  M("tributary_item_cache_hits_total", "counter",
    "Point reads (GetItem, old images of writes) answered by the item cache.", " %llu",
    (unsigned long long)es.cache.hits);
  M("tributary_item_cache_misses_total", "counter", "Point reads that went to the store.",
    " %llu", (unsigned long long)es.cache.misses);
  M("tributary_item_cache_evictions_total", "counter",
    "Items the cache let go to stay within store.item_cache.", " %llu",
    (unsigned long long)es.cache.evictions);
  M("tributary_item_cache_bytes", "gauge", "Bytes the item cache holds (of store.item_cache).",
    " %llu", (unsigned long long)es.cache.bytes);
  M("tributary_engine_failed", "gauge", "1 when a WAL or store failure stopped writes (restart).",
    " %d", trb_engine_failed(sv->e) ? 1 : 0);
  if (sv->streams)
    M("tributary_streams_indexed_lsn", "gauge", "Newest LSN the stream index has taken in.",
      " %llu", (unsigned long long)(trb_streams_next_lsn(sv->streams) - 1));
  uint64_t last = trb_wal_last_lsn(trb_engine_wal(sv->e));
  if (sv->ntailers) {
    /* one family after another, each under its HELP and TYPE (the text
     * format wants a family's samples together) */
    enum { NT = sizeof sv->tailers / sizeof sv->tailers[0] };
    trb_tailer_stats ts[NT];
    for (size_t i = 0; i < sv->ntailers; i++) trb_tailer_get_stats(sv->tailers[i], &ts[i]);
    int64_t now_us = trb_now_us();
    for (int m = 0; m < SINK_NFAM; m++) {
      fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", sink_fam[m].name, sink_fam[m].help,
              sink_fam[m].name, sink_fam[m].type);
      for (size_t i = 0; i < sv->ntailers; i++) {
        fprintf(f, "%s{sink=\"%s\"} ", sink_fam[m].name, ts[i].kind);
        sink_value(f, m, &ts[i], last, now_us);
      }
    }
  }
  if (sv->ret) {
    trb_retention_stats rs;
    trb_retention_get_stats(sv->ret, &rs);
    M("tributary_retention_segments_removed_total", "counter", "WAL segments removed by retention.",
      " %llu", (unsigned long long)rs.segments_removed);
    M("tributary_retention_wal_bytes", "gauge", "WAL bytes on disk at the last retention check.",
      " %llu", (unsigned long long)rs.wal_bytes);
    M("tributary_retention_held_by_sinks", "gauge",
      "1 when a sink's checkpoint is what keeps old WAL segments.", " %llu",
      (unsigned long long)rs.held_by_sinks);
    M("tributary_retention_held_by_time", "gauge",
      "1 when the stream retention window (streams.retention_s) is what keeps old WAL "
      "segments.", " %llu", (unsigned long long)rs.held_by_time);
    M("tributary_retention_sink_lagging_in_window", "gauge",
      "1 when a sink is past retention.max_sink_lag but not marked broken, because the "
      "stream retention window keeps its records anyway.", " %llu",
      (unsigned long long)rs.lagging_in_window);
    M("tributary_disk_free_bytes", "gauge",
      "Free bytes on the data directory's disk at the last retention check (under "
      "retention.min_disk_free the oldest WAL segments go).", " %llu",
      (unsigned long long)rs.disk_free);
    M("tributary_retention_disk_trims_total", "counter",
      "Retention checks that removed WAL segments early for retention.min_disk_free.", " %llu",
      (unsigned long long)rs.disk_trims);
    M("tributary_retention_sinks_broken_total", "counter",
      "Sinks marked broken for falling behind retention.max_sink_lag.", " %llu",
      (unsigned long long)rs.sinks_broken);
  }
  if (sv->ttl) {
    trb_ttl_stats tt;
    trb_ttl_get_stats(sv->ttl, &tt);
    M("tributary_ttl_deleted_items_total", "counter",
      "Items deleted by Time to Live (their TTL attribute had passed).", " %llu",
      (unsigned long long)tt.deleted);
    M("tributary_ttl_scanned_items_total", "counter", "Items read by Time to Live sweeps.",
      " %llu", (unsigned long long)tt.scanned);
    M("tributary_ttl_sweeps_total", "counter",
      "Time to Live sweeps completed (every table with TTL on read once).", " %llu",
      (unsigned long long)tt.sweeps);
    M("tributary_ttl_last_sweep_seconds", "gauge",
      "When the last Time to Live sweep ended (Unix time; 0: none yet).", " %.3f",
      (double)tt.last_sweep_us / 1e6);
  }
  if (sv->kafka) {
    trb_kafka_sink_stats ks;
    trb_kafka_sink_get_stats(sv->kafka, &ks);
    M("tributary_kafka_projection_errors_total", "counter",
      "Changes whose typed projection failed (sent with columns null, and to the dead-letter "
      "topic).", " %llu", (unsigned long long)ks.projection_errors);
    M("tributary_kafka_snapshot_items_total", "counter",
      "Items sent as snapshot reads (op r) by the Kafka sink in this process (tables whose "
      "changes are not all in the WAL).", " %llu", (unsigned long long)ks.snapshot_items);
  }
  if (sv->pg) {
    trb_pg_sink_stats ps;
    trb_pg_sink_get_stats(sv->pg, &ps);
    M("tributary_postgres_rows_applied_total", "counter",
      "Replica rows written by the PostgreSQL sink (after collapsing a batch's changes per key).",
      " %llu", (unsigned long long)ps.rows_applied);
    M("tributary_postgres_history_rows_total", "counter", "History rows appended.", " %llu",
      (unsigned long long)ps.history_rows);
    M("tributary_postgres_dead_letters_total", "counter",
      "Changes PostgreSQL refused, recorded in the dead_letters table.", " %llu",
      (unsigned long long)ps.dead_letters);
    M("tributary_postgres_reconnects_total", "counter", "Connections made again after a failure.",
      " %llu", (unsigned long long)ps.reconnects);
    M("tributary_postgres_snapshot_items_total", "counter",
      "Items copied by snapshots (tables whose changes were not all in the WAL).", " %llu",
      (unsigned long long)ps.snapshot_items);
    M("tributary_postgres_connected", "gauge", "1 while the sink holds a connection.", " %d",
      ps.connected);
  }
#undef M
  fclose(f);
  return buf;
}

static void serve_stop(serve_ctx *sv) {
  trb_http_stop(sv->srv);
  trb_api_destroy(sv->api);
  trb_ttl_stop(sv->ttl);
  trb_retention_stop(sv->ret);
  for (size_t i = 0; i < sv->ntailers; i++) trb_tailer_stop(sv->tailers[i]);
  trb_streams_stop(sv->streams);
  trb_kafka_mock_stop(sv->kmock);
  trb_iter_key_destroy(sv->ikey);
  memset(sv, 0, sizeof *sv);
}

/* The catalog's tables (their definitions), for the stream index. */
static trb_tabledef *catalog(trb_engine *e, size_t *n) {
  char **names = NULL;
  size_t nn = 0;
  *n = 0;
  if (trb_table_list(e, NULL, 0, &names, &nn, NULL, NULL)) return NULL;
  trb_tabledef *v = calloc(nn ? nn : 1, sizeof *v);
  for (size_t i = 0; v && i < nn; i++) {
    trb_table_info info;
    if (trb_table_describe(e, names[i], &info, NULL)) continue;
    v[(*n)++] = info.def; /* takes its references */
  }
  trb_table_list_free(names, nn);
  return v;
}

/* streams.shards changed since a stream began: record the new N with the
 * table (a TABLE_UPDATE in the WAL), where its open shards close and
 * children of the new N take over. */
/* A table streams.tables names, without a stream: it gets one now. */
static void config_stream(trb_engine *e, const char *name, const trb_table_info *info,
                          const char *tables, uint32_t n) {
  trb_view v;
  if (trb_stream_tables_lookup(tables, name, &v, NULL) != 1) return;
  char label[32];
  trb_stream_label(trb_now_us(), label);
  json_t *next = info->def.ext ? json_deep_copy(info->def.ext) : json_object();
  json_object_set_new(next, "StreamSpecification", json_pack("{s:b,s:s}", "StreamEnabled", 1,
                                                             "StreamViewType", trb_view_name(v)));
  json_object_set_new(next, "StreamLabel", json_string(label));
  json_object_set_new(next, "StreamShards", json_integer(n));
  trb_status st;
  trb_status_init(&st);
  if (trb_table_update_ix(e, name, &info->def, info->def.ix, next, NULL, &st))
    trb_log_warn("serve", "streams.tables: table %s gets no stream: %s", name, trb_status_msg(&st));
  else
    trb_log_info("serve", "streams.tables: table %s has a %s stream from now on", name,
                 trb_view_name(v));
  json_decref(next);
}

static void reshard(trb_engine *e, uint32_t n, const char *tables) {
  char **names = NULL;
  size_t nn = 0;
  if (trb_table_list(e, NULL, 0, &names, &nn, NULL, NULL)) return;
  for (size_t i = 0; i < nn; i++) {
    trb_table_info info;
    if (trb_table_describe(e, names[i], &info, NULL)) continue;
    json_t *ext = info.def.ext;
    json_t *ss = ext ? json_object_get(ext, "StreamSpecification") : NULL;
    json_t *cur = ext ? json_object_get(ext, "StreamShards") : NULL;
    if (!ss) config_stream(e, names[i], &info, tables, n);
    if (ss && json_is_integer(cur) && json_integer_value(cur) != (json_int_t)n) {
      json_t *next = json_deep_copy(ext);
      json_object_set_new(next, "StreamShards", json_integer(n));
      trb_status st;
      trb_status_init(&st);
      if (trb_table_update_ix(e, names[i], &info.def, info.def.ix, next, NULL, &st))
        trb_log_warn("serve", "table %s keeps %lld stream shards: %s", names[i],
                     (long long)json_integer_value(cur), trb_status_msg(&st));
      else
        trb_log_info("serve", "table %s: its stream's shards go from %lld to %u (streams.shards)",
                     names[i], (long long)json_integer_value(cur), n);
      json_decref(next);
    }
    trb_table_info_fini(&info);
  }
  trb_table_list_free(names, nn);
}

/* ---- what the PostgreSQL and Kafka sinks may ask (ctx: the serve_ctx) -- */

/* (the engine's list is malloc'ed names in a malloc'ed array, as the sink
 * wants it) */
static trb_err src_tables(void *ctx, char ***names, size_t *n, trb_status *st) {
  return trb_table_list(((serve_ctx *)ctx)->e, NULL, 0, names, n, NULL, st);
}

static int src_describe(void *ctx, const char *table, uint64_t *table_id, uint64_t *stream_lsn,
                        uint64_t *items, trb_keyschema *ks) {
  return trb_table_stream_facts(((serve_ctx *)ctx)->e, table, table_id, stream_lsn, items, ks);
}

static uint64_t src_first(void *ctx) {
  return trb_wal_first_lsn(trb_engine_wal(((serve_ctx *)ctx)->e));
}

static uint64_t src_applied(void *ctx) { return trb_engine_applied_lsn(((serve_ctx *)ctx)->e); }

static trb_err src_snap_open(void *ctx, const char *table, const void *after, size_t after_len,
                             void **snap, uint64_t *lsn, trb_status *st) {
  trb_snapshot *s = NULL;
  trb_err rc = trb_snapshot_open(((serve_ctx *)ctx)->e, table, after, after_len, &s, lsn, st);
  *snap = s;
  return rc;
}

static trb_err src_snap_next(void *snap, trb_av **item, const void **key, size_t *key_len,
                             trb_status *st) {
  return trb_snapshot_next(snap, item, key, key_len, st);
}

static void src_snap_close(void *snap) { trb_snapshot_close(snap); }

/* The table's newest stream, when it is on. */
static int src_stream(void *ctx, const char *table, uint64_t stream_lsn, trb_view *view,
                      char label[32]) {
  serve_ctx *sv = ctx;
  trb_stream_info *si = NULL;
  size_t n = 0;
  int on = 0;
  if (!trb_streams_wait(sv->streams, stream_lsn, 2000) &&
      !trb_streams_list(sv->streams, table, &si, &n, NULL) && n &&
      si[n - 1].enabled) {
    *view = si[n - 1].view;
    snprintf(label, 32, "%s", si[n - 1].label);
    on = 1;
  }
  free(si);
  return on;
}

static int src_locate(void *ctx, uint64_t table_id, uint64_t lsn, const trb_av *keys,
                      char shard_id[64]) {
  serve_ctx *sv = ctx;
  trb_stream_info si;
  if (trb_streams_wait(sv->streams, lsn, 2000)) return 0;
  /* where a change of the item right after lsn goes (lsn itself may be
   * the record that started the stream, in none of its shards) */
  return trb_streams_locate(sv->streams, table_id, lsn + 1, keys, &si, shard_id);
}

/* A name stable for this data directory (a Kafka transactional id, a
 * PostgreSQL sink's checkpoint rows). */
static void data_dir_id(const char *data_dir, char *out, size_t cap) {
  char real[TRB_CONFIG_PATH_MAX];
  const char *dd = realpath(data_dir, real) ? real : data_dir;
  unsigned char h[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)dd, strlen(dd), h);
  snprintf(out, cap, "tributary-%02x%02x%02x%02x%02x%02x", h[0], h[1], h[2], h[3], h[4], h[5]);
}

static int serve_start(cli *c, serve_ctx *sv, int auth) {
  trb_status st;
  trb_status_init(&st);
  /* The key that signs shard iterators, kept in the data directory so
   * iterators survive a restart. */
  char keypath[TRB_CONFIG_PATH_MAX + 32];
  snprintf(keypath, sizeof keypath, "%s/stream-iterator.key", c->cfg.data_dir);
  if (trb_iter_key_load(keypath, &sv->ikey, &st)) goto fail;
  /* The stream index (DynamoDB Streams). */
  trb_streams_opts so;
  trb_streams_opts_default(&so);
  so.wal = trb_engine_wal(sv->e);
  so.shards = c->cfg.streams.shards;
  so.rollover_us = (int64_t)c->cfg.streams.rollover_s * 1000000;
  so.region = c->cfg.region;
  so.priority_boost = c->cfg.streams.priority_boost;
  /* streams.tables was checked when the config was read */
  reshard(sv->e, c->cfg.streams.shards, c->cfg.streams.tables);
  size_t ntables = 0;
  trb_tabledef *tables = catalog(sv->e, &ntables);
  so.tables = tables;
  so.ntables = ntables;
  trb_err rc = trb_streams_start(&so, &sv->streams, &st);
  for (size_t i = 0; i < ntables; i++) trb_tabledef_fini(&tables[i]);
  free(tables);
  if (rc) goto fail;
  /* The sinks, each fed by its own tailer from its checkpoint. */
  if (c->cfg.file_sink.dir[0]) {
    trb_file_sink_opts fo = {.dir = c->cfg.file_sink.dir,
                             .rotate_bytes = c->cfg.file_sink.rotate_bytes,
                             .rotate_us = (int64_t)c->cfg.file_sink.rotate_s * 1000000};
    trb_sink *fs = NULL;
    trb_tailer_opts to = {.wal = trb_engine_wal(sv->e), .streams = sv->streams,
                          .priority_boost = c->cfg.streams.priority_boost,
                          .region = c->cfg.region};
    if (trb_file_sink_create(&fo, &fs, &st) ||
        trb_tailer_start(&to, fs, &sv->tailers[sv->ntailers], &st)) {
      fprintf(stderr, "tributary: the file sink in %s cannot start: %s\n", c->cfg.file_sink.dir,
              trb_status_msg(&st));
      return CLI_FAIL;
    }
    sv->ntailers++;
    trb_log_info("serve", "audit file sink writing to %s", c->cfg.file_sink.dir);
  }
  sv->src = (trb_sink_source){.ctx = sv, .tables = src_tables, .describe = src_describe,
                              .wal_first_lsn = src_first, .applied_lsn = src_applied,
                              .snap_open = src_snap_open,
                              .snap_next = src_snap_next, .snap_close = src_snap_close,
                              .stream = src_stream, .locate = src_locate};
  /* The Kafka sink: to kafka.brokers, or to an embedded mock cluster. */
  const char *brokers = c->cfg.kafka.brokers;
  if (c->cfg.kafka.embedded) {
    if (trb_kafka_mock_start((int)c->cfg.kafka.embedded_brokers, &sv->kmock, &st)) goto fail;
    brokers = trb_kafka_mock_bootstraps(sv->kmock);
    trb_log_info("serve", "embedded Kafka (librdkafka's mock cluster: for development, it keeps "
                 "nothing across restarts) at %s; read a table's changes with: kcat -b %s -C -t "
                 "%s.TABLE", brokers, brokers, c->cfg.region);
  }
  if (brokers[0]) {
    char txid[300], ckpath[TRB_CONFIG_PATH_MAX + 32];
    if (c->cfg.kafka.transactional_id[0]) {
      snprintf(txid, sizeof txid, "%s", c->cfg.kafka.transactional_id);
    } else {
      data_dir_id(c->cfg.data_dir, txid, sizeof txid);
    }
    snprintf(ckpath, sizeof ckpath, "%s/kafka-sink.checkpoint", c->cfg.data_dir);
    trb_kafka_sink_opts ko = {.brokers = brokers, .topic_template = c->cfg.kafka.topic_template,
                              .region = c->cfg.region, .exactly_once = c->cfg.kafka.exactly_once,
                              .transactional_id = txid, .offsets_topic = c->cfg.kafka.offsets_topic,
                              .checkpoint_path = ckpath, .tombstones = c->cfg.kafka.tombstones,
                              .format = (trb_kafka_format)c->cfg.kafka.format,
                              .compression = c->cfg.kafka.compression,
                              .schema_registry = c->cfg.kafka.schema_registry,
                              .tables_json = c->cfg.kafka.tables,
                              .stop_on_error = c->cfg.kafka.on_error == 1,
                              .dead_letter_topic = c->cfg.kafka.dead_letter_topic,
                              .source = &sv->src};
    trb_sink *ks = NULL;
    trb_tailer_opts to = {.wal = trb_engine_wal(sv->e), .streams = sv->streams,
                          .priority_boost = c->cfg.streams.priority_boost,
                          .region = c->cfg.region, .max_batch = TRB_KAFKA_SINK_BATCH};
    if (trb_kafka_sink_create(&ko, &ks, &st) ||
        trb_tailer_start(&to, ks, &sv->tailers[sv->ntailers], &st)) {
      fprintf(stderr, "tributary: the Kafka sink cannot start: %s\n", trb_status_msg(&st));
      return CLI_FAIL;
    }
    sv->kafka = ks;
    sv->ntailers++;
    trb_log_info("serve", "Kafka sink to %s (%s, topics %s)", brokers,
                 c->cfg.kafka.exactly_once ? "exactly once: transactions" : "at least once",
                 c->cfg.kafka.topic_template);
  }
  /* The PostgreSQL sink. */
  if (c->cfg.postgres.conninfo[0]) {
    char name[300];
    if (c->cfg.postgres.sink_name[0]) snprintf(name, sizeof name, "%s", c->cfg.postgres.sink_name);
    else data_dir_id(c->cfg.data_dir, name, sizeof name);
    static const int modes[] = {TRB_PG_REPLICA, TRB_PG_HISTORY, TRB_PG_REPLICA | TRB_PG_HISTORY};
    trb_pg_sink_opts po = {.conninfo = c->cfg.postgres.conninfo, .sink_name = name,
                           .schema = c->cfg.postgres.schema,
                           .control_schema = c->cfg.postgres.control_schema,
                           .mode = modes[c->cfg.postgres.mode % 3],
                           .json_typed = c->cfg.postgres.json == 1,
                           .stop_on_error = c->cfg.postgres.on_error == 1,
                           .all_tables = c->cfg.postgres.all_tables,
                           .tables_json = c->cfg.postgres.tables, .source = &sv->src};
    trb_sink *ps = NULL;
    /* Batches of up to 5000: PostgreSQL applies them at 0.5-0.6 of a plain
     * COPY against 0.3-0.4 with 1000 (bench/bench_pg); at low rates the
     * batches stay small, so latency does not grow. */
    trb_tailer_opts to = {.wal = trb_engine_wal(sv->e), .streams = sv->streams,
                          .priority_boost = c->cfg.streams.priority_boost,
                          .region = c->cfg.region, .max_batch = 5000};
    if (trb_pg_sink_create(&po, &ps, &st) ||
        trb_tailer_start(&to, ps, &sv->tailers[sv->ntailers], &st)) {
      fprintf(stderr, "tributary: the PostgreSQL sink cannot start: %s\n", trb_status_msg(&st));
      return CLI_FAIL;
    }
    sv->pg = ps;
    sv->ntailers++;
    trb_log_info("serve", "PostgreSQL sink %s (exactly once: each batch commits with its "
                 "checkpoint in %s.checkpoints)", name, c->cfg.postgres.control_schema);
  }
  /* Retention: the WAL keeps what streams and sinks still need. */
  trb_retention_opts ro = {.wal = trb_engine_wal(sv->e), .streams = sv->streams,
                           .sinks = sv->tailers, .nsinks = sv->ntailers,
                           .flush = flush_engine, .flush_ctx = sv->e,
                           .retention_us = (int64_t)c->cfg.streams.retention_s * 1000000,
                           .max_lag_bytes = c->cfg.retention.max_sink_lag,
                           .min_free_bytes = c->cfg.retention.min_disk_free,
                           .dir = c->cfg.data_dir,
                           .interval_ms = (int)c->cfg.retention.interval_s * 1000};
  if (trb_retention_start(&ro, &sv->ret, &st)) goto fail;
  /* Time to Live: expired items of tables with TTL on are deleted. */
  trb_ttl_opts to = {.engine = sv->e, .interval_ms = c->cfg.ttl.interval_s * 1000,
                     .scan_rate = c->cfg.ttl.scan_rate};
  if (trb_ttl_start(&to, &sv->ttl, &st)) goto fail;
  trb_sigv4_key key = {c->cfg.api.access_key_id, c->cfg.api.secret_access_key};
  trb_api_opts ao = {.region = c->cfg.region, .keys = auth ? &key : NULL, .nkeys = auth ? 1 : 0,
                     .streams = sv->streams, .iter_key = sv->ikey, .metrics = serve_metrics,
                     .metrics_ctx = sv, .stream_shards = c->cfg.streams.shards,
                     .stream_tables = c->cfg.streams.tables,
                     .wait_threads = c->cfg.api.wait_threads,
                     .stream_priority_boost = c->cfg.streams.priority_boost};
  sv->api = trb_api_create(sv->e, &ao);
  if (!sv->api) {
    trb_status_set(&st, TRB_ENOMEM, "out of memory");
    goto fail;
  }
  trb_http_opts ho = {.listen = c->cfg.api.listen, .threads = c->cfg.api.threads};
  if (trb_http_start(&ho, trb_api_handle, trb_api_reject, sv->api, &sv->srv, &st)) {
    fprintf(stderr, "tributary: cannot listen on %s: %s\n", c->cfg.api.listen,
            trb_status_msg(&st));
    return CLI_FAIL;
  }
  return CLI_OK;
fail:
  fprintf(stderr, "tributary: %s\n", trb_status_msg(&st));
  return CLI_FAIL;
}

int cmd_serve(cli *c, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    trb_status st;
    trb_status_init(&st);
    if (cli_is_help(argv[i])) {
      fputs(serve_help, stdout);
      return CLI_OK;
    } else if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
      if (trb_config_set(&c->cfg, "api.listen", argv[++i], &st))
        return cli_usage_err("serve", "--listen: %s", trb_status_msg(&st));
    } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
      if (trb_config_set(&c->cfg, "api.threads", argv[++i], &st))
        return cli_usage_err("serve", "--threads: %s", trb_status_msg(&st));
    } else {
      return cli_usage_err("serve", "unknown or incomplete option %s", argv[i]);
    }
  }
  int auth = c->cfg.api.access_key_id[0] != 0;
  if (auth != (c->cfg.api.secret_access_key[0] != 0)) {
    fprintf(stderr, "tributary: api.access_key_id and api.secret_access_key go together\n");
    return CLI_FAIL;
  }
  if (!auth && !is_loopback(c->cfg.api.listen)) {
    fprintf(stderr,
            "tributary: refusing to listen on %s without authentication: set "
            "api.access_key_id and api.secret_access_key in the config file, or listen on "
            "127.0.0.1\n",
            c->cfg.api.listen);
    return CLI_FAIL;
  }
  /* Signals are taken by sigwait below; block them before any thread starts
   * so every thread inherits the mask. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  trb_engine *e = cli_engine(c);
  if (!e) return CLI_FAIL;
  serve_ctx sv;
  memset(&sv, 0, sizeof sv);
  sv.e = e;
  int rc = serve_start(c, &sv, auth);
  if (rc) {
    serve_stop(&sv);
    return rc;
  }
  char where[300];
  snprintf(where, sizeof where, "%s", c->cfg.api.listen);
  char *colon = strrchr(where, ':');
  if (colon) snprintf(colon + 1, sizeof where - (size_t)(colon + 1 - where), "%d",
                      trb_http_port(sv.srv));
  trb_log_info("serve",
               "listening on http://%s (data directory %s; authentication %s); stop with "
               "SIGTERM or Ctrl-C",
               where, c->cfg.data_dir,
               auth ? "on: SigV4 signatures are verified"
                    : "off: any signature is accepted, loopback only");
  int sig = 0;
  sigwait(&set, &sig);
  trb_log_info("serve", "%s received: finishing requests in flight", sig == SIGINT ? "SIGINT" : "SIGTERM");
  serve_stop(&sv);
  cli_close(c);
  trb_log_info("serve", "stopped; the WAL is synced");
  return CLI_OK;
}
