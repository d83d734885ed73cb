/** A tiny POYO + synthetic data setup shared by the training tests. */
import type { ResolvedPoyoKwargs } from "../../src/models/poyo_kwargs.ts";
import { type SyntheticBatchShape, syntheticVocabulary } from "../../src/train/synthetic_batch.ts";
import type { TrainerSettings } from "../../src/train/trainer.ts";
import "../../src/ops/mod.ts";

export const tinyShape: SyntheticBatchShape = {
  batchSize: 6,
  window: 2,
  channels: [{ modality: "eeg", count: 4, rate: 32 }, { modality: "pupil", count: 1, rate: 16 }],
  patch: 8,
  numLatents: 4,
  latentStep: 0.5,
  numClasses: 3,
  participants: 3,
};

export const tinyKwargs: ResolvedPoyoKwargs = {
  dim: 32,
  depth: 1,
  dimHead: 8,
  crossHeads: 1,
  selfHeads: 2,
  numLatents: 4,
  latentStep: 0.5,
  patch: 8,
  tMin: 1e-4,
  tMax: 2.0627,
  ffnDropout: 0.2,
  linDropout: 0.4,
  atnDropout: 0,
  numClasses: 3,
};

export const tinyVocab = syntheticVocabulary(tinyShape);

export function tinySettings(overrides: Partial<TrainerSettings> = {}): TrainerSettings {
  return {
    seed: 7,
    rank: 0,
    optimizer: { kind: "adamw", beta2: 0.999, eps: 1e-8, weightDecay: 1e-4, maxGradNorm: 1, emaDecay: null },
    schedule: { kind: "constant", lr: 3e-3, totalSteps: 100, warmupSteps: 0, beta1: 0.9 },
    readbackEvery: 10,
    ...overrides,
  };
}
