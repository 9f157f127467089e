/* quant.c: the type table, half/bfloat16 conversions, and the reference dequantizers and
 * quantizers of every block format (docs/FORMATS.md, "Quantized weight types"). Plain C, one
 * row at a time: the fast paths are the dot products in dot*.c, not these. */
#include "quant/quant_int.h"

#include <math.h>
#include <string.h>

/* ---- the table: every ggml id up to GGML_TYPE_COUNT, so any id a file holds can be named.
 * block 0: an id ggml removed (no layout); weight 1: hearth computes with it. */
static const quant_traits TRAITS[QUANT_N_IDS] = {
    [0] = {"F32", 1, 4, 1, QUANT_F32},
    [1] = {"F16", 1, 2, 1, QUANT_F16},
    [2] = {"Q4_0", QUANT_QK, 18, 1, QUANT_Q8_0},
    [3] = {"Q4_1", QUANT_QK, 20, 1, QUANT_Q8_1},
    [4] = {"Q4_2", 0, 0, 0, QUANT_F32},
    [5] = {"Q4_3", 0, 0, 0, QUANT_F32},
    [6] = {"Q5_0", QUANT_QK, 22, 1, QUANT_Q8_0},
    [7] = {"Q5_1", QUANT_QK, 24, 1, QUANT_Q8_1},
    [8] = {"Q8_0", QUANT_QK, 34, 1, QUANT_Q8_0},
    [9] = {"Q8_1", QUANT_QK, 36, 0, QUANT_F32},
    [10] = {"Q2_K", QUANT_QK_K, 84, 1, QUANT_Q8_K},
    [11] = {"Q3_K", QUANT_QK_K, 110, 1, QUANT_Q8_K},
    [12] = {"Q4_K", QUANT_QK_K, 144, 1, QUANT_Q8_K},
    [13] = {"Q5_K", QUANT_QK_K, 176, 1, QUANT_Q8_K},
    [14] = {"Q6_K", QUANT_QK_K, 210, 1, QUANT_Q8_K},
    [15] = {"Q8_K", QUANT_QK_K, 292, 0, QUANT_F32},
    [16] = {"IQ2_XXS", QUANT_QK_K, 66, 0, QUANT_F32},
    [17] = {"IQ2_XS", QUANT_QK_K, 74, 0, QUANT_F32},
    [18] = {"IQ3_XXS", QUANT_QK_K, 98, 0, QUANT_F32},
    [19] = {"IQ1_S", QUANT_QK_K, 50, 0, QUANT_F32},
    [20] = {"IQ4_NL", QUANT_QK, 18, 0, QUANT_F32},
    [21] = {"IQ3_S", QUANT_QK_K, 110, 0, QUANT_F32},
    [22] = {"IQ2_S", QUANT_QK_K, 82, 0, QUANT_F32},
    [23] = {"IQ4_XS", QUANT_QK_K, 136, 0, QUANT_F32},
    [24] = {"I8", 1, 1, 0, QUANT_F32},
    [25] = {"I16", 1, 2, 0, QUANT_F32},
    [26] = {"I32", 1, 4, 0, QUANT_F32},
    [27] = {"I64", 1, 8, 0, QUANT_F32},
    [28] = {"F64", 1, 8, 0, QUANT_F32},
    [29] = {"IQ1_M", QUANT_QK_K, 56, 0, QUANT_F32},
    [30] = {"BF16", 1, 2, 1, QUANT_BF16},
    [31] = {"Q4_0_4_4", 0, 0, 0, QUANT_F32},
    [32] = {"Q4_0_4_8", 0, 0, 0, QUANT_F32},
    [33] = {"Q4_0_8_8", 0, 0, 0, QUANT_F32},
    [34] = {"TQ1_0", QUANT_QK_K, 54, 0, QUANT_F32},
    [35] = {"TQ2_0", QUANT_QK_K, 66, 0, QUANT_F32},
    [36] = {"IQ4_NL_4_4", 0, 0, 0, QUANT_F32},
    [37] = {"IQ4_NL_4_8", 0, 0, 0, QUANT_F32},
    [38] = {"IQ4_NL_8_8", 0, 0, 0, QUANT_F32},
};

const quant_traits *quant_traits_of(int type) {
    return type >= 0 && type < QUANT_N_IDS ? &TRAITS[type] : NULL;
}

const char *quant_type_name(int type) {
    const quant_traits *t = quant_traits_of(type);
    return t ? t->name : "unknown";
}

int quant_type_supported(int type) {
    const quant_traits *t = quant_traits_of(type);
    return t && t->weight;
}

int quant_row_bytes(int type, size_t n, size_t *out, base_err *e) {
    const quant_traits *t = quant_traits_of(type);
    if (!t) return base_fail(e, BASE_EINVAL, "unknown tensor type id %d", type);
    if (t->block == 0)
        return base_fail(e, BASE_EINVAL, "tensor type %s (id %d) was removed from ggml", t->name,
                         type);
    if (n % (size_t)t->block)
        return base_fail(e, BASE_EINVAL,
                         "a row of %zu elements is not a whole number of %s blocks "
                         "(%d elements each)",
                         n, t->name, t->block);
    if (base_mul_size(n / (size_t)t->block, (size_t)t->block_bytes, out))
        return base_fail(e, BASE_EINVAL, "a row of %zu %s elements overflows size_t", n, t->name);
    return BASE_OK;
}

/* ---- half and bfloat16 */

/* Without a branch, so that a row's loop vectorizes and the block dequantizers' scales inline:
 * the exponent and mantissa moved into a float's place and scaled by 2^112 (exact, subnormals
 * included); all-ones exponents (inf, NaN) keep their mantissa. */
float quant_f16_to_f32(uint16_t h) {
    uint32_t em = (uint32_t)(h & 0x7FFF) << 13, x;
    float f;
    memcpy(&f, &em, 4);
    f *= 0x1p112f;
    memcpy(&x, &f, 4);
    x = (h & 0x7C00) == 0x7C00 ? em | 0x7F800000u : x;
    x |= (uint32_t)(h & 0x8000) << 16;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t quant_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return (uint16_t)(sign | 0x7E00);  /* NaN stays a NaN */
    if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7C00); /* >= 65520 rounds to inf */
    if (ax < 0x38800000u) { /* below 2^-14: a subnormal, n * 2^-24 rounded to even */
        float a;
        memcpy(&a, &ax, 4);
        return (uint16_t)(sign | (uint16_t)nearbyintf(a * 0x1p24f));
    }
    uint32_t h = ((((ax >> 23) - 112) << 10) | ((ax & 0x7FFFFF) >> 13)), rem = ax & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* a carry into the exponent is right */
    return (uint16_t)(sign | h);
}

float quant_bf16_to_f32(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t quant_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 64); /* quiet NaN */
    return (uint16_t)((x + 0x7FFF + ((x >> 16) & 1)) >> 16);
}

#define F16(h) quant_f16_to_f32(h)

/* ---- reference dequantizers: one block at a time, the formulas of docs/FORMATS.md */

static void deq_q8_0(const quant_block_q8_0 *restrict b, float *restrict y) {
    float d = F16(b->d);
    for (int i = 0; i < QUANT_QK; i++) y[i] = d * b->qs[i];
}
static void deq_q8_1(const quant_block_q8_1 *restrict b, float *restrict y) {
    float d = F16(b->d);
    for (int i = 0; i < QUANT_QK; i++) y[i] = d * b->qs[i];
}
static void deq_q4_0(const quant_block_q4_0 *restrict b, float *restrict y) {
    float d = F16(b->d);
    for (int i = 0; i < 16; i++) y[i] = d * ((b->qs[i] & 0xF) - 8); /* two loops: they vectorize */
    for (int i = 0; i < 16; i++) y[i + 16] = d * ((b->qs[i] >> 4) - 8);
}
static void deq_q4_1(const quant_block_q4_1 *restrict b, float *restrict y) {
    float d = F16(b->d), m = F16(b->m);
    for (int i = 0; i < 16; i++) y[i] = d * (b->qs[i] & 0xF) + m;
    for (int i = 0; i < 16; i++) y[i + 16] = d * (b->qs[i] >> 4) + m;
}
static void deq_q5_0(const quant_block_q5_0 *restrict b, float *restrict y) {
    float d = F16(b->d);
    uint32_t qh = base_get_le32(b->qh);
    for (int i = 0; i < 16; i++) {
        y[i] = d * ((int)((b->qs[i] & 0xF) | ((qh >> i) & 1) << 4) - 16);
        y[i + 16] = d * ((int)((b->qs[i] >> 4) | ((qh >> (i + 16)) & 1) << 4) - 16);
    }
}
static void deq_q5_1(const quant_block_q5_1 *restrict b, float *restrict y) {
    float d = F16(b->d), m = F16(b->m);
    uint32_t qh = base_get_le32(b->qh);
    for (int i = 0; i < 16; i++) {
        y[i] = d * (float)((b->qs[i] & 0xF) | ((qh >> i) & 1) << 4) + m;
        y[i + 16] = d * (float)((b->qs[i] >> 4) | ((qh >> (i + 16)) & 1) << 4) + m;
    }
}
/* K-quants: element e of a super-block; for the 2-bit/3-bit/6-bit ones e = 128 h + 32 j + l
 * (h half, j the 2-bit plane, l 0..31) and its scale is number e / 16. Each loop runs over one
 * scale's elements (16 or 32) with the scale read once, so it vectorizes; the expression per
 * element is the formula's, the same bits. */
static void deq_q2_k(const quant_block_q2_k *restrict b, float *restrict y) {
    float d = F16(b->d), dmin = F16(b->dmin);
    for (int g = 0; g < QUANT_QK_K / 16; g++) { /* g = e / 16 = 8 h + 2 j + l / 16 */
        int h = g / 8, j = (g % 8) / 2, l0 = 16 * (g % 2), s = b->scales[g];
        for (int i = 0; i < 16; i++) {
            int q = (b->qs[32 * h + l0 + i] >> (2 * j)) & 3;
            y[16 * g + i] = d * (float)(s & 0xF) * (float)q - dmin * (float)(s >> 4);
        }
    }
}
static void deq_q3_k(const quant_block_q3_k *restrict b, float *restrict y) {
    float d = F16(b->d);
    for (int g = 0; g < QUANT_QK_K / 16; g++) {
        int h = g / 8, j = (g % 8) / 2, l0 = 16 * (g % 2), sc = quant_scale_q3_k(g, b->scales);
        for (int i = 0; i < 16; i++) {
            int l = l0 + i, q = (b->qs[32 * h + l] >> (2 * j)) & 3;
            q -= (b->hmask[l] & (1 << (4 * h + j))) ? 0 : 4;
            y[16 * g + i] = d * (float)sc * (float)q;
        }
    }
}
/* Q4_K/Q5_K: 4 chunks of 64; byte l of a chunk holds element l (low nibble) and 32 + l (high);
 * sub-block (of 32) e / 32 has a 6-bit scale and min. */
static void deq_q4_k(const quant_block_q4_k *restrict b, float *restrict y) {
    float d = F16(b->d), dmin = F16(b->dmin);
    for (int sb = 0; sb < QUANT_QK_K / 32; sb++) { /* sb = e / 32: chunk sb / 2, nibble sb % 2 */
        int sc, m;
        quant_scale_min_k4(sb, b->scales, &sc, &m);
        const uint8_t *qs = b->qs + 32 * (sb / 2);
        for (int l = 0; l < 32; l++) {
            int q = sb % 2 ? qs[l] >> 4 : qs[l] & 0xF;
            y[32 * sb + l] = d * (float)sc * (float)q - dmin * (float)m;
        }
    }
}
static void deq_q5_k(const quant_block_q5_k *restrict b, float *restrict y) {
    float d = F16(b->d), dmin = F16(b->dmin);
    for (int sb = 0; sb < QUANT_QK_K / 32; sb++) {
        int sc, m;
        quant_scale_min_k4(sb, b->scales, &sc, &m);
        const uint8_t *qs = b->qs + 32 * (sb / 2);
        for (int l = 0; l < 32; l++) {
            int q = sb % 2 ? qs[l] >> 4 : qs[l] & 0xF;
            q |= ((b->qh[l] >> sb) & 1) << 4; /* bit 2 c + hi = sb */
            y[32 * sb + l] = d * (float)sc * (float)q - dmin * (float)m;
        }
    }
}
/* Q6_K: per half h, element 128 h + 32 j + l takes its low 4 bits from ql[64 h + l + 32 (j&1)]
 * (low nibble for j < 2, high for j >= 2) and its top 2 bits from qh[32 h + l] bits 2j. */
static void deq_q6_k(const quant_block_q6_k *restrict b, float *restrict y) {
    float d = F16(b->d);
    for (int g = 0; g < QUANT_QK_K / 16; g++) {
        int h = g / 8, j = (g % 8) / 2, l0 = 16 * (g % 2), sc = b->scales[g];
        for (int i = 0; i < 16; i++) {
            int l = l0 + i, lo = b->ql[64 * h + l + 32 * (j & 1)];
            lo = j < 2 ? lo & 0xF : lo >> 4;
            int q = (lo | ((b->qh[32 * h + l] >> (2 * j)) & 3) << 4) - 32;
            y[16 * g + i] = d * (float)sc * (float)q;
        }
    }
}
static void deq_q8_k(const quant_block_q8_k *restrict b, float *restrict y) {
    for (int i = 0; i < QUANT_QK_K; i++) y[i] = b->d * b->qs[i];
}

void quant_dequantize_row(int type, const void *src, float *dst, size_t n) {
    const quant_traits *t = quant_traits_of(type);
    BASE_ASSERT(t && t->block > 0 && n % (size_t)t->block == 0);
    const uint8_t *p = src;
    size_t nb = n / (size_t)t->block, bs = (size_t)t->block_bytes, k = (size_t)t->block;
    /* one switch per row, a tight loop per type (fine-tuning a quantized base dequantizes every
     * matrix twice a step: ckpt_gguf_wsrc) */
#define EACH(fn)                                                                                   \
    for (size_t i = 0; i < nb; i++) fn((const void *)(p + i * bs), dst + i * k);                   \
    break
    switch (type) {
    case QUANT_F32:
        memcpy(dst, p, n * sizeof(float));
        break;
    case QUANT_F16:
        for (size_t i = 0; i < n; i++)
            dst[i] = quant_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    case QUANT_BF16:
        for (size_t i = 0; i < n; i++)
            dst[i] = quant_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    case QUANT_Q8_0:
        EACH(deq_q8_0);
    case QUANT_Q8_1:
        EACH(deq_q8_1);
    case QUANT_Q4_0:
        EACH(deq_q4_0);
    case QUANT_Q4_1:
        EACH(deq_q4_1);
    case QUANT_Q5_0:
        EACH(deq_q5_0);
    case QUANT_Q5_1:
        EACH(deq_q5_1);
    case QUANT_Q2_K:
        EACH(deq_q2_k);
    case QUANT_Q3_K:
        EACH(deq_q3_k);
    case QUANT_Q4_K:
        EACH(deq_q4_k);
    case QUANT_Q5_K:
        EACH(deq_q5_k);
    case QUANT_Q6_K:
        EACH(deq_q6_k);
    case QUANT_Q8_K:
        EACH(deq_q8_k);
    default:
        BASE_ASSERT(!"no dequantizer for this type");
    }
#undef EACH
}

void quant_dequantize_rows(int type, const void *src, float *dst, size_t rows, size_t cols) {
    size_t rb;
    base_err e;
    BASE_ASSERT(quant_row_bytes(type, cols, &rb, &e) == BASE_OK);
    const uint8_t *p = src;
    for (size_t r = 0; r < rows; r++) quant_dequantize_row(type, p + r * rb, dst + r * cols, cols);
}

/* ---- quantizers. The legacy types and Q8_* round to nearest from the block's extreme, as
 * llama.cpp's reference quantizers do (so their bytes agree with llama-quantize's). */

static float amax_of(const float *x, int n, float *signed_max) {
    float amax = 0, mx = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), mx = x[i];
    if (signed_max) *signed_max = mx;
    return amax;
}

static void q_q8_0(const float *x, quant_block_q8_0 *b) {
    float d = amax_of(x, QUANT_QK, NULL) / 127, id = d ? 1 / d : 0;
    b->d = quant_f32_to_f16(d);
    for (int i = 0; i < QUANT_QK; i++) b->qs[i] = (int8_t)roundf(x[i] * id);
}
static void q_q8_1(const float *x, quant_block_q8_1 *b) {
    float d = amax_of(x, QUANT_QK, NULL) / 127, id = d ? 1 / d : 0;
    int sum = 0;
    for (int i = 0; i < QUANT_QK; i++) {
        b->qs[i] = (int8_t)roundf(x[i] * id);
        sum += b->qs[i];
    }
    b->d = quant_f32_to_f16(d);
    b->s = quant_f32_to_f16((float)sum * d);
}
/* Q4_0/Q5_0: the value of largest magnitude maps to -8 (-16), exactly representable. */
static void q_q4_0(const float *x, quant_block_q4_0 *b) {
    float mx, d, id;
    amax_of(x, QUANT_QK, &mx);
    d = mx / -8, id = d ? 1 / d : 0;
    b->d = quant_f32_to_f16(d);
    for (int i = 0; i < 16; i++) {
        int a = (int)(x[i] * id + 8.5f), c = (int)(x[i + 16] * id + 8.5f);
        b->qs[i] = (uint8_t)((a > 15 ? 15 : a) | (c > 15 ? 15 : c) << 4);
    }
}
static void q_q5_0(const float *x, quant_block_q5_0 *b) {
    float mx, d, id;
    amax_of(x, QUANT_QK, &mx);
    d = mx / -16, id = d ? 1 / d : 0;
    b->d = quant_f32_to_f16(d);
    uint32_t qh = 0;
    for (int i = 0; i < 16; i++) {
        int a = (int)(x[i] * id + 16.5f), c = (int)(x[i + 16] * id + 16.5f);
        a = a > 31 ? 31 : a, c = c > 31 ? 31 : c;
        b->qs[i] = (uint8_t)((a & 0xF) | (c & 0xF) << 4);
        qh |= (uint32_t)(a >> 4) << i | (uint32_t)(c >> 4) << (i + 16);
    }
    base_put_le32(b->qh, qh);
}
/* Q4_1/Q5_1: min and max map to 0 and 15 (31). */
static void minmax(const float *x, int n, float *lo, float *hi) {
    *lo = *hi = x[0];
    for (int i = 1; i < n; i++) *lo = fminf(*lo, x[i]), *hi = fmaxf(*hi, x[i]);
}
static void q_q4_1(const float *x, quant_block_q4_1 *b) {
    float lo, hi;
    minmax(x, QUANT_QK, &lo, &hi);
    float d = (hi - lo) / 15, id = d ? 1 / d : 0;
    b->d = quant_f32_to_f16(d), b->m = quant_f32_to_f16(lo);
    for (int i = 0; i < 16; i++) {
        int a = (int)((x[i] - lo) * id + 0.5f), c = (int)((x[i + 16] - lo) * id + 0.5f);
        b->qs[i] = (uint8_t)((a > 15 ? 15 : a) | (c > 15 ? 15 : c) << 4);
    }
}
static void q_q5_1(const float *x, quant_block_q5_1 *b) {
    float lo, hi;
    minmax(x, QUANT_QK, &lo, &hi);
    float d = (hi - lo) / 31, id = d ? 1 / d : 0;
    b->d = quant_f32_to_f16(d), b->m = quant_f32_to_f16(lo);
    uint32_t qh = 0;
    for (int i = 0; i < 16; i++) {
        int a = (int)((x[i] - lo) * id + 0.5f), c = (int)((x[i + 16] - lo) * id + 0.5f);
        a = a > 31 ? 31 : a, c = c > 31 ? 31 : c;
        b->qs[i] = (uint8_t)((a & 0xF) | (c & 0xF) << 4);
        qh |= (uint32_t)(a >> 4) << i | (uint32_t)(c >> 4) << (i + 16);
    }
    base_put_le32(b->qh, qh);
}
/* Q8_K: the activations of the K-quant products. The value of largest magnitude maps to -127
 * (ggml's scale, so products match its CPU backend; the values stay within -127..127), d is a
 * float, and the sums of each 16 are kept for the K-quants' mins. */
static void q_q8_k(const float *x, quant_block_q8_k *b) {
    float mx;
    if (amax_of(x, QUANT_QK_K, &mx) == 0) {
        memset(b, 0, sizeof *b);
        return;
    }
    float iscale = -127.f / mx;
    for (int i = 0; i < QUANT_QK_K; i++) {
        int v = (int)nearbyintf(iscale * x[i]);
        b->qs[i] = (int8_t)(v > 127 ? 127 : v);
    }
    for (int j = 0; j < QUANT_QK_K / 16; j++) {
        int s = 0;
        for (int i = 0; i < 16; i++) s += b->qs[16 * j + i];
        b->bsums[j] = (int16_t)s;
    }
    b->d = 1 / iscale;
}

/* ---- activation quantizers: ggml's x86 CPU path, which is not its reference. Its AVX2
 * quantize_row_q8_0 / q8_1 scale by 127/amax (not 1/(amax/127)) and round half to even (the
 * vector conversion's default), so an activation's bytes differ from quant_quantize_row's
 * (llama-quantize's, kept for weights) in the last bit of ties and of x * scale; these give
 * ggml's. F16 and BF16 are the activations of F16 and BF16 weights (ggml rounds them before
 * vec_dot_f16 / vec_dot_bf16; stored as floats holding those values), F32 a copy. */
static float act_q8_block(const float *x, int8_t *qs) {
    float amax = amax_of(x, QUANT_QK, NULL), id = amax != 0 ? 127.f / amax : 0;
    for (int i = 0; i < QUANT_QK; i++) qs[i] = (int8_t)nearbyintf(x[i] * id);
    return amax / 127.f;
}

void quant_act_quantize_row(int act_type, const float *src, void *dst, size_t n) {
    const quant_traits *t = quant_traits_of(act_type);
    BASE_ASSERT(t && t->block > 0 && n % (size_t)t->block == 0);
    uint16_t *h = dst;
    float *wide = NULL; /* F16/BF16: the same values as floats, after the row's own */
    if (act_type == QUANT_F16 || act_type == QUANT_BF16)
        wide = (float *)((uint8_t *)dst + quant_act_wide_off((int)n));
    quant_block_q8_0 *b0 = dst;
    quant_block_q8_1 *b1 = dst;
    switch (act_type) {
    case QUANT_F32:
        memcpy(dst, src, n * sizeof(float));
        break;
    case QUANT_F16:
        for (size_t i = 0; i < n; i++) {
            h[i] = quant_f32_to_f16(src[i]);
            wide[i] = quant_f16_to_f32(h[i]);
        }
        break;
    case QUANT_BF16:
        for (size_t i = 0; i < n; i++) {
            h[i] = quant_f32_to_bf16(src[i]);
            wide[i] = quant_bf16_to_f32(h[i]);
        }
        break;
    case QUANT_Q8_0:
        for (size_t i = 0; i < n / QUANT_QK; i++)
            b0[i].d = quant_f32_to_f16(act_q8_block(src + QUANT_QK * i, b0[i].qs));
        break;
    case QUANT_Q8_1:
        for (size_t i = 0; i < n / QUANT_QK; i++) {
            float d = act_q8_block(src + QUANT_QK * i, b1[i].qs);
            int sum = 0;
            for (int j = 0; j < QUANT_QK; j++) sum += b1[i].qs[j];
            b1[i].d = quant_f32_to_f16(d);
            b1[i].s = quant_f32_to_f16((float)sum * d);
        }
        break;
    case QUANT_Q8_K:
        quant_quantize_row(QUANT_Q8_K, src, dst, n);
        break;
    default:
        BASE_ASSERT(!"not an activation type");
    }
}

/* ---- K-quant scale search. Each sub-block gets the scale (and min) of least squared error
 * over a grid of candidates around the naive one, each refitted by least squares to the
 * integers it rounds to (the idea of llama.cpp's make_qkx2_quants / make_qx_quants, with
 * uniform weights: the error measured is plain RMSE). */

static int clampi(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* x (n) ~ scale * q - min with q in 0..nmax and min >= 0; returns scale, *pmin = min. */
static float fit_asym(const float *x, int n, int nmax, float *pmin) {
    float lo, hi;
    minmax(x, n, &lo, &hi);
    lo = fminf(lo, 0);
    if (hi <= lo) {
        *pmin = -lo;
        return 0;
    }
    float best_a = (hi - lo) / (float)nmax, best_b = lo, best_err = INFINITY;
    for (int step = -10; step <= 10; step++) {
        float iscale = ((float)nmax + 0.1f * (float)step) / (hi - lo);
        double sq = 0, sx = 0, sqx = 0, sqq = 0, err = 0;
        int q[32];
        for (int i = 0; i < n; i++) {
            q[i] = clampi((int)nearbyintf((x[i] - lo) * iscale), 0, nmax);
            sq += q[i], sx += x[i], sqx += (double)q[i] * x[i], sqq += (double)q[i] * q[i];
        }
        double det = n * sqq - sq * sq, a, b;
        if (det <= 0) continue;
        a = (n * sqx - sq * sx) / det, b = (sx - a * sq) / n;
        if (b > 0) b = 0, a = sqq > 0 ? sqx / sqq : 0; /* min >= 0: the offset is never positive */
        if (a <= 0) continue;
        for (int i = 0; i < n; i++) {
            double r = a * q[i] + b - x[i];
            err += r * r;
        }
        if (err < best_err) best_err = (float)err, best_a = (float)a, best_b = (float)b;
    }
    *pmin = -best_b;
    return best_a;
}

/* x (n) ~ scale * q with q in -nmax..nmax-1; returns the (signed) scale. */
static float fit_sym(const float *x, int n, int nmax) {
    float amax = amax_of(x, n, NULL);
    if (amax == 0) return 0;
    float best = 0, best_gain = -1;
    for (int sgn = -1; sgn <= 1; sgn += 2)
        for (int step = -10; step <= 10; step++) {
            float iscale = (float)sgn * ((float)nmax + 0.1f * (float)step) / amax;
            double sqx = 0, sqq = 0;
            for (int i = 0; i < n; i++) {
                int q = clampi((int)nearbyintf(x[i] * iscale), -nmax, nmax - 1);
                sqx += (double)q * x[i], sqq += (double)q * q;
            }
            /* the error of the refitted scale sqx/sqq is sum x^2 - sqx^2/sqq: maximize the gain */
            if (sqq > 0 && sqx * sqx / sqq > best_gain)
                best_gain = sqx * sqx / sqq, best = (float)(sqx / sqq);
        }
    return best;
}

/* Quantizes sub-block scales v[n] >= 0 to 0..nmax: returns the super scale d (as stored, f16). */
static uint16_t quantize_scales(const float *v, int n, int nmax, int *out) {
    float mx = 0;
    for (int i = 0; i < n; i++) mx = fmaxf(mx, v[i]);
    uint16_t dh = quant_f32_to_f16(mx / (float)nmax);
    float d = F16(dh), id = d > 0 ? 1 / d : 0;
    for (int i = 0; i < n; i++) out[i] = clampi((int)nearbyintf(v[i] * id), 0, nmax);
    return dh;
}

/* Q4_K and Q5_K: 8 sub-blocks of 32, 6-bit scales and mins packed as quant_scale_min_k4 reads
 * them; q (256) gets the final integers 0..nmax. */
static void q_k4_scales(const float *x, int nmax, uint16_t *d, uint16_t *dmin, uint8_t *scales,
                        int *q) {
    float sc[8], mn[8];
    int ls[8], lm[8];
    for (int j = 0; j < 8; j++) sc[j] = fit_asym(x + 32 * j, 32, nmax, &mn[j]);
    *d = quantize_scales(sc, 8, 63, ls);
    *dmin = quantize_scales(mn, 8, 63, lm);
    memset(scales, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            scales[j] |= (uint8_t)ls[j], scales[j + 4] |= (uint8_t)lm[j];
        } else {
            scales[j + 4] = (uint8_t)((ls[j] & 0xF) | (lm[j] & 0xF) << 4);
            scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
    float fd = F16(*d), fm = F16(*dmin);
    for (int j = 0; j < 8; j++) {
        float dl = fd * (float)ls[j], ml = fm * (float)lm[j];
        for (int i = 0; i < 32; i++)
            q[32 * j + i] =
                dl > 0 ? clampi((int)nearbyintf((x[32 * j + i] + ml) / dl), 0, nmax) : 0;
    }
}
static void q_q4_k(const float *x, quant_block_q4_k *b) {
    int q[QUANT_QK_K];
    q_k4_scales(x, 15, &b->d, &b->dmin, b->scales, q);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            b->qs[32 * c + l] = (uint8_t)(q[64 * c + l] | q[64 * c + 32 + l] << 4);
}
static void q_q5_k(const float *x, quant_block_q5_k *b) {
    int q[QUANT_QK_K];
    q_k4_scales(x, 31, &b->d, &b->dmin, b->scales, q);
    memset(b->qh, 0, sizeof b->qh);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int a = q[64 * c + l], h = q[64 * c + 32 + l];
            b->qs[32 * c + l] = (uint8_t)((a & 0xF) | (h & 0xF) << 4);
            b->qh[l] |= (uint8_t)((a >> 4) << (2 * c) | (h >> 4) << (2 * c + 1));
        }
}
static void q_q2_k(const float *x, quant_block_q2_k *b) {
    float sc[16], mn[16];
    int ls[16], lm[16], q[QUANT_QK_K];
    for (int j = 0; j < 16; j++) sc[j] = fit_asym(x + 16 * j, 16, 3, &mn[j]);
    b->d = quantize_scales(sc, 16, 15, ls);
    b->dmin = quantize_scales(mn, 16, 15, lm);
    float fd = F16(b->d), fm = F16(b->dmin);
    for (int j = 0; j < 16; j++) {
        b->scales[j] = (uint8_t)(ls[j] | lm[j] << 4);
        float dl = fd * (float)ls[j], ml = fm * (float)lm[j];
        for (int i = 0; i < 16; i++)
            q[16 * j + i] = dl > 0 ? clampi((int)nearbyintf((x[16 * j + i] + ml) / dl), 0, 3) : 0;
    }
    memset(b->qs, 0, sizeof b->qs);
    for (int e = 0; e < QUANT_QK_K; e++)
        b->qs[32 * (e / 128) + e % 32] |= (uint8_t)(q[e] << (2 * ((e % 128) / 32)));
}
/* Q3_K and Q6_K: 16 signed sub-block scales of 16; the one of largest magnitude maps to
 * -smax (-32 for Q3_K's 6 bits, -128 for Q6_K's 8), as the symmetric values do. */
static uint16_t sym_scales(const float *x, int nmax, int smax, int *ls) {
    float sc[16], mx = 0, amax = 0;
    for (int j = 0; j < 16; j++) {
        sc[j] = fit_sym(x + 16 * j, 16, nmax);
        if (fabsf(sc[j]) > amax) amax = fabsf(sc[j]), mx = sc[j];
    }
    if (amax == 0) {
        for (int j = 0; j < 16; j++) ls[j] = 0;
        return 0;
    }
    uint16_t dh = quant_f32_to_f16(mx / (float)-smax);
    float d = F16(dh), id = d != 0 ? 1 / d : 0;
    for (int j = 0; j < 16; j++) ls[j] = clampi((int)nearbyintf(sc[j] * id), -smax, smax - 1);
    return dh;
}
static void q_q3_k(const float *x, quant_block_q3_k *b) {
    int ls[16], q[QUANT_QK_K];
    b->d = sym_scales(x, 4, 32, ls);
    float d = F16(b->d);
    memset(b->scales, 0, sizeof b->scales);
    for (int j = 0; j < 16; j++) {
        int u = ls[j] + 32;
        b->scales[j % 8] |= (uint8_t)((u & 0xF) << (4 * (j / 8)));
        b->scales[8 + j % 4] |= (uint8_t)((u >> 4) << (2 * (j / 4)));
        float dl = d * (float)ls[j];
        for (int i = 0; i < 16; i++)
            q[16 * j + i] = dl != 0 ? clampi((int)nearbyintf(x[16 * j + i] / dl), -4, 3) + 4 : 4;
    }
    memset(b->qs, 0, sizeof b->qs);
    memset(b->hmask, 0, sizeof b->hmask);
    for (int e = 0; e < QUANT_QK_K; e++) {
        int h = e / 128, j = (e % 128) / 32, l = e % 32;
        b->qs[32 * h + l] |= (uint8_t)((q[e] & 3) << (2 * j));
        if (q[e] & 4) b->hmask[l] |= (uint8_t)(1 << (4 * h + j));
    }
}
static void q_q6_k(const float *x, quant_block_q6_k *b) {
    int ls[16], q[QUANT_QK_K];
    b->d = sym_scales(x, 32, 128, ls);
    float d = F16(b->d);
    for (int j = 0; j < 16; j++) {
        b->scales[j] = (int8_t)ls[j];
        float dl = d * (float)ls[j];
        for (int i = 0; i < 16; i++)
            q[16 * j + i] =
                dl != 0 ? clampi((int)nearbyintf(x[16 * j + i] / dl), -32, 31) + 32 : 32;
    }
    memset(b->ql, 0, sizeof b->ql);
    memset(b->qh, 0, sizeof b->qh);
    for (int e = 0; e < QUANT_QK_K; e++) {
        int h = e / 128, j = (e % 128) / 32, l = e % 32;
        b->ql[64 * h + l + 32 * (j & 1)] |= (uint8_t)((q[e] & 0xF) << (4 * (j >> 1)));
        b->qh[32 * h + l] |= (uint8_t)((q[e] >> 4) << (2 * j));
    }
}

void quant_quantize_row(int type, const float *src, void *dst, size_t n) {
    const quant_traits *t = quant_traits_of(type);
    BASE_ASSERT(t && t->block > 0 && n % (size_t)t->block == 0);
    uint8_t *p = dst;
    size_t nb = n / (size_t)t->block, bs = (size_t)t->block_bytes;
    for (size_t i = 0; i < nb; i++, p += bs, src += t->block) {
        uint16_t h;
        switch (type) {
        case QUANT_F32:
            memcpy(p, src, 4);
            break;
        case QUANT_F16:
            h = quant_f32_to_f16(*src), p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
            break;
        case QUANT_BF16:
            h = quant_f32_to_bf16(*src), p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
            break;
        case QUANT_Q8_0:
            q_q8_0(src, (void *)p);
            break;
        case QUANT_Q8_1:
            q_q8_1(src, (void *)p);
            break;
        case QUANT_Q4_0:
            q_q4_0(src, (void *)p);
            break;
        case QUANT_Q4_1:
            q_q4_1(src, (void *)p);
            break;
        case QUANT_Q5_0:
            q_q5_0(src, (void *)p);
            break;
        case QUANT_Q5_1:
            q_q5_1(src, (void *)p);
            break;
        case QUANT_Q2_K:
            q_q2_k(src, (void *)p);
            break;
        case QUANT_Q3_K:
            q_q3_k(src, (void *)p);
            break;
        case QUANT_Q4_K:
            q_q4_k(src, (void *)p);
            break;
        case QUANT_Q5_K:
            q_q5_k(src, (void *)p);
            break;
        case QUANT_Q6_K:
            q_q6_k(src, (void *)p);
            break;
        case QUANT_Q8_K:
            q_q8_k(src, (void *)p);
            break;
        default:
            BASE_ASSERT(!"no quantizer for this type");
        }
    }
}
