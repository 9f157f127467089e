/* nn/lora: low-rank adapters (LoRA, Hu et al. 2021; Hugging Face PEFT's conventions) on the
 * linear layers of an nn_model. For a target projection W (out x in) the layer computes
 *     y = x W^T + scale * (drop(x) A^T) B^T,   scale = alpha / rank,
 * with A (rank x in) drawn as PEFT does (kaiming-uniform with a = sqrt(5): U(-1/sqrt(in),
 * 1/sqrt(in))) and B (out x rank) zero, so an adapter starts as the identity of the base model
 * (bit for bit: the added product is +0). drop(x) is inverted dropout on the adapter's input
 * (keep with probability 1 - p, scaled by 1/(1 - p)), drawn from a counter-based hash of
 * (seed, key, layer, target, element): the mask of a step is a function of its key alone, so a
 * resumed run draws the masks the uninterrupted one drew, and backward recomputes the mask
 * instead of storing the dropped input.
 *
 * Targets, by PEFT's Llama module names: q, k, v (the query, key and value rows of the packed
 * qkv matrix), o (the attention output), gate, up (the two halves of the SwiGLU input matrix;
 * GPT-2: up is the MLP input, gate does not exist), down (the MLP output).
 *
 * The adapters own one parameter and one gradient allocation (nn_lora.params / grads, with
 * nn_tensor entries for the optimizer), plus the saved products h = drop(x) A^T (N x rank per
 * target and layer) and scratch. A model with adapters attached calls nn_lora_fwd / nn_lora_bwd
 * from its forward and backward (src/nn/transformer.c). nn_lora_freeze_base frees the model's
 * gradient buffer: the base's weight gradients are then never computed (the kernels skip a NULL
 * dw), which is LoRA's memory and time saving. */
#ifndef HEARTH_NN_LORA_H
#define HEARTH_NN_LORA_H

#include "nn.h"

enum {
    NN_LORA_Q,
    NN_LORA_K,
    NN_LORA_V,
    NN_LORA_O,
    NN_LORA_GATE,
    NN_LORA_UP,
    NN_LORA_DOWN,
    NN_LORA_NT
};
/* The hook sites: the four linear layers of a block. */
enum { NN_LORA_SITE_QKV, NN_LORA_SITE_O, NN_LORA_SITE_FC, NN_LORA_SITE_DOWN };

extern const char *const nn_lora_target_names[NN_LORA_NT]; /* "q" ... "down" */
/* PEFT's module names (q_proj ... down_proj), for adapter_config.json. */
extern const char *const nn_lora_peft_names[NN_LORA_NT];

/* Parses a comma-separated list of target names ("q,k,v,o,gate,up,down"; "all" is all of them)
 * into a bit mask (1 << NN_LORA_Q ...). An unknown name is BASE_EINVAL naming it. */
int nn_lora_parse_targets(const char *list, unsigned *mask, base_err *e);

typedef struct nn_lora_site {
    float *A, *B, *gA, *gB; /* NULL: the target is not adapted */
    int in, out, col;       /* A (rank, in), B (out, rank); output columns col.. of the layer */
} nn_lora_site;

typedef struct nn_lora {
    int rank;
    float alpha, dropout, scale; /* scale = alpha / rank */
    unsigned targets;            /* bit mask of NN_LORA_* */
    int L, N;                    /* layers; rows (B*T) the saved products are allocated for */
    size_t n_params;
    float *params, *grads;
    nn_tensor tensors[64 * NN_LORA_NT * 2]; /* "blk.L.attn_q.lora_a" ...: the optimizer's table */
    char names[64 * NN_LORA_NT * 2][32];
    int n_tensors;
    nn_lora_site *site; /* [L * NN_LORA_NT] */
    float *h;           /* (L, NT, N, rank): drop(x) A^T of the last forward */
    float *dh, *xs;     /* scratch: (N, rank), (N, max in) */
    int training;       /* dropout applies (eval and inference: off) */
    uint64_t seed, key; /* the dropout stream: key is set per micro-batch by the trainer */
} nn_lora;

/* Adapters for model m (its config and batch shape): rank >= 1, alpha > 0, 0 <= dropout < 1,
 * targets a non-empty mask valid for m's family (gate needs Llama). At most 64 layers. A is
 * drawn from seed (PEFT's init), B is zero. */
int nn_lora_create(nn_lora **out, const nn_model *m, int rank, float alpha, float dropout,
                   unsigned targets, uint64_t seed, base_err *e);
void nn_lora_free(nn_lora *a);
/* m's forward and backward use a from now on (NULL detaches). */
void nn_lora_attach(nn_model *m, nn_lora *a);
/* Frees m's gradient buffer (m->grads NULL, m->gt all NULL): the base is frozen. */
void nn_lora_freeze_base(nn_model *m);
void nn_lora_zero_grad(nn_lora *a);
/* Adds scale * B A into each adapted weight of m (the merged model; a is left as it is). m's
 * weights must be F32 in params (not held: nn_model_create_held). */
void nn_lora_merge(nn_model *m, const nn_lora *a);
/* The site of layer l, target t. */
nn_lora_site *nn_lora_at(const nn_lora *a, int l, int t);

/* Whether any target of site s (NN_LORA_SITE_*) is adapted: backward then needs the site's
 * input. */
int nn_lora_site_used(const nn_lora *a, int s);

/* Hooks for the transformer: after the base product of site s of layer l (out: N rows of ldo
 * floats, inp: N rows of the layer's input), adds the adapters' contribution; backward adds the
 * adapters' gradients and their share of dinp, given dout (the gradient of out). */
void nn_lora_fwd(const nn_model *m, int l, int s, float *out, int ldo, const float *inp, int N);
void nn_lora_bwd(const nn_model *m, int l, int s, float *dinp, const float *dout, int ldo,
                 const float *inp, int N);

#endif
