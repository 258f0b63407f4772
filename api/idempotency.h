/*
 * idempotency.h -- the table of client request tokens that makes a
 * TransactWriteItems call idempotent (spec 4.9), as DynamoDB does:
 *
 *   - a token is remembered for `ttl` (10 minutes) after the first request
 *     that used it completed successfully;
 *   - a repeat with the same token and the same parameters (the same digest)
 *     in that window is answered with success and is not applied again;
 *   - the same token with other parameters is a mismatch;
 *   - the same token while its first request is still running is "in
 *     progress" (the caller answers TransactionInProgressException);
 *   - a first request that failed is forgotten, so a retry runs again.
 *
 * Flow of one request with a token:
 *
 *     trb_idem_begin()  -> TRB_IDEM_FIRST        run it, then exactly one of
 *                                                trb_idem_commit (it succeeded)
 *                                                trb_idem_abort  (it failed)
 *                       -> TRB_IDEM_REPLAY       answer success, apply nothing
 *                       -> TRB_IDEM_MISMATCH     answer the mismatch error
 *                       -> TRB_IDEM_IN_PROGRESS  answer "in progress"
 *
 * begin() is what serialises two identical requests arriving at once: the
 * first records the token as in progress under the table's lock, so the
 * second can never also see TRB_IDEM_FIRST.
 *
 * The table lives in memory only: a restart forgets every token (a retry
 * after a restart runs again). It holds at most `max_tokens` tokens; see
 * trb_idem_begin for what happens at the cap. The module knows nothing of
 * DynamoDB beyond the digest helper: what "the same parameters" means and
 * what a replay answers are the caller's.
 *
 * Thread-safe: every call takes the table's mutex; none blocks otherwise.
 */
#ifndef TRB_IDEMPOTENCY_H
#define TRB_IDEMPOTENCY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/trb_err.h"

typedef struct trb_idem trb_idem;

#define TRB_IDEM_DIGEST_LEN 32                       /* SHA-256 */
#define TRB_IDEM_DEFAULT_MAX 100000                  /* tokens remembered */
#define TRB_IDEM_DEFAULT_TTL_US (600LL * 1000000LL)  /* 10 minutes */

/* Microseconds on a clock that never goes backwards; ctx is the opts'. */
typedef int64_t (*trb_idem_clock_fn)(void *ctx);

typedef struct trb_idem_opts {
  size_t max_tokens;         /* 0 = TRB_IDEM_DEFAULT_MAX */
  int64_t ttl_us;            /* 0 = TRB_IDEM_DEFAULT_TTL_US */
  trb_idem_clock_fn clock;   /* NULL = CLOCK_MONOTONIC (tests inject one) */
  void *clock_ctx;           /* passed to clock; borrowed, outlives the table */
} trb_idem_opts;

/* o may be NULL (all defaults). NULL on OOM. */
trb_idem *trb_idem_create(const trb_idem_opts *o);
/* Frees every entry, in progress or not. NULL is a no-op. No call may be
 * running on t. */
void trb_idem_destroy(trb_idem *t);

typedef enum trb_idem_verdict {
  TRB_IDEM_FIRST = 0,        /* unknown (or forgotten): now recorded as in
                                progress; the caller owns it until commit or
                                abort */
  TRB_IDEM_REPLAY,           /* done earlier with this digest */
  TRB_IDEM_MISMATCH,         /* known (done or in progress) with another digest */
  TRB_IDEM_IN_PROGRESS,      /* its first request is still running */
} trb_idem_verdict;

/*
 * Looks the token up at the clock's now and decides; see the flow above.
 * token: NUL-terminated, non-empty (the caller validates DynamoDB's 1..36
 * characters); copied. digest: the request's parameters, e.g. from
 * trb_idem_digest.
 *
 * On TRB_IDEM_REPLAY *result (when result is not NULL) is a caller-owned
 * copy of what commit stored (NULL when it stored none); otherwise *result is
 * set to NULL.
 *
 * A mismatch wins over "in progress": the digest of the running request is
 * known, and a different one is a client error whatever becomes of it.
 *
 * At the cap: expired tokens are dropped first (they always are, oldest
 * first, on every begin). If the table is still full, the oldest completed
 * token is forgotten early, so under more than max_tokens successful
 * tokened transactions per ttl the window shrinks from ttl to about
 * max_tokens / rate; a late retry of a token dropped that way runs again.
 * Tokens in progress are never dropped; when all max_tokens are in progress
 * begin fails with TRB_ELIMIT and records nothing.
 *
 * Returns TRB_OK with *v set, TRB_EINVAL (empty token), TRB_ENOMEM or
 * TRB_ELIMIT; on an error nothing is recorded.
 */
trb_err trb_idem_begin(trb_idem *t, const char *token, const uint8_t digest[TRB_IDEM_DIGEST_LEN],
                       trb_idem_verdict *v, char **result);

/*
 * The request that got TRB_IDEM_FIRST for token succeeded: remember it as
 * done until now + ttl. result (may be NULL) is what a replay gets back;
 * commit takes ownership of it in every case (it is freed if the token is,
 * against the contract, not in progress).
 */
void trb_idem_commit(trb_idem *t, const char *token, char *result);

/* The request that got TRB_IDEM_FIRST for token failed: forget the token,
 * so that a retry runs again. */
void trb_idem_abort(trb_idem *t, const char *token);

/* Tokens held now (in progress and done, expired ones not yet dropped). */
size_t trb_idem_count(trb_idem *t);

/*
 * The canonical digest of a JSON request object without the members named
 * in `exclude` (NULL-terminated, may be NULL): SHA-256 of json_dumps with
 * JSON_SORT_KEYS | JSON_COMPACT, so the order of members does not matter
 * (AWS ignores it too) but every value does. req is borrowed and not
 * changed. TRB_EINVAL when req is not an object, TRB_ENOMEM.
 */
trb_err trb_idem_digest(json_t *req, const char *const *exclude,
                        uint8_t out[TRB_IDEM_DIGEST_LEN]);

#endif
