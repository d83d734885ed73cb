/**
 * Benchmark of the rotary attention op at POYO's shapes: encoder cross-attention (B=32, heads=1,
 * Lq=512 latents, Lk=2560 tokens, dh=64) and latent self-attention (B=32, heads=8, L=512, dh=64).
 * Prints time and TFLOP/s for forward, backward and total, then one JSON line.
 *
 * Each shape runs with each implementation of `--impl` (default both): `flash` (the fused kernels of
 * src/ops/attention_codegen.ts) and `materialized` (score matrix and every product through the batched
 * matmul, src/ops/attention_materialized.ts); a last line per shape compares them.
 *
 * FLOPs are the usual nominal counts: forward 4·B·h·Lq·Lk·dh (two products), backward 2.5× that (five
 * products, as FlashAttention counts it). The deterministic flash backward actually runs seven products
 * (it recomputes the scores in both the dK/dV and the dQ kernel), the materialized backward four (dV, dP,
 * dQ, dK); "executed" TFLOP/s in the JSON counts those.
 *
 * Before timing, each shape is checked against the f64 reference on a batch of 2 with ragged kvLen
 * (same implementation, kernels and tiles), and fwd+bwd is run twice at full size to check the results
 * are bit-identical.
 *
 * Timing: at least 300 ms of warm-up calls, then 5 trials of --iters calls each; the median trial is
 * reported with the fastest and slowest (run-to-run spread on the H200 has been large: see the trials).
 *
 * Usage:
 *   deno run -A scripts/bench_attention.ts [--small] [--impl flash,materialized] [--shapes cross,self]
 *     [--iters N] [--tune] [--out file.json] [--no-check]
 *   --small   tiny shapes for the software adapter (CI machines)
 *   --impl    implementations to run, comma-separated (default flash,materialized)
 *   --shapes  shapes to run, comma-separated (default cross,self)
 *   --tune    also time every tile shape of the flash kernels that fits this device, kernel by kernel
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Gpu } from "../src/gpu/gpu.ts";
import { noGrad } from "../src/tensor/autograd.ts";
import { Scope, Tensor } from "../src/tensor/tensor.ts";
import "../src/ops/mod.ts";
import { rotaryAttention, type RotaryAttentionOptions } from "../src/ops/attention.ts";
import type { AttentionImplementation } from "../src/ops/attention_selection.ts";
import {
  type AttentionTiles,
  chooseAttentionTiles,
  tileProblem,
  type TileShape,
} from "../src/ops/attention_codegen.ts";
import { refAttentionBackward, refAttentionForward } from "../test/reference/attention.ts";

interface Shape {
  name: string;
  batch: number;
  heads: number;
  lq: number;
  lk: number;
  dimHead: number;
  self: boolean;
}

const T_MIN = 1e-4;
const T_MAX = 2.0627;

const args = parseArgs({
  args: Deno.args,
  options: {
    small: { type: "boolean", default: false },
    tune: { type: "boolean", default: false },
    "no-check": { type: "boolean", default: false },
    iters: { type: "string" },
    out: { type: "string" },
    impl: { type: "string", default: "flash,materialized" },
    shapes: { type: "string", default: "cross,self" },
  },
});

const IMPLS = args.values.impl.split(",").map((x) => x.trim()).filter((x) => x) as AttentionImplementation[];
for (const impl of IMPLS) {
  if (impl !== "flash" && impl !== "materialized") {
    throw new RangeError(`Cannot run --impl ${impl}: current value must list flash and/or materialized`);
  }
}

const ALL_SHAPES: Shape[] = args.values.small
  ? [
    { name: "cross", batch: 2, heads: 1, lq: 64, lk: 160, dimHead: 64, self: false },
    { name: "self", batch: 2, heads: 2, lq: 64, lk: 64, dimHead: 64, self: true },
  ]
  : [
    { name: "cross", batch: 32, heads: 1, lq: 512, lk: 2560, dimHead: 64, self: false },
    { name: "self", batch: 32, heads: 8, lq: 512, lk: 512, dimHead: 64, self: true },
  ];
const SHAPE_NAMES = args.values.shapes.split(",").map((x) => x.trim());
const SHAPES = ALL_SHAPES.filter((s) => SHAPE_NAMES.includes(s.name));
if (SHAPES.length !== SHAPE_NAMES.length) {
  throw new RangeError(
    `Cannot run --shapes ${args.values.shapes}: current value must list cross and/or self`,
  );
}

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomArray(n: number, random: () => number, lo: number, hi: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * random();
  return out;
}

interface Problem {
  host: { q: Float32Array; kv: Float32Array; qTime: Float32Array; kTime: Float32Array; kvLen: Int32Array };
  options: RotaryAttentionOptions;
  gradOut: Tensor;
}

function makeProblem(gpu: Gpu, s: Shape, batch: number, kvLen: number[], seed: number): Problem {
  const random = rng(seed);
  const w = s.heads * s.dimHead;
  const q = randomArray(batch * s.lq * (s.self ? 3 * w : w), random, -1, 1);
  const kv = s.self ? q : randomArray(batch * s.lk * 2 * w, random, -1, 1);
  const qTime = randomArray(batch * s.lq, random, 0, 4);
  const kTime = s.self ? qTime : randomArray(batch * s.lk, random, 0, 4);
  const lens = Int32Array.from(kvLen);
  const qT = Tensor.fromArray(gpu, q, [batch, s.lq, s.self ? 3 * w : w], { persistent: true });
  qT.requiresGrad = true;
  const kvT = s.self ? qT : Tensor.fromArray(gpu, kv, [batch, s.lk, 2 * w], { persistent: true });
  kvT.requiresGrad = true;
  const qTimeT = Tensor.fromArray(gpu, qTime, [batch, s.lq], { persistent: true });
  const kTimeT = s.self ? qTimeT : Tensor.fromArray(gpu, kTime, [batch, s.lk], { persistent: true });
  const kvLenT = Tensor.fromArray(gpu, lens, [batch], { persistent: true });
  const gradOut = Tensor.fromArray(gpu, randomArray(batch * s.lq * w, random, -1, 1), [batch, s.lq, w], {
    persistent: true,
  });
  return {
    host: { q, kv, qTime, kTime, kvLen: lens },
    gradOut,
    options: {
      q: { tensor: qT, colOffset: 0 },
      k: { tensor: kvT, colOffset: s.self ? w : 0 },
      v: { tensor: kvT, colOffset: s.self ? 2 * w : w },
      heads: s.heads,
      dimHead: s.dimHead,
      qTime: qTimeT,
      kTime: kTimeT,
      kvLen: kvLenT,
      rotateValue: true,
      tMin: T_MIN,
      tMax: T_MAX,
    },
  };
}

function disposeProblem(p: Problem): void {
  const o = p.options;
  for (const t of new Set([o.q.tensor, o.k.tensor, o.qTime, o.kTime, o.kvLen, p.gradOut])) t.dispose();
}

function forwardBackward(
  p: Problem,
  implementation: AttentionImplementation,
  tiles?: Partial<AttentionTiles>,
): { out: Tensor; grads: Tensor[] } {
  const out = rotaryAttention({ ...p.options, tiles, implementation });
  const grads = noGrad(() => out.node!.backward(p.gradOut)).filter((g): g is Tensor => g !== null);
  return { out, grads };
}

/** Max of |got − want| / (|want| + mean|want|). */
function scaledError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let mean = 0;
  for (let i = 0; i < want.length; i++) mean += Math.abs(want[i]);
  mean /= Math.max(1, want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + mean);
    if (!(e <= worst)) worst = e; // NaN sticks
  }
  return worst;
}

async function checkShape(
  gpu: Gpu,
  s: Shape,
  impl: AttentionImplementation,
): Promise<{ forward: number; dq: number; dkv: number }> {
  const ragged = [s.lk, Math.max(1, Math.floor(s.lk * 0.61))];
  const p = makeProblem(gpu, s, 2, ragged, 7);
  const scope = Scope.begin();
  try {
    const { out, grads } = forwardBackward(p, impl);
    const got = await out.toArray();
    const gotGrads = await Promise.all(grads.map((g) => g.toArray()));
    const w = s.heads * s.dimHead;
    const shape = {
      batch: 2,
      lq: s.lq,
      lk: s.lk,
      heads: s.heads,
      dimHead: s.dimHead,
      rotateValue: true,
      tMin: T_MIN,
      tMax: T_MAX,
      qWidth: s.self ? 3 * w : w,
      qOff: 0,
      kvWidth: s.self ? 3 * w : 2 * w,
      kOff: s.self ? w : 0,
      vOff: s.self ? 2 * w : w,
    };
    const h = p.host;
    const f64 = (a: Float32Array | Int32Array) => Float64Array.from(a);
    const args = [f64(h.q), f64(h.kv), f64(h.qTime), f64(h.kTime), f64(h.kvLen)] as const;
    const want = refAttentionForward(shape, ...args);
    const g = await p.gradOut.toArray();
    const { dq, dkv } = refAttentionBackward(shape, ...args, f64(g as Float32Array));
    if (s.self) {
      for (let i = 0; i < dq.length; i++) dq[i] += dkv[i];
      const e = scaledError(gotGrads[0], dq);
      return { forward: scaledError(got, want), dq: e, dkv: e };
    }
    return {
      forward: scaledError(got, want),
      dq: scaledError(gotGrads[0], dq),
      dkv: scaledError(gotGrads[1], dkv),
    };
  } finally {
    scope.end();
    disposeProblem(p);
  }
}

async function digest(arrays: ArrayBufferView[]): Promise<string> {
  const parts = arrays.map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const all = new Uint8Array(total);
  let o = 0;
  for (const p of parts) (all.set(p, o), o += p.length);
  const h = await crypto.subtle.digest("SHA-256", all);
  return [...new Uint8Array(h)].slice(0, 8).map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function determinism(
  p: Problem,
  impl: AttentionImplementation,
): Promise<{ identical: boolean; digest: string }> {
  const runs: string[] = [];
  for (let r = 0; r < 2; r++) {
    const scope = Scope.begin();
    try {
      const { out, grads } = forwardBackward(p, impl);
      runs.push(await digest([await out.toArray(), ...await Promise.all(grads.map((g) => g.toArray()))]));
    } finally {
      scope.end();
    }
  }
  return { identical: runs[0] === runs[1], digest: runs[0] };
}

interface Timing {
  /** Median milliseconds per call over the trials (GPU timestamps when available, else wall clock). */
  ms: number;
  /** Fastest and slowest trial (ms per call). */
  min: number;
  max: number;
  source: "gpu" | "wall";
}

/**
 * Times `body` (one submit per call): warm-up calls for at least 300 ms of wall time (so the GPU leaves
 * its idle clocks), then `trials` trials of `n` calls; reports the median trial and the spread.
 */
async function time(gpu: Gpu, n: number, body: () => void, trials = 5): Promise<Timing> {
  const once = () => {
    const scope = Scope.begin();
    try {
      body();
    } finally {
      scope.end();
    }
    gpu.submit();
  };
  const warm0 = performance.now();
  for (let i = 0; i < 3 || performance.now() - warm0 < 300; i++) {
    once();
    if (i % 8 === 7) await gpu.sync();
  }
  await gpu.sync();
  const results: number[] = [];
  let source: Timing["source"] = "gpu";
  for (let trial = 0; trial < trials; trial++) {
    gpu.setTiming(true);
    await gpu.takeTimings();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) once();
    await gpu.sync();
    const wall = (performance.now() - t0) / n;
    gpu.setTiming(false);
    const timings = await gpu.takeTimings();
    const ns = Object.values(timings.ns).reduce((a, b) => a + b, 0);
    if (timings.submits > 0 && ns > 0) results.push(ns / 1e6 / n);
    else (results.push(wall), source = "wall");
  }
  results.sort((a, b) => a - b);
  return {
    ms: results[Math.floor(results.length / 2)],
    min: results[0],
    max: results[results.length - 1],
    source,
  };
}

function flops(
  s: Shape,
  impl: AttentionImplementation,
): { forward: number; backward: number; backwardExecuted: number } {
  const f = 4 * s.batch * s.heads * s.lq * s.lk * s.dimHead;
  return { forward: f, backward: 2.5 * f, backwardExecuted: (impl === "flash" ? 3.5 : 2) * f };
}

async function timeShape(
  gpu: Gpu,
  s: Shape,
  p: Problem,
  n: number,
  implementation: AttentionImplementation,
  tiles?: Partial<AttentionTiles>,
) {
  const fwd = await time(gpu, n, () => void rotaryAttention({ ...p.options, tiles, implementation }));
  // Backward alone: one forward kept outside the timed calls, then the op's backward closure.
  const scope = Scope.begin();
  const out = rotaryAttention({ ...p.options, tiles, implementation });
  const bwd = await time(gpu, n, () => void noGrad(() => out.node!.backward(p.gradOut)));
  scope.end();
  const fl = flops(s, implementation);
  const tf = (f: number, ms: number) => f / (ms * 1e-3) / 1e12;
  return {
    shape: s,
    implementation,
    tiles: implementation === "flash" ? tiles ?? chooseAttentionTiles(s.dimHead, gpu.device.limits) : null,
    forwardMs: fwd.ms,
    backwardMs: bwd.ms,
    totalMs: fwd.ms + bwd.ms,
    forwardTflops: tf(fl.forward, fwd.ms),
    backwardTflops: tf(fl.backward, bwd.ms),
    totalTflops: tf(fl.forward + fl.backward, fwd.ms + bwd.ms),
    backwardExecutedTflops: tf(fl.backwardExecuted, bwd.ms),
    forwardSpreadMs: [fwd.min, fwd.max],
    backwardSpreadMs: [bwd.min, bwd.max],
    timing: fwd.source,
  };
}

/** Tile shapes worth trying for one kernel on this device. */
function candidates(kind: keyof AttentionTiles, dimHead: number, gpu: Gpu): TileShape[] {
  const out: TileShape[] = [];
  const forward = kind === "forward";
  const subgroups = forward && gpu.features.subgroups && gpu.description.subgroupMinSize >= 16;
  for (const tx of [4, 8, 16]) {
    for (const ty of [4, 8, 16, 32]) {
      for (const rows of forward ? [4, 8] : [1, 2, 4, 8]) {
        for (const cols of forward ? [4, 8] : [2, 4, 8]) {
          const t = { tx, ty, rows, cols };
          const threads = tx * ty;
          if (threads < 64 || threads > 256 || rows * cols < 8 || rows * cols > 32) continue;
          if (!tileProblem(kind, dimHead, t, gpu.device.limits, subgroups)) out.push(t);
        }
      }
    }
  }
  return out;
}

async function tune(gpu: Gpu, s: Shape, p: Problem, n: number) {
  const base = chooseAttentionTiles(s.dimHead, gpu.device.limits);
  const results: { kind: string; tiles: TileShape; ms: number }[] = [];
  for (const kind of ["forward", "backwardKv", "backwardQ"] as const) {
    for (const t of candidates(kind, s.dimHead, gpu)) {
      const tiles = { ...base, [kind]: t };
      let ms: number;
      if (kind === "forward") {
        const o = { ...p.options, tiles, implementation: "flash" } as const;
        ms = (await time(gpu, n, () => void rotaryAttention(o), 3)).ms;
      } else {
        // Isolate one backward kernel: in cross-attention only the tensor that wants a gradient gets one.
        const scope = Scope.begin();
        const q = p.options.q.tensor;
        const kv = p.options.k.tensor;
        const self = q === kv;
        if (!self) {
          q.requiresGrad = kind === "backwardQ";
          kv.requiresGrad = kind === "backwardKv";
        }
        const out = rotaryAttention({ ...p.options, tiles, implementation: "flash" });
        ms = (await time(gpu, n, () => void noGrad(() => out.node!.backward(p.gradOut)), 3)).ms;
        q.requiresGrad = kv.requiresGrad = true;
        scope.end();
      }
      results.push({ kind, tiles: t, ms });
      console.log(`  tune ${s.name} ${kind} ${JSON.stringify(t)}: ${ms.toFixed(3)} ms`);
    }
  }
  const best = (kind: string) => results.filter((r) => r.kind === kind).sort((a, b) => a.ms - b.ms)[0];
  return {
    forward: best("forward"),
    backwardKv: best("backwardKv"),
    backwardQ: best("backwardQ"),
    all: results,
  };
}

const gpu = await Gpu.create();
const d = gpu.description;
console.log(
  `adapter: ${d.description || d.vendor} (${d.architecture}); workgroup storage ` +
    `${gpu.device.limits.maxComputeWorkgroupStorageSize} B; subgroups ${gpu.features.subgroups} ` +
    `(${d.subgroupMinSize}..${d.subgroupMaxSize}); timestamps ${gpu.features.timestampQuery}`,
);
const iters = Number(args.values.iters ?? (args.values.small ? 3 : 20));
const report: Record<string, unknown>[] = [];
for (const s of SHAPES) {
  const tiles = chooseAttentionTiles(s.dimHead, gpu.device.limits);
  const scoreMiB = s.batch * s.heads * s.lq * s.lk * 4 / 2 ** 20;
  console.log(
    `${s.name}: B=${s.batch} heads=${s.heads} Lq=${s.lq} Lk=${s.lk} dh=${s.dimHead}; flash tiles ${
      JSON.stringify(tiles)
    }; score matrix ${scoreMiB.toFixed(1)} MiB`,
  );
  const p = makeProblem(gpu, s, s.batch, Array(s.batch).fill(s.lk), 1);
  const totals = new Map<AttentionImplementation, number>();
  for (const impl of IMPLS) {
    console.log(` ${impl}:`);
    const check = args.values["no-check"] ? null : await checkShape(gpu, s, impl);
    if (check) {
      console.log(
        `  check vs f64 reference (B=2, kvLen ragged): max scaled error fwd ${
          check.forward.toExponential(2)
        }, ` +
          `dq ${check.dq.toExponential(2)}, dkv ${check.dkv.toExponential(2)}`,
      );
    }
    const det = await determinism(p, impl);
    console.log(
      `  determinism (fwd+bwd twice): ${det.identical ? "bit-identical" : "DIFFERENT"} (${det.digest})`,
    );
    const r = await timeShape(gpu, s, p, iters, impl);
    totals.set(impl, r.totalMs);
    console.log(
      `  forward  ${r.forwardMs.toFixed(3)} ms  ${r.forwardTflops.toPrecision(3)} TFLOP/s ` +
        `(trials ${r.forwardSpreadMs.map((x) => x.toFixed(3)).join("..")} ms)\n` +
        `  backward ${r.backwardMs.toFixed(3)} ms  ${r.backwardTflops.toPrecision(3)} TFLOP/s ` +
        `(trials ${r.backwardSpreadMs.map((x) => x.toFixed(3)).join("..")} ms) ` +
        `(executed ${r.backwardExecutedTflops.toPrecision(3)})\n` +
        `  total    ${r.totalMs.toFixed(3)} ms  ${
          r.totalTflops.toPrecision(3)
        } TFLOP/s  [${r.timing} timing]`,
    );
    const tuned = args.values.tune && impl === "flash"
      ? await tune(gpu, s, p, Math.max(2, Math.floor(iters / 2)))
      : null;
    if (tuned) {
      console.log(
        `  best tiles: forward ${JSON.stringify(tuned.forward.tiles)} ${tuned.forward.ms.toFixed(3)} ms; ` +
          `backwardKv ${JSON.stringify(tuned.backwardKv.tiles)} ${tuned.backwardKv.ms.toFixed(3)} ms; ` +
          `backwardQ ${JSON.stringify(tuned.backwardQ.tiles)} ${tuned.backwardQ.ms.toFixed(3)} ms`,
      );
    }
    report.push({ ...r, check, determinism: det, tune: tuned });
  }
  const flash = totals.get("flash");
  const mat = totals.get("materialized");
  if (flash !== undefined && mat !== undefined) {
    console.log(
      `  fwd+bwd: flash ${flash.toFixed(3)} ms, materialized ${mat.toFixed(3)} ms ` +
        `(materialized runs at ${(flash / mat).toFixed(2)}× the speed of flash)`,
    );
  }
  disposeProblem(p);
}
const json = JSON.stringify({
  bench: "attention",
  adapter: gpu.description.description,
  deno: gpu.description.deno,
  results: report,
});
if (args.values.out) await Deno.writeTextFile(args.values.out, json + "\n");
console.log(json);
gpu.destroy();
