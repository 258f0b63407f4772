/* throttle.c -- token buckets per table (see throttle.h). */
#include "api/throttle.h"

#include <pthread.h>
#include <stdlib.h>

#define BURST_SECONDS 300.0

typedef struct bucket {
  uint64_t table_id;
  int write;
  double rate;      /* units per second */
  double tokens;    /* may go negative after a large request */
  int64_t last_us;
  struct bucket *next;
} bucket;

struct trb_throttle {
  pthread_mutex_t mu;
  bucket *head;
};

trb_throttle *trb_throttle_create(void) {
  trb_throttle *t = calloc(1, sizeof *t);
  if (t) pthread_mutex_init(&t->mu, NULL);
  return t;
}

void trb_throttle_destroy(trb_throttle *t) {
  if (!t) return;
  for (bucket *b = t->head, *n; b; b = n) {
    n = b->next;
    free(b);
  }
  pthread_mutex_destroy(&t->mu);
  free(t);
}

/* The bucket for (table, kind), refilled to now; created full (a new table
 * may use its burst allowance at once). Caller holds mu. */
static bucket *get(trb_throttle *t, uint64_t id, double rate, int write, int64_t now) {
  bucket *b = t->head;
  while (b && (b->table_id != id || b->write != write)) b = b->next;
  if (!b) {
    b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->table_id = id;
    b->write = write;
    b->rate = rate;
    b->tokens = rate * BURST_SECONDS;
    b->last_us = now;
    b->next = t->head;
    t->head = b;
    return b;
  }
  if (b->rate != rate) { /* throughput changed: keep the tokens, new cap */
    b->rate = rate;
  }
  double dt = (double)(now - b->last_us) / 1e6;
  if (dt > 0) {
    b->tokens += dt * b->rate;
    if (b->tokens > b->rate * BURST_SECONDS) b->tokens = b->rate * BURST_SECONDS;
    b->last_us = now;
  }
  return b;
}

int trb_throttle_admit(trb_throttle *t, uint64_t id, double rate, int write, int64_t now) {
  if (rate <= 0) return 1;
  pthread_mutex_lock(&t->mu);
  bucket *b = get(t, id, rate, write, now);
  int ok = !b || b->tokens > 0;
  pthread_mutex_unlock(&t->mu);
  return ok;
}

void trb_throttle_charge(trb_throttle *t, uint64_t id, double rate, int write, double units,
                         int64_t now) {
  if (rate <= 0) return;
  pthread_mutex_lock(&t->mu);
  bucket *b = get(t, id, rate, write, now);
  if (b) b->tokens -= units;
  pthread_mutex_unlock(&t->mu);
}
