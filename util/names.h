/*
 * names.h -- names the config file checks and the modules it configures
 * use again: attribute paths (a.b[0].c) and the column names derived from
 * them, and SQL type names. One rule each, so what the config accepts is
 * exactly what the PostgreSQL sink and the Avro projection read.
 */
#ifndef TRB_NAMES_H
#define TRB_NAMES_H

#include <stddef.h>

#define TRB_PATH_MAX_STEPS 32 /* a path whose column fits 63 bytes has fewer */

/* One step of an attribute path: its text (len bytes, borrowed from the
 * path: a map member's name, or a list index's digits) and, for an index,
 * its value. */
typedef struct trb_path_step {
  const char *text;
  size_t len;
  int is_index;
  size_t index;
} trb_path_step;

/* Splits an attribute path: NAME, then .NAME or [N] steps, NAME any bytes
 * but . [ ]. 1 with the steps in steps[0..*n) (cap entries), 0 when the
 * path is malformed or has more than cap steps. */
int trb_path_parse(const char *path, trb_path_step *steps, size_t cap, size_t *n);
/* The path's column name: its steps joined by _ ("a.b[0]" -> "a_b_0"),
 * into col (cap >= 64). 0 when the path is malformed or the name would not
 * fit PostgreSQL's 63 bytes. */
int trb_path_column(const char *path, char *col, size_t cap);

/* A PostgreSQL type name as the config may give it: words of lowercase
 * letters, digits and underscores separated by single spaces, an optional
 * (p) or (p,s), an optional []: "numeric(12,2)", "double precision",
 * "text[]". Nothing else reaches SQL, so nothing can be injected. */
int trb_sql_type_ok(const char *t);

#endif
