/** A tiny POYO + synthetic data setup shared by the training tests. */
import type { ResolvedPoyoKwargs } from "../../src/models/poyo_kwargs.ts";
import { type SyntheticBatchShape, syntheticVocabulary } from "../../src/train/synthetic_batch.ts";
import type { TrainerSettings } from "../../src/train/trainer.ts";
import { BENCH_PRESETS } from "../../src/train/bench_presets.ts";
import "../../src/ops/mod.ts";

/** The `tiny` benchmark preset, at batch 6. */
export const tinyShape: SyntheticBatchShape = { ...BENCH_PRESETS.tiny.shape, batchSize: 6 };

export const tinyKwargs: ResolvedPoyoKwargs = BENCH_PRESETS.tiny.kwargs;

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
