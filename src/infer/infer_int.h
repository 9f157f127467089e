/* infer/infer_int.h: private to src/infer — building the engine's weights (weights.c). */
#ifndef HEARTH_INFER_INT_H
#define HEARTH_INFER_INT_H

#include "gguf/gguf.h"
#include "infer.h"

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
