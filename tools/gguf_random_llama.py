#!/usr/bin/env python3
"""tools/gguf_random_llama.py: a random-weight GGUF of a Llama or another family, by SHAPE. The vocabulary
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

The small, 1b and 300m shapes have an output matrix of their own (a tied one makes greedy
decoding repeat the last token).

SHAPE llama, qwen2, phi3 or gemma2 (F32; the family fixtures of tools/gguf_parity_fixtures.sh): a
small random model of that GGUF architecture with what sets the family apart, under llama.cpp's
names and keys, and the chat template of a real model of the family (TEMPLATES/NAME.jinja, from
llama.cpp's models/templates, stored as tokenizer.chat_template):
  llama   Llama 3.1-style: rope_freqs.weight (frequency factors), RoPE base 500000, Llama 3.1's
          template and its header / end-of-turn tokens; an output matrix
  qwen2   q/k/v biases, RoPE base 1e6, tied output (as Qwen2.5-0.5B), Qwen2.5's ChatML template
  phi3    fused attn_qkv, ffn_up holding gate | up, long and short RoPE factors with
          original_context_length 32 and an attention factor, a sliding window of 48
  gemma2  26 layers (llama.cpp knows Gemma 2 by its layer count), heads of 32 on a width of 32
          with 2 heads (key_length != width / heads), post-attention and post-FFN norms, soft-
          capping 50 / 30, a sliding window of 40 on even layers, tied output
The vocabulary of these: VOCAB.gguf's first KEEP (1000) tokens (a SentencePiece vocabulary such
as llama.cpp's models/ggml-vocab-llama-spm.gguf; its <unk> <s> </s> and byte tokens lie in
them), then the family's chat tokens as control tokens (<|eot_id|>, <|im_end|>, <end_of_turn>,
...); BOS <s>, EOS </s>: which of the others end a turn is llama.cpp's inference from their text.

    ... gguf_random_llama.py VOCAB.gguf OUT.gguf SEED ARCH TEMPLATES_DIR
"""
import sys

import numpy as np
import gguf

src, out = sys.argv[1], sys.argv[2]
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
shape = sys.argv[4] if len(sys.argv) > 4 else "small"
FAMILIES = ("llama", "qwen2", "phi3", "gemma2")
if shape not in ("small", "1b", "300m") + FAMILIES:
    sys.exit(f"gguf_random_llama.py: SHAPE is small, 1b, 300m, {', '.join(FAMILIES)}; not {shape!r}")
big = shape in ("1b", "300m")
r = gguf.GGUFReader(src)


def field(name):
    return r.fields[name]


toks = [bytes(field("tokenizer.ggml.tokens").parts[i]).decode("utf-8")
        for i in field("tokenizer.ggml.tokens").data]
scores = [float(field("tokenizer.ggml.scores").parts[i][0]) for i in field("tokenizer.ggml.scores").data]
types = [int(field("tokenizer.ggml.token_type").parts[i][0])
         for i in field("tokenizer.ggml.token_type").data]
KEEP = 1000
CHAT_TOKENS = {
    "llama": ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
              "<|eom_id|>"],
    "qwen2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    "phi3": ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
    "gemma2": ["<start_of_turn>", "<end_of_turn>"],
}
TEMPLATE = {
    "llama": "meta-llama-Llama-3.1-8B-Instruct",
    "qwen2": "Qwen-Qwen2.5-7B-Instruct",
    "phi3": "microsoft-Phi-3.5-mini-instruct",
    "gemma2": "google-gemma-2-2b-it",
}


def write_family(arch, toks, scores, types, out, seed, templates):
    """One family's small random model (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    extra = CHAT_TOKENS[arch]
    toks = toks[:KEEP] + extra
    scores = scores[:KEEP] + [0.0] * len(extra)
    types = types[:KEEP] + [3] * len(extra)  # CONTROL
    V = len(toks)
    if arch == "gemma2":
        C, L, NH, NKV, HS, F = 32, 26, 2, 1, 32, 64
    else:
        C, L, NH, NKV, HS, F = 64, 2, 4, 4 if arch == "phi3" else 2, 16, 128
    CTX = 256
    w = gguf.GGUFWriter(out, arch)
    w.add_name(f"random-{arch}")
    w.add_context_length(CTX)
    w.add_embedding_length(C)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(NH)
    w.add_head_count_kv(NKV)
    w.add_layer_norm_rms_eps(1e-6 if arch in ("qwen2", "gemma2") else 1e-5)
    w.add_rope_freq_base({"llama": 500000.0, "qwen2": 1000000.0}.get(arch, 10000.0))
    if arch == "gemma2":
        w.add_key_length(HS)
        w.add_value_length(HS)
        w.add_attn_logit_softcapping(50.0)
        w.add_final_logit_softcapping(30.0)
        w.add_sliding_window(40)
    else:
        w.add_rope_dimension_count(HS)
    if arch == "phi3":
        w.add_sliding_window(48)
        w.add_rope_scaling_attn_factors(1.19)
        w.add_rope_scaling_orig_ctx_len(32)
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    with open(f"{templates}/{TEMPLATE[arch]}.jinja", encoding="utf-8") as f:
        w.add_chat_template(f.read())

    s = 1 / np.sqrt(C)

    def mat(rows, cols, std):
        return (rng.standard_normal((rows, cols)) * std).astype(np.float32)

    def vec(n, mean=1.0):
        return (mean + 0.1 * rng.standard_normal(n)).astype(np.float32)

    def factors(n, lo, hi):
        return np.linspace(lo, hi, n).astype(np.float32)

    # Gemma 2's output is its embedding: a small one (times sqrt(C) in the forward) and weak
    # post-attention norms keep greedy decoding off fixed points (the token itself, or the
    # context's mean that long attention averages converge to); the FFN's token-wise map leads
    w.add_tensor("token_embd.weight", mat(V, C, 1.0 if arch != "gemma2" else 0.05))
    if arch in ("llama", "phi3"):
        w.add_tensor("output.weight", mat(V, C, 1.0))
    w.add_tensor("output_norm.weight", vec(C))
    if arch == "llama":  # Llama 3.1's factors: 1 for high frequencies up to 8 for low ones
        w.add_tensor("rope_freqs.weight", factors(HS // 2, 1.0, 8.0))
    if arch == "phi3":
        w.add_tensor("rope_factors_long.weight", factors(HS // 2, 1.0, 6.0))
        w.add_tensor("rope_factors_short.weight", factors(HS // 2, 1.0, 1.5))
    for l in range(L):
        w.add_tensor(f"blk.{l}.attn_norm.weight", vec(C))
        if arch == "phi3":
            w.add_tensor(f"blk.{l}.attn_qkv.weight", mat((NH + 2 * NKV) * HS, C, s))
        else:
            w.add_tensor(f"blk.{l}.attn_q.weight", mat(NH * HS, C, s))
            w.add_tensor(f"blk.{l}.attn_k.weight", mat(NKV * HS, C, s))
            w.add_tensor(f"blk.{l}.attn_v.weight", mat(NKV * HS, C, s))
        if arch == "qwen2":
            w.add_tensor(f"blk.{l}.attn_q.bias", vec(NH * HS, 0.0))
            w.add_tensor(f"blk.{l}.attn_k.bias", vec(NKV * HS, 0.0))
            w.add_tensor(f"blk.{l}.attn_v.bias", vec(NKV * HS, 0.0))
        w.add_tensor(f"blk.{l}.attn_output.weight", mat(C, NH * HS, 2 * s))
        if arch == "gemma2":
            w.add_tensor(f"blk.{l}.post_attention_norm.weight", vec(C, 0.2))
        w.add_tensor(f"blk.{l}.ffn_norm.weight", vec(C))
        if arch == "phi3":
            w.add_tensor(f"blk.{l}.ffn_up.weight", mat(2 * F, C, 2 * s))
        else:
            w.add_tensor(f"blk.{l}.ffn_gate.weight", mat(F, C, 2 * s))
            w.add_tensor(f"blk.{l}.ffn_up.weight", mat(F, C, 2 * s))
        w.add_tensor(f"blk.{l}.ffn_down.weight", mat(C, F, 2 / np.sqrt(F)))
        if arch == "gemma2":
            w.add_tensor(f"blk.{l}.post_ffw_norm.weight", vec(C))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()



if shape in FAMILIES:
    write_family(shape, toks, scores, types, out, seed, sys.argv[5])
    sys.exit(0)
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
