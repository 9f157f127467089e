#!/usr/bin/python3
"""bench/peers/lora_torch.py: the PyTorch side of bench/finetune_bench.sh — a plain LoRA
fine-tuning step over a Llama of the given shape, written in torch ops as PEFT would run it:
the base in float32, frozen (requires_grad False, so autograd keeps no weight gradients);
adapters of rank R (alpha 2R) on q, k, v, o; AdamW on the adapters only; RMSNorm, RoPE
(rotate-half), grouped-query causal attention (matmuls and a masked softmax: Debian's torch
1.13 has no scaled_dot_product_attention), SwiGLU,
cross-entropy over every position. Random weights (timing does not depend on them) and random
tokens.

    lora_torch.py C L NH NKV F V B T RANK STEPS THREADS

Prints one line per step, "step i ms", then "peak_rss_kb N" (ru_maxrss).
"""
import math
import resource
import sys
import time

import torch

C, L, NH, NKV, F, V, B, T, R, STEPS, THREADS = (int(x) for x in sys.argv[1:12])
torch.set_num_threads(THREADS)
torch.manual_seed(0)
HS = C // NH
g = torch.Generator().manual_seed(1)


def w(*shape, std=0.02):
    return (torch.randn(*shape, generator=g) * std).requires_grad_(False)


emb, head, normf = w(V, C), w(V, C), torch.ones(C)
layers = []
for _ in range(L):
    layers.append(dict(n1=torch.ones(C), n2=torch.ones(C), q=w(NH * HS, C), k=w(NKV * HS, C),
                       v=w(NKV * HS, C), o=w(C, NH * HS), gate=w(F, C), up=w(F, C),
                       down=w(C, F)))
adapters = []
for lay in layers:
    for name in ("q", "k", "v", "o"):
        out, inp = lay[name].shape
        a = torch.empty(R, inp).uniform_(-1 / math.sqrt(inp), 1 / math.sqrt(inp)).requires_grad_()
        b = torch.zeros(out, R).requires_grad_()
        lay[name + "_ab"] = (a, b)
        adapters += [a, b]
scale = 2.0  # alpha / rank with alpha = 2 R
opt = torch.optim.AdamW(adapters, lr=1e-4, weight_decay=0.0)
pos = torch.arange(T, dtype=torch.float64)
freq = 10000.0 ** (-torch.arange(0, HS // 2, dtype=torch.float64) * 2 / HS)
ang = pos[:, None] * freq[None, :]
cos, sin = torch.cos(ang).float()[None, None], torch.sin(ang).float()[None, None]
causal = torch.ones(T, T, dtype=torch.bool).tril()


def rms(x, wt):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5) * wt


def rope(x):
    x1, x2 = x[..., : HS // 2], x[..., HS // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def lin(x, lay, name):
    y = x @ lay[name].t()
    if name + "_ab" in lay:
        a, b = lay[name + "_ab"]
        y = y + scale * ((x @ a.t()) @ b.t())
    return y


def step(tok, tgt):
    x = emb[tok]
    for lay in layers:
        h = rms(x, lay["n1"])
        q = lin(h, lay, "q").view(B, T, NH, HS).transpose(1, 2)
        k = lin(h, lay, "k").view(B, T, NKV, HS).transpose(1, 2)
        v = lin(h, lay, "v").view(B, T, NKV, HS).transpose(1, 2)
        q, k = rope(q), rope(k)
        k = k.repeat_interleave(NH // NKV, dim=1)
        v = v.repeat_interleave(NH // NKV, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(HS)
        att = torch.softmax(att.masked_fill(~causal, float("-inf")), dim=-1)
        y = att @ v
        x = x + lin(y.transpose(1, 2).reshape(B, T, C), lay, "o")
        h = rms(x, lay["n2"])
        x = x + (torch.nn.functional.silu(h @ lay["gate"].t()) * (h @ lay["up"].t())) @ lay["down"].t()
    logits = rms(x, normf) @ head.t()
    loss = torch.nn.functional.cross_entropy(logits.view(-1, V), tgt.view(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


for i in range(STEPS):
    tok = torch.randint(0, V, (B, T), generator=g)
    tgt = torch.randint(0, V, (B, T), generator=g)
    t0 = time.perf_counter()
    step(tok, tgt)
    print(f"step {i + 1} {(time.perf_counter() - t0) * 1e3:.1f}", flush=True)
print(f"peak_rss_kb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")
