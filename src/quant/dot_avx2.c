/* dot_avx2.c: AVX2 + FMA + F16C dot products, the same sums as dot.c's references (integer sums
 * per block, exact), scaled and accumulated in eight float lanes and summed across them at the
 * end: the order of float additions differs from the reference's, so results agree to rounding
 * (tests/quant states the tolerance), not bit for bit. Compiled for these extensions by a
 * target pragma whatever the build's -march; quant_isa_best calls them only where cpuid says
 * they run. */
#include "quant/quant_int.h"

#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

#define QDOT_U8S8(acc, u, s)                                                                       \
    _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)))
#define QDOT_I16(acc, p, c) _mm256_add_epi32(acc, _mm256_madd_epi16(p, c))
#include "quant/dot_x86.h"

#define FLOAT_ROWS(NAME, T, LOAD, CONV)                                                            \
    ROWS void NAME##_rows(int K, const T *a, const float *x, size_t xs, int R, float *out) {       \
        __m256 s0[4], s1[4];                                                                       \
        for (int r = 0; r < R; r++) s0[r] = s1[r] = _mm256_setzero_ps();                           \
        int i = 0;                                                                                 \
        for (; i + 16 <= K; i += 16) {                                                             \
            __m256 w0 = LOAD(a + i), w1 = LOAD(a + i + 8);                                         \
            for (int r = 0; r < R; r++) {                                                          \
                s0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + r * xs + i), s0[r]);               \
                s1[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + r * xs + i + 8), s1[r]);           \
            }                                                                                      \
        }                                                                                          \
        for (; i + 8 <= K; i += 8) {                                                               \
            __m256 w0 = LOAD(a + i);                                                               \
            for (int r = 0; r < R; r++)                                                            \
                s0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + r * xs + i), s0[r]);               \
        }                                                                                          \
        for (int r = 0; r < R; r++) {                                                              \
            float s = hsum8(_mm256_add_ps(s0[r], s1[r]));                                          \
            for (int k = i; k < K; k++) s += CONV(a[k]) * x[r * xs + k];                           \
            out[r] = s;                                                                            \
        }                                                                                          \
    }                                                                                              \
    static float dot_##NAME(int K, const void *w, const void *x) {                                 \
        float out;                                                                                 \
        NAME##_rows(K, w, x, 0, 1, &out);                                                          \
        return out;                                                                                \
    }                                                                                              \
    static void dot4_##NAME(int K, const void *w, const void *x, size_t xs, float *out) {          \
        NAME##_rows(K, w, x, xs / sizeof(float), 4, out);                                          \
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
FLOAT_ROWS(f32, float, load_f8, conv_f32)
FLOAT_ROWS(f16, uint16_t, load_h8, h2f)
FLOAT_ROWS(bf16, uint16_t, load_bf8, quant_bf16_to_f32)

static float dot_q5_0(int K, const void *w, const void *x) {
    const quant_block_q5_0 *a = w;
    const quant_block_q8_0 *b = x;
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < K / QUANT_QK; i++) {
        __m256i hb = _mm256_and_si256(bits_to_bytes(base_get_le32(a[i].qh)), _mm256_set1_epi8(16));
        __m256i q = _mm256_sub_epi8(_mm256_or_si256(nibbles(a[i].qs), hb), _mm256_set1_epi8(16));
        __m256i p = dot_i8(q, _mm256_loadu_si256((const __m256i *)b[i].qs));
        acc =
            _mm256_fmadd_ps(_mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d)), _mm256_cvtepi32_ps(p), acc);
    }
    return hsum8(acc);
}
static float dot_q4_1(int K, const void *w, const void *x) {
    const quant_block_q4_1 *a = w;
    const quant_block_q8_1 *b = x;
    __m256 acc = _mm256_setzero_ps();
    float ms = 0;
    for (int i = 0; i < K / QUANT_QK; i++) {
        __m256i p = dot_u8(nibbles(a[i].qs), _mm256_loadu_si256((const __m256i *)b[i].qs));
        acc =
            _mm256_fmadd_ps(_mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d)), _mm256_cvtepi32_ps(p), acc);
        ms += h2f(a[i].m) * h2f(b[i].s);
    }
    return hsum8(acc) + ms;
}
static float dot_q5_1(int K, const void *w, const void *x) {
    const quant_block_q5_1 *a = w;
    const quant_block_q8_1 *b = x;
    __m256 acc = _mm256_setzero_ps();
    float ms = 0;
    for (int i = 0; i < K / QUANT_QK; i++) {
        __m256i hb = _mm256_and_si256(bits_to_bytes(base_get_le32(a[i].qh)), _mm256_set1_epi8(16));
        __m256i p = dot_u8(_mm256_or_si256(nibbles(a[i].qs), hb),
                           _mm256_loadu_si256((const __m256i *)b[i].qs));
        acc =
            _mm256_fmadd_ps(_mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d)), _mm256_cvtepi32_ps(p), acc);
        ms += h2f(a[i].m) * h2f(b[i].s);
    }
    return hsum8(acc) + ms;
}

/* 32 unsigned values u (0..127) times 32 activations, as 8 int32 sums, the first 16 products
 * scaled by s0 and the last 16 by s1 (the K-quants' sub-blocks of 16). */
static inline __m256i dot_u8_scaled(__m256i u, const int8_t *y, int s0, int s1) {
    __m256i p = _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)y));
    return _mm256_madd_epi16(
        p, _mm256_set_m128i(_mm_set1_epi16((short)s1), _mm_set1_epi16((short)s0)));
}

/* Q2_K: element 128 h + 32 j + l is bits 2j of qs[32 h + l]; mins through bsums. */
static float dot_q2_k(int K, const void *w, const void *x) {
    const quant_block_q2_k *a = w;
    const quant_block_q8_k *b = x;
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    float accm = 0;
    for (int i = 0; i < K / QUANT_QK_K; i++) {
        const uint8_t *sc = a[i].scales;
        int msum = 0;
        for (int j = 0; j < 16; j++) msum += (sc[j] >> 4) * b[i].bsums[j];
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i qs = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * h));
            for (int j = 0; j < 4; j++) {
                __m256i u = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), m3);
                int s = 8 * h + 2 * j;
                sumi = _mm256_add_epi32(sumi, dot_u8_scaled(u, b[i].qs + 128 * h + 32 * j,
                                                            sc[s] & 0xF, sc[s + 1] & 0xF));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(b[i].d * h2f(a[i].d)), _mm256_cvtepi32_ps(sumi), acc);
        accm += b[i].d * h2f(a[i].dmin) * (float)msum;
    }
    return hsum8(acc) - accm;
}
/* Q3_K: u = low 2 bits + 4 * high bit (0..7) and q = u - 4, the 4 taken off through bsums. */
static float dot_q3_k(int K, const void *w, const void *x) {
    const quant_block_q3_k *a = w;
    const quant_block_q8_k *b = x;
    const __m256i m3 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < K / QUANT_QK_K; i++) {
        int sc[16], msum = 0;
        for (int j = 0; j < 16; j++) {
            sc[j] = quant_scale_q3_k(j, a[i].scales);
            msum += sc[j] * b[i].bsums[j];
        }
        __m256i hm = _mm256_loadu_si256((const __m256i *)a[i].hmask), sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i qs = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * h));
            for (int j = 0; j < 4; j++) {
                __m256i lo = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), m3);
                __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + j), m1);
                __m256i u = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));
                int s = 8 * h + 2 * j;
                sumi = _mm256_add_epi32(
                    sumi, dot_u8_scaled(u, b[i].qs + 128 * h + 32 * j, sc[s], sc[s + 1]));
            }
        }
        sumi = _mm256_sub_epi32(sumi, _mm256_setr_epi32(4 * msum, 0, 0, 0, 0, 0, 0, 0));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(b[i].d * h2f(a[i].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum8(acc);
}

static float dot_q5_k(int K, const void *w, const void *x) {
    const quant_block_q5_k *a = w;
    const quant_block_q8_k *b = x;
    const __m256i m4 = _mm256_set1_epi8(0xF), m16 = _mm256_set1_epi8(16);
    __m256 acc = _mm256_setzero_ps();
    float accm = 0;
    for (int i = 0; i < K / QUANT_QK_K; i++) {
        int sc[8], mn[8], msum = 0;
        for (int j = 0; j < 8; j++) {
            quant_scale_min_k4(j, a[i].scales, &sc[j], &mn[j]);
            msum += mn[j] * (b[i].bsums[2 * j] + b[i].bsums[2 * j + 1]);
        }
        __m256i qh = _mm256_loadu_si256((const __m256i *)a[i].qh), sumi = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i qb = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * c));
            /* bit 2c of qh byte l is the fifth bit of element l, bit 2c + 1 that of 32 + l */
            __m256i h0 = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * c), 4), m16);
            __m256i h1 =
                _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * c + 1), 4), m16);
            __m256i lo = _mm256_or_si256(_mm256_and_si256(qb, m4), h0);
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4), h1);
            __m256i p0 =
                _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(b[i].qs + 64 * c)));
            __m256i p1 = _mm256_maddubs_epi16(
                hi, _mm256_loadu_si256((const __m256i *)(b[i].qs + 64 * c + 32)));
            p0 = _mm256_madd_epi16(p0, _mm256_set1_epi16((short)sc[2 * c]));
            p1 = _mm256_madd_epi16(p1, _mm256_set1_epi16((short)sc[2 * c + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        float d = b[i].d * h2f(a[i].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        accm += b[i].d * h2f(a[i].dmin) * (float)msum;
    }
    return hsum8(acc) - accm;
}
/* Q6_K: unsigned q (0..63) times y by maddubs, the 32 offset taken off through bsums. One
 * 32-element vector spans two scales: the low 128-bit lane takes the first, the high the next. */
ROWS void q6_k_rows(int K, const quant_block_q6_k *a, const uint8_t *x, size_t xs, int R,
                    float *out) {
    const __m256i m4 = _mm256_set1_epi8(0xF), m3 = _mm256_set1_epi8(3);
    __m256 acc[4];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    for (int i = 0; i < K / QUANT_QK_K; i++) {
        const int8_t *sc = a[i].scales;
        __m256i sumi[4];
        for (int r = 0; r < R; r++) sumi[r] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i ql0 = _mm256_loadu_si256((const __m256i *)(a[i].ql + 64 * h));
            __m256i ql1 = _mm256_loadu_si256((const __m256i *)(a[i].ql + 64 * h + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(a[i].qh + 32 * h));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
            q[1] = _mm256_or_si256(
                _mm256_and_si256(ql1, m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
            q[2] = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
            q[3] = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
            for (int j = 0; j < 4; j++) {
                const int8_t *s = sc + 8 * h + 2 * j;
                __m256i scv = _mm256_set_m128i(_mm_set1_epi16(s[1]), _mm_set1_epi16(s[0]));
                for (int r = 0; r < R; r++) {
                    const int8_t *y =
                        ((const quant_block_q8_k *)(x + r * xs) + i)->qs + 128 * h + 32 * j;
                    __m256i p = _mm256_maddubs_epi16(q[j], _mm256_loadu_si256((const __m256i *)y));
                    sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(p, scv));
                }
            }
        }
        float d = h2f(a[i].d);
        for (int r = 0; r < R; r++) {
            const quant_block_q8_k *b = (const quant_block_q8_k *)(x + r * xs) + i;
            int msum = 0;
            for (int j = 0; j < 16; j++) msum += sc[j] * b->bsums[j];
            __m256i v =
                _mm256_sub_epi32(sumi[r], _mm256_setr_epi32(32 * msum, 0, 0, 0, 0, 0, 0, 0));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(b->d * d), _mm256_cvtepi32_ps(v), acc[r]);
        }
    }
    for (int r = 0; r < R; r++) out[r] = hsum8(acc[r]);
}
/* One row only: the four-row form measured slower (33 vs 43 GFLOP/s prefill), its 4 x 4
 * planes of sums outgrowing the 16 registers. */
static float dot_q6_k(int K, const void *w, const void *x) {
    float out;
    q6_k_rows(K, w, x, 0, 1, &out);
    return out;
}

#pragma GCC pop_options

quant_dot_fn quant_dot_avx2(int wtype) {
    switch (wtype) {
    case QUANT_F32:
        return dot_f32;
    case QUANT_F16:
        return dot_f16;
    case QUANT_BF16:
        return dot_bf16;
    case QUANT_Q8_0:
        return dot_q8_0;
    case QUANT_Q4_0:
        return dot_q4_0;
    case QUANT_Q4_1:
        return dot_q4_1;
    case QUANT_Q5_0:
        return dot_q5_0;
    case QUANT_Q5_1:
        return dot_q5_1;
    case QUANT_Q2_K:
        return dot_q2_k;
    case QUANT_Q3_K:
        return dot_q3_k;
    case QUANT_Q4_K:
        return dot_q4_k;
    case QUANT_Q5_K:
        return dot_q5_k;
    case QUANT_Q6_K:
        return dot_q6_k;
    default:
        return NULL;
    }
}

quant_dot4_fn quant_dot4_avx2(int wtype) {
    switch (wtype) {
    case QUANT_F32:
        return dot4_f32;
    case QUANT_F16:
        return dot4_f16;
    case QUANT_BF16:
        return dot4_bf16;
    case QUANT_Q8_0:
        return dot4_q8_0;
    case QUANT_Q4_0:
        return dot4_q4_0;
    case QUANT_Q4_K:
        return dot4_q4_k;
    default:
        return NULL;
    }
}
