/* repack.c: the R16 layouts of Q4_0 and Q8_0 matrices (quant.h, "repacked weights"): the
 * repacking itself and the scalar reference products that read the layout element by element
 * (what the AVX512-VNNI kernels in dot_avx512.c are tested against). */
#include "quant/quant_int.h"

#include <omp.h>
#include <string.h>

#define F16(h) quant_f16_to_f32(h)
#define GROUP 16

const quant_traits *quant_wtraits(int wtype) {
    if (wtype == QUANT_Q4_0_R16 || wtype == QUANT_Q8_0_R16)
        return quant_traits_of(wtype & ~QUANT_R16);
    return quant_traits_of(wtype);
}

int quant_act_type(int wtype) {
    const quant_traits *t = quant_wtraits(wtype);
    BASE_ASSERT(t && t->weight);
    return t->act_type;
}

int quant_repack_type(int wtype, int N, int K) {
    if ((wtype != QUANT_Q4_0 && wtype != QUANT_Q8_0) || N <= 0 || N % GROUP != 0 || K <= 0 ||
        K % QUANT_QK != 0 || quant_isa_best() < QUANT_ISA_AVX512)
        return wtype;
    return wtype | QUANT_R16;
}

/* Bytes of one block of a group: 16 scales and 16 rows' quants. */
static size_t group_block_bytes(int rtype) {
    return GROUP * (size_t)quant_traits_of(rtype & ~QUANT_R16)->block_bytes;
}

void quant_repack(void *dst, const void *src, int wtype, int rtype, int N, int K) {
    const quant_traits *t = quant_traits_of(wtype);
    BASE_ASSERT(t && t->weight && N > 0 && K > 0 && K % t->block == 0 && dst && src);
    size_t rb;
    BASE_ASSERT(quant_row_bytes(wtype, (size_t)K, &rb, NULL) == BASE_OK);
    if (rtype == wtype) {
        memcpy(dst, src, rb * (size_t)N);
        return;
    }
    BASE_ASSERT(rtype == (wtype | QUANT_R16) && quant_wtraits(rtype) && N % GROUP == 0);
    int nb = K / QUANT_QK, words = wtype == QUANT_Q4_0 ? 4 : 8;
    size_t gbb = group_block_bytes(rtype);
#pragma omp parallel for schedule(static)
    for (int g = 0; g < N / GROUP; g++) {
        const uint8_t *s = (const uint8_t *)src + (size_t)g * GROUP * rb;
        uint8_t *d = (uint8_t *)dst + (size_t)g * GROUP * rb;
        for (int i = 0; i < nb; i++) {
            uint8_t *o = d + (size_t)i * gbb;
            for (int r = 0; r < GROUP; r++) {
                /* both block types start with the f16 scale, the quants right after it */
                const uint8_t *b = s + (size_t)r * rb + (size_t)i * (size_t)t->block_bytes;
                memcpy(o + 2 * r, b, 2);
                for (int w = 0; w < words; w++)
                    for (int k = 0; k < 4; k++) {
                        uint8_t q = b[2 + 4 * w + k];
                        o[2 * GROUP + 64 * w + 4 * r + k] = wtype == QUANT_Q8_0 ? q ^ 0x80 : q;
                    }
            }
        }
    }
}

/* The reference products: each output is sum over blocks of (dw * dx) * (integer sum), in block
 * order, as dot.c's dot_q4_0 / dot_q8_0 on the original rows. */
static void group_ref(int q8, int K, const void *w, const void *x, size_t xs, int nr, float *y,
                      size_t ldy) {
    const uint8_t *g = w;
    size_t bb = q8 ? sizeof(quant_block_q8_0) : sizeof(quant_block_q4_0);
    for (int m = 0; m < nr; m++) {
        const quant_block_q8_0 *b = (const void *)((const uint8_t *)x + (size_t)m * xs);
        for (int r = 0; r < GROUP; r++) {
            float s = 0;
            for (int i = 0; i < K / QUANT_QK; i++) {
                const uint8_t *o = g + (size_t)i * GROUP * bb, *q = o + 2 * GROUP + 4 * r;
                uint16_t d;
                memcpy(&d, o + 2 * r, 2);
                int sum = 0;
                /* byte j of row r's block sits at q[64 * (j / 4) + j % 4] */
                if (q8)
                    for (int j = 0; j < 32; j++)
                        sum += (int8_t)(q[64 * (j / 4) + j % 4] ^ 0x80) * b[i].qs[j];
                else
                    for (int j = 0; j < 16; j++) {
                        uint8_t v = q[64 * (j / 4) + j % 4];
                        sum += ((v & 0xF) - 8) * b[i].qs[j] + ((v >> 4) - 8) * b[i].qs[j + 16];
                    }
                s += F16(d) * F16(b[i].d) * (float)sum;
            }
            y[(size_t)m * ldy + (size_t)r] = s;
        }
    }
}
static void group_q4_0(int K, const void *w, const void *x, size_t xs, int nr, float *y,
                       size_t ldy) {
    group_ref(0, K, w, x, xs, nr, y, ldy);
}
static void group_q8_0(int K, const void *w, const void *x, size_t xs, int nr, float *y,
                       size_t ldy) {
    group_ref(1, K, w, x, xs, nr, y, ldy);
}

quant_group_fn quant_group_scalar(int rtype) {
    return rtype == QUANT_Q4_0_R16 ? group_q4_0 : rtype == QUANT_Q8_0_R16 ? group_q8_0 : NULL;
}
