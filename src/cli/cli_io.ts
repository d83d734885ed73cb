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

/** Writes to the process's stdout and stderr. */
export const consoleIO: CliIO = {
  out: (text) => console.log(text),
  err: (text) => console.error(text),
};

/** An in-memory {@link CliIO} that records everything written (for tests and embedding). */
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
