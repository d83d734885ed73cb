/**
 * The GPU grad scaler (16-mixed): a loss-scaled optimizer step equals the unscaled one bitwise (S is a
 * power of two, so scaling and unscaling are exact); an injected non-finite gradient skips the step
 * (weights, moments and EMA byte-identical), halves the scale, counts the skip and resets the growth
 * tracker; the scale grows after `growthInterval` clean steps; bias corrections after a skip count only
 * the steps taken; state save/restore.
 */
import assert from "node:assert/strict";
import { testGpu } from "../ops/op_harness.ts";
import { type ParameterSpec, ParameterStore } from "../../src/tensor/parameters.ts";
import { FlatOptimizer, type OptimizerKind, type OptimizerState } from "../../src/optim/optimizer.ts";
import { GradScaler, parseGradScalerState } from "../../src/optim/grad_scaler.ts";
import { assertClose, rng } from "../reference/compare.ts";
import "../../src/ops/mod.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

const specs: ParameterSpec[] = [
  { name: "emb.weight", shape: [6, 5], init: { kind: "normal", std: 0.5 }, sparse: true },
  { name: "lin.weight", shape: [7, 9], init: { kind: "uniform", bound: 0.3 } },
  { name: "big.weight", shape: [5000], init: { kind: "uniform", bound: 0.1 } },
];

function randomGrads(random: () => number): Map<string, Float32Array> {
  return new Map(specs.map((s) => {
    const n = s.shape.reduce((p, d) => p * d, 1);
    const g = Float32Array.from({ length: n }, () => random() * 2 - 1);
    if (s.sparse) g.fill(0, 5, 15);
    return [s.name, g];
  }));
}

function scaled(g: Map<string, Float32Array>, s: number): Map<string, Float32Array> {
  return new Map([...g].map(([k, v]) => [k, v.map((x) => x * s)]));
}

function bytesOf(m: Map<string, Float32Array>): Uint8Array[] {
  return [...m.values()].map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice());
}

async function snapshot(store: ParameterStore, opt: FlatOptimizer) {
  const values = await store.readValues();
  const state: OptimizerState = await opt.readState();
  return { values, state };
}

function sameBytes(what: string, a: Map<string, Float32Array>, b: Map<string, Float32Array>): void {
  const x = bytesOf(a), y = bytesOf(b);
  x.forEach((v, i) => assert.deepEqual(v, y[i], `${what}: tensor ${[...a.keys()][i]} differs`));
}

for (const kind of ["adamw", "lamb", "sparse_lamb"] as const satisfies readonly OptimizerKind[]) {
  Deno.test({
    ...opts,
    name: `grad scaler with ${kind}: scaled steps equal unscaled bitwise; overflow skips, backs off, grows`,
    fn: async () => {
      const gpu = await testGpu();
      const settings = { kind, beta2: 0.999, eps: 1e-6, weightDecay: 0.01, maxGradNorm: 0.5, emaDecay: 0.9 };
      const plainStore = new ParameterStore(gpu, specs, 3);
      const plain = new FlatOptimizer(plainStore, settings);
      const store = new ParameterStore(gpu, specs, 3);
      const opt = new FlatOptimizer(store, settings);
      const scaler = new GradScaler(gpu, {
        initScale: 1024,
        growthFactor: 2,
        backoffFactor: 0.5,
        growthInterval: 3,
      });
      opt.attachGradScaler(scaler);
      const random = rng(17);
      const state = async () => {
        const s = scaler.readStateAsync();
        gpu.submit();
        return await s;
      };
      const h = { lr: 0.01, beta1: 0.9 };
      // Two clean steps: identical to the unscaled optimizer, bit for bit.
      for (let i = 0; i < 2; i++) {
        const g = randomGrads(random);
        plainStore.writeGradsForTest(g);
        plain.step(h);
        const { scale } = await state();
        store.writeGradsForTest(scaled(g, scale));
        opt.step(h);
        gpu.submit();
      }
      const a = await snapshot(plainStore, plain);
      const b = await snapshot(store, opt);
      sameBytes("weights after 2 scaled steps", b.values, a.values);
      sameBytes("exp_avg after 2 scaled steps", b.state.expAvg, a.state.expAvg);
      sameBytes("exp_avg_sq after 2 scaled steps", b.state.expAvgSq, a.state.expAvgSq);
      assert.deepEqual(await state(), { scale: 1024, growthTracker: 2, skippedSteps: 0 });
      const scalars = new Float32Array(await gpu.read(opt.scalars, 0, 24));
      const plainScalars = new Float32Array(await gpu.read(plain.scalars, 0, 8));
      assert.equal(scalars[1], plainScalars[1], "logged gradient norm is unscaled (bitwise)");
      assert.equal(scalars[3], 1024, "loss scale of the step");

      // An injected non-finite gradient (inf, then NaN): nothing changes but the scaler state.
      for (const bad of [Infinity, NaN]) {
        const g = scaled(randomGrads(random), (await state()).scale);
        g.get("big.weight")![4321] = bad;
        const before = await snapshot(store, opt);
        const prev = await state();
        store.writeGradsForTest(g);
        opt.step(h);
        gpu.submit();
        const after = await snapshot(store, opt);
        sameBytes(`weights after a ${bad} gradient`, after.values, before.values);
        sameBytes(`exp_avg after a ${bad} gradient`, after.state.expAvg, before.state.expAvg);
        sameBytes(`exp_avg_sq after a ${bad} gradient`, after.state.expAvgSq, before.state.expAvgSq);
        sameBytes(`EMA after a ${bad} gradient`, after.state.ema!, before.state.ema!);
        const s = await state();
        assert.deepEqual(s, { scale: prev.scale / 2, growthTracker: 0, skippedSteps: prev.skippedSteps + 1 });
      }
      assert.deepEqual(await state(), { scale: 256, growthTracker: 0, skippedSteps: 2 });

      // Three clean steps: the scale doubles on the third (interval 3), the tracker restarts. The weights
      // follow the unscaled optimizer that never saw the skipped steps (bias corrections count steps taken).
      const scales: number[] = [];
      for (let i = 0; i < 4; i++) {
        const g = randomGrads(random);
        plainStore.writeGradsForTest(g);
        plain.step(h);
        store.writeGradsForTest(scaled(g, (await state()).scale));
        opt.step(h);
        gpu.submit();
        const s = await state();
        scales.push(s.scale, s.growthTracker);
      }
      assert.deepEqual(scales, [256, 1, 256, 2, 512, 0, 512, 1]);
      const c = await snapshot(plainStore, plain);
      const d = await snapshot(store, opt);
      for (const name of c.values.keys()) {
        assertClose(`${kind} ${name} after skips`, d.values.get(name)!, c.values.get(name)!, { rtol: 1e-5 });
        assertClose(
          `${kind} ${name} exp_avg after skips`,
          d.state.expAvg.get(name)!,
          c.state.expAvg.get(name)!,
          {
            rtol: 1e-5,
          },
        );
      }
      assert.equal(opt.stepCount, plain.stepCount + 2, "the host counts every step; the GPU subtracts skips");
    },
  });
}

Deno.test({
  ...opts,
  name: "grad scaler state: save, restore, parse with a clear error",
  fn: async () => {
    const gpu = await testGpu();
    const scaler = new GradScaler(gpu);
    const initial = scaler.readStateAsync();
    gpu.submit();
    assert.deepEqual(await initial, { scale: 65536, growthTracker: 0, skippedSteps: 0 });
    scaler.loadState({ scale: 128, growthTracker: 7, skippedSteps: 3 });
    const restored = scaler.readStateAsync();
    gpu.submit();
    assert.deepEqual(await restored, { scale: 128, growthTracker: 7, skippedSteps: 3 });
    assert.deepEqual(parseGradScalerState({ scale: 2, growthTracker: 0, skippedSteps: 1 }), {
      scale: 2,
      growthTracker: 0,
      skippedSteps: 1,
    });
    assert.throws(
      () => parseGradScalerState({ scale: 0, growthTracker: 0, skippedSteps: 0 }),
      /Cannot restore the grad scaler from grad_scaler\/state.json as scale must be a finite number > 0: current value is 0/,
    );
    assert.throws(() => parseGradScalerState({ scale: 2 }), /growthTracker .* current value is undefined/);
    assert.throws(() =>
      new GradScaler(gpu, { initScale: 0, growthFactor: 2, backoffFactor: 0.5, growthInterval: 1 })
    );
  },
});
