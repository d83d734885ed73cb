/**
 * A loader worker's view of the main thread's chunk cache: decoded chunks (`SharedArrayBuffer`-backed, so
 * posting them shares memory instead of copying) keyed `assetId#chunk` like the `SignalReader` cache they
 * mirror. The main thread sends each chunk once per worker and tells the worker to drop what its cache evicts.
 *
 * @module
 */
import type { SampleRange } from "../ursa/signal_store.ts";
import type { CachedSamples } from "./tokenizer.ts";

/**
 * Chunks held by a worker, read the way `SignalReader.copyCached` reads its cache.
 *
 * @example
 * ```ts
 * const mirror = new ChunkMirror();
 * mirror.put("a#0", new Float32Array([1, 2, 3, 4])); // 2 channels × 2 samples, channel-major
 * const layout = { assetId: "a", numChannels: 2, numSamples: 2, chunkSamples: 2 };
 * mirror.copyCached({ layout, start: 1, length: 1 }, (c, _offset, v) => console.log(c, v[0])); // 0 2, 1 4
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

  /** See {@link CachedSamples.copyCached}. */
  copyCached(
    { layout, start, length }: SampleRange,
    sink: (channel: number, offset: number, values: Float32Array) => void,
  ): void {
    const { chunkSamples, numChannels, assetId } = layout;
    const end = Math.min(start + length, layout.numSamples);
    let position = Math.max(0, start);
    while (position < end) {
      const chunk = Math.floor(position / chunkSamples);
      const data = this.#chunks.get(`${assetId}#${chunk}`);
      if (!data) {
        throw new Error(
          `Cannot read samples of asset ${assetId} in a loader worker as chunk ${chunk} was not sent to it; ` +
            `this is a loader bug (the main thread sends every chunk a batch touches)`,
        );
      }
      const chunkStart = chunk * chunkSamples;
      const chunkLength = data.length / numChannels;
      const from = position - chunkStart;
      const to = Math.min(chunkLength, end - chunkStart);
      for (let c = 0; c < numChannels; c++) {
        sink(c, position - start, data.subarray(c * chunkLength + from, c * chunkLength + to));
      }
      position = chunkStart + to;
    }
  }
}
