/**
 * Data-parallel gradient averaging for the step engine: the flat gradient buffer is read back in
 * DDP-style buckets (first 1 MiB, then ~25 MiB, fixed order on every rank), averaged by the distributed
 * layer's ring all-reduce (deterministic summation order, identical bits on every rank), and written back
 * before the optimizer's commands run.
 *
 * @module
 */
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

/**
 * A {@linkcode GradientSync} over a distributed context. Each bucket is read back as soon as the step's
 * commands are submitted, and all-reduced as it arrives (buckets are started in index order on every
 * rank; later read-backs overlap earlier exchanges).
 */
export function gradientSyncFor(ctx: DistributedContext, gpu: Gpu): GradientSync {
  return {
    worldSize: ctx.worldSize,
    async allReduceGradients(grads: GpuBuffer, elements: number): Promise<void> {
      const buckets = gradientBuckets(elements);
      const reads = buckets.map(([a, b]) => gpu.readback(grads, a * 4, (b - a) * 4));
      gpu.submit();
      // Start buckets strictly in index order (every rank must), each as soon as its read-back lands.
      const reduced: Float32Array[] = [];
      const pending: Promise<void>[] = [];
      for (let i = 0; i < reads.length; i++) {
        const data = new Float32Array(await reads[i]);
        reduced.push(data);
        pending.push(ctx.startBucket(i, data));
      }
      await Promise.all(pending);
      await ctx.flush();
      reduced.forEach((data, i) => gpu.write(grads, data, buckets[i][0] * 4));
    },
  };
}
