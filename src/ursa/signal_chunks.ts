/**
 * Reading decoded signal chunks, shared by the main thread's `SignalReader` cache and the loader workers'
 * `ChunkMirror` (`src/data/chunk_mirror.ts`). Nothing here imports the catalog, so a loader worker loads
 * neither Arrow nor LanceDB.
 *
 * @module
 */
import type { SampleRange, SignalLayout } from "./signal_store.ts";

const chunkKeyCache = new WeakMap<SignalLayout, string[]>();

/**
 * The chunk cache keys (`assetId#chunk`) of a layout, by chunk index (callers still write
 * `keys[chunk] ??= \`${assetId}#${chunk}\`` for a chunk past the layout's end). The strings are made once
 * per layout object: a key built for every lookup costs its construction and hashing each time (about half
 * of a batch's cache checks).
 */
export function chunkKeys(layout: SignalLayout): string[] {
  let keys = chunkKeyCache.get(layout);
  if (!keys) {
    const n = Math.max(0, Math.ceil(layout.numSamples / layout.chunkSamples));
    keys = Array.from({ length: n }, (_, chunk) => `${layout.assetId}#${chunk}`);
    chunkKeyCache.set(layout, keys);
  }
  return keys;
}

/**
 * Copies every channel of samples [start, start + length) of an asset into `dest` (sample i of channel c at
 * `dest[at + c * stride + i]`; samples outside the asset are skipped) from its chunks, which
 * `chunkAt(chunk, key)` returns (or throws for). Channel by channel, each channel's pieces from consecutive
 * chunks next to each other, so that `dest` is written sequentially: ≈ 1.2× faster than chunk by chunk when
 * the batch memory is not in cache (a loader's rotating batch slots).
 */
export function copyRangeFromChunks(
  { layout, start, length }: SampleRange,
  chunkAt: (chunk: number, key: string) => Float32Array,
  dest: Float32Array,
  at: number,
  stride: number,
): void {
  const { chunkSamples, numChannels, assetId } = layout;
  const keys = chunkKeys(layout);
  const end = Math.min(start + length, layout.numSamples);
  let pieces = 0;
  for (let position = Math.max(0, start); position < end;) {
    const chunk = Math.floor(position / chunkSamples);
    const data = chunkAt(chunk, keys[chunk] ??= `${assetId}#${chunk}`);
    const chunkStart = chunk * chunkSamples;
    const chunkLength = data.length / numChannels;
    const to = Math.min(chunkLength, end - chunkStart);
    pieceData[pieces] = data;
    pieceFrom[pieces] = position - chunkStart;
    pieceTo[pieces] = to;
    pieceAt[pieces] = at + position - start;
    pieceLength[pieces] = chunkLength;
    pieces++;
    position = chunkStart + to;
  }
  for (let c = 0; c < numChannels; c++) {
    for (let p = 0; p < pieces; p++) {
      const base = c * pieceLength[p];
      dest.set(pieceData[p].subarray(base + pieceFrom[p], base + pieceTo[p]), pieceAt[p] + c * stride);
    }
  }
  pieceData.fill(EMPTY, 0, pieces); // hold no chunk past the copy
}

/** The pieces of one range in {@link copyRangeFromChunks} (reused by every call; grown as needed). */
const pieceData: Float32Array[] = [];
const pieceFrom: number[] = [];
const pieceTo: number[] = [];
const pieceAt: number[] = [];
const pieceLength: number[] = [];
const EMPTY = new Float32Array(0);
