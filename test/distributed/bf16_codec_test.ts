/**
 * The host bf16 codec of gradient compression: the SIMD kernel (on arena views) and the JS path give the
 * bits of the exact reference (`f32ToBf16Bits`: nearest by f64 distance, ties to even) for ties, ±0, ±inf,
 * NaN, subnormals, rounding past the largest finite value and random bit patterns; unpacking is exact.
 */
import assert from "node:assert/strict";
import { Bf16Codec } from "../../src/distributed/bf16_codec.ts";
import { bf16Bits } from "../../src/distributed/simd_add.ts";
import { isArenaView, SharedReduceArena } from "../../src/distributed/reduce_arena.ts";
import { bf16BitsToF32, f32ToBf16Bits } from "../../src/ops/cast.ts";

function fromBits(bits: number[]): Float32Array {
  return new Float32Array(Uint32Array.from(bits).buffer);
}

/** Targeted patterns (ties either way, specials), then random 32-bit patterns (every exponent, NaNs). */
function testValues(length: number): Float32Array {
  const targeted = [
    0x00000000,
    0x80000000,
    0x3f800000,
    0x3f808000,
    0x3f818000,
    0x3f808001,
    0x3f807fff,
    0x7f800000,
    0xff800000,
    0x7fc00000,
    0xffc00001,
    0x7f800001,
    0xff800001,
    0x7f7f0000,
    0x7f7f7fff,
    0x7f7f8000,
    0x7f7fffff,
    0xff7fffff,
    0x00000001,
    0x807fffff,
    0x00008000,
    0x00018000,
    0x0000ffff,
    0xffffffff,
  ];
  const bits = new Uint32Array(length);
  let state = 0x9e3779b9;
  for (let i = 0; i < length; i++) {
    state = Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) >>> 0;
    state = (state ^ Math.imul(state ^ (state >>> 12), 0x297a2d39)) >>> 0;
    bits[i] = i < targeted.length ? targeted[i] : state;
  }
  return new Float32Array(bits.buffer);
}

function firstMismatches(got: Uint16Array, want: (i: number) => number, label: string): void {
  const bad: string[] = [];
  let count = 0;
  for (let i = 0; i < got.length; i++) {
    if (got[i] !== want(i)) {
      count++;
      if (bad.length < 8) bad.push(`  [${i}] got 0x${got[i].toString(16)} want 0x${want(i).toString(16)}`);
    }
  }
  assert.equal(count, 0, `${label}: ${count} of ${got.length} differ\n${bad.join("\n")}`);
}

Deno.test("bf16Bits equals the exact reference on targeted and random patterns", () => {
  const x = testValues(20_000);
  const got = Uint16Array.from(x, (v) => bf16Bits(v));
  firstMismatches(got, (i) => f32ToBf16Bits(x[i]), "bf16Bits");
  assert.equal(bf16Bits(1 + 2 ** -8), 0x3f80); // tie → even
  assert.equal(bf16Bits(1 + 3 * 2 ** -8), 0x3f82); // tie → even (up)
  assert.equal(bf16Bits(fromBits([0x7f7fffff])[0]), 0x7f80); // past the largest finite → inf
});

Deno.test("Bf16Codec: the SIMD kernel on arena views and the JS path give the reference bits, any length", () => {
  const arena = new SharedReduceArena(1 << 20);
  const simd = new Bf16Codec(arena.memory);
  const js = new Bf16Codec(null);
  for (const length of [0, 1, 7, 8, 9, 15, 16, 17, 1000, 4099]) {
    const x = testValues(length);
    // Arena views at a few offsets (2-byte aligned bf16 halves, 4-byte f32s, neither 16-aligned).
    const f32Offset = arena.allocate(length * 4 + 64) + 4;
    const bf16Offset = arena.allocate(length * 2 + 64) + 2;
    const src = arena.float32(f32Offset, length);
    src.set(x);
    const packed = new Uint16Array(src.buffer, bf16Offset, length);
    assert.ok(isArenaView(arena.memory, src) && isArenaView(arena.memory, packed)); // the SIMD path
    simd.pack(src, packed);
    firstMismatches(packed, (i) => f32ToBf16Bits(x[i]), `SIMD pack, length ${length}`);
    const plain = new Uint16Array(length);
    js.pack(x, plain);
    firstMismatches(plain, (i) => f32ToBf16Bits(x[i]), `JS pack, length ${length}`);

    // Unpack into the arena (SIMD) and into a plain array (JS): exact widening.
    const back = arena.float32(f32Offset, length);
    back.fill(123);
    simd.unpack(packed, back);
    const backPlain = new Float32Array(length);
    js.unpack(plain, backPlain);
    for (let i = 0; i < length; i++) {
      const want = bf16BitsToF32(f32ToBf16Bits(x[i]));
      assert.ok(
        Object.is(back[i], want) || (Number.isNaN(back[i]) && Number.isNaN(want)),
        `SIMD unpack [${i}]: ${back[i]} vs ${want}`,
      );
      assert.equal(new Uint32Array(back.buffer, back.byteOffset + 4 * i, 1)[0], packed[i] << 16 >>> 0);
      assert.equal(new Uint32Array(backPlain.buffer, 4 * i, 1)[0], plain[i] << 16 >>> 0);
    }
    arena.release(f32Offset - 4);
    arena.release(bf16Offset - 2);
  }
});

Deno.test("Bf16Codec: arrays outside the arena take the JS path; unequal lengths are refused", () => {
  const arena = new SharedReduceArena(1 << 16);
  const codec = new Bf16Codec(arena.memory);
  const x = testValues(33);
  const packed = new Uint16Array(33);
  codec.pack(x, packed); // plain arrays: JS path
  firstMismatches(packed, (i) => f32ToBf16Bits(x[i]), "plain arrays");
  assert.throws(() => codec.pack(x, new Uint16Array(32)), /holds 32 of the 33 values/);
  assert.throws(() => codec.unpack(new Uint16Array(3), new Float32Array(4)), /holds 4 of the 3 values/);
});
