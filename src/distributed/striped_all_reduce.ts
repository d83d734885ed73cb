/**
 * Striped ring all-reduce: a rank's buckets are reduced by `stripes` rings at once, each on its own Worker
 * thread with its own two sockets (`ring_stripe_worker.ts`), so the per-byte work of a rank (socket reads
 * and writes, the add) runs on several cores. Stripe k takes part k of every ring segment
 * (`stripeSegmentBounds` in ring_all_reduce.ts), so every element is summed in the same order as by the unstriped ring:
 * the bits depend only on (bucket length, world size), never on the stripe count.
 *
 * Buckets live in a shared arena ({@link SharedReduceArena}); the workers read chunks straight into it and
 * add in place ({@link StripeRing}). A bucket from {@link StripedAllReduce.sharedBucket} is reduced where it
 * is; any other Float32Array is copied in and back out.
 *
 * @module
 */
import { type CollectiveTimes, RingOrderError } from "./ring_all_reduce.ts";
import { isArenaView, SharedReduceArena } from "./reduce_arena.ts";
import { COMPLETION_SLOTS, completionDrained, completionReached, stripesRunning } from "./stripe_ring.ts";
import { MAX_STRIPES, StripeStartSlots } from "./stripe_start_slots.ts";
import { workerModuleUrl } from "../util/worker_module.ts";

/** Messages from the rank's thread to a stripe worker. */
export type ToStripeWorker =
  | {
    t: "listen";
    hostname: string;
    secret: string;
    jobId: string;
    stripe: number;
    memory: WebAssembly.Memory;
    /** Also listen for a polled link (`polled_ring.ts`); the reply then carries its port when it could. */
    polled: boolean;
  }
  | {
    t: "connect";
    rank: number;
    worldSize: number;
    generation: number;
    left: { host: string; port: number };
    /**
     * Run the stripe as a polled ring: dial this port of the left neighbour's stripe with a polled socket,
     * take the right neighbour's polled link, and busy-poll for `spinMs` before sleeping in `poll(2)`; after
     * its collectives, wait `lingerMs` in `Atomics.wait` for the next start before returning to the event loop.
     */
    polled?: {
      leftPort: number;
      spinMs: number;
      lingerMs: number;
      /**
       * Also a polled mesh (`polled_mesh.ts`) to every other rank's same stripe (their polled ports, by rank;
       * null at this rank): buckets up to `maxBytes` run on it instead of the ring.
       */
      mesh?: { maxBytes: number; peers: Array<{ host: string; port: number } | null> };
    };
    chunkElements: number;
    stripes: number;
    receiveOffset: number;
    /** Byte offset in the memory of the completion slots ({@link COMPLETION_SLOTS} Int32 counters). */
    completionOffset: number;
    /**
     * Byte offset of the collectives' timeline: {@link COMPLETION_SLOTS} × `stripes` pairs of Float64 (when
     * the stripe began the collective and when it finished it, ms since the epoch), written before the slot.
     */
    timelineOffset: number;
    /** Byte offset of the {@link StripeStartSlots} the collectives are handed over in. */
    startSlotsOffset: number;
    receive: StripeReceive;
  }
  /** Read the start slots: collectives were published (sent only to a worker that is not lingering). */
  | { t: "start" }
  | { t: "drain"; id: number }
  | { t: "stop"; reason: string };

/** Messages from a stripe worker to the rank's thread. */
export type FromStripeWorker =
  | { t: "listening"; port: number; polledPort?: number }
  | { t: "connected" }
  | { t: "setup_failed"; message: string }
  /** Collective `seq` finished on every stripe (posted by the stripe that finished it last). */
  | { t: "done"; seq: number }
  | { t: "failed"; seq: number; name: string; message: string }
  | { t: "drained"; id: number }
  | { t: "link_lost"; peerRank: number; reason: string }
  | { t: "stopped" };

/**
 * How a stripe worker receives chunk values: `direct` reads them from the socket straight into the arena
 * (the bucket, or the receive area the add reads); `staged` reads into a private buffer and copies (one
 * extra copy per chunk; kept to measure what the direct path saves).
 */
export type StripeReceive = "direct" | "staged";

/** Options of {@link StripedAllReduce.listen}. */
export interface StripedAllReduceOptions {
  /** Worker threads (and socket pairs) per rank, ≥ 1. */
  stripes: number;
  /** Address the stripe data servers listen on. */
  hostname: string;
  /** Job secret (stripe links are authenticated like the ring's: role peer, right neighbour, once). */
  secret: string;
  jobId: string;
  /** A stripe link broke (or a worker died); the rank reports it and stops. Called once. */
  onLinkLost(peerRank: number | null, reason: string): void;
  /**
   * Whether a broken link rejects the pending collectives at once (default true). A rank session passes
   * false: it reports the loss and rejects them with its own stop error when the job stops the rank.
   */
  failPendingOnLinkLoss?: boolean;
  /** Also listen for polled links, so that {@link StripedAllReduce.connect} may run the stripes polled. */
  polled?: boolean;
  /** Worker entry module (default: `ring_stripe_worker.ts` beside this module, or `ring_stripe_worker.js` beside a bundle). */
  moduleUrl?: string;
}

/** The stripe worker module of this process, or null where Workers cannot start (a compiled binary). */
export function stripeWorkerModuleUrl(): string | null {
  const url = workerModuleUrl(import.meta.url, "./ring_stripe_worker.ts", "ring_stripe_worker");
  return url !== null && url.startsWith("file:") ? url : null;
}

/** Environment variable that overrides {@link defaultStripes} (an integer 0..64). */
export const STRIPES_ENV = "ORION_RING_STRIPES";

/** `ORION_RING_STRIPES` (stripes set by hand), or null when unset. */
export function stripesFromEnv(): number | null {
  return integerFromEnv(STRIPES_ENV, "a stripe count", "an integer 0..64", 64);
}

/**
 * Default stripes per rank: `ORION_RING_STRIPES` when set, else a quarter of the logical cores, 1..4 (16
 * threads: 4; a 2-core VM: 1); 0 (the rank's own thread) where Workers cannot start. Each stripe is one
 * Worker doing its share of the socket I/O and adds. On the 16-thread H200 host (docs/distributed.md) 4
 * stripes beat 2 for 2 and 4 ranks at ≥ 16 MiB (73–90 % vs 48–54 % and 54–69 % vs 32–47 % of raw TCP).
 * Ranks use the smallest count any rank offers, and a default count is further capped by the host's cores
 * shared among its ranks ({@link stripeCapFor}, {@link agreedStripes}).
 */
export function defaultStripes(): number {
  if (stripeWorkerModuleUrl() === null) return 0;
  const fromEnv = stripesFromEnv();
  if (fromEnv !== null) return fromEnv;
  const cores = typeof navigator !== "undefined" ? navigator.hardwareConcurrency ?? 2 : 2;
  return Math.max(1, Math.min(4, Math.floor(cores / 4)));
}

/**
 * Most stripes per rank that a host of `cores` logical cores running `ranksOnHost` of the job's ranks has
 * cores for: `max(1, floor(cores / ranksOnHost))`, so the stripe workers of all its ranks do not outnumber
 * its cores. On the 16-thread H200 host with 8 ranks (`h200host_2026-11-29_allreduce_stripes8.json`), 2
 * stripes beat 4 at the gradient buckets' sizes: 2.29 vs 3.83 ms at 2 MiB, 4.19 vs 5.58 at 4 MiB, 4.62 vs
 * 6.34 at 8 MiB; they tied at 16 MiB (11.05 vs 11.16) and lost at 64 MiB (62.4 vs 48.1).
 *
 * @example
 * ```ts
 * import { stripeCapFor } from "./striped_all_reduce.ts";
 * console.log(stripeCapFor(16, 8)); // 2
 * ```
 */
export function stripeCapFor(cores: number, ranksOnHost: number): number {
  return Math.max(1, Math.floor(cores / Math.max(1, ranksOnHost)));
}

/**
 * The stripe count every rank of a job uses, computed alike by all from the assignment: the smallest
 * count any rank offers (its stripe servers), within every rank's {@link stripeCapFor} cap (set by the
 * coordinator for ranks whose count is the default); 0 when any rank runs none.
 */
export function agreedStripes(
  peers: ReadonlyArray<{ stripePorts?: readonly number[]; stripeCap?: number }>,
): number {
  return Math.min(...peers.map((p) => Math.min(p.stripePorts?.length ?? 0, p.stripeCap ?? Infinity)));
}

/**
 * How long a polled stripe that finished its collectives waits in `Atomics.wait` for the next one to be
 * published before it returns to its event loop (ms): a training step's buckets come a few ms apart.
 */
export const STRIPE_LINGER_MS = 20;

/** Environment variable that sets the smallest striped bucket in bytes (see {@link stripeMinBytes}). */
export const STRIPE_MIN_BYTES_ENV = "ORION_STRIPE_MIN_BYTES";

/** Smallest share of a bucket one stripe carries per ring segment before the stripes beat the own-thread ring (up to 4 ranks). */
export const STRIPE_SEGMENT_MIN_BYTES = 128 * 1024;

/**
 * Smallest part of a ring segment one polled stripe carries: a polled bucket goes to as many stripes as give
 * each at least this much ({@link stripesForBucket}).
 */
export const POLLED_STRIPE_PART_BYTES = 128 * 1024;

/**
 * Smallest bucket, in bytes, that goes to the stripes; smaller buckets run on the rank's own-thread ring,
 * whose summation order is the same, so the bits do not change. `explicit` (an option, or
 * {@link stripeMinBytesFromEnv}) wins; otherwise `worldSize × stripes × max(128 KiB, worldSize × 32 KiB)`:
 * the stripes take a bucket once each stripe's part of each ring segment is at least 128 KiB
 * ({@link STRIPE_SEGMENT_MIN_BYTES}), and from 5 ranks on, 32 KiB per rank (a ring of more ranks runs more
 * steps, each paying the Worker and per-message costs). Measured crossovers on the H200 host, where each
 * stripe's part first won:
 * - 4 stripes (`h200host_2026-11-29_allreduce_hybrid_*.json`): 2 ranks from 1 MiB (part 128 KiB; 0.65–0.69
 *   vs 0.71–0.93 ms), 4 ranks from 2 MiB (128 KiB; 1.63–1.90 vs 2.25–2.98 ms, and at 1 MiB the ring,
 *   1.13–1.37 vs 1.59–1.73), 8 ranks from 8 MiB (256 KiB; 7.77–7.88 vs 9.48–10.24 ms, and at 4 MiB the
 *   ring, 4.60–5.62 vs 5.96–5.99);
 * - 2 stripes, 8 ranks (`…_allreduce_stripes8_ab*.json`): at 4 MiB (256 KiB) a tie, 4.93–5.70 vs
 *   5.21–5.73 ms; at 2 MiB the ring, 2.74–3.00 vs 3.26–3.38.
 * The rule gives 1, 2 and 8 MiB for 2, 4 and 8 ranks with 4 stripes, and 4 MiB for 8 ranks with 2.
 *
 * Polled stripes (`polled`): the smallest bucket that {@link stripesForBucket} gives two stripes (one with a
 * single stripe), `worldSize × min(2, stripes) × 128 KiB`.
 *
 * @example
 * ```ts
 * import { stripeMinBytes } from "./striped_all_reduce.ts";
 * console.log(stripeMinBytes(null, 8, 2)); // 4194304: 4 MiB
 * console.log(stripeMinBytes(null, 8, 4, true)); // 2097152: 2 MiB
 * ```
 */
export function stripeMinBytes(
  explicit: number | null,
  worldSize: number,
  stripes: number,
  polled = false,
): number {
  if (explicit !== null) return explicit;
  if (polled) return worldSize * Math.min(2, stripes) * POLLED_STRIPE_PART_BYTES;
  return worldSize * stripes * Math.max(STRIPE_SEGMENT_MIN_BYTES, worldSize * 32 * 1024);
}

/**
 * How many stripes reduce a bucket of `bytes` (0: the rank's own ring), alike on every rank. With `explicit`
 * (the smallest striped size set by hand) or event-loop stripes: all of them from {@link stripeMinBytes}.
 * Polled stripes: as many as give each a part of at least {@link POLLED_STRIPE_PART_BYTES} per ring segment,
 * `floor(bytes / (worldSize × 128 KiB))` up to `stripes`, and at least two (a bucket for one stripe stays on
 * the rank's own polled ring, which needs no hand-off), or one where a rank runs one stripe. The stripes used
 * take the parts of a ring with that many stripes (`stripeSegmentBounds`); the others skip the collective;
 * the bits do not depend on the count.
 *
 * Measured on the 2 × H200 host (32 threads; `docs/results/h200x2_2026-11-30_*.json`, ms per all-reduce
 * awaited one by one): 8 ranks at 1 MiB on the own polled ring 1.21–1.47, on 2 stripes 1.38–1.75, on 4
 * 1.99–2.08; at 2 MiB 2.06–2.38, 1.52–1.84 and 1.80–2.26; at 4 MiB 2 stripes 3.14–3.20 against 4 stripes
 * 2.49–2.71. At 4 ranks and 1 MiB 2 and 4 stripes tie (0.76–0.96 and 0.72–0.92) and beat the own ring
 * (0.84–1.13).
 *
 * @example
 * ```ts
 * import { stripesForBucket } from "./striped_all_reduce.ts";
 * const mib = 1 << 20;
 * console.log(stripesForBucket(mib, 8, 4, true, null)); // 0: the own ring
 * console.log(stripesForBucket(2 * mib, 8, 4, true, null)); // 2
 * console.log(stripesForBucket(64 * mib, 8, 4, true, null)); // 4
 * console.log(stripesForBucket(2 * mib, 8, 4, false, null)); // 0: event-loop stripes from 8 MiB
 * ```
 */
export function stripesForBucket(
  bytes: number,
  worldSize: number,
  stripes: number,
  polled: boolean,
  explicit: number | null,
): number {
  if (stripes === 0 || bytes < stripeMinBytes(explicit, worldSize, stripes, polled)) return 0;
  if (explicit !== null || !polled) return stripes;
  const parts = Math.floor(bytes / (worldSize * POLLED_STRIPE_PART_BYTES));
  return Math.max(Math.min(2, stripes), Math.min(stripes, parts));
}

/** `ORION_STRIPE_MIN_BYTES` as a number of bytes, or null when unset. */
export function stripeMinBytesFromEnv(): number | null {
  return integerFromEnv(STRIPE_MIN_BYTES_ENV, "a bucket size", "an integer number of bytes ≥ 0");
}

/** The integer 0..`max` in environment variable `name`; null when unset (or without env permission). */
/** An integer from environment variable `name` (null when unset or unreadable); throws naming the fix when malformed. */
export function integerFromEnv(
  name: string,
  what: string,
  use: string,
  max = Number.MAX_SAFE_INTEGER,
): number | null {
  let text: string | undefined;
  try {
    text = Deno.env.get(name);
  } catch { /* no env permission: not set */ }
  if (text === undefined || text === "") return null;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new RangeError(`Cannot read ${name} as ${what}: current value is "${text}"; use ${use}`);
  }
  return value;
}

interface StripeWorker {
  worker: Worker;
  index: number;
  port: number;
  polledPort?: number;
  waiters: Map<string, PromiseWithResolvers<FromStripeWorker>>;
}

interface PendingCollective {
  bucket: number;
  /** The stripes that run it (0..running−1; {@link stripesRunning}); it is finished once they all are. */
  running: number;
  copyBack: { offset: number; target: Float32Array } | null;
  resolve(): void;
  reject(error: Error): void;
}

/**
 * One rank's striped ring. Start the workers with {@link listen} (publish {@link ports} to the peers),
 * then {@link connect} with the left neighbour's stripe ports and the agreed stripe count.
 *
 * @example
 * ```ts ignore
 * const striped = await StripedAllReduce.listen({ stripes: 2, hostname: "0.0.0.0", secret, jobId, onLinkLost });
 * // ... exchange striped.ports with the peers (the coordinator's hello/assign) ...
 * await striped.connect({ rank, worldSize, generation, left: { host, ports: leftPorts }, stripes: 2, chunkElements });
 * await striped.start(0, gradients); // gradients now holds the mean over ranks, bit-identical on every rank
 * await striped.close();
 * ```
 */
export class StripedAllReduce {
  readonly arena: SharedReduceArena;
  readonly #workers: StripeWorker[];
  readonly #onLinkLost: StripedAllReduceOptions["onLinkLost"];
  readonly #failPendingOnLinkLoss: boolean;
  #linkLost = false;
  readonly #pending = new Map<number, PendingCollective>();
  /**
   * Collectives finished for this rank whose completion slot some stripe that sat them out has not passed yet
   * (the slot is reused only after).
   */
  readonly #passing = new Set<number>();
  #stripes = 0;
  #polled = false;
  #completion: Int32Array | null = null;
  #timeline: Float64Array | null = null;
  #startSlots: StripeStartSlots | null = null;
  #startMessages = 0;
  readonly #bucketTimes = new Map<number, CollectiveTimes>();
  #nextSeq = 0;
  #nextDrain = 0;
  #failure: Error | null = null;
  #closed = false;

  private constructor(arena: SharedReduceArena, workers: StripeWorker[], options: StripedAllReduceOptions) {
    this.arena = arena;
    this.#workers = workers;
    this.#onLinkLost = options.onLinkLost;
    this.#failPendingOnLinkLoss = options.failPendingOnLinkLoss ?? true;
  }

  /** Starts `stripes` workers, each listening for its right neighbour's stripe link. */
  static async listen(options: StripedAllReduceOptions): Promise<StripedAllReduce> {
    if (!Number.isInteger(options.stripes) || options.stripes < 1 || options.stripes > MAX_STRIPES) {
      throw new RangeError(
        `Cannot start the striped ring as stripes is out of range: current value is ${options.stripes}; ` +
          `use 1..${MAX_STRIPES}`,
      );
    }
    const url = options.moduleUrl ?? stripeWorkerModuleUrl();
    if (url === null) {
      throw new Error(
        "Cannot start all-reduce stripe workers as this build carries no ring_stripe_worker module (a compiled " +
          "binary); use stripes 0",
      );
    }
    const arena = new SharedReduceArena();
    const workers: StripeWorker[] = [];
    let self: StripedAllReduce | null = null;
    for (let index = 0; index < options.stripes; index++) {
      const worker = new Worker(url, { type: "module" });
      const entry: StripeWorker = { worker, index, port: 0, waiters: new Map() };
      worker.onmessage = (e: MessageEvent<FromStripeWorker>) => self!.#onMessage(entry, e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        self!.#fail(null, `all-reduce stripe worker ${index} crashed: ${e.message}`);
      };
      workers.push(entry);
    }
    self = new StripedAllReduce(arena, workers, options);
    try {
      await Promise.all(workers.map(async (entry) => {
        const reply = self.#request(entry, "listening", {
          t: "listen",
          hostname: options.hostname,
          secret: options.secret,
          jobId: options.jobId,
          stripe: entry.index,
          memory: arena.memory,
          polled: options.polled ?? false,
        });
        const listening = await reply as Extract<FromStripeWorker, { t: "listening" }>;
        entry.port = listening.port;
        entry.polledPort = listening.polledPort;
      }));
    } catch (error) {
      for (const entry of workers) entry.worker.terminate();
      throw error;
    }
    return self;
  }

  /** Ports of the stripe data servers, stripe order. */
  get ports(): number[] {
    return this.#workers.map((w) => w.port);
  }

  /** Ports of the stripes' polled-link servers, stripe order; empty unless every stripe has one. */
  get polledPorts(): number[] {
    return this.#workers.every((w) => w.polledPort !== undefined)
      ? this.#workers.map((w) => w.polledPort!)
      : [];
  }

  /** Whether the connected stripes run as polled rings. */
  get polled(): boolean {
    return this.#polled;
  }

  /**
   * `start` messages posted to the workers so far: one per stripe and collective that found the stripe not
   * lingering (polled stripes that linger take collectives from the start slots without one).
   */
  get startMessages(): number {
    return this.#startMessages;
  }

  /** Stripes now lingering for the next start (they would take it from the start slots, without a message). */
  get lingering(): number {
    const slots = this.#startSlots;
    return slots ? this.#workers.filter((w) => slots.lingering(w.index)).length : 0;
  }

  /** Stripes in use after {@link connect}. */
  get stripes(): number {
    return this.#stripes;
  }

  /**
   * Connects stripes 0..stripes−1 to the left neighbour's stripe servers and waits for the right
   * neighbour's links; workers beyond `stripes` stop. `stripes` must be the same on every rank (the
   * smallest count any rank offers).
   */
  async connect(a: {
    rank: number;
    worldSize: number;
    generation: number;
    left: { host: string; ports: readonly number[] };
    stripes: number;
    chunkElements: number;
    /** Default "direct". */
    receive?: StripeReceive;
    /**
     * Run every stripe as a polled ring (`polled_ring.ts`) over these polled ports of the left neighbour's
     * stripes, busy-polling `spinMs` before sleeping; every rank must choose alike. `lingerMs` (default
     * {@link STRIPE_LINGER_MS}): how long a stripe that finished its collectives waits in `Atomics.wait` for
     * the next start (no CPU; it delays only the worker's own messages, such as `stop`, by as much).
     */
    polled?: {
      leftPorts: readonly number[];
      spinMs: number;
      lingerMs?: number;
      /**
       * Also a polled mesh per stripe to the same stripe of every other rank (`polled_mesh.ts`; each rank's
       * stripes' polled ports, by rank, null at this rank): buckets up to `maxBytes` run on it, the others on
       * the ring; every rank must choose alike.
       */
      mesh?: { maxBytes: number; peers: ReadonlyArray<{ host: string; ports: readonly number[] } | null> };
    };
  }): Promise<void> {
    if (a.stripes < 1 || a.stripes > this.#workers.length || a.stripes > a.left.ports.length) {
      throw new RangeError(
        `Cannot connect ${a.stripes} stripes as this rank runs ${this.#workers.length} and its left neighbour ` +
          `offers ${a.left.ports.length}: use the smallest count any rank offers`,
      );
    }
    this.#stripes = a.stripes;
    this.#polled = a.polled !== undefined;
    for (const extra of this.#workers.splice(a.stripes)) extra.worker.terminate();
    const completionOffset = this.arena.allocate(COMPLETION_SLOTS * 4);
    this.#completion = new Int32Array(this.arena.memory.buffer, completionOffset, COMPLETION_SLOTS);
    this.#completion.fill(0);
    const timelineOffset = this.arena.allocate(COMPLETION_SLOTS * a.stripes * 16);
    this.#timeline = new Float64Array(
      this.arena.memory.buffer,
      timelineOffset,
      COMPLETION_SLOTS * a.stripes * 2,
    );
    const startSlotsOffset = this.arena.allocate(StripeStartSlots.BYTES);
    new Uint8Array(this.arena.memory.buffer, startSlotsOffset, StripeStartSlots.BYTES).fill(0);
    this.#startSlots = new StripeStartSlots(this.arena.memory.buffer, startSlotsOffset);
    await Promise.all(this.#workers.map((entry) =>
      this.#request(entry, "connected", {
        t: "connect",
        rank: a.rank,
        worldSize: a.worldSize,
        generation: a.generation,
        left: { host: a.left.host, port: a.left.ports[entry.index] },
        ...(a.polled
          ? {
            polled: {
              leftPort: a.polled.leftPorts[entry.index],
              spinMs: a.polled.spinMs,
              lingerMs: a.polled.lingerMs ?? STRIPE_LINGER_MS,
              ...(a.polled.mesh
                ? {
                  mesh: {
                    maxBytes: a.polled.mesh.maxBytes,
                    peers: a.polled.mesh.peers.map((p) =>
                      p === null ? null : { host: p.host, port: p.ports[entry.index] }
                    ),
                  },
                }
                : {}),
            },
          }
          : {}),
        chunkElements: a.chunkElements,
        stripes: a.stripes,
        receiveOffset: this.arena.allocate(2 * a.chunkElements * 4),
        completionOffset,
        timelineOffset,
        startSlotsOffset,
        receive: a.receive ?? "direct",
      })
    ));
  }

  /**
   * A Float32Array of `length` zeros inside the shared arena: {@link start} reduces it in place (no copies).
   * Give it back with {@link releaseSharedBucket} when done with it.
   */
  sharedBucket(length: number): Float32Array {
    return this.arena.zeros(length);
  }

  /** Returns a {@link sharedBucket}'s memory to the arena. */
  releaseSharedBucket(bucket: Float32Array): void {
    this.arena.release(bucket.byteOffset);
  }

  /**
   * Starts the mean all-reduce of `data` (in place) as the next collective; `bucket` is its index in the
   * fixed bucket order. Resolves when `data` holds the mean and no send reads it any more.
   *
   * With `bf16` (gradient compression; both arrays from {@link sharedBucket}, equal lengths): the values are
   * the bf16 bits in `bf16` (`data`'s contents are overwritten); the stripe workers widen them into `data`,
   * reduce, and round the mean back into `bf16`, so the codec runs on their threads, not this one.
   *
   * `stripesUsed` (polled stripes only; default all): stripes 0..stripesUsed−1 reduce the bucket, with the
   * parts of a ring of that many stripes, and the others skip it ({@link stripesForBucket}).
   */
  start(bucket: number, data: Float32Array, bf16?: Uint16Array, stripesUsed = this.#stripes): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (
      !Number.isInteger(stripesUsed) || stripesUsed < 1 || stripesUsed > this.#stripes ||
      (!this.#polled && stripesUsed !== this.#stripes)
    ) {
      return Promise.reject(
        new RangeError(
          `Cannot reduce a bucket on ${stripesUsed} stripes as this ring runs ${this.#stripes}` +
            `${this.#polled ? "" : " event-loop stripes, which all take every bucket"}: use ` +
            (this.#polled ? `1..${this.#stripes}` : String(this.#stripes)),
        ),
      );
    }
    if (this.#closed) return Promise.reject(new Error("Cannot all-reduce after the striped ring closed"));
    if (!this.#startSlots) {
      return Promise.reject(new Error("Cannot all-reduce on the striped ring before connect()"));
    }
    this.#freePassedSlots();
    const oldest = Math.min(this.#pending.keys().next().value ?? Infinity, ...this.#passing);
    if (this.#nextSeq - oldest >= COMPLETION_SLOTS) {
      return Promise.reject(
        new RangeError(
          `Cannot start collective ${this.#nextSeq} as collective ${oldest} is still in flight: at most ` +
            `${COMPLETION_SLOTS} may be`,
        ),
      );
    }
    if (
      bf16 && (bf16.length !== data.length || !isArenaView(this.arena.memory, bf16) ||
        !isArenaView(this.arena.memory, data))
    ) {
      return Promise.reject(
        new RangeError(
          `Cannot start a bf16 collective of ${data.length} values with ${bf16.length} bf16 values outside ` +
            "the striped ring's arena: pass two sharedBucket arrays of equal length",
        ),
      );
    }
    const seq = this.#nextSeq++;
    let offset: number;
    let copyBack: PendingCollective["copyBack"] = null;
    if (isArenaView(this.arena.memory, data)) offset = data.byteOffset;
    else {
      offset = this.arena.allocate(Math.max(4, data.length * 4));
      const staged = this.arena.float32(offset, data.length);
      staged.set(data);
      copyBack = { offset, target: data };
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const running = this.#polled ? stripesRunning(data.length, stripesUsed) : this.#stripes;
    this.#pending.set(seq, { bucket, running, copyBack, resolve, reject });
    const slots = this.#startSlots;
    slots.publish(seq, {
      bucket,
      offset,
      length: data.length,
      bf16Offset: bf16 ? bf16.byteOffset : null,
      stripes: stripesUsed,
    });
    for (const entry of this.#workers) {
      if (slots.lingering(entry.index)) continue;
      entry.worker.postMessage({ t: "start" } satisfies ToStripeWorker);
      this.#startMessages++;
    }
    return promise;
  }

  /**
   * Settles the collectives their stripes have finished, read from the shared completion slots: no event-loop
   * turn needed (a `done` message does the same when the thread gets to it). Stripes that sit a collective
   * out do not hold it up. Their promises resolve in microtasks. Returns how many were settled.
   *
   * With `untilMs` (`performance.now()` time), first blocks this thread (`Atomics.wait` on the slots, which
   * the workers notify) until every collective in flight has finished or `untilMs` has passed.
   */
  pollCompleted(untilMs?: number): number {
    const slots = this.#completion;
    if (!slots || this.#failure) return 0;
    const stripes = this.#stripes;
    if (untilMs !== undefined) {
      for (const [seq, { running }] of this.#pending) {
        const slot = seq % COMPLETION_SLOTS;
        for (;;) {
          const seen = Atomics.load(slots, slot);
          const left = untilMs - performance.now();
          if (completionReached(seen, running, stripes) || left <= 0) break;
          Atomics.wait(slots, slot, seen, left);
        }
      }
    }
    this.#freePassedSlots();
    let settled = 0;
    for (const [seq, pending] of this.#pending) {
      const slot = seq % COMPLETION_SLOTS;
      const word = Atomics.load(slots, slot);
      if (!completionReached(word, pending.running, stripes)) continue;
      if (completionDrained(word, stripes)) Atomics.store(slots, slot, 0);
      else this.#passing.add(seq);
      this.#pending.delete(seq);
      this.#recordTimes(pending.bucket, slot, pending.running);
      if (pending.copyBack) {
        const { offset, target } = pending.copyBack;
        target.set(this.arena.float32(offset, target.length));
        this.arena.release(offset);
      }
      pending.resolve();
      settled++;
    }
    return settled;
  }

  /**
   * When the stripes last ran the collective of each bucket index, in this thread's `performance.now()`
   * time: the first stripe's start (its worker took the collective from the start slots) and the last
   * stripe's finish, and each stripe's own (stripes that sat it out are left out).
   */
  get bucketTimes(): ReadonlyMap<number, CollectiveTimes> {
    return this.#bucketTimes;
  }

  /** Frees the completion slots of finished collectives that every stripe has passed since. */
  #freePassedSlots(): void {
    const slots = this.#completion;
    if (!slots) return;
    for (const seq of this.#passing) {
      const slot = seq % COMPLETION_SLOTS;
      if (!completionDrained(Atomics.load(slots, slot), this.#stripes)) continue;
      Atomics.store(slots, slot, 0);
      this.#passing.delete(seq);
    }
  }

  /** Records the span of collective `bucket` from the timeline of its `running` stripes (the others sat it out). */
  #recordTimes(bucket: number, slot: number, running: number): void {
    const timeline = this.#timeline!;
    const origin = performance.timeOrigin;
    const stripes: { stripe: number; startMs: number; endMs: number }[] = [];
    let start = Infinity;
    let end = -Infinity;
    for (let stripe = 0; stripe < running; stripe++) {
      const at = 2 * (slot * this.#stripes + stripe);
      if (!Number.isFinite(timeline[at])) continue; // no time recorded
      start = Math.min(start, timeline[at]);
      end = Math.max(end, timeline[at + 1]);
      stripes.push({ stripe, startMs: timeline[at] - origin, endMs: timeline[at + 1] - origin });
    }
    if (!Number.isFinite(start)) return; // every stripe sat it out (an empty bucket)
    this.#bucketTimes.set(bucket, { startMs: start - origin, endMs: end - origin, stripes });
  }

  /**
   * Resolves when every stripe handed every queued byte to the OS. Every byte a stripe sends belongs to a
   * collective, and a collective resolves only once all its sends were written, so with none pending there is
   * nothing to wait for and no round trip to the workers. (On the 2-core development VM, 2 ranks × 1
   * stripe, a 64 KiB `allReduceMean` took 0.50–0.66 ms with this shortcut and 0.62–0.96 ms without, in
   * noisy runs; the workers' own ring dominates it.)
   */
  async drain(): Promise<void> {
    if (this.#failure) throw this.#failure;
    if (this.#pending.size === 0) return;
    await Promise.all(this.#workers.map((entry) => {
      const id = this.#nextDrain++;
      return this.#request(entry, `drained ${id}`, { t: "drain", id });
    }));
  }

  /** Fails every pending and future collective with `error` and closes the stripe links. */
  abort(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    for (const [seq, pending] of this.#pending) {
      this.#pending.delete(seq);
      if (pending.copyBack) this.arena.release(pending.copyBack.offset);
      pending.reject(error);
    }
    this.#passing.clear();
    for (const entry of this.#workers) {
      for (const waiter of entry.waiters.values()) waiter.reject(error);
      entry.waiters.clear();
      entry.worker.postMessage({ t: "stop", reason: error.message } satisfies ToStripeWorker);
    }
  }

  /** Stops the workers (pending collectives fail). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const stopped = this.#workers.map((entry) =>
      this.#request(entry, "stopped", { t: "stop", reason: "striped ring closed" }).catch(() => {})
    );
    await Promise.race([Promise.all(stopped), new Promise((r) => setTimeout(r, 1000))]);
    this.abort(new Error("Cannot all-reduce after the striped ring closed"));
    for (const entry of this.#workers) entry.worker.terminate();
  }

  #request(entry: StripeWorker, key: string, message: ToStripeWorker): Promise<FromStripeWorker> {
    if (this.#failure) return Promise.reject(this.#failure);
    const waiter = Promise.withResolvers<FromStripeWorker>();
    entry.waiters.set(key, waiter);
    entry.worker.postMessage(message);
    return waiter.promise;
  }

  #onMessage(entry: StripeWorker, m: FromStripeWorker): void {
    switch (m.t) {
      case "listening":
      case "connected":
      case "stopped": {
        const waiter = entry.waiters.get(m.t);
        entry.waiters.delete(m.t);
        waiter?.resolve(m);
        return;
      }
      case "drained": {
        const key = `drained ${m.id}`;
        const waiter = entry.waiters.get(key);
        entry.waiters.delete(key);
        waiter?.resolve(m);
        return;
      }
      case "setup_failed": {
        const error = new Error(m.message);
        for (const waiter of entry.waiters.values()) waiter.reject(error);
        entry.waiters.clear();
        return;
      }
      case "done":
        this.pollCompleted();
        return;
      case "failed": {
        if (m.name === "RingOrderError") {
          // Ranks disagree on the bucket order: fail the collectives with that error (like the single ring).
          if (!this.#closed) this.abort(new RingOrderError(m.message));
          this.#reportLoss(null, m.message);
        } else this.#fail(null, m.message);
        return;
      }
      case "link_lost":
        this.#fail(m.peerRank, m.reason);
        return;
    }
  }

  #fail(peerRank: number | null, reason: string): void {
    if (this.#failure || this.#closed) return;
    if (this.#failPendingOnLinkLoss) this.abort(new Error(reason));
    this.#reportLoss(peerRank, reason);
  }

  #reportLoss(peerRank: number | null, reason: string): void {
    if (this.#linkLost || this.#closed) return;
    this.#linkLost = true;
    this.#onLinkLost(peerRank, reason);
  }
}
