/**
 * The training loader: batches in the deterministic order of `window_order.ts`, assembled ahead of the
 * consumer (a queue of `prefetch` batches whose chunk reads run asynchronously), with a resumable cursor.
 *
 * @module
 */
import type { PoyoBatch } from "./batch.ts";
import { batchAt, epochPermutation, type LoaderCursor, parseCursor } from "./window_order.ts";
import type { DatasetWindow, WindowDataset } from "./window_dataset.ts";
import { batchSlotLayout, BatchSlotPool } from "./batch_slots.ts";

/** Options of {@link WindowLoader}. */
export interface WindowLoaderOptions {
  /** Rows per batch on this rank. */
  batchSize: number;
  seed: number;
  /** This process's rank (default 0) among `worldSize` (default 1). */
  rank?: number;
  worldSize?: number;
  /** Resume point (from `cursor()` of an earlier loader, possibly as JSON text). */
  cursor?: LoaderCursor | string;
  /** Batches assembled ahead (default max(4, 2 · workers); 0 = none). */
  prefetch?: number;
  /**
   * Worker threads assembling batches (default: the dataset's `loaderWorkers`; 0 = this thread). The
   * batches, their order and the cursor are the same whatever the count.
   */
  workers?: number;
  /**
   * Extra per-batch work done in the prefetch pipeline, off the consumer's critical path (the trainer
   * prepares the batch's GPU upload arrays here: masks and embedding-index inverses).
   */
  prepare?: (batch: PoyoBatch) => void;
  /**
   * Compute each batch's upload index arrays with the batch (on the workers; see `upload_index.ts`), so
   * that `prepare` finds them ready. Default: true when `prepare` is given.
   */
  uploadIndex?: boolean;
  /**
   * Reuse batch memory (default false): batches are views of shared slots that the consumer hands back
   * with {@link WindowLoader.release} once it is done with a batch (its uploads issued); released slots
   * are overwritten by later batches. A steady run then allocates no batch memory (no page faults, no
   * external-memory GCs on the consumer's thread). Batches never released are simply garbage-collected.
   */
  reuseBuffers?: boolean;
}

/**
 * Yields batches forever (epochs concatenate); `cursor()` is the resume point after the last batch
 * returned by `next()`.
 *
 * @example
 * ```ts
 * const loader = ds.loader("train", { batchSize: 32, seed: 1 });
 * const batch = await loader.next();
 * const saved = JSON.stringify(loader.cursor());
 * const resumed = ds.loader("train", { batchSize: 32, seed: 1, cursor: saved });
 * ```
 */
export class WindowLoader {
  readonly batchSize: number;
  readonly seed: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly numWindows: number;
  /** Global steps per epoch (windows / (batch · world), fractional when it does not divide). */
  readonly stepsPerEpoch: number;
  readonly #dataset: WindowDataset;
  readonly #windows: DatasetWindow[];
  readonly #prefetch: number;
  /** Worker threads assembling batches (0 = this thread). */
  readonly workers: number;
  readonly #prepare: ((batch: PoyoBatch) => void) | undefined;
  readonly #uploadIndex: boolean;
  readonly #slots: BatchSlotPool | null;
  /** The slot of each live batch of a reusing loader. */
  readonly #slotOf = new WeakMap<PoyoBatch, SharedArrayBuffer>();
  readonly #permutations = new Map<number, Uint32Array>();
  readonly #queue: { promise: Promise<PoyoBatch>; after: LoaderCursor }[] = [];
  /** Cursor after the last batch handed out. */
  #consumed: LoaderCursor;
  /** Cursor after the last batch scheduled. */
  #scheduled: LoaderCursor;
  readonly #ready: Promise<void>;

  constructor(dataset: WindowDataset, windows: DatasetWindow[], options: WindowLoaderOptions) {
    this.batchSize = options.batchSize;
    this.seed = options.seed;
    this.rank = options.rank ?? 0;
    this.worldSize = options.worldSize ?? 1;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) {
      throw new Error(
        `Cannot load batches of ${this.batchSize} windows: batchSize must be a positive integer`,
      );
    }
    if (
      !Number.isInteger(this.worldSize) || this.worldSize < 1 || !Number.isInteger(this.rank) ||
      this.rank < 0 || this.rank >= this.worldSize
    ) {
      throw new Error(`Cannot load as rank ${this.rank} of ${this.worldSize}: need 0 ≤ rank < worldSize`);
    }
    this.#dataset = dataset;
    this.#windows = windows;
    this.numWindows = windows.length;
    this.stepsPerEpoch = this.numWindows / (this.batchSize * this.worldSize);
    this.workers = options.workers ?? dataset.loaderWorkers;
    if (!Number.isInteger(this.workers) || this.workers < 0) {
      throw new Error(
        `Cannot start loader workers as workers is ${this.workers}: it must be a non-negative integer (0 = this thread)`,
      );
    }
    this.#prefetch = Math.max(0, options.prefetch ?? Math.max(4, 2 * this.workers));
    this.#prepare = options.prepare;
    this.#uploadIndex = options.uploadIndex ?? options.prepare !== undefined;
    this.#slots = options.reuseBuffers
      ? new BatchSlotPool(
        batchSlotLayout(this.batchSize, dataset.shape, this.#uploadIndex ? dataset.uploadIndexSizes : null),
      )
      : null;
    const start = options.cursor === undefined ? { epoch: 0, position: 0 } : parseCursor(options.cursor);
    if (start.position >= this.numWindows) {
      throw new Error(
        `Cannot resume at position ${start.position} of epoch ${start.epoch}: the split has ${this.numWindows} windows; ` +
          `the cursor belongs to another dataset or split`,
      );
    }
    this.#consumed = start;
    this.#scheduled = start;
    this.#ready = dataset.startWorkers(this.workers); // workers start now, not inside the first batch
    this.#ready.catch(() => {}); // surfaced by ready() and by the batches
    this.#fill();
  }

  /** Resolves once this loader's workers (if any) have started; rejects when one could not start. */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** The resume point: the next batch `next()` would return starts here. JSON-serializable. */
  cursor(): LoaderCursor {
    return { ...this.#consumed };
  }

  /**
   * Hands a batch back: its memory is reused for a later batch (only with `reuseBuffers`; otherwise, and
   * for a batch already released, nothing happens). Do not read the batch's arrays afterwards.
   */
  release(batch: PoyoBatch): void {
    const slot = this.#slotOf.get(batch);
    if (!slot || !this.#slots) return;
    this.#slotOf.delete(batch);
    this.#slots.release(slot);
  }

  /** Batch slots allocated so far (with `reuseBuffers`; 0 otherwise). */
  get slotsAllocated(): number {
    return this.#slots?.allocated ?? 0;
  }

  /** Indices (into the split's windows) of this rank's batch at `cursor`. */
  indicesAt(cursor: LoaderCursor): number[] {
    return this.#plan(cursor).indices;
  }

  /** The next batch. */
  async next(): Promise<PoyoBatch> {
    if (this.#queue.length === 0) this.#schedule();
    const item = this.#queue.shift()!;
    this.#fill();
    const batch = await item.promise;
    this.#consumed = item.after;
    return batch;
  }

  #plan(cursor: LoaderCursor) {
    return batchAt(cursor, {
      numWindows: this.numWindows,
      batchSize: this.batchSize,
      rank: this.rank,
      worldSize: this.worldSize,
      seed: this.seed,
    }, (epoch) => this.#permutation(epoch));
  }

  #permutation(epoch: number): Uint32Array {
    let p = this.#permutations.get(epoch);
    if (!p) {
      p = epochPermutation(this.numWindows, this.seed, epoch);
      this.#permutations.set(epoch, p);
      for (const e of this.#permutations.keys()) if (e < epoch - 1) this.#permutations.delete(e);
    }
    return p;
  }

  #schedule(): void {
    const plan = this.#plan(this.#scheduled);
    const windows = plan.indices.map((i) => this.#windows[i]);
    // Start on a fresh macrotask so the CPU part of assembly runs while the consumer awaits (GPU work,
    // I/O), not inside the next() call that scheduled it.
    const promise = new Promise<void>((resolve) => setTimeout(resolve, 0)).then(async () => {
      const slot = this.#slots?.acquire();
      const batch = await this.#dataset.makeBatch(windows, {
        workers: this.workers,
        uploadIndex: this.#uploadIndex,
        slot,
      });
      if (slot) this.#slotOf.set(batch, slot);
      this.#prepare?.(batch);
      return batch;
    });
    promise.catch(() => {}); // surfaced by next()
    this.#queue.push({ promise, after: plan.next });
    this.#scheduled = plan.next;
  }

  #fill(): void {
    while (this.#queue.length < this.#prefetch) this.#schedule();
  }
}
