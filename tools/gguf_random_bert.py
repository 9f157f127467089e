#!/usr/bin/env python3
"""tools/gguf_random_bert.py: a random-weight BERT embedding model as llama.cpp's GGUF `bert`
architecture (what convert_hf_to_gguf.py writes for all-MiniLM, bge, e5, gte), the vocabulary
from a WordPiece vocab.txt written in llama.cpp's "phantom space" form (word-initial pieces
get U+2581 in front, "##" continuations lose the "##", "[X]" tokens stay).

    PYTHONPATH=llama.cpp/gguf-py /usr/bin/python3 tools/gguf_random_bert.py VOCAB.txt OUT.gguf \
        [--shape tiny|minilm] [--type f32|f16] [--pooling mean|cls] [--seed N]

SHAPE tiny (the parity fixture, tests/fixtures/embed/bert_tiny.gguf, 1.4 MB): 2 layers,
hidden 64, 4 heads, FFN 128, context 64, in mixed types so that each of hearth's product paths
meets llama.cpp's: the token table Q4_0 (what keeps the file small with a 30,522-token
vocabulary), layer 0 F32, layer 1 F16 with attn_output and ffn_down Q8_0 (--type is ignored).
SHAPE minilm (the benchmark): all-MiniLM-L6-v2's shape: 6 layers, hidden 384, 12 heads, FFN
1536, context 512. The scales keep every layer's activations of order one, so that the vectors
depend on every weight and two programs can be compared.
"""
import argparse

import numpy as np
import gguf

ap = argparse.ArgumentParser()
ap.add_argument("vocab")
ap.add_argument("out")
ap.add_argument("--shape", default="tiny", choices=["tiny", "minilm"])
ap.add_argument("--type", default="f32", choices=["f32", "f16"])
ap.add_argument("--pooling", default="mean", choices=["mean", "cls"])
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()

toks = open(a.vocab, encoding="utf-8").read().split("\n")
if toks and toks[-1] == "":
    toks.pop()


def phantom(t):
    if t.startswith("[") and t.endswith("]"):
        return t
    if t.startswith("##"):
        return t[2:]
    return "\u2581" + t


ptoks = [phantom(t) for t in toks]
types = [gguf.TokenType.CONTROL if t.startswith("[") and t.endswith("]") else gguf.TokenType.NORMAL
         for t in toks]
if a.shape == "tiny":
    L, C, NH, F, CTX = 2, 64, 4, 128, 64
else:
    L, C, NH, F, CTX = 6, 384, 12, 1536, 512
V = len(toks)
rng = np.random.default_rng(a.seed)
w = gguf.GGUFWriter(a.out, "bert")
w.add_name(f"random-bert-{a.shape}")
w.add_context_length(CTX)
w.add_embedding_length(C)
w.add_block_count(L)
w.add_feed_forward_length(F)
w.add_head_count(NH)
w.add_layer_norm_eps(1e-12)
w.add_causal_attention(False)
w.add_pooling_type(gguf.PoolingType.MEAN if a.pooling == "mean" else gguf.PoolingType.CLS)
w.add_file_type(0 if a.type == "f32" else 1)
w.add_tokenizer_model("bert")
w.add_tokenizer_pre("default")
w.add_token_list(ptoks)
w.add_token_types(types)
w.add_token_type_count(2)
# [CLS] is llama.cpp's BOS for bert (older gguf-py has no cls_token_id key)
for name, tid in (("[CLS]", "bos"), ("[SEP]", "sep"), ("[UNK]", "unk"), ("[PAD]", "pad"),
                  ("[MASK]", "mask")):
    if name in toks and hasattr(w, f"add_{tid}_token_id"):
        getattr(w, f"add_{tid}_token_id")(toks.index(name))
Q = gguf.GGMLQuantizationType
mtype = Q.F32 if a.type == "f32" else Q.F16


def put(name, x, qt):
    """x (rows, cols) float32 stored as qt."""
    if qt == Q.F32:
        w.add_tensor(name, x)
    elif qt == Q.F16:
        w.add_tensor(name, x.astype(np.float16))
    else:
        w.add_tensor(name, gguf.quants.quantize(x, qt), raw_dtype=qt)


def mtype_of(name, layer):
    if name == "token_types":
        return Q.F32  # as the converter keeps it: llama.cpp adds its row to F32 activations
    if a.shape != "tiny":
        return mtype
    if name == "token_embd":
        return Q.Q4_0
    if layer == 1:
        return Q.Q8_0 if name in ("attn_output", "ffn_down") else Q.F16
    return Q.F32


def mat(rows, cols, scale):
    return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)


def vec(n, mean, scale):
    return (mean + rng.standard_normal(n) * scale).astype(np.float32)


# the embedding tables and matrices in the chosen type, vectors (norms, biases) in F32, as the
# converter writes them
put("token_embd.weight", mat(V, C, 1.0), mtype_of("token_embd", -1))
put("position_embd.weight", mat(CTX, C, 0.5), mtype_of("position_embd", -1))
put("token_types.weight", mat(2, C, 0.5), mtype_of("token_types", -1))
w.add_tensor("token_embd_norm.weight", vec(C, 1.0, 0.1))
w.add_tensor("token_embd_norm.bias", vec(C, 0.0, 0.1))
for l in range(L):
    p = f"blk.{l}."
    for n, rows, cols in (("attn_q", C, C), ("attn_k", C, C), ("attn_v", C, C),
                          ("attn_output", C, C), ("ffn_up", F, C), ("ffn_down", C, F)):
        put(p + n + ".weight", mat(rows, cols, 1.0 / np.sqrt(cols)), mtype_of(n, l))
        w.add_tensor(p + n + ".bias", vec(rows, 0.0, 0.1))
    for n in ("attn_output_norm", "layer_output_norm"):
        w.add_tensor(p + n + ".weight", vec(C, 1.0, 0.1))
        w.add_tensor(p + n + ".bias", vec(C, 0.0, 0.1))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(f"wrote {a.out}: bert {a.shape} ({L} layers, hidden {C}, {NH} heads, FFN {F}), "
      f"{V} tokens, {'mixed types' if a.shape == 'tiny' else a.type}, {a.pooling} pooling")
