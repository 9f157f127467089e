/* quant: the weight types of GGUF files (F32, F16, BF16, the legacy Q4_0..Q8_0 blocks and the
 * K-quants Q2_K..Q6_K) as a self-contained module: a traits table keyed by ggml's type id,
 * reference dequantizers and quantizers, and matrix products whose weights stay in their
 * stored type. Depends on src/base only. Every block format is described byte by byte in
 * docs/FORMATS.md ("Quantized weight types").
 *
 * Conventions:
 *  - A type is the ggml/GGUF type id (an int, so a loader maps a tensor's id directly; ids
 *    hearth does not know or cannot compute are answered, never trusted: quant_traits_of gives
 *    NULL for an id outside the table, `supported` is 0 for one hearth cannot compute).
 *  - A row of n elements of type t is n / block elements' blocks back to back, row_bytes long;
 *    a matrix is rows back to back (what GGUF stores, what an mmapped tensor is).
 *  - The kernels never allocate and never fail: their preconditions (a supported type, K a
 *    multiple of the block, scratch large enough) are the caller's to check with the functions
 *    below and are asserted (a violation is a bug, it aborts with file:line).
 *  - quant_matmul's results are bit-for-bit the same for any thread count and any M: each
 *    output element is one dot product computed by one thread in a fixed order. */
#ifndef HEARTH_QUANT_H
#define HEARTH_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

/* ggml type ids (GGUF's tensor info `type`), the ones hearth computes with. */
enum {
    QUANT_F32 = 0,
    QUANT_F16 = 1,
    QUANT_Q4_0 = 2,
    QUANT_Q4_1 = 3,
    QUANT_Q5_0 = 6,
    QUANT_Q5_1 = 7,
    QUANT_Q8_0 = 8,
    QUANT_Q8_1 = 9, /* activations only: the products of Q4_1 and Q5_1 weights */
    QUANT_Q2_K = 10,
    QUANT_Q3_K = 11,
    QUANT_Q4_K = 12,
    QUANT_Q5_K = 13,
    QUANT_Q6_K = 14,
    QUANT_Q8_K = 15, /* activations only: the products of the K-quants */
    QUANT_BF16 = 30,
    QUANT_N_IDS = 39 /* ids 0..38 have names (ggml c392e509's GGML_TYPE_COUNT) */
};

#define QUANT_QK 32    /* elements per block of the legacy types */
#define QUANT_QK_K 256 /* elements per super-block of the K-quants */

typedef struct quant_traits {
    const char *name; /* "Q4_K", as llama.cpp and gguf-py spell it */
    int block;        /* elements per block (1 for F32/F16/BF16) */
    int block_bytes;  /* bytes per block */
    int weight;       /* 1: supported as a weight type (dequantize, quantize, quant_matmul) */
    int act_type;     /* the type quant_matmul quantizes activations to (QUANT_F32: none) */
} quant_traits;

/* The traits of a known type id, or NULL (an id < 0 or not in the table: removed or unknown
 * ids such as 4, 5, or a future one). The pointer is to static data. Types known by name but
 * not computed (IQ2_XS, TQ1_0, ...) have block sizes and weight = 0. */
const quant_traits *quant_traits_of(int type);
/* The name of any id: "Q4_K", "IQ2_XS", or "unknown" (static strings, never NULL). */
const char *quant_type_name(int type);
/* 1 if hearth can compute with weights of this type, 0 otherwise (including unknown ids). */
int quant_type_supported(int type);
/* The bytes of a row of n elements of type: BASE_OK and *out, or BASE_EINVAL with a message
 * when the type is unknown or has no block size, n is not a multiple of its block, or the size
 * overflows size_t. Works for every id with a known layout (so a loader can walk a file's
 * tensors, supported or not). */
int quant_row_bytes(int type, size_t n, size_t *out, base_err *e);

/* ---- conversion (reference: plain C, one row at a time; n a multiple of the block) */

/* dst (n floats) = the values the n elements at src stand for. Every type with a layout
 * here: the weight types and the activation types Q8_0, Q8_1, Q8_K. */
void quant_dequantize_row(int type, const void *src, float *dst, size_t n);
/* dst (rows x cols floats) = the rows of a (rows, cols) matrix at src, row_bytes(type, cols)
 * each, back to back; the caller has checked that row_bytes (quant_row_bytes) exists. */
void quant_dequantize_rows(int type, const void *src, float *dst, size_t rows, size_t cols);
/* dst (row_bytes(type, n)) = src (n floats) in type: round to nearest for the legacy types
 * and Q8_*, a scale search per block for the K-quants (good quality; not bit-identical to
 * llama-quantize, whose files hearth reads all the same). Every weight type and Q8_0/Q8_1/
 * Q8_K. Values must be finite. */
void quant_quantize_row(int type, const float *src, void *dst, size_t n);

/* IEEE half and bfloat16 conversions (round to nearest even; NaN kept a NaN). */
float quant_f16_to_f32(uint16_t h);
uint16_t quant_f32_to_f16(float f);
float quant_bf16_to_f32(uint16_t h);
uint16_t quant_f32_to_bf16(float f);

/* ---- matrix products */

/* Bytes of scratch quant_matmul needs for M rows of K activations against weights of type
 * wtype (the activations quantized once per row), 0 when none is needed (float weights). The
 * caller allocates it once per (M, K) bound and reuses it; any alignment will do. */
size_t quant_matmul_scratch_bytes(int wtype, int M, int K);

/* Y (M,N) = X (M,K) . W (N,K)^T, W's rows stored in wtype (row_bytes(wtype, K) each, back to
 * back), X and Y float row-major. Each row of X is first converted to wtype's act_type into
 * scratch as ggml's x86 CPU backend converts it (quant_act_prepare below), then each output is
 * one dot product: quantized weights an integer dot product per block scaled in float
 * (llama.cpp's scheme), F16/BF16 weights float products of the activations in F16/BF16
 * (ggml's vec_dot_f16/bf16), F32 plain float. So results match llama.cpp's CPU backend up to
 * the order of float additions. OpenMP threads split N into fixed chunks.
 * quant_matmul uses the fastest kernels this CPU runs (AVX-512, AVX2 or scalar, chosen at run
 * time); quant_ref_matmul the scalar reference (single-threaded) they are tested against.
 * Requires: quant_type_supported(wtype), K % block == 0, M, N, K > 0, scratch at least
 * quant_matmul_scratch_bytes(wtype, M, K) bytes (NULL if that is 0), W 2-byte aligned (4 for
 * F32; GGUF's tensor data is 32-byte aligned), X and Y float-aligned. X is only read; W is only
 * read (a read-only mmap will do). Calls may run concurrently with distinct Y and scratch; called
 * inside an OpenMP parallel region, a call runs on its own thread (libgomp nests no parallelism by
 * default). */
void quant_matmul(float *Y, const float *X, const void *W, int wtype, int M, int N, int K,
                  void *scratch);
void quant_ref_matmul(float *Y, const float *X, const void *W, int wtype, int M, int N, int K,
                      void *scratch);

/* ---- prepared activations: quant_matmul in two steps, so that one input feeding several
 * weight matrices (q, k, v; gate, up) is converted once, and outputs can land side by side.
 *
 *   size_t rb = quant_act_row_bytes(wq, K);          // one prepared row
 *   quant_act_prepare(A, X, wq, M, K);               // A: M * rb bytes, caller's
 *   quant_matmul_prepared(Y,      ldy, A, Wq, wq, M, Nq, K);   // Y (M, ldy): columns 0..Nq-1
 *   quant_matmul_prepared(Y + Nq, ldy, A, Wk, wk, M, Nk, K);   // columns Nq..Nq+Nk-1
 *
 * A prepared for wtype serves every weight type with the same act_type (quant_traits_of(t)->
 * act_type): Q4_0/Q5_0/Q8_0 share Q8_0, Q4_1/Q5_1 share Q8_1, the K-quants share Q8_K; F16,
 * BF16 and F32 each their own. For F32 weights the prepared rows are X's floats, so X itself
 * (K floats a row, back to back) may be passed as A without preparing. The results are the
 * bits of quant_matmul for the same X (any thread count, any M, any ldy). */

/* The act_type of a weight type (quant_traits_of(wtype)->act_type; R16 ids answered with their
 * original's): weights of two types with the same act_type share one prepared A. */
int quant_act_type(int wtype);
/* Bytes of one prepared activation row of K elements for weights of type wtype (> 0). */
size_t quant_act_row_bytes(int wtype, int K);
/* A (M rows of quant_act_row_bytes(wtype, K) bytes, back to back) = X (M,K) converted to
 * wtype's act_type, OpenMP threads over rows. Requires quant_type_supported(wtype),
 * K % block == 0, M, K > 0. X is only read; A any alignment. */
void quant_act_prepare(void *A, const float *X, int wtype, int M, int K);
/* Y[m * ldy + n] (m < M, n < N) = row m of A . row n of W, A prepared by quant_act_prepare for
 * a type with wtype's act_type and K; ldy >= N floats (other columns of Y are not touched).
 * Otherwise quant_matmul's requirements and guarantees; needs no scratch. */
void quant_matmul_prepared(float *Y, size_t ldy, const void *A, const void *W, int wtype, int M,
                           int N, int K);

/* ---- repacked weights: hearth's own layouts of a whole (N,K) matrix, made at load in memory
 * (never in a file: quant_traits_of and quant_type_supported know no such id), that the
 * AVX512-VNNI kernels compute with fastest. QUANT_Q4_0_R16 and QUANT_Q8_0_R16 interleave 16
 * rows: for each group of 16 rows (a multiple of 16 rows; group g at byte g * 16 * row_bytes)
 * and each block i, the 16 rows' f16 scales, then the 16 rows' quants transposed in 4-byte
 * words (word t of row r at byte 64 t + 4 r): one 64-byte vector holds 4 elements of each of
 * the 16 rows, so one integer product makes 16 outputs' partial sums with no horizontal sums
 * (Q8_0's bytes stored + 128, unsigned). The same bytes as the original (N * row_bytes); the
 * products are those of the original type up to the order of float operations (tests/quant).
 * quant_matmul, quant_matmul_prepared, quant_act_row_bytes, quant_matmul_scratch_bytes and
 * quant_kernel_name accept these ids as weight types (with the original's act_type). */
#define QUANT_R16 0x100
enum { QUANT_Q4_0_R16 = QUANT_R16 | QUANT_Q4_0, QUANT_Q8_0_R16 = QUANT_R16 | QUANT_Q8_0 };
/* The layout quant_matmul is fastest with for an (N,K) matrix of wtype on this CPU: the R16 id
 * for Q4_0 and Q8_0 with N % 16 == 0 on a CPU with AVX512-VNNI, wtype itself otherwise. */
int quant_repack_type(int wtype, int N, int K);
/* dst (N * row_bytes(wtype, K) bytes, 64-byte aligned for speed) = src's (N,K) matrix of wtype
 * in layout rtype (quant_repack_type(wtype, N, K), or wtype: a copy). OpenMP threads over row
 * groups. src is only read. */
void quant_repack(void *dst, const void *src, int wtype, int rtype, int N, int K);

/* The instruction set quant_matmul uses on this CPU for wtype: "avx512", "avx2" or "scalar". */
const char *quant_kernel_name(int wtype);

#endif
