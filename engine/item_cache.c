/*
 * item_cache.c -- the store's item cache (see item_cache.h for what it
 * holds and why it is never stale).
 *
 * Layout: 64 shards chosen by the top 6 bits of XXH3-64(key, seed = table
 * id); in each, a chained hash table (power-of-two buckets, doubled when
 * the entries outnumber them) and an LRU list through a sentinel (next =
 * most recently used). An entry is one allocation: the header below, then
 * the key bytes, then the value bytes. Its cost against the budget is
 * ENT_COST + key + value.
 */
#include "engine/item_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define NSHARD 64
#define ENT_COST 64 /* header, malloc overhead, bucket slot */

typedef struct ent {
  struct ent *hnext;       /* bucket chain */
  struct ent *prev, *next; /* LRU list */
  uint64_t h, id;
  uint32_t kl, vl;
  unsigned char data[];    /* key, then value */
} ent;

typedef struct shard {
  pthread_mutex_t mu;
  ent **b;
  size_t nb, n;
  ent lru;                 /* sentinel */
  size_t bytes, max;
  uint64_t gen;            /* moves at every write begin and end */
  unsigned writing;        /* writes of this shard's keys under way */
  uint64_t hits, misses, fills, evictions;
} __attribute__((aligned(64))) shard;

struct trb_item_cache {
  shard sh[NSHARD];
  size_t max;
};

static uint64_t hash(uint64_t id, const void *k, size_t kl) {
  return (uint64_t)XXH3_64bits_withSeed(k, kl, (XXH64_hash_t)id);
}

static shard *shard_of(trb_item_cache *c, uint64_t h) { return &c->sh[h >> 58]; }

static size_t cost(const ent *e) { return ENT_COST + e->kl + e->vl; }

static ent **find(shard *s, uint64_t h, uint64_t id, const void *k, size_t kl) {
  ent **pp = &s->b[h & (s->nb - 1)];
  for (; *pp; pp = &(*pp)->hnext) {
    ent *e = *pp;
    if (e->h == h && e->id == id && e->kl == kl && !memcmp(e->data, k, kl)) return pp;
  }
  return NULL;
}

static void lru_unlink(ent *e) {
  e->prev->next = e->next;
  e->next->prev = e->prev;
}

static void lru_front(shard *s, ent *e) {
  e->next = s->lru.next;
  e->prev = &s->lru;
  s->lru.next->prev = e;
  s->lru.next = e;
}

/* Unlinks *pp from its chain and the LRU list and frees it. */
static void drop(shard *s, ent **pp) {
  ent *e = *pp;
  *pp = e->hnext;
  lru_unlink(e);
  s->bytes -= cost(e);
  s->n--;
  free(e);
}

static void drop_key(shard *s, uint64_t h, uint64_t id, const void *k, size_t kl) {
  ent **pp = find(s, h, id, k, kl);
  if (pp) drop(s, pp);
}

/* Doubles the buckets (when that fails the chains just grow longer). */
static void grow(shard *s) {
  size_t nb = s->nb * 2;
  ent **b = calloc(nb, sizeof *b);
  if (!b) return;
  for (size_t i = 0; i < s->nb; i++)
    for (ent *e = s->b[i], *nx; e; e = nx) {
      nx = e->hnext;
      e->hnext = b[e->h & (nb - 1)];
      b[e->h & (nb - 1)] = e;
    }
  free(s->b);
  s->b = b;
  s->nb = nb;
}

trb_item_cache *trb_item_cache_create(size_t max_bytes) {
  if (!max_bytes) return NULL;
  trb_item_cache *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->max = max_bytes;
  for (int i = 0; i < NSHARD; i++) {
    shard *s = &c->sh[i];
    pthread_mutex_init(&s->mu, NULL);
    s->nb = 64;
    s->b = calloc(s->nb, sizeof *s->b);
    s->lru.next = s->lru.prev = &s->lru;
    s->max = max_bytes / NSHARD ? max_bytes / NSHARD : 1;
    if (!s->b) {
      for (int j = 0; j <= i; j++) {
        free(c->sh[j].b);
        pthread_mutex_destroy(&c->sh[j].mu);
      }
      free(c);
      return NULL;
    }
  }
  return c;
}

void trb_item_cache_destroy(trb_item_cache *c) {
  if (!c) return;
  for (int i = 0; i < NSHARD; i++) {
    shard *s = &c->sh[i];
    for (ent *e = s->lru.next, *nx; e != &s->lru; e = nx) {
      nx = e->next;
      free(e);
    }
    free(s->b);
    pthread_mutex_destroy(&s->mu);
  }
  free(c);
}

int trb_item_cache_get(trb_item_cache *c, uint64_t table_id, const void *key, size_t klen,
                       char **val, size_t *vlen, uint64_t *ticket) {
  uint64_t h = hash(table_id, key, klen);
  shard *s = shard_of(c, h);
  pthread_mutex_lock(&s->mu);
  ent **pp = find(s, h, table_id, key, klen);
  if (!pp) {
    s->misses++;
    *ticket = s->gen;
    pthread_mutex_unlock(&s->mu);
    return 0;
  }
  ent *e = *pp;
  char *v = malloc(e->vl ? e->vl : 1);
  if (!v) {
    pthread_mutex_unlock(&s->mu);
    return -1;
  }
  memcpy(v, e->data + e->kl, e->vl);
  *vlen = e->vl;
  lru_unlink(e);
  lru_front(s, e);
  s->hits++;
  pthread_mutex_unlock(&s->mu);
  *val = v;
  return 1;
}

void trb_item_cache_fill(trb_item_cache *c, uint64_t table_id, const void *key, size_t klen,
                         const void *val, size_t vlen, uint64_t ticket) {
  uint64_t h = hash(table_id, key, klen);
  shard *s = shard_of(c, h);
  if (klen > UINT32_MAX || vlen > UINT32_MAX || ENT_COST + klen + vlen > s->max / 8) return;
  ent *e = malloc(sizeof *e + klen + vlen); /* built outside the lock */
  if (!e) return;
  e->h = h;
  e->id = table_id;
  e->kl = (uint32_t)klen;
  e->vl = (uint32_t)vlen;
  memcpy(e->data, key, klen);
  memcpy(e->data + klen, val, vlen);
  pthread_mutex_lock(&s->mu);
  if (s->writing || s->gen != ticket || find(s, h, table_id, key, klen)) {
    pthread_mutex_unlock(&s->mu);
    free(e);
    return;
  }
  ent **slot = &s->b[h & (s->nb - 1)];
  e->hnext = *slot;
  *slot = e;
  lru_front(s, e);
  s->bytes += cost(e);
  s->n++;
  s->fills++;
  while (s->bytes > s->max && s->lru.prev != &s->lru) {
    ent *old = s->lru.prev;
    drop(s, find(s, old->h, old->id, old->data, old->kl));
    s->evictions++;
  }
  if (s->n > s->nb) grow(s);
  pthread_mutex_unlock(&s->mu);
}

/* Drops every entry of the shard (of table_id only, unless all). */
static void drop_all(shard *s, int all, uint64_t table_id) {
  for (ent *e = s->lru.next, *nx; e != &s->lru; e = nx) {
    nx = e->next;
    if (all || e->id == table_id) drop(s, find(s, e->h, e->id, e->data, e->kl));
  }
}

static void write_mark(trb_item_cache *c, uint64_t table_id, const void *key, size_t klen,
                       int begin) {
  int lo = 0, hi = NSHARD;
  uint64_t h = 0;
  if (key) {
    h = hash(table_id, key, klen);
    lo = (int)(h >> 58);
    hi = lo + 1;
  }
  for (int i = lo; i < hi; i++) {
    shard *s = &c->sh[i];
    pthread_mutex_lock(&s->mu);
    if (key) drop_key(s, h, table_id, key, klen);
    else drop_all(s, 1, 0);
    s->gen++;
    if (begin) s->writing++;
    else if (s->writing) s->writing--;
    pthread_mutex_unlock(&s->mu);
  }
}

void trb_item_cache_write_begin(trb_item_cache *c, uint64_t table_id, const void *key,
                                size_t klen) {
  write_mark(c, table_id, key, klen, 1);
}

void trb_item_cache_write_end(trb_item_cache *c, uint64_t table_id, const void *key,
                              size_t klen) {
  write_mark(c, table_id, key, klen, 0);
}

void trb_item_cache_forget_table(trb_item_cache *c, uint64_t table_id) {
  for (int i = 0; i < NSHARD; i++) {
    shard *s = &c->sh[i];
    pthread_mutex_lock(&s->mu);
    drop_all(s, 0, table_id);
    s->gen++;
    pthread_mutex_unlock(&s->mu);
  }
}

void trb_item_cache_get_stats(trb_item_cache *c, trb_item_cache_stats *out) {
  memset(out, 0, sizeof *out);
  if (!c) return;
  out->max_bytes = c->max;
  for (int i = 0; i < NSHARD; i++) {
    shard *s = &c->sh[i];
    pthread_mutex_lock(&s->mu);
    out->hits += s->hits;
    out->misses += s->misses;
    out->fills += s->fills;
    out->evictions += s->evictions;
    out->entries += s->n;
    out->bytes += s->bytes;
    pthread_mutex_unlock(&s->mu);
  }
}
