/**
 * Ring all-reduce (mean) of Float32Array buckets: reduce-scatter, then all-gather, chunked and pipelined.
 *
 * ## Summation order (bit-exactness)
 * A bucket of length L is cut into `n = worldSize` segments of `S = roundUp4(ceil(L / n))` elements
 * (segment s covers `[min(L, s·S), min(L, (s+1)·S))`, trailing segments may be empty); segments are sent
 * in chunks of at most `chunkElements`. Segment s starts at rank s and travels the ring s → s+1 → … → s−1
 * (mod n); each rank adds its own values on arrival, so element i of segment s ends as
 *
 *     mean[i] = (((x_s[i] + x_{s+1}[i]) + x_{s+2}[i]) + … + x_{s−1}[i]) / n      (binary32, rank indices mod n)
 *
 * The rank owning the finished segment (rank s−1) divides it by n and the all-gather copies those exact bits
 * to every rank. The order depends only on (L, n), never on timing or chunk size, so results are
 * bit-identical on every rank and across runs with the same world size ({@link referenceRingMean}).
 *
 * ## Bucket order
 * The k-th {@link RingAllReduce.start} call on every rank must name the same bucket (PyTorch DDP's rule);
 * chunks carry the bucket index and a receiver refuses a mismatch with a {@link RingOrderError}.
 *
 * @module
 */
import {
  type DataChunkHeader,
  encodeDataFrame,
  type Frame,
  type FrameType,
  MAX_CHUNK_ELEMENTS,
  RingPhase,
  writeDataHeader,
} from "./frames.ts";
import type { ReductionKernel } from "./simd_add.ts";

/** A data frame as produced by `decodeFrame`. */
export type DataFrame = Extract<Frame, { type: typeof FrameType.data }>;

/** Half-open element ranges of the `worldSize` ring segments of a bucket of `length` elements. */
export function ringSegmentBounds(length: number, worldSize: number): Array<{ start: number; end: number }> {
  const perSegment = Math.ceil(Math.ceil(length / worldSize) / 4) * 4;
  return Array.from({ length: worldSize }, (_, s) => ({
    start: Math.min(length, s * perSegment),
    end: Math.min(length, (s + 1) * perSegment),
  }));
}

/**
 * The ring segments of stripe `stripe` of `stripes` (see `striped_all_reduce.ts`): each of the
 * {@link ringSegmentBounds} segments is cut into `stripes` parts of `roundUp4(ceil(len / stripes))` values,
 * and the stripe takes part `stripe` of each (possibly empty). Segment s of every stripe lies inside global
 * segment s, so it starts at rank s and every element is summed in the same order as by the unstriped ring.
 */
export function stripeSegmentBounds(
  length: number,
  worldSize: number,
  stripe: number,
  stripes: number,
): Array<{ start: number; end: number }> {
  return ringSegmentBounds(length, worldSize).map(({ start, end }) => {
    const per = Math.ceil(Math.ceil((end - start) / stripes) / 4) * 4;
    return { start: Math.min(end, start + stripe * per), end: Math.min(end, start + (stripe + 1) * per) };
  });
}

/** Chunks a rank receives in one collective over `segments` (both phases). */
export function expectedRingChunks(
  rank: number,
  worldSize: number,
  segments: ReadonlyArray<{ start: number; end: number }>,
  chunkElements: number,
): number {
  const mod = (x: number) => ((x % worldSize) + worldSize) % worldSize;
  const chunks = (s: number) => Math.ceil((segments[s].end - segments[s].start) / chunkElements);
  let expected = 0;
  for (let k = 0; k < worldSize - 1; k++) expected += chunks(mod(rank - k - 1)) + chunks(mod(rank - k));
  return expected;
}

/**
 * Checks that a chunk from the left neighbour fits rank `rank`'s schedule for a collective over
 * `bucket`/`bucketLength`/`segments`; throws {@link RingOrderError} naming the mismatch.
 */
export function checkRingChunk(
  h: DataChunkHeader,
  expect: {
    rank: number;
    worldSize: number;
    seq: number;
    bucket: number;
    bucketLength: number;
    segments: ReadonlyArray<{ start: number; end: number }>;
    chunkElements: number;
  },
): void {
  const n = expect.worldSize;
  const mod = (x: number) => ((x % n) + n) % n;
  if (h.bucket !== expect.bucket || h.bucketLength !== expect.bucketLength) {
    throw new RingOrderError(
      `Cannot all-reduce bucket ${expect.bucket} (${expect.bucketLength} values) at position #${expect.seq} ` +
        `as rank ${
          mod(expect.rank - 1)
        } started bucket ${h.bucket} (${h.bucketLength} values) there: every ` +
        `rank must start the same buckets in the same fixed order`,
    );
  }
  if (h.step > n - 2) throw new RingOrderError(`ring step ${h.step} out of range for ${n} ranks`);
  const expectedSegment = h.phase === RingPhase.reduceScatter
    ? mod(expect.rank - h.step - 1)
    : mod(expect.rank - h.step);
  const seg = expect.segments[expectedSegment];
  if (
    h.segment !== expectedSegment || h.offset < seg.start ||
    (h.offset - seg.start) % expect.chunkElements !== 0 ||
    h.elementCount !== Math.min(expect.chunkElements, seg.end - h.offset) || h.elementCount === 0
  ) {
    throw new RingOrderError(
      `chunk (phase ${h.phase}, step ${h.step}, segment ${h.segment}, offset ${h.offset}, ${h.elementCount} ` +
        `values) does not fit the ring schedule of rank ${expect.rank}`,
    );
  }
}

/**
 * The exact result every rank of a ring all-reduce mean produces, computed directly from all ranks'
 * inputs (the documented summation order). For tests and audits.
 */
export function referenceRingMean(inputs: readonly Float32Array[]): Float32Array {
  const n = inputs.length;
  const length = inputs[0]?.length ?? 0;
  const out = new Float32Array(length);
  for (const [s, { start, end }] of ringSegmentBounds(length, n).entries()) {
    for (let i = start; i < end; i++) {
      let acc = inputs[s][i];
      for (let j = 1; j < n; j++) acc = Math.fround(acc + inputs[(s + j) % n][i]);
      out[i] = Math.fround(acc / n);
    }
  }
  return out;
}

/** Ranks started buckets in different orders (or with different lengths). */
export class RingOrderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RingOrderError";
  }
}

/** Options of {@link RingAllReduce}. */
export interface RingAllReduceOptions {
  rank: number;
  worldSize: number;
  /** Job generation stamped on every chunk; chunks from another generation are refused. */
  generation: number;
  /** f32 values per chunk (≤ {@link MAX_CHUNK_ELEMENTS}); default 262144 (1 MiB). */
  chunkElements?: number;
  kernel: ReductionKernel;
  /** Queues one message to the right neighbour (rank + 1); messages must arrive in order. The transport owns it afterwards. */
  sendRight(message: ArrayBuffer): void;
  /** Supplies message buffers (default `new ArrayBuffer`); pair with `release` to recycle them. */
  allocate?(bytes: number): ArrayBuffer;
  /** Takes back a received message buffer that is not forwarded. */
  release?(buffer: ArrayBuffer): void;
}

/** When a collective ran, in `performance.now()` time of the thread that reads the times. */
export interface CollectiveTimes {
  startMs: number;
  /** When the first chunk from the left neighbour was processed (own-thread ring only). */
  firstChunkMs?: number;
  endMs: number;
  /** Each stripe that took part, when its worker started and finished the collective (stripes only). */
  stripes?: { stripe: number; startMs: number; endMs: number }[];
}

interface Collective {
  seq: number;
  bucket: number;
  data: Float32Array;
  segments: Array<{ start: number; end: number }>;
  expected: number;
  received: number;
  /** `performance.now()` at the start and when the first chunk from the left neighbour was processed. */
  startMs: number;
  firstChunkMs: number;
  resolve(): void;
  reject(error: Error): void;
}

/** Largest number of collectives a left neighbour may run ahead of this rank. */
const MAX_EARLY_COLLECTIVES = 1024;

/**
 * One rank's side of the ring. Feed it the data frames arriving from the left neighbour with
 * {@link receive}; it calls `sendRight` for everything it forwards. Collectives may overlap.
 *
 * @example
 * ```ts
 * const ring = new RingAllReduce({ rank, worldSize, generation: 0, kernel: new WasmReductionKernel(), sendRight });
 * leftSocket.onmessage = (e) => ring.receive(decodeFrame(e.data) as DataFrame);
 * await ring.start(0, gradients); // gradients now holds the mean over ranks
 * ```
 */
export class RingAllReduce {
  readonly rank: number;
  readonly worldSize: number;
  readonly generation: number;
  readonly chunkElements: number;
  readonly #kernel: ReductionKernel;
  readonly #sendRight: (message: ArrayBuffer) => void;
  readonly #allocate: (bytes: number) => ArrayBuffer;
  readonly #release: (buffer: ArrayBuffer) => void;
  readonly #active = new Map<number, Collective>();
  readonly #early = new Map<number, DataFrame[]>();
  readonly #bucketTimes = new Map<number, CollectiveTimes>();
  #nextSeq = 0;
  #failure: Error | null = null;

  constructor(options: RingAllReduceOptions) {
    this.rank = options.rank;
    this.worldSize = options.worldSize;
    this.generation = options.generation;
    this.chunkElements = options.chunkElements ?? 262_144;
    if (
      !Number.isInteger(this.chunkElements) || this.chunkElements < 4 ||
      this.chunkElements > MAX_CHUNK_ELEMENTS
    ) {
      throw new RangeError(
        `Cannot build the ring as chunkElements is out of range: current value is ${this.chunkElements}; ` +
          `use 4..${MAX_CHUNK_ELEMENTS}`,
      );
    }
    this.#kernel = options.kernel;
    this.#sendRight = options.sendRight;
    this.#allocate = options.allocate ?? ((bytes) => new ArrayBuffer(bytes));
    this.#release = options.release ?? (() => {});
  }

  /** Collectives started and not yet finished. */
  get inFlight(): number {
    return this.#active.size;
  }

  /**
   * Starts the mean all-reduce of `data` (in place) as the next collective; `bucket` is its index in the
   * fixed bucket order. Resolves when `data` holds the mean (this rank's part; sends may still be queued).
   */
  start(bucket: number, data: Float32Array): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    const seq = this.#nextSeq++;
    const n = this.worldSize;
    if (n === 1 || data.length === 0) return Promise.resolve();
    const segments = ringSegmentBounds(data.length, n);
    const expected = expectedRingChunks(this.rank, n, segments, this.chunkElements);
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const collective: Collective = {
      seq,
      bucket,
      data,
      segments,
      expected,
      received: 0,
      startMs: performance.now(),
      firstChunkMs: 0,
      resolve,
      reject,
    };
    this.#active.set(seq, collective);
    // Reduce-scatter step 0: this rank's own segment, raw.
    const own = segments[this.rank];
    for (let offset = own.start; offset < own.end; offset += this.chunkElements) {
      const count = Math.min(this.chunkElements, own.end - offset);
      this.#sendRight(
        encodeDataFrame(
          this.#header(collective, RingPhase.reduceScatter, 0, this.rank, offset, count),
          data.subarray(offset, offset + count),
          this.#allocate,
        ),
      );
    }
    const early = this.#early.get(seq);
    if (early) {
      this.#early.delete(seq);
      for (const frame of early) {
        this.#process(collective, frame);
        if (this.#failure) break;
      }
    }
    this.#maybeFinish(collective);
    return promise;
  }

  /**
   * Handles one data frame from the left neighbour. Throws {@link RingOrderError} (and fails every
   * collective) when the frame does not fit the schedule.
   */
  receive(frame: DataFrame): void {
    if (this.#failure) return;
    try {
      const h = frame.header;
      if (h.generation !== this.generation) {
        throw new RingOrderError(
          `chunk from generation ${h.generation} arrived in generation ${this.generation}`,
        );
      }
      const collective = this.#active.get(h.collective);
      if (collective) {
        this.#process(collective, frame);
        this.#maybeFinish(collective);
        return;
      }
      if (h.collective < this.#nextSeq) {
        throw new RingOrderError(`chunk for finished collective #${h.collective}`);
      }
      if (h.collective - this.#nextSeq >= MAX_EARLY_COLLECTIVES) {
        throw new RingOrderError(`left neighbour ran ${h.collective - this.#nextSeq} collectives ahead`);
      }
      let list = this.#early.get(h.collective);
      if (!list) this.#early.set(h.collective, list = []);
      list.push(frame);
    } catch (error) {
      this.abort(error as Error);
      throw error;
    }
  }

  /** Fails every pending and future collective with `error`. */
  abort(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    for (const collective of this.#active.values()) collective.reject(error);
    this.#active.clear();
    this.#early.clear();
  }

  #header(
    c: Collective,
    phase: RingPhase,
    step: number,
    segment: number,
    offset: number,
    count: number,
  ): DataChunkHeader {
    return {
      generation: this.generation,
      collective: c.seq,
      bucket: c.bucket,
      bucketLength: c.data.length,
      phase,
      step,
      segment,
      offset,
      elementCount: count,
    };
  }

  #process(c: Collective, frame: DataFrame): void {
    const h = frame.header;
    const n = this.worldSize;
    checkRingChunk(h, {
      rank: this.rank,
      worldSize: n,
      seq: c.seq,
      bucket: c.bucket,
      bucketLength: c.data.length,
      segments: c.segments,
      chunkElements: this.chunkElements,
    });
    const { offset, elementCount: count } = h;
    const local = c.data.subarray(offset, offset + count);
    if (h.phase === RingPhase.reduceScatter) {
      if (h.step < n - 2) {
        this.#kernel.addInto(frame.values, local);
        writeDataHeader(frame.buffer, { ...h, step: h.step + 1 });
      } else {
        // Last reduce-scatter step: this rank owns the finished segment.
        this.#kernel.addDivideInto(frame.values, local, n);
        local.set(frame.values);
        writeDataHeader(frame.buffer, { ...h, phase: RingPhase.allGather, step: 0 });
      }
      this.#sendRight(frame.buffer);
    } else {
      local.set(frame.values);
      if (h.step < n - 2) {
        writeDataHeader(frame.buffer, { ...h, step: h.step + 1 });
        this.#sendRight(frame.buffer);
      } else this.#release(frame.buffer);
    }
    if (c.received++ === 0) c.firstChunkMs = performance.now();
  }

  #maybeFinish(c: Collective): void {
    if (c.received < c.expected || !this.#active.has(c.seq)) return;
    this.#active.delete(c.seq);
    this.#bucketTimes.set(c.bucket, {
      startMs: c.startMs,
      firstChunkMs: c.firstChunkMs,
      endMs: performance.now(),
    });
    c.resolve();
  }

  /**
   * When this ring last ran each bucket index's collective (`performance.now()` time): started, first chunk
   * from the left neighbour processed, finished. For traces.
   */
  get bucketTimes(): ReadonlyMap<number, CollectiveTimes> {
    return this.#bucketTimes;
  }
}
