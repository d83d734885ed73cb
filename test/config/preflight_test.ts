import assert from "node:assert/strict";
import {
  type AdapterDescription,
  FinetuneFrom,
  formatPreflightReport,
  POYO,
  type PreflightContext,
  preflightRunConfig,
  preflightTrainingPipeline,
  problem,
  RunConfig,
} from "../../mod.ts";

const H200: AdapterDescription = {
  maxBufferSize: 4_292_870_144,
  maxStorageBufferBindingSize: 2_147_483_644,
  features: ["shader-f16", "timestamp-query"],
  description: "fake H200",
  deviceMemoryBytes: 141e9,
};

const good = {
  name: "good_run",
  data: { trainWindow: 4, ursaQuery: { participants: ["p001", "p002"] } },
  model: { cls: POYO, kwargs: { dim: 64, depth: 2, dimHead: 16, selfHeads: 2, numLatents: 16 } },
  training: { batchSize: 8, maxSteps: 200, ckptEveryNSteps: 50, valEveryNSteps: 50, precision: "32-true" },
};

function context(overrides: Partial<PreflightContext> = {}): PreflightContext & { probes: number } {
  const ctx = {
    probes: 0,
    cwd: "/nonexistent-orion-test-cwd",
    runExists: () => Promise.resolve(false),
    isWritable: () => Promise.resolve(true),
    freeDiskBytes: () => Promise.resolve(1e12),
    resolveQuery: () => Promise.resolve({ windowsTrain: 1000, windowsVal: 100, problems: [] }),
    benchSuiteExists: (k: string) => k === "cognitive_load_eval@1",
    launcherCapacity: () => ({ maxNodes: 1, description: "test launcher" }),
    probeAdapter() {
      ctx.probes++;
      return Promise.resolve(H200);
    },
    ...overrides,
  };
  return ctx;
}

Deno.test("a good config passes every check and reports the memory numbers", async () => {
  const ctx = context();
  const report = await preflightRunConfig(good, ctx);
  assert.equal(report.ok, true, formatPreflightReport(report));
  assert.deepEqual(report.problems, []);
  assert.equal(ctx.probes, 1);
  const statuses = Object.fromEntries(report.checks.map((c) => [c.name, c.status]));
  assert.deepEqual(statuses, {
    schema: "ok",
    "run-name": "ok",
    bench: "ok",
    launcher: "ok",
    data: "ok",
    model: "ok",
    disk: "ok",
    "init-from": "ok",
    precision: "ok",
    memory: "ok",
  });
  assert.ok(report.memory && report.memory.parameters > 0);
  const text = formatPreflightReport(report);
  assert.match(text, /memory estimate per GPU: .* params\)/);
  assert.match(text, /largest buffer: /);
});

Deno.test("a bad config never probes the adapter and reports every problem at once", async () => {
  const ctx = context({ runExists: () => Promise.resolve(true) });
  const report = await preflightRunConfig(
    {
      ...good,
      training: { ...good.training, lr: "fast", optimizer: "sgd" },
      model: { cls: POYO, kwargs: { dim: 7 } },
    },
    ctx,
  );
  assert.equal(report.ok, false);
  assert.equal(ctx.probes, 0);
  assert.deepEqual(report.problems.map((p) => p.path).sort(), [
    "model.kwargs.dim",
    "name",
    "training.lr",
    "training.optimizer",
  ]);
  assert.equal(report.checks.find((c) => c.name === "memory")?.status, "skipped");
});

Deno.test("environment problems (data) also keep the adapter unprobed", async () => {
  const ctx = context({
    resolveQuery: () =>
      Promise.resolve({
        windowsTrain: 1000,
        windowsVal: 100,
        problems: [
          problem("data.ursaQuery.participants.1", "p002", "Cannot find participant p002", "remove it"),
        ],
      }),
  });
  const report = await preflightRunConfig(good, ctx);
  assert.equal(ctx.probes, 0);
  assert.deepEqual(report.problems.map((p) => p.path), ["data.ursaQuery.participants.1"]);
});

Deno.test("remote backends skip adapter checks (workers check at start); missing capabilities say skipped", async () => {
  const ctx = context();
  const report = await preflightRunConfig(
    { ...good, infra: { backend: "slurm", nodes: 4, gpusPerNode: 4 } },
    {
      ...ctx,
      launcherCapacity: undefined,
      resolveQuery: undefined,
      benchSuiteExists: undefined,
    },
  );
  assert.equal(report.ok, true);
  assert.equal(ctx.probes, 0);
  const detail = Object.fromEntries(report.checks.map((c) => [c.name, `${c.status}: ${c.detail}`]));
  assert.match(detail.memory, /^skipped: slurm workers/);
  assert.match(detail.data, /^skipped: no catalog resolver/);
  assert.match(detail.launcher, /^skipped/);
  // without the catalog, the estimate states its assumptions
  assert.ok(report.assumptions.some((a) => a.startsWith("tokens per window N")));
});

Deno.test("resuming requires the run directory to exist; a new run requires it not to", async () => {
  const missing = await preflightRunConfig(good, context({ resuming: true, adapter: H200 }));
  assert.deepEqual(missing.problems.map((p) => p.path), ["name"]);
  assert.match(missing.problems[0].message, /Cannot resume run "good_run"/);
  const present = await preflightRunConfig(
    good,
    context({ resuming: true, adapter: H200, runExists: () => Promise.resolve(true) }),
  );
  assert.equal(present.ok, true);
});

Deno.test("warnings do not fail pre-flight: bf16 exchange on one GPU, uneven latent layout, software adapter, tight disk", async () => {
  const report = await preflightRunConfig(
    {
      ...good,
      model: { cls: POYO, kwargs: { ...good.model.kwargs, latentStep: 0.3 } },
      infra: { accelerator: "gpu", gradientCompression: "bf16" },
    },
    context({
      adapter: { ...H200, isFallbackAdapter: true, description: "llvmpipe" },
      freeDiskBytes: () => Promise.resolve(3 * 1024 * 1024),
    }),
  );
  assert.equal(report.ok, true, formatPreflightReport(report));
  assert.deepEqual(report.problems.map((p) => [p.path, p.severity]), [
    ["infra.gradientCompression", "warning"],
    ["model.kwargs.latentStep", "warning"],
    ["training.keepLastK", "warning"],
    ["infra.accelerator", "warning"],
  ]);
});

Deno.test("pipeline pre-flight: a stage may start from an earlier stage; paths are prefixed by stage", async () => {
  const pre = RunConfig({ ...good, name: "pre", training: { ...good.training, precision: "32-true" } });
  const ft = { ...good, name: "ft", initFrom: FinetuneFrom({ run: pre }), training: { lr: "x" } };
  const report = await preflightTrainingPipeline(
    { name: "pipe", stages: [pre, ft] },
    context({ adapter: H200 }),
  );
  assert.equal(report.ok, false);
  assert.equal(report.stages[0].ok, true);
  assert.deepEqual(report.stages[1].problems.map((p) => p.path), ["stages.1.training.lr"]);
  assert.equal(report.stages[1].checks.find((c) => c.name === "init-from")?.status, "skipped");
  const fixed = await preflightTrainingPipeline(
    { name: "pipe", stages: [pre, { ...ft, training: {} }] },
    context({ adapter: H200 }),
  );
  assert.equal(fixed.ok, true);
  assert.equal(
    fixed.stages[1].checks.find((c) => c.name === "init-from")?.detail,
    "produced by an earlier pipeline stage",
  );
});

Deno.test("16-mixed and bf16-mixed pass without warnings; 16-mixed needs shader-f16 (stubbed probe)", async () => {
  for (const precision of ["16-mixed", "bf16-mixed"] as const) {
    const report = await preflightRunConfig(
      { ...good, training: { ...good.training, precision } },
      context({ adapter: H200 }),
    );
    assert.equal(report.ok, true, formatPreflightReport(report));
    assert.deepEqual(report.problems.filter((p) => p.path === "training.precision"), []);
    assert.match(report.checks.find((c) => c.name === "precision")!.detail, /supported/);
  }
  // An adapter without shader-f16: 16-mixed is a pre-flight error naming the fix; bf16-mixed still runs.
  const noF16 = { ...H200, features: ["timestamp-query"], description: "fake adapter without f16" };
  const probed = context({ probeAdapter: () => Promise.resolve(noF16) });
  const f16 = await preflightRunConfig(
    { ...good, training: { ...good.training, precision: "16-mixed" } },
    probed,
  );
  assert.equal(f16.ok, false);
  const err = f16.problems.find((p) => p.path === "training.precision")!;
  assert.equal(err.severity, "error");
  assert.match(
    err.message,
    /Cannot train in 16-mixed as the adapter \(fake adapter without f16\) lacks shader-f16/,
  );
  assert.match(err.fix!, /32-true.*bf16-mixed/);
  assert.equal(f16.checks.find((c) => c.name === "precision")!.status, "failed");
  const bf16 = await preflightRunConfig(
    { ...good, training: { ...good.training, precision: "bf16-mixed" } },
    context({ probeAdapter: () => Promise.resolve(noF16) }),
  );
  assert.equal(bf16.ok, true, formatPreflightReport(bf16));
});
