/**
 * Lineage in the catalog: the table `run_lineage` (one row per run started from another run's checkpoint,
 * key `run_name`) and the queries over it joined with `runs`, `checkpoints` and `benchmark_results`:
 * {@link parentOf}, {@link childrenOf}, {@link fullHistory} and {@link lineageOf} (the whole graph around a
 * run or checkpoint, as `orion lineage` prints it).
 *
 * A run without a `run_lineage` row started from fresh weights (a root). Cumulative steps are
 * `init_steps_consumed + steps` (the run's own steps from `runs`).
 *
 * @module
 */
import * as arrow from "apache-arrow";
import { type Catalog, JSON_COLUMNS_METADATA, KEY_COLUMN_METADATA, sqlString } from "../ursa/catalog.ts";
import { CHECKPOINTS_TABLE, RUNS_TABLE } from "../train/run_record.ts";
import { listBenchmarkResults, metricValues } from "../bench/results.ts";
import { DataLedger } from "../data/ledger.ts";
import type { AncestorCheckpoint, StageLineage } from "./stage_lineage.ts";

/** The catalog table of lineage rows (key `run_name`). */
export const RUN_LINEAGE_TABLE = "run_lineage";

const utf8 = (name: string, nullable = false) => new arrow.Field(name, new arrow.Utf8(), nullable);
const f64 = (name: string) => new arrow.Field(name, new arrow.Float64(), false);

/** Arrow schema of `run_lineage`; `ancestors` holds JSON (oldest first). */
export const RUN_LINEAGE_SCHEMA = new arrow.Schema([
  utf8("run_name"),
  utf8("parent_run"),
  utf8("init_checkpoint_hash"),
  f64("init_checkpoint_step"),
  f64("init_steps_consumed"),
  utf8("ancestors"),
  f64("ancestor_data_seconds"),
  utf8("pipeline", true),
  utf8("recorded_at"),
], new Map([[KEY_COLUMN_METADATA, "run_name"], [JSON_COLUMNS_METADATA, "ancestors"]]));

/**
 * Records (upserts) where `run` started from.
 *
 * @example
 * ```ts
 * await recordRunLineage(catalog, "finetune_p042", stage);
 * ```
 */
export async function recordRunLineage(catalog: Catalog, run: string, stage: StageLineage): Promise<void> {
  await catalog.upsert(
    RUN_LINEAGE_TABLE,
    [{
      run_name: run,
      parent_run: stage.parentRun,
      init_checkpoint_hash: stage.initCheckpoint.checkpointHash,
      init_checkpoint_step: stage.initCheckpoint.step,
      init_steps_consumed: stage.initCheckpoint.stepsConsumed,
      ancestors: stage.ancestors,
      ancestor_data_seconds: DataLedger.fromJSON(stage.ancestorDataHashes).totalSeconds(),
      pipeline: stage.pipeline,
      recorded_at: new Date().toISOString(),
    }],
    "run_name",
    { schema: RUN_LINEAGE_SCHEMA },
  );
}

/** A run's lineage row as read back. */
export interface RunLineageRow {
  run: string;
  parentRun: string;
  initCheckpoint: AncestorCheckpoint;
  ancestors: AncestorCheckpoint[];
  ancestorDataSeconds: number;
  pipeline: string | null;
}

function lineageRow(row: Record<string, unknown>): RunLineageRow {
  const run = String(row.run_name);
  const parentRun = String(row.parent_run);
  return {
    run,
    parentRun,
    initCheckpoint: {
      run: parentRun,
      checkpointHash: String(row.init_checkpoint_hash),
      step: Number(row.init_checkpoint_step),
      stepsConsumed: Number(row.init_steps_consumed),
    },
    ancestors: (Array.isArray(row.ancestors) ? row.ancestors : []) as AncestorCheckpoint[],
    ancestorDataSeconds: Number(row.ancestor_data_seconds),
    pipeline: typeof row.pipeline === "string" ? row.pipeline : null,
  };
}

/** The lineage row of `run`, or undefined for a run started from fresh weights (or unknown). */
export async function lineageRowOf(catalog: Catalog, run: string): Promise<RunLineageRow | undefined> {
  const row = await catalog.get(RUN_LINEAGE_TABLE, run, "run_name");
  return row ? lineageRow(row) : undefined;
}

/**
 * The run `run` was initialised from and the checkpoint used, or null for a root run.
 *
 * @example
 * ```ts
 * const p = await parentOf(catalog, "finetune_p042"); // { run: "pretrain", checkpointHash, step, stepsConsumed }
 * ```
 */
export async function parentOf(catalog: Catalog, run: string): Promise<AncestorCheckpoint | null> {
  return (await lineageRowOf(catalog, run))?.initCheckpoint ?? null;
}

/**
 * Runs initialised from a checkpoint of `run`, sorted by name.
 *
 * @example
 * ```ts
 * const kids = await childrenOf(catalog, "pretrain"); // ["finetune_p042", ...]
 * ```
 */
export async function childrenOf(catalog: Catalog, run: string): Promise<string[]> {
  const rows = await catalog.query(RUN_LINEAGE_TABLE, `parent_run = ${sqlString(run)}`);
  return rows.map((r) => String(r.run_name)).sort();
}

/**
 * The chain of runs from the first pre-training to `run` (oldest first, ending with `run`), with the
 * checkpoint each link started from.
 *
 * @example
 * ```ts
 * const chain = await fullHistory(catalog, "finetune_p042"); // [{ run: "pretrain", ... }, { run: "finetune_p042", ... }]
 * ```
 */
export async function fullHistory(
  catalog: Catalog,
  run: string,
): Promise<{ run: string; initCheckpoint: AncestorCheckpoint | null }[]> {
  const chain: { run: string; initCheckpoint: AncestorCheckpoint | null }[] = [];
  const seen = new Set<string>();
  let current: string | null = run;
  while (current !== null && !seen.has(current)) {
    seen.add(current);
    const row = await lineageRowOf(catalog, current);
    chain.unshift({ run: current, initCheckpoint: row?.initCheckpoint ?? null });
    current = row?.parentRun ?? null;
  }
  return chain;
}

/** One benchmark result on one of a run's checkpoints. */
export interface LineageScore {
  /** Suite, `name@version`. */
  suiteKey: string;
  /** The evaluated checkpoint. */
  checkpointHash: string;
  /** Its step. */
  step: number | null;
  /** 1 for whole-suite results. */
  partialSubset: number;
  /** metric → point estimate. */
  metrics: Record<string, number>;
}

/** One run of a lineage graph. */
export interface LineageNode {
  /** Run name. */
  run: string;
  /** From `runs` (null when the run has written no checkpoint yet). */
  status: string | null;
  /** The run's own optimizer steps (at its last checkpoint). */
  steps: number | null;
  /** `training.maxSteps`. */
  maxSteps: number | null;
  /** Steps behind its last checkpoint's weights, summed over the lineage. */
  stepsConsumed: number | null;
  /** Hash of its newest checkpoint. */
  lastCheckpointHash: string | null;
  /** Its run directory. */
  runDir: string | null;
  /** The checkpoint it was initialised from (null for a root). */
  initCheckpoint: AncestorCheckpoint | null;
  /** Seconds of recordings its ancestors consumed (0 for a root). */
  ancestorDataSeconds: number;
  /** The pipeline that ran it, if any. */
  pipeline: string | null;
  /** Benchmark results on its checkpoints, by step. */
  scores: LineageScore[];
}

/** The graph around a run or checkpoint. */
export interface LineageGraph {
  /** What was asked about: the run, and the checkpoint when a hash was given. */
  subject: { run: string; checkpointHash: string | null; step: number | null; stepsConsumed: number | null };
  /** `full_history`: the chain from the first pre-training to the subject's run (oldest first). */
  history: LineageNode[];
  /** Every run descending from the subject's run, depth-first, children by name; depth 1 = a child. */
  descendants: (LineageNode & { depth: number })[];
}

async function nodeOf(catalog: Catalog, run: string): Promise<LineageNode> {
  const row = await catalog.get(RUNS_TABLE, run, "run_name");
  const lineage = await lineageRowOf(catalog, run);
  const steps = row && typeof row.steps === "number" ? row.steps : null;
  const base = lineage?.initCheckpoint.stepsConsumed ?? 0;
  const scores = (await listBenchmarkResults(catalog, { run })).map((r) => ({
    suiteKey: r.suite_key,
    checkpointHash: r.checkpoint_hash,
    step: r.step,
    partialSubset: r.partial_subset,
    metrics: metricValues(r),
  }));
  return {
    run,
    status: row ? String(row.status) : null,
    steps,
    maxSteps: row && typeof row.max_steps === "number" ? row.max_steps : null,
    stepsConsumed: steps === null ? null : base + steps,
    lastCheckpointHash: row && row.last_checkpoint_hash ? String(row.last_checkpoint_hash) : null,
    runDir: row && row.run_dir ? String(row.run_dir) : null,
    initCheckpoint: lineage?.initCheckpoint ?? null,
    ancestorDataSeconds: lineage?.ancestorDataSeconds ?? 0,
    pipeline: lineage?.pipeline ?? null,
    scores,
  };
}

/** Resolves a run name or a checkpoint hash (or unique prefix of at least 8 hex digits). */
async function resolveSubject(
  catalog: Catalog,
  runOrHash: string,
): Promise<{ run: string; checkpointHash: string | null; step: number | null }> {
  if (await catalog.get(RUNS_TABLE, runOrHash, "run_name")) {
    return { run: runOrHash, checkpointHash: null, step: null };
  }
  if (await lineageRowOf(catalog, runOrHash)) return { run: runOrHash, checkpointHash: null, step: null };
  if (/^[0-9a-f]{8,64}$/.test(runOrHash)) {
    const rows = await catalog.query(CHECKPOINTS_TABLE, `checkpoint_hash LIKE ${sqlString(`${runOrHash}%`)}`);
    if (rows.length === 1) {
      return {
        run: String(rows[0].run_name),
        checkpointHash: String(rows[0].checkpoint_hash),
        step: Number(rows[0].step),
      };
    }
    if (rows.length > 1) {
      throw new Error(
        `Cannot tell which checkpoint ${runOrHash} means as ${rows.length} checkpoints start with it: ${
          rows.map((r) => `${r.checkpoint_hash} (${r.run_name} step ${r.step})`).join(", ")
        }; give more digits`,
      );
    }
  }
  const runs = (await catalog.query(RUNS_TABLE, undefined, { columns: ["run_name"] }))
    .map((r) => String(r.run_name)).sort();
  throw new Error(
    `Cannot find run or checkpoint ${
      JSON.stringify(runOrHash)
    } in the catalog at ${catalog.dir}: current runs are [${
      runs.join(", ")
    }]; pass a run name or a checkpoint hash (at least 8 hex digits)`,
  );
}

/**
 * The lineage graph around a run or checkpoint: its full history back to the first pre-training and every
 * descendant, with steps (own and cumulative) and benchmark scores.
 *
 * @throws when `runOrHash` names no run or checkpoint in the catalog (listing the runs), or a hash prefix
 * is ambiguous.
 * @example
 * ```ts
 * const graph = await lineageOf(catalog, "finetune_p042");
 * console.log(graph.history.map((n) => `${n.run} (${n.stepsConsumed} steps)`).join(" → "));
 * ```
 */
export async function lineageOf(catalog: Catalog, runOrHash: string): Promise<LineageGraph> {
  const subject = await resolveSubject(catalog, runOrHash);
  const chain = await fullHistory(catalog, subject.run);
  const history: LineageNode[] = [];
  for (const link of chain) history.push(await nodeOf(catalog, link.run));
  const descendants: (LineageNode & { depth: number })[] = [];
  const seen = new Set(chain.map((c) => c.run));
  const visit = async (run: string, depth: number) => {
    for (const child of await childrenOf(catalog, run)) {
      if (seen.has(child)) continue;
      seen.add(child);
      descendants.push({ ...(await nodeOf(catalog, child)), depth });
      await visit(child, depth + 1);
    }
  };
  await visit(subject.run, 1);
  const own = history[history.length - 1];
  const base = own.initCheckpoint?.stepsConsumed ?? 0;
  return {
    subject: {
      ...subject,
      stepsConsumed: subject.step !== null ? base + subject.step : own.stepsConsumed,
    },
    history,
    descendants,
  };
}

function scoreText(node: LineageNode, checkpointHash: string | null): string {
  if (node.scores.length === 0) return "";
  // Per suite: the result on the named checkpoint if any, else the newest whole-suite result, else the newest.
  const bySuite = new Map<string, LineageScore>();
  for (const s of node.scores) {
    const prior = bySuite.get(s.suiteKey);
    const rank = (x: LineageScore) =>
      (x.checkpointHash === checkpointHash ? 4 : 0) + (x.partialSubset === 1 ? 2 : 0);
    if (
      !prior || rank(s) > rank(prior) || (rank(s) === rank(prior) && (s.step ?? -1) >= (prior.step ?? -1))
    ) {
      bySuite.set(s.suiteKey, s);
    }
  }
  return [...bySuite.values()].map((s) =>
    `${s.suiteKey} ${
      Object.entries(s.metrics).filter(([k]) => !k.includes("/")).map(([k, v]) => `${k} ${v.toFixed(3)}`)
        .join(", ")
    } (step ${s.step ?? "?"}${s.partialSubset < 1 ? `, ${Math.round(s.partialSubset * 100)}% subset` : ""})`
  ).join("; ");
}

function nodeLine(node: LineageNode, scoresFor: string | null): string {
  const steps = node.steps === null
    ? "no checkpoint yet"
    : `${node.steps}${
      node.maxSteps !== null ? `/${node.maxSteps}` : ""
    } steps, ${node.stepsConsumed} consumed`;
  const from = node.initCheckpoint
    ? ` ← ${node.initCheckpoint.run} @ ${
      node.initCheckpoint.checkpointHash.slice(0, 12)
    } (step ${node.initCheckpoint.step}, ${node.initCheckpoint.stepsConsumed} consumed)`
    : " (fresh init)";
  const scores = scoreText(node, scoresFor);
  return `${node.run} [${node.status ?? "not started"}, ${steps}]${from}${scores ? `: ${scores}` : ""}`;
}

/**
 * Formats a lineage graph as a tree: the history from the root down to the subject (marked `*`), then the
 * subject's descendants below it.
 *
 * @example
 * ```ts
 * console.log(formatLineage(await lineageOf(catalog, "finetune_p042")));
 * ```
 */
export function formatLineage(graph: LineageGraph): string {
  const s = graph.subject;
  const lines = [
    `lineage of ${s.run}${
      s.checkpointHash ? ` checkpoint ${s.checkpointHash.slice(0, 12)} (step ${s.step})` : ""
    }: ${
      s.stepsConsumed ?? "?"
    } steps consumed along ${graph.history.length} run(s), ${graph.descendants.length} descendant(s)`,
  ];
  graph.history.forEach((node, i) => {
    // An ancestor's scores are shown for the checkpoint its child started from.
    const usedByChild = graph.history[i + 1]?.initCheckpoint?.checkpointHash ?? s.checkpointHash;
    const indent = i === 0 ? "" : `${"   ".repeat(i - 1)}└─ `;
    lines.push(`${indent}${node.run === s.run ? "* " : ""}${nodeLine(node, usedByChild)}`);
  });
  const base = graph.history.length - 1;
  for (const d of graph.descendants) {
    lines.push(`${"   ".repeat(base + d.depth - 1)}└─ ${nodeLine(d, null)}`);
  }
  return lines.join("\n");
}
