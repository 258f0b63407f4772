/*
 * cmd_stream.c -- `tributary stream tail TABLE`: follows a table's stream
 * live, like `kcat -C`, as a client of a server's DynamoDB Streams API.
 *
 * It is an ordinary Streams consumer over HTTP (libcurl), so it reads any
 * DynamoDB-Streams-compatible endpoint, not only the server of this data
 * directory:
 *
 *   ListStreams {TableName}            -> the table's newest stream
 *   DescribeStream (every page)        -> its shards and their lineage
 *   GetShardIterator per shard         -> TRIM_HORIZON / LATEST / AT_SEQUENCE_NUMBER
 *   GetRecords per open iterator       -> records; no NextShardIterator: the
 *                                         shard is closed and read to its end
 *
 * A shard whose parent is listed and not read to its end waits for it
 * (ARCHITECTURE.md invariant 5: an item's records stay in order across a
 * rollover). DescribeStream is asked again every 2 s, and at once when a
 * shard ends, to find the children a rollover creates. Records fetched in
 * one round (one GetRecords per shard) are printed in sequence-number order;
 * records of different shards fetched in different rounds are not reordered
 * (a stream promises order per item, not across items).
 *
 * Requests are signed (SigV4, libcurl's CURLOPT_AWS_SIGV4) with
 * api.access_key_id/api.secret_access_key from the config, else with
 * AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from the environment, else sent
 * unsigned (a server without credentials accepts that).
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli/cli.h"
#include "util/clock.h"

static const char *stream_help =
    "usage: tributary stream tail TABLE [--endpoint URL] [--from trim_horizon|latest|SEQ]\n"
    "                             [--format json|pretty] [--count N] [--idle-exit SECONDS]\n"
    "\n"
    "Follows the newest stream of TABLE live through a server's DynamoDB Streams API\n"
    "(tributary serve, or any Streams-compatible endpoint), like `kcat -C`: every shard,\n"
    "parents before children, new shards picked up after a rollover. Records are\n"
    "printed as they arrive; an item's records are always in order.\n"
    "\n"
    "  --endpoint URL  the server (default http://HOST:PORT from api.listen in the\n"
    "                  config, i.e. http://127.0.0.1:8000)\n"
    "  --from trim_horizon   every record the stream still holds, then new ones\n"
    "  --from latest   (default) only records written after the tail started\n"
    "  --from SEQ      records with sequence number >= SEQ, then new ones\n"
    "  --format json   (default) each record as GetRecords returns it, one compact\n"
    "                  JSON object per line, flushed per line\n"
    "  --format pretty TIME  SEQUENCE_NUMBER  EVENT  KEYS  old=IMAGE  new=IMAGE\n"
    "                  (the images the stream's view type carries)\n"
    "  --count N       exit 0 after N records\n"
    "  --idle-exit S   exit 0 after S seconds (may be fractional) without a record\n"
    "\n"
    "A line \"tributary: tailing ...\" on stderr says when the shards are positioned.\n"
    "Requests are SigV4-signed with api.access_key_id/api.secret_access_key from the\n"
    "config, else AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else sent unsigned; the\n"
    "signing region is the config's region (with the environment's keys,\n"
    "AWS_REGION or AWS_DEFAULT_REGION when set; the server refuses a signature for\n"
    "another region than its own). Ctrl-C or SIGTERM stops it (exit 0).\n"
    "Exit 1 when the server cannot be reached or answers an error (its type and\n"
    "message are printed), or the table has no stream; 2 for a bad command line.\n";

#define POLL_MS 200
#define DESCRIBE_EVERY_MS 2000
#define MAX_RESPONSE (64u << 20)
#define SEQ_MAX 48

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

/* ---- the HTTP client ---- */

typedef enum call_rc { CALL_OK = 0, CALL_API, CALL_NET, CALL_STOP } call_rc;

typedef struct sclient {
  CURL *h;
  char *url;
  char *sigv4;              /* "aws:amz:REGION:dynamodb" or NULL */
  char *userpwd;            /* "AKID:SECRET" or NULL */
  char *body;               /* the response being received */
  size_t len, cap;
  int too_big;
  char errbuf[CURL_ERROR_SIZE];
  char err_type[160];       /* the last API error (CALL_API) */
  char err_msg[1024];
} sclient;

static size_t on_body(char *p, size_t size, size_t nmemb, void *ctx) {
  sclient *sc = ctx;
  size_t n = size * nmemb;
  if (sc->len + n + 1 > sc->cap) {
    size_t nc = sc->cap ? sc->cap : 1 << 16;
    while (nc < sc->len + n + 1) nc *= 2;
    char *nb = nc <= MAX_RESPONSE ? realloc(sc->body, nc) : NULL;
    if (!nb) {
      sc->too_big = 1;
      return 0;
    }
    sc->body = nb;
    sc->cap = nc;
  }
  memcpy(sc->body + sc->len, p, n);
  sc->len += n;
  sc->body[sc->len] = 0;
  return n;
}

static int on_progress(void *ctx, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
  (void)ctx, (void)a, (void)b, (void)c, (void)d;
  return g_stop ? 1 : 0;
}

/* 0 ok; prints and returns -1 when curl cannot be set up. */
static int sclient_init(sclient *sc, const char *url, const trb_config *cfg) {
  memset(sc, 0, sizeof *sc);
  const char *ak = cfg->api.access_key_id, *sk = cfg->api.secret_access_key;
  const char *region = cfg->region[0] ? cfg->region : "us-east-1";
  if (!ak[0] || !sk[0]) { /* the environment's keys, and region, as the AWS CLI takes them */
    ak = getenv("AWS_ACCESS_KEY_ID");
    sk = getenv("AWS_SECRET_ACCESS_KEY");
    const char *er = getenv("AWS_REGION");
    if (!er || !er[0]) er = getenv("AWS_DEFAULT_REGION");
    if (er && er[0]) region = er;
  }
  if (!(sc->url = strdup(url)) || !(sc->h = curl_easy_init())) {
    fprintf(stderr, "tributary: cannot set up the HTTP client\n");
    return -1;
  }
  if (ak && ak[0] && sk && sk[0]) {
    if (asprintf(&sc->sigv4, "aws:amz:%s:dynamodb", region) < 0)
      sc->sigv4 = NULL;
    if (asprintf(&sc->userpwd, "%s:%s", ak, sk) < 0) sc->userpwd = NULL;
    if (!sc->sigv4 || !sc->userpwd) {
      fprintf(stderr, "tributary: out of memory\n");
      return -1;
    }
  }
  CURL *h = sc->h;
  curl_easy_setopt(h, CURLOPT_URL, sc->url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, sc->errbuf);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, sc);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "tributary-stream-tail/0.1");
  if (sc->sigv4) {
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sc->sigv4);
    curl_easy_setopt(h, CURLOPT_USERPWD, sc->userpwd);
  }
  return 0;
}

static void sclient_fini(sclient *sc) {
  if (sc->h) curl_easy_cleanup(sc->h);
  free(sc->url);
  free(sc->sigv4);
  free(sc->userpwd);
  free(sc->body);
}

/*
 * POSTs one Streams operation. req is borrowed (NULL: building it ran out
 * of memory, reported as CALL_NET). On CALL_OK *out is the
 * parsed response (caller decrefs); CALL_API leaves the error's type
 * (without its namespace) and message in sc; CALL_NET has been printed;
 * CALL_STOP: a signal asked to stop.
 */
static call_rc call(sclient *sc, const char *op, json_t *req, json_t **out) {
  *out = NULL;
  char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
  char target[96];
  snprintf(target, sizeof target, "X-Amz-Target: DynamoDBStreams_20120810.%s", op);
  /* "Expect:" drops curl's 100-continue round trip for bodies over 1 KiB. */
  const char *lines[] = {"Content-Type: application/x-amz-json-1.0", target, "Expect:"};
  struct curl_slist *hd = NULL;
  int ok = text != NULL;
  for (size_t i = 0; ok && i < sizeof lines / sizeof *lines; i++) {
    struct curl_slist *t = curl_slist_append(hd, lines[i]);
    if (t) hd = t;
    else ok = 0;
  }
  if (!ok) {
    free(text);
    curl_slist_free_all(hd);
    fprintf(stderr, "tributary: out of memory\n");
    return CALL_NET;
  }
  sc->len = 0;
  sc->too_big = 0;
  sc->errbuf[0] = 0;
  curl_easy_setopt(sc->h, CURLOPT_HTTPHEADER, hd);
  curl_easy_setopt(sc->h, CURLOPT_POSTFIELDS, text);
  curl_easy_setopt(sc->h, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
  CURLcode cc = curl_easy_perform(sc->h);
  curl_easy_setopt(sc->h, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(hd);
  free(text);
  if (cc == CURLE_ABORTED_BY_CALLBACK && g_stop) return CALL_STOP;
  if (cc != CURLE_OK) {
    if (sc->too_big)
      fprintf(stderr, "tributary: %s: the response of %s is larger than %u MiB\n", sc->url, op,
              MAX_RESPONSE >> 20);
    else
      fprintf(stderr, "tributary: cannot reach the server at %s: %s\n", sc->url,
              sc->errbuf[0] ? sc->errbuf : curl_easy_strerror(cc));
    return CALL_NET;
  }
  long status = 0;
  curl_easy_getinfo(sc->h, CURLINFO_RESPONSE_CODE, &status);
  json_error_t je;
  json_t *j = sc->len ? json_loadb(sc->body, sc->len, 0, &je) : NULL;
  if (status == 200 && json_is_object(j)) {
    *out = j;
    return CALL_OK;
  }
  const char *type = json_string_value(json_object_get(j, "__type"));
  const char *msg = json_string_value(json_object_get(j, "message"));
  if (!msg) msg = json_string_value(json_object_get(j, "Message"));
  if (status != 200 && type) {
    const char *hash = strrchr(type, '#');
    snprintf(sc->err_type, sizeof sc->err_type, "%s", hash ? hash + 1 : type);
    snprintf(sc->err_msg, sizeof sc->err_msg, "%s", msg ? msg : "");
    json_decref(j);
    return CALL_API;
  }
  fprintf(stderr, "tributary: %s answered %s with HTTP %ld and %s: %.200s\n", sc->url, op, status,
          j ? "an unexpected JSON body" : "a body that is not JSON", sc->len ? sc->body : "");
  json_decref(j);
  return CALL_NET;
}

/* "tributary: TYPE: message"; CLI_FAIL. */
static int api_error(const sclient *sc) {
  fprintf(stderr, "tributary: %s: %s\n", sc->err_type,
          sc->err_msg[0] ? sc->err_msg : "(no message)");
  return CLI_FAIL;
}

/* ---- sequence numbers: decimal strings compared as big integers ---- */

static int seq_cmp(const char *a, const char *b) {
  while (*a == '0' && a[1]) a++;
  while (*b == '0' && b[1]) b++;
  size_t la = strlen(a), lb = strlen(b);
  if (la != lb) return la < lb ? -1 : 1;
  return strcmp(a, b);
}

static int seq_valid(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n >= SEQ_MAX) return 0;
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)s[i])) return 0;
  return 1;
}

/* ---- shards ---- */

typedef enum sh_state { SH_PENDING = 0, SH_ACTIVE, SH_DONE } sh_state;

typedef struct tshard {
  char *id;
  char *parent;             /* NULL when none */
  char start[SEQ_MAX];
  char end[SEQ_MAX];        /* "" while open */
  sh_state state;
  const char *first;        /* iterator type when it becomes active */
  char *iter;
  char last_seq[SEQ_MAX];   /* of the last record read, for an expired iterator */
} tshard;

typedef enum from_kind { FROM_TRIM_HORIZON, FROM_LATEST, FROM_SEQ } from_kind;

typedef struct tail {
  sclient sc;
  const char *table;
  char *arn;
  from_kind from;
  char from_seq[SEQ_MAX];
  int pretty;
  uint64_t count;           /* 0 = no limit */
  uint64_t printed;
  int64_t idle_ns;          /* 0 = never */
  int enabled;
  int described;
  tshard *sh;
  size_t nsh, capsh;
} tail;

static tshard *find_shard(tail *t, const char *id) {
  for (size_t i = 0; id && i < t->nsh; i++)
    if (!strcmp(t->sh[i].id, id)) return &t->sh[i];
  return NULL;
}

/* Where a newly listed shard starts, by --from: its first iterator type,
 * or DONE (nothing of it is wanted). */
static void place_shard(tail *t, tshard *s) {
  s->first = "TRIM_HORIZON";
  if (t->from == FROM_LATEST && !t->described) {
    if (s->end[0]) s->state = SH_DONE;
    else s->first = "LATEST";
  } else if (t->from == FROM_SEQ) {
    if (s->end[0] && seq_cmp(s->end, t->from_seq) < 0) s->state = SH_DONE;
    else if (seq_cmp(s->start, t->from_seq) < 0) s->first = "AT_SEQUENCE_NUMBER";
  }
}

/* Lists every shard (all pages) and adds the new ones. CLI_OK or the exit
 * status. */
static int describe(tail *t) {
  char *start = NULL;
  int rc = CLI_OK;
  for (;;) {
    json_t *req = json_pack("{s:s}", "StreamArn", t->arn), *resp = NULL;
    if (req && start) json_object_set_new(req, "ExclusiveStartShardId", json_string(start));
    call_rc cr = call(&t->sc, "DescribeStream", req, &resp);
    json_decref(req);
    if (cr) {
      rc = cr == CALL_API ? api_error(&t->sc) : cr == CALL_STOP ? CLI_OK : CLI_FAIL;
      if (cr == CALL_STOP) g_stop = 1;
      break;
    }
    json_t *d = json_object_get(resp, "StreamDescription");
    const char *status = json_string_value(json_object_get(d, "StreamStatus"));
    t->enabled = !status || strcmp(status, "DISABLED");
    json_t *shards = json_object_get(d, "Shards");
    size_t i;
    json_t *o;
    json_array_foreach(shards, i, o) {
      const char *id = json_string_value(json_object_get(o, "ShardId"));
      const char *parent = json_string_value(json_object_get(o, "ParentShardId"));
      json_t *range = json_object_get(o, "SequenceNumberRange");
      const char *s1 = json_string_value(json_object_get(range, "StartingSequenceNumber"));
      const char *s2 = json_string_value(json_object_get(range, "EndingSequenceNumber"));
      if (!id) continue;
      tshard *s = find_shard(t, id);
      if (!s) {
        if (t->nsh == t->capsh) {
          size_t nc = t->capsh ? t->capsh * 2 : 16;
          tshard *ns = realloc(t->sh, nc * sizeof *ns);
          if (!ns) {
            rc = cli_fail(TRB_ENOMEM, NULL);
            break;
          }
          t->sh = ns;
          t->capsh = nc;
        }
        s = &t->sh[t->nsh];
        memset(s, 0, sizeof *s);
        s->id = strdup(id);
        s->parent = parent ? strdup(parent) : NULL;
        if (!s->id || (parent && !s->parent)) {
          free(s->id);
          free(s->parent);
          rc = cli_fail(TRB_ENOMEM, NULL);
          break;
        }
        snprintf(s->start, sizeof s->start, "%s", s1 ? s1 : "0");
        snprintf(s->end, sizeof s->end, "%s", s2 ? s2 : "");
        t->nsh++;
        place_shard(t, s);
      } else if (s2 && !s->end[0]) {
        snprintf(s->end, sizeof s->end, "%s", s2);
      }
    }
    const char *last = json_string_value(json_object_get(d, "LastEvaluatedShardId"));
    free(start);
    start = last ? strdup(last) : NULL;
    json_decref(resp);
    if (rc || !start) break;
  }
  free(start);
  if (!rc) t->described = 1;
  return rc;
}

/* Gets s an iterator of `type` (with seq for the *_SEQUENCE_NUMBER types).
 * A shard the server no longer has is noted and marked done. */
static int get_iterator(tail *t, tshard *s, const char *type, const char *seq) {
  json_t *req = json_pack("{s:s,s:s,s:s}", "StreamArn", t->arn, "ShardId", s->id,
                          "ShardIteratorType", type), *resp = NULL;
  if (req && seq) json_object_set_new(req, "SequenceNumber", json_string(seq));
  call_rc cr = call(&t->sc, "GetShardIterator", req, &resp);
  json_decref(req);
  if (cr == CALL_STOP) return CLI_OK;
  int trimmed = cr == CALL_API && !strcmp(t->sc.err_type, "TrimmedDataAccessException");
  if (trimmed && strcmp(type, "TRIM_HORIZON")) {
    /* --from SEQ (or an expired iterator's position) older than what
     * retention kept: say so, and go on from the oldest record left. */
    fprintf(stderr,
            "tributary: records of shard %s before %s were removed by retention; reading "
            "from the oldest one kept\n",
            s->id, seq ? seq : type);
    return get_iterator(t, s, "TRIM_HORIZON", NULL);
  }
  if (trimmed || (cr == CALL_API && !strcmp(t->sc.err_type, "ResourceNotFoundException"))) {
    fprintf(stderr, "tributary: shard %s is gone (%s), skipped\n", s->id, t->sc.err_type);
    s->state = SH_DONE;
    return CLI_OK;
  }
  if (cr == CALL_API) return api_error(&t->sc);
  if (cr) return CLI_FAIL;
  const char *it = json_string_value(json_object_get(resp, "ShardIterator"));
  free(s->iter);
  s->iter = it ? strdup(it) : NULL;
  json_decref(resp);
  s->state = s->iter ? SH_ACTIVE : SH_DONE;
  return CLI_OK;
}

/* Starts every waiting shard whose parent is read to its end (or unknown). */
static int activate(tail *t) {
  for (size_t i = 0; i < t->nsh && !g_stop; i++) {
    tshard *s = &t->sh[i];
    if (s->state != SH_PENDING) continue;
    tshard *p = find_shard(t, s->parent);
    if (p && p->state != SH_DONE) continue;
    int at = !strcmp(s->first, "AT_SEQUENCE_NUMBER");
    int rc = get_iterator(t, s, s->first, at ? t->from_seq : NULL);
    if (rc) return rc;
  }
  return CLI_OK;
}

/* ---- output ---- */

static const char *rec_seq(const json_t *rec) {
  const char *s =
      json_string_value(json_object_get(json_object_get(rec, "dynamodb"), "SequenceNumber"));
  return s ? s : "0";
}

static int rec_cmp(const void *a, const void *b) {
  return seq_cmp(rec_seq(*(json_t *const *)a), rec_seq(*(json_t *const *)b));
}

static char *dump(const json_t *j) {
  return j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

/* TIME  SEQ  EVENT  KEYS  old=...  new=... (malloc'ed). */
static char *pretty_line(const json_t *rec) {
  const json_t *d = json_object_get(rec, "dynamodb");
  const json_t *when = json_object_get(d, "ApproximateCreationDateTime");
  char ts[48] = "-";
  if (json_is_number(when)) {
    double v = json_number_value(when), secs = floor(v);
    time_t tt = (time_t)secs;
    struct tm tm;
    if (gmtime_r(&tt, &tm)) {
      size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
      int ms = (int)llround((v - secs) * 1000);
      if (ms > 999) ms = 999;
      if (json_is_real(when) && ms) snprintf(ts + n, sizeof ts - n, ".%03dZ", ms);
      else snprintf(ts + n, sizeof ts - n, "Z");
    }
  }
  const char *seq = json_string_value(json_object_get(d, "SequenceNumber"));
  const char *ev = json_string_value(json_object_get(rec, "eventName"));
  if (ev && !strcmp(ev, "REMOVE") && json_object_get(rec, "userIdentity"))
    ev = "REMOVE(ttl)"; /* deleted by Time to Live, as trb_stream_record_pretty says */
  char *keys = dump(json_object_get(d, "Keys"));
  char *old = dump(json_object_get(d, "OldImage"));
  char *nw = dump(json_object_get(d, "NewImage"));
  char *line = NULL;
  if (asprintf(&line, "%s  %s  %s  %s%s%s%s%s", ts, seq ? seq : "-", ev ? ev : "-",
               keys ? keys : "{}", old ? "  old=" : "", old ? old : "", nw ? "  new=" : "",
               nw ? nw : "") < 0)
    line = NULL;
  free(keys);
  free(old);
  free(nw);
  return line;
}

/* Prints one record. CLI_OK; -1 when stdout is closed (a reader like
 * `head` went away: stop quietly); CLI_FAIL on another write error. */
static int print_record(tail *t, const json_t *rec) {
  char *line = t->pretty ? pretty_line(rec) : dump(rec);
  if (!line) return cli_fail(TRB_ENOMEM, NULL);
  fputs(line, stdout);
  fputc('\n', stdout);
  free(line);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    if (errno == EPIPE) return -1;
    fprintf(stderr, "tributary: writing the output: %s\n", strerror(errno));
    return CLI_FAIL;
  }
  t->printed++;
  return CLI_OK;
}

/* One GetRecords on s; its records are appended to batch. *ended set when
 * the shard is read to its end. */
static int read_shard(tail *t, tshard *s, json_t *batch, int *ended) {
  for (int attempt = 0;; attempt++) {
    json_t *req = json_pack("{s:s,s:i}", "ShardIterator", s->iter, "Limit", 1000), *resp = NULL;
    call_rc cr = call(&t->sc, "GetRecords", req, &resp);
    json_decref(req);
    if (cr == CALL_STOP) return CLI_OK;
    if (cr == CALL_API && !attempt && !strcmp(t->sc.err_type, "ExpiredIteratorException")) {
      /* Renew it where it stood (an iterator lives 15 minutes; a suspended
       * laptop outlives that). */
      int at = !strcmp(s->first, "AT_SEQUENCE_NUMBER");
      int rc = s->last_seq[0] ? get_iterator(t, s, "AFTER_SEQUENCE_NUMBER", s->last_seq)
                              : get_iterator(t, s, s->first, at ? t->from_seq : NULL);
      if (rc || s->state != SH_ACTIVE) return rc;
      continue;
    }
    if (cr == CALL_API && !attempt && !strcmp(t->sc.err_type, "TrimmedDataAccessException")) {
      /* Retention removed records this tail had not read yet: they are
       * lost to it. Say so and go on from the oldest record left. */
      fprintf(stderr,
              "tributary: records of shard %s after %s were removed by retention before "
              "they were read; going on from the oldest one kept\n",
              s->id, s->last_seq[0] ? s->last_seq : "its start");
      int rc = get_iterator(t, s, "TRIM_HORIZON", NULL);
      if (rc || s->state != SH_ACTIVE) return rc;
      continue;
    }
    if (cr == CALL_API) return api_error(&t->sc);
    if (cr) return CLI_FAIL;
    json_t *recs = json_object_get(resp, "Records");
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r) {
      const char *seq =
          json_string_value(json_object_get(json_object_get(r, "dynamodb"), "SequenceNumber"));
      if (seq) snprintf(s->last_seq, sizeof s->last_seq, "%s", seq);
      json_array_append(batch, r);
    }
    const char *next = json_string_value(json_object_get(resp, "NextShardIterator"));
    free(s->iter);
    s->iter = next ? strdup(next) : NULL;
    if (!next) {
      s->state = SH_DONE;
      *ended = 1;
    } else if (!s->iter) {
      json_decref(resp);
      return cli_fail(TRB_ENOMEM, NULL);
    }
    json_decref(resp);
    return CLI_OK;
  }
}

static void sleep_ms(int64_t ms) {
  if (ms <= 0) return;
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
  nanosleep(&ts, NULL); /* a signal cuts it short: the loop then sees g_stop */
}

/* The newest stream of the table into t->arn. */
static int find_stream(tail *t) {
  char *start = NULL;
  int rc = CLI_OK;
  for (;;) {
    json_t *req = json_pack("{s:s}", "TableName", t->table), *resp = NULL;
    if (req && start) json_object_set_new(req, "ExclusiveStartStreamArn", json_string(start));
    call_rc cr = call(&t->sc, "ListStreams", req, &resp);
    json_decref(req);
    if (cr) {
      if (cr == CALL_STOP) g_stop = 1;
      rc = cr == CALL_API ? api_error(&t->sc) : cr == CALL_STOP ? CLI_OK : CLI_FAIL;
      break;
    }
    json_t *v = json_object_get(resp, "Streams");
    for (size_t i = json_array_size(v); i > 0; i--) {
      json_t *s = json_array_get(v, i - 1);
      const char *tn = json_string_value(json_object_get(s, "TableName"));
      const char *arn = json_string_value(json_object_get(s, "StreamArn"));
      if (arn && (!tn || !strcmp(tn, t->table))) {
        free(t->arn);
        t->arn = strdup(arn);
        break;
      }
    }
    const char *last = json_string_value(json_object_get(resp, "LastEvaluatedStreamArn"));
    free(start);
    start = last ? strdup(last) : NULL;
    json_decref(resp);
    if (!start) break;
  }
  free(start);
  if (!rc && !g_stop && !t->arn) {
    fprintf(stderr,
            "tributary: table %s has no stream; enable one with UpdateTable "
            "StreamSpecification\n",
            t->table);
    rc = CLI_FAIL;
  }
  return rc;
}

static int run_tail(tail *t) {
  int rc = find_stream(t);
  if (rc || g_stop) return rc;
  if ((rc = describe(t)) || g_stop) return rc;
  if (!t->enabled)
    fprintf(stderr, "tributary: the newest stream of table %s is disabled; reading what it holds\n",
            t->table);
  if ((rc = activate(t)) || g_stop) return rc;
  fprintf(stderr, "tributary: tailing %s from %s\n", t->arn,
          t->from == FROM_SEQ ? t->from_seq : t->from == FROM_LATEST ? "LATEST" : "TRIM_HORIZON");
  int64_t now = trb_mono_ns(), last_rec = now, last_describe = now;
  json_t *batch = json_array();
  if (!batch) return cli_fail(TRB_ENOMEM, NULL);
  while (!g_stop) {
    int ended = 0;
    json_array_clear(batch);
    for (size_t i = 0; i < t->nsh && !g_stop && !rc; i++)
      if (t->sh[i].state == SH_ACTIVE) rc = read_shard(t, &t->sh[i], batch, &ended);
    if (rc || g_stop) break;
    size_t n = json_array_size(batch);
    if (n) {
      json_t **v = malloc(n * sizeof *v);
      if (!v) {
        rc = cli_fail(TRB_ENOMEM, NULL);
        break;
      }
      for (size_t i = 0; i < n; i++) v[i] = json_array_get(batch, i);
      qsort(v, n, sizeof *v, rec_cmp); /* a round's records in sequence order */
      for (size_t i = 0; i < n && !rc; i++) {
        rc = print_record(t, v[i]);
        if (!rc && t->count && t->printed >= t->count) break;
      }
      free(v);
      if (rc < 0) rc = CLI_OK, g_stop = 1; /* stdout closed */
      if (rc || g_stop || (t->count && t->printed >= t->count)) break;
    }
    now = trb_mono_ns();
    if (n) last_rec = now;
    if (t->idle_ns && now - last_rec >= t->idle_ns) break;
    if (ended || now - last_describe >= (int64_t)DESCRIBE_EVERY_MS * 1000000) {
      if ((rc = describe(t))) break;
      last_describe = trb_mono_ns();
    }
    if ((rc = activate(t)) || g_stop) break;
    size_t live = 0;
    for (size_t i = 0; i < t->nsh; i++) live += t->sh[i].state != SH_DONE;
    if (!t->enabled && !live) {
      fprintf(stderr, "tributary: the stream is disabled and every shard of it is read\n");
      break;
    }
    if (!n && !ended) {
      int64_t wait = POLL_MS;
      if (t->idle_ns) {
        int64_t left = (t->idle_ns - (trb_mono_ns() - last_rec)) / 1000000 + 1;
        if (left < wait) wait = left;
      }
      sleep_ms(wait);
    }
  }
  json_decref(batch);
  return rc;
}

/* http://HOST:PORT from api.listen, with a wildcard address made loopback. */
static char *default_endpoint(const char *listen) {
  char *u = NULL;
  const char *port = strrchr(listen, ':');
  if (!strncmp(listen, "0.0.0.0:", 8) && port) {
    if (asprintf(&u, "http://127.0.0.1%s", port) < 0) u = NULL;
  } else if (!strncmp(listen, "[::]:", 5) && port) {
    if (asprintf(&u, "http://[::1]%s", port) < 0) u = NULL;
  } else if (asprintf(&u, "http://%s", listen) < 0) {
    u = NULL;
  }
  return u;
}

static int stream_tail(cli *c, int argc, char **argv) {
  tail t;
  memset(&t, 0, sizeof t);
  t.from = FROM_LATEST;
  const char *endpoint = NULL;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    /* NAME: "--opt" of "--opt VALUE" or "--opt=VALUE" */
    char name[16] = "";
    const char *eq = a[0] == '-' ? strchr(a, '=') : NULL;
    size_t nl = eq ? (size_t)(eq - a) : strlen(a);
    if (nl < sizeof name) memcpy(name, a, nl), name[nl] = 0;
    static const char *const opts[] = {"--endpoint", "--from", "--format", "--count",
                                       "--idle-exit", NULL};
    int known = 0;
    for (int k = 0; opts[k]; k++)
      if (!strcmp(name, opts[k])) known = 1;
    if (known) {
      if (eq) v = eq + 1;
      else if (i + 1 < argc) v = argv[++i];
      else return cli_usage_err("stream", "%s needs a value", a);
    }
    if (known && !strcmp(name, "--endpoint")) {
      endpoint = v;
    } else if (known && !strcmp(name, "--from")) {
      if (!strcasecmp(v, "trim_horizon")) t.from = FROM_TRIM_HORIZON;
      else if (!strcasecmp(v, "latest")) t.from = FROM_LATEST;
      else if (seq_valid(v)) {
        t.from = FROM_SEQ;
        snprintf(t.from_seq, sizeof t.from_seq, "%s", v);
      } else {
        return cli_usage_err("stream",
                             "--from must be trim_horizon, latest or a sequence number "
                             "(1 to %d digits), not '%s'",
                             SEQ_MAX - 1, v);
      }
    } else if (known && !strcmp(name, "--format")) {
      if (!strcmp(v, "pretty")) t.pretty = 1;
      else if (strcmp(v, "json"))
        return cli_usage_err("stream", "--format must be json or pretty, not '%s'", v);
    } else if (known && !strcmp(name, "--count")) {
      char *end;
      errno = 0;
      unsigned long long n = strtoull(v, &end, 10);
      if (!isdigit((unsigned char)v[0]) || *end || errno || !n)
        return cli_usage_err("stream", "--count must be a positive integer, not '%s'", v);
      t.count = n;
    } else if (known && !strcmp(name, "--idle-exit")) {
      char *end;
      double s = strtod(v, &end);
      if (!isdigit((unsigned char)v[0]) || *end || !(s > 0) || s > 1e7)
        return cli_usage_err("stream", "--idle-exit must be a positive number of seconds, not '%s'",
                             v);
      t.idle_ns = (int64_t)(s * 1e9);
      if (t.idle_ns < 1) t.idle_ns = 1;
    } else if (a[0] == '-' && a[1]) {
      return cli_usage_err("stream", "unknown option %s", a);
    } else if (t.table) {
      return cli_usage_err("stream", "unexpected argument '%s'", a);
    } else {
      t.table = a;
    }
  }
  if (!t.table) return cli_usage_err("stream", "missing TABLE");
  char *url = NULL;
  if (endpoint) {
    if (!endpoint[0]) return cli_usage_err("stream", "--endpoint is empty");
    if (!strstr(endpoint, "://")) {
      if (asprintf(&url, "http://%s", endpoint) < 0) url = NULL;
    } else if (strncmp(endpoint, "http://", 7) && strncmp(endpoint, "https://", 8)) {
      return cli_usage_err("stream", "--endpoint must be an http:// or https:// URL");
    } else {
      url = strdup(endpoint);
    }
  } else {
    url = default_endpoint(c->cfg.api.listen);
  }
  if (!url) return cli_fail(TRB_ENOMEM, NULL);

  struct sigaction sa, old_int, old_term, old_pipe;
  memset(&sa, 0, sizeof sa);
  /* SA_RESTART so a write to stdout is not cut by Ctrl-C; nanosleep and
   * libcurl's poll return early all the same (they are never restarted),
   * and the progress callback then ends the transfer. */
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, &old_pipe);
  g_stop = 0;

  int rc;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fprintf(stderr, "tributary: cannot initialise libcurl\n");
    rc = CLI_FAIL;
  } else {
    rc = sclient_init(&t.sc, url, &c->cfg) ? CLI_FAIL : run_tail(&t);
    sclient_fini(&t.sc);
    curl_global_cleanup();
  }
  for (size_t i = 0; i < t.nsh; i++) {
    free(t.sh[i].id);
    free(t.sh[i].parent);
    free(t.sh[i].iter);
  }
  free(t.sh);
  free(t.arn);
  free(url);
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  sigaction(SIGPIPE, &old_pipe, NULL);
  return rc;
}

int cmd_stream(cli *c, int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (cli_is_help(argv[i])) {
      fputs(stream_help, stdout);
      return CLI_OK;
    }
  if (argc < 2) {
    fputs(stream_help, stderr);
    return CLI_USAGE;
  }
  if (!strcmp(argv[1], "tail")) return stream_tail(c, argc, argv);
  return cli_usage_err("stream", "unknown stream command '%s'", argv[1]);
}
