/**
 * Deterministic synthetic checkpoint states for tests: every value is a counter-based hash of
 * (seed, stream, index), so two calls with the same arguments give byte-identical states.
 *
 * @module
 */
import type { CheckpointState, TensorSet } from "../../src/checkpoint/checkpoint_state.ts";

/** murmur3's 32-bit finalizer of (seed, stream, index): a counter-based generator. */
export function hash32(seed: number, stream: number, index: number): number {
  let h = (seed ^ Math.imul(stream + 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 0x7f4a7c15, 0xc2b2ae35)) >>>
    0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A uniform float in [0, 1) from (seed, stream, index). */
export function uniform(seed: number, stream: number, index: number): number {
  return hash32(seed, stream, index) / 2 ** 32;
}

function floats(seed: number, stream: number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = uniform(seed, stream, i) * 2 - 1;
  return out;
}

/** Options of {@link syntheticState}. */
export interface SyntheticOptions {
  /** Elements of the largest weight tensor (default 4096). */
  weightElements?: number;
  worldSize?: number;
  gpus?: number;
  metrics?: Record<string, number>;
  benchmarks?: boolean;
}

/** Builds a complete, deterministic CheckpointState. */
export function syntheticState(seed: number, options: SyntheticOptions = {}): CheckpointState {
  const n = options.weightElements ?? 4096;
  const weights: TensorSet = {
    "encoder.weight": { dtype: "F32", shape: [n / 64, 64], data: floats(seed, 1, n) },
    "encoder.bias": { dtype: "F32", shape: [64], data: floats(seed, 2, 64) },
    "readout.weight_bf16": {
      dtype: "BF16",
      shape: [3, 5],
      data: Uint16Array.from({ length: 15 }, (_, i) => hash32(seed, 3, i) & 0xffff),
    },
    "vocab.ids": {
      dtype: "I32",
      shape: [7],
      data: Int32Array.from({ length: 7 }, (_, i) => hash32(seed, 4, i) | 0),
    },
    "empty": { dtype: "F32", shape: [0, 3], data: new Float32Array(0) },
  };
  const ema: TensorSet = {
    "encoder.weight": { dtype: "F32", shape: [n / 64, 64], data: floats(seed, 5, n) },
    "encoder.bias": { dtype: "F32", shape: [64], data: floats(seed, 6, 64) },
  };
  const optimizerTensors: TensorSet = {
    "exp_avg/encoder.weight": { dtype: "F32", shape: [n / 64, 64], data: floats(seed, 7, n) },
    "exp_avg_sq/encoder.weight": { dtype: "F32", shape: [n / 64, 64], data: floats(seed, 8, n) },
    "step/encoder.weight": { dtype: "I64", shape: [1], data: BigInt64Array.of(BigInt(seed)) },
    "mask": { dtype: "U8", shape: [3], data: Uint8Array.of(1, 0, 1) },
  };
  const worldSize = options.worldSize ?? 1;
  const state: CheckpointState = {
    config: {
      model: { name: "poyo", kwargs: { dim: 64, depth: 2 } },
      seed,
      optim: { lr: 1e-3, betas: [0.9, 0.999] },
    },
    model: { weights, ema },
    optimizer: {
      tensors: optimizerTensors,
      state: {
        paramGroups: [{ lr: 1e-3, weightDecay: 0.01, params: ["encoder.weight", "encoder.bias"] }],
        step: seed,
      },
    },
    scheduler: { kind: "cosine", lastStep: seed, warmup: 100 },
    gradScaler: { scale: 65536, growthTracker: 3 },
    rng: {
      cpu: { key: [hash32(seed, 9, 0), hash32(seed, 9, 1)], counter: seed * 10 },
      gpu: Array.from(
        { length: options.gpus ?? 2 },
        (_, i) => ({ key: [i, seed], counter: "18446744073709551615" }),
      ),
    },
    dataloader: { epoch: 1, position: seed % 97, shards: ["a", "b"] },
    dataHashes: {
      recordings: [{
        recordingHash: "ab".repeat(32),
        windows: [[0, 1.5], [2, 3.5]],
        derivedAssetIds: ["x.eeg_clean"],
      }],
    },
    metrics: options.metrics ?? { loss: 1 / (seed + 1), val_loss: uniform(seed, 10, 0) },
    lineage: { parentRun: null, stepsConsumed: seed },
  };
  if (worldSize > 1) {
    state.distributed = Array.from({ length: worldSize }, (_, r) => ({ rank: r, cursor: r * 10 }));
  }
  if (options.benchmarks ?? true) state.benchmarks = { "decoding_r2": { r2: 0.5, at: seed } };
  return state;
}
