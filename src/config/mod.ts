/**
 * Typed, validated, versioned run configs and pre-flight checks.
 *
 * @module
 */
export { BenchCompute, type BenchComputeInput, BenchComputeSchema } from "./bench_compute.ts";
export { canonicalJson, sha256OfCanonicalJson } from "./canonical_json.ts";
export { buildConfig, checkBuilt, invalidConfigError, parseConfig, rawConfigOf } from "./config_builder.ts";
export {
  type ConfigMigration,
  CURRENT_CONFIG_VERSION,
  migrateConfigDocument,
  MIGRATIONS,
} from "./config_migrations.ts";
export { applyOverrides, type ConfigOverride, parseOverrides } from "./config_overrides.ts";
export { DataConfig, type DataConfigInput, DataConfigSchema } from "./data_config.ts";
export {
  type CheckpointSelector,
  CheckpointSelectorSchema,
  FinetuneFrom,
  type FinetuneFromInput,
  FinetuneFromSchema,
} from "./finetune_from.ts";
export { BACKENDS, InfraConfig, type InfraConfigInput, InfraConfigSchema } from "./infra_config.ts";
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
} from "./memory_estimate.ts";
export {
  isModelClass,
  ModelConfig,
  type ModelConfigInput,
  ModelConfigSchema,
  resolveModelClass,
} from "./model_config.ts";
export {
  type KwargsProblem,
  type ModelConfigHooks,
  modelConfigHooks,
  registerModelConfigHooks,
} from "./model_config_hooks.ts";
export {
  type AdapterDescription,
  type AdapterLimits,
  ASSUMED_MODALITY_LAYOUT,
  formatPipelinePreflightReport,
  formatPreflightReport,
  type LauncherCapacity,
  type PipelinePreflightReport,
  PRECISION_FEATURES,
  type PreflightCheck,
  type PreflightContext,
  type PreflightReport,
  preflightRunConfig,
  preflightTrainingPipeline,
  type QueryResolution,
  retainedCheckpointCount,
} from "./preflight.ts";
export {
  builtinLauncherCapacity,
  defaultPreflightContext,
  directoryIsWritable,
  freeDiskBytesOf,
  probeWebGpuAdapter,
  registerPreflightProvider,
  runDirectoryExists,
} from "./preflight_environment.ts";
export {
  ConfigError,
  errorsOf,
  formatProblems,
  formatValue,
  type Problem,
  problem,
  type ProblemSeverity,
} from "./problem.ts";
export {
  parseRunConfig,
  type ResolvedRunConfig,
  RunConfig,
  type RunConfigInput,
  RunConfigSchema,
} from "./run_config.ts";
export { RUN_NAME_PATTERN, RunNameSchema } from "./run_name.ts";
export {
  configHash,
  type ConfigKind,
  configToJson,
  isPipelineConfig,
  parseSerializedConfig,
  parseSerializedRunConfig,
  RUN_CONFIG_FILE,
  serializeConfig,
} from "./serialize_config.ts";
export {
  BENCH_SUITE_KEY,
  DEFAULT_EPS,
  type GradScalerConfig,
  GradScalerSchema,
  MONITOR_PATTERN,
  OPTIMIZERS,
  PRECISIONS,
  SCHEDULERS,
  TrainingConfig,
  type TrainingConfigInput,
  TrainingConfigSchema,
} from "./training_config.ts";
export {
  parseTrainingPipeline,
  TrainingPipeline,
  type TrainingPipelineInput,
  TrainingPipelineSchema,
} from "./training_pipeline.ts";
