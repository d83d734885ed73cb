/**
 * Evaluating one suite on one model: open the held-out data, check it against the model's training
 * ledger, look the content address up in the catalog, measure when needed, record.
 *
 * @module
 */
import type { LedgerOverlap } from "../data/ledger.ts";
import type { Catalog } from "../ursa/catalog.ts";
import type { BenchModel } from "./bench_model.ts";
import { type BenchData, openBenchData } from "./bench_data.ts";
import { checkLeakage } from "./leakage.ts";
import { validatePartialSubset } from "./partial_subset.ts";
import { getBenchmark } from "./registry.ts";
import {
  type BenchmarkResult,
  benchmarkResultKey,
  findBenchmarkResult,
  parseBenchmarkResult,
  recordBenchmarkResult,
} from "./results.ts";

/** Options of {@link evaluateBenchmark}. */
export interface EvaluateOptions {
  /** Catalog with the held-out data and the `benchmark_results` table (needed unless `data` is given and `record` is false). */
  catalog?: Catalog;
  /** Fraction of windows, in (0, 1] (default 1). */
  partialSubset?: number;
  /** Seed of the partial subset (default 0). */
  partialSeed?: number;
  /** Recompute even when the catalog holds a result with the same content address. */
  force?: boolean;
  /** Evaluate even when the held-out data overlaps the training data (the result records it). */
  allowOverlap?: boolean;
  /** Held-out data opened beforehand (tests, or several calls on one dataset); default: opened from `catalog`. */
  data?: BenchData;
  /** Store the result in the catalog (default true when a catalog is given). */
  record?: boolean;
  /** Run name and step of the evaluated checkpoint (stored with the result). */
  run?: string | null;
  step?: number | null;
}

/** What {@link evaluateBenchmark} returns. */
export interface EvaluateOutcome {
  result: BenchmarkResult;
  /** True when the result came from the catalog without recomputation. */
  cached: boolean;
  /** Overlap with the training data (non-empty only when allowed). */
  overlaps: LedgerOverlap[];
}

/**
 * Evaluates suite `suiteKey` on `model`.
 *
 * @throws {LeakageError} when the held-out data overlaps the model's training data (unless allowed).
 * @example
 * ```ts
 * const { result, cached } = await evaluateBenchmark("cognitive_load_eval@1", model, { catalog, partialSubset: 0.1 });
 * console.log(result.metrics.accuracy.value, cached);
 * ```
 */
export async function evaluateBenchmark(
  suiteKey: string,
  model: BenchModel,
  options: EvaluateOptions = {},
): Promise<EvaluateOutcome> {
  const entry = getBenchmark(suiteKey);
  const suite = entry.suite();
  const partialSubset = options.partialSubset ?? 1;
  const partialSeed = options.partialSeed ?? 0;
  validatePartialSubset(partialSubset, partialSeed);
  if (typeof model?.checkpointHash !== "string" || model.checkpointHash.length === 0) {
    throw new Error(
      `Cannot evaluate ${suiteKey} as the model has no checkpointHash: current value is ${
        JSON.stringify(model?.checkpointHash)
      }; the model loader must set it`,
    );
  }
  const catalog = options.catalog;
  let data = options.data;
  if (!data) {
    if (!catalog) {
      throw new Error(`Cannot evaluate ${suiteKey} as neither a catalog nor opened held-out data was given`);
    }
    if (!model.input) {
      throw new Error(
        `Cannot open the held-out data of ${suiteKey} as the model does not say how it reads data: ` +
          `current model.input is undefined; the model loader must set it (modalities, derived, window, patch, …)`,
      );
    }
    data = await openBenchData(catalog, {
      query: suite.heldOutData(),
      isHeldOut: suite.isHeldOut?.bind(suite),
    }, model.input);
  }
  const overlaps = checkLeakage(data.heldOutLedger, model.dataLedger, {
    suiteKey,
    checkpointHash: model.checkpointHash,
    allowOverlap: options.allowOverlap,
    sessionOf: (h) => data.recordingSessions.get(h),
  });
  const key = {
    suite_name: entry.name,
    suite_version: entry.version,
    checkpoint_hash: model.checkpointHash,
    dataset_hash: data.datasetHash,
    partial_subset: partialSubset,
    partial_seed: partialSeed,
  };
  const resultKey = benchmarkResultKey(key);
  if (catalog && !options.force) {
    const stored = await findBenchmarkResult(catalog, resultKey);
    if (stored) return { result: stored, cached: true, overlaps };
  }
  const t0 = performance.now();
  const measurement = await suite.run(model, data, { partialSubset, partialSeed });
  const result = parseBenchmarkResult(
    JSON.parse(JSON.stringify({
      metrics: measurement.metrics,
      windows_used: measurement.windows_used,
      windows_total: measurement.windows_total,
      groups_used: measurement.groups_used,
      groups_total: measurement.groups_total,
      bootstrap: measurement.bootstrap,
      predictions: measurement.predictions,
      format: "orion.benchmark_result",
      format_version: 1,
      result_key: resultKey,
      suite_key: entry.key,
      ...key,
      suite_code_hash: entry.codeHash,
      overlap_allowed: options.allowOverlap ?? false,
      overlap_seconds: overlaps.reduce((n, o) => n + o.seconds, 0),
      run: options.run ?? null,
      step: options.step ?? null,
      created_at: new Date().toISOString(),
      duration_ms: Math.round(performance.now() - t0),
    })),
    `the result of ${suiteKey}`,
  );
  if (catalog && (options.record ?? true)) await recordBenchmarkResult(catalog, result);
  return { result, cached: false, overlaps };
}
