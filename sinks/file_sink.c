/*
 * file_sink.c -- the audit file sink.
 *
 * LAYOUT
 *
 *   <dir>/checkpoint.json
 *   <dir>/<table>/<table>.<LSN of the file's first record, 20 digits>.jsonl
 *
 * Each .jsonl line is one DynamoDB Streams record (the JSON GetRecords
 * returns, compact, members in their usual order) and a newline. A table's
 * files sort by name in LSN order; the newest one is being appended to.
 *
 * CHECKPOINT (checkpoint.json, replaced durably: write checkpoint.json.tmp,
 * fsync, rename over, fsync the directory)
 *
 *   {"format": "tributary-file-sink", "version": 1,
 *    "lsn": "<C, decimal>",
 *    "tables": {"<table>": {"file": "<its newest file name>", "size": <bytes>}, ...}}
 *
 * A reader refuses another format or version. C is the sink's checkpoint:
 * every record with LSN <= C is in the files, once; the files hold nothing
 * else once the undo below has run.
 *
 * DELIVERY, AND WHY IT IS EXACTLY ONCE
 *
 * deliver(batch, through): append the batch's lines to each table's newest
 * file (a new file when the size or age limit is passed: a batch larger
 * than the room left goes into as many files as it fills, each at most
 * rotate_bytes unless one line alone is larger), fdatasync every
 * file written (and fsync a directory that got a new file), then replace
 * the checkpoint with `through` and the new sizes. A crash before the
 * rename leaves the old checkpoint: at open (and before retrying a failed
 * batch) every table's newest file is cut back to its checkpointed size
 * (this also cuts a partly written last line) and files newer than the
 * checkpointed one are removed, so the records after C are gone and the
 * processor delivers them again. A crash after the rename is a completed
 * batch. Without any checkpoint.json at open (a new sink, or one a user
 * started again by removing it) the files there are kept under another
 * name, <file>.before-checkpoint-<unix time>, not removed: an audit trail
 * is never deleted (see undo_table).
 */
#include "sinks/file_sink.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/sysio.h"

#define CKPT_FORMAT "tributary-file-sink"
#define CKPT_VERSION 1

typedef struct fs_table {
  char name[256];
  char file[320];           /* newest file name ("" = none yet) */
  int fd;                   /* open on it, or -1 */
  uint64_t size;
  int64_t opened_us;        /* when it was started (for age rotation) */
  char durable_file[320];   /* as of the checkpoint */
  uint64_t durable_size;
  trb_buf pending;          /* this batch's lines */
  uint64_t pending_first;   /* LSN of the first line going to the file being started */
  uint64_t *line_end, *line_lsn; /* per pending line: its end offset in pending, its LSN */
  size_t nlines, caplines;
} fs_table;

typedef struct file_sink {
  trb_sink base;
  trb_file_sink_opts o;
  char dir[4096];
  fs_table *t;
  size_t nt, capt;
  int dirty;                /* files may differ from the checkpoint */
  int no_ckpt;              /* opened without a checkpoint.json */
} file_sink;

static trb_err io_fail(trb_status *st, const char *what, const char *path) {
  return trb_status_set(st, TRB_EIO, "file sink: %s %s: %s", what, path, strerror(errno));
}

static int mkdir_p(const char *path) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return -1;
      *p = '/';
    }
  return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static fs_table *table_get(file_sink *f, const char *name, int create) {
  for (size_t i = 0; i < f->nt; i++)
    if (!strcmp(f->t[i].name, name)) return &f->t[i];
  if (!create) return NULL;
  if (f->nt == f->capt) {
    size_t nc = f->capt ? f->capt * 2 : 8;
    fs_table *n = realloc(f->t, nc * sizeof *n);
    if (!n) return NULL;
    f->t = n;
    f->capt = nc;
  }
  fs_table *t = &f->t[f->nt++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->fd = -1;
  trb_buf_init(&t->pending, 0);
  return t;
}

static void path_of(const file_sink *f, const char *table, const char *file, char *out,
                    size_t n) {
  if (file) snprintf(out, n, "%s/%s/%s", f->dir, table, file);
  else snprintf(out, n, "%s/%s", f->dir, table);
}

/* Removes the table's files named after `keep` (all when keep is ""), cuts
 * `keep` back to size. Without any checkpoint (a new sink, or one whose
 * checkpoint a user removed to start it again) files found are an audit
 * trail, not a batch to undo: they are kept under another name
 * (<file>.before-checkpoint-<unix time>, which no reader of *.jsonl takes
 * for the sink's own), never removed. */
static trb_err undo_table(file_sink *f, const char *table, const char *keep, uint64_t size,
                          trb_status *st) {
  char dpath[4400], p[4800];
  path_of(f, table, NULL, dpath, sizeof dpath);
  DIR *d = opendir(dpath);
  /* absent, or not a directory of ours (then writing there fails, loudly) */
  if (!d) return errno == ENOENT || errno == ENOTDIR ? TRB_OK : io_fail(st, "cannot list", dpath);
  int removed = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    size_t l = strlen(de->d_name);
    if (l < 6 || strcmp(de->d_name + l - 6, ".jsonl")) continue;
    if (keep[0] && strcmp(de->d_name, keep) <= 0) continue;
    path_of(f, table, de->d_name, p, sizeof p);
    if (f->no_ckpt) {
      char q[4900];
      snprintf(q, sizeof q, "%s.before-checkpoint-%lld", p, (long long)(trb_now_us() / 1000000));
      if (trb_sys.rename(p, q) < 0) {
        closedir(d);
        return io_fail(st, "cannot rename", p);
      }
      trb_log_warn("file-sink", "%s was there but the sink has no checkpoint (a new sink that "
                   "stopped before its first batch, or its checkpoint.json was removed): kept "
                   "as %s; the sink writes its records to new files", p, q);
    } else if (trb_sys.unlink(p) < 0) {
      closedir(d);
      return io_fail(st, "cannot remove", p);
    }
    removed = 1;
  }
  closedir(d);
  if (keep[0]) {
    path_of(f, table, keep, p, sizeof p);
    int fd = trb_sys.open(p, O_WRONLY | O_CLOEXEC, 0);
    if (fd < 0 && errno != ENOENT) return io_fail(st, "cannot open", p);
    if (fd >= 0) {
      struct stat sb;
      if (fstat(fd, &sb) == 0 && (uint64_t)sb.st_size != size) {
        if (trb_sys.ftruncate(fd, (off_t)size) < 0 || trb_sys.fdatasync(fd) < 0) {
          close(fd);
          return io_fail(st, "cannot cut back", p);
        }
        trb_log_info("file-sink", "cut %s back to %" PRIu64 " bytes (records after the "
                     "checkpoint are delivered again)", p, size);
      }
      close(fd);
    }
  }
  if (removed && trb_sys_fsync_dir(dpath) < 0) return io_fail(st, "cannot sync", dpath);
  return TRB_OK;
}

/* Brings the files back to the checkpoint. */
static trb_err undo_all(file_sink *f, trb_status *st) {
  for (size_t i = 0; i < f->nt; i++) {
    fs_table *t = &f->t[i];
    if (t->fd >= 0) close(t->fd);
    t->fd = -1;
    trb_err rc = undo_table(f, t->name, t->durable_file, t->durable_size, st);
    if (rc) return rc;
    snprintf(t->file, sizeof t->file, "%s", t->durable_file);
    t->size = t->durable_size;
    t->opened_us = trb_now_us();
  }
  /* Table directories the checkpoint does not know hold only newer files. */
  DIR *d = opendir(f->dir);
  if (!d) return io_fail(st, "cannot list", f->dir);
  struct dirent *de;
  trb_err rc = TRB_OK;
  while ((de = readdir(d)) && !rc) {
    if (de->d_name[0] == '.' || !strcmp(de->d_name, "checkpoint.json") ||
        !strcmp(de->d_name, "checkpoint.json.tmp"))
      continue;
    if (!table_get(f, de->d_name, 0)) rc = undo_table(f, de->d_name, "", 0, st);
  }
  closedir(d);
  if (!rc) f->dirty = 0;
  return rc;
}

static trb_err read_checkpoint(file_sink *f, uint64_t *lsn, trb_status *st) {
  char p[4200];
  snprintf(p, sizeof p, "%s/checkpoint.json", f->dir);
  json_error_t je;
  json_t *o = json_load_file(p, 0, &je);
  *lsn = 0;
  f->no_ckpt = 0;
  if (!o) {
    if (access(p, F_OK) < 0 && errno == ENOENT) { /* a new sink, or one started again */
      f->no_ckpt = 1;
      return TRB_OK;
    }
    return trb_status_set(st, TRB_ECORRUPT, "file sink: %s: %s", p, je.text);
  }
  trb_err rc = TRB_ECORRUPT;
  const char *fmt = json_string_value(json_object_get(o, "format"));
  json_t *ver = json_object_get(o, "version");
  const char *l = json_string_value(json_object_get(o, "lsn"));
  json_t *tables = json_object_get(o, "tables");
  if (!fmt || strcmp(fmt, CKPT_FORMAT) || !json_is_integer(ver) || !l || !json_is_object(tables)) {
    trb_status_set(st, rc, "file sink: %s is not a file sink checkpoint", p);
    goto done;
  }
  if (json_integer_value(ver) != CKPT_VERSION) {
    rc = trb_status_set(st, TRB_EVERSION, "file sink: %s has version %lld; this tributary reads "
                        "version %d", p, (long long)json_integer_value(ver), CKPT_VERSION);
    goto done;
  }
  *lsn = strtoull(l, NULL, 10);
  const char *name;
  json_t *v;
  json_object_foreach(tables, name, v) {
    const char *file = json_string_value(json_object_get(v, "file"));
    json_t *size = json_object_get(v, "size");
    fs_table *t = file && json_is_integer(size) ? table_get(f, name, 1) : NULL;
    if (!t) {
      trb_status_set(st, TRB_ECORRUPT, "file sink: %s: bad entry for table %s", p, name);
      goto done;
    }
    snprintf(t->durable_file, sizeof t->durable_file, "%s", file);
    t->durable_size = (uint64_t)json_integer_value(size);
  }
  rc = TRB_OK;
done:
  json_decref(o);
  return rc;
}

static trb_err fs_open(trb_sink *s, uint64_t *checkpoint, trb_status *st) {
  file_sink *f = (file_sink *)s;
  if (mkdir_p(f->dir) < 0) return io_fail(st, "cannot create", f->dir);
  trb_err rc = read_checkpoint(f, checkpoint, st);
  if (!rc) rc = undo_all(f, st);
  f->no_ckpt = 0; /* files from here on are this process's own: undone by removal */
  return rc;
}

static trb_err write_checkpoint(file_sink *f, uint64_t through, trb_status *st) {
  char l[24];
  snprintf(l, sizeof l, "%" PRIu64, through);
  json_t *tables = json_object();
  for (size_t i = 0; i < f->nt; i++)
    if (f->t[i].file[0])
      json_object_set_new(tables, f->t[i].name,
                          json_pack("{s:s,s:I}", "file", f->t[i].file, "size",
                                    (json_int_t)f->t[i].size));
  json_t *o = json_pack("{s:s,s:i,s:s,s:o}", "format", CKPT_FORMAT, "version", CKPT_VERSION,
                        "lsn", l, "tables", tables);
  char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(o);
  if (!txt) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  char p[4200];
  snprintf(p, sizeof p, "%s/checkpoint.json", f->dir);
  int r = trb_sys_write_file_durable(p, txt, strlen(txt));
  free(txt);
  return r < 0 ? io_fail(st, "cannot write", p) : TRB_OK;
}

/* Opens the table's file for appending, starting a new one when there is
 * none, or the current one is full or old. */
static trb_err ensure_file(file_sink *f, fs_table *t, size_t more, int *new_file,
                           trb_status *st) {
  int64_t now = trb_now_us();
  int rotate = !t->file[0] ||
               (t->size > 0 && (t->size + more > f->o.rotate_bytes ||
                                now - t->opened_us >= f->o.rotate_us));
  char p[4800];
  if (rotate) {
    if (t->fd >= 0) close(t->fd);
    t->fd = -1;
    char dpath[4400];
    path_of(f, t->name, NULL, dpath, sizeof dpath);
    if (mkdir_p(dpath) < 0) return io_fail(st, "cannot create", dpath);
    snprintf(t->file, sizeof t->file, "%s.%020" PRIu64 ".jsonl", t->name, t->pending_first);
    t->size = 0;
    t->opened_us = now;
    *new_file = 1;
  }
  if (t->fd < 0) {
    path_of(f, t->name, t->file, p, sizeof p);
    t->fd = trb_sys.open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (t->fd < 0) return io_fail(st, "cannot open", p);
    if (!t->opened_us) t->opened_us = now;
  }
  return TRB_OK;
}

static trb_err fs_deliver(trb_sink *s, const trb_sink_rec *recs, size_t n, uint64_t through,
                          trb_status *st) {
  file_sink *f = (file_sink *)s;
  trb_err rc;
  if (f->dirty && (rc = undo_all(f, st))) return rc;
  f->dirty = 1;
  for (size_t i = 0; i < f->nt; i++) trb_buf_reset(&f->t[i].pending), f->t[i].nlines = 0;
  for (size_t i = 0; i < n; i++) {
    fs_table *t = table_get(f, recs[i].stream->table, 1);
    if (!t) return trb_status_set(st, TRB_ENOMEM, "out of memory");
    if (!recs[i].record) return trb_status_set(st, TRB_EINVAL, "file sink: a record without its text");
    if (t->nlines == t->caplines) {
      size_t nc = t->caplines ? 2 * t->caplines : 64;
      uint64_t *e = realloc(t->line_end, nc * sizeof *e);
      if (e) t->line_end = e;
      uint64_t *l = e ? realloc(t->line_lsn, nc * sizeof *l) : NULL;
      if (!l) return trb_status_set(st, TRB_ENOMEM, "out of memory");
      t->line_lsn = l;
      t->caplines = nc;
    }
    rc = trb_buf_append(&t->pending, recs[i].record, recs[i].record_len);
    if (!rc) rc = trb_buf_put_u8(&t->pending, '\n');
    if (rc) return trb_status_set(st, rc, "out of memory");
    t->line_end[t->nlines] = t->pending.len;
    t->line_lsn[t->nlines++] = recs[i].wal->lsn;
  }
  for (size_t i = 0; i < f->nt; i++) {
    fs_table *t = &f->t[i];
    /* the lines in runs that fill the current file, then new ones */
    for (size_t li = 0; li < t->nlines;) {
      uint64_t from = li ? t->line_end[li - 1] : 0;
      uint64_t room = t->size < f->o.rotate_bytes ? f->o.rotate_bytes - t->size : 0;
      size_t end = li;
      while (end < t->nlines && t->line_end[end] - from <= room) end++;
      if (end == li) /* not one more line fits: a new file, as full as it gets */
        while (end < t->nlines && (end == li || t->line_end[end] - from <= f->o.rotate_bytes))
          end++;
      uint64_t len = t->line_end[end - 1] - from;
      t->pending_first = t->line_lsn[li];
      int new_file = 0;
      if ((rc = ensure_file(f, t, len, &new_file, st))) return rc;
      char p[4800];
      path_of(f, t->name, t->file, p, sizeof p);
      if (trb_sys_pwrite_all(t->fd, t->pending.p + from, len, (off_t)t->size) < 0 ||
          trb_sys.fdatasync(t->fd) < 0)
        return io_fail(st, "cannot write", p);
      t->size += len;
      if (new_file) {
        char dpath[4400];
        path_of(f, t->name, NULL, dpath, sizeof dpath);
        if (trb_sys_fsync_dir(dpath) < 0 || trb_sys_fsync_dir(f->dir) < 0)
          return io_fail(st, "cannot sync", dpath);
      }
      li = end;
    }
  }
  if ((rc = write_checkpoint(f, through, st))) return rc;
  for (size_t i = 0; i < f->nt; i++) {
    snprintf(f->t[i].durable_file, sizeof f->t[i].durable_file, "%s", f->t[i].file);
    f->t[i].durable_size = f->t[i].size;
  }
  f->dirty = 0;
  return TRB_OK;
}

static void fs_destroy(trb_sink *s) {
  file_sink *f = (file_sink *)s;
  if (!f) return;
  for (size_t i = 0; i < f->nt; i++) {
    if (f->t[i].fd >= 0) close(f->t[i].fd);
    trb_buf_fini(&f->t[i].pending);
    free(f->t[i].line_end);
    free(f->t[i].line_lsn);
  }
  free(f->t);
  free(f);
}

static const trb_sink_ops file_ops = {
    .kind = "file", .open = fs_open, .deliver = fs_deliver, .destroy = fs_destroy};

trb_err trb_file_sink_create(const trb_file_sink_opts *o, trb_sink **out, trb_status *st) {
  if (!o->dir || !o->dir[0]) return trb_status_set(st, TRB_EINVAL, "file sink: no directory");
  file_sink *f = calloc(1, sizeof *f);
  if (!f) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  f->base.ops = &file_ops;
  f->base.wants_record = 1;
  f->o = *o;
  if (!f->o.rotate_bytes) f->o.rotate_bytes = 64ull << 20;
  if (f->o.rotate_us <= 0) f->o.rotate_us = 3600ll * 1000000;
  snprintf(f->dir, sizeof f->dir, "%s", o->dir);
  f->o.dir = f->dir;
  *out = &f->base;
  return TRB_OK;
}
