/* dot_x86.h: the x86 dot-product kernels shared by dot_avx2.c and dot_avx512.c, included by
 * each under its own target pragma. The including file defines two integer primitives, so the
 * same kernel compiles to AVX2's maddubs + madd or AVX512-VNNI's fused forms:
 *   QDOT_U8S8(acc, u, s): acc (8 x int32) + the sums of 4 products of unsigned u and signed s
 *                         bytes (u * s pairs never exceed int16: no saturation either way);
 *   QDOT_I16(acc, p, c):  acc + the sums of pairs of int16 products p * c.
 * The integer sums are exact, and the float operations are the same whatever the primitives,
 * so each kernel gives the same bits on both ISAs. Private to src/quant. */
#ifndef HEARTH_QUANT_DOT_X86_H
#define HEARTH_QUANT_DOT_X86_H

#include "quant/quant_int.h"

#include <immintrin.h>

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float h2f(uint16_t h) {
    return _cvtsh_ss(h);
}

/* 8 int32 sums of 4 products each of 32 signed bytes a and b; a's values in -128..127, b's in
 * -127..127 (the activations never hold -128, so negating b by a's sign cannot overflow). */
static inline __m256i dot_i8(__m256i a, __m256i b) {
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}
/* The same for unsigned a (0..127) and signed b. */
static inline __m256i dot_u8(__m256i a, __m256i b) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1));
}
/* 32 nibbles of 16 bytes: the low ones as bytes 0..15, the high ones as bytes 16..31. */
static inline __m256i nibbles(const uint8_t *p) {
    __m128i b = _mm_loadu_si128((const __m128i *)p), m = _mm_set1_epi8(0xF);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
}
/* Byte i (0..31) = 0xFF where bit i of x is set, 0 elsewhere. */
static inline __m256i bits_to_bytes(uint32_t x) {
    const __m256i spread = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                             0x0101010101010101, 0x0000000000000000);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), spread);
    v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)); /* byte k: all bits but k */
    return _mm256_cmpeq_epi8(v, _mm256_set1_epi8(-1));
}

/* Each kernel below is written once for R activation rows (R = 1: quant_dot_fn, R = 4:
 * quant_dot4_fn): the weight block is loaded and unpacked once for all R rows, and each row
 * goes through exactly the operations it would alone, so a row's result does not depend on
 * which kernel computed it. */
#define ROWS static inline __attribute__((always_inline))

/* Defines dot_NAME and dot4_NAME from NAME_rows. */
#define ROWS_ENTRIES(NAME)                                                                         \
    static float dot_##NAME(int K, const void *w, const void *x) {                                 \
        float out;                                                                                 \
        NAME##_rows(K, w, x, 0, 1, &out);                                                          \
        return out;                                                                                \
    }                                                                                              \
    static void dot4_##NAME(int K, const void *w, const void *x, size_t xs, float *out) {          \
        NAME##_rows(K, w, x, xs, 4, out);                                                          \
    }

/* Q8_0 and Q4_0 against Q8_0 rows: the weight's 32 signed values (Q4_0: nibbles - 8) once,
 * their magnitudes and signs applied to each row (dot_i8). */
ROWS void q8_0_rows(int K, const quant_block_q8_0 *a, const uint8_t *x, size_t xs, int R,
                    float *out) {
    __m256 acc[4];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    for (int i = 0; i < K / QUANT_QK; i++) {
        __m256i q = _mm256_loadu_si256((const __m256i *)a[i].qs), aq = _mm256_sign_epi8(q, q);
        float d = h2f(a[i].d);
        for (int r = 0; r < R; r++) {
            const quant_block_q8_0 *b = (const quant_block_q8_0 *)(x + r * xs) + i;
            __m256i p = QDOT_U8S8(_mm256_setzero_si256(), aq,
                                  _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)b->qs), q));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * h2f(b->d)), _mm256_cvtepi32_ps(p), acc[r]);
        }
    }
    for (int r = 0; r < R; r++) out[r] = hsum8(acc[r]);
}
ROWS_ENTRIES(q8_0)

ROWS void q4_0_rows(int K, const quant_block_q4_0 *a, const uint8_t *x, size_t xs, int R,
                    float *out) {
    __m256 acc[4];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    for (int i = 0; i < K / QUANT_QK; i++) {
        __m256i q = _mm256_sub_epi8(nibbles(a[i].qs), _mm256_set1_epi8(8));
        __m256i aq = _mm256_sign_epi8(q, q);
        float d = h2f(a[i].d);
        for (int r = 0; r < R; r++) {
            const quant_block_q8_0 *b = (const quant_block_q8_0 *)(x + r * xs) + i;
            __m256i p = QDOT_U8S8(_mm256_setzero_si256(), aq,
                                  _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)b->qs), q));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * h2f(b->d)), _mm256_cvtepi32_ps(p), acc[r]);
        }
    }
    for (int r = 0; r < R; r++) out[r] = hsum8(acc[r]);
}
ROWS_ENTRIES(q4_0)
/* Q4_K: per 64-element chunk, 32 bytes give the low nibbles (sub-block 2c) and the high ones
 * (2c + 1); maddubs pairs stay within int16 (15 * 128 * 2); the mins come from bsums. */
ROWS void q4_k_rows(int K, const quant_block_q4_k *a, const uint8_t *x, size_t xs, int R,
                    float *out) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    __m256 acc[4];
    float accm[4];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps(), accm[r] = 0;
    for (int i = 0; i < K / QUANT_QK_K; i++) {
        int sc[8], mn[8];
        for (int j = 0; j < 8; j++) quant_scale_min_k4(j, a[i].scales, &sc[j], &mn[j]);
        __m256i sumi[4];
        for (int r = 0; r < R; r++) sumi[r] = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i qb = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * c));
            __m256i lo = _mm256_and_si256(qb, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4);
            __m256i s0 = _mm256_set1_epi16((short)sc[2 * c]),
                    s1 = _mm256_set1_epi16((short)sc[2 * c + 1]);
            for (int r = 0; r < R; r++) {
                const int8_t *y = ((const quant_block_q8_k *)(x + r * xs) + i)->qs + 64 * c;
                __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)y));
                __m256i p1 =
                    _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(y + 32)));
                p0 = _mm256_madd_epi16(p0, s0);
                p1 = _mm256_madd_epi16(p1, s1);
                sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(p0, p1));
            }
        }
        float d = h2f(a[i].d), dmin = h2f(a[i].dmin);
        for (int r = 0; r < R; r++) {
            const quant_block_q8_k *b = (const quant_block_q8_k *)(x + r * xs) + i;
            int msum = 0;
            for (int j = 0; j < 8; j++) msum += mn[j] * (b->bsums[2 * j] + b->bsums[2 * j + 1]);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(b->d * d), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
            accm[r] += b->d * dmin * (float)msum;
        }
    }
    for (int r = 0; r < R; r++) out[r] = hsum8(acc[r]) - accm[r];
}
ROWS_ENTRIES(q4_k)
#endif
