/**
 * Queries over what runs left in the catalog: the tables `runs` and `checkpoints` (written by
 * `run_record.ts` as training goes) and `benchmark_results` (written by `src/bench`), joined into the
 * answers `orion runs ls|show|query` and `orion ckpt show <hash>` print.
 *
 * Rows come back as stored, except that JSON held as text (`metrics` of runs and checkpoints) is parsed,
 * so filters and columns can reach inside it (`metrics.val_loss`).
 *
 * @module
 */
import { join } from "node:path";
import type { Catalog } from "../ursa/catalog.ts";
import type { JsonValue } from "../checkpoint/checkpoint_state.ts";
import { MANIFEST_FILE } from "../checkpoint/checkpoint_manifest.ts";
import { compileRowFilter, readPath } from "../checkpoint/row_filter.ts";
import {
  BENCHMARK_RESULTS_TABLE,
  type BenchmarkResult,
  bestBenchmarkResult,
  listBenchmarkResults,
  metricValues,
} from "../bench/results.ts";
import { type LineageGraph, lineageOf } from "../pipeline/lineage_catalog.ts";
import { CHECKPOINTS_TABLE, readRunRecord, RUNS_TABLE } from "./run_record.ts";
import { pathExists } from "../checkpoint/durable_fs.ts";

/** The tables `orion runs query` reads. */
export const QUERYABLE_TABLES = [RUNS_TABLE, CHECKPOINTS_TABLE, BENCHMARK_RESULTS_TABLE] as const;
/** One of {@link QUERYABLE_TABLES}. */
export type QueryableTable = (typeof QUERYABLE_TABLES)[number];

/** A row of `runs`. */
export interface RunRow {
  run_name: string;
  config_hash: string;
  status: string;
  steps: number;
  max_steps: number;
  run_dir: string;
  last_checkpoint_hash: string;
  /** Empty for a run started from fresh weights. */
  parent_run: string;
  /** The last checkpoint's metrics snapshot. */
  metrics: Record<string, JsonValue>;
  updated_at: string;
}

/** A row of `checkpoints`. */
export interface CheckpointRow {
  checkpoint_hash: string;
  run_name: string;
  step: number;
  path: string;
  /** Empty for a run's first checkpoint of a fresh start. */
  parent_hash: string;
  metrics: Record<string, JsonValue>;
  created_at: string;
}

/** A checkpoint looked up by hash (or prefix) that the catalog does not know, or knows more than once. */
export class CheckpointLookupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CheckpointLookupError";
  }
}

function parseJsonText(value: unknown): Record<string, JsonValue> {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    return value as Record<string, JsonValue>;
  }
  if (typeof value !== "string" || value === "") return {};
  try {
    const parsed = JSON.parse(value);
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? parsed : {};
  } catch {
    return {};
  }
}

/** A stored row with its JSON text columns parsed. */
function normalize(row: Record<string, unknown>): Record<string, unknown> {
  return { ...row, metrics: parseJsonText(row.metrics) };
}

const KEY_COLUMN: Record<QueryableTable, string> = {
  runs: "run_name",
  checkpoints: "checkpoint_hash",
  benchmark_results: "result_key",
};

/**
 * One row per key (the newest by `updated_at`/`created_at`): concurrent upserts of one key (a run's
 * checkpoints registering while the next is written) can leave duplicate rows in LanceDB.
 */
function latestPerKey(table: QueryableTable, rows: Record<string, unknown>[]): Record<string, unknown>[] {
  const key = KEY_COLUMN[table];
  const time = (r: Record<string, unknown>) => String(r.updated_at ?? r.created_at ?? "");
  const byKey = new Map<unknown, Record<string, unknown>>();
  for (const r of rows) {
    const prior = byKey.get(r[key]);
    if (!prior || time(r) > time(prior)) byKey.set(r[key], r);
  }
  return [...byKey.values()];
}

/** The column names of a table (from its schema), or [] when it does not exist yet. */
export async function tableColumns(catalog: Catalog, table: QueryableTable): Promise<string[]> {
  if (!(await catalog.hasTable(table))) return [];
  return (await catalog.schema(table)).fields.map((f) => f.name);
}

/** Options of {@link queryRunTable}. */
export interface RunTableQuery {
  /** A filter in the language of `row_filter.ts`, e.g. `status = 'finished' AND steps > 100`. */
  filter?: string;
  /** Column path to sort by (default: the table's natural order, see {@link queryRunTable}). */
  orderBy?: string;
  descending?: boolean;
  limit?: number;
}

function compareValues(a: unknown, b: unknown): number {
  const missing = (v: unknown) => v === undefined || v === null;
  if (missing(a) || missing(b)) return missing(a) === missing(b) ? 0 : missing(a) ? 1 : -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  const sa = String(a), sb = String(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

/**
 * Rows of a run table matching `query.filter`, JSON text parsed, sorted by `orderBy` (default: runs by
 * last update, newest first; checkpoints by run then step; results by run, step, suite). An empty or
 * missing table gives [].
 *
 * @throws {RowFilterError} for a malformed filter or one naming a column the table does not have.
 * @example
 * ```ts
 * const finished = await queryRunTable(catalog, "runs", { filter: "status = 'finished' AND steps > 100" });
 * ```
 */
export async function queryRunTable(
  catalog: Catalog,
  table: QueryableTable,
  query: RunTableQuery = {},
): Promise<Record<string, unknown>[]> {
  const columns = await tableColumns(catalog, table);
  const keep = query.filter ? compileRowFilter(query.filter, columns, table) : () => true;
  if (query.orderBy) compileRowFilter(`${query.orderBy} IS NULL`, columns, table); // checks the column
  const rows = latestPerKey(table, (await catalog.query(table)).map((r) => normalize(r))).filter(keep);
  const order = query.orderBy?.split(".");
  rows.sort((a, b) => {
    if (order) return (query.descending ? -1 : 1) * compareValues(readPath(a, order), readPath(b, order));
    if (table === RUNS_TABLE) return compareValues(b.updated_at, a.updated_at);
    return compareValues(a.run ?? a.run_name, b.run ?? b.run_name) || compareValues(a.step, b.step) ||
      compareValues(a.suite_key, b.suite_key);
  });
  return query.limit === undefined ? rows : rows.slice(0, query.limit);
}

/** Every run, newest update first. */
export async function listRuns(catalog: Catalog): Promise<RunRow[]> {
  return (await queryRunTable(catalog, RUNS_TABLE)) as unknown as RunRow[];
}

/** The run named `name`, or undefined. */
export async function findRun(catalog: Catalog, name: string): Promise<RunRow | undefined> {
  const row = await catalog.get(RUNS_TABLE, name, "run_name");
  return row ? normalize(row) as unknown as RunRow : undefined;
}

/** The checkpoints registered for `run` (every run when omitted), by run then step. */
export async function listCheckpoints(catalog: Catalog, run?: string): Promise<CheckpointRow[]> {
  const rows = await queryRunTable(catalog, CHECKPOINTS_TABLE);
  return (run === undefined ? rows : rows.filter((r) => r.run_name === run)) as unknown as CheckpointRow[];
}

/**
 * The checkpoint whose hash is `hash` or starts with it (at least 6 hex digits).
 *
 * @throws {CheckpointLookupError} when no checkpoint or several match, naming them.
 * @example
 * ```ts
 * const row = await findCheckpointByHash(catalog, "4819e8eb72");
 * console.log(row.path, row.run_name, row.step);
 * ```
 */
export async function findCheckpointByHash(catalog: Catalog, hash: string): Promise<CheckpointRow> {
  const prefix = hash.toLowerCase();
  if (!/^[0-9a-f]{6,64}$/.test(prefix)) {
    throw new CheckpointLookupError(
      `Cannot look up checkpoint ${JSON.stringify(hash)} as a checkpoint hash is 6 to 64 hex digits`,
    );
  }
  const rows = (await listCheckpoints(catalog)).filter((r) => r.checkpoint_hash.startsWith(prefix));
  if (rows.length === 1) return rows[0];
  if (rows.length === 0) {
    throw new CheckpointLookupError(
      `Cannot find checkpoint ${prefix} as no checkpoint hash in the catalog at ${catalog.dir} starts with it: ` +
        `current checkpoints are ${await catalog.count(CHECKPOINTS_TABLE)}; ` +
        "pass a checkpoint directory, or the catalog the run was registered in (--catalog)",
    );
  }
  throw new CheckpointLookupError(
    `Cannot tell which checkpoint ${prefix} means as ${rows.length} start with it: ${
      rows.slice(0, 5).map((r) => `${r.checkpoint_hash} (${r.run_name} step ${r.step})`).join(", ")
    }; give more digits`,
  );
}

/** The best checkpoint by a benchmark metric or a metrics-snapshot value. */
export interface BestCheckpoint {
  /** What it was ranked by (`cognitive_load_eval@1/accuracy`, `val_loss`). */
  monitor: string;
  mode: "min" | "max";
  value: number;
  checkpointHash: string;
  run: string | null;
  step: number | null;
  /** The checkpoint directory, when the catalog knows it. */
  path: string | null;
  /** The benchmark result, when ranked by a benchmark metric. */
  result: BenchmarkResult | null;
}

/**
 * The best checkpoint by `monitor`: a benchmark metric `<suite>@<version>/<metric>` (whole-suite results
 * unless `fullOnly` is false; see `bestBenchmarkResult`), or a metrics-snapshot value of the `checkpoints`
 * table (`val_loss`, `metrics.val_accuracy`). `mode` defaults to min for names containing "loss", else max.
 * `run` and `filter` (over `checkpoints`) narrow the candidates.
 *
 * @example
 * ```ts
 * const best = await bestCheckpointBy(catalog, "cognitive_load_eval@1/accuracy", { run: "demo" });
 * console.log(best?.checkpointHash, best?.value);
 * ```
 */
export async function bestCheckpointBy(
  catalog: Catalog,
  monitor: string,
  options: { mode?: "min" | "max"; run?: string; fullOnly?: boolean; filter?: string } = {},
): Promise<BestCheckpoint | undefined> {
  const mode = options.mode ?? (monitor.includes("loss") ? "min" : "max");
  const checkpoints = await queryRunTable(catalog, CHECKPOINTS_TABLE, { filter: options.filter });
  const inScope = (r: Record<string, unknown>) => options.run === undefined || r.run_name === options.run;
  if (monitor.includes("@") && monitor.includes("/")) {
    let best = await bestBenchmarkResult(catalog, monitor, {
      mode,
      run: options.run,
      fullOnly: options.fullOnly,
    });
    if (best && options.filter !== undefined) {
      // Rank only among checkpoints the filter keeps.
      const allowed = new Set(checkpoints.filter(inScope).map((r) => r.checkpoint_hash));
      const metric = monitor.slice(monitor.indexOf("/") + 1);
      best = (await listBenchmarkResults(catalog, {
        suiteKey: monitor.slice(0, monitor.indexOf("/")),
        run: options.run,
        fullOnly: options.fullOnly ?? true,
      })).filter((r) => allowed.has(r.checkpoint_hash) && typeof r.metrics[metric]?.value === "number")
        .reduce<BenchmarkResult | undefined>((b, r) => {
          const v = r.metrics[metric].value!, bv = b?.metrics[metric].value;
          return bv === undefined || bv === null || (mode === "max" ? v > bv : v < bv) ? r : b;
        }, undefined);
    }
    if (!best) return undefined;
    const metric = monitor.slice(monitor.indexOf("/") + 1);
    const row = checkpoints.find((r) => r.checkpoint_hash === best!.checkpoint_hash);
    return {
      monitor,
      mode,
      value: best.metrics[metric].value!,
      checkpointHash: best.checkpoint_hash,
      run: best.run,
      step: best.step,
      path: row ? String(row.path) : null,
      result: best,
    };
  }
  const path = monitor.startsWith("metrics.") ? monitor.split(".") : ["metrics", ...monitor.split(".")];
  let best: { row: Record<string, unknown>; value: number } | undefined;
  for (const row of checkpoints.filter(inScope)) {
    const v = readPath(row, path);
    if (typeof v !== "number" || !Number.isFinite(v)) continue;
    // Ties go to the later step (as retention's best-k does).
    if (!best || (mode === "max" ? v >= best.value : v <= best.value)) best = { row, value: v };
  }
  if (!best) return undefined;
  return {
    monitor,
    mode,
    value: best.value,
    checkpointHash: String(best.row.checkpoint_hash),
    run: String(best.row.run_name),
    step: Number(best.row.step),
    path: String(best.row.path),
    result: null,
  };
}

/** One checkpoint of a run as `orion runs show` lists it. */
export interface RunCheckpoint extends CheckpointRow {
  /** Whether its directory is still on disk (retention may have deleted it). */
  onDisk: boolean;
  /** Benchmark results measured on it: suite key → metric → value (whole suite unless `partial`). */
  benchmarks: { suiteKey: string; partialSubset: number; metrics: Record<string, number> }[];
}

/** Everything `orion runs show` prints about a run. */
export interface RunDetails {
  run: RunRow;
  /** `run.json` (null when the run directory is gone). */
  record: Awaited<ReturnType<typeof readRunRecord>>;
  /** The resolved config (`<runDir>/config.json`; null when gone). */
  config: Record<string, unknown> | null;
  checkpoints: RunCheckpoint[];
  /** Benchmark results on checkpoints the `checkpoints` table does not list (e.g. evaluated elsewhere). */
  otherBenchmarks: BenchmarkResult[];
  lineage: LineageGraph | null;
}

/**
 * A run with its record, config, checkpoints (with metrics, benchmark results and whether they are still
 * on disk) and lineage.
 *
 * @throws when the catalog has no run `name` (listing the runs it has).
 * @example
 * ```ts
 * const details = await describeRun(catalog, "demo_poyo_small");
 * console.log(details.run.status, details.checkpoints.length);
 * ```
 */
export async function describeRun(catalog: Catalog, name: string): Promise<RunDetails> {
  const run = await findRun(catalog, name);
  if (!run) {
    const names = (await listRuns(catalog)).map((r) => r.run_name);
    throw new Error(
      `Cannot show run ${JSON.stringify(name)} as the catalog at ${catalog.dir} has no run of that name: ` +
        `current runs are [${names.slice(0, 20).join(", ")}${names.length > 20 ? ", …" : ""}]; ` +
        "pass --catalog when the run used another catalog (data.catalogDir)",
    );
  }
  const record = await readRunRecord(run.run_dir).catch(() => null);
  let config: Record<string, unknown> | null = null;
  try {
    const doc = JSON.parse(await Deno.readTextFile(join(run.run_dir, "config.json")));
    config = (doc && typeof doc === "object" && "config" in doc ? doc.config : doc) as Record<
      string,
      unknown
    >;
  } catch {
    config = null;
  }
  const results = await listBenchmarkResults(catalog, { run: name });
  const rows = await listCheckpoints(catalog, name);
  const known = new Set(rows.map((r) => r.checkpoint_hash));
  const checkpoints: RunCheckpoint[] = [];
  for (const row of rows) {
    checkpoints.push({
      ...row,
      onDisk: await pathExists(join(row.path, MANIFEST_FILE)),
      benchmarks: results.filter((r) => r.checkpoint_hash === row.checkpoint_hash).map((r) => ({
        suiteKey: r.suite_key,
        partialSubset: r.partial_subset,
        metrics: metricValues(r),
      })),
    });
  }
  let lineage: LineageGraph | null = null;
  try {
    lineage = await lineageOf(catalog, name);
  } catch {
    lineage = null;
  }
  return {
    run,
    record,
    config,
    checkpoints,
    otherBenchmarks: results.filter((r) => !known.has(r.checkpoint_hash)),
    lineage,
  };
}
