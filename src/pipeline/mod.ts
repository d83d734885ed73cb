/**
 * Multi-stage training: pipelines of run configs (pre-train → fine-tune → ...), resumable, with checkpoint
 * selection, whole-pipeline pre-flight and lineage in checkpoints and the catalog.
 *
 * @module
 */
export * from "./stage_lineage.ts";
export * from "./lineage_catalog.ts";
export * from "./checkpoint_selection.ts";
export * from "./weight_compatibility.ts";
export * from "./stage_plan.ts";
export * from "./pipeline_preflight.ts";
export * from "./pipeline_runner.ts";
export { pipelineCommand } from "./pipeline_command.ts";
export { lineageCommand } from "./lineage_command.ts";
