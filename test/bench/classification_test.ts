import assert from "node:assert/strict";
import type { WindowRef } from "../../src/data/batch.ts";
import { inPartialSubset, selectPartialSubset } from "../../src/bench/partial_subset.ts";
import { runWindowAveragedClassification } from "../../src/bench/window_averaged_classification.ts";
import { ACCURACY, MACRO_F1, PER_PARTICIPANT_ACCURACY } from "../../src/bench/metrics.ts";
import {
  FakeBenchModel,
  syntheticBenchData,
  type SyntheticSession,
} from "../../src/bench/fake_bench_model.ts";
import { uniformAt } from "../../src/ursa/counter_random.ts";

function sessions(participants: number, perParticipant = 2): SyntheticSession[] {
  const out: SyntheticSession[] = [];
  for (let p = 1; p <= participants; p++) {
    for (let s = 1; s <= perParticipant; s++) {
      out.push({
        participant: `p${String(p).padStart(3, "0")}`,
        session: `s${s}`,
        blocks: [0, 1, 2, 2, 1, 0].map((label) => ({ label, seconds: 10 })),
      });
    }
  }
  return out;
}

Deno.test("partial subsets are deterministic by (seed, recording, window), nested across fractions, and near the fraction", () => {
  const data = syntheticBenchData({ sessions: sessions(10) });
  const all = data.groups.flatMap((g) => g.windows);
  assert.equal(all.length, 20 * 6 * 9, "10 s blocks, 2 s windows, stride 1 s: 9 windows per block");
  const key = (w: { recordingHash: string; start: number }) => `${w.recordingHash}@${w.start}`;
  const a = selectPartialSubset(data.groups, 0.1, 7);
  const b = selectPartialSubset(data.groups, 0.1, 7);
  assert.deepEqual(a.windows.map(key), b.windows.map(key), "same fraction and seed, same windows");
  assert.equal(a.windowsTotal, all.length);
  assert.ok(Math.abs(a.windows.length / all.length - 0.1) < 0.03, `${a.windows.length} of ${all.length}`);
  // The decision is the documented per-window draw, independent of the rest of the suite.
  for (const w of all.slice(0, 50)) {
    assert.equal(
      inPartialSubset(w.recordingHash, w.start, 0.1, 7),
      uniformAt(7, "partial", w.recordingHash, Math.round(w.start * 1e6)) < 0.1,
    );
  }
  const fewer = syntheticBenchData({ sessions: sessions(10).slice(0, 5) });
  const sub = selectPartialSubset(fewer.groups, 0.1, 7).windows.map(key);
  const inFull = new Set(a.windows.map(key));
  assert.ok(sub.every((k) => inFull.has(k)), "removing sessions does not change the others' picks");
  const larger = new Set(selectPartialSubset(data.groups, 0.3, 7).windows.map(key));
  assert.ok(a.windows.every((w) => larger.has(key(w))), "a larger fraction keeps a superset");
  const other = selectPartialSubset(data.groups, 0.1, 8).windows.map(key);
  assert.notDeepEqual(other, a.windows.map(key), "another seed picks other windows");
  assert.equal(selectPartialSubset(data.groups, 1, 0).windows.length, all.length);
  assert.throws(() => selectPartialSubset(data.groups, 0, 0), /partialSubset must lie in \(0, 1\]/);
  assert.throws(() => selectPartialSubset(data.groups, 1.5, 0), /partialSubset must lie in \(0, 1\]/);
  assert.throws(
    () => selectPartialSubset(data.groups, 0.5, -1),
    /partialSeed must be a non-negative integer/,
  );
});

Deno.test("logits are averaged over a block's overlapping windows before the argmax", async () => {
  // One block of label 1 with 9 windows: 4 windows strongly favour class 0, 5 weakly favour class 1.
  // Majority vote and the mean both say 1 here; a second block shows the mean can overrule the majority.
  const data = syntheticBenchData({
    sessions: [{
      participant: "p001",
      session: "s1",
      blocks: [{ label: 1, seconds: 10 }, { label: 2, seconds: 10 }],
    }],
  });
  const logits = (ref: WindowRef, label: number) => {
    const k = Math.round(ref.start); // window index on the recording (stride 1 s)
    const z = new Float32Array(3);
    if (label === 1) z[k % 2 === 0 ? 1 : 0] = k % 2 === 0 ? 1.0 : 1.2; // 5 × (class 1: 1.0), 4 × (class 0: 1.2)
    else z[k % 3 === 0 ? 2 : 0] = k % 3 === 0 ? 5 : 1; // 3 windows strongly class 2, 6 weakly class 0
    return z;
  };
  const model = new FakeBenchModel({ checkpointHash: "c".repeat(64), logits, batchSize: 4 });
  const m = await runWindowAveragedClassification(model, data, {
    partialSubset: 1,
    partialSeed: 0,
    metrics: [ACCURACY],
    bootstrap: { replicates: 0 },
  });
  // block 1: mean class1 = 5/9 ≈ 0.556 > class0 = 4·1.2/9 ≈ 0.533 → 1. block 2 (windows start 10..18):
  // class 2 at k ∈ {12, 15, 18} → mean 15/9 ≈ 1.67 > class 0 = 6/9 → 2 (a majority vote would say 0).
  assert.deepEqual(m.predictions.map((p) => [p.id, p.label, p.predicted, p.windows]), [
    ["p001/s1#0", 1, 1, 9],
    ["p001/s1#1", 2, 2, 9],
  ]);
  assert.equal(m.metrics.accuracy.value, 1);
  assert.equal(m.windows_used, 18);
  assert.equal(m.groups_used, 2);
  // 18 windows in batches of 4 → 5 batches (the last padded with 2 weight-0 rows), 4 batches per call → 2 calls.
  assert.equal(model.predictCalls, 2);
  assert.equal(model.rowsPredicted, 20);
});

Deno.test("a noisy window classifier scores better per block, with per-participant results and counts", async () => {
  const data = syntheticBenchData({ sessions: sessions(6) });
  const model = new FakeBenchModel({ checkpointHash: "d".repeat(64), accuracy: 0.65, seed: 3 });
  const m = await runWindowAveragedClassification(model, data, {
    partialSubset: 1,
    partialSeed: 0,
    metrics: [ACCURACY, MACRO_F1, PER_PARTICIPANT_ACCURACY],
    bootstrap: { replicates: 200, seed: 0 },
  });
  assert.equal(m.groups_total, 6 * 2 * 6);
  assert.equal(m.windows_total, 6 * 2 * 6 * 9);
  assert.ok(m.metrics.accuracy.value! > 0.85, `block accuracy ${m.metrics.accuracy.value} from 65 % windows`);
  assert.equal(Object.keys(m.metrics).filter((k) => k.startsWith("per_participant_accuracy/")).length, 6);
  assert.deepEqual(m.bootstrap, { replicates: 200, seed: 0, confidence: 0.95, unit: "session" });
  const partial = await runWindowAveragedClassification(model, data, {
    partialSubset: 0.2,
    partialSeed: 1,
    metrics: [ACCURACY],
    bootstrap: { replicates: 0 },
  });
  assert.equal(partial.windows_total, m.windows_total);
  assert.equal(
    partial.windows_used,
    selectPartialSubset(data.groups, 0.2, 1).windows.length,
    "the result says how many windows it used",
  );
  assert.ok(partial.windows_used < m.windows_total / 3);
});

Deno.test("bad predictions are refused with a clear error", async () => {
  const data = syntheticBenchData({ sessions: sessions(1, 1) });
  const run = (predict: (n: number) => Float32Array[]) =>
    runWindowAveragedClassification(
      {
        checkpointHash: "e".repeat(64),
        dataLedger: null,
        batchSize: 8,
        predict: (batches) => Promise.resolve(predict(batches.reduce((n, b) => n + b.batchSize, 0))),
      },
      data,
      { partialSubset: 1, partialSeed: 0, metrics: [ACCURACY], bootstrap: { replicates: 0 } },
    );
  await assert.rejects(
    run((n) => Array.from({ length: n - 1 }, () => new Float32Array(3))),
    /returned \d+ logit rows for \d+/,
  );
  await assert.rejects(
    run((n) => Array.from({ length: n }, () => new Float32Array(2))),
    /emits 2 logits per query but the held-out labels have 3 classes/,
  );
  await assert.rejects(
    run((n) => Array.from({ length: n }, () => new Float32Array([NaN, 0, 0]))),
    /non-finite logit/,
  );
  await assert.rejects(
    runWindowAveragedClassification(new FakeBenchModel({ checkpointHash: "f".repeat(64) }), data, {
      partialSubset: 1e-9,
      partialSeed: 0,
      metrics: [ACCURACY],
    }),
    /keeps none of the 54 windows: raise partialSubset/,
  );
});
