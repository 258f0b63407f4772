/*
 * avro_projection.h -- a table's typed projection for the Kafka sink: flat
 * columns, each an attribute path with a declared Avro type, for tools
 * that want columns rather than the envelope's exact AttributeValues.
 *
 * Schema: the envelope (schemas/tributary-envelope.avsc) with one more
 * field at the end,
 *
 *   {"name": "columns", "default": null, "type": ["null", {"type": "record",
 *     "name": "Columns_<table>", "namespace": "io.tributary.projection",
 *     "fields": [{"name": <column>, "type": ["null", <type>], "default": null}, ...]}]}
 *
 * <table> with every character outside [A-Za-z0-9_] turned into _, the
 * columns in the config's order, each named after its path (a.b[0] ->
 * a_b_0). Since Avro writes a record's fields one after the other, a
 * projected value is the envelope's datum followed by this field's.
 *
 * Types, and what fits each (anything else is an error, never coerced):
 *   string   an S                     bytes    a B
 *   long     an N that is an integer from -2^63 to 2^63-1
 *   int      an N that is an integer from -2^31 to 2^31-1
 *   double   an N (the nearest double)   float  an N within float's range
 *   boolean  a BOOL
 * A missing attribute, or a NULL, is null. A REMOVE has no new image: its
 * columns field is null.
 *
 * Thread-safety: immutable after create.
 */
#ifndef TRB_AVRO_PROJECTION_H
#define TRB_AVRO_PROJECTION_H

#include <jansson.h>
#include <stdint.h>

#include "engine/value.h"
#include "transform/avro_envelope.h"
#include "util/buf.h"
#include "util/trb_err.h"

typedef struct trb_avro_proj trb_avro_proj;

/* columns: a JSON object, attribute path -> Avro type name (as the config
 * keeps kafka.tables). TRB_ECONFIG naming the column when a path, its
 * column name (an Avro name: [A-Za-z_][A-Za-z0-9_]*) or a type is not
 * valid. *out caller-owned. */
trb_err trb_avro_proj_create(const trb_avro *a, const char *table, const json_t *columns,
                             trb_avro_proj **out, trb_status *st);
void trb_avro_proj_destroy(trb_avro_proj *p); /* NULL ok */

/* The whole value schema (JSON text, to register or publish), its
 * fingerprint (single-object framing). Owned by the handle. */
const char *trb_avro_proj_schema(const trb_avro_proj *p);
uint64_t trb_avro_proj_fingerprint(const trb_avro_proj *p);

/* Appends the columns field's datum for item (NULL: null). A value that
 * does not fit its column: TRB_EINVAL, "column NAME (path PATH, TYPE): ...",
 * and out is as it was (append trb_avro_proj_encode_null instead, or stop). */
trb_err trb_avro_proj_encode(const trb_avro_proj *p, const trb_av *item, trb_buf *out,
                             trb_status *st);
/* Appends a null columns field. */
trb_err trb_avro_proj_encode_null(trb_buf *out);

#endif
