/*
 * test_thread.c -- per-thread priority (util/thread.h) and its use: the
 * stream index thread and a sink's delivery thread run
 * streams.priority_boost nice levels above the thread that started them,
 * and no other thread changes. Lowering a nice value needs CAP_SYS_NICE:
 * run as root the boost must take; otherwise it must be refused cleanly
 * with the priority unchanged.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/tailer.h"
#include "engine/engine.h"
#include "sinks/sink.h"
#include "testutil.h"
#include "transform/streams.h"
#include "util/thread.h"

/* Whether this process may lower a nice value: root, or CAP_SYS_NICE. */
static int can_boost(void) {
  if (geteuid() == 0) return 1;
  char *s = trb_test_read_file("/proc/self/status", NULL);
  int ok = 0;
  const char *p = s ? strstr(s, "CapEff:\t") : NULL;
  if (p) ok = (strtoull(p + 8, NULL, 16) >> 23) & 1; /* CAP_SYS_NICE is 23 */
  free(s);
  return ok;
}

static void *roundtrip(void *arg) {
  (void)arg;
  int base = trb_thread_nice();
  if (base > 15) return NULL; /* no room to move (run under nice 16+) */
  /* a higher value is never refused */
  assert_int_equal(trb_thread_set_nice(base + 3, "test"), 0);
  assert_int_equal(trb_thread_nice(), base + 3);
  int rc = trb_thread_favour(2, "test");
  if (can_boost()) {
    assert_int_equal(rc, 0);
    assert_int_equal(trb_thread_nice(), base + 1);
    assert_int_equal(trb_thread_favour(0, "test"), 0); /* 0: nothing */
    assert_int_equal(trb_thread_nice(), base + 1);
    assert_int_equal(trb_thread_set_nice(-100, "test"), 0); /* clamped */
    assert_int_equal(trb_thread_nice(), -20);
  } else {
    assert_int_equal(rc, -1);
    assert_int_equal(trb_thread_nice(), base + 3);
  }
  return NULL;
}

static void test_roundtrip(void **state) {
  (void)state;
  int before = trb_thread_nice();
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, roundtrip, NULL), 0);
  pthread_join(t, NULL);
  assert_int_equal(trb_thread_nice(), before); /* only that thread moved */
}

/* The nice value of this process's thread named `name` (field 19 of
 * /proc/self/task/TID/stat); 100 when there is none. */
static int nice_of(const char *name) {
  char cmd[256];
  snprintf(cmd, sizeof cmd,
           "for t in /proc/%d/task/*; do [ \"$(cat $t/comm)\" = %s ] && "
           "sed 's/.*) //' $t/stat | cut -d' ' -f17; done",
           (int)getpid(), name);
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  int n = 100;
  if (fscanf(f, "%d", &n) != 1) n = 100;
  pclose(f);
  return n;
}

typedef struct nop_sink {
  trb_sink base;
} nop_sink;
static trb_err nop_open(trb_sink *s, uint64_t *ckpt, trb_status *st) {
  (void)s, (void)st;
  *ckpt = 0;
  return TRB_OK;
}
static trb_err nop_deliver(trb_sink *s, const trb_sink_rec *r, size_t n, uint64_t through,
                           trb_status *st) {
  (void)s, (void)r, (void)n, (void)through, (void)st;
  return TRB_OK;
}
static void nop_destroy(trb_sink *s) { free(s); }
static const trb_sink_ops nop_ops = {.kind = "nop", .open = nop_open, .deliver = nop_deliver,
                                     .destroy = nop_destroy};

static void test_stream_threads_boosted(void **state) {
  (void)state;
  char *dir = trb_test_mkdtemp("thread");
  trb_engine_opts eo;
  trb_engine_opts_default(&eo);
  eo.data_dir = dir;
  trb_engine *e = NULL;
  assert_int_equal(trb_engine_open(&eo, &e, NULL), TRB_OK);
  int base = trb_thread_nice();
  trb_streams_opts so;
  trb_streams_opts_default(&so);
  so.wal = trb_engine_wal(e);
  so.priority_boost = 3;
  trb_streams *s = NULL;
  assert_int_equal(trb_streams_start(&so, &s, NULL), TRB_OK);
  assert_int_equal(trb_streams_sync(s, 10000), 0);
  nop_sink *ns = calloc(1, sizeof *ns);
  ns->base.ops = &nop_ops;
  trb_tailer_opts to = {.wal = trb_engine_wal(e), .streams = s, .priority_boost = 3};
  trb_tailer *t = NULL;
  assert_int_equal(trb_tailer_start(&to, &ns->base, &t, NULL), TRB_OK);
  int want = can_boost() ? (base - 3 < -20 ? -20 : base - 3) : base;
  int got_s = 100, got_t = 100;
  for (int i = 0; i < 200 && (got_s != want || got_t != want); i++) {
    usleep(10 * 1000); /* the threads set their priority as they start */
    got_s = nice_of("trb-streams");
    got_t = nice_of("trb-sink");
  }
  assert_int_equal(got_s, want);
  assert_int_equal(got_t, want);
  assert_int_equal(nice_of("trb-commit"), base); /* the write path is left alone */
  assert_int_equal(trb_thread_nice(), base);
  trb_tailer_stop(t);
  trb_streams_stop(s);
  trb_engine_close(e);
  trb_test_rmrf(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_stream_threads_boosted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
