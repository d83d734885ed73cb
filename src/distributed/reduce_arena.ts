/**
 * A shared `WebAssembly.Memory` that holds the buckets of striped all-reduces and the stripe workers'
 * receive areas, so the workers read chunks from their sockets straight into it and the SIMD kernel adds
 * in place ({@link ArenaReductionKernel}), without staging copies. The owning thread allocates regions
 * (first fit, 64-byte aligned, neighbours coalesce on release) and grows the memory when none fits.
 *
 * @module
 */
import { SHARED_MEMORY_MAX_PAGES } from "./simd_add.ts";

const PAGE_BYTES = 65536;
const ALIGN = 64;

/**
 * Regions of one shared memory.
 *
 * @example
 * ```ts
 * const arena = new SharedReduceArena(1 << 20);
 * const offset = arena.allocate(4096);
 * arena.float32(offset, 1024).fill(1);
 * arena.release(offset);
 * ```
 */
export class SharedReduceArena {
  readonly memory: WebAssembly.Memory;
  /** Free regions sorted by offset. */
  readonly #free: Array<{ offset: number; bytes: number }> = [];
  readonly #used = new Map<number, number>();

  constructor(initialBytes = 16 * 1024 * 1024) {
    const pages = Math.max(1, Math.ceil(initialBytes / PAGE_BYTES));
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: SHARED_MEMORY_MAX_PAGES, shared: true });
    this.#free.push({ offset: 0, bytes: pages * PAGE_BYTES });
  }

  /** Bytes in use. */
  get usedBytes(): number {
    let total = 0;
    for (const bytes of this.#used.values()) total += bytes;
    return total;
  }

  /** The current size of the memory in bytes. */
  get byteLength(): number {
    return this.memory.buffer.byteLength;
  }

  /** A region of at least `bytes` bytes (64-byte aligned offset); grows the memory when needed. */
  allocate(bytes: number): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    let index = this.#free.findIndex((r) => r.bytes >= size);
    if (index < 0) {
      this.#grow(size);
      index = this.#free.findIndex((r) => r.bytes >= size);
    }
    const region = this.#free[index];
    const offset = region.offset;
    if (region.bytes === size) this.#free.splice(index, 1);
    else {
      region.offset += size;
      region.bytes -= size;
    }
    this.#used.set(offset, size);
    return offset;
  }

  /** Returns a region from {@link allocate}. */
  release(offset: number): void {
    const bytes = this.#used.get(offset);
    if (bytes === undefined) {
      throw new Error(`Cannot release arena region ${offset} as it is not allocated`);
    }
    this.#used.delete(offset);
    let index = this.#free.findIndex((r) => r.offset > offset);
    if (index < 0) index = this.#free.length;
    this.#free.splice(index, 0, { offset, bytes });
    const next = this.#free[index + 1];
    if (next && offset + bytes === next.offset) {
      this.#free[index].bytes += next.bytes;
      this.#free.splice(index + 1, 1);
    }
    const previous = this.#free[index - 1];
    if (previous && previous.offset + previous.bytes === offset) {
      previous.bytes += this.#free[index].bytes;
      this.#free.splice(index, 1);
    }
  }

  /** A new region of `length` zeroed f32 values (give it back with {@link release} of its `byteOffset`). */
  zeros(length: number): Float32Array {
    return this.float32(this.allocate(length * 4), length).fill(0);
  }

  /**
   * {@link zeros}, or a plain zeroed Float32Array once the arena is full (4 GiB: wasm32's address space), for
   * callers that only prefer arena memory (host kernels in place) but work with any array.
   */
  zerosOrPlain(length: number): Float32Array {
    try {
      return this.zeros(length);
    } catch (error) {
      if (error instanceof RangeError) return new Float32Array(length);
      throw error;
    }
  }

  /** A Float32Array view of `length` values at byte `offset`. */
  float32(offset: number, length: number): Float32Array {
    const buffer = this.memory.buffer;
    arenaBuffers(this.memory).add(buffer);
    return new Float32Array(buffer, offset, length);
  }

  #grow(size: number): void {
    const current = this.memory.buffer.byteLength;
    const last = this.#free.at(-1);
    const tailFree = last && last.offset + last.bytes === current ? last.bytes : 0;
    const wantBytes = Math.max(size - tailFree, current); // at least double
    const maxBytes = SHARED_MEMORY_MAX_PAGES * PAGE_BYTES;
    const pages = Math.min(Math.ceil(wantBytes / PAGE_BYTES), (maxBytes - current) / PAGE_BYTES);
    if (pages * PAGE_BYTES + tailFree < size) {
      throw new RangeError(
        `Cannot allocate ${size} bytes in the all-reduce arena as it would exceed 4 GiB: current value is ` +
          `${current} bytes (${this.usedBytes} in use); reduce fewer or smaller buckets at once`,
      );
    }
    this.memory.grow(pages);
    if (tailFree > 0) last!.bytes += pages * PAGE_BYTES;
    else this.#free.push({ offset: current, bytes: pages * PAGE_BYTES });
  }
}

/**
 * The `buffer` objects of each arena memory that views were handed out of (a shared memory's `buffer` is a
 * new object after each growth; views taken before stay valid).
 */
const viewBuffers = new WeakMap<WebAssembly.Memory, WeakSet<ArrayBufferLike>>();

function arenaBuffers(memory: WebAssembly.Memory): WeakSet<ArrayBufferLike> {
  let set = viewBuffers.get(memory);
  if (!set) viewBuffers.set(memory, set = new WeakSet());
  return set;
}

/**
 * Whether `view` lies in an arena's `memory` (it, or a view of the same buffer, came from
 * {@linkcode SharedReduceArena.float32}), so kernels over that memory may address it by byte offset.
 */
export function isArenaView(memory: WebAssembly.Memory, view: ArrayBufferView): boolean {
  return viewBuffers.get(memory)?.has(view.buffer) === true;
}
