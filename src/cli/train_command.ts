/**
 * `orion train <config.ts> [--set path=value]... [--dry-run] [--print-config]`.
 *
 * @module
 */
import { resolve } from "node:path";
import { applyOverrides, parseOverrides } from "../config/config_overrides.ts";
import { preflightPipeline } from "../pipeline/pipeline_preflight.ts";
import {
  formatPipelinePreflightReport,
  formatPreflightReport,
  preflightRunConfig,
} from "../config/preflight.ts";
import { defaultPreflightContext } from "../config/preflight_environment.ts";
import { configHash, serializeConfig } from "../config/serialize_config.ts";
import { EXIT, UsageError } from "./cli_errors.ts";
import { type Command, type CommandContext, registerCommand } from "./command_registry.ts";
import { loadConfigModule } from "./load_config_module.ts";
import { parseCommandArgs } from "./parse_command_args.ts";
import { pipelineRunner, trainRunner } from "./train_runner.ts";

const USAGE = `orion train <config.ts> [--set path=value]... [--dry-run] [--print-config]

Loads the config module's default export (a RunConfig or a TrainingPipeline), applies --set overrides,
runs pre-flight (every problem at once, with field path, value and fix) and starts training.

  --set path=value   override a field; the value is parsed as JSON when it parses, else taken as a string
                     e.g. --set training.lr=1e-4 --set model.kwargs.depth=4 --set name=my_run
  --dry-run          validate and run pre-flight only (prints the memory estimate); starts nothing
  --print-config     print the resolved config as canonical JSON (with config_version and hash)
  -h, --help         show this help

Exit codes: 0 ok, 2 usage or config error (pre-flight failed), 1 runtime failure.
Run through \`deno task train <config.ts>\` (or \`deno task orion train ...\`) for the right Deno permissions.`;

/** Notice printed when no training loop has registered with `registerTrainRunner`. */
export const TRAINING_UNAVAILABLE =
  "Cannot start training as the training loop is not available in this build: no train runner is registered (the training-loop module registers one with registerTrainRunner)";

async function runTrain(args: string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    set: { type: "string", multiple: true },
    "dry-run": { type: "boolean" },
    "print-config": { type: "boolean" },
  }, USAGE);
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? "Cannot train without a config file: none was given"
        : `Cannot train from ${positionals.length} config files at once: current arguments are ${
          positionals.join(" ")
        }`,
      USAGE,
    );
  }
  const overrides = parseOverrides(values.set ?? []);
  const loaded = await loadConfigModule(positionals[0], ctx.cwd);
  const raw = applyOverrides(loaded.value, overrides);
  const preflight = defaultPreflightContext({ cwd: ctx.cwd, ...ctx.preflight });

  if (loaded.isPipeline) {
    // The pipeline pre-flight knows which stage directories are its own (finished or resumable stages).
    const report = await preflightPipeline(raw, preflight);
    (report.ok ? ctx.io.out : ctx.io.err)(formatPipelinePreflightReport(report));
    if (!report.ok || !report.pipeline) return EXIT.usageOrConfig;
    if (values["print-config"]) ctx.io.out(serializeConfig(report.pipeline));
    if (values["dry-run"]) {
      ctx.io.out(`Dry run: pre-flight passed for pipeline ${report.subject}; nothing was started.`);
      return EXIT.ok;
    }
    const runner = pipelineRunner();
    if (!runner) {
      ctx.io.err(
        "Cannot run the pipeline as the pipeline runner is not available in this build: none is registered (registerPipelineRunner)\n  fix: use --dry-run to validate it, or train its stages one by one",
      );
      return EXIT.runtimeFailure;
    }
    return await runner({ pipeline: report.pipeline, preflight: report, cwd: ctx.cwd, io: ctx.io });
  }

  const report = await preflightRunConfig(raw, preflight);
  (report.ok ? ctx.io.out : ctx.io.err)(formatPreflightReport(report));
  if (!report.ok || !report.config) return EXIT.usageOrConfig;
  const config = report.config;
  const serializedConfig = serializeConfig(config);
  if (values["print-config"]) ctx.io.out(serializedConfig);
  const hash = configHash(config);
  if (values["dry-run"]) {
    ctx.io.out(`Dry run: pre-flight passed for run ${config.name} (config ${hash}); nothing was started.`);
    return EXIT.ok;
  }
  const runner = trainRunner();
  if (!runner) {
    ctx.io.err(`${TRAINING_UNAVAILABLE}\n  fix: use --dry-run to validate the config`);
    return EXIT.runtimeFailure;
  }
  return await runner({
    config,
    serializedConfig,
    configHash: hash,
    runDir: resolve(ctx.cwd, config.runsDir, config.name),
    resume: null,
    preflight: report,
    cwd: ctx.cwd,
    io: ctx.io,
  });
}

/** The `orion train` command. */
export const trainCommand: Command = {
  name: "train",
  summary: "validate a config (pre-flight) and train it: orion train <config.ts> [--set k=v]... [--dry-run]",
  usage: USAGE,
  run: runTrain,
};

registerCommand(trainCommand);
