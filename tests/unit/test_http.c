/*
 * test_http.c -- the HTTP server (api/http.c) against a raw-socket client
 * written here: status line, the headers every response carries
 * (x-amzn-RequestId, x-amz-crc32, Content-Type, Content-Length), keep-alive
 * and pipelining, bodies split across writes, the body cap (by
 * Content-Length, by chunked upload, with Expect: 100-continue), GET and
 * refused methods/paths, concurrent clients, idle timeout and stopping with
 * a request in flight.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "api/http.h"
#include "testutil.h"

/* ---- a raw HTTP/1.1 client ---- */

typedef struct cli {
  int fd;
  char buf[1 << 16]; /* bytes received and not yet consumed */
  size_t len;
} cli;

typedef struct resp {
  int status;
  char headers[8192]; /* raw header block, NUL-terminated */
  char *body;         /* malloc'ed, NUL-terminated */
  size_t body_len;
} resp;

static int connect_to(int family, int port) {
  int fd = socket(family, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int rc;
  if (family == AF_INET6) {
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    a.sin6_addr = in6addr_loopback;
    rc = connect(fd, (struct sockaddr *)&a, sizeof a);
  } else {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = connect(fd, (struct sockaddr *)&a, sizeof a);
  }
  if (rc) {
    close(fd);
    return -1;
  }
  return fd;
}

static void cli_open(cli *c, int port) {
  c->fd = connect_to(AF_INET, port);
  assert_true(c->fd >= 0);
  c->len = 0;
}

static void cli_close(cli *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
}

static int send_all(int fd, const void *p, size_t n) {
  const char *s = p;
  while (n) {
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    s += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Reads more bytes into c->buf: 1 got some, 0 EOF, -1 error. */
static int cli_fill(cli *c) {
  if (c->len == sizeof c->buf) return -1;
  ssize_t r;
  do r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0) return -1;
  if (r == 0) return 0;
  c->len += (size_t)r;
  return 1;
}

static void cli_consume(cli *c, size_t n) {
  memmove(c->buf, c->buf + n, c->len - n);
  c->len -= n;
}

/* The value of header `name` in r (case-insensitive), copied to out; 0 if absent. */
static int hdr(const resp *r, const char *name, char *out, size_t outsz) {
  size_t nl = strlen(name);
  const char *line = strstr(r->headers, "\r\n"); /* skip the status line */
  while (line && line[2]) {
    line += 2;
    const char *eol = strstr(line, "\r\n");
    if (!eol) eol = line + strlen(line);
    if ((size_t)(eol - line) > nl && !strncasecmp(line, name, nl) && line[nl] == ':') {
      const char *v = line + nl + 1;
      while (*v == ' ') v++;
      size_t vn = (size_t)(eol - v);
      if (vn >= outsz) vn = outsz - 1;
      memcpy(out, v, vn);
      out[vn] = 0;
      return 1;
    }
    line = *eol ? eol : NULL;
  }
  return 0;
}

/* Reads one final response (skipping 100 Continue): 0 ok, -1 EOF/error. */
static int cli_read(cli *c, resp *r) {
  memset(r, 0, sizeof *r);
  for (;;) {
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
      if (cli_fill(c) <= 0) return -1;
    size_t hl = (size_t)(end - c->buf) + 4;
    if (hl >= sizeof r->headers) return -1;
    memcpy(r->headers, c->buf, hl);
    r->headers[hl] = 0;
    cli_consume(c, hl);
    if (sscanf(r->headers, "HTTP/1.1 %d", &r->status) != 1) return -1;
    if (r->status != 100) break;
  }
  char v[64];
  size_t n = 0;
  if (hdr(r, "Content-Length", v, sizeof v)) n = strtoul(v, NULL, 10);
  while (c->len < n)
    if (cli_fill(c) <= 0) return -1;
  r->body = malloc(n + 1);
  memcpy(r->body, c->buf, n);
  r->body[n] = 0;
  r->body_len = n;
  cli_consume(c, n);
  return 0;
}

static void resp_free(resp *r) {
  free(r->body);
  r->body = NULL;
}

/* 1 when the server has closed the connection (EOF or reset within 5 s). */
static int cli_closed(cli *c) {
  for (;;) {
    int f = cli_fill(c);
    if (f == 0) return 1;
    if (f < 0) return errno == ECONNRESET;
  }
}

/* Sends POST / with target and body on c. */
static void post(cli *c, const char *path, const char *target, const void *body, size_t n) {
  char head[512];
  int hn = snprintf(head, sizeof head,
                    "POST %s HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: %s\r\n"
                    "Content-Type: application/x-amz-json-1.0\r\nContent-Length: %zu\r\n\r\n",
                    path, target, n);
  assert_int_equal(send_all(c->fd, head, (size_t)hn), 0);
  if (n) assert_int_equal(send_all(c->fd, body, n), 0);
}

/* The checks every response must pass: request id format and CRC. */
static void check_common(const resp *r, char id_out[64]) {
  char v[128];
  assert_true(hdr(r, "x-amzn-RequestId", v, sizeof v));
  assert_int_equal(strlen(v), 52);
  for (int i = 0; i < 52; i++) assert_true(isupper((unsigned char)v[i]) || isdigit((unsigned char)v[i]));
  if (id_out) strcpy(id_out, v);
  assert_true(hdr(r, "x-amz-crc32", v, sizeof v));
  unsigned long want = crc32(0L, (const Bytef *)r->body, (uInt)r->body_len);
  assert_int_equal(strtoul(v, NULL, 10), want);
  for (const char *p = v; *p; p++) assert_true(isdigit((unsigned char)*p));
  assert_true(hdr(r, "Content-Type", v, sizeof v));
  assert_true(hdr(r, "Content-Length", v, sizeof v));
  assert_int_equal(strtoul(v, NULL, 10), r->body_len);
}

/* ---- the server under test ---- */

typedef struct fixture {
  trb_http_server *srv;
  int port;
  atomic_int handled;
  atomic_int rejects;
  char last_kind[32];
  char last_method[16];
  char last_path[64];
  char last_query[64];
  size_t last_len;
  int last_body_null;
  /* for the in-flight stop test */
  atomic_int slow_entered;
  atomic_int bad; /* checks made on server threads that failed */
  pthread_mutex_t mu; /* guards the last_* fields (concurrent handlers) */
} fixture;

/* Echo handler: body "target=<X-Amz-Target>\n" + request body. Targets
 * steer it: "empty" answers with no body, "text" sets a content type,
 * "status:NNN" sets the status, "slow" waits 300 ms first. */
static void echo_handler(void *ctx, const trb_http_req *req, trb_http_resp *resp) {
  fixture *f = ctx;
  const char *t = trb_http_header(req, "x-amz-target");
  if (!t) t = "";
  pthread_mutex_lock(&f->mu);
  snprintf(f->last_method, sizeof f->last_method, "%s", req->method);
  snprintf(f->last_path, sizeof f->last_path, "%s", req->path);
  snprintf(f->last_query, sizeof f->last_query, "%s", req->query);
  f->last_len = req->body_len;
  f->last_body_null = req->body == NULL;
  pthread_mutex_unlock(&f->mu);
  /* no cmocka asserts on server threads: count what would fail instead */
  if (!req->request_id || strlen(req->request_id) != 52) atomic_fetch_add(&f->bad, 1);
  if (!strcmp(t, "slow")) {
    atomic_store(&f->slow_entered, 1);
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  atomic_fetch_add(&f->handled, 1);
  if (!strcmp(t, "empty")) return; /* status 200, no body */
  if (!strcmp(t, "text")) resp->content_type = "text/plain";
  if (!strncmp(t, "status:", 7)) resp->status = atoi(t + 7);
  size_t tn = strlen(t);
  resp->body_len = 8 + tn + req->body_len;
  resp->body = malloc(resp->body_len);
  memcpy(resp->body, "target=", 7);
  memcpy(resp->body + 7, t, tn);
  resp->body[7 + tn] = '\n';
  if (req->body_len) memcpy(resp->body + 8 + tn, req->body, req->body_len);
}

static void reject_cb(void *ctx, const char *kind, const trb_http_req *req, trb_http_resp *resp) {
  fixture *f = ctx;
  pthread_mutex_lock(&f->mu);
  snprintf(f->last_kind, sizeof f->last_kind, "%s", kind);
  pthread_mutex_unlock(&f->mu);
  if (req->body || strlen(req->request_id) != 52) atomic_fetch_add(&f->bad, 1);
  atomic_fetch_add(&f->rejects, 1);
  resp->status = !strcmp(kind, "TooLarge") ? 413 : 404;
  if (asprintf(&resp->body, "{\"kind\":\"%s\"}", kind) < 0) resp->body = NULL;
  resp->body_len = resp->body ? strlen(resp->body) : 0;
}

#define TEST_CAP 1000

static fixture *start(size_t cap, unsigned timeout_s, int with_reject) {
  fixture *f = calloc(1, sizeof *f);
  pthread_mutex_init(&f->mu, NULL);
  trb_status st;
  trb_status_init(&st);
  trb_http_opts o = {.listen = "127.0.0.1:0", .threads = 2, .max_body = cap,
                     .conn_timeout_s = timeout_s};
  trb_err rc = trb_http_start(&o, echo_handler, with_reject ? reject_cb : NULL, f, &f->srv, &st);
  if (rc) fprintf(stderr, "start: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  f->port = trb_http_port(f->srv);
  assert_true(f->port > 0 && f->port < 65536);
  return f;
}

static void stop(fixture *f) {
  trb_http_stop(f->srv);
  assert_int_equal(atomic_load(&f->bad), 0);
  pthread_mutex_destroy(&f->mu);
  free(f);
}

/* ---- tests ---- */

static void test_crc32_known_value(void **state) {
  (void)state;
  assert_int_equal(trb_http_crc32("123456789", 9), 0xCBF43926u);
  assert_int_equal(trb_http_crc32(NULL, 0), 0);
  /* the value DynamoDB sends for "{}" */
  assert_int_equal(trb_http_crc32("{}", 2), 2745614147u);
}

static void test_post_echo_and_headers(void **state) {
  (void)state;
  fixture *f = start(TEST_CAP, 0, 1);
  cli c;
  cli_open(&c, f->port);
  const char *body = "{\"TableName\":\"t\"}";
  post(&c, "/", "DynamoDB_20120810.PutItem", body, strlen(body));
  resp r;
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 200);
  check_common(&r, NULL);
  assert_string_equal(r.body, "target=DynamoDB_20120810.PutItem\n{\"TableName\":\"t\"}");
  char v[128];
  assert_true(hdr(&r, "Content-Type", v, sizeof v));
  assert_string_equal(v, "application/x-amz-json-1.0");
  assert_string_equal(f->last_method, "POST");
  assert_string_equal(f->last_path, "/");
  assert_string_equal(f->last_query, "");
  assert_int_equal(f->last_len, strlen(body));
  resp_free(&r);

  /* handler-chosen content type and status; the query string is passed raw */
  post(&c, "/?b=2&a=%20x", "text", "hi", 2);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 200);
  check_common(&r, NULL);
  assert_true(hdr(&r, "Content-Type", v, sizeof v));
  assert_string_equal(v, "text/plain");
  assert_string_equal(f->last_path, "/");
  assert_string_equal(f->last_query, "b=2&a=%20x");
  resp_free(&r);

  post(&c, "/", "status:400", "x", 1);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 400);
  check_common(&r, NULL);
  assert_string_equal(r.body, "target=status:400\nx");
  resp_free(&r);
  cli_close(&c);
  stop(f);
}

static void test_keepalive_and_pipelining(void **state) {
  (void)state;
  fixture *f = start(TEST_CAP, 0, 1);
  cli c;
  cli_open(&c, f->port);
  char ids[6][64];
  for (int i = 0; i < 4; i++) {
    char body[32];
    int n = snprintf(body, sizeof body, "{\"n\":%d}", i);
    post(&c, "/", "Op", body, (size_t)n);
    resp r;
    assert_int_equal(cli_read(&c, &r), 0);
    assert_int_equal(r.status, 200);
    check_common(&r, ids[i]);
    char want[64];
    snprintf(want, sizeof want, "target=Op\n%s", body);
    assert_string_equal(r.body, want);
    resp_free(&r);
  }
  /* two requests in one write */
  const char *two =
      "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: A\r\nContent-Length: 1\r\n\r\n1"
      "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: B\r\nContent-Length: 2\r\n\r\n22";
  assert_int_equal(send_all(c.fd, two, strlen(two)), 0);
  resp r;
  assert_int_equal(cli_read(&c, &r), 0);
  check_common(&r, ids[4]);
  assert_string_equal(r.body, "target=A\n1");
  resp_free(&r);
  assert_int_equal(cli_read(&c, &r), 0);
  check_common(&r, ids[5]);
  assert_string_equal(r.body, "target=B\n22");
  resp_free(&r);
  for (int i = 0; i < 6; i++)
    for (int j = i + 1; j < 6; j++) assert_string_not_equal(ids[i], ids[j]);
  assert_int_equal(atomic_load(&f->handled), 6);
  cli_close(&c);
  stop(f);
}

/* Connection memory (TRB_HTTP_CONN_MEMORY) is reused for every request of a
 * keep-alive connection: headers of 12 KiB (a long session token) are
 * served, again and again on one connection, between requests whose body
 * is many times the connection memory. */
static void test_large_headers_and_bodies_on_one_connection(void **state) {
  (void)state;
  size_t big = (size_t)TRB_HTTP_CONN_MEMORY * 8;
  fixture *f = start(big, 0, 1);
  cli c;
  cli_open(&c, f->port);
  size_t tok = 12 * 1024;
  char *head = malloc(tok + 512);
  char *body = malloc(big);
  for (size_t i = 0; i < big; i++) body[i] = (char)('a' + i % 26);
  for (int round = 0; round < 3; round++) {
    int hn = snprintf(head, 512,
                      "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Tok%d\r\n"
                      "Content-Length: 2\r\nX-Amz-Security-Token: ",
                      round);
    memset(head + hn, 'A' + round, tok);
    memcpy(head + hn + tok, "\r\n\r\n{}", 6);
    assert_int_equal(send_all(c.fd, head, (size_t)hn + tok + 6), 0);
    resp r;
    assert_int_equal(cli_read(&c, &r), 0);
    assert_int_equal(r.status, 200);
    check_common(&r, NULL);
    char want[32];
    snprintf(want, sizeof want, "target=Tok%d\n{}", round);
    assert_string_equal(r.body, want);
    resp_free(&r);
    /* a body of 8 times the connection memory, echoed back whole */
    post(&c, "/", "Big", body, big);
    /* the echo can be larger than c's buffer: read it as it comes */
    char *end;
    while (!(end = memmem(c.buf, c.len, "\r\n\r\n", 4))) assert_int_equal(cli_fill(&c), 1);
    size_t hl = (size_t)(end - c.buf) + 4;
    assert_true(!strncmp(c.buf, "HTTP/1.1 200", 12));
    char *cl = memmem(c.buf, hl, "Content-Length: ", 16);
    assert_non_null(cl);
    size_t n = strtoul(cl + 16, NULL, 10);
    assert_int_equal(n, 8 + 3 + big);
    cli_consume(&c, hl);
    size_t got = 0, off = 0;
    while (got < n) {
      if (!c.len) assert_int_equal(cli_fill(&c), 1);
      size_t k = c.len < n - got ? c.len : n - got;
      for (size_t i = 0; i < k; i++, got++) {
        if (got < 11) assert_int_equal(c.buf[i], "target=Big\n"[got]);
        else assert_int_equal(c.buf[i], body[off++]);
      }
      cli_consume(&c, k);
    }
  }
  assert_int_equal(atomic_load(&f->handled), 6);
  free(head);
  free(body);
  cli_close(&c);
  stop(f);
}

static void test_body_split_across_writes(void **state) {
  (void)state;
  fixture *f = start(TEST_CAP, 0, 1);
  cli c;
  cli_open(&c, f->port);
  char body[600];
  for (size_t i = 0; i < sizeof body; i++) body[i] = (char)('a' + i % 26);
  const char *head = "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Split\r\nContent-Length: 600\r\n\r\n";
  /* the header itself in two pieces, then the body in three */
  assert_int_equal(send_all(c.fd, head, 10), 0);
  struct timespec ts = {0, 20 * 1000 * 1000};
  nanosleep(&ts, NULL);
  assert_int_equal(send_all(c.fd, head + 10, strlen(head) - 10), 0);
  for (int part = 0; part < 3; part++) {
    nanosleep(&ts, NULL);
    assert_int_equal(send_all(c.fd, body + part * 200, 200), 0);
  }
  resp r;
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 200);
  check_common(&r, NULL);
  assert_int_equal(r.body_len, 13 + 600); /* "target=Split\n" + body */
  assert_memory_equal(r.body + 13, body, 600);
  resp_free(&r);

  /* a chunked upload is reassembled too */
  const char *chunked = "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: C\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  assert_int_equal(send_all(c.fd, chunked, strlen(chunked)), 0);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 200);
  check_common(&r, NULL);
  assert_string_equal(r.body, "target=C\nhello world");
  resp_free(&r);
  cli_close(&c);
  stop(f);
}

static void test_empty_bodies(void **state) {
  (void)state;
  fixture *f = start(TEST_CAP, 0, 1);
  cli c;
  cli_open(&c, f->port);
  post(&c, "/", "Op", NULL, 0);
  resp r;
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 200);
  check_common(&r, NULL);
  assert_string_equal(r.body, "target=Op\n");
  assert_int_equal(f->last_len, 0);
  assert_true(f->last_body_null);
  resp_free(&r);

  /* an empty response body: Content-Length 0 and CRC 0 */
  post(&c, "/", "empty", "abc", 3);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 200);
  check_common(&r, NULL);
  assert_int_equal(r.body_len, 0);
  char v[32];
  assert_true(hdr(&r, "x-amz-crc32", v, sizeof v));
  assert_string_equal(v, "0");
  resp_free(&r);
  cli_close(&c);
  stop(f);
}

static void test_body_cap(void **state) {
  (void)state;
  fixture *f = start(TEST_CAP, 0, 1);
  char *big = malloc(3 * TEST_CAP);
  memset(big, 'x', 3 * TEST_CAP);
  cli c;
  resp r;

  /* exactly at the cap: served, and the connection stays usable */
  cli_open(&c, f->port);
  post(&c, "/", "Cap", big, TEST_CAP);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 200);
  check_common(&r, NULL);
  assert_int_equal(f->last_len, TEST_CAP);
  assert_int_equal(r.body_len, 11 + TEST_CAP); /* "target=Cap\n" + body */
  resp_free(&r);

  /* one byte over, announced by Content-Length: refused before the body is
   * read, through the reject callback; the server closes this connection */
  int handled = atomic_load(&f->handled);
  post(&c, "/", "Cap", big, TEST_CAP + 1);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 413);
  check_common(&r, NULL);
  assert_string_equal(r.body, "{\"kind\":\"TooLarge\"}");
  assert_string_equal(f->last_kind, "TooLarge");
  assert_int_equal(atomic_load(&f->rejects), 1);
  assert_int_equal(atomic_load(&f->handled), handled);
  resp_free(&r);
  assert_true(cli_closed(&c));
  cli_close(&c);

  /* the next connection is served */
  cli_open(&c, f->port);
  post(&c, "/", "After", "ok", 2);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "target=After\nok");
  resp_free(&r);

  /* one byte over in a chunked upload (no length up front): read, thrown
   * away, answered at its end, and the connection stays open */
  char head[256];
  snprintf(head, sizeof head,
           "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Ch\r\nTransfer-Encoding: chunked\r\n\r\n"
           "%x\r\n", TEST_CAP + 1);
  assert_int_equal(send_all(c.fd, head, strlen(head)), 0);
  assert_int_equal(send_all(c.fd, big, TEST_CAP + 1), 0);
  assert_int_equal(send_all(c.fd, "\r\n0\r\n\r\n", 7), 0);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 413);
  check_common(&r, NULL);
  assert_int_equal(atomic_load(&f->rejects), 2);
  resp_free(&r);
  post(&c, "/", "Same", "conn", 4);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "target=Same\nconn");
  resp_free(&r);

  /* a chunked upload going on past twice the cap is cut off unanswered */
  snprintf(head, sizeof head,
           "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Ch\r\nTransfer-Encoding: chunked\r\n\r\n"
           "%x\r\n", 3 * TEST_CAP);
  assert_int_equal(send_all(c.fd, head, strlen(head)), 0);
  (void)send_all(c.fd, big, 3 * TEST_CAP); /* may fail: the server hangs up */
  assert_true(cli_closed(&c));
  cli_close(&c);

  /* Expect: 100-continue with a length over the cap: 413 at once, no body sent */
  cli_open(&c, f->port);
  snprintf(head, sizeof head,
           "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n",
           50 * 1024 * 1024);
  assert_int_equal(send_all(c.fd, head, strlen(head)), 0);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 413);
  check_common(&r, NULL);
  resp_free(&r);
  cli_close(&c);

  /* Expect: 100-continue within the cap: 100 then the answer */
  cli_open(&c, f->port);
  snprintf(head, sizeof head,
           "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: E\r\nExpect: 100-continue\r\n"
           "Content-Length: 3\r\n\r\n");
  assert_int_equal(send_all(c.fd, head, strlen(head)), 0);
  while (!memmem(c.buf, c.len, "\r\n\r\n", 4)) assert_int_equal(cli_fill(&c), 1);
  assert_true(!strncmp(c.buf, "HTTP/1.1 100", 12));
  assert_int_equal(send_all(c.fd, "abc", 3), 0);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "target=E\nabc");
  resp_free(&r);
  cli_close(&c);
  free(big);
  stop(f);
}

static void test_get_and_refused_requests(void **state) {
  (void)state;
  fixture *f = start(TEST_CAP, 0, 1);
  cli c;
  resp r;
  cli_open(&c, f->port);
  const char *get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  assert_int_equal(send_all(c.fd, get, strlen(get)), 0);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 200);
  check_common(&r, NULL);
  assert_string_equal(f->last_method, "GET");
  assert_string_equal(r.body, "target=\n");
  resp_free(&r);

  /* GET on another path: NotFound, and keep-alive survives it */
  const char *bad = "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
  assert_int_equal(send_all(c.fd, bad, strlen(bad)), 0);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 404);
  check_common(&r, NULL);
  assert_string_equal(f->last_kind, "NotFound");
  assert_string_equal(r.body, "{\"kind\":\"NotFound\"}");
  resp_free(&r);

  /* POST to another path with a body (read and dropped) */
  post(&c, "/x?y=1", "Op", "body", 4);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 404);
  check_common(&r, NULL);
  assert_string_equal(f->last_kind, "NotFound");
  resp_free(&r);

  /* another method */
  const char *del = "DELETE / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
  assert_int_equal(send_all(c.fd, del, strlen(del)), 0);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_string_equal(f->last_kind, "BadMethod");
  check_common(&r, NULL);
  resp_free(&r);

  /* still the same connection */
  post(&c, "/", "Op", "z", 1);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "target=Op\nz");
  resp_free(&r);
  assert_int_equal(atomic_load(&f->rejects), 3);
  cli_close(&c);
  stop(f);
}

static void test_default_reject_bodies(void **state) {
  (void)state;
  fixture *f = start(TEST_CAP, 0, 0); /* no reject callback */
  cli c;
  resp r;
  cli_open(&c, f->port);
  const char *bad = "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
  assert_int_equal(send_all(c.fd, bad, strlen(bad)), 0);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 404);
  check_common(&r, NULL);
  assert_non_null(strstr(r.body, "\"__type\":\"NotFound\""));
  resp_free(&r);
  const char *put = "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
  assert_int_equal(send_all(c.fd, put, strlen(put)), 0);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 405);
  check_common(&r, NULL);
  char v[64];
  assert_true(hdr(&r, "Allow", v, sizeof v));
  assert_string_equal(v, "GET, POST");
  assert_non_null(strstr(r.body, "\"__type\":\"BadMethod\""));
  resp_free(&r);
  char *big = calloc(1, TEST_CAP + 1);
  post(&c, "/", "Op", big, TEST_CAP + 1);
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 413);
  check_common(&r, NULL);
  assert_non_null(strstr(r.body, "\"__type\":\"TooLarge\""));
  resp_free(&r);
  free(big);
  cli_close(&c);
  stop(f);
}

/* ---- concurrency ---- */

#define CC_THREADS 8
#define CC_REQS 150

typedef struct cc_arg {
  int port, tid;
  uint64_t seed;
  int ok;
  char (*ids)[53];
} cc_arg;

static void *cc_client(void *p) {
  cc_arg *a = p;
  cli *c = malloc(sizeof *c);
  c->fd = connect_to(AF_INET, a->port);
  c->len = 0;
  uint64_t rs = a->seed;
  for (int i = 0; i < CC_REQS && c->fd >= 0; i++) {
    char body[256];
    size_t n = (size_t)(trb_test_rand(&rs) % 200);
    for (size_t k = 0; k < n; k++) body[k] = (char)('A' + trb_test_rand(&rs) % 26);
    char target[32];
    snprintf(target, sizeof target, "T%d.%d", a->tid, i);
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: %s\r\nContent-Length: %zu\r\n\r\n",
                      target, n);
    if (send_all(c->fd, head, (size_t)hn) || (n && send_all(c->fd, body, n))) break;
    resp r;
    if (cli_read(c, &r)) break;
    char want[300];
    int wn = snprintf(want, sizeof want, "target=%s\n", target);
    memcpy(want + wn, body, n);
    char crc[16], id[64];
    int good = r.status == 200 && r.body_len == (size_t)wn + n &&
               !memcmp(r.body, want, r.body_len) && hdr(&r, "x-amz-crc32", crc, sizeof crc) &&
               strtoul(crc, NULL, 10) == crc32(0L, (const Bytef *)r.body, (uInt)r.body_len) &&
               hdr(&r, "x-amzn-RequestId", id, sizeof id) && strlen(id) == 52;
    if (good) memcpy(a->ids[a->tid * CC_REQS + i], id, 53);
    resp_free(&r);
    if (!good) break;
    a->ok++;
  }
  if (c->fd >= 0) close(c->fd);
  free(c);
  return NULL;
}

static int cmp_id(const void *x, const void *y) { return strcmp(x, y); }

static void test_concurrent_clients(void **state) {
  (void)state;
  fixture *f = start(TEST_CAP, 0, 1);
  uint64_t seed = trb_test_seed();
  char(*ids)[53] = calloc(CC_THREADS * CC_REQS, 53);
  pthread_t th[CC_THREADS];
  cc_arg args[CC_THREADS];
  for (int i = 0; i < CC_THREADS; i++) {
    args[i] = (cc_arg){.port = f->port, .tid = i, .seed = seed + (uint64_t)i * 7919, .ids = ids};
    assert_int_equal(pthread_create(&th[i], NULL, cc_client, &args[i]), 0);
  }
  for (int i = 0; i < CC_THREADS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(args[i].ok, CC_REQS);
  }
  assert_int_equal(atomic_load(&f->handled), CC_THREADS * CC_REQS);
  /* every request id is distinct */
  qsort(ids, CC_THREADS * CC_REQS, 53, cmp_id);
  for (int i = 1; i < CC_THREADS * CC_REQS; i++) assert_string_not_equal(ids[i - 1], ids[i]);
  free(ids);
  stop(f);
}

/* ---- stopping and timeouts ---- */

typedef struct slow_arg {
  int port;
  int status;
  char body[64];
} slow_arg;

static void *slow_client(void *p) {
  slow_arg *a = p;
  cli *c = malloc(sizeof *c);
  c->fd = connect_to(AF_INET, a->port);
  c->len = 0;
  a->status = -1;
  if (c->fd >= 0) {
    const char *req = "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: slow\r\nContent-Length: 4\r\n\r\nwait";
    resp r;
    if (!send_all(c->fd, req, strlen(req)) && !cli_read(c, &r)) {
      a->status = r.status;
      snprintf(a->body, sizeof a->body, "%s", r.body);
      resp_free(&r);
    }
    close(c->fd);
  }
  free(c);
  return NULL;
}

static void test_stop_with_request_in_flight(void **state) {
  (void)state;
  fixture *f = start(TEST_CAP, 0, 1);
  int port = f->port;
  /* an idle keep-alive connection must not hold the stop up */
  cli idle;
  cli_open(&idle, port);
  slow_arg a = {.port = port};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, slow_client, &a), 0);
  while (!atomic_load(&f->slow_entered)) {
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  trb_http_stop(f->srv); /* returns after the slow request was answered */
  f->srv = NULL;
  pthread_join(th, NULL);
  assert_int_equal(a.status, 200);
  assert_string_equal(a.body, "target=slow\nwait");
  /* nothing listens any more; the idle connection was closed */
  assert_true(cli_closed(&idle));
  cli_close(&idle);
  assert_int_equal(connect_to(AF_INET, port), -1);
  assert_int_equal(atomic_load(&f->bad), 0);
  pthread_mutex_destroy(&f->mu);
  free(f);
  trb_http_stop(NULL); /* no-op */
}

static void test_idle_timeout_closes_connection(void **state) {
  (void)state;
  fixture *f = start(TEST_CAP, 1, 1);
  cli c;
  cli_open(&c, f->port);
  post(&c, "/", "Op", "a", 1);
  resp r;
  assert_int_equal(cli_read(&c, &r), 0);
  resp_free(&r);
  int64_t t0 = time(NULL);
  assert_true(cli_closed(&c)); /* within the 5 s receive timeout */
  assert_true(time(NULL) - t0 <= 4);
  cli_close(&c);
  stop(f);
}


/* A request MHD itself refuses (bad header line, missing Host) after the
 * request line was read must neither reach the handler nor hold up stop. */
static void test_malformed_requests(void **state) {
  (void)state;
  fixture *f = start(TEST_CAP, 30, 1);
  static char huge[80 * 1024]; /* headers beyond MHD's per-connection memory */
  int hn = snprintf(huge, sizeof huge, "POST / HTTP/1.1\r\nHost: x\r\nX-Big: ");
  memset(huge + hn, 'b', sizeof huge - (size_t)hn - 5);
  memcpy(huge + sizeof huge - 5, "\r\n\r\n", 5);
  const char *reqs[] = {"POST / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
                        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n", huge};
  for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
    cli c;
    cli_open(&c, f->port);
    assert_int_equal(send_all(c.fd, reqs[i], strlen(reqs[i])), 0);
    resp r;
    if (cli_read(&c, &r) == 0) {
      assert_int_equal(r.status / 100, 4);
      resp_free(&r);
    }
    cli_close(&c);
  }
  /* a request cut off in the middle of its headers */
  cli c;
  cli_open(&c, f->port);
  const char *cut = "POST / HTTP/1.1\r\nHost: x\r\nX-A";
  assert_int_equal(send_all(c.fd, cut, strlen(cut)), 0);
  struct timespec ts = {0, 50 * 1000 * 1000};
  nanosleep(&ts, NULL);
  cli_close(&c);
  nanosleep(&ts, NULL);
  assert_int_equal(atomic_load(&f->handled), 0);
  int64_t t0 = time(NULL);
  stop(f);
  assert_true(time(NULL) - t0 <= 2); /* not the 30 s timeout + 5 s bound */
}

/* ---- listen addresses ---- */

static void noop_handler(void *ctx, const trb_http_req *req, trb_http_resp *resp) {
  (void)ctx;
  (void)req;
  resp->body = strdup("{}");
  resp->body_len = 2;
}

static void test_listen_addresses(void **state) {
  (void)state;
  const char *bad[] = {"", "nocolon", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                       "::1:80", "[::1]80", "127.0.0.1:8x", "no-such-host.invalid:80"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    trb_status st;
    trb_status_init(&st);
    trb_http_server *s = (trb_http_server *)1;
    trb_http_opts o = {.listen = bad[i]};
    assert_int_equal(trb_http_start(&o, noop_handler, NULL, NULL, &s, &st), TRB_ECONFIG);
    assert_null(s);
    assert_true(strlen(st.msg) > 0);
  }

  /* a port already taken */
  trb_status st;
  trb_status_init(&st);
  trb_http_server *s1 = NULL, *s2 = NULL;
  trb_http_opts o = {.listen = "127.0.0.1:0", .threads = 1};
  assert_int_equal(trb_http_start(&o, noop_handler, NULL, NULL, &s1, &st), TRB_OK);
  char spec[64];
  snprintf(spec, sizeof spec, "127.0.0.1:%d", trb_http_port(s1));
  o.listen = spec;
  assert_int_equal(trb_http_start(&o, noop_handler, NULL, NULL, &s2, &st), TRB_EIO);
  assert_non_null(strstr(st.msg, "in use"));
  assert_null(s2);
  trb_http_stop(s1);

  /* IPv6 loopback, when this host has it */
  int probe = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  int have_v6 = probe >= 0 && bind(probe, (struct sockaddr *)&a6, sizeof a6) == 0;
  if (probe >= 0) close(probe);
  o.listen = "[::1]:0";
  o.threads = 0; /* = CPUs */
  trb_err rc = trb_http_start(&o, noop_handler, NULL, NULL, &s1, &st);
  if (!have_v6) {
    assert_int_equal(rc, TRB_EIO);
    fprintf(stderr, "note: no IPv6 loopback here; checked the error path only\n");
    return;
  }
  assert_int_equal(rc, TRB_OK);
  cli c;
  c.fd = connect_to(AF_INET6, trb_http_port(s1));
  c.len = 0;
  assert_true(c.fd >= 0);
  post(&c, "/", "Op", "", 0);
  resp r;
  assert_int_equal(cli_read(&c, &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "{}");
  check_common(&r, NULL);
  resp_free(&r);
  cli_close(&c);
  trb_http_stop(s1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc32_known_value),
      cmocka_unit_test(test_post_echo_and_headers),
      cmocka_unit_test(test_keepalive_and_pipelining),
      cmocka_unit_test(test_large_headers_and_bodies_on_one_connection),
      cmocka_unit_test(test_body_split_across_writes),
      cmocka_unit_test(test_empty_bodies),
      cmocka_unit_test(test_body_cap),
      cmocka_unit_test(test_get_and_refused_requests),
      cmocka_unit_test(test_default_reject_bodies),
      cmocka_unit_test(test_concurrent_clients),
      cmocka_unit_test(test_stop_with_request_in_flight),
      cmocka_unit_test(test_idle_timeout_closes_connection),
      cmocka_unit_test(test_malformed_requests),
      cmocka_unit_test(test_listen_addresses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
