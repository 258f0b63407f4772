/*
 * dynamo.c -- the DynamoDB JSON 1.0 protocol: dispatch on X-Amz-Target,
 * SigV4, request parsing, errors in DynamoDB's shape (spec 1.2-1.6), and the
 * shared member readers. The operations live in dynamo_table.c,
 * dynamo_item.c, dynamo_query.c and dynamo_batch.c.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/dynamo_int.h"
#include "api/offload.h"
#include "api/dynamo_item.h"
#include "api/json_body.h"
#include "util/clock.h"
#include "util/log.h"

#define TARGET_DDB "DynamoDB_20120810."
#define TARGET_DDB_OLD "DynamoDB_20111205."
#define TARGET_STREAMS "DynamoDBStreams_20120810."

typedef int (*op_fn)(api_call *c);
static const struct {
  const char *name;
  op_fn fn;
} ops[] = {
    {"BatchGetItem", op_batch_get},
    {"BatchWriteItem", op_batch_write},
    {"CreateTable", op_create_table},
    {"DeleteItem", op_delete_item},
    {"DeleteTable", op_delete_table},
    {"DescribeContinuousBackups", op_describe_continuous_backups},
    {"DescribeEndpoints", op_describe_endpoints},
    {"DescribeLimits", op_describe_limits},
    {"DescribeTable", op_describe_table},
    {"DescribeTimeToLive", op_describe_ttl},
    {"GetItem", op_get_item},
    {"ListTables", op_list_tables},
    {"ListTagsOfResource", op_list_tags},
    {"PutItem", op_put_item},
    {"Query", op_query},
    {"Scan", op_scan},
    {"TagResource", op_tag_resource},
    {"TransactGetItems", op_transact_get},
    {"TransactWriteItems", op_transact_write},
    {"UntagResource", op_untag_resource},
    {"UpdateItem", op_update_item},
    {"UpdateTable", op_update_table},
    {"UpdateTimeToLive", op_update_ttl},
};

trb_api *trb_api_create(trb_engine *e, const trb_api_opts *o) {
  trb_api *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  a->eng = e;
  a->thr = trb_throttle_create();
  if (!a->thr) {
    free(a);
    return NULL;
  }
  a->idem = trb_idem_create(NULL);
  if (!a->idem) {
    trb_throttle_destroy(a->thr);
    free(a);
    return NULL;
  }
  a->streams = o ? o->streams : NULL;
  a->metrics = o ? o->metrics : NULL;
  a->stream_shards = o && o->stream_shards ? o->stream_shards : 4;
  a->async_writes = 1;
  if (trb_offload_start(o && o->wait_threads ? o->wait_threads : 32, &a->wait, NULL))
    a->wait = NULL; /* those operations then run on the HTTP threads */
  a->stream_tables = o && o->stream_tables && o->stream_tables[0] ? strdup(o->stream_tables) : NULL;
  a->metrics_ctx = o ? o->metrics_ctx : NULL;
  a->iter_key = o ? o->iter_key : NULL;
  a->stream_boost = o ? o->stream_priority_boost : 0;
  snprintf(a->region, sizeof a->region, "%s", o && o->region ? o->region : "us-east-1");
  snprintf(a->account, sizeof a->account, "%s",
           o && o->account_id ? o->account_id : "000000000000");
  if (o && o->nkeys) {
    a->keys = calloc(o->nkeys, sizeof *a->keys);
    if (!a->keys) {
      trb_api_destroy(a);
      return NULL;
    }
    for (size_t i = 0; i < o->nkeys; i++) {
      a->keys[i].access_key_id = strdup(o->keys[i].access_key_id);
      a->keys[i].secret_access_key = strdup(o->keys[i].secret_access_key);
    }
    a->nkeys = o->nkeys;
  }
  return a;
}

void trb_api_destroy(trb_api *a) {
  if (!a) return;
  trb_offload_stop(a->wait); /* after the HTTP server: it has answered everything */
  free(a->stream_tables);
  for (size_t i = 0; i < a->nkeys; i++) {
    free((char *)a->keys[i].access_key_id);
    free((char *)a->keys[i].secret_access_key);
  }
  free(a->keys);
  trb_throttle_destroy(a->thr);
  trb_idem_destroy(a->idem);
  free(a);
}

int api_throttled(api_call *c, const char *table, int write, api_thr *t, trb_table_info *out) {
  memset(t, 0, sizeof *t);
  t->write = write;
  trb_table_info local, *info = out ? out : &local;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_table_describe(c->api->eng, table, info, &st);
  if (rc) return api_fail_st(c, rc, &st);
  t->table_id = info->def.table_id;
  json_t *ext = info->def.ext;
  const char *bm = ext ? json_string_value(json_object_get(ext, "BillingMode")) : NULL;
  json_t *pt = ext ? json_object_get(ext, "ProvisionedThroughput") : NULL;
  if (bm && !strcmp(bm, "PROVISIONED") && pt)
    t->rate = (double)json_integer_value(
        json_object_get(pt, write ? "WriteCapacityUnits" : "ReadCapacityUnits"));
  if (!out) trb_table_info_fini(&local);
  return !trb_throttle_admit(c->api->thr, t->table_id, t->rate, write, trb_now_us());
}

int api_fail_throttled(api_call *c, const char *table, int write) {
  char arn[800];
  api_table_arn(c->api, table, arn, sizeof arn);
  json_decref(c->err_extra);
  c->err_extra = json_pack("{s:[{s:s,s:s}]}", "ThrottlingReasons", "reason",
                           write ? "TableWriteProvisionedThroughputExceeded"
                                 : "TableReadProvisionedThroughputExceeded",
                           "resource", arn);
  return api_fail(c, "ProvisionedThroughputExceededException",
                  "The level of configured provisioned throughput for the table was exceeded. "
                  "Consider increasing your provisioning level with the UpdateTable API.");
}

int api_admit(api_call *c, const char *table, int write, api_thr *t, trb_table_info *info) {
  int r = api_throttled(c, table, write, t, info);
  if (r < 0) return -1;
  if (!r) return 0;
  if (info) trb_table_info_fini(info);
  return api_fail_throttled(c, table, write);
}

int api_admit_read(api_call *c, const trb_table_info *info, const trb_indexdef *ix,
                   api_thr *t) {
  if (!ix || ix->local) return api_admit(c, info->def.name, 0, t, NULL);
  memset(t, 0, sizeof *t);
  t->table_id = ix->cf_id; /* a GSI has its own bucket */
  api_gsi_rate(info, ix, 0, &t->rate);
  if (!trb_throttle_admit(c->api->thr, t->table_id, t->rate, 0, trb_now_us())) {
    char arn[800];
    api_table_arn(c->api, info->def.name, arn, sizeof arn);
    size_t l = strlen(arn);
    snprintf(arn + l, sizeof arn - l, "/index/%s", ix->name);
    c->err_extra = json_pack("{s:[{s:s,s:s}]}", "ThrottlingReasons", "reason",
                             "IndexReadProvisionedThroughputExceeded", "resource", arn);
    return api_fail(c, "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for one or more global "
                    "secondary indexes of the table was exceeded. Consider increasing your "
                    "provisioning level for the under-provisioned global secondary indexes with "
                    "the UpdateTable API");
  }
  return 0;
}

void api_charge(api_call *c, const api_thr *t, double units) {
  trb_throttle_charge(c->api->thr, t->table_id, t->rate, t->write, units, trb_now_us());
}

/* ---- errors ---- */

static const char *err_namespace(const char *type) {
  static const char *coral_service[] = {
      "SerializationException", "UnknownOperationException",
      "MissingAuthenticationTokenException", "IncompleteSignatureException",
      "InvalidSignatureException", "UnrecognizedClientException", "AccessDeniedException", NULL};
  if (!strcmp(type, "ValidationException")) return "com.amazon.coral.validate#";
  if (!strcmp(type, "ThrottlingException")) return "com.amazon.coral.availability#";
  for (int i = 0; coral_service[i]; i++)
    if (!strcmp(type, coral_service[i])) return "com.amazon.coral.service#";
  return "com.amazonaws.dynamodb.v20120810#";
}

int api_fail(api_call *c, const char *type, const char *fmt, ...) {
  c->err_type = type;
  c->status = !strcmp(type, "InternalServerError") ? 500 : 400;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err_msg, sizeof c->err_msg, fmt, ap);
  va_end(ap);
  return -1;
}

static int item_op(const char *op) {
  static const char *const ops[] = {"GetItem", "PutItem", "UpdateItem", "DeleteItem",
                                    "Query", "Scan", "BatchGetItem", "BatchWriteItem",
                                    "TransactGetItems", "TransactWriteItems"};
  for (size_t i = 0; op && i < sizeof ops / sizeof ops[0]; i++)
    if (!strcmp(op, ops[i])) return 1;
  return 0;
}

int api_fail_st(api_call *c, trb_err rc, const trb_status *st) {
  const char *msg = trb_status_msg(st);
  switch (rc) {
    case TRB_EINVAL:
    case TRB_ELIMIT: return api_fail(c, "ValidationException", "%s", msg);
    case TRB_ESERIAL: return api_fail(c, "SerializationException", "%s", msg);
    case TRB_ENOTFOUND:
      /* DynamoDB names the missing table in the table operations' answers
       * (DescribeTable...), not in the item operations' */
      if (!strncmp(msg, "Requested resource not found: Table: ", 37) && item_op(c->op))
        return api_fail(c, "ResourceNotFoundException", "Requested resource not found");
      return api_fail(c, "ResourceNotFoundException", "%s", msg);
    case TRB_EEXISTS:
    case TRB_EINUSE: return api_fail(c, "ResourceInUseException", "%s", msg);
    case TRB_ECONDFAIL: return api_fail(c, "ConditionalCheckFailedException", "%s", msg);
    case TRB_ETRIMMED: return api_fail(c, "TrimmedDataAccessException", "%s", msg);
    default:
      trb_log_error("api", "%s failed: %s (%s)", c->op, msg, trb_err_name(rc));
      return api_fail(c, "InternalServerError", "%s", msg);
  }
}

static char *error_body(api_call *c, size_t *len) {
  char type[160];
  snprintf(type, sizeof type, "%s%s", err_namespace(c->err_type), c->err_type);
  json_t *o = json_object();
  json_object_set_new(o, "__type", json_string(type));
  int capital = !strcmp(c->err_type, "SerializationException");
  int both = !strcmp(c->err_type, "TransactionCanceledException");
  if (strcmp(c->err_type, "UnknownOperationException")) {
    json_t *m = json_stringn_nocheck(c->err_msg, strlen(c->err_msg));
    if (!json_string_value(m)) { /* not UTF-8: should not happen, be safe */
      json_decref(m);
      m = json_string("invalid request");
    }
    json_object_set(o, capital || both ? "Message" : "message", m);
    if (both) json_object_set(o, "message", m);
    json_decref(m);
  }
  if (c->err_extra) json_object_update(o, c->err_extra);
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  *len = s ? strlen(s) : 0;
  return s;
}

/* ---- member readers ---- */

static const char *json_kind(json_t *j) {
  switch (json_typeof(j)) {
    case JSON_INTEGER:
    case JSON_REAL: return "NUMBER_VALUE";
    case JSON_TRUE: return "TRUE_VALUE";
    case JSON_FALSE: return "FALSE_VALUE";
    case JSON_STRING: return "STRING_VALUE";
    default: return "NULL_VALUE";
  }
}

static int type_err(api_call *c, json_t *v, const char *want) {
  if (json_is_object(v))
    return api_fail(c, "SerializationException",
                    "Start of structure or map found where not expected.");
  if (json_is_array(v))
    return api_fail(c, "SerializationException", "Start of list found where not expected");
  return api_fail(c, "SerializationException", "%s cannot be converted to %s", json_kind(v),
                  want);
}

static int missing(api_call *c, const char *name) {
  return api_fail(c, "ValidationException",
                  "The parameter '%s' is required but was not present in the request", name);
}

int api_get_str(api_call *c, json_t *obj, const char *name, int required, const char **out) {
  json_t *v = json_object_get(obj, name);
  if (!v || json_is_null(v)) return required ? missing(c, name) : 0;
  if (!json_is_string(v)) return type_err(c, v, "String");
  *out = json_string_value(v);
  return 1;
}

int api_get_bool(api_call *c, json_t *obj, const char *name, int *out) {
  json_t *v = json_object_get(obj, name);
  if (!v || json_is_null(v)) return 0;
  if (!json_is_boolean(v)) return type_err(c, v, "Boolean");
  *out = json_is_true(v);
  return 1;
}

int api_get_int(api_call *c, json_t *obj, const char *name, int64_t *out) {
  json_t *v = json_object_get(obj, name);
  if (!v || json_is_null(v)) return 0;
  if (json_is_integer(v)) {
    *out = json_integer_value(v);
    return 1;
  }
  if (json_is_real(v)) {
    double d = json_real_value(v);
    if (d == floor(d) && fabs(d) < 9e18) {
      *out = (int64_t)d;
      return 1;
    }
  }
  return type_err(c, v, "Long");
}

int api_get_obj(api_call *c, json_t *obj, const char *name, int required, json_t **out) {
  json_t *v = json_object_get(obj, name);
  if (!v || json_is_null(v)) return required ? missing(c, name) : 0;
  if (!json_is_object(v)) {
    if (json_is_array(v))
      return api_fail(c, "SerializationException", "Start of list found where not expected");
    return api_fail(c, "SerializationException", "Expected map or null");
  }
  *out = v;
  return 1;
}

int api_get_arr(api_call *c, json_t *obj, const char *name, int required, json_t **out) {
  json_t *v = json_object_get(obj, name);
  if (!v || json_is_null(v)) return required ? missing(c, name) : 0;
  if (!json_is_array(v)) {
    if (json_is_object(v))
      return api_fail(c, "SerializationException",
                      "Start of structure or map found where not expected.");
    return api_fail(c, "SerializationException", "Expected list or null");
  }
  *out = v;
  return 1;
}

static void lower_camel(const char *member, char *out, size_t n) {
  snprintf(out, n, "%s", member);
  if (out[0]) out[0] = (char)tolower((unsigned char)out[0]);
}

int api_check_enum(api_call *c, const char *member, const char *value,
                   const char *const *allowed) {
  char set[512] = "";
  for (int i = 0; allowed[i]; i++) {
    if (!strcmp(value, allowed[i])) return 0;
    size_t l = strlen(set);
    snprintf(set + l, sizeof set - l, "%s%s", i ? ", " : "", allowed[i]);
  }
  char lc[128];
  lower_camel(member, lc, sizeof lc);
  return api_fail(c, "ValidationException",
                  "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: "
                  "Member must satisfy enum value set: [%s]",
                  value, lc, set);
}

int api_table_name(api_call *c, json_t *obj, const char *member, const char **name) {
  const char *s = NULL;
  int r = api_get_str(c, obj, member, 1, &s);
  if (r <= 0) return r < 0 ? r : -1;
  /* A table ARN: arn:aws:dynamodb:<region>:<account>:table/<name>[/...] */
  if (!strncmp(s, "arn:", 4)) {
    const char *t = strstr(s, ":table/");
    if (!t)
      return api_fail(c, "ValidationException", "Invalid TableArn: %s", s);
    t += 7;
    static __thread char buf[256];
    size_t l = strcspn(t, "/");
    if (l >= sizeof buf) l = sizeof buf - 1;
    memcpy(buf, t, l);
    buf[l] = 0;
    s = buf;
  }
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_tabledef_check_name(s, &st);
  if (rc) return api_fail_st(c, rc, &st);
  *name = s;
  return 1;
}

int api_get_item(api_call *c, json_t *obj, const char *name, int required, trb_av **out) {
  json_t *v = NULL; /* set when r > 0 (-O3 cannot see it) */
  int r = api_get_obj(c, obj, name, required, &v);
  if (r <= 0) return r;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_item_from_json(v, out, &st);
  if (rc) return api_fail_st(c, rc, &st);
  return 1;
}

int api_expr_env(api_call *c, json_t *obj, trb_expr_env **env, trb_av **vals) {
  json_t *names = NULL, *values = NULL;
  *env = NULL;
  *vals = NULL;
  if (api_get_obj(c, obj, "ExpressionAttributeNames", 0, &names) < 0) return -1;
  if (api_get_obj(c, obj, "ExpressionAttributeValues", 0, &values) < 0) return -1;
  size_t nn = names ? json_object_size(names) : 0;
  const char **keys = calloc(nn + 1, sizeof *keys), **nv = calloc(nn + 1, sizeof *nv);
  int ret = -1;
  if (!keys || !nv) {
    api_fail(c, "InternalServerError", "out of memory");
    goto done;
  }
  size_t i = 0;
  const char *k;
  json_t *v;
  if (names) json_object_foreach(names, k, v) {
      if (!json_is_string(v)) {
        type_err(c, v, "String");
        goto done;
      }
      keys[i] = k;
      nv[i] = json_string_value(v);
      i++;
    }
  trb_status st;
  trb_status_init(&st);
  if (values) {
    trb_err rc = trb_item_from_json(values, vals, &st);
    if (rc == TRB_EINVAL) {
      /* a value DynamoDB's parser refuses: its message, with the key, as
       * DynamoDB words it ("... contains invalid value: <why> for key :v") */
      const char *bk;
      json_t *bv;
      json_object_foreach(values, bk, bv) {
        trb_av *one = NULL;
        trb_status vst;
        trb_status_init(&vst);
        trb_err vrc = trb_av_from_json(bv, &one, &vst);
        trb_av_destroy(one);
        if (vrc == TRB_EINVAL) {
          api_fail(c, "ValidationException",
                   "ExpressionAttributeValues contains invalid value: %.300s for key %.255s",
                   trb_status_msg(&vst), bk);
          goto done;
        }
      }
    }
    if (rc) {
      api_fail_st(c, rc, &st);
      goto done;
    }
  }
  trb_err rc = trb_expr_env_create(keys, nv, nn, names != NULL, *vals, values != NULL, env, &st);
  if (rc) {
    api_fail_st(c, rc, &st);
    goto done;
  }
  ret = 1;
done:
  free(keys);
  free(nv);
  if (ret < 0) {
    trb_av_destroy(*vals);
    *vals = NULL;
  }
  return ret;
}

int api_expr(api_call *c, json_t *obj, const char *member, trb_expr_kind kind,
             trb_expr_env *env, trb_expr **out) {
  const char *text = NULL;
  *out = NULL;
  int r = api_get_str(c, obj, member, 0, &text);
  if (r <= 0) return r;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_expr_parse(kind, text, env, out, &st);
  if (rc) return api_fail_st(c, rc, &st);
  return 1;
}

/* ---- capacity ---- */

int api_want_capacity(api_call *c, json_t *obj, int *mode) {
  const char *s = NULL;
  *mode = 0;
  int r = api_get_str(c, obj, "ReturnConsumedCapacity", 0, &s);
  if (r <= 0) return r;
  static const char *const allowed[] = {"INDEXES", "TOTAL", "NONE", NULL};
  if (api_check_enum(c, "ReturnConsumedCapacity", s, allowed)) return -1;
  *mode = !strcmp(s, "TOTAL") ? 1 : !strcmp(s, "INDEXES") ? 2 : 0;
  return 1;
}

int api_want_icm(api_call *c, json_t *obj, int *size) {
  const char *s = NULL;
  *size = 0;
  int r = api_get_str(c, obj, "ReturnItemCollectionMetrics", 0, &s);
  if (r <= 0) return r;
  static const char *const allowed[] = {"SIZE", "NONE", NULL};
  if (api_check_enum(c, "returnItemCollectionMetrics", s, allowed)) return -1;
  *size = !strcmp(s, "SIZE");
  return 1;
}

json_t *api_icm(api_call *c, const char *table, const trb_av *item_or_key) {
  trb_table_info info;
  trb_status st;
  trb_status_init(&st);
  if (trb_table_describe(c->api->eng, table, &info, &st)) return NULL;
  int lsi = 0;
  for (size_t i = 0; info.def.ix && i < info.def.ix->n; i++) lsi |= info.def.ix->d[i].local;
  const char *pkn = info.def.ks.pk_name;
  const trb_av *pk = lsi && item_or_key ? trb_av_m_get(item_or_key, pkn, strlen(pkn)) : NULL;
  uint64_t bytes = 0;
  json_t *out = NULL;
  if (pk && !trb_item_collection_bytes(c->api->eng, table, pk, &bytes, &st)) {
    /* an estimate in whole GB, as DynamoDB gives it: [0.0, 1.0] below 1 GB */
    double lo = (double)(bytes >> 30);
    json_t *key = json_object();
    json_object_set_new(key, pkn, trb_av_to_json(pk));
    out = json_pack("{s:o,s:[f,f]}", "ItemCollectionKey", key, "SizeEstimateRangeGB", lo, lo + 1);
  }
  trb_table_info_fini(&info);
  return out;
}

void api_icm_add(json_t *map, const char *table_as_sent, json_t *m) {
  if (!m) return;
  json_t *l = json_object_get(map, table_as_sent);
  if (!l) json_object_set_new(map, table_as_sent, l = json_array());
  /* one entry per item collection */
  json_t *k = json_object_get(m, "ItemCollectionKey"), *e;
  size_t i;
  json_array_foreach(l, i, e) {
    if (json_equal(json_object_get(e, "ItemCollectionKey"), k)) {
      json_decref(m);
      return;
    }
  }
  json_array_append_new(l, m);
}

double api_rcu(size_t bytes, int consistent) {
  double u = (double)((bytes + 4095) / 4096);
  if (u < 1) u = 1;
  return consistent ? u : u / 2;
}

double api_wcu(size_t bytes) {
  double u = (double)((bytes + 1023) / 1024);
  return u < 1 ? 1 : u;
}

json_t *api_capacity(const char *table, double units, int mode, int read) {
  if (!mode) return NULL;
  json_t *o = json_pack("{s:s,s:f}", "TableName", table, "CapacityUnits", units);
  json_object_set_new(o, read ? "ReadCapacityUnits" : "WriteCapacityUnits", json_real(units));
  if (mode == 2) {
    json_t *t = json_pack("{s:f}", "CapacityUnits", units);
    json_object_set_new(t, read ? "ReadCapacityUnits" : "WriteCapacityUnits", json_real(units));
    json_object_set_new(o, "Table", t);
  }
  return o;
}

/* ---- dispatch ---- */

static void respond(trb_http_resp *resp, int status, char *body, size_t len) {
  resp->status = status;
  resp->body = body;
  resp->body_len = len;
}

/* The request object of a body, or NULL with the call's error set. */
static json_t *parse_body(api_call *c, const char *body, size_t len) {
  trb_status st;
  trb_status_init(&st);
  json_t *in = len ? trb_json_body_parse(body, len, &st) : NULL;
  if (!in && len && st.code == TRB_ENOMEM) {
    api_fail(c, "InternalServerError", "out of memory reading the request");
  } else if (!in) {
    api_fail(c, "SerializationException", len ? "Malformed JSON: %s" : "Empty request body",
             len ? trb_status_msg(&st) : "");
  } else if (!json_is_object(in)) {
    type_err(c, in, "structure");
    c->err_type = "SerializationException";
    json_decref(in);
    in = NULL;
  }
  return in;
}

/* The answer of a finished call: status, and *out (malloc'ed). Releases
 * what the call holds. */
static int call_answer(api_call *c, char **out, size_t *outlen) {
  int status = 200;
  if (!c->err_type && c->out_raw) {
    *out = c->out_raw;
    *outlen = c->out_raw_len;
    c->out_raw = NULL;
  } else if (!c->err_type) {
    *out = json_dumps(c->out ? c->out : json_object(), JSON_COMPACT);
    *outlen = *out ? strlen(*out) : 0;
  } else {
    status = c->status;
    *out = error_body(c, outlen);
  }
  free(c->out_raw);
  c->out_raw = NULL;
  json_decref(c->out);
  json_decref(c->err_extra);
  c->out = c->err_extra = NULL;
  return status;
}

static int run(trb_api *a, const char *opname, op_fn fn, const char *body, size_t len,
               char **out, size_t *outlen) {
  api_call c;
  memset(&c, 0, sizeof c);
  c.api = a;
  c.op = opname;
  json_t *in = parse_body(&c, body, len);
  if (in) {
    c.in = in;
    fn(&c);
  }
  int status = call_answer(&c, out, outlen);
  json_decref(in);
  return status;
}

/* PutItem, UpdateItem and DeleteItem over HTTP do not hold a worker thread
 * while their write waits for its group commit: the connection is
 * suspended and resumed when the commit thread answers, so as many writes
 * as there are connections can share one fdatasync. */
typedef struct async_call {
  api_call c;
  json_t *in;
  api_write_job j;
  int started;              /* api_write_start did not refuse it */
} async_call;

static void async_done(void *token) { trb_http_wake(token); }

/* async_calls are about 5 KB: each HTTP thread keeps a few it has freed
 * for its next writes, since glibc's malloc consolidates all its small free
 * chunks before every allocation that large (perf: 2% of a PutItem). The
 * spares go with their thread (a key destructor). */
#define ASYNC_KEEP 4
typedef struct async_spares {
  async_call *x[ASYNC_KEEP];
  int n;
} async_spares;
static pthread_once_t g_spares_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_spares_key;
static int g_spares_ok;

static void spares_free(void *p) {
  async_spares *sp = p;
  for (int i = 0; i < sp->n; i++) free(sp->x[i]);
  free(sp);
}

static void spares_init(void) { g_spares_ok = !pthread_key_create(&g_spares_key, spares_free); }

static async_spares *spares(void) {
  pthread_once(&g_spares_once, spares_init);
  if (!g_spares_ok) return NULL;
  async_spares *sp = pthread_getspecific(g_spares_key);
  if (!sp && (sp = calloc(1, sizeof *sp)) && pthread_setspecific(g_spares_key, sp)) {
    free(sp);
    sp = NULL;
  }
  return sp;
}

static async_call *async_new(void) {
  async_spares *sp = spares();
  if (!sp || !sp->n) return calloc(1, sizeof(async_call));
  async_call *x = sp->x[--sp->n];
  memset(x, 0, sizeof *x);
  return x;
}

static void async_free(async_call *x) {
  async_spares *sp = spares();
  if (sp && sp->n < ASYNC_KEEP) sp->x[sp->n++] = x;
  else free(x);
}

static void async_cont(void *fctx, trb_http_resp *resp) {
  async_call *x = fctx;
  if (x->started) api_write_finish(&x->c, &x->j);
  size_t len = 0;
  char *out = NULL;
  int status = call_answer(&x->c, &out, &len);
  api_write_job_fini(&x->j);
  json_decref(x->in);
  async_free(x);
  respond(resp, status, out, len);
}

static int async_write(trb_api *a, const char *opname, const trb_http_req *req,
                       trb_http_resp *resp) {
  trb_write_kind kind = !strcmp(opname, "PutItem")      ? TRB_W_PUT
                        : !strcmp(opname, "UpdateItem") ? TRB_W_UPDATE
                        : !strcmp(opname, "DeleteItem") ? TRB_W_DELETE
                                                        : 0;
  if (!kind) return 0;
  async_call *x = async_new();
  if (!x) return 0; /* the synchronous path then */
  x->c.api = a;
  x->c.op = opname;
  x->in = parse_body(&x->c, req->body, req->body_len);
  if (!x->in) {
    size_t len = 0;
    char *out = NULL;
    int status = call_answer(&x->c, &out, &len);
    async_free(x);
    respond(resp, status, out, len);
    return 1;
  }
  x->c.in = x->in;
  void *tok = trb_http_suspend(req, async_cont, x);
  int q = api_write_start(&x->c, kind, &x->j, async_done, tok);
  x->started = q >= 0;
  if (q != 1) trb_http_wake(tok); /* answered already: the continuation runs at once */
  return 1;
}

/* The other operations that wait run on the wait pool: for a group commit
 * (as many of them as there are clients share an fdatasync), or, in the
 * Streams API, for the stream index to take in what the WAL published (up
 * to 100 ms under load). The connection is suspended meanwhile, so the
 * HTTP threads (a few) never block. */
static int waits(const char *op) {
  static const char *const names[] = {"BatchWriteItem", "TransactWriteItems", "CreateTable",
                                      "UpdateTable", "DeleteTable", "UpdateTimeToLive",
                                      "TagResource", "UntagResource", "ListStreams",
                                      "DescribeStream", "GetShardIterator", "GetRecords"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!strcmp(op, names[i])) return 1;
  return 0;
}

typedef struct wait_call {
  trb_api *a;
  char op[64];              /* the request's header goes with the handler */
  op_fn fn;
  char *body;
  size_t len;
  void *tok;
  int status;
  char *out;
  size_t outlen;
} wait_call;

static void wait_work(void *ctx) {
  wait_call *x = ctx;
  x->status = run(x->a, x->op, x->fn, x->body, x->len, &x->out, &x->outlen);
  trb_http_wake(x->tok);
}

static void wait_cont(void *fctx, trb_http_resp *resp) {
  wait_call *x = fctx;
  respond(resp, x->status, x->out, x->outlen);
  free(x->body);
  free(x);
}

static int wait_offload(trb_api *a, const char *opname, op_fn fn, const trb_http_req *req) {
  if (!a->wait || !waits(opname)) return 0;
  wait_call *x = calloc(1, sizeof *x);
  if (!x || !(x->body = malloc(req->body_len ? req->body_len : 1))) {
    free(x);
    return 0; /* the HTTP thread then */
  }
  if (req->body_len) memcpy(x->body, req->body, req->body_len); /* an empty body has none */
  x->a = a, x->fn = fn, x->len = req->body_len;
  snprintf(x->op, sizeof x->op, "%s", opname);
  x->tok = trb_http_suspend(req, wait_cont, x);
  if (trb_offload_run(a->wait, wait_work, x)) wait_work(x); /* stopping: here */
  return 1;
}

/* The operation named *name; *name then points at the table's own copy
 * of the name (static, outliving the request). */
static op_fn find_op(const char **name) {
  size_t lo = 0, hi = sizeof ops / sizeof ops[0];
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int cmp = strcmp(ops[mid].name, *name);
    if (!cmp) {
      *name = ops[mid].name;
      return ops[mid].fn;
    }
    if (cmp < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

/* The DynamoDBStreams_20120810 operations (*name as for find_op). */
static op_fn find_stream_op(const char **name) {
  static const struct {
    const char *name;
    op_fn fn;
  } sops[] = {{"DescribeStream", op_describe_stream},
              {"GetRecords", op_get_records},
              {"GetShardIterator", op_get_shard_iterator},
              {"ListStreams", op_list_streams}};
  for (size_t i = 0; i < sizeof sops / sizeof sops[0]; i++)
    if (!strcmp(sops[i].name, *name)) {
      *name = sops[i].name;
      return sops[i].fn;
    }
  return NULL;
}

int trb_api_call(trb_api *a, const char *operation, const char *body, size_t len, char **out) {
  size_t outlen = 0;
  op_fn fn = find_op(&operation);
  if (!fn) {
    api_call c;
    memset(&c, 0, sizeof c);
    api_fail(&c, "UnknownOperationException", "%s", "");
    *out = error_body(&c, &outlen);
    return 400;
  }
  return run(a, operation, fn, body, len, out, &outlen);
}

static void fail_resp(trb_http_resp *resp, const char *type, const char *msg) {
  api_call c;
  memset(&c, 0, sizeof c);
  api_fail(&c, type, "%s", msg);
  size_t len;
  char *b = error_body(&c, &len);
  respond(resp, c.status, b, len);
}

void trb_api_handle(void *ctx, const trb_http_req *req, trb_http_resp *resp) {
  trb_api *a = ctx;
  if (!strcmp(req->method, "GET") && !strcmp(req->path, "/metrics")) {
    char *b = a->metrics ? a->metrics(a->metrics_ctx) : strdup("");
    resp->content_type = "text/plain; version=0.0.4";
    respond(resp, 200, b, b ? strlen(b) : 0);
    return;
  }
  if (!strcmp(req->method, "GET")) {
    char *b = NULL;
    if (asprintf(&b, "healthy: dynamodb.%s.amazonaws.com ", a->region) < 0) b = NULL;
    resp->content_type = "text/plain";
    respond(resp, 200, b, b ? strlen(b) : 0);
    return;
  }
  const char *ct = trb_http_header(req, "Content-Type");
  if (ct && strncasecmp(ct, "application/x-amz-json-1.0", 26) &&
      strncasecmp(ct, "application/json", 16)) {
    char *b = strdup("<UnknownOperationException/>\n");
    resp->content_type = "text/xml";
    respond(resp, 404, b, b ? strlen(b) : 0);
    return;
  }
  if (a->nkeys) {
    trb_status st;
    trb_status_init(&st);
    trb_sigv4_fail f = trb_sigv4_verify(a->keys, a->nkeys, a->region, req, time(NULL), 900, &st);
    if (f != TRB_SIGV4_OK) {
      fail_resp(resp, trb_sigv4_fail_type(f), trb_status_msg(&st));
      return;
    }
  }
  const char *target = trb_http_header(req, "X-Amz-Target");
  /* Spaces or tabs around a header value are not part of it (RFC 7230
   * 3.2.4), and SigV4's canonical form trims them too. */
  char tbuf[128];
  if (target) {
    while (*target == ' ' || *target == '\t') target++;
    size_t tl = strlen(target);
    while (tl && (target[tl - 1] == ' ' || target[tl - 1] == '\t')) tl--;
    if (tl < sizeof tbuf && target[tl]) {
      memcpy(tbuf, target, tl);
      tbuf[tl] = 0;
      target = tbuf;
    }
  }
  const char *opname = NULL;
  if (target && !strncmp(target, TARGET_DDB, strlen(TARGET_DDB)))
    opname = target + strlen(TARGET_DDB);
  else if (target && !strncmp(target, TARGET_DDB_OLD, strlen(TARGET_DDB_OLD)))
    opname = target + strlen(TARGET_DDB_OLD);
  op_fn fn = opname ? find_op(&opname) : NULL;
  if (target && !strncmp(target, TARGET_STREAMS, strlen(TARGET_STREAMS))) {
    opname = target + strlen(TARGET_STREAMS);
    fn = find_stream_op(&opname);
  }
  if (!fn) {
    fail_resp(resp, "UnknownOperationException", "");
    return;
  }
  if (fn != NULL && a->async_writes && async_write(a, opname, req, resp)) return;
  if (wait_offload(a, opname, fn, req)) return;
  size_t len = 0;
  char *out = NULL;
  int status = run(a, opname, fn, req->body, req->body_len, &out, &len);
  respond(resp, status, out, len);
}

void trb_api_reject(void *ctx, const char *kind, const trb_http_req *req, trb_http_resp *resp) {
  (void)ctx;
  (void)req;
  if (!strcmp(kind, "TooLarge")) {
    api_call c;
    memset(&c, 0, sizeof c);
    api_fail(&c, "ValidationException", "Request size exceeded the maximum of 16 MB");
    size_t len;
    char *b = error_body(&c, &len);
    respond(resp, 413, b, len);
    return;
  }
  char *b = strdup("<UnknownOperationException/>\n");
  resp->content_type = "text/xml";
  respond(resp, 404, b, b ? strlen(b) : 0);
}
