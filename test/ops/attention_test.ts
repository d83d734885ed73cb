/**
 * Tests of the rotary attention op beyond the shared gradient suite (cases_attention.ts): bitwise
 * determinism, the exact rotary angle (large times included), kvLen = 0, split keys vs one pass, and
 * input validation. The op-level tests here run the flash kernels (the materialized path has its own,
 * attention_materialized_test.ts).
 */
import assert from "node:assert/strict";
import { backward } from "../../src/tensor/autograd.ts";
import { Scope, Tensor } from "../../src/tensor/tensor.ts";
import { mul, sumAll } from "../../src/ops/mod.ts";
import { rotaryAttention, type RotaryAttentionOptions } from "../../src/ops/attention.ts";
import { rotaryAngleF32, rotaryEmbed, rotaryPeriods, rotaryWgsl, TWO_PI_F32 } from "../../src/ops/rotary.ts";
import { assertClose, randomF32, rng } from "../reference/compare.ts";
import { testGpu } from "./op_harness.ts";
import type { Gpu } from "../../src/gpu/gpu.ts";

const T_MIN = 1e-4;
const T_MAX = 2.0627;
const opts = { sanitizeResources: false, sanitizeOps: false };

interface Problem {
  options: RotaryAttentionOptions;
  gradOut: Tensor;
  inputs: Tensor[];
}

function crossProblem(
  gpu: Gpu,
  seed: number,
  kvLen: number[],
  extra: Partial<RotaryAttentionOptions> = {},
): Problem {
  const random = rng(seed);
  const [batch, lq, lk, heads, dh] = [kvLen.length, 23, 70, 2, 16];
  const w = heads * dh;
  const q = Tensor.fromArray(gpu, randomF32(batch * lq * w, random), [batch, lq, w]);
  const kv = Tensor.fromArray(gpu, randomF32(batch * lk * 2 * w, random), [batch, lk, 2 * w]);
  q.requiresGrad = kv.requiresGrad = true;
  const qTime = Tensor.fromArray(gpu, randomF32(batch * lq, random, 0, 4), [batch, lq]);
  const kTime = Tensor.fromArray(gpu, randomF32(batch * lk, random, 0, 4), [batch, lk]);
  const gradOut = Tensor.fromArray(gpu, randomF32(batch * lq * w, random), [batch, lq, w]);
  return {
    inputs: [q, kv],
    gradOut,
    options: {
      q: { tensor: q, colOffset: 0 },
      k: { tensor: kv, colOffset: 0 },
      v: { tensor: kv, colOffset: w },
      heads,
      dimHead: dh,
      qTime,
      kTime,
      kvLen: Tensor.fromArray(gpu, Int32Array.from(kvLen), [batch]),
      rotateValue: true,
      tMin: T_MIN,
      tMax: T_MAX,
      implementation: "flash",
      ...extra,
    },
  };
}

function selfProblem(gpu: Gpu, seed: number): Problem {
  const random = rng(seed);
  const [batch, len, heads, dh] = [2, 45, 3, 16];
  const w = heads * dh;
  const qkv = Tensor.fromArray(gpu, randomF32(batch * len * 3 * w, random), [batch, len, 3 * w]);
  qkv.requiresGrad = true;
  const time = Tensor.fromArray(gpu, randomF32(len, random, 0, 4), [len]);
  return {
    inputs: [qkv],
    gradOut: Tensor.fromArray(gpu, randomF32(batch * len * w, random), [batch, len, w]),
    options: {
      q: { tensor: qkv, colOffset: 0 },
      k: { tensor: qkv, colOffset: w },
      v: { tensor: qkv, colOffset: 2 * w },
      heads,
      dimHead: dh,
      qTime: time,
      kTime: time,
      kvLen: Tensor.fromArray(gpu, Int32Array.from([len, 31]), [batch]),
      rotateValue: true,
      tMin: T_MIN,
      tMax: T_MAX,
      implementation: "flash",
    },
  };
}

/** Output and input gradients of one forward + backward. */
async function run(p: Problem, extra: Partial<RotaryAttentionOptions> = {}): Promise<Float32Array[]> {
  for (const t of p.inputs) t.grad = null;
  const out = rotaryAttention({ ...p.options, ...extra });
  backward(sumAll(mul(out, p.gradOut)));
  const arrays = [await out.toArray(), ...await Promise.all(p.inputs.map((t) => t.grad!.toArray()))];
  for (const t of p.inputs) t.grad!.dispose();
  return arrays as Float32Array[];
}

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

Deno.test({
  name: "rotaryAttention forward+backward is bit-identical run to run (self, and cross with split keys)",
  ...opts,
  fn: async () => {
    const gpu = await testGpu();
    const scope = Scope.begin();
    try {
      for (
        const [name, p, extra] of [
          ["self", selfProblem(gpu, 3), {}],
          ["cross split", crossProblem(gpu, 4, [70, 41, 9]), { keysPerSplit: 16 }],
        ] as const
      ) {
        const first = await run(p, extra);
        const second = await run(p, extra);
        first.forEach((a, i) =>
          assert.ok(bitsEqual(a, second[i]), `${name}: array ${i} differs between runs`)
        );
        assert.ok(first.every((a) => a.every(Number.isFinite)), `${name}: non-finite values`);
      }
    } finally {
      scope.end();
    }
  },
});

Deno.test({
  name: "rotaryAttention with split keys matches the single pass",
  ...opts,
  fn: async () => {
    const gpu = await testGpu();
    const scope = Scope.begin();
    try {
      const p = crossProblem(gpu, 5, [70, 33, 70]);
      const one = await run(p);
      const split = await run(p, { keysPerSplit: 16 });
      one.forEach((a, i) => assertClose(`split vs single pass, array ${i}`, split[i], a, { rtol: 1e-5 }));
    } finally {
      scope.end();
    }
  },
});

Deno.test({
  name: "rotaryAttention: kvLen = 0 gives zero outputs and zero gradients for that batch row",
  ...opts,
  fn: async () => {
    const gpu = await testGpu();
    const scope = Scope.begin();
    try {
      const p = crossProblem(gpu, 6, [0, 70]);
      const [out, dq, dkv] = await run(p);
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

/** The f32 significand and exponent of a period, as rotary_div takes them. */
function parts(x: number): [number, number] {
  const bits = new Uint32Array(new Float32Array([x]).buffer)[0];
  return [(bits & 0x7fffff) | 0x800000, ((bits >>> 23) & 0xff) - 127];
}

Deno.test({
  name: "rotary_div is the correctly rounded f32 quotient t/P on the GPU (large t included)",
  ...opts,
  fn: async () => {
    const gpu = await testGpu();
    const periods = rotaryPeriods(64, T_MIN, T_MAX);
    const random = rng(9);
    const times = new Float32Array(4096);
    for (let i = 0; i < times.length; i++) {
      // Window times, then times up to 10^5 s, negative ones, and exact multiples of a period.
      const kind = i % 4;
      times[i] = kind === 0
        ? 4 * random()
        : kind === 1
        ? 10 ** (5 * random())
        : kind === 2
        ? -50 * random()
        : Math.fround(periods[i % periods.length] * Math.floor(1000 * random()));
    }
    const checks = [0, 5, 11, 15].map((i) => periods[i]);
    const code = `${rotaryWgsl({ dimHead: 64, tMin: T_MIN, tMax: T_MAX })}
@group(0) @binding(0) var<storage, read> t: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x;
${
      checks.map((p, j) =>
        `  out[${checks.length}u * i + ${j}u] = rotary_div(t[i], ${parts(p)[0]}u, ${parts(p)[1]}i);`
      ).join("\n")
    }
}`;
    const scope = Scope.begin();
    try {
      const tt = Tensor.fromArray(gpu, times, [times.length]);
      const out = Tensor.empty(gpu, [times.length * checks.length]);
      gpu.dispatch(
        { name: "test.rotary_div", code, bindings: ["read", "rw"] },
        [tt.binding(), out.binding()],
        [
          times.length / 64,
        ],
      );
      const got = await out.toArray() as Float32Array;
      let mismatches = 0;
      const first: string[] = [];
      times.forEach((t, i) =>
        checks.forEach((p, j) => {
          const want = Math.fround(t / p);
          if (got[checks.length * i + j] !== want && !(Math.abs(want) < 2 ** -126)) {
            mismatches++;
            if (first.length < 5) first.push(`t=${t} P=${p}: got ${got[checks.length * i + j]} want ${want}`);
          }
        })
      );
      assert.equal(mismatches, 0, `rotary_div differs from fround(t/P):\n${first.join("\n")}`);
    } finally {
      scope.end();
    }
  },
});

Deno.test({
  name: "rotary angle θ = 2π·fract(t/P) in f32: GPU cos/sin match it at large t, where sin(2πt/P) would not",
  ...opts,
  fn: async () => {
    const gpu = await testGpu();
    const dh = 16;
    const periods = rotaryPeriods(dh, T_MIN, T_MAX);
    const times = Float32Array.from([0, 0.37, 3.999, 1000.37, 4321.5, 65000.125]);
    // x = (1, 0) in every rotating pair: the rotated pair is (cos θ, sin θ).
    const x = new Float32Array(times.length * dh);
    for (let r = 0; r < times.length; r++) for (let i = 0; i < dh / 4; i++) x[r * dh + 2 * i] = 1;
    const scope = Scope.begin();
    try {
      const out = rotaryEmbed(
        Tensor.fromArray(gpu, x, [1, times.length, dh]),
        Tensor.fromArray(gpu, times, [times.length]),
        { heads: 1, dimHead: dh, tMin: T_MIN, tMax: T_MAX },
      );
      const got = await out.toArray();
      let naiveWorst = 0;
      for (let r = 0; r < times.length; r++) {
        for (let i = 0; i < periods.length; i++) {
          const theta = rotaryAngleF32(times[r], periods[i]);
          const c = got[r * dh + 2 * i];
          const s = got[r * dh + 2 * i + 1];
          assert.ok(
            Math.abs(c - Math.cos(theta)) < 2e-6 && Math.abs(s - Math.sin(theta)) < 2e-6,
            `t=${times[r]} pair ${i}: got (${c}, ${s}), want (${Math.cos(theta)}, ${Math.sin(theta)})`,
          );
          // The angle formula itself against exact arithmetic on the f32 inputs: 2π·fract(t/P).
          const exactFrac = (() => {
            const q = Math.fround(times[r]) / periods[i];
            return q - Math.floor(q);
          })();
          const qf = Math.fround(times[r] / periods[i]);
          assert.ok(Math.abs(theta - TWO_PI_F32 * (qf - Math.floor(qf))) < 1e-6);
          if (Math.abs(times[r]) < 4) {
            assert.ok(Math.abs(Math.cos(theta) - Math.cos(2 * Math.PI * exactFrac)) < 5e-3);
          }
          const naive = Math.fround(Math.fround(TWO_PI_F32 / periods[i]) * times[r]);
          naiveWorst = Math.max(naiveWorst, Math.abs(Math.cos(naive) - Math.cos(theta)));
        }
      }
      // A naive f32 angle at these times is off by far more than the tolerance above.
      assert.ok(naiveWorst > 0.1, `naive angle error ${naiveWorst} should be large at t = 65000 s`);
    } finally {
      scope.end();
    }
  },
});

Deno.test({
  name: "rotaryPeriods follows the contract's geometric formula",
  fn: () => {
    const p = rotaryPeriods(64, T_MIN, T_MAX);
    assert.equal(p.length, 16);
    assert.equal(p[0], Math.fround(T_MIN));
    assert.equal(p[15], Math.fround(T_MAX));
    for (let i = 0; i < 16; i++) {
      const want = Math.exp(Math.log(T_MIN) + (Math.log(T_MAX) - Math.log(T_MIN)) * i / 15);
      assert.equal(p[i], Math.fround(want));
    }
    assert.deepEqual([...rotaryPeriods(4, 0.5, 3)], [0.5]);
  },
});

Deno.test({
  name: "rotaryAttention rejects bad inputs with errors naming the field",
  ...opts,
  fn: async () => {
    const gpu = await testGpu();
    const scope = Scope.begin();
    try {
      const p = crossProblem(gpu, 7, [70, 70]);
      const o = p.options;
      const other = Tensor.fromArray(gpu, new Float32Array(2 * 70 * 64), [2, 70, 64]);
      const cases: [Partial<RotaryAttentionOptions>, RegExp][] = [
        [{ v: { tensor: other, colOffset: 32 } }, /k and v must be column slices of one tensor/],
        [
          { v: { tensor: o.k.tensor, colOffset: 16 } },
          /k and v column slices of one tensor must not overlap/,
        ],
        [{ q: { tensor: o.q.tensor, colOffset: 2 } }, /q\.colOffset must be a non-negative multiple of 4/],
        [{ k: { tensor: o.k.tensor, colOffset: 48 } }, /k needs columns 48\.\.80/],
        [{ dimHead: 6, heads: 1 }, /dimHead must be a positive multiple of 4/],
        [{ qTime: o.kTime }, /qTime must be \[2, 23\] or \[23\]/],
        [{ kvLen: o.qTime }, /kvLen must be i32/],
        [
          { atnDropout: { p: 0.1, seed: 1, step: 0, rank: 0, tensorId: 3 } },
          /attention dropout is not implemented/,
        ],
        [{ tiles: { forward: { tx: 3, ty: 4, rows: 4, cols: 4 } } }, /forward tile shape must fit/],
        [{ keysPerSplit: 10 }, /keysPerSplit must be a positive multiple/],
        [
          { implementation: "fast" as unknown as "flash" },
          /implementation must be "auto", "flash" or "materialized"/,
        ],
      ];
      for (const [change, message] of cases) {
        assert.throws(() => rotaryAttention({ ...o, ...change }), message);
      }
    } finally {
      scope.end();
    }
  },
});
