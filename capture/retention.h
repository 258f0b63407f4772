/*
 * retention.h -- honest retention (ARCHITECTURE.md invariant 7): WAL
 * segments are removed only when every record in them is
 *   - older than the stream retention (default 24 hours),
 *   - delivered by every sink that is not broken (at or before its
 *     checkpoint), and
 *   - durable in the store (recovery would not need it: the store is
 *     flushed first, see trb_engine_flush).
 * A sink further behind than max_lag_bytes of WAL is marked broken, with a
 * log line that says so and what to do, and stops holding the WAL, instead
 * of the disk filling up silently (when it is what holds it: not while the
 * stream retention window keeps its records anyway). Under min_free_bytes
 * free on the disk the oldest segments go regardless of the first two
 * rules (not the third), loudly, and sinks behind them are marked broken.
 *
 * One thread checks every interval_ms. Segments go whole, oldest first; the
 * segment being written always stays.
 */
#ifndef TRB_RETENTION_H
#define TRB_RETENTION_H

#include <stdint.h>

#include "capture/tailer.h"
#include "capture/wal.h"
#include "transform/streams.h"

typedef struct trb_retention trb_retention;

typedef struct trb_retention_opts {
  trb_wal *wal;                 /* borrowed */
  trb_streams *streams;         /* borrowed; told what was trimmed (may be NULL) */
  trb_tailer **sinks;           /* borrowed; the sinks' tailers */
  size_t nsinks;
  /* Makes the store durable; *lsn = the LSN it is durable up to. */
  trb_err (*flush)(void *ctx, uint64_t *lsn, trb_status *st);
  void *flush_ctx;
  int64_t retention_us;         /* default 24 hours */
  uint64_t max_lag_bytes;       /* 0 = no cap */
  /* Free space to keep on dir's disk (the data directory): below it the
   * oldest segments go even when the rules above would keep them, and the
   * sinks still behind them are marked broken. 0 = no floor. */
  uint64_t min_free_bytes;
  const char *dir;              /* borrowed; NULL = no floor */
  int interval_ms;              /* default 10000 */
} trb_retention_opts;

trb_err trb_retention_start(const trb_retention_opts *o, trb_retention **out, trb_status *st);
void trb_retention_stop(trb_retention *r); /* NULL ok */
/* Runs one check now (tests, and the thread). */
trb_err trb_retention_run(trb_retention *r, trb_status *st);

typedef struct trb_retention_stats {
  uint64_t runs;
  uint64_t segments_removed;
  uint64_t bytes_removed;
  uint64_t first_lsn;           /* the WAL starts here now */
  uint64_t wal_bytes;           /* on disk now */
  uint64_t sinks_broken;        /* by the lag cap */
  uint64_t held_by_sinks;       /* 1 when a sink checkpoint is what stops trimming now */
  uint64_t held_by_time;        /* 1 when the stream retention window (retention_s) is */
  uint64_t lagging_in_window;   /* 1 when a sink is past the lag cap but not broken, since
                                   the window keeps its records anyway */
  uint64_t disk_free;           /* bytes free on dir's disk at the last check (0 unknown) */
  uint64_t disk_trims;          /* checks that removed segments for the free-space floor */
} trb_retention_stats;
void trb_retention_get_stats(trb_retention *r, trb_retention_stats *out);

#endif
