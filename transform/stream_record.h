/*
 * stream_record.h -- one WAL change record as one DynamoDB Streams record.
 *
 * The processor reads item records (INSERT, MODIFY, REMOVE) from the WAL and
 * hands each to trb_stream_record(), which builds the JSON object that
 * DynamoDB Streams' GetRecords returns in "Records" (spec 7.7), cut to the
 * stream's view type. The API's GetRecords, the Streams-JSON encoder and the
 * sinks all start from this object; `tributary stream tail --format pretty`
 * uses trb_stream_record_pretty() for people.
 *
 * Sequence numbers are derived from LSNs (ARCHITECTURE.md invariant 1) so
 * they sort as the changes happened; the layout is at the top of
 * stream_record.c. Everything here is pure: no I/O, no global state, safe to
 * call from any thread.
 */
#ifndef TRB_STREAM_RECORD_H
#define TRB_STREAM_RECORD_H

#include <jansson.h>
#include <stdint.h>

#include "capture/wal.h"
#include "util/buf.h"
#include "util/trb_err.h"

/* StreamViewType. The numbers are stable (configs and checkpoints may
 * store them); new values go at the end. */
typedef enum trb_view {
  TRB_VIEW_KEYS_ONLY = 1,
  TRB_VIEW_NEW_IMAGE = 2,
  TRB_VIEW_OLD_IMAGE = 3,
  TRB_VIEW_NEW_AND_OLD_IMAGES = 4,
} trb_view;

/* A StreamLabel for a stream enabled at us (microseconds since the epoch):
 * ISO-8601 UTC with milliseconds and no zone, e.g. 2015-05-20T20:51:10.252.
 * out is caller-owned. */
void trb_stream_label(int64_t us, char out[32]);

/* The streams.tables setting: "TABLE:VIEW_TYPE,TABLE:VIEW_TYPE,...". Checks
 * every entry (a DynamoDB table name, one of the four view types); when
 * table is not NULL and listed, *view gets its view type. 1 listed, 0 not
 * listed, -1 malformed (TRB_ECONFIG in st, saying what is wrong with which
 * part; the config loader checks the setting with it). spec and table
 * borrowed. */
int trb_stream_tables_lookup(const char *spec, const char *table, trb_view *view,
                             trb_status *st);

/* "KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"; "?" for any
 * other value. Static string, never NULL. */
const char *trb_view_name(trb_view v);
/* Parses the exact (case-sensitive, as DynamoDB is) name into *out: 0 ok,
 * -1 for an unknown name or a NULL s (*out untouched then). */
int trb_view_parse(const char *s, trb_view *out);

/* DynamoDB Streams' userIdentity PrincipalId (Type "Service") of an item
 * deleted by Time to Live. */
#define TRB_TTL_PRINCIPAL "dynamodb.amazonaws.com"
/* 1 when r is a REMOVE that Time to Live made (WAL flag TRB_WAL_F_TTL):
 * the records every sink derives from it name TRB_TTL_PRINCIPAL. */
static inline int trb_stream_rec_by_ttl(const trb_wal_rec *r) {
  return r->kind == TRB_WAL_REMOVE && (r->flags & TRB_WAL_F_TTL);
}

/* Bytes a formatted sequence number needs, with its NUL. */
#define TRB_SEQNO_BUF 41

/*
 * Sequence numbers from LSNs: a decimal string of 21..40 digits that sorts
 * (as a big integer AND as a string of equal length) like the LSN: "1"
 * followed by the LSN zero-padded to 20 digits (so LSN 42 ->
 * "100000000000000000042"). Every number this module produces is exactly 21
 * digits long. out is caller-owned and must hold TRB_SEQNO_BUF bytes; it is
 * NUL-terminated.
 */
void trb_seqno_format(uint64_t lsn, char out[TRB_SEQNO_BUF]);
/*
 * Parses a sequence number back into *lsn. TRB_EINVAL, with a message in st
 * (which may be NULL) saying what is wrong, unless s is all digits, 21..40
 * long, and of the form trb_seqno_format produces (21 digits, a leading
 * "1", an LSN that fits in 64 bits). A well-formed 21..40-digit number of
 * another form (another stream's, AWS's) is TRB_EINVAL too: it names no
 * record of this log. *lsn is written only on success. s is borrowed.
 */
trb_err trb_seqno_parse(const char *s, uint64_t *lsn, trb_status *st);

typedef struct trb_stream_rec_opts {
  trb_view view;
  const char *region; /* awsRegion; borrowed, UTF-8, must not be NULL */
} trb_stream_rec_opts;

/*
 * The Streams record of one WAL item record (kind INSERT, MODIFY or REMOVE;
 * any other kind is TRB_EINVAL). r and o are borrowed for the call; on
 * success *out is a new reference the caller owns (json_decref); on failure
 * *out is NULL and st says why.
 *
 *   {"eventID":"<32 lower-case hex>","eventName":"INSERT|MODIFY|REMOVE",
 *    "eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":<region>,
 *    "dynamodb":{"ApproximateCreationDateTime":<epoch seconds>,
 *                "Keys":{...},"OldImage":{...}?,"NewImage":{...}?,
 *                "SequenceNumber":"<trb_seqno_format(lsn)>",
 *                "SizeBytes":<n>,"StreamViewType":"<view>"},
 *    "userIdentity":{"Type":"Service","PrincipalId":"dynamodb.amazonaws.com"}?,
 *    "transactionId":"<txn_id in decimal>"?}
 *
 * Members appear in this order. Images follow the view type (spec 7.7):
 * NewImage for INSERT/MODIFY under NEW_IMAGE and NEW_AND_OLD_IMAGES,
 * OldImage for MODIFY/REMOVE under OLD_IMAGE and NEW_AND_OLD_IMAGES, never
 * under KEYS_ONLY; an image is the whole item (a key-only item gives an image
 * of just the key). Keys are always present.
 * ApproximateCreationDateTime is commit_us / 1e6 rounded DOWN (towards minus
 * infinity) to whole seconds, a JSON integer. eventID is the first 16
 * bytes of SHA-256(table_id, lsn, commit_us, table name) in hex: a
 * re-delivered record has the same id, and two data directories' records
 * (whose table ids and LSNs both start at 1) do not share one. SizeBytes is
 * trb_item_size(Keys) plus trb_item_size of each image in this record.
 * transactionId (an extension; clients ignore unknown members) is present
 * only when txn_id != 0. userIdentity is present only on a REMOVE made by
 * Time to Live (flags has TRB_WAL_F_TTL), as DynamoDB Streams marks them.
 *
 * Errors: TRB_EINVAL for NULL arguments, an unknown view, a NULL or
 * non-UTF-8 region or a non-item kind; TRB_ECORRUPT, naming the LSN and the
 * part, when the keys or an image this view includes is missing, does not
 * decode, is not a map, or holds a string or attribute name that is not
 * UTF-8 (JSON cannot carry it);
 * TRB_EVERSION when one is in an item encoding newer than this build reads
 * (not corrupt, just unreadable here). Images the view leaves out are not
 * decoded (nor checked). TRB_ENOMEM.
 */
trb_err trb_stream_record(const trb_wal_rec *r, const trb_stream_rec_opts *o, json_t **out,
                          trb_status *st);

/* The same record as compact JSON text appended to out (caller-owned):
 * byte for byte what json_dumps(record, JSON_COMPACT | JSON_PRESERVE_ORDER)
 * gives for trb_stream_record's object, built without a jansson tree. The
 * same errors; on failure out->len is as it was. */
trb_err trb_stream_record_text(const trb_wal_rec *r, const trb_stream_rec_opts *o, trb_buf *out,
                               trb_status *st);

/*
 * One record as one human-readable line (no trailing newline) for
 * `tributary stream tail --format pretty`:
 *
 *   2026-12-01T21:06:52.123456Z  100000000000000000042  MODIFY  {"id":{"S":"a"}}  old={...}  new={...}
 *
 * UTC time with microseconds from commit_us, the sequence number, the event
 * name ("REMOVE(ttl)" for a delete made by Time to Live) and the keys as compact DynamoDB JSON, then "old=<image>" and
 * "new=<image>" for the images the view type includes, in that order, by the
 * same rules as trb_stream_record; fields are separated by two spaces. o->region is not used and may be
 * NULL. r and o are borrowed; the caller frees the result (free()). NULL on
 * OOM or on any input trb_stream_record would refuse.
 */
char *trb_stream_record_pretty(const trb_wal_rec *r, const trb_stream_rec_opts *o);

#endif
