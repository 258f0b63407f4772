/* crc32c.c -- CRC-32C, hardware where available (see crc32c.h). */
#include "util/crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82f63b78u /* reflected Castagnoli polynomial */

static uint32_t tbl[8][256];
static int have_hw;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
    tbl[0][n] = c;
  }
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = tbl[0][n];
    for (int k = 1; k < 8; k++) {
      c = tbl[0][c & 0xff] ^ (c >> 8);
      tbl[k][n] = c;
    }
  }
#if defined(__x86_64__)
  __builtin_cpu_init();
  have_hw = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t trb_crc32c_sw(uint32_t crc, const void *buf, size_t len) {
  pthread_once(&once, crc_init);
  const unsigned char *p = buf;
  crc = ~crc;
  while (len && ((uintptr_t)p & 7)) {
    crc = tbl[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    len--;
  }
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    w ^= crc; /* little-endian hosts only (x86_64, aarch64) */
    crc = tbl[7][w & 0xff] ^ tbl[6][(w >> 8) & 0xff] ^
          tbl[5][(w >> 16) & 0xff] ^ tbl[4][(w >> 24) & 0xff] ^
          tbl[3][(w >> 32) & 0xff] ^ tbl[2][(w >> 40) & 0xff] ^
          tbl[1][(w >> 48) & 0xff] ^ tbl[0][w >> 56];
    p += 8;
    len -= 8;
  }
  while (len--) crc = tbl[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const void *buf, size_t len) {
  const unsigned char *p = buf;
  uint64_t c = ~crc;
  while (len && ((uintptr_t)p & 7)) {
    c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    len--;
  }
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    c = __builtin_ia32_crc32di(c, w);
    p += 8;
    len -= 8;
  }
  while (len--) c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
  return ~(uint32_t)c;
}
#endif

uint32_t trb_crc32c(uint32_t crc, const void *buf, size_t len) {
  pthread_once(&once, crc_init);
#if defined(__x86_64__)
  if (have_hw) return crc_hw(crc, buf, len);
#endif
  return trb_crc32c_sw(crc, buf, len);
}

int trb_crc32c_hw(void) {
  pthread_once(&once, crc_init);
  return have_hw;
}
