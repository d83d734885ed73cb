/**
 * AdamW, LAMB and SparseLamb (the contract's `sparse_lamb`) as WGSL kernels over the flat parameter
 * buffers, with deterministic per-tensor norms, optional global-norm gradient clipping, and an EMA of
 * the weights kept on the GPU. Kernels: `shaders/optimizer.wgsl`.
 *
 * One optimizer step is a handful of dispatches whatever the number of tensors (AdamW: 1, plus 3 when
 * clipping; LAMB: 8, plus 3 when clipping). Per-step values (learning rate, β1 from the one-cycle
 * momentum schedule, bias corrections) are written to a uniform block once per step, so pipelines and
 * bind groups never change between steps.
 *
 * With a grad scaler attached (16-mixed, `src/optim/grad_scaler.ts`) the gradients carry the loss scale S:
 * the step checks them for non-finite values, divides the norm and the update's gradients by S (folded
 * into the clip coefficient), and skips the update on overflow.
 *
 * @module
 */
import src from "../../shaders/optimizer.wgsl" with { type: "text" };
import type { BindingKind, KernelSpec } from "../gpu/kernel.ts";
import type { GpuBuffer } from "../gpu/buffer_pool.ts";
import type { Gpu, ReadbackOptions } from "../gpu/gpu.ts";
import type { ParameterSlot, ParameterStore } from "../tensor/parameters.ts";
import { grid1d } from "../ops/launch.ts";
import type { GradScaler } from "./grad_scaler.ts";

/** Optimizer kinds of `TrainingConfig.optimizer`. */
export type OptimizerKind = "adamw" | "lamb" | "sparse_lamb";

/** Static optimizer settings. */
export interface OptimizerSettings {
  kind: OptimizerKind;
  /** β2 (β1 comes per step from the schedule). */
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Clip the global gradient norm to this value (0 = no clipping). */
  maxGradNorm: number;
  /** Keep an EMA of the weights with this decay (null = no EMA). */
  emaDecay: number | null;
}

/** Per-step values. */
export interface StepHyper {
  lr: number;
  beta1: number;
}

/** Caller-owned destinations of {@linkcode FlatOptimizer.readStateAsync}: flat, one element per parameter value. */
export interface OptimizerStateHost {
  expAvg: Float32Array;
  expAvgSq: Float32Array;
  /** Needed when the optimizer keeps an EMA (else a fresh buffer is used for it). */
  ema: Float32Array | null;
}

/** Host copy of the optimizer state (for checkpoints). */
export interface OptimizerState {
  /** Optimizer steps taken. */
  step: number;
  /** Per-parameter first and second moments, by parameter name. */
  expAvg: Map<string, Float32Array>;
  expAvgSq: Map<string, Float32Array>;
  /** EMA weights by parameter name (when enabled). */
  ema: Map<string, Float32Array> | null;
}

const KIND_CODE: Record<OptimizerKind, number> = { adamw: 0, lamb: 1, sparse_lamb: 2 };
const BLOCK = 4096;
const MAX_SPARSE_ROWS = 256;

type Slots = (BindingKind | null)[];
const entry = (entryPoint: string, bindings: Slots): KernelSpec => ({
  name: `optimizer.${entryPoint}`,
  code: src,
  entryPoint,
  bindings,
  family: "optimizer",
});
const U = "uniform", R = "read", W = "rw";
const BLOCK_SUMSQ = entry("block_sumsq", [U, R, R, null, null, W]);
const TENSOR_REDUCE = entry("tensor_reduce", [U, R, null, R, null, W]);
const CLIP = entry("clip", [U, R, null, null, null, W]);
const UNSCALE_CLIP = entry("unscale_clip", [U, R, null, null, R, W]);
const ADAMW = entry("adamw", [U, R, R, null, R, W, W, W]);
const LAMB_MOMENTS = entry("lamb_moments", [U, R, R, R, R, W, W, W, W]);
const LAMB_APPLY = entry("lamb_apply", [U, R, R, R, R, W, W]);
const EMA = entry("ema", [U, R, R, null, R, W]);

interface Tables {
  blocks: GpuBuffer;
  tensors: GpuBuffer;
  nBlocks: number;
  nTensors: number;
}

/** Splits the given slots into blocks that never cross a tensor (sparse tensors: whole rows, ≤ 256). */
function buildTables(gpu: Gpu, slots: readonly ParameterSlot[], sparseAware: boolean): Tables {
  const blocks: number[] = [];
  const tensors: number[] = [];
  slots.forEach((s, t) => {
    const firstBlock = blocks.length / 4;
    const sparse = sparseAware && s.sparse;
    const step = sparse
      ? Math.max(1, Math.min(MAX_SPARSE_ROWS, Math.floor(BLOCK / s.rowWidth))) * s.rowWidth
      : BLOCK;
    for (let start = 0; start < s.size; start += step) {
      blocks.push(t, s.offset + start, s.offset + Math.min(s.size, start + step), 0);
    }
    tensors.push(s.offset, s.size, s.rowWidth, sparse ? 1 : 0, firstBlock, blocks.length / 4, 0, 0);
  });
  const upload = (data: number[]) => {
    const buf = gpu.pool.acquire(Math.max(16, data.length * 4), "orion.optimizer_table");
    gpu.write(buf, new Uint32Array(data.length ? data : [0, 0, 0, 0]));
    return buf;
  };
  return {
    blocks: upload(blocks),
    tensors: upload(tensors),
    nBlocks: blocks.length / 4,
    nTensors: slots.length,
  };
}

/**
 * The optimizer over a {@linkcode ParameterStore}.
 *
 * @example
 * ```ts ignore
 * const opt = new FlatOptimizer(model.params, { kind: "sparse_lamb", beta2: 0.999, eps: 1e-6,
 *   weightDecay: 1e-4, maxGradNorm: 1, emaDecay: null });
 * opt.step({ lr: 3e-4, beta1: 0.9 }); // records the update into the current step
 * ```
 */
export class FlatOptimizer {
  readonly store: ParameterStore;
  readonly settings: OptimizerSettings;
  readonly #gpu: Gpu;
  readonly #expAvg: GpuBuffer;
  readonly #expAvgSq: GpuBuffer;
  readonly #update: GpuBuffer | null;
  readonly #ema: GpuBuffer | null;
  readonly #hyper: GpuBuffer;
  readonly #scalars: GpuBuffer;
  #trainable: Tables;
  #trainableNames: Set<string>;
  #trainableVersion = 0;
  readonly #all: Tables;
  readonly #partial: GpuBuffer;
  readonly #norms: GpuBuffer;
  #gradScaler: GradScaler | null = null;
  /** Optimizer steps taken so far. */
  stepCount = 0;

  constructor(store: ParameterStore, settings: OptimizerSettings) {
    this.store = store;
    this.settings = settings;
    const gpu = store.gpu;
    this.#gpu = gpu;
    const bytes = store.totalElements * 4;
    const zeroed = () => {
      const b = gpu.pool.acquire(bytes, "orion.optimizer_state");
      gpu.clear(b);
      return b;
    };
    this.#expAvg = zeroed();
    this.#expAvgSq = zeroed();
    this.#update = settings.kind === "adamw" ? null : zeroed();
    this.#ema = null;
    if (settings.emaDecay !== null) {
      this.#ema = gpu.pool.acquire(bytes, "orion.ema");
      gpu.copy(store.values, this.#ema, bytes);
    }
    this.#hyper = gpu.pool.adopt(
      gpu.device.createBuffer({
        size: 80,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        label: "orion.hyper",
      }),
    );
    this.#scalars = gpu.pool.acquire(32, "orion.optimizer_scalars");
    gpu.write(this.#scalars, new Float32Array([1, 0, 0, 0, 0, 0, 0, 0]));
    this.#all = buildTables(gpu, store.slots, false);
    this.#trainableNames = new Set(store.slots.map((s) => s.name));
    this.#trainable = buildTables(gpu, store.slots, settings.kind === "sparse_lamb");
    this.#partial = gpu.pool.acquire(Math.max(16, this.#all.nBlocks * 4 * 2), "orion.optimizer_partial");
    this.#norms = gpu.pool.acquire(
      (Math.ceil(store.slots.length / 64) * 64 * 2 + 64) * 4,
      "orion.optimizer_norms",
    );
  }

  /**
   * Restricts updates to the parameters for which `trainable(name)` holds (frozen ones are skipped
   * entirely: no moment update, no decay). Call between steps.
   */
  setTrainable(trainable: (name: string) => boolean): void {
    const slots = this.store.slots.filter((s) => trainable(s.name));
    const names = new Set(slots.map((s) => s.name));
    if (names.size === this.#trainableNames.size && [...names].every((n) => this.#trainableNames.has(n))) {
      return;
    }
    this.#trainableNames = names;
    this.#trainable = buildTables(this.#gpu, slots, this.settings.kind === "sparse_lamb");
    this.#trainableVersion++;
  }

  /** Names of the parameters currently updated. */
  get trainableNames(): ReadonlySet<string> {
    return this.#trainableNames;
  }

  /**
   * Counts the changes of the trainable set (each builds new tables, so recorded update commands are stale:
   * a captured step keys on this, not on the set's size).
   */
  get trainableVersion(): number {
    return this.#trainableVersion;
  }

  /** The EMA weights' buffer (flat layout of the store), if enabled. */
  get emaBuffer(): GpuBuffer | null {
    return this.#ema;
  }

  /**
   * Makes every following step loss-scaled by `scaler` (16-mixed): gradients are checked for non-finite
   * values, unscaled, and the update is skipped on overflow; the scaler's state is updated after the step.
   */
  attachGradScaler(scaler: GradScaler): void {
    this.#gradScaler = scaler;
  }

  /** The attached grad scaler, if any. */
  get gradScaler(): GradScaler | null {
    return this.#gradScaler;
  }

  /**
   * `[gradient coefficient, global gradient norm, skip flag, loss scale, bias correction 1, 2]` of the last
   * step (see `shaders/optimizer.wgsl`), as a GPU buffer to read back.
   */
  get scalars(): GpuBuffer {
    return this.#scalars;
  }

  #writeHyper(h: StepHyper, tables: Tables, stepNumber: number): void {
    const s = this.settings;
    const biasCorrected = s.kind !== "sparse_lamb";
    const bc1 = biasCorrected ? 1 - h.beta1 ** stepNumber : 1;
    const bc2 = biasCorrected ? 1 - s.beta2 ** stepNumber : 1;
    const data = new ArrayBuffer(80);
    const f = new Float32Array(data);
    const u = new Uint32Array(data);
    f.set([h.lr, h.beta1, s.beta2, s.eps, s.weightDecay, bc1, bc2, s.maxGradNorm, s.emaDecay ?? 0]);
    u.set(
      [
        tables.nBlocks,
        tables.nTensors,
        KIND_CODE[s.kind],
        this.#normOffset(tables),
        this.#all.nBlocks,
        stepNumber,
        this.#gradScaler ? 1 : 0,
      ],
      9,
    );
    f.set([1 - h.beta1, 1 - s.beta2], 16);
    this.#gpu.device.queue.writeBuffer(this.#hyper.buffer, 0, data);
  }

  /** Element offset of ‖u_t‖² in the norms buffer: after ‖p_t‖², 256-byte aligned for binding. */
  #normOffset(tables: Tables): number {
    return Math.ceil(tables.nTensors / 64) * 64;
  }

  /** Records Σ x² per trainable tensor of the flat buffer `x` into `out` (at element offset `at`). */
  #tensorSumsq(x: GpuBuffer, tables: Tables, outOffset: number): void {
    const gpu = this.#gpu;
    gpu.dispatch(
      BLOCK_SUMSQ,
      [this.#hyper, x, tables.blocks, null, null, this.#partial],
      grid1d(tables.nBlocks, 1),
    );
    const out = { buffer: this.#norms, offset: outOffset * 4, size: this.#norms.size - outOffset * 4 };
    gpu.dispatch(
      TENSOR_REDUCE,
      [this.#hyper, this.#partial, null, tables.tensors, null, out],
      grid1d(tables.nTensors, 64),
    );
  }

  /**
   * Records one optimizer step (clipping, moments, trust ratios, update, EMA) into the current command
   * encoder. Gradients are read from the store's gradient buffer; zero them afterwards for the next step.
   */
  step(h: StepHyper): void {
    this.writeStepValues(h);
    this.recordStep();
  }

  /**
   * Counts the step and writes its values (learning rate, β1, bias corrections) for the commands of the
   * next submit. Together with {@linkcode FlatOptimizer.recordStep} this is {@linkcode FlatOptimizer.step};
   * a replayed (captured) training step calls only this.
   */
  writeStepValues(h: StepHyper): void {
    this.stepCount++;
    this.#writeHyper(h, this.#trainable, this.stepCount);
  }

  /** Records the update's dispatches (values from the last {@linkcode FlatOptimizer.writeStepValues}). */
  recordStep(): void {
    const gpu = this.#gpu;
    const store = this.store;
    const t = this.#trainable;
    const scaler = this.#gradScaler;
    if (scaler) scaler.recordCheck(store.grads, store.totalElements);
    if (t.nBlocks > 0) {
      // Global gradient norm (always computed: it is logged) and the clip coefficient.
      this.#tensorSumsq(store.grads, t, 0);
      if (scaler) {
        gpu.dispatch(UNSCALE_CLIP, [this.#hyper, this.#norms, null, null, scaler.state, this.#scalars], [1]);
      } else {
        gpu.dispatch(CLIP, [this.#hyper, this.#norms, null, null, null, this.#scalars], [1]);
      }
      const wg = grid1d(t.nBlocks, 1);
      if (this.settings.kind === "adamw") {
        gpu.dispatch(
          ADAMW,
          [
            this.#hyper,
            store.grads,
            t.blocks,
            null,
            this.#scalars,
            store.values,
            this.#expAvg,
            this.#expAvgSq,
          ],
          wg,
        );
      } else {
        const u = this.#update!;
        gpu.dispatch(
          LAMB_MOMENTS,
          [
            this.#hyper,
            store.grads,
            t.blocks,
            t.tensors,
            this.#scalars,
            store.values,
            this.#expAvg,
            this.#expAvgSq,
            u,
          ],
          wg,
        );
        this.#tensorSumsq(store.values, t, 0);
        this.#tensorSumsq(u, t, this.#normOffset(t));
        gpu.dispatch(LAMB_APPLY, [
          this.#hyper,
          store.grads,
          t.blocks,
          t.tensors,
          this.#norms,
          store.values,
          u,
        ], wg);
      }
    }
    if (this.#ema) {
      gpu.dispatch(
        EMA,
        [this.#hyper, store.values, this.#all.blocks, null, this.#scalars, this.#ema],
        grid1d(this.#all.nBlocks, 1),
      );
    }
    if (scaler) scaler.recordUpdate();
  }

  /** Reads the optimizer state back to the host (submits and waits on the GPU). */
  readState(): Promise<OptimizerState> {
    const state = this.readStateAsync();
    this.#gpu.submit();
    return state;
  }

  /**
   * Records copies of the optimizer state into staging buffers at this point of the command stream; the
   * promise resolves after the next submit (training may go on meanwhile). `options` as for
   * {@linkcode Gpu.readback}; with `into`, the moments (and EMA) land in those caller-owned arrays (each
   * `store.totalElements` long, e.g. reused shared memory) instead of fresh buffers, and the state's maps
   * are views of them.
   */
  async readStateAsync(
    options: ReadbackOptions & { into?: OptimizerStateHost } = {},
  ): Promise<OptimizerState> {
    const gpu = this.#gpu;
    const bytes = this.store.totalElements * 4;
    const step = this.stepCount;
    const { into, ...readback } = options;
    const read = async (src: GpuBuffer, dst: Float32Array | undefined): Promise<Float32Array> => {
      if (!dst) return new Float32Array(await gpu.readback(src, 0, bytes, readback));
      if (dst.length !== this.store.totalElements) {
        throw new RangeError(
          `Cannot read the optimizer state into an array of ${dst.length} elements as it has ${this.store.totalElements}: current value is ${dst.length}`,
        );
      }
      await gpu.readbackInto(src, 0, bytes, new Uint8Array(dst.buffer, dst.byteOffset, bytes), readback);
      return dst;
    };
    const [m, v, e] = await Promise.all([
      read(this.#expAvg, into?.expAvg),
      read(this.#expAvgSq, into?.expAvgSq),
      this.#ema ? read(this.#ema, into?.ema ?? undefined) : Promise.resolve(null),
    ]);
    const split = (flat: Float32Array) => {
      const out = new Map<string, Float32Array>();
      // Views into the read-back memory (no copy on the training thread).
      for (const s of this.store.slots) out.set(s.name, flat.subarray(s.offset, s.offset + s.size));
      return out;
    };
    return { step, expAvg: split(m), expAvgSq: split(v), ema: e ? split(e) : null };
  }

  /** Restores the optimizer state (lands after every command recorded so far). */
  loadState(state: OptimizerState): void {
    this.stepCount = state.step;
    this.#gpu.writeAfterPending(this.#expAvg, this.store.pack(state.expAvg));
    this.#gpu.writeAfterPending(this.#expAvgSq, this.store.pack(state.expAvgSq));
    if (this.#ema && state.ema) this.#gpu.writeAfterPending(this.#ema, this.store.pack(state.ema));
  }
}
