/**
 * The dashboard's train/test overlap check: a benchmark suite's held-out data (cut the way the checkpoint's
 * model reads data) intersected with the checkpoint's data-hash ledger — the same check `orion eval` runs
 * before evaluating, shown without evaluating. A fine-tuned checkpoint's ledger already holds its ancestors'
 * data (the training loop merges them), so the check spans the whole lineage.
 *
 * @module
 */
import { join } from "node:path";
import "../bench/cognitive_load_eval.ts"; // the built-in suite
import type { BenchModelInput } from "../bench/bench_model.ts";
import { openBenchData } from "../bench/bench_data.ts";
import { readCheckpointLedger } from "../bench/leakage.ts";
import { getBenchmark } from "../bench/registry.ts";
import { intersectLedgers } from "../data/ledger.ts";
import type { Catalog } from "../ursa/catalog.ts";
import { readJsonFile } from "./run_directory.ts";

/** Outcome of the overlap check. */
export interface OverlapReport {
  suite: string;
  checkpointDir: string;
  /** Content hash of the held-out data (what results are keyed by). */
  datasetHash: string;
  heldOut: { recordings: number; seconds: number; sessions: number };
  trained: { recordings: number; seconds: number };
  /** Recordings read by both, with the overlapping time. */
  overlaps: {
    recordingHash: string;
    session: string | null;
    seconds: number;
    intervals: [number, number][];
  }[];
  /** Total overlapping seconds (0 = disjoint: evaluation is allowed). */
  overlapSeconds: number;
}

function num(v: unknown, field: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new Error(
      `Cannot check overlap as the checkpoint's config has no numeric ${field}: current value is ${
        JSON.stringify(v)
      }`,
    );
  }
  return v;
}

/** How the checkpoint's model reads data, from its `config.json` (resolved kwargs). */
export function benchInputOfConfig(config: Record<string, unknown>): BenchModelInput {
  const data = (config.data ?? {}) as Record<string, unknown>;
  const query = (data.ursaQuery ?? {}) as Record<string, unknown>;
  const kwargs = ((config.model as Record<string, unknown> | undefined)?.kwargs ?? {}) as Record<
    string,
    unknown
  >;
  const list = (v: unknown, field: string) => {
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
      throw new Error(
        `Cannot check overlap as the checkpoint's config has no ${field} list: current value is ${
          JSON.stringify(v)
        }`,
      );
    }
    return v as string[];
  };
  const trainWindow = num(data.trainWindow, "data.trainWindow");
  return {
    modalities: list(query.modalities, "data.ursaQuery.modalities"),
    derived: list(query.derived, "data.ursaQuery.derived"),
    trainWindow,
    evalStride: typeof data.evalWindowStride === "number" ? data.evalWindowStride : trainWindow / 2,
    patch: num(kwargs.patch, "model.kwargs.patch"),
    latentStep: num(kwargs.latentStep, "model.kwargs.latentStep"),
    numLatents: num(kwargs.numLatents, "model.kwargs.numLatents"),
  };
}

/**
 * Intersects suite `suiteKey`'s held-out data with the ledger of the checkpoint in `checkpointDir`.
 *
 * @throws when the suite is unknown, the checkpoint has no ledger or config, or the catalog cannot
 * provide the held-out data (each message names what is missing).
 * @example
 * ```ts
 * import { checkTrainTestOverlap } from "./overlap_check.ts";
 * import { openCatalog } from "../ursa/catalog.ts";
 * const catalog = await openCatalog(".orion/catalog");
 * const report = await checkTrainTestOverlap("runs/demo/ckpt-step000000300", "cognitive_load_eval@1", catalog);
 * console.log(report.overlapSeconds === 0 ? "disjoint" : `${report.overlaps.length} recordings overlap`);
 * ```
 */
export async function checkTrainTestOverlap(
  checkpointDir: string,
  suiteKey: string,
  catalog: Catalog,
): Promise<OverlapReport> {
  const suite = getBenchmark(suiteKey).suite();
  const doc = await readJsonFile(join(checkpointDir, "config.json"));
  if (!doc) {
    throw new Error(`Cannot check overlap as ${join(checkpointDir, "config.json")} is missing or unreadable`);
  }
  const input = benchInputOfConfig((doc.config as Record<string, unknown> | undefined) ?? doc);
  const trained = await readCheckpointLedger(checkpointDir);
  const data = await openBenchData(catalog, {
    query: suite.heldOutData(),
    isHeldOut: suite.isHeldOut?.bind(suite),
  }, input);
  const overlaps = intersectLedgers(data.heldOutLedger, trained);
  return {
    suite: suiteKey,
    checkpointDir,
    datasetHash: data.datasetHash,
    heldOut: {
      recordings: new Set(data.heldOutLedger.entries().map((e) => e.recording_hash)).size,
      seconds: data.heldOutLedger.totalSeconds(),
      sessions: new Set(data.groups.map((g) => g.session)).size,
    },
    trained: {
      recordings: new Set(trained.entries().map((e) => e.recording_hash)).size,
      seconds: trained.totalSeconds(),
    },
    overlaps: overlaps.map((o) => ({
      recordingHash: o.recording_hash,
      session: data.recordingSessions.get(o.recording_hash) ?? null,
      seconds: o.seconds,
      intervals: o.intervals,
    })),
    overlapSeconds: overlaps.reduce((n, o) => n + o.seconds, 0),
  };
}
