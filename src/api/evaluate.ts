/**
 * `evaluate(target, suites)`: what `orion eval` does, as a function — benchmark suites on a checkpoint (or a
 * run's newest complete checkpoint), with the train/test leakage check and content-addressed results.
 *
 * @module
 */
import { resolve } from "node:path";
import "../cli/builtin_commands.ts"; // the checkpoint model loader and the registered suites
import { resolveEvalTarget } from "../bench/bench_cli.ts";
import { evaluateCheckpoint } from "../bench/evaluate_checkpoint.ts";
import type { BenchmarkResult } from "../bench/results.ts";

/** Options of {@link evaluate}. */
export interface EvaluationOptions {
  /** Directory relative paths resolve against (default `Deno.cwd()`). */
  cwd?: string;
  /** Where run names are looked up (default `"runs"`). */
  runsDir?: string;
  /** Catalog with the held-out data and the results (default `$ORION_HOME/catalog` or `./.orion/catalog`). */
  catalogDir?: string;
  /** Fraction of windows to evaluate, in (0, 1] (default 1). */
  partialSubset?: number;
  /** Seed of the partial subset (default 0). */
  partialSeed?: number;
  /** Recompute even when the catalog holds this result. */
  force?: boolean;
  /** Evaluate even when the held-out data overlaps the training data (the result records the overlap). */
  allowOverlap?: boolean;
  /** Data ledgers of ancestor stages (checkpoint directories or ledger JSON files). */
  ledgers?: string[];
  /** Store results in the catalog (default true). */
  record?: boolean;
}

/** What {@link evaluate} measured. */
export interface EvaluationOutcome {
  /** The evaluated checkpoint directory. */
  checkpointDir: string;
  /** Its content hash. */
  checkpointHash: string;
  /** Its step. */
  step: number;
  /** Its run's name (the run directory's name). */
  run: string;
  /** One result per suite that succeeded, in the order asked. */
  results: BenchmarkResult[];
  /** Suite keys whose result came from the catalog without recomputation. */
  cached: string[];
  /** Suites that failed (e.g. refused for train/test leakage), with the reason. */
  failures: { suite: string; message: string }[];
}

/**
 * Evaluates benchmark suites on a checkpoint. `target` is a checkpoint directory, a run directory or a run
 * name under `runsDir` (then its newest complete checkpoint). A suite that fails (for instance because its
 * held-out data overlaps the training data) is listed in `failures` without stopping the others.
 *
 * @example
 * ```ts
 * import { evaluate } from "../../mod.ts";
 * const out = await evaluate("runs/tiny_demo", "cognitive_load_eval@1", { partialSubset: 0.5 });
 * for (const r of out.results) console.log(r.suite_key, r.metrics.accuracy.value);
 * for (const f of out.failures) console.error(f.suite, f.message);
 * ```
 */
export async function evaluate(
  target: string,
  suites: string | readonly string[],
  options: EvaluationOptions = {},
): Promise<EvaluationOutcome> {
  const cwd = options.cwd ?? Deno.cwd();
  const dir = await resolveEvalTarget(target, options.runsDir ?? "runs", cwd);
  const out = await evaluateCheckpoint(dir, typeof suites === "string" ? [suites] : [...suites], {
    catalogDir: options.catalogDir === undefined ? undefined : resolve(cwd, options.catalogDir),
    partialSubset: options.partialSubset,
    partialSeed: options.partialSeed,
    force: options.force,
    allowOverlap: options.allowOverlap,
    ledgers: (options.ledgers ?? []).map((l) => resolve(cwd, l)),
    record: options.record ?? true,
  });
  return {
    checkpointDir: out.checkpointDir,
    checkpointHash: out.checkpointHash,
    step: out.step,
    run: out.run,
    results: out.outcomes.map((o) => o.result),
    cached: out.outcomes.filter((o) => o.cached).map((o) => o.result.suite_key),
    failures: out.failures.map((f) => ({ suite: f.suite, message: f.message })),
  };
}
