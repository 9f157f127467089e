/* infer/infer_int.h: private to src/infer — building the engine's weights (weights.c). */
#ifndef HEARTH_INFER_INT_H
#define HEARTH_INFER_INT_H

#include "gguf/gguf.h"
#include "infer.h"

/* A model family (arch.c's table): what its GGUF files hold and which operations its forward
 * uses. Adding a family is adding an entry here and, if it needs one, an operation. */
typedef struct infer_family {
    const char *name;  /* general.architecture */
    nn_family base;    /* GPT2: LayerNorm, learned positions; LLAMA: RMSNorm, RoPE */
    int rope_pairs;    /* q and k rows in adjacent-pair RoPE order: put into halves */
    int fused_gate_up; /* ffn_up holds gate | up (2F rows), no ffn_gate */
    int post_norms;    /* post_attention_norm and post_ffw_norm */
    int emb_scale;     /* the embedding times sqrt(C) */
    int q_prescale;    /* q scaled before q.k */
    int softcap;       /* attention and final logit soft-capping */
    int swa;           /* sliding window: 0 none, 1 every layer, 2 even layers */
    int tied_only;     /* the output matrix is always the embedding */
    infer_act act;
} infer_family;

/* The family named so (not NUL-terminated), or NULL. */
const infer_family *infer_family_find(const char *name, size_t len);
/* The family of a hearth-trained model: gpt2 or llama. */
const infer_family *infer_family_of_nn(nn_family f);
/* hp for family f and config c without a file: HS = C / NH, no scaling, no window. */
void infer_hparams_default(infer_hparams *hp, const infer_family *f, const nn_config *c);
/* hp from a GGUF file's keys (key_length, RoPE scaling, soft-capping, sliding window) with
 * llama.cpp's defaults where a key is absent. The tensors (rope factors) are weights.c's. */
int infer_hparams_from_gguf(infer_hparams *hp, const infer_family *f, const gguf_file *g,
                            const nn_config *c, base_err *e);

/* w's matrices and vectors as F32 views of nn's parameters (w->layers malloc'd). */
int infer_weights_from_nn(infer_weights *w, const nn_model *nn, base_err *e);

/* w from a GGUF file of a config ckpt_gguf_config gave: every tensor checked first (a type
 * hearth does not run is refused by its name, a row length that is no whole number of blocks
 * or data past the end of the file by the tensor's name), before anything is allocated; then
 * the matrices as views into g's mapping (g must outlive w) and the norms and biases widened
 * into *small (malloc'd, the caller frees it). w->layers is malloc'd. *mapped, *allocated: the
 * bytes of the tensors in the file and of *small. */
int infer_weights_from_gguf(infer_weights *w, const gguf_file *g, const nn_config *c, float **small,
                            size_t *mapped, size_t *allocated, base_err *e);

#endif
