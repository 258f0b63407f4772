/*
 * test_stream_record.c -- WAL record -> DynamoDB Streams record
 * (transform/stream_record.c): image presence for every view type and event
 * kind, the exact JSON shape of spec 7.7 (pinned against the spec's example
 * record, whose SizeBytes is 56), eventID and sequence-number formats pinned
 * by golden values, seqno parsing and ordering, refusals (non-item kinds,
 * corrupt or missing images, bad arguments) and the pretty line.
 *
 * Items are written as DynamoDB JSON, turned into trb_av and encoded with
 * trb_av_encode to fill a trb_wal_rec by hand, exactly as the engine does.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/value.h"
#include "testutil.h"
#include "transform/stream_record.h"

static trb_av *item_ok(const char *text) {
  trb_status st;
  trb_status_init(&st);
  trb_av *v = NULL;
  trb_err rc = trb_item_from_json_text(text, strlen(text), &v, &st);
  if (rc) fprintf(stderr, "bad test item %s: %s\n", text, trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return v;
}

/* A WAL record built by hand; owns the encoded bytes. */
typedef struct fixture {
  trb_wal_rec r;
  unsigned char *keys, *old, *nw;
} fixture;

static unsigned char *encode(const char *json, size_t *len) {
  trb_av *v = item_ok(json);
  trb_buf b;
  trb_buf_init(&b, 0);
  assert_int_equal(trb_av_encode(v, &b), TRB_OK);
  trb_av_destroy(v);
  return trb_buf_steal(&b, len);
}

/* keys/old/new are DynamoDB JSON items, or NULL for an absent image. */
static void fx_init(fixture *f, int kind, uint64_t lsn, const char *keys, const char *old,
                    const char *nw) {
  memset(f, 0, sizeof *f);
  f->r.lsn = lsn;
  f->r.commit_us = 1479499740123456LL;
  f->r.kind = (uint8_t)kind;
  f->r.table_id = 7;
  f->r.table = "T";
  f->r.table_len = 1;
  if (keys) f->r.keys = f->keys = encode(keys, &f->r.keys_len);
  if (old) f->r.old_img = f->old = encode(old, &f->r.old_len);
  if (nw) f->r.new_img = f->nw = encode(nw, &f->r.new_len);
}

static void fx_fini(fixture *f) {
  free(f->keys);
  free(f->old);
  free(f->nw);
}

/* trb_stream_record_text gives exactly the bytes jansson writes for the
 * object (compact, in order), appended after what the buffer held. */
static void assert_text_same(const trb_wal_rec *r, const trb_stream_rec_opts *o, const json_t *j) {
  char *want = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
  assert_non_null(want);
  trb_buf b;
  trb_buf_init(&b, 0);
  assert_int_equal(trb_buf_append(&b, "prefix", 6), TRB_OK);
  assert_int_equal(trb_stream_record_text(r, o, &b, NULL), TRB_OK);
  if (b.len - 6 != strlen(want) || memcmp(b.p + 6, want, b.len - 6))
    fail_msg("text differs:\n  text    %.*s\n  jansson %s", (int)(b.len - 6), (const char *)b.p + 6,
             want);
  trb_buf_fini(&b);
  free(want);
}

static json_t *record_ok(const trb_wal_rec *r, trb_view view, const char *region) {
  trb_stream_rec_opts o = {.view = view, .region = region};
  trb_status st;
  trb_status_init(&st);
  json_t *j = NULL;
  trb_err rc = trb_stream_record(r, &o, &j, &st);
  if (rc) fprintf(stderr, "trb_stream_record: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  assert_non_null(j);
  assert_text_same(r, &o, j);
  return j;
}

static trb_err record_err(const trb_wal_rec *r, trb_view view, const char *region,
                          trb_status *st) {
  trb_stream_rec_opts o = {.view = view, .region = region};
  trb_status_init(st);
  json_t *j = (json_t *)(uintptr_t)1; /* must be reset to NULL */
  trb_err rc = trb_stream_record(r, &o, &j, st);
  assert_int_not_equal(rc, TRB_OK);
  assert_null(j);
  assert_int_equal(st->code, rc);
  assert_true(strlen(st->msg) > 0);
  return rc;
}

/* The image member decodes back to exactly the item written as `want`. */
static void assert_image(const json_t *ddb, const char *member, const char *want) {
  json_t *img = json_object_get(ddb, member);
  assert_non_null(img);
  trb_av *got = NULL, *exp = item_ok(want);
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_item_from_json(img, &got, &st), TRB_OK);
  assert_true(trb_av_equal(got, exp));
  assert_int_equal(got->u.m.n, exp->u.m.n);
  trb_av_destroy(got);
  trb_av_destroy(exp);
}

static size_t item_size_of(const char *json) {
  trb_av *v = item_ok(json);
  size_t n = trb_item_size(v);
  trb_av_destroy(v);
  return n;
}

/* ---- view types ---- */

static void test_view_names(void **state) {
  (void)state;
  static const struct { trb_view v; const char *name; } t[] = {
      {TRB_VIEW_KEYS_ONLY, "KEYS_ONLY"},
      {TRB_VIEW_NEW_IMAGE, "NEW_IMAGE"},
      {TRB_VIEW_OLD_IMAGE, "OLD_IMAGE"},
      {TRB_VIEW_NEW_AND_OLD_IMAGES, "NEW_AND_OLD_IMAGES"},
  };
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    assert_string_equal(trb_view_name(t[i].v), t[i].name);
    trb_view v = (trb_view)0;
    assert_int_equal(trb_view_parse(t[i].name, &v), 0);
    assert_int_equal(v, t[i].v);
  }
  assert_string_equal(trb_view_name((trb_view)0), "?");
  assert_string_equal(trb_view_name((trb_view)5), "?");
  static const char *bad[] = {"", "keys_only", "KEYS_ONLY ", "NEW", "NEW_AND_OLD_IMAGE", "OLD"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    trb_view v = TRB_VIEW_OLD_IMAGE;
    assert_int_equal(trb_view_parse(bad[i], &v), -1);
    assert_int_equal(v, TRB_VIEW_OLD_IMAGE); /* untouched */
  }
  trb_view v;
  assert_int_equal(trb_view_parse(NULL, &v), -1);
}

/* ---- images: every view x every kind ---- */

#define KEYS "{\"id\":{\"S\":\"a\"},\"sk\":{\"N\":\"7\"}}"
#define OLD                                                                         \
  "{\"id\":{\"S\":\"a\"},\"sk\":{\"N\":\"7\"},\"msg\":{\"S\":\"before\"},"          \
  "\"doc\":{\"M\":{\"l\":{\"L\":[{\"N\":\"1\"},{\"BOOL\":true},{\"NULL\":true}]}}}," \
  "\"tags\":{\"SS\":[\"x\",\"y\"]}}"
#define NEW                                                                \
  "{\"id\":{\"S\":\"a\"},\"sk\":{\"N\":\"7\"},\"msg\":{\"S\":\"after\"},"  \
  "\"bin\":{\"B\":\"AAEC\"},\"nums\":{\"NS\":[\"1.5\",\"-2\"]}}"

static void test_views_by_kinds(void **state) {
  (void)state;
  /* Spec 7.7, written out rather than computed: 'o' OldImage, 'n' NewImage. */
  static const struct {
    trb_view view;
    int kind;
    const char *images;
  } t[] = {
      {TRB_VIEW_KEYS_ONLY, TRB_WAL_INSERT, ""},
      {TRB_VIEW_KEYS_ONLY, TRB_WAL_MODIFY, ""},
      {TRB_VIEW_KEYS_ONLY, TRB_WAL_REMOVE, ""},
      {TRB_VIEW_NEW_IMAGE, TRB_WAL_INSERT, "n"},
      {TRB_VIEW_NEW_IMAGE, TRB_WAL_MODIFY, "n"},
      {TRB_VIEW_NEW_IMAGE, TRB_WAL_REMOVE, ""},
      {TRB_VIEW_OLD_IMAGE, TRB_WAL_INSERT, ""},
      {TRB_VIEW_OLD_IMAGE, TRB_WAL_MODIFY, "o"},
      {TRB_VIEW_OLD_IMAGE, TRB_WAL_REMOVE, "o"},
      {TRB_VIEW_NEW_AND_OLD_IMAGES, TRB_WAL_INSERT, "n"},
      {TRB_VIEW_NEW_AND_OLD_IMAGES, TRB_WAL_MODIFY, "on"},
      {TRB_VIEW_NEW_AND_OLD_IMAGES, TRB_WAL_REMOVE, "o"},
  };
  static const char *names[] = {[TRB_WAL_INSERT] = "INSERT", [TRB_WAL_MODIFY] = "MODIFY",
                                [TRB_WAL_REMOVE] = "REMOVE"};
  size_t ks = item_size_of(KEYS), os = item_size_of(OLD), ns = item_size_of(NEW);
  assert_int_equal(ks, 2 + 1 + 2 + 2); /* id:"a", sk:7 */
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    fixture f;
    /* As the engine writes them: INSERT has no old image, REMOVE no new. */
    fx_init(&f, t[i].kind, 100 + i, KEYS, t[i].kind == TRB_WAL_INSERT ? NULL : OLD,
            t[i].kind == TRB_WAL_REMOVE ? NULL : NEW);
    json_t *j = record_ok(&f.r, t[i].view, "eu-west-1");
    assert_string_equal(json_string_value(json_object_get(j, "eventName")), names[t[i].kind]);
    json_t *ddb = json_object_get(j, "dynamodb");
    assert_true(json_is_object(ddb));
    assert_image(ddb, "Keys", KEYS);
    int want_old = strchr(t[i].images, 'o') != NULL, want_new = strchr(t[i].images, 'n') != NULL;
    if (want_old) assert_image(ddb, "OldImage", OLD);
    else assert_null(json_object_get(ddb, "OldImage"));
    if (want_new) assert_image(ddb, "NewImage", NEW);
    else assert_null(json_object_get(ddb, "NewImage"));
    assert_string_equal(json_string_value(json_object_get(ddb, "StreamViewType")),
                        trb_view_name(t[i].view));
    json_t *sz = json_object_get(ddb, "SizeBytes");
    assert_true(json_is_integer(sz));
    assert_int_equal(json_integer_value(sz),
                     ks + (want_old ? os : 0) + (want_new ? ns : 0));
    json_decref(j);
    fx_fini(&f);
  }
}

/* Both images present in the WAL record whatever the kind: the view and
 * the kind decide, not what the record happens to carry. */
static void test_images_follow_kind_not_presence(void **state) {
  (void)state;
  fixture f;
  fx_init(&f, TRB_WAL_INSERT, 5, KEYS, OLD, NEW);
  json_t *j = record_ok(&f.r, TRB_VIEW_NEW_AND_OLD_IMAGES, "r");
  assert_null(json_object_get(json_object_get(j, "dynamodb"), "OldImage"));
  json_decref(j);
  fx_fini(&f);
  fx_init(&f, TRB_WAL_REMOVE, 5, KEYS, OLD, NEW);
  j = record_ok(&f.r, TRB_VIEW_NEW_AND_OLD_IMAGES, "r");
  assert_null(json_object_get(json_object_get(j, "dynamodb"), "NewImage"));
  json_decref(j);
  fx_fini(&f);
}

/* ---- exact shape, against the spec's example record ---- */

#define EX_KEYS "{\"Id\":{\"N\":\"1\"}}"
#define EX_OLD "{\"Id\":{\"N\":\"1\"},\"Message\":{\"S\":\"New item!\"}}"
#define EX_NEW "{\"Id\":{\"N\":\"1\"},\"Message\":{\"S\":\"This item has changed\"}}"

static void assert_members(const json_t *o, const char *const *want, size_t n) {
  assert_int_equal(json_object_size(o), n);
  size_t i = 0;
  for (void *it = json_object_iter((json_t *)o); it; it = json_object_iter_next((json_t *)o, it))
    assert_string_equal(json_object_iter_key(it), want[i++]);
  assert_int_equal(i, n);
}

static void test_shape_of_spec_example(void **state) {
  (void)state;
  fixture f;
  fx_init(&f, TRB_WAL_MODIFY, 3218256412ULL, EX_KEYS, EX_OLD, EX_NEW);
  f.r.commit_us = 1479499740999999LL; /* rounds DOWN to ...740 */
  json_t *j = record_ok(&f.r, TRB_VIEW_NEW_AND_OLD_IMAGES, "us-west-2");

  static const char *top[] = {"eventID",     "eventName", "eventVersion",
                              "eventSource", "awsRegion", "dynamodb"};
  assert_members(j, top, sizeof top / sizeof *top);
  static const char *ddb_members[] = {"ApproximateCreationDateTime",
                                      "Keys",
                                      "OldImage",
                                      "NewImage",
                                      "SequenceNumber",
                                      "SizeBytes",
                                      "StreamViewType"};
  json_t *ddb = json_object_get(j, "dynamodb");
  assert_members(ddb, ddb_members, sizeof ddb_members / sizeof *ddb_members);

  /* Everything but the id is the spec's record byte for byte (SizeBytes 56
   * included: 4 + 20 + 32). */
  char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
  assert_non_null(text);
  assert_string_equal(
      text,
      "{\"eventID\":\"312f23f8699ff5daa613cefa7fbead00\",\"eventName\":\"MODIFY\","
      "\"eventVersion\":\"1.1\",\"eventSource\":\"aws:dynamodb\",\"awsRegion\":\"us-west-2\","
      "\"dynamodb\":{\"ApproximateCreationDateTime\":1479499740,"
      "\"Keys\":{\"Id\":{\"N\":\"1\"}},"
      "\"OldImage\":{\"Id\":{\"N\":\"1\"},\"Message\":{\"S\":\"New item!\"}},"
      "\"NewImage\":{\"Id\":{\"N\":\"1\"},\"Message\":{\"S\":\"This item has changed\"}},"
      "\"SequenceNumber\":\"100000000003218256412\",\"SizeBytes\":56,"
      "\"StreamViewType\":\"NEW_AND_OLD_IMAGES\"}}");
  free(text);

  /* Types, checked one by one as an SDK would read them. */
  assert_true(json_is_string(json_object_get(j, "eventID")));
  assert_true(json_is_string(json_object_get(j, "eventVersion")));
  assert_true(json_is_integer(json_object_get(ddb, "ApproximateCreationDateTime")));
  assert_true(json_is_string(json_object_get(ddb, "SequenceNumber")));
  assert_true(json_is_integer(json_object_get(ddb, "SizeBytes")));
  json_decref(j);

  /* KEYS_ONLY: the same record without images, SizeBytes of the keys only. */
  j = record_ok(&f.r, TRB_VIEW_KEYS_ONLY, "us-west-2");
  ddb = json_object_get(j, "dynamodb");
  static const char *ko[] = {"ApproximateCreationDateTime", "Keys", "SequenceNumber",
                             "SizeBytes", "StreamViewType"};
  assert_members(ddb, ko, sizeof ko / sizeof *ko);
  assert_int_equal(json_integer_value(json_object_get(ddb, "SizeBytes")), 4);
  assert_string_equal(json_string_value(json_object_get(ddb, "StreamViewType")), "KEYS_ONLY");
  json_decref(j);
  fx_fini(&f);
}

static void test_creation_time_rounds_down(void **state) {
  (void)state;
  static const struct { int64_t us; json_int_t s; } t[] = {
      {0, 0},
      {999999, 0},
      {1000000, 1},
      {1999999, 1},
      {1479499740000000LL, 1479499740},
      {1479499740999999LL, 1479499740},
      {-1, -1}, /* floor, not truncation */
      {-1000000, -1},
      {-1000001, -2},
  };
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    fixture f;
    fx_init(&f, TRB_WAL_INSERT, 1, KEYS, NULL, NEW);
    f.r.commit_us = t[i].us;
    json_t *j = record_ok(&f.r, TRB_VIEW_KEYS_ONLY, "r");
    json_t *v = json_object_get(json_object_get(j, "dynamodb"), "ApproximateCreationDateTime");
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), t[i].s);
    json_decref(j);
    fx_fini(&f);
  }
}

static void test_transaction_id(void **state) {
  (void)state;
  fixture f;
  fx_init(&f, TRB_WAL_MODIFY, 9, KEYS, OLD, NEW);
  json_t *j = record_ok(&f.r, TRB_VIEW_NEW_IMAGE, "r");
  assert_null(json_object_get(j, "transactionId"));
  assert_int_equal(json_object_size(j), 6);
  json_decref(j);

  f.r.txn_id = 12345678901234567890ULL;
  j = record_ok(&f.r, TRB_VIEW_NEW_IMAGE, "r");
  json_t *t = json_object_get(j, "transactionId");
  assert_true(json_is_string(t));
  assert_string_equal(json_string_value(t), "12345678901234567890");
  assert_null(json_object_get(json_object_get(j, "dynamodb"), "transactionId"));
  json_decref(j);

  f.r.txn_id = 1;
  j = record_ok(&f.r, TRB_VIEW_NEW_IMAGE, "r");
  assert_string_equal(json_string_value(json_object_get(j, "transactionId")), "1");
  json_decref(j);
  fx_fini(&f);
}

/* A REMOVE made by Time to Live carries userIdentity (Type Service,
 * PrincipalId dynamodb.amazonaws.com) after dynamodb and before
 * transactionId, in the text form too; nothing else does. */
static char *pretty_ok(const trb_wal_rec *r, trb_view view);

static void test_ttl_user_identity(void **state) {
  (void)state;
  fixture f;
  fx_init(&f, TRB_WAL_REMOVE, 11, KEYS, OLD, NULL);
  json_t *j = record_ok(&f.r, TRB_VIEW_NEW_AND_OLD_IMAGES, "r");
  assert_null(json_object_get(j, "userIdentity"));
  json_decref(j);
  f.r.flags = TRB_WAL_F_TTL;
  f.r.txn_id = 5;
  j = record_ok(&f.r, TRB_VIEW_NEW_AND_OLD_IMAGES, "r");
  json_t *u = json_object_get(j, "userIdentity");
  assert_true(json_is_object(u));
  assert_int_equal(json_object_size(u), 2);
  assert_string_equal(json_string_value(json_object_get(u, "Type")), "Service");
  assert_string_equal(json_string_value(json_object_get(u, "PrincipalId")),
                      "dynamodb.amazonaws.com");
  char *txt = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
  const char *pu = strstr(txt, "\"userIdentity\""), *pd = strstr(txt, "\"dynamodb\""),
             *pt = strstr(txt, "\"transactionId\"");
  assert_true(pd && pu && pt && pd < pu && pu < pt);
  free(txt);
  json_decref(j);
  char *p = pretty_ok(&f.r, TRB_VIEW_KEYS_ONLY);
  assert_non_null(strstr(p, "  REMOVE(ttl)  "));
  free(p);
  fx_fini(&f);
  /* the flag on a MODIFY (never written so) adds nothing */
  fx_init(&f, TRB_WAL_MODIFY, 12, KEYS, OLD, NEW);
  f.r.flags = TRB_WAL_F_TTL;
  j = record_ok(&f.r, TRB_VIEW_NEW_AND_OLD_IMAGES, "r");
  assert_null(json_object_get(j, "userIdentity"));
  json_decref(j);
  fx_fini(&f);
}

/* ---- eventID ---- */

static const char *event_id_of(json_t *j) { return json_string_value(json_object_get(j, "eventID")); }

static void test_event_id(void **state) {
  (void)state;
  fixture f;
  fx_init(&f, TRB_WAL_MODIFY, 3218256412ULL, KEYS, OLD, NEW);
  json_t *a = record_ok(&f.r, TRB_VIEW_NEW_AND_OLD_IMAGES, "r");
  const char *id = event_id_of(a);
  assert_int_equal(strlen(id), 32);
  for (size_t i = 0; i < 32; i++)
    assert_true((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'));
  /* SHA-256(u64le(7) || u64le(3218256412) || i64le(1479499740123456) || "T")[0..16),
   * computed independently (Python's hashlib). */
  assert_string_equal(id, "490e76c2b193832e62ecd2ff384831e6");

  /* Re-delivery: the same record -> the same id, whatever the view or region. */
  json_t *b = record_ok(&f.r, TRB_VIEW_KEYS_ONLY, "other-region");
  assert_string_equal(event_id_of(b), id);
  json_decref(b);

  /* Another server's record with the same table id and LSN (table ids and
   * LSNs both start at 1 in every data directory): its own commit time or
   * table name gives another id. */
  f.r.commit_us += 5000000;
  b = record_ok(&f.r, TRB_VIEW_NEW_AND_OLD_IMAGES, "r");
  assert_string_equal(event_id_of(b), "7803597e78e534982010a9fccd508c1b");
  json_decref(b);
  f.r.commit_us -= 5000000;
  f.r.table = "U";
  b = record_ok(&f.r, TRB_VIEW_NEW_AND_OLD_IMAGES, "r");
  assert_string_equal(event_id_of(b), "407fde32c112b33efbefadb450303efc");
  json_decref(b);
  f.r.table = "T";
  f.r.commit_us += 5000000;

  f.r.lsn++;
  b = record_ok(&f.r, TRB_VIEW_NEW_AND_OLD_IMAGES, "r");
  assert_string_equal(event_id_of(b), "cf536071ca8f2bebba431654e80f9ee1");
  json_decref(b);

  f.r.lsn--;
  f.r.table_id = 8;
  b = record_ok(&f.r, TRB_VIEW_NEW_AND_OLD_IMAGES, "r");
  assert_string_equal(event_id_of(b), "5303bd32774e2df23d859347cd85d706");
  json_decref(b);

  /* Many LSNs, no repeated id. */
  enum { N = 200 };
  char (*ids)[33] = calloc(N, sizeof *ids);
  assert_non_null(ids);
  f.r.table_id = 7;
  for (int i = 0; i < N; i++) {
    f.r.lsn = (uint64_t)i;
    b = record_ok(&f.r, TRB_VIEW_KEYS_ONLY, "r");
    strcpy(ids[i], event_id_of(b));
    json_decref(b);
    for (int k = 0; k < i; k++) assert_string_not_equal(ids[k], ids[i]);
  }
  free(ids);
  json_decref(a);
  fx_fini(&f);
}

/* ---- sequence numbers ---- */

static void test_seqno_golden_and_roundtrip(void **state) {
  (void)state;
  static const struct { uint64_t lsn; const char *s; } t[] = {
      {0, "100000000000000000000"},
      {1, "100000000000000000001"},
      {42, "100000000000000000042"},
      {3218256412ULL, "100000000003218256412"},
      {UINT64_MAX, "118446744073709551615"},
  };
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    char s[TRB_SEQNO_BUF];
    memset(s, 'x', sizeof s);
    trb_seqno_format(t[i].lsn, s);
    assert_string_equal(s, t[i].s);
    uint64_t lsn = 12345;
    trb_status st;
    trb_status_init(&st);
    assert_int_equal(trb_seqno_parse(t[i].s, &lsn, &st), TRB_OK);
    assert_true(lsn == t[i].lsn);
  }
  uint64_t rng = trb_test_seed();
  for (int i = 0; i < 10000; i++) {
    uint64_t lsn = trb_test_rand(&rng) >> (trb_test_rand(&rng) % 64);
    char s[TRB_SEQNO_BUF];
    trb_seqno_format(lsn, s);
    assert_int_equal(strlen(s), 21);
    uint64_t back = 0;
    assert_int_equal(trb_seqno_parse(s, &back, NULL), TRB_OK);
    assert_true(back == lsn);
  }
}

static int sign(int x) { return (x > 0) - (x < 0); }

static void test_seqno_order(void **state) {
  (void)state;
  uint64_t rng = trb_test_seed() ^ 0x9E3779B97F4A7C15ULL;
  for (int i = 0; i < 20000; i++) {
    /* Mixed magnitudes, so numbers of different digit counts meet. */
    uint64_t a = trb_test_rand(&rng) >> (trb_test_rand(&rng) % 64);
    uint64_t b = i % 10 == 0 ? a + (a != UINT64_MAX) : trb_test_rand(&rng) >> (trb_test_rand(&rng) % 64);
    char sa[TRB_SEQNO_BUF], sb[TRB_SEQNO_BUF];
    trb_seqno_format(a, sa);
    trb_seqno_format(b, sb);
    assert_int_equal(strlen(sa), strlen(sb)); /* equal length: string order = integer order */
    int want = (a > b) - (a < b);
    assert_int_equal(sign(strcmp(sa, sb)), want);
  }
  /* The neighbours where a naive format would break. */
  static const uint64_t edge[] = {0, 1, 9, 10, 99, 100, 9999999999ULL, 10000000000ULL,
                                  UINT64_MAX - 1, UINT64_MAX};
  for (size_t i = 0; i + 1 < sizeof edge / sizeof *edge; i++) {
    char sa[TRB_SEQNO_BUF], sb[TRB_SEQNO_BUF];
    trb_seqno_format(edge[i], sa);
    trb_seqno_format(edge[i + 1], sb);
    assert_true(strcmp(sa, sb) < 0);
  }
}

static void test_seqno_parse_errors(void **state) {
  (void)state;
  static const char *bad[] = {
      "",                                          /* empty */
      "abc",                                       /* not digits */
      "10000000000000000004x",                     /* 21 chars, one not a digit */
      " 100000000000000000042",                    /* leading space */
      "100000000000000000042 ",                    /* trailing space */
      "-100000000000000000042",                    /* sign */
      "+100000000000000000042",
      "1000000000000000000.2",
      "10000000000000000004",                      /* 20 digits: too short */
      "42",
      "10000000000000000000000000000000000000000", /* 41 digits: too long */
      "200000000000000000042",                     /* 21 digits, not our leading 1 */
      "000000000000000000042",
      "1000000000000000000042",                    /* 22 digits: DynamoDB-valid, not ours */
      "6200000000002513011398",                    /* AWS-style */
      "1000000000000000000000000000000000000000",  /* 40 digits */
      "118446744073709551616",                     /* UINT64_MAX + 1 */
      "199999999999999999999",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    uint64_t lsn = 777;
    trb_status st;
    trb_status_init(&st);
    trb_err rc = trb_seqno_parse(bad[i], &lsn, &st);
    if (rc != TRB_EINVAL) fprintf(stderr, "accepted bad seqno \"%s\"\n", bad[i]);
    assert_int_equal(rc, TRB_EINVAL);
    assert_int_equal(st.code, TRB_EINVAL);
    assert_true(strlen(st.msg) > 0);
    assert_true(lsn == 777); /* untouched */
  }
  /* Distinct messages for the distinct mistakes. */
  trb_status st;
  uint64_t lsn;
  trb_status_init(&st);
  trb_seqno_parse("12x", &lsn, &st);
  assert_non_null(strstr(st.msg, "not a digit"));
  trb_seqno_parse("123", &lsn, &st);
  assert_non_null(strstr(st.msg, "got 3"));
  trb_seqno_parse("1000000000000000000042", &lsn, &st);
  assert_non_null(strstr(st.msg, "not issued by this stream"));
  assert_int_equal(trb_seqno_parse(NULL, &lsn, &st), TRB_EINVAL);
  /* st may be NULL */
  assert_int_equal(trb_seqno_parse("", &lsn, NULL), TRB_EINVAL);
}

/* The record's SequenceNumber is trb_seqno_format(lsn) and parses back. */
static void test_record_sequence_number(void **state) {
  (void)state;
  static const uint64_t lsns[] = {0, 1, 42, UINT64_MAX};
  for (size_t i = 0; i < sizeof lsns / sizeof *lsns; i++) {
    fixture f;
    fx_init(&f, TRB_WAL_REMOVE, lsns[i], KEYS, OLD, NULL);
    json_t *j = record_ok(&f.r, TRB_VIEW_OLD_IMAGE, "r");
    const char *s = json_string_value(json_object_get(json_object_get(j, "dynamodb"), "SequenceNumber"));
    assert_non_null(s);
    char want[TRB_SEQNO_BUF];
    trb_seqno_format(lsns[i], want);
    assert_string_equal(s, want);
    uint64_t back = 5;
    assert_int_equal(trb_seqno_parse(s, &back, NULL), TRB_OK);
    assert_true(back == lsns[i]);
    json_decref(j);
    fx_fini(&f);
  }
}

/* ---- key-only items ---- */

static void test_key_only_item(void **state) {
  (void)state;
  fixture f;
  /* UpdateItem creating a key-only item: the image is just the key. */
  fx_init(&f, TRB_WAL_INSERT, 11, KEYS, NULL, KEYS);
  json_t *j = record_ok(&f.r, TRB_VIEW_NEW_IMAGE, "r");
  json_t *ddb = json_object_get(j, "dynamodb");
  assert_image(ddb, "NewImage", KEYS);
  assert_int_equal(json_integer_value(json_object_get(ddb, "SizeBytes")), 2 * item_size_of(KEYS));
  json_decref(j);
  fx_fini(&f);

  fx_init(&f, TRB_WAL_MODIFY, 12, KEYS, KEYS, NEW);
  j = record_ok(&f.r, TRB_VIEW_NEW_AND_OLD_IMAGES, "r");
  ddb = json_object_get(j, "dynamodb");
  assert_image(ddb, "OldImage", KEYS);
  assert_image(ddb, "NewImage", NEW);
  json_decref(j);
  fx_fini(&f);

  fx_init(&f, TRB_WAL_REMOVE, 13, KEYS, KEYS, NULL);
  j = record_ok(&f.r, TRB_VIEW_OLD_IMAGE, "r");
  assert_image(json_object_get(j, "dynamodb"), "OldImage", KEYS);
  json_decref(j);
  fx_fini(&f);
}

/* ---- refusals ---- */

static void test_refuses_non_item_kinds(void **state) {
  (void)state;
  static const int kinds[] = {TRB_WAL_TABLE_CREATE, TRB_WAL_TABLE_DELETE, TRB_WAL_TABLE_UPDATE,
                              TRB_WAL_TXN_COMMIT, 0, 99};
  for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
    fixture f;
    fx_init(&f, kinds[i], 21, KEYS, NULL, NEW);
    trb_status st;
    assert_int_equal(record_err(&f.r, TRB_VIEW_NEW_AND_OLD_IMAGES, "r", &st), TRB_EINVAL);
    trb_stream_rec_opts o = {.view = TRB_VIEW_NEW_IMAGE, .region = "r"};
    assert_null(trb_stream_record_pretty(&f.r, &o));
    fx_fini(&f);
  }
  fixture f;
  fx_init(&f, TRB_WAL_TABLE_CREATE, 21, KEYS, NULL, NEW);
  trb_status st;
  record_err(&f.r, TRB_VIEW_KEYS_ONLY, "r", &st);
  assert_non_null(strstr(st.msg, "TABLE_CREATE"));
  fx_fini(&f);
}

static void test_bad_arguments(void **state) {
  (void)state;
  fixture f;
  fx_init(&f, TRB_WAL_INSERT, 1, KEYS, NULL, NEW);
  trb_status st;
  assert_int_equal(record_err(&f.r, TRB_VIEW_NEW_IMAGE, NULL, &st), TRB_EINVAL);
  assert_int_equal(record_err(&f.r, (trb_view)0, "r", &st), TRB_EINVAL);
  assert_int_equal(record_err(&f.r, (trb_view)5, "r", &st), TRB_EINVAL);
  assert_int_equal(record_err(NULL, TRB_VIEW_NEW_IMAGE, "r", &st), TRB_EINVAL);
  json_t *j = NULL;
  assert_int_equal(trb_stream_record(&f.r, NULL, &j, NULL), TRB_EINVAL);
  assert_null(j);
  trb_stream_rec_opts o = {.view = TRB_VIEW_NEW_IMAGE, .region = "r"};
  assert_int_equal(trb_stream_record(&f.r, &o, NULL, NULL), TRB_EINVAL);
  assert_null(trb_stream_record_pretty(NULL, &o));
  assert_null(trb_stream_record_pretty(&f.r, NULL));
  o.view = (trb_view)9;
  assert_null(trb_stream_record_pretty(&f.r, &o));
  fx_fini(&f);
}

static void test_corrupt_images(void **state) {
  (void)state;
  fixture f;
  trb_status st;

  /* A flipped magic byte in the new image. */
  fx_init(&f, TRB_WAL_INSERT, 31, KEYS, NULL, NEW);
  f.nw[0] ^= 0x50;
  assert_int_equal(record_err(&f.r, TRB_VIEW_NEW_IMAGE, "r", &st), TRB_ECORRUPT);
  assert_non_null(strstr(st.msg, "LSN 31"));
  assert_non_null(strstr(st.msg, "NewImage"));
  /* ...which KEYS_ONLY and OLD_IMAGE never look at. */
  json_t *j = record_ok(&f.r, TRB_VIEW_KEYS_ONLY, "r");
  json_decref(j);
  j = record_ok(&f.r, TRB_VIEW_OLD_IMAGE, "r");
  json_decref(j);
  fx_fini(&f);

  /* A truncated old image. */
  fx_init(&f, TRB_WAL_REMOVE, 32, KEYS, OLD, NULL);
  f.r.old_len -= 3;
  assert_int_equal(record_err(&f.r, TRB_VIEW_OLD_IMAGE, "r", &st), TRB_ECORRUPT);
  assert_non_null(strstr(st.msg, "OldImage"));
  f.r.old_len = 0; /* present but empty */
  assert_int_equal(record_err(&f.r, TRB_VIEW_NEW_AND_OLD_IMAGES, "r", &st), TRB_ECORRUPT);
  trb_stream_rec_opts o = {.view = TRB_VIEW_OLD_IMAGE, .region = "r"};
  assert_null(trb_stream_record_pretty(&f.r, &o));
  fx_fini(&f);

  /* Corrupt keys: refused under every view. */
  fx_init(&f, TRB_WAL_MODIFY, 33, KEYS, OLD, NEW);
  f.r.keys_len -= 1; /* truncated */
  assert_int_equal(record_err(&f.r, TRB_VIEW_KEYS_ONLY, "r", &st), TRB_ECORRUPT);
  assert_non_null(strstr(st.msg, "Keys"));
  fx_fini(&f);

  /* An image that decodes but is not an item (a bare S). */
  fx_init(&f, TRB_WAL_INSERT, 34, KEYS, NULL, NEW);
  trb_av *s = trb_av_new_s("x", 1);
  trb_buf b;
  trb_buf_init(&b, 0);
  assert_int_equal(trb_av_encode(s, &b), TRB_OK);
  trb_av_destroy(s);
  f.r.new_img = b.p;
  f.r.new_len = b.len;
  assert_int_equal(record_err(&f.r, TRB_VIEW_NEW_IMAGE, "r", &st), TRB_ECORRUPT);
  assert_non_null(strstr(st.msg, "not an item"));
  trb_buf_fini(&b);

  /* An image the view needs but the record lacks. */
  f.r.new_img = NULL;
  f.r.new_len = 0;
  assert_int_equal(record_err(&f.r, TRB_VIEW_NEW_IMAGE, "r", &st), TRB_ECORRUPT);
  assert_non_null(strstr(st.msg, "no NewImage"));
  f.r.keys = NULL;
  assert_int_equal(record_err(&f.r, TRB_VIEW_KEYS_ONLY, "r", &st), TRB_ECORRUPT);
  fx_fini(&f);

  /* A newer item encoding version: refused as such, not as corruption. */
  fx_init(&f, TRB_WAL_INSERT, 35, KEYS, NULL, NEW);
  f.nw[0] = 0xA2;
  assert_int_equal(record_err(&f.r, TRB_VIEW_NEW_IMAGE, "r", &st), TRB_EVERSION);
  fx_fini(&f);

  /* Random bit flips never crash (ASan) and either decode or are refused. */
  uint64_t rng = trb_test_seed() ^ 0x51ED;
  for (int i = 0; i < 2000; i++) {
    fx_init(&f, TRB_WAL_MODIFY, 36, KEYS, OLD, NEW);
    unsigned char *victim = i % 3 == 0 ? f.keys : i % 3 == 1 ? f.old : f.nw;
    size_t len = i % 3 == 0 ? f.r.keys_len : i % 3 == 1 ? f.r.old_len : f.r.new_len;
    victim[trb_test_rand(&rng) % len] ^= (unsigned char)(1u << (trb_test_rand(&rng) % 8));
    trb_stream_rec_opts oo = {.view = TRB_VIEW_NEW_AND_OLD_IMAGES, .region = "r"};
    json_t *out = NULL;
    trb_err rc = trb_stream_record(&f.r, &oo, &out, NULL);
    if (rc != TRB_OK && rc != TRB_ECORRUPT && rc != TRB_EVERSION)
      fprintf(stderr, "bit flip %d: %s\n", i, trb_err_name(rc));
    assert_true(rc == TRB_OK || rc == TRB_ECORRUPT || rc == TRB_EVERSION);
    assert_true((rc == TRB_OK) == (out != NULL));
    trb_buf tb;
    trb_buf_init(&tb, 0);
    assert_int_equal(trb_stream_record_text(&f.r, &oo, &tb, NULL), rc);
    if (out) assert_text_same(&f.r, &oo, out);
    trb_buf_fini(&tb);
    json_decref(out);
    char *line = trb_stream_record_pretty(&f.r, &oo);
    assert_true((rc == TRB_OK) == (line != NULL));
    free(line);
    fx_fini(&f);
  }
}

/* Builds {"id":S "a", name: S val} by hand (bypassing JSON, which could not
 * hold bad UTF-8) and encodes it into *buf. */
static void encode_raw(trb_buf *b, const char *name, size_t nlen, const char *val, size_t vlen) {
  trb_av *m = trb_av_new_m();
  assert_int_equal(trb_av_m_set(m, "id", 2, trb_av_new_s("a", 1)), TRB_OK);
  assert_int_equal(trb_av_m_set(m, name, nlen, trb_av_new_s(val, vlen)), TRB_OK);
  trb_buf_init(b, 0);
  assert_int_equal(trb_av_encode(m, b), TRB_OK);
  trb_av_destroy(m);
}

/* The codec does not check UTF-8; JSON cannot carry anything else, so a
 * record with a bad string is refused as damaged, not as out of memory. */
static void test_utf8(void **state) {
  (void)state;
  static const struct { const char *p; size_t n; int ok; } t[] = {
      {"\xC2\xBF", 2, 1},              /* ¿ */
      {"\xE2\x82\xAC", 3, 1},          /* € */
      {"\xF0\x9F\x98\x80", 4, 1},      /* 😀 */
      {"a\0b", 3, 1},                  /* NUL inside a string is fine */
      {"\xFF", 1, 0},
      {"\xC0\xAF", 2, 0},              /* overlong '/' */
      {"\xE0\x80\xAF", 3, 0},          /* overlong */
      {"\xED\xA0\x80", 3, 0},          /* surrogate */
      {"\xF4\x90\x80\x80", 4, 0},      /* > U+10FFFF */
      {"\xE2\x82", 2, 0},              /* cut short */
      {"ok\x80", 3, 0},                /* stray continuation */
  };
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    for (int where = 0; where < 2; where++) { /* 0: in a value, 1: in a name */
      trb_buf b;
      if (where) encode_raw(&b, t[i].p, t[i].n, "v", 1);
      else encode_raw(&b, "v", 1, t[i].p, t[i].n);
      fixture f;
      fx_init(&f, TRB_WAL_INSERT, 50, "{\"id\":{\"S\":\"a\"}}", NULL, NULL);
      f.r.new_img = b.p;
      f.r.new_len = b.len;
      trb_stream_rec_opts o = {.view = TRB_VIEW_NEW_IMAGE, .region = "r"};
      char *line = trb_stream_record_pretty(&f.r, &o);
      if (t[i].ok) {
        json_t *j = record_ok(&f.r, TRB_VIEW_NEW_IMAGE, "r");
        json_t *img = json_object_get(json_object_get(j, "dynamodb"), "NewImage");
        if (where) {
          assert_non_null(json_object_getn(img, t[i].p, t[i].n));
        } else {
          json_t *v = json_object_get(json_object_get(img, "v"), "S");
          assert_int_equal(json_string_length(v), t[i].n);
          assert_memory_equal(json_string_value(v), t[i].p, t[i].n);
        }
        json_decref(j);
        assert_non_null(line);
      } else {
        trb_status st;
        assert_int_equal(record_err(&f.r, TRB_VIEW_NEW_IMAGE, "r", &st), TRB_ECORRUPT);
        assert_non_null(strstr(st.msg, "UTF-8"));
        assert_null(line);
        /* not looked at under KEYS_ONLY */
        json_t *j = record_ok(&f.r, TRB_VIEW_KEYS_ONLY, "r");
        json_decref(j);
      }
      free(line);
      trb_buf_fini(&b);
      fx_fini(&f);
    }
  }
  fixture f;
  fx_init(&f, TRB_WAL_INSERT, 51, KEYS, NULL, NEW);
  trb_status st;
  assert_int_equal(record_err(&f.r, TRB_VIEW_NEW_IMAGE, "\xFFregion", &st), TRB_EINVAL);
  fx_fini(&f);
}

/* ---- pretty ---- */

static char *pretty_ok(const trb_wal_rec *r, trb_view view) {
  trb_stream_rec_opts o = {.view = view, .region = NULL}; /* region unused */
  char *s = trb_stream_record_pretty(r, &o);
  assert_non_null(s);
  return s;
}

static void test_pretty(void **state) {
  (void)state;
  fixture f;
  fx_init(&f, TRB_WAL_MODIFY, 42, "{\"id\":{\"S\":\"a\"}}",
          "{\"id\":{\"S\":\"a\"},\"n\":{\"N\":\"1\"}}",
          "{\"id\":{\"S\":\"a\"},\"n\":{\"N\":\"2\"}}");
  f.r.commit_us = 1796159212123456LL; /* 2026-12-01T21:06:52.123456Z */
  char *s = pretty_ok(&f.r, TRB_VIEW_NEW_AND_OLD_IMAGES);
  assert_string_equal(s,
                      "2026-12-01T21:06:52.123456Z  100000000000000000042  MODIFY  "
                      "{\"id\":{\"S\":\"a\"}}  old={\"id\":{\"S\":\"a\"},\"n\":{\"N\":\"1\"}}  "
                      "new={\"id\":{\"S\":\"a\"},\"n\":{\"N\":\"2\"}}");
  free(s);
  s = pretty_ok(&f.r, TRB_VIEW_KEYS_ONLY);
  assert_string_equal(s, "2026-12-01T21:06:52.123456Z  100000000000000000042  MODIFY  "
                         "{\"id\":{\"S\":\"a\"}}");
  free(s);
  s = pretty_ok(&f.r, TRB_VIEW_NEW_IMAGE);
  assert_null(strstr(s, "old="));
  assert_non_null(strstr(s, "  new={\"id\":{\"S\":\"a\"},\"n\":{\"N\":\"2\"}}"));
  free(s);
  s = pretty_ok(&f.r, TRB_VIEW_OLD_IMAGE);
  assert_null(strstr(s, "new="));
  assert_non_null(strstr(s, "  old={\"id\":{\"S\":\"a\"},\"n\":{\"N\":\"1\"}}"));
  free(s);
  fx_fini(&f);

  /* REMOVE under NEW_IMAGE: keys only; the epoch and leading zeros of the
   * microseconds; a pre-epoch time rounds down. */
  fx_init(&f, TRB_WAL_REMOVE, UINT64_MAX, "{\"k\":{\"N\":\"-5\"}}", "{\"k\":{\"N\":\"-5\"}}", NULL);
  f.r.commit_us = 7;
  s = pretty_ok(&f.r, TRB_VIEW_NEW_IMAGE);
  assert_string_equal(s, "1970-01-01T00:00:00.000007Z  118446744073709551615  REMOVE  "
                         "{\"k\":{\"N\":\"-5\"}}");
  free(s);
  f.r.commit_us = -1;
  s = pretty_ok(&f.r, TRB_VIEW_NEW_AND_OLD_IMAGES);
  assert_string_equal(s, "1969-12-31T23:59:59.999999Z  118446744073709551615  REMOVE  "
                         "{\"k\":{\"N\":\"-5\"}}  old={\"k\":{\"N\":\"-5\"}}");
  free(s);
  fx_fini(&f);

  /* INSERT under OLD_IMAGE: no image. */
  fx_init(&f, TRB_WAL_INSERT, 0, KEYS, NULL, NEW);
  f.r.commit_us = 1479499740000000LL;
  s = pretty_ok(&f.r, TRB_VIEW_OLD_IMAGE);
  assert_string_equal(s, "2016-11-18T20:09:00.000000Z  100000000000000000000  INSERT  "
                         "{\"id\":{\"S\":\"a\"},\"sk\":{\"N\":\"7\"}}");
  free(s);
  fx_fini(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_view_names),
      cmocka_unit_test(test_views_by_kinds),
      cmocka_unit_test(test_images_follow_kind_not_presence),
      cmocka_unit_test(test_shape_of_spec_example),
      cmocka_unit_test(test_creation_time_rounds_down),
      cmocka_unit_test(test_transaction_id),
      cmocka_unit_test(test_ttl_user_identity),
      cmocka_unit_test(test_event_id),
      cmocka_unit_test(test_seqno_golden_and_roundtrip),
      cmocka_unit_test(test_seqno_order),
      cmocka_unit_test(test_seqno_parse_errors),
      cmocka_unit_test(test_record_sequence_number),
      cmocka_unit_test(test_key_only_item),
      cmocka_unit_test(test_refuses_non_item_kinds),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_corrupt_images),
      cmocka_unit_test(test_utf8),
      cmocka_unit_test(test_pretty),
  };
  return cmocka_run_group_tests_name("stream_record", tests, NULL, NULL);
}
