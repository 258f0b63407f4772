/*
 * test_schema_registry.c -- the schema registry client against a stand-in:
 * a thread in this test with a listening socket on 127.0.0.1:0 that reads
 * one HTTP/1.1 request per connection, records it (method, path, headers,
 * body) and answers what the test scripted. It is not Confluent's
 * registry; it implements only what the client asks (POST
 * /subjects/{subject}/versions) and answers as Confluent's documents.
 *
 * Checked: the request (method, path, percent-encoded subject, a base URL
 * with a path prefix, Content-Type, the {"schema": "..."} body carrying the
 * schema text exactly), the id taken from the answer, the cache (the same
 * pair twice makes one request; another subject or schema makes another),
 * error answers (409 and 422 refuse: TRB_ECONFIG; 500, 502 and 429 are
 * TRB_EIO; all with the registry's message and error_code), 2xx answers
 * without a usable id, an answer too large, a registry that does not
 * answer (timeout), connection refused, bad URLs, and credentials in the
 * URL (sent as Basic authentication, never shown in messages).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sinks/schema_registry.h"
#include "testutil.h"
#include "transform/avro_envelope.h"

/* ---- the stand-in ------------------------------------------------------ */

typedef struct stub {
  int lfd, port;
  pthread_t th;
  pthread_mutex_t mu;
  int stop;
  /* scripted: status 200 with no body gives {"id": next_id++} */
  int status;
  char answer[80 * 1024];
  int hang;           /* read the request, never answer */
  uint32_t next_id;
  /* recorded: the count and the last request */
  int nreq;
  char method[16], path[1024], ctype[256], auth[256];
  char *body;
} stub;

static stub S;

static int stopping(stub *s) {
  pthread_mutex_lock(&s->mu);
  int v = s->stop;
  pthread_mutex_unlock(&s->mu);
  return v;
}

/* Reads until the end of headers and Content-Length more bytes; 0 or -1. */
static int read_request(stub *s, int fd, char **req, size_t *hdr_len, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *b = malloc(cap + 1);
  size_t want = 0;
  *hdr_len = 0;
  for (;;) {
    if (*hdr_len && n >= want) break;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 50) == 0) {
      if (stopping(s)) break;
      continue;
    }
    if (n == cap) {
      cap *= 2;
      b = realloc(b, cap + 1);
    }
    ssize_t r = read(fd, b + n, cap - n);
    if (r <= 0) break;
    n += (size_t)r;
    b[n] = 0;
    if (!*hdr_len) {
      char *e = strstr(b, "\r\n\r\n");
      if (e) {
        *hdr_len = (size_t)(e - b) + 4;
        char *cl = strcasestr(b, "\r\nContent-Length:");
        want = *hdr_len + (cl && cl < e ? strtoul(cl + 17, NULL, 10) : 0);
      }
    }
  }
  if (!*hdr_len || n < want) {
    free(b);
    return -1;
  }
  *req = b;
  *len = want;
  return 0;
}

static void header(const char *req, size_t hdr_len, const char *name, char *out, size_t cap) {
  out[0] = 0;
  char pat[64];
  snprintf(pat, sizeof pat, "\r\n%s:", name);
  const char *h = strcasestr(req, pat);
  if (!h || (size_t)(h - req) >= hdr_len) return;
  h += strlen(pat);
  while (*h == ' ') h++;
  size_t n = strcspn(h, "\r\n");
  if (n >= cap) n = cap - 1;
  memcpy(out, h, n);
  out[n] = 0;
}

static void serve_one(stub *s, int fd) {
  char *req = NULL;
  size_t hl, len;
  if (read_request(s, fd, &req, &hl, &len)) return;
  pthread_mutex_lock(&s->mu);
  s->nreq++;
  sscanf(req, "%15s %1023s", s->method, s->path);
  header(req, hl, "Content-Type", s->ctype, sizeof s->ctype);
  header(req, hl, "Authorization", s->auth, sizeof s->auth);
  free(s->body);
  s->body = strndup(req + hl, len - hl);
  int hang = s->hang, status = s->status;
  char *ans;
  if (status == 200 && !s->answer[0]) {
    ans = malloc(64);
    snprintf(ans, 64, "{\"id\":%u}", (unsigned)s->next_id++);
  } else {
    ans = strdup(s->answer);
  }
  pthread_mutex_unlock(&s->mu);
  free(req);
  if (hang) {
    char c;
    while (!stopping(s)) { /* until the client gives up and closes */
      struct pollfd p = {.fd = fd, .events = POLLIN};
      if (poll(&p, 1, 50) > 0 && read(fd, &c, 1) <= 0) break;
    }
    free(ans);
    return;
  }
  char head[256];
  int hn = snprintf(head, sizeof head,
                    "HTTP/1.1 %d X\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\n"
                    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                    status, strlen(ans));
  if (write(fd, head, (size_t)hn) != hn || write(fd, ans, strlen(ans)) < 0) {
    /* the client went away: nothing to do */
  }
  free(ans);
}

static void *stub_main(void *arg) {
  stub *s = arg;
  while (!stopping(s)) {
    struct pollfd p = {.fd = s->lfd, .events = POLLIN};
    if (poll(&p, 1, 50) <= 0) continue;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0) continue;
    serve_one(s, fd);
    close(fd);
  }
  return NULL;
}

/* A listening socket on 127.0.0.1 with a free port; *port set. */
static int listen_any(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 16), 0);
  socklen_t al = sizeof a;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
  *port = ntohs(a.sin_port);
  return fd;
}

static int setup(void **state) {
  (void)state;
  memset(&S, 0, sizeof S);
  pthread_mutex_init(&S.mu, NULL);
  S.lfd = listen_any(&S.port);
  S.status = 200;
  S.next_id = 7;
  pthread_create(&S.th, NULL, stub_main, &S);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  pthread_mutex_lock(&S.mu);
  S.stop = 1;
  pthread_mutex_unlock(&S.mu);
  pthread_join(S.th, NULL);
  close(S.lfd);
  free(S.body);
  pthread_mutex_destroy(&S.mu);
  return 0;
}

static void script(int status, const char *answer) {
  pthread_mutex_lock(&S.mu);
  S.status = status;
  snprintf(S.answer, sizeof S.answer, "%s", answer ? answer : "");
  pthread_mutex_unlock(&S.mu);
}

static int nreq(void) {
  pthread_mutex_lock(&S.mu);
  int n = S.nreq;
  pthread_mutex_unlock(&S.mu);
  return n;
}

static trb_registry *reg_at(const char *path, int timeout_ms) {
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", S.port, path);
  trb_registry *r = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_registry_create(url, timeout_ms, &r, &st);
  if (rc) fail_msg("create %s: %s", url, trb_status_msg(&st));
  return r;
}

/* ---- the tests --------------------------------------------------------- */

static void test_request_and_id(void **state) {
  (void)state;
  trb_avro *a = NULL;
  assert_int_equal(trb_avro_create(&a, NULL), TRB_OK);
  trb_registry *r = reg_at("", 0);
  uint32_t id = 0;
  trb_status st;
  trb_status_init(&st);
  const char *schema = trb_avro_value_schema(a);
  assert_int_equal(trb_registry_register(r, "us-east-1.orders-value", schema, &id, &st), TRB_OK);
  assert_int_equal(id, 7);
  assert_int_equal(nreq(), 1);
  assert_string_equal(S.method, "POST");
  assert_string_equal(S.path, "/subjects/us-east-1.orders-value/versions");
  assert_string_equal(S.ctype, "application/vnd.schemaregistry.v1+json");
  assert_string_equal(S.auth, "");
  /* the body is {"schema": <the schema text as a JSON string>} and nothing else */
  json_error_t je;
  json_t *b = json_loads(S.body, 0, &je);
  assert_non_null(b);
  assert_int_equal(json_object_size(b), 1);
  assert_string_equal(json_string_value(json_object_get(b, "schema")), schema);
  json_decref(b);
  /* the key schema under its own subject gets its own id */
  assert_int_equal(trb_registry_register(r, "us-east-1.orders-key", trb_avro_key_schema(a), &id,
                                         &st), TRB_OK);
  assert_int_equal(id, 8);
  assert_int_equal(nreq(), 2);
  assert_string_equal(S.path, "/subjects/us-east-1.orders-key/versions");
  trb_registry_destroy(r);
  trb_avro_destroy(a);
}

static void test_cache(void **state) {
  (void)state;
  trb_registry *r = reg_at("", 0);
  uint32_t id = 0, id2 = 0;
  assert_int_equal(trb_registry_register(r, "t-value", "\"string\"", &id, NULL), TRB_OK);
  assert_int_equal(nreq(), 1);
  /* the same pair: from the cache, no request (the stand-in would give 8) */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(trb_registry_register(r, "t-value", "\"string\"", &id2, NULL), TRB_OK);
    assert_int_equal(id2, id);
  }
  assert_int_equal(nreq(), 1);
  /* another schema under the subject, or the schema under another subject */
  assert_int_equal(trb_registry_register(r, "t-value", "\"long\"", &id2, NULL), TRB_OK);
  assert_int_equal(id2, 8);
  assert_int_equal(trb_registry_register(r, "u-value", "\"string\"", &id2, NULL), TRB_OK);
  assert_int_equal(id2, 9);
  assert_int_equal(nreq(), 3);
  /* a second handle has its own cache: one request more */
  trb_registry *r2 = reg_at("", 0);
  assert_int_equal(trb_registry_register(r2, "t-value", "\"string\"", &id2, NULL), TRB_OK);
  assert_int_equal(nreq(), 4);
  trb_registry_destroy(r2);
  trb_registry_destroy(r);
}

static void test_paths(void **state) {
  (void)state;
  /* a path prefix and trailing slashes */
  trb_registry *r = reg_at("/registry//", 0);
  uint32_t id;
  assert_int_equal(trb_registry_register(r, "orders-value", "\"int\"", &id, NULL), TRB_OK);
  assert_string_equal(S.path, "/registry/subjects/orders-value/versions");
  char want[128];
  snprintf(want, sizeof want, "http://127.0.0.1:%d/registry", S.port);
  assert_string_equal(trb_registry_url(r), want);
  /* the subject is percent-encoded */
  assert_int_equal(trb_registry_register(r, "a b/c?d-value", "\"int\"", &id, NULL), TRB_OK);
  assert_string_equal(S.path, "/registry/subjects/a%20b%2Fc%3Fd-value/versions");
  trb_registry_destroy(r);
}

static void check_error(trb_registry *r, int status, const char *answer, trb_err want,
                        const char *const *in_msg) {
  script(status, answer);
  int before = nreq();
  uint32_t id = 12345;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_registry_register(r, "orders-value", "\"string\"", &id, &st);
  if (rc != want)
    fail_msg("HTTP %d: got %s (%s), want %s", status, trb_err_name(rc), trb_status_msg(&st),
             trb_err_name(want));
  assert_int_equal(st.code, want);
  assert_int_equal(id, 12345); /* untouched */
  assert_int_equal(nreq(), before + 1);
  assert_non_null(strstr(trb_status_msg(&st), "/subjects/orders-value/versions"));
  for (size_t i = 0; in_msg[i]; i++)
    if (!strstr(trb_status_msg(&st), in_msg[i]))
      fail_msg("HTTP %d: '%s' not in '%s'", status, in_msg[i], trb_status_msg(&st));
}

static void test_error_answers(void **state) {
  (void)state;
  trb_registry *r = reg_at("", 0);
  check_error(r, 409,
              "{\"error_code\":409,\"message\":\"Schema being registered is incompatible with "
              "an earlier schema for subject \\\"orders-value\\\"\"}",
              TRB_ECONFIG,
              (const char *const[]){"HTTP 409", "is incompatible with an earlier schema",
                                    "error_code 409", NULL});
  check_error(r, 422, "{\"error_code\":42201,\"message\":\"Invalid schema\"}", TRB_ECONFIG,
              (const char *const[]){"HTTP 422", "Invalid schema", "error_code 42201", NULL});
  check_error(r, 404, "{\"error_code\":404,\"message\":\"HTTP 404 Not Found\"}", TRB_ECONFIG,
              (const char *const[]){"HTTP 404", "Not Found", NULL});
  check_error(r, 401, "", TRB_ECONFIG, (const char *const[]){"HTTP 401", NULL});
  check_error(r, 500,
              "{\"error_code\":50001,\"message\":\"Error in the backend data store\"}", TRB_EIO,
              (const char *const[]){"HTTP 500", "backend data store", "error_code 50001", NULL});
  check_error(r, 502, "<html>Bad\ngateway</html>", TRB_EIO,
              (const char *const[]){"HTTP 502", "<html>Bad?gateway</html>", NULL});
  check_error(r, 429, "{\"message\":\"slow down\"}", TRB_EIO,
              (const char *const[]){"HTTP 429", "slow down", NULL});
  /* 2xx without a usable id */
  static const char *bad[] = {"{}", "{\"id\":\"7\"}", "{\"id\":-1}", "{\"id\":2147483648}",
                              "{\"id\":1.5}", "[7]", "id=7", " "};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    check_error(r, 200, bad[i], TRB_EIO, (const char *const[]){"no schema id", NULL});
  /* the largest id there is */
  script(200, "{\"id\":2147483647,\"version\":3}");
  uint32_t id = 0;
  assert_int_equal(trb_registry_register(r, "orders-value", "\"string\"", &id, NULL), TRB_OK);
  assert_int_equal(id, 2147483647u);
  trb_registry_destroy(r);
}

static void test_failures_not_cached(void **state) {
  (void)state;
  trb_registry *r = reg_at("", 0);
  uint32_t id = 0;
  script(503, "{\"error_code\":50003,\"message\":\"Error while forwarding the request\"}");
  assert_int_equal(trb_registry_register(r, "x-key", "\"bytes\"", &id, NULL), TRB_EIO);
  script(200, NULL);
  assert_int_equal(trb_registry_register(r, "x-key", "\"bytes\"", &id, NULL), TRB_OK);
  assert_int_equal(id, 7);
  assert_int_equal(nreq(), 2);
  assert_int_equal(trb_registry_register(r, "x-key", "\"bytes\"", &id, NULL), TRB_OK);
  assert_int_equal(nreq(), 2);
  trb_registry_destroy(r);
}

static void test_answer_too_large(void **state) {
  (void)state;
  trb_registry *r = reg_at("", 0);
  char *big = malloc(70 * 1024 + 16);
  strcpy(big, "{\"id\":7,\"x\":\"");
  memset(big + strlen(big), 'a', 70 * 1024);
  strcpy(big + 13 + 70 * 1024, "\"}");
  script(200, big);
  free(big);
  uint32_t id = 0;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_registry_register(r, "x-value", "\"int\"", &id, &st), TRB_EIO);
  assert_non_null(strstr(trb_status_msg(&st), "too large"));
  trb_registry_destroy(r);
}

static void test_timeout(void **state) {
  (void)state;
  trb_registry *r = reg_at("", 300);
  pthread_mutex_lock(&S.mu);
  S.hang = 1;
  pthread_mutex_unlock(&S.mu);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  uint32_t id = 0;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_registry_register(r, "slow-value", "\"int\"", &id, &st), TRB_EIO);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  assert_true(s < 5.0);
  assert_non_null(strstr(trb_status_msg(&st), "slow-value"));
  trb_registry_destroy(r);
}

static void test_connection_refused(void **state) {
  (void)state;
  int port;
  int fd = listen_any(&port);
  close(fd); /* nothing listens there now */
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
  trb_registry *r = NULL;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_registry_create(url, 0, &r, &st), TRB_OK);
  uint32_t id = 99;
  assert_int_equal(trb_registry_register(r, "t-value", "\"int\"", &id, &st), TRB_EIO);
  assert_int_equal(id, 99);
  assert_non_null(strstr(trb_status_msg(&st), url));
  assert_non_null(strstr(trb_status_msg(&st), "/subjects/t-value/versions"));
  trb_registry_destroy(r);
}

static void test_credentials(void **state) {
  (void)state;
  char url[128];
  snprintf(url, sizeof url, "http://user:s3cret@127.0.0.1:%d/", S.port);
  trb_registry *r = NULL;
  assert_int_equal(trb_registry_create(url, 0, &r, NULL), TRB_OK);
  assert_null(strstr(trb_registry_url(r), "s3cret"));
  assert_null(strstr(trb_registry_url(r), "user"));
  uint32_t id;
  assert_int_equal(trb_registry_register(r, "t-value", "\"int\"", &id, NULL), TRB_OK);
  assert_string_equal(S.auth, "Basic dXNlcjpzM2NyZXQ="); /* user:s3cret */
  script(500, "{\"error_code\":50001,\"message\":\"down\"}");
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_registry_register(r, "u-value", "\"int\"", &id, &st), TRB_EIO);
  assert_null(strstr(trb_status_msg(&st), "s3cret"));
  trb_registry_destroy(r);
}

static void test_bad_arguments(void **state) {
  (void)state;
  static const char *bad[] = {"", "ftp://127.0.0.1/", "file:///tmp/x", "not a url at all",
                              "http://127.0.0.1:1/?a=b", "http://127.0.0.1:1/#f"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    trb_registry *r = (trb_registry *)1;
    trb_status st;
    trb_status_init(&st);
    trb_err rc = trb_registry_create(bad[i], 0, &r, &st);
    if (rc != TRB_ECONFIG) fail_msg("'%s': got %s", bad[i], trb_err_name(rc));
    assert_null(r);
  }
  trb_registry *r = NULL;
  assert_int_equal(trb_registry_create(NULL, 0, &r, NULL), TRB_ECONFIG);
  trb_registry_destroy(NULL);
  r = reg_at("", 0);
  uint32_t id;
  assert_int_equal(trb_registry_register(r, NULL, "\"int\"", &id, NULL), TRB_EINVAL);
  assert_int_equal(trb_registry_register(r, "", "\"int\"", &id, NULL), TRB_EINVAL);
  assert_int_equal(trb_registry_register(r, "s", NULL, &id, NULL), TRB_EINVAL);
  assert_int_equal(trb_registry_register(r, "s", "\"\xff\"", &id, NULL), TRB_EINVAL);
  assert_int_equal(trb_registry_register(r, "\xc3(", "\"int\"", &id, NULL), TRB_EINVAL);
  assert_int_equal(trb_registry_register(NULL, "s", "\"int\"", &id, NULL), TRB_EINVAL);
  assert_int_equal(nreq(), 0);
  trb_registry_destroy(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_request_and_id, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
      cmocka_unit_test_setup_teardown(test_paths, setup, teardown),
      cmocka_unit_test_setup_teardown(test_error_answers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failures_not_cached, setup, teardown),
      cmocka_unit_test_setup_teardown(test_answer_too_large, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_credentials, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
