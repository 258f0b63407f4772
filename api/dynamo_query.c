/*
 * dynamo_query.c -- Query and Scan (spec 4.5, 4.6): key conditions, filters
 * applied after the page is read (the 1 MB rule counts what was read),
 * projections, Select, paging, parallel scan segments.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "api/dynamo_item.h"
#include "api/dynamo_legacy.h"

typedef struct rq {
  const char *table;
  char table_buf[256];
  const char *index;         /* IndexName, or NULL */
  trb_table_info info;       /* the table, described once */
  int have_info;
  const trb_indexdef *ix;    /* borrowed from info */
  int fetch_table;           /* LSI read needing attributes beyond its projection */
  trb_av *vals, *esk;
  trb_expr_env *env;
  trb_expr *keycond, *filter, *proj;
  const char *select;
  int64_t limit;
  int consistent, capacity, count_only;
} rq;

static void rq_fini(rq *r) {
  if (r->have_info) trb_table_info_fini(&r->info);
  trb_expr_destroy(r->keycond);
  trb_expr_destroy(r->filter);
  trb_expr_destroy(r->proj);
  trb_expr_env_destroy(r->env);
  trb_av_destroy(r->vals);
  trb_av_destroy(r->esk);
}

static int parse_common(api_call *c, rq *r, int is_query) {
  memset(r, 0, sizeof *r);
  if (api_legacy(c, c->in,
                 API_LG_ATTRIBUTES_TO_GET |
                     (is_query ? API_LG_KEY_CONDITIONS | API_LG_QUERY_FILTER : API_LG_SCAN_FILTER)) < 0)
    return -1;
  if (api_table_name(c, c->in, "TableName", &r->table) < 0) return -1;
  snprintf(r->table_buf, sizeof r->table_buf, "%s", r->table);
  r->table = r->table_buf;
  if (api_get_str(c, c->in, "IndexName", 0, &r->index) < 0) return -1;
  if (api_get_bool(c, c->in, "ConsistentRead", &r->consistent) < 0) return -1;
  {
    trb_status st;
    trb_status_init(&st);
    trb_err rc = trb_table_describe(c->api->eng, r->table, &r->info, &st);
    if (rc) return api_fail_st(c, rc, &st);
    r->have_info = 1;
  }
  if (r->index) {
    if (api_index_for_read(c, &r->info, r->index, &r->ix)) return -1;
    if (!r->ix->local && r->consistent)
      return api_fail(c, "ValidationException",
                      "Consistent reads are not supported on global secondary indexes");
  }
  if (api_want_capacity(c, c->in, &r->capacity) < 0) return -1;
  int hl = api_get_int(c, c->in, "Limit", &r->limit);
  if (hl < 0) return -1;
  if (hl && r->limit < 1)
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value '%" PRId64 "' at 'limit' failed to "
                    "satisfy constraint: Member must have value greater than or equal to 1",
                    r->limit);
  if (api_get_item(c, c->in, "ExclusiveStartKey", 0, &r->esk) < 0) return -1;
  if (api_expr_env(c, c->in, &r->env, &r->vals) < 0) return -1;
  if (is_query) {
    if (!json_object_get(c->in, "KeyConditionExpression"))
      return api_fail(c, "ValidationException",
                      "Either the KeyConditions or KeyConditionExpression parameter must be "
                      "specified in the request.");
    if (api_expr(c, c->in, "KeyConditionExpression", TRB_EXPR_KEYCOND, r->env, &r->keycond) < 0)
      return -1;
  }
  if (api_expr(c, c->in, "FilterExpression", TRB_EXPR_FILTER, r->env, &r->filter) < 0) return -1;
  if (api_expr(c, c->in, "ProjectionExpression", TRB_EXPR_PROJECTION, r->env, &r->proj) < 0)
    return -1;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_expr_env_check_unused(r->env, &st);
  if (rc) return api_fail_st(c, rc, &st);
  r->select = NULL;
  if (api_get_str(c, c->in, "Select", 0, &r->select) < 0) return -1;
  if (r->select) {
    static const char *const allowed[] = {"ALL_ATTRIBUTES", "ALL_PROJECTED_ATTRIBUTES",
                                          "SPECIFIC_ATTRIBUTES", "COUNT", NULL};
    if (api_check_enum(c, "select", r->select, allowed)) return -1;
    if (!strcmp(r->select, "ALL_PROJECTED_ATTRIBUTES") && !r->ix)
      return api_fail(c, "ValidationException",
                      "One or more parameter values were invalid: Select type "
                      "ALL_PROJECTED_ATTRIBUTES is not supported for a table: it needs IndexName");
    if (!strcmp(r->select, "ALL_ATTRIBUTES") && r->ix && r->ix->proj != TRB_PROJ_ALL) {
      if (!r->ix->local)
        return api_fail(c, "ValidationException",
                        "One or more parameter values were invalid: Select type ALL_ATTRIBUTES "
                        "is not supported for global secondary index %s because its projection "
                        "type is not ALL",
                        r->ix->name);
      r->fetch_table = 1;
    }
    if (r->proj && strcmp(r->select, "SPECIFIC_ATTRIBUTES"))
      return api_fail(c, "ValidationException",
                      "One or more parameter values were invalid: Cannot specify the "
                      "ProjectionExpression when choosing to get %s",
                      r->select);
    if (!r->proj && !strcmp(r->select, "SPECIFIC_ATTRIBUTES"))
      return api_fail(c, "ValidationException",
                      "One or more parameter values were invalid: ProjectionExpression is "
                      "required when Select is SPECIFIC_ATTRIBUTES");
    r->count_only = !strcmp(r->select, "COUNT");
  }
  /* A projection asking for attributes an index does not hold: an LSI
   * fetches them from the table, a GSI cannot. */
  if (r->proj && r->ix && r->ix->proj != TRB_PROJ_ALL) {
    const char *const *tops;
    size_t n = trb_expr_projection_tops(r->proj, &tops);
    const trb_keyschema *tks = &r->info.def.ks, *iks = &r->ix->ks;
    for (size_t i = 0; i < n && !r->fetch_table; i++) {
      const char *a = tops[i];
      int held = !strcmp(a, tks->pk_name) || (tks->has_sk && !strcmp(a, tks->sk_name)) ||
                 !strcmp(a, iks->pk_name) || (iks->has_sk && !strcmp(a, iks->sk_name));
      for (size_t j = 0; !held && j < r->ix->ninclude; j++) held = !strcmp(a, r->ix->include[j]);
      if (held) continue;
      if (!r->ix->local)
        return api_fail(c, "ValidationException",
                        "One or more parameter values were invalid: Global secondary index %s "
                        "does not project %s",
                        r->ix->name, a);
      r->fetch_table = 1;
    }
  }
  return 0;
}

/* Filters, projects and writes the page into c->out. */
static int emit_page(api_call *c, rq *r, trb_page *p, const api_thr *thr) {
  json_t *items = json_array();
  size_t count = 0, bytes = 0;
  trb_status st;
  trb_status_init(&st);
  for (size_t i = 0; i < p->n; i++) {
    bytes += trb_item_size(p->items[i]);
    if (r->filter) {
      int pass = 0;
      trb_err rc = trb_expr_eval(r->filter, p->items[i], &pass, &st);
      if (rc) {
        json_decref(items);
        return api_fail_st(c, rc, &st);
      }
      if (!pass) continue;
    }
    count++;
    if (r->count_only) continue;
    if (r->proj) {
      trb_av *pi = NULL;
      trb_err rc = trb_expr_project(r->proj, p->items[i], &pi, &st);
      if (rc) {
        json_decref(items);
        return api_fail_st(c, rc, &st);
      }
      json_array_append_new(items, trb_item_to_json(pi));
      trb_av_destroy(pi);
    } else {
      json_array_append_new(items, trb_item_to_json(p->items[i]));
    }
  }
  c->out = json_object();
  if (!r->count_only) json_object_set_new(c->out, "Items", items);
  else json_decref(items);
  json_object_set_new(c->out, "Count", json_integer((json_int_t)count));
  json_object_set_new(c->out, "ScannedCount", json_integer((json_int_t)p->scanned));
  if (p->last_key) json_object_set_new(c->out, "LastEvaluatedKey", trb_item_to_json(p->last_key));
  double u = (double)((bytes + 4095) / 4096);
  if (u < 1) u = 1;
  if (!r->consistent) u /= 2;
  api_charge(c, thr, u);
  if (r->capacity) {
    json_t *cc = api_capacity(json_string_value(json_object_get(c->in, "TableName")), u,
                              r->capacity, 1);
    if (r->ix && r->capacity == 2) {
      /* A read of an index is the index's units, not the table's: the
       * total is the sum of the parts (an LSI's units are still taken from
       * the table's provisioned throughput, above). */
      json_t *t = json_object_get(cc, "Table");
      json_object_set_new(t, "CapacityUnits", json_real(0));
      json_object_set_new(t, "ReadCapacityUnits", json_real(0));
      json_object_set_new(cc, r->ix->local ? "LocalSecondaryIndexes" : "GlobalSecondaryIndexes",
                          json_pack("{s:{s:f,s:f}}", r->ix->name, "CapacityUnits", u,
                                    "ReadCapacityUnits", u));
    }
    json_object_set_new(c->out, "ConsumedCapacity", cc);
  }
  return 0;
}

int op_query(api_call *c) {
  rq r;
  trb_page p;
  memset(&p, 0, sizeof p);
  int ret = -1;
  if (parse_common(c, &r, 1) < 0) goto done;
  int forward = 1;
  if (api_get_bool(c, c->in, "ScanIndexForward", &forward) < 0) goto done;
  trb_status st;
  trb_status_init(&st);
  trb_err rc;
  trb_keyschema ks = r.ix ? r.ix->ks : r.info.def.ks;
  trb_query_req q;
  memset(&q, 0, sizeof q);
  q.table = r.table;
  q.index = r.index;
  q.fetch_table = r.fetch_table;
  if ((rc = trb_expr_keycond(r.keycond, &ks, &q.pk, &q.sk_op, &q.sk1, &q.sk2, &st))) {
    api_fail_st(c, rc, &st);
    goto done;
  }
  if (r.filter) {
    const char *k = trb_expr_refers_to(r.filter, ks.pk_name) ? ks.pk_name
                    : (ks.has_sk && trb_expr_refers_to(r.filter, ks.sk_name)) ? ks.sk_name
                                                                              : NULL;
    if (k) {
      api_fail(c, "ValidationException",
               "Filter Expression can only contain non-primary key attributes: Primary key "
               "attribute: %s",
               k);
      goto done;
    }
  }
  api_thr thr;
  if (api_admit_read(c, &r.info, r.ix, &thr) < 0) goto done;
  q.backward = !forward;
  q.limit = (size_t)r.limit;
  q.exclusive_start_key = r.esk;
  if ((rc = trb_query(c->api->eng, &q, &p, &st))) {
    api_fail_st(c, rc, &st);
    goto done;
  }
  ret = emit_page(c, &r, &p, &thr);
done:
  trb_page_fini(&p);
  rq_fini(&r);
  return ret;
}

int op_scan(api_call *c) {
  rq r;
  trb_page p;
  memset(&p, 0, sizeof p);
  int ret = -1;
  if (parse_common(c, &r, 0) < 0) goto done;
  int64_t seg = 0, total = 0;
  int hs = api_get_int(c, c->in, "Segment", &seg), ht = api_get_int(c, c->in, "TotalSegments", &total);
  if (hs < 0 || ht < 0) goto done;
  if (hs && !ht) {
    api_fail(c, "ValidationException",
             "The TotalSegments parameter is required but was not present in the request when "
             "Segment parameter is present");
    goto done;
  }
  if (ht && !hs) {
    api_fail(c, "ValidationException",
             "The Segment parameter is required but was not present in the request when "
             "parameter TotalSegments is present");
    goto done;
  }
  if (ht && (total < 1 || total > 1000000)) {
    api_fail(c, "ValidationException",
             "1 validation error detected: Value '%" PRId64 "' at 'totalSegments' failed to "
             "satisfy constraint: Member must have value %s",
             total, total < 1 ? "greater than or equal to 1" : "less than or equal to 1000000");
    goto done;
  }
  if (hs && (seg < 0 || seg >= total)) {
    api_fail(c, "ValidationException",
             seg < 0 ? "1 validation error detected: Value '%" PRId64 "' at 'segment' failed to "
                       "satisfy constraint: Member must have value greater than or equal to 0"
                     : "The Segment parameter is zero-based and must be less than parameter "
                       "TotalSegments: Segment: %" PRId64 " is not less than TotalSegments: %" PRId64,
             seg, total);
    goto done;
  }
  trb_scan_req s;
  memset(&s, 0, sizeof s);
  s.table = r.table;
  s.index = r.index;
  s.fetch_table = r.fetch_table;
  s.limit = (size_t)r.limit;
  s.exclusive_start_key = r.esk;
  s.segment = (uint32_t)seg;
  s.total_segments = (uint32_t)total;
  api_thr thr;
  if (api_admit_read(c, &r.info, r.ix, &thr) < 0) goto done;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_scan(c->api->eng, &s, &p, &st);
  if (rc) {
    api_fail_st(c, rc, &st);
    goto done;
  }
  ret = emit_page(c, &r, &p, &thr);
done:
  trb_page_fini(&p);
  rq_fini(&r);
  return ret;
}
