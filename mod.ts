/**
 * Orion: a training runtime for neural-signal models on Deno + WebGPU.
 *
 * This module is the public API — configs, the POYO model, benchmarks, and functions that train, resume,
 * evaluate and query the catalog — and, run as the main module, the `orion` command line
 * (`deno task orion <command> ...`, `deno task train <config.ts>`). It can be imported from a checkout, over
 * HTTP (`import { train } from "https://host/orion/mod.ts"`, with the npm import map of `docs/library.md`), or
 * from the single-file bundle (`dist/orion.js`).
 *
 * @example
 * ```ts
 * import { DataConfig, InfraConfig, ModelConfig, POYO, QuerySpec, RunConfig, train, TrainingConfig } from "./mod.ts";
 * const config = RunConfig({
 *   name: "demo",
 *   data: DataConfig({ ursaQuery: QuerySpec({ participants: "*" }), trainWindow: 4 }),
 *   model: ModelConfig({ cls: POYO, kwargs: { dim: 64, depth: 2 } }),
 *   training: TrainingConfig({ batchSize: 16, maxSteps: 300 }),
 *   infra: InfraConfig({ accelerator: "cpu-software" }),
 * });
 * const outcome = await train(config);
 * console.log(outcome.status, outcome.checkpoint?.dir);
 * ```
 *
 * @module
 */

// Configs: builders, their input and resolved types, serialization and pre-flight.
export { BenchCompute, type BenchComputeInput } from "./src/config/bench_compute.ts";
export { invalidConfigError, rawConfigOf } from "./src/config/config_builder.ts";
export { CURRENT_CONFIG_VERSION } from "./src/config/config_migrations.ts";
export { applyOverrides, type ConfigOverride, parseOverrides } from "./src/config/config_overrides.ts";
export { DataConfig, type DataConfigInput } from "./src/config/data_config.ts";
export { type CheckpointSelector, FinetuneFrom, type FinetuneFromInput } from "./src/config/finetune_from.ts";
export { InfraConfig, type InfraConfigInput } from "./src/config/infra_config.ts";
export {
  type DataLayout,
  estimatePoyoMemory,
  formatBytes,
  type MemoryEstimate,
  type MemoryEstimateInput,
  numel,
  type ParameterTensor,
  poyoParameterTable,
  type PoyoSizeKwargs,
} from "./src/config/memory_estimate.ts";
export { ModelConfig, type ModelConfigInput } from "./src/config/model_config.ts";
export {
  type AdapterDescription,
  type AdapterLimits,
  formatPipelinePreflightReport,
  formatPreflightReport,
  type LauncherCapacity,
  type PipelinePreflightReport,
  type PreflightCheck,
  type PreflightContext,
  type PreflightReport,
  preflightRunConfig,
  preflightTrainingPipeline,
  type QueryResolution,
} from "./src/config/preflight.ts";
export { ConfigError, type Problem, problem, type ProblemSeverity } from "./src/config/problem.ts";
export {
  parseRunConfig,
  type ResolvedRunConfig,
  RunConfig,
  type RunConfigInput,
} from "./src/config/run_config.ts";
export {
  configHash,
  parseSerializedConfig,
  parseSerializedRunConfig,
  RUN_CONFIG_FILE,
  serializeConfig,
} from "./src/config/serialize_config.ts";
export {
  type GradScalerConfig,
  TrainingConfig,
  type TrainingConfigInput,
} from "./src/config/training_config.ts";
export {
  parseTrainingPipeline,
  TrainingPipeline,
  type TrainingPipelineInput,
} from "./src/config/training_pipeline.ts";
export { QuerySpec, type QuerySpecInput } from "./src/ursa/query_spec.ts";

// Models.
export { type KwargsInputOf, type ModelClass, registerModelClass } from "./src/models/model_class.ts";
export { POYO, type PoyoClass } from "./src/api/poyo_model.ts";
export {
  POYO_PRESETS,
  type PoyoKwargs,
  type PoyoKwargsInput,
  type PoyoPresetName,
} from "./src/models/poyo_kwargs.ts";

// Benchmarks: defining suites, their metrics, and stored results.
export type { BenchModel, BenchModelInput } from "./src/bench/bench_model.ts";
export type {
  BenchData,
  BenchGroup,
  BenchWindow,
  HeldOutCandidate,
  HeldOutSelection,
} from "./src/bench/bench_data.ts";
export type {
  BenchmarkMeasurement,
  BenchmarkSuite,
  BenchRunOptions,
  BlockPrediction,
} from "./src/bench/bench_suite.ts";
export {
  ACCURACY,
  BALANCED_ACCURACY,
  type ClassPrediction,
  MACRO_F1,
  type Metric,
  type MetricValue,
  PER_PARTICIPANT_ACCURACY,
} from "./src/bench/metrics.ts";
export {
  benchmark,
  type BenchmarkClass,
  type BenchmarkDefinition,
  type BenchmarkOptions,
  listBenchmarks,
  registerBenchmark,
  type RegisteredBenchmark,
} from "./src/bench/registry.ts";
export type { BenchmarkResult, BenchmarkResultKey } from "./src/bench/results.ts";
export type { BootstrapOptions } from "./src/bench/metrics.ts";
export type { PoyoBatch, RecordingWindow, WindowRef } from "./src/data/batch.ts";
export type { BatchUploadIndex, UploadIndexSizes } from "./src/data/upload_index.ts";
export { DataLedger, type Interval, type LedgerEntry, type LedgerJson } from "./src/data/ledger.ts";
export {
  runWindowAveragedClassification,
  type WindowAveragedOptions,
} from "./src/bench/window_averaged_classification.ts";

// The library: train, resume, evaluate, query.
export * from "./src/api/mod.ts";
export type { RunStatus } from "./src/train/run_record.ts";
export type { LineageGraph, LineageNode, LineageScore } from "./src/pipeline/lineage_catalog.ts";
export type { AncestorCheckpoint } from "./src/pipeline/stage_lineage.ts";

// The run dashboard and the static run report.
export {
  type DashboardOptions,
  type DashboardServer,
  RUN_REPORT_FILE,
  type RunReportOptions,
  serveDashboard,
  writeRunReport,
} from "./src/dashboard/mod.ts";

// The command line, for embedding and for adding commands.
export { EXIT, UsageError } from "./src/cli/cli_errors.ts";
export { type CliIO, consoleIO, recordingIO } from "./src/cli/cli_io.ts";
export {
  type Command,
  type CommandContext,
  listCommands,
  registerCommand,
} from "./src/cli/command_registry.ts";
export { main, type MainOptions } from "./src/cli/main.ts";
export {
  type PipelineRequest,
  type PipelineRunner,
  registerPipelineRunner,
  registerTrainRunner,
  type TrainRequest,
  type TrainRunner,
} from "./src/cli/train_runner.ts";

import { main } from "./src/cli/main.ts";

// No top-level await here: config modules import this file, and awaiting in it would deadlock their import.
if (import.meta.main) main(Deno.args).then((code) => Deno.exit(code));
