/**
 * The shared gradient-test suite's machinery: every op registers cases (input shapes, the GPU op, the
 * f64 reference forward/backward); each case is checked three ways:
 *   1. GPU forward vs reference forward,
 *   2. GPU backward (autograd, random upstream gradient) vs reference backward,
 *   3. reference backward vs central finite differences of the reference forward (in f64).
 *
 * @module
 */
import { Gpu } from "../../src/gpu/gpu.ts";
import { backward } from "../../src/tensor/autograd.ts";
import { Scope, Tensor } from "../../src/tensor/tensor.ts";
import { mul, sumAll } from "../../src/ops/mod.ts";
import { assertClose, randomF32, rng, type Tolerance } from "../reference/compare.ts";

/** One input of a case. */
export interface InputSpec {
  shape: number[];
  /** "f32" (default) or "i32" (indices, labels). */
  dtype?: "f32" | "i32";
  /** Whether the gradient w.r.t. this input is checked (default true for f32). */
  grad?: boolean;
  /** Custom generator (default: uniform in [-1, 1) for f32). */
  gen?: (n: number, random: () => number) => Float32Array | Int32Array;
}

/** A reference op in f64 over flat arrays (shapes known to the closure). */
export interface RefOp {
  forward(inputs: Float64Array[]): Float64Array;
  backward(inputs: Float64Array[], gradOut: Float64Array): (Float64Array | null)[];
}

/** A test case of the shared suite. */
export interface OpCase {
  name: string;
  inputs: InputSpec[];
  gpu(inputs: Tensor[]): Tensor;
  ref: RefOp;
  /** Forward/backward tolerance. */
  tol: Tolerance;
  /** Backward tolerance if different from `tol`. */
  gradTol?: Tolerance;
  /** Skip the finite-difference check (non-differentiable points, integer ops). */
  skipFiniteDifferences?: boolean;
  /** Skip the backward checks (forward-only ops). */
  forwardOnly?: boolean;
}

let shared: Promise<Gpu> | null = null;

/** One Gpu shared by every test of a test file. */
export function testGpu(): Promise<Gpu> {
  shared ??= Gpu.create();
  return shared;
}

function toF64(a: Float32Array | Int32Array): Float64Array {
  return Float64Array.from(a);
}

/** Runs the three checks of one case; throws with a readable report on failure. */
export async function checkOpCase(gpu: Gpu, c: OpCase, seed = 1): Promise<void> {
  const random = rng(seed);
  const hostInputs = c.inputs.map((spec) => {
    const n = spec.shape.reduce((p, d) => p * d, 1);
    if (spec.gen) return spec.gen(n, random);
    return spec.dtype === "i32" ? new Int32Array(n) : randomF32(n, random);
  });
  const f64Inputs = hostInputs.map(toF64);
  const wantOut = c.ref.forward(f64Inputs);

  const scope = Scope.begin();
  try {
    const tensors = c.inputs.map((spec, i) => {
      const t = Tensor.fromArray(gpu, hostInputs[i], spec.shape);
      t.requiresGrad = !c.forwardOnly && (spec.dtype ?? "f32") === "f32" && spec.grad !== false;
      return t;
    });
    const out = c.gpu(tensors);
    const gotOut = await out.toArray();
    assertClose(`${c.name}: forward`, gotOut, wantOut, c.tol);
    if (c.forwardOnly) return;

    const gradOutHost = randomF32(wantOut.length, random);
    const gradOut = Tensor.fromArray(gpu, gradOutHost, out.shape);
    backward(sumAll(mul(out, gradOut)));
    const wantGrads = c.ref.backward(f64Inputs, toF64(gradOutHost));
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i];
      if (!t.requiresGrad) continue;
      const want = wantGrads[i];
      if (!want) throw new Error(`${c.name}: the reference gives no gradient for input ${i}`);
      if (!t.grad) throw new Error(`${c.name}: the GPU op gives no gradient for input ${i}`);
      assertClose(`${c.name}: gradient of input ${i}`, await t.grad.toArray(), want, c.gradTol ?? c.tol);
      if (!c.skipFiniteDifferences) {
        checkFiniteDifferences(c, f64Inputs, i, toF64(gradOutHost), want);
      }
      t.grad.dispose();
    }
  } finally {
    scope.end();
  }
}

/** Central differences of Σ ref(x)·g with respect to input `which`, on up to 48 sampled elements. */
function checkFiniteDifferences(
  c: OpCase,
  inputs: Float64Array[],
  which: number,
  gradOut: Float64Array,
  analytic: Float64Array,
): void {
  const x = inputs[which];
  const f = () => {
    const y = c.ref.forward(inputs);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i] * gradOut[i];
    return s;
  };
  const count = Math.min(48, x.length);
  const stride = x.length / count;
  const got: number[] = [];
  const want: number[] = [];
  for (let j = 0; j < count; j++) {
    const i = Math.floor(j * stride);
    const h = 1e-6 * Math.max(1, Math.abs(x[i]));
    const x0 = x[i];
    x[i] = x0 + h;
    const fp = f();
    x[i] = x0 - h;
    const fm = f();
    x[i] = x0;
    got.push(analytic[i]);
    want.push((fp - fm) / (2 * h));
  }
  assertClose(`${c.name}: reference gradient of input ${which} vs finite differences`, got, want, {
    rtol: 1e-5,
    atol: 1e-8,
  });
}
