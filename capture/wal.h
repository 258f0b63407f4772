/*
 * wal.h -- the write-ahead log: the truth of tributary and its change stream.
 *
 * Segmented, append-only files in one directory; every record carries its
 * LSN, commit time, table, event kind, keys, old and new image, and a
 * CRC-32C. Byte layouts are at the top of capture/wal.c.
 *
 * Writers: exactly one thread (the engine's commit thread) appends. A
 * batch is appended with trb_wal_append(), made durable with
 * trb_wal_commit() (the sync policy decides whether that is an fdatasync
 * now), and made visible to readers with trb_wal_publish().
 *
 * Failure is sticky: after a failed write, fsync, truncate or allocation the
 * WAL refuses further appends (TRB_EFAILED) until it is closed and reopened.
 * On such a failure the writer cuts the file back to the last durable offset
 * where it can, so records of a failed batch do not come back after reopen.
 *
 * Readers: any number of threads, each with its own trb_wal_reader, see
 * published records in LSN order and block (on a condition variable the
 * committer signals, never a sleep loop) until new ones are published.
 */
#ifndef TRB_WAL_H
#define TRB_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "util/trb_err.h"

/*
 * Record kinds. The number is the on-disk id: never renumber; new kinds go
 * at the end. The dump tool, the names and the enum come from this list.
 */
#define TRB_WAL_KIND_LIST(X)                                                  \
  X(TRB_WAL_INSERT, 1, "INSERT")        /* item created: new image */        \
  X(TRB_WAL_MODIFY, 2, "MODIFY")        /* item replaced: old + new image */ \
  X(TRB_WAL_REMOVE, 3, "REMOVE")        /* item deleted: old image */        \
  X(TRB_WAL_TABLE_CREATE, 4, "TABLE_CREATE") /* new_img: table definition */ \
  X(TRB_WAL_TABLE_DELETE, 5, "TABLE_DELETE")                                 \
  X(TRB_WAL_TABLE_UPDATE, 6, "TABLE_UPDATE") /* new_img: table definition */ \
  X(TRB_WAL_TXN_COMMIT, 7, "TXN_COMMIT") /* ends the records of txn_id */

typedef enum trb_wal_kind {
#define TRB__WAL_KIND_ENUM(name, id, str) name = id,
  TRB_WAL_KIND_LIST(TRB__WAL_KIND_ENUM)
#undef TRB__WAL_KIND_ENUM
} trb_wal_kind;

const char *trb_wal_kind_name(int kind); /* "INSERT", ... or "?" */

/* Record flags (trb_wal_rec.flags). Unknown bits are kept and ignored. */
#define TRB_WAL_F_TTL 0x01u /* a REMOVE made by Time to Live (engine/ttl.h), not by a
                               client: its stream record carries DynamoDB's userIdentity
                               {Type Service, PrincipalId dynamodb.amazonaws.com} */

/*
 * One record. On append, the caller fills everything but lsn and commit_us
 * (trb_wal_append assigns them); pointers are borrowed for the call. On read,
 * pointers point into the reader's buffer and stay valid until the next
 * call on that reader.
 * keys/old_img/new_img are the binary item encoding (engine/item_codec.c);
 * the WAL treats them as opaque bytes. An absent image has ptr NULL (len 0);
 * an empty-but-present image is ptr non-NULL with len 0.
 */
typedef struct trb_wal_rec {
  uint64_t lsn;
  int64_t commit_us;   /* microseconds since the epoch; same for a batch */
  uint8_t kind;        /* trb_wal_kind */
  uint8_t flags;       /* TRB_WAL_F_*; 0 for most records */
  uint64_t table_id;   /* the LSN of the table's TABLE_CREATE record */
  uint64_t txn_id;     /* 0 = not part of a transaction */
  const char *table;   /* table name, not NUL-terminated on read */
  size_t table_len;
  const void *keys;
  size_t keys_len;
  const void *old_img;
  size_t old_len;
  const void *new_img;
  size_t new_len;
} trb_wal_rec;

typedef enum trb_wal_sync_mode {
  TRB_WAL_SYNC_ALWAYS = 0,   /* fdatasync in every trb_wal_commit (default) */
  TRB_WAL_SYNC_INTERVAL = 1, /* fdatasync at most every sync_interval_ms,
                                by commit or a background flusher */
} trb_wal_sync_mode;

typedef struct trb_wal_opts {
  const char *dir;              /* created if missing */
  uint64_t segment_size;        /* bytes; default 64 MiB; min 1 MiB */
  trb_wal_sync_mode sync_mode;
  uint32_t sync_interval_ms;    /* for TRB_WAL_SYNC_INTERVAL; default 10 */
  int readonly;                 /* for dump/verify: no recovery writes */
} trb_wal_opts;

typedef struct trb_wal trb_wal;

/*
 * Opens (creating if empty) and recovers the WAL: scans every segment,
 * checks every record, truncates a torn tail (a bad length or CRC at the end
 * of the log, i.e. records that were never made durable), and refuses with
 * TRB_ECORRUPT, naming the segment file and byte offset in st, a bad record
 * followed by records that were durable. With opts->readonly nothing is
 * changed on disk and a torn tail is simply the end.
 * *out is caller-owned (trb_wal_close).
 */
trb_err trb_wal_open(const trb_wal_opts *opts, trb_wal **out, trb_status *st);
/* Publishes nothing more, wakes every blocked reader (they get TRB_ECLOSED),
 * syncs if the policy left anything unsynced, closes files, frees.
 * Readers must be closed after or before, but not used after. NULL ok. */
void trb_wal_close(trb_wal *w);

/* Highest LSN in the log (durable after open; after appends, the highest
 * appended). 0 for an empty log. */
uint64_t trb_wal_last_lsn(const trb_wal *w);
/* Lowest LSN still in the log (0 when empty). */
uint64_t trb_wal_first_lsn(const trb_wal *w);

/*
 * Appends n records as one batch: assigns them consecutive LSNs starting at
 * last_lsn + 1 and the batch's commit time (never less than the previous
 * batch's), and writes them (rolling to a new segment when the current one
 * is full). Not durable until trb_wal_commit. Single writer thread only.
 * On failure nothing of the batch counts and the WAL is failed (sticky).
 */
trb_err trb_wal_append(trb_wal *w, trb_wal_rec *recs, size_t n, trb_status *st);
/* Makes appended records durable as the sync policy says. Sticky failure. */
trb_err trb_wal_commit(trb_wal *w, trb_status *st);
/* Makes records up to lsn visible to readers and wakes them. */
void trb_wal_publish(trb_wal *w, uint64_t lsn);
/* The highest LSN readers may see now. */
uint64_t trb_wal_published_lsn(trb_wal *w);
/* TRB_OK, or the error that failed the WAL. */
trb_err trb_wal_failed(const trb_wal *w);

/* Counters for metrics and benchmarks. */
typedef struct trb_wal_stats {
  uint64_t appends;      /* batches */
  uint64_t records;
  uint64_t bytes;
  uint64_t syncs;        /* fdatasync calls */
  uint64_t segments;     /* segment files now */
} trb_wal_stats;
void trb_wal_get_stats(const trb_wal *w, trb_wal_stats *out);

/* ---- retention ---- */
typedef struct trb_wal_seg_info {
  uint64_t first_lsn;    /* its first record */
  uint64_t bytes;        /* bytes it takes on disk */
  int current;           /* the segment being appended to */
} trb_wal_seg_info;
/* The segments, oldest first. *out malloc'ed (caller frees). */
trb_err trb_wal_segments(trb_wal *w, trb_wal_seg_info **out, size_t *n, trb_status *st);
/* Removes the segments all of whose records have LSN < keep_from (the
 * current segment always stays), oldest first, and syncs the directory.
 * The caller decides what may go (capture/retention.h). Readers inside a
 * removed segment finish it (their descriptor stays valid); opening or
 * seeking below the new first LSN gives TRB_ENOTFOUND. *removed (may be
 * NULL) gets how many went. */
trb_err trb_wal_trim(trb_wal *w, uint64_t keep_from, size_t *removed, trb_status *st);

/* ---- readers ---- */
typedef struct trb_wal_reader trb_wal_reader;

/* A reader positioned at the first record with lsn >= from_lsn.
 * TRB_ENOTFOUND (message says which LSN is the oldest) when from_lsn is older
 * than the log's first record. *out caller-owned. */
trb_err trb_wal_reader_open(trb_wal *w, uint64_t from_lsn, trb_wal_reader **out,
                            trb_status *st);
/*
 * The next published record. Blocks up to timeout_ms (-1 = forever, 0 = no
 * wait) for one to be published. TRB_OK with *rec filled (pointers valid
 * until the next call), TRB_ETIMEDOUT, TRB_ECLOSED when the WAL is closing,
 * TRB_ECORRUPT with the segment and offset in st.
 */
trb_err trb_wal_reader_next(trb_wal_reader *r, trb_wal_rec *rec, int timeout_ms,
                            trb_status *st);
void trb_wal_reader_close(trb_wal_reader *r);

/* Where a record is in the log, to read it again directly (the stream
 * index keeps these per shard). */
typedef struct trb_wal_pos {
  uint64_t lsn;
  uint64_t seg_first;   /* the segment's first LSN (its name) */
  uint64_t off;         /* byte offset of the record in that segment */
} trb_wal_pos;
/* The position of the record the last successful trb_wal_reader_next
 * returned. */
void trb_wal_reader_pos(const trb_wal_reader *r, trb_wal_pos *out);
/* Moves r so that the next record it returns is the one at pos (a position
 * a reader of this WAL reported). Cheap when pos lies in the reader's
 * read-ahead window: a shard's records interleaved with others are read
 * without rereading. TRB_ENOTFOUND when that segment is gone. */
trb_err trb_wal_reader_seek(trb_wal_reader *r, const trb_wal_pos *pos, trb_status *st);

/* ---- offline verification (the `tributary wal verify` command) ---- */
typedef struct trb_wal_verify_result {
  uint64_t segments;
  uint64_t records;
  uint64_t first_lsn, last_lsn;
  int ok;                   /* 1 when every record checks */
  int torn_tail;            /* 1 when the log ends in a torn (never durable) record */
  char bad_segment[256];    /* file name of the first bad record, if any */
  uint64_t bad_offset;      /* its byte offset in that file */
  uint64_t bad_lsn;         /* the LSN expected there */
  char reason[160];         /* e.g. "CRC mismatch", "bad length" */
} trb_wal_verify_result;
/* Reads every segment in dir without changing anything. TRB_OK when the log
 * is readable (res->ok tells whether every record checked); an error when
 * the directory cannot be read or a header has an unknown version. */
trb_err trb_wal_verify(const char *dir, trb_wal_verify_result *res, trb_status *st);

#endif
