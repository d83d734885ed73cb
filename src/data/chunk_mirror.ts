/**
 * A loader worker's view of the main thread's chunk cache: decoded chunks (`SharedArrayBuffer`-backed, so
 * posting them shares memory instead of copying) keyed `assetId#chunk` like the `SignalReader` cache they
 * mirror. The main thread sends each chunk once per worker and tells the worker to drop what its cache evicts.
 *
 * @module
 */
import type { SampleRange } from "../ursa/signal_store.ts";
import { copyRangeFromChunks } from "../ursa/signal_chunks.ts";
import type { CachedSamples } from "./tokenizer.ts";

/**
 * Chunks held by a worker, read the way `SignalReader.copyCachedInto` reads its cache.
 *
 * @example
 * ```ts
 * const mirror = new ChunkMirror();
 * mirror.put("a#0", new Float32Array([1, 2, 3, 4])); // 2 channels × 2 samples, channel-major
 * const layout = { assetId: "a", numChannels: 2, numSamples: 2, chunkSamples: 2 };
 * const out = new Float32Array(2);
 * mirror.copyCachedInto({ layout, start: 1, length: 1 }, out, 0, 1);
 * console.log(out); // [2, 4]
 * ```
 */
export class ChunkMirror implements CachedSamples {
  readonly #chunks = new Map<string, Float32Array>();

  /** Number of chunks held. */
  get size(): number {
    return this.#chunks.size;
  }

  /** Holds (or replaces) chunk `key`. */
  put(key: string, chunk: Float32Array): void {
    this.#chunks.set(key, chunk);
  }

  /** Drops chunk `key` (no-op when absent). */
  drop(key: string): void {
    this.#chunks.delete(key);
  }

  /** See {@link CachedSamples.copyCachedInto} (and `copyRangeFromChunks` for the order of the copies). */
  copyCachedInto(range: SampleRange, dest: Float32Array, at: number, stride: number): void {
    copyRangeFromChunks(
      range,
      (chunk, key) => {
        const data = this.#chunks.get(key);
        if (!data) {
          throw new Error(
            `Cannot read samples of asset ${range.layout.assetId} in a loader worker as chunk ${chunk} was not sent ` +
              `to it; this is a loader bug (the main thread sends every chunk a batch touches)`,
          );
        }
        return data;
      },
      dest,
      at,
      stride,
    );
  }
}
