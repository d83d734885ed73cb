/**
 * Checkpoint retention: one policy keeps the union of
 * - the last `keepLast` checkpoints (by step),
 * - the best `keepBest.k` by a metric of `metrics/snapshot.json` (`min` or `max`),
 * - every checkpoint whose step is a multiple of `keepEvery`,
 * - every pinned checkpoint (referenced by a pipeline stage or a pending benchmark; pins are passed in as
 *   checkpoint names, directory paths or checkpoint hashes).
 * Everything else is deleted. A directory whose manifest cannot be read is never deleted by retention
 * (it is reported for inspection; `ckpt verify` says what is wrong).
 *
 * @module
 */
import { resolve } from "node:path";
import { z } from "zod";
import type { JsonObject } from "./checkpoint_state.ts";
import { listCheckpointDirs, summarizeCheckpoint } from "./checkpoint_reader.ts";
import { cleanStaleScratchDirs, removeCheckpointDir } from "./scratch_dirs.ts";

/** The zod schema of a retention policy. */
export const RetentionPolicySchema = z.strictObject({
  keepLast: z.number().int().min(1).describe(
    "keep the newest k checkpoints (at least 1, so resume always works)",
  ),
  keepBest: z.strictObject({
    k: z.number().int().min(1),
    metric: z.string().min(1).describe("key (or dotted path) in metrics/snapshot.json, e.g. val_loss"),
    mode: z.enum(["min", "max"]),
  }).optional().describe("keep the best k checkpoints by a monitored metric"),
  keepEvery: z.number().int().min(1).optional().describe("keep checkpoints whose step is a multiple of this"),
});

/** A retention policy. */
export type RetentionPolicy = z.output<typeof RetentionPolicySchema>;

/**
 * Validates a retention policy.
 *
 * @throws {Error} "Cannot use retention policy as <field> ...".
 * @example
 * ```ts
 * import { parseRetentionPolicy } from "./retention.ts";
 * parseRetentionPolicy({ keepLast: 3, keepBest: { k: 2, metric: "val_loss", mode: "min" } });
 * ```
 */
export function parseRetentionPolicy(input: unknown): RetentionPolicy {
  const parsed = RetentionPolicySchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(
      `Cannot use retention policy as ${issue.path.join(".") || "(root)"} is invalid: ${issue.message}`,
    );
  }
  return parsed.data;
}

/** A checkpoint retention decides about. */
export interface RetentionCandidate {
  name: string;
  dir: string;
  step: number;
  /** Null when the manifest cannot be read (such checkpoints are always kept). */
  hash: string | null;
  /** `metrics/snapshot.json`, or null. */
  metrics: JsonObject | null;
}

/** A decision and all the reasons for it. */
export interface RetentionDecision extends RetentionCandidate {
  reasons: string[];
}

/** What retention keeps and deletes, newest first. */
export interface RetentionPlan {
  keep: RetentionDecision[];
  delete: RetentionDecision[];
  /** Pins that matched no checkpoint (a stale reference, or a typo). */
  unmatchedPins: string[];
}

/** Reads a metric from a snapshot: a top-level key first, else a dotted path. */
export function metricValue(metrics: JsonObject | null, metric: string): number | null {
  if (metrics === null) return null;
  let value: unknown = Object.hasOwn(metrics, metric) ? metrics[metric] : undefined;
  if (value === undefined) {
    value = metric.split(".").reduce<unknown>(
      (node, key) =>
        node !== null && typeof node === "object" && Object.hasOwn(node, key)
          ? (node as Record<string, unknown>)[key]
          : undefined,
      metrics,
    );
  }
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/**
 * Decides which checkpoints to keep and which to delete. Pure: touches no files.
 *
 * @example
 * ```ts
 * import { planRetention } from "./retention.ts";
 * const plan = planRetention(candidates, { keepLast: 2, keepEvery: 10000 }, ["ckpt-step000005000"]);
 * for (const d of plan.delete) console.log("delete", d.name);
 * ```
 */
export function planRetention(
  checkpoints: readonly RetentionCandidate[],
  policy: RetentionPolicy,
  pins: Iterable<string> = [],
): RetentionPlan {
  const p = parseRetentionPolicy(policy);
  const sorted = [...checkpoints].sort((a, b) => b.step - a.step);
  const reasons = new Map<RetentionCandidate, string[]>(sorted.map((c) => [c, []]));
  const readable = sorted.filter((c) => c.hash !== null);
  for (const c of sorted) {
    if (c.hash === null) reasons.get(c)!.push("manifest unreadable: left for inspection (see ckpt verify)");
  }
  readable.slice(0, p.keepLast).forEach((c, i) =>
    reasons.get(c)!.push(`last ${p.keepLast} (#${i + 1} newest)`)
  );
  if (p.keepBest !== undefined) {
    const { k, metric, mode } = p.keepBest;
    const scored = readable
      .map((c) => ({ c, value: metricValue(c.metrics, metric) }))
      .filter((s): s is { c: RetentionCandidate; value: number } => s.value !== null)
      .sort((a, b) => (mode === "min" ? a.value - b.value : b.value - a.value) || b.c.step - a.c.step);
    scored.slice(0, k).forEach(({ c, value }, i) =>
      reasons.get(c)!.push(`best ${k} by ${metric} (${mode}): #${i + 1} with ${value}`)
    );
  }
  if (p.keepEvery !== undefined) {
    for (const c of readable) {
      if (c.step % p.keepEvery === 0) reasons.get(c)!.push(`every ${p.keepEvery} steps`);
    }
  }
  const unmatchedPins: string[] = [];
  for (const pin of pins) {
    const resolved = resolve(pin);
    const matches = sorted.filter((c) => c.name === pin || c.hash === pin || resolve(c.dir) === resolved);
    if (matches.length === 0) unmatchedPins.push(pin);
    for (const c of matches) reasons.get(c)!.push(`pinned by ${pin}`);
  }
  const plan: RetentionPlan = { keep: [], delete: [], unmatchedPins };
  for (const c of sorted) {
    const why = reasons.get(c)!;
    if (why.length > 0) plan.keep.push({ ...c, reasons: why });
    else plan.delete.push({ ...c, reasons: ["not last, best, periodic or pinned"] });
  }
  return plan;
}

/** Options of {@link gcCheckpoints}. */
export interface GcOptions {
  /** Checkpoint names, paths or hashes that must be kept. */
  pins?: Iterable<string>;
  /** Plan only: delete nothing (not even stale scratch directories). */
  dryRun?: boolean;
}

/**
 * Applies a retention policy to a run directory: deletes what {@link planRetention} says (each deletion
 * atomic: renamed to `.trash-ckpt-*`, then removed) and removes stale scratch directories.
 *
 * @returns the plan, plus the scratch directories removed (empty on a dry run).
 */
export async function gcCheckpoints(
  runDir: string,
  policy: RetentionPolicy,
  options: GcOptions = {},
): Promise<RetentionPlan & { removedScratch: string[] }> {
  const summaries = await Promise.all((await listCheckpointDirs(runDir)).map(summarizeCheckpoint));
  const candidates: RetentionCandidate[] = summaries.map((s) => ({
    name: s.name,
    dir: s.dir,
    step: s.step,
    hash: s.manifest?.checkpointHash ?? null,
    metrics: s.metrics,
  }));
  const plan = planRetention(candidates, policy, options.pins ?? []);
  if (options.dryRun) return { ...plan, removedScratch: [] };
  const removedScratch = await cleanStaleScratchDirs(runDir);
  for (const d of plan.delete) await removeCheckpointDir(d.dir);
  return { ...plan, removedScratch };
}
