// Philox4x32-10 counter-based generator (Salmon et al., SC'11), shared by kernels that draw random
// numbers (dropout masks). Not a standalone kernel: its text is prepended to a kernel's source by
// src/ops/philox.ts. Same (key, counter) → same four u32 words, on every GPU and in the TypeScript twin
// (src/ops/philox.ts `philox4x32`), which the tests compare bit for bit.

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// 32×32 → 64-bit product as (hi, lo) from 16-bit halves (WGSL has no 64-bit integers).
fn philox_mulhilo(a: u32, b: u32) -> vec2<u32> {
  let a_lo = a & 0xFFFFu;
  let a_hi = a >> 16u;
  let b_lo = b & 0xFFFFu;
  let b_hi = b >> 16u;
  let ll = a_lo * b_lo;
  let lh = a_lo * b_hi;
  let hl = a_hi * b_lo;
  let hh = a_hi * b_hi;
  let mid = (ll >> 16u) + (lh & 0xFFFFu) + (hl & 0xFFFFu);
  let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
  return vec2<u32>(hi, a * b);
}

fn philox4x32(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
  var c = counter;
  var k = key;
  for (var r = 0u; r < 10u; r++) {
    let p0 = philox_mulhilo(PHILOX_M0, c.x);
    let p1 = philox_mulhilo(PHILOX_M1, c.z);
    c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    k = k + vec2<u32>(PHILOX_W0, PHILOX_W1);
  }
  return c;
}

// Uniform in [0, 1) with 24 random bits (exact in f32).
fn philox_unit(word: u32) -> f32 {
  return f32(word >> 8u) * (1.0 / 16777216.0);
}
