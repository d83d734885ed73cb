/**
 * The deterministic training order. Epoch e visits the training windows in the permutation
 * `epochPermutation(n, seed, e)` (Fisher–Yates driven by counter-based values keyed by (seed, epoch, i)).
 * The epochs concatenate into one stream; global step s covers stream positions
 * [s·B·W, (s+1)·B·W) (B = batch size per rank, W = world size) and rank r takes the B positions starting at
 * s·B·W + r·B. A batch near an epoch's end continues into the next epoch, so no window is dropped or
 * repeated within an epoch. The cursor {epoch, position} is the stream position of the next global batch;
 * it is the same on every rank.
 *
 * @module
 */
import { hashKeys } from "../ursa/counter_random.ts";

/** Where the next global batch starts. */
export interface LoaderCursor {
  epoch: number;
  /** Windows of this epoch already consumed by all ranks together. */
  position: number;
}

/** A permutation of 0..n-1 for (seed, epoch). */
export function epochPermutation(n: number, seed: number, epoch: number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor((hashKeys(seed, "order", epoch, i) / 4294967296) * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/** Advances a cursor by `count` stream positions. */
export function advanceCursor(cursor: LoaderCursor, count: number, numWindows: number): LoaderCursor {
  const total = cursor.position + count;
  return { epoch: cursor.epoch + Math.floor(total / numWindows), position: total % numWindows };
}

/**
 * Window indices (into the training list) of rank `rank`'s batch at `cursor`, and the cursor after the
 * global batch.
 */
export function batchAt(
  cursor: LoaderCursor,
  options: { numWindows: number; batchSize: number; rank: number; worldSize: number; seed: number },
  permutations: (epoch: number) => Uint32Array,
): { indices: number[]; epochs: number[]; next: LoaderCursor } {
  const { numWindows, batchSize, rank, worldSize } = options;
  let at = advanceCursor(cursor, rank * batchSize, numWindows);
  const indices: number[] = [];
  const epochs: number[] = [];
  for (let i = 0; i < batchSize; i++) {
    indices.push(permutations(at.epoch)[at.position]);
    epochs.push(at.epoch);
    at = advanceCursor(at, 1, numWindows);
  }
  return { indices, epochs, next: advanceCursor(cursor, batchSize * worldSize, numWindows) };
}

/** Parses a cursor from JSON text or a plain object, checking its fields. */
export function parseCursor(value: unknown): LoaderCursor {
  const v = typeof value === "string" ? JSON.parse(value) : value;
  if (
    !v || typeof v !== "object" || !Number.isInteger((v as LoaderCursor).epoch) ||
    !Number.isInteger((v as LoaderCursor).position) || (v as LoaderCursor).epoch < 0 ||
    (v as LoaderCursor).position < 0
  ) {
    throw new Error(
      `Cannot resume the loader from cursor ${
        JSON.stringify(v)
      }: it needs non-negative integers epoch and position`,
    );
  }
  return { epoch: (v as LoaderCursor).epoch, position: (v as LoaderCursor).position };
}
