/**
 * `FinetuneFrom`: start a run from another run's checkpoint (fine-tuning), optionally re-initializing some
 * weights and freezing the rest for a while.
 *
 * @module
 */
import { z } from "zod";
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

/** Which checkpoint of the source run to start from. */
export type CheckpointSelector = z.output<typeof CheckpointSelectorSchema>;

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

/** A fine-tuning source as a user writes it. */
export type FinetuneFromInput = z.input<typeof FinetuneFromSchema>;
/** A validated fine-tuning source (`run` reduced to the source run's name). */
export type FinetuneFrom = z.output<typeof FinetuneFromSchema>;

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
