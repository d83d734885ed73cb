/**
 * `orion pipeline <pipeline.ts> [--set path=value]... [--dry-run] [--print-config]`, and the pipeline
 * runner behind `orion train <pipeline.ts>` (registered at import with `registerPipelineRunner`).
 *
 * @module
 */
import { applyOverrides, parseOverrides } from "../config/config_overrides.ts";
import { defaultPreflightContext } from "../config/preflight_environment.ts";
import { serializeConfig } from "../config/serialize_config.ts";
import { EXIT, UsageError } from "../cli/cli_errors.ts";
import { type Command, type CommandContext, registerCommand } from "../cli/command_registry.ts";
import { loadConfigModule } from "../cli/load_config_module.ts";
import { parseCommandArgs } from "../cli/parse_command_args.ts";
import { pipelineRunner, registerPipelineRunner } from "../cli/train_runner.ts";
import { formatPipelinePreflight, preflightPipeline } from "./pipeline_preflight.ts";
import { runPipeline } from "./pipeline_runner.ts";

const USAGE = `orion pipeline <pipeline.ts> [--set path=value]... [--dry-run] [--print-config]

Loads the module's default export (a TrainingPipeline), runs pre-flight on the whole pipeline (every stage's
config; each initFrom names an earlier stage or an existing run; weightOverrides match real parameters;
parameter shapes load from the source; what each stage will do), then runs the stages in order.

Resumable: run it again after an interruption. A stage that finished with the same config is skipped, an
interrupted one resumes from its latest valid checkpoint; a stage directory holding another run is an error.

  --set path=value   override a field, e.g. --set stages.1.training.maxSteps=200
  --dry-run          pre-flight only; starts nothing
  --print-config     print the resolved pipeline as canonical JSON
  -h, --help         show this help

Exit codes: 0 every stage finished, 1 a stage stopped early or failed (rerun to resume), 2 usage or config
error (pre-flight failed). Lineage: \`orion lineage <run|checkpoint>\`.`;

registerPipelineRunner(async (req) => {
  const result = await runPipeline(req.pipeline, { cwd: req.cwd, io: req.io });
  return result.status === "finished" ? EXIT.ok : EXIT.runtimeFailure;
});

async function runPipelineCommand(args: string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    set: { type: "string", multiple: true },
    "dry-run": { type: "boolean" },
    "print-config": { type: "boolean" },
  }, USAGE);
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? "Cannot run a pipeline without a pipeline file: none was given"
        : `Cannot run ${positionals.length} pipeline files at once: current arguments are ${
          positionals.join(" ")
        }`,
      USAGE,
    );
  }
  const loaded = await loadConfigModule(positionals[0], ctx.cwd);
  if (!loaded.isPipeline) {
    throw new UsageError(
      `Cannot run ${
        positionals[0]
      } as a pipeline as its default export is a single run config (it has no stages)`,
      "train it with `orion train " + positionals[0] +
        "`, or export default TrainingPipeline({ name, stages })",
    );
  }
  const raw = applyOverrides(loaded.value, parseOverrides(values.set ?? []));
  const report = await preflightPipeline(raw, defaultPreflightContext({ cwd: ctx.cwd, ...ctx.preflight }));
  (report.ok ? ctx.io.out : ctx.io.err)(formatPipelinePreflight(report));
  if (!report.ok || !report.pipeline) return EXIT.usageOrConfig;
  if (values["print-config"]) ctx.io.out(serializeConfig(report.pipeline));
  if (values["dry-run"]) {
    ctx.io.out(`Dry run: pre-flight passed for pipeline ${report.subject}; nothing was started.`);
    return EXIT.ok;
  }
  const runner = pipelineRunner();
  if (!runner) {
    ctx.io.err("Cannot run the pipeline as no pipeline runner is registered (registerPipelineRunner)");
    return EXIT.runtimeFailure;
  }
  return await runner({ pipeline: report.pipeline, preflight: report, cwd: ctx.cwd, io: ctx.io });
}

/** The `orion pipeline` command. */
export const pipelineCommand: Command = {
  name: "pipeline",
  summary: "pre-flight and run a multi-stage TrainingPipeline, resumably: orion pipeline <pipeline.ts>",
  usage: USAGE,
  run: runPipelineCommand,
};

registerCommand(pipelineCommand);
