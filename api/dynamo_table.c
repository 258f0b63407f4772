/*
 * dynamo_table.c -- CreateTable, DescribeTable, ListTables, DeleteTable,
 * UpdateTable, Update/DescribeTimeToLive, tags (spec section 3).
 *
 * What the engine does not interpret is kept in the table's ext object
 * (engine/tabledef.h), under these members:
 *   AttributeDefinitions  as the client sent them
 *   BillingMode           "PROVISIONED" | "PAY_PER_REQUEST"
 *   ProvisionedThroughput {"ReadCapacityUnits": n, "WriteCapacityUnits": n,
 *                          and once changed by UpdateTable: "LastIncreaseDateTime",
 *                          "LastDecreaseDateTime" (epoch seconds), "DecreasesDay"
 *                          (the UTC day, days since the epoch, of "DecreasesThatDay")}
 *   BillingModeSince      epoch seconds of the last billing-mode change
 *   StreamSpecification   {"StreamEnabled": true, "StreamViewType": ...} when on
 *   StreamLabel           ISO-8601 label of the latest stream (kept when off)
 *   TimeToLive            {"AttributeName": "...", "Enabled": bool}
 *   Tags                  [{"Key": ..., "Value": ...}]
 *   DeletionProtectionEnabled, TableClass
 */
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/dynamo_int.h"
#include "transform/stream_record.h"
#include "util/clock.h"

static int merge_tags(api_call *c, json_t *tags, json_t *in, int add);

/* Days since the epoch of a time in microseconds: the UTC day that
 * NumberOfDecreasesToday counts in. */
static json_int_t utc_day(int64_t us) { return (json_int_t)(us / 86400000000ll); }

void api_table_arn(trb_api *a, const char *name, char *out, size_t n) {
  snprintf(out, n, "arn:aws:dynamodb:%s:%s:table/%s", a->region, a->account, name);
}

/* A stable UUID-shaped TableId from the table's identity. */
static void table_uuid(const trb_tabledef *d, char out[37]) {
  char seed[300];
  int n = snprintf(seed, sizeof seed, "%s/%" PRIu64, d->name, d->table_id);
  unsigned char h[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)seed, (size_t)n, h);
  h[6] = (h[6] & 0x0f) | 0x40;
  h[8] = (h[8] & 0x3f) | 0x80;
  snprintf(out, 37,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", h[0], h[1],
           h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14],
           h[15]);
}

static json_t *key_schema_json(const trb_keyschema *ks) {
  json_t *a = json_array();
  json_array_append_new(a, json_pack("{s:s,s:s}", "AttributeName", ks->pk_name, "KeyType", "HASH"));
  if (ks->has_sk)
    json_array_append_new(a,
                          json_pack("{s:s,s:s}", "AttributeName", ks->sk_name, "KeyType", "RANGE"));
  return a;
}

static void describe_sse(trb_api *a, json_t *ext, json_t *o);

json_t *api_table_description(trb_api *a, const trb_table_info *info, const char *status) {
  const trb_tabledef *d = &info->def;
  json_t *ext = d->ext;
  char arn[512], id[37];
  api_table_arn(a, d->name, arn, sizeof arn);
  table_uuid(d, id);
  json_t *o = json_object();
  json_t *ad = ext ? json_object_get(ext, "AttributeDefinitions") : NULL;
  if (ad) {
    json_object_set(o, "AttributeDefinitions", ad);
  } else {
    ad = json_array();
    json_array_append_new(ad, json_pack("{s:s,s:s}", "AttributeName", d->ks.pk_name,
                                        "AttributeType", trb_type_name(d->ks.pk_type)));
    if (d->ks.has_sk)
      json_array_append_new(ad, json_pack("{s:s,s:s}", "AttributeName", d->ks.sk_name,
                                          "AttributeType", trb_type_name(d->ks.sk_type)));
    json_object_set_new(o, "AttributeDefinitions", ad);
  }
  json_object_set_new(o, "TableName", json_string(d->name));
  json_object_set_new(o, "KeySchema", key_schema_json(&d->ks));
  json_object_set_new(o, "TableStatus", json_string(status));
  json_object_set_new(o, "CreationDateTime", json_real((double)d->created_us / 1e6));
  const char *bm = ext ? json_string_value(json_object_get(ext, "BillingMode")) : NULL;
  if (!bm) bm = "PAY_PER_REQUEST";
  json_t *pt = ext ? json_object_get(ext, "ProvisionedThroughput") : NULL;
  json_int_t rcu = 0, wcu = 0;
  if (pt && !strcmp(bm, "PROVISIONED")) {
    rcu = json_integer_value(json_object_get(pt, "ReadCapacityUnits"));
    wcu = json_integer_value(json_object_get(pt, "WriteCapacityUnits"));
  }
  json_t *ptd = json_pack("{s:I,s:I,s:I}", "NumberOfDecreasesToday", (json_int_t)0,
                          "ReadCapacityUnits", rcu, "WriteCapacityUnits", wcu);
  if (pt && !strcmp(bm, "PROVISIONED")) {
    static const char *const when[] = {"LastIncreaseDateTime", "LastDecreaseDateTime"};
    for (int i = 0; i < 2; i++) {
      json_t *t = json_object_get(pt, when[i]);
      if (t) json_object_set_new(ptd, when[i], json_copy(t));
    }
    if (json_integer_value(json_object_get(pt, "DecreasesDay")) == utc_day(trb_now_us()))
      json_object_set_new(ptd, "NumberOfDecreasesToday",
                          json_copy(json_object_get(pt, "DecreasesThatDay")));
  }
  json_object_set_new(o, "ProvisionedThroughput", ptd);
  json_object_set_new(o, "TableSizeBytes", json_integer((json_int_t)info->size_bytes));
  json_object_set_new(o, "ItemCount", json_integer((json_int_t)info->item_count));
  json_object_set_new(o, "TableArn", json_string(arn));
  json_object_set_new(o, "TableId", json_string(id));
  json_t *bms = json_pack("{s:s}", "BillingMode", bm);
  if (!strcmp(bm, "PAY_PER_REQUEST")) {
    json_t *since = ext ? json_object_get(ext, "BillingModeSince") : NULL;
    json_object_set_new(bms, "LastUpdateToPayPerRequestDateTime",
                        since ? json_copy(since) : json_real((double)d->created_us / 1e6));
  }
  json_object_set_new(o, "BillingModeSummary", bms);
  json_t *ss = ext ? json_object_get(ext, "StreamSpecification") : NULL;
  const char *label = ext ? json_string_value(json_object_get(ext, "StreamLabel")) : NULL;
  if (ss) json_object_set(o, "StreamSpecification", ss);
  if (label) {
    char sarn[600];
    snprintf(sarn, sizeof sarn, "%s/stream/%s", arn, label);
    json_object_set_new(o, "LatestStreamLabel", json_string(label));
    json_object_set_new(o, "LatestStreamArn", json_string(sarn));
  }
  json_t *dp = ext ? json_object_get(ext, "DeletionProtectionEnabled") : NULL;
  json_object_set_new(o, "DeletionProtectionEnabled", json_boolean(dp && json_is_true(dp)));
  const char *tc = ext ? json_string_value(json_object_get(ext, "TableClass")) : NULL;
  json_object_set_new(o, "TableClassSummary", json_pack("{s:s}", "TableClass", tc ? tc : "STANDARD"));
  json_object_set_new(o, "WarmThroughput",
                      json_pack("{s:i,s:i,s:s}", "ReadUnitsPerSecond", 12000,
                                "WriteUnitsPerSecond", 4000, "Status", "ACTIVE"));
  describe_sse(a, ext, o);
  json_t *odt = ext ? json_object_get(ext, "OnDemandThroughput") : NULL;
  if (odt && json_object_size(odt)) json_object_set(o, "OnDemandThroughput", odt);
  api_index_descriptions(a, info, o);
  return o;
}

int api_config_stream(const trb_api *a, const char *table, char view[32]) {
  /* serve checked the setting at start */
  trb_view v;
  if (trb_stream_tables_lookup(a->stream_tables, table, &v, NULL) != 1) return 0;
  snprintf(view, 32, "%s", trb_view_name(v));
  return 1;
}

static int describe_into(api_call *c, const char *name, const char *member, const char *status) {
  trb_table_info info;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_table_describe(c->api->eng, name, &info, &st);
  if (rc) return api_fail_st(c, rc, &st);
  c->out = json_object();
  json_object_set_new(c->out, member, api_table_description(c->api, &info, status));
  trb_table_info_fini(&info);
  return 0;
}

/* SSESpecification {Enabled, SSEType, KMSMasterKeyId} into ext's "SSE"
 * (Enabled false: the default AWS-owned key, no "SSE"). Nothing is
 * encrypted by tributary itself; the setting is kept and described as
 * DynamoDB describes it, so tools that compare it (Terraform) see what they
 * set. 0, or -1 with the error set; *set says whether the member was there. */
static int parse_sse(api_call *c, json_t *ext, int *set) {
  json_t *sse = NULL;
  *set = 0;
  if (api_get_obj(c, c->in, "SSESpecification", 0, &sse) < 0) return -1;
  if (!sse) return 0;
  int en = 0;
  const char *type = NULL, *key = NULL;
  if (api_get_bool(c, sse, "Enabled", &en) < 0 || api_get_str(c, sse, "SSEType", 0, &type) < 0 ||
      api_get_str(c, sse, "KMSMasterKeyId", 0, &key) < 0)
    return -1;
  static const char *const types[] = {"AES256", "KMS", NULL};
  if (type && api_check_enum(c, "sSESpecification.sSEType", type, types)) return -1;
  if (!en && (type || key))
    return api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: SSEType and KMSMasterKeyId can "
                    "only be given when SSESpecification.Enabled is true");
  *set = 1;
  if (!en) {
    json_object_del(ext, "SSE");
    return 0;
  }
  json_t *v = json_pack("{s:s}", "SSEType", "KMS");
  if (key) json_object_set_new(v, "KMSMasterKeyId", json_string(key));
  json_object_set_new(ext, "SSE", v);
  return 0;
}

/* OnDemandThroughput {MaxReadRequestUnits, MaxWriteRequestUnits} into
 * ext (each -1 = no maximum, else at least 1), kept and described as
 * DynamoDB does; tributary does not cap on-demand tables by it. 0, or -1
 * with the error set; *set says whether the member was there. */
static int parse_on_demand(api_call *c, json_t *ext, int *set) {
  json_t *od = NULL;
  *set = 0;
  if (api_get_obj(c, c->in, "OnDemandThroughput", 0, &od) < 0) return -1;
  if (!od) return 0;
  static const char *const names[] = {"MaxReadRequestUnits", "MaxWriteRequestUnits"};
  json_t *v = json_object();
  for (int i = 0; i < 2; i++) {
    int64_t n = 0;
    if (api_get_int(c, od, names[i], &n) < 0) {
      json_decref(v);
      return -1;
    }
    if (!json_object_get(od, names[i])) continue;
    if (n < 1 && n != -1) {
      json_decref(v);
      return api_fail(c, "ValidationException",
                      "One or more parameter values were invalid: %s must be -1 (no maximum) or "
                      "at least 1, not %" PRId64, names[i], n);
    }
    json_object_set_new(v, names[i], json_integer((json_int_t)n));
  }
  *set = 1;
  json_object_set_new(ext, "OnDemandThroughput", v);
  return 0;
}

/* SSEDescription of a table whose SSE is on (the key as an ARN). */
static void describe_sse(trb_api *a, json_t *ext, json_t *o) {
  json_t *v = ext ? json_object_get(ext, "SSE") : NULL;
  if (!v) return;
  const char *key = json_string_value(json_object_get(v, "KMSMasterKeyId"));
  char arn[700];
  if (key && !strncmp(key, "arn:", 4)) snprintf(arn, sizeof arn, "%s", key);
  else if (key && !strncmp(key, "alias/", 6))
    snprintf(arn, sizeof arn, "arn:aws:kms:%s:%s:%s", a->region, a->account, key);
  else
    snprintf(arn, sizeof arn, "arn:aws:kms:%s:%s:key/%s", a->region, a->account,
             key ? key : "00000000-0000-4000-8000-000000000000");
  json_object_set_new(o, "SSEDescription", json_pack("{s:s,s:s,s:s}", "Status", "ENABLED",
                                                     "SSEType", "KMS", "KMSMasterKeyArn", arn));
}

/* ---- CreateTable ---- */

static void stream_label_now(char out[32]) { trb_stream_label(trb_now_us(), out); }

static int check_stream_spec(api_call *c, json_t *ss, int *enabled) {
  int en = 0;
  if (api_get_bool(c, ss, "StreamEnabled", &en) < 0) return -1;
  if (!json_object_get(ss, "StreamEnabled"))
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value null at 'streamSpecification.streamEnabled' "
                    "failed to satisfy constraint: Member must not be null");
  const char *vt = NULL;
  if (api_get_str(c, ss, "StreamViewType", 0, &vt) < 0) return -1;
  if (en) {
    static const char *const allowed[] = {"NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES",
                                          "KEYS_ONLY", NULL};
    if (!vt)
      return api_fail(c, "ValidationException",
                      "One or more parameter values were invalid: You must specify a "
                      "StreamViewType when enabling a stream");
    if (api_check_enum(c, "StreamViewType", vt, allowed)) return -1;
  }
  *enabled = en;
  return 0;
}

int op_create_table(api_call *c) {
  const char *name;
  json_t *ads, *ksj, *v;
  if (api_table_name(c, c->in, "TableName", &name) < 0) return -1;
  if (api_get_arr(c, c->in, "AttributeDefinitions", 1, &ads) <= 0) return -1;
  if (api_get_arr(c, c->in, "KeySchema", 1, &ksj) <= 0) return -1;
  trb_keyschema ks;
  if (api_key_schema(c, ksj, "keySchema", &ks)) return -1;
  /* Key attributes typed from AttributeDefinitions, which must hold exactly
   * the key attributes of the table and its indexes. */
  json_t *adm = NULL, *used = json_object();
  trb_indexset *ix = NULL;
  json_t *ext = json_object();
  if (api_attr_defs(c, ads, &adm)) goto fail;
  if (api_type_keys(c, &ks, adm, used)) goto fail;
  /* Billing. */
  const char *bm = "PROVISIONED";
  if (api_get_str(c, c->in, "BillingMode", 0, &bm) < 0) goto fail;
  static const char *const bms[] = {"PROVISIONED", "PAY_PER_REQUEST", NULL};
  if (api_check_enum(c, "billingMode", bm, bms)) goto fail;
  json_t *pt = NULL;
  if (api_get_obj(c, c->in, "ProvisionedThroughput", 0, &pt) < 0) goto fail;
  if (!strcmp(bm, "PROVISIONED")) {
    if (!pt) {
      api_fail(c, "ValidationException",
               "One or more parameter values were invalid: ReadCapacityUnits and "
               "WriteCapacityUnits must both be specified when BillingMode is PROVISIONED");
      goto fail;
    }
    if (api_check_throughput(c, pt, "provisionedThroughput")) goto fail;
  } else if (pt) {
    api_fail(c, "ValidationException",
             "One or more parameter values were invalid: Neither ReadCapacityUnits nor "
             "WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST");
    goto fail;
  }
  if (api_create_indexes(c, c->in, &ks, adm, used, !strcmp(bm, "PROVISIONED"), ext, &ix))
    goto fail;
  if (json_object_size(used) != json_object_size(adm)) {
    api_fail(c, "ValidationException",
             "One or more parameter values were invalid: Number of attributes in KeySchema does "
             "not exactly match number of attributes defined in AttributeDefinitions");
    goto fail;
  }
  json_object_set(ext, "AttributeDefinitions", ads);
  json_object_set_new(ext, "BillingMode", json_string(bm));
  if (pt)
    json_object_set_new(ext, "ProvisionedThroughput",
                        json_pack("{s:O,s:O}", "ReadCapacityUnits",
                                  json_object_get(pt, "ReadCapacityUnits"), "WriteCapacityUnits",
                                  json_object_get(pt, "WriteCapacityUnits")));
  json_t *ss = NULL;
  if (api_get_obj(c, c->in, "StreamSpecification", 0, &ss) < 0) goto fail;
  if (ss) {
    int en;
    if (check_stream_spec(c, ss, &en)) goto fail;
    if (en) {
      char label[32];
      stream_label_now(label);
      json_object_set(ext, "StreamSpecification", ss);
      json_object_set_new(ext, "StreamLabel", json_string(label));
      /* recorded with the stream, so its shards never depend on a later config */
      json_object_set_new(ext, "StreamShards", json_integer(c->api->stream_shards));
    }
  } else {
    /* No StreamSpecification: the config file may ask for one (streams.tables). */
    char view[32];
    if (api_config_stream(c->api, name, view)) {
      char label[32];
      stream_label_now(label);
      json_object_set_new(ext, "StreamSpecification",
                          json_pack("{s:b,s:s}", "StreamEnabled", 1, "StreamViewType", view));
      json_object_set_new(ext, "StreamLabel", json_string(label));
      json_object_set_new(ext, "StreamShards", json_integer(c->api->stream_shards));
    }
  }
  if ((v = json_object_get(c->in, "Tags"))) {
    if (!json_is_array(v)) {
      api_fail(c, "SerializationException", "Expected list or null");
      goto fail;
    }
    json_t *tags = json_array(); /* as TagResource leaves them: checked, one per key */
    json_object_set_new(ext, "Tags", tags);
    if (merge_tags(c, tags, v, 1)) goto fail;
  }
  int dp = 0;
  if (api_get_bool(c, c->in, "DeletionProtectionEnabled", &dp) < 0) goto fail;
  if (dp) json_object_set_new(ext, "DeletionProtectionEnabled", json_true());
  const char *tc = NULL;
  if (api_get_str(c, c->in, "TableClass", 0, &tc) < 0) goto fail;
  if (tc) {
    static const char *const tcs[] = {"STANDARD", "STANDARD_INFREQUENT_ACCESS", NULL};
    if (api_check_enum(c, "tableClass", tc, tcs)) goto fail;
    json_object_set_new(ext, "TableClass", json_string(tc));
  }
  int sse_set, od_set;
  if (parse_sse(c, ext, &sse_set) || parse_on_demand(c, ext, &od_set)) goto fail;
  trb_table_info info;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_table_create_ix(c->api->eng, name, &ks, ix, ext, &info, &st);
  json_decref(ext);
  json_decref(adm);
  json_decref(used);
  trb_indexset_unref(ix);
  if (rc) return api_fail_st(c, rc, &st);
  c->out = json_object();
  json_object_set_new(c->out, "TableDescription", api_table_description(c->api, &info, "ACTIVE"));
  trb_table_info_fini(&info);
  return 0;
fail:
  json_decref(ext);
  json_decref(adm);
  json_decref(used);
  trb_indexset_unref(ix);
  return -1;
}

int op_describe_table(api_call *c) {
  const char *name;
  if (api_table_name(c, c->in, "TableName", &name) < 0) return -1;
  return describe_into(c, name, "Table", "ACTIVE");
}

int op_list_tables(api_call *c) {
  const char *start = NULL;
  int64_t limit = 100;
  if (api_get_str(c, c->in, "ExclusiveStartTableName", 0, &start) < 0) return -1;
  if (start && (strlen(start) < 3 || strlen(start) > 255))
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value '%s' at 'exclusiveStartTableName' failed "
                    "to satisfy constraint: Member must have length %s",
                    start, strlen(start) < 3 ? "greater than or equal to 3"
                                             : "less than or equal to 255");
  if (api_get_int(c, c->in, "Limit", &limit) < 0) return -1;
  if (limit < 1 || limit > 100)
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value '%" PRId64 "' at 'limit' failed to "
                    "satisfy constraint: Member must have value %s",
                    limit, limit < 1 ? "greater than or equal to 1" : "less than or equal to 100");
  char **names;
  size_t n;
  char *last = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_table_list(c->api->eng, start, (size_t)limit, &names, &n, &last, &st);
  if (rc) return api_fail_st(c, rc, &st);
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(arr, json_string(names[i]));
  trb_table_list_free(names, n);
  c->out = json_pack("{s:o}", "TableNames", arr);
  if (last) json_object_set_new(c->out, "LastEvaluatedTableName", json_string(last));
  free(last);
  return 0;
}

int op_delete_table(api_call *c) {
  const char *name;
  if (api_table_name(c, c->in, "TableName", &name) < 0) return -1;
  trb_table_info info;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_table_describe(c->api->eng, name, &info, &st);
  if (rc) return api_fail_st(c, rc, &st);
  json_t *dp = info.def.ext ? json_object_get(info.def.ext, "DeletionProtectionEnabled") : NULL;
  if (dp && json_is_true(dp)) {
    trb_table_info_fini(&info);
    return api_fail(c, "ValidationException",
                    "Resource cannot be deleted as it is currently protected against deletion. "
                    "Disable deletion protection first.");
  }
  trb_table_info_fini(&info);
  rc = trb_table_delete(c->api->eng, name, &info, &st);
  if (rc) return api_fail_st(c, rc, &st);
  c->out = json_object();
  json_object_set_new(c->out, "TableDescription", api_table_description(c->api, &info, "DELETING"));
  trb_table_info_fini(&info);
  return 0;
}

/* Reads the table, lets fn change a copy of its ext, stores it. */
static int update_ext(api_call *c, const char *name,
                      int (*fn)(api_call *c, json_t *ext, void *arg), void *arg,
                      trb_table_info *out) {
  trb_table_info info;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_table_describe(c->api->eng, name, &info, &st);
  if (rc) return api_fail_st(c, rc, &st);
  json_t *ext = info.def.ext ? json_deep_copy(info.def.ext) : json_object();
  if (fn(c, ext, arg)) {
    json_decref(ext);
    trb_table_info_fini(&info);
    return -1;
  }
  /* Against the definition read above: a concurrent update in between is
   * answered ResourceInUseException rather than silently undone. */
  rc = trb_table_update_ix(c->api->eng, name, &info.def, info.def.ix, ext, out, &st);
  json_decref(ext);
  trb_table_info_fini(&info);
  if (rc) return api_fail_st(c, rc, &st);
  return 0;
}

/* UpdateTable's ProvisionedThroughput pt (checked) into ext. was_prov: the
 * table is in provisioned mode now, so pt is a change of its throughput:
 * the same values again are refused, as DynamoDB does, unless the request
 * changes something else; an increase or a decrease is dated, decreases
 * are counted per UTC day (NumberOfDecreasesToday). */
static int set_throughput(api_call *c, json_t *ext, json_t *pt, int was_prov) {
  json_t *old = was_prov ? json_object_get(ext, "ProvisionedThroughput") : NULL;
  json_int_t nr = json_integer_value(json_object_get(pt, "ReadCapacityUnits"));
  json_int_t nw = json_integer_value(json_object_get(pt, "WriteCapacityUnits"));
  json_t *np = json_pack("{s:I,s:I}", "ReadCapacityUnits", nr, "WriteCapacityUnits", nw);
  if (old) {
    json_int_t orr = json_integer_value(json_object_get(old, "ReadCapacityUnits"));
    json_int_t ow = json_integer_value(json_object_get(old, "WriteCapacityUnits"));
    static const char *const others[] = {"BillingMode", "StreamSpecification",
                                         "GlobalSecondaryIndexUpdates", "DeletionProtectionEnabled",
                                         "TableClass", "SSESpecification", NULL};
    int other = 0;
    for (int i = 0; others[i]; i++) other |= json_object_get(c->in, others[i]) != NULL;
    if (orr == nr && ow == nw && !other) {
      json_decref(np);
      return api_fail(c, "ValidationException",
                      "The provisioned throughput for the table will not change. The requested "
                      "value equals the current value. Current ReadCapacityUnits provisioned for "
                      "the table: %" JSON_INTEGER_FORMAT ". Requested ReadCapacityUnits: %"
                      JSON_INTEGER_FORMAT ". Current WriteCapacityUnits provisioned for the "
                      "table: %" JSON_INTEGER_FORMAT ". Requested WriteCapacityUnits: %"
                      JSON_INTEGER_FORMAT ". Refer to the Amazon DynamoDB Developer Guide for "
                      "current limits and how to request higher limits.", orr, nr, ow, nw);
    }
    static const char *const keep[] = {"LastIncreaseDateTime", "LastDecreaseDateTime",
                                       "DecreasesDay", "DecreasesThatDay", NULL};
    for (int i = 0; keep[i]; i++) {
      json_t *v = json_object_get(old, keep[i]);
      if (v) json_object_set_new(np, keep[i], json_copy(v));
    }
    int64_t now = trb_now_us();
    if (nr > orr || nw > ow)
      json_object_set_new(np, "LastIncreaseDateTime", json_real((double)now / 1e6));
    if (nr < orr || nw < ow) {
      json_int_t day = utc_day(now);
      json_int_t n = json_integer_value(json_object_get(np, "DecreasesDay")) == day
                         ? json_integer_value(json_object_get(np, "DecreasesThatDay"))
                         : 0;
      json_object_set_new(np, "LastDecreaseDateTime", json_real((double)now / 1e6));
      json_object_set_new(np, "DecreasesDay", json_integer(day));
      json_object_set_new(np, "DecreasesThatDay", json_integer(n + 1));
    }
  }
  json_object_set_new(ext, "ProvisionedThroughput", np);
  return 0;
}

static int apply_update_table(api_call *c, json_t *ext, void *arg) {
  (void)arg;
  int changed = 0;
  const char *bm = NULL;
  json_t *pt = NULL, *ss = NULL;
  if (api_get_str(c, c->in, "BillingMode", 0, &bm) < 0) return -1;
  if (api_get_obj(c, c->in, "ProvisionedThroughput", 0, &pt) < 0) return -1;
  if (api_get_obj(c, c->in, "StreamSpecification", 0, &ss) < 0) return -1;
  const char *cur = json_string_value(json_object_get(ext, "BillingMode"));
  if (!cur) cur = "PAY_PER_REQUEST";
  if (bm) {
    static const char *const bms[] = {"PROVISIONED", "PAY_PER_REQUEST", NULL};
    if (api_check_enum(c, "billingMode", bm, bms)) return -1;
  }
  const char *next = bm ? bm : cur;
  if (pt) {
    if (!strcmp(next, "PAY_PER_REQUEST"))
      return api_fail(c, "ValidationException",
                      "One or more parameter values were invalid: Neither ReadCapacityUnits nor "
                      "WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST");
    if (api_check_throughput(c, pt, "provisionedThroughput")) return -1;
    if (set_throughput(c, ext, pt, !strcmp(cur, "PROVISIONED"))) return -1;
    changed = 1;
  } else if (bm && !strcmp(bm, "PROVISIONED") && strcmp(cur, "PROVISIONED")) {
    return api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: ProvisionedThroughput must be "
                    "specified when BillingMode is PROVISIONED");
  }
  if (bm && strcmp(bm, cur)) {
    json_object_set_new(ext, "BillingMode", json_string(bm));
    if (!strcmp(bm, "PAY_PER_REQUEST")) {
      json_object_del(ext, "ProvisionedThroughput");
      json_object_set_new(ext, "BillingModeSince", json_real((double)trb_now_us() / 1e6));
    }
    changed = 1;
  } else if (bm) {
    changed = 1; /* same mode again: accepted as a no-op change */
  }
  if (ss) {
    int en;
    if (check_stream_spec(c, ss, &en)) return -1;
    json_t *curss = json_object_get(ext, "StreamSpecification");
    if (en && curss)
      return api_fail(c, "ValidationException",
                      "Table already has an enabled stream: %s",
                      json_string_value(json_object_get(ext, "StreamLabel")));
    if (!en && !curss)
      return api_fail(c, "ValidationException",
                      "Table does not have a stream enabled; nothing to disable");
    if (en) {
      char label[32];
      stream_label_now(label);
      json_object_set(ext, "StreamSpecification", ss);
      json_object_set_new(ext, "StreamLabel", json_string(label));
      /* recorded with the stream, so its shards never depend on a later config */
      json_object_set_new(ext, "StreamShards", json_integer(c->api->stream_shards));
    } else {
      json_object_del(ext, "StreamSpecification");
    }
    changed = 1;
  }
  int dp;
  int r = api_get_bool(c, c->in, "DeletionProtectionEnabled", &dp);
  if (r < 0) return -1;
  if (r) {
    json_object_set_new(ext, "DeletionProtectionEnabled", json_boolean(dp));
    changed = 1;
  }
  const char *tc = NULL;
  if (api_get_str(c, c->in, "TableClass", 0, &tc) < 0) return -1;
  if (tc) {
    static const char *const tcs[] = {"STANDARD", "STANDARD_INFREQUENT_ACCESS", NULL};
    if (api_check_enum(c, "tableClass", tc, tcs)) return -1;
    json_object_set_new(ext, "TableClass", json_string(tc));
    changed = 1;
  }
  int sse_set, od_set;
  if (parse_sse(c, ext, &sse_set) || parse_on_demand(c, ext, &od_set)) return -1;
  if (sse_set || od_set) changed = 1;
  if (json_object_get(c->in, "GlobalSecondaryIndexUpdates")) changed = 1; /* op_update_table */
  if (!changed)
    return api_fail(c, "ValidationException",
                    "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, "
                    "GlobalSecondaryIndexUpdates or SSESpecification or ReplicaUpdates is required");
  return 0;
}

int op_update_table(api_call *c) {
  const char *name;
  if (api_table_name(c, c->in, "TableName", &name) < 0) return -1;
  json_t *gsiu = json_object_get(c->in, "GlobalSecondaryIndexUpdates");
  trb_table_info info;
  if (!gsiu) {
    if (update_ext(c, name, apply_update_table, NULL, &info)) return -1;
  } else {
    /* Index changes and the rest of the request in one TABLE_UPDATE record;
     * a new GSI is backfilled before the answer. */
    trb_table_info cur;
    trb_status st;
    trb_status_init(&st);
    trb_err rc = trb_table_describe(c->api->eng, name, &cur, &st);
    if (rc) return api_fail_st(c, rc, &st);
    json_t *ext = cur.def.ext ? json_deep_copy(cur.def.ext) : json_object();
    trb_indexset *ix = NULL;
    int bad = apply_update_table(c, ext, NULL) || api_gsi_updates(c, &cur, ext, gsiu, &ix);
    if (!bad) {
      rc = trb_table_update_ix(c->api->eng, name, &cur.def, ix, ext, &info, &st);
      if (rc) api_fail_st(c, rc, &st);
    }
    trb_table_info_fini(&cur);
    json_decref(ext);
    trb_indexset_unref(ix);
    if (bad || rc) return -1;
  }
  c->out = json_object();
  json_object_set_new(c->out, "TableDescription", api_table_description(c->api, &info, "ACTIVE"));
  trb_table_info_fini(&info);
  return 0;
}

/* ---- TTL ---- */

static int apply_ttl(api_call *c, json_t *ext, void *arg) {
  json_t *spec = arg;
  int en = 0;
  const char *attr = NULL;
  if (api_get_bool(c, spec, "Enabled", &en) <= 0)
    return json_object_get(spec, "Enabled") ? -1 : api_fail(c, "ValidationException",
                                                            "The parameter 'Enabled' is required but was not present in the request");
  if (api_get_str(c, spec, "AttributeName", 1, &attr) <= 0) return -1;
  if (strlen(attr) < 1 || strlen(attr) > 255)
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value '%s' at "
                    "'timeToLiveSpecification.attributeName' failed to satisfy constraint: Member "
                    "must have length between 1 and 255",
                    attr);
  json_t *cur = json_object_get(ext, "TimeToLive");
  int cur_en = cur && json_is_true(json_object_get(cur, "Enabled"));
  const char *cur_attr = cur ? json_string_value(json_object_get(cur, "AttributeName")) : NULL;
  if (en && cur_en)
    return api_fail(c, "ValidationException", "TimeToLive is already enabled");
  if (!en && !cur_en)
    return api_fail(c, "ValidationException", "TimeToLive is already disabled");
  if (!en && cur_attr && strcmp(cur_attr, attr))
    return api_fail(c, "ValidationException",
                    "TimeToLive is enabled on a different attribute: %s", cur_attr);
  json_object_set_new(ext, "TimeToLive",
                      json_pack("{s:s,s:b}", "AttributeName", attr, "Enabled", en));
  return 0;
}

int op_update_ttl(api_call *c) {
  const char *name;
  json_t *spec;
  if (api_table_name(c, c->in, "TableName", &name) < 0) return -1;
  if (api_get_obj(c, c->in, "TimeToLiveSpecification", 1, &spec) <= 0) return -1;
  trb_table_info info;
  if (update_ext(c, name, apply_ttl, spec, &info)) return -1;
  trb_table_info_fini(&info);
  c->out = json_pack("{s:O}", "TimeToLiveSpecification", spec);
  return 0;
}

int op_describe_ttl(api_call *c) {
  const char *name;
  if (api_table_name(c, c->in, "TableName", &name) < 0) return -1;
  trb_table_info info;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_table_describe(c->api->eng, name, &info, &st);
  if (rc) return api_fail_st(c, rc, &st);
  json_t *cur = info.def.ext ? json_object_get(info.def.ext, "TimeToLive") : NULL;
  json_t *d = json_object();
  if (cur && json_is_true(json_object_get(cur, "Enabled"))) {
    json_object_set_new(d, "TimeToLiveStatus", json_string("ENABLED"));
    json_object_set(d, "AttributeName", json_object_get(cur, "AttributeName"));
  } else {
    json_object_set_new(d, "TimeToLiveStatus", json_string("DISABLED"));
  }
  trb_table_info_fini(&info);
  c->out = json_pack("{s:o}", "TimeToLiveDescription", d);
  return 0;
}

/* ---- tags ---- */

static int arn_table(api_call *c, const char **name) {
  /* ResourceArn: a table ARN (index and stream ARNs name their table too). */
  json_t *tmp = json_object();
  json_object_set(tmp, "ResourceArn", json_object_get(c->in, "ResourceArn"));
  int r = json_object_get(c->in, "ResourceArn") ? api_table_name(c, tmp, "ResourceArn", name)
                                                 : api_fail(c, "ValidationException",
                                                            "The parameter 'ResourceArn' is required but was not present in the request");
  json_decref(tmp);
  return r;
}

/* Characters (code points) of a UTF-8 string. */
static size_t chars(const char *s) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += (*p & 0xC0) != 0x80;
  return n;
}

/* A tag key (1..128 characters, not aws:-prefixed) or value (0..256), as
 * DynamoDB's model constrains them; where names the member for the
 * message ("tags.1.member.key"). -1 with the call's error set. */
static int check_tag_key(api_call *c, const char *key, const char *where) {
  size_t n = chars(key);
  if (n < 1 || n > 128)
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value '%s' at '%s' failed to satisfy "
                    "constraint: Member must have length %s",
                    key, where, n < 1 ? "greater than or equal to 1" : "less than or equal to 128");
  if (!strncmp(key, "aws:", 4))
    return api_fail(c, "ValidationException",
                    "Invalid tag key %s: tag keys beginning with aws: are reserved for use by AWS",
                    key);
  return 0;
}

static int check_tag_value(api_call *c, const char *val, const char *where) {
  if (chars(val) > 256)
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value '%.64s...' at '%s' failed to satisfy "
                    "constraint: Member must have length less than or equal to 256",
                    val, where);
  return 0;
}

/* A Tags list as CreateTable and TagResource take it: each {Key, Value}
 * checked. -1 with the call's error set. */
static int check_tags(api_call *c, json_t *in) {
  char where[64];
  for (size_t i = 0; i < json_array_size(in); i++) {
    json_t *e = json_array_get(in, i);
    const char *key = json_string_value(json_object_get(e, "Key"));
    const char *val = json_string_value(json_object_get(e, "Value"));
    if (!key) return api_fail(c, "ValidationException", "A tag key must be a string");
    if (!val) return api_fail(c, "ValidationException", "A tag value must be a string");
    snprintf(where, sizeof where, "tags.%zu.member.key", i + 1);
    if (check_tag_key(c, key, where)) return -1;
    snprintf(where, sizeof where, "tags.%zu.member.value", i + 1);
    if (check_tag_value(c, val, where)) return -1;
  }
  return 0;
}

/* Adds (add: in is a Tags list) or removes (in is a TagKeys list) tags in
 * the list tags, each entry checked first; a key added again takes its new
 * value; at most 50 after. -1 with the call's error set. */
static int merge_tags(api_call *c, json_t *tags, json_t *in, int add) {
  if (add && check_tags(c, in)) return -1;
  for (size_t i = 0; !add && i < json_array_size(in); i++) {
    const char *key = json_string_value(json_array_get(in, i));
    char where[64];
    snprintf(where, sizeof where, "tagKeys.%zu.member", i + 1);
    if (!key) return api_fail(c, "ValidationException", "A tag key must be a string");
    if (check_tag_key(c, key, where)) return -1;
  }
  for (size_t i = 0; i < json_array_size(in); i++) {
    json_t *e = json_array_get(in, i);
    const char *key = add ? json_string_value(json_object_get(e, "Key")) : json_string_value(e);
    for (size_t j = 0; j < json_array_size(tags); j++)
      if (!strcmp(key, json_string_value(json_object_get(json_array_get(tags, j), "Key")))) {
        json_array_remove(tags, j);
        break;
      }
    if (add)
      json_array_append_new(tags, json_pack("{s:s,s:s}", "Key", key, "Value",
                                            json_string_value(json_object_get(e, "Value"))));
  }
  if (json_array_size(tags) > 50)
    return api_fail(c, "ValidationException", "The number of tags on a resource exceeds 50");
  return 0;
}

static int apply_tags(api_call *c, json_t *ext, void *arg) {
  int add = arg != NULL;
  json_t *tags = json_object_get(ext, "Tags");
  if (!tags) {
    tags = json_array();
    json_object_set_new(ext, "Tags", tags);
  }
  json_t *in;
  if (api_get_arr(c, c->in, add ? "Tags" : "TagKeys", 1, &in) <= 0) return -1;
  if (json_array_size(in) < 1)
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value '[]' at '%s' failed to satisfy "
                    "constraint: Member must have length greater than or equal to 1",
                    add ? "tags" : "tagKeys");
  return merge_tags(c, tags, in, add);
}

int op_tag_resource(api_call *c) {
  const char *name;
  if (arn_table(c, &name) < 0) return -1;
  trb_table_info info;
  if (update_ext(c, name, apply_tags, (void *)1, &info)) return -1;
  trb_table_info_fini(&info);
  c->out = json_object();
  return 0;
}

int op_untag_resource(api_call *c) {
  const char *name;
  if (arn_table(c, &name) < 0) return -1;
  trb_table_info info;
  if (update_ext(c, name, apply_tags, NULL, &info)) return -1;
  trb_table_info_fini(&info);
  c->out = json_object();
  return 0;
}

/* Point-in-time recovery is not offered: on-demand backups are "ENABLED"
 * as DynamoDB reports for every table, PITR DISABLED (what Terraform and
 * the console read on every refresh). */
int op_describe_continuous_backups(api_call *c) {
  const char *name;
  if (api_table_name(c, c->in, "TableName", &name) < 0) return -1;
  trb_table_info info;
  trb_status st;
  trb_status_init(&st);
  if (trb_table_describe(c->api->eng, name, &info, &st))
    return api_fail(c, "TableNotFoundException", "Table not found: %s", name);
  trb_table_info_fini(&info);
  c->out = json_pack("{s:{s:s,s:{s:s}}}", "ContinuousBackupsDescription", "ContinuousBackupsStatus",
                     "ENABLED", "PointInTimeRecoveryDescription", "PointInTimeRecoveryStatus",
                     "DISABLED");
  return 0;
}

int op_list_tags(api_call *c) {
  const char *name;
  if (arn_table(c, &name) < 0) return -1;
  trb_table_info info;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_table_describe(c->api->eng, name, &info, &st);
  if (rc) return api_fail_st(c, rc, &st);
  json_t *tags = info.def.ext ? json_object_get(info.def.ext, "Tags") : NULL;
  c->out = json_pack("{s:o}", "Tags", tags ? json_deep_copy(tags) : json_array());
  trb_table_info_fini(&info);
  return 0;
}

int op_describe_endpoints(api_call *c) {
  char addr[128];
  snprintf(addr, sizeof addr, "dynamodb.%s.amazonaws.com", c->api->region);
  c->out = json_pack("{s:[{s:s,s:i}]}", "Endpoints", "Address", addr, "CachePeriodInMinutes",
                     1440);
  return 0;
}

int op_describe_limits(api_call *c) {
  c->out = json_pack("{s:i,s:i,s:i,s:i}", "AccountMaxReadCapacityUnits", 80000,
                     "AccountMaxWriteCapacityUnits", 80000, "TableMaxReadCapacityUnits", API_MAX_CAPACITY_UNITS,
                     "TableMaxWriteCapacityUnits", API_MAX_CAPACITY_UNITS);
  return 0;
}
