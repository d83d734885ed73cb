import assert from "node:assert/strict";
import { batchUploadIndex, indexInverse, modalityMasks } from "../../src/data/upload_index.ts";
import { gatherIndex } from "../../src/ops/embedding.ts";

/** One element at a time: the definition the run-wise implementation must match. */
function referenceMasks(modality: Int32Array, unit: Int32Array, numModalities: number): Float32Array[] {
  const masks = Array.from({ length: numModalities }, () => new Float32Array(unit.length));
  for (let i = 0; i < unit.length; i++) {
    const m = modality[i];
    if (unit[i] !== 0 && m >= 0 && m < numModalities) masks[m][i] = 1;
  }
  return masks;
}

/** A small deterministic generator (no dependency on Math.random). */
function lcg(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
}

Deno.test("upload index arrays: run-wise indexInverse and modalityMasks equal the element-wise definitions", () => {
  const rnd = lcg(1);
  for (let trial = 0; trial < 2000; trial++) {
    const t = Math.floor(rnd() * 60), vocab = 1 + Math.floor(rnd() * 6), m = 1 + Math.floor(rnd() * 3);
    // Values in [-1, vocab + 1] (out-of-range ones are skipped), in runs of random lengths.
    const unit = Int32Array.from({ length: t }, () => Math.floor(rnd() * (vocab + 3)) - 1);
    for (let i = 1; i < t; i++) if (rnd() < 0.6) unit[i] = unit[i - 1];
    const modality = Int32Array.from({ length: t }, () => Math.floor(rnd() * (m + 2)) - 1);
    for (let i = 1; i < t; i++) if (rnd() < 0.7) modality[i] = modality[i - 1];
    const want = gatherIndex(unit, vocab);
    assert.deepEqual(indexInverse(unit, vocab), want, `trial ${trial}`);
    // Written into reused memory holding stale values: every element is overwritten.
    assert.deepEqual(
      indexInverse(unit, vocab, new Int32Array(vocab + 1 + t).fill(77)),
      want,
      `trial ${trial}`,
    );
    const wantMasks = referenceMasks(modality, unit, m);
    assert.deepEqual(modalityMasks({ modality, unit }, m), wantMasks, `trial ${trial}`);
    const stale = Array.from({ length: m }, () => new Float32Array(t).fill(5));
    assert.deepEqual(modalityMasks({ modality, unit }, m, stale), wantMasks, `trial ${trial}`);
  }
  // A batch-like layout: runs of one channel's patches, then padding.
  const unit = Int32Array.of(3, 3, 3, 1, 1, 0, 0, 2, 2, 2, 0);
  const modality = Int32Array.of(1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0);
  const querySession = Int32Array.of(2, 1);
  const index = batchUploadIndex({ unit, modality, querySession }, {
    numModalities: 2,
    numChannels: 4,
    numSessions: 3,
  });
  assert.deepEqual(index.unitInverse, gatherIndex(unit, 4));
  assert.deepEqual(index.sessionInverse, gatherIndex(querySession, 3));
  assert.deepEqual(index.modalityMasks, referenceMasks(modality, unit, 2));
});
