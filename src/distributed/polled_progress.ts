/**
 * Driving polled collectives ({@link PolledRing}, {@link PolledMesh}): a thread with nothing better to do spins
 * over them ({@link spinPolledUntil}), and a background loop waits in `poll(2)` on a runtime thread while the
 * thread is free ({@link PolledWatcher}). Several engines share one thread: the rank's ring and its mesh
 * move together in one spin, so neither starves while the other is waited for.
 *
 * @module
 */
import { type PolledSocket, PolledSocket as Socket, waitAny } from "./polled_socket.ts";
import type { CollectiveTimes } from "./ring_all_reduce.ts";

/** A set of collectives moved by polling its sockets. */
export interface PolledEngine {
  /** Moves every collective and send as far as it goes without waiting; true when anything moved. */
  progress(): boolean;
  /** Whether collectives or sends are left (false once the engine failed: nothing moves any more). */
  readonly busy: boolean;
  /** The sockets and events the engine waits on now. */
  waits(): Array<{ socket: PolledSocket; events: number }>;
}

/** What a {@link CollectiveQueue} needs of a collective. */
export interface QueuedCollective {
  /** Index in the fixed bucket order. */
  bucket: number;
  /** When it was started, and when its first message was processed (`performance.now()` time). */
  startMs: number;
  firstChunkMs: number;
  resolve(): void;
  reject(error: Error): void;
}

/**
 * The collectives of one polled engine, run one after another in start order: the head runs, and the next
 * begins (`begin`) when the head finishes. Keeps the count finished and, for traces, when each bucket index's
 * collective last ran.
 */
export class CollectiveQueue<C extends QueuedCollective> {
  readonly #items: C[] = [];
  readonly #begin: (c: C) => void;
  readonly #bucketTimes = new Map<number, CollectiveTimes>();
  #completed = 0;

  /** `begin` starts a collective's first sends when it becomes the head. */
  constructor(begin: (c: C) => void) {
    this.#begin = begin;
  }

  /** Collectives started and not finished. */
  get length(): number {
    return this.#items.length;
  }

  /** The collective running now (the oldest not finished). */
  get head(): C | undefined {
    return this.#items[0];
  }

  /** Collectives finished so far (a counter: compare before and after a spin). */
  get completed(): number {
    return this.#completed;
  }

  /** When each bucket index's collective last ran (`performance.now()` time). */
  get bucketTimes(): ReadonlyMap<number, CollectiveTimes> {
    return this.#bucketTimes;
  }

  /** Adds `c` as the newest; it begins at once when nothing else runs. */
  push(c: C): void {
    this.#items.push(c);
    if (this.#items.length === 1) this.#begin(c);
  }

  /** Ends the head: records its times, resolves it, and begins the next. */
  finishHead(): void {
    const c = this.#items.shift()!;
    this.#completed++;
    this.#bucketTimes.set(c.bucket, {
      startMs: c.startMs,
      firstChunkMs: c.firstChunkMs,
      endMs: performance.now(),
    });
    c.resolve();
    const next = this.#items[0];
    if (next) this.#begin(next);
  }

  /** Rejects every collective with `error` and forgets them. */
  rejectAll(error: Error): void {
    for (const c of this.#items.splice(0)) c.reject(error);
  }
}

let pollTable = new Uint8Array(16);

/**
 * Drives `engines` on this thread until none is busy or `untilMs` (`performance.now()` time) passes:
 * busy-polls, and sleeps in `poll(2)` (≤ 1 ms at a time, on every socket any engine waits on) once nothing
 * moved for `spinMs`. Returns true when none is busy.
 *
 * @example
 * ```ts ignore
 * ring.start(0, small);
 * mesh.start(0, tiny);
 * spinPolledUntil([ring, mesh], performance.now() + 50, 1);
 * ```
 */
export function spinPolledUntil(engines: readonly PolledEngine[], untilMs: number, spinMs: number): boolean {
  let quietSince = performance.now();
  while (engines.some((e) => e.busy)) {
    let moved = false;
    for (const e of engines) if (e.busy && e.progress()) moved = true;
    if (moved) {
      quietSince = performance.now();
      continue;
    }
    const now = performance.now();
    if (now >= untilMs) return false;
    if (now - quietSince >= spinMs) {
      const waits = engines.flatMap((e) => (e.busy ? e.waits() : []));
      if (pollTable.length < 8 * waits.length) pollTable = new Uint8Array(8 * waits.length);
      waitAny(waits, Math.min(1, untilMs - now), pollTable);
    }
  }
  return true;
}

/**
 * Keeps one engine moving while its thread is free: {@link watch} starts a loop (unless one runs) that waits
 * off this thread in `poll(2)` on the engine's sockets and calls `progress()`, until the engine is idle.
 */
export class PolledWatcher {
  readonly #engine: PolledEngine;
  #watching = false;

  constructor(engine: PolledEngine) {
    this.#engine = engine;
  }

  /** Starts the loop unless one runs. Call after starting a collective. */
  watch(): void {
    if (this.#watching) return;
    this.#watching = true;
    void this.#loop();
  }

  /**
   * The loop. It lowers `#watching` in the same synchronous stretch in which it finds nothing left (not in
   * a later microtask): a collective started before then, in the same task, would otherwise find the flag
   * up and no loop to carry it.
   */
  async #loop(): Promise<void> {
    try {
      while (this.#engine.busy) {
        await Socket.readyAny(this.#engine.waits(), 50);
        this.#engine.progress();
      }
    } finally {
      this.#watching = false;
    }
  }
}
