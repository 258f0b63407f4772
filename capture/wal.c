/*
 * wal.c -- the write-ahead log: its on-disk format, the segment files, the
 * writer (append, group commit, sticky failure) and open/recovery. The
 * read-only scan that recovery and trb_wal_verify share is in wal_scan.c,
 * readers are in wal_reader.c, and what they share is in wal_int.h. The
 * contract is capture/wal.h.
 *
 * DIRECTORY
 *
 *   <dir>/wal-<first LSN, 16 lower-case hex digits>.seg   segment files
 *   <dir>/wal-prep.tmp   a preallocated segment not yet in use; stale ones
 *                        are removed at open
 *
 * Segments hold consecutive LSN ranges: segment k+1 starts at the LSN after
 * the last record of segment k. A segment is created full size before any
 * record goes in (fallocate to reserve the space, then zeros written over
 * it, see prealloc(); then fsync), then gets its header (pwrite + fdatasync), then its name (rename
 * from wal-prep.tmp + fsync of the directory). So an fdatasync after an
 * append never needs a metadata update, and a segment only has a name once
 * its header is durable. The previous segment is fdatasync'ed before the
 * next one is named, so a named segment k+1 means segment k is complete.
 *
 * SEGMENT HEADER (64 bytes at offset 0; all integers little-endian)
 *
 *   offset size  field
 *      0     8   magic "TRBWALSG"
 *      8     4   format version, 1
 *     12     4   header size, 64
 *     16     8   segment size in bytes (multiple of 4096, >= 1 MiB)
 *     24     8   first LSN (the same as in the file name)
 *     32     8   creation time, microseconds since the epoch
 *     40    20   reserved, zero
 *     60     4   CRC-32C of bytes 0..59
 *
 * A reader checks the magic, then the version (an unknown version is
 * TRB_EVERSION, never guessed at), then the CRC.
 *
 * RECORD (at offset 64 and after, each at an 8-byte-aligned offset)
 *
 *   offset size  field
 *      0     4   CRC-32C of bytes 4..63 and of the payload (not the padding)
 *      4     4   len: payload bytes = table_len + keys_len + old + new
 *                (an absent image counts 0)
 *      8     8   LSN
 *     16     8   commit_us, signed, microseconds since the epoch
 *     24     8   durable_lsn: every LSN <= this had been fdatasync'ed before
 *                this record was written
 *     32     8   table_id
 *     40     8   txn_id
 *     48     1   kind (trb_wal_kind)
 *     49     1   flags: bit 0 TRB_WAL_F_TTL (a REMOVE made by Time to Live);
 *                other bits 0 (a reader keeps and ignores them)
 *     50     2   table_len
 *     52     4   keys_len
 *     56     4   old_len; 0xFFFFFFFF = absent image
 *     60     4   new_len; 0xFFFFFFFF = absent image
 *     64   len   payload: table name, keys, old image, new image
 *      .     .   zero padding to the next multiple of 8
 *
 * A record is valid when its header is not all zero, len <= 16 MiB and the
 * record ends inside the segment, the four lengths add up to len, the CRC
 * matches, the kind is known, and its LSN is the previous record's plus one
 * (a segment's first record has the segment's first LSN). A record never
 * spans segments.
 *
 * THE END OF THE LOG, AND RECOVERY
 *
 * After the last record of a segment the rest of the file is zero
 * (preallocated). An all-zero header followed by nothing but zeros is the
 * normal end. Anything else that is not a valid record is a bad record at
 * position P, where LSN X was expected. Whether it is a torn tail (records
 * that were never made durable: cut them) or corruption (refuse to open)
 * is decided by the durable_lsn rule: if any valid record anywhere after P
 * (this and later segments, every 8-byte-aligned offset, checked by its
 * CRC) has durable_lsn >= X, then X had been made durable, and a durable
 * record that does not check is corruption. Otherwise nothing after P was
 * ever known durable and the log is cut at P (ftruncate, preallocate again,
 * fsync, remove later segments, fsync the directory). A bad record in a
 * segment that is followed by a segment with a valid header is corruption
 * too: a segment is named only after the one before it was synced. A last
 * segment whose header is bad and which holds no valid record is an
 * unfinished rollover and is removed.
 *
 * WRITER AND SYNC
 *
 * One thread appends. A batch is encoded into one reused buffer and written
 * with one pwrite per segment it touches. Commit fdatasyncs the current
 * segment (always, or at most every sync_interval_ms with a background
 * flusher doing the rest). A small aux thread also preallocates the next
 * segment when the current one is 3/4 full, off the commit path.
 *
 * Any failed write, sync, truncate, allocate or rename fails the WAL for
 * good (sticky; an fdatasync is never retried and believed), and the writer
 * cuts the log back to the last batch end known durable, so records of a
 * failed batch do not come back after a reopen.
 */
#include "capture/wal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture/wal_int.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/crc32c.h"
#include "util/log.h"
#include "util/sysio.h"

static const unsigned char seg_magic[8] = {'T', 'R', 'B', 'W', 'A', 'L', 'S', 'G'};

#define ALOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ASTORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define AADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)

/* ------------------------------------------------------------------ */
/* Kinds                                                                */

const char *trb_wal_kind_name(int kind) {
  switch (kind) {
#define TRB__WAL_KIND_NAME(name, id, str) case id: return str;
    TRB_WAL_KIND_LIST(TRB__WAL_KIND_NAME)
#undef TRB__WAL_KIND_NAME
  }
  return "?";
}

int trb__wal_kind_known(int kind) {
  switch (kind) {
#define TRB__WAL_KIND_KNOWN(name, id, str) case id: return 1;
    TRB_WAL_KIND_LIST(TRB__WAL_KIND_KNOWN)
#undef TRB__WAL_KIND_KNOWN
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Record format                                                        */

static uint64_t rec_payload(const trb_wal_rec *r) {
  return (uint64_t)r->table_len + r->keys_len + (r->old_img ? r->old_len : 0) +
         (r->new_img ? r->new_len : 0);
}

/* Encodes r at p (room for pad8(64 + payload) bytes); returns bytes used. */
static size_t rec_encode(unsigned char *p, const trb_wal_rec *r, uint64_t durable) {
  size_t len = (size_t)rec_payload(r);
  size_t total = TRB__WAL_REC_HDR + len, padded = (size_t)trb__wal_pad8(total);
  trb_put_u32(p + 4, (uint32_t)len);
  trb_put_u64(p + 8, r->lsn);
  trb_put_u64(p + 16, (uint64_t)r->commit_us);
  trb_put_u64(p + 24, durable);
  trb_put_u64(p + 32, r->table_id);
  trb_put_u64(p + 40, r->txn_id);
  p[48] = r->kind;
  p[49] = r->flags;
  trb_put_u16(p + 50, (uint16_t)r->table_len);
  trb_put_u32(p + 52, (uint32_t)r->keys_len);
  trb_put_u32(p + 56, r->old_img ? (uint32_t)r->old_len : TRB__WAL_ABSENT);
  trb_put_u32(p + 60, r->new_img ? (uint32_t)r->new_len : TRB__WAL_ABSENT);
  unsigned char *q = p + TRB__WAL_REC_HDR;
  if (r->table_len) memcpy(q, r->table, r->table_len);
  q += r->table_len;
  if (r->keys_len) memcpy(q, r->keys, r->keys_len);
  q += r->keys_len;
  if (r->old_img && r->old_len) memcpy(q, r->old_img, r->old_len);
  q += r->old_img ? r->old_len : 0;
  if (r->new_img && r->new_len) memcpy(q, r->new_img, r->new_len);
  if (padded > total) memset(p + total, 0, padded - total);
  trb_put_u32(p, trb_crc32c(0, p + 4, total - 4));
  return padded;
}

void trb__wal_rhdr_decode(const unsigned char *p, trb__wal_rhdr *h) {
  h->crc = trb_get_u32(p);
  h->len = trb_get_u32(p + 4);
  h->lsn = trb_get_u64(p + 8);
  h->commit_us = (int64_t)trb_get_u64(p + 16);
  h->durable_lsn = trb_get_u64(p + 24);
  h->table_id = trb_get_u64(p + 32);
  h->txn_id = trb_get_u64(p + 40);
  h->kind = p[48];
  h->flags = p[49];
  h->table_len = trb_get_u16(p + 50);
  h->keys_len = trb_get_u32(p + 52);
  h->old_len = trb_get_u32(p + 56);
  h->new_len = trb_get_u32(p + 60);
}

int trb__wal_all_zero(const unsigned char *p, size_t n) {
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    if (v) return 0;
    p += 8;
    n -= 8;
  }
  while (n--)
    if (*p++) return 0;
  return 1;
}

uint64_t trb__wal_rhdr_sum(const trb__wal_rhdr *h) {
  return (uint64_t)h->table_len + h->keys_len +
         (h->old_len == TRB__WAL_ABSENT ? 0 : h->old_len) +
         (h->new_len == TRB__WAL_ABSENT ? 0 : h->new_len);
}

int trb__wal_rec_check(const unsigned char *p, size_t avail, uint64_t room,
                       trb__wal_rhdr *h, size_t *need, const char **why) {
  if (room < TRB__WAL_REC_HDR) {
    /* A tail too small for any record: must be zero. */
    if (avail < room) {
      *need = (size_t)room;
      return TRB__WAL_REC_NEED;
    }
    if (trb__wal_all_zero(p, (size_t)room)) return TRB__WAL_REC_END;
    *why = "bytes after the last record that cannot be a record";
    return TRB__WAL_REC_BAD;
  }
  if (avail < TRB__WAL_REC_HDR) {
    *need = TRB__WAL_REC_HDR;
    return TRB__WAL_REC_NEED;
  }
  if (trb__wal_all_zero(p, TRB__WAL_REC_HDR)) return TRB__WAL_REC_END;
  trb__wal_rhdr_decode(p, h);
  if (h->len > TRB__WAL_MAX_PAYLOAD || TRB__WAL_REC_HDR + (uint64_t)h->len > room) {
    *why = "bad length";
    return TRB__WAL_REC_BAD;
  }
  if (trb__wal_rhdr_sum(h) != h->len) {
    *why = "bad length (field lengths disagree)";
    return TRB__WAL_REC_BAD;
  }
  size_t total = TRB__WAL_REC_HDR + (size_t)h->len;
  if (avail < total) {
    *need = total;
    return TRB__WAL_REC_NEED;
  }
  if (trb_crc32c(0, p + 4, total - 4) != h->crc) {
    *why = "CRC mismatch";
    return TRB__WAL_REC_BAD;
  }
  if (!trb__wal_kind_known(h->kind)) {
    *why = "unknown record kind";
    return TRB__WAL_REC_BAD;
  }
  if (h->lsn == 0) {
    *why = "LSN 0";
    return TRB__WAL_REC_BAD;
  }
  *need = (size_t)trb__wal_pad8(total);
  return TRB__WAL_REC_OK;
}

void trb__wal_rec_view(const trb__wal_rhdr *h, const unsigned char *p,
                       trb_wal_rec *out) {
  const unsigned char *q = p + TRB__WAL_REC_HDR;
  memset(out, 0, sizeof *out);
  out->lsn = h->lsn;
  out->commit_us = h->commit_us;
  out->kind = h->kind;
  out->flags = h->flags;
  out->table_id = h->table_id;
  out->txn_id = h->txn_id;
  out->table = (const char *)q;
  out->table_len = h->table_len;
  q += h->table_len;
  out->keys = q;
  out->keys_len = h->keys_len;
  q += h->keys_len;
  if (h->old_len != TRB__WAL_ABSENT) {
    out->old_img = q;
    out->old_len = h->old_len;
    q += h->old_len;
  }
  if (h->new_len != TRB__WAL_ABSENT) {
    out->new_img = q;
    out->new_len = h->new_len;
  }
}

/* ------------------------------------------------------------------ */
/* Segment header, names, read window                                   */

void trb__wal_seg_name(char out[TRB__WAL_NAME_MAX], uint64_t first_lsn) {
  snprintf(out, TRB__WAL_NAME_MAX, "wal-%016llx.seg", (unsigned long long)first_lsn);
}

char *trb__wal_seg_path(const char *dir, uint64_t first_lsn) {
  char name[TRB__WAL_NAME_MAX];
  char *path = NULL;
  trb__wal_seg_name(name, first_lsn);
  if (asprintf(&path, "%s/%s", dir, name) < 0) return NULL;
  return path;
}

char *trb__wal_dir_path(const char *dir, const char *name) {
  char *path = NULL;
  if (asprintf(&path, "%s/%s", dir, name) < 0) return NULL;
  return path;
}

static void shdr_encode(unsigned char *b, uint64_t seg_size, uint64_t first_lsn) {
  memset(b, 0, TRB__WAL_SEG_HDR);
  memcpy(b, seg_magic, 8);
  trb_put_u32(b + 8, TRB__WAL_VERSION);
  trb_put_u32(b + 12, TRB__WAL_SEG_HDR);
  trb_put_u64(b + 16, seg_size);
  trb_put_u64(b + 24, first_lsn);
  trb_put_u64(b + 32, (uint64_t)trb_now_us());
  trb_put_u32(b + 60, trb_crc32c(0, b, 60));
}

static ssize_t pread_full(int fd, void *buf, size_t n, uint64_t off) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  return (ssize_t)got;
}

trb_err trb__wal_shdr_read(int fd, trb__wal_shdr *h, trb_status *st) {
  unsigned char b[TRB__WAL_SEG_HDR];
  ssize_t r = pread_full(fd, b, sizeof b, 0);
  if (r < 0)
    return trb_status_set(st, TRB_EIO, "cannot read the segment header: %s",
                          strerror(errno));
  if ((size_t)r < sizeof b)
    return trb_status_set(st, TRB_ECORRUPT, "segment header is short (%zd bytes)", r);
  if (memcmp(b, seg_magic, 8) != 0)
    return trb_status_set(st, TRB_ECORRUPT, "bad segment magic");
  h->version = trb_get_u32(b + 8);
  if (h->version != TRB__WAL_VERSION)
    return trb_status_set(st, TRB_EVERSION,
                          "segment format version %u; this build reads version %u",
                          h->version, TRB__WAL_VERSION);
  if (trb_crc32c(0, b, 60) != trb_get_u32(b + 60))
    return trb_status_set(st, TRB_ECORRUPT, "segment header CRC mismatch");
  h->seg_size = trb_get_u64(b + 16);
  h->first_lsn = trb_get_u64(b + 24);
  h->created_us = (int64_t)trb_get_u64(b + 32);
  if (trb_get_u32(b + 12) != TRB__WAL_SEG_HDR || h->seg_size < TRB__WAL_MIN_SEG ||
      h->seg_size > TRB__WAL_MAX_SEG || h->seg_size % 8 != 0 || h->first_lsn == 0)
    return trb_status_set(st, TRB_ECORRUPT, "segment header fields out of range");
  return TRB_OK;
}

void trb__wal_win_init(trb__wal_win *wn, int fd) {
  memset(wn, 0, sizeof *wn);
  wn->fd = fd;
}

void trb__wal_win_fini(trb__wal_win *wn) {
  free(wn->p);
  wn->p = NULL;
  wn->cap = wn->len = 0;
}

ssize_t trb__wal_win_get(trb__wal_win *wn, uint64_t off, size_t n, size_t chunk,
                         const unsigned char **out) {
  if (wn->p && off >= wn->off && off - wn->off <= wn->len) {
    size_t have = wn->len - (size_t)(off - wn->off);
    if (have >= n) {
      *out = wn->p + (off - wn->off);
      return (ssize_t)have;
    }
  }
  size_t want = n > chunk ? n : chunk;
  if (want > wn->cap) {
    unsigned char *np = realloc(wn->p, want);
    if (!np) {
      errno = ENOMEM;
      return -1;
    }
    wn->p = np;
    wn->cap = want;
  }
  wn->len = 0;
  ssize_t r = pread_full(wn->fd, wn->p, want, off);
  wn->reads++;
  if (r < 0) return -1;
  wn->off = off;
  wn->len = (size_t)r;
  *out = wn->p;
  return r;
}

/* Reserves the range with fallocate (so a full disk fails here, not in
 * the middle of a commit), then writes zeros over it: fallocate leaves
 * "unwritten" extents, and the first fdatasync into each of them would also
 * journal the extent conversion. Written zeros make every later fdatasync a
 * pure data flush (measured on ext4 here: ~8,000 -> ~10,700 fdatasyncs/s
 * for 4 KiB appends), as PostgreSQL's wal_init_zero does. */
static int prealloc(int fd, uint64_t off, uint64_t len) {
  static const unsigned char zeros[65536];
  if (len == 0) return 0;
  if (trb_sys.fallocate(fd, 0, (off_t)off, (off_t)len) != 0 && errno != EOPNOTSUPP &&
      errno != ENOSYS)
    return -1;
  while (len > 0) {
    size_t n = len > sizeof zeros ? sizeof zeros : (size_t)len;
    if (trb_sys_pwrite_all(fd, zeros, n, (off_t)off) < 0) return -1;
    off += n;
    len -= n;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Failure                                                              */

static trb_err wal_fail(trb_wal *w, trb_err code, trb_status *st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static trb_err wal_fail(trb_wal *w, trb_err code, trb_status *st, const char *fmt, ...) {
  char msg[TRB_STATUS_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&w->mu);
  if (!ALOAD(&w->failed)) {
    snprintf(w->fail_msg, sizeof w->fail_msg, "%s", msg);
    ASTORE(&w->failed, (int)code);
  }
  pthread_mutex_unlock(&w->mu);
  trb_log_error("wal", "%s: %s; the WAL refuses appends until it is reopened", w->dir, msg);
  return trb_status_set(st, code, "%s", msg);
}

/* Removes segments after `first` from the in-memory list and returns them
 * (caller frees). Under mu. */
static uint64_t *segs_drop_after(trb_wal *w, uint64_t first, size_t *ndrop) {
  uint64_t *drop = NULL;
  size_t k = 0;
  *ndrop = 0;
  pthread_mutex_lock(&w->mu);
  while (k < w->nsegs && w->segs[k] <= first) k++;
  if (k < w->nsegs) {
    drop = malloc((w->nsegs - k) * sizeof *drop);
    if (drop) {
      memcpy(drop, w->segs + k, (w->nsegs - k) * sizeof *drop);
      *ndrop = w->nsegs - k;
      w->nsegs = k;
    }
  }
  pthread_mutex_unlock(&w->mu);
  return drop;
}

/*
 * After a failure: cut the log back to the last batch end known durable
 * (cut_first, cut_off), so that records of the failed batch (and anything
 * after the last durable point) do not come back after a reopen. Best
 * effort: the WAL stays failed either way. Writer thread (or close).
 */
static void wal_cut(trb_wal *w) {
  if (w->readonly || w->cut_done) return;
  w->cut_done = 1;
  int ok = 1;
  char name[TRB__WAL_NAME_MAX];
  pthread_mutex_lock(&w->io_mu);
  uint64_t first = w->cut_first, off = w->cut_off;
  trb__wal_seg_name(name, first);
  size_t ndrop = 0;
  uint64_t *drop = segs_drop_after(w, first, &ndrop);
  for (size_t k = ndrop; k-- > 0;) {
    char *p = trb__wal_seg_path(w->dir, drop[k]);
    if (!p || (trb_sys.unlink(p) != 0 && errno != ENOENT)) {
      trb_log_error("wal", "cutting after a failure: cannot remove %s: %s", p ? p : "?",
                    strerror(errno));
      ok = 0;
    }
    free(p);
  }
  free(drop);
  if (w->cur_first != first) {
    if (w->fd >= 0) close(w->fd);
    char *p = trb__wal_seg_path(w->dir, first);
    w->fd = p ? trb_sys.open(p, O_RDWR, 0) : -1;
    free(p);
    w->cur_first = first;
    trb__wal_shdr sh;
    if (w->fd >= 0 && trb__wal_shdr_read(w->fd, &sh, NULL) == TRB_OK) w->cur_size = sh.seg_size;
  }
  if (w->fd < 0) {
    ok = 0;
  } else if (trb_sys.ftruncate(w->fd, (off_t)off) != 0 || trb_sys.fsync(w->fd) != 0) {
    trb_log_error("wal", "cutting after a failure: cannot truncate %s to %llu: %s", name,
                  (unsigned long long)off, strerror(errno));
    ok = 0;
  } else if (prealloc(w->fd, off, w->cur_size - off) != 0 || trb_sys.fsync(w->fd) != 0) {
    /* The segment is shorter than its size: recovery extends it again. */
    trb_log_warn("wal", "cutting after a failure: cannot preallocate %s again: %s", name,
                 strerror(errno));
  }
  if (trb_sys_fsync_dir(w->dir) != 0) ok = 0;
  w->off = off;
  pthread_mutex_unlock(&w->io_mu);
  if (ok)
    trb_log_warn("wal", "%s: cut back to segment %s offset %llu (the log ends at LSN %llu)",
                 w->dir, name, (unsigned long long)off, (unsigned long long)w->cut_lsn);
  else
    trb_log_error("wal", "%s: could not cut back to segment %s offset %llu; records after "
                  "the last durable one may reappear after reopen", w->dir, name,
                  (unsigned long long)off);
}

static trb_err check_usable(trb_wal *w, trb_status *st) {
  if (w->readonly) return trb_status_set(st, TRB_EINVAL, "WAL %s is open read-only", w->dir);
  if (ALOAD(&w->failed)) {
    char msg[TRB_STATUS_MSG_MAX];
    wal_cut(w);
    pthread_mutex_lock(&w->mu);
    snprintf(msg, sizeof msg, "%s", w->fail_msg);
    pthread_mutex_unlock(&w->mu);
    return trb_status_set(st, TRB_EFAILED, "WAL %s failed earlier (%s); reopen required",
                          w->dir, msg);
  }
  return TRB_OK;
}

/* ------------------------------------------------------------------ */
/* Segment creation                                                      */

static void segs_add(trb_wal *w, uint64_t first) {
  pthread_mutex_lock(&w->mu);
  if (w->nsegs == w->segs_cap) {
    size_t nc = w->segs_cap ? w->segs_cap * 2 : 16;
    uint64_t *nv = realloc(w->segs, nc * sizeof *nv);
    if (!nv) { /* keeps the old list: readers will not see this segment */
      pthread_mutex_unlock(&w->mu);
      trb_log_error("wal", "out of memory growing the segment list");
      return;
    }
    w->segs = nv;
    w->segs_cap = nc;
  }
  w->segs[w->nsegs++] = first;
  pthread_mutex_unlock(&w->mu);
}

/* Creates wal-prep.tmp, full size and fsync'ed. *fd_out owned by caller. */
static trb_err seg_prepare(trb_wal *w, int *fd_out, trb_status *st) {
  trb_err rc = TRB_OK;
  char *path = trb__wal_dir_path(w->dir, TRB__WAL_PREP_NAME);
  int fd = -1;
  if (!path) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  fd = trb_sys.open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    rc = trb_status_set(st, TRB_EIO, "cannot create %s: %s", path, strerror(errno));
    goto done;
  }
  if (prealloc(fd, 0, w->seg_size) != 0) {
    rc = trb_status_set(st, TRB_EIO, "cannot preallocate %llu bytes for %s: %s",
                        (unsigned long long)w->seg_size, path, strerror(errno));
    goto done;
  }
  if (trb_sys.fsync(fd) != 0) {
    rc = trb_status_set(st, TRB_EIO, "fsync of %s failed: %s", path, strerror(errno));
    goto done;
  }
done:
  if (rc) {
    if (fd >= 0) close(fd);
    trb_sys.unlink(path);
  } else {
    *fd_out = fd;
  }
  free(path);
  return rc;
}

/* Gives the prepared file at fd its header and its name. On failure fd
 * stays the caller's; *renamed says whether the name was given. */
static trb_err seg_install(trb_wal *w, int fd, uint64_t first, int *renamed, trb_status *st) {
  trb_err rc = TRB_OK;
  unsigned char hdr[TRB__WAL_SEG_HDR];
  char name[TRB__WAL_NAME_MAX];
  char *from = trb__wal_dir_path(w->dir, TRB__WAL_PREP_NAME);
  char *to = trb__wal_seg_path(w->dir, first);
  *renamed = 0;
  trb__wal_seg_name(name, first);
  if (!from || !to) {
    rc = trb_status_set(st, TRB_ENOMEM, "out of memory");
    goto done;
  }
  shdr_encode(hdr, w->seg_size, first);
  if (trb_sys_pwrite_all(fd, hdr, sizeof hdr, 0) < 0) {
    rc = trb_status_set(st, TRB_EIO, "segment %s: writing the header failed: %s", name,
                        strerror(errno));
    goto done;
  }
  if (trb_sys.fdatasync(fd) != 0) {
    rc = trb_status_set(st, TRB_EIO, "segment %s: fdatasync of the header failed: %s", name,
                        strerror(errno));
    goto done;
  }
  AADD(&w->st_syncs, 1);
  if (trb_sys.rename(from, to) != 0) {
    rc = trb_status_set(st, TRB_EIO, "segment %s: rename from %s failed: %s", name,
                        TRB__WAL_PREP_NAME, strerror(errno));
    goto done;
  }
  *renamed = 1;
  segs_add(w, first);
  if (trb_sys_fsync_dir(w->dir) != 0) {
    rc = trb_status_set(st, TRB_EIO, "fsync of directory %s failed: %s", w->dir,
                        strerror(errno));
    goto done;
  }
done:
  free(from);
  free(to);
  return rc;
}

/*
 * Ends the current segment and starts one at new_first. The current
 * segment is made durable first, so a named next segment always follows a
 * complete one. Writer thread. Failure is sticky (the caller cuts).
 */
static trb_err wal_rollover(trb_wal *w, uint64_t new_first, trb_status *st) {
  trb_err rc = TRB_OK;
  int fd = -1, renamed = 0;
  char name[TRB__WAL_NAME_MAX];
  trb_status lst;
  trb_status_init(&lst);
  trb__wal_seg_name(name, w->cur_first);

  pthread_mutex_lock(&w->io_mu);
  if (ALOAD(&w->durable_lsn) < w->cur_last_lsn) {
    if (trb_sys.fdatasync(w->fd) != 0) {
      int e = errno;
      pthread_mutex_unlock(&w->io_mu);
      return wal_fail(w, TRB_EIO, st, "segment %s: fdatasync before rollover failed: %s",
                      name, strerror(e));
    }
    AADD(&w->st_syncs, 1);
    ASTORE(&w->last_sync_ns, trb_mono_ns());
  }
  /* Every LSN before new_first is in this segment or an earlier one. */
  if (ALOAD(&w->durable_lsn) < new_first - 1) ASTORE(&w->durable_lsn, new_first - 1);
  /* The last complete batch is durable now: a failure later cuts back to
   * it, not further (the batch in progress is not, and is cut). wr_* is
   * written only by this thread. */
  w->cut_first = w->wr_first;
  w->cut_off = w->wr_off;
  w->cut_lsn = w->wr_lsn;
  pthread_mutex_unlock(&w->io_mu);

  pthread_mutex_lock(&w->mu);
  w->prep_want = 0; /* not started: the writer does it now */
  while (w->prep_busy) pthread_cond_wait(&w->prep_cv, &w->mu);
  fd = w->prep_fd;
  w->prep_fd = -1;
  w->prep_failed = 0;
  pthread_mutex_unlock(&w->mu);

  if (fd < 0) {
    rc = seg_prepare(w, &fd, &lst);
    if (rc) {
      rc = wal_fail(w, TRB_EIO, st, "rollover after segment %s: %s", name, lst.msg);
      goto done;
    }
  }
  rc = seg_install(w, fd, new_first, &renamed, &lst);
  if (rc) {
    rc = wal_fail(w, rc == TRB_ENOMEM ? TRB_ENOMEM : TRB_EIO, st, "rollover: %s", lst.msg);
    goto done;
  }
  pthread_mutex_lock(&w->io_mu);
  if (w->fd >= 0) close(w->fd);
  w->fd = fd;
  fd = -1;
  w->cur_first = new_first;
  w->cur_size = w->seg_size;
  pthread_mutex_unlock(&w->io_mu);
  w->off = TRB__WAL_SEG_HDR;
  w->cur_last_lsn = new_first - 1;
done:
  if (fd >= 0) {
    close(fd);
    if (!renamed) {
      char *p = trb__wal_dir_path(w->dir, TRB__WAL_PREP_NAME);
      if (p) trb_sys.unlink(p);
      free(p);
    }
  }
  return rc;
}

/* ------------------------------------------------------------------ */
/* Sync and the aux thread                                               */

/* fdatasync of everything appended so far. Writer thread. */
static trb_err wal_sync(trb_wal *w, trb_status *st) {
  char name[TRB__WAL_NAME_MAX];
  pthread_mutex_lock(&w->io_mu);
  uint64_t tgt = ALOAD(&w->last_lsn);
  if (ALOAD(&w->durable_lsn) >= tgt) {
    pthread_mutex_unlock(&w->io_mu);
    return TRB_OK;
  }
  if (trb_sys.fdatasync(w->fd) != 0) {
    int e = errno;
    trb__wal_seg_name(name, w->cur_first);
    pthread_mutex_unlock(&w->io_mu);
    trb_err rc = wal_fail(w, TRB_EIO, st, "segment %s: fdatasync failed: %s", name, strerror(e));
    wal_cut(w);
    return rc;
  }
  ASTORE(&w->durable_lsn, tgt);
  w->cut_first = w->cur_first;
  w->cut_off = w->off;
  w->cut_lsn = tgt;
  ASTORE(&w->last_sync_ns, trb_mono_ns());
  AADD(&w->st_syncs, 1);
  pthread_mutex_unlock(&w->io_mu);
  return TRB_OK;
}

/* The interval flusher's sync of the last complete batch. Aux thread. */
static void aux_flush(trb_wal *w) {
  char name[TRB__WAL_NAME_MAX];
  pthread_mutex_lock(&w->io_mu);
  if (ALOAD(&w->failed)) goto done;
  pthread_mutex_lock(&w->mu);
  uint64_t lsn = w->wr_lsn, first = w->wr_first, off = w->wr_off;
  pthread_mutex_unlock(&w->mu);
  if (lsn <= ALOAD(&w->durable_lsn) || first != w->cur_first) goto done;
  if (trb_sys.fdatasync(w->fd) != 0) {
    int e = errno;
    trb__wal_seg_name(name, w->cur_first);
    pthread_mutex_unlock(&w->io_mu);
    wal_fail(w, TRB_EIO, NULL, "segment %s: background fdatasync failed: %s", name, strerror(e));
    return;
  }
  ASTORE(&w->durable_lsn, lsn);
  w->cut_first = first;
  w->cut_off = off;
  w->cut_lsn = lsn;
  ASTORE(&w->last_sync_ns, trb_mono_ns());
  AADD(&w->st_syncs, 1);
done:
  pthread_mutex_unlock(&w->io_mu);
}

/* The aux thread: preallocates the next segment when asked, and in
 * TRB_WAL_SYNC_INTERVAL mode syncs every interval while anything is
 * unsynced. It sleeps on aux_cv; the writer wakes it. */
static void *aux_main(void *arg) {
  trb_wal *w = arg;
  int64_t ival = (int64_t)w->interval_ms * 1000000;
  pthread_mutex_lock(&w->mu);
  while (!w->closed) {
    if (w->prep_want) {
      int fd = -1;
      trb_status lst;
      trb_status_init(&lst);
      w->prep_want = 0;
      w->prep_busy = 1;
      pthread_mutex_unlock(&w->mu);
      trb_err rc = seg_prepare(w, &fd, &lst);
      if (rc) trb_log_warn("wal", "preparing the next segment: %s (will retry at rollover)", lst.msg);
      pthread_mutex_lock(&w->mu);
      w->prep_busy = 0;
      if (rc) w->prep_failed = 1;
      else w->prep_fd = fd;
      pthread_cond_broadcast(&w->prep_cv);
      continue;
    }
    if (w->sync_mode == TRB_WAL_SYNC_INTERVAL && !ALOAD(&w->failed) &&
        w->wr_lsn > ALOAD(&w->durable_lsn)) {
      int64_t due = ALOAD(&w->last_sync_ns) + ival, now = trb_mono_ns();
      if (now >= due) {
        pthread_mutex_unlock(&w->mu);
        aux_flush(w);
        pthread_mutex_lock(&w->mu);
        continue;
      }
      struct timespec ts = {.tv_sec = due / 1000000000, .tv_nsec = due % 1000000000};
      pthread_cond_timedwait(&w->aux_cv, &w->mu, &ts);
      continue;
    }
    w->aux_idle = 1;
    pthread_cond_wait(&w->aux_cv, &w->mu);
    w->aux_idle = 0;
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Append, commit, publish                                              */

static trb_err check_rec(const trb_wal_rec *r, uint64_t cap, size_t i, trb_status *st) {
  if (!trb__wal_kind_known(r->kind))
    return trb_status_set(st, TRB_EINVAL, "record %zu: unknown kind %u", i, r->kind);
  if (r->table_len > 0xFFFF || (r->table_len && !r->table) || (r->keys_len && !r->keys) ||
      (!r->old_img && r->old_len) || (!r->new_img && r->new_len))
    return trb_status_set(st, TRB_EINVAL, "record %zu: bad table, keys or image", i);
  uint64_t len = rec_payload(r);
  if (len > TRB__WAL_MAX_PAYLOAD || trb__wal_pad8(TRB__WAL_REC_HDR + len) > cap)
    return trb_status_set(st, TRB_ELIMIT,
                          "record %zu: %llu bytes is more than a WAL record can hold (%llu)", i,
                          (unsigned long long)len,
                          (unsigned long long)(cap - TRB__WAL_REC_HDR < TRB__WAL_MAX_PAYLOAD
                                                   ? cap - TRB__WAL_REC_HDR
                                                   : TRB__WAL_MAX_PAYLOAD));
  return TRB_OK;
}

trb_err trb_wal_append(trb_wal *w, trb_wal_rec *recs, size_t n, trb_status *st) {
  trb_err rc;
  if (!w) return trb_status_set(st, TRB_EINVAL, "trb_wal_append: NULL WAL");
  rc = check_usable(w, st);
  if (rc) return rc;
  if (n == 0) return TRB_OK;
  if (!recs) return trb_status_set(st, TRB_EINVAL, "trb_wal_append: NULL records");
  uint64_t cap = (w->seg_size < w->cur_size ? w->seg_size : w->cur_size) - TRB__WAL_SEG_HDR;
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++) {
    rc = check_rec(&recs[i], cap, i, st);
    if (rc) return rc;
    total += trb__wal_pad8(TRB__WAL_REC_HDR + rec_payload(&recs[i]));
  }
  int64_t cu = trb_now_us();
  if (cu < w->commit_us) cu = w->commit_us;
  uint64_t first = ALOAD(&w->last_lsn) + 1;
  for (size_t i = 0; i < n; i++) {
    recs[i].lsn = first + i;
    recs[i].commit_us = cu;
  }

  size_t i = 0;
  while (i < n) {
    uint64_t room = w->cur_size - w->off, bytes = 0;
    size_t j = i;
    while (j < n) {
      uint64_t rl = trb__wal_pad8(TRB__WAL_REC_HDR + rec_payload(&recs[j]));
      if (bytes + rl > room) break;
      bytes += rl;
      j++;
    }
    if (j == i) {
      rc = wal_rollover(w, first + i, st);
      if (rc) goto fail;
      continue;
    }
    if (bytes > w->wbuf_cap) {
      size_t nc = w->wbuf_cap ? w->wbuf_cap : 65536;
      while (nc < bytes) nc *= 2;
      unsigned char *nb = realloc(w->wbuf, nc);
      if (!nb) {
        rc = wal_fail(w, TRB_ENOMEM, st, "out of memory for a %llu-byte batch",
                      (unsigned long long)bytes);
        goto fail;
      }
      w->wbuf = nb;
      w->wbuf_cap = nc;
    }
    uint64_t durable = ALOAD(&w->durable_lsn);
    size_t at = 0;
    for (size_t k = i; k < j; k++) at += rec_encode(w->wbuf + at, &recs[k], durable);
    if (trb_sys_pwrite_all(w->fd, w->wbuf, at, (off_t)w->off) < 0) {
      char name[TRB__WAL_NAME_MAX];
      trb__wal_seg_name(name, w->cur_first);
      rc = wal_fail(w, TRB_EIO, st, "segment %s offset %llu: write of %zu bytes failed: %s",
                    name, (unsigned long long)w->off, at, strerror(errno));
      goto fail;
    }
    w->off += at;
    w->cur_last_lsn = first + j - 1;
    i = j;
  }
  ASTORE(&w->last_lsn, first + n - 1);
  w->commit_us = cu;
  AADD(&w->st_appends, 1);
  AADD(&w->st_records, n);
  AADD(&w->st_bytes, total);

  pthread_mutex_lock(&w->mu);
  w->wr_first = w->cur_first;
  w->wr_off = w->off;
  w->wr_lsn = first + n - 1;
  int wake = 0;
  if (w->off > w->cur_size / 4 * 3 && w->prep_fd < 0 && !w->prep_busy && !w->prep_want &&
      !w->prep_failed) {
    w->prep_want = 1;
    wake = 1;
  }
  if (w->sync_mode == TRB_WAL_SYNC_INTERVAL && w->aux_idle) wake = 1;
  if (wake) pthread_cond_signal(&w->aux_cv);
  pthread_mutex_unlock(&w->mu);
  return TRB_OK;
fail:
  wal_cut(w);
  return rc;
}

trb_err trb_wal_commit(trb_wal *w, trb_status *st) {
  if (!w) return trb_status_set(st, TRB_EINVAL, "trb_wal_commit: NULL WAL");
  trb_err rc = check_usable(w, st);
  if (rc) return rc;
  if (ALOAD(&w->durable_lsn) >= ALOAD(&w->last_lsn)) return TRB_OK;
  if (w->sync_mode == TRB_WAL_SYNC_INTERVAL &&
      trb_mono_ns() - ALOAD(&w->last_sync_ns) < (int64_t)w->interval_ms * 1000000)
    return TRB_OK; /* the flusher will get to it */
  return wal_sync(w, st);
}

void trb_wal_publish(trb_wal *w, uint64_t lsn) {
  if (!w) return;
  uint64_t last = ALOAD(&w->last_lsn);
  if (lsn > last) lsn = last;
  pthread_mutex_lock(&w->mu);
  if (lsn > w->published) {
    w->published = lsn;
    pthread_cond_broadcast(&w->pub_cv);
  }
  pthread_mutex_unlock(&w->mu);
}

trb_err trb_wal_failed(const trb_wal *w) {
  return w ? (trb_err)ALOAD(&w->failed) : TRB_EINVAL;
}

uint64_t trb_wal_last_lsn(const trb_wal *w) { return w ? ALOAD(&w->last_lsn) : 0; }

uint64_t trb_wal_first_lsn(const trb_wal *w) {
  if (!w) return 0;
  trb_wal *mw = (trb_wal *)w; /* the lock is not part of the value */
  uint64_t first = 0, last = ALOAD(&w->last_lsn);
  pthread_mutex_lock(&mw->mu);
  if (mw->nsegs && last >= mw->segs[0]) first = mw->segs[0];
  pthread_mutex_unlock(&mw->mu);
  return first;
}

uint64_t trb_wal_published_lsn(trb_wal *w) {
  pthread_mutex_lock(&w->mu);
  uint64_t v = w->published;
  pthread_mutex_unlock(&w->mu);
  return v;
}

trb_err trb_wal_segments(trb_wal *w, trb_wal_seg_info **out, size_t *n, trb_status *st) {
  pthread_mutex_lock(&w->mu);
  size_t k = w->nsegs;
  trb_wal_seg_info *v = calloc(k ? k : 1, sizeof *v);
  for (size_t i = 0; v && i < k; i++) {
    v[i].first_lsn = w->segs[i];
    v[i].current = i + 1 == k;
    v[i].bytes = v[i].current && w->wr_first == w->segs[i] ? w->wr_off : w->seg_size;
  }
  pthread_mutex_unlock(&w->mu);
  if (!v) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  *out = v;
  *n = k;
  return TRB_OK;
}

trb_err trb_wal_trim(trb_wal *w, uint64_t keep_from, size_t *removed, trb_status *st) {
  if (removed) *removed = 0;
  if (w->readonly) return trb_status_set(st, TRB_EINVAL, "the WAL is open read-only");
  pthread_mutex_lock(&w->mu);
  size_t k = 0;
  /* segment i ends just before segs[i+1] */
  while (k + 1 < w->nsegs && w->segs[k + 1] <= keep_from) k++;
  uint64_t *gone = k ? malloc(k * sizeof *gone) : NULL;
  if (k && !gone) {
    pthread_mutex_unlock(&w->mu);
    return trb_status_set(st, TRB_ENOMEM, "out of memory");
  }
  if (k) {
    memcpy(gone, w->segs, k * sizeof *gone);
    memmove(w->segs, w->segs + k, (w->nsegs - k) * sizeof *w->segs);
    w->nsegs -= k;
  }
  pthread_mutex_unlock(&w->mu);
  trb_err rc = TRB_OK;
  for (size_t i = 0; i < k && !rc; i++) {
    char *p = trb__wal_seg_path(w->dir, gone[i]);
    if (!p || (trb_sys.unlink(p) < 0 && errno != ENOENT))
      rc = trb_status_set(st, TRB_EIO, "cannot remove WAL segment %s: %s", p ? p : "?",
                          strerror(errno));
    free(p);
  }
  if (!rc && k && trb_sys_fsync_dir(w->dir) != 0)
    rc = trb_status_set(st, TRB_EIO, "cannot sync the WAL directory %s: %s", w->dir,
                        strerror(errno));
  if (!rc && removed) *removed = k;
  free(gone);
  return rc;
}

void trb_wal_get_stats(const trb_wal *w, trb_wal_stats *out) {
  memset(out, 0, sizeof *out);
  if (!w) return;
  trb_wal *mw = (trb_wal *)w;
  out->appends = ALOAD(&w->st_appends);
  out->records = ALOAD(&w->st_records);
  out->bytes = ALOAD(&w->st_bytes);
  out->syncs = ALOAD(&w->st_syncs);
  pthread_mutex_lock(&mw->mu);
  out->segments = mw->nsegs;
  pthread_mutex_unlock(&mw->mu);
}

/* ------------------------------------------------------------------ */
/* Open and close                                                        */

static trb_wal *wal_alloc(void) {
  trb_wal *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&w->mu, NULL);
  pthread_mutex_init(&w->io_mu, NULL);
  pthread_cond_init(&w->pub_cv, &ca);
  pthread_cond_init(&w->idle_cv, &ca);
  pthread_cond_init(&w->aux_cv, &ca);
  pthread_cond_init(&w->prep_cv, &ca);
  pthread_condattr_destroy(&ca);
  w->fd = -1;
  w->prep_fd = -1;
  w->dir_lock_fd = -1;
  return w;
}

static void wal_free(trb_wal *w) {
  if (w->fd >= 0) close(w->fd);
  if (w->prep_fd >= 0) {
    close(w->prep_fd);
    char *p = trb__wal_dir_path(w->dir, TRB__WAL_PREP_NAME);
    if (p) trb_sys.unlink(p);
    free(p);
  }
  if (w->dir_lock_fd >= 0) close(w->dir_lock_fd);
  pthread_mutex_destroy(&w->mu);
  pthread_mutex_destroy(&w->io_mu);
  pthread_cond_destroy(&w->pub_cv);
  pthread_cond_destroy(&w->idle_cv);
  pthread_cond_destroy(&w->aux_cv);
  pthread_cond_destroy(&w->prep_cv);
  free(w->segs);
  free(w->wbuf);
  free(w->dir);
  free(w);
}

/* Creates dir and any missing parents; each new name is made durable by an
 * fsync of its parent. */
static trb_err make_dir(const char *dir, trb_status *st) {
  struct stat sb;
  trb_err rc = TRB_OK;
  if (stat(dir, &sb) == 0) {
    if (S_ISDIR(sb.st_mode)) return TRB_OK;
    return trb_status_set(st, TRB_EINVAL, "WAL directory %s is not a directory", dir);
  }
  char *copy = strdup(dir);
  if (!copy) return trb_status_set(st, TRB_ENOMEM, "out of memory");
  char *parent = dirname(copy);
  if (strcmp(parent, dir) != 0 && strcmp(parent, ".") != 0 && strcmp(parent, "/") != 0) {
    rc = make_dir(parent, st);
    if (rc) goto done;
  }
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    rc = trb_status_set(st, TRB_EIO, "cannot create WAL directory %s: %s", dir, strerror(errno));
    goto done;
  }
  trb_sys_fsync_dir(parent);
done:
  free(copy);
  return rc;
}

/* Makes the log end at sc's end: removes later segments (newest first, so
 * a crash in between leaves a prefix), cuts the end segment and
 * preallocates it again. */
static trb_err repair_tail(trb_wal *w, uint64_t *segs, size_t *nsegs, const trb__wal_scan *sc,
                           trb_status *st) {
  trb_err rc = TRB_OK;
  char name[TRB__WAL_NAME_MAX];
  int fd = -1;
  size_t keep = sc->torn_rollover ? sc->bad_seg : sc->end_seg + 1;
  for (size_t k = *nsegs; k-- > keep;) {
    char *p = trb__wal_seg_path(w->dir, segs[k]);
    trb__wal_seg_name(name, segs[k]);
    if (!p || trb_sys.unlink(p) != 0) {
      rc = trb_status_set(st, TRB_EIO, "cutting a torn tail: cannot remove %s: %s", name,
                          strerror(errno));
      free(p);
      goto done;
    }
    free(p);
    *nsegs = k;
  }
  if (!sc->torn_rollover) {
    trb__wal_shdr sh;
    char *p = trb__wal_seg_path(w->dir, segs[sc->end_seg]);
    trb__wal_seg_name(name, segs[sc->end_seg]);
    fd = p ? trb_sys.open(p, O_RDWR, 0) : -1;
    free(p);
    if (fd < 0 || trb__wal_shdr_read(fd, &sh, st) != TRB_OK) {
      rc = trb_status_set(st, TRB_EIO, "cutting a torn tail: cannot open %s", name);
      goto done;
    }
    if (trb_sys.ftruncate(fd, (off_t)sc->end_off) != 0 || trb_sys.fsync(fd) != 0 ||
        prealloc(fd, sc->end_off, sh.seg_size - sc->end_off) != 0 || trb_sys.fsync(fd) != 0) {
      rc = trb_status_set(st, TRB_EIO, "cutting a torn tail in %s at offset %llu: %s", name,
                          (unsigned long long)sc->end_off, strerror(errno));
      goto done;
    }
  }
  if (trb_sys_fsync_dir(w->dir) != 0) {
    rc = trb_status_set(st, TRB_EIO, "fsync of %s failed: %s", w->dir, strerror(errno));
    goto done;
  }
done:
  if (fd >= 0) close(fd);
  return rc;
}

/* Opens the last segment for appends at `off`, extends it to its full size
 * if an earlier cut left it short, and makes what recovery accepted durable
 * (so that later durable_lsn fields tell the truth). */
static trb_err open_current(trb_wal *w, uint64_t first, uint64_t off, trb_status *st) {
  char name[TRB__WAL_NAME_MAX];
  trb__wal_seg_name(name, first);
  char *p = trb__wal_seg_path(w->dir, first);
  struct stat sb;
  trb__wal_shdr sh;
  trb_status hst;
  w->fd = p ? trb_sys.open(p, O_RDWR, 0) : -1;
  free(p);
  if (w->fd < 0)
    return trb_status_set(st, TRB_EIO, "cannot open segment %s for writing: %s", name,
                          strerror(errno));
  if (trb__wal_shdr_read(w->fd, &sh, &hst) != TRB_OK || fstat(w->fd, &sb) != 0)
    return trb_status_set(st, TRB_EIO, "segment %s: %s", name, hst.msg);
  if ((uint64_t)sb.st_size < sh.seg_size) {
    if (prealloc(w->fd, (uint64_t)sb.st_size, sh.seg_size - (uint64_t)sb.st_size) != 0 ||
        trb_sys.fsync(w->fd) != 0)
      return trb_status_set(st, TRB_EIO, "segment %s: cannot preallocate: %s", name,
                            strerror(errno));
  }
  if (trb_sys.fdatasync(w->fd) != 0)
    return trb_status_set(st, TRB_EIO, "segment %s: fdatasync failed: %s", name, strerror(errno));
  w->cur_first = first;
  w->cur_size = sh.seg_size;
  w->off = off;
  return TRB_OK;
}

trb_err trb_wal_open(const trb_wal_opts *opts, trb_wal **out, trb_status *st) {
  trb_err rc = TRB_OK;
  trb_wal *w = NULL;
  uint64_t *segs = NULL;
  size_t nsegs = 0;
  trb__wal_scan sc;
  memset(&sc, 0, sizeof sc);
  if (!opts || !opts->dir || !opts->dir[0] || !out)
    return trb_status_set(st, TRB_EINVAL, "trb_wal_open: missing options or directory");
  *out = NULL;
  uint64_t seg_size = opts->segment_size ? opts->segment_size : TRB__WAL_DEF_SEG;
  if (seg_size < TRB__WAL_MIN_SEG || seg_size > TRB__WAL_MAX_SEG)
    return trb_status_set(st, TRB_EINVAL, "WAL segment size %llu out of range [%llu, %llu]",
                          (unsigned long long)seg_size, (unsigned long long)TRB__WAL_MIN_SEG,
                          (unsigned long long)TRB__WAL_MAX_SEG);
  seg_size = (seg_size + 4095) & ~(uint64_t)4095;
  if (opts->sync_mode != TRB_WAL_SYNC_ALWAYS && opts->sync_mode != TRB_WAL_SYNC_INTERVAL)
    return trb_status_set(st, TRB_EINVAL, "unknown WAL sync mode %d", (int)opts->sync_mode);
  if (!opts->readonly) {
    rc = make_dir(opts->dir, st);
    if (rc) return rc;
  }
  w = wal_alloc();
  if (!w || !(w->dir = strdup(opts->dir))) {
    rc = trb_status_set(st, TRB_ENOMEM, "out of memory opening the WAL");
    goto done;
  }
  w->seg_size = seg_size;
  w->sync_mode = opts->sync_mode;
  w->interval_ms = opts->sync_interval_ms ? opts->sync_interval_ms : 10;
  w->readonly = opts->readonly != 0;
  if (!w->readonly) {
    w->dir_lock_fd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dir_lock_fd < 0) {
      rc = trb_status_set(st, TRB_EIO, "cannot open WAL directory %s: %s", w->dir, strerror(errno));
      goto done;
    }
    if (flock(w->dir_lock_fd, LOCK_EX | LOCK_NB) != 0) {
      rc = trb_status_set(st, TRB_EINUSE, "WAL directory %s is in use by another writer", w->dir);
      goto done;
    }
  }
  rc = trb__wal_list_segs(w->dir, !w->readonly, &segs, &nsegs, st);
  if (rc) goto done;

  if (nsegs) {
    rc = trb__wal_scan_log(w->dir, segs, nsegs, &sc, st);
    if (rc) goto done;
    if (sc.state == TRB__WAL_SCAN_CORRUPT) {
      rc = trb__wal_corrupt_status(st, segs, &sc);
      goto done;
    }
    if (sc.state == TRB__WAL_SCAN_TORN) {
      char name[TRB__WAL_NAME_MAX];
      trb__wal_seg_name(name, segs[sc.bad_seg]);
      if (!w->readonly) {
        rc = repair_tail(w, segs, &nsegs, &sc, st);
        if (rc) goto done;
        trb_log_warn("wal", "%s: torn tail at segment %s offset %llu (%s, expected LSN %llu) "
                     "cut; the log ends at LSN %llu", w->dir, name,
                     (unsigned long long)sc.bad_off, sc.reason,
                     (unsigned long long)sc.bad_lsn, (unsigned long long)(sc.next_lsn - 1));
      }
    }
  }
  w->segs = segs;
  w->nsegs = w->segs_cap = nsegs;
  segs = NULL;
  uint64_t next = nsegs || sc.torn_rollover ? sc.next_lsn : 1;
  ASTORE(&w->last_lsn, next - 1);
  ASTORE(&w->durable_lsn, next - 1);
  w->published = next - 1;
  w->commit_us = sc.last_commit_us;
  ASTORE(&w->last_sync_ns, trb_mono_ns());

  if (!w->readonly) {
    if (w->nsegs == 0) { /* a new log, or its only segment was a torn rollover */
      int fd = -1, renamed = 0;
      trb_status lst;
      trb_status_init(&lst);
      rc = seg_prepare(w, &fd, &lst);
      if (!rc) rc = seg_install(w, fd, next, &renamed, &lst);
      if (fd >= 0) close(fd);
      if (rc) {
        rc = trb_status_set(st, rc, "creating the first segment: %s", lst.msg);
        goto done;
      }
      rc = open_current(w, next, TRB__WAL_SEG_HDR, st);
    } else {
      uint64_t first = w->segs[w->nsegs - 1];
      uint64_t off = sc.have_end && sc.end_seg == w->nsegs - 1 ? sc.end_off : TRB__WAL_SEG_HDR;
      rc = open_current(w, first, off, st);
    }
    if (rc) goto done;
    w->cur_last_lsn = next - 1;
    w->cut_first = w->wr_first = w->cur_first;
    w->cut_off = w->wr_off = w->off;
    w->wr_lsn = w->cut_lsn = next - 1;
    if (pthread_create(&w->aux, NULL, aux_main, w) != 0) {
      rc = trb_status_set(st, TRB_ENOMEM, "cannot start the WAL aux thread");
      goto done;
    }
    w->aux_started = 1;
  }
  *out = w;
  w = NULL;
done:
  free(segs);
  if (w) wal_free(w);
  return rc;
}

void trb_wal_close(trb_wal *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->closed = 1;
  pthread_cond_broadcast(&w->pub_cv);
  pthread_cond_broadcast(&w->aux_cv);
  while (w->active_readers > 0) pthread_cond_wait(&w->idle_cv, &w->mu);
  pthread_mutex_unlock(&w->mu);
  if (w->aux_started) pthread_join(w->aux, NULL);
  if (!w->readonly && w->fd >= 0) {
    if (ALOAD(&w->failed)) {
      wal_cut(w);
    } else if (ALOAD(&w->durable_lsn) < ALOAD(&w->last_lsn)) {
      trb_status st;
      trb_status_init(&st);
      if (wal_sync(w, &st) != TRB_OK)
        trb_log_error("wal", "%s: final sync at close failed: %s", w->dir, st.msg);
    }
  }
  wal_free(w);
}
