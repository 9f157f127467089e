/* bench/quant_bench: quant_matmul per weight type, the scalar reference against the kernels
 * this CPU runs. Decode (M = 1): GB/s of weights streamed through one (N,K) matrix. Prefill
 * (M = 512): GFLOP/s (2 M N K per product). Built by `make test` so it never rots; run by hand:
 *
 *   quant_bench [--threads N] [--k K] [--n N] [--type NAME] [--no-scalar]
 *
 * The weights are Gaussian rows quantized by quant_quantize_row; timings are the best of
 * repeated runs filling at least 0.3 s (0.1 s for the scalar ones); decoding cycles through
 * copies of the matrix filling 256 MiB so that weights come from memory. On a machine shared
 * with other jobs, run with OMP_WAIT_POLICY=passive (libgomp spin-waits otherwise, and a
 * descheduled thread stalls every product). */
#include "base/base.h"
#include "quant/quant_int.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int TYPES[] = {QUANT_F32,  QUANT_F16,  QUANT_BF16, QUANT_Q8_0, QUANT_Q4_0,
                            QUANT_Q4_1, QUANT_Q5_0, QUANT_Q5_1, QUANT_Q2_K, QUANT_Q3_K,
                            QUANT_Q4_K, QUANT_Q5_K, QUANT_Q6_K};

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* Best seconds per call of Y = X W^T over passes filling min_s; a pass multiplies by each of
 * the `copies` matrices at W (stride bytes apart) in turn, so decoding streams weights from
 * memory rather than from the last-level cache, as a model larger than the cache does. */
static double time_matmul(float *Y, const float *X, const uint8_t *W, size_t stride, int copies,
                          int type, int M, int N, int K, void *scratch, quant_isa isa, int threads,
                          double min_s) {
    double best = 1e30, start = base_now();
    int reps = 0;
    while (reps < 2 || base_now() - start < min_s) {
        double t0 = base_now();
        for (int c = 0; c < copies; c++)
            quant_matmul_isa(Y, X, W + (size_t)c * stride, type, M, N, K, scratch, isa, threads);
        double t = (base_now() - t0) / copies;
        if (t < best) best = t;
        reps++;
    }
    return best;
}

int main(int argc, char **argv) {
    int threads = 2, K = 4096, N = 4096, scalar = 1, only = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--k") && i + 1 < argc)
            K = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--n") && i + 1 < argc)
            N = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-scalar"))
            scalar = 0;
        else if (!strcmp(argv[i], "--type") && i + 1 < argc) {
            const char *name = argv[++i];
            for (int t = 0; t < QUANT_N_IDS; t++)
                if (!strcmp(quant_type_name(t), name)) only = t;
            if (only < 0 || !quant_type_supported(only)) {
                fprintf(stderr, "quant_bench: no weight type %s\n", name);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: quant_bench [--threads N] [--k K] [--n N] [--type NAME] "
                            "[--no-scalar]\n");
            return 2;
        }
    }
    if (K <= 0 || K % QUANT_QK_K || N <= 0 || threads <= 0) {
        fprintf(stderr, "quant_bench: K must be a positive multiple of 256, N and threads > 0\n");
        return 2;
    }
    enum { MP = 512 };
    const int NP = 1024, NP_SCALAR = 32; /* prefill columns (the scalar kernels are slow) */
    base_rng rng;
    base_rng_seed(&rng, 1);
    float *row = xmalloc(sizeof(float) * (size_t)K), *X = xmalloc(sizeof(float) * MP * (size_t)K);
    float *Y = xmalloc(sizeof(float) * MP * (size_t)(N > NP ? N : NP));
    for (size_t i = 0; i < (size_t)MP * K; i++) X[i] = base_rng_normal(&rng);
    /* one weight buffer for every type, touched once: fresh pages per type measured slower */
    const size_t WBYTES = (size_t)256 << 20;
    uint8_t *W = xmalloc(WBYTES);
    memset(W, 0, WBYTES);
    printf("quant_bench: K %d, decode N %d (M 1), prefill N %d (M %d), %d threads, kernels: %s\n",
           K, N, NP, MP, threads,
           quant_isa_best() == QUANT_ISA_AVX512 ? "avx512"
           : quant_isa_best() == QUANT_ISA_AVX2 ? "avx2"
                                                : "scalar");
    printf("%-5s %7s | %11s %11s | %12s %12s\n", "type", "kernel", "decode GB/s", "scalar",
           "prefill GF/s", "scalar");
    for (size_t t = 0; t < sizeof TYPES / sizeof *TYPES; t++) {
        int type = TYPES[t];
        if (only >= 0 && type != only) continue;
        size_t rb;
        if (quant_row_bytes(type, (size_t)K, &rb, NULL)) return 1;
        /* copies of the matrix filling 256 MiB, 8x this machine's L3 */
        size_t mat = rb * (size_t)N;
        int copies = (int)(WBYTES / mat);
        if (copies < 1) {
            fprintf(stderr, "quant_bench: a %s matrix is over 256 MiB\n", quant_type_name(type));
            return 2;
        }
        for (int n = 0; n < N; n++) {
            for (int k = 0; k < K; k++) row[k] = base_rng_normal(&rng);
            quant_quantize_row(type, row, W + (size_t)n * rb, (size_t)K);
        }
        for (int c = 1; c < copies; c++) memcpy(W + (size_t)c * mat, W, mat);
        size_t sb = quant_matmul_scratch_bytes(type, MP, K);
        void *scratch = sb ? xmalloc(sb) : NULL;
        quant_isa best = quant_isa_best(), used;
        quant_dot_for(type, best, &used);
        double gb = (double)rb * N / 1e9, fl = 2.0 * MP * K;
        double dec =
            gb / time_matmul(Y, X, W, mat, copies, type, 1, N, K, scratch, best, threads, 0.3);
        double pre = fl * NP / 1e9 /
                     time_matmul(Y, X, W, 0, 1, type, MP, NP, K, scratch, best, threads, 0.3);
        double dec_s = 0, pre_s = 0;
        if (scalar) {
            dec_s = gb / time_matmul(Y, X, W, mat, copies, type, 1, N, K, scratch, QUANT_ISA_SCALAR,
                                     threads, 0.1);
            pre_s = fl * NP_SCALAR / 1e9 /
                    time_matmul(Y, X, W, 0, 1, type, MP, NP_SCALAR, K, scratch, QUANT_ISA_SCALAR,
                                threads, 0.1);
        }
        static const char *isa_names[] = {"scalar", "avx2", "avx512"};
        printf("%-5s %7s | %11.2f %11.2f | %12.1f %12.1f\n", quant_type_name(type), isa_names[used],
               dec, dec_s, pre, pre_s);
        fflush(stdout);
        int rt = quant_repack_type(type, N, K);
        if (rt != type && quant_repack_type(type, NP, K) == rt) {
            /* the layout the engine repacks this type to at load (quant_repack) */
            uint8_t *tmp = xmalloc(mat);
            quant_repack(tmp, W, type, rt, N, K);
            for (int c = 0; c < copies; c++) memcpy(W + (size_t)c * mat, tmp, mat);
            free(tmp);
            dec = gb / time_matmul(Y, X, W, mat, copies, rt, 1, N, K, scratch, best, threads, 0.3);
            pre = fl * NP / 1e9 /
                  time_matmul(Y, X, W, 0, 1, rt, MP, NP, K, scratch, best, threads, 0.3);
            printf("%-5s %7s | %11.2f %11s | %12.1f %12s  (repacked: %s_R16)\n",
                   quant_type_name(type), quant_kernel_name(rt), dec, "", pre, "",
                   quant_type_name(type));
            fflush(stdout);
        }
        free(scratch);
    }
    free(row), free(X), free(Y), free(W);
    return 0;
}
