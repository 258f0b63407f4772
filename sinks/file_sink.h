/*
 * file_sink.h -- the audit file sink: every stream record of every table,
 * as JSON Lines, one directory per table, files rotated by size and age,
 * exactly once across crashes (layout and recipe in file_sink.c).
 */
#ifndef TRB_FILE_SINK_H
#define TRB_FILE_SINK_H

#include <stdint.h>

#include "sinks/sink.h"

typedef struct trb_file_sink_opts {
  const char *dir;          /* created if missing */
  uint64_t rotate_bytes;    /* start a new file past this size; default 64 MiB */
  int64_t rotate_us;        /* ... or when the current one is this old; default 1 hour */
} trb_file_sink_opts;

/* A file sink (not yet opened: the processor calls ops->open). *out
 * caller-owned (ops->destroy). */
trb_err trb_file_sink_create(const trb_file_sink_opts *o, trb_sink **out, trb_status *st);

#endif
