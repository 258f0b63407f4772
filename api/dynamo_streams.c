/*
 * dynamo_streams.c -- the DynamoDB Streams API (spec section 7): ListStreams,
 * DescribeStream, GetShardIterator, GetRecords, over the stream index
 * (transform/streams.h). Iterators are api/stream_iter.h tokens: the
 * stream, the shard and the next LSN to read, MAC'ed and expiring after 15
 * minutes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/dynamo_int.h"
#include "api/stream_iter.h"
#include "transform/doc_json.h"
#include "transform/streams.h"
#include "util/clock.h"
#include "util/thread.h"

#define MAX_RECORDS_BYTES (1024 * 1024)

static void stream_arn(trb_api *a, const char *table, const char *label, char *out, size_t n) {
  char t[512];
  api_table_arn(a, table, t, sizeof t);
  snprintf(out, n, "%s/stream/%s", t, label);
}

/* "arn:aws:dynamodb:<region>:<account>:table/<table>/stream/<label>" into
 * table and label. -1 (ValidationException) when malformed. */
static int parse_stream_arn(api_call *c, const char *arn, char table[256], char label[32]) {
  const char *p = strstr(arn ? arn : "", ":table/");
  const char *q = p ? strstr(p + 7, "/stream/") : NULL;
  size_t tl = q ? (size_t)(q - (p + 7)) : 0;
  size_t ll = q ? strlen(q + 8) : 0;
  if (!arn || strncmp(arn, "arn:", 4) || !p || !q || tl < 3 || tl > 255 || ll < 1 || ll > 31 ||
      strlen(arn) < 37 || strlen(arn) > 1024)
    return api_fail(c, "ValidationException", "Invalid StreamArn");
  memcpy(table, p + 7, tl);
  table[tl] = 0;
  memcpy(label, q + 8, ll);
  label[ll] = 0;
  return 0;
}

static int need_streams(api_call *c) {
  if (c->api->streams && c->api->iter_key) return 0;
  return api_fail(c, "InternalServerError", "DynamoDB Streams are not served by this server");
}

int op_list_streams(api_call *c) {
  if (need_streams(c)) return -1;
  const char *table = NULL, *start = NULL;
  int64_t limit = 100;
  if (api_get_str(c, c->in, "TableName", 0, &table) < 0) return -1;
  if (api_get_str(c, c->in, "ExclusiveStartStreamArn", 0, &start) < 0) return -1;
  int hl = api_get_int(c, c->in, "Limit", &limit);
  if (hl < 0) return -1;
  if (limit < 1 || limit > 100)
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value '%" PRId64 "' at 'limit' failed to "
                    "satisfy constraint: Member must have value %s",
                    limit, limit < 1 ? "greater than or equal to 1" : "less than or equal to 100");
  char st_table[256], st_label[32];
  if (start && parse_stream_arn(c, start, st_table, st_label)) return -1;
  trb_stream_info *v = NULL;
  size_t n = 0;
  trb_status st;
  trb_status_init(&st);
  /* Read-your-writes, as the other Streams operations: a stream enabled
   * just before is listed. */
  trb_streams_sync(c->api->streams, 100);
  trb_err rc = trb_streams_list(c->api->streams, table, &v, &n, &st);
  if (rc) return api_fail_st(c, rc, &st);
  if (table && !n) {
    /* no stream, and no table either (a deleted table's streams are still
     * listed): DynamoDB's ResourceNotFoundException */
    trb_table_info info;
    trb_status_init(&st);
    rc = trb_table_describe(c->api->eng, table, &info, &st);
    if (rc == TRB_ENOTFOUND) {
      free(v);
      return api_fail(c, "ResourceNotFoundException",
                      "Requested resource not found: Table: %s not found", table);
    }
    if (!rc) trb_table_info_fini(&info);
  }
  size_t from = 0;
  if (start) {
    for (size_t i = 0; i < n; i++)
      if (!strcmp(v[i].table, st_table) && !strcmp(v[i].label, st_label)) from = i + 1;
  }
  json_t *arr = json_array();
  size_t i = from;
  for (; i < n && json_array_size(arr) < (size_t)limit; i++) {
    char arn[1100];
    stream_arn(c->api, v[i].table, v[i].label, arn, sizeof arn);
    json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "StreamArn", arn, "TableName",
                                         v[i].table, "StreamLabel", v[i].label));
  }
  c->out = json_pack("{s:o}", "Streams", arr);
  if (i < n && json_array_size(arr)) {
    json_t *last = json_array_get(arr, json_array_size(arr) - 1);
    json_object_set(c->out, "LastEvaluatedStreamArn", json_object_get(last, "StreamArn"));
  }
  free(v);
  return 0;
}

static json_t *key_schema(const trb_keyschema *ks) {
  json_t *a = json_array();
  json_array_append_new(a, json_pack("{s:s,s:s}", "AttributeName", ks->pk_name, "KeyType", "HASH"));
  if (ks->has_sk)
    json_array_append_new(a, json_pack("{s:s,s:s}", "AttributeName", ks->sk_name, "KeyType", "RANGE"));
  return a;
}

int op_describe_stream(api_call *c) {
  if (need_streams(c)) return -1;
  const char *arn, *start = NULL;
  int64_t limit = 100;
  if (api_get_str(c, c->in, "StreamArn", 1, &arn) <= 0) return -1;
  if (api_get_str(c, c->in, "ExclusiveStartShardId", 0, &start) < 0) return -1;
  if (api_get_int(c, c->in, "Limit", &limit) < 0) return -1;
  if (limit < 1 || limit > 100)
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value '%" PRId64 "' at 'limit' failed to "
                    "satisfy constraint: Member must have value %s",
                    limit, limit < 1 ? "greater than or equal to 1" : "less than or equal to 100");
  json_t *filter = json_object_get(c->in, "ShardFilter");
  const char *child_of = NULL;
  if (filter && !json_is_null(filter)) {
    const char *type = NULL;
    if (!json_is_object(filter)) return api_fail(c, "SerializationException", "Expected map or null");
    if (api_get_str(c, filter, "Type", 1, &type) <= 0) return -1;
    static const char *const types[] = {"CHILD_SHARDS", NULL};
    if (api_check_enum(c, "shardFilter.type", type, types)) return -1;
    if (api_get_str(c, filter, "ShardId", 1, &child_of) <= 0) return -1;
  }
  char table[256], label[32];
  if (parse_stream_arn(c, arn, table, label)) return -1;
  trb_streams_sync(c->api->streams, 100);
  trb_stream_info info;
  trb_shard_info *sh = NULL;
  size_t n = 0;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_streams_describe(c->api->streams, table, label, &info, &sh, &n, &st);
  if (rc) return api_fail_st(c, rc, &st);
  json_t *shards = json_array();
  size_t i = 0;
  int more = 0;
  for (; i < n; i++) {
    if (start && strcmp(sh[i].id, start) <= 0) continue;
    if (child_of && strcmp(sh[i].parent, child_of)) continue;
    if (json_array_size(shards) == (size_t)limit) {
      more = 1;
      break;
    }
    char s1[41], s2[41];
    trb_seqno_format(sh[i].start_lsn, s1);
    json_t *range = json_pack("{s:s}", "StartingSequenceNumber", s1);
    if (sh[i].closed) {
      trb_seqno_format(sh[i].end_lsn, s2);
      json_object_set_new(range, "EndingSequenceNumber", json_string(s2));
    }
    json_t *o = json_pack("{s:s,s:o}", "ShardId", sh[i].id, "SequenceNumberRange", range);
    if (sh[i].parent[0]) json_object_set_new(o, "ParentShardId", json_string(sh[i].parent));
    json_array_append_new(shards, o);
  }
  char sarn[1100];
  stream_arn(c->api, table, label, sarn, sizeof sarn);
  json_t *d = json_pack("{s:s,s:s,s:s,s:s,s:f,s:s,s:o,s:o}", "StreamArn", sarn, "StreamLabel",
                        label, "StreamStatus", info.enabled ? "ENABLED" : "DISABLED",
                        "StreamViewType", trb_view_name(info.view), "CreationRequestDateTime",
                        (double)info.created_us / 1e6, "TableName", table, "KeySchema",
                        key_schema(&info.ks), "Shards", shards);
  if (more && json_array_size(shards))
    json_object_set(d, "LastEvaluatedShardId",
                    json_object_get(json_array_get(shards, json_array_size(shards) - 1), "ShardId"));
  c->out = json_pack("{s:o}", "StreamDescription", d);
  free(sh);
  return 0;
}

int op_get_shard_iterator(api_call *c) {
  if (need_streams(c)) return -1;
  const char *arn, *shard, *type, *seq = NULL;
  if (api_get_str(c, c->in, "StreamArn", 1, &arn) <= 0) return -1;
  if (api_get_str(c, c->in, "ShardId", 1, &shard) <= 0) return -1;
  if (api_get_str(c, c->in, "ShardIteratorType", 1, &type) <= 0) return -1;
  if (api_get_str(c, c->in, "SequenceNumber", 0, &seq) < 0) return -1;
  static const char *const types[] = {"TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER",
                                      "AFTER_SEQUENCE_NUMBER", NULL};
  if (api_check_enum(c, "shardIteratorType", type, types)) return -1;
  int at = !strcmp(type, "AT_SEQUENCE_NUMBER"), after = !strcmp(type, "AFTER_SEQUENCE_NUMBER");
  if ((at || after) && !seq)
    return api_fail(c, "ValidationException",
                    "Must specify a SequenceNumber with ShardIteratorType %s", type);
  if (!(at || after) && seq)
    return api_fail(c, "ValidationException",
                    "Cannot specify a SequenceNumber with ShardIteratorType %s", type);
  char table[256], label[32];
  if (parse_stream_arn(c, arn, table, label)) return -1;
  trb_status st;
  trb_status_init(&st);
  uint64_t seq_lsn = 0;
  if (seq && trb_seqno_parse(seq, &seq_lsn, &st))
    return api_fail(c, "ValidationException", "Invalid SequenceNumber: %s", seq);
  trb_streams_sync(c->api->streams, 100);
  trb_shard_info si;
  trb_err rc = trb_streams_shard(c->api->streams, table, label, shard, &si, &st);
  if (rc) return api_fail_st(c, rc, &st);
  trb_iter it;
  memset(&it, 0, sizeof it);
  snprintf(it.stream_arn, sizeof it.stream_arn, "%s", arn);
  snprintf(it.shard_id, sizeof it.shard_id, "%s", shard);
  it.issued_us = trb_now_us();
  if (!strcmp(type, "TRIM_HORIZON")) {
    /* the oldest record retention has kept */
    it.next_lsn = si.trimmed_through >= si.start_lsn ? si.trimmed_through + 1 : si.start_lsn;
  } else if (!strcmp(type, "LATEST")) {
    it.next_lsn = si.closed ? si.end_lsn + 1 : trb_streams_next_lsn(c->api->streams);
  } else {
    if (si.trimmed_through && seq_lsn <= si.trimmed_through)
      return api_fail(c, "TrimmedDataAccessException",
                      "Attempted to access data that has been trimmed: sequence number %s of "
                      "shard %s is older than the stream's retention",
                      seq, shard);
    if (seq_lsn < si.start_lsn || (si.closed && seq_lsn > si.end_lsn))
      return api_fail(c, "ValidationException",
                      "Invalid SequenceNumber %s for shard %s: it is outside the shard's range",
                      seq, shard);
    it.next_lsn = at ? seq_lsn : seq_lsn + 1;
  }
  char tok[TRB_ITER_MAX + 1];
  if ((rc = trb_iter_encode(c->api->iter_key, &it, tok, &st))) return api_fail_st(c, rc, &st);
  c->out = json_pack("{s:s}", "ShardIterator", tok);
  return 0;
}

int op_get_records(api_call *c) {
  if (need_streams(c)) return -1;
  const char *tok;
  int64_t limit = 1000;
  if (api_get_str(c, c->in, "ShardIterator", 1, &tok) <= 0) return -1;
  int hl = api_get_int(c, c->in, "Limit", &limit);
  if (hl < 0) return -1;
  if (limit < 1 || limit > 1000)
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value '%" PRId64 "' at 'limit' failed to "
                    "satisfy constraint: Member must have value %s",
                    limit, limit < 1 ? "greater than or equal to 1" : "less than or equal to 1000");
  trb_iter it;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_iter_decode(c->api->iter_key, tok, trb_now_us(), &it, &st);
  if (rc == TRB_ETIMEDOUT) return api_fail(c, "ExpiredIteratorException", "%s", trb_status_msg(&st));
  if (rc) return api_fail(c, "ValidationException", "%s", trb_status_msg(&st));
  char table[256], label[32];
  if (parse_stream_arn(c, it.stream_arn, table, label)) return -1;
  /* Stream work runs above request work (streams.priority_boost), like the
   * stream index and the sinks' threads: this thread only while it reads. */
  int nice = c->api->stream_boost ? trb_thread_nice() : 0;
  int boosted =
      c->api->stream_boost && !trb_thread_favour(c->api->stream_boost, "the stream threads");
  /* Read-your-writes: take in what the WAL has published so far. */
  trb_streams_sync(c->api->streams, 100);
  trb_streams_page pg;
  /* The answer is written as text straight from the WAL records (no
   * jansson tree per record): {"Records":[...],"NextShardIterator":"..."} */
  trb_buf body;
  trb_buf_init(&body, 0);
  trb_buf_append(&body, "{\"Records\":", 11);
  rc = trb_streams_read_text(c->api->streams, table, label, it.shard_id, it.next_lsn,
                             (size_t)limit, MAX_RECORDS_BYTES, &body, &pg, &st);
  if (boosted) trb_thread_set_nice(nice, "the stream threads");
  if (rc) trb_buf_fini(&body);
  if (rc == TRB_ENOTFOUND && it.next_lsn < trb_streams_trim_lsn(c->api->streams))
    return api_fail(c, "TrimmedDataAccessException",
                    "Attempted to access data that has been trimmed: shard %s is past the "
                    "stream's retention",
                    it.shard_id);
  if (rc) return api_fail_st(c, rc, &st);
  trb_err brc = TRB_OK;
  if (!pg.exhausted) {
    it.next_lsn = pg.next_lsn;
    it.issued_us = trb_now_us();
    char next[TRB_ITER_MAX + 1];
    if ((rc = trb_iter_encode(c->api->iter_key, &it, next, &st))) {
      trb_buf_fini(&body);
      return api_fail_st(c, rc, &st);
    }
    brc = trb_buf_append(&body, ",\"NextShardIterator\":", 21);
    if (!brc) brc = trb_json_str_append(next, strlen(next), &body);
  }
  if (!brc) brc = trb_buf_append(&body, "}", 1);
  if (brc) {
    trb_buf_fini(&body);
    return api_fail(c, "InternalServerError", "out of memory");
  }
  c->out_raw = (char *)trb_buf_steal(&body, &c->out_raw_len);
  return 0;
}
