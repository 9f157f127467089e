"""bench/peers/ann_peers.py: the peers of bench/ann_bench on the same data and parameters.

  run:    ann_peers.py run --gt FILE [--n N] [--nq NQ] [--m M] [--efc EFC] [--efs 10,20,..]
                           [--reps R] [--libs hnswlib,faiss] [--data DIR]
          builds hnswlib's and FAISS's IndexHNSWFlat (one thread, l2) on the first N
          fashion-mnist training images (pixel bytes as float32), queries the first NQ test
          images for each ef (best of R passes) and prints one JSON object per line, as
          ann_bench does, with recall@10 against the ground truth ann_bench cached in FILE.
  report: ann_peers.py report FILE  (JSON lines of every library)
          prints one table and the targets: hearth's QPS at recall 0.95 and 0.99 (linear
          interpolation between measured points) against hnswlib's, and build times. QPS and
          build times are per CPU second of the process (one thread), steadier than the wall
          clock on a machine shared with other work; wall-clock QPS is in the JSON lines.

Run with Debian's /usr/bin/python3 (python3-hnswlib, python3-faiss, python3-numpy).
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time

K = 10


def read_idx(path, want):
    with gzip.open(path, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 0x803:
            sys.exit(f"ann_peers: {path} is not an idx3-ubyte file")
        n = min(n, want) if want else n
        import numpy as np
        raw = f.read(n * rows * cols)
        return np.frombuffer(raw, dtype=np.uint8).reshape(n, rows * cols).astype(np.float32)


def read_gt(path, n, nq):
    import numpy as np
    with open(path, "rb") as f:
        head = f.read(32)
        if head[:8] != b"ANNGT001":
            sys.exit(f"ann_peers: {path} is not a ground truth file")
        fn, fq = struct.unpack("<QQ", head[8:24])
        if (fn, fq) != (n, nq):
            sys.exit(f"ann_peers: {path} is for n={fn}, nq={fq}, not n={n}, nq={nq}")
        return np.frombuffer(f.read(), dtype="<i4").reshape(nq, K)


def recall(ids, gt):
    hits = 0
    for a, b in zip(ids, gt):
        hits += len(set(a.tolist()) & set(b.tolist()))
    return hits / gt.size


def best_time(fn, reps):
    """Best CPU seconds and best wall seconds of reps calls, and the last result. CPU time is
    the figure compared (as in ann_bench): on a shared machine it excludes time others ran."""
    best, best_wall, out = float("inf"), float("inf"), None
    for _ in range(reps):
        t, w = time.process_time(), time.perf_counter()
        out = fn()
        best = min(best, time.process_time() - t)
        best_wall = min(best_wall, time.perf_counter() - w)
    return best, best_wall, out


def run_hnswlib(xb, xq, gt, a, efs):
    import hnswlib
    import numpy as np
    idx = hnswlib.Index(space="l2", dim=xb.shape[1])
    idx.init_index(max_elements=len(xb), ef_construction=a.efc, M=a.m, random_seed=42)
    idx.set_num_threads(1)
    dt, dw, _ = best_time(lambda: idx.add_items(xb, np.arange(len(xb)), num_threads=1), 1)
    print(json.dumps({"lib": "hnswlib", "build_s": round(dt, 3), "build_wall_s": round(dw, 3)}),
          flush=True)
    for ef in efs:
        idx.set_ef(ef)
        dt, dw, (ids, _) = best_time(lambda: idx.knn_query(xq, k=K, num_threads=1), a.reps)
        print(json.dumps({"lib": "hnswlib", "ef": ef, "recall": round(recall(ids, gt), 5),
                          "qps": round(len(xq) / dt, 1), "qps_wall": round(len(xq) / dw, 1)}),
              flush=True)


def run_faiss(xb, xq, gt, a, efs):
    import faiss
    faiss.omp_set_num_threads(1)
    idx = faiss.IndexHNSWFlat(xb.shape[1], a.m)
    idx.hnsw.efConstruction = a.efc
    dt, dw, _ = best_time(lambda: idx.add(xb), 1)
    print(json.dumps({"lib": "faiss", "build_s": round(dt, 3), "build_wall_s": round(dw, 3)}),
          flush=True)
    for ef in efs:
        idx.hnsw.efSearch = ef
        dt, dw, (_, ids) = best_time(lambda: idx.search(xq, K), a.reps)
        print(json.dumps({"lib": "faiss", "ef": ef, "recall": round(recall(ids, gt), 5),
                          "qps": round(len(xq) / dt, 1), "qps_wall": round(len(xq) / dw, 1)}),
              flush=True)


def qps_at(points, target):
    """QPS at a recall by linear interpolation between the measured (recall, qps) points."""
    pts = sorted(points)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= target <= r1:
            return q0 if r1 == r0 else q0 + (q1 - q0) * (target - r0) / (r1 - r0)
    if pts and pts[0][0] >= target:
        return pts[0][1]  # even the smallest ef reaches it: its QPS is a lower bound
    return None


def report(path):
    rows, builds, saves, libs = {}, {}, {}, []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            o = json.loads(line)
            lib = o.get("lib")
            if lib is None:
                continue
            if lib not in libs:
                libs.append(lib)
            if "build_s" in o:
                builds[lib] = o["build_s"]
            if "save_s" in o:
                saves[lib] = o
            if "ef" in o:
                rows.setdefault(o["ef"], {})[lib] = (o["recall"], o["qps"])
    head = f"{'ef':>5}" + "".join(f" | {lib + ' recall':>15} {lib + ' QPS':>12}" for lib in libs)
    print("QPS = queries per CPU second (one thread)")
    print(head)
    print("-" * len(head))
    for ef in sorted(rows):
        line = f"{ef:>5}"
        for lib in libs:
            r = rows[ef].get(lib)
            line += f" | {r[0]:>15.4f} {r[1]:>12.0f}" if r else f" | {'-':>15} {'-':>12}"
        print(line)
    print("build (CPU s)" + "".join(f" | {lib}: {builds[lib]:.1f}" for lib in libs if lib in builds))
    for lib, o in saves.items():
        print(f"{lib} index file: save {o['save_s']:.2f} s, load {o['load_s']:.2f} s (wall), "
              f"loaded index answers identical for {o['identical']} queries")
    if "hearth" not in libs or "hnswlib" not in libs:
        return 0
    ok = True
    pts = {lib: [rows[ef][lib] for ef in rows if lib in rows[ef]] for lib in libs}
    for target in (0.95, 0.99):
        vals = {lib: qps_at(pts[lib], target) for lib in libs}
        desc = ", ".join(f"{lib} {v:.0f}" if v else f"{lib} n/a" for lib, v in vals.items())
        h, b = vals.get("hearth"), vals.get("hnswlib")
        ratio = h / b if h and b else None
        met = ratio is not None and ratio >= 1.0
        ok &= met
        rs = f"{ratio:.2f}x" if ratio else "n/a"
        print(f"QPS at recall {target}: {desc}; hearth/hnswlib = {rs} "
              f"(target >= 1.0x: {'met' if met else 'NOT met'})")
    if "hearth" in builds and "hnswlib" in builds:
        ratio = builds["hearth"] / builds["hnswlib"]
        met = ratio <= 1.0
        ok &= met
        print(f"build time: hearth {builds['hearth']:.1f} s, hnswlib {builds['hnswlib']:.1f} s, "
              f"ratio {ratio:.2f}x (target <= 1.0x: {'met' if met else 'NOT met'})")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["run", "report"])
    ap.add_argument("file", nargs="?")
    ap.add_argument("--gt")
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--nq", type=int, default=10000)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--efs", default="10,20,40,80,120,160")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--libs", default="hnswlib,faiss")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    if a.mode == "report":
        if not a.file:
            sys.exit("ann_peers: report needs the file of JSON lines")
        sys.exit(report(a.file))
    if not a.gt:
        sys.exit("ann_peers: run needs --gt (from ann_bench --gt-only)")
    xb = read_idx(os.path.join(a.data, "train-images-idx3-ubyte.gz"), a.n)
    xq = read_idx(os.path.join(a.data, "t10k-images-idx3-ubyte.gz"), a.nq)
    gt = read_gt(a.gt, len(xb), len(xq))
    efs = [int(x) for x in a.efs.split(",") if x]
    for lib in filter(None, a.libs.split(",")):
        if lib == "hnswlib":
            run_hnswlib(xb, xq, gt, a, efs)
        elif lib == "faiss":
            run_faiss(xb, xq, gt, a, efs)
        else:
            sys.exit(f"ann_peers: unknown library {lib}")


if __name__ == "__main__":
    main()
