/*
 * http.h -- the HTTP/1.1 server (libmicrohttpd, thread pool + epoll).
 *
 * It accepts POST / (and answers GET / for health checks), reads the body up
 * to a cap, and hands each complete request to one handler callback in the
 * worker thread that received it. The handler fills a response; the server
 * adds x-amzn-RequestId and x-amz-crc32 (decimal CRC-32 of the exact body
 * bytes) to every response, errors included.
 *
 * The server knows nothing of DynamoDB: api/dynamo.c is the handler.
 */
#ifndef TRB_HTTP_H
#define TRB_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "util/trb_err.h"

typedef struct trb_http_server trb_http_server;

/*
 * Memory per connection (libmicrohttpd's MHD_OPTION_CONNECTION_MEMORY_LIMIT,
 * default 32 KiB): it holds the request line, the headers and the read
 * buffer (a larger body is passed on in pieces), and libmicrohttpd zeroes
 * all of it after every request of a keep-alive connection: 32 KiB of
 * memset was 5% of the server's CPU in bench_http's PutItem (8 KiB: 2%).
 * 16 KiB takes headers of up to about 13 KiB (an SDK's are 1-2 KiB, with a
 * session token); larger ones get 431 or a closed connection.
 * bench_mhd_bare uses the same.
 */
#define TRB_HTTP_CONN_MEMORY 16384

/* A request as the handler sees it. Everything is borrowed for the
 * duration of the callback. */
typedef struct trb_http_req {
  const char *method;          /* "POST", "GET" */
  const char *path;            /* "/" (path only, no query string) */
  const char *query;           /* raw query string or "" */
  const char *body;            /* not NUL-terminated; may be NULL when empty */
  size_t body_len;
  const char *request_id;      /* the x-amzn-RequestId this response will carry */
  void *conn;                  /* private: for trb_http_header() */
  void *priv;                  /* private: for trb_http_suspend() */
} trb_http_req;

/* A request header by name (case-insensitive), or NULL. */
const char *trb_http_header(const trb_http_req *req, const char *name);
/* Calls fn for every request header (for SigV4's canonical headers). */
void trb_http_each_header(const trb_http_req *req,
                          void (*fn)(void *ctx, const char *name, const char *value), void *ctx);

typedef struct trb_http_resp {
  int status;                  /* default 200 */
  char *body;                  /* malloc'ed; the server frees it */
  size_t body_len;
  const char *content_type;    /* static string; default "application/x-amz-json-1.0" */
} trb_http_resp;

/* Called once per complete request, on a worker thread. Must fill resp,
 * unless it called trb_http_suspend (then it leaves resp alone). */
typedef void (*trb_http_handler)(void *ctx, const trb_http_req *req, trb_http_resp *resp);

/*
 * A handler that must wait for something (a write's group commit) without
 * holding its worker thread: trb_http_suspend(req, fn, fctx) from inside
 * the handler returns a token; the handler returns; once some thread calls
 * trb_http_wake(token) (exactly once; it may even come before the handler
 * returns), fn(fctx, resp) fills the response on a worker thread. The
 * request (req) is not valid in fn.
 */
typedef void (*trb_http_cont)(void *fctx, trb_http_resp *resp);
void *trb_http_suspend(const trb_http_req *req, trb_http_cont fn, void *fctx);
void trb_http_wake(void *token);

/* Called for requests the server refuses itself (body over the cap,
 * wrong method or path): lets the handler shape the error body. May be
 * NULL (then a plain JSON error is sent). `kind` is "TooLarge", "BadMethod"
 * or "NotFound". */
typedef void (*trb_http_reject)(void *ctx, const char *kind, const trb_http_req *req,
                                trb_http_resp *resp);

typedef struct trb_http_opts {
  const char *listen;          /* "HOST:PORT"; port 0 picks a free port */
  unsigned threads;            /* worker threads; 0 = number of CPUs (at least 2) */
  size_t max_body;             /* bytes; 0 = 16 MiB */
  unsigned conn_timeout_s;     /* idle connection timeout; 0 = 60 */
} trb_http_opts;

/* Starts listening and serving. *out caller-owned (trb_http_stop). */
trb_err trb_http_start(const trb_http_opts *o, trb_http_handler h, trb_http_reject rej,
                       void *ctx, trb_http_server **out, trb_status *st);
/* The port actually bound (useful with port 0). */
int trb_http_port(const trb_http_server *s);
/* Stops accepting, finishes requests in flight, frees. NULL ok. */
void trb_http_stop(trb_http_server *s);

/* CRC-32 (IEEE, zlib's) of bytes: the value of x-amz-crc32. */
uint32_t trb_http_crc32(const void *p, size_t n);

#endif
