/* tests/quant: the type table and row sizes, every dequantizer against llama.cpp's own bytes
 * and gguf-py's values (tests/fixtures/quant, made by tools/quant_fixtures.py), quantization
 * error per type against llama.cpp's on the same data, and every dot-product kernel against the
 * scalar reference and against a float product of the dequantized weights. */
#include "test.h"

#include "quant/quant_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int WEIGHT_TYPES[] = {QUANT_F32,  QUANT_F16,  QUANT_BF16, QUANT_Q8_0, QUANT_Q4_0,
                                   QUANT_Q4_1, QUANT_Q5_0, QUANT_Q5_1, QUANT_Q2_K, QUANT_Q3_K,
                                   QUANT_Q4_K, QUANT_Q5_K, QUANT_Q6_K};
#define N_WEIGHT_TYPES (int)(sizeof WEIGHT_TYPES / sizeof WEIGHT_TYPES[0])

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}
static size_t row_bytes(int type, size_t n) {
    size_t b = 0;
    assert_int_equal(quant_row_bytes(type, n, &b, NULL), BASE_OK);
    return b;
}
static double rmse(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(s / (double)n);
}
static void gaussian(base_rng *r, float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = base_rng_normal(r);
}

static void test_traits(void **state) {
    (void)state;
    base_err e = {0};
    size_t n;
    assert_string_equal(quant_type_name(QUANT_Q4_K), "Q4_K");
    assert_string_equal(quant_type_name(17), "IQ2_XS");
    assert_string_equal(quant_type_name(34), "TQ1_0");
    assert_string_equal(quant_type_name(-1), "unknown");
    assert_string_equal(quant_type_name(QUANT_N_IDS), "unknown");
    assert_null(quant_traits_of(1000));
    assert_false(quant_type_supported(17));
    assert_false(quant_type_supported(QUANT_Q8_K)); /* activations only */
    assert_false(quant_type_supported(-3));
    for (int i = 0; i < N_WEIGHT_TYPES; i++) assert_true(quant_type_supported(WEIGHT_TYPES[i]));
    assert_int_equal(quant_row_bytes(QUANT_Q4_K, 4096, &n, &e), BASE_OK);
    assert_int_equal(n, 16 * 144);
    assert_int_equal(quant_row_bytes(QUANT_Q6_K, 256, &n, &e), BASE_OK);
    assert_int_equal(n, 210);
    assert_int_equal(quant_row_bytes(QUANT_BF16, 3, &n, &e), BASE_OK);
    assert_int_equal(n, 6);
    assert_int_equal(quant_row_bytes(17, 512, &n, &e), BASE_OK); /* walkable, not computable */
    assert_int_equal(n, 2 * 74);
    assert_int_equal(quant_row_bytes(QUANT_Q4_K, 100, &n, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "Q4_K"));
    assert_int_equal(quant_row_bytes(QUANT_Q8_0, 33, &n, &e), BASE_EINVAL);
    assert_int_equal(quant_row_bytes(4, 32, &n, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "removed"));
    assert_int_equal(quant_row_bytes(99, 32, &n, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "99"));
    assert_int_equal(quant_row_bytes(QUANT_F32, SIZE_MAX, &n, &e), BASE_EINVAL);
    assert_non_null(strstr(e.msg, "overflow"));
    assert_int_equal(quant_row_bytes(QUANT_Q8_0, (SIZE_MAX / 34 + 1) * 32, &n, &e), BASE_EINVAL);
    assert_int_equal(quant_row_bytes(QUANT_Q8_0, SIZE_MAX / 34 * 32, &n, &e), BASE_OK);
    assert_int_equal(n, SIZE_MAX / 34 * 34);
}

static void test_half(void **state) {
    (void)state;
    /* every half converts to float and back to itself (NaNs to a NaN) */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = quant_f16_to_f32((uint16_t)h);
        if (isnan(f))
            assert_true(isnan(quant_f16_to_f32(quant_f32_to_f16(f))));
        else
            assert_int_equal(quant_f32_to_f16(f), h);
    }
    assert_int_equal(quant_f32_to_f16(65520.f), 0x7C00); /* rounds to inf */
    assert_int_equal(quant_f32_to_f16(65519.f), 0x7BFF);
    assert_int_equal(quant_f32_to_f16(1.f + 0x1p-11f), 0x3C00); /* tie to even */
    assert_int_equal(quant_f32_to_f16(1.f + 0x1p-11f + 0x1p-20f), 0x3C01);
    assert_int_equal(quant_f32_to_f16(0x1p-25f), 0); /* tie to even, subnormal */
    assert_int_equal(quant_f32_to_f16(0x1.8p-24f), 2);
    assert_int_equal(quant_f32_to_bf16(1.f + 0x1p-8f), 0x3F80); /* tie to even */
    assert_int_equal(quant_f32_to_bf16(1.f + 0x1.8p-7f), 0x3F82);
    assert_true(isnan(quant_bf16_to_f32(quant_f32_to_bf16(NAN))));
    /* a row of F16 (its own branch-free loop) dequantizes every half to quant_f16_to_f32's bits,
     * subnormals, infinities and NaN payloads included */
    uint8_t *row = malloc(2 * 65536);
    float *got = malloc(65536 * sizeof(float));
    for (uint32_t h = 0; h < 65536; h++)
        row[2 * h] = (uint8_t)h, row[2 * h + 1] = (uint8_t)(h >> 8);
    quant_dequantize_row(QUANT_F16, row, got, 65536);
    for (uint32_t h = 0; h < 65536; h++) {
        float want = quant_f16_to_f32((uint16_t)h);
        if (memcmp(&want, &got[h], 4)) fail_msg("half 0x%04x: %a, want %a", h, got[h], want);
    }
    free(row);
    free(got);
}

/* ---- llama.cpp's fixtures */

static const char *FIXTURE_TYPES[] = {"F16",  "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0",
                                      "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"};
#define FIX_ROWS 16
#define FIX_COLS 256

static test_fixture *load_fixture(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/fixtures/quant/llama_quant.hfix", test_dir());
    test_fixture *f = test_fixture_load(path);
    assert_non_null(f);
    return f;
}

/* The bytes llama-quantize wrote, dequantized by hearth, are gguf-py's values exactly. */
static void test_dequantize_llama(void **state) {
    (void)state;
    test_fixture *f = load_fixture();
    float *y = xmalloc(sizeof(float) * FIX_ROWS * FIX_COLS);
    for (size_t t = 0; t < sizeof FIXTURE_TYPES / sizeof *FIXTURE_TYPES; t++) {
        char name[64];
        snprintf(name, sizeof name, "%s.id", FIXTURE_TYPES[t]);
        int id = *(const int32_t *)test_fixture_get(f, name, 1, NULL);
        assert_string_equal(quant_type_name(id), FIXTURE_TYPES[t]);
        size_t rb = row_bytes(id, FIX_COLS), numel;
        snprintf(name, sizeof name, "%s.raw", FIXTURE_TYPES[t]);
        const uint8_t *raw = test_fixture_get(f, name, 0, &numel);
        assert_int_equal(numel * 4, rb * FIX_ROWS);
        for (int r = 0; r < FIX_ROWS; r++)
            quant_dequantize_row(id, raw + r * rb, y + r * FIX_COLS, FIX_COLS);
        snprintf(name, sizeof name, "%s.deq", FIXTURE_TYPES[t]);
        const float *want = test_fixture_get(f, name, FIX_ROWS * FIX_COLS, NULL);
        double err = test_rel_err(y, want, FIX_ROWS * FIX_COLS, 1e-6);
        if (err > 1e-6) fprintf(stderr, "%s: dequantized rel err %.3g\n", FIXTURE_TYPES[t], err);
        assert_true(err <= 1e-6);
    }
    free(y);
    test_fixture_free(f);
}

/* hearth's quantizers on llama.cpp's input: the legacy types (round to nearest, as llama.cpp)
 * give its bytes exactly; the K-quants (an independent scale search) an error no worse than
 * llama.cpp's by more than 2%. Prints both RMSEs (docs/FORMATS.md quotes them). */
static void test_quantize_llama(void **state) {
    (void)state;
    test_fixture *f = load_fixture();
    const float *src = test_fixture_get(f, "src", FIX_ROWS * FIX_COLS, NULL);
    float *y = xmalloc(sizeof(float) * FIX_ROWS * FIX_COLS);
    uint8_t *q = xmalloc(FIX_ROWS * 512);
    printf("quant RMSE on N(0,1), %d x %d: type  hearth  llama.cpp\n", FIX_ROWS, FIX_COLS);
    for (size_t t = 0; t < sizeof FIXTURE_TYPES / sizeof *FIXTURE_TYPES; t++) {
        char name[64];
        snprintf(name, sizeof name, "%s.id", FIXTURE_TYPES[t]);
        int id = *(const int32_t *)test_fixture_get(f, name, 1, NULL);
        size_t rb = row_bytes(id, FIX_COLS);
        for (int r = 0; r < FIX_ROWS; r++) {
            quant_quantize_row(id, src + r * FIX_COLS, q + r * rb, FIX_COLS);
            quant_dequantize_row(id, q + r * rb, y + r * FIX_COLS, FIX_COLS);
        }
        snprintf(name, sizeof name, "%s.raw", FIXTURE_TYPES[t]);
        const uint8_t *raw = test_fixture_get(f, name, 0, NULL);
        snprintf(name, sizeof name, "%s.deq", FIXTURE_TYPES[t]);
        const float *theirs = test_fixture_get(f, name, FIX_ROWS * FIX_COLS, NULL);
        double mine = rmse(y, src, FIX_ROWS * FIX_COLS),
               ref = rmse(theirs, src, FIX_ROWS * FIX_COLS);
        int same = memcmp(q, raw, rb * FIX_ROWS) == 0;
        printf("quant RMSE %-5s %.6f %.6f%s\n", FIXTURE_TYPES[t], mine, ref,
               same ? "  (identical bytes)" : "");
        if (QUANT_QK_K != quant_traits_of(id)->block)
            assert_true(same);
        else
            assert_true(mine <= 1.02 * ref);
    }
    free(y), free(q);
    test_fixture_free(f);
}

/* ---- round trips on Gaussian data, and edge blocks */

static void test_roundtrip(void **state) {
    (void)state;
    /* RMSE bounds for N(0,1) data: ~1.3x what each type measures (docs/FORMATS.md) */
    static const struct {
        int type;
        double max_rmse;
    } B[] = {{QUANT_F32, 0},      {QUANT_F16, 3e-4},   {QUANT_BF16, 2.5e-3}, {QUANT_Q8_0, 7e-3},
             {QUANT_Q4_0, 0.115}, {QUANT_Q4_1, 0.105}, {QUANT_Q5_0, 0.058},  {QUANT_Q5_1, 0.052},
             {QUANT_Q2_K, 0.39},  {QUANT_Q3_K, 0.2},   {QUANT_Q4_K, 0.095},  {QUANT_Q5_K, 0.048},
             {QUANT_Q6_K, 0.024}, {QUANT_Q8_K, 9e-3}};
    enum { R = 32, C = 512 };
    base_rng rng;
    base_rng_seed(&rng, 11);
    float *x = xmalloc(sizeof(float) * R * C), *y = xmalloc(sizeof(float) * R * C);
    uint8_t *q = xmalloc(R * C * 4);
    gaussian(&rng, x, R * C);
    for (size_t t = 0; t < sizeof B / sizeof *B; t++) {
        size_t rb = row_bytes(B[t].type, C);
        for (int r = 0; r < R; r++) {
            quant_quantize_row(B[t].type, x + r * C, q + r * rb, C);
            quant_dequantize_row(B[t].type, q + r * rb, y + r * C, C);
        }
        double e = rmse(y, x, R * C);
        if (e > B[t].max_rmse)
            fprintf(stderr, "%s: RMSE %.6f > %.6f\n", quant_type_name(B[t].type), e, B[t].max_rmse);
        assert_true(e <= B[t].max_rmse);
        /* zeros stay zeros; a constant row comes back close */
        for (int c = 0; c < C; c++) x[c] = 0;
        quant_quantize_row(B[t].type, x, q, C);
        quant_dequantize_row(B[t].type, q, y, C);
        for (int c = 0; c < C; c++) assert_true(y[c] == 0);
        for (int c = 0; c < C; c++) x[c] = 0.75f;
        quant_quantize_row(B[t].type, x, q, C);
        quant_dequantize_row(B[t].type, q, y, C);
        for (int c = 0; c < C; c++) assert_true(fabsf(y[c] - 0.75f) <= 0.75f * 0.02f);
        gaussian(&rng, x, C); /* restore row 0 for the next type */
    }
    free(x), free(y), free(q);
}

/* ---- kernels */

typedef struct {
    int M, N, K;
} shape;

/* Quantized weights (N,K) of type from Gaussian values; the float X (M,K). */
static uint8_t *make_weights(base_rng *r, int type, int N, int K) {
    size_t rb = row_bytes(type, (size_t)K);
    uint8_t *w = xmalloc(rb * (size_t)N);
    float *row = xmalloc(sizeof(float) * (size_t)K);
    for (int n = 0; n < N; n++) {
        gaussian(r, row, (size_t)K);
        quant_quantize_row(type, row, w + (size_t)n * rb, (size_t)K);
    }
    free(row);
    return w;
}

static void check_matmul(base_rng *r, int type, shape s) {
    const quant_traits *t = quant_traits_of(type);
    int M = s.M, N = s.N, K = s.K;
    uint8_t *w = make_weights(r, type, N, K);
    float *x = xmalloc(sizeof(float) * (size_t)M * K),
          *ref = xmalloc(sizeof(float) * (size_t)M * N);
    float *y = xmalloc(sizeof(float) * (size_t)M * N), *y2 = xmalloc(sizeof(float) * (size_t)M * N);
    float *wf = xmalloc(sizeof(float) * (size_t)K), *fl = xmalloc(sizeof(float) * (size_t)M * N);
    size_t sb = quant_matmul_scratch_bytes(type, M, K);
    void *scratch = sb ? xmalloc(sb) : NULL;
    gaussian(r, x, (size_t)M * K);
    quant_ref_matmul(ref, x, w, type, M, N, K, scratch);

    /* the reference against a float product with the dequantized weights: the activations'
     * 8-bit rounding is all that separates them */
    size_t rb = row_bytes(type, (size_t)K);
    for (int n = 0; n < N; n++) {
        quant_dequantize_row(type, w + (size_t)n * rb, wf, (size_t)K);
        for (int m = 0; m < M; m++) {
            double acc = 0;
            for (int k = 0; k < K; k++) acc += (double)wf[k] * x[(size_t)m * K + k];
            fl[(size_t)m * N + n] = (float)acc;
        }
    }
    double tol = t->act_type == QUANT_F32    ? 1e-5
                 : t->act_type == QUANT_F16  ? 1e-3
                 : t->act_type == QUANT_BF16 ? 8e-3
                                             : 0.02;
    double e = test_rel_err(ref, fl, (size_t)M * N, 1e-6);
    if (e > tol) fprintf(stderr, "%s ref vs float: %.3g\n", t->name, e);
    assert_true(e <= tol);

    /* the AVX2 result: AVX-512's kernels are the same code, the same bits, but for F32 and F16
     * weights, summed in 16 lanes, not 8: their own bits, checked against the reference */
    float *prev = NULL;
    int own_bits = type == QUANT_F32 || type == QUANT_F16;
    for (int isa = QUANT_ISA_AVX2; isa <= (int)quant_isa_best(); isa++) {
        quant_isa used;
        quant_dot_for(type, (quant_isa)isa, &used);
        if ((int)used != isa) continue; /* no kernel of its own: the lower one is tested */
        quant_matmul_isa(y, x, w, type, M, N, K, scratch, (quant_isa)isa, 1);
        if (prev && !own_bits)
            assert_memory_equal(y, prev, sizeof(float) * (size_t)M * N);
        else if (isa == QUANT_ISA_AVX2) {
            prev = xmalloc(sizeof(float) * (size_t)M * N);
            memcpy(prev, y, sizeof(float) * (size_t)M * N);
        }
        e = test_rel_err(y, ref, (size_t)M * N, 1e-6);
        if (e > 2e-6)
            fprintf(stderr, "%s isa %d vs ref (%d,%d,%d): %.3g\n", t->name, isa, M, N, K, e);
        assert_true(e <= 2e-6);
        /* two threads: the same bits */
        quant_matmul_isa(y2, x, w, type, M, N, K, scratch, (quant_isa)isa, 2);
        assert_memory_equal(y, y2, sizeof(float) * (size_t)M * N);
        /* the first row alone: the same bits as within M rows */
        quant_matmul_isa(y2, x, w, type, 1, N, K, scratch, (quant_isa)isa, 2);
        assert_memory_equal(y, y2, sizeof(float) * (size_t)N);
    }
    quant_matmul(y, x, w, type, M, N, K, scratch); /* the public entry runs */
    free(prev), free(w), free(x), free(ref), free(y), free(y2), free(wf), free(fl), free(scratch);
}

static void test_matmul(void **state) {
    (void)state;
    base_rng r;
    base_rng_seed(&r, 5);
    for (int i = 0; i < N_WEIGHT_TYPES; i++) {
        int type = WEIGHT_TYPES[i], b = quant_traits_of(type)->block;
        int k1 = b == 1          ? 37
                 : b == QUANT_QK ? 3 * b
                                 : b,
            k2 = b == 1 ? 300 : 3 * (b == 32 ? 9 : 1) * b;
        shape shapes[] = {{1, 33, k1}, {3, 17, k2}, {9, 21, k2}, {1, 5, 4 * k2}, {6, 35, 4 * k2}};
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            check_matmul(&r, type, shapes[s]);
    }
}

/* Activations at the extremes: a block of +-amax values (Q8 rounding to +-127) and zeros. */
static void test_matmul_extremes(void **state) {
    (void)state;
    base_rng r;
    base_rng_seed(&r, 6);
    for (int i = 0; i < N_WEIGHT_TYPES; i++) {
        int type = WEIGHT_TYPES[i], K = 512, N = 7;
        uint8_t *w = make_weights(&r, type, N, K);
        float x[2 * 512], y[14], ref[14];
        for (int k = 0; k < K; k++) x[k] = (k & 1) ? 3.f : -3.f, x[K + k] = 0;
        size_t sb = quant_matmul_scratch_bytes(type, 2, K);
        void *scratch = sb ? xmalloc(sb) : NULL;
        quant_ref_matmul(ref, x, w, type, 2, N, K, scratch);
        quant_matmul(y, x, w, type, 2, N, K, scratch);
        assert_true(test_rel_err(y, ref, 14, 1e-6) <= 2e-6);
        for (int n = 0; n < N; n++) assert_true(y[N + n] == 0);
        free(w), free(scratch);
    }
}

/* quant_act_prepare + quant_matmul_prepared: the bits of quant_matmul, two matrices' outputs
 * side by side in one Y (ldy), the columns beyond untouched, one prepared A shared by two
 * weight types of the same act_type. */
static void test_matmul_prepared(void **state) {
    (void)state;
    base_rng r;
    base_rng_seed(&r, 8);
    enum { M = 6, N1 = 19, N2 = 13, LDY = N1 + N2 + 3 };
    for (int i = 0; i < N_WEIGHT_TYPES; i++) {
        int t1 = WEIGHT_TYPES[i], t2 = t1 == QUANT_Q4_0 ? QUANT_Q8_0 : t1;
        int K = 2 * QUANT_QK_K;
        uint8_t *w1 = make_weights(&r, t1, N1, K), *w2 = make_weights(&r, t2, N2, K);
        float *x = xmalloc(sizeof(float) * M * K), y[M * LDY], ref[M * (N1 > N2 ? N1 : N2)];
        gaussian(&r, x, (size_t)M * K);
        size_t sb = quant_matmul_scratch_bytes(t1, M, K);
        void *scratch = sb ? xmalloc(sb) : NULL, *A = xmalloc(quant_act_row_bytes(t1, K) * M);
        assert_int_equal(quant_act_row_bytes(t1, K) * M, sb ? sb : sizeof(float) * M * K);
        for (int k = 0; k < M * LDY; k++) y[k] = -7.f;
        quant_act_prepare(A, x, t1, M, K);
        quant_matmul_prepared(y, LDY, A, w1, t1, M, N1, K);
        quant_matmul_prepared(y + N1, LDY, A, w2, t2, M, N2, K);
        quant_matmul(ref, x, w1, t1, M, N1, K, scratch);
        for (int m = 0; m < M; m++)
            assert_memory_equal(y + m * LDY, ref + m * N1, sizeof(float) * N1);
        quant_matmul(ref, x, w2, t2, M, N2, K, scratch);
        for (int m = 0; m < M; m++) {
            assert_memory_equal(y + m * LDY + N1, ref + m * N2, sizeof(float) * N2);
            for (int k = N1 + N2; k < LDY; k++) assert_true(y[m * LDY + k] == -7.f);
        }
        if (t1 == QUANT_F32) { /* X itself serves as A */
            quant_matmul_prepared(y, LDY, x, w1, t1, M, N1, K);
            quant_matmul(ref, x, w1, t1, M, N1, K, NULL);
            for (int m = 0; m < M; m++)
                assert_memory_equal(y + m * LDY, ref + m * N1, sizeof(float) * N1);
        }
        free(w1), free(w2), free(x), free(scratch), free(A);
    }
}

/* R16 weights (Q4_0, Q8_0 repacked 16 rows interleaved): the scalar reading of the layout gives
 * the original type's reference bits; the AVX512-VNNI kernels agree with it to rounding, with the
 * same bits for 1 and 2 threads, for any M, and through quant_matmul_prepared with an ldy. */
static void test_repacked(void **state) {
    (void)state;
    base_rng r;
    base_rng_seed(&r, 10);
    static const int types[] = {QUANT_Q4_0, QUANT_Q8_0};
    shape shapes[] = {{1, 16, 32}, {3, 32, 96}, {9, 48, 864}, {1, 64, 2048}, {6, 80, 2048}};
    for (int ti = 0; ti < 2; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
            int type = types[ti], rt = type | QUANT_R16, M = shapes[si].M, N = shapes[si].N,
                K = shapes[si].K;
            assert_int_equal(quant_repack_type(type, N + 1, K), type); /* not whole groups */
            assert_int_equal(quant_repack_type(QUANT_Q4_K, N, 256), QUANT_Q4_K);
            assert_int_equal(quant_repack_type(type, N, K),
                             quant_isa_best() >= QUANT_ISA_AVX512 ? rt : type);
            assert_null(quant_traits_of(rt)); /* never a file's type */
            size_t rb = row_bytes(type, (size_t)K), sb = quant_matmul_scratch_bytes(type, M, K);
            assert_int_equal(quant_matmul_scratch_bytes(rt, M, K), sb);
            uint8_t *w = make_weights(&r, type, N, K), *wr = xmalloc(rb * (size_t)N);
            float *x = xmalloc(sizeof(float) * (size_t)M * K);
            float *ref = xmalloc(sizeof(float) * (size_t)M * N),
                  *y = xmalloc(sizeof(float) * M * N);
            float *y2 = xmalloc(sizeof(float) * (size_t)M * N);
            void *scratch = xmalloc(sb);
            gaussian(&r, x, (size_t)M * K);
            quant_repack(wr, w, type, rt, N, K);
            quant_ref_matmul(ref, x, w, type, M, N, K, scratch);
            quant_matmul_isa(y, x, wr, rt, M, N, K, scratch, QUANT_ISA_SCALAR, 1);
            assert_memory_equal(y, ref, sizeof(float) * (size_t)M * N);
            uint8_t *copy = xmalloc(rb);
            quant_repack(copy, w, type, type, 1, K); /* rtype == wtype: a copy */
            assert_memory_equal(copy, w, rb);
            free(copy);
            if (quant_isa_best() >= QUANT_ISA_AVX512) {
                assert_string_equal(quant_kernel_name(rt), "avx512");
                quant_matmul_isa(y, x, wr, rt, M, N, K, scratch, QUANT_ISA_AVX512, 1);
                double e = test_rel_err(y, ref, (size_t)M * N, 1e-6);
                if (e > 2e-6) fprintf(stderr, "R16 %d (%d,%d,%d): %.3g\n", type, M, N, K, e);
                assert_true(e <= 2e-6);
                quant_matmul_isa(y2, x, wr, rt, M, N, K, scratch, QUANT_ISA_AVX512, 2);
                assert_memory_equal(y, y2, sizeof(float) * (size_t)M * N);
                quant_matmul_isa(y2, x, wr, rt, 1, N, K, scratch, QUANT_ISA_AVX512, 2);
                assert_memory_equal(y, y2, sizeof(float) * (size_t)N);
                /* prepared, into columns 3.. of a wider Y */
                size_t ldy = (size_t)N + 5;
                float *yp = xmalloc(sizeof(float) * (size_t)M * ldy);
                for (size_t k = 0; k < (size_t)M * ldy; k++) yp[k] = -7.f;
                quant_act_prepare(scratch, x, rt, M, K);
                quant_matmul_prepared(yp + 3, ldy, scratch, wr, rt, M, N, K);
                for (int m = 0; m < M; m++) {
                    assert_memory_equal(yp + (size_t)m * ldy + 3, y + (size_t)m * N,
                                        sizeof(float) * (size_t)N);
                    assert_true(yp[(size_t)m * ldy] == -7.f && yp[(size_t)m * ldy + 3 + N] == -7.f);
                }
                free(yp);
            }
            free(w), free(wr), free(x), free(ref), free(y), free(y2), free(scratch);
        }
}

/* The bytes of a prepared row of act type t (F16: the halves and their floats). */
static size_t act_row_bytes(int t, int K) {
    return t == QUANT_F16 ? quant_act_row_bytes(QUANT_F16, K) : row_bytes(t, K);
}

/* The activation quantizers round as ggml's x86 CPU backend does (scale 127/amax, ties to even:
 * with amax 127 the scale is 1 and 2.5 becomes 2, where llama-quantize's reference, kept for
 * weights, gives 3), and the vector ones give the scalar ones' bytes, ties included. */
static void test_act_quantizers(void **state) {
    (void)state;
    if (quant_isa_best() < QUANT_ISA_AVX2) skip();
    enum { K = 1024 };
    static const int acts[] = {QUANT_Q8_0, QUANT_Q8_1, QUANT_Q8_K, QUANT_F16};
    float tie[QUANT_QK] = {127.f, 2.5f, -2.5f, 3.5f};
    quant_block_q8_0 qa, qw;
    quant_act_quantize_row(QUANT_Q8_0, tie, &qa, QUANT_QK);
    quant_quantize_row(QUANT_Q8_0, tie, &qw, QUANT_QK);
    assert_int_equal(qa.qs[1], 2), assert_int_equal(qa.qs[2], -2), assert_int_equal(qa.qs[3], 4);
    assert_int_equal(qw.qs[1], 3), assert_int_equal(qw.qs[2], -3), assert_int_equal(qw.qs[3], 4);
    base_rng r;
    base_rng_seed(&r, 9);
    float *x = xmalloc(sizeof(float) * K);
    uint8_t *a = xmalloc(6 * K), *b = xmalloc(6 * K);
    for (int rep = 0; rep < 4; rep++) {
        if (rep < 2)
            gaussian(&r, x, K);
        else /* halves: amax 127 or -128 makes the scale 1, every other value a tie */
            for (int i = 0; i < K; i++)
                x[i] = i % 32 == 0 ? (rep == 2 ? 127.f : -128.f)
                                   : (float)((int)base_rng_below(&r, 250) - 125) + 0.5f;
        if (rep == 1) x[5] = 50, x[7] = -50; /* equal magnitudes: the first is the signed max */
        for (size_t t = 0; t < sizeof acts / sizeof *acts; t++) {
            size_t rb = act_row_bytes(acts[t], K);
            quant_act_quantize_row(acts[t], x, a, K);
            quant_act_avx2(acts[t])(x, b, K);
            assert_memory_equal(a, b, rb);
        }
    }
    for (int i = 0; i < K; i++) x[i] = 0;
    for (size_t t = 0; t < sizeof acts / sizeof *acts; t++) {
        quant_act_quantize_row(acts[t], x, a, K);
        quant_act_avx2(acts[t])(x, b, K);
        assert_memory_equal(a, b, act_row_bytes(acts[t], K));
    }
    free(x), free(a), free(b);
}

int test_quant(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traits),           cmocka_unit_test(test_half),
        cmocka_unit_test(test_dequantize_llama), cmocka_unit_test(test_quantize_llama),
        cmocka_unit_test(test_roundtrip),        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_matmul_extremes),  cmocka_unit_test(test_act_quantizers),
        cmocka_unit_test(test_matmul_prepared),  cmocka_unit_test(test_repacked),
    };
    return cmocka_run_group_tests_name("quant", tests, NULL, NULL);
}
