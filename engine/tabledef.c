/*
 * tabledef.c -- the table definition format.
 *
 * Catalog records are rare and grow with every feature (indexes, streams,
 * TTL, throughput), so the format is a versioned JSON object rather than a
 * packed layout:
 *
 *   byte 0      'T' (0x54)   magic
 *   byte 1      0x01         format version
 *   bytes 2..   UTF-8 JSON object, no NUL:
 *     {"name": "...", "id": <u64 as decimal string>, "created_us": <int>,
 *      "pk": {"name": "...", "type": "S"|"N"|"B"},
 *      "sk": {"name": "...", "type": "S"|"N"|"B"},     (absent: no sort key)
 *      "ext": {...},                                    (absent: none; see tabledef.h)
 *      "ix": [{"name": "...", "local": true|false,      (absent: no index)
 *              "pk": {...}, "sk": {...}?,               key schema as above
 *              "proj": "ALL"|"KEYS_ONLY"|"INCLUDE",
 *              "include": ["attr", ...]?,               INCLUDE only
 *              "cf": <u64 as decimal string>,           its column family id
 *              "created_us": <int>}, ...]}
 *
 * Unknown members are ignored so later versions can add fields; a different
 * version byte is refused.
 */
#include "engine/tabledef.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TD_MAGIC 'T'
#define TD_VERSION 1

trb_err trb_tabledef_check_name(const char *name, trb_status *st) {
  size_t n = strlen(name);
  if (n < 3 || n > 255)
    return trb_status_set(st, TRB_EINVAL,
                          "1 validation error detected: Value '%s' at 'tableName' failed to "
                          "satisfy constraint: Member must have length between 3 and 255",
                          name);
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '.' || c == '-'))
      return trb_status_set(st, TRB_EINVAL,
                            "1 validation error detected: Value '%s' at 'tableName' failed to "
                            "satisfy constraint: Member must satisfy regular expression "
                            "pattern: [a-zA-Z0-9_.-]+",
                            name);
  }
  return TRB_OK;
}

static int key_type_ok(trb_type t) { return t == TRB_T_S || t == TRB_T_N || t == TRB_T_B; }

trb_err trb_tabledef_check_keyschema(const trb_keyschema *ks, trb_status *st) {
  size_t pl = strlen(ks->pk_name);
  if (pl < 1 || pl > TRB_KEY_NAME_MAX)
    return trb_status_set(st, TRB_EINVAL,
                          "One or more parameter values were invalid: the partition key name "
                          "must be 1 to 255 bytes");
  if (!key_type_ok(ks->pk_type))
    return trb_status_set(st, TRB_EINVAL,
                          "One or more parameter values were invalid: key %s must be of type "
                          "S, N or B",
                          ks->pk_name);
  if (ks->has_sk) {
    size_t sl = strlen(ks->sk_name);
    if (sl < 1 || sl > TRB_KEY_NAME_MAX)
      return trb_status_set(st, TRB_EINVAL,
                            "One or more parameter values were invalid: the sort key name "
                            "must be 1 to 255 bytes");
    if (!key_type_ok(ks->sk_type))
      return trb_status_set(st, TRB_EINVAL,
                            "One or more parameter values were invalid: key %s must be of "
                            "type S, N or B",
                            ks->sk_name);
    if (!strcmp(ks->pk_name, ks->sk_name))
      return trb_status_set(st, TRB_EINVAL,
                            "Invalid KeySchema: Some index key attribute have no definition "
                            "or the partition and sort key have the same name");
  }
  return TRB_OK;
}

void trb_tabledef_copy(trb_tabledef *dst, const trb_tabledef *src) {
  *dst = *src;
  if (dst->ext) json_incref(dst->ext);
  trb_indexset_ref(dst->ix);
}

void trb_tabledef_fini(trb_tabledef *d) {
  if (!d) return;
  json_decref(d->ext);
  d->ext = NULL;
  trb_indexset_unref(d->ix);
  d->ix = NULL;
}

static const char *const proj_names[] = {"ALL", "KEYS_ONLY", "INCLUDE"};

static json_t *key_json(const char *name, trb_type t) {
  return json_pack("{s:s,s:s}", "name", name, "type", trb_type_name(t));
}

trb_err trb_tabledef_encode(const trb_tabledef *d, trb_buf *b) {
  char id[24];
  snprintf(id, sizeof id, "%" PRIu64, d->table_id);
  json_t *o = json_pack("{s:s,s:s,s:I,s:o}", "name", d->name, "id", id, "created_us",
                        (json_int_t)d->created_us, "pk",
                        key_json(d->ks.pk_name, d->ks.pk_type));
  if (!o) return TRB_ENOMEM;
  if (d->ks.has_sk) json_object_set_new(o, "sk", key_json(d->ks.sk_name, d->ks.sk_type));
  if (d->ext) json_object_set(o, "ext", d->ext);
  if (d->ix && d->ix->n) {
    json_t *arr = json_array();
    for (size_t i = 0; i < d->ix->n; i++) {
      const trb_indexdef *x = &d->ix->d[i];
      char cf[24];
      snprintf(cf, sizeof cf, "%" PRIu64, x->cf_id);
      json_t *e = json_pack("{s:s,s:b,s:o,s:s,s:s,s:I}", "name", x->name, "local", x->local, "pk",
                            key_json(x->ks.pk_name, x->ks.pk_type), "proj", proj_names[x->proj],
                            "cf", cf, "created_us", (json_int_t)x->created_us);
      if (!e) {
        json_decref(arr);
        json_decref(o);
        return TRB_ENOMEM;
      }
      if (x->ks.has_sk) json_object_set_new(e, "sk", key_json(x->ks.sk_name, x->ks.sk_type));
      if (x->ninclude) {
        json_t *inc = json_array();
        for (size_t j = 0; j < x->ninclude; j++) json_array_append_new(inc, json_string(x->include[j]));
        json_object_set_new(e, "include", inc);
      }
      json_array_append_new(arr, e);
    }
    json_object_set_new(o, "ix", arr);
  }
  char *txt = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (!txt) return TRB_ENOMEM;
  trb_err rc = trb_buf_put_u8(b, TD_MAGIC);
  if (!rc) rc = trb_buf_put_u8(b, TD_VERSION);
  if (!rc) rc = trb_buf_append(b, txt, strlen(txt));
  free(txt);
  return rc;
}

static int parse_type(const char *s, trb_type *t) {
  if (!strcmp(s, "S")) *t = TRB_T_S;
  else if (!strcmp(s, "N")) *t = TRB_T_N;
  else if (!strcmp(s, "B")) *t = TRB_T_B;
  else return 0;
  return 1;
}

static int parse_key(json_t *k, char *name, trb_type *t) {
  const char *n, *ty;
  if (json_unpack(k, "{s:s,s:s}", "name", &n, "type", &ty)) return 0;
  if (strlen(n) > TRB_KEY_NAME_MAX || !parse_type(ty, t)) return 0;
  strcpy(name, n);
  return 1;
}

trb_err trb_tabledef_decode(const void *p, size_t len, trb_tabledef *d, trb_status *st) {
  const unsigned char *u = p;
  if (len < 2 || u[0] != TD_MAGIC)
    return trb_status_set(st, TRB_ECORRUPT, "table definition: bad magic");
  if (u[1] != TD_VERSION)
    return trb_status_set(st, TRB_EVERSION, "table definition: unknown version %u", u[1]);
  json_error_t je;
  json_t *o = json_loadb((const char *)u + 2, len - 2, 0, &je);
  if (!o) return trb_status_set(st, TRB_ECORRUPT, "table definition: %s", je.text);
  trb_err rc = TRB_ECORRUPT;
  const char *name, *id;
  json_int_t created;
  json_t *pk, *sk;
  memset(d, 0, sizeof *d);
  if (json_unpack(o, "{s:s,s:s,s:I,s:o}", "name", &name, "id", &id, "created_us", &created,
                  "pk", &pk) ||
      strlen(name) > TRB_TABLE_NAME_MAX)
    goto done;
  strcpy(d->name, name);
  d->table_id = strtoull(id, NULL, 10);
  d->created_us = created;
  if (!parse_key(pk, d->ks.pk_name, &d->ks.pk_type)) goto done;
  sk = json_object_get(o, "sk");
  if (sk) {
    if (!parse_key(sk, d->ks.sk_name, &d->ks.sk_type)) goto done;
    d->ks.has_sk = 1;
  }
  json_t *ext = json_object_get(o, "ext");
  if (ext) {
    if (!json_is_object(ext)) goto done;
    d->ext = json_incref(ext);
  }
  json_t *ix = json_object_get(o, "ix");
  if (ix) {
    if (!json_is_array(ix) || json_array_size(ix) > TRB_INDEX_MAX) goto done;
    if (!(d->ix = trb_indexset_new())) {
      rc = TRB_ENOMEM;
      goto done;
    }
    for (size_t i = 0; i < json_array_size(ix); i++) {
      json_t *e = json_array_get(ix, i), *xsk, *inc;
      const char *xn, *proj, *cf;
      int local;
      json_int_t xcreated;
      json_t *xpk;
      trb_indexdef x;
      memset(&x, 0, sizeof x);
      if (json_unpack(e, "{s:s,s:b,s:o,s:s,s:s,s:I}", "name", &xn, "local", &local, "pk", &xpk,
                      "proj", &proj, "cf", &cf, "created_us", &xcreated) ||
          strlen(xn) > TRB_INDEX_NAME_MAX || !parse_key(xpk, x.ks.pk_name, &x.ks.pk_type))
        goto done;
      strcpy(x.name, xn);
      x.local = local;
      x.cf_id = strtoull(cf, NULL, 10);
      x.created_us = xcreated;
      if ((xsk = json_object_get(e, "sk"))) {
        if (!parse_key(xsk, x.ks.sk_name, &x.ks.sk_type)) goto done;
        x.ks.has_sk = 1;
      }
      int pi = -1;
      for (int k = 0; k < 3; k++)
        if (!strcmp(proj, proj_names[k])) pi = k;
      if (pi < 0) goto done;
      x.proj = (trb_proj)pi;
      const char *names[TRB_INDEX_INCLUDE_MAX];
      if ((inc = json_object_get(e, "include"))) {
        if (!json_is_array(inc) || json_array_size(inc) > TRB_INDEX_INCLUDE_MAX) goto done;
        for (size_t j = 0; j < json_array_size(inc); j++)
          if (!(names[j] = json_string_value(json_array_get(inc, j)))) goto done;
        x.include = (char **)names;
        x.ninclude = json_array_size(inc);
      }
      if (trb_indexset_add(d->ix, &x)) {
        rc = TRB_ENOMEM;
        goto done;
      }
    }
  }
  rc = TRB_OK;
done:
  json_decref(o);
  if (rc) {
    trb_tabledef_fini(d);
    trb_status_set(st, rc, rc == TRB_ENOMEM ? "out of memory" : "table definition: malformed");
  }
  return rc;
}
