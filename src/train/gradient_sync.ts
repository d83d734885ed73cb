/**
 * Data-parallel gradient averaging for the step engine: the flat gradient buffer is read back in
 * DDP-style buckets (first 1 MiB, then ~25 MiB, fixed order on every rank), averaged by the distributed
 * layer's ring all-reduce (deterministic summation order, identical bits on every rank), and written back
 * before the optimizer's commands run.
 *
 * @module
 */
import { allReduceBuckets } from "../distributed/bucket_overlap.ts";
import type { DistributedContext } from "../distributed/context.ts";
import type { Gpu } from "../gpu/gpu.ts";
import type { GpuBuffer } from "../gpu/buffer_pool.ts";
import type { GradientSync } from "./trainer.ts";

const FIRST_BUCKET_BYTES = 1 << 20;
const BUCKET_BYTES = 25 << 20;

/** Bucket boundaries (in f32 elements) over a flat gradient of `elements`. */
export function gradientBuckets(elements: number): [number, number][] {
  const out: [number, number][] = [];
  let start = 0;
  let size = FIRST_BUCKET_BYTES / 4;
  while (start < elements) {
    const end = Math.min(elements, start + size);
    out.push([start, end]);
    start = end;
    size = BUCKET_BYTES / 4;
  }
  return out;
}

/** Phases of one gradient sync, in ms from its start. */
export interface GradientSyncTimings {
  /** The first bucket was copied out (the GPU finished backward, plus the map's latency and the copy). */
  firstReadMs: number;
  /** The last bucket was copied out. */
  lastReadMs: number;
  /** Every bucket reduced and written back. */
  totalMs: number;
}

/**
 * A {@linkcode GradientSync} over a distributed context. Every bucket's read-back is queued as soon as the
 * step's commands are submitted; once mapped, bucket by bucket in index order, it is copied straight into a
 * bucket the context reduces in place (allocated on the first step and kept: no fresh host buffers, whose
 * page faults cost ~0.7 ms per MiB on the H200 host) and handed to the all-reduce before the next bucket is
 * copied (later copies overlapping earlier exchanges, {@linkcode allReduceBuckets}); each is written back as
 * soon as it and every earlier bucket are reduced.
 */
export function gradientSyncFor(ctx: DistributedContext, gpu: Gpu): GradientSync & {
  /** Phases of the last sync, ms from its start (for benchmarks). */
  readonly lastTimings: GradientSyncTimings;
} {
  let host: { elements: number; buckets: [number, number][]; data: Float32Array[] } | null = null;
  const lastTimings: GradientSyncTimings = { firstReadMs: 0, lastReadMs: 0, totalMs: 0 };
  return {
    worldSize: ctx.worldSize,
    lastTimings,
    async allReduceGradients(grads: GpuBuffer, elements: number): Promise<void> {
      const t0 = performance.now();
      if (host?.elements !== elements) {
        const buckets = gradientBuckets(elements);
        host = { elements, buckets, data: buckets.map(([a, b]) => ctx.sharedBucket(b - a)) };
      }
      const { buckets, data } = host;
      const mapped = buckets.map(([a, b]) => gpu.readbackMapped(grads, a * 4, (b - a) * 4));
      gpu.submit();
      lastTimings.firstReadMs = lastTimings.lastReadMs = 0;
      // Every map lands in the same event-loop turn; each bucket is copied out only when the exchange is
      // ready for it, so bucket i travels (on the ring's workers) while bucket i + 1 is being copied.
      async function* readBack(): AsyncGenerator<Float32Array> {
        let i = 0;
        try {
          for (; i < mapped.length; i++) {
            const bucket = data[i];
            (await mapped[i]).copyTo(new Uint8Array(bucket.buffer, bucket.byteOffset, bucket.byteLength));
            lastTimings.lastReadMs = performance.now() - t0;
            if (i === 0) lastTimings.firstReadMs = lastTimings.lastReadMs;
            yield bucket;
          }
        } finally {
          // Stopped early (an error): unmap whatever was not copied.
          for (let j = i; j < mapped.length; j++) mapped[j].then((m) => m.release(), () => {});
        }
      }
      for await (const { index, data: reduced } of allReduceBuckets(ctx, readBack())) {
        gpu.write(grads, reduced, buckets[index][0] * 4);
      }
      lastTimings.totalMs = performance.now() - t0;
    },
  };
}
