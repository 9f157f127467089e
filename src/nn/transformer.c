/* nn/transformer.c: the one transformer, GPT-2 or Llama family by config. Forward and
 * backward side by side, layer by layer, on the kernels of m->ops. */
#include "nn.h"

#include "lora.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static int qkv_width(const nn_config *c) {
    return (c->n_head + 2 * c->n_kv_head) * (c->d_model / c->n_head);
}
static int fc_width(const nn_config *c) {
    return c->family == NN_LLAMA ? 2 * c->d_ff : c->d_ff;
}

/* The nn_wid of the nn_params member at offset field, or -1 (a tensor never held elsewhere). */
static int wid_of(size_t field) {
    static const size_t f[NN_W_N] = {offsetof(nn_params, wte),      offsetof(nn_params, qkvw),
                                     offsetof(nn_params, attprojw), offsetof(nn_params, fcw),
                                     offsetof(nn_params, fcprojw),  offsetof(nn_params, lm_head)};
    for (int i = 0; i < NN_W_N; i++)
        if (f[i] == field) return i;
    return -1;
}

/* The parameter tensors in storage order, less those in held (1 << nn_wid). Fills t and field
 * (each if not NULL: the tensor's offsetof in nn_params) and returns the count. */
static int layout_params(const nn_config *c, unsigned held, nn_tensor *t, size_t *field,
                         size_t *total) {
    int V = c->vocab_size, C = c->d_model, L = c->n_layer, Q = qkv_width(c), FO = fc_width(c);
    int F = c->d_ff, gpt2 = c->family == NN_GPT2;
#define F_(x) offsetof(nn_params, x), #x
    struct {
        size_t field;
        const char *name;
        int present, ndim, s0, s1, s2, decay;
    } spec[NN_MAX_TENSORS] = {
        {F_(wte), 1, 2, V, C, 0, 1},
        {F_(wpe), gpt2, 2, c->max_seq, C, 0, 1},
        {F_(ln1w), 1, 2, L, C, 0, 0},
        {F_(ln1b), c->bias, 2, L, C, 0, 0},
        {F_(qkvw), 1, 3, L, Q, C, 1},
        {F_(qkvb), c->bias, 2, L, Q, 0, 0},
        {F_(attprojw), 1, 3, L, C, C, 1},
        {F_(attprojb), c->bias, 2, L, C, 0, 0},
        {F_(ln2w), 1, 2, L, C, 0, 0},
        {F_(ln2b), c->bias, 2, L, C, 0, 0},
        {F_(fcw), 1, 3, L, FO, C, 1},
        {F_(fcb), c->bias, 2, L, FO, 0, 0},
        {F_(fcprojw), 1, 3, L, C, F, 1},
        {F_(fcprojb), c->bias, 2, L, C, 0, 0},
        {F_(lnfw), 1, 1, C, 0, 0, 0},
        {F_(lnfb), c->bias, 1, C, 0, 0, 0},
        {F_(lm_head), !c->tied, 2, V, C, 0, 1},
    };
#undef F_
    int n = 0;
    size_t off = 0;
    for (int i = 0; i < NN_MAX_TENSORS; i++) {
        int wid = wid_of(spec[i].field);
        if (!spec[i].present || (wid >= 0 && (held >> wid & 1))) continue;
        size_t numel = (size_t)spec[i].s0 * (spec[i].ndim > 1 ? (size_t)spec[i].s1 : 1) *
                       (spec[i].ndim > 2 ? (size_t)spec[i].s2 : 1);
        if (t)
            t[n] = (nn_tensor){spec[i].name, spec[i].ndim, {spec[i].s0, spec[i].s1, spec[i].s2},
                               off,          numel,        spec[i].decay};
        if (field) field[n] = spec[i].field;
        off += numel;
        n++;
    }
    *total = off;
    return n;
}

size_t nn_config_params(const nn_config *c) {
    size_t total;
    layout_params(c, 0, NULL, NULL, &total);
    return total;
}

int nn_config_tensors(const nn_config *c, nn_tensor t[NN_MAX_TENSORS]) {
    size_t total;
    return layout_params(c, 0, t, NULL, &total);
}

/* Points each tensor of out present in the config and not held at its place in base (NULL:
 * all NULL). */
static void bind_params(const nn_config *c, unsigned held, float *base, nn_params *out) {
    nn_tensor t[NN_MAX_TENSORS];
    size_t field[NN_MAX_TENSORS], total;
    int n = layout_params(c, held, t, field, &total);
    memset(out, 0, sizeof *out);
    for (int i = 0; base && i < n; i++) {
        float *p = base + t[i].offset;
        memcpy((char *)out + field[i], &p, sizeof p); /* the member named t[i].name */
    }
}

void nn_model_bind(nn_model *m) {
    bind_params(&m->cfg, m->wsrc.held, m->params, &m->pt);
    bind_params(&m->cfg, m->wsrc.held, m->grads, &m->gt);
}

nn_layer nn_params_layer(const nn_params *p, const nn_config *c, int l) {
    size_t C = (size_t)c->d_model, Q = (size_t)qkv_width(c), FO = (size_t)fc_width(c);
    size_t F = (size_t)c->d_ff, L = (size_t)l;
#define AT(x, each) (p->x ? p->x + L * (each) : NULL)
    return (nn_layer){.ln1w = AT(ln1w, C),
                      .ln1b = AT(ln1b, C),
                      .qkvw = AT(qkvw, Q * C),
                      .qkvb = AT(qkvb, Q),
                      .attprojw = AT(attprojw, C * C),
                      .attprojb = AT(attprojb, C),
                      .ln2w = AT(ln2w, C),
                      .ln2b = AT(ln2b, C),
                      .fcw = AT(fcw, FO * C),
                      .fcb = AT(fcb, FO),
                      .fcprojw = AT(fcprojw, C * F),
                      .fcprojb = AT(fcprojb, C)};
#undef AT
}

/* Lays out the floats of spec (n entries) one after the other from base (NULL: count only),
 * every tensor 64-byte aligned. Returns the float count. */
struct act_spec {
    float **p;
    size_t n;
};
static size_t layout(const struct act_spec *spec, size_t n, float *base) {
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        *spec[i].p = base ? base + off : NULL;
        off += (spec[i].n + 15) & ~(size_t)15;
    }
    return off;
}

/* The activations for (B,T) in one buffer starting at base (NULL: count only). */
static size_t layout_acts(const nn_config *c, int B, int T, float *base, nn_acts *a) {
    size_t L = (size_t)c->n_layer, N = (size_t)B * T, C = (size_t)c->d_model;
    size_t NH = (size_t)c->n_head, V = (size_t)c->vocab_size;
    size_t Q = (size_t)qkv_width(c), FO = (size_t)fc_width(c), F = (size_t)c->d_ff;
    struct act_spec spec[] = {
        {&a->encoded, N * C},
        {&a->ln1_mean, L * N},
        {&a->ln1_rstd, L * N},
        {&a->qkv, L * N * Q},
        {&a->lse, L * N * NH},
        {&a->atty, L * N * C},
        {&a->res2, L * N * C},
        {&a->ln2_mean, L * N},
        {&a->ln2_rstd, L * N},
        {&a->fch, L * N * FO},
        {&a->res3, L * N * C},
        {&a->ln, N * C},
        {&a->fch_act, N * F},
        {&a->proj, N * C},
        {&a->att_scratch, tensor_attention_scratch(B, T, c->n_head)},
        {&a->lnf, N * C},
        {&a->lnf_mean, N},
        {&a->lnf_rstd, N},
        {&a->logits, N * V},
        {&a->probs, N * V},
        {&a->losses, N},
    };
    return layout(spec, sizeof spec / sizeof spec[0], base);
}

/* One layer's activation gradients for (B,T), from base (NULL: count only). */
static size_t layout_dacts(const nn_config *c, int B, int T, float *base, nn_dacts *d) {
    size_t N = (size_t)B * T, C = (size_t)c->d_model;
    size_t Q = (size_t)qkv_width(c), FO = (size_t)fc_width(c), F = (size_t)c->d_ff;
    struct act_spec spec[] = {
        {&d->res, N * C},  {&d->ln, N * C},      {&d->qkv, N * Q}, {&d->atty, N * C},
        {&d->fch, N * FO}, {&d->fch_act, N * F}, {&d->lnf, N * C},
    };
    return layout(spec, sizeof spec / sizeof spec[0], base);
}

/* grads 0: no gradient buffer (a frozen base: nn_model_create_frozen); src NULL: no held
 * matrices (else the model takes it, even on failure) */
static int create(nn_model **out, const nn_config *cfg, int B, int T, int grads, const nn_wsrc *src,
                  base_err *e);

int nn_model_create(nn_model **out, const nn_config *cfg, int B, int T, base_err *e) {
    return create(out, cfg, B, T, 1, NULL, e);
}

int nn_model_create_frozen(nn_model **out, const nn_config *cfg, int B, int T, base_err *e) {
    return create(out, cfg, B, T, 0, NULL, e);
}

int nn_model_create_held(nn_model **out, const nn_config *cfg, int B, int T, const nn_wsrc *src,
                         base_err *e) {
    return create(out, cfg, B, T, 0, src, e);
}

/* Floats of scratch the held matrices need: the largest one fetched whole, and the embedding's
 * B*T gathered rows. */
static size_t held_scratch(const nn_config *c, unsigned held, int B, int T) {
    size_t C = (size_t)c->d_model, V = (size_t)c->vocab_size, n = 0;
    size_t each[NN_W_N] = {(size_t)B * T * C,       (size_t)qkv_width(c) * C, C * C,
                           (size_t)fc_width(c) * C, C * (size_t)c->d_ff,      V * C};
    if (c->tied) each[NN_W_WTE] = V * C > each[NN_W_WTE] ? V * C : each[NN_W_WTE];
    for (int i = 0; i < NN_W_N; i++)
        if ((held >> i & 1) && each[i] > n) n = each[i];
    return n;
}

/* create's work; m->wsrc.free stays NULL here, so a failure leaves src to create */
static int create_model(nn_model **out, const nn_config *cfg, int B, int T, int grads,
                        const nn_wsrc *src, base_err *e);

static int create(nn_model **out, const nn_config *cfg, int B, int T, int grads, const nn_wsrc *src,
                  base_err *e) {
    int rc = create_model(out, cfg, B, T, grads, src, e);
    if (!rc && src && src->held)
        (*out)->wsrc.free = src->free; /* the model's from here on */
    else if (src && src->free)
        src->free(src->user); /* failed, or nothing held */
    return rc;
}

static int create_model(nn_model **out, const nn_config *cfg, int B, int T, int grads,
                        const nn_wsrc *src, base_err *e) {
    *out = NULL;
    int rc = nn_config_check(cfg, e);
    if (rc) return rc;
    if (src && (!src->get || (src->held >> NN_W_N) || ((src->held >> NN_W_HEAD & 1) && cfg->tied)))
        return base_fail(e, BASE_EINVAL, "held matrices: no source, or one the config lacks");
    if (B < 1 || T < 1)
        return base_fail(e, BASE_EINVAL, "batch size and sequence length must be positive");
    if (T > cfg->max_seq)
        return base_fail(e, BASE_EINVAL, "sequence length %d is longer than the model's max_seq %d",
                         T, cfg->max_seq);
    /* Bound the activation size in double before laying it out in size_t (an upper bound:
     * QKV <= 3C, FCO <= 2F). */
    double approx =
        (double)B * T *
        ((double)cfg->n_layer * (6.0 * cfg->d_model + 2.0 * cfg->d_ff + cfg->n_head + 4.0) +
         12.0 * cfg->d_model + 4.0 * cfg->d_ff + 2.0 * cfg->vocab_size +
         2.0 * cfg->n_head * TENSOR_ATT_BLOCK);
    if (approx > 4e9)
        return base_fail(e, BASE_EINVAL, "batch %d x %d needs more than 16 GB of activations", B,
                         T);
    nn_model *m = calloc(1, sizeof *m);
    if (!m) return base_fail(e, BASE_ENOMEM, "out of memory");
    m->cfg = *cfg;
    m->ops = &tensor_fast_ops;
    m->B = B;
    m->T = T;
    if (src && src->held) {
        m->wsrc = *src;
        m->wsrc.free = NULL; /* set by create once the model is made */
        m->wscratch = base_alloc_floats(held_scratch(cfg, src->held, B, T));
        m->wrows = malloc((size_t)B * T * sizeof(int));
        for (int i = 0; m->wrows && i < B * T; i++) m->wrows[i] = i;
    }
    m->n_tensors = layout_params(cfg, m->wsrc.held, m->tensors, NULL, &m->n_params);
    m->n_acts = layout_acts(cfg, B, T, NULL, &m->a);
    m->n_dacts = layout_dacts(cfg, B, T, NULL, &m->da);
    m->params = base_alloc_floats(m->n_params);
    m->grads = grads ? base_alloc_floats(m->n_params) : NULL;
    m->acts = base_alloc_floats(m->n_acts);
    m->dacts = base_alloc_floats(m->n_dacts);
    m->tokens = calloc((size_t)B * T, sizeof(int));
    m->targets = calloc((size_t)B * T, sizeof(int));
    if (cfg->family == NN_LLAMA) {
        size_t half = (size_t)cfg->max_seq * (size_t)(cfg->d_model / cfg->n_head / 2);
        m->rope_cos = base_alloc_floats(half);
        m->rope_sin = base_alloc_floats(half);
        if (m->rope_cos && m->rope_sin)
            tensor_rope_table(m->rope_cos, m->rope_sin, cfg->max_seq, cfg->d_model / cfg->n_head,
                              cfg->rope_theta);
    }
    if (!m->params || (grads && !m->grads) || (m->wsrc.held && (!m->wscratch || !m->wrows)) ||
        !m->acts || !m->dacts || !m->tokens || !m->targets ||
        (cfg->family == NN_LLAMA && (!m->rope_cos || !m->rope_sin))) {
        nn_model_free(m);
        return base_fail(
            e, BASE_ENOMEM,
            "out of memory allocating the model (%zu parameters, ~%.0f MB of activations)",
            nn_config_params(cfg), approx * 4 / 1e6);
    }
    layout_acts(cfg, B, T, m->acts, &m->a);
    layout_dacts(cfg, B, T, m->dacts, &m->da);
    nn_model_bind(m);
    *out = m;
    return BASE_OK;
}

void nn_model_free(nn_model *m) {
    if (!m) return;
    free(m->params);
    free(m->grads);
    free(m->acts);
    free(m->dacts);
    free(m->tokens);
    free(m->targets);
    free(m->rope_cos);
    free(m->rope_sin);
    free(m->wscratch);
    free(m->wrows);
    if (m->wsrc.free) m->wsrc.free(m->wsrc.user);
    free(m);
}

void nn_model_drop_training(nn_model *m) {
    free(m->grads);
    free(m->acts);
    free(m->dacts);
    m->grads = m->acts = m->dacts = NULL;
    memset(&m->gt, 0, sizeof m->gt);
    memset(&m->a, 0, sizeof m->a);
    memset(&m->da, 0, sizeof m->da);
}

const nn_tensor *nn_model_tensor(const nn_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

void nn_model_init(nn_model *m, uint64_t seed) {
    base_rng r;
    base_rng_seed(&r, seed);
    float resid_std = 0.02f / sqrtf(2.0f * (float)m->cfg.n_layer);
    const nn_params *w = &m->pt;
    for (int i = 0; i < m->n_tensors; i++) { /* in storage order: the order of the draws */
        const nn_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        if (p == w->ln1w || p == w->ln2w || p == w->lnfw) {
            for (size_t j = 0; j < t->numel; j++) p[j] = 1.0f;
        } else if (!t->decay) {
            memset(p, 0, t->numel * sizeof(float)); /* biases */
        } else {
            float std = (p == w->attprojw || p == w->fcprojw) ? resid_std : 0.02f;
            for (size_t j = 0; j < t->numel; j++) p[j] = std * base_rng_normal(&r);
        }
    }
}

void nn_zero_grad(nn_model *m) {
    if (m->grads) memset(m->grads, 0, m->n_params * sizeof(float));
    if (m->lora) nn_lora_zero_grad(m->lora);
}

void nn_trained_of(const nn_model *m, nn_trained *out) {
    const nn_lora *a = m->lora;
    if (a)
        *out = (nn_trained){a->params, a->grads, a->n_params, a->tensors, a->n_tensors};
    else
        *out = (nn_trained){m->params, m->grads, m->n_params, m->tensors, m->n_tensors};
}

/* Matrix id of layer l in F32 for the product about to run: resident (in params), or fetched
 * from the held source (nn_wsrc) into the scratch, where it stays until the next fetch. */
static const float *wmat(nn_model *m, int id, int l, const float *resident) {
    if (resident) return resident;
    BASE_ASSERT(m->wsrc.held >> id & 1);
    m->wsrc.get(m->wsrc.user, id, l, NULL, 0, m->wscratch);
    return m->wscratch;
}

/* The embedding table for tokens (N): wte itself (*tok = tokens), or a held wte's rows of the N
 * tokens gathered into the scratch, row i for token i (*tok = 0, 1, 2 ...). */
static const float *wte_rows(nn_model *m, const int *tokens, int N, const int **tok) {
    *tok = tokens;
    if (m->pt.wte) return m->pt.wte;
    m->wsrc.get(m->wsrc.user, NN_W_WTE, 0, tokens, N, m->wscratch);
    *tok = m->wrows;
    return m->wscratch;
}

/* Per-layer slice of a stacked activation: l-th of L blocks of `each` floats. */
#define LAYER(ptr, l, each) ((ptr) + (size_t)(l) * (each))

/* Normalisation by family: LayerNorm (with optional bias) or RMSNorm. */
static void norm_fwd(const nn_model *m, float *out, float *mean, float *rstd, const float *inp,
                     const float *w, const float *b, int N) {
    int C = m->cfg.d_model;
    if (m->cfg.family == NN_GPT2)
        m->ops->layernorm_fwd(out, mean, rstd, inp, w, b, N, C, m->cfg.norm_eps);
    else
        m->ops->rmsnorm_fwd(out, rstd, inp, w, N, C, m->cfg.norm_eps);
}

static void norm_bwd(const nn_model *m, float *dinp, float *dw, float *db, const float *dout,
                     const float *inp, const float *w, const float *mean, const float *rstd,
                     int N) {
    int C = m->cfg.d_model;
    if (m->cfg.family == NN_GPT2)
        m->ops->layernorm_bwd(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
    else
        m->ops->rmsnorm_bwd(dinp, dw, dout, inp, w, rstd, N, C);
}

/* The MLP activation by family: SwiGLU (inp (N,2F)) or GELU (inp (N,F)), out (N,F). */
static void mlp_act(const nn_model *m, float *out, const float *inp, int N) {
    if (m->cfg.family == NN_LLAMA)
        m->ops->swiglu_fwd(out, inp, N, m->cfg.d_ff);
    else
        m->ops->gelu_fwd(out, inp, (size_t)N * m->cfg.d_ff);
}

int nn_forward(nn_model *m, const int *tokens, const int *targets, int B, int T, float *loss,
               base_err *e) {
    const nn_config *c = &m->cfg;
    const tensor_ops *k = m->ops;
    if (B < 1 || T < 1 || B > m->B || T > m->T)
        return base_fail(e, BASE_EINVAL, "batch %dx%d does not fit the model's %dx%d", B, T, m->B,
                         m->T);
    int V = c->vocab_size, C = c->d_model, NH = c->n_head, NKV = c->n_kv_head, HS = C / NH;
    int Q = qkv_width(c), FO = fc_width(c), F = c->d_ff, N = B * T;
    for (int i = 0; i < N; i++) {
        if (tokens[i] < 0 || tokens[i] >= V)
            return base_fail(e, BASE_EINVAL,
                             "token %d at position %d is outside the vocabulary (%d)", tokens[i], i,
                             V);
        if (targets && targets[i] != -1 && (targets[i] < 0 || targets[i] >= V))
            return base_fail(e, BASE_EINVAL,
                             "target %d at position %d is outside the vocabulary (%d)", targets[i],
                             i, V);
    }
    memcpy(m->tokens, tokens, (size_t)N * sizeof(int));
    if (targets) memcpy(m->targets, targets, (size_t)N * sizeof(int));
    m->last_B = B;
    m->last_T = T;

    /* Per-layer strides use the allocated shape so every layer's slice is fixed. */
    size_t NA = (size_t)m->B * m->T, sNC = NA * C, sN = NA, sQ = NA * Q, sFO = NA * FO;
    size_t sL = NA * NH;
    nn_acts *a = &m->a;
    const nn_params *p = &m->pt;
    const int *etok;
    const float *wte = wte_rows(m, tokens, N, &etok);
    k->embed_fwd(a->encoded, etok, wte, p->wpe, B, T, C);
    for (int l = 0; l < c->n_layer; l++) {
        nn_layer w = nn_params_layer(p, c, l);
        const float *resid = l ? LAYER(a->res3, l - 1, sNC) : a->encoded;
        float *qkv = LAYER(a->qkv, l, sQ), *atty = LAYER(a->atty, l, sNC);
        float *res2 = LAYER(a->res2, l, sNC), *fch = LAYER(a->fch, l, sFO);
        float *res3 = LAYER(a->res3, l, sNC);

        norm_fwd(m, a->ln, LAYER(a->ln1_mean, l, sN), LAYER(a->ln1_rstd, l, sN), resid, w.ln1w,
                 w.ln1b, N);
        k->matmul_fwd(qkv, a->ln, wmat(m, NN_W_QKV, l, w.qkvw), w.qkvb, N, C, Q);
        if (m->lora) nn_lora_fwd(m, l, NN_LORA_SITE_QKV, qkv, Q, a->ln, N);
        if (c->family == NN_LLAMA) /* q and k heads are adjacent: rotate NH + NKV heads */
            k->rope_fwd(qkv, B, T, NH + NKV, HS, Q, 0, m->rope_cos, m->rope_sin);
        k->attention_fwd(atty, LAYER(a->lse, l, sL), a->att_scratch, qkv, B, T, NH, NKV, HS);
        k->matmul_fwd(a->proj, atty, wmat(m, NN_W_ATTPROJ, l, w.attprojw), w.attprojb, N, C, C);
        if (m->lora) nn_lora_fwd(m, l, NN_LORA_SITE_O, a->proj, C, atty, N);
        k->residual_fwd(res2, resid, a->proj, (size_t)N * C);
        norm_fwd(m, a->ln, LAYER(a->ln2_mean, l, sN), LAYER(a->ln2_rstd, l, sN), res2, w.ln2w,
                 w.ln2b, N);
        k->matmul_fwd(fch, a->ln, wmat(m, NN_W_FC, l, w.fcw), w.fcb, N, C, FO);
        if (m->lora) nn_lora_fwd(m, l, NN_LORA_SITE_FC, fch, FO, a->ln, N);
        mlp_act(m, a->fch_act, fch, N);
        k->matmul_fwd(a->proj, a->fch_act, wmat(m, NN_W_FCPROJ, l, w.fcprojw), w.fcprojb, N, F, C);
        if (m->lora) nn_lora_fwd(m, l, NN_LORA_SITE_DOWN, a->proj, C, a->fch_act, N);
        k->residual_fwd(res3, res2, a->proj, (size_t)N * C);
    }
    norm_fwd(m, a->lnf, a->lnf_mean, a->lnf_rstd, LAYER(a->res3, c->n_layer - 1, sNC), p->lnfw,
             p->lnfb, N);
    const float *head = wmat(m, c->tied ? NN_W_WTE : NN_W_HEAD, 0, c->tied ? p->wte : p->lm_head);
    k->matmul_fwd(a->logits, a->lnf, head, NULL, N, C, V);
    m->loss = 0;
    m->n_valid = 0;
    if (targets) {
        m->loss = k->xent_fwd(a->probs, a->losses, a->logits, targets, N, V, -1, &m->n_valid);
        if (loss) *loss = m->loss;
    }
    return BASE_OK;
}

/* Backward reuses one layer's activation gradients down the stack and recomputes the one-layer
 * activations (a norm's output, the MLP activation) only where a weight gradient or an adapter
 * reads them: with a frozen base (LoRA) on q, k, v, o, the MLP's are never recomputed. The
 * residual stream's gradient d->res is accumulated in place: on entering layer l it is the
 * gradient of res3[l], which is also the MLP projection's output gradient; the MLP's norm adds
 * its share (res2's gradient, the attention projection's output gradient), then the
 * attention's norm (the layer input's). The same sums in the same order as separate buffers
 * (a copy of a gradient into a zeroed one is exact). */
void nn_backward(nn_model *m, float scale) {
    const nn_config *c = &m->cfg;
    const tensor_ops *k = m->ops;
    int B = m->last_B, T = m->last_T, N = B * T;
    int V = c->vocab_size, C = c->d_model, NH = c->n_head, NKV = c->n_kv_head, HS = C / NH;
    int Q = qkv_width(c), FO = fc_width(c), F = c->d_ff;
    size_t NA = (size_t)m->B * m->T, sNC = NA * C, sN = NA, sQ = NA * Q, sFO = NA * FO;
    size_t sL = NA * NH;
    nn_acts *a = &m->a;
    nn_dacts *d = &m->da;
    const nn_params *p = &m->pt, *g = &m->gt;
    const nn_lora *lo = m->lora;
    if (m->n_valid == 0) return; /* every target ignored: the loss is constant */

    float *dlogits = a->logits; /* the logits are not read again: their buffer takes dlogits */
    memset(dlogits, 0, (size_t)N * V * sizeof(float));
    memset(d->res, 0, (size_t)N * C * sizeof(float));
    memset(d->lnf, 0, (size_t)N * C * sizeof(float));
    k->xent_bwd(dlogits, a->probs, m->targets, N, V, -1, scale / (float)m->n_valid);
    const float *head = wmat(m, c->tied ? NN_W_WTE : NN_W_HEAD, 0, c->tied ? p->wte : p->lm_head);
    float *dhead = c->tied ? g->wte : g->lm_head;
    k->matmul_bwd(d->lnf, dhead, NULL, dlogits, a->lnf, head, N, C, V);
    norm_bwd(m, d->res, g->lnfw, g->lnfb, d->lnf, LAYER(a->res3, c->n_layer - 1, sNC), p->lnfw,
             a->lnf_mean, a->lnf_rstd, N);
    if (m->bwd_hook) m->bwd_hook(m->bwd_hook_user, c->n_layer);
    for (int l = c->n_layer - 1; l >= 0; l--) {
        nn_layer w = nn_params_layer(p, c, l), dw = nn_params_layer(g, c, l);
        const float *resid = l ? LAYER(a->res3, l - 1, sNC) : a->encoded;
        const float *qkv = LAYER(a->qkv, l, sQ), *atty = LAYER(a->atty, l, sNC);
        const float *res2 = LAYER(a->res2, l, sNC), *fch = LAYER(a->fch, l, sFO);
        float *mean1 = LAYER(a->ln1_mean, l, sN), *rstd1 = LAYER(a->ln1_rstd, l, sN);
        float *mean2 = LAYER(a->ln2_mean, l, sN), *rstd2 = LAYER(a->ln2_rstd, l, sN);
        memset(d->fch_act, 0, (size_t)N * F * sizeof(float));
        memset(d->fch, 0, (size_t)N * FO * sizeof(float));
        memset(d->ln, 0, (size_t)N * C * sizeof(float));

        /* MLP: d->res is the projection's output gradient */
        if (dw.fcprojw || (lo && nn_lora_site_used(lo, NN_LORA_SITE_DOWN)))
            mlp_act(m, a->fch_act, fch, N);
        k->matmul_bwd(d->fch_act, dw.fcprojw, dw.fcprojb, d->res, a->fch_act,
                      wmat(m, NN_W_FCPROJ, l, w.fcprojw), N, F, C);
        if (lo) nn_lora_bwd(m, l, NN_LORA_SITE_DOWN, d->fch_act, d->res, C, a->fch_act, N);
        if (c->family == NN_LLAMA)
            k->swiglu_bwd(d->fch, fch, d->fch_act, N, F);
        else
            k->gelu_bwd(d->fch, fch, d->fch_act, (size_t)N * F);
        if (dw.fcw || (lo && nn_lora_site_used(lo, NN_LORA_SITE_FC)))
            norm_fwd(m, a->ln, mean2, rstd2, res2, w.ln2w, w.ln2b, N);
        k->matmul_bwd(d->ln, dw.fcw, dw.fcb, d->fch, a->ln, wmat(m, NN_W_FC, l, w.fcw), N, C, FO);
        if (lo) nn_lora_bwd(m, l, NN_LORA_SITE_FC, d->ln, d->fch, FO, a->ln, N);
        norm_bwd(m, d->res, dw.ln2w, dw.ln2b, d->ln, res2, w.ln2w, mean2, rstd2, N);

        /* attention: d->res is now res2's gradient, the projection's output gradient */
        memset(d->atty, 0, (size_t)N * C * sizeof(float));
        memset(d->qkv, 0, (size_t)N * Q * sizeof(float));
        memset(d->ln, 0, (size_t)N * C * sizeof(float));
        k->matmul_bwd(d->atty, dw.attprojw, dw.attprojb, d->res, atty,
                      wmat(m, NN_W_ATTPROJ, l, w.attprojw), N, C, C);
        if (lo) nn_lora_bwd(m, l, NN_LORA_SITE_O, d->atty, d->res, C, atty, N);
        k->attention_bwd(d->qkv, a->att_scratch, d->atty, qkv, LAYER(a->lse, l, sL), B, T, NH, NKV,
                         HS);
        if (c->family == NN_LLAMA)
            k->rope_bwd(d->qkv, B, T, NH + NKV, HS, Q, 0, m->rope_cos, m->rope_sin);
        if (dw.qkvw || (lo && nn_lora_site_used(lo, NN_LORA_SITE_QKV)))
            norm_fwd(m, a->ln, mean1, rstd1, resid, w.ln1w, w.ln1b, N);
        k->matmul_bwd(d->ln, dw.qkvw, dw.qkvb, d->qkv, a->ln, wmat(m, NN_W_QKV, l, w.qkvw), N, C,
                      Q);
        if (lo) nn_lora_bwd(m, l, NN_LORA_SITE_QKV, d->ln, d->qkv, Q, a->ln, N);
        norm_bwd(m, d->res, dw.ln1w, dw.ln1b, d->ln, resid, w.ln1w, mean1, rstd1, N);
        if (m->bwd_hook) m->bwd_hook(m->bwd_hook_user, l);
    }
    k->embed_bwd(g->wte, g->wpe, d->res, m->tokens, B, T, C);
    if (m->bwd_hook) m->bwd_hook(m->bwd_hook_user, -1);
}

const float *nn_logits_at(const nn_model *m, int b, int t) {
    return m->a.logits + ((size_t)b * m->last_T + t) * m->cfg.vocab_size;
}

double nn_flops_per_token(const nn_config *c, int T) {
    /* 2 flops per multiply-add: every weight matrix once per token, plus attention scores and
     * the weighted sum (2 * T * C each, causal on average T/2, counted in full as is the
     * convention; the blocked kernels compute a little over half of it). */
    double C = c->d_model, L = c->n_layer;
    double mat = C * qkv_width(c) + C * C + C * fc_width(c) + (double)c->d_ff * C;
    return 2.0 * (L * mat + C * c->vocab_size) + L * 4.0 * T * C;
}
