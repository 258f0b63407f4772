/*
 * doc_json.h -- an item as a plain JSON document, the way relational and
 * document tools want it (the PostgreSQL sink's jsonb column):
 *
 *   S    -> string            N  -> number, its exact digits (never a double)
 *   B    -> base64 string     BOOL -> true / false     NULL -> null
 *   M    -> object            L  -> array
 *   SS / NS / BS -> arrays of strings / numbers / base64 strings
 *
 * The types are not kept (a set and a list both become arrays): the
 * DynamoDB-typed form (trb_item_to_json_text) is the lossless alternative.
 */
#ifndef TRB_DOC_JSON_H
#define TRB_DOC_JSON_H

#include "engine/value.h"
#include "util/buf.h"

/* Appends the JSON text of v to out. TRB_ENOMEM / TRB_ELIMIT from the buffer. */
trb_err trb_doc_json(const trb_av *v, trb_buf *out);
/* DynamoDB's typed JSON ({"S":"x"}, {"M":{...}}, ...), the exact bytes
 * json_dumps(trb_item_to_json(item), JSON_COMPACT | JSON_PRESERVE_ORDER)
 * gives, without building a jansson tree. */
trb_err trb_ddb_json_item(const trb_av *item, trb_buf *out);
trb_err trb_ddb_json_value(const trb_av *v, trb_buf *out);
/* A JSON string of p[0..n) (valid UTF-8), escaped as jansson escapes. */
trb_err trb_json_str_append(const char *p, size_t n, trb_buf *out);
/* Appends the padded base64 of p[0..n) to out. */
trb_err trb_base64_append(const void *p, size_t n, trb_buf *out);

#endif
