/**
 * f32 → 16-bit casts of mixed precision (`shaders/cast.wgsl`) and their TypeScript references.
 *
 * The GPU casts work on the f32 bit patterns in integer arithmetic, so rounding is exactly
 * round-to-nearest-even on every adapter: `f16` is IEEE binary16 (overflow → ±inf, subnormals kept, NaN →
 * quiet NaN), `bf16` is the upper half of the f32 rounded to nearest even (f32's exponent range, NaN →
 * quiet NaN). The 16-bit tensors hold two elements per u32 word (the little-endian layout of a 16-bit
 * array), which is what the matmul kernels read (`f16` through `shader-f16` loads, `bf16` by shifts).
 *
 * Casts are not differentiable on their own: `matmul`'s autocast keeps the f32 tensors as the tape's
 * inputs and uses the 16-bit copies only as kernel operands (see `src/ops/matmul.ts`).
 *
 * @module
 */
import src from "../../shaders/cast.wgsl" with { type: "text" };
import type { BufferBinding, Gpu } from "../gpu/gpu.ts";
import { Params } from "../gpu/kernel.ts";
import type { KernelSpec } from "../gpu/kernel.ts";
import { type HalfDType, Tensor } from "../tensor/tensor.ts";
import { expectDtype, grid1d } from "./launch.ts";

const CAST: Record<HalfDType, KernelSpec> = {
  f16: {
    name: "cast.to_f16",
    code: src,
    entryPoint: "to_f16",
    bindings: ["uniform", "read", "rw"],
    family: "cast",
  },
  bf16: {
    name: "cast.to_bf16",
    code: src,
    entryPoint: "to_bf16",
    bindings: ["uniform", "read", "rw"],
    family: "cast",
  },
};

/**
 * Records a cast of the contiguous f32 tensor `x` to `dtype` into a new tensor of the same shape (scoped
 * like any op output).
 *
 * @example
 * ```ts ignore
 * const h = castTo(x, "bf16"); // [rows, cols] bf16 bit patterns, two per u32 word
 * ```
 */
export function castTo(x: Tensor, dtype: HalfDType): Tensor {
  expectDtype("castTo", "the input", x, "f32");
  if (!x.isContiguous) {
    throw new RangeError(
      `Cannot cast a non-contiguous tensor of shape [${
        x.shape.join(", ")
      }] to ${dtype}: call contiguous() first`,
    );
  }
  const out = Tensor.empty(x.gpu, x.shape, { dtype });
  const words = Math.ceil(x.size / 2);
  if (words === 0) return out;
  const grid = grid1d(words);
  const gpu = x.gpu;
  const u = gpu.uniform(new Params().u32(x.size).u32(words).u32(grid[0] * 256).u32(0).bytes());
  gpu.dispatch(CAST[dtype], [u, x.binding(), out.binding()], grid);
  return out;
}

const RANGE = {
  toBf16: {
    name: "cast.to_bf16_range",
    code: src,
    entryPoint: "to_bf16_range",
    bindings: ["uniform", "read", "rw"],
    family: "cast",
  },
  fromBf16: {
    name: "cast.from_bf16_range",
    code: src,
    entryPoint: "from_bf16_range",
    bindings: ["uniform", "read", "rw"],
    family: "cast",
  },
} satisfies Record<string, KernelSpec>;

/**
 * Records the bf16 cast of f32 elements [start, end) of the flat buffer `flat` into the same elements of
 * `packed`, a bf16 buffer of two elements per u32 word (gradient compression: the buckets' read-back).
 * `start` and `end` must be even (whole words).
 *
 * @example
 * ```ts ignore
 * castRangeToBf16(gpu, store.grads, packed, 1024, 4096); // words [512, 2048) of `packed`
 * ```
 */
export function castRangeToBf16(
  gpu: Gpu,
  flat: BufferBinding,
  packed: BufferBinding,
  start: number,
  end: number,
): void {
  dispatchRange(gpu, RANGE.toBf16, flat, packed, start, end);
}

/**
 * Records the exact widening of bf16 elements [start, end) of `packed` into the same f32 elements of `flat`
 * (gradient compression: the reduced buckets' write-back). `start` and `end` must be even.
 */
export function castRangeFromBf16(
  gpu: Gpu,
  packed: BufferBinding,
  flat: BufferBinding,
  start: number,
  end: number,
): void {
  dispatchRange(gpu, RANGE.fromBf16, packed, flat, start, end);
}

function dispatchRange(
  gpu: Gpu,
  spec: KernelSpec,
  from: BufferBinding,
  to: BufferBinding,
  start: number,
  end: number,
): void {
  if (
    !(Number.isInteger(start) && Number.isInteger(end) && start % 2 === 0 && end % 2 === 0 && start <= end)
  ) {
    throw new RangeError(
      `Cannot cast elements [${start}, ${end}) between f32 and packed bf16 as the range must be whole words ` +
        `(even bounds, start ≤ end): current value is [${start}, ${end})`,
    );
  }
  const words = (end - start) / 2;
  if (words === 0) return;
  const grid = grid1d(words);
  const u = gpu.uniform(new Params().u32(end - start).u32(words).u32(grid[0] * 256).u32(start / 2).bytes());
  gpu.dispatch(spec, [u, from, to], grid);
}

const f32Bits = new Float32Array(1);
const u32Bits = new Uint32Array(f32Bits.buffer);

/**
 * TypeScript reference of the GPU f16 cast: the binary16 bit pattern nearest to `x` (rounded to f32
 * first), ties to even; NaN → `0x7e00` with the sign kept.
 */
export function f32ToF16Bits(x: number): number {
  f32Bits[0] = x;
  const u = u32Bits[0];
  const sign = (u >>> 16) & 0x8000;
  if (Number.isNaN(x)) return sign | 0x7e00;
  // Float16Array rounds to nearest even (ECMAScript), including subnormals and overflow to ±inf.
  const h = new Float16Array([f32Bits[0]]);
  return new Uint16Array(h.buffer)[0];
}

/** TypeScript reference of the GPU bf16 cast: RNE of the f32's upper half; NaN → quiet NaN, sign kept. */
export function f32ToBf16Bits(x: number): number {
  f32Bits[0] = x;
  const u = u32Bits[0];
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x0040;
  if ((u & 0x7fffffff) === 0x7f800000) return u >>> 16;
  // Nearest of the two bf16 neighbours by exact f64 distance, ties to the even pattern.
  const lo = u >>> 16;
  const hi = lo + 1;
  const vx = f32Bits[0];
  const vLo = bf16BitsToF32(lo);
  const vHi = (hi & 0x7f80) === 0x7f80 && (lo & 0x7fff) === 0x7f7f
    ? (lo & 0x8000 ? -1 : 1) * 2 ** 128 // one past the largest finite bf16 (rounds to ±inf)
    : bf16BitsToF32(hi);
  const dLo = Math.abs(vx - vLo);
  const dHi = Math.abs(vHi - vx);
  if (dLo < dHi) return lo;
  if (dHi < dLo) return hi & 0xffff;
  return (lo & 1) === 0 ? lo : hi & 0xffff;
}

/** The f32 value of a binary16 bit pattern. */
export function f16BitsToF32(bits: number): number {
  return new Float16Array(new Uint16Array([bits]).buffer)[0];
}

/** The f32 value of a bf16 bit pattern. */
export function bf16BitsToF32(bits: number): number {
  u32Bits[0] = (bits & 0xffff) << 16;
  return f32Bits[0];
}

/** Rounds every value of `x` through `dtype` and back to f32 (host reference of what a kernel reads). */
export function roundThroughHalf(x: Float32Array, dtype: HalfDType): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    out[i] = dtype === "f16" ? f16BitsToF32(f32ToF16Bits(x[i])) : bf16BitsToF32(f32ToBf16Bits(x[i]));
  }
  return out;
}
