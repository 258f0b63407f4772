/*
 * dynamo_index.c -- secondary indexes on the wire: LocalSecondaryIndexes and
 * GlobalSecondaryIndexes of CreateTable, GlobalSecondaryIndexUpdates of
 * UpdateTable, their descriptions in a TableDescription, and the rules of
 * reading an index (IndexName of Query and Scan). Spec sections 3.1, 3.2,
 * 3.4, 4.5, 4.6. The engine keeps the definitions (engine/index.h); a GSI's
 * provisioned throughput lives in the table's ext under
 *   IndexThroughput  {"<index>": {"ReadCapacityUnits": n, "WriteCapacityUnits": n}}
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/dynamo_int.h"
#include "util/clock.h"

#define LSI_MAX 5
#define GSI_MAX 20
#define NONKEY_PER_INDEX_MAX 20

/* AttributeDefinitions as a map name -> type, with duplicate and type
 * checks. *out caller-owned (json object of strings). */
int api_attr_defs(api_call *c, json_t *ads, json_t **out) {
  *out = NULL;
  json_t *m = json_object();
  for (size_t i = 0; i < json_array_size(ads); i++) {
    json_t *e = json_array_get(ads, i);
    const char *an, *at;
    if (!json_is_object(e)) {
      json_decref(m);
      return api_fail(c, "SerializationException", "Expected map or null");
    }
    if (api_get_str(c, e, "AttributeName", 1, &an) <= 0 ||
        api_get_str(c, e, "AttributeType", 1, &at) <= 0) {
      json_decref(m);
      return -1;
    }
    static const char *const allowed[] = {"B", "N", "S", NULL};
    if (api_check_enum(c, "attributeType", at, allowed)) {
      json_decref(m);
      return -1;
    }
    if (json_object_get(m, an)) {
      json_decref(m);
      return api_fail(c, "ValidationException", "Cannot have two attributes with the same name");
    }
    json_object_set_new(m, an, json_string(at));
  }
  *out = m;
  return 0;
}

static trb_type type_of(const char *t) {
  return !strcmp(t, "S") ? TRB_T_S : !strcmp(t, "N") ? TRB_T_N : TRB_T_B;
}

/* Types the key schema's attributes from the definitions; marks them used.
 * -1 (set) when one is not defined. */
int api_type_keys(api_call *c, trb_keyschema *ks, json_t *adm, json_t *used) {
  const char *t = json_string_value(json_object_get(adm, ks->pk_name));
  const char *u = ks->has_sk ? json_string_value(json_object_get(adm, ks->sk_name)) : "S";
  if (!t || !u) {
    char names[1024] = "";
    const char *k;
    json_t *v;
    json_object_foreach(adm, k, v) {
      size_t l = strlen(names);
      snprintf(names + l, sizeof names - l, "%s%s", l ? ", " : "", k);
    }
    return api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: Some index key attributes are "
                    "not defined in AttributeDefinitions. Keys: [%s%s%s], AttributeDefinitions: "
                    "[%s]",
                    ks->pk_name, ks->has_sk ? ", " : "", ks->has_sk ? ks->sk_name : "", names);
  }
  ks->pk_type = type_of(t);
  json_object_set_new(used, ks->pk_name, json_true());
  if (ks->has_sk) {
    ks->sk_type = type_of(u);
    json_object_set_new(used, ks->sk_name, json_true());
  }
  return 0;
}

/* A KeySchema member (table or index) into ks (names only). */
int api_key_schema(api_call *c, json_t *ksj, const char *where, trb_keyschema *ks) {
  memset(ks, 0, sizeof *ks);
  size_t nks = json_array_size(ksj);
  if (nks < 1 || nks > 2)
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value '%zu' at '%s' failed to satisfy "
                    "constraint: Member must have length %s",
                    nks, where, nks ? "less than or equal to 2" : "greater than or equal to 1");
  for (size_t i = 0; i < nks; i++) {
    json_t *e = json_array_get(ksj, i);
    const char *an, *kt;
    if (!json_is_object(e)) return api_fail(c, "SerializationException", "Expected map or null");
    if (api_get_str(c, e, "AttributeName", 1, &an) <= 0) return -1;
    if (api_get_str(c, e, "KeyType", 1, &kt) <= 0) return -1;
    static const char *const kts[] = {"HASH", "RANGE", NULL};
    if (api_check_enum(c, "keyType", kt, kts)) return -1;
    if (strlen(an) < 1 || strlen(an) > TRB_KEY_NAME_MAX)
      return api_fail(c, "ValidationException",
                      "1 validation error detected: Value '%s' at '%s.%zu.member.attributeName' "
                      "failed to satisfy constraint: Member must have length %s",
                      an, where, i + 1,
                      *an ? "less than or equal to 255" : "greater than or equal to 1");
    if (i == 0 && strcmp(kt, "HASH"))
      return api_fail(c, "ValidationException",
                      "Invalid KeySchema: The first KeySchemaElement is not a HASH key type");
    if (i == 1 && strcmp(kt, "RANGE"))
      return api_fail(c, "ValidationException",
                      "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type");
    if (i == 0) {
      snprintf(ks->pk_name, sizeof ks->pk_name, "%s", an);
    } else {
      snprintf(ks->sk_name, sizeof ks->sk_name, "%s", an);
      ks->has_sk = 1;
    }
  }
  if (ks->has_sk && !strcmp(ks->pk_name, ks->sk_name))
    return api_fail(c, "ValidationException",
                    "Both the Hash Key and the Range Key element in the KeySchema have the same "
                    "name");
  return 0;
}

int api_check_throughput(api_call *c, json_t *pt, const char *where) {
  int64_t r = 0, w = 0;
  if (api_get_int(c, pt, "ReadCapacityUnits", &r) < 0) return -1;
  if (api_get_int(c, pt, "WriteCapacityUnits", &w) < 0) return -1;
  if (!json_object_get(pt, "ReadCapacityUnits") || !json_object_get(pt, "WriteCapacityUnits"))
    return api_fail(c, "ValidationException",
                    "1 validation error detected: ProvisionedThroughput must have "
                    "ReadCapacityUnits and WriteCapacityUnits");
  if (r < 1 || w < 1)
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value '%" PRId64 "' at "
                    "'%s.%s' failed to satisfy constraint: Member must have "
                    "value greater than or equal to 1",
                    r < 1 ? r : w, where, r < 1 ? "readCapacityUnits" : "writeCapacityUnits");
  if (r > API_MAX_CAPACITY_UNITS || w > API_MAX_CAPACITY_UNITS) /* DescribeLimits' table maximum */
    return api_fail(c, "LimitExceededException",
                    "Subscriber limit exceeded: Provisioned throughput for a single table or "
                    "global secondary index cannot exceed %d read capacity units and %d write "
                    "capacity units (requested: %" PRId64 " and %" PRId64 ")",
                    API_MAX_CAPACITY_UNITS, API_MAX_CAPACITY_UNITS, r, w);
  return 0;
}

/* One index definition. d->include points into e (trb_indexset_add copies
 * the names). */
static int parse_index(api_call *c, json_t *e, const char *list, size_t pos, int local,
                       const trb_keyschema *table_ks, json_t *adm, json_t *used, int provisioned,
                       json_t *ixtp, trb_indexdef *d, const char **incl) {
  memset(d, 0, sizeof *d);
  d->local = local;
  char where[128];
  if (!json_is_object(e)) return api_fail(c, "SerializationException", "Expected map or null");
  const char *name;
  if (api_get_str(c, e, "IndexName", 1, &name) <= 0) return -1;
  size_t nl = strlen(name);
  if (nl < 3 || nl > 255 || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789_.-") != nl)
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value '%s' at '%s.%zu.member.indexName' failed "
                    "to satisfy constraint: Member must satisfy regular expression pattern: "
                    "[a-zA-Z0-9_.-]+ and have length between 3 and 255",
                    name, list, pos + 1);
  snprintf(d->name, sizeof d->name, "%s", name);
  json_t *ksj, *proj;
  if (api_get_arr(c, e, "KeySchema", 1, &ksj) <= 0) return -1;
  snprintf(where, sizeof where, "%s.%zu.member.keySchema", list, pos + 1);
  if (api_key_schema(c, ksj, where, &d->ks)) return -1;
  if (api_type_keys(c, &d->ks, adm, used)) return -1;
  if (local) {
    if (strcmp(d->ks.pk_name, table_ks->pk_name))
      return api_fail(c, "ValidationException",
                      "One or more parameter values were invalid: Index KeySchema does not have "
                      "the same leading hash key as table KeySchema for index: %s. index hash "
                      "key: %s, table hash key: %s",
                      name, d->ks.pk_name, table_ks->pk_name);
    if (!d->ks.has_sk)
      return api_fail(c, "ValidationException",
                      "One or more parameter values were invalid: Index KeySchema does not have "
                      "a range key for index: %s",
                      name);
  }
  if (!(proj = json_object_get(e, "Projection")) || json_is_null(proj))
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value null at '%s.%zu.member.projection' "
                    "failed to satisfy constraint: Member must not be null",
                    list, pos + 1);
  if (!json_is_object(proj)) return api_fail(c, "SerializationException", "Expected map or null");
  const char *pt = NULL;
  if (api_get_str(c, proj, "ProjectionType", 0, &pt) < 0) return -1;
  static const char *const pts[] = {"ALL", "KEYS_ONLY", "INCLUDE", NULL};
  if (!pt)
    return api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: Unknown ProjectionType: null");
  if (api_check_enum(c, "projectionType", pt, pts)) return -1;
  d->proj = !strcmp(pt, "ALL") ? TRB_PROJ_ALL : !strcmp(pt, "KEYS_ONLY") ? TRB_PROJ_KEYS_ONLY
                                                                          : TRB_PROJ_INCLUDE;
  json_t *nka = NULL;
  if (api_get_arr(c, proj, "NonKeyAttributes", 0, &nka) < 0) return -1;
  if (d->proj == TRB_PROJ_INCLUDE && !nka)
    return api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: ProjectionType is INCLUDE, but "
                    "NonKeyAttributes is not specified");
  if (d->proj != TRB_PROJ_INCLUDE && nka)
    return api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: ProjectionType is %s, but "
                    "NonKeyAttributes is specified",
                    pt);
  if (nka) {
    size_t n = json_array_size(nka);
    if (n < 1 || n > NONKEY_PER_INDEX_MAX)
      return api_fail(c, "ValidationException",
                      "1 validation error detected: Value at '%s.%zu.member.projection."
                      "nonKeyAttributes' failed to satisfy constraint: Member must have length "
                      "between 1 and 20",
                      list, pos + 1);
    for (size_t i = 0; i < n; i++) {
      const char *a = json_string_value(json_array_get(nka, i));
      if (!a) return api_fail(c, "SerializationException", "Expected string");
      if (strlen(a) < 1 || strlen(a) > 255)
        return api_fail(c, "ValidationException",
                        "One or more parameter values were invalid: NonKeyAttributes names must "
                        "be 1 to 255 bytes");
      for (size_t j = 0; j < i; j++)
        if (!strcmp(a, incl[j]))
          return api_fail(c, "ValidationException",
                          "One or more parameter values were invalid: Duplicate NonKeyAttribute "
                          "%s for index %s",
                          a, name);
      incl[i] = a;
    }
    d->include = (char **)incl;
    d->ninclude = n;
  }
  json_t *tp = NULL;
  if (api_get_obj(c, e, "ProvisionedThroughput", 0, &tp) < 0) return -1;
  if (local && tp)
    return api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: ProvisionedThroughput is not "
                    "allowed for local secondary index: %s",
                    name);
  if (!local) {
    if (provisioned && !tp)
      return api_fail(c, "ValidationException",
                      "One or more parameter values were invalid: ProvisionedThroughput is not "
                      "specified for index: %s",
                      name);
    if (!provisioned && tp)
      return api_fail(c, "ValidationException",
                      "One or more parameter values were invalid: ProvisionedThroughput should "
                      "not be specified for index: %s when BillingMode is PAY_PER_REQUEST",
                      name);
    if (tp) {
      snprintf(where, sizeof where, "%s.%zu.member.provisionedThroughput", list, pos + 1);
      if (api_check_throughput(c, tp, where)) return -1;
      json_object_set_new(ixtp, name,
                          json_pack("{s:O,s:O}", "ReadCapacityUnits",
                                    json_object_get(tp, "ReadCapacityUnits"),
                                    "WriteCapacityUnits",
                                    json_object_get(tp, "WriteCapacityUnits")));
    }
  }
  return 0;
}

static size_t nonkey_total(const trb_indexset *s) {
  size_t n = 0;
  for (size_t i = 0; s && i < s->n; i++) n += s->d[i].ninclude;
  return n;
}

int api_create_indexes(api_call *c, json_t *in, const trb_keyschema *ks, json_t *adm,
                       json_t *used, int provisioned, json_t *ext, trb_indexset **out) {
  *out = NULL;
  json_t *lsis = NULL, *gsis = NULL;
  if (api_get_arr(c, in, "LocalSecondaryIndexes", 0, &lsis) < 0) return -1;
  if (api_get_arr(c, in, "GlobalSecondaryIndexes", 0, &gsis) < 0) return -1;
  if (!lsis && !gsis) return 0;
  if (lsis && !json_array_size(lsis))
    return api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: List of LocalSecondaryIndexes is "
                    "empty");
  if (gsis && !json_array_size(gsis))
    return api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: List of GlobalSecondaryIndexes "
                    "is empty");
  if (lsis && !ks->has_sk)
    return api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: Table KeySchema does not have a "
                    "range key, which is required when specifying a LocalSecondaryIndex");
  if (json_array_size(lsis) > LSI_MAX)
    return api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: Number of LocalSecondaryIndexes "
                    "exceeds per-table limit of %d",
                    LSI_MAX);
  if (json_array_size(gsis) > GSI_MAX)
    return api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: GlobalSecondaryIndex count "
                    "exceeds the per-table limit of %d",
                    GSI_MAX);
  trb_indexset *s = trb_indexset_new();
  json_t *ixtp = json_object();
  if (!s || !ixtp) goto oom;
  for (int local = 1; local >= 0; local--) {
    json_t *list = local ? lsis : gsis;
    for (size_t i = 0; i < json_array_size(list); i++) {
      trb_indexdef d;
      const char *incl[NONKEY_PER_INDEX_MAX];
      if (parse_index(c, json_array_get(list, i),
                      local ? "localSecondaryIndexes" : "globalSecondaryIndexes", i, local, ks,
                      adm, used, provisioned, ixtp, &d, incl))
        goto fail;
      if (trb_indexset_find(s, d.name) >= 0) {
        api_fail(c, "ValidationException",
                 "One or more parameter values were invalid: Duplicate index name: %s", d.name);
        goto fail;
      }
      if (trb_indexset_add(s, &d)) goto oom;
    }
  }
  if (nonkey_total(s) > TRB_INDEX_INCLUDE_MAX) {
    api_fail(c, "ValidationException",
             "One or more parameter values were invalid: Number of projected attributes in all "
             "indexes exceeds limit of %d",
             TRB_INDEX_INCLUDE_MAX);
    goto fail;
  }
  if (json_object_size(ixtp)) json_object_set(ext, "IndexThroughput", ixtp);
  json_decref(ixtp);
  *out = s;
  return 0;
oom:
  api_fail(c, "InternalServerError", "out of memory");
fail:
  json_decref(ixtp);
  trb_indexset_unref(s);
  return -1;
}

/* ---- descriptions ---- */

static json_t *ks_json(const trb_keyschema *ks) {
  json_t *a = json_array();
  json_array_append_new(a, json_pack("{s:s,s:s}", "AttributeName", ks->pk_name, "KeyType", "HASH"));
  if (ks->has_sk)
    json_array_append_new(a,
                          json_pack("{s:s,s:s}", "AttributeName", ks->sk_name, "KeyType", "RANGE"));
  return a;
}

static const char *proj_name(trb_proj p) {
  return p == TRB_PROJ_ALL ? "ALL" : p == TRB_PROJ_KEYS_ONLY ? "KEYS_ONLY" : "INCLUDE";
}

void api_index_descriptions(trb_api *a, const trb_table_info *info, json_t *o) {
  const trb_indexset *s = info->def.ix;
  if (!s || !s->n) return;
  char arn[512];
  api_table_arn(a, info->def.name, arn, sizeof arn);
  json_t *ext = info->def.ext;
  const char *bm = ext ? json_string_value(json_object_get(ext, "BillingMode")) : NULL;
  int provisioned = bm && !strcmp(bm, "PROVISIONED");
  json_t *ixtp = ext ? json_object_get(ext, "IndexThroughput") : NULL;
  json_t *lsi = json_array(), *gsi = json_array();
  for (size_t i = 0; i < s->n; i++) {
    const trb_indexdef *d = &s->d[i];
    char iarn[800];
    snprintf(iarn, sizeof iarn, "%s/index/%s", arn, d->name);
    json_t *proj = json_pack("{s:s}", "ProjectionType", proj_name(d->proj));
    if (d->ninclude) {
      json_t *nk = json_array();
      for (size_t j = 0; j < d->ninclude; j++) json_array_append_new(nk, json_string(d->include[j]));
      json_object_set_new(proj, "NonKeyAttributes", nk);
    }
    json_t *e = json_pack("{s:s,s:o,s:o,s:I,s:I,s:s}", "IndexName", d->name, "KeySchema",
                          ks_json(&d->ks), "Projection", proj, "IndexSizeBytes",
                          (json_int_t)info->ix_bytes[i], "ItemCount",
                          (json_int_t)info->ix_count[i], "IndexArn", iarn);
    if (!d->local) {
      json_t *tp = ixtp ? json_object_get(ixtp, d->name) : NULL;
      json_int_t r = 0, w = 0;
      if (tp && provisioned) {
        r = json_integer_value(json_object_get(tp, "ReadCapacityUnits"));
        w = json_integer_value(json_object_get(tp, "WriteCapacityUnits"));
      }
      json_object_set_new(e, "IndexStatus", json_string("ACTIVE"));
      json_object_set_new(e, "ProvisionedThroughput",
                          json_pack("{s:i,s:I,s:I}", "NumberOfDecreasesToday", 0,
                                    "ReadCapacityUnits", r, "WriteCapacityUnits", w));
      json_object_set_new(e, "WarmThroughput",
                          json_pack("{s:i,s:i,s:s}", "ReadUnitsPerSecond", 12000,
                                    "WriteUnitsPerSecond", 4000, "Status", "ACTIVE"));
    }
    json_array_append_new(d->local ? lsi : gsi, e);
  }
  if (json_array_size(lsi)) json_object_set_new(o, "LocalSecondaryIndexes", lsi);
  else json_decref(lsi);
  if (json_array_size(gsi)) json_object_set_new(o, "GlobalSecondaryIndexes", gsi);
  else json_decref(gsi);
}

/* ---- UpdateTable: GlobalSecondaryIndexUpdates ---- */

int api_gsi_updates(api_call *c, const trb_table_info *cur, json_t *ext, json_t *updates,
                    trb_indexset **out) {
  *out = NULL;
  size_t n = json_array_size(updates);
  if (!json_is_array(updates)) return api_fail(c, "SerializationException", "Expected list or null");
  if (n < 1)
    return api_fail(c, "ValidationException",
                    "One or more parameter values were invalid: List of "
                    "GlobalSecondaryIndexUpdates is empty");
  const char *bm = json_string_value(json_object_get(ext, "BillingMode"));
  int provisioned = bm && !strcmp(bm, "PROVISIONED");
  trb_indexset *s = trb_indexset_dup(cur->def.ix);
  json_t *ixtp = json_object_get(ext, "IndexThroughput");
  ixtp = ixtp ? json_deep_copy(ixtp) : json_object();
  json_t *adm = NULL, *used = json_object();
  if (!s || !ixtp || !used) {
    api_fail(c, "InternalServerError", "out of memory");
    goto fail;
  }
  int creates = 0, deletes = 0;
  for (size_t i = 0; i < n; i++) {
    json_t *u = json_array_get(updates, i), *body;
    if (!json_is_object(u)) {
      api_fail(c, "SerializationException", "Expected map or null");
      goto fail;
    }
    int kinds = (json_object_get(u, "Create") != NULL) + (json_object_get(u, "Update") != NULL) +
                (json_object_get(u, "Delete") != NULL);
    if (kinds != 1) {
      api_fail(c, "ValidationException",
               "One or more parameter values were invalid: One of GlobalSecondaryIndexUpdate.Update, "
               "GlobalSecondaryIndexUpdate.Create, GlobalSecondaryIndexUpdate.Delete must not be "
               "null");
      goto fail;
    }
    if ((body = json_object_get(u, "Create"))) {
      if (!adm) {
        /* The table's definitions plus the request's (new key attributes). */
        json_t *ads = json_object_get(c->in, "AttributeDefinitions");
        json_t *curads = json_object_get(ext, "AttributeDefinitions");
        json_t *all = json_array();
        json_array_extend(all, curads ? curads : json_array());
        if (ads) {
          if (!json_is_array(ads)) {
            json_decref(all);
            api_fail(c, "SerializationException", "Expected list or null");
            goto fail;
          }
          for (size_t j = 0; j < json_array_size(ads); j++) {
            json_t *e = json_array_get(ads, j);
            const char *an = json_string_value(json_object_get(e, "AttributeName"));
            int dup = 0;
            for (size_t k = 0; an && k < json_array_size(all); k++) {
              json_t *x = json_array_get(all, k);
              if (!strcmp(an, json_string_value(json_object_get(x, "AttributeName")))) {
                if (!json_equal(json_object_get(x, "AttributeType"),
                                json_object_get(e, "AttributeType"))) {
                  json_decref(all);
                  api_fail(c, "ValidationException",
                           "One or more parameter values were invalid: Attribute %s is already "
                           "defined with a different type",
                           an);
                  goto fail;
                }
                dup = 1;
              }
            }
            if (!dup) json_array_append(all, e);
          }
        }
        int r = api_attr_defs(c, all, &adm);
        if (!r) json_object_set(ext, "AttributeDefinitions", all);
        json_decref(all);
        if (r) goto fail;
      }
      if (++creates > 1) {
        api_fail(c, "LimitExceededException",
                 "Subscriber limit exceeded: Only 1 online index can be created or deleted "
                 "simultaneously per table");
        goto fail;
      }
      trb_indexdef d;
      const char *incl[NONKEY_PER_INDEX_MAX];
      if (parse_index(c, body, "globalSecondaryIndexUpdates", i, 0, &cur->def.ks, adm, used,
                      provisioned, ixtp, &d, incl))
        goto fail;
      if (trb_indexset_find(s, d.name) >= 0) {
        api_fail(c, "ValidationException",
                 "One or more parameter values were invalid: Index %s already exists", d.name);
        goto fail;
      }
      size_t ngsi = 0;
      for (size_t j = 0; j < s->n; j++) ngsi += !s->d[j].local;
      if (ngsi >= GSI_MAX) {
        api_fail(c, "LimitExceededException",
                 "One or more parameter values were invalid: GlobalSecondaryIndex count exceeds "
                 "the per-table limit of %d",
                 GSI_MAX);
        goto fail;
      }
      if (trb_indexset_add(s, &d)) {
        api_fail(c, "InternalServerError", "out of memory");
        goto fail;
      }
      if (nonkey_total(s) > TRB_INDEX_INCLUDE_MAX) {
        api_fail(c, "ValidationException",
                 "One or more parameter values were invalid: Number of projected attributes in "
                 "all indexes exceeds limit of %d",
                 TRB_INDEX_INCLUDE_MAX);
        goto fail;
      }
    } else {
      int del = json_object_get(u, "Delete") != NULL;
      body = json_object_get(u, del ? "Delete" : "Update");
      const char *name;
      if (!json_is_object(body)) {
        api_fail(c, "SerializationException", "Expected map or null");
        goto fail;
      }
      if (api_get_str(c, body, "IndexName", 1, &name) <= 0) goto fail;
      int at = trb_indexset_find(s, name);
      if (at < 0 || s->d[at].local) {
        api_fail(c, "ResourceNotFoundException", "Requested resource not found: Index: %s not found",
                 name);
        goto fail;
      }
      if (del) {
        if (++deletes + creates > 1) {
          api_fail(c, "LimitExceededException",
                   "Subscriber limit exceeded: Only 1 online index can be created or deleted "
                   "simultaneously per table");
          goto fail;
        }
        trb_indexset_remove(s, (size_t)at);
        json_object_del(ixtp, name);
      } else {
        json_t *tp;
        if (api_get_obj(c, body, "ProvisionedThroughput", 1, &tp) <= 0) goto fail;
        if (!provisioned) {
          api_fail(c, "ValidationException",
                   "One or more parameter values were invalid: ProvisionedThroughput should not "
                   "be specified for index: %s when BillingMode is PAY_PER_REQUEST",
                   name);
          goto fail;
        }
        if (api_check_throughput(c, tp, "globalSecondaryIndexUpdates.member.update.provisionedThroughput"))
          goto fail;
        json_object_set_new(ixtp, name,
                            json_pack("{s:O,s:O}", "ReadCapacityUnits",
                                      json_object_get(tp, "ReadCapacityUnits"),
                                      "WriteCapacityUnits",
                                      json_object_get(tp, "WriteCapacityUnits")));
      }
    }
  }
  if (json_object_size(ixtp)) json_object_set(ext, "IndexThroughput", ixtp);
  else json_object_del(ext, "IndexThroughput");
  json_decref(ixtp);
  json_decref(adm);
  json_decref(used);
  *out = s;
  return 0;
fail:
  json_decref(ixtp);
  json_decref(adm);
  json_decref(used);
  trb_indexset_unref(s);
  return -1;
}

/* ---- reads ---- */

int api_index_for_read(api_call *c, const trb_table_info *info, const char *name,
                       const trb_indexdef **out) {
  int i = trb_indexset_find(info->def.ix, name);
  if (i < 0)
    return api_fail(c, "ValidationException", "The table does not have the specified index: %s",
                    name);
  *out = &info->def.ix->d[i];
  return 0;
}

int api_gsi_rate(const trb_table_info *info, const trb_indexdef *d, int write, double *rate) {
  *rate = 0;
  json_t *ext = info->def.ext;
  const char *bm = ext ? json_string_value(json_object_get(ext, "BillingMode")) : NULL;
  if (!bm || strcmp(bm, "PROVISIONED") || d->local) return 0;
  json_t *tp = json_object_get(json_object_get(ext, "IndexThroughput"), d->name);
  if (tp)
    *rate = (double)json_integer_value(
        json_object_get(tp, write ? "WriteCapacityUnits" : "ReadCapacityUnits"));
  return 0;
}

/* ---- writes: what indexes cost, and their write buckets ---- */

static void add_units(json_t *o, const char *member, double u) {
  json_t *v = json_object_get(o, member);
  json_object_set_new(o, member, json_real((v ? json_number_value(v) : 0) + u));
}

json_t *api_write_capacity(const char *table_as_sent, double table_units, const trb_write *w,
                           const trb_indexset *ix, int mode, double mult) {
  if (!mode) return NULL;
  double total = table_units * mult;
  json_t *o = api_capacity(table_as_sent, total, mode, 0);
  for (size_t i = 0; ix && i < ix->n; i++) {
    if (!w->ix_kb[i]) continue;
    double u = w->ix_kb[i] * mult;
    total += u;
    if (mode == 2) {
      const char *m = ix->d[i].local ? "LocalSecondaryIndexes" : "GlobalSecondaryIndexes";
      json_t *map = json_object_get(o, m);
      if (!map) json_object_set_new(o, m, map = json_object());
      json_t *e = json_object_get(map, ix->d[i].name);
      if (!e) json_object_set_new(map, ix->d[i].name, e = json_object());
      add_units(e, "CapacityUnits", u);
      add_units(e, "WriteCapacityUnits", u);
    }
  }
  json_object_set_new(o, "CapacityUnits", json_real(total));
  json_object_set_new(o, "WriteCapacityUnits", json_real(total));
  return o;
}

void api_capacity_merge(json_t *a, json_t *b) {
  if (!a || !b) {
    json_decref(b);
    return;
  }
  add_units(a, "CapacityUnits", json_number_value(json_object_get(b, "CapacityUnits")));
  static const char *const um[] = {"ReadCapacityUnits", "WriteCapacityUnits", NULL};
  for (int i = 0; um[i]; i++)
    if (json_object_get(b, um[i])) add_units(a, um[i], json_number_value(json_object_get(b, um[i])));
  json_t *bt = json_object_get(b, "Table"), *at = json_object_get(a, "Table");
  if (bt && at) {
    add_units(at, "CapacityUnits", json_number_value(json_object_get(bt, "CapacityUnits")));
    for (int i = 0; um[i]; i++)
      if (json_object_get(bt, um[i]))
        add_units(at, um[i], json_number_value(json_object_get(bt, um[i])));
  }
  static const char *const maps[] = {"LocalSecondaryIndexes", "GlobalSecondaryIndexes", NULL};
  for (int m = 0; maps[m]; m++) {
    json_t *bm = json_object_get(b, maps[m]);
    if (!bm) continue;
    json_t *am = json_object_get(a, maps[m]);
    if (!am) json_object_set_new(a, maps[m], am = json_object());
    const char *k;
    json_t *v;
    json_object_foreach(bm, k, v) {
      json_t *e = json_object_get(am, k);
      if (!e) json_object_set_new(am, k, e = json_object());
      add_units(e, "CapacityUnits", json_number_value(json_object_get(v, "CapacityUnits")));
      add_units(e, "WriteCapacityUnits", json_number_value(json_object_get(v, "WriteCapacityUnits")));
    }
  }
  json_decref(b);
}

int api_gsi_writes_throttled(api_call *c, const trb_table_info *info) {
  const trb_indexset *s = info->def.ix;
  for (size_t i = 0; s && i < s->n; i++) {
    double rate;
    api_gsi_rate(info, &s->d[i], 1, &rate);
    if (rate <= 0) continue;
    if (!trb_throttle_admit(c->api->thr, s->d[i].cf_id, rate, 1, trb_now_us())) return (int)i;
  }
  return -1;
}

int api_admit_gsi_writes(api_call *c, const trb_table_info *info) {
  int g = api_gsi_writes_throttled(c, info);
  return g < 0 ? 0 : api_fail_gsi_throttled(c, info, g);
}

int api_fail_gsi_throttled(api_call *c, const trb_table_info *info, int gsi) {
  char arn[800];
  api_table_arn(c->api, info->def.name, arn, sizeof arn);
  size_t l = strlen(arn);
  snprintf(arn + l, sizeof arn - l, "/index/%s", info->def.ix->d[gsi].name);
  json_decref(c->err_extra);
  c->err_extra = json_pack("{s:[{s:s,s:s}]}", "ThrottlingReasons", "reason",
                           "IndexWriteProvisionedThroughputExceeded", "resource", arn);
  return api_fail(c, "ProvisionedThroughputExceededException",
                  "The level of configured provisioned throughput for one or more global "
                  "secondary indexes of the table was exceeded. Consider increasing your "
                  "provisioning level for the under-provisioned global secondary indexes with "
                  "the UpdateTable API");
}

void api_charge_gsi_writes(api_call *c, const trb_table_info *info, const trb_write *w,
                           double mult) {
  const trb_indexset *s = info->def.ix;
  for (size_t i = 0; s && i < s->n; i++) {
    double rate;
    api_gsi_rate(info, &s->d[i], 1, &rate);
    if (rate > 0 && w->ix_kb[i])
      trb_throttle_charge(c->api->thr, s->d[i].cf_id, rate, 1, w->ix_kb[i] * mult, trb_now_us());
  }
}
