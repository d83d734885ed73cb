/**
 * Bucketed overlap: all-reduce gradient buckets while later ones are still being produced (read back from
 * the GPU, computed by backward), DDP-style. The caller hands the buckets in the fixed bucket order as they
 * become ready; each bucket's reduction starts the moment it is handed over, and the reduced buckets come
 * back in the same fixed order, each as soon as it and every earlier one are done (so the caller can write
 * bucket 0 back while bucket 5 is still on the wire).
 *
 * @module
 */
import type { DistributedContext, StartBucketOptions } from "./context.ts";

/** What {@link allReduceBuckets} and {@link BucketReductions} need from a distributed context. */
export type BucketReducer = Pick<DistributedContext, "startBucket" | "flush">;

/** A reduced bucket: its position in the fixed bucket order and its values (now the mean over ranks). */
export interface ReducedBucket {
  index: number;
  data: Float32Array;
}

/**
 * Mean all-reduce of buckets started one by one: {@linkcode BucketReductions.start} begins the next bucket's
 * reduction before it returns, and iterating yields the buckets in index order, each once it and every
 * earlier one are done; after the last (once {@linkcode BucketReductions.close}d), every queued byte was
 * handed to the OS (`flush`). A caller that copies several buckets out in one synchronous run (no microtask
 * turn in between) so starts each the moment it is copied.
 *
 * @example
 * ```ts ignore
 * const reductions = new BucketReductions(ctx);
 * const written = (async () => {
 *   for await (const { index, data } of reductions) gpu.write(grads, data, ranges[index][0] * 4);
 * })();
 * for (const bucket of copiedBuckets()) reductions.start(bucket); // bucket 0 reduces while 1 is copied
 * reductions.close();
 * await written;
 * ```
 */
export class BucketReductions implements AsyncIterable<ReducedBucket> {
  readonly #ctx: BucketReducer;
  readonly #options: (index: number) => StartBucketOptions;
  readonly #started: { data: Float32Array; done: Promise<void> }[] = [];
  #closed = false;
  #error: { error: unknown } | null = null;
  #wake: (() => void) | null = null;

  /** `options(index)` is passed to `startBucket` (the same on every rank). */
  constructor(ctx: BucketReducer, options: (index: number) => StartBucketOptions = () => ({})) {
    this.#ctx = ctx;
    this.#options = options;
  }

  /** Starts the reduction of the next bucket in the fixed order, in place. */
  start(data: Float32Array): void {
    if (this.#closed) throw new Error("Cannot start a bucket's all-reduce after the reductions were closed");
    const index = this.#started.length;
    const done = this.#ctx.startBucket(index, data, this.#options(index));
    done.catch(() => {}); // observed by the iteration, in order
    this.#started.push({ data, done });
    this.#signal();
  }

  /**
   * No more buckets: the iteration ends after the started ones, then throws `error` when one is given (the
   * producer failed).
   */
  close(error?: unknown): void {
    this.#closed = true;
    if (error !== undefined) this.#error ??= { error };
    this.#signal();
  }

  #signal(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** The reduced buckets in index order; a failed reduction is thrown from here. */
  async *[Symbol.asyncIterator](): AsyncGenerator<ReducedBucket, void, undefined> {
    for (let index = 0;; index++) {
      while (this.#started.length <= index && !this.#closed) {
        await new Promise<void>((resolve) => this.#wake = resolve);
      }
      if (this.#started.length <= index) break;
      await this.#started[index].done;
      yield { index, data: this.#started[index].data };
    }
    if (this.#error) throw this.#error.error;
    await this.#ctx.flush();
  }
}

/**
 * Mean all-reduce of buckets handed over one by one. The k-th bucket `buckets` yields is bucket index k (the
 * fixed order every rank must follow); its reduction starts at once, in place, without waiting for the next
 * one. Yields `{ index, data }` in index order as each completes; after the last, every queued byte was
 * handed to the OS (`flush`). `options(index)` is passed to `startBucket` (the same on every rank). A failed
 * reduction (the rank stopped, mismatched buckets) or an error thrown by `buckets` is thrown from the
 * iteration.
 *
 * @example
 * ```ts ignore
 * async function* readBack() {
 *   for (const [start, end] of ranges) yield new Float32Array(await gpu.readback(grads, start * 4, (end - start) * 4));
 * }
 * for await (const { index, data } of allReduceBuckets(ctx, readBack())) {
 *   gpu.write(grads, data, ranges[index][0] * 4); // bucket 0 goes back while later buckets still reduce
 * }
 * ```
 */
export async function* allReduceBuckets(
  ctx: BucketReducer,
  buckets: AsyncIterable<Float32Array> | Iterable<Float32Array>,
  options: (index: number) => StartBucketOptions = () => ({}),
): AsyncGenerator<ReducedBucket, void, undefined> {
  const reductions = new BucketReductions(ctx, options);
  // The producer runs on its own: buckets start as they come, whatever pace the consumer has.
  (async () => {
    try {
      for await (const data of buckets) reductions.start(data);
      reductions.close();
    } catch (error) {
      reductions.close(error);
    }
  })();
  yield* reductions;
}
