/*
 * avro_envelope.c -- WAL item changes as Avro envelopes and keys (see
 * avro_envelope.h for the contract and the schemas' shape).
 *
 * Where it sits: a transform/ encoder. The Kafka sink frames and encodes
 * each change with the functions here; nothing here does I/O.
 *
 * Why the binary is written by hand. avro-c parses the schemas (at create,
 * once) and the test suite reads every datum back with avro-c's reader and
 * with python3-avro; but the datums themselves are written here, because
 * avro-c's generic values allocate per union branch, per map entry and per
 * string (a recursive AttributeValue is all unions), which costs several
 * times the encoding itself. Two writers produce the same bytes: one from
 * a trb_av tree (snapshot reads and keys, whose entries it sorts), one
 * straight from the WAL's binary item encoding (images, with no tree in
 * between; see "straight from the binary item encoding" below). The Avro
 * binary encoding of these schemas is small enough to write directly
 * (spec, "Binary Encoding"):
 *
 *   long       zig-zag ((n << 1) ^ (n >> 63)), then unsigned LEB128 varint
 *   string     long byte count, then the UTF-8 bytes
 *   bytes      long byte count, then the bytes
 *   boolean    one byte, 0 or 1
 *   union      long branch index (0 = "null": one byte 00; 1: one byte 02),
 *              then the branch's value
 *   record     its fields in schema order, nothing else
 *   map/array  blocks: long count, then that many entries (map: string key
 *              then value), ...; a count of 0 ends it. Written here as at
 *              most one block and the terminating 0 (an empty map or array
 *              is the single byte 00), as avro-c and python3-avro write them
 *              too, so they give the same bytes for the same datum.
 *
 * So an AttributeValue of type t (1..10 = trb_type = its field's position)
 * is t-1 bytes 00 (the null fields before it), one byte 02, the value, and
 * 10-t bytes 00. The envelope is before, after (each 00, or 02 and a map),
 * source's eight fields, op, ts_ms, eventName, userIdentity (00, or 02 and a
 * string). The encoder is correct for
 * exactly the schemas compiled in below, which is why trb_avro_create
 * checks their fingerprints against TRB_AVRO_*_FINGERPRINT: change a
 * schema and the numbers, and this file, must change together.
 *
 * Parsing Canonical Form and fingerprints (spec, "Schema Fingerprints"):
 * the canonical form is derived from avro-c's parsed schema (not from the
 * text), and hashed with CRC-64-AVRO: empty = 0xc15d213aa4d7a795; for each
 * byte b, fp = (fp >> 8) ^ T[(fp ^ b) & 0xff], where T[i] is i shifted
 * right 8 times, xoring in `empty` whenever the bit shifted out is 1.
 *
 * The schema texts below are schemas/tributary-*.avsc as C strings, one
 * line per line; they must equal the files byte for byte
 * (tests/unit/test_avro_envelope.c checks).
 */
#include "transform/avro_envelope.h"

#include <avro.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transform/stream_record.h"
#include "util/utf8.h"

/* ---- the schemas (schemas/tributary-*.avsc; keep them equal) ---- */

/* clang-format off */
static const char envelope_avsc[] =
    "{\n"
    "  \"type\": \"record\",\n"
    "  \"name\": \"Envelope\",\n"
    "  \"namespace\": \"io.tributary\",\n"
    "  \"doc\": \"One committed change of a tributary table, as a Debezium-style envelope that also carries DynamoDB Streams' eventName. op: c = INSERT (after only), u = MODIFY (before and after), d = REMOVE (before only), r = a snapshot read (after only).\",\n"
    "  \"fields\": [\n"
    "    {\n"
    "      \"name\": \"before\",\n"
    "      \"doc\": \"The whole item before the change (u, d); null for c and r.\",\n"
    "      \"type\": [\"null\", {\n"
    "        \"type\": \"map\",\n"
    "        \"values\": {\n"
    "          \"type\": \"record\",\n"
    "          \"name\": \"AttributeValue\",\n"
    "          \"doc\": \"One DynamoDB attribute value. Exactly one field is non-null and it names the type. N and NS hold exact decimal text (never floating point); B and BS hold raw bytes; sets (SS, NS, BS) are distinct from lists (L); NULL is always true.\",\n"
    "          \"fields\": [\n"
    "            {\"name\": \"S\", \"type\": [\"null\", \"string\"], \"default\": null},\n"
    "            {\"name\": \"N\", \"type\": [\"null\", \"string\"], \"default\": null},\n"
    "            {\"name\": \"B\", \"type\": [\"null\", \"bytes\"], \"default\": null},\n"
    "            {\"name\": \"BOOL\", \"type\": [\"null\", \"boolean\"], \"default\": null},\n"
    "            {\"name\": \"NULL\", \"type\": [\"null\", \"boolean\"], \"default\": null},\n"
    "            {\"name\": \"M\", \"type\": [\"null\", {\"type\": \"map\", \"values\": \"io.tributary.AttributeValue\"}], \"default\": null},\n"
    "            {\"name\": \"L\", \"type\": [\"null\", {\"type\": \"array\", \"items\": \"io.tributary.AttributeValue\"}], \"default\": null},\n"
    "            {\"name\": \"SS\", \"type\": [\"null\", {\"type\": \"array\", \"items\": \"string\"}], \"default\": null},\n"
    "            {\"name\": \"NS\", \"type\": [\"null\", {\"type\": \"array\", \"items\": \"string\"}], \"default\": null},\n"
    "            {\"name\": \"BS\", \"type\": [\"null\", {\"type\": \"array\", \"items\": \"bytes\"}], \"default\": null}\n"
    "          ]\n"
    "        }\n"
    "      }],\n"
    "      \"default\": null\n"
    "    },\n"
    "    {\n"
    "      \"name\": \"after\",\n"
    "      \"doc\": \"The whole item after the change (c, u, r); null for d.\",\n"
    "      \"type\": [\"null\", {\"type\": \"map\", \"values\": \"io.tributary.AttributeValue\"}],\n"
    "      \"default\": null\n"
    "    },\n"
    "    {\n"
    "      \"name\": \"source\",\n"
    "      \"doc\": \"Where the change comes from.\",\n"
    "      \"type\": {\n"
    "        \"type\": \"record\",\n"
    "        \"name\": \"Source\",\n"
    "        \"fields\": [\n"
    "          {\"name\": \"table\", \"type\": \"string\", \"doc\": \"The table name.\"},\n"
    "          {\"name\": \"region\", \"type\": \"string\", \"doc\": \"The awsRegion of the stream records.\"},\n"
    "          {\"name\": \"shard_id\", \"type\": \"string\", \"doc\": \"The stream shard (DynamoDB Streams ShardId) holding the change; empty when none.\"},\n"
    "          {\"name\": \"sequence_number\", \"type\": \"string\", \"doc\": \"The DynamoDB Streams SequenceNumber (21 decimal digits; sorts like lsn).\"},\n"
    "          {\"name\": \"lsn\", \"type\": \"long\", \"doc\": \"The log sequence number of the change in the WAL.\"},\n"
    "          {\"name\": \"txn_id\", \"type\": [\"null\", \"string\"], \"default\": null, \"doc\": \"The transaction id (decimal) when the change is part of a transaction.\"},\n"
    "          {\"name\": \"commit_us\", \"type\": \"long\", \"doc\": \"Commit time, microseconds since the Unix epoch.\"},\n"
    "          {\"name\": \"ts_ms\", \"type\": \"long\", \"doc\": \"Commit time, milliseconds since the Unix epoch (Debezium's source.ts_ms).\"}\n"
    "        ]\n"
    "      }\n"
    "    },\n"
    "    {\"name\": \"op\", \"type\": \"string\", \"doc\": \"c, u, d or r.\"},\n"
    "    {\"name\": \"ts_ms\", \"type\": \"long\", \"doc\": \"Commit time, milliseconds since the Unix epoch (floor of commit_us / 1000).\"},\n"
    "    {\"name\": \"eventName\", \"type\": \"string\", \"doc\": \"DynamoDB Streams' eventName: INSERT, MODIFY or REMOVE (INSERT for a snapshot read).\"},\n"
    "    {\"name\": \"userIdentity\", \"type\": [\"null\", \"string\"], \"default\": null, \"doc\": \"Who made the change when it was not a client: dynamodb.amazonaws.com for an item deleted by Time to Live (DynamoDB Streams' userIdentity, Type Service); null otherwise.\"}\n"
    "  ]\n"
    "}\n";

static const char key_avsc[] =
    "{\n"
    "  \"type\": \"record\",\n"
    "  \"name\": \"Key\",\n"
    "  \"namespace\": \"io.tributary\",\n"
    "  \"doc\": \"The key of a changed item: its key attributes (partition key and, if the table has one, sort key), entries written sorted by attribute name so that equal keys are equal bytes.\",\n"
    "  \"fields\": [\n"
    "    {\n"
    "      \"name\": \"attributes\",\n"
    "      \"type\": {\n"
    "        \"type\": \"map\",\n"
    "        \"values\": {\n"
    "          \"type\": \"record\",\n"
    "          \"name\": \"AttributeValue\",\n"
    "          \"doc\": \"One DynamoDB attribute value. Exactly one field is non-null and it names the type. N and NS hold exact decimal text (never floating point); B and BS hold raw bytes; sets (SS, NS, BS) are distinct from lists (L); NULL is always true.\",\n"
    "          \"fields\": [\n"
    "            {\"name\": \"S\", \"type\": [\"null\", \"string\"], \"default\": null},\n"
    "            {\"name\": \"N\", \"type\": [\"null\", \"string\"], \"default\": null},\n"
    "            {\"name\": \"B\", \"type\": [\"null\", \"bytes\"], \"default\": null},\n"
    "            {\"name\": \"BOOL\", \"type\": [\"null\", \"boolean\"], \"default\": null},\n"
    "            {\"name\": \"NULL\", \"type\": [\"null\", \"boolean\"], \"default\": null},\n"
    "            {\"name\": \"M\", \"type\": [\"null\", {\"type\": \"map\", \"values\": \"io.tributary.AttributeValue\"}], \"default\": null},\n"
    "            {\"name\": \"L\", \"type\": [\"null\", {\"type\": \"array\", \"items\": \"io.tributary.AttributeValue\"}], \"default\": null},\n"
    "            {\"name\": \"SS\", \"type\": [\"null\", {\"type\": \"array\", \"items\": \"string\"}], \"default\": null},\n"
    "            {\"name\": \"NS\", \"type\": [\"null\", {\"type\": \"array\", \"items\": \"string\"}], \"default\": null},\n"
    "            {\"name\": \"BS\", \"type\": [\"null\", {\"type\": \"array\", \"items\": \"bytes\"}], \"default\": null}\n"
    "          ]\n"
    "        }\n"
    "      }\n"
    "    }\n"
    "  ]\n"
    "}\n";
/* clang-format on */

struct trb_avro {
  char *value_pcf, *key_pcf; /* owned, NUL-terminated */
  uint64_t value_fp, key_fp;
};

/* ---- CRC-64-AVRO ---- */

#define CRC64_AVRO_EMPTY UINT64_C(0xc15d213aa4d7a795)

/* Bitwise (no table): it runs twice per create, over about 2 KB. */
static uint64_t crc64_avro(const char *p, size_t n) {
  uint64_t fp = CRC64_AVRO_EMPTY;
  for (size_t i = 0; i < n; i++) {
    uint64_t x = (fp ^ (unsigned char)p[i]) & 0xff;
    for (int k = 0; k < 8; k++) x = (x >> 1) ^ (CRC64_AVRO_EMPTY & (0 - (x & 1)));
    fp = (fp >> 8) ^ x;
  }
  return fp;
}

/* ---- Parsing Canonical Form from avro-c's schema ---- */

/* The named types already written in full (by pointer): a later reference
 * (avro-c gives every reference as a link) is written as the full name. */
typedef struct pcf_ctx {
  trb_buf *b;
  avro_schema_t seen[16];
  size_t nseen;
  int err;
} pcf_ctx;

static void pcf_str(pcf_ctx *c, const char *s) {
  if (!c->err && trb_buf_append(c->b, s, strlen(s))) c->err = 1;
}

/* A JSON string of a name or symbol. Avro names are [A-Za-z_][A-Za-z0-9_]*
 * (dotted for full names), so nothing needs escaping; refuse anything
 * else rather than guess. */
static void pcf_quoted(pcf_ctx *c, const char *ns, const char *name) {
  for (const char *p = name; *p; p++)
    if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) c->err = 1;
  pcf_str(c, "\"");
  if (ns && *ns) {
    pcf_str(c, ns);
    pcf_str(c, ".");
  }
  pcf_str(c, name);
  pcf_str(c, "\"");
}

static void pcf_schema(pcf_ctx *c, avro_schema_t s, int depth) {
  if (c->err) return;
  if (depth > 64) {
    c->err = 1;
    return;
  }
  if (is_avro_link(s)) s = avro_schema_link_target(s);
  if (is_avro_named_type(s)) {
    for (size_t i = 0; i < c->nseen; i++)
      if (c->seen[i] == s) {
        pcf_quoted(c, avro_schema_namespace(s), avro_schema_name(s));
        return;
      }
    if (c->nseen == sizeof c->seen / sizeof c->seen[0]) {
      c->err = 1;
      return;
    }
    c->seen[c->nseen++] = s;
    pcf_str(c, "{\"name\":");
    pcf_quoted(c, avro_schema_namespace(s), avro_schema_name(s));
  }
  switch (avro_typeof(s)) {
    case AVRO_STRING: pcf_str(c, "\"string\""); break;
    case AVRO_BYTES: pcf_str(c, "\"bytes\""); break;
    case AVRO_INT32: pcf_str(c, "\"int\""); break;
    case AVRO_INT64: pcf_str(c, "\"long\""); break;
    case AVRO_FLOAT: pcf_str(c, "\"float\""); break;
    case AVRO_DOUBLE: pcf_str(c, "\"double\""); break;
    case AVRO_BOOLEAN: pcf_str(c, "\"boolean\""); break;
    case AVRO_NULL: pcf_str(c, "\"null\""); break;
    case AVRO_RECORD:
      pcf_str(c, ",\"type\":\"record\",\"fields\":[");
      for (size_t i = 0; i < avro_schema_record_size(s); i++) {
        pcf_str(c, i ? ",{\"name\":" : "{\"name\":");
        pcf_quoted(c, NULL, avro_schema_record_field_name(s, (int)i));
        pcf_str(c, ",\"type\":");
        pcf_schema(c, avro_schema_record_field_get_by_index(s, (int)i), depth + 1);
        pcf_str(c, "}");
      }
      pcf_str(c, "]}");
      break;
    case AVRO_ENUM:
      pcf_str(c, ",\"type\":\"enum\",\"symbols\":[");
      for (int i = 0; i < avro_schema_enum_number_of_symbols(s); i++) {
        if (i) pcf_str(c, ",");
        pcf_quoted(c, NULL, avro_schema_enum_get(s, i));
      }
      pcf_str(c, "]}");
      break;
    case AVRO_FIXED: {
      char n[32];
      snprintf(n, sizeof n, "%" PRId64, avro_schema_fixed_size(s));
      pcf_str(c, ",\"type\":\"fixed\",\"size\":");
      pcf_str(c, n);
      pcf_str(c, "}");
      break;
    }
    case AVRO_MAP:
      pcf_str(c, "{\"type\":\"map\",\"values\":");
      pcf_schema(c, avro_schema_map_values(s), depth + 1);
      pcf_str(c, "}");
      break;
    case AVRO_ARRAY:
      pcf_str(c, "{\"type\":\"array\",\"items\":");
      pcf_schema(c, avro_schema_array_items(s), depth + 1);
      pcf_str(c, "}");
      break;
    case AVRO_UNION:
      pcf_str(c, "[");
      for (size_t i = 0; i < avro_schema_union_size(s); i++) {
        if (i) pcf_str(c, ",");
        pcf_schema(c, avro_schema_union_branch(s, (int)i), depth + 1);
      }
      pcf_str(c, "]");
      break;
    default:
      c->err = 1;
  }
}

/* Parses text with avro-c and returns its canonical form (malloc'ed). */
static trb_err canonical_form(const char *what, const char *text, size_t len, char **out,
                              trb_status *st) {
  avro_schema_t s = NULL;
  if (avro_schema_from_json_length(text, len, &s))
    return trb_status_set(st, TRB_EINTERNAL, "the compiled-in %s schema does not parse: %s",
                          what, avro_strerror());
  trb_buf b;
  trb_buf_init(&b, 0);
  pcf_ctx c = {.b = &b};
  pcf_schema(&c, s, 0);
  avro_schema_decref(s);
  if (c.err || trb_buf_put_u8(&b, 0)) {
    trb_buf_fini(&b);
    return trb_status_set(st, TRB_EINTERNAL,
                          "cannot derive the canonical form of the %s schema", what);
  }
  *out = (char *)trb_buf_steal(&b, NULL);
  return TRB_OK;
}

trb_err trb_avro_schema_canonical(const char *text, size_t len, char **pcf, uint64_t *fp,
                                  trb_status *st) {
  trb_err rc = canonical_form("derived", text, len, pcf, st);
  if (!rc) *fp = crc64_avro(*pcf, strlen(*pcf));
  return rc;
}

/* ---- the handle ---- */

trb_err trb_avro_create(trb_avro **out, trb_status *st) {
  if (!out) return trb_status_set(st, TRB_EINVAL, "no output pointer");
  *out = NULL;
  trb_avro *a = calloc(1, sizeof *a);
  if (!a) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  trb_err rc = canonical_form("value", envelope_avsc, sizeof envelope_avsc - 1, &a->value_pcf, st);
  if (!rc) rc = canonical_form("key", key_avsc, sizeof key_avsc - 1, &a->key_pcf, st);
  if (rc) goto fail;
  a->value_fp = crc64_avro(a->value_pcf, strlen(a->value_pcf));
  a->key_fp = crc64_avro(a->key_pcf, strlen(a->key_pcf));
  if (a->value_fp != TRB_AVRO_VALUE_FINGERPRINT || a->key_fp != TRB_AVRO_KEY_FINGERPRINT) {
    rc = trb_status_set(st, TRB_EINTERNAL,
                        "Avro schema fingerprints %016" PRIx64 "/%016" PRIx64
                        " differ from the ones the encoder is written for (%016" PRIx64
                        "/%016" PRIx64 ")",
                        a->value_fp, a->key_fp, TRB_AVRO_VALUE_FINGERPRINT,
                        TRB_AVRO_KEY_FINGERPRINT);
    goto fail;
  }
  *out = a;
  return TRB_OK;
fail:
  trb_avro_destroy(a);
  return rc;
}

void trb_avro_destroy(trb_avro *a) {
  if (!a) return;
  free(a->value_pcf);
  free(a->key_pcf);
  free(a);
}

const char *trb_avro_value_schema(const trb_avro *a) { return a ? envelope_avsc : NULL; }
const char *trb_avro_key_schema(const trb_avro *a) { return a ? key_avsc : NULL; }
const char *trb_avro_value_schema_canonical(const trb_avro *a) { return a ? a->value_pcf : NULL; }
const char *trb_avro_key_schema_canonical(const trb_avro *a) { return a ? a->key_pcf : NULL; }
uint64_t trb_avro_value_fingerprint(const trb_avro *a) { return a ? a->value_fp : 0; }
uint64_t trb_avro_key_fingerprint(const trb_avro *a) { return a ? a->key_fp : 0; }

/* ---- framing ---- */

trb_err trb_avro_frame_single(uint64_t fingerprint, trb_buf *out) {
  if (!out) return TRB_EINVAL;
  unsigned char h[TRB_AVRO_SINGLE_HDR] = {0xC3, 0x01};
  trb_put_u64(h + 2, fingerprint);
  return trb_buf_append(out, h, sizeof h);
}

trb_err trb_avro_frame_confluent(uint32_t schema_id, trb_buf *out) {
  if (!out) return TRB_EINVAL;
  unsigned char h[TRB_AVRO_CONFLUENT_HDR] = {0x00, (unsigned char)(schema_id >> 24),
                                             (unsigned char)(schema_id >> 16),
                                             (unsigned char)(schema_id >> 8),
                                             (unsigned char)schema_id};
  return trb_buf_append(out, h, sizeof h);
}

/* ---- Avro binary primitives ---- */

#define AVRO_NULL_BRANCH 0x00  /* zig-zag(0): the "null" of ["null", X] */
#define AVRO_VALUE_BRANCH 0x02 /* zig-zag(1): its X */
#define AV_FIELDS 10           /* fields of io.tributary.AttributeValue */

/* Room for n more bytes, skipping the call when it is there. */
static inline trb_err room(trb_buf *b, size_t n) {
  if (n <= b->cap - b->len && n <= b->max - b->len) return TRB_OK;
  return trb_buf_reserve(b, n);
}

static inline unsigned char *put_varint(unsigned char *w, uint64_t v) {
  while (v >= 0x80) {
    *w++ = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  *w++ = (unsigned char)v;
  return w;
}

static inline uint64_t zigzag(int64_t v) {
  return ((uint64_t)v << 1) ^ (0 - ((uint64_t)v >> 63));
}

static trb_err put_long(trb_buf *b, int64_t v) {
  trb_err rc = room(b, 10);
  if (rc) return rc;
  b->len = (size_t)(put_varint(b->p + b->len, zigzag(v)) - b->p);
  return TRB_OK;
}

/* string or bytes: the count, then the bytes, with one reservation. */
static inline trb_err put_bytes(trb_buf *b, const void *p, size_t n) {
  if (n > (size_t)INT64_MAX - 32) return TRB_ELIMIT;
  trb_err rc = room(b, 10 + n);
  if (rc) return rc;
  unsigned char *w = put_varint(b->p + b->len, (uint64_t)n << 1);
  if (n) memcpy(w, p, n);
  b->len = (size_t)(w + n - b->p);
  return TRB_OK;
}

static trb_err put_cstr(trb_buf *b, const char *s) { return put_bytes(b, s, strlen(s)); }

static trb_err put_byte(trb_buf *b, unsigned char v) {
  trb_err rc = room(b, 1);
  if (rc) return rc;
  b->p[b->len++] = v;
  return TRB_OK;
}

/* The head of an AttributeValue of type t: the t-1 null fields before its
 * own, and its own field's branch index. Needs room for AV_FIELDS bytes. */
static inline unsigned char *av_head(unsigned char *w, trb_type t) {
  memset(w, AVRO_NULL_BRANCH, (size_t)t - 1);
  w += t - 1;
  *w++ = AVRO_VALUE_BRANCH;
  return w;
}

/* Its tail: the null fields after its own. */
static inline unsigned char *av_tail(unsigned char *w, trb_type t) {
  memset(w, AVRO_NULL_BRANCH, (size_t)(AV_FIELDS - t));
  return w + (AV_FIELDS - t);
}

/* A whole AttributeValue of type S, N or B holding p[0..n): one
 * reservation, head, count, bytes, tail. */
static trb_err put_av_counted(trb_buf *b, trb_type t, const void *p, size_t n) {
  if (n > (size_t)INT64_MAX - 32) return TRB_ELIMIT;
  trb_err rc = room(b, AV_FIELDS + 10 + n);
  if (rc) return rc;
  unsigned char *w = put_varint(av_head(b->p + b->len, t), (uint64_t)n << 1);
  if (n) memcpy(w, p, n);
  b->len = (size_t)(av_tail(w + n, t) - b->p);
  return TRB_OK;
}

/* A whole AttributeValue of type BOOL or NULL: head, one byte, tail. */
static trb_err put_av_byte(trb_buf *b, trb_type t, unsigned char v) {
  trb_err rc = room(b, AV_FIELDS + 1);
  if (rc) return rc;
  unsigned char *w = av_head(b->p + b->len, t);
  *w++ = v;
  b->len = (size_t)(av_tail(w, t) - b->p);
  return TRB_OK;
}

/* The head of an AttributeValue container (M, L or a set) and the count of
 * its one block (none for an empty one: its single 00 is the end). */
static trb_err put_av_open(trb_buf *b, trb_type t, size_t n) {
  trb_err rc = room(b, AV_FIELDS + 10);
  if (rc) return rc;
  unsigned char *w = av_head(b->p + b->len, t);
  if (n) w = put_varint(w, (uint64_t)n << 1);
  b->len = (size_t)(w - b->p);
  return TRB_OK;
}

/* The end of the block list (00) and the tail. */
static trb_err put_av_close(trb_buf *b, trb_type t) {
  trb_err rc = room(b, AV_FIELDS);
  if (rc) return rc;
  unsigned char *w = b->p + b->len;
  *w++ = 0;
  b->len = (size_t)(av_tail(w, t) - b->p);
  return TRB_OK;
}

/* ---- UTF-8 ---- */

/* ---- the encoder's state and its refusals ---- */

/* Why a value could not be encoded (TRB_EINVAL), for the caller's message:
 * the caller decides whether that is its own caller's fault or a damaged
 * WAL record (TRB_ECORRUPT). */
typedef enum bad_value {
  BAD_NONE = 0,
  BAD_UTF8,
  BAD_DEPTH,
  BAD_SET_ELEMENT,
  BAD_TYPE,
  BAD_NUMBER,
} bad_value;

static const char *bad_value_text(bad_value w) {
  switch (w) {
    case BAD_UTF8: return "holds a string or attribute name that is not valid UTF-8";
    case BAD_DEPTH: return "nests deeper than 32 levels";
    case BAD_SET_ELEMENT: return "holds a set element of the wrong type";
    case BAD_TYPE: return "holds a value of an unknown type";
    case BAD_NUMBER: return "holds a number out of DynamoDB's range or precision";
    default: return "cannot be encoded";
  }
}

typedef struct enc {
  trb_buf *b;
  int sorted;    /* tree encoder: map entries sorted by name (keys) */
  bad_value bad; /* why, when the result is TRB_EINVAL */
} enc;

static trb_err refuse(enc *e, bad_value why) {
  e->bad = why;
  return TRB_EINVAL;
}

/* A map key or S: UTF-8, then as a string. */
static trb_err enc_name(enc *e, const char *p, size_t n) {
  if (!trb_utf8_valid(p, n)) return refuse(e, BAD_UTF8);
  return put_bytes(e->b, p, n);
}

/*
 * A number's canonical text, exactly as trb_dec_format writes it (no
 * exponent: "1000", "-0.5", "0.001"), but with 64-bit arithmetic: the
 * coefficient is cut into two 19-digit halves with one 128-bit division
 * instead of one per digit (trb_dec_format's way took a seventh of an
 * envelope's time). The test compares the two on numbers of every length
 * and exponent. Returns the length, at most 1 + 2 + 129 + 38 for a number
 * in DynamoDB's range (out holds TRB_DEC_STR_MAX bytes), or 0 for a trb_dec
 * that is not canonical and in range (no codec or constructor makes one).
 */
#define E19 UINT64_C(10000000000000000000)
static size_t format_number(const trb_dec *d, char *out) {
  if (d->coef == 0) {
    out[0] = '0';
    return 1;
  }
  if (d->coef >= (unsigned __int128)E19 * E19) return 0; /* more than 38 digits */
  char digs[40]; /* most significant first */
  size_t nd = 0;
  char rev[20];
  uint64_t hi = (uint64_t)(d->coef / E19), lo = (uint64_t)(d->coef % E19);
  if (hi) {
    size_t k = 0;
    while (hi) rev[k++] = (char)('0' + hi % 10), hi /= 10;
    while (k) digs[nd++] = rev[--k];
    for (int i = 18; i >= 0; i--) digs[nd + (size_t)i] = (char)('0' + lo % 10), lo /= 10;
    nd += 19;
  } else {
    size_t k = 0;
    while (lo) rev[k++] = (char)('0' + lo % 10), lo /= 10;
    while (k) digs[nd++] = rev[--k];
  }
  size_t n = 0;
  int64_t exp = d->exp, adj = exp + (int64_t)nd - 1;
  if (adj < TRB_DEC_MIN_ADJEXP || adj > TRB_DEC_MAX_ADJEXP) return 0; /* out of range */
  if (d->neg) out[n++] = '-';
  if (exp >= 0) { /* digits, then exp zeros */
    memcpy(out + n, digs, nd);
    n += nd;
    memset(out + n, '0', (size_t)exp);
    n += (size_t)exp;
  } else if (adj >= 0) { /* a point inside the digits */
    size_t intd = (size_t)(adj + 1);
    memcpy(out + n, digs, intd);
    n += intd;
    out[n++] = '.';
    memcpy(out + n, digs + intd, nd - intd);
    n += nd - intd;
  } else { /* 0.000ddd */
    out[n++] = '0';
    out[n++] = '.';
    memset(out + n, '0', (size_t)(-adj - 1));
    n += (size_t)(-adj - 1);
    memcpy(out + n, digs, nd);
    n += nd;
  }
  return n;
}

/* A number's text as a string, bare or as a whole N. */
static trb_err enc_number(enc *e, const trb_dec *d, int whole_av) {
  char t[TRB_DEC_STR_MAX];
  size_t n = format_number(d, t);
  if (!n) return refuse(e, BAD_NUMBER);
  return whole_av ? put_av_counted(e->b, TRB_T_N, t, n) : put_bytes(e->b, t, n);
}

/* ---- from a trb_av tree (snapshot reads, keys) ---- */

static trb_err tree_av(enc *e, const trb_av *v, int depth);

static int attr_cmp(const void *x, const void *y) {
  const trb_attr *a = *(const trb_attr *const *)x, *b = *(const trb_attr *const *)y;
  size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
  int c = memcmp(a->name, b->name, n);
  if (c) return c;
  return a->name_len < b->name_len ? -1 : a->name_len > b->name_len;
}

static trb_err tree_entry(enc *e, const trb_attr *at, int depth) {
  trb_err rc = enc_name(e, at->name, at->name_len);
  return rc ? rc : tree_av(e, at->val, depth);
}

/* The entries of map m (at nesting depth `depth`; an item is 0) as one
 * block, without the end marker. */
static trb_err tree_entries(enc *e, const trb_av *m, int depth) {
  size_t n = m->u.m.n;
  trb_err rc = TRB_OK;
  if (!e->sorted || n < 2) {
    for (size_t i = 0; i < n && !rc; i++) rc = tree_entry(e, &m->u.m.e[i], depth + 1);
    return rc;
  }
  const trb_attr *stack[16], **ix = stack;
  if (n > sizeof stack / sizeof stack[0] && !(ix = malloc(n * sizeof *ix))) return TRB_ENOMEM;
  for (size_t i = 0; i < n; i++) ix[i] = &m->u.m.e[i];
  qsort(ix, n, sizeof *ix, attr_cmp);
  for (size_t i = 0; i < n && !rc; i++) rc = tree_entry(e, ix[i], depth + 1);
  if (ix != stack) free(ix);
  return rc;
}

/* A bare map<AttributeValue>: one block (when not empty) and the end. */
static trb_err tree_map(enc *e, const trb_av *m, int depth) {
  trb_err rc = TRB_OK;
  if (m->u.m.n && (rc = put_long(e->b, (int64_t)m->u.m.n))) return rc;
  if (!rc) rc = tree_entries(e, m, depth);
  return rc ? rc : put_byte(e->b, 0);
}

/* One io.tributary.AttributeValue. */
static trb_err tree_av(enc *e, const trb_av *v, int depth) {
  trb_type t = v->type;
  trb_err rc = TRB_OK;
  switch (t) {
    case TRB_T_S:
      if (!trb_utf8_valid(v->u.s.p, v->u.s.len)) return refuse(e, BAD_UTF8);
      return put_av_counted(e->b, t, v->u.s.p, v->u.s.len);
    case TRB_T_B: return put_av_counted(e->b, t, v->u.s.p, v->u.s.len);
    case TRB_T_N: return enc_number(e, &v->u.n, 1);
    case TRB_T_BOOL: return put_av_byte(e->b, t, v->u.b ? 1 : 0);
    case TRB_T_NULL: return put_av_byte(e->b, t, 1);
    case TRB_T_M:
      if (depth > TRB_MAX_DEPTH) return refuse(e, BAD_DEPTH);
      if ((rc = put_av_open(e->b, t, v->u.m.n)) || (rc = tree_entries(e, v, depth))) return rc;
      return put_av_close(e->b, t);
    case TRB_T_L:
      if (depth > TRB_MAX_DEPTH) return refuse(e, BAD_DEPTH);
      /* fall through */
    case TRB_T_SS:
    case TRB_T_NS:
    case TRB_T_BS: {
      trb_type et = t == TRB_T_SS ? TRB_T_S : t == TRB_T_NS ? TRB_T_N : t == TRB_T_BS ? TRB_T_B : 0;
      if ((rc = put_av_open(e->b, t, v->u.l.n))) return rc;
      for (size_t i = 0; i < v->u.l.n && !rc; i++) {
        const trb_av *x = v->u.l.v[i];
        if (!et)
          rc = tree_av(e, x, depth + 1);
        else if (x->type != et)
          rc = refuse(e, BAD_SET_ELEMENT);
        else if (et == TRB_T_S)
          rc = enc_name(e, x->u.s.p, x->u.s.len);
        else if (et == TRB_T_N)
          rc = enc_number(e, &x->u.n, 0);
        else
          rc = put_bytes(e->b, x->u.s.p, x->u.s.len);
      }
      return rc ? rc : put_av_close(e->b, t);
    }
  }
  return refuse(e, BAD_TYPE);
}

/* ---- straight from the binary item encoding (WAL images) ----
 *
 * The images of a WAL record go from engine/item_codec.c's bytes to Avro
 * without a trb_av tree: decoding into a tree allocates per value and per
 * name, and took more than half the time of an envelope. This reader
 * applies exactly the codec's validity rules (layout and rules at the top
 * of engine/item_codec.c: header, minimal varints, counts checked against
 * what remains, known tags, BOOL 0/1, numbers through trb_dec_decode, M/L
 * depth, no trailing bytes), so it accepts exactly what trb_av_decode
 * accepts; tests/unit/test_avro_envelope.c checks both on generated and on
 * damaged items. A new codec version is refused (TRB_EVERSION) until this
 * reader learns it. */

#define CODEC_MAGIC 0xA0
#define CODEC_VERSION 1

/* Minimal LEB128 (item_codec.c's rd_varint): nonzero on truncation, an
 * overlong form, or more than 64 bits. */
static inline int rd_varint(trb_rd *r, uint64_t *v) {
  const unsigned char *p = r->p + r->off;
  size_t left = r->len - r->off;
  if (left && p[0] < 0x80) {
    *v = p[0];
    r->off++;
    return 0;
  }
  uint64_t x = 0;
  for (size_t i = 0; i < 10; i++) {
    if (i >= left) return 1;
    uint64_t c = p[i];
    if (i == 9 && c > 1) return 1;
    x |= (c & 0x7f) << (7 * i);
    if (!(c & 0x80)) {
      if (c == 0) return 1;
      *v = x;
      r->off += i + 1;
      return 0;
    }
  }
  return 1;
}

/* A count of things of at least `per` bytes each, checked against what
 * remains. */
static inline int rd_count(trb_rd *r, size_t per, size_t *out) {
  uint64_t n;
  if (rd_varint(r, &n) || n > (r->len - r->off) / per) return 1;
  *out = (size_t)n;
  return 0;
}

/* Counted bytes: a borrowed pointer into r. */
static inline int rd_counted(trb_rd *r, const char **p, size_t *n) {
  if (rd_count(r, 1, n)) return 1;
  *p = (const char *)r->p + r->off;
  r->off += *n;
  return 0;
}

static trb_err wal_value(enc *e, trb_rd *r, int depth);

/* The entries of a map (its count already read) as one block, no end. */
static trb_err wal_entries(enc *e, trb_rd *r, size_t n, int depth) {
  trb_err rc = TRB_OK;
  for (size_t i = 0; i < n && !rc; i++) {
    const char *name;
    size_t nlen;
    if (rd_counted(r, &name, &nlen)) return TRB_ECORRUPT;
    if (!(rc = enc_name(e, name, nlen))) rc = wal_value(e, r, depth + 1);
  }
  return rc;
}

/* One value (tag and payload) as an AttributeValue; `depth` containers
 * above it. */
static trb_err wal_value(enc *e, trb_rd *r, int depth) {
  if (r->off >= r->len) return TRB_ECORRUPT;
  unsigned tag = r->p[r->off++];
  trb_err rc = TRB_OK;
  const char *p;
  size_t n, cnt;
  trb_dec d;
  switch (tag) {
    case TRB_T_S:
    case TRB_T_B:
      if (rd_counted(r, &p, &n)) return TRB_ECORRUPT;
      if (tag == TRB_T_S && !trb_utf8_valid(p, n)) return refuse(e, BAD_UTF8);
      return put_av_counted(e->b, (trb_type)tag, p, n);
    case TRB_T_N:
      if (trb_dec_decode(r, &d)) return TRB_ECORRUPT;
      return enc_number(e, &d, 1);
    case TRB_T_BOOL:
      if (r->off >= r->len || r->p[r->off] > 1) return TRB_ECORRUPT;
      return put_av_byte(e->b, TRB_T_BOOL, r->p[r->off++]);
    case TRB_T_NULL: return put_av_byte(e->b, TRB_T_NULL, 1);
    case TRB_T_M:
      if (depth > TRB_MAX_DEPTH || rd_count(r, 2, &cnt)) return TRB_ECORRUPT;
      if ((rc = put_av_open(e->b, TRB_T_M, cnt)) || (rc = wal_entries(e, r, cnt, depth)))
        return rc;
      return put_av_close(e->b, TRB_T_M);
    case TRB_T_L:
      if (depth > TRB_MAX_DEPTH) return TRB_ECORRUPT;
      /* fall through */
    case TRB_T_SS:
    case TRB_T_NS:
    case TRB_T_BS:
      if (rd_count(r, 1, &cnt)) return TRB_ECORRUPT;
      if ((rc = put_av_open(e->b, (trb_type)tag, cnt))) return rc;
      for (size_t i = 0; i < cnt && !rc; i++) {
        if (tag == TRB_T_L)
          rc = wal_value(e, r, depth + 1);
        else if (tag == TRB_T_NS)
          rc = trb_dec_decode(r, &d) ? TRB_ECORRUPT : enc_number(e, &d, 0);
        else if (rd_counted(r, &p, &n))
          rc = TRB_ECORRUPT;
        else
          rc = tag == TRB_T_SS ? enc_name(e, p, n) : put_bytes(e->b, p, n);
      }
      return rc ? rc : put_av_close(e->b, (trb_type)tag);
    default: return TRB_ECORRUPT;
  }
}

/* A whole encoded item (header, an M, nothing after) as a bare
 * map<AttributeValue>. TRB_ECORRUPT (with *tag the value's type when it is
 * a valid value but not an M), TRB_EVERSION, TRB_EINVAL (e->bad). */
static trb_err wal_item(enc *e, const void *img, size_t len, unsigned *tag) {
  trb_rd r;
  size_t cnt;
  *tag = 0;
  if (len < 1) return TRB_ECORRUPT;
  trb_rd_init(&r, img, len);
  unsigned hdr = r.p[0];
  if ((hdr & 0xF0) != CODEC_MAGIC) return TRB_ECORRUPT;
  if ((hdr & 0x0F) != CODEC_VERSION) return TRB_EVERSION;
  if (len < 2) return TRB_ECORRUPT;
  if (r.p[1] != TRB_T_M) {
    /* what it is, when it is a whole valid value: the codec says so */
    trb_av *v = NULL;
    if (trb_av_decode(img, len, &v) == TRB_OK) *tag = v->type;
    trb_av_destroy(v);
    return TRB_ECORRUPT;
  }
  r.off = 2;
  if (rd_count(&r, 2, &cnt)) return TRB_ECORRUPT;
  trb_err rc = TRB_OK;
  if (cnt && (rc = put_long(e->b, (int64_t)cnt))) return rc;
  if ((rc = wal_entries(e, &r, cnt, 0)) || (rc = put_byte(e->b, 0))) return rc;
  return r.off == r.len ? TRB_OK : TRB_ECORRUPT;
}

/* ---- the envelope ---- */

static int64_t floor_ms(int64_t us) {
  int64_t ms = us / 1000;
  return (us % 1000 < 0) ? ms - 1 : ms;
}

/* The fields of one envelope, from whichever entry point. An image is
 * either a tree or WAL bytes (img != NULL), or absent. */
typedef struct env_image {
  const trb_av *tree;
  const void *img;
  size_t len;
  const char *what; /* "OldImage" / "NewImage", for messages */
} env_image;

typedef struct env_fields {
  env_image before, after;
  const char *table;
  size_t table_len;
  const char *region, *shard_id;
  uint64_t lsn, txn_id;
  int64_t commit_us;
  const char *op, *event_name;
  const char *user_identity; /* NULL, or the PrincipalId of a TTL delete */
} env_fields;

/* ["null", map<AttributeValue>]. */
static trb_err enc_image(enc *e, const env_fields *f, const env_image *im, trb_status *st) {
  if (!im->tree && !im->img) return put_byte(e->b, AVRO_NULL_BRANCH);
  trb_err rc = put_byte(e->b, AVRO_VALUE_BRANCH);
  if (rc) return rc;
  if (im->tree) {
    rc = tree_map(e, im->tree, 0);
    if (rc == TRB_EINVAL)
      trb_status_set(st, rc, "the snapshot item %s", bad_value_text(e->bad));
    return rc;
  }
  unsigned tag = 0;
  rc = wal_item(e, im->img, im->len, &tag);
  unsigned long long lsn = (unsigned long long)f->lsn;
  if (rc == TRB_EINVAL)
    return trb_status_set(st, TRB_ECORRUPT, "WAL record LSN %llu (%s): %s %s", lsn,
                          f->event_name, im->what, bad_value_text(e->bad));
  if (rc == TRB_EVERSION)
    return trb_status_set(st, rc,
                          "WAL record LSN %llu (%s): %s is in an item encoding version "
                          "newer than this build reads",
                          lsn, f->event_name, im->what);
  if (rc == TRB_ECORRUPT && tag)
    return trb_status_set(st, rc, "WAL record LSN %llu (%s): %s is a %s, not an item", lsn,
                          f->event_name, im->what, trb_type_name((trb_type)tag));
  if (rc == TRB_ECORRUPT)
    return trb_status_set(st, rc, "WAL record LSN %llu (%s): %s does not decode (%zu bytes)",
                          lsn, f->event_name, im->what, im->len);
  return rc;
}

static trb_err out_of_room(trb_err rc, trb_status *st) {
  if (rc == TRB_ENOMEM) return trb_status_set(st, rc, "out of memory encoding Avro");
  if (rc == TRB_ELIMIT)
    return trb_status_set(st, rc, "the Avro datum exceeds the output buffer's cap");
  return trb_status_set(st, rc, "cannot encode Avro");
}

/* Appends the envelope; on failure out is as it was and st says why. */
static trb_err enc_envelope(const env_fields *f, trb_buf *out, trb_status *st) {
  char seq[TRB_SEQNO_BUF], txn[24];
  int64_t ms = floor_ms(f->commit_us);
  size_t mark = out->len;
  enc e = {.b = out};
  trb_buf *b = out;
  trb_err rc;
  trb_seqno_format(f->lsn, seq);
  if ((rc = enc_image(&e, f, &f->before, st)) || (rc = enc_image(&e, f, &f->after, st)))
    goto done;
  /* source */
  if ((rc = put_bytes(b, f->table, f->table_len)) || (rc = put_cstr(b, f->region)) ||
      (rc = put_cstr(b, f->shard_id)) || (rc = put_cstr(b, seq)) ||
      (rc = put_long(b, (int64_t)f->lsn)))
    goto done;
  if (f->txn_id) {
    snprintf(txn, sizeof txn, "%" PRIu64, f->txn_id);
    if ((rc = put_byte(b, AVRO_VALUE_BRANCH)) || (rc = put_cstr(b, txn))) goto done;
  } else if ((rc = put_byte(b, AVRO_NULL_BRANCH))) {
    goto done;
  }
  if ((rc = put_long(b, f->commit_us)) || (rc = put_long(b, ms))) goto done;
  /* op, ts_ms, eventName */
  if ((rc = put_cstr(b, f->op)) || (rc = put_long(b, ms)) || (rc = put_cstr(b, f->event_name)))
    goto done;
  /* userIdentity */
  if (f->user_identity) {
    if ((rc = put_byte(b, AVRO_VALUE_BRANCH)) || (rc = put_cstr(b, f->user_identity))) goto done;
  } else if ((rc = put_byte(b, AVRO_NULL_BRANCH))) {
    goto done;
  }
  return TRB_OK;
done:
  /* enc_image has said why for a bad or damaged image */
  if (rc != TRB_EINVAL && rc != TRB_ECORRUPT && rc != TRB_EVERSION) out_of_room(rc, st);
  out->len = mark;
  return rc;
}

/* The source strings must be UTF-8 (Avro strings). */
static trb_err check_source(env_fields *f, const trb_avro_source *src, trb_status *st) {
  f->region = src && src->region ? src->region : "";
  f->shard_id = src && src->shard_id ? src->shard_id : "";
  if (!trb_utf8_valid(f->table, f->table_len) || !trb_utf8_valid(f->region, strlen(f->region)) ||
      !trb_utf8_valid(f->shard_id, strlen(f->shard_id)))
    return trb_status_set(st, TRB_EINVAL, "table, region or shard id is not valid UTF-8");
  return TRB_OK;
}

static int is_item_kind(int kind) {
  return kind == TRB_WAL_INSERT || kind == TRB_WAL_MODIFY || kind == TRB_WAL_REMOVE;
}

static trb_err not_item_kind(const trb_wal_rec *r, trb_status *st) {
  return trb_status_set(st, TRB_EINVAL,
                        "WAL record LSN %llu is a %s record, not an item change "
                        "(INSERT, MODIFY or REMOVE)",
                        (unsigned long long)r->lsn, trb_wal_kind_name(r->kind));
}

trb_err trb_avro_encode_change(const trb_avro *a, const trb_wal_rec *r,
                               const trb_avro_source *src, trb_buf *out, trb_status *st) {
  if (!a || !r || !out) return trb_status_set(st, TRB_EINVAL, "no handle, record or buffer");
  if (!is_item_kind(r->kind)) return not_item_kind(r, st);
  env_fields f = {.lsn = r->lsn, .txn_id = r->txn_id, .commit_us = r->commit_us};
  if (src && src->table) {
    f.table = src->table;
    f.table_len = strlen(src->table);
  } else {
    f.table = r->table ? r->table : "";
    f.table_len = r->table ? r->table_len : 0;
  }
  trb_err rc = check_source(&f, src, st);
  if (rc) return rc;
  f.event_name = trb_wal_kind_name(r->kind);
  if (trb_stream_rec_by_ttl(r)) f.user_identity = TRB_TTL_PRINCIPAL;
  f.op = r->kind == TRB_WAL_INSERT ? "c" : r->kind == TRB_WAL_MODIFY ? "u" : "d";
  unsigned long long lsn = (unsigned long long)r->lsn;
  if (r->kind != TRB_WAL_INSERT) {
    if (!r->old_img)
      return trb_status_set(st, TRB_ECORRUPT, "WAL record LSN %llu (%s) has no OldImage", lsn,
                            f.event_name);
    f.before = (env_image){.img = r->old_img, .len = r->old_len, .what = "OldImage"};
  }
  if (r->kind != TRB_WAL_REMOVE) {
    if (!r->new_img)
      return trb_status_set(st, TRB_ECORRUPT, "WAL record LSN %llu (%s) has no NewImage", lsn,
                            f.event_name);
    f.after = (env_image){.img = r->new_img, .len = r->new_len, .what = "NewImage"};
  }
  return enc_envelope(&f, out, st);
}

trb_err trb_avro_encode_read(const trb_avro *a, const trb_av *item, uint64_t lsn,
                             int64_t commit_us, const trb_avro_source *src, trb_buf *out,
                             trb_status *st) {
  if (!a || !item || !src || !src->table || !out)
    return trb_status_set(st, TRB_EINVAL, "no handle, item, source table or buffer");
  if (item->type != TRB_T_M)
    return trb_status_set(st, TRB_EINVAL, "a snapshot item must be a map, not a %s",
                          trb_type_name(item->type));
  env_fields f = {.after = {.tree = item},
                  .table = src->table,
                  .table_len = strlen(src->table),
                  .lsn = lsn,
                  .commit_us = commit_us,
                  .op = "r",
                  .event_name = "INSERT"};
  trb_err rc = check_source(&f, src, st);
  return rc ? rc : enc_envelope(&f, out, st);
}

/* ---- keys ---- */

/* io.tributary.Key is a record of one field, the map: its encoding is the
 * map's, entries sorted. */
static trb_err enc_key(const trb_av *keys, trb_buf *out, bad_value *bad) {
  size_t mark = out->len;
  enc e = {.b = out, .sorted = 1};
  trb_err rc = tree_map(&e, keys, 0);
  if (rc) out->len = mark;
  *bad = e.bad;
  return rc;
}

trb_err trb_avro_encode_key(const trb_avro *a, const trb_av *keys, trb_buf *out,
                            trb_status *st) {
  if (!a || !keys || !out) return trb_status_set(st, TRB_EINVAL, "no handle, keys or buffer");
  if (keys->type != TRB_T_M)
    return trb_status_set(st, TRB_EINVAL, "a key must be a map, not a %s",
                          trb_type_name(keys->type));
  bad_value bad = BAD_NONE;
  trb_err rc = enc_key(keys, out, &bad);
  if (rc == TRB_EINVAL) return trb_status_set(st, rc, "the key %s", bad_value_text(bad));
  return rc ? out_of_room(rc, st) : TRB_OK;
}

/* Keys are a handful of scalars: they go through the tree (to be sorted)
 * rather than straight from the bytes. */
trb_err trb_avro_encode_change_key(const trb_avro *a, const trb_wal_rec *r, trb_buf *out,
                                   trb_status *st) {
  if (!a || !r || !out) return trb_status_set(st, TRB_EINVAL, "no handle, record or buffer");
  if (!is_item_kind(r->kind)) return not_item_kind(r, st);
  const char *kind = trb_wal_kind_name(r->kind);
  unsigned long long lsn = (unsigned long long)r->lsn;
  if (!r->keys)
    return trb_status_set(st, TRB_ECORRUPT, "WAL record LSN %llu (%s) has no Keys", lsn, kind);
  trb_av *keys = NULL;
  trb_err rc = trb_av_decode(r->keys, r->keys_len, &keys);
  if (rc == TRB_ENOMEM) return trb_status_set(st, rc, "out of memory");
  if (rc == TRB_EVERSION)
    return trb_status_set(st, rc,
                          "WAL record LSN %llu (%s): Keys are in an item encoding version "
                          "newer than this build reads",
                          lsn, kind);
  if (rc)
    return trb_status_set(st, TRB_ECORRUPT,
                          "WAL record LSN %llu (%s): Keys do not decode (%zu bytes)", lsn, kind,
                          r->keys_len);
  if (keys->type != TRB_T_M) {
    trb_type t = keys->type;
    trb_av_destroy(keys);
    return trb_status_set(st, TRB_ECORRUPT, "WAL record LSN %llu (%s): Keys are a %s, not a map",
                          lsn, kind, trb_type_name(t));
  }
  bad_value bad = BAD_NONE;
  rc = enc_key(keys, out, &bad);
  trb_av_destroy(keys);
  if (rc == TRB_EINVAL)
    return trb_status_set(st, TRB_ECORRUPT, "WAL record LSN %llu (%s): Keys %s", lsn, kind,
                          bad_value_text(bad));
  return rc ? out_of_room(rc, st) : TRB_OK;
}
