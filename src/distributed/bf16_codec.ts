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
import { ArenaReductionKernel, bf16Bits } from "./simd_add.ts";

/**
 * Packs and unpacks bf16 arrays. Given a `SharedReduceArena`'s memory (`reduce_arena.ts`), the SIMD kernel
 * works in place on arrays that are views of it (byte offsets into that memory, no copies); other arrays, or without
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
  readonly #kernel: ArenaReductionKernel | null;

  constructor(memory: WebAssembly.Memory | null) {
    this.memory = memory;
    this.#kernel = memory ? new ArenaReductionKernel(memory) : null;
  }

  /** `dst[i]` = the bf16 bits of `src[i]` (rounded to nearest even); equal lengths. */
  pack(src: Float32Array, dst: Uint16Array): void {
    const n = checkLengths("pack", src.length, dst.length);
    if (this.#inMemory(src) && this.#inMemory(dst)) this.#kernel!.packBf16(dst.byteOffset, src.byteOffset, n);
    else for (let i = 0; i < n; i++) dst[i] = bf16Bits(src[i]);
  }

  /** `dst[i]` = the f32 value of bf16 bits `src[i]` (exact); equal lengths. */
  unpack(src: Uint16Array, dst: Float32Array): void {
    const n = checkLengths("unpack", src.length, dst.length);
    if (this.#inMemory(src) && this.#inMemory(dst)) {
      this.#kernel!.unpackBf16(dst.byteOffset, src.byteOffset, n);
    } else {
      const bits = new Uint32Array(dst.buffer, dst.byteOffset, n);
      for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
    }
  }

  #inMemory(array: ArrayBufferView): boolean {
    return this.memory !== null && isArenaView(this.memory, array);
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

const codecs = new WeakMap<WebAssembly.Memory, Bf16Codec>();
const plainCodec = new Bf16Codec(null);

/** The codec over `memory` (one per memory and thread), or the plain-JS one for null. */
export function bf16CodecFor(memory: WebAssembly.Memory | null | undefined): Bf16Codec {
  if (!memory) return plainCodec;
  let codec = codecs.get(memory);
  if (!codec) codecs.set(memory, codec = new Bf16Codec(memory));
  return codec;
}
