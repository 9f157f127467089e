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

#pragma GCC pop_options

quant_dot_fn quant_dot_avx512(int wtype) {
    switch (wtype) {
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
