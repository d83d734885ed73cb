/**
 * Catalog queries for library users: runs, checkpoints, benchmark results, the best checkpoint by a
 * benchmark metric, and the lineage graph around a run. Each call opens the catalog, reads, and closes it
 * (so it always sees what other processes wrote since).
 *
 * @module
 */
import { type BenchmarkResult, bestBenchmarkResult, listBenchmarkResults } from "../bench/results.ts";
import { type LineageGraph, lineageOf } from "../pipeline/lineage_catalog.ts";
import { CHECKPOINTS_TABLE, RUNS_TABLE, type RunStatus } from "../train/run_record.ts";
import { type Catalog, type CatalogRow, openCatalog, sqlString } from "../ursa/catalog.ts";

/** Which catalog to read. */
export interface CatalogScope {
  /** Catalog directory (default `$ORION_HOME/catalog` or `./.orion/catalog`). */
  catalogDir?: string;
}

/** A run as the catalog records it (updated at every checkpoint). */
export interface RunEntry {
  /** Run name. */
  name: string;
  /** `sha256:` hash of the run's resolved config. */
  configHash: string;
  /** Status at its last checkpoint. */
  status: RunStatus;
  /** Steps at its last checkpoint. */
  steps: number;
  /** `training.maxSteps`. */
  maxSteps: number;
  /** Absolute run directory. */
  runDir: string;
  /** Hash of its newest checkpoint. */
  lastCheckpointHash: string;
  /** The run it was fine-tuned from (`initFrom.run`), or null. */
  parentRun: string | null;
  /** Metrics stored with its newest checkpoint. */
  metrics: Record<string, number>;
  /** ISO-8601 time of the last update. */
  updatedAt: string;
}

/** A checkpoint as the catalog records it. */
export interface CheckpointEntry {
  /** Content hash. */
  hash: string;
  /** Run name. */
  run: string;
  /** Step. */
  step: number;
  /** Checkpoint directory when written (retention may have deleted it since). */
  path: string;
  /** Hash of the checkpoint written before it in the same chain, or null. */
  parentHash: string | null;
  /** Metrics stored with it. */
  metrics: Record<string, number>;
  /** ISO-8601 time it was registered. */
  createdAt: string;
}

async function withCatalog<T>(scope: CatalogScope, read: (catalog: Catalog) => Promise<T>): Promise<T> {
  const catalog = await openCatalog(scope.catalogDir);
  try {
    return await read(catalog);
  } finally {
    catalog.close();
  }
}

function numbers(value: unknown): Record<string, number> {
  const parsed = typeof value === "string" ? JSON.parse(value) : value;
  const out: Record<string, number> = {};
  if (parsed && typeof parsed === "object") {
    for (const [k, v] of Object.entries(parsed)) if (typeof v === "number") out[k] = v;
  }
  return out;
}

const text = (v: unknown): string => (v === null || v === undefined ? "" : String(v));

function runEntry(row: CatalogRow): RunEntry {
  return {
    name: text(row.run_name),
    configHash: text(row.config_hash),
    status: text(row.status) as RunStatus,
    steps: Number(row.steps),
    maxSteps: Number(row.max_steps),
    runDir: text(row.run_dir),
    lastCheckpointHash: text(row.last_checkpoint_hash),
    parentRun: text(row.parent_run) || null,
    metrics: numbers(row.metrics),
    updatedAt: text(row.updated_at),
  };
}

function checkpointEntry(row: CatalogRow): CheckpointEntry {
  return {
    hash: text(row.checkpoint_hash),
    run: text(row.run_name),
    step: Number(row.step),
    path: text(row.path),
    parentHash: text(row.parent_hash) || null,
    metrics: numbers(row.metrics),
    createdAt: text(row.created_at),
  };
}

/**
 * The runs in the catalog, sorted by name; optionally only those with `status`.
 *
 * @example
 * ```ts
 * import { queryRuns } from "../../mod.ts";
 * for (const run of await queryRuns({ status: "finished" })) console.log(run.name, run.steps, run.metrics.val_accuracy);
 * ```
 */
export async function queryRuns(options: CatalogScope & { status?: RunStatus } = {}): Promise<RunEntry[]> {
  return await withCatalog(options, async (catalog) => {
    const filter = options.status === undefined ? undefined : `status = ${sqlString(options.status)}`;
    const rows = await catalog.query(RUNS_TABLE, filter);
    return rows.map(runEntry).sort((a, b) => a.name.localeCompare(b.name));
  });
}

/**
 * The checkpoints in the catalog, sorted by run then step; optionally only those of `run`.
 *
 * @example
 * ```ts
 * import { queryCheckpoints } from "../../mod.ts";
 * const ckpts = await queryCheckpoints({ run: "tiny_demo" });
 * console.log(ckpts.map((c) => `${c.step} ${c.hash.slice(0, 12)} loss ${c.metrics.loss}`));
 * ```
 */
export async function queryCheckpoints(
  options: CatalogScope & { run?: string } = {},
): Promise<CheckpointEntry[]> {
  return await withCatalog(options, async (catalog) => {
    const filter = options.run === undefined ? undefined : `run_name = ${sqlString(options.run)}`;
    const rows = await catalog.query(CHECKPOINTS_TABLE, filter);
    return rows.map(checkpointEntry).sort((a, b) => a.run.localeCompare(b.run) || a.step - b.step);
  });
}

/**
 * Stored benchmark results matching the filters, sorted by run, step, suite and time.
 *
 * @example
 * ```ts
 * import { queryBenchmarkResults } from "../../mod.ts";
 * const results = await queryBenchmarkResults({ run: "tiny_demo", suiteKey: "cognitive_load_eval@1", fullOnly: true });
 * for (const r of results) console.log(r.step, r.metrics.accuracy.value, r.metrics.accuracy.ci_low);
 * ```
 */
export async function queryBenchmarkResults(
  options: CatalogScope & {
    /** Only results on this checkpoint. */
    checkpointHash?: string;
    /** Only this suite (`name@version`). */
    suiteKey?: string;
    /** Only this run's checkpoints. */
    run?: string;
    /** Only whole-suite results (no partial subsets). */
    fullOnly?: boolean;
  } = {},
): Promise<BenchmarkResult[]> {
  return await withCatalog(options, (catalog) => listBenchmarkResults(catalog, options));
}

/**
 * The stored result with the best value of `metric` (`<suite>@<version>/<metric>`), i.e. the best checkpoint
 * by that benchmark; null when nothing has it. Whole-suite results only unless `fullOnly` is false.
 *
 * @example
 * ```ts
 * import { queryBestCheckpoint } from "../../mod.ts";
 * const best = await queryBestCheckpoint("cognitive_load_eval@1/accuracy", { run: "tiny_demo" });
 * console.log(best?.checkpoint_hash, best?.step, best?.metrics.accuracy.value);
 * ```
 */
export async function queryBestCheckpoint(
  metric: string,
  options: CatalogScope & { run?: string; mode?: "max" | "min"; fullOnly?: boolean } = {},
): Promise<BenchmarkResult | null> {
  return await withCatalog(
    options,
    async (catalog) => (await bestBenchmarkResult(catalog, metric, options)) ?? null,
  );
}

/**
 * The lineage graph around a run (or a checkpoint hash): the chain of runs it was fine-tuned from, oldest
 * first, and every run descending from it, with their benchmark scores.
 *
 * @example
 * ```ts
 * import { queryLineage } from "../../mod.ts";
 * const graph = await queryLineage("finetune_p042");
 * console.log(graph.history.map((n) => n.run).join(" → "));
 * ```
 */
export async function queryLineage(runOrHash: string, options: CatalogScope = {}): Promise<LineageGraph> {
  return await withCatalog(options, (catalog) => lineageOf(catalog, runOrHash));
}
