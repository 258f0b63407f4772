/*
 * json_body.h -- a request body's JSON text into a jansson tree, read with
 * yajl's event parser.
 *
 * jansson's own reader (json_loadb) takes about 3.9 us for a 250-byte
 * PutItem body on the benchmark machine, a fifth of an HTTP thread's CPU per
 * request; yajl reads the same text and the same tree is built from its
 * events in about 0.85 us (bench/RESULTS.md, 2026-12-07). The rest of the
 * API keeps working on jansson's values.
 *
 * The rules are json_loadb(text, len, 0)'s, so that what was accepted and
 * refused before stays so:
 *   - RFC 8259 text, one value, nothing after it but whitespace; no
 *     comments;
 *   - strings are well-formed UTF-8 (no overlong forms, no surrogates,
 *     nothing past U+10FFFF), \u escapes of surrogates come in valid
 *     high-low pairs, and no string or key holds U+0000;
 *   - an integer that does not fit in json_int_t, or a real whose magnitude
 *     overflows a double, is an error; other numbers are json_integer or
 *     json_real as jansson makes them;
 *   - at most TRB_JSON_MAX_DEPTH nested arrays and objects;
 *   - a key given twice: the later value replaces the earlier one, which
 *     keeps its place.
 * Unlike json_loadb(.., 0), a NUL byte after a number or a literal
 * ("[false\0]") is refused, as RFC 8259 has it (jansson skips it), and
 * any value is accepted at the top (the caller checks it is an object,
 * with DynamoDB's wording).
 */
#ifndef TRB_JSON_BODY_H
#define TRB_JSON_BODY_H

#include <jansson.h>
#include <stddef.h>

#include "util/trb_err.h"

/* jansson's limit (JSON_PARSER_MAX_DEPTH) */
#define TRB_JSON_MAX_DEPTH 2048

/* The value of text[0..len) (borrowed; len may be 0); the caller owns the
 * returned reference. NULL on failure, with st set to TRB_ESERIAL and a
 * message saying what is wrong and where ("... (line L, column C)"), or to
 * TRB_ENOMEM. */
json_t *trb_json_body_parse(const char *text, size_t len, trb_status *st);

#endif
