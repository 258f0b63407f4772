/*
 * dynamo_batch.c -- BatchGetItem, BatchWriteItem, TransactWriteItems,
 * TransactGetItems (spec 4.7-4.11). TransactWriteItems' ClientRequestToken
 * goes through the api's token table (api/idempotency.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/dynamo_item.h"
#include "api/dynamo_legacy.h"

static trb_err always(void *ctx, const trb_av *item, int *pass, trb_status *st) {
  (void)ctx;
  (void)item;
  (void)st;
  *pass = 1;
  return TRB_OK;
}

/* Adds units to the per-table ConsumedCapacity list. */
static void cap_add(json_t *list, const char *table, double units, int mode, int read) {
  if (!mode) return;
  for (size_t i = 0; i < json_array_size(list); i++) {
    json_t *o = json_array_get(list, i);
    if (!strcmp(json_string_value(json_object_get(o, "TableName")), table)) {
      double u = json_number_value(json_object_get(o, "CapacityUnits")) + units;
      json_array_set_new(list, i, api_capacity(table, u, mode, read));
      return;
    }
  }
  json_array_append_new(list, api_capacity(table, units, mode, read));
}

/* Adds one write's units, its indexes' included, to the per-table list. */
static void cap_add_write(api_call *c, json_t *list, const char *sent, const char *table,
                          double units, const trb_write *w, int mode, double mult) {
  if (!mode) return;
  trb_table_info info;
  trb_status st;
  trb_status_init(&st);
  int have = trb_table_describe(c->api->eng, table, &info, &st) == TRB_OK;
  json_t *one = api_write_capacity(sent, units, w, have ? info.def.ix : NULL, mode, mult);
  if (have) trb_table_info_fini(&info);
  for (size_t i = 0; i < json_array_size(list); i++) {
    json_t *o = json_array_get(list, i);
    if (!strcmp(json_string_value(json_object_get(o, "TableName")), sent)) {
      api_capacity_merge(o, one);
      return;
    }
  }
  json_array_append_new(list, one);
}

/* A table name from a RequestItems key (a name or an ARN). */
static int map_table(api_call *c, const char *key, char out[256]) {
  json_t *tmp = json_pack("{s:s}", "TableName", key);
  const char *name;
  int r = api_table_name(c, tmp, "TableName", &name);
  if (r > 0) snprintf(out, 256, "%s", name);
  json_decref(tmp);
  return r;
}

/* ---- provisioned throughput of a batch or a transaction ----
 * Each table the call touches is admitted once, when first met (after the
 * whole request is known valid); what the call consumed is charged to each
 * afterwards, as PutItem's and GetItem's is. A batch leaves a throttled
 * table's requests unprocessed (and is throttled itself only when every
 * table is); a transaction is throttled when any of its tables is. A write
 * also needs every GSI of its table with provisioned write capacity to have
 * some left, as PutItem does (whether the write would touch that GSI is
 * known only once the commit thread has the old item). */
typedef struct tthr {
  char name[256];
  api_thr t;
  int throttled;
  int gsi;             /* throttled by this GSI's write bucket; -1: by the table's */
  trb_table_info info; /* for the GSIs' write charges */
} tthr;
typedef struct tthr_set {
  tthr *e;
  size_t n, cap;
} tthr_set;

/* The entry of table, admitted on first sight; NULL with the call's error
 * set (a missing table, out of memory). */
static tthr *tthr_get(api_call *c, tthr_set *s, const char *table, int write) {
  for (size_t i = 0; i < s->n; i++)
    if (!strcmp(s->e[i].name, table)) return &s->e[i];
  if (s->n == s->cap) {
    size_t nc = s->cap ? 2 * s->cap : 8;
    tthr *ne = realloc(s->e, nc * sizeof *ne);
    if (!ne) {
      api_fail(c, "InternalServerError", "out of memory");
      return NULL;
    }
    s->e = ne;
    s->cap = nc;
  }
  tthr *e = &s->e[s->n];
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", table);
  e->gsi = -1;
  int r = api_throttled(c, table, write, &e->t, &e->info);
  if (r < 0) return NULL;
  if (!r && write && (e->gsi = api_gsi_writes_throttled(c, &e->info)) >= 0) r = 1;
  e->throttled = r;
  s->n++;
  return e;
}

/* The exception for a throttled entry. */
static int tthr_fail(api_call *c, const tthr *e, int write) {
  if (e->gsi >= 0) return api_fail_gsi_throttled(c, &e->info, e->gsi);
  return api_fail_throttled(c, e->name, write);
}

/* Charges one write's units to its table and its GSIs. */
static void tthr_charge_write(api_call *c, tthr *e, const trb_write *w, double units, double mult) {
  if (!e) return;
  api_charge(c, &e->t, units * mult);
  api_charge_gsi_writes(c, &e->info, w, mult);
}

static void tthr_fini(tthr_set *s) {
  for (size_t i = 0; i < s->n; i++) trb_table_info_fini(&s->e[i].info);
  free(s->e);
  memset(s, 0, sizeof *s);
}

/* ---- BatchWriteItem ---- */

int op_batch_write(api_call *c) {
  json_t *ri;
  int ret = -1, cap = 0;
  if (api_get_obj(c, c->in, "RequestItems", 1, &ri) <= 0) return -1;
  if (api_want_capacity(c, c->in, &cap) < 0) return -1;
  int icm = 0;
  if (api_want_icm(c, c->in, &icm) < 0) return -1;
  size_t total = 0;
  const char *tk;
  json_t *list;
  json_object_foreach(ri, tk, list) {
    if (!json_is_array(list)) return api_fail(c, "SerializationException", "Expected list or null");
    total += json_array_size(list);
  }
  if (total < 1 || total > 25)
    return api_fail(c, "ValidationException",
                    total ? "Too many items requested for the BatchWriteItem call"
                          : "1 validation error detected: Value '{}' at 'requestItems' failed to "
                            "satisfy constraint: Member must have length greater than or equal to 1");
  trb_write *w = calloc(total, sizeof *w);
  trb_av **owned = calloc(total, sizeof *owned);
  char (*tables)[256] = calloc(total, 256);
  const char **sent = calloc(total, sizeof *sent);
  char *thr = NULL;       /* per write: its table is throttled */
  trb_write *gw = NULL;   /* the writes that go ahead */
  tthr_set ts = {0};
  size_t n = 0;
  if (!w || !owned || !tables || !sent) {
    api_fail(c, "InternalServerError", "out of memory");
    goto done;
  }
  json_object_foreach(ri, tk, list) {
    char tname[256];
    if (map_table(c, tk, tname) < 0) goto done;
    for (size_t i = 0; i < json_array_size(list); i++) {
      json_t *e = json_array_get(list, i), *pr = NULL, *dr = NULL;
      if (!json_is_object(e)) {
        api_fail(c, "SerializationException", "Expected map or null");
        goto done;
      }
      if (api_get_obj(c, e, "PutRequest", 0, &pr) < 0 || api_get_obj(c, e, "DeleteRequest", 0, &dr) < 0)
        goto done;
      if (!pr == !dr) {
        api_fail(c, "ValidationException",
                 "Supplied AttributeValue has more than one datatypes set, must contain exactly one "
                 "of the supported datatypes: each request must hold exactly one of PutRequest and "
                 "DeleteRequest");
        goto done;
      }
      snprintf(tables[n], 256, "%s", tname);
      sent[n] = tk;
      w[n].table = tables[n];
      if (pr) {
        w[n].kind = TRB_W_PUT;
        if (api_get_item(c, pr, "Item", 1, &owned[n]) <= 0) goto done;
        w[n].item = owned[n];
      } else {
        w[n].kind = TRB_W_DELETE;
        if (api_get_item(c, dr, "Key", 1, &owned[n]) <= 0) goto done;
        w[n].key = owned[n];
      }
      if (cap) w[n].want_old = 1;
      n++;
    }
  }
  /* The request is valid: now its tables' provisioned throughput. */
  if (!(thr = calloc(n ? n : 1, 1)) || !(gw = calloc(n ? n : 1, sizeof *gw))) {
    api_fail(c, "InternalServerError", "out of memory");
    goto done;
  }
  size_t ngo = 0;
  size_t first_throttled = SIZE_MAX; /* its entry in ts (which may move as it grows) */
  for (size_t i = 0; i < n; i++) {
    tthr *e = tthr_get(c, &ts, tables[i], 1);
    if (!e) goto done;
    thr[i] = (char)e->throttled;
    if (thr[i] && first_throttled == SIZE_MAX) first_throttled = (size_t)(e - ts.e);
    if (!thr[i] && e->t.rate > 0) w[i].want_old = 1; /* the units need the old size */
    if (!thr[i]) ngo++;
  }
  if (!ngo) { /* every table throttled: DynamoDB's answer is the exception */
    tthr_fail(c, &ts.e[first_throttled], 1);
    goto done;
  }
  for (size_t i = 0, j = 0; i < n; i++)
    if (!thr[i]) gw[j++] = w[i];
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_engine_write(c->api->eng, gw, ngo, TRB_WRITE_ALL_VALID, &st);
  for (size_t i = 0, j = 0; i < n; i++) /* results and buffers back where fini looks */
    if (!thr[i]) w[i] = gw[j++];
  if (rc) {
    api_fail_st(c, rc, &st);
    goto done;
  }
  /* A throttled table's requests, and each write's own failure (a store
   * error), are left unprocessed. */
  json_t *unprocessed = json_object(), *caps = json_array(), *icms = json_object();
  for (size_t i = 0; i < n; i++) {
    if (w[i].rc || thr[i]) {
      json_t *l = json_object_get(unprocessed, sent[i]);
      if (!l) json_object_set_new(unprocessed, sent[i], l = json_array());
      json_array_append_new(l, w[i].kind == TRB_W_PUT
                                   ? json_pack("{s:{s:o}}", "PutRequest", "Item", trb_item_to_json(w[i].item))
                                   : json_pack("{s:{s:o}}", "DeleteRequest", "Key", trb_item_to_json(w[i].key)));
      continue;
    }
    size_t a = w[i].old_item ? trb_item_size(w[i].old_item) : 0;
    size_t b = w[i].item ? trb_item_size(w[i].item) : 0;
    cap_add_write(c, caps, sent[i], tables[i], api_wcu(a > b ? a : b), &w[i], cap, 1);
    tthr_charge_write(c, tthr_get(c, &ts, tables[i], 1), &w[i], api_wcu(a > b ? a : b), 1);
    if (icm) api_icm_add(icms, sent[i], api_icm(c, tables[i], w[i].item ? w[i].item : w[i].key));
  }
  c->out = json_pack("{s:o}", "UnprocessedItems", unprocessed);
  if (cap) json_object_set_new(c->out, "ConsumedCapacity", caps);
  else json_decref(caps);
  if (json_object_size(icms)) json_object_set_new(c->out, "ItemCollectionMetrics", icms);
  else json_decref(icms);
  ret = 0;
done:
  for (size_t i = 0; w && i < total; i++) {
    trb_write_fini(&w[i]);
    trb_av_destroy(owned ? owned[i] : NULL);
  }
  free(w);
  free(owned);
  free(tables);
  free(sent);
  free(thr);
  free(gw);
  tthr_fini(&ts);
  return ret;
}

/* ---- BatchGetItem ---- */

/* The response's cap (DynamoDB: "up to 16 MB of data"), counted in item
 * sizes as read: once the next item would pass it, that key and every
 * later one go back in UnprocessedKeys (100 items of 300 KB: 52 returned,
 * as on AWS). */
#define BATCH_GET_MAX_BYTES (16u * 1000 * 1000)

/* Key kj of table tk (its KeysAndAttributes ka) left for the client to ask
 * again: into unproc[tk], which keeps ka's other members. */
static void unprocessed_key(json_t *unproc, const char *tk, json_t *ka, json_t *kj) {
  json_t *t = json_object_get(unproc, tk);
  if (!t) {
    t = json_deep_copy(ka);
    if (!t) return;
    json_object_set_new(t, "Keys", json_array());
    json_object_set_new(unproc, tk, t);
  }
  json_array_append(json_object_get(t, "Keys"), kj);
}

int op_batch_get(api_call *c) {
  json_t *ri;
  int cap = 0;
  if (api_get_obj(c, c->in, "RequestItems", 1, &ri) <= 0) return -1;
  if (api_want_capacity(c, c->in, &cap) < 0) return -1;
  const char *tk;
  json_t *ka;
  size_t total = 0;
  json_object_foreach(ri, tk, ka) {
    json_t *keys;
    if (!json_is_object(ka)) return api_fail(c, "SerializationException", "Expected map or null");
    if (api_legacy(c, ka, API_LG_ATTRIBUTES_TO_GET) < 0) return -1;
    if (api_get_arr(c, ka, "Keys", 1, &keys) <= 0) return -1;
    total += json_array_size(keys);
  }
  if (total > 100)
    return api_fail(c, "ValidationException", "Too many items requested for the BatchGetItem call");
  if (total == 0)
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value at 'requestItems' failed to satisfy "
                    "constraint: Member must have length greater than or equal to 1");
  json_t *responses = json_object(), *caps = json_array(), *unproc = json_object();
  size_t bytes = 0, nread_tables = 0;
  int ret = -1;
  tthr_set ts = {0};
  const char *first_throttled = NULL;
  json_object_foreach(ri, tk, ka) {
    char tname[256];
    trb_expr_env *env = NULL;
    trb_av *vals = NULL;
    trb_expr *proj = NULL;
    int consistent = 0, ok = 0;
    json_t *keys = json_object_get(ka, "Keys"), *out = json_array();
    trb_av **kv = calloc(json_array_size(keys) + 1, sizeof *kv);
    if (map_table(c, tk, tname) < 0 || api_get_bool(c, ka, "ConsistentRead", &consistent) < 0 ||
        api_projection(c, ka, &env, &vals, &proj) < 0)
      goto next;
    trb_status st;
    trb_status_init(&st);
    trb_err rc = trb_expr_env_check_unused(env, &st);
    if (rc) {
      api_fail_st(c, rc, &st);
      goto next;
    }
    /* Parse every key first: duplicates are an error for the whole call. */
    for (size_t i = 0; i < json_array_size(keys); i++) {
      json_t *kj = json_array_get(keys, i);
      if ((rc = trb_item_from_json(kj, &kv[i], &st))) {
        api_fail_st(c, rc, &st);
        goto next;
      }
      for (size_t j = 0; j < i; j++)
        if (trb_av_equal(kv[i], kv[j])) {
          api_fail(c, "ValidationException", "Provided list of item keys contains duplicates");
          goto next;
        }
    }
    tthr *e = tthr_get(c, &ts, tname, 0);
    if (!e) goto next;
    if (e->throttled) { /* all its keys back, unread */
      for (size_t i = 0; i < json_array_size(keys); i++)
        unprocessed_key(unproc, tk, ka, json_array_get(keys, i));
      if (!first_throttled) first_throttled = e->name;
      ok = 1;
      goto next;
    }
    nread_tables++;
    for (size_t i = 0; i < json_array_size(keys); i++) {
      trb_av *item = NULL;
      if (bytes >= BATCH_GET_MAX_BYTES) {
        unprocessed_key(unproc, tk, ka, json_array_get(keys, i));
        continue;
      }
      if ((rc = trb_get_item(c->api->eng, tname, kv[i], &item, &st))) {
        api_fail_st(c, rc, &st);
        goto next;
      }
      size_t isz = item ? trb_item_size(item) : 0;
      if (bytes + isz > BATCH_GET_MAX_BYTES) {
        trb_av_destroy(item);
        bytes = BATCH_GET_MAX_BYTES;
        unprocessed_key(unproc, tk, ka, json_array_get(keys, i));
        continue;
      }
      bytes += isz;
      cap_add(caps, tk, api_rcu(isz, consistent), cap, 1);
      api_charge(c, &e->t, api_rcu(isz, consistent));
      if (!item) continue;
      if (proj) {
        trb_av *pi = NULL;
        rc = trb_expr_project(proj, item, &pi, &st);
        trb_av_destroy(item);
        if (rc) {
          api_fail_st(c, rc, &st);
          goto next;
        }
        item = pi;
      }
      json_array_append_new(out, trb_item_to_json(item));
      trb_av_destroy(item);
    }
    json_object_set(responses, tk, out);
    ok = 1;
  next:
    for (size_t i = 0; i < json_array_size(keys); i++) trb_av_destroy(kv[i]);
    free(kv);
    json_decref(out);
    trb_expr_destroy(proj);
    trb_expr_env_destroy(env);
    trb_av_destroy(vals);
    if (!ok) goto done;
  }
  if (!nread_tables && first_throttled) { /* every table throttled */
    api_fail_throttled(c, first_throttled, 0);
    goto done;
  }
  c->out = json_pack("{s:O,s:O}", "Responses", responses, "UnprocessedKeys", unproc);
  if (cap) json_object_set(c->out, "ConsumedCapacity", caps);
  ret = 0;
done:
  json_decref(responses);
  json_decref(caps);
  json_decref(unproc);
  tthr_fini(&ts);
  return ret;
}

/* ---- TransactWriteItems ---- */

static const char *reason_code(trb_err rc) {
  switch (rc) {
    case TRB_OK: return "None";
    case TRB_ECONDFAIL: return "ConditionalCheckFailed";
    case TRB_EINVAL:
    case TRB_ELIMIT: return "ValidationError";
    default: return "InternalError";
  }
}

/* ---- ClientRequestToken (spec 4.9): the same token and the same
 * parameters within 10 minutes of success answer success again without
 * applying anything. ---- */

/* Members that are not "the parameters": a retry may ask for capacity or
 * metrics when the first call did not, and still be the same request. */
static const char *const idem_excluded[] = {"ClientRequestToken", "ReturnConsumedCapacity",
                                            "ReturnItemCollectionMetrics", NULL};

/* 1..36 characters (Unicode code points; the text is valid UTF-8). */
static int check_token(api_call *c, const char *token) {
  size_t chars = 0;
  for (const unsigned char *p = (const unsigned char *)token; *p; p++)
    chars += (*p & 0xC0) != 0x80;
  if (chars >= 1 && chars <= 36) return 0;
  return api_fail(c, "ValidationException",
                  "1 validation error detected: Value '%s' at 'clientRequestToken' failed to "
                  "satisfy constraint: Member must have length %s",
                  token, chars ? "less than or equal to 36" : "greater than or equal to 1");
}

/*
 * What a replay needs from the first call: the read capacity of reading
 * each item as the transaction left it (one strongly consistent read per
 * item; a deleted item costs the minimum), per table as sent, as the JSON
 * text of a TOTAL ConsumedCapacity list. DynamoDB reports reads, not
 * writes, for a replay (spec 6.2). NULL on OOM (a replay then reports no
 * tables).
 */
static char *replay_record(const api_wreq *r, const trb_write *w, size_t n) {
  json_t *caps = json_array();
  if (!caps) return NULL;
  for (size_t i = 0; i < n; i++)
    cap_add(caps, r[i].table_as_sent, api_rcu(w[i].new_item ? trb_item_size(w[i].new_item) : 0, 1),
            1, 1);
  char *s = json_dumps(caps, JSON_COMPACT);
  json_decref(caps);
  return s;
}

/* The answer to a replay: success, and the stored read capacity in the
 * shape this request asked for. */
static void replay_answer(api_call *c, const char *stored, int cap) {
  c->out = json_object();
  if (!cap) return;
  json_t *caps = json_array();
  json_t *prev = stored ? json_loads(stored, 0, NULL) : NULL;
  for (size_t i = 0; i < json_array_size(prev); i++) {
    json_t *o = json_array_get(prev, i);
    json_array_append_new(caps, api_capacity(json_string_value(json_object_get(o, "TableName")),
                                             json_number_value(json_object_get(o, "CapacityUnits")),
                                             cap, 1));
  }
  json_decref(prev);
  json_object_set_new(c->out, "ConsumedCapacity", caps);
}

/* Looks the token up. 1: this call runs the transaction and must commit or
 * abort the token; 0: answered (a replay: c->out set); -1: error set. */
static int token_begin(api_call *c, const char *token, int cap) {
  uint8_t digest[TRB_IDEM_DIGEST_LEN];
  if (trb_idem_digest(c->in, idem_excluded, digest))
    return api_fail(c, "InternalServerError", "out of memory");
  trb_idem_verdict v;
  char *stored = NULL;
  trb_err rc = trb_idem_begin(c->api->idem, token, digest, &v, &stored);
  if (rc == TRB_ELIMIT) /* every remembered token is in flight: overload */
    return api_fail(c, "ThrottlingException", "Rate exceeded");
  if (rc) return api_fail(c, "InternalServerError", "%s", trb_err_str(rc));
  switch (v) {
    case TRB_IDEM_FIRST: return 1;
    case TRB_IDEM_REPLAY:
      replay_answer(c, stored, cap);
      free(stored);
      return 0;
    case TRB_IDEM_MISMATCH:
      return api_fail(c, "IdempotentParameterMismatchException",
                      "The request uses the same client request token as a previous, but "
                      "non-identical request within the idempotency window");
    case TRB_IDEM_IN_PROGRESS:
      return api_fail(c, "TransactionInProgressException",
                      "Transaction from previous request is still in progress");
  }
  return api_fail(c, "InternalServerError", "unknown token verdict");
}

#define TRANSACT_MAX_BYTES (4u * 1024 * 1024)

int op_transact_write(api_call *c) {
  json_t *items;
  int cap = 0, ret = -1;
  if (api_get_arr(c, c->in, "TransactItems", 1, &items) <= 0) return -1;
  if (api_want_capacity(c, c->in, &cap) < 0) return -1;
  int icm = 0;
  if (api_want_icm(c, c->in, &icm) < 0) return -1;
  const char *token = NULL;
  if (api_get_str(c, c->in, "ClientRequestToken", 0, &token) < 0) return -1;
  if (token && check_token(c, token)) return -1;
  size_t n = json_array_size(items);
  if (n < 1 || n > 100)
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value at 'transactItems' failed to satisfy "
                    "constraint: Member must have length %s",
                    n ? "less than or equal to 100" : "greater than or equal to 1");
  api_wreq *r = calloc(n, sizeof *r);
  trb_write *w = calloc(n, sizeof *w);
  if (!r || !w) {
    free(r);
    free(w);
    return api_fail(c, "InternalServerError", "out of memory");
  }
  size_t parsed = 0;
  tthr_set ts = {0};
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_array_get(items, i), *body = NULL;
    static const struct { const char *m; trb_write_kind k; } kinds[] = {
        {"ConditionCheck", TRB_W_CHECK}, {"Put", TRB_W_PUT}, {"Delete", TRB_W_DELETE},
        {"Update", TRB_W_UPDATE}};
    int found = 0;
    trb_write_kind kind = TRB_W_PUT;
    if (!json_is_object(e)) {
      api_fail(c, "SerializationException", "Expected map or null");
      goto done;
    }
    for (size_t k = 0; k < 4; k++) {
      json_t *b = json_object_get(e, kinds[k].m);
      if (b && !json_is_null(b)) {
        found++;
        body = b;
        kind = kinds[k].k;
      }
    }
    if (found != 1 || !json_is_object(body)) {
      api_fail(c, "ValidationException",
               "TransactItems can only contain one of Check, Put, Update or Delete");
      goto done;
    }
    if (kind == TRB_W_UPDATE && !json_object_get(body, "UpdateExpression")) {
      api_fail(c, "ValidationException",
               "The parameter 'UpdateExpression' is required but was not present in the request");
      goto done;
    }
    if (api_wreq_parse(c, body, kind, &r[i]) < 0) {
      parsed = i + 1;
      goto done;
    }
    parsed = i + 1;
    if (cap) r[i].w.want_old = r[i].w.want_new = 1;
    if (token) r[i].w.want_new = 1; /* sizes for a replay's capacity */
    w[i] = r[i].w;
  }
  /* DynamoDB's cap on a transaction's data: the items put, the keys of the
   * other actions. */
  {
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
      total += r[i].item ? trb_item_size(r[i].item) : r[i].key ? trb_item_size(r[i].key) : 0;
    if (total > TRANSACT_MAX_BYTES) {
      api_fail(c, "ValidationException",
               "Transaction request cannot be larger than 4 MB (the items and keys in this one "
               "come to %zu bytes)", total);
      goto done;
    }
  }
  /* Valid: a transaction goes ahead only when all its tables may. */
  for (size_t i = 0; i < n; i++) {
    tthr *e = tthr_get(c, &ts, r[i].table, 1);
    if (!e) goto done;
    if (e->throttled) {
      tthr_fail(c, e, 1);
      goto done;
    }
    if (e->t.rate > 0) w[i].want_old = w[i].want_new = 1; /* the units need the sizes */
  }
  /* The token is looked at only once the request is known to be valid: an
   * invalid request is answered as such whatever its token. */
  if (token) {
    int t = token_begin(c, token, cap);
    if (t <= 0) {
      ret = t;
      goto done;
    }
  }
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_engine_write(c->api->eng, w, n, TRB_WRITE_ATOMIC, &st);
  /* Only success is remembered: after a cancellation or an error the token
   * is forgotten and a retry runs again. */
  if (token && rc) trb_idem_abort(c->api->idem, token);
  else if (token) trb_idem_commit(c->api->idem, token, replay_record(r, w, n));
  int evaluated = 0;
  for (size_t i = 0; i < n; i++) evaluated |= w[i].evaluated;
  if (rc && !evaluated) {
    api_fail_st(c, rc, &st);
  } else if (rc) {
    json_t *reasons = json_array();
    char codes[2048] = "";
    for (size_t i = 0; i < n; i++) {
      const char *code = reason_code(w[i].rc);
      json_t *o = json_pack("{s:s}", "Code", code);
      if (w[i].rc) json_object_set_new(o, "Message", json_string(trb_status_msg(&w[i].st)));
      if (w[i].rc == TRB_ECONDFAIL && w[i].old_item && r[i].w.old_on_cond_fail)
        json_object_set_new(o, "Item", trb_item_to_json(w[i].old_item));
      json_array_append_new(reasons, o);
      size_t l = strlen(codes);
      snprintf(codes + l, sizeof codes - l, "%s%s", i ? ", " : "", code);
    }
    api_fail(c, "TransactionCanceledException",
             "Transaction cancelled, please refer cancellation reasons for specific reasons [%s]",
             codes);
    c->err_extra = json_pack("{s:o}", "CancellationReasons", reasons);
  } else {
    c->out = json_object();
    for (size_t i = 0; i < n; i++) {
      size_t a = w[i].old_item ? trb_item_size(w[i].old_item) : 0;
      size_t b = w[i].new_item ? trb_item_size(w[i].new_item) : 0;
      tthr_charge_write(c, tthr_get(c, &ts, r[i].table, 1), &w[i], api_wcu(a > b ? a : b), 2);
    }
    if (cap) {
      json_t *caps = json_array();
      for (size_t i = 0; i < n; i++) {
        size_t a = w[i].old_item ? trb_item_size(w[i].old_item) : 0;
        size_t b = w[i].new_item ? trb_item_size(w[i].new_item) : 0;
        cap_add_write(c, caps, r[i].table_as_sent, r[i].table, api_wcu(a > b ? a : b), &w[i], cap,
                      2);
      }
      json_object_set_new(c->out, "ConsumedCapacity", caps);
    }
    if (icm) { /* the collections the writes (not the condition checks) touched */
      json_t *icms = json_object();
      for (size_t i = 0; i < n; i++)
        if (w[i].kind != TRB_W_CHECK)
          api_icm_add(icms, r[i].table_as_sent,
                      api_icm(c, r[i].table, r[i].item ? r[i].item : r[i].key));
      if (json_object_size(icms)) json_object_set_new(c->out, "ItemCollectionMetrics", icms);
      else json_decref(icms);
    }
    ret = 0;
  }
done:
  for (size_t i = 0; i < parsed; i++) {
    r[i].w = w[i]; /* outputs and buffers live in w[i] now */
    api_wreq_fini(&r[i]);
  }
  free(r);
  free(w);
  tthr_fini(&ts);
  return ret;
}

/* ---- TransactGetItems: all items read at one point of the commit order
 * (as condition checks that always pass), so the result is a state the
 * table really had. ---- */

int op_transact_get(api_call *c) {
  json_t *items;
  int cap = 0, ret = -1;
  if (api_get_arr(c, c->in, "TransactItems", 1, &items) <= 0) return -1;
  if (api_want_capacity(c, c->in, &cap) < 0) return -1;
  size_t n = json_array_size(items);
  if (n < 1 || n > 100)
    return api_fail(c, "ValidationException",
                    "1 validation error detected: Value at 'transactItems' failed to satisfy "
                    "constraint: Member must have length %s",
                    n ? "less than or equal to 100" : "greater than or equal to 1");
  tthr_set ts = {0};
  trb_write *w = calloc(n, sizeof *w);
  trb_av **keys = calloc(n, sizeof *keys);
  trb_expr **projs = calloc(n, sizeof *projs);
  trb_expr_env **envs = calloc(n, sizeof *envs);
  trb_av **vals = calloc(n, sizeof *vals);
  char (*tables)[256] = calloc(n, 256);
  const char **sent = calloc(n, sizeof *sent);
  if (!w || !keys || !projs || !envs || !vals || !tables || !sent) {
    api_fail(c, "InternalServerError", "out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_array_get(items, i), *g = NULL;
    if (!json_is_object(e) || api_get_obj(c, e, "Get", 1, &g) <= 0) {
      if (!c->err_type) api_fail(c, "SerializationException", "Expected map or null");
      goto done;
    }
    const char *t;
    if (api_table_name(c, g, "TableName", &t) < 0) goto done;
    snprintf(tables[i], 256, "%s", t);
    sent[i] = json_string_value(json_object_get(g, "TableName"));
    if (api_get_item(c, g, "Key", 1, &keys[i]) <= 0) goto done;
    if (api_projection(c, g, &envs[i], &vals[i], &projs[i]) < 0) goto done;
    trb_status st;
    trb_status_init(&st);
    trb_err rc = trb_expr_env_check_unused(envs[i], &st);
    if (rc) {
      api_fail_st(c, rc, &st);
      goto done;
    }
    w[i].kind = TRB_W_CHECK;
    w[i].table = tables[i];
    w[i].key = keys[i];
    w[i].cond = always;
    w[i].want_old = 1;
  }
  for (size_t i = 0; i < n; i++) { /* all its tables may, or nothing is read */
    tthr *e = tthr_get(c, &ts, tables[i], 0);
    if (!e) goto done;
    if (e->throttled) {
      api_fail_throttled(c, e->name, 0);
      goto done;
    }
  }
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_engine_write(c->api->eng, w, n, TRB_WRITE_ATOMIC, &st);
  if (rc) {
    api_fail_st(c, rc, &st);
    goto done;
  }
  json_t *resp = json_array(), *caps = json_array();
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_object();
    trb_av *it = w[i].old_item;
    cap_add(caps, sent[i], 2 * api_rcu(it ? trb_item_size(it) : 0, 1), cap, 1);
    api_charge(c, &tthr_get(c, &ts, tables[i], 0)->t, 2 * api_rcu(it ? trb_item_size(it) : 0, 1));
    if (it) {
      if (projs[i]) {
        trb_av *pi = NULL;
        if ((rc = trb_expr_project(projs[i], it, &pi, &st))) {
          json_decref(o);
          json_decref(resp);
          json_decref(caps);
          api_fail_st(c, rc, &st);
          goto done;
        }
        json_object_set_new(o, "Item", trb_item_to_json(pi));
        trb_av_destroy(pi);
      } else {
        json_object_set_new(o, "Item", trb_item_to_json(it));
      }
    }
    json_array_append_new(resp, o);
  }
  c->out = json_pack("{s:o}", "Responses", resp);
  if (cap) json_object_set_new(c->out, "ConsumedCapacity", caps);
  else json_decref(caps);
  ret = 0;
done:
  for (size_t i = 0; i < n; i++) {
    if (w) trb_write_fini(&w[i]);
    if (keys) trb_av_destroy(keys[i]);
    if (projs) trb_expr_destroy(projs[i]);
    if (envs) trb_expr_env_destroy(envs[i]);
    if (vals) trb_av_destroy(vals[i]);
  }
  free(w);
  free(keys);
  free(projs);
  free(envs);
  free(vals);
  free(tables);
  free(sent);
  tthr_fini(&ts);
  return ret;
}
