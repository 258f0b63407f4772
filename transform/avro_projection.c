/*
 * avro_projection.c -- typed projections (see avro_projection.h).
 *
 * DATUM of the columns field (Avro binary):
 *   00                          null (a REMOVE)
 *   02 then per column:         the record's branch of the union
 *     00                        null (attribute missing, or NULL)
 *     02 <value>                string/bytes: zigzag varint length, bytes;
 *                               long/int: zigzag varint; double: 8 bytes,
 *                               float: 4 bytes, IEEE little-endian;
 *                               boolean: 00 or 01
 */
#include "transform/avro_projection.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/names.h"

typedef enum pj_type { PJ_STRING, PJ_BYTES, PJ_LONG, PJ_INT, PJ_DOUBLE, PJ_FLOAT, PJ_BOOLEAN } pj_type;
static const char *const pj_names[] = {"string", "bytes", "long", "int", "double", "float",
                                       "boolean"};

typedef struct pj_col {
  char *path;
  char name[64];
  pj_type type;
  trb_path_step steps[TRB_PATH_MAX_STEPS]; /* into path */
  size_t nsteps;
} pj_col;

struct trb_avro_proj {
  pj_col *cols;
  size_t ncols;
  char *schema;
  uint64_t fp;
};

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "doubles and floats are copied as Avro's little-endian bytes");

static int avro_name_ok(const char *s) {
  if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) return 0;
  return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == strlen(s);
}

void trb_avro_proj_destroy(trb_avro_proj *p) {
  if (!p) return;
  for (size_t i = 0; i < p->ncols; i++) free(p->cols[i].path);
  free(p->cols);
  free(p->schema);
  free(p);
}

trb_err trb_avro_proj_create(const trb_avro *a, const char *table, const json_t *columns,
                             trb_avro_proj **out, trb_status *st) {
  *out = NULL;
  trb_avro_proj *p = calloc(1, sizeof *p);
  size_t n = json_object_size(columns);
  if (!p || !(p->cols = calloc(n ? n : 1, sizeof *p->cols))) {
    free(p);
    return trb_status_set(st, TRB_ENOMEM, "out of memory");
  }
  trb_err rc = TRB_OK;
  json_t *fields = json_array();
  const char *path;
  json_t *type;
  json_object_foreach((json_t *)columns, path, type) {
    pj_col *c = &p->cols[p->ncols++];
    const char *tn = json_string_value(type);
    c->path = strdup(path);
    int t = -1;
    for (int i = 0; tn && i < (int)(sizeof pj_names / sizeof pj_names[0]); i++)
      if (!strcmp(tn, pj_names[i])) t = i;
    if (!c->path) {
      rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
      break;
    }
    if (!trb_path_parse(c->path, c->steps, TRB_PATH_MAX_STEPS, &c->nsteps) ||
        !trb_path_column(path, c->name, sizeof c->name) || !avro_name_ok(c->name)) {
      rc = trb_status_set(st, TRB_ECONFIG, "kafka.tables.%s.columns.%s: its column name must "
                          "be an Avro name ([A-Za-z_][A-Za-z0-9_]*, from the path with . and "
                          "[n] as _)", table, path);
      break;
    }
    if (t < 0) {
      rc = trb_status_set(st, TRB_ECONFIG, "kafka.tables.%s.columns.%s: not an Avro type the "
                          "projection takes (string, bytes, long, int, double, float, boolean)",
                          table, path);
      break;
    }
    for (size_t j = 0; j + 1 < p->ncols; j++)
      if (!strcmp(p->cols[j].name, c->name)) {
        rc = trb_status_set(st, TRB_ECONFIG, "kafka.tables.%s.columns: %s and %s make the same "
                            "column name %s", table, p->cols[j].path, path, c->name);
        break;
      }
    if (rc) break;
    c->type = (pj_type)t;
    json_array_append_new(fields, json_pack("{s:s,s:[s,s],s:n,s:s}", "name", c->name, "type",
                                            "null", pj_names[t], "default", "doc", path));
  }
  /* The envelope with the columns field at the end. */
  char recname[300];
  size_t o = snprintf(recname, sizeof recname, "Columns_");
  for (const char *q = table; *q && o + 1 < sizeof recname; q++)
    recname[o++] = avro_name_ok((char[]){*q, 0}) || (*q >= '0' && *q <= '9') ? *q : '_';
  recname[o] = 0;
  json_t *env = rc ? NULL : json_loads(trb_avro_value_schema(a), 0, NULL);
  if (!rc && !json_is_array(json_object_get(env, "fields")))
    rc = trb_status_set(st, TRB_EINTERNAL, "the envelope schema has no fields");
  if (!rc) {
    json_t *rec = json_pack("{s:s,s:s,s:s,s:o}", "type", "record", "name", recname, "namespace",
                            "io.tributary.projection", "fields", fields);
    fields = NULL;
    json_array_append_new(json_object_get(env, "fields"),
                          json_pack("{s:s,s:[s,o],s:n,s:s}", "name", "columns", "type", "null",
                                    rec, "default", "doc",
                                    "The typed projection of the new image (kafka.tables); null "
                                    "for a REMOVE, or when a value did not fit (see the "
                                    "tributary.error header)"));
    p->schema = json_dumps(env, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    char *pcf = NULL;
    if (!p->schema) rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
    else rc = trb_avro_schema_canonical(p->schema, strlen(p->schema), &pcf, &p->fp, st);
    free(pcf);
  }
  json_decref(env);
  json_decref(fields);
  if (rc) {
    trb_avro_proj_destroy(p);
    return rc;
  }
  *out = p;
  return TRB_OK;
}

const char *trb_avro_proj_schema(const trb_avro_proj *p) { return p->schema; }
uint64_t trb_avro_proj_fingerprint(const trb_avro_proj *p) { return p->fp; }

/* ---- encoding ---- */

static trb_err put_long(trb_buf *b, int64_t v) {
  uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
  unsigned char t[10];
  size_t n = 0;
  do {
    t[n] = (unsigned char)(z & 0x7f);
    z >>= 7;
    if (z) t[n] |= 0x80;
    n++;
  } while (z);
  return trb_buf_append(b, t, n);
}

static trb_err put_bytes(trb_buf *b, const void *p, size_t n) {
  trb_err rc = put_long(b, (int64_t)n);
  return rc ? rc : trb_buf_append(b, p, n);
}

static const trb_av *lookup(const pj_col *c, const trb_av *item) {
  const trb_av *v = item;
  for (size_t i = 0; v && i < c->nsteps; i++) {
    const trb_path_step *s = &c->steps[i];
    if (!s->is_index) v = v->type == TRB_T_M ? trb_av_m_get(v, s->text, s->len) : NULL;
    else v = v->type == TRB_T_L && s->index < v->u.l.n ? v->u.l.v[s->index] : NULL;
  }
  return v;
}

static trb_err misfit(const pj_col *c, trb_status *st, const char *why, const trb_av *v) {
  return trb_status_set(st, TRB_EINVAL, "column %s (path %s, %s): %s%s", c->name, c->path,
                        pj_names[c->type], why, v ? trb_type_name(v->type) : "");
}

static trb_err put_col(const pj_col *c, const trb_av *v, trb_buf *b, trb_status *st) {
  if (!v || v->type == TRB_T_NULL) return trb_buf_append(b, "\0", 1);
  char num[TRB_DEC_STR_MAX];
  switch (c->type) {
  case PJ_STRING:
    if (v->type != TRB_T_S) return misfit(c, st, "the value is not a string but a ", v);
    break;
  case PJ_BYTES:
    if (v->type != TRB_T_B) return misfit(c, st, "the value is not binary but a ", v);
    break;
  case PJ_BOOLEAN:
    if (v->type != TRB_T_BOOL) return misfit(c, st, "the value is not a boolean but a ", v);
    break;
  default:
    if (v->type != TRB_T_N) return misfit(c, st, "the value is not a number but a ", v);
    trb_dec_format(&v->u.n, num, sizeof num);
  }
  trb_err rc = trb_buf_append(b, "\2", 1);
  if (rc) return rc;
  switch (c->type) {
  case PJ_STRING:
  case PJ_BYTES: return put_bytes(b, v->u.s.p, v->u.s.len);
  case PJ_BOOLEAN: return trb_buf_append(b, v->u.b ? "\1" : "\0", 1);
  case PJ_LONG:
  case PJ_INT: {
    errno = 0;
    char *end;
    long long x = strtoll(num, &end, 10);
    if (*end) return misfit(c, st, "the number is not an integer", NULL);
    if (errno == ERANGE || (c->type == PJ_INT && (x < INT32_MIN || x > INT32_MAX)))
      return misfit(c, st, "the number is out of range", NULL);
    return put_long(b, x);
  }
  case PJ_DOUBLE: {
    double d = strtod(num, NULL);
    if (!isfinite(d)) return misfit(c, st, "the number is out of range", NULL);
    unsigned char t[8];
    memcpy(t, &d, 8);
    return trb_buf_append(b, t, 8);
  }
  case PJ_FLOAT: {
    float f = strtof(num, NULL);
    if (!isfinite(f)) return misfit(c, st, "the number is out of range", NULL);
    unsigned char t[4];
    memcpy(t, &f, 4);
    return trb_buf_append(b, t, 4);
  }
  }
  return TRB_EINTERNAL;
}

trb_err trb_avro_proj_encode(const trb_avro_proj *p, const trb_av *item, trb_buf *out,
                             trb_status *st) {
  if (!item) return trb_avro_proj_encode_null(out);
  size_t mark = out->len;
  trb_err rc = trb_buf_append(out, "\2", 1);
  for (size_t i = 0; !rc && i < p->ncols; i++) rc = put_col(&p->cols[i], lookup(&p->cols[i], item), out, st);
  if (rc) out->len = mark;
  if (rc == TRB_ENOMEM || rc == TRB_ELIMIT) trb_status_set(st, rc, "out of memory");
  return rc;
}

trb_err trb_avro_proj_encode_null(trb_buf *out) { return trb_buf_append(out, "\0", 1); }
