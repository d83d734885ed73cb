/**
 * `orion resume [run | run dir | checkpoint dir] [--runs-dir dir] [--dry-run]`: continue a run from its record.
 *
 * The target is a checkpoint directory (`<runDir>/ckpt-step<9 digits>`: resume from it), a run directory
 * (holding `config.json` or checkpoints: resume from its latest checkpoint), or a run name under `--runs-dir`
 * (default `runs`); with no target, the run directory under `--runs-dir` modified last. The config is read from
 * `<runDir>/config.json`, else from the checkpoint's `config.json`.
 *
 * @module
 */
import { basename, dirname, join, relative, resolve } from "node:path";
import { parseCheckpointDirName } from "../checkpoint/checkpoint_layout.ts";
import { formatPreflightReport, preflightRunConfig } from "../config/preflight.ts";
import { defaultPreflightContext } from "../config/preflight_environment.ts";
import { ConfigError, problem } from "../config/problem.ts";
import {
  configHash,
  parseSerializedRunConfig,
  RUN_CONFIG_FILE,
  serializeConfig,
} from "../config/serialize_config.ts";
import { EXIT } from "./cli_errors.ts";
import { type Command, type CommandContext, registerCommand } from "./command_registry.ts";
import { parseCommandArgs } from "./parse_command_args.ts";
import { TRAINING_UNAVAILABLE } from "./train_command.ts";
import { trainRunner } from "./train_runner.ts";

const USAGE = `orion resume [run-name | run-dir | checkpoint-dir] [--runs-dir dir] [--dry-run]

Continues a run from its record after pre-flight.
  run-name         a run under --runs-dir: resume from its latest checkpoint
  run-dir          a run directory (holds ${RUN_CONFIG_FILE} or ckpt-step* checkpoints)
  checkpoint-dir   <run-dir>/ckpt-step<9 digits>: resume from that checkpoint
  (none)           the run directory under --runs-dir modified last
  --runs-dir dir   where run names are looked up (default: runs)
  --dry-run        pre-flight only; starts nothing
  -h, --help       show this help

Exit codes: 0 ok, 2 usage or config error, 1 runtime failure.`;

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Where a resume starts: the run directory, optionally a checkpoint inside it, and the config record to read. */
export interface ResumeTarget {
  runDir: string;
  /** The checkpoint directory asked for; null = the training loop picks the latest valid one. */
  checkpointDir: string | null;
  /** The serialized config: `<runDir>/config.json`, else the checkpoint's (or the newest checkpoint's). */
  configFile: string;
}

async function checkpointDirsOf(runDir: string): Promise<string[]> {
  const found: { dir: string; step: number }[] = [];
  for await (const entry of Deno.readDir(runDir)) {
    const step = entry.isDirectory ? parseCheckpointDirName(entry.name) : null;
    if (step !== null) found.push({ dir: join(runDir, entry.name), step });
  }
  return found.sort((a, b) => b.step - a.step).map((c) => c.dir);
}

async function isRunDir(dir: string): Promise<boolean> {
  if (!(await isDirectory(dir))) return false;
  return (await isFile(join(dir, RUN_CONFIG_FILE))) || (await checkpointDirsOf(dir)).length > 0;
}

async function configFileOf(runDir: string, checkpointDir: string | null): Promise<string> {
  const candidates = [join(runDir, RUN_CONFIG_FILE)];
  if (checkpointDir) candidates.push(join(checkpointDir, RUN_CONFIG_FILE));
  for (const dir of await checkpointDirsOf(runDir)) candidates.push(join(dir, RUN_CONFIG_FILE));
  for (const file of candidates) if (await isFile(file)) return file;
  throw new ConfigError("orion resume", [problem(
    "",
    runDir,
    `Cannot resume ${runDir} as neither it nor its checkpoints hold ${RUN_CONFIG_FILE}`,
    "restore the run record, or start the run again with `orion train`",
  )]);
}

/**
 * Finds the run to resume (see the module docs): a checkpoint directory (`ckpt-step<9 digits>`) resumes from
 * that checkpoint; a run directory (holding `config.json` or checkpoints), or a run name under `runsDir`,
 * from its latest. Throws a `ConfigError` (exit 2) naming where it looked.
 */
export async function findResumeTarget(
  target: string | undefined,
  runsDir: string,
  cwd: string,
): Promise<ResumeTarget> {
  const runsRoot = resolve(cwd, runsDir);
  const done = async (runDir: string, checkpointDir: string | null): Promise<ResumeTarget> => ({
    runDir,
    checkpointDir,
    configFile: await configFileOf(runDir, checkpointDir),
  });
  if (target === undefined) {
    let latest: { dir: string; mtime: number } | undefined;
    if (await isDirectory(runsRoot)) {
      for await (const entry of Deno.readDir(runsRoot)) {
        const dir = join(runsRoot, entry.name);
        if (!entry.isDirectory || !(await isRunDir(dir))) continue;
        const mtime = (await Deno.stat(dir)).mtime?.getTime() ?? 0;
        if (!latest || mtime > latest.mtime) latest = { dir, mtime };
      }
    }
    if (!latest) {
      throw new ConfigError("orion resume", [problem(
        "",
        runsDir,
        `Cannot resume the latest run as ${runsRoot} holds no run directory`,
        "name the run (orion resume <run>) or pass --runs-dir <dir>",
      )]);
    }
    return await done(latest.dir, null);
  }
  const asPath = resolve(cwd, target);
  if (await isDirectory(asPath)) {
    if (parseCheckpointDirName(basename(asPath)) !== null) return await done(dirname(asPath), asPath);
    if (await isRunDir(asPath)) return await done(asPath, null);
    throw new ConfigError("orion resume", [problem(
      "",
      target,
      `Cannot resume from ${asPath} as it is neither a run directory (with ${RUN_CONFIG_FILE} or ckpt-step* checkpoints) nor a checkpoint directory`,
      "pass a run directory (<runsDir>/<name>), a checkpoint directory inside one, or a run name",
    )]);
  }
  const byName = join(runsRoot, target);
  if (await isRunDir(byName)) return await done(byName, null);
  throw new ConfigError("orion resume", [problem(
    "",
    target,
    `Cannot resume ${JSON.stringify(target)} as neither ${asPath} nor ${byName} is a run directory`,
    "check the run name (and --runs-dir), or pass the run directory's path",
  )]);
}

async function runResume(args: string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    "runs-dir": { type: "string" },
    "dry-run": { type: "boolean" },
  }, USAGE);
  if (positionals.length > 1) {
    throw new ConfigError("orion resume", [problem(
      "",
      positionals,
      `Cannot resume ${positionals.length} runs at once: current arguments are ${positionals.join(" ")}`,
      "resume one run per command",
    )]);
  }
  const target = await findResumeTarget(positionals[0], values["runs-dir"] ?? "runs", ctx.cwd);
  const file = target.configFile;
  const stored = parseSerializedRunConfig(await Deno.readTextFile(file), relative(ctx.cwd, file) || file);
  const report = await preflightRunConfig(
    stored,
    defaultPreflightContext({ cwd: ctx.cwd, ...ctx.preflight, resuming: true, runDir: target.runDir }),
  );
  (report.ok ? ctx.io.out : ctx.io.err)(formatPreflightReport(report));
  if (!report.ok || !report.config) return EXIT.usageOrConfig;
  if (values["dry-run"]) {
    ctx.io.out(
      `Dry run: pre-flight passed for resuming run ${stored.name} from ${
        target.checkpointDir ?? "its latest checkpoint"
      }; nothing was started.`,
    );
    return EXIT.ok;
  }
  const runner = trainRunner();
  if (!runner) {
    ctx.io.err(`${TRAINING_UNAVAILABLE}\n  fix: use --dry-run to check the run record`);
    return EXIT.runtimeFailure;
  }
  return await runner({
    config: report.config,
    serializedConfig: serializeConfig(report.config),
    configHash: configHash(report.config),
    runDir: target.runDir,
    resume: { checkpointDir: target.checkpointDir },
    preflight: report,
    cwd: ctx.cwd,
    io: ctx.io,
  });
}

/** The `orion resume` command. */
export const resumeCommand: Command = {
  name: "resume",
  summary: "continue a run from its record: orion resume [run | run dir | checkpoint dir]",
  usage: USAGE,
  run: runResume,
};

registerCommand(resumeCommand);
