#!/usr/bin/env python3
"""PyTorch implementation of Orion's POYO contract (../shared/spec/poyo.md), written independently of
Orion's WGSL kernels, for two jobs:

  compare     read a numerics dump written by `orion debug dump-step <config> --out step.safetensors`
              (weights, batch, logits, loss and every gradient), rebuild the model from the weights, run
              one forward/backward in float32 and float64 (dropout off), and report the max relative
              error of the logits, the loss and every gradient against the dump. Pass/fail is judged on
              the f32 comparison (the contract's precision); the f64 column and the torch-f32-vs-f64
              baseline show how much of the difference is f32 rounding itself.
              Relative error of a tensor = max_i |orion_i − torch_i| / max_i |torch_i| (the scale of the
              tensor, so entries near zero are judged against the tensor's magnitude).
  throughput  train the same model on the dump's batch (repeated) with the contract's optimizer and report
              samples/s after warm-up: PyTorch fp32 eager (TF32 off) and, as a second line, torch.compile.
  ddp         data-parallel scaling of the same training on this host's GPUs: one process per GPU,
              DistributedDataParallel over nccl and gloo, `--batch` per rank, against one GPU without DDP
              (Orion's bench_scaling.ts counterpart); efficiency = samples/s at N ÷ (N × the 1-GPU mean).

Usage:
  python3 scripts/reference/poyo_torch.py compare step.safetensors [--tol 1e-4] [--json out.json]
  python3 scripts/reference/poyo_torch.py throughput step.safetensors [--steps 50] [--warmup 10]
        [--batch 32] [--optimizer sparse_lamb] [--no-compile] [--json out.json]
  python3 scripts/reference/poyo_torch.py ddp step.safetensors [--ranks 2] [--backends nccl,gloo]
        [--steps 50] [--warmup 10] [--batch 32] [--bucket-mib 25] [--rounds 2] [--compile] [--cpu] [--json out.json]
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from rank_processes import run_ranks

DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "F16": np.float16,
          "U8": np.uint8, "U32": np.uint32, "BF16": np.uint16}


def read_safetensors(path):
    """Minimal safetensors reader (8-byte LE header length, JSON header, data)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        arr = np.frombuffer(raw[base + start:base + end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        tensors[name] = arr.copy()
    return tensors, meta


# ----------------------------------------------------------------------------------------------------
# Model (contract names and shapes)
# ----------------------------------------------------------------------------------------------------

def rotary_angles(t, dim_head, t_min, t_max):
    """θ_i(t) = 2π · fract(t / P_i), P_i log-spaced in [t_min, t_max], F = dim_head / 4 frequencies.
    The contract fixes this computation in f32 (t/P reaches ~1e5 for the shortest period, where f32 keeps
    only a few bits of the fraction), so it is done in f32 here too and only then cast to the model's dtype;
    an f64 model therefore sees exactly the contract's angles."""
    f = dim_head // 4
    i = torch.arange(f, dtype=torch.float64, device=t.device)
    periods = torch.exp(math.log(t_min) + (math.log(t_max) - math.log(t_min)) * i / max(f - 1, 1))
    periods = periods.to(torch.float32)
    ratio = t.to(torch.float32).unsqueeze(-1) / periods
    frac = ratio - torch.floor(ratio)
    return (frac * torch.tensor(2 * math.pi, dtype=torch.float32)).to(t.dtype)  # [..., F]


def rotate(x, theta, sign=1.0):
    """Rotate dims (2i, 2i+1), i < F, of the last axis by sign·θ_i; dims ≥ dh/2 pass through.
    x: [..., dh]; theta broadcastable to [..., F]."""
    f = theta.shape[-1]
    cos, sin = torch.cos(theta), sign * torch.sin(theta)
    x_rot = x[..., : 2 * f]
    x_even, x_odd = x_rot[..., 0::2], x_rot[..., 1::2]
    r_even = x_even * cos - x_odd * sin
    r_odd = x_odd * cos + x_even * sin
    rotated = torch.stack([r_even, r_odd], dim=-1).flatten(-2)
    return torch.cat([rotated, x[..., 2 * f:]], dim=-1)


class Linear(torch.nn.Module):
    def __init__(self, w, b=None):
        super().__init__()
        self.weight = torch.nn.Parameter(w)
        self.bias = torch.nn.Parameter(b) if b is not None else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class LayerNorm(torch.nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.weight = torch.nn.Parameter(w)
        self.bias = torch.nn.Parameter(b)

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, 1e-5)


class PoyoTorch(torch.nn.Module):
    def __init__(self, weights, kw, modalities, dtype, device):
        super().__init__()
        self.kw = kw
        self.modalities = modalities
        P = lambda n: torch.tensor(weights[n], dtype=dtype, device=device)
        self.names = []
        mods = {}

        def lin(name, bias=True):
            mods[name] = Linear(P(f"{name}.weight"), P(f"{name}.bias") if bias else None)

        def norm(name):
            mods[name] = LayerNorm(P(f"{name}.weight"), P(f"{name}.bias"))

        self.unit_emb = torch.nn.Parameter(P("unit_emb.weight"))
        self.session_emb = torch.nn.Parameter(P("session_emb.weight"))
        self.latent_emb = torch.nn.Parameter(P("latent_emb.weight"))
        for m in modalities:
            lin(f"value_map.{m}")
        for a in ("enc_atn", "dec_atn"):
            norm(f"{a}.norm"); norm(f"{a}.norm_context")
            lin(f"{a}.to_q", False); lin(f"{a}.to_kv", False); lin(f"{a}.to_out")
        for f in ["enc_ffn", "dec_ffn"] + [f"proc.{i}.ffn" for i in range(kw["depth"])]:
            norm(f"{f}.norm"); lin(f"{f}.w1"); lin(f"{f}.w2")
        for i in range(kw["depth"]):
            norm(f"proc.{i}.atn.norm"); lin(f"proc.{i}.atn.to_qkv", False); lin(f"proc.{i}.atn.to_out")
        lin("readout")
        self.mods = torch.nn.ModuleDict({k.replace(".", "__"): v for k, v in mods.items()})

    def m(self, name):
        return self.mods[name.replace(".", "__")]

    def named_contract_parameters(self):
        out = {"unit_emb.weight": self.unit_emb, "session_emb.weight": self.session_emb,
               "latent_emb.weight": self.latent_emb}
        for k, mod in self.mods.items():
            base = k.replace("__", ".")
            out[f"{base}.weight"] = mod.weight
            if mod.bias is not None:
                out[f"{base}.bias"] = mod.bias
        return out

    def ffn(self, name, x):
        h = self.m(f"{name}.w1")(self.m(f"{name}.norm")(x))
        a, g = h.chunk(2, dim=-1)
        return self.m(f"{name}.w2")(a * F.gelu(g, approximate="none"))

    def attention(self, q, k, v, q_time, k_time, kv_len, heads, rotate_value):
        """q [B, Lq, h·dh], k/v [B, Lk, h·dh]; times [B, L] ; kv_len [B]."""
        kw = self.kw
        dh = kw["dim_head"]
        B, Lq, _ = q.shape
        Lk = k.shape[1]
        split = lambda x, L: x.view(B, L, heads, dh).transpose(1, 2)  # [B, h, L, dh]
        q, k, v = split(q, Lq), split(k, Lk), split(v, Lk)
        tq = rotary_angles(q_time, dh, kw["t_min"], kw["t_max"]).unsqueeze(1)  # [B, 1, Lq, F]
        tk = rotary_angles(k_time, dh, kw["t_min"], kw["t_max"]).unsqueeze(1)
        q = rotate(q, tq)
        k = rotate(k, tk)
        if rotate_value:
            v = rotate(v, tk)
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)  # [B, h, Lq, Lk]
        mask = torch.arange(Lk, device=q.device)[None, :] >= kv_len[:, None]  # [B, Lk]
        scores = scores.masked_fill(mask[:, None, None, :], float("-inf"))
        p = torch.softmax(scores, dim=-1)
        p = torch.nan_to_num(p, nan=0.0)  # kv_len = 0 rows
        o = p @ v
        if rotate_value:
            o = rotate(o, tq, sign=-1.0)
        return o.transpose(1, 2).reshape(B, Lq, heads * dh)

    def cross_attn(self, name, query, context, q_time, k_time, kv_len, rotate_value):
        kw = self.kw
        hd = kw["cross_heads"] * kw["dim_head"]
        q = self.m(f"{name}.to_q")(self.m(f"{name}.norm")(query))
        kv = self.m(f"{name}.to_kv")(self.m(f"{name}.norm_context")(context))
        k, v = kv[..., :hd], kv[..., hd:]
        return self.m(f"{name}.to_out")(self.attention(q, k, v, q_time, k_time, kv_len, kw["cross_heads"], rotate_value))

    def self_attn(self, i, z, t_lat, kv_len):
        kw = self.kw
        hd = kw["self_heads"] * kw["dim_head"]
        qkv = self.m(f"proc.{i}.atn.to_qkv")(self.m(f"proc.{i}.atn.norm")(z))
        q, k, v = qkv[..., :hd], qkv[..., hd:2 * hd], qkv[..., 2 * hd:]
        return self.m(f"proc.{i}.atn.to_out")(self.attention(q, k, v, t_lat, t_lat, kv_len, kw["self_heads"], True))

    def forward(self, b):
        kw = self.kw
        D = kw["dim"]
        B, N, _ = b["value"].shape
        value_emb = torch.zeros(B, N, D // 2, dtype=b["value"].dtype, device=b["value"].device)
        real = (b["unit"] != 0).to(value_emb.dtype)
        for mi, m in enumerate(self.modalities):
            mask = (b["modality"] == mi).to(value_emb.dtype) * real
            value_emb = value_emb + self.m(f"value_map.{m}")(b["value"]) * mask.unsqueeze(-1)
        unit_emb = self.unit_emb[b["unit"].long()]
        x = torch.cat([value_emb, unit_emb], dim=-1)
        L = b["latent_time"].shape[0]
        M = kw["num_latents"]
        z = self.latent_emb[torch.arange(L, device=x.device) % M].unsqueeze(0).expand(B, L, D)
        y = self.session_emb[b["query_session"].long()]
        t_lat = b["latent_time"].unsqueeze(0).expand(B, L)
        lat_len = torch.full((B,), L, dtype=torch.long, device=x.device)
        z = z + self.cross_attn("enc_atn", z, x, t_lat, b["time"], b["kv_len"].long(), True)
        z = z + self.ffn("enc_ffn", z)
        for i in range(kw["depth"]):
            z = z + self.self_attn(i, z, t_lat, lat_len)
            z = z + self.ffn(f"proc.{i}.ffn", z)
        y = y + self.cross_attn("dec_atn", y, z, b["query_time"], t_lat, lat_len, False)
        y = y + self.ffn("dec_ffn", y)
        return self.m("readout")(y)


def weighted_ce(logits, label, weight):
    C = logits.shape[-1]
    z = logits.reshape(-1, C)
    y = label.reshape(-1).long()
    w = weight.reshape(-1)
    valid = (y >= 0) & (y < C)
    nll = torch.logsumexp(z, dim=-1) - z.gather(1, y.clamp(0, C - 1).unsqueeze(1)).squeeze(1)
    nll = torch.where(valid, nll, torch.zeros_like(nll))
    return (w * nll).sum() / w.sum()


def load_dump(path):
    tensors, meta = read_safetensors(path)
    kw = json.loads(meta["kwargs"])
    modalities = json.loads(meta["modalities"])
    return tensors, meta, kw, modalities


def batch_tensors(t, dtype, device):
    conv = lambda n, dt: torch.tensor(t[n], dtype=dt, device=device)
    return {
        "value": conv("batch.value", dtype), "unit": conv("batch.unit", torch.int64),
        "modality": conv("batch.modality", torch.int64), "time": conv("batch.time", dtype),
        "kv_len": conv("batch.kv_len", torch.int64), "latent_time": conv("batch.latent_time", dtype),
        "query_session": conv("batch.query_session", torch.int64), "query_time": conv("batch.query_time", dtype),
        "label": conv("batch.label", torch.int64), "weight": conv("batch.weight", dtype),
    }


def rel_err(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    scale = np.max(np.abs(want)) if want.size else 0.0
    if scale == 0.0:
        return float(np.max(np.abs(got))) if got.size else 0.0
    return float(np.max(np.abs(got - want)) / scale)


def compare(args):
    t, meta, kw, modalities = load_dump(args.dump)
    weights = {k: v for k, v in t.items() if not k.startswith(("batch.", "out.", "grad."))}
    results = {}
    outputs = {}
    for dtype in (torch.float64, torch.float32):
        device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        model = PoyoTorch(weights, kw, modalities, dtype, device)
        b = batch_tensors(t, dtype, device)
        logits = model(b)
        loss = weighted_ce(logits, b["label"], b["weight"])
        loss.backward()
        name = "f64" if dtype == torch.float64 else "f32"
        outputs[name] = {"out.logits": logits.detach().cpu().double().numpy(),
                         **{f"grad.{n}": p.grad.detach().cpu().double().numpy()
                            for n, p in model.named_contract_parameters().items()}}
        errs = {"out.logits": rel_err(t["out.logits"], logits.detach().cpu().numpy()),
                "out.loss": rel_err(t["out.loss"], loss.detach().cpu().numpy())}
        for pname, p in model.named_contract_parameters().items():
            errs[f"grad.{pname}"] = rel_err(t[f"grad.{pname}"], p.grad.detach().cpu().numpy())
        results[name] = errs
    # Baseline: how far PyTorch's own f32 run is from its f64 run (the scale of f32 rounding here).
    results["torch_f32_vs_f64"] = {k: rel_err(outputs["f32"][k], outputs["f64"][k]) for k in outputs["f64"]}
    base = max(results["torch_f32_vs_f64"].items(), key=lambda kv: kv[1])
    worst = max(results["f32"].items(), key=lambda kv: kv[1])
    print(f"device: {'cuda ' + torch.cuda.get_device_name() if torch.cuda.is_available() and not args.cpu else 'cpu'}; "
          f"torch {torch.__version__}; tensors compared: {len(results['f64'])}")
    print(f"{'tensor':48s} {'rel err vs f64':>15s} {'rel err vs f32':>15s}")
    for k in results["f64"]:
        if k.startswith("out.") or args.verbose or results["f64"][k] > args.tol:
            print(f"{k:48s} {results['f64'][k]:15.3e} {results['f32'][k]:15.3e}")
    w64 = max(results["f64"].items(), key=lambda kv: kv[1])
    print(f"max relative error vs torch f64: {w64[1]:.3e} ({w64[0]})")
    print(f"(baseline: torch f32 vs torch f64: {base[1]:.3e} ({base[0]}))")
    print(f"max relative error vs torch f32: {worst[1]:.3e} ({worst[0]})")
    ok = worst[1] <= args.tol
    print("PASS" if ok else "FAIL", f"(f32 vs f32, tolerance {args.tol})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tolerance": args.tol, "results": results, "pass": ok}, f, indent=1)
    return 0 if ok else 1


# ----------------------------------------------------------------------------------------------------
# Optimizers of the contract (for throughput runs)
# ----------------------------------------------------------------------------------------------------

class SparseLamb(torch.optim.Optimizer):
    """The contract's sparse_lamb: no bias correction, u = m/(√v+eps) + wd·p, r = clamp(‖p‖,0,10)/‖u‖;
    sparse tensors skip rows with an all-zero gradient (their m, v reset to 0)."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, sparse=False))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                st = self.state[p]
                if not st:
                    st["m"] = torch.zeros_like(p)
                    st["v"] = torch.zeros_like(p)
                m, v = st["m"], st["v"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                u = m / (v.sqrt() + group["eps"]) + group["weight_decay"] * p
                if group["sparse"]:
                    touched = (g != 0).any(dim=-1, keepdim=True)
                    m.mul_(touched)
                    v.mul_(touched)
                    u = torch.where(touched, u, group["weight_decay"] * p)
                pn, un = p.norm().clamp(0, 10), u.norm()
                r = torch.where((pn > 0) & (un > 0), pn / un, torch.ones_like(pn))
                if group["sparse"]:
                    p.sub_(group["lr"] * r * u * touched)
                else:
                    p.sub_(group["lr"] * r * u)


def training_setup(path, batch, optimizer, device):
    """The model, the contract's optimizer and a batch of `batch` samples (the dump's batch repeated), as
    `throughput` and `ddp` train them."""
    t, meta, kw, modalities = load_dump(path)
    weights = {k: v for k, v in t.items() if not k.startswith(("batch.", "out.", "grad."))}
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    b = batch_tensors(t, torch.float32, device)
    B0 = b["value"].shape[0]
    reps = max(1, math.ceil(batch / B0))
    for k in ("value", "unit", "modality", "time", "kv_len", "query_session", "query_time", "label", "weight"):
        b[k] = b[k].repeat(reps, *([1] * (b[k].dim() - 1)))[:batch]
    model = PoyoTorch(weights, kw, modalities, torch.float32, device)
    model.train()
    params = model.named_contract_parameters()
    sparse = [p for n, p in params.items() if n in ("unit_emb.weight", "session_emb.weight")]
    dense = [p for n, p in params.items() if n not in ("unit_emb.weight", "session_emb.weight")]
    if optimizer == "adamw":
        opt = torch.optim.AdamW(list(params.values()), lr=1e-4, weight_decay=1e-4)
    else:
        opt = SparseLamb([{"params": dense}, {"params": sparse, "sparse": True}], lr=1e-4, weight_decay=1e-4)
    return model, opt, b, kw


def timed_steps(step_fn, opt, b, warmup, steps, barrier=lambda: None):
    """Seconds for `steps` training steps after `warmup` untimed ones (CUDA synchronized where the batch is on a
    GPU, then `barrier`, at both ends)."""
    sync = torch.cuda.synchronize if b["value"].is_cuda else (lambda: None)

    def one_step():
        loss = weighted_ce(step_fn(b), b["label"], b["weight"])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        one_step()
    sync()
    barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        one_step()
    sync()
    barrier()
    return time.perf_counter() - t0


def throughput(args):
    results = {}
    kw = None
    for mode in (["eager"] + ([] if args.no_compile else ["compile"])):
        model, opt, b, kw = training_setup(args.dump, args.batch, args.optimizer, "cuda")
        step_fn = torch.compile(model) if mode == "compile" else model
        dt = timed_steps(step_fn, opt, b, args.warmup, args.steps)
        sps = args.batch * args.steps / dt
        results[mode] = {"samples_per_s": sps, "ms_per_step": 1000 * dt / args.steps}
        print(f"pytorch fp32 {mode:8s} (TF32 off): {sps:10.1f} samples/s  {1000 * dt / args.steps:8.2f} ms/step "
              f"(batch {args.batch}, {args.steps} steps after {args.warmup} warm-up)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"batch": args.batch, "results": results, "kwargs": kw,
                       "device": torch.cuda.get_device_name(), "torch": torch.__version__}, f, indent=1)
    return 0


def ddp_rank(rank, world, port, backend, args, queue):
    """One rank of a data-parallel run: its own GPU, DistributedDataParallel over `backend` (world > 1)."""
    if args.cpu:
        device = "cpu"
        torch.set_num_threads(1)
    else:
        torch.cuda.set_device(rank)
        device = f"cuda:{rank}"
    barrier = lambda: None
    if world > 1:
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(port)
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        dist.init_process_group(backend, rank=rank, world_size=world)
        barrier = dist.barrier
    model, opt, b, _ = training_setup(args.dump, args.batch, args.optimizer, device)
    step_fn = model
    if world > 1:
        # static_graph: the same parameters take part every step (a modality absent from the batch leaves its
        # value map unused; DDP learns that from the first step instead of searching the graph every step).
        step_fn = torch.nn.parallel.DistributedDataParallel(model, device_ids=None if args.cpu else [rank],
                                                            bucket_cap_mb=args.bucket_mib, static_graph=True)
    if args.compile:
        step_fn = torch.compile(step_fn)
    dt = timed_steps(step_fn, opt, b, args.warmup, args.steps, barrier)
    if rank == 0:
        queue.put(dt)
    if world > 1:
        dist.destroy_process_group()


def ddp(args):
    """Data-parallel scaling of PyTorch on this host's GPUs, timed as Orion's bench_scaling.ts: samples/s of
    `--batch` per rank on 1 GPU (no DDP) and on `--ranks` GPUs per backend, and efficiency = samples/s at N ÷
    (N × the 1-GPU mean). Runs alternate 1 GPU and N GPUs `--rounds` times. `--cpu` runs the ranks on the CPU
    (gloo only: a smoke test of this harness on a machine without GPUs, not a measurement)."""
    def run(world, backend):
        dt = run_ranks(ddp_rank, world, (backend, args), timeout_s=1200)
        return world * args.batch * args.steps / dt

    backends = args.backends.split(",")
    one, many = [], {b: [] for b in backends}
    for _ in range(args.rounds):
        one.append(run(1, "none"))
        print(f"pytorch ddp 1 GPU: {one[-1]:10.1f} samples/s", file=sys.stderr)
        for backend in backends:
            many[backend].append(run(args.ranks, backend))
            print(f"pytorch ddp {args.ranks} GPUs {backend}: {many[backend][-1]:10.1f} samples/s", file=sys.stderr)
    base = sum(one) / len(one)
    report = {"batchPerRank": args.batch, "steps": args.steps, "warmup": args.warmup, "compile": args.compile,
              "bucketCapMb": args.bucket_mib, "ranks": args.ranks, "oneGpu": one,
              "backends": {b: {"samplesPerS": v, "mean": sum(v) / len(v),
                               "efficiency": sum(v) / len(v) / (args.ranks * base)} for b, v in many.items()},
              "device": "cpu" if args.cpu else torch.cuda.get_device_name(), "torch": torch.__version__}
    for b, r in report["backends"].items():
        print(f"pytorch ddp {args.ranks} GPUs {b}: mean {r['mean']:.1f} samples/s, efficiency "
              f"{100 * r['efficiency']:.1f} % of {args.ranks} x {base:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare")
    c.add_argument("dump")
    c.add_argument("--tol", type=float, default=1e-4)
    c.add_argument("--json")
    c.add_argument("--cpu", action="store_true")
    c.add_argument("--verbose", action="store_true")
    tp = sub.add_parser("throughput")
    tp.add_argument("dump")
    tp.add_argument("--steps", type=int, default=50)
    tp.add_argument("--warmup", type=int, default=10)
    tp.add_argument("--batch", type=int, default=32)
    tp.add_argument("--optimizer", default="sparse_lamb")
    tp.add_argument("--no-compile", action="store_true")
    tp.add_argument("--json")
    dp = sub.add_parser("ddp")
    dp.add_argument("dump")
    dp.add_argument("--ranks", type=int, default=2)
    dp.add_argument("--backends", default="nccl,gloo")
    dp.add_argument("--steps", type=int, default=50)
    dp.add_argument("--warmup", type=int, default=10)
    dp.add_argument("--batch", type=int, default=32)
    dp.add_argument("--optimizer", default="sparse_lamb")
    dp.add_argument("--bucket-mib", type=float, default=25.0)
    dp.add_argument("--rounds", type=int, default=2)
    dp.add_argument("--compile", action="store_true")
    dp.add_argument("--cpu", action="store_true")
    dp.add_argument("--json")
    args = ap.parse_args()
    return {"compare": compare, "throughput": throughput, "ddp": ddp}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
