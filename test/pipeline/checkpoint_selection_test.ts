/**
 * Checkpoint selection for `initFrom`: best by a snapshot metric (min/max, train_loss), best by a benchmark
 * metric from the catalog, last, step, hash and hash prefix; errors that name what exists.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { writeCheckpoint } from "../../src/checkpoint/checkpoint_writer.ts";
import type { CheckpointState } from "../../src/checkpoint/checkpoint_state.ts";
import { openCatalog } from "../../src/ursa/catalog.ts";
import { type BenchmarkResult, benchmarkResultKey, recordBenchmarkResult } from "../../src/bench/results.ts";
import { CheckpointSelectionError, selectCheckpoint } from "../../src/pipeline/checkpoint_selection.ts";

function state(metrics: Record<string, number>): CheckpointState {
  return {
    config: { name: "src" },
    model: { weights: { w: { dtype: "F32", shape: [1], data: new Float32Array([metrics.val_loss ?? 0]) } } },
    optimizer: { tensors: {}, state: {} },
    scheduler: {},
    rng: { cpu: {}, gpu: [] },
    dataloader: {},
    dataHashes: { version: 1, entries: [] },
    metrics,
    lineage: { parentRun: null, stepsConsumed: metrics.step },
  };
}

/** Four checkpoints: val_loss 0.9, 0.5, 0.7, 0.6 at steps 10..40; loss falls monotonically. */
async function withRun(fn: (runDir: string, hashes: Map<number, string>) => Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "orion_ckpt_select_" });
  try {
    const runDir = join(root, "src");
    const hashes = new Map<number, string>();
    const vals = [0.9, 0.5, 0.7, 0.6];
    for (let i = 0; i < vals.length; i++) {
      const step = 10 * (i + 1);
      const info = await writeCheckpoint(runDir, step, state({ step, val_loss: vals[i], loss: 2 - i * 0.1 }));
      hashes.set(step, info.hash);
    }
    await fn(runDir, hashes);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const valLoss = { monitor: "val_loss", monitorMode: null };

Deno.test("best by val_loss is the lowest; max mode and train_loss read the snapshot too", async () => {
  await withRun(async (runDir, hashes) => {
    const best = await selectCheckpoint(runDir, "best", { run: "src", monitor: valLoss });
    assert.equal(best.checkpoint.step, 20);
    assert.equal(best.checkpoint.hash, hashes.get(20));
    assert.match(best.reason, /best by val_loss \(min\): 0\.5 at step 20 of 4/);
    const worst = await selectCheckpoint(runDir, "best", {
      run: "src",
      monitor: { monitor: "val_loss", monitorMode: "max" },
    });
    assert.equal(worst.checkpoint.step, 10);
    const train = await selectCheckpoint(runDir, "best", {
      run: "src",
      monitor: { monitor: "train_loss", monitorMode: null },
    });
    assert.equal(train.checkpoint.step, 40, "train_loss is the snapshot's loss, lowest at the last step");
  });
});

Deno.test("last, a step, a hash and a unique hash prefix", async () => {
  await withRun(async (runDir, hashes) => {
    assert.equal((await selectCheckpoint(runDir, "last", { run: "src" })).checkpoint.step, 40);
    assert.equal((await selectCheckpoint(runDir, 30, { run: "src" })).checkpoint.hash, hashes.get(30));
    assert.equal((await selectCheckpoint(runDir, hashes.get(10)!, { run: "src" })).checkpoint.step, 10);
    assert.equal(
      (await selectCheckpoint(runDir, hashes.get(20)!.slice(0, 12), { run: "src" })).checkpoint.step,
      20,
    );
  });
});

Deno.test("errors name the checkpoints, metrics or results that exist", async () => {
  await withRun(async (runDir, hashes) => {
    await assert.rejects(
      () => selectCheckpoint(runDir, 25, { run: "src" }),
      (e: Error) =>
        e instanceof CheckpointSelectionError && /no checkpoint at that step/.test(e.message) &&
        /step 40 \(/.test(e.message) && e.message.includes(hashes.get(10)!.slice(0, 12)),
    );
    await assert.rejects(
      () => selectCheckpoint(runDir, "deadbeefdeadbeef", { run: "src" }),
      /Cannot select checkpoint deadbeefdeadbeef of run "src" as no checkpoint of that run has that hash: current checkpoints are step 40/,
    );
    await assert.rejects(
      () =>
        selectCheckpoint(runDir, "best", {
          run: "src",
          monitor: { monitor: "val_accuracy", monitorMode: null },
        }),
      /by val_accuracy as none of its checkpoints recorded it: current metrics are \[loss, step, val_loss\]/,
    );
    await assert.rejects(
      () => selectCheckpoint(runDir, "best", { run: "src", monitor: null }),
      /no monitored metric is known/,
    );
    await assert.rejects(
      () => selectCheckpoint(join(runDir, "..", "missing"), "last", { run: "missing" }),
      /has no complete checkpoint: current checkpoints are none/,
    );
  });
});

function result(checkpointHash: string, step: number, accuracy: number, partial = 1): BenchmarkResult {
  const key = {
    suite_name: "select_eval",
    suite_version: 1,
    checkpoint_hash: checkpointHash,
    dataset_hash: "d".repeat(64),
    partial_subset: partial,
    partial_seed: 0,
  };
  return {
    ...key,
    format: "orion.benchmark_result",
    format_version: 1,
    result_key: benchmarkResultKey(key),
    suite_key: "select_eval@1",
    suite_code_hash: "c".repeat(64),
    overlap_allowed: false,
    overlap_seconds: 0,
    run: "src",
    step,
    created_at: new Date(1_700_000_000_000 + step).toISOString(),
    duration_ms: 1,
    metrics: { accuracy: { value: accuracy, ci_low: null, ci_high: null, n: 10, units: 10 } },
    windows_used: 10,
    windows_total: 10,
    groups_used: 1,
    groups_total: 1,
    bootstrap: { confidence: 0.95, replicates: 0, seed: 0, unit: "participant" },
    predictions: [],
  };
}

Deno.test("best by a benchmark metric reads benchmark_results; whole-suite results rank first", async () => {
  await withRun(async (runDir, hashes) => {
    const catalog = await openCatalog(join(runDir, "..", "catalog"));
    try {
      const monitor = { monitor: "select_eval@1/accuracy", monitorMode: null };
      await assert.rejects(
        () => selectCheckpoint(runDir, "best", { run: "src", monitor, catalog }),
        /has no select_eval@1 result with accuracy on any of its checkpoints/,
      );
      await recordBenchmarkResult(catalog, result(hashes.get(10)!, 10, 0.6));
      await recordBenchmarkResult(catalog, result(hashes.get(30)!, 30, 0.8));
      await recordBenchmarkResult(catalog, result(hashes.get(40)!, 40, 0.95, 0.1)); // partial: ranked apart
      await recordBenchmarkResult(catalog, result("e".repeat(64), 50, 0.99)); // a checkpoint not on disk
      const best = await selectCheckpoint(runDir, "best", { run: "src", monitor, catalog });
      assert.equal(best.checkpoint.step, 30);
      assert.match(best.reason, /best by select_eval@1\/accuracy \(max\): 0\.8 at step 30 of 2 result/);
    } finally {
      catalog.close();
    }
  });
});
