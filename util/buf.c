/* buf.c -- see buf.h. */
#include "util/buf.h"

#include <stdlib.h>

#define BUF_DEFAULT_MAX ((size_t)1 << 30)

void trb_buf_init(trb_buf *b, size_t max) {
  b->p = NULL;
  b->len = b->cap = 0;
  b->max = max ? max : BUF_DEFAULT_MAX;
}

void trb_buf_fini(trb_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

void trb_buf_reset(trb_buf *b) { b->len = 0; }

trb_err trb_buf_reserve(trb_buf *b, size_t extra) {
  if (extra > b->max - b->len) return TRB_ELIMIT;
  size_t need = b->len + extra;
  if (need <= b->cap) return TRB_OK;
  size_t ncap = b->cap ? b->cap : 64;
  while (ncap < need) ncap = ncap > b->max / 2 ? b->max : ncap * 2;
  unsigned char *np = realloc(b->p, ncap);
  if (!np) return TRB_ENOMEM;
  b->p = np;
  b->cap = ncap;
  return TRB_OK;
}

trb_err trb_buf_append(trb_buf *b, const void *p, size_t n) {
  trb_err rc = trb_buf_reserve(b, n);
  if (rc) return rc;
  if (n) memcpy(b->p + b->len, p, n);
  b->len += n;
  return TRB_OK;
}

trb_err trb_buf_put_u8(trb_buf *b, uint8_t v) { return trb_buf_append(b, &v, 1); }

trb_err trb_buf_put_u16(trb_buf *b, uint16_t v) {
  unsigned char t[2];
  trb_put_u16(t, v);
  return trb_buf_append(b, t, 2);
}

trb_err trb_buf_put_u32(trb_buf *b, uint32_t v) {
  unsigned char t[4];
  trb_put_u32(t, v);
  return trb_buf_append(b, t, 4);
}

trb_err trb_buf_put_u64(trb_buf *b, uint64_t v) {
  unsigned char t[8];
  trb_put_u64(t, v);
  return trb_buf_append(b, t, 8);
}

trb_err trb_buf_put_varint(trb_buf *b, uint64_t v) {
  unsigned char t[10];
  int n = 0;
  do {
    unsigned char c = v & 0x7f;
    v >>= 7;
    t[n++] = c | (v ? 0x80 : 0);
  } while (v);
  return trb_buf_append(b, t, (size_t)n);
}

unsigned char *trb_buf_steal(trb_buf *b, size_t *len) {
  unsigned char *p = b->p;
  if (len) *len = b->len;
  b->p = NULL;
  b->len = b->cap = 0;
  return p;
}

int trb_rd_u8(trb_rd *r, uint8_t *v) {
  if (trb_rd_need(r, 1)) return 1;
  *v = r->p[r->off++];
  return 0;
}
int trb_rd_u16(trb_rd *r, uint16_t *v) {
  if (trb_rd_need(r, 2)) return 1;
  *v = trb_get_u16(r->p + r->off);
  r->off += 2;
  return 0;
}
int trb_rd_u32(trb_rd *r, uint32_t *v) {
  if (trb_rd_need(r, 4)) return 1;
  *v = trb_get_u32(r->p + r->off);
  r->off += 4;
  return 0;
}
int trb_rd_u64(trb_rd *r, uint64_t *v) {
  if (trb_rd_need(r, 8)) return 1;
  *v = trb_get_u64(r->p + r->off);
  r->off += 8;
  return 0;
}
int trb_rd_varint(trb_rd *r, uint64_t *v) {
  uint64_t x = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    uint8_t c;
    if (trb_rd_u8(r, &c)) return 1;
    x |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) { *v = x; return 0; }
  }
  r->err = 1;
  return 1;
}
int trb_rd_bytes(trb_rd *r, size_t n, const unsigned char **out) {
  if (trb_rd_need(r, n)) return 1;
  *out = r->p + r->off;
  r->off += n;
  return 0;
}
