/*
 * http.c -- the HTTP/1.1 server on libmicrohttpd (see http.h for the
 * contract).
 *
 * Threads: MHD's own pool (MHD_USE_INTERNAL_POLLING_THREAD with
 * MHD_OPTION_THREAD_POOL_SIZE), each worker on its own epoll set (poll where
 * epoll is missing). A connection belongs to one worker for its whole life,
 * so its state needs no lock.
 *
 * State and allocation: one `http_conn` per TCP connection (allocated when
 * MHD accepts the socket, freed when it closes) is reused by every request
 * on that keep-alive connection: the raw request URI, the request id and the
 * body buffer live in it. A request therefore costs no allocation of ours
 * except body growth (a buffer above HTTP_KEEP_BUF is given back when the
 * request completes, so idle connections stay small) and the response that
 * MHD builds. MHD calls, in order, per request:
 *   uri_log_cb      -- request line parsed: copy the raw URI, new request id;
 *                      its return value becomes the request's con_cls.
 *   access_cb (1st) -- headers parsed: method/path/Content-Length checks.
 *   access_cb (n)   -- body chunks: appended up to the cap, then discarded.
 *   access_cb (last, *upload_data_size == 0) -- dispatch, queue response.
 *   completed_cb    -- request finished (sent, timed out or aborted).
 *
 * Body cap: a Content-Length above the cap is refused at once, before any
 * body byte is read (MHD then closes the connection, since the body is left
 * unread). A body without a length (chunked) that crosses the cap is read and
 * thrown away, and answered TooLarge at its end; if it goes on past twice
 * the cap the connection is cut without an answer. Memory held for a request
 * never exceeds the cap.
 *
 * Request path: trb_http_req.path is the path exactly as sent (still
 * percent-encoded, as SigV4's canonical URI needs it), and query the raw
 * text after '?'.
 */
#include "api/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "util/clock.h"
#include "util/log.h"

#define HTTP_DEFAULT_MAX_BODY (16u * 1024 * 1024)
#define HTTP_DEFAULT_TIMEOUT_S 60u
#define HTTP_KEEP_BUF (64u * 1024)   /* body buffer kept across requests */
#define HTTP_PREALLOC_MAX (1u * 1024 * 1024)
#define HTTP_ID_LEN 52
#define HTTP_DEFAULT_CT "application/x-amz-json-1.0"

enum { REJ_NONE = 0, REJ_TOO_LARGE, REJ_BAD_METHOD, REJ_NOT_FOUND };
static const char *const rej_kind[] = {NULL, "TooLarge", "BadMethod", "NotFound"};
static const int rej_status[] = {0, 413, 405, 404};

struct trb_http_server {
  struct MHD_Daemon *d;
  trb_http_handler h;
  trb_http_reject rej;
  void *ctx;
  size_t max_body;
  size_t discard_max;   /* body bytes read for a refused request before hanging up */
  unsigned timeout_s;
  int port;
  atomic_long inflight; /* requests between uri_log_cb and completed_cb */
  atomic_long handling; /* ... of them whole, being handled or answered */
  atomic_int stopping;  /* trb_http_stop has begun: no connection is suspended any more */
};

/* Per TCP connection; reused by each request on it (see the top comment). */
typedef struct http_conn {
  trb_http_server *srv;
  /* the current request */
  int active;           /* counted in srv->inflight */
  int whole;            /* counted in srv->handling */
  int started;          /* first access_cb call seen */
  int reject;           /* REJ_* decided so far */
  char *uri;            /* raw URI, split in place into path NUL query */
  size_t uri_cap;
  const char *query;    /* into uri, or "" */
  char *body;           /* len bytes (+ a NUL we keep for safety) */
  size_t len, cap;
  size_t discarded;     /* bytes read past the cap, or for a refused request */
  char request_id[HTTP_ID_LEN + 1];
  /* a handler that waits (trb_http_suspend): 0 no, 1 asked, 2 suspended,
   * 3 woken */
  atomic_int susp;
  struct MHD_Connection *mc;
  trb_http_cont cont;
  void *cont_ctx;
} http_conn;

/* ---- request ids: 52 upper-case alphanumerics like AWS's ---- */

/* xoshiro256** per thread, seeded from OpenSSL's RAND_bytes. Ids need to be
 * unique, not secret; this keeps RAND_bytes (and its lock) off the hot path. */
static __thread uint64_t id_rng[4];
static __thread int id_rng_ready;

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t id_next(void) {
  if (!id_rng_ready) {
    if (RAND_bytes((unsigned char *)id_rng, sizeof id_rng) != 1) {
      /* No entropy from OpenSSL: fall back to time and addresses (the ids
       * stay distinct between threads, which is all that is needed). */
      uint64_t s = (uint64_t)trb_mono_ns() ^ (uint64_t)(uintptr_t)&id_rng ^ (uint64_t)time(NULL);
      for (int i = 0; i < 4; i++) {
        s += 0x9e3779b97f4a7c15ull;
        uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        id_rng[i] = z ^ (z >> 31);
      }
    }
    if (!(id_rng[0] | id_rng[1] | id_rng[2] | id_rng[3])) id_rng[0] = 1;
    id_rng_ready = 1;
  }
  uint64_t *s = id_rng;
  uint64_t r = rotl64(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl64(s[3], 45);
  return r;
}

static void make_request_id(char out[HTTP_ID_LEN + 1]) {
  static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  for (int i = 0; i < HTTP_ID_LEN; i += 2) {
    uint64_t r = id_next();
    /* two draws of 32 bits, each mapped to [0,36) by multiply-shift */
    out[i] = alpha[((r & 0xffffffffu) * 36) >> 32];
    out[i + 1] = alpha[((r >> 32) * 36) >> 32];
  }
  out[HTTP_ID_LEN] = 0;
}

uint32_t trb_http_crc32(const void *p, size_t n) {
  if (!n) return 0;
  return (uint32_t)crc32_z(0L, (const Bytef *)p, n);
}

/* ---- headers ---- */

const char *trb_http_header(const trb_http_req *req, const char *name) {
  if (!req || !req->conn || !name) return NULL;
  return MHD_lookup_connection_value((struct MHD_Connection *)req->conn, MHD_HEADER_KIND, name);
}

typedef struct each_ctx {
  void (*fn)(void *ctx, const char *name, const char *value);
  void *ctx;
} each_ctx;

static enum MHD_Result each_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value) {
  (void)kind;
  each_ctx *e = cls;
  if (key) e->fn(e->ctx, key, value ? value : "");
  return MHD_YES;
}

void trb_http_each_header(const trb_http_req *req,
                          void (*fn)(void *ctx, const char *name, const char *value), void *ctx) {
  if (!req || !req->conn || !fn) return;
  each_ctx e = {fn, ctx};
  MHD_get_connection_values((struct MHD_Connection *)req->conn, MHD_HEADER_KIND, each_cb, &e);
}

/* ---- responses ---- */

/* Queues r with the headers every response carries; takes r->body whatever
 * happens. */
static enum MHD_Result send_resp(struct MHD_Connection *mc, const http_conn *c,
                                 trb_http_resp *r) {
  int status = r->status;
  if (status < 100 || status > 599) status = 500;
  size_t len = r->body ? r->body_len : 0;
  char crc[16];
  snprintf(crc, sizeof crc, "%u", (unsigned)trb_http_crc32(r->body, len));
  struct MHD_Response *mr = MHD_create_response_from_buffer(len, r->body, MHD_RESPMEM_MUST_FREE);
  if (!mr) {
    free(r->body);
    r->body = NULL;
    trb_log_warn("http", "out of memory building a response; closing the connection");
    return MHD_NO;
  }
  r->body = NULL; /* MHD frees it with the response */
  enum MHD_Result rc = MHD_NO;
  /* stopping: the client's next request goes to a new connection (which
   * nobody accepts any more), not to this one */
  if (atomic_load(&c->srv->stopping) &&
      MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES) {
    MHD_destroy_response(mr);
    return MHD_NO;
  }
  if (MHD_add_response_header(mr, "x-amzn-RequestId", c->request_id) != MHD_YES ||
      MHD_add_response_header(mr, "x-amz-crc32", crc) != MHD_YES ||
      MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
                              r->content_type ? r->content_type : HTTP_DEFAULT_CT) != MHD_YES)
    goto done;
  if (status == 405 && MHD_add_response_header(mr, MHD_HTTP_HEADER_ALLOW, "GET, POST") != MHD_YES)
    goto done;
  rc = MHD_queue_response(mc, (unsigned)status, mr);
done:
  MHD_destroy_response(mr);
  return rc;
}

static void fill_req(trb_http_req *q, struct MHD_Connection *mc, const http_conn *c,
                     const char *method, int with_body) {
  q->method = method;
  q->path = c->uri;
  q->query = c->query;
  q->body = with_body && c->len ? c->body : NULL;
  q->body_len = with_body ? c->len : 0;
  q->request_id = c->request_id;
  q->conn = mc;
  q->priv = (void *)c;
}

void *trb_http_suspend(const trb_http_req *req, trb_http_cont fn, void *fctx) {
  http_conn *c = req->priv;
  c->mc = req->conn;
  c->cont = fn;
  c->cont_ctx = fctx;
  atomic_store(&c->susp, 1);
  return c;
}

void trb_http_wake(void *token) {
  http_conn *c = token;
  for (;;) {
    int s = atomic_load(&c->susp);
    if (s == 1) { /* before the handler returned: it will not suspend */
      int one = 1;
      if (atomic_compare_exchange_weak(&c->susp, &one, 3)) return;
    } else if (s == 2) {
      int two = 2;
      if (atomic_compare_exchange_weak(&c->susp, &two, 3)) {
        MHD_resume_connection(c->mc);
        return;
      }
    } else {
      return; /* 0 or 3: nothing waits */
    }
  }
}

/* Answers a request the server refuses itself, through the reject callback
 * when there is one. */
static enum MHD_Result send_reject(struct MHD_Connection *mc, http_conn *c, const char *method,
                                   int kind) {
  trb_http_server *s = c->srv;
  trb_http_resp r = {.status = rej_status[kind]};
  if (s->rej) {
    trb_http_req q;
    fill_req(&q, mc, c, method, 0);
    s->rej(s->ctx, rej_kind[kind], &q, &r);
  } else {
    const char *msg = kind == REJ_TOO_LARGE    ? "Request body is larger than the server accepts"
                      : kind == REJ_BAD_METHOD ? "Only POST and GET are accepted"
                                               : "Only the path / is served";
    if (asprintf(&r.body, "{\"__type\":\"%s\",\"message\":\"%s\"}", rej_kind[kind], msg) < 0)
      r.body = NULL;
    r.body_len = r.body ? strlen(r.body) : 0;
  }
  return send_resp(mc, c, &r);
}

/* ---- MHD callbacks ---- */

static void notify_conn_cb(void *cls, struct MHD_Connection *mc, void **socket_context,
                           enum MHD_ConnectionNotificationCode code) {
  trb_http_server *s = cls;
  (void)mc;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    http_conn *c = calloc(1, sizeof *c);
    if (c) c->srv = s;
    *socket_context = c; /* NULL: uri_log_cb refuses the requests */
    return;
  }
  http_conn *c = *socket_context;
  if (!c) return;
  if (c->active) atomic_fetch_sub(&s->inflight, 1);
  if (c->whole) atomic_fetch_sub(&s->handling, 1);
  free(c->uri);
  free(c->body);
  free(c);
  *socket_context = NULL;
}

static void *uri_log_cb(void *cls, const char *uri, struct MHD_Connection *mc) {
  (void)cls;
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  http_conn *c = ci ? ci->socket_context : NULL;
  if (!c) return NULL;
  if (!uri) uri = "";
  size_t n = strlen(uri);
  if (n + 1 > c->uri_cap) {
    size_t cap = n + 1 < 256 ? 256 : n + 1;
    char *p = realloc(c->uri, cap);
    if (!p) return NULL;
    c->uri = p;
    c->uri_cap = cap;
  }
  memcpy(c->uri, uri, n + 1);
  char *q = strchr(c->uri, '?');
  if (q) {
    *q = 0;
    c->query = q + 1;
  } else {
    c->query = "";
  }
  c->started = 0;
  c->reject = REJ_NONE;
  c->len = 0;
  c->discarded = 0;
  make_request_id(c->request_id);
  if (!c->active) {
    c->active = 1;
    atomic_fetch_add(&c->srv->inflight, 1);
  }
  return c;
}

/* A woken handler's continuation (susp 3): fills r, which the caller sends
 * or frees. */
static void run_cont(http_conn *c, trb_http_resp *r) {
  atomic_store(&c->susp, 0);
  r->status = 200;
  c->cont(c->cont_ctx, r);
}

static void completed_cb(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  trb_http_server *s = cls;
  (void)mc;
  (void)toe;
  http_conn *c = *con_cls;
  if (!c) return;
  if (atomic_load(&c->susp) == 3) {
    /* Resumed, but the connection ended before its answer could go (a
     * client that half-closed after its request: MHD takes the end of its
     * input for a hang-up). The continuation still runs, for what it owns;
     * the answer has nobody to go to. (A suspended connection is never
     * closed under us: MHD leaves it alone until it is resumed.) */
    trb_http_resp r = {0};
    run_cont(c, &r);
    free(r.body);
  }
  if (c->active) {
    c->active = 0;
    atomic_fetch_sub(&s->inflight, 1);
  }
  if (c->whole) {
    c->whole = 0;
    atomic_fetch_sub(&s->handling, 1);
  }
  c->len = 0;
  if (c->cap > HTTP_KEEP_BUF) {
    free(c->body);
    c->body = NULL;
    c->cap = 0;
  }
  *con_cls = NULL;
}

static int body_reserve(http_conn *c, size_t need) {
  if (need <= c->cap) return 0;
  size_t cap = c->cap ? c->cap : 4096;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  char *p = realloc(c->body, cap);
  if (!p) return -1;
  c->body = p;
  c->cap = cap;
  return 0;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *mc, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **con_cls) {
  trb_http_server *s = cls;
  http_conn *c = *con_cls;
  (void)url;
  (void)version;
  if (!c) return MHD_NO; /* no per-connection state (out of memory) */

  if (!c->started) { /* headers are in; nothing of the body yet */
    c->started = 1;
    if (strcmp(method, MHD_HTTP_METHOD_POST) && strcmp(method, MHD_HTTP_METHOD_GET))
      c->reject = REJ_BAD_METHOD;
    else if (strcmp(c->uri, "/") && (strcmp(c->uri, "/metrics") || strcmp(method, MHD_HTTP_METHOD_GET)))
      c->reject = REJ_NOT_FOUND;
    const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
      char *end;
      errno = 0;
      unsigned long long v = strtoull(cl, &end, 10);
      if (!errno && end != cl && v > s->max_body) /* refuse before reading it */
        return send_reject(mc, c, method, c->reject ? c->reject : REJ_TOO_LARGE);
      /* reserve for the announced length, but not more than 1 MiB up front:
       * a client may announce more than it sends */
      if (!c->reject && !errno && end != cl && v &&
          body_reserve(c, (size_t)(v < HTTP_PREALLOC_MAX ? v + 1 : HTTP_PREALLOC_MAX)))
        return MHD_NO;
    }
    return MHD_YES;
  }

  if (*upload_data_size) { /* a piece of the body */
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (c->reject) {
      c->discarded += n;
      return c->discarded > s->discard_max ? MHD_NO : MHD_YES;
    }
    if (n > s->max_body - c->len) {
      /* Over the cap: forget what we have, count the rest and answer at the
       * end (MHD cannot answer in the middle of a body). */
      c->reject = REJ_TOO_LARGE;
      c->discarded = c->len + n;
      c->len = 0;
      return c->discarded > s->discard_max ? MHD_NO : MHD_YES;
    }
    if (body_reserve(c, c->len + n + 1)) {
      trb_log_warn("http", "out of memory for a %zu-byte request body; closing the connection",
                   c->len + n);
      return MHD_NO;
    }
    memcpy(c->body + c->len, upload_data, n);
    c->len += n;
    return MHD_YES;
  }

  /* the whole request is in */
  if (!c->whole) {
    c->whole = 1;
    atomic_fetch_add(&s->handling, 1);
  }
  if (atomic_load(&c->susp) == 3) { /* resumed: the handler's continuation answers */
    trb_http_resp r = {0};
    run_cont(c, &r);
    return send_resp(mc, c, &r);
  }
  if (c->reject) return send_reject(mc, c, method, c->reject);
  if (c->body) c->body[c->len] = 0;
  trb_http_req q;
  fill_req(&q, mc, c, method, 1);
  trb_http_resp r = {.status = 200};
  s->h(s->ctx, &q, &r);
  if (atomic_load(&c->susp) != 0 && atomic_load(&s->stopping)) {
    /* Stopping: MHD_stop_daemon must not meet a suspended connection (it
     * aborts), and trb_http_stop may be past its wait for the requests in
     * flight, so this one is waited for on its thread. The engine still
     * answers (it stops after the HTTP server). */
    int64_t deadline = trb_mono_ns() + ((int64_t)s->timeout_s + 5) * 1000000000;
    while (atomic_load(&c->susp) != 3 && trb_mono_ns() < deadline) {
      struct timespec ts = {0, 200 * 1000};
      nanosleep(&ts, NULL);
    }
    if (atomic_load(&c->susp) != 3) return MHD_NO; /* never answered: hang up */
    run_cont(c, &r);
    return send_resp(mc, c, &r);
  }
  if (atomic_load(&c->susp) != 0) {
    /* the handler waits: give the thread back until trb_http_wake */
    MHD_suspend_connection(mc);
    int one = 1;
    if (!atomic_compare_exchange_strong(&c->susp, &one, 2)) MHD_resume_connection(mc);
    return MHD_YES;
  }
  return send_resp(mc, c, &r);
}

static void log_cb(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
  /* Most of what MHD reports is a client's doing (malformed request, early
   * hang-up): debug, or any client could flood the log. Trouble on our side
   * (threads, limits, accept, epoll) stays a warning. */
  static const char *const ours[] = {"thread", "limit", "accept", "epoll", "listen", NULL};
  int warn = 0;
  for (int i = 0; ours[i] && !warn; i++) warn = strcasestr(msg, ours[i]) != NULL;
  trb_log(warn ? TRB_LOG_WARN : TRB_LOG_DEBUG, "http", "libmicrohttpd: %s", msg);
}

/* ---- listening socket ---- */

/* "HOST:PORT", "[V6]:PORT", ":PORT" or "*:PORT" (any IPv4 address). */
static trb_err parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen,
                            trb_status *st) {
  char host[256];
  const char *colon, *hs;
  size_t hn;
  if (!spec || !*spec) return trb_status_set(st, TRB_ECONFIG, "listen address is empty");
  if (spec[0] == '[') {
    const char *rb = strchr(spec, ']');
    if (!rb || rb[1] != ':')
      return trb_status_set(st, TRB_ECONFIG, "listen address '%s': expected [IPV6]:PORT", spec);
    hs = spec + 1;
    hn = (size_t)(rb - hs);
    colon = rb + 1;
  } else {
    colon = strrchr(spec, ':');
    if (!colon)
      return trb_status_set(st, TRB_ECONFIG, "listen address '%s': expected HOST:PORT", spec);
    hs = spec;
    hn = (size_t)(colon - spec);
    if (memchr(hs, ':', hn))
      return trb_status_set(st, TRB_ECONFIG,
                            "listen address '%s': write IPv6 addresses as [ADDR]:PORT", spec);
  }
  if (hn >= sizeof host)
    return trb_status_set(st, TRB_ECONFIG, "listen address '%s': host too long", spec);
  memcpy(host, hs, hn);
  host[hn] = 0;
  const char *ps = colon + 1;
  char *end;
  errno = 0;
  unsigned long port = strtoul(ps, &end, 10);
  if (!*ps || *end || errno || port > 65535 || *ps == '-' || *ps == '+')
    return trb_status_set(st, TRB_ECONFIG, "listen address '%s': port must be 0..65535", spec);

  memset(ss, 0, sizeof *ss);
  if (!host[0] || !strcmp(host, "*")) {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_ANY);
    a->sin_port = htons((uint16_t)port);
    *sslen = sizeof *a;
    return TRB_OK;
  }
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = spec[0] == '[' ? AF_INET6 : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  int g = getaddrinfo(host, NULL, &hints, &res);
  if (g || !res)
    return trb_status_set(st, TRB_ECONFIG, "listen address '%s': cannot resolve '%s': %s", spec,
                          host, gai_strerror(g));
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *sslen = res->ai_addrlen;
  freeaddrinfo(res);
  if (ss->ss_family == AF_INET6)
    ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
  return TRB_OK;
}

static trb_err open_listener(const char *spec, int *fd_out, int *port_out, int *v6,
                             trb_status *st) {
  struct sockaddr_storage ss;
  socklen_t sslen = 0;
  trb_err rc = parse_listen(spec, &ss, &sslen, st);
  if (rc) return rc;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return trb_status_set(st, TRB_EIO, "listen %s: socket: %s", spec, strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&ss, sslen) || listen(fd, 1024)) {
    rc = trb_status_set(st, TRB_EIO, "listen %s: %s", spec, strerror(errno));
    close(fd);
    return rc;
  }
  struct sockaddr_storage got;
  socklen_t gl = sizeof got;
  if (getsockname(fd, (struct sockaddr *)&got, &gl)) {
    rc = trb_status_set(st, TRB_EIO, "listen %s: getsockname: %s", spec, strerror(errno));
    close(fd);
    return rc;
  }
  *port_out = got.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&got)->sin6_port)
                                        : ntohs(((struct sockaddr_in *)&got)->sin_port);
  *v6 = ss.ss_family == AF_INET6;
  *fd_out = fd;
  return TRB_OK;
}

/* ---- start / stop ---- */

trb_err trb_http_start(const trb_http_opts *o, trb_http_handler h, trb_http_reject rej,
                       void *ctx, trb_http_server **out, trb_status *st) {
  trb_err rc = TRB_OK;
  int fd = -1, v6 = 0;
  trb_http_server *s = NULL;
  if (!o || !h || !out) return trb_status_set(st, TRB_EINVAL, "trb_http_start: missing argument");
  *out = NULL;
  s = calloc(1, sizeof *s);
  if (!s) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  s->h = h;
  s->rej = rej;
  s->ctx = ctx;
  s->max_body = o->max_body ? o->max_body : HTTP_DEFAULT_MAX_BODY;
  s->discard_max = s->max_body > SIZE_MAX / 2 ? SIZE_MAX : 2 * s->max_body;
  s->timeout_s = o->conn_timeout_s ? o->conn_timeout_s : HTTP_DEFAULT_TIMEOUT_S;
  atomic_init(&s->inflight, 0);
  atomic_init(&s->handling, 0);
  atomic_init(&s->stopping, 0);
  unsigned threads = o->threads;
  if (!threads) {
    /* No handler waits on a worker (writes suspend their connection, the
     * API runs the other waiting operations on a pool of its own), so one
     * per CPU: more only switch between each other (bench_http: PutItem
     * 21-24k/s with 2 on two CPUs, 16-18k/s with 32). */
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n < 2 ? 2 : (unsigned)n;
  }
  rc = open_listener(o->listen, &fd, &s->port, &v6, st);
  if (rc) goto done;

  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                   MHD_ALLOW_SUSPEND_RESUME;
  flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_POLL;
  if (v6) flags |= MHD_USE_IPv6;
  /* The logger must come first. A pool of one is no pool (MHD warns about
   * it), so for one thread that entry becomes the end of the list: keep it
   * last. */
  struct MHD_OptionItem ops[] = {
      {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)log_cb, NULL},
      {MHD_OPTION_LISTEN_SOCKET, fd, NULL},
      {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)s->timeout_s, NULL},
      {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)TRB_HTTP_CONN_MEMORY, NULL},
      {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)notify_conn_cb, s},
      {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)uri_log_cb, s},
      {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed_cb, s},
      {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)threads, NULL},
      {MHD_OPTION_END, 0, NULL},
  };
  s->d = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, s, MHD_OPTION_ARRAY, ops,
                          MHD_OPTION_END);
  if (!s->d) {
    rc = trb_status_set(st, TRB_EIO, "listen %s: libmicrohttpd failed to start", o->listen);
    goto done;
  }
  fd = -1; /* the daemon owns it */
  *out = s;
  s = NULL;
done:
  if (fd >= 0) close(fd);
  free(s);
  return rc;
}

int trb_http_port(const trb_http_server *s) { return s ? s->port : -1; }

void trb_http_stop(trb_http_server *s) {
  if (!s) return;
  /* Stop accepting, then let requests already handled finish (their
   * writes are answered), and those still being read for a few seconds
   * more (a client that stalls, or went away in the middle of its body
   * without MHD noticing, is not waited for the whole idle timeout), before
   * MHD_stop_daemon closes every connection. */
  atomic_store(&s->stopping, 1); /* from here no handler suspends its connection */
  MHD_socket lfd = MHD_quiesce_daemon(s->d);
  int64_t now = trb_mono_ns();
  int64_t deadline = now + ((int64_t)s->timeout_s + 5) * 1000000000;
  int64_t reading = now + 3 * 1000000000ll;
  while ((atomic_load(&s->handling) > 0 ||
          (atomic_load(&s->inflight) > 0 && trb_mono_ns() < reading)) &&
         trb_mono_ns() < deadline) {
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  MHD_stop_daemon(s->d);
  if (lfd != MHD_INVALID_SOCKET) close(lfd);
  free(s);
}
