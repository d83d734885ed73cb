/**
 * Output channels of the library functions: progress lines go to `out`, warnings to `err`.
 *
 * @module
 */
import { type CliIO, consoleIO } from "../cli/cli_io.ts";

const quietIO: CliIO = { out: () => {}, err: (text) => console.error(text) };

/** The channels an options object asks for: its `io`, else quiet (warnings only) when `quiet`, else the console. */
export function libraryIO(options: { io?: CliIO; quiet?: boolean }): CliIO {
  return options.io ?? (options.quiet ? quietIO : consoleIO);
}
