/*
 * tailer.c -- per-sink delivery threads (see tailer.h).
 */
#include "capture/tailer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/value.h"
#include "transform/stream_record.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/thread.h"

/* A batched record: the WAL record copied out of the reader's buffer (the
 * reader reuses it) into the batch's arena, its stream and shard, its
 * Streams record (JSON text) in the batch's text buffer. Offsets, not
 * pointers, while the batch grows (the buffers move); deliver_once points
 * wal's members and the text at them. */
typedef struct brec {
  trb_wal_rec wal;
  size_t off;               /* the record's bytes in t->arena: table, keys, old, new */
  size_t text_off, text_len; /* its Streams record in t->texts (wants_record) */
  size_t si;                /* its stream: t->sis[si] */
  char shard[64];
} brec;

struct trb_tailer {
  trb_tailer_opts o;
  char region[64];
  trb_sink *sink;
  pthread_t thr;
  pthread_mutex_t mu;
  int stopping;
  trb_tailer_stats stats;   /* under mu */
  brec *b;
  size_t nb, capb;
  trb_sink_rec *out;
  trb_buf arena, texts;     /* the batch's WAL bytes and Streams records */
  /* The batch's streams, each once (a batch nearly always has one): a
   * record names its stream by index instead of carrying an 832-byte copy
   * (copying it twice per record was a tenth of the processor's time). */
  trb_stream_info *sis;
  size_t nsis, capsis;
};

static void batch_clear(trb_tailer *t) {
  t->nb = 0;
  t->nsis = 0;
  trb_buf_reset(&t->arena);
  trb_buf_reset(&t->texts);
}

/* Points b's WAL members at its bytes in the arena as it is now. */
static void wal_fix(trb_tailer *t, brec *b) {
  unsigned char *p = t->arena.p + b->off;
  trb_wal_rec *w = &b->wal;
  if (w->table) w->table = (const char *)p, p += w->table_len;
  if (w->keys) w->keys = p, p += w->keys_len;
  if (w->old_img) w->old_img = p, p += w->old_len;
  if (w->new_img) w->new_img = p;
}

static int stopping(trb_tailer *t) {
  pthread_mutex_lock(&t->mu);
  int s = t->stopping;
  pthread_mutex_unlock(&t->mu);
  return s;
}

static void set_broken(trb_tailer *t) {
  pthread_mutex_lock(&t->mu);
  t->stats.broken = 1;
  pthread_mutex_unlock(&t->mu);
}

/* One delivery attempt of the batch with checkpoint `through`. */
static trb_err deliver_once(trb_tailer *t, uint64_t through, trb_status *st) {
  for (size_t i = 0; i < t->nb; i++) {
    wal_fix(t, &t->b[i]);
    t->out[i].wal = &t->b[i].wal;
    t->out[i].stream = &t->sis[t->b[i].si];
    t->out[i].shard_id = t->b[i].shard;
    t->out[i].record = t->sink->wants_record ? (const char *)t->texts.p + t->b[i].text_off : NULL;
    t->out[i].record_len = t->b[i].text_len;
  }
  pthread_mutex_lock(&t->mu);
  t->stats.delivering_since_us = trb_now_us(); /* a sink waiting on its destination shows */
  pthread_mutex_unlock(&t->mu);
  trb_err rc = t->sink->ops->deliver(t->sink, t->out, t->nb, through, st);
  pthread_mutex_lock(&t->mu);
  t->stats.delivering_since_us = 0;
  if (rc) {
    t->stats.failures++;
    t->stats.failing = 1;
  } else {
    t->stats.checkpoint = through;
    t->stats.records += t->nb;
    t->stats.batches++;
    t->stats.failing = 0;
  }
  pthread_mutex_unlock(&t->mu);
  return rc;
}

/* Delivers until it works (or the tailer stops: then 0 is returned only if
 * it worked). */
static int deliver(trb_tailer *t, uint64_t through) {
  int64_t backoff_ms = 100;
  for (;;) {
    trb_status st;
    trb_status_init(&st);
    trb_err rc = deliver_once(t, through, &st);
    if (!rc) {
      batch_clear(t);
      return 0;
    }
    if (rc == TRB_EFAILED) {
      trb_log_error("processor", "the %s sink failed for good: %s; it is stopped and delivers "
                    "nothing more (its checkpoint stays at what it had delivered)",
                    t->sink->ops->kind, trb_status_msg(&st));
      set_broken(t);
      return -1;
    }
    trb_log_error("processor", "the %s sink failed to take %zu records up to LSN %llu: %s; "
                  "retrying in %lld ms (the WAL keeps the records meanwhile)",
                  t->sink->ops->kind, t->nb, (unsigned long long)through, trb_status_msg(&st),
                  (long long)backoff_ms);
    for (int64_t w = 0; w < backoff_ms; w += 50) {
      if (stopping(t)) return -1;
      struct timespec ts = {0, 50 * 1000000};
      nanosleep(&ts, NULL);
    }
    if (backoff_ms < 5000) backoff_ms *= 2;
  }
}

/* Copies r (item kinds) with its stream and shard and Streams record into
 * the batch. */
static trb_err add(trb_tailer *t, const trb_wal_rec *r, const trb_stream_info *si,
                   const char *shard, trb_status *st) {
  if (t->nb == t->capb) {
    size_t nc = t->capb ? t->capb * 2 : 64;
    brec *nb = realloc(t->b, nc * sizeof *nb);
    if (!nb) return trb_status_set(st, TRB_ENOMEM, "out of memory");
    t->b = nb;
    trb_sink_rec *no = realloc(t->out, nc * sizeof *no);
    if (!no) return trb_status_set(st, TRB_ENOMEM, "out of memory");
    t->out = no;
    t->capb = nc;
  }
  /* the stream: the batch's last one (a stream is its table and label) */
  size_t sx = t->nsis;
  if (sx && !strcmp(t->sis[sx - 1].label, si->label) && !strcmp(t->sis[sx - 1].table, si->table)) {
    sx--;
  } else {
    if (t->nsis == t->capsis) {
      size_t nc = t->capsis ? t->capsis * 2 : 4;
      trb_stream_info *ns = realloc(t->sis, nc * sizeof *ns);
      if (!ns) return trb_status_set(st, TRB_ENOMEM, "out of memory");
      t->sis = ns;
      t->capsis = nc;
    }
    t->sis[t->nsis++] = *si;
  }
  brec *b = &t->b[t->nb];
  size_t mark = t->arena.len;
  b->off = mark;
  b->text_off = b->text_len = 0;
  b->si = sx;
  b->wal = *r;
  trb_err rc = TRB_OK;
  if (r->table) rc = trb_buf_append(&t->arena, r->table, r->table_len);
  if (!rc && r->keys) rc = trb_buf_append(&t->arena, r->keys, r->keys_len);
  if (!rc && r->old_img) rc = trb_buf_append(&t->arena, r->old_img, r->old_len);
  if (!rc && r->new_img) rc = trb_buf_append(&t->arena, r->new_img, r->new_len);
  if (rc) {
    t->arena.len = mark;
    return trb_status_set(st, rc, "out of memory");
  }
  wal_fix(t, b);
  snprintf(b->shard, sizeof b->shard, "%s", shard);
  if (t->sink->wants_record) {
    trb_stream_rec_opts ro = {.view = si->view, .region = t->region};
    b->text_off = t->texts.len;
    rc = trb_stream_record_text(&b->wal, &ro, &t->texts, st);
    if (rc) {
      t->arena.len = mark;
      return rc;
    }
    b->text_len = t->texts.len - b->text_off;
  }
  t->nb++;
  return TRB_OK;
}

/* Opens the sink, retrying with backoff while it cannot be reached (a
 * Kafka or PostgreSQL that is down at start): 0, or -1 when stopping or
 * broken. */
static int open_sink(trb_tailer *t) {
  int64_t backoff_ms = 100;
  for (;;) {
    trb_status st;
    trb_status_init(&st);
    uint64_t ckpt = 0;
    trb_err rc = t->sink->ops->open(t->sink, &ckpt, &st);
    if (!rc) {
      pthread_mutex_lock(&t->mu);
      t->stats.checkpoint = t->stats.read_lsn = ckpt;
      t->stats.failing = 0;
      t->stats.opened = 1;
      pthread_mutex_unlock(&t->mu);
      trb_log_info("processor", "the %s sink resumes after LSN %llu", t->sink->ops->kind,
                   (unsigned long long)ckpt);
      return 0;
    }
    pthread_mutex_lock(&t->mu);
    t->stats.failing = 1;
    t->stats.failures++;
    if (rc == TRB_EFAILED || rc == TRB_ECONFIG || rc == TRB_EVERSION || rc == TRB_ECORRUPT)
      t->stats.broken = 1;
    int broken = t->stats.broken;
    pthread_mutex_unlock(&t->mu);
    if (broken) {
      trb_log_error("processor", "the %s sink cannot start: %s; it is stopped (fix the cause "
                    "and restart tributary; the WAL keeps its records within retention)",
                    t->sink->ops->kind, trb_status_msg(&st));
      return -1;
    }
    trb_log_error("processor", "the %s sink cannot start yet: %s; retrying in %lld ms",
                  t->sink->ops->kind, trb_status_msg(&st), (long long)backoff_ms);
    for (int64_t w = 0; w < backoff_ms; w += 50) {
      if (stopping(t)) return -1;
      struct timespec ts = {0, 50 * 1000000};
      nanosleep(&ts, NULL);
    }
    if (backoff_ms < 5000) backoff_ms *= 2;
  }
}

/* A heartbeat (an empty delivery that moves the checkpoint to read_lsn) is
 * due: records were read past the checkpoint and heartbeat_ms have passed
 * since the last delivery. */
static int heartbeat_due(const trb_tailer *t, uint64_t read_lsn, uint64_t ckpt,
                         int64_t last_delivery_ns, int64_t now_ns) {
  return read_lsn > ckpt && now_ns - last_delivery_ns >= (int64_t)t->o.heartbeat_ms * 1000000;
}

static void *tail_main(void *arg) {
  trb_tailer *t = arg;
  pthread_setname_np(pthread_self(), "trb-sink");
  trb_thread_favour(t->o.priority_boost, "the stream threads");
  trb_status st;
  trb_status_init(&st);
  if (open_sink(t)) return NULL;
  uint64_t ckpt = t->stats.checkpoint, read_lsn = ckpt;
  uint64_t first = trb_wal_first_lsn(t->o.wal);
  if (first && ckpt + 1 < first && !ckpt) {
    /* A sink that never delivered anything (new, or its checkpoint
     * removed): it starts at the oldest record retention kept, as a
     * consumer with no offset starts at the earliest one. */
    trb_log_warn("processor", "the %s sink has no checkpoint and the WAL starts at LSN %llu "
                 "(retention removed the older records): it starts there, and the changes "
                 "before it are not in it", t->sink->ops->kind, (unsigned long long)first);
    ckpt = read_lsn = first - 1;
    pthread_mutex_lock(&t->mu);
    t->stats.checkpoint = ckpt;
    pthread_mutex_unlock(&t->mu);
  } else if (first && ckpt + 1 < first) {
    trb_log_error("processor", "the %s sink's checkpoint is LSN %llu but the WAL starts at "
                  "LSN %llu: the changes in between are gone; the sink is stopped. To start "
                  "it again from the oldest record the WAL holds, the gap left as it is, "
                  "remove its checkpoint (the file sink's checkpoint.json in its directory, "
                  "the Kafka sink's position in its offsets topic)", t->sink->ops->kind,
                  (unsigned long long)ckpt, (unsigned long long)first);
    set_broken(t);
    return NULL;
  }
  trb_wal_reader *rd = NULL;
  if (trb_wal_reader_open(t->o.wal, ckpt + 1, &rd, &st)) {
    trb_log_error("processor", "the %s sink cannot read the WAL: %s", t->sink->ops->kind,
                  trb_status_msg(&st));
    set_broken(t);
    return NULL;
  }
  int64_t last_delivery = trb_mono_ns();
  uint64_t indexed = 0; /* the stream index has taken in every LSN <= this */
  for (;;) {
    if (stopping(t)) break;
    int timeout = t->nb ? 0 : 200;
    trb_wal_rec r;
    trb_err rc = trb_wal_reader_next(rd, &r, timeout, &st);
    if (rc == TRB_ETIMEDOUT) {
      int64_t now = trb_mono_ns();
      if (t->nb || heartbeat_due(t, read_lsn, ckpt, last_delivery, now)) {
        if (deliver(t, read_lsn)) break;
        ckpt = read_lsn;
        last_delivery = now;
      }
      continue;
    }
    if (rc) {
      if (rc != TRB_ECLOSED) {
        trb_log_error("processor", "the %s sink stopped reading the WAL: %s",
                      t->sink->ops->kind, trb_status_msg(&st));
        set_broken(t);
      }
      break;
    }
    if (r.kind == TRB_WAL_INSERT || r.kind == TRB_WAL_MODIFY || r.kind == TRB_WAL_REMOVE) {
      /* The stream index decides where the record goes (asked again only
       * when the record is past what it had taken in last time). */
      if (r.lsn > indexed) {
        while (trb_streams_wait(t->o.streams, r.lsn, 200) && !stopping(t)) {
        }
        if (stopping(t)) break;
        indexed = trb_streams_next_lsn(t->o.streams) - 1;
      }
      trb_av *keys = NULL;
      if (trb_av_decode(r.keys, r.keys_len, &keys)) {
        trb_log_error("processor", "undecodable keys in WAL record LSN %llu; the %s sink stops",
                      (unsigned long long)r.lsn, t->sink->ops->kind);
        set_broken(t);
        break;
      }
      trb_stream_info si;
      char shard[64];
      int in = trb_streams_locate(t->o.streams, r.table_id, r.lsn, keys, &si, shard);
      trb_av_destroy(keys);
      if (in && (rc = add(t, &r, &si, shard, &st))) {
        trb_log_error("processor", "the %s sink stops at LSN %llu: %s", t->sink->ops->kind,
                      (unsigned long long)r.lsn, trb_status_msg(&st));
        set_broken(t);
        break;
      }
    }
    read_lsn = r.lsn;
    pthread_mutex_lock(&t->mu);
    t->stats.read_lsn = read_lsn;
    pthread_mutex_unlock(&t->mu);
    /* Full batch: deliver. Nothing for this sink while records keep coming
     * (writes to tables without a stream): a heartbeat as when the WAL is
     * quiet, or the checkpoint would stay where it is and pin the WAL for as
     * long as those writes go on. */
    if (t->nb >= t->o.max_batch ||
        (!t->nb && heartbeat_due(t, read_lsn, ckpt, last_delivery, trb_mono_ns()))) {
      if (deliver(t, read_lsn)) break;
      ckpt = read_lsn;
      last_delivery = trb_mono_ns();
    }
  }
  /* What was read is delivered once more on the way out (a clean stop
   * leaves a fresh checkpoint). */
  pthread_mutex_lock(&t->mu);
  int broken = t->stats.broken;
  pthread_mutex_unlock(&t->mu);
  if (!broken && (t->nb || read_lsn > ckpt)) {
    trb_status_init(&st);
    if (!deliver_once(t, read_lsn, &st)) batch_clear(t);
  }
  batch_clear(t);
  trb_wal_reader_close(rd);
  return NULL;
}

trb_err trb_tailer_start(const trb_tailer_opts *o, trb_sink *sink, trb_tailer **out,
                         trb_status *st) {
  trb_tailer *t = calloc(1, sizeof *t);
  if (!t) {
    sink->ops->destroy(sink);
    return trb_status_set(st, TRB_ENOMEM, "out of memory");
  }
  t->o = *o;
  if (!t->o.max_batch) t->o.max_batch = 1000;
  if (t->o.heartbeat_ms <= 0) t->o.heartbeat_ms = 1000;
  snprintf(t->region, sizeof t->region, "%s", o->region ? o->region : "us-east-1");
  t->sink = sink;
  trb_buf_init(&t->arena, 0);
  trb_buf_init(&t->texts, 0);
  pthread_mutex_init(&t->mu, NULL);
  t->stats.kind = sink->ops->kind;
  /* The sink is opened by its thread (retrying while what it writes to is
   * unreachable); until then its checkpoint counts as 0 for retention. */
  if (pthread_create(&t->thr, NULL, tail_main, t)) {
    sink->ops->destroy(sink);
    pthread_mutex_destroy(&t->mu);
    free(t);
    return trb_status_set(st, TRB_ENOMEM, "cannot start the %s sink's thread", sink->ops->kind);
  }
  *out = t;
  return TRB_OK;
}

void trb_tailer_stop(trb_tailer *t) {
  if (!t) return;
  pthread_mutex_lock(&t->mu);
  t->stopping = 1;
  pthread_mutex_unlock(&t->mu);
  pthread_join(t->thr, NULL);
  t->sink->ops->destroy(t->sink);
  free(t->b);
  free(t->sis);
  free(t->out);
  trb_buf_fini(&t->arena);
  trb_buf_fini(&t->texts);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

void trb_tailer_break(trb_tailer *t) {
  pthread_mutex_lock(&t->mu);
  t->stats.broken = 1;
  t->stopping = 1;
  pthread_mutex_unlock(&t->mu);
}

void trb_tailer_get_stats(trb_tailer *t, trb_tailer_stats *out) {
  pthread_mutex_lock(&t->mu);
  *out = t->stats;
  pthread_mutex_unlock(&t->mu);
}
