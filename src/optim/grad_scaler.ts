/**
 * Dynamic loss scaling for `16-mixed` (PyTorch `torch.amp.GradScaler` semantics), entirely on the GPU so a
 * training step never waits for the host: kernels in `shaders/grad_scaler.wgsl`, the unscale/skip part in
 * the optimizer's `unscale_clip` kernel (`shaders/optimizer.wgsl`).
 *
 * Per step: the loss gradient is seeded with the current scale S ({@linkcode GradScaler.seedLossGradient});
 * after backward every gradient element is checked for ±inf/NaN (bit patterns; the flag is an atomic OR,
 * so the result does not depend on thread order); the optimizer divides gradients (and the logged norm) by
 * S, clips, and on a non-finite gradient leaves weights, moments, EMA and the bias-correction step count
 * untouched; finally S is halved (backoff) on overflow — counting a skipped step and resetting the growth
 * tracker — or doubled after `growthInterval` consecutive clean steps. S stays a power of two, so scaling
 * and unscaling are exact.
 *
 * @module
 */
import src from "../../shaders/grad_scaler.wgsl" with { type: "text" };
import type { GpuBuffer } from "../gpu/buffer_pool.ts";
import type { BufferBinding, Gpu, ReadbackOptions } from "../gpu/gpu.ts";
import { Params } from "../gpu/kernel.ts";
import type { KernelSpec } from "../gpu/kernel.ts";
import { grid1d } from "../ops/launch.ts";

/** Settings of the grad scaler (PyTorch's defaults in {@linkcode DEFAULT_GRAD_SCALER}). */
export interface GradScalerSettings {
  /** Initial loss scale (a power of two). */
  initScale: number;
  /** Factor applied after `growthInterval` clean steps. */
  growthFactor: number;
  /** Factor applied on a step with non-finite gradients. */
  backoffFactor: number;
  /** Consecutive clean steps before the scale grows. */
  growthInterval: number;
}

/** PyTorch's GradScaler defaults: 65536, ×2 every 2000 clean steps, ×0.5 on overflow. */
export const DEFAULT_GRAD_SCALER: GradScalerSettings = {
  initScale: 65536,
  growthFactor: 2,
  backoffFactor: 0.5,
  growthInterval: 2000,
};

/** The scaler's state as checkpointed (`grad_scaler/state.json`). */
export interface GradScalerState {
  /** Current loss scale. */
  scale: number;
  /** Consecutive clean steps since the last growth or overflow. */
  growthTracker: number;
  /** Steps skipped because of non-finite gradients, since the run began. */
  skippedSteps: number;
}

const FIND = { name: "grad_scaler.find_non_finite", code: src, entryPoint: "find_non_finite" };
const CHECK: KernelSpec = { ...FIND, bindings: ["uniform", "read", "rw"], family: "optimizer" };
const UPDATE: KernelSpec = {
  name: "grad_scaler.update_scale",
  code: src,
  entryPoint: "update_scale",
  bindings: ["uniform", null, "rw"],
  family: "optimizer",
};

/**
 * The GPU-resident grad scaler of one training process.
 *
 * @example
 * ```ts ignore
 * const scaler = new GradScaler(gpu, DEFAULT_GRAD_SCALER);
 * optimizer.attachGradScaler(scaler); // the optimizer records check, unscale/skip and update
 * scaler.seedLossGradient(root);      // root: the [1] gradient backward starts from
 * ```
 */
export class GradScaler {
  readonly settings: GradScalerSettings;
  readonly #gpu: Gpu;
  /** 16 bytes: scale, growth tracker, skipped steps (f32), found_inf (u32 bits of 0.0 or 1.0). */
  readonly state: GpuBuffer;

  constructor(gpu: Gpu, settings: GradScalerSettings = DEFAULT_GRAD_SCALER) {
    for (const [k, v] of Object.entries(settings)) {
      if (!(typeof v === "number" && Number.isFinite(v) && v > 0)) {
        throw new RangeError(
          `Cannot create a grad scaler as ${k} must be a positive number: current value is ${v}`,
        );
      }
    }
    if (!Number.isInteger(settings.growthInterval)) {
      throw new RangeError(
        `Cannot create a grad scaler as growthInterval must be an integer: current value is ${settings.growthInterval}`,
      );
    }
    this.settings = settings;
    this.#gpu = gpu;
    this.state = gpu.pool.acquire(16, "orion.grad_scaler_state");
    this.#write({ scale: settings.initScale, growthTracker: 0, skippedSteps: 0 }, false);
  }

  #write(s: GradScalerState, afterPending: boolean): void {
    const data = new ArrayBuffer(16);
    new Float32Array(data, 0, 3).set([s.scale, s.growthTracker, s.skippedSteps]);
    const bytes = new Uint8Array(data);
    if (afterPending) this.#gpu.writeAfterPending(this.state, bytes);
    else this.#gpu.write(this.state, bytes);
  }

  /** Records a copy of the current scale S into `root` (one f32): backward then starts from dL·S. */
  seedLossGradient(root: BufferBinding): void {
    this.#gpu.copy(this.state, root, 4);
  }

  /** Records the non-finite check of the first `elements` f32 of `grads` (sets found_inf). */
  recordCheck(grads: GpuBuffer, elements: number): void {
    const grid = grid1d(elements);
    const u = this.#gpu.uniform(this.#params(elements, grid[0] * 256));
    this.#gpu.dispatch(CHECK, [u, grads, this.state], grid);
  }

  /** Records the scale update (after the optimizer read found_inf); clears found_inf. */
  recordUpdate(): void {
    this.#gpu.dispatch(UPDATE, [this.#gpu.uniform(this.#params(0, 0)), null, this.state], [1]);
  }

  #params(n: number, row: number): Uint8Array {
    const s = this.settings;
    return new Params().u32(n).u32(row).u32(s.growthInterval).u32(0).f32(s.growthFactor).f32(s.backoffFactor)
      .f32(0).f32(0).bytes();
  }

  /** Records a copy of the state at this point of the stream; resolves after the next submit. */
  async readStateAsync(options: ReadbackOptions = {}): Promise<GradScalerState> {
    const bytes = await this.#gpu.readback(this.state, 0, 16, options);
    const f = new Float32Array(bytes, 0, 3);
    return { scale: f[0], growthTracker: f[1], skippedSteps: f[2] };
  }

  /** Restores a checkpointed state (lands after every command recorded so far). */
  loadState(state: GradScalerState): void {
    for (const [k, v] of Object.entries(state)) {
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
        throw new RangeError(
          `Cannot restore the grad scaler as ${k} must be a finite number ≥ 0: current value is ${v}`,
        );
      }
    }
    this.#write(state, true);
  }
}

/** Parses a checkpoint's `grad_scaler/state.json` object, naming the bad field. */
export function parseGradScalerState(json: unknown, file = "grad_scaler/state.json"): GradScalerState {
  const o = json as Record<string, unknown> | null;
  const out: Record<string, number> = {};
  for (const k of ["scale", "growthTracker", "skippedSteps"]) {
    const v = o?.[k];
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (k === "scale" && v === 0)) {
      throw new RangeError(
        `Cannot restore the grad scaler from ${file} as ${k} must be a finite number ${
          k === "scale" ? "> 0" : "≥ 0"
        }: current value is ${JSON.stringify(v)}`,
      );
    }
    out[k] = v;
  }
  return out as unknown as GradScalerState;
}
