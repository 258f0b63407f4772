/*
 * test_crash.c -- kill -9 at random moments while many threads write.
 *
 * A child process opens the engine and runs W writer threads; each thread
 * performs a deterministic sequence of puts and deletes on its own keys and,
 * after each acknowledged write, reports (thread, op index) through a pipe.
 * The parent kills the child with SIGKILL at a random moment, then opens
 * the data directory itself and checks: every acknowledged write is there
 * (the state equals the acknowledged prefix of each thread's sequence, with
 * the one write that was in flight allowed either way), the WAL verifies,
 * and nothing else appeared. Repeated ITERS times on the same directory, so
 * each restart also recovers the previous crashes' state.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "testutil.h"

#define W 8            /* writer threads */
#define MAXOPS 100000  /* per thread per iteration, more than a run reaches */
#define ITERS 24

typedef struct ack {
  uint32_t thread;
  uint32_t op;
} ack;

/* Op i of a thread: put key i, except every 4th op deletes key i-2. */
static int op_is_delete(uint32_t i) { return i % 4 == 3; }
static uint32_t op_key(uint32_t i) { return op_is_delete(i) ? i - 2 : i; }

static void key_json(char *buf, size_t n, int iter, uint32_t t, uint32_t k) {
  snprintf(buf, n, "{\"id\":{\"S\":\"i%d-t%u-k%u\"}}", iter, t, k);
}

static void item_json(char *buf, size_t n, int iter, uint32_t t, uint32_t k) {
  snprintf(buf, n,
           "{\"id\":{\"S\":\"i%d-t%u-k%u\"},\"v\":{\"N\":\"%u\"},"
           "\"pad\":{\"S\":\"0123456789012345678901234567890123456789012345678901234567890123456789\"}}",
           iter, t, k, k);
}

typedef struct warg {
  trb_engine *e;
  int iter;
  uint32_t t;
  int fd;
} warg;

static void *child_writer(void *p) {
  warg *a = p;
  char buf[512];
  for (uint32_t i = 0; i < MAXOPS; i++) {
    trb_av *v = NULL;
    trb_err rc;
    if (op_is_delete(i)) {
      key_json(buf, sizeof buf, a->iter, a->t, op_key(i));
      trb_item_from_json_text(buf, strlen(buf), &v, NULL);
      rc = trb_delete_item(a->e, "crash", v, NULL, TRB_RV_NONE, NULL, NULL);
    } else {
      item_json(buf, sizeof buf, a->iter, a->t, op_key(i));
      trb_item_from_json_text(buf, strlen(buf), &v, NULL);
      rc = trb_put_item(a->e, "crash", v, NULL, TRB_RV_NONE, NULL, NULL);
    }
    trb_av_destroy(v);
    if (rc) _exit(3);
    ack m = {a->t, i};
    if (write(a->fd, &m, sizeof m) != sizeof m) _exit(4);
  }
  return NULL;
}

static void child_main(const char *dir, int iter, int fd) {
  trb_engine_opts o;
  trb_engine_opts_default(&o);
  o.data_dir = dir;
  o.segment_size = 1 << 20; /* small: crashes land around rollovers too */
  trb_engine *e = NULL;
  if (trb_engine_open(&o, &e, NULL)) _exit(2);
  /* Tell the parent recovery is done: kills during open are tested by the
   * earliest kill times anyway. */
  ack ready = {0xFFFFFFFFu, 0};
  if (write(fd, &ready, sizeof ready) != sizeof ready) _exit(4);
  pthread_t th[W];
  warg args[W];
  for (uint32_t t = 0; t < W; t++) {
    args[t] = (warg){e, iter, t, fd};
    pthread_create(&th[t], NULL, child_writer, &args[t]);
  }
  for (uint32_t t = 0; t < W; t++) pthread_join(th[t], NULL);
  _exit(0);
}

static trb_engine *open_engine(const char *dir) {
  trb_engine_opts o;
  trb_engine_opts_default(&o);
  o.data_dir = dir;
  o.segment_size = 1 << 20;
  trb_engine *e = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_engine_open(&o, &e, &st);
  if (rc) fprintf(stderr, "recovery failed: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return e;
}

/* 1 present, 0 absent. */
static int present(trb_engine *e, int iter, uint32_t t, uint32_t k) {
  char buf[256];
  key_json(buf, sizeof buf, iter, t, k);
  trb_av *key = NULL, *it = NULL;
  assert_int_equal(trb_item_from_json_text(buf, strlen(buf), &key, NULL), TRB_OK);
  assert_int_equal(trb_get_item(e, "crash", key, &it, NULL), TRB_OK);
  trb_av_destroy(key);
  int r = it != NULL;
  if (it) {
    const trb_av *v = trb_av_m_get(it, "v", 1);
    trb_dec d;
    trb_dec_from_i64(k, &d);
    assert_non_null(v);
    assert_int_equal(trb_dec_cmp(&v->u.n, &d), 0);
  }
  trb_av_destroy(it);
  return r;
}

/* Checks iteration `iter` given each thread's acknowledged op count. */
static void check_iteration(trb_engine *e, int iter, const uint32_t *acked) {
  for (uint32_t t = 0; t < W; t++) {
    uint32_t a = acked[t];
    /* Every key touched by ops 0..a (op a may or may not have happened). */
    for (uint32_t k = 0; k <= a + 1; k++) {
      if (op_is_delete(k)) continue; /* keys are put by non-delete ops */
      /* expected after ops 0..a-1: put at op k if k < a; deleted by op k+2
       * (which is a delete op when (k+2)%4==3) if k+2 < a. */
      int put_done = k < a;
      int del_op = op_is_delete(k + 2);
      int del_done = del_op && k + 2 < a;
      int expect = put_done && !del_done;
      int in_flight = (k == a) || (del_op && k + 2 == a);
      int got = present(e, iter, t, k);
      if (!in_flight && got != expect) {
        fprintf(stderr, "iter %d thread %u key %u: present=%d expected=%d (acked %u)\n", iter,
                t, k, got, expect, a);
        fail();
      }
    }
  }
}

static void test_kill9(void **state) {
  (void)state;
  char *dir = trb_test_mkdtemp("crash");
  uint64_t seed = trb_test_seed();
  uint32_t (*acked)[W] = calloc(ITERS, sizeof *acked);
  {
    trb_engine *e = open_engine(dir);
    trb_keyschema ks;
    memset(&ks, 0, sizeof ks);
    strcpy(ks.pk_name, "id");
    ks.pk_type = TRB_T_S;
    assert_int_equal(trb_table_create(e, "crash", &ks, NULL, NULL, NULL), TRB_OK);
    trb_engine_close(e);
  }
  uint64_t total_acks = 0;
  for (int iter = 0; iter < ITERS; iter++) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      child_main(dir, iter, fds[1]);
    }
    close(fds[1]);
    /* Wait for the child to be ready, then let it write 5..400 ms. */
    ack m;
    ssize_t r = read(fds[0], &m, sizeof m);
    assert_int_equal(r, (ssize_t)sizeof m);
    assert_int_equal(m.thread, 0xFFFFFFFFu);
    long ms = 5 + (long)(trb_test_rand(&seed) % 396);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* Every ack the child wrote before dying is in the pipe. */
    uint32_t next[W] = {0};
    while ((r = read(fds[0], &m, sizeof m)) == (ssize_t)sizeof m) {
      assert_true(m.thread < W);
      assert_int_equal(m.op, next[m.thread]); /* acks in order per thread */
      next[m.thread]++;
      total_acks++;
    }
    close(fds[0]);
    memcpy(acked[iter], next, sizeof next);
    /* The WAL may end in a torn record but holds no corruption. */
    char *waldir = NULL;
    assert_true(asprintf(&waldir, "%s/wal", dir) > 0);
    trb_wal_verify_result vr;
    assert_int_equal(trb_wal_verify(waldir, &vr, NULL), TRB_OK);
    assert_true(vr.ok);
    trb_engine *e = open_engine(dir);
    check_iteration(e, iter, next);
    trb_engine_close(e);
    /* After recovery the log verifies with no torn tail. */
    assert_int_equal(trb_wal_verify(waldir, &vr, NULL), TRB_OK);
    assert_true(vr.ok);
    assert_false(vr.torn_tail);
    free(waldir);
  }
  fprintf(stderr, "# %d kills, %llu acknowledged writes checked\n", ITERS,
          (unsigned long long)total_acks);
  assert_true(total_acks > 0);
  /* Finally every iteration's state is still there. */
  trb_engine *e = open_engine(dir);
  for (int iter = 0; iter < ITERS; iter++) check_iteration(e, iter, acked[iter]);
  trb_engine_close(e);
  free(acked);
  trb_test_rmrf(dir);
  free(dir);
}

/* kill -9 while the engine is closing (flushing the store) must lose
 * nothing. Closing used to flush the store's column families one by one, so
 * a kill between the flushes left the applied LSN ahead of the tables' data
 * (reproduced by a review program with 40 tables x 200 items killed 5-70 ms
 * into close; this test's timing does not hit that window reliably under
 * ASan, so it guards the property rather than that exact interleaving). */
static void test_kill9_during_close(void **state) {
  (void)state;
  uint64_t seed = trb_test_seed();
  enum { TABLES = 20, PER = 100, ROUNDS = 6 };
  for (int round = 0; round < ROUNDS; round++) {
    char *dir = trb_test_mkdtemp("closekill");
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      trb_engine_opts o;
      trb_engine_opts_default(&o);
      o.data_dir = dir;
      trb_engine *e = NULL;
      if (trb_engine_open(&o, &e, NULL)) _exit(2);
      char name[32], buf[256];
      for (int t = 0; t < TABLES; t++) {
        trb_keyschema ks;
        memset(&ks, 0, sizeof ks);
        strcpy(ks.pk_name, "id");
        ks.pk_type = TRB_T_S;
        snprintf(name, sizeof name, "tab%02d", t);
        if (trb_table_create(e, name, &ks, NULL, NULL, NULL)) _exit(3);
        for (int i = 0; i < PER; i++) {
          snprintf(buf, sizeof buf, "{\"id\":{\"S\":\"k%d\"},\"v\":{\"N\":\"%d\"}}", i, i);
          trb_av *it = NULL;
          trb_item_from_json_text(buf, strlen(buf), &it, NULL);
          if (trb_put_item(e, name, it, NULL, TRB_RV_NONE, NULL, NULL)) _exit(4);
          trb_av_destroy(it);
        }
      }
      char go = 'c';
      if (write(fds[1], &go, 1) != 1) _exit(5);
      trb_engine_close(e);
      _exit(0);
    }
    close(fds[1]);
    char go;
    assert_int_equal(read(fds[0], &go, 1), 1);
    close(fds[0]);
    long us = (long)(trb_test_rand(&seed) % 30000);
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    trb_engine *e = open_engine(dir);
    for (int t = 0; t < TABLES; t++) {
      char name[32];
      snprintf(name, sizeof name, "tab%02d", t);
      trb_table_info info;
      assert_int_equal(trb_table_describe(e, name, &info, NULL), TRB_OK);
      assert_int_equal(info.item_count, PER);
      trb_table_info_fini(&info);
      trb_scan_req s = {.table = name};
      trb_page p;
      assert_int_equal(trb_scan(e, &s, &p, NULL), TRB_OK);
      assert_int_equal(p.n, PER);
      trb_page_fini(&p);
    }
    trb_engine_close(e);
    trb_test_rmrf(dir);
    free(dir);
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_kill9),
                                     cmocka_unit_test(test_kill9_during_close)};
  return cmocka_run_group_tests_name("crash", tests, NULL, NULL);
}
