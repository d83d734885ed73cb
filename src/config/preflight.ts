/**
 * Pre-flight: every check that can tell, before any GPU work, that a run is doomed. It collects every problem
 * (not just the first) with its field path, value and fix.
 *
 * Checks: schema and model-kwargs coherence (by parsing); the catalog query resolves to enough windows;
 * memory estimate against the adapter's limits; precision supported by the adapter; bench suites exist at the
 * asked version; runs directory writable with free disk for the retained checkpoints; nodes/GPUs within what
 * the launcher provides; run name unused (or present, when resuming); the fine-tuning source run exists.
 *
 * Everything outside the config comes through {@link PreflightContext}, so each check is testable without the
 * subsystem behind it; a missing capability makes its check "skipped", never silently "ok". The adapter is
 * only probed (`probeAdapter`) once every other check passed, so a bad config never touches the GPU; pre-flight
 * never creates the run directory.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import type { z } from "zod";
import { rawConfigOf } from "./config_builder.ts";
import type { DataConfig } from "./data_config.ts";
import { type InfraConfig, InfraConfigSchema } from "./infra_config.ts";
import { type DataLayout, estimatePoyoMemory, formatBytes, type MemoryEstimate } from "./memory_estimate.ts";
import { errorsOf, formatProblems, type Problem, problem } from "./problem.ts";
import { type RunConfig, RunConfigSchema } from "./run_config.ts";
import { RunNameSchema } from "./run_name.ts";
import { issuesToProblems, valueAtPath } from "./schema_tools.ts";
import { type PRECISIONS, TrainingConfigSchema } from "./training_config.ts";
import {
  PipelineShapeSchema,
  pipelineStageProblems,
  type TrainingPipeline,
  TrainingPipelineSchema,
} from "./training_pipeline.ts";

/** The adapter limits pre-flight compares the memory estimate against. */
export interface AdapterLimits {
  /** Largest buffer the adapter allows, bytes. */
  maxBufferSize: number;
  /** Largest storage-buffer binding the adapter allows, bytes. */
  maxStorageBufferBindingSize: number;
  /** Device memory in bytes when known (WebGPU does not report it; system memory for the software adapter). */
  deviceMemoryBytes?: number | null;
}

/** A WebGPU adapter as pre-flight sees it. */
export interface AdapterDescription extends AdapterLimits {
  /** `adapter.features`, e.g. `["shader-f16", "timestamp-query"]`. */
  features: string[];
  /** e.g. `"NVIDIA H200"`, `"llvmpipe (LLVM 15.0.6, 256 bits)"`. */
  description?: string;
  /** True for a software (fallback) adapter. */
  isFallbackAdapter?: boolean;
}

/** What the catalog says about a run's data query (provided by the data layer). */
export interface QueryResolution {
  /** Windows in the training split. */
  windowsTrain: number;
  /** Windows in the validation split. */
  windowsVal: number;
  /** Problems such as missing participants or derived assets, with paths like `data.ursaQuery.participants`. */
  problems: Problem[];
  /** Sizes for the memory estimate; anything absent is assumed (and the assumption is reported). */
  layout?: Partial<DataLayout>;
}

/** What a launcher backend can provide. */
export interface LauncherCapacity {
  /** Most nodes the backend can run. */
  maxNodes?: number;
  /** Most GPUs per node. */
  maxGpusPerNode?: number;
  /** Where the numbers come from, e.g. `"local machine: 2 GPUs"`. */
  description: string;
}

/** Everything pre-flight needs from outside the config. Every member is optional. */
export interface PreflightContext {
  /** Directory relative paths (runsDir) resolve against; default `Deno.cwd()`. */
  cwd?: string;
  /** The run is being resumed: its directory must exist rather than be new. */
  resuming?: boolean;
  /** The run's directory when already known (resuming a record found elsewhere): its parent is the runs dir. */
  runDir?: string;
  /** Names of runs produced by earlier stages of the same pipeline (count as existing for `initFrom`). */
  earlierStages?: string[];
  /** A known adapter (skips probing); `null` = no adapter is available. */
  adapter?: AdapterDescription | null;
  /** Requests the adapter for `infra.accelerator` (only called when everything else passed). */
  probeAdapter?(accelerator: InfraConfig["accelerator"]): Promise<AdapterDescription | null>;
  /** Resolves the data query against the catalog. */
  resolveQuery?(data: DataConfig, config: RunConfig): Promise<QueryResolution>;
  /** Whether a bench suite `<suite>@<version>` exists. */
  benchSuiteExists?(key: string): boolean;
  /** Known bench suites, for fixes. */
  knownBenchSuites?(): string[];
  /** Whether a run directory `<runsDir>/<name>` already exists (runsDir absolute). */
  runExists?(name: string, runsDir: string): Promise<boolean>;
  /** Free bytes on the file system holding `dir` (the nearest existing ancestor); null = unknown. */
  freeDiskBytes?(dir: string): Promise<number | null>;
  /** Whether `dir` (or, when missing, the nearest existing ancestor) accepts new files. */
  isWritable?(dir: string): Promise<boolean>;
  /** What the launcher backend can provide; undefined = unknown (checked at launch). */
  launcherCapacity?(infra: InfraConfig): LauncherCapacity | undefined;
}

/** Outcome of one named check. */
export interface PreflightCheck {
  /** Which check. */
  name:
    | "schema"
    | "data"
    | "model"
    | "memory"
    | "precision"
    | "bench"
    | "disk"
    | "launcher"
    | "run-name"
    | "init-from";
  /** Its outcome. */
  status: "ok" | "failed" | "skipped" | "warning";
  /** Numbers computed, or why the check was skipped. */
  detail: string;
}

/** The result of pre-flight for one run config. */
export interface PreflightReport {
  /** True when no problem has severity "error". */
  ok: boolean;
  /** The run name (or `"(invalid name)"`). */
  subject: string;
  /** The resolved config when the schema accepted it. */
  config: RunConfig | null;
  /** Every problem, errors first. */
  problems: Problem[];
  /** Every check with its outcome. */
  checks: PreflightCheck[];
  /** The memory estimate, when the config got that far. */
  memory: MemoryEstimate | null;
  /** Assumptions the memory estimate made where the catalog did not say. */
  assumptions: string[];
  /** The adapter checked against, when there was one. */
  adapter: AdapterDescription | null;
}

/** Features each precision needs from the adapter. bf16 has no WGSL type: it is stored packed and computed in f32. */
export const PRECISION_FEATURES: Record<(typeof PRECISIONS)[number], string[]> = {
  "32-true": [],
  "16-mixed": ["shader-f16"],
  "bf16-mixed": [],
};

/** What each precision computes in (the pre-flight check's detail; see docs/numerics.md "Precision"). */
export const PRECISION_SUMMARY: Record<(typeof PRECISIONS)[number], string> = {
  "32-true": "f32 throughout",
  "16-mixed": "f16 matmul inputs via shader-f16, f32 accumulation and master weights, dynamic loss scaling",
  "bf16-mixed":
    "bf16 matmul inputs (packed bit patterns), f32 accumulation and master weights, no loss scaling",
};

/** Channel count and sample rate assumed per modality when the catalog is not consulted. */
export const ASSUMED_MODALITY_LAYOUT: Record<string, { channels: number; sampleRate: number }> = {
  eeg: { channels: 64, sampleRate: 256 },
  pupil: { channels: 2, sampleRate: 60 },
};
const ASSUMED_OTHER_MODALITY = { channels: 32, sampleRate: 256 };
const ASSUMED_PARTICIPANTS = 100;
const ASSUMED_SESSIONS_PER_PARTICIPANT = 10;
const ASSUMED_NUM_CLASSES = 3;

function obj(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? v as Record<string, unknown> : {};
}

function safe<S extends z.ZodType>(schema: S, value: unknown): z.output<S> | undefined {
  const r = schema.safeParse(value);
  return r.success ? r.data : undefined;
}

/** Checkpoints alive at once on disk: last k, best k, kept-every, the final one and one being written. */
export function retainedCheckpointCount(t: RunConfig["training"]): number {
  const written = Math.floor(t.maxSteps / t.ckptEveryNSteps) + 1;
  const keptEvery = t.keepEveryNSteps ? Math.floor(t.maxSteps / t.keepEveryNSteps) : 0;
  return Math.min(written, t.keepLastK + t.keepBestK + keptEvery + 1) + 1;
}

function dataLayoutOf(
  config: RunConfig,
  given: Partial<DataLayout> | undefined,
): { layout: DataLayout; assumed: string[] } {
  const assumed: string[] = [];
  const q = config.data.ursaQuery;
  const kwargs = config.model.kwargs as { patch?: number; numClasses?: number };
  const patch = kwargs.patch ?? 16;
  const modalities = given?.modalities ?? [...q.modalities];
  const participants = q.participants === "*"
    ? ASSUMED_PARTICIPANTS
    : Math.max(1, q.participants.length - q.excludeParticipants.length);
  const layoutOf = (m: string) => ASSUMED_MODALITY_LAYOUT[m] ?? ASSUMED_OTHER_MODALITY;
  let tokensPerWindow = given?.tokensPerWindow ?? config.data.maxTokensPerWindow ?? undefined;
  if (tokensPerWindow === undefined) {
    tokensPerWindow = modalities.reduce((n, m) => {
      const l = layoutOf(m);
      return n + l.channels * Math.ceil((config.data.trainWindow * l.sampleRate) / patch);
    }, 0);
    assumed.push(
      `tokens per window N = ${tokensPerWindow} from assumed channel layouts (${
        modalities.map((m) => `${m}: ${layoutOf(m).channels} ch @ ${layoutOf(m).sampleRate} Hz`).join(", ")
      }); set data.maxTokensPerWindow or register the catalog resolver for real numbers`,
    );
  }
  let unitVocabSize = given?.unitVocabSize;
  if (unitVocabSize === undefined) {
    unitVocabSize = 1 + participants * modalities.reduce((n, m) => n + layoutOf(m).channels, 0);
    assumed.push(`channel vocabulary V_u = ${unitVocabSize} (${participants} participants assumed)`);
  }
  let sessionVocabSize = given?.sessionVocabSize;
  if (sessionVocabSize === undefined) {
    sessionVocabSize = 1 + participants * ASSUMED_SESSIONS_PER_PARTICIPANT;
    assumed.push(
      `session vocabulary V_s = ${sessionVocabSize} (${ASSUMED_SESSIONS_PER_PARTICIPANT} sessions per participant assumed)`,
    );
  }
  let numClasses = kwargs.numClasses ?? given?.numClasses;
  if (numClasses === undefined) {
    numClasses = ASSUMED_NUM_CLASSES;
    assumed.push(`readout width C = ${numClasses} assumed (model.kwargs.numClasses unset)`);
  }
  return {
    layout: {
      tokensPerWindow,
      unitVocabSize,
      sessionVocabSize,
      modalities,
      numClasses,
      numQueries: given?.numQueries ?? 1,
    },
    assumed,
  };
}

/**
 * Runs every pre-flight check on a run config (anything `parseRunConfig` accepts, valid or not).
 *
 * @example
 * ```ts
 * import { preflightRunConfig } from "./preflight.ts";
 * import { POYO } from "../models/poyo.ts";
 * const report = await preflightRunConfig({ name: "demo", model: { cls: POYO } }, {
 *   runExists: async () => false,
 *   adapter: { maxBufferSize: 2 ** 32, maxStorageBufferBindingSize: 2 ** 31, features: ["shader-f16"] },
 * });
 * console.log(report.ok, report.problems.length);
 * ```
 */
export async function preflightRunConfig(
  input: unknown,
  context: PreflightContext = {},
): Promise<PreflightReport> {
  const raw = rawConfigOf(input);
  const rawObj = obj(raw);
  const problems: Problem[] = [];
  const checks: PreflightCheck[] = [];
  const check = (name: PreflightCheck["name"], status: PreflightCheck["status"], detail: string) =>
    checks.push({ name, status, detail });
  const cwd = context.cwd ?? Deno.cwd();

  const parsed = RunConfigSchema.safeParse(raw);
  const config = parsed.success ? (parsed.data as RunConfig) : null;
  if (parsed.success) check("schema", "ok", "every field valid, defaults resolved");
  else {
    const schemaProblems = issuesToProblems(parsed.error.issues, RunConfigSchema, raw);
    problems.push(...schemaProblems);
    check("schema", "failed", `${schemaProblems.length} problem(s)`);
  }
  const name = safe(RunNameSchema, rawObj.name);
  const runsDirText = rawObj.runsDir === undefined
    ? "runs"
    : typeof rawObj.runsDir === "string"
    ? rawObj.runsDir
    : undefined;
  const runsDir = context.runDir
    ? dirname(resolve(cwd, context.runDir))
    : runsDirText
    ? resolve(cwd, runsDirText)
    : undefined;
  const training = config?.training ?? safe(TrainingConfigSchema, rawObj.training ?? {});
  const infra = config?.infra ?? safe(InfraConfigSchema, rawObj.infra ?? {});
  const subject = name ?? "(invalid name)";

  // Run name: unused for a new run, present when resuming.
  if (name && runsDir) {
    if (!context.runExists) check("run-name", "skipped", "no run lookup available");
    else {
      const exists = await context.runExists(name, runsDir);
      if (context.resuming && !exists) {
        problems.push(problem(
          "name",
          name,
          `Cannot resume run ${JSON.stringify(name)} as ${resolve(runsDir, name)} does not exist`,
          "check the run name and runsDir (list runs with `orion runs`), or start it with `orion train`",
        ));
        check("run-name", "failed", "run directory missing");
      } else if (!context.resuming && exists) {
        problems.push(problem(
          "name",
          name,
          `Cannot start run ${JSON.stringify(name)} as ${
            resolve(runsDir, name)
          } already exists: run names are unique`,
          `choose another name (e.g. --set name=${name}_2), or continue it with \`orion resume ${name}\``,
        ));
        check("run-name", "failed", "name taken");
      } else check("run-name", "ok", context.resuming ? "run directory found" : "name unused");
    }
  } else check("run-name", "skipped", "name or runsDir invalid");

  // Bench suites exist at the asked version.
  if (!training) check("bench", "skipped", "training section invalid");
  else if (training.benchSuites.length === 0) check("bench", "ok", "no bench suites");
  else if (!context.benchSuiteExists) check("bench", "skipped", "no bench-suite registry available");
  else {
    const known = context.knownBenchSuites?.() ?? [];
    let missing = 0;
    training.benchSuites.forEach((key, i) => {
      if (context.benchSuiteExists!(key)) return;
      missing++;
      const [suite] = key.split("@");
      const versions = known.filter((k) => k.startsWith(`${suite}@`));
      problems.push(problem(
        `training.benchSuites.${i}`,
        key,
        `Cannot benchmark with ${key} as no such suite/version is registered${
          versions.length ? `: available versions are ${versions.join(", ")}` : ""
        }`,
        versions.length
          ? `use ${versions.join(" or ")}`
          : `register the suite, or remove it${known.length ? `; known suites: ${known.join(", ")}` : ""}`,
      ));
    });
    check(
      "bench",
      missing ? "failed" : "ok",
      `${training.benchSuites.length - missing}/${training.benchSuites.length} suites found`,
    );
  }

  // Launcher capacity.
  if (!infra) check("launcher", "skipped", "infra section invalid");
  else {
    const capacity = context.launcherCapacity?.(infra);
    if (!capacity) check("launcher", "skipped", `${infra.backend}: capacity checked at launch`);
    else {
      let bad = false;
      if (capacity.maxNodes !== undefined && infra.nodes > capacity.maxNodes) {
        bad = true;
        problems.push(problem(
          "infra.nodes",
          infra.nodes,
          `Cannot run on ${infra.nodes} nodes as the ${infra.backend} launcher provides at most ${capacity.maxNodes} (${capacity.description})`,
          `set infra.nodes ≤ ${capacity.maxNodes}, or pick a launcher backend with more nodes`,
        ));
      }
      if (capacity.maxGpusPerNode !== undefined && infra.gpusPerNode > capacity.maxGpusPerNode) {
        bad = true;
        problems.push(problem(
          "infra.gpusPerNode",
          infra.gpusPerNode,
          `Cannot start ${infra.gpusPerNode} processes per node as the ${infra.backend} launcher provides at most ${capacity.maxGpusPerNode} GPUs per node (${capacity.description})`,
          `set infra.gpusPerNode ≤ ${capacity.maxGpusPerNode}`,
        ));
      }
      check("launcher", bad ? "failed" : "ok", capacity.description);
    }
  }

  let memory: MemoryEstimate | null = null;
  let assumptions: string[] = [];
  let adapter: AdapterDescription | null = null;
  if (!config) {
    for (const name of ["data", "model", "memory", "precision", "disk", "init-from"] as const) {
      check(name, "skipped", "runs once the schema problems are fixed");
    }
    return finish();
  }
  const t = config.training;
  const worldSize = config.infra.nodes * config.infra.gpusPerNode;
  if (worldSize === 1 && config.infra.gradientCompression !== "none") {
    problems.push(problem(
      "infra.gradientCompression",
      config.infra.gradientCompression,
      "Cannot compress the gradient exchange as a single process (infra.nodes × infra.gpusPerNode = 1) " +
        `exchanges none: current value is "${config.infra.gradientCompression}" (no effect)`,
      'remove it (or set "none"), or train on more than one GPU',
      "warning",
    ));
  }

  // Data: the query resolves, with enough windows.
  let resolution: QueryResolution | undefined;
  if (!context.resolveQuery) check("data", "skipped", "no catalog resolver available");
  else {
    try {
      resolution = await context.resolveQuery(config.data, config);
    } catch (e) {
      if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) throw e;
      problems.push(problem(
        "data.ursaQuery",
        config.data.ursaQuery,
        `Cannot resolve the catalog query as the catalog reported: ${(e as Error).message}`,
        "check data.catalogDir and the query (list the catalog with `orion data ls`)",
      ));
      check("data", "failed", "catalog error");
    }
    if (resolution) {
      problems.push(...resolution.problems);
      const perStep = t.batchSize * worldSize * t.accumulateGradBatches;
      let bad = errorsOf(resolution.problems).length > 0;
      if (resolution.windowsTrain < perStep) {
        bad = true;
        problems.push(problem(
          "training.batchSize",
          t.batchSize,
          `Cannot fill one optimizer step (${t.batchSize} × ${worldSize} processes × ${t.accumulateGradBatches} accumulated = ${perStep} windows) as the training split has ${resolution.windowsTrain} windows`,
          `lower training.batchSize to ≤ ${
            Math.max(1, Math.floor(resolution.windowsTrain / (worldSize * t.accumulateGradBatches)))
          }, raise data.trainSplit, shorten data.trainWindow, or widen data.ursaQuery`,
        ));
      }
      if (t.valEveryNSteps !== null && resolution.windowsVal < 1) {
        bad = true;
        problems.push(problem(
          "data.valSplit",
          config.data.valSplit,
          `Cannot validate every ${t.valEveryNSteps} steps as the validation split has no windows`,
          "raise data.valSplit (or lower data.trainSplit), or set training.valEveryNSteps to null",
        ));
      }
      check(
        "data",
        bad ? "failed" : "ok",
        `${resolution.windowsTrain} training windows, ${resolution.windowsVal} validation windows`,
      );
    }
  }

  // Model coherence beyond the schema (warnings).
  const isPoyo = config.model.cls.modelName === "POYO";
  if (isPoyo) {
    const k = config.model.kwargs as { latentStep: number };
    const steps = config.data.trainWindow / k.latentStep;
    if (Math.abs(steps - Math.round(steps)) > 1e-9) {
      problems.push(problem(
        "model.kwargs.latentStep",
        k.latentStep,
        `Cannot lay latents evenly as data.trainWindow (${config.data.trainWindow} s) is not a multiple of latentStep: the last latent step covers only part of the window`,
        `set model.kwargs.latentStep to a divisor of ${config.data.trainWindow}, e.g. ${
          config.data.trainWindow / Math.ceil(steps)
        }`,
        "warning",
      ));
      check("model", "warning", "latent layout uneven");
    } else check("model", "ok", `${Math.round(steps)} latent steps per window`);
  } else check("model", "ok", "kwargs valid for " + config.model.cls.modelName);

  // Memory estimate (numbers always; limits once the adapter is known).
  if (isPoyo) {
    const { layout, assumed } = dataLayoutOf(config, resolution?.layout);
    assumptions = assumed;
    const k = config.model.kwargs as unknown as Parameters<typeof estimatePoyoMemory>[0]["kwargs"];
    memory = estimatePoyoMemory({
      kwargs: k,
      layout,
      trainWindow: config.data.trainWindow,
      batchSize: t.batchSize,
      precision: t.precision,
      optimizer: t.optimizer,
      emaDecay: t.emaDecay,
    });
  }

  // Disk: runs directory writable, free space for the retained checkpoints.
  if (runsDir) {
    const details: string[] = [];
    let bad = false;
    let warned = false;
    if (context.isWritable) {
      if (!(await context.isWritable(runsDir))) {
        bad = true;
        problems.push(problem(
          "runsDir",
          config.runsDir,
          `Cannot write run records under ${runsDir} as it (or its nearest existing parent) is not writable`,
          "set runsDir to a writable directory, e.g. --set runsDir=/tmp/orion-runs",
        ));
      } else details.push("writable");
    } else details.push("writability not checked");
    const free = context.freeDiskBytes ? await context.freeDiskBytes(runsDir) : null;
    if (memory && free !== null) {
      const retained = retainedCheckpointCount(t);
      const need = memory.checkpointBytes * retained;
      details.push(
        `${formatBytes(free)} free, ${retained} × ${formatBytes(memory.checkpointBytes)} checkpoints`,
      );
      if (free < memory.checkpointBytes) {
        bad = true;
        problems.push(problem(
          "runsDir",
          config.runsDir,
          `Cannot write even one checkpoint of ${
            formatBytes(memory.checkpointBytes)
          } under ${runsDir} as only ${formatBytes(free)} is free`,
          "free disk space or point runsDir at a larger disk",
        ));
      } else if (free < need) {
        warned = true;
        problems.push(problem(
          "training.keepLastK",
          t.keepLastK,
          `Cannot keep all ${retained} retained checkpoints (${formatBytes(need)}) under ${runsDir} as only ${
            formatBytes(free)
          } is free`,
          "lower training.keepLastK / keepBestK / keepEveryNSteps, or free disk space",
          "warning",
        ));
      }
    } else details.push(free === null ? "free space unknown" : "checkpoint size unknown");
    check("disk", bad ? "failed" : warned ? "warning" : "ok", details.join("; "));
  }

  // Fine-tuning source run exists.
  if (!config.initFrom) check("init-from", "ok", "fresh initialization");
  else if ((context.earlierStages ?? []).includes(config.initFrom.run)) {
    check("init-from", "ok", `produced by an earlier pipeline stage`);
  } else if (!context.runExists) check("init-from", "skipped", "no run lookup available");
  else {
    const dir = resolve(cwd, config.initFrom.runsDir ?? config.runsDir);
    if (await context.runExists(config.initFrom.run, dir)) check("init-from", "ok", "source run found");
    else {
      problems.push(problem(
        "initFrom.run",
        config.initFrom.run,
        `Cannot fine-tune from run ${JSON.stringify(config.initFrom.run)} as ${
          resolve(dir, config.initFrom.run)
        } does not exist`,
        "train the source run first (or put both in a TrainingPipeline), or fix initFrom.run / initFrom.runsDir",
      ));
      check("init-from", "failed", "source run missing");
    }
  }

  // Adapter: only once everything else passed, so a bad config never touches the GPU.
  if (context.adapter !== undefined) adapter = context.adapter;
  else if (errorsOf(problems).length > 0) {
    check("memory", "skipped", "adapter not probed while other problems remain");
    check("precision", "skipped", "adapter not probed while other problems remain");
    return finish();
  } else if (config.infra.backend !== "local") {
    check("memory", "skipped", `${config.infra.backend} workers check their adapter at start`);
    check("precision", "skipped", `${config.infra.backend} workers check their adapter at start`);
    return finish();
  } else if (context.probeAdapter) adapter = await context.probeAdapter(config.infra.accelerator);
  else {
    check("memory", "skipped", "no adapter probe available");
    check("precision", "skipped", "no adapter probe available");
    return finish();
  }

  if (!adapter) {
    problems.push(problem(
      "infra.accelerator",
      config.infra.accelerator,
      `Cannot train on accelerator ${
        JSON.stringify(config.infra.accelerator)
      } as no WebGPU adapter is available here`,
      config.infra.accelerator === "gpu"
        ? 'run on a machine with a GPU, or set infra.accelerator to "cpu-software" (install mesa-vulkan-drivers)'
        : "install Mesa's Vulkan drivers (apt-get install mesa-vulkan-drivers) for the software adapter",
    ));
    check("memory", "skipped", "no adapter");
    check("precision", "failed", "no adapter");
    return finish();
  }
  if (config.infra.accelerator === "gpu" && adapter.isFallbackAdapter) {
    problems.push(problem(
      "infra.accelerator",
      "gpu",
      `Cannot find a hardware GPU: the only adapter is the software one (${
        adapter.description ?? "fallback"
      }), so training will be very slow`,
      'run on a GPU machine, or set infra.accelerator to "cpu-software" to say so',
      "warning",
    ));
  }

  const needed = PRECISION_FEATURES[t.precision].filter((f) => !adapter!.features.includes(f));
  if (needed.length) {
    problems.push(problem(
      "training.precision",
      t.precision,
      `Cannot train in ${t.precision} as the adapter (${adapter.description ?? "unknown"}) lacks ${
        needed.join(", ")
      }`,
      'set training.precision to "32-true" or "bf16-mixed"',
    ));
    check("precision", "failed", `missing ${needed.join(", ")}`);
  } else check("precision", "ok", `${t.precision} supported (${PRECISION_SUMMARY[t.precision]})`);

  if (!memory) check("memory", "skipped", `no memory model for ${config.model.cls.modelName}`);
  else {
    let bad = false;
    const buffer = memory.largestBuffer;
    const bufferLimit = Math.min(adapter.maxStorageBufferBindingSize, adapter.maxBufferSize);
    if (buffer.bytes > bufferLimit) {
      bad = true;
      const byBatch = buffer.perSampleBytes > 0;
      const fitBatch = byBatch ? Math.floor(bufferLimit / buffer.perSampleBytes) : 0;
      problems.push(problem(
        byBatch ? "training.batchSize" : "model.kwargs.dim",
        byBatch ? t.batchSize : (config.model.kwargs as { dim: number }).dim,
        `Cannot allocate the largest buffer, ${buffer.name}, of ${
          formatBytes(buffer.bytes)
        } as the adapter binds at most ${
          formatBytes(bufferLimit)
        } per buffer (maxStorageBufferBindingSize ${adapter.maxStorageBufferBindingSize}, maxBufferSize ${adapter.maxBufferSize})`,
        byBatch
          ? fitBatch >= 1
            ? `lower training.batchSize to ≤ ${fitBatch} (and raise training.accumulateGradBatches to keep the global batch)`
            : "shorten data.trainWindow or lower model.kwargs.numLatents / heads: even one window does not fit"
          : "shrink model.kwargs.dim or the vocabulary",
      ));
    }
    const deviceMemory = adapter.deviceMemoryBytes ?? null;
    if (deviceMemory !== null && memory.bytes.total > deviceMemory) {
      bad = true;
      const fitBatch = Math.floor((deviceMemory - memory.fixedBytes) / memory.perSampleBytes);
      problems.push(problem(
        "training.batchSize",
        t.batchSize,
        `Cannot fit training in device memory as the estimate is ${
          formatBytes(memory.bytes.total)
        } (weights+grads+optimizer ${formatBytes(memory.fixedBytes)}, ${
          formatBytes(memory.perSampleBytes)
        } per window × ${t.batchSize}) and the device has ${formatBytes(deviceMemory)}`,
        fitBatch >= 1
          ? `lower training.batchSize to ≤ ${fitBatch} (raise training.accumulateGradBatches to keep the global batch)`
          : "shrink the model (model.kwargs.dim / depth): the weights and optimizer state alone do not fit",
      ));
    }
    check(
      "memory",
      bad ? "failed" : "ok",
      `estimate ${formatBytes(memory.bytes.total)}, largest buffer ${formatBytes(buffer.bytes)} (limit ${
        formatBytes(bufferLimit)
      })${deviceMemory !== null ? `, device ${formatBytes(deviceMemory)}` : ", device memory unknown"}`,
    );
  }
  return finish();

  function finish(): PreflightReport {
    const errors = errorsOf(problems);
    return {
      ok: errors.length === 0,
      subject,
      config,
      problems: [...errors, ...problems.filter((p) => p.severity !== "error")],
      checks,
      memory,
      assumptions,
      adapter,
    };
  }
}

/** The result of pre-flight for a pipeline: its own schema problems plus one report per stage. */
export interface PipelinePreflightReport {
  /** True when no stage and no pipeline-level problem is an error. */
  ok: boolean;
  /** The pipeline name. */
  subject: string;
  /** The validated pipeline, when its schema passed. */
  pipeline: TrainingPipeline | null;
  /** Pipeline-level problems (stage names, ordering) — stage problems are in `stages`, paths prefixed `stages.<i>.`. */
  problems: Problem[];
  /** One report per stage, in order. */
  stages: PreflightReport[];
}

/**
 * Runs pre-flight on every stage of a pipeline (a stage may start from an earlier stage that does not exist yet).
 *
 * @example
 * ```ts
 * import { preflightTrainingPipeline } from "./preflight.ts";
 * import { FinetuneFrom } from "./finetune_from.ts";
 * import { RunConfig } from "./run_config.ts";
 * import { TrainingPipeline } from "./training_pipeline.ts";
 * import { POYO } from "../models/poyo.ts";
 * const pre = RunConfig({ name: "pre", model: { cls: POYO } });
 * const ft = RunConfig({ name: "ft", model: { cls: POYO }, initFrom: FinetuneFrom({ run: pre }) });
 * const report = await preflightTrainingPipeline(TrainingPipeline({ name: "p", stages: [pre, ft] }));
 * console.log(report.ok, report.stages.map((s) => s.subject));
 * ```
 */
export async function preflightTrainingPipeline(
  input: unknown,
  context: PreflightContext = {},
): Promise<PipelinePreflightReport> {
  const raw = obj(rawConfigOf(input));
  const shape = PipelineShapeSchema.safeParse(raw);
  const pipelineProblems = shape.success
    ? []
    : issuesToProblems(shape.error.issues, PipelineShapeSchema, raw);
  for (const p of pipelineStageProblems(raw)) {
    pipelineProblems.push(problem(p.path.join("."), valueAtPath(raw, p.path), p.message, p.fix));
  }
  const rawStages = Array.isArray(raw.stages) ? raw.stages : [];
  const stages: PreflightReport[] = [];
  const earlier: string[] = [...(context.earlierStages ?? [])];
  for (let i = 0; i < rawStages.length; i++) {
    const report = await preflightRunConfig(rawStages[i], { ...context, earlierStages: [...earlier] });
    report.problems = report.problems.map((p) => ({
      ...p,
      path: p.path ? `stages.${i}.${p.path}` : `stages.${i}`,
    }));
    stages.push(report);
    const name = obj(rawStages[i]).name;
    if (typeof name === "string") earlier.push(name);
  }
  const parsed = TrainingPipelineSchema.safeParse(raw);
  const ok = pipelineProblems.length === 0 && stages.every((s) => s.ok);
  return {
    ok,
    subject: typeof raw.name === "string" ? raw.name : "(invalid pipeline name)",
    pipeline: parsed.success ? parsed.data as TrainingPipeline : null,
    problems: pipelineProblems,
    stages,
  };
}

/**
 * Formats a report for the terminal: problems (path, value, message, fix), checks, memory numbers.
 *
 * @example
 * ```ts
 * import { formatPreflightReport, preflightRunConfig } from "./preflight.ts";
 * import { RunConfig } from "./run_config.ts";
 * import { POYO } from "../models/poyo.ts";
 * const report = await preflightRunConfig(RunConfig({ name: "demo", model: { cls: POYO } }));
 * console.log(formatPreflightReport(report));
 * ```
 */
export function formatPreflightReport(report: PreflightReport): string {
  const lines: string[] = [];
  const errors = errorsOf(report.problems);
  const warnings = report.problems.length - errors.length;
  lines.push(
    `Pre-flight of run ${JSON.stringify(report.subject)}: ${
      report.ok ? "passed" : `${errors.length} error(s)`
    }${warnings ? `, ${warnings} warning(s)` : ""}`,
  );
  if (report.problems.length) lines.push(formatProblems(report.problems));
  lines.push("  checks:");
  for (const c of report.checks) lines.push(`    ${c.status.padEnd(7)} ${c.name.padEnd(9)} ${c.detail}`);
  if (report.memory) {
    const m = report.memory;
    const b = m.bytes;
    lines.push(
      `  memory estimate per GPU: ${formatBytes(b.total)} = parameters ${formatBytes(b.parameters)} (${
        m.parameters.toLocaleString("en-US")
      } params) + 16-bit copy ${formatBytes(b.halfPrecisionCopy)} + gradients ${
        formatBytes(b.gradients)
      } + optimizer ${formatBytes(b.optimizerState)} + EMA ${formatBytes(b.ema)} + activations ${
        formatBytes(b.activations)
      } + attention workspace ${formatBytes(b.attentionWorkspace)} + attention P/dS ${
        formatBytes(b.attentionProbabilities)
      } + inputs ${formatBytes(b.inputBatch)}`,
    );
    lines.push(
      `  largest buffer: ${m.largestBuffer.name} = ${
        formatBytes(m.largestBuffer.bytes)
      }; latents L = ${m.latents}; checkpoint ${formatBytes(m.checkpointBytes)}`,
    );
    for (const a of report.assumptions) lines.push(`  assumed: ${a}`);
  }
  if (report.adapter) {
    lines.push(
      `  adapter: ${
        report.adapter.description ?? "unknown"
      } (maxBufferSize ${report.adapter.maxBufferSize}, maxStorageBufferBindingSize ${report.adapter.maxStorageBufferBindingSize})`,
    );
  }
  return lines.join("\n");
}

/**
 * Formats a pipeline report: pipeline problems, then each stage's report.
 *
 * @example
 * ```ts
 * import { formatPipelinePreflightReport, preflightTrainingPipeline } from "./preflight.ts";
 * import { RunConfig } from "./run_config.ts";
 * import { TrainingPipeline } from "./training_pipeline.ts";
 * import { POYO } from "../models/poyo.ts";
 * const pipeline = TrainingPipeline({ name: "p", stages: [RunConfig({ name: "pre", model: { cls: POYO } })] });
 * console.log(formatPipelinePreflightReport(await preflightTrainingPipeline(pipeline)));
 * ```
 */
export function formatPipelinePreflightReport(report: PipelinePreflightReport): string {
  const lines = [
    `Pre-flight of pipeline ${JSON.stringify(report.subject)}: ${
      report.ok ? "passed" : "failed"
    } (${report.stages.length} stage(s))`,
  ];
  if (report.problems.length) lines.push(formatProblems(report.problems));
  for (const s of report.stages) lines.push(formatPreflightReport(s));
  return lines.join("\n");
}
