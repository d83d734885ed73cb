/**
 * `FinetuneFrom`: start a run from another run's checkpoint (fine-tuning), optionally re-initializing some
 * weights and freezing the rest for a while.
 *
 * @module
 */
import { z } from "zod";
import type { SameShape, Unbranded } from "./config_shape.ts";
import { buildConfig } from "./config_builder.ts";
import { RunNameSchema } from "./run_name.ts";

/** `"best"`, `"last"`, a step number, or a checkpoint content hash (8–64 lowercase hex digits). */
const CHECKPOINT_SELECTOR_ERROR =
  'Cannot select a checkpoint this way as it must be "best", "last", a step number or a checkpoint hash (8-64 lowercase hex digits)';

/** `"best"`, `"last"`, a step number, or a checkpoint content hash (8–64 lowercase hex digits). */
export const CheckpointSelectorSchema = z.union([
  z.literal("best"),
  z.literal("last"),
  z.number({ error: CHECKPOINT_SELECTOR_ERROR }).int({ error: CHECKPOINT_SELECTOR_ERROR }).nonnegative({
    error: CHECKPOINT_SELECTOR_ERROR,
  }),
  z.string().regex(/^[0-9a-f]{8,64}$/, { error: CHECKPOINT_SELECTOR_ERROR }),
], { error: CHECKPOINT_SELECTOR_ERROR });

/** Which checkpoint of the source run to start from: "best", "last", a step, or a checkpoint hash. */
export type CheckpointSelector = "best" | "last" | number | string;

/** The zod schema of {@link FinetuneFrom}: fields, defaults and their documentation. */
export const FinetuneFromSchema = z.strictObject({
  run: z.union([RunNameSchema, z.looseObject({ name: RunNameSchema, runsDir: z.string().optional() })], {
    error: "Cannot use initFrom.run as it must be a run name or a RunConfig",
  }).describe("source run: its name, or its RunConfig (e.g. an earlier pipeline stage)"),
  runsDir: z.string().min(1).nullable().default(null).describe(
    "runs directory of the source run; null = the source RunConfig's, else this run's runsDir",
  ),
  checkpoint: CheckpointSelectorSchema.default("best").describe(
    '"best" | "last" | step number | checkpoint hash',
  ),
  weightOverrides: z.array(
    z.string().regex(/^[A-Za-z0-9_.]+$/, {
      error:
        "Cannot use this weight prefix as parameter names use letters, digits, '_' and '.' (e.g. \"readout\")",
    }),
  ).default([]).describe(
    'parameter-name prefixes NOT loaded from the checkpoint (freshly initialized), e.g. ["unit_emb", "session_emb", "readout"]',
  ),
  freezeUntilStep: z.number().int().nonnegative().nullable().default(null).describe(
    "loaded weights stay frozen until this step; null = training.freezeUntilStep",
  ),
}).transform((v) => ({
  run: typeof v.run === "string" ? v.run : v.run.name,
  runsDir: v.runsDir ?? (typeof v.run === "object" ? v.run.runsDir ?? null : null),
  checkpoint: v.checkpoint,
  weightOverrides: v.weightOverrides,
  freezeUntilStep: v.freezeUntilStep,
})).brand<"FinetuneFrom">();

/** A validated fine-tuning source (`run` reduced to the source run's name). */
export interface FinetuneFrom {
  /** The source run's name. */
  run: string;
  /** Runs directory of the source run; null = this run's runsDir. */
  runsDir: string | null;
  /** "best" | "last" | step number | checkpoint hash. */
  checkpoint: CheckpointSelector;
  /** Parameter-name prefixes NOT loaded from the checkpoint (freshly initialized), e.g. ["readout"]. */
  weightOverrides: string[];
  /** Loaded weights stay frozen until this step; null = training.freezeUntilStep. */
  freezeUntilStep: number | null;
}

/** A fine-tuning source as a user writes it. */
export interface FinetuneFromInput {
  /** Source run: its name, or its RunConfig (e.g. an earlier pipeline stage). */
  run: string | { name: string; runsDir?: string };
  /** Runs directory of the source run; null = the source RunConfig's, else this run's runsDir. */
  runsDir?: string | null;
  /** "best" (default) | "last" | step number | checkpoint hash. */
  checkpoint?: CheckpointSelector;
  /** Parameter-name prefixes NOT loaded from the checkpoint (freshly initialized). */
  weightOverrides?: string[];
  /** Loaded weights stay frozen until this step; null = training.freezeUntilStep. */
  freezeUntilStep?: number | null;
}

const _finetuneFromMatchesSchema: [
  SameShape<Unbranded<z.output<typeof FinetuneFromSchema>>, FinetuneFrom>,
  SameShape<Omit<z.input<typeof FinetuneFromSchema>, "run">, Omit<FinetuneFromInput, "run">>,
  SameShape<z.output<typeof CheckpointSelectorSchema>, CheckpointSelector>,
] = [true, true, true];

/**
 * Validates a fine-tuning source.
 *
 * @example
 * ```ts
 * import { FinetuneFrom } from "./finetune_from.ts";
 * const f = FinetuneFrom({ run: "pretrain_v3", checkpoint: "best", weightOverrides: ["unit_emb", "session_emb"] });
 * console.log(f.run); // "pretrain_v3"
 * ```
 */
export function FinetuneFrom(input: FinetuneFromInput): FinetuneFrom {
  return buildConfig("FinetuneFrom", FinetuneFromSchema, input);
}
