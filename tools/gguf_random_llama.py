#!/usr/bin/env python3
"""tools/gguf_random_llama.py: a random-weight Llama GGUF, in one of two shapes. The vocabulary
(SentencePiece tokens, scores and types) is copied from another GGUF.

    PYTHONPATH=llama.cpp/gguf-py python3 tools/gguf_random_llama.py VOCAB.gguf OUT.gguf [SEED [SHAPE]]

SHAPE small (the default; F32): width 256, 2 layers, 4 heads of 64, 2 KV heads, FFN 256, context
128, rows 256 long so that every K-quant (block 256) applies to every matrix; about 1M
parameters, about 1 MB in Q8_0; the vocabulary e.g. stories260K's (512 tokens) as
llama-convert-llama2c-to-ggml wrote it. The scales are chosen so that greedy decoding neither
loops nor is chaotic (a model whose next token turns on the last bits of every sum cannot be
compared with another program). For the parity fixtures (tools/gguf_parity_fixtures.sh).

SHAPE 1b (F16): TinyLlama 1.1B's shape (width 2048, 22 layers, 32 heads of 64, 4 KV heads, FFN
5632, context 2048), 1.1B parameters, 2.2 GB, the vocabulary Llama's 32000 tokens (e.g.
../shared/data/ggml-vocab-llama-spm.gguf). For speed benchmarks only (bench/infer_1b_bench.sh):
the weights are noise; llama-quantize makes the Q4_0, Q8_0 and Q4_K_M files from this one.

SHAPE 300m (F16): width 1024, 20 layers, 16 heads of 64, 8 KV heads, FFN 2816, context 2048,
Llama's 32000 tokens: about 300M parameters, 600 MB. For the fine-tuning benchmark
(bench/finetune_bench.sh); noise weights like 1b's.

All have an output matrix of their own (a tied one makes greedy decoding repeat the last token).
"""
import sys

import numpy as np
import gguf

src, out = sys.argv[1], sys.argv[2]
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
shape = sys.argv[4] if len(sys.argv) > 4 else "small"
if shape not in ("small", "1b", "300m"):
    sys.exit(f"gguf_random_llama.py: SHAPE is small, 1b or 300m, not {shape!r}")
big = shape != "small"
r = gguf.GGUFReader(src)


def field(name):
    return r.fields[name]


toks = [bytes(field("tokenizer.ggml.tokens").parts[i]).decode("utf-8")
        for i in field("tokenizer.ggml.tokens").data]
scores = [float(field("tokenizer.ggml.scores").parts[i][0]) for i in field("tokenizer.ggml.scores").data]
types = [int(field("tokenizer.ggml.token_type").parts[i][0])
         for i in field("tokenizer.ggml.token_type").data]
if shape == "300m":
    V, C, L, NH, NKV, F, CTX = len(toks), 1024, 20, 16, 8, 2816, 2048
elif big:
    V, C, L, NH, NKV, F, CTX = len(toks), 2048, 22, 32, 4, 5632, 2048
else:
    V, C, L, NH, NKV, F, CTX = len(toks), 256, 2, 4, 2, 256, 128
HS = C // NH
rng = np.random.default_rng(seed)
w = gguf.GGUFWriter(out, "llama")
w.add_name({"small": "random-llama-256", "1b": "random-llama-1b", "300m": "random-llama-300m"}[shape])
w.add_context_length(CTX)
w.add_embedding_length(C)
w.add_block_count(L)
w.add_feed_forward_length(F)
w.add_head_count(NH)
w.add_head_count_kv(NKV)
w.add_rope_dimension_count(HS)
w.add_layer_norm_rms_eps(1e-5)
w.add_rope_freq_base(10000.0)
if big:
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
w.add_tokenizer_model("llama")
w.add_token_list(toks)
w.add_token_scores(scores)
w.add_token_types(types)
w.add_bos_token_id(1)
w.add_eos_token_id(2)
w.add_unk_token_id(0)


def mat(rows, cols, std):
    if big:  # drawn in float32: 1.1B float64 draws would need 9 GB
        return (rng.standard_normal((rows, cols), dtype=np.float32) * std).astype(np.float16)
    return (rng.standard_normal((rows, cols)) * std).astype(np.float32)


def vec(n):
    return (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)


s = 1 / np.sqrt(C)
# the small model's projections are scaled up (2s) so that its greedy decoding does not loop
proj, down = (s, 1 / np.sqrt(F)) if big else (2 * s, 2 * s)
w.add_tensor("token_embd.weight", mat(V, C, 1.0))
w.add_tensor("output.weight", mat(V, C, s if big else 1.0))
w.add_tensor("output_norm.weight", vec(C))
for l in range(L):
    w.add_tensor(f"blk.{l}.attn_norm.weight", vec(C))
    w.add_tensor(f"blk.{l}.attn_q.weight", mat(NH * HS, C, s))
    w.add_tensor(f"blk.{l}.attn_k.weight", mat(NKV * HS, C, s))
    w.add_tensor(f"blk.{l}.attn_v.weight", mat(NKV * HS, C, s))
    w.add_tensor(f"blk.{l}.attn_output.weight", mat(C, NH * HS, proj))
    w.add_tensor(f"blk.{l}.ffn_norm.weight", vec(C))
    w.add_tensor(f"blk.{l}.ffn_gate.weight", mat(F, C, proj))
    w.add_tensor(f"blk.{l}.ffn_up.weight", mat(F, C, proj))
    w.add_tensor(f"blk.{l}.ffn_down.weight", mat(C, F, down))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
