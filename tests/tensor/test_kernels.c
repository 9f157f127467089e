/* tests/tensor/test_kernels.c: every kernel, forward and backward: fast against reference
 * on random inputs (odd sizes, so no code path hides behind a multiple of 16), and the
 * reference backward against central finite differences of its own forward. */
#include "test.h"
#include "tensor/tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One kernel under finite-difference test: loss(ctx) = sum(out .* R) after the reference
 * forward of `kind` on the current inputs. */
enum {
    K_EMBED,
    K_LAYERNORM,
    K_RMSNORM,
    K_MATMUL,
    K_ROPE,
    K_ATTN,
    K_GELU,
    K_SWIGLU,
    K_RESID,
    K_XENT
};
typedef struct ctx {
    int kind, B, T, C, OC, NH, NKV, HS, V;
    float *x, *w, *b, *x2, *out, *R, *s1, *s2; /* inputs, output, weights R, scratch */
    int *tok;
    float *cos, *sin;
} ctx;

static double loss(void *p) {
    ctx *c = p;
    size_t n = 0;
    int N = c->B * c->T;
    switch (c->kind) {
    case K_EMBED:
        tensor_ref_embed_fwd(c->out, c->tok, c->w, c->b, c->B, c->T, c->C);
        n = (size_t)N * c->C;
        break;
    case K_LAYERNORM:
        tensor_ref_layernorm_fwd(c->out, c->s1, c->s2, c->x, c->w, c->b, N, c->C, 1e-5f);
        n = (size_t)N * c->C;
        break;
    case K_RMSNORM:
        tensor_ref_rmsnorm_fwd(c->out, c->s1, c->x, c->w, N, c->C, 1e-5f);
        n = (size_t)N * c->C;
        break;
    case K_MATMUL:
        tensor_ref_matmul_fwd(c->out, c->x, c->w, c->b, N, c->C, c->OC);
        n = (size_t)N * c->OC;
        break;
    case K_ROPE:
        n = (size_t)N * c->C;
        memcpy(c->out, c->x, n * sizeof(float));
        tensor_ref_rope_fwd(c->out, c->B, c->T, c->NH, c->HS, c->C, 3, c->cos, c->sin);
        break;
    case K_ATTN:
        tensor_ref_attention_fwd(c->out, c->s1, c->s2, c->x, c->B, c->T, c->NH, c->NKV, c->HS);
        n = (size_t)N * c->NH * c->HS;
        break;
    case K_GELU:
        n = (size_t)N * c->C;
        tensor_ref_gelu_fwd(c->out, c->x, n);
        break;
    case K_SWIGLU:
        tensor_ref_swiglu_fwd(c->out, c->x, N, c->C);
        n = (size_t)N * c->C;
        break;
    case K_RESID:
        n = (size_t)N * c->C;
        tensor_ref_residual_fwd(c->out, c->x, c->x2, n);
        break;
    case K_XENT: {
        int valid;
        return tensor_ref_xent_fwd(c->s1, c->out, c->x, c->tok, N, c->V, -1, &valid);
    }
    }
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)c->out[i] * c->R[i];
    return s;
}

/* Central differences on every element of x (up to 400 of them, strided beyond). */
static void fd_check(const char *what, ctx *c, float *x, size_t n, const float *grad) {
    size_t stride = n > 400 ? n / 400 + 1 : 1;
    double worst = 0, gmax = 1e-3;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(grad[i]));
    for (size_t i = 0; i < n; i += stride) {
        float old = x[i], h = 1e-2f * fmaxf(1.0f, fabsf(old));
        x[i] = old + h;
        double lp = loss(c);
        float up = x[i];
        x[i] = old - h;
        double lm = loss(c);
        float dn = x[i];
        x[i] = old;
        double fd = (lp - lm) / ((double)up - dn);
        worst = fmax(worst, fabs(fd - grad[i]) / gmax);
    }
    if (!(worst <= 2e-2))
        fail_msg("%s: finite-difference mismatch %.3g (of max |grad| %.3g)", what, worst, gmax);
}

static float *mk(base_rng *r, size_t n, float lo, float hi) {
    float *p = base_alloc_floats(n);
    if (r) test_fill(r, p, n, lo, hi);
    return p;
}

#define FAST_VS_REF_TOL 1e-5

static void test_embed(void **state) {
    (void)state;
    base_rng r;
    base_rng_seed(&r, 1);
    int B = 3, T = 7, C = 19, V = 11, maxT = 9;
    int tok[21];
    for (int i = 0; i < B * T; i++) tok[i] = (int)base_rng_below(&r, (uint64_t)V) % 5; /* repeats */
    float *wte = mk(&r, (size_t)V * C, -1, 1), *wpe = mk(&r, (size_t)maxT * C, -1, 1);
    float *o1 = mk(NULL, (size_t)B * T * C, 0, 0), *o2 = mk(NULL, (size_t)B * T * C, 0, 0);
    float *R = mk(&r, (size_t)B * T * C, -1, 1);
    float *g1 = mk(NULL, (size_t)V * C, 0, 0), *g2 = mk(NULL, (size_t)V * C, 0, 0);
    float *p1 = mk(NULL, (size_t)maxT * C, 0, 0), *p2 = mk(NULL, (size_t)maxT * C, 0, 0);
    tensor_embed_fwd(o1, tok, wte, wpe, B, T, C);
    tensor_ref_embed_fwd(o2, tok, wte, wpe, B, T, C);
    assert_close(o1, o2, (size_t)B * T * C, FAST_VS_REF_TOL, "embed fwd");
    tensor_embed_bwd(g1, p1, R, tok, B, T, C);
    tensor_ref_embed_bwd(g2, p2, R, tok, B, T, C);
    assert_close(g1, g2, (size_t)V * C, FAST_VS_REF_TOL, "embed bwd dwte");
    assert_close(p1, p2, (size_t)maxT * C, FAST_VS_REF_TOL, "embed bwd dwpe");
    ctx c = {
        .kind = K_EMBED, .B = B, .T = T, .C = C, .w = wte, .b = wpe, .out = o2, .R = R, .tok = tok};
    fd_check("embed dwte", &c, wte, (size_t)V * C, g2);
    fd_check("embed dwpe", &c, wpe, (size_t)maxT * C, p2);
    /* without positions (Llama) */
    tensor_embed_fwd(o1, tok, wte, NULL, B, T, C);
    tensor_ref_embed_fwd(o2, tok, wte, NULL, B, T, C);
    assert_close(o1, o2, (size_t)B * T * C, 0, "embed fwd, no positions");
    free(wte), free(wpe), free(o1), free(o2), free(R), free(g1), free(g2), free(p1), free(p2);
}

static void run_norm(int rms, int with_bias) {
    base_rng r;
    base_rng_seed(&r, 2);
    int N = 13, C = 37;
    size_t n = (size_t)N * C;
    float *x = mk(&r, n, -2, 3), *w = mk(&r, (size_t)C, 0.5f, 1.5f),
          *b = with_bias ? mk(&r, (size_t)C, -1, 1) : NULL;
    float *o1 = mk(NULL, n, 0, 0), *o2 = mk(NULL, n, 0, 0), *R = mk(&r, n, -1, 1);
    float *m1 = mk(NULL, (size_t)N, 0, 0), *s1 = mk(NULL, (size_t)N, 0, 0);
    float *m2 = mk(NULL, (size_t)N, 0, 0), *s2 = mk(NULL, (size_t)N, 0, 0);
    float *dx1 = mk(NULL, n, 0, 0), *dx2 = mk(NULL, n, 0, 0);
    float *dw1 = mk(NULL, (size_t)C, 0, 0), *dw2 = mk(NULL, (size_t)C, 0, 0);
    float *db1 = mk(NULL, (size_t)C, 0, 0), *db2 = mk(NULL, (size_t)C, 0, 0);
    if (rms) {
        tensor_rmsnorm_fwd(o1, s1, x, w, N, C, 1e-5f);
        tensor_ref_rmsnorm_fwd(o2, s2, x, w, N, C, 1e-5f);
        tensor_rmsnorm_bwd(dx1, dw1, R, x, w, s1, N, C);
        tensor_ref_rmsnorm_bwd(dx2, dw2, R, x, w, s2, N, C);
    } else {
        tensor_layernorm_fwd(o1, m1, s1, x, w, b, N, C, 1e-5f);
        tensor_ref_layernorm_fwd(o2, m2, s2, x, w, b, N, C, 1e-5f);
        tensor_layernorm_bwd(dx1, dw1, b ? db1 : NULL, R, x, w, m1, s1, N, C);
        tensor_ref_layernorm_bwd(dx2, dw2, b ? db2 : NULL, R, x, w, m2, s2, N, C);
    }
    const char *name = rms ? "rmsnorm" : "layernorm";
    assert_close(o1, o2, n, FAST_VS_REF_TOL, name);
    assert_close(s1, s2, (size_t)N, FAST_VS_REF_TOL, name);
    assert_close(dx1, dx2, n, 1e-4, name);
    assert_close(dw1, dw2, (size_t)C, 1e-4, name);
    assert_close(db1, db2, (size_t)C, 1e-4, name);
    ctx c = {.kind = rms ? K_RMSNORM : K_LAYERNORM,
             .B = N,
             .T = 1,
             .C = C,
             .x = x,
             .w = w,
             .b = b,
             .out = o2,
             .R = R,
             .s1 = m2,
             .s2 = s2};
    if (rms) c.s1 = s2;
    fd_check(name, &c, x, n, dx2);
    fd_check(name, &c, w, (size_t)C, dw2);
    if (b) fd_check(name, &c, b, (size_t)C, db2);
    free(x), free(w), free(b), free(o1), free(o2), free(R), free(m1), free(s1), free(m2), free(s2);
    free(dx1), free(dx2), free(dw1), free(dw2), free(db1), free(db2);
}

static void test_layernorm(void **state) {
    (void)state;
    run_norm(0, 1);
    run_norm(0, 0);
}
static void test_rmsnorm(void **state) {
    (void)state;
    run_norm(1, 0);
}

static void run_matmul(int with_bias) {
    base_rng r;
    base_rng_seed(&r, 3);
    int N = 11, C = 23, OC = 29;
    float *x = mk(&r, (size_t)N * C, -1, 1), *w = mk(&r, (size_t)OC * C, -1, 1);
    float *b = with_bias ? mk(&r, (size_t)OC, -1, 1) : NULL;
    float *o1 = mk(NULL, (size_t)N * OC, 0, 0), *o2 = mk(NULL, (size_t)N * OC, 0, 0);
    float *R = mk(&r, (size_t)N * OC, -1, 1);
    float *dx1 = mk(NULL, (size_t)N * C, 0, 0), *dx2 = mk(NULL, (size_t)N * C, 0, 0);
    float *dw1 = mk(NULL, (size_t)OC * C, 0, 0), *dw2 = mk(NULL, (size_t)OC * C, 0, 0);
    float *db1 = mk(NULL, (size_t)OC, 0, 0), *db2 = mk(NULL, (size_t)OC, 0, 0);
    tensor_matmul_fwd(o1, x, w, b, N, C, OC);
    tensor_ref_matmul_fwd(o2, x, w, b, N, C, OC);
    assert_close(o1, o2, (size_t)N * OC, FAST_VS_REF_TOL, "matmul fwd");
    tensor_matmul_bwd(dx1, dw1, b ? db1 : NULL, R, x, w, N, C, OC);
    tensor_ref_matmul_bwd(dx2, dw2, b ? db2 : NULL, R, x, w, N, C, OC);
    assert_close(dx1, dx2, (size_t)N * C, FAST_VS_REF_TOL, "matmul dinp");
    assert_close(dw1, dw2, (size_t)OC * C, FAST_VS_REF_TOL, "matmul dw");
    assert_close(db1, db2, (size_t)OC, FAST_VS_REF_TOL, "matmul db");
    ctx c = {.kind = K_MATMUL,
             .B = N,
             .T = 1,
             .C = C,
             .OC = OC,
             .x = x,
             .w = w,
             .b = b,
             .out = o2,
             .R = R};
    fd_check("matmul dinp", &c, x, (size_t)N * C, dx2);
    fd_check("matmul dw", &c, w, (size_t)OC * C, dw2);
    if (b) fd_check("matmul db", &c, b, (size_t)OC, db2);
    free(x), free(w), free(b), free(o1), free(o2), free(R), free(dx1), free(dx2), free(dw1);
    free(dw2), free(db1), free(db2);
}

static void test_matmul(void **state) {
    (void)state;
    run_matmul(1);
    run_matmul(0);
}

/* The decode-row product: against the reference for row counts around its groups of four,
 * widths around its 16 lanes and output counts around its blocks of 32, with and without a
 * bias; and each row's result bit for bit the same alone as among the others. */
static void test_matmul_rows(void **state) {
    (void)state;
    base_rng r;
    base_rng_seed(&r, 21);
    const int Ns[] = {1, 3, 4, 5, 9}, Cs[] = {1, 15, 16, 37, 768}, OCs[] = {1, 31, 33, 100};
    for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
        for (size_t ci = 0; ci < sizeof Cs / sizeof *Cs; ci++)
            for (size_t oi = 0; oi < sizeof OCs / sizeof *OCs; oi++)
                for (int with_bias = 0; with_bias < 2; with_bias++) {
                    int N = Ns[ni], C = Cs[ci], OC = OCs[oi];
                    float *x = mk(&r, (size_t)N * C, -1, 1), *w = mk(&r, (size_t)OC * C, -1, 1);
                    float *b = with_bias ? mk(&r, (size_t)OC, -1, 1) : NULL;
                    float *o1 = mk(NULL, (size_t)N * OC, 0, 0),
                          *o2 = mk(NULL, (size_t)N * OC, 0, 0);
                    float *one = mk(NULL, (size_t)OC, 0, 0);
                    tensor_matmul_rows_fwd(o1, x, w, b, N, C, OC);
                    tensor_ref_matmul_rows_fwd(o2, x, w, b, N, C, OC);
                    assert_close(o1, o2, (size_t)N * OC, FAST_VS_REF_TOL, "matmul_rows fwd");
                    for (int n = 0; n < N; n++) {
                        tensor_matmul_rows_fwd(one, x + (size_t)n * C, w, b, 1, C, OC);
                        assert_memory_equal(one, o1 + (size_t)n * OC, (size_t)OC * sizeof(float));
                    }
                    free(x), free(w), free(b), free(o1), free(o2), free(one);
                }
}

static void test_rope(void **state) {
    (void)state;
    base_rng r;
    base_rng_seed(&r, 4);
    int B = 2, T = 5, NH = 3, HS = 8, C = NH * HS + 5, maxT = 16; /* rows wider than the heads */
    size_t n = (size_t)B * T * C;
    float *cs = mk(NULL, (size_t)maxT * HS / 2, 0, 0), *sn = mk(NULL, (size_t)maxT * HS / 2, 0, 0);
    tensor_rope_table(cs, sn, maxT, HS, 10000.0f);
    float *x = mk(&r, n, -1, 1), *a = mk(NULL, n, 0, 0), *b = mk(NULL, n, 0, 0),
          *R = mk(&r, n, -1, 1);
    memcpy(a, x, n * sizeof(float));
    memcpy(b, x, n * sizeof(float));
    tensor_rope_fwd(a, B, T, NH, HS, C, 3, cs, sn);
    tensor_ref_rope_fwd(b, B, T, NH, HS, C, 3, cs, sn);
    assert_close(a, b, n, FAST_VS_REF_TOL, "rope fwd");
    /* the columns past the heads are untouched; position 0 is the identity */
    for (int i = NH * HS; i < C; i++) assert_true(a[i] == x[i]);
    float *g1 = mk(NULL, n, 0, 0), *g2 = mk(NULL, n, 0, 0);
    memcpy(g1, R, n * sizeof(float));
    memcpy(g2, R, n * sizeof(float));
    tensor_rope_bwd(g1, B, T, NH, HS, C, 3, cs, sn);
    tensor_ref_rope_bwd(g2, B, T, NH, HS, C, 3, cs, sn);
    assert_close(g1, g2, n, FAST_VS_REF_TOL, "rope bwd");
    ctx c = {.kind = K_ROPE,
             .B = B,
             .T = T,
             .C = C,
             .NH = NH,
             .HS = HS,
             .x = x,
             .out = b,
             .R = R,
             .cos = cs,
             .sin = sn};
    fd_check("rope", &c, x, n, g2);
    /* the rotation by angle pos * theta^(-2i/HS) on pair (i, i + HS/2), checked directly */
    float v[8] = {1, 0, 0, 0, 0, 0, 0, 0};
    tensor_ref_rope_fwd(v, 1, 1, 1, 8, 8, 2, cs, sn);
    assert_true(fabsf(v[0] - cosf(2.0f)) < 1e-6f && fabsf(v[4] - sinf(2.0f)) < 1e-6f);
    free(cs), free(sn), free(x), free(a), free(b), free(R), free(g1), free(g2);
}

/* Attention, fast against reference: outputs, each row's log-sum-exp (checked against the
 * scores summed here directly), causality, and dqkv (also by finite differences). T spans
 * more than one query block so the blocked kernel's off-diagonal blocks run. */
static void run_attention(int B, int T, int NH, int NKV) {
    base_rng r;
    base_rng_seed(&r, 5);
    int HS = 6, row = (NH + 2 * NKV) * HS;
    size_t nq = (size_t)B * T * row, no = (size_t)B * T * NH * HS, nl = (size_t)B * NH * T;
    size_t ns = tensor_attention_scratch(B, T, NH);
    float *qkv = mk(&r, nq, -1, 1), *o1 = mk(NULL, no, 0, 0), *o2 = mk(NULL, no, 0, 0);
    float *l1 = mk(NULL, nl, 0, 0), *l2 = mk(NULL, nl, 0, 0), *scratch = mk(NULL, ns, 0, 0);
    float *R = mk(&r, no, -1, 1), *d1 = mk(NULL, nq, 0, 0), *d2 = mk(NULL, nq, 0, 0);
    tensor_attention_fwd(o1, l1, scratch, qkv, B, T, NH, NKV, HS);
    tensor_ref_attention_fwd(o2, l2, scratch, qkv, B, T, NH, NKV, HS);
    assert_close(o1, o2, no, FAST_VS_REF_TOL, "attention out");
    assert_close(l1, l2, nl, FAST_VS_REF_TOL, "attention log-sum-exp");
    /* lse[b,h,t] = log sum_{u <= t} exp(q_t . k_u / sqrt(HS)) */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t += 7) {
                const float *q = qkv + ((size_t)b * T + t) * row + (size_t)h * HS;
                double sum = 0;
                for (int u = 0; u <= t; u++) {
                    const float *k =
                        qkv + ((size_t)b * T + u) * row + (size_t)(NH + h / (NH / NKV)) * HS;
                    double dot = 0;
                    for (int i = 0; i < HS; i++) dot += (double)q[i] * k[i];
                    sum += exp(dot / sqrt((double)HS));
                }
                assert_true(fabs(log(sum) - l1[((size_t)b * NH + h) * T + t]) < 1e-4);
            }
    /* causal: changing the last position changes no earlier output */
    float *o3 = mk(NULL, no, 0, 0);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < row; i++) qkv[((size_t)b * T + T - 1) * row + i] += 0.5f;
    tensor_attention_fwd(o3, l1, scratch, qkv, B, T, NH, NKV, HS);
    for (int b = 0; b < B; b++)
        assert_memory_equal(o3 + (size_t)b * T * NH * HS, o1 + (size_t)b * T * NH * HS,
                            (size_t)(T - 1) * NH * HS * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int i = 0; i < row; i++) qkv[((size_t)b * T + T - 1) * row + i] -= 0.5f;
    tensor_attention_fwd(o1, l1, scratch, qkv, B, T, NH, NKV, HS);
    tensor_attention_bwd(d1, scratch, R, qkv, l1, B, T, NH, NKV, HS);
    tensor_ref_attention_bwd(d2, NULL, R, qkv, l2, B, T, NH, NKV, HS);
    assert_close(d1, d2, nq, 1e-4, "attention dqkv");
    ctx c = {.kind = K_ATTN,
             .B = B,
             .T = T,
             .NH = NH,
             .NKV = NKV,
             .HS = HS,
             .x = qkv,
             .out = o2,
             .R = R,
             .s1 = l2,
             .s2 = scratch};
    if (T < 16) fd_check("attention", &c, qkv, nq, d2);
    free(qkv), free(o1), free(o2), free(o3), free(l1), free(l2), free(scratch), free(R);
    free(d1), free(d2);
}

static void test_attention(void **state) {
    (void)state;
    run_attention(2, 9, 3, 3);   /* multi-head */
    run_attention(2, 9, 4, 2);   /* grouped-query */
    run_attention(2, 9, 4, 1);   /* multi-query */
    run_attention(1, 150, 4, 2); /* three query blocks, the last one partial */
}

static void test_pointwise(void **state) {
    (void)state;
    base_rng r;
    base_rng_seed(&r, 6);
    int N = 7, F = 33;
    size_t n = (size_t)N * F;
    float *x = mk(&r, 2 * n, -4, 4), *x2 = mk(&r, n, -1, 1), *R = mk(&r, n, -1, 1);
    float *o1 = mk(NULL, n, 0, 0), *o2 = mk(NULL, n, 0, 0);
    float *d1 = mk(NULL, 2 * n, 0, 0), *d2 = mk(NULL, 2 * n, 0, 0);
    float *e1 = mk(NULL, n, 0, 0), *e2 = mk(NULL, n, 0, 0);
    /* GELU */
    tensor_gelu_fwd(o1, x, n);
    tensor_ref_gelu_fwd(o2, x, n);
    assert_close(o1, o2, n, FAST_VS_REF_TOL, "gelu fwd");
    tensor_gelu_bwd(d1, x, R, n);
    tensor_ref_gelu_bwd(d2, x, R, n);
    assert_close(d1, d2, n, FAST_VS_REF_TOL, "gelu bwd");
    ctx c = {.kind = K_GELU, .B = N, .T = 1, .C = F, .x = x, .x2 = x2, .out = o2, .R = R};
    fd_check("gelu", &c, x, n, d2);
    /* SwiGLU */
    memset(d1, 0, 2 * n * sizeof(float));
    memset(d2, 0, 2 * n * sizeof(float));
    tensor_swiglu_fwd(o1, x, N, F);
    tensor_ref_swiglu_fwd(o2, x, N, F);
    assert_close(o1, o2, n, FAST_VS_REF_TOL, "swiglu fwd");
    tensor_swiglu_bwd(d1, x, R, N, F);
    tensor_ref_swiglu_bwd(d2, x, R, N, F);
    assert_close(d1, d2, 2 * n, FAST_VS_REF_TOL, "swiglu bwd");
    c.kind = K_SWIGLU;
    fd_check("swiglu", &c, x, 2 * n, d2);
    /* residual */
    memset(d1, 0, 2 * n * sizeof(float));
    memset(d2, 0, 2 * n * sizeof(float));
    tensor_residual_fwd(o1, x, x2, n);
    tensor_ref_residual_fwd(o2, x, x2, n);
    assert_close(o1, o2, n, 0, "residual fwd");
    tensor_residual_bwd(d1, e1, R, n);
    tensor_ref_residual_bwd(d2, e2, R, n);
    assert_close(d1, d2, n, 0, "residual bwd a");
    assert_close(e1, e2, n, 0, "residual bwd b");
    c.kind = K_RESID;
    fd_check("residual a", &c, x, n, d2);
    fd_check("residual b", &c, x2, n, e2);
    free(x), free(x2), free(R), free(o1), free(o2), free(d1), free(d2), free(e1), free(e2);
}

static void test_xent(void **state) {
    (void)state;
    base_rng r;
    base_rng_seed(&r, 7);
    int N = 9, V = 41;
    size_t n = (size_t)N * V;
    int tgt[9];
    for (int i = 0; i < N; i++) tgt[i] = i % 4 == 1 ? -1 : (int)base_rng_below(&r, (uint64_t)V);
    float *lg = mk(&r, n, -5, 5), *p1 = mk(NULL, n, 0, 0), *p2 = mk(NULL, n, 0, 0);
    float *l1 = mk(NULL, (size_t)N, 0, 0), *l2 = mk(NULL, (size_t)N, 0, 0);
    float *d1 = mk(NULL, n, 0, 0), *d2 = mk(NULL, n, 0, 0);
    int v1, v2;
    float m1 = tensor_xent_fwd(p1, l1, lg, tgt, N, V, -1, &v1);
    float m2 = tensor_ref_xent_fwd(p2, l2, lg, tgt, N, V, -1, &v2);
    assert_int_equal(v1, 7);
    assert_int_equal(v2, 7);
    assert_true(fabsf(m1 - m2) <= 1e-5f * fabsf(m2));
    assert_close(p1, p2, n, FAST_VS_REF_TOL, "xent probs");
    assert_close(l1, l2, (size_t)N, FAST_VS_REF_TOL, "xent losses");
    assert_true(l1[1] == 0.0f && l1[5] == 0.0f); /* ignored rows */
    tensor_xent_bwd(d1, p1, tgt, N, V, -1, 1.0f / (float)v1);
    tensor_ref_xent_bwd(d2, p2, tgt, N, V, -1, 1.0f / (float)v2);
    assert_close(d1, d2, n, FAST_VS_REF_TOL, "xent dlogits");
    ctx c = {.kind = K_XENT, .B = N, .T = 1, .V = V, .x = lg, .out = l2, .s1 = p2, .tok = tgt};
    fd_check("xent", &c, lg, n, d2);
    /* every row ignored: loss 0, no valid rows, no gradient */
    int none[9];
    for (int i = 0; i < N; i++) none[i] = -1;
    assert_true(tensor_xent_fwd(p1, l1, lg, none, N, V, -1, &v1) == 0.0f);
    assert_int_equal(v1, 0);
    /* huge logits stay finite (max subtraction) */
    for (size_t i = 0; i < n; i++) lg[i] *= 1e4f;
    m1 = tensor_xent_fwd(p1, l1, lg, tgt, N, V, -1, &v1);
    assert_true(isfinite(m1));
    free(lg), free(p1), free(p2), free(l1), free(l2), free(d1), free(d2);
}

/* Same inputs twice -> the same bits: the fast kernels have no order-dependent reductions. */
static void test_deterministic(void **state) {
    (void)state;
    base_rng r;
    base_rng_seed(&r, 8);
    int N = 64, C = 96;
    size_t n = (size_t)N * C;
    float *x = mk(&r, n, -1, 1), *w = mk(&r, (size_t)C, 0, 2), *d = mk(&r, n, -1, 1);
    float *m = mk(NULL, (size_t)N, 0, 0), *s = mk(NULL, (size_t)N, 0, 0), *o = mk(NULL, n, 0, 0);
    float *dx[2], *dw[2];
    tensor_layernorm_fwd(o, m, s, x, w, NULL, N, C, 1e-5f);
    for (int k = 0; k < 2; k++) {
        dx[k] = mk(NULL, n, 0, 0);
        dw[k] = mk(NULL, (size_t)C, 0, 0);
        tensor_layernorm_bwd(dx[k], dw[k], NULL, d, x, w, m, s, N, C);
    }
    assert_memory_equal(dx[0], dx[1], n * sizeof(float));
    assert_memory_equal(dw[0], dw[1], (size_t)C * sizeof(float));
    free(x), free(w), free(d), free(m), free(s), free(o);
    for (int k = 0; k < 2; k++) free(dx[k]), free(dw[k]);
}

int test_tensor(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embed),       cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_rmsnorm),     cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_matmul_rows), cmocka_unit_test(test_rope),
        cmocka_unit_test(test_attention),   cmocka_unit_test(test_pointwise),
        cmocka_unit_test(test_xent),        cmocka_unit_test(test_deterministic),
    };
    return cmocka_run_group_tests_name("tensor", tests, NULL, NULL);
}
