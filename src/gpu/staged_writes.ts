/**
 * Staged writes: the host writes of captured command streams (a step's batch uploads), written ahead into
 * one GPU staging buffer in slices, whenever the caller has time, and copied into their real targets by
 * commands recorded later ({@linkcode Gpu.copyStaged}).
 *
 * A queue write lands before the next submit. Writing a batch straight into the buffers a step reads would
 * therefore have to wait until every command that reads the current batch was submitted; a synced step
 * submits its backward in segments, so that point is its last boundary, where the thread has the least time.
 * The staging buffer is read only by the copies, which the step records after its optimizer: it can be
 * written at any earlier boundary, in the time the thread would otherwise spend blocked in a map.
 *
 * Queue order makes one staging buffer enough: the copies that read step N's staged bytes are submitted at
 * the end of step N−1, before any write of step N's boundaries.
 *
 * @example
 * ```ts ignore
 * const staged = new StagedWrites(gpu.device, graph.segments); // the streams' captured writes, in order
 * staged.load(nextBatchArrays); // one array per captured write
 * staged.writeUntil(performance.now() + 0.5); // as much as fits, in slices
 * staged.writeUntil(Infinity); // the rest
 * gpu.copyStaged(staged); // recorded where the targets may be overwritten
 * ```
 *
 * @module
 */
import type { CapturedGraph } from "./gpu.ts";

/** Bytes per queue write of a staged upload: short enough to stop near a deadline, long enough to be cheap. */
export const STAGED_SLICE_BYTES = 1 << 20;

/** One captured write: where its bytes sit in the staging buffer and where they go. */
interface StagedTarget {
  stagedAt: number;
  target: GPUBuffer;
  targetOffset: number;
  bytes: number;
}

/**
 * The captured writes of a list of command streams, staged in one GPU buffer. Reusable: {@linkcode load}
 * starts the next set of data for the same writes.
 */
export class StagedWrites {
  readonly buffer: GPUBuffer;
  /** Bytes of all writes together. */
  readonly bytes: number;
  readonly #device: GPUDevice;
  readonly #targets: StagedTarget[];
  #data: Uint8Array[] = [];
  #index = 0; // writes [0, #index) are staged whole
  #done = 0; // bytes of write #index staged
  #loaded = false;

  /**
   * Stages the writes of `graphs`, in order. Throws when one cannot be copied on the GPU (a byte count or
   * offset that is not a multiple of 4); {@linkcode StagedWrites.supports} says so beforehand.
   */
  constructor(device: GPUDevice, graphs: readonly CapturedGraph[]) {
    this.#device = device;
    this.#targets = [];
    let at = 0;
    for (const graph of graphs) {
      for (const c of graph.commands) {
        if (c.kind !== "write") continue;
        if (c.bytes % 4 !== 0 || c.offset % 4 !== 0) {
          throw new RangeError(
            `Cannot stage a write of ${c.bytes} bytes at offset ${c.offset} as GPU copies need multiples of 4`,
          );
        }
        this.#targets.push({ stagedAt: at, target: c.buffer, targetOffset: c.offset, bytes: c.bytes });
        at += c.bytes;
      }
    }
    this.bytes = at;
    this.buffer = device.createBuffer({
      size: Math.max(4, at),
      usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      label: "orion.staged_writes",
    });
  }

  /** Whether every write of `graphs` can be staged (byte counts and offsets multiples of 4). */
  static supports(graphs: readonly CapturedGraph[]): boolean {
    return graphs.every((g) =>
      g.commands.every((c) => c.kind !== "write" || (c.bytes % 4 === 0 && c.offset % 4 === 0))
    );
  }

  /** Number of writes staged per load. */
  get writes(): number {
    return this.#targets.length;
  }

  /** Whether the loaded data is staged whole (then {@linkcode Gpu.copyStaged} may record its copies). */
  get complete(): boolean {
    return this.#loaded && this.#index === this.#targets.length;
  }

  /** Bytes of the loaded data staged so far. */
  get stagedBytes(): number {
    if (!this.#loaded) return 0;
    return this.#index === this.#targets.length
      ? this.bytes
      : this.#targets[this.#index].stagedAt + this.#done;
  }

  /**
   * Starts staging `data` (one array per captured write, same byte lengths, in order); nothing is written
   * yet. The arrays must not change until they are staged.
   */
  load(data: readonly ArrayBufferView[]): void {
    if (data.length !== this.#targets.length) {
      throw new RangeError(
        `Cannot stage ${data.length} arrays for ${this.#targets.length} captured writes: current value is ${data.length}`,
      );
    }
    data.forEach((d, i) => {
      if (d.byteLength !== this.#targets[i].bytes) {
        throw new RangeError(
          `Cannot stage array ${i} of ${d.byteLength} bytes as its captured write has ${
            this.#targets[i].bytes
          }: current value is ${d.byteLength}`,
        );
      }
    });
    this.#data = data.map((d) => new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    this.#index = 0;
    this.#done = 0;
    this.#loaded = true;
  }

  /**
   * Queue-writes the loaded data into the staging buffer in slices of {@linkcode STAGED_SLICE_BYTES}, as
   * long as `performance.now()` is before `deadline` (checked before each slice). Returns whether it is
   * staged whole.
   */
  writeUntil(deadline: number): boolean {
    if (!this.#loaded) throw new Error("Cannot stage writes before data was loaded");
    const queue = this.#device.queue;
    while (this.#index < this.#targets.length) {
      if (deadline !== Infinity && performance.now() >= deadline) return false;
      const target = this.#targets[this.#index];
      const data = this.#data[this.#index];
      if (target.bytes === 0) {
        this.#index++;
        continue;
      }
      const size = Math.min(STAGED_SLICE_BYTES, target.bytes - this.#done);
      queue.writeBuffer(
        this.buffer,
        target.stagedAt + this.#done,
        data as Uint8Array<ArrayBuffer>,
        this.#done,
        size,
      );
      this.#done += size;
      if (this.#done === target.bytes) {
        this.#index++;
        this.#done = 0;
      }
    }
    this.#data = [];
    return true;
  }

  /** Records the copies from the staging buffer into the targets (use {@linkcode Gpu.copyStaged}). */
  recordCopies(encoder: GPUCommandEncoder): void {
    if (!this.complete) {
      throw new Error(
        `Cannot copy staged writes into place as ${this.stagedBytes} of ${this.bytes} bytes are staged`,
      );
    }
    for (const t of this.#targets) {
      if (t.bytes > 0) encoder.copyBufferToBuffer(this.buffer, t.stagedAt, t.target, t.targetOffset, t.bytes);
    }
  }

  /** Frees the staging buffer. */
  destroy(): void {
    this.buffer.destroy();
    this.#data = [];
    this.#loaded = false;
  }
}
