/*
 * ttl.c -- Time to Live's sweeper (see ttl.h).
 */
#include "engine/ttl.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/keyenc.h"
#include "util/clock.h"
#include "util/log.h"

#define DELETES_PER_CALL 100

int trb_ttl_expired(const trb_av *item, const char *attr, int64_t now_s) {
  if (!item || item->type != TRB_T_M || !attr) return 0;
  const trb_av *v = trb_av_m_get(item, attr, strlen(attr));
  if (!v || v->type != TRB_T_N) return 0;
  trb_dec now, oldest;
  trb_dec_from_i64(now_s, &now);
  trb_dec_from_i64(now_s - TRB_TTL_MAX_AGE_S, &oldest);
  return trb_dec_cmp(&v->u.n, &now) <= 0 && trb_dec_cmp(&v->u.n, &oldest) >= 0;
}

typedef struct ttl_cond {
  const char *attr;
  int64_t now_s;
} ttl_cond;

/* The delete's condition, on the item as the commit thread sees it. */
static trb_err still_expired(void *ctx, const trb_av *item, int *pass, trb_status *st) {
  (void)st;
  const ttl_cond *c = ctx;
  *pass = trb_ttl_expired(item, c->attr, c->now_s);
  return TRB_OK;
}

static int stopped(const int *stop) { return stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE); }

/* Sleeps until the pass has taken as long as scanned items at rate need,
 * in slices, so a stop is seen within 50 ms. */
static void pace(int64_t start_ns, uint64_t scanned, uint32_t rate, const int *stop) {
  if (!rate) return;
  int64_t due = start_ns + (int64_t)(scanned * 1000000000ull / rate);
  for (;;) {
    int64_t left = due - trb_mono_ns();
    if (left <= 0 || stopped(stop)) return;
    if (left > 50000000) left = 50000000;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)left};
    nanosleep(&ts, NULL);
  }
}

/* Deletes keys[0..n) of table if still expired; adds what went to *deleted.
 * Returns an error only when the whole call failed (engine failed or
 * closing). */
static trb_err delete_keys(trb_engine *e, const char *table, trb_av **keys, size_t n,
                           ttl_cond *c, uint64_t *deleted, trb_status *st) {
  trb_write w[DELETES_PER_CALL];
  trb_err rc = TRB_OK;
  for (size_t off = 0; !rc && off < n; off += DELETES_PER_CALL) {
    size_t k = n - off < DELETES_PER_CALL ? n - off : DELETES_PER_CALL;
    memset(w, 0, k * sizeof *w);
    for (size_t i = 0; i < k; i++) {
      w[i].kind = TRB_W_DELETE;
      w[i].table = table;
      w[i].key = keys[off + i];
      w[i].cond = still_expired;
      w[i].cond_ctx = c;
      w[i].ttl = 1;
    }
    rc = trb_engine_write(e, w, k, 0, st);
    for (size_t i = 0; i < k; i++) {
      if (!rc && w[i].rc == TRB_OK && w[i].lsn) (*deleted)++;
      trb_write_fini(&w[i]);
    }
  }
  return rc;
}

/* One table's pass. TRB_ENOTFOUND: the table went away (skipped). */
static trb_err sweep_table(trb_engine *e, const char *table, int64_t now_s, uint32_t rate,
                           const int *stop, int64_t start_ns, trb_ttl_stats *acc,
                           uint64_t *pass_scanned, trb_status *st) {
  trb_table_info info;
  trb_err rc = trb_table_describe(e, table, &info, st);
  if (rc) return rc;
  json_t *spec = info.def.ext ? json_object_get(info.def.ext, "TimeToLive") : NULL;
  const char *a = spec ? json_string_value(json_object_get(spec, "AttributeName")) : NULL;
  char *attr = a && json_is_true(json_object_get(spec, "Enabled")) ? strdup(a) : NULL;
  trb_keyschema ks = info.def.ks;
  trb_table_info_fini(&info);
  if (!attr) return TRB_OK; /* TTL off (or out of memory: the next pass) */
  ttl_cond c = {.attr = attr, .now_s = now_s};
  trb_buf after;
  trb_buf_init(&after, 0);
  trb_av *keys[TRB_TTL_PAGE];
  int more = 1;
  while (!rc && more && !stopped(stop)) {
    trb_snapshot *s = NULL;
    uint64_t lsn;
    size_t nk = 0, seen = 0;
    rc = trb_snapshot_open(e, table, after.p, after.len, &s, &lsn, st);
    while (!rc && seen < TRB_TTL_PAGE) {
      trb_av *item = NULL;
      const void *k;
      size_t kl;
      if ((rc = trb_snapshot_next(s, &item, &k, &kl, st))) break;
      if (!item) {
        more = 0;
        break;
      }
      seen++;
      trb_buf_reset(&after);
      if (trb_buf_append(&after, k, kl)) rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
      if (!rc && trb_ttl_expired(item, attr, now_s)) {
        if (!(keys[nk] = trb_key_from_item(&ks, item)))
          rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
        else nk++;
      }
      trb_av_destroy(item);
    }
    trb_snapshot_close(s);
    acc->scanned += seen;
    *pass_scanned += seen;
    if (!rc && nk) rc = delete_keys(e, table, keys, nk, &c, &acc->deleted, st);
    for (size_t i = 0; i < nk; i++) trb_av_destroy(keys[i]);
    if (!rc) pace(start_ns, *pass_scanned, rate, stop);
  }
  trb_buf_fini(&after);
  free(attr);
  return rc;
}

trb_err trb_ttl_sweep(trb_engine *e, int64_t now_s, uint32_t scan_rate, const int *stop,
                      trb_ttl_stats *acc, trb_status *st) {
  char **names = NULL;
  size_t n = 0;
  trb_err rc = trb_table_list(e, NULL, 0, &names, &n, NULL, st);
  if (rc) return rc;
  int64_t start_ns = trb_mono_ns();
  uint64_t pass_scanned = 0;
  for (size_t i = 0; i < n && !rc && !stopped(stop); i++) {
    rc = sweep_table(e, names[i], now_s, scan_rate, stop, start_ns, acc, &pass_scanned, st);
    if (rc == TRB_ENOTFOUND) { /* deleted meanwhile */
      trb_status_init(st);
      rc = TRB_OK;
    }
  }
  trb_table_list_free(names, n);
  if (!rc && !stopped(stop)) {
    acc->sweeps++;
    acc->last_sweep_us = trb_now_us();
  }
  return rc;
}

/* ---- the thread ---- */

struct trb_ttl {
  trb_ttl_opts o;
  pthread_t thr;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stopping; /* read by the sweep without mu (atomically) */
  trb_ttl_stats stats; /* under mu */
};

static void *ttl_main(void *arg) {
  trb_ttl *t = arg;
  pthread_setname_np(pthread_self(), "trb-ttl");
  int warned = 0;
  pthread_mutex_lock(&t->mu);
  while (!t->stopping) {
    struct timespec dl = trb_deadline_ms(t->o.interval_ms);
    while (!t->stopping && pthread_cond_timedwait(&t->cv, &t->mu, &dl) != ETIMEDOUT) {
    }
    if (t->stopping) break;
    pthread_mutex_unlock(&t->mu);
    trb_ttl_stats acc = {0};
    trb_status st;
    trb_status_init(&st);
    trb_err rc = trb_ttl_sweep(t->o.engine, trb_now_us() / 1000000, t->o.scan_rate,
                               &t->stopping, &acc, &st);
    if (rc && !warned) {
      trb_log_warn("ttl",
                   "the Time to Live sweep stopped: %s; expired items stay until a later "
                   "sweep succeeds",
                   trb_status_msg(&st));
      warned = 1;
    } else if (!rc) {
      warned = 0;
    }
    pthread_mutex_lock(&t->mu);
    t->stats.sweeps += acc.sweeps;
    t->stats.scanned += acc.scanned;
    t->stats.deleted += acc.deleted;
    if (acc.last_sweep_us) t->stats.last_sweep_us = acc.last_sweep_us;
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

trb_err trb_ttl_start(const trb_ttl_opts *o, trb_ttl **out, trb_status *st) {
  *out = NULL;
  if (!o || !o->engine) return trb_status_set(st, TRB_EINVAL, "ttl: no engine");
  trb_ttl *t = calloc(1, sizeof *t);
  if (!t) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  t->o = *o;
  if (!t->o.interval_ms) t->o.interval_ms = 60000;
  pthread_mutex_init(&t->mu, NULL);
  trb_cond_init_mono(&t->cv);
  if (pthread_create(&t->thr, NULL, ttl_main, t)) {
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
    return trb_status_set(st, TRB_EIO, "ttl: cannot start its thread");
  }
  *out = t;
  return TRB_OK;
}

void trb_ttl_stop(trb_ttl *t) {
  if (!t) return;
  pthread_mutex_lock(&t->mu);
  __atomic_store_n(&t->stopping, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
  pthread_join(t->thr, NULL);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cv);
  free(t);
}

void trb_ttl_get_stats(trb_ttl *t, trb_ttl_stats *out) {
  memset(out, 0, sizeof *out);
  if (!t) return;
  pthread_mutex_lock(&t->mu);
  *out = t->stats;
  pthread_mutex_unlock(&t->mu);
}
