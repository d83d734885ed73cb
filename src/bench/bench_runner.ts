/**
 * Benchmarks during training: the three compute modes of `BenchCompute.mode` behind one scheduler.
 *
 * - `inline`: `submit` evaluates in the training process and resolves when done (training waits).
 * - `async` (default): `submit` queues the snapshot and returns at once; one side process at a time evaluates
 *   all suites of a snapshot (`spawnEval`, default: `deno run mod.ts eval … --json --no-record`). Training
 *   goes on; results are recorded when they arrive and handed to the next checkpoint.
 * - `separate`: like async, but one process (or launcher job, `launchEval`) per suite, started together.
 *
 * A side process that crashes (non-zero exit without a result, or unreadable output) is retried once
 * (`maxAttempts` = 2); suites that still fail, or that the process reports as failed (e.g. a leakage
 * refusal, which a retry would not change), are reported through `onFailure` — never thrown into training.
 * While one snapshot is evaluated, at most `maxQueued` wait; an older waiting periodic snapshot is dropped
 * (reported as skipped) when a newer one arrives; final snapshots are never dropped.
 *
 * A snapshot is a checkpoint directory: a regular checkpoint, or a weight-only snapshot written as one for
 * the occasion (`removeWhenDone` deletes it afterwards).
 *
 * @module
 */
import type { JsonValue } from "../checkpoint/checkpoint_state.ts";
import type { BenchCompute } from "../config/bench_compute.ts";
import { type Catalog, openCatalog } from "../ursa/catalog.ts";
import { evaluateCheckpoint, evaluateModel, readCheckpointIdentity } from "./evaluate_checkpoint.ts";
import type { BenchModel } from "./bench_model.ts";
import {
  createProcessSpawner,
  type EvalOutput,
  type EvalProcessOutput,
  type EvalRequest,
  parseEvalOutput,
  type SpawnEval,
} from "./eval_process.ts";
import { type BenchmarkResult, checkpointBenchmarks, recordBenchmarkResult } from "./results.ts";
import { parseSuiteKey } from "./registry.ts";

/** `BenchCompute.mode`. */
export type BenchComputeMode = BenchCompute["mode"];

/** Weights to benchmark. */
export interface BenchSnapshot {
  /** Optimizer step of the weights. */
  step: number;
  /** A checkpoint directory (with its manifest) holding the weights. */
  checkpointDir: string;
  /** Fraction of each suite (default: the scheduler's `partialSubset`; final evaluations use 1). */
  partialSubset?: number;
  /** A final evaluation: never dropped from the queue. */
  final?: boolean;
  /** The checkpoint hash, when known (else read from the manifest when needed). */
  checkpointHash?: string;
  /** Delete `checkpointDir` once its evaluation is over (weight-only snapshots). */
  removeWhenDone?: boolean;
}

/** A benchmark that produced no result. */
export interface BenchFailure {
  /** `crashed`: the process died (after retries); `failed`: the suite reported an error; `skipped`: dropped. */
  kind: "crashed" | "failed" | "skipped";
  step: number;
  checkpointDir: string;
  suites: string[];
  attempts: number;
  message: string;
}

/** Evaluates suites on a snapshot in this process (inline mode). */
export type InlineEvaluator = (
  snapshot: BenchSnapshot,
  suites: readonly string[],
  options: { partialSubset: number; partialSeed: number },
) => Promise<{ results: BenchmarkResult[]; failures: { suite: string; message: string }[] }>;

/** Options of {@link BenchScheduler}. */
export interface BenchSchedulerOptions {
  mode: BenchComputeMode;
  /** Suite keys (`training.benchSuites`). */
  suites: readonly string[];
  /** Default fraction of periodic evaluations (`benchCompute.partialSubset`, default 1). */
  partialSubset?: number;
  /** Seed of partial subsets (the run seed; default 0). */
  partialSeed?: number;
  /** Catalog directory for side processes and default recording. */
  catalogDir?: string;
  /** Catalog to record into (default: opened at `catalogDir` on the first result). */
  catalog?: Catalog;
  allowOverlap?: boolean;
  /** Ancestor ledgers passed to every evaluation. */
  ledgers?: string[];
  /**
   * Inline mode: the live model to evaluate at a snapshot (e.g. wrapping the trainer: `checkpointHash` of the
   * checkpoint just written, the run's ledger, `predict` = `trainer.evaluate(...).logits`). Default: the
   * checkpoint is loaded with the registered loader.
   */
  inlineModel?: (snapshot: BenchSnapshot & { checkpointHash: string }) => BenchModel | Promise<BenchModel>;
  /** Inline mode: replaces the whole in-process evaluation (takes precedence over `inlineModel`). */
  evaluateInline?: InlineEvaluator;
  /** Run name stored with inline results. */
  run?: string;
  /** Async mode: default {@link createProcessSpawner}(). */
  spawnEval?: SpawnEval;
  /** Separate mode: one call per suite; default `spawnEval`. */
  launchEval?: SpawnEval;
  /** Stores an arrived result; default records it in the catalog. Pass `null` to keep results in memory. */
  record?: ((result: BenchmarkResult) => Promise<void>) | null;
  onResult?: (result: BenchmarkResult, snapshot: BenchSnapshot) => void;
  /** Default: `console.warn` of the message. */
  onFailure?: (failure: BenchFailure) => void;
  /** Attempts per side process (default 2: one retry). */
  maxAttempts?: number;
  /** Snapshots waiting behind the running one (default 1). */
  maxQueued?: number;
}

interface Job {
  snapshot: BenchSnapshot;
  partialSubset: number;
}

/**
 * Runs the benchmark callbacks of a training run.
 *
 * @example
 * ```ts
 * const bench = new BenchScheduler({ mode: "async", suites: ["cognitive_load_eval@1"], partialSubset: 0.1, partialSeed: seed });
 * // at a bench step, after writing checkpoint `info`:
 * await bench.submit({ step, checkpointDir: info.dir });
 * // when building the next checkpoint:
 * state.benchmarks = bench.takeCheckpointBenchmarks();
 * // at the end:
 * await bench.submit({ step, checkpointDir: last.dir, final: true });
 * await bench.close();
 * ```
 */
export class BenchScheduler {
  readonly mode: BenchComputeMode;
  readonly suites: readonly string[];
  readonly #options: BenchSchedulerOptions;
  readonly #partialSubset: number;
  readonly #partialSeed: number;
  readonly #maxAttempts: number;
  readonly #maxQueued: number;
  readonly #queue: Job[] = [];
  #running: Promise<void> | null = null;
  #arrived: BenchmarkResult[] = [];
  readonly #results: BenchmarkResult[] = [];
  readonly #failures: BenchFailure[] = [];
  #recording: Promise<void> = Promise.resolve();
  #catalog: Catalog | null = null;
  #ownsCatalog = false;
  #idle: (() => void)[] = [];

  constructor(options: BenchSchedulerOptions) {
    if (!["inline", "async", "separate"].includes(options.mode)) {
      throw new Error(
        `Cannot schedule benchmarks in mode ${
          JSON.stringify(options.mode)
        }: benchCompute.mode must be "inline", "async" or "separate"`,
      );
    }
    for (const s of options.suites) parseSuiteKey(s);
    this.mode = options.mode;
    this.suites = [...options.suites];
    this.#options = options;
    this.#partialSubset = options.partialSubset ?? 1;
    this.#partialSeed = options.partialSeed ?? 0;
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? 2);
    this.#maxQueued = Math.max(0, options.maxQueued ?? 1);
    this.#catalog = options.catalog ?? null;
  }

  /**
   * Benchmarks `snapshot` on every suite. Inline: resolves after the evaluation. Async/separate: resolves once
   * queued. Never rejects because of an evaluation (failures go to `onFailure`).
   */
  async submit(snapshot: BenchSnapshot): Promise<void> {
    const job: Job = {
      snapshot,
      partialSubset: snapshot.partialSubset ?? (snapshot.final ? 1 : this.#partialSubset),
    };
    if (this.suites.length === 0) return;
    if (this.mode === "inline") {
      await this.#runInline(job);
      await this.#recording;
      return;
    }
    const waiting = this.#queue.filter((j) => !j.snapshot.final);
    if (this.#running && waiting.length >= this.#maxQueued && !snapshot.final && waiting.length > 0) {
      const dropped = waiting[0];
      this.#queue.splice(this.#queue.indexOf(dropped), 1);
      this.#fail({
        kind: "skipped",
        step: dropped.snapshot.step,
        checkpointDir: dropped.snapshot.checkpointDir,
        suites: [...this.suites],
        attempts: 0,
        message:
          `skipped the benchmark of step ${dropped.snapshot.step} as step ${snapshot.step} is newer and ` +
          `the evaluation of an earlier snapshot is still running`,
      });
      await this.#cleanup(dropped.snapshot);
    }
    this.#queue.push(job);
    this.#pump();
  }

  /**
   * The final evaluation: whole suites (partialSubset 1) on the last checkpoint and, when it is another one,
   * the best; then waits for everything to finish (side results included).
   */
  async submitFinal(last: BenchSnapshot, best?: BenchSnapshot | null): Promise<void> {
    await this.submit({ ...last, final: true, partialSubset: 1 });
    if (best && best.checkpointDir !== last.checkpointDir) {
      await this.submit({ ...best, final: true, partialSubset: 1 });
    }
    await this.drain();
  }

  /** Results that arrived since the last call (consumed). */
  takeArrived(): BenchmarkResult[] {
    const out = this.#arrived;
    this.#arrived = [];
    return out;
  }

  /** `CheckpointState.benchmarks` for the next checkpoint: the newest arrived result per suite (consumed). */
  takeCheckpointBenchmarks(): Record<string, JsonValue> {
    return checkpointBenchmarks(this.takeArrived());
  }

  /** Every result so far. */
  get results(): readonly BenchmarkResult[] {
    return this.#results;
  }

  /** Every failure so far. */
  get failures(): readonly BenchFailure[] {
    return this.#failures;
  }

  /** Whether an evaluation is running or queued. */
  get busy(): boolean {
    return this.#running !== null || this.#queue.length > 0;
  }

  /** Resolves when nothing is running or queued and every arrived result is recorded. */
  async drain(): Promise<void> {
    while (this.busy) await new Promise<void>((resolve) => this.#idle.push(resolve));
    await this.#recording;
  }

  /** Drains, then closes a catalog the scheduler opened. */
  async close(): Promise<void> {
    await this.drain();
    if (this.#ownsCatalog) this.#catalog?.close();
    this.#catalog = null;
  }

  #pump(): void {
    if (this.#running || this.#queue.length === 0) {
      if (!this.#running && this.#queue.length === 0) { for (const r of this.#idle.splice(0)) r(); }
      return;
    }
    const job = this.#queue.shift()!;
    this.#running = this.#runSide(job).finally(() => {
      this.#running = null;
      this.#pump();
    });
  }

  #request(job: Job, suites: string[]): EvalRequest {
    return {
      checkpointDir: job.snapshot.checkpointDir,
      suites,
      partialSubset: job.partialSubset,
      partialSeed: this.#partialSeed,
      catalogDir: this.#options.catalogDir,
      allowOverlap: this.#options.allowOverlap,
      ledgers: this.#options.ledgers,
    };
  }

  async #runSide(job: Job): Promise<void> {
    try {
      if (this.mode === "async") {
        const spawn = this.#options.spawnEval ?? createProcessSpawner();
        await this.#attempt(job, spawn, [...this.suites]);
      } else {
        const launch = this.#options.launchEval ?? this.#options.spawnEval ?? createProcessSpawner();
        await Promise.all(this.suites.map((s) => this.#attempt(job, launch, [s])));
      }
    } catch (e) {
      // #attempt reports its own failures; this only guards against bugs in reporting callbacks.
      this.#fail({
        kind: "failed",
        step: job.snapshot.step,
        checkpointDir: job.snapshot.checkpointDir,
        suites: [...this.suites],
        attempts: 0,
        message: `benchmark scheduling failed: ${e instanceof Error ? e.message : String(e)}`,
      });
    } finally {
      await this.#recording;
      await this.#cleanup(job.snapshot);
    }
  }

  /** Runs `suites` of `job` through `spawn`, retrying crashes; reports what still has no result. */
  async #attempt(job: Job, spawn: SpawnEval, suites: string[]): Promise<void> {
    let remaining = suites;
    let message = "";
    let attempts = 0;
    while (remaining.length > 0 && attempts < this.#maxAttempts) {
      attempts++;
      let out: EvalProcessOutput;
      try {
        out = await spawn(this.#request(job, remaining));
      } catch (e) {
        message = `could not start the evaluation process: ${e instanceof Error ? e.message : String(e)}`;
        continue;
      }
      let parsed: EvalOutput | null = null;
      try {
        parsed = parseEvalOutput(out.stdout);
      } catch (e) {
        message = `${
          out.code === 0 ? "exited 0" : `exited with code ${out.code}`
        } without a readable result (${(e as Error).message})${tail(out.stderr)}`;
      }
      if (!parsed) continue;
      for (const r of parsed.results) {
        if (remaining.includes(r.suite_key)) {
          remaining = remaining.filter((s) => s !== r.suite_key);
          this.#accept(r, job.snapshot);
        }
      }
      const reported = parsed.failures.filter((f) => remaining.includes(f.suite));
      for (const f of reported) {
        this.#fail({
          kind: "failed",
          step: job.snapshot.step,
          checkpointDir: job.snapshot.checkpointDir,
          suites: [f.suite],
          attempts,
          message: f.message,
        });
      }
      remaining = remaining.filter((s) => !reported.some((f) => f.suite === s));
      if (remaining.length > 0) {
        message = `exited with code ${out.code} without results for ${remaining.join(", ")}${
          tail(out.stderr)
        }`;
      }
    }
    if (remaining.length > 0) {
      this.#fail({
        kind: "crashed",
        step: job.snapshot.step,
        checkpointDir: job.snapshot.checkpointDir,
        suites: remaining,
        attempts,
        message:
          `the evaluation process for ${
            remaining.join(", ")
          } at step ${job.snapshot.step} failed ${attempts} ` +
          `time(s); training continues without this result. Last error: ${message}`,
      });
    }
  }

  async #runInline(job: Job): Promise<void> {
    const evaluate: InlineEvaluator = this.#options.evaluateInline ?? (async (snapshot, suites, o) => {
      const common = { ...o, allowOverlap: this.#options.allowOverlap, record: false };
      if (this.#options.inlineModel) {
        const checkpointHash = snapshot.checkpointHash ??
          (await readCheckpointIdentity(snapshot.checkpointDir)).checkpointHash;
        const model = await this.#options.inlineModel({ ...snapshot, checkpointHash });
        const out = await evaluateModel(model, suites, {
          ...common,
          catalog: await this.#catalogForRecording(),
          run: this.#options.run ?? null,
          step: snapshot.step,
        });
        return { results: out.outcomes.map((x) => x.result), failures: out.failures };
      }
      const out = await evaluateCheckpoint(snapshot.checkpointDir, suites, {
        ...common,
        catalog: await this.#catalogForRecording(),
        catalogDir: this.#options.catalogDir,
        ledgers: this.#options.ledgers,
      });
      return { results: out.outcomes.map((x) => x.result), failures: out.failures };
    });
    try {
      const out = await evaluate(job.snapshot, this.suites, {
        partialSubset: job.partialSubset,
        partialSeed: this.#partialSeed,
      });
      for (const r of out.results) this.#accept(r, job.snapshot);
      for (const f of out.failures) {
        this.#fail({
          kind: "failed",
          step: job.snapshot.step,
          checkpointDir: job.snapshot.checkpointDir,
          suites: [f.suite],
          attempts: 1,
          message: f.message,
        });
      }
    } catch (e) {
      this.#fail({
        kind: "failed",
        step: job.snapshot.step,
        checkpointDir: job.snapshot.checkpointDir,
        suites: [...this.suites],
        attempts: 1,
        message: e instanceof Error ? e.message : String(e),
      });
    } finally {
      await this.#cleanup(job.snapshot);
    }
  }

  async #catalogForRecording(): Promise<Catalog> {
    if (!this.#catalog) {
      this.#catalog = await openCatalog(this.#options.catalogDir);
      this.#ownsCatalog = true;
    }
    return this.#catalog;
  }

  #accept(result: BenchmarkResult, snapshot: BenchSnapshot): void {
    const record = this.#options.record === undefined
      ? async (r: BenchmarkResult) => await recordBenchmarkResult(await this.#catalogForRecording(), r)
      : this.#options.record;
    this.#recording = this.#recording.then(async () => {
      try {
        if (record) await record(result);
      } catch (e) {
        this.#fail({
          kind: "failed",
          step: snapshot.step,
          checkpointDir: snapshot.checkpointDir,
          suites: [result.suite_key],
          attempts: 1,
          message: `the result arrived but could not be recorded: ${
            e instanceof Error ? e.message : String(e)
          }`,
        });
      }
    });
    this.#results.push(result);
    this.#arrived.push(result);
    this.#options.onResult?.(result, snapshot);
  }

  #fail(failure: BenchFailure): void {
    this.#failures.push(failure);
    try {
      (this.#options.onFailure ?? ((f: BenchFailure) => console.warn(`benchmark ${f.kind}: ${f.message}`)))(
        failure,
      );
    } catch {
      // a throwing reporter must not reach training
    }
  }

  async #cleanup(snapshot: BenchSnapshot): Promise<void> {
    if (!snapshot.removeWhenDone) return;
    try {
      await Deno.remove(snapshot.checkpointDir, { recursive: true });
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        this.#fail({
          kind: "failed",
          step: snapshot.step,
          checkpointDir: snapshot.checkpointDir,
          suites: [],
          attempts: 0,
          message: `could not remove the weight snapshot ${snapshot.checkpointDir}: ${(e as Error).message}`,
        });
      }
    }
  }
}

function tail(stderr: string): string {
  const t = stderr.trim();
  return t.length === 0 ? "" : `; stderr: ${t.length > 600 ? `…${t.slice(-600)}` : t}`;
}
