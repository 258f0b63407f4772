/*
 * crc32c.h -- CRC-32C (Castagnoli), the checksum of every WAL record.
 * Uses the SSE4.2 crc32 instruction when the CPU has it (checked once at
 * run time), a slicing-by-8 table otherwise. Both give identical results.
 */
#ifndef TRB_CRC32C_H
#define TRB_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends `crc` (0 to start) over buf[0..len). */
uint32_t trb_crc32c(uint32_t crc, const void *buf, size_t len);
/* 1 when the hardware path is in use. */
int trb_crc32c_hw(void);
/* The software path, exposed so tests can compare the two. */
uint32_t trb_crc32c_sw(uint32_t crc, const void *buf, size_t len);

#endif
