"""One process per rank for the PyTorch reference scripts (allreduce_torch.py, poyo_torch.py ddp)."""
import queue as queue_module
import socket
import time

import torch.multiprocessing as mp


def free_port():
    """A TCP port free on 127.0.0.1 now (the rendezvous port of one job)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(target, world, args, timeout_s=1800):
    """Runs target(rank, world, port, *args, queue) in `world` spawned processes and returns what rank 0 put on
    the queue. A rank that exits with an error fails the job at once (no wait for the timeout)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=target, args=(r, world, port, *args, queue)) for r in range(world)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                result = queue.get(timeout=1)
                break
            except queue_module.Empty:
                failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if failed or time.monotonic() > deadline:
                    raise RuntimeError(f"a rank of the {world}-rank job failed or hung: exit codes "
                                       f"{[p.exitcode for p in procs]}")
        for p in procs:
            p.join()
        if any(p.exitcode != 0 for p in procs):
            raise RuntimeError(f"a rank of the {world}-rank job failed: exit codes {[p.exitcode for p in procs]}")
        return result
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
