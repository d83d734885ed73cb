/**
 * POYO hyper-parameters (`ModelConfig.kwargs`): the schema, its defaults and the named presets.
 *
 * Names are the camelCase spelling of the contract's snake_case names (`dim_head` → `dimHead`,
 * `num_latents` → `numLatents`, ...); see `docs/config.md` for the full mapping.
 *
 * @module
 */
import { z } from "zod";
import type { SameShape } from "../config/config_shape.ts";

const PoyoKwargsChecked = z.strictObject({
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
}).check(poyoCoherenceCheck());

/** The zod schema of POYO's kwargs: the single source of truth for their types, defaults and docs. */
export const PoyoKwargsSchema: z.ZodType<PoyoKwargs, PoyoKwargsInput> = PoyoKwargsChecked;

/** POYO kwargs with every schema default filled in (`latentStep`/`numClasses` may still be open). */
export interface PoyoKwargs {
  /** Model width D (must be even). */
  dim: number;
  /** Number of latent self-attention layers. */
  depth: number;
  /** Per-head width dh (multiple of 4). */
  dimHead: number;
  /** Heads of encoder/decoder cross-attention. */
  crossHeads: number;
  /** Heads of latent self-attention. */
  selfHeads: number;
  /** Latents per latent step M. */
  numLatents: number;
  /** Spacing of latent times in seconds; default trainWindow / 8. */
  latentStep?: number;
  /** Samples per input token P. */
  patch: number;
  /** Shortest rotary period, seconds. */
  tMin: number;
  /** Longest rotary period, seconds. */
  tMax: number;
  /** Dropout inside every FFN. */
  ffnDropout: number;
  /** Dropout on processing-layer residual branches. */
  linDropout: number;
  /** Dropout on attention probabilities. */
  atnDropout: number;
  /** Readout width C; default from the task labels. */
  numClasses?: number;
}

/** POYO kwargs as a user writes them (every field optional). */
export type PoyoKwargsInput = Partial<PoyoKwargs>;

const _poyoKwargsMatchSchema: [
  SameShape<z.output<typeof PoyoKwargsChecked>, PoyoKwargs>,
  SameShape<z.input<typeof PoyoKwargsChecked>, PoyoKwargsInput>,
] = [true, true];

/** Fully resolved kwargs: also `latentStep` and `numClasses` fixed from the data. */
export type ResolvedPoyoKwargs = PoyoKwargs & { latentStep: number; numClasses: number };

/**
 * Named model sizes of the contract.
 *
 * @example
 * ```ts
 * import { POYO_PRESETS } from "./poyo_kwargs.ts";
 * console.log(POYO_PRESETS.poyo_1_3m.dim); // 64
 * ```
 */
export const POYO_PRESETS: {
  /** ~1.3M parameters (with a small vocabulary). */
  readonly poyo_1_3m: {
    readonly dim: 64;
    readonly depth: 6;
    readonly crossHeads: 2;
    readonly selfHeads: 8;
    readonly numLatents: 16;
  };
  /** ~11.8M parameters. */
  readonly poyo_11_8m: {
    readonly dim: 128;
    readonly depth: 24;
    readonly crossHeads: 4;
    readonly selfHeads: 8;
    readonly numLatents: 32;
  };
} = {
  /** ~1.3M parameters (with a small vocabulary). */
  poyo_1_3m: { dim: 64, depth: 6, crossHeads: 2, selfHeads: 8, numLatents: 16 },
  /** ~11.8M parameters. */
  poyo_11_8m: { dim: 128, depth: 24, crossHeads: 4, selfHeads: 8, numLatents: 32 },
} as const satisfies Record<string, PoyoKwargsInput>;

/** Name of a POYO preset. */
export type PoyoPresetName = keyof typeof POYO_PRESETS;

/** One incoherence in POYO kwargs; `path` is relative to the kwargs object. */
export interface PoyoKwargsProblem {
  path: string[];
  message: string;
  fix: string;
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/**
 * Coherence problems of POYO kwargs on their own (the schema checks types and ranges). Reads defensively, so it
 * also works on raw, partly invalid input: dim even; dimHead a multiple of 4 and ≥ 8 (the rotary embedding needs
 * F = dimHead / 4 ≥ 2 frequencies); tMin < tMax; dropout probabilities below 1.
 */
export function poyoKwargsProblems(kwargs: Record<string, unknown>): PoyoKwargsProblem[] {
  const out: PoyoKwargsProblem[] = [];
  const dim = num(kwargs.dim);
  if (dim !== undefined && dim % 2 !== 0) {
    out.push({
      path: ["dim"],
      message:
        `Cannot use POYO dim = ${dim} as the channel embedding takes D/2 and the value map D/2: current value is odd`,
      fix: `set model.kwargs.dim to an even number, e.g. ${dim + 1}`,
    });
  }
  const dimHead = num(kwargs.dimHead);
  if (dimHead !== undefined && (dimHead % 4 !== 0 || dimHead < 8)) {
    const suggestion = Math.max(8, Math.round(dimHead / 4) * 4);
    out.push({
      path: ["dimHead"],
      message:
        `Cannot use POYO dimHead = ${dimHead} as the rotary embedding needs a multiple of 4 with at least 2 frequencies (≥ 8): current value is ${dimHead}`,
      fix: `set model.kwargs.dimHead to a multiple of 4 that is at least 8, e.g. ${suggestion}`,
    });
  }
  const tMin = num(kwargs.tMin) ?? 1e-4;
  const tMax = num(kwargs.tMax) ?? 2.0627;
  if (tMin >= tMax) {
    out.push({
      path: [num(kwargs.tMax) !== undefined ? "tMax" : "tMin"],
      message:
        `Cannot use rotary periods tMin = ${tMin} s and tMax = ${tMax} s as tMin must be below tMax: current values are reversed or equal`,
      fix: "set model.kwargs.tMin < model.kwargs.tMax (defaults 1e-4 and 2.0627 seconds)",
    });
  }
  for (const key of ["ffnDropout", "linDropout", "atnDropout"]) {
    const p = num(kwargs[key]);
    if (p !== undefined && p >= 1) {
      out.push({
        path: [key],
        message: `Cannot use ${key} = ${p} as a dropout of 1 drops everything: current value is ${p}`,
        fix: `set model.kwargs.${key} to a probability in [0, 1)`,
      });
    }
  }
  return out;
}

/**
 * Problems of POYO kwargs against the training window (seconds): the latent layout must fit the window
 * (`latentStep ≤ trainWindow`). When `latentStep` is absent the default `trainWindow / 8` always fits.
 */
export function poyoWindowProblems(
  kwargs: Record<string, unknown>,
  trainWindow: number,
): PoyoKwargsProblem[] {
  const latentStep = num(kwargs.latentStep);
  if (latentStep === undefined || latentStep <= trainWindow) return [];
  return [{
    path: ["latentStep"],
    message:
      `Cannot place latents every ${latentStep} s in a ${trainWindow} s window as the first latent step would already lie outside it: current value is ${latentStep}`,
    fix: `set model.kwargs.latentStep ≤ data.trainWindow (${trainWindow}), e.g. ${
      trainWindow / 8
    }, or drop it for the default trainWindow / 8`,
  }];
}

/** Fills the kwargs default that depends on the window: `latentStep = trainWindow / 8`. */
export function resolvePoyoKwargs(
  kwargs: Record<string, unknown>,
  trainWindow: number,
): Record<string, unknown> {
  return kwargs.latentStep === undefined ? { ...kwargs, latentStep: trainWindow / 8 } : kwargs;
}

function poyoCoherenceCheck() {
  const check = z.superRefine((value: unknown, ctx) => {
    if (value === null || typeof value !== "object") return;
    for (const p of poyoKwargsProblems(value as Record<string, unknown>)) {
      ctx.addIssue({
        code: "custom",
        path: p.path,
        message: p.message,
        params: { fix: p.fix },
        input: undefined,
      });
    }
  });
  // Run even when other kwargs already failed, so every problem is reported at once.
  (check._zod.def as { when?: () => boolean }).when = () => true;
  return check;
}
