/**
 * Optimizers and schedules against f64 TypeScript references over ≥ 20 steps.
 */
import assert from "node:assert/strict";
import { testGpu } from "../ops/op_harness.ts";
import { type ParameterSpec, ParameterStore } from "../../src/tensor/parameters.ts";
import { FlatOptimizer, type OptimizerKind } from "../../src/optim/optimizer.ts";
import { scheduledValues, type ScheduleSettings } from "../../src/optim/scheduler.ts";
import { assertClose, rng } from "../reference/compare.ts";
import "../../src/ops/mod.ts";

const specs: ParameterSpec[] = [
  { name: "emb.weight", shape: [6, 5], init: { kind: "normal", std: 0.5 }, sparse: true },
  { name: "lin.weight", shape: [7, 9], init: { kind: "uniform", bound: 0.3 } },
  { name: "lin.bias", shape: [7], init: { kind: "uniform", bound: 0.3 } },
  { name: "big.weight", shape: [5000], init: { kind: "uniform", bound: 0.1 } }, // spans two blocks
  { name: "zero.bias", shape: [3], init: { kind: "zeros" } }, // ‖p‖ = 0 → trust ratio 1
];

interface RefState {
  p: Float64Array[];
  m: Float64Array[];
  v: Float64Array[];
  ema: Float64Array[];
}

/** f64 reference of one step of `kind` for every tensor (with global-norm clipping). */
function refStep(
  kind: OptimizerKind,
  st: RefState,
  grads: Float64Array[],
  t: number,
  lr: number,
  beta1: number,
  beta2: number,
  eps: number,
  wd: number,
  maxNorm: number,
  emaDecay: number,
  sparse: boolean[],
  rowWidth: number[],
): void {
  let total = 0;
  for (const g of grads) for (const x of g) total += x * x;
  const norm = Math.sqrt(total);
  const coef = maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
  grads.forEach((graw, i) => {
    const p = st.p[i], m = st.m[i], v = st.v[i];
    const g = graw.map((x) => x * coef);
    if (kind === "adamw") {
      const bc1 = 1 - beta1 ** t, bc2 = 1 - beta2 ** t;
      for (let j = 0; j < p.length; j++) {
        p[j] *= 1 - lr * wd;
        m[j] = beta1 * m[j] + (1 - beta1) * g[j];
        v[j] = beta2 * v[j] + (1 - beta2) * g[j] * g[j];
        p[j] -= (lr / bc1) * m[j] / (Math.sqrt(v[j]) / Math.sqrt(bc2) + eps);
      }
      return;
    }
    const bc1 = kind === "lamb" ? 1 - beta1 ** t : 1, bc2 = kind === "lamb" ? 1 - beta2 ** t : 1;
    const isSparse = kind === "sparse_lamb" && sparse[i];
    const w = rowWidth[i];
    const touched = (j: number) => {
      if (!isSparse) return true;
      const r = Math.floor(j / w);
      for (let c = 0; c < w; c++) if (graw[r * w + c] !== 0) return true;
      return false;
    };
    const u = new Float64Array(p.length);
    for (let j = 0; j < p.length; j++) {
      if (!touched(j)) {
        m[j] = 0;
        v[j] = 0;
        u[j] = wd * p[j];
        continue;
      }
      m[j] = beta1 * m[j] + (1 - beta1) * g[j];
      v[j] = beta2 * v[j] + (1 - beta2) * g[j] * g[j];
      u[j] = (m[j] / bc1) / (Math.sqrt(v[j] / bc2) + eps) + wd * p[j];
    }
    const pn = Math.sqrt(p.reduce((s, x) => s + x * x, 0));
    const un = Math.sqrt(u.reduce((s, x) => s + x * x, 0));
    const r = pn > 0 && un > 0 ? Math.min(pn, 10) / un : 1;
    for (let j = 0; j < p.length; j++) if (touched(j)) p[j] -= lr * r * u[j];
  });
  if (emaDecay > 0) {
    st.ema.forEach((e, i) => e.forEach((x, j) => (e[j] = emaDecay * x + (1 - emaDecay) * st.p[i][j])));
  }
}

for (const kind of ["adamw", "lamb", "sparse_lamb"] as const) {
  for (const maxNorm of [0, 0.5]) {
    Deno.test({
      name: `optimizer ${kind} (clip ${maxNorm}) matches the f64 reference over 24 steps`,
      sanitizeResources: false,
      sanitizeOps: false,
      fn: async () => {
        const gpu = await testGpu();
        const store = new ParameterStore(gpu, specs, 11);
        const emaDecay = 0.9;
        const opt = new FlatOptimizer(store, {
          kind,
          beta2: 0.999,
          eps: 1e-6,
          weightDecay: 0.01,
          maxGradNorm: maxNorm,
          emaDecay,
        });
        const init = await store.readValues();
        const st: RefState = {
          p: specs.map((s) => Float64Array.from(init.get(s.name)!)),
          m: specs.map((s) => new Float64Array(init.get(s.name)!.length)),
          v: specs.map((s) => new Float64Array(init.get(s.name)!.length)),
          ema: specs.map((s) => Float64Array.from(init.get(s.name)!)),
        };
        const schedule: ScheduleSettings = {
          kind: "onecycle",
          lr: 0.01,
          totalSteps: 24,
          warmupSteps: 0,
          beta1: 0.9,
        };
        const random = rng(5);
        for (let step = 0; step < 24; step++) {
          const grads = specs.map((s) => {
            const n = s.shape.reduce((p, d) => p * d, 1);
            const g = Float32Array.from({ length: n }, () => random() * 2 - 1);
            if (s.sparse) g.fill(0, 5, 15); // rows 1 and 2 untouched
            return g;
          });
          store.writeGradsForTest(new Map(specs.map((s, i) => [s.name, grads[i]])));
          const { lr, beta1 } = scheduledValues(schedule, step);
          opt.step({ lr, beta1 });
          gpu.submit();
          refStep(
            kind,
            st,
            grads.map((g) => Float64Array.from(g)),
            step + 1,
            lr,
            beta1,
            0.999,
            1e-6,
            0.01,
            maxNorm,
            emaDecay,
            specs.map((s) => !!s.sparse),
            specs.map((s) => s.shape[s.shape.length - 1]),
          );
        }
        const got = await store.readValues();
        specs.forEach((s, i) =>
          assertClose(`${kind} ${s.name} after 24 steps`, got.get(s.name)!, st.p[i], { rtol: 1e-4 })
        );
        const state = await opt.readState();
        specs.forEach((s, i) =>
          assertClose(`${kind} ${s.name} exp_avg`, state.expAvg.get(s.name)!, st.m[i], { rtol: 1e-4 })
        );
        specs.forEach((s, i) =>
          assertClose(`${kind} ${s.name} EMA`, state.ema!.get(s.name)!, st.ema[i], { rtol: 1e-4 })
        );
        if (kind === "sparse_lamb") {
          // Untouched rows keep their initial values exactly.
          const e = got.get("emb.weight")!;
          assert.deepEqual([...e.subarray(5, 15)], [...init.get("emb.weight")!.subarray(5, 15)]);
        }
      },
    });
  }
}

Deno.test("onecycle follows PyTorch OneCycleLR (lr and β1) at its anchor points", () => {
  const s: ScheduleSettings = { kind: "onecycle", lr: 3e-4, totalSteps: 1000, warmupSteps: 0, beta1: 0.9 };
  // div_factor 1: phase 1 holds lr at max while momentum anneals 0.95 → 0.85.
  assert.equal(scheduledValues(s, 0).lr, 3e-4);
  assert.ok(Math.abs(scheduledValues(s, 0).beta1 - 0.95) < 1e-12);
  assert.ok(Math.abs(scheduledValues(s, 499).beta1 - 0.85) < 1e-12);
  assert.ok(Math.abs(scheduledValues(s, 999).lr - 3e-8) < 1e-15);
  assert.ok(Math.abs(scheduledValues(s, 999).beta1 - 0.95) < 1e-12);
  // Midway through phase 2 (pct = 0.5): halfway between max and min.
  const mid = scheduledValues(s, 499 + 250);
  assert.ok(Math.abs(mid.lr - (3e-8 + (3e-4 - 3e-8) / 2)) < 1e-12);
  assert.ok(Math.abs(mid.beta1 - 0.9) < 1e-12);
});

Deno.test("cosine warms up linearly then decays to zero; constant is constant", () => {
  const s: ScheduleSettings = { kind: "cosine", lr: 1, totalSteps: 110, warmupSteps: 10, beta1: 0.9 };
  assert.equal(scheduledValues(s, 0).lr, 0.1);
  assert.equal(scheduledValues(s, 9).lr, 1);
  assert.ok(Math.abs(scheduledValues(s, 60).lr - 0.5) < 1e-12);
  assert.ok(scheduledValues(s, 110).lr < 1e-12);
  assert.equal(scheduledValues({ ...s, kind: "constant" }, 57).lr, 1);
});

Deno.test({
  name: "frozen parameters are skipped entirely (no decay, no moments), then resume training",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await testGpu();
    const store = new ParameterStore(gpu, specs, 3);
    const opt = new FlatOptimizer(store, {
      kind: "sparse_lamb",
      beta2: 0.999,
      eps: 1e-6,
      weightDecay: 0.1,
      maxGradNorm: 1,
      emaDecay: null,
    });
    const before = await store.readValues();
    opt.setTrainable((name) => name.startsWith("emb."));
    const grads = new Map(
      specs.map((s) => [s.name, new Float32Array(s.shape.reduce((p, d) => p * d, 1)).fill(0.5)]),
    );
    store.writeGradsForTest(grads);
    opt.step({ lr: 0.1, beta1: 0.9 });
    gpu.submit();
    const after = await store.readValues();
    assert.notDeepEqual([...after.get("emb.weight")!], [...before.get("emb.weight")!]);
    for (const name of ["lin.weight", "lin.bias", "big.weight"]) {
      assert.deepEqual([...after.get(name)!], [...before.get(name)!]);
    }
    const state = await opt.readState();
    assert.ok(state.expAvg.get("lin.weight")!.every((x) => x === 0));
    opt.setTrainable(() => true);
    opt.step({ lr: 0.1, beta1: 0.9 });
    gpu.submit();
    assert.notDeepEqual([...(await store.readValues()).get("lin.weight")!], [...before.get("lin.weight")!]);
  },
});
