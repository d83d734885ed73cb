/**
 * Losses of the contract: weighted-mean cross-entropy `Σ w·l / Σ w` over integer labels, and weighted MSE.
 * Kernels: `shaders/cross_entropy.wgsl` (per-row loss and gradient); the means use the deterministic
 * reduction.
 *
 * @module
 */
import src from "../../shaders/cross_entropy.wgsl" with { type: "text" };
import { Params } from "../gpu/kernel.ts";
import type { KernelSpec } from "../gpu/kernel.ts";
import { record } from "../tensor/autograd.ts";
import { fmtShape, Tensor } from "../tensor/tensor.ts";
import { contiguous, div, mul, sub } from "./elementwise.ts";
import { expectDtype, grid1d } from "./launch.ts";
import { mean, sumAll } from "./reduce.ts";

const FORWARD: KernelSpec = {
  name: "cross_entropy.forward",
  code: src,
  entryPoint: "forward",
  bindings: ["uniform", "read", "read", "read", "rw"],
  family: "elementwise",
};
const BACKWARD: KernelSpec = {
  name: "cross_entropy.backward",
  code: src,
  entryPoint: "backward",
  bindings: ["uniform", "read", "read", "read", "rw", "rw"],
  family: "elementwise",
};

/**
 * Per-row weighted negative log-likelihood `w[r] · (logsumexp(z[r]) − z[r, y[r]])` (0 for labels outside
 * [0, C)). Gradient flows to the logits only.
 */
export function weightedNll(logits: Tensor, labels: Tensor, weights: Tensor): Tensor {
  expectDtype("crossEntropy", "logits", logits, "f32");
  expectDtype("crossEntropy", "labels", labels, "i32");
  expectDtype("crossEntropy", "weights", weights, "f32");
  const c = logits.shape[logits.rank - 1];
  const rows = logits.size / c;
  if (labels.size !== rows || weights.size !== rows) {
    throw new RangeError(
      `Cannot compute cross-entropy of logits ${fmtShape(logits.shape)} with labels ${
        fmtShape(labels.shape)
      } ` +
        `and weights ${fmtShape(weights.shape)}: they need ${rows} rows each`,
    );
  }
  const gpu = logits.gpu;
  const z = contiguous(logits);
  const u = gpu.uniform(new Params().u32(rows).u32(c).bytes());
  const loss = Tensor.empty(gpu, [rows]);
  gpu.dispatch(
    FORWARD,
    [u, z.binding(), labels.binding(), weights.binding(), loss.binding()],
    grid1d(rows, 64),
  );
  return record("weightedNll", [logits], loss, (g) => {
    const dz = Tensor.empty(gpu, logits.shape);
    const gc = contiguous(g);
    gpu.dispatch(
      BACKWARD,
      [u, z.binding(), labels.binding(), weights.binding(), gc.binding(), dz.binding()],
      grid1d(rows, 64),
    );
    return [dz];
  });
}

/**
 * Weighted-mean cross-entropy `Σ w·l / Σ w` → [1].
 *
 * @example
 * ```ts ignore
 * const loss = crossEntropy(logits, labels, weights); // [B·Q, C], [B·Q] i32, [B·Q]
 * ```
 */
export function crossEntropy(logits: Tensor, labels: Tensor, weights: Tensor): Tensor {
  return div(sumAll(weightedNll(logits, labels, weights)), sumAll(weights));
}

/** Weighted-mean squared error `Σ_r w_r · mean_c (pred − target)² / Σ w` → [1]. */
export function mse(pred: Tensor, target: Tensor, weights: Tensor): Tensor {
  const diff = sub(pred, target);
  const perRow = mean(mul(diff, diff), -1);
  return div(sumAll(mul(perRow, weights.viewAs(perRow.shape))), sumAll(weights));
}
