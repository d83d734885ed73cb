/**
 * Orion as a library: train, resume, evaluate, and query the catalog from code (the same work `orion
 * train`, `orion resume` and `orion eval` do).
 *
 * @module
 */
export {
  type CatalogScope,
  type CheckpointEntry,
  queryBenchmarkResults,
  queryBestCheckpoint,
  queryCheckpoints,
  queryLineage,
  queryRuns,
  type RunEntry,
} from "./catalog_queries.ts";
export { buildDemoCatalog, type DemoCatalogOptions, type DemoCatalogSummary } from "./demo_catalog.ts";
export { evaluate, type EvaluationOptions, type EvaluationOutcome } from "./evaluate.ts";
export { resume, type ResumeOptions } from "./resume.ts";
export { type CheckpointRef, readTrainOutcome, type TrainOutcome } from "./run_outcome.ts";
export { train, type TrainOptions } from "./train.ts";
export { trainPipeline, type TrainPipelineOptions } from "./train_pipeline.ts";
