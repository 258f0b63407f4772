/*
 * dynamo_item.c -- PutItem, GetItem, UpdateItem, DeleteItem (spec 4.1-4.4)
 * and the request pieces they share with batches and transactions.
 */
#include <stdlib.h>
#include <string.h>

#include "api/dynamo_item.h"
#include "api/dynamo_legacy.h"
#include "transform/doc_json.h"

static const char *const rv_names[] = {"NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW",
                                       "UPDATED_NEW", NULL};

void api_wreq_fini(api_wreq *r) {
  trb_write_fini(&r->w);
  trb_expr_destroy(r->cond);
  trb_expr_destroy(r->update);
  trb_expr_env_destroy(r->env);
  trb_av_destroy(r->vals);
  trb_av_destroy(r->item);
  trb_av_destroy(r->key);
  memset(r, 0, sizeof *r);
}

int api_wreq_parse(api_call *c, json_t *obj, trb_write_kind kind, api_wreq *r) {
  memset(r, 0, sizeof *r);
  r->w.kind = kind;
  /* legacy members left here are refused: single-item writes rewrote
   * theirs already (api_write_start), a transaction's actions take none */
  if (api_legacy(c, obj, 0) < 0) return -1;
  if (api_table_name(c, obj, "TableName", &r->table) < 0) return -1;
  snprintf(r->table_buf, sizeof r->table_buf, "%s", r->table);
  r->table = r->table_buf;
  json_t *tn = json_object_get(obj, "TableName");
  snprintf(r->table_as_sent, sizeof r->table_as_sent, "%s", json_string_value(tn));
  r->w.table = r->table;
  if (kind == TRB_W_PUT) {
    if (api_get_item(c, obj, "Item", 1, &r->item) <= 0) return -1;
    r->w.item = r->item;
  } else {
    if (api_get_item(c, obj, "Key", 1, &r->key) <= 0) return -1;
    r->w.key = r->key;
  }
  if (api_expr_env(c, obj, &r->env, &r->vals) < 0) return -1;
  int hc = api_expr(c, obj, "ConditionExpression", TRB_EXPR_CONDITION, r->env, &r->cond);
  if (hc < 0) return -1;
  if (kind == TRB_W_CHECK && !hc)
    return api_fail(c, "ValidationException",
                    "The parameter 'ConditionExpression' is required but was not present in the "
                    "request");
  if (kind == TRB_W_UPDATE) {
    int hu = api_expr(c, obj, "UpdateExpression", TRB_EXPR_UPDATE, r->env, &r->update);
    if (hu < 0) return -1;
  }
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_expr_env_check_unused(r->env, &st);
  if (rc) return api_fail_st(c, rc, &st);
  if (r->cond) {
    r->w.cond = trb_expr_cond_fn;
    r->w.cond_ctx = r->cond;
  }
  if (kind == TRB_W_UPDATE) {
    if (r->update) {
      trb_table_info info;
      trb_status_init(&st);
      rc = trb_table_describe(c->api->eng, r->table, &info, &st);
      if (rc) return api_fail_st(c, rc, &st);
      rc = trb_expr_update_check_keys(r->update, &info.def.ks, &st);
      trb_table_info_fini(&info);
      if (rc) return api_fail_st(c, rc, &st);
      r->w.update = trb_expr_update_fn;
      r->w.update_ctx = r->update;
    } else {
      r->w.update = trb_update_apply; /* no update expression: the item is just its key */
      static const trb_update none = {NULL, 0};
      r->w.update_ctx = (void *)&none;
    }
  }
  const char *s = NULL;
  if (api_get_str(c, obj, "ReturnValuesOnConditionCheckFailure", 0, &s) < 0) return -1;
  if (s) {
    static const char *const allowed[] = {"ALL_OLD", "NONE", NULL};
    if (api_check_enum(c, "returnValuesOnConditionCheckFailure", s, allowed)) return -1;
    r->w.old_on_cond_fail = !strcmp(s, "ALL_OLD");
  }
  if (api_want_capacity(c, obj, &r->capacity) < 0) return -1;
  if (api_want_icm(c, obj, &r->icm) < 0) return -1;
  return 0;
}

int api_wreq_rv(api_call *c, json_t *obj, api_wreq *r, int allow_all) {
  const char *s = NULL;
  if (api_get_str(c, obj, "ReturnValues", 0, &s) < 0) return -1;
  if (!s) return 0;
  if (api_check_enum(c, "returnValues", s, rv_names)) return -1;
  int i = 0;
  while (strcmp(rv_names[i], s)) i++;
  if (!allow_all && i != 0 && i != 1)
    return api_fail(c, "ValidationException", "Return values set to invalid value");
  r->rv = (trb_retval)i;
  r->w.want_old = r->rv == TRB_RV_ALL_OLD || r->rv == TRB_RV_UPDATED_OLD;
  r->w.want_new = r->rv == TRB_RV_ALL_NEW || r->rv == TRB_RV_UPDATED_NEW;
  return 0;
}

/* A failed condition: ConditionalCheckFailedException, with the item when
 * ReturnValuesOnConditionCheckFailure asked for it. */
int api_wreq_error(api_call *c, api_wreq *r) {
  if (r->w.rc == TRB_ECONDFAIL && r->w.old_item) {
    c->err_extra = json_object();
    json_object_set_new(c->err_extra, "Item", trb_item_to_json(r->w.old_item));
  }
  return api_fail_st(c, r->w.rc, &r->w.st);
}

size_t api_wreq_bytes(const api_wreq *r) {
  size_t a = r->w.old_item ? trb_item_size(r->w.old_item) : 0;
  size_t b = 0;
  if (r->w.new_item) b = trb_item_size(r->w.new_item);
  else if (r->item) b = trb_item_size(r->item);
  return a > b ? a : b;
}

int api_write_start(api_call *c, trb_write_kind kind, api_write_job *j, void (*done)(void *),
                    void *ctx) {
  memset(j, 0, sizeof *j);
  j->kind = kind;
  j->parsed = 1; /* api_wreq_fini is right even for a half-parsed request */
  if (api_legacy(c, c->in,
                 API_LG_EXPECTED | (kind == TRB_W_UPDATE ? API_LG_ATTRIBUTE_UPDATES : 0u)) < 0)
    return -1;
  if (api_wreq_parse(c, c->in, kind, &j->r) < 0) return -1;
  if (api_wreq_rv(c, c->in, &j->r, kind == TRB_W_UPDATE) < 0) return -1;
  if (api_admit(c, j->r.table, 1, &j->thr, &j->info) < 0) return -1;
  j->have_info = 1;
  if (api_admit_gsi_writes(c, &j->info) < 0) return -1;
  /* Capacity needs the sizes before and after: ask for both images. */
  j->want_old = j->r.w.want_old;
  j->want_new = j->r.w.want_new;
  if (j->r.capacity || j->thr.rate > 0) j->r.w.want_old = j->r.w.want_new = 1;
  if (done) return trb_engine_write_async(c->api->eng, &j->r.w, done, ctx);
  trb_status st;
  trb_status_init(&st);
  trb_engine_write(c->api->eng, &j->r.w, 1, 0, &st);
  return 0;
}

int api_write_finish(api_call *c, api_write_job *j) {
  api_wreq *r = &j->r;
  /* Charged even when the condition failed, as DynamoDB does. */
  api_charge(c, &j->thr, api_wcu(api_wreq_bytes(r)));
  api_charge_gsi_writes(c, &j->info, &r->w, 1);
  if (r->w.rc) return api_wreq_error(c, r);
  c->out = json_object();
  trb_av *attrs = NULL;
  if (j->want_old && r->w.old_item) attrs = r->w.old_item;
  if (j->want_new && r->w.new_item) attrs = r->w.new_item;
  if (attrs && (r->rv == TRB_RV_UPDATED_OLD || r->rv == TRB_RV_UPDATED_NEW)) {
    trb_av *pick = NULL;
    trb_status st;
    trb_status_init(&st);
    if (r->update && trb_expr_update_pick(r->update, attrs, &pick, &st) == TRB_OK && pick)
      json_object_set_new(c->out, "Attributes", trb_item_to_json(pick));
    trb_av_destroy(pick);
  } else if (attrs) {
    json_object_set_new(c->out, "Attributes", trb_item_to_json(attrs));
  }
  if (r->capacity)
    json_object_set_new(c->out, "ConsumedCapacity",
                        api_write_capacity(r->table_as_sent, api_wcu(api_wreq_bytes(r)), &r->w,
                                           j->info.def.ix, r->capacity, 1));
  json_t *m = r->icm ? api_icm(c, r->table, r->item ? r->item : r->key) : NULL;
  if (m) json_object_set_new(c->out, "ItemCollectionMetrics", m);
  return 0;
}

void api_write_job_fini(api_write_job *j) {
  if (j->have_info) trb_table_info_fini(&j->info);
  if (j->parsed) api_wreq_fini(&j->r);
  memset(j, 0, sizeof *j);
}

static int write_op(api_call *c, trb_write_kind kind) {
  api_write_job j;
  int ret = api_write_start(c, kind, &j, NULL, NULL);
  if (ret == 0) ret = api_write_finish(c, &j);
  api_write_job_fini(&j);
  return ret;
}

int op_put_item(api_call *c) { return write_op(c, TRB_W_PUT); }
int op_update_item(api_call *c) { return write_op(c, TRB_W_UPDATE); }
int op_delete_item(api_call *c) { return write_op(c, TRB_W_DELETE); }

int api_projection(api_call *c, json_t *obj, trb_expr_env **env, trb_av **vals,
                   trb_expr **proj) {
  *proj = NULL;
  if (api_expr_env(c, obj, env, vals) < 0) return -1;
  if (api_expr(c, obj, "ProjectionExpression", TRB_EXPR_PROJECTION, *env, proj) < 0) return -1;
  return 0;
}

int op_get_item(api_call *c) {
  const char *table;
  trb_av *key = NULL, *item = NULL, *vals = NULL, *proj_item = NULL;
  trb_expr_env *env = NULL;
  trb_expr *proj = NULL;
  int ret = -1, consistent = 0, cap = 0;
  if (api_legacy(c, c->in, API_LG_ATTRIBUTES_TO_GET) < 0) goto done;
  if (api_table_name(c, c->in, "TableName", &table) < 0) goto done;
  char tname[256];
  snprintf(tname, sizeof tname, "%s", table);
  if (api_get_item(c, c->in, "Key", 1, &key) <= 0) goto done;
  if (api_get_bool(c, c->in, "ConsistentRead", &consistent) < 0) goto done;
  if (api_want_capacity(c, c->in, &cap) < 0) goto done;
  if (api_projection(c, c->in, &env, &vals, &proj) < 0) goto done;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_expr_env_check_unused(env, &st);
  if (rc) {
    api_fail_st(c, rc, &st);
    goto done;
  }
  api_thr thr;
  if (api_admit(c, tname, 0, &thr, NULL) < 0) goto done;
  rc = trb_get_item(c->api->eng, tname, key, &item, &st);
  if (rc) {
    api_fail_st(c, rc, &st);
    goto done;
  }
  api_charge(c, &thr, api_rcu(item ? trb_item_size(item) : 0, consistent));
  if (item && proj && (rc = trb_expr_project(proj, item, &proj_item, &st))) {
    api_fail_st(c, rc, &st);
    goto done;
  }
  /* The answer as text straight from the item (no jansson tree):
   * {"Item":{...},"ConsumedCapacity":{...}} */
  trb_buf body;
  trb_buf_init(&body, 0);
  trb_err brc = trb_buf_append(&body, "{", 1);
  if (!brc && item) brc = trb_buf_append(&body, "\"Item\":", 7);
  if (!brc && item) brc = trb_ddb_json_item(proj ? proj_item : item, &body);
  if (!brc && cap) {
    json_t *cc = api_capacity(json_string_value(json_object_get(c->in, "TableName")),
                              api_rcu(item ? trb_item_size(item) : 0, consistent), cap, 1);
    char *t = cc ? json_dumps(cc, JSON_COMPACT) : NULL;
    json_decref(cc);
    if (!t) brc = TRB_ENOMEM;
    if (!brc && item) brc = trb_buf_append(&body, ",", 1);
    if (!brc) brc = trb_buf_append(&body, "\"ConsumedCapacity\":", 19);
    if (!brc) brc = trb_buf_append(&body, t, strlen(t));
    free(t);
  }
  if (!brc) brc = trb_buf_append(&body, "}", 1);
  if (brc) {
    trb_buf_fini(&body);
    api_fail(c, "InternalServerError", "out of memory");
    goto done;
  }
  c->out_raw = (char *)trb_buf_steal(&body, &c->out_raw_len);
  ret = 0;
done:
  trb_expr_destroy(proj);
  trb_expr_env_destroy(env);
  trb_av_destroy(vals);
  trb_av_destroy(key);
  trb_av_destroy(item);
  trb_av_destroy(proj_item);
  return ret;
}
