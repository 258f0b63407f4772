/*
 * streams.h -- the streams of every table and their shards, as views over
 * the WAL.
 *
 * One tailer thread reads the WAL from its first record as it grows (woken
 * by the commit thread's publish, never a sleep loop) and keeps, in memory:
 *  - every table's streams: a stream begins at the table record (create or
 *    update) whose settings enable it with a new StreamLabel and ends at the
 *    record that disables it or deletes the table;
 *  - each stream's shards: epochs of N hash ranges of the partition key
 *    (trb_key_hash), a new epoch when a record's commit time passes the
 *    rollover period; each shard of a new epoch names the shard of the
 *    previous epoch that held its hash range as its parent;
 *  - per shard, the WAL positions of its records, so reading a shard seeks
 *    straight to them instead of scanning other shards' records.
 * Everything here is derived from the WAL alone, so a restart rebuilds the
 * same streams, shards and ids.
 *
 * The ShardId of shard i of an epoch is "shardId-<epoch start, ms since the
 * epoch, 20 digits>-<8 hex digits: i, and the low bits of the stream's start
 * LSN>", so ascending ShardId order is epoch order, then hash order.
 *
 * Thread-safe: any number of API threads read while the tailer appends.
 */
#ifndef TRB_STREAMS_H
#define TRB_STREAMS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "capture/wal.h"
#include "engine/keyenc.h"
#include "engine/tabledef.h"
#include "transform/stream_record.h"
#include "util/buf.h"
#include "util/trb_err.h"

typedef struct trb_streams trb_streams;

typedef struct trb_streams_opts {
  trb_wal *wal;             /* borrowed; outlives the streams */
  uint32_t shards;          /* hash ranges per epoch, default 4 */
  int64_t rollover_us;      /* epoch length, default 4 hours */
  const char *region;       /* awsRegion of the records */
  /* The tables as the catalog has them now (borrowed for the call to
   * trb_streams_start): a stream whose enabling record is no longer in the
   * WAL is taken from here. */
  const trb_tabledef *tables;
  size_t ntables;
  /* Nice levels the index thread runs above the caller's threads
   * (util/thread.h); serve passes streams.priority_boost. Default 0. */
  unsigned priority_boost;
} trb_streams_opts;

/* serve's default streams.priority_boost, also what the benchmarks use. */
#define TRB_STREAMS_PRIORITY_BOOST_DEFAULT 5

void trb_streams_opts_default(trb_streams_opts *o);
/* Starts the tailer. *out caller-owned (trb_streams_stop). */
trb_err trb_streams_start(const trb_streams_opts *o, trb_streams **out, trb_status *st);
/* Stops the tailer and frees everything. NULL ok. */
void trb_streams_stop(trb_streams *s);
/* Waits (up to timeout_ms) until the tailer has taken in every record the
 * WAL had published when the call began: a reader then sees its own
 * acknowledged writes. 0 when caught up, -1 on timeout. */
int trb_streams_sync(trb_streams *s, int timeout_ms);
/* The tailer's error (a corrupt record stops it), TRB_OK while healthy. */
trb_err trb_streams_failed(trb_streams *s, trb_status *st);

typedef struct trb_stream_info {
  char table[256];
  char label[32];
  trb_view view;
  trb_keyschema ks;
  int enabled;              /* 0 once disabled or its table deleted */
  int64_t created_us;       /* commit time of the record that enabled it */
} trb_stream_info;

/* The streams of table (NULL: of every table), ordered by table name then
 * creation. *out malloc'ed (caller frees), *n entries. */
trb_err trb_streams_list(trb_streams *s, const char *table, trb_stream_info **out, size_t *n,
                         trb_status *st);

typedef struct trb_shard_info {
  char id[64];
  char parent[64];          /* "" for the first epoch */
  uint64_t start_lsn;       /* StartingSequenceNumber's LSN */
  uint64_t end_lsn;         /* EndingSequenceNumber's LSN when closed */
  int closed;
  size_t records;           /* records in the shard (still in the WAL) */
  uint64_t trimmed_through; /* its records up to this LSN were removed by retention */
} trb_shard_info;

/* One stream and its shards in ascending ShardId order. *shards malloc'ed
 * (caller frees). TRB_ENOTFOUND when no such stream. */
trb_err trb_streams_describe(trb_streams *s, const char *table, const char *label,
                             trb_stream_info *info, trb_shard_info **shards, size_t *n,
                             trb_status *st);
/* One shard. TRB_ENOTFOUND when the stream or shard does not exist. */
trb_err trb_streams_shard(trb_streams *s, const char *table, const char *label,
                          const char *shard_id, trb_shard_info *out, trb_status *st);

/* Waits (up to timeout_ms, -1 = no limit) until the index has taken in the
 * record at lsn. 0, or -1 on timeout, failure or stop. */
int trb_streams_wait(trb_streams *s, uint64_t lsn, int timeout_ms);
/* Where the item record at lsn of table table_id, with key attributes
 * keys, went: 1 with its stream and shard filled, 0 when the table had no
 * stream then (the record is in no stream). The index must have taken the
 * record in (trb_streams_wait). */
int trb_streams_locate(trb_streams *s, uint64_t table_id, uint64_t lsn, const trb_av *keys,
                       trb_stream_info *si, char shard_id[64]);

/* Retention removed the WAL before first_lsn: forget those records, and
 * the shards that had nothing after. Reading below it is TRB_ETRIMMED. */
void trb_streams_trim(trb_streams *s, uint64_t first_lsn);
/* The first LSN still readable (TRIM_HORIZON). */
uint64_t trb_streams_trim_lsn(trb_streams *s);

/* The position just after the newest record the tailer has taken in (for
 * LATEST iterators). */
uint64_t trb_streams_next_lsn(trb_streams *s);

typedef struct trb_streams_page {
  trb_buf *text;            /* trb_streams_read_text's buffer, else NULL */
  json_t *records;          /* array of Streams records (caller-owned), unless text */
  size_t count;             /* records read */
  uint64_t next_lsn;        /* where the next read of the shard starts */
  int exhausted;            /* the shard is closed and nothing is left past next_lsn */
} trb_streams_page;

/* Reads the shard's records with LSN >= from_lsn: at most limit records and
 * about max_bytes of record JSON. TRB_ENOTFOUND (unknown shard),
 * TRB_ETRIMMED when retention removed records of the shard at or after
 * from_lsn (the reader missed them). */
trb_err trb_streams_read(trb_streams *s, const char *table, const char *label,
                         const char *shard_id, uint64_t from_lsn, size_t limit, size_t max_bytes,
                         trb_streams_page *out, trb_status *st);
/* The same with the records appended to text as a JSON array's text, the
 * bytes GetRecords answers with (trb_stream_record_text each), instead of
 * a jansson array (out->records NULL); on failure text is as it was. */
trb_err trb_streams_read_text(trb_streams *s, const char *table, const char *label,
                              const char *shard_id, uint64_t from_lsn, size_t limit,
                              size_t max_bytes, trb_buf *text, trb_streams_page *out,
                              trb_status *st);

#endif
