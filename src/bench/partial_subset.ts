/**
 * Partial subsets: a deterministic fraction of a suite's windows for cheap intermediate benchmarks.
 *
 * Window w (of recording h, starting at t seconds on that recording's clock) is kept when
 * `uniformAt(partialSeed, "partial", h, round(t · 10⁶)) < partialSubset`. The decision depends on that
 * window alone, so the same (seed, fraction) always picks the same windows whatever else the suite holds,
 * a larger fraction keeps a superset of a smaller one, and `partialSubset = 1` keeps everything.
 *
 * @module
 */
import { uniformAt } from "../ursa/counter_random.ts";
import type { BenchGroup, BenchWindow } from "./bench_data.ts";

/** Throws unless `fraction` is in (0, 1] and `seed` a non-negative integer. */
export function validatePartialSubset(fraction: number, seed: number): void {
  if (!(typeof fraction === "number" && fraction > 0 && fraction <= 1)) {
    throw new Error(
      `Cannot evaluate a partial subset of ${fraction}: partialSubset must lie in (0, 1] (1 = every window)`,
    );
  }
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new Error(
      `Cannot evaluate a partial subset with seed ${seed}: partialSeed must be a non-negative integer`,
    );
  }
}

/** Whether the window of `recordingHash` starting at `start` s is in the subset (see the module docs). */
export function inPartialSubset(
  recordingHash: string,
  start: number,
  partialSubset: number,
  partialSeed: number,
): boolean {
  if (partialSubset >= 1) return true;
  return uniformAt(partialSeed, "partial", recordingHash, Math.round(start * 1e6)) < partialSubset;
}

/** The kept windows, in group order, and counts. */
export interface PartialSelection {
  windows: BenchWindow[];
  windowsTotal: number;
  /** Groups with at least one kept window. */
  groupsUsed: number;
}

/**
 * Selects the partial subset of `groups`.
 *
 * @example
 * ```ts
 * const { windows } = selectPartialSubset(data.groups, 0.1, 7); // the same 10 % every time
 * ```
 */
export function selectPartialSubset(
  groups: readonly BenchGroup[],
  partialSubset: number,
  partialSeed: number,
): PartialSelection {
  validatePartialSubset(partialSubset, partialSeed);
  const windows: BenchWindow[] = [];
  let total = 0, groupsUsed = 0;
  for (const g of groups) {
    let kept = 0;
    for (const w of g.windows) {
      total++;
      if (inPartialSubset(w.recordingHash, w.start, partialSubset, partialSeed)) {
        windows.push(w);
        kept++;
      }
    }
    if (kept > 0) groupsUsed++;
  }
  return { windows, windowsTotal: total, groupsUsed };
}
