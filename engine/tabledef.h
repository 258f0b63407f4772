/*
 * tabledef.h -- a table's definition as the catalog keeps it, and its
 * serialised form (carried by TABLE_CREATE / TABLE_UPDATE WAL records and
 * stored in the store's catalog). Format in tabledef.c.
 */
#ifndef TRB_TABLEDEF_H
#define TRB_TABLEDEF_H

#include <jansson.h>
#include <stdint.h>

#include "engine/index.h"
#include "engine/keyenc.h"
#include "util/buf.h"
#include "util/trb_err.h"

#define TRB_TABLE_NAME_MAX 255

typedef struct trb_tabledef {
  char name[TRB_TABLE_NAME_MAX + 1];
  trb_keyschema ks;
  uint64_t table_id;   /* LSN of its TABLE_CREATE record */
  int64_t created_us;  /* commit time of that record */
  /* Settings the engine stores but does not interpret (billing mode,
   * throughput, stream specification, TTL, tags, index definitions as the
   * API received them): a JSON object owned by the definition (one
   * reference), or NULL. Copy with trb_tabledef_copy, release with
   * trb_tabledef_fini. */
  json_t *ext;
  /* Secondary indexes: shared and immutable (engine/index.h), NULL when the
   * table has none. Copies take a reference; trb_tabledef_fini drops it. */
  trb_indexset *ix;
} trb_tabledef;

/* dst = src, taking new references to ext and ix. */
void trb_tabledef_copy(trb_tabledef *dst, const trb_tabledef *src);
/* Releases ext and ix. */
void trb_tabledef_fini(trb_tabledef *d);

/* Table names: 3..255 of [a-zA-Z0-9_.-] (spec 2.5). TRB_EINVAL with
 * DynamoDB's text otherwise. */
trb_err trb_tabledef_check_name(const char *name, trb_status *st);
/* Validates a key schema: names 1..255 bytes, types S/N/B, sk name != pk. */
trb_err trb_tabledef_check_keyschema(const trb_keyschema *ks, trb_status *st);

trb_err trb_tabledef_encode(const trb_tabledef *d, trb_buf *b);
/* TRB_ECORRUPT on malformed bytes, TRB_EVERSION on an unknown version.
 * d->ext receives its own reference (trb_tabledef_fini). */
trb_err trb_tabledef_decode(const void *p, size_t len, trb_tabledef *d, trb_status *st);

#endif
