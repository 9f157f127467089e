/* quant_int.h: what src/quant's files and its tests share: the block layouts as C structs
 * (sizes asserted against docs/FORMATS.md), the per-ISA dot-product tables, and the matmul
 * driver with an explicit ISA so tests can run every kernel against the reference. */
#ifndef HEARTH_QUANT_INT_H
#define HEARTH_QUANT_INT_H

#include "quant/quant.h"

/* fp16 fields are stored as raw uint16_t bits; every struct is packed by construction (only
 * 1- and 2-byte members, float only first in Q8_K). */
typedef struct {
    uint16_t d;
    int8_t qs[QUANT_QK];
} quant_block_q8_0;
typedef struct {
    uint16_t d, s;
    int8_t qs[QUANT_QK];
} quant_block_q8_1;
typedef struct {
    uint16_t d;
    uint8_t qs[QUANT_QK / 2];
} quant_block_q4_0;
typedef struct {
    uint16_t d, m;
    uint8_t qs[QUANT_QK / 2];
} quant_block_q4_1;
typedef struct {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QUANT_QK / 2];
} quant_block_q5_0;
typedef struct {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[QUANT_QK / 2];
} quant_block_q5_1;
typedef struct {
    uint8_t scales[QUANT_QK_K / 16]; /* low nibble scale, high nibble min, per 16 */
    uint8_t qs[QUANT_QK_K / 4];
    uint16_t d, dmin;
} quant_block_q2_k;
typedef struct {
    uint8_t hmask[QUANT_QK_K / 8];
    uint8_t qs[QUANT_QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
} quant_block_q3_k;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[QUANT_QK_K / 2];
} quant_block_q4_k;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[QUANT_QK_K / 8];
    uint8_t qs[QUANT_QK_K / 2];
} quant_block_q5_k;
typedef struct {
    uint8_t ql[QUANT_QK_K / 2];
    uint8_t qh[QUANT_QK_K / 4];
    int8_t scales[QUANT_QK_K / 16];
    uint16_t d;
} quant_block_q6_k;
typedef struct {
    float d;
    int8_t qs[QUANT_QK_K];
    int16_t bsums[QUANT_QK_K / 16]; /* sum of each 16 qs */
} quant_block_q8_k;

_Static_assert(sizeof(quant_block_q8_0) == 34, "q8_0");
_Static_assert(sizeof(quant_block_q8_1) == 36, "q8_1");
_Static_assert(sizeof(quant_block_q4_0) == 18, "q4_0");
_Static_assert(sizeof(quant_block_q4_1) == 20, "q4_1");
_Static_assert(sizeof(quant_block_q5_0) == 22, "q5_0");
_Static_assert(sizeof(quant_block_q5_1) == 24, "q5_1");
_Static_assert(sizeof(quant_block_q2_k) == 84, "q2_k");
_Static_assert(sizeof(quant_block_q3_k) == 110, "q3_k");
_Static_assert(sizeof(quant_block_q4_k) == 144, "q4_k");
_Static_assert(sizeof(quant_block_q5_k) == 176, "q5_k");
_Static_assert(sizeof(quant_block_q6_k) == 210, "q6_k");
_Static_assert(sizeof(quant_block_q8_k) == 292, "q8_k");

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block's 12 scale bytes. */
static inline void quant_scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}
/* The signed 6-bit scale (-32..31) of sub-block j (0..15) of a Q3_K block. */
static inline int quant_scale_q3_k(int j, const uint8_t *s) {
    int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
    int hi = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
    return (lo | hi << 4) - 32;
}

/* The kernel sets, best last. */
typedef enum { QUANT_ISA_SCALAR, QUANT_ISA_AVX2, QUANT_ISA_AVX512, QUANT_N_ISA } quant_isa;

/* One dot product of a weight row (K elements of the weight type) with an activation row
 * (K elements of its act_type: for float weights their own type, floats, halves or bfloats). */
typedef float (*quant_dot_fn)(int K, const void *w, const void *x);

/* The dot products of one weight row with the 4 activation rows at x, x + xs, x + 2 xs and
 * x + 3 xs (xs in bytes) into out[0..3], each bit-identical to the same ISA's quant_dot_fn on
 * that row alone (the weight block is unpacked once for the four: prefill's reuse). */
typedef void (*quant_dot4_fn)(int K, const void *w, const void *x, size_t xs, float *out);
/* The same for two weight rows at w and w + ws (bytes) into out[0..3] and out[4..7], each
 * output bit-identical to quant_dot4_fn's (the activations loaded once for both). */
typedef void (*quant_dot4w2_fn)(int K, const void *w, size_t ws, const void *x, size_t xs,
                                float *out);

/* Float weights' tiles: nw weight rows (ws bytes apart) x nr (1..4) float activation rows (xs
 * bytes apart) into y[r * ldy + w], each output bit-identical to the same ISA's quant_dot_fn. */
typedef void (*quant_tile_fn)(int K, const void *w, size_t ws, int nw, const void *x, size_t xs,
                              int nr, float *y, size_t ldy);

/* An ISA's kernels for one weight type, each NULL where the ISA has none for it (dot NULL: the
 * type falls back to a lesser ISA's set, quant_dot_for). */
typedef struct quant_kernels {
    quant_dot_fn dot;
    quant_dot4_fn dot4;
    quant_dot4w2_fn dot4w2;
    quant_tile_fn tile;
} quant_kernels;
/* The largest weight type id, for the tables indexed by it. */
#define QUANT_TYPE_MAX QUANT_BF16
/* The ISA's sets, indexed by weight type (every entry NULL for a type it does not know). */
extern const quant_kernels quant_kernels_avx2[QUANT_TYPE_MAX + 1];
extern const quant_kernels quant_kernels_avx512[QUANT_TYPE_MAX + 1];

/* quant_act_prepare's scalar reference: n floats as activations of type act_type (a weight
 * type's act_type: F32, F16, BF16, Q8_0, Q8_1, Q8_K) in ggml's x86 CPU backend's rounding
 * (Q8_0/Q8_1: scale 127/amax, ties to even; not quant_quantize_row's); F16/BF16 rows followed
 * by their floats (quant_act_wide_off). */
void quant_act_quantize_row(int act_type, const float *src, void *dst, size_t n);

/* Quantizes K floats to an activation type (Q8_0, Q8_1, Q8_K, F16): the bytes of
 * quant_act_quantize_row, faster. NULL for other types. */
typedef void (*quant_act_fn)(const float *x, void *dst, int K);
quant_act_fn quant_act_avx2(int act_type);

#define QUANT_R16_ROWS 8 /* the most activation rows per R16 kernel call */
/* Repacked (R16) weights: 16 weight rows (one group, at w) x nr (1..QUANT_R16_ROWS) prepared
 * activation rows (xs bytes apart) into y[r * ldy + j], j < 16. Each output's operations do not
 * depend on nr. Q8_0 activation rows are prepared with their tail (quant_act_row_bytes): the K/32
 * scales as floats, then the K/32 sums of each block's 32 values as int32 (what the R16 kernels
 * need to take off the unsigned weights' offset). */
typedef void (*quant_group_fn)(int K, const void *w, const void *x, size_t xs, int nr, float *y,
                               size_t ldy);
quant_group_fn quant_group_scalar(int rtype); /* the reference; NULL for a non-R16 id */
quant_group_fn quant_group_avx512(int rtype);
/* The traits of a weight type, R16 ids answered with their original's; NULL if unknown. */
const quant_traits *quant_wtraits(int wtype);
/* The byte offsets of a prepared Q8_0 row's float scales and int32 block sums (K/32 each). */
static inline size_t quant_q8_0_aux(int K) {
    return (size_t)(K / QUANT_QK) * sizeof(quant_block_q8_0);
}
/* A prepared row of F16 or BF16 activations is the K values in that type, then from this byte
 * offset the same K values as floats. Decoding's one-row products read the 16-bit copy, widened
 * as loaded (as ggml's vec_dot_f16 takes it): half the bytes to keep in L1 while the weights
 * stream past (the floats of the FFN's down projection, 22 KB at K 5632, fell out of L1 and
 * cost that product a third of its speed). Prefill's tiles read the floats: widening in their
 * inner loop would compete with the products. */
static inline size_t quant_act_wide_off(int K) {
    return ((size_t)K * 2 + sizeof(float) - 1) & ~(sizeof(float) - 1);
}

/* The scalar reference's dot product of wtype, or NULL for a type it does not know. */
quant_dot_fn quant_dot_scalar(int wtype);
/* The best ISA this CPU runs (cpuid, cached). */
quant_isa quant_isa_best(void);
/* The dot product quant_matmul uses for wtype at most at isa (falling back to lower ones). */
quant_dot_fn quant_dot_for(int wtype, quant_isa isa, quant_isa *used);

/* quant_matmul with the kernels of at most isa; threads = 0: OpenMP's count, 1: one thread. */
void quant_matmul_isa(float *Y, const float *X, const void *W, int wtype, int M, int N, int K,
                      void *scratch, quant_isa isa, int threads);

#endif
