/**
 * Benchmarks: suites registered by `name@version`, held-out data, metrics with bootstrap intervals,
 * content-addressed results in the catalog, the training-time scheduler (inline / async / separate) and the
 * `orion eval` / `orion bench` handlers. Importing this module registers `cognitive_load_eval@1`.
 *
 * @module
 */
export type { BenchModel, BenchModelInput } from "./bench_model.ts";
export {
  type BenchData,
  type BenchGroup,
  type BenchWindow,
  type HeldOutCandidate,
  type HeldOutSelection,
  openBenchData,
  sha256Json,
} from "./bench_data.ts";
export type {
  BenchmarkMeasurement,
  BenchmarkSuite,
  BenchRunOptions,
  BlockPrediction,
} from "./bench_suite.ts";
export {
  ACCURACY,
  accuracy,
  BALANCED_ACCURACY,
  balancedAccuracy,
  bootstrapDraws,
  type BootstrapOptions,
  type ClassPrediction,
  MACRO_F1,
  macroF1,
  type Metric,
  type MetricValue,
  PER_PARTICIPANT_ACCURACY,
  percentile,
  scoreMetrics,
} from "./metrics.ts";
export {
  benchmark,
  type BenchmarkClass,
  type BenchmarkDefinition,
  type BenchmarkOptions,
  benchSuiteExists,
  getBenchmark,
  listBenchmarks,
  parseSuiteKey,
  registerBenchmark,
  type RegisteredBenchmark,
} from "./registry.ts";
export {
  inPartialSubset,
  type PartialSelection,
  selectPartialSubset,
  validatePartialSubset,
} from "./partial_subset.ts";
export {
  runWindowAveragedClassification,
  type WindowAveragedOptions,
} from "./window_averaged_classification.ts";
export { CognitiveLoadEvalV1 } from "./cognitive_load_eval.ts";
export { checkLeakage, type LeakageCheckOptions, LeakageError, readCheckpointLedger } from "./leakage.ts";
export {
  BENCHMARK_RESULTS_SCHEMA,
  BENCHMARK_RESULTS_TABLE,
  benchmarkMetricScalars,
  type BenchmarkResult,
  type BenchmarkResultFilter,
  type BenchmarkResultKey,
  benchmarkResultKey,
  BenchmarkResultSchema,
  bestBenchmarkResult,
  checkpointBenchmarks,
  findBenchmarkResult,
  listBenchmarkResults,
  metricValues,
  parseBenchmarkResult,
  recordBenchmarkResult,
} from "./results.ts";
export { evaluateBenchmark, type EvaluateOptions, type EvaluateOutcome } from "./evaluate.ts";
export {
  type BenchModelLoader,
  checkpointDirOfHash,
  type CheckpointEvalOptions,
  type CheckpointEvalOutcome,
  type CheckpointIdentity,
  evaluateCheckpoint,
  evaluateModel,
  getBenchModelLoader,
  type ModelEvalOutcome,
  readCheckpointIdentity,
  setBenchModelLoader,
  type SuiteFailure,
} from "./evaluate_checkpoint.ts";
export {
  createProcessSpawner,
  EVAL_PROCESS_PERMISSIONS,
  evalCommandArgs,
  type EvalOutput,
  type EvalProcessOutput,
  type EvalRequest,
  formatEvalOutput,
  parseEvalOutput,
  type ProcessSpawnerOptions,
  type SpawnEval,
} from "./eval_process.ts";
export {
  type BenchComputeMode,
  type BenchFailure,
  BenchScheduler,
  type BenchSchedulerOptions,
  type BenchSnapshot,
  type InlineEvaluator,
} from "./bench_runner.ts";
export {
  BENCH_USAGE,
  benchCommand,
  describeResult,
  EVAL_USAGE,
  evalCommand,
  resolveEvalTarget,
  runBenchCommand,
  runEvalCommand,
} from "./bench_cli.ts";
export {
  FakeBenchModel,
  type FakeBenchModelOptions,
  syntheticBenchData,
  type SyntheticBenchOptions,
  syntheticRecordingHash,
  type SyntheticSession,
} from "./fake_bench_model.ts";
