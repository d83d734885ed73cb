/**
 * The ring all-reduce (mean) over {@link PolledSocket} links, driven by polling instead of the event loop:
 * for small buckets, whose time is the latency of 2(n − 1) message hops rather than bandwidth.
 *
 * Same schedule, segments and arithmetic as {@link RingAllReduce} (`ring_all_reduce.ts`): segment s starts at
 * rank s, every rank adds its own values on arrival with the same reduction kernel, the owner divides, and the
 * all-gather copies its bits. So the result is bit-identical to {@link referenceRingMean}, whichever path a
 * bucket takes. Each ring step is one message: a WebSocket binary frame (unmasked, the accepting side sends)
 * holding an Orion data frame ({@link DataChunkHeader} + values), checked like the event-loop ring's.
 *
 * Collectives run one after another in start order (every rank starts the same buckets in the same order).
 * They make progress whenever {@link PolledRing.progress} is called: from {@link PolledRing.spinUntil} (the
 * caller has nothing better to do: it busy-polls, then sleeps in `poll(2)` once nothing arrived for
 * `spinMs`), and from a background loop that waits in `poll(2)` on a runtime thread while this thread is
 * free. Sends never block: what the kernel does not take now is sent on the next call.
 *
 * @module
 */
import {
  DATA_VALUES_OFFSET,
  type DataChunkHeader,
  decodeDataHead,
  FrameError,
  MAX_CHUNK_ELEMENTS,
  RingPhase,
  writeDataHeader,
} from "./frames.ts";
import { type PolledSocket, POLLIN, POLLOUT, waitAny } from "./polled_socket.ts";
import {
  checkRingChunk,
  type CollectiveTimes,
  RingOrderError,
  ringSegmentBounds,
} from "./ring_all_reduce.ts";
import type { ReductionKernel } from "./simd_add.ts";

/** Options of {@link PolledRing}. */
export interface PolledRingOptions {
  rank: number;
  worldSize: number;
  /** Job generation stamped on every message; messages of another generation are refused. */
  generation: number;
  kernel: ReductionKernel;
  /** The link this rank sends on (accepted from its right neighbour). */
  right: PolledSocket;
  /** The link this rank receives on (dialed to its left neighbour). */
  left: PolledSocket;
  /** Busy-poll this long without news before sleeping in `poll(2)` (ms); 0 sleeps at once. */
  spinMs: number;
  /** A link failed (closed, reset, or a message that does not fit the schedule). */
  onLinkLost(peerRank: number, reason: string): void;
  /**
   * Whether a lost link also rejects the pending collectives (default true). A rank session passes false: it
   * stops the job on a lost link and aborts the ring with the stop's error.
   */
  failPendingOnLinkLoss?: boolean;
}

interface Send {
  head: Uint8Array;
  body: Uint8Array;
  sent: number;
  /** Runs once every byte was handed to the kernel. */
  done(): void;
}

interface Collective {
  seq: number;
  bucket: number;
  data: Float32Array;
  segments: Array<{ start: number; end: number }>;
  /** Ring step being received: 0..n−2 reduce-scatter, n−1..2n−3 all-gather. */
  step: number;
  /** Sends of this collective not yet handed to the kernel (they read `data`). */
  sending: number;
  /** Bytes of the current message received so far (frame header, then values). */
  received: number;
  /** Where the current reduce-scatter message's values go (scratch, reused). */
  scratch: Float32Array | null;
  startMs: number;
  firstChunkMs: number;
  resolve(): void;
  reject(error: Error): void;
}

/** Largest bucket the polled ring takes: each segment must fit one message. */
export function polledRingFits(length: number, worldSize: number): boolean {
  return Math.ceil(Math.ceil(length / worldSize) / 4) * 4 <= MAX_CHUNK_ELEMENTS;
}

/** Bytes of the WebSocket header of an unmasked binary frame of `payload` bytes. */
function frameHeaderBytes(payload: number): number {
  return payload < 126 ? 2 : payload < 65536 ? 4 : 10;
}

function writeFrameHeader(into: Uint8Array, payload: number): void {
  into[0] = 0x82; // FIN, binary
  if (payload < 126) into[1] = payload;
  else if (payload < 65536) {
    into[1] = 126;
    new DataView(into.buffer, into.byteOffset).setUint16(2, payload);
  } else {
    into[1] = 127;
    new DataView(into.buffer, into.byteOffset).setBigUint64(2, BigInt(payload));
  }
}

/**
 * One rank's polled ring. {@link start} a bucket, then drive it with {@link spinUntil} (or let the background
 * loop do it).
 *
 * @example
 * ```ts ignore
 * const ring = new PolledRing({ rank, worldSize, generation: 0, kernel, right, left, spinMs: 1, onLinkLost });
 * const done = ring.start(0, gradients);
 * ring.spinUntil(performance.now() + 50);
 * await done; // gradients holds the mean over ranks
 * ```
 */
export class PolledRing {
  readonly rank: number;
  readonly worldSize: number;
  readonly generation: number;
  readonly #kernel: ReductionKernel;
  readonly #right: PolledSocket;
  readonly #left: PolledSocket;
  readonly #spinMs: number;
  readonly #onLinkLost: (peerRank: number, reason: string) => void;
  readonly #failPendingOnLinkLoss: boolean;
  /** Started collectives; the first one is the one being received. */
  readonly #queue: Collective[] = [];
  readonly #sends: Send[] = [];
  readonly #scratch = new Map<number, Float32Array[]>();
  readonly #prefix = new Uint8Array(10 + DATA_VALUES_OFFSET);
  readonly #pollTable = new Uint8Array(16);
  readonly #bucketTimes = new Map<number, CollectiveTimes>();
  #nextSeq = 0;
  #completed = 0;
  #failure: Error | null = null;
  /** Set once a link failed: nothing moves any more (the collectives wait for {@link abort}). */
  #broken = false;
  #watching = false;

  constructor(options: PolledRingOptions) {
    this.rank = options.rank;
    this.worldSize = options.worldSize;
    this.generation = options.generation;
    this.#kernel = options.kernel;
    this.#right = options.right;
    this.#left = options.left;
    this.#spinMs = options.spinMs;
    this.#onLinkLost = options.onLinkLost;
    this.#failPendingOnLinkLoss = options.failPendingOnLinkLoss ?? true;
  }

  /** Collectives started and not finished. */
  get inFlight(): number {
    return this.#queue.length;
  }

  /** Collectives finished so far (a counter: compare before and after a {@link spinUntil}). */
  get completed(): number {
    return this.#completed;
  }

  /** When this ring last ran each bucket index's collective (`performance.now()` time). For traces. */
  get bucketTimes(): ReadonlyMap<number, CollectiveTimes> {
    return this.#bucketTimes;
  }

  /**
   * Starts the mean all-reduce of `data` (in place) as the next collective (`bucket`: its index in the fixed
   * bucket order) and sends what it can at once. Resolves when `data` holds the mean and no send reads it.
   */
  start(bucket: number, data: Float32Array): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    const n = this.worldSize;
    if (!polledRingFits(data.length, n)) {
      return Promise.reject(
        new RangeError(
          `Cannot reduce ${data.length} values on the polled ring as a segment would exceed one message ` +
            `(${MAX_CHUNK_ELEMENTS} values): route larger buckets to the event-loop ring or the stripes`,
        ),
      );
    }
    const seq = this.#nextSeq++;
    if (n === 1 || data.length === 0) return Promise.resolve();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const collective: Collective = {
      seq,
      bucket,
      data,
      segments: ringSegmentBounds(data.length, n),
      step: 0,
      sending: 0,
      received: 0,
      scratch: null,
      startMs: performance.now(),
      firstChunkMs: 0,
      resolve,
      reject,
    };
    this.#queue.push(collective);
    if (this.#queue.length === 1) this.#begin(collective);
    this.progress();
    this.#watch();
    return promise;
  }

  /**
   * Moves every collective and send as far as it goes without waiting; true when anything moved. A failure
   * aborts the ring (the collectives reject) and is reported through `onLinkLost`.
   */
  progress(): boolean {
    return this.#guard(() => this.#advance());
  }

  #advance(): boolean {
    if (this.#failure || this.#broken) return false;
    let moved = false;
    for (;;) {
      const sent = this.#pumpSends();
      const received = this.#pumpReceive();
      if (!sent && !received) return moved;
      moved = true;
    }
  }

  /**
   * Drives the ring on this thread until nothing is left to do or `untilMs` (`performance.now()` time)
   * passes: busy-polls, and sleeps in `poll(2)` (≤ 1 ms at a time) once nothing arrived for `spinMs`.
   * Returns true when nothing is left.
   */
  spinUntil(untilMs: number): boolean {
    let quietSince = performance.now();
    while (!this.#failure && !this.#broken && (this.#queue.length > 0 || this.#sends.length > 0)) {
      if (this.progress()) {
        quietSince = performance.now();
        continue;
      }
      const now = performance.now();
      if (now >= untilMs) return false;
      if (now - quietSince >= this.#spinMs) {
        const waits = [];
        if (this.#receiving()) waits.push({ socket: this.#left, events: POLLIN });
        if (this.#sends.length > 0) waits.push({ socket: this.#right, events: POLLOUT });
        waitAny(waits, Math.min(1, untilMs - now), this.#pollTable);
      }
    }
    return this.#failure === null && !this.#broken;
  }

  /** Fails every pending and future collective with `error`. */
  abort(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    for (const c of this.#queue.splice(0)) c.reject(error);
    this.#sends.length = 0;
  }

  /** Runs `step`; a failure aborts the ring and reports the link lost. Returns what `step` returned. */
  #guard(step: () => boolean): boolean {
    try {
      return step();
    } catch (error) {
      const toRight = (error as { link?: "right" }).link === "right";
      const peer = toRight
        ? (this.rank + 1) % this.worldSize
        : (this.rank - 1 + this.worldSize) % this.worldSize;
      const reason = error instanceof FrameError || error instanceof RingOrderError
        ? `bad data from rank ${peer}: ${error instanceof FrameError ? error.reason : error.message}`
        : `link ${toRight ? "to" : "from"} rank ${peer} closed (${(error as Error).message})`;
      const wrapped = error instanceof RingOrderError ? error : new Error(`polled ring: ${reason}`);
      this.#broken = true;
      if (this.#failPendingOnLinkLoss) this.abort(wrapped);
      this.#onLinkLost(peer, reason);
      return false;
    }
  }

  /** Keeps the ring moving while this thread is free: waits in `poll(2)` on a runtime thread. */
  #watch(): void {
    if (this.#watching) return;
    this.#watching = true;
    (async () => {
      while (!this.#failure && !this.#broken && (this.#queue.length > 0 || this.#sends.length > 0)) {
        const waits = [];
        if (this.#receiving()) waits.push(this.#left.ready(POLLIN, 50));
        if (this.#sends.length > 0) waits.push(this.#right.ready(POLLOUT, 50));
        await Promise.race(waits);
        this.progress();
      }
    })().finally(() => this.#watching = false);
  }

  /** Whether the collective being received still expects a message. */
  #receiving(): boolean {
    const c = this.#queue[0];
    return c !== undefined && c.step < 2 * (this.worldSize - 1);
  }

  /** Queues the first send of the collective that became the one being received. */
  #begin(c: Collective): void {
    const own = c.segments[this.rank];
    if (own.end > own.start) {
      this.#send(c, RingPhase.reduceScatter, 0, this.rank, c.data.subarray(own.start, own.end), null);
    }
    this.#skipEmpty(c);
  }

  #header(c: Collective, phase: RingPhase, step: number, segment: number, count: number): DataChunkHeader {
    return {
      generation: this.generation,
      collective: c.seq,
      bucket: c.bucket,
      bucketLength: c.data.length,
      phase,
      step,
      segment,
      offset: c.segments[segment].start,
      elementCount: count,
    };
  }

  #send(
    c: Collective,
    phase: RingPhase,
    step: number,
    segment: number,
    values: Float32Array,
    scratch: Float32Array | null,
  ): void {
    const payload = DATA_VALUES_OFFSET + values.length * 4;
    const ws = frameHeaderBytes(payload);
    const head = new Uint8Array(ws + DATA_VALUES_OFFSET);
    writeFrameHeader(head, payload);
    writeDataHeader(head.buffer, this.#header(c, phase, step, segment, values.length), ws);
    c.sending++;
    this.#sends.push({
      head,
      body: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
      sent: 0,
      done: () => {
        if (scratch) this.#giveScratch(scratch);
        c.sending--;
        this.#maybeFinish(c);
      },
    });
  }

  #pumpSends(): boolean {
    let moved = false;
    while (this.#sends.length > 0) {
      const s = this.#sends[0];
      const total = s.head.length + s.body.length;
      let n: number;
      try {
        n = s.sent < s.head.length
          ? this.#right.trySend(s.head.subarray(s.sent), true)
          : this.#right.trySend(s.body.subarray(s.sent - s.head.length));
      } catch (error) {
        throw Object.assign(error as Error, { link: "right" });
      }
      if (n === 0) return moved;
      moved = true;
      s.sent += n;
      if (s.sent === total) {
        this.#sends.shift();
        s.done();
      }
    }
    return moved;
  }

  /** The segment received at ring step `step` of collective `c`. */
  #segmentAt(step: number): number {
    const n = this.worldSize;
    const k = step < n - 1 ? step + 1 : step - (n - 1);
    return ((this.rank - k) % n + n) % n;
  }

  /** Steps over ring steps whose segment is empty (no message either way); finishes when all are done. */
  #skipEmpty(c: Collective): void {
    const last = 2 * (this.worldSize - 1);
    while (c.step < last) {
      const { start, end } = c.segments[this.#segmentAt(c.step)];
      if (end > start) return;
      c.step++;
    }
    this.#maybeFinish(c);
  }

  #pumpReceive(): boolean {
    const c = this.#queue[0];
    const n = this.worldSize;
    if (!c || c.step >= 2 * (n - 1)) return false;
    const segment = this.#segmentAt(c.step);
    const { start, end } = c.segments[segment];
    const count = end - start;
    const payload = DATA_VALUES_OFFSET + count * 4;
    const prefixBytes = frameHeaderBytes(payload) + DATA_VALUES_OFFSET;
    const reduceScatter = c.step < n - 1;
    let moved = false;
    if (c.received < prefixBytes) {
      const got = this.#left.tryRecv(this.#prefix.subarray(c.received, prefixBytes));
      if (got === 0) return false;
      moved = true;
      c.received += got;
      if (c.received < prefixBytes) return true;
      this.#checkPrefix(c, payload, prefixBytes, segment, count);
      if (reduceScatter) c.scratch = this.#takeScratch(count);
    }
    const target = reduceScatter ? c.scratch! : c.data.subarray(start, end);
    const bytes = new Uint8Array(target.buffer, target.byteOffset, count * 4);
    const offset = c.received - prefixBytes;
    if (offset < bytes.length) {
      const got = this.#left.tryRecv(bytes.subarray(offset));
      if (got === 0) return moved;
      c.received += got;
      if (c.received - prefixBytes < bytes.length) return true;
    }
    if (c.firstChunkMs === 0) c.firstChunkMs = performance.now();
    this.#received(c, segment, target);
    return true;
  }

  /** Checks the WebSocket and Orion headers of the message expected at the current step. */
  #checkPrefix(c: Collective, payload: number, prefixBytes: number, segment: number, count: number): void {
    const expected = new Uint8Array(10);
    writeFrameHeader(expected, payload);
    const ws = frameHeaderBytes(payload);
    for (let i = 0; i < ws; i++) {
      if (this.#prefix[i] !== expected[i]) {
        throw new FrameError(
          `message at ring step ${c.step} does not fit the schedule: expected an unmasked binary frame of ` +
            `${payload} bytes`,
        );
      }
    }
    const h = decodeDataHead(this.#prefix.subarray(ws, prefixBytes), payload);
    if (h.generation !== this.generation) {
      throw new RingOrderError(
        `chunk from generation ${h.generation} arrived in generation ${this.generation}`,
      );
    }
    if (h.collective !== c.seq) {
      throw new RingOrderError(`chunk of collective #${h.collective} arrived during collective #${c.seq}`);
    }
    checkRingChunk(h, {
      rank: this.rank,
      worldSize: this.worldSize,
      seq: c.seq,
      bucket: c.bucket,
      bucketLength: c.data.length,
      segments: c.segments,
      chunkElements: MAX_CHUNK_ELEMENTS,
    });
    const n = this.worldSize;
    const phase = c.step < n - 1 ? RingPhase.reduceScatter : RingPhase.allGather;
    const step = c.step < n - 1 ? c.step : c.step - (n - 1);
    if (h.phase !== phase || h.step !== step || h.segment !== segment || h.elementCount !== count) {
      throw new RingOrderError(
        `chunk (phase ${h.phase}, step ${h.step}, segment ${h.segment}) arrived where the ring expects ` +
          `phase ${phase}, step ${step}, segment ${segment}`,
      );
    }
  }

  /** A whole message arrived: reduce, forward, next step. */
  #received(c: Collective, segment: number, values: Float32Array): void {
    const n = this.worldSize;
    const { start, end } = c.segments[segment];
    const local = c.data.subarray(start, end);
    if (c.step < n - 2) {
      this.#kernel.addInto(values, local);
      this.#send(c, RingPhase.reduceScatter, c.step + 1, segment, values, values);
    } else if (c.step === n - 2) {
      // Last reduce-scatter step: this rank owns the finished segment.
      this.#kernel.addDivideInto(values, local, n);
      local.set(values);
      this.#giveScratch(values);
      this.#send(c, RingPhase.allGather, 0, segment, local, null);
    } else if (c.step < 2 * n - 3) {
      this.#send(c, RingPhase.allGather, c.step - (n - 1) + 1, segment, local, null);
    }
    c.scratch = null;
    c.received = 0;
    c.step++;
    this.#skipEmpty(c);
  }

  #maybeFinish(c: Collective): void {
    if (c.step < 2 * (this.worldSize - 1) || c.sending > 0 || this.#queue[0] !== c) return;
    this.#queue.shift();
    this.#completed++;
    this.#bucketTimes.set(c.bucket, {
      startMs: c.startMs,
      firstChunkMs: c.firstChunkMs,
      endMs: performance.now(),
    });
    c.resolve();
    const next = this.#queue[0];
    if (next) this.#begin(next);
  }

  #takeScratch(count: number): Float32Array {
    return this.#scratch.get(count)?.pop() ?? new Float32Array(count);
  }

  #giveScratch(values: Float32Array): void {
    let list = this.#scratch.get(values.length);
    if (!list) this.#scratch.set(values.length, list = []);
    if (list.length < 4) list.push(values);
  }
}
