/*
 * json_body.c -- JSON text into a jansson tree with yajl (see json_body.h).
 *
 * yajl calls back once per value, key and bracket; the tree is built as the
 * events come. An open array or object is a frame on a stack; a key waits in
 * `key` until its value arrives (the value of a key is the next event, or
 * the opening of a container, which takes the key before any key inside
 * it), so one buffer is enough for it.
 *
 * Four of jansson's rules need more than yajl does:
 *   - nothing but whitespace may follow the value: yajl refuses complete
 *     tokens there but not an unterminated string at the end of the text;
 *   - yajl takes form feed and vertical tab for whitespace; RFC 8259 and
 *     jansson do not, and inside a string they must be escaped anyway, so
 *     either byte anywhere is an error;
 *   - yajl turns a \u escape of a surrogate that is not in a high-low pair
 *     into '?' or into a wrong character; the text is checked for those
 *     before yajl reads it (only when it holds a backslash at all);
 *   - yajl checks the form of UTF-8 sequences but lets overlong forms and
 *     encoded surrogates through; every string and key goes through
 *     trb_utf8_valid.
 */
#include "api/json_body.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "util/utf8.h"

typedef struct {
  json_t *root;
  json_t **stack; /* open containers, innermost last */
  size_t depth, cap;
  json_t *inline_stack[32];
  char *key; /* the key waiting for its value */
  size_t key_len, key_cap;
  char inline_key[128];
  /* where the top value ended: yajl lets an unterminated string after it
   * through (it waits for more text), so the rest is checked here */
  yajl_handle h;
  int finishing; /* in yajl_complete_parse: the whole text was read */
  size_t len, root_end;
  /* set by a callback that stops the parse */
  trb_err err;
  const char *why; /* static text */
} builder;

static int fail(builder *b, trb_err code, const char *why) {
  b->err = code;
  b->why = why;
  return 0;
}

static void root_ends(builder *b) {
  b->root_end = b->finishing ? b->len : yajl_get_bytes_consumed(b->h);
}

/* v (owned) into the open container, or as the root */
static int add(builder *b, json_t *v) {
  if (!v) return fail(b, TRB_ENOMEM, "out of memory");
  if (b->depth >= TRB_JSON_MAX_DEPTH) {
    /* jansson counts every value, the innermost scalar too */
    json_decref(v);
    return fail(b, TRB_ESERIAL, "maximum parsing depth reached");
  }
  if (!b->depth) {
    b->root = v;
    if (!json_is_object(v) && !json_is_array(v)) root_ends(b);
    return 1;
  }
  json_t *c = b->stack[b->depth - 1];
  int rc = json_is_object(c) ? json_object_setn_new_nocheck(c, b->key, b->key_len, v)
                             : json_array_append_new(c, v);
  return rc ? fail(b, TRB_ENOMEM, "out of memory") : 1;
}

static int text_ok(builder *b, const unsigned char *s, size_t n) {
  if (memchr(s, 0, n))
    return fail(b, TRB_ESERIAL,
                "strings holding the character U+0000 (\\u0000) are not supported");
  if (!trb_utf8_valid((const char *)s, n)) return fail(b, TRB_ESERIAL, "invalid UTF-8 in a string");
  return 1;
}

static int on_null(void *ctx) { return add(ctx, json_null()); }

static int on_bool(void *ctx, int v) { return add(ctx, json_boolean(v)); }

/* jansson's rule: without '.', 'e' or 'E' an integer (json_int_t, or an
 * error), else a double (an error when it overflows; underflow is 0) */
static int on_number(void *ctx, const char *s, size_t n) {
  builder *b = ctx;
  char small[64];
  char *t = n < sizeof small ? small : malloc(n + 1);
  if (!t) return fail(b, TRB_ENOMEM, "out of memory");
  memcpy(t, s, n);
  t[n] = '\0';
  int ok;
  errno = 0;
  if (!strpbrk(t, ".eE")) {
    json_int_t v = strtoll(t, NULL, 10);
    ok = errno == ERANGE ? fail(b, TRB_ESERIAL, v < 0 ? "too big negative integer" : "too big integer")
                         : add(b, json_integer(v));
  } else {
    double v = strtod(t, NULL);
    ok = errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL)
             ? fail(b, TRB_ESERIAL, "real number overflow")
             : add(b, json_real(v));
  }
  if (t != small) free(t);
  return ok;
}

static int on_string(void *ctx, const unsigned char *s, size_t n) {
  builder *b = ctx;
  if (!text_ok(b, s, n)) return 0;
  return add(b, json_stringn_nocheck((const char *)s, n));
}

static int on_key(void *ctx, const unsigned char *s, size_t n) {
  builder *b = ctx;
  if (!text_ok(b, s, n)) return 0;
  if (n > b->key_cap) {
    size_t cap = n * 2;
    char *k = malloc(cap);
    if (!k) return fail(b, TRB_ENOMEM, "out of memory");
    if (b->key != b->inline_key) free(b->key);
    b->key = k;
    b->key_cap = cap;
  }
  memcpy(b->key, s, n);
  b->key_len = n;
  return 1;
}

static int open_container(builder *b, json_t *c) {
  if (!add(b, c)) return 0; /* add owns c now, and released it on failure */
  if (b->depth == b->cap) {
    size_t cap = b->cap * 4;
    json_t **s = malloc(cap * sizeof *s);
    if (!s) return fail(b, TRB_ENOMEM, "out of memory"); /* c is the tree's */
    memcpy(s, b->stack, b->depth * sizeof *s);
    if (b->stack != b->inline_stack) free(b->stack);
    b->stack = s;
    b->cap = cap;
  }
  b->stack[b->depth++] = c; /* borrowed: the parent (or root) holds it */
  return 1;
}

static int on_start_map(void *ctx) { return open_container(ctx, json_object()); }

static int on_start_array(void *ctx) { return open_container(ctx, json_array()); }

static int on_end(void *ctx) {
  builder *b = ctx;
  if (!--b->depth) root_ends(b);
  return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_bool,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_key,
    .yajl_end_map = on_end,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end,
};

static int hex4(const char *p, size_t avail, unsigned *out) {
  if (avail < 4) return 0;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                 : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                 : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                        : 16u;
    if (d == 16) return 0;
    v = v << 4 | d;
  }
  *out = v;
  return 1;
}

/* The offset of the first \u escape of a surrogate that is not the high
 * half of a high-low pair (or the low half after one), or len when there is
 * none. Escapes are found by walking from backslash to backslash; anything
 * malformed is left to yajl. */
static size_t lone_surrogate(const char *t, size_t len) {
  const char *p = memchr(t, '\\', len);
  while (p) {
    size_t i = (size_t)(p - t);
    unsigned cp, lo;
    if (i + 1 < len && t[i + 1] == 'u' && hex4(t + i + 2, len - i - 2, &cp)) {
      if (cp >= 0xDC00 && cp <= 0xDFFF) return i;
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (!(i + 7 < len && t[i + 6] == '\\' && t[i + 7] == 'u' &&
              hex4(t + i + 8, len - i - 8, &lo) && lo >= 0xDC00 && lo <= 0xDFFF))
          return i;
        i += 12;
      } else {
        i += 6;
      }
    } else {
      i += 2;
    }
    p = i < len ? memchr(t + i, '\\', len - i) : NULL;
  }
  return len;
}

/* line and column (from 1) of byte off */
static void where(const char *t, size_t len, size_t off, int *line, int *col) {
  if (off > len) off = len;
  *line = 1;
  size_t start = 0;
  for (size_t i = 0; i < off; i++)
    if (t[i] == '\n') (*line)++, start = i + 1;
  *col = (int)(off - start) + 1;
}

/* yajl's "lexical error: invalid char in json text.\n" without its class
 * and its line end */
static void yajl_why(yajl_handle h, const char *t, size_t len, char *out, size_t n) {
  unsigned char *e = yajl_get_error(h, 0, (const unsigned char *)t, len);
  const char *s = e ? (const char *)e : "not valid JSON";
  const char *colon = strstr(s, "error: ");
  if (colon) s = colon + 7;
  size_t l = strcspn(s, "\n");
  while (l && (s[l - 1] == '.' || s[l - 1] == ' ')) l--;
  snprintf(out, n, "%.*s", (int)l, s);
  if (e) yajl_free_error(h, e);
}

json_t *trb_json_body_parse(const char *text, size_t len, trb_status *st) {
  static const char empty[1] = "";
  if (!text) text = empty;
  int line, col;
  const char *ff = memchr(text, '\f', len), *vt = memchr(text, '\v', len);
  if (ff || vt) {
    const char *at = !ff ? vt : !vt ? ff : ff < vt ? ff : vt;
    where(text, len, (size_t)(at - text), &line, &col);
    trb_status_set(st, TRB_ESERIAL, "invalid character %s (line %d, column %d)",
                   *at == '\f' ? "form feed (\\f)" : "vertical tab (\\v)", line, col);
    return NULL;
  }
  size_t bad = lone_surrogate(text, len);
  if (bad < len) {
    where(text, len, bad, &line, &col);
    trb_status_set(st, TRB_ESERIAL, "invalid Unicode escape '%.6s': a surrogate not in a high-low pair "
                                    "(line %d, column %d)", text + bad, line, col);
    return NULL;
  }
  builder b = {.cap = sizeof b.inline_stack / sizeof *b.inline_stack,
               .key_cap = sizeof b.inline_key};
  b.stack = b.inline_stack;
  b.key = b.inline_key;
  yajl_handle h = yajl_alloc(&callbacks, NULL, &b);
  if (!h) {
    trb_status_set(st, TRB_ENOMEM, "out of memory");
    return NULL;
  }
  b.h = h;
  b.len = len;
  yajl_status ys = yajl_parse(h, (const unsigned char *)text, len);
  size_t off = yajl_get_bytes_consumed(h);
  if (ys == yajl_status_ok) {
    b.finishing = 1;
    ys = yajl_complete_parse(h);
    if (ys != yajl_status_ok) off = len; /* an error at the end of the text */
  }
  size_t tail = b.root_end;
  while (ys == yajl_status_ok && tail < len &&
         (text[tail] == ' ' || text[tail] == '\t' || text[tail] == '\n' || text[tail] == '\r'))
    tail++;
  json_t *out = NULL;
  if (ys == yajl_status_ok && b.root && tail == len) {
    out = b.root;
    b.root = NULL;
  } else if (ys == yajl_status_ok && b.root) {
    where(text, len, tail, &line, &col);
    trb_status_set(st, TRB_ESERIAL, "trailing garbage after the value (line %d, column %d)", line,
                   col);
  } else {
    where(text, len, off, &line, &col);
    if (ys == yajl_status_client_canceled) {
      if (b.err == TRB_ENOMEM)
        trb_status_set(st, TRB_ENOMEM, "out of memory");
      else
        trb_status_set(st, TRB_ESERIAL, "%s (line %d, column %d)", b.why, line, col);
    } else {
      char why[160];
      if (ys == yajl_status_ok)
        snprintf(why, sizeof why, "no value"); /* only whitespace */
      else
        yajl_why(h, text, len, why, sizeof why);
      trb_status_set(st, TRB_ESERIAL, "%s (line %d, column %d)", why, line, col);
    }
  }
  yajl_free(h);
  json_decref(b.root);
  if (b.stack != b.inline_stack) free(b.stack);
  if (b.key != b.inline_key) free(b.key);
  return out;
}
