/*
 * sigv4.h -- AWS Signature Version 4 verification for incoming requests
 * (spec section 1.9), HMAC-SHA256 with OpenSSL.
 *
 * With no credentials configured the server accepts any signature (the local
 * default); with credentials, every request must carry a valid
 * Authorization header whose access key is known, whose signature matches
 * the canonical request recomputed here, and whose X-Amz-Date is within the
 * clock-skew window.
 */
#ifndef TRB_SIGV4_H
#define TRB_SIGV4_H

#include <stdint.h>

#include "api/http.h"
#include "util/trb_err.h"

typedef struct trb_sigv4_key {
  const char *access_key_id;
  const char *secret_access_key;
} trb_sigv4_key;

/* Why a request was refused: each maps to the error AWS gives. */
typedef enum trb_sigv4_fail {
  TRB_SIGV4_OK = 0,
  TRB_SIGV4_MISSING,        /* MissingAuthenticationTokenException, 400:
                               "Request is missing Authentication Token" */
  TRB_SIGV4_INCOMPLETE,     /* IncompleteSignatureException, 400 */
  TRB_SIGV4_UNKNOWN_KEY,    /* UnrecognizedClientException, 400:
                               "The security token included in the request is invalid." */
  TRB_SIGV4_BAD_SIGNATURE,  /* InvalidSignatureException, 400: "The request signature we
                               calculated does not match the signature you provided. ..." */
  TRB_SIGV4_EXPIRED,        /* InvalidSignatureException, 400: "Signature expired: ..." */
} trb_sigv4_fail;

/*
 * Verifies req against the keys, for the server's region (a credential
 * scoped to another is refused, as AWS does; NULL = any region). now_s is
 * the current Unix time;
 * skew_s the allowed clock difference (AWS: 300 s... DynamoDB accepts 15
 * minutes: use 900). On failure returns the reason and writes AWS's message
 * into st (code TRB_EINVAL).
 */
trb_sigv4_fail trb_sigv4_verify(const trb_sigv4_key *keys, size_t nkeys, const char *region,
                                const trb_http_req *req, int64_t now_s, int64_t skew_s,
                                trb_status *st);
/* The exception name and HTTP status for a failure. */
const char *trb_sigv4_fail_type(trb_sigv4_fail f);

/*
 * Computes the signature a client with `key` would send for this request
 * (hex, 64 chars + NUL into out[65]), from the request's own
 * Authorization header's signed headers, date and scope. Exposed for tests.
 */
trb_err trb_sigv4_signature(const trb_sigv4_key *key, const trb_http_req *req, char out[65],
                            trb_status *st);

#endif
