/**
 * Dropout with masks from Philox4x32-10 keyed by (seed, stream) and counted by (element, step, rank):
 * deterministic, resumable, and identical in the backward pass without storing the mask.
 * Kernel: `shaders/dropout.wgsl`.
 *
 * @module
 */
import dropoutSource from "../../shaders/dropout.wgsl" with { type: "text" };
import { Params } from "../gpu/kernel.ts";
import type { KernelSpec } from "../gpu/kernel.ts";
import { record } from "../tensor/autograd.ts";
import { Tensor } from "../tensor/tensor.ts";
import { contiguous } from "./elementwise.ts";
import { expectDtype, grid1d } from "./launch.ts";
import { PHILOX_WGSL, streamId } from "./philox.ts";

const DROPOUT: KernelSpec = {
  name: "dropout",
  code: PHILOX_WGSL + "\n" + dropoutSource,
  bindings: ["uniform", "uniform", "read", "rw"],
  family: "elementwise",
};

function launch(x: Tensor, p: number, stream: number): Tensor {
  const c = contiguous(x);
  const out = Tensor.empty(x.gpu, x.shape);
  const u = x.gpu.uniform(new Params().u32(x.size).u32(stream).f32(p).f32(1 / (1 - p)).bytes());
  x.gpu.dispatch(
    DROPOUT,
    [u, x.gpu.stepState, c.binding(), out.binding()],
    grid1d(Math.ceil(x.size / 4), 64),
  );
  return out;
}

/**
 * Zeroes each element with probability `p` and scales the rest by 1/(1−p). The mask depends on the
 * step state set with `gpu.setStepState({ step, seed, rank })` and on `site`, a stable name of the
 * dropout location (e.g. `"proc.3.ffn"`). `p = 0` returns `x` unchanged.
 *
 * @example
 * ```ts ignore
 * const h = dropout(x, 0.2, "enc_ffn");
 * ```
 */
export function dropout(x: Tensor, p: number, site: string): Tensor {
  expectDtype("dropout", "x", x, "f32");
  if (!(p >= 0 && p < 1)) throw new RangeError(`Cannot apply dropout with p = ${p}: it must be in [0, 1)`);
  if (p === 0) return x;
  const stream = streamId(site);
  const out = launch(x, p, stream);
  return record("dropout", [x], out, (g) => [launch(g, p, stream)]);
}
