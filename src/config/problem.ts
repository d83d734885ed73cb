/**
 * `Problem`: one thing wrong with a config (or its environment), with the field path, the offending value and
 * the fix; `ConfigError`: an error carrying every problem found, so they can be reported all at once.
 *
 * @module
 */

/** How bad a problem is: errors stop the run, warnings are printed and the run goes on. */
export type ProblemSeverity = "error" | "warning";

/** One problem found in a config or its environment. */
export interface Problem {
  /** Dotted field path from the config root, e.g. `training.lr` or `model.kwargs.dim` (`""` = the whole config). */
  path: string;
  /** The offending value as found (`undefined` when the field is missing). */
  value: unknown;
  /** What is wrong, in the form "Cannot X as Y: current value is Z". */
  message: string;
  /** How to fix it (a concrete edit or command). */
  fix: string;
  /** `"error"` (default when built with {@link problem}) stops the run; `"warning"` does not. */
  severity: ProblemSeverity;
}

/**
 * Builds a problem (severity `"error"` unless given).
 *
 * @example
 * ```ts
 * import { problem } from "./problem.ts";
 * const p = problem("training.lr", -1, "Cannot use training.lr as it must be positive: current value is -1", "set training.lr > 0");
 * console.log(p.severity); // "error"
 * ```
 */
export function problem(
  path: string,
  value: unknown,
  message: string,
  fix: string,
  severity: ProblemSeverity = "error",
): Problem {
  return { path, value, message, fix, severity };
}

/** Only the problems that stop a run. */
export function errorsOf(problems: readonly Problem[]): Problem[] {
  return problems.filter((p) => p.severity === "error");
}

/**
 * An invalid config: carries every problem found (not just the first). Exit code 2 in the CLI.
 *
 * @example
 * ```ts
 * import { ConfigError } from "./problem.ts";
 * import { parseRunConfig } from "./run_config.ts";
 * try {
 *   parseRunConfig({ name: "bad name!", model: { cls: "POYO" } });
 * } catch (e) {
 *   if (e instanceof ConfigError) for (const p of e.problems) console.log(p.path, p.message);
 * }
 * ```
 */
export class ConfigError extends Error {
  /** Every problem found, errors first. */
  readonly problems: Problem[];
  /** What was being validated, e.g. `"RunConfig"`, `"TrainingConfig"`, `"configs/run.ts"`. */
  readonly subject: string;

  /** Collects `problems` (errors first) about `subject` into one error whose message lists them. */
  constructor(subject: string, problems: Problem[]) {
    const errors = errorsOf(problems);
    const shown = errors.length > 0 ? errors : problems;
    super(
      `Cannot accept ${subject} as it has ${shown.length} problem${shown.length === 1 ? "" : "s"}:\n` +
        formatProblems(shown),
    );
    this.name = "ConfigError";
    this.subject = subject;
    this.problems = [...errors, ...problems.filter((p) => p.severity !== "error")];
  }
}

/** Formats a value for a message: JSON when possible, class/function names for callables, `missing` for undefined. */
export function formatValue(value: unknown, maxLength = 80): string {
  if (value === undefined) return "missing";
  if (typeof value === "function") {
    const name = (value as { modelName?: unknown }).modelName ?? value.name;
    return typeof name === "string" && name ? `<class ${name}>` : "<function>";
  }
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  let text: string;
  try {
    text = JSON.stringify(value, (_k, v) => typeof v === "function" ? formatValue(v) : v) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > maxLength ? `${text.slice(0, maxLength - 1)}…` : text;
}

/** Formats problems as an indented block: one entry per problem with its path, value, message and fix. */
export function formatProblems(problems: readonly Problem[]): string {
  return problems.map((p) => {
    const where = p.path === "" ? "(config)" : p.path;
    return `  ${p.severity} at ${where} = ${formatValue(p.value)}\n    ${p.message}\n    fix: ${p.fix}`;
  }).join("\n");
}
