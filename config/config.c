/*
 * config.c -- the settings table and everything generated from it: defaults,
 * the YAML loader, validation, `trb_config_set`, the reference documentation
 * and the YAML writer. See config.h for the contract.
 *
 * The table (cfg_settings below) is the only place a setting is described.
 * Adding a setting is one line there plus its field in trb_config. Defaults
 * are written as text and go through the same parser as the file, so a
 * default can never be something the loader would refuse.
 *
 * Settings in one group ("wal.*") must be next to each other in the table:
 * trb_config_print opens a YAML mapping per group as it walks the table.
 *
 * The loader uses libyaml's document API: it needs the line of every node
 * (start_mark.line is 0-based; messages print 1-based lines). Aliases are
 * node references, not copies, so an alias bomb costs nothing, and a cyclic
 * alias ends at an unknown dotted name because names are bounded by the table.
 */
#include "config/config.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include <yaml.h>

#include "transform/stream_record.h"
#include "util/names.h"

typedef enum cfg_type {
  CFG_STRING,   /* char[size]; min = minimum length */
  CFG_ENUM,     /* one of names; int field (index) when size == 0, else char[size] */
  CFG_UINT32,   /* uint32_t in [min, max] */
  CFG_SIZE,     /* uint64_t bytes in [min, max]; K/M/G and KiB/MiB/GiB suffixes */
  CFG_HOSTPORT, /* char[size] holding HOST:PORT or [IPV6]:PORT */
  CFG_VIEWTABLES, /* char[size]: TABLE:VIEW_TYPE pairs separated by commas (or empty) */
  CFG_PGTABLES, /* char[size]: a per-table mapping (postgres.tables, kafka.tables; min says
                   which), checked, kept as JSON text */
} cfg_type;

typedef struct cfg_setting {
  const char *name;          /* dotted name */
  cfg_type type;
  size_t off;                /* offsetof(trb_config, field) */
  size_t size;               /* string kinds: buffer size; CFG_ENUM: 0 = int field */
  const char *def;           /* default as text, parsed like a file value */
  uint64_t min, max;         /* numeric range; CFG_STRING: min length */
  const char *const *names;  /* CFG_ENUM values; for int fields, index = enum value */
  const char *help;
} cfg_setting;

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)

#define FSIZE(f) sizeof(((trb_config *)0)->f)
#define STR(n, f, def, help) \
  {n, CFG_STRING, offsetof(trb_config, f), FSIZE(f), def, 1, 0, NULL, help}
#define STR_OPT(n, f, def, help) \
  {n, CFG_STRING, offsetof(trb_config, f), FSIZE(f), def, 0, 0, NULL, help}
#define ENUM_INT(n, f, def, names, help) \
  {n, CFG_ENUM, offsetof(trb_config, f), 0, def, 0, 0, names, help}
#define ENUM_STR(n, f, def, names, help) \
  {n, CFG_ENUM, offsetof(trb_config, f), FSIZE(f), def, 0, 0, names, help}
#define U32(n, f, def, lo, hi, help) \
  {n, CFG_UINT32, offsetof(trb_config, f), FSIZE(f), def, lo, hi, NULL, help}
#define SIZE(n, f, def, lo, hi, help) \
  {n, CFG_SIZE, offsetof(trb_config, f), FSIZE(f), def, lo, hi, NULL, help}
#define HOSTPORT(n, f, def, help) \
  {n, CFG_HOSTPORT, offsetof(trb_config, f), FSIZE(f), def, 0, 0, NULL, help}
#define VIEWTABLES(n, f, def, help) \
  {n, CFG_VIEWTABLES, offsetof(trb_config, f), FSIZE(f), def, 0, 0, NULL, help}
#define PGTABLES(n, f, help) \
  {n, CFG_PGTABLES, offsetof(trb_config, f), FSIZE(f), "{}", TBL_POSTGRES, 0, NULL, help}
#define KAFKATABLES(n, f, help) \
  {n, CFG_PGTABLES, offsetof(trb_config, f), FSIZE(f), "{}", TBL_KAFKA, 0, NULL, help}
enum { TBL_POSTGRES = 0, TBL_KAFKA = 1 }; /* CFG_PGTABLES' flavours, in min */
#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})

_Static_assert(sizeof(trb_cfg_sync) == sizeof(int), "enum fields are stored as int");

static const cfg_setting cfg_settings[] = {
  STR("data_dir", data_dir, "./tributary-data",
      "Directory holding the tables, the WAL and the capture state."),
  ENUM_INT("wal.sync", wal.sync, "always", NAMES("always", "interval"),
           "When the WAL is fsynced: before every acknowledgement (always) or "
           "every wal.sync_interval_ms (interval; a crash may lose that much)."),
  U32("wal.sync_interval_ms", wal.sync_interval_ms, "10", 1, 10000,
      "Milliseconds between WAL fsyncs when wal.sync is interval."),
  U32("wal.commit_delay_us", wal.commit_delay_us, "0", 0, 100000,
      "Microseconds the commit thread may wait, when the last group commit held two or more "
      "requests, for half as many again to queue before the next one (PostgreSQL's "
      "commit_delay): fewer and bigger fdatasyncs under load. A lone writer never waits. "
      "0 (the default): never wait."),
  SIZE("wal.segment_size", wal.segment_size, "64MiB", MIB, 4 * GIB,
       "Size at which the WAL starts a new segment file."),
  SIZE("store.item_cache", store.item_cache, "64MiB", 0, 64 * GIB,
       "Memory for the cache of recently read items in front of the store (GetItem and "
       "the old images of writes); least recently used items go first. 0: no cache."),
  HOSTPORT("api.listen", api.listen, "127.0.0.1:8000",
           "Address of the DynamoDB-compatible HTTP API (HOST:PORT, IPv6 as [::1]:8000)."),
  U32("api.threads", api.threads, "0", 0, 256,
      "HTTP worker threads; 0 means one per CPU, at least 2 (no request waits on one: "
      "writes suspend their connection during their group commit)."),
  U32("api.wait_threads", api.wait_threads, "32", 1, 1024,
      "Threads running the operations that wait for a group commit besides "
      "PutItem/UpdateItem/DeleteItem (BatchWriteItem, TransactWriteItems, table operations): "
      "as many of them as run at once can share one fdatasync."),
  STR_OPT("api.access_key_id", api.access_key_id, "",
          "Access key that clients must sign requests with (SigV4). Empty: any signature "
          "is accepted and the server listens on loopback only."),
  STR_OPT("api.secret_access_key", api.secret_access_key, "",
          "Secret key paired with api.access_key_id."),
  U32("streams.shards", streams.shards, "4", 1, 1024,
      "Shards per stream: hash ranges of the partition key (an item always maps to one)."),
  U32("streams.rollover_s", streams.rollover_s, "14400", 1, 604800,
      "Seconds after which a stream's shards close and children take over (DynamoDB's "
      "are about 4 hours)."),
  U32("streams.retention_s", streams.retention_s, "86400", 1, 31536000,
      "Seconds stream records are kept (DynamoDB keeps 24 hours); older WAL segments are "
      "removed once every sink has delivered them."),
  U32("streams.priority_boost", streams.priority_boost, "5", 0, 20,
      "Nice levels by which the stream threads (the stream index and each sink's delivery) "
      "run above the request threads, so that with every CPU busy a change still reaches "
      "GetRecords and the sinks within milliseconds and the writes wait a little instead. "
      "Raising a priority needs CAP_SYS_NICE (root has it); without it they run at normal "
      "priority and one log line says so. 0: no boost."),
  VIEWTABLES("streams.tables", streams.tables, "",
          "Tables that get a stream from the config file: TABLE:VIEW_TYPE pairs separated by "
          "commas, e.g. orders:NEW_AND_OLD_IMAGES,audit:KEYS_ONLY. A listed table gets its "
          "stream when it is created without a StreamSpecification, or at start when it has "
          "none."),
  SIZE("retention.max_sink_lag", retention.max_sink_lag, "16GiB", 0, 1024 * GIB,
       "WAL bytes a sink may fall behind before it is marked broken (so the disk does not "
       "fill); 0 means no cap."),
  U32("retention.interval_s", retention.interval_s, "10", 1, 3600,
      "Seconds between retention checks."),
  SIZE("retention.min_disk_free", retention.min_disk_free, "256MiB", 0, 1024 * GIB,
       "Free space to keep on the WAL's disk: below it, retention removes the oldest WAL "
       "segments even inside streams.retention_s or not yet delivered (sinks behind are "
       "marked broken, stream readers there get TrimmedDataAccessException), with an error "
       "in the log each time; 0 means no floor."),
  U32("ttl.interval_s", ttl.interval_s, "60", 1, 86400,
      "Seconds between the starts of two Time to Live sweeps. Each sweep reads the tables "
      "whose TTL is enabled (UpdateTimeToLive) and deletes the items whose TTL attribute, a "
      "Number of epoch seconds, has passed (but by at most five years), as DynamoDB does; the "
      "stream records of these deletes carry userIdentity Service/dynamodb.amazonaws.com. "
      "Expired items are still read until their sweep."),
  U32("ttl.scan_rate", ttl.scan_rate, "20000", 0, 100000000,
      "Items a Time to Live sweep reads per second at most, so a large table's sweep does "
      "not take the CPU from requests; 0: no limit."),
  STR_OPT("kafka.brokers", kafka.brokers, "",
          "Kafka bootstrap servers (host:port,...) of the Kafka sink. Empty: no Kafka sink, "
          "unless kafka.embedded is true."),
  ENUM_INT("kafka.embedded", kafka.embedded, "false", NAMES("false", "true"),
           "Start librdkafka's mock cluster inside the server and send to it: a Kafka for "
           "development that keeps nothing across restarts (its address is logged)."),
  U32("kafka.embedded_brokers", kafka.embedded_brokers, "3", 1, 32,
      "Brokers of the embedded mock cluster."),
  ENUM_INT("kafka.format", kafka.format, "avro", NAMES("avro", "json"),
           "Message values: avro (the envelope of schemas/tributary-envelope.avsc) or json "
           "(the DynamoDB Streams record)."),
  STR("kafka.topic_template", kafka.topic_template, "{region}.{table}",
      "Topic of a table's changes; {region} and {table} are replaced."),
  ENUM_INT("kafka.exactly_once", kafka.exactly_once, "true", NAMES("false", "true"),
           "true: Kafka transactions carry each batch with the sink's checkpoint (a "
           "read_committed consumer sees every change once); false: at least once, the "
           "checkpoint in a local file."),
  STR_OPT("kafka.transactional_id", kafka.transactional_id, "",
          "The producer's transactional id (and the key of its checkpoints). Empty: derived "
          "from the data directory. Two servers must not share one."),
  STR("kafka.offsets_topic", kafka.offsets_topic, "__tributary_offsets",
      "Topic (compacted) holding the sink's checkpoints in exactly-once mode."),
  ENUM_INT("kafka.tombstones", kafka.tombstones, "true", NAMES("false", "true"),
           "After each REMOVE, a message with the same key and a null value (for compacted "
           "topics)."),
  ENUM_STR("kafka.compression", kafka.compression, "lz4",
           NAMES("none", "gzip", "snappy", "lz4", "zstd"), "Compression of produced batches."),
  STR_OPT("kafka.schema_registry", kafka.schema_registry, "",
          "Base URL of a Confluent-compatible schema registry (http://host:8081). Set, with "
          "the avro format: the key and value schemas are registered under <topic>-key and "
          "<topic>-value and messages use Confluent's wire format (00, the 4-byte schema id). "
          "Empty: Avro single-object encoding (C3 01, the schema's fingerprint), the schemas "
          "on the __tributary_schemas topic."),
  KAFKATABLES("kafka.tables", kafka.tables,
              "Per table, a typed projection for tools that want flat columns (Avro format): "
              "{TABLE: {columns: {PATH: TYPE}}}, PATH an attribute path (a.b[0].c, the column "
              "a_b_0_c), TYPE one of string, bytes, long, int, double, float, boolean. The "
              "columns go in the envelope's last field, columns; a value that does not fit its "
              "type goes as kafka.on_error says."),
  ENUM_INT("kafka.on_error", kafka.on_error, "dead_letter", NAMES("dead_letter", "stop"),
           "A value that does not fit its projected column: dead_letter (the change goes with "
           "columns null and a tributary.error header, and a copy to kafka.dead_letter_topic) "
           "or stop (the sink stops, naming the change)."),
  STR("kafka.dead_letter_topic", kafka.dead_letter_topic, "{region}.{table}.errors",
      "Topic of the changes whose projection failed; {region} and {table} are replaced."),
  STR_OPT("sinks.file.dir", file_sink.dir, "",
          "Directory of the audit file sink: every stream record of every table with a "
          "stream, as JSON Lines, exactly once across crashes. Empty: no file sink."),
  SIZE("sinks.file.rotate_bytes", file_sink.rotate_bytes, "64MiB", MIB, 64 * GIB,
       "Size at which the file sink starts a new file."),
  U32("sinks.file.rotate_s", file_sink.rotate_s, "3600", 1, 604800,
      "Seconds after which the file sink starts a new file."),
  STR_OPT("postgres.conninfo", postgres.conninfo, "",
          "libpq connection string of the PostgreSQL sink (host=... port=... dbname=... "
          "user=...; any libpq keyword). Empty: no PostgreSQL sink."),
  STR_OPT("postgres.sink_name", postgres.sink_name, "",
          "Name of this sink's checkpoint rows in PostgreSQL. Empty: derived from the data "
          "directory. Two servers writing to one database need different names."),
  STR("postgres.schema", postgres.schema, "public",
      "Schema of the destination tables that postgres.tables does not place elsewhere."),
  STR("postgres.control_schema", postgres.control_schema, "tributary",
      "Schema of the sink's own tables: checkpoints, table states, dead_letters."),
  ENUM_INT("postgres.mode", postgres.mode, "replica", NAMES("replica", "history", "both"),
           "What a table becomes: replica (upsert and delete: the table mirrors the source), "
           "history (one appended row per change, for auditing) or both."),
  ENUM_INT("postgres.json", postgres.json, "plain", NAMES("plain", "dynamodb"),
           "Form of the item columns: plain JSON (numbers with their exact digits, binary as "
           "base64, sets as arrays) or dynamodb (the typed form, {\"N\": \"1\"})."),
  ENUM_INT("postgres.on_error", postgres.on_error, "dead_letter", NAMES("dead_letter", "stop"),
           "A change PostgreSQL rejects (a value that does not fit a typed column): "
           "dead_letter (recorded with the error in <control_schema>.dead_letters, the sink "
           "goes on) or stop (the sink stops with the error)."),
  ENUM_INT("postgres.all_tables", postgres.all_tables, "true", NAMES("false", "true"),
           "true: every table with a stream goes to PostgreSQL, with the defaults unless "
           "postgres.tables says otherwise; false: only the tables postgres.tables names."),
  PGTABLES("postgres.tables", postgres.tables,
           "Per source table: where it goes and how. A mapping of table name to {schema, "
           "table, mode, columns}, columns a mapping of attribute path (a.b[0].c) to a "
           "PostgreSQL type (text, numeric(12,2), bigint, boolean, timestamptz, ...), each "
           "a typed column named after the path (a_b_0_c), added when the config grows."),
  STR("region", region, "us-east-1", "Region name reported in ARNs and responses."),
  ENUM_STR("log_level", log_level, "info", NAMES("debug", "info", "warn", "error"),
           "Least severe log message written."),
};
#define CFG_NSETTINGS (sizeof cfg_settings / sizeof cfg_settings[0])
#define CFG_NAME_MAX 128

/* ---- messages ---------------------------------------------------------- */

/* "PATH:LINE: NAME: problem"; path, line (1-based, 0 = none) and name are
 * each left out when absent. */
static __attribute__((format(printf, 5, 6))) trb_err
cfg_fail(trb_status *st, const char *path, size_t line, const char *name, const char *fmt, ...) {
  char pre[512] = "", msg[TRB_STATUS_MSG_MAX];
  if (path && line) snprintf(pre, sizeof pre, "%.300s:%zu: ", path, line);
  else if (path) snprintf(pre, sizeof pre, "%.300s: ", path);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return trb_status_set(st, TRB_ECONFIG, "%s%s%s%s", pre, name ? name : "", name ? ": " : "",
                        msg);
}

/* The largest exact unit: 64MiB, 1048577. */
static void fmt_size(uint64_t v, char *out, size_t cap) {
  static const char *const unit[] = {"GiB", "MiB", "KiB"};
  for (int i = 0; i < 3; i++)
    if (v && v % (GIB >> (10 * i)) == 0) {
      snprintf(out, cap, "%llu%s", (unsigned long long)(v / (GIB >> (10 * i))), unit[i]);
      return;
    }
  snprintf(out, cap, "%llu", (unsigned long long)v);
}

static void fmt_names(const char *const *names, char *out, size_t cap) {
  size_t n = 0;
  out[0] = '\0';
  for (size_t i = 0; names[i] && n < cap; i++)
    n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? ", " : "", names[i]);
}

/* ---- parsing values ---------------------------------------------------- */

/* Decimal digits only; 0 on success, -1 on junk, -2 on overflow. */
static int parse_u64(const char *s, size_t len, uint64_t *out) {
  uint64_t v = 0;
  if (len == 0) return -1;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return -2;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

static int parse_size(const char *s, uint64_t *out) {
  static const struct { const char *suffix; uint64_t mult; } units[] = {
      {"", 1}, {"B", 1}, {"K", KIB}, {"KiB", KIB}, {"M", MIB},
      {"MiB", MIB}, {"G", GIB}, {"GiB", GIB}};
  size_t ndig = strspn(s, "0123456789");
  const char *suf = s + ndig;
  if (*suf == ' ') suf++;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(suf, units[i].suffix) != 0) continue;
    uint64_t v;
    int rc = parse_u64(s, ndig, &v);
    if (rc == 0 && v > UINT64_MAX / units[i].mult) rc = -2;
    if (rc == 0) *out = v * units[i].mult;
    return rc;
  }
  return -1;
}

/* HOST:PORT or [IPV6]:PORT; NULL when valid, else the problem. */
static const char *check_hostport(const char *s) {
  const char *colon;
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (!close || close == s + 1) return "expected HOST:PORT";
    if (strspn(s + 1, "0123456789abcdefABCDEF:.") != (size_t)(close - s - 1) ||
        !memchr(s + 1, ':', (size_t)(close - s - 1)))
      return "bad IPv6 address in brackets";
    colon = close + 1;
    if (*colon != ':') return "expected HOST:PORT";
  } else {
    colon = strrchr(s, ':');
    if (!colon) return "expected HOST:PORT";
    if (colon == s) return "host must not be empty";
    if (memchr(s, ':', (size_t)(colon - s))) return "IPv6 addresses need brackets, like [::1]:8000";
    if (strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._") <
        (size_t)(colon - s))
      return "bad character in host name";
  }
  uint64_t port;
  if (parse_u64(colon + 1, strlen(colon + 1), &port) != 0 || port > 65535)
    return "port must be between 0 and 65535";
  return NULL;
}

/*
 * Validates text (len bytes, may hold NULs from YAML escapes) for setting s.
 * Numeric kinds leave their value in *num. 0 on success, else -1 with the
 * problem in why.
 */
static int cfg_parse(const cfg_setting *s, const char *text, size_t len,
                     uint64_t *num, char *why, size_t cap) {
  char buf[256];
  for (size_t i = 0; i < len; i++) /* includes NULs from "\0" escapes */
    if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
      return snprintf(why, cap, "value contains a control character"), -1;
  switch (s->type) {
  case CFG_STRING:
    if (len < s->min) return snprintf(why, cap, "must not be empty"), -1;
    if (len >= s->size)
      return snprintf(why, cap, "too long (%zu bytes, at most %zu)", len, s->size - 1), -1;
    return 0;
  case CFG_ENUM:
    for (size_t i = 0; s->names[i]; i++)
      if (strcmp(s->names[i], text) == 0) return *num = i, 0;
    fmt_names(s->names, buf, sizeof buf);
    return snprintf(why, cap, "expected one of %.200s (got '%.64s')", buf, text), -1;
  case CFG_UINT32: {
    int rc = parse_u64(text, len, num);
    if (rc == 0 && *num >= s->min && *num <= s->max) return 0;
    return snprintf(why, cap, "expected an integer from %llu to %llu (got '%.64s')",
                    (unsigned long long)s->min, (unsigned long long)s->max, text), -1;
  }
  case CFG_SIZE: {
    char lo[32], hi[32];
    fmt_size(s->min, lo, sizeof lo);
    fmt_size(s->max, hi, sizeof hi);
    int rc = parse_size(text, num);
    if (rc == -1)
      return snprintf(why, cap, "expected a size like 64MiB (an integer with optional "
                      "suffix K, M, G, KiB, MiB or GiB) (got '%.64s')", text), -1;
    if (rc == 0 && *num >= s->min && *num <= s->max) return 0;
    return snprintf(why, cap, "must be from %s to %s (got '%.64s')", lo, hi, text), -1;
  }
  case CFG_PGTABLES:
    return snprintf(why, cap, "internal: postgres.tables is parsed as YAML"), -1;
  case CFG_VIEWTABLES:
    if (len >= s->size)
      return snprintf(why, cap, "too long (%zu bytes, at most %zu)", len, s->size - 1), -1;
    {
      trb_status vst; /* the format is transform's: its parser checks it */
      trb_status_init(&vst);
      if (trb_stream_tables_lookup(text, NULL, NULL, &vst) >= 0) return 0;
      return snprintf(why, cap, "%s", trb_status_msg(&vst)), -1;
    }
  case CFG_HOSTPORT: {
    const char *bad = len >= s->size ? "too long" : check_hostport(text);
    if (!bad) return 0;
    return snprintf(why, cap, "%s, like 127.0.0.1:8000 or [::1]:8000 (got '%.64s')",
                    bad, text), -1;
  }
  }
  return snprintf(why, cap, "unknown setting type"), -1;
}

static void cfg_store(const cfg_setting *s, trb_config *cfg, const char *text,
                      size_t len, uint64_t num) {
  char *field = (char *)cfg + s->off;
  int e = (int)num;
  uint32_t u32 = (uint32_t)num;
  if (s->type == CFG_ENUM && s->size == 0) memcpy(field, &e, sizeof e);
  else if (s->type == CFG_ENUM) snprintf(field, s->size, "%s", s->names[num]);
  else if (s->type == CFG_UINT32) memcpy(field, &u32, sizeof u32);
  else if (s->type == CFG_SIZE) memcpy(field, &num, sizeof num);
  else memcpy(field, text, len), field[len] = '\0';
}

/* ---- names ------------------------------------------------------------- */

static const cfg_setting *cfg_find(const char *name) {
  for (size_t i = 0; i < CFG_NSETTINGS; i++)
    if (strcmp(cfg_settings[i].name, name) == 0) return &cfg_settings[i];
  return NULL;
}

/* 1 when name is a group: some setting is named "name.<something>". */
static int cfg_is_group(const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < CFG_NSETTINGS; i++)
    if (strncmp(cfg_settings[i].name, name, n) == 0 && cfg_settings[i].name[n] == '.')
      return 1;
  return 0;
}

static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb) {
  size_t row[CFG_NAME_MAX + 1];
  if (la > CFG_NAME_MAX || lb > CFG_NAME_MAX) return SIZE_MAX;
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j];
      size_t best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

/* Scores candidate (len bytes) against name; keeps the closest in *best. */
static void suggest_one(const char *name, const char *cand, size_t len, int is_setting,
                        const char **best, size_t *best_len, size_t *best_d) {
  size_t d = edit_distance(name, strlen(name), cand, len);
  if (d == 0) return;
  const char *leaf = strrchr(name, '.'), *cleaf = memrchr(cand, '.', len);
  leaf = leaf ? leaf + 1 : name;
  cleaf = cleaf ? cleaf + 1 : cand;
  /* "listen" at the top level most likely meant "api.listen". */
  if (is_setting && strlen(leaf) == len - (size_t)(cleaf - cand) &&
      memcmp(leaf, cleaf, strlen(leaf)) == 0 && d > 1)
    d = 1;
  size_t limit = len / 4 > 2 ? len / 4 : 2;
  if (d <= limit && d < *best_d) *best = cand, *best_len = len, *best_d = d;
}

/* "unknown setting", with the closest setting or group name if one is close. */
static trb_err cfg_unknown(trb_status *st, const char *path, size_t line, const char *name) {
  const char *best = NULL;
  size_t best_len = 0, best_d = SIZE_MAX;
  for (size_t i = 0; i < CFG_NSETTINGS; i++) {
    const char *s = cfg_settings[i].name;
    for (const char *dot = strchr(s, '.'); dot; dot = strchr(dot + 1, '.'))
      suggest_one(name, s, (size_t)(dot - s), 0, &best, &best_len, &best_d);
    suggest_one(name, s, strlen(s), 1, &best, &best_len, &best_d);
  }
  if (!best) return cfg_fail(st, path, line, name, "unknown setting");
  return cfg_fail(st, path, line, name, "unknown setting (did you mean '%.*s'?)",
                  (int)best_len, best);
}


#define LINE(node) ((size_t)(node)->start_mark.line + 1)

static const char *node_kind(const yaml_node_t *n) {
  return n->type == YAML_MAPPING_NODE    ? "a mapping"
         : n->type == YAML_SEQUENCE_NODE ? "a sequence"
                                         : "a scalar";
}

/* An empty, "~" or "null" plain scalar: "wal:" with nothing under it. */
static int node_is_null(const yaml_node_t *n) {
  const char *v = (const char *)n->data.scalar.value;
  return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
         (!*v || !strcmp(v, "~") || !strcasecmp(v, "null"));
}

/* ---- postgres.tables ---------------------------------------------------- */

typedef struct pgt_err {
  size_t line;
  char name[CFG_NAME_MAX * 6];
  char why[400];
} pgt_err;

static int pgt_fail(pgt_err *e, const yaml_node_t *n, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int pgt_fail(pgt_err *e, const yaml_node_t *n, const char *name, const char *fmt, ...) {
  va_list ap;
  e->line = LINE(n);
  snprintf(e->name, sizeof e->name, "%s", name);
  va_start(ap, fmt);
  vsnprintf(e->why, sizeof e->why, fmt, ap);
  va_end(ap);
  return -1;
}

static int pgt_scalar(const yaml_node_t *n) { return n->type == YAML_SCALAR_NODE; }
static const char *pgt_text(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static int pgt_ident(const yaml_node_t *v, const char *name, pgt_err *e) {
  if (!pgt_scalar(v)) return pgt_fail(e, v, name, "expected a name (got %s)", node_kind(v));
  size_t l = v->data.scalar.length;
  if (l == 0 || l > 63 || strlen(pgt_text(v)) != l)
    return pgt_fail(e, v, name, "expected a PostgreSQL name of 1 to 63 bytes");
  for (size_t i = 0; i < l; i++)
    if ((unsigned char)pgt_text(v)[i] < 0x20)
      return pgt_fail(e, v, name, "value contains a control character");
  return 0;
}

/* One table's entry -> a JSON object. */
static const char *const avro_types[] = {"string", "bytes", "long", "int", "double", "float",
                                         "boolean", NULL};

static int avro_type_ok(const char *t) {
  for (size_t i = 0; avro_types[i]; i++)
    if (!strcmp(t, avro_types[i])) return 1;
  return 0;
}

static int pgt_table(yaml_document_t *doc, const yaml_node_t *m, const char *tname, int kafka,
                     json_t *out, pgt_err *e) {
  char name[CFG_NAME_MAX * 4];
  if (node_is_null(m)) return 0;
  if (m->type != YAML_MAPPING_NODE)
    return pgt_fail(e, m, tname, "expected a mapping of %s (got %s)",
                    kafka ? "columns" : "schema, table, mode, columns", node_kind(m));
  for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(doc, p->key);
    yaml_node_t *v = yaml_document_get_node(doc, p->value);
    if (!pgt_scalar(k)) return pgt_fail(e, k, tname, "expected a setting name");
    const char *ks = pgt_text(k);
    snprintf(name, sizeof name, "%s.%.60s", tname, ks);
    if (json_object_get(out, ks)) return pgt_fail(e, k, name, "duplicate key");
    if (kafka && strcmp(ks, "columns") != 0) {
      return pgt_fail(e, k, name, "unknown setting (expected columns)");
    } else if (!strcmp(ks, "schema") || !strcmp(ks, "table")) {
      if (pgt_ident(v, name, e)) return -1;
      json_object_set_new(out, ks, json_string(pgt_text(v)));
    } else if (!strcmp(ks, "mode")) {
      static const char *const modes[] = {"replica", "history", "both"};
      int ok = 0;
      for (int i = 0; pgt_scalar(v) && i < 3; i++) ok |= !strcmp(pgt_text(v), modes[i]);
      if (!ok)
        return pgt_fail(e, v, name, "expected one of replica, history, both (got '%.64s')",
                        pgt_scalar(v) ? pgt_text(v) : node_kind(v));
      json_object_set_new(out, "mode", json_string(pgt_text(v)));
    } else if (!strcmp(ks, "columns")) {
      json_t *cols = json_object();
      json_object_set_new(out, "columns", cols);
      if (node_is_null(v)) continue;
      if (v->type != YAML_MAPPING_NODE)
        return pgt_fail(e, v, name, "expected a mapping of attribute path to PostgreSQL type "
                        "(got %s)", node_kind(v));
      for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top;
           q++) {
        yaml_node_t *ck = yaml_document_get_node(doc, q->key);
        yaml_node_t *cv = yaml_document_get_node(doc, q->value);
        char col[64], cname[CFG_NAME_MAX * 6];
        const char *path = pgt_scalar(ck) ? pgt_text(ck) : "";
        snprintf(cname, sizeof cname, "%s.%.60s", name, path);
        if (!pgt_scalar(ck) || strlen(path) != ck->data.scalar.length ||
            !trb_path_column(path, col, sizeof col))
          return pgt_fail(e, ck, cname, "expected an attribute path like a.b[0].c whose column "
                          "name (a_b_0_c) fits 63 bytes");
        if (json_object_get(cols, path)) return pgt_fail(e, ck, cname, "duplicate key");
        const char *op;
        json_t *ov;
        json_object_foreach(cols, op, ov) {
          char oc[64];
          if (trb_path_column(op, oc, sizeof oc) && !strcmp(oc, col))
            return pgt_fail(e, ck, cname, "its column name %s is also the column of %.60s (each "
                            "path needs a column of its own)", col, op);
        }
        if (kafka && (!pgt_scalar(cv) || !avro_type_ok(pgt_text(cv))))
          return pgt_fail(e, cv, cname, "expected one of string, bytes, long, int, double, "
                          "float, boolean (got '%.64s')", pgt_scalar(cv) ? pgt_text(cv)
                                                                         : node_kind(cv));
        if (kafka && strspn(col, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
                         strlen(col))
          return pgt_fail(e, ck, cname, "its column name %s is not an Avro name (letters, "
                          "digits and _)", col);
        if (kafka && col[0] >= '0' && col[0] <= '9')
          return pgt_fail(e, ck, cname, "its column name %s is not an Avro name (it starts "
                          "with a digit)", col);
        if (!kafka && (!pgt_scalar(cv) || !trb_sql_type_ok(pgt_text(cv))))
          return pgt_fail(e, cv, cname, "expected a PostgreSQL type in lowercase, like text, "
                          "numeric(12,2), bigint, boolean, timestamptz, double precision "
                          "(got '%.64s')", pgt_scalar(cv) ? pgt_text(cv) : node_kind(cv));
        json_object_set_new(cols, path, json_string(pgt_text(cv)));
      }
    } else {
      return pgt_fail(e, k, name, "unknown setting (expected schema, table, mode or columns)");
    }
  }
  return 0;
}

/* The whole mapping -> canonical JSON text in out (cap bytes). */
static int pgt_check(yaml_document_t *doc, const yaml_node_t *node, const char *sname,
                     int kafka, char *out, size_t cap, pgt_err *e) {
  json_t *all = json_object();
  int rc = 0;
  if (!node_is_null(node) && node->type != YAML_MAPPING_NODE)
    rc = pgt_fail(e, node, sname, "expected a mapping of table name to its settings (got %s)",
                  node_kind(node));
  for (yaml_node_pair_t *p = node->type == YAML_MAPPING_NODE ? node->data.mapping.pairs.start : NULL;
       !rc && p && p < node->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(doc, p->key);
    yaml_node_t *v = yaml_document_get_node(doc, p->value);
    char tname[CFG_NAME_MAX * 2];
    const char *t = pgt_scalar(k) ? pgt_text(k) : "";
    snprintf(tname, sizeof tname, "%s.%.255s", sname, t);
    size_t tl = pgt_scalar(k) ? k->data.scalar.length : 0;
    if (tl < 3 || tl > 255 || strlen(t) != tl ||
        strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != tl)
      rc = pgt_fail(e, k, tname, "expected a table name (3 to 255 of a-z A-Z 0-9 _ . -)");
    else if (json_object_get(all, t))
      rc = pgt_fail(e, k, tname, "duplicate key");
    if (rc) break;
    json_t *one = json_object();
    json_object_set_new(all, t, one);
    rc = pgt_table(doc, v, tname, kafka, one, e);
  }
  if (!rc) {
    char *txt = json_dumps(all, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!txt || strlen(txt) >= cap)
      rc = pgt_fail(e, node, sname, "too long (at most %zu bytes as JSON)", cap - 1);
    else
      memcpy(out, txt, strlen(txt) + 1);
    free(txt);
  }
  json_decref(all);
  return rc;
}

/* The same from text (a default, a command-line value): YAML, of which
 * JSON is a part. */
static int pgt_check_text(const char *text, const char *sname, int kafka, char *out, size_t cap,
                          pgt_err *e) {
  yaml_parser_t parser;
  yaml_document_t doc;
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", sname);
  if (!yaml_parser_initialize(&parser)) return snprintf(e->why, sizeof e->why, "out of memory"), -1;
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
  if (!yaml_parser_load(&parser, &doc)) {
    snprintf(e->why, sizeof e->why, "YAML syntax error: %s",
             parser.problem ? parser.problem : "unknown error");
    yaml_parser_delete(&parser);
    return -1;
  }
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  int rc = 0;
  if (!root) snprintf(out, cap, "{}");
  else rc = pgt_check(&doc, root, sname, kafka, out, cap, e);
  if (rc) e->line = 0; /* lines of a one-line value say nothing */
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  return rc;
}

/* ---- public: defaults, set -------------------------------------------- */

void trb_config_defaults(trb_config *cfg) {
  char why[256];
  memset(cfg, 0, sizeof *cfg);
  for (size_t i = 0; i < CFG_NSETTINGS; i++) {
    const cfg_setting *s = &cfg_settings[i];
    uint64_t num = 0;
    if (s->type == CFG_PGTABLES) {
      snprintf((char *)cfg + s->off, s->size, "%s", s->def);
      continue;
    }
    int rc = cfg_parse(s, s->def, strlen(s->def), &num, why, sizeof why);
    assert(rc == 0 && "a default in the settings table is invalid");
    assert(s->type != CFG_UINT32 || s->size == sizeof(uint32_t));
    assert(s->type != CFG_SIZE || s->size == sizeof(uint64_t));
    (void)rc;
    cfg_store(s, cfg, s->def, strlen(s->def), num);
  }
}

trb_err trb_config_set(trb_config *cfg, const char *name, const char *value,
                       trb_status *st) {
  char why[400];
  uint64_t num = 0;
  if (!cfg || !name || !value)
    return trb_status_set(st, TRB_EINVAL, "trb_config_set: NULL argument");
  const cfg_setting *s = cfg_find(name);
  if (!s && cfg_is_group(name))
    return cfg_fail(st, NULL, 0, name, "is a group of settings; set one of them by its "
                    "dotted name");
  if (!s) return cfg_unknown(st, NULL, 0, name);
  if (s->type == CFG_PGTABLES) {
    pgt_err pe;
    if (pgt_check_text(value, name, s->min == TBL_KAFKA, (char *)cfg + s->off, s->size, &pe))
      return cfg_fail(st, NULL, 0, pe.name, "%s", pe.why);
    return TRB_OK;
  }
  if (cfg_parse(s, value, strlen(value), &num, why, sizeof why) != 0)
    return cfg_fail(st, NULL, 0, name, "%s", why);
  cfg_store(s, cfg, value, strlen(value), num);
  return TRB_OK;
}

/* ---- the YAML loader --------------------------------------------------- */

typedef struct cfg_loader {
  const char *path;
  yaml_document_t *doc;
  trb_config *cfg;
  trb_status *st;
  size_t set_line[CFG_NSETTINGS]; /* line each setting was set at, 0 = not yet */
} cfg_loader;

static trb_err load_mapping(cfg_loader *ld, const yaml_node_t *map, const char *prefix) {
  yaml_node_pair_t *start = map->data.mapping.pairs.start;
  for (yaml_node_pair_t *p = start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *key = yaml_document_get_node(ld->doc, p->key);
    yaml_node_t *val = yaml_document_get_node(ld->doc, p->value);
    char name[CFG_NAME_MAX + 1], why[400];
    if (key->type != YAML_SCALAR_NODE || key->data.scalar.length == 0)
      return cfg_fail(ld->st, ld->path, LINE(key), prefix[0] ? prefix : NULL,
                      "expected a setting name (got %s)",
                      key->type == YAML_SCALAR_NODE ? "an empty key" : node_kind(key));
    const char *k = (const char *)key->data.scalar.value;
    size_t klen = key->data.scalar.length;
    int n = snprintf(name, sizeof name, "%s%s%s", prefix, prefix[0] ? "." : "", k);
    if (n < 0 || (size_t)n >= sizeof name || strlen(k) != klen)
      return cfg_fail(ld->st, ld->path, LINE(key), NULL, "unknown setting '%.64s...'", name);
    for (yaml_node_pair_t *q = start; q < p; q++) {
      yaml_node_t *prev = yaml_document_get_node(ld->doc, q->key);
      if (prev->type == YAML_SCALAR_NODE && prev->data.scalar.length == klen &&
          memcmp(prev->data.scalar.value, k, klen) == 0)
        return cfg_fail(ld->st, ld->path, LINE(key), name,
                        "duplicate key (first at line %zu)", LINE(prev));
    }

    const cfg_setting *s = cfg_find(name);
    if (s) {
      size_t idx = (size_t)(s - cfg_settings);
      uint64_t num = 0;
      if (ld->set_line[idx])
        return cfg_fail(ld->st, ld->path, LINE(key), name,
                        "set twice (first at line %zu)", ld->set_line[idx]);
      ld->set_line[idx] = LINE(key);
      if (s->type == CFG_PGTABLES) {
        pgt_err pe;
        if (pgt_check(ld->doc, val, name, s->min == TBL_KAFKA, (char *)ld->cfg + s->off,
                      s->size, &pe))
          return cfg_fail(ld->st, ld->path, pe.line, pe.name, "%s", pe.why);
        continue;
      }
      if (val->type != YAML_SCALAR_NODE)
        return cfg_fail(ld->st, ld->path, LINE(val), name,
                        "expected a single value (got %s)", node_kind(val));
      const char *text = (const char *)val->data.scalar.value;
      size_t len = val->data.scalar.length;
      if (cfg_parse(s, text, len, &num, why, sizeof why) != 0)
        return cfg_fail(ld->st, ld->path, LINE(val), name, "%s", why);
      cfg_store(s, ld->cfg, text, len, num);
    } else if (cfg_is_group(name)) {
      if (val->type == YAML_MAPPING_NODE) {
        trb_err rc = load_mapping(ld, val, name);
        if (rc) return rc;
      } else if (!node_is_null(val)) {
        return cfg_fail(ld->st, ld->path, LINE(val), name,
                        "expected a mapping of settings (got %s)", node_kind(val));
      }
    } else {
      return cfg_unknown(ld->st, ld->path, LINE(key), name);
    }
  }
  return TRB_OK;
}

/* The whole file (at most 1 MiB); on success *out is malloc'ed, caller frees. */
static trb_err read_file(const char *path, char **out, size_t *out_len, trb_status *st) {
  enum { CAP = 1 << 20 };
  trb_err rc = TRB_OK;
  FILE *f = fopen(path, "rb");
  if (!f) return cfg_fail(st, path, 0, NULL, "cannot read: %s", strerror(errno));
  char *buf = malloc(CAP + 1);
  size_t len = buf ? fread(buf, 1, CAP + 1, f) : 0;
  int err = ferror(f) ? errno : 0;
  fclose(f);
  if (!buf) return trb_status_set(st, TRB_ENOMEM, "%s: cannot read: out of memory", path);
  if (err) rc = cfg_fail(st, path, 0, NULL, "cannot read: %s", strerror(err));
  else if (len > CAP) rc = cfg_fail(st, path, 0, NULL, "cannot read: larger than %d bytes", CAP);
  if (rc) free(buf);
  else *out = buf, *out_len = len;
  return rc;
}

/* libyaml's problem mark; one found only at the end of the file (an
 * unclosed [ or {, say) is given on the file's last line that holds
 * something, not on the line after it. */
static trb_err yaml_fail(const char *path, const yaml_parser_t *parser, const char *text,
                         size_t len, trb_status *st) {
  if (parser->error == YAML_MEMORY_ERROR)
    return trb_status_set(st, TRB_ENOMEM, "%s: out of memory parsing YAML", path);
  size_t line = parser->problem_mark.line + 1;
  if (parser->problem_mark.index >= len) {
    size_t end = len, last = 1; /* the line of the last character that is not blank */
    while (end > 0 && strchr(" \t\r\n", text[end - 1])) end--;
    for (size_t i = 0; i < end; i++)
      if (text[i] == '\n') last++;
    if (line > last) line = last;
  }
  return cfg_fail(st, path, line, NULL, "YAML syntax error: %s%s%s%s",
                  parser->problem ? parser->problem : "unknown error",
                  parser->context ? " (" : "", parser->context ? parser->context : "",
                  parser->context ? ")" : "");
}

trb_err trb_config_load(const char *path, trb_config *cfg, trb_status *st) {
  trb_err rc;
  char *text = NULL;
  size_t len = 0;
  yaml_parser_t parser;
  yaml_document_t doc, extra;
  int have_parser = 0, have_doc = 0;

  if (!path || !cfg) return trb_status_set(st, TRB_EINVAL, "trb_config_load: NULL argument");
  if ((rc = read_file(path, &text, &len, st)) != TRB_OK) goto done;
  if (!yaml_parser_initialize(&parser)) {
    rc = trb_status_set(st, TRB_ENOMEM, "%s: out of memory parsing YAML", path);
    goto done;
  }
  have_parser = 1;
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  if (!yaml_parser_load(&parser, &doc)) {
    rc = yaml_fail(path, &parser, text, len, st);
    goto done;
  }
  have_doc = 1;
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (!root) goto done; /* empty file: all defaults */
  /* One document only; a second "---" would otherwise be ignored silently. */
  if (!yaml_parser_load(&parser, &extra)) {
    rc = yaml_fail(path, &parser, text, len, st);
    goto done;
  }
  yaml_node_t *more = yaml_document_get_root_node(&extra);
  if (more) rc = cfg_fail(st, path, LINE(more), NULL, "expected one YAML document (got more)");
  yaml_document_delete(&extra);
  if (rc) goto done;
  if (root->type == YAML_MAPPING_NODE) {
    cfg_loader ld = {.path = path, .doc = &doc, .cfg = cfg, .st = st};
    rc = load_mapping(&ld, root, "");
  } else if (!node_is_null(root)) { /* "~" alone is an empty file too */
    rc = cfg_fail(st, path, LINE(root), NULL,
                  "expected a mapping of settings at the top level (got %s)", node_kind(root));
  }
done:
  if (have_doc) yaml_document_delete(&doc);
  if (have_parser) yaml_parser_delete(&parser);
  free(text);
  return rc;
}

/* ---- documentation and the YAML writer -------------------------------- */

static const char *const cfg_type_names[] = {
    [CFG_STRING] = "string", [CFG_ENUM] = "enum", [CFG_UINT32] = "integer",
    [CFG_SIZE] = "size (bytes; suffixes K, M, G, KiB, MiB, GiB)", [CFG_HOSTPORT] = "host:port",
    [CFG_VIEWTABLES] = "TABLE:VIEW_TYPE list",
    [CFG_PGTABLES] = "mapping (table name: its settings)"};

void trb_config_print_doc(FILE *out) {
  char buf[512], lo[32], hi[32];
  for (size_t i = 0; i < CFG_NSETTINGS; i++) {
    const cfg_setting *s = &cfg_settings[i];
    fprintf(out, "%s%s\n  type:    %s\n  default: %s\n", i ? "\n" : "", s->name,
            cfg_type_names[s->type], s->def);
    fmt_size(s->min, lo, sizeof lo);
    fmt_size(s->max, hi, sizeof hi);
    if (s->type == CFG_ENUM) fmt_names(s->names, buf, sizeof buf);
    if (s->type == CFG_STRING)
      fprintf(out, "  length:  %llu to %zu bytes\n", (unsigned long long)s->min, s->size - 1);
    else if (s->type == CFG_ENUM) fprintf(out, "  values:  %s\n", buf);
    else if (s->type == CFG_UINT32)
      fprintf(out, "  range:   %llu to %llu\n", (unsigned long long)s->min,
              (unsigned long long)s->max);
    else if (s->type == CFG_SIZE) fprintf(out, "  range:   %s to %s\n", lo, hi);
    else if (s->type == CFG_PGTABLES)
      fprintf(out, s->min == TBL_KAFKA
                       ? "  example: {orders: {columns: {total: long, customer.name: string}}}\n"
                       : "  example: {orders: {mode: both, columns: {total: numeric, "
                         "customer.name: text}}}\n");
    else if (s->type == CFG_VIEWTABLES)
      fprintf(out, "  values:  TABLE:VIEW_TYPE, comma-separated; VIEW_TYPE one of KEYS_ONLY, "
                   "NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES\n");
    else fprintf(out, "  range:   port 0 (a free port) to 65535; IPv6 hosts in brackets\n");
    fprintf(out, "  %s\n", s->help);
  }
}

/* Strings are printed double-quoted; the parser refuses control characters,
 * so only '"' and '\' need escapes. */
static void print_value(const cfg_setting *s, const trb_config *cfg, FILE *out) {
  const char *field = (const char *)cfg + s->off;
  char buf[32];
  int e;
  uint32_t u32;
  uint64_t u64;
  if (s->type == CFG_ENUM && s->size == 0) {
    size_t n = 0;
    while (s->names[n]) n++;
    memcpy(&e, field, sizeof e);
    fputs(e >= 0 && (size_t)e < n ? s->names[e] : "invalid", out);
  } else if (s->type == CFG_ENUM) { /* enum names are plain words */
    fputs(field, out);
  } else if (s->type == CFG_UINT32) {
    memcpy(&u32, field, sizeof u32);
    fprintf(out, "%u", (unsigned)u32);
  } else if (s->type == CFG_PGTABLES) { /* JSON is YAML's flow style */
    fputs(field, out);
  } else if (s->type == CFG_SIZE) {
    memcpy(&u64, field, sizeof u64);
    fmt_size(u64, buf, sizeof buf);
    fputs(buf, out);
  } else {
    fputc('"', out);
    for (const char *p = field; *p; p++) {
      if (*p == '"' || *p == '\\') fputc('\\', out);
      fputc(*p, out);
    }
    fputc('"', out);
  }
}

void trb_config_print(const trb_config *cfg, FILE *out) {
  const char *prev = "";
  for (size_t i = 0; i < CFG_NSETTINGS; i++) {
    const cfg_setting *s = &cfg_settings[i];
    /* Skip the groups this setting shares with the previous one. */
    size_t same = 0, depth = 0;
    while (s->name[same] && s->name[same] == prev[same]) {
      if (s->name[same] == '.') depth++;
      same++;
    }
    while (same && s->name[same - 1] != '.') same--;
    if (depth == 0 && i) fputc('\n', out);
    /* Open the groups it does not share. */
    const char *comp = s->name + same;
    for (const char *dot; (dot = strchr(comp, '.')) != NULL; comp = dot + 1, depth++)
      fprintf(out, "%*s%.*s:\n", (int)(2 * depth), "", (int)(dot - comp), comp);
    fprintf(out, "%*s# %s\n%*s%s: ", (int)(2 * depth), "", s->help, (int)(2 * depth), "",
            comp);
    print_value(s, cfg, out);
    fputc('\n', out);
    prev = s->name;
  }
}
