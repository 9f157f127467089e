/* ckpt/gguf_model: hearth's transformers as llama.cpp models — GGUF architectures "gpt2" and
 * "llama", float32 tensors under llama.cpp's names (the mapping is ckpt_pieces, shared with
 * safetensors), hyperparameters in llama.cpp's keys. Written so that llama.cpp runs a
 * hearth-trained model from the same file hearth serves; read so that hearth runs GGUF models
 * of these two architectures in F32 or F16 (quantized types are refused by name). */
#ifndef HEARTH_CKPT_GGUF_MODEL_H
#define HEARTH_CKPT_GGUF_MODEL_H

#include "gguf/gguf.h"
#include "nn/nn.h"

#include <stdio.h>

/* ---- a model's tensors in one of llama-quantize's file types (gguf_quant.c)
 *
 * One mechanism for `hearth quantize` and `hearth export --type`: tensors are added one at a
 * time (ckpt_gguf_quant_add); 2-D "...weight" matrices (norms and the positional embedding
 * aside) are converted to the type llama.cpp's llama-quantize gives them for the file type
 * (Q4_K_M: attn_v and ffn_down of some layers and the output matrix Q6_K, the rest Q4_K; ...);
 * every other tensor is kept as stored. A matrix whose rows are no whole number of its type's
 * blocks falls back as llama.cpp's does (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K ->
 * Q4_0 (llama.cpp: IQ4_NL), F16 when that does not fit either), each named on `report`. The
 * converted tensors are owned by the plan: free it only after gguf_writer_save. */
typedef struct ckpt_gguf_quant ckpt_gguf_quant;
typedef struct ckpt_gguf_quant_stats {
    size_t n_tensors, n_fallback, in_bytes, out_bytes;
} ckpt_gguf_quant_stats;
/* The file types hearth writes, as one human-readable list (for messages). */
extern const char *const CKPT_GGUF_TYPES;
/* type: a name as llama-quantize spells it (any case): F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
 * Q5_1, Q2_K, Q2_K_S, Q3_K_S/M/L, Q4_K_S/M, Q5_K_S/M, Q6_K; Q3_K, Q4_K and Q5_K are the _M
 * mixes as in llama-quantize. An unknown name, or one hearth does not write (IQ2_XS), is
 * BASE_EINVAL naming it. pure: every matrix in the file type's base type (llama-quantize
 * --pure). n_attn_v, n_ffn_down: how many attn_v and ffn_down matrices the model has (its
 * layers); n_gqa: heads per KV head; has_output: whether the model has an output.weight (if not,
 * token_embd.weight is the output and is typed as one). report: where fallbacks are named (NULL:
 * nowhere). */
int ckpt_gguf_quant_create(ckpt_gguf_quant **out, const char *type, int pure, int n_attn_v,
                           int n_ffn_down, int n_gqa, int has_output, FILE *report, base_err *e);
void ckpt_gguf_quant_free(ckpt_gguf_quant *q); /* NULL is fine */
/* llama.cpp's general.file_type (llama_ftype) and the canonical name ("Q4_K_M"). */
uint32_t ckpt_gguf_quant_file_type(const ckpt_gguf_quant *q);
const char *ckpt_gguf_quant_name(const ckpt_gguf_quant *q);
ckpt_gguf_quant_stats ckpt_gguf_quant_get_stats(const ckpt_gguf_quant *q);
/* Adds tensor `name` (dims in GGUF order, src_type's rows back to back at src, borrowed until
 * gguf_writer_save when kept as stored) to w in the type the plan gives it. A matrix to convert
 * that is not F32, F16 or BF16 is BASE_EINVAL naming it and its type. */
int ckpt_gguf_quant_add(ckpt_gguf_quant *q, gguf_writer *w, const char *name, uint32_t n_dims,
                        const uint64_t *dims, int src_type, const void *src, base_err *e);

/* Adds m's architecture keys and tensors to w under general.name `name`: F32 (q NULL) or in q's
 * file type (ckpt_gguf_quant_add per tensor; general.file_type is q's). Llama's q and k rows
 * are reordered into llama.cpp's RoPE layout in *scratch (malloc'd; the caller frees it after
 * gguf_writer_save, which reads the tensors). */
int ckpt_gguf_add_model(gguf_writer *w, const nn_model *m, const char *name, ckpt_gguf_quant *q,
                        float **scratch, base_err *e);

/* The model config a GGUF file describes (architecture keys and tensor shapes): gpt2, or the
 * Llama family's architectures llama, qwen2, phi3 and gemma2 (family NN_LLAMA; what sets them
 * apart is infer's family table, src/infer/arch.c); what hearth cannot run (another
 * architecture, partial rotary, YaRN RoPE scaling, ...) is BASE_EFORMAT naming it.
 * ckpt_gguf_read_model reads only gpt2 and llama files into an nn_model (refuses the others). */
int ckpt_gguf_config(const gguf_file *g, nn_config *c, base_err *e);

/* Reads every parameter of m (created for ckpt_gguf_config's config) from g: names and shapes
 * checked, every byte range checked against the file, every type src/quant reads (F32, F16,
 * BF16, Q4_0 ... Q6_K) dequantized to F32 (a type it cannot read is BASE_EFORMAT naming the
 * tensor and the type). A mapped file's pages of each tensor are given back once read, so the
 * peak is the F32 model. A tensor of the file that m has no place for is an error. */
int ckpt_gguf_read_model(const gguf_file *g, nn_model *m, base_err *e);

/* ---- a frozen base in its stored type (gguf_held.c: QLoRA)
 *
 * Fills *out with a source of held matrices (nn.h's nn_wsrc) over g, a GGUF file gguf_open
 * mapped, for nn_model_create_held with config c (ckpt_gguf_config of g): every
 * large matrix whose tensors in the file are not all F32 — q|k|v, attn_output, gate|up, down
 * per layer, and token_embd (gathered by token) — stays in the file in its stored type (F16,
 * BF16, Q8_0, Q4_0, Q4_K ...), and is dequantized with src/quant's row dequantizers (rows split
 * over OpenMP threads; q and k rows into hearth's RoPE order) when the model asks for it. The
 * output head (output, or token_embd when tied) is held only when it is no larger than the
 * largest layer matrix: fetched whole it would need a scratch of its F32 size, as much as
 * keeping it in F32. Names, shapes, types and byte ranges are checked here (BASE_EFORMAT naming
 * the tensor), so the source never fails later. Nothing to hold (an F32 file) or a failure:
 * out->held 0, and g stays the caller's. Otherwise the source takes g: out->free closes it
 * (nn_model_free calls it), and the caller may read g (ckpt_gguf_read_model, the tokenizer)
 * while the source lives, but no longer closes it. */
int ckpt_gguf_wsrc(gguf_file *g, const nn_config *c, nn_wsrc *out, base_err *e);

/* The RoPE row order of a block of heads (GGUF's q and k matrices, an adapter's lora_b of them):
 * llama.cpp's files keep each head's rotated pairs adjacent, row h*HS + 2i + j; hearth's kernels
 * rotate halves, row h*HS + j*HS/2 + i. The file's row of hearth's row r, and hearth's row of the
 * file's row f. */
static inline int ckpt_rope_file_row(int r, int HS) {
    int h = r / HS, j = (r % HS) / (HS / 2), i = r % (HS / 2);
    return h * HS + 2 * i + j;
}
static inline int ckpt_rope_hearth_row(int f, int HS) {
    int h = f / HS, i = (f % HS) / 2, j = f % 2;
    return h * HS + j * (HS / 2) + i;
}

#endif
