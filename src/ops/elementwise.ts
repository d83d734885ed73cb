/**
 * Elementwise ops with NumPy broadcasting: add, sub, mul, div, scale/affine, in-place accumulate, and
 * the strided copy behind `contiguous()`. Kernels: `shaders/elementwise.wgsl`.
 *
 * @module
 */
import src from "../../shaders/elementwise.wgsl" with { type: "text" };
import { Params } from "../gpu/kernel.ts";
import type { KernelSpec } from "../gpu/kernel.ts";
import { record } from "../tensor/autograd.ts";
import { numel, Tensor, type TensorOptions } from "../tensor/tensor.ts";
import type { Gpu } from "../gpu/gpu.ts";
import { broadcastShapes, broadcastStrides, expectDtype, expectSameShape, grid1d, pad4 } from "./launch.ts";
import { sumTo } from "./reduce.ts";

const bindings = ["uniform", "read", "read", "rw"] as const;
const kernel = (entryPoint: string): KernelSpec => ({
  name: `elementwise.${entryPoint}`,
  code: src,
  entryPoint,
  bindings,
  family: "elementwise",
});
const BINARY = kernel("binary");
const AFFINE = kernel("affine");
const ACCUMULATE = kernel("accumulate");
const STRIDED_COPY = kernel("strided_copy");
const FILL = kernel("fill");

const OPS = { add: 0, sub: 1, mul: 2, div: 3 } as const;
type BinaryOp = keyof typeof OPS;

function params(
  n: number,
  op: number,
  alpha: number,
  beta: number,
  shape: number[],
  sa: number[],
  sb: number[],
) {
  const p = new Params().u32(n).u32(op).f32(alpha).f32(beta);
  for (const v of [...shape, ...sa, ...sb]) p.u32(v);
  return p.u32(0).u32(0).bytes();
}

function launchBinary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  expectDtype(op, "a", a, "f32");
  expectDtype(op, "b", b, "f32");
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = Tensor.empty(a.gpu, shape);
  const n = numel(shape);
  const u = a.gpu.uniform(
    params(n, OPS[op], 0, 0, pad4(shape), broadcastStrides(a, shape), broadcastStrides(b, shape)),
  );
  a.gpu.dispatch(BINARY, [u, a.binding(), b.binding(), out.binding()], grid1d(n));
  return out;
}

/**
 * `a + b` with broadcasting.
 *
 * @example
 * ```ts ignore
 * const y = add(x, bias); // [R, C] + [C]
 * ```
 */
export function add(a: Tensor, b: Tensor): Tensor {
  const out = launchBinary("add", a, b);
  return record("add", [a, b], out, (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
}

/** `a - b` with broadcasting. */
export function sub(a: Tensor, b: Tensor): Tensor {
  const out = launchBinary("sub", a, b);
  return record("sub", [a, b], out, (g) => [sumTo(g, a.shape), sumTo(scale(g, -1), b.shape)]);
}

/** `a ⊙ b` with broadcasting. */
export function mul(a: Tensor, b: Tensor): Tensor {
  const out = launchBinary("mul", a, b);
  return record("mul", [a, b], out, (g) => [
    a.requiresGrad ? sumTo(launchBinary("mul", g, b), a.shape) : null,
    b.requiresGrad ? sumTo(launchBinary("mul", g, a), b.shape) : null,
  ]);
}

/** `a / b` with broadcasting. */
export function div(a: Tensor, b: Tensor): Tensor {
  const out = launchBinary("div", a, b);
  return record("div", [a, b], out, (g) => [
    a.requiresGrad ? sumTo(launchBinary("div", g, b), a.shape) : null,
    // d(a/b)/db = -a/b² = -out/b
    b.requiresGrad ? sumTo(scale(launchBinary("mul", g, launchBinary("div", out, b)), -1), b.shape) : null,
  ]);
}

/** `x · alpha + beta` elementwise. */
export function affine(x: Tensor, alpha: number, beta: number): Tensor {
  expectDtype("affine", "x", x, "f32");
  const c = contiguous(x);
  const out = Tensor.empty(x.gpu, x.shape);
  const u = x.gpu.uniform(params(x.size, 0, alpha, beta, [1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]));
  x.gpu.dispatch(AFFINE, [u, c.binding(), c.binding(), out.binding()], grid1d(x.size));
  return record("affine", [x], out, (g) => [affine(g, alpha, 0)]);
}

/** `x · s`. */
export function scale(x: Tensor, s: number): Tensor {
  return affine(x, s, 0);
}

/** A tensor of `value`s shaped like `t` (no gradient). */
export function fullLike(t: Tensor, value: number): Tensor {
  return full(t.gpu, t.shape, value);
}

/** A tensor of `value`s (no gradient). */
export function full(gpu: Gpu, shape: readonly number[], value: number, options: TensorOptions = {}): Tensor {
  const out = Tensor.empty(gpu, shape, options);
  const u = gpu.uniform(params(out.size, 0, 0, value, [1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]));
  gpu.dispatch(FILL, [u, gpu.scratch, gpu.scratch, out.binding()], grid1d(out.size));
  return out;
}

/** `target += g` in place (gradient accumulation); shapes must match. Not recorded on the tape. */
export function accumulateInto(target: Tensor, g: Tensor): void {
  expectSameShape("accumulateInto", target, g);
  const c = contiguous(g);
  const u = target.gpu.uniform(params(target.size, 0, 0, 0, [1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]));
  target.gpu.dispatch(ACCUMULATE, [u, c.binding(), c.binding(), target.binding()], grid1d(target.size));
}

/** A row-major copy of `x` (itself when already contiguous). Gradients pass through. */
export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous) return x;
  const out = stridedCopy(x, x.shape, broadcastStrides(x, x.shape));
  return record("contiguous", [x], out, (g) => [g]);
}

/** `x` broadcast (NumPy rules) to `shape` and materialized; the gradient sums back. */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  const target = broadcastShapes("broadcastTo", x.shape, shape);
  if (target.length !== shape.length || target.some((d, i) => d !== shape[i])) {
    throw new RangeError(`Cannot broadcast [${x.shape}] to [${shape}]`);
  }
  const out = stridedCopy(x, shape, broadcastStrides(x, shape));
  return record("broadcastTo", [x], out, (g) => [sumTo(g, x.shape)]);
}

function stridedCopy(x: Tensor, shape: readonly number[], strides: number[]): Tensor {
  expectDtype("stridedCopy", "x", x, "f32");
  const out = Tensor.empty(x.gpu, shape);
  const u = x.gpu.uniform(params(out.size, 0, 0, 0, pad4(shape), strides, [0, 0, 0, 0]));
  x.gpu.dispatch(STRIDED_COPY, [u, x.binding(), x.binding(), out.binding()], grid1d(out.size));
  return out;
}

/** A persistent copy of `x` (a parameter's first gradient). */
export function persistentCopy(x: Tensor): Tensor {
  const out = Tensor.zeros(x.gpu, x.shape, { persistent: true });
  accumulateInto(out, x);
  return out;
}
