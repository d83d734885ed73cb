/**
 * `DataConfig`: which catalog data a run trains on and how it is cut into windows and splits.
 *
 * @module
 */
import { z } from "zod";
import { type QuerySpec, type QuerySpecInput, QuerySpecSchema } from "../ursa/query_spec.ts";
import type { SameShape, Unbranded } from "./config_shape.ts";
import { buildConfig } from "./config_builder.ts";
import { alwaysCheck } from "./schema_tools.ts";

/** Rounds to 12 decimals so that e.g. `1 - 0.85` is stored as `0.15`. */
function tidy(x: number): number {
  return Math.round(x * 1e12) / 1e12;
}

const DataConfigObject = z.strictObject({
  ursaQuery: QuerySpecSchema.prefault({}).describe(
    "catalog query: participants × modalities × derived versions (see QuerySpec)",
  ),
  catalogDir: z.string().min(1).nullable().default(null).describe(
    "catalog directory; null = the data layer's default catalog",
  ),
  trainWindow: z.number().positive().default(10).describe("length S of one training window, seconds"),
  trainSplit: z.number().gt(0).max(1).default(0.8).describe(
    "fraction of the data (by splitBy unit) used for training",
  ),
  valSplit: z.number().min(0).lt(1).nullable().default(null).describe(
    "fraction used for validation; null = everything not in the training split (1 - trainSplit)",
  ),
  splitBy: z.enum(["participant", "session", "recording"]).default("session").describe(
    "unit that is assigned whole to one split",
  ),
  splitSeed: z.number().int().nonnegative().default(0).describe("seed of the deterministic split assignment"),
  evalWindowStride: z.number().positive().nullable().default(null).describe(
    "stride of overlapping evaluation windows, seconds; null = trainWindow / 2",
  ),
  maxTokensPerWindow: z.number().int().positive().nullable().default(null).describe(
    "padded token count N per window; null = computed from the catalog (channels × samples / patch)",
  ),
  loaderWorkers: z.number().int().nonnegative().nullable().default(null).describe(
    "worker threads assembling training batches; null = min(4, cores - 1); 0 = the main thread (batches are identical either way)",
  ),
});

/** The zod schema of {@link DataConfig}: fields, defaults and their documentation. */
export const DataConfigSchema = alwaysCheck(DataConfigObject, (v, r) => {
  if (
    typeof v?.trainSplit === "number" && typeof v?.valSplit === "number" &&
    v.trainSplit + v.valSplit > 1 + 1e-9
  ) {
    r.report(
      ["valSplit"],
      `Cannot use data.valSplit = ${v.valSplit} with data.trainSplit = ${v.trainSplit} as together they exceed 1: current sum is ${
        tidy(v.trainSplit + v.valSplit)
      }`,
      `set data.valSplit ≤ ${tidy(1 - v.trainSplit)} or lower data.trainSplit`,
    );
  }
  if (
    typeof v?.trainWindow === "number" && typeof v?.evalWindowStride === "number" &&
    v.evalWindowStride > v.trainWindow
  ) {
    r.report(
      ["evalWindowStride"],
      `Cannot use data.evalWindowStride as it is longer than data.trainWindow (${v.trainWindow} s), which would skip data: current value is ${v.evalWindowStride}`,
      `set data.evalWindowStride ≤ ${v.trainWindow} (or null for trainWindow / 2)`,
    );
  }
}).transform((v) => ({
  ...v,
  valSplit: v.valSplit ?? tidy(1 - v.trainSplit),
  evalWindowStride: v.evalWindowStride ?? v.trainWindow / 2,
})).brand<"DataConfig">();

/** Validated data settings with every default (including derived ones) filled in. */
export interface DataConfig {
  /** Catalog query: participants × modalities × derived versions (see QuerySpec). */
  ursaQuery: QuerySpec;
  /** Catalog directory; null = the data layer's default catalog. */
  catalogDir: string | null;
  /** Length S of one training window, seconds. */
  trainWindow: number;
  /** Fraction of the data (by splitBy unit) used for training. */
  trainSplit: number;
  /** Fraction used for validation (resolved: 1 - trainSplit when left null). */
  valSplit: number;
  /** Unit that is assigned whole to one split. */
  splitBy: "participant" | "session" | "recording";
  /** Seed of the deterministic split assignment. */
  splitSeed: number;
  /** Stride of overlapping evaluation windows, seconds (resolved: trainWindow / 2 when left null). */
  evalWindowStride: number;
  /** Padded token count N per window; null = computed from the catalog (channels × samples / patch). */
  maxTokensPerWindow: number | null;
  /** Worker threads assembling training batches; null = min(4, cores − 1); 0 = the main thread. */
  loaderWorkers: number | null;
}

/** Data settings as a user writes them (every field optional; see {@link DataConfig}). */
export interface DataConfigInput {
  /** Catalog query (a `QuerySpec(...)` or its fields). */
  ursaQuery?: QuerySpecInput;
  /** Catalog directory; null = the data layer's default catalog. */
  catalogDir?: string | null;
  /** Length S of one training window, seconds (default 10). */
  trainWindow?: number;
  /** Fraction of the data used for training (default 0.8). */
  trainSplit?: number;
  /** Fraction used for validation; null = 1 - trainSplit. */
  valSplit?: number | null;
  /** Unit assigned whole to one split (default "session"). */
  splitBy?: "participant" | "session" | "recording";
  /** Seed of the split assignment (default 0). */
  splitSeed?: number;
  /** Stride of evaluation windows, seconds; null = trainWindow / 2. */
  evalWindowStride?: number | null;
  /** Padded token count per window; null = computed from the catalog. */
  maxTokensPerWindow?: number | null;
  /** Worker threads assembling training batches; null = min(4, cores − 1); 0 = the main thread. */
  loaderWorkers?: number | null;
}

const _dataConfigMatchesSchema: [
  SameShape<Unbranded<z.output<typeof DataConfigSchema>>, DataConfig>,
  SameShape<z.input<typeof DataConfigSchema>, DataConfigInput>,
] = [true, true];

/**
 * Validates data settings.
 *
 * @example
 * ```ts
 * import { DataConfig } from "./data_config.ts";
 * import { QuerySpec } from "../ursa/query_spec.ts";
 * const d = DataConfig({ ursaQuery: QuerySpec({ participants: ["p001"] }), trainWindow: 4, trainSplit: 0.85 });
 * console.log(d.valSplit); // 0.15
 * ```
 */
export function DataConfig(input: DataConfigInput = {}): DataConfig {
  return buildConfig("DataConfig", DataConfigSchema, input);
}
