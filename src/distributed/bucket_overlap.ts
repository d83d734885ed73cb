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

/** What {@link allReduceBuckets} needs from a distributed context. */
export type BucketReducer = Pick<DistributedContext, "startBucket" | "flush">;

/** A reduced bucket: its position in the fixed bucket order and its values (now the mean over ranks). */
export interface ReducedBucket {
  index: number;
  data: Float32Array;
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
  const started: Array<{ data: Float32Array; done: Promise<void> }> = [];
  let produced = false;
  let producerError: { error: unknown } | null = null;
  let wake: (() => void) | null = null;
  const signal = () => {
    const resolve = wake;
    wake = null;
    resolve?.();
  };
  // The producer runs on its own: buckets start as they come, whatever pace the consumer has.
  const producer = (async () => {
    try {
      for await (const data of buckets) {
        const done = ctx.startBucket(started.length, data, options(started.length));
        done.catch(() => {}); // observed below, in order
        started.push({ data, done });
        signal();
      }
    } catch (error) {
      producerError = { error };
    } finally {
      produced = true;
      signal();
    }
  })();
  for (let index = 0;; index++) {
    while (started.length <= index && !produced) await new Promise<void>((resolve) => wake = resolve);
    if (started.length <= index) break;
    await started[index].done;
    yield { index, data: started[index].data };
  }
  await producer;
  if (producerError) throw (producerError as { error: unknown }).error;
  await ctx.flush();
}
