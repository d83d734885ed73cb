/**
 * Benchmark results: content addresses, the catalog table `benchmark_results`, and how results attach to
 * checkpoints.
 *
 * Content address: `result_key` = sha256 (hex) of the canonical JSON (sorted keys, no whitespace) of
 * `{suite_name, suite_version, checkpoint_hash, dataset_hash, partial_subset, partial_seed}`. Asking again for
 * the same key returns the stored result without recomputation (unless forced).
 *
 * Attaching: checkpoints are immutable once their manifest is written (their hash covers every file), so a
 * result never modifies the checkpoint it measures. It attaches (1) in the catalog, by `checkpoint_hash`,
 * immediately, and (2) in the checkpoint files by being carried in `benchmarks/<suite>@<version>.json` of the
 * NEXT checkpoint the run writes after the result arrived (`CheckpointState.benchmarks`, built with
 * {@link checkpointBenchmarks}): each file holds the newest arrived result of that suite, whose
 * `checkpoint_hash` and `step` name the checkpoint it measures (usually the previous one). The final
 * evaluation's results are carried by the run's final checkpoint when they arrive before it is written, and
 * are in the catalog in any case.
 *
 * @module
 */
import * as arrow from "apache-arrow";
import { z } from "zod";
import { type Catalog, JSON_COLUMNS_METADATA, KEY_COLUMN_METADATA, sqlString } from "../ursa/catalog.ts";
import type { JsonValue } from "../checkpoint/checkpoint_state.ts";
import { sha256Json } from "./bench_data.ts";
import type { BenchmarkMeasurement } from "./bench_suite.ts";
import { parseSuiteKey } from "./registry.ts";

/** The catalog table of results. */
export const BENCHMARK_RESULTS_TABLE = "benchmark_results";

/** The fields that address a result. */
export interface BenchmarkResultKey {
  /** Suite name. */
  suite_name: string;
  /** Suite version. */
  suite_version: number;
  /** Checkpoint hash of the evaluated weights. */
  checkpoint_hash: string;
  /** Content hash of the held-out data (see `bench_data.ts`). */
  dataset_hash: string;
  /** Fraction of the windows evaluated, in (0, 1]. */
  partial_subset: number;
  /** Seed of the partial subset. */
  partial_seed: number;
}

/** One stored result (JSON-safe: no NaN, no undefined). */
export interface BenchmarkResult extends BenchmarkResultKey, BenchmarkMeasurement {
  /** Format tag of the stored JSON. */
  format: "orion.benchmark_result";
  /** Format version of the stored JSON. */
  format_version: 1;
  /** The content address. */
  result_key: string;
  /** `suite_name@suite_version`. */
  suite_key: string;
  /** sha256 of the suite's source at evaluation time (provenance; not part of the key). */
  suite_code_hash: string;
  /** Whether overlap with the training data was allowed, and how many seconds overlapped. */
  overlap_allowed: boolean;
  /** Seconds of held-out data that overlapped the training data (0 unless allowed). */
  overlap_seconds: number;
  /** Run name and step of the evaluated checkpoint, when known. */
  run: string | null;
  /** Step of the evaluated checkpoint, when known. */
  step: number | null;
  /** ISO-8601 time the measurement finished. */
  created_at: string;
  /** Wall time of the measurement (data assembly and prediction), ms. */
  duration_ms: number;
}

/**
 * The content address of a result.
 *
 * @example
 * ```ts
 * benchmarkResultKey({ suite_name: "cognitive_load_eval", suite_version: 1, checkpoint_hash, dataset_hash,
 *   partial_subset: 1, partial_seed: 0 }); // 64 hex digits
 * ```
 */
export function benchmarkResultKey(key: BenchmarkResultKey): string {
  return sha256Json({
    suite_name: key.suite_name,
    suite_version: key.suite_version,
    checkpoint_hash: key.checkpoint_hash,
    dataset_hash: key.dataset_hash,
    partial_subset: key.partial_subset,
    partial_seed: key.partial_seed,
  });
}

const nullableNumber = z.number().nullable();
const MetricValueSchema = z.object({
  value: nullableNumber,
  ci_low: nullableNumber,
  ci_high: nullableNumber,
  n: z.number().int().nonnegative(),
  units: z.number().int().nonnegative(),
});

/** The zod schema of a result's JSON (validates side-process output and stored rows). */
export const BenchmarkResultSchema = z.object({
  format: z.literal("orion.benchmark_result"),
  format_version: z.literal(1),
  result_key: z.string().regex(/^[0-9a-f]{64}$/),
  suite_key: z.string(),
  suite_name: z.string().min(1),
  suite_version: z.number().int().positive(),
  suite_code_hash: z.string(),
  checkpoint_hash: z.string().min(1),
  dataset_hash: z.string().min(1),
  partial_subset: z.number().gt(0).max(1),
  partial_seed: z.number().int().nonnegative(),
  overlap_allowed: z.boolean(),
  overlap_seconds: z.number().nonnegative(),
  run: z.string().nullable(),
  step: z.number().int().nonnegative().nullable(),
  created_at: z.string(),
  duration_ms: z.number().nonnegative(),
  metrics: z.record(z.string(), MetricValueSchema),
  windows_used: z.number().int().nonnegative(),
  windows_total: z.number().int().nonnegative(),
  groups_used: z.number().int().nonnegative(),
  groups_total: z.number().int().nonnegative(),
  bootstrap: z.object({
    confidence: z.number(),
    replicates: z.number().int().nonnegative(),
    seed: z.number().int().nonnegative(),
    unit: z.string(),
  }),
  predictions: z.array(z.object({
    id: z.string(),
    participant: z.string(),
    unit: z.string(),
    label: z.number().int(),
    predicted: z.number().int(),
    windows: z.number().int().positive(),
  })),
});

/**
 * Parses a result from JSON (object or text), checking its content address.
 *
 * @throws naming the first invalid field, or a `result_key` that does not match the key fields.
 */
export function parseBenchmarkResult(value: unknown, source = "benchmark result"): BenchmarkResult {
  const v = typeof value === "string" ? JSON.parse(value) : value;
  const parsed = BenchmarkResultSchema.safeParse(v);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(
      `Cannot read ${source} as field ${issue.path.join(".") || "(root)"} is invalid: ${issue.message}`,
    );
  }
  const result = parsed.data as BenchmarkResult;
  const key = benchmarkResultKey(result);
  if (key !== result.result_key || result.suite_key !== `${result.suite_name}@${result.suite_version}`) {
    throw new Error(
      `Cannot read ${source} as its result_key ${result.result_key} does not match its key fields (expected ${key}) ` +
        `or its suite_key ${result.suite_key} does not match suite_name@suite_version`,
    );
  }
  return result;
}

const utf8 = (name: string, nullable = false) => new arrow.Field(name, new arrow.Utf8(), nullable);
const f64 = (name: string, nullable = false) => new arrow.Field(name, new arrow.Float64(), nullable);

/** Arrow schema of `benchmark_results` (key column `result_key`; `metrics` and `result` hold JSON). */
export const BENCHMARK_RESULTS_SCHEMA = new arrow.Schema([
  utf8("result_key"),
  utf8("suite_key"),
  utf8("suite_name"),
  new arrow.Field("suite_version", new arrow.Int32(), false),
  utf8("checkpoint_hash"),
  utf8("dataset_hash"),
  f64("partial_subset"),
  f64("partial_seed"),
  utf8("run", true),
  f64("step", true),
  new arrow.Field("windows_used", new arrow.Int32(), false),
  utf8("created_at"),
  utf8("metrics"),
  utf8("result"),
], new Map([[KEY_COLUMN_METADATA, "result_key"], [JSON_COLUMNS_METADATA, "metrics,result"]]));

/** `metric name → value` of the non-null point estimates. */
export function metricValues(result: BenchmarkResult): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, m] of Object.entries(result.metrics)) if (m.value !== null) out[name] = m.value;
  return out;
}

/**
 * Stores a result (replacing one with the same key).
 *
 * @example
 * ```ts
 * await recordBenchmarkResult(catalog, result);
 * ```
 */
export async function recordBenchmarkResult(catalog: Catalog, result: BenchmarkResult): Promise<void> {
  await catalog.upsert(
    BENCHMARK_RESULTS_TABLE,
    [{
      result_key: result.result_key,
      suite_key: result.suite_key,
      suite_name: result.suite_name,
      suite_version: result.suite_version,
      checkpoint_hash: result.checkpoint_hash,
      dataset_hash: result.dataset_hash,
      partial_subset: result.partial_subset,
      partial_seed: result.partial_seed,
      run: result.run,
      step: result.step,
      windows_used: result.windows_used,
      created_at: result.created_at,
      metrics: metricValues(result),
      result,
    }],
    "result_key",
    { schema: BENCHMARK_RESULTS_SCHEMA },
  );
}

function rowResult(row: Record<string, unknown>): BenchmarkResult {
  return parseBenchmarkResult(
    row.result,
    `catalog row ${String(row.result_key)} of ${BENCHMARK_RESULTS_TABLE}`,
  );
}

/** The stored result with content address `resultKey`, if any. */
export async function findBenchmarkResult(
  catalog: Catalog,
  resultKey: string,
): Promise<BenchmarkResult | undefined> {
  const row = await catalog.get(BENCHMARK_RESULTS_TABLE, resultKey, "result_key");
  return row ? rowResult(row) : undefined;
}

/** Filters of {@link listBenchmarkResults}. */
export interface BenchmarkResultFilter {
  checkpointHash?: string;
  suiteKey?: string;
  run?: string;
  /** Only whole-suite results (partial_subset = 1). */
  fullOnly?: boolean;
}

/** Stored results matching `filter`, sorted by run, step, suite, then creation time. */
export async function listBenchmarkResults(
  catalog: Catalog,
  filter: BenchmarkResultFilter = {},
): Promise<BenchmarkResult[]> {
  const where: string[] = [];
  if (filter.checkpointHash !== undefined) {
    where.push(`checkpoint_hash = ${sqlString(filter.checkpointHash)}`);
  }
  if (filter.suiteKey !== undefined) where.push(`suite_key = ${sqlString(filter.suiteKey)}`);
  if (filter.run !== undefined) where.push(`run = ${sqlString(filter.run)}`);
  if (filter.fullOnly) where.push("partial_subset = 1");
  const rows = await catalog.query(BENCHMARK_RESULTS_TABLE, where.length ? where.join(" AND ") : undefined);
  const cmp = (a: string | number | null, b: string | number | null) =>
    a === b ? 0 : a === null ? -1 : b === null ? 1 : a < b ? -1 : 1;
  return rows.map(rowResult).sort((a, b) =>
    cmp(a.run, b.run) || cmp(a.step, b.step) || cmp(a.suite_key, b.suite_key) ||
    cmp(a.created_at, b.created_at)
  );
}

/**
 * The result with the best value of `monitor` (`<suite>@<version>/<metric>`), e.g. the best checkpoint by
 * `cognitive_load_eval@1/accuracy`; whole-suite results only unless `fullOnly` is false.
 *
 * @example
 * ```ts
 * const best = await bestBenchmarkResult(catalog, "cognitive_load_eval@1/accuracy", { run: "demo" });
 * console.log(best?.checkpoint_hash, best?.step);
 * ```
 */
export async function bestBenchmarkResult(
  catalog: Catalog,
  monitor: string,
  options: { mode?: "max" | "min"; run?: string; fullOnly?: boolean } = {},
): Promise<BenchmarkResult | undefined> {
  const slash = monitor.indexOf("/");
  if (slash < 0) {
    throw new Error(
      `Cannot rank by ${JSON.stringify(monitor)} as it must read "<suite>@<version>/<metric>", e.g. ` +
        `"cognitive_load_eval@1/accuracy"`,
    );
  }
  const suiteKey = monitor.slice(0, slash), metric = monitor.slice(slash + 1);
  parseSuiteKey(suiteKey);
  const mode = options.mode ?? "max";
  let best: BenchmarkResult | undefined;
  for (
    const r of await listBenchmarkResults(catalog, {
      suiteKey,
      run: options.run,
      fullOnly: options.fullOnly ?? true,
    })
  ) {
    const v = r.metrics[metric]?.value;
    if (v === null || v === undefined) continue;
    const b = best?.metrics[metric].value as number | undefined;
    if (b === undefined || (mode === "max" ? v > b : v < b)) best = r;
  }
  return best;
}

/**
 * The `benchmarks` of the next checkpoint (`CheckpointState.benchmarks`): per suite, the newest of
 * `arrived` (by step, then creation time) as `<suite>@<version>` → result JSON.
 */
export function checkpointBenchmarks(arrived: readonly BenchmarkResult[]): Record<string, JsonValue> {
  const newest = new Map<string, BenchmarkResult>();
  for (const r of arrived) {
    const prior = newest.get(r.suite_key);
    const later = !prior || (r.step ?? -1) > (prior.step ?? -1) ||
      ((r.step ?? -1) === (prior.step ?? -1) && r.created_at >= prior.created_at);
    if (later) newest.set(r.suite_key, r);
  }
  const out: Record<string, JsonValue> = {};
  for (const key of [...newest.keys()].sort()) {
    out[key] = JSON.parse(JSON.stringify(newest.get(key))) as JsonValue;
  }
  return out;
}

/** `<suite>@<version>/<metric>` → value, for metrics snapshots and monitors. */
export function benchmarkMetricScalars(results: readonly BenchmarkResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) {
    for (const [name, v] of Object.entries(metricValues(r))) out[`${r.suite_key}/${name}`] = v;
  }
  return out;
}
