/**
 * The shape of a benchmark suite: what data it holds out, which metrics it reports, and how it measures a
 * model. Suites are registered by `name@version` (see `registry.ts`); the framework (`evaluate.ts`) opens
 * the held-out data, checks it against the model's training ledger, and wraps a suite's measurement into a
 * content-addressed `BenchmarkResult`, so suite code never handles hashes or storage.
 *
 * @module
 */
import type { QuerySpecInput } from "../ursa/query_spec.ts";
import type { BenchModel } from "./bench_model.ts";
import type { BenchData, HeldOutCandidate } from "./bench_data.ts";
import type { ClassPrediction, Metric, MetricValue } from "./metrics.ts";

/** Options of one measurement. */
export interface BenchRunOptions {
  /** Fraction of windows evaluated, in (0, 1] (see `partial_subset.ts`). */
  partialSubset: number;
  /** Seed of the partial subset. */
  partialSeed: number;
}

/** The per-block outcome kept in a result (for audits and per-block analyses). */
export interface BlockPrediction extends ClassPrediction {
  /** Windows whose logits were averaged. */
  windows: number;
}

/** What a suite's `run` measures. */
export interface BenchmarkMeasurement {
  /** Metric name (per-group metrics as `<name>/<group>`) → value and interval. */
  metrics: Record<string, MetricValue>;
  /** Windows evaluated (after the partial subset). */
  windows_used: number;
  /** Windows in the held-out data. */
  windows_total: number;
  /** Blocks (labelled groups) evaluated. */
  groups_used: number;
  /** Blocks in the held-out data. */
  groups_total: number;
  /** Interval settings: level, replicates, seed, and the resampled unit. */
  bootstrap: { confidence: number; replicates: number; seed: number; unit: string };
  /** One entry per evaluated block. */
  predictions: BlockPrediction[];
}

/**
 * A benchmark suite. Decorate a class implementing it with `@benchmark({ name, version })`, or register
 * the same members with `registerBenchmark`.
 *
 * @example
 * ```ts
 * @benchmark({ name: "my_eval", version: 1 })
 * class MyEvalV1 implements BenchmarkSuite {
 *   heldOutData() { return { participants: ["p001"], labels: "cognitive_load" }; }
 *   metrics() { return [ACCURACY]; }
 *   run(model: BenchModel, data: BenchData, options: BenchRunOptions) {
 *     return runWindowAveragedClassification(model, data, { ...options, metrics: this.metrics() });
 *   }
 * }
 * ```
 */
export interface BenchmarkSuite {
  /** Participants, sessions and label track of the held-out data (modalities come from the model). */
  heldOutData(): QuerySpecInput;
  /** Which of the resolved sessions are held out (default: every session the query resolves to). */
  isHeldOut?(session: HeldOutCandidate): boolean;
  /** The metrics `run` reports. */
  metrics(): Metric[];
  /** Measures `model` on `data`. */
  run(model: BenchModel, data: BenchData, options: BenchRunOptions): Promise<BenchmarkMeasurement>;
}
