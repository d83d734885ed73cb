/**
 * Table-driven: invalid configs through `orion train <config> --dry-run` in-process. Every case asserts the exit
 * code, the field path and a message fragment of each expected problem, and that nothing was written.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { PreflightContext } from "../../mod.ts";
import { BASE_CONFIG, fakePreflight, listTree, MOD_URL, runOrion, writeConfig } from "./cli_fixtures.ts";

interface Case {
  name: string;
  /** `--set` overrides applied to the base config. */
  sets?: string[];
  /** A whole config module instead of the base one (`MOD` is replaced by mod.ts's URL). */
  source?: string;
  /** A config path instead of a written module. */
  file?: string;
  preflight?: Partial<PreflightContext>;
  setup?: (cwd: string) => Promise<void>;
  /** [field path, fragment of its message or fix] for each problem that must be reported. */
  expect: [string, string][];
  code?: number;
}

const plain = (body: string) =>
  `import { POYO, RunConfig, TrainingConfig, DataConfig, ModelConfig, TrainingPipeline, FinetuneFrom } from "MOD";\n${body}`;

const CASES: Case[] = [
  // wrong types
  { name: "lr is a string", sets: ["training.lr=fast"], expect: [["training.lr", "must be a number"]] },
  { name: "batch size zero", sets: ["training.batchSize=0"], expect: [["training.batchSize", "> 0"]] },
  {
    name: "batch size fractional",
    sets: ["training.batchSize=2.5"],
    expect: [["training.batchSize", "integer"]],
  },
  { name: "betas not a pair", sets: ["training.betas=[0.9]"], expect: [["training.betas.1", "required"]] },
  { name: "betas out of range", sets: ["training.betas=[0.9, 1.5]"], expect: [["training.betas.1", "< 1"]] },
  { name: "emaDecay of 1", sets: ["training.emaDecay=1"], expect: [["training.emaDecay", "< 1"]] },
  { name: "trainWindow negative", sets: ["data.trainWindow=-4"], expect: [["data.trainWindow", "> 0"]] },
  { name: "trainSplit zero", sets: ["data.trainSplit=0"], expect: [["data.trainSplit", "> 0"]] },
  {
    name: "empty participant list",
    sets: ["data.ursaQuery.participants=[]"],
    expect: [["data.ursaQuery.participants", "at least 1"]],
  },
  { name: "runsDir empty", sets: ['runsDir=""'], expect: [["runsDir", "at least 1 character"]] },
  { name: "run name with spaces", sets: ["name=my run"], expect: [["name", "directory name"]] },
  // unknown keys and options
  { name: "unknown top-level key", sets: ["epochs=3"], expect: [["epochs", "has no field"]] },
  {
    name: "typo in training key",
    sets: ["training.optimizr=adamw"],
    expect: [["training.optimizr", 'did you mean "optimizer"']],
  },
  {
    name: "typo in query key",
    sets: ['data.ursaQuery.modalitys=["eeg"]'],
    expect: [["data.ursaQuery.modalitys", 'did you mean "modalities"']],
  },
  {
    name: "unknown model kwarg",
    sets: ["model.kwargs.dimHed=16"],
    expect: [["model.kwargs.dimHed", 'did you mean "dimHead"']],
  },
  {
    name: "unknown optimizer",
    sets: ["training.optimizer=sgd"],
    expect: [["training.optimizer", '"adamw", "lamb", "sparse_lamb"']],
  },
  {
    name: "unknown scheduler",
    sets: ["training.scheduler=linear"],
    expect: [["training.scheduler", "one of"]],
  },
  {
    name: "unknown precision",
    sets: ["training.precision=fp8"],
    expect: [["training.precision", '"bf16-mixed"']],
  },
  { name: "unknown backend", sets: ["infra.backend=k8s"], expect: [["infra.backend", '"skypilot"']] },
  {
    name: "unknown accelerator",
    sets: ["infra.accelerator=tpu"],
    expect: [["infra.accelerator", '"cpu-software"']],
  },
  {
    name: "unknown model class",
    sets: ["model.cls=Transformer"],
    expect: [["model.cls", "no class of that name is registered"]],
  },
  // incoherent model kwargs
  { name: "odd dim", sets: ["model.kwargs.dim=63"], expect: [["model.kwargs.dim", "even number"]] },
  {
    name: "dimHead not a multiple of 4",
    sets: ["model.kwargs.dimHead=6"],
    expect: [["model.kwargs.dimHead", "multiple of 4"]],
  },
  {
    name: "dimHead 4 has one rotary frequency",
    sets: ["model.kwargs.dimHead=4"],
    expect: [["model.kwargs.dimHead", "at least 2 frequencies"]],
  },
  {
    name: "no self-attention heads",
    sets: ["model.kwargs.selfHeads=0"],
    expect: [["model.kwargs.selfHeads", "> 0"]],
  },
  {
    name: "latent step beyond the window",
    sets: ["model.kwargs.latentStep=8"],
    expect: [["model.kwargs.latentStep", "outside"]],
  },
  {
    name: "rotary periods reversed",
    sets: ["model.kwargs.tMin=3"],
    expect: [["model.kwargs.tMax", "tMin must be below tMax"]],
  },
  {
    name: "dropout of one",
    sets: ["model.kwargs.ffnDropout=1"],
    expect: [["model.kwargs.ffnDropout", "drops everything"]],
  },
  // cross-field rules
  { name: "splits exceed one", sets: ["data.valSplit=0.5"], expect: [["data.valSplit", "exceed 1"]] },
  {
    name: "onecycle with warm-up",
    sets: ["training.scheduler=onecycle", "training.warmupSteps=10"],
    expect: [["training.warmupSteps", "onecycle"]],
  },
  {
    name: "warm-up longer than training",
    sets: ["training.warmupSteps=500"],
    expect: [["training.warmupSteps", "training stops"]],
  },
  {
    name: "bench cadence without suites",
    sets: ["training.benchSuites=[]"],
    expect: [["training.benchEveryNSteps", "benchSuites is empty"]],
  },
  {
    name: "bench suite key without version",
    sets: ['training.benchSuites=["cognitive_load_eval"]'],
    expect: [["training.benchSuites.0", "<suite>@<version>"]],
  },
  {
    name: "monitor of a suite not benchmarked",
    sets: ["training.monitor=other_eval@1/accuracy"],
    expect: [["training.monitor", "not in training.benchSuites"]],
  },
  {
    name: "monitor of an unknown form",
    sets: ["training.monitor=accuracy"],
    expect: [["training.monitor", "<suite>@<version>/<metric>"]],
  },
  {
    name: "keepEveryNSteps off the checkpoint grid",
    sets: ["training.keepEveryNSteps=75"],
    expect: [["training.keepEveryNSteps", "multiple of training.ckptEveryNSteps"]],
  },
  {
    name: "metric and checkpoint cadences never meet",
    sets: ["training.ckptEveryNSteps=70"],
    expect: [["training.ckptEveryNSteps", "first coincide at step 350"]],
  },
  {
    name: "best-k without validation",
    sets: ["training.valEveryNSteps=null"],
    expect: [["training.valEveryNSteps", "never measured"]],
  },
  {
    name: "freeze without initFrom",
    sets: ["training.freezeUntilStep=10"],
    expect: [["training.freezeUntilStep", "no initFrom"]],
  },
  {
    name: "fine-tune from itself",
    sets: ["initFrom.run=base_run"],
    expect: [["initFrom.run", "from itself"]],
  },
  {
    name: "bad checkpoint selector",
    sets: ["initFrom.run=src", "initFrom.checkpoint=latest"],
    expect: [["initFrom.checkpoint", '"best", "last"']],
  },
  {
    name: "multiple nodes on the local launcher",
    sets: ["infra.nodes=2"],
    expect: [["infra.nodes", "local launcher"]],
  },
  // bad overrides
  { name: "override without '='", sets: ["training.lr"], expect: [["--set", "path=value"]] },
  {
    name: "override through a number",
    sets: ["training.batchSize.x=1"],
    expect: [["training.batchSize.x", "training.batchSize is not an object"]],
  },
  {
    name: "override beyond a list",
    sets: ["training.benchSuites.5=x@1"],
    expect: [["training.benchSuites.5", "beyond its end"]],
  },
  // environment: data
  {
    name: "missing participant",
    sets: ['data.ursaQuery.participants=["p001","p099"]'],
    expect: [["data.ursaQuery.participants.1", "Cannot find participant p099"]],
  },
  {
    name: "missing derived asset",
    sets: ['data.ursaQuery.derived=["standard_v2026q2.eeg_clean","standard_v1999.pupil_dilation"]'],
    expect: [["data.ursaQuery.derived.1", "no such derivation"]],
  },
  {
    name: "too few windows for the batch",
    sets: ["training.batchSize=128"],
    expect: [["training.batchSize", "has 64 windows"]],
  },
  {
    name: "no validation windows",
    sets: ["data.trainSplit=1"],
    expect: [["data.valSplit", "validation split has no windows"]],
  },
  // environment: bench, adapter, memory, disk, names
  {
    name: "bench suite at an unknown version",
    sets: ['training.benchSuites=["cognitive_load_eval@3"]'],
    expect: [[
      "training.benchSuites.0",
      "available versions are cognitive_load_eval@1, cognitive_load_eval@2",
    ]],
  },
  {
    name: "16-mixed without shader-f16",
    sets: ["training.precision=16-mixed"],
    preflight: { adapter: { maxBufferSize: 2 ** 31, maxStorageBufferBindingSize: 2 ** 27, features: [] } },
    expect: [["training.precision", "lacks shader-f16"]],
  },
  {
    name: "batch whose attention scores exceed a binding",
    sets: ["training.batchSize=4096"],
    preflight: { resolveQuery: undefined },
    expect: [["training.batchSize", "Cannot allocate the largest buffer"]],
  },
  {
    name: "model whose weights exceed a binding",
    sets: ["model.kwargs.dim=8192", "model.kwargs.dimHead=64"],
    expect: [["model.kwargs.dim", "flat parameter buffer"]],
  },
  {
    name: "training beyond device memory",
    preflight: { adapter: { ...fakePreflight().adapter!, deviceMemoryBytes: 20 * 2 ** 20 } },
    expect: [["training.batchSize", "Cannot fit training in device memory"]],
  },
  {
    name: "no adapter at all",
    preflight: { adapter: null },
    expect: [["infra.accelerator", "no WebGPU adapter"]],
  },
  {
    name: "duplicate run name",
    setup: (cwd) => Deno.mkdir(join(cwd, "runs", "base_run"), { recursive: true }),
    expect: [["name", "already exists"]],
  },
  {
    name: "runs dir not writable",
    preflight: { isWritable: () => Promise.resolve(false) },
    expect: [["runsDir", "not writable"]],
  },
  {
    name: "disk too small for a checkpoint",
    preflight: { freeDiskBytes: () => Promise.resolve(1000) },
    expect: [["runsDir", "even one checkpoint"]],
  },
  {
    name: "fine-tuning source run missing",
    sets: ["initFrom.run=pretrain_v1"],
    expect: [["initFrom.run", "does not exist"]],
  },
  {
    name: "launcher without enough GPUs",
    sets: ["infra.gpusPerNode=4"],
    preflight: { launcherCapacity: () => ({ maxGpusPerNode: 2, description: "2-GPU box" }) },
    expect: [["infra.gpusPerNode", "at most 2 GPUs"]],
  },
  // whole modules
  {
    name: "missing name",
    source: plain(`export default RunConfig({ model: ModelConfig({ cls: POYO }) } as never);`),
    expect: [["name", "required"]],
  },
  {
    name: "missing model",
    source: plain(`export default RunConfig({ name: "no_model" } as never);`),
    expect: [["model", "required"]],
  },
  {
    name: "mistakes in several builders are all reported",
    source: plain(`export default RunConfig({
      name: "several",
      data: DataConfig({ trainWindow: 0 }),
      model: ModelConfig({ cls: POYO, kwargs: { dim: 31, dimHead: 10 } }),
      training: TrainingConfig({ optimizer: "sgd" as never, lr: "fast" as never }),
    });`),
    expect: [
      ["data.trainWindow", "> 0"],
      ["model.kwargs.dim", "even"],
      ["model.kwargs.dimHead", "multiple of 4"],
      ["training.optimizer", "one of"],
      ["training.lr", "must be a number"],
    ],
  },
  {
    name: "plain object with a misspelt section",
    source: plain(`export default { name: "p", model: { cls: POYO }, trainng: {} };`),
    expect: [["trainng", 'did you mean "training"']],
  },
  {
    name: "no default export",
    source: plain(`export const config = 1;`),
    expect: [["", "no default export"]],
  },
  {
    name: "module that throws",
    source: plain(`throw new Error("boom in config");`),
    expect: [["", "importing it failed: boom in config"]],
  },
  { name: "missing config file", file: "does/not/exist.ts", expect: [["", "does not exist"]] },
  {
    name: "pipeline with duplicate stage names",
    source: plain(`const a = RunConfig({ name: "a", model: { cls: POYO, kwargs: { dim: 64, depth: 1 } } });
      export default TrainingPipeline({ name: "pipe", stages: [a, a] });`),
    expect: [["stages.1.name", "unique"]],
  },
  {
    name: "pipeline stage starting from a later stage",
    source: plain(`const a = RunConfig({ name: "a", model: { cls: POYO, kwargs: { dim: 64, depth: 1 } } });
      const b = RunConfig({ name: "b", model: { cls: POYO, kwargs: { dim: 64, depth: 1 } }, initFrom: FinetuneFrom({ run: a }) });
      export default TrainingPipeline({ name: "pipe", stages: [b, a] });`),
    expect: [["stages.0.initFrom.run", "has not run yet"]],
  },
];

interface Reported {
  severity: string;
  path: string;
  text: string;
}

function reportedProblems(output: string): Reported[] {
  const lines = output.split("\n");
  const out: Reported[] = [];
  lines.forEach((line, i) => {
    const m = line.match(/^\s+(error|warning) at (\S+) = /);
    if (m) {
      out.push({
        severity: m[1],
        path: m[2] === "(config)" ? "" : m[2],
        text: `${lines[i + 1]}\n${lines[i + 2]}`,
      });
    }
  });
  return out;
}

Deno.test(`table of ${CASES.length} invalid configs: exit code 2, field path, message, nothing written`, async (t) => {
  assert.ok(CASES.length >= 40);
  const configDir = await Deno.makeTempDir({ prefix: "orion-invalid-configs-" });
  try {
    const baseFile = await writeConfig(configDir, BASE_CONFIG, "base");
    for (const c of CASES) {
      await t.step(c.name, async () => {
        const cwd = await Deno.makeTempDir({ prefix: "orion-cwd-" });
        try {
          await c.setup?.(cwd);
          const file = c.file ??
            (c.source ? await writeConfig(configDir, c.source.replace("MOD", MOD_URL)) : baseFile);
          const before = await listTree(cwd);
          const args = ["train", file, "--dry-run", ...(c.sets ?? []).flatMap((s) => ["--set", s])];
          const result = await runOrion(args, cwd, fakePreflight(c.preflight));
          assert.equal(result.code, c.code ?? 2, result.text);
          const reported = reportedProblems(result.stderr);
          for (const [path, fragment] of c.expect) {
            const hit = reported.find((r) =>
              r.severity === "error" && r.path === path && r.text.includes(fragment)
            );
            assert.ok(hit, `expected an error at "${path}" mentioning "${fragment}", got:\n${result.text}`);
          }
          assert.doesNotMatch(result.text, /^\s+at .*:\d+:\d+/m, "no stack traces");
          assert.deepEqual(await listTree(cwd), before, "pre-flight wrote nothing");
        } finally {
          await Deno.remove(cwd, { recursive: true });
        }
      });
    }
  } finally {
    await Deno.remove(configDir, { recursive: true });
  }
});

Deno.test("the base config of the table is valid (so each case fails for its own reason)", async () => {
  const configDir = await Deno.makeTempDir({ prefix: "orion-base-config-" });
  try {
    const file = await writeConfig(configDir, BASE_CONFIG, "base");
    const result = await runOrion(["train", file, "--dry-run"], configDir);
    assert.equal(result.code, 0, result.text);
    assert.match(result.stdout, /Pre-flight of run "base_run": passed/);
    assert.deepEqual(await listTree(configDir), [file.slice(configDir.length + 1)]);
  } finally {
    await Deno.remove(configDir, { recursive: true });
  }
});
