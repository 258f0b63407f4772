/*
 * expr_env.c -- the expression environment (ExpressionAttributeNames and
 * ExpressionAttributeValues with their "used" marks), and the small pieces
 * every other expr_*.c needs: the arena, the reserved-word table, the
 * tokenizer and document-path helpers (see expr_int.h).
 *
 * Tokens (spec 5.1): whitespace is space, tab, CR and LF; names are
 * [a-zA-Z][a-zA-Z0-9_]* (AWS rejects a leading underscore or digit);
 * placeholders are #[0-9A-Za-z_]+ and :[0-9A-Za-z_]+ of at most 255 bytes;
 * digit runs are numbers (the grammar accepts them only as list indexes);
 * punctuation ( ) [ ] , . = <> < <= > >= + -. Anything else becomes a
 * one-character TK_BAD token so the parser reports it as DynamoDB does
 * ('Syntax error; token: "_", near: "SET _123"').
 */
#include "engine/expr_int.h"

#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

struct xa_blk {
  xa_blk *next;
  size_t used, cap;
  alignas(max_align_t) unsigned char data[];
};

#define XA_BLOCK 4096

void *trb__xa_alloc(xarena *a, size_t n) {
  size_t al = alignof(max_align_t);
  n = (n + al - 1) & ~(al - 1);
  if (n == 0) n = al;
  xa_blk *b = a->head;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > XA_BLOCK ? n : XA_BLOCK;
    b = malloc(sizeof *b + cap);
    if (!b) return NULL;
    b->next = a->head;
    b->used = 0;
    b->cap = cap;
    a->head = b;
  }
  void *p = b->data + b->used;
  b->used += n;
  memset(p, 0, n);
  return p;
}

char *trb__xa_strdup(xarena *a, const char *p, size_t n) {
  char *s = trb__xa_alloc(a, n + 1);
  if (!s) return NULL;
  if (n) memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

void trb__xa_free(xarena *a) {
  xa_blk *b = a->head;
  while (b) {
    xa_blk *next = b->next;
    free(b);
    b = next;
  }
  a->head = NULL;
}

/* ---- reserved words ---- */

static const char *const reserved_words[] = {
#include "engine/expr_reserved.inc"
};

static int upper(int c) { return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c; }

int trb__expr_reserved(const char *p, size_t n) {
  size_t lo = 0, hi = sizeof reserved_words / sizeof reserved_words[0];
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const char *w = reserved_words[mid];
    int c = 0;
    size_t i = 0;
    for (; i < n && w[i]; i++) {
      c = upper((unsigned char)p[i]) - (unsigned char)w[i];
      if (c) break;
    }
    if (!c) c = i < n ? 1 : w[i] ? -1 : 0;
    if (c == 0) return 1;
    if (c < 0) hi = mid;
    else lo = mid + 1;
  }
  return 0;
}

/* ---- small helpers ---- */

const char *trb__expr_kind_name(trb_expr_kind k) {
  switch (k) {
    case TRB_EXPR_CONDITION: return "Condition";
    case TRB_EXPR_FILTER: return "Filter";
    case TRB_EXPR_KEYCOND: return "KeyCondition";
    case TRB_EXPR_PROJECTION: return "Projection";
    case TRB_EXPR_UPDATE: return "Update";
  }
  return "?";
}

void trb__expr_quote(const char *p, size_t n, char *buf, size_t cap) {
  size_t max = cap ? cap - 1 : 0;
  if (max > XP_MSG_USER_MAX) max = XP_MSG_USER_MAX;
  if (n > max) {
    n = max;
    /* Do not cut a UTF-8 sequence: the text ends up in a JSON body. */
    while (n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80) n--;
  }
  if (cap == 0) return;
  if (n) memcpy(buf, p, n);
  buf[n] = '\0';
}

void trb__expr_utf8_fix(char *s) {
  unsigned char *r = (unsigned char *)s, *w = r;
  while (*r) {
    unsigned c = *r;
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    size_t k = 1;
    while (k < n && (r[k] & 0xC0) == 0x80) k++;
    /* overlong 2-byte leads (C0, C1) and code points past U+10FFFF are invalid too */
    if (n == 0 || k < n || c == 0xC0 || c == 0xC1 || c > 0xF4) {
      *w++ = '?';
      r += n == 0 ? 1 : k;
      continue;
    }
    memmove(w, r, n);
    w += n;
    r += n;
  }
  *w = '\0';
}

/* ---- document paths ---- */

int trb__xpath_equal(const xpath *a, const xpath *b) {
  if (a->n != b->n) return 0;
  for (uint32_t i = 0; i < a->n; i++) {
    const xpelem *x = &a->e[i], *y = &b->e[i];
    if (!x->name != !y->name) return 0;
    if (x->name) {
      if (x->len != y->len || memcmp(x->name, y->name, x->len) != 0) return 0;
    } else if (x->index != y->index) {
      return 0;
    }
  }
  return 1;
}

void trb__xpath_str(const xpath *p, char *buf, size_t cap) {
  size_t len = 0;
  if (cap == 0) return;
  buf[0] = '\0';
#define PUT(...)                                                   \
  do {                                                             \
    if (len < cap) {                                               \
      int k_ = snprintf(buf + len, cap - len, __VA_ARGS__);        \
      if (k_ > 0) len += (size_t)k_ < cap - len ? (size_t)k_ : cap - len - 1; \
    }                                                              \
  } while (0)
  PUT("[");
  for (uint32_t i = 0; i < p->n; i++) {
    if (i) PUT(", ");
    if (p->e[i].name) {
      char q[XP_MSG_USER_MAX + 1];
      trb__expr_quote(p->e[i].name, p->e[i].len, q, sizeof q);
      PUT("%s", q);
    } else {
      PUT("[%u]", (unsigned)p->e[i].index);
    }
  }
  PUT("]");
#undef PUT
}

const trb_av *trb__xpath_get(const trb_av *item, const xpath *p) {
  const trb_av *cur = item;
  for (uint32_t i = 0; i < p->n && cur; i++) {
    const xpelem *el = &p->e[i];
    if (el->name) {
      cur = cur->type == TRB_T_M ? trb_av_m_get(cur, el->name, el->len) : NULL;
    } else {
      cur = cur->type == TRB_T_L && el->index < cur->u.l.n ? cur->u.l.v[el->index] : NULL;
    }
  }
  return cur;
}

/* ---- environment ---- */

static int ph_char(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* #[0-9A-Za-z_]+ / :[0-9A-Za-z_]+, at most XP_MAX_PLACEHOLDER bytes. */
static int ph_valid(const char *k, size_t n, char lead) {
  if (n < 2 || n > XP_MAX_PLACEHOLDER || k[0] != lead) return 0;
  for (size_t i = 1; i < n; i++)
    if (!ph_char((unsigned char)k[i])) return 0;
  return 1;
}

static trb_err bad_key(trb_status *st, const char *what, const char *k, size_t n) {
  char q[XP_MSG_USER_MAX + 1];
  trb__expr_quote(k, n, q, sizeof q);
  return trb_status_set(st, TRB_EINVAL, "%s contains invalid key: Syntax error; key: \"%s\"", what,
                        q);
}

trb_err trb_expr_env_create(const char *const *name_keys, const char *const *name_vals,
                            size_t nnames, int names_present, const trb_av *values,
                            int values_present, trb_expr_env **out, trb_status *st) {
  trb_err rc = TRB_OK;
  trb_expr_env *env = NULL;
  *out = NULL;
  if (names_present && nnames == 0)
    return trb_status_set(st, TRB_EINVAL, "ExpressionAttributeNames must not be empty");
  if (values && values->type != TRB_T_M)
    return trb_status_set(st, TRB_EINVAL, "ExpressionAttributeValues must be a map");
  if (values_present && (!values || values->u.m.n == 0))
    return trb_status_set(st, TRB_EINVAL, "ExpressionAttributeValues must not be empty");
  size_t total = 0; /* spec 5.8: names and values together at most 2 MB */
  for (size_t i = 0; i < nnames; i++) {
    if (!ph_valid(name_keys[i], strlen(name_keys[i]), '#'))
      return bad_key(st, "ExpressionAttributeNames", name_keys[i], strlen(name_keys[i]));
    if (!name_vals[i] || !name_vals[i][0]) {
      char q[XP_MSG_USER_MAX + 1];
      trb__expr_quote(name_keys[i], strlen(name_keys[i]), q, sizeof q);
      return trb_status_set(st, TRB_EINVAL,
                            "ExpressionAttributeNames contains invalid value: Empty attribute "
                            "name for key %s",
                            q);
    }
    total += strlen(name_keys[i]) + strlen(name_vals[i]);
  }
  if (values) {
    for (size_t i = 0; i < values->u.m.n; i++) {
      const trb_attr *a = &values->u.m.e[i];
      if (!ph_valid(a->name, a->name_len, ':'))
        return bad_key(st, "ExpressionAttributeValues", a->name, a->name_len);
    }
    for (size_t i = 0; i < values->u.m.n; i++) {
      const trb_attr *a = &values->u.m.e[i];
      trb_status vst;
      trb_status_init(&vst);
      if ((rc = trb_av_validate(a->val, &vst))) {
        char q[XP_MSG_USER_MAX + 1];
        trb__expr_quote(a->name, a->name_len, q, sizeof q);
        rc = trb_status_set(st, rc,
                            "ExpressionAttributeValues contains invalid value: %.300s for key %s",
                            trb_status_msg(&vst), q);
        if (st) trb__expr_utf8_fix(st->msg);
        return rc;
      }
      total += a->name_len + trb_av_size(a->val);
    }
  }
  if (total > TRB_EXPR_ENV_MAX)
    return trb_status_set(st, TRB_EINVAL,
                          "ExpressionAttributeNames and ExpressionAttributeValues together hold "
                          "%zu bytes; the maximum is %d (2 MB)",
                          total, TRB_EXPR_ENV_MAX);

  env = calloc(1, sizeof *env);
  if (!env) goto oom;
  env->values = values;
  if (nnames) {
    env->nkey = calloc(nnames, sizeof *env->nkey);
    env->nval = calloc(nnames, sizeof *env->nval);
    env->nval_len = calloc(nnames, sizeof *env->nval_len);
    env->nused = calloc(nnames, 1);
    if (!env->nkey || !env->nval || !env->nval_len || !env->nused) goto oom;
    for (size_t i = 0; i < nnames; i++) {
      env->nkey[i] = strdup(name_keys[i]);
      env->nval[i] = strdup(name_vals[i] ? name_vals[i] : "");
      env->nnames = i + 1;
      if (!env->nkey[i] || !env->nval[i]) goto oom;
      env->nval_len[i] = strlen(env->nval[i]);
    }
  }
  if (values && values->u.m.n) {
    env->vused = calloc(values->u.m.n, 1);
    if (!env->vused) goto oom;
  }
  *out = env;
  return TRB_OK;
oom:
  trb_expr_env_destroy(env);
  return trb_status_set(st, TRB_ENOMEM, NULL);
}

void trb_expr_env_destroy(trb_expr_env *env) {
  if (!env) return;
  for (size_t i = 0; i < env->nnames; i++) {
    free(env->nkey[i]);
    free(env->nval[i]);
  }
  free(env->nkey);
  free(env->nval);
  free(env->nval_len);
  free(env->nused);
  free(env->vused);
  free(env);
}

long trb__env_name(trb_expr_env *env, const char *key, size_t n) {
  if (!env) return -1;
  for (size_t i = 0; i < env->nnames; i++) {
    if (strlen(env->nkey[i]) == n && memcmp(env->nkey[i], key, n) == 0) {
      env->nused[i] = 1;
      return (long)i;
    }
  }
  return -1;
}

const trb_av *trb__env_value(trb_expr_env *env, const char *key, size_t n) {
  if (!env || !env->values) return NULL;
  const trb_av *m = env->values;
  for (size_t i = 0; i < m->u.m.n; i++) {
    const trb_attr *a = &m->u.m.e[i];
    if (a->name_len == n && memcmp(a->name, key, n) == 0) {
      env->vused[i] = 1;
      return a->val;
    }
  }
  return NULL;
}

/* Appends "k1, k2" of the unused keys to buf; returns how many. */
static size_t list_unused(char *buf, size_t cap, size_t n, const unsigned char *used,
                          const char *(*key)(const trb_expr_env *, size_t, size_t *),
                          const trb_expr_env *env) {
  size_t len = 0, count = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    if (used[i]) continue;
    size_t kl;
    const char *k = key(env, i, &kl);
    if (count && len + 2 < cap) {
      memcpy(buf + len, ", ", 2);
      len += 2;
    }
    count++;
    if (kl > cap - 1 - len) kl = cap - 1 - len;
    memcpy(buf + len, k, kl);
    len += kl;
    buf[len] = '\0';
  }
  return count;
}

static const char *name_key(const trb_expr_env *env, size_t i, size_t *len) {
  *len = strlen(env->nkey[i]);
  return env->nkey[i];
}

static const char *value_key(const trb_expr_env *env, size_t i, size_t *len) {
  *len = env->values->u.m.e[i].name_len;
  return env->values->u.m.e[i].name;
}

trb_err trb_expr_env_check_unused(const trb_expr_env *env, trb_status *st) {
  char buf[400];
  if (!env) return TRB_OK;
  /* given, but there is no expression to use them */
  if (!env->parsed && env->nnames)
    return trb_status_set(st, TRB_EINVAL,
                          "ExpressionAttributeNames can only be specified when using expressions");
  if (!env->parsed && env->values)
    return trb_status_set(st, TRB_EINVAL,
                          "ExpressionAttributeValues can only be specified when using expressions");
  if (list_unused(buf, sizeof buf, env->nnames, env->nused, name_key, env))
    return trb_status_set(st, TRB_EINVAL,
                          "Value provided in ExpressionAttributeNames unused in expressions: "
                          "keys: {%s}",
                          buf);
  if (env->values &&
      list_unused(buf, sizeof buf, env->values->u.m.n, env->vused, value_key, env))
    return trb_status_set(st, TRB_EINVAL,
                          "Value provided in ExpressionAttributeValues unused in expressions: "
                          "keys: {%s}",
                          buf);
  return TRB_OK;
}

/* ---- tokenizer ---- */

static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(int c) { return c >= '0' && c <= '9'; }

/* Length of the UTF-8 sequence starting at p (1 for a stray byte). */
static size_t utf8_len(const unsigned char *p, size_t avail) {
  size_t n = p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC0 ? 2 : 1;
  if (n > avail) return 1;
  for (size_t i = 1; i < n; i++)
    if ((p[i] & 0xC0) != 0x80) return 1;
  return n;
}

trb_err trb__expr_lex(const char *text, size_t len, xtok **out, size_t *n) {
  /* At most one token per byte, plus EOF. */
  xtok *t = malloc((len + 1) * sizeof *t);
  size_t k = 0, i = 0;
  if (!t) return TRB_ENOMEM;
  const unsigned char *s = (const unsigned char *)text;
  while (i < len) {
    int c = s[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      i++;
      continue;
    }
    size_t start = i;
    xtok_type ty;
    if (is_alpha(c)) {
      i++;
      while (i < len && ph_char(s[i])) i++;
      ty = TK_NAME;
    } else if (is_digit(c)) {
      while (i < len && is_digit(s[i])) i++;
      ty = TK_NUM;
    } else if (c == '#' || c == ':') {
      i++;
      while (i < len && ph_char(s[i])) i++;
      ty = c == '#' ? TK_HASH : TK_COLON;
      if (i - start < 2 || i - start > XP_MAX_PLACEHOLDER) {
        ty = TK_BAD;
        if (i - start < 2) i = start + 1;
      }
    } else {
      i++;
      switch (c) {
        case '(': ty = TK_LP; break;
        case ')': ty = TK_RP; break;
        case '[': ty = TK_LB; break;
        case ']': ty = TK_RB; break;
        case ',': ty = TK_COMMA; break;
        case '.': ty = TK_DOT; break;
        case '=': ty = TK_EQ; break;
        case '+': ty = TK_PLUS; break;
        case '-': ty = TK_MINUS; break;
        case '<':
          ty = TK_LT;
          if (i < len && s[i] == '=') { ty = TK_LE; i++; }
          else if (i < len && s[i] == '>') { ty = TK_NE; i++; }
          break;
        case '>':
          ty = TK_GT;
          if (i < len && s[i] == '=') { ty = TK_GE; i++; }
          break;
        default:
          ty = TK_BAD;
          i = start + utf8_len(s + start, len - start);
          break;
      }
    }
    t[k].t = ty;
    t[k].off = (uint32_t)start;
    t[k].len = (uint32_t)(i - start);
    k++;
  }
  t[k].t = TK_EOF;
  t[k].off = (uint32_t)len;
  t[k].len = 0;
  *out = t;
  *n = k + 1;
  return TRB_OK;
}
