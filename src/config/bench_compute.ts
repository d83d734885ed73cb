/**
 * `BenchCompute`: how benchmark suites are computed during training. The modes are implemented by
 * `src/bench/bench_runner.ts` (`BenchScheduler`); `docs/benchmarks.md` describes them.
 *
 * @module
 */
import { z } from "zod";
import type { SameShape, Unbranded } from "./config_shape.ts";
import { buildConfig } from "./config_builder.ts";

/** The zod schema of {@link BenchCompute}: fields, defaults and their documentation. */
export const BenchComputeSchema = z.strictObject({
  mode: z.enum(["async", "inline", "separate"]).default("async").describe(
    '"async": benchmark a weight snapshot in one side process beside training without pausing it; "inline": pause training while the suites run in the training process; "separate": one side process (or launcher job) per suite',
  ),
  partialSubset: z.number().gt(0).max(1).default(1).describe(
    "fraction of each suite evaluated at intermediate benches (a fixed subset keyed by the run seed); 1 = the whole suite",
  ),
  fullAtEnd: z.boolean().default(true).describe("evaluate the whole suite on the final checkpoint"),
}).brand<"BenchCompute">();

/** Validated bench computation settings with every default filled in. */
export interface BenchCompute {
  /**
   * "async": benchmark a weight snapshot in one side process beside training without pausing it; "inline":
   * pause training while the suites run in the training process; "separate": one side process (or launcher
   * job) per suite.
   */
  mode: "async" | "inline" | "separate";
  /** Fraction of each suite evaluated at intermediate benches (a fixed subset keyed by the run seed); 1 = all. */
  partialSubset: number;
  /** Evaluate the whole suite on the final checkpoint. */
  fullAtEnd: boolean;
}

/** Bench computation settings as a user writes them (every field optional). */
export type BenchComputeInput = Partial<BenchCompute>;

const _benchComputeMatchesSchema: [
  SameShape<Unbranded<z.output<typeof BenchComputeSchema>>, BenchCompute>,
  SameShape<z.input<typeof BenchComputeSchema>, BenchComputeInput>,
] = [true, true];

/**
 * Validates bench computation settings.
 *
 * @example
 * ```ts
 * import { BenchCompute } from "./bench_compute.ts";
 * const b = BenchCompute({ mode: "async", partialSubset: 0.1 });
 * console.log(b.fullAtEnd); // true
 * ```
 */
export function BenchCompute(input: BenchComputeInput = {}): BenchCompute {
  return buildConfig("BenchCompute", BenchComputeSchema, input);
}
