/* infer/arch.c: the model families the engine runs, one table entry each (GGUF
 * general.architecture, llama.cpp's names and semantics), and the hyperparameters a family
 * reads from the file beyond nn_config. The forward (forward.c) is one implementation; what
 * differs between families is these options and the few operations they select. */
#include "infer_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const infer_family families[] = {
    /* GPT-2: LayerNorm, learned positions, fused attn_qkv, GELU FFN */
    {.name = "gpt2", .base = NN_GPT2, .act = INFER_ACT_GELU},
    /* Llama 2/3 and Mistral: q and k rows in adjacent-pair RoPE order (llama.cpp's "normal"
     * RoPE), optional biases, Llama 3.1+'s rope_freqs */
    {.name = "llama", .base = NN_LLAMA, .rope_pairs = 1, .act = INFER_ACT_SWIGLU},
    /* Qwen2: NeoX RoPE (halves, hearth's own order), q/k/v biases */
    {.name = "qwen2", .base = NN_LLAMA, .act = INFER_ACT_SWIGLU},
    /* Phi-3: NeoX RoPE, attn_qkv fused (or q/k/v), ffn_up holds gate | up, q scaled before
     * q.k, a sliding window on every layer, long/short RoPE factors */
    {.name = "phi3",
     .base = NN_LLAMA,
     .fused_gate_up = 1,
     .q_prescale = 1,
     .swa = 1,
     .act = INFER_ACT_SWIGLU},
    /* Gemma 2: embedding times sqrt(C), NeoX RoPE, q scaled before q.k, attention and final
     * logit soft-capping, a sliding window on even layers, norms after attention and FFN,
     * GELU-tanh gated FFN, output tied to the embedding */
    {.name = "gemma2",
     .base = NN_LLAMA,
     .post_norms = 1,
     .emb_scale = 1,
     .q_prescale = 1,
     .softcap = 1,
     .swa = 2,
     .tied_only = 1,
     .act = INFER_ACT_GEGLU},
};

const infer_family *infer_family_find(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof families / sizeof *families; i++)
        if (strlen(families[i].name) == len && !memcmp(families[i].name, name, len))
            return &families[i];
    return NULL;
}

const infer_family *infer_family_of_nn(nn_family f) {
    return &families[f == NN_LLAMA ? 1 : 0];
}

void infer_hparams_default(infer_hparams *hp, const infer_family *f, const nn_config *c) {
    memset(hp, 0, sizeof *hp);
    hp->arch = f->name;
    hp->head_dim = c->d_model / c->n_head;
    hp->rope = f->base == NN_LLAMA;
    hp->act = f->act;
    hp->att_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->q_prescale = f->q_prescale;
    hp->rope_freq_scale = 1.0f;
    hp->rope_attn_factor = 1.0f;
}

/* An optional float key (absent: *out unchanged). */
static int opt_float(const gguf_file *g, const char *arch, const char *suffix, float *out,
                     base_err *e) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, suffix);
    if (gguf_find(g, k) < 0) return BASE_OK;
    double x;
    if (gguf_get_float(g, k, &x, e)) return BASE_EFORMAT;
    if (!isfinite(x)) return base_fail(e, BASE_EFORMAT, "GGUF: %s is not a finite number", k);
    *out = (float)x;
    return BASE_OK;
}

static int opt_uint(const gguf_file *g, const char *arch, const char *suffix, int *out,
                    base_err *e) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, suffix);
    if (gguf_find(g, k) < 0) return BASE_OK;
    int64_t x;
    if (gguf_get_int(g, k, &x, e)) return BASE_EFORMAT;
    if (x < 0 || x > INT32_MAX)
        return base_fail(e, BASE_EFORMAT, "GGUF: %s = %lld is out of range", k, (long long)x);
    *out = (int)x;
    return BASE_OK;
}

int infer_hparams_from_gguf(infer_hparams *hp, const infer_family *f, const gguf_file *g,
                            const nn_config *c, base_err *e) {
    infer_hparams_default(hp, f, c);
    const char *a = f->name;
    int hd = hp->head_dim;
    float scale = 0, attn_factor = 1;
    hp->rope_orig_ctx = c->max_seq; /* llama.cpp's n_ctx_orig_yarn without the key */
    if (opt_uint(g, a, "attention.key_length", &hd, e) ||
        opt_float(g, a, "rope.scaling.factor", &scale, e) ||
        (scale == 0 && opt_float(g, a, "rope.scale_linear", &scale, e)) ||
        opt_float(g, a, "rope.scaling.attn_factor", &attn_factor, e) ||
        opt_uint(g, a, "rope.scaling.original_context_length", &hp->rope_orig_ctx, e))
        return BASE_EFORMAT;
    if (hd < 1 || hd > 4096 || hd % 2)
        return base_fail(e, BASE_EFORMAT, "GGUF: a head of %d dimensions", hd);
    int vd = hd; /* values as wide as keys: the cache and the attention assume it */
    if (opt_uint(g, a, "attention.value_length", &vd, e)) return BASE_EFORMAT;
    if (vd != hd)
        return base_fail(e, BASE_EFORMAT,
                         "GGUF: value heads of %d dimensions and key heads of %d are not supported",
                         vd, hd);
    hp->head_dim = hd;
    hp->att_scale = 1.0f / sqrtf((float)hd);
    if (scale < 0) return base_fail(e, BASE_EFORMAT, "GGUF: rope.scaling.factor %g", (double)scale);
    hp->rope_freq_scale = scale == 0 ? 1.0f : 1.0f / scale;
    hp->rope_attn_factor = attn_factor;
    if (f->softcap) { /* llama.cpp's defaults when the file has no keys */
        hp->att_softcap = 50.0f, hp->final_softcap = 30.0f;
        if (opt_float(g, a, "attn_logit_softcapping", &hp->att_softcap, e) ||
            opt_float(g, a, "final_logit_softcapping", &hp->final_softcap, e))
            return BASE_EFORMAT;
        if (hp->att_softcap <= 0 || hp->final_softcap <= 0)
            return base_fail(e, BASE_EFORMAT, "GGUF: soft-capping must be > 0 (%g, %g)",
                             (double)hp->att_softcap, (double)hp->final_softcap);
    }
    if (f->emb_scale) hp->emb_scale = sqrtf((float)c->d_model);
    if (f->swa == 2) { /* Gemma 2: 4096 unless the file says */
        hp->swa = 4096, hp->swa_every_other = 1;
        if (opt_uint(g, a, "attention.sliding_window", &hp->swa, e)) return BASE_EFORMAT;
        /* llama.cpp scales q by 1/sqrt(C / NH) for the 27B (46 layers), by 1/sqrt(HS) else */
        if (c->n_layer == 46) hp->att_scale = 1.0f / sqrtf((float)(c->d_model / c->n_head));
    } else if (f->swa == 1) {
        /* Phi-3: llama.cpp's defaults for the files from before the key existed */
        if (c->max_seq == 4096 && (c->n_layer == 32 || c->n_layer == 40))
            hp->swa = 2047;
        else if (c->n_layer == 32 && c->n_kv_head == 32 && c->max_seq == 131072)
            hp->swa = 262144;
        else if (c->n_layer == 40 && c->max_seq == 131072)
            hp->swa = 131072;
        int found = gguf_find(g, "phi3.attention.sliding_window") >= 0;
        if (opt_uint(g, a, "attention.sliding_window", &hp->swa, e)) return BASE_EFORMAT;
        if (!found && hp->swa == 0)
            return base_fail(e, BASE_EFORMAT, "GGUF: phi3.attention.sliding_window is missing");
    }
    return BASE_OK;
}
