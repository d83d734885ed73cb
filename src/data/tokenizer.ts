/**
 * Tokenization of windows into the contract's batch (`shared/spec/poyo.md`, "Inputs of one window").
 * Every channel of every modality contributes K = floor(S · fs / P) patches of P consecutive samples of its
 * derived signal; patch k of a window starting at session time t0 begins at the first sample at or after
 * t0 (index i0 = ceil((t0 − offset) · fs)) plus k·P, and its token time is that sample's time minus t0.
 * Tokens are ordered modality (sorted) → channel (recording order) → patch; patches that would leave the
 * recording are dropped; padding tokens (unit 0, zeros) fill each row up to the dataset's fixed N. Derived
 * assets hold finite values only (checked when they are built), so values are copied unchecked.
 *
 * @module
 */
import type { PoyoBatch } from "./batch.ts";
import type { SampleRange } from "../ursa/signal_store.ts";

/**
 * Cached samples a row is tokenized from: the catalog's `SignalReader` on the main thread, a
 * `ChunkMirror` in a loader worker.
 */
export interface CachedSamples {
  /**
   * Copies every channel of the range into `dest`: sample i of channel c lands at `dest[at + c * stride + i]`
   * (throws if a chunk is missing).
   */
  copyCachedInto(range: SampleRange, dest: Float32Array, at: number, stride: number): void;
}

/** What the tokenizer needs about one asset of a session. */
export interface TokenSource {
  modalityIndex: number;
  /** Channel vocabulary index of each channel. */
  units: Int32Array;
  samplingRate: number;
  timeOffset: number;
  /** Patches per channel in a window. */
  patchesPerChannel: number;
  layout: SampleRange["layout"];
}

/** Shape constants of a dataset's batches. */
export interface TokenShape {
  window: number;
  patch: number;
  numTokens: number;
  numQueries: number;
  latentTime: Float32Array;
}

/** One row to tokenize. */
export interface TokenRow {
  start: number;
  sources: TokenSource[];
  sessionIndex: number;
  label: number;
  weight: number;
}

/** First sample index at or after session time `t` (with a 1e-6-sample tolerance against rounding). */
export function firstSampleAt(t: number, source: { samplingRate: number; timeOffset: number }): number {
  return Math.ceil((t - source.timeOffset) * source.samplingRate - 1e-6);
}

/** Sample ranges the rows will read (for prefetching). */
export function rangesOf(rows: TokenRow[], patch: number): SampleRange[] {
  const out: SampleRange[] = [];
  for (const row of rows) {
    for (const s of row.sources) {
      out.push({ layout: s.layout, start: firstSampleAt(row.start, s), length: s.patchesPerChannel * patch });
    }
  }
  return out;
}

/** Allocates a zeroed batch of `rows` rows. */
export function allocateBatch(rows: number, shape: TokenShape): PoyoBatch {
  const { numTokens: n, patch: p, numQueries: q } = shape;
  return {
    batchSize: rows,
    numTokens: n,
    patch: p,
    numQueries: q,
    value: new Float32Array(rows * n * p),
    unit: new Int32Array(rows * n),
    modality: new Int32Array(rows * n),
    time: new Float32Array(rows * n),
    kvLen: new Int32Array(rows),
    latentTime: shape.latentTime,
    querySession: new Int32Array(rows * q),
    queryTime: new Float32Array(rows * q),
    label: new Int32Array(rows * q),
    weight: new Float32Array(rows * q),
    windows: [],
  };
}

/**
 * Tokenizes `rows` into a batch, one row each (`windows` left empty for the caller): a fresh one, or
 * `into` (every element of its arrays is overwritten).
 */
export function tokenizeRows(
  rows: TokenRow[],
  shape: TokenShape,
  reader: CachedSamples,
  into?: PoyoBatch,
): PoyoBatch {
  const batch = into ?? allocateBatch(rows.length, shape);
  for (let b = 0; b < rows.length; b++) tokenizeRow(batch, b, rows[b], shape, reader);
  return batch;
}

/**
 * Writes row `b` of `batch` from cached samples (call `reader.prefetch(rangesOf(...))` first). Returns the
 * number of real tokens.
 */
export function tokenizeRow(
  batch: PoyoBatch,
  b: number,
  row: TokenRow,
  shape: TokenShape,
  reader: CachedSamples,
): number {
  const { patch: p, numTokens: n, numQueries: q } = shape;
  let token = 0;
  for (const s of row.sources) {
    const i0 = firstSampleAt(row.start, s);
    const k0 = i0 >= 0 ? 0 : Math.ceil(-i0 / p);
    const k1 = Math.min(s.patchesPerChannel, Math.floor((s.layout.numSamples - i0) / p));
    if (k1 <= k0) continue;
    const count = k1 - k0;
    const first = token;
    if (first + s.units.length * count > n) {
      throw new Error(
        `Cannot tokenize a window into ${n} tokens: it needs more; the dataset's numTokens is too small`,
      );
    }
    const rowBase = (b * n + first) * p, channelStride = count * p;
    reader.copyCachedInto(
      { layout: s.layout, start: i0 + k0 * p, length: count * p },
      batch.value,
      rowBase,
      channelStride,
    );
    // The first channel's token times, then copied to the others (same patches, same times).
    const time = batch.time, at0 = b * n + token;
    for (let k = k0; k < k1; k++) {
      time[at0 + k - k0] = s.timeOffset + (i0 + k * p) / s.samplingRate - row.start;
    }
    for (let c = 0; c < s.units.length; c++) {
      const at = b * n + token;
      batch.unit.fill(s.units[c], at, at + count);
      if (c > 0) time.copyWithin(at, at0, at0 + count);
      token += count;
    }
    batch.modality.fill(s.modalityIndex, b * n + first, b * n + token);
  }
  batch.kvLen[b] = token;
  // Padding tokens are zero (a reused batch buffer may hold an earlier batch's values there).
  if (token < n) {
    const at = b * n + token, end = (b + 1) * n;
    batch.value.fill(0, at * p, end * p);
    batch.unit.fill(0, at, end);
    batch.modality.fill(0, at, end);
    batch.time.fill(0, at, end);
  }
  for (let j = 0; j < q; j++) {
    batch.querySession[b * q + j] = row.sessionIndex;
    batch.queryTime[b * q + j] = ((j + 0.5) / q) * shape.window;
    batch.label[b * q + j] = row.label;
    batch.weight[b * q + j] = row.weight;
  }
  return token;
}
