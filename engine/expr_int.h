/*
 * expr_int.h -- internals shared by the expression module's files:
 *   expr_env.c     environment (placeholders), arena, reserved words,
 *                  tokenizer, error slots and syntax-error texts;
 *   expr_parse.c   recursive-descent parsers building the AST below;
 *   expr_eval.c    conditions, key conditions, projections;
 *   expr_update.c  UpdateExpression application.
 * Not part of the API (engine/expr.h is).
 *
 * Data flow: trb_expr_parse tokenizes the text into an array of tokens,
 * parses it into an AST allocated in the expression's arena, records the
 * first error of each semantic class in "slots" (so that the reported error
 * follows DynamoDB's precedence rather than text order), and only then
 * reports: syntax errors first, then the highest-priority slot. Evaluators
 * walk the immutable AST; nothing here has global mutable state.
 */
#ifndef TRB_EXPR_INT_H
#define TRB_EXPR_INT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/expr.h"

#define XP_MAX_TEXT 4096         /* bytes of expression text */
#define XP_MAX_PLACEHOLDER 255   /* bytes of a #name / :value token */
#define XP_MAX_DEPTH 32          /* elements of a document path */
#define XP_MAX_IN 100            /* operands of IN's list */
#define XP_MAX_OPS 300           /* operators and functions per expression */
#define XP_MSG_USER_MAX 200      /* bytes of user text quoted in a message */

/* ---- arena: every AST allocation of one expression, freed at once ---- */
typedef struct xa_blk xa_blk;
typedef struct xarena {
  xa_blk *head;
} xarena;
/* Zeroed memory, NULL on OOM. */
void *trb__xa_alloc(xarena *a, size_t n);
/* NUL-terminated copy, NULL on OOM. */
char *trb__xa_strdup(xarena *a, const char *p, size_t n);
void trb__xa_free(xarena *a);

/* ---- environment ---- */
struct trb_expr_env {
  size_t nnames;
  char **nkey;             /* "#n", owned */
  char **nval;             /* attribute name, owned */
  size_t *nval_len;
  unsigned char *nused;
  const trb_av *values;    /* M or NULL, borrowed */
  unsigned char *vused;    /* one per values->u.m entry */
  int parsed;              /* an expression was parsed with it */
};
/* Index of a #name key (length n) or -1; marks it used when found. */
long trb__env_name(trb_expr_env *env, const char *key, size_t n);
/* The value of a :value key or NULL; marks it used when found. */
const trb_av *trb__env_value(trb_expr_env *env, const char *key, size_t n);

/* 1 when the n bytes at p are a reserved word (case-insensitive). */
int trb__expr_reserved(const char *p, size_t n);

/* ---- tokens ---- */
typedef enum xtok_type {
  TK_EOF = 0,
  TK_NAME,    /* [a-zA-Z][a-zA-Z0-9_]*: names, keywords, function names */
  TK_HASH,    /* #[a-zA-Z0-9_]+ */
  TK_COLON,   /* :[a-zA-Z0-9_]+ */
  TK_NUM,     /* [0-9]+ (only valid as a list index) */
  TK_LP, TK_RP, TK_LB, TK_RB, TK_COMMA, TK_DOT,
  TK_EQ, TK_NE, TK_LT, TK_LE, TK_GT, TK_GE,
  TK_PLUS, TK_MINUS,
  TK_BAD,     /* any other character (one UTF-8 sequence), lone # or :,
               * a placeholder longer than XP_MAX_PLACEHOLDER */
} xtok_type;

typedef struct xtok {
  xtok_type t;
  uint32_t off, len;
} xtok;

/* Tokenizes text[0..len) (len <= XP_MAX_TEXT); the array ends with TK_EOF.
 * *out malloc'ed (caller frees). TRB_ENOMEM only. */
trb_err trb__expr_lex(const char *text, size_t len, xtok **out, size_t *n);

/* ---- document paths ---- */
typedef struct xpelem {
  const char *name;        /* resolved attribute name (arena), NULL for an index */
  size_t len;
  uint32_t index;
} xpelem;

typedef struct xpath {
  xpelem *e;
  uint32_t n;
} xpath;

/* 1 when equal element by element. */
int trb__xpath_equal(const xpath *a, const xpath *b);
/* "[a, b, [2]]" into buf (bounded, always NUL-terminated). */
void trb__xpath_str(const xpath *p, char *buf, size_t cap);
/* The value at p inside item (an M), or NULL when missing / wrong type. */
const trb_av *trb__xpath_get(const trb_av *item, const xpath *p);

/* ---- AST ---- */
typedef enum xnode_kind {
  XN_PATH = 1, XN_VALUE, XN_FUNC,         /* operands */
  XN_ARITH,                                /* update: a + b, a - b */
  XN_CMP, XN_BETWEEN, XN_IN, XN_AND, XN_OR, XN_NOT, /* conditions */
} xnode_kind;

typedef enum xfn {
  XF_UNKNOWN = 0,
  XF_ATTR_EXISTS, XF_ATTR_NOT_EXISTS, XF_ATTR_TYPE, XF_BEGINS_WITH, XF_CONTAINS, XF_SIZE,
  XF_IF_NOT_EXISTS, XF_LIST_APPEND,
} xfn;

typedef enum xcmp { XC_EQ = 1, XC_NE, XC_LT, XC_LE, XC_GT, XC_GE } xcmp;

typedef struct xnode xnode;
struct xnode {
  xnode_kind kind;
  int op;                  /* xcmp for XN_CMP, xfn for XN_FUNC, '+'/'-' for XN_ARITH */
  const char *fname;       /* XN_FUNC: the name as written (arena) */
  xpath path;              /* XN_PATH */
  const trb_av *val;       /* XN_VALUE: borrowed from the env */
  xnode **args;            /* operands (CMP 2, BETWEEN 3, IN 1+n, FUNC n, ...) */
  uint32_t nargs;
  uint8_t paren;           /* produced by "( ... )" */
  uint32_t end_tok;        /* index of the token just after the node */
};

typedef enum xu_kind { XU_SET = 0, XU_REMOVE, XU_ADD, XU_DELETE } xu_kind;

typedef struct xaction {
  xu_kind kind;
  xpath path;
  xnode *val;              /* SET: the value tree; ADD/DELETE: an XN_VALUE */
} xaction;

struct trb_expr {
  trb_expr_kind kind;
  xarena arena;
  xnode *root;             /* CONDITION, FILTER, KEYCOND */
  xaction *acts;           /* UPDATE, in text order */
  size_t nacts;
  xpath *paths;            /* PROJECTION */
  size_t npaths;
  const char **tops;       /* top-level names referred to / targeted, unique */
  size_t ntops;
};

/* "Condition", "Filter", "KeyCondition", "Projection", "Update". */
const char *trb__expr_kind_name(trb_expr_kind k);

/* Copies at most XP_MSG_USER_MAX bytes of p, cut at a UTF-8 boundary, into
 * buf (NUL-terminated); for quoting user text in messages. */
void trb__expr_quote(const char *p, size_t n, char *buf, size_t cap);

/* Replaces every invalid or truncated UTF-8 sequence of the NUL-terminated
 * s with '?', in place: messages end up in JSON bodies. */
void trb__expr_utf8_fix(char *s);

/* ---- projection of paths (shared by ProjectionExpression and
 * UPDATED_OLD/NEW): a new M with the values at the given non-overlapping
 * paths, nested structure kept, list elements in index order. ---- */
trb_err trb__expr_project_paths(const xpath *const *paths, size_t n, const trb_av *item,
                                trb_av **out, trb_status *st);

#endif
