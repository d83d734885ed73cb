import assert from "node:assert/strict";
import {
  BenchCompute,
  ConfigError,
  DataConfig,
  FinetuneFrom,
  InfraConfig,
  invalidConfigError,
  ModelConfig,
  parseRunConfig,
  parseTrainingPipeline,
  POYO,
  QuerySpec,
  rawConfigOf,
  RunConfig,
  TrainingConfig,
  TrainingPipeline,
} from "../../mod.ts";
import seed from "../../configs/cognitive_load_v3_baseline.ts";
import small from "../../configs/run.ts";

function problemsOf(fn: () => unknown): { path: string; message: string; fix: string }[] {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
    return e.problems;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("the seed example type-checks, parses and resolves every default", () => {
  const run = RunConfig({
    name: "cognitive_load_v3_baseline",
    data: DataConfig({ ursaQuery: QuerySpec({ participants: "*" }), trainWindow: 10.0, trainSplit: 0.85 }),
    model: ModelConfig({ cls: POYO, kwargs: { dim: 512, depth: 6, numLatents: 64 } }),
    training: TrainingConfig({
      batchSize: 32,
      maxSteps: 200_000,
      optimizer: "sparse_lamb",
      lr: 3e-4,
      scheduler: "onecycle",
      ckptEveryNSteps: 2_000,
      precision: "bf16-mixed",
      benchEveryNSteps: 10_000,
      benchSuites: ["cognitive_load_eval@1"],
      benchCompute: BenchCompute({ mode: "async", partialSubset: 0.1 }),
    }),
    infra: InfraConfig({ accelerator: "gpu", nodes: 1, gpusPerNode: 8 }),
  });
  assert.equal(invalidConfigError(run), undefined);
  assert.equal(run.model.cls, POYO);
  assert.deepEqual(run.model.kwargs, {
    dim: 512,
    depth: 6,
    dimHead: 64,
    crossHeads: 1,
    selfHeads: 8,
    numLatents: 64,
    patch: 16,
    tMin: 1e-4,
    tMax: 2.0627,
    ffnDropout: 0.2,
    linDropout: 0.4,
    atnDropout: 0,
    latentStep: 1.25, // trainWindow / 8
  });
  assert.equal(run.data.valSplit, 0.15);
  assert.equal(run.data.evalWindowStride, 5);
  assert.equal(run.training.eps, 1e-6); // sparse_lamb default
  assert.equal(run.training.monitorMode, "min");
  assert.deepEqual(run.training.benchCompute, { mode: "async", partialSubset: 0.1, fullAtEnd: true });
  assert.equal(run.infra.backend, "local");
  assert.equal(run.runsDir, "runs");
  assert.equal(run.initFrom, null);
  // The shipped config file is exactly this example.
  assert.deepEqual(seed, run);
});

Deno.test("configs/run.ts is a valid small POYO run", () => {
  assert.equal(small.model.kwargs.dim, 64);
  assert.equal(small.model.kwargs.depth, 2);
  assert.equal(small.training.batchSize, 16);
  assert.equal(small.data.trainWindow, 4);
  assert.equal(small.model.kwargs.latentStep, 0.5);
});

Deno.test("parseRunConfig accepts plain objects and fills defaults; results are frozen", () => {
  const run = parseRunConfig({ name: "plain", model: { cls: "POYO" } });
  assert.equal(run.model.cls, POYO);
  assert.equal(run.training.optimizer, "adamw");
  assert.equal(run.training.eps, 1e-8);
  assert.equal(run.data.trainWindow, 10);
  assert.deepEqual(run.data.ursaQuery, QuerySpec());
  assert.ok(Object.isFrozen(run) && Object.isFrozen(run.training) && Object.isFrozen(run.training.betas));
  assert.throws(() => {
    (run.training as { lr: number }).lr = 1;
  }, TypeError);
});

Deno.test("parseRunConfig is idempotent on its own output", () => {
  const run = parseRunConfig({
    name: "idem",
    model: { cls: POYO, kwargs: { dim: 128 } },
    data: { trainWindow: 2 },
  });
  assert.deepEqual(parseRunConfig(run), run);
  assert.deepEqual(
    parseRunConfig(JSON.parse(JSON.stringify({ ...run, model: { ...run.model, cls: "POYO" } }))),
    run,
  );
});

Deno.test("derived defaults follow the fields they derive from, explicit values win", () => {
  assert.equal(
    parseRunConfig({ name: "a", model: { cls: POYO }, data: { trainWindow: 2 } }).model.kwargs.latentStep,
    0.25,
  );
  assert.equal(
    parseRunConfig({ name: "a", model: { cls: POYO, kwargs: { latentStep: 0.5 } }, data: { trainWindow: 2 } })
      .model
      .kwargs.latentStep,
    0.5,
  );
  const t = TrainingConfig({
    monitor: "cognitive_load_eval@1/accuracy",
    benchSuites: ["cognitive_load_eval@1"],
    benchEveryNSteps: 1000,
  });
  assert.equal(t.monitorMode, "max");
  assert.equal(TrainingConfig({ optimizer: "lamb", eps: 1e-7 }).eps, 1e-7);
});

Deno.test("builders defer problems: the enclosing RunConfig reports every section's problems with full paths", () => {
  const run = RunConfig({
    name: "several_mistakes",
    data: DataConfig({ trainWindow: 0 }),
    // deno-lint-ignore no-explicit-any
    model: ModelConfig({ cls: POYO, kwargs: { dim: 63, numLatent: 8 } as any }),
    // deno-lint-ignore no-explicit-any
    training: TrainingConfig({ optimizer: "sgd" as any, lr: -1 }),
  });
  const error = invalidConfigError(run);
  assert.ok(error);
  const paths = error.problems.map((p) => p.path).sort();
  assert.deepEqual(paths, [
    "data.trainWindow",
    "model.kwargs.dim",
    "model.kwargs.numLatent",
    "training.lr",
    "training.optimizer",
  ]);
  // the unknown kwarg suggests the right name
  assert.match(
    error.problems.find((p) => p.path === "model.kwargs.numLatent")!.fix,
    /did you mean "numLatents"/,
  );
  // reading a field of an invalid config throws its ConfigError; parseRunConfig too
  assert.throws(() => run.name, ConfigError);
  assert.throws(() => parseRunConfig(run), (e) => e instanceof ConfigError && e.problems.length === 5);
  // the raw input is kept, so overrides can repair it
  assert.deepEqual((rawConfigOf(run) as { data: unknown }).data, { trainWindow: 0 });
});

Deno.test("model kwargs: coherence problems (odd dim, dimHead) are reported together with type problems", () => {
  const problems = problemsOf(() =>
    parseRunConfig({ name: "k", model: { cls: POYO, kwargs: { dim: 65, dimHead: 10, depth: "six" } } })
  );
  assert.deepEqual(problems.map((p) => p.path).sort(), [
    "model.kwargs.depth",
    "model.kwargs.dim",
    "model.kwargs.dimHead",
  ]);
});

Deno.test("unknown model class names list the registered ones", () => {
  const [p] = problemsOf(() => parseRunConfig({ name: "k", model: { cls: "POYOO" } }));
  assert.equal(p.path, "model.cls");
  assert.match(p.message, /registered classes are .*POYO/);
  assert.match(p.fix, /did you mean "POYO"/);
});

Deno.test("FinetuneFrom takes a run name or a RunConfig; freezeUntilStep is shared with training", () => {
  const pre = RunConfig({ name: "pre", runsDir: "elsewhere", model: { cls: POYO } });
  const ft = RunConfig({
    name: "ft",
    model: { cls: POYO },
    initFrom: FinetuneFrom({
      run: pre,
      checkpoint: "last",
      weightOverrides: ["unit_emb", "readout"],
      freezeUntilStep: 500,
    }),
  });
  assert.deepEqual(ft.initFrom, {
    run: "pre",
    runsDir: "elsewhere",
    checkpoint: "last",
    weightOverrides: ["unit_emb", "readout"],
    freezeUntilStep: 500,
  });
  assert.equal(ft.training.freezeUntilStep, 500);
  const byName = parseRunConfig({
    name: "ft2",
    model: { cls: POYO },
    initFrom: { run: "pre", checkpoint: 4000 },
  });
  assert.equal(byName.initFrom?.runsDir, "runs");
  assert.equal(byName.initFrom?.checkpoint, 4000);
  assert.equal(
    parseRunConfig({ name: "x", model: { cls: POYO }, initFrom: { run: "pre", checkpoint: "0123abcd" } })
      .initFrom
      ?.checkpoint,
    "0123abcd",
  );
});

Deno.test("TrainingPipeline: stages resolve, names must be unique and stages start from earlier stages", () => {
  const pre = RunConfig({ name: "pre", model: { cls: POYO } });
  const ft = RunConfig({ name: "ft", model: { cls: POYO }, initFrom: FinetuneFrom({ run: pre }) });
  const p = TrainingPipeline({ name: "two_stage", stages: [pre, ft] });
  assert.equal(p.stages[1].initFrom?.run, "pre");
  const problems = problemsOf(() => parseTrainingPipeline({ name: "bad", stages: [ft, pre, { ...pre }] }));
  assert.deepEqual(problems.map((x) => x.path).sort(), ["stages.0.initFrom.run", "stages.2.name"]);
});

Deno.test("training.gradScaler: PyTorch defaults, partial overrides, and non-power-of-two factors refused with the field path", () => {
  assert.deepEqual(TrainingConfig({}).gradScaler, {
    initScale: 65536,
    growthFactor: 2,
    backoffFactor: 0.5,
    growthInterval: 2000,
  });
  assert.deepEqual(TrainingConfig({ precision: "16-mixed", gradScaler: { initScale: 1024 } }).gradScaler, {
    initScale: 1024,
    growthFactor: 2,
    backoffFactor: 0.5,
    growthInterval: 2000,
  });
  const problems = invalidConfigError(
    TrainingConfig({
      gradScaler: { initScale: 1000, backoffFactor: 0.3, growthFactor: 0.5, growthInterval: 0 },
    }),
  )?.problems ?? [];
  const byPath = new Map(problems.map((p) => [p.path, p.message]));
  assert.deepEqual([...byPath.keys()].sort(), [
    "gradScaler.backoffFactor",
    "gradScaler.growthFactor",
    "gradScaler.growthInterval",
    "gradScaler.initScale",
  ]);
  assert.match(byPath.get("gradScaler.initScale")!, /power of two/);
  assert.match(byPath.get("gradScaler.backoffFactor")!, /power of two/);
});
