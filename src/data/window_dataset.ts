/**
 * The windowed dataset over a resolved query: window grids, splits, vocabularies, static shapes, and batch
 * assembly. Windows of `trainWindow` seconds lie entirely inside one labelled interval (a class label ≥ 0
 * of the query's label track): for an interval [a, b) the training grid is a, a + S, a + 2S, … (stride = S,
 * no overlap) while start + S ≤ b; evaluation grids use stride S/2 (50 % overlap). Every window of a
 * session belongs to that session's split (see `split.ts`).
 *
 * @module
 */
import type { PoyoBatch, WindowRef } from "./batch.ts";
import { buildVocabulary, vocabularyIndex } from "./vocabulary.ts";
import { type SplitName, splitOf } from "./split.ts";
import { rangesOf, tokenizeRows, type TokenRow, type TokenShape, type TokenSource } from "./tokenizer.ts";
import { batchUploadIndex, type UploadIndexSizes } from "./upload_index.ts";
import { batchSlotLayout, batchSlotViews } from "./batch_slots.ts";
import { defaultLoaderWorkers, loaderWorkerModuleUrl, LoaderWorkerPool } from "./loader_worker_pool.ts";
import { WindowLoader, type WindowLoaderOptions } from "./window_loader.ts";
import type { Catalog } from "../ursa/catalog.ts";
import type { ResolvedQuery, ResolvedSession } from "../ursa/resolve_query.ts";
import { type SampleRange, type SignalChunkSource, SignalReader } from "../ursa/signal_store.ts";

/** Options of {@link openWindowDataset}. */
export interface WindowDatasetOptions {
  /** Window length S, seconds. */
  trainWindow: number;
  /** Fraction of sessions in the training split. */
  trainSplit: number;
  /** Fraction of sessions in the validation split (default 0; the rest is test). */
  valSplit?: number;
  /** Split salt (default ""). */
  splitSalt?: string;
  /** Samples per token P. */
  patch: number;
  /** Latent spacing, seconds. */
  latentStep: number;
  /** Latents per step M. */
  numLatents: number;
  /** Queries per window (default 1, at S/2). */
  numQueries?: number;
  /** Vocabularies to extend (finetuning): known words keep their index, new words are appended. */
  vocab?: { channels?: readonly string[]; sessions?: readonly string[] };
  /** Decoded-chunk cache budget in bytes (default 2 GiB). */
  cacheBytes?: number;
  /**
   * Worker threads that assemble training batches (default min(4, cores − 1); 0 = on the main thread).
   * Batches are bit-identical whatever the count. Where workers cannot start (a compiled binary) the
   * loader assembles on the main thread.
   */
  loaderWorkers?: number;
}

/** One window of the dataset. */
export interface DatasetWindow {
  /** Index into `dataset.sessions`. */
  session: number;
  /** Index into that session's labels. */
  interval: number;
  /** Session-clock seconds. */
  start: number;
  end: number;
  label: number;
}

/** The windows of one split. */
export interface DatasetSplit {
  name: SplitName;
  /** Session keys of the split, sorted. */
  sessions: string[];
  /** Training-grid windows (stride = window), sorted by session then start. */
  windows: DatasetWindow[];
  numWindows: number;
}

/** A group of evaluation windows sharing one labelled interval of one session (one label). */
export interface EvalGroup {
  /** `participant/session#interval`. */
  id: string;
  session: string;
  participant: string;
  label: number;
  recordingHashes: string[];
  windows: DatasetWindow[];
}

/** One evaluation batch: rows past `validRows` are padding (weight 0, group −1). */
export interface EvalBatch {
  batch: PoyoBatch;
  /** Index into the groups of `evalWindows` for each row (−1 for padding rows). */
  groupIndex: Int32Array;
  validRows: number;
}

/**
 * Opens the dataset of a resolved query. Samples are read from the catalog's `signals` table, or from
 * another chunk source holding the query's chunks (a loader snapshot, `loader_snapshot.ts`: no LanceDB).
 *
 * @example
 * ```ts
 * const ds = await openWindowDataset(catalog, resolved, {
 *   trainWindow: 1, trainSplit: 0.8, patch: 16, latentStep: 0.125, numLatents: 16,
 * });
 * const loader = ds.loader("train", { batchSize: 32, seed: 0, rank: 0, worldSize: 1 });
 * const batch = await loader.next();
 * ```
 */
// deno-lint-ignore require-await
export async function openWindowDataset(
  catalog: Catalog | SignalChunkSource,
  resolved: ResolvedQuery,
  options: WindowDatasetOptions,
): Promise<WindowDataset> {
  return new WindowDataset(catalog, resolved, options);
}

/**
 * Checks a loader worker count: a non-negative integer, or undefined for the default
 * ({@link defaultLoaderWorkers}).
 */
export function parseLoaderWorkers(value: number | undefined): number {
  if (value === undefined) return defaultLoaderWorkers();
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(
      `Cannot start loader workers as loaderWorkers is ${value}: it must be a non-negative integer (0 = main thread)`,
    );
  }
  return value;
}

/** The size fields of a batch of `rows` rows, without arrays (workers fill those). */
function allocateBatchHeader(rows: number, shape: TokenShape) {
  return {
    batchSize: rows,
    numTokens: shape.numTokens,
    patch: shape.patch,
    numQueries: shape.numQueries,
    latentTime: shape.latentTime,
    windows: [] as WindowRef[],
  };
}

/** See {@link openWindowDataset}. */
export class WindowDataset {
  readonly resolved: ResolvedQuery;
  readonly options: Required<Omit<WindowDatasetOptions, "vocab" | "cacheBytes" | "loaderWorkers">>;
  /** Default worker count of this dataset's loaders (0 where workers cannot start). */
  readonly loaderWorkers: number;
  /** Sorted modality names; a token's modality is an index here. */
  readonly modalities: string[];
  readonly vocab: { channels: string[]; sessions: string[] };
  readonly numClasses: number;
  /** Fixed tokens per window N (the largest session's count). */
  readonly numTokens: number;
  readonly numQueries: number;
  /** L = numLatents · ceil(S / latentStep). */
  readonly numLatentTokens: number;
  readonly latentTime: Float32Array;
  readonly sessions: ResolvedSession[];
  readonly reader: SignalReader;
  readonly #sources: TokenSource[][];
  readonly #sessionIndex: Int32Array;
  readonly #splits = new Map<SplitName, DatasetSplit>();
  readonly #splitOfSession: SplitName[];
  /** Worker pools by size (shared by this dataset's loaders; they share the chunk cache). */
  readonly #pools = new Map<number, LoaderWorkerPool>();

  constructor(catalog: Catalog | SignalChunkSource, resolved: ResolvedQuery, options: WindowDatasetOptions) {
    const S = options.trainWindow, P = options.patch;
    if (!(S > 0)) {
      throw new Error(`Cannot window with trainWindow ${S}: it must be a positive number of seconds`);
    }
    if (!Number.isInteger(P) || P < 1) {
      throw new Error(`Cannot tokenize with patch ${P}: it must be a positive integer`);
    }
    if (!(options.latentStep > 0)) {
      throw new Error(`Cannot place latents with latentStep ${options.latentStep}: it must be positive`);
    }
    if (!Number.isInteger(options.numLatents) || options.numLatents < 1) {
      throw new Error(
        `Cannot place latents with numLatents ${options.numLatents}: it must be a positive integer`,
      );
    }
    this.resolved = resolved;
    this.options = {
      trainWindow: S,
      trainSplit: options.trainSplit,
      valSplit: options.valSplit ?? 0,
      splitSalt: options.splitSalt ?? "",
      patch: P,
      latentStep: options.latentStep,
      numLatents: options.numLatents,
      numQueries: options.numQueries ?? 1,
    };
    this.modalities = resolved.modalities;
    this.sessions = resolved.sessions;
    this.numQueries = this.options.numQueries;
    this.loaderWorkers = parseLoaderWorkers(options.loaderWorkers);
    this.reader = new SignalReader(catalog, {
      cacheBytes: options.cacheBytes,
      sharedMemory: true, // chunks are shared with loader workers, not copied
      onEvict: (key) => {
        for (const pool of this.#pools.values()) pool.evicted(key);
      },
    });
    const channelWords = this.sessions.flatMap((s) =>
      s.assets.flatMap((a) => a.channels.map((c) => `${s.participant}/${c}`))
    );
    this.vocab = {
      channels: buildVocabulary(channelWords, options.vocab?.channels),
      sessions: buildVocabulary(this.sessions.map((s) => s.key), options.vocab?.sessions),
    };
    const channelIndex = vocabularyIndex(this.vocab.channels);
    const sessionIndex = vocabularyIndex(this.vocab.sessions);
    this.#sessionIndex = Int32Array.from(this.sessions.map((s) => sessionIndex.get(s.key)!));
    this.#sources = this.sessions.map((s) =>
      s.assets.map((a) => {
        const patches = Math.floor(S * a.samplingRate / P + 1e-9);
        if (patches < 1) {
          throw new Error(
            `Cannot tokenize modality ${a.modality} as a ${S} s window holds ${
              S * a.samplingRate
            } samples at ` +
              `${a.samplingRate} Hz, fewer than the patch of ${P}; use a longer trainWindow or a smaller patch`,
          );
        }
        return {
          modalityIndex: this.modalities.indexOf(a.modality),
          units: Int32Array.from(a.channels.map((c) => channelIndex.get(`${s.participant}/${c}`)!)),
          samplingRate: a.samplingRate,
          timeOffset: a.timeOffset,
          patchesPerChannel: patches,
          layout: {
            assetId: a.derivedAssetId,
            numChannels: a.channels.length,
            numSamples: a.numSamples,
            chunkSamples: a.chunkSamples,
          },
        };
      })
    );
    this.numTokens = Math.max(
      ...this.#sources.map((ss) => ss.reduce((n, s) => n + s.units.length * s.patchesPerChannel, 0)),
    );
    let maxClass = -1;
    for (const s of this.sessions) for (const l of s.labels) maxClass = Math.max(maxClass, l.classIndex);
    this.numClasses = maxClass + 1;
    if (this.numClasses < 1) {
      throw new Error("Cannot train a classifier as no label interval has a class index ≥ 0");
    }
    const steps = Math.ceil(S / options.latentStep - 1e-9);
    this.numLatentTokens = options.numLatents * steps;
    this.latentTime = Float32Array.from(
      { length: this.numLatentTokens },
      (_, j) => (Math.floor(j / options.numLatents) + 0.5) * options.latentStep,
    );
    const rule = {
      trainSplit: this.options.trainSplit,
      valSplit: this.options.valSplit,
      salt: this.options.splitSalt,
    };
    this.#splitOfSession = this.sessions.map((s) => splitOf(s.key, rule));
  }

  /** Shape constants shared by every batch. */
  get shape(): TokenShape {
    return {
      window: this.options.trainWindow,
      patch: this.options.patch,
      numTokens: this.numTokens,
      numQueries: this.numQueries,
      latentTime: this.latentTime,
    };
  }

  /** The split of session `i`. */
  splitOfSession(i: number): SplitName {
    return this.#splitOfSession[i];
  }

  /** Windows of session `i` on the grid of `stride` seconds. */
  sessionWindows(i: number, stride: number): DatasetWindow[] {
    const S = this.options.trainWindow;
    const out: DatasetWindow[] = [];
    this.sessions[i].labels.forEach((l, interval) => {
      if (l.classIndex < 0) return;
      for (let k = 0;; k++) {
        const start = l.start + k * stride;
        if (start + S > l.end + 1e-9) break;
        out.push({ session: i, interval, start, end: start + S, label: l.classIndex });
      }
    });
    return out;
  }

  /** The split `name` (training grid, stride = window). */
  split(name: SplitName): DatasetSplit {
    let split = this.#splits.get(name);
    if (!split) {
      const windows: DatasetWindow[] = [];
      const keys: string[] = [];
      this.sessions.forEach((s, i) => {
        if (this.#splitOfSession[i] !== name) return;
        keys.push(s.key);
        windows.push(...this.sessionWindows(i, this.options.trainWindow));
      });
      split = { name, sessions: keys, windows, numWindows: windows.length };
      this.#splits.set(name, split);
    }
    return split;
  }

  /**
   * A deterministic, prefetching loader over split `name` (see `window_order.ts` for the order and the
   * cursor).
   */
  loader(name: SplitName, options: WindowLoaderOptions): WindowLoader {
    const split = this.split(name);
    if (split.numWindows === 0) {
      throw new Error(
        `Cannot load split '${name}' as it has no windows (${split.sessions.length} sessions); ` +
          `change trainSplit/valSplit or select more participants`,
      );
    }
    return new WindowLoader(this, split.windows, options);
  }

  /**
   * All windows of split `name` on a 50 %-overlap grid (stride S/2 unless given), grouped by labelled
   * interval of a session (one label per group), groups sorted by session then start.
   */
  evalWindows(name: SplitName, options: { stride?: number } = {}): EvalGroup[] {
    const stride = options.stride ?? this.options.trainWindow / 2;
    const groups: EvalGroup[] = [];
    this.sessions.forEach((s, i) => {
      if (this.#splitOfSession[i] !== name) return;
      const byInterval = new Map<number, DatasetWindow[]>();
      for (const w of this.sessionWindows(i, stride)) {
        let list = byInterval.get(w.interval);
        if (!list) byInterval.set(w.interval, list = []);
        list.push(w);
      }
      for (const [interval, windows] of byInterval) {
        groups.push({
          id: `${s.key}#${interval}`,
          session: s.key,
          participant: s.participant,
          label: windows[0].label,
          recordingHashes: s.assets.map((a) => a.recordingHash),
          windows,
        });
      }
    });
    return groups;
  }

  /** Evaluation batches over `evalWindows(name)`, in order; the last batch is padded to `batchSize`. */
  async *evalBatches(
    name: SplitName,
    options: { batchSize: number; stride?: number },
  ): AsyncGenerator<EvalBatch> {
    const groups = this.evalWindows(name, { stride: options.stride });
    const flat: { window: DatasetWindow; group: number }[] = [];
    groups.forEach((g, gi) => g.windows.forEach((window) => flat.push({ window, group: gi })));
    for (let start = 0; start < flat.length; start += options.batchSize) {
      const part = flat.slice(start, start + options.batchSize);
      const validRows = part.length;
      const windows = part.map((p) => p.window);
      while (windows.length < options.batchSize) windows.push(windows[windows.length - 1]);
      const batch = await this.makeBatch(windows);
      for (let b = validRows; b < options.batchSize; b++) {
        for (let q = 0; q < this.numQueries; q++) batch.weight[b * this.numQueries + q] = 0;
      }
      const groupIndex = Int32Array.from(
        { length: options.batchSize },
        (_, b) => (b < validRows ? part[b].group : -1),
      );
      yield { batch, groupIndex, validRows };
    }
  }

  /** The sample ranges (of every asset of its session) that tokenizing `windows` reads. */
  sampleRanges(windows: DatasetWindow[]): SampleRange[] {
    return rangesOf(windows.map((w) => this.#row(w)), this.options.patch);
  }

  #row(w: DatasetWindow): TokenRow {
    return {
      start: w.start,
      sources: this.#sources[w.session],
      sessionIndex: this.#sessionIndex[w.session],
      label: w.label,
      weight: 1,
    };
  }

  /**
   * Reads and tokenizes `windows` into one batch (one row each), on `workers` loader workers (default 0:
   * this thread). The batch is the same bit for bit either way. With `uploadIndex` the batch carries its
   * upload index arrays for this dataset's vocabulary sizes (`upload_index.ts`). With `slot` its arrays are
   * views of that shared buffer (`batch_slots.ts` layout for these rows and `uploadIndex`), overwritten.
   */
  async makeBatch(
    windows: DatasetWindow[],
    options: { workers?: number; uploadIndex?: boolean; slot?: SharedArrayBuffer } = {},
  ): Promise<PoyoBatch> {
    const rows: TokenRow[] = windows.map((w) => this.#row(w));
    const ranges = rangesOf(rows, this.options.patch);
    const shape = this.shape;
    const pool = this.#pool(options.workers ?? 0);
    // With workers: the chunks the batch touches, collected in the same pass that checks the cache.
    const chunks = new Map<string, Float32Array>();
    const cached = pool
      ? () => {
        chunks.clear();
        let all = true;
        for (const range of ranges) {
          all = this.reader.visitCachedChunks(range, (key, chunk) => chunks.set(key, chunk)) && all;
        }
        return all;
      }
      : () => this.reader.hasAll(ranges);
    // Concurrent prefetches may evict each other's chunks when the cache is small: check right before the
    // synchronous tokenization (or hand-off) and fetch again if needed (no query, no await when all is cached).
    for (let attempt = 0; !cached(); attempt++) {
      if (attempt > 3) {
        throw new Error(
          `Cannot assemble a batch as the chunk cache (${this.reader.cachedBytes} bytes) cannot hold it; raise cacheBytes`,
        );
      }
      await this.reader.prefetch(ranges);
    }
    let batch: PoyoBatch;
    if (pool) {
      const assembled = await pool.assemble(
        windows.map((w) => ({ session: w.session, start: w.start, label: w.label })),
        chunks,
        { uploadIndex: options.uploadIndex, slot: options.slot },
      );
      batch = { ...allocateBatchHeader(rows.length, shape), ...assembled.arrays };
      if (assembled.uploadIndex) batch.uploadIndex = assembled.uploadIndex;
    } else if (options.slot) {
      const views = batchSlotViews(
        options.slot,
        batchSlotLayout(rows.length, shape, options.uploadIndex ? this.uploadIndexSizes : null),
      );
      batch = tokenizeRows(rows, shape, this.reader, {
        ...allocateBatchHeader(rows.length, shape),
        ...views.arrays,
      });
      if (views.uploadIndex) {
        batch.uploadIndex = batchUploadIndex(batch, this.uploadIndexSizes, views.uploadIndex);
      }
    } else {
      batch = tokenizeRows(rows, shape, this.reader);
      if (options.uploadIndex) batch.uploadIndex = batchUploadIndex(batch, this.uploadIndexSizes);
    }
    batch.windows = windows.map((w) => this.windowRef(w));
    return batch;
  }

  /** Vocabulary sizes of this dataset's upload index arrays (those of the model trained on it). */
  get uploadIndexSizes(): UploadIndexSizes {
    return {
      numModalities: this.modalities.length,
      numChannels: this.vocab.channels.length,
      numSessions: this.vocab.sessions.length,
    };
  }

  /** Stops this dataset's loader workers (loaders still running fail their next batch). */
  close(): void {
    for (const pool of this.#pools.values()) pool.close();
    this.#pools.clear();
  }

  /**
   * Starts this dataset's pool of `workers` loader workers if it is not running (loaders do so when they
   * are built) and resolves once every worker is ready; 0, or no worker support here: resolves at once.
   */
  async startWorkers(workers: number): Promise<void> {
    await this.#pool(workers)?.ready();
  }

  #pool(workers: number): LoaderWorkerPool | null {
    // No worker module in this build (a compiled binary): assemble here, same batches.
    if (parseLoaderWorkers(workers) === 0 || loaderWorkerModuleUrl() === null) return null;
    let pool = this.#pools.get(workers);
    if (!pool) {
      pool = new LoaderWorkerPool({
        shape: this.shape,
        sources: this.#sources,
        sessionIndex: this.#sessionIndex,
        uploadIndexSizes: this.uploadIndexSizes,
      }, { workers });
      this.#pools.set(workers, pool);
    }
    return pool;
  }

  /** Provenance of a window (for the data-hash ledger). */
  windowRef(w: DatasetWindow): WindowRef {
    const s = this.sessions[w.session];
    const recordings = s.assets.map((a) => ({
      recordingHash: a.recordingHash,
      derivedAssetId: a.derivedAssetId,
      modality: a.modality,
      start: w.start - a.timeOffset,
      end: w.end - a.timeOffset,
    }));
    return {
      recordingHash: recordings[0].recordingHash,
      start: recordings[0].start,
      end: recordings[0].end,
      derivedAssetIds: recordings.map((r) => r.derivedAssetId),
      participant: s.participant,
      session: s.key,
      recordings,
    };
  }
}
