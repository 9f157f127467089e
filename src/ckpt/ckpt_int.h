/* ckpt/ckpt_int.h: private to src/ckpt — how hearth's parameter tensors are named in the files
 * other tools read: Hugging Face (safetensors) and llama.cpp (GGUF). */
#ifndef HEARTH_CKPT_INT_H
#define HEARTH_CKPT_INT_H

#include "gguf/gguf.h"
#include "nn/nn.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { CKPT_NAMES_HF, CKPT_NAMES_GGUF } ckpt_names;

/* One named piece of the parameters: a contiguous block of rows at params + offset, row-major
 * as hearth stores it (shape[0] rows of shape[1] floats; ndim 1: shape[0] floats). */
typedef struct ckpt_piece {
    char name[96];
    size_t offset;
    int ndim;
    uint64_t shape[2];
    /* GGUF, Llama q and k projections: the number of heads whose rows llama.cpp wants in the
     * interleaved-pairs RoPE order (hearth and Hugging Face rotate halves); 0 otherwise */
    int rope_heads;
    int tensor; /* the index of its tensor in the table it was made from */
    int layer;  /* its layer (0 for a tensor without one) */
    int row0;   /* its first row in that layer's matrix (q | k | v, gate | up: 0 or later) */
} ckpt_piece;

/* Fills *out (malloc'd) with m's pieces under the scheme's names, in storage order; returns
 * the count, or -1 when out of memory. Every parameter is in exactly one piece. */
int ckpt_pieces(const nn_model *m, ckpt_names scheme, ckpt_piece **out);
/* The same for a table of tensors of config c (nn_config_tensors: a model's full layout, held
 * matrices included). */
int ckpt_pieces_of(const nn_config *c, const nn_tensor *tensors, int n_tensors, ckpt_names scheme,
                   ckpt_piece **out);

/* ---- GGUF tensors (gguf_model.c), for the model and the LoRA adapter readers */

/* The tensor called name, or NULL. */
const gguf_tensor *ckpt_gguf_tensor(const gguf_file *g, const char *name);
/* BASE_EFORMAT unless g's general.architecture is the one c's family reads (gpt2, llama). */
int ckpt_gguf_arch_check(const gguf_file *g, const nn_config *c, base_err *e);
/* The tensor of g that piece p names (*t) and its byte size, its shape checked against p's and
 * its bytes against the file (ckpt_gguf_tensor_bytes); BASE_EFORMAT naming it otherwise. */
int ckpt_gguf_piece(const gguf_file *g, const ckpt_piece *p, const gguf_tensor **t, size_t *bytes,
                    base_err *e);
/* The byte size of t's data (rows of dims[0] elements in its type), checked to be a type hearth
 * reads and to lie in the file; BASE_EFORMAT naming the tensor otherwise. */
int ckpt_gguf_tensor_bytes(const gguf_file *g, const gguf_tensor *t, const char *name, size_t *out,
                           base_err *e);
/* Rows of a Llama q or k matrix (heads of HS rows of `row` floats) between hearth's RoPE order
 * (halves, as Hugging Face) and llama.cpp's (adjacent pairs): row h*HS + 2i + j of the GGUF
 * tensor is row h*HS + j*HS/2 + i of hearth's (j = 0, 1), the permutation llama.cpp's converter
 * applies to Hugging Face checkpoints. to_gguf chooses the direction. */
void ckpt_rope_rows(float *dst, const float *src, int heads, int HS, size_t row, int to_gguf);

#endif
