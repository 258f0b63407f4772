/*
 * bench_kafka.c -- the Kafka sink end to end: from the WAL to records
 * acknowledged by Kafka, against librdkafka producing the same messages to
 * the same cluster, and the latency from an acknowledged write to its
 * message being committed in (and readable from) Kafka.
 *
 * Everything runs in one process: librdkafka's mock cluster with 3 brokers
 * (sinks/kafka_mock.h; topics are created with 4 partitions, replication 3),
 * the engine, the stream index (trb_streams), a tailer (capture/tailer.h)
 * with the real Kafka sink (sinks/kafka_sink.h: exactly once, Avro values,
 * lz4, its own producer settings), and this file's own producers and
 * consumers.
 *
 * Throughput, for items of about 200 bytes and about 1 KiB (DynamoDB item
 * size: id S, n N, pad S of random letters): a fresh engine, table with a
 * stream (NEW_AND_OLD_IMAGES, as UpdateTable turns it on), --records
 * INSERTs written through trb_engine_write by 8 threads in batches of 32
 * with wal sync=interval (the fill is not what is measured, so it does not
 * wait for an fdatasync per group), the stream index caught up; then a
 * tailer with the Kafka sink starts from checkpoint 0 and runs until its
 * checkpoint (trb_tailer_get_stats) is the last LSN. records/s counts from
 * the moment the sink is open (init_transactions done, checkpoint read)
 * to that point; the open time is printed apart. The sink is wrapped to note
 * the time spent inside its deliver().
 *
 * The ceiling, in the same run, on the same mock cluster: a plain librdkafka
 * producer with the sink's settings (acks=all, enable.idempotence, linger.ms
 * 2, lz4) producing the same number of messages, which are the sink's own
 * messages read back from its topic (a sample of 2,000 keys, values and
 * partitions, cycled: so keys, value sizes and compressibility are the
 * sink's), with F_COPY like the sink, timed from the first produce until
 * rd_kafka_flush returns. Variants: without headers (ceiling_*, the main
 * figure), with the sink's five headers copied onto each message
 * (ceiling_*_hdr), transactional with one transaction per 5,000
 * messages, as the tailer batches (ceiling_*_txn, no headers), and both at
 * once (ceiling_*_hdr_txn: what the exactly-once sink asks of librdkafka,
 * without the encoding and the WAL). Each ceiling
 * is run twice; the higher rate counts and both are printed (and, for the
 * transactional one, the mean time in commit_transaction). For the
 * analysis also: the same tailer with a sink that does nothing and asks
 * for no JSON Streams records (kafka_*_null_sink_records_per_s: the
 * processor without Kafka), and the
 * Kafka sink alone, its open() and deliver() called by this file on the
 * same records read from the WAL into memory beforehand, without the
 * tailer (kafka_*_sink_only_records_per_s: 5,000 records per deliver, i.e. per
 * transaction, as the tailer gives; _b10000: 10,000).
 *
 * Latency, at --rate writes/s (20,000): a fresh engine with wal sync=always
 * (the default), the sink running (exactly once), and a consumer thread
 * (read_uncommitted; the mock cluster has no other kind; fetch.wait.max.ms
 * 1, since the mock answers an empty fetch only after that wait) on the
 * topic noting when each lsn header arrives. Writer threads (rate/500) take
 * write i from a token schedule (due at start + i / rate), put a new
 * ~200-byte item with trb_engine_write (trb_put_item's path, which also
 * gives the LSN), and note the acknowledgement time under that LSN. The
 * sink's deliver() is wrapped to note when it returned, i.e. when the Kafka
 * transaction holding the record committed: ack_to_kafka is ack -> that
 * commit (what a read_committed consumer of a real Kafka waits for);
 * ack_to_consumer is ack -> the message reached this consumer. 2,000 writes
 * before the measured window open the partitions (the sink reads each
 * partition's tail before its first write) and send the schemas.
 * *_other_cpu_pct is the share of all CPUs other processes took during a
 * phase; *_cpu_us_per_* is this process's CPU per unit of work.
 *
 * One `name=value` line per figure on stdout.
 *
 *   bench_kafka [--dir DIR] [--seconds S] [--records N] [--rate R]
 *               [--phase all|throughput|200b|1k|latency]
 *               [--breakdown] [--mock-nodelay] [--leaders mock|one|spread]
 *
 * --leaders places the leaders of the topics this file creates: all on
 * broker 1 (one), partition p on broker p % 3 + 1 (spread), or where the
 * mock puts them (mock, the default). (Run to run, the sink's rate moves
 * by up to 2x whichever is chosen: the placement is not the cause.)
 * --breakdown adds, per phase, each thread name's share of the wall time on
 * a CPU and waiting for one (threads that ended before the phase did are
 * not counted: the latency phase's writers, the ceilings' producers).
 * --mock-nodelay runs everything on a mock cluster this file creates
 * itself (rd_kafka_mock_cluster_new) from a handle with
 * socket.nagle.disable=true, which the mock brokers then also set on the
 * connections they accept; trb_kafka_mock_start's brokers answer without
 * TCP_NODELAY, so a second response queued on a connection waits for the
 * client's delayed ACK (about 40 ms). The default is trb_kafka_mock_start.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "capture/tailer.h"
#include "capture/wal.h"
#include "engine/engine.h"
#include "sinks/kafka_mock.h"
#include "sinks/kafka_sink.h"
#include "sinks/sink.h"
#include "transform/streams.h"
#include "util/clock.h"
#include "util/log.h"

#define REGION "us-east-1"
#define PARTITIONS 4
#define COMPRESSION "lz4"   /* the sink's default; the ceiling uses the same */
#define LINGER_MS "2"       /* the sink's linger.ms (sinks/kafka_sink.c) */
#define SAMPLE 2000
#define TXN_MSGS TRB_KAFKA_SINK_BATCH /* the processor's batch for the Kafka sink */

static double g_seconds = 5.0;
static size_t g_records = 200000;
static double g_rate = 20000;
static int g_breakdown = 0;
static int g_nodelay = 0;
static const char *g_phase = "all";
static trb_kafka_mock *g_mock;      /* the project's mock cluster (default) */
static int g_leaders;               /* --leaders: 0 the mock's choice, 1 one broker, 2 spread */
static rd_kafka_t *g_nd_rk;          /* --mock-nodelay: a mock cluster of our own ... */
static rd_kafka_mock_cluster_t *g_nd_mc; /* ... whose sockets have TCP_NODELAY */
static const char *g_brokers;

static void die(const char *what, const trb_status *st) {
  fprintf(stderr, "bench_kafka: %s: %s\n", what, st ? trb_status_msg(st) : "");
  exit(1);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void sleep_ns(int64_t ns) {
  struct timespec ts = {ns / 1000000000, ns % 1000000000};
  nanosleep(&ts, NULL);
}

static void sh(const char *fmt, const char *arg) {
  char cmd[8400];
  snprintf(cmd, sizeof cmd, fmt, arg);
  if (system(cmd)) {}
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* A topic of PARTITIONS partitions, replication 3. */
static void topic_create(const char *name) {
  if (g_mock) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "topic %s %d", name, PARTITIONS);
    trb_status st;
    trb_status_init(&st);
    if (trb_kafka_mock_command(g_mock, cmd, &st)) die("create the topic", &st);
    /* --leaders: where the partitions' leaders are (else the mock's choice) */
    for (int p = 0; g_leaders && p < PARTITIONS; p++) {
      snprintf(cmd, sizeof cmd, "leader %s %d %d", name, p, g_leaders == 1 ? 1 : p % 3 + 1);
      if (trb_kafka_mock_command(g_mock, cmd, &st)) die("place a leader", &st);
    }
  } else if (rd_kafka_mock_topic_create(g_nd_mc, name, PARTITIONS, 3)) {
    die("create the topic", NULL);
  }
}

/* The mock cluster: trb_kafka_mock_start's, or (--mock-nodelay) the same
 * librdkafka mock cluster created here from a handle with
 * socket.nagle.disable=true, which librdkafka's mock also applies to the
 * connections its brokers accept. */
static void mock_start(int nodelay) {
  trb_status st;
  trb_status_init(&st);
  if (!nodelay) {
    if (trb_kafka_mock_start(3, &g_mock, &st)) die("mock cluster", &st);
    g_brokers = trb_kafka_mock_bootstraps(g_mock);
    /* with --leaders, the sink's offsets topic too (it would be created on
     * first use, its leaders where the mock puts them) */
    if (g_leaders) topic_create("__tributary_offsets");
    return;
  }
  char err[512];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "log_level", "3", err, sizeof err);
  rd_kafka_conf_set(c, "socket.nagle.disable", "true", err, sizeof err);
  g_nd_rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
  if (!g_nd_rk || !(g_nd_mc = rd_kafka_mock_cluster_new(g_nd_rk, 3)))
    die("mock cluster (nodelay)", NULL);
  g_brokers = rd_kafka_mock_cluster_bootstraps(g_nd_mc);
}

static void mock_stop(void) {
  trb_kafka_mock_stop(g_mock);
  if (g_nd_mc) rd_kafka_mock_cluster_destroy(g_nd_mc);
  if (g_nd_rk) rd_kafka_destroy(g_nd_rk);
  g_mock = NULL;
  g_nd_mc = NULL;
  g_nd_rk = NULL;
}

/* ---- CPU accounting ---------------------------------------------------- */

typedef struct cpu_snap {
  double total, busy, self;
} cpu_snap;

static void cpu_take(cpu_snap *c) {
  memset(c, 0, sizeof *c);
  FILE *f = fopen("/proc/stat", "r");
  unsigned long long v[8] = {0};
  if (f) {
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &v[6], &v[7]) != 8) {}
    fclose(f);
  }
  double hz = (double)sysconf(_SC_CLK_TCK);
  double tot = 0;
  for (int i = 0; i < 8; i++) tot += (double)v[i];
  c->total = tot / hz;
  c->busy = (tot - (double)v[3] - (double)v[4]) / hz; /* minus idle and iowait */
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  c->self = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* The share of all CPUs others took since a, and this process's CPU per
 * unit (us). */
static void cpu_print(const char *prefix, const cpu_snap *a, double units, const char *unit) {
  cpu_snap b;
  cpu_take(&b);
  double tot = b.total - a->total, self = b.self - a->self;
  double other = (b.busy - a->busy) - self;
  printf("%s_other_cpu_pct=%.0f\n", prefix, tot > 0 ? 100.0 * (other < 0 ? 0 : other) / tot : 0);
  if (units > 0) printf("%s_cpu_us_per_%s=%.2f\n", prefix, unit, self * 1e6 / units);
}

/* Per thread name: time on a CPU and runnable-but-waiting (schedstat). */
typedef struct thr_cpu {
  char comm[32];
  double run_s, wait_s;
} thr_cpu;

static size_t thr_take(thr_cpu *out, size_t max) {
  size_t n = 0;
  DIR *d = opendir("/proc/self/task");
  struct dirent *de;
  while (d && (de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char path[300], comm[32] = "";
    unsigned long long run = 0, wait = 0;
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", de->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
    fclose(f);
    comm[strcspn(comm, "\n")] = 0;
    for (char *c = comm; *c; c++)
      if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
        *c = '_';
    snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", de->d_name);
    if (!(f = fopen(path, "r"))) continue;
    if (fscanf(f, "%llu %llu", &run, &wait) != 2) run = wait = 0;
    fclose(f);
    size_t i = 0;
    while (i < n && strcmp(out[i].comm, comm)) i++;
    if (i == n) {
      if (n == max) continue;
      memset(&out[n], 0, sizeof out[n]);
      snprintf(out[n].comm, sizeof out[n].comm, "%s", comm);
      n++;
    }
    out[i].run_s += (double)run / 1e9;
    out[i].wait_s += (double)wait / 1e9;
  }
  if (d) closedir(d);
  return n;
}

/* Threads that exist now and did not at snapshot a count from zero. */
static void thr_print(const char *prefix, const thr_cpu *a, size_t na, double secs) {
  if (!g_breakdown) return;
  thr_cpu b[64];
  size_t nb = thr_take(b, 64);
  for (size_t i = 0; i < nb; i++) {
    double run = b[i].run_s, wait = b[i].wait_s;
    for (size_t j = 0; j < na; j++)
      if (!strcmp(a[j].comm, b[i].comm)) {
        run -= a[j].run_s;
        wait -= a[j].wait_s;
      }
    if (run < 0.001 * secs) continue;
    printf("%s_thread_%s_cpu_pct=%.0f\n", prefix, b[i].comm, 100.0 * run / secs);
    printf("%s_thread_%s_runq_pct=%.0f\n", prefix, b[i].comm, 100.0 * wait / secs);
  }
}

/* ---- per-LSN times ----------------------------------------------------- */

/* Monotonic ns per LSN (index lsn - base), 0 = not yet: ack (the writer),
 * kafka (the sink's deliver returned), seen (the consumer). */
typedef struct track {
  uint64_t base;
  size_t cap;
  int64_t *ack, *kafka, *seen;
} track;

static track *track_new(uint64_t base, size_t cap) {
  track *t = calloc(1, sizeof *t);
  t->base = base;
  t->cap = cap;
  t->ack = calloc(cap, sizeof *t->ack);
  t->kafka = calloc(cap, sizeof *t->kafka);
  t->seen = calloc(cap, sizeof *t->seen);
  if (!t->ack || !t->kafka || !t->seen) die("out of memory", NULL);
  return t;
}

static void track_free(track *t) {
  if (!t) return;
  free(t->ack);
  free(t->kafka);
  free(t->seen);
  free(t);
}

static void mark(const track *t, int64_t *a, uint64_t lsn, int64_t now) {
  if (!t || lsn < t->base || lsn - t->base >= t->cap) return;
  int64_t *p = &a[lsn - t->base];
  if (!__atomic_load_n(p, __ATOMIC_RELAXED)) __atomic_store_n(p, now, __ATOMIC_RELEASE);
}

static size_t missing(const track *t, const int64_t *a) {
  size_t m = 0;
  for (size_t i = 0; i < t->cap; i++)
    if (__atomic_load_n(&t->ack[i], __ATOMIC_ACQUIRE) && !__atomic_load_n(&a[i], __ATOMIC_ACQUIRE))
      m++;
  return m;
}

/* p50/p99/max (us) of to[i] - from[i] over the LSNs with both, the share
 * below zero, and how many acknowledged LSNs never arrived. */
static void print_diff(const char *prefix, const char *name, const track *t, const int64_t *to) {
  int64_t *d = malloc((t->cap ? t->cap : 1) * sizeof *d);
  size_t n = 0, neg = 0, miss = 0;
  for (size_t i = 0; i < t->cap; i++) {
    if (!t->ack[i]) continue;
    if (!to[i]) {
      miss++;
      continue;
    }
    d[n] = to[i] - t->ack[i];
    if (d[n] < 0) neg++;
    n++;
  }
  qsort(d, n, sizeof *d, cmp_i64);
  printf("%s_%s_p50_us=%.0f\n", prefix, name, n ? (double)d[n / 2] / 1000.0 : 0);
  printf("%s_%s_p99_us=%.0f\n", prefix, name, n ? (double)d[n * 99 / 100] / 1000.0 : 0);
  printf("%s_%s_max_us=%.0f\n", prefix, name, n ? (double)d[n - 1] / 1000.0 : 0);
  if (neg) printf("%s_%s_before_ack_pct=%.2f\n", prefix, name, 100.0 * (double)neg / (double)n);
  /* p50 of the first and the last fifth of the writes (in LSN order): a
   * queue that grows through the window shows as last >> first. */
  size_t acked = 0;
  for (size_t i = 0; i < t->cap; i++) acked += t->ack[i] && to[i];
  for (int part = 0; part < 2; part++) {
    size_t m = 0, seen = 0;
    for (size_t i = 0; i < t->cap; i++) {
      if (!t->ack[i] || !to[i]) continue;
      int in = part ? seen >= acked - acked / 5 : seen < acked / 5;
      seen++;
      if (in) d[m++] = to[i] - t->ack[i];
    }
    qsort(d, m, sizeof *d, cmp_i64);
    printf("%s_%s_%s_fifth_p50_us=%.0f\n", prefix, name, part ? "last" : "first",
           m ? (double)d[m / 2] / 1000.0 : 0);
  }
  if (miss) printf("%s_%s_missing=%zu\n", prefix, name, miss);
  free(d);
}

/* ---- items ------------------------------------------------------------- */

/* id S, n N, pad S of random lowercase letters (so lz4 finds little to
 * take out): pad_len + about 27 bytes of DynamoDB item size. */
static trb_av *make_item(const char *id, int64_t n, size_t pad_len, uint64_t *rng) {
  char pad[4096];
  if (pad_len >= sizeof pad) pad_len = sizeof pad - 1;
  for (size_t i = 0; i < pad_len; i++) pad[i] = (char)('a' + xorshift(rng) % 26);
  trb_dec d;
  trb_dec_from_i64(n, &d);
  trb_av *it = trb_av_new_m();
  trb_av_m_set(it, "id", 2, trb_av_new_s(id, strlen(id)));
  trb_av_m_set(it, "n", 1, trb_av_new_n(&d));
  trb_av_m_set(it, "pad", 3, trb_av_new_s(pad, pad_len));
  return it;
}

/* ---- engine, table, stream --------------------------------------------- */

typedef struct env {
  char dir[4096];
  char table[64];
  char topic[128];
  trb_engine *e;
  trb_streams *s;
} env;

static void env_open(env *v, const char *base, const char *table, trb_wal_sync_mode sync) {
  memset(v, 0, sizeof *v);
  snprintf(v->dir, sizeof v->dir, "%s/%s", base, table);
  snprintf(v->table, sizeof v->table, "%s", table);
  snprintf(v->topic, sizeof v->topic, "%s.%s", REGION, table);
  sh("rm -rf '%s'", v->dir);
  trb_engine_opts o;
  trb_engine_opts_default(&o);
  o.data_dir = v->dir;
  o.sync_mode = sync;
  trb_status st;
  trb_status_init(&st);
  if (trb_engine_open(&o, &v->e, &st)) die("engine open", &st);
  trb_keyschema ks;
  memset(&ks, 0, sizeof ks);
  strcpy(ks.pk_name, "id");
  ks.pk_type = TRB_T_S;
  if (trb_table_create(v->e, table, &ks, NULL, NULL, &st)) die("create table", &st);
  /* UpdateTable's way of turning the stream on (api/dynamo_table.c). */
  int64_t us = trb_now_us();
  time_t secs = (time_t)(us / 1000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char b[24], label[32];
  strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(label, sizeof label, "%s.%03d", b, (int)((us / 1000) % 1000));
  json_t *ext = json_pack("{s:{s:b,s:s},s:s,s:i}", "StreamSpecification", "StreamEnabled", 1,
                          "StreamViewType", "NEW_AND_OLD_IMAGES", "StreamLabel", label,
                          "StreamShards", 4);
  if (trb_table_update(v->e, table, ext, NULL, &st)) die("enable the stream", &st);
  json_decref(ext);
  trb_streams_opts so;
  trb_streams_opts_default(&so);
  so.wal = trb_engine_wal(v->e);
  so.region = REGION;
  if (trb_streams_start(&so, &v->s, &st)) die("streams start", &st);
  if (trb_streams_sync(v->s, 10000)) die("streams sync", NULL);
  topic_create(v->topic);
}

static void env_close(env *v) {
  trb_streams_stop(v->s);
  trb_engine_close(v->e);
  sh("rm -rf '%s'", v->dir);
}

/* ---- sinks ------------------------------------------------------------- */

typedef struct sink_stats {
  uint64_t batches, records;
  int64_t deliver_ns;       /* time inside the Kafka sink's deliver */
  int64_t deliver_max_ns;
} sink_stats;

/* The Kafka sink behind a wrapper that notes when its deliver returned. */
typedef struct wrap_sink {
  trb_sink base;
  trb_sink *in;             /* NULL: a sink that does nothing */
  track *tr;               /* set (atomically) once the measured window opens */
  int wait_for_tr;          /* count nothing while tr is NULL (the warm-up) */
  sink_stats *ss;
} wrap_sink;

static trb_err ws_open(trb_sink *s, uint64_t *checkpoint, trb_status *st) {
  wrap_sink *w = (wrap_sink *)s;
  if (!w->in) {
    *checkpoint = 0;
    return TRB_OK;
  }
  return w->in->ops->open(w->in, checkpoint, st);
}

static trb_err ws_deliver(trb_sink *s, const trb_sink_rec *recs, size_t n, uint64_t through,
                          trb_status *st) {
  wrap_sink *w = (wrap_sink *)s;
  int64_t t0 = trb_mono_ns();
  trb_err rc = w->in ? w->in->ops->deliver(w->in, recs, n, through, st) : TRB_OK;
  int64_t now = trb_mono_ns();
  if (rc) return rc;
  track *tr = __atomic_load_n(&w->tr, __ATOMIC_ACQUIRE);
  if (!tr && w->wait_for_tr) return TRB_OK;
  if (tr)
    for (size_t i = 0; i < n; i++) mark(tr, tr->kafka, recs[i].wal->lsn, now);
  w->ss->deliver_ns += now - t0;
  if (now - t0 > w->ss->deliver_max_ns) w->ss->deliver_max_ns = now - t0;
  if (n) {
    w->ss->batches++;
    w->ss->records += n;
  }
  return TRB_OK;
}

static void ws_destroy(trb_sink *s) {
  wrap_sink *w = (wrap_sink *)s;
  if (w->in) w->in->ops->destroy(w->in);
  free(w);
}

static const trb_sink_ops wrap_ops = {
    .kind = "kafka", .open = ws_open, .deliver = ws_deliver, .destroy = ws_destroy};

/* The Kafka sink as `serve` configures it (exactly once, Avro), wrapped;
 * kafka 0 gives a sink that does nothing. */
static trb_sink *sink_new(env *v, int kafka, const char *tmpl, track *tr, sink_stats *ss) {
  wrap_sink *w = calloc(1, sizeof *w);
  w->base.ops = &wrap_ops;
  w->tr = tr;
  w->ss = ss;
  if (kafka) {
    char txid[128], ckpath[4200];
    snprintf(txid, sizeof txid, "bench-%s-%lld", v->table, (long long)trb_mono_ns());
    snprintf(ckpath, sizeof ckpath, "%s/kafka-sink.checkpoint", v->dir);
    unlink(ckpath);
    trb_kafka_sink_opts ko = {.brokers = g_brokers,
                              .topic_template = tmpl ? tmpl : "{region}.{table}",
                              .region = REGION, .exactly_once = 1, .transactional_id = txid,
                              .checkpoint_path = ckpath, .tombstones = 1,
                              .format = TRB_KAFKA_AVRO, .compression = COMPRESSION};
    trb_status st;
    trb_status_init(&st);
    if (trb_kafka_sink_create(&ko, &w->in, &st)) die("kafka sink", &st);
    w->base.wants_record = w->in->wants_record; /* JSON Streams records only if it asks */
  }
  return &w->base;
}

static trb_tailer *tailer_start(env *v, trb_sink *sink) {
  /* the batches serve gives the Kafka sink */
  trb_tailer_opts to = {.wal = trb_engine_wal(v->e), .streams = v->s, .region = REGION,
                        .max_batch = TRB_KAFKA_SINK_BATCH};
  trb_tailer *t;
  trb_status st;
  trb_status_init(&st);
  if (trb_tailer_start(&to, sink, &t, &st)) die("tailer start", &st);
  return t;
}

/* Waits until the tailer's checkpoint reaches last; *open_s gets when the
 * sink had opened (seconds after t0). Returns seconds after t0. */
static double tailer_wait(trb_tailer *t, uint64_t last, int64_t t0, double *open_s,
                          double timeout_s) {
  trb_tailer_stats ts;
  int64_t opened = 0;
  for (;;) {
    trb_tailer_get_stats(t, &ts);
    int64_t now = trb_mono_ns();
    if (ts.opened && !opened) opened = now;
    if (ts.checkpoint >= last) break;
    if (ts.broken) die("the tailer broke (see the log)", NULL);
    if ((double)(now - t0) / 1e9 > timeout_s) {
      fprintf(stderr, "bench_kafka: the sink reached LSN %llu of %llu in %.0f s\n",
              (unsigned long long)ts.checkpoint, (unsigned long long)last, timeout_s);
      exit(1);
    }
    sleep_ns(100000);
  }
  if (open_s) *open_s = (double)((opened ? opened : t0) - t0) / 1e9;
  return (double)(trb_mono_ns() - t0) / 1e9;
}

/* ---- librdkafka helpers ------------------------------------------------ */

static void kset(rd_kafka_conf_t *c, const char *name, const char *v) {
  char err[512];
  if (rd_kafka_conf_set(c, name, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
    fprintf(stderr, "bench_kafka: %s=%s: %s\n", name, v, err);
    exit(1);
  }
}

static long g_dr_failed;
static int64_t g_commit_ns, g_commits; /* the last transactional ceiling's commits */

static void bench_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  (void)opaque;
  if (m->err) __atomic_add_fetch(&g_dr_failed, 1, __ATOMIC_RELAXED);
}

static rd_kafka_t *consumer_new(const char *group) {
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  kset(c, "bootstrap.servers", g_brokers);
  kset(c, "group.id", group);
  kset(c, "enable.auto.commit", "false");
  kset(c, "fetch.wait.max.ms", "1");
  kset(c, "log_level", "3");
  char err[512];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
  if (!rk) {
    fprintf(stderr, "bench_kafka: consumer: %s\n", err);
    exit(1);
  }
  return rk;
}

static void assign_all(rd_kafka_t *rk, const char *topic) {
  rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(PARTITIONS);
  for (int p = 0; p < PARTITIONS; p++)
    rd_kafka_topic_partition_list_add(tp, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_resp_err_t e = rd_kafka_assign(rk, tp);
  rd_kafka_topic_partition_list_destroy(tp);
  if (e) {
    fprintf(stderr, "bench_kafka: assign: %s\n", rd_kafka_err2str(e));
    exit(1);
  }
}

static uint64_t msg_lsn(rd_kafka_message_t *m) {
  rd_kafka_headers_t *h = NULL;
  const void *v;
  size_t vl;
  if (rd_kafka_message_headers(m, &h) || !h ||
      rd_kafka_header_get_last(h, "lsn", &v, &vl) || !v || vl >= 24)
    return 0;
  char b[24];
  memcpy(b, v, vl);
  b[vl] = 0;
  return strtoull(b, NULL, 10);
}

/* ---- the sink's messages, read back ------------------------------------ */

typedef struct smsg {
  int32_t part;
  void *key, *val;
  size_t kl, vl;
  rd_kafka_headers_t *hdrs;
  size_t hdr_bytes;
} smsg;

typedef struct sample {
  smsg m[SAMPLE];
  size_t n;
  double key_mean, val_mean, hdr_mean;
} sample;

/* The first SAMPLE data messages of the topic. */
static void sample_read(const char *topic, sample *s) {
  memset(s, 0, sizeof *s);
  rd_kafka_t *rk = consumer_new("bench-kafka-sample");
  assign_all(rk, topic);
  int64_t end = trb_mono_ns() + 30000000000LL;
  double kt = 0, vt = 0, ht = 0;
  while (s->n < SAMPLE && trb_mono_ns() < end) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (!m) continue;
    if (!m->err && m->payload) {
      smsg *x = &s->m[s->n++];
      x->part = m->partition;
      x->kl = m->key_len;
      x->vl = m->len;
      x->key = malloc(x->kl ? x->kl : 1);
      x->val = malloc(x->vl);
      memcpy(x->key, m->key, x->kl);
      memcpy(x->val, m->payload, x->vl);
      rd_kafka_headers_t *h = NULL;
      if (!rd_kafka_message_headers(m, &h) && h) {
        x->hdrs = rd_kafka_headers_copy(h);
        const char *name;
        const void *v;
        size_t vl;
        for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &v, &vl); i++)
          x->hdr_bytes += strlen(name) + vl;
      }
      kt += (double)x->kl;
      vt += (double)x->vl;
      ht += (double)x->hdr_bytes;
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  if (!s->n) die("no messages on the sink's topic", NULL);
  s->key_mean = kt / (double)s->n;
  s->val_mean = vt / (double)s->n;
  s->hdr_mean = ht / (double)s->n;
}

static void sample_free(sample *s) {
  for (size_t i = 0; i < s->n; i++) {
    free(s->m[i].key);
    free(s->m[i].val);
    if (s->m[i].hdrs) rd_kafka_headers_destroy(s->m[i].hdrs);
  }
}

/* ---- the ceiling ------------------------------------------------------- */

enum { CEIL_PLAIN, CEIL_HDR, CEIL_TXN, CEIL_HDR_TXN };

/* n messages of the sample, cycled, to a new topic: msgs/s from the first
 * produce until everything is acknowledged (flush / the last commit). */
static double ceiling_run(const sample *s, size_t n, int kind, int run, const char *tag) {
  static const char *names[] = {"plain", "hdr", "txn", "hdrtxn"};
  int txn = kind == CEIL_TXN || kind == CEIL_HDR_TXN, hdr = kind == CEIL_HDR || kind == CEIL_HDR_TXN;
  char topic[128], txid[128];
  snprintf(topic, sizeof topic, "ceiling-%s-%s-%d", tag, names[kind], run);
  topic_create(topic);
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  kset(c, "bootstrap.servers", g_brokers);
  kset(c, "acks", "all");
  kset(c, "enable.idempotence", "true");
  kset(c, "compression.type", COMPRESSION);
  kset(c, "linger.ms", LINGER_MS);
  kset(c, "log_level", "3");
  if (txn) {
    snprintf(txid, sizeof txid, "bench-ceiling-%s-%d-%lld", tag, run, (long long)trb_mono_ns());
    kset(c, "transactional.id", txid);
  }
  rd_kafka_conf_set_dr_msg_cb(c, bench_dr);
  char err[512];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
  if (!rk) {
    fprintf(stderr, "bench_kafka: producer: %s\n", err);
    exit(1);
  }
  rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
  const struct rd_kafka_metadata *md = NULL;
  if (rd_kafka_metadata(rk, 0, t, &md, 10000) || md->topic_cnt != 1 ||
      md->topics[0].partition_cnt != PARTITIONS)
    die("ceiling: no metadata for its topic", NULL);
  rd_kafka_metadata_destroy(md);
  if (txn) {
    rd_kafka_error_t *e = rd_kafka_init_transactions(rk, 30000);
    if (e) {
      fprintf(stderr, "bench_kafka: init_transactions: %s\n", rd_kafka_error_string(e));
      exit(1);
    }
  }
  g_dr_failed = 0;
  g_commit_ns = g_commits = 0;
  int64_t t0 = trb_mono_ns();
  for (size_t i = 0; i < n; i++) {
    if (txn && i % TXN_MSGS == 0) {
      rd_kafka_error_t *e = rd_kafka_begin_transaction(rk);
      if (e) die("begin_transaction", NULL);
    }
    const smsg *m = &s->m[i % s->n];
    rd_kafka_headers_t *h = hdr && m->hdrs ? rd_kafka_headers_copy(m->hdrs) : NULL;
    for (;;) {
      rd_kafka_resp_err_t e =
          rd_kafka_producev(rk, RD_KAFKA_V_RKT(t), RD_KAFKA_V_PARTITION(m->part),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_KEY(m->key, m->kl), RD_KAFKA_V_VALUE(m->val, m->vl),
                            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
      if (!e) break;
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        fprintf(stderr, "bench_kafka: produce: %s\n", rd_kafka_err2str(e));
        exit(1);
      }
      rd_kafka_poll(rk, 10);
    }
    if (txn && (i % TXN_MSGS == TXN_MSGS - 1 || i + 1 == n)) {
      int64_t c0 = trb_mono_ns();
      rd_kafka_error_t *e = rd_kafka_commit_transaction(rk, 30000);
      g_commit_ns += trb_mono_ns() - c0;
      g_commits++;
      if (e) {
        fprintf(stderr, "bench_kafka: commit_transaction: %s\n", rd_kafka_error_string(e));
        exit(1);
      }
    } else if (i % 1000 == 999) {
      rd_kafka_poll(rk, 0);
    }
  }
  if (rd_kafka_flush(rk, 60000)) die("ceiling: flush timed out", NULL);
  double secs = (double)(trb_mono_ns() - t0) / 1e9;
  if (g_dr_failed) die("ceiling: failed deliveries", NULL);
  rd_kafka_topic_destroy(t);
  rd_kafka_destroy(rk);
  return (double)n / secs;
}

/* Two runs of a ceiling: the higher counts, both are printed. */
static double ceiling_best(const sample *s, size_t n, int kind, const char *tag,
                           const char *name) {
  double a = ceiling_run(s, n, kind, 1, tag);
  double ca = g_commits ? (double)g_commit_ns / (double)g_commits / 1e6 : 0;
  double b = ceiling_run(s, n, kind, 2, tag);
  double cb = g_commits ? (double)g_commit_ns / (double)g_commits / 1e6 : 0;
  printf("%s_runs=%.0f,%.0f\n", name, a, b);
  if (kind == CEIL_TXN || kind == CEIL_HDR_TXN)
    printf("%s_commit_mean_ms_runs=%.2f,%.2f\n", name, ca, cb);
  fflush(stdout);
  return a > b ? a : b;
}

/* ---- the Kafka sink alone ---------------------------------------------- */

/* The stream records of the WAL as the tailer hands them over (WAL record
 * copied, its stream and shard), read once into memory, without the JSON
 * Streams record (the Avro format does not read it). */
typedef struct prerec {
  trb_wal_rec wal;
  unsigned char *buf;
  trb_stream_info si;
  char shard[64];
} prerec;

static prerec *preread(env *v, uint64_t last, size_t *n) {
  trb_wal *wal = trb_engine_wal(v->e);
  trb_wal_reader *rd;
  trb_status st;
  trb_status_init(&st);
  if (trb_wal_reader_open(wal, trb_wal_first_lsn(wal), &rd, &st)) die("reader open", &st);
  size_t cap = g_records + 16, k = 0;
  prerec *out = calloc(cap, sizeof *out);
  for (;;) {
    trb_wal_rec r;
    if (trb_wal_reader_next(rd, &r, 0, &st)) die("preread", &st);
    if ((r.kind == TRB_WAL_INSERT || r.kind == TRB_WAL_MODIFY || r.kind == TRB_WAL_REMOVE) &&
        k < cap) {
      trb_av *keys = NULL;
      if (trb_av_decode(r.keys, r.keys_len, &keys)) die("undecodable keys", NULL);
      prerec *p = &out[k];
      if (trb_streams_locate(v->s, r.table_id, r.lsn, keys, &p->si, p->shard)) {
        size_t tot = r.table_len + r.keys_len + r.old_len + r.new_len, off = 0;
        p->buf = malloc(tot ? tot : 1);
        p->wal = r;
#define CP(f, l)                           \
  if (r.f) {                               \
    memcpy(p->buf + off, r.f, r.l);        \
    p->wal.f = (void *)(p->buf + off);     \
    off += r.l;                            \
  }
        CP(table, table_len);
        CP(keys, keys_len);
        CP(old_img, old_len);
        CP(new_img, new_len);
#undef CP
        k++;
      }
      trb_av_destroy(keys);
    }
    if (r.lsn >= last) break;
  }
  trb_wal_reader_close(rd);
  *n = k;
  return out;
}

/* The Kafka sink's open and deliver called directly on the pre-read
 * records, `batch` per deliver (one transaction each), to a topic of its
 * own (so the sink finds its partitions empty and skips nothing):
 * records/s from the first deliver to the last. */
static double sink_only(env *v, const prerec *pr, size_t n, size_t batch) {
  char tmpl[64], topic[192];
  snprintf(tmpl, sizeof tmpl, "{region}.{table}.b%zu", batch);
  snprintf(topic, sizeof topic, "%s.b%zu", v->topic, batch);
  topic_create(topic);
  trb_status st;
  trb_status_init(&st);
  sink_stats ss;
  memset(&ss, 0, sizeof ss);
  wrap_sink *w = (wrap_sink *)sink_new(v, 1, tmpl, NULL, &ss);
  trb_sink *k = w->in;
  uint64_t ck;
  if (k->ops->open(k, &ck, &st)) die("sink open", &st);
  trb_sink_rec *recs = calloc(batch, sizeof *recs);
  int64_t t0 = trb_mono_ns();
  for (size_t i = 0; i < n; i += batch) {
    size_t m = n - i < batch ? n - i : batch;
    for (size_t j = 0; j < m; j++) {
      recs[j].wal = &pr[i + j].wal;
      recs[j].stream = &pr[i + j].si;
      recs[j].shard_id = pr[i + j].shard;
      recs[j].record = NULL;
    }
    if (k->ops->deliver(k, recs, m, pr[i + m - 1].wal.lsn, &st)) die("sink deliver", &st);
  }
  double secs = (double)(trb_mono_ns() - t0) / 1e9;
  free(recs);
  ws_destroy(&w->base);
  return (double)n / secs;
}

/* ---- throughput -------------------------------------------------------- */

typedef struct fctx {
  trb_engine *e;
  const char *table;
  int id;
  size_t n, pad;
} fctx;

/* Unpaced INSERTs in batches of 32 distinct keys per call. */
static void *fill_main(void *p) {
  fctx *a = p;
  enum { B = 32 };
  trb_write w[B];
  trb_av *it[B];
  char id[32];
  uint64_t rng = 0x9E3779B97F4A7C15ull * (uint64_t)(a->id + 1);
  for (size_t done = 0; done < a->n;) {
    size_t k = a->n - done < B ? a->n - done : B;
    memset(w, 0, sizeof w);
    for (size_t j = 0; j < k; j++) {
      snprintf(id, sizeof id, "f%02d-%09zu", a->id, done + j);
      it[j] = make_item(id, (int64_t)(done + j), a->pad, &rng);
      w[j].kind = TRB_W_PUT;
      w[j].table = a->table;
      w[j].item = it[j];
      trb_status_init(&w[j].st);
    }
    trb_status st;
    trb_status_init(&st);
    if (trb_engine_write(a->e, w, k, 0, &st)) die("fill", &st);
    for (size_t j = 0; j < k; j++) {
      if (w[j].rc) die("fill put", &w[j].st);
      trb_write_fini(&w[j]);
      trb_av_destroy(it[j]);
    }
    done += k;
  }
  return NULL;
}

static void throughput_phase(const char *base, const char *tag, size_t item_bytes) {
  char table[64], prefix[64];
  snprintf(table, sizeof table, "bench%s", tag);
  snprintf(prefix, sizeof prefix, "kafka_%s", tag);
  env v;
  env_open(&v, base, table, TRB_WAL_SYNC_INTERVAL);
  enum { FW = 8 };
  pthread_t th[FW];
  fctx a[FW];
  size_t pad = item_bytes > 27 ? item_bytes - 27 : 1;
  int64_t f0 = trb_mono_ns();
  for (int i = 0; i < FW; i++) {
    a[i].e = v.e;
    a[i].table = table;
    a[i].id = i;
    a[i].pad = pad;
    a[i].n = g_records / FW + (i < (int)(g_records % FW));
    pthread_create(&th[i], NULL, fill_main, &a[i]);
  }
  for (int i = 0; i < FW; i++) pthread_join(th[i], NULL);
  if (trb_streams_sync(v.s, 120000)) die("streams sync after the fill", NULL);
  double fill_s = (double)(trb_mono_ns() - f0) / 1e9;
  trb_wal *wal = trb_engine_wal(v.e);
  uint64_t last = trb_wal_last_lsn(wal);
  trb_wal_stats ws;
  trb_wal_get_stats(wal, &ws);
  trb_table_info info;
  trb_status st;
  trb_status_init(&st);
  if (trb_table_describe(v.e, table, &info, &st)) die("describe", &st);
  double recs = (double)g_records;
  printf("%s_records=%zu\n", prefix, g_records);
  printf("%s_item_bytes=%.0f\n", prefix, (double)info.size_bytes / (double)info.item_count);
  printf("%s_wal_bytes_per_record=%.0f\n", prefix, (double)ws.bytes / (double)ws.records);
  printf("%s_fill_s=%.1f\n", prefix, fill_s);
  trb_table_info_fini(&info);
  fflush(stdout);

  /* The processor without Kafka. */
  sink_stats nss;
  memset(&nss, 0, sizeof nss);
  int64_t t0 = trb_mono_ns();
  trb_tailer *t = tailer_start(&v, sink_new(&v, 0, NULL, NULL, &nss));
  double nsecs = tailer_wait(t, last, t0, NULL, 600);
  trb_tailer_stop(t);

  /* The Kafka sink. */
  sink_stats ss;
  memset(&ss, 0, sizeof ss);
  thr_cpu th0[64];
  size_t nth0 = thr_take(th0, 64);
  cpu_snap c0;
  cpu_take(&c0);
  t0 = trb_mono_ns();
  t = tailer_start(&v, sink_new(&v, 1, NULL, NULL, &ss));
  double open_s = 0;
  double secs = tailer_wait(t, last, t0, &open_s, 600);
  double run_s = secs - open_s;
  cpu_print(prefix, &c0, recs, "record");
  thr_print(prefix, th0, nth0, secs);
  trb_tailer_stop(t);
  double kafka = recs / run_s;
  printf("%s_records_per_s=%.0f\n", prefix, kafka);
  printf("%s_open_ms=%.0f\n", prefix, open_s * 1000);
  printf("%s_records_per_batch=%.1f\n", prefix,
         ss.batches ? (double)ss.records / (double)ss.batches : 0);
  printf("%s_deliver_mean_us=%.0f\n", prefix,
         ss.batches ? (double)ss.deliver_ns / (double)ss.batches / 1000.0 : 0);
  printf("%s_deliver_share=%.2f\n", prefix, (double)ss.deliver_ns / 1e9 / run_s);
  printf("%s_null_sink_records_per_s=%.0f\n", prefix, recs / nsecs);
  fflush(stdout);

  /* The sink alone, without the tailer (and its JSON records). */
  size_t npr;
  prerec *pr = preread(&v, last, &npr);
  double so1 = sink_only(&v, pr, npr, TRB_KAFKA_SINK_BATCH);
  double so10 = sink_only(&v, pr, npr, 10000);
  printf("%s_sink_only_records_per_s=%.0f\n", prefix, so1);
  printf("%s_sink_only_b10000_records_per_s=%.0f\n", prefix, so10);
  fflush(stdout);
  for (size_t i = 0; i < npr; i++) free(pr[i].buf);
  free(pr);

  /* The ceiling, with the sink's own messages. */
  sample s;
  sample_read(v.topic, &s);
  printf("%s_key_bytes=%.0f\n", prefix, s.key_mean);
  printf("%s_value_bytes=%.0f\n", prefix, s.val_mean);
  printf("%s_header_bytes=%.0f\n", prefix, s.hdr_mean);
  fflush(stdout);
  char name[96];
  cpu_take(&c0);
  nth0 = thr_take(th0, 64);
  int64_t cs0 = trb_mono_ns();
  snprintf(name, sizeof name, "ceiling_%s_msgs_per_s", tag);
  double plain = ceiling_best(&s, g_records, CEIL_PLAIN, tag, name);
  snprintf(name, sizeof name, "ceiling_%s", tag);
  cpu_print(name, &c0, 2 * recs, "msg");
  thr_print(name, th0, nth0, (double)(trb_mono_ns() - cs0) / 1e9);
  snprintf(name, sizeof name, "ceiling_%s_hdr_msgs_per_s", tag);
  double hdr = ceiling_best(&s, g_records, CEIL_HDR, tag, name);
  snprintf(name, sizeof name, "ceiling_%s_txn_msgs_per_s", tag);
  double txn = ceiling_best(&s, g_records, CEIL_TXN, tag, name);
  snprintf(name, sizeof name, "ceiling_%s_hdr_txn_msgs_per_s", tag);
  double hdrtxn = ceiling_best(&s, g_records, CEIL_HDR_TXN, tag, name);
  printf("ceiling_%s_msgs_per_s=%.0f\n", tag, plain);
  printf("ceiling_%s_hdr_msgs_per_s=%.0f\n", tag, hdr);
  printf("ceiling_%s_txn_msgs_per_s=%.0f\n", tag, txn);
  printf("%s_vs_ceiling=%.3f\n", prefix, kafka / plain);
  printf("%s_vs_ceiling_hdr=%.3f\n", prefix, kafka / hdr);
  printf("%s_vs_ceiling_txn=%.3f\n", prefix, kafka / txn);
  printf("ceiling_%s_hdr_txn_msgs_per_s=%.0f\n", tag, hdrtxn);
  printf("%s_vs_ceiling_hdr_txn=%.3f\n", prefix, kafka / hdrtxn);
  fflush(stdout);
  sample_free(&s);
  env_close(&v);
}

/* ---- latency ----------------------------------------------------------- */

typedef struct cctx {
  const char *topic;
  track *tr;
  int stop;
  uint64_t msgs;
} cctx;

static void *consumer_main(void *p) {
  cctx *c = p;
  pthread_setname_np(pthread_self(), "bench-consume");
  rd_kafka_t *rk = consumer_new("bench-kafka-latency");
  assign_all(rk, c->topic);
  while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
    if (!m) continue;
    int64_t now = trb_mono_ns();
    if (!m->err && m->payload) {
      mark(c->tr, c->tr->seen, msg_lsn(m), now);
      c->msgs++;
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return NULL;
}

typedef struct wctx {
  trb_engine *e;
  const char *table;
  track *tr;
  uint64_t *next;          /* the token counter, shared */
  int64_t start_ns, end_ns;
  double interval_ns;
  int id;
  int64_t *lat;            /* call -> ack, ns */
  size_t n, cap;
  size_t late;             /* writes started more than 1 ms after they were due */
  int64_t last_ack;
  uint64_t max_lsn;
} wctx;

static void put_one(trb_engine *e, const char *table, const char *id, int64_t n, uint64_t *rng,
                    uint64_t *lsn, int64_t *t0, int64_t *t1) {
  trb_av *it = make_item(id, n, 200 - 27, rng);
  trb_write w;
  memset(&w, 0, sizeof w);
  trb_status_init(&w.st);
  w.kind = TRB_W_PUT;
  w.table = table;
  w.item = it;
  trb_status st;
  trb_status_init(&st);
  *t0 = trb_mono_ns();
  trb_err rc = trb_engine_write(e, &w, 1, 0, &st);
  *t1 = trb_mono_ns();
  if (rc || w.rc) die("put", rc ? &st : &w.st);
  *lsn = w.lsn;
  trb_write_fini(&w);
  trb_av_destroy(it);
}

static void *writer_main(void *p) {
  wctx *a = p;
  char id[32];
  uint64_t rng = 0x9E3779B97F4A7C15ull * (uint64_t)(a->id + 1) ^ (uint64_t)trb_mono_ns();
  for (;;) {
    uint64_t i = __atomic_fetch_add(a->next, 1, __ATOMIC_RELAXED);
    int64_t due = a->start_ns + (int64_t)((double)i * a->interval_ns);
    if (due >= a->end_ns) break;
    int64_t now = trb_mono_ns();
    if (now < due) {
      struct timespec ts = {due / 1000000000, due % 1000000000};
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
      }
    } else if (now - due > 1000000) {
      a->late++;
    }
    snprintf(id, sizeof id, "l%011llu", (unsigned long long)i);
    uint64_t lsn;
    int64_t t0, t1;
    put_one(a->e, a->table, id, (int64_t)i, &rng, &lsn, &t0, &t1);
    mark(a->tr, a->tr->ack, lsn, t1);
    if (lsn > a->max_lsn) a->max_lsn = lsn;
    if (a->n == a->cap)
      a->lat = realloc(a->lat, (a->cap = a->cap ? a->cap * 2 : 4096) * sizeof *a->lat);
    a->lat[a->n++] = t1 - t0;
    a->last_ack = t1;
  }
  return NULL;
}

static void latency_phase(const char *base) {
  char prefix[64];
  snprintf(prefix, sizeof prefix, "kafka_r%.0f", g_rate);
  env v;
  env_open(&v, base, "benchlat", TRB_WAL_SYNC_ALWAYS);
  size_t cap = (size_t)(g_rate * g_seconds * 1.5) + 100000;
  /* Warm-up writes first: the sink opens, reads every partition's tail and
   * sends the schemas before the measured window. */
  sink_stats ss;
  memset(&ss, 0, sizeof ss);
  /* The tracker is set in the wrapper after the warm-up; until then its
   * deliveries count for nothing. */
  wrap_sink *ws = (wrap_sink *)sink_new(&v, 1, NULL, NULL, &ss);
  ws->wait_for_tr = 1;
  trb_tailer *t = tailer_start(&v, &ws->base);
  uint64_t rng = 42, lsn = 0;
  char id[32];
  for (int i = 0; i < 2000; i++) {
    int64_t a, b;
    snprintf(id, sizeof id, "w%011d", i);
    put_one(v.e, v.table, id, i, &rng, &lsn, &a, &b);
  }
  int64_t w0 = trb_mono_ns();
  double open_s;
  tailer_wait(t, lsn, w0, &open_s, 120);
  uint64_t base_lsn = trb_wal_last_lsn(trb_engine_wal(v.e)) + 1;
  track *tr = track_new(base_lsn, cap);
  cctx cc = {.topic = v.topic, .tr = tr};
  pthread_t cth;
  pthread_create(&cth, NULL, consumer_main, &cc);
  /* the consumer has its partitions and has read past the warm-up */
  sleep_ns(1000000000);
  __atomic_store_n(&ws->tr, tr, __ATOMIC_RELEASE);

  int writers = (int)(g_rate / 500);
  if (writers < 8) writers = 8;
  if (writers > 64) writers = 64;
  pthread_t *th = calloc((size_t)writers, sizeof *th);
  wctx *a = calloc((size_t)writers, sizeof *a);
  uint64_t next = 0;
  thr_cpu th0[64];
  size_t nth0 = thr_take(th0, 64);
  cpu_snap c0;
  cpu_take(&c0);
  int64_t start = trb_mono_ns() + 10000000;
  for (int i = 0; i < writers; i++) {
    a[i].e = v.e;
    a[i].table = v.table;
    a[i].tr = tr;
    a[i].next = &next;
    a[i].start_ns = start;
    a[i].end_ns = start + (int64_t)(g_seconds * 1e9);
    a[i].interval_ns = 1e9 / g_rate;
    a[i].id = i;
    pthread_create(&th[i], NULL, writer_main, &a[i]);
  }
  size_t total = 0, late = 0;
  int64_t last_ack = start;
  uint64_t max_lsn = 0;
  for (int i = 0; i < writers; i++) {
    pthread_join(th[i], NULL);
    total += a[i].n;
    late += a[i].late;
    if (a[i].last_ack > last_ack) last_ack = a[i].last_ack;
    if (a[i].max_lsn > max_lsn) max_lsn = a[i].max_lsn;
  }
  double wsecs = (double)(last_ack - start) / 1e9;
  /* Everything delivered and seen (or 30 s). */
  tailer_wait(t, max_lsn, trb_mono_ns(), NULL, 60);
  for (int i = 0; i < 3000 && missing(tr, tr->seen); i++) sleep_ns(10000000);
  cpu_print(prefix, &c0, (double)total, "write");
  thr_print(prefix, th0, nth0, (double)(trb_mono_ns() - start) / 1e9);
  __atomic_store_n(&cc.stop, 1, __ATOMIC_RELEASE);
  pthread_join(cth, NULL);

  int64_t *lat = malloc((total ? total : 1) * sizeof *lat);
  size_t k = 0;
  for (int i = 0; i < writers; i++) {
    memcpy(lat + k, a[i].lat, a[i].n * sizeof *lat);
    k += a[i].n;
    free(a[i].lat);
  }
  qsort(lat, total, sizeof *lat, cmp_i64);
  printf("%s_write_rate=%.0f\n", prefix, (double)total / wsecs);
  printf("%s_writes=%zu\n", prefix, total);
  printf("%s_writers=%d\n", prefix, writers);
  printf("%s_put_p50_us=%.0f\n", prefix, total ? (double)lat[total / 2] / 1000.0 : 0);
  printf("%s_put_p99_us=%.0f\n", prefix, total ? (double)lat[total * 99 / 100] / 1000.0 : 0);
  if (late) printf("%s_late_starts=%zu\n", prefix, late);
  print_diff(prefix, "ack_to_kafka", tr, tr->kafka);
  print_diff(prefix, "ack_to_consumer", tr, tr->seen);
  printf("%s_records_per_batch=%.1f\n", prefix,
         ss.batches ? (double)ss.records / (double)ss.batches : 0);
  printf("%s_deliver_mean_us=%.0f\n", prefix,
         ss.batches ? (double)ss.deliver_ns / (double)ss.batches / 1000.0 : 0);
  printf("%s_deliver_max_us=%.0f\n", prefix, (double)ss.deliver_max_ns / 1000.0);
  printf("%s_deliver_share=%.2f\n", prefix,
         (double)ss.deliver_ns / 1e9 / ((double)(trb_mono_ns() - start) / 1e9));
  fflush(stdout);
  free(lat);
  free(th);
  free(a);
  trb_tailer_stop(t);
  track_free(tr);
  env_close(&v);
}

int main(int argc, char **argv) {
  const char *dir = "/tmp/trb-bench-kafka";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) g_seconds = atof(argv[++i]);
    else if (!strcmp(argv[i], "--records") && i + 1 < argc) g_records = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--rate") && i + 1 < argc) g_rate = atof(argv[++i]);
    else if (!strcmp(argv[i], "--phase") && i + 1 < argc) g_phase = argv[++i];
    else if (!strcmp(argv[i], "--breakdown")) g_breakdown = 1;
    else if (!strcmp(argv[i], "--mock-nodelay")) g_nodelay = 1;
    else if (!strcmp(argv[i], "--leaders") && i + 1 < argc) {
      const char *l = argv[++i];
      g_leaders = !strcmp(l, "one") ? 1 : !strcmp(l, "spread") ? 2 : 0;
    }
    else {
      printf("usage: bench_kafka [--dir DIR] [--seconds S] [--records N] [--rate R]\n"
             "                   [--phase all|throughput|200b|1k|latency] [--breakdown]\n"
             "                   [--mock-nodelay] [--leaders mock|one|spread]\n");
      return strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  if (g_records < 1000 || g_rate <= 0 || g_seconds <= 0) {
    fprintf(stderr, "bench_kafka: --records >= 1000, --rate and --seconds > 0\n");
    return 2;
  }
  trb_log_set_level(TRB_LOG_WARN);
  sh("mkdir -p '%s'", dir);
  trb_status st;
  trb_status_init(&st);
  mock_start(g_nodelay);
  printf("kafka_mock=%s\n", g_nodelay ? "nodelay" : "trb_kafka_mock");
  int all = !strcmp(g_phase, "all");
  if (all || !strcmp(g_phase, "throughput") || !strcmp(g_phase, "200b"))
    throughput_phase(dir, "200b", 200);
  if (all || !strcmp(g_phase, "throughput") || !strcmp(g_phase, "1k"))
    throughput_phase(dir, "1k", 1024);
  if (all || !strcmp(g_phase, "latency")) {
    /* A fresh cluster: the throughput phases leave millions of messages in
     * the mock's memory, which slowed its brokers (ack -> Kafka p99 38-49
     * ms after them against 17-35 ms alone), and a real Kafka's retention
     * would not keep them around either. */
    if (all) {
      mock_stop();
      mock_start(g_nodelay);
    }
    latency_phase(dir);
  }
  mock_stop();
  return 0;
}
