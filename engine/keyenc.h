/*
 * keyenc.h -- key schemas and the order-preserving key encoding.
 *
 * A table's primary key is a partition key and an optional sort key, each of
 * type S, N or B. The store key of an item (its RocksDB key in the table's
 * column family) is:
 *
 *   hash32(pk) big-endian | ordenc(pk) | ordenc(sk)?
 *
 * hash32 is the top 32 bits of XXH3_64bits over ordenc(pk): it spreads
 * partitions over the key space so Scan segments and stream shards can be
 * contiguous hash ranges. ordenc is order-preserving and self-delimiting:
 * within one partition, memcmp order of store keys equals DynamoDB's sort-key
 * order (N numeric, S and B unsigned bytewise). Byte layout in keyenc.c.
 */
#ifndef TRB_KEYENC_H
#define TRB_KEYENC_H

#include <stdint.h>

#include "engine/value.h"
#include "util/buf.h"
#include "util/trb_err.h"

#define TRB_KEY_NAME_MAX 255

typedef struct trb_keyschema {
  char pk_name[TRB_KEY_NAME_MAX + 1];
  trb_type pk_type;              /* TRB_T_S, N or B */
  int has_sk;
  char sk_name[TRB_KEY_NAME_MAX + 1];
  trb_type sk_type;
} trb_keyschema;

/*
 * Checks that `item` (a full item, as PutItem gets) has valid key attributes:
 * present ("One or more parameter values were invalid: Missing the key <k>
 * in the item"), right type ("One or more parameter values were invalid:
 * Type mismatch for key <k> expected: S actual: N"), non-empty ("One or more
 * parameter values are not valid. The AttributeValue for a key attribute
 * cannot contain an empty string value. Key: <k>"), within size (2048 /
 * 1024 bytes, DynamoDB's texts in spec 2.4). TRB_EINVAL.
 */
trb_err trb_key_check_item(const trb_keyschema *ks, const trb_av *item, trb_status *st);
/*
 * Checks that `key` (as GetItem/DeleteItem/UpdateItem get) has exactly the
 * key attributes with the right types: otherwise "The provided key element
 * does not match the schema"; empty and oversize values as above.
 */
trb_err trb_key_check_key(const trb_keyschema *ks, const trb_av *key, trb_status *st);
/* New M holding just the key attributes of item (which must pass
 * trb_key_check_item). Caller-owned; NULL on OOM. */
trb_av *trb_key_from_item(const trb_keyschema *ks, const trb_av *item);

/* Appends the store key of `item_or_key` (which must contain the key
 * attributes) to b. */
trb_err trb_key_encode(const trb_keyschema *ks, const trb_av *item_or_key, trb_buf *b);
/* Appends hash32 | ordenc(pk): the prefix shared by every store key of one
 * partition (for Query). */
trb_err trb_key_encode_partition(const trb_av *pk, trb_buf *b);
/* Appends ordenc(v) for a scalar S, N or B. */
trb_err trb_key_encode_value(const trb_av *v, trb_buf *b);
/* The partition hash of a pk value (same as the first 4 bytes of its store
 * key). Stream shards and Scan segments are ranges of it. */
uint32_t trb_key_hash(const trb_av *pk);
/* Decodes a store key back into an M of the key attributes. TRB_ECORRUPT on
 * malformed input. *out caller-owned. */
trb_err trb_key_decode(const trb_keyschema *ks, const void *p, size_t len, trb_av **out);

#endif
