/* dot_avx2.c: AVX2 + FMA + F16C dot products, the same sums as dot.c's references (integer sums
 * per block, exact), scaled and accumulated in eight float lanes and summed across them at the
 * end: the order of float additions differs from the reference's, so results agree to rounding
 * (tests/quant states the tolerance), not bit for bit. Compiled for these extensions by a
 * target pragma whatever the build's -march; quant_isa_best calls them only where cpuid says
 * they run. */
#include "quant/quant_int.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

#define QDOT_U8S8(acc, u, s)                                                                       \
    _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)))
#define QDOT_I16(acc, p, c) _mm256_add_epi32(acc, _mm256_madd_epi16(p, c))
#include "quant/dot_x86.h"

FLOAT_TILES(f32, float, load_f8, conv_f32, V8, 3)
FLOAT_TILES(f16, uint16_t, load_h8, h2f, V8, 3)
FLOAT_TILES(bf16, uint16_t, load_bf8, bf2f, V8, 3)

/* The 2- and 3-bit K-quants have 16 scales, one per 16 elements; sc8 holds them as bytes. */
static inline int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}
/* sum_j v[j] * bsums[j] for 16 signed bytes v. */
static inline int dot_bsums(__m128i v, const int16_t *bsums) {
    __m256i b = _mm256_loadu_si256((const __m256i *)bsums);
    return hsum_i32(_mm256_madd_epi16(_mm256_cvtepi8_epi16(v), b));
}
/* The int16 scales of half h (lanes: sc[8h..8h+7] in both) from sc8. */
static inline __m256i half_scales(__m128i sc8, int h) {
    __m256i s16 = _mm256_cvtepi8_epi16(sc8);
    return h ? _mm256_permute2x128_si256(s16, s16, 0x11)
             : _mm256_permute2x128_si256(s16, s16, 0x00);
}
/* Plane j's scale vector from half_scales: sc[8h + 2j] in the low lane (elements l < 16), and
 * sc[8h + 2j + 1] in the high lane, by one byte shuffle. */
static inline __m256i plane_scales(__m256i half, int j) {
    __m256i idx = _mm256_add_epi16(_mm256_set1_epi16(0x0100),
                                   _mm256_set_m128i(_mm_set1_epi16((short)((4 * j + 2) * 0x0101)),
                                                    _mm_set1_epi16((short)(4 * j * 0x0101))));
    return _mm256_shuffle_epi8(half, idx);
}

/* Q2_K: element 128 h + 32 j + l is bits 2j of qs[32 h + l]; mins through bsums. */
ROWS void q2_k_rows(int K, const quant_block_q2_k *a, const uint8_t *x, size_t xs, int R,
                    float *out) {
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0xF);
    __m256 acc[4];
    float accm[4];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps(), accm[r] = 0;
    for (int i = 0; i < K / QUANT_QK_K; i++) {
        __m128i raw = _mm_loadu_si128((const __m128i *)a[i].scales);
        __m128i sc8 = _mm_and_si128(raw, m4), mn8 = _mm_and_si128(_mm_srli_epi16(raw, 4), m4);
        __m256i sumi[4];
        for (int r = 0; r < R; r++) sumi[r] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i qs = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * h));
            __m256i hs = half_scales(sc8, h);
            for (int j = 0; j < 4; j++) {
                __m256i u = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), m3);
                __m256i scv = plane_scales(hs, j);
                for (int r = 0; r < R; r++) {
                    const int8_t *y =
                        ((const quant_block_q8_k *)(x + r * xs) + i)->qs + 128 * h + 32 * j;
                    __m256i p = _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)y));
                    sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(p, scv));
                }
            }
        }
        float d = h2f(a[i].d), dmin = h2f(a[i].dmin);
        for (int r = 0; r < R; r++) {
            const quant_block_q8_k *b = (const quant_block_q8_k *)(x + r * xs) + i;
            int msum = dot_bsums(mn8, b->bsums);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(b->d * d), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
            accm[r] += b->d * dmin * (float)msum;
        }
    }
    for (int r = 0; r < R; r++) out[r] = hsum8(acc[r]) - accm[r];
}
ROWS_ENTRIES(q2_k)

/* Q3_K: u = low 2 bits + 4 * high bit (0..7) and q = u - 4, the 4 taken off through bsums.
 * The 16 six-bit scales are unpacked as bytes at once: low nibbles from bytes 0..7 (scales 0..7
 * the low ones, 8..15 the high ones), top 2 bits from bytes 8..11 shifted by 0, 2, 4, 6. */
ROWS void q3_k_rows(int K, const quant_block_q3_k *a, const uint8_t *x, size_t xs, int R,
                    float *out) {
    const __m256i m3 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1);
    const __m128i m4 = _mm_set1_epi8(0xF), m2 = _mm_set1_epi8(3);
    __m256 acc[4];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    for (int i = 0; i < K / QUANT_QK_K; i++) {
        __m128i lo8 = _mm_loadl_epi64((const __m128i *)a[i].scales);
        __m128i low =
            _mm_unpacklo_epi64(_mm_and_si128(lo8, m4), _mm_and_si128(_mm_srli_epi16(lo8, 4), m4));
        int u32 = (int)base_get_le32(a[i].scales + 8);
        __m128i top =
            _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32(u32), _mm_setr_epi32(0, 2, 4, 6)), m2);
        __m128i sc8 = _mm_sub_epi8(_mm_or_si128(low, _mm_slli_epi16(top, 4)), _mm_set1_epi8(32));
        __m256i hm = _mm256_loadu_si256((const __m256i *)a[i].hmask), sumi[4];
        for (int r = 0; r < R; r++) sumi[r] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i qs = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * h));
            __m256i hs = half_scales(sc8, h);
            for (int j = 0; j < 4; j++) {
                __m256i lo = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), m3);
                __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + j), m1);
                __m256i u = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));
                __m256i scv = plane_scales(hs, j);
                for (int r = 0; r < R; r++) {
                    const int8_t *y =
                        ((const quant_block_q8_k *)(x + r * xs) + i)->qs + 128 * h + 32 * j;
                    __m256i p = _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)y));
                    sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(p, scv));
                }
            }
        }
        float d = h2f(a[i].d);
        for (int r = 0; r < R; r++) {
            const quant_block_q8_k *b = (const quant_block_q8_k *)(x + r * xs) + i;
            int msum = dot_bsums(sc8, b->bsums);
            __m256i v = _mm256_sub_epi32(sumi[r], _mm256_setr_epi32(4 * msum, 0, 0, 0, 0, 0, 0, 0));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(b->d * d), _mm256_cvtepi32_ps(v), acc[r]);
        }
    }
    for (int r = 0; r < R; r++) out[r] = hsum8(acc[r]);
}
ROWS_ENTRIES(q3_k)

/* Q6_K: unsigned q (0..63) times y by maddubs, the 32 offset taken off through bsums. One
 * 32-element vector spans two scales: the low 128-bit lane takes the first, the high the next. */
ROWS void q6_k_rows(int K, const quant_block_q6_k *a, const uint8_t *x, size_t xs, int R,
                    float *out) {
    const __m256i m4 = _mm256_set1_epi8(0xF), m3 = _mm256_set1_epi8(3);
    __m256 acc[4];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    for (int i = 0; i < K / QUANT_QK_K; i++) {
        __m128i sc8 = _mm_loadu_si128((const __m128i *)a[i].scales);
        __m256i sumi[4];
        for (int r = 0; r < R; r++) sumi[r] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i ql0 = _mm256_loadu_si256((const __m256i *)(a[i].ql + 64 * h));
            __m256i ql1 = _mm256_loadu_si256((const __m256i *)(a[i].ql + 64 * h + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(a[i].qh + 32 * h));
            __m256i hs = half_scales(sc8, h);
            for (int j = 0; j < 4; j++) {
                /* element 128 h + 32 j + l: low 4 bits from ql0 (j even) or ql1 (j odd), the
                 * low nibble for j < 2; top 2 bits at bits 2j of qh */
                __m256i lo = j & 1 ? ql1 : ql0;
                if (j >= 2) lo = _mm256_srli_epi16(lo, 4);
                __m256i hb = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * j), m3);
                __m256i qj = _mm256_or_si256(_mm256_and_si256(lo, m4), _mm256_slli_epi16(hb, 4));
                __m256i scv = plane_scales(hs, j);
                for (int r = 0; r < R; r++) {
                    const int8_t *y =
                        ((const quant_block_q8_k *)(x + r * xs) + i)->qs + 128 * h + 32 * j;
                    __m256i p = _mm256_maddubs_epi16(qj, _mm256_loadu_si256((const __m256i *)y));
                    sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(p, scv));
                }
            }
        }
        float d = h2f(a[i].d);
        for (int r = 0; r < R; r++) {
            const quant_block_q8_k *b = (const quant_block_q8_k *)(x + r * xs) + i;
            int msum = dot_bsums(sc8, b->bsums);
            __m256i v =
                _mm256_sub_epi32(sumi[r], _mm256_setr_epi32(32 * msum, 0, 0, 0, 0, 0, 0, 0));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(b->d * d), _mm256_cvtepi32_ps(v), acc[r]);
        }
    }
    for (int r = 0; r < R; r++) out[r] = hsum8(acc[r]);
}
ROWS_ENTRIES(q6_k)

/* ---- activation quantizers: quant_act_quantize_row's bytes for Q8_0, Q8_1, Q8_K and F16,
 * eight floats at a time (the same operations: max of |x|, one division, one product and
 * rounding half to even, the conversion's default, per element — so the same bytes; tests/quant
 * checks it on ties). */
static inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}
/* 32 int32 in four vectors -> 32 int8 in order (saturating at -128, 127). */
static inline void pack32(__m256i a, __m256i b, __m256i c, __m256i d, int8_t *out) {
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)out, p);
}
/* One block of 32 as Q8_0's scale and values; returns the scale as float. */
static inline float act_block32(const float *x, int8_t *qs, uint16_t *dh) {
    const __m256 nz = _mm256_set1_ps(-0.0f);
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8), v2 = _mm256_loadu_ps(x + 16),
           v3 = _mm256_loadu_ps(x + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(nz, v0), _mm256_andnot_ps(nz, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(nz, v2), _mm256_andnot_ps(nz, v3)));
    float amax = hmax8(m), d = amax / 127.f, id = amax != 0 ? 127.f / amax : 0;
    __m256 s = _mm256_set1_ps(id);
    pack32(_mm256_cvtps_epi32(_mm256_mul_ps(v0, s)), _mm256_cvtps_epi32(_mm256_mul_ps(v1, s)),
           _mm256_cvtps_epi32(_mm256_mul_ps(v2, s)), _mm256_cvtps_epi32(_mm256_mul_ps(v3, s)), qs);
    *dh = quant_f32_to_f16(d);
    return d;
}
static void act_q8_0(const float *x, void *dst, int K) {
    quant_block_q8_0 *b = dst;
    for (int i = 0; i < K / QUANT_QK; i++) act_block32(x + QUANT_QK * i, b[i].qs, &b[i].d);
}
static void act_q8_1(const float *x, void *dst, int K) {
    quant_block_q8_1 *b = dst;
    for (int i = 0; i < K / QUANT_QK; i++) {
        float d = act_block32(x + QUANT_QK * i, b[i].qs, &b[i].d);
        int sum = 0;
        for (int j = 0; j < QUANT_QK; j++) sum += b[i].qs[j];
        b[i].s = quant_f32_to_f16((float)sum * d);
    }
}
static void act_q8_k(const float *x, void *dst, int K) {
    quant_block_q8_k *b = dst;
    const __m256 nz = _mm256_set1_ps(-0.0f);
    for (int i = 0; i < K / QUANT_QK_K; i++, x += QUANT_QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < QUANT_QK_K; j += 8)
            m = _mm256_max_ps(m, _mm256_andnot_ps(nz, _mm256_loadu_ps(x + j)));
        float amax = hmax8(m), mx = 0;
        if (amax == 0) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        for (int j = 0; j < QUANT_QK_K; j++) /* the first element of that magnitude, as the */
            if (fabsf(x[j]) == amax) {       /* scalar scan keeps */
                mx = x[j];
                break;
            }
        float iscale = -127.f / mx;
        __m256 s = _mm256_set1_ps(iscale);
        for (int j = 0; j < QUANT_QK_K; j += 32)
            pack32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j), s)),
                   _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8), s)),
                   _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 16), s)),
                   _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 24), s)), b[i].qs + j);
        for (int j = 0; j < QUANT_QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += b[i].qs[16 * j + l];
            b[i].bsums[j] = (int16_t)sum;
        }
        b[i].d = 1 / iscale;
    }
}

#pragma GCC pop_options

const quant_kernels quant_kernels_avx2[QUANT_TYPE_MAX + 1] = {
    X86_KERNEL_ENTRIES,
    [QUANT_Q2_K] = {dot_q2_k, dot4_q2_k, NULL, NULL},
    [QUANT_Q3_K] = {dot_q3_k, dot4_q3_k, NULL, NULL},
    [QUANT_Q6_K] = {dot_q6_k, dot4_q6_k, NULL, NULL},
};

static void act_f16(const float *x, void *dst, int K) {
    uint16_t *h = dst;
    float *wide = (float *)((uint8_t *)dst + quant_act_wide_off(K));
    int i = 0;
    for (; i + 8 <= K; i += 8) {
        __m128i v = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(h + i), v);
        _mm256_storeu_ps(wide + i, _mm256_cvtph_ps(v));
    }
    for (; i < K; i++) wide[i] = quant_f16_to_f32(h[i] = quant_f32_to_f16(x[i]));
}

quant_act_fn quant_act_avx2(int act_type) {
    switch (act_type) {
    case QUANT_F16:
        return act_f16;
    case QUANT_Q8_0:
        return act_q8_0;
    case QUANT_Q8_1:
        return act_q8_1;
    case QUANT_Q8_K:
        return act_q8_k;
    default:
        return NULL;
    }
}
