/*
 * index.c -- index definition sets and index entries (layout in index.h).
 */
#include "engine/index.h"

#include <stdlib.h>
#include <string.h>

trb_indexset *trb_indexset_new(void) {
  trb_indexset *s = calloc(1, sizeof *s);
  if (s) s->refs = 1;
  return s;
}

static void def_free(trb_indexdef *d) {
  for (size_t i = 0; i < d->ninclude; i++) free(d->include[i]);
  free(d->include);
  d->include = NULL;
  d->ninclude = 0;
}

trb_err trb_indexset_add(trb_indexset *s, const trb_indexdef *def) {
  if (s->n >= TRB_INDEX_MAX) return TRB_ELIMIT;
  trb_indexdef d = *def;
  d.include = NULL;
  d.ninclude = 0;
  if (def->ninclude) {
    d.include = calloc(def->ninclude, sizeof *d.include);
    if (!d.include) return TRB_ENOMEM;
    for (size_t i = 0; i < def->ninclude; i++) {
      d.include[i] = strdup(def->include[i]);
      if (!d.include[i]) {
        d.ninclude = i;
        def_free(&d);
        return TRB_ENOMEM;
      }
    }
    d.ninclude = def->ninclude;
  }
  s->d[s->n++] = d;
  return TRB_OK;
}

trb_indexset *trb_indexset_dup(const trb_indexset *s) {
  trb_indexset *n = trb_indexset_new();
  if (!n || !s) return n;
  for (size_t i = 0; i < s->n; i++)
    if (trb_indexset_add(n, &s->d[i])) {
      trb_indexset_unref(n);
      return NULL;
    }
  return n;
}

void trb_indexset_remove(trb_indexset *s, size_t i) {
  if (i >= s->n) return;
  def_free(&s->d[i]);
  memmove(&s->d[i], &s->d[i + 1], (s->n - i - 1) * sizeof s->d[0]);
  s->n--;
}

trb_indexset *trb_indexset_ref(trb_indexset *s) {
  if (s) __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
  return s;
}

void trb_indexset_unref(trb_indexset *s) {
  if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  for (size_t i = 0; i < s->n; i++) def_free(&s->d[i]);
  free(s);
}

int trb_indexset_find(const trb_indexset *s, const char *name) {
  if (!s) return -1;
  for (size_t i = 0; i < s->n; i++)
    if (!strcmp(s->d[i].name, name)) return (int)i;
  return -1;
}

/* ---- entries ---- */

/* A value the index can hold as a key: the right type, and an S or B not
 * empty nor over the key size limit (items written before an index existed
 * may have such values; the index leaves them out, as DynamoDB's backfill
 * does). */
static int attr_ok(const trb_av *item, const char *name, trb_type t, size_t max) {
  const trb_av *v = trb_av_m_get(item, name, strlen(name));
  if (!v || v->type != t) return 0;
  if (t == TRB_T_S || t == TRB_T_B) return v->u.s.len > 0 && v->u.s.len <= max;
  return 1;
}

int trb_index_covers(const trb_indexdef *ix, const trb_av *item) {
  if (!item || item->type != TRB_T_M) return 0;
  if (!attr_ok(item, ix->ks.pk_name, ix->ks.pk_type, TRB_MAX_PK_SIZE)) return 0;
  return !ix->ks.has_sk || attr_ok(item, ix->ks.sk_name, ix->ks.sk_type, TRB_MAX_SK_SIZE);
}

static trb_err check_attr(const trb_indexdef *ix, const trb_av *item, const char *name,
                          trb_type want, int is_sk, trb_status *st) {
  const trb_av *v = trb_av_m_get(item, name, strlen(name));
  if (!v) return TRB_OK; /* sparse: no entry */
  if (v->type != want)
    return trb_status_set(st, TRB_EINVAL,
                          "One or more parameter values were invalid: Type mismatch for Index "
                          "Key %s Expected: %s Actual: %s IndexName: %s",
                          name, trb_type_name(want), trb_type_name(v->type), ix->name);
  if ((v->type == TRB_T_S || v->type == TRB_T_B) && v->u.s.len == 0)
    return trb_status_set(st, TRB_EINVAL,
                          "One or more parameter values are not valid. A value specified for a "
                          "secondary index key is not supported. The AttributeValue for a key "
                          "attribute cannot contain an empty %s value. IndexName: %s, IndexKey: "
                          "%s",
                          v->type == TRB_T_S ? "string" : "binary", ix->name, name);
  if ((v->type == TRB_T_S || v->type == TRB_T_B) &&
      v->u.s.len > (is_sk ? TRB_MAX_SK_SIZE : TRB_MAX_PK_SIZE))
    return trb_status_set(st, TRB_EINVAL,
                          "One or more parameter values were invalid: Size of %s has exceeded "
                          "the maximum size limit of %d bytes for IndexName: %s",
                          is_sk ? "rangekey" : "hashkey", is_sk ? TRB_MAX_SK_SIZE : TRB_MAX_PK_SIZE,
                          ix->name);
  return TRB_OK;
}

trb_err trb_index_check_item(const trb_indexset *s, const trb_av *item, trb_status *st) {
  if (!s || !item || item->type != TRB_T_M) return TRB_OK;
  for (size_t i = 0; i < s->n; i++) {
    const trb_indexdef *ix = &s->d[i];
    trb_err rc = check_attr(ix, item, ix->ks.pk_name, ix->ks.pk_type, 0, st);
    if (!rc && ix->ks.has_sk) rc = check_attr(ix, item, ix->ks.sk_name, ix->ks.sk_type, 1, st);
    if (rc) return rc;
  }
  return TRB_OK;
}

trb_err trb_index_entry_key(const trb_indexdef *ix, const trb_keyschema *table_ks,
                            const trb_av *item, trb_buf *b) {
  trb_err rc = trb_key_encode(&ix->ks, item, b);
  const trb_av *pk = trb_av_m_get(item, table_ks->pk_name, strlen(table_ks->pk_name));
  if (!rc) rc = pk ? trb_key_encode_value(pk, b) : TRB_EINVAL;
  if (!rc && table_ks->has_sk) {
    const trb_av *sk = trb_av_m_get(item, table_ks->sk_name, strlen(table_ks->sk_name));
    rc = sk ? trb_key_encode_value(sk, b) : TRB_EINVAL;
  }
  return rc;
}

static trb_err copy_attr(trb_av *dst, const trb_av *src, const char *name) {
  size_t nl = strlen(name);
  if (trb_av_m_get(dst, name, nl)) return TRB_OK;
  const trb_av *v = trb_av_m_get(src, name, nl);
  if (!v) return TRB_OK;
  trb_av *c = trb_av_copy(v);
  if (!c) return TRB_ENOMEM;
  trb_err rc = trb_av_m_set(dst, name, nl, c);
  if (rc) trb_av_destroy(c);
  return rc;
}

static trb_err copy_keys(trb_av *dst, const trb_av *src, const trb_keyschema *ks) {
  trb_err rc = copy_attr(dst, src, ks->pk_name);
  if (!rc && ks->has_sk) rc = copy_attr(dst, src, ks->sk_name);
  return rc;
}

trb_av *trb_index_project(const trb_indexdef *ix, const trb_keyschema *table_ks,
                          const trb_av *item) {
  if (ix->proj == TRB_PROJ_ALL) return trb_av_copy(item);
  trb_av *m = trb_av_new_m();
  if (!m) return NULL;
  /* In the item's own attribute order, so equal items project equally. */
  for (size_t i = 0; i < item->u.m.n; i++) {
    const char *name = item->u.m.e[i].name;
    int want = !strcmp(name, table_ks->pk_name) ||
               (table_ks->has_sk && !strcmp(name, table_ks->sk_name)) ||
               !strcmp(name, ix->ks.pk_name) || (ix->ks.has_sk && !strcmp(name, ix->ks.sk_name));
    for (size_t j = 0; !want && j < ix->ninclude; j++) want = !strcmp(name, ix->include[j]);
    if (want && copy_attr(m, item, name)) {
      trb_av_destroy(m);
      return NULL;
    }
  }
  return m;
}

trb_av *trb_index_last_key(const trb_indexdef *ix, const trb_keyschema *table_ks,
                           const trb_av *item) {
  trb_av *m = trb_av_new_m();
  if (!m) return NULL;
  if (copy_keys(m, item, &ix->ks) || copy_keys(m, item, table_ks)) {
    trb_av_destroy(m);
    return NULL;
  }
  return m;
}

trb_err trb_index_check_start_key(const trb_indexdef *ix, const trb_keyschema *table_ks,
                                  const trb_av *key, trb_status *st) {
  if (!key || key->type != TRB_T_M)
    return trb_status_set(st, TRB_EINVAL, "The provided starting key is invalid");
  size_t want = 0;
  const char *names[4];
  trb_type types[4];
  const trb_keyschema *kss[2] = {&ix->ks, table_ks};
  for (int k = 0; k < 2; k++) {
    const trb_keyschema *ks = kss[k];
    for (int j = 0; j < 1 + (ks->has_sk != 0); j++) {
      const char *n = j ? ks->sk_name : ks->pk_name;
      int dup = 0;
      for (size_t i = 0; i < want; i++) dup |= !strcmp(names[i], n);
      if (dup) continue;
      names[want] = n;
      types[want++] = j ? ks->sk_type : ks->pk_type;
    }
  }
  if (key->u.m.n != want)
    return trb_status_set(st, TRB_EINVAL,
                          "The provided starting key is invalid: Exclusive Start Key must have "
                          "same size as table's key schema");
  for (size_t i = 0; i < want; i++) {
    const trb_av *v = trb_av_m_get(key, names[i], strlen(names[i]));
    if (!v || v->type != types[i] ||
        ((v->type == TRB_T_S || v->type == TRB_T_B) && v->u.s.len == 0))
      return trb_status_set(st, TRB_EINVAL,
                            "The provided starting key is invalid: The provided key element "
                            "does not match the schema");
  }
  return TRB_OK;
}
