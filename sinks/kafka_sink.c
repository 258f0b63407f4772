/*
 * kafka_sink.c -- the Kafka sink (see kafka_sink.h).
 *
 * MESSAGES
 *   topic      the template with {region} and {table} replaced
 *   partition  (hash32(partition key) * partitions) >> 32: the shard's
 *              hash range scaled to the topic, so an item's changes share a
 *              partition whatever shard they were in
 *   key        the item's key: Avro (schemas/tributary-key.avsc, entries in
 *              name order) or, with the JSON format, the Keys map as compact
 *              DynamoDB JSON with names in order
 *   value      the change (format); NULL for the tombstone after a REMOVE.
 *              Avro keys and values are framed in one of two ways:
 *              - a schema registry configured: Confluent's wire format (00,
 *                the schema id, 4 bytes big-endian, the datum), the ids
 *                those of subjects "<topic>-key" and "<topic>-value";
 *              - none: single-object encoding (C3 01, the schema's 64-bit
 *                fingerprint, the datum); the schemas themselves go to
 *                the schemas topic (compacted), keyed by their fingerprint
 *                in hex, once per producer
 *   headers    eventName, table, shardId, sequenceNumber, lsn (decimal),
 *              transactionId (when the change is part of one)
 *
 * CHECKPOINT MESSAGE (exactly once; offsets topic, key = transactional id)
 *   {"format": "tributary-kafka-checkpoint", "version": 2, "lsn": "<decimal>",
 *    "origin": "<decimal>",
 *    "tables": {"<table>": {"table_id": "<decimal>", "stream_lsn": "<decimal>",
 *                           "snapshot_lsn": "<decimal>"}, ...}}
 * origin: the LSN before the oldest record the sink could read when it
 * started; tables: those sent as a snapshot (see SNAPSHOTS), for the table
 * and stream they were sent for. Version 1 (lsn only) is read as origin 0,
 * no snapshots. The last committed one wins; a reader refuses another
 * format or a newer version.
 * It is produced first in its batch's transaction, so that its partition
 * joins the transaction and its request is sent while the batch is being
 * encoded: produced last, it cost every commit one more round trip
 * (bench_kafka: commit_transaction 5-8 ms a batch, now about 2).
 *
 * CHECKPOINT FILE (<data dir>/kafka-sink.checkpoint, both modes): the same
 * JSON, replaced durably after a batch Kafka has taken (committed, or
 * acknowledged): at least once, after every batch; exactly once, at most
 * every 250 ms and at stop. It can lag what Kafka holds, never lead it.
 *
 * EXACTLY ONCE, AND WHY IT DOES NOT RELY ON ONE THING
 * Where the processor resumes: the checkpoint file, else (a new data
 * directory on an existing Kafka) the newest checkpoint message. What is
 * already in Kafka is never sent again: before the sink first writes to a
 * partition it reads that partition's last message (read_committed) and its
 * lsn header; records with an LSN at or below it are skipped (a REMOVE whose
 * tombstone is missing gets just the tombstone). An idempotent producer
 * keeps each partition a prefix of what was sent to it, so this holds after
 * any crash, with transactions (real Kafka hides aborted batches, they are
 * sent again) and with brokers that do not filter aborted data (librdkafka's
 * mock cluster: what it shows is not sent again). After an aborted
 * transaction the tails are read again.
 *
 * SNAPSHOTS (opts.source set)
 * A table whose changes are not all in the WAL from the sink's beginning
 * (it had items before its stream was enabled, its stream was disabled and
 * enabled again, it is older than the WAL retention kept when the sink
 * started, or the sink's checkpoint fell behind what retention kept) is
 * first sent as snapshot reads: one message per item as of the store's
 * state at LSN S (op "r", eventName INSERT, the lsn and sequenceNumber of
 * S, a "snapshot: true" header), then its changes after S; its changes up
 * to S are skipped (the reads hold them), so one item's messages stay in
 * order. A table created with its stream after the sink's origin (the LSN
 * before the oldest record it could read when it started) is complete in
 * the WAL and needs none. The reads go in transactions of SNAP_CHUNK items
 * with the unchanged checkpoint; the last one also records the table as
 * done. A snapshot interrupted by a crash starts again at a new S: reads
 * sent before are sent again, at the newer state (so a consumer sees a
 * table's reads once more, never a change out of order). Tables are looked
 * at when the sink opens, at a change of a table (or stream) it has not
 * met, and when a batch covers WAL records that are not its changes (one
 * may be a stream's enabling; also once a second), for streams enabled on
 * tables nobody writes to.
 *
 * TYPED PROJECTION (kafka.tables, Avro only)
 * A table with columns gets the envelope with a last field, columns (see
 * transform/avro_projection.h): its own value schema, fingerprint and
 * registry subject "<topic>-value"; without a registry its schema goes to
 * the schemas topic in the transaction of the topic's first message. A
 * value that does not fit its column: stop_on_error, the delivery fails
 * with TRB_EFAILED naming the change (the sink stops, nothing skipped);
 * else the change goes with columns null and a tributary.error header, and
 * the same message to the dead-letter topic (in the same transaction).
 *
 * SCHEMA IDS
 * Registered when a topic gets its first message, inside the batch that
 * carries it, and kept in the topic's entry. The two registry calls are
 * bounded by timeout_ms / 2 each (at most TRB_REGISTRY_TIMEOUT_MS), so
 * together they stay within the transaction's timeout (2 * timeout_ms).
 * Registering the same schema again is harmless (the registry answers
 * with the id it has), so a crash never leaves anything to undo. Any
 * failure fails the delivery as TRB_EIO, so the processor retries with
 * backoff: a registry down, or one refusing the schema (409, 422) until
 * someone fixes it, holds the sink back, never drops a change or sends it
 * with another framing.
 */
#include "sinks/kafka_sink.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/keyenc.h"
#include "engine/value.h"
#include "sinks/schema_registry.h"
#include "transform/avro_envelope.h"
#include "transform/avro_projection.h"
#include "transform/stream_record.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/sysio.h"

#define CKPT_FORMAT "tributary-kafka-checkpoint"
#define CKPT_VERSION 2
#define SNAP_CHUNK 1000       /* snapshot reads per transaction */
#define SCAN_EVERY_NS 1000000000LL /* tables looked at for new streams */

/* What the sink knows of a table (see SNAPSHOTS). */
typedef struct ktab {
  char name[256];
  uint64_t tid, slsn;       /* the table and stream it was settled for */
  char label[32];           /* the newest stream label met for it */
  uint64_t s1;              /* its snapshot's LSN, 0 none: its changes up to it are skipped */
  int decided;              /* settled in this process */
} ktab;

typedef struct topic_ent {
  char name[512];
  rd_kafka_topic_t *t;
  int partitions;
  int64_t *tail;            /* per partition: LSN of its last message; -1 unknown, 0 none */
  unsigned char *tail_tomb; /* ... and whether that message was a tombstone */
  int have_ids;             /* with a registry: key_id and value_id are set */
  uint32_t key_id, value_id;
  trb_avro_proj *proj;      /* its table's typed projection, or NULL */
  int proj_schema;          /* without a registry: 1 its schema is on the schemas topic, 2
                               it is in the open transaction */
  char dlq[512];            /* the dead-letter topic */
} topic_ent;

typedef struct kafka_sink {
  trb_sink base;
  trb_kafka_sink_opts o;
  char brokers[2048], tmpl[256], region[64], txid[256], offsets[256], schemas[256],
      ckpath[4096], comp[16];
  rd_kafka_t *rk;
  rd_kafka_t *tails;        /* read_committed consumer reading partition tails */
  topic_ent *topics;
  size_t ntopics, captopics;
  char last_table[256];     /* the table whose topic is topics[last_topic] ("" none) */
  size_t last_topic;
  int in_txn;
  uint64_t ck_pending, ck_saved; /* exactly once: committed / in the checkpoint file */
  int64_t ck_written_ns;
  trb_avro *avro;           /* the Avro format's encoder */
  trb_registry *reg;        /* Avro with a schema registry: Confluent framing */
  int schemas_sent;
  trb_buf kbuf, vbuf;
  json_t *tables_cfg;       /* kafka.tables */
  uint64_t proj_errors_batch; /* in the batch being delivered */
  uint64_t proj_errors;     /* delivered (atomic: read by metrics) */
  char dlq_tmpl[256];
  /* snapshots */
  const trb_sink_source *src;
  ktab *tabs;
  size_t ntabs, captabs, last_tab;
  uint64_t ck;              /* the checkpoint Kafka (or the file) has */
  uint64_t origin;
  int64_t scanned_ns;
  uint64_t snap_items;      /* atomic: read by metrics */
  /* delivery reports (at least once) */
  long failed;
  char last_err[256];
} kafka_sink;

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  (void)rk;
  if (level <= 3) trb_log_error("kafka", "%s: %s", fac, buf);
  else if (level <= 4) trb_log_warn("kafka", "%s: %s", fac, buf);
  else if (level <= 6) trb_log_info("kafka", "%s: %s", fac, buf);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  kafka_sink *k = opaque;
  if (m->err) {
    k->failed++;
    snprintf(k->last_err, sizeof k->last_err, "%s", rd_kafka_err2str(m->err));
  }
}

static trb_err set(rd_kafka_conf_t *c, const char *name, const char *v, trb_status *st) {
  char err[512];
  if (rd_kafka_conf_set(c, name, v, err, sizeof err) != RD_KAFKA_CONF_OK)
    return trb_status_set(st, TRB_ECONFIG, "kafka: %s=%s: %s", name, v, err);
  return TRB_OK;
}

static trb_err make_producer(kafka_sink *k, trb_status *st) {
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  char tmo[24];
  snprintf(tmo, sizeof tmo, "%d", k->o.timeout_ms * 2);
  trb_err rc = set(c, "bootstrap.servers", k->brokers, st);
  if (!rc) rc = set(c, "acks", "all", st);
  if (!rc) rc = set(c, "enable.idempotence", "true", st);
  if (!rc) rc = set(c, "compression.type", k->comp, st);
  if (!rc) rc = set(c, "linger.ms", "2", st);
  if (!rc) rc = set(c, "client.id", "tributary", st);
  if (!rc && k->o.exactly_once) rc = set(c, "transactional.id", k->txid, st);
  if (!rc && k->o.exactly_once) rc = set(c, "transaction.timeout.ms", tmo, st);
  /* A message is retried until the transaction (or, at least once, the
   * batch) gives up: Kafka down means waiting, never dropping. */
  if (!rc) rc = set(c, "message.timeout.ms", k->o.exactly_once ? tmo : "0", st);
  if (rc) {
    rd_kafka_conf_destroy(c);
    return rc;
  }
  rd_kafka_conf_set_log_cb(c, log_cb);
  rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
  rd_kafka_conf_set_opaque(c, k);
  char err[512];
  k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
  if (!k->rk) {
    rd_kafka_conf_destroy(c);
    return trb_status_set(st, TRB_ECONFIG, "kafka: cannot create the producer: %s", err);
  }
  return TRB_OK;
}

static ktab *ktab_find(kafka_sink *k, const char *name) {
  if (k->last_tab < k->ntabs && !strcmp(k->tabs[k->last_tab].name, name))
    return &k->tabs[k->last_tab];
  for (size_t i = 0; i < k->ntabs; i++)
    if (!strcmp(k->tabs[i].name, name)) return &k->tabs[k->last_tab = i];
  return NULL;
}

static ktab *ktab_add(kafka_sink *k, const char *name) {
  if (strlen(name) >= sizeof k->tabs[0].name) return NULL;
  if (k->ntabs == k->captabs) {
    size_t nc = k->captabs ? 2 * k->captabs : 8;
    ktab *nt = realloc(k->tabs, nc * sizeof *nt);
    if (!nt) return NULL;
    k->tabs = nt, k->captabs = nc;
  }
  ktab *t = &k->tabs[k->ntabs++];
  memset(t, 0, sizeof *t);
  memcpy(t->name, name, strlen(name) + 1);
  return t;
}

static uint64_t dec_member(json_t *o, const char *name) {
  const char *v = json_string_value(json_object_get(o, name));
  return v ? strtoull(v, NULL, 10) : 0;
}

/* A checkpoint's JSON: *lsn, and *obj (caller-owned) for load_state. */
static trb_err parse_ckpt(const char *p, size_t n, const char *where, uint64_t *lsn,
                          json_t **obj, trb_status *st) {
  json_error_t je;
  json_t *o = json_loadb(p, n, 0, &je);
  const char *f = o ? json_string_value(json_object_get(o, "format")) : NULL;
  const char *l = o ? json_string_value(json_object_get(o, "lsn")) : NULL;
  json_t *v = o ? json_object_get(o, "version") : NULL;
  json_t *tabs = o ? json_object_get(o, "tables") : NULL;
  trb_err rc = TRB_OK;
  if (!f || strcmp(f, CKPT_FORMAT) || !l || !json_is_integer(v) ||
      (tabs && !json_is_object(tabs)))
    rc = trb_status_set(st, TRB_ECORRUPT, "kafka sink: %s is not a tributary checkpoint", where);
  else if (json_integer_value(v) < 1 || json_integer_value(v) > CKPT_VERSION)
    rc = trb_status_set(st, TRB_EVERSION, "kafka sink: %s has checkpoint version %lld; this "
                        "tributary reads versions 1 to %d", where,
                        (long long)json_integer_value(v), CKPT_VERSION);
  if (rc) {
    json_decref(o);
    return rc;
  }
  *lsn = strtoull(l, NULL, 10);
  *obj = o;
  return TRB_OK;
}

/* The origin and the tables' snapshots of a checkpoint (o borrowed). */
static trb_err load_state(kafka_sink *k, json_t *o, trb_status *st) {
  k->ntabs = 0;
  k->origin = dec_member(o, "origin");
  const char *name;
  json_t *v;
  json_object_foreach(json_object_get(o, "tables"), name, v) {
    ktab *t = ktab_add(k, name);
    if (!t) return trb_status_set(st, TRB_ENOMEM, "out of memory");
    t->tid = dec_member(v, "table_id");
    t->slsn = dec_member(v, "stream_lsn");
    t->s1 = dec_member(v, "snapshot_lsn");
  }
  return TRB_OK;
}

static char *ckpt_json(const kafka_sink *k, uint64_t lsn) {
  char l[24], org[24];
  snprintf(l, sizeof l, "%" PRIu64, lsn);
  snprintf(org, sizeof org, "%" PRIu64, k->origin);
  json_t *tabs = json_object();
  json_t *o = json_pack("{s:s,s:i,s:s,s:s,s:o}", "format", CKPT_FORMAT, "version", CKPT_VERSION,
                        "lsn", l, "origin", org, "tables", tabs);
  for (size_t i = 0; o && i < k->ntabs; i++) {
    const ktab *t = &k->tabs[i];
    if (!t->s1) continue;
    char a[24], b[24], c[24];
    snprintf(a, sizeof a, "%" PRIu64, t->tid);
    snprintf(b, sizeof b, "%" PRIu64, t->slsn);
    snprintf(c, sizeof c, "%" PRIu64, t->s1);
    if (json_object_set_new(tabs, t->name, json_pack("{s:s,s:s,s:s}", "table_id", a,
                                                     "stream_lsn", b, "snapshot_lsn", c))) {
      json_decref(o);
      return NULL;
    }
  }
  char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(o);
  return s;
}

/* A read_committed consumer for assign() (it commits nothing; the group id
 * is only what librdkafka wants to have). *out caller-owned. */
static trb_err new_consumer(kafka_sink *k, rd_kafka_t **out, trb_status *st) {
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  trb_err rc = set(c, "bootstrap.servers", k->brokers, st);
  if (!rc) rc = set(c, "isolation.level", "read_committed", st);
  if (!rc) rc = set(c, "enable.auto.commit", "false", st);
  if (!rc) rc = set(c, "group.id", k->txid[0] ? k->txid : "tributary-kafka-sink", st);
  if (rc) {
    rd_kafka_conf_destroy(c);
    return rc;
  }
  rd_kafka_conf_set_log_cb(c, log_cb);
  char err[512];
  *out = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
  if (!*out) {
    rd_kafka_conf_destroy(c);
    return trb_status_set(st, TRB_ECONFIG, "kafka: cannot create a consumer: %s", err);
  }
  return TRB_OK;
}

/* The newest committed checkpoint of this sink on the offsets topic. */
static trb_err read_kafka_ckpt(kafka_sink *k, uint64_t *lsn, json_t **obj, trb_status *st) {
  *lsn = 0;
  *obj = NULL;
  rd_kafka_t *cons = NULL;
  trb_err rc = new_consumer(k, &cons, st);
  if (rc) return rc;
  rd_kafka_topic_t *t = rd_kafka_topic_new(cons, k->offsets, NULL);
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t e = rd_kafka_metadata(cons, 0, t, &md, k->o.timeout_ms);
  rd_kafka_topic_destroy(t);
  int parts = 0;
  if (!e && md->topic_cnt == 1 && !md->topics[0].err) parts = md->topics[0].partition_cnt;
  else if (!e && md->topic_cnt == 1 &&
           md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
    parts = 0; /* no checkpoint yet */
  else
    rc = trb_status_set(st, TRB_EIO, "kafka: metadata of %s: %s", k->offsets,
                        rd_kafka_err2str(e ? e : md->topics[0].err));
  if (md) rd_kafka_metadata_destroy(md);
  rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(parts ? parts : 1);
  int64_t *hi = calloc((size_t)(parts ? parts : 1), sizeof *hi);
  int want = 0;
  for (int p = 0; !rc && p < parts; p++) {
    int64_t lo;
    e = rd_kafka_query_watermark_offsets(cons, k->offsets, p, &lo, &hi[p], k->o.timeout_ms);
    if (e) {
      rc = trb_status_set(st, TRB_EIO, "kafka: offsets of %s [%d]: %s", k->offsets, p,
                          rd_kafka_err2str(e));
      break;
    }
    if (hi[p] > lo) {
      rd_kafka_topic_partition_list_add(tp, k->offsets, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
      want++;
    }
  }
  if (!rc && want) {
    rd_kafka_assign(cons, tp);
    int done = 0;
    int idle = 0;
    while (done < want && idle < k->o.timeout_ms / 100) {
      rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 100);
      if (!m) {
        /* the position passes control records without messages: check it */
        rd_kafka_position(cons, tp);
        done = 0;
        for (int i = 0; i < tp->cnt; i++)
          if (tp->elems[i].offset >= hi[tp->elems[i].partition]) done++;
        idle++;
        continue;
      }
      idle = 0;
      if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
          trb_log_warn("kafka", "reading the checkpoint: %s", rd_kafka_message_errstr(m));
      } else if (m->key_len == strlen(k->txid) && !memcmp(m->key, k->txid, m->key_len) &&
                 m->payload) {
        uint64_t v = 0;
        json_t *co = NULL;
        if ((rc = parse_ckpt(m->payload, m->len, k->offsets, &v, &co, st))) {
          rd_kafka_message_destroy(m);
          break;
        }
        /* the last one: a snapshot's last transaction has the same LSN as
         * the one before, and the table it finished */
        if (v >= *lsn) {
          *lsn = v;
          json_decref(*obj);
          *obj = co;
        } else {
          json_decref(co);
        }
      }
      rd_kafka_message_destroy(m);
      rd_kafka_position(cons, tp);
      done = 0;
      for (int i = 0; i < tp->cnt; i++)
        if (tp->elems[i].offset >= hi[tp->elems[i].partition]) done++;
    }
    if (!rc && done < want)
      rc = trb_status_set(st, TRB_ETIMEDOUT, "kafka: could not read the checkpoints in %s to "
                          "their end", k->offsets);
  }
  free(hi);
  if (rc) {
    json_decref(*obj);
    *obj = NULL;
  }
  rd_kafka_topic_partition_list_destroy(tp);
  rd_kafka_consumer_close(cons);
  rd_kafka_destroy(cons);
  return rc;
}

static trb_err read_file_ckpt(kafka_sink *k, uint64_t *lsn, json_t **obj, int *have,
                             trb_status *st) {
  *have = 0;
  FILE *f = fopen(k->ckpath, "rb");
  if (!f) return TRB_OK;
  trb_buf b;
  trb_buf_init(&b, 0);
  char chunk[4096];
  size_t n;
  trb_err rc = TRB_OK;
  while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
    if (trb_buf_append(&b, chunk, n)) rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
  if (!rc && ferror(f)) rc = trb_status_set(st, TRB_EIO, "kafka sink: cannot read %s", k->ckpath);
  fclose(f);
  if (!rc) rc = parse_ckpt((const char *)b.p, b.len, k->ckpath, lsn, obj, st);
  trb_buf_fini(&b);
  if (!rc) *have = 1;
  return rc;
}

static void forget_tails(kafka_sink *k) {
  for (size_t i = 0; i < k->ntopics; i++)
    for (int p = 0; p < k->topics[i].partitions; p++) k->topics[i].tail[p] = -1;
}

/* LSN (and tombstone flag) of the last message of a partition. */
static trb_err read_tail(kafka_sink *k, topic_ent *te, int32_t part, trb_status *st) {
  if (!k->tails) {
    trb_err rc = new_consumer(k, &k->tails, st);
    if (rc) return rc;
  }
  int64_t lo = 0, hi = 0;
  rd_kafka_resp_err_t e =
      rd_kafka_query_watermark_offsets(k->tails, te->name, part, &lo, &hi, k->o.timeout_ms);
  if (e)
    return trb_status_set(st, TRB_EIO, "kafka: offsets of %s [%d]: %s", te->name, part,
                          rd_kafka_err2str(e));
  int64_t tail = 0;
  unsigned char tomb = 0;
  /* the last data message is among the last ones (the rest are markers) */
  for (int64_t back = 16; hi > lo; back *= 4) {
    int64_t from = hi - back > lo ? hi - back : lo;
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, te->name, part)->offset = from;
    rd_kafka_assign(k->tails, tp);
    int found = 0, idle = 0, complete = 0;
    while (idle <= k->o.timeout_ms / 100) {
      rd_kafka_message_t *m = rd_kafka_consumer_poll(k->tails, 100);
      if (!m) {
        rd_kafka_position(k->tails, tp);
        if (tp->elems[0].offset >= hi) {
          complete = 1;
          break;
        }
        idle++;
        continue;
      }
      if (!m->err && m->partition == part) {
        rd_kafka_headers_t *hd = NULL;
        const void *v = NULL;
        size_t vl = 0;
        /* snapshot reads carry their snapshot's LSN, which says nothing
         * of the changes sent to the partition (of other tables, too) */
        if (!rd_kafka_message_headers(m, &hd) &&
            rd_kafka_header_get_last(hd, "snapshot", &v, &vl) != RD_KAFKA_RESP_ERR_NO_ERROR &&
            !rd_kafka_header_get_last(hd, "lsn", &v, &vl) && v && vl < 24) {
          char b[24];
          memcpy(b, v, vl);
          b[vl] = 0;
          tail = (int64_t)strtoull(b, NULL, 10);
          tomb = m->payload == NULL;
          found = 1;
        }
        if (m->offset + 1 >= hi) complete = 1;
      }
      rd_kafka_message_destroy(m);
      if (complete) break;
    }
    rd_kafka_assign(k->tails, NULL);
    rd_kafka_topic_partition_list_destroy(tp);
    if (!complete)
      return trb_status_set(st, TRB_ETIMEDOUT, "kafka: could not read the end of %s [%d]",
                            te->name, part);
    if (found || from == lo) break;
  }
  te->tail[part] = tail;
  te->tail_tomb[part] = tomb;
  return TRB_OK;
}

/* A topic template with {region} and {table} replaced. */
static void expand(const kafka_sink *k, const char *tmpl, const char *table, char name[512]) {
  size_t o = 0;
  for (const char *p = tmpl; *p && o + 1 < 512;) {
    if (!strncmp(p, "{region}", 8)) {
      o += (size_t)snprintf(name + o, 512 - o, "%s", k->region);
      p += 8;
    } else if (!strncmp(p, "{table}", 7)) {
      o += (size_t)snprintf(name + o, 512 - o, "%s", table);
      p += 7;
    } else {
      name[o++] = *p++;
    }
    if (o >= 512) o = 511;
  }
  name[o] = 0;
}

static topic_ent *topic_for(kafka_sink *k, const char *table, trb_err *rc, trb_status *st) {
  *rc = TRB_EIO;
  /* the same table as the change before (nearly always): no expansion */
  if (k->last_table[0] && !strcmp(k->last_table, table)) return &k->topics[k->last_topic];
  char name[512];
  expand(k, k->tmpl, table, name);
  for (size_t i = 0; i < k->ntopics; i++)
    if (!strcmp(k->topics[i].name, name)) {
      if (strlen(table) < sizeof k->last_table) {
        memcpy(k->last_table, table, strlen(table) + 1);
        k->last_topic = i;
      }
      return &k->topics[i];
    }
  rd_kafka_topic_t *t = rd_kafka_topic_new(k->rk, name, NULL);
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t e = rd_kafka_metadata(k->rk, 0, t, &md, k->o.timeout_ms);
  int parts = 0;
  if (!e && md->topic_cnt == 1 && !md->topics[0].err) parts = md->topics[0].partition_cnt;
  if (!parts) {
    trb_status_set(st, TRB_EIO, "kafka: no partitions for topic %s: %s", name,
                   e ? rd_kafka_err2str(e)
                     : md && md->topic_cnt ? rd_kafka_err2str(md->topics[0].err)
                                           : "no metadata");
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return NULL;
  }
  rd_kafka_metadata_destroy(md);
  if (k->ntopics == k->captopics) {
    size_t nc = k->captopics ? k->captopics * 2 : 8;
    topic_ent *nt = realloc(k->topics, nc * sizeof *nt);
    if (!nt) {
      rd_kafka_topic_destroy(t);
      *rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
      return NULL;
    }
    k->topics = nt;
    k->captopics = nc;
  }
  topic_ent *te = &k->topics[k->ntopics];
  memset(te, 0, sizeof *te);
  te->tail = malloc((size_t)parts * sizeof *te->tail);
  te->tail_tomb = calloc((size_t)parts, 1);
  if (!te->tail || !te->tail_tomb) {
    free(te->tail);
    free(te->tail_tomb);
    rd_kafka_topic_destroy(t);
    *rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
    return NULL;
  }
  for (int p = 0; p < parts; p++) te->tail[p] = -1;
  json_t *cols = json_object_get(json_object_get(k->tables_cfg, table), "columns");
  if (k->avro && json_object_size(cols)) {
    trb_err prc = trb_avro_proj_create(k->avro, table, cols, &te->proj, st);
    if (prc) {
      free(te->tail);
      free(te->tail_tomb);
      rd_kafka_topic_destroy(t);
      *rc = prc == TRB_ECONFIG ? TRB_EFAILED : prc;
      return NULL;
    }
  }
  expand(k, k->dlq_tmpl, table, te->dlq);
  k->ntopics++;
  snprintf(te->name, sizeof te->name, "%s", name);
  te->t = t;
  te->partitions = parts;
  return te;
}

/* Keys as compact DynamoDB JSON, attribute names in order. */
static char *json_key(const trb_av *keys) {
  json_t *o = trb_item_to_json(keys);
  char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(o);
  return s;
}

/* The registry's ids of the topic's key and value schemas (subjects
 * "<topic>-key", "<topic>-value"), asked for once per topic. Any failure
 * is TRB_EIO (ENOMEM aside): the processor retries the batch. */
static trb_err topic_ids(kafka_sink *k, topic_ent *te, trb_status *st) {
  if (te->have_ids) return TRB_OK;
  char subj[sizeof te->name + 8];
  uint32_t ids[2];
  const char *sch[2] = {trb_avro_key_schema(k->avro),
                        te->proj ? trb_avro_proj_schema(te->proj) : trb_avro_value_schema(k->avro)};
  const char *suffix[2] = {"key", "value"};
  for (int i = 0; i < 2; i++) {
    trb_status rst;
    trb_status_init(&rst);
    snprintf(subj, sizeof subj, "%s-%s", te->name, suffix[i]);
    trb_err rc = trb_registry_register(k->reg, subj, sch[i], &ids[i], &rst);
    if (rc)
      return trb_status_set(st, rc == TRB_ENOMEM ? TRB_ENOMEM : TRB_EIO,
                            "kafka: registering the %s schema of %s: %s", suffix[i], te->name,
                            trb_status_msg(&rst));
  }
  te->key_id = ids[0];
  te->value_id = ids[1];
  te->have_ids = 1;
  trb_log_info("kafka", "topic %s: schema ids %" PRIu32 " (%s-key) and %" PRIu32
               " (%s-value) from %s", te->name, ids[0], te->name, ids[1], te->name,
               trb_registry_url(k->reg));
  return TRB_OK;
}

/* Produces, waiting while librdkafka's queue is full. */
static rd_kafka_resp_err_t produce(kafka_sink *k, rd_kafka_topic_t *t, int32_t part,
                                   const void *key, size_t kl, const void *val, size_t vl,
                                   rd_kafka_headers_t *hdrs) {
  for (;;) {
    rd_kafka_resp_err_t e =
        rd_kafka_producev(k->rk, RD_KAFKA_V_RKT(t), RD_KAFKA_V_PARTITION(part),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_KEY(key, kl), RD_KAFKA_V_VALUE((void *)val, vl),
                          RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) return e;
    rd_kafka_poll(k->rk, 10);
  }
}

/* A schema on the schemas topic, keyed by its fingerprint in hex. */
static trb_err send_schema(kafka_sink *k, const char *schema, uint64_t fp, trb_status *st) {
  char key[24];
  snprintf(key, sizeof key, "%016" PRIx64, fp);
  rd_kafka_resp_err_t pe = rd_kafka_producev(
      k->rk, RD_KAFKA_V_TOPIC(k->schemas), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)schema, strlen(schema)),
      RD_KAFKA_V_END);
  if (pe)
    return trb_status_set(st, TRB_EIO, "kafka: producing the schemas: %s", rd_kafka_err2str(pe));
  return TRB_OK;
}

/* Appends the columns field of r's change to k->vbuf. A value that does
 * not fit: stop (TRB_EFAILED), or null columns with the complaint in err. */
static trb_err project_item(kafka_sink *k, topic_ent *te, const char *table, uint64_t lsn,
                            const trb_av *item, char *err, size_t cap, trb_status *st) {
  trb_status pst;
  trb_status_init(&pst);
  trb_err rc = trb_avro_proj_encode(te->proj, item, &k->vbuf, &pst);
  if (rc != TRB_EINVAL) return rc ? trb_status_set(st, rc, "out of memory") : TRB_OK;
  if (k->o.stop_on_error)
    return trb_status_set(st, TRB_EFAILED, "kafka: table %s, LSN %" PRIu64 ": %s; the sink "
                          "stops (kafka.on_error: stop): fix the value or the projection and "
                          "restart", table, lsn, trb_status_msg(&pst));
  snprintf(err, cap, "%s", trb_status_msg(&pst));
  k->proj_errors_batch++;
  trb_log_warn("kafka", "table %s, LSN %" PRIu64 ": %s; the change goes with columns null and a "
               "tributary.error header, and to %s", table, lsn, err, te->dlq);
  return trb_avro_proj_encode_null(&k->vbuf);
}

static trb_err project(kafka_sink *k, topic_ent *te, const trb_sink_rec *r, char *err,
                       size_t cap, trb_status *st) {
  if (r->wal->kind == TRB_WAL_REMOVE) return trb_avro_proj_encode_null(&k->vbuf);
  trb_av *item = NULL;
  if (trb_av_decode(r->wal->new_img, r->wal->new_len, &item))
    return trb_status_set(st, TRB_ECORRUPT, "kafka: undecodable NewImage at LSN %" PRIu64,
                          r->wal->lsn);
  trb_err rc = project_item(k, te, r->stream->table, r->wal->lsn, item, err, cap, st);
  trb_av_destroy(item);
  return rc;
}

static trb_err produce_one(kafka_sink *k, const trb_sink_rec *r, trb_status *st) {
  if (k->src) {
    const ktab *kt = ktab_find(k, r->stream->table);
    if (kt && r->wal->lsn <= kt->s1) return TRB_OK; /* in the table's snapshot */
  }
  trb_err trc;
  topic_ent *te = topic_for(k, r->stream->table, &trc, st);
  if (!te) return trc;
  trb_av *keys = NULL;
  if (trb_av_decode(r->wal->keys, r->wal->keys_len, &keys))
    return trb_status_set(st, TRB_ECORRUPT, "kafka: undecodable keys at LSN %" PRIu64,
                          r->wal->lsn);
  const trb_av *pk = trb_av_m_get(keys, r->stream->ks.pk_name, strlen(r->stream->ks.pk_name));
  uint32_t h = pk ? trb_key_hash(pk) : 0;
  int32_t part = (int32_t)(((uint64_t)h * (uint64_t)te->partitions) >> 32);
  if (te->tail[part] < 0) {
    trb_err trc2 = read_tail(k, te, part, st);
    if (trc2) {
      trb_av_destroy(keys);
      return trc2;
    }
  }
  int64_t lsnv = (int64_t)r->wal->lsn;
  int want_tomb = r->wal->kind == TRB_WAL_REMOVE && k->o.tombstones;
  int skip_msg = lsnv <= te->tail[part];
  int skip_tomb = !want_tomb || lsnv < te->tail[part] ||
                  (lsnv == te->tail[part] && te->tail_tomb[part]);
  if (skip_msg && skip_tomb) { /* Kafka has it already */
    trb_av_destroy(keys);
    return TRB_OK;
  }
  char *key = NULL, *val = NULL;
  size_t kl, vl;
  char perr[400] = ""; /* the projection's complaint, if any */
  if (te->proj && !k->reg && te->proj_schema == 0) {
    trb_err src2 = send_schema(k, trb_avro_proj_schema(te->proj), trb_avro_proj_fingerprint(te->proj), st);
    if (src2) {
      trb_av_destroy(keys);
      return src2;
    }
    te->proj_schema = 2;
  }
  if (k->o.format == TRB_KAFKA_AVRO) {
    trb_avro_source src = {.table = r->stream->table, .region = k->region,
                           .shard_id = r->shard_id};
    trb_buf_reset(&k->kbuf);
    trb_buf_reset(&k->vbuf);
    trb_err arc = k->reg ? topic_ids(k, te, st) : TRB_OK;
    if (!arc)
      arc = k->reg ? trb_avro_frame_confluent(te->key_id, &k->kbuf)
                   : trb_avro_frame_single(trb_avro_key_fingerprint(k->avro), &k->kbuf);
    if (!arc) arc = trb_avro_encode_key(k->avro, keys, &k->kbuf, st);
    if (!arc)
      arc = k->reg ? trb_avro_frame_confluent(te->value_id, &k->vbuf)
                   : trb_avro_frame_single(te->proj ? trb_avro_proj_fingerprint(te->proj)
                                                    : trb_avro_value_fingerprint(k->avro),
                                           &k->vbuf);
    if (!arc) arc = trb_avro_encode_change(k->avro, r->wal, &src, &k->vbuf, st);
    if (!arc && te->proj) arc = project(k, te, r, perr, sizeof perr, st);
    trb_av_destroy(keys);
    if (arc) return arc;
    key = (char *)k->kbuf.p;
    kl = k->kbuf.len;
    val = (char *)k->vbuf.p;
    vl = k->vbuf.len;
  } else {
    key = json_key(keys);
    trb_av_destroy(keys);
    if (!key) return trb_status_set(st, TRB_ENOMEM, "out of memory");
    val = (char *)r->record;
    kl = strlen(key);
    vl = r->record_len;
  }
  char seq[TRB_SEQNO_BUF], lsn[24], txn[24];
  trb_seqno_format(r->wal->lsn, seq);
  snprintf(lsn, sizeof lsn, "%" PRIu64, r->wal->lsn);
  const char *ev = r->wal->kind == TRB_WAL_INSERT ? "INSERT"
                   : r->wal->kind == TRB_WAL_MODIFY ? "MODIFY" : "REMOVE";
  rd_kafka_headers_t *hd = rd_kafka_headers_new(6);
  rd_kafka_header_add(hd, "eventName", -1, ev, -1);
  rd_kafka_header_add(hd, "table", -1, r->stream->table, -1);
  rd_kafka_header_add(hd, "shardId", -1, r->shard_id, -1);
  rd_kafka_header_add(hd, "sequenceNumber", -1, seq, -1);
  rd_kafka_header_add(hd, "lsn", -1, lsn, -1);
  if (r->wal->txn_id) {
    snprintf(txn, sizeof txn, "%" PRIu64, r->wal->txn_id);
    rd_kafka_header_add(hd, "transactionId", -1, txn, -1);
  }
  /* the tombstone carries the delete's headers too (issue 5: "on every
   * message"), so consumers that route on them see it */
  rd_kafka_headers_t *th = skip_tomb ? NULL : rd_kafka_headers_copy(hd);
  if (perr[0]) rd_kafka_header_add(hd, "tributary.error", -1, perr, -1);
  rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (!skip_msg && perr[0]) { /* the dead-letter copy, with the same headers */
    rd_kafka_headers_t *dh = rd_kafka_headers_copy(hd);
    e = rd_kafka_producev(k->rk, RD_KAFKA_V_TOPIC(te->dlq), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_KEY(key, kl), RD_KAFKA_V_VALUE(val, vl),
                          RD_KAFKA_V_HEADERS(dh), RD_KAFKA_V_END);
    if (e) rd_kafka_headers_destroy(dh);
  }
  if (!skip_msg && !e) e = produce(k, te->t, part, key, kl, val, vl, hd);
  if (e || skip_msg) rd_kafka_headers_destroy(hd); /* owned by the message only once sent */
  if (!e && th) {
    e = produce(k, te->t, part, key, kl, NULL, 0, th);
    if (e) rd_kafka_headers_destroy(th);
  } else if (th) {
    rd_kafka_headers_destroy(th);
  }
  if (k->o.format != TRB_KAFKA_AVRO) free(key);
  if (e)
    return trb_status_set(st, e == RD_KAFKA_RESP_ERR__FATAL ? TRB_EFAILED : TRB_EIO,
                          "kafka: producing to %s: %s", te->name, rd_kafka_err2str(e));
  return TRB_OK;
}

static trb_err txn_error(kafka_sink *k, rd_kafka_error_t *e, const char *what, trb_status *st) {
  trb_err rc = TRB_EIO;
  if (rd_kafka_error_is_fatal(e)) {
    rc = TRB_EFAILED;
  } else if (rd_kafka_error_txn_requires_abort(e)) {
    rd_kafka_error_t *a = rd_kafka_abort_transaction(k->rk, k->o.timeout_ms);
    if (a && rd_kafka_error_is_fatal(a)) rc = TRB_EFAILED;
    if (a) rd_kafka_error_destroy(a);
    k->in_txn = 0;
  }
  forget_tails(k); /* what the broker shows now decides what is sent again */
  trb_status_set(st, rc, "kafka: %s: %s%s", what, rd_kafka_error_string(e),
                 rc == TRB_EFAILED ? " (fatal: the producer was fenced by another with the same "
                                     "transactional id, or is not authorized; the sink stops)"
                                   : "");
  rd_kafka_error_destroy(e);
  return rc;
}

/* The local checkpoint file: what Kafka has taken through lsn, and the
 * tables' snapshots. 0, or -1 when it could not be written. */
static int write_file_ckpt(kafka_sink *k, uint64_t lsn) {
  char *ck = ckpt_json(k, lsn);
  int w = ck ? trb_sys_write_file_durable(k->ckpath, ck, strlen(ck)) : -1;
  free(ck);
  return w < 0 ? -1 : 0;
}

/* The exactly-once mode's local checkpoint (see the top of this file). */
static void save_file_ckpt(kafka_sink *k) {
  if (write_file_ckpt(k, k->ck_pending))
    trb_log_warn("kafka", "cannot write %s; the next start re-reads more", k->ckpath);
  else k->ck_saved = k->ck_pending;
}

/* The projections' schemas sent in this batch: on the topic for good (ok)
 * or to be sent again. */
static void schemas_settle(kafka_sink *k, int ok) {
  for (size_t i = 0; i < k->ntopics; i++)
    if (k->topics[i].proj_schema == 2) k->topics[i].proj_schema = ok ? 1 : 0;
}

/* Gives up the transaction of a batch that failed (nothing without one).
 * When the abort fails too, in_txn stays set and the next delivery aborts
 * first. */
static void abort_batch(kafka_sink *k) {
  schemas_settle(k, 0);
  if (!k->in_txn) return;
  rd_kafka_error_t *a = rd_kafka_abort_transaction(k->rk, k->o.timeout_ms);
  if (a) rd_kafka_error_destroy(a);
  else k->in_txn = 0;
}

/* A batch's start: its transaction (exactly once), and the schemas where
 * consumers of single-object messages find them, before the first message
 * that needs them (any: nonempty). */
static trb_err batch_begin(kafka_sink *k, int nonempty, trb_status *st) {
  if (!k->rk) return trb_status_set(st, TRB_EFAILED, "kafka: the producer is gone");
  if (k->o.exactly_once) {
    if (k->in_txn) { /* a retry after a failure that left it open */
      rd_kafka_error_t *a = rd_kafka_abort_transaction(k->rk, k->o.timeout_ms);
      if (a) return txn_error(k, a, "abort_transaction", st);
      k->in_txn = 0;
    }
    rd_kafka_error_t *e = rd_kafka_begin_transaction(k->rk);
    if (e) return txn_error(k, e, "begin_transaction", st);
    k->in_txn = 1;
  }
  k->failed = 0;
  k->proj_errors_batch = 0;
  if (k->o.format == TRB_KAFKA_AVRO && !k->reg && !k->schemas_sent && nonempty) {
    const char *sch[2] = {trb_avro_key_schema(k->avro), trb_avro_value_schema(k->avro)};
    uint64_t fp[2] = {trb_avro_key_fingerprint(k->avro), trb_avro_value_fingerprint(k->avro)};
    for (int i = 0; i < 2; i++) {
      trb_err rc = send_schema(k, sch[i], fp[i], st);
      if (rc) {
        abort_batch(k);
        return rc;
      }
    }
  }
  return TRB_OK;
}

/* Exactly once: the checkpoint message, in the open transaction. */
static trb_err produce_ckpt(kafka_sink *k, uint64_t lsn, trb_status *st) {
  char *ck = ckpt_json(k, lsn);
  if (!ck) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  rd_kafka_resp_err_t pe = rd_kafka_producev(
      k->rk, RD_KAFKA_V_TOPIC(k->offsets), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_KEY(k->txid, strlen(k->txid)), RD_KAFKA_V_VALUE(ck, strlen(ck)), RD_KAFKA_V_END);
  free(ck);
  if (pe)
    return trb_status_set(st, TRB_EIO, "kafka: producing the checkpoint: %s",
                          rd_kafka_err2str(pe));
  return TRB_OK;
}

/* A batch's end: committed (exactly once) or acknowledged and the local
 * checkpoint written (at least once); through is the checkpoint then. On
 * failure nothing of it counts. */
static trb_err batch_commit(kafka_sink *k, uint64_t through, int nonempty, trb_status *st) {
  if (k->o.exactly_once) {
    rd_kafka_error_t *e = rd_kafka_commit_transaction(k->rk, k->o.timeout_ms);
    if (e) {
      schemas_settle(k, 0);
      return txn_error(k, e, "commit_transaction", st);
    }
    k->in_txn = 0;
    schemas_settle(k, 1);
    __atomic_add_fetch(&k->proj_errors, k->proj_errors_batch, __ATOMIC_RELAXED);
    if (nonempty) k->schemas_sent = 1;
    k->ck = through;
    /* Kafka has the batch. The file may lag it (the partitions' tails skip
     * what is there), so it is written at most every 250 ms, and at stop. */
    k->ck_pending = through;
    int64_t now = trb_mono_ns();
    if (now - k->ck_written_ns >= 250 * 1000000ll) {
      save_file_ckpt(k);
      k->ck_written_ns = now;
    }
    return TRB_OK;
  }
  /* At least once: Kafka acknowledges everything, then the local file. */
  rd_kafka_resp_err_t fe = rd_kafka_flush(k->rk, k->o.timeout_ms);
  schemas_settle(k, !fe && !k->failed);
  if (fe || k->failed) {
    forget_tails(k);
    return trb_status_set(st, TRB_EIO, "kafka: %s", fe ? rd_kafka_err2str(fe) : k->last_err);
  }
  __atomic_add_fetch(&k->proj_errors, k->proj_errors_batch, __ATOMIC_RELAXED);
  if (write_file_ckpt(k, through))
    return trb_status_set(st, TRB_EIO, "kafka sink: cannot write %s", k->ckpath);
  k->ck = through;
  if (nonempty) k->schemas_sent = 1;
  return TRB_OK;
}

/* ---- snapshots (see SNAPSHOTS at the top) -------------------------------- */

/* The JSON format's snapshot read: the Streams record of an INSERT of the
 * item at s1 (images as the view type gives an INSERT), its eventID made
 * the item's own (SHA-256 of the record's and the store key). */
static char *snapshot_json(kafka_sink *k, const ktab *t, trb_view view, uint64_t s1, int64_t us,
                           const trb_av *keys, const trb_av *item, const void *skey, size_t skl,
                           trb_status *st) {
  trb_buf kb, ib;
  trb_buf_init(&kb, 0);
  trb_buf_init(&ib, 0);
  char *out = NULL;
  json_t *rec = NULL;
  if (trb_av_encode(keys, &kb) || trb_av_encode(item, &ib)) {
    trb_status_set(st, TRB_ENOMEM, "out of memory");
    goto done;
  }
  trb_wal_rec w = {.lsn = s1, .commit_us = us, .kind = TRB_WAL_INSERT, .table_id = t->tid,
                   .table = t->name, .table_len = strlen(t->name), .keys = kb.p,
                   .keys_len = kb.len, .new_img = ib.p, .new_len = ib.len};
  trb_stream_rec_opts ro = {.view = view, .region = k->region};
  if (trb_stream_record(&w, &ro, &rec, st)) goto done;
  const char *id = json_string_value(json_object_get(rec, "eventID"));
  /* SHA-256("snapshot" || the record's eventID || the store key) */
  trb_buf hb;
  trb_buf_init(&hb, 0);
  unsigned char h[SHA256_DIGEST_LENGTH];
  if (trb_buf_append(&hb, "snapshot", 8) || (id && trb_buf_append(&hb, id, strlen(id))) ||
      trb_buf_append(&hb, skey, skl)) {
    trb_buf_fini(&hb);
    trb_status_set(st, TRB_ENOMEM, "out of memory");
    goto done;
  }
  SHA256(hb.p, hb.len, h);
  trb_buf_fini(&hb);
  char hex[33];
  for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", h[i]);
  if (json_object_set_new(rec, "eventID", json_string(hex)) ||
      !(out = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER)))
    trb_status_set(st, TRB_ENOMEM, "out of memory");
done:
  json_decref(rec);
  trb_buf_fini(&kb);
  trb_buf_fini(&ib);
  return out;
}

/* One snapshot read of table t's item (skey its store key) at s1. */
static trb_err produce_read(kafka_sink *k, topic_ent *te, const ktab *t, const trb_keyschema *ks,
                            trb_view view, uint64_t s1, int64_t us, const trb_av *item,
                            const void *skey, size_t skl, trb_status *st) {
  trb_av *keys = trb_key_from_item(ks, item);
  if (!keys) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  const trb_av *pk = trb_av_m_get(keys, ks->pk_name, strlen(ks->pk_name));
  uint32_t h = pk ? trb_key_hash(pk) : 0;
  int32_t part = (int32_t)(((uint64_t)h * (uint64_t)te->partitions) >> 32);
  char shard[64] = "";
  if (!k->src->locate || k->src->locate(k->src->ctx, t->tid, s1, keys, shard) != 1) shard[0] = 0;
  trb_err rc = TRB_OK;
  char perr[400] = "";
  char *key = NULL, *val = NULL;
  size_t kl = 0, vl = 0;
  if (te->proj && !k->reg && te->proj_schema == 0) {
    if ((rc = send_schema(k, trb_avro_proj_schema(te->proj), trb_avro_proj_fingerprint(te->proj),
                          st)))
      goto done;
    te->proj_schema = 2;
  }
  if (k->o.format == TRB_KAFKA_AVRO) {
    trb_avro_source src = {.table = t->name, .region = k->region, .shard_id = shard};
    trb_buf_reset(&k->kbuf);
    trb_buf_reset(&k->vbuf);
    rc = k->reg ? topic_ids(k, te, st) : TRB_OK;
    if (!rc)
      rc = k->reg ? trb_avro_frame_confluent(te->key_id, &k->kbuf)
                  : trb_avro_frame_single(trb_avro_key_fingerprint(k->avro), &k->kbuf);
    if (!rc) rc = trb_avro_encode_key(k->avro, keys, &k->kbuf, st);
    if (!rc)
      rc = k->reg ? trb_avro_frame_confluent(te->value_id, &k->vbuf)
                  : trb_avro_frame_single(te->proj ? trb_avro_proj_fingerprint(te->proj)
                                                   : trb_avro_value_fingerprint(k->avro),
                                          &k->vbuf);
    if (!rc) rc = trb_avro_encode_read(k->avro, item, s1, us, &src, &k->vbuf, st);
    if (!rc && te->proj) rc = project_item(k, te, t->name, s1, item, perr, sizeof perr, st);
    if (rc == TRB_EINVAL) /* what the store holds, Avro cannot carry: said, never skipped */
      rc = trb_status_set(st, TRB_ECORRUPT, "kafka: table %s: an item of its snapshot cannot "
                          "be encoded: %s", t->name, trb_status_msg(st));
    key = (char *)k->kbuf.p, kl = k->kbuf.len;
    val = (char *)k->vbuf.p, vl = k->vbuf.len;
  } else {
    key = json_key(keys);
    val = key ? snapshot_json(k, t, view, s1, us, keys, item, skey, skl, st) : NULL;
    if (!key) rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
    else if (!val) rc = TRB_ENOMEM;
    kl = key ? strlen(key) : 0;
    vl = val ? strlen(val) : 0;
  }
  if (rc) goto done;
  char seq[TRB_SEQNO_BUF], lsn[24];
  trb_seqno_format(s1, seq);
  snprintf(lsn, sizeof lsn, "%" PRIu64, s1);
  rd_kafka_headers_t *hd = rd_kafka_headers_new(7);
  rd_kafka_header_add(hd, "eventName", -1, "INSERT", -1);
  rd_kafka_header_add(hd, "table", -1, t->name, -1);
  if (shard[0]) rd_kafka_header_add(hd, "shardId", -1, shard, -1);
  rd_kafka_header_add(hd, "sequenceNumber", -1, seq, -1);
  rd_kafka_header_add(hd, "lsn", -1, lsn, -1);
  rd_kafka_header_add(hd, "snapshot", -1, "true", -1);
  if (perr[0]) rd_kafka_header_add(hd, "tributary.error", -1, perr, -1);
  rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (perr[0]) {
    rd_kafka_headers_t *dh = rd_kafka_headers_copy(hd);
    e = rd_kafka_producev(k->rk, RD_KAFKA_V_TOPIC(te->dlq), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_KEY(key, kl), RD_KAFKA_V_VALUE(val, vl),
                          RD_KAFKA_V_HEADERS(dh), RD_KAFKA_V_END);
    if (e) rd_kafka_headers_destroy(dh);
  }
  if (!e) e = produce(k, te->t, part, key, kl, val, vl, hd);
  if (e) {
    rd_kafka_headers_destroy(hd);
    rc = trb_status_set(st, e == RD_KAFKA_RESP_ERR__FATAL ? TRB_EFAILED : TRB_EIO,
                        "kafka: producing to %s: %s", te->name, rd_kafka_err2str(e));
  }
done:
  if (k->o.format != TRB_KAFKA_AVRO) free(key), free(val);
  trb_av_destroy(keys);
  return rc;
}

/* Sends table t (its table and stream ids set) as snapshot reads, in
 * transactions of SNAP_CHUNK with the unchanged checkpoint; the last one
 * records t->s1. */
static trb_err snapshot_table(kafka_sink *k, ktab *t, const trb_keyschema *ks, trb_view view,
                              uint64_t total, trb_status *st) {
  void *snap = NULL;
  uint64_t s1 = 0;
  trb_err rc = k->src->snap_open(k->src->ctx, t->name, NULL, 0, &snap, &s1, st);
  if (rc) return rc;
  int64_t us = trb_now_us();
  topic_ent *te = topic_for(k, t->name, &rc, st);
  if (!te) {
    k->src->snap_close(snap);
    return rc;
  }
  trb_log_info("kafka", "table %s: its changes are not all in the WAL; sending a snapshot at LSN "
               "%" PRIu64 " (%" PRIu64 " items) to %s as reads (op r), then its changes after it",
               t->name, s1, total, te->name);
  int64_t t0 = trb_mono_ns(), last_log = t0;
  uint64_t sent = 0;
  for (;;) {
    if ((rc = batch_begin(k, 1, st))) break;
    size_t m = 0;
    while (m < SNAP_CHUNK) {
      trb_av *item = NULL;
      const void *key;
      size_t kl;
      if ((rc = k->src->snap_next(snap, &item, &key, &kl, st)) || !item) break;
      rc = produce_read(k, te, t, ks, view, s1, us, item, key, kl, st);
      trb_av_destroy(item);
      if (rc) break;
      m++;
    }
    int last = !rc && m < SNAP_CHUNK;
    uint64_t was = t->s1;
    if (last) t->s1 = s1; /* done, with this transaction */
    if (!rc && k->o.exactly_once) rc = produce_ckpt(k, k->ck, st);
    if (!rc) rc = batch_commit(k, k->ck, 1, st);
    if (rc) {
      t->s1 = was;
      abort_batch(k);
      break;
    }
    sent += m;
    __atomic_add_fetch(&k->snap_items, m, __ATOMIC_RELAXED);
    int64_t now = trb_mono_ns();
    if (last || now - last_log >= 2000000000LL) {
      double secs = (double)(now - t0) / 1e9;
      double rate = secs > 0 ? (double)sent / secs : 0;
      double left = rate > 0 && total > sent ? (double)(total - sent) / rate : 0;
      trb_log_info("kafka", "table %s: snapshot %" PRIu64 " of about %" PRIu64 " items (%.0f%%), "
                   "%.0f items/s, about %.0f s left", t->name, sent, total,
                   total ? 100.0 * (double)sent / (double)total : 100.0, rate, left);
      last_log = now;
    }
    if (last) break;
  }
  k->src->snap_close(snap);
  if (rc) return rc;
  /* the file too, so that a start that reads it does not send it again */
  if (k->o.exactly_once) {
    k->ck_pending = k->ck;
    save_file_ckpt(k);
  }
  trb_log_info("kafka", "table %s: snapshot done; changes after LSN %" PRIu64 " follow", t->name,
               s1);
  return TRB_OK;
}

/* Settles what the sink sends of table name: everything the WAL has
 * (complete), its changes after a snapshot it has sent, or a snapshot now.
 * rtid / rlabel: the table id and stream label of the change that asks
 * (0 / NULL when none). */
static trb_err tab_decide(kafka_sink *k, const char *name, uint64_t rtid, const char *rlabel,
                          trb_status *st) {
  uint64_t tid = 0, slsn = 0, items = 0;
  trb_keyschema ks;
  trb_view view = TRB_VIEW_NEW_AND_OLD_IMAGES;
  char label[32] = "";
  int on = k->src->describe(k->src->ctx, name, &tid, &slsn, &items, &ks) == 1 && slsn;
  ktab *t = ktab_find(k, name);
  if (!t && !(t = ktab_add(k, name))) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  if (on && k->src->stream && k->src->stream(k->src->ctx, name, slsn, &view, label) != 1) {
    /* the streams have not taken in its start yet: settled at the next look */
    t->decided = 0;
    return TRB_OK;
  }
  t->decided = 1;
  if (!label[0] && rlabel) snprintf(label, sizeof label, "%s", rlabel);
  if (strcmp(label, t->label) > 0) snprintf(t->label, sizeof t->label, "%s", label);
  if (!on) {
    /* gone, or its stream off: its changes still in the WAL go as they are */
    if (rtid > t->tid) t->tid = rtid;
    t->slsn = 0;
    if (t->s1 <= k->ck) t->s1 = 0; /* nothing left to skip */
    return TRB_OK;
  }
  int complete = slsn == tid && tid > k->origin;
  int sent = t->s1 && t->tid == tid && t->slsn == slsn;
  if (complete && !sent && t->s1 <= k->ck) t->s1 = 0; /* an earlier table's, passed */
  t->tid = tid;
  t->slsn = slsn;
  if (complete || sent || !k->src->snap_open) return TRB_OK;
  trb_err rc = snapshot_table(k, t, &ks, view, items, st);
  if (rc == TRB_ENOTFOUND) { /* deleted meanwhile: its changes go as they are */
    t->slsn = 0;
    return TRB_OK;
  }
  return rc;
}

/* The tables with a stream the sink has not settled (yet, or since their
 * stream changed). */
static trb_err scan_tables(kafka_sink *k, trb_status *st) {
  k->scanned_ns = trb_mono_ns();
  if (!k->src->tables) return TRB_OK;
  char **names = NULL;
  size_t n = 0;
  trb_err rc = k->src->tables(k->src->ctx, &names, &n, st);
  for (size_t i = 0; !rc && i < n; i++) {
    uint64_t tid, slsn, items;
    trb_keyschema ks;
    if (k->src->describe(k->src->ctx, names[i], &tid, &slsn, &items, &ks) != 1 || !slsn)
      continue;
    const ktab *t = ktab_find(k, names[i]);
    if (t && t->decided && t->tid == tid && t->slsn == slsn) continue;
    rc = tab_decide(k, names[i], 0, NULL, st);
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  return rc;
}

static trb_err ks_open(trb_sink *s, uint64_t *checkpoint, trb_status *st) {
  kafka_sink *k = (kafka_sink *)s;
  *checkpoint = 0;
  if (!k->rk) {
    trb_err rc = make_producer(k, st);
    if (rc) return rc;
  }
  forget_tails(k);
  if (k->o.exactly_once) {
    /* Fences an older producer with this id and aborts what it left open,
     * so what read_committed shows next is final. */
    rd_kafka_error_t *e = rd_kafka_init_transactions(k->rk, k->o.timeout_ms);
    if (e) {
      trb_err rc = rd_kafka_error_is_fatal(e) ? TRB_EFAILED : TRB_EIO;
      trb_status_set(st, rc, "kafka: init_transactions: %s", rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
      if (rc == TRB_EFAILED) {
        rd_kafka_destroy(k->rk);
        k->rk = NULL;
      }
      return rc;
    }
    k->in_txn = 0;
  }
  int have = 0;
  json_t *obj = NULL;
  uint64_t ck = 0;
  trb_err rc = read_file_ckpt(k, &ck, &obj, &have, st);
  if (!rc && !have && k->o.exactly_once) {
    rc = read_kafka_ckpt(k, &ck, &obj, st);
    have = obj != NULL;
  }
  k->ntabs = 0;
  k->origin = 0;
  if (!rc && obj) rc = load_state(k, obj, st);
  json_decref(obj);
  if (rc) return rc;
  k->ck = ck;
  *checkpoint = ck;
  if (!k->src) return TRB_OK;
  uint64_t first = k->src->wal_first_lsn ? k->src->wal_first_lsn(k->src->ctx) : 0;
  if (!have) {
    k->origin = first > 1 ? first - 1 : 0;
  } else if (first > ck + 1) {
    trb_log_warn("kafka", "the WAL no longer holds the changes after the sink's checkpoint (LSN "
                 "%" PRIu64 "; it starts at %" PRIu64 "): every table with a stream is sent "
                 "again as a snapshot", ck, first);
    k->origin = first - 1;
    k->ntabs = 0;
  }
  if ((rc = scan_tables(k, st))) return rc;
  if (k->origin > *checkpoint) *checkpoint = k->origin; /* before it: in the snapshots */
  return TRB_OK;
}

static trb_err ks_deliver(trb_sink *s, const trb_sink_rec *recs, size_t n, uint64_t through,
                          trb_status *st) {
  kafka_sink *k = (kafka_sink *)s;
  trb_err rc;
  if (!k->rk) return trb_status_set(st, TRB_EFAILED, "kafka: the producer is gone");
  if (k->src) {
    /* First the tables: one met for the first time, created again or with
     * its stream enabled again may be sent as a snapshot here, which moves
     * what of the batch still goes. */
    for (size_t i = 0; i < n; i++) {
      const trb_sink_rec *r = &recs[i];
      const ktab *t = ktab_find(k, r->stream->table);
      if (t && t->decided && r->wal->table_id <= t->tid &&
          strcmp(r->stream->label, t->label) <= 0)
        continue;
      if ((rc = tab_decide(k, r->stream->table, r->wal->table_id, r->stream->label, st)))
        return rc;
    }
    /* The batch covers WAL records that are none of its changes (other
     * tables', or the one that enabled a stream): the tables are looked
     * at, so a stream enabled on a table nobody writes to is not missed;
     * and once a second anyway. */
    if (through - k->ck > n || trb_mono_ns() - k->scanned_ns >= SCAN_EVERY_NS) {
      /* the tables as the records read so far left them (the store
       * applies a record just after the WAL has it) */
      for (int i = 0; k->src->applied_lsn && i < 2000 && k->src->applied_lsn(k->src->ctx) < through;
           i++)
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
      if ((rc = scan_tables(k, st))) return rc;
    }
  }
  if ((rc = batch_begin(k, n > 0, st))) return rc;
  if (k->o.exactly_once) {
    /* The position goes first in the transaction: its partition joins the
     * transaction (AddPartitionsToTxn) and its produce request goes out
     * while the batch is being encoded, rather than in front of the commit,
     * which then waits for one round trip less. Where it sits in the
     * transaction does not matter: a read_committed consumer sees all of
     * it or none of it. */
    if ((rc = produce_ckpt(k, through, st))) {
      abort_batch(k);
      return rc;
    }
  }
  for (size_t i = 0; i < n; i++)
    if ((rc = produce_one(k, &recs[i], st))) {
      abort_batch(k);
      return rc;
    }
  return batch_commit(k, through, n > 0, st);
}

static void ks_destroy(trb_sink *s) {
  kafka_sink *k = (kafka_sink *)s;
  if (!k) return;
  if (k->ck_pending > k->ck_saved) save_file_ckpt(k);
  for (size_t i = 0; i < k->ntopics; i++) {
    rd_kafka_topic_destroy(k->topics[i].t);
    free(k->topics[i].tail);
    free(k->topics[i].tail_tomb);
    trb_avro_proj_destroy(k->topics[i].proj);
  }
  free(k->topics);
  free(k->tabs);
  json_decref(k->tables_cfg);
  trb_registry_destroy(k->reg);
  trb_avro_destroy(k->avro);
  trb_buf_fini(&k->kbuf);
  trb_buf_fini(&k->vbuf);
  if (k->tails) {
    rd_kafka_consumer_close(k->tails);
    rd_kafka_destroy(k->tails);
  }
  if (k->rk) {
    if (k->in_txn) {
      rd_kafka_error_t *a = rd_kafka_abort_transaction(k->rk, 5000);
      if (a) rd_kafka_error_destroy(a);
    }
    rd_kafka_flush(k->rk, 5000);
    rd_kafka_destroy(k->rk);
  }
  free(k);
}

void trb_kafka_sink_get_stats(trb_sink *s, trb_kafka_sink_stats *out) {
  kafka_sink *k = (kafka_sink *)s;
  out->projection_errors = __atomic_load_n(&k->proj_errors, __ATOMIC_RELAXED);
  out->snapshot_items = __atomic_load_n(&k->snap_items, __ATOMIC_RELAXED);
}

static const trb_sink_ops kafka_ops = {
    .kind = "kafka", .open = ks_open, .deliver = ks_deliver, .destroy = ks_destroy};

trb_err trb_kafka_sink_create(const trb_kafka_sink_opts *o, trb_sink **out, trb_status *st) {
  if (!o->brokers || !o->brokers[0])
    return trb_status_set(st, TRB_ECONFIG, "kafka: no brokers (kafka.brokers, or kafka.embedded)");
  if (o->exactly_once && (!o->transactional_id || !o->transactional_id[0]))
    return trb_status_set(st, TRB_ECONFIG, "kafka: exactly once needs a transactional id");
  if (!o->checkpoint_path || !o->checkpoint_path[0])
    return trb_status_set(st, TRB_ECONFIG, "kafka: the sink needs a checkpoint file");
  kafka_sink *k = calloc(1, sizeof *k);
  if (!k) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  k->base.ops = &kafka_ops;
  k->base.wants_record = o->format == TRB_KAFKA_JSON; /* Avro comes from the WAL record */
  k->o = *o;
  k->src = o->source;
  k->o.source = NULL;
  snprintf(k->brokers, sizeof k->brokers, "%s", o->brokers);
  snprintf(k->tmpl, sizeof k->tmpl, "%s", o->topic_template && o->topic_template[0]
                                              ? o->topic_template : "{region}.{table}");
  snprintf(k->region, sizeof k->region, "%s", o->region ? o->region : "us-east-1");
  snprintf(k->txid, sizeof k->txid, "%s", o->transactional_id ? o->transactional_id : "");
  snprintf(k->offsets, sizeof k->offsets, "%s",
           o->offsets_topic && o->offsets_topic[0] ? o->offsets_topic : "__tributary_offsets");
  snprintf(k->ckpath, sizeof k->ckpath, "%s", o->checkpoint_path ? o->checkpoint_path : "");
  snprintf(k->comp, sizeof k->comp, "%s", o->compression && o->compression[0] ? o->compression : "lz4");
  if (k->o.timeout_ms <= 0) k->o.timeout_ms = 30000;
  snprintf(k->schemas, sizeof k->schemas, "%s",
           o->schemas_topic && o->schemas_topic[0] ? o->schemas_topic : "__tributary_schemas");
  trb_buf_init(&k->kbuf, 0);
  trb_buf_init(&k->vbuf, 0);
  snprintf(k->dlq_tmpl, sizeof k->dlq_tmpl, "%s", o->dead_letter_topic && o->dead_letter_topic[0]
                                                      ? o->dead_letter_topic
                                                      : "{region}.{table}.errors");
  k->tables_cfg = json_loads(o->tables_json && o->tables_json[0] ? o->tables_json : "{}", 0, NULL);
  if (!json_is_object(k->tables_cfg)) {
    json_decref(k->tables_cfg);
    free(k);
    return trb_status_set(st, TRB_ECONFIG, "kafka.tables: not a mapping");
  }
  k->o.tables_json = k->o.dead_letter_topic = NULL; /* the caller's strings */
  if (o->format != TRB_KAFKA_AVRO) {
    const char *tn;
    json_t *tv;
    json_object_foreach(k->tables_cfg, tn, tv) if (json_object_size(json_object_get(tv, "columns")))
      trb_log_warn("kafka", "kafka.tables.%s.columns: a typed projection is part of the Avro "
                   "format; with kafka.format json it is not sent", tn);
  }
  int want_reg = o->schema_registry && o->schema_registry[0];
  if (k->o.format == TRB_KAFKA_AVRO) {
    trb_err rc = trb_avro_create(&k->avro, st);
    int rto = k->o.timeout_ms / 2 < TRB_REGISTRY_TIMEOUT_MS ? k->o.timeout_ms / 2
                                                            : TRB_REGISTRY_TIMEOUT_MS;
    if (rto < 1) rto = 1;
    if (!rc && want_reg) rc = trb_registry_create(o->schema_registry, rto, &k->reg, st);
    if (rc) {
      trb_avro_destroy(k->avro);
      json_decref(k->tables_cfg);
      free(k);
      return rc;
    }
  } else if (want_reg) {
    trb_log_warn("kafka", "kafka.schema_registry is set but kafka.format is json: the registry "
                 "is not used (it serves the Avro format)");
  }
  k->o.schema_registry = NULL; /* the caller's string: the handle has its own copy */
  *out = &k->base;
  return TRB_OK;
}
