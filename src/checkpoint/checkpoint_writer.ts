/**
 * Writing checkpoints atomically, synchronously ({@link writeCheckpoint}) or in the background
 * ({@link CheckpointWriter}).
 *
 * Protocol (a crash at any point leaves earlier checkpoints intact and either no new checkpoint or a
 * complete one):
 * 1. validate the state and lay it out in memory (nothing touches the disk if it is invalid);
 * 2. create `<runDir>/.tmp-ckpt-step<9 digits>-<random>/` and its subdirectories;
 * 3. write every file, each fsynced as it is closed, hashing the bytes as they are written;
 * 4. fsync every subdirectory, then write `manifest.json` last, fsync it and the temporary directory;
 * 5. rename the temporary directory to `ckpt-step<9 digits>` and fsync the run directory.
 *
 * Leftover `.tmp-ckpt-*` (crashed writes) and `.trash-ckpt-*` (crashed deletions) are removed at the start
 * of the next write in the same run directory, and on resume (`findLatestValidCheckpoint`). One process
 * writes to a run directory at a time.
 *
 * @module
 */
import { dirname, join } from "node:path";
import {
  canonicalJson,
  type CheckpointState,
  CheckpointStateError,
  type TensorSet,
} from "./checkpoint_state.ts";
import { type CodeSnapshot, collectCodeVersion } from "./code_version.ts";
import {
  CHECKPOINT_DIR_PREFIX,
  checkpointDirName,
  planCheckpointFiles,
  TEMP_DIR_PREFIX,
} from "./checkpoint_layout.ts";
import {
  claimScratchDir,
  cleanStaleScratchDirs,
  releaseScratchDir,
  removeCheckpointDir,
} from "./scratch_dirs.ts";
import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_FORMAT_VERSION,
  type CheckpointManifest,
  computeCheckpointHash,
  MANIFEST_FILE,
} from "./checkpoint_manifest.ts";
import { workerModuleUrl } from "../util/worker_module.ts";
import { fsyncDirectory, pathExists, randomHex, writeFileDurable } from "./durable_fs.ts";
import { verifyCheckpoint } from "./checkpoint_reader.ts";
import { gcCheckpoints, type RetentionPlan, type RetentionPolicy } from "./retention.ts";
import {
  decodeControl,
  type SerializedError,
  type WorkerReply,
  type WorkerRequest,
} from "./checkpoint_write_protocol.ts";

/** A point of the write protocol, reported to `onProgress` (for logging and crash tests). */
export type WriteStage =
  | "temp_created"
  | "file_written"
  | "files_synced"
  | "manifest_written"
  | "renamed"
  | "done";

/** One progress report of a write. */
export interface WriteProgress {
  stage: WriteStage;
  step: number;
  /** The temporary directory (before `renamed`) or the final one. */
  dir: string;
  /** For `file_written`: the file's path inside the checkpoint. */
  file?: string;
}

/** Options of {@link writeCheckpoint}. */
export interface WriteCheckpointOptions {
  /**
   * Parent checkpoint hash recorded when `state.lineage.parentCheckpointHash` is undefined (default null).
   */
  parentHash?: string | null;
  /** The code version to record (default: collected once per process with {@link collectCodeVersion}). */
  code?: CodeSnapshot;
  /**
   * What to do when a checkpoint that verifies already exists at this step with different content:
   * `"refuse"` (default) throws; `"replace"` swaps it out. An existing checkpoint that fails verification
   * is always replaced, and one with identical content is kept as is.
   */
  onExisting?: "refuse" | "replace";
  /** Called at each protocol stage; the write waits for a returned promise. */
  onProgress?: (progress: WriteProgress) => void | Promise<void>;
}

/** What was written. */
export interface CheckpointInfo {
  /** Absolute or runDir-relative path of the checkpoint directory. */
  dir: string;
  name: string;
  step: number;
  /** The checkpoint hash (see `checkpoint_manifest.ts`). */
  hash: string;
  parentHash: string | null;
  /** Total bytes of all files including `manifest.json`. */
  bytes: number;
  /** Number of files including `manifest.json`. */
  files: number;
  durationMs: number;
  /** True when an identical checkpoint already existed and nothing was written. */
  alreadyExisted: boolean;
  /** The retention plan applied after the write, when the writer has a retention policy. */
  retention?: RetentionPlan;
}

let defaultCode: Promise<CodeSnapshot> | null = null;

/** The code version of this process, collected on first use. */
export function processCodeSnapshot(): Promise<CodeSnapshot> {
  defaultCode ??= collectCodeVersion();
  return defaultCode;
}

async function ensureRunDir(runDir: string): Promise<void> {
  if (await pathExists(runDir)) return;
  await Deno.mkdir(runDir, { recursive: true });
  await fsyncDirectory(dirname(runDir));
}

/**
 * Writes one checkpoint atomically into `runDir/ckpt-step<9 digits>/`.
 *
 * @throws {CheckpointStateError} when `state` cannot be written as given (nothing is written).
 * @example
 * ```ts
 * import { writeCheckpoint } from "./checkpoint_writer.ts";
 * const info = await writeCheckpoint("runs/demo", 100, {
 *   config: {}, model: { weights: { w: { dtype: "F32", shape: [2], data: new Float32Array(2) } } },
 *   optimizer: { tensors: {}, state: { step: 100 } }, scheduler: {}, rng: { cpu: { key: [1, 2], counter: 0 }, gpu: [] },
 *   dataloader: { epoch: 0, position: 0 }, dataHashes: { recordings: [] }, metrics: { loss: 0.5 },
 *   lineage: { parentRun: null, stepsConsumed: 100 },
 * });
 * console.log(info.dir, info.hash);
 * ```
 */
export async function writeCheckpoint(
  runDir: string,
  step: number,
  state: CheckpointState,
  options: WriteCheckpointOptions = {},
): Promise<CheckpointInfo> {
  const started = performance.now();
  const name = checkpointDirName(step);
  const code = options.code ?? await processCodeSnapshot();
  const plan = planCheckpointFiles(state, code, options.parentHash ?? null);
  const progress = options.onProgress ?? (() => {});

  await ensureRunDir(runDir);
  await cleanStaleScratchDirs(runDir);
  const temp = join(runDir, `${TEMP_DIR_PREFIX}${name.slice(CHECKPOINT_DIR_PREFIX.length)}-${randomHex(6)}`);
  const finalDir = join(runDir, name);
  claimScratchDir(temp);
  let renamed = false;
  try {
    await Deno.mkdir(temp);
    for (const sub of plan.dirs) await Deno.mkdir(join(temp, sub));
    await progress({ stage: "temp_created", step, dir: temp });

    const entries: CheckpointManifest["files"] = [];
    for (const file of plan.files) {
      const digest = await writeFileDurable(join(temp, file.path), file.chunks);
      entries.push({ path: file.path, sha256: digest.sha256, bytes: digest.bytes });
      await progress({ stage: "file_written", step, dir: temp, file: file.path });
    }
    for (const sub of plan.dirs) await fsyncDirectory(join(temp, sub));
    await fsyncDirectory(temp);
    await progress({ stage: "files_synced", step, dir: temp });

    const hash = computeCheckpointHash(entries);
    const manifest: CheckpointManifest = {
      format: CHECKPOINT_FORMAT,
      formatVersion: CHECKPOINT_FORMAT_VERSION,
      step,
      checkpointHash: hash,
      parentHash: plan.lineage.parentCheckpointHash,
      writtenAt: new Date().toISOString(),
      files: entries,
    };
    const manifestBytes = new TextEncoder().encode(canonicalJson(manifest, "manifest"));
    await writeFileDurable(join(temp, MANIFEST_FILE), [manifestBytes]);
    await fsyncDirectory(temp);
    await progress({ stage: "manifest_written", step, dir: temp });

    const info: CheckpointInfo = {
      dir: finalDir,
      name,
      step,
      hash,
      parentHash: manifest.parentHash,
      bytes: entries.reduce((sum, e) => sum + e.bytes, manifestBytes.byteLength),
      files: entries.length + 1,
      durationMs: 0,
      alreadyExisted: false,
    };

    if (await pathExists(finalDir)) {
      const existing = await verifyCheckpoint(finalDir);
      if (existing.ok && existing.manifest.checkpointHash === hash) {
        await Deno.remove(temp, { recursive: true });
        return { ...info, alreadyExisted: true, durationMs: performance.now() - started };
      }
      if (existing.ok && (options.onExisting ?? "refuse") === "refuse") {
        throw new CheckpointStateError(
          "step",
          `Cannot write checkpoint ${finalDir} as a different valid checkpoint already exists there: current hash is ${existing.manifest.checkpointHash}, new hash is ${hash} (pass onExisting: "replace" to overwrite it, or resume from it)`,
        );
      }
      await removeCheckpointDir(finalDir);
    }
    await Deno.rename(temp, finalDir);
    renamed = true;
    await fsyncDirectory(runDir);
    await progress({ stage: "renamed", step, dir: finalDir });
    info.durationMs = performance.now() - started;
    await progress({ stage: "done", step, dir: finalDir });
    return info;
  } finally {
    releaseScratchDir(temp);
    if (!renamed) await Deno.remove(temp, { recursive: true }).catch(() => {});
  }
}

/** The rejection of a queued snapshot replaced by a newer one before its write started. */
export class CheckpointSupersededError extends Error {
  /** @param step the dropped snapshot's step; @param supersededBy the step that replaced it. */
  constructor(readonly step: number, readonly supersededBy: number) {
    super(
      `Checkpoint for step ${step} was not written as a newer snapshot (step ${supersededBy}) replaced it in the queue`,
    );
    this.name = "CheckpointSupersededError";
  }
}

/** Options of {@link CheckpointWriter}. */
export interface CheckpointWriterOptions extends Omit<WriteCheckpointOptions, "parentHash"> {
  /** Parent of the first checkpoint written (e.g. the hash of the checkpoint resumed from); default null. */
  initialParentHash?: string | null;
  /**
   * When set, retention is applied after every successful write (deletions only, never of the new one).
   * `pins` is read when the snapshot is submitted.
   */
  retention?: { policy: RetentionPolicy; pins?: () => Iterable<string> };
  /**
   * Where writes run. `"worker"` (default): a dedicated worker thread, so a write advances even while the
   * caller keeps this thread busy (a training loop whose awaits rarely reach the event loop, a blocking GPU
   * submit); the snapshot is copied to it at `submit` (structured clone). `"main"`: asynchronous I/O on this
   * thread, advancing only between the caller's trips to the event loop (always used with `onProgress`).
   */
  thread?: "worker" | "main";
  /**
   * Worker thread only: hand the snapshot's `ArrayBuffer`s over to the writer thread instead of copying them.
   * `submit` then takes microseconds whatever the size, and every tensor array of the snapshot (and any
   * other view of the same buffers) is detached (length 0) afterwards. Default false: the snapshot is copied
   * (about 1 ms per MiB on the 2-core development VM) and stays usable.
   */
  transfer?: boolean;
  /**
   * Worker thread only: an idle writer thread is stopped after this long (default 60 000 ms; `flush` and
   * `close` stop it at once), as a live worker keeps the process from exiting.
   */
  idleTimeoutMs?: number;
}

interface Job {
  id: number;
  step: number;
  state: CheckpointState;
  resolve: (info: CheckpointInfo) => void;
  reject: (error: unknown) => void;
}

/**
 * Writes checkpoints in the background while training continues.
 *
 * By default the writes (and retention) run on a dedicated worker thread (`checkpoint_write_worker.ts`),
 * so they advance even while the training loop keeps this thread busy: a loop whose awaits resolve without
 * reaching the event loop, or a `queue.submit` that blocks on a software adapter, would otherwise stall a
 * main-thread write for many steps (measured on llvmpipe: the first checkpoint of a run landed 10 steps
 * late, and with `ckptEveryNSteps: 1` only every ~10th was written). `submit` copies the snapshot to the
 * worker, or hands its buffers over with `transfer: true`. The worker is started on the first submit and
 * stopped by {@link flush} once idle. `thread: "main"` (or `onProgress`) writes on this thread instead.
 * In worker mode the worker's in-flight scratch directory is unknown to this thread: do not run
 * `gcCheckpoints`/`writeCheckpoint` on the same run directory here while writes are pending.
 *
 * Policy: at most one write in flight and one snapshot queued. A snapshot submitted while another is
 * already queued replaces the queued one, whose promise rejects with {@link CheckpointSupersededError};
 * memory stays bounded at two snapshots and the trainer never waits. Each written checkpoint's parent is
 * the previous one written by this writer. The promise of every `submit` is observed internally, so
 * ignoring it never crashes the process; failures are also re-thrown by {@link flush}.
 *
 * The trainer hands over ownership of the snapshot: its arrays must not be modified until its promise
 * settles (worker mode copies them at `submit`, or detaches them with `transfer: true`).
 *
 * @example
 * ```ts
 * import { CheckpointWriter } from "./checkpoint_writer.ts";
 * const writer = new CheckpointWriter("runs/demo", { initialParentHash: null });
 * // in the training loop: writer.submit(step, snapshotOfState);   (no await)
 * await writer.flush(); // at the end: waits for everything, throws the first failure
 * ```
 */
export class CheckpointWriter {
  #running: Promise<void> | null = null;
  #queued: Job | null = null;
  #parentHash: string | null;
  #errors: unknown[] = [];
  #last: CheckpointInfo | null = null;
  #closed = false;
  #useWorker: boolean;
  readonly #workerUrl: string | null;
  #worker: Worker | null = null;
  #idleTimer: ReturnType<typeof setTimeout> | null = null;
  #control: Int32Array | null = null;
  #nextId = 1;
  /** Worker mode: submitted jobs whose promise has not settled, by id. */
  readonly #unsettled = new Map<number, Job>();
  #settledWaiters: (() => void)[] = [];

  /** @param runDir the run directory checkpoints go into. */
  constructor(readonly runDir: string, private readonly options: CheckpointWriterOptions = {}) {
    this.#parentHash = options.initialParentHash ?? null;
    // The worker module ships beside this one when Orion runs from source, and beside a bundle built by
    // scripts/build_bundle.ts; a `deno compile` binary does not carry it, so that writes on this thread.
    this.#workerUrl = workerModuleUrl(
      import.meta.url,
      "./checkpoint_write_worker.ts",
      "checkpoint_write_worker",
    );
    this.#useWorker = (options.thread ?? "worker") === "worker" && options.onProgress === undefined &&
      this.#workerUrl !== null;
    if (this.#useWorker) {
      try {
        this.#ensureWorker(); // started now (tens of ms), not inside the first checkpoint's submit
      } catch {
        this.#useWorker = false; // no worker support here: write on this thread
      }
    }
  }

  /** Snapshots not yet written: 0, 1 (in flight) or 2 (in flight + queued). */
  get pending(): number {
    if (this.#useWorker) {
      if (this.#control === null) return 0;
      const { running, queuedId } = decodeControl(Atomics.load(this.#control, 0));
      return (running ? 1 : 0) + (queuedId === 0 ? 0 : 1);
    }
    return (this.#running === null ? 0 : 1) + (this.#queued === null ? 0 : 1);
  }

  /** The last checkpoint this writer completed, or null. */
  get lastWritten(): CheckpointInfo | null {
    return this.#last;
  }

  /**
   * Hands a host-memory snapshot over for writing and returns at once.
   *
   * @returns a promise of the written checkpoint; rejects with {@link CheckpointSupersededError} when a newer
   * snapshot replaced this one in the queue, or with the write's error.
   */
  submit(step: number, state: CheckpointState): Promise<CheckpointInfo> {
    if (this.#closed) {
      return Promise.reject(
        new Error(`Cannot submit checkpoint step ${step} as the writer for ${this.runDir} is closed`),
      );
    }
    let resolve!: (info: CheckpointInfo) => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<CheckpointInfo>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {});
    const job: Job = { id: this.#nextId++, step, state, resolve, reject };
    if (this.#useWorker) {
      this.#submitToWorker(job);
      return promise;
    }
    if (this.#running === null) this.#start(job);
    else {
      const dropped = this.#queued;
      this.#queued = job;
      dropped?.reject(new CheckpointSupersededError(dropped.step, step));
    }
    return promise;
  }

  #ensureWorker(): { worker: Worker; control: Int32Array } {
    if (this.#worker === null || this.#control === null) {
      const control = new Int32Array(new SharedArrayBuffer(4));
      const worker = new Worker(this.#workerUrl!, {
        type: "module",
      });
      worker.onmessage = (event: MessageEvent<WorkerReply>) => this.#onWorkerReply(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        this.#failWorker(new Error(`Cannot write checkpoints as the writer thread failed: ${event.message}`));
      };
      const init: WorkerRequest = {
        type: "init",
        runDir: this.runDir,
        control,
        initialParentHash: this.#parentHash,
        code: this.options.code,
        onExisting: this.options.onExisting,
        retentionPolicy: this.options.retention?.policy,
      };
      worker.postMessage(init);
      this.#worker = worker;
      this.#control = control;
      this.#armIdleTimer();
    }
    return { worker: this.#worker, control: this.#control };
  }

  /**
   * A live worker keeps the process alive, so an idle one is stopped after `idleTimeoutMs` (and at once by
   * `flush`/`close`); the next submit starts another.
   */
  #armIdleTimer(): void {
    this.#clearIdleTimer();
    const timer = setTimeout(() => {
      this.#idleTimer = null;
      if (this.#unsettled.size === 0) this.#stopWorker();
    }, this.options.idleTimeoutMs ?? 60_000);
    Deno.unrefTimer(timer);
    this.#idleTimer = timer;
  }

  #clearIdleTimer(): void {
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
  }

  #submitToWorker(job: Job): void {
    const { worker, control } = this.#ensureWorker();
    let claimed = false;
    let superseded = 0;
    for (;;) {
      const word = Atomics.load(control, 0);
      const { running, queuedId } = decodeControl(word);
      claimed = !running && queuedId === 0;
      const next = claimed ? 1 : ((job.id << 1) | (running ? 1 : 0));
      if (Atomics.compareExchange(control, 0, word, next) === word) {
        superseded = claimed ? 0 : queuedId;
        break;
      }
    }
    this.#unsettled.set(job.id, job);
    this.#clearIdleTimer();
    if (superseded !== 0) {
      const dropped = this.#unsettled.get(superseded);
      this.#unsettled.delete(superseded);
      dropped?.reject(new CheckpointSupersededError(dropped.step, job.step));
    }
    const pins = [...(this.options.retention?.pins?.() ?? [])];
    const request: WorkerRequest = {
      type: "write",
      id: job.id,
      claimed,
      step: job.step,
      state: job.state,
      pins,
    };
    try {
      worker.postMessage(request, { transfer: this.options.transfer ? transferables(job.state) : [] });
    } catch (e) {
      // The state could not be copied to the writer thread (e.g. a value structured clone refuses).
      this.#settle(job.id, null, e);
    }
    job.state = null as unknown as CheckpointState; // the worker has its copy
  }

  #onWorkerReply(reply: WorkerReply): void {
    if (reply.type === "warning") {
      console.warn(reply.message);
      return;
    }
    if (reply.type === "written") {
      this.#parentHash = reply.info.hash;
      this.#last = reply.info;
      this.#settle(reply.id, reply.info, null);
    } else this.#settle(reply.id, null, deserializeError(reply.error));
  }

  #settle(id: number, info: CheckpointInfo | null, error: unknown): void {
    const job = this.#unsettled.get(id);
    if (job === undefined) return;
    this.#unsettled.delete(id);
    if (info !== null) job.resolve(info);
    else {
      this.#errors.push(error);
      job.reject(error);
    }
    if (this.#unsettled.size === 0) {
      if (this.#worker !== null) this.#armIdleTimer();
      for (const w of this.#settledWaiters.splice(0)) w();
    }
  }

  #failWorker(error: Error): void {
    for (const id of [...this.#unsettled.keys()]) this.#settle(id, null, error);
    this.#stopWorker();
  }

  #stopWorker(): void {
    this.#clearIdleTimer();
    this.#worker?.terminate();
    this.#worker = null;
    this.#control = null;
  }

  #start(job: Job): void {
    this.#running = (async () => {
      // Let the caller's synchronous code continue before any work happens on this thread.
      await new Promise((r) => setTimeout(r, 0));
      try {
        const info = await writeCheckpoint(this.runDir, job.step, job.state, {
          ...this.options,
          parentHash: this.#parentHash,
        });
        this.#parentHash = info.hash;
        this.#last = info;
        if (this.options.retention !== undefined) {
          try {
            info.retention = await gcCheckpoints(this.runDir, this.options.retention.policy, {
              pins: [...(this.options.retention.pins?.() ?? []), info.name],
            });
          } catch (e) {
            console.warn(
              `checkpoint retention after step ${job.step} failed: ${e instanceof Error ? e.message : e}`,
            );
          }
        }
        job.resolve(info);
      } catch (e) {
        this.#errors.push(e);
        job.reject(e);
      }
    })().finally(() => {
      this.#running = null;
      const next = this.#queued;
      this.#queued = null;
      if (next !== null) this.#start(next);
    });
  }

  /**
   * Waits until every submitted snapshot is written (or superseded).
   *
   * @throws the first write error since the last flush (others are attached as `AggregateError.errors`).
   */
  async flush(): Promise<void> {
    while (this.#running !== null) await this.#running;
    while (this.#unsettled.size > 0) await new Promise<void>((r) => this.#settledWaiters.push(r));
    if (this.#useWorker) this.#stopWorker(); // idle: the next submit starts another

    const errors = this.#errors;
    this.#errors = [];
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${errors.length} checkpoint writes failed`);
  }

  /** Flushes and refuses further submissions. */
  async close(): Promise<void> {
    this.#closed = true;
    try {
      await this.flush();
    } finally {
      this.#stopWorker();
    }
  }
}

/** Rebuilds an error that crossed the thread boundary, keeping `CheckpointStateError` recognisable. */
function deserializeError(e: SerializedError): Error {
  const error = e.name === "CheckpointStateError" && e.field !== undefined
    ? new CheckpointStateError(e.field, e.message)
    : Object.assign(new Error(e.message), { name: e.name });
  if (e.stack !== undefined) error.stack = e.stack;
  return error;
}

/** The distinct transferable buffers of a snapshot's tensors (shared buffers are shared, not moved). */
function transferables(state: CheckpointState): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const add = (set: TensorSet | undefined) => {
    for (const t of Object.values(set ?? {})) {
      const buffer = t.data.buffer;
      if (buffer instanceof ArrayBuffer && buffer.byteLength > 0) out.add(buffer);
    }
  };
  add(state.model.weights);
  add(state.model.ema);
  add(state.optimizer.tensors);
  return [...out];
}
