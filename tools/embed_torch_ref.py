#!/usr/bin/env python3
"""tools/embed_torch_ref.py: the Hugging Face-directory parity fixture. Writes a tiny random
BERT as a Hugging Face model directory (config.json, model.safetensors in F32 under BertModel's
names, vocab.txt: the first 8,000 tokens of all-MiniLM-L6-v2's, tokenizer_config.json, and
sentence-transformers' 1_Pooling/config.json asking for CLS pooling) into
tests/fixtures/embed/hf_tiny/, and records PyTorch's vectors for a batch of token-id sequences
of different lengths into tests/fixtures/embed/hf_tiny_torch.json. The forward is BertModel's,
written out with torch alone (transformers is not installed): embeddings (word + position +
type 0) and LayerNorm, then per layer self-attention with the padding mask, dense + residual +
LayerNorm, intermediate dense + exact (erf) GELU, dense + residual + LayerNorm; CLS pooling and
L2 normalization as sentence-transformers' Normalize module does.

    /usr/bin/python3 tools/embed_torch_ref.py tests/fixtures/embed/minilm_vocab.txt
"""
import json
import os
import struct
import sys

import torch

torch.manual_seed(7)
vocab_src = sys.argv[1]
out = sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/embed/hf_tiny"
V, C, L, NH, F, P = 8000, 32, 2, 4, 64, 64
os.makedirs(out + "/1_Pooling", exist_ok=True)
vocab = open(vocab_src, encoding="utf-8").read().split("\n")[:V]
open(out + "/vocab.txt", "w", encoding="utf-8").write("\n".join(vocab) + "\n")
cfg = {"architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
       "hidden_size": C, "num_hidden_layers": L, "num_attention_heads": NH,
       "intermediate_size": F, "max_position_embeddings": P, "type_vocab_size": 2,
       "vocab_size": V, "layer_norm_eps": 1e-12, "position_embedding_type": "absolute"}
json.dump(cfg, open(out + "/config.json", "w"), indent=1)
json.dump({"do_lower_case": True, "tokenize_chinese_chars": True, "strip_accents": None,
           "tokenizer_class": "BertTokenizer"}, open(out + "/tokenizer_config.json", "w"))
json.dump({"word_embedding_dimension": C, "pooling_mode_cls_token": True,
           "pooling_mode_mean_tokens": False}, open(out + "/1_Pooling/config.json", "w"))
json.dump({"max_seq_length": 48, "do_lower_case": False},
          open(out + "/sentence_bert_config.json", "w"))

W = {}


def t(name, *shape, mean=0.0, scale=1.0):
    W[name] = (mean + torch.randn(*shape) * scale).float()
    return W[name]


t("embeddings.word_embeddings.weight", V, C)
t("embeddings.position_embeddings.weight", P, C, scale=0.5)
t("embeddings.token_type_embeddings.weight", 2, C, scale=0.5)
t("embeddings.LayerNorm.weight", C, mean=1.0, scale=0.1)
t("embeddings.LayerNorm.bias", C, scale=0.1)
for l in range(L):
    p = f"encoder.layer.{l}."
    for n, o, i in (("attention.self.query", C, C), ("attention.self.key", C, C),
                    ("attention.self.value", C, C), ("attention.output.dense", C, C),
                    ("intermediate.dense", F, C), ("output.dense", C, F)):
        t(p + n + ".weight", o, i, scale=i ** -0.5)
        t(p + n + ".bias", o, scale=0.1)
    for n in ("attention.output.LayerNorm", "output.LayerNorm"):
        t(p + n + ".weight", C, mean=1.0, scale=0.1)
        t(p + n + ".bias", C, scale=0.1)
t("pooler.dense.weight", C, C)  # BertModel's pooler: present in real files, unused here
t("pooler.dense.bias", C)

# safetensors by hand: 8-byte header length, JSON header, F32 data
hdr, off, blobs = {}, 0, []
for k, v in W.items():
    b = v.contiguous().numpy().tobytes()
    hdr[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
    off += len(b)
    blobs.append(b)
h = json.dumps(hdr).encode()
h += b" " * (-len(h) % 8)
with open(out + "/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

# a batch of sequences of different lengths: [CLS] ids [SEP], ids from the vocabulary's words
g = torch.Generator().manual_seed(3)
lens = [2, 5, 17, 33, 48, 9]
seqs = [[101] + torch.randint(1000, V, (n - 2,), generator=g).tolist() + [102] for n in lens]
T = max(lens)
ids = torch.zeros(len(seqs), T, dtype=torch.long)
mask = torch.zeros(len(seqs), T)
for i, s in enumerate(seqs):
    ids[i, :len(s)] = torch.tensor(s)
    mask[i, :len(s)] = 1
F_ = torch.nn.functional
x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][
    torch.arange(T)][None] + W["embeddings.token_type_embeddings.weight"][0]
x = F_.layer_norm(x, (C,), W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], 1e-12)
HS = C // NH
amask = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
for l in range(L):
    p = f"encoder.layer.{l}."

    def lin(n, z):
        return z @ W[p + n + ".weight"].T + W[p + n + ".bias"]

    def heads(z):
        return z.view(len(seqs), T, NH, HS).transpose(1, 2)

    q, k, v = (heads(lin(n, x)) for n in ("attention.self.query", "attention.self.key",
                                           "attention.self.value"))
    a = F_.softmax(q @ k.transpose(-1, -2) / HS ** 0.5 + amask, dim=-1) @ v
    a = a.transpose(1, 2).reshape(len(seqs), T, C)
    x = F_.layer_norm(lin("attention.output.dense", a) + x, (C,),
                      W[p + "attention.output.LayerNorm.weight"],
                      W[p + "attention.output.LayerNorm.bias"], 1e-12)
    h = F_.gelu(lin("intermediate.dense", x))
    x = F_.layer_norm(lin("output.dense", h) + x, (C,), W[p + "output.LayerNorm.weight"],
                      W[p + "output.LayerNorm.bias"], 1e-12)
pooled = F_.normalize(x[:, 0], dim=-1)  # CLS pooling, then L2
with open(os.path.dirname(out.rstrip("/")) + "/hf_tiny_torch.json", "w") as f:
    f.write('{"source": "tools/embed_torch_ref.py (torch %s)",\n "cases": [\n' % torch.__version__)
    f.write(",\n".join("  " + json.dumps({"ids": s, "embedding": [round(float(z), 8) for z in e]})
                       for s, e in zip(seqs, pooled)))
    f.write("\n]}\n")
print(f"wrote {out} and hf_tiny_torch.json: {len(seqs)} sequences")
