/* ckpt/gguf_model: hearth's transformers as llama.cpp models — GGUF architectures "gpt2" and
 * "llama", float32 tensors under llama.cpp's names (the mapping is ckpt_pieces, shared with
 * safetensors), hyperparameters in llama.cpp's keys. Written so that llama.cpp runs a
 * hearth-trained model from the same file hearth serves; read so that hearth runs GGUF models
 * of these two architectures in F32 or F16 (quantized types are refused by name). */
#ifndef HEARTH_CKPT_GGUF_MODEL_H
#define HEARTH_CKPT_GGUF_MODEL_H

#include "gguf/gguf.h"
#include "nn/nn.h"

/* Adds m's architecture keys and tensors to w under general.name `name`. Llama's q and k rows
 * are reordered into llama.cpp's RoPE layout in *scratch (malloc'd; the caller frees it after
 * gguf_writer_save, which reads the tensors). */
int ckpt_gguf_add_model(gguf_writer *w, const nn_model *m, const char *name, float **scratch,
                        base_err *e);

/* The model config a GGUF file describes (architecture keys and tensor shapes); what hearth
 * cannot run (another architecture, partial rotary, ...) is BASE_EFORMAT naming it. */
int ckpt_gguf_config(const gguf_file *g, nn_config *c, base_err *e);

/* Reads every parameter of m (created for ckpt_gguf_config's config) from g: names, shapes
 * and types checked, every byte range checked against the file, F16 widened. A tensor of the
 * file that m has no place for is an error. */
int ckpt_gguf_read_model(const gguf_file *g, nn_model *m, base_err *e);

#endif
