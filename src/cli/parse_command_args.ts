/**
 * `node:util` `parseArgs` with errors turned into {@link UsageError}s (exit code 2).
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "./cli_errors.ts";

/** Parses command arguments strictly (unknown flags are usage errors naming the flag). */
export function parseCommandArgs<O extends NonNullable<ParseArgsConfig["options"]>>(
  args: string[],
  options: O,
  usage: string,
) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    const message = (e as Error).message.replace(/\. To specify a positional argument.*$/s, "");
    throw new UsageError(
      `Cannot parse the arguments as ${message.charAt(0).toLowerCase()}${message.slice(1)}`,
      usage,
    );
  }
}
