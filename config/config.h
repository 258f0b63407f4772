/*
 * config.h -- the configuration file (YAML) and its typed settings.
 *
 * One table of settings (name, type, default, range, help) in config.c is
 * the single source for the loader, validation, defaults and the generated
 * documentation (`tributary config doc`). Every setting has a default, so no
 * file is needed. Modules never see the YAML tree: callers copy the typed
 * sub-structs below into each module's own options.
 *
 * Errors name the file, line and setting:
 *   "tributary.yaml:7: wal.sync: expected one of always, interval (got 'sometimes')"
 */
#ifndef TRB_CONFIG_H
#define TRB_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "util/trb_err.h"

#define TRB_CONFIG_PATH_MAX 4096

typedef enum trb_cfg_sync { TRB_CFG_SYNC_ALWAYS = 0, TRB_CFG_SYNC_INTERVAL = 1 } trb_cfg_sync;

typedef struct trb_config {
  char data_dir[TRB_CONFIG_PATH_MAX];   /* "data_dir", default "./tributary-data" */
  struct {
    trb_cfg_sync sync;                  /* "wal.sync": always | interval; default always */
    uint32_t sync_interval_ms;          /* "wal.sync_interval_ms": 1..10000, default 10 */
    uint32_t commit_delay_us;           /* "wal.commit_delay_us": 0..100000, default 0 */
    uint64_t segment_size;              /* "wal.segment_size": bytes, 1MiB..4GiB, default 64MiB;
                                           accepts suffixes KiB MiB GiB (and K M G) */
  } wal;
  struct {
    uint64_t item_cache;                /* "store.item_cache": bytes, 0..64GiB, default 64MiB;
                                           0 = no item cache */
  } store;
  struct {
    char listen[256];                   /* "api.listen": HOST:PORT, default 127.0.0.1:8000 */
    uint32_t threads;                   /* "api.threads": 0 = one per CPU, at least 2 */
    uint32_t wait_threads;              /* "api.wait_threads": 1..1024, default 32 */
    char access_key_id[128];            /* "api.access_key_id": "" = no authentication */
    char secret_access_key[128];        /* "api.secret_access_key" */
  } api;
  struct {
    uint32_t shards;                    /* "streams.shards": 1..1024, default 4 */
    uint32_t rollover_s;                /* "streams.rollover_s": 1..604800, default 14400 */
    uint32_t retention_s;               /* "streams.retention_s": 1..31536000, default 86400 */
    uint32_t priority_boost;            /* "streams.priority_boost": 0..20 nice levels, default 5 */
    char tables[4096];                  /* "streams.tables": "TABLE:VIEW,..." tables that have a
                                           stream without asking for one */
  } streams;
  struct {
    uint64_t max_sink_lag;              /* "retention.max_sink_lag": bytes of WAL, default 16GiB;
                                           0 = no cap */
    uint32_t interval_s;                /* "retention.interval_s": 1..3600, default 10 */
    uint64_t min_disk_free;             /* "retention.min_disk_free": bytes, default 256MiB;
                                           0 = no floor */
  } retention;
  struct {
    uint32_t interval_s;                /* "ttl.interval_s": 1..86400, default 60 */
    uint32_t scan_rate;                 /* "ttl.scan_rate": items/s, 0..100000000, default
                                           20000; 0 = no limit */
  } ttl;
  struct {
    char brokers[2048];                 /* "kafka.brokers": bootstrap servers; "" = no Kafka sink
                                           unless embedded */
    int embedded;                       /* "kafka.embedded": false|true */
    uint32_t embedded_brokers;          /* "kafka.embedded_brokers": 1..32, default 3 */
    int format;                         /* "kafka.format": avro|json (trb_kafka_format) */
    char topic_template[256];           /* "kafka.topic_template": default {region}.{table} */
    int exactly_once;                   /* "kafka.exactly_once": false|true, default true */
    char transactional_id[256];         /* "kafka.transactional_id": "" = from the data dir */
    char offsets_topic[256];            /* "kafka.offsets_topic" */
    int tombstones;                     /* "kafka.tombstones": false|true, default true */
    char compression[16];               /* "kafka.compression": none|gzip|snappy|lz4|zstd */
    char schema_registry[2048];         /* "kafka.schema_registry": base URL; "" = none (Avro
                                           single-object framing) */
    char tables[16384];                 /* "kafka.tables": {"T": {"columns": {"a.b": "long"}}}
                                           as JSON text, checked */
    int on_error;                       /* "kafka.on_error": dead_letter|stop (0, 1) */
    char dead_letter_topic[256];        /* "kafka.dead_letter_topic": {region}.{table}.errors */
  } kafka;
  struct {
    char dir[TRB_CONFIG_PATH_MAX];      /* "sinks.file.dir": "" = no file sink */
    uint64_t rotate_bytes;              /* "sinks.file.rotate_bytes": default 64MiB */
    uint32_t rotate_s;                  /* "sinks.file.rotate_s": default 3600 */
  } file_sink;
  struct {
    char conninfo[2048];                /* "postgres.conninfo": libpq; "" = no PostgreSQL sink */
    char sink_name[128];                /* "postgres.sink_name": "" = from the data dir */
    char schema[64];                    /* "postgres.schema": default public */
    char control_schema[64];            /* "postgres.control_schema": default tributary */
    int mode;                           /* "postgres.mode": replica|history|both (0, 1, 2) */
    int json;                           /* "postgres.json": plain|dynamodb (0, 1) */
    int on_error;                       /* "postgres.on_error": dead_letter|stop (0, 1) */
    int all_tables;                     /* "postgres.all_tables": false|true, default true */
    char tables[16384];                 /* "postgres.tables": the mapping as JSON text,
                                           {"T": {"schema": .., "table": .., "mode": ..,
                                           "columns": {"a.b": "numeric"}}}, checked */
  } postgres;
  char region[64];                      /* "region": default us-east-1 */
  char log_level[16];                   /* "log_level": debug|info|warn|error, default info */
} trb_config;

/* Fills every setting with its default. */
void trb_config_defaults(trb_config *cfg);
/*
 * Loads a YAML file on top of what cfg holds (call trb_config_defaults
 * first). Nested mappings give dotted names ("wal: {sync: always}" is
 * "wal.sync"). Unknown settings, wrong types, out-of-range values, YAML
 * syntax errors: TRB_ECONFIG with "FILE:LINE: SETTING: what is wrong" in st.
 * On error cfg may be partly updated; callers discard it.
 */
trb_err trb_config_load(const char *path, trb_config *cfg, trb_status *st);
/* Sets one setting by dotted name from text, validated like the loader
 * (used for command-line overrides). TRB_ECONFIG on error. */
trb_err trb_config_set(trb_config *cfg, const char *name, const char *value,
                       trb_status *st);
/* Writes the settings reference (name, type, default, range, help), one
 * block per setting, generated from the table. */
void trb_config_print_doc(FILE *out);
/* Writes the current values as YAML that trb_config_load accepts. */
void trb_config_print(const trb_config *cfg, FILE *out);

#endif
