/**
 * `TrainingConfig`: optimisation, schedule, cadences (validation, logging, checkpoints, benchmarks), checkpoint
 * retention, precision and seed.
 *
 * @module
 */
import { z } from "zod";
import { type BenchCompute, type BenchComputeInput, BenchComputeSchema } from "./bench_compute.ts";
import type { DeepUnbranded, SameShape } from "./config_shape.ts";
import { buildConfig } from "./config_builder.ts";
import { alwaysCheck } from "./schema_tools.ts";

/** Optimizers of the model contract (`../shared/spec/poyo.md`). */
export const OPTIMIZERS: readonly ["adamw", "lamb", "sparse_lamb"] = ["adamw", "lamb", "sparse_lamb"];
/** Learning-rate schedules of the model contract. */
export const SCHEDULERS: readonly ["onecycle", "cosine", "constant"] = ["onecycle", "cosine", "constant"];
/** Numeric precisions (Lightning spelling). */
export const PRECISIONS: readonly ["32-true", "16-mixed", "bf16-mixed"] = [
  "32-true",
  "16-mixed",
  "bf16-mixed",
];

/** Default epsilon per optimizer when `eps` is null: AdamW 1e-8 (PyTorch), LAMB and SparseLamb 1e-6. */
export const DEFAULT_EPS: Record<(typeof OPTIMIZERS)[number], number> = {
  adamw: 1e-8,
  lamb: 1e-6,
  sparse_lamb: 1e-6,
};

/** `<suite>@<version>`, e.g. `cognitive_load_eval@1`. */
export const BENCH_SUITE_KEY: RegExp = /^[A-Za-z0-9_][A-Za-z0-9_.-]*@[0-9]+$/;
/** `val_loss`, `train_loss`, or `<suite>@<version>/<metric>`. */
export const MONITOR_PATTERN: RegExp =
  /^(val_loss|train_loss|[A-Za-z0-9_][A-Za-z0-9_.-]*@[0-9]+\/[A-Za-z0-9_.\/-]+)$/;

const steps = () => z.number().int().positive();

/** A finite power of two (2^k for an integer k): keeps the loss scale exact when it grows or backs off. */
const powerOfTwo = (what: string) =>
  z.number().positive().refine((v) => Number.isFinite(v) && Math.log2(v) === Math.round(Math.log2(v)), {
    error: `Cannot use training.gradScaler.${what} as it must be a power of two so scaling stays exact`,
  });

/** The zod schema of {@link GradScalerConfig}: loss scaling of `16-mixed` (PyTorch `GradScaler` defaults). */
export const GradScalerSchema = z.strictObject({
  initScale: powerOfTwo("initScale").default(65536).describe("initial loss scale (a power of two)"),
  growthFactor: powerOfTwo("growthFactor").gt(1).default(2).describe(
    "scale multiplier after growthInterval clean steps (a power of two > 1)",
  ),
  backoffFactor: powerOfTwo("backoffFactor").lt(1).default(0.5).describe(
    "scale multiplier on a step with inf/NaN gradients, which is skipped (a power of two < 1)",
  ),
  growthInterval: steps().default(2000).describe("consecutive clean steps before the scale grows"),
});

const TrainingConfigObject = z.strictObject({
  batchSize: steps().default(32).describe(
    "windows per optimizer micro-step per GPU; global batch = batchSize × nodes × gpusPerNode × accumulateGradBatches",
  ),
  maxSteps: steps().default(10_000).describe("optimizer steps to train"),
  optimizer: z.enum(OPTIMIZERS).default("adamw").describe(
    "adamw | lamb | sparse_lamb (see the model contract)",
  ),
  lr: z.number().positive().default(3e-4).describe("peak learning rate"),
  weightDecay: z.number().nonnegative().default(1e-4).describe("decoupled weight decay"),
  betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.999]).describe(
    "(β1, β2); with onecycle β1 follows the momentum cycle 0.95 → 0.85",
  ),
  eps: z.number().positive().nullable().default(null).describe(
    "optimizer epsilon; null = 1e-8 for adamw, 1e-6 for lamb and sparse_lamb",
  ),
  scheduler: z.enum(SCHEDULERS).default("cosine").describe("onecycle | cosine | constant"),
  warmupSteps: z.number().int().nonnegative().default(0).describe(
    "linear warm-up steps for cosine and constant (onecycle has its own warm-up)",
  ),
  gradClipNorm: z.number().positive().nullable().default(1.0).describe(
    "global gradient-norm clip; null = off",
  ),
  emaDecay: z.number().gt(0).lt(1).nullable().default(null).describe("EMA of the weights; null = off"),
  accumulateGradBatches: steps().default(1).describe("micro-batches accumulated per optimizer step"),
  valEveryNSteps: steps().nullable().default(1_000).describe("validation cadence in steps; null = never"),
  logEveryNSteps: steps().default(50).describe("metric logging cadence in steps"),
  ckptEveryNSteps: steps().default(1_000).describe(
    "checkpoint cadence in steps (a final checkpoint is always written)",
  ),
  keepLastK: steps().default(3).describe("most recent checkpoints kept (at least 1, for resuming)"),
  keepBestK: z.number().int().nonnegative().default(1).describe("best checkpoints kept by `monitor`"),
  keepEveryNSteps: steps().nullable().default(null).describe(
    "also keep every checkpoint at a multiple of this step; null = none",
  ),
  monitor: z.string().regex(MONITOR_PATTERN, {
    error:
      'Cannot use training.monitor as it must be "val_loss", "train_loss" or "<suite>@<version>/<metric>"',
  }).default("val_loss").describe('metric ranking checkpoints: "val_loss" or "<suite>@<version>/<metric>"'),
  monitorMode: z.enum(["min", "max"]).nullable().default(null).describe(
    'whether lower or higher `monitor` is better; null = "min" for losses, "max" otherwise',
  ),
  precision: z.enum(PRECISIONS).default("32-true").describe(
    "32-true | 16-mixed (needs shader-f16) | bf16-mixed",
  ),
  gradScaler: GradScalerSchema.prefault({}).describe(
    "dynamic loss scaling of 16-mixed (GradScaler semantics); unused by the other precisions",
  ),
  seed: z.number().int().nonnegative().default(0).describe(
    "seed of every counter-based generator (init, dropout, sampling)",
  ),
  benchEveryNSteps: steps().nullable().default(null).describe(
    "benchmark cadence in steps; null = only at the end (when benchSuites is not empty)",
  ),
  benchSuites: z.array(
    z.string().regex(BENCH_SUITE_KEY, {
      error:
        'Cannot use this bench suite key as it must read "<suite>@<version>", e.g. "cognitive_load_eval@1"',
    }),
  ).default([]).describe('benchmark suites as "<suite>@<version>"'),
  benchCompute: BenchComputeSchema.prefault({}).describe("how benchmarks are computed (see BenchCompute)"),
  freezeUntilStep: z.number().int().nonnegative().default(0).describe(
    "with initFrom: weights loaded from the checkpoint (all but weightOverrides) stay frozen until this step; 0 = none",
  ),
});

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

function int(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v > 0;
}

/** Cross-field rules of a training config, reading defaults for fields left out. */
const TrainingConfigChecked = alwaysCheck(TrainingConfigObject, (v, r) => {
  if (v === null || typeof v !== "object") return;
  const maxSteps = v.maxSteps ?? 10_000;
  const scheduler = v.scheduler ?? "cosine";
  const ckptEvery = v.ckptEveryNSteps ?? 1_000;
  const suites: unknown[] = Array.isArray(v.benchSuites) ? v.benchSuites : [];
  if (scheduler === "onecycle" && int(v.warmupSteps)) {
    r.report(
      ["warmupSteps"],
      `Cannot use training.warmupSteps with the onecycle scheduler as onecycle warms up over its first half (pct_start 0.5): current value is ${v.warmupSteps}`,
      'set training.warmupSteps to 0, or use training.scheduler "cosine"',
    );
  }
  if (int(maxSteps) && typeof v.warmupSteps === "number" && v.warmupSteps >= maxSteps) {
    r.report(
      ["warmupSteps"],
      `Cannot warm up for ${v.warmupSteps} steps as training stops at training.maxSteps = ${maxSteps}: current value is ${v.warmupSteps}`,
      `set training.warmupSteps below ${maxSteps}`,
    );
  }
  if (v.benchEveryNSteps != null && suites.length === 0) {
    r.report(
      ["benchEveryNSteps"],
      `Cannot benchmark every ${v.benchEveryNSteps} steps as training.benchSuites is empty: current value is ${v.benchEveryNSteps}`,
      'add suites to training.benchSuites (e.g. ["cognitive_load_eval@1"]) or set training.benchEveryNSteps to null',
    );
  }
  const seen = new Set<unknown>();
  suites.forEach((s, i) => {
    if (seen.has(s)) {
      r.report(
        ["benchSuites", i],
        `Cannot list bench suite ${
          JSON.stringify(s)
        } twice in training.benchSuites: current value repeats it`,
        "remove the duplicate",
      );
    }
    seen.add(s);
  });
  const monitor = typeof v.monitor === "string" ? v.monitor : "val_loss";
  const keepBestK = typeof v.keepBestK === "number" ? v.keepBestK : 1;
  const suiteOfMonitor = monitor.includes("/") ? monitor.slice(0, monitor.indexOf("/")) : undefined;
  if (suiteOfMonitor !== undefined && !suites.includes(suiteOfMonitor)) {
    r.report(
      ["monitor"],
      `Cannot monitor ${
        JSON.stringify(monitor)
      } as suite ${suiteOfMonitor} is not in training.benchSuites: current benchSuites are ${
        JSON.stringify(suites)
      }`,
      `add "${suiteOfMonitor}" to training.benchSuites, or monitor "val_loss"`,
    );
  }
  // Best-k needs the monitored metric at checkpoint steps: the two cadences must meet before maxSteps.
  if (keepBestK > 0 && int(ckptEvery) && int(maxSteps)) {
    const metricEvery = monitor === "val_loss"
      ? v.valEveryNSteps === undefined ? 1_000 : v.valEveryNSteps
      : monitor === "train_loss"
      ? (int(v.logEveryNSteps) ? v.logEveryNSteps : 50)
      : v.benchEveryNSteps ?? null;
    if (metricEvery === null) {
      const field = monitor === "val_loss" ? "valEveryNSteps" : "benchEveryNSteps";
      r.report(
        [field],
        `Cannot keep the ${keepBestK} best checkpoint(s) by ${monitor} as training.${field} is null, so it is never measured during training: current value is null`,
        `set training.${field} (e.g. to training.ckptEveryNSteps = ${ckptEvery}) or training.keepBestK to 0`,
      );
    } else if (int(metricEvery)) {
      const lcm = (metricEvery / gcd(metricEvery, ckptEvery)) * ckptEvery;
      if (lcm > maxSteps) {
        r.report(
          ["ckptEveryNSteps"],
          `Cannot rank checkpoints by ${monitor} as it is measured every ${metricEvery} steps and checkpoints are written every ${ckptEvery}, which first coincide at step ${lcm} > maxSteps ${maxSteps}: current value is ${ckptEvery}`,
          `make the cadences meet, e.g. set training.ckptEveryNSteps to a divisor of ${metricEvery}`,
        );
      }
    }
  }
  if (int(v.keepEveryNSteps) && int(ckptEvery) && v.keepEveryNSteps % ckptEvery !== 0) {
    r.report(
      ["keepEveryNSteps"],
      `Cannot keep checkpoints every ${v.keepEveryNSteps} steps as checkpoints are only written every ${ckptEvery}: current value is ${v.keepEveryNSteps}`,
      `set training.keepEveryNSteps to a multiple of training.ckptEveryNSteps (${ckptEvery})`,
    );
  }
  if (typeof v.freezeUntilStep === "number" && int(maxSteps) && v.freezeUntilStep >= maxSteps) {
    r.report(
      ["freezeUntilStep"],
      `Cannot freeze weights until step ${v.freezeUntilStep} as training stops at training.maxSteps = ${maxSteps}: current value is ${v.freezeUntilStep}`,
      `set training.freezeUntilStep below ${maxSteps}`,
    );
  }
});

/** The zod schema of {@link TrainingConfig}: fields, defaults, cross-field rules and derived defaults. */
export const TrainingConfigSchema = TrainingConfigChecked.transform((v) => ({
  ...v,
  eps: v.eps ?? DEFAULT_EPS[v.optimizer],
  monitorMode: v.monitorMode ?? (v.monitor.endsWith("loss") ? "min" as const : "max" as const),
})).brand<"TrainingConfig">();

/** Validated training settings with every default (including derived ones) filled in. */
export interface TrainingConfig {
  /** Windows per optimizer micro-step per GPU; global batch = batchSize × nodes × gpusPerNode × accumulateGradBatches. */
  batchSize: number;
  /** Optimizer steps to train. */
  maxSteps: number;
  /** adamw | lamb | sparse_lamb (see the model contract). */
  optimizer: "adamw" | "lamb" | "sparse_lamb";
  /** Peak learning rate. */
  lr: number;
  /** Decoupled weight decay. */
  weightDecay: number;
  /** (β1, β2); with onecycle β1 follows the momentum cycle 0.95 → 0.85. */
  betas: [number, number];
  /** Optimizer epsilon (resolved: 1e-8 for adamw, 1e-6 for lamb and sparse_lamb when left null). */
  eps: number;
  /** onecycle | cosine | constant. */
  scheduler: "onecycle" | "cosine" | "constant";
  /** Linear warm-up steps for cosine and constant (onecycle has its own warm-up). */
  warmupSteps: number;
  /** Global gradient-norm clip; null = off. */
  gradClipNorm: number | null;
  /** EMA of the weights; null = off. */
  emaDecay: number | null;
  /** Micro-batches accumulated per optimizer step. */
  accumulateGradBatches: number;
  /** Validation cadence in steps; null = never. */
  valEveryNSteps: number | null;
  /** Metric logging cadence in steps. */
  logEveryNSteps: number;
  /** Checkpoint cadence in steps (a final checkpoint is always written). */
  ckptEveryNSteps: number;
  /** Most recent checkpoints kept (at least 1, for resuming). */
  keepLastK: number;
  /** Best checkpoints kept by `monitor`. */
  keepBestK: number;
  /** Also keep every checkpoint at a multiple of this step; null = none. */
  keepEveryNSteps: number | null;
  /** Metric ranking checkpoints: "val_loss", "train_loss" or "<suite>@<version>/<metric>". */
  monitor: string;
  /** Whether lower or higher `monitor` is better (resolved: "min" for losses, "max" otherwise). */
  monitorMode: "min" | "max";
  /** 32-true | 16-mixed (needs shader-f16) | bf16-mixed. */
  precision: "32-true" | "16-mixed" | "bf16-mixed";
  /** Dynamic loss scaling of 16-mixed (GradScaler semantics); unused by the other precisions. */
  gradScaler: GradScalerConfig;
  /** Seed of every counter-based generator (init, dropout, sampling). */
  seed: number;
  /** Benchmark cadence in steps; null = only at the end (when benchSuites is not empty). */
  benchEveryNSteps: number | null;
  /** Benchmark suites as "<suite>@<version>". */
  benchSuites: string[];
  /** How benchmarks are computed (see BenchCompute). */
  benchCompute: BenchCompute;
  /** With initFrom: loaded weights (all but weightOverrides) stay frozen until this step; 0 = none. */
  freezeUntilStep: number;
}

/** Loss-scaling settings of `16-mixed` (`training.gradScaler`), PyTorch `GradScaler` defaults. */
export interface GradScalerConfig {
  /** Initial loss scale (a power of two). */
  initScale: number;
  /** Scale multiplier after `growthInterval` clean steps (a power of two > 1). */
  growthFactor: number;
  /** Scale multiplier on a step with inf/NaN gradients, which is skipped (a power of two < 1). */
  backoffFactor: number;
  /** Consecutive clean steps before the scale grows. */
  growthInterval: number;
}

/** Training settings as a user writes them: every field optional, nullable ones may be null (see {@link TrainingConfig}). */
export type TrainingConfigInput =
  & Partial<Omit<TrainingConfig, "eps" | "monitorMode" | "benchCompute" | "gradScaler">>
  & {
    /** Optimizer epsilon; null = the optimizer's default. */
    eps?: number | null;
    /** Whether lower or higher `monitor` is better; null = by the metric's name. */
    monitorMode?: "min" | "max" | null;
    /** How benchmarks are computed (a `BenchCompute(...)` or its fields). */
    benchCompute?: BenchComputeInput;
    /** Loss scaling of 16-mixed; fields left out take PyTorch's defaults. */
    gradScaler?: Partial<GradScalerConfig>;
  };

const _trainingConfigMatchesSchema: [
  SameShape<DeepUnbranded<z.output<typeof TrainingConfigSchema>>, TrainingConfig>,
  SameShape<z.input<typeof TrainingConfigSchema>, TrainingConfigInput>,
] = [true, true];

/**
 * Validates training settings.
 *
 * @example
 * ```ts
 * import { TrainingConfig } from "./training_config.ts";
 * const t = TrainingConfig({ batchSize: 32, optimizer: "sparse_lamb", scheduler: "onecycle" });
 * console.log(t.eps, t.monitorMode); // 0.000001 "min"
 * ```
 */
export function TrainingConfig(input: TrainingConfigInput = {}): TrainingConfig {
  return buildConfig("TrainingConfig", TrainingConfigSchema, input);
}
