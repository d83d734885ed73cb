/**
 * Mesh all-reduce (mean) for small buckets: the ring's reduce-scatter and all-gather done in one round
 * each, over a link between every pair of ranks.
 *
 * A ring runs 2(n−1) steps one after another, each a message of a 1/n segment: for small buckets the
 * time is those steps' fixed costs (a socket write, a wake-up, a read), not bytes. The mesh sends the same
 * bytes per rank (2(n−1)/n of the bucket) in two rounds:
 *
 * 1. scatter: every rank sends each segment of its own values straight to the segment's owner;
 * 2. gather: each owner sends its finished mean to every other rank.
 *
 * ## Summation order (bit-exactness)
 * The segments and owners are the ring's ({@link ringSegmentBounds}: segment s is owned by rank s−1), and
 * the owner adds the contributions in the ring's order, whatever order they arrive in:
 *
 *     mean[i] = (((x_s[i] + x_{s+1}[i]) + x_{s+2}[i]) + … + x_{s−1}[i]) / n      (binary32, rank indices mod n)
 *
 * so every bit equals the ring's ({@link referenceRingMean}) and the stripes'; the path a bucket takes
 * changes its speed, never its value.
 *
 * ## Cost
 * Links: n(n−1) per job, so the mesh is for one host or a few ({@link MESH_MAX_RANKS}); bytes that cross
 * hosts are more than the ring's, so it takes only the buckets below {@link meshMaxBytes}.
 *
 * @module
 */
import {
  type DataChunkHeader,
  encodeDataFrame,
  MAX_CHUNK_ELEMENTS,
  RingPhase,
  writeDataHeader,
} from "./frames.ts";
import { type DataFrame, RingOrderError, ringSegmentBounds } from "./ring_all_reduce.ts";
import type { ReductionKernel } from "./simd_add.ts";
import { integerFromEnv } from "./striped_all_reduce.ts";

/** Largest world size that connects the mesh (n(n−1) links). */
export const MESH_MAX_RANKS = 16;

/** Environment variable that sets the largest bucket (exclusive, bytes) the mesh takes (see {@link meshMaxBytes}). */
export const MESH_MAX_BYTES_ENV = "ORION_MESH_MAX_BYTES";

/** Per-segment share of a bucket below which the mesh's two rounds beat the ring's 2(n−1) steps. */
export const MESH_SEGMENT_MAX_BYTES = 512 * 1024;

/**
 * Buckets of fewer bytes than this go to the mesh (when the job connects one, see {@link meshConnects}).
 * `explicit` (an option, or {@link meshMaxBytesFromEnv}) wins; otherwise `worldSize × 512 KiB`: each
 * segment under {@link MESH_SEGMENT_MAX_BYTES}. 0 turns the mesh off.
 *
 * @example
 * ```ts
 * import { meshMaxBytes } from "./mesh_all_reduce.ts";
 * console.log(meshMaxBytes(null, 8)); // 4194304: buckets under 4 MiB take the mesh
 * ```
 */
export function meshMaxBytes(explicit: number | null, worldSize: number): number {
  return explicit ?? worldSize * MESH_SEGMENT_MAX_BYTES;
}

/** Whether a job of `worldSize` ranks connects the mesh: 3..{@link MESH_MAX_RANKS} ranks and a non-zero limit (2 ranks: the ring is already one round each way). */
export function meshConnects(worldSize: number, maxBytes: number): boolean {
  return worldSize >= 3 && worldSize <= MESH_MAX_RANKS && maxBytes > 0;
}

/** `ORION_MESH_MAX_BYTES` as a number of bytes, or null when unset. */
export function meshMaxBytesFromEnv(): number | null {
  return integerFromEnv(MESH_MAX_BYTES_ENV, "a bucket size", "an integer number of bytes ≥ 0");
}

/** Options of {@link MeshAllReduce}. */
export interface MeshAllReduceOptions {
  rank: number;
  worldSize: number;
  /** Job generation stamped on every chunk; chunks from another generation are refused. */
  generation: number;
  /** f32 values per chunk (≤ {@link MAX_CHUNK_ELEMENTS}); default 262144 (1 MiB). */
  chunkElements?: number;
  kernel: ReductionKernel;
  /**
   * Queues one message to rank `to`; messages to one rank must arrive in order. Without `written` the
   * transport owns `message` (it may recycle it); with it the caller keeps it, unchanged, until `written`
   * runs (every byte handed to the OS).
   */
  send(to: number, message: ArrayBuffer, written?: () => void): void;
  /** Supplies message buffers (default `new ArrayBuffer`); pair with `release` to recycle them. */
  allocate?(bytes: number): ArrayBuffer;
  /** Takes back a received message buffer nobody uses any more. */
  release?(buffer: ArrayBuffer): void;
}

/** The contributions to one chunk of the segment this rank owns, added in the ring's order. */
interface OwnedChunk {
  /** Next contribution to add, as a distance from this rank: rank + next (mod n); n when all are in. */
  next: number;
  /** The running sum: the first contribution's message, reused as the gather message. */
  sum: DataFrame | null;
  /** Contributions that arrived before their turn, by distance. */
  waiting: Array<DataFrame | undefined>;
}

interface MeshCollective {
  seq: number;
  bucket: number;
  data: Float32Array;
  segments: Array<{ start: number; end: number }>;
  owned: OwnedChunk[];
  /** Offsets of the gather chunks received (duplicates are refused). */
  gathered: Set<number>;
  expected: number;
  received: number;
  resolve(): void;
  reject(error: Error): void;
}

/** Largest number of collectives another rank may run ahead of this one. */
const MAX_EARLY_COLLECTIVES = 1024;

/**
 * One rank's side of the mesh. Feed it every data frame of a mesh phase with {@link receive}, naming the
 * rank it came from; it calls `send` for what it sends. Collectives may overlap.
 *
 * @example
 * ```ts ignore
 * const mesh = new MeshAllReduce({ rank, worldSize, generation: 0, kernel: new WasmReductionKernel(),
 *   send: (to, message, written) => links[to].send(message, written) });
 * link.onmessage = (buffer) => mesh.receive(fromRank, decodeFrame(buffer) as DataFrame);
 * await mesh.start(0, gradients); // gradients now holds the mean over ranks, bit-equal to the ring's
 * ```
 */
export class MeshAllReduce {
  readonly rank: number;
  readonly worldSize: number;
  readonly generation: number;
  readonly chunkElements: number;
  readonly #kernel: ReductionKernel;
  readonly #send: MeshAllReduceOptions["send"];
  readonly #allocate: (bytes: number) => ArrayBuffer;
  readonly #release: (buffer: ArrayBuffer) => void;
  readonly #active = new Map<number, MeshCollective>();
  readonly #early = new Map<number, Array<{ from: number; frame: DataFrame }>>();
  #nextSeq = 0;
  #failure: Error | null = null;

  constructor(options: MeshAllReduceOptions) {
    this.rank = options.rank;
    this.worldSize = options.worldSize;
    this.generation = options.generation;
    this.chunkElements = options.chunkElements ?? 262_144;
    if (
      !Number.isInteger(this.chunkElements) || this.chunkElements < 4 ||
      this.chunkElements > MAX_CHUNK_ELEMENTS
    ) {
      throw new RangeError(
        `Cannot build the mesh as chunkElements is out of range: current value is ${this.chunkElements}; ` +
          `use 4..${MAX_CHUNK_ELEMENTS}`,
      );
    }
    this.#kernel = options.kernel;
    this.#send = options.send;
    this.#allocate = options.allocate ?? ((bytes) => new ArrayBuffer(bytes));
    this.#release = options.release ?? (() => {});
  }

  /** Collectives started and not yet finished. */
  get inFlight(): number {
    return this.#active.size;
  }

  /** The segment this rank owns (the ring's: segment s is finished by rank s − 1). */
  get #ownSegment(): number {
    return (this.rank + 1) % this.worldSize;
  }

  /**
   * Starts the mean all-reduce of `data` (in place) as the next mesh collective; `bucket` is its index in
   * the fixed bucket order. Resolves when `data` holds the mean.
   */
  start(bucket: number, data: Float32Array): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    const seq = this.#nextSeq++;
    const n = this.worldSize;
    if (n === 1 || data.length === 0) return Promise.resolve();
    const segments = ringSegmentBounds(data.length, n);
    const chunks = (s: number) => Math.ceil((segments[s].end - segments[s].start) / this.chunkElements);
    const own = this.#ownSegment;
    let gatherChunks = 0;
    for (let s = 0; s < n; s++) if (s !== own) gatherChunks += chunks(s);
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const collective: MeshCollective = {
      seq,
      bucket,
      data,
      segments,
      owned: Array.from({ length: chunks(own) }, () => ({ next: 1, sum: null, waiting: [] })),
      gathered: new Set(),
      expected: (n - 1) * chunks(own) + gatherChunks,
      received: 0,
      resolve,
      reject,
    };
    this.#active.set(seq, collective);
    // Scatter: nearest owner first (rank − 1 adds this rank's values first of all), so every owner
    // tends to receive its contributions in the order it adds them.
    for (let k = 1; k < n; k++) {
      const to = (this.rank - k + n) % n;
      const segment = (to + 1) % n;
      const { start, end } = segments[segment];
      for (let offset = start; offset < end; offset += this.chunkElements) {
        const count = Math.min(this.chunkElements, end - offset);
        this.#send(
          to,
          encodeDataFrame(
            this.#header(collective, RingPhase.meshScatter, segment, offset, count),
            data.subarray(offset, offset + count),
            this.#allocate,
          ),
        );
      }
    }
    const early = this.#early.get(seq);
    if (early) {
      this.#early.delete(seq);
      for (const { from, frame } of early) {
        this.#process(collective, from, frame);
        if (this.#failure) break;
      }
    }
    this.#maybeFinish(collective);
    return promise;
  }

  /**
   * Handles one mesh data frame from rank `from`. Throws {@link RingOrderError} (and fails every
   * collective) when the frame does not fit the schedule.
   */
  receive(from: number, frame: DataFrame): void {
    if (this.#failure) return;
    try {
      const h = frame.header;
      if (h.generation !== this.generation) {
        throw new RingOrderError(
          `chunk from generation ${h.generation} arrived in generation ${this.generation}`,
        );
      }
      if (!Number.isInteger(from) || from < 0 || from >= this.worldSize || from === this.rank) {
        throw new RingOrderError(`mesh chunk from rank ${from}, not another rank of ${this.worldSize}`);
      }
      const collective = this.#active.get(h.collective);
      if (collective) {
        this.#process(collective, from, frame);
        this.#maybeFinish(collective);
        return;
      }
      if (h.collective < this.#nextSeq) {
        throw new RingOrderError(`mesh chunk from rank ${from} for finished collective #${h.collective}`);
      }
      if (h.collective - this.#nextSeq >= MAX_EARLY_COLLECTIVES) {
        throw new RingOrderError(`rank ${from} ran ${h.collective - this.#nextSeq} mesh collectives ahead`);
      }
      let list = this.#early.get(h.collective);
      if (!list) this.#early.set(h.collective, list = []);
      list.push({ from, frame });
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
    c: MeshCollective,
    phase: RingPhase,
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
      step: 0,
      segment,
      offset,
      elementCount: count,
    };
  }

  #process(c: MeshCollective, from: number, frame: DataFrame): void {
    const h = frame.header;
    const n = this.worldSize;
    if (h.bucket !== c.bucket || h.bucketLength !== c.data.length) {
      throw new RingOrderError(
        `Cannot all-reduce bucket ${c.bucket} (${c.data.length} values) at mesh position #${c.seq} as rank ` +
          `${from} started bucket ${h.bucket} (${h.bucketLength} values) there: every rank must start the ` +
          `same buckets in the same fixed order`,
      );
    }
    // Scatter chunks are for the segment this rank owns; gather chunks carry the sender's own segment.
    const segment = h.phase === RingPhase.meshScatter ? this.#ownSegment : (from + 1) % n;
    const seg = c.segments[segment];
    if (
      (h.phase !== RingPhase.meshScatter && h.phase !== RingPhase.meshGather) || h.step !== 0 ||
      h.segment !== segment || h.offset < seg.start || (h.offset - seg.start) % this.chunkElements !== 0 ||
      h.elementCount !== Math.min(this.chunkElements, seg.end - h.offset) || h.elementCount === 0
    ) {
      throw new RingOrderError(
        `mesh chunk from rank ${from} (phase ${h.phase}, segment ${h.segment}, offset ${h.offset}, ` +
          `${h.elementCount} values) does not fit the schedule of rank ${this.rank}`,
      );
    }
    if (h.phase === RingPhase.meshGather) {
      if (c.gathered.has(h.offset)) throw new RingOrderError(`duplicate mesh gather chunk at ${h.offset}`);
      c.gathered.add(h.offset);
      c.data.set(frame.values, h.offset);
      this.#release(frame.buffer);
      c.received++;
      return;
    }
    const chunk = c.owned[(h.offset - seg.start) / this.chunkElements];
    const distance = (from - this.rank + n) % n;
    if (distance < chunk.next || chunk.waiting[distance]) {
      throw new RingOrderError(`duplicate mesh scatter chunk from rank ${from} at ${h.offset}`);
    }
    chunk.waiting[distance] = frame;
    c.received++;
    // Add in the ring's order: rank + 1 first (the segment's first rank), this rank's own values last.
    while (chunk.next < n && chunk.waiting[chunk.next]) {
      const next = chunk.waiting[chunk.next]!;
      chunk.waiting[chunk.next] = undefined;
      if (chunk.sum === null) chunk.sum = next;
      else {
        this.#kernel.addInto(chunk.sum.values, next.values);
        this.#release(next.buffer);
      }
      chunk.next++;
    }
    if (chunk.next < n) return;
    const sum = chunk.sum!;
    const local = c.data.subarray(h.offset, h.offset + h.elementCount);
    this.#kernel.addDivideInto(sum.values, local, n);
    local.set(sum.values);
    writeDataHeader(sum.buffer, { ...sum.header, phase: RingPhase.meshGather });
    let unwritten = n - 1;
    const written = () => {
      if (--unwritten === 0) this.#release(sum.buffer);
    };
    for (let k = 1; k < n; k++) this.#send((this.rank + k) % n, sum.buffer, written);
    chunk.sum = null;
  }

  #maybeFinish(c: MeshCollective): void {
    if (c.received < c.expected || !this.#active.has(c.seq)) return;
    this.#active.delete(c.seq);
    c.resolve();
  }
}
