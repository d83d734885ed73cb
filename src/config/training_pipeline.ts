/**
 * `TrainingPipeline`: named stages (run configs) trained in order, e.g. pre-training then fine-tuning from it.
 *
 * @module
 */
import { z } from "zod";
import { buildConfig, parseConfig } from "./config_builder.ts";
import { type RunConfig, type RunConfigInput, RunConfigSchema } from "./run_config.ts";
import type { DeepUnbranded, SameShape } from "./config_shape.ts";
import { RunNameSchema } from "./run_name.ts";
import { alwaysCheck } from "./schema_tools.ts";

const TrainingPipelineObject = z.strictObject({
  name: RunNameSchema.describe("pipeline name"),
  stages: z.array(RunConfigSchema).min(1).describe("run configs trained in order"),
});

function sourceName(stage: unknown): string | undefined {
  const initFrom = (stage as { initFrom?: { run?: unknown } } | null)?.initFrom;
  const run = initFrom?.run;
  if (typeof run === "string") return run;
  const name = (run as { name?: unknown } | null | undefined)?.name;
  return typeof name === "string" ? name : undefined;
}

/** A problem of a pipeline's stage structure; `path` is relative to the pipeline. */
export interface PipelineStageProblem {
  path: (string | number)[];
  message: string;
  fix: string;
}

/** Stage-structure rules, read defensively from a raw pipeline: unique stage names; stages start from earlier ones. */
export function pipelineStageProblems(pipeline: unknown): PipelineStageProblem[] {
  const out: PipelineStageProblem[] = [];
  const rawStages = (pipeline as { stages?: unknown } | null)?.stages;
  const stages: unknown[] = Array.isArray(rawStages) ? rawStages : [];
  const names = stages.map((s) => (s as { name?: unknown } | null)?.name);
  names.forEach((name, i) => {
    if (typeof name === "string" && names.indexOf(name) !== i) {
      out.push({
        path: ["stages", i, "name"],
        message: `Cannot name two pipeline stages ${
          JSON.stringify(name)
        } as each stage is its own run directory: current value repeats stage ${names.indexOf(name)}`,
        fix: "give every stage a unique name",
      });
    }
  });
  stages.forEach((stage, i) => {
    const source = sourceName(stage);
    const at = source === undefined ? -1 : names.indexOf(source);
    if (at > i) {
      out.push({
        path: ["stages", i, "initFrom", "run"],
        message: `Cannot start stage ${i} from stage ${at} (${
          JSON.stringify(source)
        }) as that stage has not run yet: current value is ${JSON.stringify(source)}`,
        fix: "order the stages so that every stage starts from an earlier one",
      });
    }
  });
  return out;
}

/** The pipeline's own fields, with stages left unchecked (pre-flight checks each stage as a run). */
export const PipelineShapeSchema = z.strictObject({
  name: RunNameSchema.describe("pipeline name"),
  stages: z.array(z.unknown().describe("RunConfig")).min(1).describe("run configs trained in order"),
});

/** The zod schema of {@link TrainingPipeline}: stage names unique; a stage only starts from an earlier stage. */
export const TrainingPipelineSchema = alwaysCheck(TrainingPipelineObject, (v, r) => {
  for (const p of pipelineStageProblems(v)) r.report(p.path, p.message, p.fix);
}).brand<"TrainingPipeline">();

/** A pipeline as a user writes it. */
export type TrainingPipelineInput = { name: string; stages: RunConfigInput[] };
/** A validated pipeline whose stages are fully resolved run configs. */
export interface TrainingPipeline {
  /** Pipeline name. */
  name: string;
  /** Run configs trained in order. */
  stages: RunConfig[];
}

const _trainingPipelineMatchesSchema: SameShape<
  DeepUnbranded<z.output<typeof TrainingPipelineSchema>>,
  TrainingPipeline
> = true;

/**
 * Validates a pipeline (invalid → a placeholder reporting every problem, as with `RunConfig`).
 *
 * @example
 * ```ts
 * import { TrainingPipeline } from "./training_pipeline.ts";
 * import { FinetuneFrom } from "./finetune_from.ts";
 * import { RunConfig } from "./run_config.ts";
 * import { POYO } from "../models/poyo.ts";
 * const pre = RunConfig({ name: "pre", model: { cls: POYO } });
 * const ft = RunConfig({ name: "ft", model: { cls: POYO }, initFrom: FinetuneFrom({ run: pre }) });
 * const p = TrainingPipeline({ name: "pre_then_ft", stages: [pre, ft] });
 * console.log(p.stages[1].initFrom?.run); // "pre"
 * ```
 */
export function TrainingPipeline(input: TrainingPipelineInput): TrainingPipeline {
  return buildConfig("TrainingPipeline", TrainingPipelineSchema, input);
}

/**
 * Parses anything describing a pipeline into a validated {@link TrainingPipeline}; throws a `ConfigError`.
 *
 * @example
 * ```ts
 * import { parseTrainingPipeline } from "./training_pipeline.ts";
 * const p = parseTrainingPipeline({ name: "p", stages: [{ name: "pre", model: { cls: "POYO" } }] });
 * console.log(p.stages[0].training.optimizer); // "adamw"
 * ```
 */
export function parseTrainingPipeline(input: unknown): TrainingPipeline {
  return parseConfig("TrainingPipeline", TrainingPipelineSchema, input);
}
