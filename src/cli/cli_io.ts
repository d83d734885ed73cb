/**
 * Where CLI commands write: injectable so commands can run in-process in tests.
 *
 * @module
 */

/** Output channels of a command. */
export interface CliIO {
  /** Normal output (stdout). */
  out(text: string): void;
  /** Diagnostics and errors (stderr). */
  err(text: string): void;
}

/**
 * Writes to the process's stdout and stderr.
 *
 * @example
 * ```ts
 * import { consoleIO } from "./cli_io.ts";
 * consoleIO.out("to stdout");
 * consoleIO.err("to stderr");
 * ```
 */
export const consoleIO: CliIO = {
  out: (text) => console.log(text),
  err: (text) => console.error(text),
};

/**
 * An in-memory {@link CliIO} that records everything written (for tests and embedding).
 *
 * @example
 * ```ts
 * import { recordingIO } from "./cli_io.ts";
 * import { main } from "./main.ts";
 * const io = recordingIO();
 * await main(["--help"], { io });
 * console.log(io.stdout.join("\n"));
 * ```
 */
export function recordingIO(): CliIO & { stdout: string[]; stderr: string[]; text(): string } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    out: (t) => void stdout.push(t),
    err: (t) => void stderr.push(t),
    text: () => [...stdout, ...stderr].join("\n"),
  };
}
