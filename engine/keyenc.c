/*
 * keyenc.c -- key validation and the order-preserving store-key encoding
 * (see keyenc.h for where store keys are used).
 *
 * ---- Store key ----
 *
 *   offset 0, 4 bytes: hash32, big-endian: the top 32 bits of
 *                      XXH3_64bits(ordenc(pk)) (seed 0)
 *   offset 4:          ordenc(pk)
 *   then, if the table has a sort key: ordenc(sk)
 *
 * No type tags: the key types are fixed by the table's schema, which the
 * decoder is given. A valid store key is consumed exactly (no trailing
 * bytes) and its hash matches its pk.
 *
 * ---- ordenc(v) ----
 *
 *   S, B: the bytes with every 0x00 written as 0x00 0xFF, then the
 *         terminator 0x00 0x00. Order: bytes other than 0x00 stand for
 *         themselves; a 0x00 in the data (0x00 0xFF) sorts above the end of
 *         a shorter value (0x00 0x00) and below any nonzero byte, so memcmp
 *         on encodings equals unsigned bytewise comparison of the values,
 *         with a proper prefix first. A decoder stops at the first 0x00
 *         0x00; 0x00 followed by anything else than 0x00/0xFF is corrupt.
 *   N:    trb_dec_encode_ordered (engine/decimal.c): numeric order,
 *         self-delimiting.
 *
 * Since every ordenc is self-delimiting and no encoding is a proper prefix
 * of another, store keys of one partition (same hash32 | ordenc(pk)) sort
 * by sort key, and the partition prefix is a true prefix of all of them.
 */
#include "engine/keyenc.h"

#include <string.h>
#include <xxhash.h>

#define MSG_MISMATCH "The provided key element does not match the schema"

/* ------------------------------------------------------------ validation */

/* Empty and size checks shared by item and key validation. */
static trb_err check_value(const char *name, const trb_av *v, int is_sk, trb_status *st) {
  if (v->type == TRB_T_N) return TRB_OK; /* numbers: only the number rules */
  if (v->u.s.len == 0)
    return trb_status_set(st, TRB_EINVAL,
                          "One or more parameter values are not valid. The AttributeValue for a "
                          "key attribute cannot contain an empty string value. Key: %s",
                          name);
  if (!is_sk && v->u.s.len > TRB_MAX_PK_SIZE)
    return trb_status_set(st, TRB_EINVAL,
                          "One or more parameter values were invalid: Size of hashkey has "
                          "exceeded the maximum size limit of2048 bytes");
  if (is_sk && v->u.s.len > TRB_MAX_SK_SIZE)
    return trb_status_set(st, TRB_EINVAL,
                          "One or more parameter values were invalid: Aggregated size of all "
                          "range keys has exceeded the size limit of 1024 bytes");
  return TRB_OK;
}

static trb_err check_item_attr(const trb_av *item, const char *name, trb_type t, int is_sk,
                               trb_status *st) {
  const trb_av *v = trb_av_m_get(item, name, strlen(name));
  if (!v)
    return trb_status_set(st, TRB_EINVAL,
                          "One or more parameter values were invalid: Missing the key %s in the item",
                          name);
  if (v->type != t)
    return trb_status_set(st, TRB_EINVAL,
                          "One or more parameter values were invalid: Type mismatch for key %s "
                          "expected: %s actual: %s",
                          name, trb_type_name(t), trb_type_name(v->type));
  return check_value(name, v, is_sk, st);
}

trb_err trb_key_check_item(const trb_keyschema *ks, const trb_av *item, trb_status *st) {
  if (!item || item->type != TRB_T_M) return trb_status_set(st, TRB_EINVAL, "item is not a map");
  trb_err rc = check_item_attr(item, ks->pk_name, ks->pk_type, 0, st);
  if (rc == TRB_OK && ks->has_sk) rc = check_item_attr(item, ks->sk_name, ks->sk_type, 1, st);
  return rc;
}

trb_err trb_key_check_key(const trb_keyschema *ks, const trb_av *key, trb_status *st) {
  if (!key || key->type != TRB_T_M) return trb_status_set(st, TRB_EINVAL, MSG_MISMATCH);
  size_t want = ks->has_sk ? 2 : 1;
  const trb_av *pk = trb_av_m_get(key, ks->pk_name, strlen(ks->pk_name));
  const trb_av *sk = ks->has_sk ? trb_av_m_get(key, ks->sk_name, strlen(ks->sk_name)) : NULL;
  if (key->u.m.n != want || !pk || pk->type != ks->pk_type ||
      (ks->has_sk && (!sk || sk->type != ks->sk_type)))
    return trb_status_set(st, TRB_EINVAL, MSG_MISMATCH);
  trb_err rc = check_value(ks->pk_name, pk, 0, st);
  if (rc == TRB_OK && sk) rc = check_value(ks->sk_name, sk, 1, st);
  return rc;
}

trb_av *trb_key_from_item(const trb_keyschema *ks, const trb_av *item) {
  trb_av *m = trb_av_new_m(), *v = NULL;
  if (!m) return NULL;
  for (int i = 0; i < 1 + (ks->has_sk != 0); i++) {
    const char *name = i == 0 ? ks->pk_name : ks->sk_name;
    const trb_av *src = trb_av_m_get(item, name, strlen(name));
    if (!src) goto fail;
    v = trb_av_copy(src);
    if (!v || trb_av_m_set(m, name, strlen(name), v) != TRB_OK) goto fail;
    v = NULL;
  }
  return m;
fail:
  trb_av_destroy(v);
  trb_av_destroy(m);
  return NULL;
}

/* -------------------------------------------------------------- encoding */

static trb_err enc_bytes(const unsigned char *p, size_t n, trb_buf *b) {
  /* Worst case doubles the size; reserve once, then copy runs. */
  trb_err rc = trb_buf_reserve(b, n + 2);
  size_t i = 0;
  while (rc == TRB_OK && i < n) {
    const unsigned char *z = memchr(p + i, 0, n - i);
    size_t run = z ? (size_t)(z - (p + i)) : n - i;
    rc = trb_buf_append(b, p + i, run);
    i += run;
    if (rc == TRB_OK && z) {
      static const unsigned char esc[2] = {0x00, 0xFF};
      rc = trb_buf_append(b, esc, 2);
      i++;
    }
  }
  if (rc == TRB_OK) {
    static const unsigned char term[2] = {0x00, 0x00};
    rc = trb_buf_append(b, term, 2);
  }
  return rc;
}

trb_err trb_key_encode_value(const trb_av *v, trb_buf *b) {
  if (!v) return TRB_EINVAL;
  size_t start = b->len;
  trb_err rc;
  switch (v->type) {
  case TRB_T_S:
  case TRB_T_B:
    rc = enc_bytes((const unsigned char *)v->u.s.p, v->u.s.len, b);
    break;
  case TRB_T_N:
    rc = trb_dec_encode_ordered(&v->u.n, b);
    break;
  default:
    return TRB_EINVAL;
  }
  if (rc != TRB_OK) b->len = start;
  return rc;
}

static uint32_t hash_bytes(const unsigned char *p, size_t n) {
  return (uint32_t)(XXH3_64bits(p, n) >> 32);
}

/* Appends hash32 | ordenc(pk), restoring b on failure. */
trb_err trb_key_encode_partition(const trb_av *pk, trb_buf *b) {
  size_t start = b->len;
  trb_err rc = trb_buf_put_u32(b, 0); /* placeholder, patched below */
  if (rc == TRB_OK) rc = trb_key_encode_value(pk, b);
  if (rc != TRB_OK) {
    b->len = start;
    return rc;
  }
  uint32_t h = hash_bytes(b->p + start + 4, b->len - start - 4);
  unsigned char *o = b->p + start;
  o[0] = (unsigned char)(h >> 24);
  o[1] = (unsigned char)(h >> 16);
  o[2] = (unsigned char)(h >> 8);
  o[3] = (unsigned char)h;
  return TRB_OK;
}

uint32_t trb_key_hash(const trb_av *pk) {
  trb_buf b;
  uint32_t h = 0;
  trb_buf_init(&b, 0);
  if (trb_key_encode_value(pk, &b) == TRB_OK) h = hash_bytes(b.p, b.len);
  trb_buf_fini(&b);
  return h; /* 0 for a non-key value or on out-of-memory */
}

trb_err trb_key_encode(const trb_keyschema *ks, const trb_av *item_or_key, trb_buf *b) {
  if (!item_or_key || item_or_key->type != TRB_T_M) return TRB_EINVAL;
  const trb_av *pk = trb_av_m_get(item_or_key, ks->pk_name, strlen(ks->pk_name));
  const trb_av *sk = NULL;
  if (!pk || pk->type != ks->pk_type) return TRB_EINVAL;
  if (ks->has_sk) {
    sk = trb_av_m_get(item_or_key, ks->sk_name, strlen(ks->sk_name));
    if (!sk || sk->type != ks->sk_type) return TRB_EINVAL;
  }
  size_t start = b->len;
  trb_err rc = trb_key_encode_partition(pk, b);
  if (rc == TRB_OK && sk) rc = trb_key_encode_value(sk, b);
  if (rc != TRB_OK) b->len = start;
  return rc;
}

/* -------------------------------------------------------------- decoding */

/* Decodes one ordenc of type t from r into a new value (*out). */
static trb_err dec_value(trb_rd *r, trb_type t, trb_av **out) {
  *out = NULL;
  if (t == TRB_T_N) {
    trb_dec d;
    if (trb_dec_decode_ordered(r, &d)) return TRB_ECORRUPT;
    *out = trb_av_new_n(&d);
    return *out ? TRB_OK : TRB_ENOMEM;
  }
  if (t != TRB_T_S && t != TRB_T_B) return TRB_EINVAL;
  trb_buf tmp;
  trb_err rc = TRB_OK;
  trb_buf_init(&tmp, 0);
  for (;;) {
    const unsigned char *rest = r->p + r->off;
    size_t left = r->len - r->off;
    const unsigned char *z = left >= 2 ? memchr(rest, 0, left) : NULL;
    if (!z || (size_t)(z - rest) + 2 > left) {
      rc = TRB_ECORRUPT;
      goto done;
    }
    size_t run = (size_t)(z - rest);
    rc = trb_buf_append(&tmp, rest, run);
    if (rc) goto done;
    unsigned char next = z[1];
    r->off += run + 2;
    if (next == 0x00) break;
    if (next != 0xFF) {
      rc = TRB_ECORRUPT;
      goto done;
    }
    rc = trb_buf_put_u8(&tmp, 0);
    if (rc) goto done;
  }
  *out = t == TRB_T_S ? trb_av_new_s((const char *)tmp.p, tmp.len) : trb_av_new_b(tmp.p, tmp.len);
  if (!*out) rc = TRB_ENOMEM;
done:
  if (rc != TRB_OK) r->err = 1;
  trb_buf_fini(&tmp);
  return rc;
}

trb_err trb_key_decode(const trb_keyschema *ks, const void *p, size_t len, trb_av **out) {
  trb_rd r;
  trb_av *m = NULL, *v = NULL;
  trb_err rc;
  uint8_t hb[4];
  trb_rd_init(&r, p, len);
  *out = NULL;
  for (int i = 0; i < 4; i++)
    if (trb_rd_u8(&r, &hb[i])) return TRB_ECORRUPT;
  uint32_t h = (uint32_t)hb[0] << 24 | (uint32_t)hb[1] << 16 | (uint32_t)hb[2] << 8 | hb[3];
  m = trb_av_new_m();
  if (!m) return TRB_ENOMEM;
  size_t pk_start = r.off;
  rc = dec_value(&r, ks->pk_type, &v);
  if (rc) goto done;
  if (hash_bytes(r.p + pk_start, r.off - pk_start) != h) {
    rc = TRB_ECORRUPT;
    goto done;
  }
  rc = trb_av_m_set(m, ks->pk_name, strlen(ks->pk_name), v);
  if (rc) goto done;
  v = NULL;
  if (ks->has_sk) {
    rc = dec_value(&r, ks->sk_type, &v);
    if (rc) goto done;
    rc = trb_av_m_set(m, ks->sk_name, strlen(ks->sk_name), v);
    if (rc) goto done;
    v = NULL;
  }
  if (r.off != r.len) {
    rc = TRB_ECORRUPT;
    goto done;
  }
  *out = m;
  m = NULL;
done:
  trb_av_destroy(v);
  trb_av_destroy(m);
  return rc;
}
