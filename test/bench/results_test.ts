import assert from "node:assert/strict";
import { openCatalog } from "../../src/ursa/catalog.ts";
import { DataLedger } from "../../src/data/ledger.ts";
import { registerBenchmark } from "../../src/bench/registry.ts";
import { ACCURACY, BALANCED_ACCURACY } from "../../src/bench/metrics.ts";
import { runWindowAveragedClassification } from "../../src/bench/window_averaged_classification.ts";
import { evaluateBenchmark } from "../../src/bench/evaluate.ts";
import {
  FakeBenchModel,
  syntheticBenchData,
  syntheticRecordingHash,
} from "../../src/bench/fake_bench_model.ts";
import {
  BENCHMARK_RESULTS_TABLE,
  benchmarkMetricScalars,
  benchmarkResultKey,
  bestBenchmarkResult,
  checkpointBenchmarks,
  findBenchmarkResult,
  listBenchmarkResults,
  parseBenchmarkResult,
} from "../../src/bench/results.ts";
import { LeakageError } from "../../src/bench/leakage.ts";
import { readCheckpoint, writeCheckpoint } from "../../src/checkpoint/mod.ts";
import type { CheckpointState } from "../../src/checkpoint/checkpoint_state.ts";
import { sha256OfCanonicalJson } from "../../src/config/canonical_json.ts";
import { createHash } from "node:crypto";

registerBenchmark({
  name: "results_test_eval",
  version: 1,
  heldOutData: () => ({ participants: "*" }),
  metrics: () => [ACCURACY, BALANCED_ACCURACY],
  run: (model, data, options) =>
    runWindowAveragedClassification(model, data, {
      ...options,
      metrics: [ACCURACY, BALANCED_ACCURACY],
      bootstrap: { replicates: 50 },
    }),
});

const data = syntheticBenchData({
  sessions: ["p001", "p002", "p003"].flatMap((participant) =>
    ["s1", "s2"].map((session) => ({
      participant,
      session,
      blocks: [0, 1, 2].map((label) => ({ label, seconds: 6 })),
    }))
  ),
});

async function withCatalog(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "orion_bench_results_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the content address is sha256 of the canonical JSON of the six key fields", () => {
  const key = {
    suite_name: "cognitive_load_eval",
    suite_version: 1,
    checkpoint_hash: "a".repeat(64),
    dataset_hash: "b".repeat(64),
    partial_subset: 0.1,
    partial_seed: 7,
  };
  const text =
    `{"checkpoint_hash":"${key.checkpoint_hash}","dataset_hash":"${key.dataset_hash}","partial_seed":7,"partial_subset":0.1,"suite_name":"cognitive_load_eval","suite_version":1}`;
  assert.equal(benchmarkResultKey(key), createHash("sha256").update(text).digest("hex"));
  assert.equal(`sha256:${benchmarkResultKey(key)}`, sha256OfCanonicalJson(key));
  for (const [field, value] of Object.entries({ partial_subset: 0.2, partial_seed: 8, suite_version: 2 })) {
    assert.notEqual(benchmarkResultKey({ ...key, [field]: value }), benchmarkResultKey(key), field);
  }
});

Deno.test("a second ask returns the stored result without recomputation; force and other keys recompute", async () => {
  await withCatalog(async (dir) => {
    const catalog = await openCatalog(dir);
    try {
      const model = new FakeBenchModel({ checkpointHash: "1".repeat(64), accuracy: 0.3, seed: 1 });
      const first = await evaluateBenchmark("results_test_eval@1", model, {
        catalog,
        data,
        run: "r",
        step: 10,
      });
      assert.equal(first.cached, false);
      const calls = model.predictCalls;
      assert.ok(calls > 0);
      assert.equal(await catalog.count(BENCHMARK_RESULTS_TABLE), 1);

      const again = await evaluateBenchmark("results_test_eval@1", model, { catalog, data });
      assert.equal(again.cached, true, "hit");
      assert.equal(model.predictCalls, calls, "no predict call on a hit");
      assert.deepEqual(again.result, first.result);
      assert.equal(again.result.step, 10, "the stored provenance is returned");

      const forced = await evaluateBenchmark("results_test_eval@1", model, {
        catalog,
        data,
        force: true,
        run: "r",
        step: 10,
      });
      assert.equal(forced.cached, false);
      assert.ok(model.predictCalls > calls, "force recomputes");
      assert.equal(forced.result.result_key, first.result.result_key);
      assert.equal(
        await catalog.count(BENCHMARK_RESULTS_TABLE),
        1,
        "force replaces the row with the same key",
      );

      const partial = await evaluateBenchmark("results_test_eval@1", model, {
        catalog,
        data,
        partialSubset: 0.5,
        partialSeed: 3,
      });
      assert.equal(partial.cached, false, "another partial subset is another key");
      assert.notEqual(partial.result.result_key, first.result.result_key);
      assert.ok(partial.result.windows_used < first.result.windows_used);
      const other = new FakeBenchModel({ checkpointHash: "2".repeat(64), accuracy: 1 });
      const second = await evaluateBenchmark("results_test_eval@1", other, {
        catalog,
        data,
        run: "r",
        step: 20,
      });
      assert.equal(second.cached, false, "another checkpoint is another key");
      assert.equal(await catalog.count(BENCHMARK_RESULTS_TABLE), 3);

      const stored = await findBenchmarkResult(catalog, first.result.result_key);
      assert.deepEqual(stored, forced.result);
      assert.equal(await findBenchmarkResult(catalog, "0".repeat(64)), undefined);
      const byCheckpoint = await listBenchmarkResults(catalog, { checkpointHash: "1".repeat(64) });
      assert.equal(byCheckpoint.length, 2);
      assert.deepEqual(
        (await listBenchmarkResults(catalog, { run: "r", fullOnly: true })).map((r) => r.step),
        [10, 20],
      );
      const best = await bestBenchmarkResult(catalog, "results_test_eval@1/accuracy");
      assert.equal(best?.checkpoint_hash, "2".repeat(64), "best checkpoint by accuracy");
      assert.equal(best?.metrics.accuracy.value, 1);
      const worst = await bestBenchmarkResult(catalog, "results_test_eval@1/accuracy", { mode: "min" });
      assert.equal(worst?.checkpoint_hash, "1".repeat(64));
      await assert.rejects(
        () => bestBenchmarkResult(catalog, "accuracy"),
        /must read "<suite>@<version>\/<metric>"/,
      );
    } finally {
      catalog.close();
    }
  });
});

Deno.test("evaluation refuses held-out data that overlaps the checkpoint's training ledger, naming the recordings", async () => {
  await withCatalog(async (dir) => {
    const catalog = await openCatalog(dir);
    try {
      const leaked = syntheticRecordingHash("p002/s1");
      const trained = new DataLedger();
      trained.add(leaked, ["synthetic"], 3, 5);
      trained.add("f".repeat(64), ["x"], 0, 100); // an unrelated training recording
      const model = new FakeBenchModel({ checkpointHash: "3".repeat(64), dataLedger: trained });
      await assert.rejects(
        () => evaluateBenchmark("results_test_eval@1", model, { catalog, data }),
        (e: Error) => {
          assert.ok(e instanceof LeakageError);
          assert.equal(e.overlaps.length, 1);
          assert.match(e.message, /train\/test leakage/);
          assert.match(e.message, new RegExp(`${leaked} \\(p002/s1\\): 2\\.000 s in \\[3, 5\\)`));
          assert.match(e.message, /--allow-overlap/);
          return true;
        },
      );
      assert.equal(model.predictCalls, 0, "nothing evaluated");
      assert.equal(await catalog.count(BENCHMARK_RESULTS_TABLE), 0, "nothing recorded");
      const allowed = await evaluateBenchmark("results_test_eval@1", model, {
        catalog,
        data,
        allowOverlap: true,
      });
      assert.equal(allowed.result.overlap_allowed, true);
      assert.equal(allowed.result.overlap_seconds, 2);
      assert.equal(allowed.overlaps[0].recording_hash, leaked);

      const unknown = new FakeBenchModel({ checkpointHash: "4".repeat(64), dataLedger: null });
      await assert.rejects(
        () => evaluateBenchmark("results_test_eval@1", unknown, { catalog, data }),
        /training data ledger is unknown.*--allow-overlap/s,
      );
      const disjoint = new FakeBenchModel({
        checkpointHash: "5".repeat(64),
        dataLedger: DataLedger.fromJSON({ version: 1, entries: [] }),
      });
      assert.equal(
        (await evaluateBenchmark("results_test_eval@1", disjoint, { catalog, data })).cached,
        false,
      );
    } finally {
      catalog.close();
    }
  });
});

function tinyState(benchmarks: CheckpointState["benchmarks"]): CheckpointState {
  return {
    config: { name: "bench_test" },
    model: { weights: { w: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } } },
    optimizer: { tensors: {}, state: {} },
    scheduler: {},
    rng: { cpu: {}, gpu: [] },
    dataloader: {},
    dataHashes: new DataLedger().toJSON() as unknown as CheckpointState["dataHashes"],
    metrics: {},
    benchmarks,
    lineage: { parentRun: null, stepsConsumed: 0 },
  };
}

Deno.test("results attach to the next checkpoint as benchmarks/<suite>@<version>.json (newest per suite)", async () => {
  await withCatalog(async (dir) => {
    const a = await evaluateBenchmark(
      "results_test_eval@1",
      new FakeBenchModel({ checkpointHash: "6".repeat(64) }),
      {
        data,
        step: 100,
      },
    );
    const b = await evaluateBenchmark(
      "results_test_eval@1",
      new FakeBenchModel({ checkpointHash: "7".repeat(64), accuracy: 0.5 }),
      {
        data,
        step: 200,
      },
    );
    const benchmarks = checkpointBenchmarks([b.result, a.result]);
    assert.deepEqual(Object.keys(benchmarks), ["results_test_eval@1"]);
    const info = await writeCheckpoint(`${dir}/run`, 300, tinyState(benchmarks));
    const files = [];
    for await (const f of Deno.readDir(`${info.dir}/benchmarks`)) files.push(f.name);
    assert.deepEqual(files, ["results_test_eval@1.json"]);
    const loaded = await readCheckpoint(info.dir);
    const carried = parseBenchmarkResult(
      loaded.state.benchmarks["results_test_eval@1"],
      "the carried result",
    );
    assert.equal(carried.checkpoint_hash, "7".repeat(64), "it names the checkpoint it measures");
    assert.equal(carried.step, 200);
    assert.deepEqual(carried, b.result);
    const scalars = benchmarkMetricScalars([carried]);
    assert.equal(scalars["results_test_eval@1/accuracy"], b.result.metrics.accuracy.value);
    assert.deepEqual(Object.keys(scalars).sort(), [
      "results_test_eval@1/accuracy",
      "results_test_eval@1/balanced_accuracy",
    ]);
  });
});

Deno.test("parseBenchmarkResult refuses tampered results", async () => {
  const { result } = await evaluateBenchmark(
    "results_test_eval@1",
    new FakeBenchModel({ checkpointHash: "8".repeat(64) }),
    { data },
  );
  assert.deepEqual(parseBenchmarkResult(JSON.stringify(result)), result);
  assert.throws(() => parseBenchmarkResult({ ...result, partial_seed: 9 }), /does not match its key fields/);
  assert.throws(() => parseBenchmarkResult({ ...result, windows_used: -1 }), /field windows_used is invalid/);
  assert.throws(() => parseBenchmarkResult({ ...result, format: "x" }), /field format is invalid/);
});
