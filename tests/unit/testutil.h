/*
 * testutil.h -- shared helpers for the cmocka unit tests: temporary
 * directories (under $TRB_TEST_TMP, else /tmp), recursive removal, and a
 * deterministic PRNG so random tests print their seed and can be replayed.
 */
#ifndef TRB_TESTUTIL_H
#define TRB_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* A fresh empty directory; caller frees the string (and removes the dir). */
char *trb_test_mkdtemp(const char *prefix);
/* rm -rf path. */
void trb_test_rmrf(const char *path);
/* Reads a whole file; caller frees; NULL on failure. */
char *trb_test_read_file(const char *path, size_t *len);

/* An engine with default options on data directory dir (asserts it
 * opened); caller closes it (trb_engine_close). */
struct trb_engine;
struct trb_engine *trb_test_engine_open(const char *dir);

/* xorshift64*: seed from $TRB_TEST_SEED or the clock (printed once). */
uint64_t trb_test_seed(void);
uint64_t trb_test_rand(uint64_t *state);

#endif
