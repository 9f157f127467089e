/* ckpt/crc32c: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial value and final
 * xor 0xFFFFFFFF), the checksum of checkpoint manifests. */
#ifndef HEARTH_CKPT_CRC32C_H
#define HEARTH_CKPT_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of n bytes at p, continuing from crc (0 to start: the pre/post inversion is done
 * inside, so ckpt_crc32c(ckpt_crc32c(0, a, na), b, nb) is the CRC of a followed by b). */
uint32_t ckpt_crc32c(uint32_t crc, const void *p, size_t n);
/* The same by table lookups (slice-by-8): the reference, and the path without SSE4.2. */
uint32_t ckpt_crc32c_ref(uint32_t crc, const void *p, size_t n);

#endif
