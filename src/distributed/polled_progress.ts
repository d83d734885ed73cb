/**
 * Driving polled collectives ({@link PolledRing}, {@link PolledMesh}): a thread with nothing better to do spins
 * over them ({@link spinPolledUntil}), and a background loop waits in `poll(2)` on a runtime thread while the
 * thread is free ({@link PolledWatcher}). Several engines share one thread: the rank's ring and its mesh
 * move together in one spin, so neither starves while the other is waited for.
 *
 * @module
 */
import { type PolledSocket, PolledSocket as Socket, waitAny } from "./polled_socket.ts";

/** A set of collectives moved by polling its sockets. */
export interface PolledEngine {
  /** Moves every collective and send as far as it goes without waiting; true when anything moved. */
  progress(): boolean;
  /** Whether collectives or sends are left (false once the engine failed: nothing moves any more). */
  readonly busy: boolean;
  /** The sockets and events the engine waits on now. */
  waits(): Array<{ socket: PolledSocket; events: number }>;
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
