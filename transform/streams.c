/*
 * streams.c -- the stream index: streams, epochs, shards and per-shard WAL
 * positions, kept by one tailer thread (see streams.h).
 *
 * Epochs. Epoch k of a stream covers the records whose commit time falls in
 * [start_us + k * rollover, start_us + (k+1) * rollover). Commit times never
 * decrease along the WAL, so an epoch is a contiguous LSN range. An epoch
 * comes into being with its first record of the stream's table; epochs that
 * no record fell into are skipped. The epoch before it
 * then closes: each of its shards ends at its last record (or, when it has
 * none, at its start), and the new epoch's shard i starts at that first
 * record's LSN with shard i of the closed epoch as its parent. Disabling the
 * stream or deleting the table closes the open epoch the same way.
 *
 * A stream's start (LSN and time) comes from its table's settings
 * (StreamStartLsn / StreamStartUs, which the commit thread records in the
 * enabling record, engine/commit.c), so a stream whose enabling record
 * retention has removed is seeded from the catalog at start and gets the
 * same epochs and shard ids as before. An epoch that retention has
 * emptied is forgotten; the oldest remaining epoch then has no parent.
 *
 * Memory: 24 bytes per record (its WAL position), until retention trims
 * them with the WAL (trb_streams_trim).
 */
#include "transform/streams.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tabledef.h"
#include "engine/value.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/thread.h"

typedef struct shard {
  char id[64];
  trb_wal_pos *pos;
  size_t n, cap;
  uint64_t trimmed_through; /* highest LSN of a record retention removed, 0 = none */
} shard;

typedef struct epoch {
  int64_t start_us;        /* the epoch's nominal start (for its shard ids) */
  uint64_t start_lsn;
  uint64_t end_lsn;        /* 0 while open: last LSN inside the epoch otherwise */
  uint32_t n;              /* its shards (hash ranges) */
  shard *sh;
} epoch;

typedef struct stream {
  trb_stream_info info;
  uint64_t table_id;
  uint64_t start_lsn;
  int64_t start_us;
  uint32_t nshards;        /* for the next epoch (StreamShards) */
  uint32_t id_bits;        /* low 24 bits of every shard id: from table id and label */
  epoch *ep;
  size_t nep, capep;
  int64_t next_boundary;   /* commit time at which the open epoch ends */
} stream;

struct trb_streams {
  trb_streams_opts o;
  char region[64];
  pthread_mutex_t mu;
  pthread_cond_t cv;       /* progress of the tailer */
  pthread_cond_t lazy_cv;  /* wakes a lazy tailer: a waiter came, or stop */
  stream **st;
  size_t nst, capst;
  uint64_t done_lsn;       /* every record <= this is taken in */
  uint64_t trim_lsn;       /* the WAL starts here (0 = at the beginning) */
  int waiters;             /* threads in trb_streams_sync/wait (under mu) */
  int stopping;
  trb_err failed;
  trb_status fail_st;
  pthread_t thr;
  int started;
};

void trb_streams_opts_default(trb_streams_opts *o) {
  memset(o, 0, sizeof *o);
  o->shards = 4;
  o->rollover_us = 4ll * 3600 * 1000000;
  o->region = "us-east-1";
}

static void shard_id(const stream *s, int64_t epoch_start_us, uint32_t i, char out[64]) {
  long long ms = (long long)(epoch_start_us / 1000);
  if (ms < 0) ms = 0;
  /* 10 bits of shard index (streams have at most 1024 shards), 22 of the
   * stream's own bits */
  snprintf(out, 64, "shardId-%020lld-%08x", ms, (unsigned)((i << 22) | (s->id_bits & 0x3FFFFF)));
}

static uint32_t id_bits(uint64_t table_id, const char *label) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (int i = 0; i < 8; i++) h = (h ^ (uint8_t)(table_id >> (8 * i))) * 16777619u;
  for (const char *p = label; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
  return h & 0xFFFFFF;
}

static void stream_free(stream *s) {
  for (size_t e = 0; e < s->nep; e++) {
    for (uint32_t i = 0; i < s->ep[e].n; i++) free(s->ep[e].sh[i].pos);
    free(s->ep[e].sh);
  }
  free(s->ep);
  free(s);
}

/* Opens an epoch (nominal start start_us) at lsn, with its shard ids.
 * Caller holds mu. */
static int epoch_open(stream *s, int64_t start_us, uint64_t lsn) {
  if (s->nep == s->capep) {
    size_t nc = s->capep ? s->capep * 2 : 4;
    epoch *ne = realloc(s->ep, nc * sizeof *ne);
    if (!ne) return -1;
    s->ep = ne;
    s->capep = nc;
  }
  /* ids must ascend: an epoch started by a change of N may begin inside a
   * period, so it never takes a time at or before the previous epoch's */
  if (s->nep && start_us / 1000 <= s->ep[s->nep - 1].start_us / 1000)
    start_us = (s->ep[s->nep - 1].start_us / 1000 + 1) * 1000;
  epoch *e = &s->ep[s->nep];
  memset(e, 0, sizeof *e);
  e->start_us = start_us;
  e->n = s->nshards;
  e->sh = calloc(e->n, sizeof *e->sh);
  if (!e->sh) return -1;
  e->start_lsn = lsn;
  for (uint32_t i = 0; i < e->n; i++) shard_id(s, start_us, i, e->sh[i].id);
  s->nep++;
  return 0;
}

static void epoch_close(stream *s, uint64_t last_lsn) {
  if (s->nep && !s->ep[s->nep - 1].end_lsn) {
    epoch *e = &s->ep[s->nep - 1];
    e->end_lsn = last_lsn >= e->start_lsn ? last_lsn : e->start_lsn;
  }
}

static stream *current_stream(trb_streams *t, uint64_t table_id) {
  for (size_t i = t->nst; i > 0; i--) {
    stream *s = t->st[i - 1];
    if (s->table_id == table_id && s->info.enabled) return s;
  }
  return NULL;
}

static void end_stream(stream *s, uint64_t lsn) {
  epoch_close(s, lsn - 1);
  s->info.enabled = 0;
}

/* A new enabled stream of table d (the caller opens its first epoch, or a
 * record's commit time does). Caller holds mu. NULL on OOM (st set). */
static stream *new_stream(trb_streams *t, const trb_tabledef *d, uint64_t table_id,
                          uint64_t start_lsn, int64_t start_us, trb_status *st) {
  json_t *ss = json_object_get(d->ext, "StreamSpecification");
  const char *label = json_string_value(json_object_get(d->ext, "StreamLabel"));
  const char *vt = json_string_value(json_object_get(ss, "StreamViewType"));
  stream *s = calloc(1, sizeof *s);
  if (!s || t->nst == t->capst) {
    size_t nc = t->capst ? t->capst * 2 : 8;
    stream **ns = s ? realloc(t->st, nc * sizeof *ns) : NULL;
    if (!ns) {
      free(s);
      trb_status_set(st, TRB_ENOMEM, "out of memory");
      return NULL;
    }
    t->st = ns;
    t->capst = nc;
  }
  snprintf(s->info.table, sizeof s->info.table, "%s", d->name);
  snprintf(s->info.label, sizeof s->info.label, "%s", label ? label : "");
  if (!vt || trb_view_parse(vt, &s->info.view)) s->info.view = TRB_VIEW_NEW_AND_OLD_IMAGES;
  s->info.ks = d->ks;
  s->info.enabled = 1;
  s->info.created_us = start_us;
  s->table_id = table_id;
  s->start_lsn = start_lsn;
  s->start_us = start_us;
  s->id_bits = id_bits(table_id, s->info.label);
  json_t *n = json_object_get(d->ext, "StreamShards");
  s->nshards = n && json_integer_value(n) > 0 && json_integer_value(n) <= 1024
                   ? (uint32_t)json_integer_value(n)
                   : t->o.shards;
  s->next_boundary = s->start_us + t->o.rollover_us;
  t->st[t->nst++] = s;
  return s;
}

/* A table record: streams begin and end here. Caller holds mu. */
static trb_err on_table(trb_streams *t, const trb_wal_rec *r, trb_status *st) {
  stream *cur = current_stream(t, r->table_id);
  if (r->kind == TRB_WAL_TABLE_DELETE) {
    if (cur) end_stream(cur, r->lsn);
    return TRB_OK;
  }
  trb_tabledef d;
  trb_err rc = trb_tabledef_decode(r->new_img, r->new_len, &d, st);
  if (rc) return rc;
  json_t *ss = d.ext ? json_object_get(d.ext, "StreamSpecification") : NULL;
  const char *label = d.ext ? json_string_value(json_object_get(d.ext, "StreamLabel")) : NULL;
  const char *vt = ss ? json_string_value(json_object_get(ss, "StreamViewType")) : NULL;
  int on = ss && json_is_true(json_object_get(ss, "StreamEnabled")) && label && vt;
  if (cur && (!on || strcmp(cur->info.label, label))) {
    end_stream(cur, r->lsn);
    cur = NULL;
  }
  json_t *ns = d.ext ? json_object_get(d.ext, "StreamShards") : NULL;
  if (cur && json_is_integer(ns) && json_integer_value(ns) >= 1 && json_integer_value(ns) <= 1024 &&
      (uint32_t)json_integer_value(ns) != cur->nshards) {
    /* N changed: the open shards close here, children of the new N take
     * over (each names the old shard that held the start of its range). */
    cur->nshards = (uint32_t)json_integer_value(ns);
    if (cur->nep) {
      epoch_close(cur, r->lsn - 1);
      if (epoch_open(cur, r->commit_us, r->lsn)) {
        trb_tabledef_fini(&d);
        return trb_status_set(st, TRB_ENOMEM, "out of memory");
      }
    }
  }
  if (on && !cur) {
    int64_t start_us = r->commit_us;
    json_t *su = json_object_get(d.ext, "StreamStartUs");
    if (json_is_integer(su)) start_us = json_integer_value(su);
    stream *s = new_stream(t, &d, r->table_id, r->lsn, start_us, st);
    if (!s) {
      trb_tabledef_fini(&d);
      return TRB_ENOMEM;
    }
    /* The first epoch starts at the enabling record itself: every record
     * of the stream comes after it. */
    if (epoch_open(s, s->start_us, r->lsn)) {
      trb_tabledef_fini(&d);
      return trb_status_set(st, TRB_ENOMEM, "out of memory");
    }
  }
  trb_tabledef_fini(&d);
  return TRB_OK;
}

/* Time passing: a table's open stream whose epoch ended before this item
 * record's commit time rolls to the epoch the record falls in (epochs of
 * one stream come only from its own records, so an idle table keeps its
 * shards open and gets no empty epochs). Caller holds mu. */
static trb_err on_time(trb_streams *t, const trb_wal_rec *r, trb_status *st) {
  for (size_t i = 0; i < t->nst; i++) {
    stream *s = t->st[i];
    if (s->table_id != r->table_id) continue;
    if (!s->info.enabled || (s->nep && r->commit_us < s->next_boundary)) continue;
    int64_t k = r->commit_us > s->start_us ? (r->commit_us - s->start_us) / t->o.rollover_us : 0;
    epoch_close(s, r->lsn - 1);
    int64_t start = s->start_us + k * t->o.rollover_us;
    if (epoch_open(s, start, r->lsn)) return trb_status_set(st, TRB_ENOMEM, "out of memory");
    s->next_boundary = start + t->o.rollover_us;
  }
  return TRB_OK;
}

static trb_err on_item(trb_streams *t, const trb_wal_rec *r, const trb_wal_pos *pos,
                       trb_status *st) {
  stream *s = current_stream(t, r->table_id);
  if (!s) return TRB_OK;
  trb_av *keys = NULL;
  if (trb_av_decode(r->keys, r->keys_len, &keys))
    return trb_status_set(st, TRB_ECORRUPT, "stream index: undecodable keys at LSN %llu",
                          (unsigned long long)r->lsn);
  const trb_av *pk = trb_av_m_get(keys, s->info.ks.pk_name, strlen(s->info.ks.pk_name));
  uint32_t h = pk ? trb_key_hash(pk) : 0;
  trb_av_destroy(keys);
  epoch *ep = &s->ep[s->nep - 1];
  uint32_t i = (uint32_t)(((uint64_t)h * ep->n) >> 32);
  shard *sh = &ep->sh[i];
  if (sh->n == sh->cap) {
    size_t nc = sh->cap ? sh->cap * 2 : 64;
    trb_wal_pos *np = realloc(sh->pos, nc * sizeof *np);
    if (!np) return trb_status_set(st, TRB_ENOMEM, "out of memory");
    sh->pos = np;
    sh->cap = nc;
  }
  sh->pos[sh->n++] = *pos;
  return TRB_OK;
}

#define STREAMS_LAZY_MS 20

/* Whether some table has a stream on (caller holds mu). */
static int any_enabled(const trb_streams *t) {
  for (size_t i = 0; i < t->nst; i++)
    if (t->st[i]->info.enabled) return 1;
  return 0;
}

static void *tail_main(void *arg) {
  trb_streams *t = arg;
  pthread_setname_np(pthread_self(), "trb-streams");
  trb_thread_favour(t->o.priority_boost, "the stream threads");
  trb_wal_reader *rd = NULL;
  trb_status st;
  trb_status_init(&st);
  trb_err rc = trb_wal_reader_open(t->o.wal, trb_wal_first_lsn(t->o.wal), &rd, &st);
  while (!rc) {
    pthread_mutex_lock(&t->mu);
    int stop = t->stopping;
    pthread_mutex_unlock(&t->mu);
    if (stop) break;
    trb_wal_rec r;
    rc = trb_wal_reader_next(rd, &r, 0, &st);
    if (rc == TRB_ETIMEDOUT) { /* all taken in: wait for more */
      pthread_mutex_lock(&t->mu);
      int lazy = !t->stopping && !t->waiters && !any_enabled(t);
      if (lazy) {
        /* No table has a stream on and nobody waits: no one can see how
         * far behind the index is, so it takes records in at most every
         * STREAMS_LAZY_MS instead of waking for every commit (about 4% of
         * a PutItem's CPU under load). A waiter or stop wakes it at once;
         * a record that turns a stream on is taken in within that time. */
        struct timespec dl = trb_deadline_ms(STREAMS_LAZY_MS);
        pthread_cond_timedwait(&t->lazy_cv, &t->mu, &dl);
      }
      pthread_mutex_unlock(&t->mu);
      rc = TRB_OK;
      if (lazy) continue;
      rc = trb_wal_reader_next(rd, &r, 200, &st);
      if (rc == TRB_ETIMEDOUT) {
        rc = TRB_OK;
        continue;
      }
    }
    if (rc) break;
    trb_wal_pos pos;
    trb_wal_reader_pos(rd, &pos);
    pthread_mutex_lock(&t->mu);
    switch (r.kind) {
      case TRB_WAL_TABLE_CREATE:
      case TRB_WAL_TABLE_UPDATE:
      case TRB_WAL_TABLE_DELETE: rc = on_table(t, &r, &st); break;
      case TRB_WAL_INSERT:
      case TRB_WAL_MODIFY:
      case TRB_WAL_REMOVE:
        rc = on_time(t, &r, &st);
        if (!rc) rc = on_item(t, &r, &pos, &st);
        break;
      default: break;
    }
    if (!rc) t->done_lsn = r.lsn;
    if (t->waiters) pthread_cond_broadcast(&t->cv); /* per record: only when someone waits */
    pthread_mutex_unlock(&t->mu);
  }
  if (rc && rc != TRB_ECLOSED) {
    trb_log_error("streams", "the stream index stopped: %s; streams show nothing newer until "
                  "tributary is restarted", trb_status_msg(&st));
    pthread_mutex_lock(&t->mu);
    t->failed = rc;
    t->fail_st = st;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
  }
  trb_wal_reader_close(rd);
  return NULL;
}

trb_err trb_streams_start(const trb_streams_opts *o, trb_streams **out, trb_status *st) {
  trb_streams *t = calloc(1, sizeof *t);
  if (!t) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  t->o = *o;
  t->o.tables = NULL; /* borrowed for this call only */
  t->o.ntables = 0;
  if (!t->o.shards) t->o.shards = 4;
  if (t->o.rollover_us <= 0) t->o.rollover_us = 4ll * 3600 * 1000000;
  snprintf(t->region, sizeof t->region, "%s", o->region ? o->region : "us-east-1");
  t->o.region = t->region;
  pthread_mutex_init(&t->mu, NULL);
  trb_cond_init_mono(&t->cv); /* deadlines come from trb_deadline_ms */
  trb_cond_init_mono(&t->lazy_cv);
  trb_status_init(&t->fail_st);
  uint64_t first = trb_wal_first_lsn(o->wal);
  t->done_lsn = first ? first - 1 : trb_wal_last_lsn(o->wal);
  t->trim_lsn = first;
  /* Streams that began before the WAL does now: from the catalog. */
  for (size_t i = 0; i < o->ntables; i++) {
    const trb_tabledef *d = &o->tables[i];
    json_t *ss = d->ext ? json_object_get(d->ext, "StreamSpecification") : NULL;
    const char *sl = d->ext ? json_string_value(json_object_get(d->ext, "StreamStartLsn")) : NULL;
    json_t *su = d->ext ? json_object_get(d->ext, "StreamStartUs") : NULL;
    if (!ss || !json_is_true(json_object_get(ss, "StreamEnabled")) || !sl || !json_is_integer(su))
      continue;
    uint64_t start = strtoull(sl, NULL, 10);
    if (first && start >= first) continue; /* the tailer will see its record */
    if (!new_stream(t, d, d->table_id, start, json_integer_value(su), st)) {
      trb_streams_stop(t);
      return TRB_ENOMEM;
    }
  }
  if (pthread_create(&t->thr, NULL, tail_main, t)) {
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    pthread_cond_destroy(&t->lazy_cv);
    free(t);
    return trb_status_set(st, TRB_ENOMEM, "cannot start the stream tailer");
  }
  t->started = 1;
  *out = t;
  return TRB_OK;
}

void trb_streams_stop(trb_streams *t) {
  if (!t) return;
  pthread_mutex_lock(&t->mu);
  t->stopping = 1;
  pthread_cond_signal(&t->lazy_cv);
  pthread_mutex_unlock(&t->mu);
  if (t->started) pthread_join(t->thr, NULL);
  for (size_t i = 0; i < t->nst; i++) stream_free(t->st[i]);
  free(t->st);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cv);
  pthread_cond_destroy(&t->lazy_cv);
  free(t);
}

int trb_streams_sync(trb_streams *t, int timeout_ms) {
  /* Everything the WAL has made visible so far (not what is appended and
   * still being synced: that would wait for the fdatasync in flight). */
  uint64_t want = trb_wal_published_lsn(t->o.wal);
  struct timespec dl = trb_deadline_ms(timeout_ms);
  pthread_mutex_lock(&t->mu);
  int r = 0;
  while (t->done_lsn < want && !t->failed && !t->stopping) {
    t->waiters++;
    pthread_cond_signal(&t->lazy_cv);
    int w = pthread_cond_timedwait(&t->cv, &t->mu, &dl);
    t->waiters--;
    if (w == ETIMEDOUT) break;
  }
  if (t->done_lsn < want) r = -1;
  pthread_mutex_unlock(&t->mu);
  return r;
}

trb_err trb_streams_failed(trb_streams *t, trb_status *st) {
  pthread_mutex_lock(&t->mu);
  trb_err rc = t->failed;
  if (rc && st) *st = t->fail_st;
  pthread_mutex_unlock(&t->mu);
  return rc;
}

trb_err trb_streams_list(trb_streams *t, const char *table, trb_stream_info **out, size_t *n,
                         trb_status *st) {
  pthread_mutex_lock(&t->mu);
  trb_stream_info *v = calloc(t->nst ? t->nst : 1, sizeof *v);
  size_t k = 0;
  if (v)
    for (size_t i = 0; i < t->nst; i++)
      if (!table || !strcmp(t->st[i]->info.table, table)) v[k++] = t->st[i]->info;
  pthread_mutex_unlock(&t->mu);
  if (!v) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  /* by table name, then creation (the array is in creation order) */
  for (size_t i = 1; i < k; i++)
    for (size_t j = i; j > 0 && strcmp(v[j - 1].table, v[j].table) > 0; j--) {
      trb_stream_info x = v[j];
      v[j] = v[j - 1];
      v[j - 1] = x;
    }
  *out = v;
  *n = k;
  return TRB_OK;
}

static stream *find_stream(trb_streams *t, const char *table, const char *label) {
  for (size_t i = t->nst; i > 0; i--) /* the newest of a name and label */
    if (!strcmp(t->st[i - 1]->info.table, table) && !strcmp(t->st[i - 1]->info.label, label))
      return t->st[i - 1];
  return NULL;
}

static void fill_shard(const stream *s, size_t e, uint32_t i, trb_shard_info *o) {
  const epoch *ep = &s->ep[e];
  const shard *sh = &ep->sh[i];
  memset(o, 0, sizeof *o);
  snprintf(o->id, sizeof o->id, "%s", sh->id);
  if (e > 0) {
    /* the shard of the previous epoch that held the start of this one's
     * hash range (the same range when N did not change) */
    const epoch *pe = &s->ep[e - 1];
    uint32_t j = (uint32_t)(((uint64_t)i * pe->n) / ep->n);
    snprintf(o->parent, sizeof o->parent, "%s", pe->sh[j].id);
  }
  o->start_lsn = ep->start_lsn;
  o->records = sh->n;
  o->trimmed_through = sh->trimmed_through;
  if (ep->end_lsn) {
    o->closed = 1;
    o->end_lsn = sh->n ? sh->pos[sh->n - 1].lsn : ep->start_lsn;
  }
}

trb_err trb_streams_describe(trb_streams *t, const char *table, const char *label,
                             trb_stream_info *info, trb_shard_info **shards, size_t *n,
                             trb_status *st) {
  *shards = NULL;
  *n = 0;
  pthread_mutex_lock(&t->mu);
  stream *s = find_stream(t, table, label);
  if (!s) {
    pthread_mutex_unlock(&t->mu);
    return trb_status_set(st, TRB_ENOTFOUND, "Requested resource not found: Stream: %s/%s not found",
                          table, label);
  }
  *info = s->info;
  size_t cnt = 0, k = 0;
  for (size_t e = 0; e < s->nep; e++) cnt += s->ep[e].n;
  trb_shard_info *v = calloc(cnt ? cnt : 1, sizeof *v);
  if (v)
    for (size_t e = 0; e < s->nep; e++)
      for (uint32_t i = 0; i < s->ep[e].n; i++) fill_shard(s, e, i, &v[k++]);
  pthread_mutex_unlock(&t->mu);
  if (!v) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  *shards = v;
  *n = k;
  return TRB_OK;
}

/* Caller holds mu. */
static int find_shard(stream *s, const char *id, size_t *e, uint32_t *i) {
  for (size_t a = 0; a < s->nep; a++)
    for (uint32_t b = 0; b < s->ep[a].n; b++)
      if (!strcmp(s->ep[a].sh[b].id, id)) {
        *e = a;
        *i = b;
        return 1;
      }
  return 0;
}

trb_err trb_streams_shard(trb_streams *t, const char *table, const char *label,
                          const char *shard_id, trb_shard_info *out, trb_status *st) {
  pthread_mutex_lock(&t->mu);
  stream *s = find_stream(t, table, label);
  size_t e;
  uint32_t i;
  int ok = s && find_shard(s, shard_id, &e, &i);
  if (ok) fill_shard(s, e, i, out);
  pthread_mutex_unlock(&t->mu);
  if (!ok)
    return trb_status_set(st, TRB_ENOTFOUND,
                          "Requested resource not found: Shard does not exist");
  return TRB_OK;
}

int trb_streams_wait(trb_streams *t, uint64_t lsn, int timeout_ms) {
  struct timespec dl;
  if (timeout_ms >= 0) dl = trb_deadline_ms(timeout_ms);
  pthread_mutex_lock(&t->mu);
  int r = 0;
  while (t->done_lsn < lsn) {
    if (t->failed || t->stopping) {
      r = -1;
      break;
    }
    t->waiters++;
    pthread_cond_signal(&t->lazy_cv);
    int w = timeout_ms < 0 ? pthread_cond_wait(&t->cv, &t->mu)
                           : pthread_cond_timedwait(&t->cv, &t->mu, &dl);
    t->waiters--;
    if (w == ETIMEDOUT) {
      r = t->done_lsn >= lsn ? 0 : -1;
      break;
    }
  }
  pthread_mutex_unlock(&t->mu);
  return r;
}

int trb_streams_locate(trb_streams *t, uint64_t table_id, uint64_t lsn, const trb_av *keys,
                       trb_stream_info *si, char shard_id[64]) {
  int found = 0;
  pthread_mutex_lock(&t->mu);
  for (size_t i = t->nst; i > 0 && !found; i--) {
    stream *s = t->st[i - 1];
    if (s->table_id != table_id || !s->nep || lsn <= s->start_lsn) continue;
    /* the epoch holding lsn: the last one starting at or before it */
    size_t e = s->nep;
    while (e > 0 && s->ep[e - 1].start_lsn > lsn) e--;
    if (!e) continue;
    const epoch *ep = &s->ep[e - 1];
    if (ep->end_lsn && lsn > ep->end_lsn) continue; /* after the stream ended */
    const trb_av *pk = trb_av_m_get(keys, s->info.ks.pk_name, strlen(s->info.ks.pk_name));
    uint32_t k = (uint32_t)(((uint64_t)(pk ? trb_key_hash(pk) : 0) * ep->n) >> 32);
    *si = s->info;
    snprintf(shard_id, 64, "%s", ep->sh[k].id);
    found = 1;
  }
  pthread_mutex_unlock(&t->mu);
  return found;
}

void trb_streams_trim(trb_streams *t, uint64_t first_lsn) {
  pthread_mutex_lock(&t->mu);
  if (first_lsn > t->trim_lsn) t->trim_lsn = first_lsn;
  for (size_t i = 0; i < t->nst; i++) {
    stream *s = t->st[i];
    size_t keep_from = 0;
    for (size_t e = 0; e < s->nep; e++) {
      epoch *ep = &s->ep[e];
      for (uint32_t k = 0; k < ep->n; k++) {
        shard *sh = &ep->sh[k];
        size_t drop = 0;
        while (drop < sh->n && sh->pos[drop].lsn < first_lsn) drop++;
        if (drop) {
          sh->trimmed_through = sh->pos[drop - 1].lsn;
          memmove(sh->pos, sh->pos + drop, (sh->n - drop) * sizeof *sh->pos);
          sh->n -= drop;
        }
      }
      /* a closed epoch that ends before the WAL does is gone */
      if (ep->end_lsn && ep->end_lsn < first_lsn) keep_from = e + 1;
    }
    if (keep_from) {
      for (size_t e = 0; e < keep_from; e++) {
        for (uint32_t k = 0; k < s->ep[e].n; k++) free(s->ep[e].sh[k].pos);
        free(s->ep[e].sh);
      }
      memmove(s->ep, s->ep + keep_from, (s->nep - keep_from) * sizeof *s->ep);
      s->nep -= keep_from;
    }
  }
  /* disabled streams with nothing left are forgotten */
  size_t w = 0;
  for (size_t i = 0; i < t->nst; i++) {
    stream *s = t->st[i];
    if (!s->info.enabled && !s->nep) stream_free(s);
    else t->st[w++] = s;
  }
  t->nst = w;
  pthread_mutex_unlock(&t->mu);
}

uint64_t trb_streams_trim_lsn(trb_streams *t) {
  pthread_mutex_lock(&t->mu);
  uint64_t v = t->trim_lsn;
  pthread_mutex_unlock(&t->mu);
  return v;
}

uint64_t trb_streams_next_lsn(trb_streams *t) {
  pthread_mutex_lock(&t->mu);
  uint64_t v = t->done_lsn + 1;
  pthread_mutex_unlock(&t->mu);
  return v;
}

static trb_err streams_read(trb_streams *t, const char *table, const char *label,
                         const char *shard_id, uint64_t from_lsn, size_t limit, size_t max_bytes,
                         trb_streams_page *out, trb_status *st) {
  trb_buf *keep = out->text;
  memset(out, 0, sizeof *out);
  out->text = keep;
  out->next_lsn = from_lsn;
  /* The positions to read, copied out under the lock. */
  trb_wal_pos *pos = NULL;
  size_t np = 0;
  int closed = 0;
  uint64_t end_lsn = 0;
  trb_stream_info info;
  pthread_mutex_lock(&t->mu);
  stream *s = find_stream(t, table, label);
  size_t e;
  uint32_t i;
  if (!s || !find_shard(s, shard_id, &e, &i)) {
    pthread_mutex_unlock(&t->mu);
    return trb_status_set(st, TRB_ENOTFOUND, "Requested resource not found: Shard does not exist");
  }
  info = s->info;
  shard *sh = &s->ep[e].sh[i];
  if (sh->trimmed_through && from_lsn <= sh->trimmed_through) {
    pthread_mutex_unlock(&t->mu);
    return trb_status_set(st, TRB_ETRIMMED,
                          "Attempted to access data that has been trimmed: the shard's records "
                          "up to sequence number LSN %llu were removed by retention",
                          (unsigned long long)sh->trimmed_through);
  }
  size_t lo = 0, hi = sh->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (sh->pos[mid].lsn < from_lsn) lo = mid + 1;
    else hi = mid;
  }
  np = sh->n - lo;
  if (limit && np > limit) np = limit;
  pos = malloc((np ? np : 1) * sizeof *pos);
  if (pos && np) memcpy(pos, sh->pos + lo, np * sizeof *pos);
  closed = s->ep[e].end_lsn != 0;
  end_lsn = s->ep[e].end_lsn;
  int rest = lo + np < sh->n;
  uint64_t done = t->done_lsn;
  pthread_mutex_unlock(&t->mu);
  if (!pos) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  trb_buf *text = out->text;
  size_t text_mark = text ? text->len : 0;
  out->records = text ? NULL : json_array();
  out->count = 0;
  trb_err rc = text ? trb_buf_append(text, "[", 1) : TRB_OK;
  if (rc) rc = trb_status_set(st, rc, "out of memory");
  trb_wal_reader *rd = NULL;
  size_t bytes = 0, taken = 0;
  if (np) rc = trb_wal_reader_open(t->o.wal, pos[0].lsn, &rd, st);
  trb_stream_rec_opts ro = {.view = info.view, .region = t->region};
  for (size_t k = 0; k < np && !rc; k++) {
    if ((rc = trb_wal_reader_seek(rd, &pos[k], st))) break;
    trb_wal_rec r;
    if ((rc = trb_wal_reader_next(rd, &r, 0, st))) break;
    if (r.lsn != pos[k].lsn) {
      rc = trb_status_set(st, TRB_ECORRUPT, "stream index: expected LSN %llu, read %llu",
                          (unsigned long long)pos[k].lsn, (unsigned long long)r.lsn);
      break;
    }
    size_t sz = r.keys_len + r.old_len + r.new_len + 300;
    if (taken && bytes + sz > max_bytes) {
      rest = 1;
      break;
    }
    if (text) {
      if (taken && (rc = trb_buf_append(text, ",", 1))) {
        rc = trb_status_set(st, rc, "out of memory");
        break;
      }
      if ((rc = trb_stream_record_text(&r, &ro, text, st))) break;
    } else {
      json_t *j = NULL;
      if ((rc = trb_stream_record(&r, &ro, &j, st))) break;
      json_array_append_new(out->records, j);
    }
    bytes += sz;
    taken++;
    out->count = taken;
    out->next_lsn = r.lsn + 1;
  }
  trb_wal_reader_close(rd);
  free(pos);
  if (!rc && text && (rc = trb_buf_append(text, "]", 1))) rc = trb_status_set(st, rc, "out of memory");
  if (rc) {
    json_decref(out->records);
    out->records = NULL;
    if (text) text->len = text_mark;
    return rc;
  }
  if (taken < np) rest = 1;
  if (!taken && !rest) {
    /* Nothing more in the shard yet: the next read starts after what the
     * tailer has seen, or the shard is done. */
    if (closed) out->exhausted = 1;
    else if (done + 1 > out->next_lsn) out->next_lsn = done + 1;
  } else if (closed && !rest) {
    out->exhausted = 1;
    out->next_lsn = end_lsn + 1;
  }
  return TRB_OK;
}

trb_err trb_streams_read(trb_streams *t, const char *table, const char *label,
                         const char *shard_id, uint64_t from_lsn, size_t limit, size_t max_bytes,
                         trb_streams_page *out, trb_status *st) {
  out->text = NULL;
  return streams_read(t, table, label, shard_id, from_lsn, limit, max_bytes, out, st);
}

trb_err trb_streams_read_text(trb_streams *t, const char *table, const char *label,
                              const char *shard_id, uint64_t from_lsn, size_t limit,
                              size_t max_bytes, trb_buf *text, trb_streams_page *out,
                              trb_status *st) {
  out->text = text;
  return streams_read(t, table, label, shard_id, from_lsn, limit, max_bytes, out, st);
}
