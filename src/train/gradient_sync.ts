/**
 * Data-parallel gradient averaging for the step engine, overlapped with backward (PyTorch DDP's scheme).
 *
 * The flat gradient buffer is cut into buckets from its end (first 1 MiB, then ~25 MiB, the same ranges in the
 * same order on every rank): parameters are registered in forward order, so backward finishes the last ones
 * first. The step engine submits backward in segments, one ending wherever the next bucket's parameters are
 * all final ({@linkcode GradientExchange.readBucket}); each bucket is then read back, averaged by the
 * distributed layer's ring all-reduce (deterministic summation order, identical bits on every rank) while
 * later segments run on the GPU, and written back before the optimizer's commands run.
 *
 * Deno 2.9.6's `mapAsync` blocks the thread until the GPU has run everything submitted so far and resolves
 * ~10 ms later. So at every segment boundary the exchange (1) hands on the buckets mapped at the previous
 * boundary — their 10 ms ran while the GPU worked on the segment just submitted — and (2) only then maps the
 * new segment's buckets, before the engine submits the next segment. See docs/distributed.md.
 *
 * @module
 */
import { allReduceBuckets } from "../distributed/bucket_overlap.ts";
import type { DistributedContext } from "../distributed/context.ts";
import type { Gpu, MappedReadback } from "../gpu/gpu.ts";
import type { GpuBuffer } from "../gpu/buffer_pool.ts";
import type { GradientExchange, GradientSync } from "./trainer.ts";

/** Bucket sizes of {@linkcode gradientSyncFor} (bytes). */
export interface BucketSizes {
  /** The first bucket (small, so the exchange starts early; default 1 MiB). */
  firstBucketBytes: number;
  /** Every later bucket (default 25 MiB, DDP's `bucket_cap_mb`). */
  bucketBytes: number;
}

/** DDP's defaults: a 1 MiB first bucket, then 25 MiB. */
export const DEFAULT_BUCKET_SIZES: BucketSizes = { firstBucketBytes: 1 << 20, bucketBytes: 25 << 20 };

/**
 * Bucket boundaries [start, end) in f32 elements over a flat gradient of `elements`, in exchange order: the
 * first bucket is the buffer's last `firstBucketBytes`, each next one the `bucketBytes` before it.
 */
export function gradientBuckets(
  elements: number,
  sizes: BucketSizes = DEFAULT_BUCKET_SIZES,
): [number, number][] {
  const out: [number, number][] = [];
  let end = elements;
  let size = Math.max(1, Math.floor(sizes.firstBucketBytes / 4));
  while (end > 0) {
    const start = Math.max(0, end - size);
    out.push([start, end]);
    end = start;
    size = Math.max(1, Math.floor(sizes.bucketBytes / 4));
  }
  return out;
}

/** Phases of one step's gradient exchange, in ms from its start (the step's first segment). */
export interface GradientSyncTimings {
  /** The first bucket was copied out and handed to the all-reduce. */
  firstReadMs: number;
  /** The last bucket was copied out. */
  lastReadMs: number;
  /** The last map call returned: the GPU had finished backward. */
  backwardDoneMs: number;
  /** Every bucket reduced and written back. */
  totalMs: number;
  /** Backward segments submitted separately (1: no overlap). */
  segments: number;
}

/**
 * A {@linkcode GradientSync} over a distributed context. Buckets are copied straight into arrays the context
 * reduces in place (allocated on the first step and kept: no fresh host buffers, whose page faults cost ~0.7
 * ms per MiB on the H200 host), handed to the all-reduce in index order ({@linkcode allReduceBuckets}), and
 * each is written back as soon as it and every earlier bucket are reduced.
 */
export function gradientSyncFor(
  ctx: DistributedContext,
  gpu: Gpu,
  sizes: BucketSizes = DEFAULT_BUCKET_SIZES,
): GradientSync & {
  /** Phases of the last finished exchange (for benchmarks). */
  readonly lastTimings: GradientSyncTimings;
} {
  let host: { elements: number; buckets: [number, number][]; data: Float32Array[] } | null = null;
  const hostFor = (elements: number) => {
    if (host?.elements !== elements) {
      const buckets = gradientBuckets(elements, sizes);
      host = { elements, buckets, data: buckets.map(([a, b]) => ctx.sharedBucket(b - a)) };
    }
    return host;
  };
  const lastTimings: GradientSyncTimings = {
    firstReadMs: 0,
    lastReadMs: 0,
    backwardDoneMs: 0,
    totalMs: 0,
    segments: 0,
  };
  return {
    worldSize: ctx.worldSize,
    lastTimings,
    buckets: (elements) => hostFor(elements).buckets,
    begin(grads: GpuBuffer, elements: number): GradientExchange {
      const t0 = performance.now();
      const { buckets, data } = hostFor(elements);
      const timings: GradientSyncTimings = { ...lastTimings, firstReadMs: 0, lastReadMs: 0, segments: 0 };
      const reads: Promise<MappedReadback>[] = [];
      let mapped = 0; // reads[0, mapped) were mapped
      let handed = 0; // reads[0, handed) were copied out and handed on
      const queue = new BucketQueue();
      const writeBack = (async () => {
        for await (const { index, data: reduced } of allReduceBuckets(ctx, queue)) {
          gpu.write(grads, reduced, buckets[index][0] * 4);
        }
      })();
      writeBack.catch(() => {}); // observed by finish()
      const handOn = async (upTo: number) => {
        for (; handed < upTo; handed++) {
          const bucket = data[handed];
          (await reads[handed]).copyTo(new Uint8Array(bucket.buffer, bucket.byteOffset, bucket.byteLength));
          timings.lastReadMs = performance.now() - t0;
          if (handed === 0) timings.firstReadMs = timings.lastReadMs;
          queue.push(bucket);
        }
      };
      const mapNew = () => {
        if (mapped === reads.length) return;
        gpu.mapHeldReadbacks();
        mapped = reads.length;
        timings.backwardDoneMs = performance.now() - t0;
        timings.segments++;
      };
      let closed = false;
      const close = async (error?: unknown) => {
        if (closed) return;
        closed = true;
        // Unmap whatever will not be copied (an error, a stop).
        mapNew();
        for (let i = handed; i < reads.length; i++) reads[i].then((m) => m.release(), () => {});
        handed = reads.length;
        queue.close(error);
        await writeBack.catch(() => {});
      };
      return {
        readBucket(index: number): void {
          if (index !== reads.length || index >= buckets.length) {
            throw new RangeError(
              `Cannot read gradient bucket ${index} as the next one in order is ${reads.length} of ${buckets.length}`,
            );
          }
          const [a, b] = buckets[index];
          reads.push(gpu.readbackMapped(grads, a * 4, (b - a) * 4, { hold: true }));
        },
        async submitted(): Promise<void> {
          try {
            await handOn(mapped);
          } catch (error) {
            await close(error);
            throw error;
          }
          mapNew();
        },
        async finish(): Promise<void> {
          if (reads.length !== buckets.length) {
            await close();
            throw new Error(
              `Cannot finish a gradient exchange as ${reads.length} of its ${buckets.length} buckets were read`,
            );
          }
          try {
            mapNew();
            await handOn(reads.length);
          } catch (error) {
            await close(error);
            throw error;
          }
          closed = true;
          queue.close();
          await writeBack;
          timings.totalMs = performance.now() - t0;
          Object.assign(lastTimings, timings);
        },
        cancel: () => close(),
      };
    },
  };
}

/** An async iterable fed by `push`; ends at `close()`, or throws the error given to it. */
class BucketQueue implements AsyncIterable<Float32Array> {
  #items: Float32Array[] = [];
  #done = false;
  #error: { error: unknown } | null = null;
  #wake: (() => void) | null = null;

  push(item: Float32Array): void {
    this.#items.push(item);
    this.#signal();
  }

  close(error?: unknown): void {
    this.#done = true;
    if (error !== undefined) this.#error = { error };
    this.#signal();
  }

  #signal(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Float32Array> {
    for (;;) {
      if (this.#error) throw this.#error.error;
      if (this.#items.length) {
        yield this.#items.shift()!;
        continue;
      }
      if (this.#done) return;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }
}
