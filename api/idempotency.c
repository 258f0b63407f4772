/*
 * idempotency.c -- the client request token table (see idempotency.h).
 *
 * One entry per token, found through a chained hash table whose bucket count
 * is fixed at create (a power of two near max_tokens / 4, so chains stay
 * short at the cap). The hash is XXH3 with a seed drawn at create: tokens
 * come from clients, and a fixed hash would let one of them lengthen a
 * chain at will.
 *
 * Completed entries also sit on a FIFO list in the order they completed.
 * Every entry lives for the same ttl after completion and the clock never
 * goes backwards, so the FIFO is also expiry order: dropping expired entries
 * is popping the head until it has not expired (amortised O(1) per begin),
 * and at the cap the head is the entry closest to expiry anyway, the least
 * harmful one to forget early. Entries in progress are not on the FIFO and
 * are never dropped: someone will commit or abort them.
 */
#include "api/idempotency.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <xxhash.h>

#include "util/clock.h"

_Static_assert(TRB_IDEM_DIGEST_LEN == SHA256_DIGEST_LENGTH, "the digest is a SHA-256");

typedef enum idem_state { IDEM_RUNNING = 1, IDEM_DONE = 2 } idem_state;

typedef struct idem_entry {
  struct idem_entry *hnext;        /* bucket chain */
  struct idem_entry *prev, *next;  /* FIFO of done entries, oldest first */
  uint64_t hash;
  int64_t expires_us;              /* DONE: forgotten from this time on */
  idem_state state;
  uint8_t digest[TRB_IDEM_DIGEST_LEN];
  char *result;                    /* DONE: owned, may be NULL */
  char token[];                    /* NUL-terminated */
} idem_entry;

struct trb_idem {
  pthread_mutex_t mu;
  size_t max;
  int64_t ttl_us;
  trb_idem_clock_fn clock;
  void *clock_ctx;
  uint64_t seed;
  idem_entry **buckets;
  size_t mask;                     /* nbuckets - 1 */
  size_t count;                    /* entries in the hash, both states */
  idem_entry *oldest, *newest;     /* the FIFO of DONE entries */
};

static int64_t mono_us(void *ctx) {
  (void)ctx;
  return trb_mono_ns() / 1000;
}

trb_idem *trb_idem_create(const trb_idem_opts *o) {
  trb_idem *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->max = o && o->max_tokens ? o->max_tokens : TRB_IDEM_DEFAULT_MAX;
  t->ttl_us = o && o->ttl_us > 0 ? o->ttl_us : TRB_IDEM_DEFAULT_TTL_US;
  t->clock = o && o->clock ? o->clock : mono_us;
  t->clock_ctx = o ? o->clock_ctx : NULL;
  size_t nb = 16;
  while (nb < t->max / 4 && nb < ((size_t)1 << 30)) nb <<= 1;
  t->buckets = calloc(nb, sizeof *t->buckets);
  if (!t->buckets) {
    free(t);
    return NULL;
  }
  t->mask = nb - 1;
  if (getrandom(&t->seed, sizeof t->seed, GRND_NONBLOCK) != (ssize_t)sizeof t->seed)
    t->seed = (uint64_t)trb_mono_ns() ^ (uint64_t)(uintptr_t)t;
  pthread_mutex_init(&t->mu, NULL);
  return t;
}

void trb_idem_destroy(trb_idem *t) {
  if (!t) return;
  for (size_t i = 0; i <= t->mask; i++) {
    for (idem_entry *e = t->buckets[i], *n; e; e = n) {
      n = e->hnext;
      free(e->result);
      free(e);
    }
  }
  free(t->buckets);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

/* ---- internals; the caller holds mu ---- */

static idem_entry *find(trb_idem *t, const char *token, uint64_t h, idem_entry ***link) {
  idem_entry **p = &t->buckets[h & t->mask];
  for (; *p; p = &(*p)->hnext)
    if ((*p)->hash == h && !strcmp((*p)->token, token)) break;
  if (link) *link = p;
  return *p;
}

static void fifo_unlink(trb_idem *t, idem_entry *e) {
  if (e->prev) e->prev->next = e->next;
  else t->oldest = e->next;
  if (e->next) e->next->prev = e->prev;
  else t->newest = e->prev;
  e->prev = e->next = NULL;
}

static void fifo_push(trb_idem *t, idem_entry *e) {
  e->next = NULL;
  e->prev = t->newest;
  if (t->newest) t->newest->next = e;
  else t->oldest = e;
  t->newest = e;
}

/* Unlinks e from its chain and the FIFO and frees it. */
static void drop(trb_idem *t, idem_entry *e) {
  idem_entry **p;
  find(t, e->token, e->hash, &p);
  if (*p == e) *p = e->hnext;
  if (e->state == IDEM_DONE) fifo_unlink(t, e);
  t->count--;
  free(e->result);
  free(e);
}

static void drop_expired(trb_idem *t, int64_t now) {
  while (t->oldest && t->oldest->expires_us <= now) drop(t, t->oldest);
}

/* ---- the API ---- */

trb_err trb_idem_begin(trb_idem *t, const char *token, const uint8_t digest[TRB_IDEM_DIGEST_LEN],
                       trb_idem_verdict *v, char **result) {
  if (result) *result = NULL;
  if (!token || !*token) return TRB_EINVAL;
  size_t tl = strlen(token);
  uint64_t h = XXH3_64bits_withSeed(token, tl, t->seed);
  trb_err rc = TRB_OK;
  pthread_mutex_lock(&t->mu);
  int64_t now = t->clock(t->clock_ctx);
  drop_expired(t, now);
  idem_entry *e = find(t, token, h, NULL);
  if (e) {
    if (memcmp(e->digest, digest, TRB_IDEM_DIGEST_LEN)) {
      *v = TRB_IDEM_MISMATCH;
    } else if (e->state == IDEM_RUNNING) {
      *v = TRB_IDEM_IN_PROGRESS;
    } else {
      *v = TRB_IDEM_REPLAY;
      if (result && e->result && !(*result = strdup(e->result))) rc = TRB_ENOMEM;
    }
    goto done;
  }
  if (t->count >= t->max) {
    /* Expired ones are gone already: forget the oldest done token early. */
    if (!t->oldest) {
      rc = TRB_ELIMIT;
      goto done;
    }
    drop(t, t->oldest);
  }
  e = calloc(1, sizeof *e + tl + 1);
  if (!e) {
    rc = TRB_ENOMEM;
    goto done;
  }
  memcpy(e->token, token, tl + 1);
  memcpy(e->digest, digest, TRB_IDEM_DIGEST_LEN);
  e->hash = h;
  e->state = IDEM_RUNNING;
  e->hnext = t->buckets[h & t->mask];
  t->buckets[h & t->mask] = e;
  t->count++;
  *v = TRB_IDEM_FIRST;
done:
  pthread_mutex_unlock(&t->mu);
  return rc;
}

/* The in-progress entry of token, or NULL. Caller holds mu. */
static idem_entry *running(trb_idem *t, const char *token) {
  if (!token || !*token) return NULL;
  idem_entry *e = find(t, token, XXH3_64bits_withSeed(token, strlen(token), t->seed), NULL);
  return e && e->state == IDEM_RUNNING ? e : NULL;
}

void trb_idem_commit(trb_idem *t, const char *token, char *result) {
  pthread_mutex_lock(&t->mu);
  idem_entry *e = running(t, token);
  if (e) {
    e->state = IDEM_DONE;
    e->result = result;
    result = NULL;
    e->expires_us = t->clock(t->clock_ctx) + t->ttl_us;
    fifo_push(t, e);
  }
  pthread_mutex_unlock(&t->mu);
  free(result);
}

void trb_idem_abort(trb_idem *t, const char *token) {
  pthread_mutex_lock(&t->mu);
  idem_entry *e = running(t, token);
  if (e) drop(t, e);
  pthread_mutex_unlock(&t->mu);
}

size_t trb_idem_count(trb_idem *t) {
  pthread_mutex_lock(&t->mu);
  size_t n = t->count;
  pthread_mutex_unlock(&t->mu);
  return n;
}

trb_err trb_idem_digest(json_t *req, const char *const *exclude,
                        uint8_t out[TRB_IDEM_DIGEST_LEN]) {
  if (!json_is_object(req)) return TRB_EINVAL;
  /* A shallow copy shares the members' values; deleting from it leaves req
   * as it was. */
  json_t *copy = json_copy(req);
  if (!copy) return TRB_ENOMEM;
  for (size_t i = 0; exclude && exclude[i]; i++) json_object_del(copy, exclude[i]);
  char *s = json_dumps(copy, JSON_SORT_KEYS | JSON_COMPACT);
  json_decref(copy);
  if (!s) return TRB_ENOMEM;
  SHA256((const unsigned char *)s, strlen(s), out);
  free(s);
  return TRB_OK;
}
