/**
 * The parameter registry: named parameters laid out in one flat GPU buffer (each tensor at a 256-byte
 * aligned offset), with their gradients at the same offsets of a second flat buffer.
 *
 * One buffer per role makes the per-step bookkeeping single operations: zeroing every gradient is one
 * clear, the optimizer is one dispatch over the flat buffers, gradient buckets for the all-reduce are
 * byte ranges, and a checkpoint reads the parameters back in one copy.
 *
 * @module
 */
import type { Gpu } from "../gpu/gpu.ts";
import type { GpuBuffer } from "../gpu/buffer_pool.ts";
import { fmtShape, numel, Tensor } from "./tensor.ts";

/** How a parameter is initialised (deterministically, from the run seed and the parameter's name). */
export type Init =
  | { kind: "zeros" }
  | { kind: "ones" }
  | { kind: "normal"; std: number; zeroRow0?: boolean }
  | { kind: "truncNormal"; std: number }
  | { kind: "uniform"; bound: number };

/** Declaration of one parameter. */
export interface ParameterSpec {
  name: string;
  shape: number[];
  init: Init;
  /** Rows are updated sparsely by `sparse_lamb` (embedding tables). */
  sparse?: boolean;
}

/** Placement of one parameter in the flat buffers. */
export interface ParameterSlot {
  name: string;
  shape: number[];
  /** Offset in f32 elements (a multiple of 64 = 256 bytes). */
  offset: number;
  size: number;
  sparse: boolean;
  /** Row width for sparse parameters (the last dimension). */
  rowWidth: number;
}

/** A named parameter with its gradient view. */
export interface Parameter {
  slot: ParameterSlot;
  value: Tensor;
  grad: Tensor;
}

const ALIGN = 64; // f32 elements per 256 bytes

/**
 * Named parameters in flat GPU storage.
 *
 * @example
 * ```ts
 * import { Gpu } from "../gpu/gpu.ts";
 * import { ParameterStore } from "./parameters.ts";
 * const gpu = await Gpu.create();
 * const store = new ParameterStore(gpu, [{ name: "w", shape: [2, 3], init: { kind: "ones" } }], 7);
 * console.log(store.get("w").value.shape, store.totalElements);
 * gpu.destroy();
 * ```
 */
export class ParameterStore {
  readonly gpu: Gpu;
  readonly slots: ParameterSlot[];
  /** Elements of the flat buffers (the sum of aligned sizes). */
  readonly totalElements: number;
  readonly values: GpuBuffer;
  readonly grads: GpuBuffer;
  readonly #byName = new Map<string, Parameter>();

  constructor(gpu: Gpu, specs: readonly ParameterSpec[], seed: number) {
    this.gpu = gpu;
    let offset = 0;
    const names = new Set<string>();
    this.slots = specs.map((s) => {
      if (names.has(s.name)) throw new Error(`Cannot register parameter "${s.name}" twice`);
      names.add(s.name);
      const size = numel(s.shape);
      const slot: ParameterSlot = {
        name: s.name,
        shape: [...s.shape],
        offset,
        size,
        sparse: s.sparse ?? false,
        rowWidth: s.shape[s.shape.length - 1] ?? 1,
      };
      offset += Math.ceil(Math.max(size, 1) / ALIGN) * ALIGN;
      return slot;
    });
    this.totalElements = offset;
    const bytes = Math.max(256, offset * 4);
    const maxBinding = gpu.device.limits.maxStorageBufferBindingSize;
    if (bytes > maxBinding) {
      throw new RangeError(
        `Cannot hold ${offset} parameters in one buffer as it needs ${bytes} bytes: the adapter's ` +
          `maxStorageBufferBindingSize is ${maxBinding}; use a smaller model`,
      );
    }
    this.values = gpu.pool.acquire(bytes, "orion.params");
    this.grads = gpu.pool.acquire(bytes, "orion.grads");
    for (const slot of this.slots) {
      const value = Tensor.view(gpu, this.values, slot.offset * 4, slot.shape);
      const grad = Tensor.view(gpu, this.grads, slot.offset * 4, slot.shape);
      value.name = slot.name;
      value.requiresGrad = true;
      value.grad = grad;
      this.#byName.set(slot.name, { slot, value, grad });
    }
    const host = new Float32Array(this.totalElements);
    specs.forEach((s, i) =>
      initialize(host.subarray(this.slots[i].offset, this.slots[i].offset + this.slots[i].size), s, seed)
    );
    gpu.write(this.values, host);
    gpu.clear(this.grads);
  }

  /** The parameter called `name`, or an error listing close names. */
  get(name: string): Parameter {
    const p = this.#byName.get(name);
    if (!p) {
      const close = this.slots.map((s) => s.name).filter((n) => n.startsWith(name.split(".")[0])).slice(0, 5);
      throw new Error(
        `Cannot find parameter "${name}"${close.length ? `; similar: ${close.join(", ")}` : ""}`,
      );
    }
    return p;
  }

  /** Whether a parameter exists. */
  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** Every parameter in registration order. */
  all(): Parameter[] {
    return this.slots.map((s) => this.#byName.get(s.name)!);
  }

  /** Number of real parameters (without alignment padding). */
  get count(): number {
    return this.slots.reduce((p, s) => p + s.size, 0);
  }

  /** Records zeroing every gradient (one clear). */
  zeroGrads(): void {
    this.gpu.clear(this.grads);
  }

  /** Reads every parameter back by name (waits on the GPU). */
  async readValues(): Promise<Map<string, Float32Array>> {
    return this.#split(new Float32Array(await this.gpu.read(this.values, 0, this.totalElements * 4)));
  }

  /** Reads every gradient back by name (waits on the GPU). */
  async readGrads(): Promise<Map<string, Float32Array>> {
    return this.#split(new Float32Array(await this.gpu.read(this.grads, 0, this.totalElements * 4)));
  }

  #split(flat: Float32Array): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const s of this.slots) out.set(s.name, flat.slice(s.offset, s.offset + s.size));
    return out;
  }

  /** The flat host image of `named` values (missing names keep `base`'s values). */
  pack(named: ReadonlyMap<string, Float32Array>, base?: Float32Array): Float32Array {
    const flat = base ? Float32Array.from(base) : new Float32Array(this.totalElements);
    for (const s of this.slots) {
      const v = named.get(s.name);
      if (!v) continue;
      if (v.length !== s.size) {
        throw new RangeError(
          `Cannot load parameter "${s.name}" of shape ${
            fmtShape(s.shape)
          } from ${v.length} values: it needs ${s.size}`,
        );
      }
      flat.set(v, s.offset);
    }
    return flat;
  }

  /** Uploads gradients by name (tests and tools; queue-ordered before the next submit). */
  writeGradsForTest(named: ReadonlyMap<string, Float32Array>): void {
    this.gpu.writeAfterPending(this.grads, this.pack(named));
  }

  /** Uploads parameter values by name (queue-ordered before the next submit). */
  writeValues(named: ReadonlyMap<string, Float32Array>, base?: Float32Array): void {
    this.gpu.writeAfterPending(this.values, this.pack(named, base));
  }
}

/** Deterministic initial values of one parameter: a pure function of (seed, name). */
export function initialize(out: Float32Array, spec: ParameterSpec, seed: number): void {
  const random = nameSeededUniform(seed, spec.name);
  const init = spec.init;
  switch (init.kind) {
    case "zeros":
      out.fill(0);
      break;
    case "ones":
      out.fill(1);
      break;
    case "uniform":
      for (let i = 0; i < out.length; i++) out[i] = (2 * random() - 1) * init.bound;
      break;
    case "normal":
      for (let i = 0; i < out.length; i++) out[i] = gaussian(random) * init.std;
      if (init.zeroRow0) out.fill(0, 0, spec.shape[spec.shape.length - 1]);
      break;
    case "truncNormal":
      for (let i = 0; i < out.length; i++) {
        let g = gaussian(random);
        while (Math.abs(g) > 2) g = gaussian(random);
        out[i] = g * init.std;
      }
      break;
  }
}

function gaussian(random: () => number): number {
  const u1 = Math.max(random(), 1e-300);
  const u2 = random();
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/**
 * A uniform [0, 1) stream keyed by (seed, name): xoshiro128** seeded through SplitMix32 from the seed and
 * the FNV-1a hash of the name, so each parameter's values depend only on (seed, name).
 */
function nameSeededUniform(seed: number, name: string): () => number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  let sm = (h ^ Math.imul(seed >>> 0, 0x9e3779b9)) >>> 0;
  const splitmix = () => {
    sm = (sm + 0x9e3779b9) >>> 0;
    let z = sm;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix(), b = splitmix(), c = splitmix(), d = splitmix();
  const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;
  const next = () => {
    const result = Math.imul(rotl(Math.imul(b, 5) >>> 0, 7), 9) >>> 0;
    const t = (b << 9) >>> 0;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return result;
  };
  // 53-bit doubles from two draws.
  return () => ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992;
}
