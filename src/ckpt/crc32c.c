/* ckpt/crc32c.c: CRC-32C. x86-64 CPUs with SSE4.2 compute it in hardware (the crc32
 * instruction implements exactly this polynomial), chosen at run time; elsewhere, and as the
 * reference, slice-by-8 over eight 256-entry tables built once (thread-safe through
 * pthread_once). Both are checked against the published vectors and each other in tests/ckpt. */
#include "crc32c.h"

#include <pthread.h>
#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define POLY 0x82F63B78u /* 0x1EDC6F41 bit-reversed */

static uint32_t tab[8][256];
static pthread_once_t tab_once = PTHREAD_ONCE_INIT;

static void tab_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
        tab[0][i] = c;
    }
    /* tab[k][i]: the CRC of byte i followed by k zero bytes */
    for (uint32_t i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++) tab[k][i] = (tab[k - 1][i] >> 8) ^ tab[0][tab[k - 1][i] & 0xff];
}

uint32_t ckpt_crc32c_ref(uint32_t crc, const void *p, size_t n) {
    pthread_once(&tab_once, tab_init);
    const unsigned char *b = p;
    uint32_t c = ~crc;
    while (n >= 8) {
        /* byte-wise assembly keeps it independent of the host's byte order */
        uint32_t lo = c ^ ((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                           (uint32_t)b[3] << 24);
        c = tab[7][lo & 0xff] ^ tab[6][(lo >> 8) & 0xff] ^ tab[5][(lo >> 16) & 0xff] ^
            tab[4][lo >> 24] ^ tab[3][b[4]] ^ tab[2][b[5]] ^ tab[1][b[6]] ^ tab[0][b[7]];
        b += 8;
        n -= 8;
    }
    while (n--) c = (c >> 8) ^ tab[0][(c ^ *b++) & 0xff];
    return ~c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t c = ~crc;
    for (; n && ((uintptr_t)b & 7); n--) c = _mm_crc32_u8((uint32_t)c, *b++);
    for (; n >= 32; n -= 32, b += 32) {
        uint64_t w[4];
        __builtin_memcpy(w, b, 32);
        c = _mm_crc32_u64(c, w[0]);
        c = _mm_crc32_u64(c, w[1]);
        c = _mm_crc32_u64(c, w[2]);
        c = _mm_crc32_u64(c, w[3]);
    }
    for (; n >= 8; n -= 8, b += 8) {
        uint64_t w;
        __builtin_memcpy(&w, b, 8);
        c = _mm_crc32_u64(c, w);
    }
    while (n--) c = _mm_crc32_u8((uint32_t)c, *b++);
    return ~(uint32_t)c;
}
#endif

uint32_t ckpt_crc32c(uint32_t crc, const void *p, size_t n) {
#if defined(__x86_64__)
    static int hw = -1; /* racy first use is benign: every thread computes the same answer */
    if (hw < 0) hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    if (hw) return crc32c_hw(crc, p, n);
#endif
    return ckpt_crc32c_ref(crc, p, n);
}
