#!/usr/bin/python3
"""PyTorch DDP peer of bench/dist_scaling.sh: data-parallel GPT-2 training on CPU over gloo.

The model, init and AdamW are bench/peers/pytorch_train.py's (GPT-2: vocab 50257, 12 layers,
width 768, tied head; AdamW lr 3e-4, betas (0.9, 0.95), wd 0.1 on matrices). --ranks processes
(torch.multiprocessing, gloo over TCP on 127.0.0.1), each with --threads intra-op threads, each
a micro-batch of --batch x --seq random tokens a step; DistributedDataParallel (bucketed
all-reduce overlapped with the backward, its default 25 MB buckets), clip_grad_norm_(1.0),
opt.step(). Prints one JSON line on stdout (rank 0): median step ms after --warmup steps,
tokens/s of the whole job.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_train import GPT, make_optimizer  # noqa: E402


def worker(rank, a, port, q):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(a.threads)
    dist.init_process_group("gloo", rank=rank, world_size=a.ranks)
    torch.manual_seed(1337)
    model = GPT(L=a.layers)
    ddp = DDP(model)
    opt = make_optimizer(model, "foreach")
    gen = torch.Generator().manual_seed(1000 + rank)
    V, B, T = 50257, a.batch, a.seq
    times = []
    for _ in range(a.steps):
        x = torch.randint(0, V, (B, T + 1), generator=gen)
        idx, tgt = x[:, :-1].contiguous(), x[:, 1:].contiguous()
        dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = ddp(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append((time.perf_counter() - t0) * 1e3)
    if rank == 0:
        ms = statistics.median(times[a.warmup:])
        q.put({"impl": "pytorch-ddp", "ranks": a.ranks, "threads": a.threads, "step_ms": ms,
               "tok_per_s": a.ranks * B * T / (ms / 1e3), "torch": torch.__version__,
               "loss": float(loss)})
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--port", type=int, default=29517)
    a = ap.parse_args()
    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    mp.spawn(worker, args=(a, a.port, q), nprocs=a.ranks, join=True)
    print(json.dumps(q.get()))


if __name__ == "__main__":
    main()
