/**
 * Small helpers shared by op wrappers: grid sizing, shape checks, broadcasting arithmetic.
 *
 * @module
 */
import type { KernelSpec } from "../gpu/kernel.ts";
import { fmtShape, type Tensor } from "../tensor/tensor.ts";

/**
 * A memo of generated kernel specs by key: the same key always returns the same spec object (so the
 * pipeline cache compiles each variant once).
 *
 * @example
 * ```ts ignore
 * const cachedSpec = kernelSpecCache();
 * const spec = cachedSpec(`softmax|${dimHead}`, () => ({ name: "softmax", code, bindings, family }));
 * ```
 */
export function kernelSpecCache(): (key: string, make: () => KernelSpec) => KernelSpec {
  const specs = new Map<string, KernelSpec>();
  return (key, make) => {
    let s = specs.get(key);
    if (!s) specs.set(key, s = make());
    return s;
  };
}

/** Workgroups for `n` elements at `perGroup` elements per workgroup, folded into (x, y) ≤ 65535. */
export function grid1d(n: number, perGroup = 256): [number, number, number] {
  const groups = Math.max(1, Math.ceil(n / perGroup));
  if (groups <= 65535) return [groups, 1, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y, 1];
}

/** Throws unless `t` has exactly `rank` dimensions. */
export function expectRank(op: string, what: string, t: Tensor, rank: number): void {
  if (t.rank !== rank) {
    throw new RangeError(
      `Cannot run ${op} as ${what} must have rank ${rank}: current shape is ${fmtShape(t.shape)}`,
    );
  }
}

/** Throws unless `t` has the given dtype. */
export function expectDtype(op: string, what: string, t: Tensor, dtype: string): void {
  if (t.dtype !== dtype) {
    throw new TypeError(`Cannot run ${op} as ${what} must be ${dtype}: current dtype is ${t.dtype}`);
  }
}

/** Throws unless two shapes are equal. */
export function expectSameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.rank !== b.rank || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new RangeError(
      `Cannot run ${op} on shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)}: they must be equal`,
    );
  }
}

/** NumPy broadcast of two shapes, or an error naming both. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new RangeError(
        `Cannot broadcast ${fmtShape(a)} with ${fmtShape(b)} in ${op}: dimension ${i} differs`,
      );
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Right-aligns `shape` to rank 4 with leading 1s. */
export function pad4(shape: readonly number[]): [number, number, number, number] {
  if (shape.length > 4) throw new RangeError(`Cannot run an elementwise kernel on rank ${shape.length} > 4`);
  const s = [1, 1, 1, 1, ...shape].slice(-4);
  return [s[0], s[1], s[2], s[3]];
}

/** Strides of `t` over the (rank-4 padded) output shape: 0 where `t` broadcasts. */
export function broadcastStrides(t: Tensor, outShape: readonly number[]): [number, number, number, number] {
  const rank = outShape.length;
  const strides: number[] = [];
  for (let i = 0; i < rank; i++) {
    const ti = t.rank - rank + i;
    if (ti < 0 || t.shape[ti] === 1) strides.push(0);
    else strides.push(t.strides[ti]);
  }
  const s = [0, 0, 0, 0, ...strides].slice(-4);
  return [s[0], s[1], s[2], s[3]];
}
