/**
 * One stripe's ring all-reduce (mean) over a shared arena ({@link SharedReduceArena}), with no staging
 * copies: the schedule and the summation order are those of {@link RingAllReduce} restricted to the
 * stripe's parts of each segment ({@link stripeSegmentBounds}), so the bits equal the unstriped ring's.
 *
 * Zero-copy data flow (per chunk):
 * - step 0 sends this rank's own values straight from the bucket;
 * - a reduce-scatter chunk is read into a one-chunk receive area, added into the bucket in place
 *   (`local = received + local`, SIMD on the shared memory), and the bucket's values are forwarded;
 * - an all-gather chunk is read straight into the bucket and forwarded from there.
 *
 * Overwriting the bucket while earlier sends from it are queued is safe: a region receives its all-gather
 * values only after the right neighbour has received this rank's reduce-scatter values for it (TCP
 * order), so those bytes already left. A collective resolves once every chunk arrived and every send
 * from its bucket was written, so the caller may reuse the bucket right away.
 *
 * @module
 */
import { type DataChunkHeader, encodeDataHead, MAX_CHUNK_ELEMENTS, RingPhase } from "./frames.ts";
import {
  checkRingChunk,
  expectedRingChunks,
  RingOrderError,
  stripeSegmentBounds,
} from "./ring_all_reduce.ts";
import type { ArenaReductionKernel } from "./simd_add.ts";

/** Options of {@link StripeRing}. */
export interface StripeRingOptions {
  rank: number;
  worldSize: number;
  generation: number;
  /** f32 values per chunk (≤ {@link MAX_CHUNK_ELEMENTS}). */
  chunkElements: number;
  /** This ring's stripe index, 0..stripes−1. */
  stripe: number;
  stripes: number;
  /** SIMD kernel over the shared arena memory (buckets and the receive area live there). */
  kernel: ArenaReductionKernel;
  /**
   * Byte offset of this ring's two scratch areas in the kernel's memory, `2 × chunkElements × 4` bytes: the
   * socket reads reduce-scatter chunks into the first; chunks that arrived before their collective started
   * are added from the second (the socket may be halfway through a read into the first at that moment).
   */
  receiveOffset: number;
  /**
   * Queues one message (a 48-byte head, `DATA_VALUES_OFFSET`, then the values) to the right neighbour, in
   * order; `written` runs once both were handed to the OS.
   */
  send(head: Uint8Array, values: Uint8Array, written: () => void): void;
}

interface StripeCollective {
  seq: number;
  bucket: number;
  /** Byte offset of the bucket in the memory. */
  base: number;
  /** bf16 compression: byte offset of the bucket's bf16 bits (widened before, rounded back after). */
  bf16Base: number | null;
  length: number;
  segments: Array<{ start: number; end: number }>;
  expected: number;
  received: number;
  unwritten: number;
  resolve(): void;
  reject(error: Error): void;
}

/** Largest number of collectives a left neighbour may run ahead of this rank. */
const MAX_EARLY_COLLECTIVES = 1024;

/**
 * Completion slots: a stripe that finishes collective `seq` adds 1 to the Int32 at `seq % COMPLETION_SLOTS`
 * of a shared region before it posts `done`, so the rank's thread can see finished collectives without an
 * event-loop turn ({@link StripedAllReduce.pollCompleted}): a training step's thread spends backward blocked
 * in buffer maps, and a `done` message waits for its next turn. A stripe that sits a collective out adds
 * {@link SAT_OUT} instead, and the collective is finished for the rank once the stripes that run it have
 * finished ({@link completionReached}), whenever the others get to it; the slot is free again once every stripe
 * passed it ({@link completionDrained}). At most this many collectives are in flight or not yet passed.
 */
export const COMPLETION_SLOTS = 1024;

/** What a stripe that sits a collective out adds to its completion slot (the count above the low 16 bits). */
export const SAT_OUT = 1 << 16;

/**
 * The stripes that run a collective of `length` values on `stripesUsed` stripes (0..stripesUsed−1; none for an
 * empty bucket), as its start descriptor says: every stripe and the rank's thread count the same.
 */
export function stripesRunning(length: number, stripesUsed: number): number {
  return length === 0 ? 0 : stripesUsed;
}

/**
 * Whether a completion slot's `word` says the collective is finished for the rank: every one of its `running`
 * stripes finished it, or, when none runs it, all `stripes` passed it.
 *
 * @example
 * ```ts
 * import { completionReached, SAT_OUT } from "./stripe_ring.ts";
 * console.log(completionReached(2, 2, 4)); // true: both running stripes finished; two have not passed it yet
 * console.log(completionReached(1 + 2 * SAT_OUT, 2, 4)); // false
 * console.log(completionReached(4 * SAT_OUT, 0, 4)); // true: an empty bucket every stripe passed
 * ```
 */
export function completionReached(word: number, running: number, stripes: number): boolean {
  const ran = word & (SAT_OUT - 1);
  return running > 0 ? ran >= running : ran + (word >>> 16) >= stripes;
}

/** Whether every one of `stripes` stripes passed the collective of a completion slot's `word` (free for reuse). */
export function completionDrained(word: number, stripes: number): boolean {
  return (word & (SAT_OUT - 1)) + (word >>> 16) >= stripes;
}

/**
 * One rank's side of one stripe's ring. Feed it the chunks from the left neighbour with
 * {@link receiveTarget} (where to read the values) and {@link receiveDone} (they are there).
 *
 * @example
 * ```ts ignore
 * const ring = new StripeRing({ rank, worldSize, generation: 0, chunkElements: 262144, stripe: 0, stripes: 2,
 *   kernel, receiveOffset, send: (head, values, written) => link.sendParts([head, values], written) });
 * socket.receiveSplit({ headBytes: DATA_VALUES_OFFSET,
 *   target: (head, bytes) => ring.receiveTarget(decodeDataHead(head, bytes)),
 *   done: (head, rest) => ring.receiveDone(decodeDataHead(head, rest.length + DATA_VALUES_OFFSET), rest) });
 * await ring.start(0, arenaOffset, length); // the bucket at arenaOffset now holds the mean
 * ```
 */
export class StripeRing {
  readonly rank: number;
  readonly worldSize: number;
  readonly generation: number;
  readonly chunkElements: number;
  readonly stripe: number;
  readonly stripes: number;
  readonly #kernel: ArenaReductionKernel;
  readonly #receiveOffset: number;
  readonly #send: StripeRingOptions["send"];
  readonly #active = new Map<number, StripeCollective>();
  readonly #early = new Map<number, Array<{ header: DataChunkHeader; values: Uint8Array }>>();
  /** Targets handed out for chunks of collectives not started yet. */
  readonly #stashes = new WeakSet<Uint8Array>();
  #nextSeq = 0;
  #failure: Error | null = null;

  constructor(options: StripeRingOptions) {
    this.rank = options.rank;
    this.worldSize = options.worldSize;
    this.generation = options.generation;
    this.chunkElements = options.chunkElements;
    this.stripe = options.stripe;
    this.stripes = options.stripes;
    if (
      !Number.isInteger(this.chunkElements) || this.chunkElements < 4 ||
      this.chunkElements > MAX_CHUNK_ELEMENTS
    ) {
      throw new RangeError(
        `Cannot build the stripe ring as chunkElements is out of range: current value is ${this.chunkElements}; ` +
          `use 4..${MAX_CHUNK_ELEMENTS}`,
      );
    }
    if (!Number.isInteger(this.stripe) || this.stripe < 0 || this.stripe >= this.stripes) {
      throw new RangeError(
        `Cannot build the stripe ring as stripe is out of range: current value is ${this.stripe}; ` +
          `use 0..${this.stripes - 1}`,
      );
    }
    this.#kernel = options.kernel;
    this.#receiveOffset = options.receiveOffset;
    this.#send = options.send;
  }

  /** Collectives started and not yet finished. */
  get inFlight(): number {
    return this.#active.size;
  }

  /**
   * Starts the next collective: the mean over ranks of the `length` f32 values at byte offset `base` of the
   * memory, in place (this stripe's parts only). Resolves when they hold the mean and every send from
   * them was written.
   *
   * With `bf16Base` (gradient compression), the values arrive as bf16 bits at that byte offset: this
   * stripe's parts are widened into the f32 values first, and their mean is rounded back there (nearest
   * even) before the collective resolves — each stripe's share of the codec runs on its own thread.
   */
  start(bucket: number, base: number, length: number, bf16Base: number | null = null): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    const seq = this.#nextSeq++;
    const n = this.worldSize;
    if (n === 1 || length === 0) return Promise.resolve();
    const segments = stripeSegmentBounds(length, n, this.stripe, this.stripes);
    if (bf16Base !== null) {
      for (const { start, end } of segments) {
        this.#kernel.unpackBf16(base + 4 * start, bf16Base + 2 * start, end - start);
      }
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const c: StripeCollective = {
      seq,
      bucket,
      base,
      bf16Base,
      length,
      segments,
      expected: expectedRingChunks(this.rank, n, segments, this.chunkElements),
      received: 0,
      unwritten: 0,
      resolve,
      reject,
    };
    this.#active.set(seq, c);
    const own = segments[this.rank];
    for (let offset = own.start; offset < own.end; offset += this.chunkElements) {
      const count = Math.min(this.chunkElements, own.end - offset);
      this.#forward(c, { ...this.#header(c, offset, count), segment: this.rank });
    }
    const early = this.#early.get(seq);
    if (early) {
      this.#early.delete(seq);
      try {
        for (const { header, values } of early) {
          this.#check(c, header);
          this.#process(c, header, values);
        }
      } catch (error) {
        this.abort(error as Error);
      }
    }
    this.#maybeFinish(c);
    return promise;
  }

  /**
   * Where the values of the chunk with `header` must be read (exactly `elementCount × 4` bytes). Throws
   * {@link RingOrderError} (and fails every collective) when the chunk does not fit the schedule.
   */
  receiveTarget(header: DataChunkHeader): Uint8Array {
    if (this.#failure) throw this.#failure;
    try {
      if (header.generation !== this.generation) {
        throw new RingOrderError(
          `chunk from generation ${header.generation} arrived in generation ${this.generation}`,
        );
      }
      const c = this.#active.get(header.collective);
      const bytes = header.elementCount * 4;
      if (c) {
        this.#check(c, header);
        const buffer = this.#kernel.memory.buffer;
        return header.phase === RingPhase.reduceScatter
          ? new Uint8Array(buffer, this.#receiveOffset, bytes)
          : new Uint8Array(buffer, c.base + header.offset * 4, bytes);
      }
      if (header.collective < this.#nextSeq) {
        throw new RingOrderError(`chunk for finished collective #${header.collective}`);
      }
      if (header.collective - this.#nextSeq >= MAX_EARLY_COLLECTIVES) {
        throw new RingOrderError(
          `left neighbour ran ${header.collective - this.#nextSeq} collectives ahead`,
        );
      }
      const stash = new Uint8Array(bytes); // held until this rank starts that collective
      this.#stashes.add(stash);
      return stash;
    } catch (error) {
      this.abort(error as Error);
      throw error;
    }
  }

  /** The values of a chunk are in `values`, the view {@link receiveTarget} returned for it. */
  receiveDone(header: DataChunkHeader, values: Uint8Array): void {
    if (this.#failure) return;
    const c = this.#active.get(header.collective);
    if (this.#stashes.has(values)) {
      this.#stashes.delete(values);
      if (c) {
        // The collective started while the chunk was being read into its stash.
        try {
          this.#check(c, header);
          this.#process(c, header, values);
          this.#maybeFinish(c);
        } catch (error) {
          this.abort(error as Error);
          throw error;
        }
        return;
      }
    }
    if (!c) {
      let list = this.#early.get(header.collective);
      if (!list) this.#early.set(header.collective, list = []);
      list.push({ header, values });
      return;
    }
    try {
      this.#process(c, header, null);
      this.#maybeFinish(c);
    } catch (error) {
      this.abort(error as Error);
      throw error;
    }
  }

  /** Fails every pending and future collective with `error`. */
  abort(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    for (const c of this.#active.values()) c.reject(error);
    this.#active.clear();
    this.#early.clear();
  }

  #check(c: StripeCollective, header: DataChunkHeader): void {
    checkRingChunk(header, {
      rank: this.rank,
      worldSize: this.worldSize,
      seq: c.seq,
      bucket: c.bucket,
      bucketLength: c.length,
      segments: c.segments,
      chunkElements: this.chunkElements,
    });
  }

  #header(c: StripeCollective, offset: number, count: number): DataChunkHeader {
    return {
      generation: this.generation,
      collective: c.seq,
      bucket: c.bucket,
      bucketLength: c.length,
      phase: RingPhase.reduceScatter,
      step: 0,
      segment: 0,
      offset,
      elementCount: count,
    };
  }

  /** Sends the bucket's values of the chunk `header` describes. */
  #forward(c: StripeCollective, header: DataChunkHeader): void {
    c.unwritten++;
    const values = new Uint8Array(
      this.#kernel.memory.buffer,
      c.base + header.offset * 4,
      header.elementCount * 4,
    );
    this.#send(encodeDataHead(header), values, () => {
      c.unwritten--;
      this.#maybeFinish(c);
    });
  }

  /** `stash`: the values when they arrived before the collective started (else they are in place). */
  #process(c: StripeCollective, h: DataChunkHeader, stash: Uint8Array | null): void {
    const n = this.worldSize;
    const local = c.base + h.offset * 4;
    const count = h.elementCount;
    if (h.phase === RingPhase.reduceScatter) {
      let received = this.#receiveOffset;
      if (stash) {
        received = this.#receiveOffset + this.chunkElements * 4;
        new Uint8Array(this.#kernel.memory.buffer, received, stash.length).set(stash);
      }
      if (h.step < n - 2) {
        this.#kernel.add(local, received, local, count);
        this.#forward(c, { ...h, step: h.step + 1 });
      } else {
        // Last reduce-scatter step: this rank owns the finished segment.
        this.#kernel.addDivide(local, received, local, count, n);
        this.#forward(c, { ...h, phase: RingPhase.allGather, step: 0 });
      }
    } else {
      if (stash) new Uint8Array(this.#kernel.memory.buffer, local, stash.length).set(stash);
      if (h.step < n - 2) this.#forward(c, { ...h, step: h.step + 1 });
    }
    c.received++;
  }

  #maybeFinish(c: StripeCollective): void {
    if (c.received < c.expected || c.unwritten > 0 || !this.#active.has(c.seq)) return;
    this.#active.delete(c.seq);
    if (c.bf16Base !== null) {
      for (const { start, end } of c.segments) {
        this.#kernel.packBf16(c.bf16Base + 2 * start, c.base + 4 * start, end - start);
      }
    }
    c.resolve();
  }
}
