/**
 * Deterministic reductions: sum/mean over an axis, and `sumTo` (the gradient of broadcasting).
 * Kernel: `shaders/reduce.wgsl`, a fixed chunked tree (chunk 256) so the summation order depends only on
 * the reduced length.
 *
 * @module
 */
import src from "../../shaders/reduce.wgsl" with { type: "text" };
import { Params } from "../gpu/kernel.ts";
import type { KernelSpec } from "../gpu/kernel.ts";
import { record } from "../tensor/autograd.ts";
import { fmtShape, Tensor } from "../tensor/tensor.ts";
import { broadcastTo, contiguous, scale } from "./elementwise.ts";
import { expectDtype, grid1d } from "./launch.ts";

const REDUCE: KernelSpec = {
  name: "reduce.sum_axis",
  code: src,
  bindings: ["uniform", "read", "rw"],
  family: "elementwise",
};

/** Fixed chunk length of the reduction tree. */
export const REDUCE_CHUNK = 256;

/** Sums x viewed as [outer, r, inner] over r; returns [outer, inner] (no tape node). */
export function sumMiddle(x: Tensor, outer: number, r: number, inner: number): Tensor {
  expectDtype("sum", "x", x, "f32");
  let cur = contiguous(x);
  let len = r;
  do {
    const nChunks = Math.ceil(len / REDUCE_CHUNK);
    const out = Tensor.empty(x.gpu, [outer, nChunks, inner]);
    const nOut = outer * nChunks * inner;
    const u = x.gpu.uniform(
      new Params().u32(outer).u32(len).u32(inner).u32(REDUCE_CHUNK).u32(nChunks).u32(nOut).bytes(),
    );
    x.gpu.dispatch(REDUCE, [u, cur.binding(), out.binding()], grid1d(nOut));
    cur = out;
    len = nChunks;
  } while (len > 1);
  return cur.viewAs([outer, inner]);
}

function normAxis(x: Tensor, axis: number): number {
  const a = axis < 0 ? x.rank + axis : axis;
  if (a < 0 || a >= x.rank) {
    throw new RangeError(`Cannot reduce over axis ${axis} of a tensor of shape ${fmtShape(x.shape)}`);
  }
  return a;
}

/**
 * Sum over one axis (`keepDim` keeps it as size 1).
 *
 * @example
 * ```ts ignore
 * const rowSums = sum(x, -1); // [R, C] → [R]
 * ```
 */
export function sum(x: Tensor, axis: number, keepDim = false): Tensor {
  const a = normAxis(x, axis);
  const outer = x.shape.slice(0, a).reduce((p, d) => p * d, 1);
  const inner = x.shape.slice(a + 1).reduce((p, d) => p * d, 1);
  const kept = x.shape.map((d, i) => (i === a ? 1 : d));
  const shape = keepDim ? kept : x.shape.filter((_, i) => i !== a);
  const out = sumMiddle(x, outer, x.shape[a], inner).viewAs(shape);
  return record("sum", [x], out, (g) => [broadcastTo(g.viewAs(kept), x.shape)]);
}

/** Mean over one axis. */
export function mean(x: Tensor, axis: number, keepDim = false): Tensor {
  const a = normAxis(x, axis);
  return scale(sum(x, a, keepDim), 1 / x.shape[a]);
}

/** Sum of every element, as a [1] tensor. */
export function sumAll(x: Tensor): Tensor {
  const out = sumMiddle(x, 1, x.size, 1).viewAs([1]);
  return record("sumAll", [x], out, (g) => [broadcastTo(g.viewAs(x.shape.map(() => 1)), x.shape)]);
}

/**
 * Sums `g` down to `shape` (undoes NumPy broadcasting): dimensions that `shape` lacks or has as 1 are
 * summed. Returns `g` itself when the shapes already match.
 */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (g.rank === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  let cur = contiguous(g);
  let curShape = [...g.shape];
  const offset = g.rank - shape.length;
  for (let i = 0; i < g.rank; i++) {
    const want = i < offset ? 1 : shape[i - offset];
    if (curShape[i] !== want) {
      if (want !== 1) throw new RangeError(`Cannot sum ${fmtShape(g.shape)} to ${fmtShape(shape)}`);
      const outer = curShape.slice(0, i).reduce((p, d) => p * d, 1);
      const inner = curShape.slice(i + 1).reduce((p, d) => p * d, 1);
      cur = sumMiddle(cur, outer, curShape[i], inner);
      curShape = curShape.map((d, j) => (j === i ? 1 : d));
    }
  }
  return cur.viewAs(shape);
}
