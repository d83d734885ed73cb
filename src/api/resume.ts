/**
 * `resume(target)`: what `orion resume <run | run dir | checkpoint dir>` does, as a function.
 *
 * @module
 */
import { relative } from "node:path";
import "../cli/builtin_commands.ts"; // the training loop, the data pre-flight, model classes, benchmarks
import type { CliIO } from "../cli/cli_io.ts";
import { findResumeTarget } from "../cli/resume_command.ts";
import { TRAINING_UNAVAILABLE } from "../cli/train_command.ts";
import { trainRunner } from "../cli/train_runner.ts";
import type { PreflightContext } from "../config/preflight.ts";
import { defaultPreflightContext } from "../config/preflight_environment.ts";
import { configHash, parseSerializedRunConfig, serializeConfig } from "../config/serialize_config.ts";
import { libraryIO } from "./library_io.ts";
import { readTrainOutcome, type TrainOutcome } from "./run_outcome.ts";
import { preflightOrThrow } from "./train.ts";

/** Options of {@link resume}. */
export interface ResumeOptions {
  /** Directory relative paths resolve against (default `Deno.cwd()`). */
  cwd?: string;
  /** Where run names are looked up (default `"runs"`, relative to `cwd`). */
  runsDir?: string;
  /** Where progress, the pre-flight report and the resume plan go (default: the console). */
  io?: CliIO;
  /** Print warnings only (ignored when `io` is given). */
  quiet?: boolean;
  /** Pre-flight capabilities layered over the defaults. */
  preflight?: Partial<PreflightContext>;
}

/**
 * Continues a run from its record: `target` is a run name under `runsDir`, a run directory (resume from its
 * newest valid checkpoint), or a checkpoint directory `<runDir>/ckpt-step<9 digits>` (resume from it). The
 * config is the run's own `config.json`; the run continues bit-exactly to `training.maxSteps`.
 *
 * @throws {ConfigError} when the target is not a run or pre-flight fails.
 * @example
 * ```ts
 * import { resume } from "../../mod.ts";
 * const outcome = await resume("tiny_demo", { runsDir: "runs", quiet: true });
 * console.log(outcome.status, outcome.step);
 * ```
 */
export async function resume(target: string, options: ResumeOptions = {}): Promise<TrainOutcome> {
  const io = libraryIO(options);
  const cwd = options.cwd ?? Deno.cwd();
  const found = await findResumeTarget(target, options.runsDir ?? "runs", cwd);
  const stored = parseSerializedRunConfig(
    await Deno.readTextFile(found.configFile),
    relative(cwd, found.configFile) || found.configFile,
  );
  const report = await preflightOrThrow(
    stored,
    defaultPreflightContext({ cwd, ...options.preflight, resuming: true, runDir: found.runDir }),
    io,
  );
  const runner = trainRunner();
  if (!runner) throw new Error(TRAINING_UNAVAILABLE);
  const code = await runner({
    config: report.config,
    serializedConfig: serializeConfig(report.config),
    configHash: configHash(report.config),
    runDir: found.runDir,
    resume: { checkpointDir: found.checkpointDir },
    preflight: report,
    cwd,
    io,
  });
  const outcome = await readTrainOutcome(found.runDir);
  if (code !== 0) {
    throw new Error(
      `Cannot finish resuming ${report.config.name} as the training loop exited with code ${code}: current status is ${outcome.status}; see ${found.runDir}`,
    );
  }
  return outcome;
}
