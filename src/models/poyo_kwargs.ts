/**
 * POYO hyper-parameters (`ModelConfig.kwargs`): the schema, its defaults and the named presets.
 *
 * Names are the camelCase spelling of the contract's snake_case names (`dim_head` → `dimHead`,
 * `num_latents` → `numLatents`, ...); see `docs/config.md` for the full mapping.
 *
 * @module
 */
import { z } from "zod";

/** The zod schema of POYO's kwargs: the single source of truth for their types, defaults and docs. */
export const PoyoKwargsSchema = z.strictObject({
  dim: z.number().int().positive().default(512).describe("model width D (must be even)"),
  depth: z.number().int().nonnegative().default(6).describe("number of latent self-attention layers"),
  dimHead: z.number().int().positive().default(64).describe("per-head width dh (multiple of 4)"),
  crossHeads: z.number().int().positive().default(1).describe("heads of encoder/decoder cross-attention"),
  selfHeads: z.number().int().positive().default(8).describe("heads of latent self-attention"),
  numLatents: z.number().int().positive().default(64).describe("latents per latent step M"),
  latentStep: z.number().positive().optional().describe(
    "spacing of latent times in seconds; default trainWindow / 8",
  ),
  patch: z.number().int().positive().default(16).describe("samples per input token P"),
  tMin: z.number().positive().default(1e-4).describe("shortest rotary period, seconds"),
  tMax: z.number().positive().default(2.0627).describe("longest rotary period, seconds"),
  ffnDropout: z.number().min(0).max(1).default(0.2).describe("dropout inside every FFN"),
  linDropout: z.number().min(0).max(1).default(0.4).describe("dropout on processing-layer residual branches"),
  atnDropout: z.number().min(0).max(1).default(0.0).describe("dropout on attention probabilities"),
  numClasses: z.number().int().positive().optional().describe(
    "readout width C; default from the task labels",
  ),
});

/** POYO kwargs as a user writes them (every field optional). */
export type PoyoKwargsInput = z.input<typeof PoyoKwargsSchema>;
/** POYO kwargs with every schema default filled in (`latentStep`/`numClasses` may still be open). */
export type PoyoKwargs = z.output<typeof PoyoKwargsSchema>;

/** Fully resolved kwargs: also `latentStep` and `numClasses` fixed from the data. */
export type ResolvedPoyoKwargs = PoyoKwargs & { latentStep: number; numClasses: number };

/** Named model sizes of the contract. */
export const POYO_PRESETS = {
  /** ~1.3M parameters (with a small vocabulary). */
  poyo_1_3m: { dim: 64, depth: 6, crossHeads: 2, selfHeads: 8, numLatents: 16 },
  /** ~11.8M parameters. */
  poyo_11_8m: { dim: 128, depth: 24, crossHeads: 4, selfHeads: 8, numLatents: 32 },
} as const satisfies Record<string, PoyoKwargsInput>;

/** Name of a POYO preset. */
export type PoyoPresetName = keyof typeof POYO_PRESETS;
