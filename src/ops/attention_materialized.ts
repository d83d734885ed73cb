/**
 * The materialized implementation of rotary attention (selected in src/ops/attention.ts, see
 * src/ops/attention_selection.ts): the score matrix is written out and every product runs through the
 * batched matmul kernel (`matmulInto`), so attention runs at close to the matmul rate.
 *
 * With q̃, k̃, ṽ the rotated head-major inputs [B·heads, L, dh] (attention.ts `prepareRole`):
 * - forward: S = q̃·k̃ᵀ [B·heads, Lq, Lk] (matmul); P = masked row softmax of S/√dh, in place
 *   (`shaders/attention_softmax.wgsl`); Õ = P·ṽ (matmul); O = Õ rotated by −t_q when `rotateValue`,
 *   written head by head into the packed output [B, Lq, heads·dh] (`shaders/attention_scatter.wgsl`).
 *   P is kept for the backward pass.
 * - backward, from dÕ and D = rowsum(dO∘O) (attention_row_dot.wgsl, shared with the flash path):
 *   dṽ = Pᵀ·dÕ, dP = dÕ·ṽᵀ, dS = P∘(dP − D)/√dh in place (`shaders/attention_softmax_backward.wgsl`),
 *   dq̃ = dS·k̃, dk̃ = dSᵀ·q̃ (all matmuls); each is rotated back by −t (ṽ only when `rotateValue`) and
 *   scattered into its column slice of the packed gradient tensor.
 *
 * Masked keys (n ≥ kvLen[b]) get P = 0 exactly, so they add nothing to Õ and get zero dk̃/dṽ; a batch entry
 * with kvLen = 0 has all-zero P rows, so its outputs and gradients are zero, as in the flash path.
 * Deterministic: the matmuls accumulate in a fixed order, the softmax reduces with a fixed tree, and no
 * kernel uses atomics.
 *
 * @module
 */
import softmaxSrc from "../../shaders/attention_softmax.wgsl" with { type: "text" };
import softmaxBackwardSrc from "../../shaders/attention_softmax_backward.wgsl" with { type: "text" };
import scatterSrc from "../../shaders/attention_scatter.wgsl" with { type: "text" };
import { Params } from "../gpu/kernel.ts";
import type { KernelSpec } from "../gpu/kernel.ts";
import { Tensor } from "../tensor/tensor.ts";
import { grid1d, kernelSpecCache } from "./launch.ts";
import { matmulInto } from "./matmul.ts";
import { fillTemplate, type RotaryConfig, rotaryWgsl, wgslF32 } from "./rotary.ts";

/** Everything the materialized kernels need to know about one attention call. */
export interface MaterializedAttention {
  batch: number;
  heads: number;
  lq: number;
  lk: number;
  dimHead: number;
  rotary: RotaryConfig;
  /** Valid keys per batch entry: [B] i32. */
  kvLen: Tensor;
}

/** A column slice of a packed row-major tensor [B, L, width] that a head-major buffer is written to. */
export interface PackedTarget {
  tensor: Tensor;
  /** vec4 column of head 0. */
  off4: number;
  /** Rotary table of the slice's times and its batch stride (rows; 0 for times shared by the batch). */
  table: Tensor;
  tBStride: number;
  /** Rotate by −t while writing (false: plain copy). */
  rotate: boolean;
}

const FAMILY = "attention";
const cachedSpec = kernelSpecCache();

function softmaxSpec(dimHead: number): KernelSpec {
  return cachedSpec(`softmax|${dimHead}`, () => ({
    name: `attention.softmax.dh${dimHead}`,
    code: fillTemplate("attention_softmax.wgsl", softmaxSrc, {
      SCALE_LOG2: wgslF32(Math.LOG2E / Math.sqrt(dimHead)),
    }),
    bindings: ["uniform", "read", "rw"],
    family: FAMILY,
  }));
}

function softmaxBackwardSpec(dimHead: number): KernelSpec {
  return cachedSpec(`softmax_backward|${dimHead}`, () => ({
    name: `attention.softmax_backward.dh${dimHead}`,
    code: fillTemplate("attention_softmax_backward.wgsl", softmaxBackwardSrc, {
      SCALE: wgslF32(1 / Math.sqrt(dimHead)),
    }),
    bindings: ["uniform", "read", "read", "rw"],
    family: FAMILY,
  }));
}

function scatterSpec(r: RotaryConfig): KernelSpec {
  return cachedSpec(`scatter|${r.dimHead}|${r.tMin}|${r.tMax}`, () => ({
    name: `attention.scatter.dh${r.dimHead}`,
    code: fillTemplate("attention_scatter.wgsl", scatterSrc, { D4: r.dimHead / 4, ROTARY: rotaryWgsl(r) }),
    bindings: ["uniform", "read", "read", "rw"],
    family: FAMILY,
  }));
}

/** A head-major [B, heads, L, dh] tensor viewed as the matmul batch [B·heads, L, dh]. */
function batched(a: MaterializedAttention, t: Tensor, len: number, width: number): Tensor {
  return t.viewAs([a.batch * a.heads, len, width]);
}

/** Writes head-major `src` [B, heads, L, dh] into a packed column slice, rotated by −t or copied. */
export function scatterHeads(a: MaterializedAttention, src: Tensor, to: PackedTarget): void {
  const gpu = src.gpu;
  const [, len] = to.tensor.shape;
  const count = a.batch * a.heads * len * (a.dimHead / 4);
  if (count === 0) return;
  const u = gpu.uniform(
    new Params().u32(count).u32(len).u32(a.heads).u32(to.tensor.shape[2] / 4).u32(to.off4).u32(to.tBStride)
      .u32(to.rotate ? 1 : 0).bytes(),
  );
  gpu.dispatch(
    scatterSpec(a.rotary),
    [u, src.binding(), to.table.binding(), to.tensor.binding()],
    grid1d(count),
  );
}

/**
 * Forward: writes the packed output through `out` (its tensor must be [B, Lq, ≥ heads·dh]) and returns P
 * [B·heads, Lq, Lk] for the backward pass.
 */
export function materializedForward(
  a: MaterializedAttention,
  qr: Tensor,
  kr: Tensor,
  vr: Tensor,
  out: PackedTarget,
): Tensor {
  const gpu = qr.gpu;
  const bh = a.batch * a.heads;
  const probs = Tensor.empty(gpu, [bh, a.lq, a.lk]);
  if (bh === 0 || a.lq === 0) return probs;
  if (a.lk === 0) {
    gpu.clear(out.tensor.binding()); // no keys at all: every output row is zero
    return probs;
  }
  const dh = a.dimHead;
  matmulInto(probs, batched(a, qr, a.lq, dh), batched(a, kr, a.lk, dh), { transB: true, family: FAMILY });
  const rows = bh * a.lq;
  const u = gpu.uniform(new Params().u32(rows).u32(a.lk).u32(a.heads * a.lq).bytes());
  gpu.dispatch(softmaxSpec(dh), [u, a.kvLen.binding(), probs.binding()], grid1d(rows, 1));
  scatterProduct(a, a.lq, probs, batched(a, vr, a.lk, dh), {}, out);
  return probs;
}

/** `lhs · rhs` ([B·heads, rows, dh], products filed under attention) written to its packed target. */
function scatterProduct(
  a: MaterializedAttention,
  rows: number,
  lhs: Tensor,
  rhs: Tensor,
  options: { transA?: boolean },
  to: PackedTarget,
): void {
  const product = Tensor.empty(lhs.gpu, [a.batch * a.heads, rows, a.dimHead]);
  matmulInto(product, lhs, rhs, { ...options, family: FAMILY });
  scatterHeads(a, product, to);
  product.dispose();
}

/** The forward's saved state the backward reads. */
export interface MaterializedSaved {
  qr: Tensor;
  kr: Tensor;
  vr: Tensor;
  probs: Tensor;
}

/** Where the backward writes each gradient (absent: not wanted). */
export interface MaterializedGradients {
  q?: PackedTarget;
  k?: PackedTarget;
  v?: PackedTarget;
}

/**
 * Backward from dÕ (`gr`, head-major [B, heads, Lq, dh], the gradient of the output before its rotation)
 * and D = rowsum(dO∘O) (`dd`, [B, heads, Lq]): writes the wanted gradients into their packed targets.
 */
export function materializedBackward(
  a: MaterializedAttention,
  saved: MaterializedSaved,
  gr: Tensor,
  dd: Tensor,
  to: MaterializedGradients,
): void {
  const gpu = gr.gpu;
  const bh = a.batch * a.heads;
  const dh = a.dimHead;
  if (bh === 0) return;
  if (a.lq === 0 || a.lk === 0) {
    // No query rows or no keys: every gradient is zero.
    for (const t of new Set([to.q, to.k, to.v].filter((x) => x).map((x) => x!.tensor))) {
      gpu.clear(t.binding());
    }
    return;
  }
  const g3 = batched(a, gr, a.lq, dh);
  if (to.v) scatterProduct(a, a.lk, saved.probs, g3, { transA: true }, to.v);
  if (!to.q && !to.k) return;
  const ds = Tensor.empty(gpu, [bh, a.lq, a.lk]);
  matmulInto(ds, g3, batched(a, saved.vr, a.lk, dh), { transB: true, family: FAMILY });
  const count = bh * a.lq * a.lk;
  const u = gpu.uniform(new Params().u32(count).u32(a.lk).bytes());
  gpu.dispatch(
    softmaxBackwardSpec(dh),
    [u, saved.probs.binding(), dd.binding(), ds.binding()],
    grid1d(count),
  );
  if (to.q) scatterProduct(a, a.lq, ds, batched(a, saved.kr, a.lk, dh), {}, to.q);
  if (to.k) scatterProduct(a, a.lk, ds, batched(a, saved.qr, a.lq, dh), { transA: true }, to.k);
  ds.dispose();
}
