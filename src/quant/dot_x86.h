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
#include <string.h>

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

/* d times the f16 field at byte off of each of the R activation rows' block (rows xs bytes
 * apart), as lanes 0..R-1: one conversion for the four rows instead of one each (that scalar
 * chain was a third of a Q8_0 product's time). Each lane is the same float product as
 * d * h2f(field), so the results keep their bits. */
ROWS __m256 row_scales(const uint8_t *x, size_t xs, int R, size_t off, float d) {
    uint64_t h = 0;
    for (int r = 0; r < R; r++) {
        uint16_t v;
        memcpy(&v, x + r * xs + off, 2);
        h |= (uint64_t)v << (16 * r);
    }
    __m128 f = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi64_si128((long long)h)), _mm_set1_ps(d));
    return _mm256_castps128_ps256(f);
}
/* The f16 field at byte off of each of the R activation rows' block as floats in lanes 0..R-1
 * (row_scales without the product). */
ROWS __m128 row_halves(const uint8_t *x, size_t xs, int R, size_t off) {
    uint64_t h = 0;
    for (int r = 0; r < R; r++) {
        uint16_t v;
        memcpy(&v, x + r * xs + off, 2);
        h |= (uint64_t)v << (16 * r);
    }
    return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)h));
}
/* Lane r of v in all eight lanes. */
static inline __m256 lane_of(__m256 v, int r) {
    return _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(r));
}

/* The legacy Q8_0-activation kernels for W (1 or 2) weight rows (wb bytes apart) x R rows:
 * the activation rows' scales converted and their values loaded once for the W weight rows.
 * Each (weight row, activation row) pair goes through the operations of W = 1, so the bits
 * are the same. WQ(aw, q) sets q to the weight block's 32 signed values. */
#define Q8_0_ACT_KERNEL(NAME, BT, WQ)                                                              \
    ROWS void NAME##_rows_w(int K, const uint8_t *a, size_t wb, int W, const uint8_t *x,           \
                            size_t xs, int R, float *out) {                                        \
        __m256 acc[2][4];                                                                          \
        for (int w = 0; w < W; w++)                                                                \
            for (int r = 0; r < R; r++) acc[w][r] = _mm256_setzero_ps();                           \
        for (int i = 0; i < K / QUANT_QK; i++) {                                                   \
            __m128 xd = row_halves(x, xs, R, sizeof(quant_block_q8_0) * (size_t)i);                \
            for (int w = 0; w < W; w++) {                                                          \
                const BT *aw = (const BT *)(a + (size_t)w * wb) + i;                               \
                __m256i q;                                                                         \
                WQ(aw, q);                                                                         \
                __m256i aq = _mm256_sign_epi8(q, q);                                               \
                __m256 ds = _mm256_castps128_ps256(_mm_mul_ps(xd, _mm_set1_ps(h2f(aw->d))));       \
                for (int r = 0; r < R; r++) {                                                      \
                    const quant_block_q8_0 *b = (const quant_block_q8_0 *)(x + r * xs) + i;        \
                    __m256i p = QDOT_U8S8(                                                         \
                        _mm256_setzero_si256(), aq,                                                \
                        _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)b->qs), q));          \
                    acc[w][r] = _mm256_fmadd_ps(lane_of(ds, r), _mm256_cvtepi32_ps(p), acc[w][r]); \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (int w = 0; w < W; w++)                                                                \
            for (int r = 0; r < R; r++) out[4 * w + r] = hsum8(acc[w][r]);                         \
    }                                                                                              \
    ROWS void NAME##_rows(int K, const BT *a, const uint8_t *x, size_t xs, int R, float *out) {    \
        NAME##_rows_w(K, (const uint8_t *)a, 0, 1, x, xs, R, out);                                 \
    }                                                                                              \
    static void dot4w2_##NAME(int K, const void *w, size_t wb, const void *x, size_t xs,           \
                              float *out) {                                                        \
        NAME##_rows_w(K, w, wb, 2, x, xs, 4, out);                                                 \
    }

#define WQ_Q8_0(aw, q) (q) = _mm256_loadu_si256((const __m256i *)(aw)->qs)
#define WQ_Q4_0(aw, q) (q) = _mm256_sub_epi8(nibbles((aw)->qs), _mm256_set1_epi8(8))
/* Q8_0 and Q4_0 against Q8_0 rows: the weight's 32 signed values (Q4_0: nibbles - 8) once,
 * their magnitudes and signs applied to each row (dot_i8). */
Q8_0_ACT_KERNEL(q8_0, quant_block_q8_0, WQ_Q8_0)
ROWS_ENTRIES(q8_0)
Q8_0_ACT_KERNEL(q4_0, quant_block_q4_0, WQ_Q4_0)
ROWS_ENTRIES(q4_0)
/* Q5_0 against Q8_0 rows: nibbles with the fifth bits of qh, less 16, as Q4_0. */
ROWS void q5_0_rows(int K, const quant_block_q5_0 *a, const uint8_t *x, size_t xs, int R,
                    float *out) {
    __m256 acc[4];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    for (int i = 0; i < K / QUANT_QK; i++) {
        __m256i hb = _mm256_and_si256(bits_to_bytes(base_get_le32(a[i].qh)), _mm256_set1_epi8(16));
        __m256i q = _mm256_sub_epi8(_mm256_or_si256(nibbles(a[i].qs), hb), _mm256_set1_epi8(16));
        __m256i aq = _mm256_sign_epi8(q, q);
        __m256 ds = row_scales(x, xs, R, sizeof(quant_block_q8_0) * (size_t)i, h2f(a[i].d));
        for (int r = 0; r < R; r++) {
            const quant_block_q8_0 *b = (const quant_block_q8_0 *)(x + r * xs) + i;
            __m256i p = QDOT_U8S8(_mm256_setzero_si256(), aq,
                                  _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)b->qs), q));
            acc[r] = _mm256_fmadd_ps(lane_of(ds, r), _mm256_cvtepi32_ps(p), acc[r]);
        }
    }
    for (int r = 0; r < R; r++) out[r] = hsum8(acc[r]);
}
ROWS_ENTRIES(q5_0)

/* Q4_1 and Q5_1 against Q8_1 rows: unsigned values straight into the u8 x s8 product; the min
 * term m * (dy * sum qy) comes from the activation block's s. */
ROWS void q4_1_rows(int K, const quant_block_q4_1 *a, const uint8_t *x, size_t xs, int R,
                    float *out) {
    __m256 acc[4];
    float ms[4];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps(), ms[r] = 0;
    for (int i = 0; i < K / QUANT_QK; i++) {
        __m256i u = nibbles(a[i].qs);
        size_t off = sizeof(quant_block_q8_1) * (size_t)i;
        __m256 ds = row_scales(x, xs, R, off, h2f(a[i].d));
        __m256 ms4 = row_scales(x, xs, R, off + 2, h2f(a[i].m));
        for (int r = 0; r < R; r++) {
            const quant_block_q8_1 *b = (const quant_block_q8_1 *)(x + r * xs) + i;
            __m256i p =
                QDOT_U8S8(_mm256_setzero_si256(), u, _mm256_loadu_si256((const __m256i *)b->qs));
            acc[r] = _mm256_fmadd_ps(lane_of(ds, r), _mm256_cvtepi32_ps(p), acc[r]);
            ms[r] += _mm256_cvtss_f32(lane_of(ms4, r));
        }
    }
    for (int r = 0; r < R; r++) out[r] = hsum8(acc[r]) + ms[r];
}
ROWS_ENTRIES(q4_1)

ROWS void q5_1_rows(int K, const quant_block_q5_1 *a, const uint8_t *x, size_t xs, int R,
                    float *out) {
    __m256 acc[4];
    float ms[4];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps(), ms[r] = 0;
    for (int i = 0; i < K / QUANT_QK; i++) {
        __m256i hb = _mm256_and_si256(bits_to_bytes(base_get_le32(a[i].qh)), _mm256_set1_epi8(16));
        __m256i u = _mm256_or_si256(nibbles(a[i].qs), hb);
        size_t off = sizeof(quant_block_q8_1) * (size_t)i;
        __m256 ds = row_scales(x, xs, R, off, h2f(a[i].d));
        __m256 ms4 = row_scales(x, xs, R, off + 2, h2f(a[i].m));
        for (int r = 0; r < R; r++) {
            const quant_block_q8_1 *b = (const quant_block_q8_1 *)(x + r * xs) + i;
            __m256i p =
                QDOT_U8S8(_mm256_setzero_si256(), u, _mm256_loadu_si256((const __m256i *)b->qs));
            acc[r] = _mm256_fmadd_ps(lane_of(ds, r), _mm256_cvtepi32_ps(p), acc[r]);
            ms[r] += _mm256_cvtss_f32(lane_of(ms4, r));
        }
    }
    for (int r = 0; r < R; r++) out[r] = hsum8(acc[r]) + ms[r];
}
ROWS_ENTRIES(q5_1)

/* The 8 six-bit scales and mins of a Q4_K/Q5_K block's 12 scale bytes (the layout
 * quant_scale_min_k4 reads one at a time) with four-byte words: w0 = bytes 0..3, w1 = 4..7,
 * w2 = 8..11. Scales 0..3 are w0's low 6 bits, mins 0..3 w1's; scales 4..7 are w2's low nibbles
 * topped by w0's 2 high bits, mins 4..7 w2's high nibbles topped by w1's. */
static inline void k4_unpack(const uint8_t *q, uint8_t sc[8], uint8_t mn[8]) {
    uint32_t w0 = base_get_le32(q), w1 = base_get_le32(q + 4), w2 = base_get_le32(q + 8);
    uint32_t s0 = w0 & 0x3F3F3F3Fu, m0 = w1 & 0x3F3F3F3Fu;
    uint32_t s1 = (w2 & 0x0F0F0F0Fu) | ((w0 >> 6) & 0x03030303u) << 4;
    uint32_t m1 = ((w2 >> 4) & 0x0F0F0F0Fu) | ((w1 >> 6) & 0x03030303u) << 4;
    base_put_le32(sc, s0), base_put_le32(sc + 4, s1);
    base_put_le32(mn, m0), base_put_le32(mn + 4, m1);
}
/* sum_j mn[j] * (bsums[2j] + bsums[2j + 1]): the mins of 8 sub-blocks of 32 against Q8_K's
 * sums of 16 (a pair's sum fits int16: 2 * 16 * 128). */
static inline int k4_msum(const uint8_t mn[8], const int16_t *bsums) {
    __m128i pairs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)bsums),
                                   _mm_loadu_si128((const __m128i *)(bsums + 8)));
    __m128i p = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mn)), pairs);
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0x4E));
    p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 0xB1));
    return _mm_cvtsi128_si32(p);
}

/* Q4_K: per 64-element chunk, 32 bytes give the low nibbles (sub-block 2c) and the high ones
 * (2c + 1); maddubs pairs stay within int16 (15 * 128 * 2, Q5_K's 31 * 128 * 2); the mins come
 * from bsums. Q5_K: Q4_K's nibbles with a fifth bit: bit 2c of qh byte l for element 64c + l,
 * bit 2c + 1 for 64c + 32 + l. One body for both (Q5 a constant, QH its qh bytes). */
#define K45_ROWS(NAME, BLOCK, Q5, QH)                                                              \
    ROWS void NAME##_rows(int K, const BLOCK *a, const uint8_t *x, size_t xs, int R, float *out) { \
        const __m256i m4 = _mm256_set1_epi8(0xF), m16 = _mm256_set1_epi8(16);                      \
        __m256 acc[4];                                                                             \
        float accm[4];                                                                             \
        for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps(), accm[r] = 0;                     \
        for (int i = 0; i < K / QUANT_QK_K; i++) {                                                 \
            uint8_t sc[8], mn[8];                                                                  \
            k4_unpack(a[i].scales, sc, mn);                                                        \
            __m256i qh = Q5 ? _mm256_loadu_si256((const __m256i *)(QH)) : m16, sumi[4];            \
            for (int r = 0; r < R; r++) sumi[r] = _mm256_setzero_si256();                          \
            for (int c = 0; c < 4; c++) {                                                          \
                __m256i qb = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * c));              \
                __m256i lo = _mm256_and_si256(qb, m4);                                             \
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4);                       \
                if (Q5) {                                                                          \
                    lo = _mm256_or_si256(                                                          \
                        lo, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * c), 4),   \
                                             m16));                                                \
                    hi = _mm256_or_si256(                                                          \
                        hi, _mm256_and_si256(                                                      \
                                _mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * c + 1), 4), m16));     \
                }                                                                                  \
                __m256i s0 = _mm256_set1_epi16(sc[2 * c]), s1 = _mm256_set1_epi16(sc[2 * c + 1]);  \
                for (int r = 0; r < R; r++) {                                                      \
                    const int8_t *y = ((const quant_block_q8_k *)(x + r * xs) + i)->qs + 64 * c;   \
                    __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)y)); \
                    __m256i p1 =                                                                   \
                        _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(y + 32)));   \
                    sumi[r] = QDOT_I16(QDOT_I16(sumi[r], p0, s0), p1, s1);                         \
                }                                                                                  \
            }                                                                                      \
            float d = h2f(a[i].d), dmin = h2f(a[i].dmin);                                          \
            for (int r = 0; r < R; r++) {                                                          \
                const quant_block_q8_k *b = (const quant_block_q8_k *)(x + r * xs) + i;            \
                int msum = k4_msum(mn, b->bsums);                                                  \
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(b->d * d), _mm256_cvtepi32_ps(sumi[r]),    \
                                         acc[r]);                                                  \
                accm[r] += b->d * dmin * (float)msum;                                              \
            }                                                                                      \
        }                                                                                          \
        for (int r = 0; r < R; r++) out[r] = hsum8(acc[r]) - accm[r];                              \
    }                                                                                              \
    ROWS_ENTRIES(NAME)

K45_ROWS(q4_k, quant_block_q4_k, 0, a[i].qs)
K45_ROWS(q5_k, quant_block_q5_k, 1, a[i].qh)

/* ---- float weights (F32, F16, BF16; the activations prepared in the weights' type, F16/BF16
 * rows followed by the same values as floats, quant_act_wide_off): tiles of TW weight rows x up
 * to 4 activation rows, one accumulator of V_N lanes per (weight row, activation row) pair over
 * K in steps of V_N, summed across lanes, then the K % V_N tail in order. V names the vector:
 * V8 (__m256, both files) or V16 (__m512, dot_avx512.c), so AVX2's and AVX-512's bits differ,
 * each agreeing with the reference to rounding. K is walked in blocks of QUANT_FKB so that the four
 * activation rows' block stays near (32 KB: L1, or L2) while every weight tile of the chunk passes
 * over it (without, each tile re-read the activations from further away); between blocks a pair's
 * accumulator waits in memory, which is exact. 512 suited 8 lanes; with 16 it cost F16 prefill
 * 10-15%, and 2048 gives it back (quant_bench --type F16: K 2048 and 5632 at 175-200 GFLOP/s).
 * Every pair goes through exactly the same operations whatever the tile, so its bits depend neither
 * on the tile's shape nor on M nor on the thread split. */
#define QUANT_FKB 2048 /* elements of K per block (a multiple of 16) */
#define QUANT_FNW 16   /* the most weight rows per call (the driver's chunk) */

#define V8_T __m256
#define V8_N 8
#define V8_ZERO _mm256_setzero_ps
#define V8_LDU _mm256_loadu_ps
#define V8_STU _mm256_storeu_ps
#define V8_FMA _mm256_fmadd_ps
#define V8_HSUM hsum8

#define FLOAT_TILE(NAME, T, LOAD, CONV, V, W, R, XT, XLOAD, XCONV)                                 \
    static void NAME##_tile_##W##x##R(int K, int k0, int k1, const uint8_t *a, size_t as,          \
                                      const XT *x, size_t xs, float *accs, float *y, size_t ldy) { \
        V##_T acc[W][R];                                                                           \
        _Pragma("GCC unroll 8") for (int w = 0; w < W; w++)                                        \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) acc[w][r] =                        \
                k0 ? V##_LDU(accs + V##_N * (4 * w + r)) : V##_ZERO();                             \
        for (int i = k0; i < k1; i += V##_N) {                                                     \
            V##_T wv[W];                                                                           \
            _Pragma("GCC unroll 8") for (int w = 0; w < W; w++) {                                  \
                wv[w] = LOAD((const T *)(a + (size_t)w * as) + i);                                 \
                __asm__("" : "+v"(wv[w])); /* in a register: GCC had re-loaded it per FMA */       \
            }                                                                                      \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                  \
                V##_T xv = XLOAD(x + (size_t)r * xs + i);                                          \
                __asm__("" : "+v"(xv)); /* loaded once for the W products */                       \
                _Pragma("GCC unroll 8") for (int w = 0; w < W; w++) acc[w][r] =                    \
                    V##_FMA(wv[w], xv, acc[w][r]);                                                 \
            }                                                                                      \
        }                                                                                          \
        if (k1 < (K & ~(V##_N - 1))) {                                                             \
            for (int w = 0; w < W; w++)                                                            \
                for (int r = 0; r < R; r++) V##_STU(accs + V##_N * (4 * w + r), acc[w][r]);        \
            return;                                                                                \
        }                                                                                          \
        for (int w = 0; w < W; w++)                                                                \
            for (int r = 0; r < R; r++) {                                                          \
                const T *aw = (const T *)(a + (size_t)w * as);                                     \
                float s = V##_HSUM(acc[w][r]);                                                     \
                for (int k = K & ~(V##_N - 1); k < K; k++)                                         \
                    s += CONV(aw[k]) * XCONV(x[(size_t)r * xs + k]);                               \
                y[(size_t)r * ldy + (size_t)w] = s;                                                \
            }                                                                                      \
    }

/* NAME_tile, a quant_tile_fn: nw <= QUANT_FNW weight rows (ws bytes apart) x nr <= 4 activation
 * rows (xs bytes apart) into y (ldy floats a row). Several activation rows (prefill): TW weight
 * rows at a time and the rest one by one, block of K by block, the activations' floats (F16/BF16:
 * the copy after the row's own, quant_act_wide_off). One (decoding): the rows one by one, each
 * from end to end — one stream from memory per thread, which the prefetcher follows (TW
 * interleaved streams read 10-15% slower on Zen 4) — against the activations in the weights'
 * type. The same operations on the same values either way: the same bits. */
#define FLOAT_TILES(NAME, T, LOAD, CONV, V, TW)                                                    \
    FLOAT_TILE(NAME, T, LOAD, CONV, V, TW, 2, float, V##_LDU, conv_f32)                            \
    FLOAT_TILE(NAME, T, LOAD, CONV, V, TW, 3, float, V##_LDU, conv_f32)                            \
    FLOAT_TILE(NAME, T, LOAD, CONV, V, TW, 4, float, V##_LDU, conv_f32)                            \
    FLOAT_TILE(NAME, T, LOAD, CONV, V, 1, 1, T, LOAD, CONV)                                        \
    FLOAT_TILE(NAME, T, LOAD, CONV, V, 1, 2, float, V##_LDU, conv_f32)                             \
    FLOAT_TILE(NAME, T, LOAD, CONV, V, 1, 3, float, V##_LDU, conv_f32)                             \
    FLOAT_TILE(NAME, T, LOAD, CONV, V, 1, 4, float, V##_LDU, conv_f32)                             \
    static void NAME##_tile(int K, const void *w, size_t ws, int nw, const void *x, size_t xs,     \
                            int nr, float *y, size_t ldy) {                                        \
        typedef void (*tile_fn)(int, int, int, const uint8_t *, size_t, const float *, size_t,     \
                                float *, float *, size_t);                                         \
        static const tile_fn full[3] = {NAME##_tile_##TW##x2, NAME##_tile_##TW##x3,                \
                                        NAME##_tile_##TW##x4};                                     \
        static const tile_fn one[3] = {NAME##_tile_1x2, NAME##_tile_1x3, NAME##_tile_1x4};         \
        float accs[QUANT_FNW * 4 * V##_N];                                                         \
        const uint8_t *a = w;                                                                      \
        int KV = K & ~(V##_N - 1), k0 = 0;                                                         \
        BASE_ASSERT(nr >= 1 && nr <= 4 && nw >= 1 && nw <= QUANT_FNW);                             \
        if (nr == 1) { /* decoding gains nothing from blocks of K, which break the streams */      \
            for (int n = 0; n < nw; n++)                                                           \
                NAME##_tile_1x1(K, 0, KV, a + (size_t)n * ws, ws, x, xs / sizeof(T), accs, y + n,  \
                                ldy);                                                              \
            return;                                                                                \
        }                                                                                          \
        const float *xw =                                                                          \
            (const float *)((const uint8_t *)x +                                                   \
                            (sizeof(T) == sizeof(float) ? 0 : quant_act_wide_off(K)));             \
        size_t xf = xs / sizeof(float);                                                            \
        do {                                                                                       \
            int k1 = KV - k0 > QUANT_FKB ? k0 + QUANT_FKB : KV, n = 0;                             \
            for (; n + TW <= nw; n += TW)                                                          \
                full[nr - 2](K, k0, k1, a + (size_t)n * ws, ws, xw, xf, accs + 4 * V##_N * n,      \
                             y + n, ldy);                                                          \
            for (; n < nw; n++)                                                                    \
                one[nr - 2](K, k0, k1, a + (size_t)n * ws, ws, xw, xf, accs + 4 * V##_N * n,       \
                            y + n, ldy);                                                           \
            k0 = k1;                                                                               \
        } while (k0 < KV);                                                                         \
    }                                                                                              \
    static float dot_##NAME(int K, const void *w, const void *x) {                                 \
        float out, accs[4 * V##_N];                                                                \
        NAME##_tile_1x1(K, 0, K & ~(V##_N - 1), w, 0, x, 0, accs, &out, 1);                        \
        return out;                                                                                \
    }

static inline __m256 load_f8(const float *p) {
    return _mm256_loadu_ps(p);
}
static inline float conv_f32(float v) {
    return v;
}
static inline __m256 load_h8(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
static inline __m256 load_bf8(const uint16_t *p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}
static inline float bf2f(uint16_t h) {
    return quant_bf16_to_f32(h);
}

/* The kernel-table entries of the kernels above: the same in dot_avx2.c and dot_avx512.c, each
 * file's compilation of them (the file adds its own kernels after these). */
#define X86_KERNEL_ENTRIES                                                                         \
    [QUANT_F32] = {dot_f32, NULL, NULL, f32_tile}, [QUANT_F16] = {dot_f16, NULL, NULL, f16_tile},  \
    [QUANT_BF16] = {dot_bf16, NULL, NULL, bf16_tile},                                              \
    [QUANT_Q8_0] = {dot_q8_0, dot4_q8_0, dot4w2_q8_0, NULL},                                       \
    [QUANT_Q4_0] = {dot_q4_0, dot4_q4_0, dot4w2_q4_0, NULL},                                       \
    [QUANT_Q4_1] = {dot_q4_1, dot4_q4_1, NULL, NULL},                                              \
    [QUANT_Q5_0] = {dot_q5_0, dot4_q5_0, NULL, NULL},                                              \
    [QUANT_Q5_1] = {dot_q5_1, dot4_q5_1, NULL, NULL},                                              \
    [QUANT_Q4_K] = {dot_q4_k, dot4_q4_k, NULL, NULL},                                              \
    [QUANT_Q5_K] = {dot_q5_k, dot4_q5_k, NULL, NULL}

#endif
