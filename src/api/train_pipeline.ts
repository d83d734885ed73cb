/**
 * `trainPipeline(pipeline)`: what `orion train <pipeline.ts>` does, as a function.
 *
 * @module
 */
import { resolve } from "node:path";
import "../cli/builtin_commands.ts"; // the training loop, the pipeline runner, model classes, benchmarks
import type { CliIO } from "../cli/cli_io.ts";
import { pipelineRunner } from "../cli/train_runner.ts";
import {
  formatPipelinePreflightReport,
  type PreflightContext,
  preflightTrainingPipeline,
} from "../config/preflight.ts";
import { defaultPreflightContext } from "../config/preflight_environment.ts";
import { ConfigError } from "../config/problem.ts";
import type { TrainingPipeline } from "../config/training_pipeline.ts";
import { libraryIO } from "./library_io.ts";
import { readTrainOutcome, type TrainOutcome } from "./run_outcome.ts";

/** Options of {@link trainPipeline}. */
export interface TrainPipelineOptions {
  /** Directory `runsDir` resolves against (default `Deno.cwd()`). */
  cwd?: string;
  /** Where progress and the pre-flight report go (default: the console). */
  io?: CliIO;
  /** Print warnings only (ignored when `io` is given). */
  quiet?: boolean;
  /** Pre-flight capabilities layered over the defaults. */
  preflight?: Partial<PreflightContext>;
}

/**
 * Trains the stages of a pipeline in order (each fine-tuning stage starts from its `initFrom` stage), after
 * pre-flight of every stage; resolves to one outcome per stage. Needs the pipeline runner
 * (`registerPipelineRunner`), which the CLI registers.
 *
 * @throws {ConfigError} when pre-flight fails; an Error when no pipeline runner is registered.
 * @example
 * ```ts
 * import { FinetuneFrom, ModelConfig, POYO, RunConfig, TrainingPipeline, trainPipeline } from "../../mod.ts";
 * const model = ModelConfig({ cls: POYO, kwargs: { dim: 32, depth: 1, dimHead: 8, numLatents: 4 } });
 * const pre = RunConfig({ name: "pre", model });
 * const ft = RunConfig({ name: "ft", model, initFrom: FinetuneFrom({ run: pre, checkpoint: "last" }) });
 * const stages = await trainPipeline(TrainingPipeline({ name: "pre_then_ft", stages: [pre, ft] }));
 * console.log(stages.map((s) => `${s.run}: ${s.status}`));
 * ```
 */
export async function trainPipeline(
  pipeline: TrainingPipeline,
  options: TrainPipelineOptions = {},
): Promise<TrainOutcome[]> {
  const io = libraryIO(options);
  const cwd = options.cwd ?? Deno.cwd();
  const report = await preflightTrainingPipeline(
    pipeline,
    defaultPreflightContext({ cwd, ...options.preflight }),
  );
  if (!report.ok || !report.pipeline) {
    throw new ConfigError(`pipeline ${report.subject}`, [
      ...report.problems,
      ...report.stages.flatMap((s) => s.problems),
    ]);
  }
  io.out(formatPipelinePreflightReport(report));
  const runner = pipelineRunner();
  if (!runner) {
    throw new Error(
      `Cannot train pipeline ${report.subject} as no pipeline runner is registered in this build: current runners are none; train its stages one by one with train()`,
    );
  }
  const code = await runner({ pipeline: report.pipeline, preflight: report, cwd, io });
  const outcomes: TrainOutcome[] = [];
  for (const stage of report.pipeline.stages) {
    try {
      outcomes.push(await readTrainOutcome(resolve(cwd, stage.runsDir, stage.name)));
    } catch {
      break; // stages after a failed one never started
    }
  }
  if (code !== 0) {
    throw new Error(
      `Cannot finish pipeline ${report.subject} as the pipeline runner exited with code ${code}: stages done are ${
        outcomes.map((o) => `${o.run} (${o.status})`).join(", ") || "none"
      }`,
    );
  }
  return outcomes;
}
