/**
 * Collecting the matmul problems of a recording (`collectMatmulProblems`): forward and backward products
 * deduplicated in first-seen order, forced kernels and the split-K decision left out (its inner batched
 * product kept), materialized attention's products included, nesting, and no collection outside.
 */
import assert from "node:assert/strict";
import { backward, noGrad } from "../../src/tensor/autograd.ts";
import { Scope, Tensor } from "../../src/tensor/tensor.ts";
import { matmul, matmulInto, splitKChunk, sumAll } from "../../src/ops/mod.ts";
import { rotaryAttention } from "../../src/ops/attention.ts";
import { collectMatmulProblems } from "../../src/ops/matmul_problems.ts";
import { matmulProblem, matmulProblemKey } from "../../src/ops/matmul_codegen.ts";
import { randomF32, rng } from "../reference/compare.ts";
import { testGpu } from "./op_harness.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  ...opts,
  name: "collectMatmulProblems: forward and backward products, deduplicated, first-seen order",
  fn: async () => {
    const gpu = await testGpu();
    const scope = Scope.begin();
    try {
      const random = rng(3);
      const a = Tensor.fromArray(gpu, randomF32(40 * 24, random), [40, 24]);
      const b = Tensor.fromArray(gpu, randomF32(24 * 16, random), [24, 16]);
      a.requiresGrad = b.requiresGrad = true;
      const { result, problems } = collectMatmulProblems(() => {
        const y = matmul(a, b);
        matmul(a, b); // the same shape again: collected once
        backward(sumAll(y));
        return y.shape;
      });
      assert.deepEqual(result, [40, 16]);
      assert.deepEqual(problems.map(matmulProblemKey), [
        "b1_m40_n16_k24_nn", // y = a·b
        "b1_m40_n24_k16_nt", // da = g·bᵀ
        "b1_m24_n16_k40_tn", // db = aᵀ·g
      ]);
      assert.equal(problems[0].strideA, 0);
      // Outside a collection nothing is kept, and a later collection starts empty.
      matmul(a, b);
      assert.deepEqual(collectMatmulProblems(() => 1).problems, []);
    } finally {
      scope.end();
    }
  },
});

Deno.test({
  ...opts,
  name: "collectMatmulProblems: forced kernels and empty products are left out; nested collections both see",
  fn: async () => {
    const gpu = await testGpu();
    const scope = Scope.begin();
    try {
      const random = rng(4);
      const a = Tensor.fromArray(gpu, randomF32(3 * 20 * 12, random), [3, 20, 12]);
      const b = Tensor.fromArray(gpu, randomF32(3 * 12 * 8, random), [3, 12, 8]);
      const c = Tensor.empty(gpu, [3, 20, 8]);
      let inner: string[] = [];
      const outer = collectMatmulProblems(() => {
        noGrad(() => matmulInto(c, a, b, { kernel: "general" }));
        inner = collectMatmulProblems(() => noGrad(() => matmulInto(c, a, b, { beta: 1 }))).problems
          .map(matmulProblemKey);
        const b2 = Tensor.fromArray(gpu, randomF32(12 * 8, random), [12, 8]);
        noGrad(() => matmul(Tensor.empty(gpu, [0, 12]), b2)); // M = 0: nothing to tune
      });
      assert.deepEqual(inner, ["b3_m20_n8_k12_nn"]);
      assert.deepEqual(outer.problems.map(matmulProblemKey), ["b3_m20_n8_k12_nn"]);
      assert.equal(outer.problems[0].strideA, 20 * 12);
      assert.equal(outer.problems[0].beta, 1);
      assert.throws(
        () => collectMatmulProblems(() => Promise.resolve(1)),
        /Cannot collect matmul problems of an async function/,
      );
    } finally {
      scope.end();
    }
  },
});

Deno.test({
  ...opts,
  name: "collectMatmulProblems: a split-K weight gradient contributes its batched partial product only",
  fn: async () => {
    const gpu = await testGpu();
    const scope = Scope.begin();
    try {
      const [k, m, n] = [4096 + 100, 32, 48];
      const p = matmulProblem(m, n, k, true, false);
      const chunk = splitKChunk(p);
      assert.ok(chunk !== null, "this shape takes split-K");
      const random = rng(5);
      const a = Tensor.fromArray(gpu, randomF32(k * m, random), [k, m]);
      const b = Tensor.fromArray(gpu, randomF32(k * n, random), [k, n]);
      const out = Tensor.empty(gpu, [m, n]);
      const { problems } = collectMatmulProblems(() => noGrad(() => matmulInto(out, a, b, { transA: true })));
      const full = Math.floor(k / chunk!);
      // The split itself and its tail (forced "generated") are not tunable; the partials product is.
      assert.deepEqual(problems.map(matmulProblemKey), [`b${full}_m${m}_n${n}_k${chunk}_tn`]);
    } finally {
      scope.end();
    }
  },
});

Deno.test({
  ...opts,
  name: "collectMatmulProblems: materialized attention's products are collected (forward and backward)",
  fn: async () => {
    const gpu = await testGpu();
    const scope = Scope.begin();
    try {
      const random = rng(6);
      const [batch, lq, lk, heads, dh] = [2, 24, 40, 2, 16];
      const w = heads * dh;
      const q = Tensor.fromArray(gpu, randomF32(batch * lq * w, random), [batch, lq, w]);
      const kv = Tensor.fromArray(gpu, randomF32(batch * lk * 2 * w, random), [batch, lk, 2 * w]);
      q.requiresGrad = kv.requiresGrad = true;
      const { problems } = collectMatmulProblems(() => {
        const o = rotaryAttention({
          q: { tensor: q, colOffset: 0 },
          k: { tensor: kv, colOffset: 0 },
          v: { tensor: kv, colOffset: w },
          heads,
          dimHead: dh,
          qTime: Tensor.fromArray(gpu, randomF32(batch * lq, random, 0, 4), [batch, lq]),
          kTime: Tensor.fromArray(gpu, randomF32(batch * lk, random, 0, 4), [batch, lk]),
          kvLen: Tensor.fromArray(gpu, Int32Array.from([lk, 17]), [batch]),
          rotateValue: false,
          tMin: 1e-4,
          tMax: 2.0627,
          implementation: "materialized",
        });
        backward(sumAll(o));
      });
      const keys = problems.map(matmulProblemKey);
      const bh = batch * heads;
      for (
        const key of [
          `b${bh}_m${lq}_n${lk}_k${dh}_nt`, // S = q·kᵀ
          `b${bh}_m${lq}_n${dh}_k${lk}_nn`, // O = P·V (and dQ = dS·K)
          `b${bh}_m${lk}_n${dh}_k${lq}_tn`, // dV = Pᵀ·dO (and dK = dSᵀ·Q)
        ]
      ) assert.ok(keys.includes(key), `${key} collected: ${keys.join(", ")}`);
    } finally {
      scope.end();
    }
  },
});
