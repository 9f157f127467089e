/* tensor/kernels.c: the fast CPU kernels. Matrix products go through OpenBLAS sgemm (its
 * OpenMP build, so BLAS and our loops share one thread pool); everything else is OpenMP over
 * rows with SIMD inner loops. Reductions across rows (bias and norm-weight gradients, the
 * embedding scatter) are split by column instead of by row, so no two threads write the same
 * float and every sum runs in one fixed order: results do not depend on scheduling. */
#include "tensor.h"

#include "../base/base.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

void openblas_set_num_threads(int num_threads); /* from OpenBLAS; cblas.h may not declare it */

void tensor_set_threads(int n) {
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int tensor_threads(void) {
    return omp_get_max_threads();
}

/* This thread's share [*c0, *c1) of the columns [0, C), in chunks of whole cache lines.
 * Called inside a parallel region. */
static void column_range(int C, int *c0, int *c1) {
    int nt = omp_get_num_threads(), id = omp_get_thread_num();
    int per = ((C + nt - 1) / nt + 15) / 16 * 16;
    *c0 = id * per < C ? id * per : C;
    *c1 = *c0 + per < C ? *c0 + per : C;
}

/* exp and tanh that vectorize. glibc's expf/tanhf are scalar calls here (no -ffast-math),
 * which made GELU alone 10% of a GPT-2 training step. Cody-Waite range reduction
 * x = n ln2 + r, |r| <= ln2/2, then a degree-6 polynomial for e^r (the classic Cephes
 * coefficients) and 2^n built in the exponent bits: relative error ~2 ulp over the clamped
 * range [-87, 88] (below -87 it returns ~e^-87 instead of a denormal or 0, which no softmax or
 * sigmoid here can tell apart). */
static inline float vexpf(float x) {
    /* NaN becomes -87 here, and is restored below. Comparisons rather than fminf/fmaxf, which
     * GCC left as libm calls in the SwiGLU loops (1% of a LoRA step); the same values. */
    float c = x > -87.0f ? x : -87.0f;
    c = c < 88.0f ? c : 88.0f;
    float n = __builtin_rintf(c * 1.44269504088896341f);
    float r = c - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union {
        uint32_t i;
        float f;
    } scale = {.i = (uint32_t)((int32_t)n + 127) << 23};
    return x != x ? x : p * scale.f;
}

/* tanh(u) = 1 - 2 / (e^(2u) + 1): absolute error ~1e-7, which is what GELU needs. */
static inline float vtanhf(float u) {
    return 1.0f - 2.0f / (vexpf(2.0f * u) + 1.0f);
}

void tensor_embed_fwd(float *out, const int *tok, const float *wte, const float *wpe, int B, int T,
                      int C) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const float *e = wte + (size_t)tok[b * T + t] * C;
            if (wpe) {
                const float *p = wpe + (size_t)t * C;
#pragma omp simd
                for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
            } else {
                memcpy(o, e, (size_t)C * sizeof(float));
            }
        }
}

void tensor_embed_bwd(float *dwte, float *dwpe, const float *dout, const int *tok, int B, int T,
                      int C) {
    if (!dwte) return; /* frozen embedding (fine-tuning adapters only) */
#pragma omp parallel
    {
        int c0, c1;
        column_range(C, &c0, &c1);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                const float *d = dout + ((size_t)b * T + t) * C;
                float *e = dwte + (size_t)tok[b * T + t] * C;
                float *p = dwpe ? dwpe + (size_t)t * C : NULL;
#pragma omp simd
                for (int c = c0; c < c1; c++) e[c] += d[c];
                if (p) {
#pragma omp simd
                    for (int c = c0; c < c1; c++) p[c] += d[c];
                }
            }
    }
}

void tensor_layernorm_fwd(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int N, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float m = 0, v = 0;
#pragma omp simd reduction(+ : m)
        for (int c = 0; c < C; c++) m += x[c];
        m /= (float)C;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        float s = 1.0f / sqrtf(v / (float)C + eps);
        if (b) {
#pragma omp simd
            for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * w[c] + b[c];
        } else {
#pragma omp simd
            for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * w[c];
        }
        mean[n] = m;
        rstd[n] = s;
    }
}

void tensor_layernorm_bwd(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                          const float *w, const float *mean, const float *rstd, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
        float *di = dinp + (size_t)n * C;
        float m = mean[n], s = rstd[n], a = 0, an = 0;
#pragma omp simd reduction(+ : a, an)
        for (int c = 0; c < C; c++) {
            float dn = w[c] * d[c];
            a += dn;
            an += dn * (x[c] - m) * s;
        }
        a /= (float)C;
        an /= (float)C;
#pragma omp simd
        for (int c = 0; c < C; c++) di[c] += (w[c] * d[c] - a - (x[c] - m) * s * an) * s;
    }
    if (!dw) return; /* frozen norm: no weight or bias gradient */
#pragma omp parallel
    {
        int c0, c1;
        column_range(C, &c0, &c1);
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
#pragma omp simd
            for (int c = c0; c < c1; c++) dw[c] += (x[c] - m) * s * d[c];
            if (db) {
#pragma omp simd
                for (int c = c0; c < c1; c++) db[c] += d[c];
            }
        }
    }
}

void tensor_rmsnorm_fwd(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                        float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        float s = 1.0f / sqrtf(ss / (float)C + eps);
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = x[c] * s * w[c];
        rstd[n] = s;
    }
}

void tensor_rmsnorm_bwd(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                        const float *rstd, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
        float *di = dinp + (size_t)n * C;
        float s = rstd[n], dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int c = 0; c < C; c++) dot += d[c] * w[c] * x[c];
        float k = s * s * s * dot / (float)C;
#pragma omp simd
        for (int c = 0; c < C; c++) di[c] += s * d[c] * w[c] - k * x[c];
    }
    if (!dw) return; /* frozen norm */
#pragma omp parallel
    {
        int c0, c1;
        column_range(C, &c0, &c1);
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            float s = rstd[n];
#pragma omp simd
            for (int c = c0; c < c1; c++) dw[c] += d[c] * x[c] * s;
        }
    }
}

void tensor_matmul_fwd(float *out, const float *inp, const float *w, const float *b, int N, int C,
                       int OC) {
    float beta = 0.0f;
    if (b) {
        /* Preload the bias so sgemm adds the product onto it. */
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, b, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C, beta, out,
                OC);
}

/* 16 floats: GCC/Clang vector extensions, compiled to whatever SIMD -march gives (one zmm with
 * AVX-512, two ymm with AVX2). */
typedef float v16 __attribute__((vector_size(64)));
static inline v16 load16(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v); /* unaligned */
    return v;
}

/* The dot product's 16 partial sums, added in lane order, then the tail and the bias. */
static inline float finish16(v16 a, const float *x, const float *wr, int from, int C, float bias) {
    float s = 0;
    for (int j = 0; j < 16; j++) s += a[j];
    for (int k = from; k < C; k++) s += x[k] * wr[k];
    return s + bias;
}

/* out (N,OC) = inp (N,C) @ w^T + b (NULL: none). Every output element is one dot product in a
 * fixed order (16 lanes over C, then the lanes in order), so a row's result depends neither on N
 * nor on the thread count. Rows go four at a time against each weight row (four independent
 * accumulator chains, the weight row loaded once for the four), over blocks of 32 weight rows
 * that stay in cache while every group of four rows passes (16 rows: ~2x faster than one weight
 * row at a time, on par with sgemm). It reads w once per call without packing it: for the few
 * rows of a decode step several times faster than sgemm, which copies (packs) all of w on every
 * call whatever N is (gpt2-124m, one stream: 5.6 -> 22 tokens/s on the shared 2-core VM).
 * Prompt chunks, with many rows, stay on sgemm. */
void tensor_matmul_rows_fwd(float *out, const float *inp, const float *w, const float *b, int N,
                            int C, int OC) {
    enum { OB = 32 }; /* weight rows per block: reused from cache by every group of rows */
    int C16 = C & ~15, nb = (OC + OB - 1) / OB;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nb; blk++) {
        int o0 = blk * OB, o1 = o0 + OB < OC ? o0 + OB : OC, n = 0;
        for (; n + 4 <= N; n += 4) {
            const float *x0 = inp + (size_t)n * C, *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;
            for (int o = o0; o < o1; o++) {
                const float *wr = w + (size_t)o * C;
                float bias = b ? b[o] : 0.0f;
                v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
                for (int i = 0; i < C16; i += 16) {
                    v16 wv = load16(wr + i);
                    a0 += load16(x0 + i) * wv;
                    a1 += load16(x1 + i) * wv;
                    a2 += load16(x2 + i) * wv;
                    a3 += load16(x3 + i) * wv;
                }
                out[(size_t)n * OC + o] = finish16(a0, x0, wr, C16, C, bias);
                out[(size_t)(n + 1) * OC + o] = finish16(a1, x1, wr, C16, C, bias);
                out[(size_t)(n + 2) * OC + o] = finish16(a2, x2, wr, C16, C, bias);
                out[(size_t)(n + 3) * OC + o] = finish16(a3, x3, wr, C16, C, bias);
            }
        }
        for (; n < N; n++) {
            const float *x0 = inp + (size_t)n * C;
            for (int o = o0; o < o1; o++) {
                const float *wr = w + (size_t)o * C;
                v16 a0 = {0};
                for (int i = 0; i < C16; i += 16) a0 += load16(x0 + i) * load16(wr + i);
                out[(size_t)n * OC + o] = finish16(a0, x0, wr, C16, C, b ? b[o] : 0.0f);
            }
        }
    }
}

void tensor_matmul_bwd(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                       const float *w, int N, int C, int OC) {
    /* dinp (N,C) += dout (N,OC) @ w (OC,C);  dw (OC,C) += dout^T @ inp (N,C) */
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C, 1.0f,
                    dinp, C);
    if (!dw) return; /* frozen weight: no weight or bias gradient */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw,
                C);
    if (db) {
#pragma omp parallel
        {
            int o0, o1;
            column_range(OC, &o0, &o1);
            for (int n = 0; n < N; n++) {
                const float *d = dout + (size_t)n * OC;
#pragma omp simd
                for (int o = o0; o < o1; o++) db[o] += d[o];
            }
        }
    }
}

static void rope_fast(float *x, int B, int T, int NH, int HS, int stride, int pos0,
                      const float *cos_t, const float *sin_t, float dir) {
    int half = HS / 2;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *c = cos_t + (size_t)(pos0 + t) * half,
                        *s = sin_t + (size_t)(pos0 + t) * half;
            for (int h = 0; h < NH; h++) {
                float *v = x + ((size_t)b * T + t) * stride + (size_t)h * HS;
#pragma omp simd
                for (int i = 0; i < half; i++) {
                    float x1 = v[i], x2 = v[i + half], sn = dir * s[i];
                    v[i] = x1 * c[i] - x2 * sn;
                    v[i + half] = x2 * c[i] + x1 * sn;
                }
            }
        }
}

void tensor_rope_fwd(float *x, int B, int T, int NH, int HS, int stride, int pos0,
                     const float *cos_t, const float *sin_t) {
    rope_fast(x, B, T, NH, HS, stride, pos0, cos_t, sin_t, 1.0f);
}

void tensor_rope_bwd(float *dx, int B, int T, int NH, int HS, int stride, int pos0,
                     const float *cos_t, const float *sin_t) {
    rope_fast(dx, B, T, NH, HS, stride, pos0, cos_t, sin_t, -1.0f);
}

/* Query rows per attention block: TENSOR_ATT_BLOCK, or all T when fewer. */
static int att_rows(int T) {
    return T < TENSOR_ATT_BLOCK ? T : TENSOR_ATT_BLOCK;
}

size_t tensor_attention_scratch(int B, int T, int NH) {
    size_t bq = (size_t)att_rows(T);
    return (size_t)B * (size_t)NH * 2 * bq * (size_t)T;
}

/* Attention per (batch, head), a block of TENSOR_ATT_BLOCK query rows at a time: the block's
 * scores against keys 0..t1-1 (t1 its last row + 1) are one sgemm into the task's scratch, the
 * softmax runs row by row, and the weighted sum of values is a second sgemm. Only the blocks on
 * or below the diagonal are computed (T=1024: 53% of the full T x T products), and only the
 * rows' log-sum-exp is kept: backward recomputes the probabilities from it, which costs one
 * more product per block but not the (L,B,NH,T,T) buffer (1.3 GB for a 20-layer model at T=1024).
 * Inside the OpenMP loop OpenBLAS runs single-threaded (it sees it is nested), so the heads are
 * the parallel dimension. */
void tensor_attention_fwd(float *out, float *lse, float *scratch, const float *qkv, int B, int T,
                          int NH, int NKV, int HS) {
    int row = (NH + 2 * NKV) * HS, group = NH / NKV, orow = NH * HS;
    int bq = att_rows(T);
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int kvh = h / group;
            const float *q = qkv + (size_t)b * T * row + (size_t)h * HS;
            const float *k = qkv + (size_t)b * T * row + (size_t)(NH + kvh) * HS;
            const float *v = qkv + (size_t)b * T * row + (size_t)(NH + NKV + kvh) * HS;
            float *s = scratch + ((size_t)b * NH + h) * 2 * (size_t)bq * T;
            float *l = lse + ((size_t)b * NH + h) * T;
            float *o = out + (size_t)b * T * orow + (size_t)h * HS;
            for (int t0 = 0; t0 < T; t0 += bq) {
                int n = T - t0 < bq ? T - t0 : bq, t1 = t0 + n; /* rows t0.. see keys 0..t1-1 */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, t1, HS, scale,
                            q + (size_t)t0 * row, row, k, row, 0.0f, s, t1);
                for (int i = 0; i < n; i++) {
                    int t = t0 + i;
                    float *r = s + (size_t)i * t1, mx = -INFINITY, sum = 0;
#pragma omp simd reduction(max : mx)
                    for (int u = 0; u <= t; u++) mx = r[u] > mx ? r[u] : mx;
#pragma omp simd reduction(+ : sum)
                    for (int u = 0; u <= t; u++) {
                        r[u] = vexpf(r[u] - mx);
                        sum += r[u];
                    }
                    float inv = 1.0f / sum;
#pragma omp simd
                    for (int u = 0; u <= t; u++) r[u] *= inv;
                    for (int u = t + 1; u < t1; u++) r[u] = 0.0f;
                    l[t] = mx + logf(sum);
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, HS, t1, 1.0f, s, t1, v,
                            row, 0.0f, o + (size_t)t0 * orow, orow);
            }
        }
}

/* Per block of query rows: p = exp(scores - lse) recomputed, dp = dout v^T, the softmax
 * backward ds = p (dp - sum(p dp)) scale in place, then dv += p^T dout, dq += ds k,
 * dk += ds^T q; all over keys 0..t1-1 only. */
void tensor_attention_bwd(float *dqkv, float *scratch, const float *dout, const float *qkv,
                          const float *lse, int B, int T, int NH, int NKV, int HS) {
    int row = (NH + 2 * NKV) * HS, group = NH / NKV, orow = NH * HS;
    int bq = att_rows(T);
    float scale = 1.0f / sqrtf((float)HS);
    /* Parallel over (batch, kv head): the query heads of one group write the same dk, dv, so
     * they run in one thread, one after the other. */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int kvh = 0; kvh < NKV; kvh++) {
            const float *base = qkv + (size_t)b * T * row;
            float *dbase = dqkv + (size_t)b * T * row;
            const float *k = base + (size_t)(NH + kvh) * HS,
                        *v = base + (size_t)(NH + NKV + kvh) * HS;
            float *dk = dbase + (size_t)(NH + kvh) * HS,
                  *dv = dbase + (size_t)(NH + NKV + kvh) * HS;
            float *p = scratch + ((size_t)b * NKV + kvh) * 2 * (size_t)bq * T,
                  *dp = p + (size_t)bq * T;
            for (int h = kvh * group; h < (kvh + 1) * group; h++) {
                const float *q = base + (size_t)h * HS, *l = lse + ((size_t)b * NH + h) * T;
                float *dq = dbase + (size_t)h * HS;
                const float *d = dout + (size_t)b * T * orow + (size_t)h * HS;
                for (int t0 = 0; t0 < T; t0 += bq) {
                    int n = T - t0 < bq ? T - t0 : bq, t1 = t0 + n;
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, t1, HS, scale,
                                q + (size_t)t0 * row, row, k, row, 0.0f, p, t1);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, t1, HS, 1.0f,
                                d + (size_t)t0 * orow, orow, v, row, 0.0f, dp, t1);
                    for (int i = 0; i < n; i++) {
                        int t = t0 + i;
                        float *pr = p + (size_t)i * t1, *dr = dp + (size_t)i * t1, lt = l[t];
                        float dot = 0;
#pragma omp simd reduction(+ : dot)
                        for (int u = 0; u <= t; u++) {
                            pr[u] = vexpf(pr[u] - lt);
                            dot += pr[u] * dr[u];
                        }
#pragma omp simd
                        for (int u = 0; u <= t; u++) dr[u] = pr[u] * (dr[u] - dot) * scale;
                        for (int u = t + 1; u < t1; u++) pr[u] = dr[u] = 0.0f;
                    }
                    /* dv (t1,HS) += p^T (t1,n) @ d (n,HS) */
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t1, HS, n, 1.0f, p, t1,
                                d + (size_t)t0 * orow, orow, 1.0f, dv, row);
                    /* dq (n,HS) += ds (n,t1) @ k (t1,HS);  dk (t1,HS) += ds^T @ q (n,HS) */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, HS, t1, 1.0f, dp, t1,
                                k, row, 1.0f, dq + (size_t)t0 * row, row);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t1, HS, n, 1.0f, dp, t1,
                                q + (size_t)t0 * row, row, 1.0f, dk, row);
                }
            }
        }
}

#define GELU_S 0.7978845608028654f /* sqrt(2/pi) */

void tensor_gelu_fwd(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + vtanhf(GELU_S * (x + 0.044715f * x * x * x)));
    }
}

void tensor_gelu_bwd(float *dinp, const float *inp, const float *dout, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i], th = vtanhf(GELU_S * (x + 0.044715f * x * x * x));
        float du = GELU_S * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] += (0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du) * dout[i];
    }
}

void tensor_swiglu_fwd(float *out, const float *inp, int N, int F) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *g = inp + (size_t)n * 2 * F, *u = g + F;
        float *o = out + (size_t)n * F;
#pragma omp simd
        for (int f = 0; f < F; f++) o[f] = g[f] / (1.0f + vexpf(-g[f])) * u[f];
    }
}

void tensor_swiglu_bwd(float *dinp, const float *inp, const float *dout, int N, int F) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *g = inp + (size_t)n * 2 * F, *u = g + F, *d = dout + (size_t)n * F;
        float *dg = dinp + (size_t)n * 2 * F, *du = dg + F;
#pragma omp simd
        for (int f = 0; f < F; f++) {
            float sg = 1.0f / (1.0f + vexpf(-g[f]));
            dg[f] += d[f] * u[f] * sg * (1.0f + g[f] * (1.0f - sg));
            du[f] += d[f] * g[f] * sg;
        }
    }
}

void tensor_residual_fwd(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void tensor_residual_bwd(float *da, float *db, const float *dout, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

float tensor_xent_fwd(float *probs, float *losses, const float *logits, const int *targets, int N,
                      int V, int ignore_index, int *n_valid) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        float *p = probs + (size_t)n * V;
        float mx = -INFINITY, sum = 0;
#pragma omp simd reduction(max : mx)
        for (int v = 0; v < V; v++) mx = l[v] > mx ? l[v] : mx;
#pragma omp simd reduction(+ : sum)
        for (int v = 0; v < V; v++) {
            p[v] = vexpf(l[v] - mx);
            sum += p[v];
        }
        float inv = 1.0f / sum;
#pragma omp simd
        for (int v = 0; v < V; v++) p[v] *= inv;
        losses[n] = targets[n] == ignore_index ? 0.0f : logf(sum) + mx - l[targets[n]];
    }
    /* The mean is summed serially in row order so it is the same for any thread count. */
    double total = 0;
    int valid = 0;
    for (int n = 0; n < N; n++)
        if (targets[n] != ignore_index) total += losses[n], valid++;
    *n_valid = valid;
    return valid ? (float)(total / valid) : 0.0f;
}

void tensor_xent_bwd(float *dlogits, const float *probs, const int *targets, int N, int V,
                     int ignore_index, float scale) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        if (targets[n] == ignore_index) continue;
        float *d = dlogits + (size_t)n * V;
        const float *p = probs + (size_t)n * V;
#pragma omp simd
        for (int v = 0; v < V; v++) d[v] += scale * p[v];
        d[targets[n]] -= scale;
    }
}

double tensor_sgemm_peak_gflops(int n, int reps) {
    size_t nn = (size_t)n * n;
    float *a = base_alloc_floats(nn), *b = base_alloc_floats(nn), *c = base_alloc_floats(nn);
    double best = 0;
    if (a && b && c) {
        for (size_t i = 0; i < nn; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
        for (int r = 0; r < reps; r++) {
            double t0 = base_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                        n);
            double g = 2.0 * n * n * (double)n / (base_now() - t0) * 1e-9;
            best = g > best ? g : best;
        }
    }
    free(a);
    free(b);
    free(c);
    return best;
}
