/**
 * Batch assembly on worker threads for the training loader. Each request goes to the worker with the
 * fewest batches in flight (lowest index on ties); since a batch is a pure function of its rows and the
 * chunk samples, which worker assembles it does not change a bit of it. Chunks are shared, not copied: the
 * main thread's `SignalReader` decodes into `SharedArrayBuffer`s, each chunk is posted once per worker, and
 * chunks the cache evicts are dropped by the workers with their next request. Batch arrays come back as
 * transferred buffers.
 *
 * Workers are `node:worker_threads` workers so that idle ones can be unreferenced: a process whose loader
 * is never closed still exits when its work is done. A worker that fails a batch rejects that batch with
 * the worker's error; a worker that dies (or fails to start) fails every pending and later batch of the
 * pool with a clear error instead of leaving `next()` waiting.
 *
 * @module
 */
import { Worker } from "node:worker_threads";
import { workerModuleUrl } from "../util/worker_module.ts";
import {
  BATCH_ARRAY_FIELDS,
  type BatchArrays,
  type LoaderWorkerReply,
  type LoaderWorkerRequest,
  type LoaderWorkerSetup,
  type WorkerRow,
} from "./loader_worker_protocol.ts";
import type { BatchUploadIndex, UploadIndexSizes } from "./upload_index.ts";
import type { TokenShape } from "./tokenizer.ts";
import { type BatchSlotLayout, batchSlotLayout, batchSlotViews } from "./batch_slots.ts";

const FLOAT_FIELDS = new Set<string>(["value", "time", "queryTime", "weight"]);

/** Typed arrays over a reply's buffers (see `LoaderWorkerReply`). */
function assembledBatch(buffers: ArrayBuffer[], sizes: UploadIndexSizes): AssembledBatch {
  const out: Record<string, Float32Array | Int32Array> = {};
  BATCH_ARRAY_FIELDS.forEach((f, i) => {
    out[f] = FLOAT_FIELDS.has(f) ? new Float32Array(buffers[i]) : new Int32Array(buffers[i]);
  });
  const arrays = out as unknown as BatchArrays;
  const rest = buffers.slice(BATCH_ARRAY_FIELDS.length);
  if (rest.length === 0) return { arrays };
  const m = sizes.numModalities;
  return {
    arrays,
    uploadIndex: {
      ...sizes,
      modalityMasks: rest.slice(0, m).map((b) => new Float32Array(b)),
      unitInverse: new Int32Array(rest[m]),
      sessionInverse: new Int32Array(rest[m + 1]),
    },
  };
}

/** Options of {@link LoaderWorkerPool}. */
export interface LoaderWorkerPoolOptions {
  /** Number of workers (≥ 1). */
  workers: number;
  /** Worker entry module (default: `loader_worker.ts` beside this module, or `loader_worker.js` beside a bundle). */
  moduleUrl?: string;
}

/** What a worker hands back: the batch arrays and, when asked, the upload index arrays. */
export interface AssembledBatch {
  arrays: BatchArrays;
  uploadIndex?: BatchUploadIndex;
}

interface Pending {
  /** The slot the batch is written into, with its layout (none: the reply carries the buffers). */
  slot?: { buffer: SharedArrayBuffer; layout: BatchSlotLayout };
  resolve: (batch: AssembledBatch) => void;
  reject: (error: Error) => void;
}

interface PoolWorker {
  index: number;
  worker: Worker;
  /** Chunks this worker holds (the exact arrays sent, so a re-read chunk is sent again). */
  sent: Map<string, Float32Array>;
  /** Evicted chunks to drop with the next request. */
  drop: string[];
  pending: Map<number, Pending>;
  /** Resolved when the worker answered its init message. */
  ready: PromiseWithResolvers<void>;
}

/**
 * The entry module of the loader workers in this process, or null when workers cannot be started here
 * (a compiled binary, a bundle without `loader_worker.js` beside it, or Orion imported by an http: URL):
 * the loader then assembles on its own thread, with the same batches.
 */
export function loaderWorkerModuleUrl(): string | null {
  if (moduleUrl === undefined) {
    const url = workerModuleUrl(import.meta.url, "./loader_worker.ts", "loader_worker");
    // `node:worker_threads` starts file: modules only (Orion imported by an http: URL assembles here).
    moduleUrl = url !== null && url.startsWith("file:") ? url : null;
  }
  return moduleUrl;
}

let moduleUrl: string | null | undefined;

/**
 * Default number of loader workers: min(4, logical cores − 1), at least 1; 0 where workers cannot start.
 */
export function defaultLoaderWorkers(): number {
  if (loaderWorkerModuleUrl() === null) return 0;
  const cores = typeof navigator !== "undefined" ? navigator.hardwareConcurrency ?? 2 : 2;
  return Math.max(1, Math.min(4, cores - 1));
}

/**
 * A pool of batch-assembly workers over one dataset's tokenization constants.
 *
 * @example
 * ```ts ignore
 * const pool = new LoaderWorkerPool(setup, { workers: 2 });
 * const { arrays } = await pool.assemble(rows, chunks); // chunks: the cached chunks the rows touch
 * pool.close();
 * ```
 */
export class LoaderWorkerPool {
  readonly size: number;
  readonly #uploadIndexSizes: UploadIndexSizes;
  readonly #shape: TokenShape;
  readonly #workers: PoolWorker[] = [];
  #nextId = 1;
  #failure: Error | null = null;
  #closed = false;

  constructor(setup: LoaderWorkerSetup, options: LoaderWorkerPoolOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1) {
      throw new Error(
        `Cannot start ${options.workers} loader workers: the count must be a positive integer`,
      );
    }
    const url = options.moduleUrl ?? loaderWorkerModuleUrl();
    if (url === null) {
      throw new Error(
        "Cannot start loader workers as this build carries no loader worker module (a compiled binary, or a " +
          "bundle without loader_worker.js beside it); set loaderWorkers to 0",
      );
    }
    this.size = options.workers;
    this.#uploadIndexSizes = setup.uploadIndexSizes;
    this.#shape = setup.shape;
    for (let index = 0; index < options.workers; index++) {
      const worker = new Worker(new URL(url));
      worker.unref(); // referenced only while it has batches in flight
      const entry: PoolWorker = {
        index,
        worker,
        sent: new Map(),
        drop: [],
        pending: new Map(),
        ready: Promise.withResolvers<void>(),
      };
      entry.ready.promise.catch(() => {}); // surfaced by ready() and assemble()
      worker.on("message", (reply: LoaderWorkerReply) => this.#onReply(entry, reply));
      worker.on("error", (e: unknown) => this.#fail(entry, e));
      worker.on("exit", (code: number) => {
        if (!this.#closed) this.#fail(entry, new Error(`the worker exited with code ${code}`));
      });
      this.#post(entry, { type: "init", setup });
      this.#workers.push(entry);
    }
  }

  /** Resolves once every worker has started and holds its setup (rejects when one failed to start). */
  async ready(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.ready.promise));
  }

  /** Batches in flight over all workers. */
  get inFlight(): number {
    return this.#workers.reduce((n, w) => n + w.pending.size, 0);
  }

  /**
   * Assembles one batch on a worker. `chunks` must hold every cached chunk the rows touch (key
   * `assetId#chunk`, shared-memory samples); only those the chosen worker lacks are posted. With
   * `uploadIndex` the worker also computes the batch's upload index arrays. With `slot` the worker writes
   * into that shared buffer (`batch_slots.ts` layout) and the result's arrays are views of it.
   */
  assemble(
    rows: WorkerRow[],
    chunks: Map<string, Float32Array>,
    options: { uploadIndex?: boolean; slot?: SharedArrayBuffer } = {},
  ): Promise<AssembledBatch> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new Error("Cannot assemble a batch as the loader was closed"));
    let target = this.#workers[0];
    for (const w of this.#workers) if (w.pending.size < target.pending.size) target = w;
    const fresh: [string, SharedArrayBuffer][] = [];
    for (const [key, chunk] of chunks) {
      if (target.sent.get(key) === chunk) continue;
      if (
        !(chunk.buffer instanceof SharedArrayBuffer) || chunk.byteOffset !== 0 ||
        chunk.byteLength !== chunk.buffer.byteLength
      ) {
        throw new Error(
          `Cannot share chunk ${key} with a loader worker as it is not a whole SharedArrayBuffer; ` +
            "open the SignalReader with sharedMemory: true",
        );
      }
      target.sent.set(key, chunk);
      fresh.push([key, chunk.buffer]);
    }
    const id = this.#nextId++;
    const drop = target.drop.splice(0);
    return new Promise<AssembledBatch>((resolve, reject) => {
      if (target.pending.size === 0) target.worker.ref();
      const slot = options.slot && {
        buffer: options.slot,
        layout: batchSlotLayout(
          rows.length,
          this.#shape,
          options.uploadIndex ? this.#uploadIndexSizes : null,
        ),
      };
      target.pending.set(id, { slot, resolve, reject });
      this.#post(target, {
        type: "assemble",
        id,
        rows,
        chunks: fresh,
        drop,
        uploadIndex: options.uploadIndex ?? false,
        slot: options.slot,
      });
    });
  }

  /** Tells the workers that chunk `key` left the main thread's cache (they drop it with their next batch). */
  evicted(key: string): void {
    for (const w of this.#workers) {
      if (w.sent.delete(key)) w.drop.push(key);
    }
  }

  /** Stops the workers; batches in flight are rejected. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop(new Error("Cannot assemble a batch as the loader was closed"));
  }

  #stop(error: Error): void {
    for (const w of this.#workers) {
      w.ready.reject(error);
      for (const p of w.pending.values()) p.reject(error);
      w.pending.clear();
      w.worker.terminate();
    }
  }

  #post(entry: PoolWorker, message: LoaderWorkerRequest): void {
    entry.worker.postMessage(message);
  }

  #onReply(entry: PoolWorker, reply: LoaderWorkerReply): void {
    if (reply.type === "ready") {
      entry.ready.resolve();
      return;
    }
    const pending = entry.pending.get(reply.id);
    if (!pending) return;
    entry.pending.delete(reply.id);
    if (entry.pending.size === 0) entry.worker.unref();
    if (reply.type === "batch") {
      pending.resolve(
        pending.slot
          ? batchSlotViews(pending.slot.buffer, pending.slot.layout)
          : assembledBatch(reply.buffers, this.#uploadIndexSizes),
      );
    } else {
      const error = new Error(`Cannot assemble a batch in loader worker ${entry.index}: ${reply.message}`);
      if (reply.stack) error.stack = `${error.message}\n(worker) ${reply.stack}`;
      pending.reject(error);
    }
  }

  /** A worker died: fail everything pending and every later request, and stop the other workers. */
  #fail(entry: PoolWorker, cause: unknown): void {
    if (this.#failure || this.#closed) return;
    const message = cause instanceof Error ? cause.message : String(cause);
    this.#failure = new Error(
      `Cannot assemble batches as loader worker ${entry.index} failed: ${message}; ` +
        "set loaderWorkers to 0 to assemble on the main thread",
      { cause },
    );
    this.#stop(this.#failure);
  }
}
