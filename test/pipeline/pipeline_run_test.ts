/**
 * A pre-train → fine-tune pipeline end to end at tiny scale on a 6-participant demo catalog (software
 * adapter): the weights at the start of fine-tuning (overrides at their fresh initialisation, everything else
 * the parent's, embedding rows by word), lineage.json and the ancestors' data ledger, interruption in stage 2
 * and resume (bit-identical to an uninterrupted pipeline), skipping finished stages, the catalog's lineage
 * queries and `orion lineage`, and a benchmark refused because an ancestor trained on its held-out data.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { POYO, poyoParameterSpecs } from "../../src/models/poyo.ts";
import type { ResolvedPoyoKwargs } from "../../src/models/poyo_kwargs.ts";
import { FinetuneFrom, RunConfig, type RunConfigInput, TrainingPipeline } from "../../src/config/mod.ts";
import { initialize } from "../../src/tensor/parameters.ts";
import {
  listCheckpointDirs,
  type LoadedCheckpoint,
  readCheckpoint,
} from "../../src/checkpoint/checkpoint_reader.ts";
import { openCatalog } from "../../src/ursa/catalog.ts";
import { generateDemoCorpus } from "../../src/ursa/demo_corpus.ts";
import { DataLedger } from "../../src/data/ledger.ts";
import { recordingIO } from "../../src/cli/cli_io.ts";
import { main } from "../../src/cli/main.ts";
import { evaluateCheckpoint } from "../../src/bench/evaluate_checkpoint.ts";
import { LeakageError } from "../../src/bench/leakage.ts";
import "../../src/bench/cognitive_load_eval.ts";
import "../../src/train/bench_model_loader.ts";
import { testGpu } from "../ops/op_harness.ts";
import { type PipelineRunOptions, runPipeline } from "../../src/pipeline/pipeline_runner.ts";
import { childrenOf, fullHistory, lineageOf, parentOf } from "../../src/pipeline/lineage_catalog.ts";
import { stageLineageOf } from "../../src/pipeline/stage_lineage.ts";

const KWARGS = { dim: 32, depth: 1, dimHead: 8, numLatents: 4, crossHeads: 1, selfHeads: 2 };

/**
 * pre: p001–p005 (p006 excluded) with split seed 6, under which p005/s1 and p005/s3 are training sessions
 * although cognitive_load_eval@1 holds them out (it uses split seed 0); ft: p006 alone with the default split.
 */
function tinyPipeline(root: string) {
  const catalogDir = join(root, "catalog");
  const common = { runsDir: join(root, "runs"), infra: { accelerator: "cpu-software" } };
  const pre = RunConfig({
    ...common,
    name: "pre",
    data: {
      catalogDir,
      ursaQuery: { participants: "*", excludeParticipants: ["p006"] },
      trainWindow: 2,
      splitSeed: 6,
    },
    model: { cls: POYO, kwargs: KWARGS },
    training: {
      batchSize: 4,
      maxSteps: 6,
      valEveryNSteps: 3,
      ckptEveryNSteps: 3,
      logEveryNSteps: 1,
      lr: 3e-3,
    },
  } as RunConfigInput);
  const ft = RunConfig({
    ...common,
    name: "ft",
    data: { catalogDir, ursaQuery: { participants: ["p006"] }, trainWindow: 2 },
    model: { cls: POYO, kwargs: KWARGS },
    initFrom: FinetuneFrom({ run: pre, checkpoint: "best", weightOverrides: ["readout"] }),
    training: {
      batchSize: 4,
      maxSteps: 6,
      valEveryNSteps: 2,
      ckptEveryNSteps: 2,
      logEveryNSteps: 1,
      seed: 3,
    },
  } as RunConfigInput);
  return TrainingPipeline({ name: "tiny", stages: [pre, ft] });
}

async function corpus(root: string): Promise<void> {
  const catalog = await openCatalog(join(root, "catalog"));
  try {
    await generateDemoCorpus(catalog, { participants: 6, minutes: 1, filesDir: join(root, "files") });
  } finally {
    catalog.close();
  }
}

async function checkpointAt(runDir: string, step: number): Promise<LoadedCheckpoint> {
  const entry = (await listCheckpointDirs(runDir)).find((e) => e.step === step);
  assert.ok(entry, `${runDir} has no checkpoint at step ${step}`);
  return await readCheckpoint(entry.dir);
}

async function checkpointByHash(runDir: string, hash: string): Promise<LoadedCheckpoint> {
  for (const e of await listCheckpointDirs(runDir)) {
    const c = await readCheckpoint(e.dir);
    if (c.hash === hash) return c;
  }
  throw new Error(`no checkpoint ${hash} in ${runDir}`);
}

const weightsOf = (c: LoadedCheckpoint) =>
  new Map(Object.entries(c.state.model.weights).map(([n, t]) => [n, t.data as Float32Array]));
const vocabOf = (c: LoadedCheckpoint) => ({
  channels: JSON.parse(c.state.model.metadata!.vocabulary_channels) as string[],
  sessions: JSON.parse(c.state.model.metadata!.vocabulary_sessions) as string[],
  modalities: JSON.parse(c.state.model.metadata!.modalities) as string[],
});
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
function sameBits(a: Float32Array, b: Float32Array, what: string) {
  assert.equal(a.length, b.length, `${what}: length`);
  assert.ok(bits(a).every((x, i) => x === bits(b)[i]), `${what}: values differ`);
}

Deno.test({
  name:
    "pipeline: pre-train → fine-tune end to end, interrupted in stage 2 and resumed, skipped when done, lineage, leakage",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const root = await Deno.makeTempDir({ prefix: "orion_pipeline_run_" });
    const refRoot = await Deno.makeTempDir({ prefix: "orion_pipeline_ref_" });
    const gpu = await testGpu();
    const io = recordingIO();
    const opts = (extra: Partial<PipelineRunOptions> = {}): PipelineRunOptions => ({
      cwd: root,
      io,
      gpu,
      ...extra,
    });
    try {
      await corpus(root);
      const pipeline = tinyPipeline(root);
      const preDir = join(root, "runs", "pre"), ftDir = join(root, "runs", "ft");
      let selectedHash = "";
      let selectedStep = -1;

      await t.step("stage 2 stopped before its first step holds the initial weights", async () => {
        const result = await runPipeline(pipeline, opts({ stopAfterSteps: { ft: 0 } }));
        assert.equal(result.status, "interrupted");
        assert.deepEqual(result.stages.map((s) => [s.name, s.action, s.status, s.step]), [
          ["pre", "trained", "finished", 6],
          ["ft", "trained", "interrupted", 0],
        ]);
        const init = result.stages[1].initFrom!;
        assert.equal(init.run, "pre");
        assert.match(init.reason, /^best by val_loss \(min\)/);
        selectedHash = init.checkpointHash;
        selectedStep = init.step;

        const parent = await checkpointByHash(preDir, selectedHash);
        // "best" really is the lowest val_loss among pre's checkpoints.
        const vals = await Promise.all((await listCheckpointDirs(preDir)).map(async (e) => {
          const c = await readCheckpoint(e.dir);
          return c.state.metrics.val_loss as number;
        }));
        assert.equal(parent.state.metrics.val_loss, Math.min(...vals));

        const start = await checkpointAt(ftDir, 0);
        const w0 = weightsOf(start), wp = weightsOf(parent);
        const vocab = vocabOf(start), parentVocab = vocabOf(parent);
        const kwargs = JSON.parse(start.state.model.metadata!.kwargs) as ResolvedPoyoKwargs;
        const fresh = new Map(
          poyoParameterSpecs(kwargs, vocab).map((spec) => {
            const out = new Float32Array(spec.shape.reduce((a, b) => a * b, 1));
            initialize(out, spec, pipeline.stages[1].training.seed);
            return [spec.name, out] as const;
          }),
        );
        // Overrides: the fresh initialisation of this stage (and not the parent's values).
        for (const name of ["readout.weight", "readout.bias"]) {
          sameBits(w0.get(name)!, fresh.get(name)!, name);
          assert.ok(w0.get(name)!.some((x, i) => x !== wp.get(name)![i]), `${name} equals the parent's`);
        }
        // Everything else: the parent's, embedding rows by word.
        for (const [name, value] of w0) {
          if (name.startsWith("readout.") || name.endsWith("_emb.weight") && name !== "latent_emb.weight") {
            continue;
          }
          sameBits(value, wp.get(name)!, name);
        }
        const rows = (name: string, words: string[], parentWords: string[]) => {
          const width = fresh.get(name)!.length / words.length;
          let kept = 0, added = 0;
          words.forEach((word, j) => {
            const i = parentWords.indexOf(word);
            const row = w0.get(name)!.subarray(j * width, (j + 1) * width);
            if (i >= 0) {
              kept++;
              sameBits(row, wp.get(name)!.subarray(i * width, (i + 1) * width), `${name} row of ${word}`);
            } else {
              added++;
              sameBits(
                row,
                fresh.get(name)!.subarray(j * width, (j + 1) * width),
                `${name} fresh row of ${word}`,
              );
            }
          });
          return { kept, added };
        };
        const channels = rows("unit_emb.weight", vocab.channels, parentVocab.channels);
        assert.equal(channels.kept, parentVocab.channels.length, "every parent channel word keeps its row");
        assert.ok(
          channels.added > 0 && vocab.channels.slice(channels.kept).every((w) => w.startsWith("p006/")),
        );
        const sessions = rows("session_emb.weight", vocab.sessions, parentVocab.sessions);
        assert.deepEqual(sessions, { kept: parentVocab.sessions.length, added: 3 });

        // lineage.json and the ancestors' data ledger.
        const lineage = start.state.lineage;
        assert.equal(lineage.parentRun, "pre");
        assert.equal(
          lineage.parentCheckpointHash,
          selectedHash,
          "the first checkpoint's parent is the init checkpoint",
        );
        assert.equal(lineage.stepsConsumed, selectedStep);
        const stage = stageLineageOf(lineage)!;
        assert.deepEqual(stage.initCheckpoint, {
          run: "pre",
          checkpointHash: selectedHash,
          step: selectedStep,
          stepsConsumed: selectedStep,
        });
        assert.deepEqual(stage.ancestors, [stage.initCheckpoint]);
        assert.deepEqual(stage.ancestorDataHashes, DataLedger.fromJSON(parent.state.dataHashes).toJSON());
        assert.ok(DataLedger.fromJSON(stage.ancestorDataHashes).totalSeconds() > 0);
        assert.deepEqual(start.state.dataHashes, stage.ancestorDataHashes, "no own data consumed yet");
      });

      await t.step(
        "a rerun skips stage 1 and resumes stage 2; stopping it again mid-stage and rerunning finishes",
        async () => {
          const before = (await listCheckpointDirs(preDir)).map((e) => e.name);
          const interrupted = await runPipeline(pipeline, opts({ stopAfterSteps: { ft: 2 } }));
          assert.deepEqual(interrupted.stages.map((s) => [s.name, s.action, s.status, s.step]), [
            ["pre", "skipped", "finished", 6],
            ["ft", "resumed", "interrupted", 2],
          ]);
          assert.match(io.text(), /resume plan: run ft from ckpt-step000000000/);
          const finished = await runPipeline(pipeline, opts());
          assert.equal(finished.status, "finished");
          assert.deepEqual(finished.stages.map((s) => [s.name, s.action, s.status, s.step]), [
            ["pre", "skipped", "finished", 6],
            ["ft", "resumed", "finished", 6],
          ]);
          assert.match(io.text(), /resume plan: run ft from ckpt-step000000002/);
          assert.deepEqual(
            (await listCheckpointDirs(preDir)).map((e) => e.name),
            before,
            "stage 1 untouched",
          );

          const again = await runPipeline(pipeline, opts());
          assert.deepEqual(again.stages.map((s) => [s.action, s.step]), [["skipped", 6], ["skipped", 6]]);
        },
      );

      await t.step("the resumed pipeline equals an uninterrupted one bit for bit", async () => {
        await corpus(refRoot);
        const reference = await runPipeline(tinyPipeline(refRoot), { cwd: refRoot, io: recordingIO(), gpu });
        assert.equal(reference.status, "finished");
        const a = weightsOf(await checkpointAt(ftDir, 6));
        const b = weightsOf(await checkpointAt(join(refRoot, "runs", "ft"), 6));
        assert.deepEqual([...a.keys()], [...b.keys()]);
        for (const [name, value] of a) sameBits(value, b.get(name)!, name);
      });

      const finalFt = await checkpointAt(ftDir, 6);
      await t.step("lineage.json, the catalog queries and orion lineage return the chain", async () => {
        assert.equal(finalFt.state.lineage.stepsConsumed, selectedStep + 6);
        assert.equal(finalFt.state.lineage.stageSteps, 6);
        const own = DataLedger.fromJSON(finalFt.state.dataHashes);
        const parentLedger = DataLedger.fromJSON(
          (await checkpointByHash(preDir, selectedHash)).state.dataHashes,
        );
        assert.ok(own.totalSeconds() > parentLedger.totalSeconds(), "the stage's own data is added");
        assert.equal(
          new DataLedger().merge(own).merge(parentLedger).totalSeconds(),
          own.totalSeconds(),
          "the checkpoint's ledger contains all of the ancestor's",
        );

        const catalog = await openCatalog(join(root, "catalog"));
        try {
          assert.deepEqual(await parentOf(catalog, "ft"), {
            run: "pre",
            checkpointHash: selectedHash,
            step: selectedStep,
            stepsConsumed: selectedStep,
          });
          assert.equal(await parentOf(catalog, "pre"), null);
          assert.deepEqual(await childrenOf(catalog, "pre"), ["ft"]);
          assert.deepEqual((await fullHistory(catalog, "ft")).map((l) => l.run), ["pre", "ft"]);

          const byHash = await lineageOf(catalog, finalFt.hash.slice(0, 12));
          assert.deepEqual(byHash.subject, {
            run: "ft",
            checkpointHash: finalFt.hash,
            step: 6,
            stepsConsumed: selectedStep + 6,
          });
          assert.deepEqual(byHash.history.map((n) => [n.run, n.status, n.steps, n.stepsConsumed]), [
            ["pre", "finished", 6, 6],
            ["ft", "finished", 6, selectedStep + 6],
          ]);
          const fromRoot = await lineageOf(catalog, "pre");
          assert.deepEqual(fromRoot.descendants.map((d) => [d.run, d.depth]), [["ft", 1]]);
          await assert.rejects(() => lineageOf(catalog, "nope"), /current runs are \[ft, pre\]/);
        } finally {
          catalog.close();
        }

        const out = recordingIO();
        const code = await main(["lineage", "pre", "--catalog", join(root, "catalog")], {
          io: out,
          cwd: root,
        });
        assert.equal(code, 0, out.text());
        assert.match(out.text(), /^lineage of pre: 6 steps consumed along 1 run\(s\), 1 descendant\(s\)/);
        assert.match(out.text(), /\* pre \[finished, 6\/6 steps, 6 consumed\] \(fresh init\)/);
        assert.match(
          out.text(),
          new RegExp(
            `└─ ft \\[finished, 6/6 steps, ${selectedStep + 6} consumed\\] ← pre @ ${
              selectedHash.slice(0, 12)
            }`,
          ),
        );
      });

      await t.step("a benchmark overlapping an ancestor's training data is refused", async () => {
        const outcome = await evaluateCheckpoint(finalFt.dir, ["cognitive_load_eval@1"], {
          catalogDir: join(root, "catalog"),
        });
        assert.equal(outcome.outcomes.length, 0);
        const error = outcome.failures[0]?.error;
        assert.ok(
          error instanceof LeakageError,
          `expected a LeakageError, got ${outcome.failures[0]?.message}`,
        );
        assert.match(error.message, /overlaps the data the checkpoint was trained on/);
        // Every overlap is p005's (pre-training data); ft's own p006 training session is not held out.
        const ancestorRecordings = new Set(
          stageLineageOf(finalFt.state.lineage)!.ancestorDataHashes.entries.map((e) => e.recording_hash),
        );
        assert.ok(error.overlaps.length > 0);
        for (const o of error.overlaps) assert.ok(ancestorRecordings.has(o.recording_hash), o.recording_hash);
        assert.match(error.message, /\(p005\/s[13]\)/);
        assert.doesNotMatch(error.message, /p006/);
      });
    } finally {
      await Deno.remove(root, { recursive: true });
      await Deno.remove(refRoot, { recursive: true });
    }
  },
});
