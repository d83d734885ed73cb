/**
 * Whole-pipeline pre-flight: override prefixes against real parameter names, shape mismatches from changed
 * kwargs (unless overridden), checkpoint selectors that cannot be satisfied, unknown sources, and the stage
 * plans (a finished or interrupted attempt of the same stage is not "name taken"; another run is a conflict).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { POYO, poyoParameterSpecs } from "../../src/models/poyo.ts";
import { FinetuneFrom, RunConfig, type RunConfigInput, TrainingPipeline } from "../../src/config/mod.ts";
import { runDirectoryExists } from "../../src/config/preflight_environment.ts";
import { configHash } from "../../src/config/serialize_config.ts";
import { writeRunRecord } from "../../src/train/run_record.ts";
import { writeCheckpoint } from "../../src/checkpoint/checkpoint_writer.ts";
import type { CheckpointState } from "../../src/checkpoint/checkpoint_state.ts";
import { recordingIO } from "../../src/cli/cli_io.ts";
import { runPipeline } from "../../src/pipeline/pipeline_runner.ts";
import type { ResolvedPoyoKwargs } from "../../src/models/poyo_kwargs.ts";
import { type PipelinePreflight, preflightPipeline } from "../../src/pipeline/pipeline_preflight.ts";
import {
  poyoParameterShapes,
  unknownOverrides,
  weightMismatches,
} from "../../src/pipeline/weight_compatibility.ts";

const kwargs = { dim: 32, depth: 1, dimHead: 8, numLatents: 4, crossHeads: 1, selfHeads: 2 };

function stage(name: string, extra: Partial<RunConfigInput> = {}) {
  return RunConfig({
    name,
    model: { cls: POYO, kwargs },
    training: { maxSteps: 40, ckptEveryNSteps: 10, valEveryNSteps: 10 },
    ...extra,
  } as RunConfigInput);
}

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "orion_pipeline_preflight_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const run = (pipeline: unknown, cwd: string) =>
  preflightPipeline(pipeline, { cwd, runExists: runDirectoryExists });
const errors = (r: PipelinePreflight) =>
  [...r.problems, ...r.stages.flatMap((s) => s.problems)].filter((p) => p.severity === "error");

Deno.test("parameter shapes from kwargs list exactly poyoParameterSpecs' names", () => {
  const modalities = ["eeg", "pupil"];
  const k = { ...kwargs, patch: 16, numClasses: 3, latentStep: 0.25 } as unknown as ResolvedPoyoKwargs;
  const specs = poyoParameterSpecs(k, { channels: ["<pad>", "a"], sessions: ["<pad>"], modalities });
  const shapes = poyoParameterShapes({ ...kwargs, patch: 16, numClasses: 3 }, ["pupil", "eeg"]);
  assert.deepEqual([...shapes.keys()], specs.map((s) => s.name));
  for (const s of specs) {
    if (s.name === "unit_emb.weight") assert.deepEqual(shapes.get(s.name), [1, s.shape[1]]);
    else assert.deepEqual(shapes.get(s.name), s.shape, s.name);
  }
  // Embedding tables compare by row width only; an open numClasses (-1) matches any.
  const child = poyoParameterShapes({ ...kwargs, patch: 16 }, modalities);
  assert.deepEqual(child.get("readout.weight"), [-1, 32]);
  assert.deepEqual(weightMismatches(child, shapes, []), []);
  assert.deepEqual(
    unknownOverrides(shapes.keys(), ["readout", "proc.0", "readou", "dec_ffn.w2.bias"]).map((u) => u.prefix),
    [
      "readou",
    ],
  );
});

Deno.test("an override prefix matching no parameter is an error naming the real prefixes", async () => {
  await withDir(async (dir) => {
    const pre = stage("pre");
    const ft = stage("ft", { initFrom: FinetuneFrom({ run: pre, weightOverrides: ["readout", "head"] }) });
    const report = await run(TrainingPipeline({ name: "p", stages: [pre, ft] }), dir);
    assert.equal(report.ok, false);
    const [p] = errors(report);
    assert.equal(p.path, "stages.1.initFrom.weightOverrides.1");
    assert.match(
      p.message,
      /Cannot re-initialise weights under "head" in stage 1 \(ft\) as no parameter is named so/,
    );
    assert.match(
      p.fix,
      /unit_emb, value_map, session_emb, latent_emb, enc_atn, enc_ffn, proc, dec_atn, dec_ffn, readout/,
    );
    assert.equal(errors(report).length, 1);
    const check = report.stages[1].checks.find((c) => c.name === "init-from")!;
    assert.equal(check.status, "failed");
  });
});

Deno.test("a changed dim lists the mismatched parameters unless overrides cover them", async () => {
  await withDir(async (dir) => {
    const pre = stage("pre");
    const wide = (overrides: string[]) =>
      stage("ft", {
        model: { cls: POYO, kwargs: { ...kwargs, dim: 64 } },
        initFrom: FinetuneFrom({ run: pre, weightOverrides: overrides }),
      });
    const report = await run(TrainingPipeline({ name: "p", stages: [pre, wide(["readout"])] }), dir);
    const [p] = errors(report);
    assert.equal(p.path, "stages.1.initFrom.weightOverrides");
    assert.match(
      p.message,
      /Cannot load \d+ parameter\(s\) of stage 1 \(ft\) from stage 0 \(pre\) as their shapes differ \(model.kwargs dim 32 → 64\)/,
    );
    assert.match(p.message, /unit_emb\.weight \[1, 16\] in the source, \[1, 32\] here/);
    assert.doesNotMatch(p.message, /readout/);
    assert.match(
      p.fix,
      /"unit_emb", "value_map", "session_emb", "latent_emb", "enc_atn", "enc_ffn", "proc", "dec_atn", "dec_ffn"/,
    );

    const all = [
      "unit_emb",
      "value_map",
      "session_emb",
      "latent_emb",
      "enc_atn",
      "enc_ffn",
      "proc",
      "dec_atn",
      "dec_ffn",
      "readout",
    ];
    const covered = await run(TrainingPipeline({ name: "p", stages: [pre, wide(all)] }), dir);
    assert.deepEqual(errors(covered), []);
    assert.equal(covered.ok, true);
  });
});

Deno.test("selectors that cannot be satisfied are errors before stage 1; fewer layers is a warning", async () => {
  await withDir(async (dir) => {
    const noVal = stage("pre", {
      training: { maxSteps: 40, ckptEveryNSteps: 10, valEveryNSteps: null, keepBestK: 0 },
    });
    const ftBest = stage("ft", { initFrom: FinetuneFrom({ run: noVal, checkpoint: "best" }) });
    let [p] = errors(await run(TrainingPipeline({ name: "p", stages: [noVal, ftBest] }), dir));
    assert.equal(p.path, "stages.1.initFrom.checkpoint");
    assert.match(p.message, /by val_loss as it never validates/);

    const pre = stage("pre");
    const ftStep = stage("ft", { initFrom: FinetuneFrom({ run: pre, checkpoint: 15 }) });
    [p] = errors(await run(TrainingPipeline({ name: "p", stages: [pre, ftStep] }), dir));
    assert.match(
      p.message,
      /Cannot start from step 15 of stage 0 \(pre\) as it writes no checkpoint at that step/,
    );

    const ftHash = stage("ft", { initFrom: FinetuneFrom({ run: pre, checkpoint: "abcdef0123" }) });
    [p] = errors(await run(TrainingPipeline({ name: "p", stages: [pre, ftHash] }), dir));
    assert.match(p.message, /before that stage has run/);

    const shallow = stage("ft", {
      model: { cls: POYO, kwargs: { ...kwargs, depth: 0 } },
      initFrom: FinetuneFrom({ run: pre, checkpoint: 20 }),
    });
    const report = await run(TrainingPipeline({ name: "p", stages: [pre, shallow] }), dir);
    assert.equal(report.ok, true);
    const warning = report.stages[1].problems.find((x) => x.severity === "warning")!;
    assert.match(
      warning.message,
      /Cannot use 11 parameter\(s\) of stage 0 \(pre\) in stage 1 \(ft\) as it has no such parameters: proc\.0\.atn\.norm\.weight/,
    );
    assert.match(warning.message + warning.fix, /retention|not loaded/);

    const outside = stage("ft", { initFrom: FinetuneFrom({ run: "never_trained" }) });
    [p] = errors(await run(TrainingPipeline({ name: "p", stages: [outside] }), dir));
    assert.equal(p.path, "stages.0.initFrom.run");
    assert.match(p.message, /Cannot fine-tune from run "never_trained" as .*never_trained does not exist/);
  });
});

Deno.test("plans: a finished attempt is skipped, an interrupted one resumes, another run in the directory conflicts", async () => {
  await withDir(async (dir) => {
    const pre = stage("pre");
    const ft = stage("ft", { initFrom: FinetuneFrom({ run: pre, checkpoint: "last" }) });
    const pipeline = TrainingPipeline({ name: "p", stages: [pre, ft] });
    const fresh = await run(pipeline, dir);
    assert.deepEqual(fresh.plans.map((p) => p?.action), ["run", "run"]);
    assert.equal(fresh.ok, true);

    const record = (name: string, status: "finished" | "interrupted", hash: string) =>
      writeRunRecord(join(dir, "runs", name), { name, status, step: 40, configHash: hash, checkpoint: null });
    await Deno.mkdir(join(dir, "runs", "pre"), { recursive: true });
    await Deno.mkdir(join(dir, "runs", "ft"), { recursive: true });
    await record("pre", "finished", configHash(pre));
    await record("ft", "interrupted", configHash(ft));
    const again = await run(pipeline, dir);
    assert.deepEqual(again.plans.map((p) => p?.action), ["skip", "resume"]);
    assert.equal(again.stages[0].checks.find((c) => c.name === "run-name")!.status, "ok");
    assert.match(
      again.stages[1].checks.find((c) => c.name === "run-name")!.detail,
      /no checkpoint: restarts/,
    );
    // "last" of a finished source is resolved on disk, where it has no checkpoint here.
    const [p] = errors(again);
    assert.equal(p.path, "stages.1.initFrom.checkpoint");
    assert.match(p.message, /run "pre" as it has no complete checkpoint: current checkpoints are none/);

    await record("pre", "finished", "sha256:" + "0".repeat(64));
    const conflict = await run(pipeline, dir);
    assert.equal(conflict.plans[0]?.action, "conflict");
    const c = errors(conflict).find((x) => x.path === "stages.0.name")!;
    assert.match(
      c.message,
      /Cannot run stage 0 \(pre\) as .*holds a run with another config \(hash sha256:0{12}…, this stage sha256:/,
    );
    assert.equal(
      errors(conflict).filter((x) => /already exists: run names are unique/.test(x.message)).length,
      0,
    );
  });
});

function syntheticState(valLoss: number, lineage: CheckpointState["lineage"]): CheckpointState {
  return {
    config: {},
    model: { weights: { w: { dtype: "F32", shape: [1], data: new Float32Array([valLoss]) } } },
    optimizer: { tensors: {}, state: {} },
    scheduler: {},
    rng: { cpu: {}, gpu: [] },
    dataloader: {},
    dataHashes: { version: 1, entries: [] },
    metrics: { val_loss: valLoss },
    lineage,
  };
}

Deno.test("a finished stage trained from another checkpoint than its source now selects is stale: pre-flight and runner refuse", async () => {
  await withDir(async (dir) => {
    const pre = stage("pre");
    const ft = stage("ft", { initFrom: FinetuneFrom({ run: pre, checkpoint: "best" }) });
    const pipeline = TrainingPipeline({ name: "p", stages: [pre, ft] });
    const preDir = join(dir, "runs", "pre"), ftDir = join(dir, "runs", "ft");
    const a = await writeCheckpoint(preDir, 20, syntheticState(0.5, { parentRun: null, stepsConsumed: 20 }));
    const b = await writeCheckpoint(preDir, 40, syntheticState(0.7, { parentRun: null, stepsConsumed: 40 }));
    await writeRunRecord(preDir, {
      name: "pre",
      status: "finished",
      step: 40,
      configHash: configHash(pre),
      checkpoint: null,
    });
    const init = { run: "pre", checkpointHash: b.hash, step: 40, stepsConsumed: 40 };
    await writeCheckpoint(
      ftDir,
      40,
      syntheticState(0.4, { parentRun: "pre", stepsConsumed: 80, initCheckpoint: init }),
    );
    await writeRunRecord(ftDir, {
      name: "ft",
      status: "finished",
      step: 40,
      configHash: configHash(ft),
      checkpoint: null,
    });

    const report = await run(pipeline, dir);
    assert.deepEqual(report.plans.map((p) => p?.action), ["skip", "skip"]);
    const [p] = errors(report);
    assert.equal(p.path, "stages.1.initFrom.checkpoint");
    assert.match(
      p.message,
      new RegExp(
        `initialised from checkpoint ${b.hash.slice(0, 12)} of stage 0 \\(pre\\) but initFrom now selects ${
          a.hash.slice(0, 12)
        } \\(best by val_loss`,
      ),
    );
    await assert.rejects(
      () => runPipeline(pipeline, { cwd: dir, io: recordingIO() }),
      new RegExp(`Cannot skip stage 1 \\(ft\\) as it was initialised from checkpoint ${b.hash.slice(0, 12)}`),
    );

    // Selecting the checkpoint it was trained from by hash makes it current again.
    const pinned = stage("ft", { initFrom: FinetuneFrom({ run: pre, checkpoint: b.hash }) });
    const ok = await run(TrainingPipeline({ name: "p", stages: [pre, pinned] }), dir);
    assert.deepEqual(errors(ok).filter((x) => x.path.startsWith("stages.1.initFrom")), []);

    // A source that trains again makes the finished child stale too.
    await Deno.rename(preDir, join(dir, "runs", "pre_old"));
    const again = await run(pipeline, dir);
    assert.deepEqual(again.plans.map((p) => p?.action), ["run", "skip"]);
    assert.match(
      errors(again)[0].message,
      /Cannot continue stage 1 \(ft\) from its checkpoints as stage 0 \(pre\) will train again/,
    );
  });
});
