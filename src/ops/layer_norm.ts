/**
 * Layer normalization over the last axis (PyTorch `nn.LayerNorm`: biased variance, eps 1e-5 default).
 * Kernels: `shaders/layer_norm.wgsl` (forward, input backward, and chunked parameter backward whose
 * partials are summed by the deterministic reduction).
 *
 * @module
 */
import src from "../../shaders/layer_norm.wgsl" with { type: "text" };
import { Params } from "../gpu/kernel.ts";
import type { KernelSpec } from "../gpu/kernel.ts";
import { record } from "../tensor/autograd.ts";
import { fmtShape, Tensor } from "../tensor/tensor.ts";
import { contiguous } from "./elementwise.ts";
import { expectDtype, grid1d } from "./launch.ts";
import { sumMiddle } from "./reduce.ts";

const spec = (entryPoint: string, bindings: KernelSpec["bindings"]): KernelSpec => ({
  name: `layer_norm.${entryPoint}`,
  code: src,
  entryPoint,
  bindings,
  family: "norm",
});
const FORWARD = spec("forward", ["uniform", "read", "read", "read", "rw", "rw"]);
const BACKWARD_INPUT = spec("backward_input", ["uniform", "read", "read", "read", "rw", "rw"]);
const BACKWARD_PARAMS = spec("backward_params", ["uniform", "read", "read", "read", "rw"]);
const FORWARD_ROWS = spec("forward_rows", ["uniform", "read", "read", "read", "rw", "rw"]);
const BACKWARD_INPUT_ROWS = spec("backward_input_rows", ["uniform", "read", "read", "read", "rw", "rw"]);

/** Rows up to this width use one thread per row (no barriers); wider rows a 64-thread tree per row. */
const ROW_PER_THREAD_MAX_D = 128;

/** Rows per chunk of the parameter-gradient partial sums (fixed: the order never depends on the batch). */
const CHUNK = 256;

/**
 * `(x − mean) / sqrt(var + eps) · weight + bias` over the last axis.
 *
 * @example
 * ```ts ignore
 * const y = layerNorm(x, gamma, beta); // x [B, L, D], gamma/beta [D]
 * ```
 */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  expectDtype("layerNorm", "x", x, "f32");
  const d = x.shape[x.rank - 1];
  if (weight.size !== d || bias.size !== d) {
    throw new RangeError(
      `Cannot apply layerNorm over the last axis of ${fmtShape(x.shape)} with weight ${
        fmtShape(weight.shape)
      } ` +
        `and bias ${fmtShape(bias.shape)}: both must have ${d} elements`,
    );
  }
  const gpu = x.gpu;
  const xc = contiguous(x);
  const rows = x.size / d;
  const chunks = Math.ceil(rows / CHUNK);
  const u = gpu.uniform(new Params().u32(rows).u32(d).f32(eps).u32(chunks).bytes());
  const y = Tensor.empty(gpu, x.shape);
  const stats = Tensor.empty(gpu, [rows, 2]);
  const narrow = d <= ROW_PER_THREAD_MAX_D;
  const rowGrid = narrow ? grid1d(rows, 64) : grid1d(rows, 1);
  gpu.dispatch(
    narrow ? FORWARD_ROWS : FORWARD,
    [u, xc.binding(), weight.binding(), bias.binding(), y.binding(), stats.binding()],
    rowGrid,
  );
  return record("layerNorm", [x, weight, bias], y, (dy) => {
    const dyc = contiguous(dy);
    let dx: Tensor | null = null;
    if (x.requiresGrad) {
      dx = Tensor.empty(gpu, x.shape);
      gpu.dispatch(
        narrow ? BACKWARD_INPUT_ROWS : BACKWARD_INPUT,
        [u, xc.binding(), weight.binding(), dyc.binding(), stats.binding(), dx.binding()],
        rowGrid,
      );
    }
    let dw: Tensor | null = null;
    let db: Tensor | null = null;
    if (weight.requiresGrad || bias.requiresGrad) {
      const partial = Tensor.empty(gpu, [2, chunks, d]);
      gpu.dispatch(
        BACKWARD_PARAMS,
        [u, xc.binding(), dyc.binding(), stats.binding(), partial.binding()],
        grid1d(chunks * d, 64),
      );
      const sums = sumMiddle(partial, 2, chunks, d); // [2, d]: fixed-order sum over chunks
      dw = sliceRow(sums, 0, d).viewAs(weight.shape);
      db = sliceRow(sums, 1, d).viewAs(bias.shape);
    }
    return [dx, dw, db];
  });
}

/** Row `r` of a [2, d] tensor as a fresh tensor (copy on the GPU). */
function sliceRow(t: Tensor, r: number, d: number): Tensor {
  const out = Tensor.empty(t.gpu, [d]);
  t.gpu.copy(t.binding(), out.binding(), d * 4, r * d * 4, 0);
  return out;
}
