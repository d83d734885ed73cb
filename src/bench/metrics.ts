/**
 * Classification metrics over per-block predictions, with 95 % bootstrap confidence intervals.
 *
 * Definitions (C = the classes present in the labels or the predictions of the evaluated set):
 * - accuracy: correct / n.
 * - balanced accuracy: the mean over the classes present in the labels of each class's recall.
 * - macro-F1: the mean over C of F1 = 2·P·R / (P + R), where a class never predicted has precision 0, a
 *   class never labelled has recall 0, and F1 is 0 when P + R = 0 (scikit-learn's `zero_division=0`).
 * - per-participant accuracy: accuracy over each participant's predictions, reported as
 *   `per_participant_accuracy/<participant>`.
 *
 * Bootstrap: predictions are clustered by their `unit` (a recording session: the recordings made
 * together, the unit of independence; windows and blocks of one session are correlated, so they are never
 * resampled one by one). Units are sorted (code-unit order); replicate r draws K units with replacement,
 * draw j taking unit `floor(uniformAt(seed, r, j) · K)` (the counter-based generator of
 * `src/ursa/counter_random.ts`, so every replicate is reproducible on its own), and the metric is computed on
 * the concatenated predictions of the drawn units. A per-group metric (per participant) resamples that
 * group's units only, drawing with `uniformAt(seed, metric name, group, r, j)`. Replicates where the metric is undefined
 * are skipped. The interval is the (1 − confidence)/2 and (1 + confidence)/2 percentiles of the replicate
 * values, linearly interpolated between order statistics (Hyndman–Fan type 7, numpy's default).
 *
 * @module
 */
import { uniformAt } from "../ursa/counter_random.ts";

/** The prediction for one evaluated unit of one label (a block of a recording session). */
export interface ClassPrediction {
  /** Identifier of the predicted item, e.g. `p042/s1#3` (session key and label interval). */
  id: string;
  /** Participant id (for per-participant metrics). */
  participant: string;
  /** Bootstrap cluster: the recording session the item belongs to (e.g. `p042/s1`). */
  unit: string;
  /** True class index. */
  label: number;
  /** Predicted class index. */
  predicted: number;
}

/** One metric of a benchmark suite. */
export interface Metric {
  /** Name in results and monitors (`<suite>@<version>/<name>`); letters, digits, `_`, `.`, `-`. */
  name: string;
  /** One line for `orion bench ls` and docs. */
  description: string;
  /** The value over `predictions`, or null when undefined (e.g. no predictions). */
  compute(predictions: readonly ClassPrediction[]): number | null;
  /**
   * When set, the metric is computed separately for each value of this key (e.g. the participant) and
   * reported as `<name>/<key>`; each key's interval resamples that key's units only.
   */
  groupBy?: (prediction: ClassPrediction) => string;
}

/** A metric's value with its bootstrap interval. */
export interface MetricValue {
  /** Point estimate on all predictions (null when undefined). */
  value: number | null;
  /** Lower/upper bounds of the bootstrap interval (null when no replicate defined the metric). */
  ci_low: number | null;
  /** Upper bound of the bootstrap interval (null when no replicate defined the metric). */
  ci_high: number | null;
  /** Number of predictions the point estimate used. */
  n: number;
  /** Number of bootstrap units (sessions) behind it. */
  units: number;
}

/** Bootstrap settings. */
export interface BootstrapOptions {
  /** Replicates (default 1000; 0 = no intervals). */
  replicates?: number;
  /** Seed of the counter-based resampling (default 0). */
  seed?: number;
  /** Interval level (default 0.95). */
  confidence?: number;
}

/** Fraction of correct predictions; null for none. */
export function accuracy(predictions: readonly ClassPrediction[]): number | null {
  if (predictions.length === 0) return null;
  let correct = 0;
  for (const p of predictions) if (p.predicted === p.label) correct++;
  return correct / predictions.length;
}

/** Per-class counts: true positives, labelled (support) and predicted, over the classes that occur. */
function classCounts(predictions: readonly ClassPrediction[]) {
  const classes = new Map<number, { tp: number; labelled: number; predicted: number }>();
  const at = (c: number) => {
    let e = classes.get(c);
    if (!e) classes.set(c, e = { tp: 0, labelled: 0, predicted: 0 });
    return e;
  };
  for (const p of predictions) {
    at(p.label).labelled++;
    at(p.predicted).predicted++;
    if (p.label === p.predicted) at(p.label).tp++;
  }
  return [...classes.entries()].sort((a, b) => a[0] - b[0]).map(([, e]) => e);
}

/** Mean recall over the classes present in the labels; null for none. */
export function balancedAccuracy(predictions: readonly ClassPrediction[]): number | null {
  const labelled = classCounts(predictions).filter((c) => c.labelled > 0);
  if (labelled.length === 0) return null;
  let sum = 0;
  for (const c of labelled) sum += c.tp / c.labelled;
  return sum / labelled.length;
}

/** Mean F1 over the classes present in the labels or the predictions; null for none. */
export function macroF1(predictions: readonly ClassPrediction[]): number | null {
  const classes = classCounts(predictions);
  if (classes.length === 0) return null;
  let sum = 0;
  for (const c of classes) {
    const precision = c.predicted > 0 ? c.tp / c.predicted : 0;
    const recall = c.labelled > 0 ? c.tp / c.labelled : 0;
    sum += precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  }
  return sum / classes.length;
}

/**
 * `accuracy`.
 *
 * @example
 * ```ts
 * import { ACCURACY } from "./metrics.ts";
 * console.log(ACCURACY.compute([{ id: "a", participant: "p1", unit: "p1/s1", label: 1, predicted: 1 }])); // 1
 * ```
 */
export const ACCURACY: Metric = {
  name: "accuracy",
  description: "fraction of blocks whose argmax prediction is the label",
  compute: accuracy,
};

/**
 * `balanced_accuracy`.
 *
 * @example
 * ```ts
 * import { BALANCED_ACCURACY } from "./metrics.ts";
 * console.log(BALANCED_ACCURACY.name); // "balanced_accuracy"
 * ```
 */
export const BALANCED_ACCURACY: Metric = {
  name: "balanced_accuracy",
  description: "mean recall over the labelled classes",
  compute: balancedAccuracy,
};

/**
 * `macro_f1`.
 *
 * @example
 * ```ts
 * import { MACRO_F1 } from "./metrics.ts";
 * console.log(MACRO_F1.name); // "macro_f1"
 * ```
 */
export const MACRO_F1: Metric = {
  name: "macro_f1",
  description: "mean F1 over classes (zero_division = 0)",
  compute: macroF1,
};

/**
 * `per_participant_accuracy/<participant>`.
 *
 * @example
 * ```ts
 * import { PER_PARTICIPANT_ACCURACY } from "./metrics.ts";
 * console.log(PER_PARTICIPANT_ACCURACY.groupBy?.({ id: "a", participant: "p042", unit: "u", label: 0, predicted: 0 })); // "p042"
 * ```
 */
export const PER_PARTICIPANT_ACCURACY: Metric = {
  name: "per_participant_accuracy",
  description: "accuracy over each participant's blocks, as per_participant_accuracy/<participant>",
  compute: accuracy,
  groupBy: (p) => p.participant,
};

/**
 * The q-quantile (0 ≤ q ≤ 1) of ascending `sorted` values, linearly interpolated between order statistics
 * (Hyndman–Fan type 7).
 *
 * @example
 * ```ts
 * percentile([1, 2, 3, 4], 0.25); // 1.75
 * ```
 */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new Error("Cannot take a percentile of no values");
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/**
 * The units drawn by bootstrap replicate `replicate` out of `numUnits` sorted units (see the module
 * documentation): draw j is `floor(uniformAt(seed, ...keys, replicate, j) · numUnits)`.
 */
export function bootstrapDraws(
  seed: number,
  keys: readonly (string | number)[],
  replicate: number,
  numUnits: number,
): number[] {
  const out = new Array<number>(numUnits);
  for (let j = 0; j < numUnits; j++) {
    out[j] = Math.floor(uniformAt(seed, ...keys, replicate, j) * numUnits);
  }
  return out;
}

function validateBootstrap(options: BootstrapOptions) {
  const replicates = options.replicates ?? 1000;
  const seed = options.seed ?? 0;
  const confidence = options.confidence ?? 0.95;
  if (!Number.isInteger(replicates) || replicates < 0) {
    throw new Error(
      `Cannot bootstrap with replicates ${replicates}: it must be a non-negative integer (0 = no intervals)`,
    );
  }
  if (!Number.isInteger(seed) || seed < 0) {
    throw new Error(`Cannot bootstrap with seed ${seed}: it must be a non-negative integer`);
  }
  if (!(confidence > 0 && confidence < 1)) {
    throw new Error(`Cannot bootstrap a ${confidence} interval: the confidence must lie in (0, 1)`);
  }
  return { replicates, seed, confidence };
}

/** Point estimates and intervals of `metric` over one cluster set. */
function scoreOne(
  compute: Metric["compute"],
  predictions: readonly ClassPrediction[],
  keys: readonly (string | number)[],
  settings: { replicates: number; seed: number; confidence: number },
): MetricValue {
  const byUnit = new Map<string, ClassPrediction[]>();
  for (const p of predictions) {
    let list = byUnit.get(p.unit);
    if (!list) byUnit.set(p.unit, list = []);
    list.push(p);
  }
  const units = [...byUnit.keys()].sort();
  const clusters = units.map((u) => byUnit.get(u)!);
  const value = compute(predictions);
  const samples: number[] = [];
  if (units.length > 0) {
    for (let r = 0; r < settings.replicates; r++) {
      const sample: ClassPrediction[] = [];
      for (const k of bootstrapDraws(settings.seed, keys, r, units.length)) sample.push(...clusters[k]);
      const v = compute(sample);
      if (v !== null && Number.isFinite(v)) samples.push(v);
    }
  }
  samples.sort((a, b) => a - b);
  const tail = (1 - settings.confidence) / 2;
  return {
    value,
    ci_low: samples.length > 0 ? percentile(samples, tail) : null,
    ci_high: samples.length > 0 ? percentile(samples, 1 - tail) : null,
    n: predictions.length,
    units: units.length,
  };
}

/**
 * Every metric over `predictions` with bootstrap intervals, keyed by metric name (per-group metrics as
 * `<name>/<group>`, groups sorted). Global metrics share the same replicates.
 *
 * @example
 * ```ts
 * const scores = scoreMetrics(predictions, [ACCURACY, PER_PARTICIPANT_ACCURACY], { replicates: 1000, seed: 0 });
 * console.log(scores.accuracy.value, scores.accuracy.ci_low, scores.accuracy.ci_high);
 * ```
 */
export function scoreMetrics(
  predictions: readonly ClassPrediction[],
  metrics: readonly Metric[],
  options: BootstrapOptions = {},
): Record<string, MetricValue> {
  const settings = validateBootstrap(options);
  const out: Record<string, MetricValue> = {};
  const seen = new Set<string>();
  for (const metric of metrics) {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(metric.name)) {
      throw new Error(
        `Cannot score metric ${
          JSON.stringify(metric.name)
        } as metric names use letters, digits, '_', '.', '-': rename it`,
      );
    }
    if (seen.has(metric.name)) {
      throw new Error(`Cannot score metric ${metric.name} twice: the suite lists it more than once`);
    }
    seen.add(metric.name);
    if (!metric.groupBy) {
      out[metric.name] = scoreOne(metric.compute, predictions, [], settings);
      continue;
    }
    const groups = new Map<string, ClassPrediction[]>();
    for (const p of predictions) {
      const g = metric.groupBy(p);
      let list = groups.get(g);
      if (!list) groups.set(g, list = []);
      list.push(p);
    }
    for (const g of [...groups.keys()].sort()) {
      out[`${metric.name}/${g}`] = scoreOne(metric.compute, groups.get(g)!, [metric.name, g], settings);
    }
  }
  return out;
}
