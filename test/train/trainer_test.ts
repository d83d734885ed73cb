/**
 * The step engine: learning on a fixed batch (overfit), bit-identical runs, gradient accumulation,
 * one submit per step and no steady-state allocation.
 */
import assert from "node:assert/strict";
import { testGpu } from "../ops/op_harness.ts";
import { Gpu } from "../../src/gpu/gpu.ts";
import {
  type GradientSync,
  Trainer,
  type TrainerSettings,
  type TrainerSnapshot,
} from "../../src/train/trainer.ts";
import { syntheticBatch } from "../../src/train/synthetic_batch.ts";
import { gradientSyncFor } from "../../src/train/gradient_sync.ts";
import { SingleRankContext } from "../../src/distributed/context.ts";
import { tinyKwargs, tinySettings, tinyShape, tinyVocab } from "./tiny_setup.ts";

Deno.test({
  name: "trainer: loss decreases over 50 steps on a fixed batch (overfit)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await testGpu();
    const trainer = new Trainer(gpu, tinyKwargs, tinyVocab, tinySettings());
    const batch = syntheticBatch(tinyShape, 1);
    for (let i = 0; i < 50; i++) await trainer.trainStep([batch]);
    const m = await trainer.flushMetrics();
    assert.equal(m.length, 50);
    assert.deepEqual(m.map((x) => x.step), [...Array(50).keys()]);
    const first = m.slice(0, 5).reduce((s, x) => s + x.loss, 0) / 5;
    const last = m.slice(-5).reduce((s, x) => s + x.loss, 0) / 5;
    assert.ok(last < first * 0.2, `loss should fall by 5×: first ${first}, last ${last}`);
    assert.ok(m.every((x) => Number.isFinite(x.gradNorm) && x.gradNorm > 0));
  },
});

async function weightsAfter(
  steps: number,
  seed: number,
  accumulate = 1,
  capture = true,
): Promise<Float32Array> {
  const gpu = await testGpu();
  const trainer = new Trainer(gpu, tinyKwargs, tinyVocab, tinySettings({ seed, capture }));
  for (let i = 0; i < steps; i++) {
    const micro = Array.from(
      { length: accumulate },
      (_, j) => syntheticBatch(tinyShape, 100 + i * accumulate + j),
    );
    await trainer.trainStep(micro);
  }
  await trainer.flushMetrics();
  return new Float32Array(
    await gpu.read(trainer.model.params.values, 0, trainer.model.params.totalElements * 4),
  );
}

Deno.test({
  name: "trainer: the same config and seed give bit-identical weights twice (dropout on)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const a = await weightsAfter(8, 5);
    const b = await weightsAfter(8, 5);
    assert.equal(a.length, b.length);
    assert.ok(a.every((x, i) => Object.is(x, b[i])), "weights differ between two identical runs");
    const c = await weightsAfter(8, 6);
    assert.ok(c.some((x, i) => x !== a[i]), "a different seed should change the weights");
  },
});

Deno.test({
  name: "trainer: one submit per step, and no buffer allocation once warm",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await testGpu();
    const trainer = new Trainer(gpu, tinyKwargs, tinyVocab, tinySettings({ readbackEvery: 1000 }));
    const batch = syntheticBatch(tinyShape, 2);
    for (let i = 0; i < 3; i++) await trainer.trainStep([batch]);
    const submits = gpu.counters.submits;
    const created = gpu.pool.stats.created;
    const groups = gpu.counters.bindGroupsCreated;
    for (let i = 0; i < 5; i++) await trainer.trainStep([batch]);
    assert.equal(gpu.counters.submits - submits, 5, "one queue.submit per training step");
    assert.equal(gpu.pool.stats.created, created, "no GPU buffer created in steady state");
    assert.equal(gpu.counters.bindGroupsCreated, groups, "no bind group created in steady state");
    await trainer.flushMetrics();
  },
});

Deno.test({
  name: "trainer: gradient accumulation over 2 micro-batches trains and stays deterministic",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const a = await weightsAfter(3, 5, 2);
    const b = await weightsAfter(3, 5, 2);
    assert.ok(a.every((x, i) => Object.is(x, b[i])));
  },
});

Deno.test({
  name: "trainer: a trainable schedule that swaps between sets of the same size replays the right set",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await testGpu();
    const run = async (capture: boolean) => {
      const names: string[] = [];
      // Two disjoint sets of the same size; the schedule swaps them every 4 steps (3 to capture, 1 replayed).
      const trainable = (name: string, step: number) => {
        const i = names.indexOf(name);
        const half = Math.floor(names.length / 2);
        return Math.floor(step / 4) % 2 === 0 ? i < half : i >= half && i < 2 * half;
      };
      const trainer = new Trainer(gpu, tinyKwargs, tinyVocab, tinySettings({ seed: 6, capture, trainable }));
      names.push(...trainer.model.params.slots.map((slot) => slot.name));
      const replayed: boolean[] = [];
      for (let i = 0; i < 12; i++) {
        await trainer.trainStep([syntheticBatch(tinyShape, 500 + i)]);
        replayed.push(trainer.lastStepReplayed);
      }
      await trainer.flushMetrics();
      const w = new Float32Array(
        await gpu.read(trainer.model.params.values, 0, trainer.model.params.totalElements * 4),
      );
      return { w, replayed };
    };
    const recorded = await run(false);
    const captured = await run(true);
    assert.ok(captured.replayed.some((r) => r), "some steps replay");
    const i = captured.w.findIndex((x, j) => !Object.is(x, recorded.w[j]));
    assert.equal(i, -1, `replayed and recorded weights differ at ${i}`);
  },
});

Deno.test({
  name:
    "trainer: replayed (captured) steps are bit-identical to recorded ones, with accumulation and dropout",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await testGpu();
    const trainer = new Trainer(gpu, tinyKwargs, tinyVocab, tinySettings({ seed: 9 }));
    const replayed: boolean[] = [];
    for (let i = 0; i < 6; i++) {
      await trainer.trainStep([
        syntheticBatch(tinyShape, 100 + 2 * i),
        syntheticBatch(tinyShape, 101 + 2 * i),
      ]);
      replayed.push(trainer.lastStepReplayed);
    }
    await trainer.flushMetrics();
    assert.deepEqual(
      replayed,
      [false, false, false, true, true, true],
      "steps 3+ replay the captured stream",
    );
    const a = new Float32Array(
      await gpu.read(trainer.model.params.values, 0, trainer.model.params.totalElements * 4),
    );
    const b = await weightsAfter(6, 9, 2, false);
    const c = await weightsAfter(6, 9, 2, true);
    assert.ok(
      a.every((x, i) => Object.is(x, b[i])),
      "captured/replayed training differs from recorded training",
    );
    assert.ok(b.every((x, i) => Object.is(x, c[i])));
  },
});

Deno.test({
  name:
    "trainer: snapshot → new trainer → restore continues bit-exactly (state writes land after pending clears)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await testGpu();
    const run = async (restoreAt: number | null) => {
      let t = new Trainer(gpu, tinyKwargs, tinyVocab, tinySettings({ seed: 3 }));
      for (let i = 0; i < 7; i++) {
        if (i === restoreAt) {
          const snap = await t.snapshot();
          await t.flushMetrics();
          t = new Trainer(gpu, tinyKwargs, tinyVocab, tinySettings({ seed: 3 }));
          t.restore(snap);
        }
        await t.trainStep([syntheticBatch(tinyShape, 50 + i)]);
      }
      await t.flushMetrics();
      return new Float32Array(await gpu.read(t.model.params.values, 0, t.model.params.totalElements * 4));
    };
    const a = await run(null);
    for (const at of [2, 4]) {
      const b = await run(at);
      assert.ok(a.every((v, i) => Object.is(v, b[i])), `restoring at step ${at} changed the result`);
    }
  },
});

Deno.test({
  name:
    "trainer: snapshots taken while training into one reused host memory equal fresh snapshots, bit for bit",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await testGpu();
    const settings = tinySettings({
      seed: 5,
      optimizer: { ...tinySettings().optimizer, emaDecay: 0.99 },
    });
    const flat = (snap: TrainerSnapshot) =>
      [snap.weights, snap.optimizer.expAvg, snap.optimizer.expAvgSq, snap.optimizer.ema!].map((m) =>
        [...m.values()].flatMap((a) => [...a])
      );
    const run = async (reuse: boolean) => {
      const t = new Trainer(gpu, tinyKwargs, tinyVocab, settings);
      const host = reuse ? t.createSnapshotHost() : undefined;
      const taken: number[][][] = [];
      for (let i = 0; i < 8; i++) {
        await t.trainStep([syntheticBatch(tinyShape, 80 + i)]);
        if (i === 2 || i === 5) {
          // As the training run does: no submit of its own, the copies ride in the next step.
          const pending = t.snapshot({ submit: false, into: host });
          await t.trainStep([syntheticBatch(tinyShape, 180 + i)]);
          const snap = await pending;
          if (host) {
            assert.equal(snap.weights.get(t.model.params.slots[0].name)!.buffer, host.values.buffer);
            assert.equal(snap.optimizer.ema!.values().next().value!.buffer, host.ema!.buffer);
          }
          taken.push(flat(snap)); // copied out before the host is reused by the next snapshot
        }
      }
      await t.flushMetrics();
      return taken;
    };
    const fresh = await run(false);
    const reused = await run(true);
    assert.equal(reused.length, 2);
    assert.notDeepEqual(fresh[0][0], fresh[1][0], "the two snapshots should differ (training went on)");
    for (let k = 0; k < 2; k++) {
      for (let part = 0; part < 4; part++) {
        assert.ok(
          fresh[k][part].every((v, i) => Object.is(v, reused[k][part][i])),
          `snapshot ${k}, part ${part}: reused host memory differs from a fresh read-back`,
        );
      }
    }
  },
});

/**
 * A stand-in for a second rank: "averaging" with a rank whose gradient is half ours scales it by 0.75. The
 * reference reads the whole gradient once backward is done, in one piece.
 */
function scalingSync(gpu: Awaited<ReturnType<typeof testGpu>>): GradientSync {
  return {
    worldSize: 2,
    begin(grads, elements) {
      let read: Promise<ArrayBuffer> | null = null;
      return {
        buckets: [[0, elements]],
        readBucket: () => void (read = gpu.readback(grads, 0, elements * 4)),
        submitted: () => Promise.resolve(),
        hostWork: () => Promise.resolve(),
        async finish() {
          const g = new Float32Array(await read!);
          for (let i = 0; i < g.length; i++) g[i] *= 0.75;
          gpu.write(grads, g, 0);
        },
        cancel: () => Promise.resolve(),
      };
    },
  };
}

/** The same scaling through the real exchange ({@linkcode gradientSyncFor}): a context whose "mean" scales. */
class ScalingContext extends SingleRankContext {
  override readonly worldSize = 2 as 1;
  override startBucket(_index: number, data: Float32Array): Promise<void> {
    for (let i = 0; i < data.length; i++) data[i] *= 0.75;
    return Promise.resolve();
  }
}

Deno.test({
  name:
    "trainer: a synced step cuts backward into segments per gradient bucket; replayed and recorded agree " +
    "bit for bit with reading the gradient once after backward",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const run = async (
      capture: boolean,
      sync: "none" | "reference" | "segmented" | "aligned",
      accumulate = 1,
      boundaryMarginMs?: number,
      earlyMaps = true,
      encodeAhead = true,
      shapeAt: (step: number) => typeof tinyShape = () => tinyShape,
      steps = 6,
      /** Pass each step the next one's batches (`trainStep`'s `next`); `evaluateAfter`: evaluate after that step. */
      lookAhead: {
        evaluateAfter?: number;
        trainable?: TrainerSettings["trainable"];
        stageUploads?: boolean;
      } | null = null,
    ) => {
      const gpu = earlyMaps ? await testGpu() : await Gpu.create({ earlyMaps: false });
      const trainer = new Trainer(
        gpu,
        tinyKwargs,
        tinyVocab,
        tinySettings({
          seed: 4,
          capture,
          encodeAhead,
          trainable: lookAhead?.trainable,
          stageUploads: lookAhead?.stageUploads,
        }),
      );
      // 4 KiB buckets: the tiny model's gradient spans many, so backward is cut many times.
      const segmented = gradientSyncFor(new ScalingContext(), gpu, {
        firstBucketBytes: 1024,
        bucketBytes: 4096,
        alignToParameters: sync === "aligned",
        boundaryMarginMs,
      });
      if (sync === "reference") trainer.gradientSync = scalingSync(gpu);
      if (sync === "segmented" || sync === "aligned") trainer.gradientSync = segmented;
      const replayed: boolean[] = [];
      const segments: number[] = [];
      const encodedAhead: boolean[] = [];
      const uploadedAhead: boolean[] = [];
      const stagedEarly: number[] = [];
      const stepBatches = Array.from(
        { length: steps },
        (_, i) => Array.from({ length: accumulate }, (_, j) => syntheticBatch(shapeAt(i), 300 + i * 7 + j)),
      );
      for (let i = 0; i < steps; i++) {
        await trainer.trainStep(stepBatches[i], lookAhead ? { next: stepBatches[i + 1] } : {});
        replayed.push(trainer.lastStepReplayed);
        segments.push(trainer.lastStepSegments);
        encodedAhead.push(trainer.lastStepEncodedAhead);
        uploadedAhead.push(trainer.lastStepUploadedAhead);
        stagedEarly.push(trainer.lastStepStagedEarlyBytes);
        // Another user of the GPU between steps: its buffers come from the same pool.
        if (lookAhead?.evaluateAfter === i) await trainer.evaluate([syntheticBatch(tinyShape, 999)]);
      }
      const losses = new Float32Array((await trainer.flushMetrics()).map((m) => m.loss));
      const w = new Float32Array(
        await gpu.read(trainer.model.params.values, 0, trainer.model.params.totalElements * 4),
      );
      const store = trainer.model.params;
      const exchange = segmented.begin(store.grads, store.totalElements, store.slots.map((x) => x.offset));
      await exchange.cancel();
      if (!earlyMaps) gpu.destroy(); // its own device; the shared one stays for the file's other tests
      return {
        w,
        losses,
        replayed,
        segments,
        encodedAhead,
        uploadedAhead,
        stagedEarly,
        buckets: exchange.buckets.length,
      };
    };
    const same = (a: Float32Array, b: Float32Array, what: string) => {
      const i = a.findIndex((x, j) => !Object.is(x, b[j]));
      assert.equal(i, -1, `${what} differ at ${i}: ${a[i]} vs ${b[i]}`);
    };
    const reference = await run(false, "reference");
    assert.deepEqual(reference.segments, [1, 1, 1, 1, 1, 1]);
    const captured = await run(true, "segmented");
    assert.deepEqual(captured.replayed, [false, false, false, true, true, true]);
    // Each replayed step records the next one's first segment; the steps after the first replay submit it.
    assert.deepEqual(captured.encodedAhead, [false, false, false, false, true, true]);
    assert.ok(captured.buckets >= 8, `expected many buckets, got ${captured.buckets}`);
    // Backward is cut many times (a parameter larger than a bucket makes several final at once).
    for (const n of captured.segments) {
      assert.ok(n >= 8 && n <= captured.buckets, `${n} segments for ${captured.buckets} buckets`);
    }
    same(captured.w, reference.w, "segmented (replayed) and reference weights");
    assert.equal(captured.losses.length, 6);
    same(captured.losses, reference.losses, "segmented (replayed) and reference losses");
    same((await run(false, "segmented")).w, reference.w, "segmented (recorded) and reference weights");
    // Host work at boundaries: none at all once segments are measured (every copy and write-back in
    // finish), or everything at the next boundary whatever the segment's length.
    same((await run(true, "segmented", 1, 1e9)).w, reference.w, "segmented (work deferred to finish)");
    same((await run(true, "segmented", 1, -1e9)).w, reference.w, "segmented (unbounded boundary work)");
    // Without early maps every bucket waits for its map's promise (timer turns at due boundaries).
    same((await run(true, "segmented", 1, undefined, false)).w, reference.w, "segmented (maps awaited)");
    const notAhead = await run(true, "segmented", 1, undefined, true, false);
    assert.deepEqual(notAhead.encodedAhead, [false, false, false, false, false, false]);
    same(notAhead.w, reference.w, "segmented (each first segment recorded at its step's start)");
    same(
      notAhead.losses,
      reference.losses,
      "segmented (each first segment recorded at its step's start) losses",
    );
    // The next step's batches uploaded during the step before, the same bits whichever way: staged on the GPU
    // at the first boundary (its budget unbounded), at the last (no budget anywhere), or written straight
    // into the batch buffers at the last boundary.
    const stagedAtFirst = await run(true, "segmented", 1, -1e9, true, true, undefined, 6, {});
    assert.deepEqual(stagedAtFirst.uploadedAhead, [false, false, false, false, true, true]);
    const batchBytes = stagedAtFirst.stagedEarly[3];
    assert.ok(
      batchBytes > 0,
      `replayed steps stage the next batch at the first boundary: ${stagedAtFirst.stagedEarly}`,
    );
    // The last step has no next batches to stage.
    assert.deepEqual(stagedAtFirst.stagedEarly, [0, 0, 0, batchBytes, batchBytes, 0]);
    same(
      stagedAtFirst.w,
      reference.w,
      "segmented (batches staged at the first boundary) and reference weights",
    );
    same(stagedAtFirst.losses, reference.losses, "segmented (batches staged at the first boundary) losses");
    // Two micro-batches per step: both batches' uploads staged, in the order the step captured them.
    const stagedTwo = await run(true, "segmented", 2, -1e9, true, true, undefined, 6, {});
    assert.deepEqual(stagedTwo.uploadedAhead, [false, false, false, false, true, true]);
    assert.ok(stagedTwo.stagedEarly[3] > batchBytes, `${stagedTwo.stagedEarly[3]} vs ${batchBytes}`);
    same(
      stagedTwo.w,
      (await run(false, "reference", 2)).w,
      "segmented (two micro-batches staged at the first boundary) and reference weights",
    );
    const stagedAtLast = await run(true, "segmented", 1, 1e9, true, true, undefined, 6, {});
    assert.deepEqual(stagedAtLast.uploadedAhead, [false, false, false, false, true, true]);
    // Once every boundary's segment was measured (the first replayed step may meet boundaries the recorded
    // steps did not have, which get no deadline), none has time to spare.
    assert.equal(stagedAtLast.stagedEarly[4], 0);
    same(
      stagedAtLast.w,
      reference.w,
      "segmented (batches staged at the last boundary) and reference weights",
    );
    const uploaded = await run(true, "segmented", 1, undefined, true, true, undefined, 6, {
      stageUploads: false,
    });
    assert.deepEqual(uploaded.uploadedAhead, [false, false, false, false, true, true]);
    assert.deepEqual(uploaded.stagedEarly, [0, 0, 0, 0, 0, 0]);
    same(uploaded.w, reference.w, "segmented (batches uploaded ahead) and reference weights");
    same(uploaded.losses, reference.losses, "segmented (batches uploaded ahead) and reference losses");
    // An evaluation between steps takes buffers from the pool: the next step uploads its batches again.
    const evaluated = await run(true, "segmented", 1, undefined, true, true, undefined, 6, {
      evaluateAfter: 4,
    });
    assert.deepEqual(evaluated.uploadedAhead, [false, false, false, false, true, false]);
    same(evaluated.w, reference.w, "segmented (an evaluation between steps) and reference weights");
    same(evaluated.losses, reference.losses, "segmented (an evaluation between steps) and reference losses");
    // Gradual unfreezing: half the parameters train until step 5, then all. The step before the change
    // prepares nothing (the set changes the key); the others do.
    const freeze = { trainable: (name: string, step: number) => step >= 5 || name < "m" };
    const unfreezing = await run(true, "segmented", 1, undefined, true, true, undefined, 8, freeze);
    assert.deepEqual(unfreezing.encodedAhead, [false, false, false, false, true, false, false, false]);
    same(
      unfreezing.w,
      (await run(false, "reference", 1, undefined, true, true, undefined, 8, freeze)).w,
      "segmented and reference weights with gradual unfreezing",
    );
    // A step with other shapes drops what was recorded ahead for the old ones and records again.
    const otherShape = { ...tinyShape, batchSize: 4 };
    const shapeAt = (step: number) => step === 6 ? otherShape : tinyShape;
    const changed = await run(true, "segmented", 1, undefined, true, true, shapeAt, 8, {});
    assert.deepEqual(changed.replayed, [false, false, false, true, true, true, false, false]);
    assert.deepEqual(changed.encodedAhead, [false, false, false, false, true, true, false, false]);
    assert.deepEqual(changed.uploadedAhead, [false, false, false, false, true, true, false, false]);
    same(
      changed.w,
      (await run(false, "reference", 1, undefined, true, true, shapeAt, 8)).w,
      "segmented with a change of shapes and reference weights",
    );
    assert.equal(changed.losses.length, 8);
    const aligned = await run(true, "aligned");
    assert.ok(
      aligned.buckets >= 8 && aligned.buckets !== captured.buckets,
      `${aligned.buckets} aligned buckets`,
    );
    same(aligned.w, reference.w, "segmented (buckets of whole parameters) and reference weights");
    const unsynced = await run(true, "none");
    assert.ok(
      unsynced.w.some((x, i) => !Object.is(x, captured.w[i])),
      "the exchange's write-back must reach the optimizer",
    );
    // Gradient accumulation: only the last micro-batch's backward is cut.
    const accumulated = await run(true, "segmented", 2);
    same(accumulated.w, (await run(true, "reference", 2)).w, "accumulated segmented and reference weights");
    assert.deepEqual(accumulated.segments.slice(3), captured.segments.slice(3));
  },
});

/**
 * A two-rank stand-in whose all-reduce scales by 0.75; the last bucket's collective of step `failAt` (counted
 * in collectives of the last bucket) waits for `release` and then fails, or succeeds when told so.
 */
class LastBucketContext extends SingleRankContext {
  override readonly worldSize = 2 as 1;
  lastBucket = -1;
  lastStarts = 0;
  failAt = -1;
  /** Settles the last bucket's held collective: reject (true) or resolve (false). */
  release: ((fail: boolean) => void) | null = null;
  override startBucket(index: number, data: Float32Array): Promise<void> {
    for (let i = 0; i < data.length; i++) data[i] *= 0.75;
    if (index !== this.lastBucket || this.lastStarts++ !== this.failAt) return Promise.resolve();
    return new Promise((resolve, reject) =>
      this.release = (fail) => fail ? reject(new Error("peer lost (test)")) : resolve()
    );
  }
}

Deno.test({
  name:
    "trainer: a replayed synced step records its optimizer update while the last bucket is reduced; a step " +
    "whose last collective fails leaves no update behind",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await testGpu();
    const run = async (failing: boolean) => {
      const trainer = new Trainer(gpu, tinyKwargs, tinyVocab, tinySettings({ seed: 4 }));
      const ctx = new LastBucketContext();
      trainer.gradientSync = gradientSyncFor(ctx, gpu, { firstBucketBytes: 1024, bucketBytes: 4096 });
      const store = trainer.model.params;
      const probe = trainer.gradientSync.begin(
        store.grads,
        store.totalElements,
        store.slots.map((x) => x.offset),
      );
      ctx.lastBucket = probe.buckets.length - 1;
      await probe.cancel();
      const weights = async () => new Float32Array(await gpu.read(store.values, 0, store.totalElements * 4));
      const batches = Array.from({ length: 6 }, (_, i) => [syntheticBatch(tinyShape, 500 + i)]);
      for (let i = 0; i < 4; i++) await trainer.trainStep(batches[i]);
      // A steady replayed step: its first segment was recorded during the step before, it records the next's.
      const replayedFrom = gpu.counters.dispatches;
      await trainer.trainStep(batches[4]);
      assert.ok(trainer.lastStepReplayed && trainer.lastStepEncodedAhead, "step 4 replayed, recorded ahead");
      const stepDispatches = gpu.counters.dispatches - replayedFrom;
      const before = await weights();
      ctx.failAt = 5; // the last bucket of step 5 (its sixth collective)
      const dispatches = gpu.counters.dispatches;
      const step = trainer.trainStep(batches[5]);
      step.catch(() => {});
      // The last collective is held: by now the optimizer's commands are recorded (not submitted).
      while (!ctx.release) await new Promise((r) => setTimeout(r, 1));
      await new Promise((r) => setTimeout(r, 20));
      const recordedMeanwhile = gpu.counters.dispatches - dispatches;
      ctx.release(failing);
      if (failing) {
        await assert.rejects(step, /peer lost/);
        await gpu.sync(); // anything left recorded would run now
        const after = await weights();
        const changed = after.findIndex((x, i) => !Object.is(x, before[i]));
        assert.equal(changed, -1, `the failed step changed weight ${changed}`);
      } else {
        await step;
        assert.ok(trainer.lastStepReplayed);
        const after = await weights();
        assert.ok(after.some((x, i) => !Object.is(x, before[i])), "the step updated the weights");
      }
      // Every dispatch of the step, the optimizer's included, was recorded before the last collective ended.
      assert.equal(recordedMeanwhile, stepDispatches);
    };
    await run(false);
    await run(true);
  },
});
