/**
 * A small pool of module workers running `UrsaTask`s (see `ursa_tasks.ts`) on the machine's cores. Results
 * come back in the order of the calls that asked for them (each call has its own promise), so callers that
 * await in order stay deterministic. With `size` 0, where workers cannot start, or in a single-file bundle
 * (which has no `ursa_worker.ts` beside it), tasks run inline.
 *
 * @module
 */
import { runUrsaTask, transferablesOf, type UrsaTask, type UrsaTaskResult } from "./ursa_tasks.ts";

interface Pending {
  id: number;
  task: UrsaTask;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/**
 * Runs tasks on worker threads.
 *
 * @example
 * ```ts
 * const pool = new WorkerPool();
 * try {
 *   const out = await pool.run({ kind: "derive", derivation: "standard_v2026q2.eeg_clean", input });
 * } finally {
 *   pool.close();
 * }
 * ```
 */
export class WorkerPool {
  readonly size: number;
  readonly #workers: Worker[] = [];
  readonly #busy = new Map<Worker, Pending>();
  readonly #queue: Pending[] = [];
  #nextId = 0;

  /**
   * `size` defaults to the number of logical cores (at most 4). Where the worker module is not beside this
   * one (this module was bundled into a single file), tasks run inline.
   */
  constructor(size: number = Math.min(4, navigator.hardwareConcurrency ?? 1)) {
    let started = 0;
    const workerModuleShipped = import.meta.url.endsWith("/ursa/worker_pool.ts");
    for (let i = 0; i < (workerModuleShipped ? size : 0); i++) {
      try {
        const worker = new Worker(new URL("./ursa_worker.ts", import.meta.url).href, { type: "module" });
        worker.onmessage = (event: MessageEvent<{ id: number; result?: unknown; error?: string }>) => {
          const pending = this.#busy.get(worker);
          this.#busy.delete(worker);
          if (pending) {
            if (event.data.error !== undefined) pending.reject(new Error(event.data.error));
            else pending.resolve(event.data.result);
          }
          this.#pump();
        };
        worker.onerror = (event) => {
          event.preventDefault();
          const pending = this.#busy.get(worker);
          this.#busy.delete(worker);
          pending?.reject(new Error(`Ursa worker failed: ${event.message}`));
          this.#pump();
        };
        this.#workers.push(worker);
        started++;
      } catch {
        break; // no worker support or permission: run inline
      }
    }
    this.size = started;
  }

  /** Runs one task (inline when the pool has no workers). */
  run<T extends UrsaTask>(task: T): Promise<UrsaTaskResult<T>> {
    if (this.size === 0) return runUrsaTask(task);
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#nextId++, task, resolve: resolve as (v: unknown) => void, reject });
      this.#pump();
    });
  }

  #pump(): void {
    for (const worker of this.#workers) {
      if (this.#queue.length === 0) return;
      if (this.#busy.has(worker)) continue;
      const pending = this.#queue.shift()!;
      this.#busy.set(worker, pending);
      worker.postMessage({ id: pending.id, task: pending.task }, transferablesOf(pending.task));
    }
  }

  /** Terminates the workers; queued tasks are rejected. */
  close(): void {
    for (const worker of this.#workers) worker.terminate();
    for (const pending of [...this.#busy.values(), ...this.#queue]) {
      pending.reject(new Error("Ursa worker pool closed"));
    }
    this.#busy.clear();
    this.#queue.length = 0;
  }
}
