/**
 * Tests of the materialized rotary attention path (src/ops/attention_materialized.ts) beyond the shared
 * gradient suite, which checks it against the f64 reference (cases_attention.ts, "[materialized]" cases):
 * agreement with the flash kernels, bitwise determinism, kvLen = 0, gradients of one input only, and the
 * implementation choice.
 */
import assert from "node:assert/strict";
import { backward } from "../../src/tensor/autograd.ts";
import { Scope, Tensor } from "../../src/tensor/tensor.ts";
import { mul, sumAll } from "../../src/ops/mod.ts";
import {
  rotaryAttention,
  rotaryAttentionImplementation,
  type RotaryAttentionOptions,
} from "../../src/ops/attention.ts";
import {
  attentionScoreBytes,
  chooseAttentionImplementation,
  MATERIALIZED_ATTENTION_MAX_BYTES,
  materializedProblem,
} from "../../src/ops/attention_selection.ts";
import { assertClose, randomF32, rng } from "../reference/compare.ts";
import { testGpu } from "./op_harness.ts";
import type { Gpu } from "../../src/gpu/gpu.ts";

const T_MIN = 1e-4;
const T_MAX = 2.0627;
const opts = { sanitizeResources: false, sanitizeOps: false };

interface Problem {
  name: string;
  options: RotaryAttentionOptions;
  gradOut: Tensor;
  inputs: Tensor[];
}

interface Geometry {
  lq: number;
  lk: number;
  heads: number;
  dimHead: number;
  rotateValue: boolean;
  kvLen: number[];
}

function crossProblem(gpu: Gpu, seed: number, g: Geometry): Problem {
  const random = rng(seed);
  const batch = g.kvLen.length;
  const w = g.heads * g.dimHead;
  const q = Tensor.fromArray(gpu, randomF32(batch * g.lq * w, random), [batch, g.lq, w]);
  const kv = Tensor.fromArray(gpu, randomF32(batch * g.lk * 2 * w, random), [batch, g.lk, 2 * w]);
  q.requiresGrad = kv.requiresGrad = true;
  const qTime = Tensor.fromArray(gpu, randomF32(batch * g.lq, random, 0, 4), [batch, g.lq]);
  const kTime = Tensor.fromArray(gpu, randomF32(batch * g.lk, random, 0, 4), [batch, g.lk]);
  return {
    name: `cross Lq${g.lq} Lk${g.lk} h${g.heads} dh${g.dimHead} rotV=${g.rotateValue} ` +
      `kvLen=${JSON.stringify(g.kvLen)}`,
    inputs: [q, kv],
    gradOut: Tensor.fromArray(gpu, randomF32(batch * g.lq * w, random), [batch, g.lq, w]),
    options: {
      q: { tensor: q, colOffset: 0 },
      k: { tensor: kv, colOffset: 0 },
      v: { tensor: kv, colOffset: w },
      heads: g.heads,
      dimHead: g.dimHead,
      qTime,
      kTime,
      kvLen: Tensor.fromArray(gpu, Int32Array.from(g.kvLen), [batch]),
      rotateValue: g.rotateValue,
      tMin: T_MIN,
      tMax: T_MAX,
    },
  };
}

function selfProblem(gpu: Gpu, seed: number, g: Omit<Geometry, "lk">): Problem {
  const random = rng(seed);
  const batch = g.kvLen.length;
  const w = g.heads * g.dimHead;
  const qkv = Tensor.fromArray(gpu, randomF32(batch * g.lq * 3 * w, random), [batch, g.lq, 3 * w]);
  qkv.requiresGrad = true;
  const time = Tensor.fromArray(gpu, randomF32(batch * g.lq, random, 0, 4), [batch, g.lq]);
  return {
    name: `self L${g.lq} h${g.heads} dh${g.dimHead} rotV=${g.rotateValue} kvLen=${JSON.stringify(g.kvLen)}`,
    inputs: [qkv],
    gradOut: Tensor.fromArray(gpu, randomF32(batch * g.lq * w, random), [batch, g.lq, w]),
    options: {
      q: { tensor: qkv, colOffset: 0 },
      k: { tensor: qkv, colOffset: w },
      v: { tensor: qkv, colOffset: 2 * w },
      heads: g.heads,
      dimHead: g.dimHead,
      qTime: time,
      kTime: time,
      kvLen: Tensor.fromArray(gpu, Int32Array.from(g.kvLen), [batch]),
      rotateValue: g.rotateValue,
      tMin: T_MIN,
      tMax: T_MAX,
    },
  };
}

function problems(gpu: Gpu): Problem[] {
  return [
    selfProblem(gpu, 11, { lq: 45, heads: 3, dimHead: 16, rotateValue: true, kvLen: [45, 31, 0] }),
    selfProblem(gpu, 12, { lq: 70, heads: 2, dimHead: 64, rotateValue: false, kvLen: [1, 70] }),
    crossProblem(gpu, 13, { lq: 23, lk: 150, heads: 2, dimHead: 16, rotateValue: true, kvLen: [150, 77, 0] }),
    crossProblem(gpu, 14, { lq: 65, lk: 33, heads: 1, dimHead: 64, rotateValue: false, kvLen: [33, 5] }),
  ];
}

/** Output and the gradients of the inputs that want one, after one forward + backward. */
async function run(p: Problem, implementation: "flash" | "materialized"): Promise<Float32Array[]> {
  for (const t of p.inputs) t.grad = null;
  const out = rotaryAttention({ ...p.options, implementation });
  backward(sumAll(mul(out, p.gradOut)));
  const arrays: Float32Array[] = [await out.toArray() as Float32Array];
  for (const t of p.inputs) {
    if (!t.requiresGrad) continue;
    arrays.push(await t.grad!.toArray() as Float32Array);
    t.grad!.dispose();
  }
  return arrays;
}

/** The first differing elements of two arrays, bit for bit. */
function bitMismatches(a: Float32Array, b: Float32Array): string[] {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  const out: string[] = [];
  if (x.length !== y.length) return [`lengths ${x.length} and ${y.length}`];
  for (let i = 0; i < x.length && out.length < 5; i++) {
    if (x[i] !== y[i]) out.push(`[${i}] ${a[i]} vs ${b[i]}`);
  }
  return out;
}

const NAMES = ["output", "grad 0", "grad 1"];

Deno.test({
  name: "materialized attention agrees with the flash kernels (outputs and every gradient)",
  ...opts,
  fn: async () => {
    const gpu = await testGpu();
    const scope = Scope.begin();
    try {
      for (const p of problems(gpu)) {
        assert.equal(
          rotaryAttentionImplementation({ ...p.options, implementation: "materialized" }),
          "materialized",
        );
        const flash = await run(p, "flash");
        const mat = await run(p, "materialized");
        assert.equal(mat.length, flash.length);
        mat.forEach((a, i) =>
          assertClose(`${p.name}: materialized vs flash ${NAMES[i]}`, a, flash[i], { rtol: 1e-5 })
        );
      }
    } finally {
      scope.end();
    }
  },
});

Deno.test({
  name: "materialized attention forward+backward is bit-identical run to run",
  ...opts,
  fn: async () => {
    const gpu = await testGpu();
    const scope = Scope.begin();
    try {
      for (const p of problems(gpu)) {
        const first = await run(p, "materialized");
        const second = await run(p, "materialized");
        first.forEach((a, i) => {
          const bad = bitMismatches(a, second[i]);
          assert.equal(bad.length, 0, `${p.name}: ${NAMES[i]} differs between runs:\n${bad.join("\n")}`);
          assert.ok(a.every(Number.isFinite), `${p.name}: ${NAMES[i]} has non-finite values`);
        });
      }
    } finally {
      scope.end();
    }
  },
});

Deno.test({
  name: "materialized attention: kvLen = 0 gives exactly zero outputs and gradients for that batch row",
  ...opts,
  fn: async () => {
    const gpu = await testGpu();
    const scope = Scope.begin();
    try {
      const p = crossProblem(gpu, 15, {
        lq: 9,
        lk: 40,
        heads: 2,
        dimHead: 16,
        rotateValue: true,
        kvLen: [0, 40],
      });
      const [out, dq, dkv] = await run(p, "materialized");
      const half = (a: Float32Array) => a.subarray(0, a.length / 2);
      for (const [name, a] of [["output", out], ["dq", dq], ["dkv", dkv]] as const) {
        assert.ok(half(a).every((v) => v === 0), `${name} of the kvLen = 0 row must be exactly 0`);
        assert.ok(a.subarray(a.length / 2).some((v) => v !== 0), `${name} of the other row must not be 0`);
      }
    } finally {
      scope.end();
    }
  },
});

Deno.test({
  name: "materialized attention: only the input that wants a gradient gets one (cross-attention)",
  ...opts,
  fn: async () => {
    const gpu = await testGpu();
    const scope = Scope.begin();
    try {
      const geometry = { lq: 17, lk: 50, heads: 2, dimHead: 16, rotateValue: true, kvLen: [50, 21] };
      for (const which of [0, 1]) {
        const p = crossProblem(gpu, 16, geometry);
        p.inputs[1 - which].requiresGrad = false;
        const flash = await run(p, "flash");
        const mat = await run(p, "materialized");
        assert.equal(mat.length, 2);
        assert.equal(p.inputs[1 - which].grad, null);
        mat.forEach((a, i) =>
          assertClose(`only input ${which}: materialized vs flash ${NAMES[i]}`, a, flash[i], { rtol: 1e-5 })
        );
      }
    } finally {
      scope.end();
    }
  },
});

Deno.test({
  name: "attention implementation: auto materializes up to the byte budget, by shape and adapter kind",
  ...opts,
  fn: async () => {
    // POYO at the seed size: encoder cross-attention (N 2600) and latent self-attention.
    const cross = { batch: 32, heads: 1, lq: 512, lk: 2600 };
    const self = { batch: 32, heads: 8, lq: 512, lk: 512 };
    assert.equal(attentionScoreBytes(cross), 170_393_600);
    assert.equal(attentionScoreBytes(self), 256 * 2 ** 20);
    for (const s of [cross, self]) {
      assert.equal(chooseAttentionImplementation(s, "auto", 2 ** 31), "materialized");
    }
    // 1 GiB exactly is still materialized; one more key row is not.
    const atBudget = { batch: 64, heads: 8, lq: 1024, lk: 512 };
    assert.equal(attentionScoreBytes(atBudget), MATERIALIZED_ATTENTION_MAX_BYTES);
    assert.equal(chooseAttentionImplementation(atBudget, "auto", 2 ** 32), "materialized");
    assert.equal(chooseAttentionImplementation({ ...atBudget, lk: 513 }, "auto", 2 ** 32), "flash");
    // The device's binding limit, empty problems, and explicit choices.
    assert.equal(chooseAttentionImplementation(self, "auto", 2 ** 27), "flash");
    assert.equal(chooseAttentionImplementation({ ...self, lk: 0 }, "auto"), "flash");
    assert.equal(chooseAttentionImplementation(self, "flash"), "flash");
    // A software adapter runs the fused kernels faster: auto picks flash there, explicit choices stand.
    assert.equal(chooseAttentionImplementation(self, "auto", 2 ** 31, true), "flash");
    assert.equal(chooseAttentionImplementation(self, "materialized", 2 ** 31, true), "materialized");
    assert.equal(chooseAttentionImplementation({ ...atBudget, lk: 4096 }, "materialized"), "materialized");
    assert.match(materializedProblem(self, 2 ** 27)!, /largest buffer binding/);
    assert.match(materializedProblem({ batch: 70000, heads: 1, lq: 1, lk: 1 }, 2 ** 31)!, /B·heads = 70000/);
    assert.equal(materializedProblem(self, 2 ** 31), null);

    const gpu = await testGpu();
    const scope = Scope.begin();
    try {
      const p = crossProblem(gpu, 17, {
        lq: 8,
        lk: 12,
        heads: 1,
        dimHead: 16,
        rotateValue: true,
        kvLen: [12],
      });
      // On the adapter the test runs on: flash when it is a software one (llvmpipe in CI), else materialized.
      assert.equal(
        rotaryAttentionImplementation(p.options),
        gpu.description.isFallbackAdapter ? "flash" : "materialized",
      );
      assert.equal(rotaryAttentionImplementation({ ...p.options, implementation: "flash" }), "flash");
      assert.equal(
        rotaryAttentionImplementation({ ...p.options, implementation: "materialized" }),
        "materialized",
      );
    } finally {
      scope.end();
    }
  },
});
