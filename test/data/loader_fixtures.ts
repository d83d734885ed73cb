/**
 * Shared by the loader tests: the small window options they open datasets with, and a check that two batches
 * are the same byte for byte (arrays, shape, windows, index arrays).
 */
import assert from "node:assert/strict";
import type { PoyoBatch } from "../../src/data/batch.ts";
import type { WindowDatasetOptions } from "../../src/data/window_dataset.ts";

/** 1 s windows, patch 16, 4 latents every 0.25 s, 70 % of sessions for training. */
export const LOADER_TEST_OPTIONS: WindowDatasetOptions = {
  trainWindow: 1,
  trainSplit: 0.7,
  patch: 16,
  latentStep: 0.25,
  numLatents: 4,
};

/** Every typed array of a {@linkcode PoyoBatch}. */
export const BATCH_ARRAYS = [
  "value",
  "unit",
  "modality",
  "time",
  "kvLen",
  "latentTime",
  "querySession",
  "queryTime",
  "label",
  "weight",
] as const;

/** Asserts `got` equals `want` bit for bit; `what` names the batch in the failure. */
export function assertSameBatch(got: PoyoBatch, want: PoyoBatch, what: string): void {
  for (const f of BATCH_ARRAYS) {
    const a = new Uint8Array(got[f].buffer, got[f].byteOffset, got[f].byteLength);
    const b = new Uint8Array(want[f].buffer, want[f].byteOffset, want[f].byteLength);
    assert.ok(a.length === b.length && a.every((x, i) => x === b[i]), `${what}: ${f} differs`);
  }
  assert.deepEqual(
    [got.batchSize, got.numTokens, got.patch, got.numQueries],
    [want.batchSize, want.numTokens, want.patch, want.numQueries],
    `${what}: shape differs`,
  );
  assert.deepEqual(got.windows, want.windows, `${what}: windows differ`);
  assert.deepEqual(got.uploadIndex, want.uploadIndex, `${what}: upload index arrays differ`);
}
