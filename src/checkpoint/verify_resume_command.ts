/**
 * `orion verify-resume <config> --steps N [--kills K] [--seed S] ...`: trains the config twice — once
 * uninterrupted, once SIGKILLed at K random points and resumed after each — and compares the final weights
 * (see `verify_resume.ts`). Exit 0 when bit-identical, 1 when not, 2 on usage errors.
 *
 * @module
 */
import { EXIT, UsageError } from "../cli/cli_errors.ts";
import type { Command, CommandContext } from "../cli/command_registry.ts";
import { parseCommandArgs } from "../cli/parse_command_args.ts";
import { formatVerifyResumeReport, verifyResume } from "./verify_resume.ts";

/** Usage text of `orion verify-resume`. */
export const VERIFY_RESUME_USAGE =
  `orion verify-resume <config.ts> --steps N [--kills K] [--seed S] [--ckpt-every M] [--set path=value]...
                    [--work-dir dir] [--keep] [--timeout-s T] [--json]

Trains the config for N steps without interruption, then again with K SIGKILLs at random points (at
random steps, at random times, and during checkpoint writes) each followed by \`orion resume\`, and
compares the final checkpoints: weights, EMA, optimizer moments and step, scheduler, RNG, loader cursor
and data ledger must be byte-identical, and metrics.jsonl must log every step once with the same values.

  --steps N        optimizer steps of both runs (training.maxSteps; ≥ 2)
  --kills K        SIGKILLs of the second run (default 3; at most N − 1)
  --seed S         seed of the kill plan (default 0)
  --ckpt-every M   training.ckptEveryNSteps of both runs (default: about two checkpoints between kills)
  --set path=value extra override for both runs (benchmarks are always off)
  --work-dir dir   where the two runs go (default: a temporary directory)
  --keep           keep the runs, their logs and their catalog rows
  --timeout-s T    wall-clock limit of one training process (default 600)
  --json           print the report as JSON

Exit codes: 0 bit-identical, 1 different (or a run failed), 2 usage or config error.`;

function integer(value: string | undefined, flag: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) {
    throw new UsageError(
      `Cannot use ${flag} as it must be an integer ≥ ${min}: current value is ${value}`,
      VERIFY_RESUME_USAGE,
    );
  }
  return n;
}

async function runVerifyResume(args: string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    steps: { type: "string" },
    kills: { type: "string" },
    seed: { type: "string" },
    "ckpt-every": { type: "string" },
    set: { type: "string", multiple: true },
    "work-dir": { type: "string" },
    keep: { type: "boolean" },
    "timeout-s": { type: "string" },
    json: { type: "boolean" },
  }, VERIFY_RESUME_USAGE);
  if (positionals.length !== 1) {
    throw new UsageError(
      `Cannot verify resume without exactly one config file: current arguments are ${
        positionals.length === 0 ? "none" : positionals.join(" ")
      }`,
      VERIFY_RESUME_USAGE,
    );
  }
  const steps = integer(values.steps, "--steps", 2);
  if (steps === undefined) {
    throw new UsageError("Cannot verify resume without --steps N: it is required", VERIFY_RESUME_USAGE);
  }
  const kills = integer(values.kills, "--kills", 0) ?? 3;
  if (kills > steps - 1) {
    throw new UsageError(
      `Cannot plan ${kills} kills in ${steps} steps as each kill needs its own step: current --kills is ${kills}`,
      VERIFY_RESUME_USAGE,
    );
  }
  const report = await verifyResume({
    config: positionals[0],
    steps,
    kills,
    seed: integer(values.seed, "--seed", 0) ?? 0,
    ckptEvery: integer(values["ckpt-every"], "--ckpt-every", 1),
    set: values.set ?? [],
    cwd: ctx.cwd,
    workDir: values["work-dir"],
    keep: values.keep ?? false,
    processTimeoutMs: (integer(values["timeout-s"], "--timeout-s", 1) ?? 600) * 1000,
    onProgress: values.json ? undefined : (line) => ctx.io.err(line),
  });
  if (values.json) ctx.io.out(JSON.stringify(report, null, 2));
  else ctx.io.out(formatVerifyResumeReport(report).join("\n"));
  return report.identical ? EXIT.ok : EXIT.runtimeFailure;
}

/** The `orion verify-resume` command. */
export const verifyResumeCommand: Command = {
  name: "verify-resume",
  summary: "kill -9 a run at random points, resume it, and check the final weights are bit-identical",
  usage: VERIFY_RESUME_USAGE,
  run: runVerifyResume,
};
