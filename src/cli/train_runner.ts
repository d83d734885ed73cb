/**
 * Hooks through which `orion train` / `orion resume` hand a pre-flighted config to the training loop (and
 * `orion train <pipeline>` to the pipeline runner). The training-loop module registers its runner at import;
 * until then the commands report that training is not available (exit 1), and `--dry-run` works fully.
 *
 * @module
 */
import type { PipelinePreflightReport, PreflightReport } from "../config/preflight.ts";
import type { RunConfig } from "../config/run_config.ts";
import type { TrainingPipeline } from "../config/training_pipeline.ts";
import type { CliIO } from "./cli_io.ts";

/** Everything the training loop needs to start (or resume) one run. */
export interface TrainRequest {
  /** The fully resolved config (pre-flight passed). */
  config: RunConfig;
  /** `serializeConfig(config)`: write it to `<runDir>/config.json` (RUN_CONFIG_FILE). */
  serializedConfig: string;
  /** `configHash(config)`. */
  configHash: string;
  /** Absolute run directory `<runsDir>/<name>` (not created yet for a new run). */
  runDir: string;
  /** Null for a new run; for `orion resume`, the checkpoint directory asked for (null = the latest). */
  resume: { checkpointDir: string | null } | null;
  /** The pre-flight report (memory estimate, adapter, warnings). */
  preflight: PreflightReport;
  /** Working directory of the command. */
  cwd: string;
  /** Output channels of the command. */
  io: CliIO;
}

/** Runs (or resumes) training; resolves to the exit code. */
export type TrainRunner = (request: TrainRequest) => Promise<number>;

/** Everything a pipeline runner needs. */
export interface PipelineRequest {
  /** The validated pipeline. */
  pipeline: TrainingPipeline;
  /** Its pre-flight report (one per stage). */
  preflight: PipelinePreflightReport;
  /** Working directory of the command. */
  cwd: string;
  /** Output channels of the command. */
  io: CliIO;
}

/** Runs a pipeline; resolves to the exit code. */
export type PipelineRunner = (request: PipelineRequest) => Promise<number>;

let registeredTrainRunner: TrainRunner | undefined;
let registeredPipelineRunner: PipelineRunner | undefined;

/**
 * Registers the training loop behind `orion train` and `orion resume` (the last registration wins).
 *
 * @example
 * ```ts
 * import { registerTrainRunner } from "./train_runner.ts";
 * registerTrainRunner(async ({ config, runDir, io }) => {
 *   io.out(`training ${config.name} in ${runDir}`);
 *   return 0;
 * });
 * ```
 */
export function registerTrainRunner(runner: TrainRunner | undefined): void {
  registeredTrainRunner = runner;
}

/** The registered training loop, if any. */
export function trainRunner(): TrainRunner | undefined {
  return registeredTrainRunner;
}

/**
 * Registers the pipeline runner behind `orion train <pipeline.ts>` (the last registration wins).
 *
 * @example
 * ```ts
 * import { registerPipelineRunner } from "./train_runner.ts";
 * registerPipelineRunner(async ({ pipeline, io }) => {
 *   io.out(`would train ${pipeline.stages.length} stages of ${pipeline.name}`);
 *   return 0;
 * });
 * ```
 */
export function registerPipelineRunner(runner: PipelineRunner | undefined): void {
  registeredPipelineRunner = runner;
}

/** The registered pipeline runner, if any. */
export function pipelineRunner(): PipelineRunner | undefined {
  return registeredPipelineRunner;
}
