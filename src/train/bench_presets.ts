/**
 * Model sizes used by the benchmarks (`scripts/bench_train.ts`, `scripts/bench_scaling.ts`): the contract's
 * presets with the seed's data shape (10 s windows, 32 EEG channels at 128 Hz, 2 pupil at 32 Hz, patch 16).
 *
 * @module
 */
import { POYO_PRESETS, type ResolvedPoyoKwargs } from "../models/poyo_kwargs.ts";
import type { SyntheticBatchShape } from "./synthetic_batch.ts";

const base = {
  dimHead: 64,
  latentStep: 1.25,
  patch: 16,
  tMin: 1e-4,
  tMax: 2.0627,
  ffnDropout: 0.2,
  linDropout: 0.4,
  atnDropout: 0,
  numClasses: 3,
};

/** Named model + data shapes: `poyo_1_3m`, `seed` (dim 512, depth 6, 64 latents), `tiny` (tests). */
export const BENCH_PRESETS: Record<
  string,
  { kwargs: ResolvedPoyoKwargs; shape: Omit<SyntheticBatchShape, "batchSize"> }
> = {
  poyo_1_3m: {
    kwargs: { ...base, ...POYO_PRESETS.poyo_1_3m, numLatents: 16 },
    shape: {
      window: 10,
      channels: [{ modality: "eeg", count: 32, rate: 128 }, { modality: "pupil", count: 2, rate: 32 }],
      patch: 16,
      numLatents: 16,
      latentStep: 1.25,
      numClasses: 3,
      participants: 60,
    },
  },
  seed: {
    kwargs: { ...base, dim: 512, depth: 6, crossHeads: 1, selfHeads: 8, numLatents: 64 },
    shape: {
      window: 10,
      channels: [{ modality: "eeg", count: 32, rate: 128 }, { modality: "pupil", count: 2, rate: 32 }],
      patch: 16,
      numLatents: 64,
      latentStep: 1.25,
      numClasses: 3,
      participants: 60,
    },
  },
  /** The default `configs/run.ts` model on its data shape (4 s windows, patch 32). */
  demo_small: {
    kwargs: {
      ...base,
      dim: 64,
      depth: 2,
      dimHead: 16,
      crossHeads: 1,
      selfHeads: 2,
      numLatents: 16,
      latentStep: 0.5,
      patch: 32,
    },
    shape: {
      window: 4,
      channels: [{ modality: "eeg", count: 32, rate: 128 }, { modality: "pupil", count: 2, rate: 32 }],
      patch: 32,
      numLatents: 16,
      latentStep: 0.5,
      numClasses: 3,
      participants: 60,
    },
  },
  tiny: {
    kwargs: {
      ...base,
      dim: 32,
      depth: 1,
      dimHead: 8,
      crossHeads: 1,
      selfHeads: 2,
      numLatents: 4,
      latentStep: 0.5,
      patch: 8,
    },
    shape: {
      window: 2,
      channels: [{ modality: "eeg", count: 4, rate: 32 }, { modality: "pupil", count: 1, rate: 16 }],
      patch: 8,
      numLatents: 4,
      latentStep: 0.5,
      numClasses: 3,
      participants: 3,
    },
  },
};
