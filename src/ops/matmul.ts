/**
 * Matrix multiply (batched, transposed operands, bias epilogue) and `linear` (PyTorch layout:
 * `y = x · Wᵀ + b`, W is [out, in]). Kernels: the generated straight-line kernel of
 * `src/ops/matmul_codegen.ts` under a configuration chosen per problem, `shaders/matmul.wgsl` where none fits
 * the device or when forced (both give bitwise-identical results; see `chooseMatmulConfig`).
 *
 * Backward, with op(X) meaning X or Xᵀ as stored:
 *   dA = dC · op(B)ᵀ (or its transpose when A is stored transposed), dB = op(A)ᵀ · dC, dbias = Σ_rows dC.
 *
 * Mixed precision (autocast, {@linkcode MatmulOptions.autocast}): A and B are cast to f16 or bf16
 * (`src/ops/cast.ts`, round-to-nearest-even) and the kernels read the 16-bit copies, widening them exactly
 * to f32 and accumulating in f32; the output C (and the bias) stay f32. The tape keeps the 16-bit copies for
 * the backward pass, whose products read them together with the output gradient cast to the same format;
 * gradients still flow to the f32 tensors (the cast is the identity for differentiation), and dbias sums
 * the f32 gradient.
 *
 * @module
 */
import src from "../../shaders/matmul.wgsl" with { type: "text" };
import { Params } from "../gpu/kernel.ts";
import type { KernelSpec } from "../gpu/kernel.ts";
import { noGrad, record } from "../tensor/autograd.ts";
import { DTYPE_BYTES, fmtShape, type HalfDType, Tensor } from "../tensor/tensor.ts";
import { add, contiguous } from "./elementwise.ts";
import { castTo } from "./cast.ts";
import { sumMiddle, sumTo } from "./reduce.ts";
import { reshape } from "./shape.ts";
import {
  chooseMatmulConfig,
  dispatchGeneratedMatmul,
  type MatmulKernelChoice,
  operandReader,
} from "./matmul_codegen.ts";
import { noteMatmulProblem } from "./matmul_problems.ts";

const generalSpecs = new Map<string, KernelSpec>();

/**
 * The general kernel (`shaders/matmul.wgsl`) for operands of the given element types: the f32 source as
 * is, or with the A/B bindings and their read functions replaced for 16-bit operands.
 */
export function generalMatmulSpec(halfA?: HalfDType, halfB?: HalfDType): KernelSpec {
  const key = `${halfA ?? "f32"}x${halfB ?? "f32"}`;
  let spec = generalSpecs.get(key);
  if (spec) return spec;
  let code = src;
  for (const [x, half] of [["A", halfA], ["B", halfB]] as const) {
    if (!half) continue;
    const r = operandReader(half);
    const fn = x === "A" ? "read_a" : "read_b";
    const binding = x === "A" ? 1 : 2;
    code = code.replace(
      `@group(0) @binding(${binding}) var<storage, read> ${x}: array<f32>;`,
      `@group(0) @binding(${binding}) var<storage, read> ${x}: array<${r.arrayElem(false)}>;\n` +
        r.helpers(x, false).join("\n"),
    ).replace(
      `fn ${fn}(i: u32) -> f32 { return ${x}[i]; }`,
      `fn ${fn}(i: u32) -> f32 { return ${r.readScalar(x, "i")}; }`,
    );
  }
  if (halfA === "f16" || halfB === "f16") code = `enable f16;\n${code}`;
  spec = {
    name: key === "f32xf32" ? "matmul.tiled64" : `matmul.tiled64.${key}`,
    code,
    bindings: ["uniform", "read", "read", "read", "rw"],
    family: "matmul",
  };
  generalSpecs.set(key, spec);
  return spec;
}

/** Mixed-precision operands of {@linkcode matmul}: the 16-bit format, optionally with ready-made copies. */
export interface MatmulAutocast {
  /** 16-bit format the operands are cast to. */
  dtype: HalfDType;
  /** A 16-bit copy of A made earlier (e.g. a weight cast once per step); otherwise A is cast here. */
  castA?: Tensor;
  /** A 16-bit copy of B made earlier; otherwise B is cast here. */
  castB?: Tensor;
}

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
  /** Mixed precision: multiply 16-bit copies of A and B (f32 accumulation and output). */
  autocast?: MatmulAutocast;
}

/** The 16-bit type of a matmul operand (undefined for f32), or an error naming the operand. */
function operandHalf(what: string, t: Tensor): HalfDType | undefined {
  if (t.dtype === "f32") return undefined;
  if (t.dtype === "f16" || t.dtype === "bf16") {
    if (!t.isContiguous) {
      throw new RangeError(
        `Cannot run matmul as ${what} (${t.dtype}) must be contiguous: current strides are [${t.strides}]`,
      );
    }
    return t.dtype;
  }
  throw new TypeError(`Cannot run matmul as ${what} must be f32, f16 or bf16: current dtype is ${t.dtype}`);
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
 * Used by backward passes to accumulate straight into gradient buffers. `family` files the dispatch under
 * another kernel family for per-family GPU timing (e.g. the products of materialized attention).
 */
export function matmulInto(
  out: Tensor,
  a: Tensor,
  b: Tensor,
  options: MatmulOptions & { alpha?: number; beta?: number; family?: string } = {},
): void {
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  const halfA = operandHalf("A", a);
  const halfB = operandHalf("B", b);
  const { batch, m, n, k } = dims(a, b, transA, transB);
  if (out.size !== batch * m * n) {
    throw new RangeError(
      `Cannot write a ${batch}×${m}×${n} product into a tensor of shape ${fmtShape(out.shape)}`,
    );
  }
  const ac = halfA ? a : contiguous(a);
  const bc = halfB ? b : contiguous(b);
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
    ...(halfA ? { halfA } : {}),
    ...(halfB ? { halfB } : {}),
  };
  const chunk = splitKChunk(problem, options);
  if (chunk !== null) {
    splitKWeightGradient(out, ac, bc, m, n, k, chunk);
    return;
  }
  const choice = options.kernel ?? "auto";
  // The autotuner's shapes (`collectMatmulProblems`): only "auto" consults a tuning table.
  if (choice === "auto" && batch > 0 && m > 0 && n > 0 && k > 0) noteMatmulProblem(problem);
  const config = chooseMatmulConfig(gpu, problem, choice);
  if (config) {
    dispatchGeneratedMatmul(gpu, config, problem, {
      a: ac.binding(),
      b: bc.binding(),
      bias: bias?.binding(),
      c: out.binding(),
    }, options.family);
    return;
  }
  const u = gpu.uniform(
    new Params().u32(m).u32(n).u32(k).u32(transA ? 1 : 0).u32(transB ? 1 : 0).u32(bias ? 1 : 0)
      .u32(a.rank === 3 ? m * k : 0).u32(b.rank === 3 ? k * n : 0).f32(options.alpha ?? 1).f32(
        options.beta ?? 0,
      )
      .bytes(),
  );
  const general = generalMatmulSpec(halfA, halfB);
  gpu.dispatch(
    options.family ? { ...general, family: options.family } : general,
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
  if (options.autocast) return autocastMatmul(a, b, options, options.autocast);
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

/** A ready 16-bit copy, checked against the f32 tensor it stands for, or a fresh cast of that tensor. */
function halfCopy(what: string, t: Tensor, given: Tensor | undefined, dtype: HalfDType): Tensor {
  if (!given) return noGrad(() => castTo(contiguous(t), dtype));
  if (given.dtype !== dtype || given.size !== t.size || !given.isContiguous) {
    throw new RangeError(
      `Cannot use autocast.cast${what} as the 16-bit copy of ${what} ${fmtShape(t.shape)}: ` +
        `current value is a ${given.dtype} tensor of shape ${
          fmtShape(given.shape)
        } (expected contiguous ${dtype})`,
    );
  }
  return given.shape.length === t.shape.length && given.shape.every((d, i) => d === t.shape[i])
    ? given
    : given.viewAs(t.shape);
}

/** `matmul` under autocast: 16-bit operands saved for the backward pass, f32 output and gradients. */
function autocastMatmul(a: Tensor, b: Tensor, options: MatmulOptions, cast: MatmulAutocast): Tensor {
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  const kernel = options.kernel;
  const dtype = cast.dtype;
  const { batch, m, n } = dims(a, b, transA, transB);
  const a16 = halfCopy("A", a, cast.castA, dtype);
  const b16 = halfCopy("B", b, cast.castB, dtype);
  const out = Tensor.empty(a.gpu, a.rank === 3 ? [batch, m, n] : [m, n]);
  const bias = options.bias;
  matmulInto(out, a16, b16, { transA, transB, bias, kernel });
  return record("matmul", bias ? [a, b, bias] : [a, b], out, (g) => {
    const g16 = castTo(contiguous(g), dtype);
    const da = !a.requiresGrad
      ? null
      : transA
      ? matmul(b16, g16, { transA: transB, transB: true, kernel })
      : matmul(g16, b16, { transB: !transB, kernel });
    const db = !b.requiresGrad
      ? null
      : transB
      ? matmul(g16, a16, { transA: true, transB: transA, kernel })
      : matmul(a16, g16, { transA: !transA, kernel });
    const grads: (Tensor | null)[] = [da, db];
    if (bias) grads.push(bias.requiresGrad ? sumTo(g, [n]).viewAs(bias.shape) : null);
    return grads;
  });
}

/**
 * `y = x · Wᵀ + b` over the last axis of `x` (PyTorch `nn.Linear` layout: W is [out, in]). With
 * `autocast`, x and W are multiplied as 16-bit copies (see {@linkcode MatmulAutocast}; `castB` is W's).
 *
 * @example
 * ```ts ignore
 * const y = linear(x, w, b); // x [B, L, in], w [out, in], b [out] → [B, L, out]
 * const z = linear(x, w, b, { dtype: "bf16" }); // same, bf16 operands
 * ```
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor, autocast?: MatmulAutocast): Tensor {
  const inF = x.shape[x.rank - 1];
  if (weight.rank !== 2 || weight.shape[1] !== inF) {
    throw new RangeError(
      `Cannot apply a linear layer with weight ${fmtShape(weight.shape)} to input ${fmtShape(x.shape)}: ` +
        `weight must be [out, ${inF}]`,
    );
  }
  const rows = x.size / inF;
  const x2 = reshape(x, [rows, inF]);
  const y = matmul(x2, weight, autocast ? { transB: true, bias, autocast } : { transB: true, bias });
  return reshape(y, [...x.shape.slice(0, -1), weight.shape[0]]);
}

/** Largest K rows per partial product of a split-K weight gradient. */
export const SPLIT_K_CHUNK = 2048;
/** Smallest K rows per partial product. */
export const SPLIT_K_MIN_CHUNK = 256;
/** Multiply-adds below which a product is never split (2²²: a [64, 64] dW from 1024 rows). */
const SPLIT_K_MIN_WORK = 1 << 22;
/** Output tiles × K-chunks a split aims for (the H200 has 132 SMs; fewer leaves most of them idle). */
const SPLIT_K_TARGET_TILES = 128;

/**
 * K rows per partial product when `out = Aᵀ·B` should be split over K, else null. Split-K applies to the
 * weight-gradient layout (Aᵀ·B with both stored row-major [K, ·], so every K-chunk is a contiguous block)
 * when the output is too small to fill the GPU (< 64 tiles of 128×128) and K is long enough for two chunks
 * — e.g. dW of a token projection ([out, in] from 80 000 token rows) or of a latent-level layer of a small
 * model ([3·64, 64] from 32 × 128 latent rows), which 1–4 workgroups would otherwise walk serially (seen
 * on an H200: 8.4 ms of a 20.7 ms poyo_1_3m step). The chunk is the largest power of two in
 * [{@linkcode SPLIT_K_MIN_CHUNK}, {@linkcode SPLIT_K_CHUNK}] that still gives ≥ 128 tile-chunks (else the
 * smallest): a function of (M, N, K) only, so the summation order — and the bits — depend only on the shape.
 */
export function splitKChunk(
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
  options: MatmulOptions = {},
): number | null {
  if ((options.kernel ?? "auto") !== "auto") return null;
  if (!p.transA || p.transB || p.batch !== 1 || p.bias || p.alpha !== 1 || p.beta !== 0) return null;
  const tiles = Math.ceil(p.m / 128) * Math.ceil(p.n / 128);
  // Small products stay one dispatch: the split adds four (partials, tail, sum, copy).
  if (tiles >= 64 || p.m * p.n * p.k < SPLIT_K_MIN_WORK) return null;
  for (let chunk = SPLIT_K_CHUNK; chunk >= SPLIT_K_MIN_CHUNK; chunk /= 2) {
    if (tiles * Math.floor(p.k / chunk) >= SPLIT_K_TARGET_TILES) return chunk;
  }
  return p.k >= 2 * SPLIT_K_MIN_CHUNK ? SPLIT_K_MIN_CHUNK : null;
}

/**
 * `out = Aᵀ·B` as a deterministic split-K: the full K-chunks in one batched product (partials [S, M, N]),
 * the ragged tail as its own product, then a fixed-order sum over the chunks plus the tail.
 */
function splitKWeightGradient(
  out: Tensor,
  a: Tensor,
  b: Tensor,
  m: number,
  n: number,
  k: number,
  chunk: number,
): void {
  const gpu = a.gpu;
  const full = Math.floor(k / chunk);
  const tail = k - full * chunk;
  const partial = Tensor.empty(gpu, [full, m, n]);
  const ea = DTYPE_BYTES[a.dtype];
  const eb = DTYPE_BYTES[b.dtype];
  const aChunks = Tensor.view(gpu, a.buffer, a.byteOffset, [full, chunk, m], a.dtype);
  const bChunks = Tensor.view(gpu, b.buffer, b.byteOffset, [full, chunk, n], b.dtype);
  matmulInto(partial, aChunks, bChunks, { transA: true });
  let sum = sumMiddle(partial, 1, full, m * n);
  if (tail > 0) {
    const rows = full * chunk;
    const aTail = Tensor.view(gpu, a.buffer, a.byteOffset + rows * m * ea, [tail, m], a.dtype);
    const bTail = Tensor.view(gpu, b.buffer, b.byteOffset + rows * n * eb, [tail, n], b.dtype);
    const tailProduct = Tensor.empty(gpu, [1, m * n]);
    // The generated kernel even when the tail is small: the general one walks it at ~3 GFLOP/s per
    // workgroup (H200), and a split's output is small by definition (bitwise the same result either way).
    matmulInto(tailProduct.viewAs([m, n]), aTail, bTail, {
      transA: true,
      ...(tail >= 16 ? { kernel: "generated" as const } : {}),
    });
    sum = noGrad(() => add(sum, tailProduct));
  }
  gpu.copy(sum.binding(), out.binding(), m * n * 4);
}
