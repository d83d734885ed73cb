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
  /** The first bucket's read-back landed (the GPU finished backward, plus the map's latency). */
  firstReadMs: number;
  /** The last bucket's read-back landed. */
  lastReadMs: number;
  /** Every bucket reduced and written back. */
  totalMs: number;
}

/**
 * A {@linkcode GradientSync} over a distributed context. Every bucket's read-back is queued as soon as the
 * step's commands are submitted, straight into a bucket the context reduces in place (allocated on the first
 * step and kept: no fresh host buffers, whose page faults cost ~0.7 ms per MiB on the H200 host); each bucket
 * is all-reduced the moment its read-back lands (in index order on every rank, later read-backs overlapping
 * earlier exchanges, {@linkcode allReduceBuckets}) and written back as soon as it and every earlier bucket
 * are reduced.
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
      const reads = buckets.map(([a, b], i) =>
        gpu.readbackInto(
          grads,
          a * 4,
          (b - a) * 4,
          new Uint8Array(data[i].buffer, data[i].byteOffset, (b - a) * 4),
        )
          .then(() => {
            const at = performance.now() - t0;
            if (i === 0) lastTimings.firstReadMs = at;
            lastTimings.lastReadMs = Math.max(lastTimings.lastReadMs, at);
            return data[i];
          })
      );
      lastTimings.lastReadMs = 0;
      gpu.submit();
      async function* readBack(): AsyncGenerator<Float32Array> {
        for (const read of reads) yield await read;
      }
      for await (const { index, data: reduced } of allReduceBuckets(ctx, readBack())) {
        gpu.write(grads, reduced, buckets[index][0] * 4);
      }
      lastTimings.totalMs = performance.now() - t0;
    },
  };
}
