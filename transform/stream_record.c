/*
 * stream_record.c -- WAL item record -> DynamoDB Streams record (see
 * stream_record.h for the contract and the JSON shape).
 *
 * Where it sits: capture/ hands the processor WAL records in LSN order; this
 * file is the first step of transform/, turning one item record into the
 * JSON that GetRecords returns. It owns two derived formats, both stable
 * because consumers store them (KCL checkpoints hold sequence numbers,
 * deduplicating consumers hold event ids):
 *
 * Sequence number (DynamoDB requires 21..40 decimal digits, compared by
 * clients as big integers, spec 7.4):
 *
 *   offset  size  content
 *        0     1  '1'                   -- keeps the value free of leading
 *                                          zeros and the length at 21
 *        1    20  LSN, decimal, zero-padded on the left
 *                                          (UINT64_MAX = 18446744073709551615
 *                                          is 20 digits, so every LSN fits)
 *       21     1  NUL (in the caller's buffer, not part of the number)
 *
 *   Fixed length and a fixed leading digit make string order, big-integer
 *   order and LSN order the same. LSN 42 -> "100000000000000000042"; LSN 0
 *   -> "100000000000000000000". A parser accepts only this form: 21 digits,
 *   the first '1', the rest <= UINT64_MAX. Any other digit string of 21..40
 *   characters is a syntactically valid DynamoDB number that names no record
 *   here, and is refused with its own message.
 *
 * eventID (32 lower-case hex characters, as AWS's examples):
 *
 *   eventID = hex(SHA-256(u64le(table_id) || u64le(lsn))[0..16))
 *
 *   16 input bytes, both integers little-endian (the project's on-disk
 *   order, util/buf.h); the first 16 bytes of the digest, each byte as two
 *   lower-case hex digits, high nibble first. Deterministic, so a record
 *   delivered twice (after a sink restart) carries the same id; table_id is
 *   in the input so two tables' streams never share ids even though LSNs
 *   are global to the log.
 *
 * ApproximateCreationDateTime is floor(commit_us / 1e6): floor, not C's
 * truncation, so a (theoretical) pre-1970 commit time rounds down too.
 *
 * Image selection is one table (has_old/has_new below) shared by the JSON
 * record and the pretty line, so the two can never disagree.
 */
#include "transform/stream_record.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/value.h"
#include "transform/doc_json.h"
#include "util/buf.h"
#include "util/utf8.h"

/* ---- view types ---- */

static const char *const view_names[] = {
    [TRB_VIEW_KEYS_ONLY] = "KEYS_ONLY",
    [TRB_VIEW_NEW_IMAGE] = "NEW_IMAGE",
    [TRB_VIEW_OLD_IMAGE] = "OLD_IMAGE",
    [TRB_VIEW_NEW_AND_OLD_IMAGES] = "NEW_AND_OLD_IMAGES",
};

static int view_valid(trb_view v) {
  return v >= TRB_VIEW_KEYS_ONLY && v <= TRB_VIEW_NEW_AND_OLD_IMAGES;
}

const char *trb_view_name(trb_view v) { return view_valid(v) ? view_names[v] : "?"; }

int trb_view_parse(const char *s, trb_view *out) {
  if (!s || !out) return -1;
  for (int v = TRB_VIEW_KEYS_ONLY; v <= TRB_VIEW_NEW_AND_OLD_IMAGES; v++) {
    if (strcmp(s, view_names[v]) == 0) {
      *out = (trb_view)v;
      return 0;
    }
  }
  return -1;
}

/* Spec 7.7: which images a record of `kind` carries under view v. */
static int has_new(trb_view v, int kind) {
  return (v == TRB_VIEW_NEW_IMAGE || v == TRB_VIEW_NEW_AND_OLD_IMAGES) &&
         (kind == TRB_WAL_INSERT || kind == TRB_WAL_MODIFY);
}
static int has_old(trb_view v, int kind) {
  return (v == TRB_VIEW_OLD_IMAGE || v == TRB_VIEW_NEW_AND_OLD_IMAGES) &&
         (kind == TRB_WAL_MODIFY || kind == TRB_WAL_REMOVE);
}

/* ---- sequence numbers ---- */

#define SEQNO_LEN 21
#define SEQNO_MIN_LEN 21 /* DynamoDB's bounds (spec 7.4) */
#define SEQNO_MAX_LEN 40

void trb_seqno_format(uint64_t lsn, char out[TRB_SEQNO_BUF]) {
  snprintf(out, TRB_SEQNO_BUF, "1%020" PRIu64, lsn);
}

trb_err trb_seqno_parse(const char *s, uint64_t *lsn, trb_status *st) {
  if (!s || !lsn) return trb_status_set(st, TRB_EINVAL, "no sequence number given");
  size_t n = strlen(s);
  if (n == 0) return trb_status_set(st, TRB_EINVAL, "SequenceNumber is empty");
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return trb_status_set(st, TRB_EINVAL,
                            "SequenceNumber must be a decimal number of %d to %d digits "
                            "(character %zu is not a digit)",
                            SEQNO_MIN_LEN, SEQNO_MAX_LEN, i + 1);
  if (n < SEQNO_MIN_LEN || n > SEQNO_MAX_LEN)
    return trb_status_set(st, TRB_EINVAL,
                          "SequenceNumber must be %d to %d digits long, got %zu", SEQNO_MIN_LEN,
                          SEQNO_MAX_LEN, n);
  if (n != SEQNO_LEN || s[0] != '1')
    return trb_status_set(st, TRB_EINVAL,
                          "SequenceNumber %s was not issued by this stream "
                          "(its numbers are 21 digits starting with 1)",
                          s);
  uint64_t v = 0;
  for (size_t i = 1; i < n; i++) {
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return trb_status_set(st, TRB_EINVAL,
                            "SequenceNumber %s was not issued by this stream "
                            "(beyond the largest log sequence number)",
                            s);
    v = v * 10 + d;
  }
  *lsn = v;
  return TRB_OK;
}

/* ---- decoding a record ---- */

/* The decoded parts of one record that its view includes. */
typedef struct srec_parts {
  trb_av *keys; /* owned, always set on success */
  trb_av *old;  /* owned; NULL when the view leaves it out */
  trb_av *nw;   /* owned; NULL when the view leaves it out */
} srec_parts;

static void parts_fini(srec_parts *p) {
  trb_av_destroy(p->keys);
  trb_av_destroy(p->old);
  trb_av_destroy(p->nw);
  memset(p, 0, sizeof *p);
}

static int av_utf8_ok(const trb_av *v) {
  switch (v->type) {
    case TRB_T_S:
      return trb_utf8_valid(v->u.s.p, v->u.s.len);
    case TRB_T_M:
      for (size_t i = 0; i < v->u.m.n; i++)
        if (!trb_utf8_valid(v->u.m.e[i].name, v->u.m.e[i].name_len) || !av_utf8_ok(v->u.m.e[i].val))
          return 0;
      return 1;
    case TRB_T_L:
    case TRB_T_SS:
      for (size_t i = 0; i < v->u.l.n; i++)
        if (!av_utf8_ok(v->u.l.v[i])) return 0;
      return 1;
    default: /* N is canonical ASCII; B and BS go out as base64 */
      return 1;
  }
}

/* Decodes one item of record r into *out (caller-owned on success). */
static trb_err decode_item(const trb_wal_rec *r, const char *what, const void *p, size_t len,
                           trb_av **out, trb_status *st) {
  const char *kind = trb_wal_kind_name(r->kind);
  unsigned long long lsn = (unsigned long long)r->lsn;
  if (!p)
    return trb_status_set(st, TRB_ECORRUPT, "WAL record LSN %llu (%s) has no %s", lsn, kind,
                          what);
  trb_av *v = NULL;
  trb_err rc = trb_av_decode(p, len, &v);
  if (rc == TRB_ENOMEM) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  if (rc == TRB_EVERSION)
    return trb_status_set(st, TRB_EVERSION,
                          "WAL record LSN %llu (%s): %s is in an item encoding version "
                          "newer than this build reads",
                          lsn, kind, what);
  if (rc)
    return trb_status_set(st, TRB_ECORRUPT,
                          "WAL record LSN %llu (%s): %s does not decode (%zu bytes)", lsn, kind,
                          what, len);
  if (v->type != TRB_T_M) {
    trb_type t = v->type;
    trb_av_destroy(v);
    return trb_status_set(st, TRB_ECORRUPT, "WAL record LSN %llu (%s): %s is a %s, not an item",
                          lsn, kind, what, trb_type_name(t));
  }
  if (!av_utf8_ok(v)) {
    trb_av_destroy(v);
    return trb_status_set(st, TRB_ECORRUPT,
                          "WAL record LSN %llu (%s): %s holds a string or attribute name that "
                          "is not valid UTF-8",
                          lsn, kind, what);
  }
  *out = v;
  return TRB_OK;
}

/* Checks the arguments and decodes what view o->view includes of r. */
static trb_err parts_decode(const trb_wal_rec *r, const trb_stream_rec_opts *o, srec_parts *p,
                            trb_status *st) {
  memset(p, 0, sizeof *p);
  if (!r || !o) return trb_status_set(st, TRB_EINVAL, "no record or no options");
  if (!view_valid(o->view))
    return trb_status_set(st, TRB_EINVAL, "unknown StreamViewType %d", (int)o->view);
  if (r->kind != TRB_WAL_INSERT && r->kind != TRB_WAL_MODIFY && r->kind != TRB_WAL_REMOVE)
    return trb_status_set(st, TRB_EINVAL,
                          "WAL record LSN %llu is a %s record, not an item change "
                          "(INSERT, MODIFY or REMOVE)",
                          (unsigned long long)r->lsn, trb_wal_kind_name(r->kind));
  trb_err rc = decode_item(r, "Keys", r->keys, r->keys_len, &p->keys, st);
  if (!rc && has_old(o->view, r->kind))
    rc = decode_item(r, "OldImage", r->old_img, r->old_len, &p->old, st);
  if (!rc && has_new(o->view, r->kind))
    rc = decode_item(r, "NewImage", r->new_img, r->new_len, &p->nw, st);
  if (rc) parts_fini(p);
  return rc;
}

/* ---- eventID and time ---- */

/* SHA-256 through one EVP_MD fetched once and one digest context per
 * thread: OpenSSL 3's one-shot SHA256() looks the algorithm up again on
 * every call, which was a tenth of the processor's time. */
static pthread_once_t g_sha_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_sha_key;
static EVP_MD *g_sha;
static void sha_ctx_free(void *p) { EVP_MD_CTX_free(p); }
static void sha_init(void) {
  g_sha = EVP_MD_fetch(NULL, "SHA256", NULL);
  if (pthread_key_create(&g_sha_key, sha_ctx_free)) g_sha = NULL;
}

/* SHA-256 of a then b (b may be empty). */
static void sha256_2(const void *a, size_t al, const void *b, size_t bl,
                     unsigned char md[SHA256_DIGEST_LENGTH]) {
  pthread_once(&g_sha_once, sha_init);
  EVP_MD_CTX *c = g_sha ? pthread_getspecific(g_sha_key) : NULL;
  if (g_sha && !c && (c = EVP_MD_CTX_new()) && pthread_setspecific(g_sha_key, c)) {
    EVP_MD_CTX_free(c);
    c = NULL;
  }
  unsigned int mdl = 0;
  if (c && EVP_DigestInit_ex2(c, g_sha, NULL) && EVP_DigestUpdate(c, a, al) &&
      (!bl || EVP_DigestUpdate(c, b, bl)) && EVP_DigestFinal_ex(c, md, &mdl))
    return;
  /* no context to be had: the slow way (a and b are small here: 24 bytes
   * and a table name of at most 255) */
  unsigned char both[24 + 256];
  if (al + bl > sizeof both) bl = sizeof both - al;
  memcpy(both, a, al);
  if (bl) memcpy(both + al, b, bl);
  SHA256(both, al + bl, md);
}

/* The first 16 bytes of SHA-256(u64le table_id || u64le lsn || i64le
 * commit_us || table name), in hex. The same record always gets the same
 * id (every field is the WAL record's own); the commit time and the name
 * keep the ids of two servers (or two data directories) apart, where table
 * ids and LSNs both start at 1. */
static void event_id(const trb_wal_rec *r, char out[33]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char in[24], md[SHA256_DIGEST_LENGTH];
  trb_put_u64(in, r->table_id);
  trb_put_u64(in + 8, r->lsn);
  trb_put_u64(in + 16, (uint64_t)r->commit_us);
  sha256_2(in, sizeof in, r->table, r->table ? r->table_len : 0, md);
  for (int i = 0; i < 16; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 0x0F];
  }
  out[32] = 0;
}

/* floor(us / 1e6) and the microseconds left over (0..999999); written so
 * that INT64_MIN does not overflow. */
static int64_t floor_seconds(int64_t us, int32_t *usec) {
  int64_t s = us / 1000000, rem = us % 1000000;
  if (rem < 0) {
    s -= 1;
    rem += 1000000;
  }
  if (usec) *usec = (int32_t)rem;
  return s;
}

/* ---- the JSON record ---- */

/* A delete made by Time to Live says so (spec 7.7: userIdentity, with the
 * service model's capitalised members). */
#define TTL_IDENTITY \
  ",\"userIdentity\":{\"Type\":\"Service\",\"PrincipalId\":\"" TRB_TTL_PRINCIPAL "\"}"

/* json_object_set_new that also fails (without leaking) on a NULL value
 * from a failed constructor. */
static int put(json_t *obj, const char *key, json_t *val) {
  if (!val) return -1;
  return json_object_set_new(obj, key, val);
}

trb_err trb_stream_record(const trb_wal_rec *r, const trb_stream_rec_opts *o, json_t **out,
                          trb_status *st) {
  if (!out) return trb_status_set(st, TRB_EINVAL, "no output pointer");
  *out = NULL;
  if (o && (!o->region || !trb_utf8_valid(o->region, strlen(o->region))))
    return trb_status_set(st, TRB_EINVAL, "awsRegion missing or not UTF-8");
  srec_parts p;
  trb_err rc = parts_decode(r, o, &p, st);
  if (rc) return rc;

  json_t *rec = json_object(), *ddb = json_object();
  char id[33], seq[TRB_SEQNO_BUF];
  event_id(r, id);
  trb_seqno_format(r->lsn, seq);
  size_t size = trb_item_size(p.keys) + (p.old ? trb_item_size(p.old) : 0) +
                (p.nw ? trb_item_size(p.nw) : 0);
  rc = TRB_ENOMEM;
  if (!rec || !ddb) goto done;
  if (put(rec, "eventID", json_string(id)) ||
      put(rec, "eventName", json_string(trb_wal_kind_name(r->kind))) ||
      put(rec, "eventVersion", json_string("1.1")) ||
      put(rec, "eventSource", json_string("aws:dynamodb")) ||
      put(rec, "awsRegion", json_string(o->region)))
    goto done;
  if (put(ddb, "ApproximateCreationDateTime",
          json_integer((json_int_t)floor_seconds(r->commit_us, NULL))) ||
      put(ddb, "Keys", trb_item_to_json(p.keys)) ||
      (p.old && put(ddb, "OldImage", trb_item_to_json(p.old))) ||
      (p.nw && put(ddb, "NewImage", trb_item_to_json(p.nw))) ||
      put(ddb, "SequenceNumber", json_string(seq)) ||
      put(ddb, "SizeBytes", json_integer((json_int_t)size)) ||
      put(ddb, "StreamViewType", json_string(trb_view_name(o->view))))
    goto done;
  rc = put(rec, "dynamodb", ddb) ? TRB_ENOMEM : TRB_OK;
  ddb = NULL; /* stolen by put, even on failure */
  if (rc) goto done;
  if (trb_stream_rec_by_ttl(r) &&
      put(rec, "userIdentity", json_pack("{s:s,s:s}", "Type", "Service", "PrincipalId",
                                         TRB_TTL_PRINCIPAL))) {
    rc = TRB_ENOMEM;
    goto done;
  }
  if (r->txn_id) {
    char txn[24];
    snprintf(txn, sizeof txn, "%" PRIu64, r->txn_id);
    if (put(rec, "transactionId", json_string(txn))) {
      rc = TRB_ENOMEM;
      goto done;
    }
  }
  *out = rec;
  rec = NULL;
  rc = TRB_OK;
done:
  if (rc == TRB_ENOMEM) trb_status_set(st, rc, "out of memory building a stream record");
  json_decref(ddb);
  json_decref(rec);
  parts_fini(&p);
  return rc;
}

/* The same record as compact JSON text, appended to out: the bytes
 * json_dumps(trb_stream_record(...), JSON_COMPACT | JSON_PRESERVE_ORDER)
 * gives (test_stream_record checks), without a jansson tree: the
 * processor's per-record cost for the file sink and Kafka's JSON format. */
trb_err trb_stream_record_text(const trb_wal_rec *r, const trb_stream_rec_opts *o, trb_buf *out,
                               trb_status *st) {
  if (!out) return trb_status_set(st, TRB_EINVAL, "no output buffer");
  if (o && (!o->region || !trb_utf8_valid(o->region, strlen(o->region))))
    return trb_status_set(st, TRB_EINVAL, "awsRegion missing or not UTF-8");
  srec_parts p;
  trb_err rc = parts_decode(r, o, &p, st);
  if (rc) return rc;
  size_t mark = out->len;
  char id[33], seq[TRB_SEQNO_BUF], head[256], tail[320];
  event_id(r, id);
  trb_seqno_format(r->lsn, seq);
  size_t size = trb_item_size(p.keys) + (p.old ? trb_item_size(p.old) : 0) +
                (p.nw ? trb_item_size(p.nw) : 0);
  snprintf(head, sizeof head, "{\"eventID\":\"%s\",\"eventName\":\"%s\",\"eventVersion\":\"1.1\","
           "\"eventSource\":\"aws:dynamodb\",\"awsRegion\":", id, trb_wal_kind_name(r->kind));
  rc = trb_buf_append(out, head, strlen(head));
  if (!rc) rc = trb_json_str_append(o->region, strlen(o->region), out);
  snprintf(head, sizeof head, ",\"dynamodb\":{\"ApproximateCreationDateTime\":%" PRId64
           ",\"Keys\":", floor_seconds(r->commit_us, NULL));
  if (!rc) rc = trb_buf_append(out, head, strlen(head));
  if (!rc) rc = trb_ddb_json_item(p.keys, out);
  if (!rc && p.old) rc = trb_buf_append(out, ",\"OldImage\":", 12);
  if (!rc && p.old) rc = trb_ddb_json_item(p.old, out);
  if (!rc && p.nw) rc = trb_buf_append(out, ",\"NewImage\":", 12);
  if (!rc && p.nw) rc = trb_ddb_json_item(p.nw, out);
  int n = snprintf(tail, sizeof tail, ",\"SequenceNumber\":\"%s\",\"SizeBytes\":%zu,"
                   "\"StreamViewType\":\"%s\"}", seq, size, trb_view_name(o->view));
  if (trb_stream_rec_by_ttl(r))
    n += snprintf(tail + n, sizeof tail - (size_t)n, "%s", TTL_IDENTITY);
  if (r->txn_id)
    n += snprintf(tail + n, sizeof tail - (size_t)n, ",\"transactionId\":\"%" PRIu64 "\"",
                  r->txn_id);
  snprintf(tail + n, sizeof tail - (size_t)n, "}");
  if (!rc) rc = trb_buf_append(out, tail, strlen(tail));
  parts_fini(&p);
  if (rc) {
    out->len = mark;
    return trb_status_set(st, TRB_ENOMEM, "out of memory building a stream record");
  }
  return TRB_OK;
}

/* ---- the pretty line ---- */

static trb_err append_str(trb_buf *b, const char *s) { return trb_buf_append(b, s, strlen(s)); }

/* Appends prefix and the compact DynamoDB JSON of item. */
static trb_err append_item(trb_buf *b, const char *prefix, const trb_av *item) {
  char *j = trb_item_to_json_text(item);
  if (!j) return TRB_ENOMEM;
  trb_err rc = append_str(b, prefix);
  if (!rc) rc = append_str(b, j);
  free(j);
  return rc;
}

char *trb_stream_record_pretty(const trb_wal_rec *r, const trb_stream_rec_opts *o) {
  srec_parts p;
  if (parts_decode(r, o, &p, NULL)) return NULL;
  char *line = NULL;
  trb_buf b;
  trb_buf_init(&b, 0);

  int32_t usec = 0;
  time_t secs = (time_t)floor_seconds(r->commit_us, &usec);
  struct tm tm;
  char head[128], seq[TRB_SEQNO_BUF];
  if (!gmtime_r(&secs, &tm)) goto done;
  trb_seqno_format(r->lsn, seq);
  int n = snprintf(head, sizeof head, "%04lld-%02d-%02dT%02d:%02d:%02d.%06dZ  %s  %s  ",
                   (long long)tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec, (int)usec, seq,
                   trb_stream_rec_by_ttl(r) ? "REMOVE(ttl)" : trb_wal_kind_name(r->kind));
  if (n < 0 || (size_t)n >= sizeof head) goto done;
  if (append_str(&b, head) || append_item(&b, "", p.keys) ||
      (p.old && append_item(&b, "  old=", p.old)) || (p.nw && append_item(&b, "  new=", p.nw)) ||
      trb_buf_put_u8(&b, 0))
    goto done;
  line = (char *)trb_buf_steal(&b, NULL);
done:
  trb_buf_fini(&b);
  parts_fini(&p);
  return line;
}

void trb_stream_label(int64_t us, char out[32]) {
  time_t s = (time_t)(us / 1000000);
  struct tm tm;
  gmtime_r(&s, &tm);
  char b[24];
  strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, 32, "%s.%03d", b, (int)((us / 1000) % 1000));
}

int trb_stream_tables_lookup(const char *spec, const char *table, trb_view *view,
                             trb_status *st) {
  int found = 0;
  size_t tl = table ? strlen(table) : 0;
  for (const char *p = spec ? spec : ""; *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    const char *colon = memchr(p, ':', len);
    if (!colon) {
      trb_status_set(st, TRB_ECONFIG,
                     "'%.*s' is not TABLE:VIEW_TYPE (e.g. orders:NEW_AND_OLD_IMAGES)",
                     (int)(len > 64 ? 64 : len), p);
      return -1;
    }
    /* a DynamoDB table name: 3 to 255 of A-Z a-z 0-9 _ - . */
    size_t nl = (size_t)(colon - p);
    int ok = nl >= 3 && nl <= 255;
    for (size_t i = 0; ok && i < nl; i++)
      ok = (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
           (p[i] >= '0' && p[i] <= '9') || p[i] == '_' || p[i] == '-' || p[i] == '.';
    if (!ok) {
      trb_status_set(st, TRB_ECONFIG,
                     "'%.*s' is not a table name (3 to 255 of A-Z, a-z, 0-9, _, -, .)",
                     (int)(nl > 64 ? 64 : nl), p);
      return -1;
    }
    char vt[32] = "";
    size_t vl = len - nl - 1;
    if (vl < sizeof vt) memcpy(vt, colon + 1, vl);
    trb_view v;
    if (vl >= sizeof vt || trb_view_parse(vt, &v)) {
      trb_status_set(st, TRB_ECONFIG,
                     "'%.*s' is not a stream view type (KEYS_ONLY, NEW_IMAGE, OLD_IMAGE or "
                     "NEW_AND_OLD_IMAGES)", (int)(vl > 64 ? 64 : vl), colon + 1);
      return -1;
    }
    if (table && !found && nl == tl && !memcmp(p, table, tl)) {
      found = 1;
      if (view) *view = v;
    }
    p = comma ? comma + 1 : p + len;
  }
  return found;
}
