import assert from "node:assert/strict";
import { type BenchFailure, BenchScheduler } from "../../src/bench/bench_runner.ts";
import { createProcessSpawner, type EvalRequest, formatEvalOutput } from "../../src/bench/eval_process.ts";
import { registerBenchmark } from "../../src/bench/registry.ts";
import { ACCURACY } from "../../src/bench/metrics.ts";
import { runWindowAveragedClassification } from "../../src/bench/window_averaged_classification.ts";
import { evaluateBenchmark } from "../../src/bench/evaluate.ts";
import { FakeBenchModel, syntheticBenchData } from "../../src/bench/fake_bench_model.ts";
import { type BenchmarkResult, findBenchmarkResult } from "../../src/bench/results.ts";
import { openCatalog } from "../../src/ursa/catalog.ts";

registerBenchmark({
  name: "runner_test_eval",
  version: 1,
  heldOutData: () => ({ participants: "*" }),
  metrics: () => [ACCURACY],
  run: (model, data, options) =>
    runWindowAveragedClassification(model, data, {
      ...options,
      metrics: [ACCURACY],
      bootstrap: { replicates: 20 },
    }),
});

const FIXTURE = new URL("./fixtures/fake_eval_process.ts", import.meta.url);
const CONFIG = new URL("../../deno.json", import.meta.url);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "orion_bench_runner_" });
}

/** A fake checkpoint directory for the fixture process. */
async function fakeCheckpoint(
  root: string,
  name: string,
  behaviour: Record<string, unknown>,
): Promise<string> {
  const dir = `${root}/${name}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/fake_eval.json`,
    JSON.stringify({ checkpointHash: "a".repeat(64), ...behaviour }),
  );
  return dir;
}

async function attemptsOf(dir: string, suites: string): Promise<number> {
  return Number(await Deno.readTextFile(`${dir}/attempts.${suites}`));
}

/**
 * A stand-in training loop: one "step" every `stepMs` (yielding to the event loop like GPU awaits do), a
 * benchmark submitted at `benchAt`, until `until()` holds or `maxSteps`.
 */
async function trainLoop(options: {
  bench: BenchScheduler;
  checkpointDir: string;
  benchAt: number;
  stepMs: number;
  maxSteps: number;
  until: () => boolean;
  state: { step: number };
}): Promise<{ submitMs: number; steps: number }> {
  let submitMs = -1;
  for (let step = 1; step <= options.maxSteps; step++) {
    await sleep(options.stepMs);
    options.state.step = step;
    if (step === options.benchAt) {
      const t0 = performance.now();
      await options.bench.submit({ step, checkpointDir: options.checkpointDir });
      submitMs = performance.now() - t0;
    }
    if (step > options.benchAt && options.until()) return { submitMs, steps: step };
  }
  return { submitMs, steps: options.maxSteps };
}

Deno.test("inline mode evaluates in the training process and blocks the step", async () => {
  const data = syntheticBenchData({
    sessions: [{
      participant: "p001",
      session: "s1",
      blocks: [{ label: 0, seconds: 20 }, { label: 1, seconds: 20 }],
    }],
  });
  const state = { step: 0 };
  const arrivals: number[] = [];
  const bench = new BenchScheduler({
    mode: "inline",
    suites: ["runner_test_eval@1"],
    partialSubset: 0.5,
    partialSeed: 3,
    record: null,
    evaluateInline: async (snapshot, suites, options) => {
      const model = new FakeBenchModel({ checkpointHash: "b".repeat(64), delayMs: 150, batchSize: 64 });
      const results = [];
      for (const s of suites) {
        results.push((await evaluateBenchmark(s, model, { ...options, data, step: snapshot.step })).result);
      }
      return { results, failures: [] };
    },
    onResult: () => arrivals.push(state.step),
  });
  const run = await trainLoop({
    bench,
    checkpointDir: "unused",
    benchAt: 5,
    stepMs: 2,
    maxSteps: 10,
    until: () => false,
    state,
  });
  assert.deepEqual(arrivals, [5], "the result arrived during step 5: no step ran while evaluating");
  assert.ok(run.submitMs >= 140, `submit blocked for ${run.submitMs} ms`);
  assert.equal(bench.results[0].partial_subset, 0.5, "periodic evaluations use the partial subset");
  assert.equal(bench.results[0].partial_seed, 3);
  assert.deepEqual(Object.keys(bench.takeCheckpointBenchmarks()), ["runner_test_eval@1"]);
  assert.deepEqual(bench.takeCheckpointBenchmarks(), {}, "consumed");
  await bench.close();
});

Deno.test("async mode: training steps advance while a side Deno process evaluates; the result is recorded on arrival", async () => {
  const root = await tempDir();
  try {
    const dir = await fakeCheckpoint(root, "ckpt-step000000010", { sleepMs: 1500, step: 10 });
    const started: string[][] = [];
    const state = { step: 0 };
    const arrivals: number[] = [];
    const bench = new BenchScheduler({
      mode: "async",
      suites: ["runner_test_eval@1"],
      partialSubset: 0.1,
      partialSeed: 42,
      catalogDir: `${root}/catalog`,
      spawnEval: createProcessSpawner({
        entry: FIXTURE,
        config: CONFIG,
        onStart: (_pid, args) => started.push(args),
      }),
      onResult: () => arrivals.push(state.step),
    });
    const run = await trainLoop({
      bench,
      checkpointDir: dir,
      benchAt: 10,
      stepMs: 10,
      maxSteps: 3000,
      until: () => arrivals.length > 0,
      state,
    });
    assert.ok(run.submitMs < 100, `submit returned after ${run.submitMs} ms`);
    assert.equal(arrivals.length, 1);
    assert.ok(
      arrivals[0] >= 10 + 40,
      `steps advanced while evaluating: submitted at 10, result at step ${arrivals[0]}`,
    );
    assert.deepEqual(bench.failures, []);
    assert.equal(started.length, 1);
    const args = started[0];
    assert.deepEqual(args.slice(args.indexOf("eval")), [
      "eval",
      dir,
      "--suite",
      "runner_test_eval@1",
      "--partial",
      "0.1",
      "--seed",
      "42",
      "--catalog",
      `${root}/catalog`,
      "--json",
      "--no-record",
    ]);
    assert.equal(await attemptsOf(dir, "runner_test_eval@1"), 1);
    const benchmarks = bench.takeCheckpointBenchmarks();
    assert.equal(
      (benchmarks["runner_test_eval@1"] as unknown as BenchmarkResult).checkpoint_hash,
      "a".repeat(64),
    );
    await bench.close();
    const catalog = await openCatalog(`${root}/catalog`);
    try {
      const stored = await findBenchmarkResult(catalog, bench.results[0].result_key);
      assert.equal(stored?.metrics.accuracy.value, 0.75, "recorded by the training process");
    } finally {
      catalog.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("async mode retries a crashed side process once, then reports without throwing into training", async () => {
  const root = await tempDir();
  try {
    const once = await fakeCheckpoint(root, "once", { crashAttempts: 1 });
    const always = await fakeCheckpoint(root, "always", { crashAttempts: 5 });
    const failures: BenchFailure[] = [];
    const bench = new BenchScheduler({
      mode: "async",
      suites: ["runner_test_eval@1"],
      record: null,
      spawnEval: createProcessSpawner({ entry: FIXTURE, config: CONFIG }),
      onFailure: (f) => failures.push(f),
    });
    await bench.submit({ step: 1, checkpointDir: once });
    await bench.submit({ step: 2, checkpointDir: always, final: true });
    await bench.drain();
    assert.equal(await attemptsOf(once, "runner_test_eval@1"), 2, "crashed once, retried once");
    assert.equal(await attemptsOf(always, "runner_test_eval@1"), 2, "retried once only");
    assert.equal(bench.results.length, 1);
    assert.equal(failures.length, 1);
    assert.equal(failures[0].kind, "crashed");
    assert.equal(failures[0].step, 2);
    assert.equal(failures[0].attempts, 2);
    assert.match(failures[0].message, /failed 2 time\(s\); training continues/);
    assert.match(failures[0].message, /exited with code 3/);
    assert.match(failures[0].message, /simulated crash/);
    await bench.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("separate mode starts one process per suite; a reported suite failure is not retried", async () => {
  const root = await tempDir();
  try {
    const dir = await fakeCheckpoint(root, "ckpt", { failSuites: ["runner_test_other@2"], sleepMs: 300 });
    const started: string[][] = [];
    const failures: BenchFailure[] = [];
    const bench = new BenchScheduler({
      mode: "separate",
      suites: ["runner_test_eval@1", "runner_test_other@2"],
      record: null,
      launchEval: createProcessSpawner({
        entry: FIXTURE,
        config: CONFIG,
        onStart: (_p, args) => started.push(args),
      }),
      onFailure: (f) => failures.push(f),
    });
    const t0 = performance.now();
    await bench.submit({ step: 5, checkpointDir: dir, final: true });
    assert.ok(performance.now() - t0 < 100, "submit does not wait");
    await bench.drain();
    assert.equal(started.length, 2);
    assert.deepEqual(
      started.map((a) => a.filter((_, i) => a[i - 1] === "--suite")).sort(),
      [["runner_test_eval@1"], ["runner_test_other@2"]],
      "one suite per process",
    );
    assert.ok(
      started.every((a) => a[a.indexOf("--partial") + 1] === "1"),
      "final evaluations are whole-suite",
    );
    assert.deepEqual(bench.results.map((r) => r.suite_key), ["runner_test_eval@1"]);
    assert.equal(failures.length, 1);
    assert.equal(failures[0].kind, "failed");
    assert.match(failures[0].message, /simulated leakage refusal/);
    assert.equal(await attemptsOf(dir, "runner_test_other@2"), 1, "not retried");
    await bench.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("while one snapshot is evaluated, a newer periodic snapshot replaces the waiting one; finals are kept; snapshots are removed when asked", async () => {
  const root = await tempDir();
  try {
    const requests: EvalRequest[] = [];
    const failures: BenchFailure[] = [];
    const spawnEval = async (request: EvalRequest) => {
      requests.push(request);
      await sleep(80);
      const step = Number(request.checkpointDir.slice(-1));
      const { result } = await evaluateBenchmark(
        "runner_test_eval@1",
        new FakeBenchModel({ checkpointHash: String(step).repeat(64) }),
        {
          data: syntheticBenchData({
            sessions: [{ participant: "p1", session: "s1", blocks: [{ label: 0, seconds: 4 }] }],
          }),
          step,
        },
      );
      return {
        code: 0,
        stdout: formatEvalOutput({ checkpoint_hash: null, results: [result], failures: [] }),
        stderr: "",
      };
    };
    const bench = new BenchScheduler({
      mode: "async",
      suites: ["runner_test_eval@1"],
      record: null,
      spawnEval,
      onFailure: (f) => failures.push(f),
    });
    const dirs = [];
    for (let i = 1; i <= 5; i++) {
      const d = `${root}/snap${i}`;
      await Deno.mkdir(d);
      dirs.push(d);
    }
    await bench.submit({ step: 1, checkpointDir: dirs[0], removeWhenDone: true }); // runs
    await bench.submit({ step: 2, checkpointDir: dirs[1], removeWhenDone: true }); // waits
    await bench.submit({ step: 3, checkpointDir: dirs[2], removeWhenDone: true }); // replaces 2
    await bench.submit({ step: 4, checkpointDir: dirs[3], final: true }); // final: queued
    await bench.submit({ step: 5, checkpointDir: dirs[4] }); // replaces 3
    assert.ok(bench.busy);
    await bench.drain();
    assert.equal(bench.busy, false);
    assert.deepEqual(requests.map((r) => r.checkpointDir), [dirs[0], dirs[3], dirs[4]]);
    assert.deepEqual(requests.map((r) => r.partialSubset), [1, 1, 1]);
    assert.deepEqual(failures.map((f) => [f.kind, f.step]), [["skipped", 2], ["skipped", 3]]);
    assert.deepEqual(bench.results.map((r) => r.step), [1, 4, 5]);
    for (const [i, d] of dirs.entries()) {
      const exists = await Deno.stat(d).then(() => true, () => false);
      assert.equal(exists, i >= 3, `${d} removed only when asked (removeWhenDone)`);
    }
    // The next checkpoint carries the newest result per suite.
    const carried = bench.takeCheckpointBenchmarks()["runner_test_eval@1"] as unknown as BenchmarkResult;
    assert.equal(carried.step, 5);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("submitFinal evaluates the last and the best checkpoint on whole suites and waits", async () => {
  const requests: EvalRequest[] = [];
  const spawnEval = async (request: EvalRequest) => {
    requests.push(request);
    await sleep(20);
    const { result } = await evaluateBenchmark(
      "runner_test_eval@1",
      new FakeBenchModel({ checkpointHash: request.checkpointDir.slice(-1).repeat(64) }),
      {
        data: syntheticBenchData({
          sessions: [{ participant: "p1", session: "s1", blocks: [{ label: 0, seconds: 4 }] }],
        }),
      },
    );
    return {
      code: 0,
      stdout: formatEvalOutput({ checkpoint_hash: null, results: [result], failures: [] }),
      stderr: "",
    };
  };
  const bench = new BenchScheduler({
    mode: "async",
    suites: ["runner_test_eval@1"],
    partialSubset: 0.1,
    record: null,
    spawnEval,
  });
  await bench.submitFinal({ step: 9, checkpointDir: "ckpt9" }, { step: 5, checkpointDir: "ckpt5" });
  assert.equal(bench.busy, false, "submitFinal waits");
  assert.deepEqual(requests.map((r) => [r.checkpointDir, r.partialSubset]), [["ckpt9", 1], ["ckpt5", 1]]);
  await bench.submitFinal({ step: 9, checkpointDir: "ckpt9" }, { step: 9, checkpointDir: "ckpt9" });
  assert.equal(requests.length, 3, "the best being the last is evaluated once");
  assert.equal(bench.results.length, 3);
});

Deno.test("the scheduler refuses unknown modes and malformed suite keys", () => {
  assert.throws(
    () => new BenchScheduler({ mode: "sometimes" as never, suites: [] }),
    /must be "inline", "async" or "separate"/,
  );
  assert.throws(
    () => new BenchScheduler({ mode: "async", suites: ["nope"] }),
    /must read "<suite>@<version>"/,
  );
});
