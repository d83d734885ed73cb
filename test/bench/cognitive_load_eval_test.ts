import assert from "node:assert/strict";
import { join } from "node:path";
import { openCatalog } from "../../src/ursa/catalog.ts";
import { generateDemoCorpus } from "../../src/ursa/demo_corpus.ts";
import { resolveQuery } from "../../src/ursa/resolve_query.ts";
import { openWindowDataset } from "../../src/data/window_dataset.ts";
import { DataLedger } from "../../src/data/ledger.ts";
import { splitOf } from "../../src/data/split.ts";
import { writeCheckpoint } from "../../src/checkpoint/checkpoint_writer.ts";
import type { CheckpointState, JsonObject } from "../../src/checkpoint/checkpoint_state.ts";
import { recordingIO } from "../../src/cli/cli_io.ts";
import "../../src/bench/cognitive_load_eval.ts";
import { evalCommand, runBenchCommand, runEvalCommand } from "../../src/bench/bench_cli.ts";
import {
  checkpointDirOfHash,
  evaluateCheckpoint,
  setBenchModelLoader,
} from "../../src/bench/evaluate_checkpoint.ts";
import { createProcessSpawner, parseEvalOutput } from "../../src/bench/eval_process.ts";
import { BenchScheduler } from "../../src/bench/bench_runner.ts";
import { type BenchmarkResult, listBenchmarkResults } from "../../src/bench/results.ts";
import { FakeBenchModel } from "../../src/bench/fake_bench_model.ts";
import type { BenchModelInput } from "../../src/bench/bench_model.ts";
import { fakeLoader, loadedModels } from "./fixtures/fake_loader.ts";

const SUITE = "cognitive_load_eval@1";
const INPUT: BenchModelInput = {
  modalities: ["eeg", "pupil"],
  derived: ["standard_v2026q2.eeg_clean", "standard_v2026q2.pupil_dilation"],
  trainWindow: 1,
  patch: 16,
  latentStep: 0.25,
  numLatents: 4,
};

/** Rows written through other catalog connections are read through a fresh one (LanceDB tables cache their version). */
async function storedFor(catalogDir: string, checkpointHash: string): Promise<BenchmarkResult[]> {
  const fresh = await openCatalog(catalogDir);
  try {
    return await listBenchmarkResults(fresh, { checkpointHash });
  } finally {
    fresh.close();
  }
}

function state(ledger: DataLedger, accuracy: number, input: BenchModelInput = INPUT): CheckpointState {
  return {
    config: { bench_input: input as unknown as JsonObject, accuracy },
    model: { weights: { w: { dtype: "F32", shape: [1], data: new Float32Array([accuracy]) } } },
    optimizer: { tensors: {}, state: {} },
    scheduler: {},
    rng: { cpu: {}, gpu: [] },
    dataloader: {},
    dataHashes: ledger.toJSON() as unknown as JsonObject,
    metrics: {},
    lineage: { parentRun: null, stepsConsumed: 0 },
  };
}

Deno.test("cognitive_load_eval@1 on a demo catalog: held-out sessions, block averaging, CLI, caching, leakage, side process", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "orion_cognitive_load_eval_" });
  const catalogDir = join(root, "catalog");
  const catalog = await openCatalog(catalogDir);
  setBenchModelLoader(fakeLoader);
  try {
    await generateDemoCorpus(catalog, { participants: 6, minutes: 1, filesDir: join(root, "files") });
    const resolved = await resolveQuery(catalog, {});
    const rule = { trainSplit: 0.8, valSplit: 0.2, salt: "0" }; // the default run split (splitSeed 0)
    const heldOut = resolved.sessions.filter((s) => splitOf(s.key, rule) !== "train");
    assert.deepEqual(heldOut.map((s) => s.key), ["p005/s1", "p005/s3", "p006/s2", "p006/s3"]);
    // Expected evaluation grid, computed independently: 1 s windows every 0.5 s inside each labelled block.
    let blocks = 0, windows = 0;
    for (const s of heldOut) {
      for (const l of s.labels) {
        if (l.classIndex < 0 || l.end - l.start < 1) continue;
        blocks++;
        windows += Math.floor((l.end - l.start - 1) / 0.5 + 1e-9) + 1;
      }
    }
    // The training ledger of a run with the default split: every training-split window.
    const ds = await openWindowDataset(catalog, resolved, {
      ...INPUT,
      trainSplit: 0.8,
      valSplit: 0.2,
      splitSalt: "0",
    });
    assert.deepEqual(
      [...ds.split("val").sessions, ...ds.split("test").sessions].sort(),
      heldOut.map((s) => s.key),
      "the suite holds out exactly the non-train side of a default run's split",
    );
    const trainLedger = new DataLedger();
    for (const w of ds.split("train").windows) trainLedger.addWindow(ds.windowRef(w));
    const runDir = join(root, "runs", "demo_run");
    // The model's vocabulary: the run's (built over every session, held-out ones included).
    const withVocab = { ...INPUT, vocab: { channels: ds.vocab.channels, sessions: ds.vocab.sessions } };
    const ckpt = await writeCheckpoint(runDir, 100, state(trainLedger, 1, withVocab));
    const io = () => recordingIO();

    let first: BenchmarkResult;
    await t.step(
      "orion eval <run> --json evaluates the newest checkpoint on the held-out sessions",
      async () => {
        const out = io();
        const code = await runEvalCommand(
          [runDir, "--suite", SUITE, "--catalog", catalogDir, "--json"],
          out,
          root,
        );
        assert.equal(code, 0, out.text());
        const parsed = parseEvalOutput(out.stdout.join("\n"));
        assert.equal(parsed.failures.length, 0);
        first = parsed.results[0];
        assert.equal(first.suite_key, SUITE);
        assert.equal(first.checkpoint_hash, ckpt.hash);
        assert.equal(first.step, 100);
        assert.equal(first.run, "demo_run");
        assert.equal(first.groups_total, blocks);
        assert.equal(first.windows_total, windows);
        assert.equal(first.windows_used, windows);
        assert.deepEqual(first.metrics.accuracy, { value: 1, ci_low: 1, ci_high: 1, n: blocks, units: 4 });
        assert.deepEqual(
          Object.keys(first.metrics).sort(),
          [
            "accuracy",
            "balanced_accuracy",
            "macro_f1",
            "per_participant_accuracy/p005",
            "per_participant_accuracy/p006",
          ],
        );
        assert.ok(first.predictions.every((p) => p.windows >= 4 && p.unit === p.id.split("#")[0]));
        assert.equal(loadedModels.at(-1)!.disposed, true, "the model is disposed after evaluation");
      },
    );

    await t.step(
      "a second ask is served from the catalog without predicting; --force recomputes",
      async () => {
        const before = loadedModels.length;
        const again = await evaluateCheckpoint(ckpt.dir, [SUITE], { catalogDir });
        assert.equal(again.outcomes[0].cached, true);
        assert.deepEqual(again.outcomes[0].result, first);
        assert.equal(loadedModels[before].predictCalls, 0);
        const out = io();
        assert.equal(
          await runEvalCommand([ckpt.dir, "--suite", SUITE, "--catalog", catalogDir], out, root),
          0,
        );
        assert.match(
          out.text(),
          /cognitive_load_eval@1 on .*ckpt-step000000100 \(step 100, checkpoint [0-9a-f]{12}…\): stored result/,
        );
        assert.match(out.text(), /accuracy\s+1\.000\s+\[1\.000, 1\.000\]/);
        assert.match(out.text(), /per_participant_accuracy: 2 groups/);
        const forced = await evaluateCheckpoint(ckpt.dir, [SUITE], { catalogDir, force: true });
        assert.equal(forced.outcomes[0].cached, false);
        assert.ok(loadedModels.at(-1)!.predictCalls > 0);
      },
    );

    await t.step("--partial picks a deterministic subset and says how many windows it used", async () => {
      const run = async () => {
        const out = io();
        const code = await runEvalCommand(
          [
            "demo_run",
            "--suite",
            SUITE,
            "--catalog",
            catalogDir,
            "--partial",
            "0.3",
            "--seed",
            "5",
            "--json",
            "--force",
          ],
          out,
          join(root, "runs", ".."),
        );
        assert.equal(code, 0, out.text());
        return parseEvalOutput(out.stdout.join("\n")).results[0];
      };
      const a = await run(), b = await run();
      assert.ok(a.windows_used > 0 && a.windows_used < windows * 0.5, `${a.windows_used} of ${windows}`);
      assert.equal(a.windows_total, windows);
      assert.deepEqual(a.predictions, b.predictions);
      assert.equal(a.windows_used, b.windows_used);
      assert.notEqual(a.result_key, first.result_key);
    });

    await t.step("a checkpoint trained on a held-out session is refused, naming the recording", async () => {
      const leaky = new DataLedger().merge(trainLedger);
      const p006s2 = heldOut.find((s) => s.key === "p006/s2")!;
      leaky.add(p006s2.assets[1].recordingHash, [p006s2.assets[1].derivedAssetId], 5, 6);
      const bad = await writeCheckpoint(join(root, "runs", "leaky_run"), 200, state(leaky, 1));
      const out = io();
      assert.equal(await evalCommand([bad.dir, "--suite", SUITE, "--catalog", catalogDir], out), 1);
      assert.match(out.text(), /train\/test leakage/);
      assert.match(out.text(), new RegExp(`${p006s2.assets[1].recordingHash} \\(p006/s2\\): 1\\.000 s`));
      assert.equal((await storedFor(catalogDir, bad.hash)).length, 0);
      const allowed = io();
      assert.equal(
        await runEvalCommand(
          [bad.dir, "--suite", SUITE, "--catalog", catalogDir, "--allow-overlap"],
          allowed,
          root,
        ),
        0,
      );
      assert.match(allowed.text(), /OVERLAP ALLOWED \(1\.0 s\)/);
    });

    await t.step("usage errors and a missing model loader are reported clearly", async () => {
      const noSuite = io();
      assert.equal(await evalCommand([ckpt.dir], noSuite), 2);
      assert.match(
        noSuite.text(),
        /Cannot evaluate without --suite: registered suites are .*cognitive_load_eval@1/,
      );
      const badPartial = io();
      assert.equal(await evalCommand([ckpt.dir, "--suite", SUITE, "--partial", "2"], badPartial), 2);
      assert.match(badPartial.text(), /--partial must lie in \(0, 1\]/);
      const missing = io();
      assert.equal(await evalCommand([join(root, "nowhere"), "--suite", SUITE], missing), 2);
      assert.match(missing.text(), /neither a checkpoint directory/);
      const help = io();
      assert.equal(await evalCommand(["--help"], help), 0);
      assert.match(help.text(), /orion eval <checkpoint-dir \| run-dir \| run-name>/);
      setBenchModelLoader(null);
      const noLoader = io();
      assert.equal(await evalCommand([ckpt.dir, "--suite", SUITE, "--catalog", catalogDir], noLoader), 1);
      assert.match(noLoader.text(), /no model loader is registered.*setBenchModelLoader/s);
      setBenchModelLoader(fakeLoader);
    });

    await t.step("a model whose vocabulary lacks the held-out sessions is refused", async () => {
      const trainOnly = ds.vocab.sessions.filter((w, i) => i === 0 || !heldOut.some((h) => h.key === w));
      const input = { ...INPUT, vocab: { channels: ds.vocab.channels, sessions: trainOnly } };
      const narrow = await writeCheckpoint(
        join(root, "runs", "narrow_run"),
        100,
        state(trainLedger, 1, input),
      );
      const out = await evaluateCheckpoint(narrow.dir, [SUITE], { catalogDir });
      assert.equal(out.outcomes.length, 0);
      assert.match(
        out.failures[0].message,
        /sessions vocabulary lacks 4 word\(s\) the held-out data uses: current missing words are p005\/s1, p005\/s3, p006\/s2, p006\/s3/,
      );
    });

    await t.step("inline scheduling through the registered loader records the result", async () => {
      const acc60 = await writeCheckpoint(join(root, "runs", "noisy_run"), 300, state(trainLedger, 0.6));
      const bench = new BenchScheduler({
        mode: "inline",
        suites: [SUITE],
        catalogDir,
        partialSubset: 0.5,
        partialSeed: 1,
      });
      await bench.submit({ step: 300, checkpointDir: acc60.dir });
      await bench.close();
      assert.deepEqual(bench.failures, []);
      const r = bench.results[0];
      assert.equal(r.partial_subset, 0.5);
      assert.ok(
        r.metrics.accuracy.value! < 1 && r.metrics.accuracy.ci_low! < r.metrics.accuracy.ci_high!,
        JSON.stringify(r.metrics.accuracy),
      );
      assert.equal((await storedFor(catalogDir, acc60.hash)).length, 1);
      assert.equal(await checkpointDirOfHash(join(root, "runs", "noisy_run"), acc60.hash), acc60.dir);
      assert.equal(await checkpointDirOfHash(runDir, acc60.hash), undefined);
    });

    await t.step(
      "inline scheduling of a live model (inlineModel) uses the snapshot's checkpoint hash",
      async () => {
        const live = await writeCheckpoint(join(root, "runs", "live_run"), 50, state(trainLedger, 1));
        let asked: string | undefined;
        const bench = new BenchScheduler({
          mode: "inline",
          suites: [SUITE],
          catalogDir,
          run: "live_run",
          inlineModel: (snapshot) => {
            asked = snapshot.checkpointHash;
            const m = new FakeBenchModel({
              checkpointHash: snapshot.checkpointHash,
              dataLedger: trainLedger,
              accuracy: 0.9,
            });
            return Object.assign(m, { input: INPUT });
          },
        });
        await bench.submit({ step: 50, checkpointDir: live.dir });
        await bench.close();
        assert.deepEqual(bench.failures, []);
        assert.equal(asked, live.hash, "read from the manifest when the snapshot does not carry it");
        assert.equal(bench.results[0].checkpoint_hash, live.hash);
        assert.equal(bench.results[0].run, "live_run");
        assert.equal(bench.results[0].step, 50);
      },
    );

    await t.step("async scheduling runs the real `orion eval` CLI in a side Deno process", async () => {
      const final = await writeCheckpoint(runDir, 400, state(trainLedger, 0.8));
      const bench = new BenchScheduler({
        mode: "async",
        suites: [SUITE],
        catalogDir,
        partialSubset: 0.25,
        partialSeed: 9,
        spawnEval: createProcessSpawner({
          entry: new URL("./fixtures/eval_entry.ts", import.meta.url),
          config: new URL("../../deno.json", import.meta.url),
        }),
      });
      await bench.submit({ step: 400, checkpointDir: final.dir });
      await bench.drain();
      assert.deepEqual(bench.failures, []);
      const r = bench.results[0];
      assert.equal(r.checkpoint_hash, final.hash);
      assert.equal(r.partial_subset, 0.25);
      assert.ok(r.windows_used < r.windows_total);
      await bench.close();
      const stored = await storedFor(catalogDir, final.hash);
      assert.deepEqual(stored.map((s) => s.result_key), [r.result_key], "recorded by the training process");
    });

    await t.step("orion bench ls / results / best", async () => {
      const ls = io();
      assert.equal(await runBenchCommand(["ls"], ls, root), 0);
      assert.match(
        ls.text(),
        /cognitive_load_eval@1 .*\n\s+metrics: accuracy, balanced_accuracy, macro_f1, per_participant_accuracy/,
      );
      const results = io();
      assert.equal(
        await runBenchCommand(
          ["results", "--catalog", catalogDir, "--run", "demo_run", "--json"],
          results,
          root,
        ),
        0,
      );
      const listed = JSON.parse(results.stdout[0]) as BenchmarkResult[];
      assert.ok(listed.length >= 3 && listed.every((r) => r.run === "demo_run"));
      const best = io();
      assert.equal(
        await runBenchCommand(["best", `${SUITE}/accuracy`, "--catalog", catalogDir, "--json"], best, root),
        0,
      );
      const top = JSON.parse(best.stdout[0]) as BenchmarkResult;
      assert.equal(top.metrics.accuracy.value, 1);
      assert.equal(top.partial_subset, 1);
      const bad = io();
      await assert.rejects(
        () => runBenchCommand(["frobnicate"], bad, root),
        /no such command: use ls, results or best/,
      );
    });
  } finally {
    setBenchModelLoader(null);
    catalog.close();
    await Deno.remove(root, { recursive: true });
  }
});
