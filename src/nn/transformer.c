/* nn/transformer.c: the one transformer, GPT-2 or Llama family by config. Forward and
 * backward side by side, layer by layer, on the kernels of m->ops. */
#include "nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int qkv_width(const nn_config *c) {
    return (c->n_head + 2 * c->n_kv_head) * (c->d_model / c->n_head);
}
static int fc_width(const nn_config *c) {
    return c->family == NN_LLAMA ? 2 * c->d_ff : c->d_ff;
}

/* The parameter tensors in storage order. Fills t (if not NULL) and returns the count. */
static int layout_params(const nn_config *c, nn_tensor *t, size_t *total) {
    int V = c->vocab_size, C = c->d_model, L = c->n_layer, Q = qkv_width(c), FO = fc_width(c);
    int F = c->d_ff, gpt2 = c->family == NN_GPT2;
    struct {
        const char *name;
        int present, ndim, s0, s1, s2, decay;
    } spec[NN_MAX_TENSORS] = {
        {"wte", 1, 2, V, C, 0, 1},
        {"wpe", gpt2, 2, c->max_seq, C, 0, 1},
        {"ln1w", 1, 2, L, C, 0, 0},
        {"ln1b", c->bias, 2, L, C, 0, 0},
        {"qkvw", 1, 3, L, Q, C, 1},
        {"qkvb", c->bias, 2, L, Q, 0, 0},
        {"attprojw", 1, 3, L, C, C, 1},
        {"attprojb", c->bias, 2, L, C, 0, 0},
        {"ln2w", 1, 2, L, C, 0, 0},
        {"ln2b", c->bias, 2, L, C, 0, 0},
        {"fcw", 1, 3, L, FO, C, 1},
        {"fcb", c->bias, 2, L, FO, 0, 0},
        {"fcprojw", 1, 3, L, C, F, 1},
        {"fcprojb", c->bias, 2, L, C, 0, 0},
        {"lnfw", 1, 1, C, 0, 0, 0},
        {"lnfb", c->bias, 1, C, 0, 0, 0},
        {"lm_head", !c->tied, 2, V, C, 0, 1},
    };
    int n = 0;
    size_t off = 0;
    for (int i = 0; i < NN_MAX_TENSORS; i++) {
        if (!spec[i].present) continue;
        size_t numel = (size_t)spec[i].s0 * (spec[i].ndim > 1 ? (size_t)spec[i].s1 : 1) *
                       (spec[i].ndim > 2 ? (size_t)spec[i].s2 : 1);
        if (t)
            t[n] = (nn_tensor){spec[i].name, spec[i].ndim, {spec[i].s0, spec[i].s1, spec[i].s2},
                               off,          numel,        spec[i].decay};
        off += numel;
        n++;
    }
    *total = off;
    return n;
}

size_t nn_config_params(const nn_config *c) {
    size_t total;
    layout_params(c, NULL, &total);
    return total;
}

/* Lays out the activations for (B,T) in one buffer starting at base (NULL: count only).
 * Returns the float count. */
static size_t layout_acts(const nn_config *c, int B, int T, float *base, nn_acts *a) {
    size_t L = (size_t)c->n_layer, N = (size_t)B * T, C = (size_t)c->d_model;
    size_t NH = (size_t)c->n_head, V = (size_t)c->vocab_size;
    size_t Q = (size_t)qkv_width(c), FO = (size_t)fc_width(c), F = (size_t)c->d_ff;
    struct {
        float **p;
        size_t n;
    } spec[] = {
        {&a->encoded, N * C},  {&a->ln1, L * N * C},     {&a->ln1_mean, L * N},
        {&a->ln1_rstd, L * N}, {&a->qkv, L * N * Q},     {&a->att, L * B * NH * T * T},
        {&a->atty, L * N * C}, {&a->attproj, L * N * C}, {&a->res2, L * N * C},
        {&a->ln2, L * N * C},  {&a->ln2_mean, L * N},    {&a->ln2_rstd, L * N},
        {&a->fch, L * N * FO}, {&a->fch_act, L * N * F}, {&a->fcproj, L * N * C},
        {&a->res3, L * N * C}, {&a->lnf, N * C},         {&a->lnf_mean, N},
        {&a->lnf_rstd, N},     {&a->logits, N * V},      {&a->probs, N * V},
        {&a->losses, N},
    };
    size_t off = 0;
    for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
        *spec[i].p = base ? base + off : NULL;
        off += (spec[i].n + 15) & ~(size_t)15; /* keep every tensor 64-byte aligned */
    }
    return off;
}

int nn_model_create(nn_model **out, const nn_config *cfg, int B, int T, base_err *e) {
    *out = NULL;
    int rc = nn_config_check(cfg, e);
    if (rc) return rc;
    if (B < 1 || T < 1)
        return base_fail(e, BASE_EINVAL, "batch size and sequence length must be positive");
    if (T > cfg->max_seq)
        return base_fail(e, BASE_EINVAL, "sequence length %d is longer than the model's max_seq %d",
                         T, cfg->max_seq);
    /* Bound the activation size in double before laying it out in size_t. */
    double approx =
        (double)B * T *
        ((double)cfg->n_layer * (12.0 * cfg->d_model + 3.0 * cfg->d_ff + (double)cfg->n_head * T) +
         2.0 * cfg->vocab_size);
    if (approx > 4e9)
        return base_fail(e, BASE_EINVAL, "batch %d x %d needs more than 16 GB of activations", B,
                         T);
    nn_model *m = calloc(1, sizeof *m);
    if (!m) return base_fail(e, BASE_ENOMEM, "out of memory");
    m->cfg = *cfg;
    m->ops = &tensor_fast_ops;
    m->B = B;
    m->T = T;
    m->n_tensors = layout_params(cfg, m->tensors, &m->n_params);
    m->n_acts = layout_acts(cfg, B, T, NULL, &m->a);
    m->params = base_alloc_floats(m->n_params);
    m->grads = base_alloc_floats(m->n_params);
    m->acts = base_alloc_floats(m->n_acts);
    m->dacts = base_alloc_floats(m->n_acts);
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
    if (!m->params || !m->grads || !m->acts || !m->dacts || !m->tokens || !m->targets ||
        (cfg->family == NN_LLAMA && (!m->rope_cos || !m->rope_sin))) {
        nn_model_free(m);
        return base_fail(
            e, BASE_ENOMEM,
            "out of memory allocating the model (%zu parameters, ~%.0f MB of activations)",
            nn_config_params(cfg), approx * 8 / 1e6);
    }
    layout_acts(cfg, B, T, m->acts, &m->a);
    layout_acts(cfg, B, T, m->dacts, &m->da);
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
    free(m);
}

const nn_tensor *nn_model_tensor(const nn_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

/* Parameter or gradient pointer of a named tensor (NULL if absent), plus layer l's slice. */
static float *P(const nn_model *m, float *base, const char *name, int l) {
    const nn_tensor *t = nn_model_tensor(m, name);
    if (!t) return NULL;
    return base + t->offset + (size_t)l * (t->numel / (size_t)t->shape[0]);
}

void nn_model_init(nn_model *m, uint64_t seed) {
    base_rng r;
    base_rng_seed(&r, seed);
    float resid_std = 0.02f / sqrtf(2.0f * (float)m->cfg.n_layer);
    for (int i = 0; i < m->n_tensors; i++) {
        const nn_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        const char *n = t->name;
        if (!strcmp(n, "ln1w") || !strcmp(n, "ln2w") || !strcmp(n, "lnfw")) {
            for (size_t j = 0; j < t->numel; j++) p[j] = 1.0f;
        } else if (!t->decay) {
            memset(p, 0, t->numel * sizeof(float)); /* biases */
        } else {
            float std = (!strcmp(n, "attprojw") || !strcmp(n, "fcprojw")) ? resid_std : 0.02f;
            for (size_t j = 0; j < t->numel; j++) p[j] = std * base_rng_normal(&r);
        }
    }
}

void nn_zero_grad(nn_model *m) {
    memset(m->grads, 0, m->n_params * sizeof(float));
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
    size_t NA = (size_t)m->B * m->T, sNC = NA * C, sN = NA, sQ = NA * Q, sFO = NA * FO, sF = NA * F;
    size_t sATT = (size_t)m->B * NH * m->T * m->T;
    nn_acts *a = &m->a;
    float *p = m->params;
    k->embed_fwd(a->encoded, tokens, P(m, p, "wte", 0), P(m, p, "wpe", 0), B, T, C);
    for (int l = 0; l < c->n_layer; l++) {
        const float *resid = l ? LAYER(a->res3, l - 1, sNC) : a->encoded;
        float *ln1 = LAYER(a->ln1, l, sNC), *qkv = LAYER(a->qkv, l, sQ);
        float *atty = LAYER(a->atty, l, sNC), *attproj = LAYER(a->attproj, l, sNC);
        float *res2 = LAYER(a->res2, l, sNC), *ln2 = LAYER(a->ln2, l, sNC);
        float *fch = LAYER(a->fch, l, sFO), *fch_act = LAYER(a->fch_act, l, sF);
        float *fcproj = LAYER(a->fcproj, l, sNC), *res3 = LAYER(a->res3, l, sNC);

        norm_fwd(m, ln1, LAYER(a->ln1_mean, l, sN), LAYER(a->ln1_rstd, l, sN), resid,
                 P(m, p, "ln1w", l), P(m, p, "ln1b", l), N);
        k->matmul_fwd(qkv, ln1, P(m, p, "qkvw", l), P(m, p, "qkvb", l), N, C, Q);
        if (c->family == NN_LLAMA) /* q and k heads are adjacent: rotate NH + NKV heads */
            k->rope_fwd(qkv, B, T, NH + NKV, HS, Q, 0, m->rope_cos, m->rope_sin);
        k->attention_fwd(atty, LAYER(a->att, l, sATT), qkv, B, T, NH, NKV, HS);
        k->matmul_fwd(attproj, atty, P(m, p, "attprojw", l), P(m, p, "attprojb", l), N, C, C);
        k->residual_fwd(res2, resid, attproj, (size_t)N * C);
        norm_fwd(m, ln2, LAYER(a->ln2_mean, l, sN), LAYER(a->ln2_rstd, l, sN), res2,
                 P(m, p, "ln2w", l), P(m, p, "ln2b", l), N);
        k->matmul_fwd(fch, ln2, P(m, p, "fcw", l), P(m, p, "fcb", l), N, C, FO);
        if (c->family == NN_LLAMA)
            k->swiglu_fwd(fch_act, fch, N, F);
        else
            k->gelu_fwd(fch_act, fch, (size_t)N * F);
        k->matmul_fwd(fcproj, fch_act, P(m, p, "fcprojw", l), P(m, p, "fcprojb", l), N, F, C);
        k->residual_fwd(res3, res2, fcproj, (size_t)N * C);
    }
    norm_fwd(m, a->lnf, a->lnf_mean, a->lnf_rstd, LAYER(a->res3, c->n_layer - 1, sNC),
             P(m, p, "lnfw", 0), P(m, p, "lnfb", 0), N);
    const float *head = c->tied ? P(m, p, "wte", 0) : P(m, p, "lm_head", 0);
    k->matmul_fwd(a->logits, a->lnf, head, NULL, N, C, V);
    m->loss = 0;
    m->n_valid = 0;
    if (targets) {
        m->loss = k->xent_fwd(a->probs, a->losses, a->logits, targets, N, V, -1, &m->n_valid);
        if (loss) *loss = m->loss;
    }
    return BASE_OK;
}

void nn_backward(nn_model *m, float scale) {
    const nn_config *c = &m->cfg;
    const tensor_ops *k = m->ops;
    int B = m->last_B, T = m->last_T, N = B * T;
    int V = c->vocab_size, C = c->d_model, NH = c->n_head, NKV = c->n_kv_head, HS = C / NH;
    int Q = qkv_width(c), FO = fc_width(c), F = c->d_ff;
    size_t NA = (size_t)m->B * m->T, sNC = NA * C, sN = NA, sQ = NA * Q, sFO = NA * FO, sF = NA * F;
    size_t sATT = (size_t)m->B * NH * m->T * m->T;
    nn_acts *a = &m->a, *d = &m->da;
    float *p = m->params, *g = m->grads;
    if (m->n_valid == 0) return; /* every target ignored: the loss is constant */
    memset(m->dacts, 0, m->n_acts * sizeof(float));

    k->xent_bwd(d->logits, a->probs, m->targets, N, V, -1, scale / (float)m->n_valid);
    const float *head = c->tied ? P(m, p, "wte", 0) : P(m, p, "lm_head", 0);
    float *dhead = c->tied ? P(m, g, "wte", 0) : P(m, g, "lm_head", 0);
    k->matmul_bwd(d->lnf, dhead, NULL, d->logits, a->lnf, head, N, C, V);
    norm_bwd(m, LAYER(d->res3, c->n_layer - 1, sNC), P(m, g, "lnfw", 0), P(m, g, "lnfb", 0), d->lnf,
             LAYER(a->res3, c->n_layer - 1, sNC), P(m, p, "lnfw", 0), a->lnf_mean, a->lnf_rstd, N);
    for (int l = c->n_layer - 1; l >= 0; l--) {
        const float *resid = l ? LAYER(a->res3, l - 1, sNC) : a->encoded;
        float *dresid = l ? LAYER(d->res3, l - 1, sNC) : d->encoded;
        float *dres2 = LAYER(d->res2, l, sNC), *dfcproj = LAYER(d->fcproj, l, sNC);
        float *dfch_act = LAYER(d->fch_act, l, sF), *dfch = LAYER(d->fch, l, sFO);
        float *dln2 = LAYER(d->ln2, l, sNC), *dattproj = LAYER(d->attproj, l, sNC);
        float *datty = LAYER(d->atty, l, sNC), *dqkv = LAYER(d->qkv, l, sQ);
        float *dln1 = LAYER(d->ln1, l, sNC);

        k->residual_bwd(dres2, dfcproj, LAYER(d->res3, l, sNC), (size_t)N * C);
        k->matmul_bwd(dfch_act, P(m, g, "fcprojw", l), P(m, g, "fcprojb", l), dfcproj,
                      LAYER(a->fch_act, l, sF), P(m, p, "fcprojw", l), N, F, C);
        if (c->family == NN_LLAMA)
            k->swiglu_bwd(dfch, LAYER(a->fch, l, sFO), dfch_act, N, F);
        else
            k->gelu_bwd(dfch, LAYER(a->fch, l, sFO), dfch_act, (size_t)N * F);
        k->matmul_bwd(dln2, P(m, g, "fcw", l), P(m, g, "fcb", l), dfch, LAYER(a->ln2, l, sNC),
                      P(m, p, "fcw", l), N, C, FO);
        norm_bwd(m, dres2, P(m, g, "ln2w", l), P(m, g, "ln2b", l), dln2, LAYER(a->res2, l, sNC),
                 P(m, p, "ln2w", l), LAYER(a->ln2_mean, l, sN), LAYER(a->ln2_rstd, l, sN), N);
        k->residual_bwd(dresid, dattproj, dres2, (size_t)N * C);
        k->matmul_bwd(datty, P(m, g, "attprojw", l), P(m, g, "attprojb", l), dattproj,
                      LAYER(a->atty, l, sNC), P(m, p, "attprojw", l), N, C, C);
        k->attention_bwd(dqkv, LAYER(d->att, l, sATT), datty, LAYER(a->qkv, l, sQ),
                         LAYER(a->att, l, sATT), B, T, NH, NKV, HS);
        if (c->family == NN_LLAMA)
            k->rope_bwd(dqkv, B, T, NH + NKV, HS, Q, 0, m->rope_cos, m->rope_sin);
        k->matmul_bwd(dln1, P(m, g, "qkvw", l), P(m, g, "qkvb", l), dqkv, LAYER(a->ln1, l, sNC),
                      P(m, p, "qkvw", l), N, C, Q);
        norm_bwd(m, dresid, P(m, g, "ln1w", l), P(m, g, "ln1b", l), dln1, resid, P(m, p, "ln1w", l),
                 LAYER(a->ln1_mean, l, sN), LAYER(a->ln1_rstd, l, sN), N);
    }
    k->embed_bwd(P(m, g, "wte", 0), P(m, g, "wpe", 0), d->encoded, m->tokens, B, T, C);
}

const float *nn_logits_at(const nn_model *m, int b, int t) {
    return m->a.logits + ((size_t)b * m->last_T + t) * m->cfg.vocab_size;
}

double nn_flops_per_token(const nn_config *c, int T) {
    /* 2 flops per multiply-add: every weight matrix once per token, plus attention scores and
     * the weighted sum (2 * T * C each, causal on average T/2, counted in full as computed). */
    double C = c->d_model, L = c->n_layer;
    double mat = C * qkv_width(c) + C * C + C * fc_width(c) + (double)c->d_ff * C;
    return 2.0 * (L * mat + C * c->vocab_size) + L * 4.0 * T * C;
}
