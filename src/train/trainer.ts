/**
 * The training step engine: one command buffer per optimizer step (batch upload, forward, backward,
 * gradient-sync hook, optimizer, EMA), losses and gradient norms copied into a GPU ring and read back
 * asynchronously every few steps, so the CPU never waits on the GPU inside the loop.
 *
 * What it does not know about: configs, catalogs and files — `train_run.ts` wires those.
 *
 * Matmul autotuning (`TrainerSettings.autotune`, see `step_autotune.ts`): the first step loads the adapter's
 * cached tuning table; with `"tune"` the first recorded step's matmul shapes are timed right after it and
 * the step is captured again with the tuned kernels. Results are bitwise the same either way.
 *
 * Precision: `32-true` runs f32 throughout; `16-mixed` and `bf16-mixed` run the model's linear layers on
 * f16/bf16 copies of their inputs and weights (f32 master weights, gradients, optimizer state and outputs;
 * see `src/ops/matmul.ts`), and `16-mixed` adds dynamic loss scaling with a GPU grad scaler
 * (`src/optim/grad_scaler.ts`) whose scale and skipped-step count ride in the metrics ring.
 *
 * @module
 */
import type { Gpu } from "../gpu/gpu.ts";
import type { GpuBuffer } from "../gpu/buffer_pool.ts";
import type { PoyoBatch } from "../data/batch.ts";
import {
  batchUploadArrays,
  type DeviceBatch,
  POYO,
  type PoyoVocabulary,
  uploadBatch,
} from "../models/poyo.ts";
import type { CapturedGraph, DetachedCommands } from "../gpu/gpu.ts";
import { StagedWrites } from "../gpu/staged_writes.ts";
import type { ResolvedPoyoKwargs } from "../models/poyo_kwargs.ts";
import {
  FlatOptimizer,
  type OptimizerSettings,
  type OptimizerState,
  type OptimizerStateHost,
} from "../optim/optimizer.ts";
import { scheduledValues, type ScheduleSettings } from "../optim/scheduler.ts";
import {
  DEFAULT_GRAD_SCALER,
  GradScaler,
  type GradScalerSettings,
  type GradScalerState,
} from "../optim/grad_scaler.ts";
import { backward, noGrad } from "../tensor/autograd.ts";
import { type HalfDType, Scope, Tensor } from "../tensor/tensor.ts";
import { scale } from "../ops/mod.ts";
import { StepAutotuner, type StepAutotuneReport, type StepAutotuneSettings } from "./step_autotune.ts";
import { BucketReadiness } from "./bucket_readiness.ts";

/**
 * Exchanges gradients between ranks during backward (not used on one rank). The step engine submits the last
 * micro-batch's backward in segments: a segment ends as soon as the next bucket's gradients are final, with
 * that bucket's read-back recorded, so the exchange overlaps the rest of backward.
 */
export interface GradientSync {
  readonly worldSize: number;
  /**
   * Whether backward is cut into segments so buckets travel while it continues (default true; false reads
   * every bucket once backward is done, for comparison).
   */
  readonly overlapBackward?: boolean;
  /**
   * Starts one step's exchange over the store's flat gradient buffer; `paramOffsets` (where each parameter
   * starts) lets it form buckets of whole parameters.
   */
  begin(grads: GpuBuffer, elements: number, paramOffsets?: readonly number[]): GradientExchange;
}

/** One step's gradient exchange ({@linkcode GradientSync.begin}). */
export interface GradientExchange {
  /**
   * The buckets over the flat gradient, [start, end) in f32 elements, in the order every rank hands them on
   * (the same on every rank: PyTorch DDP's rule).
   */
  readonly buckets: readonly (readonly [number, number])[];
  /**
   * Records bucket `index`'s read-back (called in index order, once the commands that make its gradients
   * final are recorded, before the submit that carries them).
   */
  readBucket(index: number): void;
  /**
   * Called after each segment's submit, before the next segment is submitted (a replayed step encodes the
   * next segment first): hands earlier buckets on, then maps this segment's (the thread waits for the GPU to
   * finish it). `spare(deadline)`, when given, runs after the exchange's own host work and before the map:
   * work of the caller's that should use the time left until `deadline` (a `performance.now()` value, or
   * `Infinity` when the exchange has no estimate) and no more.
   */
  submitted(spare?: (deadline: number) => void): Promise<void>;
  /**
   * The host work of the coming {@linkcode submitted} (hand earlier buckets on, write reduced ones back),
   * done ahead of other host work at that boundary: at the last boundary the step engine calls it before
   * uploading the next step's batches, so the buckets mapped at the boundary before start their all-reduce
   * first. `spare` as for {@linkcode submitted}.
   */
  hostWork(spare?: (deadline: number) => void): Promise<void>;
  /**
   * Every bucket was read: resolves once all are averaged and written back (queue-ordered). An exchange
   * may call `whileReducing` (at most once) once the last buckets' all-reduce has started, for the caller to
   * record the commands that read the averaged gradient while this thread would wait: the write-backs are
   * queue writes, so they land before the submit that carries them. If `finish` then rejects, the caller
   * must drop what it recorded.
   */
  finish(whileReducing?: () => void): Promise<void>;
  /** Abandons the exchange after an error (releases the read-backs). */
  cancel(): Promise<void>;
}

/** Settings of the step engine. */
export interface TrainerSettings {
  seed: number;
  rank: number;
  optimizer: OptimizerSettings;
  schedule: ScheduleSettings;
  /** Steps whose losses are batched into one asynchronous read-back. */
  readbackEvery: number;
  /** Train only parameters for which this holds (others frozen); default all. */
  trainable?: (name: string, step: number) => boolean;
  /**
   * Capture the step's command stream once it is steady and replay it afterwards, skipping the op-level
   * JavaScript (default true). Replayed steps are bit-identical to recorded ones.
   */
  capture?: boolean;
  /**
   * With a gradient sync, a replayed step records the next step's first segment while the GPU runs its first
   * one (the thread would wait in a map there), and uploads the next step's batches when
   * {@linkcode Trainer.trainStep} is given them (`next`): staged at its boundaries
   * ({@linkcode TrainerSettings.stageUploads}) or written while the GPU runs its last backward segment; the
   * next step then only submits (default true). Otherwise the GPU, idle once the exchange is done, also
   * waits for that recording and upload at every step start. What was prepared is dropped when the next step
   * differs. Off with GPU timing on, and before a step where the `trainable` schedule changes the set.
   */
  encodeAhead?: boolean;
  /**
   * With {@linkcode TrainerSettings.encodeAhead} and the next step's batches given: stage them on the GPU in
   * the time this step's boundaries leave before their maps, and copy them into place after the optimizer,
   * instead of writing them at the last boundary (default true). The same bits either way.
   */
  stageUploads?: boolean;
  /** Numeric precision (default `"32-true"`); see the module documentation. */
  precision?: TrainingPrecision;
  /** Grad scaler settings of `16-mixed` (default {@linkcode DEFAULT_GRAD_SCALER}, PyTorch's). */
  gradScaler?: GradScalerSettings;
  /**
   * Matmul autotuning (default `{ mode: "off" }`: the step engine leaves the device's tuning table alone;
   * training runs pass `InfraConfig.autotune`, default `"cached"`). See `step_autotune.ts`; never changes
   * the numbers.
   */
  autotune?: StepAutotuneSettings;
}

/** Numeric precisions of the step engine (`TrainingConfig.precision`). */
export type TrainingPrecision = "32-true" | "16-mixed" | "bf16-mixed";

/** The 16-bit format a precision multiplies in (null for 32-true). */
export function autocastDtype(precision: TrainingPrecision): HalfDType | null {
  return precision === "16-mixed" ? "f16" : precision === "bf16-mixed" ? "bf16" : null;
}

/** Per-step values read back from the GPU. */
export interface StepMetrics {
  step: number;
  loss: number;
  gradNorm: number;
  lr: number;
  /** 16-mixed: the loss scale after this step's update. */
  lossScale?: number;
  /** 16-mixed: steps skipped on non-finite gradients so far (this one included). */
  skippedSteps?: number;
}

/** Result of an evaluation pass. */
export interface EvalResult {
  loss: number;
  /** Weighted accuracy of the argmax over queries. */
  accuracy: number;
  windows: number;
  /** Logits [rows, C] per batch row (query), in batch order. */
  logits: Float32Array[];
}

const RING_SLOTS = 4; // floats per step in the ring: loss, grad norm, loss scale, skipped steps (16-mixed)

/** Buffers the pool has handed out so far: unchanged means no one can have reused a free buffer. */
function poolMark(gpu: Gpu): number {
  return gpu.pool.stats.created + gpu.pool.stats.reused;
}

/**
 * Owns the model and optimizer on one GPU and runs optimizer steps.
 *
 * @example
 * ```ts ignore
 * const trainer = new Trainer(gpu, kwargs, vocab, settings);
 * for (const batch of batches) await trainer.step([batch]);
 * const metrics = await trainer.flushMetrics();
 * ```
 */
export class Trainer {
  readonly gpu: Gpu;
  readonly model: POYO;
  readonly optimizer: FlatOptimizer;
  readonly settings: TrainerSettings;
  /** The loss scaler of `16-mixed` (null otherwise). */
  readonly gradScaler: GradScaler | null;
  /** Optimizer steps completed (the next step's number). */
  step = 0;
  #ring: GpuBuffer;
  #ringCapacity: number;
  #ringStart = 0; // first step held in the ring
  #pending: { promise: Promise<StepMetrics[]>; value: StepMetrics[] | null }[] = [];
  #lrs = new Map<number, number>();
  gradientSync: GradientSync | null = null;
  /**
   * Capture state: record normally, capture, verify a second capture, replay, or off. Unsynced, `segments`
   * is the whole step. With a gradient sync it is backward's segments — `reads[j]` lists the buckets read
   * after segment j, which is submitted on its own — then the rest of the micro-batches' commands (no reads);
   * `after` (optimizer, gradient zeroing) runs once the exchange is done.
   */
  #graph: {
    state: "record" | "capture" | "verify" | "replay" | "off";
    key: string;
    segments: CapturedGraph[];
    reads: number[][];
    after: CapturedGraph | null;
  } = {
    state: "record",
    key: "",
    segments: [],
    reads: [],
    after: null,
  };
  readonly #lossStage: GpuBuffer;
  /** The next step's first segment, recorded ahead ({@linkcode TrainerSettings.encodeAhead}), for the step key. */
  #encodedAhead: { key: string; commands: DetachedCommands } | null = null;
  /** The next step's batches, uploaded ahead, and the pool's acquisition count just after. */
  #uploadedAhead: { batches: readonly PoyoBatch[]; poolMark: number } | null = null;
  /** The staging buffer of the next step's batches for the captured segments it was made for. */
  #staged: { segments: readonly CapturedGraph[]; writes: StagedWrites } | null = null;
  /** Whether the last step was replayed from a captured stream. */
  lastStepReplayed = false;
  /** Backward segments the last synced step submitted separately, each followed by bucket read-backs. */
  lastStepSegments = 0;
  /** Whether the last step submitted a first segment recorded during the step before. */
  lastStepEncodedAhead = false;
  /** Whether the last step's batches were uploaded during the step before (`trainStep`'s `next`). */
  lastStepUploadedAhead = false;
  /**
   * Bytes of the next step's batches the last step staged at boundaries before its last one
   * ({@linkcode TrainerSettings.stageUploads}; the rest was staged at the last boundary).
   */
  lastStepStagedEarlyBytes = 0;
  /** CPU milliseconds of the last step spent recording commands (excluding `queue.submit`). */
  lastRecordMs = 0;
  /** CPU milliseconds of the last step's `queue.submit` (blocks when the GPU is far behind). */
  lastSubmitMs = 0;
  readonly #autotune: StepAutotuner;
  /** Where each parameter starts in the flat buffers (for the gradient exchange's bucket layout). */
  readonly #paramOffsets: readonly number[];

  constructor(gpu: Gpu, kwargs: ResolvedPoyoKwargs, vocab: PoyoVocabulary, settings: TrainerSettings) {
    this.gpu = gpu;
    this.settings = settings;
    const precision = settings.precision ?? "32-true";
    this.model = new POYO(gpu, kwargs, vocab, { seed: settings.seed, autocast: autocastDtype(precision) });
    this.optimizer = new FlatOptimizer(this.model.params, settings.optimizer);
    this.#paramOffsets = this.model.params.slots.map((slot) => slot.offset);
    this.gradScaler = precision === "16-mixed"
      ? new GradScaler(gpu, settings.gradScaler ?? DEFAULT_GRAD_SCALER)
      : null;
    if (this.gradScaler) this.optimizer.attachGradScaler(this.gradScaler);
    this.#ringCapacity = Math.max(1, settings.readbackEvery);
    this.#ring = gpu.pool.acquire(this.#ringCapacity * RING_SLOTS * 4, "orion.metrics_ring");
    gpu.clear(this.#ring);
    this.#lossStage = gpu.pool.acquire(16, "orion.loss_stage");
    this.#autotune = new StepAutotuner(gpu, settings.autotune ?? { mode: "off" });
  }

  /** What matmul autotuning did (see {@linkcode TrainerSettings.autotune}). */
  get autotuneReport(): StepAutotuneReport {
    return this.#autotune.report;
  }

  /**
   * Installs this adapter's cached matmul tuning table unless autotuning is `"off"` (once; the first
   * {@linkcode trainStep} calls it too).
   */
  loadAutotuneCache(): Promise<void> {
    return this.#autotune.load();
  }

  /**
   * The staged writes of `segments`' uploads (made once per captured step), or null when they cannot be
   * staged.
   */
  #stagedWritesFor(segments: readonly CapturedGraph[]): StagedWrites | null {
    if (this.#staged?.segments === segments) return this.#staged.writes;
    this.#staged?.writes.destroy();
    this.#staged = null;
    if (!StagedWrites.supports(segments)) return null;
    this.#staged = { segments, writes: new StagedWrites(this.gpu.device, segments) };
    return this.#staged.writes;
  }

  /**
   * Records and submits one optimizer step over `microBatches` (gradient accumulation: the loss of each
   * is scaled by 1/k). Returns without waiting on the GPU unless a gradient sync needs the gradients.
   *
   * `options.next`: the next step's micro-batches, when already known. A synced, replayed step then uploads
   * them while the GPU runs its last backward segment (with {@linkcode TrainerSettings.encodeAhead}), and the
   * next call, given that same array, starts on the GPU at once. Pass the array itself: the next call
   * recognizes it by identity, and uploads again for any other array, other shapes, or when the GPU's buffer
   * pool handed out a buffer in between (another user may have written the graph's batch buffers).
   */
  async trainStep(
    microBatches: readonly PoyoBatch[],
    options: { next?: readonly PoyoBatch[] } = {},
  ): Promise<void> {
    await this.#autotune.load();
    const gpu = this.gpu;
    const step = this.step;
    const { lr, beta1 } = scheduledValues(this.settings.schedule, step);
    const trainable = this.settings.trainable;
    if (trainable) this.optimizer.setTrainable((name) => trainable(name, step));
    const sync = this.gradientSync !== null && this.gradientSync.worldSize > 1;
    const key = this.#stepKey(microBatches, sync);
    const g = this.#graph;
    if (g.key !== key) {
      g.key = key;
      g.segments = [];
      g.reads = [];
      g.after = null;
      g.state = this.settings.capture === false ? "off" : "record";
    }
    const scope = Scope.begin();
    const t0 = performance.now();
    const ahead = this.#encodedAhead;
    this.#encodedAhead = null;
    this.lastStepEncodedAhead = false;
    // Uploaded during the last step, and no pool buffer handed out since (none can have been overwritten).
    const uploaded = this.#uploadedAhead?.batches === microBatches &&
      this.#uploadedAhead.poolMark === poolMark(gpu);
    this.#uploadedAhead = null;
    this.lastStepUploadedAhead = false;
    this.lastStepStagedEarlyBytes = 0;
    const store = this.model.params;
    const exchange = sync
      ? this.gradientSync!.begin(store.grads, store.totalElements, this.#paramOffsets)
      : null;
    let updateRecorded = false; // the optimizer's commands were recorded while the exchange ran
    try {
      gpu.setStepState({ step, seed: this.settings.seed, rank: this.settings.rank });
      this.optimizer.writeStepValues({ lr, beta1 });
      this.lastStepReplayed = g.state === "replay";
      this.lastStepSegments = 0;
      if (g.state === "replay") {
        const uploads = uploaded ? [] : microBatches.flatMap((mb) => batchUploadArrays(this.model, mb));
        this.lastStepUploadedAhead = uploaded;
        let written = 0;
        // Each segment is encoded while the GPU still runs the one before; only then does the exchange map
        // the previous segment's buckets (a map waits for everything submitted), so the next submit follows
        // the map at once instead of after this segment's encoding.
        let unmapped = false; // a submitted segment whose buckets the exchange has not mapped yet
        // Synced: the next step's first segment is recorded and set aside during this step, at its first
        // boundary, where this thread would otherwise wait in the map for the GPU to finish the first
        // segment. (At the last boundary, where it was recorded before, the last segment — the encoder's and
        // embeddings' backward — ran ~2.3 ms on the H200 against ~3.7 ms of host work there: the GPU idled
        // at the end of backward, the moment the exchange's tail starts.) The exchange's write-backs and
        // `after` are recorded and submitted before it. A trainable schedule that changes the set at the
        // next step changes its key: nothing to prepare.
        const encodeAhead = exchange !== null && this.settings.encodeAhead !== false && !gpu.timing &&
          (!trainable ||
            this.model.params.slots.every((slot) =>
              trainable(slot.name, step + 1) === this.optimizer.trainableNames.has(slot.name)
            ));
        // Synced, with the next step's batches known: they are staged on the GPU at this step's boundaries, in
        // the time each leaves before its map (the rest at the last one), and copied into the batch buffers
        // after the optimizer. Written straight into those buffers they would have to wait until every
        // command reading this batch was submitted: the last boundary, the one with no time to spare.
        const next = options.next;
        const nextFits = encodeAhead && next !== undefined && this.#stepKey(next, sync) === key;
        const staged = nextFits && this.settings.stageUploads !== false
          ? this.#stagedWritesFor(g.segments)
          : null;
        staged?.load(next!.flatMap((mb) => batchUploadArrays(this.model, mb)));
        const spare = staged ? (deadline: number) => void staged.writeUntil(deadline) : undefined;
        const recordNextAhead = () => {
          gpu.replay(g.segments[0], [], { skipWrites: true });
          const commands = gpu.detachRecorded();
          if (commands) this.#encodedAhead = { key, commands };
        };
        for (const [j, segment] of g.segments.entries()) {
          const segmentUploads = uploads.slice(written, written += segment.writes);
          if (j === 0 && ahead?.key === key) {
            // Recorded during the last step: only the uploads (queue writes, so they land before it).
            if (!uploaded) gpu.replayWrites(segment, segmentUploads);
            gpu.attachRecorded(ahead.commands);
            this.lastStepEncodedAhead = true;
          } else gpu.replay(segment, segmentUploads, { skipWrites: uploaded });
          if (g.reads[j].length === 0) continue;
          // Translated now, while the GPU still runs the segment before, not after the map below.
          gpu.seal();
          if (encodeAhead && unmapped && !this.#encodedAhead) recordNextAhead();
          if (unmapped) await exchange!.submitted(spare);
          for (const bucket of g.reads[j]) exchange!.readBucket(bucket);
          gpu.submit();
          this.lastStepSegments++;
          unmapped = true;
        }
        if (exchange) {
          if (encodeAhead) {
            // The buckets mapped at the boundary before go to the all-reduce first: the uploads (and a
            // recording not done yet) take this thread's time, which they would otherwise wait for.
            if (unmapped) await exchange.hostWork();
            if (staged) {
              this.lastStepStagedEarlyBytes = staged.stagedBytes;
              staged.writeUntil(Infinity); // what the boundaries before had no time for
              gpu.seal();
              this.#uploadedAhead = { batches: next!, poolMark: poolMark(gpu) };
            } else if (nextFits) {
              // Every command of this step that reads the batch goes to the GPU before the next batch's
              // uploads (queue writes land before the next submit); the optimizer segment reads none.
              gpu.submit();
              const nextUploads = next!.flatMap((mb) => batchUploadArrays(this.model, mb));
              let at = 0;
              for (const segment of g.segments) {
                gpu.replayWrites(segment, nextUploads.slice(at, at += segment.writes));
              }
              this.#uploadedAhead = { batches: next!, poolMark: poolMark(gpu) };
            } else gpu.seal(); // this step's last commands stay in this step
            if (!this.#encodedAhead) recordNextAhead(); // no boundary before the last one
          }
          if (unmapped) await exchange.submitted();
          // The optimizer's commands are recorded and translated (`finish()`, ~0.2 ms for `poyo_1_3m`) while
          // the last buckets are reduced, not after: then only their submit follows the all-reduce.
          // The optimizer, then the staged batch into place (nothing after reads the batch this step did).
          const recordAfter = () => {
            gpu.replay(g.after!, []);
            if (staged) gpu.copyStaged(staged);
          };
          await exchange.finish(() => {
            updateRecorded = true;
            recordAfter();
            gpu.seal();
          });
          if (!updateRecorded) recordAfter(); // an exchange that did not call back
        }
      } else {
        const capturing = g.state === "capture" || g.state === "verify";
        if (capturing) gpu.beginCapture();
        const segments: (CapturedGraph | null)[] = [];
        const reads: number[][] = [];
        // With a gradient sync, the last micro-batch's backward is cut wherever the next bucket is final:
        // the segment is submitted with that bucket's read-back recorded outside any capture.
        const cut = (buckets: number[]) => {
          if (capturing) segments.push(gpu.endCapture());
          reads.push(buckets);
          for (const bucket of buckets) exchange!.readBucket(bucket);
          gpu.submit();
          this.lastStepSegments++;
          if (capturing) gpu.beginCapture();
        };
        const readiness = exchange ? new BucketReadiness(store.all(), exchange.buckets) : null;
        const k = microBatches.length;
        // With autotune "tune", the first recorded step's matmul shapes are collected here.
        this.#autotune.record(() =>
          microBatches.forEach((mb, i) => {
            const batch = uploadBatch(gpu, this.model, mb);
            const { loss } = this.model.loss(batch, { training: true, microBatch: i });
            const root = k > 1 ? scale(loss, 1 / k) : loss;
            const options = readiness && i === k - 1 && this.gradientSync!.overlapBackward !== false
              ? {
                onLeafReady: (leaf: Tensor) => {
                  const ready = readiness.leafReady(leaf);
                  if (ready.length) cut(ready);
                },
              }
              : {};
            if (this.gradScaler) {
              // 16-mixed: backward starts from the loss scale S (a GPU value, so replays pick up its changes).
              const seed = Tensor.empty(gpu, root.shape);
              this.gradScaler.seedLossGradient(seed.binding());
              backward(root, seed, options);
            } else backward(root, undefined, options);
            // The first micro-batch's loss is staged for the metrics ring.
            if (i === 0) gpu.copy(loss.binding(), this.#lossStage, 4);
          })
        );
        if (exchange) {
          const rest = readiness!.rest();
          if (rest.length) cut(rest);
          // The rest of the recorded commands, then the exchange (read-backs, host writes: never captured).
          if (capturing) segments.push(gpu.endCapture());
          reads.push([]);
          await exchange.submitted();
          await exchange.finish();
          if (capturing) gpu.beginCapture();
        }
        this.optimizer.recordStep();
        this.model.params.zeroGrads();
        if (capturing) {
          const last = gpu.endCapture();
          if (!exchange) {
            segments.push(last);
            reads.push([]);
          }
          const after = exchange ? last : null;
          if (segments.some((x) => !x) || (exchange && !after)) g.state = "off";
          else if (g.state === "capture") {
            g.segments = segments as CapturedGraph[];
            g.reads = reads;
            g.after = after;
            g.state = "verify";
          } else {
            // Two identical captures in a row: the step is static and can be replayed.
            const same = segments.length === g.segments.length &&
              segments.every((x, j) => x!.signature === g.segments[j].signature) &&
              JSON.stringify(reads) === JSON.stringify(g.reads) &&
              (!exchange || after!.signature === g.after!.signature);
            g.state = same ? "replay" : "off";
            g.segments = segments as CapturedGraph[];
            g.reads = reads;
            g.after = after;
          }
        } else if (g.state === "record") g.state = "capture";
      }
      const slot = (step - this.#ringStart) * RING_SLOTS * 4;
      gpu.copy(this.#lossStage, this.#ring, 4, 0, slot);
      gpu.copy(this.optimizer.scalars, this.#ring, 4, 4, slot + 4);
      if (this.gradScaler) {
        gpu.copy(this.gradScaler.state, this.#ring, 4, 0, slot + 8); // scale after the update
        gpu.copy(this.gradScaler.state, this.#ring, 4, 8, slot + 12); // skipped steps
      }
      this.#lrs.set(step, lr);
      this.step++;
      if (this.step - this.#ringStart >= this.#ringCapacity) this.#queueReadback();
      const t1 = performance.now();
      gpu.submit();
      this.lastSubmitMs = performance.now() - t1;
      this.lastRecordMs = t1 - t0;
    } catch (error) {
      this.#encodedAhead = null;
      this.#uploadedAhead = null;
      await exchange?.cancel();
      // A failed exchange must not leave its optimizer update for the next submit. (Everything recorded by
      // then belongs to this step: every segment, with whatever was pending before it, was submitted.)
      if (updateRecorded) gpu.discardRecorded();
      // A capture interrupted by the error must not be replayed.
      if (g.state === "capture" || g.state === "verify") gpu.endCapture();
      g.key = "";
      throw error;
    } finally {
      scope.end();
    }
    // Autotune "tune": time the collected shapes now that the step is submitted (between steps, never
    // inside one). Streams captured before the new table would replay the old kernels: capture again.
    if (await this.#autotune.afterStep(this.step)) g.key = "";
  }

  /**
   * What a captured step depends on: the micro-batches' shapes, the trainable set (its version: a new set
   * builds new optimizer tables, even at the same size), synced or not.
   */
  #stepKey(microBatches: readonly PoyoBatch[], sync: boolean): string {
    return `${microBatches.map((b) => `${b.batchSize}x${b.numTokens}x${b.numQueries}`).join(",")}|` +
      `t${this.optimizer.trainableVersion}|${sync ? "synced" : "local"}`;
  }

  /** Queues the ring's read-back (resolves after the next submit). */
  #queueReadback(): void {
    const first = this.#ringStart;
    const count = this.step - first;
    if (count <= 0) return;
    const bytes = this.gpu.readback(this.#ring, 0, count * RING_SLOTS * 4);
    const lrs = this.#lrs;
    const scaled = this.gradScaler !== null;
    const entry: { promise: Promise<StepMetrics[]>; value: StepMetrics[] | null } = {
      promise: null!,
      value: null,
    };
    entry.promise = bytes.then((b) => {
      const f = new Float32Array(b);
      const out: StepMetrics[] = [];
      for (let i = 0; i < count; i++) {
        const step = first + i;
        out.push({
          step,
          loss: f[i * RING_SLOTS],
          gradNorm: f[i * RING_SLOTS + 1],
          lr: lrs.get(step) ?? NaN,
          ...(scaled ? { lossScale: f[i * RING_SLOTS + 2], skippedSteps: f[i * RING_SLOTS + 3] } : {}),
        });
        lrs.delete(step);
      }
      entry.value = out;
      return out;
    });
    this.#pending.push(entry);
    this.#ringStart = this.step;
  }

  /** Metrics whose read-back has completed, without waiting (in step order). */
  takeReadyMetrics(): StepMetrics[] {
    const out: StepMetrics[] = [];
    while (this.#pending.length && this.#pending[0].value) out.push(...this.#pending.shift()!.value!);
    return out;
  }

  /**
   * Every metric up to the current step (submits and waits for outstanding read-backs). With
   * `{ submit: false }` the read-back rides in the next step's command buffer instead of an extra submit.
   */
  async flushMetrics(options: { submit?: boolean } = {}): Promise<StepMetrics[]> {
    this.#queueReadback();
    if (options.submit ?? true) this.gpu.submit();
    const all = await Promise.all(this.#pending.splice(0).map((e) => e.promise));
    return all.flat();
  }

  /** Number of read-backs in flight (the loop keeps this bounded). */
  get pendingReadbacks(): number {
    return this.#pending.length;
  }

  /** Waits for the oldest outstanding read-back (back-pressure: never more than 2 in flight). */
  async awaitOldest(): Promise<StepMetrics[]> {
    const head = this.#pending.shift();
    return head ? await head.promise : [];
  }

  /**
   * Evaluates `batches` without dropout or gradients: weighted-mean loss, weighted accuracy, and the
   * logits of every row (for window averaging). Waits on the GPU once at the end.
   */
  async evaluate(batches: readonly PoyoBatch[], useEma = false): Promise<EvalResult> {
    const gpu = this.gpu;
    const reads: Promise<ArrayBuffer>[] = [];
    const shapes: { rows: number; c: number; batch: PoyoBatch }[] = [];
    const restore = useEma ? this.#swapInEma() : null;
    try {
      for (const b of batches) {
        const scope = Scope.begin();
        try {
          noGrad(() => {
            const dev: DeviceBatch = uploadBatch(gpu, this.model, b);
            const logits: Tensor = this.model.forward(dev, { training: false });
            reads.push(gpu.readback(logits.binding(), 0, logits.byteLength));
            shapes.push({ rows: b.batchSize * b.numQueries, c: this.model.kwargs.numClasses, batch: b });
          });
          gpu.submit();
        } finally {
          scope.end();
        }
      }
      const results = await Promise.all(reads);
      let lossSum = 0, weightSum = 0, correct = 0;
      const logits: Float32Array[] = [];
      results.forEach((buf, i) => {
        const { rows, c, batch } = shapes[i];
        const z = new Float32Array(buf, 0, rows * c);
        for (let r = 0; r < rows; r++) {
          const row = z.subarray(r * c, r * c + c);
          logits.push(Float32Array.from(row));
          const w = batch.weight[r];
          const label = batch.label[r];
          if (w === 0 || label < 0 || label >= c) continue;
          let m = -Infinity, arg = 0;
          for (let j = 0; j < c; j++) if (row[j] > m) (m = row[j], arg = j);
          let s = 0;
          for (let j = 0; j < c; j++) s += Math.exp(row[j] - m);
          lossSum += w * (m + Math.log(s) - row[label]);
          weightSum += w;
          if (arg === label) correct += w;
        }
      });
      return {
        loss: weightSum > 0 ? lossSum / weightSum : NaN,
        accuracy: weightSum > 0 ? correct / weightSum : NaN,
        windows: logits.length,
        logits,
      };
    } finally {
      if (restore) await restore();
    }
  }

  #swapInEma(): (() => Promise<void>) | null {
    const ema = this.optimizer.emaBuffer;
    if (!ema) return null;
    const gpu = this.gpu;
    const bytes = this.model.params.totalElements * 4;
    const saved = gpu.pool.acquire(bytes, "orion.eval_swap");
    gpu.copy(this.model.params.values, saved, bytes);
    gpu.copy(ema, this.model.params.values, bytes);
    gpu.submit();
    return async () => {
      gpu.copy(saved, this.model.params.values, bytes);
      gpu.submit();
      await gpu.sync();
      gpu.pool.release(saved);
    };
  }

  /**
   * Records copies of the model and optimizer state into staging buffers at the current point of the
   * stream and returns promises that resolve (after the next submit) with host copies: training goes on
   * while the maps complete. By default the copies are submitted at once; with `{ submit: false }` they
   * ride in the next step's command buffer (no extra submit, which would make the training thread wait for
   * the GPU) — the caller then owes a submit (the next `trainStep`, or `gpu.submit()`) — and the host copies
   * are made in slices after the following submits, while the GPU has work.
   */
  snapshot(options: { submit?: boolean; into?: SnapshotHost } = {}): Promise<TrainerSnapshot> {
    const gpu = this.gpu;
    const store = this.model.params;
    const bytes = store.totalElements * 4;
    const step = this.step;
    const submit = options.submit ?? true;
    const into = options.into;
    // Training goes on: the host copies are spread over the next steps' submits (Gpu.readback `spread`).
    const values = into
      ? gpu.readbackInto(
        store.values,
        0,
        bytes,
        new Uint8Array(into.values.buffer, into.values.byteOffset, bytes),
        { spread: !submit },
      ).then(() => into.values)
      : gpu.readback(store.values, 0, bytes, { spread: !submit }).then((b) => new Float32Array(b));
    const optimizer = this.optimizer.readStateAsync({ spread: !submit, into });
    const scaler = this.gradScaler
      ? this.gradScaler.readStateAsync({ spread: !submit })
      : Promise.resolve(null);
    if (submit) gpu.submit();
    return Promise.all([values, optimizer, scaler]).then(([flat, opt, gradScaler]) => {
      const weights = new Map<string, Float32Array>();
      // Views, not copies: the flat read-back is this snapshot's own memory.
      for (const s of store.slots) weights.set(s.name, flat.subarray(s.offset, s.offset + s.size));
      return gradScaler ? { step, weights, optimizer: opt, gradScaler } : { step, weights, optimizer: opt };
    });
  }

  /**
   * Host memory for {@linkcode Trainer.snapshot}'s `into`: one shared array per state buffer (weights, both
   * moments, the EMA when kept), each page written once here. Reusing one for every checkpoint spares the
   * training thread the page faults of fresh memory (copying 16 MiB into a new buffer took ~11 ms on the
   * H200 host) and the collector the external memory; being shared, a writer thread reads it in place. A
   * snapshot's arrays are views of it: reuse it only once the previous snapshot is no longer read.
   */
  createSnapshotHost(): SnapshotHost {
    const n = this.model.params.totalElements;
    const array = () => new Float32Array(new SharedArrayBuffer(n * 4)).fill(0);
    return {
      values: array(),
      expAvg: array(),
      expAvgSq: array(),
      ema: this.optimizer.settings.emaDecay != null ? array() : null,
    };
  }

  /** Restores a snapshot (weights, optimizer moments and step, EMA). */
  restore(snapshot: TrainerSnapshot): void {
    this.model.params.writeValues(snapshot.weights);
    this.optimizer.loadState(snapshot.optimizer);
    if (this.gradScaler) {
      if (!snapshot.gradScaler) {
        throw new Error(
          `Cannot restore a 16-mixed trainer from a snapshot of step ${snapshot.step} as it has no grad scaler ` +
            "state: current value is undefined (resume from a checkpoint written by a 16-mixed run)",
        );
      }
      this.gradScaler.loadState(snapshot.gradScaler);
    }
    this.step = snapshot.step;
    this.#ringStart = snapshot.step;
    this.#lrs.clear();
  }
}

/**
 * Reusable host memory of {@linkcode Trainer.snapshot} (from {@linkcode Trainer.createSnapshotHost}): the flat
 * weights plus the optimizer's moments and EMA.
 */
export interface SnapshotHost extends OptimizerStateHost {
  values: Float32Array;
}

/** Host copy of everything the step engine needs to continue bit-exactly. */
export interface TrainerSnapshot {
  step: number;
  weights: Map<string, Float32Array>;
  optimizer: OptimizerState;
  /** The loss scaler's state (16-mixed runs). */
  gradScaler?: GradScalerState;
}
