/* dot_avx512.c: the kernels of dot_x86.h compiled with AVX512-VNNI's fused integer products
 * (vpdpbusd for unsigned x signed bytes, vpdpwssd for int16 pairs) on 256-bit vectors (VL):
 * the same sums as dot_avx2.c in fewer instructions, and the same bits. Only the types whose
 * kernels have the dot_x86.h form: Q8_0, Q4_0, Q4_K; the others fall back to AVX2. */
#include "quant/quant_int.h"

#include <immintrin.h>
#include <string.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")

#define QDOT_U8S8(acc, u, s) _mm256_dpbusd_epi32(acc, u, s)
#define QDOT_I16(acc, p, c) _mm256_dpwssd_epi32(acc, p, c)
#include "quant/dot_x86.h"

/* F32 and F16 weights on 512-bit vectors: 16 lanes a pair, and 32 vector registers hold a 4 x 4
 * tile's 16 accumulators, the 4 weight vectors and an activation vector (AVX2's 16 hold 3 x 4
 * of 8 lanes). One 512-bit load of 16 weights a row and step: decoding reads the rows at the
 * memory's pace with two threads where 8 lanes did not. */
#define V16_T __m512
#define V16_N 16
#define V16_ZERO _mm512_setzero_ps
#define V16_LDU _mm512_loadu_ps
#define V16_STU _mm512_storeu_ps
#define V16_FMA _mm512_fmadd_ps
#define V16_HSUM _mm512_reduce_add_ps
static inline __m512 load_f32x16(const float *p) {
    return _mm512_loadu_ps(p);
}
static inline __m512 load_h16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
FLOAT_TILES(f32, float, load_f32x16, conv_f32, V16, 4)
FLOAT_TILES(f16, uint16_t, load_h16, h2f, V16, 4)
/* BF16 keeps 8 lanes: with 16 its logits on stories260K-BF16 moved from rms 0.005 to 0.014 of
 * llama.cpp's (tests/infer/test_gguf_logits.c allows 0.01) — activations rounded to BF16's 8
 * bits amplify any change in the order of a sum through the layers */
FLOAT_TILES(bf16, uint16_t, load_bf8, bf2f, V8, 4)

/* R16 weights (quant.h): per block, the 16 rows' scales as one vector and the 16 rows' quants
 * as 64-byte vectors of 4-byte words, each multiplied by one word of the activation block
 * broadcast (vpdpbusd: unsigned weights x signed activations), so the 16 lanes accumulate the
 * 16 rows' integer sums directly. The weights' unsigned offset (Q4_0: 8, Q8_0: 128) comes off
 * through the activation block's sum. Each (weight row, activation row) pair goes through the
 * same operations whatever R: acc = fma(isum, dw * dx, acc) per block, in block order. */
ROWS void r16_rows(int K, const uint8_t *g, const uint8_t *x, size_t xs, int R, float *y,
                   size_t ldy, int q8) {
    const int nb = K / QUANT_QK, bb = q8 ? 34 : 18;
    const size_t aux = quant_q8_0_aux(K);
    const __m512i m4 = _mm512_set1_epi8(0xF);
    __m512 acc[QUANT_R16_ROWS];
    for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const uint8_t *o = g + (size_t)i * 16 * (size_t)bb;
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)o));
        __m512i q[8];
        if (q8)
            for (int t = 0; t < 8; t++) q[t] = _mm512_loadu_si512((const void *)(o + 32 + 64 * t));
        else
            for (int t = 0; t < 4; t++) {
                __m512i v = _mm512_loadu_si512((const void *)(o + 32 + 64 * t));
                q[t] = _mm512_and_si512(v, m4);
                q[4 + t] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            }
        for (int r = 0; r < R; r++) {
            const uint8_t *xr = x + (size_t)r * xs;
            const uint8_t *yq = xr + (size_t)i * sizeof(quant_block_q8_0) + 2;
            __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
            for (int t = 0; t < 4; t++) {
                int32_t a, b;
                memcpy(&a, yq + 4 * t, 4);
                memcpy(&b, yq + 16 + 4 * t, 4);
                s0 = _mm512_dpbusd_epi32(s0, q[t], _mm512_set1_epi32(a));
                s1 = _mm512_dpbusd_epi32(s1, q[4 + t], _mm512_set1_epi32(b));
            }
            float dx;
            int32_t ys;
            memcpy(&dx, xr + aux + sizeof(float) * (size_t)i, sizeof dx);
            memcpy(&ys, xr + aux + sizeof(float) * (size_t)nb + sizeof ys * (size_t)i, sizeof ys);
            __m512i sum =
                _mm512_sub_epi32(_mm512_add_epi32(s0, s1), _mm512_set1_epi32(ys * (q8 ? 128 : 8)));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(dw, _mm512_set1_ps(dx)),
                                     acc[r]);
        }
    }
    for (int r = 0; r < R; r++) _mm512_storeu_ps(y + (size_t)r * ldy, acc[r]);
}
#define R16_ENTRY(NAME, Q8)                                                                        \
    static void NAME(int K, const void *w, const void *x, size_t xs, int nr, float *y,             \
                     size_t ldy) {                                                                 \
        switch (nr) {                                                                              \
        case 1:                                                                                    \
            r16_rows(K, w, x, xs, 1, y, ldy, Q8);                                                  \
            break;                                                                                 \
        case 2:                                                                                    \
            r16_rows(K, w, x, xs, 2, y, ldy, Q8);                                                  \
            break;                                                                                 \
        case 3:                                                                                    \
            r16_rows(K, w, x, xs, 3, y, ldy, Q8);                                                  \
            break;                                                                                 \
        case 4:                                                                                    \
            r16_rows(K, w, x, xs, 4, y, ldy, Q8);                                                  \
            break;                                                                                 \
        case 5:                                                                                    \
            r16_rows(K, w, x, xs, 5, y, ldy, Q8);                                                  \
            break;                                                                                 \
        case 6:                                                                                    \
            r16_rows(K, w, x, xs, 6, y, ldy, Q8);                                                  \
            break;                                                                                 \
        case 7:                                                                                    \
            r16_rows(K, w, x, xs, 7, y, ldy, Q8);                                                  \
            break;                                                                                 \
        default:                                                                                   \
            r16_rows(K, w, x, xs, 8, y, ldy, Q8);                                                  \
        }                                                                                          \
    }
R16_ENTRY(group_q4_0_r16, 0)
R16_ENTRY(group_q8_0_r16, 1)

#pragma GCC pop_options

const quant_kernels quant_kernels_avx512[QUANT_TYPE_MAX + 1] = {
    X86_KERNEL_ENTRIES,
};

quant_group_fn quant_group_avx512(int rtype) {
    return rtype == QUANT_Q4_0_R16   ? group_q4_0_r16
           : rtype == QUANT_Q8_0_R16 ? group_q8_0_r16
                                     : NULL;
}
