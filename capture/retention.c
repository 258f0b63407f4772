/*
 * retention.c -- removing WAL segments nobody needs (see retention.h).
 *
 * A segment's newest record is older than the first record of the segment
 * after it, so a segment is past the stream retention when that next first
 * record's commit time is. Lag of a sink: the bytes of the segments holding
 * records after its checkpoint (segment-granular: enough for a cap).
 */
#include "capture/retention.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/sysio.h"

struct trb_retention {
  trb_retention_opts o;
  trb_tailer **sinks;
  pthread_t thr;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stopping, started;
  trb_retention_stats stats;   /* under mu */
  int warned_window;           /* the lagging-in-window warning was given (retention thread) */
};

/* Commit time of the record at lsn, or -1 when it cannot be read now. */
static int64_t commit_time(trb_wal *w, uint64_t lsn) {
  trb_wal_reader *rd = NULL;
  trb_status st;
  trb_status_init(&st);
  if (trb_wal_reader_open(w, lsn, &rd, &st)) return -1;
  trb_wal_rec r;
  int64_t t = -1;
  if (!trb_wal_reader_next(rd, &r, 0, &st) && r.lsn == lsn) t = r.commit_us;
  trb_wal_reader_close(rd);
  return t;
}

trb_err trb_retention_run(trb_retention *r, trb_status *st) {
  trb_wal_seg_info *seg = NULL;
  size_t n = 0;
  trb_err rc = trb_wal_segments(r->o.wal, &seg, &n, st);
  if (rc) return rc;
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++) total += seg[i].bytes;
  uint64_t broken_now = 0;

  /* Time: the first segment still inside the retention window. */
  int64_t horizon = trb_now_us() - r->o.retention_us;
  uint64_t keep_time = seg[0].first_lsn;
  for (size_t i = 0; i + 1 < n; i++) {
    int64_t t = commit_time(r->o.wal, seg[i + 1].first_lsn);
    if (t < 0 || t >= horizon) break;
    keep_time = seg[i + 1].first_lsn;
  }
  /* Sinks: the lag cap first, then the oldest checkpoint of those left. A
   * sink past the cap is broken only when it is what holds the WAL: when
   * the stream retention window keeps everything it has not delivered
   * anyway, breaking it would free nothing and lose it its records
   * (held_by_time says so instead). */
  uint64_t keep_sinks = UINT64_MAX;
  int held_time = 0;
  for (size_t s = 0; s < r->o.nsinks; s++) {
    trb_tailer_stats ts;
    trb_tailer_get_stats(r->sinks[s], &ts);
    if (ts.broken) continue;
    uint64_t lag = 0;
    for (size_t i = 0; i < n; i++) {
      uint64_t last = i + 1 < n ? seg[i + 1].first_lsn - 1 : UINT64_MAX;
      if (last > ts.checkpoint) lag += seg[i].bytes;
    }
    int over = r->o.max_lag_bytes && lag > r->o.max_lag_bytes &&
               ts.checkpoint + 1 < seg[n - 1].first_lsn;
    if (over && ts.checkpoint + 1 >= keep_time) {
      held_time = 1; /* over the cap, but the window holds its records anyway */
      if (!r->warned_window)
        trb_log_warn("retention", "the %s sink is %llu bytes of WAL behind (cap %llu, its "
                     "checkpoint is LSN %llu), but the stream retention window "
                     "(streams.retention_s) keeps those records anyway, so it is not marked "
                     "broken; the WAL grows with the window: a shorter streams.retention_s "
                     "bounds it", ts.kind, (unsigned long long)lag,
                     (unsigned long long)r->o.max_lag_bytes, (unsigned long long)ts.checkpoint);
      r->warned_window = 1;
    } else if (over) {
      trb_log_error("retention", "the %s sink is %llu bytes of WAL behind (cap %llu, its "
                    "checkpoint is LSN %llu): marking it broken so the WAL does not fill the "
                    "disk; it delivers nothing more; fix what stops it and give it a fresh "
                    "start (its records past the cap are lost to it)",
                    ts.kind, (unsigned long long)lag, (unsigned long long)r->o.max_lag_bytes,
                    (unsigned long long)ts.checkpoint);
      trb_tailer_break(r->sinks[s]);
      broken_now++;
      continue;
    }
    if (ts.checkpoint + 1 < keep_sinks) keep_sinks = ts.checkpoint + 1;
  }

  uint64_t keep = keep_time < keep_sinks ? keep_time : keep_sinks;
  int held = keep_sinks < keep_time;
  size_t removed = 0;
  uint64_t bytes = 0;
  /* Disk: under the free-space floor the oldest segments go anyway, as
   * many as bring the free space back over it (never the one being
   * written): a full disk would stop every write. */
  uint64_t avail = 0, keep_rules = keep;
  int disk_low = 0;
  if (r->o.dir && trb_sys_free_bytes(r->o.dir, &avail) == 0) {
    if (r->o.min_free_bytes && avail < r->o.min_free_bytes && n > 1) {
      uint64_t need = r->o.min_free_bytes - avail, got = 0;
      size_t i = 0;
      while (i + 1 < n && (seg[i + 1].first_lsn <= keep || got < need)) got += seg[i++].bytes;
      if (seg[i].first_lsn > keep) {
        keep = seg[i].first_lsn;
        disk_low = 1;
      }
    }
  }
  if (n > 1 && keep >= seg[1].first_lsn) {
    /* Something could go: make sure recovery would not need it. */
    uint64_t durable = 0;
    if (r->o.flush && (rc = r->o.flush(r->o.flush_ctx, &durable, st))) goto done;
    if (r->o.flush && durable + 1 < keep) keep = durable + 1;
    for (size_t i = 0; i + 1 < n && seg[i + 1].first_lsn <= keep; i++) bytes += seg[i].bytes;
    if ((rc = trb_wal_trim(r->o.wal, keep, &removed, st))) goto done;
    if (removed) {
      uint64_t first = trb_wal_first_lsn(r->o.wal);
      if (r->o.streams) trb_streams_trim(r->o.streams, first);
      if (disk_low && first > keep_rules)
        trb_log_error("retention", "the disk holding %s has %llu MiB free, under "
                      "retention.min_disk_free (%llu MiB): removed %zu WAL segment(s), %llu "
                      "bytes, that the stream retention window or a sink still wanted; the WAL "
                      "now starts at LSN %llu (stream readers behind it get "
                      "TrimmedDataAccessException); free space or add disk",
                      r->o.dir, (unsigned long long)(avail >> 20),
                      (unsigned long long)(r->o.min_free_bytes >> 20), removed,
                      (unsigned long long)bytes, (unsigned long long)first);
      else
        trb_log_info("retention", "removed %zu WAL segment(s), %llu bytes; the WAL now starts "
                     "at LSN %llu", removed, (unsigned long long)bytes, (unsigned long long)first);
      /* sinks whose next record is gone stop, saying so */
      for (size_t s = 0; disk_low && s < r->o.nsinks; s++) {
        trb_tailer_stats ts;
        trb_tailer_get_stats(r->sinks[s], &ts);
        if (ts.broken || ts.checkpoint + 1 >= first) continue;
        trb_log_error("retention", "the %s sink's checkpoint (LSN %llu) is before the WAL's "
                      "start now (LSN %llu, removed for the free-space floor): marking it "
                      "broken; fix the disk and give it a fresh start (its records before "
                      "LSN %llu are lost to it)", ts.kind, (unsigned long long)ts.checkpoint,
                      (unsigned long long)first, (unsigned long long)first);
        trb_tailer_break(r->sinks[s]);
        broken_now++;
      }
    }
  }
done:
  pthread_mutex_lock(&r->mu);
  r->stats.runs++;
  r->stats.segments_removed += removed;
  r->stats.bytes_removed += removed ? bytes : 0;
  r->stats.first_lsn = trb_wal_first_lsn(r->o.wal);
  r->stats.wal_bytes = total - (removed ? bytes : 0);
  r->stats.sinks_broken += broken_now;
  r->stats.held_by_sinks = (uint64_t)held;
  /* the window keeps segments that could otherwise go */
  r->stats.held_by_time = (uint64_t)(n > 1 && keep_time < seg[n - 1].first_lsn && !held);
  r->stats.lagging_in_window = (uint64_t)held_time;
  r->stats.disk_free = avail;
  if (disk_low && removed) r->stats.disk_trims++;
  if (!held_time) r->warned_window = 0;
  pthread_mutex_unlock(&r->mu);
  free(seg);
  return rc;
}

static void *ret_main(void *arg) {
  trb_retention *r = arg;
  char last_err[TRB_STATUS_MSG_MAX] = "";
  pthread_setname_np(pthread_self(), "trb-retention");
  pthread_mutex_lock(&r->mu);
  while (!r->stopping) {
    struct timespec dl = trb_deadline_ms(r->o.interval_ms);
    while (!r->stopping && pthread_cond_timedwait(&r->cv, &r->mu, &dl) != ETIMEDOUT) {
    }
    if (r->stopping) break;
    pthread_mutex_unlock(&r->mu);
    trb_status st;
    trb_status_init(&st);
    /* The same failure again (a failed engine refuses every flush until a
     * restart) is said once, not at every check. */
    if (trb_retention_run(r, &st)) {
      if (strcmp(last_err, trb_status_msg(&st)))
        trb_log_error("retention", "WAL retention check failed: %s; segments stay until a check "
                      "succeeds (said once while the failure stays the same)",
                      trb_status_msg(&st));
      snprintf(last_err, sizeof last_err, "%s", trb_status_msg(&st));
    } else {
      last_err[0] = 0;
    }
    pthread_mutex_lock(&r->mu);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

trb_err trb_retention_start(const trb_retention_opts *o, trb_retention **out, trb_status *st) {
  trb_retention *r = calloc(1, sizeof *r);
  if (!r) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  r->o = *o;
  if (r->o.retention_us <= 0) r->o.retention_us = 24ll * 3600 * 1000000;
  if (r->o.interval_ms <= 0) r->o.interval_ms = 10000;
  if (o->nsinks) {
    r->sinks = calloc(o->nsinks, sizeof *r->sinks);
    if (!r->sinks) {
      free(r);
      return trb_status_set(st, TRB_ENOMEM, "out of memory");
    }
    memcpy(r->sinks, o->sinks, o->nsinks * sizeof *r->sinks);
  }
  r->o.sinks = r->sinks;
  pthread_mutex_init(&r->mu, NULL);
  trb_cond_init_mono(&r->cv); /* deadlines come from trb_deadline_ms */
  if (pthread_create(&r->thr, NULL, ret_main, r)) {
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->sinks);
    free(r);
    return trb_status_set(st, TRB_ENOMEM, "cannot start the retention thread");
  }
  r->started = 1;
  *out = r;
  return TRB_OK;
}

void trb_retention_stop(trb_retention *r) {
  if (!r) return;
  pthread_mutex_lock(&r->mu);
  r->stopping = 1;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  if (r->started) pthread_join(r->thr, NULL);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  free(r->sinks);
  free(r);
}

void trb_retention_get_stats(trb_retention *r, trb_retention_stats *out) {
  pthread_mutex_lock(&r->mu);
  *out = r->stats;
  pthread_mutex_unlock(&r->mu);
}
