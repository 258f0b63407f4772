/*
 * offload.c -- the waiting requests' thread pool (see offload.h): a FIFO
 * of jobs under one mutex, threads sleeping on a condition variable.
 */
#include "api/offload.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct job {
  void (*fn)(void *);
  void *ctx;
  struct job *next;
} job;

struct trb_offload {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  job *head, *tail;
  int stopping;
  unsigned n;
  pthread_t *thr;
};

static void *worker(void *arg) {
  trb_offload *o = arg;
  pthread_setname_np(pthread_self(), "trb-api-wait");
  pthread_mutex_lock(&o->mu);
  for (;;) {
    while (!o->head && !o->stopping) pthread_cond_wait(&o->cv, &o->mu);
    job *j = o->head;
    if (!j) break; /* stopping, and nothing left */
    o->head = j->next;
    if (!o->head) o->tail = NULL;
    pthread_mutex_unlock(&o->mu);
    j->fn(j->ctx);
    free(j);
    pthread_mutex_lock(&o->mu);
  }
  pthread_mutex_unlock(&o->mu);
  return NULL;
}

trb_err trb_offload_start(unsigned threads, trb_offload **out, trb_status *st) {
  *out = NULL;
  if (threads < 1) threads = 1;
  trb_offload *o = calloc(1, sizeof *o);
  if (!o || !(o->thr = calloc(threads, sizeof *o->thr))) {
    free(o);
    return trb_status_set(st, TRB_ENOMEM, "out of memory");
  }
  pthread_mutex_init(&o->mu, NULL);
  pthread_cond_init(&o->cv, NULL);
  for (; o->n < threads; o->n++)
    if (pthread_create(&o->thr[o->n], NULL, worker, o)) break;
  if (!o->n) {
    trb_offload_stop(o);
    return trb_status_set(st, TRB_ENOMEM, "cannot start the API's waiting threads");
  }
  *out = o;
  return TRB_OK;
}

int trb_offload_run(trb_offload *o, void (*fn)(void *ctx), void *ctx) {
  job *j = malloc(sizeof *j);
  if (!j) return -1;
  j->fn = fn, j->ctx = ctx, j->next = NULL;
  pthread_mutex_lock(&o->mu);
  if (o->stopping) {
    pthread_mutex_unlock(&o->mu);
    free(j);
    return -1;
  }
  if (o->tail) o->tail->next = j;
  else o->head = j;
  o->tail = j;
  pthread_cond_signal(&o->cv);
  pthread_mutex_unlock(&o->mu);
  return 0;
}

void trb_offload_stop(trb_offload *o) {
  if (!o) return;
  pthread_mutex_lock(&o->mu);
  o->stopping = 1;
  pthread_cond_broadcast(&o->cv);
  pthread_mutex_unlock(&o->mu);
  for (unsigned i = 0; i < o->n; i++) pthread_join(o->thr[i], NULL);
  pthread_mutex_destroy(&o->mu);
  pthread_cond_destroy(&o->cv);
  free(o->thr);
  free(o);
}
