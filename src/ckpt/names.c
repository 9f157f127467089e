/* ckpt/names.c: hearth's parameter tensors under Hugging Face and llama.cpp (GGUF) names —
 * one table, used by the writers and readers of both formats. Each hearth tensor maps to one
 * name per family and scheme or, for Llama's packed qkv and gate/up, to several, each a
 * contiguous block of rows. "%d" is the layer. */
#include "ckpt_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SPLIT_NONE, SPLIT_QKV, SPLIT_GATEUP };

static const struct {
    const char *hearth;
    int layered, llama_split;
    const char *hf_gpt2, *hf_llama[3];
    const char *gguf_gpt2, *gguf_llama[3];
} names[] = {
    {"wte",
     0,
     SPLIT_NONE,
     "wte.weight",
     {"model.embed_tokens.weight"},
     "token_embd.weight",
     {"token_embd.weight"}},
    {"wpe",
     0,
     SPLIT_NONE,
     "wpe.weight",
     {"model.embed_positions.weight"},
     "position_embd.weight",
     {"position_embd.weight"}},
    {"ln1w",
     1,
     SPLIT_NONE,
     "h.%d.ln_1.weight",
     {"model.layers.%d.input_layernorm.weight"},
     "blk.%d.attn_norm.weight",
     {"blk.%d.attn_norm.weight"}},
    {"ln1b",
     1,
     SPLIT_NONE,
     "h.%d.ln_1.bias",
     {"model.layers.%d.input_layernorm.bias"},
     "blk.%d.attn_norm.bias",
     {"blk.%d.attn_norm.bias"}},
    {"qkvw",
     1,
     SPLIT_QKV,
     "h.%d.attn.c_attn.weight",
     {"model.layers.%d.self_attn.q_proj.weight", "model.layers.%d.self_attn.k_proj.weight",
      "model.layers.%d.self_attn.v_proj.weight"},
     "blk.%d.attn_qkv.weight",
     {"blk.%d.attn_q.weight", "blk.%d.attn_k.weight", "blk.%d.attn_v.weight"}},
    {"qkvb",
     1,
     SPLIT_QKV,
     "h.%d.attn.c_attn.bias",
     {"model.layers.%d.self_attn.q_proj.bias", "model.layers.%d.self_attn.k_proj.bias",
      "model.layers.%d.self_attn.v_proj.bias"},
     "blk.%d.attn_qkv.bias",
     {"blk.%d.attn_q.bias", "blk.%d.attn_k.bias", "blk.%d.attn_v.bias"}},
    {"attprojw",
     1,
     SPLIT_NONE,
     "h.%d.attn.c_proj.weight",
     {"model.layers.%d.self_attn.o_proj.weight"},
     "blk.%d.attn_output.weight",
     {"blk.%d.attn_output.weight"}},
    {"attprojb",
     1,
     SPLIT_NONE,
     "h.%d.attn.c_proj.bias",
     {"model.layers.%d.self_attn.o_proj.bias"},
     "blk.%d.attn_output.bias",
     {"blk.%d.attn_output.bias"}},
    {"ln2w",
     1,
     SPLIT_NONE,
     "h.%d.ln_2.weight",
     {"model.layers.%d.post_attention_layernorm.weight"},
     "blk.%d.ffn_norm.weight",
     {"blk.%d.ffn_norm.weight"}},
    {"ln2b",
     1,
     SPLIT_NONE,
     "h.%d.ln_2.bias",
     {"model.layers.%d.post_attention_layernorm.bias"},
     "blk.%d.ffn_norm.bias",
     {"blk.%d.ffn_norm.bias"}},
    {"fcw",
     1,
     SPLIT_GATEUP,
     "h.%d.mlp.c_fc.weight",
     {"model.layers.%d.mlp.gate_proj.weight", "model.layers.%d.mlp.up_proj.weight"},
     "blk.%d.ffn_up.weight",
     {"blk.%d.ffn_gate.weight", "blk.%d.ffn_up.weight"}},
    {"fcb",
     1,
     SPLIT_GATEUP,
     "h.%d.mlp.c_fc.bias",
     {"model.layers.%d.mlp.gate_proj.bias", "model.layers.%d.mlp.up_proj.bias"},
     "blk.%d.ffn_up.bias",
     {"blk.%d.ffn_gate.bias", "blk.%d.ffn_up.bias"}},
    {"fcprojw",
     1,
     SPLIT_NONE,
     "h.%d.mlp.c_proj.weight",
     {"model.layers.%d.mlp.down_proj.weight"},
     "blk.%d.ffn_down.weight",
     {"blk.%d.ffn_down.weight"}},
    {"fcprojb",
     1,
     SPLIT_NONE,
     "h.%d.mlp.c_proj.bias",
     {"model.layers.%d.mlp.down_proj.bias"},
     "blk.%d.ffn_down.bias",
     {"blk.%d.ffn_down.bias"}},
    {"lnfw",
     0,
     SPLIT_NONE,
     "ln_f.weight",
     {"model.norm.weight"},
     "output_norm.weight",
     {"output_norm.weight"}},
    {"lnfb",
     0,
     SPLIT_NONE,
     "ln_f.bias",
     {"model.norm.bias"},
     "output_norm.bias",
     {"output_norm.bias"}},
    {"lm_head",
     0,
     SPLIT_NONE,
     "lm_head.weight",
     {"lm_head.weight"},
     "output.weight",
     {"output.weight"}},
};

int ckpt_pieces(const nn_model *m, ckpt_names scheme, ckpt_piece **out) {
    return ckpt_pieces_of(&m->cfg, m->tensors, m->n_tensors, scheme, out);
}

int ckpt_pieces_of(const nn_config *c, const nn_tensor *tensors, int n_tensors, ckpt_names scheme,
                   ckpt_piece **out) {
    int L = c->n_layer, HS = c->d_model / c->n_head, max = 0;
    for (int i = 0; i < n_tensors; i++) max += tensors[i].ndim > 1 ? 3 * L : 3;
    ckpt_piece *p = calloc((size_t)max + 1, sizeof *p);
    if (!p) return -1;
    int n = 0, llama = c->family == NN_LLAMA, gguf = scheme == CKPT_NAMES_GGUF;
    for (int i = 0; i < n_tensors; i++) {
        const nn_tensor *t = &tensors[i];
        size_t row = 1;
        int k = 0;
        while (strcmp(names[k].hearth, t->name) != 0) k++; /* every tensor is in the table */
        int layered = names[k].layered, split = llama ? names[k].llama_split : SPLIT_NONE;
        /* per layer: rows (shape[1] if layered else shape[0]) of `row` floats each */
        int rows = layered ? t->shape[1] : t->shape[0], inner = t->ndim - (layered ? 2 : 1);
        if (inner > 0) row = (size_t)t->shape[t->ndim - 1];
        int blocks[3] = {rows, 0, 0}, nb = 1;
        if (split == SPLIT_QKV)
            blocks[0] = c->n_head * HS, blocks[1] = blocks[2] = c->n_kv_head * HS, nb = 3;
        else if (split == SPLIT_GATEUP)
            blocks[0] = blocks[1] = rows / 2, nb = 2;
        for (int l = 0; l < (layered ? L : 1); l++) {
            size_t off = t->offset + (size_t)l * (size_t)rows * row;
            for (int b = 0; b < nb; b++) {
                ckpt_piece *q = &p[n++];
                const char *fmt = gguf ? (llama ? names[k].gguf_llama[b] : names[k].gguf_gpt2)
                                       : (llama ? names[k].hf_llama[b] : names[k].hf_gpt2);
                snprintf(q->name, sizeof q->name, fmt, l);
                q->offset = off;
                q->tensor = i;
                q->layer = l;
                q->row0 = (int)((off - t->offset) / row) - l * rows;
                q->ndim = inner > 0 ? 2 : 1;
                q->shape[0] = (uint64_t)blocks[b];
                q->shape[1] = row;
                if (gguf && split == SPLIT_QKV && b < 2)
                    q->rope_heads = b ? c->n_kv_head : c->n_head;
                off += (size_t)blocks[b] * row;
            }
        }
    }
    *out = p;
    return n;
}
