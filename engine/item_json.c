/*
 * item_json.c -- DynamoDB JSON <-> trb_av (see value.h).
 *
 * Input is the AttributeValue shape of the DynamoDB JSON protocol, already
 * parsed by jansson (the api layer parses request bodies once) or parsed
 * here from text. Output is the same shape with numbers in canonical text
 * (trb_dec_format) and binaries in padded base64.
 *
 * Error texts. Everything is TRB_EINVAL with DynamoDB's message in st. AWS
 * answers some of these as SerializationException (request shape) and the
 * rest as ValidationException; the texts below come from spec 2.1 and from
 * dynalite, whose texts were captured from DynamoDB:
 *   shape (SerializationException on AWS):
 *     a member of the wrong JSON type:  "NUMBER_VALUE cannot be converted to String"
 *       (also TRUE_VALUE / FALSE_VALUE / STRING_VALUE, and "... to Blob",
 *       "... to Boolean"), "Start of structure or map found where not
 *       expected.", "Start of list found where not expected", "Expected
 *       list or null", "Expected map or null", and "Expected null" for a
 *       scalar where an AttributeValue object belongs (dynalite's capture);
 *     bad base64 (dynalite's texts, typo included):
 *       "'<v>' can not be converted to a Blob: Base64 encoded length is
 *        expected a multiple of 4 bytes but found: <n>"
 *       "'<v>' can not be converted to a Blob: Invalid Base64 character: '<c>'"
 *       "'<v>' can not be converted to a Blob: Invalid last non-pad Base64
 *        character dectected"   (non-zero bits under the padding, or > 2 '=')
 *       <v> is cut to 100 bytes + "..." so the message fits a trb_status;
 *     malformed JSON text: "Malformed JSON at line L, column C: <jansson's text>".
 *   validation (ValidationException on AWS):
 *     "Supplied AttributeValue is empty, must contain exactly one of the
 *      supported datatypes" (no type key, or only null-valued ones: a JSON
 *      null member counts as absent, as in the AWS JSON protocol);
 *     "Supplied AttributeValue has more than one datatypes set, must
 *      contain exactly one of the supported datatypes";
 *     "One or more parameter values were invalid: Null attribute value
 *      types must have the value of true";
 *     number texts from trb_dec_parse; empty sets, duplicates, nesting
 *     depth and attribute names from trb_av_validate (value.c).
 * Unknown keys in an AttributeValue object are ignored (AWS drops unknown
 * members; dynalite likewise).
 *
 * Depth: a value's own M/L counts as level 1 (as in trb_av_validate), and
 * recursion stops with the nesting error before level 33, so a hostile
 * document cannot recurse deeply here (jansson itself caps JSON depth).
 */
#include "engine/value.h"
#include "engine/value_int.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INVALID "One or more parameter values were invalid: "

/* ---- base64 ---- */

static int b64_val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Never cuts a UTF-8 sequence: the message ends up in a JSON error body. */
static size_t utf8_cut(const char *s, size_t len, size_t max) {
  if (len <= max) return len;
  while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
  return max;
}

static trb_err b64_error(const char *s, size_t len, trb_status *st, const char *tail) {
  int shown = (int)utf8_cut(s, len, 100);
  return trb_status_set(st, TRB_ESERIAL, "'%.*s%s' can not be converted to a Blob: %s", shown, s,
                        len > 100 ? "..." : "", tail);
}

/* Decodes strict padded base64 into a new B value. */
static trb_err b64_to_av(const char *s, size_t len, trb_av **out, trb_status *st) {
  trb_err rc = TRB_OK;
  unsigned char stackbuf[768];
  unsigned char *buf = stackbuf;
  char tail[96];
  if (len % 4) {
    snprintf(tail, sizeof tail,
             "Base64 encoded length is expected a multiple of 4 bytes but found: %zu", len);
    return b64_error(s, len, st, tail);
  }
  size_t pad = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '=') {
      if (i + 1 < len && s[i + 1] != '=') {
        return b64_error(s, len, st, "Invalid Base64 character: '='");
      }
      pad++;
    } else if (b64_val(c) < 0) {
      /* Every byte before i was ASCII, so i starts a UTF-8 sequence. */
      size_t clen = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
      if (clen > len - i) clen = len - i;
      snprintf(tail, sizeof tail, "Invalid Base64 character: '%.*s'", (int)clen, s + i);
      return b64_error(s, len, st, tail);
    }
  }
  if (pad > 2 || (pad && b64_val((unsigned char)s[len - pad - 1]) & (pad == 1 ? 0x3 : 0xf)))
    return b64_error(s, len, st, "Invalid last non-pad Base64 character dectected");
  if (len == 0) {
    *out = trb_av_new_b(NULL, 0);
    return *out ? TRB_OK : trb_status_set(st, TRB_ENOMEM, NULL);
  }
  if (len > (size_t)0x7ffffff0) return trb_status_set(st, TRB_EINVAL, "binary value too large");
  size_t cap = len / 4 * 3;
  if (cap > sizeof stackbuf) {
    buf = malloc(cap);
    if (!buf) return trb_status_set(st, TRB_ENOMEM, NULL);
  }
  int n = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)len);
  if (n < 0) {
    /* Cannot happen after the checks above; keep the check anyway. */
    rc = b64_error(s, len, st, "Invalid Base64 character: '?'");
    goto done;
  }
  /* EVP_DecodeBlock counts the zero bytes that stand for padding. */
  *out = trb_av_new_b(buf, (size_t)n - pad);
  if (!*out) rc = trb_status_set(st, TRB_ENOMEM, NULL);
done:
  if (buf != stackbuf) free(buf);
  return rc;
}

/* New JSON string holding base64 of p[0..len); NULL on OOM. */
static json_t *b64_json(const char *p, size_t len) {
  if (len > (size_t)0x5ffffff0) return NULL;
  size_t olen = (len + 2) / 3 * 4;
  unsigned char stackbuf[1024];
  unsigned char *buf = olen + 1 <= sizeof stackbuf ? stackbuf : malloc(olen + 1);
  if (!buf) return NULL;
  int n = EVP_EncodeBlock(buf, (const unsigned char *)p, (int)len);
  json_t *j = n >= 0 ? json_stringn_nocheck((const char *)buf, (size_t)n) : NULL;
  if (buf != stackbuf) free(buf);
  return j;
}

/* ---- JSON -> trb_av ---- */

static const char *json_token_name(const json_t *j) {
  switch (json_typeof(j)) {
    case JSON_INTEGER:
    case JSON_REAL: return "NUMBER_VALUE";
    case JSON_TRUE: return "TRUE_VALUE";
    case JSON_FALSE: return "FALSE_VALUE";
    case JSON_STRING: return "STRING_VALUE";
    default: return "NULL_VALUE";
  }
}

/* `want` is "String", "Blob" or "Boolean". */
static trb_err scalar_type_err(const json_t *j, const char *want, trb_status *st) {
  if (json_is_object(j))
    return trb_status_set(st, TRB_ESERIAL, "Start of structure or map found where not expected.");
  if (json_is_array(j))
    return trb_status_set(st, TRB_ESERIAL, "Start of list found where not expected");
  return trb_status_set(st, TRB_ESERIAL, "%s cannot be converted to %s", json_token_name(j), want);
}

static trb_err check_string(const json_t *j, const char *want, trb_status *st) {
  return json_is_string(j) ? TRB_OK : scalar_type_err(j, want, st);
}

static trb_err check_list(const json_t *j, trb_status *st) {
  if (json_is_array(j)) return TRB_OK;
  if (json_is_object(j))
    return trb_status_set(st, TRB_ESERIAL, "Start of structure or map found where not expected.");
  return trb_status_set(st, TRB_ESERIAL, "Expected list or null");
}

static trb_err check_map(const json_t *j, trb_status *st) {
  if (json_is_object(j)) return TRB_OK;
  if (json_is_array(j)) return trb_status_set(st, TRB_ESERIAL, "Start of list found where not expected");
  return trb_status_set(st, TRB_ESERIAL, "Expected map or null");
}

static const struct {
  const char *key;
  trb_type t;
} type_keys[] = {
    {"S", TRB_T_S},     {"N", TRB_T_N},   {"B", TRB_T_B},   {"BOOL", TRB_T_BOOL},
    {"NULL", TRB_T_NULL}, {"M", TRB_T_M}, {"L", TRB_T_L},   {"SS", TRB_T_SS},
    {"NS", TRB_T_NS},   {"BS", TRB_T_BS},
};

static trb_type key_type(const char *k, size_t len) {
  for (size_t i = 0; i < sizeof type_keys / sizeof type_keys[0]; i++)
    if (strlen(type_keys[i].key) == len && memcmp(type_keys[i].key, k, len) == 0)
      return type_keys[i].t;
  return (trb_type)0;
}

/* Shallow JSON type check of the member holding a value of type t. */
static trb_err check_member(trb_type t, const json_t *j, trb_status *st) {
  switch (t) {
    case TRB_T_S:
    case TRB_T_N: return check_string(j, "String", st);
    case TRB_T_B: return check_string(j, "Blob", st);
    case TRB_T_BOOL:
    case TRB_T_NULL: return json_is_boolean(j) ? TRB_OK : scalar_type_err(j, "Boolean", st);
    case TRB_T_M: return check_map(j, st);
    default: return check_list(j, st);
  }
}

static trb_err av_from_json(const json_t *j, int level, trb_av **out, trb_status *st);

static trb_err n_from_json(const json_t *j, trb_av **out, trb_status *st) {
  trb_dec d;
  trb_err rc = trb_dec_parse(json_string_value(j), json_string_length(j), &d, st);
  if (rc) return rc;
  *out = trb_av_new_n(&d);
  return *out ? TRB_OK : trb_status_set(st, TRB_ENOMEM, NULL);
}

static trb_err map_from_json(const json_t *j, int level, trb_av **out, trb_status *st) {
  trb_err rc;
  const char *key;
  size_t klen;
  json_t *jv;
  trb_av *m = trb__av_alloc_container(TRB_T_M, json_object_size(j));
  if (!m) return trb_status_set(st, TRB_ENOMEM, NULL);
  json_object_keylen_foreach((json_t *)j, key, klen, jv) {
    if ((rc = trb__av_check_name(klen, st))) goto fail;
    trb_av *cv = NULL;
    if ((rc = av_from_json(jv, level, &cv, st))) goto fail;
    char *name = malloc(klen + 1);
    if (!name) {
      trb_av_destroy(cv);
      rc = trb_status_set(st, TRB_ENOMEM, NULL);
      goto fail;
    }
    memcpy(name, key, klen);
    name[klen] = '\0';
    /* jansson keys are unique, so entries go straight in, in input order. */
    trb_attr *a = &m->u.m.e[m->u.m.n++];
    a->name = name;
    a->name_len = klen;
    a->val = cv;
  }
  *out = m;
  return TRB_OK;
fail:
  trb_av_destroy(m);
  return rc;
}

static trb_err list_from_json(trb_type t, const json_t *j, int level, trb_av **out,
                              trb_status *st) {
  trb_err rc = TRB_OK;
  size_t n = json_array_size(j);
  trb_av *l = trb__av_alloc_container(t, n);
  if (!l) return trb_status_set(st, TRB_ENOMEM, NULL);
  for (size_t i = 0; i < n; i++) {
    const json_t *je = json_array_get(j, i);
    trb_av *e = NULL;
    switch (t) {
      case TRB_T_L:
        rc = av_from_json(je, level, &e, st);
        break;
      case TRB_T_SS:
        if (!(rc = check_string(je, "String", st))) {
          e = trb_av_new_s(json_string_value(je), json_string_length(je));
          if (!e) rc = trb_status_set(st, TRB_ENOMEM, NULL);
        }
        break;
      case TRB_T_NS:
        if (!(rc = check_string(je, "String", st))) rc = n_from_json(je, &e, st);
        break;
      default:
        if (!(rc = check_string(je, "Blob", st)))
          rc = b64_to_av(json_string_value(je), json_string_length(je), &e, st);
        break;
    }
    if (rc) goto fail;
    l->u.l.v[l->u.l.n++] = e;
  }
  /* Sets: non-empty and free of duplicates (value.c owns those texts). */
  if (t != TRB_T_L && (rc = trb_av_validate(l, st))) goto fail;
  *out = l;
  return TRB_OK;
fail:
  trb_av_destroy(l);
  return rc;
}

/* `level` is the number of M/L containers above j. */
static trb_err av_from_json(const json_t *j, int level, trb_av **out, trb_status *st) {
  trb_err rc;
  const char *key;
  size_t klen;
  json_t *jv, *member = NULL;
  trb_type t = 0;
  int count = 0;

  if (!json_is_object(j)) {
    if (json_is_array(j))
      return trb_status_set(st, TRB_ESERIAL, "Start of list found where not expected");
    if (!j || json_is_null(j)) goto empty;
    return trb_status_set(st, TRB_ESERIAL, "Expected null");
  }
  json_object_keylen_foreach((json_t *)j, key, klen, jv) {
    trb_type kt = key_type(key, klen);
    if (!kt || json_is_null(jv)) continue;
    if ((rc = check_member(kt, jv, st))) return rc;
    if (count++ == 0) {
      t = kt;
      member = jv;
    }
  }
  if (count == 0) goto empty;
  if (count > 1)
    return trb_status_set(st, TRB_EINVAL,
                          "Supplied AttributeValue has more than one datatypes set, must contain "
                          "exactly one of the supported datatypes");
  switch (t) {
    case TRB_T_S:
      *out = trb_av_new_s(json_string_value(member), json_string_length(member));
      return *out ? TRB_OK : trb_status_set(st, TRB_ENOMEM, NULL);
    case TRB_T_N:
      return n_from_json(member, out, st);
    case TRB_T_B:
      return b64_to_av(json_string_value(member), json_string_length(member), out, st);
    case TRB_T_BOOL:
      *out = trb_av_new_bool(json_is_true(member));
      return *out ? TRB_OK : trb_status_set(st, TRB_ENOMEM, NULL);
    case TRB_T_NULL:
      if (!json_is_true(member))
        return trb_status_set(st, TRB_EINVAL,
                              INVALID "Null attribute value types must have the value of true");
      *out = trb_av_new_null();
      return *out ? TRB_OK : trb_status_set(st, TRB_ENOMEM, NULL);
    case TRB_T_M:
      if (level + 1 > TRB_MAX_DEPTH) return trb__av_too_deep(st);
      return map_from_json(member, level + 1, out, st);
    case TRB_T_L:
      if (level + 1 > TRB_MAX_DEPTH) return trb__av_too_deep(st);
      return list_from_json(TRB_T_L, member, level + 1, out, st);
    default:
      return list_from_json(t, member, level, out, st);
  }
empty:
  return trb_status_set(st, TRB_EINVAL,
                        "Supplied AttributeValue is empty, must contain exactly one of the "
                        "supported datatypes");
}

trb_err trb_av_from_json(const json_t *j, trb_av **out, trb_status *st) {
  trb_av *v = NULL;
  trb_err rc = av_from_json(j, 0, &v, st);
  if (!rc) *out = v;
  return rc;
}

trb_err trb_item_from_json(const json_t *j, trb_av **out, trb_status *st) {
  if (!j || json_is_null(j))
    return trb_status_set(st, TRB_EINVAL, "An item must be a JSON object");
  trb_err rc = check_map(j, st);
  if (rc) return rc;
  trb_av *m = NULL;
  /* The item's own map is not a nesting level: its attributes are level 0. */
  rc = map_from_json(j, 0, &m, st);
  if (!rc) *out = m;
  return rc;
}

static json_t *parse_text(const char *text, size_t len, trb_status *st) {
  json_error_t err;
  json_t *j = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
  if (!j)
    trb_status_set(st, TRB_ESERIAL, "Malformed JSON at line %d, column %d: %s", err.line,
                   err.column, err.text);
  return j;
}

trb_err trb_item_from_json_text(const char *text, size_t len, trb_av **out, trb_status *st) {
  json_t *j = parse_text(text, len, st);
  if (!j) return TRB_ESERIAL;
  trb_err rc = trb_item_from_json(j, out, st);
  json_decref(j);
  return rc;
}

trb_err trb_av_from_json_text(const char *text, size_t len, trb_av **out, trb_status *st) {
  json_t *j = parse_text(text, len, st);
  if (!j) return TRB_ESERIAL;
  trb_err rc = trb_av_from_json(j, out, st);
  json_decref(j);
  return rc;
}

/* ---- trb_av -> JSON ---- */

static json_t *scalar_json(const trb_av *v) {
  char buf[TRB_DEC_STR_MAX];
  size_t n;
  switch (v->type) {
    case TRB_T_S:
      return json_stringn(v->u.s.p, v->u.s.len);
    case TRB_T_N:
      n = trb_dec_format(&v->u.n, buf, sizeof buf);
      if (n >= sizeof buf) return NULL;
      return json_stringn_nocheck(buf, n);
    case TRB_T_B:
      return b64_json(v->u.s.p, v->u.s.len);
    default:
      return NULL;
  }
}

static json_t *map_body_json(const trb_av *m) {
  json_t *o = json_object();
  if (!o) return NULL;
  for (size_t i = 0; i < m->u.m.n; i++) {
    const trb_attr *a = &m->u.m.e[i];
    json_t *c = trb_av_to_json(a->val);
    if (!c || json_object_setn_new(o, a->name, a->name_len, c)) {
      json_decref(o);
      return NULL;
    }
  }
  return o;
}

json_t *trb_av_to_json(const trb_av *v) {
  json_t *inner = NULL;
  if (!v) return NULL;
  switch (v->type) {
    case TRB_T_S:
    case TRB_T_N:
    case TRB_T_B:
      inner = scalar_json(v);
      break;
    case TRB_T_BOOL:
      inner = json_boolean(v->u.b);
      break;
    case TRB_T_NULL:
      inner = json_true();
      break;
    case TRB_T_M:
      inner = map_body_json(v);
      break;
    case TRB_T_L:
    case TRB_T_SS:
    case TRB_T_NS:
    case TRB_T_BS:
      inner = json_array();
      if (!inner) break;
      for (size_t i = 0; i < v->u.l.n; i++) {
        const trb_av *e = v->u.l.v[i];
        json_t *c = v->type == TRB_T_L ? trb_av_to_json(e) : scalar_json(e);
        if (!c || json_array_append_new(inner, c)) {
          json_decref(inner);
          inner = NULL;
          break;
        }
      }
      break;
  }
  if (!inner) return NULL;
  json_t *o = json_object();
  if (!o) {
    json_decref(inner);
    return NULL;
  }
  /* set_new takes the reference to inner even when it fails. */
  if (json_object_set_new_nocheck(o, trb_type_name(v->type), inner)) {
    json_decref(o);
    return NULL;
  }
  return o;
}

json_t *trb_item_to_json(const trb_av *item) {
  if (!item || item->type != TRB_T_M) return NULL;
  return map_body_json(item);
}

char *trb_item_to_json_text(const trb_av *item) {
  json_t *j = trb_item_to_json(item);
  if (!j) return NULL;
  char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(j);
  return s;
}
