/**
 * Which checkpoint of a source run a fine-tuning stage starts from (`FinetuneFrom.checkpoint`): `"best"` by
 * the source run's `training.monitor` (`val_loss`/`train_loss` from each checkpoint's
 * `metrics/snapshot.json`, or a benchmark metric `<suite>@<version>/<metric>` from the catalog's
 * `benchmark_results`), `"last"`, a step number, or a checkpoint hash (or a unique prefix of one).
 *
 * Only checkpoints still on disk are candidates (retention may have removed some). The chosen checkpoint is
 * fully verified; one that fails verification is an error, never silently replaced by another.
 *
 * @module
 */
import {
  type CheckpointSummary,
  listCheckpointDirs,
  type LoadedCheckpoint,
  readCheckpoint,
  summarizeCheckpoint,
} from "../checkpoint/checkpoint_reader.ts";
import { metricValue } from "../checkpoint/retention.ts";
import type { CheckpointSelector } from "../config/finetune_from.ts";
import { type BenchmarkResult, listBenchmarkResults } from "../bench/results.ts";
import type { Catalog } from "../ursa/catalog.ts";

/** How the source run ranks its checkpoints (its `training.monitor` / `monitorMode`). */
export interface SelectionMonitor {
  monitor: string;
  /** null = "min" for losses, "max" otherwise. */
  monitorMode: "min" | "max" | null;
}

/** Options of {@link selectCheckpoint}. */
export interface SelectCheckpointOptions {
  /** Source run name (messages, benchmark lookups). */
  run: string;
  /** Needed for `"best"`. */
  monitor?: SelectionMonitor | null;
  /** Needed for `"best"` by a benchmark metric. */
  catalog?: Catalog;
}

/** A selected, verified checkpoint and why it was chosen. */
export interface SelectedCheckpoint {
  checkpoint: LoadedCheckpoint;
  /** e.g. `best by val_loss (min): 0.8123 at step 300 of 4 checkpoints`. */
  reason: string;
}

/** Thrown when no checkpoint matches; the message names what exists. */
export class CheckpointSelectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CheckpointSelectionError";
  }
}

/** The direction a monitor improves in. */
export function monitorDirection(m: SelectionMonitor): "min" | "max" {
  return m.monitorMode ?? (m.monitor.includes("loss") ? "min" : "max");
}

/** A monitored metric of a snapshot: the key itself, or `loss` for `train_loss`. */
export function snapshotMetric(metrics: CheckpointSummary["metrics"], monitor: string): number | null {
  const direct = metricValue(metrics, monitor);
  if (direct !== null) return direct;
  return monitor === "train_loss" ? metricValue(metrics, "loss") : null;
}

function listing(candidates: CheckpointSummary[]): string {
  if (candidates.length === 0) return "none";
  return candidates
    .map((c) => `step ${c.step} (${c.manifest ? c.manifest.checkpointHash.slice(0, 12) : c.problem})`)
    .join(", ");
}

/**
 * Candidate checkpoints of a run directory (newest first) with manifest, metrics and lineage (no hashing).
 *
 * @example
 * ```ts
 * const found = await checkpointCandidates("runs/pretrain");
 * console.log(found.map((c) => c.step));
 * ```
 */
export async function checkpointCandidates(runDir: string): Promise<CheckpointSummary[]> {
  const out: CheckpointSummary[] = [];
  for (const entry of await listCheckpointDirs(runDir)) out.push(await summarizeCheckpoint(entry));
  return out;
}

/**
 * Picks the checkpoint `selector` names among `candidates` (see the module documentation) without reading
 * tensors; returns the candidate and the reason.
 *
 * @throws {CheckpointSelectionError} naming the existing checkpoints (or metrics/results) when none matches.
 */
export async function pickCheckpoint(
  candidates: CheckpointSummary[],
  selector: CheckpointSelector,
  options: SelectCheckpointOptions,
): Promise<{ candidate: CheckpointSummary; reason: string }> {
  const run = JSON.stringify(options.run);
  const valid = candidates.filter((c) => c.manifest !== null);
  if (valid.length === 0) {
    throw new CheckpointSelectionError(
      `Cannot select checkpoint ${
        JSON.stringify(selector)
      } of run ${run} as it has no complete checkpoint: current checkpoints are ${
        listing(candidates)
      }; train (or resume) the source run first`,
    );
  }
  if (selector === "last") {
    const last = valid.reduce((a, b) => (b.step > a.step ? b : a));
    return { candidate: last, reason: `last checkpoint (step ${last.step})` };
  }
  if (typeof selector === "number") {
    const at = valid.find((c) => c.step === selector);
    if (!at) {
      throw new CheckpointSelectionError(
        `Cannot select checkpoint step ${selector} of run ${run} as it has no checkpoint at that step (retention may have removed it): current checkpoints are ${
          listing(valid)
        }`,
      );
    }
    return { candidate: at, reason: `step ${selector}` };
  }
  if (selector !== "best") {
    const matches = valid.filter((c) => c.manifest!.checkpointHash.startsWith(selector));
    if (matches.length !== 1) {
      throw new CheckpointSelectionError(
        `Cannot select checkpoint ${selector} of run ${run} as ${
          matches.length === 0 ? "no checkpoint" : `${matches.length} checkpoints`
        } of that run ${matches.length === 0 ? "has" : "have"} that hash${
          matches.length > 1 ? " prefix" : ""
        }: current checkpoints are ${listing(valid)}`,
      );
    }
    return {
      candidate: matches[0],
      reason: `checkpoint ${matches[0].manifest!.checkpointHash.slice(0, 12)}`,
    };
  }
  const monitor = options.monitor;
  if (!monitor) {
    throw new CheckpointSelectionError(
      `Cannot select the best checkpoint of run ${run} as no monitored metric is known for it: current monitor is null; set training.monitor on the source run, or select "last" or a step`,
    );
  }
  const mode = monitorDirection(monitor);
  const better = (a: number, b: number) => (mode === "min" ? a < b : a > b);
  if (monitor.monitor.includes("/")) {
    return await bestByBenchmark(valid, monitor.monitor, mode, better, options);
  }
  let best: { c: CheckpointSummary; v: number } | null = null;
  for (const c of [...valid].sort((a, b) => a.step - b.step)) {
    const v = snapshotMetric(c.metrics, monitor.monitor);
    if (v === null) continue;
    if (!best || better(v, best.v) || v === best.v) best = { c, v }; // ties go to the later step
  }
  if (!best) {
    const keys = [...new Set(valid.flatMap((c) => Object.keys(c.metrics ?? {})))].sort();
    throw new CheckpointSelectionError(
      `Cannot select the best checkpoint of run ${run} by ${monitor.monitor} as none of its checkpoints recorded it: current metrics are [${
        keys.join(", ")
      }] in ${listing(valid)}; select "last" or a step, or monitor a recorded metric`,
    );
  }
  return {
    candidate: best.c,
    reason:
      `best by ${monitor.monitor} (${mode}): ${best.v} at step ${best.c.step} of ${valid.length} checkpoint(s)`,
  };
}

async function bestByBenchmark(
  valid: CheckpointSummary[],
  monitor: string,
  mode: "min" | "max",
  better: (a: number, b: number) => boolean,
  options: SelectCheckpointOptions,
): Promise<{ candidate: CheckpointSummary; reason: string }> {
  const run = JSON.stringify(options.run);
  const slash = monitor.indexOf("/");
  const suiteKey = monitor.slice(0, slash), metric = monitor.slice(slash + 1);
  if (!options.catalog) {
    throw new CheckpointSelectionError(
      `Cannot select the best checkpoint of run ${run} by ${monitor} as no catalog was given to read benchmark_results from`,
    );
  }
  const byHash = new Map(valid.map((c) => [c.manifest!.checkpointHash, c]));
  const results = (await listBenchmarkResults(options.catalog, { suiteKey }))
    .filter((r) => byHash.has(r.checkpoint_hash) && typeof r.metrics[metric]?.value === "number");
  // Whole-suite results when there are any; otherwise the partial ones (then all measured the same way).
  const full = results.filter((r) => r.partial_subset === 1);
  const ranked = full.length > 0 ? full : results;
  let best: BenchmarkResult | null = null;
  for (const r of [...ranked].sort((a, b) => (a.step ?? 0) - (b.step ?? 0))) {
    const v = r.metrics[metric].value as number;
    const b = best?.metrics[metric].value as number | undefined;
    if (b === undefined || better(v, b) || v === b) best = r;
  }
  if (!best) {
    throw new CheckpointSelectionError(
      `Cannot select the best checkpoint of run ${run} by ${monitor} as the catalog at ${options.catalog.dir} has no ${suiteKey} result with ${metric} on any of its checkpoints: current checkpoints are ${
        listing(valid)
      }; benchmark them (orion eval <checkpoint> --suite ${suiteKey}) or select "last"`,
    );
  }
  const candidate = byHash.get(best.checkpoint_hash)!;
  return {
    candidate,
    reason: `best by ${monitor} (${mode}): ${best.metrics[metric].value} at step ${candidate.step}${
      best.partial_subset < 1 ? ` (on a ${best.partial_subset} subset)` : ""
    } of ${ranked.length} result(s)`,
  };
}

/**
 * Selects and reads (verifying every file) the checkpoint of the run in `runDir` that `selector` names.
 *
 * @throws {CheckpointSelectionError} when no checkpoint matches, naming what exists;
 *   `CheckpointIntegrityError` when the selected one fails verification.
 * @example
 * ```ts
 * import { selectCheckpoint } from "./checkpoint_selection.ts";
 * const { checkpoint, reason } = await selectCheckpoint("runs/pretrain", "best", {
 *   run: "pretrain", monitor: { monitor: "val_loss", monitorMode: null },
 * });
 * console.log(checkpoint.step, reason);
 * ```
 */
export async function selectCheckpoint(
  runDir: string,
  selector: CheckpointSelector,
  options: SelectCheckpointOptions,
): Promise<SelectedCheckpoint> {
  const { candidate, reason } = await pickCheckpoint(await checkpointCandidates(runDir), selector, options);
  return { checkpoint: await readCheckpoint(candidate.dir), reason };
}
