/*
 * test_streams.c -- the stream index (transform/streams.c) over a real
 * engine's WAL in a temporary directory: which tables have streams, the
 * mapping of partition keys to shards, sequence numbers inside shard
 * ranges, lineage across time-based rollovers (short periods: 200-300 ms),
 * skipped idle epochs, disable / re-enable / delete, the same index rebuilt
 * from the same WAL, read paging and limits, read-your-writes through
 * trb_streams_sync, unknown streams and shards, a failing tailer, and the
 * processor's batches (capture/tailer.c) handing each record its own
 * stream when one batch holds several.
 *
 * A model of every write (its LSN from trb_engine_write, 0 when nothing
 * changed) is checked against what a consumer reading parents before
 * children sees. Random workloads print their seed (TRB_TEST_SEED replays).
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture/tailer.h"
#include "capture/wal.h"
#include "engine/engine.h"
#include "engine/keyenc.h"
#include "engine/value.h"
#include "testutil.h"
#include "transform/stream_record.h"
#include "sinks/sink.h"
#include "transform/streams.h"
#include "util/clock.h"

#define NSK 3 /* sort keys per partition key in the model */
#define PAD 1500

typedef struct fx {
  char *dir;
  trb_engine *e;
  trb_streams *s;
  uint32_t shards;
  int64_t roll_us;
} fx;

/* ---------------------------------------------------------------- helpers */

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts)) {
  }
}

static trb_engine *open_engine(const char *dir) {
  trb_engine_opts o;
  trb_engine_opts_default(&o);
  o.data_dir = dir;
  o.segment_size = 1 << 20; /* small segments: shards' records span several */
  o.sync_mode = TRB_WAL_SYNC_INTERVAL;
  trb_engine *e = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_engine_open(&o, &e, &st);
  if (rc) fprintf(stderr, "open: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return e;
}

static trb_streams *start_streams(trb_wal *w, uint32_t shards, int64_t roll_us) {
  trb_streams_opts o;
  trb_streams_opts_default(&o);
  o.wal = w;
  o.shards = shards;
  o.rollover_us = roll_us;
  o.region = "eu-west-1";
  trb_streams *s = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_streams_start(&o, &s, &st);
  if (rc) fprintf(stderr, "streams: %s\n", trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return s;
}

static void fx_streams(fx *f, uint32_t shards, int64_t roll_us) {
  f->shards = shards;
  f->roll_us = roll_us;
  f->s = start_streams(trb_engine_wal(f->e), shards, roll_us);
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  f->dir = trb_test_mkdtemp("streams");
  f->e = open_engine(f->dir);
  (void)trb_test_seed();
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  trb_streams_stop(f->s); /* before the WAL goes away */
  trb_engine_close(f->e);
  trb_test_rmrf(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

/*
 * Waits, by polling, until the index has taken in everything the WAL holds.
 * Deliberately NOT trb_streams_sync: see test_sync_waits_for_the_tailer for
 * why sync cannot be relied on to wait.
 */
static void catch_up(trb_streams *s, trb_wal *w) {
  uint64_t want = trb_wal_last_lsn(w);
  for (int i = 0; i < 2000 && trb_streams_next_lsn(s) <= want; i++) {
    assert_int_equal(trb_streams_failed(s, NULL), TRB_OK);
    sleep_ms(5);
  }
  assert_true(trb_streams_next_lsn(s) > want);
}

static void fx_catch_up(fx *f) { catch_up(f->s, trb_engine_wal(f->e)); }

static trb_av *J(const char *json) {
  trb_av *v = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_item_from_json_text(json, strlen(json), &v, &st);
  if (rc) fprintf(stderr, "bad test JSON %s: %s\n", json, trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  return v;
}

/* Settings with a stream (view NULL: StreamSpecification absent, label kept
 * as the API keeps it after a disable). New reference. */
static json_t *stream_ext(const char *view, const char *label) {
  json_t *x = json_object();
  json_object_set_new(x, "BillingMode", json_string("PAY_PER_REQUEST"));
  if (view)
    json_object_set_new(x, "StreamSpecification",
                        json_pack("{s:b,s:s}", "StreamEnabled", 1, "StreamViewType", view));
  if (label) json_object_set_new(x, "StreamLabel", json_string(label));
  return x;
}

static void mk_table(trb_engine *e, const char *name, json_t *ext) {
  trb_keyschema ks;
  memset(&ks, 0, sizeof ks);
  strcpy(ks.pk_name, "pk");
  ks.pk_type = TRB_T_S;
  ks.has_sk = 1;
  strcpy(ks.sk_name, "sk");
  ks.sk_type = TRB_T_N;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_table_create(e, name, &ks, ext, NULL, &st);
  if (rc) fprintf(stderr, "create %s: %s\n", name, trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  json_decref(ext);
}

static void upd_table(trb_engine *e, const char *name, json_t *ext) {
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_table_update(e, name, ext, NULL, &st);
  if (rc) fprintf(stderr, "update %s: %s\n", name, trb_status_msg(&st));
  assert_int_equal(rc, TRB_OK);
  json_decref(ext);
}

static void del_table(trb_engine *e, const char *name) {
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_table_delete(e, name, NULL, &st), TRB_OK);
}

static void item_json(int item, int v, char *out, size_t cap) {
  int n = snprintf(out, cap, "{\"pk\":{\"S\":\"p%03d\"},\"sk\":{\"N\":\"%d\"},\"v\":{\"N\":\"%d\"}",
                   item / NSK, item % NSK, v);
  if (item % 2) {
    n += snprintf(out + n, cap - (size_t)n, ",\"pad\":{\"S\":\"");
    for (int i = 0; i < PAD; i++) out[n++] = (char)('a' + (item + i) % 26);
    n += snprintf(out + n, cap - (size_t)n, "\"}");
  }
  snprintf(out + n, cap - (size_t)n, "}");
}

/* One write through trb_engine_write; the LSN of its record (0: none). */
static uint64_t write1(trb_engine *e, trb_write_kind kind, const char *table, const char *json) {
  trb_av *v = J(json);
  trb_write w;
  memset(&w, 0, sizeof w);
  w.kind = kind;
  w.table = table;
  if (kind == TRB_W_PUT) w.item = v;
  else w.key = v;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_engine_write(e, &w, 1, 0, &st);
  if (rc || w.rc) fprintf(stderr, "write %s: %s / %s\n", json, trb_status_msg(&st), trb_status_msg(&w.st));
  assert_int_equal(rc, TRB_OK);
  assert_int_equal(w.rc, TRB_OK);
  uint64_t lsn = w.lsn;
  trb_write_fini(&w);
  trb_av_destroy(v);
  return lsn;
}

/* ------------------------------------------------------------------ model */

enum { K_INSERT = 1, K_MODIFY = 2, K_REMOVE = 3 };
static const char *const kname[] = {"", "INSERT", "MODIFY", "REMOVE"};

typedef struct chg {
  uint64_t lsn;
  int item;
  int kind;
  int v; /* new value of "v" (-1 for REMOVE) */
} chg;

typedef struct model {
  const char *table;
  int nitems;
  int *state; /* v of each item, -1 absent */
  chg *c;
  size_t n, cap;
} model;

static void m_init(model *m, const char *table, int nitems) {
  memset(m, 0, sizeof *m);
  m->table = table;
  m->nitems = nitems;
  m->state = malloc((size_t)nitems * sizeof *m->state);
  for (int i = 0; i < nitems; i++) m->state[i] = -1;
}

static void m_fini(model *m) {
  free(m->state);
  free(m->c);
}

static void m_push(model *m, chg c) {
  if (m->n == m->cap) {
    m->cap = m->cap ? m->cap * 2 : 64;
    m->c = realloc(m->c, m->cap * sizeof *m->c);
  }
  if (m->n) assert_true(c.lsn > m->c[m->n - 1].lsn);
  m->c[m->n++] = c;
}

static void m_put(model *m, trb_engine *e, int item, int v) {
  char js[2 * PAD];
  item_json(item, v, js, sizeof js);
  uint64_t lsn = write1(e, TRB_W_PUT, m->table, js);
  int old = m->state[item];
  if (old == v) {
    assert_int_equal(lsn, 0); /* identical item: no record */
    return;
  }
  assert_true(lsn > 0);
  m_push(m, (chg){lsn, item, old < 0 ? K_INSERT : K_MODIFY, v});
  m->state[item] = v;
}

static void m_del(model *m, trb_engine *e, int item) {
  char js[128];
  snprintf(js, sizeof js, "{\"pk\":{\"S\":\"p%03d\"},\"sk\":{\"N\":\"%d\"}}", item / NSK, item % NSK);
  uint64_t lsn = write1(e, TRB_W_DELETE, m->table, js);
  if (m->state[item] < 0) {
    assert_int_equal(lsn, 0); /* missing item: no record */
    return;
  }
  assert_true(lsn > 0);
  m_push(m, (chg){lsn, item, K_REMOVE, -1});
  m->state[item] = -1;
}

static const chg *m_find(const chg *c, size_t n, uint64_t lsn) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (c[mid].lsn < lsn) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && c[lo].lsn == lsn ? &c[lo] : NULL;
}

/* ------------------------------------------------------- record accessors */

static uint64_t rec_lsn(const json_t *r) {
  const char *sq =
      json_string_value(json_object_get(json_object_get(r, "dynamodb"), "SequenceNumber"));
  assert_non_null(sq);
  uint64_t l = 0;
  assert_int_equal(trb_seqno_parse(sq, &l, NULL), TRB_OK);
  return l;
}

static const char *rec_pk(const json_t *r) {
  const json_t *k = json_object_get(json_object_get(r, "dynamodb"), "Keys");
  const char *pk = json_string_value(json_object_get(json_object_get(k, "pk"), "S"));
  assert_non_null(pk);
  return pk;
}

static int rec_item(const json_t *r) {
  const json_t *k = json_object_get(json_object_get(r, "dynamodb"), "Keys");
  const char *sk = json_string_value(json_object_get(json_object_get(k, "sk"), "N"));
  assert_non_null(sk);
  return atoi(rec_pk(r) + 1) * NSK + atoi(sk);
}

/* The shard index (of nshards equal hash ranges) a partition key belongs to. */
static uint32_t pk_range(const char *pk, uint32_t nshards) {
  trb_av *v = trb_av_new_s(pk, strlen(pk));
  uint32_t h = trb_key_hash(v);
  trb_av_destroy(v);
  return (uint32_t)(((uint64_t)h * nshards) >> 32);
}

static long long id_ms(const char *id) {
  assert_int_equal(strncmp(id, "shardId-", 8), 0);
  assert_int_equal(strlen(id), 8 + 20 + 1 + 8);
  return strtoll(id + 8, NULL, 10);
}

/*
 * Reads a whole shard from its start, limit/max_bytes per call, following
 * next_lsn, with the paging contract checked on every page. New reference.
 */
static json_t *read_shard(trb_streams *s, const char *table, const char *label,
                          const trb_shard_info *si, size_t limit, size_t max_bytes) {
  json_t *all = json_array();
  uint64_t from = si->start_lsn;
  for (int guard = 0;; guard++) {
    assert_true(guard < 100000);
    trb_streams_page pg;
    trb_status st;
    trb_status_init(&st);
    trb_err rc = trb_streams_read(s, table, label, si->id, from, limit, max_bytes, &pg, &st);
    if (rc) fprintf(stderr, "read %s: %s\n", si->id, trb_status_msg(&st));
    assert_int_equal(rc, TRB_OK);
    assert_non_null(pg.records);
    size_t k = json_array_size(pg.records);
    if (limit) assert_true(k <= limit);
    {
      /* the text form (GetRecords' answer) is the same page, the same bytes */
      trb_streams_page tp;
      trb_buf text;
      trb_buf_init(&text, 0);
      trb_buf_append(&text, "x", 1);
      assert_int_equal(trb_streams_read_text(s, table, label, si->id, from, limit, max_bytes,
                                             &text, &tp, NULL), TRB_OK);
      assert_null(tp.records);
      assert_int_equal(tp.count, k);
      assert_int_equal(tp.next_lsn, pg.next_lsn);
      assert_int_equal(tp.exhausted, pg.exhausted);
      char *want = json_dumps(pg.records, JSON_COMPACT | JSON_PRESERVE_ORDER);
      assert_int_equal(text.len - 1, strlen(want));
      assert_memory_equal(text.p + 1, want, text.len - 1);
      free(want);
      trb_buf_fini(&text);
    }
    assert_true(pg.next_lsn >= from); /* never backwards */
    uint64_t prev = 0;
    for (size_t j = 0; j < k; j++) {
      json_t *r = json_array_get(pg.records, j);
      uint64_t l = rec_lsn(r);
      assert_true(l >= from);
      assert_true(l > prev);
      assert_true(l < pg.next_lsn); /* the next read does not repeat it */
      prev = l;
      json_array_append(all, r);
    }
    int ex = pg.exhausted;
    json_decref(pg.records);
    if (!si->closed) assert_false(ex); /* an open shard is never exhausted */
    if (ex) break;
    if (!k) {
      /* nothing left: a closed shard must say so */
      assert_false(si->closed);
      break;
    }
    from = pg.next_lsn;
  }
  return all;
}

/*
 * Everything about one stream that must hold, against the model's changes
 * c[0..n) (the changes made while the stream was enabled):
 *  - shards come in whole epochs of nshards, ids ascending (strcmp), each
 *    epoch's ids carrying its nominal start (created + k * rollover);
 *  - shard i of epoch e > 0 names shard i of epoch e-1 as parent; the first
 *    epoch has none; every epoch but the last is closed, and all are when
 *    the stream is disabled; a child starts after its parent ends;
 *  - every record lies in its shard's [start_lsn, end_lsn], in increasing
 *    LSN order, in the shard of its partition key's hash range, inside its
 *    epoch's LSN range; the shard's record count is what a read returns;
 *  - a consumer reading epoch by epoch (parents before children) sees
 *    every change exactly once and each item's changes in order, with the
 *    right event names and images for the view type.
 * Returns the number of epochs.
 */
static size_t check_stream(trb_streams *s, const char *table, const char *label,
                           uint32_t nshards, int64_t roll_us, const chg *c, size_t n,
                           size_t limit, size_t max_bytes) {
  trb_stream_info info;
  trb_shard_info *sh = NULL;
  size_t nsh = 0;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_streams_describe(s, table, label, &info, &sh, &nsh, &st), TRB_OK);
  assert_string_equal(info.table, table);
  assert_string_equal(info.label, label);
  assert_true(nsh > 0);
  assert_int_equal(nsh % nshards, 0);
  size_t nep = nsh / nshards;
  long long prev_k = -1;
  for (size_t e = 0; e < nep; e++) {
    trb_shard_info *ep = &sh[e * nshards];
    /* the epoch's nominal start: created_us + k * rollover, k increasing */
    long long ms = id_ms(ep[0].id);
    long long d = ms * 1000 - info.created_us;
    long long k = d <= 0 ? 0 : (d + roll_us - 1) / roll_us;
    assert_true(k * roll_us < d + 1000);
    assert_true(k > prev_k);
    if (e == 0) assert_int_equal(k, 0);
    prev_k = k;
    for (uint32_t i = 0; i < nshards; i++) {
      trb_shard_info *x = &ep[i];
      size_t at = e * nshards + i;
      if (at) assert_true(strcmp(sh[at - 1].id, x->id) < 0);
      assert_int_equal(id_ms(x->id), ms);
      if (e == 0) {
        assert_string_equal(x->parent, "");
      } else {
        const trb_shard_info *p = &sh[(e - 1) * nshards + i];
        assert_string_equal(x->parent, p->id);
        assert_true(p->closed);
        assert_true(x->start_lsn > p->end_lsn);
      }
      if (e + 1 < nep || !info.enabled) {
        assert_int_equal(x->closed, 1);
        assert_true(x->end_lsn >= x->start_lsn);
      } else {
        assert_int_equal(x->closed, 0);
      }
      assert_int_equal(x->start_lsn, ep[0].start_lsn);
      /* the shard as trb_streams_shard sees it */
      trb_shard_info one;
      assert_int_equal(trb_streams_shard(s, table, label, x->id, &one, &st), TRB_OK);
      assert_string_equal(one.id, x->id);
      assert_string_equal(one.parent, x->parent);
      assert_int_equal(one.start_lsn, x->start_lsn);
      assert_int_equal(one.end_lsn, x->end_lsn);
      assert_int_equal(one.closed, x->closed);
      assert_int_equal(one.records, x->records);
    }
  }
  /* the consumer */
  int nitems = 0;
  for (size_t j = 0; j < n; j++)
    if (c[j].item + 1 > nitems) nitems = c[j].item + 1;
  size_t *next = calloc((size_t)nitems + 1, sizeof *next);
  size_t seen = 0;
  for (size_t e = 0; e < nep; e++) {
    uint64_t ep_lo = sh[e * nshards].start_lsn;
    uint64_t ep_hi = e + 1 < nep ? sh[(e + 1) * nshards].start_lsn : UINT64_MAX;
    for (uint32_t i = 0; i < nshards; i++) {
      trb_shard_info *x = &sh[e * nshards + i];
      json_t *recs = read_shard(s, table, label, x, limit, max_bytes);
      assert_int_equal(json_array_size(recs), x->records);
      for (size_t j = 0; j < json_array_size(recs); j++) {
        json_t *r = json_array_get(recs, j);
        uint64_t l = rec_lsn(r);
        assert_true(l >= x->start_lsn);
        if (x->closed) assert_true(l <= x->end_lsn);
        assert_true(l >= ep_lo && l < ep_hi);
        assert_int_equal(pk_range(rec_pk(r), nshards), i);
        const chg *m = m_find(c, n, l);
        if (!m) fprintf(stderr, "record at LSN %llu is not a change of this stream\n",
                        (unsigned long long)l);
        assert_non_null(m);
        int it = rec_item(r);
        assert_int_equal(it, m->item);
        /* each item's changes in order, each once */
        size_t want = next[it];
        size_t cnt = 0;
        const chg *exp = NULL;
        for (size_t q = 0; q < n; q++)
          if (c[q].item == it && cnt++ == want) {
            exp = &c[q];
            break;
          }
        assert_non_null(exp);
        assert_int_equal(exp->lsn, l);
        next[it]++;
        seen++;
        assert_string_equal(json_string_value(json_object_get(r, "eventName")), kname[m->kind]);
        assert_string_equal(json_string_value(json_object_get(r, "awsRegion")), "eu-west-1");
        const json_t *dd = json_object_get(r, "dynamodb");
        assert_string_equal(json_string_value(json_object_get(dd, "StreamViewType")),
                            trb_view_name(info.view));
        const json_t *ni = json_object_get(dd, "NewImage");
        const json_t *oi = json_object_get(dd, "OldImage");
        int want_new = m->kind != K_REMOVE &&
                       (info.view == TRB_VIEW_NEW_IMAGE || info.view == TRB_VIEW_NEW_AND_OLD_IMAGES);
        int want_old = m->kind != K_INSERT &&
                       (info.view == TRB_VIEW_OLD_IMAGE || info.view == TRB_VIEW_NEW_AND_OLD_IMAGES);
        assert_int_equal(ni != NULL, want_new);
        assert_int_equal(oi != NULL, want_old);
        if (ni) {
          const char *v = json_string_value(json_object_get(json_object_get(ni, "v"), "N"));
          assert_non_null(v);
          assert_int_equal(atoi(v), m->v);
        }
      }
      json_decref(recs);
    }
  }
  assert_int_equal(seen, n);
  for (size_t j = 0; j < n; j++) {
    size_t cnt = 0;
    for (size_t q = 0; q < n; q++) cnt += c[q].item == c[j].item;
    assert_int_equal(next[c[j].item], cnt);
  }
  free(next);
  free(sh);
  return nep;
}

static size_t list_n(trb_streams *s, const char *table, trb_stream_info **out) {
  trb_stream_info *v = NULL;
  size_t n = 99;
  assert_int_equal(trb_streams_list(s, table, &v, &n, NULL), TRB_OK);
  assert_non_null(v);
  if (out) *out = v;
  else free(v);
  return n;
}

/* ------------------------------------------------------------------ tests */

/* Which tables have streams; list by table and for all. */
static void test_which_tables_have_streams(void **state) {
  fx *f = *state;
  fx_streams(f, 4, 3600ll * 1000000);
  mk_table(f->e, "plain", NULL);
  mk_table(f->e, "nolabel", json_pack("{s:{s:b,s:s}}", "StreamSpecification", "StreamEnabled", 1,
                                      "StreamViewType", "NEW_IMAGE"));
  mk_table(f->e, "off", json_pack("{s:{s:b},s:s}", "StreamSpecification", "StreamEnabled", 0,
                                  "StreamLabel", "2024-01-01T00:00:00.000"));
  mk_table(f->e, "tb1", stream_ext("NEW_AND_OLD_IMAGES", "2024-01-01T00:00:00.001"));
  model mp, m1;
  m_init(&mp, "plain", 10);
  m_init(&m1, "tb1", 10);
  for (int i = 0; i < 5; i++) m_put(&mp, f->e, i, 1);
  for (int i = 0; i < 5; i++) m_put(&m1, f->e, i, 1);
  fx_catch_up(f);

  trb_stream_info *v = NULL;
  assert_int_equal(list_n(f->s, "plain", NULL), 0);
  assert_int_equal(list_n(f->s, "nolabel", NULL), 0);
  assert_int_equal(list_n(f->s, "off", NULL), 0);
  assert_int_equal(list_n(f->s, "missing", NULL), 0);
  assert_int_equal(list_n(f->s, "tb1", &v), 1);
  assert_string_equal(v[0].table, "tb1");
  assert_string_equal(v[0].label, "2024-01-01T00:00:00.001");
  assert_int_equal(v[0].view, TRB_VIEW_NEW_AND_OLD_IMAGES);
  assert_int_equal(v[0].enabled, 1);
  assert_string_equal(v[0].ks.pk_name, "pk");
  assert_string_equal(v[0].ks.sk_name, "sk");
  assert_int_equal(v[0].ks.has_sk, 1);
  assert_true(v[0].created_us > 0 && v[0].created_us <= trb_now_us());
  free(v);
  trb_stream_info info;
  trb_shard_info *sh = NULL;
  size_t n = 0;
  assert_int_equal(trb_streams_describe(f->s, "plain", "2024-01-01T00:00:00.001", &info, &sh, &n,
                                        NULL),
                   TRB_ENOTFOUND);
  assert_null(sh);
  check_stream(f->s, "tb1", "2024-01-01T00:00:00.001", 4, f->roll_us, m1.c, m1.n, 0, 1 << 20);

  /* Enabling by an update: the stream holds only the later changes. */
  upd_table(f->e, "plain", stream_ext("KEYS_ONLY", "2024-01-02T00:00:00.000"));
  mp.n = 0;
  for (int i = 3; i < 8; i++) m_put(&mp, f->e, i, 2);
  /* Another setting changing, the stream kept: still one stream. */
  json_t *x = stream_ext("NEW_AND_OLD_IMAGES", "2024-01-01T00:00:00.001");
  json_object_set_new(x, "Tags", json_pack("[{s:s,s:s}]", "Key", "k", "Value", "v"));
  upd_table(f->e, "tb1", x);
  m_put(&m1, f->e, 7, 3);
  fx_catch_up(f);
  assert_int_equal(list_n(f->s, "plain", &v), 1);
  assert_int_equal(v[0].view, TRB_VIEW_KEYS_ONLY);
  assert_int_equal(v[0].enabled, 1);
  free(v);
  assert_int_equal(list_n(f->s, "tb1", NULL), 1);
  check_stream(f->s, "plain", "2024-01-02T00:00:00.000", 4, f->roll_us, mp.c, mp.n, 0, 1 << 20);
  check_stream(f->s, "tb1", "2024-01-01T00:00:00.001", 4, f->roll_us, m1.c, m1.n, 0, 1 << 20);

  /* For all tables: by table name, then creation. */
  mk_table(f->e, "aa0", stream_ext("OLD_IMAGE", "2024-01-03T00:00:00.000"));
  fx_catch_up(f);
  assert_int_equal(list_n(f->s, NULL, &v), 3);
  assert_string_equal(v[0].table, "aa0");
  assert_string_equal(v[1].table, "plain");
  assert_string_equal(v[2].table, "tb1");
  assert_int_equal(v[0].view, TRB_VIEW_OLD_IMAGE);
  free(v);
  m_fini(&mp);
  m_fini(&m1);
}

/*
 * One epoch (a long period), a random workload over many keys with
 * identical puts and deletes of missing items: every record of a partition
 * key in the shard of its hash range, every change in exactly one shard,
 * no record for a write that changes nothing. The items are padded so the
 * records span several 1 MiB WAL segments.
 */
static void test_shard_mapping(void **state) {
  fx *f = *state;
  fx_streams(f, 4, 3600ll * 1000000);
  mk_table(f->e, "tmap", stream_ext("NEW_AND_OLD_IMAGES", "2024-02-01T00:00:00.000"));
  uint64_t rs = trb_test_seed() ^ 0x5151;
  int nitems = 60 * NSK;
  model m;
  m_init(&m, "tmap", nitems);
  size_t noops = 0;
  for (int step = 0; step < 2000; step++) {
    int it = (int)(trb_test_rand(&rs) % (uint64_t)nitems);
    size_t before = m.n;
    if (trb_test_rand(&rs) % 4 == 0) m_del(&m, f->e, it);
    else m_put(&m, f->e, it, (int)(trb_test_rand(&rs) % 3));
    noops += m.n == before;
  }
  /* explicit no-ops */
  int present = -1, absent = -1;
  for (int i = 0; i < nitems; i++) {
    if (m.state[i] >= 0 && present < 0) present = i;
    if (m.state[i] < 0 && absent < 0) absent = i;
  }
  assert_true(present >= 0 && absent >= 0);
  size_t before = m.n;
  m_put(&m, f->e, present, m.state[present]);
  m_del(&m, f->e, absent);
  assert_int_equal(m.n, before);
  assert_true(noops > 0);
  fx_catch_up(f);
  trb_wal_stats ws;
  trb_wal_get_stats(trb_engine_wal(f->e), &ws);
  if (ws.segments < 2) fprintf(stderr, "segments %llu bytes %llu records %llu\n", (unsigned long long)ws.segments, (unsigned long long)ws.bytes, (unsigned long long)ws.records);
  assert_true(ws.segments >= 2);

  size_t nep = check_stream(f->s, "tmap", "2024-02-01T00:00:00.000", 4, f->roll_us, m.c, m.n, 7,
                            1 << 20);
  assert_int_equal(nep, 1);
  /* Counting over the shards gives the number of changes, and every shard
   * has records (60 keys over 4 ranges). */
  trb_stream_info info;
  trb_shard_info *sh;
  size_t n;
  assert_int_equal(trb_streams_describe(f->s, "tmap", "2024-02-01T00:00:00.000", &info, &sh, &n, NULL),
                   TRB_OK);
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    total += sh[i].records;
    assert_true(sh[i].records > 0);
  }
  assert_int_equal(total, m.n);
  free(sh);
  m_fini(&m);
}

/*
 * Writes spanning several rollover periods (250 ms; the phases are 320 ms
 * apart, so each starts a new epoch): old epochs closed, children's parents
 * are the same hash range of the previous epoch, ids ascend, and a consumer
 * reading parents first with small pages sees each item's changes in order.
 */
static void test_lineage_across_rollover(void **state) {
  fx *f = *state;
  fx_streams(f, 3, 250000);
  mk_table(f->e, "tlin", stream_ext("NEW_IMAGE", "2024-03-01T00:00:00.000"));
  int nitems = 20 * NSK;
  model m;
  m_init(&m, "tlin", nitems);
  for (int phase = 0; phase < 5; phase++) {
    if (phase) sleep_ms(320);
    for (int i = 0; i < nitems; i++) {
      if (phase == 2 && i % 5 == 0) m_del(&m, f->e, i);
      else m_put(&m, f->e, i, phase);
    }
  }
  fx_catch_up(f);
  size_t nep = check_stream(f->s, "tlin", "2024-03-01T00:00:00.000", 3, f->roll_us, m.c, m.n, 2,
                            1 << 20);
  assert_true(nep >= 5);
  /* A record in every epoch's every shard? At least each epoch has records. */
  trb_stream_info info;
  trb_shard_info *sh;
  size_t n;
  assert_int_equal(trb_streams_describe(f->s, "tlin", "2024-03-01T00:00:00.000", &info, &sh, &n, NULL),
                   TRB_OK);
  for (size_t e = 0; e < n / 3; e++)
    assert_true(sh[3 * e].records + sh[3 * e + 1].records + sh[3 * e + 2].records > 0);
  free(sh);
  /* The same with one record per page and with a tiny byte budget. */
  check_stream(f->s, "tlin", "2024-03-01T00:00:00.000", 3, f->roll_us, m.c, m.n, 1, 1 << 20);
  check_stream(f->s, "tlin", "2024-03-01T00:00:00.000", 3, f->roll_us, m.c, m.n, 0, 1);
  m_fini(&m);
}

/* A long idle period, then a write: one new epoch, not one per period, and
 * its shards' parents are the last epoch's shards. */
static void test_idle_epochs_skipped(void **state) {
  fx *f = *state;
  fx_streams(f, 2, 200000);
  mk_table(f->e, "tidle", stream_ext("KEYS_ONLY", "2024-04-01T00:00:00.000"));
  model m;
  m_init(&m, "tidle", 8 * NSK);
  for (int i = 0; i < 8; i++) m_put(&m, f->e, i * NSK, 0);
  fx_catch_up(f);
  trb_stream_info info;
  trb_shard_info *a, *b;
  size_t na, nb;
  assert_int_equal(trb_streams_describe(f->s, "tidle", "2024-04-01T00:00:00.000", &info, &a, &na, NULL),
                   TRB_OK);
  sleep_ms(1100); /* five and a half periods */
  m_put(&m, f->e, 1, 0);
  uint64_t lsn = m.c[m.n - 1].lsn;
  fx_catch_up(f);
  assert_int_equal(trb_streams_describe(f->s, "tidle", "2024-04-01T00:00:00.000", &info, &b, &nb, NULL),
                   TRB_OK);
  assert_int_equal(nb, na + 2);
  for (size_t i = 0; i < na; i++) assert_string_equal(a[i].id, b[i].id);
  assert_true(id_ms(b[na].id) - id_ms(b[na - 2].id) >= 1000);
  for (uint32_t i = 0; i < 2; i++) {
    assert_string_equal(b[na + i].parent, b[na - 2 + i].id);
    assert_int_equal(b[na + i].start_lsn, lsn);
    assert_int_equal(b[na + i].closed, 0);
    assert_int_equal(b[na - 2 + i].closed, 1);
  }
  free(a);
  free(b);
  check_stream(f->s, "tidle", "2024-04-01T00:00:00.000", 2, f->roll_us, m.c, m.n, 3, 1 << 20);
  m_fini(&m);
}

/* Disabling closes every shard; writes then go nowhere; re-enabling with a
 * new label gives a second stream; deleting the table closes it; a table
 * re-created under the same name gets a third. Old streams stay readable. */
static void test_disable_reenable_delete(void **state) {
  fx *f = *state;
  fx_streams(f, 4, 250000);
  const char *LA = "2024-05-01T00:00:00.000", *LB = "2024-05-01T00:00:01.000",
             *LC = "2024-05-01T00:00:02.000";
  mk_table(f->e, "tdis", stream_ext("NEW_IMAGE", LA));
  model m;
  m_init(&m, "tdis", 30 * NSK);
  for (int i = 0; i < 30; i++) m_put(&m, f->e, i, 0);
  sleep_ms(300);
  for (int i = 0; i < 30; i += 2) m_put(&m, f->e, i, 1);
  chg *ca = malloc(m.n * sizeof *ca);
  memcpy(ca, m.c, m.n * sizeof *ca);
  size_t nca = m.n;

  upd_table(f->e, "tdis", stream_ext(NULL, LA)); /* off; the label kept, as the API does */
  fx_catch_up(f);
  trb_stream_info *v;
  assert_int_equal(list_n(f->s, "tdis", &v), 1);
  assert_int_equal(v[0].enabled, 0);
  free(v);
  check_stream(f->s, "tdis", LA, 4, f->roll_us, ca, nca, 4, 1 << 20);

  /* Writes while off are in no stream (and do not change the old one). */
  m.n = 0;
  for (int i = 0; i < 10; i++) m_put(&m, f->e, i, 2);
  m_del(&m, f->e, 11);
  fx_catch_up(f);
  assert_int_equal(list_n(f->s, NULL, NULL), 1);
  check_stream(f->s, "tdis", LA, 4, f->roll_us, ca, nca, 4, 1 << 20);

  upd_table(f->e, "tdis", stream_ext("NEW_AND_OLD_IMAGES", LB));
  m.n = 0;
  for (int i = 0; i < 12; i++) m_put(&m, f->e, i, 3);
  for (int i = 12; i < 15; i++) m_del(&m, f->e, i);
  fx_catch_up(f);
  assert_int_equal(list_n(f->s, "tdis", &v), 2);
  assert_string_equal(v[0].label, LA);
  assert_int_equal(v[0].enabled, 0);
  assert_string_equal(v[1].label, LB);
  assert_int_equal(v[1].enabled, 1);
  assert_int_equal(v[1].view, TRB_VIEW_NEW_AND_OLD_IMAGES);
  assert_true(v[1].created_us >= v[0].created_us);
  free(v);
  check_stream(f->s, "tdis", LA, 4, f->roll_us, ca, nca, 0, 1 << 20);
  check_stream(f->s, "tdis", LB, 4, f->roll_us, m.c, m.n, 5, 1 << 20);

  del_table(f->e, "tdis");
  fx_catch_up(f);
  assert_int_equal(list_n(f->s, "tdis", &v), 2);
  assert_int_equal(v[0].enabled, 0);
  assert_int_equal(v[1].enabled, 0);
  free(v);
  check_stream(f->s, "tdis", LB, 4, f->roll_us, m.c, m.n, 5, 1 << 20);

  /* Same name, new table, new stream: old ones untouched. */
  mk_table(f->e, "tdis", stream_ext("KEYS_ONLY", LC));
  model m2;
  m_init(&m2, "tdis", 10 * NSK);
  for (int i = 0; i < 10; i++) m_put(&m2, f->e, i, 9);
  fx_catch_up(f);
  assert_int_equal(list_n(f->s, "tdis", &v), 3);
  assert_string_equal(v[2].label, LC);
  assert_int_equal(v[2].enabled, 1);
  free(v);
  check_stream(f->s, "tdis", LA, 4, f->roll_us, ca, nca, 0, 1 << 20);
  check_stream(f->s, "tdis", LB, 4, f->roll_us, m.c, m.n, 0, 1 << 20);
  check_stream(f->s, "tdis", LC, 4, f->roll_us, m2.c, m2.n, 0, 1 << 20);
  free(ca);
  m_fini(&m);
  m_fini(&m2);
}

/* Everything the index shows, as one JSON text: streams, shards, records. */
static char *snapshot(trb_streams *s) {
  trb_stream_info *v;
  size_t n = list_n(s, NULL, &v);
  json_t *out = json_array();
  for (size_t i = 0; i < n; i++) {
    trb_stream_info info;
    trb_shard_info *sh;
    size_t nsh;
    assert_int_equal(trb_streams_describe(s, v[i].table, v[i].label, &info, &sh, &nsh, NULL),
                     TRB_OK);
    json_t *shards = json_array();
    for (size_t j = 0; j < nsh; j++) {
      json_t *recs = read_shard(s, v[i].table, v[i].label, &sh[j], 0, 1 << 20);
      json_array_append_new(
          shards, json_pack("{s:s,s:s,s:I,s:I,s:i,s:I,s:o}", "id", sh[j].id, "parent",
                            sh[j].parent, "start", (json_int_t)sh[j].start_lsn, "end",
                            (json_int_t)sh[j].end_lsn, "closed", sh[j].closed, "records",
                            (json_int_t)sh[j].records, "recs", recs));
    }
    json_array_append_new(
        out, json_pack("{s:s,s:s,s:i,s:i,s:I,s:o}", "table", info.table, "label", info.label,
                       "view", (int)info.view, "enabled", info.enabled, "created",
                       (json_int_t)info.created_us, "shards", shards));
    free(sh);
  }
  free(v);
  char *txt = json_dumps(out, JSON_SORT_KEYS | JSON_COMPACT);
  json_decref(out);
  return txt;
}

/* The same WAL gives the same index: a second trb_streams on the running
 * engine's WAL, and again after the engine is closed and reopened. */
static void test_rebuild_same_index(void **state) {
  fx *f = *state;
  fx_streams(f, 3, 200000);
  mk_table(f->e, "tr1", stream_ext("NEW_AND_OLD_IMAGES", "2024-06-01T00:00:00.000"));
  mk_table(f->e, "tr2", stream_ext("OLD_IMAGE", "2024-06-01T00:00:00.001"));
  mk_table(f->e, "tr3", NULL);
  model m1, m2, m3;
  m_init(&m1, "tr1", 15 * NSK);
  m_init(&m2, "tr2", 15 * NSK);
  m_init(&m3, "tr3", 15 * NSK);
  uint64_t rs = trb_test_seed() ^ 0x7777;
  for (int phase = 0; phase < 4; phase++) {
    if (phase) sleep_ms(230);
    for (int k = 0; k < 60; k++) {
      model *m = k % 3 == 0 ? &m1 : k % 3 == 1 ? &m2 : &m3;
      int it = (int)(trb_test_rand(&rs) % (uint64_t)m->nitems);
      if (trb_test_rand(&rs) % 5 == 0) m_del(m, f->e, it);
      else m_put(m, f->e, it, (int)(trb_test_rand(&rs) % 4));
    }
    if (phase == 1) upd_table(f->e, "tr2", stream_ext(NULL, "2024-06-01T00:00:00.001"));
    if (phase == 2) upd_table(f->e, "tr2", stream_ext("KEYS_ONLY", "2024-06-02T00:00:00.000"));
  }
  del_table(f->e, "tr3");
  fx_catch_up(f);
  check_stream(f->s, "tr1", "2024-06-01T00:00:00.000", 3, f->roll_us, m1.c, m1.n, 4, 1 << 20);
  char *a = snapshot(f->s);

  trb_streams *s2 = start_streams(trb_engine_wal(f->e), 3, 200000);
  catch_up(s2, trb_engine_wal(f->e));
  char *b = snapshot(s2);
  trb_streams_stop(s2);
  assert_string_equal(a, b);
  free(b);

  trb_streams_stop(f->s);
  f->s = NULL;
  trb_engine_close(f->e);
  f->e = open_engine(f->dir);
  fx_streams(f, 3, 200000);
  fx_catch_up(f);
  char *c = snapshot(f->s);
  assert_string_equal(a, c);
  free(c);
  free(a);
  check_stream(f->s, "tr1", "2024-06-01T00:00:00.000", 3, f->roll_us, m1.c, m1.n, 4, 1 << 20);
  m_fini(&m1);
  m_fini(&m2);
  m_fini(&m3);
}

/* trb_streams_read limits: limit 1 pages one record at a time; a byte budget
 * smaller than one record still returns one; past the end of an open shard
 * nothing, next_lsn not moving back; past the end of a closed shard nothing
 * and exhausted. */
static void test_read_limits(void **state) {
  fx *f = *state;
  fx_streams(f, 1, 3600ll * 1000000);
  const char *L = "2024-07-01T00:00:00.000";
  mk_table(f->e, "tq1", stream_ext("NEW_AND_OLD_IMAGES", L));
  model m;
  m_init(&m, "tq1", 10 * NSK);
  for (int i = 0; i < 10 * NSK; i++) m_put(&m, f->e, i, 1);
  fx_catch_up(f);
  trb_stream_info info;
  trb_shard_info *sh;
  size_t n;
  assert_int_equal(trb_streams_describe(f->s, "tq1", L, &info, &sh, &n, NULL), TRB_OK);
  assert_int_equal(n, 1);
  assert_int_equal(sh[0].records, m.n);
  char id[64];
  snprintf(id, sizeof id, "%s", sh[0].id);
  uint64_t start = sh[0].start_lsn;
  free(sh);

  for (int mode = 0; mode < 2; mode++) {
    uint64_t from = start;
    for (size_t k = 0; k < m.n; k++) {
      trb_streams_page pg;
      assert_int_equal(trb_streams_read(f->s, "tq1", L, id, from, mode ? 0 : 1, mode ? 1 : 1 << 20,
                                        &pg, NULL),
                       TRB_OK);
      assert_int_equal(json_array_size(pg.records), 1);
      assert_int_equal(rec_lsn(json_array_get(pg.records, 0)), m.c[k].lsn);
      assert_int_equal(pg.next_lsn, m.c[k].lsn + 1);
      assert_int_equal(pg.exhausted, 0);
      json_decref(pg.records);
      from = pg.next_lsn;
    }
    /* at the end of the open shard: nothing, and not exhausted */
    trb_streams_page pg;
    assert_int_equal(trb_streams_read(f->s, "tq1", L, id, from, 1, 1 << 20, &pg, NULL), TRB_OK);
    assert_int_equal(json_array_size(pg.records), 0);
    assert_int_equal(pg.exhausted, 0);
    assert_true(pg.next_lsn >= from);
    json_decref(pg.records);
  }
  /* from the middle: AT a record's LSN includes it */
  trb_streams_page pg;
  assert_int_equal(trb_streams_read(f->s, "tq1", L, id, m.c[5].lsn, 2, 1 << 20, &pg, NULL), TRB_OK);
  assert_int_equal(json_array_size(pg.records), 2);
  assert_int_equal(rec_lsn(json_array_get(pg.records, 0)), m.c[5].lsn);
  json_decref(pg.records);
  /* from 0: from the beginning */
  assert_int_equal(trb_streams_read(f->s, "tq1", L, id, 0, 0, 1 << 20, &pg, NULL), TRB_OK);
  assert_int_equal(json_array_size(pg.records), m.n);
  json_decref(pg.records);
  /* far past the end of the open shard */
  uint64_t far = trb_streams_next_lsn(f->s) + 1000;
  assert_int_equal(trb_streams_read(f->s, "tq1", L, id, far, 10, 1 << 20, &pg, NULL), TRB_OK);
  assert_int_equal(json_array_size(pg.records), 0);
  assert_int_equal(pg.exhausted, 0);
  assert_true(pg.next_lsn >= far);
  json_decref(pg.records);
  /* just past the end: next_lsn moves up to what the tailer has seen */
  uint64_t last = m.c[m.n - 1].lsn;
  mk_table(f->e, "other", NULL); /* a record of another table */
  fx_catch_up(f);
  assert_int_equal(trb_streams_read(f->s, "tq1", L, id, last + 1, 10, 1 << 20, &pg, NULL), TRB_OK);
  assert_int_equal(json_array_size(pg.records), 0);
  assert_true(pg.next_lsn >= last + 1);
  assert_true(pg.next_lsn <= trb_streams_next_lsn(f->s));
  json_decref(pg.records);

  /* closed: past the end nothing and exhausted; reading the last record
   * says exhausted too */
  upd_table(f->e, "tq1", stream_ext(NULL, L));
  fx_catch_up(f);
  trb_shard_info one;
  assert_int_equal(trb_streams_shard(f->s, "tq1", L, id, &one, NULL), TRB_OK);
  assert_int_equal(one.closed, 1);
  assert_int_equal(one.end_lsn, last);
  assert_int_equal(trb_streams_read(f->s, "tq1", L, id, last + 1, 10, 1 << 20, &pg, NULL), TRB_OK);
  assert_int_equal(json_array_size(pg.records), 0);
  assert_int_equal(pg.exhausted, 1);
  json_decref(pg.records);
  assert_int_equal(trb_streams_read(f->s, "tq1", L, id, last + 1000, 10, 1 << 20, &pg, NULL), TRB_OK);
  assert_int_equal(json_array_size(pg.records), 0);
  assert_int_equal(pg.exhausted, 1);
  json_decref(pg.records);
  assert_int_equal(trb_streams_read(f->s, "tq1", L, id, last, 10, 1 << 20, &pg, NULL), TRB_OK);
  assert_int_equal(json_array_size(pg.records), 1);
  assert_int_equal(pg.exhausted, 1);
  assert_true(pg.next_lsn > last);
  json_decref(pg.records);
  assert_int_equal(trb_streams_read(f->s, "tq1", L, id, m.c[m.n - 2].lsn, 1, 1 << 20, &pg, NULL),
                   TRB_OK);
  assert_int_equal(json_array_size(pg.records), 1);
  assert_int_equal(pg.exhausted, 0); /* one more left */
  json_decref(pg.records);
  m_fini(&m);
}

/* trb_streams_sync: after a write returns, sync returns 0 and a read sees
 * the write (read-your-writes, as GetRecords relies on). */
static void test_sync_read_your_writes(void **state) {
  fx *f = *state;
  fx_streams(f, 2, 3600ll * 1000000);
  const char *L = "2024-08-01T00:00:00.000";
  mk_table(f->e, "ty1", stream_ext("NEW_IMAGE", L));
  assert_int_equal(trb_streams_sync(f->s, 5000), 0);
  model m;
  m_init(&m, "ty1", 30 * NSK);
  int misses = 0;
  for (int i = 0; i < 30; i++) {
    m_put(&m, f->e, i * NSK, 1);
    uint64_t lsn = m.c[m.n - 1].lsn;
    int r = trb_streams_sync(f->s, 5000);
    /* what a GetRecords would see right now */
    trb_stream_info info;
    trb_shard_info *sh;
    size_t n;
    assert_int_equal(trb_streams_describe(f->s, "ty1", L, &info, &sh, &n, NULL), TRB_OK);
    char pk[16];
    snprintf(pk, sizeof pk, "p%03d", i);
    uint32_t k = pk_range(pk, 2);
    trb_streams_page pg;
    assert_int_equal(trb_streams_read(f->s, "ty1", L, sh[k].id, lsn, 10, 1 << 20, &pg, NULL), TRB_OK);
    int seen = json_array_size(pg.records) == 1 && rec_lsn(json_array_get(pg.records, 0)) == lsn;
    json_decref(pg.records);
    free(sh);
    if (r != 0 || !seen || trb_streams_next_lsn(f->s) <= lsn) misses++;
  }
  m_fini(&m);
  if (misses) fprintf(stderr, "sync: %d of 30 writes not visible after trb_streams_sync\n", misses);
  assert_int_equal(misses, 0);
}

/* trb_streams_sync must wait for a tailer that is behind: a second index
 * started on a WAL with thousands of records has not read them when the
 * call begins; sync with a generous timeout must return 0, and then be
 * caught up. (Its deadline comes from trb_deadline_ms, CLOCK_MONOTONIC, so
 * the condition variable must be created on that clock.) */
static void test_sync_waits_for_the_tailer(void **state) {
  fx *f = *state;
  fx_streams(f, 2, 3600ll * 1000000);
  mk_table(f->e, "tw1", stream_ext("KEYS_ONLY", "2024-08-02T00:00:00.000"));
  model m;
  m_init(&m, "tw1", 400 * NSK);
  for (int i = 0; i < 400 * NSK; i++) m_put(&m, f->e, i, 0);
  for (int i = 0; i < 400 * NSK; i++) m_put(&m, f->e, i, 1);
  fx_catch_up(f);
  trb_wal *w = trb_engine_wal(f->e);
  trb_streams *s2 = start_streams(w, 2, 3600ll * 1000000);
  int64_t t0 = trb_mono_ns();
  int r = trb_streams_sync(s2, 10000);
  int64_t ms = (trb_mono_ns() - t0) / 1000000;
  uint64_t next = trb_streams_next_lsn(s2);
  if (r != 0 || next <= trb_wal_last_lsn(w))
    fprintf(stderr, "sync returned %d after %lld ms with the tailer at %llu of %llu\n", r,
            (long long)ms, (unsigned long long)next, (unsigned long long)trb_wal_last_lsn(w));
  trb_streams_stop(s2);
  m_fini(&m);
  assert_int_equal(r, 0);
  assert_true(next > trb_wal_last_lsn(w));
}

/* Unknown streams and shards: TRB_ENOTFOUND from describe, shard and read. */
static void test_not_found(void **state) {
  fx *f = *state;
  fx_streams(f, 2, 3600ll * 1000000);
  const char *L = "2024-09-01T00:00:00.000";
  mk_table(f->e, "tn1", stream_ext("NEW_IMAGE", L));
  mk_table(f->e, "tn2", stream_ext("NEW_IMAGE", "2024-09-01T00:00:00.001"));
  write1(f->e, TRB_W_PUT, "tn1", "{\"pk\":{\"S\":\"a\"},\"sk\":{\"N\":\"1\"}}");
  fx_catch_up(f);
  trb_stream_info info;
  trb_shard_info *sh, one;
  size_t n;
  assert_int_equal(trb_streams_describe(f->s, "tn1", L, &info, &sh, &n, NULL), TRB_OK);
  char id[64];
  snprintf(id, sizeof id, "%s", sh[0].id);
  free(sh);
  trb_streams_page pg;
  trb_status st;
  trb_status_init(&st);
  assert_int_equal(trb_streams_describe(f->s, "tn1", "2000-01-01T00:00:00.000", &info, &sh, &n, &st),
                   TRB_ENOTFOUND);
  assert_int_equal(trb_streams_describe(f->s, "nope", L, &info, &sh, &n, &st), TRB_ENOTFOUND);
  assert_int_equal(trb_streams_shard(f->s, "tn1", L, "shardId-00000000000000000000-00000000", &one,
                                     &st),
                   TRB_ENOTFOUND);
  assert_int_equal(trb_streams_shard(f->s, "nope", L, id, &one, &st), TRB_ENOTFOUND);
  /* a real shard id of n1's stream under n2's stream */
  assert_int_equal(trb_streams_shard(f->s, "tn2", "2024-09-01T00:00:00.001", id, &one, &st),
                   TRB_ENOTFOUND);
  assert_int_equal(trb_streams_read(f->s, "tn1", L, "garbage", 0, 10, 1 << 20, &pg, &st),
                   TRB_ENOTFOUND);
  assert_null(pg.records);
  assert_int_equal(trb_streams_read(f->s, "tn1", "2000-01-01T00:00:00.000", id, 0, 10, 1 << 20, &pg,
                                    &st),
                   TRB_ENOTFOUND);
  assert_int_equal(trb_streams_read(f->s, "zzz", L, id, 0, 10, 1 << 20, &pg, &st), TRB_ENOTFOUND);
  assert_int_equal(trb_streams_read(f->s, "tn2", "2024-09-01T00:00:00.001", id, 0, 10, 1 << 20,
                                    &pg, &st),
                   TRB_ENOTFOUND);
  assert_int_equal(trb_streams_read(f->s, "tn1", L, id, 0, 10, 1 << 20, &pg, &st), TRB_OK);
  assert_int_equal(json_array_size(pg.records), 1);
  json_decref(pg.records);
}

/*
 * Many hash ranges (streams.shards and StreamShards allow up to 1024): shard
 * ids must stay unique and ascending in hash order, and reading a shard by
 * its id must give that shard's records. (The id's 8 hex digits hold the
 * range index shifted left by 24: ranges 256 and up wrap onto 0 and up.)
 */
static void test_many_shards_unique_ids(void **state) {
  fx *f = *state;
  fx_streams(f, 300, 3600ll * 1000000);
  const char *L = "2024-10-01T00:00:00.000";
  mk_table(f->e, "big", stream_ext("KEYS_ONLY", L));
  model m;
  m_init(&m, "big", 900 * NSK);
  for (int i = 0; i < 900; i++) m_put(&m, f->e, i * NSK, 0);
  fx_catch_up(f);
  trb_stream_info info;
  trb_shard_info *sh;
  size_t n;
  assert_int_equal(trb_streams_describe(f->s, "big", L, &info, &sh, &n, NULL), TRB_OK);
  assert_int_equal(n, 300);
  size_t dup = 0, unordered = 0, wrong = 0;
  for (size_t i = 1; i < n; i++) {
    if (strcmp(sh[i - 1].id, sh[i].id) >= 0) unordered++;
    for (size_t j = 0; j < i; j++)
      if (!strcmp(sh[i].id, sh[j].id)) dup++;
  }
  for (size_t i = 0; i < n; i++) {
    trb_streams_page pg;
    assert_int_equal(trb_streams_read(f->s, "big", L, sh[i].id, 0, 0, 1 << 20, &pg, NULL), TRB_OK);
    int bad = json_array_size(pg.records) != sh[i].records;
    for (size_t j = 0; j < json_array_size(pg.records); j++)
      if (pk_range(rec_pk(json_array_get(pg.records, j)), 300) != i) bad = 1;
    wrong += bad;
    json_decref(pg.records);
  }
  if (dup || unordered || wrong)
    fprintf(stderr,
            "300 shards: %zu duplicate ids (e.g. shard 0 %s, shard 256 %s), %zu out of order, "
            "%zu shards read back other records\n",
            dup, sh[0].id, sh[256].id, unordered, wrong);
  free(sh);
  m_fini(&m);
  assert_int_equal(dup, 0);
  assert_int_equal(unordered, 0);
  assert_int_equal(wrong, 0);
}

/* A WAL the index cannot take in (table records whose definitions do not
 * decode): the tailer stops and says why; sync does not hang, and does not
 * claim to be caught up when it is not. */
static void test_tailer_failure(void **state) {
  (void)state;
  char *dir = trb_test_mkdtemp("streams-wal");
  trb_wal_opts wo;
  memset(&wo, 0, sizeof wo);
  wo.dir = dir;
  trb_wal *w = NULL;
  assert_int_equal(trb_wal_open(&wo, &w, NULL), TRB_OK);
  static const unsigned char junk[] = {0xff, 0xfe, 0x01, 0x02};
  trb_wal_rec r[2];
  memset(r, 0, sizeof r);
  for (int i = 0; i < 2; i++) {
    r[i].kind = TRB_WAL_TABLE_CREATE;
    r[i].table = i ? "xx2" : "xx1";
    r[i].table_len = 3;
    r[i].table_id = (uint64_t)i + 1;
    r[i].new_img = junk;
    r[i].new_len = sizeof junk;
  }
  assert_int_equal(trb_wal_append(w, r, 2, NULL), TRB_OK);
  assert_int_equal(trb_wal_commit(w, NULL), TRB_OK);
  trb_wal_publish(w, trb_wal_last_lsn(w));
  trb_streams *s = start_streams(w, 2, 1000000);
  trb_status st;
  trb_status_init(&st);
  trb_err rc = TRB_OK;
  for (int i = 0; i < 400 && !(rc = trb_streams_failed(s, &st)); i++) sleep_ms(5);
  assert_int_not_equal(rc, TRB_OK);
  assert_true(strlen(trb_status_msg(&st)) > 0);
  int64_t t0 = trb_mono_ns();
  int sr = trb_streams_sync(s, 3000);
  int64_t ms = (trb_mono_ns() - t0) / 1000000;
  fprintf(stderr, "failed tailer (%s): sync returned %d after %lld ms, next_lsn %llu of %llu\n",
          trb_err_name(rc), sr, (long long)ms, (unsigned long long)trb_streams_next_lsn(s),
          (unsigned long long)trb_wal_last_lsn(w));
  assert_true(ms < 2000);
  assert_int_equal(list_n(s, NULL, NULL), 0);
  /* The second record was never taken in, so sync must not claim it was
   * ("0 when caught up"): a GetRecords would read a stale index believing
   * it has its own writes. */
  int caught_up = trb_streams_next_lsn(s) > trb_wal_last_lsn(w);
  trb_streams_stop(s);
  trb_wal_close(w);
  trb_test_rmrf(dir);
  free(dir);
  assert_false(caught_up);
  assert_int_not_equal(sr, 0);
}

/* ------------------------------------------------- the processor's batches */

/* A sink that notes, for every record, its WAL table, LSN, and the stream
 * and shard the processor handed with it. */
typedef struct seen_rec {
  char wal_table[256], table[256], label[32];
  trb_view view;
  uint64_t lsn;
  char shard[64];
} seen_rec;

typedef struct rec_sink {
  trb_sink base;
  pthread_mutex_t mu;
  seen_rec *r;
  size_t n, cap;
  size_t batches, max_batch;
  uint64_t ckpt;
} rec_sink;

static trb_err rs_open(trb_sink *s, uint64_t *c, trb_status *st) {
  (void)st;
  *c = ((rec_sink *)s)->ckpt;
  return TRB_OK;
}

static trb_err rs_deliver(trb_sink *s, const trb_sink_rec *r, size_t n, uint64_t through,
                          trb_status *st) {
  (void)st;
  rec_sink *k = (rec_sink *)s;
  pthread_mutex_lock(&k->mu);
  for (size_t i = 0; i < n; i++) {
    if (k->n == k->cap) {
      k->cap = k->cap ? k->cap * 2 : 256;
      k->r = realloc(k->r, k->cap * sizeof *k->r);
    }
    seen_rec *x = &k->r[k->n++];
    snprintf(x->wal_table, sizeof x->wal_table, "%.*s", (int)r[i].wal->table_len, r[i].wal->table);
    snprintf(x->table, sizeof x->table, "%s", r[i].stream->table);
    snprintf(x->label, sizeof x->label, "%s", r[i].stream->label);
    snprintf(x->shard, sizeof x->shard, "%s", r[i].shard_id);
    x->view = r[i].stream->view;
    x->lsn = r[i].wal->lsn;
  }
  if (n) k->batches++;
  if (n > k->max_batch) k->max_batch = n;
  k->ckpt = through;
  pthread_mutex_unlock(&k->mu);
  return TRB_OK;
}

static void rs_destroy(trb_sink *s) { (void)s; }

static const trb_sink_ops rs_ops = {
    .kind = "record", .open = rs_open, .deliver = rs_deliver, .destroy = rs_destroy};

/* Records of several streams in one batch each come with their own stream:
 * two tables written in turn, and one of them given a new stream (new label
 * and view) half way, all taken by the processor as one batch. */
static void test_processor_batches_mix_streams(void **state) {
  fx *f = *state;
  fx_streams(f, 2, 3600ll * 1000000);
  const char *LA = "2024-06-01T00:00:00.000", *LB = "2024-06-01T00:00:01.000",
             *LC = "2024-06-01T00:00:02.000";
  mk_table(f->e, "tba", stream_ext("NEW_IMAGE", LA));
  mk_table(f->e, "tbb", stream_ext("KEYS_ONLY", LB));
  char js[4096];
  uint64_t switch_lsn = 0;
  for (int i = 0; i < 60; i++) {
    if (i == 30) {
      /* the same table on both sides of the change of stream */
      item_json(1000, 1, js, sizeof js);
      write1(f->e, TRB_W_PUT, "tba", js);
      upd_table(f->e, "tba", stream_ext("NEW_AND_OLD_IMAGES", LC));
      switch_lsn = trb_wal_last_lsn(trb_engine_wal(f->e));
    }
    item_json(i, 1, js, sizeof js);
    write1(f->e, TRB_W_PUT, i % 2 ? "tbb" : "tba", js);
  }
  fx_catch_up(f);
  uint64_t last = trb_wal_last_lsn(trb_engine_wal(f->e));
  rec_sink *k = calloc(1, sizeof *k);
  k->base.ops = &rs_ops;
  pthread_mutex_init(&k->mu, NULL);
  trb_tailer *t = NULL;
  trb_tailer_opts to = {.wal = trb_engine_wal(f->e), .streams = f->s, .heartbeat_ms = 50,
                        .max_batch = 1000};
  assert_int_equal(trb_tailer_start(&to, &k->base, &t, NULL), TRB_OK);
  for (int i = 0; i < 400; i++) {
    pthread_mutex_lock(&k->mu);
    int done = k->ckpt >= last;
    pthread_mutex_unlock(&k->mu);
    if (done) break;
    sleep_ms(5);
  }
  trb_tailer_stop(t);
  assert_true(k->ckpt >= last);
  assert_int_equal(k->n, 61);
  assert_int_equal(k->batches, 1); /* all of it was there: one batch, both tables */
  size_t na = 0, nb = 0, nc = 0;
  for (size_t i = 0; i < k->n; i++) {
    seen_rec *x = &k->r[i];
    assert_string_equal(x->table, x->wal_table);
    if (!strcmp(x->wal_table, "tbb")) {
      assert_string_equal(x->label, LB);
      assert_int_equal(x->view, TRB_VIEW_KEYS_ONLY);
      nb++;
    } else if (x->lsn < switch_lsn) {
      assert_string_equal(x->label, LA);
      assert_int_equal(x->view, TRB_VIEW_NEW_IMAGE);
      na++;
    } else {
      assert_string_equal(x->label, LC);
      assert_int_equal(x->view, TRB_VIEW_NEW_AND_OLD_IMAGES);
      nc++;
    }
    assert_true(strlen(x->shard) > 0);
  }
  assert_int_equal(na, 16);
  assert_int_equal(nb, 30);
  assert_int_equal(nc, 15);
  free(k->r);
  pthread_mutex_destroy(&k->mu);
  free(k);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_which_tables_have_streams, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shard_mapping, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lineage_across_rollover, setup, teardown),
      cmocka_unit_test_setup_teardown(test_idle_epochs_skipped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_disable_reenable_delete, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rebuild_same_index, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sync_read_your_writes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sync_waits_for_the_tailer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_shards_unique_ids, setup, teardown),
      cmocka_unit_test(test_tailer_failure),
      cmocka_unit_test_setup_teardown(test_processor_batches_mix_streams, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
