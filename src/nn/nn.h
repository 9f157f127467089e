/* nn: models built from the tensor kernels.
 *  - nn_config: one transformer configuration for the GPT-2 family (LayerNorm, GELU, learned
 *    positions, tied embeddings, biases) and the Llama family (RMSNorm, SwiGLU, RoPE,
 *    grouped-query attention, untied head, no biases); named presets, field overrides.
 *  - nn_model: the transformer. Parameters, gradients, activations and activation gradients
 *    each live in one allocation; named pointers (nn_params, nn_acts, nn_dacts) point into
 *    them, set once when the model is built (llm.c's layout, per-layer tensors stacked on a
 *    leading L axis; activation gradients one layer's worth). The table of names, shapes
 *    and offsets (nn_tensor) is for file I/O and the optimizer, never for the passes.
 *  - nn_mlp: a multilayer perceptron on the same kernels (hearth digits).
 * The model owns all its memory; pointers into it live until nn_model_free. */
#ifndef HEARTH_NN_H
#define HEARTH_NN_H

#include "base/base.h"
#include "tensor/tensor.h"

typedef enum nn_family { NN_GPT2 = 0, NN_LLAMA = 1 } nn_family;

typedef struct nn_config {
    nn_family family;
    int vocab_size; /* V */
    int max_seq;    /* maxT: longest sequence (size of the position table / RoPE table) */
    int n_layer;    /* L */
    int n_head;     /* NH: query heads */
    int n_kv_head;  /* NKV: key/value heads; NH % NKV == 0 (GPT-2: NKV = NH) */
    int d_model;    /* C; head size HS = C / NH */
    int d_ff;       /* F: MLP hidden width */
    int tied;       /* the output head is the token embedding */
    int bias;       /* linear layers and LayerNorms have biases */
    float norm_eps;
    float rope_theta;
} nn_config;

/* Fills c with a named preset: tiny, small, gpt2-124m (GPT-2 family) and llama-tiny,
 * llama-small, llama-124m (Llama family). */
int nn_config_preset(nn_config *c, const char *name, base_err *e);
/* Sets one field by name ("n_layer", "d_model", "family", ...) from a string. */
int nn_config_set(nn_config *c, const char *key, const char *value, base_err *e);
/* The names nn_config_set accepts, NULL-terminated; and the preset names. */
extern const char *const nn_config_fields[];
extern const char *const nn_presets[];
/* Checks that the config is buildable: positive sizes, heads dividing the width, ... */
int nn_config_check(const nn_config *c, base_err *e);
/* The config as a new JSON object (jansson; the caller json_decref's it; NULL when out of
 * memory). norm_eps and rope_theta are reals holding the float32 values: dumped with
 * JSON_REAL_PRECISION(9) they read back as the same floats. */
struct json_t;
struct json_t *nn_config_json(const nn_config *c);
/* Number of parameters the config has. */
size_t nn_config_params(const nn_config *c);

/* One named parameter tensor: a view into the model's parameter allocation. */
typedef struct nn_tensor {
    const char *name;
    int ndim, shape[3];
    size_t offset, numel; /* in floats from the start of params (and grads, m, v) */
    int decay;            /* weight decay applies (matrices; not norms or biases) */
} nn_tensor;

#define NN_MAX_TENSORS 17

/* The parameter tensors by name (llm.c's ParameterTensors): pointers into one float buffer,
 * the parameters or their gradients, resolved once when the model is built, so a misspelled
 * name is a compile error rather than a NULL found at run time. A tensor the config lacks is
 * NULL: wpe in the Llama family, the biases without `bias`, lm_head when tied (the head is
 * wte). Per-layer tensors hold all L layers; nn_params_layer gives one layer's slices. */
typedef struct nn_params {
    float *wte;                 /* (V,C) */
    float *wpe;                 /* (maxT,C) */
    float *ln1w, *ln1b;         /* (L,C) */
    float *qkvw, *qkvb;         /* (L,QKV,C), (L,QKV): QKV = (NH + 2 NKV) HS */
    float *attprojw, *attprojb; /* (L,C,C), (L,C) */
    float *ln2w, *ln2b;         /* (L,C) */
    float *fcw, *fcb;           /* (L,FCO,C), (L,FCO): FCO = F (GELU) or 2F (SwiGLU) */
    float *fcprojw, *fcprojb;   /* (L,C,F), (L,C) */
    float *lnfw, *lnfb;         /* (C) */
    float *lm_head;             /* (V,C) */
} nn_params;

/* Layer l's slice of each per-layer tensor of p (shapes without the L axis; NULL where p's is). */
typedef struct nn_layer {
    float *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb;
    float *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
} nn_layer;
nn_layer nn_params_layer(const nn_params *p, const nn_config *c, int l);

/* Views of the activations: every pointer is an offset into one buffer. Per-layer entries hold
 * all L layers, laid out (L, ...): what backward reads and cannot recompute cheaply. What it
 * can (a norm's output from its input and saved statistics, the MLP's activation from its
 * input) is one layer's worth, rewritten by every layer and recomputed in backward only where
 * a weight gradient or an adapter needs it; the attention keeps each row's log-sum-exp rather
 * than its (T,T) probabilities. */
typedef struct nn_acts {
    float *encoded;                   /* (B,T,C) */
    float *ln1_mean, *ln1_rstd;       /* (L,B,T) each (mean: LayerNorm only) */
    float *qkv;                       /* (L,B,T,QKV) after RoPE */
    float *lse;                       /* (L,B,NH,T) attention rows' log-sum-exp */
    float *atty;                      /* (L,B,T,C) attention output */
    float *res2;                      /* (L,B,T,C) residual after attention */
    float *ln2_mean, *ln2_rstd;       /* (L,B,T) */
    float *fch;                       /* (L,B,T,FCO): FCO = F (GELU) or 2F (SwiGLU) */
    float *res3;                      /* (L,B,T,C) residual after the MLP */
    float *ln;                        /* (B,T,C) one layer: the ln1 or ln2 output being used */
    float *fch_act;                   /* (B,T,F) one layer: the MLP activation */
    float *proj;                      /* (B,T,C) one layer: attention or MLP output projection */
    float *att_scratch;               /* tensor_attention_scratch(B,T,NH) floats */
    float *lnf, *lnf_mean, *lnf_rstd; /* (B,T,C), (B,T), (B,T) */
    float *logits;                    /* (B,T,V); nn_backward overwrites them with their gradient */
    float *probs;                     /* (B,T,V) */
    float *losses;                    /* (B,T) */
} nn_acts;

/* A frozen base's large matrices kept outside the parameter buffer, in the type its file stores
 * them in (QLoRA: a quantized base is dequantized on the fly). The model fetches such a matrix
 * as F32 into its scratch (m->wscratch) just before the product that reads it, in forward and
 * again in backward, one matrix at a time; the frozen base needs no weight gradient. The source
 * is the caller's (src/ckpt's ckpt_gguf_wsrc over a mapped GGUF file): nn only calls it, so nn
 * stays on tensor and base (docs/ARCHITECTURE.md). */
typedef enum nn_wid {
    NN_W_WTE,     /* wte (V,C): gathered by token for the embedding; the head when tied */
    NN_W_QKV,     /* qkvw of layer l (QKV,C) */
    NN_W_ATTPROJ, /* attprojw (C,C) */
    NN_W_FC,      /* fcw (FCO,C) */
    NN_W_FCPROJ,  /* fcprojw (C,F) */
    NN_W_HEAD,    /* lm_head (V,C), untied */
    NN_W_N
} nn_wid;

typedef struct nn_wsrc {
    unsigned held; /* 1 << nn_wid for each matrix the source holds (absent from params: NULL in
                    * m->pt); 0: none, the model is an ordinary one */
    /* dst = rows rows[0..n) of matrix id of layer l (l 0 for wte and lm_head), F32 row-major in
     * hearth's layout; rows NULL: every row of the matrix (n ignored). Never fails: the source
     * checked its data when it was made. Called from one thread; may use OpenMP inside. */
    void (*get)(void *user, int id, int l, const int *rows, int n, float *dst);
    void (*free)(void *user); /* NULL-able: releases user */
    void *user;
} nn_wsrc;
/* The activation gradients: one layer's worth, reused by every layer as backward goes down
 * the stack (llm.c keeps all L), plus the residual stream's gradient. */
typedef struct nn_dacts {
    float *res;     /* (B,T,C) gradient of the residual stream at the current layer boundary */
    float *ln;      /* (B,T,C) of the ln1 or ln2 output */
    float *qkv;     /* (B,T,QKV) */
    float *atty;    /* (B,T,C) */
    float *fch;     /* (B,T,FCO) */
    float *fch_act; /* (B,T,F) */
    float *lnf;     /* (B,T,C) */
} nn_dacts;

typedef struct nn_model {
    nn_config cfg;
    const tensor_ops *ops; /* kernels; tensor_fast_ops unless a test swaps in the reference */
    int B, T;              /* the batch shape activations were allocated for */
    size_t n_params, n_acts, n_dacts;
    float *params, *grads;             /* (n_params) each */
    float *acts, *dacts;               /* (n_acts), (n_dacts) */
    nn_tensor tensors[NN_MAX_TENSORS]; /* names, shapes, offsets: file I/O and the optimizer */
    int n_tensors;
    nn_params pt, gt; /* the parameter tensors in params and in grads (all NULL without grads) */
    nn_acts a;
    nn_dacts da;
    float *rope_cos, *rope_sin; /* (maxT, HS/2), Llama family only */
    int *tokens, *targets;      /* (B,T) of the last forward; targets NULL-able */
    int last_B, last_T, n_valid;
    float loss;           /* mean loss of the last forward with targets */
    struct nn_lora *lora; /* low-rank adapters on the linear layers (lora.h); NULL: none */
    /* optional: called by nn_backward as parameter gradients become final (data-parallel
     * training starts their reduction while the rest of the backward runs): stage n_layer
     * after the head and final norm (lnfw, lnfb, lm_head), stage l after layer l (l from
     * n_layer - 1 down to 0), stage -1 after the embeddings (wte, wpe). */
    void (*bwd_hook)(void *user, int stage);
    void *bwd_hook_user;
    nn_wsrc wsrc;    /* the held matrices (nn_model_create_held); wsrc.held 0: none */
    float *wscratch; /* the one fetched matrix (or the gathered embedding rows) */
    int *wrows;      /* (B*T) 0, 1, 2 ...: the gathered rows' indices for the embedding */
} nn_model;

/* Allocates a model for batches of up to B sequences of up to T tokens. Parameters are zero
 * until nn_model_init. On failure *out is NULL and e says why. */
int nn_model_create(nn_model **out, const nn_config *cfg, int B, int T, base_err *e);
/* The same without a gradient buffer (m->grads NULL, m->gt all NULL): a frozen base whose
 * backward computes input gradients only (LoRA fine-tuning); never holds the gradients'
 * memory, even for a moment. */
int nn_model_create_frozen(nn_model **out, const nn_config *cfg, int B, int T, base_err *e);
/* A frozen model (as nn_model_create_frozen) whose matrices in src->held live in the source,
 * not in params: m->tensors lists only the resident tensors, with their offsets in m->params,
 * and the passes fetch a held matrix through src->get into one scratch sized to the largest
 * (never a second copy of the model). The model takes src: nn_model_free, or this function
 * failing, calls src->free(src->user). */
int nn_model_create_held(nn_model **out, const nn_config *cfg, int B, int T, const nn_wsrc *src,
                         base_err *e);
/* The full table of cfg's parameter tensors (names, shapes, offsets as nn_model_create lays
 * them out) into t; returns the count. For file I/O of a model that holds some elsewhere. */
int nn_config_tensors(const nn_config *cfg, nn_tensor t[NN_MAX_TENSORS]);
void nn_model_free(nn_model *m);
/* Frees the gradients, activations and activation gradients of a model that will only run
 * inference elsewhere (infer keeps its own activations); m->gt, m->a and m->da become NULL.
 * nn_forward and nn_backward must not be called on it afterwards. */
void nn_model_drop_training(nn_model *m);
/* Points m->pt and m->gt at m->params and m->grads again, after either buffer was replaced
 * (a copy of the model over a snapshot of the parameters; grads NULL: m->gt all NULL). */
void nn_model_bind(nn_model *m);
/* GPT-2 initialisation from seed: matrices N(0, 0.02), residual output projections
 * N(0, 0.02/sqrt(2L)), biases 0, norm weights 1. */
void nn_model_init(nn_model *m, uint64_t seed);
/* Finds a parameter tensor by name (NULL if the config has none): for file I/O, where the
 * names come from outside; the passes use m->pt. */
const nn_tensor *nn_model_tensor(const nn_model *m, const char *name);

/* Forward pass on tokens (B,T), B <= m->B, T <= m->T. With targets (B,T) (entries -1 are
 * ignored) it also computes the loss into *loss. Fails on out-of-range tokens. */
int nn_forward(nn_model *m, const int *tokens, const int *targets, int B, int T, float *loss,
               base_err *e);
/* Backward pass of the last forward (which had targets): ADDS d(scale * loss)/dparams into
 * m->grads. scale = 1/k when accumulating k micro-batches. */
void nn_backward(nn_model *m, float scale);
/* Zeroes m->grads (if any) and the attached adapters' gradients (if any): what nn_backward
 * adds into. */
void nn_zero_grad(nn_model *m);
/* What training updates: m's parameters, or its adapters' when adapters are attached (m->lora,
 * lora.h: the base frozen). The one choice the optimizer, the gradient reducer (src/dist) and
 * checkpoints (src/ckpt) all follow. The pointers live as long as m's buffers or the adapters. */
typedef struct nn_trained {
    float *params, *grads; /* (n) each */
    size_t n;
    const nn_tensor *tensors; /* (n_tensors), offsets into params and grads */
    int n_tensors;
} nn_trained;
void nn_trained_of(const nn_model *m, nn_trained *out);
/* Logits (V) of sequence b at position t of the last forward (until nn_backward, which turns
 * them into their gradient). */
const float *nn_logits_at(const nn_model *m, int b, int t);
/* Forward FLOPs per token for a sequence of length T (matmuls and attention), for MFU. */
double nn_flops_per_token(const nn_config *c, int T);

/* ---- multilayer perceptron: inputs -> [linear -> GELU] x hidden -> linear -> softmax */
#define NN_MLP_MAX_LAYERS 8
typedef struct nn_mlp {
    int n_layers, sizes[NN_MLP_MAX_LAYERS + 1]; /* sizes[0] inputs ... sizes[n_layers] classes */
    int B;
    size_t n_params;
    float *params, *grads;
    float *w[NN_MLP_MAX_LAYERS], *b[NN_MLP_MAX_LAYERS]; /* w[l] (sizes[l+1], sizes[l]) */
    float *acts, *dacts;
    float *pre[NN_MLP_MAX_LAYERS], *post[NN_MLP_MAX_LAYERS]; /* (B, sizes[l+1]) */
    float *probs, *losses;
    nn_tensor tensors[2 * NN_MLP_MAX_LAYERS];
    int n_tensors;
    const float *last_x;
    const int *last_y;
    int last_B;
} nn_mlp;

int nn_mlp_create(nn_mlp **out, const int *sizes, int n_layers, int B, base_err *e);
void nn_mlp_free(nn_mlp *m);
void nn_mlp_init(nn_mlp *m, uint64_t seed); /* He-style N(0, 1/fan_in) weights, zero biases */
/* x (B, inputs); y (B) class ids or NULL. Returns mean loss (0 without y). */
float nn_mlp_forward(nn_mlp *m, const float *x, const int *y, int B);
void nn_mlp_backward(nn_mlp *m);
/* Predicted class of row b of the last forward. */
int nn_mlp_argmax(const nn_mlp *m, int b);

#endif
