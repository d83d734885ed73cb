/**
 * f32 → f16/bf16 cast kernels against the TypeScript references (which use Float16Array and exact f64
 * neighbour distances): round-to-nearest-even including ties, ±0, ±inf, NaN, f32 and f16 subnormals, f16
 * overflow to ±inf, bf16 rounding past the largest finite value, odd element counts.
 */
import assert from "node:assert/strict";
import { Tensor } from "../../src/tensor/tensor.ts";
import {
  bf16BitsToF32,
  castRangeFromBf16,
  castRangeToBf16,
  castTo,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
} from "../../src/ops/cast.ts";
import { randomF32, rng } from "../reference/compare.ts";
import { testGpu } from "./op_harness.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

function bitsOf(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0];
}
function fromBits(u: number): number {
  return new Float32Array(new Uint32Array([u]).buffer)[0];
}

/** Special values and every rounding edge of both formats. */
function edgeCases(): Float32Array {
  const v: number[] = [
    0,
    -0,
    1,
    -1,
    Infinity,
    -Infinity,
    NaN,
    -NaN,
    fromBits(0x7fc00001),
    fromBits(0xff800001),
  ];
  // f16: largest finite, the overflow threshold 65520 (a tie that rounds to inf) and its neighbours.
  v.push(65504, -65504, 65519.996, 65520, -65520, 65536, 1e6, -1e30);
  // f16 ties: 1 + 2^-11 (tie → even 1), 1 + 3·2^-11 (tie → odd up), and just above/below.
  v.push(
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    fromBits(bitsOf(1 + 2 ** -11) + 1),
    fromBits(bitsOf(1 + 2 ** -11) - 1),
  );
  // f16 subnormals: 2^-24 (smallest), 2^-25 (tie → 0), just above 2^-25 (→ 2^-24), 3·2^-25 (tie → 2·2^-24),
  // the largest subnormal, the normal/subnormal boundary and its rounding neighbour.
  v.push(2 ** -24, 2 ** -25, fromBits(bitsOf(2 ** -25) + 1), 3 * 2 ** -25, 1023 * 2 ** -24, 2 ** -14);
  v.push(2 ** -14 - 2 ** -25, -(2 ** -24), 2 ** -26, 1e-10);
  // f32 subnormals.
  v.push(fromBits(1), fromBits(0x807fffff), fromBits(0x00400000));
  // bf16: ties at 1 + 2^-8 (→ 1) and 1 + 3·2^-8 (→ up), the largest finite bf16, the f32 max (rounds to inf).
  v.push(1 + 2 ** -8, 1 + 3 * 2 ** -8, fromBits(0x7f7f0000), fromBits(0x7f7f7fff), fromBits(0x7f7f8000));
  v.push(fromBits(0x7f7fffff), fromBits(0xff7fffff), fromBits(0x00008000), fromBits(0x00018000));
  return Float32Array.from(v);
}

async function castOnGpu(x: Float32Array, dtype: "f16" | "bf16"): Promise<Uint16Array> {
  const gpu = await testGpu();
  const t = Tensor.fromArray(gpu, x, [x.length]);
  const h = castTo(t, dtype);
  const out = (await h.toArray()) as Uint16Array;
  t.dispose();
  h.dispose();
  return out;
}

function compareBits(what: string, x: Float32Array, got: Uint16Array, ref: (v: number) => number): void {
  const bad: string[] = [];
  let n = 0;
  for (let i = 0; i < x.length; i++) {
    const want = ref(x[i]);
    if (got[i] !== want) {
      n++;
      if (bad.length < 8) {
        bad.push(
          `  [${i}] x=${x[i]} (0x${bitsOf(x[i]).toString(16)}) got 0x${got[i].toString(16)} want 0x${
            want.toString(16)
          }`,
        );
      }
    }
  }
  assert.equal(n, 0, `${what}: ${n} of ${x.length} casts differ from the reference\n${bad.join("\n")}`);
}

Deno.test("TypeScript references: known bit patterns", () => {
  assert.equal(f32ToF16Bits(1), 0x3c00);
  assert.equal(f32ToF16Bits(65504), 0x7bff);
  assert.equal(f32ToF16Bits(65520), 0x7c00);
  assert.equal(f32ToF16Bits(-Infinity), 0xfc00);
  assert.equal(f32ToF16Bits(2 ** -24), 0x0001);
  assert.equal(f32ToF16Bits(2 ** -25), 0x0000);
  assert.equal(f32ToF16Bits(3 * 2 ** -25), 0x0002);
  assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00);
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(f32ToF16Bits(NaN) & 0x7fff, 0x7e00);
  assert.equal(f32ToBf16Bits(1), 0x3f80);
  assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80);
  assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
  assert.equal(f32ToBf16Bits(fromBits(0x7f7fffff)), 0x7f80);
  assert.equal(f32ToBf16Bits(-Infinity), 0xff80);
  assert.equal(f32ToBf16Bits(fromBits(0x7f800001)), 0x7fc0);
  assert.equal(f16BitsToF32(0x3c01), 1 + 2 ** -10);
  assert.equal(bf16BitsToF32(0xc000), -2);
});

for (const dtype of ["f16", "bf16"] as const) {
  const ref = dtype === "f16" ? f32ToF16Bits : f32ToBf16Bits;
  Deno.test({
    ...opts,
    name: `cast to ${dtype}: edge cases (ties, ±inf, NaN, subnormals, overflow) match the reference bitwise`,
    fn: async () => {
      const x = edgeCases();
      compareBits(`${dtype} edge cases`, x, await castOnGpu(x, dtype), ref);
    },
  });
  Deno.test({
    ...opts,
    name: `cast to ${dtype}: random values over the whole exponent range, odd length`,
    fn: async () => {
      const random = rng(dtype === "f16" ? 11 : 12);
      const n = 20001;
      const x = new Float32Array(n);
      const wide = new Uint32Array(x.buffer);
      for (let i = 0; i < n; i++) wide[i] = Math.floor(random() * 2 ** 32) >>> 0; // every bit pattern
      const small = randomF32(n, random, -1e-4, 1e-4); // the f16 subnormal range
      const both = new Float32Array(2 * n);
      both.set(x);
      both.set(small, n);
      const got = await castOnGpu(both, dtype);
      compareBits(`${dtype} random`, both, got, ref);
    },
  });
}

Deno.test({
  ...opts,
  name: "bf16 range casts (gradient compression): only [start, end) changes, bits match the reference",
  fn: async () => {
    const gpu = await testGpu();
    const n = 1200;
    const random = rng(13);
    const x = new Float32Array(n);
    const wide = new Uint32Array(x.buffer);
    for (let i = 0; i < n; i++) wide[i] = Math.floor(random() * 2 ** 32) >>> 0;
    x.set(edgeCases(), 100);
    const flat = gpu.pool.acquire(n * 4, "test.flat");
    const packed = gpu.pool.acquire(n * 2, "test.packed");
    const back = gpu.pool.acquire(n * 4, "test.back");
    try {
      gpu.write(flat, x);
      gpu.write(packed, new Uint32Array(n / 2).fill(0xdeadbeef));
      gpu.write(back, new Uint32Array(n).fill(0xcafef00d));
      const [start, end] = [96, 1042];
      castRangeToBf16(gpu, flat, packed, start, end);
      castRangeFromBf16(gpu, packed, back, 200, 900);
      const reads = [gpu.readback(packed, 0, n * 2), gpu.readback(back, 0, n * 4)];
      gpu.submit();
      const [packedBits, backBits] = [new Uint16Array(await reads[0]), new Uint32Array(await reads[1])];
      for (let i = 0; i < n; i++) {
        const want = i >= start && i < end ? f32ToBf16Bits(x[i]) : (i % 2 === 0 ? 0xbeef : 0xdead);
        assert.equal(packedBits[i], want, `packed [${i}] (x bits 0x${wide[i].toString(16)})`);
        const wantBack = i >= 200 && i < 900 ? (packedBits[i] << 16) >>> 0 : 0xcafef00d;
        assert.equal(backBits[i], wantBack, `widened [${i}]`);
      }
      assert.throws(() => castRangeToBf16(gpu, flat, packed, 1, 10), /must be whole words/);
    } finally {
      for (const b of [flat, packed, back]) gpu.pool.release(b);
    }
  },
});
