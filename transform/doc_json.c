/*
 * doc_json.c -- items as plain JSON documents (see doc_json.h).
 *
 * Strings are escaped as RFC 8259 asks (", \ and control characters;
 * everything else, UTF-8 included, is copied), so the output is valid
 * JSON for any S value the engine accepted (it holds valid UTF-8).
 */
#include "transform/doc_json.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Whether any of the 8 bytes of w is below 0x20, '"' or '\\' (the bytes
 * JSON escapes): the "has a zero byte" and "has a byte less than n" tricks,
 * exact as to whether any byte matches. */
static inline int esc8(uint64_t w) {
  const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
  uint64_t lo = (w - ones * 0x20) & ~w & highs;
  uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
  q = (q - ones) & ~q & highs;
  b = (b - ones) & ~b & highs;
  return (lo | q | b) != 0;
}

trb_err trb_json_str_append(const char *p, size_t n, trb_buf *out) {
  static const char hex[] = "0123456789ABCDEF"; /* jansson writes \u001F */
  trb_err rc = trb_buf_reserve(out, n + 2);
  if (rc) return rc;
  out->p[out->len++] = '"';
  size_t i = 0, start = 0; /* p[start..i) is copied as it is, in one append */
  while (i < n) {
    if (n - i >= 8) { /* most text needs no escape: 8 bytes at a time */
      uint64_t w;
      memcpy(&w, p + i, 8);
      if (!esc8(w)) {
        i += 8;
        continue;
      }
    }
    unsigned char c = (unsigned char)p[i];
    if (c >= 0x20 && c != '"' && c != '\\') {
      i++;
      continue;
    }
    if (i > start && (rc = trb_buf_append(out, p + start, i - start))) return rc;
    char esc[6] = {'\\', 0};
    size_t el = 2;
    switch (c) {
    case '"': esc[1] = '"'; break;
    case '\\': esc[1] = '\\'; break;
    case '\n': esc[1] = 'n'; break;
    case '\r': esc[1] = 'r'; break;
    case '\t': esc[1] = 't'; break;
    case '\b': esc[1] = 'b'; break;
    case '\f': esc[1] = 'f'; break;
    default:
      esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
      el = 6;
    }
    if ((rc = trb_buf_append(out, esc, el))) return rc;
    start = ++i;
  }
  if (n > start && (rc = trb_buf_append(out, p + start, n - start))) return rc;
  return trb_buf_append(out, "\"", 1);
}

trb_err trb_base64_append(const void *p, size_t n, trb_buf *out) {
  size_t need = 4 * ((n + 2) / 3) + 1;
  trb_err rc = trb_buf_reserve(out, need);
  if (rc) return rc;
  int w = EVP_EncodeBlock(out->p + out->len, p, (int)n);
  out->len += (size_t)w;
  return TRB_OK;
}

static trb_err put_num(const trb_dec *d, trb_buf *out) {
  char t[TRB_DEC_STR_MAX];
  size_t n = trb_dec_format(d, t, sizeof t);
  return trb_buf_append(out, t, n);
}

static trb_err put_b64(const trb_av *v, trb_buf *out) {
  trb_err rc = trb_buf_append(out, "\"", 1);
  if (!rc) rc = trb_base64_append(v->u.s.p, v->u.s.len, out);
  if (!rc) rc = trb_buf_append(out, "\"", 1);
  return rc;
}

trb_err trb_doc_json(const trb_av *v, trb_buf *out) {
  trb_err rc = TRB_OK;
  switch (v->type) {
  case TRB_T_S: return trb_json_str_append(v->u.s.p, v->u.s.len, out);
  case TRB_T_N: return put_num(&v->u.n, out);
  case TRB_T_B: return put_b64(v, out);
  case TRB_T_BOOL: return v->u.b ? trb_buf_append(out, "true", 4) : trb_buf_append(out, "false", 5);
  case TRB_T_NULL: return trb_buf_append(out, "null", 4);
  case TRB_T_M:
    if ((rc = trb_buf_append(out, "{", 1))) return rc;
    for (size_t i = 0; i < v->u.m.n && !rc; i++) {
      if (i) rc = trb_buf_append(out, ",", 1);
      if (!rc) rc = trb_json_str_append(v->u.m.e[i].name, v->u.m.e[i].name_len, out);
      if (!rc) rc = trb_buf_append(out, ":", 1);
      if (!rc) rc = trb_doc_json(v->u.m.e[i].val, out);
    }
    return rc ? rc : trb_buf_append(out, "}", 1);
  case TRB_T_L:
  case TRB_T_SS:
  case TRB_T_NS:
  case TRB_T_BS:
    if ((rc = trb_buf_append(out, "[", 1))) return rc;
    for (size_t i = 0; i < v->u.l.n && !rc; i++) {
      if (i) rc = trb_buf_append(out, ",", 1);
      if (!rc) rc = trb_doc_json(v->u.l.v[i], out);
    }
    return rc ? rc : trb_buf_append(out, "]", 1);
  }
  return TRB_EINVAL;
}

/* ---- DynamoDB's typed form ---- */

static trb_err typed_scalar(const char *tag, const trb_av *v, trb_buf *out) {
  trb_err rc = trb_buf_append(out, "{\"", 2);
  if (!rc) rc = trb_buf_append(out, tag, strlen(tag));
  if (!rc) rc = trb_buf_append(out, "\":", 2);
  if (rc) return rc;
  switch (v->type) {
  case TRB_T_S: rc = trb_json_str_append(v->u.s.p, v->u.s.len, out); break;
  case TRB_T_N: {
    char t[TRB_DEC_STR_MAX];
    size_t n = trb_dec_format(&v->u.n, t, sizeof t);
    rc = trb_buf_append(out, "\"", 1);
    if (!rc) rc = trb_buf_append(out, t, n);
    if (!rc) rc = trb_buf_append(out, "\"", 1);
    break;
  }
  case TRB_T_B: rc = put_b64(v, out); break;
  case TRB_T_BOOL: rc = v->u.b ? trb_buf_append(out, "true", 4) : trb_buf_append(out, "false", 5); break;
  case TRB_T_NULL: rc = trb_buf_append(out, "true", 4); break;
  default: return TRB_EINVAL;
  }
  return rc ? rc : trb_buf_append(out, "}", 1);
}

static trb_err typed_set_elem(const trb_av *v, trb_buf *out) {
  if (v->type == TRB_T_S) return trb_json_str_append(v->u.s.p, v->u.s.len, out);
  if (v->type == TRB_T_B) return put_b64(v, out);
  char t[TRB_DEC_STR_MAX];
  size_t n = trb_dec_format(&v->u.n, t, sizeof t);
  trb_err rc = trb_buf_append(out, "\"", 1);
  if (!rc) rc = trb_buf_append(out, t, n);
  return rc ? rc : trb_buf_append(out, "\"", 1);
}

trb_err trb_ddb_json_item(const trb_av *m, trb_buf *out) {
  trb_err rc = trb_buf_append(out, "{", 1);
  for (size_t i = 0; !rc && i < m->u.m.n; i++) {
    if (i) rc = trb_buf_append(out, ",", 1);
    if (!rc) rc = trb_json_str_append(m->u.m.e[i].name, m->u.m.e[i].name_len, out);
    if (!rc) rc = trb_buf_append(out, ":", 1);
    if (!rc) rc = trb_ddb_json_value(m->u.m.e[i].val, out);
  }
  return rc ? rc : trb_buf_append(out, "}", 1);
}

trb_err trb_ddb_json_value(const trb_av *v, trb_buf *out) {
  trb_err rc;
  switch (v->type) {
  case TRB_T_S: return typed_scalar("S", v, out);
  case TRB_T_N: return typed_scalar("N", v, out);
  case TRB_T_B: return typed_scalar("B", v, out);
  case TRB_T_BOOL: return typed_scalar("BOOL", v, out);
  case TRB_T_NULL: return typed_scalar("NULL", v, out);
  case TRB_T_M:
    rc = trb_buf_append(out, "{\"M\":", 5);
    if (!rc) rc = trb_ddb_json_item(v, out);
    return rc ? rc : trb_buf_append(out, "}", 1);
  case TRB_T_L:
  case TRB_T_SS:
  case TRB_T_NS:
  case TRB_T_BS: {
    const char *tag = v->type == TRB_T_L ? "{\"L\":[" : v->type == TRB_T_SS ? "{\"SS\":["
                      : v->type == TRB_T_NS ? "{\"NS\":[" : "{\"BS\":[";
    rc = trb_buf_append(out, tag, strlen(tag));
    for (size_t i = 0; !rc && i < v->u.l.n; i++) {
      if (i) rc = trb_buf_append(out, ",", 1);
      if (!rc) rc = v->type == TRB_T_L ? trb_ddb_json_value(v->u.l.v[i], out)
                                       : typed_set_elem(v->u.l.v[i], out);
    }
    return rc ? rc : trb_buf_append(out, "]}", 2);
  }
  }
  return TRB_EINVAL;
}
