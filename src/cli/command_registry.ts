/**
 * The `orion` command registry. Every subsystem plugs its commands in with {@link registerCommand}; `orion help`
 * lists whatever is registered. `--help`/`-h` on any command prints its usage (handled by the dispatcher).
 *
 * @module
 */
import type { PreflightContext } from "../config/preflight.ts";
import type { CliIO } from "./cli_io.ts";

/** What a command receives besides its arguments. */
export interface CommandContext {
  /** Working directory for relative paths (config files, runsDir). */
  cwd: string;
  /** Output channels. */
  io: CliIO;
  /** Pre-flight capabilities to use on top of the defaults (tests inject fakes here). */
  preflight: Partial<PreflightContext>;
  /** `ORION_DEBUG=1`: print stack traces. */
  debug: boolean;
}

/** One `orion <name>` command. */
export interface Command {
  /** The word after `orion`, e.g. `"train"`. */
  name: string;
  /** One line for `orion help`. */
  summary: string;
  /** Full usage text for `orion <name> --help`. */
  usage: string;
  /**
   * Runs the command with the arguments after its name; returns the exit code (0 ok, 2 usage/config error,
   * 1 runtime failure). Throwing `UsageError`/`ConfigError` gives 2, other errors 1.
   */
  run(args: string[], context: CommandContext): Promise<number>;
}

const commands = new Map<string, Command>();

/**
 * Registers a command. Registering the same object again is a no-op; another command under a taken name is
 * an error.
 *
 * @example
 * ```ts
 * import { registerCommand } from "./command_registry.ts";
 * registerCommand({
 *   name: "hello",
 *   summary: "print a greeting",
 *   usage: "orion hello",
 *   run: async (_args, ctx) => (ctx.io.out("hello"), 0),
 * });
 * ```
 */
export function registerCommand(command: Command): void {
  if (!/^[a-z][a-z0-9-]*$/.test(command.name)) {
    throw new Error(`Cannot register command "${command.name}" as names are lowercase words (a-z, 0-9, -)`);
  }
  const existing = commands.get(command.name);
  if (existing && existing !== command) {
    throw new Error(
      `Cannot register command "${command.name}" as that name is already registered by another module`,
    );
  }
  commands.set(command.name, command);
}

/** The command registered under `name`, if any. */
export function lookupCommand(name: string): Command | undefined {
  return commands.get(name);
}

/**
 * Every registered command, sorted by name.
 *
 * @example
 * ```ts
 * import { listCommands } from "./command_registry.ts";
 * for (const c of listCommands()) console.log(`orion ${c.name}: ${c.summary}`);
 * ```
 */
export function listCommands(): Command[] {
  return [...commands.values()].sort((a, b) => a.name.localeCompare(b.name));
}
