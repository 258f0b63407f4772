/*
 * avro_envelope.h -- item changes as Avro: a Debezium-style envelope for
 * the message value, the item's key for the message key, and the two
 * framings Kafka consumers expect.
 *
 * Where it sits: the Kafka sink reads WAL item records (capture/wal.h) and
 * hands each to trb_avro_encode_change() for the value and to
 * trb_avro_encode_change_key() for the key; a snapshot (the initial load of
 * a table) uses trb_avro_encode_read(). The schemas are
 * schemas/tributary-envelope.avsc and schemas/tributary-key.avsc, compiled
 * in; the README's "Avro schema" section describes them for people.
 *
 * Value (io.tributary.Envelope), fields in this order:
 *   before     ["null", map<AttributeValue>]  whole old item: u, d
 *   after      ["null", map<AttributeValue>]  whole new item: c, u, r
 *   source     io.tributary.Source {table, region, shard_id,
 *              sequence_number (trb_seqno_format), lsn (an Avro long:
 *              LSNs stay below 2^63), txn_id (["null","string"], decimal,
 *              null when 0), commit_us, ts_ms}
 *   op         "c" INSERT, "u" MODIFY, "d" REMOVE, "r" snapshot read
 *   ts_ms      floor(commit_us / 1000)
 *   eventName  "INSERT" | "MODIFY" | "REMOVE" (DynamoDB Streams'; a
 *              snapshot read says "INSERT")
 * Key (io.tributary.Key): {attributes: map<AttributeValue>}, the item's
 * key attributes with map entries sorted by name (bytewise, shorter
 * first), so equal keys are equal bytes whatever order they were built in.
 *
 * io.tributary.AttributeValue is a record of ten optional fields named
 * after the DynamoDB types, in trb_type order (S N B BOOL NULL M L SS NS
 * BS); exactly one is non-null. N and NS are the canonical decimal text of
 * trb_dec_format (exact: no floating point anywhere), B and BS are bytes,
 * NULL is true, sets keep their element order and stay distinct from L.
 *
 * Every encoder writes the Avro binary encoding of one datum with no
 * framing; put a frame in front with trb_avro_frame_single() (Avro
 * single-object encoding, when no schema registry is configured) or
 * trb_avro_frame_confluent() (Confluent wire format, with the id the
 * registry gave the schema) BEFORE encoding into the same buffer:
 *
 *   single object:  C3 01 | fingerprint, 8 bytes little-endian | datum
 *   Confluent:      00    | schema id, 4 bytes big-endian      | datum
 *
 * Thread-safety: a trb_avro is immutable after trb_avro_create; every
 * function here may be called on one handle from any number of threads at
 * once (each with its own output buffer). Encoding does no I/O and keeps
 * no state between calls.
 *
 * Output buffers: encoders append to out; on failure out->len is back
 * where it was, so a caller can frame, encode, and on error drop the frame
 * with trb_buf_reset or its own saved length.
 */
#ifndef TRB_AVRO_ENVELOPE_H
#define TRB_AVRO_ENVELOPE_H

#include <stdint.h>

#include "capture/wal.h"
#include "engine/value.h"
#include "util/buf.h"
#include "util/trb_err.h"

/*
 * CRC-64-AVRO (the Rabin fingerprint of the Avro spec) of each schema's
 * Parsing Canonical Form. The encoder is written for exactly these
 * schemas: trb_avro_create refuses (TRB_EINTERNAL) when the compiled-in
 * text no longer has this fingerprint, so a schema edited without the
 * encoder (and these numbers) fails loudly, not on the consumer's side.
 */
#define TRB_AVRO_VALUE_FINGERPRINT UINT64_C(0xdd7e9c5aa49c0756)
#define TRB_AVRO_KEY_FINGERPRINT UINT64_C(0xb59374152de4d7d5)

/* Frame sizes in bytes. */
#define TRB_AVRO_SINGLE_HDR 10
#define TRB_AVRO_CONFLUENT_HDR 5

typedef struct trb_avro trb_avro;

/*
 * Parses the two compiled-in schemas (avro-c), derives their Parsing
 * Canonical Forms and fingerprints, and checks them against the constants
 * above. *out is caller-owned (trb_avro_destroy); on failure *out is NULL
 * and st says why (TRB_ENOMEM, or TRB_EINTERNAL for a schema that does not
 * parse or whose fingerprint changed).
 */
trb_err trb_avro_create(trb_avro **out, trb_status *st);
/* Frees everything. NULL is a no-op. */
void trb_avro_destroy(trb_avro *a);

/* The schema JSON as shipped in schemas/ (with its docs): what to register
 * with a schema registry. Owned by the handle, valid until destroy. */
const char *trb_avro_value_schema(const trb_avro *a);
const char *trb_avro_key_schema(const trb_avro *a);
/* The Parsing Canonical Form (Avro spec) of each schema, the text the
 * fingerprints are computed over. Owned by the handle. */
const char *trb_avro_value_schema_canonical(const trb_avro *a);
const char *trb_avro_key_schema_canonical(const trb_avro *a);
/* CRC-64-AVRO of the canonical forms (== the constants above). */
uint64_t trb_avro_value_fingerprint(const trb_avro *a);
uint64_t trb_avro_key_fingerprint(const trb_avro *a);

/* The Parsing Canonical Form (*pcf, malloc'ed) and CRC-64-AVRO
 * fingerprint of any schema text (a projection's, transform/avro_projection.h).
 * TRB_EINTERNAL when avro-c does not parse it. */
trb_err trb_avro_schema_canonical(const char *text, size_t len, char **pcf, uint64_t *fp,
                                  trb_status *st);

/* What the envelope's source says beyond the WAL record. Borrowed for the
 * call; every string NUL-terminated UTF-8. */
typedef struct trb_avro_source {
  const char *table;    /* NULL: the WAL record's table name (required,
                           non-NULL, for trb_avro_encode_read) */
  const char *region;   /* awsRegion; NULL gives "" */
  const char *shard_id; /* the stream shard of the change; NULL gives "" */
} trb_avro_source;

/*
 * Appends the Avro binary of the envelope of one WAL item record (kind
 * INSERT, MODIFY or REMOVE) to out. r, src and out are borrowed; src may be
 * NULL (every member NULL). Images go as the op says (c: after = new
 * image; u: both; d: before = old image), each the whole item as the WAL
 * has it, entries in the item's order. The images are read straight from
 * their bytes (no trb_av tree), refusing exactly what trb_av_decode
 * refuses.
 * Errors: TRB_EINVAL for NULL a/r/out, a non-item kind, or a src string
 * (or the record's table name) that is not UTF-8; TRB_ECORRUPT, naming the
 * LSN and the part, when an image the op needs is missing, does not
 * decode, is not a map, or holds a string or attribute name that is not
 * UTF-8; TRB_EVERSION for an image in an item encoding newer than this
 * build reads; TRB_ENOMEM / TRB_ELIMIT from out.
 */
trb_err trb_avro_encode_change(const trb_avro *a, const trb_wal_rec *r,
                               const trb_avro_source *src, trb_buf *out, trb_status *st);

/*
 * A snapshot read (op "r", eventName "INSERT"): after = item, before null,
 * txn_id null; lsn and commit_us are the snapshot point's (sequence_number
 * is trb_seqno_format(lsn)). item (a TRB_T_M) and src (src->table
 * required) are borrowed. TRB_EINVAL for a NULL argument, an item that is
 * not a map, nests deeper than TRB_MAX_DEPTH, holds a set element of the
 * wrong type, or a string or name that is not UTF-8; TRB_ENOMEM /
 * TRB_ELIMIT.
 */
trb_err trb_avro_encode_read(const trb_avro *a, const trb_av *item, uint64_t lsn,
                             int64_t commit_us, const trb_avro_source *src, trb_buf *out,
                             trb_status *st);

/*
 * Appends the Avro binary of io.tributary.Key for the key map keys (a
 * TRB_T_M, borrowed), entries sorted by name at every level, so the bytes
 * depend only on the key's value. Errors as trb_avro_encode_read.
 */
trb_err trb_avro_encode_key(const trb_avro *a, const trb_av *keys, trb_buf *out,
                            trb_status *st);
/* The same for the keys of a WAL item record (r->keys, decoded here).
 * Errors as trb_avro_encode_change (the part is "Keys"). */
trb_err trb_avro_encode_change_key(const trb_avro *a, const trb_wal_rec *r, trb_buf *out,
                                   trb_status *st);

/*
 * Frames: append the header of the framing to out, to be followed by the
 * datum (encode into the same buffer right after). TRB_ENOMEM / TRB_ELIMIT
 * from out (nothing appended then).
 *   single:    C3 01, then fingerprint as 8 bytes little-endian (the Avro
 *              spec's single-object encoding);
 *   confluent: 00, then schema_id as 4 bytes big-endian (the Confluent
 *              schema registry's wire format).
 */
trb_err trb_avro_frame_single(uint64_t fingerprint, trb_buf *out);
trb_err trb_avro_frame_confluent(uint32_t schema_id, trb_buf *out);

#endif
