/**
 * Softmax over the last axis. Kernels: `shaders/softmax.wgsl`.
 *
 * @module
 */
import src from "../../shaders/softmax.wgsl" with { type: "text" };
import { Params } from "../gpu/kernel.ts";
import type { KernelSpec } from "../gpu/kernel.ts";
import { record } from "../tensor/autograd.ts";
import { Tensor } from "../tensor/tensor.ts";
import { contiguous } from "./elementwise.ts";
import { expectDtype, grid1d } from "./launch.ts";

const spec = (entryPoint: string): KernelSpec => ({
  name: `softmax.${entryPoint}`,
  code: src,
  entryPoint,
  bindings: ["uniform", "read", "read", "rw"],
  family: "elementwise",
});
const FORWARD = spec("forward");
const BACKWARD = spec("backward");

/**
 * Softmax over the last axis.
 *
 * @example
 * ```ts ignore
 * const probs = softmax(logits); // [R, C]
 * ```
 */
export function softmax(x: Tensor): Tensor {
  expectDtype("softmax", "x", x, "f32");
  const gpu = x.gpu;
  const c = x.shape[x.rank - 1];
  const rows = x.size / c;
  const xc = contiguous(x);
  const y = Tensor.empty(gpu, x.shape);
  const u = gpu.uniform(new Params().u32(rows).u32(c).bytes());
  gpu.dispatch(FORWARD, [u, xc.binding(), gpu.scratch, y.binding()], grid1d(rows, 1));
  return record("softmax", [x], y, (dy) => {
    const dx = Tensor.empty(gpu, x.shape);
    gpu.dispatch(BACKWARD, [u, y.binding(), contiguous(dy).binding(), dx.binding()], grid1d(rows, 1));
    return [dx];
  });
}
