/* infer/forward.c: the batched forward of inference. One call processes a ragged batch of rows
 * (a decoding sequence contributes 1 row, a prefilling one a chunk of its prompt), each row with
 * its own (slot, position): the linear layers run as one matrix product over all rows on the
 * tensor kernels (OpenBLAS sgemm), attention runs per (row, head) over the row's slot of the KV
 * cache. Nothing here keeps activations beyond one layer: inference needs no backward. */
#include "infer.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

struct infer_engine {
    const nn_model *nn;
    nn_config c;
    int S, ctx, R; /* slots, positions per slot, rows per forward at most */
    int C, NH, NKV, HS, Q, FO, F;
    float *kc, *vc;             /* (L, S, NKV, ctx, HS) each */
    float *x, *ln, *tmp, *atty; /* (R, C) */
    float *mean, *rstd;         /* (R) */
    float *qkv;                 /* (R, Q) */
    float *fch, *fact;          /* (R, FO), (R, F) */
    int *tok;                   /* (R) */
    int *run_start, *run_len;   /* (R): rows grouped into runs of one slot, consecutive positions */
    float *att;                 /* (att_threads, ctx) attention scores, one row per thread */
    int att_threads;
};

static int qkv_width(const nn_config *c) {
    return (c->n_head + 2 * c->n_kv_head) * (c->d_model / c->n_head);
}

void infer_engine_free(infer_engine *g) {
    if (!g) return;
    free(g->kc);
    free(g->vc);
    free(g->x);
    free(g->ln);
    free(g->tmp);
    free(g->atty);
    free(g->mean);
    free(g->rstd);
    free(g->qkv);
    free(g->fch);
    free(g->fact);
    free(g->tok);
    free(g->run_start);
    free(g->run_len);
    free(g->att);
    free(g);
}

/* n1 * n2 * n3 floats, overflow-checked; NULL on failure. */
static float *alloc3(size_t n1, size_t n2, size_t n3) {
    size_t a, b;
    if (base_mul_size(n1, n2, &a) || base_mul_size(a, n3, &b)) return NULL;
    return base_alloc_floats(b ? b : 1);
}

int infer_engine_create(infer_engine **out, const infer_model *m, int n_slots, int ctx,
                        int max_rows, base_err *e) {
    *out = NULL;
    const nn_model *nn = infer_model_nn(m);
    const nn_config *c = &nn->cfg;
    if (n_slots < 1 || n_slots > 4096)
        return base_fail(e, BASE_EINVAL, "slots must be in [1, 4096], got %d", n_slots);
    if (ctx < 1 || ctx > c->max_seq)
        return base_fail(e, BASE_EINVAL, "context %d must be in [1, %d] (the model's max_seq)", ctx,
                         c->max_seq);
    if (max_rows < 1 || max_rows > 1 << 20)
        return base_fail(e, BASE_EINVAL, "rows per step must be in [1, 2^20], got %d", max_rows);
    infer_engine *g = calloc(1, sizeof *g);
    if (!g) return base_fail(e, BASE_ENOMEM, "out of memory");
    g->nn = nn;
    g->c = *c;
    g->S = n_slots, g->ctx = ctx, g->R = max_rows;
    g->C = c->d_model, g->NH = c->n_head, g->NKV = c->n_kv_head, g->HS = c->d_model / c->n_head;
    g->Q = qkv_width(c), g->F = c->d_ff, g->FO = c->family == NN_LLAMA ? 2 * c->d_ff : c->d_ff;
    size_t R = (size_t)max_rows, C = (size_t)g->C;
    size_t cache_row = (size_t)g->NKV * (size_t)g->HS;
    size_t per_layer;
    int bad = base_mul_size((size_t)n_slots * (size_t)ctx, cache_row, &per_layer);
    /* The caches are not zeroed by hand: every position is written before attention reads it,
     * and calloc's fresh pages cost nothing until touched — a long context reserved for a
     * short conversation is address space, not memory. */
    size_t cache_floats = 0;
    if (!bad) bad = base_mul_size((size_t)c->n_layer, per_layer, &cache_floats);
    if (!bad) {
        g->kc = calloc(cache_floats ? cache_floats : 1, sizeof(float));
        g->vc = calloc(cache_floats ? cache_floats : 1, sizeof(float));
    }
    g->x = alloc3(R, C, 1), g->ln = alloc3(R, C, 1), g->tmp = alloc3(R, C, 1);
    g->atty = alloc3(R, C, 1), g->mean = alloc3(R, 1, 1), g->rstd = alloc3(R, 1, 1);
    g->qkv = alloc3(R, (size_t)g->Q, 1), g->fch = alloc3(R, (size_t)g->FO, 1);
    g->fact = alloc3(R, (size_t)g->F, 1);
    g->tok = calloc(R, sizeof(int)), g->run_start = calloc(R, sizeof(int));
    g->run_len = calloc(R, sizeof(int));
    if (bad || !g->kc || !g->vc || !g->x || !g->ln || !g->tmp || !g->atty || !g->mean || !g->rstd ||
        !g->qkv || !g->fch || !g->fact || !g->tok || !g->run_start || !g->run_len) {
        double mb = 2.0 * c->n_layer * (double)n_slots * ctx * (double)cache_row * 4 / 1e6;
        infer_engine_free(g);
        return base_fail(e, BASE_ENOMEM,
                         "out of memory for the KV cache of %d slots x %d positions (%.0f MB) and "
                         "%d rows of scratch",
                         n_slots, ctx, mb, max_rows);
    }
    *out = g;
    return BASE_OK;
}

/* 16 floats: GCC/Clang vector extensions, compiled to whatever SIMD -march gives (one zmm with
 * AVX-512, two ymm with AVX2). */
typedef float v16 __attribute__((vector_size(64)));
static inline v16 load16(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v); /* unaligned */
    return v;
}
/* The 16 lanes summed as a tree (halves, then quarters): a few shuffles instead of 15
 * dependent scalar adds. */
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));
static inline float hsum16(v16 a) {
    v8 lo, hi;
    memcpy(&lo, &a, sizeof lo);
    memcpy(&hi, (const char *)&a + sizeof lo, sizeof hi);
    v8 s8 = lo + hi;
    v4 l4, h4;
    memcpy(&l4, &s8, sizeof l4);
    memcpy(&h4, (const char *)&s8 + sizeof l4, sizeof h4);
    v4 s4 = l4 + h4;
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

/* q . k over HS floats: vectorized when HS is a multiple of 16 (64 and 128 in every preset). */
static inline float head_dot(const float *q, const float *k, int HS) {
    if ((HS & 15) == 0) {
        v16 acc = {0};
        for (int d = 0; d < HS; d += 16) acc += load16(q + d) * load16(k + d);
        return hsum16(acc);
    }
    float s = 0;
    for (int d = 0; d < HS; d++) s += q[d] * k[d];
    return s;
}

/* A linear layer over n rows whose first n_dec are decode rows (see infer_forward): those by
 * tensor_matmul_rows_fwd, the prompt rows by sgemm (tensor_matmul_fwd). */
static void linear(float *out, const float *inp, const float *w, const float *b, int n, int n_dec,
                   int C, int OC) {
    if (n_dec > 0) tensor_matmul_rows_fwd(out, inp, w, b, n_dec, C, OC);
    if (n > n_dec)
        tensor_matmul_fwd(out + (size_t)n_dec * OC, inp + (size_t)n_dec * C, w, b, n - n_dec, C,
                          OC);
}

static void norm(const infer_engine *g, float *out, const float *inp, const float *w,
                 const float *b, int N) {
    if (g->c.family == NN_GPT2)
        tensor_layernorm_fwd(out, g->mean, g->rstd, inp, w, b, N, g->C, g->c.norm_eps);
    else
        tensor_rmsnorm_fwd(out, g->rstd, inp, w, N, g->C, g->c.norm_eps);
}

/* Causal attention of every row over its slot's cache (positions 0..pos), layer l. The keys
 * and values of this call's rows are already in the cache. out (n, C). */
static void attend(infer_engine *g, int l, const int *slots, const int *pos, int n) {
    int NH = g->NH, NKV = g->NKV, HS = g->HS, Q = g->Q, ctx = g->ctx, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
    size_t head_stride = (size_t)ctx * HS, layer_stride = (size_t)g->S * NKV * head_stride;
    int nt = omp_get_max_threads(); /* the scratch holds att_threads rows, at least this many */
    if (nt > g->att_threads) nt = g->att_threads;
#pragma omp parallel num_threads(nt)
    {
        float *sc = g->att + (size_t)omp_get_thread_num() * ctx;
#pragma omp for schedule(dynamic, 1)
        for (int i = 0; i < n * NH; i++) {
            int r = i / NH, h = i % NH, kvh = h / group, P = pos[r];
            const float *q = g->qkv + (size_t)r * Q + (size_t)h * HS;
            size_t base = (size_t)l * layer_stride + ((size_t)slots[r] * NKV + kvh) * head_stride;
            const float *K = g->kc + base, *V = g->vc + base;
            float mx = -INFINITY;
            for (int t = 0; t <= P; t++) {
                float s = head_dot(q, K + (size_t)t * HS, HS) * scale;
                sc[t] = s;
                if (s > mx) mx = s;
            }
            float sum = 0;
            for (int t = 0; t <= P; t++) {
                sc[t] = expf(sc[t] - mx);
                sum += sc[t];
            }
            float inv = 1.0f / sum, *o = g->atty + (size_t)r * g->C + (size_t)h * HS;
            memset(o, 0, (size_t)HS * sizeof(float));
            for (int t = 0; t <= P; t++) {
                const float *v = V + (size_t)t * HS;
                float w = sc[t] * inv;
                for (int d = 0; d < HS; d++) o[d] += w * v[d];
            }
        }
    }
}

int infer_forward(infer_engine *g, const int32_t *tokens, const int *slots, const int *pos, int n,
                  int n_decode, const int *out_rows, int n_out, float *logits, base_err *e) {
    const nn_model *m = g->nn;
    int V = g->c.vocab_size, C = g->C, Q = g->Q, HS = g->HS, NH = g->NH, NKV = g->NKV;
    if (n < 1 || n > g->R)
        return base_fail(e, BASE_EINVAL, "a forward of %d rows (at most %d)", n, g->R);
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= V)
            return base_fail(e, BASE_EINVAL, "row %d: token %d is outside the vocabulary (%d)", i,
                             (int)tokens[i], V);
        if (slots[i] < 0 || slots[i] >= g->S)
            return base_fail(e, BASE_EINVAL, "row %d: slot %d of %d", i, slots[i], g->S);
        if (pos[i] < 0 || pos[i] >= g->ctx)
            return base_fail(e, BASE_EINVAL, "row %d: position %d outside the context (%d)", i,
                             pos[i], g->ctx);
        g->tok[i] = tokens[i];
    }
    if (n_decode < 0 || n_decode > n)
        return base_fail(e, BASE_EINVAL, "%d decode rows of %d rows", n_decode, n);
    int out_dec = 0; /* the output rows that are decode rows come first */
    for (int i = 0; i < n_out; i++) {
        if (out_rows[i] < 0 || out_rows[i] >= n)
            return base_fail(e, BASE_EINVAL, "output row %d of %d rows", out_rows[i], n);
        if (out_rows[i] < n_decode && out_dec++ != i)
            return base_fail(e, BASE_EINVAL, "output row %d (a decode row) after a prompt row",
                             out_rows[i]);
    }
    int nt = omp_get_max_threads();
    if (nt > g->att_threads) {
        float *a = alloc3((size_t)nt, (size_t)g->ctx, 1);
        if (!a) return base_fail(e, BASE_ENOMEM, "out of memory for attention scores");
        free(g->att);
        g->att = a;
        g->att_threads = nt;
    }
    /* Runs: maximal groups of rows of one slot at consecutive positions (a prefill chunk is
     * one run), for the position-dependent kernels (learned positions, RoPE). */
    int nr = 0;
    for (int i = 0; i < n; i++) {
        if (nr && slots[i] == slots[i - 1] && pos[i] == pos[i - 1] + 1)
            g->run_len[nr - 1]++;
        else
            g->run_start[nr] = i, g->run_len[nr] = 1, nr++;
    }
    const nn_params *p = &m->pt;
    const float *wte = p->wte, *wpe = p->wpe;
    for (int k = 0; k < nr; k++) {
        int r0 = g->run_start[k];
        tensor_embed_fwd(g->x + (size_t)r0 * C, g->tok + r0, wte,
                         wpe ? wpe + (size_t)pos[r0] * C : NULL, 1, g->run_len[k], C);
    }
    size_t head_stride = (size_t)g->ctx * HS, layer_stride = (size_t)g->S * NKV * head_stride;
    for (int l = 0; l < g->c.n_layer; l++) {
        nn_layer w = nn_params_layer(p, &g->c, l);
        norm(g, g->ln, g->x, w.ln1w, w.ln1b, n);
        linear(g->qkv, g->ln, w.qkvw, w.qkvb, n, n_decode, C, Q);
        if (g->c.family == NN_LLAMA) /* q and k heads are adjacent: rotate NH + NKV heads */
            for (int k = 0; k < nr; k++) {
                int r0 = g->run_start[k];
                tensor_rope_fwd(g->qkv + (size_t)r0 * Q, 1, g->run_len[k], NH + NKV, HS, Q, pos[r0],
                                m->rope_cos, m->rope_sin);
            }
        for (int r = 0; r < n; r++) /* keys and values into the cache */
            for (int h = 0; h < NKV; h++) {
                size_t at = (size_t)l * layer_stride + ((size_t)slots[r] * NKV + h) * head_stride +
                            (size_t)pos[r] * HS;
                const float *row = g->qkv + (size_t)r * Q;
                memcpy(g->kc + at, row + (size_t)(NH + h) * HS, (size_t)HS * sizeof(float));
                memcpy(g->vc + at, row + (size_t)(NH + NKV + h) * HS, (size_t)HS * sizeof(float));
            }
        attend(g, l, slots, pos, n);
        linear(g->tmp, g->atty, w.attprojw, w.attprojb, n, n_decode, C, C);
        tensor_residual_fwd(g->x, g->x, g->tmp, (size_t)n * C);
        norm(g, g->ln, g->x, w.ln2w, w.ln2b, n);
        linear(g->fch, g->ln, w.fcw, w.fcb, n, n_decode, C, g->FO);
        if (g->c.family == NN_LLAMA)
            tensor_swiglu_fwd(g->fact, g->fch, n, g->F);
        else
            tensor_gelu_fwd(g->fact, g->fch, (size_t)n * g->F);
        linear(g->tmp, g->fact, w.fcprojw, w.fcprojb, n, n_decode, g->F, C);
        tensor_residual_fwd(g->x, g->x, g->tmp, (size_t)n * C);
    }
    if (n_out < 1) return BASE_OK;
    /* The head only for the rows whose next token is wanted. */
    for (int i = 0; i < n_out; i++)
        memcpy(g->tmp + (size_t)i * C, g->x + (size_t)out_rows[i] * C, (size_t)C * sizeof(float));
    norm(g, g->ln, g->tmp, p->lnfw, p->lnfb, n_out);
    const float *head = g->c.tied ? wte : p->lm_head;
    linear(logits, g->ln, head, NULL, n_out, out_dec, C, V);
    return BASE_OK;
}
