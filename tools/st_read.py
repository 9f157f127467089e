#!/usr/bin/env python3
"""tools/st_read.py: an independent safetensors reader (numpy only), written from the published
format description, not from hearth's code: 8-byte little-endian header length, a JSON header
mapping names to dtype/shape/data_offsets plus optional "__metadata__" of strings, then the data.
Checks every tensor's byte range and prints one line per tensor. Used by tests/cli/test_tools.sh.

  st_read.py FILE [OTHER]   with OTHER: also checks that both files hold identical tensors."""
import json, struct, sys
import numpy as np

DT = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
      "I8": "i1", "U8": "u1", "BOOL": "?"}

def load(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert 8 + n <= len(raw), "header runs past the end"
    head = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = head.pop("__metadata__", {})
    assert all(isinstance(v, str) for v in meta.values()), "metadata values must be strings"
    data, out, end = raw[8 + n:], {}, 0
    for name, t in sorted(head.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = t["data_offsets"]
        dt = np.dtype(DT[t["dtype"]])
        assert b == end and e - b == dt.itemsize * int(np.prod(t["shape"], dtype=np.int64)), name
        out[name] = np.frombuffer(data[b:e], dtype=dt).reshape(t["shape"])
        end = e
    assert end == len(data), "bytes after the last tensor"
    return meta, out

meta, ts = load(sys.argv[1])
for k, v in meta.items():
    print("meta %s = %s" % (k, v))
for name, a in ts.items():
    print("%s %s %s sum=%.6g" % (name, a.dtype, list(a.shape), float(a.astype(np.float64).sum())))
if len(sys.argv) > 2:
    _, other = load(sys.argv[2])
    assert sorted(other) == sorted(ts), "different tensor names"
    assert all(np.array_equal(ts[k], other[k]) for k in ts), "different tensor data"
    print("identical tensors: %d" % len(ts))
