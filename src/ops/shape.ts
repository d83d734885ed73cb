/**
 * Shape ops with gradients: reshape, transpose (permute), slice along an axis, split, concat.
 * Kernel: `shaders/shape.wgsl` (block copy along one axis) and the strided copy of `elementwise.wgsl`.
 *
 * @module
 */
import src from "../../shaders/shape.wgsl" with { type: "text" };
import { Params } from "../gpu/kernel.ts";
import type { KernelSpec } from "../gpu/kernel.ts";
import { record } from "../tensor/autograd.ts";
import { fmtShape, Tensor } from "../tensor/tensor.ts";
import { contiguous } from "./elementwise.ts";
import { expectDtype, grid1d } from "./launch.ts";

const BLOCK_COPY: KernelSpec = {
  name: "shape.block_copy",
  code: src,
  bindings: ["uniform", "read", "rw"],
  family: "elementwise",
};

function normAxis(op: string, rank: number, axis: number): number {
  const a = axis < 0 ? rank + axis : axis;
  if (a < 0 || a >= rank) throw new RangeError(`Cannot ${op} along axis ${axis} of a rank-${rank} tensor`);
  return a;
}

/** Records dst[o, dstStart + k, i] = src[o, srcStart + k, i] for k < count (no tape node). */
function blockCopy(
  srcT: Tensor,
  dst: Tensor,
  axis: number,
  srcStart: number,
  dstStart: number,
  count: number,
): void {
  const outer = srcT.shape.slice(0, axis).reduce((p, d) => p * d, 1);
  const inner = srcT.shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  const n = outer * count * inner;
  const u = srcT.gpu.uniform(
    new Params().u32(outer).u32(inner).u32(count).u32(srcT.shape[axis]).u32(dst.shape[axis]).u32(srcStart)
      .u32(dstStart).u32(n).bytes(),
  );
  srcT.gpu.dispatch(BLOCK_COPY, [u, srcT.binding(), dst.binding()], grid1d(n));
}

/**
 * Reshape (a view when contiguous, else a copy), keeping the gradient link.
 *
 * @example
 * ```ts ignore
 * const heads = reshape(x, [B, L, H, dh]);
 * ```
 */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const c = contiguous(x);
  const out = c.viewAs(shape);
  return record("reshape", [c], out, (g) => [contiguous(g).viewAs(c.shape)]);
}

/** Permutes axes (materialized row-major). */
export function transpose(x: Tensor, axes: readonly number[]): Tensor {
  if (axes.length !== x.rank || [...axes].sort().some((a, i) => a !== i)) {
    throw new RangeError(`Cannot transpose ${fmtShape(x.shape)} with axes [${axes}]: not a permutation`);
  }
  const out = contiguous(x.permutedView(axes));
  const inverse = axes.map((_, i) => axes.indexOf(i));
  return record("transpose", [x], out === x ? x : out, (g) => [transpose(g, inverse)]);
}

/** `x[..., start:start+length, ...]` along `axis`. */
export function slice(x: Tensor, axis: number, start: number, length: number): Tensor {
  expectDtype("slice", "x", x, "f32");
  const a = normAxis("slice", x.rank, axis);
  if (start < 0 || length < 0 || start + length > x.shape[a]) {
    throw new RangeError(`Cannot slice [${start}, ${start + length}) from axis ${a} of ${fmtShape(x.shape)}`);
  }
  const xc = contiguous(x);
  const out = Tensor.empty(x.gpu, x.shape.map((d, i) => (i === a ? length : d)));
  blockCopy(xc, out, a, start, 0, length);
  return record("slice", [x], out, (g) => {
    const gx = Tensor.zeros(x.gpu, x.shape);
    blockCopy(contiguous(g), gx, a, 0, start, length);
    return [gx];
  });
}

/** Splits `x` along `axis` into pieces of the given sizes. */
export function split(x: Tensor, axis: number, sizes: readonly number[]): Tensor[] {
  const a = normAxis("split", x.rank, axis);
  if (sizes.reduce((p, d) => p + d, 0) !== x.shape[a]) {
    throw new RangeError(
      `Cannot split axis ${a} of ${fmtShape(x.shape)} into sizes [${sizes}]: they must sum to ${x.shape[a]}`,
    );
  }
  let start = 0;
  return sizes.map((len) => {
    const s = slice(x, a, start, len);
    start += len;
    return s;
  });
}

/**
 * Concatenates tensors along `axis` (all other dimensions equal).
 *
 * @example
 * ```ts ignore
 * const tokens = concat([valueEmb, unitEmb], -1); // [T, D/2] ++ [T, D/2] → [T, D]
 * ```
 */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new RangeError("Cannot concatenate an empty list of tensors");
  const first = xs[0];
  const a = normAxis("concat", first.rank, axis);
  for (const t of xs) {
    expectDtype("concat", "every input", t, "f32");
    if (t.rank !== first.rank || t.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new RangeError(
        `Cannot concatenate ${fmtShape(t.shape)} with ${fmtShape(first.shape)} along axis ${a}`,
      );
    }
  }
  const total = xs.reduce((p, t) => p + t.shape[a], 0);
  const out = Tensor.empty(first.gpu, first.shape.map((d, i) => (i === a ? total : d)));
  let start = 0;
  const starts: number[] = [];
  for (const t of xs) {
    starts.push(start);
    blockCopy(contiguous(t), out, a, 0, start, t.shape[a]);
    start += t.shape[a];
  }
  return record("concat", xs, out, (g) => {
    const gc = contiguous(g);
    return xs.map((t, i) => {
      if (!t.requiresGrad) return null;
      const gi = Tensor.empty(t.gpu, t.shape);
      blockCopy(gc, gi, a, starts[i], 0, t.shape[a]);
      return gi;
    });
  });
}
