/*
 * value.c -- attribute value trees: constructors, maps, lists and sets,
 * DynamoDB equality, scalar order, sizes and validation (see value.h).
 *
 * The JSON codec lives in item_json.c and the binary codec in item_codec.c;
 * both build trees only through the functions here and the few internals
 * of value_int.h (containers allocated at their final size, name checks).
 *
 * Allocation layout. To keep decoding cheap, storage that never grows is put
 * in the same malloc block as the node, right after it:
 *   - S and B: the bytes (+ NUL) follow the node; u.s.p points there;
 *   - M, L and sets built at a known size (copy, binary decode): the entry
 *     or pointer array follows the node, with cap == n.
 * trb_av_destroy frees u.s.p / u.m.e / u.l.v only when they do NOT point
 * into the node's own block, and the growing functions (trb_av_m_set,
 * trb_av_l_append) move an inline array to the heap before growing it. So
 * callers that walk or edit trees in place (replace an element, memmove
 * to delete one, n--) are fine; callers must never realloc() or free() those
 * pointers themselves -- use the functions of value.h.
 */
#include "engine/value.h"
#include "engine/value_int.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocation ---- */

static inline void *av_inline(const trb_av *v) { return (void *)(v + 1); }

static trb_av *av_alloc_bytes(trb_type t, const void *p, size_t len) {
  if (len > SIZE_MAX - sizeof(trb_av) - 1) return NULL;
  trb_av *v = malloc(sizeof(trb_av) + len + 1);
  if (!v) return NULL;
  v->type = t;
  v->u.s.p = av_inline(v);
  v->u.s.len = len;
  if (len) memcpy(v->u.s.p, p, len);
  v->u.s.p[len] = '\0';
  return v;
}

trb_av *trb__av_alloc_container(trb_type t, size_t n) {
  if (t != TRB_T_M && t != TRB_T_L && t != TRB_T_SS && t != TRB_T_NS && t != TRB_T_BS)
    return NULL;
  size_t esz = t == TRB_T_M ? sizeof(trb_attr) : sizeof(trb_av *);
  if (n > (SIZE_MAX - sizeof(trb_av)) / esz) return NULL;
  trb_av *v = malloc(sizeof(trb_av) + n * esz);
  if (!v) return NULL;
  v->type = t;
  if (t == TRB_T_M) {
    v->u.m.e = n ? av_inline(v) : NULL;
    v->u.m.n = 0;
    v->u.m.cap = n;
  } else {
    v->u.l.v = n ? av_inline(v) : NULL;
    v->u.l.n = 0;
    v->u.l.cap = n;
  }
  return v;
}

trb_av *trb_av_new_s(const char *p, size_t len) { return av_alloc_bytes(TRB_T_S, p, len); }
trb_av *trb_av_new_b(const void *p, size_t len) { return av_alloc_bytes(TRB_T_B, p, len); }

trb_av *trb_av_new_n(const trb_dec *d) {
  trb_av *v = malloc(sizeof *v);
  if (!v) return NULL;
  v->type = TRB_T_N;
  v->u.n = *d;
  return v;
}

trb_av *trb_av_new_bool(int b) {
  trb_av *v = malloc(sizeof *v);
  if (!v) return NULL;
  v->type = TRB_T_BOOL;
  v->u.b = b ? 1 : 0;
  return v;
}

trb_av *trb_av_new_null(void) {
  trb_av *v = malloc(sizeof *v);
  if (!v) return NULL;
  v->type = TRB_T_NULL;
  return v;
}

trb_av *trb_av_new_m(void) { return trb__av_alloc_container(TRB_T_M, 0); }
trb_av *trb_av_new_l(void) { return trb__av_alloc_container(TRB_T_L, 0); }

trb_av *trb_av_new_set(trb_type t) {
  if (t != TRB_T_SS && t != TRB_T_NS && t != TRB_T_BS) return NULL;
  return trb__av_alloc_container(t, 0);
}

void trb_av_destroy(trb_av *v) {
  if (!v) return;
  switch (v->type) {
    case TRB_T_S:
    case TRB_T_B:
      if (v->u.s.p != av_inline(v)) free(v->u.s.p);
      break;
    case TRB_T_M:
      for (size_t i = 0; i < v->u.m.n; i++) {
        free(v->u.m.e[i].name);
        trb_av_destroy(v->u.m.e[i].val);
      }
      if (v->u.m.e && (void *)v->u.m.e != av_inline(v)) free(v->u.m.e);
      break;
    case TRB_T_L:
    case TRB_T_SS:
    case TRB_T_NS:
    case TRB_T_BS:
      for (size_t i = 0; i < v->u.l.n; i++) trb_av_destroy(v->u.l.v[i]);
      if (v->u.l.v && (void *)v->u.l.v != av_inline(v)) free(v->u.l.v);
      break;
    default:
      break;
  }
  free(v);
}

static char *dup_name(const char *name, size_t len) {
  char *p = malloc(len + 1);
  if (!p) return NULL;
  if (len) memcpy(p, name, len);
  p[len] = '\0';
  return p;
}

trb_av *trb_av_copy(const trb_av *v) {
  if (!v) return NULL;
  trb_av *c = NULL;
  switch (v->type) {
    case TRB_T_S:
    case TRB_T_B:
      return av_alloc_bytes(v->type, v->u.s.p, v->u.s.len);
    case TRB_T_N:
      return trb_av_new_n(&v->u.n);
    case TRB_T_BOOL:
      return trb_av_new_bool(v->u.b);
    case TRB_T_NULL:
      return trb_av_new_null();
    case TRB_T_M:
      c = trb__av_alloc_container(TRB_T_M, v->u.m.n);
      if (!c) return NULL;
      for (size_t i = 0; i < v->u.m.n; i++) {
        const trb_attr *a = &v->u.m.e[i];
        char *name = dup_name(a->name, a->name_len);
        trb_av *cv = name ? trb_av_copy(a->val) : NULL;
        if (!cv) {
          free(name);
          trb_av_destroy(c);
          return NULL;
        }
        c->u.m.e[i].name = name;
        c->u.m.e[i].name_len = a->name_len;
        c->u.m.e[i].val = cv;
        c->u.m.n = i + 1;
      }
      return c;
    case TRB_T_L:
    case TRB_T_SS:
    case TRB_T_NS:
    case TRB_T_BS:
      c = trb__av_alloc_container(v->type, v->u.l.n);
      if (!c) return NULL;
      for (size_t i = 0; i < v->u.l.n; i++) {
        trb_av *cv = trb_av_copy(v->u.l.v[i]);
        if (!cv) {
          trb_av_destroy(c);
          return NULL;
        }
        c->u.l.v[i] = cv;
        c->u.l.n = i + 1;
      }
      return c;
  }
  return NULL;
}

/* ---- maps ---- */

static trb_err m_grow(trb_av *m) {
  size_t ncap = m->u.m.cap ? m->u.m.cap * 2 : 4;
  if (ncap > SIZE_MAX / sizeof(trb_attr)) return TRB_ENOMEM;
  trb_attr *ne;
  if (m->u.m.e && (void *)m->u.m.e == av_inline(m)) {
    ne = malloc(ncap * sizeof *ne);
    if (!ne) return TRB_ENOMEM;
    memcpy(ne, m->u.m.e, m->u.m.n * sizeof *ne);
  } else {
    ne = realloc(m->u.m.e, ncap * sizeof *ne);
    if (!ne) return TRB_ENOMEM;
  }
  m->u.m.e = ne;
  m->u.m.cap = ncap;
  return TRB_OK;
}

static trb_attr *m_find(const trb_av *m, const char *name, size_t len) {
  trb_attr *e = m->u.m.e;
  for (size_t i = 0, n = m->u.m.n; i < n; i++)
    if (e[i].name_len == len && memcmp(e[i].name, name, len) == 0) return &e[i];
  return NULL;
}

trb_err trb_av_m_set(trb_av *m, const char *name, size_t name_len, trb_av *val) {
  if (!m || m->type != TRB_T_M || !val || (!name && name_len)) return TRB_EINVAL;
  trb_attr *a = m_find(m, name, name_len);
  if (a) {
    if (a->val != val) trb_av_destroy(a->val);
    a->val = val;
    return TRB_OK;
  }
  char *nm = dup_name(name, name_len);
  if (!nm) return TRB_ENOMEM;
  if (m->u.m.n == m->u.m.cap) {
    trb_err rc = m_grow(m);
    if (rc) {
      free(nm);
      return rc;
    }
  }
  a = &m->u.m.e[m->u.m.n++];
  a->name = nm;
  a->name_len = name_len;
  a->val = val;
  return TRB_OK;
}

trb_av *trb_av_m_get(const trb_av *m, const char *name, size_t name_len) {
  if (!m || m->type != TRB_T_M) return NULL;
  trb_attr *a = m_find(m, name, name_len);
  return a ? a->val : NULL;
}

int trb_av_m_remove(trb_av *m, const char *name, size_t name_len) {
  if (!m || m->type != TRB_T_M) return 0;
  trb_attr *a = m_find(m, name, name_len);
  if (!a) return 0;
  size_t i = (size_t)(a - m->u.m.e);
  free(a->name);
  trb_av_destroy(a->val);
  memmove(a, a + 1, (m->u.m.n - i - 1) * sizeof *a);
  m->u.m.n--;
  return 1;
}

/* ---- lists and sets ---- */

static trb_err l_grow(trb_av *l) {
  size_t ncap = l->u.l.cap ? l->u.l.cap * 2 : 4;
  if (ncap > SIZE_MAX / sizeof(trb_av *)) return TRB_ENOMEM;
  trb_av **nv;
  if (l->u.l.v && (void *)l->u.l.v == av_inline(l)) {
    nv = malloc(ncap * sizeof *nv);
    if (!nv) return TRB_ENOMEM;
    memcpy(nv, l->u.l.v, l->u.l.n * sizeof *nv);
  } else {
    nv = realloc(l->u.l.v, ncap * sizeof *nv);
    if (!nv) return TRB_ENOMEM;
  }
  l->u.l.v = nv;
  l->u.l.cap = ncap;
  return TRB_OK;
}

static trb_type set_elem_type(trb_type t) {
  switch (t) {
    case TRB_T_SS: return TRB_T_S;
    case TRB_T_NS: return TRB_T_N;
    case TRB_T_BS: return TRB_T_B;
    default: return (trb_type)0;
  }
}

trb_err trb_av_l_append(trb_av *l, trb_av *val) {
  if (!l || !val) return TRB_EINVAL;
  if (l->type != TRB_T_L) {
    trb_type et = set_elem_type(l->type);
    if (!et || val->type != et) return TRB_EINVAL;
  }
  if (l->u.l.n == l->u.l.cap) {
    trb_err rc = l_grow(l);
    if (rc) return rc;
  }
  l->u.l.v[l->u.l.n++] = val;
  return TRB_OK;
}

/* ---- order and equality ---- */

static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int c = n ? memcmp(a, b, n) : 0;
  if (c) return c < 0 ? -1 : 1;
  return alen < blen ? -1 : alen > blen ? 1 : 0;
}

int trb_av_cmp_scalar(const trb_av *a, const trb_av *b) {
  if (a->type != b->type) return a->type < b->type ? -1 : 1;
  switch (a->type) {
    case TRB_T_S:
    case TRB_T_B:
      return bytes_cmp(a->u.s.p, a->u.s.len, b->u.s.p, b->u.s.len);
    case TRB_T_N:
      return trb_dec_cmp(&a->u.n, &b->u.n);
    default:
      return 0;
  }
}

static int ptr_scalar_cmp(const void *x, const void *y) {
  return trb_av_cmp_scalar(*(const trb_av *const *)x, *(const trb_av *const *)y);
}

static int ptr_attr_cmp(const void *x, const void *y) {
  const trb_attr *a = *(const trb_attr *const *)x, *b = *(const trb_attr *const *)y;
  return bytes_cmp(a->name, a->name_len, b->name, b->name_len);
}

/* Up to this many elements, quadratic scans beat sorting. */
#define SMALL_N 16

static int set_contains(const trb_av *s, const trb_av *e) {
  for (size_t i = 0; i < s->u.l.n; i++)
    if (trb_av_cmp_scalar(s->u.l.v[i], e) == 0) return 1;
  return 0;
}

static int set_equal(const trb_av *a, const trb_av *b) {
  size_t na = a->u.l.n, nb = b->u.l.n, i;
  /* Fast path: same elements in the same order. */
  if (na == nb) {
    for (i = 0; i < na; i++)
      if (trb_av_cmp_scalar(a->u.l.v[i], b->u.l.v[i]) != 0) break;
    if (i == na) return 1;
  }
  if (na > SMALL_N || nb > SMALL_N) {
    const trb_av **sa = malloc((na + nb + 1) * sizeof *sa);
    if (sa) {
      const trb_av **sb = sa + na;
      memcpy(sa, a->u.l.v, na * sizeof *sa);
      memcpy(sb, b->u.l.v, nb * sizeof *sb);
      qsort(sa, na, sizeof *sa, ptr_scalar_cmp);
      qsort(sb, nb, sizeof *sb, ptr_scalar_cmp);
      /* Compare the sequences of distinct values. */
      size_t x = 0, y = 0;
      int eq = 1;
      while (x < na && y < nb) {
        if (trb_av_cmp_scalar(sa[x], sb[y]) != 0) { eq = 0; break; }
        const trb_av *cur = sa[x];
        while (x < na && trb_av_cmp_scalar(sa[x], cur) == 0) x++;
        while (y < nb && trb_av_cmp_scalar(sb[y], cur) == 0) y++;
      }
      if (x < na || y < nb) eq = 0;
      free(sa);
      return eq;
    }
  }
  for (i = 0; i < na; i++)
    if (!set_contains(b, a->u.l.v[i])) return 0;
  for (i = 0; i < nb; i++)
    if (!set_contains(a, b->u.l.v[i])) return 0;
  return 1;
}

static int map_equal(const trb_av *a, const trb_av *b) {
  size_t n = a->u.m.n, i;
  if (n != b->u.m.n) return 0;
  /* Fast path: same names in the same order (the common case for items
   * that went through the same code). */
  for (i = 0; i < n; i++) {
    const trb_attr *x = &a->u.m.e[i], *y = &b->u.m.e[i];
    if (x->name_len != y->name_len || memcmp(x->name, y->name, x->name_len) != 0) break;
    if (!trb_av_equal(x->val, y->val)) return 0;
  }
  if (i == n) return 1;
  size_t start = i;
  if (n - start > SMALL_N) {
    const trb_attr **sa = malloc(2 * (n - start) * sizeof *sa);
    if (sa) {
      size_t k = n - start;
      const trb_attr **sb = sa + k;
      for (size_t j = 0; j < k; j++) {
        sa[j] = &a->u.m.e[start + j];
        sb[j] = &b->u.m.e[start + j];
      }
      qsort(sa, k, sizeof *sa, ptr_attr_cmp);
      qsort(sb, k, sizeof *sb, ptr_attr_cmp);
      int eq = 1;
      for (size_t j = 0; j < k && eq; j++)
        eq = ptr_attr_cmp(&sa[j], &sb[j]) == 0 && trb_av_equal(sa[j]->val, sb[j]->val);
      free(sa);
      return eq;
    }
  }
  /* Names are unique in both maps and the counts match, so a <= b by name
   * with equal values means equal. Entries before `start` matched already;
   * the rest of a must be found among the rest of b. */
  for (i = start; i < n; i++) {
    const trb_attr *x = &a->u.m.e[i];
    const trb_attr *y = NULL;
    for (size_t j = start; j < n; j++) {
      const trb_attr *c = &b->u.m.e[j];
      if (c->name_len == x->name_len && memcmp(c->name, x->name, x->name_len) == 0) {
        y = c;
        break;
      }
    }
    if (!y || !trb_av_equal(x->val, y->val)) return 0;
  }
  return 1;
}

int trb_av_equal(const trb_av *a, const trb_av *b) {
  if (a == b) return 1;
  if (!a || !b || a->type != b->type) return 0;
  switch (a->type) {
    case TRB_T_S:
    case TRB_T_B:
      return a->u.s.len == b->u.s.len &&
             (a->u.s.len == 0 || memcmp(a->u.s.p, b->u.s.p, a->u.s.len) == 0);
    case TRB_T_N:
      return trb_dec_cmp(&a->u.n, &b->u.n) == 0;
    case TRB_T_BOOL:
      return !a->u.b == !b->u.b;
    case TRB_T_NULL:
      return 1;
    case TRB_T_M:
      return map_equal(a, b);
    case TRB_T_L:
      if (a->u.l.n != b->u.l.n) return 0;
      for (size_t i = 0; i < a->u.l.n; i++)
        if (!trb_av_equal(a->u.l.v[i], b->u.l.v[i])) return 0;
      return 1;
    case TRB_T_SS:
    case TRB_T_NS:
    case TRB_T_BS:
      return set_equal(a, b);
  }
  return 0;
}

/* ---- sizes (spec 2.3) ---- */

size_t trb_av_size(const trb_av *v) {
  size_t sz = 0;
  switch (v->type) {
    case TRB_T_S:
    case TRB_T_B:
      return v->u.s.len;
    case TRB_T_N:
      return trb_dec_size(&v->u.n);
    case TRB_T_BOOL:
    case TRB_T_NULL:
      return 1;
    case TRB_T_M:
      sz = 3;
      for (size_t i = 0; i < v->u.m.n; i++)
        sz += 1 + v->u.m.e[i].name_len + trb_av_size(v->u.m.e[i].val);
      return sz;
    case TRB_T_L:
      sz = 3;
      for (size_t i = 0; i < v->u.l.n; i++) sz += 1 + trb_av_size(v->u.l.v[i]);
      return sz;
    case TRB_T_SS:
    case TRB_T_NS:
    case TRB_T_BS:
      for (size_t i = 0; i < v->u.l.n; i++) sz += trb_av_size(v->u.l.v[i]);
      return sz;
  }
  return 0;
}

size_t trb_item_size(const trb_av *item) {
  size_t sz = 0;
  if (!item || item->type != TRB_T_M) return 0;
  for (size_t i = 0; i < item->u.m.n; i++)
    sz += item->u.m.e[i].name_len + trb_av_size(item->u.m.e[i].val);
  return sz;
}

/* ---- validation ---- */

#define INVALID "One or more parameter values were invalid: "

/* A bounded message builder for the duplicates text: the list of elements
 * is cut with "..." so the fixed tail always fits in a trb_status. */
#define DUP_LIST_MAX 400
typedef struct msgb {
  char s[DUP_LIST_MAX + 4];
  size_t len;
  int full;
} msgb;

static void msgb_add(msgb *m, const char *p, size_t n) {
  if (m->full) return;
  if (n > DUP_LIST_MAX - m->len) {
    /* Cut at a UTF-8 boundary: the text ends up in a JSON error body. */
    n = DUP_LIST_MAX - m->len;
    while (n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80) n--;
    m->full = 1;
  }
  memcpy(m->s + m->len, p, n);
  m->len += n;
  if (m->full) {
    memcpy(m->s + m->len, "...", 3);
    m->len += 3;
  }
  m->s[m->len] = '\0';
}

static trb_err dup_error(const trb_av *set, trb_status *st) {
  msgb m = {.len = 0, .full = 0};
  m.s[0] = '\0';
  for (size_t i = 0; i < set->u.l.n && !m.full; i++) {
    const trb_av *e = set->u.l.v[i];
    if (i) msgb_add(&m, ", ", 2);
    if (e->type == TRB_T_S) {
      msgb_add(&m, e->u.s.p, e->u.s.len);
    } else if (e->type == TRB_T_N) {
      char buf[TRB_DEC_STR_MAX];
      size_t n = trb_dec_format(&e->u.n, buf, sizeof buf);
      msgb_add(&m, buf, n < sizeof buf ? n : sizeof buf - 1);
    } else {
      /* Base64 of at most 300 input bytes is an exact prefix of the full
       * encoding, and already longer than the list may be. */
      unsigned char out[404];
      size_t n = e->u.s.len > 300 ? 300 : e->u.s.len;
      int k = EVP_EncodeBlock(out, (const unsigned char *)e->u.s.p, (int)n);
      msgb_add(&m, (const char *)out, k > 0 ? (size_t)k : 0);
      if (n < e->u.s.len) msgb_add(&m, "...", 3);
    }
  }
  return trb_status_set(st, TRB_EINVAL, INVALID "Input collection [%s] contains duplicates.", m.s);
}

/* 1 if the set holds two elements equal by DynamoDB's meaning; -1 on OOM. */
static int set_has_dup(const trb_av *set) {
  size_t n = set->u.l.n;
  if (n < 2) return 0;
  if (n <= SMALL_N) {
    for (size_t i = 0; i < n; i++)
      for (size_t j = i + 1; j < n; j++)
        if (trb_av_cmp_scalar(set->u.l.v[i], set->u.l.v[j]) == 0) return 1;
    return 0;
  }
  const trb_av **s = malloc(n * sizeof *s);
  if (!s) return -1;
  memcpy(s, set->u.l.v, n * sizeof *s);
  qsort(s, n, sizeof *s, ptr_scalar_cmp);
  int dup = 0;
  for (size_t i = 1; i < n && !dup; i++) dup = trb_av_cmp_scalar(s[i - 1], s[i]) == 0;
  free(s);
  return dup;
}

trb_err trb__av_check_name(size_t len, trb_status *st) {
  if (len == 0)
    return trb_status_set(st, TRB_EINVAL,
                          INVALID "An AttributeValue may not contain an empty attribute name");
  if (len > TRB_MAX_ATTR_NAME)
    return trb_status_set(st, TRB_EINVAL,
                          INVALID "Attribute name of %zu bytes exceeds the maximum length of %d bytes",
                          len, TRB_MAX_ATTR_NAME);
  return TRB_OK;
}

trb_err trb__av_too_deep(trb_status *st) {
  return trb_status_set(st, TRB_EINVAL,
                        "Nesting Levels have exceeded supported limits: Attributes in the item "
                        "have nested levels beyond supported limit");
}

/* `level` is the number of M/L containers above v inside the value being
 * validated (0 for an attribute's value). A container sits at nesting level
 * level + 1, so an attribute whose value is an M of scalars uses one level
 * and a chain of TRB_MAX_DEPTH (32) nested M/L is the most allowed; sets
 * and scalars add no level. (The exact counting rule of DynamoDB is not
 * documented; this one matches "32 levels deep" in its guide.) */
static trb_err validate(const trb_av *v, int level, trb_status *st) {
  trb_err rc;
  switch (v->type) {
    case TRB_T_S:
    case TRB_T_B:
    case TRB_T_N:
    case TRB_T_NULL:
    case TRB_T_BOOL:
      return TRB_OK;
    case TRB_T_M:
      if (level + 1 > TRB_MAX_DEPTH) goto too_deep;
      for (size_t i = 0; i < v->u.m.n; i++) {
        if ((rc = trb__av_check_name(v->u.m.e[i].name_len, st))) return rc;
        if ((rc = validate(v->u.m.e[i].val, level + 1, st))) return rc;
      }
      return TRB_OK;
    case TRB_T_L:
      if (level + 1 > TRB_MAX_DEPTH) goto too_deep;
      for (size_t i = 0; i < v->u.l.n; i++)
        if ((rc = validate(v->u.l.v[i], level + 1, st))) return rc;
      return TRB_OK;
    case TRB_T_SS:
    case TRB_T_NS:
    case TRB_T_BS: {
      if (v->u.l.n == 0) {
        const char *what = v->type == TRB_T_SS ? "An string set  may not be empty"
                           : v->type == TRB_T_NS ? "An number set  may not be empty"
                                                 : "A binary set may not be empty";
        return trb_status_set(st, TRB_EINVAL, INVALID "%s", what);
      }
      trb_type et = set_elem_type(v->type);
      for (size_t i = 0; i < v->u.l.n; i++)
        if (v->u.l.v[i]->type != et)
          return trb_status_set(st, TRB_EINVAL, INVALID "A %s set holds a %s element",
                                trb_type_name(v->type), trb_type_name(v->u.l.v[i]->type));
      int d = set_has_dup(v);
      if (d < 0) return trb_status_set(st, TRB_ENOMEM, NULL);
      if (d) return dup_error(v, st);
      return TRB_OK;
    }
  }
  return trb_status_set(st, TRB_EINVAL, "Unknown attribute value type %d", (int)v->type);
too_deep:
  return trb__av_too_deep(st);
}

trb_err trb_av_validate(const trb_av *v, trb_status *st) {
  if (!v) return trb_status_set(st, TRB_EINVAL, "missing attribute value");
  return validate(v, 0, st);
}

trb_err trb_item_validate(const trb_av *item, trb_status *st) {
  trb_err rc;
  if (!item || item->type != TRB_T_M)
    return trb_status_set(st, TRB_EINVAL, "an item must be a map of attributes");
  for (size_t i = 0; i < item->u.m.n; i++) {
    if ((rc = trb__av_check_name(item->u.m.e[i].name_len, st))) return rc;
    if ((rc = validate(item->u.m.e[i].val, 0, st))) return rc;
  }
  if (trb_item_size(item) > TRB_MAX_ITEM_SIZE)
    return trb_status_set(st, TRB_EINVAL, "Item size has exceeded the maximum allowed size");
  return TRB_OK;
}

const char *trb_type_name(trb_type t) {
  switch (t) {
    case TRB_T_S: return "S";
    case TRB_T_N: return "N";
    case TRB_T_B: return "B";
    case TRB_T_BOOL: return "BOOL";
    case TRB_T_NULL: return "NULL";
    case TRB_T_M: return "M";
    case TRB_T_L: return "L";
    case TRB_T_SS: return "SS";
    case TRB_T_NS: return "NS";
    case TRB_T_BS: return "BS";
  }
  return "?";
}
