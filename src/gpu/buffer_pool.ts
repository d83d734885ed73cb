/**
 * A pool of storage buffers reused by size class, so that a training step allocates nothing once warm.
 *
 * @module
 */

/** A pooled GPU buffer with a stable numeric id (bind groups are cached by id). */
export interface GpuBuffer {
  readonly id: number;
  readonly buffer: GPUBuffer;
  /** Size in bytes (the size class, ≥ the size asked for). */
  readonly size: number;
}

/** Usage of every pooled buffer: bindable as storage, copyable both ways. */
export const STORAGE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/**
 * Size classes: 256 B, then powers of two and 1.5× powers of two (≤ 33% waste), so buffers of similar
 * size share a class and are reused across steps.
 */
export function sizeClass(bytes: number): number {
  const n = Math.max(256, Math.ceil(bytes / 16) * 16);
  const pow = 2 ** Math.floor(Math.log2(n));
  if (n === pow) return n;
  if (n <= pow * 1.5) return pow * 1.5;
  return pow * 2;
}

/** Counters for tests and benchmarks ("no per-step allocation in steady state"). */
export interface PoolStats {
  /** GPU buffers created over the pool's life. */
  created: number;
  /** Acquisitions served from the free lists. */
  reused: number;
  /** Bytes held by all buffers the pool created. */
  bytesAllocated: number;
  /** Bytes currently handed out. */
  bytesInUse: number;
}

/**
 * Hands out storage buffers by size class and takes them back for reuse.
 *
 * @example
 * ```ts
 * import { acquireDevice } from "./device.ts";
 * import { BufferPool } from "./buffer_pool.ts";
 * const { device } = await acquireDevice();
 * const pool = new BufferPool(device);
 * const a = pool.acquire(1000);
 * pool.release(a);
 * console.log(pool.acquire(900) === a); // true: same size class
 * device.destroy();
 * ```
 */
export class BufferPool {
  readonly #device: GPUDevice;
  readonly #free = new Map<number, GpuBuffer[]>();
  /** Released while recorded-but-unsubmitted commands may still use them; free after the next submit. */
  #pendingRelease: GpuBuffer[] = [];
  /** Whether commands are recorded but not yet submitted (set by the owning Gpu). */
  hasUnsubmittedWork: () => boolean = () => false;
  readonly #maxBufferSize: number;
  #nextId = 1;
  readonly stats: PoolStats = { created: 0, reused: 0, bytesAllocated: 0, bytesInUse: 0 };

  constructor(device: GPUDevice) {
    this.#device = device;
    this.#maxBufferSize = device.limits.maxBufferSize;
  }

  /** A buffer of at least `bytes` bytes; contents are undefined (the previous user's data). */
  acquire(bytes: number, label = "orion.pool"): GpuBuffer {
    const size = sizeClass(bytes);
    const list = this.#free.get(size);
    const reused = list?.pop();
    if (reused) {
      this.stats.reused++;
      this.stats.bytesInUse += size;
      return reused;
    }
    if (size > this.#maxBufferSize) {
      throw new RangeError(
        `Cannot allocate a GPU buffer of ${bytes} bytes as it exceeds the device's maxBufferSize: ` +
          `current value is ${this.#maxBufferSize}; reduce the batch size or model width`,
      );
    }
    const buffer = this.#device.createBuffer({ size, usage: STORAGE_USAGE, label });
    this.stats.created++;
    this.stats.bytesAllocated += size;
    this.stats.bytesInUse += size;
    return { id: this.#nextId++, buffer, size };
  }

  /**
   * Returns a buffer for reuse. If commands using it are recorded but not yet submitted, it becomes
   * reusable only after the next submit: a later `queue.writeBuffer` into it would otherwise land before
   * those commands run.
   */
  release(buf: GpuBuffer): void {
    this.stats.bytesInUse -= buf.size;
    if (this.hasUnsubmittedWork()) this.#pendingRelease.push(buf);
    else this.#toFreeList(buf);
  }

  /** Makes buffers released before the submit that just happened reusable. */
  recycle(): void {
    const pending = this.#pendingRelease;
    this.#pendingRelease = [];
    for (const b of pending) this.#toFreeList(b);
  }

  #toFreeList(buf: GpuBuffer): void {
    let list = this.#free.get(buf.size);
    if (!list) {
      list = [];
      this.#free.set(buf.size, list);
    }
    list.push(buf);
  }

  /** Destroys every free buffer (memory pressure or shutdown). */
  trim(): void {
    for (const list of this.#free.values()) {
      for (const b of list) {
        b.buffer.destroy();
        this.stats.bytesAllocated -= b.size;
      }
    }
    this.#free.clear();
  }

  /** Hands out an id for a buffer not created by the pool (so it can be bound like pooled ones). */
  adopt(buffer: GPUBuffer): GpuBuffer {
    return { id: this.#nextId++, buffer, size: buffer.size };
  }
}
