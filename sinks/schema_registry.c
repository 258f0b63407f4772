/*
 * schema_registry.c -- the schema registry client (see schema_registry.h).
 *
 * One libcurl easy handle per registry, reused so that requests share a
 * kept-alive connection, behind the handle's mutex with the cache. The
 * cache is a list: it holds two entries per Kafka topic, and a topic is a
 * table, so there are few; a lookup is two strcmp()s per entry.
 *
 * Why 4xx and 5xx differ: a registry that is down, overloaded (5xx, 429)
 * or slow (408, a timeout) may work on the next try; one that says the
 * schema is incompatible (409) or invalid (422), or that we may not ask
 * (401/403), says the same thing every time until a person changes it.
 * The caller decides what to do with either (the Kafka sink retries both,
 * so fixing the registry lets it go on without a restart).
 */
#include "sinks/schema_registry.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

/* A registry's answers are small; anything bigger is not one. */
#define ANSWER_MAX (64 * 1024)
#define CONNECT_TIMEOUT_MS 5000L

typedef struct reg_ent {
  struct reg_ent *next;
  char *subject;
  char *schema;
  uint32_t id;
} reg_ent;

struct trb_registry {
  pthread_mutex_t mu;
  CURL *h;
  char *base;     /* as given, trailing slashes dropped: requests go here */
  char *shown;    /* the same without user and password: messages say this */
  long timeout_ms;
  reg_ent *cache;
  char errbuf[CURL_ERROR_SIZE];
};

/* ---- creating ---------------------------------------------------------- */

/* Parses url with libcurl's own parser (the one the request will use),
 * refuses what cannot be a registry's base, and makes the display form. */
static trb_err check_url(const char *url, char **shown, trb_status *st) {
  *shown = NULL;
  trb_err rc = TRB_OK;
  char *scheme = NULL, *query = NULL, *frag = NULL, *s = NULL;
  CURLU *u = curl_url();
  if (!u) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
  if (uc) {
    rc = trb_status_set(st, TRB_ECONFIG, "schema registry: '%.200s' is not a URL: %s", url,
                        curl_url_strerror(uc));
    goto done;
  }
  curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
  if (!scheme || (strcmp(scheme, "http") && strcmp(scheme, "https"))) {
    rc = trb_status_set(st, TRB_ECONFIG, "schema registry: '%.200s': only http and https "
                        "URLs are supported", url);
    goto done;
  }
  if (!curl_url_get(u, CURLUPART_QUERY, &query, 0) ||
      !curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0)) {
    rc = trb_status_set(st, TRB_ECONFIG, "schema registry: '%.200s': a base URL has no query "
                        "or fragment (request paths are appended to it)", url);
    goto done;
  }
  curl_url_set(u, CURLUPART_USER, NULL, 0);
  curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
  if (curl_url_get(u, CURLUPART_URL, &s, 0) || !s) {
    rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
    goto done;
  }
  size_t n = strlen(s);
  while (n > 0 && s[n - 1] == '/') n--;
  *shown = strndup(s, n);
  if (!*shown) rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
done:
  curl_free(s);
  curl_free(frag);
  curl_free(query);
  curl_free(scheme);
  curl_url_cleanup(u);
  return rc;
}

trb_err trb_registry_create(const char *base_url, int timeout_ms, trb_registry **out,
                            trb_status *st) {
  *out = NULL;
  if (!base_url || !base_url[0])
    return trb_status_set(st, TRB_ECONFIG, "schema registry: no URL");
  /* Reference-counted and, since libcurl 7.84, thread-safe. */
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return trb_status_set(st, TRB_EINTERNAL, "schema registry: libcurl cannot start");
  trb_registry *r = calloc(1, sizeof *r);
  if (!r) {
    curl_global_cleanup();
    return trb_status_set(st, TRB_ENOMEM, "out of memory");
  }
  pthread_mutex_init(&r->mu, NULL);
  r->timeout_ms = timeout_ms > 0 ? timeout_ms : TRB_REGISTRY_TIMEOUT_MS;
  trb_err rc = check_url(base_url, &r->shown, st);
  if (rc) goto fail;
  size_t n = strlen(base_url);
  while (n > 0 && base_url[n - 1] == '/') n--;
  r->base = strndup(base_url, n);
  r->h = curl_easy_init();
  if (!r->base || !r->h) {
    rc = r->base ? trb_status_set(st, TRB_EINTERNAL, "schema registry: libcurl cannot start")
                 : trb_status_set(st, TRB_ENOMEM, "out of memory");
    goto fail;
  }
  *out = r;
  return TRB_OK;
fail:
  trb_registry_destroy(r);
  return rc;
}

void trb_registry_destroy(trb_registry *r) {
  if (!r) return;
  for (reg_ent *e = r->cache, *nx; e; e = nx) {
    nx = e->next;
    free(e->subject);
    free(e->schema);
    free(e);
  }
  if (r->h) curl_easy_cleanup(r->h);
  free(r->base);
  free(r->shown);
  pthread_mutex_destroy(&r->mu);
  free(r);
  curl_global_cleanup();
}

const char *trb_registry_url(const trb_registry *r) { return r->shown; }

/* ---- one request ------------------------------------------------------- */

static size_t on_body(char *p, size_t sz, size_t nm, void *ud) {
  trb_buf *b = ud;
  return trb_buf_append(b, p, sz * nm) ? 0 : sz * nm; /* 0: curl stops, CURLE_WRITE_ERROR */
}

/* What a refusal says, for a message: the registry's own message and
 * error_code, or the start of whatever it sent, made printable. */
static void describe_answer(const trb_buf *b, char *out, size_t cap) {
  out[0] = 0;
  json_t *o = b->len ? json_loadb((const char *)b->p, b->len, 0, NULL) : NULL;
  const char *m = o ? json_string_value(json_object_get(o, "message")) : NULL;
  json_t *ec = o ? json_object_get(o, "error_code") : NULL;
  if (m && json_is_integer(ec))
    snprintf(out, cap, ": %s (error_code %lld)", m, (long long)json_integer_value(ec));
  else if (m)
    snprintf(out, cap, ": %s", m);
  else if (b->len) {
    size_t o2 = (size_t)snprintf(out, cap, ": ");
    for (size_t i = 0; i < b->len && o2 + 4 < cap && i < 200; i++) {
      unsigned char c = b->p[i];
      out[o2++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[o2] = 0;
  }
  json_decref(o);
}

/* POSTs body to path; on success *answer holds the 2xx body. Called with
 * r->mu held. */
static trb_err post(trb_registry *r, const char *path, const char *shown_path, const char *body,
                    trb_buf *answer, trb_status *st) {
  size_t ul = strlen(r->base) + strlen(path) + 1;
  char *url = malloc(ul);
  if (!url) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  snprintf(url, ul, "%s%s", r->base, path);
  struct curl_slist *hd = NULL;
  static const char *const lines[] = {
      "Content-Type: application/vnd.schemaregistry.v1+json",
      ("Accept: application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; "
       "q=0.9, application/json; q=0.5"),
      "Expect:", /* no 100-continue round trip for a schema of a few KiB */
  };
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
    struct curl_slist *t = curl_slist_append(hd, lines[i]);
    if (!t) {
      curl_slist_free_all(hd);
      free(url);
      return trb_status_set(st, TRB_ENOMEM, "out of memory");
    }
    hd = t;
  }
  CURL *h = r->h;
  curl_easy_reset(h);
  r->errbuf[0] = 0;
  curl_easy_setopt(h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   r->timeout_ms < CONNECT_TIMEOUT_MS ? r->timeout_ms : CONNECT_TIMEOUT_MS);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, r->timeout_ms);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, answer);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "tributary-kafka-sink");
  CURLcode cc = curl_easy_perform(h);
  long status = 0;
  if (cc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(hd);
  free(url);
  if (cc != CURLE_OK)
    return trb_status_set(st, TRB_EIO, "schema registry %s: POST %s: %s", r->shown, shown_path,
                          cc == CURLE_WRITE_ERROR ? "the answer is too large to be a registry's"
                          : r->errbuf[0]          ? r->errbuf
                                                  : curl_easy_strerror(cc));
  if (status >= 200 && status < 300) return TRB_OK;
  char what[300];
  describe_answer(answer, what, sizeof what);
  trb_err code = status >= 500 || status == 408 || status == 429 ? TRB_EIO : TRB_ECONFIG;
  return trb_status_set(st, code, "schema registry %s: POST %s: HTTP %ld%s", r->shown,
                        shown_path, status, what);
}

/* ---- registering ------------------------------------------------------- */

static int utf8_ok(const char *s) {
  json_t *j = json_string(s); /* jansson checks UTF-8 */
  json_decref(j);
  return j != NULL;
}

trb_err trb_registry_register(trb_registry *r, const char *subject, const char *schema_json,
                              uint32_t *id, trb_status *st) {
  if (!r || !subject || !subject[0] || !schema_json || !id)
    return trb_status_set(st, TRB_EINVAL, "schema registry: no registry, subject or schema");
  if (!utf8_ok(subject) || !utf8_ok(schema_json))
    return trb_status_set(st, TRB_EINVAL, "schema registry: subject or schema is not UTF-8");
  pthread_mutex_lock(&r->mu);
  trb_err rc = TRB_OK;
  char *body = NULL, *esc = NULL, *path = NULL, *shown_path = NULL;
  json_t *req = NULL, *ans = NULL;
  trb_buf answer;
  trb_buf_init(&answer, ANSWER_MAX);
  for (reg_ent *e = r->cache; e; e = e->next)
    if (!strcmp(e->subject, subject) && !strcmp(e->schema, schema_json)) {
      *id = e->id;
      goto done;
    }
  req = json_pack("{s:s}", "schema", schema_json);
  body = req ? json_dumps(req, JSON_COMPACT) : NULL;
  esc = curl_easy_escape(r->h, subject, 0);
  size_t pl = esc ? strlen(esc) + 32 : 0, sl = strlen(subject) + 32;
  path = esc ? malloc(pl) : NULL;
  shown_path = malloc(sl);
  if (!body || !path || !shown_path) {
    rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
    goto done;
  }
  snprintf(path, pl, "/subjects/%s/versions", esc);
  snprintf(shown_path, sl, "/subjects/%s/versions", subject);
  if ((rc = post(r, path, shown_path, body, &answer, st))) goto done;
  ans = json_loadb((const char *)answer.p, answer.len, 0, NULL);
  json_t *jid = ans ? json_object_get(ans, "id") : NULL;
  json_int_t v = json_is_integer(jid) ? json_integer_value(jid) : -1;
  if (v < 0 || v > INT32_MAX) {
    char what[300];
    describe_answer(&answer, what, sizeof what);
    rc = trb_status_set(st, TRB_EIO, "schema registry %s: POST %s: the answer has no schema id "
                        "(want {\"id\": N})%s", r->shown, shown_path, what);
    goto done;
  }
  reg_ent *e = calloc(1, sizeof *e);
  if (e) {
    e->subject = strdup(subject);
    e->schema = strdup(schema_json);
  }
  if (!e || !e->subject || !e->schema) {
    if (e) {
      free(e->subject);
      free(e->schema);
    }
    free(e);
    rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
    goto done;
  }
  e->id = (uint32_t)v;
  e->next = r->cache;
  r->cache = e;
  *id = e->id;
done:
  pthread_mutex_unlock(&r->mu);
  json_decref(ans);
  trb_buf_fini(&answer);
  free(shown_path);
  free(path);
  curl_free(esc);
  free(body);
  json_decref(req);
  return rc;
}
