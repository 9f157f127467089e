#!/usr/bin/env python3
"""tools/quant_fixtures.py: fixtures for src/quant made by llama.cpp itself.

Writes a tiny llama-architecture GGUF with random Gaussian F32 weights (gguf-py's GGUFWriter),
quantizes it with llama-quantize --pure to every type hearth reads, and stores, for the first
ROWS rows of blk.0.attn_q.weight (256 columns), the raw quantized bytes and gguf-py's
dequantized values in one HFIX file (docs/FORMATS.md):

    src            float32 (ROWS, 256)  the F32 values llama-quantize was given
    <TYPE>.raw     int32   (nbytes/4)   the quantized rows' bytes, as stored in the GGUF
    <TYPE>.deq     float32 (ROWS, 256)  gguf-py's dequantization of those bytes
    <TYPE>.id      int32   (1)          the ggml type id read from the quantized GGUF

Run (takes a few seconds):
    PYTHONPATH=~/.cache/hearth-peers/llama.cpp/gguf-py /usr/bin/python3 tools/quant_fixtures.py
Environment: LLAMA_BIN (default ~/.cache/hearth-peers/llama.cpp/build/bin), OUT (default
tests/fixtures/quant/llama_quant.hfix). It also prints llama.cpp's RMSE per type on the rows.
"""
import os
import struct
import subprocess
import tempfile

import numpy as np
import gguf
from gguf import quants



def hfix_bytes(entries):
    """HFIX as tools/gen_fixtures.py writes it (that script needs torch; this one must not)."""
    out = [struct.pack("<4sII", b"HFIX", 1, len(entries))]
    for name, arr in entries:
        arr = np.ascontiguousarray(arr)
        dtype = {np.dtype(np.float32): 0, np.dtype(np.int32): 1}[arr.dtype]
        nb = name.encode("utf-8")
        out.append(struct.pack("<I", len(nb)) + nb)
        out.append(struct.pack("<II", dtype, arr.ndim) + struct.pack(f"<{arr.ndim}I", *arr.shape))
        out.append(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    return b"".join(out)

ROWS, C, FF, V = 16, 256, 512, 32
TYPES = ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
         "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
LLAMA_BIN = os.environ.get("LLAMA_BIN",
                           os.path.expanduser("~/.cache/hearth-peers/llama.cpp/build/bin"))
OUT = os.environ.get("OUT", "tests/fixtures/quant/llama_quant.hfix")


def write_model(path, gen):
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(C)
    w.add_feed_forward_length(FF)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(C // 4)
    w.add_file_type(0)
    w.add_tokenizer_model("llama")
    toks = ["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(V - 3)]
    w.add_token_list(toks)
    w.add_token_scores([0.0] * V)
    w.add_token_types([2, 3, 3] + [1] * (V - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    shapes = {  # numpy shape (rows, cols); ggml's ne is reversed
        "token_embd.weight": (V, C), "output_norm.weight": (C,), "output.weight": (V, C),
        "blk.0.attn_norm.weight": (C,), "blk.0.ffn_norm.weight": (C,),
        "blk.0.attn_q.weight": (C, C), "blk.0.attn_k.weight": (C, C),
        "blk.0.attn_v.weight": (C, C), "blk.0.attn_output.weight": (C, C),
        "blk.0.ffn_gate.weight": (FF, C), "blk.0.ffn_up.weight": (FF, C),
        "blk.0.ffn_down.weight": (C, FF)}
    data = {}
    for name, shp in shapes.items():
        a = np.ones(shp, np.float32) if len(shp) == 1 else gen.standard_normal(shp).astype(np.float32)
        data[name] = a
        w.add_tensor(name, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return data


def main():
    gen = np.random.default_rng(20261206)
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        src_path = os.path.join(tmp, "f32.gguf")
        data = write_model(src_path, gen)
        src = data["blk.0.attn_q.weight"][:ROWS]
        entries.append(("src", np.ascontiguousarray(src)))
        for t in TYPES:
            out = os.path.join(tmp, f"{t}.gguf")
            subprocess.run([os.path.join(LLAMA_BIN, "llama-quantize"), "--pure", src_path, out, t],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            r = gguf.GGUFReader(out)
            ten = next(x for x in r.tensors if x.name == "blk.0.attn_q.weight")
            qt = ten.tensor_type
            raw = np.asarray(ten.data)
            rowbytes = raw.nbytes // raw.shape[0]
            raw = np.ascontiguousarray(raw[:ROWS]).view(np.uint8).reshape(-1)
            assert raw.nbytes == ROWS * rowbytes and raw.nbytes % 4 == 0
            if qt in (gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.F32):
                deq = raw.view(np.float16 if qt == gguf.GGMLQuantizationType.F16 else np.float32)
                deq = deq.astype(np.float32).reshape(ROWS, C)
            else:
                deq = quants.dequantize(raw.reshape(ROWS, rowbytes), qt).astype(np.float32)
            assert deq.shape == (ROWS, C), (t, deq.shape)
            rmse = float(np.sqrt(np.mean((deq - src) ** 2)))
            print(f"{t:5s} id {int(qt):2d}  {rowbytes:4d} bytes/row  llama.cpp RMSE {rmse:.6f}")
            entries.append((f"{t}.raw", raw.view(np.int32).copy()))
            entries.append((f"{t}.deq", np.ascontiguousarray(deq)))
            entries.append((f"{t}.id", np.array([int(qt)], np.int32)))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as f:
        f.write(hfix_bytes(entries))
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
