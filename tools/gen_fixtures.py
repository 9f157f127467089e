#!/usr/bin/python3
"""Generate the transformer reference fixtures for hearth's C test suite.

What it writes
    tests/fixtures/gpt2_tiny.hfix    GPT-2 family  (LayerNorm, GELU-tanh, learned positions,
                                     tied head, biases)
    tests/fixtures/llama_tiny.hfix   Llama family  (RMSNorm, SwiGLU, RoPE rotate-half,
                                     grouped-query attention, untied head, no biases)

Each file holds, for one tiny configuration and one fixed batch: the config, the
hyper-parameters, tokens and targets (-1 = ignored), the initial parameters in the C model's
layout (src/nn/transformer.c, layout_params), the logits and mean loss of a forward pass, the
gradient of that loss for every parameter (before clipping), and the losses and final
parameters of 10 steps of torch.optim.AdamW (lr 1e-2, betas (0.9, 0.95), eps 1e-8,
weight_decay 0.1 on matrices/embeddings only) with clip_grad_norm_(1.0) before each step,
every step on the same batch.

The reference model below is written in plain torch ops (no transformers library) and follows
the math of src/nn/transformer.c and src/tensor/ref.c. Everything is computed in float64 from
the float32-rounded initial parameters (the exact values stored), then stored as float32.
Hyper-parameters are used in their float32-rounded form, as the C side sees them.

How to run (from the repository root; needs Debian's python, which has torch and numpy):
    /usr/bin/python3 tools/gen_fixtures.py
The output is deterministic (explicit torch seeds). The files are committed: the C test suite
reads them directly, so building and running the tests never needs torch or Python.

File format "HFIX" (all little-endian):
    bytes 0..3   ASCII "HFIX"
    uint32       version = 1
    uint32       count: number of entries
    per entry:   uint32 name_len; name_len bytes of UTF-8 name (no terminator);
                 uint32 dtype (0 = float32, 1 = int32); uint32 ndim (1..4); uint32 dims[ndim];
                 product(dims) * 4 bytes of row-major data.

Entries: "config" int32 [12] = family (0 gpt2, 1 llama), V, maxT, L, NH, NKV, C, F, tied,
bias, B, T; "hyper" float32 [7] = norm_eps, rope_theta, lr, beta1, beta2, adam_eps,
weight_decay; "clip" float32 [1] (max grad norm); "tokens", "targets" int32 (B,T);
"param.<name>", "grad.<name>", "final.<name>" float32 for every parameter tensor;
"logits" float32 (B,T,V); "loss" float32 [1]; "adamw_losses" float32 [10].
"""

import math
import os
import struct
import sys

import numpy as np
import torch

DT = torch.float64
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures")

B, T = 2, 12
N_STEPS = 10
LR, BETA1, BETA2, ADAM_EPS, WD, CLIP = 1e-2, 0.9, 0.95, 1e-8, 0.1, 1.0

# family, V, maxT, L, NH, NKV, C, F, tied, bias, eps, theta, seed
CONFIGS = {
    "gpt2_tiny": dict(family=0, V=97, maxT=16, L=2, NH=4, NKV=4, C=32, F=128, tied=1, bias=1,
                      eps=1e-5, theta=10000.0, seed=20240601),
    "llama_tiny": dict(family=1, V=97, maxT=16, L=2, NH=4, NKV=2, C=32, F=96, tied=0, bias=0,
                       eps=1e-5, theta=10000.0, seed=20240602),
}


def f32(x):
    """x rounded to float32, as a Python float (what the C side holds)."""
    return float(np.float32(x))


def param_specs(cfg):
    """Parameter tensors in the C storage order: (name, shape, decay)."""
    V, maxT, L, C, F = cfg["V"], cfg["maxT"], cfg["L"], cfg["C"], cfg["F"]
    NH, NKV = cfg["NH"], cfg["NKV"]
    HS = C // NH
    Q = (NH + 2 * NKV) * HS
    gpt2 = cfg["family"] == 0
    FO = F if gpt2 else 2 * F
    bias, tied = cfg["bias"], cfg["tied"]
    spec = [
        ("wte", (V, C), True, True),
        ("wpe", (maxT, C), gpt2, True),
        ("ln1w", (L, C), True, False),
        ("ln1b", (L, C), bias, False),
        ("qkvw", (L, Q, C), True, True),
        ("qkvb", (L, Q), bias, False),
        ("attprojw", (L, C, C), True, True),
        ("attprojb", (L, C), bias, False),
        ("ln2w", (L, C), True, False),
        ("ln2b", (L, C), bias, False),
        ("fcw", (L, FO, C), True, True),
        ("fcb", (L, FO), bias, False),
        ("fcprojw", (L, C, F), True, True),
        ("fcprojb", (L, C), bias, False),
        ("lnfw", (C,), True, False),
        ("lnfb", (C,), bias, False),
        ("lm_head", (V, C), not tied, True),
    ]
    return [(n, s, d) for n, s, present, d in spec if present]


def init_params(cfg, gen):
    """Initial parameters, drawn in float64, rounded to float32, held as float64 leaves."""
    params = {}
    for name, shape, decay in param_specs(cfg):
        z = torch.randn(shape, generator=gen, dtype=DT)
        if name in ("ln1w", "ln2w", "lnfw"):
            x = 1.0 + 0.1 * z
        elif not decay:  # biases
            x = 0.1 * z
        else:  # matrices and embeddings
            x = 0.2 * z
        x = x.to(torch.float32).to(DT)
        params[name] = x.clone().requires_grad_(True)
    return params


# ---- the reference model ------------------------------------------------------------------

def layernorm(x, w, b, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)  # biased
    y = (x - mean) * torch.rsqrt(var + eps) * w
    return y + b if b is not None else y


def rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def gelu_tanh(x):
    s = math.sqrt(2.0 / math.pi)
    return 0.5 * x * (1.0 + torch.tanh(s * (x + 0.044715 * x ** 3)))


def rope_tables(Tn, HS, theta):
    half = HS // 2
    i = torch.arange(half, dtype=DT)
    freq = theta ** (-2.0 * i / HS)
    ang = torch.arange(Tn, dtype=DT)[:, None] * freq[None, :]  # (T, HS/2)
    return torch.cos(ang), torch.sin(ang)


def rope(x, cos, sin):
    """x (B,T,H,HS); rotate-half pairing (i, i + HS/2)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


def forward(P, cfg, tokens, targets, lora=None):
    """Returns (logits (B,T,V), mean loss over targets != -1). lora: None, or a dict with
    "scale" and, per adapted target t (q k v o gate up down), "A.t" (L,r,in) and "B.t" (L,out,r):
    the target's output gains scale * x A^T B^T (LoRA without dropout)."""
    gpt2 = cfg["family"] == 0
    L, NH, NKV, C, F = cfg["L"], cfg["NH"], cfg["NKV"], cfg["C"], cfg["F"]
    eps, theta = f32(cfg["eps"]), f32(cfg["theta"])
    HS = C // NH
    group = NH // NKV
    Bn, Tn = tokens.shape
    get = lambda name, l=None: (None if name not in P else (P[name] if l is None else P[name][l]))

    def norm(x, w, b):
        return layernorm(x, w, b, eps) if gpt2 else rmsnorm(x, w, eps)

    def linear(x, w, b):
        y = x @ w.t()
        return y + b if b is not None else y

    def delta(x, t, l):
        if lora is None or ("A." + t) not in lora:
            return None
        return lora["scale"] * ((x @ lora["A." + t][l].t()) @ lora["B." + t][l].t())

    def adapt(y, x, l, parts):
        """y's column blocks (name, width) each gain their adapter's output."""
        if lora is None:
            return y
        out, c0 = [], 0
        for t, w in parts:
            d = delta(x, t, l)
            blk = y[..., c0:c0 + w]
            out.append(blk + d if d is not None else blk)
            c0 += w
        return torch.cat(out, dim=-1)

    x = P["wte"][tokens]
    if gpt2:
        x = x + P["wpe"][:Tn][None]
    if not gpt2:
        cos, sin = rope_tables(Tn, HS, theta)
    causal = torch.ones(Tn, Tn, dtype=torch.bool).tril()
    for l in range(L):
        h = norm(x, get("ln1w", l), get("ln1b", l))
        qkv = linear(h, get("qkvw", l), get("qkvb", l))
        qkv = adapt(qkv, h, l, [("q", NH * HS), ("k", NKV * HS), ("v", NKV * HS)])
        q = qkv[..., : NH * HS].reshape(Bn, Tn, NH, HS)
        k = qkv[..., NH * HS:(NH + NKV) * HS].reshape(Bn, Tn, NKV, HS)
        v = qkv[..., (NH + NKV) * HS:].reshape(Bn, Tn, NKV, HS)
        if not gpt2:
            q, k = rope(q, cos, sin), rope(k, cos, sin)
        q = q.permute(0, 2, 1, 3)                                        # (B,NH,T,HS)
        k = k.permute(0, 2, 1, 3).repeat_interleave(group, dim=1)      # head h -> kv h//group
        v = v.permute(0, 2, 1, 3).repeat_interleave(group, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(HS)
        s = s.masked_fill(~causal, float("-inf"))
        a = torch.softmax(s, dim=-1)
        y = (a @ v).permute(0, 2, 1, 3).reshape(Bn, Tn, NH * HS)
        x = x + adapt(linear(y, get("attprojw", l), get("attprojb", l)), y, l, [("o", C)])
        h2 = norm(x, get("ln2w", l), get("ln2b", l))
        f = linear(h2, get("fcw", l), get("fcb", l))
        f = adapt(f, h2, l, [("up", F)] if gpt2 else [("gate", F), ("up", F)])
        if gpt2:
            act = gelu_tanh(f)
        else:
            g, u = f[..., :F], f[..., F:]
            act = g * torch.sigmoid(g) * u
        x = x + adapt(linear(act, get("fcprojw", l), get("fcprojb", l)), act, l, [("down", C)])
    hf = norm(x, P["lnfw"], get("lnfb"))
    head = P["wte"] if cfg["tied"] else P["lm_head"]
    logits = hf @ head.t()
    logp = torch.log_softmax(logits, dim=-1)
    mask = targets != -1
    nll = -logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    loss = nll[mask].mean()
    return logits, loss


# ---- checks ---------------------------------------------------------------------------------

def check_gradients(cfg, P, tokens, targets, gen):
    """Finite differences in float64 against autograd on a few entries of every parameter,
    plus torch.autograd.gradcheck on the final norm weight. Returns the worst relative error."""
    for p in P.values():
        p.grad = None
    _, loss = forward(P, cfg, tokens, targets)
    loss.backward()
    worst = 0.0
    h = 1e-6
    with torch.no_grad():
        for name, p in P.items():
            flat, gflat = p.view(-1), p.grad.view(-1)
            idx = torch.randint(0, flat.numel(), (4,), generator=gen).tolist()
            idx.append(int(gflat.abs().argmax()))
            for i in idx:
                old = flat[i].item()
                flat[i] = old + h
                lp = forward(P, cfg, tokens, targets)[1].item()
                flat[i] = old - h
                lm = forward(P, cfg, tokens, targets)[1].item()
                flat[i] = old
                fd = (lp - lm) / (2 * h)
                an = gflat[i].item()
                err = abs(fd - an) / max(1e-4, abs(fd) + abs(an))
                worst = max(worst, err)
                if err > 1e-5:
                    raise SystemExit(f"gradient check failed: {name}[{i}] fd {fd} autograd {an}")

    # gradcheck on one small tensor (full Jacobian of the loss wrt lnfw)
    base = {k: v.detach() for k, v in P.items()}

    def f_lnfw(w):
        Q = dict(base)
        Q["lnfw"] = w
        return forward(Q, cfg, tokens, targets)[1]

    w = P["lnfw"].detach().clone().requires_grad_(True)
    if not torch.autograd.gradcheck(f_lnfw, (w,), eps=1e-6, atol=1e-7, rtol=1e-5):
        raise SystemExit("torch.autograd.gradcheck failed on lnfw")
    for p in P.values():
        p.grad = None
    return worst


# ---- writing --------------------------------------------------------------------------------

def hfix_bytes(entries):
    out = [struct.pack("<4sII", b"HFIX", 1, len(entries))]
    for name, arr in entries:
        arr = np.ascontiguousarray(arr)
        if arr.dtype == np.float32:
            dtype, arr = 0, arr.astype("<f4")
        elif arr.dtype == np.int32:
            dtype, arr = 1, arr.astype("<i4")
        else:
            raise TypeError(f"{name}: unsupported dtype {arr.dtype}")
        if not 1 <= arr.ndim <= 4:
            raise ValueError(f"{name}: ndim {arr.ndim}")
        nb = name.encode("utf-8")
        out.append(struct.pack("<I", len(nb)) + nb)
        out.append(struct.pack("<II", dtype, arr.ndim) + struct.pack(f"<{arr.ndim}I", *arr.shape))
        out.append(arr.tobytes())
    return b"".join(out)


def hfix_read(data):
    """Parses an HFIX file (used to verify what was written)."""
    magic, version, count = struct.unpack_from("<4sII", data, 0)
    assert magic == b"HFIX" and version == 1
    off, res = 12, {}
    for _ in range(count):
        (nl,) = struct.unpack_from("<I", data, off)
        off += 4
        name = data[off:off + nl].decode("utf-8")
        off += nl
        dtype, ndim = struct.unpack_from("<II", data, off)
        off += 8
        dims = struct.unpack_from(f"<{ndim}I", data, off)
        off += 4 * ndim
        n = int(np.prod(dims))
        arr = np.frombuffer(data, dtype="<f4" if dtype == 0 else "<i4", count=n, offset=off)
        off += 4 * n
        res[name] = arr.reshape(dims)
    assert off == len(data), "trailing bytes"
    return res


def t32(x):
    return x.detach().to(torch.float32).numpy()


def build(name, cfg):
    gen = torch.Generator().manual_seed(cfg["seed"])
    P = init_params(cfg, gen)
    V = cfg["V"]
    tokens = torch.randint(0, V, (B, T), generator=gen)
    targets = torch.randint(0, V, (B, T), generator=gen)
    ignored = torch.randperm(B * T, generator=gen)[:3]
    targets.view(-1)[ignored] = -1

    worst = check_gradients(cfg, P, tokens, targets, gen)

    # forward + gradient at the initial parameters
    logits, loss = forward(P, cfg, tokens, targets)
    loss.backward()
    init = {k: t32(v) for k, v in P.items()}
    grads = {k: t32(v.grad) for k, v in P.items()}
    logits32, loss0 = t32(logits), loss.item()
    for p in P.values():
        p.grad = None

    # 10 AdamW steps on the same batch
    specs = param_specs(cfg)
    decay = [P[n] for n, _, d in specs if d]
    no_decay = [P[n] for n, _, d in specs if not d]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": f32(WD)}, {"params": no_decay, "weight_decay": 0.0}],
        lr=f32(LR), betas=(f32(BETA1), f32(BETA2)), eps=f32(ADAM_EPS))
    losses, norms = [], []
    for _ in range(N_STEPS):
        opt.zero_grad(set_to_none=True)
        _, l = forward(P, cfg, tokens, targets)
        l.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(P.values()), f32(CLIP))))
        opt.step()
        losses.append(l.item())
    final = {k: t32(v) for k, v in P.items()}

    config = np.array([cfg["family"], V, cfg["maxT"], cfg["L"], cfg["NH"], cfg["NKV"], cfg["C"],
                       cfg["F"], cfg["tied"], cfg["bias"], B, T], dtype=np.int32)
    hyper = np.array([cfg["eps"], cfg["theta"], LR, BETA1, BETA2, ADAM_EPS, WD], dtype=np.float32)
    entries = [("config", config), ("hyper", hyper), ("clip", np.array([CLIP], np.float32)),
               ("tokens", tokens.numpy().astype(np.int32)),
               ("targets", targets.numpy().astype(np.int32))]
    names = [n for n, _, _ in specs]
    entries += [(f"param.{n}", init[n]) for n in names]
    entries += [("logits", logits32), ("loss", np.array([loss0], np.float32))]
    entries += [(f"grad.{n}", grads[n]) for n in names]
    entries += [("adamw_losses", np.array(losses, np.float32))]
    entries += [(f"final.{n}", final[n]) for n in names]

    data = hfix_bytes(entries)
    back = hfix_read(data)
    assert list(back) == [e[0] for e in entries]
    for n, a in entries:
        assert back[n].shape == a.shape and np.array_equal(back[n], a), n
    assert len(data) < 2 * 1024 * 1024

    path = os.path.join(OUT_DIR, name + ".hfix")
    with open(path, "wb") as fh:
        fh.write(data)

    nparams = sum(int(np.prod(s)) for _, s, _ in specs)
    print(f"{name}: {len(entries)} entries, {nparams} parameters in {len(specs)} tensors, "
          f"{len(data)} bytes -> {os.path.relpath(path, ROOT)}")
    print(f"  gradient check: worst relative error {worst:.2e} (finite differences, float64)")
    print(f"  valid targets {int((targets != -1).sum())}/{B * T}, initial loss {loss0:.6f}")
    print("  grad norms before clipping: " + " ".join(f"{x:.4f}" for x in norms))
    print("  adamw losses: " + " ".join(f"{x:.6f}" for x in losses))


# ---- LoRA ----------------------------------------------------------------------------------

LORA_TARGETS = ["q", "k", "v", "o", "gate", "up", "down"]
LORA_RANK, LORA_ALPHA = 4, 8.0


def lora_shapes(cfg):
    """(target, in, out) for every target the family has, in src/nn/lora.h's order."""
    C, F, NH, NKV = cfg["C"], cfg["F"], cfg["NH"], cfg["NKV"]
    HS = C // NH
    shp = {"q": (C, NH * HS), "k": (C, NKV * HS), "v": (C, NKV * HS), "o": (C, C),
           "gate": (C, F), "up": (C, F), "down": (F, C)}
    return [(t, *shp[t]) for t in LORA_TARGETS if not (t == "gate" and cfg["family"] == 0)]


def build_lora(name, cfg):
    """tests/fixtures/<name>_lora.hfix: the base fixture's model (same seed, same parameters and
    batch) with rank-4 adapters (alpha 8) on every target the family has, A and B both random
    (so every gradient is nonzero), no dropout. Entries: "lora.config" int32 [2] = rank, target
    mask (bit i: LORA_TARGETS[i]); "lora.alpha" float32 [1]; "tokens", "targets"; "param.<name>"
    (the base); "lora.A.<t>" (L,r,in), "lora.B.<t>" (L,out,r); "logits", "loss"; "lora.gA.<t>",
    "lora.gB.<t>": the loss's gradient for each adapter matrix (base frozen)."""
    gen = torch.Generator().manual_seed(cfg["seed"])
    P = init_params(cfg, gen)
    V, L = cfg["V"], cfg["L"]
    tokens = torch.randint(0, V, (B, T), generator=gen)
    targets = torch.randint(0, V, (B, T), generator=gen)
    ignored = torch.randperm(B * T, generator=gen)[:3]
    targets.view(-1)[ignored] = -1
    lg = torch.Generator().manual_seed(cfg["seed"] + 7)
    lora = {"scale": f32(LORA_ALPHA / LORA_RANK)}
    mask = 0
    for t, fin, fout in lora_shapes(cfg):
        mask |= 1 << LORA_TARGETS.index(t)
        a = (torch.rand((L, LORA_RANK, fin), generator=lg, dtype=DT) * 2 - 1) / math.sqrt(fin)
        b = 0.1 * torch.randn((L, fout, LORA_RANK), generator=lg, dtype=DT)
        lora["A." + t] = a.to(torch.float32).to(DT).requires_grad_(True)
        lora["B." + t] = b.to(torch.float32).to(DT).requires_grad_(True)
    base = {k: v.detach() for k, v in P.items()}
    logits, loss = forward(base, cfg, tokens, targets, lora)
    loss.backward()
    # finite differences on a few adapter entries
    h = 1e-6
    with torch.no_grad():
        for key in [k for k in lora if k != "scale"]:
            p = lora[key]
            flat, gflat = p.view(-1), p.grad.view(-1)
            for i in [0, int(gflat.abs().argmax())]:
                old = flat[i].item()
                flat[i] = old + h
                lp = forward(base, cfg, tokens, targets, lora)[1].item()
                flat[i] = old - h
                lm = forward(base, cfg, tokens, targets, lora)[1].item()
                flat[i] = old
                fd, an = (lp - lm) / (2 * h), gflat[i].item()
                if abs(fd - an) / max(1e-4, abs(fd) + abs(an)) > 1e-5:
                    raise SystemExit(f"LoRA gradient check failed: {key}[{i}] fd {fd} autograd {an}")
    entries = [("lora.config", np.array([LORA_RANK, mask], np.int32)),
               ("lora.alpha", np.array([LORA_ALPHA], np.float32)),
               ("tokens", tokens.numpy().astype(np.int32)),
               ("targets", targets.numpy().astype(np.int32))]
    entries += [(f"param.{n}", t32(P[n])) for n, _, _ in param_specs(cfg)]
    keys = [k for k in lora if k != "scale"]
    entries += [(f"lora.{k}", t32(lora[k])) for k in keys]
    entries += [("logits", t32(logits)), ("loss", np.array([loss.item()], np.float32))]
    entries += [("lora.g" + k, t32(lora[k].grad)) for k in keys]
    data = hfix_bytes(entries)
    assert len(data) < 2 * 1024 * 1024
    path = os.path.join(OUT_DIR, name + "_lora.hfix")
    with open(path, "wb") as fh:
        fh.write(data)
    print(f"{name}_lora: {len(entries)} entries, loss {loss.item():.6f} -> "
          f"{os.path.relpath(path, ROOT)}")


def main():
    torch.manual_seed(0)  # nothing should use the global generator; pinned anyway
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, cfg in CONFIGS.items():
        build(name, cfg)
        build_lora(name, cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
