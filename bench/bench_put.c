/*
 * bench_put.c -- durable PutItem through the C API.
 *
 * For 1, 16 and 64 concurrent writers, each writing 200-byte items for a
 * fixed time: items/s, fdatasyncs/s, items per fdatasync, latency p50/p99.
 * In the same run, the ceiling: fdatasync calls per second after a 4 KiB
 * append to a preallocated (zero-filled), synced file on the same disk. One `name=value`
 * line per figure.
 *
 *   bench_put [--dir DIR] [--seconds S] [--writers 1,16,64] [--ceiling-only]
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "util/clock.h"

static double g_seconds = 5.0;
/* The ceiling's file: 256 MiB, or 32 MiB for --ceiling-only (bench_http.sh
 * runs it beside a server, whose disk it should disturb little). */
static off_t g_ceiling_size = 256 << 20;

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* fdatasync after 4 KiB appends into a preallocated, synced file. */
static double fsync_ceiling(const char *dir, double *p50_us, double *p99_us) {
  char path[4096];
  snprintf(path, sizeof path, "%s/ceiling.dat", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) { perror("open"); exit(1); }
  /* Preallocated the way the WAL does it: reserved, zeros written, synced
   * (see prealloc() in capture/wal.c): the best case for an fdatasync. */
  const off_t size = g_ceiling_size;
  if (fallocate(fd, 0, 0, size) < 0) { perror("fallocate"); exit(1); }
  char *zeros = calloc(1, 1 << 20);
  for (off_t o = 0; o < size; o += 1 << 20)
    if (pwrite(fd, zeros, 1 << 20, o) != 1 << 20) { perror("pwrite"); exit(1); }
  free(zeros);
  fsync(fd);
  char buf[4096];
  memset(buf, 'x', sizeof buf);
  int64_t start = trb_mono_ns(), end = start + (int64_t)(g_seconds * 1e9);
  size_t n = 0, cap = 1 << 16;
  int64_t *lat = malloc(cap * sizeof *lat);
  off_t off = 0;
  while (trb_mono_ns() < end) {
    int64_t t0 = trb_mono_ns();
    if (pwrite(fd, buf, sizeof buf, off) != (ssize_t)sizeof buf) { perror("pwrite"); exit(1); }
    if (fdatasync(fd) < 0) { perror("fdatasync"); exit(1); }
    if (n == cap) lat = realloc(lat, (cap *= 2) * sizeof *lat);
    lat[n++] = trb_mono_ns() - t0;
    off = (off + 4096) % size;
  }
  double secs = (double)(trb_mono_ns() - start) / 1e9;
  qsort(lat, n, sizeof *lat, cmp_i64);
  *p50_us = n ? (double)lat[n / 2] / 1000.0 : 0;
  *p99_us = n ? (double)lat[n * 99 / 100] / 1000.0 : 0;
  free(lat);
  close(fd);
  unlink(path);
  return (double)n / secs;
}

typedef struct warg {
  trb_engine *e;
  int id;
  int64_t end_ns;
  int64_t *lat;
  size_t n, cap;
} warg;

/* Items are built directly (no JSON parsing in the timed loop: that is
 * client work, not the engine's): id S (14 bytes), n N, pad S (about 170). */
static void *writer(void *p) {
  warg *a = p;
  char id[32], pad[171];
  memset(pad, 'x', sizeof pad - 1);
  pad[sizeof pad - 1] = 0;
  for (uint64_t i = 0;; i++) {
    int64_t t0 = trb_mono_ns();
    if (t0 >= a->end_ns) break;
    snprintf(id, sizeof id, "w%03d-%010llu", a->id, (unsigned long long)i);
    trb_dec d;
    trb_dec_from_i64((int64_t)i, &d);
    trb_av *it = trb_av_new_m();
    trb_av_m_set(it, "id", 2, trb_av_new_s(id, strlen(id)));
    trb_av_m_set(it, "n", 1, trb_av_new_n(&d));
    trb_av_m_set(it, "pad", 3, trb_av_new_s(pad, strlen(pad)));
    trb_status st;
    trb_status_init(&st);
    if (trb_put_item(a->e, "bench", it, NULL, TRB_RV_NONE, NULL, &st)) {
      fprintf(stderr, "put failed: %s\n", trb_status_msg(&st));
      exit(1);
    }
    trb_av_destroy(it);
    if (a->n == a->cap) a->lat = realloc(a->lat, (a->cap = a->cap ? a->cap * 2 : 4096) * sizeof *a->lat);
    a->lat[a->n++] = trb_mono_ns() - t0;
  }
  return NULL;
}

static void run(const char *base, int writers, double ceiling, double ceiling_p50) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/put-%d", base, writers);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd)) {}
  trb_engine_opts o;
  trb_engine_opts_default(&o);
  o.data_dir = dir;
  trb_engine *e;
  trb_status st;
  trb_status_init(&st);
  if (trb_engine_open(&o, &e, &st)) { fprintf(stderr, "%s\n", trb_status_msg(&st)); exit(1); }
  trb_keyschema ks;
  memset(&ks, 0, sizeof ks);
  strcpy(ks.pk_name, "id");
  ks.pk_type = TRB_T_S;
  if (trb_table_create(e, "bench", &ks, NULL, NULL, &st)) { fprintf(stderr, "%s\n", trb_status_msg(&st)); exit(1); }
  trb_engine_stats s0, s1;
  trb_engine_get_stats(e, &s0);
  pthread_t *th = calloc((size_t)writers, sizeof *th);
  warg *args = calloc((size_t)writers, sizeof *args);
  int64_t start = trb_mono_ns();
  for (int i = 0; i < writers; i++) {
    args[i].e = e;
    args[i].id = i;
    args[i].end_ns = start + (int64_t)(g_seconds * 1e9);
    pthread_create(&th[i], NULL, writer, &args[i]);
  }
  size_t total = 0;
  for (int i = 0; i < writers; i++) {
    pthread_join(th[i], NULL);
    total += args[i].n;
  }
  double secs = (double)(trb_mono_ns() - start) / 1e9;
  trb_engine_get_stats(e, &s1);
  int64_t *lat = malloc(total * sizeof *lat);
  size_t k = 0;
  for (int i = 0; i < writers; i++) {
    memcpy(lat + k, args[i].lat, args[i].n * sizeof *lat);
    k += args[i].n;
    free(args[i].lat);
  }
  qsort(lat, total, sizeof *lat, cmp_i64);
  double syncs = (double)(s1.wal.syncs - s0.wal.syncs);
  double ips = (double)total / secs;
  printf("put_w%d_items_per_s=%.0f\n", writers, ips);
  printf("put_w%d_fsyncs_per_s=%.0f\n", writers, syncs / secs);
  printf("put_w%d_items_per_fsync=%.1f\n", writers, syncs > 0 ? (double)total / syncs : 0);
  printf("put_w%d_p50_us=%.0f\n", writers, total ? (double)lat[total / 2] / 1000.0 : 0);
  printf("put_w%d_p99_us=%.0f\n", writers, total ? (double)lat[total * 99 / 100] / 1000.0 : 0);
  printf("put_w%d_fsyncs_vs_ceiling=%.2f\n", writers, ceiling > 0 ? syncs / secs / ceiling : 0);
  if (writers == 1)
    printf("put_w1_p50_vs_fdatasync_p50=%.2f\n",
           ceiling_p50 > 0 ? (double)lat[total / 2] / 1000.0 / ceiling_p50 : 0);
  fflush(stdout);
  free(lat);
  free(th);
  free(args);
  trb_engine_close(e);
  if (system(cmd)) {}
}

int main(int argc, char **argv) {
  const char *dir = "/tmp/trb-bench";
  char writers_arg[256] = "1,16,64";
  int ceiling_only = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
    else if (!strcmp(argv[i], "--ceiling-only")) {
      ceiling_only = 1;
      g_ceiling_size = 32 << 20;
    }
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) g_seconds = atof(argv[++i]);
    else if (!strcmp(argv[i], "--writers") && i + 1 < argc) snprintf(writers_arg, sizeof writers_arg, "%s", argv[++i]);
    else {
      printf("usage: bench_put [--dir DIR] [--seconds S] [--writers 1,16,64] [--ceiling-only]\n"
             "  --ceiling-only  only the disk's fdatasync rate and latency (bench_http.sh\n"
             "                  prints them beside PutItem's)\n");
      return strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
  if (system(cmd)) {}
  double p50, p99;
  double ceiling = fsync_ceiling(dir, &p50, &p99);
  printf("ceiling_fdatasync_per_s=%.0f\n", ceiling);
  printf("ceiling_fdatasync_p50_us=%.0f\n", p50);
  printf("ceiling_fdatasync_p99_us=%.0f\n", p99);
  fflush(stdout);
  if (ceiling_only) return 0;
  for (char *tok = strtok(writers_arg, ","); tok; tok = strtok(NULL, ","))
    run(dir, atoi(tok), ceiling, p50);
  return 0;
}
