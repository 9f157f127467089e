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

/* Every tensor of g: a type hearth runs (refused by its name otherwise), rows of whole blocks,
 * data inside the file. *mapped: the bytes of all the tensors. (The model's and an adapter's
 * files alike.) */
int infer_gguf_check_tensors(const gguf_file *g, size_t *mapped, base_err *e);
/* printf arguments for "%.*s": a tensor's name (not NUL-terminated), at most 80 characters of it */
#define INFER_TNAME(t) (int)((t)->name.len > 80 ? 80 : (t)->name.len), (t)->name.ptr

/* w from a GGUF file of a config ckpt_gguf_config gave: every tensor checked first (a type
 * hearth does not run is refused by its name, a row length that is no whole number of blocks
 * or data past the end of the file by the tensor's name), before anything is allocated; then
 * the matrices as views into g's mapping (g must outlive w) and the norms and biases widened
 * into *small (malloc'd, the caller frees it). w->layers is malloc'd. *mapped, *allocated: the
 * bytes of the tensors in the file and of *small. */
int infer_weights_from_gguf(infer_weights *w, const gguf_file *g, const nn_config *c, float **small,
                            size_t *mapped, size_t *allocated, base_err *e);

/* ---- LoRA adapters (lora.c; applied by forward.c) */

/* The matrices an adapter may adapt, by llama.cpp's names: q, k, v and the fused qkv feed the
 * qkv linear; o attproj; gate and up fc; down fcproj. */
enum {
    INFER_LORA_Q,
    INFER_LORA_K,
    INFER_LORA_V,
    INFER_LORA_QKV,
    INFER_LORA_O,
    INFER_LORA_GATE,
    INFER_LORA_UP,
    INFER_LORA_DOWN,
    INFER_LORA_NM
};

/* One adapted matrix: its delta s * B (A x) lands in columns [off, off + out) of its linear
 * layer's output (the engine's row order: q and k rows already out of llama.cpp's RoPE order). */
typedef struct infer_lora_site {
    const float *A;  /* (r, in) */
    const float *BT; /* (r, out): B transposed, so a row's delta is r scaled rows added */
    int r, in, out, off;
    float s; /* scale * alpha / r (scale when the file has no alpha) */
} infer_lora_site;

struct infer_lora {
    const infer_weights *w; /* the model it was loaded for */
    infer_lora_site *site;  /* (w->cfg.n_layer, INFER_LORA_NM); A NULL where not adapted */
    float *data;            /* every A and BT */
    size_t n_floats;
    int max_rank, n_mats;
    float alpha;
};

/* The linear layer (0 qkv, 1 attproj, 2 fc, 3 fcproj) each matrix kind feeds. */
static inline int infer_lora_linear(int m) {
    return m <= INFER_LORA_QKV ? 0 : m == INFER_LORA_O ? 1 : m == INFER_LORA_DOWN ? 3 : 2;
}

#endif
