#!/usr/bin/env python3
"""tools/gguf_random_lora.py: a random LoRA adapter GGUF (llama.cpp's adapter format) for a base
GGUF model, every projection of every layer adapted (attn_q, attn_k, attn_v, attn_output,
ffn_gate, ffn_up, ffn_down), F32, alpha = 2 * rank. The shapes come from the base's tensors.
For speed benchmarks only (bench/lora_bench.sh): the values are noise, small enough that the
adapted model stays finite.

    PYTHONPATH=llama.cpp/gguf-py python3 tools/gguf_random_lora.py BASE.gguf OUT.gguf [RANK [SEED]]
"""
import sys

import numpy as np
import gguf

TARGETS = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    base, out = sys.argv[1], sys.argv[2]
    rank = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    rng = np.random.default_rng(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    r = gguf.GGUFReader(base)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    shapes = {t.name: [int(d) for d in t.shape] for t in r.tensors}  # [cols, rows]
    w = gguf.GGUFWriter(out, arch)
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", float(2 * rank))
    layer = 0
    while f"blk.{layer}.attn_q.weight" in shapes:
        for t in TARGETS:
            name = f"blk.{layer}.{t}.weight"
            if name not in shapes:
                continue
            cols, rows = shapes[name]
            a = (rng.standard_normal((rank, cols)) / np.sqrt(cols)).astype(np.float32)
            b = (rng.standard_normal((rows, rank)) * 0.01).astype(np.float32)
            w.add_tensor(name + ".lora_a", a)
            w.add_tensor(name + ".lora_b", b)
        layer += 1
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
