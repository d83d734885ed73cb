/**
 * What a training rank sees of the distributed job: its identity, the collectives, checkpoint commits and
 * stop notifications. {@link SingleRankContext} is the no-op implementation for world size 1 (no
 * coordinator, no sockets); `joinJob` (rank_client.ts) returns the networked one.
 *
 * @module
 */
import { bf16CodecFor } from "./bf16_codec.ts";
import { SharedReduceArena } from "./reduce_arena.ts";
import type { CollectiveTimes } from "./ring_all_reduce.ts";

/** Why a rank must stop. */
export interface StopEvent {
  /**
   * `stopped`: the coordinator ended this generation (another rank was lost or misbehaved);
   * `coordinator_lost`: the coordinator's socket closed or went silent;
   * `job_failed`: the coordinator gave up (restarts exhausted).
   */
  kind: "stopped" | "coordinator_lost" | "job_failed";
  reason: string;
  /** True when the coordinator will re-rendezvous: exit and let the node agent restart this rank. */
  restartPlanned: boolean;
}

/** Rejection of every pending distributed operation once the rank was told to stop. */
export class DistributedStopError extends Error {
  constructor(readonly event: StopEvent) {
    super(`Distributed job stopped (${event.kind}): ${event.reason}`);
    this.name = "DistributedStopError";
  }
}

/** Process exit code of a rank stopped for a planned restart (the node agent restarts it). */
export const EXIT_RESTART = 75;
/** Process exit code of a rank whose job is over without a restart (coordinator lost or job failed). */
export const EXIT_JOB_FAILED = 76;

/** The exit code a rank process should use after `event`. */
export function exitCodeForStop(event: StopEvent): number {
  return event.restartPlanned ? EXIT_RESTART : EXIT_JOB_FAILED;
}

/** A JSON-compatible value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Options of {@linkcode DistributedContext.startBucket}. */
export interface StartBucketOptions {
  /** Reduce on the stripe workers whatever the size (default false: by the size rule). */
  offThread?: boolean;
  /**
   * bf16 gradient compression, for a context whose {@linkcode DistributedContext.bf16Buckets} is true: the
   * values arrive as bf16 bits here (same length as the bucket, both from `sharedBucket`; the bucket's
   * contents are overwritten). When the collective resolves the bucket holds the f32 mean and this array its
   * bf16 rounding (nearest even). Stripe workers do the widening and rounding on their threads.
   */
  bf16?: Uint16Array;
}

/**
 * The distributed layer as a rank's training loop uses it.
 *
 * Rules: every rank calls the collectives (`allReduceMean`, `startBucket`, `barrier`, `broadcastJson`,
 * `reportCheckpointPart`) in the same order; buckets are started in the same fixed order on every rank.
 *
 * @example
 * ```ts
 * const ctx = worldSize === 1 ? new SingleRankContext({ config }) : await joinJob({ ... });
 * await ctx.allReduceMean(gradientBuckets);          // in place: mean over ranks, bit-identical everywhere
 * await ctx.reportCheckpointPart(step);              // after this rank wrote its part of checkpoint `step`
 * await ctx.waitCheckpointCommitted(step);           // every rank wrote: the checkpoint is complete
 * await ctx.close();
 * ```
 */
export interface DistributedContext {
  /** Global rank, 0..worldSize−1. */
  readonly rank: number;
  /** Number of ranks (nodes × GPUs per node). */
  readonly worldSize: number;
  /** Rank among the processes of this host. */
  readonly localRank: number;
  /** Processes on this host. */
  readonly localWorldSize: number;
  /** Job id the rank joined. */
  readonly jobId: string;
  /** Rendezvous generation, 0 for the first; increments on every elastic restart. */
  readonly generation: number;
  /** Restarts so far. */
  readonly restartCount: number;
  /** Last checkpoint step every rank reported written, to resume from; null to start fresh. */
  readonly resumeStep: number | null;
  /** The resolved config distributed by the coordinator (opaque JSON). */
  readonly config: unknown;
  /** Mean over ranks of each bucket, in place, in array order; resolves when all are done and sent. */
  allReduceMean(buckets: readonly Float32Array[]): Promise<void>;
  /**
   * Starts the mean all-reduce of one bucket (for overlap with backward). `index` is the bucket's position
   * in the fixed order; call in that order on every rank. Resolves when `data` holds the mean.
   * `options.offThread`: reduce it on the stripe workers whatever its size (when this rank has stripes), for
   * a caller that blocks its thread while the reduction runs; small buckets otherwise take the ring on this
   * thread, which advances only when the thread's event loop runs. Every rank must pass the same value for
   * the same bucket.
   */
  startBucket(index: number, data: Float32Array, options?: StartBucketOptions): Promise<void>;
  /**
   * Settles the buckets whose reduction other threads (stripe workers) have finished, without an event-loop
   * turn: their {@link startBucket} promises resolve in microtasks. For a thread that blocks for long stretches
   * (a training step waiting on buffer maps), where a completion message would wait for its next turn. Returns
   * how many were settled (0 when everything reduces on this thread).
   *
   * With `untilMs` (this thread's `performance.now()` time), first blocks this thread until every collective
   * running on other threads has finished or `untilMs` has passed, whichever comes first: for a thread that
   * would otherwise block in a map anyway, so it can write reduced buckets back while the GPU still works.
   * Nothing else on this thread advances meanwhile. Without collectives on other threads it returns at once.
   *
   * Collectives on the rank's polled ring (`polled_ring.ts`) advance in every call: without `untilMs` as
   * far as they go without waiting, with it by busy-polling their links (up to 50 ms) first.
   */
  pollCollectives(untilMs?: number): number;
  /**
   * Busy-polls the links of this thread's polled-ring collectives until they have finished or `untilMs`
   * passed, without waiting for collectives on other threads; returns how many finished. For a thread with
   * nothing else to do until its last bucket is reduced. Optional: contexts without a polled ring omit it.
   */
  spinPolled?(untilMs: number): number;
  /**
   * When the last collective of bucket index `index` ran (`performance.now()` time of this thread), on the
   * stripe workers or this thread's ring; for traces. Optional.
   */
  collectiveTimes?(index: number): CollectiveTimes | undefined;
  /**
   * A zero-filled bucket that {@link startBucket} reduces without copies (a view into the striped ring's
   * shared arena; a plain Float32Array without stripes). Callers that reduce the same buckets every step
   * keep them: reused memory also saves the page faults of fresh buffers.
   */
  sharedBucket(length: number): Float32Array;
  /**
   * The shared memory that {@link sharedBucket}'s arrays are views of (a `SharedReduceArena`'s), so host
   * kernels (the bf16 codec of gradient compression) can work on them in place; null or absent when they
   * are plain arrays.
   */
  readonly bucketMemory?: WebAssembly.Memory | null;
  /** Whether {@link startBucket} takes {@linkcode StartBucketOptions.bf16} (absent: false). */
  readonly bf16Buckets?: boolean;
  /**
   * Whether buckets reduced on this thread go to the polled ring (`polled_ring.ts`), whose sends leave at
   * {@link startBucket} without an event-loop turn (absent: false).
   */
  readonly polledRing?: boolean;
  /** Resolves when every queued outgoing byte was handed to the OS. */
  flush(): Promise<void>;
  /**
   * Tells the coordinator this rank's thread may send no heartbeat for up to `ms` from now (a known long
   * synchronous phase, e.g. compiling GPU pipelines in the first steps, which can block it for seconds); the
   * coordinator then declares it hung only after that. `0` ends the announcement (normal detection again).
   * The rank does not judge the coordinator's silence meanwhile either (its own thread may not read the
   * coordinator's messages in time): a crashed coordinator is still seen at once (its socket closes), a
   * frozen one 5 s after the phase. Resolves once the message is on the wire, so the caller may block right
   * after.
   */
  announceBusy(ms: number, what: string): Promise<void>;
  /** Resolves when every rank reached the barrier `name` (names must agree). */
  barrier(name: string): Promise<void>;
  /** Root passes `value`; every rank (root included) gets root's value. */
  broadcastJson<T extends Json>(value: T | undefined, root: number): Promise<T>;
  /** Reports that this rank wrote its part of checkpoint `step`; `rank` defaults to (and must be) this rank. */
  reportCheckpointPart(step: number, rank?: number): Promise<void>;
  /** Resolves once every rank reported its part of `step` (the checkpoint is committed). */
  waitCheckpointCommitted(step: number): Promise<void>;
  /** Registers a stop callback; returns an unsubscribe function. */
  onStop(callback: (event: StopEvent) => void): () => void;
  /** Tells the coordinator this rank finished and waits for the job to complete everywhere. */
  close(): Promise<void>;
}

/** Throws unless `rank` is undefined or equals `self` (a rank reports only its own checkpoint part). */
export function checkOwnRank(rank: number | undefined, self: number): void {
  if (rank !== undefined && rank !== self) {
    throw new RangeError(
      `Cannot report a checkpoint part for rank ${rank} as this process is rank ${self}: ` +
        `each rank reports only its own part (omit the rank argument)`,
    );
  }
}

/**
 * World size 1: collectives are identities, checkpoints commit when reported.
 *
 * @example
 * ```ts
 * const ctx = new SingleRankContext({ config, resumeStep: null });
 * await ctx.allReduceMean(buckets); // no-op
 * ```
 */
export class SingleRankContext implements DistributedContext {
  readonly rank = 0;
  readonly worldSize = 1;
  readonly localRank = 0;
  readonly localWorldSize = 1;
  readonly generation = 0;
  readonly restartCount = 0;
  readonly jobId: string;
  readonly resumeStep: number | null;
  readonly config: unknown;
  readonly #committed = new Set<number>();

  constructor(options: { config?: unknown; resumeStep?: number | null; jobId?: string } = {}) {
    this.config = options.config ?? null;
    this.resumeStep = options.resumeStep ?? null;
    this.jobId = options.jobId ?? "local";
  }

  allReduceMean(_buckets: readonly Float32Array[]): Promise<void> {
    return Promise.resolve();
  }

  /** One rank: a bucket's mean is itself; bf16 values are only widened (their rounding is themselves). */
  readonly bf16Buckets: boolean = true;

  startBucket(_index: number, data: Float32Array, options?: StartBucketOptions): Promise<void> {
    if (options?.bf16) bf16CodecFor(this.bucketMemory).unpack(options.bf16, data);
    return Promise.resolve();
  }

  pollCollectives(): number {
    return 0;
  }

  /** Buckets come from this arena (one rank reduces nothing, but host kernels run on them in place). */
  #arena: SharedReduceArena | null = null;

  sharedBucket(length: number): Float32Array {
    this.#arena ??= new SharedReduceArena(length * 4);
    return this.#arena.zerosOrPlain(length);
  }

  get bucketMemory(): WebAssembly.Memory | null {
    return this.#arena?.memory ?? null;
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  announceBusy(_ms: number, _what: string): Promise<void> {
    return Promise.resolve();
  }

  barrier(_name: string): Promise<void> {
    return Promise.resolve();
  }

  broadcastJson<T extends Json>(value: T | undefined, root: number): Promise<T> {
    if (root !== 0) {
      throw new RangeError(`Cannot broadcast from root ${root} as the world size is 1: use root 0`);
    }
    if (value === undefined) {
      throw new TypeError("Cannot broadcast as the root passed no value: pass the value on root");
    }
    return Promise.resolve(structuredClone(value));
  }

  reportCheckpointPart(step: number, rank?: number): Promise<void> {
    checkOwnRank(rank, 0);
    this.#committed.add(step);
    return Promise.resolve();
  }

  waitCheckpointCommitted(step: number): Promise<void> {
    if (!this.#committed.has(step)) {
      return Promise.reject(
        new Error(
          `Cannot wait for checkpoint step ${step} as no part was reported: call reportCheckpointPart first`,
        ),
      );
    }
    return Promise.resolve();
  }

  onStop(_callback: (event: StopEvent) => void): () => void {
    return () => {};
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
