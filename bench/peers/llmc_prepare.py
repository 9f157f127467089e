#!/usr/bin/env python3
"""Prepares the files karpathy/llm.c's CPU trainer (train_gpt2.c) opens, in its own formats,
so that it trains a random-init GPT-2 124M on random tokens:

  DIR/gpt2_124M.bin                                   model checkpoint (float32, version 3)
  DIR/dev/data/tinyshakespeare/tiny_shakespeare_train.bin   token file (uint16, version 1)
  DIR/dev/data/tinyshakespeare/tiny_shakespeare_val.bin
  DIR/gpt2_tokenizer.bin                              placeholder tokenizer (version 2)

train_gpt2.c's main() hardcodes these relative paths, so it must be run from DIR.

Formats (read from train_gpt2.c and llmc/dataloader.h, llmc/tokenizer.h):
  checkpoint: 256 int32 header [20240326, 3, maxT, V, L, NH, C, Vp, 0...], then the 16
    parameter tensors in this order, float32: wte (Vp,C), wpe (maxT,C), ln1w (L,C),
    ln1b (L,C), qkvw (L,3C,C), qkvb (L,3C), attprojw (L,C,C), attprojb (L,C), ln2w (L,C),
    ln2b (L,C), fcw (L,4C,C), fcb (L,4C), fcprojw (L,C,4C), fcprojb (L,C), lnfw (C), lnfb (C).
  tokens: 256 int32 header [20240520, 1, ntok, 0...], then ntok uint16.
  tokenizer: 256 uint32 header [20240328, 2, V, eot, 0...], then per token a uint8 length and
    that many bytes. train_gpt2.c works without it (it prints token ids instead), but then it
    leaves its EOT id uninitialised for the sampling at step 20; the placeholder (token i
    decodes to "<i>") keeps that well defined. The benchmark stops before step 20 anyway.

Init: GPT-2's: matrices N(0, 0.02), residual projections (attprojw, fcprojw) N(0, 0.02/sqrt(2L)),
biases 0, LayerNorm weights 1; padded vocabulary rows of wte are 0.

Usage: llmc_prepare.py DIR [--tokens N] [--seed S] [--force]
Files already present with the right size are kept (the checkpoint is ~500 MB).
"""
import argparse
import os
import sys

import numpy as np

MAXT, V, VP, L, NH, C = 1024, 50257, 50304, 12, 12, 768
EOT = 50256


def header(values, dtype=np.int32):
    h = np.zeros(256, dtype=dtype)
    h[: len(values)] = values
    return h


def write_checkpoint(path, seed):
    rng = np.random.default_rng(seed)
    std, rstd = 0.02, 0.02 / np.sqrt(2 * L)
    tensors = [
        ("wte", (VP, C), "normal"),
        ("wpe", (MAXT, C), "normal"),
        ("ln1w", (L, C), "ones"),
        ("ln1b", (L, C), "zeros"),
        ("qkvw", (L, 3 * C, C), "normal"),
        ("qkvb", (L, 3 * C), "zeros"),
        ("attprojw", (L, C, C), "resid"),
        ("attprojb", (L, C), "zeros"),
        ("ln2w", (L, C), "ones"),
        ("ln2b", (L, C), "zeros"),
        ("fcw", (L, 4 * C, C), "normal"),
        ("fcb", (L, 4 * C), "zeros"),
        ("fcprojw", (L, C, 4 * C), "resid"),
        ("fcprojb", (L, C), "zeros"),
        ("lnfw", (C,), "ones"),
        ("lnfb", (C,), "zeros"),
    ]
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        header([20240326, 3, MAXT, V, L, NH, C, VP]).tofile(f)
        for name, shape, kind in tensors:
            if kind == "ones":
                a = np.ones(shape, dtype=np.float32)
            elif kind == "zeros":
                a = np.zeros(shape, dtype=np.float32)
            else:
                a = rng.standard_normal(shape, dtype=np.float32)
                a *= np.float32(std if kind == "normal" else rstd)
                if name == "wte":
                    a[V:] = 0.0  # padded vocabulary rows
            a.tofile(f)
    os.replace(tmp, path)


def checkpoint_size():
    n = VP * C + MAXT * C + L * (C * 2 + 3 * C * C + 3 * C + C * C + C + 2 * C + 4 * C * C
                                  + 4 * C + 4 * C * C + C) + 2 * C
    return 256 * 4 + 4 * n


def write_tokens(path, ntok, seed):
    rng = np.random.default_rng(seed)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        header([20240520, 1, ntok]).tofile(f)
        rng.integers(0, V, size=ntok, dtype=np.uint16).tofile(f)
    os.replace(tmp, path)


def write_tokenizer(path):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        header([20240328, 2, V, EOT], dtype=np.uint32).tofile(f)
        for i in range(V):
            s = ("<%d>" % i).encode()
            f.write(bytes([len(s)]) + s)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--tokens", type=int, default=65536, help="tokens per token file")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--force", action="store_true", help="rewrite files that exist")
    args = ap.parse_args()

    d = args.dir
    data = os.path.join(d, "dev", "data", "tinyshakespeare")
    os.makedirs(data, exist_ok=True)
    ckpt = os.path.join(d, "gpt2_124M.bin")
    tok_size = 256 * 4 + 2 * args.tokens

    def stale(p, size):
        return args.force or not os.path.exists(p) or (size and os.path.getsize(p) != size)

    if stale(ckpt, checkpoint_size()):
        print("llmc_prepare: writing %s (random init, seed %d)" % (ckpt, args.seed), file=sys.stderr)
        write_checkpoint(ckpt, args.seed)
    for split, seed in (("train", args.seed + 1), ("val", args.seed + 2)):
        p = os.path.join(data, "tiny_shakespeare_%s.bin" % split)
        if stale(p, tok_size):
            write_tokens(p, args.tokens, seed)
    tk = os.path.join(d, "gpt2_tokenizer.bin")
    if stale(tk, 0):
        write_tokenizer(tk)
    print("llmc_prepare: ready in %s" % d, file=sys.stderr)


if __name__ == "__main__":
    main()
