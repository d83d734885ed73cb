/**
 * Columnar storage of signal samples in the catalog's `signals` table: one row per (asset, chunk) holding
 * every channel of `chunk_samples` consecutive samples as float32 little-endian, channel-major. A window
 * read fetches only the rows of the chunks it overlaps (filter on `asset_id` and `chunk_index`), and an
 * LRU cache of decoded chunks bounded in bytes makes repeated reads (later epochs) memory-speed.
 *
 * @module
 */
import type { Catalog } from "./catalog.ts";
import { sqlString } from "./catalog.ts";
import { type SignalChunkRow, SIGNALS_SCHEMA, SIGNALS_TABLE } from "./catalog_tables.ts";
import { chunkKeys, copyRangeFromChunks } from "./signal_chunks.ts";

export { chunkKeys, copyRangeFromChunks };

/** Default chunk length: 2 seconds of samples. */
export const DEFAULT_CHUNK_SECONDS = 2;

/** Samples per chunk for a sampling rate (2 s, at least 1 sample). */
export function chunkSamplesFor(samplingRate: number): number {
  return Math.max(1, Math.round(samplingRate * DEFAULT_CHUNK_SECONDS));
}

/** Splits channel-major samples into `signals` rows. `channels[c]` all have the same length. */
export function signalChunkRows(
  assetId: string,
  channels: Float32Array[],
  chunkSamples: number,
): SignalChunkRow[] {
  const numSamples = channels.length === 0 ? 0 : channels[0].length;
  const rows: SignalChunkRow[] = [];
  for (let start = 0, index = 0; start < numSamples; start += chunkSamples, index++) {
    const n = Math.min(chunkSamples, numSamples - start);
    const block = new Float32Array(channels.length * n);
    channels.forEach((channel, c) => block.set(channel.subarray(start, start + n), c * n));
    rows.push({
      asset_id: assetId,
      chunk_index: index,
      start_sample: start,
      num_samples: n,
      num_channels: channels.length,
      samples: new Uint8Array(block.buffer),
    });
  }
  return rows;
}

/** Writes an asset's samples (one append, so one Lance commit). */
export async function writeSignal(
  catalog: Catalog,
  assetId: string,
  channels: Float32Array[],
  chunkSamples: number,
): Promise<void> {
  await catalog.ensureTable(SIGNALS_TABLE, SIGNALS_SCHEMA);
  const rows = signalChunkRows(assetId, channels, chunkSamples);
  if (rows.length > 0) await catalog.insert(SIGNALS_TABLE, rows as unknown as Record<string, unknown>[]);
}

/** Removes every chunk of an asset. */
export async function deleteSignal(catalog: Catalog, assetId: string): Promise<void> {
  await catalog.delete(SIGNALS_TABLE, `asset_id = ${sqlString(assetId)}`);
}

/** Shape of an asset, as needed to read it. */
export interface SignalLayout {
  assetId: string;
  numChannels: number;
  numSamples: number;
  chunkSamples: number;
}

/** A request for samples [start, start + length) of an asset. */
export interface SampleRange {
  layout: SignalLayout;
  start: number;
  length: number;
}

function decodeChunk(samples: Uint8Array, shared = false): Float32Array {
  if (shared) {
    // Worker threads read shared chunks without a copy (see `SignalReaderOptions.sharedMemory`).
    const out = new Uint8Array(new SharedArrayBuffer(samples.byteLength));
    out.set(samples);
    return new Float32Array(out.buffer, 0, samples.byteLength / 4);
  }
  // Binary values may sit at any byte offset; copy into an aligned buffer.
  const copy = samples.byteOffset % 4 === 0 ? samples : new Uint8Array(samples);
  return new Float32Array(copy.buffer, copy.byteOffset, copy.byteLength / 4).slice();
}

/** One stored chunk: every channel of its samples, float32 little-endian, channel-major. */
export interface SignalChunk {
  assetId: string;
  chunkIndex: number;
  samples: Uint8Array;
}

/**
 * Where a {@link SignalReader} reads the chunks it has not cached: the catalog's `signals` table
 * ({@link catalogChunkSource}; a `Catalog` passed to the reader is wrapped in it), or anything else that
 * holds chunks (a loader snapshot, `src/data/loader_snapshot.ts`, which serves them without LanceDB).
 */
export interface SignalChunkSource {
  /**
   * The chunks named by `wanted` (asset id → chunk indices, sorted, no duplicates), in any order; chunks
   * that do not exist (past an asset's end) are left out.
   */
  readChunks(wanted: Map<string, number[]>): Promise<SignalChunk[]>;
}

/** Reads chunks from the catalog's `signals` table, one query per call (contiguous runs as BETWEEN). */
export function catalogChunkSource(catalog: Catalog): SignalChunkSource {
  return {
    async readChunks(wanted) {
      const clauses: string[] = [];
      for (const [assetId, sorted] of wanted) {
        if (sorted.length === 0) continue;
        let runStart = sorted[0];
        for (let i = 1; i <= sorted.length; i++) {
          if (i === sorted.length || sorted[i] !== sorted[i - 1] + 1) {
            clauses.push(
              `(asset_id = ${sqlString(assetId)} AND chunk_index BETWEEN ${runStart} AND ${sorted[i - 1]})`,
            );
            if (i < sorted.length) runStart = sorted[i];
          }
        }
      }
      if (clauses.length === 0) return [];
      const rows = await catalog.query(SIGNALS_TABLE, clauses.join(" OR "), {
        columns: ["asset_id", "chunk_index", "samples"],
      });
      return rows.map((row) => ({
        assetId: row.asset_id as string,
        chunkIndex: row.chunk_index as number,
        samples: row.samples as Uint8Array,
      }));
    },
  };
}

function isChunkSource(source: Catalog | SignalChunkSource): source is SignalChunkSource {
  return typeof (source as Partial<SignalChunkSource>).readChunks === "function";
}

/** Options of {@link SignalReader}. */
export interface SignalReaderOptions {
  /** Decoded-chunk cache budget in bytes (default 2 GiB). */
  cacheBytes?: number;
  /** Decode chunks into `SharedArrayBuffer`s, so they can be posted to worker threads without copies. */
  sharedMemory?: boolean;
  /** Called with the key (`assetId#chunk`) of every chunk dropped from the cache. */
  onEvict?: (key: string) => void;
}

/**
 * Reads sample ranges of assets through an LRU chunk cache.
 *
 * @example
 * ```ts
 * const reader = new SignalReader(catalog, { cacheBytes: 256 << 20 });
 * const samples = await reader.read({ layout, start: 0, length: 1280 }); // [channels][1280]
 * ```
 */
export class SignalReader {
  readonly #source: SignalChunkSource;
  readonly #cacheBytes: number;
  readonly #shared: boolean;
  readonly #onEvict: ((key: string) => void) | undefined;
  readonly #cache = new Map<string, Float32Array>();
  #bytes = 0;
  /** Number of chunk reads issued to the source (`signals` queries; for tests and benchmarks). */
  queries = 0;

  /**
   * @param source the catalog (chunks are read from its `signals` table) or another chunk source (a
   * loader snapshot).
   */
  constructor(source: Catalog | SignalChunkSource, options: SignalReaderOptions = {}) {
    this.#source = isChunkSource(source) ? source : catalogChunkSource(source);
    this.#cacheBytes = options.cacheBytes ?? 2 * 1024 ** 3;
    this.#shared = options.sharedMemory ?? false;
    this.#onEvict = options.onEvict;
  }

  /** Bytes of decoded chunks currently cached. */
  get cachedBytes(): number {
    return this.#bytes;
  }

  /** Makes sure every chunk the ranges touch is cached, with one query per batch of ranges. */
  async prefetch(ranges: SampleRange[]): Promise<void> {
    const missing = new Map<string, Set<number>>();
    for (const { layout, start, length } of ranges) {
      const keys = chunkKeys(layout);
      const first = Math.max(0, Math.floor(start / layout.chunkSamples));
      const last = Math.min(
        Math.ceil(layout.numSamples / layout.chunkSamples) - 1,
        Math.floor((start + length - 1) / layout.chunkSamples),
      );
      for (let chunk = first; chunk <= last; chunk++) {
        if (this.#cache.has(keys[chunk] ??= `${layout.assetId}#${chunk}`)) continue;
        let set = missing.get(layout.assetId);
        if (!set) missing.set(layout.assetId, set = new Set());
        set.add(chunk);
      }
    }
    if (missing.size === 0) return;
    const wanted = new Map<string, number[]>();
    for (const [assetId, chunks] of missing) wanted.set(assetId, [...chunks].sort((a, b) => a - b));
    this.queries++;
    for (const chunk of await this.#source.readChunks(wanted)) {
      this.#put(`${chunk.assetId}#${chunk.chunkIndex}`, decodeChunk(chunk.samples, this.#shared));
    }
  }

  /** Whether every chunk the ranges touch is cached now. */
  hasAll(ranges: SampleRange[]): boolean {
    for (const { layout, start, length } of ranges) {
      const keys = chunkKeys(layout);
      const first = Math.max(0, Math.floor(start / layout.chunkSamples));
      const last = Math.min(
        Math.ceil(layout.numSamples / layout.chunkSamples) - 1,
        Math.floor((start + length - 1) / layout.chunkSamples),
      );
      for (let chunk = first; chunk <= last; chunk++) {
        if (!this.#cache.has(keys[chunk] ??= `${layout.assetId}#${chunk}`)) return false;
      }
    }
    return true;
  }

  /** Samples [start, start + length) of every channel, as one Float32Array per channel (NaN past the end). */
  async read(range: SampleRange): Promise<Float32Array[]> {
    await this.prefetch([range]);
    return this.readCached(range);
  }

  /** Like {@link read} but synchronous: every chunk must already be cached (see {@link prefetch}). */
  readCached({ layout, start, length }: SampleRange): Float32Array[] {
    const out = Array.from({ length: layout.numChannels }, () => new Float32Array(length).fill(Number.NaN));
    this.copyCached({ layout, start, length }, (c, offset, values) => out[c].set(values, offset));
    return out;
  }

  /** Calls `sink(channel, offsetInRange, values)` for every cached piece of the range, without copying. */
  copyCached(
    { layout, start, length }: SampleRange,
    sink: (channel: number, offset: number, values: Float32Array) => void,
  ): void {
    const { chunkSamples, numChannels, assetId } = layout;
    const keys = chunkKeys(layout);
    const end = Math.min(start + length, layout.numSamples);
    let position = Math.max(0, start);
    while (position < end) {
      const chunk = Math.floor(position / chunkSamples);
      const key = keys[chunk] ??= `${assetId}#${chunk}`;
      const data = this.#cache.get(key);
      if (!data) {
        throw new Error(
          `Cannot read samples of asset ${assetId} as chunk ${chunk} is not cached: call prefetch() first`,
        );
      }
      this.#cache.delete(key); // LRU: move to the most recent end
      this.#cache.set(key, data);
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

  /**
   * Copies every channel of the range from the cache into `dest` ({@link copyRangeFromChunks}). Every chunk
   * must be cached; each is marked recently used.
   */
  copyCachedInto(range: SampleRange, dest: Float32Array, at: number, stride: number): void {
    copyRangeFromChunks(
      range,
      (chunk, key) => {
        const data = this.#cache.get(key);
        if (!data) {
          throw new Error(
            `Cannot read samples of asset ${range.layout.assetId} as chunk ${chunk} is not cached: call prefetch() first`,
          );
        }
        this.#cache.delete(key); // LRU: move to the most recent end
        this.#cache.set(key, data);
        return data;
      },
      dest,
      at,
      stride,
    );
  }

  /**
   * Calls `visit(key, chunk)` for every cached chunk the range touches (marking it recently used) and
   * returns whether all of them were cached. `chunk` holds every channel of the chunk, channel-major.
   */
  visitCachedChunks(
    { layout, start, length }: SampleRange,
    visit: (key: string, chunk: Float32Array) => void,
  ): boolean {
    const end = Math.min(start + length, layout.numSamples);
    if (end <= Math.max(0, start)) return true;
    const first = Math.floor(Math.max(0, start) / layout.chunkSamples);
    const last = Math.floor((end - 1) / layout.chunkSamples);
    let all = true;
    const keys = chunkKeys(layout);
    for (let chunk = first; chunk <= last; chunk++) {
      const key = keys[chunk] ??= `${layout.assetId}#${chunk}`;
      const data = this.#cache.get(key);
      if (!data) {
        all = false;
        continue;
      }
      this.#cache.delete(key); // LRU: move to the most recent end
      this.#cache.set(key, data);
      visit(key, data);
    }
    return all;
  }

  #put(key: string, data: Float32Array): void {
    const old = this.#cache.get(key);
    if (old) {
      this.#bytes -= old.byteLength;
      this.#onEvict?.(key);
    }
    this.#cache.delete(key);
    this.#cache.set(key, data);
    this.#bytes += data.byteLength;
    while (this.#bytes > this.#cacheBytes && this.#cache.size > 1) {
      const [oldest, value] = this.#cache.entries().next().value as [string, Float32Array];
      this.#cache.delete(oldest);
      this.#bytes -= value.byteLength;
      this.#onEvict?.(oldest);
    }
  }
}

/** Reads every sample of an asset (one query), one Float32Array per channel. */
export async function readWholeSignal(catalog: Catalog, layout: SignalLayout): Promise<Float32Array[]> {
  const rows = await catalog.query(SIGNALS_TABLE, `asset_id = ${sqlString(layout.assetId)}`, {
    columns: ["start_sample", "num_samples", "samples"],
  });
  const out = Array.from(
    { length: layout.numChannels },
    () => new Float32Array(layout.numSamples).fill(Number.NaN),
  );
  let covered = 0;
  for (const row of rows) {
    const start = row.start_sample as number, n = row.num_samples as number;
    const data = decodeChunk(row.samples as Uint8Array);
    for (let c = 0; c < layout.numChannels; c++) out[c].set(data.subarray(c * n, (c + 1) * n), start);
    covered += n;
  }
  if (covered !== layout.numSamples) {
    throw new Error(
      `Cannot read asset ${layout.assetId} as its stored chunks cover ${covered} of ${layout.numSamples} samples; re-import it`,
    );
  }
  return out;
}

/** Reads every sample of several assets with one query; results in the order of `layouts`. */
export async function readWholeSignals(catalog: Catalog, layouts: SignalLayout[]): Promise<Float32Array[][]> {
  if (layouts.length === 0) return [];
  const rows = await catalog.query(
    SIGNALS_TABLE,
    `asset_id IN (${layouts.map((l) => sqlString(l.assetId)).join(", ")})`,
    { columns: ["asset_id", "start_sample", "num_samples", "samples"] },
  );
  const outputs = new Map(layouts.map((layout) => [layout.assetId, {
    layout,
    covered: 0,
    data: Array.from(
      { length: layout.numChannels },
      () => new Float32Array(layout.numSamples).fill(Number.NaN),
    ),
  }]));
  for (const row of rows) {
    const out = outputs.get(row.asset_id as string)!;
    const start = row.start_sample as number, n = row.num_samples as number;
    const chunk = decodeChunk(row.samples as Uint8Array);
    for (let c = 0; c < out.layout.numChannels; c++) {
      out.data[c].set(chunk.subarray(c * n, (c + 1) * n), start);
    }
    out.covered += n;
  }
  return layouts.map((layout) => {
    const out = outputs.get(layout.assetId)!;
    if (out.covered !== layout.numSamples) {
      throw new Error(
        `Cannot read asset ${layout.assetId} as its stored chunks cover ${out.covered} of ${layout.numSamples} samples; re-import it`,
      );
    }
    return out.data;
  });
}

/**
 * Creates the scalar (BTREE) index on `signals.asset_id` when it is missing. Later appends are covered
 * again by `catalog.optimize()`, which updates indices. Measured on a 30-participant demo catalog: cold
 * batch reads 49 → 39 ms.
 */
export async function ensureSignalIndex(catalog: Catalog): Promise<void> {
  if (!(await catalog.hasTable(SIGNALS_TABLE))) return;
  const table = await catalog.table(SIGNALS_TABLE);
  const indices = await table.listIndices();
  if (indices.some((i) => i.columns.includes("asset_id"))) return;
  await table.createIndex("asset_id");
}
