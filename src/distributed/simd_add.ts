/**
 * Element-wise f32 kernels for the all-reduce, in WebAssembly SIMD (128-bit lanes) with a plain-JS twin.
 *
 * The module is emitted byte by byte from {@link buildSimdKernelWasm} (a tiny assembler, no toolchain),
 * instantiated once per process, and works on staging areas inside its own linear memory. Both the SIMD and
 * the JS paths round every lane exactly like IEEE-754 binary32 `a + b` and `a / d`, so results are
 * bit-identical whichever path ran.
 *
 * @module
 */

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

/** Unsigned LEB128. */
function uleb(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

/** Signed LEB128 for i32 constants. */
function sleb(value: number): number[] {
  const out: number[] = [];
  let v = value | 0;
  while (true) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function name(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...uleb(bytes.length), ...bytes];
}

// Instruction helpers (only what the two kernels need).
const op = {
  localGet: (i: number) => [0x20, ...uleb(i)],
  localSet: (i: number) => [0x21, ...uleb(i)],
  i32Const: (v: number) => [0x41, ...sleb(v)],
  i32Add: [0x6a],
  i32And: [0x71],
  i32Shl: [0x74],
  i32ShrU: [0x76],
  i32GeU: [0x4f],
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  end: [0x0b],
  br: (depth: number) => [0x0c, ...uleb(depth)],
  brIf: (depth: number) => [0x0d, ...uleb(depth)],
  f32Load: [0x2a, 2, 0],
  f32Store: [0x38, 2, 0],
  f32Add: [0x92],
  f32Div: [0x95],
  simd: (code: number, ...imm: number[]) => [0xfd, ...uleb(code), ...imm],
};
const v128Load = op.simd(0x00, 4, 0);
const v128Store = op.simd(0x0b, 4, 0);
const f32x4Splat = op.simd(0x13);
const f32x4Add = op.simd(0xe4);
const f32x4Div = op.simd(0xe7);

/** `base + offset` from two locals: the byte address a load or store takes. */
function address(base: number, offset: number): number[] {
  return [...op.localGet(base), ...op.localGet(offset), ...op.i32Add];
}

/** `for (; i < end; i += step) body`: a block around a loop that breaks once local `i` reaches local `end`. */
function countedLoop(i: number, end: number, step: number, body: number[]): number[] {
  return [
    ...op.block,
    ...op.loop,
    ...op.localGet(i),
    ...op.localGet(end),
    ...op.i32GeU,
    ...op.brIf(1),
    ...body,
    ...op.localGet(i),
    ...op.i32Const(step),
    ...op.i32Add,
    ...op.localSet(i),
    ...op.br(0),
    ...op.end,
    ...op.end,
  ];
}

/**
 * `add_f32(dst, a, b, n)`: `dst[i] = a[i] + b[i]` for `n` floats at byte offsets dst/a/b (4-lane SIMD body
 * unrolled twice, scalar tail). Params 0..3, locals: 4 = i (bytes), 5 = end32, 6 = end (bytes).
 */
function addBody(): number[] {
  const [dst, a, b, n, i, end32, end] = [0, 1, 2, 3, 4, 5, 6];
  const lane = (offset: number) => [
    ...address(dst, i),
    ...address(a, i),
    ...op.simd(0x00, 4, ...uleb(offset)),
    ...address(b, i),
    ...op.simd(0x00, 4, ...uleb(offset)),
    ...f32x4Add,
    ...op.simd(0x0b, 4, ...uleb(offset)),
  ];
  const code = [
    ...op.localGet(n),
    ...op.i32Const(2),
    ...op.i32Shl,
    ...op.localSet(end),
    ...op.localGet(end),
    ...op.i32Const(-32),
    ...op.i32And,
    ...op.localSet(end32),
    ...countedLoop(i, end32, 32, [
      ...lane(0),
      ...lane(16),
    ]),
    ...countedLoop(i, end, 4, [
      ...address(dst, i),
      ...address(a, i),
      ...op.f32Load,
      ...address(b, i),
      ...op.f32Load,
      ...op.f32Add,
      ...op.f32Store,
    ]),
    ...op.end,
  ];
  return [...vec([[3, I32]]), ...code];
}

/**
 * `div_f32(ptr, n, d)`: `x[i] = x[i] / d` in place. Params 0..2, locals: 3 = i, 4 = end16, 5 = end, 6 = splat.
 */
function divBody(): number[] {
  const [ptr, n, d, i, end16, end, splat] = [0, 1, 2, 3, 4, 5, 6];
  const code = [
    ...op.localGet(n),
    ...op.i32Const(2),
    ...op.i32Shl,
    ...op.localSet(end),
    ...op.localGet(end),
    ...op.i32Const(-16),
    ...op.i32And,
    ...op.localSet(end16),
    ...op.localGet(d),
    ...f32x4Splat,
    ...op.localSet(splat),
    ...countedLoop(i, end16, 16, [
      ...address(ptr, i),
      ...address(ptr, i),
      ...v128Load,
      ...op.localGet(splat),
      ...f32x4Div,
      ...v128Store,
    ]),
    ...countedLoop(i, end, 4, [
      ...address(ptr, i),
      ...address(ptr, i),
      ...op.f32Load,
      ...op.localGet(d),
      ...op.f32Div,
      ...op.f32Store,
    ]),
    ...op.end,
  ];
  return [...vec([[3, I32], [1, V128]]), ...code];
}

const i32x4Splat = op.simd(0x11);
const f32x4Ne = op.simd(0x42);
const v128And = op.simd(0x4e);
const v128Or = op.simd(0x50);
const v128Bitselect = op.simd(0x52);
const i16x8NarrowI32x4U = op.simd(0x86);
const i32x4ExtendLowI16x8U = op.simd(0xa9);
const i32x4ExtendHighI16x8U = op.simd(0xaa);
const i32x4Shl = op.simd(0xab);
const i32x4ShrU = op.simd(0xad);
const i32x4Add = op.simd(0xae);

/**
 * `pack_bf16(dst, src, n)`: bf16 bit patterns of `n` f32 values (n a multiple of 8; the caller does the
 * tail), rounded to nearest even with integer lane arithmetic: `(u + 0x7fff + ((u >> 16) & 1)) >> 16`, and
 * NaN → `(u >> 16) | 0x40` (quiet, sign kept) — `shaders/cast.wgsl`'s `bf16_bits`. Params 0..2, locals:
 * 3 = k (src bytes), 4 = end, 5 = a, 6 = b (v128).
 */
function packBf16Body(): number[] {
  const [dst, src, n, k, end, a, b] = [0, 1, 2, 3, 4, 5, 6];
  const splat = (v: number) => [...op.i32Const(v), ...i32x4Splat];
  const rounded = (x: number) => [
    // NaN lanes: the quiet pattern.
    ...op.localGet(x),
    ...op.i32Const(16),
    ...i32x4ShrU,
    ...splat(0x40),
    ...v128Or,
    // Other lanes: round to nearest even.
    ...op.localGet(x),
    ...splat(0x7fff),
    ...i32x4Add,
    ...op.localGet(x),
    ...op.i32Const(16),
    ...i32x4ShrU,
    ...splat(1),
    ...v128And,
    ...i32x4Add,
    ...op.i32Const(16),
    ...i32x4ShrU,
    ...op.localGet(x),
    ...op.localGet(x),
    ...f32x4Ne,
    ...v128Bitselect,
  ];
  const code = [
    ...op.localGet(n),
    ...op.i32Const(2),
    ...op.i32Shl,
    ...op.i32Const(-32),
    ...op.i32And,
    ...op.localSet(end),
    ...countedLoop(k, end, 32, [
      ...address(src, k),
      ...v128Load,
      ...op.localSet(a),
      ...address(src, k),
      ...op.simd(0x00, 4, ...uleb(16)),
      ...op.localSet(b),
      // dst + k / 2
      ...op.localGet(dst),
      ...op.localGet(k),
      ...op.i32Const(1),
      ...op.i32ShrU,
      ...op.i32Add,
      ...rounded(a),
      ...rounded(b),
      ...i16x8NarrowI32x4U,
      ...v128Store,
    ]),
    ...op.end,
  ];
  return [...vec([[2, I32], [2, V128]]), ...code];
}

/**
 * `unpack_bf16(dst, src, n)`: f32 values of `n` bf16 bit patterns (n a multiple of 8; the caller does the
 * tail): each 16-bit lane widened and shifted into the upper half. Params 0..2, locals: 3 = k (src bytes),
 * 4 = end, 5 = d (dst address), 6 = v (v128).
 */
function unpackBf16Body(): number[] {
  const [dst, src, n, k, end, d, v] = [0, 1, 2, 3, 4, 5, 6];
  const half = (extend: number[], offset: number) => [
    ...op.localGet(d),
    ...op.localGet(v),
    ...extend,
    ...op.i32Const(16),
    ...i32x4Shl,
    ...op.simd(0x0b, 4, ...uleb(offset)),
  ];
  const code = [
    ...op.localGet(n),
    ...op.i32Const(1),
    ...op.i32Shl,
    ...op.i32Const(-16),
    ...op.i32And,
    ...op.localSet(end),
    ...countedLoop(k, end, 16, [
      ...address(src, k),
      ...v128Load,
      ...op.localSet(v),
      ...op.localGet(dst),
      ...op.localGet(k),
      ...op.i32Const(1),
      ...op.i32Shl,
      ...op.i32Add,
      ...op.localSet(d),
      ...half(i32x4ExtendLowI16x8U, 0),
      ...half(i32x4ExtendHighI16x8U, 16),
    ]),
    ...op.end,
  ];
  return [...vec([[3, I32], [1, V128]]), ...code];
}

/** Largest size of a shared kernel memory, in 64 KiB pages (4 GiB, all of wasm32's address space). */
export const SHARED_MEMORY_MAX_PAGES = 65536;

/**
 * Emits the kernel module: exports `memory`, `add_f32(dst, a, b, n)`, `div_f32(ptr, n, d)`, and the bf16
 * codec's `pack_bf16(dst, src, n)` and `unpack_bf16(dst, src, n)` (`bf16_codec.ts`); pointers
 * are byte offsets into `memory`. By default the module defines its own memory (grown by the host); with
 * `importSharedMemory` it imports `env.memory`, a shared memory of at most
 * {@link SHARED_MEMORY_MAX_PAGES} pages (one memory used by several threads, see {@link ArenaReductionKernel}).
 */
export function buildSimdKernelWasm(options: { importSharedMemory?: boolean } = {}): Uint8Array {
  const types = section(
    1,
    vec([
      [0x60, ...vec([[I32], [I32], [I32], [I32]]), 0],
      [0x60, ...vec([[I32], [I32], [F32]]), 0],
      [0x60, ...vec([[I32], [I32], [I32]]), 0],
    ]),
  );
  const funcs = section(3, vec([[0], [1], [2], [2]]));
  const imports = options.importSharedMemory
    ? section(
      2,
      vec([[...name("env"), ...name("memory"), 0x02, 0x03, ...uleb(1), ...uleb(SHARED_MEMORY_MAX_PAGES)]]),
    )
    : [];
  const memory = options.importSharedMemory ? [] : section(5, vec([[0x00, ...uleb(1)]]));
  const exports = section(
    7,
    vec([
      [...name("memory"), 0x02, 0],
      [...name("add_f32"), 0x00, 0],
      [...name("div_f32"), 0x00, 1],
      [...name("pack_bf16"), 0x00, 2],
      [...name("unpack_bf16"), 0x00, 3],
    ]),
  );
  const bodies = [addBody(), divBody(), packBf16Body(), unpackBf16Body()].map((
    b,
  ) => [...uleb(b.length), ...b]);
  const code = section(10, vec(bodies));
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...types,
    ...imports,
    ...funcs,
    ...memory,
    ...exports,
    ...code,
  ]);
}

interface KernelExports {
  memory: WebAssembly.Memory;
  add_f32(dst: number, a: number, b: number, n: number): void;
  div_f32(ptr: number, n: number, d: number): void;
  pack_bf16(dst: number, src: number, n: number): void;
  unpack_bf16(dst: number, src: number, n: number): void;
}

let compiled: WebAssembly.Module | undefined;
function kernelModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(buildSimdKernelWasm() as Uint8Array<ArrayBuffer>);
  return compiled;
}

/** Where the element-wise arithmetic of the all-reduce runs. */
export type ReductionKernelName = "wasm-simd" | "js";

/**
 * The all-reduce's arithmetic on one received chunk, in place: the ring adds this rank's values into the
 * chunk it received and forwards that same buffer, so the caller's bucket is only written once, with the
 * final mean. Every lane rounds exactly like IEEE binary32 `a + b` and `a / d`.
 */
export interface ReductionKernel {
  readonly name: ReductionKernelName;
  /** `received[i] = received[i] + local[i]`. */
  addInto(received: Float32Array, local: Float32Array): void;
  /** `received[i] = (received[i] + local[i]) / divisor` (the add rounded first). */
  addDivideInto(received: Float32Array, local: Float32Array, divisor: number): void;
}

/** Plain JS loops. */
export const jsReductionKernel: ReductionKernel = {
  name: "js",
  addInto(received, local) {
    const n = received.length;
    for (let i = 0; i < n; i++) received[i] = received[i] + local[i];
  },
  addDivideInto(received, local, divisor) {
    const n = received.length;
    for (let i = 0; i < n; i++) received[i] = Math.fround(received[i] + local[i]) / divisor;
  },
};

/** Bytes of each of the two scratch areas (one full chunk each). */
const SCRATCH_BYTES = 4 * 1024 * 1024;

/**
 * WebAssembly SIMD kernel: copies the received chunk and the local values into two 4 MiB scratch areas of
 * its linear memory, adds (and divides) with f32x4 lanes, and copies the result back into the received
 * chunk. Chunks longer than a scratch area are processed in slices.
 */
export class WasmReductionKernel implements ReductionKernel {
  readonly name = "wasm-simd" as const;
  readonly #exports: KernelExports;
  readonly #a: Float32Array;
  readonly #b: Float32Array;

  constructor() {
    this.#exports = new WebAssembly.Instance(kernelModule()).exports as unknown as KernelExports;
    const memory = this.#exports.memory;
    memory.grow(Math.ceil((2 * SCRATCH_BYTES - memory.buffer.byteLength) / 65536));
    this.#a = new Float32Array(memory.buffer, 0, SCRATCH_BYTES / 4);
    this.#b = new Float32Array(memory.buffer, SCRATCH_BYTES, SCRATCH_BYTES / 4);
  }

  addInto(received: Float32Array, local: Float32Array): void {
    this.#run(received, local, null);
  }

  addDivideInto(received: Float32Array, local: Float32Array, divisor: number): void {
    this.#run(received, local, divisor);
  }

  #run(received: Float32Array, local: Float32Array, divisor: number | null): void {
    if (received.length !== local.length) {
      throw new RangeError(`Cannot add chunks of different lengths: ${received.length} vs ${local.length}`);
    }
    const slice = this.#a.length;
    for (let start = 0; start < received.length; start += slice) {
      const n = Math.min(slice, received.length - start);
      const r = received.subarray(start, start + n);
      this.#a.set(r);
      this.#b.set(local.subarray(start, start + n));
      this.#exports.add_f32(0, 0, SCRATCH_BYTES, n);
      if (divisor !== null) this.#exports.div_f32(0, n, divisor);
      r.set(this.#a.subarray(0, n));
    }
  }
}

let compiledShared: WebAssembly.Module | undefined;

/**
 * The SIMD kernel over a shared `WebAssembly.Memory` that holds both the received chunks and the buckets
 * (an arena several threads use): it adds and divides in place at byte offsets, with no staging copies.
 * Bit-identical to {@link WasmReductionKernel} and {@link jsReductionKernel}.
 *
 * @example
 * ```ts
 * const memory = new WebAssembly.Memory({ initial: 2, maximum: SHARED_MEMORY_MAX_PAGES, shared: true });
 * const kernel = new ArenaReductionKernel(memory);
 * kernel.add(0, 0, 65536, 16); // f32 [0, 64) += f32 [65536, 65600)
 * ```
 */
export class ArenaReductionKernel {
  readonly memory: WebAssembly.Memory;
  readonly #exports: KernelExports;

  constructor(memory: WebAssembly.Memory) {
    compiledShared ??= new WebAssembly.Module(
      buildSimdKernelWasm({ importSharedMemory: true }) as Uint8Array<ArrayBuffer>,
    );
    this.memory = memory;
    this.#exports = new WebAssembly.Instance(compiledShared, { env: { memory } })
      .exports as unknown as KernelExports;
  }

  /** f32 `dst[i] = a[i] + b[i]` for `count` values at byte offsets `dst`, `a`, `b` (may alias). */
  add(dst: number, a: number, b: number, count: number): void {
    this.#exports.add_f32(dst, a, b, count);
  }

  /** f32 `dst[i] = (a[i] + b[i]) / divisor` (the add rounded first). */
  addDivide(dst: number, a: number, b: number, count: number, divisor: number): void {
    this.#exports.add_f32(dst, a, b, count);
    this.#exports.div_f32(dst, count, divisor);
  }

  /**
   * bf16 bits (u16 at byte offset `dst`) of `count` f32 values at byte offset `src`, rounded to nearest even
   * (NaN → quiet NaN): {@linkcode bf16Bits}, SIMD for whole groups of 8.
   */
  packBf16(dst: number, src: number, count: number): void {
    const body = count - (count % 8);
    if (body > 0) this.#exports.pack_bf16(dst, src, body);
    if (body === count) return;
    const view = new DataView(this.memory.buffer);
    for (let i = body; i < count; i++) {
      view.setUint16(dst + 2 * i, bf16Bits(view.getFloat32(src + 4 * i, true)), true);
    }
  }

  /** f32 values (at byte offset `dst`) of `count` bf16 bit patterns at byte offset `src` (exact). */
  unpackBf16(dst: number, src: number, count: number): void {
    const body = count - (count % 8);
    if (body > 0) this.#exports.unpack_bf16(dst, src, body);
    if (body === count) return;
    const view = new DataView(this.memory.buffer);
    for (let i = body; i < count; i++) {
      view.setUint32(dst + 4 * i, view.getUint16(src + 2 * i, true) << 16, true);
    }
  }
}

const bitsF32 = new Float32Array(1);
const bitsU32 = new Uint32Array(bitsF32.buffer);

/**
 * The bf16 bit pattern of f32 `x`: the upper half rounded to nearest even in integer arithmetic, NaN → quiet
 * NaN with the sign kept, ±inf kept, values past the largest finite bf16 → ±inf (`shaders/cast.wgsl`'s
 * `bf16_bits`).
 *
 * @example
 * ```ts
 * import { bf16Bits } from "./simd_add.ts";
 * console.log(bf16Bits(1 + 2 ** -8).toString(16)); // "3f80" (a tie: to even)
 * ```
 */
export function bf16Bits(x: number): number {
  bitsF32[0] = x;
  const u = bitsU32[0];
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x0040;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Picks a kernel by name. */
export function reductionKernel(name: ReductionKernelName = "wasm-simd"): ReductionKernel {
  return name === "js" ? jsReductionKernel : new WasmReductionKernel();
}
