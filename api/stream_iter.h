/*
 * stream_iter.h -- DynamoDB Streams shard iterators (spec 7.5, 7.6): the
 * opaque strings GetShardIterator hands out and GetRecords takes back.
 *
 * An iterator says which stream and shard it reads, where it stands (the
 * next LSN to return) and when it was issued. The server keeps no state for
 * it: everything is in the string, authenticated with HMAC-SHA256 under a
 * server key, so a client can neither forge a position nor alter one, and an
 * iterator stays valid across a restart as long as the key file survives.
 *
 *   GetShardIterator:  it = {arn, shard, lsn, trb_now_us()}
 *                      trb_iter_encode(key, &it, text)   -> "ShardIterator"
 *   GetRecords:        trb_iter_decode(key, text, trb_now_us(), &it)
 *                        TRB_OK        read from it.next_lsn; answer a new
 *                                      iterator (issued now) as
 *                                      NextShardIterator
 *                        TRB_EINVAL    ValidationException
 *                        TRB_ETIMEDOUT ExpiredIteratorException
 *
 * The string has AWS's shape, "<StreamArn>|1|<blob>", where blob is base64url
 * (RFC 4648 section 5, no padding) of a small binary payload plus its MAC;
 * stream_iter.c documents the payload byte by byte. Clients must treat it as
 * opaque. An iterator expires TRB_ITER_TTL_US (15 minutes) after issue.
 *
 * The module knows nothing of shards or records beyond these fields: whether
 * the stream and shard exist, and what to do when next_lsn has been trimmed,
 * are the caller's. All functions are thread-safe; a key is immutable after
 * it is made and may be shared by any number of threads.
 */
#ifndef TRB_STREAM_ITER_H
#define TRB_STREAM_ITER_H

#include <stdint.h>

#include "util/trb_err.h"

/* Length of the server key, bytes. */
#define TRB_ITER_KEY_LEN 32
/* Longest iterator text, characters, not counting the NUL (the API model's
 * limit for ShardIterator). */
#define TRB_ITER_MAX 2048
/* An iterator is valid while now - issued <= TTL (AWS: 15 minutes). */
#define TRB_ITER_TTL_US (15LL * 60 * 1000000)
/* An iterator whose issue time is more than this ahead of now is refused as
 * invalid: the server never issues one, so it is either forged (impossible
 * without the key) or the clock has jumped back; a few minutes of slack lets
 * a server with a slightly stepped clock keep serving its own iterators. */
#define TRB_ITER_FUTURE_US (5LL * 60 * 1000000)

/* Field sizes of trb_iter, including the NUL. */
#define TRB_ITER_ARN_SIZE 1100
#define TRB_ITER_SHARD_SIZE 80

/* The server's secret: TRB_ITER_KEY_LEN bytes, opaque. */
typedef struct trb_iter_key trb_iter_key;

/*
 * Loads the key from `path`, or, when no file exists there, creates one: 32
 * bytes from RAND_bytes, written with the durable-replace recipe (path.tmp
 * with mode 0600, fsync, rename over path, fsync the directory; every step
 * through the util/sysio.h seam), so iterators survive a restart.
 *
 * The file is the 32 raw key bytes, nothing else. Any other size is
 * TRB_ECORRUPT; failing to read, or to create, is TRB_EIO (TRB_ENOMEM,
 * TRB_EINTERNAL when memory or the RNG fail). Every message names the file.
 * An existing file is never rewritten. Two processes creating the same key
 * file at once may each end up with a different key (the last rename wins
 * on disk); one server per key file is assumed.
 *
 * *out is set only on success; the caller owns it (trb_iter_key_destroy).
 */
trb_err trb_iter_key_load(const char *path, trb_iter_key **out, trb_status *st);
/* A key from the given bytes (copied), for tests. NULL when out of memory. */
trb_iter_key *trb_iter_key_from_bytes(const unsigned char k[TRB_ITER_KEY_LEN]);
/* Wipes and frees the key. NULL is a no-op. */
void trb_iter_key_destroy(trb_iter_key *k);

typedef struct trb_iter {
  char stream_arn[TRB_ITER_ARN_SIZE]; /* which stream; NUL-terminated, non-empty */
  char shard_id[TRB_ITER_SHARD_SIZE]; /* which shard; NUL-terminated, non-empty */
  uint64_t next_lsn;                  /* position: the next record to return has
                                         LSN >= next_lsn */
  int64_t issued_us;                  /* when the iterator was issued (wall
                                         clock, microseconds since the epoch) */
} trb_iter;

/*
 * Encodes `it` as "<stream_arn>|1|<base64url of payload+HMAC>". `out` must
 * hold TRB_ITER_MAX+1 bytes and receives a NUL-terminated string of at most
 * TRB_ITER_MAX characters (with the field sizes above it is at most 1274).
 * TRB_EINVAL when stream_arn or shard_id is empty or not NUL-terminated
 * within its array. Deterministic: the same key and fields give the same
 * string. On error out[0] is NUL.
 */
trb_err trb_iter_encode(const trb_iter_key *k, const trb_iter *it, char *out, trb_status *st);

/*
 * Decodes and verifies `text` against the key, with `now_us` as the current
 * wall-clock time (passed in so callers and tests control the clock).
 *
 *   TRB_OK         *out holds the fields the iterator was encoded with.
 *   TRB_EINVAL     "Invalid ShardIterator": anything malformed (shape,
 *                  length, base64url, version), a MAC that does not verify
 *                  (another key, any altered character), or an issue time
 *                  more than TRB_ITER_FUTURE_US ahead of now_us. The MAC is
 *                  compared in constant time and checked before any field
 *                  is believed.
 *   TRB_ETIMEDOUT  authentic but now_us - issued_us > TRB_ITER_TTL_US;
 *                  the message is AWS's "Iterator expired. The iterator was
 *                  created at time <ISO> while right now it's <ISO>. The
 *                  iterator is valid for 15 minutes." *out is filled too
 *                  (the fields are authentic; callers may log them).
 *
 * On any other result *out is zeroed. `text` is borrowed.
 */
trb_err trb_iter_decode(const trb_iter_key *k, const char *text, int64_t now_us, trb_iter *out,
                        trb_status *st);

#endif
