/*
 * schema_registry.h -- a client of a Confluent-compatible schema registry:
 * registers a schema under a subject and gets back the id that Confluent's
 * wire format puts in front of every Kafka key and value (00, the id as 4
 * bytes big-endian, the Avro datum; see transform/avro_envelope.h).
 *
 * Where it sits: the Kafka sink (sinks/kafka_sink.c) creates one when
 * kafka.schema_registry is set and, at the first message of each topic,
 * registers the key and value schemas under "<topic>-key" and
 * "<topic>-value" (Confluent's TopicNameStrategy).
 *
 * The one REST call made, over HTTP/1.1 with libcurl:
 *
 *   POST {base}/subjects/{subject}/versions
 *   Content-Type: application/vnd.schemaregistry.v1+json
 *   {"schema": "<the schema JSON, as one JSON string>"}
 *
 *   200 {"id": N, ...}         the schema's id; registering a schema the
 *                              subject already has returns its id again
 *   4xx/5xx {"error_code": E, "message": "..."}
 *
 * The subject is percent-encoded in the path. Credentials may be given in
 * the URL (https://user:secret@host:8081); they never appear in messages.
 * libcurl's usual proxy variables (https_proxy, no_proxy, ...) apply.
 *
 * Caching: a successful registration is remembered as (subject, schema
 * text) -> id for the handle's life, so each pair costs one request per
 * process. Failures are not remembered: the next call asks again.
 *
 * Thread-safety: calls on one handle are serialized by a mutex inside (the
 * request is made with it held); different handles are independent.
 */
#ifndef TRB_SCHEMA_REGISTRY_H
#define TRB_SCHEMA_REGISTRY_H

#include <stdint.h>

#include "util/trb_err.h"

typedef struct trb_registry trb_registry;

/* Default of a request's whole duration (connecting included). */
#define TRB_REGISTRY_TIMEOUT_MS 10000

/*
 * A client of the registry at base_url ("http://host:8081", optionally
 * with a path prefix and trailing slashes, which are dropped), borrowed
 * for the call. timeout_ms bounds each request; 0 or less gives
 * TRB_REGISTRY_TIMEOUT_MS. Nothing is contacted here. *out is
 * caller-owned (trb_registry_destroy); on failure it is NULL and st says
 * why: TRB_ECONFIG for a URL that is empty, does not parse, or is not
 * http(s); TRB_ENOMEM; TRB_EINTERNAL when libcurl cannot start.
 */
trb_err trb_registry_create(const char *base_url, int timeout_ms, trb_registry **out,
                            trb_status *st);
/* Frees the handle and its cache. NULL is a no-op. */
void trb_registry_destroy(trb_registry *r);

/* The base URL as messages show it (no credentials). Owned by the handle. */
const char *trb_registry_url(const trb_registry *r);

/*
 * Registers schema_json (the schema's text, sent as it is) under subject
 * and sets *id, from the cache when this handle registered the same pair
 * before (then no request is made). subject and schema_json are borrowed,
 * NUL-terminated UTF-8. *id is untouched on failure.
 * Errors, each with the subject, the request and the registry's answer (its
 * error_code and message when it sent them) in st:
 *   TRB_EIO       the registry could not be reached or did not answer in
 *                 time, answered 5xx, 408 or 429, or answered 2xx without
 *                 a usable {"id": N} (0 <= N <= 2^31-1): worth retrying
 *                 later;
 *   TRB_ECONFIG   any other answer outside 2xx: the registry refuses (409
 *                 incompatible with the subject's earlier versions, 422
 *                 not a valid schema, 401/403 credentials, 404 no such
 *                 API at that URL); the same request gets the same answer
 *                 until someone changes the registry or the configuration;
 *   TRB_EINVAL    NULL or empty subject, NULL schema, invalid UTF-8;
 *   TRB_ENOMEM.
 */
trb_err trb_registry_register(trb_registry *r, const char *subject, const char *schema_json,
                              uint32_t *id, trb_status *st);

#endif
