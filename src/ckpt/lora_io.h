/* ckpt/lora_io: fine-tuning's files (the base model is read by ckpt_gguf_read_model): LoRA
 * adapters written as
 * llama.cpp adapter GGUF (general.type "adapter", adapter.type "lora", adapter.lora.alpha,
 * tensors blk.N.<matrix>.weight.lora_a (dims [in, r]) and .lora_b (dims [r, out]), the q and k
 * lora_b rows in llama.cpp's RoPE order) and as a Hugging Face PEFT adapter directory
 * (adapter_model.safetensors + adapter_config.json); and read back from the GGUF form. */
#ifndef HEARTH_CKPT_LORA_IO_H
#define HEARTH_CKPT_LORA_IO_H

#include "gguf/gguf.h"
#include "nn/lora.h"

/* Writes a's adapters (for the model m) as a llama.cpp LoRA adapter GGUF, atomically. */
int ckpt_lora_write_gguf(const char *path, const nn_model *m, const nn_lora *a, base_err *e);
/* Reads a llama.cpp LoRA adapter GGUF into a (created for m with the file's rank and targets:
 * the rank, alpha and targets are checked against a's, by name). */
int ckpt_lora_read_gguf(const char *path, const nn_model *m, nn_lora *a, base_err *e);
/* A tensor name of a llama.cpp LoRA adapter, blk.N.<matrix>.weight.lora_{a,b} whose matrix is
 * one of mats[0..n_mats) (llama.cpp's names, e.g. "attn_q"): its layer *l, the matrix's index *m
 * and *is_b; -1 when the name is not of that form or names another matrix. */
int ckpt_lora_tensor_name(const gguf_str *s, const char *const *mats, int n_mats, int *l, int *m,
                          int *is_b);
/* 1 when g declares a llama.cpp LoRA adapter (general.type "adapter", adapter.type "lora"), else
 * 0: each reader says in its own words what it wanted, and reads adapter.lora.alpha itself. */
int ckpt_lora_is_adapter(const gguf_file *g);
/* Reads only what a LoRA GGUF declares: rank, alpha and the target mask. */
int ckpt_lora_gguf_info(const char *path, int *rank, float *alpha, unsigned *targets, base_err *e);
/* Writes dir/adapter_model.safetensors and dir/adapter_config.json (PEFT's LORA format, Llama
 * family only; dir is created). base_name: base_model_name_or_path (NULL: null). */
int ckpt_lora_write_peft(const char *dir, const nn_model *m, const nn_lora *a,
                         const char *base_name, base_err *e);
/* The tokenizer.chat_template of the GGUF file at path (malloc'd), or NULL when path is no GGUF
 * file or it has none: read once by fine-tuning, which renders its examples with it and keeps
 * it in the models it writes, so that they are served with the template they were tuned on. */
char *ckpt_gguf_chat_template(const char *path);

#endif
