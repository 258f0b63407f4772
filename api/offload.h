/*
 * offload.h -- a pool of threads for requests that wait on something
 * (BatchWriteItem, TransactWriteItems and table operations wait for their
 * group commit), so the HTTP worker threads (a few, one per CPU) never
 * block: the handler suspends the connection, a pool thread runs the
 * operation and wakes it. With many clients waiting at once, their writes
 * still share one fdatasync, as when each had an HTTP thread of its own.
 */
#ifndef TRB_OFFLOAD_H
#define TRB_OFFLOAD_H

#include "util/trb_err.h"

typedef struct trb_offload trb_offload;

/* Starts threads threads (at least 1). *out caller-owned. */
trb_err trb_offload_start(unsigned threads, trb_offload **out, trb_status *st);
/* Queues fn(ctx) for a pool thread. 0, or -1 when stopping (fn not run). */
int trb_offload_run(trb_offload *o, void (*fn)(void *ctx), void *ctx);
/* Runs what is queued, then joins the threads. NULL ok. */
void trb_offload_stop(trb_offload *o);

#endif
