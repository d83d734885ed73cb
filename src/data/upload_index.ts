/**
 * Host-side index arrays a POYO training step uploads with each batch besides the batch itself: one token
 * mask per modality and the CSR inverses of the channel and session embedding indices (the layout of
 * `gatherIndex` in `src/ops/embedding.ts`). They depend only on the batch and the vocabulary sizes, so the
 * loader computes them while it assembles the batch (on its workers), and `batchUploadArrays` uses them
 * instead of computing them on the training thread.
 *
 * @module
 */
import type { PoyoBatch } from "./batch.ts";

/** Vocabulary sizes the index arrays are computed for. */
export interface UploadIndexSizes {
  /** Modalities M (masks 0..M-1). */
  numModalities: number;
  /** Channel vocabulary size (including the padding word). */
  numChannels: number;
  /** Session vocabulary size (including the padding word). */
  numSessions: number;
}

/** The index arrays of one batch, with the sizes they were computed for. */
export interface BatchUploadIndex extends UploadIndexSizes {
  /** [M] × [B·N]: 1 where the token has modality m and is not padding (unit ≠ 0), else 0. */
  modalityMasks: Float32Array[];
  /** CSR inverse of `unit` over the channel vocabulary ({@link indexInverse}). */
  unitInverse: Int32Array;
  /** CSR inverse of `querySession` over the session vocabulary. */
  sessionInverse: Int32Array;
}

/**
 * CSR inverse of an index array: `out[0..vocab]` are row offsets (out[v + 1] − out[v] = occurrences of v),
 * then the positions of each value in increasing order; out-of-range values are skipped. Written into
 * `into` (length vocab + 1 + indices.length) when given. Identical to
 * `gatherIndex` of `src/ops/embedding.ts` (tested), kept here so loader workers need no GPU modules.
 *
 * @example
 * ```ts
 * indexInverse(Int32Array.of(1, 0, 1), 2); // [0, 1, 3, 1, 0, 2]
 * ```
 */
export function indexInverse(indices: Int32Array, vocab: number, into?: Int32Array): Int32Array {
  const t = indices.length;
  const out = into ? into.fill(0, 0, vocab + 1) : new Int32Array(vocab + 1 + t);
  // Runs of equal values (a batch's units come in runs of one channel's patches) are counted and written
  // at once: the same result as one element at a time, ≈ 2× faster on batches. Run ends are kept in a
  // scratch array so that the second pass does not scan again.
  if (runEnds.length < t) runEnds = new Int32Array(Math.max(t, 2 * runEnds.length));
  const ends = runEnds;
  let runs = 0;
  for (let i = 0; i < t;) {
    const r = indices[i];
    let j = i + 1;
    while (j < t && indices[j] === r) j++;
    if (r >= 0 && r < vocab) out[r + 1] += j - i;
    ends[runs++] = j;
    i = j;
  }
  for (let v = 0; v < vocab; v++) out[v + 1] += out[v];
  const fill = out.slice(0, vocab);
  for (let run = 0, i = 0; run < runs; run++) {
    const r = indices[i], j = ends[run];
    if (r >= 0 && r < vocab) {
      let at = vocab + 1 + fill[r];
      for (let k = i; k < j; k++) out[at++] = k;
      fill[r] += j - i;
    }
    i = j;
  }
  // Positions past the in-range count (out-of-range values are skipped) stay zero.
  if (into) into.fill(0, vocab + 1 + out[vocab]);
  return out;
}

/** Run ends of {@link indexInverse} (grown as needed, reused: one per thread). */
let runEnds = new Int32Array(0);

/** Per-modality token masks of a batch (see {@link BatchUploadIndex.modalityMasks}), fresh or into `into`. */
export function modalityMasks(
  batch: Pick<PoyoBatch, "modality" | "unit">,
  numModalities: number,
  into?: Float32Array[],
): Float32Array[] {
  const { modality, unit } = batch;
  const n = unit.length;
  const masks = into ?? Array.from({ length: numModalities }, () => new Float32Array(n));
  // Runs of one modality and padding state (a batch's tokens come in runs) are filled at once, each
  // element of each mask written once (fresh masks are zero already).
  for (let i = 0; i < n;) {
    const real = unit[i] !== 0;
    let m = -1, j = i + 1;
    if (real) {
      m = modality[i];
      while (j < n && modality[j] === m && unit[j] !== 0) j++;
    } else {
      while (j < n && unit[j] === 0) j++;
    }
    for (let q = 0; q < numModalities; q++) {
      if (q === m) masks[q].fill(1, i, j);
      else if (into) masks[q].fill(0, i, j);
    }
    i = j;
  }
  return masks;
}

/**
 * The upload index arrays of a batch for the given vocabulary sizes: fresh arrays, or written into `into`
 * (arrays of the same sizes; every element is overwritten).
 *
 * @example
 * ```ts ignore
 * batch.uploadIndex = batchUploadIndex(batch, { numModalities: 2, numChannels: 205, numSessions: 19 });
 * ```
 */
export function batchUploadIndex(
  batch: Pick<PoyoBatch, "modality" | "unit" | "querySession">,
  sizes: UploadIndexSizes,
  into?: BatchUploadIndex,
): BatchUploadIndex {
  return {
    ...sizes,
    modalityMasks: modalityMasks(batch, sizes.numModalities, into?.modalityMasks),
    unitInverse: indexInverse(batch.unit, sizes.numChannels, into?.unitInverse),
    sessionInverse: indexInverse(batch.querySession, sizes.numSessions, into?.sessionInverse),
  };
}
