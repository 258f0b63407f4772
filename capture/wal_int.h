/*
 * wal_int.h -- internals shared by capture/wal.c (format, segments, writer,
 * recovery), capture/wal_scan.c (the read-only scan behind recovery and
 * verify) and capture/wal_reader.c (readers). Not a public API: the byte
 * layouts are documented at the top of capture/wal.c.
 */
#ifndef TRB_WAL_INT_H
#define TRB_WAL_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "capture/wal.h"
#include "util/trb_err.h"

#define TRB__WAL_SEG_HDR 64u            /* segment header bytes */
#define TRB__WAL_REC_HDR 64u            /* record header bytes */
#define TRB__WAL_VERSION 1u             /* the only version this build reads */
#define TRB__WAL_MAX_PAYLOAD (16u << 20) /* checked before allocating */
#define TRB__WAL_ABSENT 0xFFFFFFFFu     /* old_len/new_len of an absent image */
#define TRB__WAL_MIN_SEG ((uint64_t)1 << 20)
#define TRB__WAL_DEF_SEG ((uint64_t)64 << 20)
#define TRB__WAL_MAX_SEG ((uint64_t)1 << 40)
#define TRB__WAL_NAME_MAX 32            /* "wal-%016llx.seg" + NUL fits */
#define TRB__WAL_PREP_NAME "wal-prep.tmp" /* a preallocated, unnamed segment */

static inline uint64_t trb__wal_pad8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

/* A decoded record header (see the layout in wal.c). */
typedef struct trb__wal_rhdr {
  uint32_t crc, len;
  uint64_t lsn;
  int64_t commit_us;
  uint64_t durable_lsn, table_id, txn_id;
  uint8_t kind, flags;
  uint16_t table_len;
  uint32_t keys_len, old_len, new_len;
} trb__wal_rhdr;

/* A decoded segment header. */
typedef struct trb__wal_shdr {
  uint32_t version;
  uint64_t seg_size, first_lsn;
  int64_t created_us;
} trb__wal_shdr;

/* Results of trb__wal_rec_check. */
enum {
  TRB__WAL_REC_OK = 0, /* a whole valid record; *need = its padded size */
  TRB__WAL_REC_END,    /* an all-zero header: no record here */
  TRB__WAL_REC_NEED,   /* more bytes needed in memory: *need bytes from p */
  TRB__WAL_REC_BAD,    /* not a valid record; *why says why */
};

/*
 * Checks the record at p. `avail` bytes are in memory at p; `room` is the
 * number of bytes from p to the end of the segment's data area. Checks the
 * length before anything else, then field consistency, then the CRC.
 * Fills *h on OK (and partially on BAD). Pure function of the bytes.
 */
int trb__wal_rec_check(const unsigned char *p, size_t avail, uint64_t room,
                       trb__wal_rhdr *h, size_t *need, const char **why);
/* Fills *out from a record that passed trb__wal_rec_check; the pointers
 * borrow p (valid while p is). */
void trb__wal_rec_view(const trb__wal_rhdr *h, const unsigned char *p,
                       trb_wal_rec *out);

/* "wal-<16 hex>.seg". */
void trb__wal_seg_name(char out[TRB__WAL_NAME_MAX], uint64_t first_lsn);
/*
 * Reads and checks the header of an open segment file. TRB_OK; TRB_EVERSION
 * for a known magic with a version this build does not read; TRB_ECORRUPT
 * (message without the file name) for a short file, wrong magic or bad CRC;
 * TRB_EIO when the read fails.
 */
trb_err trb__wal_shdr_read(int fd, trb__wal_shdr *h, trb_status *st);

/*
 * A read-ahead window over one file (pread only). The bytes [off, off+len)
 * of the file are at p. Caller-owned storage.
 */
typedef struct trb__wal_win {
  int fd;
  unsigned char *p;
  size_t cap, len;
  uint64_t off;
  uint64_t reads; /* preads done, so a caller can tell a refill happened */
} trb__wal_win;

void trb__wal_win_init(trb__wal_win *wn, int fd);
void trb__wal_win_fini(trb__wal_win *wn); /* frees the buffer, not the fd */
/*
 * Makes [off, off+n) resident when the file has it, reading at least
 * `chunk` bytes. Returns the bytes available at off (less than n at end of
 * file) with *out pointing at them, or -1 with errno on a read error or
 * when memory for n bytes cannot be had.
 */
ssize_t trb__wal_win_get(trb__wal_win *wn, uint64_t off, size_t n, size_t chunk,
                         const unsigned char **out);

/*
 * The WAL handle. Writer-only fields are touched by the one writer thread
 * (and by close after the aux thread has stopped); fields "under mu" and
 * "under io_mu" follow those locks; lock order is io_mu before mu.
 */
struct trb_wal {
  /* settings (immutable after open) */
  char *dir;
  uint64_t seg_size; /* for new segments */
  trb_wal_sync_mode sync_mode;
  uint32_t interval_ms;
  int readonly;
  int dir_lock_fd; /* flock'ed directory, -1 when readonly */

  /* ---- under mu ---- */
  pthread_mutex_t mu;
  pthread_cond_t pub_cv;  /* readers wait here for publish/close */
  pthread_cond_t idle_cv; /* close waits here for readers to leave */
  pthread_cond_t aux_cv;  /* the aux thread waits here */
  pthread_cond_t prep_cv; /* the writer waits here for a preallocation */
  uint64_t published;     /* highest LSN readers may see */
  int closed;
  int active_readers;     /* threads inside trb_wal_reader_next */
  uint64_t *segs;         /* first LSNs of the segment files, ascending */
  size_t nsegs, segs_cap;
  uint64_t wr_first, wr_off, wr_lsn; /* end of the last fully appended batch */
  int aux_idle;           /* aux thread in an untimed wait */
  int prep_want, prep_busy, prep_failed;
  int prep_fd;            /* a preallocated TRB__WAL_PREP_NAME, or -1 */
  char fail_msg[TRB_STATUS_MSG_MAX];

  /* ---- under io_mu: the current segment's fd lifetime and syncs ---- */
  pthread_mutex_t io_mu;
  int fd;                 /* current segment, O_RDWR */
  uint64_t cur_first;     /* its first LSN */
  uint64_t cur_size;      /* its segment size (from its header) */
  uint64_t cut_first, cut_off; /* last position known durable at a batch end */
  uint64_t cut_lsn;       /* the LSN that ends there */

  /* ---- writer-only ---- */
  uint64_t off;           /* next write offset in the current segment */
  uint64_t cur_last_lsn;  /* last LSN written into the current segment */
  int64_t commit_us;      /* commit time of the last batch */
  int cut_done;
  unsigned char *wbuf;    /* encoding buffer, reused across batches */
  size_t wbuf_cap;

  /* ---- atomics (__atomic builtins) ---- */
  uint64_t last_lsn;      /* highest appended LSN */
  uint64_t durable_lsn;   /* highest LSN known fdatasync'ed */
  int64_t last_sync_ns;   /* CLOCK_MONOTONIC of the last sync */
  int failed;             /* trb_err that failed the WAL, 0 when healthy */
  uint64_t st_appends, st_records, st_bytes, st_syncs;

  pthread_t aux;
  int aux_started;
};

/* Full path of a segment file; caller frees. NULL on out of memory. */
char *trb__wal_seg_path(const char *dir, uint64_t first_lsn);

/* ---- format helpers (wal.c) ---- */
int trb__wal_kind_known(int kind);
void trb__wal_rhdr_decode(const unsigned char *p, trb__wal_rhdr *h); /* 64 bytes */
uint64_t trb__wal_rhdr_sum(const trb__wal_rhdr *h); /* what len must be */
int trb__wal_all_zero(const unsigned char *p, size_t n);
/* "<dir>/<name>"; caller frees. NULL on out of memory. */
char *trb__wal_dir_path(const char *dir, const char *name);

/* ---- scanning (wal_scan.c): read-only, shared by open and verify ---- */

/* Lists the segment files of dir, ascending by first LSN. With remove_tmp,
 * stale wal-*.tmp files are removed (through the seam). *out caller-owned
 * (free). TRB_ENOTFOUND when dir does not exist. */
trb_err trb__wal_list_segs(const char *dir, int remove_tmp, uint64_t **out, size_t *n,
                           trb_status *st);

/* The verdict of a scan over the whole log. */
enum { TRB__WAL_SCAN_CLEAN = 0, TRB__WAL_SCAN_TORN = 1, TRB__WAL_SCAN_CORRUPT = 2 };

typedef struct trb__wal_scan {
  uint64_t records, first_lsn, last_lsn, next_lsn;
  int64_t last_commit_us;
  int have_end;           /* end_seg/end_off are set */
  size_t end_seg;         /* the log continues at end_off of segs[end_seg] */
  uint64_t end_off;
  int state;              /* TRB__WAL_SCAN_* */
  int torn_rollover;      /* the last segment is a torn rollover: drop it */
  size_t bad_seg;
  uint64_t bad_off, bad_lsn;
  char reason[160];
  char evidence[200];     /* for corruption: the later durable record */
} trb__wal_scan;

/*
 * Scans every segment (segs: first LSNs, ascending) and every record, and
 * classifies the first bad one as a torn tail or corruption (the
 * durable_lsn rule, see wal.c). Returns TRB_OK with the verdict in *sc,
 * TRB_EVERSION for a segment of an unknown version, TRB_EIO when the files
 * cannot be read. Changes nothing on disk.
 */
trb_err trb__wal_scan_log(const char *dir, const uint64_t *segs, size_t nsegs,
                          trb__wal_scan *sc, trb_status *st);
/* Sets st to TRB_ECORRUPT: "segment <file> offset <n>: <reason> (expected
 * LSN <x>)" and the evidence, if any. Returns TRB_ECORRUPT. */
trb_err trb__wal_corrupt_status(trb_status *st, const uint64_t *segs, const trb__wal_scan *sc);

#endif
