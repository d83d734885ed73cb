/**
 * The ring all-reduce (mean) over {@link PolledSocket} links, driven by polling instead of the event loop:
 * for small buckets, whose time is the latency of 2(n − 1) message hops rather than bandwidth.
 *
 * Same schedule, segments and arithmetic as {@link RingAllReduce} (`ring_all_reduce.ts`): segment s starts at
 * rank s, every rank adds its own values on arrival with the same reduction kernel, the owner divides, and the
 * all-gather copies its bits. So the result is bit-identical to {@link referenceRingMean}, whichever path a
 * bucket takes. A ring step moves a segment in messages of at most `chunkElements` values (one message for a
 * small bucket): each a WebSocket binary frame (unmasked, the accepting side sends) holding an Orion data frame
 * (`DataChunkHeader` + values), checked like the event-loop ring's. A stripe worker runs one over its parts of
 * the segments (`stripeSegmentBounds`).
 *
 * Collectives run one after another in start order (every rank starts the same buckets in the same order).
 * They make progress whenever {@link PolledRing.progress} is called: from {@link PolledRing.spinUntil} (the
 * caller has nothing better to do: it busy-polls, then sleeps in `poll(2)` once nothing arrived for
 * `spinMs`), and from a background loop that waits in `poll(2)` on a runtime thread while this thread is
 * free. Sends never block: what the kernel does not take now is sent on the next call.
 *
 * @module
 */
import { FrameError, RingPhase } from "./frames.ts";
import {
  checkChunkElements,
  decodePolledPrefix,
  MAX_PREFIX_BYTES,
  polledMessageHead,
  polledPrefixBytes,
  ScratchPool,
} from "./polled_messages.ts";
import { CollectiveQueue, type PolledEngine, PolledWatcher, spinPolledUntil } from "./polled_progress.ts";
import { type PolledSocket, POLLIN, POLLOUT } from "./polled_socket.ts";
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
  /**
   * Values per message (default {@link POLLED_CHUNK_ELEMENTS}): a segment travels as chunks, each forwarded
   * as soon as it is reduced, so the ring's steps overlap (4..`MAX_CHUNK_ELEMENTS`).
   */
  chunkElements?: number;
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

/** One message a rank receives: a chunk of a segment at a ring step. */
interface Message {
  /** Ring step: 0..n−2 reduce-scatter, n−1..2n−3 all-gather. */
  step: number;
  segment: number;
  offset: number;
  count: number;
}

interface Collective {
  seq: number;
  bucket: number;
  data: Float32Array;
  segments: ReadonlyArray<{ start: number; end: number }>;
  /** The messages this rank receives, in arrival order (by step, then offset); see {@link PolledRing}. */
  messages: Message[];
  /** Index of the message being received. */
  next: number;
  /** Sends of this collective not yet handed to the kernel (they read `data`). */
  sending: number;
  /** Bytes of the current message received so far (frame header, then values). */
  received: number;
  /** Where the current reduce-scatter message's values go (pooled scratch). */
  scratch: Float32Array | null;
  startMs: number;
  firstChunkMs: number;
  resolve(): void;
  reject(error: Error): void;
}

/**
 * Default values per message: 1 MiB, so a small bucket's segment is one message. Smaller chunks pipeline the
 * ring's steps but cost more per byte than they save: on the 2 × H200 host, 8 ranks, a 1 MiB all-reduce took
 * 2.05 ms with 32 KiB chunks, 1.35 with 128 KiB and 1.24 with 1 MiB (docs/distributed.md, "Polled ring").
 */
export const POLLED_CHUNK_ELEMENTS = 262_144;

/**
 * One rank's polled ring. {@link start} a bucket, then drive it with {@link spinUntil} (or let the background
 * loop, a {@link PolledWatcher}, do it).
 *
 * @example
 * ```ts ignore
 * const ring = new PolledRing({ rank, worldSize, generation: 0, kernel, right, left, spinMs: 1, onLinkLost });
 * const done = ring.start(0, gradients);
 * ring.spinUntil(performance.now() + 50);
 * await done; // gradients holds the mean over ranks
 * ```
 */
export class PolledRing implements PolledEngine {
  readonly rank: number;
  readonly worldSize: number;
  readonly generation: number;
  readonly #kernel: ReductionKernel;
  readonly #right: PolledSocket;
  readonly #left: PolledSocket;
  readonly #spinMs: number;
  readonly #onLinkLost: (peerRank: number, reason: string) => void;
  readonly #failPendingOnLinkLoss: boolean;
  readonly chunkElements: number;
  /** Started collectives; the first one is the one being received. */
  readonly #queue = new CollectiveQueue<Collective>((c) => this.#begin(c));
  readonly #sends: Send[] = [];
  readonly #scratch = new ScratchPool();
  readonly #prefix = new Uint8Array(MAX_PREFIX_BYTES);
  readonly #watcher = new PolledWatcher(this);
  #nextSeq = 0;
  #failure: Error | null = null;
  /** Set once a link failed: nothing moves any more (the collectives wait for {@link abort}). */
  #broken = false;

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
    this.chunkElements = options.chunkElements ?? POLLED_CHUNK_ELEMENTS;
    checkChunkElements(this.chunkElements, "the polled ring");
  }

  /** Collectives started and not finished. */
  get inFlight(): number {
    return this.#queue.length;
  }

  /** Collectives finished so far (a counter: compare before and after a {@link spinUntil}). */
  get completed(): number {
    return this.#queue.completed;
  }

  /** When this ring last ran each bucket index's collective (`performance.now()` time). For traces. */
  get bucketTimes(): ReadonlyMap<number, CollectiveTimes> {
    return this.#queue.bucketTimes;
  }

  /**
   * Starts the mean all-reduce of `data` (in place) as the next collective (`bucket`: its index in the fixed
   * bucket order) and sends what it can at once. Resolves when `data` holds the mean and no send reads it.
   * `segments` (default: the ring's, {@link ringSegmentBounds}) may name parts of them instead: a stripe's
   * (`stripeSegmentBounds`), whose values are the only ones it reduces.
   */
  start(
    bucket: number,
    data: Float32Array,
    segments: ReadonlyArray<{ start: number; end: number }> = ringSegmentBounds(data.length, this.worldSize),
  ): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    const n = this.worldSize;
    const seq = this.#nextSeq++;
    if (n === 1 || data.length === 0) return Promise.resolve();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const collective: Collective = {
      seq,
      bucket,
      data,
      segments,
      messages: this.#schedule(segments),
      next: 0,
      sending: 0,
      received: 0,
      scratch: null,
      startMs: performance.now(),
      firstChunkMs: 0,
      resolve,
      reject,
    };
    this.#queue.push(collective);
    this.progress();
    this.#watcher.watch();
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
    return spinPolledUntil([this], untilMs, this.#spinMs) && this.#failure === null && !this.#broken;
  }

  /** {@link PolledEngine}: collectives or sends are left and the ring has not failed. */
  get busy(): boolean {
    return !this.#failure && !this.#broken && (this.#queue.length > 0 || this.#sends.length > 0);
  }

  /** {@link PolledEngine}: the left link while a message is expected, the right one while sends wait. */
  waits(): Array<{ socket: PolledSocket; events: number }> {
    const waits = [];
    if (this.#receiving()) waits.push({ socket: this.#left, events: POLLIN });
    if (this.#sends.length > 0) waits.push({ socket: this.#right, events: POLLOUT });
    return waits;
  }

  /** Fails every pending and future collective with `error`. */
  abort(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    this.#queue.rejectAll(error);
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

  /**
   * The messages a rank receives, in the order they arrive. Every rank sends its own segment's chunks first
   * (step 0), then forwards each chunk it receives at step k as step k + 1, in the order received; so, by
   * induction along the ring, every link carries its messages ordered by step, then offset.
   */
  #schedule(segments: ReadonlyArray<{ start: number; end: number }>): Message[] {
    const n = this.worldSize;
    const messages: Message[] = [];
    for (let step = 0; step < 2 * (n - 1); step++) {
      const k = step < n - 1 ? step + 1 : step - (n - 1);
      const segment = ((this.rank - k) % n + n) % n;
      const { start, end } = segments[segment];
      for (let offset = start; offset < end; offset += this.chunkElements) {
        messages.push({ step, segment, offset, count: Math.min(this.chunkElements, end - offset) });
      }
    }
    return messages;
  }

  /** Whether the collective being received still expects a message. */
  #receiving(): boolean {
    const c = this.#queue.head;
    return c !== undefined && c.next < c.messages.length;
  }

  /** Queues the first sends (this rank's own segment) of the collective that became the one being received. */
  #begin(c: Collective): void {
    const own = c.segments[this.rank];
    for (let offset = own.start; offset < own.end; offset += this.chunkElements) {
      const values = c.data.subarray(offset, Math.min(own.end, offset + this.chunkElements));
      this.#send(c, RingPhase.reduceScatter, 0, this.rank, offset, values, null);
    }
    this.#maybeFinish(c); // nothing to receive (an all-empty schedule)
  }

  #send(
    c: Collective,
    phase: RingPhase,
    step: number,
    segment: number,
    offset: number,
    values: Float32Array,
    scratch: Float32Array | null,
  ): void {
    const head = polledMessageHead({
      generation: this.generation,
      collective: c.seq,
      bucket: c.bucket,
      bucketLength: c.data.length,
      phase,
      step,
      segment,
      offset,
      elementCount: values.length,
    });
    c.sending++;
    this.#sends.push({
      head,
      body: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
      sent: 0,
      done: () => {
        if (scratch) this.#scratch.give(scratch);
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

  #pumpReceive(): boolean {
    const c = this.#queue.head;
    if (!c || c.next >= c.messages.length) return false;
    const m = c.messages[c.next];
    const prefixBytes = polledPrefixBytes(m.count);
    const reduceScatter = m.step < this.worldSize - 1;
    let moved = false;
    if (c.received < prefixBytes) {
      const got = this.#left.tryRecv(this.#prefix.subarray(c.received, prefixBytes));
      if (got === 0) return false;
      moved = true;
      c.received += got;
      if (c.received < prefixBytes) return true;
      this.#checkPrefix(c, m);
      if (reduceScatter) c.scratch = this.#scratch.take(m.count);
    }
    const target = reduceScatter ? c.scratch! : c.data.subarray(m.offset, m.offset + m.count);
    const bytes = new Uint8Array(target.buffer, target.byteOffset, m.count * 4);
    const offset = c.received - prefixBytes;
    if (offset < bytes.length) {
      const got = this.#left.tryRecv(bytes.subarray(offset));
      if (got === 0) return moved;
      c.received += got;
      if (c.received - prefixBytes < bytes.length) return true;
    }
    if (c.firstChunkMs === 0) c.firstChunkMs = performance.now();
    this.#received(c, m, target);
    return true;
  }

  /** Checks the WebSocket and Orion headers of message `m`, the one the schedule expects next. */
  #checkPrefix(c: Collective, m: Message): void {
    const h = decodePolledPrefix(this.#prefix, m.count, `message at ring step ${m.step}`);
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
      chunkElements: this.chunkElements,
    });
    const n = this.worldSize;
    const phase = m.step < n - 1 ? RingPhase.reduceScatter : RingPhase.allGather;
    const step = m.step < n - 1 ? m.step : m.step - (n - 1);
    if (h.phase !== phase || h.step !== step || h.segment !== m.segment || h.offset !== m.offset) {
      throw new RingOrderError(
        `chunk (phase ${h.phase}, step ${h.step}, segment ${h.segment}, offset ${h.offset}) arrived where ` +
          `the ring expects phase ${phase}, step ${step}, segment ${m.segment}, offset ${m.offset}`,
      );
    }
  }

  /** A whole message arrived: reduce, forward, next. */
  #received(c: Collective, m: Message, values: Float32Array): void {
    const n = this.worldSize;
    const local = c.data.subarray(m.offset, m.offset + m.count);
    if (m.step < n - 2) {
      this.#kernel.addInto(values, local);
      this.#send(c, RingPhase.reduceScatter, m.step + 1, m.segment, m.offset, values, values);
    } else if (m.step === n - 2) {
      // Last reduce-scatter step: this rank owns the finished segment.
      this.#kernel.addDivideInto(values, local, n);
      local.set(values);
      this.#scratch.give(values);
      this.#send(c, RingPhase.allGather, 0, m.segment, m.offset, local, null);
    } else if (m.step < 2 * n - 3) {
      this.#send(c, RingPhase.allGather, m.step - (n - 1) + 1, m.segment, m.offset, local, null);
    }
    c.scratch = null;
    c.received = 0;
    c.next++;
    this.#maybeFinish(c);
  }

  #maybeFinish(c: Collective): void {
    if (c.next < c.messages.length || c.sending > 0 || this.#queue.head !== c) return;
    this.#queue.finishHead();
  }
}
