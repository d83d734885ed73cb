/**
 * Kernel descriptions, uniform-parameter packing, and the pipeline cache.
 *
 * A kernel is WGSL source plus the kinds of its bindings in `@group(0)`, in binding order. By
 * convention a kernel with parameters declares `@group(0) @binding(0) var<uniform> p: Params;` and its
 * storage buffers from binding 1; a kernel without parameters starts its storage buffers at binding 0.
 *
 * @module
 */

/** How a binding is used: a uniform block, a read-only storage buffer, or a read-write one. */
export type BindingKind = "uniform" | "read" | "rw";

/** A compute kernel: what to compile and how its bindings are laid out. */
export interface KernelSpec {
  /** Name used in errors, timings and the pipeline cache (e.g. `"layer_norm_forward"`). */
  name: string;
  /** WGSL source. */
  code: string;
  /** Entry point (default `"main"`). */
  entryPoint?: string;
  /** Values for the shader's `override` constants (part of the cache key). */
  constants?: Record<string, number>;
  /**
   * Binding kinds in binding order (binding i of group 0); `null` marks a slot the entry point does not
   * use (left out of the layout; pass `null` as its resource).
   */
  bindings: readonly (BindingKind | null)[];
  /** Kernel family for per-family GPU timing (matmul, attention, norm, elementwise, optimizer, ...). */
  family?: string;
}

/** A compiled kernel: its pipeline and layout, with a numeric id for bind-group caching. */
export interface CompiledKernel {
  readonly id: number;
  readonly spec: KernelSpec;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

/**
 * Packs uniform parameters (u32, i32, f32 scalars) into a 16-byte aligned block, in declaration order
 * of the WGSL struct (which must use only 4-byte scalar fields).
 *
 * @example
 * ```ts
 * import { Params } from "./kernel.ts";
 * const bytes = new Params().u32(4).f32(0.5).bytes();
 * console.log(bytes.byteLength); // 16
 * ```
 */
export class Params {
  readonly #words: number[] = [];
  readonly #kinds: ("u" | "i" | "f")[] = [];

  /** Appends an unsigned 32-bit integer. */
  u32(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      throw new RangeError(`Cannot pack ${value} as a u32 parameter: it must be an integer in [0, 2^32)`);
    }
    this.#words.push(value);
    this.#kinds.push("u");
    return this;
  }

  /** Appends a signed 32-bit integer. */
  i32(value: number): this {
    if (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff) {
      throw new RangeError(
        `Cannot pack ${value} as an i32 parameter: it must be an integer in [-2^31, 2^31)`,
      );
    }
    this.#words.push(value);
    this.#kinds.push("i");
    return this;
  }

  /** Appends a 32-bit float (rounded to f32). */
  f32(value: number): this {
    this.#words.push(value);
    this.#kinds.push("f");
    return this;
  }

  /** The packed bytes, padded to a multiple of 16 bytes. */
  bytes(): Uint8Array {
    const n = Math.max(4, Math.ceil(this.#words.length / 4) * 4);
    const buf = new ArrayBuffer(n * 4);
    const view = new DataView(buf);
    this.#words.forEach((w, i) => {
      const kind = this.#kinds[i];
      if (kind === "f") view.setFloat32(i * 4, w, true);
      else if (kind === "i") view.setInt32(i * 4, w, true);
      else view.setUint32(i * 4, w, true);
    });
    return new Uint8Array(buf);
  }
}

function layoutEntries(bindings: readonly (BindingKind | null)[]): GPUBindGroupLayoutEntry[] {
  const entries: GPUBindGroupLayoutEntry[] = [];
  bindings.forEach((kind, binding) => {
    if (kind === null) return;
    entries.push({
      binding,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: kind === "uniform" ? "uniform" : kind === "read" ? "read-only-storage" : "storage" },
    });
  });
  return entries;
}

/** Errors raised while compiling or running a kernel name the kernel. */
export class KernelError extends Error {
  override name = "KernelError";
}

/**
 * Compiles kernels once per (name, source, constants) and hands back the cached pipeline afterwards.
 * Compilation errors are captured with an error scope and reported, naming the kernel, through
 * `onError` (WebGPU reports them asynchronously).
 */
export class PipelineCache {
  readonly #device: GPUDevice;
  readonly #cache = new Map<string, CompiledKernel>();
  readonly #layouts = new Map<string, GPUBindGroupLayout>();
  readonly #onError: (error: KernelError) => void;
  #nextId = 1;
  /** Milliseconds spent creating pipelines (cold start cost). */
  compileMs = 0;

  constructor(device: GPUDevice, onError: (error: KernelError) => void) {
    this.#device = device;
    this.#onError = onError;
  }

  /** Number of distinct compiled kernels. */
  get size(): number {
    return this.#cache.size;
  }

  /** The compiled kernel for `spec`, compiling it on first use. */
  get(spec: KernelSpec): CompiledKernel {
    const key = cacheKey(spec);
    const hit = this.#cache.get(key);
    if (hit) return hit;
    const t0 = performance.now();
    const layoutKey = spec.bindings.map((b) => b ?? "-").join(",");
    let layout = this.#layouts.get(layoutKey);
    if (!layout) {
      layout = this.#device.createBindGroupLayout({
        entries: layoutEntries(spec.bindings),
        label: layoutKey,
      });
      this.#layouts.set(layoutKey, layout);
    }
    this.#device.pushErrorScope("validation");
    const module = this.#device.createShaderModule({ code: spec.code, label: spec.name });
    const pipeline = this.#device.createComputePipeline({
      label: spec.name,
      layout: this.#device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: spec.entryPoint ?? "main", constants: spec.constants },
    });
    this.#device.popErrorScope().then((error) => {
      if (error) this.#onError(new KernelError(`Cannot compile kernel "${spec.name}": ${error.message}`));
    });
    const compiled: CompiledKernel = { id: this.#nextId++, spec, pipeline, layout };
    this.#cache.set(key, compiled);
    this.compileMs += performance.now() - t0;
    return compiled;
  }
}

function cacheKey(spec: KernelSpec): string {
  const constants = spec.constants
    ? Object.keys(spec.constants).sort().map((k) => `${k}=${spec.constants![k]}`).join(",")
    : "";
  return `${spec.name}\u0000${spec.entryPoint ?? "main"}\u0000${constants}\u0000${spec.code}`;
}
