#!/usr/bin/env python3
"""tools/gguf_random_llama.py: a small random-weight Llama GGUF (F32) whose rows are 256 long,
so that every K-quant (block 256) applies to every matrix. The vocabulary (512 SentencePiece
tokens) is copied from another GGUF, e.g. stories260K's as llama-convert-llama2c-to-ggml wrote it.

    PYTHONPATH=llama.cpp/gguf-py python3 tools/gguf_random_llama.py VOCAB.gguf OUT.gguf [SEED]

Shape: width 256, 2 layers, 4 heads of 64, 2 KV heads, FFN 256, context 128, an output matrix of
its own (a tied one makes greedy decoding repeat the last token): about 1M parameters, about 1 MB
in Q8_0. The scales are chosen so that greedy decoding neither loops nor is chaotic (a model
whose next token turns on the last bits of every sum cannot be compared with another program).
"""
import sys

import numpy as np
import gguf

src, out = sys.argv[1], sys.argv[2]
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
r = gguf.GGUFReader(src)


def field(name):
    f = r.fields[name]
    return f


toks = [bytes(field("tokenizer.ggml.tokens").parts[i]).decode("utf-8")
        for i in field("tokenizer.ggml.tokens").data]
scores = [float(field("tokenizer.ggml.scores").parts[i][0]) for i in field("tokenizer.ggml.scores").data]
types = [int(field("tokenizer.ggml.token_type").parts[i][0])
         for i in field("tokenizer.ggml.token_type").data]
V, C, L, NH, NKV, F, CTX = len(toks), 256, 2, 4, 2, 256, 128
HS = C // NH
rng = np.random.default_rng(seed)
w = gguf.GGUFWriter(out, "llama")
w.add_name("random-llama-256")
w.add_context_length(CTX)
w.add_embedding_length(C)
w.add_block_count(L)
w.add_feed_forward_length(F)
w.add_head_count(NH)
w.add_head_count_kv(NKV)
w.add_rope_dimension_count(HS)
w.add_layer_norm_rms_eps(1e-5)
w.add_rope_freq_base(10000.0)
w.add_tokenizer_model("llama")
w.add_token_list(toks)
w.add_token_scores(scores)
w.add_token_types(types)
w.add_bos_token_id(1)
w.add_eos_token_id(2)
w.add_unk_token_id(0)


def mat(rows, cols, std):
    return (rng.standard_normal((rows, cols)) * std).astype(np.float32)


w.add_tensor("token_embd.weight", mat(V, C, 1.0))
w.add_tensor("output.weight", mat(V, C, 1.0))
w.add_tensor("output_norm.weight", (1 + 0.1 * rng.standard_normal(C)).astype(np.float32))
s = 1 / np.sqrt(C)
for l in range(L):
    w.add_tensor(f"blk.{l}.attn_norm.weight", (1 + 0.1 * rng.standard_normal(C)).astype(np.float32))
    w.add_tensor(f"blk.{l}.attn_q.weight", mat(NH * HS, C, s))
    w.add_tensor(f"blk.{l}.attn_k.weight", mat(NKV * HS, C, s))
    w.add_tensor(f"blk.{l}.attn_v.weight", mat(NKV * HS, C, s))
    w.add_tensor(f"blk.{l}.attn_output.weight", mat(C, NH * HS, 2 * s))
    w.add_tensor(f"blk.{l}.ffn_norm.weight", (1 + 0.1 * rng.standard_normal(C)).astype(np.float32))
    w.add_tensor(f"blk.{l}.ffn_gate.weight", mat(F, C, 2 * s))
    w.add_tensor(f"blk.{l}.ffn_up.weight", mat(F, C, 2 * s))
    w.add_tensor(f"blk.{l}.ffn_down.weight", mat(C, F, 2 * s))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
