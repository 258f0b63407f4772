/*
 * index.h -- secondary indexes: their definitions (part of a table's
 * definition, engine/tabledef.h) and the entries the engine keeps for them.
 *
 * An index is a second ordering of (a projection of) a table's items, kept
 * in a column family of its own and written in the same store batch as the
 * base item, so a read of an index never sees a state the table never had.
 *
 * Index entry layout (this file's module owns it), in the index's column
 * family:
 *
 *   key   = store key of the item under the index key schema
 *           (hash32(ipk) | ordenc(ipk) | ordenc(isk)?, engine/keyenc.h)
 *           | ordenc(table pk) | ordenc(table sk)?
 *   value = binary item encoding (engine/item_codec.c) of the projection:
 *           KEYS_ONLY: the table and index key attributes; INCLUDE: those
 *           plus the named attributes; ALL: the whole item.
 *
 * The table key suffix makes entries unique when index keys repeat; within
 * one index partition entries sort by index sort key, then table key.
 * Sparse: an item without every index key attribute (or with one of another
 * type) has no entry.
 */
#ifndef TRB_INDEX_H
#define TRB_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "engine/keyenc.h"
#include "engine/value.h"
#include "util/buf.h"
#include "util/trb_err.h"

#define TRB_INDEX_MAX 25         /* 5 local + 20 global */
#define TRB_INDEX_NAME_MAX 255
#define TRB_INDEX_INCLUDE_MAX 100 /* NonKeyAttributes over all indexes */

typedef enum trb_proj {
  TRB_PROJ_ALL = 0,
  TRB_PROJ_KEYS_ONLY = 1,
  TRB_PROJ_INCLUDE = 2,
} trb_proj;

typedef struct trb_indexdef {
  char name[TRB_INDEX_NAME_MAX + 1];
  int local;                /* LSI: the table's partition key, made with the table */
  trb_keyschema ks;         /* the index key schema */
  trb_proj proj;
  char **include;           /* INCLUDE: attribute names (owned by the set) */
  size_t ninclude;
  uint64_t cf_id;           /* its column family; 0 until the commit thread assigns it */
  int64_t created_us;
} trb_indexdef;

/*
 * An immutable, reference-counted list of index definitions, shared by every
 * copy of a table definition. Build one with trb_indexset_new and
 * trb_indexset_add, then treat it as read-only.
 */
typedef struct trb_indexset {
  int refs;                 /* atomic */
  size_t n;
  trb_indexdef d[TRB_INDEX_MAX];
} trb_indexset;

/* New empty set with one reference; NULL on OOM. */
trb_indexset *trb_indexset_new(void);
/* Appends a copy of def (its include names are copied). TRB_ELIMIT when
 * full, TRB_ENOMEM. */
trb_err trb_indexset_add(trb_indexset *s, const trb_indexdef *def);
/* A new set with the same definitions (for building a changed one). */
trb_indexset *trb_indexset_dup(const trb_indexset *s);
/* Removes the definition at position i (a set being built). */
void trb_indexset_remove(trb_indexset *s, size_t i);
trb_indexset *trb_indexset_ref(trb_indexset *s); /* NULL ok */
void trb_indexset_unref(trb_indexset *s);        /* NULL ok */
/* Position of the index called name, or -1. */
int trb_indexset_find(const trb_indexset *s, const char *name);

/*
 * Checks the index key attributes an item carries (a full item about to be
 * written): each must have the index's key type ("One or more parameter
 * values were invalid: Type mismatch for Index Key <k> Expected: S Actual:
 * N IndexName: <i>") and not be an empty S/B. TRB_EINVAL.
 */
trb_err trb_index_check_item(const trb_indexset *s, const trb_av *item, trb_status *st);

/* 1 when item has every key attribute of the index with the right type
 * (and S/B values neither empty nor over the key size), i.e. it has an
 * entry there. */
int trb_index_covers(const trb_indexdef *ix, const trb_av *item);
/* Appends the entry key of item (which the index covers) to b. */
trb_err trb_index_entry_key(const trb_indexdef *ix, const trb_keyschema *table_ks,
                            const trb_av *item, trb_buf *b);
/* The projection of item into the index: a new M, caller-owned; NULL on
 * OOM. */
trb_av *trb_index_project(const trb_indexdef *ix, const trb_keyschema *table_ks,
                          const trb_av *item);
/* The key of an entry as LastEvaluatedKey gives it: index key attributes
 * plus table key attributes. New M, caller-owned; NULL on OOM. */
trb_av *trb_index_last_key(const trb_indexdef *ix, const trb_keyschema *table_ks,
                           const trb_av *item);
/* Checks that key is exactly an index + table key map (ExclusiveStartKey of
 * an index read). TRB_EINVAL "The provided starting key is invalid: ...". */
trb_err trb_index_check_start_key(const trb_indexdef *ix, const trb_keyschema *table_ks,
                                  const trb_av *key, trb_status *st);

#endif
