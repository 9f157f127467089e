#!/usr/bin/python3
"""PyTorch CPU peer of bench/train_bench: the GPT-2 124M training step in plain float32 torch.

Model: vocab 50257, 1024 positions, 12 layers, 12 heads, width 768, MLP 3072, biases,
LayerNorm (eps 1e-5), GELU (tanh form), tied token embedding / output head; GPT-2 init
(N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)), biases 0). Attention is written out
(q k^T, causal mask, softmax, @ v) as in nanoGPT's "slow" path; --sdpa uses
F.scaled_dot_product_attention where the torch version has it (2.0+).

Step: zero_grad, forward + cross-entropy on random tokens (fresh batch per step, not timed),
backward, clip_grad_norm_(1.0), AdamW(lr 3e-4, betas (0.9, 0.95), eps 1e-8, wd 0.1 on matrices
and embeddings only). Prints a human summary on stderr and, with --json, one JSON line on stdout.

--adamw picks the AdamW implementation: foreach (multi-tensor), single (per-tensor loop),
fused (torch >= 2.0 on CPU), or auto (default: time foreach and single for a few steps each on
the real model and keep the faster; the choice is reported).
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, NH, use_sdpa):
        super().__init__()
        self.NH, self.use_sdpa = NH, use_sdpa
        self.ln_1 = nn.LayerNorm(C)
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_proj = nn.Linear(4 * C, C)

    def attn(self, x, mask):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.NH, C // self.NH).transpose(1, 2)
        k = k.view(B, T, self.NH, C // self.NH).transpose(1, 2)
        v = v.view(B, T, self.NH, C // self.NH).transpose(1, 2)
        if self.use_sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(mask[:, :, :T, :T] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)

    def forward(self, x, mask):
        x = x + self.attn(self.ln_1(x), mask)
        x = x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
        return x


class GPT(nn.Module):
    def __init__(self, V=50257, maxT=1024, L=12, NH=12, C=768, use_sdpa=False):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(maxT, C)
        self.h = nn.ModuleList([Block(C, NH, use_sdpa) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C)
        self.lm_head = nn.Linear(C, V, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self.register_buffer("mask", torch.tril(torch.ones(maxT, maxT)).view(1, 1, maxT, maxT))
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() == 1:  # LayerNorm weights
                nn.init.ones_(p)
            else:
                std = 0.02 / math.sqrt(2 * L) if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, idx, targets):
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x, self.mask)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def make_optimizer(model, kind):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    kw = dict(lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    if kind == "foreach":
        kw["foreach"] = True
    elif kind == "single":
        kw["foreach"] = False
    elif kind == "fused":
        kw["fused"] = True
    return torch.optim.AdamW(groups, **kw)


def run(model, opt, B, T, V, steps, gen):
    times, loss = [], None
    for _ in range(steps):
        x = torch.randint(0, V, (B, T + 1), generator=gen)
        idx, tgt = x[:, :-1].contiguous(), x[:, 1:].contiguous()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append((time.perf_counter() - t0) * 1e3)
    return times, float(loss)


def time_opt_only(model, opt, reps=3):
    """Milliseconds of opt.step() alone (gradients are whatever the last backward left)."""
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        opt.step()
        ts.append((time.perf_counter() - t0) * 1e3)
    return min(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--adamw", choices=["auto", "foreach", "single", "fused"], default="auto")
    ap.add_argument("--sdpa", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(1337)
    use_sdpa = args.sdpa and hasattr(F, "scaled_dot_product_attention")
    model = GPT(use_sdpa=use_sdpa)
    model.train()
    V, B, T = 50257, args.batch, args.seq
    gen = torch.Generator().manual_seed(42)
    n_params = sum(p.numel() for p in model.parameters())

    kind = args.adamw
    note = ""
    if kind == "auto":
        # One real step to create gradients, then time opt.step() of each candidate on the
        # real parameters (the candidates' moment state is thrown away afterwards).
        run(model, make_optimizer(model, "single"), B, T, V, 1, gen)
        cand = {}
        for k in ("foreach", "single"):
            o = make_optimizer(model, k)
            o.step()  # allocates state
            cand[k] = time_opt_only(model, o)
            del o
        kind = min(cand, key=cand.get)
        note = "auto: opt.step() " + " vs ".join("%s %.0f ms" % (k, v) for k, v in cand.items())
        torch.manual_seed(1337)
        model = GPT(use_sdpa=use_sdpa)  # fresh init so every run starts alike
    opt = make_optimizer(model, kind)

    warm, first = run(model, opt, B, T, V, args.warmup, gen) if args.warmup else ([], None)
    times, last = run(model, opt, B, T, V, args.steps, gen)
    med = statistics.median(times)
    res = {
        "impl": "pytorch",
        "torch": torch.__version__,
        "B": B,
        "T": T,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "warmup": args.warmup,
        "params": n_params,
        "adamw": kind,
        "adamw_note": note,
        "attention": "sdpa" if use_sdpa else "explicit",
        "median_ms": round(med, 2),
        "best_ms": round(min(times), 2),
        "tokens_per_s": round(B * T / (med * 1e-3), 1),
        "last_loss": round(last, 4),
    }
    for i, t in enumerate(warm + times):
        print("step %d%s: %.1f ms" % (i, " (warmup)" if i < len(warm) else "", t), file=sys.stderr)
    print("pytorch %s: median %.1f ms/step, %.0f tokens/s (AdamW %s%s)"
          % (torch.__version__, med, res["tokens_per_s"], kind, "; " + note if note else ""),
          file=sys.stderr)
    if args.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
