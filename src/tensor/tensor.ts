/**
 * GPU tensors: shape/stride metadata over a (pooled or persistent) storage buffer, plus the links the
 * tape-based autograd needs.
 *
 * Memory: a tensor allocated while a {@linkcode Scope} is active belongs to it and returns its buffer
 * to the pool when the scope is disposed (a training step is one scope); tensors created with
 * `persistent: true` (parameters, gradients, optimizer state) live until `dispose()`.
 *
 * @module
 */
import type { Gpu } from "../gpu/gpu.ts";
import type { GpuBuffer } from "../gpu/buffer_pool.ts";

/**
 * Element types. `f16` (IEEE binary16) is read by kernels through the `shader-f16` feature; `bf16` has no
 * WGSL type: its bit patterns are stored two per u32 word (the little-endian layout of an array of
 * 16-bit values, like `f16`) and unpacked by shifts. Both are produced by `src/ops/cast.ts`.
 */
export type DType = "f32" | "i32" | "u32" | "f16" | "bf16";

/** The 16-bit floating-point element types of mixed precision. */
export type HalfDType = "f16" | "bf16";

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Record<DType, number> = { f32: 4, i32: 4, u32: 4, f16: 2, bf16: 2 };

/** A node of the autograd tape: how to turn the output's gradient into the inputs' gradients. */
export interface GradNode {
  /** Op name (errors, debugging). */
  readonly op: string;
  /** Inputs in order; `backward` returns one gradient (or null) per input. */
  readonly inputs: readonly Tensor[];
  /** Computes input gradients from the output gradient. Runs with gradient recording off. */
  backward(gradOutput: Tensor): (Tensor | null)[];
}

/** Row-major strides of a shape. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Formats a shape for messages: `[2, 3]`. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

let nextTensorId = 1;
const scopeStack: Scope[] = [];

/** Options for allocating a tensor. */
export interface TensorOptions {
  dtype?: DType;
  /** Outlives every scope (parameters, optimizer state). */
  persistent?: boolean;
  /** Human-readable name (parameter name for parameters). */
  name?: string;
}

/**
 * A dense tensor on the GPU.
 *
 * @example
 * ```ts
 * import { Gpu } from "../gpu/gpu.ts";
 * import { Tensor } from "./tensor.ts";
 * const gpu = await Gpu.create();
 * const t = Tensor.fromArray(gpu, new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
 * console.log(t.shape, await t.toArray());
 * gpu.destroy();
 * ```
 */
export class Tensor {
  /** Unique, increasing id (creation order; used for deterministic tape ordering). */
  readonly id: number;
  readonly gpu: Gpu;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly dtype: DType;
  /** Underlying buffer. */
  readonly buffer: GpuBuffer;
  /** Byte offset of element 0 in `buffer` (a multiple of 256 so it can be bound directly). */
  readonly byteOffset: number;
  /** Whether gradients flow to this tensor. */
  requiresGrad = false;
  /** Accumulated gradient of a leaf tensor (parameters), if one has been attached. */
  grad: Tensor | null = null;
  /** The tape node that produced this tensor (null for leaves). */
  node: GradNode | null = null;
  name: string | undefined;
  /** The tensor whose storage this one views (views never free storage). */
  readonly base: Tensor | null;
  readonly #ownsBuffer: boolean;
  #owner: Scope | null;
  #disposed = false;

  /** Low-level constructor; use {@linkcode Tensor.empty}, {@linkcode Tensor.fromArray} or views instead. */
  constructor(
    gpu: Gpu,
    shape: readonly number[],
    dtype: DType,
    buffer: GpuBuffer,
    byteOffset: number,
    strides: readonly number[] | null,
    owner: Scope | null,
    base: Tensor | null,
    ownsBuffer = false,
  ) {
    this.id = nextTensorId++;
    this.gpu = gpu;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze(strides ? [...strides] : contiguousStrides(shape));
    this.dtype = dtype;
    this.buffer = buffer;
    this.byteOffset = byteOffset;
    this.#owner = owner;
    this.base = base;
    this.#ownsBuffer = ownsBuffer;
    owner?.adopt(this);
  }

  /** A new uninitialized tensor from the pool (scoped unless `persistent`). */
  static empty(gpu: Gpu, shape: readonly number[], options: TensorOptions = {}): Tensor {
    const dtype = options.dtype ?? "f32";
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) {
        throw new RangeError(
          `Cannot create a tensor of shape ${fmtShape(shape)}: dimensions must be integers ≥ 0`,
        );
      }
    }
    const bytes = Math.max(4, Math.ceil(numel(shape) * DTYPE_BYTES[dtype] / 4) * 4);
    const buffer = gpu.pool.acquire(bytes, options.name);
    const owner = options.persistent ? null : currentScope();
    const t = new Tensor(gpu, shape, dtype, buffer, 0, null, owner, null, true);
    t.name = options.name;
    return t;
  }

  /** A tensor filled with zeros (recorded as a clear in the current command encoder). */
  static zeros(gpu: Gpu, shape: readonly number[], options: TensorOptions = {}): Tensor {
    const t = Tensor.empty(gpu, shape, options);
    gpu.clear(t.binding());
    return t;
  }

  /** A tensor holding `data` (uploaded through the queue). */
  static fromArray(
    gpu: Gpu,
    data: Float32Array | Int32Array | Uint32Array | Uint16Array,
    shape: readonly number[],
    options: TensorOptions = {},
  ): Tensor {
    const dtype: DType = options.dtype ??
      (data instanceof Int32Array
        ? "i32"
        : data instanceof Uint32Array
        ? "u32"
        : data instanceof Uint16Array
        ? "f16"
        : "f32");
    if (data.length !== numel(shape)) {
      throw new RangeError(
        `Cannot create a tensor of shape ${fmtShape(shape)} from ${data.length} values: it needs ${
          numel(shape)
        }`,
      );
    }
    const t = Tensor.empty(gpu, shape, { ...options, dtype });
    t.upload(data);
    return t;
  }

  /** A view of `count·elements` at a 256-byte aligned offset into an existing buffer (flat parameter storage). */
  static view(
    gpu: Gpu,
    buffer: GpuBuffer,
    byteOffset: number,
    shape: readonly number[],
    dtype: DType = "f32",
  ): Tensor {
    if (byteOffset % 256 !== 0) {
      throw new RangeError(
        `Cannot create a tensor view at byte offset ${byteOffset}: it must be a multiple of 256`,
      );
    }
    if (byteOffset + numel(shape) * DTYPE_BYTES[dtype] > buffer.size) {
      throw new RangeError(
        `Cannot create a tensor view of ${fmtShape(shape)} at ${byteOffset}: it overruns its buffer`,
      );
    }
    return new Tensor(gpu, shape, dtype, buffer, byteOffset, null, null, null);
  }

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }

  /** Bytes of the elements (not of the pooled buffer). */
  get byteLength(): number {
    return this.size * DTYPE_BYTES[this.dtype];
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  /** True when elements are laid out row-major without gaps. */
  get isContiguous(): boolean {
    const c = contiguousStrides(this.shape);
    return this.shape.every((d, i) => d === 1 || this.strides[i] === c[i]);
  }

  /** The binding of this tensor's bytes (rounded up to 4 bytes). */
  binding(): { buffer: GpuBuffer; offset: number; size: number } {
    const size = Math.max(4, Math.ceil(this.byteLength / 4) * 4);
    return { buffer: this.buffer, offset: this.byteOffset, size };
  }

  /** Writes host data into this tensor (queue-ordered before the next submit). */
  upload(data: ArrayBufferView): void {
    if (data.byteLength !== this.byteLength) {
      throw new RangeError(
        `Cannot upload ${data.byteLength} bytes into a tensor of ${this.byteLength} bytes`,
      );
    }
    if (data.byteLength % 4 === 0) {
      this.gpu.write(this.binding(), data);
    } else {
      const padded = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
      padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      this.gpu.write(this.binding(), padded);
    }
  }

  /** A same-storage tensor with another shape (contiguous tensors only). No gradient link. */
  viewAs(shape: readonly number[]): Tensor {
    if (numel(shape) !== this.size) {
      throw new RangeError(
        `Cannot view ${fmtShape(this.shape)} as ${fmtShape(shape)}: element counts differ`,
      );
    }
    if (!this.isContiguous) {
      throw new RangeError(
        `Cannot view a non-contiguous tensor of shape ${fmtShape(this.shape)}; call contiguous() first`,
      );
    }
    return new Tensor(
      this.gpu,
      shape,
      this.dtype,
      this.buffer,
      this.byteOffset,
      null,
      currentScope(),
      this.base ?? this,
    );
  }

  /** A same-storage tensor with permuted shape and strides (no copy). No gradient link. */
  permutedView(axes: readonly number[]): Tensor {
    const shape = axes.map((a) => this.shape[a]);
    const strides = axes.map((a) => this.strides[a]);
    return new Tensor(
      this.gpu,
      shape,
      this.dtype,
      this.buffer,
      this.byteOffset,
      strides,
      currentScope(),
      this.base ?? this,
    );
  }

  /** Reads the tensor back (waits on the GPU; for tests and tools, not the training hot path). */
  async toArray(): Promise<Float32Array | Int32Array | Uint32Array | Uint16Array> {
    if (!this.isContiguous) {
      throw new RangeError("Cannot read a non-contiguous tensor; call contiguous() first");
    }
    const bytes = await this.gpu.read(this.binding(), 0, this.byteLength);
    switch (this.dtype) {
      case "f32":
        return new Float32Array(bytes, 0, this.size);
      case "i32":
        return new Int32Array(bytes, 0, this.size);
      case "u32":
        return new Uint32Array(bytes, 0, this.size);
      case "f16":
      case "bf16":
        return new Uint16Array(bytes, 0, this.size);
    }
  }

  /** Whether {@linkcode Tensor.dispose} has run. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /**
   * Drops the tensor. A persistent tensor's buffer returns to the pool at once; a scoped tensor's buffer
   * returns when its scope ends (it could not be reused before the step's submit anyway), which keeps the
   * pool's order — and so every step's buffer assignment and bind groups — identical from step to step.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.node = null;
    if (!this.#owner) this.#releaseBuffer();
  }

  /** Returns an owned buffer to the pool exactly once (called by dispose or by the owning scope). */
  #released = false;
  #releaseBuffer(): void {
    if (this.#released || !this.#ownsBuffer) return;
    this.#released = true;
    this.gpu.pool.release(this.buffer);
  }

  /** Called by the owning scope when it ends. */
  static endOfScope(t: Tensor): void {
    t.#disposed = true;
    t.node = null;
    t.#releaseBuffer();
  }

  /** Moves this tensor out of its scope so it survives the scope's disposal. */
  keep(): this {
    this.#owner?.forget(this);
    this.#owner = null;
    return this;
  }
}

/**
 * A set of tensors released together (one training step, one evaluation batch).
 *
 * @example
 * ```ts
 * import { Gpu } from "../gpu/gpu.ts";
 * import { Scope, Tensor } from "./tensor.ts";
 * const gpu = await Gpu.create();
 * const scope = Scope.begin();
 * Tensor.zeros(gpu, [4]);
 * gpu.submit();
 * scope.end(); // the buffer returns to the pool
 * gpu.destroy();
 * ```
 */
export class Scope {
  readonly #tensors = new Set<Tensor>();

  /** Pushes a new scope; tensors created until `end()` belong to it. */
  static begin(): Scope {
    const s = new Scope();
    scopeStack.push(s);
    return s;
  }

  /** Registers a tensor (called by the Tensor constructor). */
  adopt(t: Tensor): void {
    this.#tensors.add(t);
  }

  /** Unregisters a kept tensor. */
  forget(t: Tensor): void {
    this.#tensors.delete(t);
  }

  /**
   * Pops the scope and disposes its tensors (their GPU work stays valid: the queue is ordered). Buffers
   * return to the pool in reverse allocation order, so the pool's LIFO free lists hand the next step the
   * very same buffers in the same order — and every cached bind group keeps matching.
   */
  end(): void {
    const i = scopeStack.lastIndexOf(this);
    if (i >= 0) scopeStack.splice(i, 1);
    const tensors = [...this.#tensors];
    for (let j = tensors.length - 1; j >= 0; j--) Tensor.endOfScope(tensors[j]);
    this.#tensors.clear();
  }

  /** Number of live tensors in this scope. */
  get size(): number {
    return this.#tensors.size;
  }
}

/** The innermost active scope, if any. */
export function currentScope(): Scope | null {
  return scopeStack.length ? scopeStack[scopeStack.length - 1] : null;
}

/** Runs `fn` inside a fresh scope, keeping whatever tensor(s) it returns. */
export function tidy<T>(fn: () => T): T {
  const scope = Scope.begin();
  try {
    const out = fn();
    if (out instanceof Tensor) out.keep();
    else if (Array.isArray(out)) { for (const t of out) if (t instanceof Tensor) t.keep(); }
    return out;
  } finally {
    scope.end();
  }
}
