/* ckpt/ckpt_int.h: private to src/ckpt — how hearth's parameter tensors are named in the files
 * other tools read: Hugging Face (safetensors) and llama.cpp (GGUF). */
#ifndef HEARTH_CKPT_INT_H
#define HEARTH_CKPT_INT_H

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
} ckpt_piece;

/* Fills *out (malloc'd) with m's pieces under the scheme's names, in storage order; returns
 * the count, or -1 when out of memory. Every parameter is in exactly one piece. */
int ckpt_pieces(const nn_model *m, ckpt_names scheme, ckpt_piece **out);

#endif
