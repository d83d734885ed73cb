// f32 → 16-bit casts for mixed precision (src/ops/cast.ts), in integer arithmetic on the f32 bit
// patterns so the rounding is exactly round-to-nearest-even on every adapter (no float conversion whose
// rounding or subnormal handling the driver chooses).
//
//   to_f16:  IEEE binary16. NaN → quiet NaN (sign kept); |x| ≥ 65520 (and ±inf) → ±inf (f16 overflow);
//            |x| < 2^-14 → f16 subnormals, rounded to nearest even; f32 subnormals → ±0.
//   to_bf16: the upper 16 bits of the f32, rounded to nearest even (bf16 has f32's exponent range);
//            NaN → quiet NaN (sign kept); ±inf stay ±inf; values that round past the largest bf16 → ±inf.
//
// Output: 16-bit elements packed two per u32 word (element 2w in the low half of word w, i.e. the
// little-endian byte layout of an array<f16>); an odd last element leaves the high half 0.
// Bindings: 0 uniform Params; 1 src (read, the f32 tensor as u32 bits); 2 dst (rw, u32 words).
// One thread per output word; grid (x, y) folded as src/ops/launch.ts grid1d (256 per workgroup).
//
// Gradient compression (src/ops/cast.ts castRangeToBf16 / castRangeFromBf16) works on element ranges of
// flat buffers instead: words [base, base + words) of a packed bf16 buffer hold f32 elements
// [2·base, 2·(base + words)) of a flat f32 buffer, at the same positions.
//   to_bf16_range:   src = the flat f32 buffer (u32 bits), dst = the packed buffer (u32 words).
//   from_bf16_range: src = the packed buffer, dst = the flat f32 buffer (u32 bits); exact (bf16 ⊂ f32).
// One thread per word, 256 per workgroup (a memory-bound copy; one full wave per group on every adapter).

struct Params {
  n: u32,      // elements
  words: u32,  // ceil(n / 2)
  row: u32,    // words per grid row (grid x · 256)
  base: u32,   // first word of the range (range kernels; 0 otherwise)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

fn f16_bits(u: u32) -> u32 {
  let sign = (u >> 16u) & 0x8000u;
  let a = u & 0x7fffffffu;
  if (a > 0x7f800000u) { return sign | 0x7e00u; }
  if (a >= 0x477ff000u) { return sign | 0x7c00u; }
  if (a >= 0x38800000u) {
    var h = (a - 0x38000000u) >> 13u;
    let r = a & 0x1fffu;
    if (r > 0x1000u || (r == 0x1000u && (h & 1u) == 1u)) { h += 1u; }
    return sign | h;
  }
  // Subnormal f16: round(mantissa24 · 2^(e − 126)), a right shift by s = 126 − e ≥ 14.
  let e = a >> 23u;
  if (e < 102u) { return sign; }
  let mant = (a & 0x7fffffu) | 0x800000u;
  let s = 126u - e;
  var q = mant >> s;
  let r = mant & ((1u << s) - 1u);
  let half = 1u << (s - 1u);
  if (r > half || (r == half && (q & 1u) == 1u)) { q += 1u; }
  return sign | q;
}

fn bf16_bits(u: u32) -> u32 {
  if ((u & 0x7fffffffu) > 0x7f800000u) { return (u >> 16u) | 0x0040u; }
  return (u + 0x7fffu + ((u >> 16u) & 1u)) >> 16u;
}

fn word_index(gid: vec3<u32>) -> u32 {
  return gid.y * p.row + gid.x;
}

@compute @workgroup_size(256)
fn to_f16(@builtin(global_invocation_id) gid: vec3<u32>) {
  let w = word_index(gid);
  if (w >= p.words) { return; }
  let i = 2u * w;
  var hi = 0u;
  if (i + 1u < p.n) { hi = f16_bits(src[i + 1u]); }
  dst[w] = f16_bits(src[i]) | (hi << 16u);
}

@compute @workgroup_size(256)
fn to_bf16(@builtin(global_invocation_id) gid: vec3<u32>) {
  let w = word_index(gid);
  if (w >= p.words) { return; }
  let i = 2u * w;
  var hi = 0u;
  if (i + 1u < p.n) { hi = bf16_bits(src[i + 1u]); }
  dst[w] = bf16_bits(src[i]) | (hi << 16u);
}

@compute @workgroup_size(256)
fn to_bf16_range(@builtin(global_invocation_id) gid: vec3<u32>) {
  let w = word_index(gid);
  if (w >= p.words) { return; }
  let word = p.base + w;
  dst[word] = bf16_bits(src[2u * word]) | (bf16_bits(src[2u * word + 1u]) << 16u);
}

@compute @workgroup_size(256)
fn from_bf16_range(@builtin(global_invocation_id) gid: vec3<u32>) {
  let w = word_index(gid);
  if (w >= p.words) { return; }
  let word = p.base + w;
  let packed = src[word];
  dst[2u * word] = packed << 16u;
  dst[2u * word + 1u] = packed & 0xffff0000u;
}
