/*
 * item_cache.h -- a bounded cache of stored items in front of the store's
 * point reads (GetItem, the commit thread's old images).
 *
 * Why: an item still in RocksDB's memtable is found by walking a skip list
 * of every recent write, a cache miss per level; after a burst of 100k
 * writes that walk was a fifth of a GetItem's CPU. A hash lookup here is one
 * or two. RocksDB's own row cache covers SST files only, never memtables.
 *
 * What it holds: (table id, store key) -> the stored value bytes, exactly as
 * the store holds them; absent items are not cached (the store's bloom
 * filters answer those). Entries are evicted least recently used first once
 * the cache holds more than its byte budget (keys, values and a fixed
 * overhead per entry are counted).
 *
 * Never stale: the store brackets every write it applies with
 * trb_item_cache_write_begin / _end for each key it writes. Both drop the
 * key's entry and move its shard's generation on; a reader that missed
 * (trb_item_cache_get gives it the generation as a ticket), read the store
 * and offers the value with trb_item_cache_fill has it refused unless no
 * write to that shard began or ended since its miss and none is under way.
 * So a value enters the cache only if the store held it at the time of the
 * fill, and it leaves before (begin) and after (end) any write of its key.
 *
 * Thread-safe: 64 shards, each behind its own mutex.
 */
#ifndef TRB_ITEM_CACHE_H
#define TRB_ITEM_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct trb_item_cache trb_item_cache;

/* NULL when max_bytes is 0 (no cache) or memory is short. Caller-owned. */
trb_item_cache *trb_item_cache_create(size_t max_bytes);
void trb_item_cache_destroy(trb_item_cache *c); /* NULL ok */

/* 1: a hit, *val a malloc'ed copy (caller frees) of *vlen bytes.
 * 0: a miss, *ticket to pass to trb_item_cache_fill. -1: out of memory. */
int trb_item_cache_get(trb_item_cache *c, uint64_t table_id, const void *key, size_t klen,
                       char **val, size_t *vlen, uint64_t *ticket);
/* Offers the value the store gave after a miss (copied; refused as the top
 * comment says, or when it is larger than an eighth of a shard's budget). */
void trb_item_cache_fill(trb_item_cache *c, uint64_t table_id, const void *key, size_t klen,
                         const void *val, size_t vlen, uint64_t ticket);
/* Around the store applying a write (put or delete) of the key. key NULL:
 * of any key (every entry goes, every shard refuses fills until the end). */
void trb_item_cache_write_begin(trb_item_cache *c, uint64_t table_id, const void *key,
                                size_t klen);
void trb_item_cache_write_end(trb_item_cache *c, uint64_t table_id, const void *key,
                              size_t klen);
/* Drops every entry of the table (its column family is going away) and
 * refuses fills in flight. */
void trb_item_cache_forget_table(trb_item_cache *c, uint64_t table_id);

typedef struct trb_item_cache_stats {
  uint64_t hits, misses, fills, evictions;
  size_t entries, bytes, max_bytes;
} trb_item_cache_stats;
void trb_item_cache_get_stats(trb_item_cache *c, trb_item_cache_stats *out);

#endif
