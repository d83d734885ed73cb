/**
 * `BenchModel`: the one thing a benchmark needs from a model — logits for batches of windows — plus what
 * identifies the weights and what they were trained on. The benchmark framework never sees trainers, GPUs or
 * checkpoint formats; whoever loads a checkpoint builds one of these (see `setBenchModelLoader`).
 *
 * With the trainer: `predict: async (batches) => (await trainer.evaluate(batches)).logits`.
 *
 * @module
 */
import type { PoyoBatch } from "../data/batch.ts";
import type { DataLedger } from "../data/ledger.ts";

/** How a model reads data: merged into a suite's held-out query and used to cut and tokenize windows. */
export interface BenchModelInput {
  /** Modalities the model was trained on (the training query's `modalities`). */
  modalities: string[];
  /** Derived-signal versions, one per modality (the training query's `derived`). */
  derived: string[];
  /** Window length S, seconds (`data.trainWindow`). */
  trainWindow: number;
  /** Stride of the evaluation grid, seconds (default S/2: 50 % overlap; `data.evalWindowStride`). */
  evalStride?: number;
  /** Samples per token P. */
  patch: number;
  /** Latent spacing, seconds. */
  latentStep: number;
  /** Latents per step M. */
  numLatents: number;
  /** Queries per window (default 1). */
  numQueries?: number;
  /** The model's vocabularies: known words keep their index, held-out words are appended. */
  vocab?: { channels?: readonly string[]; sessions?: readonly string[] };
}

/**
 * A model as a benchmark sees it.
 *
 * @example
 * ```ts
 * const model: BenchModel = {
 *   checkpointHash: loaded.hash,
 *   dataLedger: DataLedger.fromJSON(loaded.state.dataHashes),
 *   input: { modalities: ["eeg", "pupil"], derived, trainWindow: 4, patch: 16, latentStep: 0.125, numLatents: 16 },
 *   batchSize: 32,
 *   predict: async (batches) => (await trainer.evaluate(batches)).logits,
 * };
 * ```
 */
export interface BenchModel {
  /**
   * Identifies the weights: the checkpoint hash (manifest `checkpointHash`) when they come from a
   * checkpoint or a weight-only snapshot written as one. Part of every result's content address.
   */
  checkpointHash: string;
  /**
   * Everything the weights were trained on (the checkpoint's `data_hashes/manifest.json`; for pipelines the
   * union over ancestor stages), or null when unknown — then evaluation is refused unless overlap is allowed.
   */
  dataLedger: DataLedger | null;
  /** How the model reads data; required to open held-out data from the catalog. */
  input?: BenchModelInput;
  /** Rows per batch handed to `predict` (default 32); the last batch is padded with weight-0 rows. */
  batchSize?: number;
  /**
   * Logits for every row and query of every batch, in order: batch by batch, row-major over
   * (row, query), i.e. `batch.batchSize · batch.numQueries` arrays of the model's class count per batch.
   * Rows and queries of weight 0 are ignored. Evaluation mode: no dropout, no gradients.
   */
  predict(batches: readonly PoyoBatch[]): Promise<Float32Array[]>;
  /** Frees whatever the model holds (GPU buffers); called once evaluation is over. */
  dispose?(): void | Promise<void>;
}
