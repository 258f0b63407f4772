/*
 * buf.h -- a growable byte buffer with a hard cap (curl's dynbuf habit), and
 * little-endian field encoders/decoders used by every on-disk format.
 * Encode field by field; never write a struct.
 */
#ifndef TRB_BUF_H
#define TRB_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/trb_err.h"

typedef struct trb_buf {
  unsigned char *p; /* owned; NULL when empty */
  size_t len, cap;
  size_t max;       /* hard cap in bytes; 0 = default (1 GiB) */
} trb_buf;

/* Caller-owned storage. init sets it empty; fini frees the bytes. */
void trb_buf_init(trb_buf *b, size_t max);
void trb_buf_fini(trb_buf *b);
void trb_buf_reset(trb_buf *b); /* len = 0, keeps memory */
/* Ensure room for `extra` more bytes: TRB_ENOMEM or TRB_ELIMIT on failure. */
trb_err trb_buf_reserve(trb_buf *b, size_t extra);
trb_err trb_buf_append(trb_buf *b, const void *p, size_t n);
trb_err trb_buf_put_u8(trb_buf *b, uint8_t v);
trb_err trb_buf_put_u16(trb_buf *b, uint16_t v);
trb_err trb_buf_put_u32(trb_buf *b, uint32_t v);
trb_err trb_buf_put_u64(trb_buf *b, uint64_t v);
/* Unsigned LEB128 varint. */
trb_err trb_buf_put_varint(trb_buf *b, uint64_t v);
/* Takes the bytes out of the buffer: caller owns *out (free()). */
unsigned char *trb_buf_steal(trb_buf *b, size_t *len);

static inline void trb_put_u16(unsigned char *p, uint16_t v) {
  p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
}
static inline void trb_put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void trb_put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint16_t trb_get_u16(const unsigned char *p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t trb_get_u32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
static inline uint64_t trb_get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/*
 * A bounds-checked reader over borrowed bytes. Every get fails (returns
 * nonzero and sets r->err) rather than reading past the end; once failed,
 * further gets fail too.
 */
typedef struct trb_rd {
  const unsigned char *p;
  size_t len, off;
  int err;
} trb_rd;

static inline void trb_rd_init(trb_rd *r, const void *p, size_t len) {
  r->p = p; r->len = len; r->off = 0; r->err = 0;
}
static inline int trb_rd_need(trb_rd *r, size_t n) {
  if (r->err || r->len - r->off < n) { r->err = 1; return 1; }
  return 0;
}
int trb_rd_u8(trb_rd *r, uint8_t *v);
int trb_rd_u16(trb_rd *r, uint16_t *v);
int trb_rd_u32(trb_rd *r, uint32_t *v);
int trb_rd_u64(trb_rd *r, uint64_t *v);
int trb_rd_varint(trb_rd *r, uint64_t *v);
/* Borrowed pointer to the next n bytes (valid while the source lives). */
int trb_rd_bytes(trb_rd *r, size_t n, const unsigned char **out);

#endif
