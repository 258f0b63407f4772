/*
 * value.h -- DynamoDB attribute values and items.
 *
 * An attribute value (trb_av) is a tree: scalars S, N, B, BOOL, NULL;
 * documents M (name -> value) and L (ordered values); sets SS, NS, BS.
 * An item is a trb_av of type M whose entries are the top-level attributes.
 *
 * Ownership: a container owns its children; trb_av_destroy() frees the
 * whole tree. Functions that take a `trb_av *val` to insert into a container
 * take ownership of it on success only (on failure the caller still owns it).
 *
 * The struct is transparent so the engine and the expression evaluator can
 * walk trees without accessor calls; build values with the constructors
 * below so invariants hold (S/B bytes are NUL-terminated for convenience but
 * may contain NULs; N is a canonical trb_dec).
 *
 * This header also declares the two codecs that belong to items:
 *   - DynamoDB JSON <-> trb_av (item_json.c, jansson);
 *   - the compact binary encoding used by the WAL and the store
 *     (item_codec.c, byte layout documented there).
 */
#ifndef TRB_VALUE_H
#define TRB_VALUE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/decimal.h"
#include "util/buf.h"
#include "util/trb_err.h"

/* The order is the on-disk type tag of the binary encoding: never reorder. */
typedef enum trb_type {
  TRB_T_S = 1,
  TRB_T_N = 2,
  TRB_T_B = 3,
  TRB_T_BOOL = 4,
  TRB_T_NULL = 5,
  TRB_T_M = 6,
  TRB_T_L = 7,
  TRB_T_SS = 8,
  TRB_T_NS = 9,
  TRB_T_BS = 10,
} trb_type;

#define TRB_MAX_DEPTH 32              /* nesting levels of M/L */
#define TRB_MAX_ITEM_SIZE 409600      /* 400 KB, names + values */
#define TRB_MAX_PK_SIZE 2048
#define TRB_MAX_SK_SIZE 1024
#define TRB_MAX_ATTR_NAME 65535

typedef struct trb_av trb_av;

typedef struct trb_attr {
  char *name;      /* owned, NUL-terminated, UTF-8 */
  size_t name_len;
  trb_av *val;     /* owned */
} trb_attr;

struct trb_av {
  trb_type type;
  union {
    struct { char *p; size_t len; } s; /* S and B: owned bytes (+ NUL) */
    trb_dec n;                         /* N */
    int b;                             /* BOOL: 0 or 1 */
    struct { trb_attr *e; size_t n, cap; } m;   /* M: unique names, insertion order */
    struct { trb_av **v; size_t n, cap; } l;    /* L, SS, NS, BS (elements of S/N/B) */
  } u;
};

/* ---- constructors (NULL on out-of-memory); the result is caller-owned ---- */
trb_av *trb_av_new_s(const char *p, size_t len);   /* copies */
trb_av *trb_av_new_b(const void *p, size_t len);   /* copies */
trb_av *trb_av_new_n(const trb_dec *d);
trb_av *trb_av_new_bool(int v);
trb_av *trb_av_new_null(void);
trb_av *trb_av_new_m(void);
trb_av *trb_av_new_l(void);
trb_av *trb_av_new_set(trb_type t);                /* TRB_T_SS, NS or BS, empty */
void trb_av_destroy(trb_av *v);                    /* NULL is a no-op */
trb_av *trb_av_copy(const trb_av *v);              /* deep copy; NULL on OOM */

/* ---- maps ---- */
/* Sets name -> val, replacing (and destroying) an existing value of that
 * name. Takes ownership of val on success. */
trb_err trb_av_m_set(trb_av *m, const char *name, size_t name_len, trb_av *val);
/* Borrowed pointer to the value, or NULL. */
trb_av *trb_av_m_get(const trb_av *m, const char *name, size_t name_len);
/* Removes and destroys; returns 1 if it was there. */
int trb_av_m_remove(trb_av *m, const char *name, size_t name_len);

/* ---- lists and sets ---- */
/* Appends val (takes ownership on success). For sets, the element type must
 * match (S for SS, N for NS, B for BS) or TRB_EINVAL; duplicates are NOT
 * checked here (trb_av_validate does, so the codec can report them). */
trb_err trb_av_l_append(trb_av *l, trb_av *val);

/* ---- semantics ---- */
/* Deep equality with DynamoDB's meaning: numbers by value, maps regardless
 * of entry order, sets regardless of element order. */
int trb_av_equal(const trb_av *a, const trb_av *b);
/* Total order on scalars of the same type (S and B bytewise unsigned, N
 * numeric): <0, 0, >0. For other types compares type tags only. */
int trb_av_cmp_scalar(const trb_av *a, const trb_av *b);
/* DynamoDB's size of a value in bytes (spec 2.3): S/B length, N per
 * trb_dec_size, BOOL/NULL 1, M/L 3 + per element (1 + size [+ name len]),
 * sets the sum of their elements. */
size_t trb_av_size(const trb_av *v);
/* Size of an item: sum over top-level attributes of name length + value size. */
size_t trb_item_size(const trb_av *item);
/*
 * Checks the invariants a client's value must satisfy, with DynamoDB's
 * ValidationException texts in st (TRB_EINVAL):
 *   - sets non-empty ("One or more parameter values were invalid: An string
 *     set  may not be empty" / "An number set  may not be empty" / "A binary set may not be empty"),
 *   - no duplicates in sets, numbers compared by value ("One or more
 *     parameter values were invalid: Input collection [a, a] contains duplicates."),
 *   - nesting depth <= 32,
 *   - attribute names 1..65535 bytes.
 */
trb_err trb_av_validate(const trb_av *v, trb_status *st);
/* trb_av_validate on each attribute, plus the 400 KB item size limit
 * ("Item size has exceeded the maximum allowed size"). */
trb_err trb_item_validate(const trb_av *item, trb_status *st);
/* "S", "N", ..., "BS". */
const char *trb_type_name(trb_type t);

/* ---- DynamoDB JSON codec (item_json.c) ---- */
/*
 * One AttributeValue: {"S":"x"}, {"N":"1"}, {"B":"<base64>"}, {"BOOL":true},
 * {"NULL":true}, {"M":{...}}, {"L":[...]}, {"SS":[...]}, {"NS":[...]},
 * {"BS":[...]}. Errors are TRB_EINVAL with DynamoDB's texts (spec 2.1):
 * empty or multi-key objects, N given as a JSON number, bad base64, NULL
 * false, bad numbers (trb_dec_parse's texts), empty sets, duplicates, depth.
 * *out is caller-owned on success.
 */
trb_err trb_av_from_json(const json_t *j, trb_av **out, trb_status *st);
/* An item or key: a JSON object of name -> AttributeValue. Result is an M. */
trb_err trb_item_from_json(const json_t *j, trb_av **out, trb_status *st);
/* Parses text first; malformed JSON is TRB_EINVAL naming line and column. */
trb_err trb_item_from_json_text(const char *text, size_t len, trb_av **out, trb_status *st);
trb_err trb_av_from_json_text(const char *text, size_t len, trb_av **out, trb_status *st);
/* New references (caller decrefs); NULL on OOM. Numbers are canonical text. */
json_t *trb_av_to_json(const trb_av *v);
json_t *trb_item_to_json(const trb_av *item);
/* Compact one-line JSON text of an item, caller frees; NULL on OOM. */
char *trb_item_to_json_text(const trb_av *item);

/* ---- binary codec (item_codec.c) ---- */
/* Appends the encoding of v to b. */
trb_err trb_av_encode(const trb_av *v, trb_buf *b);
/* Decodes exactly one value occupying all of p[0..len). TRB_ECORRUPT on
 * malformed input (never reads out of bounds, never trusts a length before
 * checking it against what remains). *out caller-owned. */
trb_err trb_av_decode(const void *p, size_t len, trb_av **out);

#endif
