/* testutil.c -- see testutil.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"

char *trb_test_mkdtemp(const char *prefix) {
  const char *base = getenv("TRB_TEST_TMP");
  if (!base || !*base) base = "/tmp";
  mkdir(base, 0755);
  char *path = NULL;
  if (asprintf(&path, "%s/%s-XXXXXX", base, prefix ? prefix : "trb") < 0) return NULL;
  if (!mkdtemp(path)) {
    free(path);
    return NULL;
  }
  return path;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb; (void)flag; (void)ftw;
  return remove(p);
}

void trb_test_rmrf(const char *path) {
  if (path) nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

char *trb_test_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  if (buf) {
    buf[n] = 0;
    if (len) *len = (size_t)n;
  }
  return buf;
}

uint64_t trb_test_seed(void) {
  static uint64_t seed;
  if (!seed) {
    const char *e = getenv("TRB_TEST_SEED");
    seed = e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    if (!seed) seed = 1;
    fprintf(stderr, "# TRB_TEST_SEED=%llu\n", (unsigned long long)seed);
  }
  return seed;
}

uint64_t trb_test_rand(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

struct trb_engine *trb_test_engine_open(const char *dir) {
  trb_engine_opts o;
  trb_engine_opts_default(&o);
  o.data_dir = dir;
  trb_engine *e = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_engine_open(&o, &e, &st);
  if (rc) fprintf(stderr, "engine open: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return e;
}
