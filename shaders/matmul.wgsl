// Batched f32 matrix multiply with optional transposed operands and a bias/accumulate epilogue
// (src/ops/matmul.ts: the fallback where no generated configuration of src/ops/matmul_codegen.ts fits the
// device, and the reference the generated kernels are tested against bit for bit; ~0.4 TFLOP/s on an H200,
// about 1/100 of the generated kernels, so "auto" picks it only where none fits, or for K = 0).
//
//   C[b] = alpha · op(A[b]) · op(B[b]) + bias (broadcast over rows) + beta · C[b]
//   op(A) is M×K: A stored [M, K] row-major, or [K, M] when trans_a = 1.
//   op(B) is K×N: B stored [K, N] row-major, or [N, K] when trans_b = 1.
//
// Bindings: 0 uniform Params; 1 A (read, f32, batch stride p.stride_a elements; 0 = shared);
//           2 B (read, f32, batch stride p.stride_b); 3 bias (read, f32 [N]; ignored unless p.has_bias);
//           4 C (read_write, f32 [batch, M, N] contiguous).
// Mixed precision: src/ops/matmul.ts derives variants whose A and/or B hold 16-bit elements by replacing
// the A/B binding lines and the read_a/read_b functions below (f16 via `enable f16;`, bf16 as two bit
// patterns per u32 word); values are widened exactly to f32 on load, accumulation and C stay f32.
// Workgroup: 16×16 threads computing a 64×64 tile of C, 4×4 outputs per thread, K in steps of 16
// through workgroup memory (2 × 64×16 floats = 8 KiB, under every adapter's 16 KiB minimum). Tiles are
// bounds-checked, so any M, N, K works. Grid: (ceil(N/64), ceil(M/64), batch).

struct Params {
  m: u32,
  n: u32,
  k: u32,
  trans_a: u32,
  trans_b: u32,
  has_bias: u32,
  stride_a: u32,
  stride_b: u32,
  alpha: f32,
  beta: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
fn read_a(i: u32) -> f32 { return A[i]; }
fn read_b(i: u32) -> f32 { return B[i]; }
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;

var<workgroup> tile_a: array<f32, 1024>; // [16 k][64 m]
var<workgroup> tile_b: array<f32, 1024>; // [16 k][64 n]

fn load_a(base: u32, m: u32, k: u32) -> f32 {
  if (m >= p.m || k >= p.k) { return 0.0; }
  if (p.trans_a == 1u) { return read_a(base + k * p.m + m); }
  return read_a(base + m * p.k + k);
}

fn load_b(base: u32, k: u32, n: u32) -> f32 {
  if (k >= p.k || n >= p.n) { return 0.0; }
  if (p.trans_b == 1u) { return read_b(base + n * p.k + k); }
  return read_b(base + k * p.n + n);
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let batch = wg.z;
  let base_a = batch * p.stride_a;
  let base_b = batch * p.stride_b;
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  var acc: array<f32, 16>;
  for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }
  for (var k0 = 0u; k0 < p.k; k0 += 16u) {
    // 256 threads load 1024 elements of each tile: 4 each.
    for (var r = 0u; r < 4u; r++) {
      let e = li + r * 256u;
      let kk = e / 64u;
      let mm = e % 64u;
      tile_a[e] = load_a(base_a, row0 + mm, k0 + kk);
      tile_b[e] = load_b(base_b, k0 + kk, col0 + mm);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        av[i] = tile_a[kk * 64u + lid.y + i * 16u];
        bv[i] = tile_b[kk * 64u + lid.x + i * 16u];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]);
        }
      }
    }
    workgroupBarrier();
  }
  let base_c = batch * p.m * p.n;
  for (var i = 0u; i < 4u; i++) {
    let row = row0 + lid.y + i * 16u;
    if (row >= p.m) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + lid.x + j * 16u;
      if (col >= p.n) { continue; }
      var v = p.alpha * acc[i * 4u + j];
      if (p.has_bias == 1u) { v += bias[col]; }
      let idx = base_c + row * p.n + col;
      if (p.beta != 0.0) { v += p.beta * C[idx]; }
      C[idx] = v;
    }
  }
}
