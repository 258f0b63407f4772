/*
 * item_codec.c -- the compact binary encoding of attribute values and items,
 * used by the WAL (old and new images) and by the store (item bytes).
 *
 * Byte layout (version 1). All multi-byte integers are unsigned LEB128
 * varints (util/buf.h: 7 bits per byte, low group first, high bit = more),
 * written minimally; a decoder rejects overlong forms.
 *
 *   encoding := header value                   -- one top-level value
 *   header   := u8 0xA1                        -- high nibble 0xA: magic,
 *                                                 low nibble: version (1)
 *   value    := tag:u8 payload                 -- tag = trb_type number
 *
 *   tag  type  payload
 *    1   S     len:varint  bytes[len]          (UTF-8, not re-checked)
 *    2   N     trb_dec_encode bytes            (self-delimiting, decimal.c)
 *    3   B     len:varint  bytes[len]
 *    4   BOOL  u8 0 | 1
 *    5   NULL  (none)
 *    6   M     count:varint  { nlen:varint name[nlen] value } * count
 *    7   L     count:varint  value * count
 *    8   SS    count:varint  { len:varint bytes[len] } * count
 *    9   NS    count:varint  { trb_dec_encode bytes } * count
 *   10   BS    count:varint  { len:varint bytes[len] } * count
 *
 * Set elements carry no tag (their type follows from the set's). Map
 * entries and set elements keep the tree's order, so decode(encode(v))
 * has the same entry order as v.
 *
 * Validity rules a decoder enforces (TRB_ECORRUPT otherwise):
 *   - the header's magic nibble (TRB_EVERSION for a known magic with an
 *     unknown version: a reader refuses formats newer than itself);
 *   - every length and count is checked against the bytes that remain
 *     before anything is allocated for it (a count needs at least one byte
 *     per element, two per map entry);
 *   - known tags only; BOOL is 0 or 1; numbers are canonical (decimal.c);
 *   - M/L nesting: the top-level value is depth 0 and each container adds
 *     one, so an item (itself an M) may hold attributes nested the full
 *     TRB_MAX_DEPTH levels; a container deeper than TRB_MAX_DEPTH is
 *     rejected (this also bounds the decoder's recursion);
 *   - the value ends exactly at the end of the input (no trailing bytes).
 * Not checked, for speed: duplicate map names and duplicate set elements
 * (the encoder never writes them for validated values; the WAL's CRC
 * guards the bytes), and UTF-8 validity of S and names.
 *
 * The encoder refuses (TRB_EINVAL) what a decoder would reject: nesting
 * deeper than the rule above, and set elements of the wrong type.
 */
#include "engine/value.h"
#include "engine/value_int.h"

#include <stdlib.h>
#include <string.h>

#define AVC_MAGIC 0xA0
#define AVC_VERSION 1

/* ---- encoder ---- */

static inline size_t varint_put(unsigned char *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (unsigned char)v;
  return n;
}

/* Optional tag (tag >= 0), a varint, then len bytes: one reserve. */
static trb_err put_tag_bytes(trb_buf *b, int tag, uint64_t n, const void *p, size_t len) {
  if (len > SIZE_MAX - 11) return TRB_ELIMIT;
  size_t need = 11 + len;
  /* Skip the call when the room is there (and within the buffer's cap). */
  if (need > b->cap - b->len || need > b->max - b->len) {
    trb_err rc = trb_buf_reserve(b, need);
    if (rc) return rc;
  }
  unsigned char *w = b->p + b->len;
  if (tag >= 0) *w++ = (unsigned char)tag;
  w += varint_put(w, n);
  if (len) memcpy(w, p, len);
  w += len;
  b->len = (size_t)(w - b->p);
  return TRB_OK;
}

static trb_err enc_value(const trb_av *v, trb_buf *b, int depth) {
  trb_err rc = TRB_OK;
  switch (v->type) {
    case TRB_T_S:
    case TRB_T_B:
      return put_tag_bytes(b, v->type, v->u.s.len, v->u.s.p, v->u.s.len);
    case TRB_T_N:
      if ((rc = trb_buf_put_u8(b, TRB_T_N))) return rc;
      return trb_dec_encode(&v->u.n, b);
    case TRB_T_BOOL: {
      unsigned char t[2] = {TRB_T_BOOL, v->u.b ? 1 : 0};
      return trb_buf_append(b, t, 2);
    }
    case TRB_T_NULL:
      return trb_buf_put_u8(b, TRB_T_NULL);
    case TRB_T_M:
      if (depth > TRB_MAX_DEPTH) return TRB_EINVAL;
      if ((rc = put_tag_bytes(b, TRB_T_M, v->u.m.n, NULL, 0))) return rc;
      for (size_t i = 0; i < v->u.m.n; i++) {
        const trb_attr *a = &v->u.m.e[i];
        if ((rc = put_tag_bytes(b, -1, a->name_len, a->name, a->name_len))) return rc;
        if ((rc = enc_value(a->val, b, depth + 1))) return rc;
      }
      return TRB_OK;
    case TRB_T_L:
      if (depth > TRB_MAX_DEPTH) return TRB_EINVAL;
      if ((rc = put_tag_bytes(b, TRB_T_L, v->u.l.n, NULL, 0))) return rc;
      for (size_t i = 0; i < v->u.l.n; i++)
        if ((rc = enc_value(v->u.l.v[i], b, depth + 1))) return rc;
      return TRB_OK;
    case TRB_T_SS:
    case TRB_T_BS: {
      trb_type et = v->type == TRB_T_SS ? TRB_T_S : TRB_T_B;
      if ((rc = put_tag_bytes(b, v->type, v->u.l.n, NULL, 0))) return rc;
      for (size_t i = 0; i < v->u.l.n; i++) {
        const trb_av *e = v->u.l.v[i];
        if (e->type != et) return TRB_EINVAL;
        if ((rc = put_tag_bytes(b, -1, e->u.s.len, e->u.s.p, e->u.s.len))) return rc;
      }
      return TRB_OK;
    }
    case TRB_T_NS:
      if ((rc = put_tag_bytes(b, TRB_T_NS, v->u.l.n, NULL, 0))) return rc;
      for (size_t i = 0; i < v->u.l.n; i++) {
        if (v->u.l.v[i]->type != TRB_T_N) return TRB_EINVAL;
        if ((rc = trb_dec_encode(&v->u.l.v[i]->u.n, b))) return rc;
      }
      return TRB_OK;
  }
  return TRB_EINVAL;
}

trb_err trb_av_encode(const trb_av *v, trb_buf *b) {
  if (!v || !b) return TRB_EINVAL;
  size_t mark = b->len;
  trb_err rc = trb_buf_put_u8(b, AVC_MAGIC | AVC_VERSION);
  if (!rc) rc = enc_value(v, b, 0);
  if (rc) b->len = mark; /* leave nothing half-written */
  return rc;
}

/* ---- decoder ---- */

/* Minimal LEB128 into *v; nonzero on truncation, overlong form or a value
 * that does not fit 64 bits. */
static inline int rd_varint(trb_rd *r, uint64_t *v) {
  const unsigned char *p = r->p + r->off;
  size_t left = r->len - r->off;
  if (left && p[0] < 0x80) { /* one byte: the common case */
    *v = p[0];
    r->off++;
    return 0;
  }
  uint64_t x = 0;
  for (size_t i = 0; i < 10; i++) {
    if (i >= left) return 1;
    uint64_t c = p[i];
    if (i == 9 && c > 1) return 1; /* bits beyond 64 */
    x |= (c & 0x7f) << (7 * i);
    if (!(c & 0x80)) {
      if (c == 0) return 1; /* overlong: a final zero group after the first */
      *v = x;
      r->off += i + 1;
      return 0;
    }
  }
  return 1;
}

static inline size_t rd_left(const trb_rd *r) { return r->len - r->off; }

/* A varint that must not exceed what remains divided by `per` (the fewest
 * bytes each counted thing occupies). */
static inline int rd_count(trb_rd *r, size_t per, size_t *out) {
  uint64_t n;
  if (rd_varint(r, &n)) return 1;
  if (n > rd_left(r) / per) return 1;
  *out = (size_t)n;
  return 0;
}

static trb_err dec_value(trb_rd *r, int depth, trb_av **out);

static trb_err dec_bytes(trb_rd *r, trb_type t, trb_av **out) {
  size_t len;
  if (rd_count(r, 1, &len)) return TRB_ECORRUPT;
  const char *p = (const char *)r->p + r->off;
  r->off += len;
  *out = t == TRB_T_S ? trb_av_new_s(p, len) : trb_av_new_b(p, len);
  return *out ? TRB_OK : TRB_ENOMEM;
}

static trb_err dec_number(trb_rd *r, trb_av **out) {
  trb_dec d;
  if (trb_dec_decode(r, &d)) return TRB_ECORRUPT;
  *out = trb_av_new_n(&d);
  return *out ? TRB_OK : TRB_ENOMEM;
}

static trb_err dec_map(trb_rd *r, int depth, trb_av **out) {
  trb_err rc = TRB_OK;
  size_t n;
  if (rd_count(r, 2, &n)) return TRB_ECORRUPT;
  trb_av *m = trb__av_alloc_container(TRB_T_M, n);
  if (!m) return TRB_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    size_t nlen;
    if (rd_count(r, 1, &nlen)) {
      rc = TRB_ECORRUPT;
      goto fail;
    }
    char *name = malloc(nlen + 1);
    if (!name) {
      rc = TRB_ENOMEM;
      goto fail;
    }
    memcpy(name, r->p + r->off, nlen);
    name[nlen] = '\0';
    r->off += nlen;
    trb_av *cv = NULL;
    if ((rc = dec_value(r, depth + 1, &cv))) {
      free(name);
      goto fail;
    }
    trb_attr *a = &m->u.m.e[m->u.m.n++];
    a->name = name;
    a->name_len = nlen;
    a->val = cv;
  }
  *out = m;
  return TRB_OK;
fail:
  trb_av_destroy(m);
  return rc;
}

static trb_err dec_list(trb_rd *r, trb_type t, int depth, trb_av **out) {
  trb_err rc = TRB_OK;
  size_t n;
  if (rd_count(r, 1, &n)) return TRB_ECORRUPT;
  trb_av *l = trb__av_alloc_container(t, n);
  if (!l) return TRB_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    trb_av *e = NULL;
    switch (t) {
      case TRB_T_L: rc = dec_value(r, depth + 1, &e); break;
      case TRB_T_SS: rc = dec_bytes(r, TRB_T_S, &e); break;
      case TRB_T_BS: rc = dec_bytes(r, TRB_T_B, &e); break;
      default: rc = dec_number(r, &e); break;
    }
    if (rc) goto fail;
    l->u.l.v[l->u.l.n++] = e;
  }
  *out = l;
  return TRB_OK;
fail:
  trb_av_destroy(l);
  return rc;
}

/* `depth` is the number of containers above this value. */
static trb_err dec_value(trb_rd *r, int depth, trb_av **out) {
  if (r->off >= r->len) return TRB_ECORRUPT;
  unsigned tag = r->p[r->off++];
  switch (tag) {
    case TRB_T_S:
    case TRB_T_B:
      return dec_bytes(r, (trb_type)tag, out);
    case TRB_T_N:
      return dec_number(r, out);
    case TRB_T_BOOL: {
      if (r->off >= r->len || r->p[r->off] > 1) return TRB_ECORRUPT;
      int b = r->p[r->off++];
      *out = trb_av_new_bool(b);
      return *out ? TRB_OK : TRB_ENOMEM;
    }
    case TRB_T_NULL:
      *out = trb_av_new_null();
      return *out ? TRB_OK : TRB_ENOMEM;
    case TRB_T_M:
      if (depth > TRB_MAX_DEPTH) return TRB_ECORRUPT;
      return dec_map(r, depth, out);
    case TRB_T_L:
      if (depth > TRB_MAX_DEPTH) return TRB_ECORRUPT;
      return dec_list(r, TRB_T_L, depth, out);
    case TRB_T_SS:
    case TRB_T_NS:
    case TRB_T_BS:
      return dec_list(r, (trb_type)tag, depth, out);
    default:
      return TRB_ECORRUPT;
  }
}

trb_err trb_av_decode(const void *p, size_t len, trb_av **out) {
  trb_rd r;
  trb_av *v = NULL;
  if (!out || (!p && len)) return TRB_EINVAL;
  if (len < 1) return TRB_ECORRUPT;
  trb_rd_init(&r, p, len);
  unsigned char hdr = r.p[r.off++];
  if ((hdr & 0xF0) != AVC_MAGIC) return TRB_ECORRUPT;
  if ((hdr & 0x0F) != AVC_VERSION) return TRB_EVERSION;
  trb_err rc = dec_value(&r, 0, &v);
  if (rc) return rc;
  if (r.err || r.off != r.len) {
    trb_av_destroy(v);
    return TRB_ECORRUPT;
  }
  *out = v;
  return TRB_OK;
}
