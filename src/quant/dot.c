/* dot.c: the scalar reference dot products (weight row . activation row, integer sums per block
 * scaled in float, in element order), the run-time choice of kernels, and the matmul driver
 * that quantizes activations once per row and splits output columns over threads. */
#include "quant/quant_int.h"

#include <cpuid.h>
#include <omp.h>
#include <string.h>

#define F16(h) quant_f16_to_f32(h)

static float dot_f32(int K, const void *w, const void *x) {
    const float *a = w, *b = x;
    float s = 0;
    for (int i = 0; i < K; i++) s += a[i] * b[i];
    return s;
}
/* F16/BF16 weights: the activations arrive in the weights' type (as ggml's vec_dot_f16/bf16
 * take them), so each product is exact in float */
static float dot_f16(int K, const void *w, const void *x) {
    const uint16_t *a = w, *b = x;
    float s = 0;
    for (int i = 0; i < K; i++) s += F16(a[i]) * F16(b[i]);
    return s;
}
static float dot_bf16(int K, const void *w, const void *x) {
    const uint16_t *a = w, *b = x;
    float s = 0;
    for (int i = 0; i < K; i++) s += quant_bf16_to_f32(a[i]) * quant_bf16_to_f32(b[i]);
    return s;
}
static float dot_q8_0(int K, const void *w, const void *x) {
    const quant_block_q8_0 *a = w, *b = x;
    float s = 0;
    for (int i = 0; i < K / QUANT_QK; i++) {
        int sum = 0;
        for (int j = 0; j < QUANT_QK; j++) sum += a[i].qs[j] * b[i].qs[j];
        s += F16(a[i].d) * F16(b[i].d) * (float)sum;
    }
    return s;
}
static float dot_q4_0(int K, const void *w, const void *x) {
    const quant_block_q4_0 *a = w;
    const quant_block_q8_0 *b = x;
    float s = 0;
    for (int i = 0; i < K / QUANT_QK; i++) {
        int sum = 0;
        for (int j = 0; j < 16; j++)
            sum +=
                ((a[i].qs[j] & 0xF) - 8) * b[i].qs[j] + ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + 16];
        s += F16(a[i].d) * F16(b[i].d) * (float)sum;
    }
    return s;
}
static float dot_q5_0(int K, const void *w, const void *x) {
    const quant_block_q5_0 *a = w;
    const quant_block_q8_0 *b = x;
    float s = 0;
    for (int i = 0; i < K / QUANT_QK; i++) {
        uint32_t qh = base_get_le32(a[i].qh);
        int sum = 0;
        for (int j = 0; j < 16; j++) {
            int lo = (int)((a[i].qs[j] & 0xF) | ((qh >> j) & 1) << 4) - 16;
            int hi = (int)((a[i].qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16;
            sum += lo * b[i].qs[j] + hi * b[i].qs[j + 16];
        }
        s += F16(a[i].d) * F16(b[i].d) * (float)sum;
    }
    return s;
}
/* Q4_1/Q5_1 . Q8_1: sum (d q + m) (dx qx) = d dx sum q qx + m (dx sum qx), the last factor
 * being the activation block's s. */
static float dot_q4_1(int K, const void *w, const void *x) {
    const quant_block_q4_1 *a = w;
    const quant_block_q8_1 *b = x;
    float s = 0;
    for (int i = 0; i < K / QUANT_QK; i++) {
        int sum = 0;
        for (int j = 0; j < 16; j++)
            sum += (a[i].qs[j] & 0xF) * b[i].qs[j] + (a[i].qs[j] >> 4) * b[i].qs[j + 16];
        s += F16(a[i].d) * F16(b[i].d) * (float)sum + F16(a[i].m) * F16(b[i].s);
    }
    return s;
}
static float dot_q5_1(int K, const void *w, const void *x) {
    const quant_block_q5_1 *a = w;
    const quant_block_q8_1 *b = x;
    float s = 0;
    for (int i = 0; i < K / QUANT_QK; i++) {
        uint32_t qh = base_get_le32(a[i].qh);
        int sum = 0;
        for (int j = 0; j < 16; j++) {
            int lo = (int)((a[i].qs[j] & 0xF) | ((qh >> j) & 1) << 4);
            int hi = (int)((a[i].qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
            sum += lo * b[i].qs[j] + hi * b[i].qs[j + 16];
        }
        s += F16(a[i].d) * F16(b[i].d) * (float)sum + F16(a[i].m) * F16(b[i].s);
    }
    return s;
}
/* K-quants . Q8_K: per super-block dx (d sum_j sc_j sum q y - dmin sum_j m_j sum y), the sums
 * of y coming from the activation's bsums. */
static float dot_q2_k(int K, const void *w, const void *x) {
    const quant_block_q2_k *a = w;
    const quant_block_q8_k *b = x;
    float s = 0;
    for (int i = 0; i < K / QUANT_QK_K; i++) {
        int isum = 0, msum = 0;
        for (int e = 0; e < QUANT_QK_K; e++) {
            int q = (a[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
            isum += (a[i].scales[e / 16] & 0xF) * q * b[i].qs[e];
        }
        for (int j = 0; j < 16; j++) msum += (a[i].scales[j] >> 4) * b[i].bsums[j];
        s += b[i].d * (F16(a[i].d) * (float)isum - F16(a[i].dmin) * (float)msum);
    }
    return s;
}
static float dot_q3_k(int K, const void *w, const void *x) {
    const quant_block_q3_k *a = w;
    const quant_block_q8_k *b = x;
    float s = 0;
    for (int i = 0; i < K / QUANT_QK_K; i++) {
        int isum = 0;
        for (int e = 0; e < QUANT_QK_K; e++) {
            int h = e / 128, j = (e % 128) / 32, l = e % 32;
            int q = (a[i].qs[32 * h + l] >> (2 * j)) & 3;
            if (!(a[i].hmask[l] & (1 << (4 * h + j)))) q -= 4;
            isum += quant_scale_q3_k(e / 16, a[i].scales) * q * b[i].qs[e];
        }
        s += b[i].d * F16(a[i].d) * (float)isum;
    }
    return s;
}
static float dot_q4_k(int K, const void *w, const void *x) {
    const quant_block_q4_k *a = w;
    const quant_block_q8_k *b = x;
    float s = 0;
    for (int i = 0; i < K / QUANT_QK_K; i++) {
        int isum = 0, msum = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m, sub = 0;
            quant_scale_min_k4(j, a[i].scales, &sc, &m);
            const uint8_t *qs = a[i].qs + 32 * (j / 2);
            for (int l = 0; l < 32; l++)
                sub += (j & 1 ? qs[l] >> 4 : qs[l] & 0xF) * b[i].qs[32 * j + l];
            isum += sc * sub;
            msum += m * (b[i].bsums[2 * j] + b[i].bsums[2 * j + 1]);
        }
        s += b[i].d * (F16(a[i].d) * (float)isum - F16(a[i].dmin) * (float)msum);
    }
    return s;
}
static float dot_q5_k(int K, const void *w, const void *x) {
    const quant_block_q5_k *a = w;
    const quant_block_q8_k *b = x;
    float s = 0;
    for (int i = 0; i < K / QUANT_QK_K; i++) {
        int isum = 0, msum = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m, sub = 0;
            quant_scale_min_k4(j, a[i].scales, &sc, &m);
            const uint8_t *qs = a[i].qs + 32 * (j / 2);
            for (int l = 0; l < 32; l++) {
                int q = (j & 1 ? qs[l] >> 4 : qs[l] & 0xF) | ((a[i].qh[l] >> j) & 1) << 4;
                sub += q * b[i].qs[32 * j + l];
            }
            isum += sc * sub;
            msum += m * (b[i].bsums[2 * j] + b[i].bsums[2 * j + 1]);
        }
        s += b[i].d * (F16(a[i].d) * (float)isum - F16(a[i].dmin) * (float)msum);
    }
    return s;
}
static float dot_q6_k(int K, const void *w, const void *x) {
    const quant_block_q6_k *a = w;
    const quant_block_q8_k *b = x;
    float s = 0;
    for (int i = 0; i < K / QUANT_QK_K; i++) {
        int isum = 0;
        for (int e = 0; e < QUANT_QK_K; e++) {
            int h = e / 128, j = (e % 128) / 32, l = e % 32;
            int lo = a[i].ql[64 * h + l + 32 * (j & 1)];
            lo = j < 2 ? lo & 0xF : lo >> 4;
            int q = (lo | ((a[i].qh[32 * h + l] >> (2 * j)) & 3) << 4) - 32;
            isum += a[i].scales[e / 16] * q * b[i].qs[e];
        }
        s += b[i].d * F16(a[i].d) * (float)isum;
    }
    return s;
}

quant_dot_fn quant_dot_scalar(int wtype) {
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

quant_isa quant_isa_best(void) {
    /* computed once; relaxed atomics: every thread that races here computes the same value */
    static int best = -1;
    int b = __atomic_load_n(&best, __ATOMIC_RELAXED);
    if (b < 0) {
        __builtin_cpu_init();
        /* f16c from cpuid itself: clang 14's __builtin_cpu_supports does not know the name */
        unsigned a, bx, c = 0, d;
        int f16c = __get_cpuid(1, &a, &bx, &c, &d) && (c >> 29 & 1);
        int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
        int avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                     __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                     __builtin_cpu_supports("avx512vnni");
        b = avx512 ? QUANT_ISA_AVX512 : avx2 ? QUANT_ISA_AVX2 : QUANT_ISA_SCALAR;
        __atomic_store_n(&best, b, __ATOMIC_RELAXED);
    }
    return (quant_isa)b;
}

/* isa's kernel set for wtype (every entry NULL on the scalar ISA: quant_dot_scalar is its dot;
 * and for a type id past the tables). */
static const quant_kernels *isa_kernels(int wtype, quant_isa isa) {
    static const quant_kernels none;
    if (wtype < 0 || wtype > QUANT_TYPE_MAX) return &none;
    return isa == QUANT_ISA_AVX512 ? &quant_kernels_avx512[wtype]
           : isa == QUANT_ISA_AVX2 ? &quant_kernels_avx2[wtype]
                                   : &none;
}

quant_dot_fn quant_dot_for(int wtype, quant_isa isa, quant_isa *used) {
    quant_dot_fn f = NULL;
    int i = (int)isa;
    for (; i > QUANT_ISA_SCALAR && !f; i--) {
        f = isa_kernels(wtype, (quant_isa)i)->dot;
        if (f) break;
    }
    if (!f) f = quant_dot_scalar(wtype), i = QUANT_ISA_SCALAR;
    if (used) *used = (quant_isa)i;
    return f;
}

const char *quant_kernel_name(int wtype) {
    static const char *names[QUANT_N_ISA] = {"scalar", "avx2", "avx512"};
    quant_isa used;
    if (quant_group_scalar(wtype))
        return quant_isa_best() >= QUANT_ISA_AVX512 ? names[QUANT_ISA_AVX512] : names[0];
    if (!quant_type_supported(wtype)) return "none";
    quant_dot_for(wtype, quant_isa_best(), &used);
    return names[used];
}

size_t quant_act_row_bytes(int wtype, int K) {
    const quant_traits *t = quant_wtraits(wtype);
    size_t n;
    BASE_ASSERT(t && t->weight && K > 0);
    int at = t->act_type;
    BASE_ASSERT(quant_row_bytes(at, (size_t)K, &n, NULL) == BASE_OK);
    /* F16/BF16 rows carry the same values as floats too */
    if (at == QUANT_F16 || at == QUANT_BF16) n = quant_act_wide_off(K) + (size_t)K * sizeof(float);
    /* Q8_0 rows carry their scales as floats and their blocks' sums (the R16 kernels') */
    if (at == QUANT_Q8_0) n += (size_t)(K / QUANT_QK) * (sizeof(float) + sizeof(int32_t));
    return n;
}

size_t quant_matmul_scratch_bytes(int wtype, int M, int K) {
    const quant_traits *t = quant_wtraits(wtype);
    BASE_ASSERT(t && t->weight && M > 0);
    if (t->act_type == QUANT_F32) return 0;
    size_t n;
    BASE_ASSERT(base_mul_size(quant_act_row_bytes(wtype, K), (size_t)M, &n) == 0);
    return n;
}

static void act_prepare_isa(void *A, const float *X, int wtype, int M, int K, quant_isa isa,
                            int nt) {
    const quant_traits *t = quant_wtraits(wtype);
    BASE_ASSERT(t && t->weight && M > 0 && K > 0 && K % t->block == 0 && A && X);
    size_t xrb = quant_act_row_bytes(wtype, K);
    quant_act_fn act = isa >= QUANT_ISA_AVX2 && quant_isa_best() >= QUANT_ISA_AVX2
                           ? quant_act_avx2(t->act_type)
                           : NULL;
#pragma omp parallel for schedule(static) num_threads(nt) if (M > 1)
    for (int m = 0; m < M; m++) {
        uint8_t *dst = (uint8_t *)A + (size_t)m * xrb;
        if (act)
            act(X + (size_t)m * K, dst, K);
        else
            quant_act_quantize_row(t->act_type, X + (size_t)m * K, dst, (size_t)K);
        if (t->act_type == QUANT_Q8_0) {
            const quant_block_q8_0 *b = (const quant_block_q8_0 *)dst;
            uint8_t *aux = dst + quant_q8_0_aux(K);
            int nb = K / QUANT_QK;
            for (int i = 0; i < nb; i++) {
                float d = quant_f16_to_f32(b[i].d);
                int32_t sum = 0;
                for (int j = 0; j < QUANT_QK; j++) sum += b[i].qs[j];
                memcpy(aux + sizeof(float) * (size_t)i, &d, sizeof d);
                memcpy(aux + sizeof(float) * (size_t)nb + sizeof sum * (size_t)i, &sum, sizeof sum);
            }
        }
    }
}

void quant_act_prepare(void *A, const float *X, int wtype, int M, int K) {
    act_prepare_isa(A, X, wtype, M, K, quant_isa_best(), omp_get_max_threads());
}

/* Output columns per chunk: a thread's unit of work. Fixed, so that which thread computes an
 * output never changes how (each output is one dot call whatever the split). */
#define QUANT_NCHUNK 16
/* Decoding (M <= QUANT_FEW_ROWS) deals the chunks out guided: a thread takes what is left over
 * the thread count, then less, down to QUANT_MIN_CHUNKS at a time, so each still streams long
 * runs of rows and the last pieces go to whichever thread is free. On a shared machine two
 * threads' shares of the memory bandwidth drift apart, and a static even split left each
 * waiting ~10% of a decode at the joins (guided decoded the 1B model's F16, Q8_0 and Q4_0 0-9%
 * faster than static, in one process, alternating every 4 tokens; smaller pieces, dynamic 4 or
 * 8, broke the streams). Prefill's compute-bound products keep an even split (guided cost the
 * repacked Q4_0/Q8_0 ones 1-2%): the least piece is then a thread's share. */
#define QUANT_FEW_ROWS 8
#define QUANT_MIN_CHUNKS 4
static int least_chunks(int M, int chunks, int nt) {
    return M <= QUANT_FEW_ROWS ? QUANT_MIN_CHUNKS : (chunks + nt - 1) / nt;
}

static void matmul_prepared_isa(float *Y, size_t ldy, const void *A, const void *W, int wtype,
                                int M, int N, int K, quant_isa isa, int nt) {
    const quant_traits *t = quant_wtraits(wtype);
    BASE_ASSERT(t && t->weight && M > 0 && N > 0 && K > 0 && K % t->block == 0);
    BASE_ASSERT(ldy >= (size_t)N && A && W && Y);
    size_t wrb, xrb = quant_act_row_bytes(wtype, K);
    quant_group_fn group = quant_group_scalar(wtype); /* non-NULL: an R16 id */
    BASE_ASSERT(quant_row_bytes(group ? wtype & ~QUANT_R16 : wtype, (size_t)K, &wrb, NULL) ==
                BASE_OK);
    const uint8_t *xa = A;
    if (group) { /* R16 weights: 16 rows a group, up to QUANT_R16_ROWS activation rows per call */
        BASE_ASSERT(N % 16 == 0);
        if (isa >= QUANT_ISA_AVX512 && quant_isa_best() >= QUANT_ISA_AVX512)
            group = quant_group_avx512(wtype);
        /* Many rows: G groups (in L2) pass over each QUANT_R16_ROWS rows of X in turn; few: one. */
        const int RR = QUANT_R16_ROWS;
        int ng = N / 16, G = M <= RR ? 1 : 4, nsc = (ng + G - 1) / G;
        const uint8_t *w8 = W;
#pragma omp parallel for schedule(guided, least_chunks(M, nsc, nt)) num_threads(nt)
        for (int c = 0; c < nsc; c++) {
            int g0 = c * G, g1 = g0 + G < ng ? g0 + G : ng;
            for (int m = 0; m < M; m += RR)
                for (int g = g0; g < g1; g++)
                    group(K, w8 + (size_t)g * 16 * wrb, xa + (size_t)m * xrb, xrb,
                          M - m < RR ? M - m : RR, Y + (size_t)m * ldy + (size_t)g * 16, ldy);
        }
        return;
    }
    quant_isa used;
    quant_dot_fn dot = quant_dot_for(wtype, isa, &used);
    /* where the kernel's ISA has them: four rows of X per weight row (dot4), and two weight
     * rows at once (dot4w2); float weights: tiles of several weight rows x four activation rows
     * — each bit-identical to dot */
    const quant_kernels *ks = isa_kernels(wtype, used);
    quant_dot4_fn dot4 = ks->dot4;
    quant_dot4w2_fn dot4w2 = ks->dot4w2;
    quant_tile_fn tile = ks->tile;
    const uint8_t *w8 = W;
    int nchunks = (N + QUANT_NCHUNK - 1) / QUANT_NCHUNK;
    /* Few rows (decoding): each weight row is read from memory once and dotted with every row
     * of X while it sits in L1. Many rows (prefill): a chunk of weight rows stays in L2 while
     * the rows of X pass over it, four at a time. */
#pragma omp parallel for schedule(guided, least_chunks(M, nchunks, nt)) num_threads(nt)
    for (int c = 0; c < nchunks; c++) {
        int n0 = c * QUANT_NCHUNK, n1 = n0 + QUANT_NCHUNK < N ? n0 + QUANT_NCHUNK : N;
        if (tile) {
            for (int m = 0; m < M; m += 4)
                tile(K, w8 + (size_t)n0 * wrb, wrb, n1 - n0, xa + (size_t)m * xrb, xrb,
                     M - m < 4 ? M - m : 4, Y + (size_t)m * ldy + n0, ldy);
            continue;
        }
        int mt = M <= QUANT_FEW_ROWS ? M : 4; /* rows of X per pass over the chunk */
        for (int m0 = 0; m0 < M; m0 += mt) {
            int m1 = m0 + mt < M ? m0 + mt : M;
            int n = n0;
            if (dot4w2 && m1 - m0 >= 4)
                for (; n + 2 <= n1; n += 2) { /* two weight rows x four activation rows */
                    const uint8_t *wr = w8 + (size_t)n * wrb;
                    int m = m0;
                    for (; m + 4 <= m1; m += 4) {
                        float o[8];
                        dot4w2(K, wr, wrb, xa + (size_t)m * xrb, xrb, o);
                        for (int r = 0; r < 4; r++) {
                            Y[(size_t)(m + r) * ldy + n] = o[r];
                            Y[(size_t)(m + r) * ldy + n + 1] = o[4 + r];
                        }
                    }
                    for (; m < m1; m++)
                        for (int j = 0; j < 2; j++)
                            Y[(size_t)m * ldy + n + j] =
                                dot(K, wr + (size_t)j * wrb, xa + (size_t)m * xrb);
                }
            for (; n < n1; n++) {
                const uint8_t *wr = w8 + (size_t)n * wrb;
                int m = m0;
                if (dot4)
                    for (; m + 4 <= m1; m += 4) {
                        float o[4];
                        dot4(K, wr, xa + (size_t)m * xrb, xrb, o);
                        for (int r = 0; r < 4; r++) Y[(size_t)(m + r) * ldy + n] = o[r];
                    }
                for (; m < m1; m++) Y[(size_t)m * ldy + n] = dot(K, wr, xa + (size_t)m * xrb);
            }
        }
    }
}

void quant_matmul_prepared(float *Y, size_t ldy, const void *A, const void *W, int wtype, int M,
                           int N, int K) {
    matmul_prepared_isa(Y, ldy, A, W, wtype, M, N, K, quant_isa_best(), omp_get_max_threads());
}

void quant_matmul_isa(float *Y, const float *X, const void *W, int wtype, int M, int N, int K,
                      void *scratch, quant_isa isa, int threads) {
    const quant_traits *t = quant_wtraits(wtype);
    BASE_ASSERT(t && t->weight && M > 0 && K > 0);
    int nt = threads > 0 ? threads : omp_get_max_threads();
    const void *A = X;
    if (t->act_type != QUANT_F32) {
        BASE_ASSERT(scratch != NULL);
        act_prepare_isa(scratch, X, wtype, M, K, isa, nt);
        A = scratch;
    }
    matmul_prepared_isa(Y, (size_t)N, A, W, wtype, M, N, K, isa, nt);
}

void quant_matmul(float *Y, const float *X, const void *W, int wtype, int M, int N, int K,
                  void *scratch) {
    quant_matmul_isa(Y, X, W, wtype, M, N, K, scratch, quant_isa_best(), 0);
}

void quant_ref_matmul(float *Y, const float *X, const void *W, int wtype, int M, int N, int K,
                      void *scratch) {
    quant_matmul_isa(Y, X, W, wtype, M, N, K, scratch, QUANT_ISA_SCALAR, 1);
}
