/**
 * Exit codes and how the CLI reports errors: config and usage errors exit 2, runtime failures exit 1, stack
 * traces only with `ORION_DEBUG=1`, and missing Deno permissions name the flag or task to use.
 *
 * @module
 */
import { ConfigError } from "../config/problem.ts";
import type { CliIO } from "./cli_io.ts";

/**
 * Exit codes of every `orion` command.
 *
 * @example
 * ```ts
 * import { EXIT } from "./cli_errors.ts";
 * import { main } from "./main.ts";
 * if ((await main(["train", "configs/run.ts", "--dry-run"])) === EXIT.usageOrConfig) console.error("fix the config");
 * ```
 */
export const EXIT = { ok: 0, runtimeFailure: 1, usageOrConfig: 2 } as const;

/**
 * A command was called wrongly (unknown flag, missing argument, ...). Exit code 2.
 *
 * @example
 * ```ts
 * import { UsageError } from "./cli_errors.ts";
 * throw new UsageError("Cannot run `orion hello` with 2 names: current arguments are a b", "orion hello <name>");
 * ```
 */
export class UsageError extends Error {
  /** The usage text of the command, shown after the message. */
  readonly usage?: string;
  /** A usage error with the message and the command's usage text. */
  constructor(message: string, usage?: string) {
    super(message);
    this.name = "UsageError";
    this.usage = usage;
  }
}

/** True when `ORION_DEBUG=1` (read only when Deno may read that variable; never prompts). */
export function debugEnabled(): boolean {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: "ORION_DEBUG" }).state !== "granted") {
      return false;
    }
    return Deno.env.get("ORION_DEBUG") === "1";
  } catch {
    return false;
  }
}

/** True for Deno's missing-permission errors. */
export function isPermissionError(e: unknown): e is Error {
  return e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied;
}

/** The `--allow-*` flag a Deno permission error asks for, if it names one. */
export function permissionFlagOf(e: Error): string | undefined {
  const m = e.message.match(/--allow-[a-z-]+/);
  if (m) return m[0];
  const kind = e.message.match(/Requires (\w+) access/);
  return kind ? `--allow-${kind[1]}` : undefined;
}

/** The message for a missing permission: which flag, and the `deno task` that grants everything orion needs. */
export function permissionHint(e: Error, command: string): string {
  const flag = permissionFlagOf(e) ?? "the missing --allow-* flag";
  const cause = e.message.split("\n")[0];
  const task = command === "train"
    ? "deno task train <config.ts> [--dry-run]"
    : `deno task orion ${command || "<command>"} ...`;
  return [
    `Cannot run \`orion ${command}\` as Deno did not grant a permission it needs: ${cause}`,
    `  fix: run it as \`${task}\` (the tasks in deno.json grant what orion needs),`,
    `       or add ${flag} to your \`deno run\` flags (e.g. deno run --allow-read --allow-write --allow-env --allow-sys --allow-run mod.ts ${
      command || "<command>"
    } ...)`,
  ].join("\n");
}

/** Reports an error thrown by a command and returns its exit code. */
export function reportError(e: unknown, command: string, io: CliIO, debug: boolean): number {
  if (e instanceof ConfigError) {
    io.err(e.message);
    if (debug && e.cause instanceof Error && e.cause.stack) io.err(e.cause.stack);
    return EXIT.usageOrConfig;
  }
  if (e instanceof UsageError) {
    io.err(`orion ${command}: ${e.message}`);
    if (e.usage) io.err(`usage: ${e.usage}`);
    return EXIT.usageOrConfig;
  }
  if (isPermissionError(e)) {
    io.err(permissionHint(e, command));
    if (debug && e.stack) io.err(e.stack);
    return EXIT.usageOrConfig;
  }
  const message = e instanceof Error ? e.message : String(e);
  io.err(`orion ${command} failed: ${message}`);
  if (debug && e instanceof Error && e.stack) io.err(e.stack);
  else io.err("(set ORION_DEBUG=1 to see the stack trace)");
  return EXIT.runtimeFailure;
}
