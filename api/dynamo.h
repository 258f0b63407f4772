/*
 * dynamo.h -- the DynamoDB JSON 1.0 protocol over the engine: request
 * parsing and validation, dispatch on X-Amz-Target, every table and item
 * operation, errors in DynamoDB's shape. It is the handler api/http.c calls.
 *
 * Business rules live in engine/ (items, conditions, updates, expressions);
 * this layer maps JSON members to engine calls and results back to JSON.
 */
#ifndef TRB_DYNAMO_H
#define TRB_DYNAMO_H

#include "api/http.h"
#include "api/sigv4.h"
#include "engine/engine.h"

typedef struct trb_api trb_api;

typedef struct trb_api_opts {
  const char *region;           /* for ARNs; default "us-east-1" */
  const char *account_id;       /* for ARNs; default "000000000000" */
  const trb_sigv4_key *keys;    /* SigV4 credentials; none = accept any signature */
  size_t nkeys;
  struct trb_streams *streams;  /* the stream index for the Streams API (borrowed; NULL =
                                   Streams operations fail) */
  const struct trb_iter_key *iter_key; /* signs shard iterators (borrowed) */
  /* GET /metrics: Prometheus text exposition, malloc'ed (the api frees it);
   * NULL = no metrics. */
  char *(*metrics)(void *ctx);
  void *metrics_ctx;
  uint32_t stream_shards;       /* shards of a new stream (streams.shards); 0 = 4 */
  const char *stream_tables;    /* streams.tables: tables that get a stream when created
                                   without one ("TABLE:VIEW,..."; copied) */
  unsigned wait_threads;        /* threads running the operations that wait for a commit
                                   (batch and transaction writes, table operations) off the
                                   HTTP threads; 0 = 32 */
  unsigned stream_priority_boost; /* nice levels a thread runs above the others while it
                                     serves GetRecords (streams.priority_boost; util/thread.h) */
} trb_api_opts;

/* The engine is borrowed and must outlive the api. NULL on OOM. */
trb_api *trb_api_create(trb_engine *e, const trb_api_opts *o);
void trb_api_destroy(trb_api *a);

/* trb_http_handler / trb_http_reject over a trb_api ctx. */
void trb_api_handle(void *ctx, const trb_http_req *req, trb_http_resp *resp);
void trb_api_reject(void *ctx, const char *kind, const trb_http_req *req, trb_http_resp *resp);

/*
 * Runs one operation without HTTP (tests, embedding): target is the
 * operation name ("PutItem"), body the JSON request. Returns the HTTP status
 * and sets *out to the response body (caller frees).
 */
int trb_api_call(trb_api *a, const char *operation, const char *body, size_t len, char **out);

#endif
