/*
 * bench_streams.c -- the change stream end to end: from an acknowledged
 * write to its stream record being readable (GetRecords) and delivered to a
 * sink, and the processor's throughput against the WAL's raw read rate.
 *
 * Every phase opens a fresh engine (wal sync always, the default) in its own
 * directory under --dir, creates table "bench", turns its stream on
 * (NEW_AND_OLD_IMAGES, through trb_table_update as UpdateTable does) and
 * starts the stream index (trb_streams) on the engine's WAL, as
 * `tributary serve` does.
 *
 * Latency, at each rate of --rates (1,000 and 20,000 writes/s). Writer
 * threads (rate/500, 8..64) take write i from a token schedule (due at
 * start + i / rate, so the offered rate is the target, not a burst), put a
 * ~200-byte item on a random key of 100,000 (INSERTs and MODIFYs) with
 * trb_engine_write, which gives the write's LSN, and note the
 * acknowledgement time (the call returned) under that LSN. Beside the
 * writers, one of these modes per phase (--modes):
 *   both        the setup: a reader thread long-polls every shard
 *               with trb_streams_read (GetRecords without HTTP: read every
 *               shard from its position, then trb_streams_wait for a newer
 *               record) and notes when each LSN first comes back; and a
 *               tailer hands records to a sink of this file whose deliver()
 *               notes when each LSN arrives. Plain names:
 *               streams_r<rate>_ack_to_readable_*, ..._ack_to_sink_*.
 *   getrecords  the reader alone, and
 *   sink        the bench sink's tailer alone, to tell their costs apart
 *               (names streams_r<rate>_only_getrecords_*, ..._only_sink_*).
 *   file        the real audit file sink (sinks/file_sink.h, in a directory
 *               next to the data) behind a thin wrapper that notes when its
 *               deliver() returned, i.e. when batch and checkpoint are
 *               durable.
 *   http        GetRecords over HTTP: api/http.c on 127.0.0.1 and a
 *               keep-alive client of this file (ListStreams, DescribeStream,
 *               GetShardIterator TRIM_HORIZON, then GetRecords on each shard
 *               in turn; GetRecords never waits, so a round that returned
 *               nothing is followed by a 1 ms pause).
 *   base        nothing: the CPU cost of the writes and the index alone.
 * Differences are signed: the commit thread publishes a group to readers
 * before it applies it to the store and answers its writers, so a record
 * can be readable before its write is acknowledged (*_before_ack_pct).
 * *_other_cpu_pct is the share of all CPUs other processes took during the
 * phase (should be near 0); *_cpu_us_per_write is this process's CPU time
 * per write, which moves much less with such noise than latencies do.
 *
 * Processor throughput: --records records (200,000) are written to the WAL
 * first and the stream index catches up; then a tailer with the file sink
 * starts from checkpoint 0 and runs until its checkpoint is the last LSN:
 * records/s. The ceiling, in the same run: a raw trb_wal_reader reading
 * the same records from the same WAL as fast as it can (before and after
 * the processor runs; the higher rate counts). The WAL is read from the
 * page cache, while the file sink writes about twice the WAL's bytes
 * (Streams records are JSON) to the disk; so a second ceiling: the same
 * number of bytes, in the same batch sizes, each batch fdatasync'ed, written
 * straight to a file beside the sink's (ceiling_file_write_*,
 * processor_vs_file_write). For the analysis also: the same tailer with a
 * sink that does nothing, and the stream index rebuilding itself from the
 * same WAL.
 *
 * One `name=value` line per figure on stdout.
 *
 *   bench_streams [--dir DIR] [--seconds S] [--records N] [--rates R,R]
 *                 [--modes M,M] [--no-http] [--breakdown] [--phase P]
 *
 * --priority-boost N (default: serve's streams.priority_boost default) runs
 * the stream index, the tailers and the GetRecords reader N nice levels
 * above the writer threads, as serve runs its stream threads above its
 * request threads (needs CAP_SYS_NICE; the figure priority_boost_applied
 * says whether it took).
 *
 * --breakdown adds a thread with a raw WAL reader that notes when each LSN
 * is published (as a reader blocked on the WAL sees it) and prints the
 * figures from that moment too (pub_to_ack, pub_to_readable, pub_to_sink),
 * the maxima, and for each long-lived thread its share of the phase's wall
 * time on a CPU and runnable but waiting for one (*_thread_<name>_cpu_pct,
 * *_runq_pct, from /proc/self/task/<tid>/schedstat).
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/dynamo.h"
#include "api/http.h"
#include "api/stream_iter.h"
#include "capture/tailer.h"
#include "capture/wal.h"
#include "engine/engine.h"
#include "sinks/file_sink.h"
#include "sinks/sink.h"
#include "transform/stream_record.h"
#include "transform/streams.h"
#include "util/clock.h"
#include "util/thread.h"

#define KEYSPACE 100000u
#define TABLE "bench"

static double g_seconds = 5.0;
static size_t g_records = 200000;
static int g_http = 1;
static int g_breakdown = 0;
/* The stream threads' nice boost: serve's default unless --priority-boost. */
static unsigned g_boost = TRB_STREAMS_PRIORITY_BOOST_DEFAULT;
static const char *g_phase = "all";
static double g_rates[8] = {1000, 20000};
static size_t g_nrates = 2;

static void die(const char *what, const trb_status *st) {
  fprintf(stderr, "bench_streams: %s: %s\n", what, st ? trb_status_msg(st) : "");
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

/* ---- CPU accounting: how much of the machine others took ------------- */

/* Machine-wide busy and total CPU seconds (/proc/stat) and this process's
 * own (getrusage). */
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

/* Prints the share of all CPUs that other processes took since a, and this
 * process's CPU time per unit of work (us). */
static void cpu_print(const char *prefix, const cpu_snap *a, double units, const char *unit) {
  cpu_snap b;
  cpu_take(&b);
  double tot = b.total - a->total, self = b.self - a->self;
  double other = (b.busy - a->busy) - self;
  printf("%s_other_cpu_pct=%.0f\n", prefix, tot > 0 ? 100.0 * (other < 0 ? 0 : other) / tot : 0);
  if (units > 0) printf("%s_cpu_us_per_%s=%.1f\n", prefix, unit, self * 1e6 / units);
}

/* Per thread name: time on a CPU and time runnable but waiting for one
 * (/proc/self/task/<tid>/schedstat, ns), summed over the threads of that
 * name that exist at the snapshot. */
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

/* Prints, for each thread name in both snapshots, its share of the wall
 * time on a CPU and waiting for one. */
static void thr_print(const char *prefix, const thr_cpu *a, size_t na, double secs) {
  thr_cpu b[64];
  size_t nb = thr_take(b, 64);
  for (size_t i = 0; i < nb; i++)
    for (size_t j = 0; j < na; j++)
      if (!strcmp(a[j].comm, b[i].comm)) {
        printf("%s_thread_%s_cpu_pct=%.0f\n", prefix, b[i].comm,
               100.0 * (b[i].run_s - a[j].run_s) / secs);
        printf("%s_thread_%s_runq_pct=%.0f\n", prefix, b[i].comm,
               100.0 * (b[i].wait_s - a[j].wait_s) / secs);
      }
}

/* ---- per-LSN times of one phase ---------------------------------------- */

/* Monotonic ns per LSN (index lsn - base), 0 = not yet. Each array has one
 * writer per slot: the writer of that LSN (ack), the reader (seen), the
 * sink's thread (sink), the publication watcher (pub). */
typedef struct track {
  uint64_t base;
  size_t cap;
  int64_t *ack, *seen, *sink, *pub;
} track;

static track *track_new(uint64_t base, size_t cap) {
  track *t = calloc(1, sizeof *t);
  t->base = base;
  t->cap = cap;
  t->ack = calloc(cap, sizeof *t->ack);
  t->seen = calloc(cap, sizeof *t->seen);
  t->sink = calloc(cap, sizeof *t->sink);
  t->pub = calloc(cap, sizeof *t->pub);
  if (!t->ack || !t->seen || !t->sink || !t->pub) die("out of memory", NULL);
  return t;
}

static void track_free(track *t) {
  if (!t) return;
  free(t->ack);
  free(t->seen);
  free(t->sink);
  free(t->pub);
  free(t);
}

/* Notes the first time for lsn in a. */
static void mark(const track *t, int64_t *a, uint64_t lsn, int64_t now) {
  if (!t || lsn < t->base || lsn - t->base >= t->cap) return;
  int64_t *p = &a[lsn - t->base];
  if (!__atomic_load_n(p, __ATOMIC_RELAXED)) __atomic_store_n(p, now, __ATOMIC_RELEASE);
}

/* How many acknowledged LSNs have no time in a yet. */
static size_t missing(const track *t, const int64_t *a) {
  size_t m = 0;
  for (size_t i = 0; i < t->cap; i++)
    if (__atomic_load_n(&t->ack[i], __ATOMIC_ACQUIRE) && !__atomic_load_n(&a[i], __ATOMIC_ACQUIRE))
      m++;
  return m;
}

/* Prints p50/p99 (us) of to[i] - from[i] over the LSNs both have, and the
 * share below zero (to before from). */
static void print_diff(const char *prefix, const char *name, const track *t, const int64_t *from,
                       const int64_t *to, int negative_share) {
  int64_t *d = malloc((t->cap ? t->cap : 1) * sizeof *d);
  size_t n = 0, neg = 0, miss = 0;
  for (size_t i = 0; i < t->cap; i++) {
    if (!from[i] || !t->ack[i]) continue;
    if (!to[i]) {
      miss++;
      continue;
    }
    d[n] = to[i] - from[i];
    if (d[n] < 0) neg++;
    n++;
  }
  qsort(d, n, sizeof *d, cmp_i64);
  printf("%s_%s_p50_us=%.0f\n", prefix, name, n ? (double)d[n / 2] / 1000.0 : 0);
  printf("%s_%s_p99_us=%.0f\n", prefix, name, n ? (double)d[n * 99 / 100] / 1000.0 : 0);
  if (g_breakdown)
    printf("%s_%s_max_us=%.0f\n", prefix, name, n ? (double)d[n - 1] / 1000.0 : 0);
  if (negative_share)
    printf("%s_%s_before_ack_pct=%.1f\n", prefix, name, n ? 100.0 * (double)neg / (double)n : 0);
  if (miss) printf("%s_%s_missing=%zu\n", prefix, name, miss);
  free(d);
}

/* ---- items and writers ------------------------------------------------- */

/* id S, n N, pad S (170): about 200 bytes of DynamoDB item size. */
static trb_av *make_item(const char *id, int64_t n) {
  static char pad[171];
  if (!pad[0]) {
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = 0;
  }
  trb_dec d;
  trb_dec_from_i64(n, &d);
  trb_av *it = trb_av_new_m();
  trb_av_m_set(it, "id", 2, trb_av_new_s(id, strlen(id)));
  trb_av_m_set(it, "n", 1, trb_av_new_n(&d));
  trb_av_m_set(it, "pad", 3, trb_av_new_s(pad, sizeof pad - 1));
  return it;
}

typedef struct wctx {
  trb_engine *e;
  track *tr;
  uint64_t *next;          /* the token counter, shared */
  int64_t start_ns, end_ns;
  double interval_ns;      /* between due times */
  uint64_t rng;
  int64_t *lat;            /* call -> ack, ns */
  size_t n, cap;
  size_t late;             /* writes started more than 1 ms after they were due */
  int64_t last_ack;
} wctx;

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static void *writer_main(void *p) {
  wctx *a = p;
  char id[32];
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
    snprintf(id, sizeof id, "k%06u", (unsigned)(xorshift(&a->rng) % KEYSPACE));
    trb_av *it = make_item(id, (int64_t)i);
    trb_write w;
    memset(&w, 0, sizeof w);
    trb_status_init(&w.st);
    w.kind = TRB_W_PUT;
    w.table = TABLE;
    w.item = it;
    trb_status st;
    trb_status_init(&st);
    int64_t t0 = trb_mono_ns();
    trb_err rc = trb_engine_write(a->e, &w, 1, 0, &st);
    int64_t t1 = trb_mono_ns();
    if (rc || w.rc) die("put", rc ? &st : &w.st);
    mark(a->tr, a->tr->ack, w.lsn, t1);
    trb_write_fini(&w);
    trb_av_destroy(it);
    if (a->n == a->cap) a->lat = realloc(a->lat, (a->cap = a->cap ? a->cap * 2 : 4096) * sizeof *a->lat);
    a->lat[a->n++] = t1 - t0;
    a->last_ack = t1;
  }
  return NULL;
}

/* Writes at `rate` for g_seconds with `writers` threads. Prints the
 * achieved rate and the put latency. */
static size_t run_writers(trb_engine *e, track *tr, double rate, int writers, const char *prefix) {
  pthread_t *th = calloc((size_t)writers, sizeof *th);
  wctx *a = calloc((size_t)writers, sizeof *a);
  uint64_t next = 0;
  int64_t start = trb_mono_ns() + 10000000; /* every thread waiting before the first token */
  for (int i = 0; i < writers; i++) {
    a[i].e = e;
    a[i].tr = tr;
    a[i].next = &next;
    a[i].start_ns = start;
    a[i].end_ns = start + (int64_t)(g_seconds * 1e9);
    a[i].interval_ns = 1e9 / rate;
    a[i].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1) ^ (uint64_t)trb_mono_ns();
    pthread_create(&th[i], NULL, writer_main, &a[i]);
  }
  size_t total = 0, late = 0;
  int64_t last = start;
  for (int i = 0; i < writers; i++) {
    pthread_join(th[i], NULL);
    total += a[i].n;
    late += a[i].late;
    if (a[i].last_ack > last) last = a[i].last_ack;
  }
  int64_t *lat = malloc((total ? total : 1) * sizeof *lat);
  size_t k = 0;
  for (int i = 0; i < writers; i++) {
    memcpy(lat + k, a[i].lat, a[i].n * sizeof *lat);
    k += a[i].n;
    free(a[i].lat);
  }
  qsort(lat, total, sizeof *lat, cmp_i64);
  printf("%s_write_rate=%.0f\n", prefix, (double)total / ((double)(last - start) / 1e9));
  printf("%s_put_p50_us=%.0f\n", prefix, total ? (double)lat[total / 2] / 1000.0 : 0);
  printf("%s_put_p99_us=%.0f\n", prefix, total ? (double)lat[total * 99 / 100] / 1000.0 : 0);
  if (late) printf("%s_late_starts=%zu\n", prefix, late);
  free(lat);
  free(th);
  free(a);
  return total;
}

/* ---- engine, table, stream --------------------------------------------- */

typedef struct env {
  char dir[4096];
  trb_engine *e;
  trb_streams *s;
  char label[32];
} env;

static void env_open(env *v, const char *base, const char *name) {
  memset(v, 0, sizeof *v);
  snprintf(v->dir, sizeof v->dir, "%s/%s", base, name);
  sh("rm -rf '%s'", v->dir);
  trb_engine_opts o;
  trb_engine_opts_default(&o);
  o.data_dir = v->dir;
  trb_status st;
  trb_status_init(&st);
  if (trb_engine_open(&o, &v->e, &st)) die("engine open", &st);
  trb_keyschema ks;
  memset(&ks, 0, sizeof ks);
  strcpy(ks.pk_name, "id");
  ks.pk_type = TRB_T_S;
  if (trb_table_create(v->e, TABLE, &ks, NULL, NULL, &st)) die("create table", &st);
  /* UpdateTable's way of turning the stream on (api/dynamo_table.c). */
  int64_t us = trb_now_us();
  time_t secs = (time_t)(us / 1000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char b[24];
  strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(v->label, sizeof v->label, "%s.%03d", b, (int)((us / 1000) % 1000));
  json_t *ext = json_pack("{s:{s:b,s:s},s:s}", "StreamSpecification", "StreamEnabled", 1,
                          "StreamViewType", "NEW_AND_OLD_IMAGES", "StreamLabel", v->label);
  if (trb_table_update(v->e, TABLE, ext, NULL, &st)) die("enable the stream", &st);
  json_decref(ext);
  trb_streams_opts so;
  trb_streams_opts_default(&so);
  so.wal = trb_engine_wal(v->e);
  so.priority_boost = g_boost;
  if (trb_streams_start(&so, &v->s, &st)) die("streams start", &st);
  if (trb_streams_sync(v->s, 10000)) die("streams sync", NULL);
}

static void env_close(env *v) {
  trb_streams_stop(v->s);
  trb_engine_close(v->e);
  sh("rm -rf '%s'", v->dir);
}

/* The shard ids of the stream. *ids malloc'ed. */
static size_t shard_ids(env *v, char (**ids)[64]) {
  trb_stream_info si;
  trb_shard_info *shards;
  size_t n;
  trb_status st;
  trb_status_init(&st);
  if (trb_streams_describe(v->s, TABLE, v->label, &si, &shards, &n, &st)) die("describe", &st);
  *ids = calloc(n ? n : 1, sizeof **ids);
  for (size_t i = 0; i < n; i++) snprintf((*ids)[i], 64, "%s", shards[i].id);
  free(shards);
  return n;
}

static uint64_t rec_lsn(json_t *rec) {
  const char *seq =
      json_string_value(json_object_get(json_object_get(rec, "dynamodb"), "SequenceNumber"));
  uint64_t lsn = 0;
  if (!seq || trb_seqno_parse(seq, &lsn, NULL)) return 0;
  return lsn;
}

/* ---- sinks ------------------------------------------------------------- */

typedef struct sink_stats {
  uint64_t batches, records;
  int64_t deliver_ns;      /* time inside the inner deliver (file sink) */
} sink_stats;

/* The in-benchmark sink: notes when each record arrives. */
typedef struct bench_sink {
  trb_sink base;
  track *tr;
  sink_stats *ss;
} bench_sink;

static trb_err bs_open(trb_sink *s, uint64_t *checkpoint, trb_status *st) {
  (void)s;
  (void)st;
  *checkpoint = 0;
  return TRB_OK;
}

static trb_err bs_deliver(trb_sink *s, const trb_sink_rec *recs, size_t n, uint64_t through,
                          trb_status *st) {
  (void)through;
  (void)st;
  bench_sink *b = (bench_sink *)s;
  int64_t now = trb_mono_ns();
  for (size_t i = 0; i < n; i++) mark(b->tr, b->tr ? b->tr->sink : NULL, recs[i].wal->lsn, now);
  if (n) {
    b->ss->batches++;
    b->ss->records += n;
  }
  return TRB_OK;
}

static void bs_destroy(trb_sink *s) { free(s); }

static const trb_sink_ops bench_ops = {
    .kind = "bench", .open = bs_open, .deliver = bs_deliver, .destroy = bs_destroy};

static trb_sink *bench_sink_new(track *tr, sink_stats *ss) {
  bench_sink *b = calloc(1, sizeof *b);
  b->base.ops = &bench_ops;
  b->base.wants_record = 1; /* a sink that takes Streams records, like the file sink */
  b->tr = tr;
  b->ss = ss;
  return &b->base;
}

/* The file sink behind a wrapper that notes when its deliver returned. */
typedef struct wrap_sink {
  trb_sink base;
  trb_sink *in;
  track *tr;
  sink_stats *ss;
} wrap_sink;

static trb_err ws_open(trb_sink *s, uint64_t *checkpoint, trb_status *st) {
  wrap_sink *w = (wrap_sink *)s;
  return w->in->ops->open(w->in, checkpoint, st);
}

static trb_err ws_deliver(trb_sink *s, const trb_sink_rec *recs, size_t n, uint64_t through,
                          trb_status *st) {
  wrap_sink *w = (wrap_sink *)s;
  int64_t t0 = trb_mono_ns();
  trb_err rc = w->in->ops->deliver(w->in, recs, n, through, st);
  int64_t now = trb_mono_ns();
  if (rc) return rc;
  for (size_t i = 0; i < n; i++) mark(w->tr, w->tr ? w->tr->sink : NULL, recs[i].wal->lsn, now);
  w->ss->deliver_ns += now - t0;
  w->ss->batches++;
  w->ss->records += n;
  return TRB_OK;
}

static void ws_destroy(trb_sink *s) {
  wrap_sink *w = (wrap_sink *)s;
  w->in->ops->destroy(w->in);
  free(w);
}

static const trb_sink_ops wrap_ops = {
    .kind = "file", .open = ws_open, .deliver = ws_deliver, .destroy = ws_destroy};

static trb_sink *file_sink_new(const char *dir, track *tr, sink_stats *ss) {
  sh("rm -rf '%s'", dir);
  trb_file_sink_opts fo = {.dir = dir};
  trb_sink *in;
  trb_status st;
  trb_status_init(&st);
  if (trb_file_sink_create(&fo, &in, &st)) die("file sink", &st);
  wrap_sink *w = calloc(1, sizeof *w);
  w->base.ops = &wrap_ops;
  w->base.wants_record = in->wants_record;
  w->in = in;
  w->tr = tr;
  w->ss = ss;
  return &w->base;
}

static trb_tailer *tailer_start(env *v, trb_sink *sink) {
  trb_tailer_opts to = {.wal = trb_engine_wal(v->e), .streams = v->s, .priority_boost = g_boost};
  trb_tailer *t;
  trb_status st;
  trb_status_init(&st);
  if (trb_tailer_start(&to, sink, &t, &st)) die("tailer start", &st);
  return t;
}

/* ---- the in-process GetRecords loop ------------------------------------ */

typedef struct rctx {
  env *v;
  track *tr;
  int stop;
  uint64_t reads, polls;
} rctx;

static void *reader_main(void *p) {
  rctx *r = p;
  pthread_setname_np(pthread_self(), "bench-getrec");
  /* It stands for the server's thread serving GetRecords, which runs at the
   * stream threads' priority while it reads (api/dynamo_streams.c). */
  trb_thread_favour(g_boost, "the stream threads");
  char (*ids)[64];
  size_t n = shard_ids(r->v, &ids);
  uint64_t *from = calloc(n ? n : 1, sizeof *from);
  trb_status st;
  trb_status_init(&st);
  trb_buf text;
  trb_buf_init(&text, 0);
  while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
    /* Everything the index had taken in before this round is read in it;
     * then wait for the first record after that (a long poll). */
    uint64_t want = trb_streams_next_lsn(r->v->s);
    for (size_t i = 0; i < n; i++) {
      for (;;) {
        /* as GetRecords reads: the records as JSON text (api/dynamo_streams.c) */
        trb_streams_page pg;
        trb_buf_reset(&text);
        if (trb_streams_read_text(r->v->s, TABLE, r->v->label, ids[i], from[i], 1000, 1 << 20,
                                  &text, &pg, &st))
          die("trb_streams_read", &st);
        int64_t now = trb_mono_ns();
        r->reads++;
        size_t k = pg.count;
        trb_buf_append(&text, "", 1);
        const char *q = (const char *)text.p;
        for (size_t j = 0; j < k; j++) {
          q = strstr(q, "\"SequenceNumber\":\"1");
          if (!q) die("a record without its SequenceNumber", NULL);
          q += strlen("\"SequenceNumber\":\"1");
          mark(r->tr, r->tr->seen, strtoull(q, NULL, 10), now);
        }
        from[i] = pg.next_lsn;
        if (k < 1000) break;
      }
    }
    r->polls++;
    trb_streams_wait(r->v->s, want, 100);
  }
  trb_buf_fini(&text);
  free(from);
  free(ids);
  return NULL;
}

/* ---- publication watcher (--breakdown) --------------------------------- */

typedef struct pctx {
  env *v;
  track *tr;
  int stop;
} pctx;

static void *pub_main(void *p) {
  pctx *c = p;
  pthread_setname_np(pthread_self(), "bench-pub");
  trb_wal_reader *rd;
  trb_status st;
  trb_status_init(&st);
  if (trb_wal_reader_open(trb_engine_wal(c->v->e), c->tr->base, &rd, &st)) die("reader", &st);
  while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
    trb_wal_rec r;
    trb_err rc = trb_wal_reader_next(rd, &r, 50, &st);
    if (rc == TRB_ETIMEDOUT) continue;
    if (rc) break;
    mark(c->tr, c->tr->pub, r.lsn, trb_mono_ns());
  }
  trb_wal_reader_close(rd);
  return NULL;
}

/* ---- a minimal HTTP/1.1 client (keep-alive, Content-Length only) ------- */

typedef struct hclient {
  int fd;
  char *buf;
  size_t cap;
} hclient;

static void hc_connect(hclient *c, int port) {
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) {
    perror("connect");
    exit(1);
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->cap = 1 << 20;
  c->buf = malloc(c->cap);
}

/* POSTs a Streams operation; the parsed response body (caller decrefs). */
static json_t *hc_call(hclient *c, const char *op, json_t *body) {
  char *b = json_dumps(body, JSON_COMPACT);
  size_t bl = strlen(b);
  char head[512];
  int hl = snprintf(head, sizeof head,
                    "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Type: application/x-amz-json-1.0\r\n"
                    "X-Amz-Target: DynamoDBStreams_20120810.%s\r\n"
                    "Content-Length: %zu\r\n\r\n",
                    op, bl);
  if (write(c->fd, head, (size_t)hl) != hl || write(c->fd, b, bl) != (ssize_t)bl) {
    perror("write");
    exit(1);
  }
  free(b);
  size_t len = 0, hdr_end = 0, clen = 0;
  int status = 0;
  for (;;) {
    if (len == c->cap) c->buf = realloc(c->buf, c->cap *= 2);
    ssize_t r = read(c->fd, c->buf + len, c->cap - len);
    if (r <= 0) {
      fprintf(stderr, "bench_streams: HTTP connection closed\n");
      exit(1);
    }
    len += (size_t)r;
    if (!hdr_end) {
      char *e = memmem(c->buf, len, "\r\n\r\n", 4);
      if (!e) continue;
      hdr_end = (size_t)(e - c->buf) + 4;
      c->buf[hdr_end - 1] = 0;
      sscanf(c->buf, "HTTP/1.%*d %d", &status);
      for (char *l = strstr(c->buf, "\r\n"); l; l = strstr(l + 2, "\r\n"))
        if (!strncasecmp(l + 2, "Content-Length:", 15)) clen = strtoull(l + 17, NULL, 10);
      if (strcasestr(c->buf, "Transfer-Encoding: chunked")) {
        fprintf(stderr, "bench_streams: chunked responses are not supported here\n");
        exit(1);
      }
    }
    if (hdr_end && len >= hdr_end + clen) break;
  }
  json_error_t je;
  json_t *o = json_loadb(c->buf + hdr_end, clen, 0, &je);
  if (status != 200 || !o) {
    fprintf(stderr, "bench_streams: %s: HTTP %d: %.*s\n", op, status, (int)clen, c->buf + hdr_end);
    exit(1);
  }
  return o;
}

typedef struct hctx {
  int port;
  track *tr;
  int stop;
  uint64_t requests, records;
  int64_t call_ns;         /* time inside GetRecords calls */
} hctx;

static void *http_reader_main(void *p) {
  hctx *h = p;
  pthread_setname_np(pthread_self(), "bench-httpcli");
  hclient c;
  hc_connect(&c, h->port);
  json_t *rq = json_pack("{s:s}", "TableName", TABLE);
  json_t *o = hc_call(&c, "ListStreams", rq);
  json_decref(rq);
  char arn[1100];
  snprintf(arn, sizeof arn, "%s",
           json_string_value(json_object_get(json_array_get(json_object_get(o, "Streams"), 0),
                                             "StreamArn")));
  json_decref(o);
  rq = json_pack("{s:s}", "StreamArn", arn);
  o = hc_call(&c, "DescribeStream", rq);
  json_decref(rq);
  json_t *shards = json_object_get(json_object_get(o, "StreamDescription"), "Shards");
  size_t n = json_array_size(shards);
  char **its = calloc(n ? n : 1, sizeof *its);
  for (size_t i = 0; i < n; i++) {
    const char *id = json_string_value(json_object_get(json_array_get(shards, i), "ShardId"));
    rq = json_pack("{s:s,s:s,s:s}", "StreamArn", arn, "ShardId", id, "ShardIteratorType",
                   "TRIM_HORIZON");
    json_t *r = hc_call(&c, "GetShardIterator", rq);
    json_decref(rq);
    its[i] = strdup(json_string_value(json_object_get(r, "ShardIterator")));
    json_decref(r);
  }
  json_decref(o);
  while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
      if (!its[i]) continue;
      rq = json_pack("{s:s,s:i}", "ShardIterator", its[i], "Limit", 1000);
      int64_t t0 = trb_mono_ns();
      json_t *r = hc_call(&c, "GetRecords", rq);
      int64_t now = trb_mono_ns();
      h->call_ns += now - t0;
      json_decref(rq);
      h->requests++;
      json_t *recs = json_object_get(r, "Records");
      for (size_t j = 0; j < json_array_size(recs); j++)
        mark(h->tr, h->tr->seen, rec_lsn(json_array_get(recs, j)), now);
      got += json_array_size(recs);
      h->records += json_array_size(recs);
      const char *next = json_string_value(json_object_get(r, "NextShardIterator"));
      free(its[i]);
      its[i] = next ? strdup(next) : NULL;
      json_decref(r);
    }
    if (!got) sleep_ns(1000000);
  }
  for (size_t i = 0; i < n; i++) free(its[i]);
  free(its);
  free(c.buf);
  close(c.fd);
  return NULL;
}

/* ---- latency phases ---------------------------------------------------- */

/* What runs beside the writers (and the stream index, always on). */
enum {
  MODE_BOTH,       /* in-process GetRecords loop + tailer with the bench sink */
  MODE_GETRECORDS, /* the GetRecords loop alone */
  MODE_SINK,       /* the bench sink's tailer alone */
  MODE_FILE,       /* the file sink's tailer alone */
  MODE_HTTP,       /* the GetRecords loop over HTTP alone */
  MODE_BASE,       /* nothing: the cost of the writes and the index */
  MODE_N
};
static const char *mode_names[MODE_N] = {"both", "getrecords", "sink", "file", "http", "base"};
static int g_modes[MODE_N] = {1, 1, 1, 1, 1, 1};

/* Waits until no acknowledged LSN lacks a time in a (or 5 s). */
static void drain(const track *tr, const int64_t *a) {
  int64_t end = trb_mono_ns() + 5000000000ll;
  while (missing(tr, a) && trb_mono_ns() < end) sleep_ns(10000000);
}

static void latency_phase(const char *base, double rate, int mode) {
  char name[64], prefix[96];
  snprintf(name, sizeof name, "lat-%.0f-%s", rate, mode_names[mode]);
  /* The phase the issue describes (both consumers) has the plain names. */
  if (mode == MODE_BOTH) snprintf(prefix, sizeof prefix, "streams_r%.0f", rate);
  else if (mode == MODE_GETRECORDS || mode == MODE_SINK)
    snprintf(prefix, sizeof prefix, "streams_r%.0f_only_%s", rate, mode_names[mode]);
  else snprintf(prefix, sizeof prefix, "streams_r%.0f_%s", rate, mode_names[mode]);
  int reader = mode == MODE_BOTH || mode == MODE_GETRECORDS;
  int bsink = mode == MODE_BOTH || mode == MODE_SINK;
  env v;
  env_open(&v, base, name);
  int writers = rate / 500 < 8 ? 8 : rate / 500 > 64 ? 64 : (int)(rate / 500);
  track *tr = track_new(trb_wal_last_lsn(trb_engine_wal(v.e)) + 1,
                        (size_t)(rate * g_seconds * 1.2) + 10000);
  sink_stats ss;
  memset(&ss, 0, sizeof ss);
  trb_tailer *t = NULL;
  char fdir[4200];
  snprintf(fdir, sizeof fdir, "%s-sink", v.dir);
  if (bsink) t = tailer_start(&v, bench_sink_new(tr, &ss));
  if (mode == MODE_FILE) t = tailer_start(&v, file_sink_new(fdir, tr, &ss));
  rctx rc = {.v = &v, .tr = tr};
  pctx pc = {.v = &v, .tr = tr};
  pthread_t rth, pth;
  if (reader) pthread_create(&rth, NULL, reader_main, &rc);
  if (g_breakdown) pthread_create(&pth, NULL, pub_main, &pc);
  trb_iter_key *ik = NULL;
  trb_api *api = NULL;
  trb_http_server *srv = NULL;
  hctx hc = {.tr = tr};
  if (mode == MODE_HTTP) {
    unsigned char kb[TRB_ITER_KEY_LEN];
    memset(kb, 7, sizeof kb);
    ik = trb_iter_key_from_bytes(kb);
    trb_api_opts ao;
    memset(&ao, 0, sizeof ao);
    ao.streams = v.s;
    ao.iter_key = ik;
    ao.stream_priority_boost = g_boost;
    api = trb_api_create(v.e, &ao);
    trb_http_opts ho = {.listen = "127.0.0.1:0", .threads = 2};
    trb_status st;
    trb_status_init(&st);
    if (!api || trb_http_start(&ho, trb_api_handle, trb_api_reject, api, &srv, &st))
      die("http start", &st);
    hc.port = trb_http_port(srv);
    pthread_create(&rth, NULL, http_reader_main, &hc);
  }
  sleep_ns(50000000); /* the threads above have named themselves */
  cpu_snap c0;
  cpu_take(&c0);
  thr_cpu th0[64];
  size_t nth0 = g_breakdown ? thr_take(th0, 64) : 0;
  int64_t t0 = trb_mono_ns();
  size_t writes = run_writers(v.e, tr, rate, writers, prefix);
  double secs = (double)(trb_mono_ns() - t0) / 1e9;
  if (g_breakdown) thr_print(prefix, th0, nth0, secs);
  if (reader || mode == MODE_HTTP) drain(tr, tr->seen);
  if (t) drain(tr, tr->sink);
  if (g_breakdown) drain(tr, tr->pub);
  cpu_print(prefix, &c0, (double)writes, "write");
  if (reader || mode == MODE_HTTP) {
    __atomic_store_n(mode == MODE_HTTP ? &hc.stop : &rc.stop, 1, __ATOMIC_RELEASE);
    pthread_join(rth, NULL);
  }
  if (g_breakdown) {
    __atomic_store_n(&pc.stop, 1, __ATOMIC_RELEASE);
    pthread_join(pth, NULL);
  }
  trb_tailer_stop(t);
  trb_http_stop(srv);
  trb_api_destroy(api);
  trb_iter_key_destroy(ik);
  if (reader || mode == MODE_HTTP) print_diff(prefix, "ack_to_readable", tr, tr->ack, tr->seen, 1);
  if (t) {
    print_diff(prefix, "ack_to_sink", tr, tr->ack, tr->sink, 1);
    printf("%s_sink_records_per_batch=%.1f\n", prefix,
           ss.batches ? (double)ss.records / (double)ss.batches : 0);
  }
  if (mode == MODE_FILE)
    printf("%s_sink_deliver_mean_us=%.0f\n", prefix,
           ss.batches ? (double)ss.deliver_ns / (double)ss.batches / 1000.0 : 0);
  if (reader) {
    printf("%s_getrecords_reads_per_s=%.0f\n", prefix, (double)rc.reads / secs);
    printf("%s_getrecords_polls_per_s=%.0f\n", prefix, (double)rc.polls / secs);
  }
  if (mode == MODE_HTTP) {
    printf("%s_getrecords_per_s=%.0f\n", prefix, (double)hc.requests / secs);
    printf("%s_getrecords_mean_us=%.0f\n", prefix,
           hc.requests ? (double)hc.call_ns / (double)hc.requests / 1000.0 : 0);
    printf("%s_getrecords_records_per_call=%.1f\n", prefix,
           hc.requests ? (double)hc.records / (double)hc.requests : 0);
  }
  if (g_breakdown) {
    /* the commit thread publishes before it answers: ack - pub >= 0 */
    print_diff(prefix, "pub_to_ack", tr, tr->pub, tr->ack, 0);
    if (reader || mode == MODE_HTTP) print_diff(prefix, "pub_to_readable", tr, tr->pub, tr->seen, 0);
    if (t) print_diff(prefix, "pub_to_sink", tr, tr->pub, tr->sink, 0);
  }
  fflush(stdout);
  track_free(tr);
  env_close(&v);
  sh("rm -rf '%s'", fdir);
}

/* ---- processor throughput ---------------------------------------------- */

typedef struct fctx {
  trb_engine *e;
  int id;
  size_t n;
} fctx;

/* Unpaced puts in batches of 32 distinct keys per call. */
static void *fill_main(void *p) {
  fctx *a = p;
  enum { B = 32 };
  trb_write w[B];
  trb_av *it[B];
  char id[32];
  for (size_t done = 0; done < a->n;) {
    size_t k = a->n - done < B ? a->n - done : B;
    memset(w, 0, sizeof w);
    for (size_t j = 0; j < k; j++) {
      snprintf(id, sizeof id, "f%02d-%09zu", a->id, done + j);
      it[j] = make_item(id, (int64_t)(done + j));
      w[j].kind = TRB_W_PUT;
      w[j].table = TABLE;
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

/* A raw reader over the whole WAL: records/s. */
static double wal_read_rate(trb_wal *wal, uint64_t last) {
  trb_wal_reader *rd;
  trb_status st;
  trb_status_init(&st);
  int64_t t0 = trb_mono_ns();
  if (trb_wal_reader_open(wal, trb_wal_first_lsn(wal), &rd, &st)) die("reader open", &st);
  uint64_t n = 0, bytes = 0;
  for (;;) {
    trb_wal_rec r;
    trb_err rc = trb_wal_reader_next(rd, &r, 0, &st);
    if (rc) die("raw read", &st);
    n++;
    bytes += r.keys_len + r.old_len + r.new_len;
    if (r.lsn >= last) break;
  }
  double secs = (double)(trb_mono_ns() - t0) / 1e9;
  trb_wal_reader_close(rd);
  if (!bytes) die("raw read: no bytes", NULL);
  return (double)n / secs;
}

/* Bytes of the .jsonl files under a directory. */
static uint64_t g_du;
static int du_one(const char *path, const struct stat *sb, int flag, struct FTW *f) {
  (void)f;
  size_t l = strlen(path);
  if (flag == FTW_F && l > 6 && !strcmp(path + l - 6, ".jsonl")) g_du += (uint64_t)sb->st_size;
  return 0;
}
static uint64_t jsonl_bytes(const char *dir) {
  g_du = 0;
  nftw(dir, du_one, 16, FTW_PHYS);
  return g_du;
}

/* A tailer from checkpoint 0 until its checkpoint is `last`: seconds. */
static double tailer_run(env *v, trb_sink *sink, uint64_t last) {
  int64_t t0 = trb_mono_ns();
  trb_tailer *t = tailer_start(v, sink);
  trb_tailer_stats ts;
  for (;;) {
    trb_tailer_get_stats(t, &ts);
    if (ts.checkpoint >= last) break;
    if (ts.broken) die("tailer broke", NULL);
    sleep_ns(200000);
  }
  double secs = (double)(trb_mono_ns() - t0) / 1e9;
  trb_tailer_stop(t);
  return secs;
}

/* The disk's own ceiling for the file sink: `bytes` written to a fresh file
 * in `dir` in writes of `chunk` bytes, each followed by an fdatasync (the
 * sink syncs once per batch); seconds taken. */
static double file_write_secs(const char *dir, double bytes, size_t chunk) {
  char path[4300];
  snprintf(path, sizeof path, "%s/ceiling.bin", dir);
  FILE *f = fopen(path, "wb");
  if (!f) die("the disk ceiling's file", NULL);
  char *buf = malloc(chunk);
  memset(buf, 'x', chunk);
  int64_t t0 = trb_mono_ns();
  for (double done = 0; done < bytes; done += (double)chunk) {
    if (fwrite(buf, 1, chunk, f) != chunk || fflush(f) || fdatasync(fileno(f)))
      die("writing the disk ceiling's file", NULL);
  }
  double secs = (double)(trb_mono_ns() - t0) / 1e9;
  fclose(f);
  unlink(path);
  free(buf);
  return secs;
}

static void processor_phase(const char *base) {
  env v;
  env_open(&v, base, "proc");
  trb_wal *wal = trb_engine_wal(v.e);
  enum { FW = 16 };
  pthread_t th[FW];
  fctx a[FW];
  for (int i = 0; i < FW; i++) {
    a[i].e = v.e;
    a[i].id = i;
    a[i].n = g_records / FW + (i < (int)(g_records % FW));
    pthread_create(&th[i], NULL, fill_main, &a[i]);
  }
  for (int i = 0; i < FW; i++) pthread_join(th[i], NULL);
  if (trb_streams_sync(v.s, 120000)) die("streams sync after the fill", NULL);
  uint64_t first = trb_wal_first_lsn(wal), last = trb_wal_last_lsn(wal);
  double recs = (double)(last - first + 1);
  trb_wal_stats ws;
  trb_wal_get_stats(wal, &ws);

  double c1 = wal_read_rate(wal, last);

  char fdir[4200];
  snprintf(fdir, sizeof fdir, "%s-sink", v.dir);
  sink_stats fss;
  memset(&fss, 0, sizeof fss);
  cpu_snap c0;
  cpu_take(&c0);
  double fsecs = tailer_run(&v, file_sink_new(fdir, NULL, &fss), last);
  cpu_print("processor_file_sink", &c0, recs, "record");
  double out_bytes = (double)jsonl_bytes(fdir);
  double bpr = fss.records ? out_bytes / (double)fss.records : 0;
  printf("processor_file_sink_bytes_per_record=%.0f\n", bpr);
  /* The same bytes, in batches of the same size, straight to the disk. */
  double dsecs = file_write_secs(fdir, out_bytes,
                                 (size_t)(bpr * (fss.batches ? (double)fss.records /
                                                 (double)fss.batches : 1000) + 1));

  sink_stats nss;
  memset(&nss, 0, sizeof nss);
  cpu_take(&c0);
  double nsecs = tailer_run(&v, bench_sink_new(NULL, &nss), last);
  cpu_print("processor_null_sink", &c0, recs, "record");

  /* The stream index rebuilding itself from the same WAL. */
  trb_streams_opts so;
  trb_streams_opts_default(&so);
  so.wal = wal;
  trb_streams *s2;
  trb_status st;
  trb_status_init(&st);
  int64_t t0 = trb_mono_ns();
  if (trb_streams_start(&so, &s2, &st)) die("streams start", &st);
  if (trb_streams_sync(s2, 120000)) die("streams rebuild", NULL);
  double isecs = (double)(trb_mono_ns() - t0) / 1e9;
  trb_streams_stop(s2);

  double c2 = wal_read_rate(wal, last);
  double ceiling = c1 > c2 ? c1 : c2;
  double proc = recs / fsecs;
  printf("processor_records=%.0f\n", recs);
  printf("processor_wal_bytes_per_record=%.0f\n", (double)ws.bytes / (double)ws.records);
  printf("ceiling_wal_read_records_per_s=%.0f\n", ceiling);
  printf("ceiling_wal_read_runs=%.0f,%.0f\n", c1, c2);
  printf("processor_file_sink_records_per_s=%.0f\n", proc);
  printf("processor_file_sink_records_per_batch=%.1f\n",
         fss.batches ? (double)fss.records / (double)fss.batches : 0);
  printf("processor_file_sink_deliver_share=%.2f\n", (double)fss.deliver_ns / 1e9 / fsecs);
  printf("processor_vs_wal_read=%.4f\n", proc / ceiling);
  printf("ceiling_file_write_records_per_s=%.0f\n", recs / dsecs);
  printf("ceiling_file_write_mb_per_s=%.0f\n", out_bytes / dsecs / 1e6);
  printf("processor_vs_file_write=%.4f\n", proc / (recs / dsecs));
  printf("processor_null_sink_records_per_s=%.0f\n", recs / nsecs);
  printf("streams_index_rebuild_records_per_s=%.0f\n", recs / isecs);
  fflush(stdout);
  env_close(&v);
  sh("rm -rf '%s'", fdir);
}

static void *boost_probe(void *arg) {
  *(int *)arg = trb_thread_favour(g_boost, "the stream threads") == 0;
  return NULL;
}

int main(int argc, char **argv) {
  const char *dir = "/tmp/trb-bench-streams";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) g_seconds = atof(argv[++i]);
    else if (!strcmp(argv[i], "--records") && i + 1 < argc) g_records = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--no-http")) g_http = 0;
    else if (!strcmp(argv[i], "--breakdown")) g_breakdown = 1;
    else if (!strcmp(argv[i], "--priority-boost") && i + 1 < argc)
      g_boost = (unsigned)strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--phase") && i + 1 < argc) g_phase = argv[++i];
    else if (!strcmp(argv[i], "--rates") && i + 1 < argc) {
      g_nrates = 0;
      for (char *tok = strtok(argv[++i], ","); tok && g_nrates < 8; tok = strtok(NULL, ","))
        if (atof(tok) > 0) g_rates[g_nrates++] = atof(tok);
    } else if (!strcmp(argv[i], "--modes") && i + 1 < argc) {
      memset(g_modes, 0, sizeof g_modes);
      for (char *tok = strtok(argv[++i], ","); tok; tok = strtok(NULL, ","))
        for (int m = 0; m < MODE_N; m++)
          if (!strcmp(tok, mode_names[m])) g_modes[m] = 1;
    }
    else {
      printf("usage: bench_streams [--dir DIR] [--seconds S] [--records N] [--rates R,R]\n"
             "                     [--modes M,M] [--no-http] [--breakdown] [--phase P]\n"
             "                     [--priority-boost N]\n"
             "  --dir DIR      data directories go here (default /tmp/trb-bench-streams)\n"
             "  --seconds S    length of each latency phase (default 5)\n"
             "  --records N    records in the WAL for the processor phase (default 200000)\n"
             "  --rates R,R    target write rates of the latency phases (default 1000,20000)\n"
             "  --modes M,M    latency phases to run, of both,getrecords,sink,file,http,base\n"
             "                 (default all)\n"
             "  --no-http      skip the GetRecords-over-HTTP phases\n"
             "  --breakdown    also time each record's publication to WAL readers\n"
             "  --phase P      all (default), latency or processor\n"
             "  --priority-boost N  nice levels of the stream threads above the writers\n"
             "                 (default %u, serve's streams.priority_boost; 0: none)\n",
             TRB_STREAMS_PRIORITY_BOOST_DEFAULT);
      return strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  if (g_seconds <= 0 || g_records < 1) {
    fprintf(stderr, "bench_streams: --seconds and --records must be positive\n");
    return 2;
  }
  sh("mkdir -p '%s'", dir);
  cpu_snap c0, c1;
  cpu_take(&c0);
  sleep_ns(1000000000);
  cpu_take(&c1);
  { /* can the stream threads be favoured here? (a throwaway thread tries) */
    int ok = 0;
    pthread_t pt;
    if (!pthread_create(&pt, NULL, boost_probe, &ok)) pthread_join(pt, NULL);
    printf("priority_boost=%u\npriority_boost_applied=%d\n", g_boost, g_boost ? ok : 0);
  }
  printf("cpu_idle_before_pct=%.0f\n",
         c1.total > c0.total ? 100.0 * (1 - (c1.busy - c0.busy) / (c1.total - c0.total)) : 0);
  fflush(stdout);
  int lat = strcmp(g_phase, "processor") != 0, proc = strcmp(g_phase, "latency") != 0;
  for (size_t i = 0; lat && i < g_nrates; i++)
    for (int m = 0; m < MODE_N; m++)
      if (g_modes[m] && (m != MODE_HTTP || g_http)) latency_phase(dir, g_rates[i], m);
  if (proc) processor_phase(dir);
  return 0;
}
