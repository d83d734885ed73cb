/**
 * Queryable runs: what `registerRunInCatalog` and `recordBenchmarkResult` wrote comes back through
 * `queryRunTable`, `bestCheckpointBy`, `findCheckpointByHash`, `describeRun` and the commands `orion runs
 * ls|show|query`, `orion ckpt show <hash>` and `orion ckpt gc` (which keeps checkpoints other runs started
 * from); and the filter language itself.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { main, recordingIO } from "../../mod.ts";
import type { RunConfig } from "../../src/config/run_config.ts";
import { openCatalog } from "../../src/ursa/catalog.ts";
import { writeCheckpoint } from "../../src/checkpoint/checkpoint_writer.ts";
import type { CheckpointInfo } from "../../src/checkpoint/checkpoint_writer.ts";
import { collectCodeVersion } from "../../src/checkpoint/code_version.ts";
import { compileRowFilter, parseRowFilter, RowFilterError } from "../../src/checkpoint/row_filter.ts";
import { registerRunInCatalog, type RunStatus } from "../../src/train/run_record.ts";
import {
  bestCheckpointBy,
  CheckpointLookupError,
  describeRun,
  findCheckpointByHash,
  listRuns,
  queryRunTable,
} from "../../src/train/run_queries.ts";
import { type BenchmarkResult, benchmarkResultKey, recordBenchmarkResult } from "../../src/bench/results.ts";
import { recordRunLineage } from "../../src/pipeline/lineage_catalog.ts";
import { syntheticState } from "./synthetic_state.ts";

const code = await collectCodeVersion({ git: false });

function config(name: string, maxSteps: number): RunConfig {
  return { name, training: { maxSteps }, initFrom: null } as unknown as RunConfig;
}

function benchmarkResult(checkpointHash: string, run: string, step: number, accuracy: number, partial = 1) {
  const key = {
    suite_name: "cognitive_load_eval",
    suite_version: 1,
    checkpoint_hash: checkpointHash,
    dataset_hash: "d".repeat(64),
    partial_subset: partial,
    partial_seed: 0,
  };
  const metric = (value: number) => ({ value, ci_low: value - 0.1, ci_high: value + 0.1, n: 10, units: 4 });
  const result: BenchmarkResult = {
    ...key,
    format: "orion.benchmark_result",
    format_version: 1,
    result_key: benchmarkResultKey(key),
    suite_key: "cognitive_load_eval@1",
    suite_code_hash: "c".repeat(64),
    overlap_allowed: false,
    overlap_seconds: 0,
    run,
    step,
    created_at: new Date(Date.UTC(2026, 0, 1, 0, step)).toISOString(),
    duration_ms: 5,
    metrics: { accuracy: metric(accuracy), balanced_accuracy: metric(accuracy - 0.05) },
    windows_used: 40,
    windows_total: 40,
    groups_used: 10,
    groups_total: 10,
    bootstrap: { confidence: 0.95, replicates: 100, seed: 0, unit: "participant" },
    predictions: [],
  };
  return result;
}

interface Fixture {
  root: string;
  catalogDir: string;
  /** run → step → written checkpoint. */
  ckpts: Map<string, Map<number, CheckpointInfo>>;
}

/**
 * Three runs: `alpha` finished at 200 steps (checkpoints 100, 200; 100 deleted by "retention"), `beta`
 * finished at 50, `gamma` still running at 150. Benchmarks on alpha@100 (0.6), alpha@200 (0.7), beta@50
 * (0.8, partial 0.5) and gamma@150 (0.65).
 */
async function fixture(): Promise<Fixture> {
  const root = await Deno.makeTempDir({ prefix: "orion_run_queries_" });
  const catalogDir = join(root, "catalog");
  const catalog = await openCatalog(catalogDir);
  const ckpts = new Map<string, Map<number, CheckpointInfo>>();
  const runs: [string, number, RunStatus, [number, number][]][] = [
    ["alpha", 200, "finished", [[100, 1.3], [200, 1.1]]],
    ["beta", 50, "finished", [[50, 1.05]]],
    ["gamma", 300, "running", [[150, 1.2]]],
  ];
  try {
    for (const [name, maxSteps, finalStatus, steps] of runs) {
      const runDir = join(root, "runs", name);
      const byStep = new Map<number, CheckpointInfo>();
      for (const [i, [step, valLoss]] of steps.entries()) {
        const metrics = { step, loss: valLoss + 0.1, val_loss: valLoss, val_accuracy: 1 - valLoss / 2 };
        const info = await writeCheckpoint(runDir, step, syntheticState(step, { metrics }), {
          code,
          parentHash: i === 0 ? null : byStep.get(steps[i - 1][0])!.hash,
        });
        byStep.set(step, info);
        const status = i === steps.length - 1 ? finalStatus : "running";
        await registerRunInCatalog(
          catalog,
          config(name, maxSteps),
          `sha256:${name}`,
          runDir,
          status,
          step,
          info,
          metrics,
        );
      }
      ckpts.set(name, byStep);
    }
    await Deno.remove(ckpts.get("alpha")!.get(100)!.dir, { recursive: true }); // as retention would
    const results = [
      benchmarkResult(ckpts.get("alpha")!.get(100)!.hash, "alpha", 100, 0.6),
      benchmarkResult(ckpts.get("alpha")!.get(200)!.hash, "alpha", 200, 0.7),
      benchmarkResult(ckpts.get("beta")!.get(50)!.hash, "beta", 50, 0.8, 0.5),
      benchmarkResult(ckpts.get("gamma")!.get(150)!.hash, "gamma", 150, 0.65),
    ];
    for (const r of results) await recordBenchmarkResult(catalog, r);
  } finally {
    catalog.close();
  }
  return { root, catalogDir, ckpts };
}

async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const f = await fixture();
  try {
    await fn(f);
  } finally {
    await Deno.remove(f.root, { recursive: true });
  }
}

async function orion(args: string[], cwd: string): Promise<{ code: number; out: string; err: string }> {
  const io = recordingIO();
  const code = await main(args, { cwd, io });
  return { code, out: io.stdout.join("\n"), err: io.stderr.join("\n") };
}

Deno.test("run queries return what was written: runs, checkpoints, benchmark results, best, hashes", async () => {
  await withFixture(async ({ catalogDir, ckpts }) => {
    const catalog = await openCatalog(catalogDir);
    try {
      const runs = await listRuns(catalog);
      assert.deepEqual(runs.map((r) => r.run_name).sort(), ["alpha", "beta", "gamma"]);
      const alpha = runs.find((r) => r.run_name === "alpha")!;
      assert.equal(alpha.status, "finished");
      assert.equal(alpha.steps, 200);
      assert.equal(alpha.max_steps, 200);
      assert.equal(alpha.last_checkpoint_hash, ckpts.get("alpha")!.get(200)!.hash);
      assert.equal(alpha.metrics.val_loss, 1.1);

      const names = async (table: "runs" | "checkpoints" | "benchmark_results", filter: string) =>
        (await queryRunTable(catalog, table, { filter })).map((r) =>
          `${r.run_name ?? r.run}@${r.step ?? r.steps}`
        )
          .sort();
      assert.deepEqual(await names("runs", "status = 'finished' AND steps > 100"), ["alpha@200"]);
      assert.deepEqual(await names("runs", "status = 'finished' OR metrics.val_loss < 1.15"), [
        "alpha@200",
        "beta@50",
      ]);
      assert.deepEqual(await names("runs", "status IN ('running') AND max_steps BETWEEN 250 AND 300"), [
        "gamma@150",
      ]);
      assert.deepEqual(await names("checkpoints", "metrics.val_loss < 1.25 AND step >= 100"), [
        "alpha@200",
        "gamma@150",
      ]);
      assert.deepEqual(await names("checkpoints", "parent_hash != ''"), ["alpha@200"]);
      assert.deepEqual(await names("benchmark_results", "metrics.accuracy >= 0.65 AND partial_subset = 1"), [
        "alpha@200",
        "gamma@150",
      ]);
      const ordered = await queryRunTable(catalog, "checkpoints", { orderBy: "metrics.val_loss", limit: 2 });
      assert.deepEqual(ordered.map((r) => r.step), [50, 200]);
      await assert.rejects(() => queryRunTable(catalog, "runs", { filter: "stauts = 'x'" }), RowFilterError);

      const bestBench = await bestCheckpointBy(catalog, "cognitive_load_eval@1/accuracy");
      assert.equal(
        bestBench?.checkpointHash,
        ckpts.get("alpha")!.get(200)!.hash,
        "partial results are skipped",
      );
      assert.equal(bestBench?.value, 0.7);
      assert.equal(bestBench?.path, ckpts.get("alpha")!.get(200)!.dir);
      const withPartial = await bestCheckpointBy(catalog, "cognitive_load_eval@1/accuracy", {
        fullOnly: false,
      });
      assert.equal(withPartial?.run, "beta");
      const narrowed = await bestCheckpointBy(catalog, "cognitive_load_eval@1/accuracy", {
        filter: "run_name = 'gamma'",
      });
      assert.equal(narrowed?.checkpointHash, ckpts.get("gamma")!.get(150)!.hash);
      const bestLoss = await bestCheckpointBy(catalog, "val_loss");
      assert.deepEqual([bestLoss?.run, bestLoss?.step, bestLoss?.mode, bestLoss?.value], [
        "beta",
        50,
        "min",
        1.05,
      ]);
      const bestAcc = await bestCheckpointBy(catalog, "metrics.val_accuracy", { run: "alpha" });
      assert.deepEqual([bestAcc?.step, bestAcc?.mode], [200, "max"]);

      const hash = ckpts.get("gamma")!.get(150)!.hash;
      assert.equal((await findCheckpointByHash(catalog, hash.slice(0, 8))).step, 150);
      await assert.rejects(() => findCheckpointByHash(catalog, "f".repeat(12)), CheckpointLookupError);
      await assert.rejects(() => findCheckpointByHash(catalog, "xyz"), /6 to 64 hex digits/);

      const details = await describeRun(catalog, "alpha");
      assert.deepEqual(details.checkpoints.map((c) => [c.step, c.onDisk]), [[100, false], [200, true]]);
      assert.deepEqual(details.checkpoints.map((c) => c.benchmarks[0]?.metrics.accuracy), [0.6, 0.7]);
      await assert.rejects(
        () => describeRun(catalog, "delta"),
        /current runs are \[alpha, beta, gamma\]|has no run/,
      );
    } finally {
      catalog.close();
    }
  });
});

Deno.test("orion runs ls|show|query and ckpt show <hash> print what the catalog holds", async () => {
  await withFixture(async ({ root, catalogDir, ckpts }) => {
    const ls = await orion(["runs", "ls", "--catalog", catalogDir], root);
    assert.equal(ls.code, 0, ls.err);
    assert.match(ls.out, /^run_name\s+status\s+steps/);
    for (const name of ["alpha", "beta", "gamma"]) assert.match(ls.out, new RegExp(`\\n${name}\\s`));

    const show = await orion(["runs", "show", "alpha", "--catalog", catalogDir], root);
    assert.equal(show.code, 0, show.err);
    assert.match(show.out, /status\s+finished, step 200\/200/);
    assert.match(show.out, /2 registered, 1 on disk/);
    assert.match(
      show.out,
      /100\s+\S+\s+-\s+1\.4\s+1\.3\s+0\.35\s+deleted\s+cognitive_load_eval@1: accuracy 0\.6/,
    );
    assert.match(show.out, /lineage\s+fresh start/);

    const query = await orion(
      ["runs", "query", "status = 'finished' AND steps > 100", "--catalog", catalogDir, "--json"],
      root,
    );
    assert.equal(query.code, 0, query.err);
    assert.deepEqual(JSON.parse(query.out).map((r: { run_name: string }) => r.run_name), ["alpha"]);
    const table = await orion(
      [
        "runs",
        "query",
        "--table",
        "checkpoints",
        "metrics.val_loss < 1.1",
        "--columns",
        "run_name,step,metrics.val_loss",
      ]
        .concat(["--catalog", catalogDir]),
      root,
    );
    assert.equal(table.code, 0, table.err);
    assert.deepEqual(table.out.split("\n").slice(0, 2).map((l) => l.split(/\s+/)), [
      ["run_name", "step", "val_loss"],
      ["beta", "50", "1.05"],
    ]);
    const none = await orion(["runs", "query", "steps > 1000", "--catalog", catalogDir], root);
    assert.equal(none.code, 1);
    const bad = await orion(["runs", "query", "stauts = 'finished'", "--catalog", catalogDir], root);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /no column "stauts": current columns are config_hash, .*status/);
    const best = await orion(
      ["runs", "query", "--best", "cognitive_load_eval@1/accuracy", "--catalog", catalogDir],
      root,
    );
    assert.equal(best.code, 0, best.err);
    assert.match(best.out, new RegExp(`checkpoint ${ckpts.get("alpha")!.get(200)!.hash}`));
    assert.match(best.out, /run\s+alpha, step 200/);
    const missingCatalog = await orion(["runs", "ls", "--catalog", join(root, "nope")], root);
    assert.equal(missingCatalog.code, 2);
    assert.match(missingCatalog.err, /does not exist/);

    const gamma = ckpts.get("gamma")!.get(150)!;
    const ckptShow = await orion(["ckpt", "show", gamma.hash.slice(0, 10), "--catalog", catalogDir], root);
    assert.equal(ckptShow.code, 0, ckptShow.err);
    assert.match(ckptShow.out, new RegExp(`checkpoint\\s+${gamma.dir}`));
    assert.match(ckptShow.out, new RegExp(`hash\\s+${gamma.hash}`));
    assert.match(
      ckptShow.out,
      /benchmarks measured on it \(catalog\)\n\s+cognitive_load_eval@1: accuracy 0\.6500/,
    );
    assert.match(ckptShow.out, /verified\s+ok/);
    const deleted = await orion(
      ["ckpt", "show", ckpts.get("alpha")!.get(100)!.hash.slice(0, 10), "--catalog", catalogDir],
      root,
    );
    assert.equal(deleted.code, 1);
    assert.match(deleted.err, /is gone: retention or `orion ckpt gc` deleted it/);
  });
});

Deno.test("orion ckpt gc keeps a checkpoint another run was started from (catalog run_lineage)", async () => {
  await withFixture(async ({ root, catalogDir, ckpts }) => {
    const runDir = join(root, "runs", "alpha2");
    const infos: CheckpointInfo[] = [];
    for (const step of [10, 20, 30]) {
      infos.push(await writeCheckpoint(runDir, step, syntheticState(step), { code }));
    }
    const catalog = await openCatalog(catalogDir);
    try {
      const init = { run: "alpha2", checkpointHash: infos[0].hash, step: 10, stepsConsumed: 10 };
      await recordRunLineage(catalog, "child_of_alpha2", {
        parentRun: "alpha2",
        initCheckpoint: init,
        ancestors: [init],
        ancestorDataHashes: { version: 1, entries: [] },
        pipeline: null,
      });
    } finally {
      catalog.close();
    }
    const gc = await orion(["ckpt", "gc", runDir, "--keep-last", "1", "--catalog", catalogDir], root);
    assert.equal(gc.code, 0, gc.err);
    assert.match(gc.out, /keep\s+ckpt-step000000010 .*runs started from it: child_of_alpha2/);
    const left = [...Deno.readDirSync(runDir)].map((e) => e.name).filter((n) => n.startsWith("ckpt-")).sort();
    assert.deepEqual(left, ["ckpt-step000000010", "ckpt-step000000030"]);
    assert.ok(ckpts.size === 3);
  });
});

Deno.test("row filter: syntax errors name the position, unknown columns list the columns, SQL NULL logic", () => {
  const rows = [
    { name: "a", n: 1, m: '{"x": 1.5, "y": "u"}' },
    { name: "b", n: 2, m: '{"x": null}' },
    { name: "c'd", n: null, m: "{}" },
  ];
  const pick = (f: string) => rows.filter(compileRowFilter(f, ["name", "n", "m"], "t")).map((r) => r.name);
  assert.deepEqual(pick("n >= 1"), ["a", "b"]);
  assert.deepEqual(pick("NOT n >= 2"), ["a"], "NULL stays unknown under NOT");
  assert.deepEqual(pick("n IS NULL OR m.x > 1"), ["a", "c'd"]);
  assert.deepEqual(pick("m.x IS NULL"), ["b", "c'd"], "missing keys and JSON null are NULL");
  assert.deepEqual(pick("name LIKE '_''%'"), ["c'd"]);
  assert.deepEqual(pick("name NOT IN ('a', 'b')"), ["c'd"]);
  assert.deepEqual(pick("n BETWEEN 1.5 AND 2"), ["b"]);
  assert.deepEqual(pick("m.\"y\" = 'u' AND (n = 1 OR n = 2)"), ["a"]);
  assert.deepEqual(pick("n = '2'"), ["b"], "numeric strings compare as numbers");
  assert.throws(() => parseRowFilter("n >"), /at its end/);
  assert.throws(
    () => parseRowFilter("n > 1 n"),
    /AND, OR or the end of the filter was expected at position 7/,
  );
  assert.throws(() => parseRowFilter("name = 'x"), /not closed/);
  assert.throws(() => parseRowFilter("n ; 1"), /character ";"/);
  assert.throws(
    () => compileRowFilter("nme = 1", ["name", "n"], "runs"),
    /no column "nme": current columns are n, name/,
  );
});
