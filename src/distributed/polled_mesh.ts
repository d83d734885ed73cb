/**
 * The direct all-reduce (mean) over a full mesh of {@link PolledSocket} links: two message hops whatever the
 * world size, for small buckets at 3 or more ranks, whose ring time is the latency of 2(n − 1) hops.
 *
 * Same segments, owners and arithmetic as the ring ({@link RingAllReduce}, {@link PolledRing}), so the bits
 * equal {@link referenceRingMean}'s whichever path a bucket takes:
 * - reduce-scatter: every rank sends each segment straight to the rank that owns it in the ring (segment s is
 *   owned by rank s − 1, where the ring's chain s, s + 1, …, s − 1 ends);
 * - the owner adds the n − 1 contributions in the ring's order, `((a_s + a_{s+1}) + …) + a_{s−2}`, each as
 *   soon as it and all before it arrived, then adds its own values and divides (the ring's last step, the
 *   same kernel calls with the same operands);
 * - all-gather: the owner sends the finished segment straight to every other rank.
 *
 * Every rank sends and receives (n − 1)/n of the bucket in each phase, as in the ring, but over n − 1 links
 * at once instead of one after another. A link carries one direction: rank q's messages to this rank arrive
 * on the link this rank dialed to q, and this rank sends to q on the link it accepted from q (unmasked
 * WebSocket frames, the accepting side sends), each an Orion data frame checked against the schedule.
 *
 * Collectives run one after another in start order (every rank starts the same buckets in the same order):
 * on every link a collective's reduce-scatter messages, then its all-gather messages, then the next
 * collective's. Progress as in the polled ring: {@link PolledMesh.spinUntil}, or a background loop in
 * `poll(2)` on a runtime thread while this thread is free.
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
import { type CollectiveTimes, RingOrderError, ringSegmentBounds } from "./ring_all_reduce.ts";
import type { ReductionKernel } from "./simd_add.ts";
import { POLLED_CHUNK_ELEMENTS } from "./polled_ring.ts";

/** The two links between this rank and one peer. */
export interface MeshLinks {
  /** The link this rank sends to the peer on (accepted from the peer). */
  send: PolledSocket;
  /** The link this rank receives the peer's messages on (dialed to the peer). */
  receive: PolledSocket;
}

/** Options of {@link PolledMesh}. */
export interface PolledMeshOptions {
  rank: number;
  worldSize: number;
  /** Job generation stamped on every message; messages of another generation are refused. */
  generation: number;
  kernel: ReductionKernel;
  /** `links[q]`: the links to rank q; `null` at this rank's own index. */
  links: ReadonlyArray<MeshLinks | null>;
  /** Busy-poll this long without news before sleeping in `poll(2)` (ms); 0 sleeps at once. */
  spinMs: number;
  /** Values per message (default {@link POLLED_CHUNK_ELEMENTS}, 4..`MAX_CHUNK_ELEMENTS`). */
  chunkElements?: number;
  /** A link failed (closed, reset, or a message that does not fit the schedule). */
  onLinkLost(peerRank: number, reason: string): void;
  /** Whether a lost link also rejects the pending collectives (default true; a rank session passes false). */
  failPendingOnLinkLoss?: boolean;
}

/** One message a rank expects from a peer. */
interface Message {
  phase: RingPhase;
  segment: number;
  offset: number;
  count: number;
}

interface Send {
  head: Uint8Array;
  body: Uint8Array;
  sent: number;
  done(): void;
}

/** One peer's side of a collective: the messages expected from it and how far they arrived. */
interface Inbox {
  messages: Message[];
  next: number;
  /** Bytes of the current message received so far (frame header, then values). */
  received: number;
  /** The peer's values of this rank's owned segment (reduce-scatter), whole once `contributed`. */
  contribution: Float32Array | null;
  contributed: boolean;
}

interface Collective {
  seq: number;
  bucket: number;
  data: Float32Array;
  segments: ReadonlyArray<{ start: number; end: number }>;
  /** Indexed by peer rank; null at this rank. */
  inboxes: Array<Inbox | null>;
  /** Messages still expected over all peers. */
  expected: number;
  /** Contributions added into the owned segment's sum so far, in the ring's order. */
  added: number;
  /** The owned segment's running sum (the first contribution's array). */
  sum: Float32Array | null;
  sending: number;
  startMs: number;
  firstChunkMs: number;
  resolve(): void;
  reject(error: Error): void;
}

/** A link failure, with the peer and the direction it happened on. */
class LinkFailure extends Error {
  constructor(readonly peer: number, readonly toPeer: boolean, readonly failure: unknown) {
    super((failure as Error).message);
  }
}

/**
 * One rank's polled mesh. {@link start} a bucket, then drive it with {@link spinUntil} (or let the background
 * loop do it).
 *
 * @example
 * ```ts ignore
 * const mesh = new PolledMesh({ rank, worldSize, generation: 0, kernel, links, spinMs: 1, onLinkLost });
 * const done = mesh.start(0, gradients);
 * mesh.spinUntil(performance.now() + 50);
 * await done; // gradients holds the mean over ranks, bit-identical to the ring's
 * ```
 */
export class PolledMesh implements PolledEngine {
  readonly rank: number;
  readonly worldSize: number;
  readonly generation: number;
  readonly chunkElements: number;
  readonly #kernel: ReductionKernel;
  readonly #links: ReadonlyArray<MeshLinks | null>;
  /** Peers in the order this rank serves them: rank + 1, rank + 2, … (spreads the first sends). */
  readonly #peers: number[];
  readonly #spinMs: number;
  readonly #onLinkLost: (peerRank: number, reason: string) => void;
  readonly #failPendingOnLinkLoss: boolean;
  readonly #queue = new CollectiveQueue<Collective>((c) => this.#begin(c));
  /** Sends not yet handed to the kernel, per peer. */
  readonly #sends: Send[][];
  /** Per peer: the frame and Orion headers of the message being received. */
  readonly #prefixes: Uint8Array[];
  readonly #scratch = new ScratchPool();
  readonly #watcher = new PolledWatcher(this);
  #nextSeq = 0;
  #failure: Error | null = null;
  #broken = false;

  constructor(options: PolledMeshOptions) {
    const n = options.worldSize;
    this.rank = options.rank;
    this.worldSize = n;
    this.generation = options.generation;
    this.#kernel = options.kernel;
    this.#spinMs = options.spinMs;
    this.#onLinkLost = options.onLinkLost;
    this.#failPendingOnLinkLoss = options.failPendingOnLinkLoss ?? true;
    this.chunkElements = options.chunkElements ?? POLLED_CHUNK_ELEMENTS;
    checkChunkElements(this.chunkElements, "the polled mesh");
    if (options.links.length !== n || options.links.some((l, q) => (l === null) !== (q === this.rank))) {
      throw new RangeError(
        `Cannot build the polled mesh as its links do not fit the world: expected ${n} entries, null at ` +
          `rank ${this.rank} only; current value has ${options.links.length}`,
      );
    }
    this.#links = options.links;
    this.#peers = Array.from({ length: n - 1 }, (_, j) => (this.rank + 1 + j) % n);
    this.#sends = Array.from({ length: n }, () => []);
    this.#prefixes = Array.from({ length: n }, () => new Uint8Array(MAX_PREFIX_BYTES));
  }

  /** Collectives started and not finished. */
  get inFlight(): number {
    return this.#queue.length;
  }

  /** Collectives finished so far. */
  get completed(): number {
    return this.#queue.completed;
  }

  /** When this mesh last ran each bucket index's collective (`performance.now()` time). For traces. */
  get bucketTimes(): ReadonlyMap<number, CollectiveTimes> {
    return this.#queue.bucketTimes;
  }

  /**
   * Starts the mean all-reduce of `data` (in place) as the next collective (`bucket`: its index in the fixed
   * bucket order). Resolves when `data` holds the mean and no send reads it. `segments` (default: the ring's,
   * {@link ringSegmentBounds}) may name parts of them instead: a stripe's (`stripeSegmentBounds`), whose
   * values are the only ones it reduces.
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
    const owned = this.#ownedSegment();
    const inboxes: Array<Inbox | null> = Array.from({ length: n }, (_, q) => {
      if (q === this.rank) return null;
      const messages = [
        ...this.#chunks(RingPhase.reduceScatter, owned, segments[owned]),
        ...this.#chunks(RingPhase.allGather, (q + 1) % n, segments[(q + 1) % n]),
      ];
      return { messages, next: 0, received: 0, contribution: null, contributed: false };
    });
    const collective: Collective = {
      seq,
      bucket,
      data,
      segments,
      inboxes,
      expected: inboxes.reduce((sum, inbox) => sum + (inbox?.messages.length ?? 0), 0),
      added: 0,
      sum: null,
      sending: 0,
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

  /** Moves every collective and send as far as it goes without waiting; true when anything moved. */
  progress(): boolean {
    if (this.#failure || this.#broken) return false;
    try {
      let moved = false;
      for (;;) {
        let step = false;
        for (const q of this.#peers) {
          if (this.#pumpSends(q)) step = true;
          if (this.#pumpReceive(q)) step = true;
        }
        if (!step) return moved;
        moved = true;
      }
    } catch (error) {
      this.#fail(error);
      return false;
    }
  }

  /**
   * Drives the mesh on this thread until nothing is left to do or `untilMs` passes; true when nothing is
   * left (false also once a link failed).
   */
  spinUntil(untilMs: number): boolean {
    return spinPolledUntil([this], untilMs, this.#spinMs) && this.#failure === null && !this.#broken;
  }

  /** {@link PolledEngine}: collectives or sends are left and the mesh has not failed. */
  get busy(): boolean {
    return !this.#failure && !this.#broken &&
      (this.#queue.length > 0 || this.#sends.some((list) => list.length > 0));
  }

  /** {@link PolledEngine}: the links a message is expected on, and those with sends waiting. */
  waits(): Array<{ socket: PolledSocket; events: number }> {
    const waits = [];
    const c = this.#queue.head;
    for (const q of this.#peers) {
      const inbox = c?.inboxes[q];
      if (inbox && inbox.next < inbox.messages.length) {
        waits.push({ socket: this.#links[q]!.receive, events: POLLIN });
      }
      if (this.#sends[q].length > 0) waits.push({ socket: this.#links[q]!.send, events: POLLOUT });
    }
    return waits;
  }

  /** Fails every pending and future collective with `error`. */
  abort(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    this.#queue.rejectAll(error);
    for (const list of this.#sends) list.length = 0;
  }

  /** The segment this rank owns (finishes and sends to everyone): the ring's chain for it ends here. */
  #ownedSegment(): number {
    return (this.rank + 1) % this.worldSize;
  }

  #chunks(phase: RingPhase, segment: number, { start, end }: { start: number; end: number }): Message[] {
    const messages: Message[] = [];
    for (let offset = start; offset < end; offset += this.chunkElements) {
      messages.push({ phase, segment, offset, count: Math.min(this.chunkElements, end - offset) });
    }
    return messages;
  }

  #fail(error: unknown): void {
    const failure = error instanceof LinkFailure ? error : new LinkFailure(-1, false, error);
    const cause = failure.failure;
    const peer = failure.peer;
    const reason = peer < 0 // not a link's: this rank's own reduction failed
      ? `failed on this rank (${(cause as Error).message})`
      : cause instanceof FrameError || cause instanceof RingOrderError
      ? `bad data from rank ${peer}: ${cause instanceof FrameError ? cause.reason : cause.message}`
      : `mesh link ${failure.toPeer ? "to" : "from"} rank ${peer} closed (${(cause as Error).message})`;
    const wrapped = cause instanceof RingOrderError ? cause : new Error(`polled mesh: ${reason}`);
    this.#broken = true;
    if (this.#failPendingOnLinkLoss) this.abort(wrapped);
    this.#onLinkLost(peer, reason);
  }

  /** Queues the reduce-scatter sends of the collective that became the one being received. */
  #begin(c: Collective): void {
    const n = this.worldSize;
    for (const q of this.#peers) {
      // Rank q owns segment q + 1: it gets this rank's values of it.
      const segment = (q + 1) % n;
      for (const m of this.#chunks(RingPhase.reduceScatter, segment, c.segments[segment])) {
        this.#send(c, q, m, c.data.subarray(m.offset, m.offset + m.count));
      }
    }
    this.#reduceOwned(c); // a bucket too short for this rank's segment has nothing to add
    this.#maybeFinish(c);
  }

  #send(c: Collective, q: number, m: Message, values: Float32Array): void {
    const head = polledMessageHead({
      generation: this.generation,
      collective: c.seq,
      bucket: c.bucket,
      bucketLength: c.data.length,
      phase: m.phase,
      step: 0,
      segment: m.segment,
      offset: m.offset,
      elementCount: values.length,
    });
    c.sending++;
    this.#sends[q].push({
      head,
      body: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
      sent: 0,
      done: () => {
        c.sending--;
        this.#maybeFinish(c);
      },
    });
  }

  #pumpSends(q: number): boolean {
    const list = this.#sends[q];
    const socket = this.#links[q]!.send;
    let moved = false;
    while (list.length > 0) {
      const s = list[0];
      const total = s.head.length + s.body.length;
      let n: number;
      try {
        n = s.sent < s.head.length
          ? socket.trySend(s.head.subarray(s.sent), true)
          : socket.trySend(s.body.subarray(s.sent - s.head.length));
      } catch (error) {
        throw new LinkFailure(q, true, error);
      }
      if (n === 0) return moved;
      moved = true;
      s.sent += n;
      if (s.sent === total) {
        list.shift();
        s.done();
      }
    }
    return moved;
  }

  #pumpReceive(q: number): boolean {
    const c = this.#queue.head;
    const inbox = c?.inboxes[q];
    if (!inbox || inbox.next >= inbox.messages.length) return false;
    const m = inbox.messages[inbox.next];
    const prefixBytes = polledPrefixBytes(m.count);
    const socket = this.#links[q]!.receive;
    const prefix = this.#prefixes[q];
    let moved = false;
    try {
      if (inbox.received < prefixBytes) {
        const got = socket.tryRecv(prefix.subarray(inbox.received, prefixBytes));
        if (got === 0) return false;
        moved = true;
        inbox.received += got;
        if (inbox.received < prefixBytes) return true;
        this.#checkPrefix(c, m, prefix);
        if (m.phase === RingPhase.reduceScatter && inbox.contribution === null) {
          const { start, end } = c.segments[m.segment];
          inbox.contribution = this.#scratch.take(end - start);
        }
      }
      const target = m.phase === RingPhase.reduceScatter
        ? inbox.contribution!.subarray(
          m.offset - c.segments[m.segment].start,
          m.offset - c.segments[m.segment].start + m.count,
        )
        : c.data.subarray(m.offset, m.offset + m.count);
      const bytes = new Uint8Array(target.buffer, target.byteOffset, m.count * 4);
      const offset = inbox.received - prefixBytes;
      if (offset < bytes.length) {
        const got = socket.tryRecv(bytes.subarray(offset));
        if (got === 0) return moved;
        inbox.received += got;
        if (inbox.received - prefixBytes < bytes.length) return true;
      }
    } catch (error) {
      throw error instanceof LinkFailure ? error : new LinkFailure(q, false, error);
    }
    if (c.firstChunkMs === 0) c.firstChunkMs = performance.now();
    inbox.received = 0;
    inbox.next++;
    c.expected--;
    if (m.phase === RingPhase.reduceScatter) {
      const last = inbox.next === inbox.messages.length ||
        inbox.messages[inbox.next].phase !== RingPhase.reduceScatter;
      if (last) {
        inbox.contributed = true;
        this.#reduceOwned(c);
      }
    }
    this.#maybeFinish(c);
    return true;
  }

  /**
   * Checks the WebSocket and Orion headers of message `m` (in `prefix`), the one the schedule expects next
   * from its peer: {@link FrameError} or {@link RingOrderError} (the caller names the peer).
   */
  #checkPrefix(c: Collective, m: Message, prefix: Uint8Array): void {
    const h = decodePolledPrefix(prefix, m.count, "mesh message");
    const problem = h.generation !== this.generation
      ? `chunk from generation ${h.generation} arrived in generation ${this.generation}`
      : h.collective !== c.seq
      ? `chunk of collective #${h.collective} arrived during collective #${c.seq}`
      : h.bucket !== c.bucket || h.bucketLength !== c.data.length
      ? `chunk of bucket ${h.bucket} (${h.bucketLength} values) arrived where bucket ${c.bucket} ` +
        `(${c.data.length} values) runs: ranks started buckets in different orders or lengths`
      : h.phase !== m.phase || h.step !== 0 || h.segment !== m.segment || h.offset !== m.offset
      ? `chunk (phase ${h.phase}, step ${h.step}, segment ${h.segment}, offset ${h.offset}) arrived where ` +
        `the mesh expects phase ${m.phase}, step 0, segment ${m.segment}, offset ${m.offset}`
      : null;
    if (problem !== null) throw new RingOrderError(problem);
  }

  /**
   * Adds the owned segment's contributions that arrived, in the ring's order (ranks s, s + 1, … for segment
   * s), and once all did, adds this rank's values, divides, and sends the result to every peer.
   */
  #reduceOwned(c: Collective): void {
    const n = this.worldSize;
    const owned = this.#ownedSegment();
    const { start, end } = c.segments[owned];
    if (c.added === n - 1) return;
    if (start === end) {
      c.added = n - 1;
      return;
    }
    while (c.added < n - 1) {
      const inbox = c.inboxes[(owned + c.added) % n]!;
      if (!inbox.contributed) return;
      if (c.sum === null) c.sum = inbox.contribution!;
      else {
        this.#kernel.addInto(c.sum, inbox.contribution!);
        this.#scratch.give(inbox.contribution!);
      }
      inbox.contribution = null;
      c.added++;
    }
    const local = c.data.subarray(start, end);
    this.#kernel.addDivideInto(c.sum!, local, n);
    local.set(c.sum!);
    this.#scratch.give(c.sum!);
    c.sum = null;
    for (const q of this.#peers) {
      for (const m of this.#chunks(RingPhase.allGather, owned, c.segments[owned])) {
        this.#send(c, q, m, c.data.subarray(m.offset, m.offset + m.count));
      }
    }
  }

  #maybeFinish(c: Collective): void {
    if (c.expected > 0 || c.added < this.worldSize - 1 || c.sending > 0 || this.#queue.head !== c) return;
    this.#queue.finishHead();
  }
}

/** Largest world size the mesh is used at: each rank holds 2(n − 1) links, the ring 2. */
export const MESH_MAX_RANKS = 8;

/**
 * Default largest bucket (bytes) for the stripes' meshes; larger ones take the stripes' rings. See
 * docs/distributed.md, "Direct all-reduce over a mesh", for the measurements behind it.
 */
export const DEFAULT_MESH_MAX_BYTES = 8 * 1024 * 1024;

/**
 * The largest bucket (bytes) a job of `worldSize` ranks sends through the mesh, from what each rank offers
 * (`undefined`: a rank without polled links or an older one): the smallest offer, and 0 (no mesh) below 3 ranks
 * (the ring is already two hops), above {@link MESH_MAX_RANKS}, or when any rank offers none.
 *
 * @example
 * ```ts
 * import { agreedMeshMaxBytes } from "./polled_mesh.ts";
 * console.log(agreedMeshMaxBytes([4194304, 1048576, 4194304])); // 1048576
 * console.log(agreedMeshMaxBytes([4194304, 4194304])); // 0: two ranks
 * ```
 */
export function agreedMeshMaxBytes(offers: ReadonlyArray<number | undefined>): number {
  const n = offers.length;
  if (n < 3 || n > MESH_MAX_RANKS || offers.some((o) => o === undefined)) return 0;
  return Math.min(...(offers as number[]));
}

/**
 * A stripe's part of each segment in a mesh bucket is at least worldSize × this many bytes: each stripe
 * thread handles 2(n − 1) messages per collective, so more ranks need larger parts to pay for them. See
 * {@link meshStripesForBucket}.
 */
export const MESH_PART_BYTES_PER_RANK = 16 * 1024;

/**
 * How many polled stripes reduce a mesh bucket of `bytes` (0: the ring on the rank's thread): with `explicit`
 * (the job's smallest striped size set by hand) all of them from that size; else as many as give each a part
 * of at least worldSize × {@link MESH_PART_BYTES_PER_RANK} of every segment (`bytes / (n² × 16 KiB)`), at
 * most `stripes`, and none when fewer than two would (one when the job has a single stripe). The stripes
 * left over sit the collective out; the bits are the same whichever count runs it.
 *
 * Measured on the 2 × H200 host (sync, ms, three interleaved runs each): 4 ranks × 1 MiB on 4 stripes
 * 0.86–0.93 against 0.96–1.10 on 2; 8 ranks × 2 MiB on 2 stripes 1.69–2.33 against 2.44–2.52 on 4; 8 ranks
 * × 4 MiB on 4 stripes 2.60–2.81 against 2.66–3.37 on 2; 8 ranks × 1 MiB stays on the rank's ring.
 *
 * @example
 * ```ts
 * import { meshStripesForBucket } from "./polled_mesh.ts";
 * console.log(meshStripesForBucket(1 << 20, 4, 4, null)); // 4: 1 MiB / (4² × 16 KiB)
 * console.log(meshStripesForBucket(2 << 20, 8, 4, null)); // 2: 2 MiB / (8² × 16 KiB)
 * console.log(meshStripesForBucket(1 << 20, 8, 4, null)); // 0: on the rank's thread
 * ```
 */
export function meshStripesForBucket(
  bytes: number,
  worldSize: number,
  stripes: number,
  explicit: number | null,
): number {
  if (stripes === 0) return 0;
  if (explicit !== null) return bytes >= explicit ? stripes : 0;
  const fit = Math.min(stripes, Math.floor(bytes / (worldSize * worldSize * MESH_PART_BYTES_PER_RANK)));
  return fit >= Math.min(2, stripes) ? fit : 0;
}
