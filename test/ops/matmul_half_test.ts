/**
 * 16-bit-input matmuls (mixed precision): every layout (A/B transposed or not) under the generated
 * kernel's configurations (vec4 and scalar loads, ragged edges, bias/alpha/beta) and the general kernel,
 * the split-K weight gradient, and autocast `linear` forward/backward. Each is checked against the f64
 * product of the *rounded* inputs (tight: only f32 accumulation error remains), against the f32 product of
 * the unrounded inputs (loose: the 16-bit rounding), and bitwise against the general kernel and a rerun.
 */
import assert from "node:assert/strict";
import { type HalfDType, Scope, Tensor } from "../../src/tensor/tensor.ts";
import { linear, matmulInto, sumAll } from "../../src/ops/mod.ts";
import { castTo, roundThroughHalf } from "../../src/ops/cast.ts";
import {
  generateMatmulWgsl,
  MATMUL_TILE_CONFIGS,
  matmulProblem,
  matmulVariantFor,
  tileConfig,
} from "../../src/ops/matmul_codegen.ts";
import type { MatmulTileConfig } from "../../src/ops/matmul_codegen.ts";
import { backward } from "../../src/tensor/autograd.ts";
import { assertClose, randomF32, rng, type Tolerance } from "../reference/compare.ts";
import { refMatmul } from "../reference/ops.ts";
import { testGpu } from "./op_harness.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

/** Only f32 accumulation error (K ≤ a few hundred): the inputs are exactly the rounded values. */
const ROUNDED: Tolerance = { rtol: 2e-5 };
/** 16-bit rounding of both inputs: f16 has 11 significant bits, bf16 8. */
const LOOSE: Record<HalfDType, Tolerance> = { f16: { rtol: 4e-3 }, bf16: { rtol: 3e-2 } };

const BIG = tileConfig(128, 128, 8, 8, 8, { pad: 0 });
const SMALL = tileConfig(64, 64, 16, 4, 4, { buffers: 1 });
const DEEP = tileConfig(64, 64, 32, 8, 4, { buffers: 1, pad: 0 });

async function checkHalfProduct(
  dtype: HalfDType,
  config: MatmulTileConfig | "general",
  batch: number,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  epilogue: { bias?: boolean; alpha?: number; beta?: number } = {},
): Promise<void> {
  const gpu = await testGpu();
  const scope = Scope.begin();
  try {
    const random = rng(m * 7 + n * 13 + k + (dtype === "f16" ? 1 : 2));
    const sa = transA ? [k, m] : [m, k];
    const sb = transB ? [n, k] : [k, n];
    const ha = randomF32(batch * m * k, random, -2, 2);
    const hb = randomF32(batch * k * n, random, -2, 2);
    const hbias = randomF32(n, random);
    const hc = randomF32(batch * m * n, random);
    const a16 = castTo(Tensor.fromArray(gpu, ha, batch > 1 ? [batch, ...sa] : sa), dtype);
    const b16 = castTo(Tensor.fromArray(gpu, hb, batch > 1 ? [batch, ...sb] : sb), dtype);
    const bias = epilogue.bias ? Tensor.fromArray(gpu, hbias, [n]) : undefined;
    const outShape = batch > 1 ? [batch, m, n] : [m, n];
    const c1 = Tensor.fromArray(gpu, hc, outShape);
    const c2 = Tensor.fromArray(gpu, hc, outShape);
    const cg = Tensor.fromArray(gpu, hc, outShape);
    const o = { transA, transB, bias, alpha: epilogue.alpha, beta: epilogue.beta };
    matmulInto(c1, a16, b16, { ...o, kernel: config });
    matmulInto(c2, a16, b16, { ...o, kernel: config });
    matmulInto(cg, a16, b16, { ...o, kernel: "general" });
    const [got, again, general] = await Promise.all([c1.toArray(), c2.toArray(), cg.toArray()]);
    const expect = (x: Float32Array, y: Float32Array) => {
      const ref = refMatmul(batch, m, n, k, transA, transB, false).forward([
        Float64Array.from(x),
        Float64Array.from(y),
      ]);
      for (let i = 0; i < ref.length; i++) {
        ref[i] = (epilogue.alpha ?? 1) * ref[i] + (epilogue.bias ? hbias[i % n] : 0) +
          (epilogue.beta ?? 0) * hc[i];
      }
      return ref;
    };
    const what = `${dtype} ${typeof config === "string" ? config : JSON.stringify(config)} b${batch} ` +
      `${m}×${n}×${k} tA=${transA} tB=${transB} ${JSON.stringify(epilogue)}`;
    assertClose(
      `${what} vs f64 of rounded inputs`,
      got,
      expect(roundThroughHalf(ha, dtype), roundThroughHalf(hb, dtype)),
      ROUNDED,
    );
    assertClose(`${what} vs f64 of the f32 inputs`, got, expect(ha, hb), LOOSE[dtype]);
    let differ = 0;
    for (let i = 0; i < got.length; i++) {
      if (!Object.is(got[i], general[i]) || !Object.is(got[i], again[i])) differ++;
    }
    assert.equal(differ, 0, `${what}: ${differ} elements differ bitwise from the general kernel or a rerun`);
  } finally {
    scope.end();
  }
}

for (const dtype of ["f16", "bf16"] as const) {
  for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]]) {
    Deno.test({
      ...opts,
      name:
        `${dtype} matmul tA=${transA} tB=${transB}: generated (vec4 and scalar loads, ragged) and general`,
      fn: async () => {
        await checkHalfProduct(dtype, BIG, 1, 128, 128, 64, transA, transB);
        await checkHalfProduct(dtype, DEEP, 2, 64, 64, 64, transA, transB, { alpha: 0.5, beta: 1 });
        await checkHalfProduct(dtype, SMALL, 1, 130, 257, 33, transA, transB, { bias: true });
        await checkHalfProduct(dtype, "general", 1, 37, 19, 45, transA, transB, { bias: true });
      },
    });
  }
}

// The small tiles (see MATMUL_TILE_CONFIGS) on 16-bit operands: vec4 and scalar loads, ragged, and the tiny
// products (K under one K tile) that take the 32×32 tile by default.
for (const dtype of ["f16", "bf16"] as const) {
  Deno.test({
    ...opts,
    name: `${dtype} matmul on the small tiles: bitwise equal to the general kernel`,
    fn: async () => {
      for (const config of MATMUL_TILE_CONFIGS.slice(12)) {
        await checkHalfProduct(dtype, config, 2, 64, 32, 48, false, true, { bias: true });
        await checkHalfProduct(dtype, config, 1, 37, 70, 45, true, false);
      }
      const tiny = MATMUL_TILE_CONFIGS[MATMUL_TILE_CONFIGS.length - 1];
      await checkHalfProduct(dtype, tiny, 1, 32, 3, 7, false, true, { bias: true });
      await checkHalfProduct(dtype, tiny, 1, 5, 64, 3, true, false);
    },
  });
}

Deno.test("generated 16-bit source: f16 enables the extension, bf16 unpacks u32 words", () => {
  const p = matmulProblem(128, 128, 64, false, true, { halfA: "f16", halfB: "f16" });
  const f16 = generateMatmulWgsl(BIG, matmulVariantFor(p, BIG));
  assert.match(f16, /^enable f16;$/m);
  assert.match(f16, /array<vec4<f16>>/);
  const q = matmulProblem(130, 128, 33, false, true, { halfA: "bf16", halfB: "bf16" });
  const bf16 = generateMatmulWgsl(BIG, matmulVariantFor(q, BIG));
  assert.doesNotMatch(bf16, /enable f16/);
  assert.match(bf16, /fn bf16_A\(i: u32\) -> f32/);
  const plain = generateMatmulWgsl(BIG, matmulVariantFor(matmulProblem(128, 128, 64, false, true), BIG));
  assert.doesNotMatch(plain, /f16|bf16/);
});

for (const dtype of ["f16", "bf16"] as const) {
  Deno.test({
    ...opts,
    name: `${dtype} split-K weight gradient (Aᵀ·B, K = 4·2048 + 37) vs f64 of rounded inputs`,
    fn: async () => {
      const gpu = await testGpu();
      const scope = Scope.begin();
      try {
        const m = 32, n = 20, k = 4 * 2048 + 37; // ≥ 2²² multiply-adds: split (splitKChunk)
        const random = rng(5);
        const ha = randomF32(k * m, random);
        const hb = randomF32(k * n, random);
        const out = Tensor.empty(gpu, [m, n]);
        matmulInto(
          out,
          castTo(Tensor.fromArray(gpu, ha, [k, m]), dtype),
          castTo(Tensor.fromArray(gpu, hb, [k, n]), dtype),
          {
            transA: true,
          },
        );
        const ref = refMatmul(1, m, n, k, true, false, false).forward([
          Float64Array.from(roundThroughHalf(ha, dtype)),
          Float64Array.from(roundThroughHalf(hb, dtype)),
        ]);
        assertClose(`${dtype} split-K`, await out.toArray(), ref, { rtol: 1e-4 });
      } finally {
        scope.end();
      }
    },
  });

  Deno.test({
    ...opts,
    name: `${dtype} autocast linear: forward and gradients vs f64 of rounded operands`,
    fn: async () => {
      const gpu = await testGpu();
      const scope = Scope.begin();
      try {
        const rows = 40, inF = 24, outF = 12;
        const random = rng(9);
        const hx = randomF32(rows * inF, random);
        const hw = randomF32(outF * inF, random);
        const hbias = randomF32(outF, random);
        const hg = randomF32(rows * outF, random);
        const x = Tensor.fromArray(gpu, hx, [rows, inF]);
        const w = Tensor.fromArray(gpu, hw, [outF, inF]);
        const b = Tensor.fromArray(gpu, hbias, [outF]);
        const g = Tensor.fromArray(gpu, hg, [rows, outF]);
        for (const t of [x, w, b]) t.requiresGrad = true;
        const y = linear(x, w, b, { dtype });
        assert.equal(y.dtype, "f32");
        // Σ y ⊙ g has gradient g at y.
        const { mul } = await import("../../src/ops/mod.ts");
        backward(sumAll(mul(y, g)));
        const xr = Float64Array.from(roundThroughHalf(hx, dtype));
        const wr = Float64Array.from(roundThroughHalf(hw, dtype));
        const gr = Float64Array.from(roundThroughHalf(hg, dtype));
        const ref = refMatmul(1, rows, outF, inF, false, true, true);
        assertClose(
          `${dtype} linear forward`,
          await y.toArray(),
          ref.forward([xr, wr, Float64Array.from(hbias)]),
          ROUNDED,
        );
        const [gx, gw] = ref.backward([xr, wr, Float64Array.from(hbias)], gr);
        assertClose(`${dtype} linear dX`, await x.grad!.toArray(), gx!, ROUNDED);
        assertClose(`${dtype} linear dW`, await w.grad!.toArray(), gw!, ROUNDED);
        const gbias = new Float64Array(outF);
        for (let i = 0; i < hg.length; i++) gbias[i % outF] += hg[i];
        assertClose(`${dtype} linear dbias (f32 gradient)`, await b.grad!.toArray(), gbias, ROUNDED);
        for (const t of [x, w, b]) t.grad?.dispose();
      } finally {
        scope.end();
      }
    },
  });
}

Deno.test({
  ...opts,
  name: "subnormal 16-bit operands are widened exactly (f16 subnormals; bf16 patterns of f32 subnormals)",
  fn: async () => {
    const gpu = await testGpu();
    const scope = Scope.begin();
    try {
      for (
        const [dtype, tiny, big] of [["f16", 3 * 2 ** -24, 2 ** 10], ["bf16", 2 ** -130, 2 ** 20]] as const
      ) {
        for (const kernel of ["general", SMALL] as const) {
          const m = 64, k = 16;
          const ha = new Float32Array(m * k).fill(tiny);
          const hb = new Float32Array(k * m);
          for (let i = 0; i < m; i++) hb[i] = big; // row 0 of B: only k = 0 contributes
          const c = Tensor.empty(gpu, [m, m]);
          matmulInto(
            c,
            castTo(Tensor.fromArray(gpu, ha, [m, k]), dtype),
            castTo(Tensor.fromArray(gpu, hb, [k, m]), dtype),
            {
              kernel,
            },
          );
          const got = await c.toArray();
          assert.ok(
            got.every((x) => x === tiny * big),
            `${dtype} ${JSON.stringify(kernel)}: got ${got[0]}, want ${tiny * big}`,
          );
        }
      }
    } finally {
      scope.end();
    }
  },
});
