/**
 * Matrix multiply (batched, transposed operands, bias epilogue) and `linear` (PyTorch layout:
 * `y = x · Wᵀ + b`, W is [out, in]). Kernels: the generated straight-line kernel of
 * `src/ops/matmul_codegen.ts` for problems it suits, `shaders/matmul.wgsl` for the rest (both give
 * bitwise-identical results; see `chooseMatmulConfig`).
 *
 * Backward, with op(X) meaning X or Xᵀ as stored:
 *   dA = dC · op(B)ᵀ (or its transpose when A is stored transposed), dB = op(A)ᵀ · dC, dbias = Σ_rows dC.
 *
 * @module
 */
import src from "../../shaders/matmul.wgsl" with { type: "text" };
import { Params } from "../gpu/kernel.ts";
import type { KernelSpec } from "../gpu/kernel.ts";
import { noGrad, record } from "../tensor/autograd.ts";
import { fmtShape, Tensor } from "../tensor/tensor.ts";
import { add, contiguous } from "./elementwise.ts";
import { expectDtype } from "./launch.ts";
import { sumMiddle, sumTo } from "./reduce.ts";
import { reshape } from "./shape.ts";
import { chooseMatmulConfig, dispatchGeneratedMatmul, type MatmulKernelChoice } from "./matmul_codegen.ts";

const MATMUL: KernelSpec = {
  name: "matmul.tiled64",
  code: src,
  bindings: ["uniform", "read", "read", "read", "rw"],
  family: "matmul",
};

/** Options of {@linkcode matmul}. */
export interface MatmulOptions {
  /** A is stored [.., K, M]. */
  transA?: boolean;
  /** B is stored [.., N, K]. */
  transB?: boolean;
  /** Bias [N] added to every row. */
  bias?: Tensor;
  /** Which kernel runs (default `"auto"`); backward products use the same choice. */
  kernel?: MatmulKernelChoice;
}

interface Dims {
  batch: number;
  m: number;
  n: number;
  k: number;
}

function dims(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Dims {
  if (a.rank < 2 || a.rank > 3 || b.rank < 2 || b.rank > 3 || a.rank !== b.rank) {
    throw new RangeError(
      `Cannot multiply ${fmtShape(a.shape)} by ${
        fmtShape(b.shape)
      }: both operands must be rank 2, or both rank 3 ` +
        "(fold shared-weight batches into rows first, as linear() does)",
    );
  }
  const batch = a.rank === 3 ? a.shape[0] : 1;
  if (a.rank === 3 && b.shape[0] !== batch) {
    throw new RangeError(`Cannot multiply ${fmtShape(a.shape)} by ${fmtShape(b.shape)}: batch sizes differ`);
  }
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const m = transA ? ac : ar;
  const k = transA ? ar : ac;
  const kb = transB ? bc : br;
  const n = transB ? br : bc;
  if (k !== kb) {
    throw new RangeError(
      `Cannot multiply ${fmtShape(a.shape)}${transA ? "ᵀ" : ""} by ${fmtShape(b.shape)}${
        transB ? "ᵀ" : ""
      }: ` +
        `inner dimensions ${k} and ${kb} differ`,
    );
  }
  return { batch, m, n, k };
}

/**
 * Records `out = alpha · op(A)·op(B) (+ bias) (+ beta · out)` into an existing tensor (no tape node).
 * Used by backward passes to accumulate straight into gradient buffers.
 */
export function matmulInto(
  out: Tensor,
  a: Tensor,
  b: Tensor,
  options: MatmulOptions & { alpha?: number; beta?: number } = {},
): void {
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  expectDtype("matmul", "A", a, "f32");
  expectDtype("matmul", "B", b, "f32");
  const { batch, m, n, k } = dims(a, b, transA, transB);
  if (out.size !== batch * m * n) {
    throw new RangeError(
      `Cannot write a ${batch}×${m}×${n} product into a tensor of shape ${fmtShape(out.shape)}`,
    );
  }
  const ac = contiguous(a);
  const bc = contiguous(b);
  const bias = options.bias;
  if (bias && bias.size !== n) {
    throw new RangeError(`Cannot add a bias of shape ${fmtShape(bias.shape)} to a product with ${n} columns`);
  }
  const gpu = a.gpu;
  const problem = {
    batch,
    m,
    n,
    k,
    transA,
    transB,
    strideA: a.rank === 3 ? m * k : 0,
    strideB: b.rank === 3 ? k * n : 0,
    bias: Boolean(bias),
    alpha: options.alpha ?? 1,
    beta: options.beta ?? 0,
  };
  if (useSplitK(problem, options)) {
    splitKWeightGradient(out, ac, bc, m, n, k);
    return;
  }
  const config = chooseMatmulConfig(gpu, problem, options.kernel ?? "auto");
  if (config) {
    dispatchGeneratedMatmul(gpu, config, problem, {
      a: ac.binding(),
      b: bc.binding(),
      bias: bias?.binding(),
      c: out.binding(),
    });
    return;
  }
  const u = gpu.uniform(
    new Params().u32(m).u32(n).u32(k).u32(transA ? 1 : 0).u32(transB ? 1 : 0).u32(bias ? 1 : 0)
      .u32(a.rank === 3 ? m * k : 0).u32(b.rank === 3 ? k * n : 0).f32(options.alpha ?? 1).f32(
        options.beta ?? 0,
      )
      .bytes(),
  );
  gpu.dispatch(
    MATMUL,
    [u, ac.binding(), bc.binding(), (bias ?? ac).binding(), out.binding()],
    [Math.ceil(n / 64), Math.ceil(m / 64), batch],
  );
}

/**
 * `op(A) · op(B) (+ bias)`; both operands rank 2, or both rank 3 with equal batch.
 *
 * @example
 * ```ts ignore
 * const scores = matmul(q, k, { transB: true }); // [B, L, d] · [B, N, d]ᵀ → [B, L, N]
 * ```
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  const kernel = options.kernel;
  const { batch, m, n } = dims(a, b, transA, transB);
  const out = Tensor.empty(a.gpu, a.rank === 3 ? [batch, m, n] : [m, n]);
  matmulInto(out, a, b, options);
  const bias = options.bias;
  return record("matmul", bias ? [a, b, bias] : [a, b], out, (g) => {
    const da = !a.requiresGrad
      ? null
      : transA
      ? matmul(b, g, { transA: transB, transB: true, kernel })
      : matmul(g, b, { transB: !transB, kernel });
    const db = !b.requiresGrad
      ? null
      : transB
      ? matmul(g, a, { transA: true, transB: transA, kernel })
      : matmul(a, g, { transA: !transA, kernel });
    const grads: (Tensor | null)[] = [da, db];
    if (bias) grads.push(bias.requiresGrad ? sumTo(g, [n]).viewAs(bias.shape) : null);
    return grads;
  });
}

/**
 * `y = x · Wᵀ + b` over the last axis of `x` (PyTorch `nn.Linear` layout: W is [out, in]).
 *
 * @example
 * ```ts ignore
 * const y = linear(x, w, b); // x [B, L, in], w [out, in], b [out] → [B, L, out]
 * ```
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  const inF = x.shape[x.rank - 1];
  if (weight.rank !== 2 || weight.shape[1] !== inF) {
    throw new RangeError(
      `Cannot apply a linear layer with weight ${fmtShape(weight.shape)} to input ${fmtShape(x.shape)}: ` +
        `weight must be [out, ${inF}]`,
    );
  }
  const rows = x.size / inF;
  const x2 = reshape(x, [rows, inF]);
  const y = matmul(x2, weight, { transB: true, bias });
  return reshape(y, [...x.shape.slice(0, -1), weight.shape[0]]);
}

/** K rows per partial product of a split-K weight gradient (fixed: the summation order depends only on K). */
export const SPLIT_K_CHUNK = 2048;

/**
 * Split-K applies to the weight-gradient layout (Aᵀ·B with both stored row-major [K, ·], so every K-chunk
 * is a contiguous block) when the output is too small to fill the GPU and K is long — e.g. dW of a token
 * projection: [out, in] from 80 000 token rows, which a single 128×128 tile would otherwise walk serially.
 */
function useSplitK(
  p: {
    batch: number;
    m: number;
    n: number;
    k: number;
    transA: boolean;
    transB: boolean;
    bias: boolean;
    alpha: number;
    beta: number;
  },
  options: MatmulOptions,
): boolean {
  if ((options.kernel ?? "auto") !== "auto") return false;
  if (!p.transA || p.transB || p.batch !== 1 || p.bias || p.alpha !== 1 || p.beta !== 0) return false;
  const tiles = Math.ceil(p.m / 128) * Math.ceil(p.n / 128);
  return p.k >= 4 * SPLIT_K_CHUNK && tiles < 64;
}

/**
 * `out = Aᵀ·B` as a deterministic split-K: the full K-chunks in one batched product (partials [S, M, N]),
 * the ragged tail as its own product, then a fixed-order sum over the chunks plus the tail.
 */
function splitKWeightGradient(out: Tensor, a: Tensor, b: Tensor, m: number, n: number, k: number): void {
  const gpu = a.gpu;
  const full = Math.floor(k / SPLIT_K_CHUNK);
  const tail = k - full * SPLIT_K_CHUNK;
  const partial = Tensor.empty(gpu, [full, m, n]);
  const aChunks = Tensor.view(gpu, a.buffer, a.byteOffset, [full, SPLIT_K_CHUNK, m]);
  const bChunks = Tensor.view(gpu, b.buffer, b.byteOffset, [full, SPLIT_K_CHUNK, n]);
  matmulInto(partial, aChunks, bChunks, { transA: true });
  let sum = sumMiddle(partial, 1, full, m * n);
  if (tail > 0) {
    const rows = full * SPLIT_K_CHUNK;
    const aTail = Tensor.view(gpu, a.buffer, a.byteOffset + rows * m * 4, [tail, m]);
    const bTail = Tensor.view(gpu, b.buffer, b.byteOffset + rows * n * 4, [tail, n]);
    const tailProduct = Tensor.empty(gpu, [1, m * n]);
    matmulInto(tailProduct.viewAs([m, n]), aTail, bTail, { transA: true });
    sum = noGrad(() => add(sum, tailProduct));
  }
  gpu.copy(sum.binding(), out.binding(), m * n * 4);
}
