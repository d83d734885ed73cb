#!/usr/bin/env python3
"""PyTorch reference for scripts/bench_allreduce.ts: torch.distributed's all-reduce of float32 CPU tensors over
TCP loopback (the gloo backend, PyTorch's TCP transport), timed the same way, so Orion's WebSocket all-reduce
can be set beside what PyTorch users get on the same host.

Method (as bench_allreduce.ts): every rank is its own process (torch.multiprocessing), joined through a TCP
store on 127.0.0.1 (GLOO_SOCKET_IFNAME=lo). For each size the ranks run `--warmup` untimed all-reduces, a
barrier, then `iters` timed ones of one tensor:
  sync       each all-reduce awaited before the next (dist.all_reduce); rank 0's per-call times give the mean
             (the headline), median, p90, min and max;
  pipelined  all `iters` issued at once (async_op=True) and waited for at the end (nccl-tests' timing).
time = rank 0's elapsed / iters; algbw = bytes / time; busbw = algbw × 2(n−1)/n (nccl-tests). The iteration
counts per size are bench_allreduce.ts's. Raw TCP is not measured here: compare against the `rawTcpGBps` of a
bench_allreduce.ts run in the same session on the same host.

Usage:
  python3 scripts/reference/allreduce_torch.py [--ranks 2,4,8] [--sizes-mib 1,2,4,8,16,64,256]
        [--warmup 5] [--iters N] [--json out.json]
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.distributed as dist

from rank_processes import run_ranks

MIB = 1024 * 1024


def iters_for(size_mib):
    """bench_allreduce.ts's `itersFor`."""
    return 20 if size_mib <= 1 else 10 if size_mib <= 4 else 5 if size_mib <= 16 else 3 if size_mib <= 64 else 2


def percentile(sorted_ms, q):
    """Nearest-rank percentile, as bench_allreduce.ts's `spreadOf`."""
    return sorted_ms[min(len(sorted_ms) - 1, math.ceil(q * len(sorted_ms)) - 1)]


def rank_main(rank, world, port, args, queue):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    rows = []
    for size_mib in args.sizes:
        tensor = torch.full((int(size_mib * MIB) // 4,), float(rank + 1), dtype=torch.float32)
        iters = args.iters or iters_for(size_mib)
        for _ in range(args.warmup):
            dist.all_reduce(tensor)
        for issue in ("sync", "pipelined"):
            dist.barrier()
            calls = []
            t0 = time.perf_counter()
            if issue == "sync":
                for _ in range(iters):
                    c0 = time.perf_counter()
                    dist.all_reduce(tensor)
                    calls.append((time.perf_counter() - c0) * 1e3)
            else:
                works = [dist.all_reduce(tensor, async_op=True) for _ in range(iters)]
                for w in works:
                    w.wait()
            elapsed = time.perf_counter() - t0
            dist.barrier()
            seconds = elapsed / iters
            algbw = size_mib * MIB / seconds / 1e9
            busbw = algbw * 2 * (world - 1) / world
            row = {"ranks": world, "backend": "gloo", "sizeMib": size_mib, "issue": issue, "iters": iters,
                   "ms": round(seconds * 1e3, 3), "algbwGBps": round(algbw, 3), "busbwGBps": round(busbw, 3)}
            if calls:
                s = sorted(calls)
                row.update(medianMs=round(percentile(s, 0.5), 3), p90Ms=round(percentile(s, 0.9), 3),
                           minMs=round(s[0], 3), maxMs=round(s[-1], 3))
            rows.append(row)
    if rank == 0:
        queue.put(rows)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", default="2,4,8")
    ap.add_argument("--sizes-mib", default="1,2,4,8,16,64,256")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int)
    ap.add_argument("--json")
    args = ap.parse_args()
    args.sizes = [float(x) for x in args.sizes_mib.split(",")]
    rows = []
    for world in [int(x) for x in args.ranks.split(",")]:
        got = run_ranks(rank_main, world, (args,))
        for row in got:
            print(f"gloo n={world} {row['sizeMib']:g} MiB {row['issue']:9s}: {row['ms']:8.3f} ms, busbw "
                  f"{row['busbwGBps']:.3f} GB/s" + (f" (median {row['medianMs']} ms)" if "medianMs" in row else ""),
                  file=sys.stderr)
        rows += got
    report = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "torch": torch.__version__,
              "cpuThreads": os.cpu_count(), "warmupPerSize": args.warmup, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
