/**
 * Mixed-precision training (16-mixed with its GPU grad scaler, bf16-mixed) at a tiny size: the loss falls
 * on a fixed batch, runs are bit-identical twice (captured steps replayed), snapshot → restore continues
 * bit-exactly (grad scaler state included), an overflowing loss scale skips steps and backs off, and the
 * results stay close to 32-true.
 */
import assert from "node:assert/strict";
import { testGpu } from "../ops/op_harness.ts";
import { type StepMetrics, Trainer, type TrainingPrecision } from "../../src/train/trainer.ts";
import { syntheticBatch } from "../../src/train/synthetic_batch.ts";
import type { GradScalerSettings } from "../../src/optim/grad_scaler.ts";
import { POYO, uploadBatch } from "../../src/models/poyo.ts";
import { backward } from "../../src/tensor/autograd.ts";
import { Scope } from "../../src/tensor/tensor.ts";
import { tinyKwargs, tinySettings, tinyShape, tinyVocab } from "./tiny_setup.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

async function train(
  precision: TrainingPrecision,
  steps: number,
  options: { seed?: number; fixedBatch?: boolean; restoreAt?: number; gradScaler?: GradScalerSettings } = {},
): Promise<{ weights: Float32Array; metrics: StepMetrics[]; trainer: Trainer }> {
  const gpu = await testGpu();
  const settings = tinySettings({ seed: options.seed ?? 4, precision, gradScaler: options.gradScaler });
  let t = new Trainer(gpu, tinyKwargs, tinyVocab, settings);
  const metrics: StepMetrics[] = [];
  for (let i = 0; i < steps; i++) {
    if (i === options.restoreAt) {
      const snap = await t.snapshot();
      metrics.push(...await t.flushMetrics());
      t = new Trainer(gpu, tinyKwargs, tinyVocab, settings);
      t.restore(snap);
    }
    await t.trainStep([syntheticBatch(tinyShape, options.fixedBatch ? 1 : 60 + i)]);
  }
  metrics.push(...await t.flushMetrics());
  const weights = new Float32Array(
    await gpu.read(t.model.params.values, 0, t.model.params.totalElements * 4),
  );
  return { weights, metrics, trainer: t };
}

function identical(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
}

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

for (const precision of ["16-mixed", "bf16-mixed"] as const) {
  Deno.test({
    ...opts,
    name: `${precision}: loss falls on a fixed batch and tracks 32-true`,
    fn: async () => {
      const mixed = await train(precision, 40, { fixedBatch: true });
      const full = await train("32-true", 40, { fixedBatch: true });
      const m = mixed.metrics;
      assert.equal(m.length, 40);
      const first = mean(m.slice(0, 5).map((x) => x.loss));
      const last = mean(m.slice(-5).map((x) => x.loss));
      assert.ok(last < first * 0.3, `${precision} loss should fall: first ${first}, last ${last}`);
      const ref = mean(full.metrics.slice(-5).map((x) => x.loss));
      console.log(
        `${precision}: loss ${first.toFixed(4)} → ${last.toFixed(4)} (32-true → ${ref.toFixed(4)}); ` +
          `first-step loss ${m[0].loss} vs ${full.metrics[0].loss}`,
      );
      // Step 0 differs only by the rounding of the matmul inputs.
      assert.ok(Math.abs(m[0].loss - full.metrics[0].loss) < 0.02 * full.metrics[0].loss);
      assert.ok(m.every((x) => Number.isFinite(x.loss) && Number.isFinite(x.gradNorm)));
      if (precision === "16-mixed") {
        assert.ok(m.every((x) => x.lossScale === 65536 && x.skippedSteps === 0), "no overflow at scale 2^16");
      } else {
        assert.ok(m.every((x) => x.lossScale === undefined), "bf16-mixed has no loss scaling");
      }
    },
  });

  Deno.test({
    ...opts,
    name: `${precision}: bit-identical twice (replayed steps), snapshot → restore continues bit-exactly`,
    fn: async () => {
      const scaler = { initScale: 2 ** 14, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2 };
      const a = await train(precision, 7, { gradScaler: scaler });
      const b = await train(precision, 7, { gradScaler: scaler });
      assert.ok(identical(a.weights, b.weights), `${precision}: two identical runs differ`);
      assert.ok(a.trainer.lastStepReplayed, "the last steps were replayed from a capture");
      for (const at of [3, 5]) {
        const c = await train(precision, 7, { gradScaler: scaler, restoreAt: at });
        assert.ok(
          identical(a.weights, c.weights),
          `${precision}: restoring at step ${at} changed the result`,
        );
        assert.deepEqual(c.metrics.map((x) => x.lossScale), a.metrics.map((x) => x.lossScale));
      }
      if (precision === "16-mixed") {
        // Interval 2: the scale doubles every second step (2^14 → 2^17 after 7 clean steps), replay included.
        assert.deepEqual(a.metrics.map((x) => x.lossScale), [
          16384,
          32768,
          32768,
          65536,
          65536,
          131072,
          131072,
        ]);
      }
    },
  });
}

Deno.test({
  ...opts,
  name: "16-mixed: an overflowing loss scale skips steps (weights untouched) and backs off until it fits",
  fn: async () => {
    // S = 2^40: S·loss-gradients overflow f16 (max 65504) when cast for the backward matmuls → inf.
    const scaler = { initScale: 2 ** 40, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000 };
    const gpu = await testGpu();
    const t = new Trainer(
      gpu,
      tinyKwargs,
      tinyVocab,
      tinySettings({ seed: 4, precision: "16-mixed", gradScaler: scaler }),
    );
    const initial = new Float32Array(
      await gpu.read(t.model.params.values, 0, t.model.params.totalElements * 4),
    );
    await t.trainStep([syntheticBatch(tinyShape, 60)]);
    const afterOne = new Float32Array(
      await gpu.read(t.model.params.values, 0, t.model.params.totalElements * 4),
    );
    assert.ok(identical(initial, afterOne), "a skipped step leaves the weights byte-identical");
    for (let i = 1; i < 40; i++) await t.trainStep([syntheticBatch(tinyShape, 60 + i)]);
    const m = await t.flushMetrics();
    const skipped = m[m.length - 1].skippedSteps!;
    console.log(`overflow: ${skipped} skipped steps, final scale 2^${Math.log2(m[m.length - 1].lossScale!)}`);
    assert.ok(skipped >= 10 && skipped < 40, `skipped ${skipped}`);
    assert.equal(m[0].lossScale, 2 ** 39, "the first step halves the scale");
    assert.deepEqual(
      m.slice(0, skipped).map((x) => x.skippedSteps),
      Array.from({ length: skipped }, (_, i) => i + 1),
      "the skipped steps come first and are counted one by one",
    );
    assert.equal(m[m.length - 1].lossScale, 2 ** (40 - skipped));
    const final = new Float32Array(
      await gpu.read(t.model.params.values, 0, t.model.params.totalElements * 4),
    );
    assert.ok(!identical(initial, final), "training resumes once the scale fits");
    assert.ok(final.every(Number.isFinite));
  },
});

Deno.test({
  ...opts,
  name: "one step's logits and gradients in 16-mixed/bf16-mixed stay within the 16-bit rounding of 32-true",
  fn: async () => {
    const gpu = await testGpu();
    const batch = syntheticBatch({ ...tinyShape, batchSize: 8 }, 1);
    const run = async (autocast: "f16" | "bf16" | null) => {
      const model = new POYO(gpu, tinyKwargs, tinyVocab, { seed: 1, autocast });
      const scope = Scope.begin();
      try {
        const { loss, logits } = model.loss(uploadBatch(gpu, model, batch), { training: false });
        backward(loss);
        const [l, z, g] = await Promise.all([
          loss.toArray(),
          logits.toArray(),
          gpu.read(model.params.grads, 0, model.params.totalElements * 4),
        ]);
        return { loss: l[0], logits: z as Float32Array, grads: new Float32Array(g) };
      } finally {
        scope.end();
      }
    };
    // Relative error of a tensor as in docs/numerics.md: max |x − ref| / max |ref|.
    const rel = (a: Float32Array, b: Float32Array) => {
      let d = 0, r = 0;
      for (let i = 0; i < a.length; i++) {
        (d = Math.max(d, Math.abs(a[i] - b[i])), r = Math.max(r, Math.abs(b[i])));
      }
      return d / r;
    };
    const ref = await run(null);
    for (const [dtype, bound] of [["f16", 2e-3], ["bf16", 2e-2]] as const) {
      const x = await run(dtype);
      const logits = rel(x.logits, ref.logits);
      const grads = rel(x.grads, ref.grads);
      console.log(
        `${dtype}: loss ${x.loss} vs ${ref.loss}; logits ${logits.toExponential(2)}, grads ${
          grads.toExponential(2)
        }`,
      );
      assert.ok(logits > 0 && logits < bound, `${dtype} logits relative error ${logits}`);
      assert.ok(grads > 0 && grads < bound, `${dtype} gradient relative error ${grads}`);
    }
  },
});
