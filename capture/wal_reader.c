/*
 * wal_reader.c -- readers of the WAL: the tailer side of the change stream.
 *
 * A reader walks the segment files by LSN with pread into its own window
 * buffer and never returns a record past the published LSN. When it has
 * caught up it blocks on the WAL's pub_cv, which trb_wal_publish
 * broadcasts; close broadcasts it too and readers leave with TRB_ECLOSED.
 *
 * What the writer changes under a reader's feet, and how it is safe:
 *  - the bytes of the current segment: a reader only parses the record at
 *    next_lsn once next_lsn <= published, and only from a window read after
 *    it saw that published value (publish happens after the pwrite), so it
 *    never parses a half-written record; a window read earlier is re-read;
 *  - the segment list (rollover appends to it): read under the WAL's mu;
 *  - the WAL handle itself at close: every reader inside
 *    trb_wal_reader_next is counted (active_readers) and close waits for
 *    them to leave before it frees anything.
 * A reader opens its own file descriptors, by segment name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/wal.h"
#include "capture/wal_int.h"
#include "util/clock.h"

#define READ_CHUNK ((size_t)256 << 10)
#define TAIL_CHUNK ((size_t)16 << 10)

struct trb_wal_reader {
  trb_wal *w;
  uint64_t seg_first;  /* segment being read; 0 = look it up by next_lsn */
  int fd;              /* its descriptor, -1 until opened */
  uint64_t seg_end;    /* end of its data area */
  uint64_t off;        /* offset of the record with next_lsn */
  uint64_t next_lsn;   /* LSN expected at off */
  uint64_t skip_until; /* records below this are read and dropped */
  trb__wal_win win;
  uint64_t fill_pub;   /* published LSN seen before the window's last read */
  uint64_t fill_reads;
  trb_wal_pos last;    /* the record last returned */
  int seek_pending;    /* open_seg goes to seek_off/seek_lsn instead of the start */
  uint64_t seek_off, seek_lsn;
};

trb_err trb_wal_reader_open(trb_wal *w, uint64_t from_lsn, trb_wal_reader **out,
                            trb_status *st) {
  trb_err rc = TRB_OK;
  trb_wal_reader *r = NULL;
  if (!w || !out) return trb_status_set(st, TRB_EINVAL, "trb_wal_reader_open: NULL argument");
  *out = NULL;
  r = calloc(1, sizeof *r);
  if (!r) return trb_status_set(st, TRB_ENOMEM, "out of memory for a WAL reader");
  r->w = w;
  r->fd = -1;
  trb__wal_win_init(&r->win, -1);
  pthread_mutex_lock(&w->mu);
  if (w->closed) {
    rc = trb_status_set(st, TRB_ECLOSED, "WAL %s is closing", w->dir);
  } else if (from_lsn && w->nsegs && from_lsn < w->segs[0]) {
    rc = trb_status_set(st, TRB_ENOTFOUND,
                        "LSN %llu is no longer in the WAL; the oldest LSN is %llu",
                        (unsigned long long)from_lsn, (unsigned long long)w->segs[0]);
  } else {
    uint64_t start = from_lsn ? from_lsn : 1;
    size_t k = w->nsegs;
    while (k > 0 && w->segs[k - 1] > start) k--;
    if (k > 0) {
      r->seg_first = w->segs[k - 1];
      r->next_lsn = r->seg_first;
    } else {
      r->next_lsn = w->nsegs ? w->segs[0] : start;
    }
    r->skip_until = from_lsn;
  }
  pthread_mutex_unlock(&w->mu);
  if (rc) {
    free(r);
    return rc;
  }
  *out = r;
  return TRB_OK;
}

void trb_wal_reader_close(trb_wal_reader *r) {
  if (!r) return;
  if (r->fd >= 0) close(r->fd);
  trb__wal_win_fini(&r->win);
  free(r);
}

static trb_err corrupt(trb_wal_reader *r, trb_status *st, const char *why) {
  char name[TRB__WAL_NAME_MAX];
  trb__wal_seg_name(name, r->seg_first);
  return trb_status_set(st, TRB_ECORRUPT, "segment %s offset %llu: %s (expected LSN %llu)", name,
                        (unsigned long long)r->off, why, (unsigned long long)r->next_lsn);
}

/* Opens r->seg_first (looking it up by next_lsn first when unknown). */
static trb_err open_seg(trb_wal_reader *r, trb_status *st) {
  trb_wal *w = r->w;
  char name[TRB__WAL_NAME_MAX];
  if (r->seg_first == 0) {
    pthread_mutex_lock(&w->mu);
    size_t k = w->nsegs;
    while (k > 0 && w->segs[k - 1] > r->next_lsn) k--;
    if (k > 0) r->seg_first = w->segs[k - 1];
    pthread_mutex_unlock(&w->mu);
    if (!r->seg_first)
      return trb_status_set(st, TRB_ECORRUPT, "no WAL segment holds LSN %llu",
                            (unsigned long long)r->next_lsn);
  }
  trb__wal_seg_name(name, r->seg_first);
  char *path = trb__wal_seg_path(w->dir, r->seg_first);
  int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
  free(path);
  if (fd < 0)
    return trb_status_set(st, errno == ENOENT ? TRB_ECORRUPT : TRB_EIO,
                          "cannot open segment %s: %s", name, strerror(errno));
  trb__wal_shdr sh;
  trb_status hst;
  trb_status_init(&hst);
  trb_err rc = trb__wal_shdr_read(fd, &sh, &hst);
  if (!rc && sh.first_lsn != r->seg_first) {
    rc = TRB_ECORRUPT;
    snprintf(hst.msg, sizeof hst.msg, "header says first LSN %llu",
             (unsigned long long)sh.first_lsn);
  }
  if (rc) {
    close(fd);
    return trb_status_set(st, rc, "segment %s: %s", name, hst.msg);
  }
  r->fd = fd;
  r->seg_end = sh.seg_size & ~(uint64_t)7;
  r->off = TRB__WAL_SEG_HDR;
  r->next_lsn = r->seg_first;
  if (r->seek_pending) {
    r->off = r->seek_off;
    r->next_lsn = r->seek_lsn;
    r->seek_pending = 0;
  }
  r->win.fd = fd;
  r->win.len = 0;
  return TRB_OK;
}

void trb_wal_reader_pos(const trb_wal_reader *r, trb_wal_pos *out) { *out = r->last; }

trb_err trb_wal_reader_seek(trb_wal_reader *r, const trb_wal_pos *pos, trb_status *st) {
  trb_wal *w = r->w;
  int found = 0;
  pthread_mutex_lock(&w->mu);
  for (size_t k = 0; k < w->nsegs && !found; k++) found = w->segs[k] == pos->seg_first;
  pthread_mutex_unlock(&w->mu);
  if (!found || pos->off < TRB__WAL_SEG_HDR)
    return trb_status_set(st, TRB_ENOTFOUND, "LSN %llu is no longer in the WAL",
                          (unsigned long long)pos->lsn);
  r->skip_until = pos->lsn;
  if (r->fd >= 0 && r->seg_first == pos->seg_first) {
    r->off = pos->off;
    r->next_lsn = pos->lsn;
    return TRB_OK;
  }
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
  r->win.fd = -1;
  r->win.len = 0;
  r->seg_first = pos->seg_first;
  r->seek_pending = 1;
  r->seek_off = pos->off;
  r->seek_lsn = pos->lsn;
  r->next_lsn = pos->lsn;
  return TRB_OK;
}

/* The end of the current segment: the next record must start the next one. */
static trb_err next_seg(trb_wal_reader *r, trb_status *st) {
  trb_wal *w = r->w;
  uint64_t next = 0;
  pthread_mutex_lock(&w->mu);
  /* the segment after this one (this one may have been trimmed away) */
  for (size_t k = 0; k < w->nsegs; k++)
    if (w->segs[k] > r->seg_first) {
      next = w->segs[k];
      break;
    }
  pthread_mutex_unlock(&w->mu);
  if (next != r->next_lsn)
    return corrupt(r, st, "the log ends here but the LSN was published");
  close(r->fd);
  r->fd = -1;
  r->seg_first = next;
  return TRB_OK;
}

/* Window bytes at r->off, re-read when the last read predates next_lsn's
 * publication. */
static ssize_t get(trb_wal_reader *r, size_t n, uint64_t pub, const unsigned char **p) {
  size_t chunk = READ_CHUNK;
  if (r->fill_pub < r->next_lsn) {
    /* stale: a reader that caught up and was woken for a few new records
     * reads a little ahead, not a whole chunk of preallocated zeros */
    r->win.len = 0;
    chunk = TAIL_CHUNK;
  }
  uint64_t before = r->win.reads;
  ssize_t a = trb__wal_win_get(&r->win, r->off, n, chunk, p);
  if (r->win.reads != before) r->fill_pub = pub;
  return a;
}

enum { READ_OK, READ_WAIT, READ_ERR };

/*
 * Reads the next record at or after skip_until, up to `pub`. READ_OK with
 * *rec filled, READ_WAIT when next_lsn is not published yet, READ_ERR with
 * *rc set. Called without the WAL's mu.
 */
static int read_one(trb_wal_reader *r, uint64_t pub, trb_wal_rec *rec, trb_err *rc,
                    trb_status *st) {
  for (;;) {
    if (r->next_lsn > pub) return READ_WAIT;
    if (r->fd < 0) {
      *rc = open_seg(r, st);
      if (*rc) return READ_ERR;
      continue;
    }
    uint64_t room = r->off < r->seg_end ? r->seg_end - r->off : 0;
    const unsigned char *p;
    trb__wal_rhdr h;
    size_t need = TRB__WAL_REC_HDR;
    const char *why = "bad record";
    ssize_t a = get(r, need, pub, &p);
    if (a < 0) {
      *rc = trb_status_set(st, TRB_EIO, "reading the WAL: %s", strerror(errno));
      return READ_ERR;
    }
    int c;
    if ((size_t)a < TRB__WAL_REC_HDR && (uint64_t)a < room) {
      /* The file is shorter than its segment size: missing bytes read as
       * zero (the end), unless a record starts here. */
      unsigned char tmp[TRB__WAL_REC_HDR] = {0};
      memcpy(tmp, p, (size_t)a);
      c = trb__wal_rec_check(tmp, sizeof tmp, room, &h, &need, &why);
      if (c != TRB__WAL_REC_END) {
        c = TRB__WAL_REC_BAD;
        why = "record cut short by the end of the file";
      }
    } else {
      c = trb__wal_rec_check(p, (size_t)a, room, &h, &need, &why);
      if (c == TRB__WAL_REC_NEED) {
        a = get(r, need, pub, &p);
        if (a < 0) {
          *rc = trb_status_set(st, TRB_EIO, "reading the WAL: %s", strerror(errno));
          return READ_ERR;
        }
        c = trb__wal_rec_check(p, (size_t)a, room, &h, &need, &why);
        if (c == TRB__WAL_REC_NEED) {
          c = TRB__WAL_REC_BAD;
          why = "record cut short by the end of the file";
        }
      }
    }
    if (c == TRB__WAL_REC_END) {
      *rc = next_seg(r, st);
      if (*rc) return READ_ERR;
      continue;
    }
    if (c == TRB__WAL_REC_OK && h.lsn != r->next_lsn) {
      c = TRB__WAL_REC_BAD;
      why = "LSN out of sequence";
    }
    if (c != TRB__WAL_REC_OK) {
      *rc = corrupt(r, st, why);
      return READ_ERR;
    }
    r->last.lsn = h.lsn;
    r->last.seg_first = r->seg_first;
    r->last.off = r->off;
    r->off += need;
    r->next_lsn++;
    if (h.lsn < r->skip_until) continue;
    trb__wal_rec_view(&h, p, rec);
    return READ_OK;
  }
}

trb_err trb_wal_reader_next(trb_wal_reader *r, trb_wal_rec *rec, int timeout_ms,
                            trb_status *st) {
  if (!r || !rec) return trb_status_set(st, TRB_EINVAL, "trb_wal_reader_next: NULL argument");
  trb_wal *w = r->w;
  trb_err rc = TRB_OK;
  struct timespec deadline;
  if (timeout_ms > 0) deadline = trb_deadline_ms(timeout_ms);
  pthread_mutex_lock(&w->mu);
  if (w->closed) {
    pthread_mutex_unlock(&w->mu);
    return trb_status_set(st, TRB_ECLOSED, "WAL is closing");
  }
  w->active_readers++;
  for (;;) {
    while (!w->closed && w->published < r->next_lsn) {
      if (timeout_ms == 0) {
        rc = trb_status_set(st, TRB_ETIMEDOUT, "no record after LSN %llu yet",
                            (unsigned long long)(r->next_lsn - 1));
        goto out;
      }
      if (timeout_ms < 0) {
        pthread_cond_wait(&w->pub_cv, &w->mu);
      } else if (pthread_cond_timedwait(&w->pub_cv, &w->mu, &deadline) == ETIMEDOUT &&
                 !w->closed && w->published < r->next_lsn) {
        rc = trb_status_set(st, TRB_ETIMEDOUT, "no record after LSN %llu within %d ms",
                            (unsigned long long)(r->next_lsn - 1), timeout_ms);
        goto out;
      }
    }
    if (w->closed) {
      rc = trb_status_set(st, TRB_ECLOSED, "WAL is closing");
      goto out;
    }
    uint64_t pub = w->published;
    pthread_mutex_unlock(&w->mu);
    int res = read_one(r, pub, rec, &rc, st);
    pthread_mutex_lock(&w->mu);
    if (res == READ_OK || res == READ_ERR) break;
    /* READ_WAIT: skipped up to the published end; wait for more. */
  }
out:
  w->active_readers--;
  if (w->closed && w->active_readers == 0) pthread_cond_broadcast(&w->idle_cv);
  pthread_mutex_unlock(&w->mu);
  return rc;
}
