/**
 * bf16 gradient compression on the host: f32 ↔ bf16 bit patterns for the gradient exchange
 * (`GradientSyncOptions.compression`), in WebAssembly SIMD over the shared memory that holds the buckets
 * (`DistributedContext.bucketMemory`), with a plain-JS path for arrays outside it.
 *
 * Rounding is the GPU cast's (`shaders/cast.wgsl` `bf16_bits`): round to nearest even on the f32 bit
 * pattern in integer arithmetic, NaN → quiet NaN with the sign kept, ±inf kept, values that round past the
 * largest finite bf16 → ±inf. Both paths give the same bits.
 *
 * @module
 */
import { isArenaView } from "./reduce_arena.ts";
import { buildSimdKernelWasm } from "./simd_add.ts";

interface CodecExports {
  pack_bf16(dst: number, src: number, n: number): void;
  unpack_bf16(dst: number, src: number, n: number): void;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The bf16 bit pattern of f32 `x` (the GPU cast's rounding; see the module docs). */
export function bf16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0];
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x0040;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

let compiledShared: WebAssembly.Module | undefined;

/**
 * Packs and unpacks bf16 arrays. Given a `SharedReduceArena`'s memory (`reduce_arena.ts`), the SIMD kernel works in
 * place on arrays that are views of it (byte offsets into that memory, no copies); other arrays, or without
 * a memory, take the plain-JS path (same bits).
 *
 * @example
 * ```ts
 * import { Bf16Codec } from "./bf16_codec.ts";
 * const codec = new Bf16Codec(null); // plain JS
 * const packed = new Uint16Array(2);
 * codec.pack(Float32Array.of(1, 1 + 2 ** -7), packed);
 * const back = new Float32Array(2);
 * codec.unpack(packed, back);
 * console.log([...back]); // [1, 1.0078125]
 * ```
 */
export class Bf16Codec {
  /** The memory whose arrays the SIMD kernel works on (null: plain JS only). */
  readonly memory: WebAssembly.Memory | null;
  readonly #exports: CodecExports | null;

  constructor(memory: WebAssembly.Memory | null) {
    this.memory = memory;
    if (memory) {
      compiledShared ??= new WebAssembly.Module(
        buildSimdKernelWasm({ importSharedMemory: true }) as Uint8Array<ArrayBuffer>,
      );
      this.#exports = new WebAssembly.Instance(compiledShared, { env: { memory } })
        .exports as unknown as CodecExports;
    } else this.#exports = null;
  }

  /** `dst[i]` = the bf16 bits of `src[i]` (rounded to nearest even); equal lengths. */
  pack(src: Float32Array, dst: Uint16Array): void {
    const n = checkLengths("pack", src.length, dst.length);
    let i = 0;
    if (this.#inMemory(src) && this.#inMemory(dst)) {
      i = n - (n % 8);
      this.#exports!.pack_bf16(dst.byteOffset, src.byteOffset, i);
    }
    for (; i < n; i++) dst[i] = bf16Bits(src[i]);
  }

  /** `dst[i]` = the f32 value of bf16 bits `src[i]` (exact); equal lengths. */
  unpack(src: Uint16Array, dst: Float32Array): void {
    const n = checkLengths("unpack", src.length, dst.length);
    let i = 0;
    if (this.#inMemory(src) && this.#inMemory(dst)) {
      i = n - (n % 8);
      this.#exports!.unpack_bf16(dst.byteOffset, src.byteOffset, i);
    }
    const bits = new Uint32Array(dst.buffer, dst.byteOffset, n);
    for (; i < n; i++) bits[i] = src[i] << 16;
  }

  #inMemory(array: ArrayBufferView): boolean {
    return this.#exports !== null && isArenaView(this.memory!, array);
  }
}

function checkLengths(what: string, src: number, dst: number): number {
  if (src !== dst) {
    throw new RangeError(
      `Cannot ${what} bf16 values as the destination holds ${dst} of the ${src} values: current value is ${dst}`,
    );
  }
  return src;
}
