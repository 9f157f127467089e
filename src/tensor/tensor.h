/* tensor: the CPU kernels of hearth, forward and backward, in two versions with identical
 * signatures: tensor_* (fast: OpenMP threads, OpenBLAS sgemm) and tensor_ref_* (plain loops,
 * the reference the fast ones are tested against).
 *
 * Conventions, for every kernel:
 *  - fp32, row-major, contiguous; shapes are given in the comments, N = B*T rows.
 *  - Backward kernels ADD into their gradient outputs (dinp, dw, db, ...), as llm.c does:
 *    the caller zeroes gradients once, and accumulation across layers and micro-batches is free.
 *  - A NULL bias (or bias gradient) means "no bias". A NULL weight gradient (dw, dwte) means
 *    a frozen weight: no weight (nor bias) gradient is computed; dinp still is.
 *  - The kernels never allocate and never fail; sizes are checked by their callers.
 *  - For a fixed thread count, results are bit-for-bit reproducible (no atomics, reductions
 *    in a fixed order). */
#ifndef HEARTH_TENSOR_H
#define HEARTH_TENSOR_H

#include <stddef.h>

/* Declares a kernel twice: tensor_NAME (fast) and tensor_ref_NAME (reference). */
#define TENSOR_KERNELS(X)                                                                          \
    /* out (B,T,C) = wte[tok[b,t]] (V,C) + wpe[t] (maxT,C); wpe may be NULL (no positions) */      \
    X(void, embed_fwd,                                                                             \
      (float *out, const int *tok, const float *wte, const float *wpe, int B, int T, int C))       \
    X(void, embed_bwd,                                                                             \
      (float *dwte, float *dwpe, const float *dout, const int *tok, int B, int T, int C))          \
    /* out (N,C) = (inp - mean) * rstd * w + b; saves mean (N), rstd (N) */                        \
    X(void, layernorm_fwd,                                                                         \
      (float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,     \
       int N, int C, float eps))                                                                   \
    X(void, layernorm_bwd,                                                                         \
      (float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,     \
       const float *mean, const float *rstd, int N, int C))                                        \
    /* out (N,C) = inp * rstd * w, rstd = 1/sqrt(mean(inp^2) + eps); saves rstd (N) */             \
    X(void, rmsnorm_fwd,                                                                           \
      (float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps))        \
    X(void, rmsnorm_bwd,                                                                           \
      (float *dinp, float *dw, const float *dout, const float *inp, const float *w,                \
       const float *rstd, int N, int C))                                                           \
    /* out (N,OC) = inp (N,C) @ w^T, w (OC,C), + b (OC) */                                         \
    X(void, matmul_fwd,                                                                            \
      (float *out, const float *inp, const float *w, const float *b, int N, int C, int OC))        \
    /* The same product for a few rows (decoding: one per sequence): each weight row is read       \
     * once for all rows instead of the whole matrix being packed per call as sgemm does, and      \
     * every output element is one dot product in a fixed order, so a row's result does not        \
     * depend on N, on the other rows or on the thread count. */                                   \
    X(void, matmul_rows_fwd,                                                                       \
      (float *out, const float *inp, const float *w, const float *b, int N, int C, int OC))        \
    X(void, matmul_bwd,                                                                            \
      (float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,     \
       int N, int C, int OC))                                                                      \
    /* Rotary embedding, in place, rotate-half pairing (i, i + HS/2) as in Hugging Face Llama:     \
     * x rows (B,T) of `stride` floats, each starting with NH heads of HS; position of row (b,t)   \
     * is pos0 + t. cos, sin (maxT, HS/2) from tensor_rope_table. bwd rotates the gradient back.   \
     */                                                                                            \
    X(void, rope_fwd,                                                                              \
      (float *x, int B, int T, int NH, int HS, int stride, int pos0, const float *cos,             \
       const float *sin))                                                                          \
    X(void, rope_bwd,                                                                              \
      (float *dx, int B, int T, int NH, int HS, int stride, int pos0, const float *cos,            \
       const float *sin))                                                                          \
    /* Causal attention with grouped-query heads. qkv (B,T,(NH+2*NKV)*HS): per row NH query        \
     * heads, then NKV key heads, then NKV value heads; query head h reads kv head h/(NH/NKV).     \
     * out (B,T,NH*HS); lse (B,NH,T) keeps each row's log-sum-exp of its scaled scores, all that   \
     * backward needs to recompute the probabilities (flash-attention style: no (T,T) matrix is    \
     * kept). scratch: tensor_attention_scratch floats, overwritten. */                            \
    X(void, attention_fwd,                                                                         \
      (float *out, float *lse, float *scratch, const float *qkv, int B, int T, int NH, int NKV,    \
       int HS))                                                                                    \
    /* dqkv (B,T,QKV) += the gradient of out given dout (B,T,NH*HS), from qkv and the forward's    \
     * lse; scratch as in attention_fwd */                                                         \
    X(void, attention_bwd,                                                                         \
      (float *dqkv, float *scratch, const float *dout, const float *qkv, const float *lse, int B,  \
       int T, int NH, int NKV, int HS))                                                            \
    /* GELU, tanh form: out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */                   \
    X(void, gelu_fwd, (float *out, const float *inp, size_t n))                                    \
    X(void, gelu_bwd, (float *dinp, const float *inp, const float *dout, size_t n))                \
    /* SwiGLU: inp (N,2F) holds [gate | up]; out (N,F) = silu(gate) * up */                        \
    X(void, swiglu_fwd, (float *out, const float *inp, int N, int F))                              \
    X(void, swiglu_bwd, (float *dinp, const float *inp, const float *dout, int N, int F))          \
    /* out (n) = a + b */                                                                          \
    X(void, residual_fwd, (float *out, const float *a, const float *b, size_t n))                  \
    X(void, residual_bwd, (float *da, float *db, const float *dout, size_t n))                     \
    /* Softmax cross-entropy. logits (N,V) -> probs (N,V), losses (N) = -log probs[target];        \
     * rows whose target is ignore_index get loss 0. Returns the mean loss over the other rows     \
     * (0 if none) and stores their count in *n_valid. */                                          \
    X(float, xent_fwd,                                                                             \
      (float *probs, float *losses, const float *logits, const int *targets, int N, int V,         \
       int ignore_index, int *n_valid))                                                            \
    /* dlogits (N,V) += scale * (probs - onehot(target)) for rows not ignored */                   \
    X(void, xent_bwd,                                                                              \
      (float *dlogits, const float *probs, const int *targets, int N, int V, int ignore_index,     \
       float scale))

#define TENSOR_DECLARE(ret, name, args)                                                            \
    ret tensor_##name args;                                                                        \
    ret tensor_ref_##name args;
TENSOR_KERNELS(TENSOR_DECLARE)
#undef TENSOR_DECLARE

/* The kernels as a table of function pointers: a backend. tensor_fast_ops and tensor_ref_ops
 * are the CPU ones; models call kernels through a table so a test can run a whole model on
 * the reference kernels (and a GPU backend can plug in later). */
#define TENSOR_FIELD(ret, name, args) ret(*name) args;
typedef struct tensor_ops {
    const char *name;
    TENSOR_KERNELS(TENSOR_FIELD)
} tensor_ops;
#undef TENSOR_FIELD
extern const tensor_ops tensor_fast_ops, tensor_ref_ops;

/* Query rows per block in the attention kernels: one block's scores against the keys up to its
 * last row are one product; blocks above the diagonal are never computed. */
#define TENSOR_ATT_BLOCK 64
/* Floats of scratch attention_fwd and attention_bwd take for (B, T, NH): B NH 2 min(T, BLOCK) T,
 * one slice per (sequence, head) task, so it does not depend on the thread count. */
size_t tensor_attention_scratch(int B, int T, int NH);

/* Fills cos and sin (maxT, HS/2): angle = t * theta^(-2i/HS). */
void tensor_rope_table(float *cos, float *sin, int maxT, int HS, float theta);

/* Sets the thread count of OpenMP and OpenBLAS together (they share one pool). */
void tensor_set_threads(int n);
int tensor_threads(void);

/* Measures this machine's sgemm throughput (GFLOP/s) on square n x n matrices, best of reps. */
double tensor_sgemm_peak_gflops(int n, int reps);

#endif
