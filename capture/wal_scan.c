/*
 * wal_scan.c -- reading the whole WAL without changing it: listing the
 * segment files, checking every record in LSN order, and deciding whether
 * the first bad record is a torn tail or corruption by the durable_lsn rule
 * (the byte layouts and the rule are at the top of capture/wal.c). Recovery
 * in trb_wal_open acts on the verdict; trb_wal_verify reports it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture/wal.h"
#include "capture/wal_int.h"
#include "util/log.h"
#include "util/sysio.h"

#define SCAN_CHUNK ((size_t)1 << 20)

/* ------------------------------------------------------------------ */
/* Directory                                                            */

static int u64_cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int parse_seg_name(const char *name, uint64_t *first) {
  if (strlen(name) != 24 || strncmp(name, "wal-", 4) != 0 || strcmp(name + 20, ".seg") != 0)
    return 0;
  uint64_t v = 0;
  for (int i = 4; i < 20; i++) {
    char c = name[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return 0;
    v = v << 4 | (uint64_t)d;
  }
  *first = v;
  return v != 0;
}

/* See wal_int.h. */
trb_err trb__wal_list_segs(const char *dir, int remove_tmp, uint64_t **out, size_t *n,
                           trb_status *st) {
  trb_err rc = TRB_OK;
  uint64_t *v = NULL;
  size_t cnt = 0, cap = 0;
  DIR *d = opendir(dir);
  if (!d)
    return trb_status_set(st, errno == ENOENT ? TRB_ENOTFOUND : TRB_EIO,
                          "cannot open WAL directory %s: %s", dir, strerror(errno));
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    uint64_t first;
    size_t nl = strlen(de->d_name);
    if (remove_tmp && nl > 8 && strncmp(de->d_name, "wal-", 4) == 0 &&
        strcmp(de->d_name + nl - 4, ".tmp") == 0) {
      char *p = trb__wal_dir_path(dir, de->d_name);
      if (p && trb_sys.unlink(p) != 0)
        trb_log_warn("wal", "cannot remove stale %s: %s", p, strerror(errno));
      free(p);
      continue;
    }
    if (!parse_seg_name(de->d_name, &first)) continue;
    if (cnt == cap) {
      size_t nc = cap ? cap * 2 : 16;
      uint64_t *nv = realloc(v, nc * sizeof *nv);
      if (!nv) {
        rc = trb_status_set(st, TRB_ENOMEM, "out of memory listing %s", dir);
        goto done;
      }
      v = nv;
      cap = nc;
    }
    v[cnt++] = first;
  }
  if (cnt) qsort(v, cnt, sizeof *v, u64_cmp);
done:
  closedir(d);
  if (rc) {
    free(v);
    return rc;
  }
  *out = v;
  *n = cnt;
  return TRB_OK;
}

/* Reserves [off, off+len): fallocate, or zeros where it is unsupported. */
/* ------------------------------------------------------------------ */
/* Scanning: recovery and verify share this                             */


/* Quick filter before a CRC in the search: the cheap header checks. */
static int plausible(const unsigned char *p, uint64_t room) {
  if (room < TRB__WAL_REC_HDR || p[48] == 0 || !trb__wal_kind_known(p[48])) return 0;
  trb__wal_rhdr h;
  trb__wal_rhdr_decode(p, &h);
  if (h.len > TRB__WAL_MAX_PAYLOAD || TRB__WAL_REC_HDR + (uint64_t)h.len > room) return 0;
  return trb__wal_rhdr_sum(&h) == h.len;
}

/*
 * Looks in segs[i0..] (from offset pos0 in segs[i0]) at every 8-byte-aligned
 * offset for a valid record with durable_lsn >= min_durable (0: any valid
 * record). 1 found (*f_* set), 0 none, -1 read error (errno).
 */
static int search_durable(const char *dir, const uint64_t *segs, size_t nsegs,
                          size_t i0, uint64_t pos0, uint64_t min_durable,
                          uint64_t *f_lsn, size_t *f_seg, uint64_t *f_off) {
  int res = 0;
  for (size_t j = i0; j < nsegs && res == 0; j++) {
    char *path = trb__wal_seg_path(dir, segs[j]);
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    free(path);
    if (fd < 0) return -1;
    trb__wal_shdr sh;
    trb_status hst;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
      close(fd);
      return -1;
    }
    uint64_t end = (uint64_t)sb.st_size;
    if (trb__wal_shdr_read(fd, &sh, &hst) == TRB_OK && sh.seg_size < end) end = sh.seg_size;
    end &= ~(uint64_t)7;
    uint64_t q = j == i0 ? trb__wal_pad8(pos0) : TRB__WAL_SEG_HDR;
    trb__wal_win wn;
    trb__wal_win_init(&wn, fd);
    while (res == 0 && q + TRB__WAL_REC_HDR <= end) {
      const unsigned char *p;
      ssize_t avail = trb__wal_win_get(&wn, q, TRB__WAL_REC_HDR, SCAN_CHUNK, &p);
      if (avail < 0) {
        res = -1;
        break;
      }
      if ((size_t)avail < TRB__WAL_REC_HDR) break; /* file ended */
      size_t span = (size_t)avail;
      while (q + TRB__WAL_REC_HDR <= end && span >= TRB__WAL_REC_HDR) {
        if (plausible(p, end - q)) {
          trb__wal_rhdr h;
          size_t need = 0;
          const char *why;
          int c = trb__wal_rec_check(p, span, end - q, &h, &need, &why);
          if (c == TRB__WAL_REC_NEED) {
            ssize_t a2 = trb__wal_win_get(&wn, q, need, SCAN_CHUNK, &p);
            if (a2 < 0) {
              res = -1;
              break;
            }
            span = (size_t)a2;
            if (span < TRB__WAL_REC_HDR) break;
            c = trb__wal_rec_check(p, span, end - q, &h, &need, &why);
          }
          if (c == TRB__WAL_REC_OK && h.durable_lsn >= min_durable) {
            *f_lsn = h.lsn;
            *f_seg = j;
            *f_off = q;
            res = 1;
            break;
          }
        }
        q += 8;
        p += 8;
        span -= 8;
      }
    }
    trb__wal_win_fini(&wn);
    close(fd);
  }
  return res;
}

/* 1 when the segment file exists and has a valid header. */
static int seg_header_ok(const char *dir, uint64_t first) {
  char *path = trb__wal_seg_path(dir, first);
  int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
  free(path);
  if (fd < 0) return 0;
  trb__wal_shdr sh;
  int ok = trb__wal_shdr_read(fd, &sh, NULL) == TRB_OK && sh.first_lsn == first;
  close(fd);
  return ok;
}

/* 1 when [pos, end) of the window's file is all zero, 0 if not, -1 error. */
static int rest_zero(trb__wal_win *wn, uint64_t pos, uint64_t end) {
  while (pos < end) {
    const unsigned char *p;
    size_t n = end - pos > SCAN_CHUNK ? SCAN_CHUNK : (size_t)(end - pos);
    ssize_t a = trb__wal_win_get(wn, pos, n, SCAN_CHUNK, &p);
    if (a < 0) return -1;
    if ((size_t)a < n) n = (size_t)a;
    if (n == 0) return 1;
    if (!trb__wal_all_zero(p, n)) return 0;
    pos += n;
  }
  return 1;
}

/*
 * Scans every segment (names in segs, ascending) and every record. Fills
 * *sc. Returns TRB_OK (the verdict is in sc->state), TRB_EVERSION, or
 * TRB_EIO / TRB_ENOMEM when the files cannot be read. Changes nothing.
 */
trb_err trb__wal_scan_log(const char *dir, const uint64_t *segs, size_t nsegs,
                          trb__wal_scan *sc, trb_status *st) {
  trb_err rc = TRB_OK;
  int fd = -1;
  char name[TRB__WAL_NAME_MAX];
  trb__wal_win wn;
  trb__wal_win_init(&wn, -1);
  memset(sc, 0, sizeof *sc);
  uint64_t expected = nsegs ? segs[0] : 1;
  sc->next_lsn = expected;
  for (size_t i = 0; i < nsegs; i++) {
    trb__wal_seg_name(name, segs[i]);
    char *path = trb__wal_seg_path(dir, segs[i]);
    fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    free(path);
    if (fd < 0) {
      rc = trb_status_set(st, TRB_EIO, "cannot open segment %s in %s: %s", name, dir,
                          strerror(errno));
      goto done;
    }
    trb__wal_shdr sh;
    trb_status hst;
    trb_status_init(&hst);
    trb_err hrc = trb__wal_shdr_read(fd, &sh, &hst);
    if (hrc == TRB_EVERSION || hrc == TRB_EIO) {
      rc = trb_status_set(st, hrc, "segment %s: %s", name, hst.msg);
      goto done;
    }
    sc->bad_seg = i;
    sc->bad_off = 0;
    sc->bad_lsn = expected;
    if (hrc != TRB_OK) {
      uint64_t fl = 0, fo = 0;
      size_t fs = 0;
      int found = i + 1 == nsegs
                      ? search_durable(dir, segs, nsegs, i, TRB__WAL_SEG_HDR, 0, &fl, &fs, &fo)
                      : 1;
      if (found < 0) {
        rc = trb_status_set(st, TRB_EIO, "segment %s: read failed: %s", name, strerror(errno));
        goto done;
      }
      if (!found) {
        sc->state = TRB__WAL_SCAN_TORN;
        sc->torn_rollover = 1;
        snprintf(sc->reason, sizeof sc->reason,
                 "%.100s and no records (unfinished rollover)", hst.msg);
      } else {
        sc->state = TRB__WAL_SCAN_CORRUPT;
        snprintf(sc->reason, sizeof sc->reason, "%.150s", hst.msg);
      }
      goto done;
    }
    if (sh.first_lsn != segs[i]) {
      sc->state = TRB__WAL_SCAN_CORRUPT;
      snprintf(sc->reason, sizeof sc->reason,
               "header says first LSN %llu, the file name says %llu",
               (unsigned long long)sh.first_lsn, (unsigned long long)segs[i]);
      goto done;
    }
    if (sh.first_lsn != expected) {
      sc->state = TRB__WAL_SCAN_CORRUPT;
      snprintf(sc->reason, sizeof sc->reason, "segment starts at LSN %llu (missing or extra segment)",
               (unsigned long long)sh.first_lsn);
      goto done;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
      rc = trb_status_set(st, TRB_EIO, "segment %s: fstat: %s", name, strerror(errno));
      goto done;
    }
    uint64_t end = (uint64_t)sb.st_size < sh.seg_size ? (uint64_t)sb.st_size : sh.seg_size;
    end &= ~(uint64_t)7;
    uint64_t pos = TRB__WAL_SEG_HDR;
    const char *why = NULL;
    char whybuf[96];
    wn.fd = fd;
    wn.len = 0;
    while (pos < end) {
      const unsigned char *p;
      trb__wal_rhdr h;
      size_t need = TRB__WAL_REC_HDR;
      ssize_t a = trb__wal_win_get(&wn, pos, need, SCAN_CHUNK, &p);
      int c;
      for (;;) {
        if (a < 0) {
          rc = trb_status_set(st, TRB_EIO, "segment %s offset %llu: read failed: %s", name,
                              (unsigned long long)pos, strerror(errno));
          goto done;
        }
        c = trb__wal_rec_check(p, (size_t)a, end - pos, &h, &need, &why);
        if (c != TRB__WAL_REC_NEED) break;
        if ((size_t)a >= need) { /* cannot happen: check asked for what it had */
          c = TRB__WAL_REC_BAD;
          why = "internal scan error";
          break;
        }
        size_t before = (size_t)a;
        a = trb__wal_win_get(&wn, pos, need, SCAN_CHUNK, &p);
        if (a >= 0 && (size_t)a <= before) {
          c = TRB__WAL_REC_BAD;
          why = "record runs past the end of the file";
          break;
        }
      }
      if (c == TRB__WAL_REC_OK && h.lsn != expected) {
        snprintf(whybuf, sizeof whybuf, "LSN %llu out of sequence",
                 (unsigned long long)h.lsn);
        why = whybuf;
        c = TRB__WAL_REC_BAD;
      }
      if (c == TRB__WAL_REC_OK) {
        if (!sc->records) sc->first_lsn = h.lsn;
        sc->records++;
        sc->last_lsn = h.lsn;
        sc->last_commit_us = h.commit_us;
        expected = h.lsn + 1;
        sc->next_lsn = expected;
        pos += need;
        continue;
      }
      if (c == TRB__WAL_REC_END) {
        int z = rest_zero(&wn, pos, end);
        if (z < 0) {
          rc = trb_status_set(st, TRB_EIO, "segment %s: read failed: %s", name, strerror(errno));
          goto done;
        }
        if (z) break;
        why = "zero record header followed by non-zero bytes";
      }
      /* A bad record at pos: torn tail or corruption? */
      sc->bad_off = pos;
      sc->bad_lsn = expected;
      sc->have_end = 1;
      sc->end_seg = i;
      sc->end_off = pos;
      snprintf(sc->reason, sizeof sc->reason, "%s", why ? why : "bad record");
      if (i + 1 < nsegs && seg_header_ok(dir, segs[i + 1])) {
        /* The next segment got its name only after this one was synced. */
        char nname[TRB__WAL_NAME_MAX];
        trb__wal_seg_name(nname, segs[i + 1]);
        sc->state = TRB__WAL_SCAN_CORRUPT;
        snprintf(sc->evidence, sizeof sc->evidence,
                 "segment %s follows, so this one was complete and durable", nname);
        goto done;
      }
      uint64_t fl = 0, fo = 0;
      size_t fs = 0;
      int found = search_durable(dir, segs, nsegs, i, pos, expected, &fl, &fs, &fo);
      if (found < 0) {
        rc = trb_status_set(st, TRB_EIO, "segment %s: read failed: %s", name, strerror(errno));
        goto done;
      }
      if (found) {
        char fname[TRB__WAL_NAME_MAX];
        trb__wal_seg_name(fname, segs[fs]);
        sc->state = TRB__WAL_SCAN_CORRUPT;
        snprintf(sc->evidence, sizeof sc->evidence,
                 "LSN %llu at segment %s offset %llu was written after LSN %llu was durable",
                 (unsigned long long)fl, fname, (unsigned long long)fo,
                 (unsigned long long)expected);
      } else {
        sc->state = TRB__WAL_SCAN_TORN;
      }
      goto done;
    }
    sc->have_end = 1;
    sc->end_seg = i;
    sc->end_off = pos;
    close(fd);
    fd = -1;
  }
done:
  trb__wal_win_fini(&wn);
  if (fd >= 0) close(fd);
  return rc;
}

trb_err trb__wal_corrupt_status(trb_status *st, const uint64_t *segs, const trb__wal_scan *sc) {
  char name[TRB__WAL_NAME_MAX];
  trb__wal_seg_name(name, segs[sc->bad_seg]);
  return trb_status_set(st, TRB_ECORRUPT, "segment %s offset %llu: %s (expected LSN %llu)%s%s",
                        name, (unsigned long long)sc->bad_off, sc->reason,
                        (unsigned long long)sc->bad_lsn, sc->evidence[0] ? "; " : "",
                        sc->evidence);
}

trb_err trb_wal_verify(const char *dir, trb_wal_verify_result *res, trb_status *st) {
  uint64_t *segs = NULL;
  size_t nsegs = 0;
  trb__wal_scan sc;
  trb_err rc;
  if (!dir || !res) return trb_status_set(st, TRB_EINVAL, "trb_wal_verify: NULL argument");
  memset(res, 0, sizeof *res);
  rc = trb__wal_list_segs(dir, 0, &segs, &nsegs, st);
  if (rc) goto done;
  res->segments = nsegs;
  rc = trb__wal_scan_log(dir, segs, nsegs, &sc, st);
  if (rc) goto done;
  res->records = sc.records;
  res->first_lsn = sc.first_lsn;
  res->last_lsn = sc.last_lsn;
  res->ok = sc.state == TRB__WAL_SCAN_CLEAN;
  res->torn_tail = sc.state == TRB__WAL_SCAN_TORN;
  if (sc.state != TRB__WAL_SCAN_CLEAN) {
    trb__wal_seg_name(res->bad_segment, segs[sc.bad_seg]);
    res->bad_offset = sc.bad_off;
    res->bad_lsn = sc.bad_lsn;
    snprintf(res->reason, sizeof res->reason, "%s", sc.reason);
  }
done:
  free(segs);
  return rc;
}
