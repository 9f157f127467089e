/* dot_avx512.c: the kernels of dot_x86.h compiled with AVX512-VNNI's fused integer products
 * (vpdpbusd for unsigned x signed bytes, vpdpwssd for int16 pairs) on 256-bit vectors (VL):
 * the same sums as dot_avx2.c in fewer instructions, and the same bits. Only the types whose
 * kernels have the dot_x86.h form: Q8_0, Q4_0, Q4_K; the others fall back to AVX2. */
#include "quant/quant_int.h"

#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")

#define QDOT_U8S8(acc, u, s) _mm256_dpbusd_epi32(acc, u, s)
#define QDOT_I16(acc, p, c) _mm256_dpwssd_epi32(acc, p, c)
#include "quant/dot_x86.h"

/* float weights: 32 vector registers hold a 4 x 4 tile's 16 accumulators, the 4 weight vectors
 * and an activation vector (AVX2's 16 hold 3 x 4); the same operations per pair, the same bits */
FLOAT_TILES(f32, float, load_f8, conv_f32, 4)
FLOAT_TILES(f16, uint16_t, load_h8, h2f, 4)
FLOAT_TILES(bf16, uint16_t, load_bf8, bf2f, 4)

#pragma GCC pop_options

quant_tile_fn quant_tile_avx512(int wtype) {
    switch (wtype) {
    case QUANT_F32:
        return f32_tile;
    case QUANT_F16:
        return f16_tile;
    case QUANT_BF16:
        return bf16_tile;
    default:
        return NULL;
    }
}

quant_dot_fn quant_dot_avx512(int wtype) {
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
    case QUANT_Q4_K:
        return dot_q4_k;
    case QUANT_Q5_0:
        return dot_q5_0;
    case QUANT_Q4_1:
        return dot_q4_1;
    case QUANT_Q5_1:
        return dot_q5_1;
    case QUANT_Q5_K:
        return dot_q5_k;
    default:
        return NULL;
    }
}

quant_dot4w2_fn quant_dot4w2_avx512(int wtype) {
    switch (wtype) {
    case QUANT_Q8_0:
        return dot4w2_q8_0;
    case QUANT_Q4_0:
        return dot4w2_q4_0;
    default:
        return NULL;
    }
}

quant_dot4_fn quant_dot4_avx512(int wtype) {
    switch (wtype) {
    case QUANT_Q8_0:
        return dot4_q8_0;
    case QUANT_Q4_0:
        return dot4_q4_0;
    case QUANT_Q4_K:
        return dot4_q4_k;
    case QUANT_Q5_0:
        return dot4_q5_0;
    case QUANT_Q4_1:
        return dot4_q4_1;
    case QUANT_Q5_1:
        return dot4_q5_1;
    case QUANT_Q5_K:
        return dot4_q5_k;
    default:
        return NULL;
    }
}
