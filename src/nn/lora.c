/* nn/lora.c: low-rank adapters on the transformer's linear layers (lora.h). The products are
 * OpenBLAS sgemm calls on strided views (an adapter writes a column range of the packed qkv or
 * gate|up output), single calls per target, so results are reproducible for a thread count;
 * the dropout masks are OpenMP loops over elements, each its own hash. */
#include "lora.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const nn_lora_target_names[NN_LORA_NT] = {"q", "k", "v", "o", "gate", "up", "down"};
const char *const nn_lora_peft_names[NN_LORA_NT] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                    "gate_proj", "up_proj", "down_proj"};
/* llama.cpp's tensor names of the adapted matrices (blk.N.<name>.weight) */
static const char *const gguf_names[NN_LORA_NT] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                                   "ffn_gate", "ffn_up", "ffn_down"};

int nn_lora_parse_targets(const char *list, unsigned *mask, base_err *e) {
    *mask = 0;
    const char *p = list;
    while (p && *p) {
        size_t n = strcspn(p, ",");
        int found = 0;
        if (n == 3 && !strncmp(p, "all", 3)) {
            *mask |= (1u << NN_LORA_NT) - 1;
            found = 1;
        }
        for (int t = 0; t < NN_LORA_NT && !found; t++)
            if (strlen(nn_lora_target_names[t]) == n && !strncmp(p, nn_lora_target_names[t], n)) {
                *mask |= 1u << t;
                found = 1;
            }
        if (!found)
            return base_fail(
                e, BASE_EINVAL,
                "unknown LoRA target '%.*s' (targets: q, k, v, o, gate, up, down, all)", (int)n, p);
        p += n;
        if (*p == ',') p++;
    }
    if (!*mask) return base_fail(e, BASE_EINVAL, "no LoRA target given (e.g. q,k,v,o)");
    return BASE_OK;
}

nn_lora_site *nn_lora_at(const nn_lora *a, int l, int t) {
    return &a->site[(size_t)l * NN_LORA_NT + t];
}

/* The shape of target t in config c: input width, output width, first output column in the
 * layer's output; 0 when the family has no such projection. */
static int target_shape(const nn_config *c, int t, int *in, int *out, int *col) {
    int C = c->d_model, HS = C / c->n_head, NH = c->n_head, NKV = c->n_kv_head, F = c->d_ff;
    int llama = c->family == NN_LLAMA;
    switch (t) {
    case NN_LORA_Q:
        *in = C, *out = NH * HS, *col = 0;
        return 1;
    case NN_LORA_K:
        *in = C, *out = NKV * HS, *col = NH * HS;
        return 1;
    case NN_LORA_V:
        *in = C, *out = NKV * HS, *col = (NH + NKV) * HS;
        return 1;
    case NN_LORA_O:
        *in = C, *out = C, *col = 0;
        return 1;
    case NN_LORA_GATE:
        *in = C, *out = F, *col = 0;
        return llama;
    case NN_LORA_UP:
        *in = C, *out = F, *col = llama ? F : 0;
        return 1;
    default:
        *in = F, *out = C, *col = 0;
        return 1;
    }
}

int nn_lora_create(nn_lora **out, const nn_model *m, int rank, float alpha, float dropout,
                   unsigned targets, uint64_t seed, base_err *e) {
    const nn_config *c = &m->cfg;
    *out = NULL;
    if (rank < 1 || rank > 4096)
        return base_fail(e, BASE_EINVAL, "the LoRA rank must be in [1, 4096], got %d", rank);
    if (!(alpha > 0) || !isfinite(alpha))
        return base_fail(e, BASE_EINVAL, "the LoRA alpha must be a positive number");
    if (!(dropout >= 0 && dropout < 1))
        return base_fail(e, BASE_EINVAL, "the LoRA dropout must be in [0, 1), got %g",
                         (double)dropout);
    if (!targets || targets >> NN_LORA_NT) return base_fail(e, BASE_EINVAL, "no valid LoRA target");
    if (c->n_layer > 64)
        return base_fail(e, BASE_EINVAL, "LoRA supports at most 64 layers, the model has %d",
                         c->n_layer);
    if ((targets & (1u << NN_LORA_GATE)) && c->family != NN_LLAMA)
        return base_fail(e, BASE_EINVAL, "LoRA target 'gate' needs a Llama-family model (SwiGLU)");
    nn_lora *a = calloc(1, sizeof *a);
    if (!a) return base_fail(e, BASE_ENOMEM, "out of memory");
    a->rank = rank, a->alpha = alpha, a->dropout = dropout, a->scale = alpha / (float)rank;
    a->targets = targets, a->L = c->n_layer, a->N = m->B * m->T, a->seed = seed;
    a->site = calloc((size_t)a->L * NN_LORA_NT, sizeof *a->site);
    size_t total = 0, maxin = 0;
    for (int l = 0; l < a->L; l++)
        for (int t = 0; t < NN_LORA_NT; t++) {
            int in, o, col;
            if (!(targets & (1u << t)) || !target_shape(c, t, &in, &o, &col)) continue;
            total += (size_t)rank * in + (size_t)o * rank;
            if ((size_t)in > maxin) maxin = (size_t)in;
        }
    a->n_params = total;
    size_t nh = (size_t)a->L * NN_LORA_NT * a->N * rank;
    a->params = calloc(total, sizeof(float));
    a->grads = calloc(total, sizeof(float));
    a->h = calloc(nh, sizeof(float));
    a->dh = malloc((size_t)a->N * rank * sizeof(float));
    a->xs = malloc((size_t)a->N * maxin * sizeof(float));
    if (!a->site || !a->params || !a->grads || !a->h || !a->dh || !a->xs) {
        nn_lora_free(a);
        return base_fail(e, BASE_ENOMEM, "out of memory for the LoRA adapters (%zu parameters)",
                         total);
    }
    size_t off = 0;
    for (int l = 0; l < a->L; l++)
        for (int t = 0; t < NN_LORA_NT; t++) {
            int in, o, col;
            if (!(targets & (1u << t)) || !target_shape(c, t, &in, &o, &col)) continue;
            nn_lora_site *s = nn_lora_at(a, l, t);
            s->in = in, s->out = o, s->col = col;
            for (int ab = 0; ab < 2; ab++) {
                size_t n = ab ? (size_t)o * rank : (size_t)rank * in;
                float **p = ab ? &s->B : &s->A, **g = ab ? &s->gB : &s->gA;
                *p = a->params + off, *g = a->grads + off;
                nn_tensor *tt = &a->tensors[a->n_tensors];
                char *nm = a->names[a->n_tensors];
                snprintf(nm, sizeof a->names[0], "blk.%d.%s.lora_%c", l, gguf_names[t],
                         ab ? 'b' : 'a');
                *tt = (nn_tensor){nm, 2, {ab ? o : rank, ab ? rank : in, 0}, off, n, 1};
                a->n_tensors++;
                off += n;
            }
            /* PEFT: kaiming_uniform_(A, a=sqrt(5)) -> U(-1/sqrt(in), 1/sqrt(in)); B = 0 */
            base_rng r;
            base_rng_seed(&r, seed ^ base_mix64(((uint64_t)l << 8) | (uint64_t)t));
            float bound = 1.0f / sqrtf((float)in);
            for (size_t i = 0; i < (size_t)rank * in; i++)
                s->A[i] = bound * (2.0f * base_rng_uniform(&r) - 1.0f);
        }
    *out = a;
    return BASE_OK;
}

void nn_lora_free(nn_lora *a) {
    if (!a) return;
    free(a->site);
    free(a->params);
    free(a->grads);
    free(a->h);
    free(a->dh);
    free(a->xs);
    free(a);
}

void nn_lora_attach(nn_model *m, nn_lora *a) {
    m->lora = a;
}

void nn_lora_freeze_base(nn_model *m) {
    free(m->grads);
    m->grads = NULL;
    nn_model_bind(m);
}

void nn_lora_zero_grad(nn_lora *a) {
    memset(a->grads, 0, a->n_params * sizeof(float));
}

void nn_lora_merge(nn_model *m, const nn_lora *a) {
    const nn_config *c = &m->cfg;
    BASE_ASSERT(!m->wsrc.held); /* merging writes F32 weights: a held base has none to write */
    for (int l = 0; l < a->L; l++) {
        nn_layer w = nn_params_layer(&m->pt, c, l);
        for (int t = 0; t < NN_LORA_NT; t++) {
            const nn_lora_site *s = nn_lora_at(a, l, t);
            if (!s->A) continue;
            float *W = t <= NN_LORA_V      ? w.qkvw
                       : t == NN_LORA_O    ? w.attprojw
                       : t == NN_LORA_DOWN ? w.fcprojw
                                           : w.fcw;
            /* W[col + o, :] += scale * B[o, :] A */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->out, s->in, a->rank, a->scale,
                        s->B, a->rank, s->A, s->in, 1.0f, W + (size_t)s->col * s->in, s->in);
        }
    }
}

/* The dropout mask of layer l's target t in micro-batch a->key: element i is kept when
 * mask_u(mask_key(a, l, t), i) < 1 - dropout. Forward and backward draw the same mask. */
static uint64_t mask_key(const nn_lora *a, int l, int t) {
    return base_mix64(a->seed ^
                      base_mix64(a->key * 0x9e3779b97f4a7c15ull + ((uint64_t)l << 8) + t));
}
static inline float mask_u(uint64_t k, size_t i) {
    return (float)(base_mix64(k + i) >> 40) * (1.0f / 16777216.0f);
}

/* x (N, in) with inverted dropout applied, into a->xs; returns x itself when no dropout. */
static const float *dropped(const nn_lora *a, int l, int t, const float *x, int N, int in) {
    if (!a->training || a->dropout <= 0) return x;
    float keep = 1.0f - a->dropout, inv = 1.0f / keep;
    uint64_t k = mask_key(a, l, t);
    size_t n = (size_t)N * in;
    float *xs = a->xs;
    /* each element's mask is its own hash: threads change nothing in the result */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) xs[i] = mask_u(k, i) < keep ? x[i] * inv : 0.0f;
    return a->xs;
}

static int site_first(int s) {
    static const int first[] = {NN_LORA_Q, NN_LORA_O, NN_LORA_GATE, NN_LORA_DOWN};
    return first[s];
}
static int site_last(int s) {
    static const int last[] = {NN_LORA_V, NN_LORA_O, NN_LORA_UP, NN_LORA_DOWN};
    return last[s];
}

int nn_lora_site_used(const nn_lora *a, int s) {
    for (int t = site_first(s); t <= site_last(s); t++)
        if (a->targets & (1u << t)) return 1;
    return 0;
}

void nn_lora_fwd(const nn_model *m, int l, int s, float *out, int ldo, const float *inp, int N) {
    nn_lora *a = m->lora;
    int r = a->rank;
    for (int t = site_first(s); t <= site_last(s); t++) {
        nn_lora_site *st = nn_lora_at(a, l, t);
        if (!st->A) continue;
        const float *x = dropped(a, l, t, inp, N, st->in);
        float *h = a->h + ((size_t)l * NN_LORA_NT + t) * a->N * r;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, st->in, 1.0f, x, st->in, st->A,
                    st->in, 0.0f, h, r);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, st->out, r, a->scale, h, r, st->B,
                    r, 1.0f, out + st->col, ldo);
    }
}

void nn_lora_bwd(const nn_model *m, int l, int s, float *dinp, const float *dout, int ldo,
                 const float *inp, int N) {
    nn_lora *a = m->lora;
    int r = a->rank;
    for (int t = site_first(s); t <= site_last(s); t++) {
        nn_lora_site *st = nn_lora_at(a, l, t);
        if (!st->A) continue;
        const float *h = a->h + ((size_t)l * NN_LORA_NT + t) * a->N * r, *d = dout + st->col;
        /* dB += scale dout^T h;  dh = scale dout B */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, st->out, r, N, a->scale, d, ldo, h, r,
                    1.0f, st->gB, r);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, st->out, a->scale, d, ldo,
                    st->B, r, 0.0f, a->dh, r);
        /* dA += dh^T drop(x) */
        const float *x = dropped(a, l, t, inp, N, st->in);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, st->in, N, 1.0f, a->dh, r, x,
                    st->in, 1.0f, st->gA, st->in);
        /* dx += drop'(dh A): the same mask, the same 1/keep */
        if (x == inp) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, st->in, r, 1.0f, a->dh, r,
                        st->A, st->in, 1.0f, dinp, st->in);
        } else {
            size_t n = (size_t)N * st->in;
            float keep = 1.0f - a->dropout, inv = 1.0f / keep;
            uint64_t k = mask_key(a, l, t); /* the forward's mask, drawn again */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, st->in, r, 1.0f, a->dh, r,
                        st->A, st->in, 0.0f, a->xs, st->in);
            const float *xs = a->xs;
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < n; i++)
                if (mask_u(k, i) < keep) dinp[i] += xs[i] * inv;
        }
    }
}
