/*
 * test_avro_envelope.c -- WAL records -> Avro envelopes and keys
 * (transform/avro_envelope.c).
 *
 * Every datum the encoder writes is read back with avro-c's own reader
 * (avro_value_read against the shipped schema), turned back into a trb_av
 * and compared, in order, field by field, with what went in; avro-c then
 * writes the value it read, and those bytes must equal ours (the encoder
 * writes by hand, so this pins it to the reference implementation). Items
 * cover all ten types: nested M/L, every set, a 38-digit number, the
 * extremes of the number range, binary with zero bytes, empty strings and
 * binaries, a NUL inside a string, non-ASCII names.
 *
 * The fingerprints are checked against a CRC-64-AVRO written here (table
 * driven, unlike the encoder's bitwise one, and checked on the spec's
 * vector for "null") over the Parsing Canonical Form typed out below (as
 * python3-avro prints it), and against numbers written out in full, which
 * tests/integration/test_avro_schema.py checks too, with python3-avro.
 *
 * With TRB_AVRO_SAMPLES=<dir> in the environment the test also writes
 * single-object-framed samples there (<name>.avro, and <name>.json with
 * what each must decode to) for that Python test to decode independently.
 */
#include <avro.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine/value.h"
#include "testutil.h"
#include "transform/avro_envelope.h"
#include "transform/stream_record.h"

/* The fingerprints written out (not the header's macros): a change to the
 * schema must change these, the header and the Python test together. */
#define VALUE_FP UINT64_C(0xdd7e9c5aa49c0756)
#define KEY_FP UINT64_C(0xb59374152de4d7d5)

/* The canonical forms, as python3-avro's Schema.canonical_form gives them. */
#define AV_PCF                                                                               \
  "{\"name\":\"io.tributary.AttributeValue\",\"type\":\"record\",\"fields\":["              \
  "{\"name\":\"S\",\"type\":[\"null\",\"string\"]},"                                         \
  "{\"name\":\"N\",\"type\":[\"null\",\"string\"]},"                                         \
  "{\"name\":\"B\",\"type\":[\"null\",\"bytes\"]},"                                          \
  "{\"name\":\"BOOL\",\"type\":[\"null\",\"boolean\"]},"                                     \
  "{\"name\":\"NULL\",\"type\":[\"null\",\"boolean\"]},"                                     \
  "{\"name\":\"M\",\"type\":[\"null\",{\"type\":\"map\",\"values\":"                         \
  "\"io.tributary.AttributeValue\"}]},"                                                      \
  "{\"name\":\"L\",\"type\":[\"null\",{\"type\":\"array\",\"items\":"                        \
  "\"io.tributary.AttributeValue\"}]},"                                                      \
  "{\"name\":\"SS\",\"type\":[\"null\",{\"type\":\"array\",\"items\":\"string\"}]},"         \
  "{\"name\":\"NS\",\"type\":[\"null\",{\"type\":\"array\",\"items\":\"string\"}]},"         \
  "{\"name\":\"BS\",\"type\":[\"null\",{\"type\":\"array\",\"items\":\"bytes\"}]}]}"

static const char value_pcf[] =
    "{\"name\":\"io.tributary.Envelope\",\"type\":\"record\",\"fields\":["
    "{\"name\":\"before\",\"type\":[\"null\",{\"type\":\"map\",\"values\":" AV_PCF "}]},"
    "{\"name\":\"after\",\"type\":[\"null\",{\"type\":\"map\",\"values\":"
    "\"io.tributary.AttributeValue\"}]},"
    "{\"name\":\"source\",\"type\":{\"name\":\"io.tributary.Source\",\"type\":\"record\","
    "\"fields\":[{\"name\":\"table\",\"type\":\"string\"},"
    "{\"name\":\"region\",\"type\":\"string\"},"
    "{\"name\":\"shard_id\",\"type\":\"string\"},"
    "{\"name\":\"sequence_number\",\"type\":\"string\"},"
    "{\"name\":\"lsn\",\"type\":\"long\"},"
    "{\"name\":\"txn_id\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"commit_us\",\"type\":\"long\"},"
    "{\"name\":\"ts_ms\",\"type\":\"long\"}]}},"
    "{\"name\":\"op\",\"type\":\"string\"},"
    "{\"name\":\"ts_ms\",\"type\":\"long\"},"
    "{\"name\":\"eventName\",\"type\":\"string\"},"
    "{\"name\":\"userIdentity\",\"type\":[\"null\",\"string\"]}]}";

static const char key_pcf[] =
    "{\"name\":\"io.tributary.Key\",\"type\":\"record\",\"fields\":["
    "{\"name\":\"attributes\",\"type\":{\"type\":\"map\",\"values\":" AV_PCF "}}]}";

/* Every type, nested containers, number extremes, binary with zero bytes,
 * empty strings and binaries, a NUL inside a string, non-ASCII text. */
static const char *const ITEM_ALL =
    "{\"id\":{\"S\":\"item-1\"},"
    "\"n38\":{\"N\":\"12345678901234567890123456789012345678\"},"
    "\"nfrac\":{\"N\":\"-0.000000000000000000000000000000000000012345\"},"
    "\"nbig\":{\"N\":\"9.9999999999999999999999999999999999999E+125\"},"
    "\"ntiny\":{\"N\":\"1E-130\"},"
    "\"zero\":{\"N\":\"-0.00\"},"
    "\"bin\":{\"B\":\"AAEAAgAA\"},"
    "\"ebin\":{\"B\":\"\"},"
    "\"estr\":{\"S\":\"\"},"
    "\"nul\":{\"S\":\"a\\u0000b\"},"
    "\"h\\u00e9\":{\"S\":\"\\u00fcml\\u00e4ut \\u2603 \\ud83d\\ude00\"},"
    "\"t\":{\"BOOL\":true},\"f\":{\"BOOL\":false},\"z\":{\"NULL\":true},"
    "\"m\":{\"M\":{\"inner\":{\"L\":[{\"S\":\"x\"},{\"N\":\"1\"},{\"M\":{}},{\"L\":[]},"
    "{\"NULL\":true},{\"B\":\"AA==\"}]},"
    "\"deep\":{\"M\":{\"a\":{\"M\":{\"b\":{\"SS\":[\"p\",\"q\"]}}}}}}},"
    "\"l\":{\"L\":[{\"BOOL\":false},{\"SS\":[\"in\",\"list\"]},{\"L\":[{\"N\":\"-7\"}]}]},"
    "\"ss\":{\"SS\":[\"b\",\"\",\"a\",\"\\u00e9\"]},"
    "\"ns\":{\"NS\":[\"3\",\"-2.5\",\"1E+100\",\"0.001\"]},"
    "\"bs\":{\"BS\":[\"AA==\",\"AAA=\",\"\"]}}";

static const char *const ITEM_OLD =
    "{\"id\":{\"S\":\"item-1\"},\"count\":{\"N\":\"41\"},\"tags\":{\"SS\":[\"x\"]}}";

/* ---- helpers ---- */

static trb_av *item_ok(const char *text) {
  trb_status st;
  trb_status_init(&st);
  trb_av *v = NULL;
  trb_err rc = trb_item_from_json_text(text, strlen(text), &v, &st);
  if (rc) fprintf(stderr, "bad test item %s: %s\n", text, trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return v;
}

static unsigned char *encode_item(const char *json, size_t *len) {
  trb_av *v = item_ok(json);
  trb_buf b;
  trb_buf_init(&b, 0);
  assert_int_equal(trb_av_encode(v, &b), TRB_OK);
  trb_av_destroy(v);
  return trb_buf_steal(&b, len);
}

typedef struct fixture {
  trb_wal_rec r;
  unsigned char *keys, *old, *nw;
} fixture;

static void fx_init(fixture *f, int kind, uint64_t lsn, const char *keys, const char *old,
                    const char *nw) {
  memset(f, 0, sizeof *f);
  f->r.lsn = lsn;
  f->r.commit_us = 1479499740123456LL;
  f->r.kind = (uint8_t)kind;
  f->r.table_id = 7;
  f->r.table = "Music";
  f->r.table_len = 5;
  if (keys) f->r.keys = f->keys = encode_item(keys, &f->r.keys_len);
  if (old) f->r.old_img = f->old = encode_item(old, &f->r.old_len);
  if (nw) f->r.new_img = f->nw = encode_item(nw, &f->r.new_len);
}

static void fx_fini(fixture *f) {
  free(f->keys);
  free(f->old);
  free(f->nw);
}

static trb_avro *avro_ok(void) {
  trb_status st;
  trb_status_init(&st);
  trb_avro *a = NULL;
  trb_err rc = trb_avro_create(&a, &st);
  if (rc) fprintf(stderr, "trb_avro_create: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  assert_non_null(a);
  return a;
}

static const trb_avro_source SRC = {
    .table = NULL, .region = "eu-west-1", .shard_id = "shardId-00000001479499740123-00000001"};

/* ---- reading back with avro-c ---- */

/* A schema, its generic class and one value to read into. */
typedef struct reader {
  avro_schema_t schema;
  avro_value_iface_t *iface;
  avro_value_t val;
} reader;

static void reader_init(reader *rd, const char *schema_text) {
  memset(rd, 0, sizeof *rd);
  if (avro_schema_from_json_length(schema_text, strlen(schema_text), &rd->schema))
    fail_msg("avro-c does not parse the schema: %s", avro_strerror());
  rd->iface = avro_generic_class_from_schema(rd->schema);
  assert_non_null(rd->iface);
  assert_int_equal(avro_generic_value_new(rd->iface, &rd->val), 0);
}

static void reader_fini(reader *rd) {
  avro_value_decref(&rd->val);
  avro_value_iface_decref(rd->iface);
  avro_schema_decref(rd->schema);
}

/* Reads one datum occupying all of p[0..n) into rd->val, then writes it
 * back with avro-c and requires the same bytes. */
static void read_datum(reader *rd, const unsigned char *p, size_t n) {
  avro_value_reset(&rd->val);
  avro_reader_t in = avro_reader_memory((const char *)p, (int64_t)n);
  assert_non_null(in);
  if (avro_value_read(in, &rd->val)) fail_msg("avro-c cannot read the datum: %s", avro_strerror());
  char extra;
  assert_int_not_equal(avro_read(in, &extra, 1), 0); /* nothing left over */
  avro_reader_free(in);

  size_t size = 0;
  assert_int_equal(avro_value_sizeof(&rd->val, &size), 0);
  assert_int_equal(size, n);
  char *back = malloc(n + 1);
  assert_non_null(back);
  avro_writer_t w = avro_writer_memory(back, (int64_t)n + 1);
  assert_int_equal(avro_value_write(w, &rd->val), 0);
  assert_int_equal(avro_writer_tell(w), (int64_t)n);
  assert_memory_equal(back, p, n);
  avro_writer_free(w);
  free(back);
}

static avro_value_t field(avro_value_t *rec, const char *name) {
  avro_value_t f;
  if (avro_value_get_by_name(rec, name, &f, NULL)) fail_msg("no field %s", name);
  return f;
}

/* The branch of a ["null", X] union: 0 for null (then *out unset), 1. */
static int branch(avro_value_t *u, avro_value_t *out) {
  int d = -1;
  assert_int_equal(avro_value_get_discriminant(u, &d), 0);
  assert_true(d == 0 || d == 1);
  if (d == 1) assert_int_equal(avro_value_get_current_branch(u, out), 0);
  return d;
}

static void get_str(avro_value_t *v, const char **p, size_t *n) {
  size_t size = 0;
  assert_int_equal(avro_value_get_string(v, p, &size), 0);
  assert_true(size >= 1); /* avro-c counts a NUL it adds */
  *n = size - 1;
}

static void check_str(avro_value_t *v, const char *want) {
  const char *p;
  size_t n;
  get_str(v, &p, &n);
  assert_int_equal(n, strlen(want));
  assert_memory_equal(p, want, n);
}

static int64_t get_long(avro_value_t *v) {
  int64_t x = 0;
  assert_int_equal(avro_value_get_long(v, &x), 0);
  return x;
}

static trb_av *av_from_avro(avro_value_t *v);

/* An N from its text, which must be exactly the canonical text. */
static trb_av *number_from(avro_value_t *v) {
  const char *p;
  size_t n;
  get_str(v, &p, &n);
  trb_dec d;
  assert_int_equal(trb_dec_parse(p, n, &d, NULL), TRB_OK);
  char canon[TRB_DEC_STR_MAX];
  size_t cn = trb_dec_format(&d, canon, sizeof canon);
  assert_int_equal(cn, n);
  assert_memory_equal(canon, p, n);
  return trb_av_new_n(&d);
}

/* A map<AttributeValue> back as an M, entries in the order read. */
static trb_av *map_from_avro(avro_value_t *m) {
  size_t n = 0;
  assert_int_equal(avro_value_get_size(m, &n), 0);
  trb_av *out = trb_av_new_m();
  assert_non_null(out);
  for (size_t i = 0; i < n; i++) {
    avro_value_t child;
    const char *name = NULL;
    assert_int_equal(avro_value_get_by_index(m, i, &child, &name), 0);
    /* avro-c map keys are NUL-terminated copies; the test's names hold no NUL */
    assert_int_equal(trb_av_m_set(out, name, strlen(name), av_from_avro(&child)), TRB_OK);
  }
  return out;
}

static trb_av *av_from_avro(avro_value_t *v) {
  static const char *const names[] = {"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"};
  int which = -1;
  avro_value_t x;
  for (int i = 0; i < 10; i++) {
    avro_value_t u = field(v, names[i]), b;
    if (branch(&u, &b)) {
      assert_int_equal(which, -1); /* exactly one non-null */
      which = i;
      x = b;
    }
  }
  assert_true(which >= 0);
  trb_type t = (trb_type)(which + 1);
  const char *p;
  const void *bp;
  size_t n;
  int bv;
  trb_av *out = NULL;
  switch (t) {
    case TRB_T_S:
      get_str(&x, &p, &n);
      return trb_av_new_s(p, n);
    case TRB_T_N:
      return number_from(&x);
    case TRB_T_B:
      assert_int_equal(avro_value_get_bytes(&x, &bp, &n), 0);
      return trb_av_new_b(bp, n);
    case TRB_T_BOOL:
      assert_int_equal(avro_value_get_boolean(&x, &bv), 0);
      return trb_av_new_bool(bv);
    case TRB_T_NULL:
      assert_int_equal(avro_value_get_boolean(&x, &bv), 0);
      assert_int_equal(bv, 1);
      return trb_av_new_null();
    case TRB_T_M:
      return map_from_avro(&x);
    default:
      break;
  }
  out = t == TRB_T_L ? trb_av_new_l() : trb_av_new_set(t);
  assert_non_null(out);
  assert_int_equal(avro_value_get_size(&x, &n), 0);
  size_t count = n;
  for (size_t i = 0; i < count; i++) {
    avro_value_t e;
    assert_int_equal(avro_value_get_by_index(&x, i, &e, NULL), 0);
    trb_av *ev = NULL;
    if (t == TRB_T_L) {
      ev = av_from_avro(&e);
    } else if (t == TRB_T_SS) {
      get_str(&e, &p, &n);
      ev = trb_av_new_s(p, n);
    } else if (t == TRB_T_NS) {
      ev = number_from(&e);
    } else {
      size_t bn;
      assert_int_equal(avro_value_get_bytes(&e, &bp, &bn), 0);
      ev = trb_av_new_b(bp, bn);
    }
    assert_int_equal(trb_av_l_append(out, ev), TRB_OK);
  }
  return out;
}

/* Strict equality: same types, same order of map entries and of set
 * elements, same bytes (trb_av_equal ignores orders). */
static int av_same(const trb_av *a, const trb_av *b) {
  if (a->type != b->type) return 0;
  switch (a->type) {
    case TRB_T_S:
    case TRB_T_B:
      return a->u.s.len == b->u.s.len && memcmp(a->u.s.p, b->u.s.p, a->u.s.len) == 0;
    case TRB_T_N:
      return trb_dec_cmp(&a->u.n, &b->u.n) == 0;
    case TRB_T_BOOL:
      return a->u.b == b->u.b;
    case TRB_T_NULL:
      return 1;
    case TRB_T_M:
      if (a->u.m.n != b->u.m.n) return 0;
      for (size_t i = 0; i < a->u.m.n; i++)
        if (a->u.m.e[i].name_len != b->u.m.e[i].name_len ||
            memcmp(a->u.m.e[i].name, b->u.m.e[i].name, a->u.m.e[i].name_len) ||
            !av_same(a->u.m.e[i].val, b->u.m.e[i].val))
          return 0;
      return 1;
    default:
      if (a->u.l.n != b->u.l.n) return 0;
      for (size_t i = 0; i < a->u.l.n; i++)
        if (!av_same(a->u.l.v[i], b->u.l.v[i])) return 0;
      return 1;
  }
}

/* The optional item field `name` of an envelope equals the item text
 * (NULL: must be null), in order. */
static void check_image(avro_value_t *env, const char *name, const char *want_json) {
  avro_value_t u = field(env, name), m;
  int d = branch(&u, &m);
  if (!want_json) {
    assert_int_equal(d, 0);
    return;
  }
  assert_int_equal(d, 1);
  trb_av *got = map_from_avro(&m), *want = item_ok(want_json);
  if (!av_same(got, want)) {
    char *g = trb_item_to_json_text(got), *w = trb_item_to_json_text(want);
    fail_msg("%s differs:\n got  %s\n want %s", name, g, w);
  }
  trb_av_destroy(got);
  trb_av_destroy(want);
}

typedef struct want_env {
  const char *before, *after, *op, *event_name, *table, *region, *shard_id, *txn_id;
  const char *user_identity; /* NULL: the field must be null */
  uint64_t lsn;
  int64_t commit_us, ts_ms;
} want_env;

static void check_envelope(reader *rd, const unsigned char *p, size_t n, const want_env *w) {
  read_datum(rd, p, n);
  avro_value_t *env = &rd->val;
  check_image(env, "before", w->before);
  check_image(env, "after", w->after);
  avro_value_t op = field(env, "op"), ts = field(env, "ts_ms"), ev = field(env, "eventName");
  check_str(&op, w->op);
  assert_int_equal(get_long(&ts), w->ts_ms);
  check_str(&ev, w->event_name);
  avro_value_t src = field(env, "source");
  avro_value_t table = field(&src, "table"), region = field(&src, "region"),
               shard = field(&src, "shard_id"), seq = field(&src, "sequence_number"),
               lsn = field(&src, "lsn"), txn = field(&src, "txn_id"),
               cus = field(&src, "commit_us"), sts = field(&src, "ts_ms"), txs;
  check_str(&table, w->table);
  check_str(&region, w->region);
  check_str(&shard, w->shard_id);
  char s[TRB_SEQNO_BUF];
  trb_seqno_format(w->lsn, s);
  check_str(&seq, s);
  assert_int_equal(get_long(&lsn), (int64_t)w->lsn);
  assert_int_equal(get_long(&cus), w->commit_us);
  assert_int_equal(get_long(&sts), w->ts_ms);
  if (w->txn_id) {
    assert_int_equal(branch(&txn, &txs), 1);
    check_str(&txs, w->txn_id);
  } else {
    assert_int_equal(branch(&txn, &txs), 0);
  }
  avro_value_t uid = field(env, "userIdentity"), uids;
  if (w->user_identity) {
    assert_int_equal(branch(&uid, &uids), 1);
    check_str(&uids, w->user_identity);
  } else {
    assert_int_equal(branch(&uid, &uids), 0);
  }
}

static trb_buf encode_change_ok(const trb_avro *a, const trb_wal_rec *r,
                                const trb_avro_source *src) {
  trb_buf b;
  trb_buf_init(&b, 0);
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_avro_encode_change(a, r, src, &b, &st);
  if (rc) fprintf(stderr, "trb_avro_encode_change: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return b;
}

/* ---- samples for tests/integration/test_avro_schema.py ---- */

/* Writes dir/name.avro (single-object framed) and dir/name.json (meta and
 * the DynamoDB JSON of what it must decode to) when TRB_AVRO_SAMPLES is
 * set. */
static void sample(const char *name, uint64_t fp, const trb_buf *datum, const char *meta_json) {
  const char *dir = getenv("TRB_AVRO_SAMPLES");
  if (!dir || !*dir) return;
  mkdir(dir, 0755);
  trb_buf framed;
  trb_buf_init(&framed, 0);
  assert_int_equal(trb_avro_frame_single(fp, &framed), TRB_OK);
  assert_int_equal(trb_buf_append(&framed, datum->p, datum->len), TRB_OK);
  char path[1024];
  snprintf(path, sizeof path, "%s/%s.avro", dir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(framed.p, 1, framed.len, f), framed.len);
  assert_int_equal(fclose(f), 0);
  snprintf(path, sizeof path, "%s/%s.json", dir, name);
  f = fopen(path, "w");
  assert_non_null(f);
  fputs(meta_json, f);
  assert_int_equal(fclose(f), 0);
  trb_buf_fini(&framed);
}

/* An item's DynamoDB JSON as the engine writes it (canonical numbers,
 * base64 binaries): what the Python test compares the decoded Avro with,
 * text for text. NULL for NULL; caller frees. */
static char *canon_json(const char *text) {
  if (!text) return NULL;
  trb_av *v = item_ok(text);
  char *j = trb_item_to_json_text(v);
  assert_non_null(j);
  trb_av_destroy(v);
  return j;
}

/* The JSON text {"kind":..., "before":..., "after":..., <rest>}; caller
 * frees. */
static char *meta(const char *kind, const char *before, const char *after, const char *rest) {
  char *out = NULL, *b = canon_json(before), *a = canon_json(after);
  int n = asprintf(&out, "{\"kind\":\"%s\",\"before\":%s,\"after\":%s%s%s}\n", kind,
                   b ? b : "null", a ? a : "null", rest ? "," : "", rest ? rest : "");
  assert_true(n > 0);
  free(b);
  free(a);
  return out;
}

/* ---- tests ---- */

static void test_create_and_fingerprints(void **state) {
  (void)state;
  trb_avro *a = avro_ok();
  assert_string_equal(trb_avro_value_schema_canonical(a), value_pcf);
  assert_string_equal(trb_avro_key_schema_canonical(a), key_pcf);
  assert_true(trb_avro_value_fingerprint(a) == VALUE_FP);
  assert_true(trb_avro_key_fingerprint(a) == KEY_FP);
  assert_true(TRB_AVRO_VALUE_FINGERPRINT == VALUE_FP);
  assert_true(TRB_AVRO_KEY_FINGERPRINT == KEY_FP);
  trb_avro_destroy(a);
  trb_avro_destroy(NULL);
  assert_int_equal(trb_avro_create(NULL, NULL), TRB_EINVAL);
}

/* CRC-64-AVRO, table-driven as the spec's reference code is. */
static uint64_t rabin(const char *s) {
  static const uint64_t empty = UINT64_C(0xc15d213aa4d7a795);
  uint64_t table[256];
  for (int i = 0; i < 256; i++) {
    uint64_t fp = (uint64_t)i;
    for (int j = 0; j < 8; j++) fp = (fp >> 1) ^ (empty & -(fp & 1));
    table[i] = fp;
  }
  uint64_t fp = empty;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    fp = (fp >> 8) ^ table[(fp ^ *p) & 0xff];
  return fp;
}

static void test_fingerprint_is_crc64_avro_of_canonical_form(void **state) {
  (void)state;
  /* The spec's test vector (share/test/data/schema-tests.txt): "null". */
  assert_true((int64_t)rabin("\"null\"") == INT64_C(7195948357588979594));
  assert_true(rabin(value_pcf) == VALUE_FP);
  assert_true(rabin(key_pcf) == KEY_FP);
}

/* The compiled-in text equals the shipped files, byte for byte. */
static char *schema_file(const char *name) {
  char path[4096];
  const char *src = __FILE__; /* .../tests/unit/test_avro_envelope.c */
  const char *cut = strstr(src, "tests/unit/");
  assert_non_null(cut);
  snprintf(path, sizeof path, "%.*sschemas/%s", (int)(cut - src), src, name);
  char *text = trb_test_read_file(path, NULL);
  if (!text) fail_msg("cannot read %s", path);
  return text;
}

static void test_embedded_schemas_equal_files(void **state) {
  (void)state;
  trb_avro *a = avro_ok();
  char *env = schema_file("tributary-envelope.avsc"), *key = schema_file("tributary-key.avsc");
  assert_string_equal(trb_avro_value_schema(a), env);
  assert_string_equal(trb_avro_key_schema(a), key);
  free(env);
  free(key);
  trb_avro_destroy(a);
}

static void test_insert_all_types(void **state) {
  (void)state;
  trb_avro *a = avro_ok();
  reader rd;
  reader_init(&rd, trb_avro_value_schema(a));
  fixture f;
  fx_init(&f, TRB_WAL_INSERT, 42, "{\"id\":{\"S\":\"item-1\"}}", NULL, ITEM_ALL);
  trb_buf b = encode_change_ok(a, &f.r, &SRC);
  want_env w = {.after = ITEM_ALL,
                .op = "c",
                .event_name = "INSERT",
                .table = "Music",
                .region = "eu-west-1",
                .shard_id = SRC.shard_id,
                .lsn = 42,
                .commit_us = 1479499740123456LL,
                .ts_ms = 1479499740123LL};
  check_envelope(&rd, b.p, b.len, &w);
  char *m = meta("INSERT", NULL, ITEM_ALL,
                 "\"op\":\"c\",\"table\":\"Music\",\"region\":\"eu-west-1\","
                 "\"shard_id\":\"shardId-00000001479499740123-00000001\",\"lsn\":42,"
                 "\"txn_id\":null,\"commit_us\":1479499740123456,\"ts_ms\":1479499740123");
  sample("insert", VALUE_FP, &b, m);
  free(m);
  trb_buf_fini(&b);
  fx_fini(&f);
  reader_fini(&rd);
  trb_avro_destroy(a);
}

static void test_modify_has_both_images_and_txn(void **state) {
  (void)state;
  trb_avro *a = avro_ok();
  reader rd;
  reader_init(&rd, trb_avro_value_schema(a));
  fixture f;
  fx_init(&f, TRB_WAL_MODIFY, 43, "{\"id\":{\"S\":\"item-1\"}}", ITEM_OLD, ITEM_ALL);
  f.r.txn_id = 18446744073709551615ULL;
  /* src->table overrides; NULL region and shard give "" */
  trb_avro_source src = {.table = "Other"};
  trb_buf b = encode_change_ok(a, &f.r, &src);
  want_env w = {.before = ITEM_OLD,
                .after = ITEM_ALL,
                .op = "u",
                .event_name = "MODIFY",
                .table = "Other",
                .region = "",
                .shard_id = "",
                .txn_id = "18446744073709551615",
                .lsn = 43,
                .commit_us = 1479499740123456LL,
                .ts_ms = 1479499740123LL};
  check_envelope(&rd, b.p, b.len, &w);
  char *m = meta("MODIFY", ITEM_OLD, ITEM_ALL,
                 "\"op\":\"u\",\"table\":\"Other\",\"region\":\"\",\"shard_id\":\"\","
                 "\"lsn\":43,\"txn_id\":\"18446744073709551615\","
                 "\"commit_us\":1479499740123456,\"ts_ms\":1479499740123");
  sample("modify", VALUE_FP, &b, m);
  free(m);
  /* no src at all */
  trb_buf b2 = encode_change_ok(a, &f.r, NULL);
  w.table = "Music";
  check_envelope(&rd, b2.p, b2.len, &w);
  trb_buf_fini(&b2);
  trb_buf_fini(&b);
  fx_fini(&f);
  reader_fini(&rd);
  trb_avro_destroy(a);
}

static void test_remove_has_before_only(void **state) {
  (void)state;
  trb_avro *a = avro_ok();
  reader rd;
  reader_init(&rd, trb_avro_value_schema(a));
  fixture f;
  /* a new image in a REMOVE record is not the op's: it is ignored */
  fx_init(&f, TRB_WAL_REMOVE, 44, "{\"id\":{\"S\":\"item-1\"}}", ITEM_ALL, ITEM_OLD);
  f.r.commit_us = -1; /* ts_ms rounds down, not towards zero */
  trb_buf b = encode_change_ok(a, &f.r, &SRC);
  want_env w = {.before = ITEM_ALL,
                .op = "d",
                .event_name = "REMOVE",
                .table = "Music",
                .region = "eu-west-1",
                .shard_id = SRC.shard_id,
                .lsn = 44,
                .commit_us = -1,
                .ts_ms = -1};
  check_envelope(&rd, b.p, b.len, &w);
  char *m = meta("REMOVE", ITEM_ALL, NULL,
                 "\"op\":\"d\",\"table\":\"Music\",\"region\":\"eu-west-1\","
                 "\"shard_id\":\"shardId-00000001479499740123-00000001\",\"lsn\":44,"
                 "\"txn_id\":null,\"commit_us\":-1,\"ts_ms\":-1");
  sample("remove", VALUE_FP, &b, m);
  free(m);
  trb_buf_fini(&b);
  /* the same delete made by Time to Live names who made it */
  f.r.flags = TRB_WAL_F_TTL;
  b = encode_change_ok(a, &f.r, &SRC);
  w.user_identity = "dynamodb.amazonaws.com";
  check_envelope(&rd, b.p, b.len, &w);
  trb_buf_fini(&b);
  fx_fini(&f);
  reader_fini(&rd);
  trb_avro_destroy(a);
}

static void test_snapshot_read(void **state) {
  (void)state;
  trb_avro *a = avro_ok();
  reader rd;
  reader_init(&rd, trb_avro_value_schema(a));
  trb_av *item = item_ok(ITEM_ALL);
  trb_buf b;
  trb_buf_init(&b, 0);
  trb_avro_source src = {.table = "Music", .region = "eu-west-1"};
  assert_int_equal(trb_avro_encode_read(a, item, 7, 1999, &src, &b, NULL), TRB_OK);
  want_env w = {.after = ITEM_ALL,
                .op = "r",
                .event_name = "INSERT",
                .table = "Music",
                .region = "eu-west-1",
                .shard_id = "",
                .lsn = 7,
                .commit_us = 1999,
                .ts_ms = 1};
  check_envelope(&rd, b.p, b.len, &w);
  char *m = meta("READ", NULL, ITEM_ALL,
                 "\"op\":\"r\",\"table\":\"Music\",\"region\":\"eu-west-1\",\"shard_id\":\"\","
                 "\"lsn\":7,\"txn_id\":null,\"commit_us\":1999,\"ts_ms\":1");
  sample("read", VALUE_FP, &b, m);
  free(m);
  /* the table is required here; the item must be a map */
  src.table = NULL;
  assert_int_equal(trb_avro_encode_read(a, item, 7, 1999, &src, &b, NULL), TRB_EINVAL);
  src.table = "Music";
  trb_av *s = trb_av_new_s("x", 1);
  assert_int_equal(trb_avro_encode_read(a, s, 7, 1999, &src, &b, NULL), TRB_EINVAL);
  trb_av_destroy(s);
  trb_av_destroy(item);
  trb_buf_fini(&b);
  reader_fini(&rd);
  trb_avro_destroy(a);
}

/* The key: sorted entries, the same bytes whatever the build order. */
static void test_key_is_deterministic(void **state) {
  (void)state;
  trb_avro *a = avro_ok();
  reader rd;
  reader_init(&rd, trb_avro_key_schema(a));
  trb_av *k1 = item_ok("{\"pk\":{\"S\":\"user#1\"},\"sk\":{\"N\":\"1.50\"}}");
  trb_av *k2 = item_ok("{\"sk\":{\"N\":\"15E-1\"},\"pk\":{\"S\":\"user#1\"}}");
  trb_buf b1, b2;
  trb_buf_init(&b1, 0);
  trb_buf_init(&b2, 0);
  assert_int_equal(trb_avro_encode_key(a, k1, &b1, NULL), TRB_OK);
  assert_int_equal(trb_avro_encode_key(a, k2, &b2, NULL), TRB_OK);
  assert_int_equal(b1.len, b2.len);
  assert_memory_equal(b1.p, b2.p, b1.len);
  /* the bytes, pinned: 1 block of 2 entries; "pk" -> S "user#1"; "sk" -> N
   * "1.5"; end of map */
  static const unsigned char want[] = {
      0x04, 0x04, 'p', 'k', 0x02, 0x0c, 'u', 's', 'e', 'r', '#', '1', 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0x04, 's',  'k', 0x00, 0x02, 0x06, '1', '.', '5', 0, 0, 0, 0, 0, 0, 0, 0, 0x00};
  assert_int_equal(b1.len, sizeof want);
  assert_memory_equal(b1.p, want, sizeof want);
  read_datum(&rd, b1.p, b1.len);
  avro_value_t attrs = field(&rd.val, "attributes");
  trb_av *got = map_from_avro(&attrs);
  assert_true(av_same(got, k1));
  trb_av_destroy(got);
  sample("key", KEY_FP, &b1,
         "{\"kind\":\"KEY\",\"attributes\":{\"pk\":{\"S\":\"user#1\"},\"sk\":{\"N\":\"1.5\"}}}\n");

  /* bytewise order: a prefix first, bytes above 0x7F after ASCII; more
   * entries than the encoder keeps on its stack; nested maps sorted too */
  const char *names[] = {"z", "\xc3\xa9", "a", "ab", "A", "_", "0", "aa", "b", "c", "d", "e",
                         "f", "g", "h",  "i", "j", "k", "l", "m"};
  size_t nn = sizeof names / sizeof names[0];
  trb_av *fwd = trb_av_new_m(), *rev = trb_av_new_m();
  for (size_t i = 0; i < nn; i++) {
    /* an item is an M, so it serves as a nested map value */
    trb_av *m1 = item_ok("{\"y\":{\"N\":\"1\"},\"x\":{\"B\":\"AA==\"}}");
    trb_av *m2 = item_ok("{\"x\":{\"B\":\"AA==\"},\"y\":{\"N\":\"1\"}}");
    const char *nf = names[i], *nr = names[nn - 1 - i];
    assert_int_equal(trb_av_m_set(fwd, nf, strlen(nf), m1), TRB_OK);
    assert_int_equal(trb_av_m_set(rev, nr, strlen(nr), m2), TRB_OK);
  }
  trb_buf_reset(&b1);
  trb_buf_reset(&b2);
  assert_int_equal(trb_avro_encode_key(a, fwd, &b1, NULL), TRB_OK);
  assert_int_equal(trb_avro_encode_key(a, rev, &b2, NULL), TRB_OK);
  assert_int_equal(b1.len, b2.len);
  assert_memory_equal(b1.p, b2.p, b1.len);
  read_datum(&rd, b1.p, b1.len);
  attrs = field(&rd.val, "attributes");
  got = map_from_avro(&attrs);
  assert_int_equal(got->u.m.n, nn);
  for (size_t i = 1; i < nn; i++) {
    const trb_attr *p = &got->u.m.e[i - 1], *q = &got->u.m.e[i];
    size_t n = p->name_len < q->name_len ? p->name_len : q->name_len;
    int c = memcmp(p->name, q->name, n);
    assert_true(c < 0 || (c == 0 && p->name_len < q->name_len));
    assert_string_equal(q->val->u.m.e[0].name, "x");
  }
  assert_string_equal(got->u.m.e[0].name, "0");
  assert_string_equal(got->u.m.e[nn - 1].name, "\xc3\xa9");
  trb_av_destroy(got);
  trb_av_destroy(fwd);
  trb_av_destroy(rev);
  trb_av_destroy(k1);
  trb_av_destroy(k2);
  trb_buf_fini(&b1);
  trb_buf_fini(&b2);
  reader_fini(&rd);
  trb_avro_destroy(a);
}

static void test_change_key(void **state) {
  (void)state;
  trb_avro *a = avro_ok();
  fixture f;
  fx_init(&f, TRB_WAL_MODIFY, 9, "{\"sk\":{\"B\":\"AAE=\"},\"pk\":{\"S\":\"p\"}}", ITEM_OLD,
          ITEM_OLD);
  trb_av *k = item_ok("{\"pk\":{\"S\":\"p\"},\"sk\":{\"B\":\"AAE=\"}}");
  trb_buf b1, b2;
  trb_buf_init(&b1, 0);
  trb_buf_init(&b2, 0);
  assert_int_equal(trb_avro_encode_change_key(a, &f.r, &b1, NULL), TRB_OK);
  assert_int_equal(trb_avro_encode_key(a, k, &b2, NULL), TRB_OK);
  assert_int_equal(b1.len, b2.len);
  assert_memory_equal(b1.p, b2.p, b1.len);
  /* no keys: a damaged record */
  free(f.keys);
  f.keys = NULL;
  f.r.keys = NULL;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_avro_encode_change_key(a, &f.r, &b1, &st), TRB_ECORRUPT);
  assert_non_null(strstr(trb_status_msg(&st), "LSN 9"));
  assert_non_null(strstr(trb_status_msg(&st), "Keys"));
  f.r.kind = TRB_WAL_TXN_COMMIT;
  assert_int_equal(trb_avro_encode_change_key(a, &f.r, &b1, NULL), TRB_EINVAL);
  trb_av_destroy(k);
  trb_buf_fini(&b1);
  trb_buf_fini(&b2);
  fx_fini(&f);
  trb_avro_destroy(a);
}

static void test_framing(void **state) {
  (void)state;
  trb_avro *a = avro_ok();
  reader rd;
  reader_init(&rd, trb_avro_value_schema(a));
  trb_buf b;
  trb_buf_init(&b, 0);
  assert_int_equal(trb_avro_frame_single(trb_avro_value_fingerprint(a), &b), TRB_OK);
  static const unsigned char single[] = {0xC3, 0x01, 0x56, 0x07, 0x9c, 0xa4,
                                         0x5a, 0x9c, 0x7e, 0xdd};
  assert_int_equal(b.len, TRB_AVRO_SINGLE_HDR);
  assert_memory_equal(b.p, single, sizeof single);
  trb_buf_reset(&b);
  assert_int_equal(trb_avro_frame_confluent(0x01020304u, &b), TRB_OK);
  static const unsigned char confluent[] = {0x00, 0x01, 0x02, 0x03, 0x04};
  assert_int_equal(b.len, TRB_AVRO_CONFLUENT_HDR);
  assert_memory_equal(b.p, confluent, sizeof confluent);

  /* frame, then the datum right after it */
  fixture f;
  fx_init(&f, TRB_WAL_INSERT, 5, "{\"id\":{\"S\":\"a\"}}", NULL, "{\"id\":{\"S\":\"a\"}}");
  assert_int_equal(trb_avro_encode_change(a, &f.r, &SRC, &b, NULL), TRB_OK);
  want_env w = {.after = "{\"id\":{\"S\":\"a\"}}",
                .op = "c",
                .event_name = "INSERT",
                .table = "Music",
                .region = "eu-west-1",
                .shard_id = SRC.shard_id,
                .lsn = 5,
                .commit_us = 1479499740123456LL,
                .ts_ms = 1479499740123LL};
  check_envelope(&rd, b.p + TRB_AVRO_CONFLUENT_HDR, b.len - TRB_AVRO_CONFLUENT_HDR, &w);
  /* a capped buffer refuses the frame whole */
  trb_buf small;
  trb_buf_init(&small, 4);
  assert_int_equal(trb_avro_frame_single(1, &small), TRB_ELIMIT);
  assert_int_equal(small.len, 0);
  trb_buf_fini(&small);
  fx_fini(&f);
  trb_buf_fini(&b);
  reader_fini(&rd);
  trb_avro_destroy(a);
}

/* Refusals leave the buffer as it was. */
static void test_refusals(void **state) {
  (void)state;
  trb_avro *a = avro_ok();
  trb_buf b;
  trb_buf_init(&b, 0);
  assert_int_equal(trb_avro_frame_single(1, &b), TRB_OK);
  trb_status st;
  fixture f;

  /* not an item change */
  fx_init(&f, TRB_WAL_TABLE_CREATE, 3, NULL, NULL, "{\"x\":{\"S\":\"y\"}}");
  trb_status_init(&st);
  assert_int_equal(trb_avro_encode_change(a, &f.r, &SRC, &b, &st), TRB_EINVAL);
  assert_non_null(strstr(trb_status_msg(&st), "TABLE_CREATE"));
  fx_fini(&f);

  /* an INSERT without its new image; a MODIFY without its old one */
  fx_init(&f, TRB_WAL_INSERT, 11, "{\"id\":{\"S\":\"a\"}}", NULL, NULL);
  trb_status_init(&st);
  assert_int_equal(trb_avro_encode_change(a, &f.r, &SRC, &b, &st), TRB_ECORRUPT);
  assert_non_null(strstr(trb_status_msg(&st), "LSN 11"));
  assert_non_null(strstr(trb_status_msg(&st), "NewImage"));
  fx_fini(&f);
  fx_init(&f, TRB_WAL_MODIFY, 12, "{\"id\":{\"S\":\"a\"}}", NULL, ITEM_OLD);
  trb_status_init(&st);
  assert_int_equal(trb_avro_encode_change(a, &f.r, &SRC, &b, &st), TRB_ECORRUPT);
  assert_non_null(strstr(trb_status_msg(&st), "OldImage"));

  /* damaged image bytes; a newer encoding version; an image that is no map */
  unsigned char junk[] = {0xA1, 0x06, 0x05};
  f.r.old_img = junk;
  f.r.old_len = sizeof junk;
  assert_int_equal(trb_avro_encode_change(a, &f.r, &SRC, &b, NULL), TRB_ECORRUPT);
  unsigned char newer[] = {0xA2, 0x05};
  f.r.old_img = newer;
  f.r.old_len = sizeof newer;
  assert_int_equal(trb_avro_encode_change(a, &f.r, &SRC, &b, NULL), TRB_EVERSION);
  unsigned char scalar[] = {0xA1, 0x05};
  f.r.old_img = scalar;
  f.r.old_len = sizeof scalar;
  trb_status_init(&st);
  assert_int_equal(trb_avro_encode_change(a, &f.r, &SRC, &b, &st), TRB_ECORRUPT);
  assert_non_null(strstr(trb_status_msg(&st), "not an item"));

  /* a string that is not UTF-8 (the item codec does not check; Avro must) */
  trb_av *bad = trb_av_new_m();
  assert_int_equal(trb_av_m_set(bad, "s", 1, trb_av_new_s("\xff\xfe", 2)), TRB_OK);
  trb_buf img;
  trb_buf_init(&img, 0);
  assert_int_equal(trb_av_encode(bad, &img), TRB_OK);
  f.r.old_img = img.p;
  f.r.old_len = img.len;
  trb_status_init(&st);
  assert_int_equal(trb_avro_encode_change(a, &f.r, &SRC, &b, &st), TRB_ECORRUPT);
  assert_non_null(strstr(trb_status_msg(&st), "UTF-8"));
  assert_int_equal(b.len, TRB_AVRO_SINGLE_HDR); /* nothing half-written */
  trb_avro_source badsrc = {.region = "\xc0\x80"};
  f.r.old_img = f.old;
  f.r.old_len = 0;
  assert_int_equal(trb_avro_encode_change(a, &f.r, &badsrc, &b, NULL), TRB_EINVAL);
  assert_int_equal(trb_avro_encode_key(a, bad, &b, NULL), TRB_EINVAL);
  trb_avro_source rsrc = {.table = "T"};
  assert_int_equal(trb_avro_encode_read(a, bad, 1, 1, &rsrc, &b, NULL), TRB_EINVAL);
  trb_buf_fini(&img);
  trb_av_destroy(bad);
  fx_fini(&f);

  /* nesting: the codec's limit (an item's attribute may nest 32 levels of
   * M/L; the 33rd is refused) */
  for (int levels = TRB_MAX_DEPTH; levels <= TRB_MAX_DEPTH + 1; levels++) {
    trb_av *it = trb_av_new_m(), *deep = trb_av_new_null();
    for (int i = 0; i < levels; i++) {
      trb_av *l = trb_av_new_l();
      assert_int_equal(trb_av_l_append(l, deep), TRB_OK);
      deep = l;
    }
    assert_int_equal(trb_av_m_set(it, "d", 1, deep), TRB_OK);
    size_t before = b.len;
    trb_status_init(&st);
    trb_err rc = trb_avro_encode_read(a, it, 1, 1, &rsrc, &b, &st);
    if (levels == TRB_MAX_DEPTH) {
      assert_int_equal(rc, TRB_OK);
      b.len = before;
    } else {
      assert_int_equal(rc, TRB_EINVAL);
      assert_non_null(strstr(trb_status_msg(&st), "deeper"));
    }
    trb_av_destroy(it);
  }
  trb_av *item;

  /* a set element of the wrong type (the struct is open; the constructors
   * refuse this) */
  item = trb_av_new_m();
  trb_av *set = trb_av_new_set(TRB_T_SS);
  assert_int_equal(trb_av_l_append(set, trb_av_new_s("x", 1)), TRB_OK);
  set->u.l.v[0]->type = TRB_T_B;
  assert_int_equal(trb_av_m_set(item, "s", 1, set), TRB_OK);
  trb_status_init(&st);
  assert_int_equal(trb_avro_encode_read(a, item, 1, 1, &rsrc, &b, &st), TRB_EINVAL);
  assert_non_null(strstr(trb_status_msg(&st), "set element"));
  trb_av_destroy(item);

  /* NULL arguments */
  assert_int_equal(trb_avro_encode_change(NULL, &f.r, NULL, &b, NULL), TRB_EINVAL);
  assert_int_equal(trb_avro_encode_change(a, NULL, NULL, &b, NULL), TRB_EINVAL);
  assert_int_equal(trb_avro_encode_key(a, NULL, &b, NULL), TRB_EINVAL);
  assert_int_equal(b.len, TRB_AVRO_SINGLE_HDR);

  /* a buffer cap hit half-way: TRB_ELIMIT, the buffer as it was */
  trb_buf capped;
  trb_buf_init(&capped, 64);
  fx_init(&f, TRB_WAL_INSERT, 13, "{\"id\":{\"S\":\"a\"}}", NULL, ITEM_ALL);
  assert_int_equal(trb_avro_frame_single(1, &capped), TRB_OK);
  trb_status_init(&st);
  assert_int_equal(trb_avro_encode_change(a, &f.r, &SRC, &capped, &st), TRB_ELIMIT);
  assert_int_equal(capped.len, TRB_AVRO_SINGLE_HDR);
  trb_buf_fini(&capped);
  fx_fini(&f);

  trb_buf_fini(&b);
  trb_avro_destroy(a);
}

/* ---- generated items: the tree encoder, the straight-from-bytes reader
 * and avro-c must all agree ---- */

static uint64_t rnd(uint64_t *s, uint64_t n) { return trb_test_rand(s) % n; }

/* A number of 1..38 digits and any adjusted exponent in DynamoDB's range. */
static trb_dec random_dec(uint64_t *s) {
  char text[128];
  size_t n = 0;
  if (rnd(s, 2)) text[n++] = '-';
  int nd = 1 + (int)rnd(s, 38);
  if (rnd(s, 8) == 0) nd = 1 + (int)rnd(s, 3); /* small numbers often */
  text[n++] = (char)('1' + rnd(s, 9));
  if (nd > 1) text[n++] = '.';
  for (int i = 1; i < nd; i++) text[n++] = (char)('0' + rnd(s, 10));
  int adj = rnd(s, 3) ? (int)rnd(s, 41) - 20 : TRB_DEC_MIN_ADJEXP + (int)rnd(s, 256);
  n += (size_t)snprintf(text + n, sizeof text - n, "E%d", adj);
  trb_dec d;
  trb_status st;
  trb_status_init(&st);
  if (trb_dec_parse(text, n, &d, &st)) fail_msg("%s: %s", text, trb_status_msg(&st));
  return d;
}

static const char *const NAMES[] = {"a", "id", "x_y", "\xc3\xa9t\xc3\xa9", "\xe2\x98\x83",
                                    "k1", "k2", "longer attribute name", "Z", "0"};

static void random_bytes(uint64_t *s, char *buf, size_t *n, int text) {
  static const char *const pieces[] = {"a", "b", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                       " ", "0", "\x7f"};
  size_t len = 0, want = rnd(s, 6) == 0 ? 0 : rnd(s, 40);
  while (len < want) {
    if (text) {
      const char *p = pieces[rnd(s, 8)];
      memcpy(buf + len, p, strlen(p));
      len += strlen(p);
    } else {
      buf[len++] = (char)rnd(s, 256);
    }
  }
  *n = len;
}

static trb_av *random_av(uint64_t *s, int depth) {
  char buf[256];
  size_t n;
  int t = 1 + (int)rnd(s, depth >= 4 ? 5 : 10);
  trb_av *v = NULL;
  switch (t) {
    case TRB_T_S:
    case TRB_T_B:
      random_bytes(s, buf, &n, t == TRB_T_S);
      return t == TRB_T_S ? trb_av_new_s(buf, n) : trb_av_new_b(buf, n);
    case TRB_T_N: {
      trb_dec d = random_dec(s);
      return trb_av_new_n(&d);
    }
    case TRB_T_BOOL: return trb_av_new_bool((int)rnd(s, 2));
    case TRB_T_NULL: return trb_av_new_null();
    case TRB_T_M: {
      v = trb_av_new_m();
      size_t k = rnd(s, 5);
      for (size_t i = 0; i < k; i++) {
        const char *name = NAMES[rnd(s, 10)];
        assert_int_equal(trb_av_m_set(v, name, strlen(name), random_av(s, depth + 1)), TRB_OK);
      }
      return v;
    }
    default: {
      v = t == TRB_T_L ? trb_av_new_l() : trb_av_new_set((trb_type)t);
      size_t k = (t == TRB_T_L ? 0 : 1) + rnd(s, 5);
      for (size_t i = 0; i < k; i++) {
        trb_av *x;
        if (t == TRB_T_L) {
          x = random_av(s, depth + 1);
        } else if (t == TRB_T_NS) {
          trb_dec d = random_dec(s);
          x = trb_av_new_n(&d);
        } else {
          random_bytes(s, buf, &n, t == TRB_T_SS);
          x = t == TRB_T_SS ? trb_av_new_s(buf, n) : trb_av_new_b(buf, n);
        }
        assert_int_equal(trb_av_l_append(v, x), TRB_OK);
      }
      return v;
    }
  }
}

static trb_av *random_item(uint64_t *s) {
  trb_av *item = trb_av_new_m();
  size_t k = 1 + rnd(s, 8);
  for (size_t i = 0; i < k; i++) {
    const char *name = NAMES[rnd(s, 10)];
    assert_int_equal(trb_av_m_set(item, name, strlen(name), random_av(s, 1)), TRB_OK);
  }
  return item;
}

/* The INSERT envelope of image bytes img (straight from the bytes) and
 * the snapshot envelope of tree (through the tree) differ in exactly the
 * op byte: 'c' against 'r'. */
static void check_same_but_op(const trb_buf *c, const trb_buf *r) {
  assert_int_equal(c->len, r->len);
  size_t diffs = 0;
  for (size_t i = 0; i < c->len; i++)
    if (c->p[i] != r->p[i]) {
      diffs++;
      assert_int_equal(c->p[i], 'c');
      assert_int_equal(r->p[i], 'r');
    }
  assert_int_equal(diffs, 1);
}

static void test_generated_items_agree(void **state) {
  (void)state;
  uint64_t seed = trb_test_seed() ^ 0xA7E0, s = seed;
  trb_avro *a = avro_ok();
  reader rd;
  reader_init(&rd, trb_avro_value_schema(a));
  trb_avro_source src = {.table = "T", .region = "r"};
  trb_buf img, viac, viar;
  trb_buf_init(&img, 0);
  trb_buf_init(&viac, 0);
  trb_buf_init(&viar, 0);
  for (int iter = 0; iter < 400; iter++) {
    trb_av *item = random_item(&s);
    trb_buf_reset(&img);
    trb_buf_reset(&viac);
    trb_buf_reset(&viar);
    assert_int_equal(trb_av_encode(item, &img), TRB_OK);
    trb_wal_rec r = {.lsn = (uint64_t)iter, .commit_us = 5000, .kind = TRB_WAL_INSERT,
                     .table = "T", .table_len = 1, .new_img = img.p, .new_len = img.len};
    assert_int_equal(trb_avro_encode_change(a, &r, &src, &viac, NULL), TRB_OK);
    assert_int_equal(trb_avro_encode_read(a, item, (uint64_t)iter, 5000, &src, &viar, NULL),
                     TRB_OK);
    check_same_but_op(&viac, &viar);
    read_datum(&rd, viac.p, viac.len);
    avro_value_t u = field(&rd.val, "after"), m;
    assert_int_equal(branch(&u, &m), 1);
    trb_av *back = map_from_avro(&m);
    if (!av_same(back, item)) {
      char *g = trb_item_to_json_text(back), *w = trb_item_to_json_text(item);
      fail_msg("seed %llu iter %d:\n got  %s\n want %s", (unsigned long long)seed, iter, g, w);
    }
    trb_av_destroy(back);
    trb_av_destroy(item);
  }
  trb_buf_fini(&img);
  trb_buf_fini(&viac);
  trb_buf_fini(&viar);
  reader_fini(&rd);
  trb_avro_destroy(a);
}

/* Damaged image bytes: the straight-from-bytes reader refuses exactly what
 * trb_av_decode refuses (TRB_ECORRUPT, TRB_EVERSION), refuses a valid value
 * that is no item or holds bad UTF-8 (TRB_ECORRUPT), and otherwise writes
 * what the tree encoder writes for the decoded tree. */
static void test_damaged_images(void **state) {
  (void)state;
  uint64_t seed = trb_test_seed() ^ 0xD4A6, s = seed;
  trb_avro *a = avro_ok();
  trb_avro_source src = {.table = "T"};
  trb_buf img, viac, viar;
  trb_buf_init(&img, 0);
  trb_buf_init(&viac, 0);
  trb_buf_init(&viar, 0);
  size_t accepted = 0, refused = 0;
  for (int iter = 0; iter < 3000; iter++) {
    trb_av *item = random_item(&s);
    trb_buf_reset(&img);
    assert_int_equal(trb_av_encode(item, &img), TRB_OK);
    trb_av_destroy(item);
    /* one to three damages: a changed byte, a cut, a byte more */
    int k = 1 + (int)rnd(&s, 3);
    for (int j = 0; j < k && img.len > 0; j++) {
      uint64_t what = rnd(&s, 4);
      size_t at = rnd(&s, img.len);
      if (what <= 1) {
        img.p[at] = what == 0 ? (unsigned char)rnd(&s, 256) : (unsigned char)(img.p[at] ^ 0x80);
      } else if (what == 2) {
        img.len = at;
      } else {
        assert_int_equal(trb_buf_put_u8(&img, 0), TRB_OK);
        memmove(img.p + at + 1, img.p + at, img.len - at - 1);
        img.p[at] = (unsigned char)rnd(&s, 256);
      }
    }
    trb_buf_reset(&viac);
    trb_buf_reset(&viar);
    trb_wal_rec r = {.lsn = 1, .kind = TRB_WAL_INSERT, .table = "T", .table_len = 1,
                     .new_img = img.p ? img.p : (const void *)"", .new_len = img.len};
    trb_err rc = trb_avro_encode_change(a, &r, &src, &viac, NULL);
    trb_av *tree = NULL;
    trb_err drc = trb_av_decode(r.new_img, img.len, &tree);
    if (drc) {
      if (rc != drc)
        fail_msg("seed %llu iter %d: decode says %s, the Avro reader %s",
                 (unsigned long long)seed, iter, trb_err_name(drc), trb_err_name(rc));
      assert_int_equal(viac.len, 0);
      refused++;
      continue;
    }
    trb_err trc = tree->type == TRB_T_M
                      ? trb_avro_encode_read(a, tree, 1, 0, &src, &viar, NULL)
                      : TRB_EINVAL;
    trb_av_destroy(tree);
    if (trc) { /* not a map, or bad UTF-8: damaged for the WAL path */
      assert_int_equal(rc, TRB_ECORRUPT);
      refused++;
      continue;
    }
    if (rc) fail_msg("seed %llu iter %d: refused (%s) what decodes", (unsigned long long)seed,
                     iter, trb_err_name(rc));
    check_same_but_op(&viac, &viar);
    accepted++;
  }
  printf("# damaged images: %zu accepted, %zu refused\n", accepted, refused);
  assert_true(accepted > 0 && refused > 0);
  trb_buf_fini(&img);
  trb_buf_fini(&viac);
  trb_buf_fini(&viar);
  trb_avro_destroy(a);
}

/* Numbers: the encoder's own formatting equals trb_dec_format's on every
 * length and exponent (the reader checks the text is canonical and the
 * value the same). */
static void test_numbers_are_exact(void **state) {
  (void)state;
  uint64_t s = trb_test_seed() ^ 0x4E55;
  trb_avro *a = avro_ok();
  trb_avro_source src = {.table = "T"};
  trb_buf b;
  trb_buf_init(&b, 0);
  char want[TRB_DEC_STR_MAX];
  for (int iter = 0; iter < 2000; iter++) {
    trb_dec d = random_dec(&s);
    if (iter == 0) trb_dec_from_i64(0, &d);
    if (iter == 1) trb_dec_parse("-1E-130", 7, &d, NULL);
    if (iter == 2) trb_dec_parse("9.9999999999999999999999999999999999999E+125", 44, &d, NULL);
    if (iter == 3) trb_dec_parse("18446744073709551616", 20, &d, NULL); /* 2^64 */
    if (iter == 4) trb_dec_parse("10000000000000000000", 20, &d, NULL); /* 10^19 */
    if (iter == 5) trb_dec_parse("-9999999999999999999.5", 22, &d, NULL);
    trb_av *item = trb_av_new_m();
    assert_int_equal(trb_av_m_set(item, "n", 1, trb_av_new_n(&d)), TRB_OK);
    trb_buf_reset(&b);
    assert_int_equal(trb_avro_encode_key(a, item, &b, NULL), TRB_OK);
    /* the key datum: 02 (one entry) 02 'n', N's head 00 02, the string */
    size_t n = trb_dec_format(&d, want, sizeof want);
    assert_true(b.len > 6);
    uint64_t len = 0;
    int shift = 0;
    size_t off = 5;
    while (b.p[off] & 0x80) len |= (uint64_t)(b.p[off++] & 0x7f) << shift, shift += 7;
    len |= (uint64_t)b.p[off++] << shift;
    assert_int_equal(len / 2, n);
    if (memcmp(b.p + off, want, n))
      fail_msg("number %s came out as %.*s", want, (int)n, (const char *)b.p + off);
    trb_av_destroy(item);
  }
  /* a trb_dec no constructor makes (39 digits) is refused, not misprinted */
  trb_av *item = trb_av_new_m();
  trb_dec big = {.coef = (unsigned __int128)UINT64_C(10000000000000000000) *
                         UINT64_C(10000000000000000000)}; /* 10^38 */
  assert_int_equal(trb_av_m_set(item, "n", 1, trb_av_new_n(&big)), TRB_OK);
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_avro_encode_read(a, item, 1, 1, &src, &b, &st), TRB_EINVAL);
  assert_non_null(strstr(trb_status_msg(&st), "number"));
  trb_av_destroy(item);
  trb_buf_fini(&b);
  trb_avro_destroy(a);
}

/* Not a benchmark (bench/ has those): a sanity bound so a pathological
 * slowdown shows up, printed for the record. */
static void test_throughput_sanity(void **state) {
  (void)state;
  trb_avro *a = avro_ok();
  fixture f;
  const char *item =
      "{\"id\":{\"S\":\"user#000123\"},\"sk\":{\"N\":\"1700000000123\"},"
      "\"name\":{\"S\":\"Ada Lovelace\"},\"email\":{\"S\":\"ada@example.com\"},"
      "\"age\":{\"N\":\"36\"},\"score\":{\"N\":\"98.625\"},\"active\":{\"BOOL\":true},"
      "\"tags\":{\"SS\":[\"math\",\"engines\",\"poetry\"]},"
      "\"addr\":{\"M\":{\"city\":{\"S\":\"London\"},\"zip\":{\"S\":\"W1\"}}},"
      "\"blob\":{\"B\":\"AAECAwQFBgcICQoLDA0ODw==\"}}";
  fx_init(&f, TRB_WAL_MODIFY, 1000, "{\"id\":{\"S\":\"user#000123\"}}", item, item);
  trb_buf b;
  trb_buf_init(&b, 0);
  struct timespec t0, t1;
  int n = 20000;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < n; i++) {
    trb_buf_reset(&b);
    assert_int_equal(trb_avro_encode_change(a, &f.r, &SRC, &b, NULL), TRB_OK);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("# avro envelope: %zu-byte item images, %zu-byte datum, %.0f MODIFY encodes/s "
         "(this build)\n",
         f.r.new_len, b.len, n / s);
  trb_buf_fini(&b);
  fx_fini(&f);
  trb_avro_destroy(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create_and_fingerprints),
      cmocka_unit_test(test_fingerprint_is_crc64_avro_of_canonical_form),
      cmocka_unit_test(test_embedded_schemas_equal_files),
      cmocka_unit_test(test_insert_all_types),
      cmocka_unit_test(test_modify_has_both_images_and_txn),
      cmocka_unit_test(test_remove_has_before_only),
      cmocka_unit_test(test_snapshot_read),
      cmocka_unit_test(test_key_is_deterministic),
      cmocka_unit_test(test_change_key),
      cmocka_unit_test(test_framing),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_generated_items_agree),
      cmocka_unit_test(test_damaged_images),
      cmocka_unit_test(test_numbers_are_exact),
      cmocka_unit_test(test_throughput_sanity),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
