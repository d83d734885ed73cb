/**
 * GELU (exact erf form) and GEGLU (`a ⊙ gelu(g)` for `[a | g]` split along the last axis), as used by
 * POYO's feed-forward blocks. Kernels: `shaders/gelu.wgsl`.
 *
 * @module
 */
import src from "../../shaders/gelu.wgsl" with { type: "text" };
import { Params } from "../gpu/kernel.ts";
import type { KernelSpec } from "../gpu/kernel.ts";
import { record } from "../tensor/autograd.ts";
import { fmtShape, Tensor } from "../tensor/tensor.ts";
import { contiguous } from "./elementwise.ts";
import { expectDtype, grid1d } from "./launch.ts";

const spec = (entryPoint: string): KernelSpec => ({
  name: `gelu.${entryPoint}`,
  code: src,
  entryPoint,
  bindings: ["uniform", "read", "read", "rw"],
  family: "elementwise",
});
const GELU_FORWARD = spec("gelu_forward");
const GELU_BACKWARD = spec("gelu_backward");
const GEGLU_FORWARD = spec("geglu_forward");
const GEGLU_BACKWARD = spec("geglu_backward");

/**
 * `x · Φ(x)` with the exact Gaussian CDF.
 *
 * @example
 * ```ts ignore
 * const y = gelu(x);
 * ```
 */
export function gelu(x: Tensor): Tensor {
  expectDtype("gelu", "x", x, "f32");
  const gpu = x.gpu;
  const xc = contiguous(x);
  const y = Tensor.empty(gpu, x.shape);
  const u = gpu.uniform(new Params().u32(x.size).u32(0).bytes());
  gpu.dispatch(GELU_FORWARD, [u, xc.binding(), gpu.scratch, y.binding()], grid1d(x.size));
  return record("gelu", [x], y, (dy) => {
    const dx = Tensor.empty(gpu, x.shape);
    gpu.dispatch(GELU_BACKWARD, [u, xc.binding(), contiguous(dy).binding(), dx.binding()], grid1d(x.size));
    return [dx];
  });
}

/**
 * GEGLU: splits the last axis of `h` (width 2F) into `[a | g]` and returns `a ⊙ gelu(g)` (width F).
 *
 * @example
 * ```ts ignore
 * const y = geglu(linear(x, w1, b1)); // [R, 8D] → [R, 4D]
 * ```
 */
export function geglu(h: Tensor): Tensor {
  expectDtype("geglu", "h", h, "f32");
  const w = h.shape[h.rank - 1];
  if (w % 2 !== 0) {
    throw new RangeError(
      `Cannot split the last axis of ${fmtShape(h.shape)} for GEGLU: its width must be even`,
    );
  }
  const gpu = h.gpu;
  const f = w / 2;
  const hc = contiguous(h);
  const n = h.size / 2;
  const y = Tensor.empty(gpu, [...h.shape.slice(0, -1), f]);
  const u = gpu.uniform(new Params().u32(n).u32(f).bytes());
  gpu.dispatch(GEGLU_FORWARD, [u, hc.binding(), gpu.scratch, y.binding()], grid1d(n));
  return record("geglu", [h], y, (dy) => {
    const dh = Tensor.empty(gpu, h.shape);
    gpu.dispatch(GEGLU_BACKWARD, [u, hc.binding(), contiguous(dy).binding(), dh.binding()], grid1d(n));
    return [dh];
  });
}
