/*
 * bench_pg.c -- the PostgreSQL sink end to end: from the WAL to rows
 * committed in a PostgreSQL replica table (exactly once: each batch, its
 * merge and its checkpoint rows in one transaction), against a plain COPY
 * of the same rows into the same server, and the latency from an
 * acknowledged write to its change being committed (visible to every other
 * session) in PostgreSQL.
 *
 * The workload, over --keys keys (pk S "c-NNNNNN", sk N 0..7), items of
 * about 200 bytes (pk, sk, status S, qty N, price N, seq N, note S of random
 * letters): 60% puts (new or replacing), 25% updates (SET seq, status), 15%
 * deletes, of keys that have an item (a put when 16 tries found none: every
 * write is a change); the mix is printed as it came out.
 *
 * Throughput: a fresh engine (wal sync=interval: the fill is not what is
 * measured), a table created with its stream (NEW_AND_OLD_IMAGES: complete
 * in the WAL, so the sink needs no snapshot), --records changes written in
 * batches of 64 with no sink running, the stream index caught up. Then,
 * each time from checkpoint 0 into a fresh schema:
 *   null_sink_*   the tailer with a sink that does nothing (the processor)
 *   pg_*          the PostgreSQL sink, max_batch 1000 (the tailer's default)
 *   pg_b5000_*    the same with max_batch 5000 (what `serve` uses)
 * changes/s count from the tailer's start (the sink's open included) until
 * its checkpoint is the last LSN; rows/s are the replica rows written after
 * collapsing each batch per key (trb_pg_sink_get_stats). *_backend_cpu_s is
 * the sink's PostgreSQL backend (/proc/PID/stat), *_client_cpu_s this
 * process, *_wal_bytes PostgreSQL's WAL written meanwhile;
 * *_replica_rows_match: count(*) of its replica = the engine's items.
 *
 * The ceiling, same run, same server: the same N rows (pk text, sk numeric,
 * item jsonb = the JSON the sink writes, NULL for a delete as in its stage
 * table, lsn bigint) in one COPY FROM STDIN (PQputCopyData in 256 KiB
 * chunks) into a fresh table with a non-unique btree index on (pk, sk),
 * timed from the COPY statement until its result (autocommit: its commit
 * included). merge_*: every change merged through a stage table, as the
 * sink does for keys that existed before their batch (new keys it COPYs
 * straight into the replica), without the sink, per 1000 changes
 * collapsed per key: BEGIN; DELETE FROM stage; COPY stage; DELETE
 * ... USING stage; INSERT ... SELECT ... ON CONFLICT DO UPDATE; the
 * checkpoint upsert; COMMIT.
 *
 * Latency: the engine reopened with wal sync=always (the default), the
 * first sink started again with max_batch 5000, as `serve` runs it (it
 * resumes from its checkpoint in PostgreSQL), 500 warm-up writes, then one thread paces --rate writes/s
 * for --seconds through trb_engine_write_async; the commit thread's answer
 * notes the acknowledgement time under the write's LSN, the wrapped sink's
 * deliver() notes when it returned (COMMIT done) for every LSN of its
 * batch. Latency = commit returned - acknowledged. At the end, count(*) of
 * the replica = the engine's item count (pg_rows_match).
 *
 * One `name=value` line per figure on stdout.
 *
 *   bench_pg --conninfo STR [--dir DIR] [--records N] [--keys K] [--rate R]
 *            [--seconds S]
 */
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "capture/tailer.h"
#include "capture/wal.h"
#include "engine/engine.h"
#include "sinks/pg_sink.h"
#include "transform/doc_json.h"
#include "transform/streams.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

#define TABLE "orders"
#define REGION "us-east-1"
#define FILL_BATCH 64
#define MERGE_BATCH 1000

static const char *g_conninfo;
static size_t g_records = 200000, g_keys = 100000;
static double g_rate = 10000, g_seconds = 5;
static int g_pid;

static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_pg: %s%s%s\n", what, msg ? ": " : "", msg ? msg : "");
  exit(1);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void sleep_until(int64_t ns) {
  struct timespec ts = {ns / 1000000000, ns % 1000000000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13, x ^= x >> 7, x ^= x << 17;
  return *s = x;
}

static double self_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of another process (a PostgreSQL backend on this machine). */
static double proc_cpu_s(int pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  unsigned long long ut = 0, stm = 0;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stm) != 2)
    return 0;
  return (double)(ut + stm) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- PostgreSQL, for this file's own statements ------------------------- */

static void no_notice(void *arg, const char *msg) { (void)arg, (void)msg; }

static PGconn *pg_connect(void) {
  PGconn *c = PQconnectdb(g_conninfo);
  if (PQstatus(c) != CONNECTION_OK) die("cannot connect to PostgreSQL", PQerrorMessage(c));
  PQsetNoticeProcessor(c, no_notice, NULL);
  return c;
}

static void pg_exec(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType s = PQresultStatus(r);
  if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
    fprintf(stderr, "bench_pg: %s\n", sql);
    die("statement failed", PQresultErrorMessage(r));
  }
  PQclear(r);
}

/* The first column of the first row of a query, as a number. */
static double pg_num(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) die(sql, PQresultErrorMessage(r));
  double v = atof(PQgetvalue(r, 0, 0));
  PQclear(r);
  return v;
}

static double pg_wal_bytes(PGconn *c) {
  return pg_num(c, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')");
}

static void pg_copy(PGconn *c, const char *sql, const unsigned char *p, size_t n) {
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COPY_IN) die(sql, PQresultErrorMessage(r));
  PQclear(r);
  for (size_t off = 0; off < n; off += 256 * 1024) {
    int m = (int)(n - off < 256 * 1024 ? n - off : 256 * 1024);
    if (PQputCopyData(c, (const char *)p + off, m) != 1) die("COPY", PQerrorMessage(c));
  }
  if (PQputCopyEnd(c, NULL) != 1) die("COPY end", PQerrorMessage(c));
  while ((r = PQgetResult(c))) {
    if (PQresultStatus(r) != PGRES_COMMAND_OK) die("COPY", PQresultErrorMessage(r));
    PQclear(r);
  }
}

/* ---- the workload --------------------------------------------------------- */

typedef struct gen {
  uint64_t rng, seq;
  unsigned char *present;   /* per key: it has an item (bytes: no shared words) */
  size_t puts, updates, deletes;
} gen;

/* One write and what it holds until it is answered. */
typedef struct op {
  trb_write *w;
  size_t k;
  trb_av *item, *key, *v1, *v2;
  trb_update_action act[2];
  trb_update upd;
} op;

static void key_attrs(trb_av *m, size_t k) {
  char pk[24];
  snprintf(pk, sizeof pk, "c-%06zu", k / 8);
  trb_dec d;
  trb_dec_from_i64((int64_t)(k % 8), &d);
  trb_av_m_set(m, "pk", 2, trb_av_new_s(pk, strlen(pk)));
  trb_av_m_set(m, "sk", 2, trb_av_new_n(&d));
}

static const char *const g_status[] = {"new", "paid", "packed", "shipped"};

static trb_av *num(int64_t v) {
  trb_dec d;
  trb_dec_from_i64(v, &d);
  return trb_av_new_n(&d);
}

/* About 200 bytes of DynamoDB item size. */
static trb_av *make_item(size_t k, uint64_t seq, uint64_t *rng) {
  char note[160];
  size_t len = 143 + xorshift(rng) % 16;
  for (size_t i = 0; i < len; i++) note[i] = (char)('a' + xorshift(rng) % 26);
  const char *s = g_status[seq % 4];
  trb_av *it = trb_av_new_m();
  key_attrs(it, k);
  trb_av_m_set(it, "status", 6, trb_av_new_s(s, strlen(s)));
  trb_av_m_set(it, "qty", 3, num((int64_t)(1 + xorshift(rng) % 50)));
  trb_av_m_set(it, "price", 5, num((int64_t)(xorshift(rng) % 100000)));
  trb_av_m_set(it, "seq", 3, num((int64_t)seq));
  trb_av_m_set(it, "note", 4, trb_av_new_s(note, len));
  return it;
}

/* The next write of the mix into o / w; images asked for when want. */
static void op_make(gen *g, op *o, trb_write *w, int want) {
  memset(o, 0, sizeof *o);
  memset(w, 0, sizeof *w);
  trb_status_init(&w->st);
  o->w = w;
  w->table = TABLE;
  unsigned r = (unsigned)(xorshift(&g->rng) % 100);
  uint64_t seq = ++g->seq;
  size_t k = xorshift(&g->rng) % g_keys;
  for (int i = 0; r >= 60 && !g->present[k] && i < 16; i++) k = xorshift(&g->rng) % g_keys;
  o->k = k;
  if (r < 60 || !g->present[k]) {
    o->item = make_item(k, seq, &g->rng);
    w->kind = TRB_W_PUT;
    w->item = o->item;
    g->present[k] = 1;
    g->puts++;
    return;
  }
  o->key = trb_av_new_m();
  key_attrs(o->key, k);
  w->key = o->key;
  if (r < 85) {
    const char *s = g_status[seq % 4];
    o->v1 = num((int64_t)seq);
    o->v2 = trb_av_new_s(s, strlen(s));
    o->act[0] = (trb_update_action){.attr = "seq", .value = o->v1};
    o->act[1] = (trb_update_action){.attr = "status", .value = o->v2};
    o->upd = (trb_update){.acts = o->act, .n = 2};
    w->kind = TRB_W_UPDATE;
    w->update = trb_update_apply;
    w->update_ctx = &o->upd;
    w->want_new = want;
    g->updates++;
  } else {
    w->kind = TRB_W_DELETE;
    g->present[k] = 0;
    g->deletes++;
  }
}

static void op_fini(op *o) {
  trb_write_fini(o->w);
  trb_av_destroy(o->item), trb_av_destroy(o->key), trb_av_destroy(o->v1), trb_av_destroy(o->v2);
}

/* COPY text: \ tab newline CR escaped. */
static void copy_esc(trb_buf *b, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = p[i], e = c == '\\' ? '\\' : c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : 0;
    if (e) trb_buf_append(b, "\\", 1), trb_buf_append(b, &e, 1);
    else trb_buf_append(b, &c, 1);
  }
}

/* The ceiling's rows: pk, sk, item (the sink's JSON; \N for a delete), lsn. */
typedef struct rows {
  trb_buf text, doc;
  size_t *off, *key, n;     /* per row: where its line starts, its key index */
  unsigned char *del;       /* per row: a delete */
} rows;

static void row_add(rows *rs, const op *o) {
  const trb_write *w = o->w;
  const trb_av *img = w->kind == TRB_W_PUT ? o->item : w->kind == TRB_W_UPDATE ? w->new_item : NULL;
  char head[48], tail[32];
  rs->off[rs->n] = rs->text.len;
  rs->del[rs->n] = !img;
  rs->key[rs->n++] = o->k;
  snprintf(head, sizeof head, "c-%06zu\t%zu\t", o->k / 8, o->k % 8);
  trb_buf_append(&rs->text, head, strlen(head));
  if (img) {
    trb_buf_reset(&rs->doc);
    if (trb_doc_json(img, &rs->doc)) die("doc json", NULL);
    copy_esc(&rs->text, (const char *)rs->doc.p, rs->doc.len);
  } else {
    trb_buf_append(&rs->text, "\\N", 2);
  }
  snprintf(tail, sizeof tail, "\t%" PRIu64 "\n", w->lsn);
  trb_buf_append(&rs->text, tail, strlen(tail));
}

/* ---- engine, table, stream ---------------------------------------------- */

typedef struct env {
  char dir[4200];
  trb_engine *e;
  trb_streams *s;
} env;

static void env_open(env *v, trb_wal_sync_mode sync, int create) {
  trb_engine_opts o;
  trb_engine_opts_default(&o);
  o.data_dir = v->dir;
  o.sync_mode = sync;
  trb_status st;
  trb_status_init(&st);
  if (trb_engine_open(&o, &v->e, &st)) die("engine open", trb_status_msg(&st));
  if (create) { /* created with its stream, as CreateTable with a StreamSpecification */
    trb_keyschema ks;
    memset(&ks, 0, sizeof ks);
    strcpy(ks.pk_name, "pk"), strcpy(ks.sk_name, "sk");
    ks.pk_type = TRB_T_S, ks.sk_type = TRB_T_N, ks.has_sk = 1;
    int64_t us = trb_now_us();
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char b[24], label[40];
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(label, sizeof label, "%s.%03d", b, (int)((us / 1000) % 1000));
    json_t *ext = json_pack("{s:{s:b,s:s},s:s,s:i}", "StreamSpecification", "StreamEnabled", 1,
                            "StreamViewType", "NEW_AND_OLD_IMAGES", "StreamLabel", label,
                            "StreamShards", 4);
    if (trb_table_create(v->e, TABLE, &ks, ext, NULL, &st))
      die("create table", trb_status_msg(&st));
    json_decref(ext);
  }
  trb_streams_opts so;
  trb_streams_opts_default(&so);
  so.wal = trb_engine_wal(v->e);
  so.region = REGION;
  if (trb_streams_start(&so, &v->s, &st)) die("streams start", trb_status_msg(&st));
  if (trb_streams_sync(v->s, 120000)) die("streams sync", NULL);
}

static void env_close(env *v) {
  trb_streams_stop(v->s);
  trb_engine_close(v->e);
}

static uint64_t item_count(env *v) {
  trb_table_info info;
  trb_status st;
  trb_status_init(&st);
  if (trb_table_describe(v->e, TABLE, &info, &st)) die("describe", trb_status_msg(&st));
  uint64_t n = info.item_count;
  trb_table_info_fini(&info);
  return n;
}

/* What the sink may ask of the engine (as cli/cmd_serve.c's pgsrc_*, less
 * the snapshots). */
static trb_err src_tables(void *ctx, char ***names, size_t *n, trb_status *st) {
  return trb_table_list(ctx, NULL, 0, names, n, NULL, st);
}

static int src_describe(void *ctx, const char *table, uint64_t *table_id, uint64_t *stream_lsn,
                        uint64_t *items, trb_keyschema *ks) {
  return trb_table_stream_facts(ctx, table, table_id, stream_lsn, items, ks);
}

static uint64_t src_first(void *ctx) { return trb_wal_first_lsn(trb_engine_wal(ctx)); }

/* ---- the wrapped sink ----------------------------------------------------- */

/* Monotonic ns per LSN (index lsn - base): acknowledged, committed in PG. */
typedef struct track {
  uint64_t base;
  size_t cap;
  int64_t *ack, *done;
} track;

static void mark(const track *t, int64_t *a, uint64_t lsn, int64_t now) {
  if (t && lsn >= t->base && lsn - t->base < t->cap)
    __atomic_store_n(&a[lsn - t->base], now, __ATOMIC_RELEASE);
}

typedef struct wrap_sink {
  trb_sink base;
  trb_sink *in;             /* NULL: a sink that does nothing */
  track *tr;                /* set once the measured window opens */
  uint64_t batches, records;
  int64_t deliver_ns, deliver_max_ns;
} wrap_sink;

static trb_err ws_open(trb_sink *s, uint64_t *ck, trb_status *st) {
  wrap_sink *w = (wrap_sink *)s;
  *ck = 0;
  return w->in ? w->in->ops->open(w->in, ck, st) : TRB_OK;
}

static trb_err ws_deliver(trb_sink *s, const trb_sink_rec *recs, size_t n, uint64_t through,
                          trb_status *st) {
  wrap_sink *w = (wrap_sink *)s;
  int64_t t0 = trb_mono_ns();
  trb_err rc = w->in ? w->in->ops->deliver(w->in, recs, n, through, st) : TRB_OK;
  int64_t now = trb_mono_ns();
  if (rc) return rc;
  track *tr = __atomic_load_n(&w->tr, __ATOMIC_ACQUIRE);
  for (size_t i = 0; tr && i < n; i++) mark(tr, tr->done, recs[i].wal->lsn, now);
  if (n) w->batches++, w->records += n, w->deliver_ns += now - t0;
  if (now - t0 > w->deliver_max_ns) w->deliver_max_ns = now - t0;
  return TRB_OK;
}

static void ws_destroy(trb_sink *s) {
  wrap_sink *w = (wrap_sink *)s;
  if (w->in) w->in->ops->destroy(w->in);
  free(w);
}

static const trb_sink_ops wrap_ops = {
    .kind = "postgres", .open = ws_open, .deliver = ws_deliver, .destroy = ws_destroy};

static trb_sink_source g_src;

/* A tailer with the PostgreSQL sink named tag (its schema bench_<pid>_<tag>),
 * or (tag NULL) with a sink that does nothing. */
static trb_tailer *run_sink(env *v, const char *tag, size_t max_batch, wrap_sink **out) {
  wrap_sink *w = calloc(1, sizeof *w);
  w->base.ops = &wrap_ops;
  trb_status st;
  trb_status_init(&st);
  if (tag) {
    char name[64], schema[64], ctl[64];
    snprintf(name, sizeof name, "bench-%d-%s", g_pid, tag);
    snprintf(schema, sizeof schema, "bench_%d_%s", g_pid, tag);
    snprintf(ctl, sizeof ctl, "bench_%d_ctl", g_pid);
    /* no snapshots: the table is complete in the WAL, and a snapshot would
     * be measured as changes (the sink refuses instead) */
    g_src = (trb_sink_source){.ctx = v->e, .tables = src_tables, .describe = src_describe,
                            .wal_first_lsn = src_first};
    trb_pg_sink_opts po = {.conninfo = g_conninfo, .sink_name = name, .schema = schema,
                           .control_schema = ctl, .mode = TRB_PG_REPLICA, .all_tables = 1,
                           .source = &g_src};
    if (trb_pg_sink_create(&po, &w->in, &st)) die("pg sink", trb_status_msg(&st));
    w->base.wants_record = w->in->wants_record;
  }
  trb_tailer_opts to = {.wal = trb_engine_wal(v->e), .streams = v->s, .region = REGION,
                        .max_batch = max_batch};
  trb_tailer *t;
  if (trb_tailer_start(&to, &w->base, &t, &st)) die("tailer start", trb_status_msg(&st));
  *out = w;
  return t;
}

/* Seconds until the tailer's checkpoint is last. */
static double tailer_wait(trb_tailer *t, uint64_t last, double timeout_s) {
  int64_t t0 = trb_mono_ns();
  trb_tailer_stats ts;
  for (;;) {
    trb_tailer_get_stats(t, &ts);
    if (ts.checkpoint >= last) return (double)(trb_mono_ns() - t0) / 1e9;
    if (ts.broken) die("the tailer broke (see the log)", NULL);
    if ((double)(trb_mono_ns() - t0) / 1e9 > timeout_s) {
      fprintf(stderr, "bench_pg: the sink reached LSN %" PRIu64 " of %" PRIu64 " in %.0f s\n",
              ts.checkpoint, last, timeout_s);
      exit(1);
    }
    struct timespec ts1 = {0, 200000};
    nanosleep(&ts1, NULL);
  }
}

static int backend_pid(PGconn *c) {
  return (int)pg_num(c, "SELECT coalesce(max(pid), 0) FROM pg_stat_activity "
                        "WHERE application_name = 'tributary'");
}

static double replica_count(PGconn *c, const char *tag) {
  char sql[200];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM bench_%d_%s." TABLE, g_pid, tag);
  return pg_num(c, sql);
}

/* One throughput run of the sink (tag NULL: the null sink) from checkpoint 0. */
static void throughput(env *v, PGconn *c, const char *tag, const char *prefix, size_t max_batch,
                       uint64_t last, uint64_t changes, double copy_rate) {
  double w0 = pg_wal_bytes(c), c0 = self_cpu_s();
  wrap_sink *w;
  trb_tailer *t = run_sink(v, tag, max_batch, &w);
  double secs = tailer_wait(t, last, 600);
  double cpu = self_cpu_s() - c0, rate = (double)changes / secs;
  printf("%s_changes_per_s=%.0f\n", prefix, rate);
  if (!tag) {
    trb_tailer_stop(t);
    return;
  }
  int pid = backend_pid(c);
  double bcpu = pid ? proc_cpu_s(pid) : 0;
  trb_pg_sink_stats ps;
  trb_pg_sink_get_stats(w->in, &ps);
  printf("%s_rows_per_s=%.0f\n", prefix, (double)ps.rows_applied / secs);
  printf("%s_rows_applied=%" PRIu64 "\n", prefix, ps.rows_applied);
  printf("%s_seconds=%.2f\n", prefix, secs);
  printf("%s_batches=%" PRIu64 "\n", prefix, w->batches);
  printf("%s_records_per_batch=%.1f\n", prefix,
         w->batches ? (double)w->records / (double)w->batches : 0);
  printf("%s_deliver_mean_ms=%.2f\n", prefix,
         w->batches ? (double)w->deliver_ns / (double)w->batches / 1e6 : 0);
  printf("%s_deliver_share=%.2f\n", prefix, (double)w->deliver_ns / 1e9 / secs);
  printf("%s_client_cpu_s=%.2f\n", prefix, cpu);
  printf("%s_backend_cpu_s=%.2f\n", prefix, bcpu);
  printf("%s_wal_bytes_per_change=%.0f\n", prefix, (pg_wal_bytes(c) - w0) / (double)changes);
  if (copy_rate > 0) printf("%s_vs_copy=%.2f\n", prefix, rate / copy_rate);
  trb_tailer_stop(t);
  printf("%s_replica_rows_match=%d\n", prefix, replica_count(c, tag) == (double)item_count(v));
  fflush(stdout);
}

/* The sink's statements without the sink: per MERGE_BATCH changes collapsed
 * to the last per key, one transaction. Changes/s. */
static double merge_ceiling(PGconn *c, rows *rs, double *bcpu) {
  char sql[1024], dest[64];
  snprintf(dest, sizeof dest, "bench_%d_merge.t", g_pid);
  snprintf(sql, sizeof sql,
           "CREATE SCHEMA bench_%d_merge; CREATE TABLE %s (pk text NOT NULL, sk numeric NOT "
           "NULL, item jsonb NOT NULL, lsn bigint NOT NULL, PRIMARY KEY (pk, sk)); CREATE TABLE "
           "bench_%d_merge.ck (sink text, shard_id text, lsn bigint, sequence_number text, "
           "updated_at timestamptz, PRIMARY KEY (sink, shard_id)); CREATE TEMPORARY TABLE stage "
           "(pk text, sk numeric, item jsonb, lsn bigint, del boolean) ON COMMIT DELETE ROWS",
           g_pid, dest, g_pid);
  pg_exec(c, sql);
  size_t *last = malloc(g_keys * sizeof *last);
  trb_buf b;
  trb_buf_init(&b, 0);
  double cpu0 = proc_cpu_s(PQbackendPID(c));
  int64_t t0 = trb_mono_ns();
  for (size_t i0 = 0; i0 < rs->n; i0 += MERGE_BATCH) {
    size_t i1 = i0 + MERGE_BATCH < rs->n ? i0 + MERGE_BATCH : rs->n;
    for (size_t i = i0; i < i1; i++) last[rs->key[i]] = i;
    trb_buf_reset(&b);
    for (size_t i = i0; i < i1; i++) {
      if (last[rs->key[i]] != i) continue;
      size_t end = i + 1 < rs->n ? rs->off[i + 1] : rs->text.len;
      const char *line = (const char *)rs->text.p + rs->off[i];
      size_t len = end - rs->off[i] - 1;
      trb_buf_append(&b, line, len);
      trb_buf_append(&b, rs->del[i] ? "\tt\n" : "\tf\n", 3);
    }
    pg_exec(c, "BEGIN");
    pg_exec(c, "DELETE FROM stage");
    pg_copy(c, "COPY stage FROM STDIN", b.p, b.len);
    snprintf(sql, sizeof sql, "DELETE FROM %s d USING stage s WHERE s.del AND d.pk = s.pk AND "
             "d.sk = s.sk", dest);
    pg_exec(c, sql);
    snprintf(sql, sizeof sql, "INSERT INTO %s (pk, sk, item, lsn) SELECT s.pk, s.sk, s.item, "
             "s.lsn FROM stage s WHERE NOT s.del ON CONFLICT (pk, sk) DO UPDATE SET item = "
             "EXCLUDED.item, lsn = EXCLUDED.lsn", dest);
    pg_exec(c, sql);
    snprintf(sql, sizeof sql, "INSERT INTO bench_%d_merge.ck VALUES ('m', '*', %zu, NULL, now()) "
             "ON CONFLICT (sink, shard_id) DO UPDATE SET lsn = EXCLUDED.lsn, updated_at = now()",
             g_pid, i1);
    pg_exec(c, sql);
    pg_exec(c, "COMMIT");
  }
  double secs = (double)(trb_mono_ns() - t0) / 1e9;
  *bcpu = proc_cpu_s(PQbackendPID(c)) - cpu0;
  free(last);
  trb_buf_fini(&b);
  return (double)rs->n / secs;
}

/* ---- latency ------------------------------------------------------------ */

static int64_t g_acked;

typedef struct actx {
  op o;
  track *tr;
} actx;

static void ack_done(void *p) {
  actx *a = p;
  int64_t now = trb_mono_ns();
  if (a->o.w->rc) die("a paced write failed", trb_status_msg(&a->o.w->st));
  mark(a->tr, a->tr->ack, a->o.w->lsn, now);
  __atomic_add_fetch(&g_acked, 1, __ATOMIC_RELEASE);
}

static void latency(env *v, PGconn *c, gen *g) {
  wrap_sink *ws;
  trb_tailer *t = run_sink(v, "b1000", 5000, &ws); /* serve's max_batch */
  for (int i = 0; i < 500; i++) { /* warm-up, synchronous */
    op o;
    trb_write w;
    op_make(g, &o, &w, 0);
    trb_status st;
    trb_status_init(&st);
    if (trb_engine_write(v->e, &w, 1, 0, &st) || w.rc) die("warm-up write", trb_status_msg(&w.st));
    op_fini(&o);
  }
  tailer_wait(t, trb_wal_last_lsn(trb_engine_wal(v->e)), 120);
  size_t n = (size_t)(g_rate * g_seconds);
  track tr = {.base = trb_wal_last_lsn(trb_engine_wal(v->e)) + 1, .cap = n + 1000};
  tr.ack = calloc(tr.cap, sizeof *tr.ack);
  tr.done = calloc(tr.cap, sizeof *tr.done);
  actx *a = calloc(n, sizeof *a);
  trb_write *wv = calloc(n, sizeof *wv);
  if (!tr.ack || !tr.done || !a || !wv) die("out of memory", NULL);
  __atomic_store_n(&ws->tr, &tr, __ATOMIC_RELEASE);
  size_t late = 0;
  int64_t start = trb_mono_ns() + 10000000, interval = (int64_t)(1e9 / g_rate);
  for (size_t i = 0; i < n; i++) {
    int64_t due = start + (int64_t)i * interval, now = trb_mono_ns();
    if (now < due) sleep_until(due);
    else if (now - due > 1000000) late++;
    a[i].tr = &tr;
    op_make(g, &a[i].o, &wv[i], 0);
    if (!trb_engine_write_async(v->e, &wv[i], ack_done, &a[i]))
      die("a paced write was refused", trb_status_msg(&wv[i].st));
  }
  while (__atomic_load_n(&g_acked, __ATOMIC_ACQUIRE) < (int64_t)n)
    sleep_until(trb_mono_ns() + 100000);
  int64_t last_ack = 0;
  for (size_t i = 0; i < tr.cap; i++) last_ack = tr.ack[i] > last_ack ? tr.ack[i] : last_ack;
  tailer_wait(t, trb_wal_last_lsn(trb_engine_wal(v->e)), 120);
  int64_t *d = malloc(n * sizeof *d);
  size_t m = 0, neg = 0;
  for (size_t i = 0; i < tr.cap; i++) {
    if (!tr.ack[i] || !tr.done[i]) continue;
    d[m] = tr.done[i] - tr.ack[i];
    neg += d[m++] < 0;
  }
  qsort(d, m, sizeof *d, cmp_i64);
  printf("achieved_writes_per_s=%.0f\n", (double)n / ((double)(last_ack - start) / 1e9));
  printf("pg_latency_writes=%zu\n", m);
  printf("pg_latency_p50_ms=%.2f\n", m ? (double)d[m / 2] / 1e6 : 0);
  printf("pg_latency_p99_ms=%.2f\n", m ? (double)d[m * 99 / 100] / 1e6 : 0);
  printf("pg_latency_max_ms=%.2f\n", m ? (double)d[m - 1] / 1e6 : 0);
  if (neg) printf("pg_latency_before_ack=%zu\n", neg);
  if (late) printf("pg_latency_late_starts=%zu\n", late);
  printf("pg_latency_records_per_batch=%.1f\n",
         ws->batches ? (double)ws->records / (double)ws->batches : 0);
  printf("pg_latency_deliver_mean_ms=%.2f\n",
         ws->batches ? (double)ws->deliver_ns / (double)ws->batches / 1e6 : 0);
  printf("pg_latency_deliver_max_ms=%.2f\n", (double)ws->deliver_max_ns / 1e6);
  trb_tailer_stop(t);
  double rep = replica_count(c, "b1000"), items = (double)item_count(v);
  printf("pg_rows_match=%d\n", rep == items);
  if (rep != items) printf("pg_rows_replica=%.0f\npg_rows_engine=%.0f\n", rep, items);
  fflush(stdout);
  for (size_t i = 0; i < n; i++) op_fini(&a[i].o);
  free(a), free(wv), free(d), free(tr.ack), free(tr.done);
}

/* ---- main ------------------------------------------------------------------ */

static void usage(FILE *f) {
  fprintf(f, "usage: bench_pg --conninfo STR [--dir DIR] [--records N] [--keys K] [--rate R]\n"
             "                [--seconds S]\n");
}

int main(int argc, char **argv) {
  const char *dir = "/tmp/trb-bench-pg";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help")) return usage(stdout), 0;
    if (!val) return usage(stderr), 2;
    if (!strcmp(a, "--conninfo")) g_conninfo = val;
    else if (!strcmp(a, "--dir")) dir = val;
    else if (!strcmp(a, "--records")) g_records = strtoull(val, NULL, 10);
    else if (!strcmp(a, "--keys")) g_keys = strtoull(val, NULL, 10);
    else if (!strcmp(a, "--rate")) g_rate = atof(val);
    else if (!strcmp(a, "--seconds")) g_seconds = atof(val);
    else return usage(stderr), 2;
    i++;
  }
  if (!g_conninfo || g_records < 1000 || g_keys < 8 || g_rate <= 0 || g_seconds <= 0) {
    usage(stderr);
    fprintf(stderr, "bench_pg: --conninfo is required; --records >= 1000, --keys >= 8, "
                    "--rate and --seconds > 0\n");
    return 2;
  }
  trb_log_set_level(TRB_LOG_WARN);
  g_pid = (int)getpid();
  env v;
  memset(&v, 0, sizeof v);
  snprintf(v.dir, sizeof v.dir, "%s/engine-%d", dir, g_pid);
  PGconn *c = pg_connect();
  char cmd[8600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", v.dir, v.dir);
  if (system(cmd)) die("cannot make", v.dir);
  PGresult *r = PQexec(c, "SELECT current_setting('server_version'), current_setting('fsync'), "
                          "current_setting('synchronous_commit'), "
                          "current_setting('shared_buffers')");
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
    printf("cpus=%ld\npg_server_version=%s\npg_fsync=%s\npg_synchronous_commit=%s\n"
           "pg_shared_buffers=%s\n", sysconf(_SC_NPROCESSORS_ONLN), PQgetvalue(r, 0, 0),
           PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3));
  PQclear(r);

  /* The fill: no sink running; the ceiling's rows noted on the way. */
  env_open(&v, TRB_WAL_SYNC_INTERVAL, 1);
  gen g = {.rng = 0x9E3779B97F4A7C15ull, .present = calloc(g_keys, 1)};
  rows rs = {.off = calloc(g_records, sizeof(size_t)), .key = calloc(g_records, sizeof(size_t)),
             .del = calloc(g_records, 1)};
  trb_buf_init(&rs.text, 0), trb_buf_init(&rs.doc, 0);
  int64_t f0 = trb_mono_ns();
  size_t nochange = 0;
  for (size_t done = 0; done < g_records;) {
    size_t m = g_records - done < FILL_BATCH ? g_records - done : FILL_BATCH;
    op o[FILL_BATCH];
    trb_write w[FILL_BATCH];
    for (size_t j = 0; j < m; j++) op_make(&g, &o[j], &w[j], 1);
    trb_status st;
    trb_status_init(&st);
    if (trb_engine_write(v.e, w, m, 0, &st)) die("fill", trb_status_msg(&st));
    for (size_t j = 0; j < m; j++) {
      if (w[j].rc) die("fill write", trb_status_msg(&w[j].st));
      if (w[j].lsn) row_add(&rs, &o[j]);
      else nochange++;
      op_fini(&o[j]);
    }
    done += m;
  }
  if (trb_streams_sync(v.s, 120000)) die("streams sync after the fill", NULL);
  uint64_t last = trb_wal_last_lsn(trb_engine_wal(v.e)), changes = rs.n;
  trb_table_info info;
  trb_status st;
  trb_status_init(&st);
  if (trb_table_describe(v.e, TABLE, &info, &st)) die("describe", trb_status_msg(&st));
  printf("records=%zu\nkeys=%zu\n", g_records, g_keys);
  printf("mix_puts=%zu\nmix_updates=%zu\nmix_deletes=%zu\n", g.puts, g.updates, g.deletes);
  if (nochange) printf("fill_no_change=%zu\n", nochange);
  printf("items_after_fill=%" PRIu64 "\n", info.item_count);
  printf("item_bytes=%.0f\n", (double)info.size_bytes / (double)info.item_count);
  printf("fill_s=%.1f\n", (double)(trb_mono_ns() - f0) / 1e9);
  trb_table_info_fini(&info);
  fflush(stdout);

  /* The ceiling: one COPY of the same rows into an indexed table. */
  char sql[600];
  snprintf(sql, sizeof sql, "CREATE SCHEMA bench_%d_copy; CREATE TABLE bench_%d_copy.t (pk text "
           "NOT NULL, sk numeric NOT NULL, item jsonb, lsn bigint NOT NULL); CREATE INDEX ON "
           "bench_%d_copy.t (pk, sk)", g_pid, g_pid, g_pid);
  pg_exec(c, sql);
  snprintf(sql, sizeof sql, "COPY bench_%d_copy.t FROM STDIN", g_pid);
  double w0 = pg_wal_bytes(c), cpu0 = proc_cpu_s(PQbackendPID(c));
  int64_t t0 = trb_mono_ns();
  pg_copy(c, sql, rs.text.p, rs.text.len);
  double copy_s = (double)(trb_mono_ns() - t0) / 1e9, copy_rate = (double)changes / copy_s;
  printf("copy_rows_per_s=%.0f\n", copy_rate);
  printf("copy_mb=%.1f\n", (double)rs.text.len / 1e6);
  printf("copy_backend_cpu_s=%.2f\n", proc_cpu_s(PQbackendPID(c)) - cpu0);
  printf("copy_wal_bytes_per_row=%.0f\n", (pg_wal_bytes(c) - w0) / (double)changes);
  fflush(stdout);
  double mcpu;
  w0 = pg_wal_bytes(c);
  double merge = merge_ceiling(c, &rs, &mcpu);
  printf("merge_changes_per_s=%.0f\n", merge);
  printf("merge_backend_cpu_s=%.2f\n", mcpu);
  printf("merge_wal_bytes_per_change=%.0f\n", (pg_wal_bytes(c) - w0) / (double)changes);
  fflush(stdout);

  /* The sinks, each from checkpoint 0. */
  throughput(&v, c, NULL, "null_sink", 1000, last, changes, 0);
  throughput(&v, c, "b1000", "pg", 1000, last, changes, copy_rate);
  throughput(&v, c, "b5000", "pg_b5000", 5000, last, changes, copy_rate);
  trb_buf_fini(&rs.text), trb_buf_fini(&rs.doc);
  free(rs.off), free(rs.key), free(rs.del);

  /* Latency: the same data directory, wal sync=always. */
  env_close(&v);
  env_open(&v, TRB_WAL_SYNC_ALWAYS, 0);
  latency(&v, c, &g);
  env_close(&v);

  snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS bench_%d_copy, bench_%d_merge, bench_%d_b1000, "
           "bench_%d_b5000, bench_%d_ctl CASCADE", g_pid, g_pid, g_pid, g_pid, g_pid);
  pg_exec(c, sql);
  PQfinish(c);
  free(g.present);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", v.dir);
  if (system(cmd)) {}
  return 0;
}
