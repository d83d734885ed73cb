/**
 * `train(config)`: what `orion train <config.ts>` does, as a function — pre-flight (every problem at once),
 * then the registered training loop — resolving to the run's {@link TrainOutcome}.
 *
 * @module
 */
import { resolve } from "node:path";
import "../cli/builtin_commands.ts"; // the training loop, the data pre-flight, model classes, benchmarks
import type { CliIO } from "../cli/cli_io.ts";
import { TRAINING_UNAVAILABLE } from "../cli/train_command.ts";
import { trainRunner } from "../cli/train_runner.ts";
import { rawConfigOf } from "../config/config_builder.ts";
import {
  formatPreflightReport,
  type PreflightContext,
  type PreflightReport,
  preflightRunConfig,
} from "../config/preflight.ts";
import { defaultPreflightContext } from "../config/preflight_environment.ts";
import { ConfigError } from "../config/problem.ts";
import type { RunConfig } from "../config/run_config.ts";
import { configHash, serializeConfig } from "../config/serialize_config.ts";
import { libraryIO } from "./library_io.ts";
import { readTrainOutcome, type TrainOutcome } from "./run_outcome.ts";

/** Options of {@link train}. */
export interface TrainOptions {
  /** Directory `runsDir` resolves against (default `Deno.cwd()`); `data.catalogDir` is relative to the process's. */
  cwd?: string;
  /** Where progress and the pre-flight report go (default: the console). */
  io?: CliIO;
  /** Print warnings only (ignored when `io` is given). */
  quiet?: boolean;
  /** Pre-flight capabilities layered over the defaults (e.g. a known adapter). */
  preflight?: Partial<PreflightContext>;
}

/** Runs pre-flight on a run config and throws a {@link ConfigError} listing every problem when it fails. */
export async function preflightOrThrow(
  config: unknown,
  context: PreflightContext,
  io: CliIO,
): Promise<PreflightReport & { config: RunConfig }> {
  const report = await preflightRunConfig(config, context);
  if (!report.ok || !report.config) throw new ConfigError(`run ${report.subject}`, report.problems);
  io.out(formatPreflightReport(report));
  return report as PreflightReport & { config: RunConfig };
}

/** True when a config value is a pipeline (has `stages`). */
export function isPipelineValue(value: unknown): boolean {
  const raw = rawConfigOf(value);
  return raw !== null && typeof raw === "object" && !Array.isArray(raw) && "stages" in raw;
}

/**
 * Trains a run: pre-flight (schema, data, memory, adapter, disk, run name), then the training loop, exactly
 * as `orion train` does. Resolves when the run finishes (or is interrupted by SIGINT/SIGTERM, after its
 * checkpoint is written).
 *
 * @throws {ConfigError} when pre-flight fails (nothing is written then).
 * @example
 * ```ts
 * import { DataConfig, InfraConfig, ModelConfig, POYO, QuerySpec, RunConfig, train, TrainingConfig } from "../../mod.ts";
 * const outcome = await train(RunConfig({
 *   name: "tiny_demo",
 *   data: DataConfig({ ursaQuery: QuerySpec({ participants: "*" }), trainWindow: 2 }),
 *   model: ModelConfig({ cls: POYO, kwargs: { dim: 32, depth: 1, dimHead: 8, numLatents: 4 } }),
 *   training: TrainingConfig({ batchSize: 4, maxSteps: 5 }),
 *   infra: InfraConfig({ accelerator: "cpu-software" }),
 * }), { quiet: true });
 * console.log(outcome.status, outcome.step, outcome.checkpoint?.dir);
 * ```
 */
export async function train(config: RunConfig, options: TrainOptions = {}): Promise<TrainOutcome> {
  if (isPipelineValue(config)) {
    throw new TypeError(
      "Cannot train a TrainingPipeline with train() as it trains one run: current value has stages; " +
        "use trainPipeline(pipeline) instead",
    );
  }
  const io = libraryIO(options);
  const cwd = options.cwd ?? Deno.cwd();
  const report = await preflightOrThrow(config, defaultPreflightContext({ cwd, ...options.preflight }), io);
  const runner = trainRunner();
  if (!runner) throw new Error(TRAINING_UNAVAILABLE);
  const resolved = report.config;
  const runDir = resolve(cwd, resolved.runsDir, resolved.name);
  const code = await runner({
    config: resolved,
    serializedConfig: serializeConfig(resolved),
    configHash: configHash(resolved),
    runDir,
    resume: null,
    preflight: report,
    cwd,
    io,
  });
  const outcome = await readTrainOutcome(runDir);
  if (code !== 0) {
    throw new Error(
      `Cannot finish run ${resolved.name} as the training loop exited with code ${code}: current status is ${outcome.status}; see ${runDir}`,
    );
  }
  return outcome;
}
