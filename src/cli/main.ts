/**
 * `orion <command> [arguments]`: dispatches to the registered commands and turns errors into exit codes
 * (0 ok, 2 usage/config error, 1 runtime failure), without stack traces unless `ORION_DEBUG=1`.
 *
 * @module
 */
import type { PreflightContext } from "../config/preflight.ts";
import "./builtin_commands.ts";
import { debugEnabled, EXIT, reportError } from "./cli_errors.ts";
import { type CliIO, consoleIO } from "./cli_io.ts";
import { type CommandContext, lookupCommand } from "./command_registry.ts";
import { helpText, unknownCommandError } from "./help_command.ts";

/** Options for running the CLI in-process (tests, embedding). */
export interface MainOptions {
  /** Working directory for relative paths; default `Deno.cwd()`. */
  cwd?: string;
  /** Output channels; default stdout/stderr. */
  io?: CliIO;
  /** Pre-flight capabilities layered over the defaults (fake adapters, catalogs, ...). */
  preflight?: Partial<PreflightContext>;
  /** Print stack traces; default `ORION_DEBUG=1`. */
  debug?: boolean;
}

/**
 * Runs `orion` with `args` (what follows `orion` on the command line) and resolves to the exit code.
 *
 * @example
 * ```ts
 * import { main } from "./main.ts";
 * const code = await main(["train", "configs/run.ts", "--dry-run"]);
 * ```
 */
export async function main(args: string[], options: MainOptions = {}): Promise<number> {
  const io = options.io ?? consoleIO;
  const debug = options.debug ?? debugEnabled();
  const [name, ...rest] = args;
  try {
    if (name === undefined) {
      io.err(helpText());
      return EXIT.usageOrConfig;
    }
    if (name === "--help" || name === "-h") {
      io.out(helpText());
      return EXIT.ok;
    }
    const command = lookupCommand(name);
    if (!command) throw unknownCommandError(name);
    if (rest.includes("--help") || rest.includes("-h")) {
      io.out(command.usage);
      return EXIT.ok;
    }
    const context: CommandContext = {
      cwd: options.cwd ?? Deno.cwd(),
      io,
      preflight: options.preflight ?? {},
      debug,
    };
    return await command.run(rest, context);
  } catch (e) {
    return reportError(e, name ?? "", io, debug);
  }
}
