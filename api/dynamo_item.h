/*
 * dynamo_item.h -- a parsed write request (PutItem, UpdateItem, DeleteItem,
 * and the same members inside BatchWriteItem and TransactWriteItems), shared
 * by dynamo_item.c and dynamo_batch.c.
 */
#ifndef TRB_DYNAMO_ITEM_H
#define TRB_DYNAMO_ITEM_H

#include "api/dynamo_int.h"

typedef struct api_wreq {
  trb_write w;
  const char *table;
  char table_buf[256];
  char table_as_sent[1100];  /* name or ARN, echoed in ConsumedCapacity */
  trb_av *item, *key, *vals;
  trb_expr_env *env;
  trb_expr *cond, *update;
  trb_retval rv;
  int capacity;              /* ReturnConsumedCapacity: 0, 1 TOTAL, 2 INDEXES */
  int icm;                   /* ReturnItemCollectionMetrics SIZE */
} api_wreq;

/* Parses TableName, Item/Key, expressions and flags of one write. */
int api_wreq_parse(api_call *c, json_t *obj, trb_write_kind kind, api_wreq *r);
/* ReturnValues (allow_all: UpdateItem accepts all five). */
int api_wreq_rv(api_call *c, json_t *obj, api_wreq *r, int allow_all);
/* Sets the call's error from a failed write. */
int api_wreq_error(api_call *c, api_wreq *r);
/* The size that write capacity is charged on: max(before, after). */
size_t api_wreq_bytes(const api_wreq *r);
void api_wreq_fini(api_wreq *r);
/* PutItem, UpdateItem, DeleteItem in two steps, so the HTTP layer need not
 * hold a thread while the write waits for its group commit. */
typedef struct api_write_job {
  api_wreq r;
  trb_table_info info;
  int have_info, parsed;
  api_thr thr;
  int want_old, want_new;
  trb_write_kind kind;
} api_write_job;
/* Parses, admits and submits the write. With done: 1 when it was queued
 * (done(ctx) comes from the commit thread once it is answered), 0 when it
 * was answered at once; without done it waits (0). -1: refused (the call's
 * error is set). In every case api_write_job_fini(j) after; after 0 or 1
 * (once answered) api_write_finish builds the answer. */
int api_write_start(api_call *c, trb_write_kind kind, api_write_job *j, void (*done)(void *),
                    void *ctx);
int api_write_finish(api_call *c, api_write_job *j);
void api_write_job_fini(api_write_job *j);

/* Parses the expression env and an optional ProjectionExpression. */
int api_projection(api_call *c, json_t *obj, trb_expr_env **env, trb_av **vals, trb_expr **proj);

#endif
